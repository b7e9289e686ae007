//! Failover and circuit breaking against fault-injecting mock upstreams: every trigger
//! (status, connect error, reset, latency threshold, error-first SSE), streamed and not,
//! breaker skip of an open endpoint, model mapping, validation of mixed API families.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use parapet::mock::{Fault, FaultPlan, MockConfig, MockUpstream, PlannedFault};
use serde_json::json;

async fn mock() -> MockUpstream {
    MockUpstream::start(MockConfig::default())
        .await
        .expect("mock")
}

fn always(fault: PlannedFault) -> Option<FaultPlan> {
    Some(FaultPlan { fault, rate: 1.0 })
}

/// OpenAI routes: primary `a` → fallback `b` (and a third `c` when given).
fn cfg(route: &str, a: &str, b: &str, policy_extra: &str) -> String {
    format!(
        r#"
[[endpoints]]
id = "a"
kind = "openai"
base_url = "{a}"
[[endpoints]]
id = "b"
kind = "openai"
base_url = "{b}"
[endpoints.models]
"gpt-4o-mini" = "gpt-4o-mini-fallback"
[[routes]]
id = "{route}"
path_prefix = "/v1/"
endpoint = "a"
[[failover_policies]]
id = "fo"
route_id = "{route}"
primary_endpoint = "a"
fallback_endpoints = ["b"]
{policy_extra}
"#
    )
}

fn chat(stream: bool) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": "hello there"}]})
}

