//! Store unit tests: write/dedup, query filters and cursor, verify detects edit / delete /
//! reorder / tail loss, retention keeps the chain verifiable, writer group commit.

use super::db::{Query, Store, Written};
use super::event::{kind, Event};
use super::evidence::Timestamp;
use super::*;
use std::collections::HashMap;

fn ev(ws: &str, id: &str, session: &str, status: &str) -> Event {
    Event::new(kind::AI_RESPONSE, ws, "req-1")
        .event_id(id)
        .session_id(session)
        .final_status(status)
        .output_summary("ünïcode ✓", 200)
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), 8 << 20).unwrap();
    (dir, s)
}

fn fill(s: &Store, n: usize) {
    let mut heads = HashMap::new();
    let events: Vec<Event> = (0..n)
        .map(|i| {
            ev(
                "w1",
                &format!("e{i}"),
                &format!("s{}", i % 3),
                if i % 2 == 0 { "answered" } else { "blocked" },
            )
        })
        .collect();
    s.write(&mut heads, events.clone()).unwrap();
}

#[test]
fn write_dedups_and_chains() {
    let (_d, s) = open();
    let mut heads = HashMap::new();
    let w = s
        .write(
            &mut heads,
            vec![
                ev("w1", "a", "s", "answered"),
                ev("w1", "a", "s", "answered"),
                ev("w2", "a", "s", "answered"),
            ],
        )
        .unwrap();
    assert!(matches!(w[0], Written::New { seq: 1, .. }));
    assert!(matches!(w[1], Written::Duplicate { seq: 1, .. }));
    assert!(matches!(w[2], Written::New { seq: 1, .. }));
    let w = s
        .write(
            &mut HashMap::new(),
            vec![
                ev("w1", "a", "s", "answered"),
                ev("w1", "b", "s", "answered"),
            ],
        )
        .unwrap();
    assert!(matches!(w[0], Written::Duplicate { .. }));
    assert!(matches!(w[1], Written::New { seq: 2, .. }));
    let r = s.get("w1", "b").unwrap().unwrap();
    assert_eq!(r["output_summary"], "ünïcode ✓");
    assert_eq!(r["guard_flags"], serde_json::json!([]));
    for ws in ["w1", "w2"] {
        let rep = s.verify(ws).unwrap();
        assert!(rep.broken.is_none(), "{rep:?}");
    }
    assert_eq!(s.workspaces().unwrap(), vec!["w1", "w2"]);
    assert!(
        s.get("w2", "b").unwrap().is_none(),
        "workspaces are separate"
    );
}

