//! The guardrail engine: the compiled `PolicySet` (all rules of all policy files in one
//! scanner), rule applicability (direction, location, route, model), overlap resolution,
//! and evaluation of a whole provider body (request or response) with in-place redaction.
//!
//! Sans-io: takes JSON values and text, returns verdicts; no tokio inside.

pub mod policy;
pub mod quiet;

use std::sync::Arc;

use serde_json::Value;

use crate::config::ModelPattern;
use crate::policy::Scanner;
use crate::provider::{self, ApiFormat, Segment, SegmentKind};
use crate::redact::{Redactor, Replacement, Style};

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Log,
    Alert,
    Redact,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Alert => "alert",
            Action::Redact => "redact",
            Action::Deny => "deny",
        }
    }
}

/// How serious a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Which side of a call a rule inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
    Both,
}

/// The side being evaluated now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

/// A set of locations inside a call (bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locations(u8);

impl Locations {
    pub const NONE: Locations = Locations(0);
    pub const SYSTEM: Locations = Locations(1);
    pub const USER: Locations = Locations(2);
    pub const ASSISTANT: Locations = Locations(4);
    pub const TOOL_ARGUMENTS: Locations = Locations(8);
    pub const TOOL_RESULTS: Locations = Locations(16);
    pub const ALL: Locations = Locations(31);
    /// Names accepted in policy files.
    pub const NAMES: [&'static str; 5] = [
        "system",
        "user",
        "assistant",
        "tool_arguments",
        "tool_results",
    ];

    pub fn parse(name: &str) -> Option<Locations> {
        Some(match name {
            "system" => Locations::SYSTEM,
            "user" => Locations::USER,
            "assistant" => Locations::ASSISTANT,
            "tool_arguments" => Locations::TOOL_ARGUMENTS,
            "tool_results" => Locations::TOOL_RESULTS,
            _ => return None,
        })
    }

    pub fn union(self, o: Locations) -> Locations {
        Locations(self.0 | o.0)
    }

    pub fn intersects(self, o: Locations) -> bool {
        self.0 & o.0 != 0
    }

    /// The location of a normalized segment. Developer messages count as system prompt;
    /// embedding inputs and completion prompts as user text; tool names as tool arguments.
    pub fn of(kind: SegmentKind) -> Locations {
        match kind {
            SegmentKind::System | SegmentKind::Developer => Locations::SYSTEM,
            SegmentKind::User
            | SegmentKind::EmbeddingInput
            | SegmentKind::Prompt
            | SegmentKind::Other => Locations::USER,
            SegmentKind::Assistant | SegmentKind::Reasoning => Locations::ASSISTANT,
            SegmentKind::ToolCallName | SegmentKind::ToolCallArguments => Locations::TOOL_ARGUMENTS,
            SegmentKind::ToolResult => Locations::TOOL_RESULTS,
        }
    }
}

/// Route or model selector; empty (or containing `*`) selects everything.
#[derive(Debug, Clone)]
pub struct Selector(Vec<ModelPattern>);

impl Selector {
    pub fn new(items: &[String]) -> Selector {
        if items.iter().any(|s| s == "*") {
            return Selector(Vec::new());
        }
        Selector(
            items
                .iter()
                .map(|s| match s.strip_suffix('*') {
                    Some(p) => ModelPattern::Prefix(p.to_string()),
                    None => ModelPattern::Exact(s.clone()),
                })
                .collect(),
        )
    }

