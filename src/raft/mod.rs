//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", and
//! Ongaro's thesis) as a sans-IO [`Process`], replicating any [`StateMachine`]; the
//! [`crate::kv`] store is the first (and the default type parameter).
//!
//! Only the algorithm lives here: what a command means, how a snapshot is taken and
//! how a read is answered belong to the state machine ([`state_machine`]); at-most-once
//! application of retried commands is Raft's, for any command ([`session`]).
//!
//! The algorithm is split by concern: [`log`] (the in-memory log and its snapshot),
//! `election` (§5.2, PreVote, CheckQuorum), `replication` (§5.3, batching, pipelining,
//! fast backtracking, the §5.4.2 commit rule), `snapshot` (§7 compaction and
//! InstallSnapshot), `read` (read_index, lease and the unsafe read modes), and
//! [`invariants`] (online checkers). This file holds the node's state and the
//! handler entry points shared by every role.
//!
//! Durability: term, vote and log entries are written with `ctx.write` as they change.
//! Every handler ends by starting one sync of its writes, and its messages and client
//! replies wait in a [`DurableOutbox`] until that sync completes (in
//! `RaftProcess::finish`); so nothing a peer or client learns can be lost by a crash.
//! A leader's own appends therefore also wait for its sync before they are sent, so the
//! leader counts toward a commit quorum only entries that are durable on its disk
//! (Raft thesis §10.2.1 allows sending first; faultline keeps the simpler order).
//! An fsync error stops the node (crash-stop, then recovery from disk): after EIO the
//! page cache no longer holds what the log in memory claims is on disk.

mod bugs;
pub mod client;
pub mod config;
mod election;
pub mod invariants;
pub mod log;
pub mod membership;
pub mod membership_safety;
pub mod messages;
mod read;
mod replication;
pub mod session;
mod snapshot;
pub mod state_machine;
pub mod system;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::Rng;

use crate::kv::KvStore;
use crate::process::{
    Context, DurableOutbox, NodeId, Process, RequestId, SyncError, SyncId, TimerId, Waits,
};
use membership::Membership;

pub use bugs::Bugs;
pub use config::{RaftConfig, ReadMode};
pub use log::RaftLog;
pub use messages::{
    AppendResult, Entry, EntryData, HardState, Message, Record, Request, RequestOp, Response,
    Snapshot,
};
pub use session::{Applied, Sessions};
pub use state_machine::StateMachine;
pub use system::RaftKv;

type Ctx<'a, S> = Context<'a, RaftProcess<S>>;

/// A node's role (§5.1, with the thesis's pre-candidate, §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it could win before raising its term (PreVote).
    PreCandidate,
    /// Stands for election in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// A node's timers.
#[derive(Clone, Debug)]
pub enum Timer {
    /// Election timeout for followers and candidates; CheckQuorum period for a leader.
    /// Lazy: it fires at the earliest deadline armed and re-arms if the deadline moved.
    Election,
    /// Leader heartbeat; stale once the leader's `term` is over.
    Heartbeat {
        /// The leader's term.
        term: u64,
    },
    /// A candidate asks again the peers that have not answered (requests get lost);
    /// stale once the candidacy for `term` is over.
    VoteRetry {
        /// The candidacy's term.
        term: u64,
    },
}

/// The leader's view of one follower's log (etcd's `Progress`).
#[derive(Clone, Debug)]
struct Progress {
    /// Next index to send. Invariant: `matched < next <= last_index + 1`.
    next: u64,
    /// Highest index known to be replicated on the follower (from its acknowledgements of
    /// specific requests, never from the leader's own state).
    matched: u64,
    /// Last index of each AppendEntries outstanding, oldest first; bounded by
    /// `max_inflight_appends`.
    inflight: VecDeque<u64>,
    /// Probing: the follower's match point is unknown; one message at a time until an
    /// acceptance. Otherwise replicating: pipeline batches optimistically.
    probing: bool,
    /// An AppendEntries reply arrived since the last heartbeat tick (stall detection).
    acked_since_tick: bool,
    /// Heard from since the last CheckQuorum period: any reply in this term, or (for
    /// the first period) a vote for it.
    active: bool,
    /// Added (back) to the configuration by the entry at this index, and not yet known
    /// to hold it. Meanwhile a rejection showing a log shorter than `matched` lowers
    /// `matched`: a replacement machine's predecessor may have acknowledged entries,
    /// before its removal, that arrive after the server was added back with an empty
    /// disk (those entries were all committed before the removal, so no commit counted
    /// them wrongly).
    rejoined: Option<u64>,
    /// Highest read round acknowledged (read_index).
    read_acked: u64,
    /// Send time (leader clock) of the latest acknowledged heartbeat (lease).
    lease_acked_at: Duration,
    /// The `no-catch-up` bug gave up on this follower after it rejected an append.
    abandoned: bool,
}

