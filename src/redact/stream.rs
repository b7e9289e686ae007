//! Streaming guard (sans-io): applies output policies to a provider SSE stream incrementally.
//!
//! State machine per stream position (choice / content block / output part):
//! - **text**: deltas are appended to the position's text; everything except the last
//!   `window` bytes (the longest match any applicable rule can have, plus a context margin)
//!   is released, redacted; a match that crosses the release point holds back from its start.
//!   The window is counted in folded bytes (look-alike characters read as ASCII, invisible
//!   ones as nothing: see `policy::fold`), as the scanner reads the text.
//!   So a value split across any number of chunks is still found, and time-to-first-token
//!   grows by at most the window. The position is flushed (window released) when its block,
//!   choice or the stream ends.
//! - **tool arguments**: argument fragments are withheld until the call is complete, then
//!   guarded as a whole (JSON leaf by leaf) and emitted as one fragment in the first withheld
//!   event — the client still receives valid JSON arguments.
//! - **summary events** (Responses `*.done`, `response.completed`) repeat full texts: they
//!   are guarded as full texts with the same per-request redactor, so placeholders agree.
//! - **deny**: when an enforced deny rule matches, nothing of the match is released; the
//!   stream is ended cleanly in the provider's format (`finish_reason: "content_filter"`,
//!   Anthropic `stop_reason: "refusal"`, Responses `response.incomplete`) and further
//!   upstream input is ignored.
//!
//! Events that need no change are relayed byte-for-byte.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::guard::quiet::{Quiet, QuietCache, QuietFilter};
use crate::guard::{
    Applicable, Finding, HoldPlan, Locations, Outcome, Pass, PolicySet, Side, CONTEXT_MARGIN,
};
use crate::policy::fold;
use crate::provider::splice::{same_layout, splice_at, string_at, string_span};
use crate::provider::{
    may_have_logprobs, rebuild_event, strip_logprobs, ApiFormat, PathElem, SegmentKind, StreamItem,
    StreamNormalizer, StreamPos,
};
use crate::redact::Redactor;
use crate::sse::{encode, SseDecoder, SseEvent, SseFrame};

/// Drop already-released text beyond this many bytes (keep memory bounded on long streams).
const TRIM_AFTER: usize = 64 * 1024;

#[derive(Debug, Default)]
struct TextState {
    /// Received text not yet trimmed; `text[0]` is at absolute offset `base`.
    text: String,
    base: usize,
    /// Absolute offset up to which text was released to the client.
    released: usize,
    /// Last delta event of this position and the text path in it (to build flush events).
    template: Option<(Arc<SseEvent>, Arc<[PathElem]>)>,
    /// Anchor occurrences of long rules found so far and not yet outgrown (see
    /// [`hold_point`]), and the absolute offset up to which the text was searched for them.
    anchors: Vec<Pending>,
    anchors_scanned: usize,
    /// The anchor DFA's state after the byte at `anchors_scanned - 1` (`None`: not started).
    anchor_state: Option<aho_corasick::automaton::StateID>,
    /// The quiet filter's view of this text (see `guard::quiet`).
    quiet: Quiet,
    /// The last events, held whole, in order (see `StreamGuard::hold_step`).
    held: Vec<Held>,
    /// The last event whose text was spliced at this position and the byte span its text
    /// string had (the next chunk usually has the same layout: see `splice::same_layout`).
    layout: Option<(Arc<SseEvent>, usize, usize)>,
}

impl TextState {
    /// Feed the text not yet fed to the quiet filter, with the stream's cache (taken from
    /// the filter's pool on first use); returns that cache.
    fn feed_quiet<'c>(
        &mut self,
        f: &QuietFilter,
        cache: &'c mut Option<QuietCache>,
    ) -> &'c mut QuietCache {
        let c = cache.get_or_insert_with(|| f.cache());
        self.quiet.advance(f, c, self.text.as_bytes(), self.base);
        c
    }
}

/// An event held whole: it carries the text at absolute offsets `from..to` and nothing else.
#[derive(Debug)]
struct Held {
    ev: Arc<SseEvent>,
    from: usize,
    to: usize,
}

/// An anchor literal of a long rule at absolute offset `at`: a match containing it may
/// start at `start`, and until the text reads as `need` bytes past `until` (folded bytes,
/// see `policy::fold`) such a match may be incomplete.
#[derive(Debug, Clone, Copy)]
struct Pending {
    at: usize,
    start: usize,
    until: usize,
    /// The hold lasts until the text reads as `need` bytes past `until` (folded bytes).
    need: usize,
    /// Index of the anchor in the plan's `AnchorSet` (for its rule's DFA).
    anchor: usize,
    /// The rule's DFA, run anchored here, died: `until` and `need` are final.
    settled: bool,
}

#[derive(Debug, Default)]
struct ToolState {
    args: String,
    /// First withheld event carrying an argument fragment, and the fragment's path.
    carrier: Option<(Arc<SseEvent>, Vec<PathElem>)>,
    /// Last fragment event seen (fallback carrier).
    last: Option<(Arc<SseEvent>, Vec<PathElem>)>,
}

/// Why the stream stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status_rules: Vec<Arc<str>>,
}

/// Incremental output guard for one streamed response.
pub struct StreamGuard {
    set: Arc<PolicySet>,
    app: Applicable,
    format: ApiFormat,
    decoder: SseDecoder,
    norm: StreamNormalizer,
    redactor: Redactor,
    outcome: Outcome,
    texts: BTreeMap<StreamPos, TextState>,
    tools: BTreeMap<StreamPos, ToolState>,
    guard_text: bool,
    guard_tools: bool,
    plan: Arc<HoldPlan>,
    /// Last JSON data of an event with `choices` (chat / completions termination template).
    last_chunk: Option<Arc<SseEvent>>,
    /// Responses: the response object from `response.created` / `in_progress`.
    response_obj: Option<Value>,
    last_seq: Option<u64>,
    /// Responses: next `sequence_number` to emit (events are renumbered once the guard
    /// inserted or withheld one, so the client sees a gapless sequence).
    next_seq: u64,
    /// Anthropic: content blocks started and not stopped.
    open_blocks: BTreeSet<u64>,
    denied: Option<Denied>,
    finished: bool,
    /// Lazy-DFA caches of the hold plan's rule DFAs (created on first use).
    dfa_caches: Vec<Option<regex_automata::hybrid::dfa::Cache>>,
    /// This stream's cache of the quiet filter (taken on first use, given back on drop).
    quiet_cache: Option<QuietCache>,
    /// The last event that was one text delta, to read the next such event without a
    /// parse (see [`StreamGuard::lane_items`]).
    lane: Option<Lane>,
    /// Events read through the lane (for tests and profiling).
    lane_hits: usize,
}

/// An event that carried one text delta and nothing else, where its text string sits.
struct Lane {
    ev: Arc<SseEvent>,
    start: usize,
    end: usize,
    pos: StreamPos,
    path: Arc<[PathElem]>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let (Some(f), Some(c)) = (&self.plan.quiet, self.quiet_cache.take()) {
            f.give_back(c);
        }
    }
}

impl StreamGuard {
    /// A guard for one stream of `format`, evaluating the rules in `app` (response side).
    pub fn new(
        set: Arc<PolicySet>,
        app: Applicable,
        format: ApiFormat,
        redactor: Redactor,
    ) -> Self {
        let guard_text = set.covers(&app, Locations::ASSISTANT);
        let guard_tools = set.covers(&app, Locations::TOOL_ARGUMENTS);
        let plan = set.hold_plan(&app, Locations::ASSISTANT);
        StreamGuard {
            set,
            app,
            format,
            decoder: SseDecoder::new(),
            norm: StreamNormalizer::new(format),
            redactor,
            outcome: Outcome::default(),
            texts: BTreeMap::new(),
            tools: BTreeMap::new(),
            guard_text,
            guard_tools,
            plan,
            last_chunk: None,
            response_obj: None,
            last_seq: None,
            next_seq: 0,
            open_blocks: BTreeSet::new(),
            denied: None,
            finished: false,
            dfa_caches: Vec::new(),
            quiet_cache: None,
            lane: None,
            lane_hits: 0,
        }
    }

    /// Whether an enforced deny rule ended the stream.
    pub fn denied(&self) -> Option<&Denied> {
        self.denied.as_ref()
    }

    /// Whether no more output will come (denied, or finished).
    pub fn is_closed(&self) -> bool {
        self.denied.is_some() || self.finished
    }