    pub fn matches(&self, value: Option<&str>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        value.is_some_and(|v| self.0.iter().any(|p| p.matches(v)))
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// `policy/rule`.
    pub id: Arc<str>,
    pub policy_id: Arc<str>,
    /// Type label override for placeholders (default: the detector's type).
    pub kind: Option<Arc<str>>,
    pub action: Action,
    pub severity: Severity,
    /// Evaluated and recorded, never enforced.
    pub monitor: bool,
    pub direction: Direction,
    pub locations: Locations,
    /// Policy-level and rule-level selectors; both must match.
    pub routes: [Selector; 2],
    pub models: [Selector; 2],
    pub style: Style,
    pub deny_status: u16,
    /// Longest match of any of the rule's detectors (bytes).
    pub max_len: usize,
}

impl CompiledRule {
    fn applies(&self, ctx: &Ctx<'_>) -> bool {
        let dir = matches!(
            (self.direction, ctx.side),
            (Direction::Both, _)
                | (Direction::Request, Side::Request)
                | (Direction::Response, Side::Response)
        );
        dir && self.routes.iter().all(|s| s.matches(Some(ctx.route)))
            && self.models.iter().all(|s| s.matches(ctx.model))
    }

    /// Whether a match changes what is forwarded (enforced deny or redact).
    pub fn enforced(&self) -> bool {
        !self.monitor && matches!(self.action, Action::Deny | Action::Redact)
    }
}

/// One scanner rule (a rule with a group detector has several) and its anchor literals.
#[derive(Debug, Clone)]
pub struct SubRule {
    /// Index of the policy rule it belongs to.
    pub rule: usize,
    /// Literals one of which every match contains (the scanner's prefilter).
    pub anchors: Vec<String>,
    /// Literals every match starts with (lower-cased), when the pattern has a finite set.
    pub prefixes: Option<Vec<Vec<u8>>>,
    /// Longest match (bytes).
    pub max_len: usize,
    /// The scanner's pattern for a regex rule (case-insensitivity applied as the scanner
    /// does), for the streaming hold's dead-state check.
    pub pattern: Option<String>,
    /// A keywords rule's words and whether they are compared ignoring case.
    pub keywords: Option<(Vec<String>, bool)>,
}

/// Rules longer than this with anchor literals hold stream text back only around an anchor.
pub const SHORT_RULE_LEN: usize = 64;

/// How much streamed text must be held back (see `redact::stream`): a short fixed window,
/// plus holds around anchor literals of long rules.
#[derive(Debug)]
pub struct HoldPlan {
    /// Bytes always held (longest short or unanchored rule, plus the context margin).
    pub window: usize,
    /// All anchors of the policy set (shared, built once per snapshot).
    pub anchors: Option<Arc<AnchorSet>>,
    /// Which entries of `anchors.list` belong to rules applicable to this stream.
    pub active: Vec<bool>,
    /// Where no rule reading answer text can match (see [`quiet`]): text up to there is
    /// released unscanned.
    pub quiet: Option<Arc<quiet::QuietFilter>>,
}

/// Anchor literals of every long rule of a snapshot, in one automaton built at compile time.
#[derive(Debug)]
pub struct AnchorSet {
    pub list: Vec<Anchor>,
    /// ASCII case-insensitive DFA over the anchors' literals (`MatchKind::Standard`: every
    /// occurrence, overlapping), stepped byte by byte so a stream feeds each byte once.
    pub automaton: aho_corasick::dfa::DFA,
    /// Its unanchored start state.
    pub start: aho_corasick::automaton::StateID,
    /// Proper prefixes (lower-cased) of the literals that matter at the end of a streamed
    /// text, with one entry per rule owning such a literal: a representative anchor index
    /// (for the rule's activity) and how far before the prefix a match containing it may
    /// start (`max_len + CONTEXT_MARGIN - literal length`). A prefix anchor (`at_start`)
    /// shorter than `CONTEXT_MARGIN` is left out: a match through it starts inside the last
    /// `CONTEXT_MARGIN` bytes, which the fixed window always holds.
    pub tail_prefixes: std::collections::HashMap<Vec<u8>, Vec<(usize, usize)>>,
    /// Longest literal of `tail_prefixes` (bytes).
    pub tail_longest: usize,
    /// Per scanner sub-rule (`Anchor::sub`), the lazy DFA of a long regex rule: a match
    /// through an anchor occurrence starts at it (prefix anchors) or within its reach before
    /// it, so once the DFA runs anchored at every possible start have died, no match through
    /// it can end later and its hold can end early (a URL or `token` in prose is held for a
    /// few bytes, not for the rule's longest match).
    pub dfas: Vec<Option<regex_automata::hybrid::dfa::DFA>>,
}

/// One literal that a long rule's matches contain.
#[derive(Debug)]
pub struct Anchor {
    /// Lower-case literal bytes.
    pub literal: Vec<u8>,
    /// Longest match of its scanner rule.
    pub max_len: usize,
    /// Policy rule index.
    pub rule: usize,
    /// True when every match starts with one of the rule's anchors (a prefix literal): a
    /// match then starts exactly at an anchor occurrence. False for a literal somewhere in
    /// the match (the scanner's prefilter): the match may start up to `max_len` before it.
    pub at_start: bool,
    /// Index of its scanner sub-rule.
    pub sub: usize,
}

/// A computed hold plan with the applicable rules and location it is for.
type PlanEntry = (Vec<bool>, Locations, Arc<HoldPlan>);

/// The compiled, immutable policy snapshot.
#[derive(Debug)]
pub struct PolicySet {
    /// `None` when there are no rules.
    scanner: Option<Scanner>,
    rules: Vec<CompiledRule>,
    scanner_to_rule: Vec<SubRule>,
    anchors: Option<Arc<AnchorSet>>,
    /// The stream guard's quiet filter over every rule that reads answer text.
    quiet: Option<Arc<quiet::QuietFilter>>,
    /// Hold plans already computed, by applicable rules and location (a few per snapshot:
    /// one per route / model combination that has its own rules).
    plans: std::sync::Mutex<Vec<PlanEntry>>,
    version: String,
    files: Vec<std::path::PathBuf>,
}

/// Where a call is evaluated: side, route, model.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub side: Side,
    pub route: &'a str,
    pub model: Option<&'a str>,
}

