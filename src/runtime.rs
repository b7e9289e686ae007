//! Runtime state: the immutable snapshot a request loads once (config + everything compiled
//! from it) behind an `ArcSwap`, and process-wide flags such as readiness.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::guard::PolicySet;
use crate::reload::Reloads;
use crate::upstream::Upstreams;

/// Everything derived from one configuration and one policy set. A request keeps the
/// `Arc<Runtime>` it started with until its response (stream included) ends, so a reload
/// never changes it mid-call.
pub struct Runtime {
    pub config: Arc<Config>,
    pub upstreams: Arc<Upstreams>,
    pub policies: Arc<PolicySet>,
    /// Event store handle (disabled until `Server::start` opens the store).
    pub events: crate::store::EventSink,
}

impl Runtime {
    /// Compile a runtime from a validated configuration and compiled policies.
    pub fn new(config: Arc<Config>, policies: Arc<PolicySet>) -> Result<Runtime, String> {
        let upstreams = Arc::new(Upstreams::new(&config)?);
        Ok(Runtime {
            config,
            upstreams,
            policies,
            events: crate::store::EventSink::disabled(),
        })
    }

    /// The same runtime with another policy set (connection pools are kept).
    pub fn with_policies(&self, policies: Arc<PolicySet>) -> Runtime {
        Runtime {
            config: self.config.clone(),
            upstreams: self.upstreams.clone(),
            policies,
            events: self.events.clone(),
        }
    }
}

/// Shared process state: the current snapshot, readiness, and policy reload bookkeeping.
pub struct State {
    current: ArcSwap<Runtime>,
    ready: AtomicBool,
    started: Instant,
    /// Serializes policy reloads and remembers the last one (`reload`).
    pub reloads: Reloads,
}

impl State {
    /// State serving `runtime`, not yet ready.
    pub fn new(runtime: Runtime) -> State {
        crate::metrics::set_policy_rules(runtime.policies.rules().len());
        State {
            current: ArcSwap::from_pointee(runtime),
            ready: AtomicBool::new(false),
            started: Instant::now(),
            reloads: Reloads::default(),
        }
    }

    /// Time since this state was created (process start for the binary).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The current snapshot (load once per request).
    pub fn snapshot(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Replace the snapshot (compile first, then swap: never a half-built runtime).
    pub fn swap(&self, runtime: Runtime) {
        self.current.store(Arc::new(runtime));
    }

    /// Whether the data plane accepts traffic (false before start and while draining).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Set readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}
