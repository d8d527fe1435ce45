//! Cluster membership and how quorums are counted in it (Raft thesis chapter 4).
//!
//! A configuration is a set of voters, in a joint configuration (thesis §4.3) also the
//! voters of the configuration being left, plus learners: non-voting members that
//! receive the log (etcd's learners, thesis §4.2.1's "non-voting members") and are
//! counted in no quorum.
//!
//! Two ways to change it, as etcd-io/raft offers them:
//! - **Single-server changes** (thesis §4.1, etcd's `ConfChange`): add or remove one
//!   voter, or add, promote or remove a learner. Safe because any majority of the old
//!   voters and any majority of the new ones share a server — *provided* a change is
//!   only proposed once the previous one is committed and the leader has committed an
//!   entry of its own term (the fix published after the 2015 single-server bug: without
//!   it, two leaders of different terms can each commit a change the other never saw,
//!   and their disjoint configurations elect two leaders).
//! - **Joint consensus** (thesis §4.3, etcd's `ConfChangeV2`): any set of changes at
//!   once. The cluster first moves to `C_old,new`, in which every decision (election,
//!   commit, read quorum) needs a majority of the old voters *and* a majority of the new;
//!   once that entry commits, the leader appends the entry that leaves for `C_new`.
//!   Needed whenever more than one voter changes at a time.
//!
//! A server uses the latest configuration in its log, committed or not (thesis §4.1);
//! truncating the entry takes the configuration back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::process::NodeId;

/// One change to one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberChange {
    /// Add a voter, or promote a learner to voter.
    AddVoter(NodeId),
    /// Add a learner (a server not yet a member).
    AddLearner(NodeId),
    /// Remove a voter or a learner.
    Remove(NodeId),
}

impl MemberChange {
    /// The server it changes.
    pub fn node(&self) -> NodeId {
        match *self {
            MemberChange::AddVoter(n) | MemberChange::AddLearner(n) | MemberChange::Remove(n) => n,
        }
    }
}

/// A membership change, as a log entry carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// A single-server change (thesis §4.1), in effect as soon as it is in the log.
    Single(MemberChange),
    /// Enter the joint configuration `C_old,new` with these changes (thesis §4.3).
    EnterJoint(Vec<MemberChange>),
    /// Leave the joint configuration for `C_new`; the leader appends it once the
    /// `EnterJoint` entry commits.
    LeaveJoint,
}

/// Why a membership change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfChangeError {
    /// `member-add` of a server that is already a voter (or, as a learner, a member).
    AlreadyMember(NodeId),
    /// `member-remove` of a server that is not a member.
    NotMember(NodeId),
    /// The change would leave a configuration without a voter.
    NoVoterLeft,
    /// A voter cannot become a learner: remove it, then add it back as a learner.
    Demotion(NodeId),
    /// A joint change names a server twice.
    Repeated(NodeId),
    /// A joint change with no changes in it.
    Empty,
    /// Entering a joint configuration while in one, or a single-server change then.
    InJoint,
    /// Leaving a joint configuration while not in one.
    NotJoint,
    /// A change while the previous one is not yet committed (at this log index).
    InFlight(u64),
    /// A leader proposes a change only once an entry of its own term is committed
    /// (thesis §4.1, the fix to the single-server bug).
    TermNotCommitted,
    /// Leadership can only go to a voter.
    NotVoter(NodeId),
    /// Promoting a learner that does not yet hold the latest configuration (etcd's
    /// `member promote` refuses a learner not in sync with the leader): as a voter it
    /// could be needed for a quorum it cannot yet serve.
    LearnerBehind(NodeId),
}

