//! Policy files: the TOML/JSON schema (unknown keys are errors), loading a directory, and
//! compiling every rule of every file into one `PolicySet` — collecting all errors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Action, CompiledRule, Direction, Locations, PolicySet, Selector, Severity};
use crate::config::ConfigError;
use crate::policy::{builtin_specs, Category, DetectorSpec, Matcher, ScannerBuilder};
use crate::redact::Style;

/// One policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyFile {
    pub policy: RawPolicy,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// `[policy]`: identity, mode and scope of a file's rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub id: String,
    #[serde(default)]
    pub description: String,
    /// `enforce` (default) or `monitor` (evaluated and recorded, never enforced).
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Route ids (default: all). `*` matches all.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Model names, trailing `*` = prefix (default: all).
    #[serde(default)]
    pub models: Vec<String>,
    /// Workspaces (default: all). Reserved for the multi-workspace gateway.
    #[serde(default)]
    pub workspaces: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `[[rules]]`: one detector, where it applies, and what to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    /// Built-in detector id (`email`, `credit-card`, ...) or group (`pii`, `secrets`, `injection`).
    pub detector: Option<String>,
    /// A regular expression (linear-time `regex` syntax).
    pub pattern: Option<String>,
    /// A list of literal keywords / phrases.
    pub keywords: Option<Vec<String>>,
    /// Default: false for `keywords`, true for `pattern` (use `(?i)` or set it to false).
    pub case_sensitive: Option<bool>,
    /// Keywords only match as whole words (default true).
    #[serde(default = "yes")]
    pub whole_word: bool,
    /// Type label for placeholders (default: the detector's type, or the rule id).
    pub kind: Option<String>,
    /// Cap in bytes for a `pattern` whose maximum match length is unbounded (`.*`, `+`).
    pub max_len: Option<usize>,
    /// `request`, `response` or `both` (default).
    pub direction: Option<String>,
    /// Where in a call the rule looks (default: everywhere).
    pub locations: Option<Vec<String>>,
    /// `deny`, `redact`, `alert` or `log`.
    pub action: String,
    /// `low`, `medium` (default), `high`, `critical`.
    pub severity: Option<String>,
    /// `enforce` or `monitor`; default: the policy's mode.
    pub mode: Option<String>,
    /// `placeholder` (default), `mask`, `hash`.
    pub redaction: Option<String>,
    /// Mask style: characters kept at the end (default 4).
    pub mask_keep_last: Option<usize>,
    /// Mask style: the masking character (default `*`).
    pub mask_char: Option<char>,
    /// Hash style: environment variable holding the salt (default `PARAPET_REDACTION_SALT`).
    pub hash_salt_env: Option<String>,
    /// HTTP status of a request denied by this rule (default 400).
    pub deny_status: Option<u16>,
    /// Rule-level route / model selectors (narrow the policy's).
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

/// Largest cap a user may declare for an unbounded pattern (the streaming hold-back window).
pub const MAX_DECLARED_LEN: usize = 64 * 1024;

