//! Programmable mock upstream speaking the OpenAI and Anthropic APIs, for tests and benchmarks.
//!
//! [`MockUpstream::start`] binds a hyper 1 server (HTTP/1.1 and h2c on the same port) and
//! answers with realistic, deterministic provider responses:
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` | chat completion; `stream: true` → SSE chunks + `data: [DONE]`, `stream_options.include_usage` → usage chunk; tool call `get_weather` when `tools` is set and the prompt mentions `weather`; `logprobs: true` → per-token `logprobs.content` (one token per stream chunk) |
//! | `POST /v1/responses` | Responses API object; streamed as typed events with `sequence_number`; `function_call` item (arguments streamed as `response.function_call_arguments.delta`) for the weather trigger |
//! | `POST /v1/embeddings` | deterministic unit vectors (float arrays, or base64 little-endian f32) |
//! | `POST /v1/completions` | legacy text completion, plain or streamed |
//! | `GET /v1/models` | a fixed model list |
//! | `POST /v1/messages` | Anthropic message, plain or streamed (`message_start` … `message_stop`), `tool_use` with `input_json_delta` |
//! | `GET /__mock/requests` | the recorded requests as JSON (for out-of-process tests); `DELETE` clears them |
//! | `PUT /__mock/fault` | set the server-wide fault plan (`{"fault", "status", "rate"}`, see [`controls`]); `GET` shows it, `DELETE` clears it |
//! | anything else | 404 with an OpenAI-shaped error body |
//!
//! The reply text is `You said: <last user text>` unless `x-mock-reply` says otherwise;
//! faults and other per-request behaviour are driven by `x-mock-*` headers, see
//! [`controls`]. Every request (except `/__mock/…`) is recorded unless
//! [`MockConfig::record`] is off; the record is a ring bounded by
//! [`MockConfig::record_limit`].

pub mod controls;

mod anthropic;
mod body;
mod openai;
mod text;

pub use body::MockBody;
pub use body::MockCut;
pub use controls::{Controls, Fault, Flavor};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest request body the mock reads (bigger ones get 413).
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

/// The final event of an OpenAI stream.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// Server-wide settings of a [`MockUpstream`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Fixed delay before every response head (added to `x-mock-delay-ms`).
    pub latency: Duration,
    /// Record requests for [`MockUpstream::requests`]; turn off for load tests.
    pub record: bool,
    /// Most requests kept; the oldest are dropped beyond it.
    pub record_limit: usize,
    /// Server-wide fault plan applied to requests that carry no fault header of their own.
    pub fault: Option<FaultPlan>,
}

/// What a server-wide fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedFault {
    /// Answer with this status and a provider-shaped error body.
    Status(StatusCode),
    /// A connection-level fault.
    Fault(Fault),
}

/// A server-wide fault applied to a share of requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub fault: PlannedFault,
    /// Share of requests that get the fault, 0.0–1.0 (chosen by a deterministic hash of the
    /// request's sequence number, so a run is reproducible).
    pub rate: f64,
}

impl FaultPlan {
    /// Parses `{"fault": "status"|"hang"|"reset"|"cut"|"error-first", "status": 503,
    /// "rate": 1.0, "cut_after": 2}`; the error names the bad field.
    pub fn from_json(v: &Value) -> Result<FaultPlan, String> {
        let name = v
            .get("fault")
            .and_then(Value::as_str)
            .ok_or("fault: required, one of status, hang, reset, cut, error-first")?;
        let rate = match v.get("rate") {
            None => 1.0,
            Some(r) => r
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or("rate: must be a number from 0 to 1")?,
        };
        let fault = if name == "status" {
            let code = v
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .and_then(|n| StatusCode::from_u16(n).ok())
                .ok_or("status: required with fault `status`, an HTTP status code")?;
            PlannedFault::Status(code)
        } else {
            let cut_after = match v.get("cut_after") {
                None => controls::DEFAULT_CUT_AFTER,
                Some(n) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("cut_after: must be a non-negative integer")?,
            };
            PlannedFault::Fault(
                Fault::parse(name, cut_after)
                    .ok_or("fault: one of status, hang, reset, cut, error-first")?,
            )
        };
        Ok(FaultPlan { fault, rate })
    }

    fn to_json(self) -> Value {
        let (name, status, cut_after) = match self.fault {
            PlannedFault::Status(s) => ("status", Some(s.as_u16()), None),
            PlannedFault::Fault(Fault::Hang) => ("hang", None, None),
            PlannedFault::Fault(Fault::Reset) => ("reset", None, None),
            PlannedFault::Fault(Fault::Cut(n)) => ("cut", None, Some(n)),
            PlannedFault::Fault(Fault::ErrorFirst) => ("error-first", None, None),
        };
        json!({"fault": name, "status": status, "cut_after": cut_after, "rate": self.rate})
    }

    /// Whether request number `seq` gets the fault.
    fn hits(&self, seq: u64) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        // splitmix64: a well-spread, reproducible choice per request.
        let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            record: true,
            record_limit: 10_000,
            fault: None,
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path with query string.
    pub path: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The full request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// A header's value as text (lossy), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn to_json(&self) -> Value {
        let mut headers = serde_json::Map::new();
        for name in self.headers.keys() {
            let values: Vec<String> = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            headers.insert(name.as_str().to_owned(), json!(values.join(", ")));
        }
        json!({
            "method": self.method.as_str(),
            "path": self.path,
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

struct Shared {
    cfg: MockConfig,
    recorded: Mutex<VecDeque<RecordedRequest>>,
    seq: AtomicU64,
    fault: Mutex<Option<FaultPlan>>,
}

impl Shared {
    fn recorded(&self) -> MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fault(&self) -> MutexGuard<'_, Option<FaultPlan>> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running mock server; dropping it stops accepting (like [`MockUpstream::shutdown`] without waiting).
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds `cfg.listen` and starts serving on the current tokio runtime.
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let fault = Mutex::new(cfg.fault);
        let shared = Arc::new(Shared {
            fault,
            cfg,
            recorded: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
        });
        let token = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), token.clone()));
        Ok(MockUpstream {
            addr,
            shared,
            token,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the recorded requests, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorded().iter().cloned().collect()
    }

    /// Sets (or clears) the server-wide fault plan.
    pub fn set_fault(&self, plan: Option<FaultPlan>) {
        *self.shared.fault() = plan;
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorded().clear();
    }

    /// Stops accepting, closes every open connection (in-flight responses are cut) and waits.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE under load: back off briefly instead of spinning.
                    tracing::debug!(error = %e, "mock accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(&shared, req).await }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

/// One request. `Err` (a `reset` fault) makes hyper drop the connection without a response.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Response<MockBody>, MockCut> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let flavor = Flavor::for_path(&path);
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(controls::error_response(
                flavor,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large or unreadable",
                None,
            ))
        }
    };
    if path.starts_with("/__mock/") {
        return Ok(introspect(shared, &parts.method, parts.uri.path(), &body));
    }
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let mut ctl = Controls::from_headers(&parts.headers);
    if ctl.status.is_none() && ctl.fault.is_none() {
        let plan = *shared.fault();
        match plan.filter(|p| p.hits(seq)).map(|p| p.fault) {
            Some(PlannedFault::Status(s)) => ctl.status = Some(s),
            Some(PlannedFault::Fault(f)) => ctl.fault = Some(f),
            None => {}
        }
    }
    if shared.cfg.record {
        let mut recorded = shared.recorded();
        while recorded.len() >= shared.cfg.record_limit.max(1) {
            recorded.pop_front();
        }
        recorded.push_back(RecordedRequest {
            method: parts.method.clone(),
            path: path.clone(),
            headers: parts.headers,
            body: body.clone(),
        });
    }

    let delay = (shared.cfg.latency + ctl.delay).min(controls::MAX_DELAY);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match ctl.fault {
        Some(Fault::Hang) => {
            // The client gives up first (the connection closing drops this future).
            tokio::time::sleep(controls::MAX_DELAY).await;
            return Err(MockCut);
        }
        Some(Fault::Reset) => return Err(MockCut),
        Some(Fault::ErrorFirst) => {
            let mut resp = sse_response(vec![controls::error_event(flavor)], &ctl);
            request_id(&mut resp, flavor, seq);
            return Ok(resp);
        }
        Some(Fault::Cut(_)) | None => {}
    }
    if let Some(status) = ctl.status {
        let mut resp = controls::error_response(
            flavor,
            status,
            &format!("mock fault: status {}", status.as_u16()),
            ctl.body.clone(),
        );
        request_id(&mut resp, flavor, seq);
        return Ok(resp);
    }

    type Handler = fn(&Value, &Controls, u64) -> Response<MockBody>;
    let route: Option<(Method, Handler)> = match parts.uri.path() {
        "/v1/chat/completions" => Some((Method::POST, openai::chat)),
        "/v1/responses" => Some((Method::POST, openai::responses)),
        "/v1/embeddings" => Some((Method::POST, openai::embeddings)),
        "/v1/completions" => Some((Method::POST, openai::completions)),
        "/v1/messages" => Some((Method::POST, anthropic::messages)),
        "/v1/models" => Some((Method::GET, |_: &Value, _: &Controls, _| openai::models())),
        _ => None,
    };
    let mut resp = match route {
        None => controls::error_response(
            flavor,
            StatusCode::NOT_FOUND,
            &format!("Unknown request URL: {} {}", parts.method, parts.uri.path()),
            None,
        ),
        Some((method, _)) if method != parts.method => controls::error_response(
            flavor,
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "Method {} not allowed on {}",
                parts.method,
                parts.uri.path()
            ),
            None,
        ),
        Some((Method::GET, handler)) => handler(&Value::Null, &ctl, seq),
        Some((_, handler)) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => handler(&v, &ctl, seq),
            _ => bad_request(&path, "request body is not a JSON object"),
        },
    };
    request_id(&mut resp, flavor, seq);
    Ok(resp)
}

