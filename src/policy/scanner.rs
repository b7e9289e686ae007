//! The compiled one-pass scanner: all regex rules of a snapshot in one `RegexSet`, all
//! literals and keywords in one Aho-Corasick automaton, then per-candidate validation and
//! deterministic overlap resolution.
//!
//! Scan plan for a text:
//! 1. one Aho-Corasick pass (ASCII case-insensitive, overlapping) reports keyword hits and
//!    marks regex rules whose required literal (e.g. `AKIA`, `-----BEGIN`, `@`) occurs;
//! 2. one `RegexSet` pass over the regex rules that have no literal pre-filter (digit
//!    shaped detectors, user patterns) reports which of them match at all;
//! 3. only those candidate rules run `find_iter`/`captures_iter` and their validator.
//!
//! The `regex` crate guarantees linear-time matching, so no pattern (built-in or user
//! supplied) can cause catastrophic backtracking. The scanner is immutable after
//! [`ScannerBuilder::build`] and is `Send + Sync`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// A validator: given the whole text and a candidate span (byte offsets), return the
/// span to report (possibly narrowed or extended) or `None` to reject the candidate.
pub type CheckFn = fn(text: &str, start: usize, end: usize) -> Option<(usize, usize)>;

/// Cap used for the maximum match length of unbounded user patterns without a declared cap.
pub const DEFAULT_UNBOUNDED_CAP: usize = 1024;

/// Broad family of a rule; used for reporting and by the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Personal data (email, phone, card, IBAN, SSN, IP).
    Pii,
    /// Credentials: API keys, tokens, private keys, passwords.
    Secret,
    /// Prompt-injection / jailbreak phrases.
    Injection,
    /// User-defined rule.
    Custom,
}

/// How a rule finds candidates.
#[derive(Clone)]
pub enum Matcher {
    /// A regular expression. If it has a capture group named `v`, that group is the
    /// reported span. `prefilter` literals (matched ASCII case-insensitively) gate the
    /// regex: when none occurs in the text the regex is not run at all; when empty the
    /// regex joins the shared `RegexSet`.
    Regex {
        pattern: String,
        case_insensitive: bool,
        prefilter: Vec<String>,
        check: Option<CheckFn>,
    },
    /// A list of literal keywords / phrases.
    Keywords {
        words: Vec<String>,
        case_insensitive: bool,
        whole_word: bool,
    },
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Regex {
                pattern,
                case_insensitive,
                prefilter,
                check,
            } => f
                .debug_struct("Regex")
                .field("pattern", pattern)
                .field("case_insensitive", case_insensitive)
                .field("prefilter", prefilter)
                .field("validated", &check.is_some())
                .finish(),
            Matcher::Keywords {
                words,
                case_insensitive,
                whole_word,
            } => f
                .debug_struct("Keywords")
                .field("words", &words.len())
                .field("case_insensitive", case_insensitive)
                .field("whole_word", whole_word)
                .finish(),
        }
    }
}

/// Everything needed to compile one rule into the scanner.
#[derive(Debug, Clone)]
pub struct DetectorSpec {
    /// Type label reported with matches (e.g. `EMAIL`, `CREDIT_CARD`, or a user label).
    pub kind: String,
    pub category: Category,
    pub matcher: Matcher,
    /// Higher wins when matches overlap (then longer, then earlier, then lower rule index).
    pub priority: i32,
    /// Declared maximum match length in bytes. When absent, the maximum is computed from
    /// the pattern (`regex_syntax` HIR `maximum_len`), or [`DEFAULT_UNBOUNDED_CAP`] for
    /// unbounded patterns. When present it is used as is: it must cover the longest
    /// span the validator can report.
    pub max_len: Option<usize>,
}