impl Progress {
    /// What a leader knows of a follower it has not heard from: nothing matched, probe
    /// from `next`.
    fn new(next: u64, active: bool) -> Progress {
        Progress {
            next,
            matched: 0,
            inflight: VecDeque::new(),
            probing: true,
            acked_since_tick: false,
            active,
            rejoined: None,
            read_acked: 0,
            lease_acked_at: Duration::ZERO,
            abandoned: false,
        }
    }
}

struct PendingRead<S: StateMachine> {
    id: RequestId,
    seq: u64,
    query: S::Query,
    /// The heartbeat round that must be acknowledged by a majority.
    read_seq: u64,
    /// The commit index when the read arrived: the answer reflects at least this.
    read_index: u64,
}

struct LeaderState<S: StateMachine> {
    /// Indexed by node id; the leader's own slot is unused.
    progress: Vec<Progress>,
    /// Index of this term's first entry (the no-op).
    term_start: u64,
    /// Proposed commands awaiting commit, by log index.
    pending_writes: BTreeMap<u64, (RequestId, u64)>,
    /// Latest read round started; heartbeats carry it.
    read_seq: u64,
    /// Reads waiting for their round, in round order.
    pending_reads: VecDeque<PendingRead<S>>,
    /// Reused by [`Membership::quorum_value`], so the quorum computed on every acknowledgement
    /// allocates nothing.
    scratch: Vec<u64>,
    /// A leadership transfer under way: proposals wait until it ends.
    transfer: Option<Transfer>,
}

/// A leadership transfer (thesis §3.10): the leader brings `to` up to date, then tells
/// it to campaign at once; it gives up at `deadline` (its monotonic clock).
struct Transfer {
    to: NodeId,
    deadline: Duration,
    /// The request to answer, until the `TimeoutNow` is sent.
    request: Option<(RequestId, u64)>,
}

/// One Raft node replicating the state machine `S`: elections with PreVote and
/// CheckQuorum, log replication with batching, pipelining and fast backtracking,
/// snapshots, and reads by read index or lease.
pub struct RaftProcess<S: StateMachine = KvStore> {
    cfg: RaftConfig,
    bugs: Bugs,
    pre_vote: bool,
    check_quorum: bool,
    id: NodeId,
    nodes: usize,

    // Durable state, mirrored in storage ("hard", "log/<index>", "snapshot").
    /// Never decreases.
    term: u64,
    /// The candidate voted for in `term`, if any: at most one per term.
    vote: Option<NodeId>,
    log: RaftLog<S>,

    // Volatile state.
    role: Role,
    /// The leader of `term`, once known.
    leader: Option<NodeId>,
    /// Invariant: `log.snapshot_index() <= applied <= commit <= log.last_index()`;
    /// never decreases within an incarnation (a restart recovers it as the snapshot index).
    commit: u64,
    applied: u64,
    /// The state machine, as applied through `applied`.
    machine: S,
    /// Client sessions, as applied through `applied`.
    sessions: Sessions<S::Output>,
    /// The configurations of the log (thesis §4.1): the one at the snapshot index,
    /// then one per membership-change entry after it, by index. Bounded by the log:
    /// at most one entry each.
    configs: Vec<(u64, Membership)>,
    /// The configuration in effect: the latest in the log (with the `config-on-commit`
    /// bug, the latest committed), and the log index it comes from.
    membership: (u64, Membership),
    /// What quorums are counted in: `membership`, except that the `learner-votes` bug
    /// counts learners as voters.
    quorum: Membership,
    /// When this node last heard from the leader of its term (monotonic clock).
    leader_contact: Option<Duration>,
    /// With lease reads, until then (monotonic clock) a restarted node refuses votes as if
    /// it heard from a leader: it may have just acknowledged one whose lease still holds.
    lease_guard_until: Duration,
    /// When the election timeout (a follower's or candidate's) or the CheckQuorum
    /// period (a leader's) ends, on the monotonic clock. The timer is lazy: moving the
    /// deadline later (every message from the leader does) does not touch the armed
    /// timer; when it fires early it re-arms for what is left. Only moving the
    /// deadline earlier cancels and re-arms. That saves a cancel and a set per
    /// heartbeat.
    election_deadline: Duration,
    /// The armed election timer and the deadline it was armed for.
    election_timer: Option<(TimerId, Duration)>,
    /// Votes received in the current (pre-)election: voter → granted.
    votes: BTreeMap<NodeId, bool>,
    /// Grant count used by the `stale-vote-counting` bug, which counts every reply.
    bug_vote_count: usize,
    /// This candidacy was started by the leader's `TimeoutNow` (thesis §3.10).
    transfer_campaign: bool,
    leader_state: Option<LeaderState<S>>,

