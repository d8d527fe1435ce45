//! faultline: a deterministic simulation testbed for distributed protocols.
//!
//! A protocol is a pure state machine (a [`Process`]: handlers in, effects out) that
//! faultline runs on madsim over a simulated network, disk and clock, injecting the
//! faults a scenario file describes, all drawn from one seed; [`Checker`]s judge every
//! step. The same scenario and seed give the same run, bit for bit.
//!
//! A complete protocol and its test: each node counts ticks on its disk, and a checker
//! demands that a restarted node never counts less than it had made durable.
//!
//! ```
//! use std::time::Duration;
//! use faultline::check::{Checker, ClusterView};
//! use faultline::scenario::Scenario;
//! use faultline::{Context, NoClient, NodeId, Process, RequestId, Setup, SyncId, System};
//!
//! #[derive(Default)]
//! struct Ticker {
//!     count: Option<u64>, // None until started
//!     durable: u64,       // what the last completed sync covered
//!     syncing: Vec<(SyncId, u64)>,
//! }
//!
//! impl Process for Ticker {
//!     type Message = ();
//!     type Timer = ();
//!     type Request = ();
//!     type Response = ();
//!     type Record = u64; // what storage holds
//!
//!     fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
//!         let count = ctx.storage().get("count").copied().unwrap_or(0); // recovery
//!         (self.count, self.durable) = (Some(count), count);
//!         ctx.set_timer(Duration::from_millis(10), ());
//!     }
//!     fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
//!         let count = self.count.unwrap() + 1;
//!         self.count = Some(count);
//!         ctx.write("count", count);
//!         let sync = ctx.sync(); // completes later, in on_synced
//!         self.syncing.push((sync, count));
//!         ctx.set_timer(Duration::from_millis(10), ());
//!     }
//!     fn on_synced(&mut self, ctx: &mut Context<'_, Self>, sync: SyncId,
//!                  result: Result<(), faultline::SyncError>) {
//!         if result.is_err() {
//!             return ctx.abort("fsync failed"); // crash-stop, then recovery
//!         }
//!         let done = self.syncing.iter().position(|(id, _)| *id == sync).unwrap();
//!         self.durable = self.syncing.remove(done).1;
//!     }
//!     fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: ()) {}
//!     fn on_request(&mut self, _: &mut Context<'_, Self>, _: RequestId, _: ()) {}
//! }
//!
//! #[derive(Default)]
//! struct NeverBelowDurable(Vec<u64>);
//!
//! impl Checker<Ticker> for NeverBelowDurable {
//!     fn name(&self) -> &'static str { "never-below-durable" }
//!     fn after_step(&mut self, view: &ClusterView<'_, Ticker>, node: NodeId)
//!         -> Result<(), String> {
//!         self.0.resize(view.nodes.len(), 0);
//!         let Some(Ticker { count: Some(count), durable, .. }) = view.node(node) else {
//!             return Ok(()); // down, or not started
//!         };
//!         if *count < self.0[node] {
//!             return Err(format!("node {node} counts {count} < {}", self.0[node]));
//!         }
//!         self.0[node] = self.0[node].max(*durable);
//!         Ok(())
//!     }
//! }
//!
//! struct Tickers;
//!
//! impl System for Tickers {
//!     const NAME: &'static str = "ticker"; // scenario files' `cluster.protocol`
//!     type Process = Ticker;
//!     type Client = NoClient;
//!     type Config = ();   // the `[cluster.config]` table
//!     type Workload = (); // the `[workload]` table
//!     fn process(_: &Setup<Self>, _: NodeId) -> Ticker { Ticker::default() }
//!     fn clients(_: &Setup<Self>) -> usize { 0 }
//!     fn client(_: &Setup<Self>, _: faultline::ClientId) -> NoClient { NoClient }
//!     fn checkers(_: &Setup<Self>) -> Vec<Box<dyn Checker<Ticker>>> {
//!         vec![Box::new(NeverBelowDurable::default())]
//!     }
//! }
//!
//! // Usually a file in scenarios/, run with `check_seeds::<Tickers>("ticker-crash", 0..100)`.
//! let scenario = Scenario::parse("ticker-crash.toml", r#"
//!     name = "ticker-crash"
//!     description = "tickers under random crashes and pauses"
//!     duration_ms = 2000
//!     [cluster]
//!     protocol = "ticker"
//!     nodes = 3
//!     [random]
//!     kinds = ["crash", "pause"]
//!     interval_ms = { min = 200, max = 600 }
//!     duration_ms = { min = 100, max = 400 }
//! "#).unwrap();
//! // Panics on a failing seed, with the commands that replay it.
//! let summary = faultline::testing::check_scenario::<Tickers>(&scenario, 0..2);
//! assert_eq!(summary.passed, 2);
//! ```
//!
//! The parts: [`process`] (the handlers and their [`Context`]), [`client`] (simulated
//! users recording a [`history`]), [`check`] (checkers, and linearizability of
//! histories), [`system`] (a protocol's parts tied to a scenario file), [`scenario`]
//! (the file format and fault schedules), [`testing`] (seed sweeps from `cargo test`)
//! and [`cli`] (the `faultline` command line, for a crate's own protocols too). The
//! README has a tour; `examples/counter.rs` is a protocol with clients; `src/raft`,
//! `src/gossip` and `src/broadcast` are the shipped ones.
//!
//! A crate that depends on faultline builds with `--cfg madsim`: see "Use faultline in
//! your crate" in the README.
#![warn(missing_docs)]

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
pub mod compare;
#[cfg(madsim)]
pub mod explore;
#[cfg(madsim)]
pub mod lessons;
#[cfg(madsim)]
pub mod registry;
pub mod report;
pub mod rng;
#[cfg(madsim)]
pub mod run;
pub mod scenario;
pub mod shrink;
#[cfg(madsim)]
pub mod sim;
pub mod spans;
#[cfg(madsim)]
pub mod testing;

// Protocols.
pub mod broadcast;
pub mod consul;
pub mod discovery;
pub mod etcd;
pub mod gossip;
pub mod gossip_discovery;
pub mod kv;
pub mod raft;

pub use check::{Checker, ClusterView, Metrics};
pub use client::{Client, ClientContext, ClientEffect, NoClient};
pub use fingerprint::Fingerprint;
pub use history::{HistoryEvent, KvOp, OpType};
pub use process::{
    ClientId, Context, DurableOutbox, Effect, NodeId, Process, RequestId, Role, ServiceFault,
    SyncError, SyncId, TimerId, Waits,
};
pub use storage::Storage;
pub use system::{Bug, MemberAnswer, MemberChange, Setup, System, Verdict};