#[test]
fn query_filters_and_cursor() {
    let (_d, s) = open();
    fill(&s, 25);
    let q = |eq: &[(&str, &str)], limit, cursor: Option<String>, asc| Query {
        eq: eq
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        limit,
        cursor,
        ascending: asc,
        ..Query::default()
    };
    let p = s.query("w1", &q(&[], 10, None, false)).unwrap();
    assert_eq!(p.events.len(), 10);
    assert_eq!(p.events[0]["event_id"], "e24", "newest first");
    let p2 = s
        .query("w1", &q(&[], 10, p.next_cursor.clone(), false))
        .unwrap();
    assert_eq!(p2.events[0]["event_id"], "e14");
    let p3 = s
        .query("w1", &q(&[], 10, p2.next_cursor.clone(), false))
        .unwrap();
    assert_eq!(p3.events.len(), 5);
    assert!(p3.next_cursor.is_none());
    // Index driver + post-filter.
    let p = s
        .query(
            "w1",
            &q(
                &[("session_id", "s1"), ("final_status", "blocked")],
                100,
                None,
                true,
            ),
        )
        .unwrap();
    let ids: Vec<&str> = p
        .events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e1", "e7", "e13", "e19"]);
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let p = s
            .query("w1", &q(&[("session_id", "s0")], 3, cursor, true))
            .unwrap();
        all.extend(p.events);
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(all.len(), 9);
    let p = s
        .query("w1", &q(&[("event_id", "e3")], 20, None, false))
        .unwrap();
    assert_eq!(p.events.len(), 1);
    assert!(s
        .query("w2", &q(&[], 20, None, false))
        .unwrap()
        .events
        .is_empty());
    // Time range on recorded_at.
    let now = Timestamp::now().micros();
    let p = s
        .query(
            "w1",
            &Query {
                recorded_from: Some(now - 60_000_000),
                recorded_to: Some(now + 1),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(p.events.len(), 25);
    let p = s
        .query(
            "w1",
            &Query {
                recorded_to: Some(now - 60_000_000),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert!(p.events.is_empty());
}

fn edit(s: &Store, seq: u64, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_slice(&s.raw_record("w1", seq).unwrap().unwrap()).unwrap();
    f(&mut v);
    assert!(s
        .raw_set_record("w1", seq, Some(&serde_json::to_vec(&v).unwrap()))
        .unwrap());
}

fn delete(s: &Store, seq: u64) {
    assert!(s.raw_set_record("w1", seq, None).unwrap());
}

#[test]
fn verify_detects_edit_delete_reorder_and_tail_loss() {
    // Edit of a canonical field.
    let (_d, s) = open();
    fill(&s, 5);
    edit(&s, 3, |v| v["output_summary"] = "changed".into());
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 3);
    assert!(b.reason.contains("evidence_hash"), "{}", b.reason);
    // Edit of a non-canonical field (metadata) is caught by record_hash.
    let (_d, s) = open();
    fill(&s, 5);
    edit(&s, 2, |v| v["metadata"]["x"] = 1.into());
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(
        (b.seq, b.reason.contains("record_hash")),
        (2, true),
        "{}",
        b.reason
    );
    // Edit with both hashes recomputed is caught by the chain.
    let (_d, s) = open();
    fill(&s, 5);
    edit(&s, 2, |v| {
        v["final_status"] = "answered".into();
        let e: Evidence = serde_json::from_value(v.clone()).unwrap();
        v["evidence_hash"] = evidence::evidence_hash(&e).into();
        v["record_hash"] = evidence::record_hash(v).into();
    });
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(
        (b.seq, b.reason.contains("chain")),
        (2, true),
        "{}",
        b.reason
    );
    // Deletion in the middle.
    let (_d, s) = open();
    fill(&s, 5);
    delete(&s, 3);
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 3);
    assert!(b.reason.contains("missing"));
    // Reorder: swap two records.
    let (_d, s) = open();
    fill(&s, 5);
    let (v2, v4) = (
        s.raw_record("w1", 2).unwrap().unwrap(),
        s.raw_record("w1", 4).unwrap().unwrap(),
    );
    s.raw_set_record("w1", 2, Some(&v4)).unwrap();
    s.raw_set_record("w1", 4, Some(&v2)).unwrap();
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 2);
    // Tail deletion.
    let (_d, s) = open();
    fill(&s, 5);
    delete(&s, 5);
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert!(b.reason.contains("missing"), "{}", b.reason);
}

#[test]
fn retention_cuts_with_a_checkpoint() {
    let (_d, s) = open();
    fill(&s, 10);
    let future = Timestamp::now().micros() + 1_000_000;
    assert_eq!(s.retain("w1", future, 4).unwrap(), 4);
    let rep = s.verify("w1").unwrap();
    assert!(rep.broken.is_none(), "{rep:?}");
    assert_eq!(rep.checkpoint.as_ref().unwrap().first_seq, 5);
    assert_eq!(rep.records, 6);
    assert!(s.get("w1", "e0").unwrap().is_none());
    let p = s
        .query(
            "w1",
            &Query {
                eq: vec![("session_id".into(), "s0".into())],
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(
        p.events.len(),
        2,
        "index entries of deleted records are gone too"
    );
    // New writes continue the chain after retention.
    let mut heads = HashMap::new();
    s.write(&mut heads, vec![ev("w1", "new", "s", "answered")])
        .unwrap();
    assert!(s.verify("w1").unwrap().broken.is_none());
    assert_eq!(s.retain("w1", future, 100).unwrap(), 7);
    let rep = s.verify("w1").unwrap();
    assert!(rep.broken.is_none() && rep.records == 0, "{rep:?}");
    s.write(
        &mut heads,
        vec![
            ev("w1", "n2", "s", "answered"),
            ev("w1", "n3", "s", "answered"),
        ],
    )
    .unwrap();
    assert!(s.verify("w1").unwrap().broken.is_none());
    // Deleting the first record after the checkpoint is still detected.
    delete(&s, 12);
    assert!(s.verify("w1").unwrap().broken.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_group_commits_and_drains_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::store::StoreConfig::in_dir(dir.path());
    let svc = StoreService::start(&cfg).unwrap();
    let sink = svc.sink();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let w = sink
                    .submit(vec![ev("w1", &format!("t{t}-{i}"), "s", "answered")])
                    .await
                    .unwrap();
                assert!(matches!(w[0], Written::New { .. }));
            }
        }));
    }
    for i in 0..100 {
        sink.record(ev("w1", &format!("p{i}"), "s", "answered"))
            .await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dup = sink
        .submit(vec![ev("w1", "t0-0", "s", "answered")])
        .await
        .unwrap();
    assert!(matches!(dup[0], Written::Duplicate { .. }));
    svc.shutdown().await;
    drop(sink);
    let s = Store::open(dir.path(), 8 << 20).unwrap();
    let rep = s.verify("w1").unwrap();
    assert!(rep.broken.is_none());
    assert_eq!(
        rep.records, 500,
        "every proxy-path event was drained at shutdown"
    );
}

