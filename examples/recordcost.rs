//! Per-call recording cost, piece by piece, on the load harness's exchanges (a short chat
//! call; the mock's 25-event stream): `cargo run --release --example recordcost [SSE_FILE]`.
//! Prints µs per call for building the two events, preparing their stored form, reading the
//! captured stream back, and the store writer's batch write (no flush), so a change to the
//! recording path can be weighed before the load harness.
use parapet::provider::{ApiFormat, StreamNormalizer};
use parapet::sse::SseDecoder;
use parapet::store::record::Prepared;
use parapet::store::{kind, Event, Store};
use std::collections::HashMap;
use std::time::Instant;

/// The binary's allocator, so the figures are the proxy's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time_us(mut f: impl FnMut() -> usize) -> f64 {
    let mut n = 0;
    for _ in 0..200 {
        n += f();
    }
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed().as_millis() < 400 {
        n += f();
        iters += 1;
    }
    std::hint::black_box(n);
    start.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
}

/// The two events of a plain chat call, built as `proxy::record` does.
fn call_events(i: usize) -> Vec<Event> {
    let rid = format!("0193a5b2-7c1d-7e4f-9a0b-{i:012x}");
    let base = |k: &str| {
        Event::new(k, "default", rid.as_str())
            .route("openai")
            .endpoint("mock-openai")
            .provider("openai")
            .model("gpt-4o-mini")
    };
    vec![
        base(kind::AI_REQUEST)
            .decision("allow")
            .violations(&[])
            .final_status("allowed")
            .set("method", "POST")
            .set("path", "/v1/chat/completions")
            .set("stream", false)
            .set("api", "openai_chat")
            .input_summary("Hello there, how are you today?", 256),
        base(kind::AI_RESPONSE)
            .latency_ms(0.412)
            .violations(&[])
            .model("gpt-4o-mini")
            .status(200)
            .ttft_ms(0.401)
            .set("upstream_ttfb_ms", 0.388)
            .failover_path(&["mock-openai"])
            .set(
                "usage",
                serde_json::json!({"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}),
            )
            .set("finish_reason", vec!["stop"])
            .output_summary("You said: Hello there, how are you today? This is a mock answer.", 256),
    ]
}

/// The recorder's read-back of a captured stream: SSE frames, then the normalizer.
fn read_back(stream: &[u8]) -> usize {
    let mut norm = StreamNormalizer::new(ApiFormat::OpenAiChat);
    let mut n = 0;
    parapet::sse::for_each_event(stream, |event, data| {
        n += norm.push_data(event, data).map_or(0, |items| items.len());
    });
    n
}

/// The read-back as it was before `sse::for_each_event`: the incremental decoder's frames.
fn read_back_decoder(stream: &[u8]) -> usize {
    let mut d = SseDecoder::new();
    let mut frames = d.feed_vec(stream).unwrap_or_default();
    frames.extend(d.finish());
    let mut norm = StreamNormalizer::new(ApiFormat::OpenAiChat);
    frames
        .iter()
        .filter_map(|f| f.event())
        .filter_map(|ev| norm.push(ev).ok())
        .map(|items| items.len())
        .sum()
}

fn main() {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "benches/load/mock-stream.sse".into());
    let stream = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            return;
        }
    };
    if std::env::var_os("RECORDCOST_STREAM_ONLY").is_some() {
        // For a profiler: the stream read-back alone, for a few seconds.
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed().as_secs() < 4 {
            n += read_back(&stream);
        }
        println!("{n}");
        return;
    }
    let write_only = std::env::var_os("RECORDCOST_WRITE_ONLY").is_some();
    let build = time_us(|| call_events(1).len());
    let prepare = time_us(|| {
        call_events(1)
            .into_iter()
            .map(Prepared::new)
            .map(|p| p.evidence_hash.len())
            .sum()
    }) - build;
    let read_stream = time_us(|| read_back(&stream));
    let read_stream_decoder = time_us(|| read_back_decoder(&stream));
    if !write_only {
        println!("build ai.request + ai.response      {build:6.2} µs per call");
        println!("prepare stored form (2 events)      {prepare:6.2} µs per call");
        println!("read back the 25-event stream       {read_stream:6.2} µs per call");
        println!("  (with the incremental decoder     {read_stream_decoder:6.2} µs)");
    }

    let dir = std::env::temp_dir().join(format!("parapet-recordcost-{}", std::process::id()));
    let store = match Store::open(&dir, 64 << 20) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("store: {e}");
            return;
        }
    };
    // The writer's batches under load: ~32 calls (64 events) per linger.
    let calls = 32;
    let mut heads = HashMap::new();
    let mut batches = 0usize;
    let pool: Vec<Vec<Prepared>> = (0..64)
        .map(|b| {
            (0..calls)
                .flat_map(|c| call_events(b * calls + c))
                .map(Prepared::new)
                .collect()
        })
        .collect();
    let start = Instant::now();
    let mut written = 0usize;
    while start.elapsed().as_millis() < if write_only { 4000 } else { 1500 } {
        let batch = pool[batches % pool.len()].clone();
        match store.write_prepared(&mut heads, batch) {
            Ok(w) => written += w.len(),
            Err(e) => {
                eprintln!("write: {e}");
                break;
            }
        }
        batches += 1;
    }
    let per_call = start.elapsed().as_secs_f64() * 1e6 / (batches * calls) as f64;
    println!("writer batch write (no flush)       {per_call:6.2} µs per call ({written} events)");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
