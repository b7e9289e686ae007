//! Per-stream guard cost on the load harness's streamed exchange (the mock's 25-event
//! answer, arriving in one frame as the relay coalesces it):
//! `cargo run --release --example streamcost [POLICY_DIR] [SSE_FILE]`.
use bytes::Bytes;
use parapet::guard::{policy, Ctx, Side};
use parapet::provider::ApiFormat;
use parapet::redact::stream::StreamGuard;
use parapet::redact::Redactor;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "policies".into());
    let file = args
        .next()
        .unwrap_or_else(|| "benches/load/mock-stream.sse".into());
    let set = match policy::load_dir(std::path::Path::new(&dir), &|_| None) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("policies: {e:?}");
            return;
        }
    };
    let stream = match std::fs::read(&file) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            eprintln!("{file}: {e}");
            return;
        }
    };
    let app = set.applicable(&Ctx {
        side: Side::Response,
        route: "openai",
        model: Some("gpt-4o-mini"),
    });
    let events = stream.windows(2).filter(|w| w == b"\n\n").count();
    for (name, split) in [("one frame", stream.len()), ("frames of 512 bytes", 512)] {
        let run = || {
            let mut g = StreamGuard::new(
                set.clone(),
                app.clone(),
                ApiFormat::OpenAiChat,
                Redactor::new(),
            );
            let mut n = 0;
            let mut at = 0;
            while at < stream.len() {
                let end = (at + split).min(stream.len());
                n += g.push_shared(&stream.slice(at..end)).len();
                at = end;
            }
            n + g.finish().len()
        };
        let mut n = 0;
        for _ in 0..2_000 {
            n += run();
        }
        let iters = 40_000u32;
        let start = Instant::now();
        for _ in 0..iters {
            n += run();
        }
        std::hint::black_box(n);
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
        println!("{us:7.2} µs per stream ({events} events, {name})");
    }
}
