//! Contract tests of the ingestion and evidence APIs (seeds 000–004): paths, defaults,
//! limits, status codes, idempotency, workspace isolation, verify and export.

mod common;

use common::*;
use http::Method;
use serde_json::{json, Value};

const KEY_A: &str = "pk-ws-a";
const KEY_B: &str = "pk-ws-b";
const KEY_READ: &str = "pk-ws-a-read";

fn cfg() -> String {
    let h = |k: &str| parapet::auth::KeyHash::of(k.as_bytes()).to_hex();
    format!(
        r#"
[policies]
dir = "{pol}"
[store]
max_request_bytes = 20000
max_events_per_request = 5
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "http://127.0.0.1:9"
[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "oa"
[[keys]]
id = "a"
sha256 = "{a}"
workspace = "ws-a"
[[keys]]
id = "b"
sha256 = "{b}"
workspace = "ws-b"
[[keys]]
id = "a-read"
sha256 = "{r}"
workspace = "ws-a"
scopes = ["evidence:read"]
"#,
        pol = shipped_policies(),
        a = h(KEY_A),
        b = h(KEY_B),
        r = h(KEY_READ)
    )
}

fn auth(k: &str) -> String {
    format!("Bearer {k}")
}

async fn post_as(base: &str, path: &str, key: &str, body: &Value) -> Reply {
    let a = auth(key);
    post(&format!("{base}{path}"), &[("authorization", &a)], body).await
}

async fn get_as(base: &str, path: &str, key: &str) -> Reply {
    let a = auth(key);
    send(
        Method::GET,
        &format!("{base}{path}"),
        &[("authorization", &a)],
        "",
    )
    .await
}

#[tokio::test]
async fn auth_errors_and_scopes() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    let ev = json!({"type": "ai.error", "request_id": "r1"});
    let r = post(&format!("{base}/v1/events"), &[], &ev).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "unauthorized");
    assert_eq!(post_as(&base, "/v1/events", "nope", &ev).await.status, 401);
    assert_eq!(
        post_as(&base, "/v1/events", KEY_READ, &ev).await.status,
        403
    );
    assert_eq!(
        get_as(&base, "/v1/evidence/events?workspace=ws-b", KEY_A)
            .await
            .status,
        403
    );
    assert_eq!(
        get_as(&base, "/v1/evidence/events", KEY_READ).await.status,
        200
    );
    assert_eq!(
        get_as(&base, "/v1/evidence/nothing", KEY_A).await.status,
        404
    );
    assert_eq!(get_as(&base, "/v1/events", KEY_A).await.status, 405);
    s.shutdown().await;
}