/// Adds the provider's request-id header (`x-request-id` / `request-id`).
fn request_id(resp: &mut Response<MockBody>, flavor: Flavor, seq: u64) {
    let name = match flavor {
        Flavor::OpenAi => HeaderName::from_static("x-request-id"),
        Flavor::Anthropic => HeaderName::from_static("request-id"),
    };
    if let Ok(v) = HeaderValue::from_str(&format!("req_mock_{seq}")) {
        resp.headers_mut().insert(name, v);
    }
}

/// `/__mock/requests`: GET lists the recorded requests, DELETE clears them;
/// `/__mock/fault`: GET shows, PUT sets, DELETE clears the server-wide fault plan.
fn introspect(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Response<MockBody> {
    match (method, path) {
        (&Method::GET, "/__mock/fault") => {
            let plan = (*shared.fault()).map_or(Value::Null, FaultPlan::to_json);
            json_response(StatusCode::OK, Bytes::from(plan.to_string()))
        }
        (&Method::PUT, "/__mock/fault") => {
            let parsed = serde_json::from_slice::<Value>(body)
                .map_err(|e| format!("body: invalid JSON: {e}"))
                .and_then(|v| FaultPlan::from_json(&v));
            match parsed {
                Ok(plan) => {
                    *shared.fault() = Some(plan);
                    json_response(StatusCode::OK, Bytes::from(plan.to_json().to_string()))
                }
                Err(msg) => controls::error_response(
                    Flavor::OpenAi,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &msg,
                    None,
                ),
            }
        }
        (&Method::DELETE, "/__mock/fault") => {
            *shared.fault() = None;
            let mut resp = Response::new(MockBody::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        (&Method::GET, "/__mock/requests") => {
            let list: Vec<Value> = shared
                .recorded()
                .iter()
                .map(RecordedRequest::to_json)
                .collect();
            json_response(StatusCode::OK, Bytes::from(Value::Array(list).to_string()))
        }
        (&Method::DELETE, "/__mock/requests") => {
            shared.recorded().clear();
            let mut resp = Response::new(MockBody::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        _ => controls::error_response(
            Flavor::OpenAi,
            StatusCode::NOT_FOUND,
            "unknown mock introspection path",
            None,
        ),
    }
}

/// A 400 in the shape of the path's provider.
fn bad_request(path: &str, message: &str) -> Response<MockBody> {
    controls::error_response(
        Flavor::for_path(path),
        StatusCode::BAD_REQUEST,
        message,
        None,
    )
}

/// A JSON response.
fn json_response(status: StatusCode, body: Bytes) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An SSE response, one body frame per event, paced by `x-mock-chunk-delay-ms`.
/// A `cut` fault breaks the connection after its number of events.
fn sse_response(frames: Vec<Bytes>, ctl: &Controls) -> Response<MockBody> {
    let body = match ctl.fault {
        Some(Fault::Cut(after)) => MockBody::cut_events(frames, ctl.chunk_delay, after),
        _ => MockBody::events(frames, ctl.chunk_delay),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
