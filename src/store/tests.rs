//! Store unit tests: write/dedup, query filters and cursor, verify detects edit / delete /
//! reorder / tail loss, retention keeps the chain verifiable, writer group commit and the
//! chain anchor; the format-2 mechanisms (segment lookup at boundaries, posting lists across
//! batches, time buckets, retention through a segment, tampering inside a segment, the
//! format check); and an ignored measurement of the writer's cost per event.

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

/// Proxy-path batches (no ack) are written at once and flushed within
/// `PROXY_FLUSH_EVERY` even when nothing else arrives: the anchor (written after each
/// flush) catches up with the chain without a shutdown.
#[tokio::test]
async fn unacked_batches_are_flushed_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::config::store::StoreConfig::in_dir(dir.path());
    let svc = StoreService::start(&cfg).unwrap();
    let sink = svc.sink();
    for round in 0..3 {
        for i in 0..20 {
            sink.record(ev("w1", &format!("p{round}-{i}"), "s", "answered"))
                .await;
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        let want = (round + 1) * 20;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let anchored = sink
                .store()
                .unwrap()
                .read_anchor()
                .and_then(|a| a.get("w1").map(|h| h.seq))
                .unwrap_or(0);
            if anchored == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: anchor at {anchored}, want {want}: the writer stopped flushing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    svc.shutdown().await;
}

/// A small batch of proxy-path events waits `linger` for more: two events sent 40 ms
/// apart to an idle writer with a 400 ms linger are one batch (one segment); with no
/// linger, the first is written alone.
#[tokio::test]
async fn proxy_events_linger_to_share_a_batch() {
    for (linger_ms, together) in [(400u64, true), (0, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::store::StoreConfig::in_dir(dir.path());
        cfg.linger = Duration::from_millis(linger_ms);
        let svc = StoreService::start(&cfg).unwrap();
        let sink = svc.sink();
        sink.record(ev("w1", "a", "s", "answered")).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        sink.record(ev("w1", "b", "s", "answered")).await;
        svc.shutdown().await;
        let s = sink.store().unwrap();
        let (k1, k2) = (
            s.raw_segment_key("w1", 1).unwrap().unwrap(),
            s.raw_segment_key("w1", 2).unwrap().unwrap(),
        );
        assert_eq!(k1 == k2, together, "linger {linger_ms} ms");
    }
}

/// A lingering writer sleeps on its doorbell, not on the queue: an acked write, a
/// shutdown, and a full linger's worth of events each end the linger at once (the linger
/// here is 60 s; the test would hang without the doorbell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_messages_end_a_linger() {
    let long = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::config::store::StoreConfig::in_dir(dir.path());
    cfg.linger = long;
    let svc = StoreService::start(&cfg).unwrap();
    let sink = svc.sink();
    sink.record(ev("w1", "a", "s", "answered")).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the writer is lingering now
    let acked = tokio::time::timeout(
        Duration::from_secs(20),
        sink.submit(vec![ev("w1", "b", "s", "answered")]),
    )
    .await
    .expect("an acked write ends the linger")
    .unwrap();
    assert!(matches!(acked[0], Written::New { .. }));
    // A linger's worth of proxy events is written without waiting for the deadline.
    for i in 0..LINGER_EVENTS {
        sink.record(ev("w1", &format!("p{i}"), "s", "answered"))
            .await;
    }
    let s = sink.store().unwrap().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.verify("w1").unwrap().records < 2 + LINGER_EVENTS as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "a full linger was not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One more event starts a new linger; shutdown ends it and drains it.
    sink.record(ev("w1", "last", "s", "answered")).await;
    tokio::time::timeout(Duration::from_secs(20), svc.shutdown())
        .await
        .expect("shutdown ends the linger");
    assert_eq!(s.verify("w1").unwrap().records, 3 + LINGER_EVENTS as u64);
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
    assert_eq!(
        s.read_anchor().unwrap()["w1"].seq,
        500,
        "the writer keeps the chain anchor"
    );
}

/// A store packing at most `n` records per segment.
fn open_packed(n: usize) -> (tempfile::TempDir, Store) {
    let (d, s) = open();
    (d, s.with_segment_limits(n, 1 << 20))
}

fn q_eq(eq: &[(&str, &str)], limit: usize, cursor: Option<String>, ascending: bool) -> Query {
    Query {
        eq: eq
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        limit,
        cursor,
        ascending,
        ..Query::default()
    }
}

/// Every page of `q` (following the cursor), as the `seq`s of the events.
fn all_pages(s: &Store, mut q: Query) -> (Vec<u64>, usize) {
    let mut seqs = Vec::new();
    let mut pages = 0;
    loop {
        let p = s.query("w1", &q).unwrap();
        pages += 1;
        seqs.extend(p.events.iter().map(|e| e["seq"].as_u64().unwrap()));
        match p.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return (seqs, pages),
        }
    }
}

