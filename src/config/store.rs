//! `[store]` settings (event store) and the workspace/scopes binding of `[[keys]]`: raw
//! serde types (unknown keys are errors) and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[store]`: the embedded event store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Record events at all (proxy path and ingestion API).
    pub enabled: bool,
    /// Directory of the sled store, relative to the config file (`PARAPET_DATA_DIR`).
    pub data_dir: String,
    /// Delete events older than this many days (0 = keep forever).
    pub retention_days: u32,
    /// How often retention runs.
    pub retention_interval_ms: u64,
    /// Bounded writer queue (messages).
    pub queue_capacity: usize,
    /// How long a proxy-path event waits for queue space before it is dropped (counted).
    pub queue_wait_ms: u64,
    /// Characters kept of redacted input/output summaries.
    pub content_summary_chars: usize,
    /// Routes whose full (redacted) content is stored instead of a summary.
    pub full_content_routes: Vec<String>,
    /// sled page cache.
    pub cache_capacity_mb: u64,
    /// How long a small batch of proxy-path events waits for more before it is written.
    pub linger_ms: u64,
    /// Largest ingestion request body (413 above).
    pub max_request_bytes: u64,
    /// Most events in one ingestion request (413 above).
    pub max_events_per_request: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            enabled: true,
            data_dir: "data".into(),
            retention_days: 0,
            retention_interval_ms: 3_600_000,
            queue_capacity: 10_000,
            queue_wait_ms: 1_000,
            content_summary_chars: 200,
            full_content_routes: Vec::new(),
            cache_capacity_mb: 64,
            linger_ms: 5,
            max_request_bytes: 5 * 1024 * 1024,
            max_events_per_request: 1_000,
        }
    }
}

/// Validated `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub enabled: bool,
    pub data_dir: PathBuf,
    /// `None` = keep forever.
    pub retention_days: Option<u32>,
    pub retention_interval: Duration,
    pub queue_capacity: usize,
    pub queue_wait: Duration,
    pub content_summary_chars: usize,
    pub full_content_routes: Vec<String>,
    pub cache_capacity_bytes: u64,
    pub linger: Duration,
    pub max_request_bytes: u64,
    pub max_events_per_request: usize,
}

impl StoreConfig {
    /// Defaults with the store in `dir` (tests, tools).
    pub fn in_dir(dir: &Path) -> StoreConfig {
        let mut errors = Vec::new();
        let mut c = validate(&RawStore::default(), dir, &[], &mut errors);
        c.data_dir = dir.to_path_buf();
        c
    }
}

/// Scopes a key may have.
pub const SCOPES: [&str; 4] = ["proxy", "ingest", "evidence:read", "evidence:write"];

/// Whether `ws` is a valid workspace id: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_workspace(ws: &str) -> bool {
    !ws.is_empty()
        && ws.len() <= 64
        && ws
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Validate `[store]`; errors are pushed as (field, message).
pub fn validate(
    raw: &RawStore,
    base_dir: &Path,
    route_ids: &[&str],
    errors: &mut Vec<(String, String)>,
) -> StoreConfig {
    let mut err = |f: &str, m: String| errors.push((format!("store.{f}"), m));
    if raw.data_dir.trim().is_empty() {
        err("data_dir", "must not be empty".into());
    }
    if raw.queue_capacity == 0 {
        err("queue_capacity", "must be greater than 0".into());
    }
    if raw.retention_interval_ms == 0 {
        err("retention_interval_ms", "must be greater than 0".into());
    }
    if raw.linger_ms > 1_000 {
        err(
            "linger_ms",
            format!("must be at most 1000 (got {})", raw.linger_ms),
        );
    }
    if raw.max_request_bytes == 0 {
        err("max_request_bytes", "must be greater than 0".into());
    }
    if raw.max_events_per_request == 0 {
        err("max_events_per_request", "must be greater than 0".into());
    }
    for (i, r) in raw.full_content_routes.iter().enumerate() {
        if !route_ids.contains(&r.as_str()) {
            err(
                &format!("full_content_routes[{i}]"),
                format!("no route with id `{r}` is defined"),
            );
        }
    }
    StoreConfig {
        enabled: raw.enabled,
        data_dir: base_dir.join(&raw.data_dir),
        retention_days: (raw.retention_days > 0).then_some(raw.retention_days),
        retention_interval: Duration::from_millis(raw.retention_interval_ms.max(1)),
        queue_capacity: raw.queue_capacity.max(1),
        queue_wait: Duration::from_millis(raw.queue_wait_ms),
        content_summary_chars: raw.content_summary_chars,
        full_content_routes: raw.full_content_routes.clone(),
        cache_capacity_bytes: raw.cache_capacity_mb.saturating_mul(1024 * 1024),
        linger: Duration::from_millis(raw.linger_ms.min(1_000)),
        max_request_bytes: raw.max_request_bytes,
        max_events_per_request: raw.max_events_per_request,
    }
}

/// Validate a key's `workspace` and `scopes` (`field` prefix e.g. `keys[0]`).
pub fn validate_key(
    field: &str,
    workspace: Option<&str>,
    scopes: Option<&[String]>,
    errors: &mut Vec<(String, String)>,
) -> (String, Vec<String>) {
    let ws = workspace.unwrap_or("default").to_string();
    if !valid_workspace(&ws) {
        errors.push((
            format!("{field}.workspace"),
            "must be 1-64 characters of A-Z a-z 0-9 _ - .".into(),
        ));
    }
    let scopes: Vec<String> = match scopes {
        Some(s) => s.to_vec(),
        None => SCOPES.iter().map(|s| s.to_string()).collect(),
    };
    for (i, s) in scopes.iter().enumerate() {
        if !SCOPES.contains(&s.as_str()) {
            errors.push((
                format!("{field}.scopes[{i}]"),
                format!("`{s}` is not one of: {}", SCOPES.join(", ")),
            ));
        }
    }
    (ws, scopes)
}
