//! Scripted schedules that expose the bugs random faults rarely reach: each runs once
//! with the bug (the anomaly shows) and once without (it does not).

use std::time::Duration;

use super::net::Net;
use crate::kv::{KvQuery, KvResult};
use crate::raft::{Bugs, RaftConfig, ReadMode, RequestOp, Response};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn with(name: Option<&str>) -> Bugs {
    let mut b = Bugs::default();
    if let Some(n) = name {
        assert!(b.set(n));
    }
    b
}

/// Runs until one of `among` leads (bounded by `limit`), returning it.
fn try_leader_among(net: &mut Net, among: &[usize], limit: Duration) -> Option<usize> {
    let end = net.now + limit;
    while net.now < end {
        if let Some(&l) = among
            .iter()
            .find(|&&i| net.nodes[i].as_ref().is_some_and(|p| p.is_leader()))
        {
            return Some(l);
        }
        net.run_for(ms(1));
    }
    None
}

fn leader_among(net: &mut Net, among: &[usize]) -> usize {
    try_leader_among(net, among, ms(5000))
        .unwrap_or_else(|| panic!("none of {among:?} became leader within 5 s"))
}

/// Raft Figure 8 on five nodes. Returns the first invariant violation.
fn figure8(bugs: Bugs) -> Option<String> {
    let mut net = Net::new(5, RaftConfig::default(), bugs, 8);
    net.panic_on_violation = false;
    // (a) Leader a replicates X only to b, then crashes.
    let a = leader_among(&mut net, &[0, 1, 2, 3, 4]);
    let b = (a + 1) % 5;
    net.run_for(ms(50));
    net.partition(&[a, b]);
    net.put(a, "x", "X");
    net.run_for(ms(20));
    net.crash(a);
    // (b) The other three elect L2, which appends Y alone, then crashes.
    let rest: Vec<usize> = (0..5).filter(|&i| i != a && i != b).collect();
    let l2 = leader_among(&mut net, &rest);
    net.run_for(ms(50));
    net.isolate(l2);
    net.put(l2, "x", "Y");
    net.run_for(ms(5));
    net.crash(l2);
    net.heal();
    // (c) a restarts; a or b (the only logs holding X) leads and replicates X to a
    // majority, then crashes before any entry of its own term reaches one.
    // With the correct rule, L2's no-op reached the other three in (b), so neither a
    // nor b can win here; the schedule only bites when entries went uncommitted.
    net.start(a);
    if let Some(l3) = try_leader_among(&mut net, &[a, b], ms(1000)) {
        net.run_for(ms(20));
        net.crash(l3);
    }
    // (d) L2 returns with Y (a newer last term than X) and, with a cut off, times out
    // first and wins: it overwrites X wherever it leads.
    net.isolate(a);
    net.start(l2);
    try_leader_among(&mut net, &[l2], ms(2000));
    net.heal();
    net.run_for(ms(1000));
    net.violation.clone()
}

#[test]
fn figure8_commit_loses_a_committed_entry_and_the_correct_rule_does_not() {
    assert_eq!(figure8(with(None)), None);
    let v = figure8(with(Some("figure8-commit"))).expect("the bug is caught");
    assert!(v.contains("leader completeness"), "{v}");
}

/// A new leader whose commit index lags (its predecessor crashed right after
/// committing x=2) answers a read. Returns the read's outcome.
fn read_after_failover(bugs: Bugs) -> Option<Response> {
    let cfg = RaftConfig {
        read_mode: ReadMode::ReadIndex,
        ..RaftConfig::default()
    };
    let mut net = Net::new(3, cfg, bugs, 5);
    let l1 = leader_among(&mut net, &[0, 1, 2]);
    let (f1, f2) = ((l1 + 1) % 3, (l1 + 2) % 3);
    net.put(l1, "x", "1");
    net.run_for(ms(20));
    // f2 falls far behind, so a new leader's no-op takes several round trips to commit.
    net.isolate(f2);
    for k in 0..150 {
        net.put(l1, "y", &k.to_string());
    }
    net.run_for(ms(20));
    let acked = net.put(l1, "x", "2");
    // The append reaches f1 (2 ms); then l1 hears f1's acknowledgement and answers,
    // but its new commit index never leaves it.
    net.run_for(ms(3));
    for j in [f1, f2] {
        net.blocked.insert((l1, j));
    }
    net.run_for(ms(10));
    assert_eq!(
        net.reply_to(acked),
        Some(&Response::Written {
            seq: acked.seq,
            result: KvResult::Done
        }),
        "x=2 was acknowledged"
    );
    net.crash(l1);
    net.heal();
    let l2 = leader_among(&mut net, &[f1]);
    let read = net.request(l2, RequestOp::Read(KvQuery { key: "x".into() }));
    net.run_for(ms(5));
    net.reply_to(read).cloned()
}

#[test]
fn read_before_noop_serves_a_stale_value_after_failover() {
    match read_after_failover(with(None)) {
        Some(Response::Unavailable { .. }) => {}
        other => panic!("the correct leader must refuse until its no-op commits: {other:?}"),
    }
    match read_after_failover(with(Some("read-before-noop"))) {
        Some(Response::Value { value, .. }) => {
            assert_eq!(value.as_deref(), Some("1"), "stale: x=2 was acknowledged")
        }
        other => panic!("expected a stale value: {other:?}"),
    }
}
