//! Shrinking a failing seed to a small schedule that fails the same check.

use std::sync::Arc;

use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::shrink::shrink;
use faultline::System;

/// raft-figure8 with the figure8-commit bug first fails at seed 7 under the staged
/// schedule (Figure 8's two isolations and two crashes; the seed picks who leads). The
/// shrunk schedule keeps only what the failure needs: at most 4 faults, it fails the
/// same check on replay, every fault left is needed (without any one of them the run
/// passes, or fails otherwise), and shrinking again gives the same schedule.
#[test]
fn a_figure8_failure_shrinks_to_a_few_faults_that_still_fail() {
    let scenario = Scenario::find("raft-figure8").unwrap();
    let bugs = vec!["figure8-commit".to_string()];
    let setup = scenario.setup::<RaftKv>(&bugs).unwrap();
    let original = scenario.schedule(7, RaftKv::clients(&setup));
    let mut steps = 0;
    let shrunk = shrink::<RaftKv>(&scenario, &bugs, original.clone(), |_| steps += 1)
        .unwrap()
        .expect("seed 7 fails");
    assert_eq!(shrunk.failure.check, "leader-completeness");
    assert!(
        shrunk.minimal.faults.len() <= 4,
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
    // The fault phase only ever gets shorter (the run may still end later: it is a
    // different run).
    assert!(shrunk.minimal.duration_ms.unwrap_or(scenario.duration_ms) <= scenario.duration_ms);
    let again = shrink::<RaftKv>(&scenario, &bugs, original, |_| {})
        .unwrap()
        .unwrap();
    assert_eq!(again.minimal, shrunk.minimal, "shrinking is deterministic");
}

/// raft-figure8's former staging (tests/data/figure8-drifts.schedule.toml: Figure 8's
/// four faults and six clock drifts that picked who leads) fails at seed 141 with the
/// apply-uncommitted bug. No single fault can go (the run passes without any one of
/// them), yet a node isolated while it leads, with the clock drift that makes it lead,
/// is enough: removing faults one chunk at a time stops at all ten, and only a search
/// over small subsets gets there. The shrunk schedule fails the same check when saved
/// and replayed.
#[test]
fn a_raft_bug_shrinks_to_at_most_four_faults_by_keeping_a_small_subset() {
    let scenario = Scenario::find("raft-figure8").unwrap();
    let bugs = vec!["apply-uncommitted".to_string()];
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/figure8-drifts.schedule.toml"
    );
    let original = faultline::scenario::Schedule::load(path.as_ref(), &scenario).unwrap();
    assert_eq!(original.seed, 141);
    let shrunk = shrink::<RaftKv>(&scenario, &bugs, original.clone(), |_| {})
        .unwrap()
        .expect("seed 141 fails");
    assert_eq!(shrunk.failure.check, "state-machine-safety");
    assert_eq!(original.faults.len(), 10);
    assert!(
        shrunk.minimal.faults.len() <= 4,
        "{} faults left: {:#?}",
        shrunk.minimal.faults.len(),
        shrunk.minimal.faults
    );
    let path = std::env::temp_dir().join(format!(
        "faultline-shrunk-subset-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, shrunk.minimal.to_toml()).unwrap();
    let loaded = faultline::scenario::Schedule::load(&path, &scenario).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded, shrunk.minimal);
    let replayed = scenario.with_overrides(&loaded).unwrap();
    let setup = Arc::new(replayed.setup::<RaftKv>(&bugs).unwrap());
    let outcome = run_seed::<RaftKv>(&replayed, &setup, &loaded, false);
    let failure = outcome.failure.expect("the shrunk schedule fails");
    assert_eq!(failure.check, shrunk.failure.check);
}

#[test]
fn a_passing_seed_has_nothing_to_shrink() {
    let scenario = Scenario::find("raft-election").unwrap();
    let original = scenario.schedule(0, 3);
    assert!(shrink::<RaftKv>(&scenario, &[], original, |_| {})
        .unwrap()
        .is_none());
}

/// A property over fault schedules from `faultline::testing::schedules`: with the
/// ignore-fsync-error bug, a schedule with an fsync error and then a crash of the same
/// node loses what that node had acknowledged, and proptest's own shrinking brings a
/// failing schedule down to those two faults.
#[test]
fn a_property_over_schedules_shrinks_with_proptests_machinery() {
    use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/raft-leader-crash.toml"
    ))
    .unwrap()
    .replace("duration_ms = 15000", "duration_ms = 4000")
    .replace(
        "kinds = [\"crash\"]",
        "kinds = [\"fsync-error\", \"crash\"]",
    );
    let scenario = Scenario::parse("raft-leader-crash.toml", &text).unwrap();
    let bugs = vec!["ignore-fsync-error".to_string()];
    let setup = Arc::new(scenario.setup::<RaftKv>(&bugs).unwrap());
    let strategy = faultline::testing::schedules(&scenario, RaftKv::clients(&setup), 6);
    let config = Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let fails = |schedule: &faultline::scenario::Schedule| {
        let s = scenario.with_overrides(schedule).unwrap();
        run_seed::<RaftKv>(&s, &setup, schedule, false).failure
    };
    let result = runner.run(&strategy, |schedule| {
        let failure = fails(&schedule);
        proptest::prop_assert!(failure.is_none(), "{failure:?}");
        Ok(())
    });
    let Err(TestError::Fail(_, minimal)) = result else {
        panic!("no schedule failed: {result:?}");
    };
    use faultline::scenario::Fault;
    let faults: Vec<&Fault> = minimal.faults.iter().map(|f| &f.fault).collect();
    let [Fault::FsyncError { node: a, .. }, Fault::Crash { node: b, .. }] = faults.as_slice()
    else {
        panic!("{:#?}", minimal.faults);
    };
    assert_eq!(a, b, "{:#?}", minimal.faults);
    assert!(fails(&minimal).is_some(), "the shrunk schedule still fails");
}

/// Less client load: a stale follower read needs no fault and only a few operations per
/// client, and the shrunk schedule says so in its workload table. (Seed 1: in some
/// seeds a fault phase of a few hundred ms already holds so few operations that none
/// can go.)
#[test]
fn shrinking_lowers_the_operations_each_client_runs() {
    let scenario = Scenario::find("raft-stale-read-follower").unwrap();
    let setup = scenario.setup::<RaftKv>(&[]).unwrap();
    let original = scenario.schedule(1, RaftKv::clients(&setup));
    let shrunk = shrink::<RaftKv>(&scenario, &[], original, |_| {})
        .unwrap()
        .expect("seed 1 reads stale");
    assert_eq!(shrunk.failure.check, "linearizability");
    let workload = shrunk
        .minimal
        .workload
        .as_ref()
        .expect("a lighter workload");
    let ops = workload["ops_per_client_max"].as_integer().unwrap();
    assert!((1..=50).contains(&ops), "{workload:?}");
    assert!(shrunk
        .steps
        .iter()
        .any(|s| s.ends_with("operations per client")));
    let s = scenario.with_overrides(&shrunk.minimal).unwrap();
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let outcome = run_seed::<RaftKv>(&s, &setup, &shrunk.minimal, false);
    assert_eq!(outcome.failure.unwrap().check, "linearizability");
    // Each client ran at most that many operations (two history events each), plus
    // client 0's write after the heal.
    let clients = workload
        .get("clients")
        .and_then(|c| c.as_integer())
        .unwrap_or(10) as usize;
    assert!(outcome.history_ops <= 2 * (clients * ops as usize + 1));
}