    /// Messages and replies, each emitted once the writes before it are durable.
    out: DurableOutbox<Message<S>, Response<S>>,
    /// What this node believes its disk holds: the log through `durable.0` (whose
    /// entry has term `durable.1`, `None` if compacted) and this hard state. Checkers
    /// hold a restarted node to it.
    durable: (u64, Option<u64>, HardState),
    /// Syncs in flight with the log's last index and the hard state when each started.
    sync_marks: VecDeque<(SyncId, u64, HardState)>,
    /// Emit this step's output without syncing first (the `ack-before-sync` bug).
    defer_sync: bool,
    /// Writes acknowledged to clients in the latest step: (index, term).
    acked: Vec<(u64, u64)>,
    /// Entries applied in the latest step.
    applied_in_step: Vec<AppliedEntry>,
    /// The lowest log index written (appended, replaced, or installed) in the latest
    /// step, so checkers can look at just what changed.
    log_changed_from: Option<u64>,
    /// The snapshot (index, term) the latest step installed as the state machine's
    /// state: one received from a leader, or the one recovery started from.
    installed_in_step: Option<(u64, u64)>,
    /// A replacement machine's node ([`Record::Join`]): the index of the entry that
    /// removed it. While its latest configuration is from no later, it is rejoining.
    rejoin_after: Option<u64>,
}

/// An entry applied to the state machine, as checkers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    /// Its log index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// Digest of the entry (term and payload).
    pub digest: u64,
    /// A client command (not a no-op).
    pub command: bool,
}

impl<S: StateMachine> RaftProcess<S> {
    /// A fresh node; its id and cluster size come at start. Panics on a config that
    /// validation refuses.
    pub fn new(cfg: RaftConfig, bugs: Bugs) -> RaftProcess<S> {
        cfg.validate().expect("a validated config");
        let (pre_vote, check_quorum) = bugs.election_options(cfg.pre_vote, cfg.check_quorum);
        RaftProcess {
            pre_vote,
            check_quorum,
            cfg,
            bugs,
            id: 0,
            nodes: 1,
            term: 0,
            vote: None,
            log: RaftLog::default(),
            role: Role::Follower,
            leader: None,
            commit: 0,
            applied: 0,
            machine: S::default(),
            sessions: Sessions::default(),
            // Placeholders until `on_start` learns the cluster size.
            configs: Vec::new(),
            membership: (0, Membership::new([0])),
            quorum: Membership::new([0]),
            leader_contact: None,
            lease_guard_until: Duration::ZERO,
            election_deadline: Duration::ZERO,
            election_timer: None,
            votes: BTreeMap::new(),
            bug_vote_count: 0,
            transfer_campaign: false,
            leader_state: None,
            out: DurableOutbox::default(),
            durable: (0, Some(0), HardState::default()),
            sync_marks: VecDeque::new(),
            defer_sync: false,
            acked: Vec::new(),
            applied_in_step: Vec::new(),
            log_changed_from: None,
            installed_in_step: None,
            rejoin_after: None,
        }
    }