impl DetectorSpec {
    /// A user `pattern` rule.
    pub fn pattern(kind: impl Into<String>, pattern: impl Into<String>) -> Self {
        DetectorSpec {
            kind: kind.into(),
            category: Category::Custom,
            matcher: Matcher::Regex {
                pattern: pattern.into(),
                case_insensitive: false,
                prefilter: Vec::new(),
                check: None,
            },
            priority: 0,
            max_len: None,
        }
    }

    /// A user `keywords` rule.
    pub fn keywords<I, S>(
        kind: impl Into<String>,
        words: I,
        case_insensitive: bool,
        whole_word: bool,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DetectorSpec {
            kind: kind.into(),
            category: Category::Custom,
            matcher: Matcher::Keywords {
                words: words.into_iter().map(Into::into).collect(),
                case_insensitive,
                whole_word,
            },
            priority: 0,
            max_len: None,
        }
    }
}

/// One reported detection. Offsets are UTF-8 byte offsets on char boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the rule in the scanner (see [`Scanner::rule`]).
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    /// The rule's type label.
    pub kind: Arc<str>,
}

impl Match {
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Public, immutable description of a compiled rule.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub id: String,
    pub kind: Arc<str>,
    pub category: Category,
    pub priority: i32,
    /// Maximum number of bytes a match of this rule can span (for streaming hold-back).
    pub max_len: usize,
}

/// One rule that failed to compile. The message never contains scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule_id: String,
    pub message: String,
}

