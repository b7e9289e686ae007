//! The detector evaluation (`parapet eval DIR`): runs the built-in scanner over the labeled
//! eval data (presidio PII sentences, secretlint snapshots, giskard injection prompts) and
//! scores precision / recall / F1 per detector type. Sans-io apart from reading the files.
//!
//! Scoring (see the eval README): a detection is a true positive when it overlaps a
//! labeled span of its type, a false positive when it overlaps none; a labeled span that
//! no detection of its type overlaps is a false negative. Presidio offsets are code-point
//! offsets, secretlint offsets are UTF-8 byte offsets; scanner offsets are converted.
//! Reports contain counts, record ids and types only, never matched values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::{kinds, BuildError, Category, Match, Scanner};

/// Failure to run the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path} (record {record}): {message}")]
    Parse {
        path: PathBuf,
        record: usize,
        message: String,
    },
    #[error("scanner failed to build: {0}")]
    Build(#[from] BuildError),
    #[error("policies: {0}")]
    Policies(String),
}

/// Counts for one detector type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeScore {
    pub name: String,
    /// Labeled spans of this type.
    pub labeled: usize,
    /// Detections overlapping a labeled span of the type.
    pub tp: usize,
    /// Detections overlapping no labeled span of the type.
    pub fp: usize,
    /// Labeled spans that no detection of the type overlaps.
    pub fn_: usize,
}

impl TypeScore {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// Share of labeled spans found.
    pub fn recall(&self) -> f64 {
        ratio(self.labeled - self.fn_.min(self.labeled), self.labeled)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// The full evaluation result.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// Presidio types in scope, by detector type.
    pub pii: Vec<TypeScore>,
    pub presidio_sentences: usize,
    /// Detections (any detector) overlapping no labeled span of their type.
    pub cross_type_spans: usize,
    /// Sentences with at least one such detection.
    pub cross_type_sentences: usize,
    /// Those detections by detector type.
    pub cross_type_by_kind: BTreeMap<String, usize>,
    /// Secret detectors on the secretlint snapshots (all labels are one class).
    pub secrets: TypeScore,
    /// Labeled secrets not found, as `record id: secretlint type` (no values).
    pub secrets_missed: Vec<String>,
    /// Texts without any labeled secret.
    pub secret_clean_texts: usize,
    /// Secret detections on clean texts (excluding the contradictory ones below).
    pub secret_clean_detections: usize,
    /// Clean texts that contain a value labeled as a secret in another record (the
    /// secretlint "allows" snapshots): reported, not counted above.
    pub secret_clean_contradictory: usize,
    pub secret_clean_contradictory_detections: usize,
    /// Ids of clean texts (non-contradictory) with detections.
    pub secret_clean_flagged: Vec<String>,
    pub injection_prompts: usize,
    pub injection_detected: usize,
    /// Presidio sentences (benign) with an injection detection.
    pub injection_fp_sentences: usize,
}

impl EvalReport {
    pub fn pii_score(&self, kind: &str) -> Option<&TypeScore> {
        self.pii.iter().find(|s| s.name == kind)
    }
    pub fn injection_recall(&self) -> f64 {
        ratio(self.injection_detected, self.injection_prompts)
    }
    pub fn cross_type_rate(&self) -> f64 {
        ratio(self.cross_type_spans, self.presidio_sentences)
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "### PII (presidio, {} sentences)\n",
            self.presidio_sentences
        )?;
        writeln!(
            f,
            "| type | labeled | TP | FP | FN | precision | recall | F1 |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for s in self.pii.iter().chain(std::iter::once(&self.secrets)) {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} |",
                s.name,
                s.labeled,
                s.tp,
                s.fp,
                s.fn_,
                s.precision(),
                s.recall(),
                s.f1()
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Cross-type detections on presidio: {} spans in {} sentences ({:.2}% of sentences); by type: {:?}",
            self.cross_type_spans,
            self.cross_type_sentences,
            100.0 * self.cross_type_rate(),
            self.cross_type_by_kind
        )?;
        writeln!(
            f,
            "Secrets: recall {:.3}; {} detections on {} clean texts (+{} detections on {} clean texts that repeat a value labeled elsewhere)",
            self.secrets.recall(),
            self.secret_clean_detections,
            self.secret_clean_texts - self.secret_clean_contradictory,
            self.secret_clean_contradictory_detections,
            self.secret_clean_contradictory
        )?;
        if !self.secrets_missed.is_empty() {
            writeln!(f, "Secrets missed: {}", self.secrets_missed.join(", "))?;
        }
        if !self.secret_clean_flagged.is_empty() {
            writeln!(
                f,
                "Clean texts flagged: {}",
                self.secret_clean_flagged.join(", ")
            )?;
        }
        writeln!(
            f,
            "Injection: {}/{} prompts detected (recall {:.3}); {} of {} benign presidio sentences flagged",
            self.injection_detected,
            self.injection_prompts,
            self.injection_recall(),
            self.injection_fp_sentences,
            self.presidio_sentences
        )
    }
}

