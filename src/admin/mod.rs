//! The admin listener's service: `/healthz` (process alive), `/readyz` (accepting traffic),
//! `/metrics` (Prometheus text), `GET /admin/status` (build, uptime, active policy
//! snapshot, last reload), `GET /admin/endpoints` (each endpoint's breaker state, error rate
//! and time-to-first-byte percentiles) and `POST /admin/reload` (synchronous policy reload).
//!
//! The admin listener has no authentication: bind it to a private address.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::{full, ProxyBody};
use crate::config::ConfigError;
use crate::metrics::{self, METRICS};
use crate::reload::{self, Outcome, Trigger};
use crate::runtime::State;

/// Handle one admin request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#),
        (&Method::GET, "/readyz") => {
            if state.is_ready() {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            } else {
                json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not_ready"}"#)
            }
        }
        (&Method::GET, "/metrics") => prometheus_text(),
        (&Method::GET, "/admin/status") => json_value(StatusCode::OK, &status(&state)),
        (&Method::GET, "/admin/endpoints") => json_value(StatusCode::OK, &endpoints(&state)),
        (&Method::POST, "/admin/reload") => {
            let (code, body) = reload_answer(reload::reload(&state, Trigger::Admin).await);
            json_value(code, &body)
        }
        (_, "/healthz" | "/readyz" | "/metrics" | "/admin/status" | "/admin/endpoints") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":{"code":"method_not_allowed","message":"use GET"}}"#,
        ),
        (_, "/admin/reload") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":{"code":"method_not_allowed","message":"use POST"}}"#,
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"no such admin endpoint"}}"#,
        ),
    }
}

/// The `/admin/endpoints` document: per endpoint, the breaker state and the counts over
/// the longest `window_seconds` of the failover policies naming it (60 s when none does).
pub fn endpoints(state: &State) -> Value {
    let rt = state.snapshot();
    let window_of = |id: &str| {
        rt.config
            .routes
            .iter()
            .filter_map(|r| r.failover.as_ref().map(|f| (r, f)))
            .filter(|(r, _)| r.endpoints.iter().any(|e| e.id == id))
            .map(|(_, f)| f.breaker.window)
            .max()
            .unwrap_or(std::time::Duration::from_secs(60))
    };
    let list: Vec<Value> = rt
        .upstreams
        .breakers()
        .into_iter()
        .map(|(id, b)| {
            let window = window_of(id);
            let mut v = serde_json::to_value(b.health(window)).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("window_seconds".into(), window.as_secs().into());
            }
            v
        })
        .collect();
    json!({ "endpoints": list })
}

/// The `/admin/status` document.
pub fn status(state: &State) -> Value {
    let rt = state.snapshot();
    let reloads = state.reloads.status();
    let files: Vec<String> = rt
        .policies
        .files()
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let last_reload = reloads.last.map(|l| {
        json!({
            "result": l.result,
            "trigger": l.trigger.as_str(),
            "at": reload::rfc3339(l.at),
            "at_unix": reload::unix_seconds(l.at),
            "errors": errors_json(&l.errors),
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.uptime().as_secs(),
        "ready": state.is_ready(),
        "policies": {
            "version": rt.policies.version(),
            "dir": rt.config.policies.dir.display().to_string(),
            "watch": rt.config.policies.watch,
            "files": files,
            "rules": rt.policies.rules().len(),
            "loaded_at": reload::rfc3339(reloads.loaded_at),
            "loaded_at_unix": reload::unix_seconds(reloads.loaded_at),
            "last_reload": last_reload,
        },
        "config": {
            "source": rt.config.source.display().to_string(),
            "routes": rt.config.routes.len(),
            "endpoints": rt.config.endpoints.len(),
        },
    })
}

/// Status and body answering `POST /admin/reload`.
pub fn reload_answer(outcome: Outcome) -> (StatusCode, Value) {
    match outcome {
        Outcome::Swapped { version, previous } => (
            StatusCode::OK,
            json!({"result": "ok", "changed": true, "version": version, "previous_version": previous}),
        ),
        Outcome::Unchanged { version } => (
            StatusCode::OK,
            json!({"result": "ok", "changed": false, "version": version}),
        ),
        Outcome::Rejected {
            errors,
            active_version,
        } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "result": "error",
                "errors": errors_json(&errors),
                "active_version": active_version,
            }),
        ),
    }
}

fn errors_json(errors: &[ConfigError]) -> Value {
    errors
        .iter()
        .map(|e| json!({"file": e.file, "field": e.field, "message": e.message}))
        .collect()
}

fn prometheus_text() -> Response<ProxyBody> {
    match METRICS.render() {
        Ok(text) => {
            let mut resp = Response::new(full(text));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::TEXT_CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":{"code":"metrics_unavailable","message":"cannot encode metrics"}}"#,
            )
        }
    }
}

fn json_value(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    with_json(status, Bytes::from(body.to_string()))
}

fn json(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    with_json(status, Bytes::from_static(body.as_bytes()))
}

fn with_json(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
