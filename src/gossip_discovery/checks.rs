//! The checkers of a gossip-only discovery run: SWIM's rules on the members nested
//! in the nodes ([`SwimRules`]) and the discovery figures ([`DiscoveryFigures`],
//! computed by [`crate::discovery::metrics`]).

use crate::check::{Checker, ClusterView, Metrics};
use crate::discovery::recorder::Recorder;
use crate::gossip::check::swim_permits;
use crate::gossip::{MemberState, Phase};
use crate::process::NodeId;

use super::config::NodeRole;
use super::node::GossipNode;

/// SWIM's rules (Das et al., DSN 2002, §4.2) on every member after every step:
///
/// 1. a member's own incarnation never goes down, across restarts too (it is
///    persisted), and no observer holds a member at an incarnation above any that
///    member gave itself: only the member raises its own;
/// 2. every change of an observer's record of a member is one the override order
///    permits ([`swim_permits`]: the paper's table, with memberlist's rules for
///    death and rejoin), the record's shadow reset when the observer crashes.
pub struct SwimRules {
    own_max: Vec<Option<u64>>,
    shadow: Vec<Vec<Option<(u64, MemberState)>>>,
}

impl SwimRules {
    /// For a cluster of `nodes`.
    pub fn new(nodes: usize) -> Self {
        SwimRules {
            own_max: vec![None; nodes],
            shadow: vec![Vec::new(); nodes],
        }
    }
}

impl Checker<GossipNode> for SwimRules {
    fn name(&self) -> &'static str {
        "swim-rules"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, GossipNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(n) = view.node(node) else {
            self.shadow[node].clear();
            return Ok(());
        };
        let p = n.swim();
        let own = p.incarnation();
        if let Some(max) = self.own_max[node] {
            if own < max {
                return Err(format!(
                    "incarnation-went-down: node {node} gives itself incarnation {own}, below \
                     {max} it gave itself before"
                ));
            }
        }
        self.own_max[node] = Some(own.max(self.own_max[node].unwrap_or(0)));
        let shadow = &mut self.shadow[node];
        if shadow.is_empty() {
            shadow.resize(view.nodes.len(), None);
        }
        for &x in p.changed() {
            let Some(m) = p.member(x) else {
                continue;
            };
            if x != node && m.incarnation > self.own_max[x].unwrap_or(0) {
                return Err(format!(
                    "incarnation-not-owned: node {node} holds {x} at incarnation {}, above any \
                     {x} gave itself ({})",
                    m.incarnation,
                    self.own_max[x].unwrap_or(0)
                ));
            }
            let new = (m.incarnation, m.state);
            match shadow[x] {
                Some(old) if old != new && !swim_permits(old, new) => {
                    return Err(format!(
                        "override-not-permitted: node {node}'s view of {x} went from {:?} at \
                         incarnation {} to {:?} at incarnation {}",
                        old.1, old.0, m.state, m.incarnation
                    ));
                }
                _ => shadow[x] = Some(new),
            }
        }
        Ok(())
    }
}

/// The discovery figures of a gossip-only run: removal time of an instance that
/// went down (crashed or unhealthy) from every caller's view, failed calls per
/// 1,000, calls to dead instances ([`Recorder`]). An instance is registered from
/// the step its member is active (it announces its metadata on joining) until it
/// leaves; a crash is not a deregistration.
pub struct DiscoveryFigures {
    recorder: Recorder,
}

impl DiscoveryFigures {
    /// The figures of nodes `instances` and `callers`.
    pub fn new(instances: std::ops::Range<NodeId>, callers: std::ops::Range<NodeId>) -> Self {
        DiscoveryFigures {
            recorder: Recorder::new(instances, callers),
        }
    }
}

impl Checker<GossipNode> for DiscoveryFigures {
    fn name(&self) -> &'static str {
        "discovery"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, GossipNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let now = view.now;
        let Some(n) = view.node(node) else {
            self.recorder.down(now, node);
            return Ok(());
        };
        match n.role() {
            NodeRole::Instance => {
                let phase = n.swim().phase();
                let listed = self.recorder.listed().contains(&node);
                if phase == Phase::Active && !listed {
                    self.recorder.registered(now, node);
                } else if matches!(phase, Phase::Leaving | Phase::Left) && listed {
                    self.recorder.unregistered(now, node, false);
                }
                self.recorder.instance(now, node, n.answer() == Some(true));
            }
            NodeRole::Caller => self.recorder.caller(
                now,
                node,
                &n.endpoints(),
                n.changed_in_step(),
                n.started_in_step(),
                n.calls_in_step(),
            ),
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        self.recorder.figures(out);
    }
}