    // ---- Accessors for checkers and tests (the omniscient view). ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether it is leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// Its current term.
    pub fn term(&self) -> u64 {
        self.term
    }
    /// Whom it voted for in its current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.vote
    }
    /// The leader of its current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Its log.
    pub fn log(&self) -> &RaftLog<S> {
        &self.log
    }
    /// The highest index it knows committed.
    pub fn commit_index(&self) -> u64 {
        self.commit
    }
    /// The highest index applied to its state machine.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }
    /// Its state machine.
    pub fn state_machine(&self) -> &S {
        &self.machine
    }
    /// Its client sessions.
    pub fn sessions(&self) -> &Sessions<S::Output> {
        &self.sessions
    }
    /// The configuration it uses: the latest in its log (thesis §4.1).
    pub fn membership(&self) -> &Membership {
        &self.membership.1
    }
    /// The log index of the entry that configuration comes from (the snapshot's index
    /// for the snapshot's configuration).
    pub fn membership_index(&self) -> u64 {
        self.membership.0
    }
    /// Its configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }
    /// Writes acknowledged to a client in the latest step, as (index, term).
    pub fn acked_writes(&self) -> &[(u64, u64)] {
        &self.acked
    }
    /// Entries applied in the latest step.
    pub fn applied_in_step(&self) -> &[AppliedEntry] {
        &self.applied_in_step
    }
    /// The lowest log index written in the latest step, if any.
    pub fn log_changed_from(&self) -> Option<u64> {
        self.log_changed_from
    }
    /// The snapshot (index, term) installed in the latest step, if any.
    pub fn installed_snapshot(&self) -> Option<(u64, u64)> {
        self.installed_in_step
    }
    /// What the node believes is on its disk, from the syncs that completed: the log
    /// through an index (with that entry's term, `None` when compacted) and the term
    /// and vote.
    pub fn durable(&self) -> (u64, Option<u64>, HardState) {
        self.durable
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
        }
    }

    /// The log from `from` on changes: what was synced there no longer is the log.
    fn forget_durable_from(&mut self, from: u64) {
        let keep = from.saturating_sub(1);
        if self.durable.0 > keep {
            self.durable.0 = keep;
            self.durable.1 = self.log.term(keep);
        }
        for mark in &mut self.sync_marks {
            mark.1 = mark.1.min(keep);
        }
    }

    /// Sync `sync` started: it covers the log and hard state as they are now.
    fn mark_sync(&mut self, sync: SyncId) {
        if self.sync_marks.back().is_none_or(|m| m.0 != sync) {
            let mark = (sync, self.log.last_index(), self.hard_state());
            self.sync_marks.push_back(mark);
        }
    }

    /// Sync `sync` completed (or, with a bug, is taken as completed).
    fn durable_through(&mut self, sync: SyncId) {
        while self.sync_marks.front().is_some_and(|m| m.0 <= sync) {
            let (_, last, hard) = self.sync_marks.pop_front().expect("front exists");
            let last = last.min(self.log.last_index());
            self.durable = (last, self.log.term(last), hard);
        }
    }

    fn note_log_change(&mut self, index: u64) {
        self.log_changed_from = Some(self.log_changed_from.map_or(index, |i| i.min(index)));
    }

    /// The leader a redirect names: the one this node follows, unless it is no member
    /// of its own configuration, or is no voter and has not heard from that leader
    /// within an election timeout. A removed server hears from no leader any more (etcd
    /// stops such a member), and one removed unawares stops hearing from it: the leader
    /// it last knew is stale, and naming it could send clients around a loop of
    /// removed servers that each name the other. (A voter forgets a silent leader
    /// itself, when it campaigns.)
    pub(crate) fn leader_hint(&self, now: Duration) -> Option<NodeId> {
        let current = self.membership.1.is_member(self.id)
            && (self.quorum.is_voter(self.id) || self.heard_from_leader_recently(now));
        self.leader.filter(|_| current)
    }

    /// For a replacement machine ([`Record::Join`]): the index of the entry that removed
    /// its predecessor.
    pub fn rejoin_after(&self) -> Option<u64> {
        self.rejoin_after
    }

    /// Whether this node is a replacement machine that has not yet received a
    /// configuration from after its removal ([`Record::Join`]): it then neither
    /// campaigns nor votes.
    pub(crate) fn rejoining(&self) -> bool {
        let latest = self.configs.last().map_or(0, |(index, _)| *index);
        self.rejoin_after
            .is_some_and(|removed_at| latest <= removed_at)
    }

    /// The configuration as of log index `index` (at or after the snapshot).
    fn config_at(&self, index: u64) -> &Membership {
        let at = self.configs.partition_point(|(i, _)| *i <= index);
        assert!(
            at > 0,
            "index {index} precedes the snapshot's configuration"
        );
        &self.configs[at - 1].1
    }

    /// Rebuilds the configurations from the snapshot and the log (recovery, snapshot
    /// installation, truncation): bounded by the log's length.
    fn rebuild_configs(&mut self) {
        let snapshot = self.log.snapshot();
        let base = match &snapshot.membership {
            Some(m) => m.clone(),
            None => {
                assert_eq!(
                    snapshot.index, 0,
                    "only the initial snapshot has no configuration"
                );
                self.cfg.bootstrap_membership(self.nodes)
            }
        };
        self.configs.clear();
        self.configs.push((snapshot.index, base));
        for e in self.log.entries() {
            if let EntryData::ConfChange(change) = &e.data {
                let next = self.configs.last().expect("a base").1.apply(change);
                let next = next.expect("every change in a log was valid where it stands");
                self.configs.push((e.index, next));
            }
        }
        self.refresh_membership();
    }

    /// Appends `entry` to the log and storage; a membership change takes effect now,
    /// not at commit (thesis §4.1).
    fn append_entry(&mut self, ctx: &mut Ctx<'_, S>, entry: Entry<S>) {
        self.persist_entry(ctx, &entry);
        if let EntryData::ConfChange(change) = &entry.data {
            let latest = &self.configs.last().expect("a base").1;
            let next = latest.apply(change);
            let next = next.expect("a change is validated where it is proposed");
            ctx.trace(format!(
                "node {} configuration at {}: {next:?}",
                self.id, entry.index
            ));
            self.configs.push((entry.index, next));
        }
        let changes_membership = matches!(entry.data, EntryData::ConfChange(_));
        self.log.append(entry);
        // Only a membership entry moves the configuration: the per-entry path of every
        // other entry skips the refresh.
        if changes_membership {
            self.refresh_membership();
        }
    }

    /// Sets the configuration in effect from `configs` (and the commit index, with the
    /// `config-on-commit` bug).
    fn refresh_membership(&mut self) {
        let in_effect = match self.bugs.config_in_effect_at(self.commit) {
            // Before any configuration entry commits, the bootstrap one (the first) is
            // in effect: every node starts with it.
            Some(commit) => self
                .configs
                .partition_point(|(i, _)| *i <= commit)
                .saturating_sub(1),
            None => self.configs.len() - 1,
        };
        let (index, membership) = &self.configs[in_effect];
        if (*index, membership) == (self.membership.0, &self.membership.1) {
            return;
        }
        let joined: Vec<NodeId> = membership
            .members()
            .filter(|&n| !self.membership.1.is_member(n))
            .collect();
        self.membership = (*index, membership.clone());
        self.quorum = self.bugs.quorum_membership(membership);
        // A server added (or added back, perhaps with a wiped disk) starts from fresh
        // progress, as etcd-io/raft builds a new `Progress` for it: what it acknowledged
        // before its removal may be gone, and counting it toward a commit quorum would
        // commit entries it does not hold.
        let next = self.log.last_index() + 1;
        if let Some(ls) = self.leader_state.as_mut() {
            for n in joined {
                let mut fresh = Progress::new(next, false);
                fresh.rejoined = Some(*index);
                ls.progress[n] = fresh;
            }
        }
    }

    // ---- Step plumbing. ----

    fn begin(&mut self, ctx: &Ctx<'_, S>) {
        assert!(self.out.is_empty(), "a step starts with no output");
        assert_eq!(ctx.id(), self.id);
        self.acked.clear();
        self.applied_in_step.clear();
        self.log_changed_from = None;
        self.installed_in_step = None;
        self.defer_sync = false;
    }

    /// Ends a step: starts a sync of this step's writes and holds its messages and
    /// replies until it completes, so nothing sent depends on state a crash could lose.
    fn finish(&mut self, ctx: &mut Ctx<'_, S>) {
        let waits = if self.defer_sync {
            self.out.flush_early(ctx, false);
            Waits::Nothing
        } else if self.bugs.sends_before_persist() {
            self.out
                .flush_early(ctx, true)
                .map_or(Waits::Nothing, Waits::Sync)
        } else {
            self.out.flush(ctx)
        };
        match waits {
            Waits::Nothing if ctx.storage().unsynced_writes() == 0 => {
                let last = self.log.last_index();
                self.durable = (last, self.log.term(last), self.hard_state());
            }
            Waits::Sync(sync) => self.mark_sync(sync),
            // The mark is taken when that sync starts.
            Waits::Nothing | Waits::NextSync => {}
        }
        self.assert_invariants();
    }

    fn assert_invariants(&self) {
        assert!(
            self.log.snapshot_index() <= self.applied,
            "snapshot beyond applied"
        );
        assert!(self.applied <= self.commit, "applied beyond commit");
        assert!(
            self.commit <= self.log.last_index(),
            "commit beyond the log"
        );
        assert_eq!(self.role == Role::Leader, self.leader_state.is_some());
        if let Some(ls) = &self.leader_state {
            assert_eq!(self.leader, Some(self.id));
            assert_eq!(self.vote, Some(self.id), "a leader voted for itself");
            let last = self.log.last_index();
            for (peer, pr) in ls.progress.iter().enumerate() {
                if peer == self.id {
                    continue;
                }
                // The `Progress` invariants, as documented on its fields.
                assert!(
                    pr.matched < pr.next && pr.next <= last + 1,
                    "progress of node {peer}: matched {} next {} with last index {last}",
                    pr.matched,
                    pr.next
                );
                assert!(
                    pr.inflight.len() <= self.cfg.max_inflight_appends,
                    "node {peer}: {} appends in flight",
                    pr.inflight.len()
                );
            }
        }
    }

    fn send(&mut self, to: NodeId, msg: Message<S>) {
        self.out.send(to, msg);
    }

    fn reply(&mut self, id: RequestId, resp: Response<S>) {
        self.out.reply(id, resp);
    }

    fn persist_hard(&mut self, ctx: &mut Ctx<'_, S>) {
        ctx.write(
            "hard",
            Record::Hard(HardState {
                term: self.term,
                vote: self.vote,
            }),
        );
    }

    fn persist_entry(&mut self, ctx: &mut Ctx<'_, S>, entry: &Entry<S>) {
        self.note_log_change(entry.index);
        self.forget_durable_from(entry.index);
        ctx.write(log_key(entry.index), Record::Entry(entry.clone()));
    }

    fn random_election_timeout(&self, ctx: &mut Ctx<'_, S>) -> Duration {
        let lo = self.cfg.election_timeout_ms_min * 1000;
        let hi = self.cfg.election_timeout_ms_max * 1000;
        Duration::from_micros(ctx.rng().gen_range(lo..hi))
    }

    /// Moves the election deadline to `after` from now.
    fn reset_election_timer(&mut self, ctx: &mut Ctx<'_, S>, after: Duration) {
        self.election_deadline = ctx.now() + after;
        match self.election_timer {
            // The armed timer fires first and re-arms for the rest.
            Some((_, at)) if at <= self.election_deadline => {}
            Some((id, _)) => {
                ctx.cancel_timer(id);
                self.arm_election_timer(ctx);
            }
            None => self.arm_election_timer(ctx),
        }
    }

    fn arm_election_timer(&mut self, ctx: &mut Ctx<'_, S>) {
        let after = self.election_deadline.saturating_sub(ctx.now());
        let id = ctx.set_timer(after, Timer::Election);
        self.election_timer = Some((id, self.election_deadline));
    }

    /// Recovery: rebuild term, vote, log and state machine from what survived.
    fn recover(&mut self, ctx: &mut Ctx<'_, S>) {
        if let Some(Record::Hard(h)) = ctx.storage().get("hard") {
            self.term = h.term;
            self.vote = h.vote;
        }
        if let Some(Record::Join { removed_at }) = ctx.storage().get("join") {
            self.rejoin_after = Some(*removed_at);
        }
        let snapshot = match ctx.storage().get("snapshot") {
            Some(Record::Snapshot(s)) => s.clone(),
            _ => self.log.snapshot().clone(),
        };
        // Entries follow the snapshot contiguously. A torn tail (some of an unsynced
        // truncate-and-append) can leave a gap or a term regression; everything from
        // there on was never synced, so never acknowledged: drop it.
        let mut entries = Vec::new();
        let mut stale_keys = Vec::new();
        let mut prev = (snapshot.index, snapshot.term);
        let mut broken = false;
        for (key, rec) in ctx.storage().scan("log/") {
            let Record::Entry(e) = rec else {
                panic!("non-entry record under {key}")
            };
            if e.index <= snapshot.index {
                stale_keys.push(key.to_string());
            } else if broken || e.index != prev.0 + 1 || e.term < prev.1 {
                broken = true;
                stale_keys.push(key.to_string());
            } else {
                prev = (e.index, e.term);
                entries.push(e.clone());
            }
        }
        for key in stale_keys {
            ctx.remove(key);
        }
        self.machine = S::restore(&snapshot.state);
        self.sessions = snapshot.sessions.clone();
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        if snapshot.index > 0 {
            self.installed_in_step = Some((snapshot.index, snapshot.term));
        }
        self.log = RaftLog::from_parts(snapshot, entries);
        self.rebuild_configs();
        self.note_log_change(self.log.first_index());
    }
}