#[test]
fn segment_lookup_at_boundaries() {
    let (_d, s) = open_packed(3);
    let mut heads = HashMap::new();
    // Batches of 7, 1 and 5 records → segments [1,3] [4,6] [7] [8] [9,11] [12,13].
    for (b, n) in [(0, 7), (1, 1), (2, 5)] {
        let events = (0..n)
            .map(|i| ev("w1", &format!("b{b}-{i}"), "s", "answered"))
            .collect();
        s.write(&mut heads, events).unwrap();
    }
    let firsts: Vec<u64> = s
        .db()
        .scan_prefix(b"r\0w1\0")
        .map(|kv| {
            let k = kv.unwrap().0;
            u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap())
        })
        .collect();
    assert_eq!(firsts, [1, 4, 7, 8, 9, 12]);
    let ids: Vec<String> = (0..7)
        .map(|i| format!("b0-{i}"))
        .chain(["b1-0".to_string()])
        .chain((0..5).map(|i| format!("b2-{i}")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let r = s.get("w1", id).unwrap().unwrap();
        assert_eq!(r["seq"], i as u64 + 1, "{id}");
        let raw = s.raw_record("w1", i as u64 + 1).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(&v["event_id"], id);
    }
    assert!(s.raw_record("w1", 0).unwrap().is_none());
    assert!(s.raw_record("w1", 14).unwrap().is_none(), "past the head");
    assert!(s.raw_record("w2", 1).unwrap().is_none(), "other workspace");
    assert_eq!(
        s.raw_segment_key("w1", 6).unwrap(),
        s.raw_segment_key("w1", 4).unwrap()
    );
    assert!(s.verify("w1").unwrap().broken.is_none());
    // Unfiltered paging crosses segment boundaries both ways.
    for limit in [1, 2, 3, 4, 13, 20] {
        let (asc, _) = all_pages(&s, q_eq(&[], limit, None, true));
        assert_eq!(asc, (1..=13).collect::<Vec<u64>>(), "limit {limit}");
        let (desc, _) = all_pages(&s, q_eq(&[], limit, None, false));
        assert_eq!(desc, (1..=13).rev().collect::<Vec<u64>>(), "limit {limit}");
    }
}

