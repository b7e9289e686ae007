//! Scan throughput of the full built-in detector pack on clean English and PII-dense text.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parapet::policy::Scanner;

/// The allocator of the `parapet` binary (src/main.rs), so the in-process figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLEAN: &str = "The committee met on Tuesday to review the quarterly roadmap. Most of the \
discussion centred on onboarding, documentation quality and the migration of the reporting \
pipeline to the new storage layer. Several people asked whether the release could slip by a \
week; the consensus was that it should not, provided the remaining reviews are finished on \
time. Please summarise the main risks, list the owners of each action item, and suggest a \
short agenda for the follow-up meeting. Keep the tone friendly and avoid jargon where you can. ";

const DENSE: &str =
    "Contact jane.doe@example.com or call (415) 555-0132, card 4111 1111 1111 1111 \
exp 09/27, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-8745, server 10.20.30.40 and \
2001:db8::8a2e:370:7334. Token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A, key AKIAZ7Q2LMNB4K9RTX3W, \
db postgres://app:Xk9#2mLq@db.internal:5432/x, password=Vq8!rT2#pZ. Phone: +44 20 7946 0958. ";

fn fill(seed: &str, len: usize) -> String {
    let mut s = String::with_capacity(len + seed.len());
    while s.len() < len {
        s.push_str(seed);
    }
    let mut end = len;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn bench(c: &mut Criterion) {
    let scanner = match Scanner::builtin() {
        Ok(s) => s,
        Err(e) => panic!("built-in scanner failed to build: {e}"),
    };
    let mut g = c.benchmark_group("scan");
    // Prose with one PII/secret-rich paragraph per ~1.4 KB.
    let mixed = format!("{CLEAN}{CLEAN}{DENSE}");
    for (name, seed) in [
        ("clean", CLEAN),
        ("mixed", mixed.as_str()),
        ("dense", DENSE),
    ] {
        for size in [1024usize, 64 * 1024] {
            let text = fill(seed, size);
            g.throughput(Throughput::Bytes(text.len() as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &text, |b, t| {
                b.iter(|| black_box(scanner.scan(black_box(t))))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
