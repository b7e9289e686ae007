//! Configuration: raw file types → validation that collects every error → the compiled `Config`.
//!
//! `load` reads the TOML file, applies `PARAPET_*` environment overrides, then validates
//! everything the file references (listen addresses, TLS files, endpoint URLs, provider key
//! variables, route and key references) and returns either a ready `Config` or the full list
//! of errors, each naming its file and field.

pub mod failover;
pub mod raw;
pub mod store;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

use crate::auth::KeyHash;
pub use raw::RawConfig;

/// One configuration problem: the file, the field path inside it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.message)
    }
}

/// All errors found while loading a configuration.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What to do with a path that is not one of the known provider APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPaths {
    /// Forward it to the matching route's endpoint without inspection.
    Forward,
    /// Answer 404 in the provider's error shape.
    Reject,
}

/// Which root certificates verify upstream TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootStore {
    Webpki,
    Native,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// TLS certificate chain and key files for the data-plane listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Validated `[server]` settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: u64,
    pub unknown_paths: UnknownPaths,
    pub drain_timeout: Duration,
    /// Deadline for receiving a request body (proxy and ingestion APIs), `408` after it.
    pub request_body_timeout: Duration,
    /// Largest non-streamed answer buffered for response policies.
    pub max_response_bytes: u64,
    pub upstream_roots: RootStore,
    /// Add `x-parapet-overhead-ms` to proxied responses.
    pub overhead_header: bool,
    pub tls: Option<TlsFiles>,
}

/// The API family an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    OpenAi,
    Anthropic,
    OpenAiCompatible,
}

impl EndpointKind {
    /// Stable lowercase name (config value, logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::OpenAi => "openai",
            EndpointKind::Anthropic => "anthropic",
            EndpointKind::OpenAiCompatible => "openai_compatible",
        }
    }
}

/// A provider credential: never printed.
#[derive(Clone)]
pub struct Secret(HeaderValue);

impl Secret {
    /// Wrap a credential value; `None` if it cannot be a header value.
    pub fn new(value: &str) -> Option<Secret> {
        let mut v = HeaderValue::from_str(value).ok()?;
        v.set_sensitive(true);
        Some(Secret(v))
    }

    /// The raw value as a header value (marked sensitive).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// A validated upstream endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub id: String,
    pub kind: EndpointKind,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix of `base_url`, without a trailing slash (may be empty).
    pub base_path: String,
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    pub headers: HeaderMap,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    /// Requested model → the model name this endpoint serves it under (`models`).
    pub models: Vec<(String, String)>,
}

impl Endpoint {
    /// The model name to send to this endpoint for a requested model, when it differs.
    pub fn mapped_model(&self, requested: &str) -> Option<&str> {
        self.models
            .iter()
            .find(|(from, _)| from == requested)
            .map(|(_, to)| to.as_str())
    }
}

/// How a route authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The client's own provider credential goes upstream unchanged.
    Passthrough,
    /// The client presents a Parapet key; the endpoint's provider key is injected.
    Virtual,
}

/// A model selector: exact name, or prefix when written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Exact(String),
    Prefix(String),
}

impl ModelPattern {
    fn parse(s: &str) -> ModelPattern {
        match s.strip_suffix('*') {
            Some(p) => ModelPattern::Prefix(p.to_string()),
            None => ModelPattern::Exact(s.to_string()),
        }
    }

    /// Whether `model` is selected by this pattern.
    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(m) => m == model,
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()),
        }
    }
}

/// A validated route. `endpoints` is ordered: the primary first, fallbacks after it.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub path_prefix: Option<String>,
    pub models: Vec<ModelPattern>,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub auth: AuthMode,
    /// Failover policy (`[[failover_policies]]`); `None` = primary only, no retries.
    pub failover: Option<Arc<failover::FailoverPolicy>>,
}

impl Route {
    /// Whether this route selects a request with this path and (optional) model.
    pub fn matches(&self, path: &str, model: Option<&str>) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if self.models.is_empty() {
            return true;
        }
        match model {
            Some(m) => self.models.iter().any(|p| p.matches(m)),
            None => false,
        }
    }

    /// The endpoint requests are sent to first.
    pub fn primary(&self) -> &Arc<Endpoint> {
        // Validation guarantees at least one endpoint per route.
        &self.endpoints[0]
    }
}

