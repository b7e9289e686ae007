//! The data plane's error type and its single conversion into a provider-shaped response.
//!
//! Every failure of a proxied call becomes a `ProxyError`; `into_response` is the only place
//! where an error turns into a status code and a client body. Bodies are fixed strings in the
//! provider's error shape (OpenAI `{"error":{...}}`, Anthropic `{"type":"error",...}`);
//! details go to logs, never to the client.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::body::{full, ProxyBody};

/// Which provider's error shape the client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    OpenAi,
    Anthropic,
}

impl ErrorShape {
    /// Anthropic shape for Anthropic API paths, OpenAI shape otherwise.
    pub fn for_path(path: &str) -> ErrorShape {
        if path.starts_with("/v1/messages") || path.starts_with("/v1/complete") {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }
}

/// Everything that can end a proxied call before the upstream response is relayed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("failed to read request body: {0}")]
    BodyRead(String),
    #[error("request body not received within {after_ms} ms")]
    BodyTimeout { after_ms: u128 },
    #[error("invalid JSON in request body: {0}")]
    InvalidJson(String),
    #[error("request body repeats a key within one JSON object")]
    DuplicateKey,
    #[error("missing API key")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("key `{key}` may not use route `{route}`")]
    KeyNotAllowed { key: String, route: String },
    #[error("no route for path")]
    NoRoute,
    #[error("path is not a supported provider API")]
    UnknownPath,
    #[error("could not connect to endpoint `{endpoint}`: {detail}")]
    UpstreamConnect { endpoint: String, detail: String },
    #[error("endpoint `{endpoint}` did not answer within {timeout_ms} ms")]
    UpstreamTimeout { endpoint: String, timeout_ms: u64 },
    #[error("request to endpoint `{endpoint}` failed: {detail}")]
    UpstreamRequest { endpoint: String, detail: String },
    #[error("could not build upstream request: {0}")]
    BuildRequest(String),
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("request is not valid for its API: {0}")]
    InvalidRequest(String),
    #[error("request denied by policy rules {rules:?}")]
    PolicyDenied { status: u16, rules: Vec<String> },
    #[error("response denied by policy rules {rules:?}")]
    ResponseDenied { status: u16, rules: Vec<String> },
    #[error("upstream response cannot be inspected: {0}")]
    Uninspectable(&'static str),
}

