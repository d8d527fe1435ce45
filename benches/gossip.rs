//! Wall time of a 512-member SWIM + Lifeguard cluster for 60 simulated seconds, with
//! one crash, through the whole simulator (network, timers, every SWIM checker).
//! Goal: at most 2 s. Figures: results/bench/gossip.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::gossip::Swim;
use faultline::run::run_seed;
use faultline::scenario::Scenario;

/// Every member starts at once (all know seed 0 and join through it); member 100
/// crashes at 20 s; the liveness phase is short and unchecked, so the run is the
/// 60 s fault phase plus 1 s.
const SCENARIO: &str = r#"
name = "gossip-bench-512"
description = "512 members for 60 simulated seconds"
duration_ms = 60000
[cluster]
protocol = "swim"
nodes = 512
[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 10 }
[[faults]]
kind = "crash"
node = 100
at_ms = 20000
[liveness]
quiesce_ms = 1000
check = false
"#;

fn bench(c: &mut Criterion) {
    let scenario = Scenario::parse("gossip-bench-512.toml", SCENARIO).unwrap();
    let setup = Arc::new(scenario.setup::<Swim>(&[]).unwrap());
    let schedule = scenario.schedule(1, 0);
    let outcome = run_seed::<Swim>(&scenario, &setup, &schedule, false);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    // The crash was detected and spread to every member within the minute.
    assert!(outcome.metrics.contains_key("full_dissemination_ms_mean"));
    assert_eq!(outcome.metrics["false_positive_dead"], 0.0);

    let mut group = c.benchmark_group("gossip_512_members_60_s");
    group.sample_size(10);
    group.bench_function("swim_lifeguard", |b| {
        b.iter(|| run_seed::<Swim>(&scenario, &setup, &schedule, false))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
