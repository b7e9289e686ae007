//! The ingestion and evidence APIs on the data-plane listener (seeds 000–004): Bearer keys
//! from `[[keys]]` bound to a workspace with scopes; `POST /v1/events` (SignalVault +
//! Clairist types), `POST /api/v1/ingest/raw` (Igris), `POST /v1/ingest/runtime|change`
//! (seed 002, `Idempotency-Key`), `POST|GET /v1/evidence/events`, `GET /v1/evidence/export`
//! (JSON Lines, streamed), `GET /v1/evidence/verify`.
//!
//! Errors: 401 missing/invalid key, 403 scope or workspace, 404/405, 413 oversize, 422 with
//! `{"error", "code", "details": [{"field", "message"}]}` (400 with the same shape on the
//! Igris path, as its seed says), 503 when the store is disabled or failing.

mod ingest;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::body::{full, ProxyBody};
use crate::config::VirtualKey;
use crate::runtime::Runtime;
use crate::store::db::Query;
use crate::store::evidence::Timestamp;
use crate::store::{EventSink, StoreError};

/// Whether `path` belongs to these APIs (the proxy hands these over before routing).
pub fn is_api_path(path: &str) -> bool {
    path == "/v1/events"
        || path.starts_with("/api/v1/ingest/")
        || path.starts_with("/v1/ingest/")
        || path.starts_with("/v1/evidence/")
}

/// An API error: status, stable code, message, field details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<(String, String)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
    /// 422 with field-level details.
    pub fn validation(details: Vec<(String, String)>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: "Validation failed".into(),
            details,
        }
    }
    fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::validation(vec![(field.into(), message.into())])
    }
    fn store(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "event store request failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the event store is unavailable",
        )
    }
    fn into_response(self) -> Response<ProxyBody> {
        let details: Vec<Value> = self
            .details
            .iter()
            .map(|(f, m)| json!({"field": f, "message": m}))
            .collect();
        let mut body = json!({"error": self.message, "code": self.code});
        if !details.is_empty() {
            body["details"] = Value::Array(details);
        }
        json_response(self.status, &body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The authenticated caller.
pub struct Caller<'a> {
    pub key: &'a VirtualKey,
    pub sink: &'a EventSink,
    pub runtime: &'a Runtime,
}

/// Entry point (the proxy calls this for [`is_api_path`] paths). Never fails.
pub async fn handle(runtime: Arc<Runtime>, req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    match route(&runtime, req).await {
        Ok(r) => r,
        Err(mut e) => {
            if path.starts_with("/api/v1/ingest/") && e.code == "validation_failed" {
                e.status = StatusCode::BAD_REQUEST;
            }
            tracing::info!(%path, status = e.status.as_u16(), code = e.code, "api request rejected");
            e.into_response()
        }
    }
}

fn query_params(req: &Request<Incoming>) -> Vec<(String, String)> {
    let q = req.uri().query().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(runtime: &Runtime, req: Request<Incoming>) -> Result<Response<ProxyBody>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let (scope, known) = match (path.as_str(), &method) {
        (
            "/v1/events" | "/api/v1/ingest/raw" | "/v1/ingest/runtime" | "/v1/ingest/change",
            &Method::POST,
        ) => ("ingest", true),
        ("/v1/evidence/events", &Method::POST) => ("evidence:write", true),
        ("/v1/evidence/events" | "/v1/evidence/export" | "/v1/evidence/verify", &Method::GET) => {
            ("evidence:read", true)
        }
        (
            "/v1/events"
            | "/api/v1/ingest/raw"
            | "/v1/ingest/runtime"
            | "/v1/ingest/change"
            | "/v1/evidence/events"
            | "/v1/evidence/export"
            | "/v1/evidence/verify",
            _,
        ) => ("", false),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such API path",
            ))
        }
    };
    if !known {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ));
    }
    let presented = crate::auth::presented_key(req.headers()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing API key (Authorization: Bearer <key>)",
        )
    })?;
    let key = crate::auth::find_key(&runtime.config.keys, presented).ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key")
    })?;
    if !key.has_scope(scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the key lacks the `{scope}` scope"),
        ));
    }
    let params = query_params(&req);
    let asked_ws = req
        .headers()
        .get("x-parapet-workspace")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "workspace")
                .map(|(_, v)| v.clone())
        });
    if asked_ws.is_some_and(|w| w != key.workspace) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the key belongs to another workspace",
        ));
    }
    let sink = &runtime.events;
    if !sink.is_enabled() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_disabled",
            "the event store is disabled ([store] enabled = false)",
        ));
    }
    let caller = Caller { key, sink, runtime };
    if method == Method::GET {
        return match path.as_str() {
            "/v1/evidence/events" => evidence_get(&caller, &params).await,
            "/v1/evidence/export" => evidence_export(&caller, &params).await,
            _ => evidence_verify(&caller).await,
        };
    }
    let idem = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(String::from))
        .transpose()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if idem.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1-255 characters",
        ));
    }
    let body = read_json(
        &runtime.config.store,
        runtime.config.server.request_body_timeout,
        req,
    )
    .await?;
    let fingerprint = match idem.as_deref() {
        Some(key) => Some(check_key_reuse(&caller, key, &body)?),
        None => None,
    };
    let ctx = ingest::Ctx {
        caller: &caller,
        idem: idem.as_deref(),
        idem_fp: fingerprint.as_deref(),
    };
    match path.as_str() {
        "/v1/events" => ingest::events(&ctx, body).await,
        "/api/v1/ingest/raw" => ingest::igris(&ctx, body).await,
        "/v1/ingest/runtime" => ingest::runtime(&ctx, body).await,
        "/v1/ingest/change" => ingest::change(&ctx, body).await,
        _ => ingest::evidence_post(&ctx, body).await,
    }
}

