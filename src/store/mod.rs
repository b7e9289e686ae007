//! The event store: the event model (`event`), seed-003 evidence hashing and the chain
//! (`evidence`), the sled layout with query / verify / retention (`db`), and here the one
//! writer thread fed by a bounded queue, writing in batches with group commit (one flush
//! serves every batch written since the last one), plus the `EventSink` handle the proxy
//! and the ingestion API use.
//!
//! Producers turn events into [`record::Prepared`] records (canonical JSON, evidence hash)
//! before queueing them; the writer only assigns `seq`, hashes and links.
//!
//! Durability: `EventSink::submit` (ingestion API) returns only after the batch holding its
//! events was applied and flushed. `EventSink::record` queues without waiting for the flush;
//! a small batch of them lingers up to `linger` for more (fewer, larger sled batches), and
//! it is flushed with the next acked batch or within [`PROXY_FLUSH_EVERY`], sharing one
//! flush and anchor update with the other proxy batches of that interval. When the queue is
//! full it waits up to `queue_wait` (counted in
//! `parapet_event_queue_full_total`), then logs and counts a drop
//! (`parapet_events_dropped_total`). The proxy reserves its call's queue slot when the call
//! starts (`EventSink::reserve`): a store that cannot keep up slows the intake of new calls
//! (bounded by `queue_wait`; a call that got no slot is counted in
//! `parapet_calls_unrecorded_total` and logged) instead of piling up pending events in
//! memory. `StoreService::shutdown` drains the queue. After each flushed batch the writer
//! records the chain heads in the anchor file (`db::ANCHOR_FILE`), which `verify` compares
//! with the chain.

pub mod db;
pub mod event;
pub mod evidence;
pub mod record;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::store::StoreConfig;
use crate::metrics;
pub use db::{Page, Query, Store, StoreError, WorkspaceReport, Written};
pub use event::{kind, summary, Event, Evidence};
use record::Prepared;

/// Hash and serialize events on the producer's thread (a Tokio worker), so the single
/// writer thread only links them (see [`record`]).
fn prepare(events: Vec<Event>) -> Vec<Prepared> {
    events.into_iter().map(Prepared::new).collect()
}

type Ack = oneshot::Sender<Result<Vec<Written>, StoreError>>;

enum Msg {
    Write {
        events: Vec<Prepared>,
        ack: Option<Ack>,
    },
    Retain {
        cutoff_micros: i64,
        ack: oneshot::Sender<u64>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// How producers wake a lingering writer. While the writer lingers it does not poll the
/// queue (each message would wake its thread: a futex wake and two context switches per
/// call); producers ring `urgent` only for what must not wait: an acked write, a control
/// message, or [`LINGER_EVENTS`] events since the linger began.
#[derive(Default)]
struct Doorbell {
    /// Events queued and not yet taken into a written batch: producers add after queueing,
    /// the writer subtracts a batch's events once it stops collecting them. (A producer can
    /// add after the writer subtracted; the counter wraps for that moment and at worst
    /// rings once too early.)
    pending: AtomicUsize,
    urgent: Notify,
}

impl Doorbell {
    /// `n` proxy-path events were queued.
    fn queued(&self, n: usize) {
        let now = self.pending.fetch_add(n, Ordering::Relaxed).wrapping_add(n);
        if now >= LINGER_EVENTS {
            self.urgent.notify_one();
        }
    }

    /// Something that must not linger was queued (`n` events of it).
    fn ring(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::Relaxed);
        self.urgent.notify_one();
    }
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    bell: Arc<Doorbell>,
    store: Store,
    queue_wait: Duration,
    summary_chars: usize,
    full_content_routes: Vec<String>,
}

/// Handle to the event store: cheap to clone; `EventSink::disabled()` records nothing.
#[derive(Clone, Default)]
pub struct EventSink {
    inner: Option<Arc<Inner>>,
}

impl EventSink {
    /// A sink that records nothing (store disabled).
    pub fn disabled() -> EventSink {
        EventSink { inner: None }
    }

    /// Whether events are stored.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// `[store] content_summary_chars`.
    pub fn summary_chars(&self) -> usize {
        self.inner.as_ref().map_or(200, |i| i.summary_chars)
    }

