//! Every bug in the Raft bug library is caught by the shipped scenario it names, and
//! the same seeds pass without it.
//!
//! The first seed that catches each bug comes from a release sweep recorded in
//! results/raft/bugs.md; here each bug runs seeds `0..=first` (the sweep showed that
//! range holds a failure) so the suite stays within a few minutes in the test profile.

use faultline::raft::system::BUGS;
use faultline::raft::RaftKv;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;

/// (bug, first failing seed in its scenario, the checks that may report it).
const FIRST_DETECTION: &[(&str, u64, &[&str])] = &[
    (
        "vote-not-persisted",
        0,
        &["election-safety", "recovery-keeps-durable"],
    ),
    (
        "figure8-commit",
        7,
        &["leader-completeness", "state-machine-safety"],
    ),
    (
        "stale-append-truncates",
        0,
        // The leader counts entries the follower took back as replicated there: its
        // commit index can stall for good (the progress check during the faults, or
        // liveness after them) before an overwrite shows, or it commits an entry a
        // majority no longer holds (membership-safety's commit quorum check).
        &[
            "leader-completeness",
            "log-matching",
            "state-machine-safety",
            "raft-progress",
            "liveness",
            "membership-safety",
        ],
    ),
    (
        "vote-without-log-check",
        4,
        &["leader-completeness", "state-machine-safety"],
    ),
    ("apply-uncommitted", 122, &["state-machine-safety"]),
    (
        "ack-before-sync",
        0,
        &["linearizability", "leader-completeness"],
    ),
    // Membership-safety's election quorum check sees a leader elected on stale
    // votes as it wins, before a second leader of its term shows.
    (
        "stale-vote-counting",
        41,
        &["election-safety", "membership-safety"],
    ),
    ("no-prevote-checkquorum", 0, &["raft-progress"]),
    (
        "read-before-noop",
        READ_BEFORE_NOOP_FIRST,
        &["linearizability"],
    ),
    (
        "send-before-persist",
        0,
        &["leader-completeness", "election-safety", "linearizability"],
    ),
    (
        "ignore-fsync-error",
        0,
        &["recovery-keeps-durable", "leader-completeness"],
    ),
    ("no-catch-up", 0, &["liveness"]),
    ("learner-votes", 0, &["membership-safety"]),
    ("config-on-commit", 0, &["membership-safety"]),
    (
        "single-change-without-term-entry",
        2,
        &["leader-completeness", "membership-safety"],
    ),
];

const READ_BEFORE_NOOP_FIRST: u64 = 78;

fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, bug: Option<&str>) -> Summary {
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        bugs: bug.map(|b| vec![b.to_string()]).unwrap_or_default(),
        ..RunRequest::default()
    };
    run::<RaftKv>(scenario, &request).unwrap_or_else(|e| panic!("{e}"))
}

fn caught(bug: &str) {
    let (_, first, checks) = FIRST_DETECTION
        .iter()
        .find(|(name, _, _)| *name == bug)
        .unwrap_or_else(|| panic!("no recorded first detection for {bug}"));
    let entry = BUGS.iter().find(|b| b.name == bug).expect("a known bug");
    let scenario = Scenario::find(entry.scenario).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        scenario.expect.failure.is_none(),
        "{bug}: its scenario must be one that passes without the bug"
    );
    let seeds = 0..first + 1;

    let with = sweep(&scenario, seeds.clone(), Some(bug));
    assert_eq!(
        with.exit_code(),
        1,
        "{bug} is not caught in seeds {seeds:?}"
    );
    let report = with
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .expect("a failing seed");
    let failure = report
        .failure
        .as_ref()
        .expect("a failing seed has a failure");
    assert!(
        checks.contains(&failure.check.as_str()),
        "{bug}: seed {} failed `{}` ({}), expected one of {checks:?}",
        report.seed,
        failure.check,
        failure.message
    );

    let without = sweep(&scenario, seeds.clone(), None);
    assert_eq!(
        without.exit_code(),
        0,
        "{}: seeds {:?} fail without any bug: {:?}",
        scenario.name,
        seeds,
        without.failing_seeds
    );
}

#[test]
fn every_bug_has_a_recorded_first_detection() {
    for bug in BUGS {
        assert!(
            FIRST_DETECTION.iter().any(|(name, _, _)| *name == bug.name),
            "{} has no entry",
            bug.name
        );
    }
    assert_eq!(FIRST_DETECTION.len(), BUGS.len());
    assert!(BUGS.len() >= 8);
}

#[test]
fn vote_not_persisted_is_caught() {
    caught("vote-not-persisted");
}

#[test]
fn figure8_commit_is_caught() {
    caught("figure8-commit");
}

#[test]
fn stale_append_truncates_is_caught() {
    caught("stale-append-truncates");
}

#[test]
fn vote_without_log_check_is_caught() {
    caught("vote-without-log-check");
}

#[test]
fn apply_uncommitted_is_caught() {
    caught("apply-uncommitted");
}

#[test]
fn ack_before_sync_is_caught() {
    caught("ack-before-sync");
}

#[test]
fn stale_vote_counting_is_caught() {
    caught("stale-vote-counting");
}

#[test]
fn no_prevote_checkquorum_is_caught() {
    caught("no-prevote-checkquorum");
}

#[test]
fn read_before_noop_is_caught() {
    caught("read-before-noop");
}

#[test]
fn send_before_persist_is_caught() {
    caught("send-before-persist");
}

#[test]
fn ignore_fsync_error_is_caught() {
    caught("ignore-fsync-error");
}

#[test]
fn no_catch_up_is_caught() {
    caught("no-catch-up");
}

#[test]
fn learner_votes_is_caught() {
    caught("learner-votes");
}

#[test]
fn config_on_commit_is_caught() {
    caught("config-on-commit");
}

#[test]
fn single_change_without_term_entry_is_caught() {
    caught("single-change-without-term-entry");
}