#[test]
fn posting_lists_across_batches_page_both_ways() {
    let (_d, s) = open_packed(4);
    let mut heads = HashMap::new();
    // 6 batches of 7 events; session s{i % 3}, status alternating.
    let mut seq = 0u64;
    let mut want_s1 = Vec::new();
    let mut want_s1_blocked = Vec::new();
    for b in 0..6 {
        let mut events = Vec::new();
        for i in 0..7 {
            seq += 1;
            let n = b * 7 + i;
            let status = if n % 2 == 0 { "answered" } else { "blocked" };
            let session = format!("s{}", n % 3);
            if session == "s1" {
                want_s1.push(seq);
                if status == "blocked" {
                    want_s1_blocked.push(seq);
                }
            }
            events.push(ev("w1", &format!("e{n}"), &session, status));
        }
        s.write(&mut heads, events).unwrap();
    }
    for limit in [1, 2, 3, 5, 100] {
        let (asc, pages) = all_pages(&s, q_eq(&[("session_id", "s1")], limit, None, true));
        assert_eq!(asc, want_s1, "limit {limit}");
        assert!(pages >= want_s1.len() / limit);
        let (desc, _) = all_pages(&s, q_eq(&[("session_id", "s1")], limit, None, false));
        let mut rev = want_s1.clone();
        rev.reverse();
        assert_eq!(desc, rev, "limit {limit}");
        // Driver (session_id) + post-filter (final_status).
        let (both, _) = all_pages(
            &s,
            q_eq(
                &[("final_status", "blocked"), ("session_id", "s1")],
                limit,
                None,
                true,
            ),
        );
        assert_eq!(both, want_s1_blocked, "limit {limit}");
    }
    // A cursor taken from an ascending page resumes inside a posting list descending too.
    let p = s
        .query("w1", &q_eq(&[("session_id", "s1")], 4, None, true))
        .unwrap();
    let c = p.next_cursor.unwrap();
    let (back, _) = all_pages(&s, q_eq(&[("session_id", "s1")], 2, Some(c), false));
    let mut want: Vec<u64> = want_s1[..3].to_vec();
    want.reverse();
    assert_eq!(back, want);
    // request_id groups a call; a value never seen gives nothing.
    assert_eq!(
        all_pages(&s, q_eq(&[("request_id", "req-1")], 10, None, true))
            .0
            .len(),
        42
    );
    assert!(
        all_pages(&s, q_eq(&[("session_id", "nope")], 10, None, true))
            .0
            .is_empty()
    );
    let bad = s.query(
        "w1",
        &q_eq(&[("session_id", "s1")], 4, Some("00ff".into()), true),
    );
    assert!(bad.is_err(), "a cursor of the wrong shape is refused");
}

#[test]
fn time_buckets_filter_exactly_at_their_boundaries() {
    let (_d, s) = open_packed(2);
    let mut heads = HashMap::new();
    let times = [
        "1969-12-31T23:59:59.5Z",
        "1970-01-01T00:00:00Z",
        "2026-04-08T10:00:00.999999Z",
        "2026-04-08T10:00:01Z",
        "2026-04-08T10:00:01.5Z",
        "2026-04-08T10:00:01.999999Z",
        "2026-04-08T10:00:02Z",
        "2026-04-08T10:00:00.5Z",
    ];
    // Two batches, so one bucket holds lists from both.
    for chunk in times.iter().enumerate().collect::<Vec<_>>().chunks(4) {
        let events = chunk
            .iter()
            .map(|(i, t)| {
                let mut e = ev("w1", &format!("t{i}"), "s", "answered");
                e.evidence.recorded_at = t.to_string();
                e
            })
            .collect();
        s.write(&mut heads, events).unwrap();
    }
    let at = |t: &str| Timestamp::parse(t).unwrap().micros();
    let ids = |from: Option<&str>, to: Option<&str>, limit: usize, asc: bool| -> Vec<String> {
        let mut q = Query {
            recorded_from: from.map(at),
            recorded_to: to.map(at),
            limit,
            ascending: asc,
            ..Query::default()
        };
        let mut out = Vec::new();
        loop {
            let p = s.query("w1", &q).unwrap();
            out.extend(
                p.events
                    .iter()
                    .map(|e| e["event_id"].as_str().unwrap().to_string()),
            );
            match p.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return out,
            }
        }
    };
    for limit in [1, 2, 3, 100] {
        // Bucket order (second), then seq order inside a bucket.
        assert_eq!(
            ids(
                Some("2026-04-08T10:00:01Z"),
                Some("2026-04-08T10:00:01.5Z"),
                limit,
                true
            ),
            ["t3", "t4"]
        );
        assert_eq!(
            ids(
                Some("2026-04-08T10:00:00.999999Z"),
                Some("2026-04-08T10:00:01.999998Z"),
                limit,
                true
            ),
            ["t2", "t3", "t4"]
        );
        assert_eq!(
            ids(Some("2026-04-08T10:00:00Z"), None, limit, true),
            ["t2", "t7", "t3", "t4", "t5", "t6"]
        );
        assert_eq!(
            ids(Some("2026-04-08T10:00:00Z"), None, limit, false),
            ["t6", "t5", "t4", "t3", "t7", "t2"]
        );
        assert_eq!(
            ids(None, Some("1970-01-01T00:00:00Z"), limit, true),
            ["t0", "t1"],
            "before the epoch sorts first"
        );
        assert!(ids(Some("2026-04-08T10:00:02.000001Z"), None, limit, true).is_empty());
    }
    // Time range + index filter: the index drives, the range filters.
    let p = s
        .query(
            "w1",
            &Query {
                eq: vec![("session_id".into(), "s".into())],
                recorded_from: Some(at("2026-04-08T10:00:01.5Z")),
                limit: 10,
                ascending: true,
                ..Query::default()
            },
        )
        .unwrap();
    let got: Vec<&str> = p
        .events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["t4", "t5", "t6"]);
}