impl fmt::Display for ConfChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChangeError::AlreadyMember(n) => write!(f, "node {n} is already a member"),
            ConfChangeError::NotMember(n) => write!(f, "node {n} is not a member"),
            ConfChangeError::NoVoterLeft => write!(f, "the change would leave no voter"),
            ConfChangeError::Demotion(n) => write!(
                f,
                "node {n} is a voter: remove it, then add it back as a learner"
            ),
            ConfChangeError::Repeated(n) => write!(f, "node {n} is named twice"),
            ConfChangeError::Empty => write!(f, "a joint change needs at least one change"),
            ConfChangeError::InJoint => write!(f, "the cluster is in a joint configuration"),
            ConfChangeError::NotJoint => write!(f, "the cluster is not in a joint configuration"),
            ConfChangeError::InFlight(i) => {
                write!(f, "the change at index {i} is not committed yet")
            }
            ConfChangeError::NotVoter(n) => {
                write!(f, "node {n} is not a voter: leadership goes to voters only")
            }
            ConfChangeError::LearnerBehind(n) => write!(
                f,
                "learner {n} does not yet hold the latest configuration: promote it once it does"
            ),
            ConfChangeError::TermNotCommitted => write!(
                f,
                "the leader has not yet committed an entry of its own term (thesis §4.1)"
            ),
        }
    }
}

/// How an election stands in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority of every voter set granted.
    Won,
    /// A majority of some voter set refused.
    Lost,
    /// Neither yet.
    Pending,
}

/// A configuration: voters, the outgoing voters of a joint configuration, learners.
/// Invariants: `voters` is not empty; learners are voters of neither set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    /// The voters (of `C_new` when joint).
    voters: BTreeSet<NodeId>,
    /// When joint, the voters of `C_old`; empty otherwise.
    outgoing: BTreeSet<NodeId>,
    /// Members that receive the log and vote in nothing.
    learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A configuration of `voters` only; panics if there are none.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        let m = Membership {
            voters: voters.into_iter().collect(),
            outgoing: BTreeSet::new(),
            learners: BTreeSet::new(),
        };
        m.assert_shape();
        m
    }

    fn assert_shape(&self) {
        assert!(!self.voters.is_empty(), "a configuration has a voter");
        assert!(
            self.learners.is_disjoint(&self.voters) && self.learners.is_disjoint(&self.outgoing),
            "a learner votes in no set"
        );
    }

    /// The voters (of `C_new` when joint).
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }
    /// The voters of `C_old` when joint; empty otherwise.
    pub fn outgoing(&self) -> &BTreeSet<NodeId> {
        &self.outgoing
    }
    /// The learners.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }
    /// Whether this is a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }
    /// Whether `id` votes (in either set when joint).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }
    /// Whether `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }
    /// Whether `id` is a member (voter or learner).
    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every voter, in id order (both sets when joint, each once).
    pub fn all_voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        merge(&self.voters, &self.outgoing)
    }

    /// Every member, in id order: those a leader replicates to.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mut all: Vec<NodeId> = self
            .all_voters()
            .chain(self.learners.iter().copied())
            .collect();
        all.sort_unstable();
        all.into_iter()
    }

    /// The configuration with learners counted as voters: what the `learner-votes`
    /// bug counts quorums in.
    pub fn with_learners_voting(&self) -> Membership {
        let mut m = self.clone();
        let learners = std::mem::take(&mut m.learners);
        m.voters.extend(learners.iter().copied());
        if m.is_joint() {
            m.outgoing.extend(learners);
        }
        m
    }

    /// The highest value a majority of every voter set reaches: with `value` a node's
    /// match index, the commit index; with its acknowledged read round, the confirmed
    /// round. `scratch` is reused so that counting allocates nothing.
    pub fn quorum_value(&self, scratch: &mut Vec<u64>, value: impl Fn(NodeId) -> u64) -> u64 {
        let incoming = majority_value(scratch, &self.voters, &value);
        if self.outgoing.is_empty() {
            return incoming;
        }
        incoming.min(majority_value(scratch, &self.outgoing, &value))
    }

    /// The election's standing given the votes received (`true`: granted).
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let incoming = set_result(&self.voters, votes);
        if self.outgoing.is_empty() {
            return incoming;
        }
        match (incoming, set_result(&self.outgoing, votes)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// The configuration after `change`, or why it is refused.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership, ConfChangeError> {
        let mut next = self.clone();
        match change {
            ConfChange::Single(c) => {
                if self.is_joint() {
                    return Err(ConfChangeError::InJoint);
                }
                next.change(*c)?;
            }
            ConfChange::EnterJoint(changes) => {
                if self.is_joint() {
                    return Err(ConfChangeError::InJoint);
                }
                if changes.is_empty() {
                    return Err(ConfChangeError::Empty);
                }
                let mut seen = BTreeSet::new();
                for c in changes {
                    if !seen.insert(c.node()) {
                        return Err(ConfChangeError::Repeated(c.node()));
                    }
                    next.change(*c)?;
                }
                next.outgoing = self.voters.clone();
            }
            ConfChange::LeaveJoint => {
                if !self.is_joint() {
                    return Err(ConfChangeError::NotJoint);
                }
                next.outgoing.clear();
            }
        }
        if next.voters.is_empty() {
            return Err(ConfChangeError::NoVoterLeft);
        }
        next.assert_shape();
        Ok(next)
    }

    /// Applies one change to the incoming sets.
    fn change(&mut self, change: MemberChange) -> Result<(), ConfChangeError> {
        match change {
            MemberChange::AddVoter(n) => {
                if self.voters.contains(&n) {
                    return Err(ConfChangeError::AlreadyMember(n));
                }
                self.learners.remove(&n);
                self.voters.insert(n);
            }
            MemberChange::AddLearner(n) => {
                if self.learners.contains(&n) {
                    return Err(ConfChangeError::AlreadyMember(n));
                }
                if self.voters.contains(&n) || self.outgoing.contains(&n) {
                    return Err(ConfChangeError::Demotion(n));
                }
                self.learners.insert(n);
            }
            MemberChange::Remove(n) => {
                if !self.voters.remove(&n) && !self.learners.remove(&n) {
                    return Err(ConfChangeError::NotMember(n));
                }
            }
        }
        Ok(())
    }
}

