//! The streaming guard's quiet filter: one lazy DFA over a look-around-free superset of
//! every rule that reads answer text, stepped once over each streamed byte, telling where
//! no rule can match so that text up to there is released at once, without a scan.
//!
//! The DFA is unanchored with `MatchKind::All`: its state after a byte is the set of every
//! partial match still alive, of every pattern, from every start. So at an offset where the
//! state is the start state, no match is in progress across that offset and none ends
//! there, and every match that ended before it was seen as a match state. Text up to such a
//! *quiet* offset, when no match was seen in it, holds no match of any rule: the scanner's
//! findings are spans of its rules' regex matches (or keywords), validators only accept
//! or shorten them, and each pattern here is its rule's pattern with every look-around
//! assertion (`\b`, `^`, ...) removed, which matches wherever the rule's pattern matches,
//! on the whole text or on any window of it. Releasing such text unscanned therefore gives
//! exactly what the scan would: the same bytes, no finding.
//!
//! The scanner reads look-alike characters folded (`policy::fold`), so the DFA is fed the
//! folded characters too (a fullwidth digit as its ASCII digit, an invisible character not
//! at all) and quiet offsets fall between whole characters: the argument above then holds
//! for the folded text, which is what the scanner reads.
//!
//! Where the filter saw a match, or cannot tell (the cache was cleared under a position's
//! saved state), the stream guard falls back to its exact windowed scan.

use std::sync::Mutex;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Hir, HirKind};

use crate::policy::fold;

/// Caches kept for reuse (warm: a new stream starts with the states earlier ones built).
const POOL_MAX: usize = 32;
/// Lazy DFA cache capacity per stream.
const CACHE_BYTES: usize = 1 << 20;

/// The filter of one policy snapshot (see the module docs).
#[derive(Debug)]
pub struct QuietFilter {
    dfa: DFA,
    pool: Mutex<Vec<Cache>>,
}

/// A stream's cache of the filter's DFA, with its unanchored start state.
#[derive(Debug)]
pub struct QuietCache {
    cache: Cache,
    start: Option<LazyStateID>,
    /// `cache.clear_count()` when `start` was computed.
    clears: usize,
}

impl QuietCache {
    fn start(&mut self, dfa: &DFA) -> Option<LazyStateID> {
        if self.start.is_none() || self.clears != self.cache.clear_count() {
            let cfg = start::Config::new().anchored(Anchored::No);
            self.start = dfa.start_state(&mut self.cache, &cfg).ok();
            self.clears = self.cache.clear_count();
        }
        self.start
    }
}

/// `hir` with every look-around assertion replaced by the empty match (and captures
/// dropped): it matches wherever `hir` matches, also on any window of a text.
fn strip_look(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) => hir.clone(),
        HirKind::Look(_) => Hir::empty(),
        HirKind::Repetition(r) => {
            let mut r = r.clone();
            r.sub = Box::new(strip_look(&r.sub));
            Hir::repetition(r)
        }
        HirKind::Capture(c) => strip_look(&c.sub),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(strip_look).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(strip_look).collect()),
    }
}

/// A rule's matcher as the filter sees it.
pub enum Source<'a> {
    /// A scanner pattern (flags applied as the scanner compiles it).
    Pattern(&'a str),
    /// Keywords, compared ignoring case or not.
    Keywords(&'a [String], bool),
}

impl QuietFilter {
    /// The filter over `sources`; `None` when there is nothing to filter, when a pattern
    /// cannot be read here or can match the empty text (every offset would be busy), or
    /// when the DFA cannot be built: the stream guard then scans as without it.
    pub fn new<'a>(sources: impl IntoIterator<Item = Source<'a>>) -> Option<QuietFilter> {
        let mut hirs = Vec::new();
        for s in sources {
            match s {
                Source::Pattern(p) => {
                    let hir = regex_syntax::ParserBuilder::new().build().parse(p).ok()?;
                    hirs.push(strip_look(&hir));
                }
                Source::Keywords(words, case_insensitive) => {
                    for w in words {
                        let lit = regex_syntax::escape(w);
                        let p = if case_insensitive {
                            format!("(?i:{lit})")
                        } else {
                            lit
                        };
                        hirs.push(regex_syntax::Parser::new().parse(&p).ok()?);
                    }
                }
            }
        }
        if hirs.is_empty() || hirs.iter().any(|h| h.properties().minimum_len() == Some(0)) {
            return None;
        }
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(64 << 20)),
            )
            .build_many_from_hir(&hirs)
            .ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(CACHE_BYTES)
                    .skip_cache_capacity_check(true),
            )
            .build_from_nfa(nfa)
            .ok()?;
        Some(QuietFilter {
            dfa,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// A cache for one stream (a pooled, warm one when there is one).
    pub fn cache(&self) -> QuietCache {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        QuietCache {
            cache: pooled.unwrap_or_else(|| self.dfa.create_cache()),
            start: None,
            clears: 0,
        }
    }

    /// Return a stream's cache to the pool.
    pub fn give_back(&self, c: QuietCache) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < POOL_MAX {
                p.push(c.cache);
            }
        }
    }
}

