//! Consul's health checking and catalog, sans-IO: the parts a simulated Consul needs
//! (agents running checks on their nodes, servers holding the catalog on Raft,
//! callers asking for healthy instances), each pure and deterministic.
//!
//! - [`health`]: one check as an agent runs it (TTL, interval probe, the node-level
//!   `serfHealth`), with Consul's hysteresis, and the reaper that deregisters services
//!   whose check stayed critical too long.
//! - [`catalog`]: the servers' catalog as a [`crate::raft::StateMachine`]: nodes,
//!   services and checks with their Raft indexes, the per-service and global indexes
//!   blocking queries wait on, the `?passing` filter and the leader's `serfHealth`
//!   writes.
//! - [`anti_entropy`]: the agent's sync of its own services and checks into the
//!   catalog (the agent is authoritative), and the full-sync interval scaled by
//!   cluster size.
//!
//! - [`system`]: all of it as a [`crate::System`], protocol `consul`: servers
//!   ([`server`]), agents with their service instance ([`agent`]) and callers
//!   ([`caller`]) as nodes in roles ([`node`]), set up by [`config`], judged by
//!   Raft's invariants, [`checks`] and [`soundness`].
//! - [`lan`]: the LAN gossip pool (SWIM with Lifeguard, as Serf runs memberlist)
//!   that servers and agents are members of, and [`reconcile`]: the leader turning
//!   membership into the catalog's `serfHealth` (alive: passing; failed: critical;
//!   left: deregistered).
//!
//! Sources: Consul's documentation (checks, health API, anti-entropy, blocking
//! queries) and its code, read at `hashicorp/consul` (`agent/checks/check.go`,
//! `agent/agent.go`, `agent/local/state.go`, `agent/ae/ae.go`,
//! `agent/consul/state/catalog.go`, `agent/consul/leader_registrator_v1.go`). Each
//! module names the functions it follows.

pub mod agent;
pub mod anti_entropy;
pub mod caller;
pub mod catalog;
pub mod catalog_checks;
pub mod check_state;
pub mod checks;
pub mod config;
pub mod conn;
pub mod health;
pub mod lan;
pub mod node;
pub mod operator;
pub mod read_figures;
pub mod reconcile;
pub mod server;
pub mod soundness;
pub mod system;

pub use system::Consul;