#[derive(Deserialize)]
struct PresidioRecord {
    full_text: String,
    spans: Vec<PresidioSpan>,
}

#[derive(Deserialize)]
struct PresidioSpan {
    entity_type: String,
    start_position: usize,
    end_position: usize,
}

#[derive(Deserialize)]
struct SecretRecord {
    id: String,
    text: String,
    spans: Vec<SecretSpan>,
}

#[derive(Deserialize)]
struct SecretSpan {
    #[serde(rename = "type")]
    kind: String,
    value: String,
    start: usize,
    end: usize,
}

/// Presidio entity type → our detector type.
pub const PRESIDIO_TYPES: &[(&str, &str)] = &[
    ("CREDIT_CARD", kinds::CREDIT_CARD),
    ("EMAIL_ADDRESS", kinds::EMAIL),
    ("PHONE_NUMBER", kinds::PHONE),
    ("IBAN_CODE", kinds::IBAN),
    ("US_SSN", kinds::US_SSN),
    ("IP_ADDRESS", kinds::IP_ADDRESS),
];

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Byte offset → code-point offset for every match boundary.
fn to_char_span(text: &str, m: &Match) -> (usize, usize) {
    let s = text.get(..m.start).map_or(0, |t| t.chars().count());
    let len = text.get(m.start..m.end).map_or(0, |t| t.chars().count());
    (s, s + len)
}

/// Run the whole evaluation over `dir` (the `shared/eval` layout).
pub fn run(dir: &Path) -> Result<EvalReport, EvalError> {
    let scanner = Scanner::builtin()?;
    run_with(&scanner, dir)
}

/// Run the evaluation with a given scanner (e.g. built-ins plus user rules).
pub fn run_with(scanner: &Scanner, dir: &Path) -> Result<EvalReport, EvalError> {
    let mut report = EvalReport::default();
    eval_presidio(scanner, dir, &mut report)?;
    eval_secrets(scanner, dir, &mut report)?;
    eval_injection(scanner, dir, &mut report)?;
    Ok(report)
}

fn json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

fn load_presidio(dir: &Path) -> Result<Vec<PresidioRecord>, EvalError> {
    let path = dir.join("pii/presidio_synth_dataset_v2.json");
    serde_json::from_str(&read(&path)?).map_err(|e| EvalError::Parse {
        path: path.clone(),
        record: e.line(),
        message: json_error(&e),
    })
}

fn load_secrets(dir: &Path) -> Result<Vec<SecretRecord>, EvalError> {
    let path = dir.join("secrets/secretlint.jsonl");
    let text = read(&path)?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        records.push(serde_json::from_str(line).map_err(|e| EvalError::Parse {
            path: path.clone(),
            record: i + 1,
            message: json_error(&e),
        })?);
    }
    Ok(records)
}

