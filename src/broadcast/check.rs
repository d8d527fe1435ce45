//! The broadcast's properties, checked on the omniscient view of the cluster.
//!
//! A value counts as *broadcast* when a node delivers it from a client: the node
//! answers the client `Ok` once the value's write is durable. Each checker reads only
//! the deliveries a node made since its last look, through a cursor per node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::process::{BroadcastProcess, Delivery, Source};
use crate::check::{Checker, ClusterView, Metrics};
use crate::process::NodeId;

/// Per node, how many of its current incarnation's deliveries a checker has read.
#[derive(Debug, Default)]
struct Cursors {
    read: Vec<usize>,
    /// The node was seen down since the last read: its next view is a new incarnation.
    restarted: Vec<bool>,
}

/// What changed at one node since the last look.
struct Seen<'a> {
    process: &'a BroadcastProcess,
    /// A new incarnation that has recovered from storage.
    restarted: bool,
    new: &'a [Delivery],
}

impl Cursors {
    fn new(nodes: usize) -> Self {
        Cursors {
            read: vec![0; nodes],
            restarted: vec![false; nodes],
        }
    }

    /// `None` while the node is down or has not yet recovered.
    fn look<'a>(
        &mut self,
        view: &'a ClusterView<'_, BroadcastProcess>,
        node: NodeId,
    ) -> Option<Seen<'a>> {
        let Some(process) = view.node(node).filter(|p| p.is_started()) else {
            if view.node(node).is_none() {
                self.restarted[node] = true;
                self.read[node] = 0;
            }
            return None;
        };
        let all = process.deliveries();
        // Deliveries only grow within an incarnation; fewer means a restart we missed.
        let restarted = std::mem::take(&mut self.restarted[node]) || all.len() < self.read[node];
        if restarted {
            self.read[node] = 0;
        }
        let new = &all[self.read[node]..];
        self.read[node] = all.len();
        Some(Seen {
            process,
            restarted,
            new,
        })
    }
}

/// Integrity: a node delivers only values some client broadcast, with the value the
/// client gave, and delivers each id at most once per incarnation.
pub struct Integrity {
    cursors: Cursors,
    /// Every id some node delivered, with its value: a node delivers at most
    /// `max_values`, so at most `nodes * max_values` entries.
    broadcast: BTreeMap<u64, std::sync::Arc<str>>,
    /// Per node, the ids delivered by its current incarnation (at most `max_values`).
    current: Vec<BTreeSet<u64>>,
}

impl Integrity {
    /// A checker for a cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Integrity {
            cursors: Cursors::new(nodes),
            broadcast: BTreeMap::new(),
            current: vec![BTreeSet::new(); nodes],
        }
    }
}

