//! Policy hot reload end to end: watcher (valid → invalid → valid), `POST /admin/reload`
//! reporting every error while the old snapshot stays active, a Kubernetes ConfigMap
//! `..data` symlink swap, SIGHUP, and many valid/invalid swaps under proxied load (no
//! request fails, no invalid snapshot is ever active). Waits poll `/admin/status` with a
//! deadline instead of sleeping.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use parapet::mock::{MockConfig, MockUpstream};
use parapet::Server;
use serde_json::{json, Value};

/// A valid policy file denying `word` on requests.
fn valid(policy: &str, word: &str) -> String {
    format!(
        r#"[policy]
id = "{policy}"

[[rules]]
id = "kw"
keywords = ["{word}"]
action = "deny"
direction = "request"
"#
    )
}

/// A policy file with two field errors (action, direction).
const TWO_FIELD_ERRORS: &str = r#"[policy]
id = "broken"

[[rules]]
id = "kw"
keywords = ["forbidden-word"]
action = "explode"
direction = "sideways"
"#;

/// A policy file that is not TOML.
const NOT_TOML: &str = "[policy\nid = ";

/// The version the proxy will report for these files (name + contents hash).
fn version_of(files: &[(&str, &str)]) -> String {
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, t)| (PathBuf::from(n), t.to_string()))
        .collect();
    match parapet::guard::policy::compile_sources(&sources, &|_| None) {
        Ok(set) => set.version().to_string(),
        Err(e) => panic!("test policy invalid: {e:?}"),
    }
}

/// Replace `dir/name` atomically (write a hidden temp file, rename), as editors and
/// deployment tools do, so no reader ever sees a half-written file.
fn put(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn config_text(upstream: &str, dir: &Path, watch: bool, debounce_ms: u64, poll_ms: u64) -> String {
    format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = {watch}\ndebounce_ms = {debounce_ms}\npoll_interval_ms = {poll_ms}\n",
        passthrough_config(upstream, "", ""),
        dir.display()
    )
}

