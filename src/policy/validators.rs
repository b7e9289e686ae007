//! Validators for built-in detectors: checksums (Luhn, IBAN mod-97), structural checks
//! (SSN, IP addresses, JWT headers), entropy and placeholder heuristics.
//!
//! Every function here is total: it never panics on any input and allocates little.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// Luhn checksum over the ASCII digits of `s` (other characters are ignored).
pub fn luhn_valid(s: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    let mut n = 0usize;
    for b in s.bytes().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        n += 1;
    }
    n > 0 && sum % 10 == 0
}

/// Whether a digit string (13–19 digits; 12 for a few Maestro ranges) starts with a known
/// card issuer prefix with a length that the issuer uses.
pub fn card_iin_valid(digits: &str) -> bool {
    let len = digits.len();
    let p = |n: usize| -> u32 { digits.get(..n).and_then(|s| s.parse().ok()).unwrap_or(0) };
    let (p1, p2, p3, p4, p6) = (p(1), p(2), p(3), p(4), p(6));
    match p1 {
        // Visa
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55, 2221-2720; Maestro 50, 56-58
        5 => {
            if (51..=55).contains(&p2) {
                len == 16
            } else if maestro(p4) || (56..=58).contains(&p2) {
                (12..=19).contains(&len)
            } else {
                false
            }
        }
        2 => {
            ((2221..=2720).contains(&p4) && len == 16)
                // JCB legacy 2131
                || (p4 == 2131 && len == 15)
                // Mir 2200-2204
                || ((2200..=2204).contains(&p4) && (16..=19).contains(&len))
        }
        3 => {
            // Amex
            ((p2 == 34 || p2 == 37) && len == 15)
                // Diners Club
                || ((300..=305).contains(&p3) && (14..=19).contains(&len))
                || ((p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len))
                // JCB (3528-3589 assigned; the whole 35 range is JCB-managed)
                || (p2 == 35 && (16..=19).contains(&len))
        }
        6 => {
            // Discover, UnionPay, RuPay, InstaPayment and other 6x issuers: 16-19 digits.
            let long = (16..=19).contains(&len)
                && (p4 == 6011
                    || p2 == 65
                    || (644..=649).contains(&p3)
                    || (622_126..=622_925).contains(&p6)
                    || p2 == 62
                    || p2 == 60
                    || p2 == 63
                    || p2 == 67
                    || p2 == 69);
            long || (maestro(p4) && (12..=19).contains(&len))
        }
        // Maestro UK
        0 => maestro(p4) && (12..=19).contains(&len),
        // JCB legacy 1800
        1 => p4 == 1800 && len == 15,
        _ => false,
    }
}

/// Maestro IIN prefixes that issue short (12-15 digit) card numbers.
fn maestro(p4: u32) -> bool {
    matches!(
        p4,
        5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 6761 | 6762 | 6763 | 604
    )
}

/// IBAN lengths per country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// Registered IBAN length for a two-letter country code (upper case), if any.
pub fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, l)| *l)
}

/// Validate a compact (no spaces) IBAN: country length and ISO 7064 mod-97 == 1.
pub fn iban_valid(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 15 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()];
    let country = std::str::from_utf8(&country).unwrap_or("");
    iban_length(country) == Some(b.len()) && iban_mod97(compact)
}

