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
//! Sources: Consul's documentation (checks, health API, anti-entropy, blocking
//! queries) and its code, read at `hashicorp/consul` (`agent/checks/check.go`,
//! `agent/agent.go`, `agent/local/state.go`, `agent/ae/ae.go`,
//! `agent/consul/state/catalog.go`, `agent/consul/leader_registrator_v1.go`). Each
//! module names the functions it follows.

pub mod anti_entropy;
pub mod catalog;
pub mod health;