async fn status(p: &Server) -> Value {
    let r = send(
        Method::GET,
        &format!("http://{}/admin/status", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn admin_reload(p: &Server) -> Reply {
    send(
        Method::POST,
        &format!("http://{}/admin/reload", p.admin_addr),
        &[],
        "",
    )
    .await
}

/// Poll `/admin/status` until `done` holds (10 s deadline); returns the matching document.
async fn wait_status(p: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(p).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn active(s: &Value) -> &str {
    s["policies"]["version"].as_str().unwrap_or_default()
}

fn last_result(s: &Value) -> &str {
    s["policies"]["last_reload"]["result"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn watcher_valid_then_invalid_then_valid() {
    let dir = tempfile::tempdir().unwrap();
    let v1_text = valid("p", "forbidden-word");
    let v2_text = valid("p", "other-word");
    put(dir.path(), "p.toml", &v1_text);
    let (v1, v2) = (
        version_of(&[("p.toml", &v1_text)]),
        version_of(&[("p.toml", &v2_text)]),
    );
    // Polling every minute: the watcher must do the work.
    let p = start(&config_text(
        "http://127.0.0.1:9",
        dir.path(),
        true,
        50,
        60_000,
    ))
    .await;

    let s = status(&p).await;
    assert_eq!(active(&s), v1);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["ready"], true);
    assert_eq!(s["policies"]["rules"], 1);
    assert_eq!(s["policies"]["last_reload"], Value::Null);
    assert_eq!(s["config"]["routes"], 2);
    assert_eq!(s["config"]["endpoints"], 2);
    assert!(s["policies"]["files"][0]
        .as_str()
        .unwrap()
        .ends_with("p.toml"));
    assert!(s["policies"]["loaded_at"].as_str().unwrap().ends_with('Z'));

    put(dir.path(), "p.toml", TWO_FIELD_ERRORS);
    let s = wait_status(&p, "the rejection", |s| last_result(s) == "error").await;
    assert_eq!(
        active(&s),
        v1,
        "a bad file must leave the old snapshot active"
    );
    let errors = s["policies"]["last_reload"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(p.state().snapshot().policies.version(), v1);

    put(dir.path(), "p.toml", &v2_text);
    let s = wait_status(&p, "v2", |s| active(s) == v2).await;
    assert_eq!(last_result(&s), "success");
    assert_eq!(s["policies"]["last_reload"]["errors"], json!([]));

    tokio::time::timeout(Duration::from_secs(10), p.shutdown())
        .await
        .expect("shutdown stops the reload task");
}

#[tokio::test]
async fn admin_reload_reports_every_error_and_keeps_the_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let v1_text = valid("p", "forbidden-word");
    put(dir.path(), "p.toml", &v1_text);
    let v1 = version_of(&[("p.toml", &v1_text)]);
    let p = start(&config_text(
        "http://127.0.0.1:9",
        dir.path(),
        false,
        50,
        200,
    ))
    .await;

    let r = admin_reload(&p).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"result": "ok", "changed": false, "version": v1})
    );

    put(dir.path(), "p.toml", TWO_FIELD_ERRORS);
    put(dir.path(), "q.json", NOT_TOML);
    let r = admin_reload(&p).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["result"], "error");
    assert_eq!(body["active_version"], v1.as_str());
    let errors = body["errors"].as_array().unwrap();
    let seen: BTreeSet<(String, String)> = errors
        .iter()
        .map(|e| {
            assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
            let file = e["file"].as_str().unwrap();
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            (name.into_owned(), e["field"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        seen.contains(&("p.toml".into(), "rules[0].action".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("p.toml".into(), "rules[0].direction".into())),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(f, _)| f == "q.json"), "{seen:?}");

    let s = status(&p).await;
    assert_eq!(active(&s), v1);
    assert_eq!(last_result(&s), "error");
    assert_eq!(s["policies"]["last_reload"]["trigger"], "admin");
    assert_eq!(s["policies"]["last_reload"]["errors"], body["errors"]);

    // Fixed files: a new snapshot.
    std::fs::remove_file(dir.path().join("q.json")).unwrap();
    let v2_text = valid("p", "another");
    put(dir.path(), "p.toml", &v2_text);
    let r = admin_reload(&p).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["changed"], true);
    assert_eq!(body["version"], version_of(&[("p.toml", &v2_text)]));
    assert_eq!(body["previous_version"], v1.as_str());

    let r = send(
        Method::GET,
        &format!("http://{}/admin/reload", p.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    p.shutdown().await;
}

#[tokio::test]
async fn configmap_symlink_swap_is_picked_up() {
    // The kubelet layout: files are symlinks through `..data`, which is swapped atomically.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v1_text = valid("cm", "forbidden-word");
    let v2_text = valid("cm", "changed-word");
    std::fs::create_dir(d.join("..2024_01")).unwrap();
    std::fs::write(d.join("..2024_01/policy.toml"), &v1_text).unwrap();
    std::os::unix::fs::symlink("..2024_01", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.toml", d.join("policy.toml")).unwrap();
    let p = start(&config_text("http://127.0.0.1:9", d, true, 50, 60_000)).await;
    assert_eq!(
        active(&status(&p).await),
        version_of(&[("policy.toml", &v1_text)])
    );

    std::fs::create_dir(d.join("..2024_02")).unwrap();
    std::fs::write(d.join("..2024_02/policy.toml"), &v2_text).unwrap();
    std::os::unix::fs::symlink("..2024_02", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2024_01")).unwrap();

    let v2 = version_of(&[("policy.toml", &v2_text)]);
    wait_status(&p, "the ConfigMap swap", |s| active(s) == v2).await;
    p.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_even_without_watching() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "p.toml", &valid("p", "forbidden-word"));
    let p = start(&config_text(
        "http://127.0.0.1:9",
        dir.path(),
        false,
        50,
        200,
    ))
    .await;
    let v2_text = valid("p", "hup-word");
    put(dir.path(), "p.toml", &v2_text);
    // Watching is off: nothing changes until the signal. (Other servers in this test
    // process have the handler installed too, so the signal cannot kill the process.)
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let v2 = version_of(&[("p.toml", &v2_text)]);
    let s = wait_status(&p, "the SIGHUP reload", |s| active(s) == v2).await;
    assert_eq!(s["policies"]["last_reload"]["trigger"], "sighup");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_never_fails_a_request_nor_activates_an_invalid_snapshot() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let valid_texts = [
        valid("p", "forbidden-word"),
        valid("p", "other-forbidden-word"),
    ];
    let invalid_texts = [TWO_FIELD_ERRORS.to_string(), NOT_TOML.to_string()];
    let valid_versions: BTreeSet<String> = valid_texts
        .iter()
        .map(|t| version_of(&[("p.toml", t)]))
        .collect();
    put(dir.path(), "p.toml", &valid_texts[0]);
    let p = Arc::new(start(&config_text(&m.url(), dir.path(), true, 5, 50)).await);

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..3 {
        let (p, stop, failures, done) = (p.clone(), stop.clone(), failures.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let url = format!("http://{}/v1/chat/completions", p.data_addr);
            while !stop.load(Ordering::Relaxed) {
                // Client 0 streams slowly, so streams span reloads.
                let streaming = c == 0;
                let body = json!({"model": "gpt-4o-mini", "stream": streaming,
                    "messages": [{"role": "user", "content": "hello through reloads"}]});
                let ok = if streaming {
                    let s = post_streamed(
                        &url,
                        &[("x-mock-chunk-delay-ms", "5"), ("x-mock-chunk-size", "4")],
                        &body,
                    )
                    .await;
                    let text = String::from_utf8_lossy(&s.body()).into_owned();
                    (s.status == 200 && text.contains("[DONE]"))
                        .then_some(())
                        .ok_or(format!("stream {}: {text}", s.status))
                } else {
                    let r = post(&url, &[], &body).await;
                    (r.status == 200)
                        .then_some(())
                        .ok_or(format!("{}: {}", r.status, r.text()))
                };
                match ok {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    let observed = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let observer = {
        let (p, stop, observed) = (p.clone(), stop.clone(), observed.clone());
        tokio::spawn(async move {
            // (version changes seen, rejections seen)
            let (mut changes, mut rejections, mut last) = (0, 0, String::new());
            while !stop.load(Ordering::Relaxed) {
                let s = status(&p).await;
                if active(&s) != last {
                    changes += 1;
                    last = active(&s).to_string();
                }
                rejections += usize::from(last_result(&s) == "error");
                observed.lock().unwrap().insert(active(&s).to_string());
                // The snapshot requests load, not only what the status reports.
                observed
                    .lock()
                    .unwrap()
                    .insert(p.state().snapshot().policies.version().to_string());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (changes, rejections)
        })
    };

    let mut admin_answers = 0;
    for i in 0..50 {
        let text = if i % 2 == 0 {
            &invalid_texts[(i / 2) % 2]
        } else {
            &valid_texts[(i / 2) % 2]
        };
        put(dir.path(), "p.toml", text);
        if i % 5 == 0 {
            // Concurrent with the watcher and the poller: reloads serialize.
            let r = admin_reload(&p).await;
            assert!(r.status == 200 || r.status == 422, "{}", r.text());
            admin_answers += 1;
        }
        // Pace the swaps around the debounce so some settle and some are coalesced.
        tokio::time::sleep(Duration::from_millis(if i % 3 == 0 { 30 } else { 3 })).await;
    }
    let last = &valid_texts[1];
    put(dir.path(), "p.toml", last);
    let final_version = version_of(&[("p.toml", last)]);
    wait_status(&p, "the final version", |s| active(s) == final_version).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (changes, rejections) = observer.await.unwrap();
    let requests = done.load(Ordering::Relaxed);
    eprintln!("under load: {requests} requests, {changes} version changes and {rejections} rejected-state samples observed");
    assert!(
        changes >= 4,
        "the swaps did not take effect under load ({changes} changes)"
    );
    assert!(rejections >= 1, "no rejection observed");
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(requests >= 10, "too little traffic");
    assert_eq!(admin_answers, 10);
    let observed = observed.lock().unwrap().clone();
    assert!(
        observed.is_subset(&valid_versions),
        "observed {observed:?}, valid {valid_versions:?}"
    );
    let reloads = status(&p).await;
    assert!(reloads["policies"]["last_reload"].is_object());
    match Arc::try_unwrap(p) {
        Ok(p) => p.shutdown().await,
        Err(_) => panic!("server still shared"),
    }
    m.shutdown().await;
}