#[test]
fn retention_cuts_through_a_segment() {
    let (_d, s) = open_packed(4);
    let mut heads = HashMap::new();
    let events = (0..10)
        .map(|i| ev("w1", &format!("e{i}"), &format!("s{}", i % 2), "answered"))
        .collect();
    s.write(&mut heads, events).unwrap(); // segments [1-4] [5-8] [9-10]
    let future = Timestamp::now().micros() + 1_000_000;
    assert_eq!(s.retain("w1", future, 6).unwrap(), 6);
    let rep = s.verify("w1").unwrap();
    assert!(rep.broken.is_none(), "{rep:?}");
    assert_eq!((rep.records, rep.first_seq), (4, Some(7)));
    assert_eq!(
        s.raw_segment_key("w1", 8).unwrap(),
        s.raw_segment_key("w1", 7).unwrap(),
        "the straddling segment now starts at the cut"
    );
    assert!(s.raw_record("w1", 6).unwrap().is_none());
    assert!(s.get("w1", "e5").unwrap().is_none());
    assert_eq!(s.get("w1", "e6").unwrap().unwrap()["seq"], 7);
    // The posting lists straddling the cut were trimmed: no dangling seqs scanned.
    for (session, want) in [("s0", vec![7u64, 9]), ("s1", vec![8, 10])] {
        let (asc, _) = all_pages(&s, q_eq(&[("session_id", session)], 1, None, true));
        assert_eq!(asc, want);
    }
    let list = s
        .db()
        .scan_prefix(b"i\0w1\0")
        .map(|kv| kv.unwrap().1.len())
        .sum::<usize>();
    assert!(list > 0);
    let (all, _) = all_pages(&s, q_eq(&[], 3, None, false));
    assert_eq!(all, [10, 9, 8, 7]);
    // Writing continues the chain; a second cut removes the rest.
    s.write(&mut heads, vec![ev("w1", "n", "s0", "answered")])
        .unwrap();
    assert!(s.verify("w1").unwrap().broken.is_none());
    assert_eq!(s.retain("w1", future, 100).unwrap(), 5);
    let rep = s.verify("w1").unwrap();
    assert!(rep.broken.is_none() && rep.records == 0, "{rep:?}");
    assert_eq!(
        s.db().scan_prefix(b"i\0w1\0").count(),
        0,
        "no postings left"
    );
    assert_eq!(
        s.db().scan_prefix(b"t\0w1\0").count(),
        0,
        "no time lists left"
    );
    assert_eq!(
        s.db().scan_prefix(b"d\0w1\0").count(),
        0,
        "no event ids left"
    );
}