/// A request-trace step for a client command's entry (see [`crate::spans`]); a no-op
/// entry serves no client and has none. Across a message, each step follows the
/// sender's step that the message carries on: an entry from an append or an earlier
/// replica, a commit from an acknowledgement, an apply from a commit.
fn span_entry<S: StateMachine>(ctx: &mut Ctx<'_, S>, entry: &Entry<S>, name: &'static str) {
    if let EntryData::Command { client, seq, .. } = entry.data {
        let op = crate::spans::OpId { client, op: seq };
        let attrs = [("index", entry.index as i64), ("term", entry.term as i64)];
        let after: &'static [&'static str] = match name {
            "replicated" => &["appended", "replicated"],
            "committed" => &["replicated"],
            "applied" => &["committed"],
            _ => &[],
        };
        ctx.span_after(op, name, after, &attrs);
    }
}

pub(crate) fn log_key(index: u64) -> String {
    // Zero-padded to u64's 20 digits so that key order is index order. `itoa`, not
    // `format!` with padding, which was a twentieth of a simulated run at one key per
    // appended entry.
    const DIGITS_MAX: usize = 20;
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(index);
    assert!(digits.len() <= DIGITS_MAX);
    let mut key = String::with_capacity(4 + DIGITS_MAX);
    key.push_str("log/");
    key.extend(std::iter::repeat_n('0', DIGITS_MAX - digits.len()));
    key.push_str(digits);
    key
}

