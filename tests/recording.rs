//! Proxy-path recording: every proxied call leaves `ai.request`, `ai.response` / `ai.error`,
//! `agent.tool_call` and `policy.violation` events in the store, in its workspace, with
//! summaries that never hold a matched value.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Method;
use parapet::mock::{MockConfig, MockUpstream};
use parapet::store::db::Query;
use serde_json::{json, Value};

const EMAIL: &str = "alice.smith@example.com";
const SECRET: &str = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5";
const VKEY_TEAM: &str = "pk-team-x-key";

/// Policies: e-mail redacted everywhere, secrets denied in requests, a response keyword
/// denied, an IPv4 address only logged, and a monitor-mode keyword.
fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("p.toml"),
        r#"
[policy]
id = "t"

[[rules]]
id = "email"
detector = "email"
action = "redact"

[[rules]]
id = "secret"
detector = "secrets"
direction = "request"
action = "deny"

[[rules]]
id = "codes"
keywords = ["launch-codes"]
direction = "response"
action = "deny"

[[rules]]
id = "ip"
detector = "ipv4"
action = "log"

[[rules]]
id = "watch"
keywords = ["project-zebra"]
action = "deny"
mode = "monitor"
"#,
    )
    .expect("policy file");
    dir
}

fn cfg(upstream: &str, policies: &std::path::Path) -> String {
    format!(
        "[policies]\ndir = \"{}\"\n{}",
        policies.display(),
        passthrough_config(upstream, "", "")
    )
}

/// Virtual-key routes only; the key belongs to workspace `team-x`.
fn virtual_cfg(upstream: &str, policies: &std::path::Path) -> String {
    let hash = parapet::auth::KeyHash::of(VKEY_TEAM.as_bytes()).to_hex();
    format!(
        r#"
[policies]
dir = "{pol}"
[[endpoints]]
id = "vx"
kind = "openai"
base_url = "{upstream}"
api_key_env = "TEST_PROVIDER_KEY"
[[routes]]
id = "team"
path_prefix = "/v1/"
endpoint = "vx"
auth = "virtual"
[[keys]]
id = "team-x"
sha256 = "{hash}"
workspace = "team-x"
"#,
        pol = policies.display(),
    )
}

/// The events of one call, oldest first, once its answer event is stored (bounded wait).
async fn call_events(p: &parapet::Server, ws: &str, request_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runtime = p.state().snapshot();
        let store = runtime.events.store().expect("store enabled");
        let page = store
            .query(
                ws,
                &Query {
                    eq: vec![("request_id".into(), request_id.into())],
                    limit: 100,
                    ascending: true,
                    ..Query::default()
                },
            )
            .expect("query");
        let done = page
            .events
            .iter()
            .any(|e| e["type"] == "ai.response" || e["type"] == "ai.error");
        if done {
            return page.events;
        }
        assert!(
            Instant::now() < deadline,
            "no answer event for {request_id} in {ws}: {:?}",
            page.events
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn one<'a>(events: &'a [Value], t: &str) -> &'a Value {
    let v = of_type(events, t);
    assert_eq!(v.len(), 1, "exactly one {t}: {events:#?}");
    v[0]
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]})
}