impl Checker<BroadcastProcess> for Integrity {
    fn name(&self) -> &'static str {
        "broadcast-integrity"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, BroadcastProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(seen) = self.cursors.look(view, node) else {
            return Ok(());
        };
        if seen.restarted {
            self.current[node].clear();
        }
        for delivery in seen.new {
            let id = delivery.id;
            if !self.current[node].insert(id) {
                return Err(format!("node {node} delivered id {id} twice"));
            }
            let Some(value) = seen.process.delivered().get(&id) else {
                return Err(format!(
                    "node {node} delivered id {id} but does not hold it"
                ));
            };
            match (delivery.source, self.broadcast.get(&id)) {
                (Source::Client, None) => {
                    self.broadcast.insert(id, value.clone());
                }
                (_, Some(sent)) if sent == value => {}
                (_, Some(sent)) => {
                    return Err(format!(
                        "node {node} delivered id {id} as {value:?}, but {sent:?} was broadcast"
                    ));
                }
                (source, None) => {
                    return Err(format!(
                        "node {node} delivered id {id} ({value:?}, {source:?}) that no client broadcast"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Durability: what a node acknowledged (to a client or a peer) it still holds after
/// any number of restarts. A value delivered but not yet acknowledged may be lost: its
/// sync had not completed, and nobody was promised anything.
pub struct Durability {
    cursors: Cursors,
    /// Per node, every id any of its incarnations acknowledged. Each restart checks
    /// the node still holds them all, and a node holds at most `max_values`.
    ever: Vec<BTreeSet<u64>>,
}

impl Durability {
    /// A checker for a cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Durability {
            cursors: Cursors::new(nodes),
            ever: vec![BTreeSet::new(); nodes],
        }
    }
}

impl Checker<BroadcastProcess> for Durability {
    fn name(&self) -> &'static str {
        "broadcast-durability"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, BroadcastProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(seen) = self.cursors.look(view, node) else {
            return Ok(());
        };
        if seen.restarted {
            let held = seen.process.delivered();
            let lost: Vec<u64> = self.ever[node]
                .iter()
                .filter(|id| !held.contains_key(id))
                .copied()
                .collect();
            if let Some(first) = lost.first() {
                return Err(format!(
                    "node {node} lost {} delivered values in a restart, first id {first}",
                    lost.len()
                ));
            }
        }
        self.ever[node].extend(seen.process.acknowledged_in_step().iter().map(|d| d.id));
        Ok(())
    }
}

/// Agreement (liveness): once faults heal, every up node delivers every broadcast
/// value. Also gathers the run's metrics.
pub struct Agreement {
    cursors: Cursors,
    /// Per broadcast id: when it was broadcast, when the latest node first delivered
    /// it, and the nodes that ever did (simulated true time). One entry per id some
    /// node delivered: at most `nodes * max_values`.
    spread: BTreeMap<u64, (Duration, Duration, BTreeSet<NodeId>)>,
    /// Per node, the current incarnation's resend count already added to `retransmits`.
    counted: Vec<u64>,
    retransmits: u64,
}

impl Agreement {
    /// A checker for a cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Agreement {
            cursors: Cursors::new(nodes),
            spread: BTreeMap::new(),
            counted: vec![0; nodes],
            retransmits: 0,
        }
    }
}

impl Checker<BroadcastProcess> for Agreement {
    fn name(&self) -> &'static str {
        "broadcast-agreement"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, BroadcastProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(seen) = self.cursors.look(view, node) else {
            return Ok(());
        };
        if seen.restarted {
            self.counted[node] = 0;
        }
        let now = view.now;
        // A value is broadcast once its client's `Ok` leaves: before that, a crash may
        // take it back with nobody told.
        for delivery in seen.process.acknowledged_in_step() {
            if delivery.source == Source::Client {
                self.spread
                    .entry(delivery.id)
                    .or_insert_with(|| (now, now, BTreeSet::from([node])));
            }
        }
        for delivery in seen.new {
            // Integrity's concern; agreement only tracks what was broadcast.
            let Some(entry) = self.spread.get_mut(&delivery.id) else {
                continue;
            };
            if entry.2.insert(node) {
                entry.1 = now;
            }
        }
        let resent = seen.process.retransmits();
        assert!(resent >= self.counted[node], "resend counts only grow");
        self.retransmits += resent - self.counted[node];
        self.counted[node] = resent;
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, BroadcastProcess>) -> Result<(), String> {
        for (node, process) in view.up() {
            let held = process.delivered();
            let missing: Vec<u64> = self
                .spread
                .keys()
                .filter(|id| !held.contains_key(id))
                .copied()
                .collect();
            if let Some(first) = missing.first() {
                return Err(format!(
                    "node {node} lacks {} of {} broadcast values, first id {first}",
                    missing.len(),
                    self.spread.len()
                ));
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        let max_delivery = self
            .spread
            .values()
            .map(|(first, last, _)| *last - *first)
            .max()
            .unwrap_or_default();
        out.insert("delivered_values".into(), self.spread.len() as f64);
        out.insert(
            "max_delivery_ms".into(),
            max_delivery.as_secs_f64() * 1000.0,
        );
        out.insert("retransmits".into(), self.retransmits as f64);
    }
}
