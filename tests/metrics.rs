//! `/metrics` on the admin listener: the exposition parses (every sample line is
//! `name{labels} value`, every `# TYPE` is valid and precedes its samples), and carries the
//! series this side owns: reload results, build info, policy rule count, in-flight gauge; and
//! the data-plane series recorded by the proxy (calls by status class, duration, overhead,
//! upstream TTFB, stream TTFT, policy evaluation, violations, redactions, denials, failovers,
//! breaker state), plus the
//! `x-parapet-overhead-ms` header. The registry is process-wide, so counters are compared
//! before/after, never absolutely.

mod common;

use std::collections::BTreeMap;

use common::*;
use http::Method;
use parapet::mock::{FaultPlan, MockConfig, MockUpstream, PlannedFault};
use parapet::Server;
use serde_json::json;

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A minimal parser of the Prometheus text format 0.0.4; panics on anything malformed.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has name and kind");
            assert!(valid_name(name), "bad metric name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type in {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "duplicate TYPE {name}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                let mut labels = BTreeMap::new();
                // Label values written by this crate never contain `",` (no escapes needed here).
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(valid_name(k), "bad label name in {line:?}");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "bad sample name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its TYPE: {line:?}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (types, samples)
}

async fn scrape(p: &Server) -> (BTreeMap<String, String>, Vec<Sample>) {
    let r = send(
        Method::GET,
        &format!("http://{}/metrics", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers["content-type"]
    );
    parse(&r.text())
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// This server's `/admin/status` document.
async fn admin_status(p: &parapet::Server) -> serde_json::Value {
    send(
        Method::GET,
        &format!("http://{}/admin/status", p.admin_addr),
        &[],
        "",
    )
    .await
    .json()
}

#[tokio::test]
async fn metrics_parse_and_count_reloads() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = |word: &str| {
        format!("[policy]\nid = \"p\"\n\n[[rules]]\nid = \"kw\"\nkeywords = [\"{word}\"]\naction = \"deny\"\ndirection = \"request\"\n")
    };
    std::fs::write(dir.path().join("p.toml"), policy("forbidden-word")).unwrap();
    let cfg = format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = false\ndebounce_ms = 50\npoll_interval_ms = 200\n",
        passthrough_config(&m.url(), "", ""),
        dir.path().display()
    );
    let p = start(&cfg).await;

    let (types, before) = scrape(&p).await;
    for (name, kind) in [
        ("parapet_config_reloads_total", "counter"),
        ("parapet_build_info", "gauge"),
        ("parapet_policy_rules", "gauge"),
        ("parapet_inflight_requests", "gauge"),
        ("parapet_config_last_reload_successful", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert_eq!(
        value(
            &before,
            "parapet_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let reloads = |s: &[Sample], result: &str| {
        value(s, "parapet_config_reloads_total", &[("result", result)])
            .expect("reload series pre-created")
    };

    // A changed file reloaded through the admin API: one success.
    std::fs::write(dir.path().join("p.toml"), policy("other-word")).unwrap();
    let r = send(
        Method::POST,
        &format!("http://{}/admin/reload", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A few requests through the proxy to the mock.
    for _ in 0..3 {
        let r = post(
            &format!("http://{}/v1/chat/completions", p.data_addr),
            &[],
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (_, after) = scrape(&p).await;
    assert!(reloads(&after, "success") >= reloads(&before, "success") + 1.0);
    // `parapet_policy_rules` is process-wide: other tests of this binary start servers with
    // other policy sets concurrently, so the server's own count is checked on /admin/status.
    assert!(value(&after, "parapet_policy_rules", &[]).is_some());
    let status = admin_status(&p).await;
    assert_eq!(status["policies"]["rules"], 1, "{status}");

    // A broken file: counted as an error, flagged by the last-reload gauge.
    std::fs::write(dir.path().join("p.toml"), "[policy\n").unwrap();
    let r = send(
        Method::POST,
        &format!("http://{}/admin/reload", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let (_, broken) = scrape(&p).await;
    assert!(reloads(&broken, "error") >= reloads(&after, "error") + 1.0);
    assert_eq!(
        value(&broken, "parapet_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let status = admin_status(&p).await;
    assert_eq!(
        status["policies"]["rules"], 1,
        "old snapshot stays: {status}"
    );

    let r = send(
        Method::POST,
        &format!("http://{}/metrics", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    p.shutdown().await;
    m.shutdown().await;
}

#[test]
fn parser_rejects_malformed_expositions() {
    for bad in [
        "# TYPE x countr\nx 1\n",
        "x 1\n",
        "# TYPE x counter\nx{a=\"1\" 1\n",
        "# TYPE x counter\nx one\n",
        "# TYPE 1x counter\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "{bad:?} accepted"
        );
    }
    let (_, ok) = parse("# HELP x h\n# TYPE x counter\nx{a=\"1\",b=\"2\"} 3\n");
    assert_eq!(ok[0].labels.len(), 2);
}

/// A sample's value, 0 when the series does not exist yet.
fn val(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or(0.0)
}

fn guarded_config(upstream: &str, extra_server: &str) -> String {
    format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = false\n",
        passthrough_config(upstream, extra_server, ""),
        shipped_policies()
    )
}

const GITHUB_TOKEN: &str = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";

/// A mix of calls through the shipped policies moves every data-plane series. Other tests in
/// this binary also use the `openai` route concurrently, so deltas are lower bounds.
#[tokio::test]
async fn proxied_calls_move_request_latency_and_policy_series() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let fallback = MockUpstream::start(MockConfig::default()).await.unwrap();
    // The `openai` route fails over from `oa` to `fb` on a 503 (only: the plain upstream
    // failure below is a 502 and reaches the client).
    let cfg = format!(
        r#"{}
[[endpoints]]
id = "fb"
kind = "openai"
base_url = "{}"
api_key_env = "TEST_PROVIDER_KEY"
[[failover_policies]]
id = "fo"
route_id = "openai"
primary_endpoint = "oa"
fallback_endpoints = ["fb"]
retry_on_status = [503]
"#,
        guarded_config(&m.url(), ""),
        fallback.url()
    );
    let p = start(&cfg).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let chat = |text: &str| json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    let (_, before) = scrape(&p).await;

    // Allowed, plain (buffered and guarded: the shipped policies have response rules).
    let r = post(&url, &[], &chat("hello there")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Allowed, streamed.
    let mut streamed = chat("stream me a story");
    streamed["stream"] = json!(true);
    let s = post_streamed(&url, &[], &streamed).await;
    assert_eq!(s.status, 200);
    assert!(!s.frames.is_empty());
    // Redacted: an email in the prompt.
    let r = post(&url, &[], &chat("write to jane.doe@example.com please")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Denied: a GitHub token in the prompt.
    let r = post(&url, &[], &chat(&format!("deploy with {GITHUB_TOKEN}"))).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Upstream failure.
    let r = post(&url, &[("x-mock-status", "502")], &chat("hi")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    // Failed over: the primary answers 503, the fallback 200.
    m.set_fault(Some(FaultPlan {
        fault: PlannedFault::Status(http::StatusCode::SERVICE_UNAVAILABLE),
        rate: 1.0,
    }));
    let r = post(&url, &[], &chat("fail me over")).await;
    m.set_fault(None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fallback.requests().len(), 1);
    // No route: counted under the `-` route.
    let r = post(
        &format!("http://{}/v2/elsewhere", p.data_addr),
        &[],
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // A call is recorded as its body ends, which can be just after the client read it.
    let routed = |s: &[Sample]| -> f64 {
        s.iter()
            .filter(|x| {
                x.name == "parapet_requests_total"
                    && x.labels.get("route").map(String::as_str) == Some("openai")
            })
            .map(|x| x.value)
            .sum()
    };
    let (mut types, mut after) = scrape(&p).await;
    for _ in 0..100 {
        if routed(&after) >= routed(&before) + 6.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        (types, after) = scrape(&p).await;
    }
    for (name, kind) in [
        ("parapet_requests_total", "counter"),
        ("parapet_request_duration_seconds", "histogram"),
        ("parapet_overhead_seconds", "histogram"),
        ("parapet_upstream_ttfb_seconds", "histogram"),
        ("parapet_stream_ttft_seconds", "histogram"),
        ("parapet_policy_eval_seconds", "histogram"),
        ("parapet_violations_total", "counter"),
        ("parapet_redactions_total", "counter"),
        ("parapet_denied_total", "counter"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    let delta = |name: &str, labels: &[(&str, &str)]| {
        val(&after, name, labels) - val(&before, name, labels)
    };
    let requests = |class: &str| {
        delta(
            "parapet_requests_total",
            &[
                ("route", "openai"),
                ("endpoint", "oa"),
                ("status_class", class),
            ],
        )
    };
    assert!(requests("2xx") >= 3.0, "2xx {}", requests("2xx"));
    assert!(requests("4xx") >= 1.0, "4xx {}", requests("4xx"));
    assert!(requests("5xx") >= 1.0, "5xx {}", requests("5xx"));
    // The failed-over call: counted under the endpoint that answered, and as a failover.
    let via_fallback = delta(
        "parapet_requests_total",
        &[
            ("route", "openai"),
            ("endpoint", "fb"),
            ("status_class", "2xx"),
        ],
    );
    assert!(via_fallback >= 1.0, "via fallback {via_fallback}");
    let failovers = delta(
        "parapet_failovers_total",
        &[
            ("route", "openai"),
            ("from", "oa"),
            ("to", "fb"),
            ("reason", "status"),
        ],
    );
    assert!(failovers >= 1.0, "failovers {failovers}");
    assert_eq!(
        types.get("parapet_failovers_total").map(String::as_str),
        Some("counter")
    );
    // One 503 in the breaker's window is far below `min_requests`: `oa` stays closed.
    assert_eq!(
        value(&after, "parapet_endpoint_state", &[("endpoint", "oa")]),
        Some(0.0)
    );
    let no_route = delta(
        "parapet_requests_total",
        &[("route", "-"), ("endpoint", "-"), ("status_class", "4xx")],
    );
    assert!(no_route >= 1.0, "no route {no_route}");

    let openai = [("route", "openai")];
    assert!(delta("parapet_request_duration_seconds_count", &openai) >= 6.0);
    assert!(delta("parapet_overhead_seconds_count", &openai) >= 6.0);
    assert!(delta("parapet_overhead_seconds_count", &[("route", "-")]) >= 1.0);
    // The denied call never reached the upstream: four upstream heads.
    assert!(delta("parapet_upstream_ttfb_seconds_count", &[("endpoint", "oa")]) >= 4.0);
    assert!(delta("parapet_upstream_ttfb_seconds_count", &[("endpoint", "fb")]) >= 1.0);
    assert!(delta("parapet_stream_ttft_seconds_count", &openai) >= 1.0);
    // Request side evaluated on the six routed calls, response side on the three buffered 2xx.
    assert!(delta("parapet_policy_eval_seconds_count", &[("side", "request")]) >= 6.0);
    assert!(delta("parapet_policy_eval_seconds_count", &[("side", "response")]) >= 3.0);
    // Histogram sums are in seconds and plausible (a local call takes far below 10 s).
    let overhead_sum = delta("parapet_overhead_seconds_sum", &openai);
    assert!(overhead_sum > 0.0 && overhead_sum < 10.0, "{overhead_sum}");

    assert!(
        delta(
            "parapet_violations_total",
            &[
                ("rule", "secrets/deny-in-request"),
                ("action", "deny"),
                ("side", "request")
            ]
        ) >= 1.0
    );
    assert!(delta("parapet_denied_total", &[("side", "request")]) >= 1.0);
    assert!(
        delta(
            "parapet_violations_total",
            &[
                ("rule", "pii/email"),
                ("action", "redact"),
                ("side", "request")
            ]
        ) >= 1.0
    );
    assert!(delta("parapet_redactions_total", &[("rule", "pii/email")]) >= 1.0);
    // Never request data as a label value.
    for s in &after {
        for v in s.labels.values() {
            assert!(
                !v.contains("jane.doe") && !v.contains("ghp_") && !v.contains("/v1/"),
                "request data in a label: {s:?}"
            );
        }
    }
    p.shutdown().await;
    m.shutdown().await;
    fallback.shutdown().await;
}

/// A streamed call counts in flight and is finished (counted, timed) when its body ends, not
/// at the response head. Only this test uses the `anthropic` route in this binary.
#[tokio::test]
async fn streamed_call_is_counted_at_the_end_of_its_body() {
    use http_body_util::BodyExt;
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&passthrough_config(&m.url(), "", "")).await;
    let labels = [("route", "anthropic")];
    let finished = |s: &[Sample]| val(s, "parapet_request_duration_seconds_count", &labels);
    let (_, before) = scrape(&p).await;

    let body = json!({"model": "claude", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "abcdefghijklmnopqrstuvwxyz"}]});
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/v1/messages", p.data_addr))
        .header("content-type", "application/json")
        .header("x-mock-chunk-delay-ms", "60")
        .header("x-mock-chunk-size", "5")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let started = std::time::Instant::now();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_, at_head) = scrape(&p).await;
    assert_eq!(finished(&at_head), finished(&before), "counted at the head");
    assert!(val(&at_head, "parapet_inflight_requests", &[]) >= 1.0);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(!bytes.is_empty());
    // The body end is recorded as the last frame is handed to hyper; give it a moment.
    let mut after = at_head;
    for _ in 0..50 {
        (_, after) = scrape(&p).await;
        if finished(&after) > finished(&before) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(finished(&after), finished(&before) + 1.0);
    assert_eq!(
        val(
            &after,
            "parapet_requests_total",
            &[
                ("route", "anthropic"),
                ("endpoint", "an"),
                ("status_class", "2xx")
            ]
        ) - val(
            &before,
            "parapet_requests_total",
            &[
                ("route", "anthropic"),
                ("endpoint", "an"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
    // Duration covers the whole stream (several 60 ms gaps), not just the head.
    let dur = val(&after, "parapet_request_duration_seconds_sum", &labels)
        - val(&before, "parapet_request_duration_seconds_sum", &labels);
    assert!(
        dur >= 0.2 && dur <= elapsed + 0.05,
        "duration {dur} elapsed {elapsed}"
    );
    // The first token went out well before the end.
    let ttft = val(&after, "parapet_stream_ttft_seconds_sum", &labels)
        - val(&before, "parapet_stream_ttft_seconds_sum", &labels);
    assert!(ttft > 0.0 && ttft < dur, "ttft {ttft} duration {dur}");
    // Overhead (time to head minus upstream TTFB) is small next to the stream.
    let overhead = val(&after, "parapet_overhead_seconds_sum", &labels)
        - val(&before, "parapet_overhead_seconds_sum", &labels);
    assert!((0.0..0.2).contains(&overhead), "overhead {overhead}");
    p.shutdown().await;
    m.shutdown().await;
}

#[tokio::test]
async fn overhead_header_is_off_by_default_and_on_when_configured() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});

    let off = start(&guarded_config(&m.url(), "")).await;
    let r = post(
        &format!("http://{}/v1/chat/completions", off.data_addr),
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-parapet-overhead-ms").is_none());
    off.shutdown().await;

    let on = start(&guarded_config(&m.url(), "overhead_header = true")).await;
    let ms = |r: &Reply| -> f64 {
        let v = r.headers["x-parapet-overhead-ms"]
            .to_str()
            .unwrap()
            .to_string();
        let (_, decimals) = v.split_once('.').expect("decimal point");
        assert_eq!(decimals.len(), 3, "{v}");
        v.parse().unwrap()
    };
    // Upstream answers after 300 ms: not counted as overhead.
    let r = post(
        &format!("http://{}/v1/chat/completions", on.data_addr),
        &[("x-mock-delay-ms", "300")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = ms(&r);
    assert!((0.0..250.0).contains(&v), "{v}");
    // Streamed answers and Parapet's own errors carry it too.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let s = post_streamed(
        &format!("http://{}/v1/chat/completions", on.data_addr),
        &[],
        &streamed,
    )
    .await;
    assert!(s.headers.contains_key("x-parapet-overhead-ms"));
    let r = post(
        &format!("http://{}/v1/chat/completions", on.data_addr),
        &[],
        &json!({"model": "m", "messages": [{"role": "user", "content": format!("key {GITHUB_TOKEN}")}]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(ms(&r) >= 0.0);
    on.shutdown().await;
    m.shutdown().await;
}

#[test]
fn overhead_header_env_override() {
    let load = |env: &[(&str, &str)]| {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parapet::config::load_str(
            &passthrough_config("http://127.0.0.1:1", "", ""),
            std::path::Path::new("test.toml"),
            &env,
            &|_| Some("k".into()),
        )
    };
    let pol = ("PARAPET_POLICIES_DIR", no_policies());
    let base = [(pol.0, pol.1.as_str())];
    assert!(!load(&base).unwrap().server.overhead_header);
    for (v, want) in [("true", true), ("1", true), ("false", false), ("0", false)] {
        let c = load(&[base[0], ("PARAPET_OVERHEAD_HEADER", v)]).unwrap();
        assert_eq!(c.server.overhead_header, want, "{v}");
    }
    assert!(load(&[base[0], ("PARAPET_OVERHEAD_HEADER", "yes")]).is_err());
}

/// A client that leaves before the response head is still counted once, as `error`.
#[tokio::test]
async fn call_abandoned_before_the_head_is_counted_as_error() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let cfg = format!(
        "[[endpoints]]\nid = \"slow\"\nkind = \"openai\"\nbase_url = \"{}\"\n\n[[routes]]\nid = \"gone\"\npath_prefix = \"/v1/\"\nendpoint = \"slow\"\n",
        m.url()
    );
    let p = start(&cfg).await;
    let labels = [
        ("route", "gone"),
        ("endpoint", "slow"),
        ("status_class", "error"),
    ];
    let (_, before) = scrape(&p).await;
    let gone = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        post(
            &format!("http://{}/v1/chat/completions", p.data_addr),
            &[("x-mock-delay-ms", "3000")],
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await;
    assert!(gone.is_err(), "answered before the client left");
    let mut after = scrape(&p).await.1;
    for _ in 0..100 {
        if val(&after, "parapet_requests_total", &labels)
            > val(&before, "parapet_requests_total", &labels)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        after = scrape(&p).await.1;
    }
    assert_eq!(
        val(&after, "parapet_requests_total", &labels)
            - val(&before, "parapet_requests_total", &labels),
        1.0
    );
    p.shutdown().await;
    m.shutdown().await;
}
