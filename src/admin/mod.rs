//! The admin listener's service: `/healthz` (process alive) and `/readyz` (accepting traffic).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{full, ProxyBody};
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
        (_, "/healthz" | "/readyz") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":{"code":"method_not_allowed","message":"use GET"}}"#,
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"no such admin endpoint"}}"#,
        ),
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