/// Process CPU (user + system, all threads incl. sled's flusher) and this thread's CPU, µs.
fn cpu_micros() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields after the comm: state is [0], utime is field 14 → [11], stime [12]; 100 Hz.
    let process = (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10_000;
    let sched = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let thread = sched
        .split_whitespace()
        .next()
        .and_then(|x| x.parse::<u64>().ok())
        .unwrap_or(0)
        / 1000;
    (process, thread)
}

/// The two events a proxied call records (`src/proxy/record.rs`), ~1 KB each.
fn proxy_call(i: usize) -> Vec<Event> {
    let rid = format!("req-{i:08x}-{}", "5f3a".repeat(6));
    let base = |k: &str| {
        Event::new(k, "default", rid.as_str())
            .route("openai")
            .endpoint("openai-primary")
            .provider("openai")
            .model("gpt-4o-mini")
    };
    let text = "Summarize the attached quarterly report for the board, keeping the figures \
                and the risks; answer in five bullet points with one sentence each. ";
    let req = base(kind::AI_REQUEST)
        .decision("allow")
        .violations(&[])
        .final_status("allowed")
        .set("method", "POST")
        .set("path", "/v1/chat/completions")
        .set("stream", i % 2 == 0)
        .set("api", "openai_chat")
        .input_summary(&text.repeat(4), 200);
    let resp = base(kind::AI_RESPONSE)
        .latency_ms(812.345)
        .violations(&[])
        .status(200)
        .ttft_ms(120.5)
        .set("upstream_ttfb_ms", 95.25)
        .set(
            "usage",
            serde_json::json!({"prompt_tokens": 812, "completion_tokens": 164, "total_tokens": 976}),
        )
        .set("finish_reason", "stop")
        .output_summary(&text.repeat(4), 200);
    vec![req, resp]
}

/// Writer cost per event: `Store::write` + `flush` per batch (what `write_batch` does), for
/// proxy-like events at several batch sizes. Run with
/// `cargo test --release --lib store::tests::writer_cpu_per_event -- --ignored --nocapture`.
#[test]
#[ignore]
fn writer_cpu_per_event() {
    let sample = serde_json::to_vec(
        &super::db::build_record(
            proxy_call(0).remove(1),
            1,
            super::evidence::GENESIS,
            "2026-01-01T00:00:00Z",
        )
        .0,
    )
    .unwrap();
    eprintln!("record size: {} bytes", sample.len());
    eprintln!("batch\tevents\tproc_cpu_us/ev\twriter_cpu_us/ev\twall_us/ev\tkeys/ev");
    for (batch, total) in [(2usize, 4_000usize), (32, 16_384), (512, 32_768)] {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 64 << 20).unwrap();
        let mut heads = HashMap::new();
        // Warm-up: a tree that is not empty.
        let warm: Vec<Event> = (0..2048).flat_map(proxy_call).collect();
        for c in warm.chunks(512) {
            s.write(&mut heads, c.to_vec()).unwrap();
        }
        s.flush().unwrap();
        let events: Vec<Event> = (0..total / 2)
            .flat_map(|i| proxy_call(10_000 + i))
            .collect();
        let mut chunks: Vec<Vec<Event>> = events.chunks(batch).map(|c| c.to_vec()).collect();
        let keys0 = s.db().len();
        let (p0, t0) = cpu_micros();
        let w0 = std::time::Instant::now();
        let n_batches = chunks.len();
        for c in chunks.drain(..) {
            s.write(&mut heads, c).unwrap();
            s.flush().unwrap();
        }
        let wall = w0.elapsed().as_micros() as f64;
        let (p1, t1) = cpu_micros();
        let keys = (s.db().len() - keys0) as f64 + n_batches as f64; // + head rewrite
        let n = total as f64;
        eprintln!(
            "{batch}\t{total}\t{:.1}\t{:.1}\t{:.1}\t{:.2}",
            (p1 - p0) as f64 / n,
            (t1 - t0) as f64 / n,
            wall / n,
            keys / n
        );
    }
}