#[test]
fn tampering_inside_a_packed_segment_is_reported() {
    let setup = || {
        let (d, s) = open_packed(8);
        fill(&s, 20); // segments [1-8] [9-16] [17-20]
        (d, s)
    };
    // Edit of the last record of a segment.
    let (_d, s) = setup();
    edit(&s, 8, |v| v["output_summary"] = "changed".into());
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 8);
    assert!(b.reason.contains("evidence_hash"), "{}", b.reason);
    // One record cut out of the middle of a segment.
    let (_d, s) = setup();
    delete(&s, 11);
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 11);
    assert!(b.reason.contains("missing"), "{}", b.reason);
    // A whole segment deleted.
    let (_d, s) = setup();
    let k = s.raw_segment_key("w1", 12).unwrap().unwrap();
    s.db().remove(k).unwrap();
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 9);
    assert!(b.reason.contains("missing"), "{}", b.reason);
    // A segment whose framing is broken (bytes cut off its end).
    let (_d, s) = setup();
    let k = s.raw_segment_key("w1", 9).unwrap().unwrap();
    let v = s.db().get(&k).unwrap().unwrap();
    s.db().insert(&k, &v[..v.len() - 3]).unwrap();
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 9);
    assert!(b.reason.contains("unreadable"), "{}", b.reason);
    // Two segments swapped (keys kept): the first record at the wrong position is reported.
    let (_d, s) = setup();
    let (k1, k2) = (
        s.raw_segment_key("w1", 1).unwrap().unwrap(),
        s.raw_segment_key("w1", 9).unwrap().unwrap(),
    );
    let (v1, v2) = (
        s.db().get(&k1).unwrap().unwrap(),
        s.db().get(&k2).unwrap().unwrap(),
    );
    s.db().insert(&k1, v2).unwrap();
    s.db().insert(&k2, v1).unwrap();
    let b = s.verify("w1").unwrap().broken.unwrap();
    assert_eq!(b.seq, 1);
}

#[test]
fn segments_are_stored_compressed_and_uncompressed_ones_still_read() {
    use super::db::{open_segment, seal_segment};
    let (_d, s) = open_packed(8);
    fill(&s, 20);
    let k = s.raw_segment_key("w1", 9).unwrap().unwrap();
    let stored = s.db().get(&k).unwrap().unwrap();
    let framing = open_segment(&stored).unwrap().into_owned();
    assert_eq!(
        stored[0], 0xC1,
        "a segment of 8 records is stored compressed"
    );
    assert!(
        stored.len() * 2 < framing.len(),
        "{} stored bytes for {} bytes of records",
        stored.len(),
        framing.len()
    );
    // A segment written before compression (the plain framing) reads and verifies the same.
    s.db().insert(&k, framing.clone()).unwrap();
    assert!(s.verify("w1").unwrap().broken.is_none());
    assert!(s.raw_record("w1", 12).unwrap().is_some());
    // Incompressible framing stays plain; the round trip is exact.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..600)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut plain = (noise.len() as u32).to_be_bytes().to_vec();
    plain.extend_from_slice(&noise);
    assert_eq!(seal_segment(plain.clone()), plain);
    assert_eq!(
        open_segment(&seal_segment(framing.clone())).unwrap(),
        &framing[..]
    );
    // A damaged length claim is refused without inflating (no huge allocation).
    let mut forged = seal_segment(framing.clone());
    forged[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(open_segment(&forged).is_none());
}

#[test]
fn a_flipped_byte_in_a_compressed_segment_is_reported() {
    // Every byte position of one compressed segment, flipped in turn: verify never passes
    // and never panics.
    let (_d, s) = open_packed(8);
    fill(&s, 20);
    let k = s.raw_segment_key("w1", 9).unwrap().unwrap();
    let stored = s.db().get(&k).unwrap().unwrap().to_vec();
    assert_eq!(stored[0], 0xC1);
    for i in 0..stored.len() {
        let mut v = stored.clone();
        v[i] ^= 0x20;
        s.db().insert(&k, v).unwrap();
        let b = s.verify("w1").unwrap().broken;
        assert!(
            b.is_some(),
            "flip at byte {i} of {} not reported",
            stored.len()
        );
    }
}

/// Calls with UUIDv7 request ids and fresh (UUIDv7) event ids, several per millisecond.
fn v7_calls(n: usize) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut rids = Vec::new();
    for _ in 0..n {
        let rid = uuid::Uuid::now_v7().to_string();
        for k in [kind::AI_REQUEST, kind::AI_RESPONSE] {
            events.push(Event::new(k, "w1", rid.as_str()).route("openai"));
        }
        rids.push(rid);
    }
    (events, rids)
}