    /// Whether `route` stores full content (`[store] full_content_routes`).
    pub fn full_content(&self, route: &str) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.full_content_routes.iter().any(|r| r == route))
    }

    /// The store, for reads (query, verify); `None` when disabled.
    pub fn store(&self) -> Option<&Store> {
        self.inner.as_ref().map(|i| &i.store)
    }

    /// Queue a proxy-path event (not on the response's critical path). Waits at most
    /// `queue_wait` when the queue is full (counted); a drop is logged and counted, never
    /// silent.
    pub async fn record(&self, event: Event) {
        self.record_all(vec![event]).await;
    }

    /// Queue the events of one call as one batch (contiguous in the chain), like `record`.
    pub async fn record_all(&self, events: Vec<Event>) {
        let Some(inner) = &self.inner else { return };
        let n = events.len();
        if n == 0 {
            return;
        }
        let msg = Msg::Write {
            events: prepare(events),
            ack: None,
        };
        match inner.tx.try_send(msg) {
            Ok(()) => {
                metrics::event_queued(1);
                inner.bell.queued(n);
            }
            Err(mpsc::error::TrySendError::Full(msg)) => {
                metrics::event_queue_full();
                match inner.tx.send_timeout(msg, inner.queue_wait).await {
                    Ok(()) => {
                        metrics::event_queued(1);
                        inner.bell.queued(n);
                    }
                    Err(_) => {
                        metrics::events_dropped(n);
                        tracing::error!(
                            events = n,
                            "event queue full for the whole wait; events dropped"
                        );
                    }
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::events_dropped(n);
                tracing::error!(events = n, "event store stopped; events dropped");
            }
        }
    }

    /// Reserve one queue slot for a call's events, waiting up to `queue_wait` when the queue
    /// is full. `None` when the store is disabled, stopped, or stayed full for the whole
    /// wait (counted in `parapet_calls_unrecorded_total`, logged).
    pub async fn reserve(&self) -> Option<Reservation> {
        let inner = self.inner.as_ref()?;
        let permit = match inner.tx.clone().try_reserve_owned() {
            Ok(p) => Some(p),
            Err(mpsc::error::TrySendError::Full(tx)) => {
                metrics::event_queue_full();
                match tokio::time::timeout(inner.queue_wait, tx.reserve_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => None,
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        };
        if permit.is_none() {
            metrics::call_unrecorded();
            tracing::error!(
                "event queue full for the whole wait (or store stopped); call not recorded"
            );
        }
        permit.map(|permit| Reservation {
            permit,
            bell: inner.bell.clone(),
        })
    }

    /// Store events durably: returns after they are flushed to disk (or already stored:
    /// `Written::Duplicate`). Waits for queue space (the client is waiting for the ack).
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<Written>, StoreError> {
        let Some(inner) = &self.inner else {
            return Err(StoreError::Other("the event store is disabled".into()));
        };
        let (tx, rx) = oneshot::channel();
        let n = events.len();
        let events = prepare(events);
        inner
            .tx
            .send(Msg::Write {
                events,
                ack: Some(tx),
            })
            .await
            .map_err(|_| StoreError::Other("the event store is stopped".into()))?;
        metrics::event_queued(1);
        inner.bell.ring(n);
        rx.await
            .map_err(|_| StoreError::Other("the event writer stopped".into()))?
    }

    /// Apply retention now: delete records ingested before `cutoff_micros` in every
    /// workspace (through the writer, so it never races a write).
    pub async fn retain(&self, cutoff_micros: i64) -> u64 {
        let Some(inner) = &self.inner else { return 0 };
        let (tx, rx) = oneshot::channel();
        if inner
            .tx
            .send(Msg::Retain {
                cutoff_micros,
                ack: tx,
            })
            .await
            .is_err()
        {
            return 0;
        }
        metrics::event_queued(1);
        inner.bell.ring(0);
        rx.await.unwrap_or(0)
    }
}

/// A reserved queue slot (`EventSink::reserve`): sending never waits.
pub struct Reservation {
    permit: mpsc::OwnedPermit<Msg>,
    bell: Arc<Doorbell>,
}

impl Reservation {
    /// Queue `events` as one batch in the reserved slot.
    pub fn send(self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let n = events.len();
        self.permit.send(Msg::Write {
            events: prepare(events),
            ack: None,
        });
        metrics::event_queued(1);
        self.bell.queued(n);
    }
}

/// The running store: the writer thread and the retention task; `shutdown` drains them.
pub struct StoreService {
    sink: EventSink,
    writer: std::thread::JoinHandle<()>,
    retention: Option<tokio::task::JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
}

/// Events per writer batch (one sled batch, one flush).
pub const MAX_BATCH_EVENTS: usize = 4096;

impl StoreService {
    /// Open the store and start the writer thread (and retention, if configured).
    pub fn start(cfg: &StoreConfig) -> Result<StoreService, StoreError> {
        let store = Store::open(&cfg.data_dir, cfg.cache_capacity_bytes)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let writer_store = store.clone();
        let linger = cfg.linger;
        let bell = Arc::new(Doorbell::default());
        let writer_bell = bell.clone();
        let writer = std::thread::Builder::new()
            .name("parapet-event-writer".into())
            .spawn(move || writer_loop(writer_store, rx, &writer_bell, linger))
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        let sink = EventSink {
            inner: Some(Arc::new(Inner {
                tx,
                bell,
                store,
                queue_wait: cfg.queue_wait,
                summary_chars: cfg.content_summary_chars,
                full_content_routes: cfg.full_content_routes.clone(),
            })),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let retention = cfg.retention_days.map(|days| {
            let sink = sink.clone();
            let stop = stop.clone();
            let every = cfg.retention_interval;
            tokio::spawn(async move {
                loop {
                    let cutoff =
                        evidence::Timestamp::now().micros() - i64::from(days) * 86_400 * 1_000_000;
                    let n = sink.retain(cutoff).await;
                    if n > 0 {
                        tracing::info!(deleted = n, retention_days = days, "retention applied");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            })
        });
        Ok(StoreService {
            sink,
            writer,
            retention,
            stop,
        })
    }

    /// The sink (put it in the runtime snapshot).
    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Stop retention, write everything queued, flush, stop the writer thread.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Some(r) = self.retention {
            let _ = r.await;
        }
        if let Some(inner) = &self.sink.inner {
            let (tx, rx) = oneshot::channel();
            if inner.tx.send(Msg::Shutdown(tx)).await.is_ok() {
                inner.bell.ring(0);
                let _ = rx.await;
            }
        }
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("event store drained and closed");
    }
}

/// Open the store in `dir` (it must exist and not be in use) and verify every workspace's
/// chain (`parapet verify --data DIR`). A store sled cannot open (corrupted files) is an
/// error, as is a panic inside sled while reading.
pub fn verify_dir(dir: &std::path::Path) -> Result<Vec<WorkspaceReport>, String> {
    if !dir.join("conf").exists() && !dir.join("db").exists() && !dir.join(db::ANCHOR_FILE).exists()
    {
        return Err(format!("{}: no event store here", dir.display()));
    }
    let dir = dir.to_path_buf();
    let run = move || -> Result<Vec<WorkspaceReport>, String> {
        let store = Store::open(&dir, 64 << 20)
            .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        let mut out = Vec::new();
        for ws in store.workspaces().map_err(|e| e.to_string())? {
            out.push(store.verify(&ws).map_err(|e| format!("{ws}: {e}"))?);
        }
        Ok(out)
    };
    std::panic::catch_unwind(run)
        .unwrap_or_else(|_| Err("the store is corrupted (reading it failed)".into()))
}

/// Longest a batch of proxy-path events (nobody waiting for an ack) stays written but not
/// flushed: such batches share one flush (and one anchor update) per interval instead of one
/// each. A batch with an ingestion ack is flushed before the ack, always.
pub const PROXY_FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Events that end a linger (`[store] linger_ms`: how long a small batch of proxy-path
/// events waits for more before it is written; an event with an ingestion ack or a control
/// message also ends it).
pub const LINGER_EVENTS: usize = 512;

fn writer_loop(store: Store, mut rx: mpsc::Receiver<Msg>, bell: &Doorbell, linger: Duration) {
    // A current-thread runtime only for the timed receive (flush deadline of unacked writes).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "event writer cannot start its timer; events are not stored");
            return;
        }
    };
    let mut heads = HashMap::new();
    // Since when written batches wait for their flush (`None`: everything is flushed).
    let mut dirty_since: Option<Instant> = None;
    loop {
        let first = match dirty_since {
            None => rt.block_on(rx.recv()),
            Some(t) => {
                let left = PROXY_FLUSH_EVERY.saturating_sub(t.elapsed());
                // The timer must be created inside the runtime: build it in the future.
                match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                    Ok(m) => m,
                    Err(_) => {
                        flush_and_anchor(&store, &mut heads);
                        dirty_since = None;
                        continue;
                    }
                }
            }
        };
        let Some(first) = first else { break };
        let mut batch = Batch::default();
        batch.push(first);
        batch.drain(&mut rx);
        // Linger: a small batch of proxy-path events only (nobody waits for an ack) waits a
        // moment for more. sled makes every atomic batch two log writes with
        // `sync_file_range`, and its per-batch inserts (segments, posting lists, head) are
        // shared by the events of one batch: fewer, larger batches cost far less CPU. The
        // writer sleeps on the doorbell, not on the queue, so it wakes once per linger, not
        // once per call.
        if !linger.is_zero() && !batch.stop && batch.n_events < LINGER_EVENTS {
            let until = tokio::time::Instant::now() + linger;
            loop {
                let rung = rt.block_on(async {
                    tokio::time::timeout_at(until, bell.urgent.notified()).await
                });
                batch.drain(&mut rx);
                if rung.is_err() || batch.stop || batch.n_events >= LINGER_EVENTS {
                    break;
                }
            }
        }
        let Batch {
            msgs,
            control,
            n_events,
            ..
        } = batch;
        bell.pending.fetch_sub(n_events, Ordering::Relaxed);
        metrics::event_dequeued(msgs.len() + usize::from(control.is_some()));
        if !msgs.is_empty() {
            write_batch(&store, &mut heads, msgs, n_events, &mut dirty_since);
        }
        match control {
            Some(Msg::Retain { cutoff_micros, ack }) => {
                let mut total = 0;
                for ws in store.workspaces().unwrap_or_default() {
                    loop {
                        match store.retain(&ws, cutoff_micros, 10_000) {
                            Ok(0) => break,
                            Ok(n) => total += n,
                            Err(e) => {
                                tracing::error!(error = %e, "retention failed");
                                break;
                            }
                        }
                    }
                }
                flush_and_anchor(&store, &mut heads);
                dirty_since = None;
                let _ = ack.send(total);
            }
            Some(Msg::Shutdown(ack)) => {
                flush_and_anchor(&store, &mut heads);
                let _ = ack.send(());
                return;
            }
            _ => {}
        }
    }
    flush_and_anchor(&store, &mut heads);
}

/// What the writer took from the queue for one sled batch.
#[derive(Default)]
struct Batch {
    msgs: Vec<Msg>,
    n_events: usize,
    /// A retention or shutdown message (handled after the batch).
    control: Option<Msg>,
    /// Write now: an acked write, a control message, a closed queue, or a full batch.
    stop: bool,
}

impl Batch {
    fn push(&mut self, m: Msg) {
        match m {
            Msg::Write {
                ref events,
                ref ack,
            } => {
                self.n_events += events.len();
                self.stop |= ack.is_some() || self.n_events >= MAX_BATCH_EVENTS;
                self.msgs.push(m);
            }
            control => {
                self.control = Some(control);
                self.stop = true;
            }
        }
    }

    /// Take what is queued, up to a control message or [`MAX_BATCH_EVENTS`].
    fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while self.control.is_none() && self.n_events < MAX_BATCH_EVENTS {
            match rx.try_recv() {
                Ok(m) => self.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.stop = true;
                    break;
                }
            }
        }
    }
}