fn eval_presidio(scanner: &Scanner, dir: &Path, report: &mut EvalReport) -> Result<(), EvalError> {
    let records = load_presidio(dir)?;
    let mut scores: BTreeMap<&str, TypeScore> = PRESIDIO_TYPES
        .iter()
        .map(|(_, k)| {
            (
                *k,
                TypeScore {
                    name: (*k).to_string(),
                    ..TypeScore::default()
                },
            )
        })
        .collect();
    report.presidio_sentences = records.len();
    for rec in &records {
        let labels: Vec<(&str, (usize, usize))> = rec
            .spans
            .iter()
            .filter_map(|s| {
                PRESIDIO_TYPES
                    .iter()
                    .find(|(p, _)| *p == s.entity_type)
                    .map(|(_, k)| (*k, (s.start_position, s.end_position)))
            })
            .collect();
        let found: Vec<(Match, (usize, usize))> = scanner
            .scan_folded(&rec.full_text)
            .into_iter()
            .map(|m| {
                let span = to_char_span(&rec.full_text, &m);
                (m, span)
            })
            .collect();
        let mut cross_here = 0;
        let mut injection_here = false;
        for (m, span) in &found {
            let kind: &str = &m.kind;
            let hit = labels
                .iter()
                .any(|(k, l)| *k == kind && overlaps(*span, *l));
            if let Some(sc) = scores.get_mut(kind) {
                if hit {
                    sc.tp += 1;
                } else {
                    sc.fp += 1;
                }
            }
            if !hit {
                cross_here += 1;
                *report
                    .cross_type_by_kind
                    .entry(kind.to_string())
                    .or_default() += 1;
            }
            if scanner
                .rule(m.rule)
                .is_some_and(|r| r.category == Category::Injection)
            {
                injection_here = true;
            }
        }
        for (k, l) in &labels {
            if let Some(sc) = scores.get_mut(k) {
                sc.labeled += 1;
                let covered = found
                    .iter()
                    .any(|(m, span)| &*m.kind == *k && overlaps(*span, *l));
                if !covered {
                    sc.fn_ += 1;
                }
            }
        }
        report.cross_type_spans += cross_here;
        if cross_here > 0 {
            report.cross_type_sentences += 1;
        }
        if injection_here {
            report.injection_fp_sentences += 1;
        }
    }
    report.pii = PRESIDIO_TYPES
        .iter()
        .filter_map(|(_, k)| scores.remove(k))
        .collect();
    Ok(())
}

fn eval_secrets(scanner: &Scanner, dir: &Path, report: &mut EvalReport) -> Result<(), EvalError> {
    let records = load_secrets(dir)?;
    let labeled_values: Vec<&str> = records
        .iter()
        .flat_map(|r| r.spans.iter().map(|s| s.value.as_str()))
        .filter(|v| v.len() >= 8)
        .collect();
    let mut score = TypeScore {
        name: "SECRETS".to_string(),
        ..TypeScore::default()
    };
    let is_secret = |m: &Match| {
        scanner
            .rule(m.rule)
            .is_some_and(|r| r.category == Category::Secret)
    };
    for rec in &records {
        let found: Vec<Match> = scanner
            .scan_folded(&rec.text)
            .into_iter()
            .filter(is_secret)
            .collect();
        if rec.spans.is_empty() {
            report.secret_clean_texts += 1;
            let contradictory = labeled_values
                .iter()
                .any(|v| contains_standalone(&rec.text, v));
            if contradictory {
                report.secret_clean_contradictory += 1;
                report.secret_clean_contradictory_detections += found.len();
            } else {
                report.secret_clean_detections += found.len();
                if !found.is_empty() {
                    report.secret_clean_flagged.push(rec.id.clone());
                }
            }
            continue;
        }
        for m in &found {
            if rec
                .spans
                .iter()
                .any(|s| overlaps((m.start, m.end), (s.start, s.end)))
            {
                score.tp += 1;
            } else {
                score.fp += 1;
            }
        }
        for s in &rec.spans {
            score.labeled += 1;
            if !found
                .iter()
                .any(|m| overlaps((m.start, m.end), (s.start, s.end)))
            {
                score.fn_ += 1;
                report
                    .secrets_missed
                    .push(format!("{}: {}", rec.id, s.kind));
            }
        }
    }
    report.secrets = score;
    Ok(())
}

