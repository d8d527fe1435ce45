//! Membership changes, by section of Ongaro's thesis (chapter 4): single-server
//! changes (§4.1), learners (§4.2.1), removing the leader (§4.2.2), disruptive removed
//! servers (§4.2.3), joint consensus (§4.3); and the membership bugs.

use std::sync::Arc;
use std::time::Duration;

use super::net::Net;
use crate::process::{NodeId, RequestId};
use crate::raft::membership::{ConfChange, ConfChangeError, MemberChange};
use crate::raft::{Bugs, RaftConfig, RequestOp, Response};
use MemberChange::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Five nodes, of which 0, 1 and 2 are the bootstrap voters; 3 and 4 are spares.
fn five_with_three_voters(bugs: Bugs, seed: u64) -> Net {
    let cfg = RaftConfig {
        initial_voters: 3,
        ..RaftConfig::default()
    };
    Net::new(5, cfg, bugs, seed)
}

fn change(net: &mut Net, to: NodeId, change: ConfChange) -> RequestId {
    net.request(to, RequestOp::ConfChange(Arc::new(change)))
}

fn single(net: &mut Net, to: NodeId, c: MemberChange) -> RequestId {
    change(net, to, ConfChange::Single(c))
}

fn reconfigured(net: &Net, id: RequestId) -> bool {
    matches!(net.reply_to(id), Some(Response::Reconfigured { .. }))
}

fn refused(net: &Net, id: RequestId) -> Option<ConfChangeError> {
    match net.reply_to(id) {
        Some(Response::Refused { error, .. }) => Some(error.clone()),
        _ => None,
    }
}

fn bug(name: &str) -> Bugs {
    let mut bugs = Bugs::default();
    assert!(bugs.set(name));
    bugs
}

/// Whether the run's first violation came from `checker` is `expected`.
fn assert_reported(net: &Net, checker: &str, expected: bool) {
    let violation = net.violation.clone().unwrap_or_default();
    assert_eq!(violation.starts_with(checker), expected, "{violation}");
}

/// A leader of the bootstrap voters that has committed an entry of its term.
fn leader(net: &mut Net) -> NodeId {
    let l = net.elect();
    assert!(l < 3, "spares never campaign: {l} leads");
    l
}

#[test]
fn s4_1_spares_stay_out_until_added() {
    let mut net = five_with_three_voters(Bugs::default(), 1);
    let l = leader(&mut net);
    net.put(l, "x", "1");
    net.run_for(ms(500));
    for spare in [3, 4] {
        assert_eq!(net.node(spare).term(), 0, "spare {spare} never campaigned");
        assert_eq!(
            net.node(spare).log().last_index(),
            0,
            "nor received entries"
        );
    }
}

#[test]
fn s4_1_a_learner_catches_up_is_promoted_and_a_voter_is_removed() {
    let mut net = five_with_three_voters(Bugs::default(), 2);
    let l = leader(&mut net);
    for k in 0..5 {
        net.put(l, &format!("k{k}"), "v");
    }
    let add = single(&mut net, l, AddLearner(3));
    net.run_for(ms(300));
    assert!(reconfigured(&net, add));
    let learner = net.node(3);
    assert!(learner.membership().is_learner(3));
    assert_eq!(
        learner.applied_index(),
        net.node(l).commit_index(),
        "caught up"
    );
    assert_eq!(learner.state_machine(), net.node(l).state_machine());

    let promote = single(&mut net, l, AddVoter(3));
    net.run_for(ms(300));
    assert!(reconfigured(&net, promote));
    assert!(net.node(l).membership().is_voter(3));

    // Remove a follower; the remaining three voters keep committing.
    let f = (0..3).find(|&n| n != l).expect("a follower");
    let remove = single(&mut net, l, Remove(f));
    net.run_for(ms(300));
    assert!(reconfigured(&net, remove));
    assert!(!net.node(l).membership().is_member(f));
    net.crash(f);
    let put = net.put(l, "after", "removal");
    net.run_for(ms(300));
    assert!(matches!(net.reply_to(put), Some(Response::Written { .. })));
    assert_eq!(net.violation, None);
}

