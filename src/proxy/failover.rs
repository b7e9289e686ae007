//! The forward phase's attempt loop: which endpoint a call is sent to, in which order, and
//! when it moves on to the next one (`[[failover_policies]]`, `upstream::breaker`).
//!
//! Without a failover policy a call makes exactly one attempt, to the route's primary
//! endpoint (the breaker only counts outcomes). With one, candidates are the primary then
//! the fallbacks in order; an endpoint whose breaker is open is skipped (reason
//! `circuit_open`) unless every candidate is open, then they are tried in order anyway. An
//! attempt fails over — while another attempt is allowed (`max_attempts`) and another
//! candidate is not open — on: connect error (`connect_error`), connection reset or other
//! error before the response head (`reset`), first-byte timeout (`timeout`), time to
//! first byte above `latency_threshold_ms` (`latency`: the slow attempt is cancelled), a
//! status in `retry_on_status` (`status`), or an SSE answer whose first event is an error
//! (`stream_error`: the first event is read before anything reaches the client, then
//! replayed). Nothing reaches the client before an attempt is accepted, so a failover never
//! happens after the first byte went out. The request body sent again is the already
//! guarded one; an endpoint's `models` map renames the model for that endpoint.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::headers::{inject_provider_key, REQUEST_ID};
use super::{duration_ms, CallEnd};
use crate::body::{Prefixed, RelayBody};
use crate::config::failover::FailoverPolicy;
use crate::config::{AuthMode, Endpoint, Route};
use crate::error::ProxyError;
use crate::metrics;
use crate::runtime::Runtime;
use crate::upstream::breaker::{Admit, State};
use crate::upstream::{classify_error, upstream_uri};

/// The upstream body type relayed to the client.
pub type Upstream = Prefixed<Incoming>;

/// Most bytes read while looking for the first SSE event.
const PEEK_LIMIT: usize = 64 * 1024;

/// What the call sends to every attempt.
pub struct Outgoing<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    /// Headers after authentication (hop-by-hop removed), without endpoint headers.
    pub headers: HeaderMap,
    /// The guarded body.
    pub body: Bytes,
    pub model: Option<&'a str>,
    /// The client asked for a stream.
    pub stream: bool,
}

/// The accepted attempt.
pub struct Accepted {
    pub head: http::response::Parts,
    pub relay: RelayBody<Upstream>,
    pub endpoint: Arc<Endpoint>,
}

/// Why an attempt was given up.
struct Failure {
    reason: &'static str,
    /// What the client gets if no other attempt follows.
    outcome: Result<(http::response::Parts, RelayBody<Upstream>), ProxyError>,
}