async fn metric(p: &parapet::Server, needle: &str) -> f64 {
    let url = format!("http://{}/metrics", p.admin_addr);
    let text = send(http::Method::GET, &url, &[], Vec::new()).await.text();
    text.lines()
        .filter(|l| l.starts_with(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn status_503_fails_over_with_mapped_model_and_is_recorded() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Status(
        StatusCode::SERVICE_UNAVAILABLE,
    )));
    let p = start(&cfg("status_503_f", &a.url(), &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[("x-request-id", "fo-503")], &chat(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(a.requests().len(), 1);
    let got = b.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-request-id").as_deref(), Some("fo-503"));
    assert_eq!(
        got[0].json().unwrap()["model"],
        "gpt-4o-mini-fallback",
        "fallback gets its model name"
    );
    // Streamed too: the 503 comes before any stream byte.
    let r = post(&url, &[], &chat(true)).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("data: [DONE]"));
    assert_eq!(
        metric(
            &p,
            r#"parapet_failovers_total{from="a",reason="status",route="status_503_f",to="b"}"#
        )
        .await,
        2.0
    );
    // Recorded: failover.attempt, and the answer's failover path.
    let store_events = wait_events(&p, "fo-503").await;
    let fo: Vec<_> = store_events
        .iter()
        .filter(|e| e["type"] == "failover.attempt")
        .collect();
    assert_eq!(fo.len(), 1, "{store_events:#?}");
    assert_eq!(fo[0]["data"]["reason"], "status");
    assert_eq!(fo[0]["data"]["from"], "a");
    assert_eq!(fo[0]["data"]["attempt"], 2);
    let resp = store_events
        .iter()
        .find(|e| e["type"] == "ai.response")
        .unwrap();
    assert_eq!(resp["data"]["failover_path"], json!(["a", "b"]));
    assert_eq!(resp["fallback_used"], true);
    assert_eq!(resp["data"]["endpoint"], "b");
    p.shutdown().await;
}

async fn wait_events(p: &parapet::Server, request_id: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rt = p.state().snapshot();
        let page = rt
            .events
            .store()
            .expect("store")
            .query(
                "default",
                &parapet::store::db::Query {
                    eq: vec![("request_id".into(), request_id.into())],
                    limit: 100,
                    ascending: true,
                    ..Default::default()
                },
            )
            .expect("query");
        if page
            .events
            .iter()
            .any(|e| e["type"] == "ai.response" || e["type"] == "ai.error")
        {
            return page.events;
        }
        assert!(Instant::now() < deadline, "no events for {request_id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connect_error_and_reset_fail_over() {
    let b = mock().await;
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let p = start(&cfg("connect_erro", &dead, &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[], &chat(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("You said: hello there"));
    p.shutdown().await;

    let a = mock().await;
    a.set_fault(always(PlannedFault::Fault(Fault::Reset)));
    let p = start(&cfg("connect_erro", &a.url(), &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    for stream in [false, true] {
        let r = post(&url, &[], &chat(stream)).await;
        assert_eq!(r.status, 200, "stream={stream}: {}", r.text());
    }
    assert_eq!(
        metric(
            &p,
            r#"parapet_failovers_total{from="a",reason="reset",route="connect_erro",to="b"}"#
        )
        .await,
        2.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn hanging_primary_fails_over_at_the_latency_threshold() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Fault(Fault::Hang)));
    let p = start(&cfg(
        "hanging_prim",
        &a.url(),
        &b.url(),
        "[failover_policies.conditions]\nlatency_threshold_ms = 300\n",
    ))
    .await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    for stream in [false, true] {
        let t = Instant::now();
        let r = post(&url, &[], &chat(stream)).await;
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(2000),
            "failed over after {took:?}"
        );
    }
    assert_eq!(
        metric(
            &p,
            r#"parapet_failovers_total{from="a",reason="latency",route="hanging_prim",to="b"}"#
        )
        .await,
        2.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn error_first_stream_fails_over_and_the_client_sees_a_clean_stream() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Fault(Fault::ErrorFirst)));
    let p = start(&cfg("error_first_", &a.url(), &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[], &chat(true)).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("\"error\""), "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    assert_eq!(b.requests().len(), 1);
    p.shutdown().await;

    // Anthropic: `event: error` (overloaded_error) first.
    let cfg = format!(
        r#"
[[endpoints]]
id = "an1"
kind = "anthropic"
base_url = "{}"
[[endpoints]]
id = "an2"
kind = "anthropic"
base_url = "{}"
[[routes]]
id = "msg"
path_prefix = "/v1/messages"
endpoint = "an1"
[[failover_policies]]
id = "fo"
route_id = "msg"
primary_endpoint = "an1"
fallback_endpoints = ["an2"]
"#,
        a.url(),
        b.url()
    );
    let p = start(&cfg).await;
    let url = format!("http://{}/v1/messages", p.data_addr);
    let body = json!({"model": "claude-3-5-sonnet", "max_tokens": 20, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&url, &[], &body).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("overloaded_error"), "{text}");
    assert!(text.contains("message_stop"), "{text}");
    p.shutdown().await;
}

#[tokio::test]
async fn open_breaker_sends_calls_straight_to_the_fallback() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Status(StatusCode::BAD_GATEWAY)));
    let p = start(&cfg(
        "open_breaker",
        &a.url(),
        &b.url(),
        "min_requests = 3\nwindow_seconds = 60\ncooldown_ms = 60000\n",
    ))
    .await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    for _ in 0..10 {
        let r = post(&url, &[], &chat(false)).await;
        assert_eq!(r.status, 200);
    }
    // Three failures opened the breaker; the other seven never reached `a`.
    assert_eq!(a.requests().len(), 3);
    assert_eq!(b.requests().len(), 10);
    assert_eq!(
        metric(
            &p,
            r#"parapet_failovers_total{from="a",reason="circuit_open",route="open_breaker",to="b"}"#
        )
        .await,
        7.0
    );
    let admin = format!("http://{}/admin/endpoints", p.admin_addr);
    let r = send(http::Method::GET, &admin, &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let ep_a = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "a")
        .unwrap()
        .clone();
    assert_eq!(ep_a["state"], "open");
    assert_eq!(ep_a["failures"], 3);
    p.shutdown().await;
}

#[tokio::test]
async fn every_endpoint_failing_returns_the_last_answer_and_no_policy_means_one_attempt() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Status(
        StatusCode::SERVICE_UNAVAILABLE,
    )));
    b.set_fault(always(PlannedFault::Status(StatusCode::TOO_MANY_REQUESTS)));
    let p = start(&cfg("every_endpoi", &a.url(), &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[], &chat(false)).await;
    assert_eq!(r.status, 429, "the last endpoint's answer is relayed");
    p.shutdown().await;

    // Same endpoints, no failover policy: one attempt, the 503 is relayed.
    let plain = cfg("every_endpoi", &a.url(), &b.url(), "");
    let plain = plain
        .split("[[failover_policies]]")
        .next()
        .unwrap()
        .to_string();
    a.clear_requests();
    b.clear_requests();
    let p = start(&plain).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[], &chat(false)).await;
    assert_eq!(r.status, 503);
    assert_eq!((a.requests().len(), b.requests().len()), (1, 0));
    p.shutdown().await;
}