/// A digest of an entry's payload, for comparing applied entries across nodes: FNV-1a
/// of its term and full command (not just its identity, which is all `EntryData`'s
/// fingerprint takes), in the portable encoding of [`crate::fingerprint`].
pub fn entry_digest<S: StateMachine>(e: &Entry<S>) -> u64 {
    match &e.data {
        EntryData::Noop => crate::fingerprint::fnv(&(e.term, 0u32)),
        EntryData::Command { client, seq, cmd } => {
            crate::fingerprint::fnv(&(e.term, 1u32, client, seq, cmd))
        }
        EntryData::ConfChange(change) => crate::fingerprint::fnv(&(e.term, 2u32, change)),
    }
}

impl<S: StateMachine> Process for RaftProcess<S> {
    type Message = Message<S>;
    type Timer = Timer;
    type Request = Request<S>;
    type Response = Response<S>;
    type Record = Record<S>;

    fn on_start(&mut self, ctx: &mut Ctx<'_, S>) {
        self.id = ctx.id();
        self.nodes = ctx.nodes();
        self.begin(ctx);
        self.recover(ctx);
        if self.cfg.read_mode == ReadMode::Lease {
            self.lease_guard_until = ctx.now() + self.cfg.election_timeout_min();
        }
        let timeout = self.random_election_timeout(ctx);
        self.reset_election_timer(ctx, timeout);
        self.finish(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, S>, from: NodeId, msg: Message<S>) {
        self.begin(ctx);
        assert_ne!(from, self.id, "a node does not message itself");
        self.step(ctx, from, msg);
        self.finish(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, S>, timer: Timer) {
        self.begin(ctx);
        match timer {
            Timer::Election => {
                self.election_timer = None;
                if ctx.now() < self.election_deadline {
                    self.arm_election_timer(ctx);
                } else if self.role == Role::Leader {
                    self.check_quorum_tick(ctx);
                } else {
                    self.election_timeout(ctx);
                }
            }
            Timer::VoteRetry { term } => {
                if self.role == Role::Candidate && term == self.term {
                    self.request_votes();
                    ctx.set_timer(self.cfg.heartbeat(), Timer::VoteRetry { term });
                }
            }
            Timer::Heartbeat { term } => {
                if self.role == Role::Leader && term == self.term {
                    self.heartbeat_tick(ctx);
                    ctx.set_timer(self.cfg.heartbeat(), Timer::Heartbeat { term });
                }
            }
        }
        self.finish(ctx);
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_, S>, id: RequestId, req: Request<S>) {
        self.begin(ctx);
        match req.op {
            RequestOp::Read(query) => self.read(ctx, id, req.seq, query),
            RequestOp::Command(cmd) => self.propose(ctx, id, req.seq, cmd),
            RequestOp::ConfChange(change) => self.propose_conf_change(ctx, id, req.seq, change),
            RequestOp::TransferLeader(to) => self.transfer_leadership(ctx, id, req.seq, to),
        }
        self.finish(ctx);
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, S>, sync: SyncId, result: Result<(), SyncError>) {
        self.begin(ctx);
        // The `ignore-fsync-error` bug carries on as if the writes were durable: the
        // log in memory then claims entries (or a vote) that the disk will never hold.
        if let Err(error) = self.bugs.sync_result(result) {
            ctx.abort(format!(
                "node {} stops: sync {} failed ({error:?})",
                self.id, sync.0
            ));
            return;
        }
        self.durable_through(sync);
        if self.role == Role::Leader {
            // What the leader's own disk now holds may complete a quorum.
            self.maybe_commit(ctx);
        }
        if let Some(next) = self.out.synced(ctx, sync) {
            self.mark_sync(next);
        }
        self.finish(ctx);
    }

    fn message_bytes(msg: &Message<S>) -> usize {
        msg.size_bytes()
    }

    fn message_class(msg: &Message<S>) -> &'static str {
        msg.class()
    }

    fn message_classes() -> &'static [&'static str] {
        Message::<S>::CLASSES
    }

