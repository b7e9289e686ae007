//! The data-plane service: one proxied call, as a fixed sequence of phases.
//!
//! Phase order (each is a function below; the per-request context is `Call`):
//!
//! 1. **accept** (`server.rs`): a connection is accepted; `handle` loads the runtime snapshot
//!    once — the call keeps it to its end, streams included.
//! 2. **identify**: take the client's `x-request-id` or generate one; pick the error shape
//!    (OpenAI or Anthropic) from the path.
//! 3. **read body** (`read_body`): enforce `max_body_bytes` (413) and
//!    `request_body_timeout_ms` (408), buffer the request body.
//! 4. **parse** (`peek`): for known provider APIs, parse the JSON body for `model`/`stream`
//!    (400 on invalid JSON); unknown paths are forwarded uninspected or rejected per config.
//! 5. **match route** (`Config::match_route`): first route by path prefix and model (404).
//! 6. **authenticate** (`authenticate`): passthrough keeps the client's credential; virtual
//!    checks the Parapet key (401/403) and injects the endpoint's provider key.
//! 7. **forward** (`forward`): build the upstream request (hop-by-hop headers removed, `Host`
//!    rewritten, endpoint headers added), send it with the first-byte timeout (504), connect
//!    errors are 502.
//! 8. **respond**: relay status, headers (hop-by-hop removed) and the body frame by frame
//!    (`RelayBody`, total timeout); `x-request-id` is added to every response.
//!
//! Errors from any phase are `ProxyError`s, turned into a response in one place (`handle`).
//!
//! Metrics (`crate::metrics`): `handle` counts the call in flight from its start until the
//! response body ends, and wraps every response body in an `ObservedBody` whose `CallEnd`
//! records `parapet_requests_total` / `parapet_request_duration_seconds` once, when the body
//! ends (streams included), and the SSE time to first token when the first body frame goes
//! out. When the body ends, `CallEnd` records `parapet_overhead_seconds`, Parapet's own time:
//! from the request's arrival (the read that completed its head, `wire::Arrival`) to the end
//! of the response body, minus the upstream's time on the wire (the relayed exchange's first
//! request byte written to last answer byte read, `wire::Exchange`, plus any failed-over
//! attempts). It includes hyper's parsing and dispatch, body reading, routing,
//! authentication, policy evaluation, the hand-offs to and from the upstream connection and
//! the streamed relay and stream guard. Where the upstream's wire time is unknown (an h2
//! connection multiplexes calls; a body that did not complete) it falls back to the head
//! window: request head to response head minus the upstream time to first byte (plus the
//! upstream body read of a buffered guarded answer). The head window is also the
//! optional `x-parapet-overhead-ms` header. Label values are configuration ids only
//! (`metrics::NO_ROUTE` before a route is known).

pub mod failover;
pub mod headers;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::Instant;

use crate::body::{BodyObserver, GuardedBody, ObservedBody, ProxyBody, RelayBody};
use crate::config::{AuthMode, Config, Endpoint, Route, UnknownPaths};
use crate::error::{ErrorShape, ProxyError};
use crate::guard::{Ctx, PolicySet, Side};
use crate::metrics;
use crate::provider::format_for_path;
use crate::provider::ApiFormat;
use crate::redact::stream::StreamGuard;
use crate::redact::Redactor;
use crate::runtime::Runtime;
use crate::wire::{Arrival, Exchange, WireClock};

use failover::Upstream;
use headers::{request_id, upstream_request_headers, REQUEST_ID};
use record::{CallEnded, CallRecord, StreamReport};

/// Response header carrying Parapet's own time until the response head, in milliseconds
/// with three decimals (`server.overhead_header`).
pub const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-parapet-overhead-ms");

/// Per-request context carried through the phases.
struct Call {
    request_id: HeaderValue,
    shape: ErrorShape,
    started: Instant,
}

/// Body of a proxied answer, boxed once in `handle`: relayed as is, a guarded stream, or a
/// guarded buffered JSON body.
type Answer = Either<RelayBody<Upstream>, Either<GuardedBody<RelayBody<Upstream>>, Full<Bytes>>>;

