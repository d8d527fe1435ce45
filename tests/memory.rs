//! A finished run frees its world: nothing of a seed outlives it, so long sweeps run
//! in constant memory.

mod common;

use std::sync::atomic::Ordering;

use common::{probe_scenario, Probe, CHECKERS_DROPPED};
use faultline::run::{run, RunRequest};

#[test]
fn every_run_drops_its_world() {
    let s = probe_scenario(3, 1_000, "[[faults]]\nkind = \"crash\"\nnode = 1\nat_ms = 100\nrestart_ms = 500\n[[faults]]\nkind = \"pause\"\nnode = 2\nat_ms = 100\n");
    let before = CHECKERS_DROPPED.load(Ordering::Relaxed);
    let summary = run::<Probe>(
        &s,
        &RunRequest {
            seeds: (0..5).collect(),
            ..RunRequest::default()
        },
    )
    .unwrap();
    assert_eq!(summary.passed, 5);
    assert_eq!(
        CHECKERS_DROPPED.load(Ordering::Relaxed) - before,
        5,
        "each run's checkers, and so its world, were freed"
    );
}
