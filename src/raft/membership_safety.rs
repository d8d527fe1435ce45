//! Online invariants of membership changes (Raft thesis chapter 4), checked against a
//! model of configurations written from the thesis — not the nodes' own
//! [`super::membership`] code:
//!
//! - **one change in flight**: a membership entry of a leader's own term past its
//!   commit index is the only membership entry past it (§4.1; a joint change's second
//!   entry is appended only once the first commits, §4.3); entries of earlier terms
//!   past it may be committed already, unknown to a new leader;
//! - **commit quorums in the right configuration**: when a leader's commit index
//!   advances to `c` (as leader: not what it learnt as a follower), entry `c` is held by a majority of every voter set of the
//!   configuration the leader uses — the latest in its log (§4.1), both sets when
//!   joint (§4.3); learners count in none;
//! - **election quorums in the right configuration**: a node that becomes leader of
//!   term `t` holds the votes, in `t`, of a majority of every voter set of the latest
//!   configuration in its log.
//!
//! A node that is down, or has moved to a later term, counts as agreeing: its state is
//! unknown, so a report is never spurious. The checks apply to a leader whose log holds
//! a configuration other than the bootstrap one; with the bootstrap configuration
//! throughout, a quorum counted wrongly is the classic checkers' to report (election
//! safety, leader completeness, state machine safety), as it was before membership
//! could change. Election safety across configurations (one
//! leader per term, whatever the configurations) is [`super::invariants::ElectionSafety`].

use std::collections::{BTreeMap, BTreeSet};

use super::invariants::{RaftNode, RaftView};
use super::membership::{ConfChange, MemberChange};
use super::messages::EntryData;
use super::{RaftConfig, RaftProcess, StateMachine};
use crate::check::{Checker, ClusterView};
use crate::process::NodeId;

/// A configuration as the thesis describes it: voters, the old voters while joint,
/// learners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Config {
    voters: BTreeSet<NodeId>,
    old_voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
}

impl Config {
    /// The configuration after a membership entry.
    fn then(&self, change: &ConfChange) -> Config {
        let mut next = self.clone();
        let mut one = |c: &MemberChange| match *c {
            MemberChange::AddVoter(n) => {
                next.learners.remove(&n);
                next.voters.insert(n);
            }
            MemberChange::AddLearner(n) => {
                next.learners.insert(n);
            }
            MemberChange::Remove(n) => {
                next.voters.remove(&n);
                next.learners.remove(&n);
            }
        };
        match change {
            ConfChange::Single(c) => one(c),
            ConfChange::EnterJoint(changes) => {
                let old = self.voters.clone();
                changes.iter().for_each(&mut one);
                next.old_voters = old;
            }
            ConfChange::LeaveJoint => next.old_voters.clear(),
        }
        next
    }

    /// The voter sets a decision needs a majority of.
    fn voter_sets(&self) -> impl Iterator<Item = &BTreeSet<NodeId>> {
        std::iter::once(&self.voters)
            .chain((!self.old_voters.is_empty()).then_some(&self.old_voters))
    }
}

/// A node's configurations by log index, kept up to date from what each step wrote.
#[derive(Default)]
struct Configs {
    /// (index, configuration), ascending; the first is the snapshot's.
    by_index: Vec<(u64, Config)>,
}

/// See the module docs.
pub struct MembershipSafety {
    bootstrap: Config,
    /// Per node: its configurations, `None` until first seen (and after a crash).
    configs: Vec<Option<Configs>>,
    /// Per node: the (term, commit index) it led with at its last step.
    led: Vec<Option<(u64, u64)>>,
    /// (term, leader) whose election was checked.
    elected: BTreeSet<(u64, NodeId)>,
    /// Per node: its commit index at its last step (`None` until seen, and while down).
    last_commit: Vec<Option<u64>>,
}

impl MembershipSafety {
    /// A checker for a cluster of `nodes` bootstrapped with `cfg.initial_voters`.
    pub fn new(nodes: usize, cfg: &RaftConfig) -> MembershipSafety {
        let voters = if cfg.initial_voters == 0 {
            nodes
        } else {
            cfg.initial_voters
        };
        MembershipSafety {
            bootstrap: Config {
                voters: (0..voters).collect(),
                ..Config::default()
            },
            configs: (0..nodes).map(|_| None).collect(),
            led: vec![None; nodes],
            elected: BTreeSet::new(),
            last_commit: vec![None; nodes],
        }
    }