/// All compile errors of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub errors: Vec<RuleError>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule(s) failed to compile", self.errors.len())?;
        for e in &self.errors {
            write!(f, "; {}: {}", e.rule_id, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// Collects rules, then compiles them together.
#[derive(Debug, Default, Clone)]
pub struct ScannerBuilder {
    rules: Vec<(String, DetectorSpec)>,
}

impl ScannerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder pre-loaded with the full built-in detector pack.
    pub fn with_builtins() -> Self {
        let mut b = Self::new();
        for (id, spec) in super::detectors::builtin_specs() {
            b.add(id, spec);
        }
        b
    }

    /// Add a rule; returns its index (the `rule` of its matches).
    pub fn add(&mut self, rule_id: impl Into<String>, spec: DetectorSpec) -> usize {
        self.rules.push((rule_id.into(), spec));
        self.rules.len() - 1
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Compile everything. Reports every failing rule, not just the first.
    pub fn build(self) -> Result<Scanner, BuildError> {
        let mut errors = Vec::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut set_patterns: Vec<String> = Vec::new();
        let mut set_owner: Vec<usize> = Vec::new();
        // Bytes a set-rule match can start with; set rules without a finite first-byte
        // set make the set run over the whole text.
        let mut gate = [false; 256];
        let mut gate_window = 0usize;
        let mut ungated = false;
        let mut ac_patterns: Vec<String> = Vec::new();
        let mut ac_owner: Vec<AcEntry> = Vec::new();

        for (idx, (id, spec)) in self.rules.into_iter().enumerate() {
            let kind: Arc<str> = Arc::from(spec.kind.as_str());
            let err = |m: String| RuleError {
                rule_id: id.clone(),
                message: m,
            };
            let (imp, max_len) = match &spec.matcher {
                Matcher::Regex {
                    pattern,
                    case_insensitive,
                    prefilter,
                    check,
                } => {
                    let full = if *case_insensitive {
                        format!("(?i:{pattern})")
                    } else {
                        pattern.clone()
                    };
                    let (computed, first) = match regex_syntax::Parser::new().parse(&full) {
                        Ok(hir) => (hir.properties().maximum_len(), first_bytes(&hir)),
                        Err(e) => {
                            errors.push(err(format!("invalid pattern: {e}")));
                            continue;
                        }
                    };
                    let re = match RegexBuilder::new(&full).size_limit(32 << 20).build() {
                        Ok(r) => r,
                        Err(e) => {
                            errors.push(err(format!("invalid pattern: {e}")));
                            continue;
                        }
                    };
                    if re.is_match("") {
                        errors.push(err("pattern matches the empty string".to_string()));
                        continue;
                    }
                    let max_len = match (computed, spec.max_len) {
                        // A declared cap wins: validators may widen a span (e.g. IBAN
                        // country letters) or bound an unbounded pattern.
                        (Some(_), Some(d)) => d,
                        (Some(c), None) => c,
                        (None, Some(d)) => d,
                        (None, None) => DEFAULT_UNBOUNDED_CAP,
                    };
                    let value_group = re.capture_names().position(|n| n == Some("v"));
                    let prefiltered = !prefilter.is_empty();
                    if prefiltered {
                        for lit in prefilter {
                            if lit.is_empty() {
                                errors.push(err("empty prefilter literal".to_string()));
                                continue;
                            }
                            ac_patterns.push(lit.clone());
                            ac_owner.push(AcEntry::Prefilter(idx));
                        }
                    } else {
                        set_patterns.push(full);
                        set_owner.push(idx);
                        match first {
                            Some(bytes) => {
                                for b in bytes {
                                    gate[usize::from(b)] = true;
                                }
                                gate_window = gate_window.max(max_len);
                            }
                            None => ungated = true,
                        }
                    }
                    (
                        RuleImpl::Regex {
                            re,
                            check: *check,
                            value_group,
                        },
                        max_len,
                    )
                }
                Matcher::Keywords {
                    words,
                    case_insensitive,
                    whole_word,
                } => {
                    if words.is_empty() {
                        errors.push(err("keyword list is empty".to_string()));
                        continue;
                    }
                    let mut longest = 0;
                    for w in words {
                        if w.is_empty() {
                            errors.push(err("empty keyword".to_string()));
                            continue;
                        }
                        longest = longest.max(w.len());
                        ac_patterns.push(w.clone());
                        ac_owner.push(AcEntry::Keyword {
                            rule: idx,
                            case_sensitive: !*case_insensitive || !w.is_ascii(),
                        });
                    }
                    let max_len = spec.max_len.map_or(longest, |d| d.min(longest));
                    (
                        RuleImpl::Keywords {
                            whole_word: *whole_word,
                        },
                        max_len,
                    )
                }
            };
            rules.push(Rule {
                info: RuleInfo {
                    id,
                    kind,
                    category: spec.category,
                    priority: spec.priority,
                    max_len,
                },
                imp,
            });
        }
        if !errors.is_empty() {
            return Err(BuildError { errors });
        }
        let set = match RegexSetBuilder::new(&set_patterns)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()
        {
            Ok(s) => s,
            Err(e) => {
                return Err(BuildError {
                    errors: vec![RuleError {
                        rule_id: "*".to_string(),
                        message: format!("combined pattern set failed to compile: {e}"),
                    }],
                })
            }
        };
        let ac = if ac_patterns.is_empty() {
            None
        } else {
            // A full DFA: built once per snapshot, it makes the one overlapping pass over
            // every text several times faster than the default NFA for this many patterns.
            match AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(&ac_patterns)
            {
                Ok(a) => Some(a),
                Err(e) => {
                    return Err(BuildError {
                        errors: vec![RuleError {
                            rule_id: "*".to_string(),
                            message: format!("keyword automaton failed to build: {e}"),
                        }],
                    })
                }
            }
        };
        let max_match_len = rules.iter().map(|r| r.info.max_len).max().unwrap_or(0);
        Ok(Scanner {
            rules,
            set,
            set_owner,
            gate: if ungated { None } else { Some(gate) },
            gate_window,
            ac,
            ac_owner,
            ac_patterns,
            max_match_len,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum AcEntry {
    Prefilter(usize),
    Keyword { rule: usize, case_sensitive: bool },
}

#[derive(Debug)]
enum RuleImpl {
    Regex {
        re: Regex,
        check: Option<CheckFn>,
        value_group: Option<usize>,
    },
    Keywords {
        whole_word: bool,
    },
}

#[derive(Debug)]
struct Rule {
    info: RuleInfo,
    imp: RuleImpl,
}

/// The compiled, immutable scanner.
#[derive(Debug)]
pub struct Scanner {
    rules: Vec<Rule>,
    set: RegexSet,
    set_owner: Vec<usize>,
    /// First-byte gate for the set (see `scan_all`); `None` when some rule is ungated.
    gate: Option<[bool; 256]>,
    /// Longest match of a gated set rule: the window scanned after a gate byte.
    gate_window: usize,
    ac: Option<AhoCorasick>,
    ac_owner: Vec<AcEntry>,
    ac_patterns: Vec<String>,
    max_match_len: usize,
}

impl Scanner {
    /// The full built-in pack.
    pub fn builtin() -> Result<Scanner, BuildError> {
        ScannerBuilder::with_builtins().build()
    }

    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    pub fn rule(&self, idx: usize) -> Option<&RuleInfo> {
        self.rules.get(idx).map(|r| &r.info)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Largest `max_len` over all rules: the hold-back window a streaming redactor needs.
    pub fn max_match_len(&self) -> usize {
        self.max_match_len
    }

    /// All validated matches, overlaps resolved: higher priority, then longer, then
    /// earlier start, then lower rule index wins. Sorted by start offset.
    pub fn scan(&self, text: &str) -> Vec<Match> {
        resolve_overlaps(self.scan_all(text), &self.rules)
    }

    /// All validated matches of all rules, overlapping ones included, sorted by
    /// (start, end, rule).
    pub fn scan_all(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        if text.is_empty() {
            return out;
        }
        let mut candidate = vec![false; self.rules.len()];
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(text) {
                let pid = m.pattern().as_usize();
                match self.ac_owner.get(pid) {
                    Some(AcEntry::Prefilter(rule)) => {
                        if let Some(c) = candidate.get_mut(*rule) {
                            *c = true;
                        }
                    }
                    Some(AcEntry::Keyword {
                        rule,
                        case_sensitive,
                    }) => {
                        let (s, e) = (m.start(), m.end());
                        if *case_sensitive {
                            let want = self.ac_patterns.get(pid).map(String::as_bytes);
                            if text.as_bytes().get(s..e) != want {
                                continue;
                            }
                        }
                        let whole = matches!(
                            self.rules.get(*rule).map(|r| &r.imp),
                            Some(RuleImpl::Keywords { whole_word: true })
                        );
                        if whole && !word_bounded(text, s, e) {
                            continue;
                        }
                        if text.is_char_boundary(s) && text.is_char_boundary(e) {
                            self.push(&mut out, *rule, s, e);
                        }
                    }
                    None => {}
                }
            }
        }
        if !self.set_owner.is_empty() {
            self.set_candidates(text, &mut candidate);
        }
        for (idx, is_cand) in candidate.iter().enumerate() {
            if !is_cand {
                continue;
            }
            let Some(rule) = self.rules.get(idx) else {
                continue;
            };
            if let RuleImpl::Regex {
                re,
                check,
                value_group,
            } = &rule.imp
            {
                // A candidate the validator rejects must not hide a valid match that starts
                // at a word inside it (digits before an IBAN's country code): search again
                // from the next letter-initial word in the rejected span. Digit runs are not
                // re-split, so a rejected number never yields a sub-number match.
                let accept = |s: usize, e: usize| -> Option<(usize, usize)> {
                    let span = match check {
                        Some(f) => f(text, s, e),
                        None => Some((s, e)),
                    };
                    span.filter(|&(s, e)| {
                        s < e
                            && e <= text.len()
                            && text.is_char_boundary(s)
                            && text.is_char_boundary(e)
                    })
                };
                let mut at = 0;
                while at <= text.len() {
                    let Some(m) = re.find_at(text, at) else {
                        break;
                    };
                    let span = match value_group {
                        Some(g) => re
                            .captures_at(text, m.start())
                            .and_then(|c| c.get(*g))
                            .and_then(|v| accept(v.start(), v.end())),
                        None => accept(m.start(), m.end()),
                    };
                    match span {
                        Some((s, e)) => {
                            self.push(&mut out, idx, s, e);
                            at = if m.end() > m.start() {
                                m.end()
                            } else {
                                m.end() + 1
                            };
                        }
                        None => {
                            at = next_letter_word(text, m.start(), m.end())
                                .unwrap_or(m.end().max(m.start() + 1));
                        }
                    }
                    while at < text.len() && !text.is_char_boundary(at) {
                        at += 1;
                    }
                }
            }
        }
        out.sort_by_key(|m| (m.start, m.end, m.rule));
        out.dedup_by(|a, b| a.start == b.start && a.end == b.end && a.rule == b.rule);
        out
    }

    /// Mark set rules that match somewhere in `text`. When every set rule has a finite
    /// set of first bytes, any match starts at such a byte and spans at most
    /// `gate_window` bytes, so the set only runs over the (merged) windows that follow
    /// those bytes; a window can only over-report (a rule then runs and validates on the
    /// full text), never miss a match.
    fn set_candidates(&self, text: &str, candidate: &mut [bool]) {
        let mut mark = |hay: &str| {
            for i in self.set.matches(hay).into_iter() {
                if let Some(&rule) = self.set_owner.get(i) {
                    if let Some(c) = candidate.get_mut(rule) {
                        *c = true;
                    }
                }
            }
        };
        let Some(gate) = &self.gate else {
            mark(text);
            return;
        };
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !gate[usize::from(bytes[i])] {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = (i + self.gate_window).min(bytes.len());
            // Extend while further gate bytes fall inside the window.
            let mut j = i + 1;
            while j < end {
                if gate[usize::from(bytes[j])] {
                    end = (j + self.gate_window).min(bytes.len());
                }
                j += 1;
            }
            let mut e = end;
            while e < bytes.len() && !text.is_char_boundary(e) {
                e += 1;
            }
            if let Some(w) = text.get(start..e) {
                mark(w);
            }
            i = e.max(i + 1);
        }
    }

    fn push(&self, out: &mut Vec<Match>, rule: usize, start: usize, end: usize) {
        if let Some(r) = self.rules.get(rule) {
            out.push(Match {
                rule,
                start,
                end,
                kind: Arc::clone(&r.info.kind),
            });
        }
    }
}

/// The bytes every match of `hir` can start with, if that set is finite and no match can
/// be empty at the start.
fn first_bytes(hir: &regex_syntax::hir::Hir) -> Option<Vec<u8>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let mut ex = Extractor::new();
    ex.kind(ExtractKind::Prefix)
        .limit_class(64)
        .limit_literal_len(1);
    let seq = ex.extract(hir);
    let lits = seq.literals()?;
    let mut out = Vec::new();
    for l in lits {
        out.push(*l.as_bytes().first()?);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Start of the first word inside `text[start+1..end]` that begins with an ASCII letter
/// and follows a non-alphanumeric character.
fn next_letter_word(text: &str, start: usize, end: usize) -> Option<usize> {
    let mut prev_alnum = true;
    for (i, c) in text.get(start..end)?.char_indices() {
        if i > 0 && !prev_alnum && c.is_ascii_alphabetic() {
            return Some(start + i);
        }
        prev_alnum = c.is_alphanumeric();
    }
    None
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when the span is not glued to word characters on either side.
pub fn word_bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|s| s.chars().next_back());
    let after = text.get(end..).and_then(|s| s.chars().next());
    let first = text.get(start..end).and_then(|s| s.chars().next());
    let last = text.get(start..end).and_then(|s| s.chars().next_back());
    let left_ok = match (before, first) {
        (Some(b), Some(f)) => !(is_word_char(b) && is_word_char(f)),
        _ => true,
    };
    let right_ok = match (after, last) {
        (Some(a), Some(l)) => !(is_word_char(a) && is_word_char(l)),
        _ => true,
    };
    left_ok && right_ok
}

fn resolve_overlaps(mut all: Vec<Match>, rules: &[Rule]) -> Vec<Match> {
    let prio = |m: &Match| rules.get(m.rule).map_or(i32::MIN, |r| r.info.priority);
    all.sort_by(|a, b| {
        prio(b)
            .cmp(&prio(a))
            .then(b.len().cmp(&a.len()))
            .then(a.start.cmp(&b.start))
            .then(a.rule.cmp(&b.rule))
    });
    // Accepted spans are disjoint: start -> end.
    let mut taken: BTreeMap<usize, usize> = BTreeMap::new();
    let mut keep = Vec::new();
    for m in all {
        let overlaps = taken
            .range(..m.end)
            .next_back()
            .is_some_and(|(_, &e)| e > m.start);
        if !overlaps {
            taken.insert(m.start, m.end);
            keep.push(m);
        }
    }
    keep.sort_by_key(|m| m.start);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom() -> Scanner {
        let mut b = ScannerBuilder::new();
        b.add("r-order", DetectorSpec::pattern("ORDER", r"ORD-[0-9]{6}"));
        b.add(
            "r-words",
            DetectorSpec::keywords("WORDS", ["project falcon", "Ünïcode"], true, true),
        );
        let mut hi = DetectorSpec::pattern("LONG", r"ORD-[0-9]{6}-[A-Z]{2}");
        hi.priority = 5;
        b.add("r-long", hi);
        match b.build() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn user_rules_and_overlaps() {
        let s = custom();
        let t = "see ORD-123456-AB and Project FALCON, not projectfalcon or xproject falcon";
        let m = s.scan(t);
        let kinds: Vec<&str> = m.iter().map(|m| &*m.kind).collect();
        assert_eq!(kinds, vec!["LONG", "WORDS"]);
        assert_eq!(&t[m[0].start..m[0].end], "ORD-123456-AB");
        assert_eq!(&t[m[1].start..m[1].end], "Project FALCON");
        // scan_all keeps the overlapped shorter match too
        assert_eq!(s.scan_all(t).len(), 3);
    }

    #[test]
    fn case_sensitive_keywords() {
        let mut b = ScannerBuilder::new();
        b.add("k", DetectorSpec::keywords("K", ["Secret"], false, false));
        let s = b.build().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.scan("secret Secret SECRET").len(), 1);
    }

    #[test]
    fn max_len_is_computed_or_capped() {
        let s = custom();
        assert_eq!(s.rule(0).map(|r| r.max_len), Some(10));
        assert_eq!(s.rule(2).map(|r| r.max_len), Some(13));
        let mut b = ScannerBuilder::new();
        b.add("u", DetectorSpec::pattern("U", r"x\d+"));
        let mut capped = DetectorSpec::pattern("C", r"y\d+");
        capped.max_len = Some(40);
        b.add("c", capped);
        let s = b.build().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.rule(0).map(|r| r.max_len), Some(DEFAULT_UNBOUNDED_CAP));
        assert_eq!(s.rule(1).map(|r| r.max_len), Some(40));
        assert_eq!(s.max_match_len(), DEFAULT_UNBOUNDED_CAP);
    }

    #[test]
    fn build_reports_all_errors_without_text() {
        let mut b = ScannerBuilder::new();
        b.add("bad1", DetectorSpec::pattern("A", r"(unclosed"));
        b.add("ok", DetectorSpec::pattern("B", r"fine"));
        b.add("bad2", DetectorSpec::pattern("C", r"a*"));
        b.add(
            "bad3",
            DetectorSpec::keywords("D", Vec::<String>::new(), true, true),
        );
        let e = b.build().err().map(|e| e.errors).unwrap_or_default();
        let ids: Vec<&str> = e.iter().map(|e| e.rule_id.as_str()).collect();
        assert_eq!(ids, vec!["bad1", "bad2", "bad3"]);
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }
}
