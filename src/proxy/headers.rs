//! Header handling at the proxy boundary: hop-by-hop removal (RFC 9110 §7.6.1), request ids,
//! and provider credential injection for virtual-key routes.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{Endpoint, EndpointKind};

/// Header carrying the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Remove hop-by-hop headers: the fixed list, `Upgrade`, and every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP.iter() {
        headers.remove(n);
    }
    headers.remove(header::UPGRADE);
}

/// Prepare client headers for the upstream request: hop-by-hop, `Host` (the client sets it
/// from the upstream URI) and `Content-Length` (recomputed from the forwarded body) removed.
pub fn upstream_request_headers(mut headers: HeaderMap) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    headers
}

/// Replace the client's Parapet key with the endpoint's provider key, in the header form the
/// provider expects (`Authorization: Bearer` for OpenAI kinds, `x-api-key` for Anthropic).
pub fn inject_provider_key(headers: &mut HeaderMap, ep: &Endpoint) {
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-api-key");
    let Some(key) = &ep.api_key else { return };
    match ep.kind {
        EndpointKind::Anthropic => {
            headers.insert("x-api-key", key.header_value().clone());
        }
        EndpointKind::OpenAi | EndpointKind::OpenAiCompatible => {
            let mut bearer = Vec::with_capacity(key.header_value().len() + 7);
            bearer.extend_from_slice(b"Bearer ");
            bearer.extend_from_slice(key.header_value().as_bytes());
            if let Ok(mut v) = HeaderValue::from_bytes(&bearer) {
                v.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, v);
            }
        }
    }
}

/// The client's `x-request-id` if it is reasonable (1–200 visible ASCII chars), else a new
/// UUID v7 (time-ordered: the event store's `request_id` index keys then append instead of
/// landing on random pages).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let id = uuid::Uuid::now_v7();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buf).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-custom".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-custom", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn request_id_kept_or_generated() {
        let mut h = HeaderMap::new();
        let generated = request_id(&h);
        assert_eq!(generated.len(), 36);
        h.insert(REQUEST_ID, "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID, "has space".parse().unwrap());
        assert_ne!(request_id(&h), "has space");
    }
}