#[tokio::test]
async fn chat_call_records_request_response_and_violations_without_values() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let text = format!("mail {EMAIL} from 10.1.2.3 about project-zebra");
    let r = post(&url, &[("x-request-id", "rec-chat-1")], &chat(&text, false)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let events = call_events(&p, "default", "rec-chat-1").await;
    let all = serde_json::to_string(&events).unwrap();
    for raw in [EMAIL, "10.1.2.3", "project-zebra"] {
        assert!(!all.contains(raw), "stored events contain {raw}: {all}");
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types[0], "ai.request", "{types:?}");

    let req = one(&events, "ai.request");
    assert_eq!(req["data"]["decision"], "redact");
    assert_eq!(req["final_status"], "allowed");
    assert_eq!(req["record_origin"], "proxy");
    assert_eq!(req["route_path"], "openai");
    assert_eq!(req["model"], "gpt-4o-mini");
    assert_eq!(req["provider"], "openai");
    let input = req["input_summary"].as_str().unwrap();
    assert!(input.starts_with("mail [EMAIL"), "{input}");
    assert!(input.contains("[IPV4]") || input.contains("[IP"), "{input}");
    let flags = req["guard_flags"].as_array().unwrap();
    assert_eq!(flags.len(), 3, "email, ip, watch: {flags:?}");

    // One policy.violation per request match (email redact, ip log, monitor keyword), and
    // per response match (the mock echoes the forwarded text: ip, monitor keyword).
    let vs = of_type(&events, "policy.violation");
    let side = |s: &str| vs.iter().filter(|v| v["data"]["side"] == s).count();
    assert_eq!((side("request"), side("response")), (3, 2), "{vs:#?}");
    let at = |i: usize| events.iter().position(|e| e == vs[i]).unwrap();
    let answer = events
        .iter()
        .position(|e| e["type"] == "ai.response")
        .unwrap();
    assert!(
        at(2) < answer && answer < at(3),
        "request violations, answer, response ones"
    );
    let monitor = vs
        .iter()
        .find(|v| v["data"]["rule_id"].as_str().unwrap().ends_with("watch"))
        .expect("monitor violation");
    assert_eq!(monitor["data"]["enforced"], false);
    assert_eq!(monitor["data"]["side"], "request");
    assert!(monitor["data"]["location"]
        .as_str()
        .unwrap()
        .contains("messages[1]"));

    let resp = one(&events, "ai.response");
    assert_eq!(resp["data"]["status"], 200);
    assert_eq!(resp["final_status"], "answered");
    assert_eq!(resp["data"]["endpoint"], "oa");
    assert_eq!(resp["data"]["failover_path"], json!(["oa"]));
    assert_eq!(resp["fallback_used"], false);
    assert!(resp["data"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(resp["data"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    // The mock echoes what it received: the redacted text.
    let output = resp["output_summary"].as_str().unwrap();
    assert!(output.contains("[EMAIL_1]"), "{output}");
    assert!(resp["request_id"] == "rec-chat-1");
    p.shutdown().await;
}

#[tokio::test]
async fn streamed_tool_call_records_ttft_usage_and_tool_call() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let mut body = chat("what is the weather in Paris?", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(
        &url,
        &[
            ("x-request-id", "rec-stream-1"),
            ("x-mock-tool-call", "get_weather"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let events = call_events(&p, "default", "rec-stream-1").await;
    let req = one(&events, "ai.request");
    assert_eq!(req["data"]["stream"], true);
    assert_eq!(req["data"]["decision"], "allow");
    let resp = one(&events, "ai.response");
    assert!(resp["data"]["ttft_ms"].as_f64().unwrap() > 0.0, "{resp}");
    let tools = of_type(&events, "agent.tool_call");
    assert_eq!(tools.len(), 1, "{events:#?}");
    assert_eq!(tools[0]["data"]["tool_name"], "get_weather");
    let args: Value =
        serde_json::from_str(tools[0]["data"]["arguments"].as_str().unwrap()).expect("args JSON");
    assert!(args.is_object(), "{args}");
    assert!(tools[0]["data"]["tool_call_id"].is_string());
    p.shutdown().await;
}

#[tokio::test]
async fn anthropic_stream_records_usage_and_model() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/messages", p.data_addr);
    let body = json!({"model": "claude-3-5-sonnet", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": format!("hello, I am {EMAIL}")}]});
    let r = post(&url, &[("x-request-id", "rec-an-1")], &body).await;
    assert_eq!(r.status, 200);
    let events = call_events(&p, "default", "rec-an-1").await;
    let resp = one(&events, "ai.response");
    assert_eq!(resp["provider"], "anthropic");
    assert_eq!(resp["route_path"], "anthropic");
    assert!(resp["data"]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(resp["data"]["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let out = resp["output_summary"].as_str().unwrap();
    assert!(out.contains("[EMAIL_1]") && !out.contains(EMAIL), "{out}");
    p.shutdown().await;
}

#[tokio::test]
async fn denied_request_records_blocked_request_and_error_without_secret() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(
        &url,
        &[("x-request-id", "rec-deny-1")],
        &chat(&format!("my key is {SECRET}"), false),
    )
    .await;
    assert_eq!(r.status, 400);
    let events = call_events(&p, "default", "rec-deny-1").await;
    assert!(!serde_json::to_string(&events).unwrap().contains(SECRET));
    let req = one(&events, "ai.request");
    assert_eq!(req["data"]["decision"], "deny");
    assert_eq!(req["final_status"], "blocked");
    assert!(req["input_summary"]
        .as_str()
        .unwrap()
        .starts_with("my key is ["));
    let err = one(&events, "ai.error");
    assert_eq!(err["data"]["error_code"], "policy_violation");
    assert_eq!(err["data"]["status"], 400);
    assert_eq!(err["final_status"], "blocked");
    assert!(err["data"].get("failover_path").is_none());
    assert_eq!(of_type(&events, "policy.violation").len(), 1);
    assert!(of_type(&events, "ai.response").is_empty());
    p.shutdown().await;
}

#[tokio::test]
async fn response_denied_mid_stream_is_recorded_blocked() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(
        &url,
        &[
            ("x-request-id", "rec-sdeny-1"),
            ("x-mock-reply", "here are the launch-codes: 1234"),
        ],
        &chat("tell me", true),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("launch-codes"));
    let events = call_events(&p, "default", "rec-sdeny-1").await;
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("launch-codes"));
    let resp = one(&events, "ai.response");
    assert_eq!(resp["final_status"], "blocked");
    assert_eq!(resp["data"]["decision"], "deny");
    assert!(resp["guard_flags"][0].as_str().unwrap().ends_with("codes"));
    let vs = of_type(&events, "policy.violation");
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["data"]["side"], "response");
    p.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_and_refusals_record_ai_error() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(
        &url,
        &[("x-request-id", "rec-503"), ("x-mock-status", "503")],
        &chat("hi", false),
    )
    .await;
    assert_eq!(r.status, 503);
    let events = call_events(&p, "default", "rec-503").await;
    let err = one(&events, "ai.error");
    assert_eq!(err["data"]["status"], 503);
    assert_eq!(err["final_status"], "error");
    assert_eq!(err["data"]["error_code"], "upstream_error");
    assert!(err["data"]["upstream_error"]["type"].is_string(), "{err}");

    p.shutdown().await;

    // Refused by Parapet (no key on a virtual route): ai.request + ai.error.
    let p = start(&virtual_cfg(&m.url(), dir.path())).await;
    let r = send(
        Method::POST,
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[
            ("x-request-id", "rec-401"),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&chat("hi", false)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    let events = call_events(&p, "default", "rec-401").await;
    let err = one(&events, "ai.error");
    assert_eq!(err["data"]["status"], 401);
    assert_eq!(err["data"]["error_code"], "missing_api_key");
    p.shutdown().await;
}

#[tokio::test]
async fn virtual_key_calls_are_recorded_in_the_key_workspace() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let p = start(&virtual_cfg(&m.url(), dir.path())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let auth = format!("Bearer {VKEY_TEAM}");
    let r = post(
        &url,
        &[("x-request-id", "rec-ws-1"), ("authorization", &auth)],
        &chat("hello", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = call_events(&p, "team-x", "rec-ws-1").await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events.iter().all(|e| e["workspace"] == "team-x"));
    let runtime = p.state().snapshot();
    let store = runtime.events.store().unwrap();
    let other = store
        .query(
            "default",
            &Query {
                eq: vec![("request_id".into(), "rec-ws-1".into())],
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
    assert!(other.events.is_empty());
    assert!(store.verify("team-x").unwrap().broken.is_none());
    p.shutdown().await;
}

#[tokio::test]
async fn full_content_route_keeps_whole_masked_text() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = policy_dir();
    let long = format!("{} {EMAIL} end", "word ".repeat(100));
    let base = cfg(&m.url(), dir.path());
    let cfg = format!(
        "{base}\n[store]\ncontent_summary_chars = 40\nfull_content_routes = [\"anthropic\"]\n"
    );
    let p = start(&cfg).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[("x-request-id", "rec-sum-1")], &chat(&long, false)).await;
    assert_eq!(r.status, 200);
    let events = call_events(&p, "default", "rec-sum-1").await;
    let input = one(&events, "ai.request")["input_summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(input.chars().count(), 41, "cut to 40 + ellipsis: {input}");

    let url = format!("http://{}/v1/messages", p.data_addr);
    let body = json!({"model": "claude-3-5-sonnet", "max_tokens": 50,
        "messages": [{"role": "user", "content": long}]});
    let r = post(&url, &[("x-request-id", "rec-sum-2")], &body).await;
    assert_eq!(r.status, 200);
    let events = call_events(&p, "default", "rec-sum-2").await;
    let input = one(&events, "ai.request")["input_summary"]
        .as_str()
        .unwrap();
    assert!(input.ends_with("[EMAIL_1] end"), "{input}");
    assert!(input.len() > 500);
    p.shutdown().await;
}
