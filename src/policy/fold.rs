//! Look-alike folding before a scan: the characters a value can be written with to slip past
//! ASCII patterns (fullwidth forms, other scripts' decimal digits, Unicode spaces and dashes,
//! invisible format characters) mapped to what the patterns read, with the map back to the
//! original byte offsets.
//!
//! `５３６-２２-８７４５`, `4111\u{200B}1111\u{200B}1111\u{200B}1111`, `536–22–8745` (en dash)
//! or `jane＠example.com` are the same values to a reader; folded, the built-in detectors and
//! their validators see `536-22-8745`, `4111111111111111`, `jane@example.com`. Matches found
//! in the folded text are mapped back to spans of the original text, so redaction replaces the
//! characters that were actually sent.
//!
//! Each folded character is one ASCII byte or nothing (an invisible character is dropped);
//! every other character is copied unchanged. ASCII text and text without a foldable
//! character are not copied at all ([`fold`] returns `None`).

/// A folded text and, per byte of it, the original span of the character it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub text: String,
    /// Original start offset of the character each folded byte belongs to (per byte).
    starts: Vec<usize>,
    /// Original end offset of the character each folded byte belongs to (per byte).
    ends: Vec<usize>,
}

impl Folded {
    /// The original span of the folded span `start..end` (`start < end`, inside the folded
    /// text): from the start of its first character to the end of its last. Invisible
    /// characters between them are inside the span; those just outside are not.
    pub fn original(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if start >= end {
            return None;
        }
        let s = *self.starts.get(start)?;
        let e = *self.ends.get(end - 1)?;
        (s < e).then_some((s, e))
    }
}

/// What one character reads as to the scanner: an ASCII byte, nothing (an invisible
/// character), or itself (`None`).
pub fn reads_as(c: char) -> Option<Option<u8>> {
    let cp = u32::from(c);
    if cp < 0x80 {
        return None;
    }
    // Invisible format characters: soft hyphen, Mongolian vowel separator, zero-width
    // space / non-joiner / joiner, word joiner, byte-order mark.
    if matches!(cp, 0x00AD | 0x180E | 0x200B..=0x200D | 0x2060 | 0xFEFF) {
        return Some(None);
    }
    // Spaces: no-break, en quad … hair space, narrow no-break, medium mathematical,
    // ideographic.
    if matches!(cp, 0x00A0 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000) {
        return Some(Some(b' '));
    }
    // Hyphens and dashes, minus sign, small and fullwidth-compatible hyphen-minus.
    if matches!(cp, 0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63) {
        return Some(Some(b'-'));
    }
    // Fullwidth forms of ASCII `!` … `~`.
    if (0xFF01..=0xFF5E).contains(&cp) {
        return u8::try_from(cp - 0xFEE0).ok().map(Some);
    }
    digit_value(cp).map(|d| Some(b'0' + d))
}

/// The character starting at byte `i` of UTF-8 `bytes`: its length and what it reads as
/// ([`reads_as`]; `None` for ASCII and for characters read as themselves), or `None` when it
/// is cut by the end of `bytes` (or `i` is past it).
pub fn read_at(bytes: &[u8], i: usize) -> Option<(usize, Option<Option<u8>>)> {
    let b = *bytes.get(i)?;
    let len = match b {
        0x00..=0x7F => return Some((1, None)),
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        // A continuation byte (not a character start): read as itself.
        _ => return Some((1, None)),
    };
    let ch = bytes.get(i..i + len)?;
    if !may_fold(ch) {
        return Some((len, None));
    }
    let read = std::str::from_utf8(ch)
        .ok()
        .and_then(|s| s.chars().next())
        .and_then(reads_as);
    Some((len, read))
}

/// Whether `text[from..]` reads as at least `want` bytes (see [`back`]).
pub fn reaches(text: &str, from: usize, want: usize) -> bool {
    let Some(tail) = text.get(from..) else {
        return false;
    };
    // Folding never lengthens a text; ASCII reads as itself.
    if tail.len() < want {
        return false;
    }
    if tail.as_bytes().get(..want).is_some_and(<[u8]>::is_ascii) {
        return true;
    }
    let mut got = 0;
    for c in tail.chars() {
        if got >= want {
            return true;
        }
        got += match reads_as(c) {
            Some(Some(_)) => 1,
            Some(None) => 0,
            None => c.len_utf8(),
        };
    }
    got >= want
}

