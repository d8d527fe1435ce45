//! etcd's data model as a [`crate::raft::StateMachine`]: a multi-version key-value
//! store (MVCC) with revisions, transactions, compaction and leases, after etcd's
//! documented API (<https://etcd.io/docs/v3.5/learning/data_model/>,
//! <https://etcd.io/docs/v3.5/learning/api/>).
//!
//! - **Revisions.** One global revision, incremented by every request that changes the
//!   store (a transaction with writes counts once). Each key carries its
//!   `create_revision`, `mod_revision` and `version` (1 when created, +1 per put; a
//!   delete ends the key's generation, and a later put starts over at version 1).
//! - **Range at a revision.** A read names a revision (0: the current one) and sees
//!   the store as of it; below the compaction point it gets `Compacted`, above the
//!   current revision `FutureRevision`.
//! - **Transactions** compare a key's value, version, create or mod revision, then run
//!   the `success` or the `failure` operations in order, under one revision: the
//!   basis of etcd's lock and election recipes.
//! - **Compaction** drops the history below a revision, keeping each key's latest
//!   version at or below it.
//! - **Leases**: granted with a TTL, attached to keys by `put`; revoking one deletes
//!   its keys in one revision. The countdown belongs to the leader's clock and is not
//!   part of this state (the state holds each lease's TTL only).
//!
//! Every change is also recorded as an [`Event`] (put or delete, at its revision), the
//! stream etcd's watch serves; compaction drops the events below it.

pub mod caller;
pub mod checks;
pub mod client;
pub mod config;
pub mod conn;
pub mod instance;
pub mod kv_check;
pub mod lease_check;
pub mod lessor;
pub mod node;
pub mod server;
pub mod store;
pub mod system;
pub mod watch;
pub mod watch_check;

pub use client::{EtcdClient, EtcdOp, EtcdWorkload};
pub use store::{
    Compare, CompareResult, CompareTarget, EtcdCommand, EtcdError, EtcdOutput, EtcdQuery,
    EtcdStore, Event, EventKind, KeyValue, Op, OpResult, RangeResult,
};
pub use system::Etcd;