/// The call's metrics state (no allocation: an index and `Arc`s). Filled in by the phases,
/// then moved into the response body, which ends it when the body ends; holds the in-flight
/// guard. Dropped without ending (client gone before the response head: the `handle` future
/// is dropped) it records the call with no status.
struct CallEnd {
    _inflight: metrics::Inflight,
    config: Arc<Config>,
    /// Index of the matched route in `Config::routes`.
    route: Option<usize>,
    endpoint: Option<Arc<Endpoint>>,
    /// Time spent waiting on the upstream before the response head: time to first byte,
    /// plus reading the body of a buffered (guarded JSON) answer.
    upstream: Duration,
    /// Upstream attempts that did not give the relayed answer (failed over), whole.
    upstream_failed: Duration,
    /// The relayed answer's exchange on the wire (`Unknown` on h2 or without a clock).
    wire: Wire,
    /// When the request arrived (`wire::Arrival`; the handler's start without one).
    arrived: Instant,
    /// Parapet's time until the response head (the fallback overhead measure).
    head_overhead: Option<Duration>,
    /// Response status, once the head is built.
    status: Option<u16>,
    started: Instant,
    sse: bool,
    ended: bool,
    /// Event-store recording (`None` when the store is disabled).
    record: Option<Box<CallRecord>>,
}

/// What is known of the relayed answer's exchange with the upstream.
enum Wire {
    /// No answer came from an upstream (refused, no route, or every attempt failed).
    NoAnswer,
    /// An HTTP/1 exchange: first request byte written, last answer byte read.
    Exchange(Exchange),
    /// An h2 exchange (multiplexed: no per-call socket instants) or a connection without a
    /// clock.
    Unknown,
}

impl CallEnd {
    fn route(&self) -> &str {
        route_label(&self.config, self.route)
    }

    /// Parapet's own time for the call, when it ends `complete`: arrival of the request to
    /// the end of the response body, minus the upstream's time on the wire (the relayed
    /// exchange's first byte written to last byte read, plus failed-over attempts). Falls
    /// back to the head window (request head to response head minus time to first byte)
    /// when the upstream's wire time is unknown (h2, a reused connection) or the body did
    /// not complete.
    fn overhead(&self, complete: bool, now: Instant) -> Option<Duration> {
        let total = now.saturating_duration_since(self.arrived);
        let upstream = match (&self.wire, complete) {
            (Wire::NoAnswer, true) => Some(self.upstream_failed),
            (Wire::Exchange(x), true) => x.took().map(|t| t + self.upstream_failed),
            _ => None,
        };
        match upstream {
            Some(u) => Some(total.saturating_sub(u)),
            None => self.head_overhead,
        }
    }
}

impl BodyObserver for CallEnd {
    fn first_data(&mut self) {
        if self.sse {
            let ttft = self.started.elapsed();
            metrics::stream_ttft(self.route(), ttft);
            if let Some(rec) = self.record.as_deref_mut() {
                rec.ttft = Some(ttft);
            }
        }
    }

    fn data(&mut self, chunk: &Bytes) {
        if let Some(rec) = self.record.as_deref_mut() {
            rec.capture(chunk);
        }
    }

    fn end(&mut self, complete: bool) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let endpoint = self
            .endpoint
            .as_deref()
            .map_or(metrics::NO_ROUTE, |e| e.id.as_str());
        // A body that failed or was abandoned (upstream error mid-body, total timeout,
        // client gone) did not complete the call: counted as `error`.
        let status = self.status.filter(|_| complete);
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.started);
        metrics::request_finished(self.route(), endpoint, status, latency);
        if let Some(overhead) = self.overhead(complete, now) {
            metrics::overhead(self.route(), overhead);
        }
        if let Some(rec) = self.record.take() {
            let route = self.route.and_then(|i| self.config.routes.get(i));
            rec.finish(CallEnded {
                route: route.map(|r| r.id.clone()),
                endpoint: self.endpoint.as_ref().map(|e| e.id.clone()),
                provider: self.endpoint.as_ref().map(|e| e.kind.as_str()),
                status: self.status,
                complete,
                latency,
                upstream_ttfb: Some(self.upstream).filter(|d| !d.is_zero()),
            });
        }
    }
}

impl Drop for CallEnd {
    fn drop(&mut self) {
        self.end(false);
    }
}

fn route_label(config: &Config, route: Option<usize>) -> &str {
    route
        .and_then(|i| config.routes.get(i))
        .map_or(metrics::NO_ROUTE, |r| r.id.as_str())
}