/// Lookups of every event id and request id of `events` (written to `s`).
fn check_lookups(s: &Store, events: &[Event], rids: &[String]) {
    for e in events {
        let id = &e.evidence.event_id;
        let r = s.get("w1", id).unwrap().expect("event found by its id");
        assert_eq!(r["event_id"], id.as_str());
        let p = s
            .query("w1", &q_eq(&[("event_id", id.as_str())], 20, None, false))
            .unwrap();
        assert_eq!(p.events.len(), 1);
    }
    for rid in rids {
        // Pages of one: the bucket's other calls are skipped, the cursor pages exactly.
        let (seqs, _) = all_pages(s, q_eq(&[("request_id", rid.as_str())], 1, None, true));
        assert_eq!(seqs.len(), 2, "request {rid}");
        let (rev, _) = all_pages(s, q_eq(&[("request_id", rid.as_str())], 1, None, false));
        assert_eq!(rev.iter().rev().copied().collect::<Vec<_>>(), seqs);
    }
    assert!(s
        .get("w1", &uuid::Uuid::now_v7().to_string())
        .unwrap()
        .is_none());
}

#[test]
fn uuid7_ids_are_indexed_by_millisecond_and_found_exactly() {
    let (_d, s) = open();
    let mut heads = HashMap::new();
    let mut all = Vec::new();
    let mut rids = Vec::new();
    for _ in 0..4 {
        let (events, r) = v7_calls(60);
        s.write(&mut heads, events.clone()).unwrap();
        all.extend(events);
        rids.extend(r);
    }
    // No key per event id or per request id: a few bucket lists per batch.
    assert_eq!(s.db().scan_prefix(b"d\0w1\0").count(), 0);
    assert_eq!(s.db().scan_prefix(b"i\0w1\0\x01").count(), 0);
    let buckets = s.db().scan_prefix(b"u\0w1\0").count();
    assert!(
        buckets > 0 && buckets < all.len() / 4,
        "{buckets} bucket lists"
    );
    check_lookups(&s, &all, &rids);
    // An ingested event reusing a fresh id is a duplicate, found through the bucket.
    let again =
        Event::new(kind::AI_RESPONSE, "w1", "other").event_id(all[7].evidence.event_id.clone());
    let w = s.write(&mut heads, vec![again]).unwrap();
    assert!(matches!(w[0], Written::Duplicate { seq: 8, .. }), "{w:?}");
    // Retention removes the bucket lists with the records.
    let future = Timestamp::now().micros() + 1_000_000;
    assert_eq!(
        s.retain("w1", future, usize::MAX).unwrap(),
        all.len() as u64
    );
    assert_eq!(s.db().scan_prefix(b"u\0w1\0").count(), 0);
    assert!(s.verify("w1").unwrap().broken.is_none());
}

#[test]
fn a_store_created_without_id_buckets_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), 8 << 20).unwrap();
        s.db().remove(b"v\0id-buckets").unwrap();
        s.db().flush().unwrap();
    }
    let s = Store::open(dir.path(), 8 << 20).unwrap();
    let mut heads = HashMap::new();
    let (events, rids) = v7_calls(30);
    s.write(&mut heads, events.clone()).unwrap();
    assert_eq!(s.db().scan_prefix(b"d\0w1\0").count(), events.len());
    assert_eq!(s.db().scan_prefix(b"u\0w1\0").count(), 0);
    check_lookups(&s, &events, &rids);
}

#[test]
fn a_store_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"e\0w1\0\0\0\0\0\0\0\0\x01", b"{}".to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), 8 << 20).err().unwrap().to_string();
    assert!(err.contains("format-1"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"v\0format", b"3".to_vec()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), 8 << 20).err().unwrap().to_string();
    assert!(err.contains("unsupported store format"), "{err}");
    // A store sled created with its default log segment size (earlier versions) opens.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"v\0format", b"2".to_vec()).unwrap();
        db.flush().unwrap();
    }
    assert!(Store::open(dir.path(), 8 << 20).is_ok());
    // A new store gets the format key and opens again.
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), 8 << 20).unwrap());
    assert!(Store::open(dir.path(), 8 << 20).is_ok());
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

