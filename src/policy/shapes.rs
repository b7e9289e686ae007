//! Hand-written leftmost-first finders for a few fixed digit patterns (the built-in card,
//! IBAN and SSN shapes), each equal to the regex it stands for: the scanner uses one in
//! place of the regex engine when a rule's pattern is exactly that string (built-in or user
//! rule alike), because on digit-dense text a per-call regex search costs far more than
//! walking the bytes. Property tests compare every finder with its regex on random
//! haystacks of digits, letters, separators and multi-byte characters, from every start.
//!
//! Each pattern is ASCII-only and every repetition is deterministic (the next byte decides
//! which branch can continue), so the greedy path from a start is the only path: a finder
//! follows it and reports the first start whose path reaches the minimum count.

/// `find_at` of one shape: the leftmost match starting at or after `at`, as byte offsets.
pub(super) type ShapeFn = fn(&[u8], usize) -> Option<(usize, usize)>;

/// Card numbers: 12–19 digits, single spaces or hyphens between digits.
const CARD: &str = r"[0-9](?:[ \-]?[0-9]){11,18}";
/// IBAN body: two check digits, then 11–30 letters or digits, single spaces between.
const IBAN: &str = r"[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}";
/// US SSN, hyphenated.
const SSN: &str = r"[0-9]{3}-[0-9]{2}-[0-9]{4}";

/// The hand-written finder for `pattern`, if it is one of the known shapes (compared as
/// written, after the built-ins' `\d` → `[0-9]` rewrite; a case-insensitive rule is not).
pub(super) fn for_pattern(pattern: &str) -> Option<ShapeFn> {
    match pattern {
        CARD => Some(card),
        IBAN => Some(iban),
        SSN => Some(ssn),
        _ => None,
    }
}

#[inline(always)]
fn digit(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

#[inline(always)]
fn alnum(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

/// Greedy run of `(?:[seps]?[unit]){0,max}` from `pos`: (iterations, end).
#[inline(always)]
fn run(
    b: &[u8],
    mut pos: usize,
    max: usize,
    sep: impl Fn(u8) -> bool,
    unit: impl Fn(&[u8], usize) -> bool,
) -> (usize, usize) {
    let mut n = 0;
    while n < max {
        if unit(b, pos) {
            pos += 1;
        } else if b.get(pos).is_some_and(|&c| sep(c)) && unit(b, pos + 1) {
            pos += 2;
        } else {
            break;
        }
        n += 1;
    }
    (n, pos)
}

/// Next ASCII digit at or after `from`.
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| from + i)
}

fn card(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while let Some(d) = next_digit(b, s) {
        let (n, end) = run(b, d + 1, 18, |c| c == b' ' || c == b'-', digit);
        if n >= 11 {
            return Some((d, end));
        }
        // Every later start before `end` follows the same path to the same stop, with
        // fewer iterations: none of them can match either.
        s = end.max(d + 1);
    }
    None
}

fn iban(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while let Some(d) = next_digit(b, s) {
        if digit(b, d + 1) {
            let (n, end) = run(b, d + 2, 30, |c| c == b' ', alnum);
            if n >= 11 {
                return Some((d, end));
            }
        }
        s = d + 1;
    }
    None
}

fn ssn(b: &[u8], at: usize) -> Option<(usize, usize)> {
    // Every match has its first hyphen 3 bytes in: walk the hyphens.
    let from = at.checked_add(3)?;
    for h in memchr::memchr_iter(b'-', b.get(from..)?) {
        let d = from + h - 3;
        let ok = [0, 1, 2, 4, 5, 7, 8, 9, 10]
            .iter()
            .all(|&i| digit(b, d + i))
            && b.get(d + 6) == Some(&b'-');
        if ok {
            return Some((d, d + 11));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(pattern: &str, hay: &str) {
        let re = regex::Regex::new(pattern).expect("pattern");
        let f = for_pattern(pattern).expect("shape");
        for at in 0..=hay.len() {
            if !hay.is_char_boundary(at) {
                continue;
            }
            let want = re.find_at(hay, at).map(|m| (m.start(), m.end()));
            assert_eq!(
                f(hay.as_bytes(), at),
                want,
                "{pattern} on {hay:?} from {at}"
            );
        }
    }

    /// Haystacks built from the pieces the shapes care about.
    fn hay() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            6 => "[0-9]{1,6}",
            2 => Just(" ".to_string()),
            2 => Just("-".to_string()),
            1 => Just("  ".to_string()),
            1 => Just("--".to_string()),
            2 => "[A-Za-z]{1,3}",
            1 => Just(".".to_string()),
            1 => Just("é".to_string()),
            1 => Just("٣".to_string()),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn card_equals_its_regex(h in hay()) { check(CARD, &h); }
        #[test]
        fn iban_equals_its_regex(h in hay()) { check(IBAN, &h); }
        #[test]
        fn ssn_equals_its_regex(h in hay()) { check(SSN, &h); }
    }

    #[test]
    fn known_cases() {
        for h in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111-1111-1111",
            "card 4111 1111 1111 111 and 1234567890123",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432 4111111111111111",
            "536-22-8745 and 123-45-67890",
            "12 -3",
            "",
        ] {
            check(CARD, h);
            check(IBAN, h);
            check(SSN, h);
        }
    }

    #[test]
    fn only_exact_patterns_have_a_shape() {
        assert!(for_pattern(CARD).is_some());
        assert!(for_pattern(r"\d(?:[ \-]?\d){11,18}").is_none());
        assert!(for_pattern("(?i:[0-9]{3}-[0-9]{2}-[0-9]{4})").is_none());
    }
}