    /// Violations recorded so far (never values).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Feed upstream bytes; returns the bytes to send to the client now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        if self.is_closed() {
            return Vec::new();
        }
        let frames = self.decoder.feed_vec(bytes);
        self.on_frames(frames)
    }

    /// [`StreamGuard::push`] for a shared chunk: events relayed as received are slices of
    /// it, not copies.
    pub fn push_shared(&mut self, bytes: &Bytes) -> Vec<Bytes> {
        if self.is_closed() {
            return Vec::new();
        }
        let frames = self.decoder.feed_shared(bytes);
        self.on_frames(frames)
    }

    fn on_frames(&mut self, frames: Result<Vec<SseFrame>, crate::sse::SseError>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let frames = match frames {
            Ok(f) => f,
            Err(_) => {
                // An event larger than the decoder allows cannot be inspected: fail closed.
                self.deny(vec![Arc::from("parapet/uninspectable-stream")], &mut out);
                return out;
            }
        };
        for f in frames {
            self.on_frame(f, &mut out);
            if self.is_closed() {
                break;
            }
        }
        out
    }

    /// The upstream ended: flush every held position; returns the last bytes to send.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.is_closed() {
            return out;
        }
        let decoder = std::mem::take(&mut self.decoder);
        for f in decoder.finish() {
            self.on_frame(f, &mut out);
            if self.is_closed() {
                return out;
            }
        }
        let positions: Vec<StreamPos> = self
            .texts
            .keys()
            .chain(self.tools.keys())
            .copied()
            .collect();
        for pos in positions {
            if let Err(d) = self.flush(pos, &mut out) {
                self.deny(d, &mut out);
                return out;
            }
        }
        self.finished = true;
        out
    }

    fn on_frame(&mut self, frame: SseFrame, out: &mut Vec<Bytes>) {
        match frame {
            SseFrame::Other(raw) => out.push(raw),
            SseFrame::Event(ev) => self.on_event(ev, out),
        }
    }

    /// Keep what a clean termination needs, parsing only the events that carry it.
    fn remember(&mut self, ev: &Arc<SseEvent>) {
        let parse = || serde_json::from_str::<Value>(&ev.data).ok();
        match self.format {
            ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions => {
                static CHOICES: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
                    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"choices\""));
                if CHOICES.find(ev.data.as_bytes()).is_some() {
                    // Parsed only if the stream has to be terminated.
                    self.last_chunk = Some(ev.clone());
                }
            }
            ApiFormat::OpenAiResponses => {
                if let Some(n) = sequence_number(ev.data.as_bytes()) {
                    self.last_seq = Some(n);
                }
                let name = ev.event.as_deref().unwrap_or_default();
                if matches!(name, "response.created" | "response.in_progress") {
                    if let Some(v) = parse() {
                        self.response_obj = v.get("response").cloned();
                    }
                }
            }
            ApiFormat::AnthropicMessages => {
                let name = ev.event.as_deref().unwrap_or_default();
                if matches!(name, "content_block_start" | "content_block_stop") {
                    let idx = parse().and_then(|v| v.get("index").and_then(Value::as_u64));
                    match (name, idx) {
                        ("content_block_start", Some(i)) => {
                            self.open_blocks.insert(i);
                        }
                        ("content_block_stop", Some(i)) => {
                            self.open_blocks.remove(&i);
                        }
                        _ => {}
                    }
                }
            }
            ApiFormat::OpenAiEmbeddings => {}
        }
    }

    fn on_event(&mut self, ev: SseEvent, out: &mut Vec<Bytes>) {
        let ev = Arc::new(ev);
        let first_new = out.len();
        let done = match self.lane_event(&ev, out) {
            Some(done) => done,
            None => {
                let items = match self.norm.push(&ev) {
                    Ok(items) => items,
                    Err(crate::provider::NormalizeError::DuplicateKey) => {
                        // The guard would read one value, a client keeping the first
                        // another: the stream cannot be guarded, so it ends here.
                        self.deny(vec![Arc::from("parapet/uninspectable-stream")], out);
                        return;
                    }
                    Err(_) => {
                        // Not an event this format defines (e.g. non-JSON data): no
                        // segments, but text a client may show, read whole like an error
                        // body (every response rule).
                        match self.guard_error_event(&ev) {
                            Ok(Some(new)) => out.push(new.raw),
                            Ok(None) => out.push(ev.raw.clone()),
                            Err(rules) => self.deny(rules, out),
                        }
                        return;
                    }
                };
                self.lane = match items.as_slice() {
                    [StreamItem::TextDelta { pos, path, .. }] if self.guard_text => {
                        string_span(&ev.data, path).map(|(start, end)| Lane {
                            ev: ev.clone(),
                            start,
                            end,
                            pos: *pos,
                            path: Arc::from(path.as_slice()),
                        })
                    }
                    _ => None,
                };
                self.remember(&ev);
                self.process(&ev, items, out)
            }
        };
        if let Err(rules) = done {
            self.deny(rules, out);
        }
        if self.format == ApiFormat::OpenAiResponses {
            for b in out.iter_mut().skip(first_new) {
                *b = self.renumber(b);
            }
        }
    }

    /// `ev` handled in full when it is laid out like the last one-text-delta event, only
    /// its text changed (see [`same_layout`]): it is that text delta at the same position
    /// and path, as the normalizer would give, so it is read without a parse and takes the
    /// short road of [`StreamGuard::process`] for one text delta (held whole, relayed,
    /// spliced or rewritten). `None`: not such an event.
    fn lane_event(
        &mut self,
        ev: &Arc<SseEvent>,
        out: &mut Vec<Bytes>,
    ) -> Option<Result<(), Vec<Arc<str>>>> {
        let lane = self.lane.as_mut()?;
        if lane.ev.event != ev.event {
            return None;
        }
        let span = same_layout(&lane.ev.data, lane.start, lane.end, &ev.data)?;
        let text = string_at(&ev.data, span).filter(|t| !t.is_empty())?;
        let (pos, path) = (lane.pos, lane.path.clone());
        let st = self.texts.get_mut(&pos)?;
        lane.ev = ev.clone();
        (lane.start, lane.end) = span;
        self.lane_hits += 1;
        st.text.push_str(&text);
        st.template = Some((ev.clone(), path.clone()));
        self.remember(ev);
        if self.hold_step(pos, ev, text.len(), out) {
            return Some(Ok(()));
        }
        let rel = match self.release(pos, false) {
            Ok(rel) => rel,
            Err(rules) => return Some(Err(rules)),
        };
        if rel == *text {
            out.push(ev.raw.clone());
            return Some(Ok(()));
        }
        if !may_have_logprobs(&ev.data) {
            if let Some(raw) = self.splice_delta(pos, ev, &path, &rel) {
                out.push(raw);
                return Some(Ok(()));
            }
        }
        Some(rewrite(ev, &[(&path, rel.as_str())]).map(|raw| out.push(raw)))
    }

    /// Give a Responses event the next sequence number (unchanged bytes if it already has it).
    fn renumber(&mut self, raw: &Bytes) -> Bytes {
        let want = self.next_seq;
        match sequence_number(raw) {
            None => return raw.clone(),
            Some(n) if n == want => {
                self.next_seq += 1;
                return raw.clone();
            }
            Some(_) => {}
        }
        let mut dec = SseDecoder::new();
        let mut frames = dec.feed_vec(raw).unwrap_or_default();
        frames.extend(dec.finish());
        let [SseFrame::Event(ev)] = frames.as_slice() else {
            return raw.clone();
        };
        let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
            return raw.clone();
        };
        let want = self.next_seq;
        match v.get("sequence_number").and_then(Value::as_u64) {
            Some(n) => {
                self.next_seq += 1;
                if n == want {
                    return raw.clone();
                }
            }
            None => return raw.clone(),
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("sequence_number".into(), json!(want));
        }
        let mut e = ev.clone();
        e.data = v.to_string();
        encode(&e)
    }

    fn process(
        &mut self,
        ev: &Arc<SseEvent>,
        items: Vec<StreamItem>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Vec<Arc<str>>> {
        let single = items.len() == 1;
        // Pass 1: absorb deltas; note which positions this event ends.
        let mut text_edits: Vec<(StreamPos, Vec<PathElem>, String)> = Vec::new();
        let mut tool_edits: Vec<(StreamPos, Vec<PathElem>)> = Vec::new();
        let mut withheld_tools = 0usize;
        let mut other_content = false;
        let mut ends: Vec<StreamPos> = Vec::new();
        let mut end_all = false;
        let mut end_choices: Vec<usize> = Vec::new();
        let mut summaries = Vec::new();
        let mut error_event = false;
        for item in items {
            match item {
                StreamItem::TextDelta {
                    pos, text, path, ..
                } if self.guard_text => {
                    let st = self.texts.entry(pos).or_default();
                    st.text.push_str(&text);
                    st.template = Some((ev.clone(), Arc::from(path.as_slice())));
                    text_edits.push((pos, path, text));
                    other_content = true;
                }
                StreamItem::ToolCallDelta {
                    pos,
                    arguments,
                    path: Some(path),
                    ..
                } if self.guard_tools => {
                    let ts = self.tools.entry(pos).or_default();
                    ts.args.push_str(&arguments);
                    ts.last = Some((ev.clone(), path.clone()));
                    tool_edits.push((pos, path));
                    withheld_tools += 1;
                }
                StreamItem::BlockDone { pos } => ends.push(pos),
                StreamItem::Finish(f) => end_choices.push(f.index),
                StreamItem::Done => end_all = true,
                StreamItem::FullText { segments } => {
                    summaries = segments;
                    end_all = true;
                }
                StreamItem::TextDelta { .. } | StreamItem::ToolCallDelta { .. } => {
                    other_content = true
                }
                // A provider error ends the stream: what is held goes out before it.
                StreamItem::Error(_) => {
                    error_event = true;
                    end_all = true;
                }
                StreamItem::Meta { .. } | StreamItem::Usage(_) | StreamItem::Other => {}
            }
        }
        let ending =
            |pos: &StreamPos| end_all || ends.contains(pos) || end_choices.contains(&pos.choice);

        // Pass 2: flush positions this event ends that it carries no delta for.
        let held: Vec<StreamPos> = self
            .texts
            .keys()
            .chain(self.tools.keys())
            .copied()
            .collect();
        for pos in held {
            let in_event = text_edits.iter().any(|(p, _, _)| *p == pos);
            if ending(&pos) && !in_event {
                self.flush(pos, out)?;
            }
        }

        // An event that is one text delta and nothing else is held whole when everything
        // before it went out: it goes out as received once its text is known clean.
        if let ([(pos, _, text)], true) = (text_edits.as_slice(), single) {
            if !ending(pos) && self.hold_step(*pos, ev, text.len(), out) {
                return Ok(());
            }
        }

        // Pass 3: this event's own text deltas (final if the event also ends the position).
        let mut edits: Vec<(Vec<PathElem>, String)> = Vec::new();
        let mut changed = false;
        for (pos, path, original) in &text_edits {
            let rel = self.release(*pos, ending(pos))?;
            if *original != rel {
                changed = true;
            }
            edits.push((path.clone(), rel));
        }
        // Withheld tool fragments: an event that only carries them is held back entirely;
        // otherwise its fragments are blanked (the carrier event brings the full arguments).
        let only_tools = !other_content
            && summaries.is_empty()
            && !end_all
            && end_choices.is_empty()
            && ends.is_empty();
        if withheld_tools > 0 && only_tools {
            for (pos, path) in tool_edits {
                if let Some(ts) = self.tools.get_mut(&pos) {
                    if ts.carrier.is_none() {
                        ts.carrier = Some((ev.clone(), path));
                    }
                }
            }
            return Ok(());
        }
        for (_, path) in tool_edits {
            edits.push((path, String::new()));
            changed = true;
        }
        // Summary texts: guard as full texts (same redactor, so the same placeholders).
        if !summaries.is_empty() {
            let mut scratch = Outcome::default();
            let mut pass = Pass {
                app: &self.app,
                side: Side::Response,
                redactor: &mut self.redactor,
                out: &mut scratch,
            };
            for seg in &summaries {
                let loc = || crate::provider::path_to_string(&seg.path);
                if let Some(new) = self
                    .set
                    .guard_segment_text(seg.kind, &seg.text, &loc, &mut pass)
                {
                    edits.push((seg.path.clone(), new));
                    changed = true;
                }
            }
            if let Some((_, rules)) = scratch.deny {
                return Err(rules);
            }
        }
        // A provider error event: its message can quote the request, so all of its text
        // is read by the response rules (`PolicySet::guard_error_body`).
        let guarded_error = if error_event {
            self.guard_error_event(ev)?
        } else {
            None
        };
        if let Some(new) = guarded_error {
            if edits.is_empty() {
                out.push(new.raw);
                return Ok(());
            }
            let refs: Vec<(&[PathElem], &str)> = edits
                .iter()
                .map(|(p, t)| (p.as_slice(), t.as_str()))
                .collect();
            out.push(rewrite(&new, &refs)?);
            return Ok(());
        }
        if !changed {
            out.push(ev.raw.clone());
            return Ok(());
        }
        if let ([(pos, _, _)], [(path, text)]) = (text_edits.as_slice(), edits.as_slice()) {
            // One text delta (the usual chunk): spliced where the last chunk had its text.
            if !may_have_logprobs(&ev.data) {
                if let Some(raw) = self.splice_delta(*pos, ev, path, text) {
                    out.push(raw);
                    return Ok(());
                }
            }
        }
        let refs: Vec<(&[PathElem], &str)> = edits
            .iter()
            .map(|(p, t)| (p.as_slice(), t.as_str()))
            .collect();
        out.push(rewrite(ev, &refs)?);
        Ok(())
    }

    /// Guard the data of a provider error event: violations join the stream's outcome, an
    /// enforced deny ends the stream (`Err`), redactions give the rewritten event (`Some`;
    /// `None` = relay it as received).
    fn guard_error_event(&mut self, ev: &SseEvent) -> Result<Option<SseEvent>, Vec<Arc<str>>> {
        let guarded = self
            .set
            .guard_error_body(ev.data.as_bytes(), &self.app, &mut self.redactor)
            .map_err(|_| vec![Arc::from("parapet/uninspectable-stream")])?;
        self.outcome.violations.extend(guarded.outcome.violations);
        if let Some((_, rules)) = guarded.outcome.deny {
            return Err(rules);
        }
        let Some(body) = guarded.body else {
            return Ok(None);
        };
        let data = String::from_utf8(body)
            .map_err(|_| vec![Arc::from("parapet/stream-rewrite-failed")])?;
        let mut new = SseEvent {
            event: ev.event.clone(),
            data,
            id: ev.id.clone(),
            retry: ev.retry,
            raw: Bytes::new(),
        };
        new.raw = encode(&new);
        Ok(Some(new))
    }

    /// `ev` with its one text (at `path`, of position `pos`) replaced by `text`, spliced at
    /// the span the position's previous chunk had when the bytes around it are the same
    /// (else found by walking `path`); `None` = use the general [`rewrite`].
    fn splice_delta(
        &mut self,
        pos: StreamPos,
        ev: &Arc<SseEvent>,
        path: &[PathElem],
        text: &str,
    ) -> Option<Bytes> {
        let st = self.texts.get_mut(&pos)?;
        let span = st
            .layout
            .as_ref()
            .and_then(|(prev, start, end)| same_layout(&prev.data, *start, *end, &ev.data))
            .or_else(|| string_span(&ev.data, path))?;
        let data = splice_at(&ev.data, span, text)?;
        st.layout = Some((ev.clone(), span.0, span.1));
        Some(encode(&SseEvent {
            event: ev.event.clone(),
            data,
            id: ev.id.clone(),
            retry: ev.retry,
            raw: Bytes::new(),
        }))
    }

    /// Event-granular release for an event carrying only `len` bytes of text of `pos`
    /// (already absorbed): the events held before it go out as received, in order, as far
    /// as the quiet filter shows their text clean; this event is then held whole too when
    /// every byte before it went out or is held, and the held text stays within the window.
    /// Otherwise (a possible match, or a word longer than the window) the held events are
    /// dropped: their text goes out with later events, shifted, as the windowed release
    /// does. `true` = this event is held (nothing more to do now).
    ///
    /// So a clean answer reaches the client byte for byte, about one word late, its log
    /// probabilities included; text is only ever shifted between events around a match.
    fn hold_step(
        &mut self,
        pos: StreamPos,
        ev: &Arc<SseEvent>,
        len: usize,
        out: &mut Vec<Bytes>,
    ) -> bool {
        let (Some(f), Some(st)) = (&self.plan.quiet, self.texts.get_mut(&pos)) else {
            return false;
        };
        st.feed_quiet(f, &mut self.quiet_cache);
        let end = st.base + st.text.len();
        let from = end - len;
        let Some(quiet) = st.quiet.quiet_point(st.released) else {
            st.held.clear();
            return false;
        };
        let mut emitted = 0;
        for h in &st.held {
            if h.to > quiet || h.from != st.released {
                break;
            }
            out.push(h.ev.raw.clone());
            st.released = h.to;
            emitted += 1;
        }
        st.held.drain(..emitted);
        if emitted > 0 {
            trim(st);
        }
        let contiguous = st.held.last().map_or(st.released, |h| h.to) == from;
        if !contiguous || end - st.released > self.plan.window {
            st.held.clear();
            return false;
        }
        st.held.push(Held {
            ev: ev.clone(),
            from,
            to: end,
        });
        true
    }

    /// Release everything held for `pos` (its block, choice or stream ended).
    fn flush(&mut self, pos: StreamPos, out: &mut Vec<Bytes>) -> Result<(), Vec<Arc<str>>> {
        // Held events that reach the end of a text clean to its end go out as received.
        if let (Some(f), Some(st)) = (&self.plan.quiet, self.texts.get_mut(&pos)) {
            if !st.held.is_empty() {
                let c = st.feed_quiet(f, &mut self.quiet_cache);
                let end = st.base + st.text.len();
                let chained = st.held.first().is_some_and(|h| h.from == st.released)
                    && st.held.windows(2).all(|w| w[0].to == w[1].from)
                    && st.held.last().is_some_and(|h| h.to == end);
                if chained && st.quiet.clear_to_end(f, c, st.released) {
                    out.extend(st.held.iter().map(|h| h.ev.raw.clone()));
                    st.released = end;
                }
                st.held.clear();
            }
        }
        if self.texts.contains_key(&pos) {
            let rel = self.release(pos, true)?;
            let template = self.texts.get(&pos).and_then(|s| s.template.clone());
            if !rel.is_empty() {
                if let Some((ev, path)) = template {
                    out.push(rewrite(&ev, &[(&path[..], rel.as_str())])?);
                }
            }
            self.texts.remove(&pos);
        }
        if let Some(ts) = self.tools.remove(&pos) {
            let Some((ev, path)) = ts.carrier.or(ts.last) else {
                return Ok(());
            };
            let mut out_o = std::mem::take(&mut self.outcome);
            let guarded = {
                let mut pass = Pass {
                    app: &self.app,
                    side: Side::Response,
                    redactor: &mut self.redactor,
                    out: &mut out_o,
                };
                let loc = || format!("stream.tool_call[{}.{}]", pos.choice, pos.item);
                self.set.guard_segment_text(
                    SegmentKind::ToolCallArguments,
                    &ts.args,
                    &loc,
                    &mut pass,
                )
            };
            let deny = out_o.deny.take();
            self.outcome = out_o;
            if let Some((_, rules)) = deny {
                return Err(rules);
            }
            let args = guarded.unwrap_or(ts.args);
            out.push(rewrite(&ev, &[(path.as_slice(), args.as_str())])?);
        }
        Ok(())
    }

    /// Release the safe part of a text position, redacted. `final_` releases everything.
    fn release(&mut self, pos: StreamPos, final_: bool) -> Result<String, Vec<Arc<str>>> {
        let Some(st) = self.texts.get_mut(&pos) else {
            return Ok(String::new());
        };
        // Held events are superseded: their text goes out with this release or a later one.
        st.held.clear();
        let len_abs = st.base + st.text.len();
        if st.released >= len_abs {
            return Ok(String::new());
        }
        // Where no rule can match, release without scanning (see `guard::quiet`).
        if let Some(f) = &self.plan.quiet {
            let c = st.feed_quiet(f, &mut self.quiet_cache);
            let to = if final_ {
                st.quiet.clear_to_end(f, c, st.released).then_some(len_abs)
            } else {
                st.quiet
                    .quiet_point(st.released)
                    .filter(|&q| q > st.released)
                    .map(|q| floor_boundary(&st.text, q - st.base) + st.base)
            };
            if let Some(to) = to.filter(|&to| to > st.released) {
                let slice = st
                    .text
                    .get(st.released - st.base..to - st.base)
                    .unwrap_or_default()
                    .to_string();
                st.released = to;
                trim(st);
                return Ok(slice);
            }
        }
        let hold = if final_ {
            len_abs
        } else {
            hold_point(&self.plan, st, &mut self.dfa_caches)
        };
        if !final_
            && floor_boundary(&st.text, hold.max(st.released) - st.base) + st.base <= st.released
        {
            // Nothing can be released yet: no need to scan (the held text is scanned when
            // it becomes releasable).
            return Ok(String::new());
        }
        let mut safe_abs = floor_boundary(&st.text, hold.max(st.released) - st.base) + st.base;
        let stable_limit = safe_abs;
        // The context margin before the release point, in folded bytes (what the scanner
        // reads: a fullwidth character is one byte of it).
        let scan_from = fold::back(
            &st.text,
            floor_boundary(&st.text, st.released - st.base),
            CONTEXT_MARGIN,
        );
        let region = &st.text[scan_from..];
        let offset = st.base + scan_from;
        let mut stable: Vec<Finding> = Vec::new();
        for mut f in self.set.find(region, Locations::ASSISTANT, &self.app) {
            f.start += offset;
            f.end += offset;
            // A finding that starts in text already released is an artifact of the scan
            // region starting inside released text (a digit run cut by the region start
            // reads as a shorter number): the release logic never lets out the start of a
            // match it can see whole, so the whole-text scan has no such match. Holding
            // from it would hold the rest of the text for good (and drop it at the end).
            if f.end <= st.released || f.start < st.released {
                continue;
            }
            if f.end <= stable_limit {
                stable.push(f);
            } else if f.start < safe_abs {
                safe_abs = f.start.max(st.released);
            }
        }
        stable.retain(|f| f.end <= safe_abs);
        let start_local = st.released - st.base;
        let end_local = safe_abs - st.base;
        let slice = st
            .text
            .get(start_local..end_local)
            .unwrap_or_default()
            .to_string();
        let released = st.released;
        let shifted: Vec<Finding> = stable
            .iter()
            .map(|f| Finding {
                rule: f.rule,
                start: f.start - released,
                end: f.end - released,
                kind: f.kind.clone(),
            })
            .collect();
        let redacted = if shifted.is_empty() {
            None
        } else {
            let mut pass = Pass {
                app: &self.app,
                side: Side::Response,
                redactor: &mut self.redactor,
                out: &mut self.outcome,
            };
            let loc = || {
                format!(
                    "stream.choice[{}].item[{}].part[{}]",
                    pos.choice, pos.item, pos.part
                )
            };
            self.set.apply_findings(&slice, &shifted, &loc, &mut pass)
        };
        if let Some((_, rules)) = self.outcome.deny.clone() {
            // Nothing of this region is released: the match may be inside it.
            return Err(rules);
        }
        if let Some(st) = self.texts.get_mut(&pos) {
            st.released = safe_abs;
            trim(st);
        }
        Ok(redacted.unwrap_or(slice))
    }

    /// End the stream cleanly in the provider's format.
    fn deny(&mut self, rules: Vec<Arc<str>>, out: &mut Vec<Bytes>) {
        tracing::info!(rules = ?rules, "stream denied by policy; ending it cleanly");
        for ev in self.termination() {
            out.push(encode(&ev));
        }
        self.denied = Some(Denied {
            status_rules: rules,
        });
    }

    fn termination(&self) -> Vec<SseEvent> {
        let data = |v: Value| SseEvent::with_data(v.to_string());
        let named = |name: &str, v: Value| {
            let mut e = SseEvent::with_data(v.to_string());
            e.event = Some(name.to_string());
            e
        };
        match self.format {
            ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions => {
                let mut choices: BTreeSet<usize> = self
                    .texts
                    .keys()
                    .chain(self.tools.keys())
                    .map(|p| p.choice)
                    .collect();
                if choices.is_empty() {
                    choices.insert(0);
                }
                let base = self
                    .last_chunk
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<Value>(&e.data).ok())
                    .unwrap_or_else(|| json!({"object": if self.format == ApiFormat::OpenAiChat { "chat.completion.chunk" } else { "text_completion" }}));
                let mut evs = Vec::new();
                for c in choices {
                    let mut v = base.clone();
                    let choice = if self.format == ApiFormat::OpenAiChat {
                        json!({"index": c, "delta": {}, "logprobs": null, "finish_reason": "content_filter"})
                    } else {
                        json!({"index": c, "text": "", "logprobs": null, "finish_reason": "content_filter"})
                    };
                    if let Some(o) = v.as_object_mut() {
                        o.insert("choices".into(), json!([choice]));
                        o.remove("usage");
                    }
                    evs.push(data(v));
                }
                evs.push(SseEvent::with_data("[DONE]"));
                evs
            }
            ApiFormat::AnthropicMessages => {
                let mut evs: Vec<SseEvent> = self
                    .open_blocks
                    .iter()
                    .map(|i| {
                        named(
                            "content_block_stop",
                            json!({"type": "content_block_stop", "index": i}),
                        )
                    })
                    .collect();
                evs.push(named(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": null}, "usage": {"output_tokens": 0}}),
                ));
                evs.push(named("message_stop", json!({"type": "message_stop"})));
                evs
            }
            ApiFormat::OpenAiResponses => {
                let mut resp = self
                    .response_obj
                    .clone()
                    .unwrap_or_else(|| json!({"object": "response", "output": []}));
                if let Some(o) = resp.as_object_mut() {
                    o.insert("status".into(), json!("incomplete"));
                    o.insert(
                        "incomplete_details".into(),
                        json!({"reason": "content_filter"}),
                    );
                }
                let seq = self.next_seq.max(self.last_seq.map_or(0, |n| n + 1));
                vec![named(
                    "response.incomplete",
                    json!({"type": "response.incomplete", "sequence_number": seq, "response": resp}),
                )]
            }
            ApiFormat::OpenAiEmbeddings => Vec::new(),
        }
    }
}

