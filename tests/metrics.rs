//! `/metrics` on the admin listener: the exposition parses (every sample line is
//! `name{labels} value`, every `# TYPE` is valid and precedes its samples), and carries the
//! series this side owns: reload results, build info, policy rule count, in-flight gauge.
//! The registry is process-wide, so counters are compared before/after, never absolutely.

mod common;

use std::collections::BTreeMap;

use common::*;
use http::Method;
use parapet::mock::{MockConfig, MockUpstream};
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
    assert_eq!(value(&after, "parapet_policy_rules", &[]), Some(1.0));

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
    assert_eq!(
        value(&broken, "parapet_policy_rules", &[]),
        Some(1.0),
        "old snapshot stays"
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
