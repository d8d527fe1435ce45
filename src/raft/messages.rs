//! What Raft nodes send each other, what clients send them, and what they store.

use std::sync::Arc;

use super::membership::{ConfChange, ConfChangeError, Membership};
use super::session::Sessions;
use super::state_machine::StateMachine;
use crate::fingerprint::{Fingerprint, Sink};
use crate::kv::KvStore;
use crate::process::{ClientId, NodeId};

/// The payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData<S: StateMachine = KvStore> {
    /// Appended by a new leader at the start of its term, so that it can commit (and
    /// learn the commit index) without waiting for a client (§5.4.2, §8).
    Noop,
    /// A client's command for the state machine.
    Command {
        /// The client that asked.
        client: ClientId,
        /// The client's session sequence number: (client, seq) applies at most once.
        seq: u64,
        /// The command, shared: every copy of the entry (the log, storage,
        /// AppendEntries to each follower, a duplicated message) is a reference-count
        /// bump, not a copy of its strings.
        cmd: Arc<S::Command>,
    },
    /// A membership change (thesis chapter 4; see [`super::membership`]): in effect on
    /// each server as soon as it is in its log.
    ConfChange(Arc<ConfChange>),
}

/// Commands are identified by (client, seq) in the trace fingerprint: every attempt of
/// one operation carries the same command, whose content the fingerprint already took
/// in when the client's request was traced, and encoding every value again for every
/// AppendEntries (values grow under appends) was the costliest part of tracing. The
/// log matching check digests the full content instead (see `entry_digest`).
/// Encoding: tag 0 for `Noop`; tag 1, `client`, `seq` for a command; tag 2 and the
/// change for a membership change.
impl<M: StateMachine> Fingerprint for EntryData<M> {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            EntryData::Noop => crate::fingerprint::tag(out, 0),
            EntryData::Command { client, seq, .. } => {
                crate::fingerprint::tag(out, 1);
                client.fingerprint(out);
                seq.fingerprint(out);
            }
            EntryData::ConfChange(change) => {
                crate::fingerprint::tag(out, 2);
                change.fingerprint(out);
            }
        }
    }
}

/// A log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<S: StateMachine = KvStore> {
    /// The term of the leader that appended it.
    pub term: u64,
    /// Its position in the log, from 1.
    pub index: u64,
    /// What it carries.
    pub data: EntryData<S>,
}

impl<S: StateMachine> Entry<S> {
    /// Approximate encoded size in bytes, for the bytes-per-operation metrics.
    pub fn size_bytes(&self) -> usize {
        24 + match &self.data {
            EntryData::Noop => 0,
            EntryData::Command { cmd, .. } => 16 + S::command_size_bytes(cmd),
            EntryData::ConfChange(_) => 16,
        }
    }
}

/// A compacted prefix of the log: the state machine after applying `..=index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot<S: StateMachine = KvStore> {
    /// The last index it covers.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The state machine after applying `..=index`.
    pub state: S::Snapshot,
    /// The client sessions after applying `..=index`.
    pub sessions: Sessions<S::Output>,
    /// The configuration of the log through `index`; `None` only in the initial
    /// snapshot, whose configuration is the bootstrap one (`initial_voters`).
    pub membership: Option<Membership>,
}

impl<S: StateMachine> Snapshot<S> {
    /// The empty snapshot every log starts from: index 0, term 0, the initial state.
    pub fn initial() -> Snapshot<S> {
        Snapshot {
            index: 0,
            term: 0,
            state: S::default().snapshot(),
            sessions: Sessions::default(),
            membership: None,
        }
    }

    /// Approximate encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        S::snapshot_size_bytes(&self.state) + self.sessions.len() * 24
    }
}

/// Snapshots are identified by (index, term): encoding the whole state for the trace
/// fingerprint would cost a full walk per message.
impl<M: StateMachine> Fingerprint for Snapshot<M> {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.index.fingerprint(out);
        self.term.fingerprint(out);
    }
}

/// Term and vote: the state that must be durable before a node answers anyone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The current term.
    pub term: u64,
    /// Whom this node voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
}

/// A value in durable storage. Keys: `hard`, `snapshot`, `log/<index:020>`, `join`;
/// [`Record::File`] under any other key.
#[derive(Clone, Debug)]
pub enum Record<S: StateMachine = KvStore> {
    /// Under a key outside Raft's: a file the node's own software keeps on the same
    /// disk, in its own encoding (a Consul agent's check state, JSON, as in
    /// `data_dir/checks/state/`). Raft never reads or writes one.
    File(String),
    /// Under `hard`.
    Hard(HardState),
    /// Under `log/<index>`.
    Entry(Entry<S>),
    /// Under `snapshot`.
    Snapshot(Arc<Snapshot<S>>),
    /// Under `join`: the disk of a replacement machine, for a node the cluster removed
    /// with the entry at `removed_at` and is to add back (etcd starts such a member
    /// with `--initial-cluster-state existing`). Until its log holds a configuration
    /// from after that index, the node neither campaigns nor votes: with an empty disk
    /// it would otherwise take the bootstrap configuration for the cluster's and,
    /// having forgotten its votes, help elect a leader no current quorum chose.
    Join {
        /// The index of the entry that removed the node.
        removed_at: u64,
    },
}