#[tokio::test]
async fn signalvault_events() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    // ai.request with a secret: deny decision, violations without the value.
    let req = json!({"type": "ai.request", "request_id": "r1", "event_id": "e1", "model": "gpt-4o",
        "payload": {"messages": [{"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD and mail bob@example.com"}]}});
    let r = post_as(&base, "/v1/events", KEY_A, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["event_id"], "e1");
    assert!(v["decision"].is_string());
    assert!(
        v["violations"].as_array().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert!(v["redactions"].is_array());
    assert!(
        !r.text().contains("bob@example.com"),
        "never the value: {}",
        r.text()
    );
    // Same event_id again: the original result, no second record.
    let again = post_as(&base, "/v1/events", KEY_A, &req).await;
    assert_eq!(again.json(), v);
    // monitor_mode: allowed, violations still reported.
    let mut m = req.clone();
    m["event_id"] = "e2".into();
    m["payload"]["monitor_mode"] = true.into();
    let mv = post_as(&base, "/v1/events", KEY_A, &m).await.json();
    assert_eq!(mv["decision"], "allow");
    assert!(!mv["violations"].as_array().unwrap().is_empty());
    // ai.response / ai.error / agent.tool_call shapes.
    let r = post_as(&base, "/v1/events", KEY_A, &json!({"type": "ai.response", "request_id": "r1", "event_id": "e3",
        "payload": {"output": "Hi there!", "usage": {"prompt_tokens": 10, "completion_tokens": 8}, "cost_usd": 0.0018}})).await;
    assert_eq!(
        r.json(),
        json!({"event_id": "e3", "status": "recorded", "violations": []})
    );
    let r = post_as(
        &base,
        "/v1/events",
        KEY_A,
        &json!({"type": "ai.error", "request_id": "r1", "event_id": "e4"}),
    )
    .await;
    assert_eq!(r.json(), json!({"event_id": "e4"}));
    let r = post_as(
        &base,
        "/v1/events",
        KEY_A,
        &json!({"type": "agent.tool_call", "event_id": "e5", "payload": {"tool_name": "search"}}),
    )
    .await;
    assert_eq!(r.json(), json!({"event_id": "e5"}));
    // 422s.
    for (body, field) in [
        (json!({"type": "policy.violation"}), "type"),
        (json!({"type": "budget.exceeded"}), "type"),
        (json!({"type": "ai.request"}), "request_id"),
        (json!({"type": "nope"}), "type"),
        (json!({"request_id": "x"}), "type"),
        (
            json!({"type": "ai.error", "request_id": "r", "environment": "prod"}),
            "environment",
        ),
        (
            json!({"type": "ai.error", "request_id": "r", "metadata": []}),
            "metadata",
        ),
    ] {
        let r = post_as(&base, "/v1/events", KEY_A, &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert_eq!(r.json()["details"][0]["field"], field, "{body}");
    }
    let r = send(
        Method::POST,
        &format!("{base}/v1/events"),
        &[("authorization", &auth(KEY_A))],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 422);
    // Stored: request, its policy.violation events, correlated by request_id.
    let g = get_as(&base, "/v1/evidence/events?request_id=r1&limit=100", KEY_A)
        .await
        .json();
    let types: Vec<&str> = g["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"ai.request")
            && types.contains(&"policy.violation")
            && types.contains(&"ai.response"),
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "ai.request").count(),
        2,
        "no second record for the retry"
    );
    assert!(
        !g.to_string().contains("bob@example.com"),
        "stored content is redacted"
    );
    // Clairist types.
    let r = post_as(&base, "/v1/events", KEY_A, &json!({"type": "model_call", "system_id": "support-assistant", "model_id": "gpt-4.1-mini", "request_count": 1, "token_usage": 1024})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "recorded");
    let g = get_as(&base, "/v1/evidence/events?type=model_call", KEY_A)
        .await
        .json();
    assert_eq!(g["events"][0]["model"], "gpt-4.1-mini");
    s.shutdown().await;
}

