//! The lessor: promotion, keepalives, expiry, checkpoints, and the stale-leader bug
//! against [`super::super::lease_check`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::etcd::lease_check::{self, LeaseHistory, Rule};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn dms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Calls here come up to 10 s apart: a stall is a longer gap.
fn config(checkpoint_ms: Option<u64>) -> LessorConfig {
    LessorConfig {
        checkpoint_ms,
        stall_ms: 10_000,
        ..LessorConfig::default()
    }
}

#[test]
fn promote_gives_every_lease_its_full_ttl_from_now() {
    let mut l = Lessor::new(config(None), LessorBugs::default());
    l.grant(1, 10_000, s(0)).unwrap();
    assert_eq!(l.expiry(1), None, "a follower counts nothing down");
    l.promote(s(3));
    assert_eq!(l.expiry(1), Some(s(13)));
    l.demote();
    assert_eq!(l.expiry(1), None);
    l.promote(s(9));
    assert_eq!(l.expiry(1), Some(s(19)));
    assert_eq!(l.grant(1, 5_000, s(9)), Err(LeaseError::Exists(1)));
}

#[test]
fn with_checkpoints_a_new_primary_resumes_from_the_remaining_ttl() {
    let mut old = Lessor::new(config(Some(1_000)), LessorBugs::default());
    let mut new = Lessor::new(config(Some(1_000)), LessorBugs::default());
    old.promote(s(0));
    old.grant(1, 10_000, s(0)).unwrap();
    new.grant(1, 10_000, s(0)).unwrap();
    assert_eq!(
        old.checkpoint(dms(500)),
        Vec::<(LeaseId, u64)>::new(),
        "not due yet"
    );
    let cps = old.checkpoint(dms(3_200));
    assert_eq!(cps, vec![(1, 6_800)]);
    for (id, rem) in cps {
        old.apply_checkpoint(id, rem);
        new.apply_checkpoint(id, rem);
    }
    old.demote();
    new.promote(s(4));
    assert_eq!(new.expiry(1), Some(dms(10_800)));
    // A keepalive clears the checkpoint at once, whatever the interval.
    assert_eq!(new.renew(1, s(5)), Ok(10_000));
    let cps = new.checkpoint(s(5));
    assert_eq!(cps, vec![(1, 10_000)]);
    for (id, rem) in cps {
        old.apply_checkpoint(id, rem);
    }
    assert_eq!(old.checkpointed_ms(1), None);
    old.promote(s(6));
    assert_eq!(old.expiry(1), Some(s(16)));
}

/// A lease of 10 s, kept alive by nobody, with a new leader every 5 s for 500 s:
/// when is it revoked?
fn revoked_under_elections(checkpoint_ms: Option<u64>) -> Option<Duration> {
    let mut members: Vec<Lessor> = (0..3)
        .map(|_| Lessor::new(config(checkpoint_ms), LessorBugs::default()))
        .collect();
    members[0].promote(s(0));
    for m in &mut members {
        m.grant(1, 10_000, s(0)).unwrap();
    }
    let mut leader = 0;
    for t in 1..=500 {
        let now = s(t);
        if t % 5 == 0 {
            members[leader].demote();
            leader = (leader + 1) % members.len();
            members[leader].promote(now);
        }
        for (id, rem) in members[leader].checkpoint(now) {
            members.iter_mut().for_each(|m| m.apply_checkpoint(id, rem));
        }
        if members[leader].expired(now).contains(&1) {
            members.iter_mut().for_each(|m| {
                m.revoked(1);
            });
            return Some(now);
        }
    }
    None
}

#[test]
fn elections_renew_a_lease_forever_without_checkpoints_and_not_with_them() {
    // etcd#9395: each new leader restarts the full 10 s; after 100 elections and
    // 500 s, 50 times its TTL, the lease is still there.
    assert_eq!(revoked_under_elections(None), None);
    // Checkpointed each second, a new leader resumes from the remaining TTL: each
    // election gives back at most the second since the last checkpoint, and the
    // lease goes at 12 s (10 s + two elections' second).
    assert_eq!(revoked_under_elections(Some(1_000)), Some(s(12)));
}

#[test]
fn only_the_primary_renews() {
    let mut l = Lessor::new(config(None), LessorBugs::default());
    l.grant(1, 10_000, s(0)).unwrap();
    assert_eq!(l.renew(1, s(1)), Err(LeaseError::NotPrimary));
    l.promote(s(1));
    assert_eq!(l.renew(1, s(1)), Ok(10_000));
    assert_eq!(l.expiry(1), Some(s(11)));
    assert_eq!(l.renew(2, s(1)), Err(LeaseError::NotFound(2)));
    assert_eq!(
        l.renew(1, s(11)),
        Err(LeaseError::NotFound(1)),
        "expired, about to be revoked"
    );
    l.demote();
    assert_eq!(l.renew(1, s(2)), Err(LeaseError::NotPrimary));
}