/// `ev` with the texts at the edit paths replaced ([`rebuild_event`]), and the log
/// probabilities of those texts removed ([`strip_logprobs`]): the event now carries other
/// text than the provider's tokens spell, and they could spell what the guard holds back
/// or redacted. Any failure fails the stream closed.
fn rewrite(ev: &SseEvent, edits: &[(&[PathElem], &str)]) -> Result<Bytes, Vec<Arc<str>>> {
    let failed = || vec![Arc::from("parapet/stream-rewrite-failed")];
    let mut new = rebuild_event(ev, edits).map_err(|_| failed())?;
    if may_have_logprobs(&new.data) {
        let mut v: Value = serde_json::from_str(&new.data).map_err(|_| failed())?;
        if strip_logprobs(&mut v, edits.iter().map(|(p, _)| *p)) {
            new.data = v.to_string();
            new.raw = encode(&new);
        }
    }
    Ok(new.raw)
}

/// Drop released text beyond [`TRIM_AFTER`] bytes (keeping the context margin).
fn trim(st: &mut TextState) {
    if st.released - st.base > TRIM_AFTER {
        let cut = fold::back(
            &st.text,
            floor_boundary(&st.text, st.released - st.base),
            CONTEXT_MARGIN,
        );
        st.text.drain(..cut);
        st.base += cut;
    }
}