/// Whether `needle` occurs in `hay` as a whole token (not glued to letters or digits).
fn contains_standalone(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay.get(..i).and_then(|s| s.chars().next_back());
        let after = hay.get(i + needle.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Minimal RFC 4180 CSV reader (quoted fields, doubled quotes, embedded newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => in_quotes = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                _ => field.push(c),
            }
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn eval_injection(scanner: &Scanner, dir: &Path, report: &mut EvalReport) -> Result<(), EvalError> {
    let path = dir.join("injection/giskard_prompt_injections.csv");
    let rows = parse_csv(&read(&path)?);
    let header = rows.first().ok_or_else(|| EvalError::Parse {
        path: path.clone(),
        record: 0,
        message: "empty file".to_string(),
    })?;
    let col = header
        .iter()
        .position(|h| h == "prompt")
        .ok_or_else(|| EvalError::Parse {
            path: path.clone(),
            record: 0,
            message: "no `prompt` column".to_string(),
        })?;
    for row in rows.iter().skip(1) {
        let Some(prompt) = row.get(col) else {
            continue;
        };
        report.injection_prompts += 1;
        let hit = scanner.scan_folded(prompt).iter().any(|m| {
            scanner
                .rule(m.rule)
                .is_some_and(|r| r.category == Category::Injection)
        });
        if hit {
            report.injection_detected += 1;
        }
    }
    Ok(())
}

/// Result of replaying eval texts through the streaming guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    /// Texts replayed.
    pub texts: usize,
    /// Texts whose streamed output differed from the non-streamed output.
    pub mismatches: usize,
}

impl fmt::Display for StreamCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "streaming check: {} texts replayed as SSE split at random points (1-16 chars a delta, 1-64 bytes a read), {} differ from the non-streamed output",
            self.texts, self.mismatches
        )
    }
}

