//! faultline: a deterministic simulation testbed for distributed protocols.

#[cfg(not(madsim))]
compile_error!(
    "faultline runs inside madsim's simulator and must be built with `--cfg madsim`: \
     .cargo/config.toml sets it, but a RUSTFLAGS environment variable replaces it — \
     unset RUSTFLAGS, or add `--cfg madsim` to it."
);

pub mod check;
pub mod client;
pub mod history;
pub mod kv;
pub mod process;
pub mod raft;
pub mod storage;
pub mod system;

pub use check::{Checker, ClusterView, Metrics};
pub use client::{Client, ClientContext, ClientEffect, NoClient};
pub use history::{HistoryEvent, KvOp, OpType};
pub use process::{ClientId, Context, Effect, NodeId, Process, RequestId, TimerId};
pub use storage::Storage;
pub use system::{Bug, Setup, System, Verdict};