/// Start of the shortest tail of `text[..end]` whose folding is at least `want` bytes long
/// (0 when all of it is shorter): how far back a streamed text must be held or re-read so
/// that `want` bytes of what the scanner reads lie after it. Equals `end - want` for ASCII;
/// a fullwidth character counts one byte, an invisible one nothing. `end` must be a char
/// boundary; the result is one.
pub fn back(text: &str, end: usize, want: usize) -> usize {
    let Some(head) = text.get(..end) else {
        return 0;
    };
    if end <= want {
        // Folding never lengthens a text.
        return 0;
    }
    if head
        .as_bytes()
        .get(end - want..)
        .is_some_and(<[u8]>::is_ascii)
    {
        return end - want;
    }
    let mut got = 0;
    for (i, c) in head.char_indices().rev() {
        got += match reads_as(c) {
            Some(Some(_)) => 1,
            Some(None) => 0,
            None => c.len_utf8(),
        };
        if got >= want {
            return i;
        }
    }
    0
}

/// The zero of each block of ten decimal digits (Unicode category Nd) outside ASCII that
/// a number is written with in practice: Arabic-Indic, Extended Arabic-Indic, NKo, the
/// Indic scripts, Thai, Lao, Tibetan, Myanmar, Khmer, Mongolian, fullwidth, the
/// mathematical digit styles.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0xA620, 0xA8D0,
    0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6,
    0x1FBF0,
];

/// The value of a digit of one of the [`DIGIT_ZEROS`] blocks (sorted: a binary search, so
/// text in other scripts costs a few comparisons per character).
fn digit_value(cp: u32) -> Option<u8> {
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let z = *DIGIT_ZEROS.get(i.checked_sub(1)?)?;
    if cp < z + 10 {
        u8::try_from(cp - z).ok()
    } else {
        None
    }
}

/// First bytes of the UTF-8 encodings of every character [`reads_as`] changes (CJK,
/// Cyrillic, Greek and most other scripts start with other bytes and are skipped without
/// decoding).
const LEADS: [bool; 256] = {
    let mut t = [false; 256];
    let leads: [u8; 10] = [
        // (0xE3, the ideographic space's, is checked only in texts that contain one: it
        // also starts every kana.)
        0xC2, 0xD9, 0xDB, 0xDF, 0xE0, 0xE1, 0xE2, 0xEA, 0xEF, 0xF0,
    ];
    let mut i = 0;
    while i < leads.len() {
        t[leads[i] as usize] = true;
        i += 1;
    }
    t
};

/// UTF-8 of U+3000 IDEOGRAPHIC SPACE.
const IDEOGRAPHIC_SPACE: &[u8] = "\u{3000}".as_bytes();

/// For a character at the start of `ch` whose lead byte is in [`LEADS`] (or is 0xE3): lead
/// bytes shared with frequent characters that never fold (Latin-1 signs, kana and CJK
/// punctuation, arrows and symbols, halfwidth forms) are told apart by the second byte.
fn second_byte_may_fold(ch: &[u8]) -> bool {
    let second = ch.get(1).copied().unwrap_or(0);
    match ch.first().copied().unwrap_or(0) {
        0xC2 => matches!(second, 0xA0 | 0xAD),
        0xE2 => matches!(second, 0x80 | 0x81 | 0x88),
        0xE3 => second == 0x80,
        0xEF => matches!(second, 0xB9 | 0xBB | 0xBC | 0xBD),
        _ => true,
    }
}

/// Whether the character encoded at the start of `ch` may fold: `false` for most
/// characters of other scripts, without decoding them ([`reads_as`] decides the rest).
pub fn may_fold(ch: &[u8]) -> bool {
    ch.first()
        .is_some_and(|&b| LEADS[usize::from(b)] || b == 0xE3)
        && second_byte_may_fold(ch)
}

