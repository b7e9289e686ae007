//! Policy hot reload: the one reload function (compile everything, collect every error,
//! then swap one immutable snapshot), its bookkeeping for `/admin/status`, and the
//! background task that triggers it (directory watcher with debounce, polling fallback,
//! SIGHUP). `POST /admin/reload` calls [`reload`] directly.
//!
//! Rules:
//! - Reloads are serialized (a tokio mutex): concurrent triggers run one after the other.
//! - A rejected policy directory never replaces the active snapshot; the errors are kept
//!   for `/admin/status`, counted in `parapet_config_reloads_total{result="error"}` and
//!   logged by file and field only (messages can quote file contents, so they stay in the
//!   admin API).
//! - A reload whose policy version (hash of file names and contents) equals the active one
//!   does not swap (requests keep sharing the current snapshot) and counts as
//!   `result="unchanged"`; the 200 answer says `"changed": false`.
//! - Requests load the snapshot once (`State::snapshot`) and keep it to their end, streams
//!   included, so a swap only affects calls that start after it.
//!
//! Triggers: with `policies.watch`, a non-recursive watcher on the policy directory (so a
//! Kubernetes ConfigMap `..data` symlink swap is seen) debounced by `policies.debounce`, and
//! a poll every `policies.poll_interval` comparing a fingerprint (names, sizes, mtimes and
//! inodes of the policy files, symlinks followed) with the one taken at the last reload.
//! SIGHUP and `POST /admin/reload` work whatever `watch` says.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::guard::policy::load_dir;
use crate::metrics;
use crate::runtime::State;

/// What asked for a reload (logged, and shown in `/admin/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Watch,
    Poll,
    Signal,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Poll => "poll",
            Trigger::Signal => "sighup",
            Trigger::Admin => "admin",
        }
    }
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new snapshot is active.
    Swapped { version: String, previous: String },
    /// The files compile to the active version; nothing was swapped.
    Unchanged { version: String },
    /// The files were rejected; `active_version` stays active.
    Rejected {
        errors: Vec<ConfigError>,
        active_version: String,
    },
}

impl Outcome {
    /// The `result` label of `parapet_config_reloads_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Swapped { .. } => "success",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Rejected { .. } => "error",
        }
    }
}

/// The last reload attempt.
#[derive(Debug, Clone)]
pub struct LastReload {
    /// `success`, `unchanged` or `error`.
    pub result: &'static str,
    pub trigger: Trigger,
    pub at: SystemTime,
    /// Empty unless `result` is `error`.
    pub errors: Vec<ConfigError>,
}

/// Reload bookkeeping shown by `/admin/status`.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// When the active policy snapshot was compiled (start or last swap).
    pub loaded_at: SystemTime,
    /// `None` until the first reload after start.
    pub last: Option<LastReload>,
}

/// Per-process reload state (held by `State`).
pub struct Reloads {
    serial: tokio::sync::Mutex<()>,
    status: Mutex<ReloadStatus>,
    /// Fingerprint of the policy directory taken just before the last load.
    fingerprint: Mutex<Option<Fingerprint>>,
}

impl Default for Reloads {
    fn default() -> Self {
        Reloads {
            serial: tokio::sync::Mutex::new(()),
            status: Mutex::new(ReloadStatus {
                loaded_at: SystemTime::now(),
                last: None,
            }),
            fingerprint: Mutex::new(None),
        }
    }
}

