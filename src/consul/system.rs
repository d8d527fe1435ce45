//! Consul as a [`System`] for scenario files (`[cluster] protocol = "consul"`):
//! servers replicating the catalog on Raft ([`super::server::ConsulServer`]),
//! agents running their service's checks and syncing them into the catalog
//! ([`super::agent::Agent`]), and callers that watch `?passing` with blocking
//! queries and call the instances ([`super::caller::Caller`]).
//!
//! `[cluster.config]` is [`ConsulConfig`]: Raft's settings (whose `read_mode`, which
//! must be `read_index` or `lease`, is the path of `consistent` reads) and the
//! `discovery` sub-table. There is no workload: the agents and callers are the
//! load. Raft's invariants are checked after every step, and the `?passing` rule
//! and the discovery figures ([`super::checks`]) come with the roles. The bugs
//! `--bug` injects are [`BUGS`].
//!
//! Servers and agents form the LAN gossip pool ([`super::lan`], settings in the
//! `gossip` sub-table); the leader turns membership into `serfHealth`
//! ([`super::reconcile`]), so a crashed agent's node turns critical and leaves
//! `?passing` answers within the bound [`super::soundness`] derives.

use std::time::Duration;

use super::checks::{
    BlockingWakes, DiscoveryFigures, LeaderAfterHeal, PassingAnswers, SerfFigures,
};
use super::config::ConsulConfig;
use super::node::{ConsulBugs, ConsulNode};
use super::read_figures::ReadFigures;
use super::soundness::{PassingBounded, PassingBounds};
use crate::check::Checker;
use crate::process::{ClientId, NodeId};
use crate::raft::{invariants, ReadMode};
use crate::system::{Bug, Setup, System};
use crate::NoClient;

/// Consul servers, agents and callers.
pub struct Consul;

/// The bugs a Consul run can inject, each with the scenario that catches it.
pub const BUGS: &[Bug] = &[
    Bug {
        name: "passing-admits-warning",
        scenario: "consul-discovery-warning",
        description: "The servers' `?passing` filter drops only critical instances and keeps \
                      those with a warning check (what Consul's DNS interface does, \
                      consul#2452): a health answer lists an instance whose check is not \
                      passing (passing-answers).",
    },
    Bug {
        name: "blocking-ignores-check-updates",
        scenario: "consul-discovery-unhealthy-then-crash",
        description: "A held health query wakes only when the service's instances are \
                      registered or deregistered, not when one of their checks changes: \
                      callers learn of a failing instance only when their wait runs out \
                      (blocking-wakes).",
    },
    Bug {
        name: "serf-failed-not-reconciled",
        scenario: "consul-discovery-instance-crash",
        description: "The leader ignores failed members when it reconciles gossip into the \
                      catalog: a crashed node keeps `serfHealth` passing, so its service \
                      stays in `?passing` answers past the detection bound \
                      (passing-bounded).",
    },
    Bug {
        name: "passing-ignores-node-checks",
        scenario: "consul-discovery-instance-crash",
        description: "The servers' `?passing` filter looks only at the service's own checks, \
                      not at its node's: an instance whose node's `serfHealth` is critical \
                      stays listed (passing-answers).",
    },
    Bug {
        name: "anti-entropy-never-removes",
        scenario: "consul-zombie-after-reap",
        description: "The agent's anti-entropy never deletes catalog entries it does not \
                      hold locally: a service reaped while its agent could not reach the \
                      servers stays in the catalog for good (no-zombie).",
    },
    Bug {
        name: "blocking-query-returns-stale-index",
        scenario: "consul-blocking-stale-index",
        description: "A server answers a blocking query at once when the index it waits \
                      on is below the query's, as a server behind the leader would: the \
                      caller gets an older index and state (catalog-index).",
    },
];

