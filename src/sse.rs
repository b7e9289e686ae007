//! Incremental server-sent-events decoder and encoder (sans-io).
//!
//! [`SseDecoder`] follows the WHATWG event-stream parsing rules: lines end in
//! `\n`, `\r\n` or `\r`; one leading UTF-8 BOM is ignored; `:` starts a comment;
//! the fields `event`, `data` (several lines joined with `\n`), `id` and `retry`
//! are recognised; one space after the colon is stripped; a blank line dispatches.
//!
//! Built for a proxy: the decoder returns [`SseFrame`]s that together cover
//! **every input byte exactly once**, in order. A frame is either a dispatched
//! [`SseEvent`] or a block that dispatches nothing (a keep-alive comment, an
//! `event:` block without `data:`, trailing bytes at end of stream). Each frame
//! carries its `raw` bytes as received, so relaying `frame.raw()` for every frame
//! reproduces the upstream byte stream exactly, and only modified events need
//! [`encode`].
//!
//! State machine: bytes are appended to a pending buffer (the raw bytes of the
//! frame being built); complete lines are interpreted as they arrive; a blank line
//! closes the frame. A `\r` that is the last byte received is held until the next
//! byte (or [`SseDecoder::finish`]) shows whether it starts a `\r\n`, so the
//! result never depends on where the stream was split (cost: a stream that uses
//! bare `\r` endings sees each event when the following byte arrives). The pending
//! buffer is bounded ([`SseDecoder::with_max_event_len`]); exceeding it is a hard
//! [`SseError::EventTooLong`], after which the decoder refuses further input.

use bytes::Bytes;

/// Default bound on the raw size of one pending frame (and thus of one line): 16 MiB.
pub const DEFAULT_MAX_EVENT_LEN: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field of this block; `None` when absent or empty (type "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (no trailing newline).
    pub data: String,
    /// The `id:` field given in this block, if any (values containing NUL are ignored).
    pub id: Option<String>,
    /// The `retry:` field given in this block, if any and all ASCII digits.
    pub retry: Option<u64>,
    /// The exact bytes this event was decoded from (empty for locally built events).
    pub raw: Bytes,
}

impl SseEvent {
    /// A locally built event with only `data` (no raw bytes; use [`encode`] to send it).
    pub fn with_data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// The bytes to send for this event: `raw` when present, else the encoding.
    pub fn to_bytes(&self) -> Bytes {
        if self.raw.is_empty() {
            encode(self)
        } else {
            self.raw.clone()
        }
    }
}

/// One unit of decoder output; the `raw` bytes of successive frames tile the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseFrame {
    /// A dispatched event.
    Event(SseEvent),
    /// Bytes that dispatch no event (comments, blocks without `data`, trailing bytes).
    Other(Bytes),
}

impl SseFrame {
    /// The exact bytes of this frame as received.
    pub fn raw(&self) -> &Bytes {
        match self {
            SseFrame::Event(e) => &e.raw,
            SseFrame::Other(b) => b,
        }
    }

    /// The event, if this frame dispatched one.
    pub fn event(&self) -> Option<&SseEvent> {
        match self {
            SseFrame::Event(e) => Some(e),
            SseFrame::Other(_) => None,
        }
    }
}

/// Decoder failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A pending event (or a single line) exceeded the configured bound.
    #[error("server-sent event exceeds {limit} bytes")]
    EventTooLong {
        /// The configured bound in bytes.
        limit: usize,
    },
}

/// Incremental event-stream decoder; feed it bytes split anywhere.
#[derive(Debug)]
pub struct SseDecoder {
    /// Raw bytes of the frame being built (consumed lines plus the partial line).
    buf: Vec<u8>,
    /// Offset in `buf` where the next unprocessed line starts.
    scan: usize,
    /// Whether the BOM check at stream start is done.
    bom_done: bool,
    /// No line terminator exists in `buf[scan..searched]` (avoids rescanning long lines).
    searched: usize,
    /// The previous line ended in `\r`; a `\n` at `scan` belongs to that ending.
    skip_lf: bool,
    max_event_len: usize,
    failed: bool,
    // Fields of the block being built.
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    last_event_id: String,
    /// While a chunk fed with [`SseDecoder::feed_shared`] into an empty buffer is being
    /// processed: that chunk, so `buf[a..b]` is `src[a..b]` and a frame's raw bytes are a
    /// slice of it instead of a copy.
    src: Option<Bytes>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default bound [`DEFAULT_MAX_EVENT_LEN`].
    pub fn new() -> Self {
        Self::with_max_event_len(DEFAULT_MAX_EVENT_LEN)
    }

