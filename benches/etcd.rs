//! One seed of etcd-discovery-nemesis end to end: 3 etcd members, 10 service
//! instances and 5 callers (18 nodes) for 60 simulated seconds of random faults on
//! every node, with every check (Raft's invariants, the lease guarantee, the watch
//! guarantees, the key-value history) and the discovery figures (goal: median at
//! most 150 ms in release). Figures: results/bench/etcd.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::etcd::Etcd;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::System;

/// Fixed so that every run measures the same schedule.
const SEED: u64 = 1;

fn discovery_seed(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/etcd-discovery-nemesis.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(
        scenario
            .setup::<Etcd>(&[])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(setup.nodes, 18);
    let schedule = scenario.schedule(SEED, Etcd::clients(&setup));
    // A benchmark of a failing or trivial run measures nothing.
    let first = run_seed::<Etcd>(&scenario, &setup, &schedule, false);
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert!(!first.unknown);
    assert!(first.metrics["calls_count"] > 2_000.0);
    assert!(first.metrics["leases_granted"] >= 10.0);
    let mut group = c.benchmark_group("etcd");
    group.sample_size(20);
    group.bench_function(
        "etcd-discovery-nemesis seed 1 end to end (60 s simulated, 18 nodes)",
        |b| {
            b.iter(|| {
                let o = run_seed::<Etcd>(&scenario, &setup, &schedule, false);
                assert_eq!(o.trace_hash, first.trace_hash, "the run is deterministic");
            })
        },
    );
    group.finish();
}

criterion_group!(benches, discovery_seed);
criterion_main!(benches);
