//! `faultline explore`: guided exploration over fault schedules. Deterministic for an
//! explorer seed whatever the number of threads, every failure a plain replay, and
//! forks that keep their parent's faults up to the cut.

use std::sync::Arc;

use faultline::explore::{explore, ExploreRequest};
use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;

fn nemesis() -> Scenario {
    let text = r#"
name = "explore-nemesis"
description = "a short Raft nemesis"
duration_ms = 6000
[cluster]
protocol = "raft"
nodes = 5
[workload]
clients = 3
keys = 3
[random]
kinds = ["partition", "isolate", "crash", "pause", "clock-freeze", "disk-stall", "loss"]
interval_ms = { min = 200, max = 800 }
duration_ms = { min = 200, max = 2000 }
max_down = 2
[liveness]
quiesce_ms = 15000
"#;
    Scenario::parse("explore.toml", text).unwrap()
}

#[test]
fn the_same_explorer_seed_explores_the_same_runs_whatever_the_threads() {
    let s = nemesis();
    let request = |jobs| ExploreRequest {
        budget: 24,
        seed: 5,
        bugs: vec!["vote-not-persisted".into()],
        jobs,
        ..ExploreRequest::default()
    };
    let a = explore::<RaftKv>(&s, &request(1)).unwrap();
    let b = explore::<RaftKv>(&s, &request(2)).unwrap();
    assert_eq!(a.runs, 24);
    assert!(a.forks > 0, "half the runs fork once the corpus fills");
    assert!(a.corpus > 1);
    assert_eq!(a.features, b.features);
    let runs = |e: &faultline::explore::Exploration| {
        e.failures
            .iter()
            .map(|f| (f.run, f.fork, f.schedule.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(runs(&a), runs(&b));
    let c = explore::<RaftKv>(
        &s,
        &ExploreRequest {
            seed: 6,
            ..request(1)
        },
    )
    .unwrap();
    assert_ne!(
        a.features, c.features,
        "another explorer seed explores elsewhere"
    );
}

#[test]
fn every_failure_found_replays_as_a_plain_schedule() {
    let s = nemesis();
    let bugs = vec!["vote-not-persisted".to_string()];
    let found = explore::<RaftKv>(
        &s,
        &ExploreRequest {
            budget: 32,
            seed: 1,
            bugs: bugs.clone(),
            jobs: 2,
            ..ExploreRequest::default()
        },
    )
    .unwrap();
    assert!(
        !found.failures.is_empty(),
        "vote-not-persisted is found in 32 runs"
    );
    assert!(found.failures.iter().any(|f| f.fork), "forks find it too");
    let setup = Arc::new(s.setup::<RaftKv>(&bugs).unwrap());
    for f in found.failures.iter().take(4) {
        let out = run_seed::<RaftKv>(&s, &setup, &f.schedule, false);
        let again = out.failure.expect("the replay fails");
        assert_eq!(again.check, f.failure.check);
        assert_eq!(again.message, f.failure.message, "run {}", f.run);
    }
}

/// Exploration also counts the coarse protocol states the nodes reach
/// (`Process::coverage`): Raft's give leaders, followers and candidates apart, take
/// few values, and are recorded only when exploring.
#[test]
fn exploration_counts_the_raft_states_its_runs_reach() {
    let s = nemesis();
    let e = explore::<RaftKv>(
        &s,
        &ExploreRequest {
            budget: 8,
            ..ExploreRequest::default()
        },
    )
    .unwrap();
    let states: Vec<u64> = e
        .features
        .keys()
        .filter_map(|f| f.strip_prefix("coverage."))
        .map(|hex| u64::from_str_radix(hex, 16).unwrap())
        .collect();
    // The low two bits are the role: 0 leader, 1 candidate, 3 follower.
    for role in [0, 1, 3] {
        assert!(
            states.iter().any(|s| s & 3 == role),
            "role {role} reached: {states:x?}"
        );
    }
    assert!(states.len() < 64, "coarse: {} states", states.len());
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let plain = run_seed::<RaftKv>(&s, &setup, &s.schedule_for(1, &setup), false);
    assert!(
        plain.metrics.keys().all(|m| !m.starts_with("coverage.")),
        "a plain run records no coverage"
    );
}
