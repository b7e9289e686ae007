//! Whole-request policy evaluation (parse body → normalize → scan every segment → redact →
//! re-serialize) with the shipped policies, on a ~2 KB chat body; and the streaming guard on
//! a 25-event SSE answer.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parapet::guard::{policy, Ctx, Side};
use parapet::provider::ApiFormat;
use parapet::redact::stream::StreamGuard;
use parapet::redact::Redactor;

/// The allocator of the `parapet` binary (src/main.rs), so the in-process figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn body(pii: bool) -> Vec<u8> {
    let para =
        "The quarterly report covers revenue, churn and hiring plans for the next two quarters. ";
    let mut user = para.repeat(10);
    if pii {
        user.push_str(
            "Contact jane.doe@example.com or +1 (415) 555-0132, card 4111 1111 1111 1111.",
        );
    }
    let v = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a careful assistant for the finance team. Answer briefly."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": para.repeat(8)},
            {"role": "user", "content": "Summarise it in three bullet points."}
        ]
    });
    serde_json::to_vec(&v).unwrap()
}

fn sse(text: &str, delta: usize) -> Vec<u8> {
    let mut out = String::new();
    for piece in text.as_bytes().chunks(delta) {
        let piece = String::from_utf8_lossy(piece);
        let v = serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        out.push_str(&format!("data: {v}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// The same answer as a Responses stream (numbered events, one text part).
fn responses_sse(text: &str, delta: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut seq = 0;
    let mut ev = |name: &str, mut v: serde_json::Value| {
        v["type"] = serde_json::json!(name);
        v["sequence_number"] = serde_json::json!(seq);
        seq += 1;
        out.push_str(&format!("event: {name}\ndata: {v}\n\n"));
    };
    ev(
        "response.created",
        serde_json::json!({"response": {"id": "r", "object": "response", "status": "in_progress", "output": []}}),
    );
    ev(
        "response.output_item.added",
        serde_json::json!({"output_index": 0, "item": {"id": "m", "type": "message", "role": "assistant", "content": []}}),
    );
    for piece in text.as_bytes().chunks(delta) {
        let piece = String::from_utf8_lossy(piece);
        ev(
            "response.output_text.delta",
            serde_json::json!({"item_id": "m", "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
        );
    }
    ev(
        "response.output_text.done",
        serde_json::json!({"item_id": "m", "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let set = Arc::new(policy::load_dir(&dir, &|_| None).unwrap());
    let req_app = set.applicable(&Ctx {
        side: Side::Request,
        route: "openai",
        model: Some("gpt-4o-mini"),
    });
    let resp_app = set.applicable(&Ctx {
        side: Side::Response,
        route: "openai",
        model: Some("gpt-4o-mini"),
    });

    let mut g = c.benchmark_group("request_eval");
    for (name, pii) in [("clean_2kb", false), ("pii_2kb", true)] {
        let raw = body(pii);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut v = parapet::provider::strict::parse_strict(&raw).unwrap();
                let mut r = Redactor::new();
                let out = set
                    .guard_request(ApiFormat::OpenAiChat, &mut v, &req_app, &mut r)
                    .unwrap();
                if out.modified {
                    serde_json::to_vec(&v).unwrap().len()
                } else {
                    raw.len()
                }
            })
        });
    }
    g.finish();

    // A short answer (25 events of 8 bytes, all within the hold-back window) and a long one
    // (2 KB in 4-byte deltas, ~token sized: 512 events, mostly in the steady state where
    // every delta releases text and the window is rescanned).
    let short = "Here is the summary you asked for, with the numbers from the report. ".repeat(3);
    let long = "The lighthouse keeper counted the ships that passed each night and wrote \
their names in a book that nobody else ever read. "
        .repeat(19);
    // Japanese prose with fullwidth commas and ideographic spaces (characters the guard
    // reads folded), 2 KB in deltas of two characters.
    let cjk = "灯台守は毎晩通り過ぎる船を数え，誰も読まない本にその名前を書いた。　".repeat(20);
    let cjk: String = cjk.chars().take(682).collect();
    let cases = [
        ("chat_25_events", sse(&short, 8), ApiFormat::OpenAiChat),
        (
            "chat_cjk_2kb_341_events",
            sse(&cjk, 6),
            ApiFormat::OpenAiChat,
        ),
        (
            "chat_2kb_512_events",
            sse(&long[..2048], 4),
            ApiFormat::OpenAiChat,
        ),
        (
            "responses_25_events",
            responses_sse(&short, 8),
            ApiFormat::OpenAiResponses,
        ),
    ];
    let mut g = c.benchmark_group("stream_guard");
    for (name, stream, format) in &cases {
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut guard =
                    StreamGuard::new(set.clone(), resp_app.clone(), *format, Redactor::new());
                let mut n = 0;
                for ev in stream.split_inclusive(|b| *b == b'\n') {
                    n += guard.push(ev).len();
                }
                n + guard.finish().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
