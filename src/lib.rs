//! faultline: a deterministic simulation testbed for distributed protocols.
//!
//! Protocols are pure state machines ([`Process`]) driven by a simulator on madsim
//! ([`sim`]) that owns every fault; scenarios ([`scenario`]) say what to run and what
//! to inject; checkers ([`Checker`]) judge every step and the final history. See the
//! README for a tour and `examples/counter.rs` for a protocol written from scratch.

#[cfg(not(madsim))]
compile_error!(
    "faultline runs inside madsim's simulator and must be built with `--cfg madsim`: \
     .cargo/config.toml sets it, but a RUSTFLAGS environment variable replaces it — \
     unset RUSTFLAGS, or add `--cfg madsim` to it."
);

// The protocol API.
pub mod check;
pub mod client;
pub mod fingerprint;
pub mod history;
pub mod process;
pub mod storage;
pub mod system;

// Running scenarios.
#[cfg(madsim)]
pub mod cli;
#[cfg(madsim)]
pub mod registry;
pub mod rng;
#[cfg(madsim)]
pub mod run;
pub mod scenario;
pub mod shrink;
#[cfg(madsim)]
pub mod sim;
#[cfg(madsim)]
pub mod testing;

// Protocols.
pub mod broadcast;
pub mod gossip;
pub mod kv;
pub mod raft;

pub use check::{Checker, ClusterView, Metrics};
pub use client::{Client, ClientContext, ClientEffect, NoClient};
pub use fingerprint::Fingerprint;
pub use history::{HistoryEvent, KvOp, OpType};
pub use process::{
    ClientId, Context, DurableOutbox, Effect, NodeId, Process, RequestId, SyncError, SyncId,
    TimerId, Waits,
};
pub use storage::Storage;
pub use system::{Bug, Setup, System, Verdict};
