//! Per-endpoint circuit breaker and health statistics: a rolling error rate in one-second
//! buckets, the closed → open → half-open state machine, and recent time-to-first-byte
//! samples for `GET /admin/endpoints`.
//!
//! - **closed**: every call is admitted; each outcome is counted. When a failover policy's
//!   `error_rate_threshold` is reached over its `window_seconds` with at least
//!   `min_requests` outcomes, the breaker opens for `cooldown_ms`.
//! - **open**: the endpoint is skipped (not tried first) until the cool-down ends.
//! - **half-open**: after the cool-down exactly one call is admitted as a probe; success
//!   closes the breaker (counts cleared), failure opens it for another cool-down. A probe
//!   abandoned without an outcome (client gone) frees the probe slot.
//!
//! Time is `tokio::time::Instant`, so tests drive it with paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::failover::{BreakerSettings, MAX_WINDOW_SECONDS};

/// Samples kept for latency percentiles.
const LATENCY_SAMPLES: usize = 1024;

/// Breaker state as exposed (metric value in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Admitting calls (0).
    Closed,
    /// Skipped until the cool-down ends (1).
    Open,
    /// Admitting one probe (2).
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
    /// `parapet_endpoint_state` value.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// (second since `origin`, successes, failures), oldest first.
    buckets: VecDeque<(u64, u32, u32)>,
    latencies: VecDeque<Duration>,
    opened_total: u64,
}

/// One endpoint's breaker.
#[derive(Debug)]
pub struct Breaker {
    endpoint: String,
    origin: Instant,
    inner: Mutex<Inner>,
}

/// Whether a call may go to the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Admitted as the half-open probe.
    Probe,
    No,
}

/// A snapshot for `/admin/endpoints`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub endpoint: String,
    pub state: &'static str,
    /// Calls and failures over the last `window_seconds` (the longest window when asked).
    pub requests: u64,
    pub failures: u64,
    pub error_rate: f64,
    pub opened_total: u64,
    pub ttfb_ms_p50: Option<f64>,
    pub ttfb_ms_p90: Option<f64>,
    pub ttfb_ms_p99: Option<f64>,
    /// Milliseconds left of the cool-down while open.
    pub open_for_ms: Option<u64>,
}