impl Consul {
    /// The bugs a set-up switches on; panics on a name that is not one of
    /// [`System::bugs`] (validation refuses those first).
    pub fn bugs_of(setup: &Setup<Consul>) -> ConsulBugs {
        let mut bugs = ConsulBugs::default();
        for name in &setup.bugs {
            match name.as_str() {
                "passing-admits-warning" => bugs.server.passing_admits_warning = true,
                "blocking-ignores-check-updates" => {
                    bugs.server.blocking_ignores_check_updates = true
                }
                "serf-failed-not-reconciled" => bugs.server.serf_failed_not_reconciled = true,
                "passing-ignores-node-checks" => bugs.server.passing_ignores_node_checks = true,
                "anti-entropy-never-removes" => bugs.agent.anti_entropy_never_removes = true,
                "blocking-query-returns-stale-index" => {
                    bugs.server.blocking_returns_stale_index = true
                }
                _ => unreachable!("unknown bug {name:?} (validate rejects it)"),
            }
        }
        bugs
    }
}

impl System for Consul {
    const NAME: &'static str = "consul";
    type Process = ConsulNode;
    type Client = NoClient;
    type Config = ConsulConfig;
    type Workload = ();

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        let cfg = &setup.config;
        cfg.discovery_validate(setup.nodes)?;
        cfg.raft_for(setup.nodes).validate_for(setup.nodes)?;
        if matches!(
            cfg.raft.read_mode,
            ReadMode::LeaderLocal | ReadMode::Follower
        ) {
            return Err((
                "cluster.config.read_mode".into(),
                "`consistent` reads confirm leadership: read_index or lease".into(),
            ));
        }
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

    fn process(setup: &Setup<Self>, id: NodeId) -> ConsulNode {
        ConsulNode::new(&setup.config, Self::bugs_of(setup), setup.nodes, id)
    }

    fn clients(_setup: &Setup<Self>) -> usize {
        0
    }

    fn client(_setup: &Setup<Self>, _id: ClientId) -> NoClient {
        NoClient
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<ConsulNode>>> {
        let raft = setup.config.raft_for(setup.nodes);
        let leader_ms = setup.leader_ms.unwrap_or(10 * raft.election_timeout_ms_max);
        // Raft's safety invariants. Its liveness check wants a write committed after
        // the heal, and a Consul cluster at rest writes nothing (agents in sync send
        // nothing): [`LeaderAfterHeal`] asks only for a leader.
        let mut checkers: Vec<Box<dyn Checker<ConsulNode>>> =
            invariants::all(setup.nodes, &raft, Duration::from_millis(leader_ms))
                .into_iter()
                .filter(|c| c.name() != "raft-liveness")
                .collect();
        checkers.push(Box::new(LeaderAfterHeal::new(
            setup.config.servers(setup.nodes),
        )));
        let d = &setup.config.discovery;
        checkers.push(Box::new(PassingAnswers::new()));
        checkers.push(Box::new(BlockingWakes::new()));
        checkers.extend(super::catalog_checks::checkers(&setup.config, setup.nodes));
        if d.instances > 0 {
            let servers = setup.config.servers(setup.nodes);
            let instances = servers..servers + d.instances;
            let callers = servers + d.instances..setup.nodes;
            checkers.push(Box::new(PassingBounded::new(
                PassingBounds::of(&setup.config, setup.nodes),
                &d.service,
                0..servers,
                instances.clone(),
                callers.clone(),
            )));
            checkers.push(Box::new(DiscoveryFigures::new(
                &d.service, instances, callers,
            )));
        }
        checkers.push(Box::new(SerfFigures::new()));
        checkers.push(Box::new(ReadFigures::new(&d.service)));
        checkers
    }

    fn bugs() -> &'static [Bug] {
        BUGS
    }

    fn sometimes() -> &'static [&'static str] {
        // Raft's and the LAN pool's (SWIM's).
        &[
            "leader-stepped-down-with-uncommitted-entries",
            "lease-read-refused",
            "follower-log-truncated",
            "snapshot-installed",
            "leader-changed",
            "suspicion-refuted",
            "suspicion-confirmed",
            "member-declared-dead",
        ]
    }

    fn leader_bound_ms(setup: &Setup<Self>) -> Option<u64> {
        Some(10 * setup.config.raft.election_timeout_ms_max)
    }
}