/// Bytes this process passed to write(2)/pwrite(2) so far (`wchar` of /proc/self/io).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("wchar: ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The two events a proxied call records (`src/proxy/record.rs`), ~1 KB each.
fn proxy_call(i: usize) -> Vec<Event> {
    // A UUIDv7, as Parapet generates when the client sends no x-request-id.
    let _ = i;
    let rid = uuid::Uuid::now_v7().to_string();
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
    // Building the records (JSON, hashes) without sled, for comparison.
    let events: Vec<Event> = (0..4096).flat_map(proxy_call).collect();
    let (_, t0) = cpu_micros();
    let mut prev = super::evidence::GENESIS.to_string();
    for (i, e) in events.into_iter().enumerate() {
        let (r, _, chain) = super::db::build_record(e, i as u64 + 1, &prev, "2026-01-01T00:00:00Z");
        std::hint::black_box(serde_json::to_vec(&r).unwrap());
        prev = chain;
    }
    let (_, t1) = cpu_micros();
    eprintln!(
        "record build + serialize only: {:.1} µs/event",
        (t1 - t0) as f64 / 8192.0
    );
    // The anchor file the writer rewrites after each flushed batch.
    {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 8 << 20).unwrap();
        let heads: HashMap<String, super::db::Head> = (0..3)
            .map(|i| {
                let h = super::db::Head {
                    seq: 1_000_000 + i,
                    chain_hash: super::evidence::GENESIS.into(),
                };
                (format!("ws{i}"), h)
            })
            .collect();
        let (p0, t0) = cpu_micros();
        for _ in 0..2000 {
            s.write_anchor(&heads).unwrap();
        }
        let (p1, t1) = cpu_micros();
        eprintln!(
            "anchor write (3 workspaces): {:.1} µs writer CPU, {:.1} µs process CPU per batch",
            (t1 - t0) as f64 / 2000.0,
            (p1 - p0) as f64 / 2000.0
        );
    }
    // PARAPET_BENCH_SEGMENT=records,bytes: other segment limits.
    let seg: Option<(usize, usize)> = std::env::var("PARAPET_BENCH_SEGMENT").ok().and_then(|v| {
        let (r, b) = v.split_once(',')?;
        Some((r.parse().ok()?, b.parse().ok()?))
    });
    eprintln!("batch\tevents\tproc_cpu_us/ev\twriter_cpu_us/ev\twall_us/ev\tkeys/ev\twritten_B/ev");
    let only: Option<usize> = std::env::var("PARAPET_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    for (batch, total) in [(2usize, 4_000usize), (32, 16_384), (512, 32_768)] {
        if only.is_some_and(|b| b != batch) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), 64 << 20).unwrap();
        if let Some((r, b)) = seg {
            s = s.with_segment_limits(r, b);
        }
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
        let b0 = written_bytes();
        let w0 = std::time::Instant::now();
        let n_batches = chunks.len();
        for c in chunks.drain(..) {
            s.write(&mut heads, c).unwrap();
            s.flush().unwrap();
        }
        let wall = w0.elapsed().as_micros() as f64;
        let (p1, t1) = cpu_micros();
        let bytes = (written_bytes() - b0) as f64;
        let keys = (s.db().len() - keys0) as f64 + n_batches as f64; // + head rewrite
        let n = total as f64;
        eprintln!(
            "{batch}\t{total}\t{:.1}\t{:.1}\t{:.1}\t{:.2}\t{:.0}",
            (p1 - p0) as f64 / n,
            (t1 - t0) as f64 / n,
            wall / n,
            keys / n,
            bytes / n
        );
        if batch == 512 {
            read_costs(&s, &events);
        }
    }
}

