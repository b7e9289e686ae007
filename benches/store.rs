//! Event-store benchmark (`harness = false`): end-to-end ingestion throughput over HTTP
//! (single `POST /v1/events`, batches of 100 on `POST /api/v1/ingest/raw`, durable: a 2xx
//! only after the group-commit flush) and `GET /v1/evidence/events` latency on a store
//! filled with 1,000,000 events. Parapet runs in-process (`parapet::Server::start`), the
//! client is hyper on 127.0.0.1 in the same process.
//!
//! ```text
//! cargo bench --bench store                    # ingestion (about 1 minute)
//! cargo bench --bench store -- --quick         # ingestion, CI size (about 15 s)
//! cargo bench --bench store -- --query         # 1 M-event fill + query latency
//! cargo bench --bench store -- --all           # both
//!   --events N       events for the query phase (default 1000000; --quick: 100000)
//!   --store DIR      keep the filled store in DIR and reuse it when it is already there
//! ```
//! `PARAPET_BENCH_QUICK=1` is the same as `--quick`. Results: markdown on stdout and in
//! `benches/store-results.md` (the section of the phase that ran is replaced).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use parapet::store::evidence::Timestamp;
use parapet::store::{Event, Store};
use serde_json::Value;

/// The allocator of the `parapet` binary (src/main.rs), so the in-process figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "pk-bench-store";
const WORKSPACE: &str = "ws-bench";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Opts {
    quick: bool,
    ingest: bool,
    query: bool,
    events: usize,
    store: Option<PathBuf>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = has("--quick") || std::env::var_os("PARAPET_BENCH_QUICK").is_some();
    let all = has("--all");
    let query = all || has("--query");
    Opts {
        quick,
        ingest: all || has("--ingest") || !query,
        query,
        events: value("--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        store: value("--store").map(PathBuf::from),
    }
}

/// splitmix64 (deterministic data and query parameters).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

async fn start_server(data_dir: &Path) -> parapet::Server {
    let hash = parapet::auth::KeyHash::of(KEY.as_bytes()).to_hex();
    let toml = format!(
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
id = "bench"
sha256 = "{hash}"
workspace = "{WORKSPACE}"
"#
    );
    let env = vec![
        ("PARAPET_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        (
            "PARAPET_ADMIN_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "PARAPET_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        ),
        (
            "PARAPET_POLICIES_DIR".to_string(),
            format!("{}/policies", env!("CARGO_MANIFEST_DIR")),
        ),
    ];
    let config = parapet::config::load_str(&toml, Path::new("bench.toml"), &env, &|_| None)
        .unwrap_or_else(|e| panic!("bench config invalid:\n{e}"));
    parapet::Server::start(config)
        .await
        .unwrap_or_else(|e| panic!("parapet did not start: {e}"))
}

/// One connection per client (a pool of one idle connection per host).
fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http()
}

async fn call(c: &HttpClient, method: Method, url: &str, body: String) -> (u16, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request builds");
    let resp = tokio::time::timeout(Duration::from_secs(60), c.request(req))
        .await
        .expect("response within 60 s")
        .expect("request sent");
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    (status, body)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------- ingestion

#[derive(Clone, Copy)]
enum Shape {
    Single,
    Batch(usize),
}

fn single_body(id: &str) -> String {
    format!(
        r#"{{"type":"ai.request","request_id":"r-{id}","event_id":"{id}","model":"gpt-4o","metadata":{{"team":"finance"}},"payload":{{"messages":[{{"role":"user","content":"Summarize the quarterly report for the finance team in three bullet points."}}]}}}}"#
    )
}

fn batch_body(prefix: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 190 + 16);
    s.push_str(r#"{"events":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"type":"tool_call","toolName":"generate_report","eventId":"{prefix}-{i}","action":"allow","metadata":{{"model":"gpt-4o","userId":"user_{}","sessionId":"s-{}"}}}}"#,
            i % 37,
            i % 11
        ));
    }
    s.push_str("]}");
    s
}

struct Cell {
    events: u64,
    secs: f64,
    lat: Vec<Duration>,
}

async fn ingest_cell(base: &str, tag: &str, shape: Shape, conns: usize, dur: Duration) -> Cell {
    let started = Instant::now();
    let deadline = started + dur;
    let tasks: Vec<_> = (0..conns)
        .map(|w| {
            let base = base.to_string();
            let tag = tag.to_string();
            tokio::spawn(async move {
                let c = client();
                let mut lat = Vec::new();
                let mut events = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = format!("{tag}-w{w}-{n}");
                    n += 1;
                    let (url, body, k) = match shape {
                        Shape::Single => (format!("{base}/v1/events"), single_body(&id), 1),
                        Shape::Batch(k) => {
                            (format!("{base}/api/v1/ingest/raw"), batch_body(&id, k), k)
                        }
                    };
                    let t0 = Instant::now();
                    let (status, b) = call(&c, Method::POST, &url, body).await;
                    lat.push(t0.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
                    events += k as u64;
                }
                (events, lat)
            })
        })
        .collect();
    let mut cell = Cell {
        events: 0,
        secs: 0.0,
        lat: Vec::new(),
    };
    for t in tasks {
        let (e, l) = t.await.expect("client task");
        cell.events += e;
        cell.lat.extend(l);
    }
    cell.secs = started.elapsed().as_secs_f64();
    cell.lat.sort();
    cell
}

