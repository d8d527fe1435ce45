//! Online invariants over the omniscient view of the cluster (Raft Figure 3), a
//! liveness check, and run metrics. Each checker is incremental: `after_step` looks at
//! what the node that stepped changed, and keeps the history it needs.
//!
//! Commit and applied indexes are volatile in Raft: a restarted node recovers both as
//! its snapshot index, which may be lower than before the crash. "Commit never
//! decreases" is therefore checked per incarnation (a crash, seen as the node being
//! `None`, starts a new one); across incarnations the committed *entries* are what must
//! not change, which state machine safety and leader completeness check.

use std::collections::BTreeMap;
use std::time::Duration;

use super::membership_safety::MembershipSafety;
use super::{HardState, RaftConfig, RaftProcess, StateMachine};
use crate::process::Process;

/// A node that runs Raft: a [`RaftProcess`] itself, or a process that holds one
/// (etcd's server: Raft, its lessor and its watches). The checkers of this module
/// judge every such node; a node that runs no Raft (a discovery run's service
/// instances and callers) answers `None` and is skipped as if down.
pub trait RaftNode: Process {
    /// The replicated state machine.
    type Machine: StateMachine;
    /// The node's Raft state, if it runs Raft.
    fn raft(&self) -> Option<&RaftProcess<Self::Machine>>;
}

impl<S: StateMachine> RaftNode for RaftProcess<S> {
    type Machine = S;
    fn raft(&self) -> Option<&RaftProcess<S>> {
        Some(self)
    }
}

/// The Raft nodes of a cluster view.
pub(crate) trait RaftView<S: StateMachine> {
    /// Node `id`'s Raft state, `None` while it is down or if it runs no Raft.
    fn raft(&self, id: NodeId) -> Option<&RaftProcess<S>>;
    /// The Raft nodes that are up, with their ids.
    fn rafts_up(&self) -> impl Iterator<Item = (NodeId, &RaftProcess<S>)>;
}

impl<P: RaftNode> RaftView<P::Machine> for ClusterView<'_, P> {
    fn raft(&self, id: NodeId) -> Option<&RaftProcess<P::Machine>> {
        self.node(id).and_then(P::raft)
    }
    fn rafts_up(&self) -> impl Iterator<Item = (NodeId, &RaftProcess<P::Machine>)> {
        self.up().filter_map(|(n, p)| p.raft().map(|r| (n, r)))
    }
}
use crate::check::{Availability, Checker, ClusterView, Metrics};
use crate::process::NodeId;

/// Every Raft checker for a cluster of `nodes` with `cfg`, whatever its state machine:
/// the invariants, liveness and metrics, and the progress check when
/// `max_commit_stall_ms` is set. `leader_bound` is how soon after the heal a leader
/// followed by a majority must exist (see [`LivenessAndMetrics`]).
pub fn all<P: RaftNode>(
    nodes: usize,
    cfg: &RaftConfig,
    leader_bound: Duration,
) -> Vec<Box<dyn Checker<P>>> {
    let mut checkers: Vec<Box<dyn Checker<P>>> = vec![
        Box::new(ElectionSafety::default()),
        Box::new(LogMatching::default()),
        Box::new(LeaderCompleteness::new(nodes)),
        Box::new(StateMachineSafety::default()),
        Box::new(IndexOrder::new(nodes)),
        Box::new(RecoveryKeepsDurable::new(nodes)),
        Box::new(LivenessAndMetrics::new(nodes, leader_bound)),
        // Last, so that a bug the checkers above catch is reported by them as before.
        Box::new(MembershipSafety::new(nodes, cfg)),
    ];
    if cfg.max_commit_stall_ms > 0 {
        let bound = Duration::from_millis(cfg.max_commit_stall_ms);
        checkers.push(Box::new(CommitProgress::new(nodes, bound)));
    }
    checkers
}

/// Stable storage (Raft Figure 2, "Persistent state on all servers: updated on stable
/// storage before responding to RPCs"): after a restart a node holds what its completed
/// syncs made durable — its term and vote, and its log through the index it believed
/// durable. A node that believes a write durable when it is not (an ignored fsync
/// error, a wiped disk) breaks every promise it made on that belief.
pub struct RecoveryKeepsDurable {
    /// Per node: the belief of its last incarnation, and whether it went down since.
    promised: Vec<Option<(u64, Option<u64>, HardState)>>,
    down: Vec<bool>,
}

