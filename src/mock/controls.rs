//! Per-request behaviour controls of the mock, read from `x-mock-*` request headers, and provider-shaped error bodies.
//!
//! Every knob a test can turn on a single request lives here, so new faults (hang,
//! connection reset, cut mid-stream, error event first, ...) are added in one place:
//! add a header constant, a field on [`Controls`], parse it in [`Controls::from_headers`],
//! and apply it where the request is handled (`mod.rs::handle`) or where the streamed
//! body is produced (`body.rs`).
//!
//! | header | effect |
//! | --- | --- |
//! | `x-mock-status: 503` | answer with that status and a provider-shaped error body |
//! | `x-mock-body: <text>` | with `x-mock-status`: the exact error body to send instead |
//! | `x-mock-delay-ms: N` | wait N ms before sending the response head |
//! | `x-mock-chunk-delay-ms: N` | wait N ms between SSE events of a streamed answer |
//! | `x-mock-reply: <text>` | the assistant's reply text (default `You said: <last user text>`) |
//! | `x-mock-chunk-size: N` | characters per streamed text/argument delta (default 4) |
//! | `x-mock-tool-call: NAME` | answer with a call of tool NAME even without `weather` in the prompt |
//! | `x-mock-thinking: <text>` | Anthropic: a `thinking` block with that text (and a `signature`) before the answer |
//! | `x-mock-fault: hang` | never send a response head (until the client gives up) |
//! | `x-mock-fault: reset` | close the connection without a response (reset before the head) |
//! | `x-mock-fault: cut` | a streamed answer stops after `x-mock-cut-after` events (default 2) with a broken connection |
//! | `x-mock-fault: error-first` | a `200` SSE answer whose first event is a provider error (OpenAI `error` object, Anthropic `event: error` / `overloaded_error`) |
//!
//! The same faults can be set server-wide (for failover tests, where the client's headers
//! reach every endpoint): [`MockConfig::fault`](super::MockConfig), `MockUpstream::set_fault`,
//! or `PUT /__mock/fault` with `{"fault": "status"|"hang"|"reset"|"cut"|"error-first",
//! "status": 503, "rate": 0.3}` (`DELETE` clears it). A request's own `x-mock-*` headers win.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::body::MockBody;
use super::text::json_quote;

/// Header: respond with this status and a provider-shaped error body.
pub const STATUS: &str = "x-mock-status";
/// Header: exact error body to send with [`STATUS`].
pub const BODY: &str = "x-mock-body";
/// Header: delay in milliseconds before the response head.
pub const DELAY_MS: &str = "x-mock-delay-ms";
/// Header: delay in milliseconds between SSE events.
pub const CHUNK_DELAY_MS: &str = "x-mock-chunk-delay-ms";
/// Header: assistant reply text override.
pub const REPLY: &str = "x-mock-reply";
/// Header: characters per streamed delta.
pub const CHUNK_SIZE: &str = "x-mock-chunk-size";
/// Header: force a tool call with this tool name.
pub const TOOL_CALL: &str = "x-mock-tool-call";
/// Header: Anthropic extended thinking text shown before the answer.
pub const THINKING: &str = "x-mock-thinking";

/// Header: inject a connection-level fault (`hang`, `reset`, `cut`, `error-first`).
pub const FAULT: &str = "x-mock-fault";
/// Header: with `x-mock-fault: cut`, how many SSE events are sent before the cut.
pub const CUT_AFTER: &str = "x-mock-cut-after";
/// Events sent before a `cut` fault when `x-mock-cut-after` is absent.
pub const DEFAULT_CUT_AFTER: usize = 2;

/// A connection-level fault (beyond an error status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Never answer (the response head never comes).
    Hang,
    /// Close the connection without any response.
    Reset,
    /// Stop a streamed body after this many events, breaking the connection.
    Cut(usize),
    /// Answer `200` with an SSE stream whose first event is a provider error.
    ErrorFirst,
}

impl Fault {
    /// Parses `hang`, `reset`, `cut`, `error-first` (`cut_after` applies to `cut`).
    pub fn parse(name: &str, cut_after: usize) -> Option<Fault> {
        match name.trim().to_ascii_lowercase().as_str() {
            "hang" => Some(Fault::Hang),
            "reset" => Some(Fault::Reset),
            "cut" => Some(Fault::Cut(cut_after)),
            "error-first" | "error_first" => Some(Fault::ErrorFirst),
            _ => None,
        }
    }
}

/// Default number of characters per streamed delta.
pub const DEFAULT_CHUNK_SIZE: usize = 4;
/// Upper bound for any header-requested delay, so a typo cannot hang a test run.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Behaviour switches for one request (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controls {
    /// Fault status to answer with instead of a normal response.
    pub status: Option<StatusCode>,
    /// Verbatim error body for [`Controls::status`].
    pub body: Option<Bytes>,
    /// Delay before the response head (added to the server-wide latency).
    pub delay: Duration,
    /// Delay between streamed SSE events.
    pub chunk_delay: Duration,
    /// Reply text override.
    pub reply: Option<String>,
    /// Characters per streamed delta (>= 1).
    pub chunk_size: usize,
    /// Forced tool call name.
    pub tool_call: Option<String>,
    /// Anthropic thinking text.
    pub thinking: Option<String>,
    /// Connection-level fault.
    pub fault: Option<Fault>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            status: None,
            body: None,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            reply: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            tool_call: None,
            thinking: None,
            fault: None,
        }
    }
}