/// Absolute offset before which text may be released: the fixed window, and for each long
/// rule whose anchor literal occurs (or may be starting at the very end), far enough back
/// that a match containing that anchor is never cut.
///
/// Incremental: the anchor DFA is stepped over each byte once (its state kept between
/// deltas, so an anchor split across deltas is found once complete); occurrences are kept
/// until the text is long enough for any match through them.
fn hold_point(
    plan: &HoldPlan,
    st: &mut TextState,
    caches: &mut Vec<Option<regex_automata::hybrid::dfa::Cache>>,
) -> usize {
    let len_abs = st.base + st.text.len();
    // The window counts folded bytes: a match of look-alike characters (fullwidth digits,
    // zero-width spaces between them) is longer in the text than in what the scanner reads.
    let mut hold = st.base + fold::back(&st.text, st.text.len(), plan.window);
    let Some(set) = &plan.anchors else {
        return hold;
    };
    let active = |i: usize| plan.active.get(i).copied().unwrap_or(false);
    // Everything below reads the text folded, as the scanner does (see `policy::fold`):
    // anchors written in look-alike characters are found, and lengths are folded bytes
    // (`fold::back` / `fold::reaches`; on ASCII they are plain byte counts).
    // Earliest byte a match containing an anchor occurrence that ends at local offset `e`
    // and starts at `q` can start at.
    let start_bound = |a: &crate::guard::Anchor, text: &str, q: usize, e: usize| {
        if a.at_start {
            q
        } else {
            fold::back(text, e, a.max_len + CONTEXT_MARGIN)
        }
    };
    // New occurrences: the DFA is fed each byte once, in order, keeping its state between
    // calls, so an occurrence split across deltas is reported when its last byte arrives.
    // Occurrences starting before the release point are of no use (dropped below).
    {
        use aho_corasick::automaton::Automaton;
        let dfa = &set.automaton;
        let from_abs = st.anchors_scanned.max(st.base);
        let mut sid = match st.anchor_state {
            Some(sid) if from_abs == st.anchors_scanned => sid,
            _ => set.start,
        };
        let (text, base) = (st.text.as_str(), st.base);
        let mut found = Vec::new();
        let _ = each_folded(text, from_abs - base, |_, e, b| {
            sid = dfa.next_state(aho_corasick::Anchored::No, sid, b);
            if !dfa.is_match(sid) {
                return ControlFlow::Continue(());
            }
            for m in 0..dfa.match_len(sid) {
                let pid = dfa.match_pattern(sid, m);
                let i = pid.as_usize();
                let Some(a) = set.list.get(i).filter(|_| active(i)) else {
                    continue;
                };
                // The occurrence's folded bytes end with the character ending at `e`.
                let q = base + fold::back(text, e, dfa.pattern_len(pid));
                if q < st.released {
                    continue;
                }
                // A match through the anchor starts at or after `start_bound` and at or
                // before `q`, so it is complete once the text has `max_len` (folded) bytes
                // past `q`, and the context margins.
                found.push(Pending {
                    at: q,
                    start: base + start_bound(a, text, q - base, e),
                    until: q,
                    need: a.max_len + 2 * CONTEXT_MARGIN,
                    anchor: i,
                    settled: false,
                });
            }
            ControlFlow::Continue(())
        });
        st.anchors.extend(found);
        st.anchor_state = Some(sid);
    }
    st.anchors_scanned = len_abs;
    // A match through a prefix anchor starts at it: once the rule's DFA, run anchored there,
    // dies at byte d, every such match ends by d, so the hold ends once the text has the
    // context margins past d (the scanner then sees the whole match, if there is one).
    for p in st.anchors.iter_mut().filter(|p| !p.settled) {
        let Some(di) = set.list.get(p.anchor).map(|a| a.sub) else {
            continue;
        };
        let (Some(Some(dfa)), Some(local)) = (set.dfas.get(di), p.at.checked_sub(st.base)) else {
            continue;
        };
        if caches.len() <= di {
            caches.resize_with(di + 1, || None);
        }
        let cache = caches[di].get_or_insert_with(|| dfa.create_cache());
        // Every start a match through this occurrence can have: the occurrence itself for a
        // prefix anchor, else each character from its reach (`start`) to it. A run that dies
        // before passing the occurrence cannot give a match through it.
        let first = p.start.max(st.base) - st.base;
        let mut earliest: Option<usize> = None;
        let mut last_death = local;
        let mut alive = false;
        for from in (first..=local).filter(|&f| st.text.is_char_boundary(f)) {
            match dfa_dies_at(dfa, cache, &st.text, from) {
                None => {
                    alive = true;
                    earliest.get_or_insert(from);
                }
                Some(d) => {
                    if d > local {
                        earliest.get_or_insert(from);
                    }
                    last_death = last_death.max(d);
                }
            }
        }
        match earliest {
            // No match can pass through this occurrence: no hold.
            None => {
                p.need = 0;
                p.settled = true;
            }
            Some(e) => {
                p.start = p.start.max(st.base + e);
                if !alive {
                    // Every match through it ends before `d`: the margins past `d` are
                    // enough (kept when the first bound is the nearer one).
                    let d = st.base + last_death;
                    if d + 2 * CONTEXT_MARGIN < p.until + p.need {
                        p.until = d;
                        p.need = 2 * CONTEXT_MARGIN;
                    }
                    p.settled = true;
                }
            }
        }
    }
    // Until the longest match from there could be complete, hold from its start.
    let released = st.released;
    let (text, base) = (st.text.as_str(), st.base);
    st.anchors
        .retain(|p| p.at >= released && !fold::reaches(text, p.until.max(base) - base, p.need));
    for p in &st.anchors {
        hold = hold.min(p.start);
    }
    // An anchor that may be starting in the last bytes (at most literal length - 1), read
    // folded: the last folded bytes with the offsets of their characters.
    let text = st.text.as_str();
    let tail = folded_tail(text, set.tail_longest.saturating_sub(1));
    let mut key = Vec::with_capacity(set.tail_longest);
    for k in 1..=tail.len() {
        let last = tail.get(tail.len() - k..).unwrap_or_default();
        let Some(&(_, q)) = last.first() else {
            continue;
        };
        key.clear();
        key.extend(last.iter().map(|(b, _)| b.to_ascii_lowercase()));
        for &(i, back) in set
            .tail_prefixes
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if active(i) {
                hold = hold.min(st.base + fold::back(text, q, back));
            }
        }
    }
    hold
}