#[test]
fn validation_rejects_mixed_families_wrong_primary_and_unknown_endpoints() {
    let text = r#"
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "http://127.0.0.1:9"
[[endpoints]]
id = "an"
kind = "anthropic"
base_url = "http://127.0.0.1:9"
[[routes]]
id = "chat"
endpoint = "oa"
[[failover_policies]]
id = "fo"
route_id = "chat"
primary_endpoint = "an"
fallback_endpoints = ["an", "nope"]
retry_on_status = [200]
max_attempts = 0
[failover_policies.conditions]
error_rate_threshold = 1.5
"#;
    let err = match parapet::config::load_str(
        text,
        std::path::Path::new("t.toml"),
        &[("PARAPET_POLICIES_DIR".into(), no_policies())],
        &|_| None,
    ) {
        Ok(_) => panic!("invalid failover policy accepted"),
        Err(e) => e.to_string(),
    };
    for needle in [
        "failover_policies[0].primary_endpoint",
        "must be the route's endpoint `oa`",
        "fallback_endpoints[0]",
        "speaks the anthropic API but the primary `oa` speaks the openai API",
        "fallback_endpoints[1]",
        "no endpoint with id `nope`",
        "retry_on_status[0]",
        "max_attempts",
        "error_rate_threshold",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

#[tokio::test]
async fn no_failover_after_the_first_byte_went_out() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Fault(Fault::Cut(3))));
    let p = start(&cfg("cut_mid_stre", &a.url(), &b.url(), "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(&url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            serde_json::to_vec(&chat(true)).unwrap(),
        )))
        .unwrap();
    let resp = client().request(req).await.expect("response head");
    assert_eq!(resp.status(), 200);
    let got = http_body_util::BodyExt::collect(resp.into_body()).await;
    // The stream was accepted (its first event was fine) and then cut: the client sees the
    // cut, the fallback is never asked.
    assert!(got.is_err(), "the cut reaches the client as a broken body");
    assert!(b.requests().is_empty(), "no failover mid-stream");
    assert_eq!(a.requests().len(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn each_attempt_carries_its_endpoint_credential_on_virtual_routes() {
    let (a, b) = (mock().await, mock().await);
    a.set_fault(always(PlannedFault::Status(
        StatusCode::SERVICE_UNAVAILABLE,
    )));
    let vkey = "pk-failover-virtual";
    let text = format!(
        r#"
[[endpoints]]
id = "a"
kind = "openai"
base_url = "{}"
api_key_env = "KEY_A"
[[endpoints]]
id = "b"
kind = "openai"
base_url = "{}"
api_key_env = "KEY_B"
[[routes]]
id = "virt"
path_prefix = "/v1/"
endpoint = "a"
auth = "virtual"
[[failover_policies]]
id = "fo"
route_id = "virt"
primary_endpoint = "a"
fallback_endpoints = ["b"]
[[keys]]
id = "k"
sha256 = "{}"
"#,
        a.url(),
        b.url(),
        parapet::auth::KeyHash::of(vkey.as_bytes()).to_hex()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![
        ("PARAPET_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        (
            "PARAPET_ADMIN_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("PARAPET_POLICIES_DIR".to_string(), no_policies()),
        (
            "PARAPET_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
    ];
    let config =
        parapet::config::load_str(&text, std::path::Path::new("t.toml"), &env, &|v| match v {
            "KEY_A" => Some("sk-provider-a".to_string()),
            "KEY_B" => Some("sk-provider-b".to_string()),
            _ => None,
        })
        .expect("valid config");
    let p = parapet::Server::start(config).await.expect("start");
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let auth = format!("Bearer {vkey}");
    let r = post(&url, &[("authorization", &auth)], &chat(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent_a = a.requests();
    let sent_b = b.requests();
    assert_eq!(
        sent_a[0].header("authorization").as_deref(),
        Some("Bearer sk-provider-a")
    );
    assert_eq!(
        sent_b[0].header("authorization").as_deref(),
        Some("Bearer sk-provider-b")
    );
    p.shutdown().await;
}