/// ISO 7064 mod-97 == 1 of a compact IBAN-shaped value (two letters, two check digits,
/// 11 to 30 letters or digits), whatever its country's registered length.
pub fn iban_mod97(compact: &str) -> bool {
    let b = compact.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b.iter().all(u8::is_ascii_alphanumeric)
        || !b[0].is_ascii_alphabetic()
        || !b[1].is_ascii_alphabetic()
        || !b[2].is_ascii_digit()
        || !b[3].is_ascii_digit()
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(b[..4].iter()) {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

/// Structural US SSN check on exactly nine digits (`AAAGGSSSS`).
pub fn ssn_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &digits[..3];
    let group = &digits[3..5];
    let serial = &digits[5..];
    if area == "000" || area == "666" || b[0] == b'9' || group == "00" || serial == "0000" {
        return false;
    }
    if b.iter().all(|&c| c == b[0]) {
        return false;
    }
    // Well-known advertising / documentation numbers.
    !matches!(digits, "123456789" | "078051120" | "219099999")
}

/// IPv4 dotted quad with octets 0–255 and no leading zeros on multi-digit octets.
pub fn ipv4_valid(s: &str) -> bool {
    let mut n = 0;
    for part in s.split('.') {
        n += 1;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        if part.len() > 1 && part.starts_with('0') {
            return false;
        }
        match part.parse::<u16>() {
            Ok(v) if v <= 255 => {}
            _ => return false,
        }
    }
    n == 4
}

/// IPv6 literal accepted by `std::net::Ipv6Addr`, with at least two non-empty groups
/// (so `::` alone and `a::` style code tokens are not reported).
pub fn ipv6_valid(s: &str) -> bool {
    if s.parse::<Ipv6Addr>().is_err() {
        return false;
    }
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    let has_digit = s.bytes().any(|c| c.is_ascii_digit());
    (groups >= 3 || (s.contains("::") && groups >= 2)) && has_digit
}

/// Decode unpadded or padded base64 / base64url. Returns `None` on invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A JWT's first part must decode to a JSON object with an `alg` member.
pub fn jwt_header_valid(token: &str) -> bool {
    let header = token.split('.').next().unwrap_or("");
    match base64_decode(header) {
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(m)) => m.contains_key("alg"),
            _ => false,
        },
        None => false,
    }
}

/// Whether base64(url) text decodes to a JSON object (used for `ops_`-style tokens).
pub fn base64_json_object(s: &str) -> bool {
    match base64_decode(s) {
        Some(bytes) => matches!(
            serde_json::from_slice::<serde_json::Value>(&bytes),
            Ok(serde_json::Value::Object(_))
        ),
        None => false,
    }
}

/// Shannon entropy in bits per character over the bytes of `s`.
pub fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Number of character classes (lower, upper, digit, other) present in `s`.
pub fn char_classes(s: &str) -> usize {
    let (mut l, mut u, mut d, mut o) = (false, false, false, false);
    for c in s.chars() {
        if c.is_ascii_lowercase() {
            l = true;
        } else if c.is_ascii_uppercase() {
            u = true;
        } else if c.is_ascii_digit() {
            d = true;
        } else {
            o = true;
        }
    }
    [l, u, d, o].iter().filter(|&&x| x).count()
}

/// Obvious placeholder, template or documentation value for a secret (case-insensitive).
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    if v.is_empty() {
        return true;
    }
    // Templates and variable references.
    if v.contains("${")
        || v.contains("{{")
        || v.contains("$(")
        || v.contains("%(")
        || v.starts_with('$')
        || v.starts_with('<')
        || v.starts_with('{')
        || v.starts_with('%')
        || v.contains("...")
        || v.contains("***")
    {
        return true;
    }
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pass",
        "secret",
        "pwd",
        "changeme",
        "change_me",
        "admin",
        "root",
        "test",
        "user",
        "username",
        "example",
        "none",
        "null",
        "true",
        "false",
        "undefined",
        "mypassword",
        "yourpassword",
        "token",
        "apikey",
        "api_key",
        "key",
        "default",
        "qwerty",
        "letmein",
    ];
    if EXACT.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        return true;
    }
    const CONTAINS: &[&str] = &[
        "your_",
        "your-",
        "yourapi",
        "your_api",
        "replace",
        "placeholder",
        "example",
        "dummy",
        "fake",
        "redacted",
        "not_a_real",
        "notarealkey",
        "not-a-real",
        "sample",
        "xxxx",
        "password",
        "changeme",
        "insert",
        "todo",
    ];
    static CONTAINS_SET: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| ci_set(CONTAINS));
    if contains_any_of(&CONTAINS_SET, CONTAINS, v) {
        return true;
    }
    // All one repeated character, or a trivially sequential string.
    let b = v.as_bytes();
    if b.iter().all(|&c| c == b[0]) {
        return true;
    }
    let starts = |p: &str| {
        b.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
    };
    if starts("1234567") || starts("abcdefg") {
        return true;
    }
    false
}