#[test]
fn s4_1_a_configuration_is_used_once_in_the_log_not_once_committed() {
    for (bugs, in_log) in [(Bugs::default(), true), (bug("config-on-commit"), false)] {
        let mut net = five_with_three_voters(bugs, 3);
        let l = leader(&mut net);
        // Cut the leader off so that the change cannot commit.
        net.isolate(l);
        single(&mut net, l, AddVoter(3));
        let p = net.node(l);
        assert!(p.commit_index() < p.log().last_index(), "not committed");
        assert_eq!(p.membership().is_voter(3), in_log, "{bugs:?}");
    }
}

#[test]
fn s4_1_one_change_at_a_time() {
    let mut net = five_with_three_voters(Bugs::default(), 4);
    let l = leader(&mut net);
    net.isolate(l);
    let first = single(&mut net, l, AddLearner(3));
    let second = single(&mut net, l, AddLearner(4));
    let index = net.node(l).membership_index();
    assert_eq!(
        refused(&net, second),
        Some(ConfChangeError::InFlight(index))
    );
    net.heal();
    net.run_for(ms(300));
    assert!(reconfigured(&net, first));
    let third = single(&mut net, l, AddLearner(4));
    net.run_for(ms(300));
    assert!(reconfigured(&net, third));
}

#[test]
fn s4_1_a_new_leader_changes_membership_only_after_committing_an_entry_of_its_term() {
    for (bugs, accepted) in [
        (Bugs::default(), false),
        (bug("single-change-without-term-entry"), true),
    ] {
        let mut net = five_with_three_voters(bugs, 5);
        let old = leader(&mut net);
        net.isolate(old);
        // Step in small increments until another node leads, before its no-op commits.
        let mut new = None;
        for _ in 0..20_000 {
            net.run_for(Duration::from_micros(100));
            new = net.leaders().into_iter().find(|&n| n != old);
            if new.is_some() {
                break;
            }
        }
        let new = new.expect("a new leader");
        let p = net.node(new);
        assert!(
            p.commit_index() < p.log().last_index(),
            "its no-op is in flight"
        );
        let add = single(&mut net, new, AddLearner(3));
        let error = refused(&net, add);
        match accepted {
            false => assert_eq!(error, Some(ConfChangeError::TermNotCommitted)),
            true => assert_eq!(error, None, "the bug appends it at once"),
        }
    }
}

#[test]
fn s4_1_bad_changes_are_answered_with_the_reason() {
    let mut net = five_with_three_voters(Bugs::default(), 6);
    let l = leader(&mut net);
    let f = (l + 1) % 3;
    let again = single(&mut net, l, AddVoter(f));
    assert_eq!(
        refused(&net, again),
        Some(ConfChangeError::AlreadyMember(f))
    );
    let gone = single(&mut net, l, Remove(4));
    assert_eq!(refused(&net, gone), Some(ConfChangeError::NotMember(4)));
    let demote = single(&mut net, l, AddLearner(f));
    assert_eq!(refused(&net, demote), Some(ConfChangeError::Demotion(f)));
    let leave = change(&mut net, l, ConfChange::LeaveJoint);
    assert_eq!(refused(&net, leave), Some(ConfChangeError::NotJoint));
    // A follower redirects to the leader.
    let redirected = single(&mut net, f, AddLearner(3));
    let reply = net.reply_to(redirected).cloned();
    assert!(
        matches!(reply, Some(Response::Redirect { leader: Some(x), .. }) if x == l),
        "{reply:?}"
    );
}

#[test]
fn s4_2_2_a_removed_leader_steps_down_once_the_change_commits() {
    let mut net = five_with_three_voters(Bugs::default(), 7);
    let l = leader(&mut net);
    let remove = single(&mut net, l, Remove(l));
    // Until it commits, the leader still leads (without counting itself).
    assert!(net.node(l).is_leader());
    net.run_for(ms(100));
    assert!(reconfigured(&net, remove), "answered before stepping down");
    assert!(!net.node(l).is_leader(), "stepped down");
    net.run_for(ms(1000));
    let l2 = net.leader().expect("the remaining voters elect a leader");
    assert_ne!(l2, l);
    let put = net.put(l2, "x", "2");
    net.run_for(ms(300));
    assert!(matches!(net.reply_to(put), Some(Response::Written { .. })));
    assert!(
        !net.node(l).is_leader(),
        "the removed server never campaigns again"
    );
    assert_eq!(net.violation, None);
}