    /// A decoder whose pending frame (raw bytes, hence also any line) may not exceed `max` bytes.
    pub fn with_max_event_len(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            scan: 0,
            searched: 0,
            bom_done: false,
            skip_lf: false,
            max_event_len: max.max(1),
            failed: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
            last_event_id: String::new(),
            src: None,
        }
    }

    /// The spec's "last event ID" (persists across events until an `id:` changes it).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Feeds a chunk; complete frames are appended to `out` (also when an error is returned
    /// for a later part of the chunk).
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseFrame>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.too_long());
        }
        self.buf.extend_from_slice(bytes);
        self.process(false, out);
        if self.buf.len() > self.max_event_len {
            self.failed = true;
            self.buf = Vec::new();
            self.scan = 0;
            return Err(self.too_long());
        }
        Ok(())
    }

    /// [`SseDecoder::feed`] for a shared chunk: the frames that lie wholly in it (all of
    /// them when the previous chunk ended at a frame boundary) carry `raw` as a slice of
    /// `bytes`, not a copy.
    pub fn feed_shared(&mut self, bytes: &Bytes) -> Result<Vec<SseFrame>, SseError> {
        let mut out = Vec::new();
        if self.buf.is_empty() {
            self.src = Some(bytes.clone());
        }
        let r = self.feed(bytes, &mut out);
        self.src = None;
        r.map(|()| out)
    }

    /// Convenience: feeds a chunk and returns the frames it completed.
    pub fn feed_vec(&mut self, bytes: &[u8]) -> Result<Vec<SseFrame>, SseError> {
        let mut out = Vec::new();
        self.feed(bytes, &mut out)?;
        Ok(out)
    }

    /// Ends the stream: a held `\r` counts as a line ending; any bytes of an incomplete
    /// event are returned as [`SseFrame::Other`] (the spec discards, never dispatches, them).
    pub fn finish(mut self) -> Vec<SseFrame> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.process(true, &mut out);
        if !self.buf.is_empty() {
            out.push(SseFrame::Other(Bytes::from(std::mem::take(&mut self.buf))));
        }
        out
    }

    fn too_long(&self) -> SseError {
        SseError::EventTooLong {
            limit: self.max_event_len,
        }
    }

    fn process(&mut self, eof: bool, out: &mut Vec<SseFrame>) {
        if !self.bom_done {
            let n = self.buf.len().min(BOM.len());
            let prefix = self.buf.get(..n).unwrap_or_default();
            if prefix != BOM.get(..n).unwrap_or_default() {
                self.bom_done = true;
            } else if n == BOM.len() {
                self.bom_done = true;
                self.scan = BOM.len();
            } else if eof {
                // A truncated BOM at EOF: the bytes are left for the trailing frame.
                self.bom_done = true;
            } else {
                return;
            }
        }
        let mut frame_start = 0usize;
        // Lines borrow the buffer while the field state is updated.
        let buf = std::mem::take(&mut self.buf);
        loop {
            if self.skip_lf {
                match buf.get(self.scan) {
                    Some(b'\n') => {
                        self.scan += 1;
                        self.skip_lf = false;
                    }
                    Some(_) => self.skip_lf = false,
                    None => break,
                }
            }
            let from = self.scan.max(self.searched);
            let rest = buf.get(from..).unwrap_or_default();
            let Some(rel) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.searched = buf.len();
                break;
            };
            let line_start = self.scan;
            let line_end = from + rel;
            let is_cr = buf.get(line_end) == Some(&b'\r');
            if is_cr && line_end + 1 == buf.len() && !eof {
                // Wait for the next byte: it may be the `\n` of a `\r\n`.
                break;
            }
            let line = buf.get(line_start..line_end).unwrap_or_default();
            self.scan = line_end + 1;
            if is_cr {
                self.skip_lf = true;
                if buf.get(self.scan) == Some(&b'\n') {
                    self.scan += 1;
                    self.skip_lf = false;
                }
            }
            if line.is_empty() {
                let raw = match &self.src {
                    Some(src) if self.scan <= src.len() => src.slice(frame_start..self.scan),
                    _ => {
                        Bytes::copy_from_slice(buf.get(frame_start..self.scan).unwrap_or_default())
                    }
                };
                frame_start = self.scan;
                out.push(self.dispatch(raw));
            } else {
                self.field_line(line);
            }
        }
        self.buf = buf;
        if frame_start > 0 {
            self.buf.drain(..frame_start);
            self.scan -= frame_start;
            self.searched = self.searched.saturating_sub(frame_start);
        }
    }

    fn field_line(&mut self, line: &[u8]) {
        let Some((name, value)) = field(line) else {
            return;
        };
        match name {
            b"event" => self.event = text(value).into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&text(value));
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                let id = text(value).into_owned();
                self.last_event_id.clone_from(&id);
                self.id = Some(id);
            }
            // Too many digits for u64 is treated like an invalid value.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(ms) = text(value).parse::<u64>() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, raw: Bytes) -> SseFrame {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let id = self.id.take();
        let retry = self.retry.take();
        let has_data = std::mem::replace(&mut self.has_data, false);
        if !has_data {
            return SseFrame::Other(raw);
        }
        SseFrame::Event(SseEvent {
            event: (!event.is_empty()).then_some(event),
            data,
            id,
            retry,
            raw,
        })
    }
}