/// Rules applicable to one call side (computed once per call).
#[derive(Debug, Clone)]
pub struct Applicable {
    rules: Vec<bool>,
    any: bool,
}

impl Applicable {
    /// Whether any rule applies at all (if not, the body need not be parsed).
    pub fn any(&self) -> bool {
        self.any
    }
}

/// One match of an applicable rule inside one text (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    pub kind: Arc<str>,
}

/// A recorded violation: never the matched value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub rule_id: Arc<str>,
    pub policy_id: Arc<str>,
    pub kind: Arc<str>,
    pub action: &'static str,
    pub severity: &'static str,
    /// False for monitor-mode rules (recorded only).
    pub enforced: bool,
    pub side: &'static str,
    /// JSON location, e.g. `messages[1].content`.
    pub location: String,
    pub start: usize,
    pub end: usize,
}

/// What to do with a call side after evaluation.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// Set when an enforced deny rule matched: (status, rule ids).
    pub deny: Option<(u16, Vec<Arc<str>>)>,
    /// Whether the body was modified (redacted).
    pub modified: bool,
}

impl Outcome {
    fn add_deny(&mut self, status: u16, rule: &Arc<str>) {
        match &mut self.deny {
            Some((_, ids)) => {
                if !ids.contains(rule) {
                    ids.push(rule.clone());
                }
            }
            None => self.deny = Some((status, vec![rule.clone()])),
        }
    }
}

/// A provider's error answer after [`PolicySet::guard_error_body`].
#[derive(Debug, Default)]
pub struct GuardedError {
    pub outcome: Outcome,
    /// The redacted body; `None` = relay the body as received.
    pub body: Option<Vec<u8>>,
}

/// The mutable state of evaluating one side of one call.
pub struct Pass<'a> {
    pub app: &'a Applicable,
    pub side: Side,
    pub redactor: &'a mut Redactor,
    pub out: &'a mut Outcome,
}

