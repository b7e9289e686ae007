//! Per-rule scan cost on the bench's dense and mixed texts: `cargo run --release --example rulecost`.
//! Builds one scanner per built-in rule and the full pack, and prints µs per 64 KB scan, so
//! a change to a detector can be weighed before the criterion bench. With an argument, only
//! the rules whose id contains it (and not the full pack).
use parapet::policy::{builtin_specs, ScannerBuilder};
use std::time::Instant;

const DENSE: &str =
    "Contact jane.doe@example.com or call (415) 555-0132, card 4111 1111 1111 1111 \
exp 09/27, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-8745, server 10.20.30.40 and \
2001:db8::8a2e:370:7334. Token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A, key AKIAZ7Q2LMNB4K9RTX3W, \
db postgres://app:Xk9#2mLq@db.internal:5432/x, password=Vq8!rT2#pZ. Phone: +44 20 7946 0958. ";

fn fill(seed: &str, len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(seed);
    }
    s.truncate(len);
    s
}

fn time_us(f: &mut dyn FnMut() -> usize) -> f64 {
    let mut n = 0;
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed().as_millis() < 300 {
        n += f();
        iters += 1;
    }
    std::hint::black_box(n);
    start.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
}

fn main() {
    let text = fill(DENSE, 64 * 1024);
    let only = std::env::args().nth(1);
    let mut full = ScannerBuilder::new();
    let mut rows = Vec::new();
    for (id, spec) in builtin_specs() {
        full.add(id.clone(), spec.clone());
        if only.as_deref().is_some_and(|o| !id.contains(o)) {
            continue;
        }
        let mut b = ScannerBuilder::new();
        b.add(id.clone(), spec);
        let Ok(s) = b.build() else {
            eprintln!("{id}: does not build alone");
            continue;
        };
        let us = time_us(&mut || s.scan_all(&text).len());
        rows.push((us, id));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (us, id) in rows.iter().take(25) {
        println!("{us:9.1} µs  {id}");
    }
    if only.is_some() {
        // A filter asks for those rules alone (e.g. under a profiler).
        return;
    }
    let Ok(full) = full.build() else {
        eprintln!("full pack does not build");
        return;
    };
    let us = time_us(&mut || full.scan(&text).len());
    println!(
        "FULL {us:.1} µs per 64 KB = {:.1} MB/s ({} matches)",
        text.len() as f64 / us,
        full.scan(&text).len()
    );
}