/// Send the call, failing over per the route's policy.
pub(super) async fn send(
    runtime: &Runtime,
    route: &Route,
    request_id: &http::HeaderValue,
    seen: &mut CallEnd,
    out: Outgoing<'_>,
) -> Result<Accepted, ProxyError> {
    let policy = route.failover.as_deref();
    let candidates: &[Arc<Endpoint>] = match policy {
        Some(_) => &route.endpoints,
        None => std::slice::from_ref(route.primary()),
    };
    let max_attempts = policy.map_or(1, |p| p.max_attempts);
    let breaker_of = |ep: &Endpoint| runtime.upstreams.breaker(&ep.id);

    // First pass honours the breakers; if it tried nothing (all open), a second pass tries
    // the skipped endpoints in order.
    let mut skipped: Vec<Arc<Endpoint>> = Vec::new();
    let mut attempts = 0usize;
    let mut last_failure: Option<Failure> = None;
    // The last failed attempt's time: not a failed-over attempt if its answer is relayed.
    let mut last_took = Duration::ZERO;
    let mut prev: Option<(Arc<Endpoint>, &'static str)> = None;
    for pass in 0..2 {
        // Pass 1 only walks what pass 0 skipped (and never skips again).
        let second = match (pass, attempts) {
            (0, _) => Vec::new(),
            (_, 0) => std::mem::take(&mut skipped),
            _ => break,
        };
        let list: &[Arc<Endpoint>] = if pass == 0 { candidates } else { &second };
        for (i, ep) in list.iter().enumerate() {
            if attempts >= max_attempts {
                break;
            }
            let breaker = breaker_of(ep);
            let admit = match (&breaker, policy, pass) {
                (Some(b), Some(_), 0) => b.admit(),
                _ => Admit::Yes,
            };
            if admit == Admit::No {
                tracing::debug!(request_id = ?request_id, route = %route.id, endpoint = %ep.id, "endpoint skipped: circuit open");
                skipped.push(ep.clone());
                if prev.is_none() {
                    prev = Some((ep.clone(), "circuit_open"));
                }
                continue;
            }
            if let Some((from, reason)) = prev.take() {
                metrics::failover(&route.id, &from.id, &ep.id, reason);
                tracing::info!(request_id = ?request_id, route = %route.id, from = %from.id, to = %ep.id, reason, "failover");
                if let Some(rec) = seen.record.as_deref_mut() {
                    rec.failovers.push(super::record::Failover {
                        from: from.id.clone(),
                        to: ep.id.clone(),
                        reason,
                        attempt: attempts + 1,
                        at_ms: call_ms(seen.started),
                    });
                }
            }
            // Another attempt may follow this one: then the latency threshold and the
            // first-event check apply.
            let more = attempts + 1 < max_attempts
                && list[i + 1..]
                    .iter()
                    .any(|next| breaker_of(next).map_or(true, |b| b.state() != State::Open));
            attempts += 1;
            if let Some(rec) = seen.record.as_deref_mut() {
                rec.attempts.push(ep.id.clone());
            }
            seen.endpoint = Some(ep.clone());
            let started = Instant::now();
            let result = attempt(runtime, route, request_id, ep, &out, policy, more).await;
            let took = started.elapsed();
            let probe = admit == Admit::Probe;
            let settings = policy.map(|p| &p.breaker);
            match result {
                Ok((head, relay, ttfb)) => {
                    seen.upstream += ttfb;
                    if let Some(b) = &breaker {
                        b.record(true, Some(ttfb), probe, settings);
                    }
                    return Ok(Accepted {
                        head,
                        relay,
                        endpoint: ep.clone(),
                    });
                }
                Err(failure) => {
                    seen.upstream += took;
                    seen.upstream_failed += took;
                    last_took = took;
                    if let Some(b) = &breaker {
                        b.record(false, None, probe, settings);
                    }
                    tracing::info!(request_id = ?request_id, route = %route.id, endpoint = %ep.id, reason = failure.reason, attempt = attempts, "attempt failed");
                    prev = Some((ep.clone(), failure.reason));
                    last_failure = Some(failure);
                }
            }
        }
    }
    match last_failure {
        Some(f) => f.outcome.map(|(head, relay)| {
            seen.upstream_failed = seen.upstream_failed.saturating_sub(last_took);
            Accepted {
                head,
                relay,
                endpoint: seen
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| route.primary().clone()),
            }
        }),
        None => Err(ProxyError::BuildRequest(format!(
            "route `{}` has no endpoint to try",
            route.id
        ))),
    }
}

/// Milliseconds since the call started.
fn call_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// One attempt. `Ok` = accept this answer (success, or a final answer the policy does not
/// retry); `Err` = fail over if possible. `more`: another attempt may follow.
async fn attempt(
    runtime: &Runtime,
    route: &Route,
    request_id: &http::HeaderValue,
    ep: &Arc<Endpoint>,
    out: &Outgoing<'_>,
    policy: Option<&FailoverPolicy>,
    more: bool,
) -> Result<(http::response::Parts, RelayBody<Upstream>, Duration), Failure> {
    let fail = |reason: &'static str, err: ProxyError| Failure {
        reason,
        outcome: Err(err),
    };
    let req = build(route, request_id, ep, out).map_err(|e| fail("connect_error", e))?;
    let client = runtime.upstreams.client(&ep.id).ok_or_else(|| {
        fail(
            "connect_error",
            ProxyError::BuildRequest(format!("no client for `{}`", ep.id)),
        )
    })?;
    let started = Instant::now();
    let deadline = started + ep.total_timeout;
    let mut first_byte = ep.first_byte_timeout.min(ep.total_timeout);
    let mut latency_cut = false;
    if let (true, Some(t)) = (more, policy.and_then(|p| p.latency_threshold)) {
        if t < first_byte {
            first_byte = t;
            latency_cut = true;
        }
    }
    let resp = match tokio::time::timeout(first_byte, client.request(req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let connect = e.is_connect();
            let err = classify_error(ep, e);
            let reason = match (&err, connect) {
                (ProxyError::UpstreamTimeout { .. }, _) => "timeout",
                (_, true) => "connect_error",
                _ => "reset",
            };
            return Err(fail(reason, err));
        }
        Err(_) => {
            return Err(fail(
                if latency_cut { "latency" } else { "timeout" },
                ProxyError::UpstreamTimeout {
                    endpoint: ep.id.clone(),
                    timeout_ms: duration_ms(first_byte),
                },
            ))
        }
    };
    let ttfb = started.elapsed();
    metrics::upstream_ttfb(&ep.id, ttfb);
    let (mut parts, body) = resp.into_parts();
    super::headers::strip_hop_by_hop(&mut parts.headers);
    let status = parts.status.as_u16();
    let relay = |prefix: Option<Bytes>, body: Incoming| {
        RelayBody::new(Prefixed::new(prefix, body), deadline, ep.total_timeout)
    };
    let retried = policy.is_some_and(|p| p.retries_status(status));
    if retried || (policy.is_none() && status >= 500) {
        // Counted as the endpoint's failure; relayed if no other attempt follows.
        return Err(Failure {
            reason: "status",
            outcome: Ok((parts, relay(None, body))),
        });
    }
    if more && parts.status.is_success() && out.stream && super::is_sse(&parts.headers) {
        let left = deadline.saturating_duration_since(Instant::now());
        let peeked = tokio::time::timeout(left.min(first_byte), first_event(body)).await;
        return match peeked {
            Ok(Ok((prefix, body, false))) => Ok((parts, relay(Some(prefix), body), ttfb)),
            Ok(Ok((prefix, body, true))) => Err(Failure {
                reason: "stream_error",
                outcome: Ok((parts, relay(Some(prefix), body))),
            }),
            Ok(Err(e)) => Err(fail(
                "reset",
                ProxyError::UpstreamRequest {
                    endpoint: ep.id.clone(),
                    detail: e.to_string(),
                },
            )),
            Err(_) => Err(fail(
                if latency_cut { "latency" } else { "timeout" },
                ProxyError::UpstreamTimeout {
                    endpoint: ep.id.clone(),
                    timeout_ms: duration_ms(first_byte),
                },
            )),
        };
    }
    Ok((parts, relay(None, body), ttfb))
}

