//! The data-plane service: one proxied call, as a fixed sequence of phases.
//!
//! Phase order (each is a function below; the per-request context is `Call`):
//!
//! 1. **accept** (`server.rs`): a connection is accepted; `handle` loads the runtime snapshot
//!    once — the call keeps it to its end, streams included.
//! 2. **identify**: take the client's `x-request-id` or generate one; pick the error shape
//!    (OpenAI or Anthropic) from the path.
//! 3. **read body** (`read_body`): enforce `max_body_bytes` (413), buffer the request body.
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

pub mod headers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::time::Instant;

use crate::body::{ProxyBody, RelayBody};
use crate::config::{AuthMode, Endpoint, Route, UnknownPaths};
use crate::error::{ErrorShape, ProxyError};
use crate::provider::format_for_path;
use crate::runtime::Runtime;
use crate::upstream::{classify_error, upstream_uri};
use headers::{inject_provider_key, request_id, upstream_request_headers, REQUEST_ID};

/// Per-request context carried through the phases.
struct Call {
    request_id: HeaderValue,
    shape: ErrorShape,
    started: Instant,
}

/// Entry point for one data-plane request. Never fails: errors become provider-shaped responses.
pub async fn handle(runtime: Arc<Runtime>, req: Request<Incoming>) -> Response<ProxyBody> {
    let call = Call {
        request_id: request_id(req.headers()),
        shape: ErrorShape::for_path(req.uri().path()),
        started: Instant::now(),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match proxy(&runtime, &call, req).await {
        Ok(resp) => resp,
        Err(err) => {
            let status = err.status_code();
            if status.is_server_error() {
                tracing::warn!(request_id = ?call.request_id, %method, %path, code = err.code(), error = %err, "request failed");
            } else {
                tracing::info!(request_id = ?call.request_id, %method, %path, code = err.code(), status = status.as_u16(), "request rejected");
            }
            err.into_response(call.shape)
        }
    };
    resp.headers_mut().insert(REQUEST_ID, call.request_id);
    resp
}

async fn proxy(
    runtime: &Runtime,
    call: &Call,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
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

    let body = read_body(&parts.headers, body, config.server.max_body_bytes).await?;
    let peeked = match format {
        Some(_) if !body.is_empty() => peek(&body)?,
        _ => Peek::default(),
    };

    let route = config
        .match_route(path, peeked.model.as_deref())
        .ok_or(ProxyError::NoRoute)?;
    let mut headers = upstream_request_headers(parts.headers);
    authenticate(runtime, route, &mut headers)?;

    let endpoint = route.primary();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = upstream_uri(endpoint, path_and_query)?;
    for (name, value) in endpoint.headers.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(REQUEST_ID, call.request_id.clone());

    let mut up = Request::builder()
        .method(parts.method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| ProxyError::BuildRequest(e.to_string()))?;
    *up.headers_mut() = headers;

    let resp = forward(runtime, endpoint, up).await?;
    tracing::debug!(
        request_id = ?call.request_id,
        route = %route.id,
        endpoint = %endpoint.id,
        status = resp.status().as_u16(),
        stream = peeked.stream.unwrap_or(false),
        head_ms = call.started.elapsed().as_secs_f64() * 1000.0,
        "proxied"
    );
    Ok(resp)
}

/// Buffer the request body, enforcing the size limit (413) before and while reading.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: u64,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
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

/// Check the route's authentication mode and set the upstream credential headers.
fn authenticate(
    runtime: &Runtime,
    route: &Route,
    headers: &mut http::HeaderMap,
) -> Result<(), ProxyError> {
    match route.auth {
        AuthMode::Passthrough => Ok(()),
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
            inject_provider_key(headers, route.primary());
            Ok(())
        }
    }
}

/// Send the request to the endpoint and return the relayed response.
async fn forward(
    runtime: &Runtime,
    endpoint: &Endpoint,
    up: Request<Full<Bytes>>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let client = runtime
        .upstreams
        .client(&endpoint.id)
        .ok_or_else(|| ProxyError::BuildRequest(format!("no client for `{}`", endpoint.id)))?;
    let started = Instant::now();
    let deadline = started + endpoint.total_timeout;
    let first_byte = endpoint.first_byte_timeout.min(endpoint.total_timeout);
    let resp = match tokio::time::timeout(first_byte, client.request(up)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(classify_error(endpoint, e)),
        Err(_) => {
            return Err(ProxyError::UpstreamTimeout {
                endpoint: endpoint.id.clone(),
                timeout_ms: duration_ms(first_byte),
            })
        }
    };
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    let body = RelayBody::new(body, deadline, endpoint.total_timeout);
    Ok(Response::from_parts(
        parts,
        http_body_util::BodyExt::boxed_unsync(body),
    ))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /v1/models` and `/v1/models/{id}`: known provider paths without a body to inspect.
fn is_models_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    path == "/v1/models" || path.starts_with("/v1/models/")
}