/// The last `n` bytes `text` reads as (see `policy::fold`), each with the offset of the
/// character it comes from, in order.
fn folded_tail(text: &str, n: usize) -> Vec<(u8, usize)> {
    let b = text.as_bytes();
    if b.len() >= n && b.get(b.len() - n..).is_some_and(<[u8]>::is_ascii) {
        return (b.len() - n..b.len())
            .filter_map(|i| b.get(i).map(|&x| (x, i)))
            .collect();
    }
    let mut out = Vec::with_capacity(n);
    for (i, c) in text.char_indices().rev() {
        if out.len() >= n {
            break;
        }
        match fold::reads_as(c) {
            Some(Some(x)) => out.push((x, i)),
            Some(None) => {}
            None => {
                let len = c.len_utf8();
                for j in (i..i + len).rev() {
                    if let (true, Some(&x)) = (out.len() < n, b.get(j)) {
                        out.push((x, j));
                    }
                }
            }
        }
    }
    out.reverse();
    out
}

/// Feed `f` the bytes `text[from..]` reads as (see `policy::fold`): per byte, the start and
/// end of its character and the byte; stops when `f` breaks.
fn each_folded(
    text: &str,
    from: usize,
    mut f: impl FnMut(usize, usize, u8) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            f(i, i + 1, b)?;
            i += 1;
            continue;
        }
        let Some((len, read)) = fold::read_at(bytes, i) else {
            break;
        };
        match read {
            Some(Some(x)) => f(i, i + len, x)?,
            Some(None) => {}
            None => {
                for j in i..i + len {
                    f(i, i + len, bytes.get(j).copied().unwrap_or(0))?;
                }
            }
        }
        i += len;
    }
    ControlFlow::Continue(())
}

/// Where a forward run of `dfa` anchored at `from` dies in `text` (no match starting at
/// `from` can include that byte); `None` while it is alive at the end of the text, or if the
/// DFA gives up or quits (treated as alive: the hold stays).
fn dfa_dies_at(
    dfa: &regex_automata::hybrid::dfa::DFA,
    cache: &mut regex_automata::hybrid::dfa::Cache,
    text: &str,
    from: usize,
) -> Option<usize> {
    use regex_automata::{Anchored, Input};
    let input = Input::new(text).anchored(Anchored::Yes).range(from..);
    let mut sid = dfa.start_state_forward(cache, &input).ok()?;
    // Fed the text as the scanner reads it; a death is reported at the start of the
    // character whose byte killed the run.
    let mut died = None;
    let _ = each_folded(text, from, |s, _, b| {
        match dfa.next_state(cache, sid, b) {
            Ok(next) if next.is_dead() => died = Some(Some(s)),
            Ok(next) if next.is_quit() => died = Some(None),
            Ok(next) => {
                sid = next;
                return ControlFlow::Continue(());
            }
            Err(_) => died = Some(None),
        }
        ControlFlow::Break(())
    });
    died.flatten()
}

/// The `sequence_number` of a Responses event, found without parsing the JSON.
fn sequence_number(data: &[u8]) -> Option<u64> {
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"sequence_number\":"));
    let at = KEY.find(data)? + KEY.needle().len();
    let rest = data.get(at..)?;
    let rest = &rest[rest.iter().take_while(|c| c.is_ascii_whitespace()).count()..];
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(rest.get(..n)?).ok()?.parse().ok()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What a replayed stream delivered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The assembled `delta.content` text.
    pub content: String,
    /// Every `finish_reason` seen.
    pub finishes: Vec<String>,
    /// Whether `data: [DONE]` arrived.
    pub done: bool,
}

/// Replay `text` as an OpenAI chat SSE stream through a [`StreamGuard`]: deltas cut into
/// pieces of `sizes` characters (cycled, widened to char boundaries), the bytes fed in
/// pieces of `feed` bytes (cycled). Used by the streaming property tests and `parapet eval`.
pub fn replay_chat(
    set: Arc<PolicySet>,
    app: Applicable,
    text: &str,
    sizes: &[usize],
    feed: &[usize],
) -> Replay {
    let bytes = chat_stream(text, sizes);
    let mut g = StreamGuard::new(set, app, ApiFormat::OpenAiChat, Redactor::new());
    let mut out: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = feed
            .get(i % feed.len().max(1))
            .copied()
            .unwrap_or(7)
            .clamp(1, bytes.len() - at);
        for b in g.push(&bytes[at..at + n]) {
            out.extend_from_slice(&b);
        }
        at += n;
        i += 1;
    }
    for b in g.finish() {
        out.extend_from_slice(&b);
    }
    let mut dec = SseDecoder::new();
    let mut frames = dec.feed_vec(&out).unwrap_or_default();
    frames.extend(dec.finish());
    let mut replay = Replay {
        content: String::new(),
        finishes: Vec::new(),
        done: false,
    };
    for f in frames {
        let SseFrame::Event(e) = f else { continue };
        if e.data == "[DONE]" {
            replay.done = true;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        for c in v["choices"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(t) = c["delta"]["content"].as_str() {
                replay.content.push_str(t);
            }
            if let Some(r) = c["finish_reason"].as_str() {
                replay.finishes.push(r.to_string());
            }
        }
    }
    replay
}

