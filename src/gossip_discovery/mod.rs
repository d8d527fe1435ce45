//! Gossip-only service discovery (`[cluster] protocol = "gossip-discovery"`): no
//! registry servers. Every node is a SWIM member ([`crate::gossip::SwimProcess`],
//! Lifeguard on, memberlist's LAN defaults); instances publish their service in
//! their member metadata ([`crate::gossip::NodeMeta`]), and each caller calls the
//! providers its own membership view holds alive or suspect, with the shared call
//! logic ([`crate::discovery::calls`]). The design of Serf-tag discovery, or of
//! memberlist-embedded service meshes, without Consul's catalog on top.
//!
//! What it answers and what it cannot: a crashed instance leaves every view when
//! SWIM declares it dead (a probe period, then a suspicion timeout that Lifeguard
//! shortens with confirmations); a partition leaves each side with its own view
//! and both keep working (AP: nothing to lose a majority of); an instance whose
//! application fails while its process acks probes is never removed, since SWIM
//! checks the node, not the service.
//!
//! `[cluster.config]` is [`GossipDiscoveryConfig`]; the bugs `--bug` injects are
//! SWIM's ([`BUGS`]).

pub mod checks;
pub mod config;
pub mod node;

pub use config::{DiscoveryConfig, GossipDiscoveryConfig, NodeRole};
pub use node::{GossipMessage, GossipNode, GossipTimer};

use crate::check::Checker;
use crate::client::NoClient;
use crate::gossip::{SwimBugs, BUG_ALIVE_OVERRIDES_SUSPECT, BUG_REFUTE_SAME_INCARNATION};
use crate::process::{ClientId, NodeId};
use crate::system::{Bug, Setup, System};

/// Gossip-only discovery as scenario files run it.
pub struct GossipDiscovery;

/// The bugs a gossip-only discovery run can inject: SWIM's, each with the scenario
/// whose checker catches it.
pub const BUGS: &[Bug] = &[Bug {
    name: BUG_ALIVE_OVERRIDES_SUSPECT,
    scenario: "gossip-discovery-slow-members",
    description: "an alive update clears a suspicion of the same incarnation, against \
                  SWIM's precedence rules (swim-rules)",
}];

impl System for GossipDiscovery {
    const NAME: &'static str = "gossip-discovery";
    type Process = GossipNode;
    type Client = NoClient;
    type Config = GossipDiscoveryConfig;
    type Workload = ();

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        setup.config.validate(setup.nodes)?;
        for name in &setup.bugs {
            if !BUGS.iter().any(|b| b.name == name) {
                let known: Vec<_> = BUGS.iter().map(|b| b.name).collect();
                return Err((
                    "bugs".into(),
                    format!("unknown bug {name:?}; known: {}", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn process(setup: &Setup<Self>, id: NodeId) -> GossipNode {
        let bugs = SwimBugs {
            refute_same_incarnation: setup.bug(BUG_REFUTE_SAME_INCARNATION),
            alive_overrides_suspect: setup.bug(BUG_ALIVE_OVERRIDES_SUSPECT),
        };
        GossipNode::new(&setup.config, bugs, setup.nodes, id)
    }

    fn clients(_setup: &Setup<Self>) -> usize {
        0
    }

    fn client(_setup: &Setup<Self>, _id: ClientId) -> NoClient {
        NoClient
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<GossipNode>>> {
        let instances = setup.config.discovery.instances;
        vec![
            Box::new(checks::SwimRules::new(setup.nodes)),
            Box::new(checks::DiscoveryFigures::new(
                0..instances,
                instances..setup.nodes,
            )),
        ]
    }

    fn bugs() -> &'static [Bug] {
        BUGS
    }

    fn sometimes() -> &'static [&'static str] {
        crate::gossip::Swim::sometimes()
    }
}
