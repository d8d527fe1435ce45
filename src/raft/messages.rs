//! What Raft nodes send each other, what clients send them, and what they store.

use std::sync::Arc;

use crate::fingerprint::{Fingerprint, Sink};
use crate::kv::{KvCommand, KvResult, KvStore};
use crate::process::{ClientId, NodeId};

/// The payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData {
    /// Appended by a new leader at the start of its term, so that it can commit (and
    /// learn the commit index) without waiting for a client (§5.4.2, §8).
    Noop,
    Command {
        client: ClientId,
        /// The client's session sequence number: (client, seq) applies at most once.
        seq: u64,
        cmd: KvCommand,
    },
}

/// Commands are identified by (client, seq) in the trace fingerprint: every attempt of
/// one operation carries the same command, whose content the fingerprint already took
/// in when the client's request was traced, and encoding every value again for every
/// AppendEntries (values grow under appends) was the costliest part of tracing. The
/// log matching check digests the full content instead (see `entry_digest`).
/// Encoding: tag 0 for `Noop`; tag 1, `client`, `seq` for a command.
impl Fingerprint for EntryData {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            EntryData::Noop => crate::fingerprint::tag(out, 0),
            EntryData::Command { client, seq, .. } => {
                crate::fingerprint::tag(out, 1);
                client.fingerprint(out);
                seq.fingerprint(out);
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub data: EntryData,
}

impl Entry {
    pub fn size_bytes(&self) -> usize {
        24 + match &self.data {
            EntryData::Noop => 0,
            EntryData::Command { cmd, .. } => 16 + cmd.size_bytes(),
        }
    }
}

/// A compacted prefix of the log: the state machine after applying `..=index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub kv: KvStore,
}

/// Snapshots are identified by (index, term): encoding the whole state for the trace
/// fingerprint would cost a full walk per message.
impl Fingerprint for Snapshot {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.index.fingerprint(out);
        self.term.fingerprint(out);
    }
}

/// Term and vote: the state that must be durable before a node answers anyone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
}

/// A value in durable storage. Keys: `hard`, `snapshot`, `log/<index:020>`.
#[derive(Clone, Debug)]
pub enum Record {
    Hard(HardState),
    Entry(Entry),
    Snapshot(Arc<Snapshot>),
}

/// The outcome of an AppendEntries (or InstallSnapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendResult {
    /// The follower's log matches the leader's through `match_index`.
    Accepted { match_index: u64 },
    /// No entry at `prev_index` with the leader's `prev_term`. The hint lets the leader
    /// skip a whole conflicting term at once: `hint_term` is the follower's term at
    /// `prev_index` (`None` if its log is shorter) and `hint_index` the first index it
    /// holds of that term (or its last index + 1).
    Rejected {
        prev_index: u64,
        hint_index: u64,
        hint_term: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Thesis §9.6: "would you vote for me at `term`?" The sender's term is unchanged.
    PreVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    /// `term` is the asked-for term when granted, the voter's own when refused.
    PreVoteResp {
        term: u64,
        granted: bool,
    },
    Vote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        term: u64,
        granted: bool,
    },
    Append {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    AppendResp {
        term: u64,
        result: AppendResult,
    },
    /// Keeps followers quiet and confirms leadership for reads. `commit` is bounded by
    /// what this follower is known to hold, so a heartbeat never commits an unchecked
    /// entry. `read_seq` and `sent_at_ns` are echoed back.
    Heartbeat {
        term: u64,
        commit: u64,
        read_seq: u64,
        sent_at_ns: u64,
    },
    HeartbeatResp {
        term: u64,
        read_seq: u64,
        sent_at_ns: u64,
    },
    /// InstallSnapshot (§7), sent whole: the simulated network has no size limit.
    Snapshot {
        term: u64,
        snapshot: Arc<Snapshot>,
    },
}

impl Message {
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
            | Message::Snapshot { term, .. } => *term,
        }
    }

    /// Message classes, for faults restricted to some (`classes = ["vote"]`): a
    /// request and its response share a class.
    pub const CLASSES: &'static [&'static str] =
        &["pre-vote", "vote", "append", "heartbeat", "snapshot"];

    pub fn class(&self) -> &'static str {
        match self {
            Message::PreVote { .. } | Message::PreVoteResp { .. } => "pre-vote",
            Message::Vote { .. } | Message::VoteResp { .. } => "vote",
            Message::Append { .. } | Message::AppendResp { .. } => "append",
            Message::Heartbeat { .. } | Message::HeartbeatResp { .. } => "heartbeat",
            Message::Snapshot { .. } => "snapshot",
        }
    }

    pub fn size_bytes(&self) -> usize {
        match self {
            Message::Append { entries, .. } => {
                40 + entries.iter().map(Entry::size_bytes).sum::<usize>()
            }
            Message::Snapshot { snapshot, .. } => 24 + snapshot.kv.size_bytes(),
            _ => 32,
        }
    }
}

/// What a client asks for. `seq` is the client's session sequence number for the
/// operation: every retry of one operation carries the same `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub seq: u64,
    pub op: RequestOp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOp {
    Get { key: String },
    Command(KvCommand),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The command with this `seq` was applied (once), with this result.
    Written { seq: u64, result: KvResult },
    /// A read's value (`None`: absent).
    Value { seq: u64, value: Option<String> },
    /// Not leader, nothing done: try `leader` if known.
    Redirect { seq: u64, leader: Option<NodeId> },
    /// The leader cannot serve now (not ready, or too busy); nothing was done.
    Unavailable { seq: u64 },
    /// Leadership was lost while the command was in the log: it may or may not be
    /// applied. A retry with the same `seq` applies it at most once.
    Dropped { seq: u64 },
}

impl Response {
    pub fn seq(&self) -> u64 {
        match self {
            Response::Written { seq, .. }
            | Response::Value { seq, .. }
            | Response::Redirect { seq, .. }
            | Response::Unavailable { seq }
            | Response::Dropped { seq } => *seq,
        }
    }
}

crate::impl_fingerprint!(struct Entry { term, index, data });

crate::impl_fingerprint!(enum AppendResult {
    0 => Accepted { match_index },
    1 => Rejected { prev_index, hint_index, hint_term },
});

crate::impl_fingerprint!(enum Message {
    0 => PreVote { term, last_index, last_term },
    1 => PreVoteResp { term, granted },
    2 => Vote { term, last_index, last_term },
    3 => VoteResp { term, granted },
    4 => Append { term, prev_index, prev_term, entries, commit },
    5 => AppendResp { term, result },
    6 => Heartbeat { term, commit, read_seq, sent_at_ns },
    7 => HeartbeatResp { term, read_seq, sent_at_ns },
    8 => Snapshot { term, snapshot },
});

crate::impl_fingerprint!(struct Request { seq, op });

crate::impl_fingerprint!(enum RequestOp {
    0 => Get { key },
    1 => Command(cmd),
});

crate::impl_fingerprint!(enum Response {
    0 => Written { seq, result },
    1 => Value { seq, value },
    2 => Redirect { seq, leader },
    3 => Unavailable { seq },
    4 => Dropped { seq },
});
