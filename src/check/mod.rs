//! Checkers judge a run: online invariants over the omniscient view of all nodes,
//! liveness once faults have healed, and per-run metrics.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::process::{NodeId, Process};

pub mod edn;
pub mod history_file;
pub mod ladder;
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
    /// Per node: how long it could not run its handlers on time; empty means never.
    pub stalls: &'a [Stall],
    /// During the liveness phase: which links still work (`links[from * n + to]`),
    /// after the heal left only permanent faults; empty means every link works.
    pub links: &'a [bool],
    /// What the liveness phase expects of the protocol.
    pub availability: Availability,
}

impl<'a, P> ClusterView<'a, P> {
    /// A view in which no node is paused or stalled and every link works (for unit
    /// tests of checkers).
    pub fn new(now: Duration, nodes: &'a [Option<P>]) -> Self {
        ClusterView {
            now,
            nodes,
            paused: &[],
            slow: &[],
            stalls: &[],
            links: &[],
            availability: Availability::Progress,
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

    /// Total time node `id` could not run its handlers on time, or (its disk stalled)
    /// make anything durable, up to now.
    pub fn stalled(&self, id: NodeId) -> Duration {
        let ns = self.stalls.get(id).map_or(0, |s| s.at_ns(self.now_ns()));
        Duration::from_nanos(ns)
    }

    /// Whether messages from `from` reach `to` (during the liveness phase: whether no
    /// permanent fault cuts that link).
    pub fn linked(&self, from: NodeId, to: NodeId) -> bool {
        let n = self.nodes.len();
        self.links.get(from * n + to).copied().unwrap_or(true)
    }

    /// Up, not paused, and linked both ways with `to` (with itself, trivially).
    pub fn live_with(&self, id: NodeId, to: NodeId) -> bool {
        self.nodes[id].is_some()
            && !self.is_paused(id)
            && (id == to || (self.linked(id, to) && self.linked(to, id)))
    }

    fn now_ns(&self) -> u64 {
        self.now.as_nanos() as u64
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

/// What the liveness phase demands, once every fault but the permanent ones healed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    /// The cluster makes progress again (for Raft: a fresh write commits and every live
    /// replica catches up).
    #[default]
    Progress,
    /// Too much of the cluster is gone for good: it must stay safe and make no
    /// progress (for Raft: nothing commits after the heal); clients give up on what
    /// they asked.
    Unavailable,
}

/// Time a node could not run its handlers on time: paused, its clock frozen (and,
/// from other fault kinds, handler delay). Overlapping causes count once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    total_ns: u64,
    since_ns: Option<u64>,
    /// Causes active now.
    depth: u32,
    /// The end of the last late interval [`Stall::add_late`] counted.
    late_until_ns: u64,
}

impl Stall {
    /// A cause starts at `now_ns`.
    pub fn begin(&mut self, now_ns: u64) {
        if self.depth == 0 {
            self.since_ns = Some(now_ns);
        }
        self.depth += 1;
    }

    /// A cause ends at `now_ns`.
    pub fn end(&mut self, now_ns: u64) {
        assert!(self.depth > 0, "a stall ends once");
        self.depth -= 1;
        if self.depth == 0 {
            let since = self.since_ns.take().expect("stalled");
            self.total_ns += now_ns.saturating_sub(since);
        }
    }

    /// A handler due at `due_ns` ran at `run_ns`: adds the part of that wait no
    /// earlier late handler covered (handlers queued behind one another wait through
    /// the same time, which counts once).
    pub fn add_late(&mut self, due_ns: u64, run_ns: u64) {
        let from = due_ns.max(self.late_until_ns);
        self.total_ns += run_ns.saturating_sub(from);
        self.late_until_ns = self.late_until_ns.max(run_ns);
    }

    /// The total up to `now_ns`.
    pub fn at_ns(&self, now_ns: u64) -> u64 {
        self.total_ns + self.since_ns.map_or(0, |s| now_ns.saturating_sub(s))
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

    /// The liveness phase settled: every checker and every client. A scenario's
    /// `liveness.stable_ms` then runs the phase on and polls [`Checker::settled`] once
    /// more at the end; a checker that holds the cluster to staying as it settled
    /// records here what must stay (Raft: the leader and its term).
    fn on_settled(&mut self, _view: &ClusterView<'_, P>) {}

    /// Figures for `summary.json`.
    fn metrics(&self, _out: &mut Metrics) {}
}

#[cfg(test)]
mod tests {
    use super::Stall;

    /// Handlers queued behind one another on a slow node wait through the same time:
    /// it counts once, and a pause adds its own interval.
    #[test]
    fn late_handlers_count_their_shared_wait_once() {
        let mut s = Stall::default();
        s.add_late(1_000, 5_000); // due at 1 µs, ran at 5 µs: 4 µs late
        s.add_late(2_000, 6_000); // queued behind it: only 5..6 µs is new
        s.add_late(10_000, 10_000); // on time
        assert_eq!(s.at_ns(20_000), 5_000);
        s.begin(30_000);
        assert_eq!(s.at_ns(35_000), 10_000, "an open pause counts up to now");
        s.end(40_000);
        assert_eq!(s.at_ns(50_000), 15_000);
    }
}