impl Breaker {
    pub fn new(endpoint: &str) -> Arc<Breaker> {
        let b = Arc::new(Breaker {
            endpoint: endpoint.to_string(),
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                buckets: VecDeque::new(),
                latencies: VecDeque::new(),
                opened_total: 0,
            }),
        });
        crate::metrics::endpoint_state(endpoint, State::Closed.gauge());
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way
        // that matters more than losing health data: keep going with the inner value.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state (an expired open phase reads as half-open).
    pub fn state(&self) -> State {
        let g = self.lock();
        match g.phase {
            Phase::Closed => State::Closed,
            Phase::Open { until } if Instant::now() < until => State::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Ask to send a call now.
    pub fn admit(&self) -> Admit {
        let mut g = self.lock();
        let now = Instant::now();
        match g.phase {
            Phase::Closed => Admit::Yes,
            Phase::Open { until } if now < until => Admit::No,
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                g.phase = Phase::HalfOpen { probing: true };
                crate::metrics::endpoint_state(&self.endpoint, State::HalfOpen.gauge());
                Admit::Probe
            }
            Phase::HalfOpen { probing: true } => Admit::No,
        }
    }

    /// A probe ended without an outcome: let the next call probe.
    pub fn release_probe(&self) {
        let mut g = self.lock();
        if let Phase::HalfOpen { probing: true } = g.phase {
            g.phase = Phase::HalfOpen { probing: false };
        }
    }

    /// Record one outcome. `settings`: the calling route's failover policy (none = count
    /// only, never open). `probe`: this call was the half-open probe.
    pub fn record(
        &self,
        ok: bool,
        ttfb: Option<Duration>,
        probe: bool,
        settings: Option<&BreakerSettings>,
    ) {
        let now = Instant::now();
        let sec = now.saturating_duration_since(self.origin).as_secs();
        let mut g = self.lock();
        match g.buckets.back_mut() {
            Some((s, okc, errc)) if *s == sec => {
                if ok {
                    *okc += 1
                } else {
                    *errc += 1
                }
            }
            _ => g.buckets.push_back((sec, u32::from(ok), u32::from(!ok))),
        }
        while g
            .buckets
            .front()
            .is_some_and(|(s, _, _)| sec.saturating_sub(*s) >= MAX_WINDOW_SECONDS)
        {
            g.buckets.pop_front();
        }
        if let Some(t) = ttfb {
            if g.latencies.len() == LATENCY_SAMPLES {
                g.latencies.pop_front();
            }
            g.latencies.push_back(t);
        }
        let half_open = matches!(g.phase, Phase::HalfOpen { .. });
        if probe || half_open {
            if ok {
                g.phase = Phase::Closed;
                g.buckets.clear();
                crate::metrics::endpoint_state(&self.endpoint, State::Closed.gauge());
                tracing::info!(endpoint = %self.endpoint, "circuit closed (probe succeeded)");
            } else if let Some(s) = settings {
                self.open(&mut g, now, s.cooldown);
            } else if probe {
                g.phase = Phase::HalfOpen { probing: false };
            }
            return;
        }
        let (Some(s), Phase::Closed, false) = (settings, &g.phase, ok) else {
            return;
        };
        let (total, failures) = window_counts(&g.buckets, sec, s.window);
        if total >= u64::from(s.min_requests.max(1))
            && failures as f64 / total as f64 >= s.error_rate_threshold
        {
            self.open(&mut g, now, s.cooldown);
        }
    }

    fn open(&self, g: &mut Inner, now: Instant, cooldown: Duration) {
        g.phase = Phase::Open {
            until: now + cooldown,
        };
        g.opened_total += 1;
        crate::metrics::endpoint_state(&self.endpoint, State::Open.gauge());
        tracing::warn!(endpoint = %self.endpoint, cooldown_ms = cooldown.as_millis() as u64, "circuit opened");
    }

    /// Counts and percentiles over `window`.
    pub fn health(&self, window: Duration) -> Health {
        let state = self.state();
        let now = Instant::now();
        let sec = now.saturating_duration_since(self.origin).as_secs();
        let g = self.lock();
        let (requests, failures) = window_counts(&g.buckets, sec, window);
        let mut lat: Vec<Duration> = g.latencies.iter().copied().collect();
        lat.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            if lat.is_empty() {
                return None;
            }
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            Some((lat[i].as_secs_f64() * 1_000_000.0).round() / 1000.0)
        };
        let open_for_ms = match g.phase {
            Phase::Open { until } if now < until => {
                Some(u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        Health {
            endpoint: self.endpoint.clone(),
            state: state.as_str(),
            requests,
            failures,
            error_rate: if requests == 0 {
                0.0
            } else {
                failures as f64 / requests as f64
            },
            opened_total: g.opened_total,
            ttfb_ms_p50: pct(0.5),
            ttfb_ms_p90: pct(0.9),
            ttfb_ms_p99: pct(0.99),
            open_for_ms,
        }
    }
}

/// (outcomes, failures) in the buckets of the last `window` (whole seconds, current included).
fn window_counts(buckets: &VecDeque<(u64, u32, u32)>, sec: u64, window: Duration) -> (u64, u64) {
    let span = window.as_secs().max(1);
    buckets
        .iter()
        .rev()
        .take_while(|(s, _, _)| sec.saturating_sub(*s) < span)
        .fold((0, 0), |(t, f), (_, ok, err)| {
            (t + u64::from(*ok) + u64::from(*err), f + u64::from(*err))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            error_rate_threshold: 0.5,
            window: Duration::from_secs(10),
            min_requests: 4,
            cooldown: Duration::from_millis(500),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_threshold_with_min_requests_then_probes_and_closes() {
        let b = Breaker::new("t-open");
        let s = settings();
        // 3 failures: below min_requests, stays closed.
        for _ in 0..3 {
            b.record(false, None, false, Some(&s));
        }
        assert_eq!(b.state(), State::Closed);
        // 4th outcome, 4/4 failures ≥ 0.5 → open.
        b.record(false, None, false, Some(&s));
        assert_eq!(b.state(), State::Open);
        let gauge = || {
            crate::metrics::METRICS
                .endpoint_state
                .with_label_values(&["t-open"])
                .get()
        };
        assert_eq!(gauge(), 1);
        assert_eq!(b.admit(), Admit::No);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(b.admit(), Admit::No);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), State::HalfOpen);
        // Exactly one probe.
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::No);
        assert_eq!(gauge(), 2);
        b.record(true, Some(Duration::from_millis(3)), true, Some(&s));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(gauge(), 0);
        assert_eq!(b.admit(), Admit::Yes);
        assert_eq!(b.health(s.window).requests, 0, "counts cleared on close");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_abandoned_probe_frees_the_slot() {
        let b = Breaker::new("t-probe");
        let s = settings();
        for _ in 0..4 {
            b.record(false, None, false, Some(&s));
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(b.admit(), Admit::Probe);
        b.release_probe();
        assert_eq!(b.admit(), Admit::Probe, "abandoned probe freed the slot");
        b.record(false, None, true, Some(&s));
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.health(s.window).opened_total, 2);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(b.admit(), Admit::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window_and_successes_dilute() {
        let b = Breaker::new("t-window");
        let s = settings();
        for _ in 0..3 {
            b.record(false, None, false, Some(&s));
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        // The three failures are outside the 10 s window now.
        b.record(false, None, false, Some(&s));
        assert_eq!(b.state(), State::Closed);
        for _ in 0..5 {
            b.record(true, Some(Duration::from_millis(10)), false, Some(&s));
        }
        // 2 failures of 7 < 0.5.
        b.record(false, None, false, Some(&s));
        assert_eq!(b.state(), State::Closed);
        let h = b.health(s.window);
        assert_eq!((h.requests, h.failures), (7, 2));
        assert_eq!(h.ttfb_ms_p50, Some(10.0));
        // Without settings (no policy) nothing opens.
        for _ in 0..50 {
            b.record(false, None, false, None);
        }
        assert_eq!(b.state(), State::Closed);
    }
}