/// A line's text. `from_utf8` first: its ASCII fast path is several times quicker than the
/// lossy decoder's byte-wise walk, and lines are valid UTF-8 all but always.
fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// A non-empty line's field name and value (one leading space removed from the value; no
/// colon: the whole line is the name), or `None` for a comment.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.first() == Some(&b':') {
        return None;
    }
    Some(match memchr::memchr(b':', line) {
        Some(c) => {
            let v = line.get(c + 1..).unwrap_or_default();
            (
                line.get(..c).unwrap_or_default(),
                v.strip_prefix(b" ").unwrap_or(v),
            )
        }
        None => (line, &b""[..]),
    })
}

/// The events of a whole event stream held in memory, read in place: `f(event, data)` for
/// each dispatched event (`event` as [`SseEvent::event`], `data` as [`SseEvent::data`]),
/// in order: the events an [`SseDecoder`] without a length bound fed `bytes` and finished
/// gives. `data` is borrowed from `bytes` unless the event has several `data:` lines or
/// invalid UTF-8. For readers of a captured stream (the recorder) that need neither the
/// raw bytes nor the `id` / `retry` fields: no copy of the stream, no frame list.
pub fn for_each_event(bytes: &[u8], mut f: impl FnMut(Option<&str>, &str)) {
    use std::borrow::Cow;
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut pos = 0usize;
    let mut event: Option<Cow<'_, str>> = None;
    let mut data: Option<Cow<'_, str>> = None;
    while let Some(rel) = body
        .get(pos..)
        .and_then(|r| memchr::memchr2(b'\n', b'\r', r))
    {
        let line_end = pos + rel;
        let line = body.get(pos..line_end).unwrap_or_default();
        pos = line_end + 1;
        if body.get(line_end) == Some(&b'\r') && body.get(pos) == Some(&b'\n') {
            pos += 1;
        }
        if line.is_empty() {
            let ev = event.take();
            if let Some(d) = data.take() {
                f(ev.as_deref().filter(|e| !e.is_empty()), &d);
            }
            continue;
        }
        let Some((name, value)) = field(line) else {
            continue;
        };
        match name {
            b"event" => event = Some(text(value)),
            b"data" => match &mut data {
                Some(d) => {
                    let d = d.to_mut();
                    d.push('\n');
                    d.push_str(&text(value));
                }
                None => data = Some(text(value)),
            },
            _ => {}
        }
    }
}