/// A validated virtual key.
#[derive(Debug, Clone)]
pub struct VirtualKey {
    pub id: String,
    pub hash: KeyHash,
    /// Route ids this key may use; `None` = every virtual route.
    pub routes: Option<Vec<String>>,
    /// Workspace the key's events belong to.
    pub workspace: String,
    /// Scopes (`store::SCOPES`).
    pub scopes: Vec<String>,
}

impl VirtualKey {
    /// Whether the key has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Validated `[policies]` settings.
#[derive(Debug, Clone)]
pub struct PoliciesConfig {
    /// Resolved policy directory.
    pub dir: PathBuf,
    pub watch: bool,
    pub debounce: Duration,
    pub poll_interval: Duration,
}

/// The compiled configuration every request reads (through the runtime snapshot).
#[derive(Debug)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerConfig,
    pub policies: PoliciesConfig,
    pub log_format: LogFormat,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub routes: Vec<Route>,
    pub keys: Vec<VirtualKey>,
    pub store: store::StoreConfig,
}

impl Config {
    /// First route (in file order) matching the path and model.
    pub fn match_route(&self, path: &str, model: Option<&str>) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path, model))
    }

    /// Whether any route selects by model (then the request body must be peeked first).
    pub fn routes_need_model(&self) -> bool {
        self.routes.iter().any(|r| !r.models.is_empty())
    }
}

/// Environment variables that override file settings (name, field they override).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("PARAPET_LISTEN", "server.listen"),
    ("PARAPET_ADMIN_LISTEN", "server.admin_listen"),
    ("PARAPET_MAX_BODY_BYTES", "server.max_body_bytes"),
    ("PARAPET_UNKNOWN_PATHS", "server.unknown_paths"),
    ("PARAPET_DRAIN_TIMEOUT_MS", "server.drain_timeout_ms"),
    (
        "PARAPET_REQUEST_BODY_TIMEOUT_MS",
        "server.request_body_timeout_ms",
    ),
    ("PARAPET_OVERHEAD_HEADER", "server.overhead_header"),
    ("PARAPET_LOG_FORMAT", "log.format"),
    ("PARAPET_POLICIES_DIR", "policies.dir"),
    ("PARAPET_DATA_DIR", "store.data_dir"),
];

/// Read, override from the process environment, and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            field: "-".into(),
            message: format!("cannot read file: {e}"),
        }])
    })?;
    let env: Vec<(String, String)> = ENV_OVERRIDES
        .iter()
        .filter_map(|(k, _)| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    load_str(&text, path, &env, &|name| std::env::var(name).ok())
}

/// Parse and validate configuration text. `env` holds `PARAPET_*` overrides;
/// `lookup` resolves provider key variables (injected for tests).
pub fn load_str(
    text: &str,
    path: &Path,
    env: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            field: toml_error_field(&e),
            message: e.message().to_string(),
        }])
    })?;
    let mut v = Validator {
        file: file.clone(),
        errors: Vec::new(),
    };
    apply_env(&mut raw, env, &mut v);
    let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
    let config = v.compile(raw, path, base_dir, lookup);
    match config {
        Some(c) if v.errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(v.errors)),
    }
}

fn toml_error_field(e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => format!("bytes {}..{}", span.start, span.end),
        None => "-".into(),
    }
}

fn apply_env(raw: &mut RawConfig, env: &[(String, String)], v: &mut Validator) {
    for (k, val) in env {
        match k.as_str() {
            "PARAPET_LISTEN" => raw.server.listen = val.clone(),
            "PARAPET_ADMIN_LISTEN" => raw.server.admin_listen = val.clone(),
            "PARAPET_UNKNOWN_PATHS" => raw.server.unknown_paths = val.clone(),
            "PARAPET_LOG_FORMAT" => raw.log.format = val.clone(),
            "PARAPET_POLICIES_DIR" => raw.policies.dir = val.clone(),
            "PARAPET_DATA_DIR" => raw.store.data_dir = val.clone(),
            "PARAPET_MAX_BODY_BYTES" => match val.parse() {
                Ok(n) => raw.server.max_body_bytes = n,
                Err(_) => v.env_err(k, "must be a whole number of bytes"),
            },
            "PARAPET_DRAIN_TIMEOUT_MS" => match val.parse() {
                Ok(n) => raw.server.drain_timeout_ms = n,
                Err(_) => v.env_err(k, "must be a whole number of milliseconds"),
            },
            "PARAPET_REQUEST_BODY_TIMEOUT_MS" => match val.parse() {
                Ok(n) => raw.server.request_body_timeout_ms = n,
                Err(_) => v.env_err(k, "must be a whole number of milliseconds"),
            },
            "PARAPET_OVERHEAD_HEADER" => match val.as_str() {
                "true" | "1" => raw.server.overhead_header = true,
                "false" | "0" => raw.server.overhead_header = false,
                _ => v.env_err(k, "must be true, false, 1 or 0"),
            },
            _ => {}
        }
    }
}