impl RecoveryKeepsDurable {
    /// A checker for a cluster of `nodes`.
    pub fn new(nodes: usize) -> Self {
        RecoveryKeepsDurable {
            promised: vec![None; nodes],
            down: vec![false; nodes],
        }
    }
}

impl<P: RaftNode> Checker<P> for RecoveryKeepsDurable {
    fn name(&self) -> &'static str {
        "recovery-keeps-durable"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            if !self.down[node] && removed_from_cluster(view, node) {
                // A server outside the committed configuration holds no promise the
                // cluster relies on: it may come back with a new disk (a replacement,
                // etcd's remove-then-add), as a new member would.
                self.promised[node] = None;
            }
            self.down[node] = true;
            return Ok(());
        };
        // A replacement machine's first boot (`member-replace`, once its removal
        // committed): what its predecessor believed durable went with the old disk,
        // by design; nothing it promised counts in a configuration it is no member of.
        let replacement = p.rejoin_after().is_some() && p.log().last_index() == 0 && p.term() == 0;
        if std::mem::take(&mut self.down[node]) && !replacement {
            if let Some((index, term, hard)) = self.promised[node] {
                let log = p.log();
                let kept = match term {
                    Some(t) => log.snapshot_index() >= index || log.term(index) == Some(t),
                    None => log.last_index() >= index,
                };
                if !kept {
                    return Err(format!(
                        "node {node} recovered a log through index {} (term {:?} there) but \
                         believed it durable through index {index} term {term:?}",
                        log.last_index(),
                        log.term(index)
                    ));
                }
                let vote_kept = p.term() > hard.term
                    || (p.term() == hard.term
                        && (hard.vote.is_none() || p.voted_for() == hard.vote));
                if !vote_kept {
                    return Err(format!(
                        "node {node} recovered term {} vote {:?} but believed term {} vote {:?} durable",
                        p.term(),
                        p.voted_for(),
                        hard.term,
                        hard.vote
                    ));
                }
            }
        }
        self.promised[node] = Some(p.durable());
        Ok(())
    }
}

/// Whether `node` is outside the cluster: the leader of the highest term among the
/// nodes up has committed a configuration without it.
fn removed_from_cluster<P: RaftNode>(view: &ClusterView<'_, P>, node: NodeId) -> bool {
    let leader = view
        .rafts_up()
        .filter(|(_, p)| p.is_leader())
        .max_by_key(|(_, p)| p.term());
    leader.is_some_and(|(_, l)| {
        l.membership_index() <= l.commit_index() && !l.membership().is_member(node)
    })
}

/// Progress during the fault phase: liveness proper is judged only after the final
/// heal, so a cluster stuck *while* a fault lasts (a leader that can send but not hear,
/// kept in office because CheckQuorum is off) would pass it. This fails as soon as a
/// leader has held an uncommitted entry for longer than `bound` without its commit
/// index moving, not counting time in which the cluster could not run on time: the
/// time the leader itself was stalled (paused, its clock frozen: see
/// [`ClusterView::stalled`]), plus the time the followers it needs were, taken as the
/// (quorum − 1)-th smallest stall among its followers since the stuck commit began
/// (any quorum the leader could count on held a follower stalled at least that long).
/// Overlapping stalls may be counted twice, which only makes the check more lenient.
pub struct CommitProgress {
    bound: Duration,
    /// Per node: while it leads with entries pending, since when its commit is stuck.
    stalled: Vec<Option<Stuck>>,
}

/// A leader's commit index stuck at `commit` in `term` since `since`, when every node
/// had been stalled for `stalls`.
struct Stuck {
    term: u64,
    commit: u64,
    since: Duration,
    stalls: Vec<Duration>,
}

impl CommitProgress {
    /// A checker for a cluster of `nodes`: a leader may hold an uncommitted entry
    /// for up to `bound` (simulated time) without its commit index moving. Panics on
    /// a zero bound.
    pub fn new(nodes: usize, bound: Duration) -> Self {
        assert!(!bound.is_zero(), "a zero bound means the check is off");
        CommitProgress {
            bound,
            stalled: (0..nodes).map(|_| None).collect(),
        }
    }
}

