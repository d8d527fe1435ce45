//! faultline's network: decides every message's fate from the network stream.
//!
//! - A partition is a set of directed cuts; overlapping faults compose (a link is cut
//!   while any active fault cuts it).
//! - A link is tested at send *and* at delivery: a message in flight when a cut
//!   appears is lost, as on a real network whose route goes away (madsim alone would
//!   deliver it). The send-time test is [`Network::route`]; the delivery-time test is
//!   in the world's `step_node`, which asks [`Network::connected`] when the message
//!   comes due, before the handler runs.
//! - Loss, duplication and reordering apply per message; a duplicate draws its own
//!   latency, so it may arrive first.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::process::NodeId;
use crate::scenario::{Fault, Latency, NetworkSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Partition,
    Loss,
    /// The receiver was down when the message arrived.
    NodeDown,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Partition => "partition",
            DropReason::Loss => "loss",
            DropReason::NodeDown => "node-down",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    Dropped(DropReason),
    /// Arrives after `latency_ns`; a duplicate, if any, after its own latency.
    Delivered {
        latency_ns: u64,
        duplicate_ns: Option<u64>,
    },
}

pub struct Network {
    nodes: usize,
    spec: NetworkSpec,
    /// `nodes * nodes`, row = sender: a per-link latency override.
    link_latency: Vec<Option<Latency>>,
    client_latency: Latency,
    /// `nodes * nodes`: how many active faults cut the directed link.
    cuts: Vec<u16>,
    /// Active windows, by the fault index that opened them.
    spikes: Vec<(usize, (Vec<NodeId>, Latency))>,
    loss: Vec<(usize, f64)>,
    duplicate: Vec<(usize, f64)>,
    rng: ChaCha8Rng,
}

impl Network {
    pub fn new(nodes: usize, spec: &NetworkSpec, rng: ChaCha8Rng) -> Self {
        let mut link_latency = vec![None; nodes * nodes];
        for link in &spec.links {
            link_latency[link.from * nodes + link.to] = Some(link.latency.clone());
        }
        Network {
            nodes,
            client_latency: spec
                .client_latency
                .clone()
                .unwrap_or_else(|| spec.latency.clone()),
            spec: spec.clone(),
            link_latency,
            cuts: vec![0; nodes * nodes],
            spikes: Vec::new(),
            loss: Vec::new(),
            duplicate: Vec::new(),
            rng,
        }
    }

    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts[from * self.nodes + to] == 0
    }

    pub fn route(&mut self, from: NodeId, to: NodeId) -> Fate {
        if !self.connected(from, to) {
            return Fate::Dropped(DropReason::Partition);
        }
        let loss = self.loss.iter().map(|w| w.1).fold(self.spec.loss, f64::max);
        if loss > 0.0 && self.rng.gen_bool(loss) {
            return Fate::Dropped(DropReason::Loss);
        }
        let latency_ns = self.latency_ns(from, to);
        let duplicate = self
            .duplicate
            .iter()
            .map(|w| w.1)
            .fold(self.spec.duplicate, f64::max);
        let duplicate_ns =
            (duplicate > 0.0 && self.rng.gen_bool(duplicate)).then(|| self.latency_ns(from, to));
        Fate::Delivered {
            latency_ns,
            duplicate_ns,
        }
    }

    fn latency_ns(&mut self, from: NodeId, to: NodeId) -> u64 {
        let base = self.link_latency[from * self.nodes + to]
            .as_ref()
            .unwrap_or(&self.spec.latency);
        let mut ns = base.sample_ns(&mut self.rng);
        for (_, (nodes, delay)) in &self.spikes {
            if nodes.is_empty() || nodes.contains(&from) || nodes.contains(&to) {
                ns += delay.sample_ns(&mut self.rng);
            }
        }
        if self.spec.reorder > 0.0 && self.rng.gen_bool(self.spec.reorder) {
            ns += (self.rng.gen_range(0.0..=self.spec.reorder_ms_max) * 1e6) as u64;
        }
        ns
    }

    /// Latency between a client and a process, either way.
    pub fn client_latency_ns(&mut self) -> u64 {
        self.client_latency.sample_ns(&mut self.rng)
    }

    /// Starts (`on = true`) or ends fault `index`'s effect on the network. Faults that
    /// are not network faults are ignored.
    pub fn apply(&mut self, index: usize, fault: &Fault, on: bool) {
        match fault {
            Fault::LatencySpike { nodes, delay, .. } => toggle(&mut self.spikes, index, on, || {
                (nodes.clone(), delay.clone())
            }),
            Fault::Loss { rate, .. } => toggle(&mut self.loss, index, on, || *rate),
            Fault::Duplicate { rate, .. } => toggle(&mut self.duplicate, index, on, || *rate),
            _ => {
                for (from, to) in cut_links(self.nodes, fault) {
                    let count = &mut self.cuts[from * self.nodes + to];
                    *count = if on {
                        count.checked_add(1)
                    } else {
                        count.checked_sub(1)
                    }
                    .expect("cut count in range");
                }
            }
        }
    }
}

