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
            Some(ConsulNode::Agent(a, _)) => {
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

/// The gossip figures of a Consul run, read from the most advanced server's
/// catalog: `serfHealth` episodes and catalog writes. An episode is a node's
/// `serfHealth` turning critical; it is *false* when the node was up and not
/// paused at that moment (gossip failed a live node, consul#916's overloaded
/// agents), and *false about a healthy node* when the node was not slow either.
/// Catalog writes are the entries that changed the catalog (its index); a node
/// deregistered is one whose `serfHealth` left the catalog.
#[derive(Debug, Default)]
pub struct SerfFigures {
    /// The highest catalog index read.
    index: u64,
    /// Nodes whose `serfHealth` the catalog read last holds critical.
    critical: BTreeSet<String>,
    /// Nodes the catalog read last holds with a `serfHealth`.
    registered: BTreeSet<String>,
    episodes: u64,
    false_episodes: u64,
    false_healthy_episodes: u64,
    serf_writes: u64,
    deregistered: u64,
}

impl SerfFigures {
    /// A checker.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Checker<ConsulNode> for SerfFigures {
    fn name(&self) -> &'static str {
        "serf-figures"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(ConsulNode::Server(s)) = view.node(node) else {
            return Ok(());
        };
        let catalog = s.catalog();
        if catalog.index() <= self.index {
            return Ok(());
        }
        self.index = catalog.index();
        let mut critical = BTreeSet::new();
        let mut passing = BTreeSet::new();
        for id in 0..view.nodes.len() {
            let name = super::agent::node_name(id);
            match catalog.check(&name, super::health::SERF_CHECK_ID) {
                Some(c) if c.value.status == Status::Critical => {
                    critical.insert(name);
                }
                Some(_) => {
                    passing.insert(name);
                }
                None => {}
            }
        }
        for name in critical.difference(&self.critical) {
            self.episodes += 1;
            self.serf_writes += 1;
            let id = node_of(name).expect("a node's name");
            if view.node(id).is_some() && !view.is_paused(id) {
                self.false_episodes += 1;
                if !view.is_slow(id) {
                    self.false_healthy_episodes += 1;
                }
            }
        }
        let registered: BTreeSet<String> = critical.union(&passing).cloned().collect();
        self.deregistered += self.registered.difference(&registered).count() as u64;
        self.registered = registered;
        self.serf_writes += self
            .critical
            .iter()
            .filter(|n| passing.contains(*n))
            .count() as u64;
        self.critical = critical;
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("serf_critical_episodes_count".into(), self.episodes as f64);
        out.insert(
            "serf_false_critical_episodes_count".into(),
            self.false_episodes as f64,
        );
        out.insert(
            "serf_false_critical_healthy_count".into(),
            self.false_healthy_episodes as f64,
        );
        out.insert("serf_health_writes_count".into(), self.serf_writes as f64);
        out.insert("nodes_deregistered_count".into(), self.deregistered as f64);
        out.insert("catalog_writes_count".into(), self.index as f64);
    }
}