impl ProxyError {
    /// The HTTP status the client receives. Exhaustive: a new variant must choose one.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ProxyError::DuplicateKey => StatusCode::BAD_REQUEST,
            ProxyError::MissingKey => StatusCode::UNAUTHORIZED,
            ProxyError::InvalidKey => StatusCode::UNAUTHORIZED,
            ProxyError::KeyNotAllowed { .. } => StatusCode::FORBIDDEN,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::UnknownPath => StatusCode::NOT_FOUND,
            ProxyError::UpstreamConnect { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UpstreamRequest { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::BuildRequest(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::PolicyDenied { status, .. } | ProxyError::ResponseDenied { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ProxyError::Uninspectable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Stable, low-cardinality label for metrics and logs; also the `code` in error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BodyTooLarge { .. } => "request_too_large",
            ProxyError::BodyRead(_) => "request_body_unreadable",
            ProxyError::BodyTimeout { .. } => "request_body_timeout",
            ProxyError::InvalidJson(_) => "invalid_json",
            ProxyError::DuplicateKey => "duplicate_json_key",
            ProxyError::MissingKey => "missing_api_key",
            ProxyError::InvalidKey => "invalid_api_key",
            ProxyError::KeyNotAllowed { .. } => "key_not_allowed",
            ProxyError::NoRoute => "no_route",
            ProxyError::UnknownPath => "unknown_path",
            ProxyError::UpstreamConnect { .. } => "upstream_connect_error",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::UpstreamRequest { .. } => "upstream_error",
            ProxyError::BuildRequest(_) => "internal_error",
            ProxyError::ShuttingDown => "shutting_down",
            ProxyError::InvalidRequest(_) => "invalid_request",
            ProxyError::PolicyDenied { .. } => "policy_violation",
            ProxyError::ResponseDenied { .. } => "response_policy_violation",
            ProxyError::Uninspectable(_) => "response_uninspectable",
        }
    }

    /// Fixed, client-safe message (never contains request content or secrets).
    fn client_message(&self) -> String {
        match self {
            ProxyError::BodyTooLarge { limit } => {
                format!("Request body exceeds the limit of {limit} bytes.")
            }
            ProxyError::BodyRead(_) => "The request body could not be read.".into(),
            ProxyError::BodyTimeout { after_ms } => {
                format!("The request body was not received within {after_ms} ms.")
            }
            ProxyError::InvalidJson(_) => "The request body is not valid JSON.".into(),
            ProxyError::DuplicateKey => "The request body repeats a key within one JSON object; \
                 which value the provider would read is ambiguous, so it cannot be guarded."
                .into(),
            ProxyError::MissingKey => {
                "Missing API key: send `Authorization: Bearer <key>` or `x-api-key`.".into()
            }
            ProxyError::InvalidKey => "Invalid API key.".into(),
            ProxyError::KeyNotAllowed { .. } => "This API key may not use this route.".into(),
            ProxyError::NoRoute => "No route is configured for this path or model.".into(),
            ProxyError::UnknownPath => "This path is not a supported provider API.".into(),
            ProxyError::UpstreamConnect { endpoint, .. } => {
                format!("Could not connect to upstream endpoint `{endpoint}`.")
            }
            ProxyError::UpstreamTimeout {
                endpoint,
                timeout_ms,
            } => format!("Upstream endpoint `{endpoint}` did not answer within {timeout_ms} ms."),
            ProxyError::UpstreamRequest { endpoint, .. } => {
                format!("The request to upstream endpoint `{endpoint}` failed.")
            }
            ProxyError::BuildRequest(_) => "Internal error building the upstream request.".into(),
            ProxyError::ShuttingDown => "The server is shutting down.".into(),
            // The normalization error names the field, never its content.
            ProxyError::InvalidRequest(detail) => format!("Invalid request: {detail}."),
            ProxyError::PolicyDenied { rules, .. } => {
                format!("Request blocked by policy (rules: {}).", rules.join(", "))
            }
            ProxyError::ResponseDenied { rules, .. } => format!(
                "The provider's answer was blocked by policy (rules: {}).",
                rules.join(", ")
            ),
            ProxyError::Uninspectable(why) => {
                format!("The provider's answer could not be inspected ({why}).")
            }
        }
    }

    /// Provider error `type` for this error.
    fn error_type(&self, shape: ErrorShape) -> &'static str {
        let status = self.status_code();
        match (shape, status.as_u16()) {
            (ErrorShape::OpenAi, 401) => "invalid_request_error",
            (ErrorShape::OpenAi, 403) => "permission_error",
            (ErrorShape::OpenAi, 400 | 404 | 413) => "invalid_request_error",
            (ErrorShape::OpenAi, _) => "server_error",
            (ErrorShape::Anthropic, 401) => "authentication_error",
            (ErrorShape::Anthropic, 403) => "permission_error",
            (ErrorShape::Anthropic, 404) => "not_found_error",
            (ErrorShape::Anthropic, 413) => "request_too_large",
            (ErrorShape::Anthropic, 400) => "invalid_request_error",
            (ErrorShape::Anthropic, 503) => "overloaded_error",
            (ErrorShape::Anthropic, _) => "api_error",
        }
    }

    /// Build the client response: status, provider-shaped JSON body.
    pub fn into_response(&self, shape: ErrorShape) -> Response<ProxyBody> {
        error_response(
            self.status_code(),
            shape,
            self.error_type(shape),
            self.code(),
            &self.client_message(),
        )
    }
}

/// A provider-shaped JSON error response.
pub fn error_response(
    status: StatusCode,
    shape: ErrorShape,
    error_type: &str,
    code: &str,
    message: &str,
) -> Response<ProxyBody> {
    let body = match shape {
        ErrorShape::OpenAi => serde_json::json!({
            "error": {"message": message, "type": error_type, "param": null, "code": code}
        }),
        ErrorShape::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": error_type, "message": message}
        }),
    };
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("x-parapet-error", HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_path() {
        assert_eq!(ErrorShape::for_path("/v1/messages"), ErrorShape::Anthropic);
        assert_eq!(
            ErrorShape::for_path("/v1/chat/completions"),
            ErrorShape::OpenAi
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::BodyTooLarge { limit: 1 }.status_code(), 413);
        assert_eq!(ProxyError::InvalidKey.status_code(), 401);
        let t = ProxyError::UpstreamTimeout {
            endpoint: "e".into(),
            timeout_ms: 5,
        };
        assert_eq!(t.status_code(), 504);
        let c = ProxyError::UpstreamConnect {
            endpoint: "e".into(),
            detail: "refused".into(),
        };
        assert_eq!(c.status_code(), 502);
    }
}
