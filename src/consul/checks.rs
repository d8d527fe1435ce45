//! The checkers of a Consul run beyond Raft's: the `?passing` rule on every health
//! answer a server sends ([`PassingAnswers`]) and the discovery figures
//! ([`DiscoveryFigures`], computed by [`crate::discovery::metrics`]).
//!
//! **`?passing`** (Consul's health API: "return only nodes with all checks in the
//! `passing` state"; `warning` is not passing, and node-level checks count for
//! every service on the node). Written from that rule, not from the catalog's code:
//!
//! 1. every instance a `?passing` answer lists carries only `passing` checks;
//! 2. an answer a server made from its own state (`default`, `stale`, and blocking
//!    queries in those modes) lists no instance that the server's catalog holds,
//!    at that moment, with a check that is not `passing`: its node's checks and
//!    its own, read entry by entry.
//!
//! A server's state does not change between a local answer and the end of the
//! step that made it (answers from local state are made last, after Raft's
//! input), so rule 2 compares the answer with the very state it came from. A
//! `consistent` answer is made inside a Raft step, so only rule 1 judges it.

use std::collections::BTreeSet;

use super::agent::node_of;
use super::health::Status;
use super::node::ConsulNode;
use crate::check::{Checker, ClusterView, Metrics};
use crate::discovery::recorder::Recorder;
use crate::process::NodeId;

/// The `?passing` rule on every health answer (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct PassingAnswers {
    answers: u64,
    listed: u64,
}

impl PassingAnswers {
    /// A checker.
    pub fn new() -> Self {
        Self::default()
    }
}

fn status_name(s: Status) -> &'static str {
    s.as_str()
}

