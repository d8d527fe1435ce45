//! faultline's network: decides every message's fate from the network stream.
//!
//! - A partition is a set of directed cuts; overlapping faults compose (a link is cut
//!   while any active fault cuts it). A cut restricted to message `classes` cuts only
//!   messages of those classes (see `Process::message_class`).
//! - A link is tested at send *and* at delivery: a message in flight when a cut
//!   appears is lost, as on a real network whose route goes away (madsim alone would
//!   deliver it). The send-time test is [`Network::route`]; the delivery-time test is
//!   the world's `arrive` (`world/delivery.rs`), which asks [`Network::cut_by`] when
//!   the message comes due, before the handler runs. A `hold` is tested only at delivery
//!   ([`Network::held_by`]): messages that arrive while it lasts wait in the world
//!   until its heal.
//! - Loss, duplication and reordering apply per message; a duplicate draws its own
//!   latency, so it may arrive first. `loss`, `duplicate` and `latency-spike` faults
//!   may be scoped to nodes and links; the highest loss (or duplication) rate among
//!   the base network's and the faults' that apply to a message is the one drawn.
//! - Every effect a fault has is counted against the fault that had it
//!   ([`Network::effects`]); when several faults could claim one (two partitions
//!   cutting a link, two loss windows at the same rate), the lowest fault index does.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::process::NodeId;
use crate::scenario::{in_scope, Fault, Latency, Link, NetworkSpec};

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A partition-shaped fault (`partition`, `one-way`, `bridge`, `isolate`) cuts the
    /// link.
    Partition,
    /// Drawn lost, at the base network's loss rate or a `loss` fault's.
    Loss,
    /// The receiver was down when the message arrived.
    NodeDown,
}

impl DropReason {
    /// The name trace lines give it: `partition`, `loss` or `node-down`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Partition => "partition",
            DropReason::Loss => "loss",
            DropReason::NodeDown => "node-down",
        }
    }
}

/// A message's fate at its send ([`Network::route`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// Never arrives.
    Dropped(DropReason),
    /// Arrives after `latency_ns`; a duplicate, if any, after its own latency.
    Delivered {
        /// Time from the send to the arrival, in ns.
        latency_ns: u64,
        /// The duplicate's time from the send to its arrival, in ns; `None`: no
        /// duplicate.
        duplicate_ns: Option<u64>,
    },
}