/// An OpenAI chat SSE stream carrying `text` in deltas of `sizes` characters.
fn chat_stream(text: &str, sizes: &[usize]) -> Vec<u8> {
    let mut out = String::new();
    let mut rest = text;
    let mut i = 0;
    while !rest.is_empty() {
        let mut n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(4)
            .clamp(1, rest.len());
        while !rest.is_char_boundary(n) {
            n += 1;
        }
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        i += 1;
        let v = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        out.push_str(&format!("data: {v}\n\n"));
    }
    let end = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::guard::{policy, Ctx};

    fn shipped() -> Arc<PolicySet> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        Arc::new(policy::load_dir(&dir, &|_| None).unwrap())
    }

    fn with_deny() -> Arc<PolicySet> {
        let src = r#"
[policy]
id = "out"
[[rules]]
id = "codename"
keywords = ["project bluebird"]
direction = "response"
action = "deny"
[[rules]]
id = "mail"
detector = "email"
action = "redact"
"#;
        Arc::new(
            policy::compile_sources(&[(PathBuf::from("o.toml"), src.to_string())], &|_| None)
                .unwrap(),
        )
    }

    fn app(set: &PolicySet) -> Applicable {
        set.applicable(&Ctx {
            side: Side::Response,
            route: "r",
            model: Some("m"),
        })
    }

    /// The non-streamed result for the same text.
    fn whole(set: &PolicySet, text: &str) -> (String, bool) {
        let a = app(set);
        let mut out = Outcome::default();
        let mut r = Redactor::new();
        let mut pass = Pass {
            app: &a,
            side: Side::Response,
            redactor: &mut r,
            out: &mut out,
        };
        let red = set.guard_text(text, Locations::ASSISTANT, &|| "x".into(), &mut pass);
        (red.unwrap_or_else(|| text.to_string()), out.deny.is_some())
    }

    const PIECES: &[&str] = &[
        "hello",
        "the",
        "report",
        "is",
        "ready.",
        "Call",
        "me",
        "at",
        "+1 (415) 555-0132",
        "jane.doe@example.com",
        "card",
        "4111 1111 1111 1111",
        "SSN",
        "536-22-4876",
        "IBAN",
        "GB82 WEST 1234 5698 7654 32",
        "token",
        "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u",
        "ip",
        "10.20.30.40",
        "ümlaut",
        "日本語",
        "email:",
        "a@b.io",
        "\n",
        // Long rules (held around their anchor literals, not by the fixed window).
        // Both longer than the fixed window.
        "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAq7BFUpkGp3+XQmlR\nt1Zb2mF9kQ4xW8vN3pL6sD0hJ7gT5yR2uE1oI9aZ3cX8bV4nM6qK0wP2eS7fG1dH\n5jL9tY3rU8iO2pA6sD4fG7hJ1kL0zX9cV5bN3mQ8wE2rT6yU4iO1pA7sD9fG3hJ\n-----END PRIVATE KEY-----",
        "-----BEGIN",
        // Prefix and inner anchors of long rules, in prose and in real credentials.
        "author",
        "token",
        "access",
        "https://example.com/docs",
        "postgres://app:Xk9#2mLq@db.internal:5432/x",
        "https://admin:Xk9q2LmZ7vRt4WpN@db.internal.example.com:5432",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWUsImlhdCI6MTUxNjIzOTAyMn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        // Look-alike characters (read folded, see `policy::fold`): fullwidth digits, digits
        // between zero-width spaces, en dashes, a fullwidth at sign and dot, CJK text with
        // fullwidth punctuation and an ideographic space. (Kept apart by words in the fixed
        // order of `redacting_twice_changes_nothing`; numbers right after one another are
        // `adjacent_values_are_each_found`.)
        "５３６-２２-４８７６",
        "or",
        "4111\u{200B}1111\u{200B}1111\u{200B}\u{200B}\u{200B}1111",
        "or",
        "536–22–4876",
        "jane＠example．com",
        "東京、（株）　５月",
        // A long rule's value with its anchors in look-alike characters.
        "－－－－－BEGIN PRIVATE KEY－－－－－\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAq7BFUpkGp3+XQmlR\nt1Zb2mF9kQ4xW8vN3pL6sD0hJ7gT5yR2uE1oI9aZ3cX8bV4nM6qK0wP2eS7fG1dH\n－－－－－END PRIVATE KEY－－－－－",
        "\u{200B}",
    ];

    /// Placeholders without their numbers (`[EMAIL_2]` → `[EMAIL]`): texts redacted in one
    /// request share its numbering.
    fn unnumbered(t: &str) -> String {
        regex::Regex::new(r"\[([A-Z_]+)_\d+\]")
            .unwrap()
            .replace_all(t, "[$1]")
            .to_string()
    }

    /// `t` cut into pieces of the given sizes in turn (widened to char boundaries).
    fn cut(t: &str, sizes: &[usize]) -> Vec<String> {
        let mut pieces = Vec::new();
        let (mut at, mut k) = (0, 0);
        while at < t.len() {
            let mut e = (at + sizes[k % sizes.len()]).min(t.len());
            while !t.is_char_boundary(e) {
                e += 1;
            }
            pieces.push(t[at..e].to_string());
            at = e;
            k += 1;
        }
        pieces
    }

    /// Everything `g` emits for `sse` pushed in reads of the given sizes in turn, then
    /// finished.
    fn run_guard(mut g: StreamGuard, sse: &str, feed: &[usize]) -> String {
        let bytes = sse.as_bytes();
        let mut out = Vec::new();
        let (mut at, mut k) = (0, 0);
        while at < bytes.len() {
            let e = (at + feed[k % feed.len()]).min(bytes.len());
            out.extend(g.push(&bytes[at..e]));
            at = e;
            k += 1;
        }
        out.extend(g.finish());
        out.iter().map(|b| String::from_utf8_lossy(b)).collect()
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 1..40).prop_map(|v| v.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_split_streams_like_the_whole_text(
            text in text_strategy(),
            sizes in prop::collection::vec(1usize..16, 1..8),
            feed in prop::collection::vec(1usize..40, 1..8),
        ) {
            let set = shipped();
            let (expected, _) = whole(&set, &text);
            let a = app(&set);
            let Replay { content, finishes, done } = replay_chat(set, a, &text, &sizes, &feed);
            prop_assert_eq!(&content, &expected);
            prop_assert_eq!(finishes, vec!["stop".to_string()]);
            prop_assert!(done);
        }

        /// An Anthropic answer with a thinking block (ended by its signature) and a text
        /// block, split anywhere: both come out as their non-streamed redaction, and no
        /// thinking text follows the signature.
        #[test]
        fn anthropic_thinking_and_text_stream_like_their_whole_texts(
            a in text_strategy(),
            b in text_strategy(),
            sizes in prop::collection::vec(1usize..12, 1..6),
            feed in prop::collection::vec(1usize..64, 1..6),
        ) {
            let set = shipped();
            let ev = |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
            let mut sse = ev(json!({"type": "message_start", "message": {"id": "m", "type": "message",
                "role": "assistant", "model": "c", "content": [], "stop_reason": null,
                "usage": {"input_tokens": 1, "output_tokens": 1}}}));
            for (i, (text, kind, field)) in [(&a, "thinking", "thinking_delta"), (&b, "text", "text_delta")]
                .into_iter()
                .enumerate()
            {
                let key = if kind == "thinking" { "thinking" } else { "text" };
                sse.push_str(&ev(json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": kind, key: ""}})));
                for piece in cut(text, &sizes) {
                    sse.push_str(&ev(json!({"type": "content_block_delta", "index": i,
                        "delta": {"type": field, key: piece}})));
                }
                if kind == "thinking" {
                    sse.push_str(&ev(json!({"type": "content_block_delta", "index": i,
                        "delta": {"type": "signature_delta", "signature": "sig"}})));
                }
                sse.push_str(&ev(json!({"type": "content_block_stop", "index": i})));
            }
            sse.push_str(&ev(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 9}})));
            sse.push_str(&ev(json!({"type": "message_stop"})));
            let app_ = app(&set);
            let g = StreamGuard::new(set.clone(), app_, ApiFormat::AnthropicMessages, Redactor::new());
            let all = run_guard(g, &sse, &feed);
            let (mut thinking, mut answer, mut signed, mut after_signature) =
                (String::new(), String::new(), false, false);
            for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else { continue };
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("thinking_delta") => {
                        thinking.push_str(d["thinking"].as_str().unwrap_or_default());
                        after_signature |= signed;
                    }
                    Some("signature_delta") => signed = true,
                    Some("text_delta") => answer.push_str(d["text"].as_str().unwrap_or_default()),
                    _ => {}
                }
            }
            prop_assert!(signed);
            prop_assert!(!after_signature, "{}", all);
            prop_assert_eq!(unnumbered(&thinking), unnumbered(&whole(&set, &a).0));
            prop_assert_eq!(unnumbered(&answer), unnumbered(&whole(&set, &b).0));
        }

        /// Two choices streamed interleaved (each held, released and flushed on its own):
        /// each choice's text comes out as its non-streamed redaction (placeholder numbers
        /// aside: the two share the request's numbering).
        #[test]
        fn interleaved_choices_stream_like_their_whole_texts(
            a in text_strategy(),
            b in text_strategy(),
            sizes in prop::collection::vec(1usize..12, 1..6),
            feed in prop::collection::vec(1usize..64, 1..6),
        ) {
            let set = shipped();
            let chunk = |i: usize, delta: serde_json::Value, finish: serde_json::Value| {
                let v = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": i, "delta": delta, "finish_reason": finish}]});
                format!("data: {v}\n\n")
            };
            let (pa, pb) = (cut(&a, &sizes), cut(&b, &sizes));
            let mut sse = String::new();
            for k in 0..pa.len().max(pb.len()) {
                for (i, p) in [(0, &pa), (1, &pb)] {
                    if let Some(piece) = p.get(k) {
                        sse.push_str(&chunk(i, json!({"content": piece}), json!(null)));
                    }
                }
            }
            sse.push_str(&chunk(0, json!({}), json!("stop")));
            sse.push_str(&chunk(1, json!({}), json!("stop")));
            sse.push_str("data: [DONE]\n\n");
            let app_ = app(&set);
            let g = StreamGuard::new(set.clone(), app_, ApiFormat::OpenAiChat, Redactor::new());
            let all = run_guard(g, &sse, &feed);
            let mut got = [String::new(), String::new()];
            for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else { continue };
                let i = v["choices"][0]["index"].as_u64().unwrap_or(9) as usize;
                if let (Some(t), Some(slot)) = (v["choices"][0]["delta"]["content"].as_str(), got.get_mut(i)) {
                    slot.push_str(t);
                }
            }
            prop_assert_eq!(unnumbered(&got[0]), unnumbered(&whole(&set, &a).0));
            prop_assert_eq!(unnumbered(&got[1]), unnumbered(&whole(&set, &b).0));
        }

        #[test]
        fn deny_mid_stream_never_leaks_and_ends_cleanly(
            before in text_strategy(),
            after in text_strategy(),
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let set = with_deny();
            let text = format!("{before} Project Bluebird {after}");
            let a = app(&set);
            let Replay { content, finishes, done } = replay_chat(set, a, &text, &sizes, &[5, 11, 3]);
            prop_assert!(!content.to_lowercase().contains("bluebird"), "{}", content);
            // The email addresses among the pieces are redacted (other `@`s are not emails).
            prop_assert!(!content.contains("jane.doe@example.com") && !content.contains("a@b.io"), "{}", content);
            prop_assert_eq!(finishes, vec!["content_filter".to_string()]);
            prop_assert!(done);
            prop_assert!(text.starts_with(&content[..0]));
        }
    }

    /// A provider error event can quote the request: its text is read by the response rules
    /// like the answer's (redacted in place, the event still parses with its shape; a deny
    /// ends the stream cleanly), in any split. Before, error events were relayed unread.
    #[test]
    fn error_events_are_guarded_like_the_answer() {
        let run = |set: Arc<PolicySet>, format: ApiFormat, sse: &str, feed: usize| {
            let a = app(&set);
            let mut g = StreamGuard::new(set, a, format, Redactor::new());
            let mut out = Vec::new();
            for piece in sse.as_bytes().chunks(feed) {
                out.extend(g.push(piece));
            }
            out.extend(g.finish());
            let text: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
            (text, g.outcome().violations.clone(), g.denied().is_some())
        };
        let chunk = |delta: serde_json::Value| {
            let v = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
            format!("data: {v}\n\n")
        };
        let error = json!({"error": {"message": "'jane.doe@example.com' is not one of ['system', 'user'] - 'messages.0.role'",
            "type": "invalid_request_error", "param": null, "code": null}});
        let sse = format!(
            "{}{}data: {error}\n\n",
            chunk(json!({"role": "assistant", "content": ""})),
            chunk(json!({"content": "Hello"}))
        );
        for feed in [1, 7, 64, 4096] {
            let (text, violations, denied) = run(shipped(), ApiFormat::OpenAiChat, &sse, feed);
            assert!(!text.contains("jane.doe@example.com"), "{text}");
            assert!(!denied);
            let last = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .next_back()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(last).unwrap();
            assert_eq!(
                v["error"]["message"],
                "'[EMAIL_1]' is not one of ['system', 'user'] - 'messages.0.role'",
                "{text}"
            );
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert!(v["error"]["param"].is_null());
            assert!(text.contains("Hello"), "{text}");
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert_eq!(violations[0].location, "error#/error/message");
        }
        // Data that is not an event of the format (not JSON) is read whole as well.
        let junk = format!(
            "{}data: mail jane.doe@example.com now\n\ndata: [DONE]\n\n",
            chunk(json!({"content": "Hi"}))
        );
        for feed in [1, 5, 4096] {
            let (text, violations, denied) = run(shipped(), ApiFormat::OpenAiChat, &junk, feed);
            assert!(!text.contains("jane.doe@example.com"), "{text}");
            assert!(text.contains("data: mail [EMAIL_1] now\n\n"), "{text}");
            assert!(
                text.contains("Hi") && text.ends_with("data: [DONE]\n\n"),
                "{text}"
            );
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].location, "error");
            assert!(!denied);
        }
        // A clean error event goes out byte for byte.
        let clean = "data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\"}}\n\n";
        let (text, violations, _) = run(shipped(), ApiFormat::OpenAiChat, clean, 5);
        assert_eq!(text, clean);
        assert!(violations.is_empty());
        // Anthropic `event: error` quoting a denied phrase: the stream ends as a refusal.
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n\
                   event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"unknown codename Project Bluebird\"}}\n\n";
        for feed in [3, 4096] {
            let (text, _, denied) = run(with_deny(), ApiFormat::AnthropicMessages, sse, feed);
            assert!(denied);
            assert!(!text.to_lowercase().contains("bluebird"), "{text}");
            assert!(text.contains("\"stop_reason\":\"refusal\""), "{text}");
            assert!(text.contains("event: message_stop"), "{text}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let set = shipped();
        let text = PIECES.join(" ");
        let (once, _) = whole(&set, &text);
        let (twice, _) = whole(&set, &once);
        assert_eq!(once, twice);
        assert!(!once.contains("jane.doe@example.com"));
        // Numbers right after one another: each is found in the first pass.
        let text = "SSN 536-22-4876 4111 1111 1111 1111 and ５３６-２２-４８７６ \
                    4111\u{200B}1111\u{200B}1111\u{200B}1111, 4111-1111-1111-1111 536 22 4876.";
        let (once, _) = whole(&set, text);
        let (twice, _) = whole(&set, &once);
        assert_eq!(once, twice);
        assert!(
            !once.contains("1111 1111") && !once.contains("1111-1111"),
            "{once}"
        );
    }

    /// Values of every digit-heavy type written right after one another (a space, a comma,
    /// a slash or a line between them, as in tables and forms): each is found in the first
    /// pass (none stays visible), redacting again changes nothing, and a stream split into
    /// 1-byte and 7-byte deltas gives the same text.
    #[test]
    fn adjacent_values_are_each_found() {
        // The shipped PII policy with the IP rules (`log` there) redacting too.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let pii = std::fs::read_to_string(dir.join("pii.toml")).unwrap();
        let pii = pii.replace(r#"action = "log""#, r#"action = "redact""#);
        let set = Arc::new(
            policy::compile_sources(&[(PathBuf::from("pii.toml"), pii)], &|_| None).unwrap(),
        );
        const VALUES: &[&str] = &[
            "jane.doe@example.com",
            "+44 20 7946 0958",
            "+1 415 555 0132",
            "(415) 555-0132",
            "415-555-0132",
            "4111 1111 1111 1111",
            "4111111111111111",
            "5500-0000-0000-0004",
            "3782 822463 10005",
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "GB82 WEST 1234 5698 7654 32",
            "536-22-8745",
            "10.20.30.40",
            "2001:db8::8a2e:370:7334",
        ];
        let mut failures = Vec::new();
        for a in VALUES {
            for b in VALUES {
                for sep in [" ", ", ", " / ", "\n", "; "] {
                    let text = format!("Details: {a}{sep}{b} end");
                    let (once, _) = whole(&set, &text);
                    let (twice, _) = whole(&set, &once);
                    let visible = [a, b].into_iter().find(|v| once.contains(**v));
                    if visible.is_some() || once != twice {
                        failures.push(format!("{text:?} -> {once:?} -> {twice:?}"));
                        continue;
                    }
                    if sep == " " {
                        for sizes in [&[1usize][..], &[7]] {
                            let r = replay_chat(set.clone(), app(&set), &text, sizes, &[5, 11, 3]);
                            if r.content != once {
                                failures
                                    .push(format!("{text:?} streamed {sizes:?}: {:?}", r.content));
                            }
                        }
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// A connection string longer than the fixed window never leaks, whatever the delta
    /// size: the hold around its anchors lasts until a match through them could be complete.
    #[test]
    fn a_long_match_through_an_inner_anchor_never_leaks() {
        let set = shipped();
        let password = "q7Hk2LmZ9xTb4RwN8vCp3YsF6gJd1KaE5uQo0WiXr7Bn2MhV9tLc4ZyP8sGf3JkD6aNe1RuT5wQm0XbC7vHo2YiL9pKs4FgA8zEj3MdW6nRt1UqB5cJx0VyG";
        for prefix in ["", "Here is the DSN you asked for: "] {
            let text = format!(
                "{prefix}postgres://admin:{password}@db.internal:5432/app and that is all."
            );
            let (expected, _) = whole(&set, &text);
            assert!(!expected.contains(&password[..20]), "{expected}");
            for size in [1usize, 4, 9] {
                let a = app(&set);
                let Replay { content, .. } = replay_chat(set.clone(), a, &text, &[size], &[7]);
                assert!(
                    !content.contains(&password[..20]),
                    "delta {size}: {content}"
                );
                assert_eq!(content, expected, "delta {size}");
            }
        }
    }

    /// Prose full of words that start long rules' prefix anchors (`auth`, `toke`, `pass`,
    /// `acce`, `http`) is not held for those rules' longest matches: each rule's DFA dies a
    /// few bytes after the word, and the hold ends there.
    #[test]
    fn anchor_words_in_prose_do_not_stall_the_stream() {
        let set = shipped();
        let text = "The author of the token list passed access notes to https://example.com/docs for review. ".repeat(20);
        let (expected, _) = whole(&set, &text);
        assert_eq!(expected, text, "nothing to redact here");
        let a = app(&set);
        let mut g = StreamGuard::new(set.clone(), a, ApiFormat::OpenAiChat, Redactor::new());
        let bytes = super::chat_stream(&text, &[4]);
        let half = bytes.len() / 2;
        // Text released so far (the deltas of the events sent), against the text received.
        let released: usize = g
            .push(&bytes[..half])
            .iter()
            .flat_map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| {
                l.strip_prefix("data: ")
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
            })
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::len))
            .sum();
        let received = text.len() / 2;
        assert!(
            released + 300 > received,
            "held back too much: {released} of ~{received}"
        );
        // And a real credential URL in such prose is still redacted at every delta size.
        let secret =
            format!("{text}see https://admin:Xk9q2LmZ7vRt4WpN@db.internal.example.com:5432 now");
        let (expected, _) = whole(&set, &secret);
        assert!(!expected.contains("Xk9q2LmZ7vRt4WpN"), "{expected}");
        for size in [1usize, 3, 8] {
            let a = app(&set);
            let Replay { content, .. } = replay_chat(set.clone(), a, &secret, &[size], &[5]);
            assert_eq!(content, expected, "delta {size}");
        }
    }

    #[test]
    fn look_alike_values_never_reach_the_client_at_any_split() {
        let set = shipped();
        let text = "SSN ５３６-２２-４８７６, card 4\u{200B}1\u{200B}1\u{200B}1 1111 1111 1111 \
                    and mail jane＠example．com; done.";
        // A card with invisible characters between its digits: longer in bytes than the
        // hold-back window, which counts the folded bytes the scanner reads.
        let spaced: String = "Card 4111111111111111."
            .chars()
            .map(|c| format!("{c}\u{200B}\u{2060}\u{FEFF}\u{200C}"))
            .collect();
        let window = set.hold_plan(&app(&set), Locations::ASSISTANT).window;
        assert!(spaced.len() > window);
        for text in [text.to_string(), spaced] {
            check_look_alike_stream(&set, &text);
        }
        // A token of a long rule typed in fullwidth letters fits in the window: held whole.
        let wide: String = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u"
            .chars()
            .map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c))
            .collect();
        let text = format!("Use {wide} to log in.");
        let (expected, _) = whole(&set, &text);
        assert_eq!(expected, "Use [API_KEY_1] to log in.");
        // Long values of long rules (held around their anchors, which are read folded too):
        // a PEM block with fullwidth dashes, a connection string with a fullwidth `://` and
        // zero-width spaces, both far longer than the window.
        let body = "MIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAq7BFUpkGp3+XQmlR\n\
                    t1Zb2mF9kQ4xW8vN3pL6sD0hJ7gT5yR2uE1oI9aZ3cX8bV4nM6qK0wP2eS7fG1dH\n\
                    5jL9tY3rU8iO2pA6sD4fG7hJ1kL0zX9cV5bN3mQ8wE2rT6yU4iO1pA7sD9fG3hJ";
        let dashes = "－－－－－";
        let pem = format!(
            "Here: {dashes}BEGIN PRIVATE KEY{dashes}\n{body}\n{dashes}END PRIVATE KEY{dashes} ok"
        );
        let conn = format!(
            "db postgres：／／app\u{200B}:Xk9#2mLq@db.internal.example.com:5432/{} ok",
            "x".repeat(150)
        );
        for text in [pem, conn] {
            let (expected, _) = whole(&set, &text);
            assert!(
                !expected.contains("MIIBVg") && !expected.contains("Xk9#2mLq"),
                "{expected}"
            );
            assert!(text.len() > 200);
            streams_like(&set, &text, &expected, &[1, 2, 5, 16], &[9]);
        }
        streams_like(&set, &text, &expected, &[1, 3, 8], &[5]);
    }

    /// `text` streamed in chunks of each size gives `expected` (placeholder numbers aside).
    fn streams_like(
        set: &Arc<PolicySet>,
        text: &str,
        expected: &str,
        sizes: &[usize],
        feed: &[usize],
    ) {
        for &size in sizes {
            let a = app(set);
            let Replay { content, .. } = replay_chat(set.clone(), a, text, &[size], feed);
            assert_eq!(
                unnumbered(&content),
                unnumbered(expected),
                "chunks of {size}"
            );
        }
    }

    fn check_look_alike_stream(set: &Arc<PolicySet>, text: &str) {
        let (expected, _) = whole(set, text);
        assert!(
            expected.contains("[CREDIT_CARD") || expected.contains("****"),
            "{expected}"
        );
        for size in [1, 2, 3, 5, 8] {
            let a = app(set);
            let Replay { content, .. } = replay_chat(set.clone(), a, text, &[size], &[7, 1, 13]);
            assert_eq!(content, expected, "chunks of {size}");
            // Read as the scanner reads it (invisible characters dropped): no value left.
            let read = crate::policy::fold::fold(&content).map_or(content.clone(), |f| f.text);
            for value in ["536", "4876", "1111 1111", "4111", "example.com"] {
                assert!(!read.contains(value), "{value} leaked: {content}");
            }
        }
    }

    #[test]
    fn clean_text_streams_before_the_end() {
        let set = shipped();
        let text = "plain words without anything sensitive in them at all, ".repeat(20);
        let a = app(&set);
        let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiChat, Redactor::new());
        let bytes = super::chat_stream(&text, &[8]);
        let half = bytes.len() / 2;
        let early: usize = g.push(&bytes[..half]).iter().map(|b| b.len()).sum();
        assert!(early > half / 2, "held back too much: {early} of {half}");
    }

    /// The `delta.content` texts of chat chunks, joined.
    fn chat_contents(out: &[Bytes]) -> String {
        let all: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
        let mut joined = String::new();
        for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
                if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                    joined.push_str(t);
                }
            }
        }
        joined
    }

    /// An event repeating a key (`"content": "<secret>", "content": "ok"`): the guard would
    /// read one value and a client keeping the first the other, so the stream ends there,
    /// cleanly, without that event. Before, the guard read "ok" and relayed the raw event.
    #[test]
    fn an_event_repeating_a_key_ends_the_stream() {
        let set = shipped();
        let key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
        let head = r#"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]}"#;
        let dup = format!(
            r#"data: {{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"token {key}","content":"ok"}},"finish_reason":null}}]}}"#
        );
        let sse = format!("{head}\n\n{dup}\n\ndata: [DONE]\n\n");
        for feed in [vec![sse.len()], vec![7], vec![1]] {
            let a = app(&set);
            let g = StreamGuard::new(set.clone(), a, ApiFormat::OpenAiChat, Redactor::new());
            let out = run_guard(g, &sse, &feed);
            assert!(!out.contains("ghp_R8x2"), "{out}");
            assert!(
                out.contains("\"finish_reason\":\"content_filter\""),
                "{out}"
            );
            assert!(out.trim_end().ends_with("data: [DONE]"), "{out}");
        }
    }

    #[test]
    fn clean_words_are_released_as_they_end() {
        // Far shorter than the hold-back window: without the quiet filter nothing of it
        // would reach the client before the stream ends.
        let set = shipped();
        let a = app(&set);
        let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiChat, Redactor::new());
        let text = "Sure, here is the plan for today. Then";
        let bytes = super::chat_stream(text, &[4]);
        let upto = bytes
            .windows(6)
            .position(|w| w == b"[DONE]")
            .unwrap_or(bytes.len());
        // Everything but the finishing chunk.
        let cut = bytes[..upto - 8]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap_or(0)
            + 1;
        let early = g.push(&bytes[..cut]);
        assert!(g.plan.quiet.is_some());
        // "Then" may still start a value (an address, say): held; the rest is out.
        assert_eq!(chat_contents(&early), "Sure, here is the plan for today. ");
        let mut rest = g.push(&bytes[cut..]);
        rest.extend(g.finish());
        assert_eq!(chat_contents(&rest), "Then");
    }

    #[test]
    fn padded_chunks_read_like_plain_ones() {
        // OpenAI pads each chunk with a random `obfuscation` string: the stream lane must
        // read the text the same way and the guard must still see values split across
        // chunks.
        let text = "Write to jane.doe@example.com or call +1 415 555 0132 today, thanks. ";
        let plain = super::chat_stream(text, &[3, 5, 2]);
        let padded: String = String::from_utf8_lossy(&plain)
            .lines()
            .enumerate()
            .map(|(i, l)| match l.strip_suffix('}') {
                Some(body) if l.contains("chat.completion.chunk") => {
                    let pad = "x".repeat(i % 7 + 1);
                    format!("{body},\"obfuscation\":\"{pad}\"}}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        let run = |bytes: &[u8]| {
            let set = shipped();
            let a = app(&set);
            let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiChat, Redactor::new());
            let mut out = g.push(bytes);
            out.extend(g.finish());
            (chat_contents(&out), g.lane_hits)
        };
        let (want, plain_hits) = run(&plain);
        assert!(padded.contains("\"obfuscation\":\"xx\"}"), "{padded}");
        let (got, padded_hits) = run(padded.as_bytes());
        assert_eq!(got, want);
        // Every text chunk after the first two (the first also carries the stream's id,
        // the second starts the lane) is read without a parse, padded or not.
        let chunks = plain.windows(7).filter(|w| w == b"content").count();
        assert_eq!(plain_hits, chunks - 2);
        assert_eq!(padded_hits, chunks - 2);
        assert!(
            !want.contains("jane.doe") && !want.contains("555"),
            "{want}"
        );
    }

    /// A Responses event stream built event by event: `type` and a gapless
    /// `sequence_number` are set on each event's data.
    #[derive(Default)]
    struct ResponsesSse {
        text: String,
        seq: u64,
    }

    impl ResponsesSse {
        fn push(&mut self, name: &str, mut data: serde_json::Value) {
            data["type"] = json!(name);
            data["sequence_number"] = json!(self.seq);
            self.seq += 1;
            self.text
                .push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
    }

    #[test]
    fn responses_logprobs_of_rewritten_deltas_are_removed() {
        let set = shipped();
        let a = app(&set);
        let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiResponses, Redactor::new());
        let text = "write to jane.doe@example.com today";
        let mut sse = ResponsesSse::default();
        let mut ev = |name: &str, data: serde_json::Value| sse.push(name, data);
        ev(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"id": "m1", "type": "message", "role": "assistant", "content": []}}),
        );
        for piece in text.as_bytes().chunks(5) {
            let piece = std::str::from_utf8(piece).unwrap();
            ev(
                "response.output_text.delta",
                json!({"type": "response.output_text.delta",
                "item_id": "m1", "output_index": 0, "content_index": 0, "delta": piece,
                "logprobs": [{"token": piece, "logprob": -0.1, "top_logprobs": []}]}),
            );
        }
        ev(
            "response.output_text.done",
            json!({"type": "response.output_text.done",
            "item_id": "m1", "output_index": 0, "content_index": 0, "text": text,
            "logprobs": [{"token": text, "logprob": -0.1, "top_logprobs": []}]}),
        );
        let mut out = g.push(sse.text.as_bytes());
        out.extend(g.finish());
        let all: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
        assert!(!all.contains("jane"), "{all}");
        assert!(!all.contains("example.com"), "{all}");
        assert!(all.contains("[EMAIL_1]"), "{all}");
        // Only deltas that went out as received keep their tokens: the clean ones before
        // the address. Every rewritten delta lost them (joined they would spell
        // `jane.doe@example.com`).
        let mut tokens = String::new();
        for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            for lp in v["logprobs"].as_array().into_iter().flatten() {
                tokens.push_str(lp["token"].as_str().unwrap_or_default());
            }
        }
        assert!("write to ".starts_with(&tokens), "{tokens:?} in {all}");
        assert_eq!(tokens, "write", "the clean first delta keeps its tokens");
    }

    #[test]
    fn numbered_responses_deltas_are_read_without_a_parse() {
        let set = shipped();
        let a = app(&set);
        let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiResponses, Redactor::new());
        let text = "Mail jane.doe@example.com the plan for the ninth, please.";
        let mut sse = ResponsesSse::default();
        let mut ev = |name: &str, data: serde_json::Value| sse.push(name, data);
        ev(
            "response.output_item.added",
            json!({"output_index": 0,
            "item": {"id": "m1", "type": "message", "role": "assistant", "content": []}}),
        );
        let pieces: Vec<&str> = text
            .as_bytes()
            .chunks(3)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect();
        for piece in &pieces {
            ev(
                "response.output_text.delta",
                json!({"item_id": "m1", "output_index": 0, "content_index": 0,
                "delta": piece, "logprobs": []}),
            );
        }
        ev(
            "response.output_text.done",
            json!({"item_id": "m1", "output_index": 0, "content_index": 0, "text": text}),
        );
        let mut out = g.push(sse.text.as_bytes());
        out.extend(g.finish());
        assert_eq!(g.lane_hits, pieces.len() - 1);
        let all: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
        let mut deltas = String::new();
        let mut seqs = Vec::new();
        for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            seqs.push(v["sequence_number"].as_u64().unwrap());
            if v["type"] == "response.output_text.delta" {
                deltas.push_str(v["delta"].as_str().unwrap());
            }
        }
        assert_eq!(deltas, "Mail [EMAIL_1] the plan for the ninth, please.");
        // Renumbered without gaps, in the order sent.
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn responses_reasoning_summaries_are_guarded_like_answer_text() {
        let set = shipped();
        let a = app(&set);
        let mut g = StreamGuard::new(set, a, ApiFormat::OpenAiResponses, Redactor::new());
        let summary = "The user wants mail sent to jane.doe@example.com, so I will draft it.";
        let mut sse = ResponsesSse::default();
        let mut ev = |name: &str, data: serde_json::Value| sse.push(name, data);
        ev(
            "response.output_item.added",
            json!({"output_index": 0,
            "item": {"id": "rs1", "type": "reasoning", "summary": []}}),
        );
        ev(
            "response.reasoning_summary_part.added",
            json!({"item_id": "rs1", "output_index": 0,
            "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
        );
        for piece in summary.as_bytes().chunks(3) {
            ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": "rs1",
                "output_index": 0, "summary_index": 0,
                "delta": std::str::from_utf8(piece).unwrap()}),
            );
        }
        ev(
            "response.reasoning_summary_text.done",
            json!({"item_id": "rs1", "output_index": 0,
            "summary_index": 0, "text": summary}),
        );
        ev(
            "response.reasoning_summary_part.done",
            json!({"item_id": "rs1", "output_index": 0,
            "summary_index": 0, "part": {"type": "summary_text", "text": summary}}),
        );
        ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": {"id": "rs1",
            "type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]}}),
        );
        let mut out = g.push(sse.text.as_bytes());
        out.extend(g.finish());
        let all: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
        assert!(!all.contains("jane.doe"), "{all}");
        // The deltas, joined, are the redacted summary; every full copy is redacted alike.
        let mut deltas = String::new();
        for data in all.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if v["type"] == "response.reasoning_summary_text.delta" {
                deltas.push_str(v["delta"].as_str().unwrap());
            }
        }
        let redacted = "The user wants mail sent to [EMAIL_1], so I will draft it.";
        assert_eq!(deltas, redacted);
        // `.done`, `summary_part.done` and `output_item.done` (the deltas release the
        // text in pieces as it becomes safe).
        assert_eq!(all.matches(redacted).count(), 3, "{all}");
    }
}