impl Reloads {
    /// A copy of the current bookkeeping.
    pub fn status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }

    /// Record the fingerprint the active policies were loaded from (taken before the load).
    pub fn set_fingerprint(&self, fp: Fingerprint) {
        *lock(&self.fingerprint) = Some(fp);
    }

    fn record(&self, trigger: Trigger, outcome: &Outcome, fp: Option<Fingerprint>) {
        let now = SystemTime::now();
        let mut s = lock(&self.status);
        if matches!(outcome, Outcome::Swapped { .. }) {
            s.loaded_at = now;
        }
        s.last = Some(LastReload {
            result: outcome.result(),
            trigger,
            at: now,
            errors: match outcome {
                Outcome::Rejected { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        });
        drop(s);
        *lock(&self.fingerprint) = fp;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data is replaced whole under the lock, so a poisoned value is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Re-read the policy directory and swap the snapshot if it compiles to a new version.
/// Serialized with every other reload; the old snapshot stays active on any error.
pub async fn reload(state: &State, trigger: Trigger) -> Outcome {
    let _serial = state.reloads.serial.lock().await;
    let current = state.snapshot();
    let dir = current.config.policies.dir.clone();
    let loaded = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            // Fingerprint first: a change racing with the read shows up at the next poll.
            let fp = fingerprint(&dir);
            (fp, load_dir(&dir, &|v| std::env::var(v).ok()))
        })
        .await
    };
    let (fp, compiled) = match loaded {
        Ok((fp, compiled)) => (Some(fp), compiled),
        Err(e) => (
            None,
            Err(vec![ConfigError {
                file: dir.display().to_string(),
                field: "-".into(),
                message: format!("policy compilation did not finish: {e}"),
            }]),
        ),
    };
    let active = current.policies.version().to_string();
    let outcome = match compiled {
        Ok(set) if set.version() == active => Outcome::Unchanged { version: active },
        Ok(set) => {
            let version = set.version().to_string();
            let rules = set.rules().len();
            let files = set.files().len();
            state.swap(current.with_policies(Arc::new(set)));
            metrics::set_policy_rules(rules);
            tracing::info!(
                trigger = trigger.as_str(),
                %version,
                previous = %active,
                rules,
                files,
                "policies reloaded"
            );
            Outcome::Swapped {
                version,
                previous: active,
            }
        }
        Err(errors) => {
            let locations: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.file, e.field))
                .collect();
            tracing::warn!(
                trigger = trigger.as_str(),
                active_version = %active,
                errors = errors.len(),
                at = ?locations,
                "policy reload rejected; the active policies stay in force (details: GET /admin/status)"
            );
            Outcome::Rejected {
                errors,
                active_version: active,
            }
        }
    };
    if let Outcome::Unchanged { version } = &outcome {
        tracing::debug!(trigger = trigger.as_str(), %version, "policies unchanged");
    }
    metrics::config_reload(outcome.result());
    state.reloads.record(trigger, &outcome, fp);
    outcome
}

/// One policy file as seen by the poller: name, then (size, mtime, inode) or unreadable.
type Entry = (PathBuf, Option<(u64, Option<SystemTime>, u64)>);

/// Cheap identity of the policy files (`None`: the directory cannot be read).
pub type Fingerprint = Option<Vec<Entry>>;

/// Names, sizes, mtimes and inodes of the files `load_dir` would read (symlinks followed).
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut out: Vec<Entry> = entries
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?;
            let ext = p.extension().and_then(|x| x.to_str()).unwrap_or_default();
            if name.starts_with('.') || !(ext == "toml" || ext == "json") {
                return None;
            }
            let meta = std::fs::metadata(&p).ok().filter(|m| m.is_file());
            Some((p, meta.map(|m| (m.len(), m.modified().ok(), inode(&m)))))
        })
        .collect();
    out.sort();
    Some(out)
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// Start the background reload task (watcher, poller, SIGHUP); it ends when `stop` is
/// cancelled. Must be called inside the tokio runtime. The SIGHUP handler and the directory
/// watch are in place when this returns, so later changes are seen; a change between the
/// initial load and this call is caught by the poller, which compares with the fingerprint
/// recorded by [`Reloads::set_fingerprint`] before the initial load.
pub fn spawn(state: Arc<State>, stop: CancellationToken) -> JoinHandle<()> {
    let hup = Hangup::install();
    let cfg = state.snapshot().config.policies.clone();
    let changed = Arc::new(tokio::sync::Notify::new());
    let watcher = cfg
        .watch
        .then(|| DirWatcher::start(&cfg.dir, changed.clone()));
    tokio::spawn(run(state, stop, hup, watcher, changed))
}