/// Offset (at or after `from`) and folding of the next character [`reads_as`] changes;
/// `e3`: the text has an ideographic space (see [`LEADS`]).
fn next_foldable(text: &str, mut from: usize, e3: bool) -> Option<(usize, char, Option<u8>)> {
    let bytes = text.as_bytes();
    loop {
        let k = bytes
            .get(from..)?
            .iter()
            .position(|&b| LEADS[usize::from(b)] || (e3 && b == 0xE3))?;
        from += k;
        // A lead byte starts a character: `from` is a char boundary.
        let c = text.get(from..)?.chars().next()?;
        if !second_byte_may_fold(bytes.get(from..).unwrap_or_default()) {
            from += c.len_utf8();
            continue;
        }
        if let Some(f) = reads_as(c) {
            return Some((from, c, f));
        }
        from += c.len_utf8();
    }
}

/// `text` folded, or `None` when nothing in it folds (ASCII text is never copied).
pub fn fold(text: &str) -> Option<Folded> {
    if text.is_ascii() {
        return None;
    }
    let e3 = memchr::memmem::find(text.as_bytes(), IDEOGRAPHIC_SPACE).is_some();
    let mut next = next_foldable(text, 0, e3)?;
    let mut out = Folded {
        text: String::with_capacity(text.len()),
        starts: Vec::with_capacity(text.len()),
        ends: Vec::with_capacity(text.len()),
    };
    let mut copied = 0;
    loop {
        let (at, c, f) = next;
        // The run before it maps one to one (every byte of a copied character to itself:
        // matches start and end on character boundaries).
        out.text.push_str(text.get(copied..at)?);
        out.starts.extend(copied..at);
        out.ends.extend(copied + 1..=at);
        let len = c.len_utf8();
        if let Some(b) = f {
            out.text.push(char::from(b));
            out.starts.push(at);
            out.ends.push(at + len);
        }
        copied = at + len;
        match next_foldable(text, copied, e3) {
            Some(n) => next = n,
            None => break,
        }
    }
    out.text.push_str(text.get(copied..)?);
    out.starts.extend(copied..text.len());
    out.ends.extend(copied + 1..=text.len());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ascii_and_plain_unicode_are_not_copied() {
        assert_eq!(fold("SSN 536-22-8745"), None);
        // An em dash reads as a hyphen: that text is folded.
        assert_eq!(fold("naïve café — no").unwrap().text, "naïve café - no");
        assert_eq!(fold("naïve café, 東京"), None);
    }

    #[test]
    fn digit_blocks_are_sorted_and_every_digit_has_its_value() {
        assert!(DIGIT_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        for &z in DIGIT_ZEROS {
            for d in 0..10u8 {
                assert_eq!(digit_value(z + u32::from(d)), Some(d));
            }
            assert_eq!(
                digit_value(z - 1).filter(|_| !DIGIT_ZEROS.contains(&(z - 10))),
                None
            );
            assert_eq!(
                digit_value(z + 10).filter(|_| !DIGIT_ZEROS.contains(&(z + 10))),
                None
            );
        }
        assert_eq!(digit_value(u32::from('東')), None);
        assert_eq!(digit_value(0x30), None);
    }

    #[test]
    fn every_foldable_character_starts_with_a_listed_byte() {
        for cp in 0x80..=0x1FFFFu32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if reads_as(c).is_some() {
                let mut buf = [0u8; 4];
                let enc = c.encode_utf8(&mut buf).as_bytes();
                assert!(
                    LEADS[usize::from(enc[0])] || c == '\u{3000}',
                    "U+{cp:04X} starts with {:#x}",
                    enc[0]
                );
                // And passes the second-byte filter: found in a text of its own.
                let t = format!("東{c}の");
                assert!(may_fold(enc), "U+{cp:04X}");
                let e3 = c == '\u{3000}';
                assert_eq!(
                    next_foldable(&t, 0, e3).map(|(at, ..)| at),
                    Some(3),
                    "U+{cp:04X}"
                );
                assert_eq!(
                    fold(&t).map(|f| f.text.len()),
                    Some(6 + usize::from(reads_as(c).flatten().is_some()))
                );
            }
        }
    }

    #[test]
    fn look_alikes_fold_to_ascii() {
        let f = fold("SSN ５３６-２２-８７４５!").unwrap();
        assert_eq!(f.text, "SSN 536-22-8745!");
        // The whole fullwidth number, from its first to its last character.
        let (s, e) = f.original(4, 15).unwrap();
        assert_eq!(&"SSN ５３６-２２-８７４５!"[s..e], "５３６-２２-８７４５");
        let zw = "card 4111\u{200B}1111\u{200B}1111\u{200B}1111.";
        let f = fold(zw).unwrap();
        assert_eq!(f.text, "card 4111111111111111.");
        let (s, e) = f.original(5, 21).unwrap();
        assert_eq!(&zw[s..e], "4111\u{200B}1111\u{200B}1111\u{200B}1111");
        assert_eq!(fold("536–22–8745").unwrap().text, "536-22-8745");
        assert_eq!(fold("jane＠example．com").unwrap().text, "jane@example.com");
        assert_eq!(fold("০১৮০৯৯৫৮৪৯০").unwrap().text, "01809958490");
        assert_eq!(fold("٠١٢٣٤٥٦٧٨٩ ۰۱۲").unwrap().text, "0123456789 012");
        assert_eq!(fold("01\u{00A0}23\u{202F}45").unwrap().text, "01 23 45");
        // Invisible characters just outside a span stay outside it.
        let f = fold("\u{200B}42\u{200B}").unwrap();
        assert_eq!(f.text, "42");
        assert_eq!(f.original(0, 2), Some((3, 5)));
    }

    #[test]
    fn back_counts_folded_bytes() {
        assert_eq!(back("hello world", 11, 5), 6);
        assert_eq!(back("hello", 5, 9), 0);
        // Fullwidth digits count one byte each, invisible characters nothing.
        let t = "x５３６\u{200B}\u{200B}7";
        assert_eq!(back(t, t.len(), 2), 7);
        assert_eq!(back(t, t.len(), 4), 1);
        assert_eq!(back(t, t.len(), 5), 0);
        // Other scripts count their bytes.
        assert_eq!(back("東京", 6, 3), 3);
    }

    fn any_text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "7",
            " ",
            "-",
            "@",
            "é",
            "東",
            "５",
            "\u{200B}",
            "–",
            "\u{00A0}",
            "٣",
            "ｘ",
            "\u{1D7D9}",
            "\u{FEFF}",
            "の",
            "\u{3000}",
            "。",
            "©",
            "→",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        /// `reaches` agrees with the length of the folding.
        #[test]
        fn reaches_compares_the_folded_length(text in any_text(), from in 0usize..40, want in 0usize..30) {
            let flen = |t: &str| fold(t).map_or(t.len(), |f| f.text.len());
            if from <= text.len() && text.is_char_boundary(from) {
                prop_assert_eq!(reaches(&text, from, want), flen(&text[from..]) >= want);
            }
        }

        /// `back` gives the shortest tail folding to at least `want` bytes.
        #[test]
        fn back_is_the_shortest_long_enough_tail(text in any_text(), want in 0usize..30) {
            let flen = |t: &str| fold(t).map_or(t.len(), |f| f.text.len());
            let p = back(&text, text.len(), want);
            prop_assert!(text.is_char_boundary(p));
            prop_assert!(p == 0 || flen(&text[p..]) >= want);
            if p < text.len() {
                let next = p + text[p..].chars().next().map_or(0, char::len_utf8);
                prop_assert!(flen(&text[next..]) < want);
            } else {
                prop_assert!(want == 0 || p == 0);
            }
        }

        /// Every folded span maps to a span of the original on character boundaries whose
        /// own folding is the folded span (modulo invisible characters at its edges).
        #[test]
        fn spans_map_back(text in any_text(), a in 0usize..40, b in 0usize..40) {
            let Some(f) = fold(&text) else {
                prop_assert!(text.chars().all(|c| reads_as(c).is_none()));
                return Ok(());
            };
            let (a, b) = (a.min(b), a.max(b).min(f.text.len()));
            if a >= b || !f.text.is_char_boundary(a) || !f.text.is_char_boundary(b) {
                return Ok(());
            }
            let (s, e) = f.original(a, b).unwrap();
            prop_assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
            let back = fold(&text[s..e]).map_or_else(|| text[s..e].to_string(), |g| g.text);
            prop_assert_eq!(back, &f.text[a..b]);
        }
    }
}
