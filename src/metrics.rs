//! Prometheus metrics: every metric name (one place), the process-wide registry `METRICS`
//! with typed handles, the small recording helpers the data plane calls, and the text
//! exposition served on the admin listener's `/metrics`.
//!
//! Names follow `parapet_<name>_<unit>[_total]`. Label values are bounded: `route` and
//! `endpoint` are configuration ids, `rule` is a policy rule id, `side` is
//! `request`/`response`, `action` is a policy action, `status_class` is one of
//! [`STATUS_CLASSES`], `result` one of [`RELOAD_RESULTS`]. Never pass request data
//! (paths, models, keys, matched text) as a label value.
//!
//! The registry is process-wide (like the Prometheus default registry): several `Server`s
//! in one process (tests) share it.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// `parapet_requests_total{route,endpoint,status_class}`: proxied calls by outcome.
pub const REQUESTS_TOTAL: &str = "parapet_requests_total";
/// `parapet_request_duration_seconds{route}`: whole call, request head to end of body.
pub const REQUEST_DURATION_SECONDS: &str = "parapet_request_duration_seconds";
/// `parapet_overhead_seconds{route}`: Parapet's own time (total minus upstream time): request
/// arrival to response body end minus the upstream exchange's time on the wire (`proxy`).
pub const OVERHEAD_SECONDS: &str = "parapet_overhead_seconds";
/// `parapet_upstream_ttfb_seconds{endpoint}`: upstream request sent → response head.
pub const UPSTREAM_TTFB_SECONDS: &str = "parapet_upstream_ttfb_seconds";
/// `parapet_stream_ttft_seconds{route}`: request received → first streamed token relayed.
pub const STREAM_TTFT_SECONDS: &str = "parapet_stream_ttft_seconds";
/// `parapet_policy_eval_seconds{side}`: policy evaluation time per call side.
pub const POLICY_EVAL_SECONDS: &str = "parapet_policy_eval_seconds";
/// `parapet_violations_total{rule,action,side}`: rule matches.
pub const VIOLATIONS_TOTAL: &str = "parapet_violations_total";
/// `parapet_redactions_total{rule}`: values redacted.
pub const REDACTIONS_TOTAL: &str = "parapet_redactions_total";
/// `parapet_denied_total{side}`: calls refused by a policy.
pub const DENIED_TOTAL: &str = "parapet_denied_total";
/// `parapet_config_reloads_total{result}`: policy reload attempts by result.
pub const CONFIG_RELOADS_TOTAL: &str = "parapet_config_reloads_total";
/// `parapet_config_last_reload_successful`: 1 unless the last reload attempt was rejected.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "parapet_config_last_reload_successful";
/// `parapet_policy_rules`: compiled rules in the active policy snapshot.
pub const POLICY_RULES: &str = "parapet_policy_rules";
/// `parapet_build_info{version}`: always 1; the label carries the crate version.
pub const BUILD_INFO: &str = "parapet_build_info";
/// `parapet_inflight_requests`: calls whose response (stream included) has not ended.
pub const INFLIGHT_REQUESTS: &str = "parapet_inflight_requests";

/// `parapet_events_written_total`: events stored (new records; duplicates not counted).
pub const EVENTS_WRITTEN_TOTAL: &str = "parapet_events_written_total";
/// `parapet_event_queue_depth`: messages waiting for the event writer.
pub const EVENT_QUEUE_DEPTH: &str = "parapet_event_queue_depth";
/// `parapet_event_write_batch_size`: events per writer batch (one flush each).
pub const EVENT_WRITE_BATCH_SIZE: &str = "parapet_event_write_batch_size";
/// `parapet_event_write_seconds`: time to write and flush one batch.
pub const EVENT_WRITE_SECONDS: &str = "parapet_event_write_seconds";
/// `parapet_event_queue_full_total`: proxy-path events that found the queue full and waited.
pub const EVENT_QUEUE_FULL_TOTAL: &str = "parapet_event_queue_full_total";
/// `parapet_events_dropped_total`: proxy-path events not stored (queue full for the whole
/// wait, store stopped, or a failed batch); always also logged.
pub const EVENTS_DROPPED_TOTAL: &str = "parapet_events_dropped_total";
/// `parapet_calls_unrecorded_total`: proxied calls whose events were not recorded because
/// no queue slot became free within `[store] queue_wait_ms` (or the store stopped).
pub const CALLS_UNRECORDED_TOTAL: &str = "parapet_calls_unrecorded_total";
/// `parapet_failovers_total{route,from,to,reason}`: a call moved on from endpoint `from` to
/// `to`; `reason` is one of [`FAILOVER_REASONS`].
pub const FAILOVERS_TOTAL: &str = "parapet_failovers_total";
/// `parapet_endpoint_state{endpoint}`: breaker state, 0 closed, 1 open, 2 half-open.
pub const ENDPOINT_STATE: &str = "parapet_endpoint_state";
/// Failover reasons (bounded label values).
pub const FAILOVER_REASONS: &[&str] = &[
    "connect_error",
    "reset",
    "timeout",
    "latency",
    "status",
    "stream_error",
    "circuit_open",
];

