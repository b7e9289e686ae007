//! Crash test of the event store: the real `parapet` binary ingests under concurrent load
//! (single `POST /v1/events` and Igris batches on `POST /api/v1/ingest/raw`), is SIGKILLed at
//! a seeded pseudo-random moment, verified offline (`parapet verify --data DIR --json`),
//! restarted on the same data directory, and every event id acknowledged with a 2xx before
//! any kill must be in the store (export) with a chain that verifies (`GET
//! /v1/evidence/verify`).
//!
//! `PARAPET_CRASH_CYCLES` (default 5) sets the number of kills, `PARAPET_CRASH_SEED` the
//! seed (printed). Run with `--nocapture` to see the `crash: cycles=… acked=… lost=…` line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const KEY: &str = "pk-crash-test-key";
const WORKSPACE: &str = "ws-crash";
const LOAD_TASKS: usize = 4;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// splitmix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A running `parapet serve`; killed (SIGKILL) and reaped when dropped, so a failing
/// assertion never leaves a process behind.
struct Proc {
    child: Child,
    base: String,
    admin: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn write_config(dir: &Path) -> PathBuf {
    let hash = parapet::auth::KeyHash::of(KEY.as_bytes()).to_hex();
    let text = format!(
        r#"
[[endpoints]]
id = "oa"
kind = "openai"
base_url = "http://127.0.0.1:9"
[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "oa"
[[keys]]
id = "crash"
sha256 = "{hash}"
workspace = "{WORKSPACE}"
"#
    );
    let path = dir.join("parapet.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

fn spawn(config: &Path, data: &Path, log: &Path) -> Proc {
    let (dp, ap) = (free_port(), free_port());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the server log");
    let child = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("PARAPET_LISTEN", format!("127.0.0.1:{dp}"))
        .env("PARAPET_ADMIN_LISTEN", format!("127.0.0.1:{ap}"))
        .env("PARAPET_DATA_DIR", data)
        .env(
            "PARAPET_POLICIES_DIR",
            format!("{}/tests/fixtures/no-policies", env!("CARGO_MANIFEST_DIR")),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn parapet");
    Proc {
        child,
        base: format!("http://127.0.0.1:{dp}"),
        admin: format!("http://127.0.0.1:{ap}"),
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request; `Err` on any transport failure or timeout (expected around a kill).
async fn call(
    c: &HttpClient,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Bytes), String> {
    let mut b = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {KEY}"));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let payload = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
    let req = b.body(Full::new(payload)).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = c.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn wait_ready(p: &mut Proc, log: &Path) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!(
                "parapet exited ({status}) before ready; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok((s, _)) = call(&c, Method::GET, &format!("{}/readyz", p.admin), None).await {
            if s == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "parapet not ready within 30 s; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Default)]
struct Tally {
    acked: Vec<String>,
    requests: u64,
    unexpected: Vec<String>,
}

/// One client task: alternate single events and Igris batches (20–100) until `stop`.
async fn load(base: String, task: usize, cycle: usize, seed: u64, stop: Arc<AtomicBool>) -> Tally {
    let c = client();
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let prefix = format!("c{cycle}-t{task}-r{n}");
        n += 1;
        let (url, body, ids) = if rng.range(0, 2) == 0 {
            let id = format!("{prefix}-0");
            let body = json!({"type": "agent.tool_call", "event_id": id,
                "metadata": {"cycle": cycle}, "payload": {"tool_name": "search"}});
            (format!("{base}/v1/events"), body, vec![id])
        } else {
            let size = rng.range(20, 100) as usize;
            let ids: Vec<String> = (0..size).map(|i| format!("{prefix}-{i}")).collect();
            let events: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({"type": "tool_call", "toolName": "generate_report", "eventId": id,
                    "action": "allow", "metadata": {"model": "gpt-4o", "userId": "user_42"}})
                })
                .collect();
            (
                format!("{base}/api/v1/ingest/raw"),
                json!({ "events": events }),
                ids,
            )
        };
        t.requests += 1;
        match call(&c, Method::POST, &url, Some(&body)).await {
            Ok((s, _)) if s.is_success() => t.acked.extend(ids),
            Ok((s, b)) => t
                .unexpected
                .push(format!("{s}: {}", String::from_utf8_lossy(&b))),
            // The server is gone (killed): no acknowledgement, nothing to check.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    t
}

/// Every event id in the store of the workspace (export, oldest first).
async fn stored_ids(base: &str) -> HashSet<String> {
    let (s, body) = call(
        &client(),
        Method::GET,
        &format!("{base}/v1/evidence/export"),
        None,
    )
    .await
    .expect("export");
    assert_eq!(
        s,
        StatusCode::OK,
        "export: {}",
        String::from_utf8_lossy(&body)
    );
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).expect("export line is JSON");
            v["event_id"]
                .as_str()
                .expect("record has an event_id")
                .to_string()
        })
        .collect()
}

fn offline_verify(data: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("verify")
        .arg("--data")
        .arg(data)
        .arg("--json")
        .output()
        .expect("run parapet verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parapet verify after a kill: {} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("verify --json output");
    assert_eq!(v["ok"], true, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    let cycles: usize = std::env::var("PARAPET_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("PARAPET_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_c0de);
    eprintln!("crash: seed={seed} cycles={cycles} (PARAPET_CRASH_SEED / PARAPET_CRASH_CYCLES)");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let log = tmp.path().join("parapet.log");
    let config = write_config(tmp.path());
    let mut rng = Rng(seed);
    let mut acked: Vec<String> = Vec::new();
    let mut requests = 0u64;
    let started = Instant::now();

    for cycle in 0..cycles {
        let mut p = spawn(&config, &data, &log);
        wait_ready(&mut p, &log).await;
        // Everything acknowledged before the earlier kills is still there.
        let have = stored_ids(&p.base).await;
        let lost: Vec<&String> = acked.iter().filter(|id| !have.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged event(s) lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );

        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..LOAD_TASKS)
            .map(|t| tokio::spawn(load(p.base.clone(), t, cycle, rng.next(), stop.clone())))
            .collect();
        // A seeded moment: 150–1200 ms into the load.
        tokio::time::sleep(Duration::from_millis(rng.range(150, 1200))).await;
        p.child.kill().expect("SIGKILL parapet");
        let status = p.child.wait().expect("reap parapet");
        stop.store(true, Ordering::Relaxed);
        let mut cycle_acked = 0;
        for t in tasks {
            let t = tokio::time::timeout(Duration::from_secs(90), t)
                .await
                .expect("load task ends after the kill")
                .expect("load task did not panic");
            assert!(
                t.unexpected.is_empty(),
                "non-2xx answers: {:?}",
                &t.unexpected[..t.unexpected.len().min(3)]
            );
            requests += t.requests;
            cycle_acked += t.acked.len();
            acked.extend(t.acked);
        }
        drop(p);
        // The store as the kill left it verifies offline.
        let v = offline_verify(&data);
        eprintln!(
            "crash: cycle {cycle}: killed ({status}), {cycle_acked} acked this cycle, head seq {}",
            v["workspaces"][0]["head"]["seq"]
        );
    }

    // Final restart: every acknowledged id is present, the chain verifies live and offline.
    let mut p = spawn(&config, &data, &log);
    wait_ready(&mut p, &log).await;
    let have = stored_ids(&p.base).await;
    let lost = acked.iter().filter(|id| !have.contains(*id)).count();
    let (s, body) = call(
        &client(),
        Method::GET,
        &format!("{}/v1/evidence/verify", p.base),
        None,
    )
    .await
    .expect("GET /v1/evidence/verify");
    assert_eq!(s, StatusCode::OK);
    let live: Value = serde_json::from_slice(&body).expect("verify JSON");
    drop(p);
    offline_verify(&data);
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "event ids are unique");
    let verify = if live["ok"] == true { "ok" } else { "FAILED" };
    eprintln!(
        "crash: cycles={cycles} acked={} lost={lost} verify={verify} (requests={requests}, stored={}, {:.1} s)",
        acked.len(),
        have.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        cycles == 0 || !acked.is_empty(),
        "the load got no acknowledgement at all"
    );
    assert_eq!(lost, 0, "acknowledged events lost");
    assert_eq!(live["ok"], true, "live verify: {live}");
}