/// The filter's view of one streamed text (absolute byte offsets).
#[derive(Debug, Default, Clone)]
pub struct Quiet {
    /// DFA state after `scanned` bytes, and the cache's clear count when it was saved.
    state: Option<(LazyStateID, usize)>,
    scanned: usize,
    quiet: usize,
    busy_until: usize,
    broken: bool,
}

impl Quiet {
    /// Feed the bytes of `text` (which starts at absolute offset `base`) not fed yet.
    pub fn advance(&mut self, f: &QuietFilter, c: &mut QuietCache, text: &[u8], base: usize) {
        if self.broken {
            return;
        }
        // Bytes dropped before they were fed: what they held is unknown.
        let Some(new) = self.scanned.checked_sub(base).and_then(|i| text.get(i..)) else {
            self.broken = true;
            return;
        };
        let Some(mut start) = c.start(&f.dfa) else {
            self.broken = true;
            return;
        };
        let mut sid = match self.state {
            None if self.scanned == 0 => start,
            // Saved before the cache was cleared: the id is gone, and with it what was in
            // progress.
            Some((sid, clears)) if clears == c.cache.clear_count() => sid,
            _ => {
                self.broken = true;
                return;
            }
        };
        let base = self.scanned;
        // The DFA reads the text folded, as the scanner does (see `policy::fold`): a
        // look-alike character is fed as its ASCII byte, an invisible one not at all. Quiet
        // points fall after whole characters. A character cut at the end of `text` waits.
        let mut k = 0;
        while let Some(&b) = new.get(k) {
            if b < 0x80 {
                sid = match self.step(f, c, sid, b, base + k, &mut start) {
                    Some(s) => s,
                    None => return,
                };
                k += 1;
                if sid == start {
                    self.quiet = base + k;
                }
                continue;
            }
            let Some((len, folded)) = fold::read_at(new, k) else {
                break;
            };
            let Some(ch) = new.get(k..k + len) else {
                break;
            };
            let one;
            let feed: &[u8] = match folded {
                Some(Some(x)) => {
                    one = [x];
                    &one
                }
                Some(None) => &[],
                None => ch,
            };
            for (j, &x) in feed.iter().enumerate() {
                // A match ends before this byte: at the start of a folded character, or here.
                let at = base + k + if folded.is_some() { 0 } else { j };
                sid = match self.step(f, c, sid, x, at, &mut start) {
                    Some(s) => s,
                    None => return,
                };
            }
            k += len;
            if sid == start {
                self.quiet = base + k;
            }
        }
        self.scanned = base + k;
        self.state = Some((sid, c.cache.clear_count()));
    }

    /// One byte through the DFA; `at` is where a match the new state reports ended
    /// (the DFA reports a match one byte late). `None`: the filter broke (it can no longer
    /// tell), and the stream guard scans from now on.
    fn step(
        &mut self,
        f: &QuietFilter,
        c: &mut QuietCache,
        sid: LazyStateID,
        b: u8,
        at: usize,
        start: &mut LazyStateID,
    ) -> Option<LazyStateID> {
        let Ok(sid) = f.dfa.next_state(&mut c.cache, sid, b) else {
            self.broken = true;
            return None;
        };
        if sid.is_tagged() {
            if sid.is_match() {
                self.busy_until = at;
            }
            if sid.is_quit() || sid.is_unknown() {
                self.broken = true;
                return None;
            }
        }
        if c.clears != c.cache.clear_count() {
            let Some(s) = c.start(&f.dfa) else {
                self.broken = true;
                return None;
            };
            *start = s;
        }
        Some(sid)
    }

    /// The last offset at which no match was in progress or ending, when no match ended
    /// at or after `from`; `None` when one did (or the filter cannot tell).
    pub fn quiet_point(&self, from: usize) -> Option<usize> {
        (!self.broken && self.busy_until <= from).then_some(self.quiet)
    }