/// Opens or closes the window of fault `index` in a list of active windows.
fn toggle<T>(windows: &mut Vec<(usize, T)>, index: usize, on: bool, value: impl FnOnce() -> T) {
    if on {
        windows.push((index, value()));
    } else {
        let before = windows.len();
        windows.retain(|w| w.0 != index);
        assert_eq!(
            windows.len() + 1,
            before,
            "closing fault {index} that was not open"
        );
    }
}

/// The directed links a partition-shaped fault cuts.
pub fn cut_links(nodes: usize, fault: &Fault) -> Vec<(NodeId, NodeId)> {
    let both = |a: &[NodeId], b: &[NodeId]| {
        let mut links = Vec::with_capacity(2 * a.len() * b.len());
        for &x in a {
            for &y in b {
                links.push((x, y));
                links.push((y, x));
            }
        }
        links
    };
    match fault {
        Fault::Partition { groups, .. } => {
            let group_of = |n: NodeId| {
                groups
                    .iter()
                    .position(|g| g.contains(&n))
                    .unwrap_or(groups.len())
            };
            let mut links = Vec::new();
            for from in 0..nodes {
                for to in 0..nodes {
                    if from != to && group_of(from) != group_of(to) {
                        links.push((from, to));
                    }
                }
            }
            links
        }
        Fault::OneWay { from, to, .. } => from
            .iter()
            .flat_map(|&f| to.iter().map(move |&t| (f, t)))
            .collect(),
        Fault::Bridge { left, right, .. } => both(left, right),
        Fault::Isolate { node, .. } => {
            let others: Vec<_> = (0..nodes).filter(|n| n != node).collect();
            both(&[*node], &others)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Purpose};

    fn net(nodes: usize) -> Network {
        Network::new(
            nodes,
            &NetworkSpec::default(),
            stream(7, Purpose::Network, 0),
        )
    }

    #[test]
    fn overlapping_cuts_heal_independently() {
        let mut n = net(3);
        let isolate = Fault::Isolate {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            node: 0,
        };
        let one_way = Fault::OneWay {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            from: vec![0],
            to: vec![1],
        };
        n.apply(0, &isolate, true);
        n.apply(1, &one_way, true);
        n.apply(0, &isolate, false);
        assert!(!n.connected(0, 1), "the one-way cut is still active");
        assert!(n.connected(1, 0) && n.connected(0, 2));
        n.apply(1, &one_way, false);
        assert!(n.connected(0, 1));
    }

    #[test]
    fn a_bridge_sees_both_sides_and_the_sides_do_not_see_each_other() {
        let mut n = net(5);
        let bridge = Fault::Bridge {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            bridge: 2,
            left: vec![0, 1],
            right: vec![3, 4],
        };
        n.apply(0, &bridge, true);
        for side in [0, 1, 3, 4] {
            assert!(n.connected(2, side) && n.connected(side, 2));
        }
        assert!(!n.connected(0, 3) && !n.connected(4, 1));
        assert!(n.connected(0, 1) && n.connected(3, 4));
    }

    #[test]
    fn unlisted_nodes_form_their_own_group() {
        let mut n = net(4);
        n.apply(
            0,
            &Fault::Partition {
                at_ms: 0,
                heal_ms: None,
                permanent: false,
                groups: vec![vec![0]],
            },
            true,
        );
        assert!(!n.connected(0, 1) && !n.connected(3, 0));
        assert!(n.connected(1, 2) && n.connected(3, 1));
    }
}

crate::impl_fingerprint!(enum DropReason {
    0 => Partition,
    1 => Loss,
    2 => NodeDown,
});
