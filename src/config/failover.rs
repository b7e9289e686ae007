//! `[[failover_policies]]`: per route, the ordered fallback endpoints, what triggers a
//! failover (status codes, time to first byte, errors) and the circuit-breaker settings —
//! seed 002's failover-policy object kept as plain data (the control-plane API will manage
//! the same objects later).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Endpoint, EndpointKind};

/// `[[failover_policies]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailoverPolicy {
    pub id: String,
    pub route_id: String,
    /// Must be the route's `endpoint`.
    pub primary_endpoint: String,
    #[serde(default)]
    pub fallback_endpoints: Vec<String>,
    #[serde(default)]
    pub conditions: RawConditions,
    #[serde(default = "default_retry_on_status")]
    pub retry_on_status: Vec<u16>,
    /// Default: one attempt per endpoint (primary + fallbacks).
    pub max_attempts: Option<usize>,
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

/// `conditions` of a failover policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConditions {
    /// Time to first byte above which an attempt is cancelled and the next endpoint tried
    /// (never for the last candidate).
    pub latency_threshold_ms: Option<u64>,
    /// Error rate over `window_seconds` above which the endpoint's breaker opens.
    pub error_rate_threshold: Option<f64>,
}

fn default_retry_on_status() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}
fn default_window_seconds() -> u64 {
    30
}
fn default_min_requests() -> u32 {
    10
}
fn default_cooldown_ms() -> u64 {
    30_000
}

/// Default `conditions.error_rate_threshold`.
pub const DEFAULT_ERROR_RATE_THRESHOLD: f64 = 0.5;
/// Longest accepted `window_seconds` (the breaker keeps one bucket per second).
pub const MAX_WINDOW_SECONDS: u64 = 3_600;

/// Circuit-breaker settings of a policy (applied to the endpoints it names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    pub error_rate_threshold: f64,
    pub window: Duration,
    pub min_requests: u32,
    pub cooldown: Duration,
}

/// A validated failover policy, attached to its route (`Route::failover`).
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPolicy {
    pub id: String,
    pub retry_on_status: Vec<u16>,
    /// Attempts per call, 1 ..= number of endpoints.
    pub max_attempts: usize,
    pub latency_threshold: Option<Duration>,
    pub breaker: BreakerSettings,
}

impl FailoverPolicy {
    /// Whether an upstream answer with this status is retried on the next endpoint.
    pub fn retries_status(&self, status: u16) -> bool {
        self.retry_on_status.contains(&status)
    }
}

/// API family of an endpoint: fallbacks must speak the primary's.
fn family(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::Anthropic => "anthropic",
        EndpointKind::OpenAi | EndpointKind::OpenAiCompatible => "openai",
    }
}

/// What a validated policy adds to its route.
pub struct Compiled {
    pub route_id: String,
    pub fallbacks: Vec<Arc<Endpoint>>,
    pub policy: Arc<FailoverPolicy>,
}

/// Validate every `[[failover_policies]]` entry against the endpoints and the routes'
/// primary endpoints (`routes`: (route id, primary endpoint id)). Errors are (field, message).
pub fn validate(
    raw: &[RawFailoverPolicy],
    endpoints: &[Arc<Endpoint>],
    routes: &[(&str, &str)],
    errors: &mut Vec<(String, String)>,
) -> Vec<Compiled> {
    let mut out: Vec<Compiled> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let f = |name: &str| format!("failover_policies[{i}].{name}");
        let mut err = |field: String, msg: String| errors.push((field, msg));
        if p.id.trim().is_empty() {
            err(f("id"), "must not be empty".into());
        } else if ids.contains(&p.id.as_str()) {
            err(f("id"), format!("duplicate failover policy id `{}`", p.id));
        }
        ids.push(&p.id);
        let Some((_, route_primary)) = routes.iter().find(|(r, _)| *r == p.route_id) else {
            err(
                f("route_id"),
                format!("no route with id `{}` is defined", p.route_id),
            );
            continue;
        };
        if out.iter().any(|c| c.route_id == p.route_id) {
            err(
                f("route_id"),
                format!("route `{}` already has a failover policy", p.route_id),
            );
        }
        if p.primary_endpoint != *route_primary {
            err(
                f("primary_endpoint"),
                format!(
                    "must be the route's endpoint `{route_primary}` (got `{}`)",
                    p.primary_endpoint
                ),
            );
        }
        let primary = endpoints.iter().find(|e| e.id == *route_primary);
        let mut fallbacks: Vec<Arc<Endpoint>> = Vec::new();
        for (j, id) in p.fallback_endpoints.iter().enumerate() {
            let field = f(&format!("fallback_endpoints[{j}]"));
            let Some(ep) = endpoints.iter().find(|e| e.id == *id) else {
                err(field, format!("no endpoint with id `{id}` is defined"));
                continue;
            };
            if id == route_primary || fallbacks.iter().any(|e| e.id == *id) {
                err(field, format!("endpoint `{id}` is listed twice"));
                continue;
            }
            if let Some(pr) = primary {
                if family(pr.kind) != family(ep.kind) {
                    err(
                        field,
                        format!(
                            "endpoint `{id}` speaks the {} API but the primary `{}` speaks the {} API; fallbacks must speak the primary's",
                            family(ep.kind),
                            pr.id,
                            family(pr.kind)
                        ),
                    );
                    continue;
                }
            }
            fallbacks.push(ep.clone());
        }
        for (j, s) in p.retry_on_status.iter().enumerate() {
            if !(400..=599).contains(s) {
                err(
                    f(&format!("retry_on_status[{j}]")),
                    format!("{s} is not an error status (400-599)"),
                );
            }
        }
        let candidates = 1 + fallbacks.len();
        let max_attempts = match p.max_attempts {
            Some(0) => {
                err(f("max_attempts"), "must be at least 1".into());
                1
            }
            Some(n) if n > candidates => {
                err(
                    f("max_attempts"),
                    format!("{n} is more than the {candidates} endpoint(s) of the policy"),
                );
                candidates
            }
            Some(n) => n,
            None => candidates,
        };
        let threshold = p
            .conditions
            .error_rate_threshold
            .unwrap_or(DEFAULT_ERROR_RATE_THRESHOLD);
        if !(threshold > 0.0 && threshold <= 1.0) {
            err(
                f("conditions.error_rate_threshold"),
                "must be greater than 0 and at most 1".into(),
            );
        }
        if p.conditions.latency_threshold_ms == Some(0) {
            err(
                f("conditions.latency_threshold_ms"),
                "must be greater than 0".into(),
            );
        }
        if p.window_seconds == 0 || p.window_seconds > MAX_WINDOW_SECONDS {
            err(
                f("window_seconds"),
                format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
            );
        }
        if p.cooldown_ms == 0 {
            err(f("cooldown_ms"), "must be greater than 0".into());
        }
        out.push(Compiled {
            route_id: p.route_id.clone(),
            fallbacks,
            policy: Arc::new(FailoverPolicy {
                id: p.id.clone(),
                retry_on_status: p.retry_on_status.clone(),
                max_attempts,
                latency_threshold: p.conditions.latency_threshold_ms.map(Duration::from_millis),
                breaker: BreakerSettings {
                    error_rate_threshold: threshold,
                    window: Duration::from_secs(p.window_seconds.clamp(1, MAX_WINDOW_SECONDS)),
                    min_requests: p.min_requests,
                    cooldown: Duration::from_millis(p.cooldown_ms.max(1)),
                },
            }),
        });
    }
    out
}
