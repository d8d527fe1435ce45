//! etcd (Raft replicating the MVCC store, with etcd clients) under etcd-nemesis: a
//! few seeds pass every Raft invariant, the liveness check and etcd's key-value
//! guarantees; with `read-before-noop` injected the history check catches a stale
//! range. The 200-seed release sweep is recorded in results/etcd/nemesis.md.

use faultline::etcd::Etcd;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;
use faultline::testing;

/// The first seed of etcd-nemesis at which `read-before-noop` is caught
/// (results/etcd/nemesis.md).
const READ_BEFORE_NOOP_FIRST: u64 = 17;

fn sweep(seeds: std::ops::Range<u64>, bug: Option<&str>) -> Summary {
    let scenario = Scenario::find("etcd-nemesis").unwrap_or_else(|e| panic!("{e}"));
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        bugs: bug.map(|b| vec![b.to_string()]).unwrap_or_default(),
        artifacts: None,
        ..RunRequest::default()
    };
    run::<Etcd>(&scenario, &request).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn etcd_nemesis_passes_a_few_seeds() {
    let summary = testing::check_seeds::<Etcd>("etcd-nemesis", 0..8);
    assert!(summary.seeds_run > 0);
    assert_eq!(summary.passed, summary.seeds_run);
    for r in &summary.runs {
        let m = &r.metrics;
        assert!(
            m["ops_ok"] > 100.0,
            "seed {}: {:?}",
            r.seed,
            m.get("ops_ok")
        );
        let fresh = m
            .get("fresh_commit_after_heal_ms")
            .unwrap_or_else(|| panic!("seed {}: no commit after the heal", r.seed));
        assert!(*fresh >= 0.0);
    }
}

#[test]
fn etcd_nemesis_catches_a_read_before_the_new_leaders_noop() {
    let seeds = READ_BEFORE_NOOP_FIRST..READ_BEFORE_NOOP_FIRST + 1;
    let with = sweep(seeds.clone(), Some("read-before-noop"));
    assert_eq!(with.exit_code(), 1, "read-before-noop not caught");
    let report = with
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .expect("a failing seed");
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.check, "etcd-kv-guarantees", "{}", failure.message);
    assert!(
        failure.message.contains("read-revision") || failure.message.contains("linearizable"),
        "{}",
        failure.message
    );
    // The same seed passes without the bug.
    assert_eq!(sweep(seeds, None).exit_code(), 0);
}
