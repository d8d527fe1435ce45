//! The checkers themselves: each reports a violation it is shown, and liveness tells
//! a settled cluster from one without a followed leader.

use std::time::Duration;

use super::net::Net;
use crate::kv::KvCommand;
use crate::process::Process;
use crate::raft::{
    log_key, Bugs, Entry, EntryData, HardState, Message, RaftConfig, Record, Snapshot, StateMachine,
};

fn entry(index: u64, term: u64, data: EntryData) -> Entry {
    Entry { term, index, data }
}

/// Restarts node `i` from storage holding `term` and `entries`.
fn craft(net: &mut Net, i: usize, term: u64, entries: &[Entry]) {
    net.crash(i);
    let s = &mut net.storage[i];
    s.write(
        "hard".into(),
        Some(Record::Hard(HardState { term, vote: None })),
    );
    for e in entries {
        s.write(log_key(e.index), Some(Record::Entry(e.clone())));
    }
    s.sync_all();
    net.start(i);
}

fn quiet_net() -> Net {
    let mut net = Net::new(3, RaftConfig::default(), Bugs::default(), 3);
    net.panic_on_violation = false;
    for i in 0..3 {
        net.isolate(i);
    }
    net
}

#[test]
fn log_matching_reports_two_entries_with_one_index_and_term_but_different_commands() {
    let mut net = quiet_net();
    craft(&mut net, 0, 1, &[entry(1, 1, EntryData::Noop)]);
    assert_eq!(net.violation, None);
    let put = EntryData::Command {
        client: 0,
        seq: 1,
        cmd: KvCommand::Delete { key: "x".into() }.into(),
    };
    craft(&mut net, 1, 1, &[entry(1, 1, put)]);
    let v = net.violation.expect("caught");
    assert!(
        v.contains("log matching") && v.contains("index 1 term 1"),
        "{v}"
    );
}

#[test]
fn recovery_reports_a_term_below_the_one_that_was_durable() {
    let mut net = quiet_net();
    craft(&mut net, 2, 5, &[]);
    assert_eq!(net.violation, None);
    craft(&mut net, 2, 3, &[]);
    let v = net.violation.expect("caught");
    assert!(
        v.contains("recovery-keeps-durable") && v.contains("node 2 recovered term 3"),
        "{v}"
    );
}

#[test]
fn recovery_reports_acknowledged_entries_the_disk_lost() {
    let mut net = quiet_net();
    let noop = |i| entry(i, 1, EntryData::Noop);
    craft(&mut net, 1, 1, &[noop(1), noop(2), noop(3)]);
    assert_eq!(net.violation, None);
    // The disk comes back with two of the three entries the node knew durable.
    net.crash(1);
    net.storage[1].write(log_key(3), None);
    net.storage[1].sync_all();
    net.start(1);
    let v = net.violation.expect("caught");
    assert!(
        v.contains("node 1 recovered a log through index 2")
            && v.contains("durable through index 3"),
        "{v}"
    );
}

#[test]
fn liveness_settles_only_with_a_leader_a_majority_follows() {
    let mut net = Net::new(3, RaftConfig::default(), Bugs::default(), 5);
    let err = net.settled().unwrap_err();
    assert!(err.contains("no leader"), "{err}");
    net.elect();
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.settled(), Ok(()));
    for i in 0..3 {
        net.isolate(i);
    }
    net.run_for(Duration::from_millis(1000));
    assert!(
        net.settled().is_err(),
        "a cluster cut to pieces has no followed leader"
    );
    net.heal();
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.settled(), Ok(()));
    let m = net.metrics();
    assert!(m["time_without_leader_ms"] > 500.0, "{m:?}");
    assert!(m["elections"] >= 2.0);
}

#[test]
fn liveness_fails_when_the_first_leader_after_the_heal_is_later_than_its_bound() {
    // The first liveness poll is the heal. Here the cluster stays cut to pieces for
    // longer than ten election timeouts (10 x 300 ms) after it.
    let mut net = Net::new(3, RaftConfig::default(), Bugs::default(), 6);
    for i in 0..3 {
        net.isolate(i);
    }
    assert!(net.settled().unwrap_err().contains("no leader"));
    net.run_for(Duration::from_millis(3_500));
    net.heal();
    net.run_for(Duration::from_millis(1_000));
    let err = net.settled().unwrap_err();
    assert!(err.contains("more than the bound (3000 ms)"), "{err}");
    // Timed to the step in which the leader appeared, not to the poll 4 500 ms after
    // the heal that first saw it.
    let took = net.metrics()["leader_after_heal_ms"];
    assert!((3_500.0..4_500.0).contains(&took), "{took}");

    // The same cluster healed in time settles.
    let mut net = Net::new(3, RaftConfig::default(), Bugs::default(), 6);
    assert!(net.settled().is_err());
    net.run_for(Duration::from_millis(1_000));
    assert_eq!(net.settled(), Ok(()));
    assert!(net.metrics()["leader_after_heal_ms"] <= 3_000.0);
}