impl Controls {
    /// Reads the `x-mock-*` headers; malformed values are ignored (the default applies).
    pub fn from_headers(headers: &HeaderMap) -> Controls {
        let mut c = Controls::default();
        if headers.is_empty() {
            return c;
        }
        c.status = number(headers, STATUS)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(|n| StatusCode::from_u16(n).ok());
        c.body = headers
            .get(BODY)
            .map(|v| Bytes::copy_from_slice(v.as_bytes()));
        c.delay = millis(headers, DELAY_MS);
        c.chunk_delay = millis(headers, CHUNK_DELAY_MS);
        c.reply = text(headers, REPLY);
        if let Some(n) = number(headers, CHUNK_SIZE) {
            c.chunk_size = usize::try_from(n).unwrap_or(DEFAULT_CHUNK_SIZE).max(1);
        }
        c.tool_call = text(headers, TOOL_CALL).filter(|s| !s.is_empty());
        c.thinking = text(headers, THINKING).filter(|s| !s.is_empty());
        let cut_after = number(headers, CUT_AFTER)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_CUT_AFTER);
        c.fault = text(headers, FAULT).and_then(|f| Fault::parse(&f, cut_after));
        c
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn millis(headers: &HeaderMap, name: &str) -> Duration {
    number(headers, name)
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
        .min(MAX_DELAY)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The first (error) event of an `error-first` stream, in the provider's SSE shape.
pub fn error_event(flavor: Flavor) -> Bytes {
    match flavor {
        Flavor::OpenAi => Bytes::from_static(
            b"data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_error\"}}\n\n",
        ),
        Flavor::Anthropic => Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ),
    }
}

/// Which provider's error shape a path uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
}

impl Flavor {
    /// Anthropic for `/v1/messages…`, OpenAI for everything else.
    pub fn for_path(path: &str) -> Flavor {
        if path.starts_with("/v1/messages") {
            Flavor::Anthropic
        } else {
            Flavor::OpenAi
        }
    }
}

/// A provider-shaped error response; `body` (from `x-mock-body`) replaces the generated one.
pub fn error_response(
    flavor: Flavor,
    status: StatusCode,
    message: &str,
    body: Option<Bytes>,
) -> Response<MockBody> {
    let body = body.unwrap_or_else(|| Bytes::from(error_body(flavor, status, message)));
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The generated error JSON for `status` in the provider's shape.
pub fn error_body(flavor: Flavor, status: StatusCode, message: &str) -> String {
    let msg = json_quote(message);
    match flavor {
        Flavor::OpenAi => {
            let (kind, code) = match status.as_u16() {
                401 => ("invalid_request_error", "invalid_api_key"),
                403 => ("invalid_request_error", "forbidden"),
                404 => ("invalid_request_error", "not_found"),
                429 => ("rate_limit_error", "rate_limit_exceeded"),
                400..=499 => ("invalid_request_error", "invalid_request"),
                _ => ("server_error", "server_error"),
            };
            format!(
                r#"{{"error":{{"message":{msg},"type":"{kind}","param":null,"code":"{code}"}}}}"#
            )
        }
        Flavor::Anthropic => {
            let kind = match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            format!(r#"{{"type":"error","error":{{"type":"{kind}","message":{msg}}}}}"#)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_headers() {
        let mut h = HeaderMap::new();
        h.insert(STATUS, HeaderValue::from_static("503"));
        h.insert(BODY, HeaderValue::from_static("{}"));
        h.insert(DELAY_MS, HeaderValue::from_static("15"));
        h.insert(CHUNK_DELAY_MS, HeaderValue::from_static("2"));
        h.insert(REPLY, HeaderValue::from_static("hi there"));
        h.insert(CHUNK_SIZE, HeaderValue::from_static("0"));
        h.insert(TOOL_CALL, HeaderValue::from_static("lookup"));
        h.insert(FAULT, HeaderValue::from_static("cut"));
        h.insert(CUT_AFTER, HeaderValue::from_static("5"));
        let c = Controls::from_headers(&h);
        assert_eq!(c.fault, Some(Fault::Cut(5)));
        assert_eq!(c.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(c.body.as_deref(), Some(&b"{}"[..]));
        assert_eq!(c.delay, Duration::from_millis(15));
        assert_eq!(c.chunk_delay, Duration::from_millis(2));
        assert_eq!(c.reply.as_deref(), Some("hi there"));
        assert_eq!(c.chunk_size, 1, "chunk size is clamped to at least 1");
        assert_eq!(c.tool_call.as_deref(), Some("lookup"));
    }

    #[test]
    fn malformed_values_fall_back_to_defaults() {
        let mut h = HeaderMap::new();
        h.insert(STATUS, HeaderValue::from_static("abc"));
        h.insert(DELAY_MS, HeaderValue::from_static("-5"));
        h.insert(CHUNK_SIZE, HeaderValue::from_static("x"));
        h.insert(FAULT, HeaderValue::from_static("explode"));
        assert_eq!(Controls::from_headers(&h), Controls::default());
    }

    #[test]
    fn error_shapes() {
        let o: serde_json::Value = serde_json::from_str(&error_body(
            Flavor::OpenAi,
            StatusCode::TOO_MANY_REQUESTS,
            "slow \"down\"",
        ))
        .unwrap();
        assert_eq!(o["error"]["message"], "slow \"down\"");
        assert_eq!(o["error"]["type"], "rate_limit_error");
        assert_eq!(o["error"]["code"], "rate_limit_exceeded");
        let a: serde_json::Value = serde_json::from_str(&error_body(
            Flavor::Anthropic,
            StatusCode::SERVICE_UNAVAILABLE,
            "down",
        ))
        .unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "api_error");
        assert_eq!(a["error"]["message"], "down");
        assert_eq!(
            Flavor::for_path("/v1/messages?beta=true"),
            Flavor::Anthropic
        );
        assert_eq!(Flavor::for_path("/v1/chat/completions"), Flavor::OpenAi);
    }
}