    fn role(&self) -> crate::Role {
        match self.role {
            Role::Leader => crate::Role::Leader,
            Role::Candidate | Role::PreCandidate => crate::Role::Candidate,
            Role::Follower if self.membership().is_learner(self.id) => crate::Role::Learner,
            Role::Follower => crate::Role::Follower,
        }
    }

    /// Bits a Raft engineer tells states apart by, with no term or index in them:
    /// the role (§5.1), whether the log ends in an entry of the current term (a
    /// leader's no-op, §5.4.2), whether an uncommitted tail exists, whether the
    /// commit index points at an entry of the current term (the Figure 8 rule),
    /// whether a vote is cast and a leader known, and the configuration's shape
    /// (joint, voter, learner: thesis §4.3).
    fn coverage(&self) -> Option<u64> {
        let role: u64 = match self.role {
            Role::Leader => 0,
            Role::Candidate => 1,
            Role::PreCandidate => 2,
            Role::Follower => 3,
        };
        let log = &self.log;
        let bits = [
            log.last_term() == self.term,
            self.commit < log.last_index(),
            log.term(self.commit) == Some(self.term),
            self.vote.is_some(),
            self.leader.is_some(),
            self.membership().is_joint(),
            self.membership().is_voter(self.id),
            self.membership().is_learner(self.id),
        ];
        Some(
            bits.iter()
                .enumerate()
                .fold(role, |acc, (i, &b)| acc | (u64::from(b) << (2 + i))),
        )
    }
}