/// A leader cut off with a write pending: stuck without CheckQuorum, which the progress
/// check reports; with CheckQuorum it steps down and the check stays quiet.
fn stuck_leader(check_quorum: bool, max_commit_stall_ms: u64) -> Option<String> {
    let cfg = RaftConfig {
        check_quorum,
        max_commit_stall_ms,
        ..RaftConfig::default()
    };
    let mut net = Net::new(3, cfg, Bugs::default(), 11);
    net.panic_on_violation = false;
    let l = net.elect();
    net.run_for(Duration::from_millis(100));
    net.isolate(l);
    net.put(l, "x", "1");
    net.run_for(Duration::from_millis(1500));
    net.violation.clone()
}

#[test]
fn progress_check_reports_a_leader_stuck_with_uncommitted_entries() {
    let v = stuck_leader(false, 500).expect("caught");
    assert!(
        v.contains("no progress") && v.contains("max_commit_stall_ms = 500"),
        "{v}"
    );
    assert_eq!(stuck_leader(true, 500), None, "CheckQuorum steps it down");
    assert_eq!(stuck_leader(false, 0), None, "the check is off by default");
}

#[test]
fn recovery_drops_a_torn_tail_after_a_gap_or_a_term_regression() {
    let mut net = quiet_net();
    let noop = |index, term| entry(index, term, EntryData::Noop);
    // A torn crash kept entry 4 of a tail whose entry 3 it lost: 4 was never synced.
    craft(&mut net, 1, 3, &[noop(1, 1), noop(2, 2), noop(4, 2)]);
    assert_eq!(net.node(1).log().last_index(), 2);
    assert!(
        net.storage[1].get(&log_key(4)).is_none(),
        "the stale key is removed"
    );
    // A kept entry whose term goes back comes from an older, overwritten tail.
    craft(&mut net, 2, 3, &[noop(1, 2), noop(2, 1)]);
    assert_eq!(net.node(2).log().last_index(), 1);
    assert_eq!(net.violation, None);
}

/// A leader commits writes while follower `f` is cut off: returns (leader, f, the
/// leader's applied index, its term).
fn follower_behind(seed: u64) -> (Net, usize, usize, u64, u64) {
    let mut net = Net::new(3, RaftConfig::default(), Bugs::default(), seed);
    net.panic_on_violation = false;
    let l = net.elect();
    let f = (l + 1) % 3;
    net.run_for(Duration::from_millis(100));
    net.isolate(f);
    for i in 0..5 {
        net.put(l, "x", &i.to_string());
    }
    net.run_for(Duration::from_millis(500));
    let (index, term) = (net.node(l).applied_index(), net.node(l).term());
    assert!(index > net.node(f).commit_index(), "the follower is behind");
    assert_eq!(net.violation, None);
    (net, l, f, index, term)
}

#[test]
fn a_snapshot_installed_from_a_leader_is_checked_against_what_was_applied() {
    let (mut net, l, f, index, term) = follower_behind(7);
    let (state, sessions) = (net.node(l).state_machine(), net.node(l).sessions());
    // The right snapshot installs quietly.
    let good = std::sync::Arc::new(Snapshot {
        index,
        term: net.node(l).log().term(index).expect("applied"),
        state: state.snapshot(),
        sessions: sessions.clone(),
        membership: Some(net.node(l).membership().clone()),
    });
    net.step(f, |p, ctx| {
        p.on_message(
            ctx,
            l,
            Message::Snapshot {
                term,
                snapshot: good,
            },
        )
    });
    assert_eq!(net.node(f).applied_index(), index);
    assert_eq!(net.violation, None);

    // One claiming another term at an applied index is reported on installation.
    let (mut net, l, f, index, term) = follower_behind(8);
    let bad = std::sync::Arc::new(Snapshot {
        index,
        term: term + 7,
        state: net.node(l).state_machine().snapshot(),
        sessions: net.node(l).sessions().clone(),
        membership: Some(net.node(l).membership().clone()),
    });
    net.step(f, |p, ctx| {
        p.on_message(
            ctx,
            l,
            Message::Snapshot {
                term,
                snapshot: bad,
            },
        )
    });
    let v = net.violation.expect("caught");
    assert!(
        v.contains("state-machine-safety")
            && v.contains(&format!("installed a snapshot through index {index}")),
        "{v}"
    );
}

#[test]
fn the_snapshot_a_node_recovers_from_is_checked_on_restart() {
    let (mut net, l, _, index, _) = follower_behind(9);
    // The leader's disk comes back with a snapshot that never was: an index past
    // anything applied.
    net.crash(l);
    let forged = Snapshot {
        index: index + 100,
        term: 1,
        membership: Some(crate::raft::membership::Membership::new(0..3)),
        ..Snapshot::initial()
    };
    net.storage[l].write(
        "snapshot".into(),
        Some(Record::Snapshot(std::sync::Arc::new(forged))),
    );
    net.storage[l].sync_all();
    net.start(l);
    let v = net.violation.expect("caught at the restart");
    assert!(
        v.contains(&format!(
            "node {l} installed a snapshot through index {}",
            index + 100
        )) && v.contains("which no node applied"),
        "{v}"
    );
}