async fn run(
    state: Arc<State>,
    stop: CancellationToken,
    mut hup: Hangup,
    mut watcher: Option<DirWatcher>,
    changed: Arc<tokio::sync::Notify>,
) {
    let cfg = state.snapshot().config.policies.clone();
    let dir = cfg.dir.clone();
    let mut poll = tokio::time::interval_at(Instant::now() + cfg.poll_interval, cfg.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = changed.notified() => {
                // Trailing-edge debounce, capped so a steady trickle of events still reloads.
                let cap = Instant::now() + cfg.debounce.saturating_mul(10);
                loop {
                    let wake = (Instant::now() + cfg.debounce).min(cap);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep_until(wake) => break,
                        _ = changed.notified() => {}
                    }
                }
                reload(&state, Trigger::Watch).await;
            }
            _ = poll.tick(), if cfg.watch => {
                if let Some(w) = watcher.as_mut() {
                    w.rearm_if_lost(&dir, &changed);
                }
                let now = blocking_fingerprint(&dir).await;
                let seen = lock(&state.reloads.fingerprint).clone();
                if seen.as_ref() != Some(&now) {
                    reload(&state, Trigger::Poll).await;
                }
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading policies");
                reload(&state, Trigger::Signal).await;
            }
        }
    }
    drop(watcher);
    tracing::debug!("policy reload task stopped");
}

async fn blocking_fingerprint(dir: &Path) -> Fingerprint {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || fingerprint(&dir))
        .await
        .unwrap_or(None)
}

/// The directory watcher; re-created by the poller when its watch is lost (directory
/// removed or replaced, event queue overflow).
struct DirWatcher {
    inner: Option<RecommendedWatcher>,
    lost: Arc<AtomicBool>,
}

impl DirWatcher {
    fn start(dir: &Path, changed: Arc<tokio::sync::Notify>) -> DirWatcher {
        let lost = Arc::new(AtomicBool::new(false));
        let inner = match watch(dir, changed, lost.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory; polling only");
                None
            }
        };
        DirWatcher { inner, lost }
    }

    fn rearm_if_lost(&mut self, dir: &Path, changed: &Arc<tokio::sync::Notify>) {
        if self.inner.is_some() && !self.lost.load(Ordering::Acquire) {
            return;
        }
        self.inner = None;
        let fresh = DirWatcher::start(dir, changed.clone());
        if fresh.inner.is_some() {
            tracing::info!(dir = %dir.display(), "watching the policy directory again");
            // Whatever happened while unwatched is caught by this poll's fingerprint check.
            changed.notify_one();
        }
        *self = fresh;
    }
}

fn watch(
    dir: &Path,
    changed: Arc<tokio::sync::Notify>,
    lost: Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let watched = dir.to_path_buf();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if is_change(&ev.kind) {
                if matches!(ev.kind, notify::EventKind::Remove(_))
                    && ev.paths.iter().any(|p| p == &watched)
                {
                    lost.store(true, Ordering::Release);
                }
                changed.notify_one();
            }
        }
        Err(_) => {
            // Overflow or a backend error: events may be missing, so reload and re-arm.
            lost.store(true, Ordering::Release);
            changed.notify_one();
        }
    })?;
    w.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(w)
}

/// Whether an event can change what `load_dir` reads. Opens and reads are not changes
/// (our own reload reads the files); a close after writing is.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// SIGHUP stream (Unix); never fires elsewhere or when it cannot be installed.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    #[cfg(unix)]
    fn install() -> Hangup {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Hangup(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload via the admin API");
                Hangup(None)
            }
        }
    }

    #[cfg(not(unix))]
    fn install() -> Hangup {
        Hangup()
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.0.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// RFC 3339 UTC timestamp with seconds precision (`1970-01-01T00:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since the epoch (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn reads_are_not_changes() {
        use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }

    #[test]
    fn fingerprint_sees_policy_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let before = fingerprint(d);
        assert_eq!(before, Some(Vec::new()));
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        std::fs::write(d.join(".hidden.toml"), "x").unwrap();
        assert_eq!(fingerprint(d), before);
        std::fs::write(d.join("a.toml"), "x").unwrap();
        let one = fingerprint(d);
        assert_ne!(one, before);
        std::fs::write(d.join("a.toml"), "xy").unwrap();
        assert_ne!(fingerprint(d), one);
        assert_eq!(fingerprint(&d.join("missing")), None);
    }
}