/// The outcome of an AppendEntries (or InstallSnapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendResult {
    /// The follower's log matches the leader's through `match_index`.
    Accepted {
        /// The last index known to match the leader's log.
        match_index: u64,
    },
    /// No entry at `prev_index` with the leader's `prev_term`. The hint lets the leader
    /// skip a whole conflicting term at once: `hint_term` is the follower's term at
    /// `prev_index` (`None` if its log is shorter) and `hint_index` the first index it
    /// holds of that term (or its last index + 1).
    Rejected {
        /// The `prev_index` of the rejected request.
        prev_index: u64,
        /// The first index the follower holds of `hint_term` (or its last index + 1).
        hint_index: u64,
        /// The follower's term at `prev_index`; `None` if its log is shorter.
        hint_term: Option<u64>,
    },
}

/// What Raft nodes send each other (Raft §5 and the thesis's PreVote, §9.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<S: StateMachine = KvStore> {
    /// Thesis §9.6: "would you vote for me at `term`?" The sender's term is unchanged.
    PreVote {
        /// The term the sender would stand in.
        term: u64,
        /// The index of the sender's last log entry.
        last_index: u64,
        /// The term of the sender's last log entry.
        last_term: u64,
    },
    /// `term` is the asked-for term when granted, the voter's own when refused.
    PreVoteResp {
        /// See above.
        term: u64,
        /// Whether it would vote.
        granted: bool,
    },
    /// RequestVote (§5.2).
    Vote {
        /// The candidate's term.
        term: u64,
        /// The index of the candidate's last log entry.
        last_index: u64,
        /// The term of the candidate's last log entry.
        last_term: u64,
        /// The candidate campaigns because its leader handed over (thesis §3.10):
        /// voters answer even while they hear from that leader. Not fingerprinted:
        /// only a `TimeoutNow`, which is, makes a candidate send it.
        transfer: bool,
    },
    /// The answer to a RequestVote.
    VoteResp {
        /// The voter's term.
        term: u64,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// AppendEntries (§5.3).
    Append {
        /// The leader's term.
        term: u64,
        /// The index of the entry just before `entries`.
        prev_index: u64,
        /// The term of that entry.
        prev_term: u64,
        /// Entries to append, possibly none.
        entries: Vec<Entry<S>>,
        /// The leader's commit index.
        commit: u64,
    },
    /// The answer to an AppendEntries or an InstallSnapshot.
    AppendResp {
        /// The follower's term.
        term: u64,
        /// Accepted or rejected, with a hint.
        result: AppendResult,
    },
    /// Keeps followers quiet and confirms leadership for reads. `commit` is bounded by
    /// what this follower is known to hold, so a heartbeat never commits an unchecked
    /// entry. `read_seq` and `sent_at_ns` are echoed back.
    Heartbeat {
        /// The leader's term.
        term: u64,
        /// The commit index this follower may apply up to.
        commit: u64,
        /// The leader's read round, for read-index reads.
        read_seq: u64,
        /// The leader's monotonic clock at the send, in ns, for leases.
        sent_at_ns: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResp {
        /// The follower's term.
        term: u64,
        /// The heartbeat's `read_seq`.
        read_seq: u64,
        /// The heartbeat's `sent_at_ns`.
        sent_at_ns: u64,
    },
    /// Leadership transfer (thesis §3.10, etcd's `MsgTimeoutNow`): the leader tells an
    /// up-to-date follower to campaign at once, skipping PreVote.
    TimeoutNow {
        /// The leader's term.
        term: u64,
    },
    /// InstallSnapshot (§7), sent whole: the simulated network has no size limit.
    Snapshot {
        /// The leader's term.
        term: u64,
        /// The snapshot.
        snapshot: Arc<Snapshot<S>>,
    },
}

impl<S: StateMachine> Message<S> {
    /// The sender's term (for PreVote, the term it would stand in).
    pub fn term(&self) -> u64 {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResp { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResp { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResp { term, .. }
            | Message::Heartbeat { term, .. }
            | Message::HeartbeatResp { term, .. }
            | Message::Snapshot { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }

    /// Message classes, for faults restricted to some (`classes = ["vote"]`): a
    /// request and its response share a class.
    pub const CLASSES: &'static [&'static str] = &[
        "pre-vote",
        "vote",
        "append",
        "heartbeat",
        "snapshot",
        "timeout-now",
    ];

    /// The message's class (see [`Message::CLASSES`]).
    pub fn class(&self) -> &'static str {
        match self {
            Message::PreVote { .. } | Message::PreVoteResp { .. } => "pre-vote",
            Message::Vote { .. } | Message::VoteResp { .. } => "vote",
            Message::Append { .. } | Message::AppendResp { .. } => "append",
            Message::Heartbeat { .. } | Message::HeartbeatResp { .. } => "heartbeat",
            Message::Snapshot { .. } => "snapshot",
            Message::TimeoutNow { .. } => "timeout-now",
        }
    }

    /// Approximate encoded size in bytes, for the bytes-per-operation metrics.
    pub fn size_bytes(&self) -> usize {
        match self {
            Message::Append { entries, .. } => {
                40 + entries.iter().map(Entry::size_bytes).sum::<usize>()
            }
            Message::Snapshot { snapshot, .. } => 24 + snapshot.size_bytes(),
            _ => 32,
        }
    }
}

/// What a client asks for. `seq` is the client's session sequence number for the
/// operation: every retry of one operation carries the same `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<S: StateMachine = KvStore> {
    /// The operation's session sequence number.
    pub seq: u64,
    /// What it asks for.
    pub op: RequestOp<S>,
}

/// A read or a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp<S: StateMachine = KvStore> {
    /// A query, answered by the configured read mode.
    Read(S::Query),
    /// Replicate and apply a command (shared with the entry the leader appends, so a
    /// client's retries and the log hold one copy).
    Command(Arc<S::Command>),
    /// Change the membership (an operator's request, etcd's `member add/remove`).
    ConfChange(Arc<ConfChange>),
    /// Hand leadership to this voter (thesis §3.10, etcd's `move-leader`).
    TransferLeader(NodeId),
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response<S: StateMachine = KvStore> {
    /// The command with this `seq` was applied (once), with this result.
    Written {
        /// The request's `seq`.
        seq: u64,
        /// What applying it gave.
        result: S::Output,
    },
    /// A read's answer.
    Value {
        /// The request's `seq`.
        seq: u64,
        /// The answer.
        value: S::Answer,
    },
    /// Not leader, nothing done: try `leader` if known.
    Redirect {
        /// The request's `seq`.
        seq: u64,
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The leader cannot serve now (not ready, or too busy); nothing was done.
    Unavailable {
        /// The request's `seq`.
        seq: u64,
    },
    /// Leadership was lost while the command was in the log: it may or may not be
    /// applied. A retry with the same `seq` applies it at most once.
    Dropped {
        /// The request's `seq`.
        seq: u64,
    },
    /// The membership change is committed, at this log index.
    Reconfigured {
        /// The request's `seq`.
        seq: u64,
        /// The index of its entry.
        index: u64,
    },
    /// The leader told the voter to campaign at once (leadership transfer); it wins
    /// unless it fails or loses touch first.
    TransferStarted {
        /// The request's `seq`.
        seq: u64,
        /// The voter that campaigns.
        to: NodeId,
    },
    /// The membership change or leadership transfer is refused; nothing was done.
    Refused {
        /// The request's `seq`.
        seq: u64,
        /// Why.
        error: ConfChangeError,
    },
}

impl<S: StateMachine> Response<S> {
    /// The `seq` of the request it answers.
    pub fn seq(&self) -> u64 {
        match self {
            Response::Written { seq, .. }
            | Response::Value { seq, .. }
            | Response::Redirect { seq, .. }
            | Response::Unavailable { seq }
            | Response::Dropped { seq }
            | Response::Reconfigured { seq, .. }
            | Response::TransferStarted { seq, .. }
            | Response::Refused { seq, .. } => *seq,
        }
    }
}

crate::impl_fingerprint!(<M: StateMachine> struct Entry { term, index, data });

crate::impl_fingerprint!(enum AppendResult {
    0 => Accepted { match_index },
    1 => Rejected { prev_index, hint_index, hint_term },
});

crate::impl_fingerprint!(<M: StateMachine> enum Message {
    0 => PreVote { term, last_index, last_term },
    1 => PreVoteResp { term, granted },
    2 => Vote { term, last_index, last_term; skip transfer },
    3 => VoteResp { term, granted },
    4 => Append { term, prev_index, prev_term, entries, commit },
    5 => AppendResp { term, result },
    6 => Heartbeat { term, commit, read_seq, sent_at_ns },
    7 => HeartbeatResp { term, read_seq, sent_at_ns },
    8 => Snapshot { term, snapshot },
    9 => TimeoutNow { term },
});

crate::impl_fingerprint!(<M: StateMachine> struct Request { seq, op });

// `Read` keeps the tag and encoding of the former `Get { key }` (a KV query encodes
// just its key), so trace hashes did not change when the store became a parameter.
crate::impl_fingerprint!(<M: StateMachine> enum RequestOp {
    0 => Read(query),
    1 => Command(cmd),
    2 => ConfChange(change),
    3 => TransferLeader(to),
});

crate::impl_fingerprint!(<M: StateMachine> enum Response {
    0 => Written { seq, result },
    1 => Value { seq, value },
    2 => Redirect { seq, leader },
    3 => Unavailable { seq },
    4 => Dropped { seq },
    5 => Reconfigured { seq, index },
    6 => Refused { seq, error },
    7 => TransferStarted { seq, to },
});