impl<P: RaftNode> Checker<P> for CommitProgress {
    fn name(&self) -> &'static str {
        "raft-progress"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let pending = view
            .raft(node)
            .filter(|p| p.is_leader() && p.log().last_index() > p.commit_index());
        let Some(p) = pending else {
            self.stalled[node] = None;
            return Ok(());
        };
        let (term, commit) = (p.term(), p.commit_index());
        match &self.stalled[node] {
            Some(Stuck {
                term: t,
                commit: c,
                since,
                stalls,
            }) if *t == term && *c == commit => {
                let elapsed = view.now.saturating_sub(*since);
                if elapsed <= self.bound {
                    return Ok(());
                }
                let delta = |n: NodeId| view.stalled(n).saturating_sub(stalls[n]);
                let mut followers: Vec<Duration> = (0..stalls.len())
                    .filter(|&n| n != node)
                    .map(delta)
                    .collect();
                followers.sort_unstable();
                let quorum = stalls.len() / 2 + 1;
                let needed = followers.get(quorum.saturating_sub(2)).copied();
                let excused = delta(node) + needed.unwrap_or_default();
                let stuck = elapsed.saturating_sub(excused);
                if stuck > self.bound {
                    return Err(format!(
                        "no progress: node {node} has led term {term} with entries {}..={} \
                         uncommitted and its commit index stuck at {commit} for {} ms, {} ms \
                         of it with the leader or the followers it needs stalled \
                         (max_commit_stall_ms = {})",
                        commit + 1,
                        p.log().last_index(),
                        elapsed.as_millis(),
                        excused.as_millis(),
                        self.bound.as_millis()
                    ));
                }
            }
            _ => {
                let stalls = (0..view.nodes.len()).map(|n| view.stalled(n)).collect();
                self.stalled[node] = Some(Stuck {
                    term,
                    commit,
                    since: view.now,
                    stalls,
                });
            }
        }
        Ok(())
    }
}

/// §5.2: at most one leader per term, over the whole run.
#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<u64, NodeId>,
}

impl<P: RaftNode> Checker<P> for ElectionSafety {
    fn name(&self) -> &'static str {
        "election-safety"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            return Ok(());
        };
        if !p.is_leader() {
            return Ok(());
        }
        let first = *self.leaders.entry(p.term()).or_insert(node);
        if first != node {
            return Err(format!(
                "election safety: nodes {first} and {node} both lead term {}",
                p.term()
            ));
        }
        Ok(())
    }
}

/// §5.3 log matching: two entries with the same index and term hold the same command
/// and follow the same history. Checked through a registry of every (index, term) ever
/// held, mapping to (previous entry's term, digest): by induction on the index, a
/// unique registry entry per (index, term) is exactly the log matching property.
#[derive(Default)]
pub struct LogMatching {
    registry: BTreeMap<(u64, u64), (u64, u64)>,
}

impl<P: RaftNode> Checker<P> for LogMatching {
    fn name(&self) -> &'static str {
        "log-matching"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            return Ok(());
        };
        let Some(from) = p.log_changed_from() else {
            return Ok(());
        };
        let log = p.log();
        let from = from.max(log.first_index());
        for e in log.slice(from, log.last_index()) {
            let prev_term = log.term(e.index - 1).expect("the entry before is known");
            let here = (prev_term, super::entry_digest(e));
            let seen = *self.registry.entry((e.index, e.term)).or_insert(here);
            if seen != here {
                return Err(format!(
                    "log matching: node {node} holds an entry at index {} term {} that differs \
                     from another node's entry at the same index and term",
                    e.index, e.term
                ));
            }
        }
        Ok(())
    }
}

/// §5.4 leader completeness: a leader holds every entry committed in an earlier term,
/// and every write acknowledged to a client in an earlier term (no acknowledged write
/// lost). Checked when a node first leads a term.
pub struct LeaderCompleteness {
    /// index → (entry term, digest, the lowest term of a node seen applying it: an
    /// upper bound on the term it was committed in).
    committed: BTreeMap<u64, (u64, u64, u64)>,
    /// index → (entry term, term of the leader that acknowledged it).
    acked: BTreeMap<u64, (u64, u64)>,
    /// The last term each node was seen leading.
    led: Vec<u64>,
}

impl LeaderCompleteness {
    /// A checker for a cluster of `nodes`.
    pub fn new(nodes: usize) -> Self {
        LeaderCompleteness {
            committed: BTreeMap::new(),
            acked: BTreeMap::new(),
            led: vec![0; nodes],
        }
    }
}