/// Replay every presidio sentence and secretlint text through the SSE guard (PII and secrets
/// redacted on responses), split at pseudo-random points, and compare with the non-streamed
/// result. Deterministic: the splits come from a fixed-seed generator.
pub fn stream_check(dir: &Path) -> Result<StreamCheck, EvalError> {
    use crate::guard::{policy, Ctx, Locations, Outcome, Pass, Side};
    use crate::redact::stream::replay_chat;
    use crate::redact::Redactor;

    const POLICY: &str = "[policy]\nid = \"eval\"\n[[rules]]\nid = \"pii\"\ndetector = \"pii\"\naction = \"redact\"\n[[rules]]\nid = \"secrets\"\ndetector = \"secrets\"\naction = \"redact\"\n";
    let set = policy::compile_sources(&[(PathBuf::from("eval.toml"), POLICY.to_string())], &|_| {
        None
    })
    .map_err(|e| EvalError::Parse {
        path: PathBuf::from("eval.toml"),
        record: 0,
        message: format!("{} policy error(s)", e.len()),
    })?;
    let set = std::sync::Arc::new(set);
    let app = set.applicable(&Ctx {
        side: Side::Response,
        route: "eval",
        model: None,
    });

    let mut texts: Vec<String> = load_presidio(dir)?
        .into_iter()
        .map(|r| r.full_text)
        .collect();
    texts.extend(load_secrets(dir)?.into_iter().map(|r| r.text));

    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m) as usize + 1
    };
    let mut mismatches = 0;
    for text in &texts {
        let sizes: Vec<usize> = (0..8).map(|_| next(16)).collect();
        let feed: Vec<usize> = (0..8).map(|_| next(64)).collect();
        let mut out = Outcome::default();
        let mut r = Redactor::new();
        let mut pass = Pass {
            app: &app,
            side: Side::Response,
            redactor: &mut r,
            out: &mut out,
        };
        let whole = set
            .guard_text(text, Locations::ASSISTANT, &|| "eval".into(), &mut pass)
            .unwrap_or_else(|| text.clone());
        let streamed = replay_chat(set.clone(), app.clone(), text, &sizes, &feed);
        if streamed.content != whole {
            mismatches += 1;
        }
    }
    Ok(StreamCheck {
        texts: texts.len(),
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reader() {
        let rows = parse_csv("a,b\n1,\"x, \"\"y\"\"\nz\"\n2,w\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][1], "x, \"y\"\nz");
        assert_eq!(rows[2], vec!["2".to_string(), "w".to_string()]);
    }

    #[test]
    fn score_math() {
        let s = TypeScore {
            name: "X".into(),
            labeled: 10,
            tp: 9,
            fp: 1,
            fn_: 1,
        };
        assert!((s.precision() - 0.9).abs() < 1e-9);
        assert!((s.recall() - 0.9).abs() < 1e-9);
        assert!((s.f1() - 0.9).abs() < 1e-9);
    }

    /// Runs the real evaluation when the shared eval data is present and checks targets.
    #[test]
    fn eval_targets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval");
        if !dir.join("pii/presidio_synth_dataset_v2.json").exists() {
            eprintln!("eval data not found at {}; skipping", dir.display());
            return;
        }
        let r = match run(&dir) {
            Ok(r) => r,
            Err(e) => panic!("eval failed: {e}"),
        };
        println!("{r}");
        assert_targets(&r);
    }

    /// The shipped `policies/` (what a default deployment enforces) meet the same targets
    /// as the built-in detectors: a detector the eval counts but the default pack does not
    /// use shows up here (the pack once left out `phone-context`: phone recall 0.315).
    #[test]
    fn shipped_policies_meet_the_targets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("../shared/eval");
        if !dir.join("pii/presidio_synth_dataset_v2.json").exists() {
            eprintln!("eval data not found at {}; skipping", dir.display());
            return;
        }
        let set = match crate::guard::policy::load_dir(&root.join("policies"), &|_| None) {
            Ok(set) => set,
            Err(e) => panic!("shipped policies: {e:?}"),
        };
        let Some(scanner) = set.scanner() else {
            panic!("the shipped policies have no rules");
        };
        let r = match run_with(scanner, &dir) {
            Ok(r) => r,
            Err(e) => panic!("eval failed: {e}"),
        };
        assert_targets(&r);
    }

    fn assert_targets(r: &EvalReport) {
        for k in [
            kinds::CREDIT_CARD,
            kinds::EMAIL,
            kinds::IBAN,
            kinds::US_SSN,
            kinds::IP_ADDRESS,
        ] {
            let f1 = r.pii_score(k).map_or(0.0, TypeScore::f1);
            assert!(f1 >= 0.97, "{k} F1 {f1:.3} < 0.97");
        }
        let phone = r.pii_score(kinds::PHONE).map_or(0.0, TypeScore::f1);
        assert!(phone >= 0.90, "PHONE F1 {phone:.3} < 0.90");
        assert!(
            r.secrets.recall() >= 0.90,
            "secrets recall {:.3}",
            r.secrets.recall()
        );
        assert_eq!(
            r.secret_clean_detections, 0,
            "detections on clean secret texts"
        );
        assert!(
            r.cross_type_spans * 100 <= r.presidio_sentences,
            "cross-type detections {} > 1% of {}",
            r.cross_type_spans,
            r.presidio_sentences
        );
        assert!(
            r.injection_recall() >= 0.90,
            "injection recall {:.3}",
            r.injection_recall()
        );
        assert_eq!(r.injection_fp_sentences, 0, "injection on benign sentences");
    }

    #[test]
    fn streamed_eval_texts_match_the_non_streamed_output() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval");
        if !dir.join("pii/presidio_synth_dataset_v2.json").exists() {
            eprintln!("skipped: {} not found", dir.display());
            return;
        }
        let check = stream_check(&dir).unwrap();
        assert!(check.texts >= 1500, "{check}");
        assert_eq!(check.mismatches, 0, "{check}");
    }
}