#[test]
fn s4_2_3_a_removed_server_does_not_disrupt_the_cluster() {
    let mut net = five_with_three_voters(Bugs::default(), 8);
    let l = leader(&mut net);
    let f = (l + 1) % 3;
    // The follower is cut off before it hears of its removal: it still believes
    // itself a voter, times out and asks for votes.
    net.isolate(f);
    let remove = single(&mut net, l, Remove(f));
    net.run_for(ms(2000));
    assert!(
        reconfigured(&net, remove),
        "two of the remaining two voters commit it"
    );
    assert!(net.node(f).membership().is_voter(f), "it never heard");
    let term = net.node(l).term();
    net.heal();
    net.run_for(ms(2000));
    assert!(net.node(l).is_leader(), "the leader kept its office");
    assert_eq!(
        net.node(l).term(),
        term,
        "no term was raised by the removed server"
    );
    assert_eq!(net.violation, None);
}

#[test]
fn s4_3_joint_consensus_replaces_two_voters_at_once() {
    let mut net = five_with_three_voters(Bugs::default(), 9);
    let l = leader(&mut net);
    let keep = (0..3).find(|&n| n != l).expect("a follower");
    let out: Vec<NodeId> = (0..3).filter(|&n| n != keep).collect();
    let changes = vec![AddVoter(3), AddVoter(4), Remove(out[0]), Remove(out[1])];
    let enter = change(&mut net, l, ConfChange::EnterJoint(changes));
    assert!(
        net.node(l).membership().is_joint(),
        "in effect once appended"
    );
    net.run_for(ms(2000));
    assert!(reconfigured(&net, enter));
    let l2 = net.leader().expect("a leader of the new configuration");
    let m = net.node(l2).membership();
    assert!(
        !m.is_joint(),
        "the leader left the joint configuration by itself"
    );
    assert_eq!(m.voters().iter().copied().collect::<Vec<_>>(), [keep, 3, 4]);
    assert!([keep, 3, 4].contains(&l2));
    let put = net.put(l2, "x", "joint");
    net.run_for(ms(300));
    assert!(matches!(net.reply_to(put), Some(Response::Written { .. })));
    assert_eq!(net.violation, None);
}

#[test]
fn bug_learner_votes_commits_without_a_voter_majority_and_is_caught() {
    for (bugs, caught) in [(Bugs::default(), false), (bug("learner-votes"), true)] {
        let mut net = five_with_three_voters(bugs, 10);
        net.panic_on_violation = false;
        let l = leader(&mut net);
        for learner in [3, 4] {
            single(&mut net, l, AddLearner(learner));
            net.run_for(ms(300));
        }
        // Only the learners still hear the leader.
        for f in (0..3).filter(|&n| n != l) {
            net.isolate(f);
        }
        net.put(l, "x", "learners only");
        net.run_for(ms(100));
        assert_reported(&net, "membership-safety", caught);
    }
}

#[test]
fn bug_config_on_commit_counts_a_commit_in_the_old_configuration_and_is_caught() {
    for (bugs, caught) in [(Bugs::default(), false), (bug("config-on-commit"), true)] {
        let mut net = five_with_three_voters(bugs, 11);
        net.panic_on_violation = false;
        let l = leader(&mut net);
        // One follower is away: the old configuration's majority (the leader and the
        // other follower) is no majority of the new one, which adds a fourth voter.
        let away = (0..3).find(|&n| n != l).expect("a follower");
        net.isolate(away);
        single(&mut net, l, AddVoter(3));
        net.run_for(ms(20));
        assert_reported(&net, "membership-safety", caught);
    }
}