impl<P: RaftNode> Checker<P> for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader-completeness"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            return Ok(());
        };
        for a in p.applied_in_step() {
            let e = self
                .committed
                .entry(a.index)
                .or_insert((a.term, a.digest, p.term()));
            e.2 = e.2.min(p.term());
        }
        for &(index, term) in p.acked_writes() {
            self.acked.entry(index).or_insert((term, p.term()));
        }
        if !p.is_leader() || self.led[node] == p.term() {
            return Ok(());
        }
        self.led[node] = p.term();
        let log = p.log();
        let snap = log.snapshot_index();
        for (&index, &(term, _, commit_term)) in self.committed.range(snap..) {
            if commit_term < p.term() && log.term(index) != Some(term) {
                return Err(format!(
                    "leader completeness: node {node} leads term {} without the entry at index \
                     {index} (term {term}) committed in term {commit_term}",
                    p.term()
                ));
            }
        }
        for (&index, &(term, ack_term)) in self.acked.range(snap + 1..) {
            if ack_term < p.term() && log.term(index) != Some(term) {
                return Err(format!(
                    "acknowledged write lost: node {node} leads term {} without the write at \
                     index {index} (term {term}) acknowledged to a client in term {ack_term}",
                    p.term()
                ));
            }
        }
        Ok(())
    }
}

/// §5.4.3 state machine safety: no two nodes apply different entries at one index, and
/// a snapshot a node installs (from a leader, or at recovery) ends at an entry that was
/// applied, the same one.
#[derive(Default)]
pub struct StateMachineSafety {
    applied: BTreeMap<u64, (u64, u64, NodeId)>,
}

impl<P: RaftNode> Checker<P> for StateMachineSafety {
    fn name(&self) -> &'static str {
        "state-machine-safety"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            return Ok(());
        };
        if let Some((index, term)) = p.installed_snapshot() {
            match self.applied.get(&index) {
                Some(&(t, _, first)) if t != term => {
                    return Err(format!(
                        "state machine safety: node {node} installed a snapshot through index \
                         {index} term {term} but node {first} applied an entry of term {t} there"
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "state machine safety: node {node} installed a snapshot through index \
                         {index} term {term}, which no node applied"
                    ))
                }
            }
        }
        for a in p.applied_in_step() {
            let (term, digest, first) = *self
                .applied
                .entry(a.index)
                .or_insert((a.term, a.digest, node));
            if (term, digest) != (a.term, a.digest) {
                return Err(format!(
                    "state machine safety: node {node} applied index {} from term {} but node \
                     {first} applied a different entry (term {term}) there",
                    a.index, a.term
                ));
            }
        }
        Ok(())
    }
}

/// Index ordering: terms, commit and applied never decrease within an incarnation;
/// applied ≤ commit ≤ last index. Across a restart a term may go back to the last one
/// that reached the disk (a crash may lose an adoption whose sync had not completed,
/// and nothing was sent in it); [`RecoveryKeepsDurable`] holds the node to that.
pub struct IndexOrder {
    /// Per node: (term, commit, applied) at its last step, `None` after a crash.
    last: Vec<Option<(u64, u64, u64)>>,
}

impl IndexOrder {
    /// A checker for a cluster of `nodes`.
    pub fn new(nodes: usize) -> Self {
        IndexOrder {
            last: vec![None; nodes],
        }
    }
}

impl<P: RaftNode> Checker<P> for IndexOrder {
    fn name(&self) -> &'static str {
        "index-order"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let Some(p) = view.raft(node) else {
            self.last[node] = None; // A new incarnation recovers from storage.
            return Ok(());
        };
        let (term, commit, applied) = (p.term(), p.commit_index(), p.applied_index());
        if applied > commit || commit > p.log().last_index() {
            return Err(format!(
                "index order: node {node} has applied {applied}, commit {commit}, last index {} \
                 (need applied <= commit <= last)",
                p.log().last_index()
            ));
        }
        if let Some((t, c, a)) = self.last[node] {
            if term < t {
                return Err(format!(
                    "term regressed: node {node} went from term {t} to {term} without restarting"
                ));
            }
            if commit < c || applied < a {
                return Err(format!(
                    "commit regressed: node {node} went from commit {c} / applied {a} to commit \
                     {commit} / applied {applied} in term {term} without restarting"
                ));
            }
        }
        self.last[node] = Some((term, commit, applied));
        Ok(())
    }
}

