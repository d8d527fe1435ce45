//! Checkers judge a run: online invariants over the omniscient view of all nodes,
//! liveness once faults have healed, and per-run metrics.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::process::{NodeId, Process};

pub mod edn;
pub mod history_file;
pub mod linearizability;
pub mod model;
pub mod report;
pub mod search;
pub mod witness;

/// Per-run figures, by name (units last: `commit_latency_ms_p50`).
pub type Metrics = BTreeMap<String, f64>;

/// Every node's current state, as the simulator sees it. `None` is a crashed node.
pub struct ClusterView<'a, P> {
    /// Simulated (true) time since the run began.
    pub now: Duration,
    /// Every node by id, `nodes.len()` of them; `None` while a node is down.
    pub nodes: &'a [Option<P>],
    /// Which nodes are paused (frozen: up, but handling nothing); empty means none.
    pub paused: &'a [bool],
    /// Which nodes are slow (a `slow` fault runs their handlers late); empty means none.
    pub slow: &'a [bool],
}

impl<'a, P> ClusterView<'a, P> {
    /// A view in which no node is paused (for unit tests of checkers).
    pub fn new(now: Duration, nodes: &'a [Option<P>]) -> Self {
        ClusterView {
            now,
            nodes,
            paused: &[],
            slow: &[],
        }
    }

    /// Whether node `id` is slow (a `slow` fault is active on it).
    pub fn is_slow(&self, id: NodeId) -> bool {
        self.slow.get(id).copied().unwrap_or(false)
    }

    /// Whether node `id` is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.paused.get(id).copied().unwrap_or(false)
    }

    /// Node `id`'s state, `None` while it is down. Panics if `id` is out of range.
    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.nodes[id].as_ref()
    }

    /// Nodes that are up, with their ids.
    pub fn up(&self) -> impl Iterator<Item = (NodeId, &P)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }
}

/// A named property of a protocol. The driver calls it after every step and every
/// crash or restart; the first `Err` fails the run.
///
/// **The incremental contract.** `after_step` runs after every handler call, so a
/// checker must not rescan the cluster; it reads what the step changed, and the
/// process exposes that as per-step fields, reset at the start of each step and read
/// only by checkers. Raft's: `acked_writes()` (writes acknowledged to clients in the
/// step), `applied_in_step()` (entries applied), `log_changed_from()` (the lowest log
/// index written), `durable()` (what the completed syncs made durable). Broadcast's:
/// `acknowledged_in_step()` and the deliveries since a checker's cursor. SWIM's: `changed()`,
/// the members whose record changed. A node seen as `None` is down: a crash ended that
/// incarnation, and the next view of it is a new incarnation recovered from storage,
/// which is where per-incarnation state (commit order, durability promises) resets or
/// is compared. A step that completes a sync (`on_synced`) is a step like any other.
pub trait Checker<P: Process>: Send {
    /// The check's name, kebab-case, as failures report it (`invariant `NAME``).
    fn name(&self) -> &'static str;

    /// Safety: `node` just stepped (or crashed, or restarted). Checkers should look at
    /// what changed rather than rescan the cluster: this is on the hot path.
    fn after_step(&mut self, view: &ClusterView<'_, P>, node: NodeId) -> Result<(), String>;

    /// Liveness: polled during the final heal-and-quiesce phase; the run passes once
    /// every checker returns `Ok` (and every client is idle) before the phase's bound.
    /// The `Err` text is the reason reported if the bound passes first.
    fn settled(&mut self, _view: &ClusterView<'_, P>) -> Result<(), String> {
        Ok(())
    }

    /// Figures for `summary.json`.
    fn metrics(&self, _out: &mut Metrics) {}
}