/// The body's fingerprint for `Idempotency-Key` `key`; 422 when the key already named a
/// request with another body (its first generated event is stored with a different
/// fingerprint). A retry with the same body (key order and whitespace aside) passes and is
/// answered from the stored events. Events stored before fingerprints existed carry none:
/// their key is honoured as before.
fn check_key_reuse(caller: &Caller<'_>, key: &str, body: &Value) -> Result<String, ApiError> {
    let mut canonical = String::new();
    crate::store::evidence::canonical_json(body, &mut canonical);
    let fp = crate::store::evidence::sha256_tagged(canonical.as_bytes());
    let Some(store) = caller.sink.store() else {
        return Ok(fp);
    };
    let ws = caller.key.workspace.as_str();
    let first = store
        .get(ws, &ingest::idem_id(ws, key, 0))
        .map_err(ApiError::store)?;
    let stored = first
        .as_ref()
        .and_then(|r| r["data"]["idempotency_fingerprint"].as_str());
    match stored {
        Some(s) if s != fp => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "idempotency_key_reused",
            message: "Idempotency-Key was already used with a different request body".into(),
            details: vec![(
                "Idempotency-Key".into(),
                "already used with a different request body; use a new key for a new request"
                    .into(),
            )],
        }),
        _ => Ok(fp),
    }
}

async fn read_json(
    cfg: &crate::config::store::StoreConfig,
    timeout: std::time::Duration,
    req: Request<Incoming>,
) -> Result<Value, ApiError> {
    let max = cfg.max_request_bytes;
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {max} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max {
            return Err(too_big());
        }
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let Ok(read) =
        tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect()).await
    else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the body was not received within {} ms",
                timeout.as_millis()
            ),
        ));
    };
    let bytes: Bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_big())
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read",
            ))
        }
    };
    // Strict, as for proxied bodies: an event whose object repeats a key is ambiguous (the
    // stored record and the policy decision would be about one value of two).
    crate::provider::strict::parse_strict(&bytes).map_err(|e| {
        if crate::provider::strict::is_duplicate_key(&e) {
            ApiError::field("body", "repeats a key within one JSON object")
        } else {
            ApiError::field("body", format!("invalid JSON: {e}"))
        }
    })
}

fn micros_param(v: &str, field: &str) -> Result<i64, ApiError> {
    Timestamp::parse(v).map(|t| t.micros()).ok_or_else(|| {
        ApiError::field(
            field,
            "must be an RFC 3339 timestamp, e.g. 2026-04-08T00:00:00Z",
        )
    })
}

/// Filters shared by GET events and export.
fn parse_query(params: &[(String, String)], max_limit: Option<usize>) -> Result<Query, ApiError> {
    let mut q = Query {
        limit: 20,
        ..Query::default()
    };
    let mut errors = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "project_id" | "session_id" | "event_id" | "final_status" | "record_origin"
            | "application_id" | "route_path" | "request_id" | "type" => {
                q.eq.push((k.clone(), v.clone()))
            }
            "recorded_from" => match micros_param(v, k) {
                Ok(m) => q.recorded_from = Some(m),
                Err(e) => errors.extend(e.details),
            },
            "recorded_to" => match micros_param(v, k) {
                Ok(m) => q.recorded_to = Some(m),
                Err(e) => errors.extend(e.details),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if n >= 1 => q.limit = max_limit.map_or(n, |m| n.min(m)),
                _ => errors.push((
                    k.clone(),
                    "must be a whole number ≥ 1 (capped at 100)".into(),
                )),
            },
            "cursor" => q.cursor = Some(v.clone()),
            "order" => match v.as_str() {
                "asc" => q.ascending = true,
                "desc" => q.ascending = false,
                _ => errors.push((k.clone(), "must be asc or desc".into())),
            },
            "workspace" => {}
            other => errors.push((other.to_string(), "unknown query parameter".into())),
        }
    }
    if max_limit.is_none() && !params.iter().any(|(k, _)| k == "limit") {
        q.limit = usize::MAX;
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::validation(errors))
    }
}