/// Buckets for event batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 4096.0,
];

/// Values of the `status_class` label.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "error"];
/// Values of the `result` label of [`CONFIG_RELOADS_TOTAL`].
pub const RELOAD_RESULTS: &[&str] = &["success", "unchanged", "error"];
/// `route` label value for calls that matched no route.
pub const NO_ROUTE: &str = "-";

/// Buckets for Parapet's own time and policy evaluation: 50 µs … 1 s.
pub const FAST_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];
/// Buckets for end-to-end and upstream latencies: 1 ms … 60 s.
pub const SLOW_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Typed handles into the registry.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub overhead: HistogramVec,
    pub upstream_ttfb: HistogramVec,
    pub stream_ttft: HistogramVec,
    pub policy_eval: HistogramVec,
    pub violations: IntCounterVec,
    pub redactions: IntCounterVec,
    pub denied: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub policy_rules: IntGauge,
    pub build_info: IntGaugeVec,
    pub inflight: IntGauge,
    pub events_written: IntCounter,
    pub event_queue_depth: IntGauge,
    pub event_write_batch_size: Histogram,
    pub event_write_seconds: Histogram,
    pub event_queue_full: IntCounter,
    pub events_dropped: IntCounter,
    pub calls_unrecorded: IntCounter,
    pub failovers: IntCounterVec,
    pub endpoint_state: IntGaugeVec,
}

/// The process-wide metrics.
// Every definition below is a constant; a failure is a programming error, caught by the
// unit test that forces initialisation.
#[allow(clippy::expect_used)]
pub static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::new().expect("metric definitions are valid"));

