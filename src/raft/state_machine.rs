//! What Raft replicates, as the caller's type: Raft orders commands and decides when
//! they are committed; the state machine gives them meaning (etcd-io/raft leaves
//! applying to its caller in the same way). [`crate::kv::KvStore`] is the first
//! implementation.
//!
//! Contract, relied on by the replication and read paths:
//! - [`StateMachine::apply`] is called once per committed command, in log order, on
//!   every replica; it must be deterministic (same state and command, same result and
//!   same next state), since replicas compare their applied entries and snapshots.
//! - [`StateMachine::read`] is called only once the replica has applied everything the
//!   read must observe (the read index of §6.4, or the lease holder's applied index), so
//!   it answers from the state as it is.
//! - A snapshot ([`StateMachine::snapshot`]) restored on a fresh value
//!   ([`StateMachine::restore`]) gives a state equal to the one it was taken from.
//!
//! Client sessions (at-most-once application of a retried command, thesis §6.3) are
//! Raft's, not the state machine's: see [`super::session`].

use std::fmt::Debug;

use crate::fingerprint::Fingerprint;

/// A deterministic state machine replicated by [`super::RaftProcess`].
pub trait StateMachine: Clone + Debug + Default + PartialEq + Eq + Send + Sync + 'static {
    /// A state-changing command, applied through the committed log. Its fingerprint
    /// feeds the trace hash and the digest replicas compare their applied entries by.
    type Command: Clone + Debug + PartialEq + Eq + Fingerprint + Send + Sync + 'static;
    /// What applying a command answers its client.
    type Output: Clone + Debug + PartialEq + Eq + Fingerprint + Send + Sync + 'static;
    /// A read-only question.
    type Query: Clone + Debug + PartialEq + Eq + Fingerprint + Send + Sync + 'static;
    /// A query's answer.
    type Answer: Clone + Debug + PartialEq + Eq + Fingerprint + Send + Sync + 'static;
    /// The state as a snapshot carries it (§7): what [`StateMachine::restore`] needs.
    type Snapshot: Clone + Debug + PartialEq + Eq + Send + Sync + 'static;

    /// Applies the committed `command` at log `index` (indexes increase by one per call,
    /// skipping no-ops and duplicates) and returns its output.
    fn apply(&mut self, index: u64, command: &Self::Command) -> Self::Output;

    /// Answers `query` from the state as applied through `applied_index`.
    fn read(&self, applied_index: u64, query: &Self::Query) -> Self::Answer;

    /// The state as of the last applied command.
    fn snapshot(&self) -> Self::Snapshot;

    /// The state a snapshot holds.
    fn restore(snapshot: &Self::Snapshot) -> Self;

    /// The output `command` has whatever the state, if it has one (a blind write does;
    /// a compare-and-swap does not). Only the `ack-before-sync` bug uses it: it answers
    /// such commands as soon as they are appended. Default: none.
    fn blind_output(command: &Self::Command) -> Option<Self::Output> {
        let _ = command;
        None
    }

    /// Approximate encoded size of a command in bytes, for the bytes-per-operation
    /// metrics.
    fn command_size_bytes(command: &Self::Command) -> usize;

    /// Approximate encoded size of a snapshot in bytes.
    fn snapshot_size_bytes(snapshot: &Self::Snapshot) -> usize;
}