async fn evidence_get(
    c: &Caller<'_>,
    params: &[(String, String)],
) -> Result<Response<ProxyBody>, ApiError> {
    let q = parse_query(params, Some(100))?;
    let store = open_store(c)?;
    let ws = c.key.workspace.clone();
    let q2 = q.clone();
    let page = tokio::task::spawn_blocking(move || store.query(&ws, &q2))
        .await
        .map_err(|e| ApiError::store(StoreError::Other(e.to_string())))?
        .map_err(query_error)?;
    let body = json!({
        "ok": true,
        "event_count": page.events.len(),
        "events": page.events,
        "next_cursor": page.next_cursor,
    });
    let mut r = json_response(StatusCode::OK, &body);
    if let Some(cur) = &page.next_cursor {
        let mut qs: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect();
        qs.push(format!("cursor={cur}"));
        if let Ok(v) = http::HeaderValue::from_str(&format!(
            "</v1/evidence/events?{}>; rel=\"next\"",
            qs.join("&")
        )) {
            r.headers_mut().insert(http::header::LINK, v);
        }
    }
    Ok(r)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query error as the client sees it: a cursor that does not decode is the caller's
/// mistake (422 naming `cursor`), anything else the store's.
fn query_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Other(m) if m == "bad cursor" => ApiError::field("cursor", "invalid cursor"),
        e => ApiError::store(e),
    }
}

/// Events reading the next page of an export.
const EXPORT_PAGE: usize = 1000;

async fn evidence_export(
    c: &Caller<'_>,
    params: &[(String, String)],
) -> Result<Response<ProxyBody>, ApiError> {
    let mut q = parse_query(params, None)?;
    if !params.iter().any(|(k, _)| k == "order") {
        q.ascending = true;
    }
    let store = open_store(c)?;
    let ws = c.key.workspace.clone();
    // The first page is read before the response starts, so a bad cursor or a store error
    // gets a status and an error body instead of a stream that ends without either.
    let (first, store, ws) = {
        let mut page_q = q.clone();
        page_q.limit = q.limit.min(EXPORT_PAGE);
        tokio::task::spawn_blocking(move || (store.query(&ws, &page_q), store, ws))
            .await
            .map_err(|e| ApiError::store(StoreError::Other(e.to_string())))?
    };
    let first = first.map_err(query_error)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, crate::body::BoxError>>(4);
    tokio::task::spawn_blocking(move || {
        let mut remaining = q.limit;
        let mut next = Some(first);
        loop {
            let page = match next.take() {
                Some(p) => p,
                None => {
                    let mut page_q = q.clone();
                    page_q.limit = remaining.min(EXPORT_PAGE);
                    match store.query(&ws, &page_q) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(Box::new(e)));
                            return;
                        }
                    }
                }
            };
            let mut chunk = Vec::new();
            for r in &page.events {
                chunk.extend_from_slice(r.to_string().as_bytes());
                chunk.push(b'\n');
            }
            remaining = remaining.saturating_sub(page.events.len());
            if !chunk.is_empty() && tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return; // client gone
            }
            match page.next_cursor {
                Some(c) if remaining > 0 => q.cursor = Some(c),
                _ => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    let body = http_body_util::StreamBody::new(stream).boxed_unsync();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}

async fn evidence_verify(c: &Caller<'_>) -> Result<Response<ProxyBody>, ApiError> {
    let store = open_store(c)?;
    let ws = c.key.workspace.clone();
    let rep = tokio::task::spawn_blocking(move || store.verify(&ws))
        .await
        .map_err(|e| ApiError::store(StoreError::Other(e.to_string())))?
        .map_err(ApiError::store)?;
    let mut v = serde_json::to_value(&rep).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("ok".into(), rep.broken.is_none().into());
    }
    Ok(json_response(StatusCode::OK, &v))
}

pub(crate) fn ok(body: Value) -> Result<Response<ProxyBody>, ApiError> {
    Ok(json_response(StatusCode::OK, &body))
}

pub(crate) type Obj = Map<String, Value>;

/// The caller's store handle (503 when the store is disabled).
fn open_store(c: &Caller<'_>) -> Result<crate::store::Store, ApiError> {
    c.sink
        .store()
        .cloned()
        .ok_or_else(|| ApiError::store(StoreError::Other("disabled".into())))
}