struct Validator {
    file: String,
    errors: Vec<ConfigError>,
}

impl Validator {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn env_err(&mut self, var: &str, message: &str) {
        self.errors.push(ConfigError {
            file: "environment".into(),
            field: var.into(),
            message: message.into(),
        });
    }

    fn addr(&mut self, field: &str, s: &str) -> Option<SocketAddr> {
        match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(field, format!("`{s}` is not an address like 0.0.0.0:8080"));
                None
            }
        }
    }

    fn positive_ms(&mut self, field: String, ms: u64) -> Duration {
        if ms == 0 {
            self.err(field, "must be greater than 0");
        }
        Duration::from_millis(ms)
    }

    fn compile(
        &mut self,
        raw: RawConfig,
        path: &Path,
        base_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Config> {
        let listen = self.addr("server.listen", &raw.server.listen);
        let admin_listen = self.addr("server.admin_listen", &raw.server.admin_listen);
        if raw.server.max_body_bytes == 0 {
            self.err("server.max_body_bytes", "must be greater than 0");
        }
        if raw.server.max_response_bytes == 0 {
            self.err("server.max_response_bytes", "must be greater than 0");
        }
        if raw.server.request_body_timeout_ms == 0 {
            self.err("server.request_body_timeout_ms", "must be greater than 0");
        }
        let unknown_paths = match raw.server.unknown_paths.as_str() {
            "forward" => UnknownPaths::Forward,
            "reject" => UnknownPaths::Reject,
            other => {
                self.err(
                    "server.unknown_paths",
                    format!("`{other}` is not one of: forward, reject"),
                );
                UnknownPaths::Forward
            }
        };
        let upstream_roots = match raw.server.upstream_roots.as_str() {
            "webpki" => RootStore::Webpki,
            "native" => RootStore::Native,
            other => {
                self.err(
                    "server.upstream_roots",
                    format!("`{other}` is not one of: webpki, native"),
                );
                RootStore::Webpki
            }
        };
        let log_format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.err("log.format", format!("`{other}` is not one of: text, json"));
                LogFormat::Text
            }
        };
        let tls = raw.server.tls.as_ref().map(|t| {
            let files = TlsFiles {
                cert_file: base_dir.join(&t.cert_file),
                key_file: base_dir.join(&t.key_file),
            };
            if let Err(e) = crate::server::load_tls_config(&files) {
                self.err("server.tls", e);
            }
            files
        });

        if raw.policies.dir.trim().is_empty() {
            self.err("policies.dir", "must not be empty");
        }
        let policies = PoliciesConfig {
            dir: base_dir.join(&raw.policies.dir),
            watch: raw.policies.watch,
            debounce: Duration::from_millis(raw.policies.debounce_ms),
            poll_interval: self.positive_ms(
                "policies.poll_interval_ms".into(),
                raw.policies.poll_interval_ms,
            ),
        };
        let endpoints = self.endpoints(&raw, lookup);
        let mut routes = self.routes(&raw, &endpoints);
        self.failover(&raw, &endpoints, &mut routes);
        let keys = self.keys(&raw, &routes);
        let route_ids: Vec<&str> = routes.iter().map(|r| r.id.as_str()).collect();
        let mut store_errors = Vec::new();
        let store = store::validate(&raw.store, base_dir, &route_ids, &mut store_errors);
        for (field, message) in store_errors {
            self.err(field, message);
        }

        Some(Config {
            source: path.to_path_buf(),
            server: ServerConfig {
                listen: listen?,
                admin_listen: admin_listen?,
                max_body_bytes: raw.server.max_body_bytes,
                unknown_paths,
                drain_timeout: Duration::from_millis(raw.server.drain_timeout_ms),
                request_body_timeout: Duration::from_millis(raw.server.request_body_timeout_ms),
                max_response_bytes: raw.server.max_response_bytes,
                upstream_roots,
                overhead_header: raw.server.overhead_header,
                tls,
            },
            policies,
            log_format,
            endpoints,
            routes,
            keys,
            store,
        })
    }

    fn endpoints(
        &mut self,
        raw: &RawConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Arc<Endpoint>> {
        let mut out: Vec<Arc<Endpoint>> = Vec::new();
        for (i, e) in raw.endpoints.iter().enumerate() {
            let f = |name: &str| format!("endpoints[{i}].{name}");
            if e.id.trim().is_empty() {
                self.err(f("id"), "must not be empty");
            } else if out.iter().any(|o| o.id == e.id) {
                self.err(f("id"), format!("duplicate endpoint id `{}`", e.id));
            }
            let kind = match e.kind.as_str() {
                "openai" => EndpointKind::OpenAi,
                "anthropic" => EndpointKind::Anthropic,
                "openai_compatible" => EndpointKind::OpenAiCompatible,
                other => {
                    self.err(
                        f("kind"),
                        format!("`{other}` is not one of: openai, anthropic, openai_compatible"),
                    );
                    EndpointKind::OpenAi
                }
            };
            let Some((scheme, authority, base_path)) = self.base_url(&f("base_url"), &e.base_url)
            else {
                continue;
            };
            let mut headers = HeaderMap::new();
            for (name, value) in &e.headers {
                let field = f(&format!("headers.{name}"));
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    (Ok(n), Ok(v)) => {
                        headers.insert(n, v);
                    }
                    (Err(_), _) => self.err(field, "not a valid header name"),
                    (_, Err(_)) => self.err(field, "not a valid header value"),
                }
            }
            let api_key = match &e.api_key_env {
                Some(var) if var.trim().is_empty() => {
                    self.err(f("api_key_env"), "must not be empty");
                    None
                }
                Some(var) => lookup(var).and_then(|v| {
                    let s = Secret::new(v.trim());
                    if s.is_none() {
                        self.err(
                            f("api_key_env"),
                            format!("the value of ${var} cannot be sent as a header"),
                        );
                    }
                    s
                }),
                None => None,
            };
            let connect_timeout = self.positive_ms(f("connect_timeout_ms"), e.connect_timeout_ms);
            let first_byte_timeout =
                self.positive_ms(f("first_byte_timeout_ms"), e.first_byte_timeout_ms);
            let total_timeout = self.positive_ms(f("total_timeout_ms"), e.total_timeout_ms);
            out.push(Arc::new(Endpoint {
                id: e.id.clone(),
                kind,
                scheme,
                authority,
                base_path,
                api_key,
                api_key_env: e.api_key_env.clone(),
                headers,
                connect_timeout,
                first_byte_timeout,
                total_timeout,
                models: self.model_map(&f("models"), &e.models),
            }));
        }
        out
    }

    fn model_map(
        &mut self,
        field: &str,
        raw: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (from, to) in raw {
            if from.trim().is_empty() || to.trim().is_empty() {
                self.err(format!("{field}.{from}"), "model names must not be empty");
            } else {
                out.push((from.clone(), to.clone()));
            }
        }
        out
    }

    /// Attach `[[failover_policies]]` to their routes (fallback endpoints after the primary).
    fn failover(&mut self, raw: &RawConfig, endpoints: &[Arc<Endpoint>], routes: &mut [Route]) {
        let primaries: Vec<(&str, &str)> = routes
            .iter()
            .map(|r| (r.id.as_str(), r.primary().id.as_str()))
            .collect();
        let mut errors = Vec::new();
        let compiled =
            failover::validate(&raw.failover_policies, endpoints, &primaries, &mut errors);
        for (field, message) in errors {
            self.err(field, message);
        }
        for c in compiled {
            let Some(route) = routes.iter_mut().find(|r| r.id == c.route_id) else {
                continue;
            };
            if route.auth == AuthMode::Virtual {
                for ep in c.fallbacks.iter().filter(|e| e.api_key.is_none()) {
                    self.err(
                        format!("failover_policies.{}", c.policy.id),
                        format!(
                            "route `{}` uses auth = \"virtual\": fallback endpoint `{}` needs a provider key (api_key_env, set)",
                            route.id, ep.id
                        ),
                    );
                }
            }
            route.endpoints.extend(c.fallbacks);
            route.failover = Some(c.policy);
        }
    }

    fn base_url(&mut self, field: &str, s: &str) -> Option<(Scheme, Authority, String)> {
        let uri: http::Uri = match s.parse() {
            Ok(u) => u,
            Err(_) => {
                self.err(field, format!("`{s}` is not a URL"));
                return None;
            }
        };
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                self.err(field, format!("`{s}` must start with http:// or https://"));
                return None;
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            self.err(field, format!("`{s}` has no host"));
            return None;
        };
        if uri.query().is_some() {
            self.err(field, "must not have a query string");
            return None;
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        Some((scheme, authority, base_path))
    }

    fn routes(&mut self, raw: &RawConfig, endpoints: &[Arc<Endpoint>]) -> Vec<Route> {
        let mut out: Vec<Route> = Vec::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let f = |name: &str| format!("routes[{i}].{name}");
            if r.id.trim().is_empty() {
                self.err(f("id"), "must not be empty");
            } else if out.iter().any(|o| o.id == r.id) {
                self.err(f("id"), format!("duplicate route id `{}`", r.id));
            }
            if let Some(p) = &r.path_prefix {
                if !p.starts_with('/') {
                    self.err(f("path_prefix"), "must start with `/`");
                }
            }
            let mut models = Vec::new();
            for (j, m) in r.models.iter().flatten().enumerate() {
                if m.is_empty() {
                    self.err(f(&format!("models[{j}]")), "must not be empty");
                } else {
                    models.push(ModelPattern::parse(m));
                }
            }
            let auth = match r.auth.as_str() {
                "passthrough" => AuthMode::Passthrough,
                "virtual" => AuthMode::Virtual,
                other => {
                    self.err(
                        f("auth"),
                        format!("`{other}` is not one of: passthrough, virtual"),
                    );
                    AuthMode::Passthrough
                }
            };
            let Some(ep) = endpoints.iter().find(|e| e.id == r.endpoint) else {
                self.err(
                    f("endpoint"),
                    format!("no endpoint with id `{}` is defined", r.endpoint),
                );
                continue;
            };
            if auth == AuthMode::Virtual && ep.api_key.is_none() {
                let msg = match &ep.api_key_env {
                    Some(var) => format!(
                        "auth = \"virtual\" needs the provider key of endpoint `{}`, but ${var} is not set",
                        ep.id
                    ),
                    None => format!(
                        "auth = \"virtual\" needs endpoint `{}` to set api_key_env",
                        ep.id
                    ),
                };
                self.err(f("auth"), msg);
            }
            out.push(Route {
                id: r.id.clone(),
                path_prefix: r.path_prefix.clone(),
                models,
                endpoints: vec![ep.clone()],
                auth,
                failover: None,
            });
        }
        out
    }

    fn keys(&mut self, raw: &RawConfig, routes: &[Route]) -> Vec<VirtualKey> {
        let mut out: Vec<VirtualKey> = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let f = |name: &str| format!("keys[{i}].{name}");
            if k.id.trim().is_empty() {
                self.err(f("id"), "must not be empty");
            } else if out.iter().any(|o| o.id == k.id) {
                self.err(f("id"), format!("duplicate key id `{}`", k.id));
            }
            let Some(hash) = KeyHash::parse(&k.sha256) else {
                self.err(
                    f("sha256"),
                    "must be 64 hex digits, optionally prefixed `sha256:` (see `parapet hash-key`)",
                );
                continue;
            };
            if let Some(rs) = &k.routes {
                for (j, r) in rs.iter().enumerate() {
                    if !routes.iter().any(|x| &x.id == r) {
                        self.err(
                            f(&format!("routes[{j}]")),
                            format!("no route with id `{r}` is defined"),
                        );
                    }
                }
            }
            let mut key_errors = Vec::new();
            let (workspace, scopes) = store::validate_key(
                &format!("keys[{i}]"),
                k.workspace.as_deref(),
                k.scopes.as_deref(),
                &mut key_errors,
            );
            for (field, message) in key_errors {
                self.err(field, message);
            }
            out.push(VirtualKey {
                id: k.id.clone(),
                hash,
                routes: k.routes.clone(),
                workspace,
                scopes,
            });
        }
        if out.is_empty() {
            if let Some(r) = routes.iter().find(|r| r.auth == AuthMode::Virtual) {
                self.err(
                    "keys",
                    format!(
                        "route `{}` uses auth = \"virtual\" but no [[keys]] are defined",
                        r.id
                    ),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