#[tokio::test]
async fn igris_raw_ingestion() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    let one = json!({"type": "tool_call", "toolName": "generate_report", "action": "allow", "timestamp": "2026-03-19T10:00:00.000Z", "metadata": {"model": "gpt-4o", "userId": "user_42"}});
    let r = post_as(&base, "/api/v1/ingest/raw", KEY_A, &one).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"], json!({"ingested": 1, "rejected": 0}));
    let batch = json!({"events": [
        {"type": "completion", "toolName": "claude-sonnet-4-20250514", "action": "allow", "metadata": {"tokens": 500}},
        {"type": "tool_call", "toolName": "search_database"}]});
    let r = post_as(&base, "/api/v1/ingest/raw", KEY_A, &batch).await;
    assert_eq!(r.json()["data"], json!({"ingested": 2, "rejected": 0}));
    let g = get_as(&base, "/v1/evidence/events?type=tool_call&limit=5", KEY_A)
        .await
        .json();
    assert_eq!(
        g["events"][0]["operator_action"], "log",
        "action defaults to log"
    );
    // Validation: 400 with {error, details[{field, message}]}.
    let r = post_as(
        &base,
        "/api/v1/ingest/raw",
        KEY_A,
        &json!({"type": "tool_call"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "Validation failed");
    assert_eq!(
        r.json()["details"],
        json!([{"field": "toolName", "message": "Required"}])
    );
    let r = post_as(&base, "/api/v1/ingest/raw", KEY_A, &json!({"events": [{"type": "x", "toolName": "t"}, {"type": "custom", "toolName": "t", "timestamp": "yesterday"}]})).await;
    assert_eq!(r.status, 400);
    let fields: Vec<&str> = r.json()["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .map(|s| Box::leak(s.to_string().into_boxed_str()) as &str)
        .collect();
    assert_eq!(fields, ["events[0].type", "events[1].timestamp"]);
    // Limits: 413 for too many events and for an oversize body.
    let many = json!({"events": (0..6).map(|_| json!({"type": "custom", "toolName": "t"})).collect::<Vec<_>>()});
    assert_eq!(
        post_as(&base, "/api/v1/ingest/raw", KEY_A, &many)
            .await
            .status,
        413
    );
    let big = json!({"type": "custom", "toolName": "x".repeat(30_000)});
    assert_eq!(
        post_as(&base, "/api/v1/ingest/raw", KEY_A, &big)
            .await
            .status,
        413
    );
    s.shutdown().await;
}

#[tokio::test]
async fn runtime_and_change_with_idempotency_key() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    let a = auth(KEY_A);
    let body = json!({"route_id": "prod-chat", "event_id": "rt-1", "timestamp": "2026-04-08T18:02:43Z", "latency_ms": 120});
    let h = [("authorization", a.as_str()), ("idempotency-key", "k-1")];
    let r1 = post(&format!("{base}/v1/ingest/runtime"), &h, &body).await;
    assert_eq!(r1.status, 200, "{}", r1.text());
    let r2 = post(&format!("{base}/v1/ingest/runtime"), &h, &body).await;
    assert_eq!(r1.json(), r2.json());
    assert_eq!(r2.headers["idempotent-replayed"], "true");
    let g = get_as(&base, "/v1/evidence/events?route_path=prod-chat", KEY_A)
        .await
        .json();
    assert_eq!(g["event_count"], 1, "exactly once");
    let r = post_as(
        &base,
        "/v1/ingest/runtime",
        KEY_A,
        &json!({"route_id": "x"}),
    )
    .await;
    assert_eq!(r.status, 422);
    let f: Vec<String> = r.json()["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(f, ["event_id", "timestamp"]);
    let c =
        json!({"provider": "openai", "change_id": "ch-1", "classification": "model_deprecation"});
    assert_eq!(
        post_as(&base, "/v1/ingest/change", KEY_A, &c).await.status,
        200
    );
    let r = post_as(
        &base,
        "/v1/ingest/change",
        KEY_A,
        &json!({"provider": "openai"}),
    )
    .await;
    assert_eq!(r.status, 422);
    s.shutdown().await;
}

/// An `Idempotency-Key` names one request: a retry with the same body (in any key order) is
/// answered from the stored events; the same key with another body is refused with 422 and
/// stores nothing (IETF httpapi idempotency-key draft).
#[tokio::test]
async fn idempotency_key_reused_with_another_body_is_refused() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    let a = auth(KEY_A);
    let h = [
        ("authorization", a.as_str()),
        ("idempotency-key", "batch-7"),
    ];
    let url = format!("{base}/api/v1/ingest/raw");
    let body = json!({"events": [
        {"type": "tool_call", "toolName": "search", "action": "allow"},
        {"type": "completion", "toolName": "gpt-4o"}]});
    let r1 = post(&url, &h, &body).await;
    assert_eq!(
        r1.json()["data"],
        json!({"ingested": 2, "rejected": 0}),
        "{}",
        r1.text()
    );
    // Same body, other key order and whitespace: a retry.
    let same: Value = serde_json::from_str(
        r#"{ "events": [ {"action": "allow", "toolName": "search", "type": "tool_call"},
             {"toolName": "gpt-4o", "type": "completion"} ] }"#,
    )
    .unwrap();
    let r2 = post(&url, &h, &same).await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert_eq!(r2.json()["data"], json!({"ingested": 0, "rejected": 2}));
    assert_eq!(
        r2.json()["meta"]["event_ids"],
        r1.json()["meta"]["event_ids"]
    );
    // Same key, another body: refused on every path, nothing stored.
    let other = json!({"events": [{"type": "tool_call", "toolName": "delete_all"}]});
    let r3 = post(&url, &h, &other).await;
    assert_eq!(r3.status, 422, "{}", r3.text());
    assert_eq!(r3.json()["code"], "idempotency_key_reused");
    assert_eq!(r3.json()["details"][0]["field"], "Idempotency-Key");
    let rt = json!({"route_id": "r", "timestamp": "2026-04-08T18:02:43Z"});
    let r4 = post(&format!("{base}/v1/ingest/runtime"), &h, &rt).await;
    assert_eq!(r4.status, 422, "{}", r4.text());
    assert_eq!(r4.json()["code"], "idempotency_key_reused");
    let g = get_as(&base, "/v1/evidence/events?limit=100", KEY_A)
        .await
        .json();
    assert_eq!(g["event_count"], 2, "{g}");
    // The key is per workspace: workspace B may use it for its own body.
    let b = auth(KEY_B);
    let hb = [
        ("authorization", b.as_str()),
        ("idempotency-key", "batch-7"),
    ];
    let r5 = post(&url, &hb, &other).await;
    assert_eq!(r5.status, 200, "{}", r5.text());
    s.shutdown().await;
}