/// Entry point for one data-plane request. Never fails: errors become provider-shaped responses.
pub async fn handle(runtime: Arc<Runtime>, req: Request<Incoming>) -> Response<ProxyBody> {
    // Ingestion and evidence APIs (`crate::api`) are not proxied.
    if crate::api::is_api_path(req.uri().path()) {
        return crate::api::handle(runtime, req).await;
    }
    let call = Call {
        request_id: request_id(req.headers()),
        shape: ErrorShape::for_path(req.uri().path()),
        started: Instant::now(),
    };
    let arrived = req
        .extensions()
        .get::<Arrival>()
        .map_or(call.started, |a| Instant::from_std(a.0));
    let mut seen = CallEnd {
        _inflight: metrics::inflight(),
        config: runtime.config.clone(),
        route: None,
        endpoint: None,
        upstream: Duration::ZERO,
        upstream_failed: Duration::ZERO,
        wire: Wire::NoAnswer,
        arrived,
        head_overhead: None,
        status: None,
        started: call.started,
        sse: false,
        ended: false,
        record: None,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    seen.record = CallRecord::start(
        &runtime.events,
        &runtime.policies,
        call.request_id.to_str().unwrap_or("-"),
        method.as_str(),
        &path,
    )
    .await;
    let resp = match proxy(&runtime, &call, &mut seen, req).await {
        Ok(resp) => resp.map(Either::Left),
        Err(err) => {
            let status = err.status_code();
            if status.is_server_error() {
                tracing::warn!(request_id = ?call.request_id, %method, %path, code = err.code(), error = %err, "request failed");
            } else {
                tracing::info!(request_id = ?call.request_id, %method, %path, code = err.code(), status = status.as_u16(), "request rejected");
            }
            if let Some(rec) = seen.record.as_deref_mut() {
                rec.error_code = Some(err.code());
            }
            err.into_response(call.shape).map(Either::Right)
        }
    };
    let to_head = call.started.elapsed().saturating_sub(seen.upstream);
    seen.head_overhead = Some(to_head);
    let (mut head, body) = resp.into_parts();
    if runtime.config.server.overhead_header {
        let ms = to_head.as_secs_f64() * 1000.0;
        if let Ok(v) = HeaderValue::from_str(&format!("{ms:.3}")) {
            head.headers.insert(OVERHEAD_HEADER, v);
        }
    }
    head.headers.insert(REQUEST_ID, call.request_id);
    seen.status = Some(head.status.as_u16());
    seen.sse = is_sse(&head.headers);
    Response::from_parts(head, ObservedBody::new(body, seen).boxed_unsync())
}

fn is_sse(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

async fn proxy(
    runtime: &Runtime,
    call: &Call,
    seen: &mut CallEnd,
    req: Request<Incoming>,
) -> Result<Response<Answer>, ProxyError> {
    let config = &runtime.config;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let format = format_for_path(path);
    if format.is_none()
        && !is_models_path(path)
        && config.server.unknown_paths == UnknownPaths::Reject
    {
        return Err(ProxyError::UnknownPath);
    }

    let body = read_body(
        &parts.headers,
        body,
        config.server.max_body_bytes,
        config.server.request_body_timeout,
    )
    .await?;
    if let Some(rec) = seen.record.as_deref_mut() {
        rec.format = format;
        rec.request_body = body.clone();
    }
    let peeked = match format {
        Some(_) if !body.is_empty() => peek(&body)?,
        _ => Peek::default(),
    };
    if let Some(rec) = seen.record.as_deref_mut() {
        rec.model = peeked.model.clone();
        rec.stream = peeked.stream.unwrap_or(false);
    }

    let route = config
        .match_route(path, peeked.model.as_deref())
        .ok_or(ProxyError::NoRoute)?;
    seen.route = config.routes.iter().position(|r| std::ptr::eq(r, route));
    // The endpoint label is the route's (primary) endpoint, also for calls refused before
    // anything is sent.
    seen.endpoint = Some(route.primary().clone());
    let mut headers = upstream_request_headers(parts.headers);
    let workspace = authenticate(runtime, route, &mut headers)?;
    if let (Some(rec), Some(ws)) = (seen.record.as_deref_mut(), workspace) {
        rec.workspace = Some(ws.to_string());
    }

    // Pre-flight policies (phase 7): deny or redact before anything leaves.
    let policies = &runtime.policies;
    let model = peeked.model.as_deref();
    let mut redactor = Redactor::new();
    let mut body = body;
    let mut response_guard = None;
    if let Some(fmt) = format {
        let ctx = Ctx {
            side: Side::Request,
            route: &route.id,
            model,
        };
        let app = policies.applicable(&ctx);
        if app.any() && !body.is_empty() {
            body = guard_request(
                policies,
                fmt,
                body,
                &app,
                &mut redactor,
                call,
                seen.record.as_deref_mut(),
            )?;
        }
        let resp_app = policies.applicable(&Ctx {
            side: Side::Response,
            ..ctx
        });
        if resp_app.any() && fmt != ApiFormat::OpenAiEmbeddings {
            // The answer must be readable to be guarded.
            headers.remove(http::header::ACCEPT_ENCODING);
            response_guard = Some((fmt, resp_app));
        }
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let outgoing = failover::Outgoing {
        method: parts.method,
        path_and_query,
        headers,
        body,
        model,
        stream: peeked.stream.unwrap_or(false),
    };
    let accepted = failover::send(runtime, route, &call.request_id, seen, outgoing).await?;
    let (head, relay, endpoint) = (accepted.head, accepted.relay, accepted.endpoint);
    seen.wire = match head.extensions.get::<Arc<WireClock>>() {
        Some(clock) if head.version < http::Version::HTTP_2 => {
            clock.exchange().map_or(Wire::Unknown, Wire::Exchange)
        }
        _ => Wire::Unknown,
    };
    tracing::debug!(
        request_id = ?call.request_id,
        route = %route.id,
        endpoint = %endpoint.id,
        status = head.status.as_u16(),
        stream = peeked.stream.unwrap_or(false),
        head_ms = call.started.elapsed().as_secs_f64() * 1000.0,
        "proxied"
    );
    match response_guard {
        Some((fmt, app)) if head.status.is_success() => {
            guard_response(
                policies.clone(),
                fmt,
                app,
                redactor,
                head,
                relay,
                call,
                seen,
            )
            .await
        }
        Some((_, app)) => guard_error(policies, &app, redactor, head, relay, call, seen).await,
        _ => Ok(Response::from_parts(head, Either::Left(relay))),
    }
}

/// Evaluate request policies on a JSON body; returns the (possibly redacted) body.
fn guard_request(
    policies: &PolicySet,
    fmt: ApiFormat,
    body: Bytes,
    app: &crate::guard::Applicable,
    redactor: &mut Redactor,
    call: &Call,
    rec: Option<&mut CallRecord>,
) -> Result<Bytes, ProxyError> {
    let t = Instant::now();
    if policies.fast_clean(fmt, Side::Request, &body, app) {
        // Nothing to record, redact or deny: forwarded as received.
        metrics::policy_eval("request", t.elapsed());
        return Ok(body);
    }
    // Strict: a repeated key would let the guard read one value and the provider another.
    let mut value = crate::provider::strict::parse_strict(&body).map_err(|e| {
        if crate::provider::strict::is_duplicate_key(&e) {
            ProxyError::DuplicateKey
        } else {
            ProxyError::InvalidJson(e.to_string())
        }
    })?;
    let outcome = policies.guard_request(fmt, &mut value, app, redactor);
    metrics::policy_eval("request", t.elapsed());
    let outcome = outcome.map_err(|e| ProxyError::InvalidRequest(e.to_string()))?;
    log_violations(call, &outcome.violations);
    let mut rec = rec;
    if let Some(rec) = rec.as_deref_mut() {
        rec.request_violations = outcome.violations;
        rec.request_denied = outcome.deny.is_some();
    }
    if let Some((status, rules)) = outcome.deny {
        crate::metrics::denied("request");
        return Err(ProxyError::PolicyDenied {
            status,
            rules: rules.iter().map(|r| r.to_string()).collect(),
        });
    }
    if outcome.modified {
        let bytes = Bytes::from(
            serde_json::to_vec(&value).map_err(|e| ProxyError::BuildRequest(e.to_string()))?,
        );
        if let Some(rec) = rec {
            rec.request_body = bytes.clone();
        }
        return Ok(bytes);
    }
    Ok(body)
}

/// Evaluate response policies: streams through the incremental `StreamGuard`, JSON bodies
/// buffered and guarded whole (the time reading the upstream body is added to `upstream`).
#[allow(clippy::too_many_arguments)]
async fn guard_response(
    policies: Arc<PolicySet>,
    fmt: ApiFormat,
    app: crate::guard::Applicable,
    redactor: Redactor,
    mut head: http::response::Parts,
    relay: RelayBody<Upstream>,
    call: &Call,
    seen: &mut CallEnd,
) -> Result<Response<Answer>, ProxyError> {
    if is_encoded(&head.headers) {
        return Err(ProxyError::Uninspectable("compressed response"));
    }
    if is_sse(&head.headers) {
        head.headers.remove(http::header::CONTENT_LENGTH);
        let guard = StreamGuard::new(policies, app, fmt, redactor);
        let request_id = call.request_id.clone();
        let report = seen.record.as_deref_mut().map(|rec| {
            let slot = Arc::new(std::sync::Mutex::new(StreamReport::default()));
            rec.stream_report = Some(slot.clone());
            slot
        });
        let on_end: crate::body::OnStreamEnd = Box::new(move |g: &StreamGuard| {
            record_violations(&request_id, &g.outcome().violations);
            if let Some(Ok(mut r)) = report.as_ref().map(|s| s.lock()) {
                r.violations = g.outcome().violations.clone();
                r.denied = g.denied().is_some();
            }
            if let Some(d) = g.denied() {
                crate::metrics::denied("response");
                tracing::info!(request_id = ?request_id, rules = ?d.status_rules, "stream ended by policy");
            }
        });
        let body = GuardedBody::new(relay, guard, on_end);
        return Ok(Response::from_parts(
            head,
            Either::Right(Either::Left(body)),
        ));
    }
    let bytes = collect_answer(relay, seen).await?;
    head.headers.remove(http::header::CONTENT_LENGTH);
    let t = Instant::now();
    if policies.fast_clean(fmt, Side::Response, &bytes, &app) {
        // Nothing to record, redact or deny: relayed as received.
        metrics::policy_eval("response", t.elapsed());
        return Ok(Response::from_parts(
            head,
            Either::Right(Either::Right(Full::new(bytes))),
        ));
    }
    let mut value = match crate::provider::strict::parse_strict(&bytes) {
        Ok(v) => v,
        Err(e) if crate::provider::strict::is_duplicate_key(&e) => {
            return Err(ProxyError::Uninspectable(
                "response repeats a key within one JSON object",
            ))
        }
        Err(_) => return Err(ProxyError::Uninspectable("response is not JSON")),
    };
    let mut redactor = redactor;
    let outcome = policies.guard_response(fmt, &mut value, &app, &mut redactor);
    metrics::policy_eval("response", t.elapsed());
    let outcome =
        outcome.map_err(|_| ProxyError::Uninspectable("response does not match the API format"))?;
    let modified = outcome.modified;
    settle_answer(call, seen, outcome)?;
    let body = if modified {
        Bytes::from(
            serde_json::to_vec(&value).map_err(|e| ProxyError::BuildRequest(e.to_string()))?,
        )
    } else {
        bytes
    };
    Ok(Response::from_parts(
        head,
        Either::Right(Either::Right(Full::new(body))),
    ))
}

/// Whether the answer carries a content encoding other than `identity` (unreadable).
fn is_encoded(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
}

/// A guarded whole answer's outcome: violations logged, counted and put on the call's
/// record; an enforced deny becomes the client's `response_policy_violation` error.
fn settle_answer(
    call: &Call,
    seen: &mut CallEnd,
    outcome: crate::guard::Outcome,
) -> Result<(), ProxyError> {
    log_violations(call, &outcome.violations);
    if let Some(rec) = seen.record.as_deref_mut() {
        rec.response_violations = outcome.violations;
        rec.response_denied = outcome.deny.is_some();
    }
    if let Some((status, rules)) = outcome.deny {
        crate::metrics::denied("response");
        return Err(ProxyError::ResponseDenied {
            status,
            rules: rules.iter().map(|r| r.to_string()).collect(),
        });
    }
    Ok(())
}

/// Buffer a whole upstream answer to guard it (at most `server.max_response_bytes`; the
/// time reading it is added to `upstream`).
async fn collect_answer(
    relay: RelayBody<Upstream>,
    seen: &mut CallEnd,
) -> Result<Bytes, ProxyError> {
    let read = Instant::now();
    let max = usize::try_from(seen.config.server.max_response_bytes).unwrap_or(usize::MAX);
    let collected = Limited::new(relay, max).collect().await;
    seen.upstream += read.elapsed();
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProxyError::Uninspectable(
            "response larger than server.max_response_bytes",
        )),
        Err(e) => Err(ProxyError::UpstreamRequest {
            endpoint: "-".into(),
            detail: e.to_string(),
        }),
    }
}

/// Guard a provider's error answer (non-2xx) when response rules apply: its message can
/// quote the request, so it is buffered and every text in it is read by the response rules
/// (`PolicySet::guard_error_body`). The status is kept; redactions are written in place; an
/// enforced deny answers Parapet's own error instead; a compressed, oversized or binary
/// error body is refused (502) rather than relayed uninspected.
async fn guard_error(
    policies: &PolicySet,
    app: &crate::guard::Applicable,
    mut redactor: Redactor,
    mut head: http::response::Parts,
    relay: RelayBody<Upstream>,
    call: &Call,
    seen: &mut CallEnd,
) -> Result<Response<Answer>, ProxyError> {
    if is_encoded(&head.headers) {
        return Err(ProxyError::Uninspectable("compressed error response"));
    }
    let bytes = collect_answer(relay, seen).await?;
    let t = Instant::now();
    let guarded = policies.guard_error_body(&bytes, app, &mut redactor);
    metrics::policy_eval("response", t.elapsed());
    let guarded = guarded.map_err(ProxyError::Uninspectable)?;
    settle_answer(call, seen, guarded.outcome)?;
    let body = match guarded.body {
        Some(b) => {
            head.headers.remove(http::header::CONTENT_LENGTH);
            Bytes::from(b)
        }
        None => bytes,
    };
    Ok(Response::from_parts(
        head,
        Either::Right(Either::Right(Full::new(body))),
    ))
}

/// Log and count violations (rule ids, offsets, locations — never values).
fn log_violations(call: &Call, violations: &[crate::guard::Violation]) {
    record_violations(&call.request_id, violations);
}

fn record_violations(request_id: &HeaderValue, violations: &[crate::guard::Violation]) {
    for v in violations {
        crate::metrics::violation(&v.rule_id, v.action, v.side);
        if v.enforced && v.action == "redact" {
            crate::metrics::redactions(&v.rule_id, 1);
        }
        tracing::info!(
            request_id = ?request_id,
            rule = %v.rule_id,
            action = v.action,
            severity = v.severity,
            side = v.side,
            location = %v.location,
            start = v.start,
            end = v.end,
            enforced = v.enforced,
            "policy violation"
        );
    }
}

/// Buffer the request body, enforcing the size limit (413) before and while reading and
/// the receive deadline (408).
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let Ok(read) = tokio::time::timeout(timeout, limited.collect()).await else {
        return Err(ProxyError::BodyTimeout {
            after_ms: timeout.as_millis(),
        });
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(e) => Err(ProxyError::BodyRead(e.to_string())),
    }
}

