//! Shared integration-test harness: start Parapet on port 0 against a given upstream, and a
//! small HTTP client that returns status, headers and body (or timed body frames).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use parapet::config::{self, Config};
use parapet::Server;

/// Provider key the tests' virtual routes inject.
pub const PROVIDER_KEY: &str = "sk-upstream-provider-key";
/// A virtual key accepted by `virtual_config`.
pub const VIRTUAL_KEY: &str = "pk-test-virtual-key";

/// An empty policy directory (no guardrails).
pub fn no_policies() -> String {
    format!("{}/tests/fixtures/no-policies", env!("CARGO_MANIFEST_DIR"))
}

/// The shipped default policies.
pub fn shipped_policies() -> String {
    format!("{}/policies", env!("CARGO_MANIFEST_DIR"))
}

/// Compile a config from TOML text; listeners forced to 127.0.0.1:0. Without a
/// `[policies]` table in the text, the policy directory is empty (no guardrails).
pub fn config(toml: &str) -> Config {
    let mut env = vec![
        ("PARAPET_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        (
            "PARAPET_ADMIN_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
    ];
    if !toml.contains("data_dir") {
        // Every server gets its own event store directory (sled locks it).
        let dir = tempfile::tempdir().expect("temp dir").keep();
        env.push(("PARAPET_DATA_DIR".to_string(), dir.display().to_string()));
    }
    if !toml.contains("[policies]") {
        env.push(("PARAPET_POLICIES_DIR".to_string(), no_policies()));
    }
    match config::load_str(toml, Path::new("test.toml"), &env, &|v| {
        (v == "TEST_PROVIDER_KEY").then(|| PROVIDER_KEY.to_string())
    }) {
        Ok(c) => c,
        Err(e) => panic!("test config invalid:\n{e}"),
    }
}

/// Passthrough routes for both API families to `upstream` (an `http://host:port` URL).
pub fn passthrough_config(upstream: &str, extra_server: &str, endpoint_extra: &str) -> String {
    format!(
        r#"
[server]
{extra_server}
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "{upstream}"
api_key_env = "TEST_PROVIDER_KEY"
{endpoint_extra}
[[endpoints]]
id = "an"
kind = "anthropic"
base_url = "{upstream}"
api_key_env = "TEST_PROVIDER_KEY"
{endpoint_extra}
[[routes]]
id = "anthropic"
path_prefix = "/v1/messages"
endpoint = "an"
[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "oa"
"#
    )
}

/// Virtual-key routes (the provider key is injected) for both API families.
pub fn virtual_config(upstream: &str) -> String {
    let hash = parapet::auth::KeyHash::of(VIRTUAL_KEY.as_bytes()).to_hex();
    format!(
        r#"
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "{upstream}"
api_key_env = "TEST_PROVIDER_KEY"
[[endpoints]]
id = "an"
kind = "anthropic"
base_url = "{upstream}"
api_key_env = "TEST_PROVIDER_KEY"
[[routes]]
id = "anthropic"
path_prefix = "/v1/messages"
endpoint = "an"
auth = "virtual"
[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "oa"
auth = "virtual"
[[keys]]
id = "team-a"
sha256 = "{hash}"
[[keys]]
id = "anthropic-only"
sha256 = "{other}"
routes = ["anthropic"]
"#,
        other = parapet::auth::KeyHash::of(b"pk-anthropic-only").to_hex()
    )
}

/// Start Parapet with this config text.
pub async fn start(toml: &str) -> Server {
    match Server::start(config(toml)).await {
        Ok(s) => s,
        Err(e) => panic!("parapet did not start: {e}"),
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A plain HTTP/1.1 client (no pooling surprises between tests).
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send a request and collect the whole response.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response head within 30 s")
        .expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .expect("body within 30 s")
        .expect("body read")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// POST JSON.
pub async fn post(url: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    send(Method::POST, url, &h, body.to_string()).await
}

/// A response whose body frames were timed as they arrived.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// (time since the request was sent, frame bytes)
    pub frames: Vec<(Duration, Bytes)>,
}

impl Streamed {
    pub fn body(&self) -> Bytes {
        let mut v = Vec::new();
        for (_, f) in &self.frames {
            v.extend_from_slice(f);
        }
        Bytes::from(v)
    }
}

/// POST JSON and record each body frame with its arrival time.
pub async fn post_streamed(
    url: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Streamed {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let t0 = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response head within 30 s")
        .expect("request sent");
    let (parts, mut body) = resp.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("frame within 30 s")
    {
        let frame = frame.expect("frame read");
        if let Ok(data) = frame.into_data() {
            frames.push((t0.elapsed(), data));
        }
    }
    Streamed {
        status: parts.status,
        headers: parts.headers,
        frames,
    }
}

/// Split an SSE body into its events (blank-line separated), ignoring comment-only blocks.
pub fn sse_events(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .map(|e| e.trim_matches('\n').to_string())
        .filter(|e| !e.is_empty() && !e.lines().all(|l| l.starts_with(':')))
        .collect()
}

/// A TCP port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP server that accepts connections and never answers (for timeout tests).
pub async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (url, task)
}
