//! Parapet: an inline guardrail proxy for AI traffic (library crate; `main.rs` is the CLI).
//!
//! `Server::start` wires the listeners, the runtime snapshot and background work; see
//! `docs/ARCHITECTURE.md` for the module map and `proxy` for the phase order of a request.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod eval;
pub mod guard;
pub mod metrics;
pub mod mock;
pub mod policy;
pub mod provider;
pub mod proxy;
pub mod redact;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod sse;
pub mod store;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::runtime::{Runtime, State};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({which}): {source}")]
    Bind {
        which: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("invalid policies:\n{0}")]
    Policies(config::ConfigErrors),
}

/// A running Parapet: both listeners bound, serving until `shutdown`.
pub struct Server {
    /// Bound data-plane address (the real port when configured with port 0).
    pub data_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
    admin_stop: CancellationToken,
    data_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    reload_task: JoinHandle<()>,
    store: Option<store::StoreService>,
}

impl Server {
    /// Bind both listeners and start serving `config`.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        // Taken before the load: the reload poller compares with it (changes racing start).
        let policy_fingerprint = reload::fingerprint(&config.policies.dir);
        let policies = guard::policy::load_dir(&config.policies.dir, &|v| std::env::var(v).ok())
            .map_err(|errors| StartError::Policies(config::ConfigErrors(errors)))?;
        let config = Arc::new(config);
        let mut runtime =
            Runtime::new(config.clone(), Arc::new(policies)).map_err(StartError::Setup)?;
        let store = if config.store.enabled {
            let svc = store::StoreService::start(&config.store).map_err(|e| {
                StartError::Setup(format!(
                    "cannot open the event store at {}: {e}",
                    config.store.data_dir.display()
                ))
            })?;
            runtime.events = svc.sink();
            Some(svc)
        } else {
            None
        };
        let state = Arc::new(State::new(runtime));
        state.reloads.set_fingerprint(policy_fingerprint);
        let tls = match &config.server.tls {
            Some(files) => {
                let cfg = server::load_tls_config(files).map_err(StartError::Setup)?;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
            }
            None => None,
        };
        let bind = |which: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    which,
                    addr,
                    source,
                })
        };
        let data = bind("data plane", config.server.listen).await?;
        let admin = bind("admin", config.server.admin_listen).await?;
        let data_addr = data
            .local_addr()
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let admin_addr = admin
            .local_addr()
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let stop = CancellationToken::new();
        let drain = config.server.drain_timeout;

        let data_state = state.clone();
        let data_task = tokio::spawn(server::serve(
            data,
            tls,
            move |req| proxy::handle(data_state.snapshot(), req),
            stop.clone(),
            drain,
        ));
        // The admin listener stays up while the data plane drains, so probes see `not_ready`.
        let admin_stop = CancellationToken::new();
        let admin_state = state.clone();
        let admin_task = tokio::spawn(server::serve(
            admin,
            None,
            move |req| admin::handle(admin_state.clone(), req),
            admin_stop.clone(),
            std::time::Duration::from_millis(100),
        ));
        // Policy reloads (watcher, poller, SIGHUP) stop with the data plane.
        let reload_task = reload::spawn(state.clone(), stop.clone());
        state.set_ready(true);
        tracing::info!(%data_addr, %admin_addr, tls = config.server.tls.is_some(), "parapet listening");
        Ok(Server {
            data_addr,
            admin_addr,
            state,
            stop,
            admin_stop,
            data_task,
            admin_task,
            reload_task,
            store,
        })
    }

    /// Shared state (snapshot, readiness).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Stop accepting, drain in-flight requests and streams up to the configured deadline,
    /// then close the admin listener. Returns when everything has stopped.
    pub async fn shutdown(self) {
        self.state.set_ready(false);
        self.stop.cancel();
        let _ = self.reload_task.await;
        let _ = self.data_task.await;
        // In-flight calls are done: write every queued event, flush, stop the writer.
        if let Some(store) = self.store {
            store.shutdown().await;
        }
        self.admin_stop.cancel();
        let _ = self.admin_task.await;
        tracing::info!("parapet stopped");
    }
}