#[test]
fn expiry_is_earliest_first_ties_by_id_and_bounded() {
    let cfg = LessorConfig {
        max_revokes: 3,
        stall_ms: 60_000,
        ..LessorConfig::default()
    };
    let mut l = Lessor::new(cfg, LessorBugs::default());
    l.promote(s(0));
    for (id, ttl) in [(5, 3_000), (2, 1_000), (9, 1_000), (1, 2_000), (7, 50_000)] {
        l.grant(id, ttl, s(0)).unwrap();
    }
    assert_eq!(l.expired(dms(999)), Vec::<LeaseId>::new());
    assert_eq!(l.expired(s(10)), vec![2, 9, 1], "at most 3");
    assert_eq!(l.expired(s(10)), vec![2, 9, 1], "until revoked");
    for id in [2, 9, 1] {
        assert!(l.revoked(id));
    }
    assert_eq!(l.expired(s(10)), vec![5]);
    let mut follower = Lessor::new(cfg, LessorBugs::default());
    follower.grant(1, 1, s(0)).unwrap();
    assert_eq!(follower.expired(s(10)), Vec::<LeaseId>::new());
}

/// etcd#15247: leader A stalls at 2 s with lease 7 (10 s) counted down from its
/// keepalive at 2 s; B is elected at 5 s and keeps the lease alive for its owner
/// at 6, 12 and 18 s; A resumes at 20 s before it learns it was replaced. What A
/// proposes to revoke, and what the checker says.
fn stale_leader(bugs: LessorBugs) -> (Vec<LeaseId>, Vec<lease_check::Violation>) {
    let mut a = Lessor::new(config(None), bugs);
    let mut b = Lessor::new(config(None), LessorBugs::default());
    let mut history = LeaseHistory::new();
    a.promote(s(0));
    a.grant(7, 10_000, s(0)).unwrap();
    b.grant(7, 10_000, s(0)).unwrap();
    history.grant(7, 10_000, s(0));
    a.renew(7, s(2)).unwrap();
    history.keepalive(7, s(2));
    // A stalls; B wins the election at 5 s.
    b.promote(s(5));
    for t in [6, 12, 18] {
        b.renew(7, s(t)).unwrap();
        history.keepalive(7, s(t));
        assert_eq!(b.expired(s(t)), Vec::<LeaseId>::new());
    }
    // A resumes at 20 s: its revocation loop runs first.
    let revoke = a.expired(s(20));
    for &id in &revoke {
        // Forwarded to B, committed, applied everywhere.
        a.revoked(id);
        b.revoked(id);
        history.expired(id, s(20));
    }
    // A learns B leads (asked to confirm, or from B's heartbeat).
    a.demote();
    let violations = lease_check::check(&history, s(0), s(1), s(20));
    (revoke, violations)
}

#[test]
fn a_stale_leader_waits_for_confirmation_after_a_stall() {
    let (revoke, violations) = stale_leader(LessorBugs::default());
    assert_eq!(revoke, Vec::<LeaseId>::new());
    assert!(violations.is_empty(), "{violations:?}");
    // Still the leader after all: it confirms, and revokes from its countdown.
    let mut a = Lessor::new(config(None), LessorBugs::default());
    a.promote(s(0));
    a.grant(7, 10_000, s(0)).unwrap();
    assert_eq!(a.expired(s(20)), Vec::<LeaseId>::new());
    assert!(a.needs_confirmation());
    assert_eq!(a.renew(7, s(20)), Err(LeaseError::NotPrimary));
    a.confirm_primary(s(20));
    assert_eq!(a.expired(s(20)), vec![7]);
}

#[test]
fn the_stale_countdown_bug_revokes_a_live_lease_and_the_checker_names_it() {
    let bugs = LessorBugs {
        revoke_by_stale_countdown: true,
    };
    let (revoke, violations) = stale_leader(bugs);
    assert_eq!(revoke, vec![7]);
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(v.rule, Rule::RevokedWhileAlive);
    assert_eq!((v.lease, v.acked_at, v.revoked_at), (7, s(18), Some(s(20))));
    assert_eq!(v.deadline, s(28));
    assert_eq!(
        v.to_string(),
        "revoked-while-alive: lease 7 (TTL 10s) acknowledged at 18s, \
         revoked by expiry at 20s, before 28s"
    );
}