/// Liveness and the run's metrics.
///
/// Expecting progress (see [`Availability`]), the cluster is settled once, after the
/// heal:
/// - a leader of the highest term is followed by a majority, and the first such came
///   within the leader bound of the heal (the scenario's `liveness.leader_ms`, else 10
///   election timeouts), timed to the step in which it first existed, not to the poll
///   that saw it;
/// - a fresh write committed: the leader's commit index reached an entry of its own
///   term appended after the heal (its no-op if it was elected after the heal, else a
///   client's write; the KV workload writes one after the heal for this). Nothing held
///   at the heal qualifies, so the check cannot pass on old progress;
/// - every live replica (up, not paused, and linked both ways with the leader) has
///   applied through the leader's commit index.
///
/// Once settled, the leader found must keep its office: if it stops leading, or any
/// node leads a higher term, later polls fail (a scenario's `liveness.stable_ms` polls
/// again after that long).
///
/// Expecting unavailability, it is settled while nothing committed after the heal: no
/// node applied an index above the highest applied anywhere before it.
pub struct LivenessAndMetrics {
    /// Terms that had a leader.
    leader_terms: BTreeMap<u64, NodeId>,
    /// The leader of the highest term seen, while it leads.
    leader_now: Option<(NodeId, u64)>,
    /// Since when there has been no leader (None while there is one). The metric
    /// `time_without_leader_ms` is the simulated time, from the start of the run to
    /// the last step seen (both phases), in which no node held the leader role in the
    /// highest term any node has led: the time before the first election, after the
    /// leader of the highest term crashed or stepped down and before a node led a
    /// term at least as high. A majority following that leader is not required: a
    /// leader cut off from its followers counts until it steps down (with
    /// CheckQuorum, within an election timeout) or a higher term's leader appears.
    leaderless_since: Option<Duration>,
    leaderless: Duration,
    /// The latest simulated time seen.
    last_now: Duration,
    /// Per node: the last index it held as leader, to spot new proposals.
    proposed_to: Vec<u64>,
    /// index → simulated time it was proposed at a leader.
    proposals: BTreeMap<u64, Duration>,
    /// Highest index seen committed (applied anywhere).
    committed_to: u64,
    committed_ops: u64,
    latencies_us: Vec<u64>,
    /// A leader followed by a majority must exist this soon after the heal.
    leader_after_heal_max: Duration,
    /// The leader (node, term) when the phase settled (see `Checker::on_settled`).
    settled_leader: Option<(NodeId, u64)>,
    /// What ended the settled leader's office, and when (after the heal), if it did.
    deposed: Option<String>,
    /// The first liveness poll, which is the heal.
    healed_at: Option<Duration>,
    /// How long after the heal a leader followed by a majority first existed.
    leader_after_heal: Option<Duration>,
    /// Per node at the heal: its term and last log index (`None`: down then).
    at_heal: Vec<Option<(u64, u64)>>,
    /// The highest term any node that was up held at the heal.
    term_at_heal: u64,
    /// The highest index applied anywhere at the heal.
    committed_at_heal: u64,
    /// How long after the heal a fresh write first committed, and where.
    fresh_commit: Option<(Duration, u64, u64)>,
}

/// Proposals tracked for latency at once; older ones are dropped (and not measured).
const MAX_TRACKED_PROPOSALS: usize = 100_000;

impl LivenessAndMetrics {
    /// A checker for a cluster of `nodes` that must have a leader followed by a
    /// majority within `leader_bound` of the heal.
    pub fn new(nodes: usize, leader_bound: Duration) -> Self {
        LivenessAndMetrics {
            leader_after_heal_max: leader_bound,
            settled_leader: None,
            deposed: None,
            healed_at: None,
            leader_after_heal: None,
            at_heal: vec![None; nodes],
            term_at_heal: 0,
            committed_at_heal: 0,
            fresh_commit: None,
            leader_terms: BTreeMap::new(),
            leader_now: None,
            leaderless_since: Some(Duration::ZERO),
            leaderless: Duration::ZERO,
            last_now: Duration::ZERO,
            proposed_to: vec![0; nodes],
            proposals: BTreeMap::new(),
            committed_to: 0,
            committed_ops: 0,
            latencies_us: Vec::new(),
        }
    }