/// An ASCII case-insensitive automaton over lower-case ASCII `words` (`None` only if the
/// list could not be compiled; callers then test the words one by one).
pub fn ci_set(words: &[&str]) -> Option<AhoCorasick> {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(words)
        .ok()
}

/// Whether any of `words` (lower-case ASCII) occurs in `hay` ignoring ASCII case, with the
/// prebuilt `set` of those words (one pass instead of one search per word, no lower-cased copy).
pub fn contains_any_of(set: &Option<AhoCorasick>, words: &[&str], hay: &str) -> bool {
    match set {
        Some(ac) => ac.is_match(hay),
        None => {
            let lower = hay.to_ascii_lowercase();
            words.iter().any(|w| lower.contains(w))
        }
    }
}

/// Whether base64 text decodes to mostly printable ASCII prose (an encoded message, not a key).
pub fn base64_is_plain_text(s: &str) -> bool {
    if s.len() < 16
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
    {
        return false;
    }
    match base64_decode(s) {
        Some(bytes) if bytes.len() >= 8 => {
            let printable = bytes
                .iter()
                .filter(|&&c| c == b' ' || c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
                .count();
            let spaces = bytes.iter().filter(|&&c| c == b' ').count();
            printable == bytes.len() && spaces >= 1
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn iin() {
        assert!(card_iin_valid("4111111111111111"));
        assert!(card_iin_valid("378282246310005"));
        assert!(card_iin_valid("5555555555554444"));
        assert!(card_iin_valid("2223003122003222"));
        assert!(!card_iin_valid("9111111111111111"));
        assert!(!card_iin_valid("41111111111111")); // visa of 14 digits
    }

    #[test]
    fn iban() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("gb82west12345698765432"));
        assert!(!iban_valid("GB82WEST12345698765431"));
        assert!(!iban_valid("GB82WEST1234569876543"));
        assert!(!iban_valid("ZZ82WEST12345698765432"));
    }

    #[test]
    fn ssn() {
        assert!(ssn_valid("536228745"));
        assert!(!ssn_valid("000123456"));
        assert!(!ssn_valid("666123456"));
        assert!(!ssn_valid("912123456"));
        assert!(!ssn_valid("536008745"));
        assert!(!ssn_valid("536220000"));
        assert!(!ssn_valid("111111111"));
        assert!(!ssn_valid("123456789"));
    }

    #[test]
    fn ips() {
        assert!(ipv4_valid("192.168.0.1"));
        assert!(!ipv4_valid("256.1.1.1"));
        assert!(!ipv4_valid("1.2.3"));
        assert!(!ipv4_valid("01.2.3.4"));
        assert!(ipv6_valid("2001:db8::8a2e:370:7334"));
        assert!(ipv6_valid("::ffff:192.0.2.128"));
        assert!(!ipv6_valid("12:20:39"));
        assert!(!ipv6_valid("d::"));
    }

    #[test]
    fn jwt_and_b64() {
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig";
        assert!(jwt_header_valid(t));
        assert!(!jwt_header_valid("eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.sig"));
        assert!(base64_is_plain_text("ZHVtbXkgdGV4dCBkYXRhIGRhdGEgZGF0YQ=="));
        assert!(!base64_is_plain_text(
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
        ));
    }

    #[test]
    fn placeholders_and_entropy() {
        assert!(is_placeholder("${API_KEY}"));
        assert!(is_placeholder("<your-key>"));
        assert!(is_placeholder("changeme"));
        assert!(is_placeholder("xxxxxxxx"));
        assert!(!is_placeholder("r3alP4ssw0rd"));
        assert!(shannon_entropy("aaaa") < 0.01);
        assert!(shannon_entropy("abcd") > 1.99);
    }
}
