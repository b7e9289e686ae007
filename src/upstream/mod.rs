//! Upstream side: one pooled hyper-util client per endpoint (rustls, HTTP/1.1 and h2 via ALPN),
//! upstream URL building, classification of client errors into `ProxyError`s, and one
//! circuit breaker per endpoint (`breaker`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub mod breaker;

pub use breaker::Breaker;

use crate::config::{Config, Endpoint, RootStore};
use crate::error::ProxyError;
use crate::wire::ClockedConnector;

/// The pooled HTTP client used for one endpoint.
pub type HttpClient = Client<HttpsConnector<ClockedConnector<HttpConnector>>, Full<Bytes>>;

/// Clients and breakers for every endpoint of a configuration, keyed by endpoint id.
pub struct Upstreams {
    clients: HashMap<String, HttpClient>,
    breakers: HashMap<String, Arc<Breaker>>,
}

impl Upstreams {
    /// Build one client per endpoint. Fails only if the TLS root store cannot be loaded.
    pub fn new(config: &Config) -> Result<Upstreams, String> {
        let tls = client_tls_config(config.server.upstream_roots)?;
        let mut clients = HashMap::new();
        let mut breakers = HashMap::new();
        for ep in &config.endpoints {
            clients.insert(ep.id.clone(), build_client(ep, tls.clone()));
            breakers.insert(ep.id.clone(), Breaker::new(&ep.id));
        }
        Ok(Upstreams { clients, breakers })
    }

    /// The breaker of an endpoint id.
    pub fn breaker(&self, endpoint_id: &str) -> Option<&Arc<Breaker>> {
        self.breakers.get(endpoint_id)
    }

    /// Every endpoint's breaker, sorted by endpoint id.
    pub fn breakers(&self) -> Vec<(&str, &Arc<Breaker>)> {
        let mut v: Vec<(&str, &Arc<Breaker>)> =
            self.breakers.iter().map(|(k, b)| (k.as_str(), b)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The client for an endpoint id.
    pub fn client(&self, endpoint_id: &str) -> Option<&HttpClient> {
        self.clients.get(endpoint_id)
    }
}

fn client_tls_config(roots: RootStore) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    match roots {
        RootStore::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        RootStore::Native => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // Skip individual unparsable system certificates, as browsers do.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err("no native root certificates could be loaded".into());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(config)
}

fn build_client(ep: &Endpoint, tls: rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(ep.connect_timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(ClockedConnector(http));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// The upstream URI for a client request path (with query). A `base_url` that already ends
/// in `/v1` does not get the request's leading `/v1` a second time.
pub fn upstream_uri(ep: &Endpoint, path_and_query: &str) -> Result<Uri, ProxyError> {
    let base = ep.base_path.as_str();
    let rest = if base.ends_with("/v1")
        && (path_and_query.starts_with("/v1/")
            || path_and_query == "/v1"
            || path_and_query.starts_with("/v1?"))
    {
        &path_and_query[3..]
    } else {
        path_and_query
    };
    let mut pq = String::with_capacity(base.len() + rest.len() + 1);
    pq.push_str(base);
    if !rest.starts_with('/') {
        pq.push('/');
    }
    pq.push_str(rest);
    Uri::builder()
        .scheme(ep.scheme.clone())
        .authority(ep.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| ProxyError::BuildRequest(e.to_string()))
}

/// Classify a client error: connect failures (502, or 504 when the connect timed out) vs
/// failures after the connection was made (502).
pub fn classify_error(ep: &Endpoint, err: hyper_util::client::legacy::Error) -> ProxyError {
    let detail = error_chain(&err);
    if err.is_connect() {
        if is_timeout(&err) {
            return ProxyError::UpstreamTimeout {
                endpoint: ep.id.clone(),
                timeout_ms: ep.connect_timeout.as_millis() as u64,
            };
        }
        return ProxyError::UpstreamConnect {
            endpoint: ep.id.clone(),
            detail,
        };
    }
    ProxyError::UpstreamRequest {
        endpoint: ep.id.clone(),
        detail,
    }
}

fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if e.to_string().contains("timed out") || e.to_string().contains("timeout") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The error and its sources as one line (for logs only).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ep(base: &str) -> Endpoint {
        let uri: Uri = base.parse().unwrap();
        Endpoint {
            id: "e".into(),
            kind: crate::config::EndpointKind::OpenAi,
            scheme: uri.scheme().unwrap().clone(),
            authority: uri.authority().unwrap().clone(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            api_key: None,
            api_key_env: None,
            headers: Default::default(),
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(1),
            models: Vec::new(),
        }
    }

    #[test]
    fn builds_uris_without_doubling_v1() {
        let e = ep("https://api.openai.com");
        assert_eq!(
            upstream_uri(&e, "/v1/chat/completions").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        let e = ep("https://api.openai.com/v1/");
        assert_eq!(
            upstream_uri(&e, "/v1/models?limit=2").unwrap(),
            "https://api.openai.com/v1/models?limit=2"
        );
        let e = ep("http://127.0.0.1:9/proxy");
        assert_eq!(
            upstream_uri(&e, "/v1/messages").unwrap(),
            "http://127.0.0.1:9/proxy/v1/messages"
        );
        let e = ep("https://x.example/v1");
        assert_eq!(
            upstream_uri(&e, "/v1beta/models").unwrap(),
            "https://x.example/v1/v1beta/models"
        );
    }
}