/// One seeded run: 3 members, 4 leases whose owners keep them alive every third of
/// their TTL until a random instant, random leader changes (a gap without a
/// leader, and half the time an old leader that was stalled and resumes before it
/// learns it was replaced). Returns the checker's verdict.
fn random_run(
    seed: u64,
    checkpoint_ms: Option<u64>,
    bugs: LessorBugs,
) -> Vec<lease_check::Violation> {
    const STEP: u64 = 100;
    const END: u64 = 60_000;
    const MAX_GAP: u64 = 2_000;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut members: Vec<Lessor> = (0..3)
        .map(|_| {
            let cfg = LessorConfig {
                checkpoint_ms,
                ..LessorConfig::default()
            };
            Lessor::new(cfg, bugs)
        })
        .collect();
    let mut history = LeaseHistory::new();
    let mut leader: Option<usize> = Some(0);
    members[0].promote(dms(0));
    // Owners: (lease, ttl, keepalive period, stop keepalives at, next keepalive).
    let mut owners: Vec<(LeaseId, u64, u64, u64, u64)> = Vec::new();
    for id in 1..=4 {
        let ttl = rng.gen_range(2..=6) * 1_000;
        for m in &mut members {
            m.grant(id, ttl, dms(0)).unwrap();
        }
        history.grant(id, ttl, dms(0));
        let stop = rng.gen_range(0..END);
        owners.push((id, ttl, ttl / 3, stop, ttl / 3));
    }
    let max_ttl = owners.iter().map(|o| o.1).max().unwrap_or(0);
    // (member, resumes at): a stalled old leader.
    let mut stalled: Option<(usize, u64)> = None;
    let mut next_leader: Option<(usize, u64)> = None;
    let mut elections = 0u64;
    let mut t = 0;
    while t < END {
        t += STEP;
        let now = dms(t);
        // A stalled old leader resumes: its revocation loop runs, then it learns.
        if let Some((m, _)) = stalled.filter(|&(_, at)| at <= t) {
            for id in members[m].expired(now) {
                members.iter_mut().for_each(|x| {
                    x.revoked(id);
                });
                history.expired(id, now);
            }
            members[m].demote();
            stalled = None;
        }
        if let Some((m, _)) = next_leader.filter(|&(_, at)| at <= t) {
            members[m].promote(now);
            leader = Some(m);
            next_leader = None;
        }
        if let Some(l) = leader {
            if stalled.is_none() && next_leader.is_none() && rng.gen_ratio(1, 80) {
                elections += 1;
                leader = None;
                if rng.gen_bool(0.5) {
                    stalled = Some((l, t + rng.gen_range(1_000..8_000)));
                } else {
                    members[l].demote();
                }
                let next = (l + rng.gen_range(1..3)) % 3;
                next_leader = Some((next, t + rng.gen_range(STEP..=MAX_GAP)));
            }
        }
        let Some(l) = leader else { continue };
        for o in owners.iter_mut() {
            if o.4 <= t && o.4 <= o.3 {
                if members[l].renew(o.0, now).is_ok() {
                    history.keepalive(o.0, now);
                }
                o.4 = t + o.2;
            }
        }
        for (id, rem) in members[l].checkpoint(now) {
            members.iter_mut().for_each(|x| x.apply_checkpoint(id, rem));
        }
        for id in members[l].expired(now) {
            members.iter_mut().for_each(|x| {
                x.revoked(id);
            });
            history.expired(id, now);
        }
    }
    // Each election may extend a lease: by the time since the last checkpoint and
    // the gap without a leader, or by a whole TTL without checkpoints.
    let per_election = match checkpoint_ms {
        Some(c) => c + MAX_GAP + STEP,
        None => max_ttl + MAX_GAP + STEP,
    };
    let bound = dms(elections * per_election + 2 * STEP);
    lease_check::check(&history, dms(0), bound, dms(END))
}

#[test]
fn the_lessor_passes_the_checker_on_random_runs() {
    for seed in 0..200 {
        for cp in [None, Some(500)] {
            let v = random_run(seed, cp, LessorBugs::default());
            assert_eq!(v, vec![], "seed {seed}, checkpoint {cp:?}");
        }
    }
}

#[test]
fn the_random_runs_catch_the_stale_countdown_bug() {
    let bugs = LessorBugs {
        revoke_by_stale_countdown: true,
    };
    let caught = (0..200)
        .filter(|&seed| {
            random_run(seed, Some(500), bugs)
                .iter()
                .any(|v| v.rule == Rule::RevokedWhileAlive)
        })
        .count();
    assert!(caught >= 20, "{caught} seeds of 200 caught it");
}
