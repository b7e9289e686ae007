//! Error paths of the data plane that need no working upstream: 413, 401/403, 404, 400,
//! 502 (connect refused), 504 (first-byte timeout), all in the provider's error shape.

mod common;

use common::*;
use http::Method;
use serde_json::json;

fn chat() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn oversize_body_gets_413_in_each_shape() {
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let p = start(&passthrough_config(&upstream, "max_body_bytes = 64", "")).await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(200)}]});
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    let r = post(&format!("http://{}/v1/messages", p.data_addr), &[], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "request_too_large");
    // Without Content-Length (chunked upload) the limit still holds.
    let body = http_body_util::StreamBody::new(futures_util::stream::iter((0..10).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(vec![
            b'a';
            20
        ])))
    })));
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.data_addr))
        .body(body)
        .unwrap();
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    p.shutdown().await;
}

/// Send the head of a request announcing `len` body bytes and only `sent` of them, then
/// stall; returns what the server answered (status line and body).
async fn stalled_upload(addr: std::net::SocketAddr, path: &str, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: 500\r\n\r\n{{\"model\": \"m\","
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The server answers and closes; never wait longer than the test can afford.
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out));
    assert!(
        read.await.is_ok(),
        "no answer to a stalled upload on {path}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn stalled_request_body_gets_408_and_is_not_forwarded() {
    let mock = parapet::mock::MockUpstream::start(parapet::mock::MockConfig::default())
        .await
        .unwrap();
    let hash = parapet::auth::KeyHash::of(b"pk-ingest").to_hex();
    let toml = format!(
        "{}\n[[keys]]\nid = \"k\"\nsha256 = \"{hash}\"\n",
        passthrough_config(&mock.url(), "request_body_timeout_ms = 300", ""),
    );
    let p = start(&toml).await;
    let t0 = std::time::Instant::now();
    let r = stalled_upload(p.data_addr, "/v1/chat/completions", "").await;
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("request_body_timeout"), "{r}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    let r = stalled_upload(p.data_addr, "/v1/messages", "").await;
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("\"type\":\"error\""), "Anthropic shape: {r}");
    // The ingestion API too.
    let r = stalled_upload(
        p.data_addr,
        "/v1/events",
        "authorization: Bearer pk-ingest\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("request_timeout"), "{r}");
    assert_eq!(mock.requests().len(), 0, "nothing forwarded");
    p.shutdown().await;
}

#[tokio::test]
async fn connect_refused_is_502_and_timeout_is_504() {
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let p = start(&passthrough_config(&upstream, "", "")).await;
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[],
        &chat(),
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_connect_error");
    let r = post(&format!("http://{}/v1/messages", p.data_addr), &[], &chat()).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["type"], "api_error");
    p.shutdown().await;

    let (hole, _task) = black_hole().await;
    let p = start(&passthrough_config(
        &hole,
        "",
        "first_byte_timeout_ms = 300",
    ))
    .await;
    let t0 = std::time::Instant::now();
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[],
        &chat(),
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    let r = post(&format!("http://{}/v1/messages", p.data_addr), &[], &chat()).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["type"], "error");
    p.shutdown().await;
}

#[tokio::test]
async fn virtual_keys_401_403_and_accept() {
    // The upstream is closed: a request that passes auth ends in 502, one that fails in 401.
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let p = start(&virtual_config(&upstream)).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(&url, &[], &chat()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "missing_api_key");
    let r = post(&url, &[("authorization", "Bearer pk-wrong")], &chat()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = post(
        &url,
        &[("authorization", "Bearer pk-anthropic-only")],
        &chat(),
    )
    .await;
    assert_eq!(r.status, 403);
    let auth = format!("Bearer {VIRTUAL_KEY}");
    let r = post(&url, &[("authorization", &auth)], &chat()).await;
    assert_eq!(r.status, 502, "auth passed, upstream closed: {}", r.text());
    let anth = format!("http://{}/v1/messages", p.data_addr);
    let r = post(&anth, &[("x-api-key", "nope")], &chat()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = post(&anth, &[("x-api-key", "pk-anthropic-only")], &chat()).await;
    assert_eq!(r.status, 502);
    p.shutdown().await;
}

#[tokio::test]
async fn routing_and_request_errors() {
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let toml = format!(
        r#"
[server]
unknown_paths = "reject"
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "{upstream}"
[[routes]]
id = "gpt"
path_prefix = "/v1/"
models = ["gpt-*"]
endpoint = "oa"
"#
    );
    let p = start(&toml).await;
    let base = format!("http://{}", p.data_addr);
    // Unknown path rejected by config.
    let r = send(Method::GET, &format!("{base}/v1/files"), &[], "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "unknown_path");
    // Model not routed.
    let r = post(
        &format!("{base}/v1/chat/completions"),
        &[],
        &json!({"model": "claude-x", "messages": []}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "no_route");
    // Invalid JSON on a known API.
    let r = send(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &[],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_json");
    // Request ids: generated when absent, echoed when given.
    assert_eq!(r.headers["x-request-id"].len(), 36);
    let r = send(
        Method::POST,
        &format!("{base}/v1/chat/completions"),
        &[("x-request-id", "req-42")],
        "{",
    )
    .await;
    assert_eq!(r.headers["x-request-id"], "req-42");
    p.shutdown().await;
}

#[tokio::test]
async fn error_bodies_never_echo_request_content() {
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let p = start(&passthrough_config(&upstream, "max_body_bytes = 64", "")).await;
    let secret = "sk-proj-SECRETSECRETSECRET1234567890";
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("{secret} {}", "x".repeat(100))}]});
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, 413);
    assert!(!r.text().contains(secret));
    p.shutdown().await;
}
