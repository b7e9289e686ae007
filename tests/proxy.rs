//! The data plane against the in-process mock upstream: every provider path, streaming and
//! not, compared with the same request sent directly to the mock (transparency); both auth
//! modes; upstream errors passed through; incremental relay; cancellation; graceful drain.

mod common;

use std::time::Duration;

use common::*;
use http::Method;
use parapet::mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

async fn mock() -> MockUpstream {
    MockUpstream::start(MockConfig::default()).await.unwrap()
}

/// Blank the per-request parts of mock answers (ids carry a sequence number, `created` a clock).
fn normalize(s: &str) -> String {
    let ids = regex::Regex::new(r"(mock[-_])\d+").unwrap();
    let created = regex::Regex::new(r#""(created|created_at)":\s*\d+"#).unwrap();
    let s = ids.replace_all(s, "${1}N");
    created.replace_all(&s, "\"$1\":0").into_owned()
}

/// (name, path, body, headers) of one provider call.
type Case = (
    &'static str,
    &'static str,
    Value,
    Vec<(&'static str, &'static str)>,
);

fn cases() -> Vec<Case> {
    let chat = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there, proxy"}]});
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut chat_tools = chat.clone();
    chat_tools["tools"] = tools.clone();
    chat_tools["messages"][1]["content"] = json!("what is the weather in Paris?");
    let responses = json!({"model": "gpt-4o-mini", "input": "tell me something"});
    let embeddings = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let completions = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "once upon"});
    let messages = json!({"model": "claude-sonnet-4", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello claude"}]});
    let mut messages_tools = messages.clone();
    messages_tools["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    messages_tools["messages"][0]["content"] = json!("weather in Rome?");
    let anth = vec![
        ("x-api-key", "sk-ant-client"),
        ("anthropic-version", "2023-06-01"),
    ];
    let oa = vec![("authorization", "Bearer sk-client")];
    vec![
        ("chat", "/v1/chat/completions", chat, oa.clone()),
        ("chat+tools", "/v1/chat/completions", chat_tools, oa.clone()),
        ("responses", "/v1/responses", responses, oa.clone()),
        ("embeddings", "/v1/embeddings", embeddings, oa.clone()),
        ("completions", "/v1/completions", completions, oa.clone()),
        ("messages", "/v1/messages", messages, anth.clone()),
        ("messages+tools", "/v1/messages", messages_tools, anth),
    ]
}

#[tokio::test]
async fn non_streaming_paths_are_transparent() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    for (name, path, body, headers) in cases() {
        let direct = post(&format!("{}{path}", m.url()), &headers, &body).await;
        let proxied = post(&format!("http://{}{path}", p.data_addr), &headers, &body).await;
        assert_eq!(direct.status, 200, "{name}: {}", direct.text());
        assert_eq!(proxied.status, direct.status, "{name}");
        assert_eq!(
            normalize(&proxied.text()),
            normalize(&direct.text()),
            "{name}"
        );
        assert_eq!(
            proxied.headers["content-type"], direct.headers["content-type"],
            "{name}"
        );
        assert!(proxied.headers.contains_key("x-request-id"), "{name}");
    }
    // GET /v1/models with a query string.
    let direct = send(
        Method::GET,
        &format!("{}/v1/models?limit=5", m.url()),
        &[],
        "",
    )
    .await;
    let proxied = send(
        Method::GET,
        &format!("http://{}/v1/models?limit=5", p.data_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(proxied.status, 200);
    assert_eq!(proxied.body, direct.body);
    assert_eq!(m.requests().last().unwrap().path, "/v1/models?limit=5");
    p.shutdown().await;
}

#[tokio::test]
async fn streaming_paths_are_transparent() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    for (name, path, mut body, headers) in cases() {
        if path == "/v1/embeddings" {
            continue;
        }
        body["stream"] = json!(true);
        if path == "/v1/chat/completions" {
            body["stream_options"] = json!({"include_usage": true});
        }
        let direct = post_streamed(&format!("{}{path}", m.url()), &headers, &body).await;
        let proxied =
            post_streamed(&format!("http://{}{path}", p.data_addr), &headers, &body).await;
        assert_eq!(direct.status, 200, "{name}");
        assert_eq!(proxied.status, 200, "{name}");
        assert!(proxied.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let d = sse_events(&direct.body());
        let x = sse_events(&proxied.body());
        assert!(d.len() > 3, "{name}: mock stream too short: {d:?}");
        let d: Vec<String> = d.iter().map(|e| normalize(e)).collect();
        let x: Vec<String> = x.iter().map(|e| normalize(e)).collect();
        assert_eq!(x, d, "{name}");
    }
    p.shutdown().await;
}

#[tokio::test]
async fn streams_are_relayed_as_they_arrive() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "abcdefghijklmnopqrst"}]});
    let headers = [
        ("x-mock-chunk-delay-ms", "150"),
        ("x-mock-chunk-size", "10"),
    ];
    let s = post_streamed(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &headers,
        &body,
    )
    .await;
    assert_eq!(s.status, 200);
    let first = s.frames.first().unwrap().0;
    let last = s.frames.last().unwrap().0;
    assert!(s.frames.len() >= 3, "frames: {}", s.frames.len());
    // The mock spaces events 150 ms apart: a buffering proxy would deliver them all at once.
    assert!(
        last - first >= Duration::from_millis(300),
        "first {first:?} last {last:?}"
    );
    p.shutdown().await;
}

