//! Redaction: replacement styles (typed placeholder numbered per request, mask, salted hash)
//! and the per-request `Redactor` that keeps placeholder numbering consistent across every
//! location of one request or response (the same value gets the same placeholder).

pub mod stream;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// How a matched value is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// `[EMAIL_1]`: typed, numbered per request; the same value gets the same number.
    Placeholder,
    /// Everything before the last `keep_last` letters or digits replaced by `ch`, separators
    /// included (length preserved; `3056 9309 0259 04` → `************59 04`).
    Mask { keep_last: usize, ch: char },
    /// `[EMAIL:3f2a9c1b0d4e]`: the first 12 hex digits of SHA-256(salt || value).
    Hash { salt: Vec<u8> },
}

/// A span to replace inside one text (byte offsets, on char boundaries, non-overlapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement<'a> {
    pub start: usize,
    pub end: usize,
    /// Type label (e.g. `EMAIL`), used by placeholder and hash styles.
    pub kind: &'a str,
    pub style: &'a Style,
}

/// Per-request redaction state: placeholder numbers by (type, value).
#[derive(Debug, Default)]
pub struct Redactor {
    numbers: HashMap<(String, String), usize>,
    counters: HashMap<String, usize>,
}

impl Redactor {
    /// Fresh state for one request (and its response).
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// The replacement text for `value` of type `kind` in this style.
    pub fn replacement(&mut self, kind: &str, value: &str, style: &Style) -> String {
        let label = label(kind);
        match style {
            Style::Placeholder => {
                let key = (label.clone(), value.to_string());
                let n = match self.numbers.get(&key) {
                    Some(n) => *n,
                    None => {
                        let c = self.counters.entry(label.clone()).or_insert(0);
                        *c += 1;
                        let n = *c;
                        self.numbers.insert(key, n);
                        n
                    }
                };
                format!("[{label}_{n}]")
            }
            Style::Mask { keep_last, ch } => {
                // Start of the shortest suffix holding `keep_last` letters or digits.
                let mut keep_from = value.len();
                let mut kept = 0;
                for (i, c) in value.char_indices().rev() {
                    if kept == *keep_last {
                        break;
                    }
                    keep_from = i;
                    if c.is_alphanumeric() {
                        kept += 1;
                    }
                }
                let mut s = String::with_capacity(value.len());
                for (i, c) in value.char_indices() {
                    s.push(if i < keep_from { *ch } else { c });
                }
                s
            }
            Style::Hash { salt } => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(value.as_bytes());
                let d = h.finalize();
                let mut hex = String::with_capacity(12);
                for b in d.iter().take(6) {
                    hex.push_str(&format!("{b:02x}"));
                }
                format!("[{label}:{hex}]")
            }
        }
    }

    /// Apply replacements (sorted or not; must not overlap) to `text`.
    pub fn apply(&mut self, text: &str, reps: &[Replacement<'_>]) -> String {
        let mut reps: Vec<&Replacement<'_>> = reps.iter().collect();
        reps.sort_by_key(|r| r.start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for r in reps {
            if r.start < at || r.end > text.len() || r.start >= r.end {
                continue;
            }
            let (Some(before), Some(value)) = (text.get(at..r.start), text.get(r.start..r.end))
            else {
                continue;
            };
            out.push_str(before);
            out.push_str(&self.replacement(r.kind, value, r.style));
            at = r.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        out
    }
}

/// Placeholder label: upper-case, non-alphanumerics as `_`.
pub(crate) fn label(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_per_value() {
        let mut r = Redactor::new();
        let p = Style::Placeholder;
        assert_eq!(r.replacement("EMAIL", "a@x.io", &p), "[EMAIL_1]");
        assert_eq!(r.replacement("EMAIL", "b@x.io", &p), "[EMAIL_2]");
        assert_eq!(r.replacement("EMAIL", "a@x.io", &p), "[EMAIL_1]");
        assert_eq!(r.replacement("credit-card", "4111", &p), "[CREDIT_CARD_1]");
    }

    #[test]
    fn mask_and_hash() {
        let mut r = Redactor::new();
        let m = Style::Mask {
            keep_last: 4,
            ch: '*',
        };
        assert_eq!(
            r.replacement("CC", "4111111111111111", &m),
            "************1111"
        );
        assert_eq!(r.replacement("CC", "12", &m), "12");
        // The last four digits are kept whatever the grouping.
        assert_eq!(
            r.replacement("CC", "3056 9309 0259 04", &m),
            "************59 04"
        );
        assert_eq!(
            r.replacement("CC", "4111-1111-1111-1111", &m),
            "***************1111"
        );
        let none = Style::Mask {
            keep_last: 0,
            ch: '#',
        };
        assert_eq!(r.replacement("CC", "41 11", &none), "#####");
        let h = Style::Hash {
            salt: b"s".to_vec(),
        };
        let a = r.replacement("EMAIL", "a@x.io", &h);
        assert!(
            a.starts_with("[EMAIL:") && a.len() == "[EMAIL:]".len() + 12,
            "{a}"
        );
        assert_eq!(a, r.replacement("EMAIL", "a@x.io", &h));
        let h2 = Style::Hash {
            salt: b"t".to_vec(),
        };
        assert_ne!(a, r.replacement("EMAIL", "a@x.io", &h2));
    }

    #[test]
    fn apply_replaces_spans_in_order() {
        let mut r = Redactor::new();
        let p = Style::Placeholder;
        let text = "mail a@x.io or b@x.io, again a@x.io";
        let reps = vec![
            Replacement {
                start: 15,
                end: 21,
                kind: "EMAIL",
                style: &p,
            },
            Replacement {
                start: 5,
                end: 11,
                kind: "EMAIL",
                style: &p,
            },
            Replacement {
                start: 29,
                end: 35,
                kind: "EMAIL",
                style: &p,
            },
        ];
        assert_eq!(
            r.apply(text, &reps),
            "mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]"
        );
    }
}
