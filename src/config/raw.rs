//! Raw configuration file types: exactly what `parapet.toml` may contain (unknown keys are errors).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Parapet-issued virtual keys (stored as SHA-256 hashes).
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub policies: RawPolicies,
    #[serde(default)]
    pub store: super::store::RawStore,
    #[serde(default)]
    pub failover_policies: Vec<super::failover::RawFailoverPolicy>,
}

/// `[policies]`: where guardrail policy files live and how they are reloaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicies {
    /// Directory of `*.toml` / `*.json` policy files, relative to the config file.
    pub dir: String,
    /// Watch the directory and reload on change.
    pub watch: bool,
    /// Wait this long after the last change before reloading.
    pub debounce_ms: u64,
    /// Also re-check the directory this often (volumes that send no change events).
    pub poll_interval_ms: u64,
}

impl Default for RawPolicies {
    fn default() -> Self {
        RawPolicies {
            dir: "policies".into(),
            watch: true,
            debounce_ms: 300,
            poll_interval_ms: 5_000,
        }
    }
}

/// `[server]`: listeners, limits, drain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub admin_listen: String,
    pub max_body_bytes: u64,
    /// `forward` (default) or `reject` for paths that are not a known provider API.
    pub unknown_paths: String,
    /// How long in-flight requests and streams may run after SIGTERM/SIGINT.
    pub drain_timeout_ms: u64,
    /// How long a client may take to send a request body once its headers arrived (408
    /// after that): a stalled or trickling upload does not hold a connection and a task
    /// forever.
    pub request_body_timeout_ms: u64,
    /// Largest non-streamed answer read whole for response policies (502 above it: an
    /// answer the guardrails cannot read is not relayed unread).
    pub max_response_bytes: u64,
    /// Root certificates used to verify upstream TLS: `webpki` (bundled) or `native`.
    pub upstream_roots: String,
    /// Add `x-parapet-overhead-ms` (Parapet's own time until the response head) to every
    /// proxied response.
    pub overhead_header: bool,
    /// Terminate TLS on the data-plane listener.
    pub tls: Option<RawTls>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            max_body_bytes: 10 * 1024 * 1024,
            unknown_paths: "forward".into(),
            drain_timeout_ms: 30_000,
            request_body_timeout_ms: 60_000,
            max_response_bytes: 100 * 1024 * 1024,
            upstream_roots: "webpki".into(),
            overhead_header: false,
            tls: None,
        }
    }
}

/// `[server.tls]`: terminate TLS on the data-plane listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

/// `[log]`: log output format (`text` or `json`); the level comes from `RUST_LOG`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
        }
    }
}

/// `[[endpoints]]`: one upstream provider endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub id: String,
    /// `openai`, `anthropic` or `openai_compatible`.
    pub kind: String,
    pub base_url: String,
    /// Environment variable holding the provider key injected for `virtual` routes.
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_first_byte_timeout_ms")]
    pub first_byte_timeout_ms: u64,
    #[serde(default = "default_total_timeout_ms")]
    pub total_timeout_ms: u64,
    /// Model names rewritten when a request is sent to this endpoint (e.g. a fallback that
    /// serves the same model under another name): requested name → this endpoint's name.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_first_byte_timeout_ms() -> u64 {
    300_000
}
fn default_total_timeout_ms() -> u64 {
    600_000
}

/// `[[routes]]`: which requests go to which endpoint, and how they authenticate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub id: String,
    /// Path prefix to match (default: every path).
    pub path_prefix: Option<String>,
    /// Model names to match; a trailing `*` matches a prefix (default: any model).
    pub models: Option<Vec<String>>,
    /// Primary endpoint id.
    pub endpoint: String,
    /// `passthrough` (default) or `virtual`.
    #[serde(default = "default_auth")]
    pub auth: String,
}

fn default_auth() -> String {
    "passthrough".into()
}

/// `[[keys]]`: a Parapet virtual key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    /// `sha256:<64 hex>` or bare hex of the key (`parapet hash-key` prints it).
    pub sha256: String,
    /// Routes this key may use (default: all virtual routes).
    pub routes: Option<Vec<String>>,
    /// Workspace the key is bound to (default `default`).
    pub workspace: Option<String>,
    /// Scopes (default all: proxy, ingest, evidence:read, evidence:write).
    pub scopes: Option<Vec<String>>,
}