#[tokio::test]
async fn evidence_post_get_export_verify() {
    let s = start(&cfg()).await;
    let base = format!("http://{}", s.data_addr);
    // Seed minimal POST: defaults.
    let r = post_as(
        &base,
        "/v1/evidence/events",
        KEY_A,
        &json!({
        "project_id": "trial_proj_b17e8105174f862a",
        "application_id": "clarixo:assistant:playground_chat",
        "event_id": "package_ready_minimal_check",
        "session_id": "package_ready_minimal_session",
        "output_summary": "package ready minimal post check"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let g = get_as(
        &base,
        "/v1/evidence/events?event_id=package_ready_minimal_check&limit=1",
        KEY_A,
    )
    .await
    .json();
    assert_eq!(g["ok"], true);
    assert_eq!(g["event_count"], 1);
    let e = &g["events"][0];
    assert_eq!(e["schema_version"], "v1");
    assert_eq!(e["record_origin"], "manual_post");
    assert_eq!(e["final_status"], "answered");
    assert_eq!(e["guard_flags"], json!(["none"]));
    assert_eq!(e["confidence_signals"], json!({}));
    assert_eq!(e["metadata"], json!({}));
    assert!(e["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert!(e["evidence_hash"].as_str().unwrap().starts_with("sha256:"));
    // Validation, including a wrong client-side evidence_hash.
    for body in [
        json!({"fallback_used": "no"}),
        json!({"guard_flags": "x"}),
        json!({"recorded_at": "08/04/2026"}),
        json!({"evidence_hash": "sha256:00"}),
        json!({"surprise": 1}),
    ] {
        assert_eq!(
            post_as(&base, "/v1/evidence/events", KEY_A, &body)
                .await
                .status,
            422,
            "{body}"
        );
    }
    // 25 more records; limit default 20, max 100, cursor pages.
    let recs: Vec<Value> = (0..25).map(|i| json!({"event_id": format!("b{i}"), "session_id": "s", "final_status": if i % 5 == 0 { "refused" } else { "answered" }, "recorded_at": format!("2026-04-08T10:{i:02}:00Z")})).collect();
    for chunk in recs.chunks(5) {
        assert_eq!(
            post_as(
                &base,
                "/v1/evidence/events",
                KEY_A,
                &Value::Array(chunk.to_vec())
            )
            .await
            .status,
            200
        );
    }
    let g = get_as(&base, "/v1/evidence/events", KEY_A).await;
    assert_eq!(g.json()["event_count"], 20);
    assert!(g.headers.get("link").is_some());
    let g = get_as(&base, "/v1/evidence/events?limit=1000", KEY_A)
        .await
        .json();
    assert_eq!(g["event_count"], 26, "limit capped at 100");
    let g = get_as(
        &base,
        "/v1/evidence/events?final_status=refused&session_id=s",
        KEY_A,
    )
    .await
    .json();
    assert_eq!(g["event_count"], 5);
    let g = get_as(
        &base,
        "/v1/evidence/events?recorded_from=2026-04-08T10:10:00Z&recorded_to=2026-04-08T10:14:59Z",
        KEY_A,
    )
    .await
    .json();
    assert_eq!(g["event_count"], 5);
    let mut seen = 0;
    let mut url = "/v1/evidence/events?session_id=s&limit=7".to_string();
    loop {
        let g = get_as(&base, &url, KEY_A).await.json();
        seen += g["event_count"].as_u64().unwrap();
        match g["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/evidence/events?session_id=s&limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, 25);
    for bad in [
        "limit=0",
        "limit=x",
        "recorded_from=yesterday",
        "colour=red",
        "cursor=zz",
    ] {
        assert_eq!(
            get_as(&base, &format!("/v1/evidence/events?{bad}"), KEY_A)
                .await
                .status,
            422,
            "{bad}"
        );
    }
    // The export answers the same mistakes with the same status and a body naming the
    // field, not with a stream that ends without either (it used to close the connection
    // with no response at all for a bad cursor).
    for bad in ["cursor=zz", "cursor=AAAA", "cursor=%25%25", "limit=0"] {
        let r = get_as(&base, &format!("/v1/evidence/export?{bad}"), KEY_A).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert!(
            r.text().contains(bad.split('=').next().unwrap_or("")),
            "{bad}: {}",
            r.text()
        );
    }
    // Isolation: workspace B sees none of A's events.
    assert_eq!(
        get_as(&base, "/v1/evidence/events", KEY_B).await.json()["event_count"],
        0
    );
    // Export: JSON Lines, oldest first, all records.
    let x = get_as(&base, "/v1/evidence/export", KEY_A).await;
    assert_eq!(x.headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = x
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 26);
    assert_eq!(lines[0]["seq"], 1);
    // Verify.
    let v = get_as(&base, "/v1/evidence/verify", KEY_READ).await.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["head"]["seq"], 26);
    s.shutdown().await;
}