/// The 2015 single-server change bug (raft-dev, "bug in single-server membership
/// changes"): a leader that changes membership before committing an entry of its term
/// lets two configurations that share no majority each elect a leader.
#[test]
fn bug_single_change_without_term_entry_loses_a_committed_entry_and_is_caught() {
    for (bugs, caught) in [
        (Bugs::default(), false),
        (bug("single-change-without-term-entry"), true),
    ] {
        let cfg = RaftConfig {
            initial_voters: 4,
            ..RaftConfig::default()
        };
        let mut net = Net::new(5, cfg, bugs, 12);
        net.panic_on_violation = false;
        let a = leader(&mut net);
        let others: Vec<NodeId> = (0..4).filter(|&n| n != a).collect();
        // The old leader adds node 4; only node 4 hears of it (D1, uncommitted).
        for &n in &others {
            net.blocked.extend([(a, n), (n, a)]);
        }
        single(&mut net, a, AddVoter(4));
        net.run_for(ms(50));
        assert!(net.node(4).membership().is_voter(4), "node 4 holds D1");
        net.blocked.extend([(a, 4), (4, a)]);
        // The other three elect a new leader; at once, one of them is cut off from it.
        let mut x = None;
        for _ in 0..50_000 {
            net.run_for(Duration::from_micros(100));
            x = net.leaders().into_iter().find(|&n| n != a);
            if x.is_some() {
                break;
            }
        }
        let x = x.expect("a new leader");
        let d3 = *others.iter().find(|&&n| n != x).expect("another voter");
        net.blocked.extend([(x, d3), (d3, x)]);
        // It removes the old leader before committing anything of its term (D2).
        let remove = single(&mut net, x, Remove(a));
        net.run_for(ms(200));
        match caught {
            false => assert_eq!(
                refused(&net, remove),
                Some(ConfChangeError::TermNotCommitted)
            ),
            true => assert!(reconfigured(&net, remove), "D2 commits in {{x, y, d3}}"),
        }
        // The old leader, with D1, now reaches node 4 and the cut-off voter: under D1
        // (five voters) those three are a majority.
        for n in [4, d3] {
            net.blocked.remove(&(a, n));
            net.blocked.remove(&(n, a));
        }
        net.run_for(ms(3000));
        // A leader of D1 lacks D2's committed entries: the two configurations elected
        // leaders with no voter in common.
        assert_reported(&net, "leader-completeness", caught);
    }
}

#[test]
fn s3_10_leadership_transfer_hands_over_to_an_up_to_date_voter() {
    let mut net = five_with_three_voters(Bugs::default(), 13);
    let l = leader(&mut net);
    let to = (l + 1) % 3;
    // The target is behind: the leader brings it up to date first.
    net.isolate(to);
    for k in 0..5 {
        net.put(l, &format!("k{k}"), "v");
    }
    net.run_for(ms(50));
    net.heal();
    let transfer = net.request(l, RequestOp::TransferLeader(to));
    // Proposals wait while the transfer is under way.
    let put = net.put(l, "during", "transfer");
    assert!(matches!(
        net.reply_to(put),
        Some(Response::Unavailable { .. })
    ));
    net.run_for(ms(200));
    let reply = net.reply_to(transfer).cloned();
    assert!(
        matches!(reply, Some(Response::TransferStarted { to: t, .. }) if t == to),
        "{reply:?}"
    );
    assert_eq!(net.leader(), Some(to), "the target leads");
    assert!(!net.node(l).is_leader());
    // Well inside an election timeout: the handover did not wait for one, and the
    // voters answered although they had just heard from the old leader.
    let refused = net.request(to, RequestOp::TransferLeader(4));
    assert_eq!(
        net.reply_to(refused).cloned(),
        Some(Response::Refused {
            seq: 8,
            error: ConfChangeError::NotVoter(4)
        })
    );
    assert_eq!(net.violation, None);
}

#[test]
fn s4_2_a_member_replaced_with_a_wiped_disk_is_caught_up_from_nothing() {
    let mut net = five_with_three_voters(Bugs::default(), 14);
    let l = leader(&mut net);
    let f = (l + 1) % 3;
    for k in 0..10 {
        net.put(l, &format!("k{k}"), "v");
    }
    net.run_for(ms(100));
    let remove = single(&mut net, l, Remove(f));
    net.run_for(ms(100));
    assert!(reconfigured(&net, remove));
    // Replace the server: its disk comes back empty, under the same id.
    net.crash(f);
    net.storage[f] = Default::default();
    net.start(f);
    assert_eq!(net.node(f).log().last_index(), 0);
    let add = single(&mut net, l, AddVoter(f));
    net.run_for(ms(300));
    assert!(reconfigured(&net, add));
    // What the leader knew of the old disk did not count: it caught up from index 1.
    assert_eq!(
        net.node(f).log().last_index(),
        net.node(l).log().last_index()
    );
    assert_eq!(net.node(f).state_machine(), net.node(l).state_machine());
    assert_eq!(net.violation, None);
}