/// Flush, then record the chain heads in the anchor (after the flush: the anchor never
/// claims more than is on disk). A failed flush clears the cached heads (reloaded from the
/// store on the next write).
fn flush_and_anchor(store: &Store, heads: &mut HashMap<String, db::Head>) -> bool {
    match store.flush() {
        Ok(()) => {
            if let Err(e) = store.write_anchor(heads) {
                tracing::error!(error = %e, "chain anchor not updated");
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "event store flush failed");
            heads.clear();
            false
        }
    }
}

fn write_batch(
    store: &Store,
    heads: &mut HashMap<String, db::Head>,
    msgs: Vec<Msg>,
    n: usize,
    dirty_since: &mut Option<Instant>,
) {
    let started = Instant::now();
    let mut all = Vec::with_capacity(n);
    let mut acks = Vec::with_capacity(msgs.len());
    for m in msgs {
        if let Msg::Write { events, ack } = m {
            acks.push((all.len(), events.len(), ack));
            all.extend(events);
        }
    }
    let count = all.len();
    let acked = acks.iter().any(|(_, _, ack)| ack.is_some());
    let mut result = store.write_prepared(heads, all);
    if result.is_ok() {
        let since = *dirty_since.get_or_insert(started);
        // Group commit: an ack waits for the flush; unacked batches share one per interval.
        if acked || since.elapsed() >= PROXY_FLUSH_EVERY {
            *dirty_since = None;
            if !flush_and_anchor(store, heads) {
                result = Err(StoreError::Other("flush failed".into()));
            }
        }
    }
    metrics::event_batch_written(count, started.elapsed());
    match result {
        Ok(written) => {
            let new = written
                .iter()
                .filter(|w| matches!(w, Written::New { .. }))
                .count();
            metrics::events_written(new);
            for (start, len, ack) in acks {
                if let Some(ack) = ack {
                    let _ = ack.send(Ok(written[start..start + len].to_vec()));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, events = count, "event batch not stored");
            // The heads may be stale if the batch was applied but not flushed: reload.
            heads.clear();
            let mut dropped = 0;
            for (_, len, ack) in acks {
                match ack {
                    Some(ack) => {
                        let _ = ack.send(Err(StoreError::Other(e.to_string())));
                    }
                    None => dropped += len,
                }
            }
            metrics::events_dropped(dropped);
        }
    }
}

#[cfg(test)]
mod tests;