/// Read every `*.toml` / `*.json` file of `dir` (sorted by name) and compile them.
pub fn load_dir(
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PolicySet, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let p = e.path();
                let ext = p.extension().and_then(|x| x.to_str()).unwrap_or_default();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if !hidden && (ext == "toml" || ext == "json") && p.is_file() {
                    files.push(p);
                }
            }
        }
        Err(e) => {
            return Err(vec![ConfigError {
                file: dir.display().to_string(),
                field: "-".into(),
                message: format!("cannot read policy directory: {e}"),
            }])
        }
    }
    files.sort();
    let mut sources = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => sources.push((f, text)),
            Err(e) => errors.push(ConfigError {
                file: f.display().to_string(),
                field: "-".into(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    match compile_sources(&sources, lookup) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(errors),
        Err(mut e) => {
            errors.append(&mut e);
            Err(errors)
        }
    }
}

/// Compile policy sources `(path, text)`; the version is a hash of names and contents.
pub fn compile_sources(
    sources: &[(PathBuf, String)],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PolicySet, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    let mut version = Sha256::new();
    for (path, text) in sources {
        version.update(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        version.update([0]);
        version.update(text.as_bytes());
        version.update([0]);
        let file = path.display().to_string();
        let is_json = path.extension().is_some_and(|e| e == "json");
        let raw: Result<RawPolicyFile, String> = if is_json {
            serde_json::from_str(text)
                .map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))
        } else {
            toml::from_str(text).map_err(|e| match e.span() {
                Some(s) => format!("{} (bytes {}..{})", e.message(), s.start, s.end),
                None => e.message().to_string(),
            })
        };
        match raw {
            Ok(r) => parsed.push((file, r)),
            Err(m) => errors.push(ConfigError {
                file,
                field: "-".into(),
                message: m,
            }),
        }
    }
    let digest = version.finalize();
    let version: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();

    let builtins = builtin_specs();
    let mut builder = ScannerBuilder::new();
    let mut rules: Vec<CompiledRule> = Vec::new();
    let mut scanner_to_rule: Vec<super::SubRule> = Vec::new();
    let mut policy_ids = BTreeSet::new();
    for (file, pf) in &parsed {
        let mut c = Compiler {
            file,
            errors: &mut errors,
        };
        let p = &pf.policy;
        if p.id.trim().is_empty() {
            c.err("policy.id", "must not be empty");
        } else if !policy_ids.insert(p.id.clone()) {
            c.err(
                "policy.id",
                format!(
                    "duplicate policy id `{}` (ids are global across files)",
                    p.id
                ),
            );
        }
        let policy_monitor = c.mode("policy.mode", p.mode.as_deref(), false);
        if !p.enabled {
            continue;
        }
        let mut rule_ids = BTreeSet::new();
        for (i, r) in pf.rules.iter().enumerate() {
            let f = |name: &str| format!("rules[{i}].{name}");
            if r.id.trim().is_empty() {
                c.err(f("id"), "must not be empty");
            } else if !rule_ids.insert(r.id.clone()) {
                c.err(
                    f("id"),
                    format!("duplicate rule id `{}` in policy `{}`", r.id, p.id),
                );
            }
            let action = match r.action.as_str() {
                "deny" => Action::Deny,
                "redact" => Action::Redact,
                "alert" => Action::Alert,
                "log" => Action::Log,
                other => {
                    c.err(
                        f("action"),
                        format!("`{other}` is not one of: deny, redact, alert, log"),
                    );
                    Action::Log
                }
            };
            let severity = match r.severity.as_deref().unwrap_or("medium") {
                "low" => Severity::Low,
                "medium" => Severity::Medium,
                "high" => Severity::High,
                "critical" => Severity::Critical,
                other => {
                    c.err(
                        f("severity"),
                        format!("`{other}` is not one of: low, medium, high, critical"),
                    );
                    Severity::Medium
                }
            };
            let monitor = c.mode(&f("mode"), r.mode.as_deref(), policy_monitor);
            let direction = match r.direction.as_deref().unwrap_or("both") {
                "both" => Direction::Both,
                "request" => Direction::Request,
                "response" => Direction::Response,
                other => {
                    c.err(
                        f("direction"),
                        format!("`{other}` is not one of: request, response, both"),
                    );
                    Direction::Both
                }
            };
            let locations = match &r.locations {
                None => Locations::ALL,
                Some(list) => {
                    let mut l = Locations::NONE;
                    for (j, name) in list.iter().enumerate() {
                        match Locations::parse(name) {
                            Some(x) => l = l.union(x),
                            None => c.err(
                                f(&format!("locations[{j}]")),
                                format!("`{name}` is not one of: {}", Locations::NAMES.join(", ")),
                            ),
                        }
                    }
                    l
                }
            };
            let style = c.style(&f("redaction"), r, lookup);
            let deny_status = r.deny_status.unwrap_or(400);
            if !(400..=599).contains(&deny_status) {
                c.err(f("deny_status"), "must be a 4xx or 5xx status");
            }
            let specs = c.specs(&f(""), r, &builtins);
            if specs.is_empty() {
                continue;
            }
            let full_id: Arc<str> = Arc::from(format!("{}/{}", p.id, r.id));
            let rule_idx = rules.len();
            for (sid, spec) in specs {
                let keywords = match &spec.matcher {
                    Matcher::Keywords {
                        words,
                        case_insensitive,
                        ..
                    } => Some((words.clone(), *case_insensitive)),
                    Matcher::Regex { .. } => None,
                };
                let (anchors, prefixes, full) = match &spec.matcher {
                    Matcher::Regex {
                        pattern,
                        prefilter,
                        case_insensitive,
                        ..
                    } => (
                        prefilter.clone(),
                        prefix_literals(pattern, *case_insensitive),
                        // As the scanner compiles it.
                        Some(if *case_insensitive {
                            format!("(?i:{pattern})")
                        } else {
                            pattern.clone()
                        }),
                    ),
                    Matcher::Keywords { words, .. } => (
                        Vec::new(),
                        Some(
                            words
                                .iter()
                                .map(|w| w.to_ascii_lowercase().into_bytes())
                                .collect(),
                        ),
                        None,
                    ),
                };
                builder.add(format!("{full_id}#{sid}"), spec);
                scanner_to_rule.push(super::SubRule {
                    rule: rule_idx,
                    anchors,
                    prefixes,
                    max_len: 0,
                    pattern: full,
                    keywords,
                });
            }
            rules.push(CompiledRule {
                id: full_id,
                policy_id: Arc::from(p.id.as_str()),
                kind: r.kind.as_deref().map(Arc::from),
                action,
                severity,
                monitor,
                direction,
                locations,
                routes: [Selector::new(&p.routes), Selector::new(&r.routes)],
                models: [Selector::new(&p.models), Selector::new(&r.models)],
                style,
                deny_status,
                max_len: 0,
            });
        }
    }
    let scanner = match builder.build() {
        Ok(s) => Some(s),
        Err(e) => {
            for re in e.errors {
                let rule = re.rule_id.split('#').next().unwrap_or_default().to_string();
                errors.push(ConfigError {
                    file: "policies".into(),
                    field: format!("rule {rule}"),
                    message: re.message,
                });
            }
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(scanner) = &scanner {
        for (sidx, info) in scanner.rules().enumerate() {
            if let Some(sub) = scanner_to_rule.get_mut(sidx) {
                sub.max_len = info.max_len;
                if let Some(r) = rules.get_mut(sub.rule) {
                    r.max_len = r.max_len.max(info.max_len);
                }
            }
        }
    }
    let scanner = scanner.filter(|s| !s.is_empty());
    Ok(PolicySet::new(
        scanner,
        rules,
        scanner_to_rule,
        version,
        sources.iter().map(|(p, _)| p.clone()).collect(),
    ))
}

/// Most distinct prefix literals kept for a rule's streaming holds.
const MAX_PREFIXES: usize = 256;

/// The literals every match of `pattern` starts with (lower-cased, deduplicated), if the
/// set is finite, non-empty, made of non-empty literals and not too large.
fn prefix_literals(pattern: &str, case_insensitive: bool) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let full = if case_insensitive {
        format!("(?i:{pattern})")
    } else {
        pattern.to_string()
    };
    let hir = regex_syntax::Parser::new().parse(&full).ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let mut out: Vec<Vec<u8>> = seq
        .literals()?
        .iter()
        .map(|l| l.as_bytes().to_ascii_lowercase())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > MAX_PREFIXES || out.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(out)
}

struct Compiler<'a> {
    file: &'a str,
    errors: &'a mut Vec<ConfigError>,
}

