//! Shrinking a failing seed to a small schedule that fails the same check.

use std::sync::Arc;

use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::shrink::shrink;
use faultline::System;

/// raft-figure8 with the figure8-commit bug fails at seed 0 under the staged schedule
/// and its random faults. The shrunk schedule keeps only what the failure needs: it
/// fails the same check on replay, every fault left is needed (without any one of
/// them the run passes, or fails otherwise), and shrinking again gives the same
/// schedule. Figure 8 itself takes six steps: two clock drifts that pick who times
/// out first, two isolations and two crashes.
#[test]
fn a_figure8_failure_shrinks_to_a_few_faults_that_still_fail() {
    let scenario = Scenario::find("raft-figure8").unwrap();
    let bugs = vec!["figure8-commit".to_string()];
    let setup = scenario.setup::<RaftKv>(&bugs).unwrap();
    let original = scenario.schedule(0, RaftKv::clients(&setup));
    let mut steps = 0;
    let shrunk = shrink::<RaftKv>(&scenario, &bugs, original.clone(), |_| steps += 1)
        .unwrap()
        .expect("seed 0 fails");
    assert!(original.faults.len() > 4, "{}", original.faults.len());
    assert!(
        shrunk.minimal.faults.len() <= 6,
        "{} faults left: {:#?}",
        shrunk.minimal.faults.len(),
        shrunk.minimal.faults
    );
    for i in 0..shrunk.minimal.faults.len() {
        let mut fewer = shrunk.minimal.clone();
        fewer.faults.remove(i);
        let s = scenario.with_overrides(&fewer).unwrap();
        let setup = Arc::new(s.setup::<RaftKv>(&bugs).unwrap());
        let outcome = run_seed::<RaftKv>(&s, &setup, &fewer, false);
        assert!(
            outcome
                .failure
                .is_none_or(|f| f.check != shrunk.failure.check),
            "fault {i} is not needed"
        );
    }
    assert_eq!(steps, shrunk.steps.len());
    // Replayed as a saved schedule, the minimal run fails the same check.
    let text = shrunk.minimal.to_toml();
    let path = std::env::temp_dir().join(format!("faultline-shrunk-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let loaded = faultline::scenario::Schedule::load(&path, &scenario).unwrap();
    std::fs::remove_file(&path).unwrap();
    let replayed_scenario = scenario.with_overrides(&loaded).unwrap();
    let setup = Arc::new(replayed_scenario.setup::<RaftKv>(&bugs).unwrap());
    let outcome = run_seed::<RaftKv>(&replayed_scenario, &setup, &loaded, false);
    let failure = outcome.failure.expect("the shrunk schedule fails");
    assert_eq!(failure.check, shrunk.failure.check);
    assert!(shrunk.sim_ms_after <= shrunk.sim_ms_before);
    let again = shrink::<RaftKv>(&scenario, &bugs, original, |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(again.minimal, shrunk.minimal, "shrinking is deterministic");
}

#[test]
fn a_passing_seed_has_nothing_to_shrink() {
    let scenario = Scenario::find("raft-election").unwrap();
    let original = scenario.schedule(0, 3);
    assert!(shrink::<RaftKv>(&scenario, &[], original, |_| {})
        .unwrap()
        .is_none());
}