/// Wall µs of typical reads on the store the 512-event run left (about 37k records).
fn read_costs(s: &Store, events: &[Event]) {
    let time = |name: &str, runs: u32, f: &dyn Fn() -> usize| {
        let t = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..runs {
            n = f();
        }
        eprintln!(
            "read {name}: {:.0} µs ({n} records)",
            t.elapsed().as_micros() as f64 / f64::from(runs)
        );
    };
    let q = |eq: &[(&str, &str)], limit: usize, asc: bool| Query {
        eq: eq
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        limit,
        ascending: asc,
        ..Query::default()
    };
    let page = |q: Query| s.query("default", &q).unwrap().events.len();
    let mid = &events[events.len() / 2];
    let rid = mid.request_id.clone().unwrap_or_default();
    let eid = mid.evidence.event_id.clone();
    time("newest 20", 200, &|| page(q(&[], 20, false)));
    time("oldest 100", 100, &|| page(q(&[], 100, true)));
    time("request_id (a call)", 500, &|| {
        page(q(&[("request_id", rid.as_str())], 20, false))
    });
    time("event_id", 1000, &|| {
        usize::from(s.get("default", &eid).unwrap().is_some())
    });
    time("type=ai.request newest 20", 200, &|| {
        page(q(&[("type", "ai.request")], 20, false))
    });
    let now = Timestamp::now().micros();
    time("last 60 s newest 20", 200, &|| {
        s.query(
            "default",
            &Query {
                recorded_from: Some(now - 60_000_000),
                limit: 20,
                ..Query::default()
            },
        )
        .unwrap()
        .events
        .len()
    });
    time("export all (pages of 1000)", 3, &|| {
        let mut q = q(&[], 1000, true);
        let mut n = 0;
        loop {
            let p = s.query("default", &q).unwrap();
            n += p.events.len();
            match p.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return n,
            }
        }
    });
}

#[test]
fn narrow_time_window_drives_an_equality_query_and_pages_consistently() {
    let (_d, s) = open();
    let mut heads = HashMap::new();
    // 3,000 events of route `r1` an hour apart from a window of 30 (15 of `r1`).
    let base = 1_700_000_000_i64 * 1_000_000;
    let mut events = Vec::new();
    for i in 0..3_000i64 {
        let mut e = ev("w1", &format!("old{i}"), "s", "answered").route("r1");
        e.evidence.recorded_at =
            Timestamp::from_micros(base - 3_600_000_000 - i * 1_000_000).to_rfc3339();
        events.push(e);
    }
    for i in 0..30i64 {
        let route = if i % 2 == 0 { "r1" } else { "r2" };
        let mut e = ev("w1", &format!("new{i}"), "s", "answered").route(route);
        e.evidence.recorded_at = Timestamp::from_micros(base + i * 1_000_000).to_rfc3339();
        events.push(e);
    }
    s.write(&mut heads, events).unwrap();
    for ascending in [false, true] {
        let mut q = Query {
            eq: vec![("route_path".into(), "r1".into())],
            recorded_from: Some(base),
            recorded_to: Some(base + 60_000_000),
            limit: 4,
            ascending,
            ..Query::default()
        };
        let mut got = Vec::new();
        for _ in 0..10 {
            let p = s.query("w1", &q).unwrap();
            got.extend(
                p.events
                    .iter()
                    .map(|e| e["event_id"].as_str().unwrap().to_string()),
            );
            match p.next_cursor {
                Some(c) => {
                    assert_eq!(c.len(), 32, "time-driven cursor");
                    q.cursor = Some(c);
                }
                None => break,
            }
        }
        let mut want: Vec<String> = (0..30).step_by(2).map(|i| format!("new{i}")).collect();
        if !ascending {
            want.reverse();
        }
        assert_eq!(got, want, "ascending={ascending}");
    }
    // A wide window (more than TIME_PROBE events) keeps the index driver: still correct.
    let p = s
        .query(
            "w1",
            &Query {
                eq: vec![("route_path".into(), "r2".into())],
                recorded_from: Some(0),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(p.events.len(), 15);
}
