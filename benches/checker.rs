//! The linearizability checker on a generated 10,000-operation, 10-key, 10-client
//! linearizable key-value history (goal: at most 50 ms).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::check::linearizability::{check_kv, generate_linearizable_history, GenParams};
use faultline::Verdict;

/// Fixed so that every run measures the same history.
const SEED: u64 = 0x5EED_0001;

fn linearizable_10k(c: &mut Criterion) {
    let history = generate_linearizable_history(
        SEED,
        GenParams {
            ops: 10_000,
            keys: 10,
            clients: 10,
            info_percent: 0,
        },
    );
    // A benchmark of a wrong answer measures nothing.
    let first = check_kv(&history, Some(Duration::from_secs(60)));
    assert_eq!(first.verdict, Verdict::Pass);
    assert_eq!(first.keys.len(), 10);
    c.bench_function("check_kv 10k ops, 10 keys, 10 clients", |b| {
        b.iter(|| {
            let o = check_kv(
                std::hint::black_box(&history),
                Some(Duration::from_secs(60)),
            );
            assert_eq!(o.verdict, Verdict::Pass);
        })
    });
}

criterion_group!(benches, linearizable_10k);
criterion_main!(benches);