impl<S: StateMachine> RaftProcess<S> {
    /// Term rules shared by every role (§5.1), then dispatch.
    fn step(&mut self, ctx: &mut Ctx<'_, S>, from: NodeId, msg: Message<S>) {
        let term = msg.term();
        if term > self.term {
            match &msg {
                // A pre-vote asks about a future term without claiming it.
                Message::PreVote { .. } => {}
                // A granted pre-vote carries the asked-for term, not the voter's.
                Message::PreVoteResp { granted: true, .. } => {}
                // §6: while it hears from a leader, a node ignores vote requests, so a
                // partitioned or removed server cannot depose a working leader.
                // ...unless its leader handed over to the candidate (thesis §3.10).
                Message::Vote {
                    transfer: false, ..
                } if self.in_lease(ctx.now()) => return,
                Message::Append { .. }
                | Message::Heartbeat { .. }
                | Message::Snapshot { .. }
                | Message::TimeoutNow { .. } => {
                    self.become_follower(ctx, term, Some(from));
                }
                _ => self.become_follower(ctx, term, None),
            }
        } else if term < self.term {
            self.step_stale(ctx, from, msg);
            return;
        }
        if self.role == Role::Leader {
            // CheckQuorum (thesis §6.2): any reply in this term shows the peer is
            // reachable both ways, not only replies to this leader's appends and
            // heartbeats as in etcd-io/raft; a late vote reply is as good a sign.
            if let Message::AppendResp { .. }
            | Message::HeartbeatResp { .. }
            | Message::VoteResp { .. }
            | Message::PreVoteResp { .. } = msg
            {
                self.leader_state.as_mut().expect("leader").progress[from].active = true;
            }
        }
        match msg {
            Message::PreVote {
                term,
                last_index,
                last_term,
            } => self.on_pre_vote(ctx, from, term, last_index, last_term),
            Message::PreVoteResp { term, granted } => {
                self.on_vote_resp(ctx, from, term, granted, true)
            }
            Message::Vote {
                term,
                last_index,
                last_term,
                ..
            } => self.on_vote(ctx, from, term, last_index, last_term),
            Message::TimeoutNow { .. } => self.on_timeout_now(ctx, from),
            Message::VoteResp { term, granted } => {
                self.on_vote_resp(ctx, from, term, granted, false)
            }
            Message::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                ..
            } => self.on_append(ctx, from, prev_index, prev_term, entries, commit),
            Message::AppendResp { result, .. } => self.on_append_resp(ctx, from, result),
            Message::Heartbeat {
                commit,
                read_seq,
                sent_at_ns,
                ..
            } => self.on_heartbeat(ctx, from, commit, read_seq, sent_at_ns),
            Message::HeartbeatResp {
                read_seq,
                sent_at_ns,
                ..
            } => self.on_heartbeat_resp(ctx, from, read_seq, sent_at_ns),
            Message::Snapshot { snapshot, .. } => self.on_snapshot(ctx, from, snapshot),
        }
    }

    /// A message from an older term: requests are refused with our term (so a stale
    /// leader or candidate learns it is behind); replies are dropped.
    fn step_stale(&mut self, ctx: &mut Ctx<'_, S>, from: NodeId, msg: Message<S>) {
        match msg {
            Message::PreVote { .. } => self.send(
                from,
                Message::PreVoteResp {
                    term: self.term,
                    granted: false,
                },
            ),
            Message::Vote { .. } => self.send(
                from,
                Message::VoteResp {
                    term: self.term,
                    granted: false,
                },
            ),
            Message::Append { prev_index, .. } => self.send(
                from,
                Message::AppendResp {
                    term: self.term,
                    result: AppendResult::Rejected {
                        prev_index,
                        hint_index: self.log.last_index() + 1,
                        hint_term: None,
                    },
                },
            ),
            Message::Heartbeat { .. } | Message::Snapshot { .. } => self.send(
                from,
                Message::HeartbeatResp {
                    term: self.term,
                    read_seq: 0,
                    sent_at_ns: 0,
                },
            ),
            Message::VoteResp { term, granted } if self.bugs.hears_stale_vote_replies() => {
                self.on_vote_resp(ctx, from, term, granted, false)
            }
            _ => {}
        }
    }

    fn become_follower(&mut self, ctx: &mut Ctx<'_, S>, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never decrease");
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard(ctx);
        }
        if self.role == Role::Leader {
            if self.log.last_index() > self.commit {
                ctx.sometimes("leader-stepped-down-with-uncommitted-entries");
            }
            self.step_down();
            ctx.trace(format!("node {} steps down in term {}", self.id, self.term));
        }
        if self.role != Role::Follower {
            let timeout = self.random_election_timeout(ctx);
            self.reset_election_timer(ctx, timeout);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.transfer_campaign = false;
    }

    /// Leaves leadership: pending requests learn that their outcome is unknown.
    fn step_down(&mut self) {
        let Some(ls) = self.leader_state.take() else {
            return;
        };
        for (_, (id, seq)) in ls.pending_writes {
            self.out.reply(id, Response::Dropped { seq });
        }
        if let Some((id, seq)) = ls.transfer.and_then(|t| t.request) {
            self.out.reply(id, Response::Unavailable { seq });
        }
        for r in ls.pending_reads {
            self.out.reply(
                r.id,
                Response::Redirect {
                    seq: r.seq,
                    leader: None,
                },
            );
        }
        self.leader = None;
    }
}

#[cfg(test)]
mod log_key_tests {
    #[test]
    fn log_keys_are_zero_padded_so_they_sort_by_index() {
        assert_eq!(super::log_key(0), "log/00000000000000000000");
        assert_eq!(super::log_key(42), format!("log/{:020}", 42));
        assert_eq!(super::log_key(u64::MAX), format!("log/{}", u64::MAX));
        assert!(super::log_key(9) < super::log_key(10));
    }
}