/// The upstream request for one endpoint.
fn build(
    route: &Route,
    request_id: &http::HeaderValue,
    ep: &Endpoint,
    out: &Outgoing<'_>,
) -> Result<Request<Full<Bytes>>, ProxyError> {
    let uri = upstream_uri(ep, out.path_and_query)?;
    let mut headers = out.headers.clone();
    if route.auth == AuthMode::Virtual {
        inject_provider_key(&mut headers, ep);
    }
    for (name, value) in ep.headers.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(REQUEST_ID, request_id.clone());
    let body = match out.model.and_then(|m| ep.mapped_model(m)) {
        Some(mapped) => remap_model(&out.body, mapped)?,
        None => out.body.clone(),
    };
    if body.len() != out.body.len() {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    let mut up = Request::builder()
        .method(out.method.clone())
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| ProxyError::BuildRequest(e.to_string()))?;
    *up.headers_mut() = headers;
    Ok(up)
}

/// The body with `model` replaced.
fn remap_model(body: &Bytes, model: &str) -> Result<Bytes, ProxyError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ProxyError::InvalidJson(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("model".into(), model.into());
    }
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| ProxyError::BuildRequest(e.to_string()))
}

/// Read an SSE body until its first complete event (or `PEEK_LIMIT` bytes, or its end):
/// the bytes read, the rest of the body, and whether that first event is a provider error
/// (OpenAI `{"error": ...}` data, Anthropic `event: error` / `"type": "error"`).
async fn first_event(mut body: Incoming) -> Result<(Bytes, Incoming, bool), hyper::Error> {
    let mut buf = BytesMut::new();
    loop {
        if buf.len() >= PEEK_LIMIT || has_event_end(&buf) {
            break;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    let prefix = buf.freeze();
    let error = is_error_event(&prefix);
    Ok((prefix, body, error))
}

fn has_event_end(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(4).any(|w| w == b"\r\n\r\n")
}

fn is_error_event(bytes: &[u8]) -> bool {
    let mut dec = crate::sse::SseDecoder::new();
    let mut frames = dec.feed_vec(bytes).unwrap_or_default();
    if frames.is_empty() {
        frames = dec.finish();
    }
    let Some(ev) = frames.iter().find_map(|f| f.event()) else {
        return false;
    };
    if ev.event.as_deref() == Some("error") {
        return true;
    }
    match serde_json::from_str::<serde_json::Value>(&ev.data) {
        Ok(v) => v.get("error").is_some_and(|e| !e.is_null()) || v["type"] == "error",
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_are_recognised() {
        assert!(is_error_event(
            b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"
        ));
        assert!(is_error_event(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n"
        ));
        assert!(!is_error_event(
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
        ));
        assert!(!is_error_event(
            b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
        ));
        assert!(!is_error_event(b": ping\n\n"));
    }

    #[test]
    fn model_is_remapped_in_place() {
        let b = Bytes::from_static(br#"{"model":"gpt-4o","messages":[]}"#);
        let out = remap_model(&b, "gpt-4o-eu").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o-eu");
        assert_eq!(v["messages"], serde_json::json!([]));
    }
}
