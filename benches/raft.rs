//! One seed of raft-nemesis end to end: 5 nodes, 60 simulated seconds of random mixed
//! faults, every online invariant, then the linearizability check of the history
//! (goal: median at most 100 ms in release, i.e. 600 seeds a minute on one core).
//! Figures: results/bench/raft.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::System;

/// Fixed so that every run measures the same schedule.
const SEED: u64 = 1;

fn nemesis_seed(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/raft-nemesis.toml");
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(
        scenario
            .setup::<RaftKv>(&[])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let schedule = scenario.schedule(SEED, RaftKv::clients(&setup));
    // A benchmark of a failing or trivial run measures nothing.
    let first = run_seed::<RaftKv>(&scenario, &setup, &schedule, false);
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert!(!first.unknown);
    assert!(first.metrics["ops_ok"] > 100.0);
    let mut group = c.benchmark_group("raft");
    group.sample_size(30);
    group.bench_function(
        "raft-nemesis seed 1 end to end (60 s simulated, 5 nodes)",
        |b| {
            b.iter(|| {
                let o = run_seed::<RaftKv>(&scenario, &setup, &schedule, false);
                assert_eq!(o.trace_hash, first.trace_hash, "the run is deterministic");
            })
        },
    );
    group.finish();
}

criterion_group!(benches, nemesis_seed);
criterion_main!(benches);
