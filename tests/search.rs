//! The measure of the search, in small: every Raft bug of the library is caught by a
//! generic scenario (never one staged for it) within the runs results/search.md
//! records for its best search, and the first failure is a safety or liveness check's,
//! not a panic. The budgets are the first detections of the release sweep there.

use faultline::raft::system::BUGS;
use faultline::raft::RaftKv;
use faultline::run::{run, RunRequest, Status};
use faultline::scenario::Scenario;

/// (bug, generic scenario, runs within which its best search catches it).
const BUDGETS: &[(&str, &str, u64)] = &[
    ("vote-not-persisted", "raft-nemesis", 1),
    ("stale-append-truncates", "raft-nemesis", 1),
    ("vote-without-log-check", "raft-nemesis", 1),
    ("apply-uncommitted", "raft-nemesis", 1),
    ("ack-before-sync", "raft-nemesis", 1),
    ("stale-vote-counting", "raft-nemesis", 2),
    ("no-prevote-checkquorum", "raft-nemesis", 1),
    ("read-before-noop", "raft-nemesis-targeted", 2),
    ("send-before-persist", "raft-nemesis", 3),
    ("ignore-fsync-error", "raft-nemesis", 2),
    ("no-catch-up", "raft-nemesis", 1),
];

/// Bugs no generic scenario catches yet (see results/search.md): the list must only
/// shrink.
const NOT_YET: &[&str] = &[
    "figure8-commit",
    "learner-votes",
    "config-on-commit",
    "single-change-without-term-entry",
];

#[test]
fn every_raft_bug_is_caught_by_a_generic_scenario_within_its_budget() {
    for bug in BUGS {
        let Some(&(_, scenario, budget)) = BUDGETS.iter().find(|(b, ..)| *b == bug.name) else {
            assert!(
                NOT_YET.contains(&bug.name),
                "{}: no recorded budget",
                bug.name
            );
            continue;
        };
        // Generic: the nemesis scenarios, whatever scenario `faultline bugs` names.
        assert!(
            scenario.starts_with("raft-nemesis"),
            "{}: {scenario}",
            bug.name
        );
        let s = Scenario::find(scenario).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.faults.is_empty(),
            "{scenario}: random faults only, nothing staged"
        );
        let request = RunRequest {
            seeds: (0..budget).collect(),
            jobs: 2,
            bugs: vec![bug.name.to_string()],
            ..RunRequest::default()
        };
        let summary = run::<RaftKv>(&s, &request).unwrap_or_else(|e| panic!("{e}"));
        let failed = summary
            .runs
            .iter()
            .find(|r| r.status == Status::Failed)
            .unwrap_or_else(|| panic!("{} not caught by {scenario} in {budget} runs", bug.name));
        let check = &failed.failure.as_ref().expect("a failure").check;
        assert_ne!(check, "panic", "{}: seed {}", bug.name, failed.seed);
    }
}