impl Compiler<'_> {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn mode(&mut self, field: &str, mode: Option<&str>, default_monitor: bool) -> bool {
        match mode {
            None => default_monitor,
            Some("enforce") => false,
            Some("monitor") => true,
            Some(other) => {
                self.err(field, format!("`{other}` is not one of: enforce, monitor"));
                default_monitor
            }
        }
    }

    fn style(
        &mut self,
        field: &str,
        r: &RawRule,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Style {
        match r.redaction.as_deref().unwrap_or("placeholder") {
            "placeholder" => Style::Placeholder,
            "mask" => Style::Mask {
                keep_last: r.mask_keep_last.unwrap_or(4),
                ch: r.mask_char.unwrap_or('*'),
            },
            "hash" => {
                let var = r
                    .hash_salt_env
                    .clone()
                    .unwrap_or_else(|| "PARAPET_REDACTION_SALT".into());
                match lookup(&var).filter(|s| !s.is_empty()) {
                    Some(salt) => Style::Hash {
                        salt: salt.into_bytes(),
                    },
                    None => {
                        self.err(
                            field,
                            format!("redaction = \"hash\" needs a salt in ${var}"),
                        );
                        Style::Placeholder
                    }
                }
            }
            other => {
                self.err(
                    field,
                    format!("`{other}` is not one of: placeholder, mask, hash"),
                );
                Style::Placeholder
            }
        }
    }

    /// The scanner specs of a rule (a group detector expands to several).
    fn specs(
        &mut self,
        prefix: &str,
        r: &RawRule,
        builtins: &[(String, DetectorSpec)],
    ) -> Vec<(String, DetectorSpec)> {
        let f = |name: &str| format!("{prefix}{name}");
        let given = [
            r.detector.is_some(),
            r.pattern.is_some(),
            r.keywords.is_some(),
        ];
        if given.iter().filter(|x| **x).count() != 1 {
            self.err(
                f("detector"),
                "exactly one of `detector`, `pattern`, `keywords` is required",
            );
            return Vec::new();
        }
        let label = r.kind.clone().unwrap_or_else(|| r.id.to_uppercase());
        if let Some(d) = &r.detector {
            let group = match d.as_str() {
                "pii" => Some(Category::Pii),
                "secrets" => Some(Category::Secret),
                "injection" => Some(Category::Injection),
                _ => None,
            };
            let found: Vec<(String, DetectorSpec)> = builtins
                .iter()
                .filter(|(id, spec)| match group {
                    Some(g) => spec.category == g,
                    None => id == d,
                })
                .cloned()
                .collect();
            if found.is_empty() {
                let mut names: Vec<&str> = builtins.iter().map(|(id, _)| id.as_str()).collect();
                names.sort();
                names.dedup();
                self.err(
                    f("detector"),
                    format!(
                        "unknown detector `{d}`; built-ins: pii, secrets, injection, {}",
                        names.join(", ")
                    ),
                );
            }
            return found;
        }
        if let Some(pattern) = &r.pattern {
            let unbounded = regex_syntax::Parser::new()
                .parse(pattern)
                .map(|h| h.properties().maximum_len().is_none())
                .unwrap_or(false);
            if unbounded && r.max_len.is_none() {
                self.err(
                    f("max_len"),
                    "the pattern has no maximum match length (e.g. `+`, `*`): set max_len (bytes) — it bounds the streaming hold-back window",
                );
                return Vec::new();
            }
            if let Some(m) = r.max_len {
                if m == 0 || m > MAX_DECLARED_LEN {
                    self.err(
                        f("max_len"),
                        format!("must be between 1 and {MAX_DECLARED_LEN}"),
                    );
                    return Vec::new();
                }
            }
            let mut spec = DetectorSpec::pattern(label, pattern.clone());
            if let Matcher::Regex {
                case_insensitive, ..
            } = &mut spec.matcher
            {
                *case_insensitive = !r.case_sensitive.unwrap_or(true);
            }
            spec.max_len = r.max_len;
            return vec![(r.id.clone(), spec)];
        }
        if let Some(words) = &r.keywords {
            if words.is_empty() || words.iter().any(|w| w.is_empty()) {
                self.err(
                    f("keywords"),
                    "must be a non-empty list of non-empty strings",
                );
                return Vec::new();
            }
            let spec = DetectorSpec::keywords(
                label,
                words.iter().cloned(),
                !r.case_sensitive.unwrap_or(false),
                r.whole_word,
            );
            return vec![(r.id.clone(), spec)];
        }
        Vec::new()
    }
}
