//! Event store: the independent `evidence_hash` test vector (tests/evidence_hash.py, Python
//! standard library only), and tamper detection on the sled files through `parapet verify`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use parapet::store::db::Query;
use parapet::store::{kind, Event, Store};
use serde_json::json;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PARAPET_PYTHON") {
        return PathBuf::from(p);
    }
    for venv in [".venv/bin/python", "tests/sdk/.venv/bin/python"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(venv);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("python3")
}

/// Records exercising every normalization rule.
fn vector_events() -> Vec<Event> {
    let base = |id: &str| Event::new(kind::AI_RESPONSE, "w1", "req-1").event_id(id);
    let mut e1 = base("evt_20260408_0001")
        .project_id("trial_proj_b17e8105174f862a")
        .application_id("tgtracing:assistant:customer_chat")
        .session_id("sess_7c1f3b9d")
        .user_ref("user_anon_1024")
        .provider("enterprise_app")
        .model("gpt-4.1")
        .route("direct")
        .final_status("delivered")
        .guard_flag("policy_boundary_explained");
    e1.evidence.recorded_at = "2026-04-08T17:58:11Z".into();
    e1.evidence.schema_version = "v1".into();
    e1.evidence.input_summary = Some(
        "User asked whether a shared tracking link could reveal location without consent.".into(),
    );
    e1.evidence.output_summary = Some("Assistant explained that consent-based interaction is required and did not claim passive tracking.".into());
    e1.evidence.confidence_signals =
        json!({"answer_mode": "policy-aligned", "uncertainty_level": "low"})
            .as_object()
            .unwrap()
            .clone();
    e1.evidence.operator_action = Some("none".into());
    e1.evidence.metadata = json!({"locale": "en", "record_origin": "manual_post"})
        .as_object()
        .unwrap()
        .clone();
    // Unicode, surrounding white space (incl. U+3000), newlines and backslashes, offsets.
    let mut e2 = base("  évt-ünï ✓ ")
        .session_id("\u{3000}sess\u{a0}")
        .input_summary("Grüße, 世界!\nline two \\ end", 500)
        .output_summary("  🙂 emoji  ", 500)
        .failover_path(&["a", "b"])
        .set(
            "usage",
            json!({"prompt_tokens": 10, "completion_tokens": 8}),
        )
        .set("cost_usd", 0.0018)
        .set(
            "list",
            json!([1, "two", null, true, {"z": 1, "a": [false]}]),
        );
    e2.evidence.recorded_at = "2026-04-08T20:02:43.250+02:00".into();
    e2.evidence.guard_flags = vec![
        "z-flag".into(),
        " a,b ".into(),
        "".into(),
        "Ä".into(),
        "m".into(),
    ];
    // Empty guard_flags, false boolean, nulls everywhere.
    let mut e3 = base("e3");
    e3.evidence.recorded_at = "2026-01-01T00:00:00.000001Z".into();
    e3.evidence.guard_flags = vec![];
    e3.request_id = None;
    vec![e1, e2, e3]
}

#[test]
fn evidence_hash_agrees_with_an_independent_python_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let mut heads = HashMap::new();
    let mut events = vector_events();
    for i in 0..20 {
        events.push(
            Event::new(kind::AI_REQUEST, "w1", format!("r{i}"))
                .input_summary(&"x".repeat(i), 10)
                .decision(if i % 2 == 0 { "allow" } else { "deny" }),
        );
    }
    store.write(&mut heads, events.clone()).unwrap();
    let page = store
        .query(
            "w1",
            &Query {
                limit: 1000,
                ascending: true,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(page.events.len(), 23);
    let mut lines = String::new();
    for r in &page.events {
        lines.push_str(&r.to_string());
        lines.push('\n');
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/evidence_hash.py");
    let mut child = match Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("python3 is required for the independent test vector: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let head = store.head("w1").unwrap().unwrap();
    assert_eq!(
        stdout.trim(),
        format!("ok 23 {}", head.chain_hash),
        "python: {stdout}"
    );
    // The seed example record, normalized: the worked vector of docs/EVIDENCE.md.
    let e1 = &page.events[0];
    eprintln!("seed example evidence_hash = {}", e1["evidence_hash"]);
    assert_eq!(page.events[2]["guard_flags"], json!([]));
}

fn fill(dir: &Path, marker: &str) {
    let store = Store::open(dir, 8 << 20).unwrap();
    let mut heads = HashMap::new();
    let events: Vec<Event> = (0..50)
        .map(|i| {
            Event::new(kind::AI_RESPONSE, "w1", format!("r{i}"))
                .event_id(format!("e{i}"))
                .output_summary(&format!("{marker}-{i:03}"), 100)
        })
        .collect();
    store.write(&mut heads, events.clone()).unwrap();
    store.flush().unwrap();
    store.write_anchor(&heads).unwrap();
}

fn verify_cli(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["verify", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn verify_cli_passes_on_an_intact_store() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), "INTACT");
    let (code, out) = verify_cli(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok\tw1\trecords=50\thead_seq=50"), "{out}");
}

#[test]
fn flipped_byte_in_the_sled_files_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), "TAMPERMARK");
    // The stored (compressed) bytes of the segment holding seq 17: a window from their
    // middle is what the sled files hold wherever sled wrote that segment.
    let window = {
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let key = store.raw_segment_key("w1", 17).unwrap().unwrap();
        let v = store.db().get(key).unwrap().unwrap().to_vec();
        assert!(v.len() > 64, "segment of {} bytes", v.len());
        v[v.len() / 2 - 12..v.len() / 2 + 12].to_vec()
    };
    let mut flipped = 0;
    for f in files(dir.path()) {
        let mut bytes = std::fs::read(&f).unwrap();
        let mut changed = false;
        let mut i = 0;
        while let Some(pos) = bytes[i..].windows(window.len()).position(|w| w == window) {
            let at = i + pos + window.len() / 2;
            bytes[at] ^= 0x01;
            changed = true;
            i = at + 1;
        }
        if changed {
            std::fs::write(&f, bytes).unwrap();
            flipped += 1;
        }
    }
    assert!(
        flipped > 0,
        "the segment's bytes were found in the sled files"
    );
    let (code, out) = verify_cli(dir.path());
    assert_ne!(code, 0, "tampering went unnoticed: {out}");
    eprintln!("verify after a flipped byte (exit {code}): {out}");
}

#[test]
fn deleted_record_is_reported_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), "DELETE");
    {
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        // Records are packed in segments: cut record 20 out of its segment.
        assert!(store.raw_set_record("w1", 20, None).unwrap());
        store.flush().unwrap();
    }
    let (code, out) = verify_cli(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN\tw1\tseq=20"), "{out}");
}