/// A burst of SSE events the upstream sent at once goes to the client in a few writes, not
/// one per event (each write is a syscall and, on the client, a read: the relay joins the
/// chunks hyper's client hands over one at a time). Under concurrent streams, where the
/// scheduler is busy, as in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_events_are_joined_into_few_writes() {
    use http_body_util::BodyExt;
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    // The answer ("You said: " + the prompt) in 2-character deltas: over 40 events.
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user",
        "content": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqr"}]})
    .to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, body) = (url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut chunks = Vec::new();
            for _ in 0..10 {
                let req = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("x-mock-chunk-size", "2")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                    .unwrap();
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let mut b = resp.into_body();
                let (mut n, mut text) = (0usize, Vec::new());
                while let Some(f) = b.frame().await {
                    if let Ok(d) = f.unwrap().into_data() {
                        n += 1;
                        text.extend_from_slice(&d);
                    }
                }
                let text = String::from_utf8(text).unwrap();
                assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
                let events = text.matches("data: ").count();
                assert!(events >= 40, "{text}");
                chunks.push((n, events));
            }
            chunks
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let chunks = all.iter().map(|c| c.0).sum::<usize>() as f64;
    let events = all.iter().map(|c| c.1).sum::<usize>() as f64;
    eprintln!("{chunks} chunks for {events} events");
    // One chunk per event would be a ratio of 1; the mock writes each answer in one burst.
    assert!(
        chunks <= events / 4.0,
        "{chunks} chunks for {events} events: {all:?}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn passthrough_forwards_client_credentials_and_headers() {
    let m = mock().await;
    let p = start(&passthrough_config(
        &m.url(),
        "",
        "headers = { \"x-endpoint-tag\" = \"e1\" }",
    ))
    .await;
    let body = json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(
        &format!("http://{}/v1/messages", p.data_addr),
        &[
            ("x-api-key", "sk-ant-client-own"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024-04-04"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "drop-me"),
            ("x-request-id", "rid-7"),
        ],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-request-id"], "rid-7");
    let seen = m.requests().pop().unwrap();
    assert_eq!(
        seen.header("x-api-key").as_deref(),
        Some("sk-ant-client-own")
    );
    assert_eq!(
        seen.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(
        seen.header("anthropic-beta").as_deref(),
        Some("tools-2024-04-04")
    );
    assert_eq!(seen.header("x-request-id").as_deref(), Some("rid-7"));
    assert_eq!(seen.header("x-endpoint-tag").as_deref(), Some("e1"));
    assert_eq!(seen.header("host"), Some(m.addr().to_string()));
    assert!(seen.header("x-hop").is_none());
    assert_eq!(seen.json().unwrap(), body);

    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[("authorization", "Bearer sk-openai-client-own")],
        &json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = m.requests().pop().unwrap();
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer sk-openai-client-own")
    );
    p.shutdown().await;
}

#[tokio::test]
async fn virtual_keys_are_swapped_for_the_provider_key() {
    let m = mock().await;
    let p = start(&virtual_config(&m.url())).await;
    let chat = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let auth = format!("Bearer {VIRTUAL_KEY}");
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[("authorization", &auth)],
        &chat,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.requests().pop().unwrap();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}"))
    );
    assert!(seen.header("x-api-key").is_none());

    let msg = json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(
        &format!("http://{}/v1/messages", p.data_addr),
        &[
            ("x-api-key", VIRTUAL_KEY),
            ("anthropic-version", "2023-06-01"),
        ],
        &msg,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.requests().pop().unwrap();
    assert_eq!(seen.header("x-api-key").as_deref(), Some(PROVIDER_KEY));
    assert!(seen.header("authorization").is_none());
    // Rejected calls never reach the upstream.
    let before = m.requests().len();
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[("authorization", "Bearer sk-real-openai-key")],
        &chat,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(m.requests().len(), before);
    p.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    let chat = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    for (path, status) in [
        ("/v1/chat/completions", "400"),
        ("/v1/chat/completions", "429"),
        ("/v1/chat/completions", "500"),
        ("/v1/messages", "503"),
        ("/v1/messages", "529"),
        ("/v1/responses", "401"),
    ] {
        let h = [("x-mock-status", status)];
        let direct = post(&format!("{}{path}", m.url()), &h, &chat).await;
        let proxied = post(&format!("http://{}{path}", p.data_addr), &h, &chat).await;
        assert_eq!(proxied.status.as_str(), status);
        assert_eq!(proxied.body, direct.body, "{path} {status}");
        assert!(!proxied.headers.contains_key("x-parapet-error"));
    }
    let h = [("x-mock-status", "418"), ("x-mock-body", "teapot body")];
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &h,
        &chat,
    )
    .await;
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "teapot body");
    // Unknown paths are forwarded (default `unknown_paths = "forward"`): the mock's 404 comes back.
    let r = send(
        Method::GET,
        &format!("http://{}/v1/files/abc", p.data_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(!r.headers.contains_key("x-parapet-error"));
    assert_eq!(m.requests().last().unwrap().path, "/v1/files/abc");
    p.shutdown().await;
}

#[tokio::test]
async fn total_timeout_cuts_a_slow_stream() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "total_timeout_ms = 400")).await;
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a long answer please"}]});
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.data_addr))
        .header("x-mock-chunk-delay-ms", "200")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let t0 = std::time::Instant::now();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let res = http_body_util::BodyExt::collect(resp.into_body()).await;
    assert!(
        res.is_err(),
        "the stream must end with an error, not look complete"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    p.shutdown().await;
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let m = mock().await;
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.data_addr))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "h2"}]})
                .to_string(),
        )))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    p.shutdown().await;
}