/// A lazy DFA for a rule's pattern (the streaming hold's dead-state check); `None` when it
/// cannot be built (the hold then lasts for the rule's longest match).
fn hold_dfa(pattern: &str) -> Option<regex_automata::hybrid::dfa::DFA> {
    use regex_automata::hybrid::dfa::DFA;
    DFA::builder()
        .configure(DFA::config().unicode_word_boundary(true))
        .build(pattern)
        .ok()
}

/// Extra bytes of context kept around a streaming window (validators look at neighbours).
pub const CONTEXT_MARGIN: usize = 64;

impl PolicySet {
    fn new(
        scanner: Option<Scanner>,
        rules: Vec<CompiledRule>,
        scanner_to_rule: Vec<SubRule>,
        version: String,
        files: Vec<std::path::PathBuf>,
    ) -> PolicySet {
        let mut list: Vec<Anchor> = Vec::new();
        for (si, sub) in scanner_to_rule
            .iter()
            .enumerate()
            .filter(|(_, s)| s.max_len > SHORT_RULE_LEN)
        {
            let anchor = |literal: Vec<u8>, at_start: bool| Anchor {
                literal,
                max_len: sub.max_len,
                rule: sub.rule,
                at_start,
                sub: si,
            };
            match &sub.prefixes {
                Some(p) => list.extend(p.iter().map(|l| anchor(l.clone(), true))),
                None => list.extend(
                    sub.anchors
                        .iter()
                        .map(|a| anchor(a.to_ascii_lowercase().into_bytes(), false)),
                ),
            }
        }
        let anchors = if list.is_empty() {
            None
        } else {
            use aho_corasick::automaton::Automaton;
            aho_corasick::dfa::DFA::builder()
                .ascii_case_insensitive(true)
                .match_kind(aho_corasick::MatchKind::Standard)
                .start_kind(aho_corasick::StartKind::Unanchored)
                .build(list.iter().map(|a| a.literal.as_slice()))
                .ok()
                .and_then(|automaton| {
                    let start = automaton.start_state(aho_corasick::Anchored::No).ok()?;
                    Some((automaton, start))
                })
                .map(|(automaton, start)| {
                    let dfas = scanner_to_rule
                        .iter()
                        .map(|sub| {
                            sub.pattern
                                .as_deref()
                                .filter(|_| sub.max_len > SHORT_RULE_LEN)
                                .and_then(hold_dfa)
                        })
                        .collect();
                    let mut tail_prefixes: std::collections::HashMap<Vec<u8>, Vec<(usize, usize)>> =
                        std::collections::HashMap::new();
                    let mut tail_longest = 0;
                    for (i, a) in list.iter().enumerate() {
                        if a.at_start && a.literal.len() <= CONTEXT_MARGIN {
                            continue;
                        }
                        let back = if a.at_start {
                            0
                        } else {
                            (a.max_len + CONTEXT_MARGIN).saturating_sub(a.literal.len())
                        };
                        tail_longest = tail_longest.max(a.literal.len());
                        for k in 1..a.literal.len() {
                            let key = a.literal[..k].to_ascii_lowercase();
                            let entries = tail_prefixes.entry(key).or_default();
                            let same_rule = entries
                                .iter_mut()
                                .find(|(j, _)| list.get(*j).is_some_and(|b| b.rule == a.rule));
                            match same_rule {
                                Some((_, b)) => *b = (*b).max(back),
                                None => entries.push((i, back)),
                            }
                        }
                    }
                    Arc::new(AnchorSet {
                        list,
                        automaton,
                        start,
                        tail_prefixes,
                        tail_longest,
                        dfas,
                    })
                })
        };
        let quiet = {
            let reads_answers = |sub: &&SubRule| {
                rules
                    .get(sub.rule)
                    .is_some_and(|r| r.locations.intersects(Locations::ASSISTANT))
            };
            let subs: Vec<&SubRule> = scanner_to_rule.iter().filter(reads_answers).collect();
            let sources: Option<Vec<quiet::Source<'_>>> = subs
                .iter()
                .map(|sub| match (&sub.pattern, &sub.keywords) {
                    (Some(p), _) => Some(quiet::Source::Pattern(p)),
                    (None, Some((w, ci))) => Some(quiet::Source::Keywords(w, *ci)),
                    (None, None) => None,
                })
                .collect();
            sources.and_then(quiet::QuietFilter::new).map(Arc::new)
        };
        PolicySet {
            scanner,
            rules,
            scanner_to_rule,
            anchors,
            quiet,
            plans: std::sync::Mutex::new(Vec::new()),
            version,
            files,
        }
    }