    /// Brings `node`'s configurations up to date with its log: from the lowest index
    /// its last step wrote (all of it after a restart or a snapshot installation).
    fn update<S: StateMachine>(&mut self, node: NodeId, p: &RaftProcess<S>) {
        let log = p.log();
        let snapshot = log.snapshot();
        let from = match (
            &self.configs[node],
            p.installed_snapshot(),
            p.log_changed_from(),
        ) {
            (None, _, _) | (_, Some(_), _) => 0,
            (Some(_), None, Some(i)) => i,
            (Some(_), None, None) => return,
        };
        let configs = self.configs[node].get_or_insert_with(Configs::default);
        configs
            .by_index
            .retain(|(i, _)| *i < from && *i >= snapshot.index);
        let mut scan_from = from;
        if configs
            .by_index
            .first()
            .is_none_or(|(i, _)| *i > snapshot.index)
        {
            // Rebuild from the snapshot's configuration.
            let base = match &snapshot.membership {
                Some(m) => Config {
                    voters: m.voters().clone(),
                    old_voters: m.outgoing().clone(),
                    learners: m.learners().clone(),
                },
                None => self.bootstrap.clone(),
            };
            configs.by_index.clear();
            configs.by_index.push((snapshot.index, base));
            scan_from = snapshot.index + 1;
        }
        for e in log.slice(scan_from, log.last_index()) {
            if let EntryData::ConfChange(change) = &e.data {
                let next = configs.by_index.last().expect("a base").1.then(change);
                configs.by_index.push((e.index, next));
            }
        }
    }
}

impl<P: RaftNode> Checker<P> for MembershipSafety {
    fn name(&self) -> &'static str {
        "membership-safety"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            self.configs[node] = None;
            self.led[node] = None;
            self.last_commit[node] = None;
            return Ok(());
        };
        self.update(node, p);
        if !p.is_leader() {
            self.led[node] = None;
            self.last_commit[node] = Some(p.commit_index());
            return Ok(());
        }
        let configs = &self.configs[node].as_ref().expect("updated").by_index;
        let (term, commit) = (p.term(), p.commit_index());
        // An election is judged once, in the configuration it was won in.
        let newly_elected = self.elected.insert((term, node));
        if configs.len() == 1 && configs[0].1 == self.bootstrap {
            // No change in this leader's log: its quorums are the classic ones, which
            // election safety, leader completeness and state machine safety judge.
            self.led[node] = Some((term, commit));
            self.last_commit[node] = Some(commit);
            return Ok(());
        }
        // Entries of earlier terms past the commit index may be committed already (a
        // leader learns that only by committing one of its own): the rule binds what
        // this leader proposes. It proposes a change only once every earlier one is
        // committed, so one of its term past its commit index leaves no other past it.
        let own = |i: u64| p.log().term(i) == Some(term);
        let past: Vec<u64> = configs
            .iter()
            .map(|(i, _)| *i)
            .filter(|&i| i > commit)
            .collect();
        let in_flight = past.len();
        if past.iter().any(|&i| own(i)) && in_flight > 1 {
            return Err(format!(
                "node {node}, leader of term {term}, has {in_flight} membership changes in \
                 flight (at indexes {past:?}, commit index {commit})"
            ));
        }
        let latest = &configs.last().expect("a base").1;
        if newly_elected {
            // Its voters: nodes that voted for it in `term`, or whose vote is unknown.
            let voted = |n: NodeId| match view.raft(n) {
                None => true,
                Some(v) => v.term() > term || (v.term() == term && v.voted_for() == Some(node)),
            };
            for set in latest.voter_sets() {
                let votes = set.iter().filter(|&&n| voted(n)).count();
                if votes < set.len() / 2 + 1 {
                    return Err(format!(
                        "node {node} leads term {term} with the votes of {votes} of the voters \
                         {set:?} of its configuration {latest:?}"
                    ));
                }
            }
        }
        // A commit index the node learnt as a follower was the previous leader's
        // decision, in that leader's configuration: only what it commits as leader
        // counts, from the commit index it had at its previous step (`last_commit`).
        let advanced = match (self.led[node], self.last_commit[node]) {
            (Some((t, c)), _) => t == term && commit > c,
            (None, Some(c)) => commit > c,
            (None, None) => commit > 0,
        };
        self.led[node] = Some((term, commit));
        self.last_commit[node] = Some(commit);
        if advanced && commit > p.log().snapshot_index() {
            let entry_term = p.log().term(commit).expect("commit is in the log");
            let holds = |n: NodeId| match view.raft(n) {
                None => true,
                Some(v) => {
                    v.log().snapshot_index() >= commit || v.log().term(commit) == Some(entry_term)
                }
            };
            for set in latest.voter_sets() {
                let holders = set.iter().filter(|&&n| holds(n)).count();
                if holders < set.len() / 2 + 1 {
                    let missing: BTreeMap<NodeId, u64> = set
                        .iter()
                        .filter(|&&n| !holds(n))
                        .map(|&n| (n, view.raft(n).map_or(0, |v| v.log().last_index())))
                        .collect();
                    return Err(format!(
                        "node {node}, leader of term {term}, committed index {commit} held by \
                         {holders} of the voters {set:?} of its configuration {latest:?}; \
                         missing it (node: last index): {missing:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}