/// The fields of a provider request body that routing needs.
#[derive(Debug, Default, Deserialize)]
struct Peek {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
}

fn peek(body: &[u8]) -> Result<Peek, ProxyError> {
    serde_json::from_slice::<Peek>(body).map_err(|e| ProxyError::InvalidJson(e.to_string()))
}

/// Check the route's authentication mode and set the upstream credential headers; returns
/// the virtual key's workspace.
fn authenticate<'a>(
    runtime: &'a Runtime,
    route: &Route,
    headers: &mut http::HeaderMap,
) -> Result<Option<&'a str>, ProxyError> {
    match route.auth {
        AuthMode::Passthrough => Ok(None),
        AuthMode::Virtual => {
            let presented = crate::auth::presented_key(headers).ok_or(ProxyError::MissingKey)?;
            let key = crate::auth::find_key(&runtime.config.keys, presented)
                .ok_or(ProxyError::InvalidKey)?;
            if let Some(allowed) = &key.routes {
                if !allowed.iter().any(|r| r == &route.id) {
                    return Err(ProxyError::KeyNotAllowed {
                        key: key.id.clone(),
                        route: route.id.clone(),
                    });
                }
            }
            Ok(Some(key.workspace.as_str()))
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /v1/models` and `/v1/models/{id}`: known provider paths without a body to inspect.
fn is_models_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    path == "/v1/models" || path.starts_with("/v1/models/")
}