    /// Whether the text fed so far, as a whole text, has no match reaching past `from`:
    /// no match ended at or after it, and none ends at the end of the text.
    pub fn clear_to_end(&self, f: &QuietFilter, c: &mut QuietCache, from: usize) -> bool {
        if self.broken || self.busy_until > from {
            return false;
        }
        match self.state {
            None => self.scanned == 0,
            Some((sid, clears)) if clears == c.cache.clear_count() => {
                matches!(f.dfa.next_eoi_state(&mut c.cache, sid), Ok(s) if !s.is_match() && !s.is_quit() && !s.is_unknown())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(patterns: &[&str]) -> QuietFilter {
        match QuietFilter::new(patterns.iter().map(|p| Source::Pattern(p))) {
            Some(f) => f,
            None => panic!("filter did not build"),
        }
    }

    fn feed(f: &QuietFilter, text: &str, steps: usize) -> Quiet {
        let mut c = f.cache();
        let mut q = Quiet::default();
        let b = text.as_bytes();
        let mut at = 0;
        while at < b.len() {
            let end = (at + steps).min(b.len());
            q.advance(f, &mut c, &b[..end], 0);
            at = end;
        }
        f.give_back(c);
        q
    }

    #[test]
    fn quiet_after_words_that_cannot_continue_a_match() {
        let f = filter(&[
            r"[A-Za-z0-9._%+\-]+@[a-z]+\.[a-z]{2,}",
            r"\d{3}-\d{2}-\d{4}",
        ]);
        let q = feed(&f, "Hello there, friend", 3);
        // After "Hello " and "there, " nothing is in progress; "friend" may still start
        // an address.
        assert_eq!(q.quiet_point(0), Some("Hello there, ".len()));
    }

    #[test]
    fn a_match_makes_the_text_busy_until_past_it() {
        let f = filter(&[r"\d{3}-\d{2}-\d{4}"]);
        let text = "ssn 536-22-8745 and more";
        let q = feed(&f, text, 2);
        let end = "ssn 536-22-8745".len();
        assert_eq!(q.quiet_point(0), None);
        assert_eq!(q.quiet_point(end - 1), None);
        assert_eq!(q.quiet_point(end), Some(text.len()));
        let mut c = f.cache();
        assert!(q.clear_to_end(&f, &mut c, end));
        assert!(!q.clear_to_end(&f, &mut c, 0));
    }

    #[test]
    fn a_match_at_the_very_end_is_seen_at_the_end() {
        let f = filter(&[r"\d{3}-\d{2}-\d{4}"]);
        let q = feed(&f, "ssn 536-22-8745", 4);
        assert_eq!(q.quiet_point(0), Some(4));
        let mut c = f.cache();
        assert!(!q.clear_to_end(&f, &mut c, 0));
    }

    #[test]
    fn word_boundaries_are_dropped_so_windows_are_covered() {
        // `\bpass\b` cannot match inside "compass" as a whole text, but can in a window
        // starting at "pass": the filter must call it busy.
        let f = filter(&[r"\bpass\b"]);
        let q = feed(&f, "compass ", 8);
        assert_eq!(q.quiet_point(0), None);
    }

    #[test]
    fn keywords_and_case() {
        let words = vec!["Secret".to_string()];
        let f = match QuietFilter::new([Source::Keywords(&words, true)]) {
            Some(f) => f,
            None => panic!("no filter"),
        };
        let q = feed(&f, "a SECRET b", 1);
        assert_eq!(q.quiet_point(0), None);
        let q = feed(&f, "a secr b", 1);
        assert_eq!(q.quiet_point(0), Some(8));
    }

    #[test]
    fn look_alike_values_keep_the_filter_busy() {
        let f = filter(&[r"\d{3}-\d{2}-\d{4}", r"ghp_[A-Za-z0-9]{6}"]);
        for text in [
            "ssn ５３６-２２-８７４５ ok",
            "ssn 5\u{200B}3\u{200B}6-22-8745 ok",
            "ssn 536–22–8745 ok",
            "ssn ৫৩৬-২২-৮৭৪৫ ok",
            "key ｇｈｐ＿abcdef ok",
        ] {
            for steps in [1, 3, 7] {
                let q = feed(&f, text, steps);
                // The match ends before " ok": not quiet from the start.
                assert_eq!(q.quiet_point(0), None, "{text:?} by {steps}");
            }
        }
        // Look-alike text that holds no value stays quiet.
        let q = feed(&f, "東京　５３ ok", 2);
        assert_eq!(q.quiet_point(0), Some("東京　５３ ok".len()));
    }

    #[test]
    fn empty_matching_patterns_give_no_filter() {
        assert!(QuietFilter::new([Source::Pattern(r"\d*")]).is_none());
        assert!(QuietFilter::new([Source::Pattern(r"\b")]).is_none());
    }
}