async fn ingest(quick: bool) -> String {
    let tmp = tempfile::tempdir().expect("temp dir");
    let server = start_server(tmp.path()).await;
    let base = format!("http://{}", server.data_addr);
    let dur = Duration::from_secs(if quick { 2 } else { 6 });
    // Warm-up (connections, page cache, allocator); not reported.
    ingest_cell(
        &base,
        "warm",
        Shape::Batch(100),
        4,
        Duration::from_millis(500),
    )
    .await;
    let mut md = String::from(
        "| workload | connections | events/s | requests/s | p50 ms | p99 ms | target |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let conns = [1usize, 16, 64];
    for (shape, name, target) in [
        (Shape::Single, "single `POST /v1/events`", 5_000.0),
        (
            Shape::Batch(100),
            "batch of 100 `POST /api/v1/ingest/raw`",
            50_000.0,
        ),
    ] {
        for &c in &conns {
            let tag = format!(
                "{}-c{c}",
                if matches!(shape, Shape::Single) {
                    "s"
                } else {
                    "b"
                }
            );
            let cell = ingest_cell(&base, &tag, shape, c, dur).await;
            let eps = cell.events as f64 / cell.secs;
            let rps = cell.lat.len() as f64 / cell.secs;
            let verdict = if eps >= target { "met" } else { "below" };
            let line = format!(
                "| {name} | {c} | {eps:.0} | {rps:.0} | {} | {} | ≥ {target:.0}: {verdict} |\n",
                ms(pct(&cell.lat, 0.50)),
                ms(pct(&cell.lat, 0.99)),
            );
            eprint!("{line}");
            md.push_str(&line);
        }
    }
    server.shutdown().await;
    md
}

// ---------------------------------------------------------------- 1 M events: fill + query

const STATUSES: [&str; 6] = [
    "answered", "answered", "answered", "refused", "blocked", "error",
];
const ORIGINS: [&str; 4] = ["proxy", "api", "manual_post", "sdk"];
const ROUTES: [&str; 5] = ["chat", "support", "search", "summarize", "agent-tools"];
const APPS: [&str; 6] = [
    "clarixo:assistant:playground_chat",
    "clarixo:assistant:support",
    "helpdesk:triage",
    "docs:search",
    "finance:reports",
    "agents:planner",
];
const PROJECTS: [&str; 3] = ["proj_alpha", "proj_beta", "proj_gamma"];
const KINDS: [&str; 4] = ["ai.request", "ai.response", "ai.error", "agent.tool_call"];
const SESSIONS: u64 = 1000;
/// 2026-10-01T00:00:00Z; events are 2.5 s apart (1 M events ≈ 29 days), jitter ±5 min.
const T0_SECS: i64 = 1_790_812_800;

fn fill_event(i: usize, rng: &mut Rng) -> Event {
    let mut ev = Event::new(KINDS[i % 4], WORKSPACE, format!("req-{}", i / 2));
    let e = &mut ev.evidence;
    e.event_id = format!("ev-{i:08}");
    e.session_id = Some(format!("sess-{:04}", rng.below(SESSIONS)));
    e.final_status = rng.pick(&STATUSES).into();
    e.record_origin = rng.pick(&ORIGINS).into();
    e.route_path = Some(rng.pick(&ROUTES).into());
    e.application_id = Some(rng.pick(&APPS).into());
    e.project_id = Some(rng.pick(&PROJECTS).into());
    e.provider = Some("openai".into());
    e.model = Some(
        rng.pick(&["gpt-4o", "gpt-4.1-mini", "claude-sonnet-4"])
            .into(),
    );
    e.user_ref = Some(format!("user-{}", rng.below(5000)));
    e.input_summary = Some(format!(
        "Customer {} asks about invoice {} and the refund policy for annual plans; wants a summary.",
        rng.below(100_000),
        rng.below(1_000_000)
    ));
    e.output_summary = Some(
        "Explained the refund window (30 days), linked the policy page, offered escalation.".into(),
    );
    let jitter = rng.below(600) as i64 - 300;
    let micros = (i as i64) * 2_500_000 + jitter * 1_000_000 + rng.below(1_000_000) as i64;
    e.recorded_at = Timestamp {
        secs: T0_SECS + micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as u32,
    }
    .to_rfc3339();
    ev.set("latency_ms", rng.below(3000))
        .set("status", 200)
        .set("usage", serde_json::json!({"prompt_tokens": rng.below(2000), "completion_tokens": rng.below(800)}))
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Fill `dir` with `n` events through `Store::write` (4096 per sled batch, like the writer
/// thread), flushing every 16 batches and at the end. Returns the seconds it took.
fn fill(dir: &Path, n: usize) -> f64 {
    let store = Store::open(dir, 256 << 20).expect("open the store");
    let mut heads = HashMap::new();
    let mut rng = Rng(42);
    let started = Instant::now();
    let mut i = 0;
    let mut batches = 0;
    while i < n {
        let end = (i + parapet::store::MAX_BATCH_EVENTS).min(n);
        let events: Vec<Event> = (i..end).map(|j| fill_event(j, &mut rng)).collect();
        store.write(&mut heads, events).expect("fill write");
        batches += 1;
        if batches % 16 == 0 {
            store.flush().expect("flush");
        }
        if batches % 64 == 0 {
            eprintln!(
                "fill: {end} events, {:.0} events/s",
                end as f64 / started.elapsed().as_secs_f64()
            );
        }
        i = end;
    }
    store.flush().expect("flush");
    let secs = started.elapsed().as_secs_f64();
    drop(store);
    secs
}

fn rfc(micros: i64) -> String {
    Timestamp {
        secs: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as u32,
    }
    .to_rfc3339()
}

struct Measured {
    lat: Vec<Duration>,
    returned: u64,
    partial_empty: u64,
}

/// Sequential requests on one connection; stops early after `budget` (slow shapes).
async fn measure(base: &str, urls: &[String], budget: Duration) -> Measured {
    let c = client();
    // Warm-up: the first tenth, not counted.
    for u in urls.iter().take(urls.len() / 10) {
        call(&c, Method::GET, &format!("{base}{u}"), String::new()).await;
    }
    let mut m = Measured {
        lat: Vec::with_capacity(urls.len()),
        returned: 0,
        partial_empty: 0,
    };
    let started = Instant::now();
    for u in urls {
        if started.elapsed() > budget {
            break;
        }
        let t0 = Instant::now();
        let (status, body) = call(&c, Method::GET, &format!("{base}{u}"), String::new()).await;
        m.lat.push(t0.elapsed());
        assert_eq!(status, 200, "{u}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("JSON page");
        let n = v["event_count"].as_u64().unwrap_or(0);
        m.returned += n;
        if n == 0 && v["next_cursor"].is_string() {
            m.partial_empty += 1;
        }
    }
    m.lat.sort();
    m
}

async fn query(o: &Opts) -> String {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = o.store.clone().unwrap_or_else(|| tmp.path().join("data"));
    std::fs::create_dir_all(&dir).expect("store dir");
    let n = o.events;
    let stats = dir.join("bench-fill-seconds.txt");
    let fill_secs = if dir.join("conf").exists() {
        eprintln!("query: reusing the store in {}", dir.display());
        std::fs::read_to_string(&stats)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
    } else {
        eprintln!("query: filling {n} events into {}", dir.display());
        let d = dir.clone();
        Some(
            tokio::task::spawn_blocking(move || fill(&d, n))
                .await
                .expect("fill"),
        )
    };
    if let Some(s) = fill_secs {
        std::fs::write(&stats, format!("{s}\n")).expect("write the fill time");
    }
    let size = dir_size(&dir);
    let server = start_server(&dir).await;
    let base = format!("http://{}", server.data_addr);
    let reqs = if o.quick { 300 } else { 1000 };
    let budget = Duration::from_secs(if o.quick { 20 } else { 60 });
    let mut rng = Rng(7);
    let span_micros = (n as i64) * 2_500_000;
    let q = |s: &str| s.to_string();
    let mut shapes: Vec<(&str, Vec<String>)> = vec![
        (
            "no filter (latest 20)",
            (0..reqs).map(|_| q("/v1/evidence/events")).collect(),
        ),
        (
            "`event_id=X`",
            (0..reqs)
                .map(|_| format!("/v1/evidence/events?event_id=ev-{:08}", rng.below(n as u64)))
                .collect(),
        ),
        (
            "`session_id=X` (≈1000 per session)",
            (0..reqs)
                .map(|_| {
                    format!(
                        "/v1/evidence/events?session_id=sess-{:04}",
                        rng.below(SESSIONS)
                    )
                })
                .collect(),
        ),
        (
            "`final_status=X`",
            (0..reqs)
                .map(|_| {
                    format!(
                        "/v1/evidence/events?final_status={}",
                        rng.pick(&STATUSES[2..])
                    )
                })
                .collect(),
        ),
        (
            "`route_path=X` + 1 h `recorded_from`/`recorded_to`",
            (0..reqs)
                .map(|_| {
                    let from = T0_SECS * 1_000_000 + (rng.below(span_micros as u64) as i64);
                    format!(
                        "/v1/evidence/events?route_path={}&recorded_from={}&recorded_to={}",
                        rng.pick(&ROUTES),
                        rfc(from),
                        rfc(from + 3_600_000_000)
                    )
                })
                .collect(),
        ),
        (
            "1 h `recorded_from`/`recorded_to` only",
            (0..reqs)
                .map(|_| {
                    let from = T0_SECS * 1_000_000 + (rng.below(span_micros as u64) as i64);
                    format!(
                        "/v1/evidence/events?recorded_from={}&recorded_to={}",
                        rfc(from),
                        rfc(from + 3_600_000_000)
                    )
                })
                .collect(),
        ),
    ];
    // Cursor page 2: page 1 of a random session (and of no filter) fetched first, untimed.
    let c = client();
    let mut page2 = Vec::new();
    for i in 0..100 {
        let first = if i == 0 {
            "/v1/evidence/events".to_string()
        } else {
            format!(
                "/v1/evidence/events?session_id=sess-{:04}",
                rng.below(SESSIONS)
            )
        };
        let (_, body) = call(&c, Method::GET, &format!("{base}{first}"), String::new()).await;
        let v: Value = serde_json::from_slice(&body).expect("page 1");
        if let Some(cur) = v["next_cursor"].as_str() {
            let sep = if first.contains('?') { '&' } else { '?' };
            page2.push(format!("{first}{sep}cursor={cur}"));
        }
    }
    assert!(!page2.is_empty(), "no page 1 had a cursor");
    shapes.push((
        "cursor page 2 (`session_id=X&cursor=…`)",
        (0..reqs).map(|i| page2[i % page2.len()].clone()).collect(),
    ));

    let mut md = String::new();
    md.push_str(&format!(
        "Store: {n} events in one workspace, {:.0} MiB on disk{}.\n\n",
        size as f64 / (1024.0 * 1024.0),
        match fill_secs {
            Some(s) => format!(
                ", filled in {s:.1} s ({:.0} events/s through `Store::write`, 4096 per batch)",
                n as f64 / s
            ),
            None => " (reused; fill time unknown)".into(),
        }
    ));
    md.push_str(&format!(
        "Up to {reqs} sequential requests per shape on one connection (after {} warm-up requests; at most {} s per shape), limit 20 (default).\n\n",
        reqs / 10,
        budget.as_secs()
    ));
    md.push_str("| query | requests | p50 ms | p99 ms | max ms | events/page (avg) | empty pages with a cursor | p99 ≤ 10 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (name, urls) in &shapes {
        let m = measure(&base, urls, budget).await;
        let p99 = pct(&m.lat, 0.99);
        let line = format!(
            "| {name} | {} | {} | {} | {} | {:.1} | {} | {} |\n",
            m.lat.len(),
            ms(pct(&m.lat, 0.50)),
            ms(p99),
            ms(m.lat.last().copied().unwrap_or_default()),
            m.returned as f64 / m.lat.len() as f64,
            m.partial_empty,
            if p99 <= Duration::from_millis(10) {
                "met"
            } else {
                "**missed**"
            }
        );
        eprint!("{line}");
        md.push_str(&line);
    }
    server.shutdown().await;
    md
}

// ---------------------------------------------------------------- report

fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let (start, end) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let block = format!("{start}\n{body}{end}\n");
    match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{block}{}",
                &doc[..a],
                doc[b + end.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{doc}{block}"),
    }
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/store-results.md");
    let mut doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| "# Event store benchmark results\n\nWritten by `cargo bench --bench store`; 2-core shared machine, in-process client on 127.0.0.1.\n\n".into());
    let when = Timestamp::now().to_rfc3339();
    let quick = if o.quick { " --quick" } else { "" };
    let mut out = String::new();
    if o.ingest {
        let table = rt.block_on(ingest(o.quick));
        let body = format!(
            "## Ingestion (durable: 2xx after the flush)\n\n{when}, `cargo bench --bench store -- --ingest{quick}`\n\n{table}\n"
        );
        doc = replace_section(&doc, "ingest", &body);
        out.push_str(&body);
    }
    if o.query {
        let table = rt.block_on(query(&o));
        let body = format!(
            "## Query latency, `GET /v1/evidence/events`\n\n{when}, `cargo bench --bench store -- --query{quick}`\n\n{table}\n"
        );
        doc = replace_section(&doc, "query", &body);
        out.push_str(&body);
    }
    println!("{out}");
    std::fs::write(&path, doc).expect("write benches/store-results.md");
}