impl Metrics {
    /// A fresh registry with every Parapet metric registered (`METRICS` is the one in use).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<_> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, label: &str, buckets: &[f64]| -> prometheus::Result<_> {
                let h = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    &[label],
                )?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let gauge = |name: &str, help: &str| -> prometheus::Result<_> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let plain_counter = |name: &str, help: &str| -> prometheus::Result<_> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let plain_histogram = |name: &str, help: &str, buckets: &[f64]| -> prometheus::Result<_> {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let m = Metrics {
            events_written: plain_counter(EVENTS_WRITTEN_TOTAL, "Events stored (new records).")?,
            event_queue_depth: gauge(EVENT_QUEUE_DEPTH, "Messages waiting for the event writer.")?,
            event_write_batch_size: plain_histogram(
                EVENT_WRITE_BATCH_SIZE,
                "Events per writer batch (one flush each).",
                BATCH_BUCKETS,
            )?,
            event_write_seconds: plain_histogram(
                EVENT_WRITE_SECONDS,
                "Time to write and flush one event batch.",
                SLOW_BUCKETS,
            )?,
            event_queue_full: plain_counter(
                EVENT_QUEUE_FULL_TOTAL,
                "Proxy-path events that found the event queue full and waited.",
            )?,
            events_dropped: plain_counter(
                EVENTS_DROPPED_TOTAL,
                "Proxy-path events not stored (queue full for the whole wait, store stopped, failed batch).",
            )?,
            calls_unrecorded: plain_counter(
                CALLS_UNRECORDED_TOTAL,
                "Proxied calls not recorded: no event queue slot within the wait, or store stopped.",
            )?,
            failovers: counter(
                FAILOVERS_TOTAL,
                "Calls moved on to the next endpoint, by route, from, to and reason.",
                &["route", "from", "to", "reason"],
            )?,
            endpoint_state: {
                let g = IntGaugeVec::new(
                    Opts::new(ENDPOINT_STATE, "Breaker state: 0 closed, 1 open, 2 half-open."),
                    &["endpoint"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            requests: counter(
                REQUESTS_TOTAL,
                "Proxied calls by route, endpoint and status class.",
                &["route", "endpoint", "status_class"],
            )?,
            request_duration: histogram(
                REQUEST_DURATION_SECONDS,
                "Whole call duration, request head to end of the response body.",
                "route",
                SLOW_BUCKETS,
            )?,
            overhead: histogram(
                OVERHEAD_SECONDS,
                "Time spent in Parapet itself (total minus upstream time).",
                "route",
                FAST_BUCKETS,
            )?,
            upstream_ttfb: histogram(
                UPSTREAM_TTFB_SECONDS,
                "Upstream request sent to upstream response head.",
                "endpoint",
                SLOW_BUCKETS,
            )?,
            stream_ttft: histogram(
                STREAM_TTFT_SECONDS,
                "Request received to first streamed token relayed to the client.",
                "route",
                SLOW_BUCKETS,
            )?,
            policy_eval: histogram(
                POLICY_EVAL_SECONDS,
                "Policy evaluation time per call side.",
                "side",
                FAST_BUCKETS,
            )?,
            violations: counter(
                VIOLATIONS_TOTAL,
                "Policy rule matches by rule, action and side.",
                &["rule", "action", "side"],
            )?,
            redactions: counter(REDACTIONS_TOTAL, "Values redacted by rule.", &["rule"])?,
            denied: counter(
                DENIED_TOTAL,
                "Calls refused by a policy, by side.",
                &["side"],
            )?,
            config_reloads: counter(
                CONFIG_RELOADS_TOTAL,
                "Policy reload attempts by result (success, unchanged, error).",
                &["result"],
            )?,
            config_last_reload_successful: gauge(
                CONFIG_LAST_RELOAD_SUCCESSFUL,
                "1 unless the last policy reload attempt was rejected.",
            )?,
            policy_rules: gauge(
                POLICY_RULES,
                "Compiled rules in the active policy snapshot.",
            )?,
            build_info: {
                let g = IntGaugeVec::new(
                    Opts::new(BUILD_INFO, "Always 1; the version label is the build."),
                    &["version"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            inflight: gauge(
                INFLIGHT_REQUESTS,
                "Calls whose response (stream included) has not ended.",
            )?,
            registry,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.config_last_reload_successful.set(1);
        // Pre-create the bounded reload series so they read 0 before the first reload.
        for r in RELOAD_RESULTS {
            m.config_reloads.with_label_values(&[r]);
        }
        Ok(m)
    }

    /// The text exposition (Prometheus format 0.0.4).
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// `Content-Type` of [`Metrics::render`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `status_class` label of a response status; `None` = no response (connection or
/// protocol error, client gone).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// A call ended: counts it and observes its total duration. Call once per call, when the
/// response body (stream included) has ended or failed. `status` = `None` when the call did
/// not complete: no response status reached the client, or the body failed or was abandoned
/// after the head (upstream error mid-body, total timeout, client gone).
pub fn request_finished(route: &str, endpoint: &str, status: Option<u16>, total: Duration) {
    let m = &*METRICS;
    m.requests
        .with_label_values(&[route, endpoint, status_class(status)])
        .inc();
    m.request_duration
        .with_label_values(&[route])
        .observe(total.as_secs_f64());
}

/// Parapet's own time for a call (total minus upstream time; the proxy's `CallEnd` measures
/// it on the wire where it can: see `proxy`).
pub fn overhead(route: &str, overhead: Duration) {
    METRICS
        .overhead
        .with_label_values(&[route])
        .observe(overhead.as_secs_f64());
}

/// Upstream time to first byte (request sent → response head).
pub fn upstream_ttfb(endpoint: &str, d: Duration) {
    METRICS
        .upstream_ttfb
        .with_label_values(&[endpoint])
        .observe(d.as_secs_f64());
}

/// Streamed call: request received → first token relayed to the client.
pub fn stream_ttft(route: &str, d: Duration) {
    METRICS
        .stream_ttft
        .with_label_values(&[route])
        .observe(d.as_secs_f64());
}

/// Policy evaluation time of one side (`request` / `response`) of a call.
pub fn policy_eval(side: &str, d: Duration) {
    // The two sides' series resolved once: a label lookup per call cost more than the
    // observation (the series exist from the first call of either side on).
    static SIDES: LazyLock<[Histogram; 2]> = LazyLock::new(|| {
        ["request", "response"].map(|s| METRICS.policy_eval.with_label_values(&[s]))
    });
    let h = match side {
        "request" => SIDES.first(),
        "response" => SIDES.get(1),
        _ => None,
    };
    match h {
        Some(h) => h.observe(d.as_secs_f64()),
        None => METRICS
            .policy_eval
            .with_label_values(&[side])
            .observe(d.as_secs_f64()),
    }
}

/// A rule matched (`action` = deny/redact/alert/log, `side` = request/response).
pub fn violation(rule: &str, action: &str, side: &str) {
    METRICS
        .violations
        .with_label_values(&[rule, action, side])
        .inc();
}

/// `n` values redacted by `rule`.
pub fn redactions(rule: &str, n: u64) {
    METRICS.redactions.with_label_values(&[rule]).inc_by(n);
}

/// A call was refused by a policy on `side`.
pub fn denied(side: &str) {
    METRICS.denied.with_label_values(&[side]).inc();
}

/// A policy reload attempt ended with `result` (one of [`RELOAD_RESULTS`]).
pub fn config_reload(result: &str) {
    let m = &*METRICS;
    m.config_reloads.with_label_values(&[result]).inc();
    m.config_last_reload_successful
        .set(i64::from(result != "error"));
}

/// The active policy snapshot has `n` compiled rules.
pub fn set_policy_rules(n: usize) {
    METRICS
        .policy_rules
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// `n` messages entered the event queue.
pub fn event_queued(n: usize) {
    METRICS
        .event_queue_depth
        .add(i64::try_from(n).unwrap_or(i64::MAX));
}

/// `n` messages left the event queue (taken by the writer).
pub fn event_dequeued(n: usize) {
    METRICS
        .event_queue_depth
        .sub(i64::try_from(n).unwrap_or(i64::MAX));
}

/// The writer wrote (and flushed) a batch of `n` events in `d`.
pub fn event_batch_written(n: usize, d: Duration) {
    let m = &*METRICS;
    m.event_write_batch_size.observe(n as f64);
    m.event_write_seconds.observe(d.as_secs_f64());
}

/// `n` new events stored.
pub fn events_written(n: usize) {
    METRICS.events_written.inc_by(n as u64);
}

/// A proxy-path event found the queue full.
pub fn event_queue_full() {
    METRICS.event_queue_full.inc();
}

/// `n` events were not stored.
pub fn events_dropped(n: usize) {
    METRICS.events_dropped.inc_by(n as u64);
}

/// A call moved on from endpoint `from` to `to` for `reason` (one of [`FAILOVER_REASONS`]).
pub fn failover(route: &str, from: &str, to: &str, reason: &str) {
    METRICS
        .failovers
        .with_label_values(&[route, from, to, reason])
        .inc();
}

/// An endpoint's breaker changed state (`breaker::State::gauge`).
pub fn endpoint_state(endpoint: &str, value: i64) {
    METRICS
        .endpoint_state
        .with_label_values(&[endpoint])
        .set(value);
}

/// A proxied call could not be recorded.
pub fn call_unrecorded() {
    METRICS.calls_unrecorded.inc();
}

/// Counts one in-flight call until dropped: keep it alive with the response body so a
/// stream counts until its last frame (or until the client goes away).
#[must_use = "the call counts as in flight only while the guard lives"]
pub struct Inflight(());

/// Start counting a call as in flight.
pub fn inflight() -> Inflight {
    METRICS.inflight.inc();
    Inflight(())
}

impl Drop for Inflight {
    fn drop(&mut self) {
        METRICS.inflight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_and_renders_every_family() {
        // Forces `METRICS`: a bad definition fails here, not in production.
        set_policy_rules(3);
        config_reload("success");
        {
            let _g = inflight();
            assert!(METRICS.inflight.get() >= 1);
        }
        request_finished("r", "e", Some(204), Duration::from_millis(3));
        overhead("r", Duration::ZERO);
        upstream_ttfb("e", Duration::from_millis(1));
        stream_ttft("r", Duration::from_millis(1));
        policy_eval("request", Duration::from_micros(80));
        violation("p/kw", "deny", "request");
        redactions("p/email", 2);
        denied("request");
        event_queued(2);
        event_dequeued(2);
        event_batch_written(3, Duration::from_millis(2));
        events_written(3);
        event_queue_full();
        events_dropped(0);
        call_unrecorded();
        failover("r", "a", "b", "status");
        endpoint_state("a", 1);
        let text = String::from_utf8(METRICS.render().unwrap()).unwrap();
        for name in [
            REQUESTS_TOTAL,
            REQUEST_DURATION_SECONDS,
            OVERHEAD_SECONDS,
            UPSTREAM_TTFB_SECONDS,
            STREAM_TTFT_SECONDS,
            POLICY_EVAL_SECONDS,
            VIOLATIONS_TOTAL,
            REDACTIONS_TOTAL,
            DENIED_TOTAL,
            CONFIG_RELOADS_TOTAL,
            CONFIG_LAST_RELOAD_SUCCESSFUL,
            POLICY_RULES,
            BUILD_INFO,
            INFLIGHT_REQUESTS,
            EVENTS_WRITTEN_TOTAL,
            EVENT_QUEUE_DEPTH,
            EVENT_WRITE_BATCH_SIZE,
            EVENT_WRITE_SECONDS,
            EVENT_QUEUE_FULL_TOTAL,
            EVENTS_DROPPED_TOTAL,
            CALLS_UNRECORDED_TOTAL,
            FAILOVERS_TOTAL,
            ENDPOINT_STATE,
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(
            text.contains(r#"parapet_requests_total{endpoint="e",route="r",status_class="2xx"}"#)
        );
        assert!(text.contains("parapet_overhead_seconds_bucket{route=\"r\",le=\"0.00005\"} 1"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(Some(101)), "1xx");
        assert_eq!(status_class(None), "error");
        assert_eq!(status_class(Some(42)), "error");
        for s in [Some(100), Some(301), Some(404), Some(500), None] {
            assert!(STATUS_CLASSES.contains(&status_class(s)));
        }
    }
}