    /// The snapshot's compiled scanner (every detector its rules use, each match labeled
    /// with its type): what `parapet eval --policies DIR` scores. `None` without rules.
    pub fn scanner(&self) -> Option<&Scanner> {
        self.scanner.as_ref()
    }

    /// An empty set (no policies): every call passes untouched.
    pub fn empty() -> PolicySet {
        PolicySet::new(None, Vec::new(), Vec::new(), "empty".into(), Vec::new())
    }

    /// Short hash of the policy files (names + contents): the active policy version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Files the set was compiled from.
    pub fn files(&self) -> &[std::path::PathBuf] {
        &self.files
    }

    /// All compiled rules.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn rule(&self, idx: usize) -> Option<&CompiledRule> {
        self.rules.get(idx)
    }

    /// Which rules apply to this side of this call.
    pub fn applicable(&self, ctx: &Ctx<'_>) -> Applicable {
        let rules: Vec<bool> = self.rules.iter().map(|r| r.applies(ctx)).collect();
        let any = rules.iter().any(|x| *x);
        Applicable { rules, any }
    }

    /// Longest possible match of the rules applicable at `loc` (the streaming window).
    pub fn max_len(&self, app: &Applicable, loc: Locations) -> usize {
        self.rules
            .iter()
            .zip(&app.rules)
            .filter(|(r, a)| **a && r.locations.intersects(loc))
            .map(|(r, _)| r.max_len)
            .max()
            .unwrap_or(0)
    }

    /// The streaming hold-back plan for the rules applicable at `loc`.
    /// [`PolicySet::compute_hold_plan`], computed once per applicable rule set and location
    /// (streams of one route share it).
    pub fn hold_plan(&self, app: &Applicable, loc: Locations) -> Arc<HoldPlan> {
        const KEEP: usize = 64;
        if let Ok(plans) = self.plans.lock() {
            if let Some((_, _, p)) = plans.iter().find(|(r, l, _)| *l == loc && *r == app.rules) {
                return p.clone();
            }
        }
        let plan = Arc::new(self.compute_hold_plan(app, loc));
        if let Ok(mut plans) = self.plans.lock() {
            if plans.len() < KEEP {
                plans.push((app.rules.clone(), loc, plan.clone()));
            }
        }
        plan
    }

    fn compute_hold_plan(&self, app: &Applicable, loc: Locations) -> HoldPlan {
        let applies = |rule: usize| {
            app.rules.get(rule).copied().unwrap_or(false)
                && self
                    .rules
                    .get(rule)
                    .is_some_and(|r| r.locations.intersects(loc))
        };
        let anchored = |sub: &SubRule| {
            sub.max_len > SHORT_RULE_LEN
                && (sub.prefixes.is_some() || !sub.anchors.is_empty())
                && self.anchors.is_some()
        };
        let window = self
            .scanner_to_rule
            .iter()
            .filter(|sub| applies(sub.rule) && !anchored(sub))
            .map(|sub| sub.max_len)
            .max()
            .unwrap_or(0);
        let active = self
            .anchors
            .as_ref()
            .map(|a| a.list.iter().map(|x| applies(x.rule)).collect())
            .unwrap_or_default();
        HoldPlan {
            window: window + CONTEXT_MARGIN,
            anchors: self.anchors.clone(),
            active,
            quiet: self.quiet.clone(),
        }
    }

    /// Whether any applicable rule looks at `loc`.
    pub fn covers(&self, app: &Applicable, loc: Locations) -> bool {
        self.rules
            .iter()
            .zip(&app.rules)
            .any(|(r, a)| *a && r.locations.intersects(loc))
    }

    /// Matches of applicable rules in `text` at `loc`, overlaps resolved: enforced rules
    /// first, then the stronger action, then the longer span, then the earlier start.
    pub fn find(&self, text: &str, loc: Locations, app: &Applicable) -> Vec<Finding> {
        let Some(scanner) = &self.scanner else {
            return Vec::new();
        };
        if !app.any || text.is_empty() {
            return Vec::new();
        }
        let mut cands: Vec<Finding> = Vec::new();
        // Look-alike characters folded on both sides (see `policy::fold`); the stream guard
        // holds back and re-reads text in folded bytes, so a stream gives the same output.
        let matches = scanner.scan_all_folded(text);
        for m in matches {
            let Some(ri) = self.scanner_to_rule.get(m.rule).map(|s| s.rule) else {
                continue;
            };
            let Some(rule) = self.rules.get(ri) else {
                continue;
            };
            if !app.rules.get(ri).copied().unwrap_or(false) || !rule.locations.intersects(loc) {
                continue;
            }
            let kind = rule.kind.clone().unwrap_or(m.kind);
            cands.push(Finding {
                rule: ri,
                start: m.start,
                end: m.end,
                kind,
            });
        }
        if cands.len() <= 1 {
            return cands;
        }
        let rules = &self.rules;
        let prio = |f: &Finding| {
            let r = &rules[f.rule];
            (
                r.enforced(),
                r.action,
                f.end - f.start,
                std::cmp::Reverse(f.start),
                std::cmp::Reverse(f.rule),
            )
        };
        cands.sort_by_key(|f| std::cmp::Reverse(prio(f)));
        let mut chosen: Vec<Finding> = Vec::new();
        for c in cands {
            if chosen.iter().all(|k| c.end <= k.start || c.start >= k.end) {
                chosen.push(c);
            }
        }
        chosen.sort_by_key(|f| (f.start, f.end));
        chosen
    }

    /// `text` with every match of every rule of the set (any side, location, selector or
    /// mode) replaced by `[KIND]`: for stored summaries, which never hold a matched value,
    /// also not one a monitor / alert / log rule only reported.
    pub fn mask_all(&self, text: &str) -> String {
        let all = Applicable {
            rules: vec![true; self.rules.len()],
            any: !self.rules.is_empty(),
        };
        let findings = self.find(text, Locations::ALL, &all);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            out.push_str(&text[at..f.start]);
            out.push('[');
            out.push_str(&crate::redact::label(&f.kind));
            out.push(']');
            at = f.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Evaluate `text` at `loc`: record violations, note denies, and return the redacted text
    /// if an enforced redact rule matched.
    pub fn guard_text(
        &self,
        text: &str,
        loc: Locations,
        location: &dyn Fn() -> String,
        pass: &mut Pass<'_>,
    ) -> Option<String> {
        let findings = self.find(text, loc, pass.app);
        self.apply_findings(text, &findings, location, pass)
    }

    /// Record `findings` of `text` as violations, note denies, and return the redacted text
    /// if an enforced redact rule is among them.
    pub fn apply_findings(
        &self,
        text: &str,
        findings: &[Finding],
        location: &dyn Fn() -> String,
        pass: &mut Pass<'_>,
    ) -> Option<String> {
        if findings.is_empty() {
            return None;
        }
        let mut reps = Vec::new();
        let where_ = location();
        let side = pass.side;
        let out = &mut *pass.out;
        for f in findings {
            let Some(rule) = self.rules.get(f.rule) else {
                continue;
            };
            out.violations.push(Violation {
                rule_id: rule.id.clone(),
                policy_id: rule.policy_id.clone(),
                kind: f.kind.clone(),
                action: rule.action.as_str(),
                severity: rule.severity.as_str(),
                enforced: !rule.monitor,
                side: side.as_str(),
                location: where_.clone(),
                start: f.start,
                end: f.end,
            });
            if rule.monitor {
                continue;
            }
            match rule.action {
                Action::Deny => out.add_deny(rule.deny_status, &rule.id),
                Action::Redact => reps.push(Replacement {
                    start: f.start,
                    end: f.end,
                    kind: &f.kind,
                    style: &rule.style,
                }),
                Action::Alert | Action::Log => {}
            }
        }
        if reps.is_empty() {
            return None;
        }
        Some(pass.redactor.apply(text, &reps))
    }

    /// Guard one segment's text. Tool-call arguments that are JSON are guarded leaf by leaf
    /// (string values), so the result stays valid JSON of the same shape.
    pub fn guard_segment_text(
        &self,
        kind: SegmentKind,
        text: &str,
        location: &dyn Fn() -> String,
        pass: &mut Pass<'_>,
    ) -> Option<String> {
        let loc = Locations::of(kind);
        if kind == SegmentKind::ToolCallArguments {
            if let Ok(mut v) = serde_json::from_str::<Value>(text) {
                if v.is_object() || v.is_array() {
                    let mut changed = false;
                    let mut path = Vec::new();
                    self.guard_json_leaves(&mut v, &mut path, loc, location, pass, &mut changed);
                    return if changed {
                        serde_json::to_string(&v).ok()
                    } else {
                        None
                    };
                }
            }
        }
        self.guard_text(text, loc, location, pass)
    }

    fn guard_json_leaves(
        &self,
        v: &mut Value,
        path: &mut Vec<String>,
        loc: Locations,
        location: &dyn Fn() -> String,
        pass: &mut Pass<'_>,
        changed: &mut bool,
    ) {
        match v {
            Value::String(s) => {
                let at = || format!("{}#/{}", location(), path.join("/"));
                if let Some(new) = self.guard_text(s, loc, &at, pass) {
                    *s = new;
                    *changed = true;
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.guard_json_leaves(item, path, loc, location, pass, changed);
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    path.push(k.replace('~', "~0").replace('/', "~1"));
                    self.guard_json_leaves(item, path, loc, location, pass, changed);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Evaluate every segment of a parsed body and write redactions back in place; returns
    /// the indices of the segments whose text changed.
    pub fn guard_segments(
        &self,
        body: &mut Value,
        segments: &[Segment],
        pass: &mut Pass<'_>,
    ) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            let loc = || provider::path_to_string(&seg.path);
            if let Some(new) = self.guard_segment_text(seg.kind, &seg.text, &loc, pass) {
                match provider::set_segment_text(body, seg, &new) {
                    Ok(()) => {
                        pass.out.modified = true;
                        changed.push(i);
                    }
                    Err(e) => {
                        // Cannot write the redaction back: fail closed.
                        tracing::warn!(location = %loc(), error = %e, "redaction write-back failed; denying");
                        pass.out.deny = Some((500, vec![Arc::from("parapet/redaction-failed")]));
                    }
                }
            }
        }
        changed
    }

    /// Whether `body` (of `format`, on `side`) certainly needs nothing from the policies: a
    /// typed fast parse of the usual shape (OpenAI chat requests and chat / completions
    /// answers without tool calls) read it, and no applicable rule finds anything in any of
    /// its text segments — then `guard_request` / `guard_response` would give an empty
    /// outcome and leave the body as it is, so the caller can skip building a `Value`.
    /// `false` = run the full evaluation (another shape, or something was found).
    pub fn fast_clean(&self, format: ApiFormat, side: Side, body: &[u8], app: &Applicable) -> bool {
        let clean =
            |kind: SegmentKind, text: &str| self.find(text, Locations::of(kind), app).is_empty();
        match (side, format) {
            (Side::Request, ApiFormat::OpenAiChat) => provider::chat_request_texts(body)
                .is_some_and(|texts| texts.iter().all(|(k, t)| clean(*k, t))),
            (Side::Response, ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions) => {
                provider::answer_texts(body)
                    .is_some_and(|texts| texts.iter().all(|t| clean(SegmentKind::Assistant, t)))
            }
            _ => false,
        }
    }

    /// Evaluate a request body of a known format. `Err` = the body could not be understood.
    pub fn guard_request(
        &self,
        format: ApiFormat,
        body: &mut Value,
        app: &Applicable,
        redactor: &mut Redactor,
    ) -> Result<Outcome, provider::NormalizeError> {
        let view = provider::parse_request(format, body)?;
        Ok(self.guard_body(body, &view.segments, app, Side::Request, redactor))
    }

    /// Evaluate a non-streamed response body of a known format.
    pub fn guard_response(
        &self,
        format: ApiFormat,
        body: &mut Value,
        app: &Applicable,
        redactor: &mut Redactor,
    ) -> Result<Outcome, provider::NormalizeError> {
        let view = provider::parse_response(format, body)?;
        Ok(self.guard_body(body, &view.segments, app, Side::Response, redactor))
    }

    /// Evaluate a provider's error answer (a non-2xx body, or the data of an error event in
    /// a stream). It has no segments, but its messages can quote the request ("'…' is not
    /// one of …"), so every text in it is read by every applicable response rule, whatever
    /// the rules' locations: each string value of a JSON body (redacted in place, the JSON
    /// keeps its shape; object keys are not read), or the whole body when it is other text.
    /// Violations are located at `error#/<json pointer>` (or `error`).
    /// `Err` = the body is neither JSON nor UTF-8 text, so it cannot be inspected.
    pub fn guard_error_body(
        &self,
        body: &[u8],
        app: &Applicable,
        redactor: &mut Redactor,
    ) -> Result<GuardedError, &'static str> {
        let mut out = Outcome::default();
        let mut pass = Pass {
            app,
            side: Side::Response,
            redactor,
            out: &mut out,
        };
        let location = || String::from("error");
        let body = match crate::provider::strict::parse_strict(body) {
            Ok(mut v) => {
                let mut changed = false;
                let mut path = Vec::new();
                self.guard_json_leaves(
                    &mut v,
                    &mut path,
                    Locations::ALL,
                    &location,
                    &mut pass,
                    &mut changed,
                );
                changed
                    .then(|| serde_json::to_vec(&v))
                    .transpose()
                    .map_err(|_| "error body could not be re-serialized")?
            }
            Err(e) if crate::provider::strict::is_duplicate_key(&e) => {
                return Err("error body repeats a key within one JSON object")
            }
            Err(_) => {
                let text = std::str::from_utf8(body).map_err(|_| "error body is not text")?;
                self.guard_text(text, Locations::ALL, &location, &mut pass)
                    .map(String::into_bytes)
            }
        };
        out.modified = body.is_some();
        Ok(GuardedError { outcome: out, body })
    }

    fn guard_body(
        &self,
        body: &mut Value,
        segments: &[Segment],
        app: &Applicable,
        side: Side,
        redactor: &mut Redactor,
    ) -> Outcome {
        let mut out = Outcome::default();
        let mut pass = Pass {
            app,
            side,
            redactor,
            out: &mut out,
        };
        let changed = self.guard_segments(body, segments, &mut pass);
        if side == Side::Response && !changed.is_empty() {
            // The provider's tokens spell the text as it was before the redaction.
            let paths = changed
                .iter()
                .filter_map(|&i| segments.get(i))
                .map(|s| s.path.as_slice());
            provider::strip_logprobs(body, paths);
        }
        out
    }
}

#[cfg(test)]
mod tests;