    fn set_leader(&mut self, now: Duration, leader: Option<(NodeId, u64)>) {
        match (self.leader_now.is_some(), leader.is_some()) {
            (true, false) => self.leaderless_since = Some(now),
            (false, true) => {
                let since = self.leaderless_since.take().expect("leaderless");
                self.leaderless += now.saturating_sub(since);
            }
            _ => {}
        }
        self.leader_now = leader;
    }

    /// `Ok` when a leader of the highest term is followed by a majority.
    fn majority_leader<P: RaftNode>(&self, view: &ClusterView<'_, P>) -> Result<(), String> {
        let leader = view
            .rafts_up()
            .filter(|(_, p)| p.is_leader())
            .max_by_key(|(_, p)| p.term());
        let Some((l, lp)) = leader else {
            return Err("no leader among the nodes that are up".into());
        };
        let follows = |n: NodeId| {
            n == l
                || view
                    .raft(n)
                    .is_some_and(|p| p.term() == lp.term() && p.leader() == Some(l))
        };
        // A majority of each voter set of the leader's configuration (both when joint).
        let membership = lp.membership();
        for set in [membership.voters(), membership.outgoing()] {
            let followers = set.iter().filter(|&&n| follows(n)).count();
            if !set.is_empty() && followers < set.len() / 2 + 1 {
                return Err(format!(
                    "no leader followed by a majority: node {l} leads term {} with {followers} \
                     of the {} voters {set:?}",
                    lp.term(),
                    set.len()
                ));
            }
        }
        Ok(())
    }
}