/// The union of two sorted sets, in order, each element once.
fn merge<'a>(
    a: &'a BTreeSet<NodeId>,
    b: &'a BTreeSet<NodeId>,
) -> impl Iterator<Item = NodeId> + 'a {
    a.union(b).copied()
}

/// The highest value a majority of `set` reaches.
fn majority_value(
    scratch: &mut Vec<u64>,
    set: &BTreeSet<NodeId>,
    value: &impl Fn(NodeId) -> u64,
) -> u64 {
    scratch.clear();
    scratch.extend(set.iter().map(|&n| value(n)));
    let majority = set.len() / 2 + 1;
    assert!(majority <= scratch.len(), "a majority of a non-empty set");
    *scratch
        .select_nth_unstable_by(majority - 1, |a, b| b.cmp(a))
        .1
}

fn set_result(set: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let majority = set.len() / 2 + 1;
    let granted = set.iter().filter(|n| votes.get(n) == Some(&true)).count();
    let refused = set.iter().filter(|n| votes.get(n) == Some(&false)).count();
    if granted >= majority {
        VoteResult::Won
    } else if refused > set.len() - majority {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

crate::impl_fingerprint!(enum MemberChange {
    0 => AddVoter(n),
    1 => AddLearner(n),
    2 => Remove(n),
});

crate::impl_fingerprint!(enum ConfChangeError {
    0 => AlreadyMember(n),
    1 => NotMember(n),
    2 => NoVoterLeft,
    3 => Demotion(n),
    4 => Repeated(n),
    5 => Empty,
    6 => InJoint,
    7 => NotJoint,
    8 => InFlight(index),
    9 => TermNotCommitted,
    10 => NotVoter(node),
    11 => LearnerBehind(n),
});

crate::impl_fingerprint!(enum ConfChange {
    0 => Single(change),
    1 => EnterJoint(changes),
    2 => LeaveJoint,
});

#[cfg(test)]
mod tests {
    use super::*;
    use MemberChange::*;

    fn votes(granted: &[NodeId], refused: &[NodeId]) -> BTreeMap<NodeId, bool> {
        let g = granted.iter().map(|&n| (n, true));
        g.chain(refused.iter().map(|&n| (n, false))).collect()
    }

    #[test]
    fn s4_1_single_changes_add_promote_and_remove() {
        let m = Membership::new([0, 1, 2]);
        let m = m.apply(&ConfChange::Single(AddLearner(3))).unwrap();
        assert!(m.is_learner(3) && !m.is_voter(3));
        let m = m.apply(&ConfChange::Single(AddVoter(3))).unwrap();
        assert!(m.is_voter(3) && !m.is_learner(3), "promoted");
        let m = m.apply(&ConfChange::Single(Remove(0))).unwrap();
        assert_eq!(m.voters().iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn s4_1_bad_changes_are_refused() {
        let m = Membership::new([0, 1, 2]);
        let add0 = ConfChange::Single(AddVoter(0));
        assert_eq!(m.apply(&add0), Err(ConfChangeError::AlreadyMember(0)));
        let rm7 = ConfChange::Single(Remove(7));
        assert_eq!(m.apply(&rm7), Err(ConfChangeError::NotMember(7)));
        let demote = ConfChange::Single(AddLearner(1));
        assert_eq!(m.apply(&demote), Err(ConfChangeError::Demotion(1)));
        let one = Membership::new([4]);
        let rm4 = ConfChange::Single(Remove(4));
        assert_eq!(one.apply(&rm4), Err(ConfChangeError::NoVoterLeft));
        let leave = ConfChange::LeaveJoint;
        assert_eq!(m.apply(&leave), Err(ConfChangeError::NotJoint));
        let twice = ConfChange::EnterJoint(vec![AddVoter(5), Remove(5)]);
        assert_eq!(m.apply(&twice), Err(ConfChangeError::Repeated(5)));
    }

    #[test]
    fn s4_3_a_joint_configuration_needs_both_majorities() {
        let m = Membership::new([0, 1, 2]);
        let enter = ConfChange::EnterJoint(vec![AddVoter(3), AddVoter(4), Remove(0), Remove(1)]);
        let joint = m.apply(&enter).unwrap();
        assert!(joint.is_joint());
        // Old {0,1,2}, new {2,3,4}: 0 and 1 and 2 are a majority of the old only.
        assert_eq!(
            joint.vote_result(&votes(&[0, 1, 2], &[])),
            VoteResult::Pending
        );
        assert_eq!(joint.vote_result(&votes(&[1, 2, 3], &[])), VoteResult::Won);
        assert_eq!(joint.vote_result(&votes(&[2], &[3, 4])), VoteResult::Lost);
        // Commit: match indexes 0..=4 → 10, 10, 5, 7, 1: old majority reaches 10, new 5.
        let matched = [10, 10, 5, 7, 1];
        let mut scratch = Vec::new();
        assert_eq!(joint.quorum_value(&mut scratch, |n| matched[n]), 5);
        let new = joint.apply(&ConfChange::LeaveJoint).unwrap();
        assert_eq!(new.quorum_value(&mut scratch, |n| matched[n]), 5);
        assert_eq!(new.voters().iter().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert!(!new.is_member(0));
        assert_eq!(new.apply(&enter), Err(ConfChangeError::AlreadyMember(3)));
    }

    #[test]
    fn learners_count_in_no_quorum() {
        let m = Membership::new([0, 1, 2]);
        let m = m.apply(&ConfChange::Single(AddLearner(3))).unwrap();
        let m = m.apply(&ConfChange::Single(AddLearner(4))).unwrap();
        // The learners 3 and 4 and the voter 0 hold index 9; voters 1 and 2 hold 4.
        let matched = [9, 4, 4, 9, 9];
        let mut scratch = Vec::new();
        assert_eq!(m.quorum_value(&mut scratch, |n| matched[n]), 4);
        assert_eq!(m.vote_result(&votes(&[0, 3, 4], &[])), VoteResult::Pending);
        let buggy = m.with_learners_voting();
        assert_eq!(buggy.quorum_value(&mut scratch, |n| matched[n]), 9);
        assert_eq!(buggy.vote_result(&votes(&[0, 3, 4], &[])), VoteResult::Won);
        assert_eq!(m.members().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }
}
