//! Checker orchestration: the omniscient [`ClusterView`] and the calls into every
//! [`Checker`] hook: `after_step` after each node step, the liveness phase's
//! expectation, `settled` polls and `on_settled`. The checkers leave the world while
//! they look at it, so that the view can borrow it.
//!
//! Every loop here runs over a fixed list: the system's checkers (set at the start),
//! the nodes or the clients.

use std::time::Duration;

use super::{Status, World};
use crate::check::{Availability, ClusterView};
use crate::client::Client;
use crate::process::{NodeId, Process};
use crate::system::System;

impl<S: System> World<S> {
    /// Runs every checker's safety check after node `id` changed.
    pub(super) fn check(&mut self, id: NodeId, now: u64) {
        if self.setup.coverage {
            self.note_coverage(id);
        }
        if self.failure.is_some() {
            return;
        }
        // The checkers leave the world while they look at it through the view.
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(now);
        let mut failed = None;
        for checker in &mut checkers {
            if let Err(message) = checker.after_step(&view, id) {
                failed = Some((checker.name(), message));
                break;
            }
        }
        self.checkers = checkers;
        if let Some((name, message)) = failed {
            self.fail(super::FailureKind::Invariant, name, message);
        }
    }

    /// Records the coverage state node `id` reached in the step it just took (see
    /// [`crate::Process::coverage`]).
    fn note_coverage(&mut self, id: NodeId) {
        let Some(state) = self.processes[id].as_ref().and_then(|p| p.coverage()) else {
            return;
        };
        if self.coverage.len() < super::COVERAGE_MAX {
            self.coverage.insert(state);
        }
    }

    /// The coverage states reached, as metrics `coverage.<state>` (hex), each 1.
    pub(super) fn coverage_metrics(&self, out: &mut crate::check::Metrics) {
        for state in &self.coverage {
            out.insert(format!("coverage.{state:x}"), 1.0);
        }
    }

    /// The omniscient view checkers judge at simulated time `now_ns`.
    fn view(&self, now_ns: u64) -> ClusterView<'_, S::Process> {
        ClusterView {
            now: Duration::from_nanos(now_ns),
            nodes: &self.processes,
            paused: &self.paused,
            slow: &self.slow,
            stalls: &self.stalls,
            links: &self.links,
            availability: self.availability,
        }
    }

    /// The liveness phase starts, with only permanent faults left: records which links
    /// still work and what the phase expects (`None`: derive it). The derived
    /// expectation is progress when a majority of the nodes is up (or restarting), not
    /// paused, and connected both ways to one another; unavailability otherwise.
    pub fn begin_liveness(&mut self, expect: Option<Availability>) -> Availability {
        let n = self.nodes.len();
        let cut = (0..n).any(|a| (0..n).any(|b| a != b && !self.net.connected(a, b)));
        if cut {
            self.links = (0..n * n)
                .map(|i| i / n == i % n || self.net.connected(i / n, i % n))
                .collect();
        }
        let alive: Vec<bool> = (0..n)
            .map(|i| {
                let slot = &self.nodes[i];
                match slot.status {
                    Status::Up => true,
                    Status::Down => slot.restart_at_ns.is_some(),
                    Status::Paused => false,
                }
            })
            .collect();
        let linked = |a: usize, b: usize| self.links[a * n + b] && self.links[b * n + a];
        // The largest group of live nodes that all reach one another, grown greedily
        // from each node (partitions make such groups disjoint; a bridge node may
        // belong to two, and either counts).
        let largest = match cut {
            false => alive.iter().filter(|&&a| a).count(),
            true => (0..n)
                .filter(|&a| alive[a])
                .map(|a| {
                    let mut group = vec![a];
                    // At most n * n pairs per starting node.
                    for b in (0..n).filter(|&b| b != a && alive[b]) {
                        if group.iter().all(|&g| linked(g, b)) {
                            group.push(b);
                        }
                    }
                    group.len()
                })
                .max()
                .unwrap_or(0),
        };
        let derived = match largest > n / 2 {
            true => Availability::Progress,
            false => Availability::Unavailable,
        };
        self.availability = expect.unwrap_or(derived);
        self.availability
    }

    /// The liveness phase settled: tells every checker (see [`Checker::on_settled`]).
    pub fn confirm_settled(&mut self) {
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(self.now_ns());
        for checker in &mut checkers {
            checker.on_settled(&view);
        }
        self.checkers = checkers;
    }

    /// Liveness: `Ok` once every checker is settled and every client is idle.
    pub fn settled(&mut self) -> Result<(), Vec<String>> {
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(self.now_ns());
        let mut reasons = Vec::new();
        for checker in &mut checkers {
            if let Err(reason) = checker.settled(&view) {
                reasons.push(format!("{}: {reason}", checker.name()));
            }
        }
        self.checkers = checkers;
        for (c, slot) in self.clients.iter().enumerate() {
            let pending = slot.client.pending();
            if pending > 0 {
                reasons.push(format!("client c{c} has {pending} operations pending"));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}