impl<P: RaftNode> Checker<P> for LivenessAndMetrics {
    fn name(&self) -> &'static str {
        "raft-liveness"
    }

    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String> {
        let now = view.now;
        self.last_now = self.last_now.max(now);
        let Some(p) = view.raft(node) else {
            if self.leader_now.is_some_and(|(l, _)| l == node) {
                self.set_leader(now, None);
            }
            return Ok(());
        };
        if p.is_leader() {
            self.leader_terms.entry(p.term()).or_insert(node);
            if self.leader_now.is_none_or(|(_, t)| p.term() >= t) {
                self.set_leader(now, Some((node, p.term())));
            }
            let last = p.log().last_index();
            if last > self.proposed_to[node] {
                let from = (self.proposed_to[node] + 1).max(last.saturating_sub(1000));
                for i in from..=last {
                    if p.log().term(i) == Some(p.term()) {
                        self.proposals.insert(i, now);
                    }
                }
                self.proposed_to[node] = last;
                while self.proposals.len() > MAX_TRACKED_PROPOSALS {
                    self.proposals.pop_first();
                }
            }
        } else {
            self.proposed_to[node] = 0;
            if self.leader_now.is_some_and(|(l, _)| l == node) {
                self.set_leader(now, None);
            }
        }
        for a in p.applied_in_step() {
            if a.index <= self.committed_to {
                continue;
            }
            self.committed_to = a.index;
            if a.command {
                self.committed_ops += 1;
            }
            if let Some(at) = self.proposals.remove(&a.index) {
                self.latencies_us
                    .push(now.saturating_sub(at).as_micros() as u64);
            }
        }
        if let Some(healed_at) = self.healed_at {
            if self.leader_after_heal.is_none() && self.majority_leader(view).is_ok() {
                self.leader_after_heal = Some(now.saturating_sub(healed_at));
            }
            if let (Some((l, term)), None) = (self.settled_leader, &self.deposed) {
                let ended = if node == l && (!p.is_leader() || p.term() != term) {
                    Some(format!("node {l} stopped leading term {term}"))
                } else if p.is_leader() && p.term() > term {
                    Some(format!(
                        "node {node} leads term {} after node {l} settled as leader of term {term}",
                        p.term()
                    ))
                } else {
                    None
                };
                self.deposed = ended.map(|what| {
                    format!(
                        "{what}, {} ms after the heal",
                        now.saturating_sub(healed_at).as_millis()
                    )
                });
            }
        }
        // Proposals at or below the commit point that never committed were overwritten.
        while self
            .proposals
            .first_key_value()
            .is_some_and(|(&i, _)| i <= self.committed_to)
        {
            self.proposals.pop_first();
        }
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, P>) -> Result<(), String> {
        self.last_now = self.last_now.max(view.now);
        if self.healed_at.is_none() {
            self.healed_at = Some(view.now);
            for (n, p) in view.rafts_up() {
                self.at_heal[n] = Some((p.term(), p.log().last_index()));
                self.term_at_heal = self.term_at_heal.max(p.term());
            }
            self.committed_at_heal = self.committed_to;
        }
        let healed_at = self.healed_at.expect("set above");
        if view.availability == Availability::Unavailable {
            return match self.committed_to > self.committed_at_heal {
                false => Ok(()),
                true => Err(format!(
                    "index {} committed after the heal (the highest applied before it was {})",
                    self.committed_to, self.committed_at_heal
                )),
            };
        }
        if let Some(deposed) = &self.deposed {
            return Err(format!("the settled leader lost its office: {deposed}"));
        }
        self.majority_leader(view)?;
        let took = *self.leader_after_heal.get_or_insert(view.now - healed_at);
        if took > self.leader_after_heal_max {
            return Err(format!(
                "the first leader followed by a majority came {} ms after the heal, more than \
                 the bound ({} ms)",
                took.as_millis(),
                self.leader_after_heal_max.as_millis()
            ));
        }
        let (l, lp) = view
            .rafts_up()
            .filter(|(_, p)| p.is_leader())
            .max_by_key(|(_, p)| p.term())
            .expect("majority_leader found one");
        let (term, commit) = (lp.term(), lp.commit_index());
        if self.fresh_commit.is_none() {
            // An entry of the leader's term is fresh if the leader took office after
            // the heal, or, leading the same term then, appended it since.
            let fresh = lp.log().term(commit) == Some(term)
                && match self.at_heal[l] {
                    Some((t, last)) => term > t || commit > last,
                    None => term > self.term_at_heal,
                };
            if !fresh {
                let held = match self.at_heal[l] {
                    Some((t, last)) => format!("term {t} through index {last}"),
                    None => "nothing (it was down)".into(),
                };
                return Err(format!(
                    "no write appended after the heal has committed: node {l} leads term \
                     {term} with commit index {commit} (entry term {:?}), and held {held} at \
                     the heal",
                    lp.log().term(commit)
                ));
            }
            self.fresh_commit = Some((view.now - healed_at, commit, term));
        }
        let lagging: Vec<String> = view
            .rafts_up()
            .filter(|&(n, p)| {
                // Spares and removed servers are outside the cluster: nothing to catch up.
                let member = lp.membership().is_member(n);
                n != l && member && view.live_with(n, l) && p.applied_index() < commit
            })
            .map(|(n, p)| {
                format!(
                    "node {n} has applied through index {} of the leader's (node {l}) commit \
                     index {commit}: {} entries behind",
                    p.applied_index(),
                    commit - p.applied_index()
                )
            })
            .collect();
        if !lagging.is_empty() {
            return Err(lagging.join("; "));
        }
        Ok(())
    }

    fn on_settled(&mut self, view: &ClusterView<'_, P>) {
        self.settled_leader = view
            .rafts_up()
            .filter(|(_, p)| p.is_leader())
            .max_by_key(|(_, p)| p.term())
            .map(|(l, p)| (l, p.term()));
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("elections".into(), self.leader_terms.len() as f64);
        // A `sometimes` mark: leadership passed from one node to another.
        let changes = self
            .leader_terms
            .values()
            .zip(self.leader_terms.values().skip(1))
            .filter(|(a, b)| a != b)
            .count();
        out.insert("sometimes.leader-changed".into(), changes as f64);
        let mut leaderless = self.leaderless;
        if let Some(since) = self.leaderless_since {
            // Still leaderless: count up to the last step seen.
            leaderless += self.last_now.saturating_sub(since);
        }
        out.insert(
            "time_without_leader_ms".into(),
            leaderless.as_secs_f64() * 1e3,
        );
        out.insert("committed_ops".into(), self.committed_ops as f64);
        if let Some(took) = self.leader_after_heal {
            out.insert("leader_after_heal_ms".into(), took.as_secs_f64() * 1e3);
        }
        if let Some((took, _, _)) = self.fresh_commit {
            out.insert(
                "fresh_commit_after_heal_ms".into(),
                took.as_secs_f64() * 1e3,
            );
        }
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |q: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() - 1) as f64 * q).round() as usize;
            l[i] as f64 / 1e3
        };
        out.insert("commit_latency_ms_p50".into(), pct(0.5));
        out.insert("commit_latency_ms_p99".into(), pct(0.99));
    }
}