impl Checker<ConsulNode> for PassingAnswers {
    fn name(&self) -> &'static str {
        "passing-answers"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(ConsulNode::Server(s)) = view.node(node) else {
            return Ok(());
        };
        for served in s.served_in_step() {
            self.answers += 1;
            for i in &served.instances {
                self.listed += 1;
                let name = &i.node.value.name;
                let sid = &i.service.value.id;
                if let Some(c) = i.checks.iter().find(|c| c.value.status != Status::Passing) {
                    return Err(format!(
                        "passing-lists-non-passing: server n{node} answered `?passing` to n{} \
                         with {name}/{sid}, whose check {:?} it carries as {}",
                        served.to,
                        c.value.id,
                        status_name(c.value.status)
                    ));
                }
                if !served.local {
                    continue;
                }
                let Some(stored) = s.catalog().node_services(name) else {
                    return Err(format!(
                        "passing-lists-unknown: server n{node} answered `?passing` to n{} with \
                         {name}/{sid}, a node its catalog does not hold",
                        served.to
                    ));
                };
                for c in stored.checks.values() {
                    let covers = match &c.value.service_id {
                        None => true,
                        Some(s) => s == sid,
                    };
                    if covers && c.value.status != Status::Passing {
                        return Err(format!(
                            "passing-lists-non-passing: server n{node} answered `?passing` to \
                             n{} with {name}/{sid}, while its catalog holds check {:?} as {} \
                             (index {})",
                            served.to,
                            c.value.id,
                            status_name(c.value.status),
                            c.modify_index
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("passing_answers_count".into(), self.answers as f64);
        out.insert("passing_instances_listed_count".into(), self.listed as f64);
    }
}

/// Blocking queries (Consul's docs: the request "hangs until a change or
/// timeout"; the health endpoint's index is its service's): after every step of a
/// server, no health query it still holds waits on an index its catalog has
/// already moved past.
#[derive(Debug, Default)]
pub struct BlockingWakes {
    held_max: usize,
}

impl BlockingWakes {
    /// A checker.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Checker<ConsulNode> for BlockingWakes {
    fn name(&self) -> &'static str {
        "blocking-wakes"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(ConsulNode::Server(s)) = view.node(node) else {
            return Ok(());
        };
        self.held_max = self.held_max.max(s.blocked());
        for q in s.held() {
            let Some(service) = &q.service else {
                continue;
            };
            let index = s.catalog().health_index(service);
            if index > q.min_index {
                return Err(format!(
                    "held-past-a-change: server n{node} still holds n{}'s query for {service:?} \
                     at index {}, though the service's index is {index}",
                    q.from, q.min_index
                ));
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("blocked_queries_max".into(), self.held_max as f64);
    }
}

/// Liveness after the heal: some server up leads, and a majority of the servers
/// are up in its term (Raft's own liveness check also wants a fresh write
/// committed, which a Consul cluster at rest never makes).
#[derive(Debug)]
pub struct LeaderAfterHeal {
    servers: usize,
}

impl LeaderAfterHeal {
    /// For servers `0..servers`.
    pub fn new(servers: usize) -> Self {
        LeaderAfterHeal { servers }
    }
}

impl Checker<ConsulNode> for LeaderAfterHeal {
    fn name(&self) -> &'static str {
        "consul-leader"
    }

    fn after_step(&mut self, _: &ClusterView<'_, ConsulNode>, _: NodeId) -> Result<(), String> {
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, ConsulNode>) -> Result<(), String> {
        let rafts: Vec<_> = (0..self.servers)
            .filter_map(|n| view.node(n).and_then(ConsulNode::server))
            .map(|s| s.raft())
            .collect();
        let Some(leader) = rafts
            .iter()
            .filter(|r| r.is_leader())
            .max_by_key(|r| r.term())
        else {
            return Err("no server leads".into());
        };
        let term = leader.term();
        let with = rafts.iter().filter(|r| r.term() == term).count();
        match with > self.servers / 2 {
            true => Ok(()),
            false => Err(format!(
                "{with} of {} servers are in the leader's term {term}",
                self.servers
            )),
        }
    }
}

/// The discovery figures of a Consul run: removal time of an instance that went
/// down (crashed or unhealthy) from the callers' sets, failed calls per 1,000,
/// calls to dead instances ([`Recorder`]), services reaped. An instance is
/// registered while the most advanced server's catalog lists its service, passing
/// or not.
pub struct DiscoveryFigures {
    recorder: Recorder,
    service: String,
    /// The highest catalog index read.
    index: u64,
    /// Services the agents reaped (`deregister_critical_service_after`).
    reaped: u64,
}

impl DiscoveryFigures {
    /// The figures of `service`, offered by nodes `instances` and called by
    /// `callers`.
    pub fn new(
        service: &str,
        instances: std::ops::Range<NodeId>,
        callers: std::ops::Range<NodeId>,
    ) -> Self {
        DiscoveryFigures {
            recorder: Recorder::new(instances, callers),
            service: service.to_string(),
            index: 0,
            reaped: 0,
        }
    }
}

impl Checker<ConsulNode> for DiscoveryFigures {
    fn name(&self) -> &'static str {
        "discovery"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let now = view.now;
        match view.node(node) {
            None => self.recorder.down(now, node),
            Some(ConsulNode::Server(s)) => {
                self.recorder.member(now, node);
                let catalog = s.catalog();
                if catalog.index() > self.index {
                    self.index = catalog.index();
                    let now_listed: BTreeSet<NodeId> = catalog
                        .service_health(&self.service, false)
                        .iter()
                        .filter_map(|i| node_of(&i.node.value.name))
                        .collect();
                    let listed = self.recorder.listed().clone();
                    for &id in now_listed.difference(&listed) {
                        self.recorder.registered(now, id);
                    }
                    for &id in listed.difference(&now_listed) {
                        self.recorder.unregistered(now, id, false);
                    }
                }
            }
            Some(ConsulNode::Agent(a)) => {
                self.reaped += a.reaped_in_step().len() as u64;
                self.recorder.instance(now, node, a.answer() == Some(true));
            }
            Some(ConsulNode::Caller(c)) => self.recorder.caller(
                now,
                node,
                c.endpoints(),
                c.changed_in_step(),
                c.started_in_step(),
                c.calls_in_step(),
            ),
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        self.recorder.figures(out);
        out.insert("services_reaped_count".into(), self.reaped as f64);
    }
}
