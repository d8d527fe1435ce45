//! One seed of a Consul discovery run under random faults, end to end: 3 servers,
//! 30 agent nodes with two services each (the callers' `api`, probed and
//! TTL-checked, and the flapping `flapper` job), 10 callers, for 60 simulated
//! seconds of random faults on every node, with every checker on (Raft's
//! invariants, the leader after the heal, `passing-answers`, `passing-bounded`,
//! `blocking-wakes`, `catalog-index`, `no-zombie`, and the catalog, discovery,
//! gossip and read figures). Goal: median at most 300 ms in release. Figures:
//! results/bench/consul.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::consul::Consul;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::System;

/// Fixed so that every run measures the same schedule.
const SEED: u64 = 1;

/// The run: Consul's scenario format, random faults on every node.
const SCENARIO: &str = r#"
name = "consul-bench"
description = "3 servers, 30 agents with two services each, 10 callers, 60 s of random faults"
duration_ms = 60000

[cluster]
protocol = "consul"
nodes = 43

[cluster.config.discovery]
servers = 3
instances = 30
callers = 10
read_mode = "default"
check_ttl_ms = 3000
probe_interval_ms = 1000
probe_timeout_ms = 500
flapper_ms = 2000
call_timeout_ms = 500
request_timeout_ms = 500
blocking_wait_ms = 10000

[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 10 }

[random]
kinds = ["partition", "isolate", "crash", "pause", "disk-stall", "slow", "latency-spike", "loss", "duplicate"]
interval_ms = { min = 200, max = 1500 }
duration_ms = { min = 200, max = 3000 }
max_down = 4

[liveness]
quiesce_ms = 20000
"#;

fn discovery_seed(c: &mut Criterion) {
    let scenario = Scenario::parse("consul-bench.toml", SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(
        scenario
            .setup::<Consul>(&[])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(setup.nodes, 43);
    let schedule = scenario.schedule(SEED, Consul::clients(&setup));
    // A benchmark of a failing or trivial run measures nothing.
    let first = run_seed::<Consul>(&scenario, &setup, &schedule, false);
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert!(!first.unknown);
    assert!(first.metrics["calls_count"] > 2_000.0);
    assert!(first.metrics["unrelated_writes_count"] > 100.0);
    let mut group = c.benchmark_group("consul");
    group.sample_size(20);
    group.bench_function(
        "consul discovery seed 1 end to end (60 s simulated, 43 nodes, random faults)",
        |b| {
            b.iter(|| {
                let o = run_seed::<Consul>(&scenario, &setup, &schedule, false);
                assert_eq!(o.trace_hash, first.trace_hash, "the run is deterministic");
            })
        },
    );
    group.finish();
}

criterion_group!(benches, discovery_seed);
criterion_main!(benches);
