//! faultline: a deterministic simulation testbed for distributed protocols.
//!
//! Protocols are pure state machines ([`Process`]) driven by a simulator on madsim
//! ([`sim`]) that owns every fault; scenarios ([`scenario`]) say what to run and what
//! to inject; checkers ([`Checker`]) judge every step and the final history. See the
//! README for a tour and `examples/counter.rs` for a protocol written from scratch.

// madsim's simulator (its runtime, nodes, time and RNG) exists only under `--cfg madsim`,
// and the flag must reach madsim itself, which only the build's rustflags can do: a
// build script's cfg stays in its own crate. `build.rs` says which case this is.
#[cfg(all(not(madsim), faultline_rustflags_env))]
compile_error!(
    "faultline must be built with `--cfg madsim`, and the RUSTFLAGS environment variable \
     replaces the rustflags that .cargo/config.toml sets: unset RUSTFLAGS, or add \
     `--cfg madsim` to it."
);
#[cfg(all(not(madsim), not(faultline_rustflags_env)))]
compile_error!(
    "faultline must be built with `--cfg madsim` (it runs inside madsim's simulator, \
     which that flag switches on). Add the file .cargo/config.toml at the root of the \
     crate you build, beside its Cargo.toml, with these three lines:\n\
     [build]\n\
     rustflags = [\"--cfg\", \"madsim\"]\n\
     rustdocflags = [\"--cfg\", \"madsim\"]\n\
     (see \"Use faultline in your crate\" in faultline's README)."
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
