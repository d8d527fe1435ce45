//! The measure of the search, in small: every bug of the library that
//! results/search.md shows caught by a generic scenario (a nemesis scenario with
//! random faults only, never one staged for the bug) is caught there within the runs
//! recorded for its best run-based search, and the first failure is a safety or
//! liveness check's, not a panic. The budgets are the first detections of the release
//! sweep there.

use faultline::broadcast::Broadcast;
use faultline::etcd::Etcd;
use faultline::gossip::Swim;
use faultline::raft::system::BUGS;
use faultline::raft::RaftKv;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;
use faultline::System;

/// The generic scenarios: random faults of many kinds, no fault placed by hand.
const GENERIC: &[&str] = &[
    "raft-nemesis",
    "raft-nemesis-swarm",
    "raft-nemesis-targeted",
    "raft-nemesis-leaders",
    "raft-nemesis-members",
    "etcd-membership-churn",
    "broadcast-nemesis",
    "gossip-nemesis",
    "etcd-nemesis",
    "etcd-discovery-nemesis",
];

/// (bug, generic scenario, runs within which its best search catches it).
const RAFT_BUDGETS: &[(&str, &str, u64)] = &[
    ("vote-not-persisted", "raft-nemesis", 1),
    ("figure8-commit", "raft-nemesis-members", 4),
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
    ("learner-votes", "etcd-membership-churn", 1),
    ("config-on-commit", "etcd-membership-churn", 1),
    (
        "single-change-without-term-entry",
        "raft-nemesis-members",
        27,
    ),
];

const BROADCAST_BUDGETS: &[(&str, &str, u64)] = &[
    ("ack-before-sync", "broadcast-nemesis", 1),
    ("no-retransmit", "broadcast-nemesis", 1),
];

/// etcd's bugs: Raft's on etcd-nemesis, the lessor's and the watch's on the
/// discovery nemesis (results/search.md, results/etcd/nemesis.md).
const ETCD_BUDGETS: &[(&str, &str, u64)] = &[
    ("read-before-noop", "etcd-nemesis", 18),
    ("ignore-fsync-error", "etcd-nemesis", 2),
    ("lease-revoke-by-stale-leader", "etcd-discovery-nemesis", 1),
    ("watch-skip-at-compaction", "etcd-discovery-nemesis", 5),
    ("watch-resume-off-by-one", "etcd-discovery-nemesis", 2),
];

const GOSSIP_BUDGETS: &[(&str, &str, u64)] = &[
    ("swim-refute-same-incarnation", "gossip-nemesis", 1),
    ("swim-alive-overrides-suspect", "gossip-nemesis", 1),
];

fn first_failure<S: System>(bug: &str, scenario: &str, budget: u64) {
    assert!(
        GENERIC.contains(&scenario),
        "{bug}: {scenario} is not generic"
    );
    let s = Scenario::find(scenario).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.faults.is_empty(), "{scenario}: random faults only");
    let request = RunRequest {
        seeds: (0..budget).collect(),
        jobs: 2,
        bugs: vec![bug.to_string()],
        ..RunRequest::default()
    };
    let summary: Summary = run::<S>(&s, &request).unwrap_or_else(|e| panic!("{e}"));
    let failed = summary
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .unwrap_or_else(|| panic!("{bug} not caught by {scenario} in {budget} runs"));
    let check = &failed.failure.as_ref().expect("a failure").check;
    assert_ne!(check, "panic", "{bug}: seed {}", failed.seed);
}

/// Each of `S`'s bugs is caught within its recorded budget; a bug with no budget fails.
fn each_bug_within_its_budget<S: System>(budgets: &[(&str, &str, u64)]) {
    for bug in S::bugs() {
        let &(_, scenario, budget) = budgets
            .iter()
            .find(|(b, ..)| *b == bug.name)
            .unwrap_or_else(|| panic!("{}: no recorded budget", bug.name));
        first_failure::<S>(bug.name, scenario, budget);
    }
}

#[test]
fn every_raft_bug_is_caught_by_a_generic_scenario_within_its_budget() {
    each_bug_within_its_budget::<RaftKv>(RAFT_BUDGETS);
}

/// A bug changes what the protocol does, never whether the simulator can run it: on a
/// cluster it has nothing to act on (the membership bugs with no membership change) as
/// on one whose membership churns, every Raft bug runs its seeds to a verdict without
/// a panic. `config-on-commit` once indexed before the first configuration when
/// nothing had committed.
#[test]
fn no_raft_bug_panics_with_or_without_membership_changes() {
    for (scenario, bug) in ["raft-nemesis-leaders", "raft-nemesis-members"]
        .iter()
        .flat_map(|s| BUGS.iter().map(move |b| (s, b)))
    {
        let s = Scenario::find(scenario).unwrap_or_else(|e| panic!("{e}"));
        let request = RunRequest {
            seeds: (0..3).collect(),
            jobs: 2,
            bugs: vec![bug.name.to_string()],
            ..RunRequest::default()
        };
        let summary: Summary = run::<RaftKv>(&s, &request).unwrap_or_else(|e| panic!("{e}"));
        for r in &summary.runs {
            let check = r.failure.as_ref().map(|f| f.check.as_str());
            assert_ne!(
                check,
                Some("panic"),
                "{scenario} {}: seed {}",
                bug.name,
                r.seed
            );
        }
    }
}

#[test]
fn every_broadcast_bug_is_caught_by_broadcast_nemesis_within_its_budget() {
    each_bug_within_its_budget::<Broadcast>(BROADCAST_BUDGETS);
}

#[test]
fn every_gossip_bug_is_caught_by_gossip_nemesis_within_its_budget() {
    each_bug_within_its_budget::<Swim>(GOSSIP_BUDGETS);
}

#[test]
fn every_etcd_bug_is_caught_by_a_generic_etcd_scenario_within_its_budget() {
    each_bug_within_its_budget::<Etcd>(ETCD_BUDGETS);
}