/// Encodes an event as `event: ..\nid: ..\nretry: ..\ndata: ..\n\n` (ignores `raw`).
///
/// Every line of `data` (split on `\r\n`, `\r` or `\n`) becomes one `data:` line, so
/// `\r` in data comes back as `\n`. `\r`/`\n` in `event` and `id` are dropped (they
/// cannot be represented), as is an `id` containing NUL.
pub fn encode(ev: &SseEvent) -> Bytes {
    let mut s = String::with_capacity(ev.data.len() + 32);
    let clean = |v: &str| {
        v.chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect::<String>()
    };
    if let Some(e) = &ev.event {
        s.push_str("event: ");
        s.push_str(&clean(e));
        s.push('\n');
    }
    if let Some(id) = &ev.id {
        if !id.contains('\0') {
            s.push_str("id: ");
            s.push_str(&clean(id));
            s.push('\n');
        }
    }
    if let Some(r) = ev.retry {
        s.push_str("retry: ");
        s.push_str(&r.to_string());
        s.push('\n');
    }
    if memchr::memchr2(b'\r', b'\n', ev.data.as_bytes()).is_none() {
        // One line (JSON data, the usual case): no normalization needed.
        s.push_str("data: ");
        s.push_str(&ev.data);
        s.push_str("\n\n");
        return Bytes::from(s);
    }
    let data = ev.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shared_chunks_give_the_same_frames_with_raw_slices_of_the_chunk() {
        let chunks: [&[u8]; 3] = [
            b"\xEF\xBB\xBFdata: a\n\nevent: x\ndata: b\n\ndata: par",
            b"tial\n\n: note\n\ndata: c\r\n\r\n",
            b"data: d\n\n",
        ];
        let mut plain = SseDecoder::new();
        let mut shared = SseDecoder::new();
        for (i, c) in chunks.into_iter().enumerate() {
            let chunk = Bytes::from_static(c);
            let want = plain.feed_vec(c).unwrap();
            let got = shared.feed_shared(&chunk).unwrap();
            assert_eq!(got, want);
            for f in &got {
                let raw = match f {
                    SseFrame::Event(e) => &e.raw,
                    SseFrame::Other(r) => r,
                };
                let inside = chunk.as_ptr_range().contains(&raw.as_ptr());
                // Slices when the chunk arrived with nothing buffered (the second one
                // completes an event begun in the first: its frames are copies).
                assert_eq!(inside, i != 1, "{raw:?}");
            }
        }
    }

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<SseFrame> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        out.extend(d.finish());
        out
    }

    fn events(frames: &[SseFrame]) -> Vec<SseEvent> {
        frames.iter().filter_map(|f| f.event().cloned()).collect()
    }

    fn concat(frames: &[SseFrame]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.raw().to_vec()).collect()
    }

    #[test]
    fn basic_fields_and_multiline_data() {
        let input = b"event: add\nid: 7\nretry: 1500\ndata: a\ndata:b\ndata:  c\n\n";
        let f = decode_chunks(&[input]);
        assert_eq!(f.len(), 1);
        let e = f[0].event().unwrap();
        assert_eq!(e.event.as_deref(), Some("add"));
        assert_eq!(e.id.as_deref(), Some("7"));
        assert_eq!(e.retry, Some(1500));
        assert_eq!(e.data, "a\nb\n c");
        assert_eq!(&e.raw[..], &input[..]);
    }

    #[test]
    fn comments_and_dataless_blocks_are_other_frames() {
        let input = b": keep-alive\n\nevent: x\n\ndata: hi\n\n";
        let f = decode_chunks(&[input]);
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[0],
            SseFrame::Other(Bytes::from_static(b": keep-alive\n\n"))
        );
        assert_eq!(f[1], SseFrame::Other(Bytes::from_static(b"event: x\n\n")));
        let e = f[2].event().unwrap();
        assert_eq!(e.event, None, "event type resets after a dataless block");
        assert_eq!(e.data, "hi");
    }

    #[test]
    fn field_without_colon_and_empty_data() {
        let f = decode_chunks(&[b"data\n\ndata:\ndata\n\n"]);
        let ev = events(&f);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "");
        assert_eq!(ev[1].data, "\n");
    }

    #[test]
    fn invalid_retry_and_nul_id_ignored() {
        let f = decode_chunks(&[b"retry: 12a\nid: a\0b\ndata: x\n\n"]);
        let e = f[0].event().unwrap();
        assert_eq!(e.retry, None);
        assert_eq!(e.id, None);
    }

    #[test]
    fn last_event_id_persists() {
        let mut d = SseDecoder::new();
        let f = d.feed_vec(b"id: 1\ndata: a\n\ndata: b\n\n").unwrap();
        assert_eq!(events(&f)[1].id, None);
        assert_eq!(d.last_event_id(), "1");
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        let f = decode_chunks(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
        let ev = events(&f);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "a");
        assert_eq!(&ev[0].raw[..], b"data: a\r\n\r\n");
        assert_eq!(ev[1].data, "b");
    }

    #[test]
    fn bare_cr_endings_and_held_cr_at_eof() {
        let f = decode_chunks(&[b"data: a\r\rdata: b\r\r"]);
        let ev = events(&f);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].data, "b");
        assert_eq!(&ev[1].raw[..], b"data: b\r\r");
    }

    #[test]
    fn bom_stripped_once_even_when_split() {
        let input = b"\xEF\xBB\xBFdata: x\n\n\xEF\xBB\xBFdata: y\n\n";
        let f = decode_chunks(&[&input[..1], &input[1..2], &input[2..]]);
        let ev = events(&f);
        assert_eq!(ev[0].data, "x");
        assert_eq!(&ev[0].raw[..3], BOM);
        // A second BOM is not stripped: the field name becomes "\u{feff}data".
        assert_eq!(ev.len(), 1);
        assert_eq!(concat(&f), input.to_vec());
    }

    #[test]
    fn utf8_split_inside_char() {
        let input = "data: héllo €\n\n".as_bytes();
        for i in 0..input.len() {
            let f = decode_chunks(&[&input[..i], &input[i..]]);
            assert_eq!(events(&f)[0].data, "héllo €");
        }
    }

    #[test]
    fn incomplete_trailing_event_is_not_dispatched() {
        let f = decode_chunks(&[b"data: a\n\ndata: partial\n"]);
        assert_eq!(events(&f).len(), 1);
        assert_eq!(
            f.last().unwrap(),
            &SseFrame::Other(Bytes::from_static(b"data: partial\n"))
        );
    }

    #[test]
    fn bound_is_enforced_and_sticky() {
        let mut d = SseDecoder::with_max_event_len(16);
        let mut out = Vec::new();
        d.feed(b"data: ok\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let err = d.feed(b"data: 0123456789abcdef", &mut out).unwrap_err();
        assert_eq!(err, SseError::EventTooLong { limit: 16 });
        assert!(d.feed(b"\n\n", &mut out).is_err());
        assert!(d.finish().is_empty());
    }

    #[test]
    fn encode_multiline_and_fields() {
        let e = SseEvent {
            event: Some("delta".into()),
            data: "a\nb".into(),
            id: Some("9".into()),
            retry: Some(10),
            raw: Bytes::new(),
        };
        assert_eq!(
            &encode(&e)[..],
            b"event: delta\nid: 9\nretry: 10\ndata: a\ndata: b\n\n"
        );
        assert_eq!(&SseEvent::with_data("").to_bytes()[..], b"data: \n\n");
    }

    fn arb_event() -> impl Strategy<Value = SseEvent> {
        (
            proptest::option::of("[a-z_.]{1,12}"),
            proptest::collection::vec("[ -~é€😀]{0,12}", 1..4),
            proptest::option::of("[ -~]{0,6}"),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(event, lines, id, retry)| SseEvent {
                event,
                data: lines.join("\n"),
                id,
                retry,
                raw: Bytes::new(),
            })
    }

    /// Splits `bytes` at the given cut points (taken modulo the length, sorted).
    fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cs: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cs.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for c in cs {
            out.push(bytes[prev..c].to_vec());
            prev = c;
        }
        out.push(bytes[prev..].to_vec());
        out
    }

    fn arb_line_stream() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            "data: [a-zé]{0,5}".prop_map(String::into_bytes),
            "data:[a-z ]{0,5}".prop_map(String::into_bytes),
            "event: [a-z]{0,4}".prop_map(String::into_bytes),
            Just(b": comment".to_vec()),
            "id: [0-9]{0,3}".prop_map(String::into_bytes),
            "retry: [0-9x]{0,3}".prop_map(String::into_bytes),
            Just(Vec::new()),
            Just(vec![0xE2, 0x82]),
            Just(b"\xEF\xBB\xBF".to_vec()),
        ];
        let ending = prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..])];
        (
            proptest::bool::ANY,
            proptest::collection::vec((line, ending), 0..16),
        )
            .prop_map(|(bom, ls)| {
                let mut v = if bom { BOM.to_vec() } else { Vec::new() };
                for (l, e) in ls {
                    v.extend_from_slice(&l);
                    v.extend_from_slice(e);
                }
                v
            })
    }

    proptest! {
        #[test]
        fn prop_encode_decode_roundtrip(evs in proptest::collection::vec(arb_event(), 0..6)) {
            let mut bytes = Vec::new();
            for e in &evs {
                bytes.extend_from_slice(&encode(e));
            }
            let got = events(&decode_chunks(&[&bytes]));
            prop_assert_eq!(got.len(), evs.len());
            for (g, e) in got.iter().zip(&evs) {
                prop_assert_eq!(&g.event, &e.event);
                prop_assert_eq!(&g.data, &e.data);
                prop_assert_eq!(&g.id, &e.id);
                prop_assert_eq!(g.retry, e.retry);
                prop_assert_eq!(&encode(g), &encode(e));
            }
        }

        #[test]
        fn prop_encoded_events_any_split(
            evs in proptest::collection::vec(arb_event(), 0..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut bytes = Vec::new();
            for e in &evs {
                bytes.extend_from_slice(&encode(e));
            }
            let whole = decode_chunks(&[&bytes]);
            let parts = split_at(&bytes, &cuts);
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(decode_chunks(&refs), whole);
        }

        #[test]
        fn prop_raw_streams_any_split_and_tiling(
            bytes in arb_line_stream(),
            tail in proptest::collection::vec(any::<u8>(), 0..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut bytes = bytes;
            bytes.extend_from_slice(&tail);
            let whole = decode_chunks(&[&bytes]);
            prop_assert_eq!(concat(&whole), bytes.clone(), "frames must tile the input");
            let parts = split_at(&bytes, &cuts);
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(decode_chunks(&refs), whole);
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(decode_chunks(&singles), decode_chunks(&[&bytes]));
        }

        /// The in-place reader gives the decoder's events (type and data), in order, on
        /// line streams, on bytes from the format's own alphabet and on any bytes.
        #[test]
        fn prop_for_each_event_equals_the_decoder(
            lines in arb_line_stream(),
            tail in proptest::collection::vec(any::<u8>(), 0..4),
            alphabet in proptest::collection::vec(
                proptest::sample::select(&b"data:event: x\n\r\xEF\xBB\xBF\xE2"[..]), 0..96),
            noise in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut lines = lines;
            lines.extend_from_slice(&tail);
            for bytes in [lines, alphabet, noise] {
                let mut decoder = SseDecoder::with_max_event_len(usize::MAX);
                let mut frames = decoder.feed_vec(&bytes).unwrap_or_default();
                frames.extend(decoder.finish());
                let want: Vec<(Option<String>, String)> = events(&frames)
                    .into_iter()
                    .map(|e| (e.event, e.data))
                    .collect();
                let mut got = Vec::new();
                for_each_event(&bytes, |e, d| got.push((e.map(str::to_string), d.to_string())));
                prop_assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&bytes));
            }
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic_and_tile(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let f = decode_chunks(&[&bytes]);
            prop_assert_eq!(concat(&f), bytes);
        }
    }
}
