//! A CI-sized sweep of raft-nemesis (the full 1,000-seed release run is recorded in
//! results/raft/nemesis.md): every seed passes every invariant, the liveness check and
//! the linearizability check, and the seeds really exercised faults and clients.

use faultline::raft::RaftKv;
use faultline::testing;

#[test]
fn raft_nemesis_passes_a_few_dozen_seeds() {
    // FAULTLINE_SEED / FAULTLINE_SEEDS may narrow the range: judge the seeds that ran.
    let summary = testing::check_seeds::<RaftKv>("raft-nemesis", 0..48);
    assert!(summary.seeds_run > 0);
    assert_eq!(summary.passed, summary.seeds_run);
    // Every seed made progress after the final heal: a leader followed by a majority,
    // and a write appended after the heal committed (not only whole-run figures).
    for run in &summary.runs {
        let m = &run.metrics;
        assert!(m.contains_key("leader_after_heal_ms"), "seed {}", run.seed);
        let fresh = m
            .get("fresh_commit_after_heal_ms")
            .unwrap_or_else(|| panic!("seed {}: no commit after the heal", run.seed));
        assert!(*fresh >= 0.0);
        assert!(m["ops_ok"] > 0.0, "seed {}", run.seed);
    }
    if testing::seeds_from_env().is_some() {
        return; // A rerun of chosen seeds: the sweep-wide figures below need the sweep.
    }
    let mean = |name: &str| {
        summary
            .metrics
            .get(name)
            .unwrap_or_else(|| panic!("no metric {name}"))
            .mean
    };
    // A sweep that never crashed a node or committed an operation would prove nothing.
    assert!(mean("crashes") > 1.0, "crashes: {}", mean("crashes"));
    assert!(mean("elections") > 1.0, "elections: {}", mean("elections"));
    assert!(mean("ops_ok") > 100.0, "ops_ok: {}", mean("ops_ok"));
    assert!(mean("committed_ops") > 100.0);
    // Crashes really lose writes whose sync was in flight, in most seeds.
    let lost = summary.seeds_with("storage_writes_lost");
    assert!(
        lost * 2 > summary.runs.len(),
        "{lost} of {} seeds lost a write in a crash",
        summary.runs.len()
    );
}