#[cfg(test)]
mod regressions {
    use super::*;
    use crate::guard::{policy, Ctx};

    /// Found by the any-split property test: byte-by-byte, the scan region once started
    /// inside a released run of card-like digit groups and read a shorter valid card
    /// starting before the release point; holding from it held the rest of the answer
    /// for good, and the end of the stream dropped it.
    #[test]
    fn a_digit_run_cut_by_the_scan_region_never_holds_the_rest() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = Arc::new(policy::load_dir(&dir, &|_| None).unwrap());
        let a = set.applicable(&Ctx {
            side: Side::Response,
            route: "openai",
            model: Some("gpt-4o"),
        });
        let url = "postgres://app:Xk9#2mLq@db.internal:5432/x";
        let text = format!(
            "GB82 WEST 1234 5698 7654 32 536-22-4876 4111 1111 1111 1111 4111 1111 1111 1111 {url} {url} {url}"
        );
        let r = replay_chat(set, a, &text, &[1], &[1]);
        assert_eq!(
            r.content,
            "[IBAN_1] [US_SSN_1] ***************1111 ***************1111 \
             [CONNECTION_STRING_1]/x [CONNECTION_STRING_1]/x [CONNECTION_STRING_1]/x"
        );
        // (Before the scanner searched again inside rejected runs, the two cards after the
        // SSN stayed visible in the stream and in the whole text alike.)
    }
}