/// What each fault did, by fault index and effect name (see `FaultKind::effects`).
#[derive(Clone, Debug, Default)]
pub struct FaultEffects(pub BTreeMap<(usize, &'static str), f64>);

impl FaultEffects {
    /// Adds `amount` to fault `fault`'s `effect`.
    pub fn add(&mut self, fault: usize, effect: &'static str, amount: f64) {
        *self.0.entry((fault, effect)).or_insert(0.0) += amount;
    }

    /// Fault `fault`'s `effect` so far; 0 if it had none.
    pub fn get(&self, fault: usize, effect: &'static str) -> f64 {
        self.0.get(&(fault, effect)).copied().unwrap_or(0.0)
    }
}

fn class_matches(classes: &[String], class: &str) -> bool {
    classes.is_empty() || classes.iter().any(|c| c == class)
}

/// An active partition-shaped fault.
struct Cut {
    index: usize,
    /// `nodes * nodes`, row = sender.
    links: Vec<bool>,
    classes: Vec<String>,
}

/// An active `loss` or `duplicate` window.
struct RateWindow {
    index: usize,
    nodes: Vec<NodeId>,
    links: Vec<Link>,
    classes: Vec<String>,
    rate: f64,
}

impl RateWindow {
    fn applies(&self, from: NodeId, to: NodeId, class: &str) -> bool {
        in_scope(&self.nodes, &self.links, from, to) && class_matches(&self.classes, class)
    }
}

struct Spike {
    index: usize,
    nodes: Vec<NodeId>,
    links: Vec<Link>,
    delay: Latency,
}

struct Hold {
    index: usize,
    from: Vec<NodeId>,
    to: Vec<NodeId>,
    classes: Vec<String>,
}

/// The network between a run's nodes, and its client latency: base conditions from
/// [`NetworkSpec`], the active network faults, and the network stream every draw
/// comes from.
pub struct Network {
    nodes: usize,
    spec: NetworkSpec,
    /// `nodes * nodes`, row = sender: a per-link latency override.
    link_latency: Vec<Option<Latency>>,
    client_latency: Latency,
    /// `nodes * nodes`: how many active faults without classes cut the directed link.
    cuts: Vec<u16>,
    /// Every active cut, in fault index order.
    ///
    /// This and every list of active windows below hold at most one entry per fault
    /// of the schedule (a fault opens its window once and closes it once), so every
    /// loop over them is bounded by the schedule's length.
    cut_faults: Vec<Cut>,
    /// Whether some active cut is restricted to classes (the fast path is off).
    class_cuts: usize,
    /// Active windows, in the order they opened.
    spikes: Vec<Spike>,
    loss: Vec<RateWindow>,
    duplicate: Vec<RateWindow>,
    holds: Vec<Hold>,
    rng: ChaCha8Rng,
    /// What each network fault did: messages dropped, duplicated and delayed.
    pub effects: FaultEffects,
}

impl Network {
    /// A network of `nodes` nodes with `spec`'s conditions and no fault active, drawing
    /// from `rng` (the seed's network stream).
    pub fn new(nodes: usize, spec: &NetworkSpec, rng: ChaCha8Rng) -> Self {
        let mut link_latency = vec![None; nodes * nodes];
        // The scenario's links: validated to name nodes of the cluster.
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
            cut_faults: Vec::new(),
            class_cuts: 0,
            spikes: Vec::new(),
            loss: Vec::new(),
            duplicate: Vec::new(),
            holds: Vec::new(),
            rng,
            effects: FaultEffects::default(),
        }
    }

    /// Whether the link carries every class of message (no cut of any kind on it).
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts[from * self.nodes + to] == 0
            && !self
                .cut_faults
                .iter()
                .any(|c| c.links[from * self.nodes + to])
    }

    /// The lowest-index active fault that cuts a message of `class` on the link.
    pub fn cut_by(&self, from: NodeId, to: NodeId, class: &str) -> Option<usize> {
        let link = from * self.nodes + to;
        if self.cuts[link] == 0 && self.class_cuts == 0 {
            return None;
        }
        self.cut_faults
            .iter()
            .find(|c| c.links[link] && class_matches(&c.classes, class))
            .map(|c| c.index)
    }

    /// The lowest-index active `hold` that holds a message of `class` on the link.
    pub fn held_by(&self, from: NodeId, to: NodeId, class: &str) -> Option<usize> {
        self.holds
            .iter()
            .filter(|h| h.from.contains(&from) && h.to.contains(&to))
            .filter(|h| class_matches(&h.classes, class))
            .map(|h| h.index)
            .min()
    }

    /// A message of `class` sent from `from` to `to` now: dropped if a cut separates
    /// them, else drawn lost at the highest loss rate that applies, else delivered
    /// after its link's latency plus any spikes and reordering, with a duplicate drawn
    /// likewise. Counts the effect against the fault that had it.
    pub fn route(&mut self, from: NodeId, to: NodeId, class: &str) -> Fate {
        if let Some(index) = self.cut_by(from, to, class) {
            self.effects.add(index, "messages_dropped", 1.0);
            return Fate::Dropped(DropReason::Partition);
        }
        let (loss, by) = strongest(&self.loss, self.spec.loss, from, to, class);
        if loss > 0.0 && self.rng.gen_bool(loss) {
            if let Some(index) = by {
                self.effects.add(index, "messages_dropped", 1.0);
            }
            return Fate::Dropped(DropReason::Loss);
        }
        let latency_ns = self.latency_ns(from, to);
        let (duplicate, by) = strongest(&self.duplicate, self.spec.duplicate, from, to, class);
        let duplicate_ns =
            (duplicate > 0.0 && self.rng.gen_bool(duplicate)).then(|| self.latency_ns(from, to));
        if let (Some(_), Some(index)) = (duplicate_ns, by) {
            self.effects.add(index, "messages_duplicated", 1.0);
        }
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
        for spike in &self.spikes {
            if in_scope(&spike.nodes, &spike.links, from, to) {
                let extra = spike.delay.sample_ns(&mut self.rng);
                ns += extra;
                self.effects.add(spike.index, "messages_delayed", 1.0);
                self.effects
                    .add(spike.index, "delay_ms", extra as f64 / 1e6);
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

    /// Shuffles `items` from the network stream (a `hold` with `shuffle` released).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.rng);
    }

    /// Starts (`on = true`) or ends fault `index`'s effect on the network. Faults that
    /// are not network faults are ignored.
    pub fn apply(&mut self, index: usize, fault: &Fault, on: bool) {
        match fault {
            Fault::LatencySpike {
                nodes,
                links,
                delay,
                ..
            } => toggle(
                &mut self.spikes,
                |s| s.index,
                index,
                on,
                || Spike {
                    index,
                    nodes: nodes.clone(),
                    links: links.clone(),
                    delay: delay.clone(),
                },
            ),
            Fault::Loss {
                rate, nodes, links, ..
            }
            | Fault::Duplicate {
                rate, nodes, links, ..
            } => {
                let windows = match fault {
                    Fault::Loss { .. } => &mut self.loss,
                    _ => &mut self.duplicate,
                };
                toggle(
                    windows,
                    |w| w.index,
                    index,
                    on,
                    || RateWindow {
                        index,
                        nodes: nodes.clone(),
                        links: links.clone(),
                        classes: fault.classes().to_vec(),
                        rate: *rate,
                    },
                )
            }
            Fault::Hold {
                from, to, classes, ..
            } => toggle(
                &mut self.holds,
                |h| h.index,
                index,
                on,
                || Hold {
                    index,
                    from: from.clone(),
                    to: to.clone(),
                    classes: classes.clone(),
                },
            ),
            Fault::Partition { .. }
            | Fault::OneWay { .. }
            | Fault::Bridge { .. }
            | Fault::Isolate { .. } => {
                let classes = fault.classes().to_vec();
                let links = cut_links(self.nodes, fault);
                if classes.is_empty() {
                    // At most `nodes * nodes` links.
                    for &(from, to) in &links {
                        let count = &mut self.cuts[from * self.nodes + to];
                        *count = if on {
                            count.checked_add(1)
                        } else {
                            count.checked_sub(1)
                        }
                        .expect("cut count in range");
                    }
                } else if on {
                    self.class_cuts += 1;
                } else {
                    self.class_cuts -= 1;
                }
                if on {
                    let mut matrix = vec![false; self.nodes * self.nodes];
                    for (from, to) in links {
                        matrix[from * self.nodes + to] = true;
                    }
                    let at = self.cut_faults.partition_point(|c| c.index < index);
                    let cut = Cut {
                        index,
                        links: matrix,
                        classes,
                    };
                    self.cut_faults.insert(at, cut);
                } else {
                    let before = self.cut_faults.len();
                    self.cut_faults.retain(|c| c.index != index);
                    assert_eq!(before, self.cut_faults.len() + 1, "closing cut {index}");
                }
            }
            _ => {}
        }
    }
}

/// The highest rate among `base` and the windows that apply to the message, and the
/// window that set it (the lowest index among equals; `None`: the base network's).
fn strongest(
    windows: &[RateWindow],
    base: f64,
    from: NodeId,
    to: NodeId,
    class: &str,
) -> (f64, Option<usize>) {
    let mut rate = base;
    let mut by: Option<usize> = None;
    for w in windows {
        let higher =
            w.rate > rate || (w.rate == rate && by.is_some_and(|b| w.index < b) && w.rate > base);
        if higher && w.applies(from, to, class) {
            rate = w.rate;
            by = Some(w.index);
        }
    }
    (rate, by)
}

/// Opens or closes the window of fault `index` in a list of active windows.
fn toggle<T>(
    windows: &mut Vec<T>,
    key: impl Fn(&T) -> usize,
    index: usize,
    on: bool,
    value: impl FnOnce() -> T,
) {
    if on {
        windows.push(value());
    } else {
        let before = windows.len();
        windows.retain(|w| key(w) != index);
        assert_eq!(
            windows.len() + 1,
            before,
            "closing fault {index} that was not open"
        );
    }
}

/// The directed links a partition-shaped fault cuts: at most `nodes * nodes` (each
/// loop below runs over the fault's node lists, which name nodes of the cluster).
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
            classes: Vec::new(),
        };
        let one_way = Fault::OneWay {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            from: vec![0],
            to: vec![1],
            classes: Vec::new(),
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
            classes: Vec::new(),
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
                classes: Vec::new(),
            },
            true,
        );
        assert!(!n.connected(0, 1) && !n.connected(3, 0));
        assert!(n.connected(1, 2) && n.connected(3, 1));
    }

    fn loss(nodes: Vec<NodeId>, links: Vec<Link>, classes: &[&str], rate: f64) -> Fault {
        Fault::Loss {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            rate,
            nodes,
            links,
            classes: classes.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn dropped(n: &mut Network, from: NodeId, to: NodeId, class: &str) -> bool {
        matches!(n.route(from, to, class), Fate::Dropped(_))
    }

    #[test]
    fn a_per_node_loss_leaves_other_links_untouched() {
        let mut n = net(4);
        n.apply(3, &loss(vec![2], Vec::new(), &[], 1.0), true);
        for other in [0, 1, 3] {
            assert!(dropped(&mut n, 2, other, "message"));
            assert!(dropped(&mut n, other, 2, "message"));
        }
        for (a, b) in [(0, 1), (1, 3), (3, 0)] {
            assert!(!dropped(&mut n, a, b, "message"), "{a} -> {b}");
        }
        assert_eq!(n.effects.get(3, "messages_dropped"), 6.0);
    }

    #[test]
    fn a_link_loss_is_directed() {
        let mut n = net(3);
        n.apply(
            0,
            &loss(Vec::new(), vec![Link { from: 0, to: 1 }], &[], 1.0),
            true,
        );
        assert!(dropped(&mut n, 0, 1, "message"));
        assert!(!dropped(&mut n, 1, 0, "message"));
        assert!(!dropped(&mut n, 0, 2, "message"));
    }

    #[test]
    fn class_restricted_faults_touch_only_their_classes() {
        let mut n = net(3);
        n.apply(0, &loss(Vec::new(), Vec::new(), &["probe"], 1.0), true);
        let isolate = Fault::Isolate {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            node: 2,
            classes: vec!["push-pull".into()],
        };
        n.apply(1, &isolate, true);
        assert!(dropped(&mut n, 0, 1, "probe"));
        assert!(!dropped(&mut n, 0, 1, "push-pull"));
        assert!(!dropped(&mut n, 0, 1, "gossip"));
        assert_eq!(n.cut_by(2, 0, "push-pull"), Some(1));
        assert_eq!(n.cut_by(2, 0, "gossip"), None);
        assert!(!n.connected(2, 0), "some class is cut");
        assert!(dropped(&mut n, 2, 0, "push-pull"));
        assert_eq!(n.effects.get(0, "messages_dropped"), 1.0);
        assert_eq!(n.effects.get(1, "messages_dropped"), 1.0);
        n.apply(1, &isolate, false);
        assert_eq!(n.cut_by(2, 0, "push-pull"), None);
        assert!(n.connected(2, 0));
    }

    #[test]
    fn a_drop_by_overlapping_cuts_counts_against_the_lowest_index() {
        let mut n = net(3);
        let isolate = |node| Fault::Isolate {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            node,
            classes: Vec::new(),
        };
        n.apply(5, &isolate(0), true);
        n.apply(2, &isolate(1), true);
        assert!(dropped(&mut n, 0, 1, "message"));
        assert_eq!(n.effects.get(2, "messages_dropped"), 1.0);
        assert_eq!(n.effects.get(5, "messages_dropped"), 0.0);
        assert!(dropped(&mut n, 0, 2, "message"));
        assert_eq!(n.effects.get(5, "messages_dropped"), 1.0);
    }

    #[test]
    fn a_loss_below_the_base_rate_claims_nothing() {
        let spec = NetworkSpec {
            loss: 1.0,
            ..NetworkSpec::default()
        };
        let mut n = Network::new(2, &spec, stream(7, Purpose::Network, 0));
        n.apply(0, &loss(Vec::new(), Vec::new(), &[], 0.5), true);
        assert!(dropped(&mut n, 0, 1, "message"));
        assert_eq!(n.effects.get(0, "messages_dropped"), 0.0);
    }

    #[test]
    fn holds_cover_directed_links_and_classes() {
        let mut n = net(3);
        let hold = Fault::Hold {
            at_ms: 0,
            heal_ms: None,
            permanent: false,
            from: vec![0],
            to: vec![1, 2],
            shuffle: false,
            classes: vec!["append".into()],
        };
        n.apply(4, &hold, true);
        assert_eq!(n.held_by(0, 1, "append"), Some(4));
        assert_eq!(n.held_by(1, 0, "append"), None);
        assert_eq!(n.held_by(0, 2, "vote"), None);
        n.apply(4, &hold, false);
        assert_eq!(n.held_by(0, 1, "append"), None);
    }
}

crate::impl_fingerprint!(enum DropReason {
    0 => Partition,
    1 => Loss,
    2 => NodeDown,
});
