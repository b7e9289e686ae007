//! Per-call policy cost on the load harness's chat exchange, piece by piece:
//! `cargo run --release --example chatcost [POLICY_DIR]`.
use parapet::guard::{policy, Ctx, Side};
use parapet::provider::ApiFormat;
use std::time::Instant;

const REQ: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello! Please summarise the plot of a short story about a lighthouse keeper."}]}"#;
const RESP: &[u8] = br#"{"id":"chatcmpl-mock-3140727","object":"chat.completion","created":1796358486,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,"message":{"role":"assistant","content":"You said: Hello! Please summarise the plot of a short story about a lighthouse keeper.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":22,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

fn time_ns(name: &str, f: &mut dyn FnMut() -> usize) {
    let mut n = 0;
    for _ in 0..10_000 {
        n += f();
    }
    let iters = 400_000u32;
    let start = Instant::now();
    for _ in 0..iters {
        n += f();
    }
    std::hint::black_box(n);
    let ns = start.elapsed().as_secs_f64() * 1e9 / f64::from(iters);
    println!("{ns:9.0} ns  {name}");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "policies".into());
    let set = match policy::load_dir(std::path::Path::new(&dir), &|_| None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("policies: {e:?}");
            return;
        }
    };
    let ctx = |side| Ctx {
        side,
        route: "openai",
        model: Some("gpt-4o-mini"),
    };
    time_ns("applicable (request)", &mut || {
        usize::from(set.applicable(&ctx(Side::Request)).any())
    });
    let req_app = set.applicable(&ctx(Side::Request));
    let resp_app = set.applicable(&ctx(Side::Response));
    time_ns("chat_request_texts", &mut || {
        parapet::provider::chat_request_texts(REQ).map_or(0, |t| t.len())
    });
    time_ns("answer_texts", &mut || {
        parapet::provider::answer_texts(RESP).map_or(0, |t| t.len())
    });
    time_ns("fast_clean request", &mut || {
        usize::from(set.fast_clean(ApiFormat::OpenAiChat, Side::Request, REQ, &req_app))
    });
    time_ns("fast_clean response", &mut || {
        usize::from(set.fast_clean(ApiFormat::OpenAiChat, Side::Response, RESP, &resp_app))
    });
    let text =
        "You said: Hello! Please summarise the plot of a short story about a lighthouse keeper.";
    time_ns("mask_all (88 chars)", &mut || set.mask_all(text).len());
    let cjk = "東京の天気は晴れです。明日の会議は十時からです。".repeat(30);
    time_ns(
        "fold check, 2 KB of CJK text (nothing to fold)",
        &mut || usize::from(parapet::policy::fold::fold(&cjk).is_some()),
    );
    let cyr = "Привет, как дела? Встреча завтра в десять. ".repeat(26);
    time_ns(
        "fold check, 2 KB of Cyrillic text (nothing to fold)",
        &mut || usize::from(parapet::policy::fold::fold(&cyr).is_some()),
    );
    if let Some(scanner) = set.scanner() {
        time_ns("scan_all_folded, 2 KB of CJK text", &mut || {
            scanner.scan_all_folded(&cjk).len()
        });
        time_ns("scan_all, 2 KB of CJK text", &mut || {
            scanner.scan_all(&cjk).len()
        });
        time_ns("scan_all (88 chars)", &mut || scanner.scan_all(text).len());
        let long = text.repeat(4);
        time_ns("scan_all (352 chars)", &mut || {
            scanner.scan_all(&long).len()
        });
    }
}
