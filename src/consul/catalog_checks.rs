//! The checkers that judge the catalog itself: its indexes ([`CatalogIndexes`]),
//! zombie services ([`NoZombie`]) and the catalog figures ([`CatalogFigures`]:
//! catalog writes, operator deregistrations undone, calls to long-dead
//! instances). Written from Consul's documentation, not from the catalog's code.
//!
//! **Indexes** (`catalog-index`; Consul's blocking-queries page and its
//! "Implementation details"). Within one run of a server (between two restarts):
//!
//! 1. its catalog's global index, each service's index row and each entry's
//!    modify index never go back (every change is stamped with the Raft index
//!    that made it, and Raft applies entries in index order);
//! 2. a health answer's index (`X-Consul-Index`, "the index of the last change
//!    to the result") is at least the modify index of every entry it lists;
//! 3. a blocking query the server answered because its index moved carries an
//!    index above the one the query was given ("the request will hang until a
//!    change in the system occurs, or the maximum timeout is reached");
//! 4. an answer with an index lower than the query's comes only at the end of
//!    its wait, and only from a server whose Raft has applied less than the
//!    query's index: the documented case of an index that goes backwards (a
//!    server behind the leader, or one that restarted and is replaying its log).
//!
//! A restarted server rebuilds its catalog from its snapshot and log, so its
//! indexes start low and climb again: its history is forgotten when it goes
//! down (seen at any step while it is down) and rules 1 to 4 start afresh. The
//! check does not compare one server's indexes with another's: a follower behind
//! the leader legitimately holds lower indexes, and callers reset their index
//! when it goes backwards, as the docs ask.
//!
//! **No zombie** (`no-zombie`; the anti-entropy page: the agent is
//! authoritative, and a sync removes from the catalog what the agent no longer
//! has). A service is *dropped* when its agent's local state loses it (reaped by
//! `deregister_critical_service_after`); it stops being dropped when the agent
//! holds it again (its agent restarted, or registered it again). While dropped:
//!
//! 1. once the agent's deregistration of it was acknowledged at index `i`, no
//!    server that has applied `i` lists it;
//! 2. it is gone from the most advanced server's catalog (the highest applied
//!    index among the servers up) within [`zombie_bound_ms`] of the first answer
//!    the agent got from a server after dropping it: a full anti-entropy sync is
//!    due within `ae_interval · (1 + scale)` (Consul's interval with its jitter
//!    scaled by cluster size, `agent/ae/ae.go`), plus the sync's own requests.
//!
//! Counting from the agent's first answer, not from the drop, leaves out the time
//! it could not reach the servers (a partition): only anti-entropy can deregister
//! it then, once they are reachable again.
//!
//! **Calls to long-dead instances** (`calls_to_long_dead_count`): calls that
//! started to an instance that had been down (crashed) or dropped by its agent
//! for longer than [`long_dead_bound_ms`]: a zombie bound plus a blocking
//! query's round trip and a call interval, the time a correct catalog needs to
//! let every caller know.

use std::collections::{BTreeMap, BTreeSet};

use super::agent::node_name;
use super::catalog::CatalogCommand;
use super::config::ConsulConfig;
use super::node::ConsulNode;
use super::server::ConsulServer;
use crate::check::{Checker, ClusterView, Metrics};
use crate::process::NodeId;

/// The cluster size up to which Consul does not spread its syncs out
/// (`agent/ae/ae.go`, `scaleThreshold`).
const SCALE_THRESHOLD_NODES: u64 = 128;

/// The checkers of this module for a run of `nodes` under `cfg`.
pub fn checkers(cfg: &ConsulConfig, nodes: usize) -> Vec<Box<dyn Checker<ConsulNode>>> {
    let servers = cfg.servers(nodes);
    let d = &cfg.discovery;
    let agents = servers..servers + d.instances;
    let callers = servers + d.instances..nodes;
    vec![
        Box::new(CatalogIndexes::new(servers)),
        Box::new(NoZombie::new(servers, zombie_bound_ms(cfg, nodes))),
        Box::new(CatalogFigures::new(
            agents,
            callers,
            long_dead_bound_ms(cfg, nodes),
        )),
    ]
}

/// The multiplier of the full-sync interval for `nodes` (the anti-entropy page:
/// "the interval is scaled by cluster size"): 1 up to 128 nodes, then one more
/// for each doubling.
fn sync_scale(nodes: usize) -> u64 {
    let mut scale = 1;
    let mut covered = SCALE_THRESHOLD_NODES;
    while (nodes as u64) > covered {
        covered *= 2;
        scale += 1;
    }
    scale
}

/// How long a service its agent dropped may stay in the most advanced server's
/// catalog once the agent reaches the servers, in ms: a full sync's interval with
/// its largest jitter, `ae_interval · (1 + scale)`, plus a request timeout per
/// server (the sync may try each) and a retry backoff.
pub fn zombie_bound_ms(cfg: &ConsulConfig, nodes: usize) -> u64 {
    let d = &cfg.discovery;
    d.ae_interval_ms * (1 + sync_scale(nodes))
        + cfg.servers(nodes) as u64 * d.request_timeout_ms
        + d.retry_backoff_ms
}

/// How long an instance may be dead or dropped before a call to it counts as a
/// call to a long-dead instance, in ms: [`zombie_bound_ms`], a blocking query's
/// round trip (`request_timeout_ms`) and a call interval.
pub fn long_dead_bound_ms(cfg: &ConsulConfig, nodes: usize) -> u64 {
    let d = &cfg.discovery;
    zombie_bound_ms(cfg, nodes) + d.request_timeout_ms + d.call_interval_ms
}

/// A catalog entry's key, for its modify index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EntryKey {
    Node(String),
    Service(String, String),
    Check(String, String),
}

/// What one run of a server has shown.
#[derive(Debug, Default)]
struct ServerIndexes {
    global: u64,
    services: BTreeMap<String, u64>,
    entries: BTreeMap<EntryKey, u64>,
}

/// Index monotonicity and blocking-query indexes (see the [module docs](self)).
#[derive(Debug)]
pub struct CatalogIndexes {
    servers: Vec<ServerIndexes>,
    answers_checked: u64,
    backwards_on_wait_end: u64,
}

impl CatalogIndexes {
    /// For servers `0..servers`.
    pub fn new(servers: usize) -> Self {
        CatalogIndexes {
            servers: (0..servers).map(|_| ServerIndexes::default()).collect(),
            answers_checked: 0,
            backwards_on_wait_end: 0,
        }
    }

    fn check_server(&mut self, node: NodeId, s: &ConsulServer) -> Result<(), String> {
        let seen = &mut self.servers[node];
        let c = s.catalog();
        if c.index() < seen.global {
            return Err(format!(
                "global-index-back: server n{node}'s catalog index went from {} to {}",
                seen.global,
                c.index()
            ));
        }
        // Every change to the catalog moves its index: an unmoved index leaves the
        // entries as they were checked last (most steps of a server write nothing).
        let moved = c.index() != seen.global || seen.entries.is_empty();
        seen.global = c.index();
        for (name, index) in c.service_indexes().filter(|_| moved) {
            let before = seen.services.entry(name.to_string()).or_insert(0);
            if index < *before {
                return Err(format!(
                    "service-index-back: server n{node}'s index of service {name:?} went from \
                     {before} to {index}"
                ));
            }
            *before = index;
        }
        let mut entries = Vec::new();
        for name in c.node_names().filter(|_| moved) {
            let Some(ns) = c.node_services(name) else {
                continue;
            };
            entries.push((EntryKey::Node(name.to_string()), ns.node.modify_index));
            for (id, e) in &ns.services {
                entries.push((
                    EntryKey::Service(name.to_string(), id.clone()),
                    e.modify_index,
                ));
            }
            for (id, e) in &ns.checks {
                entries.push((
                    EntryKey::Check(name.to_string(), id.clone()),
                    e.modify_index,
                ));
            }
        }
        for (key, index) in entries {
            if index > c.index() {
                return Err(format!(
                    "entry-past-index: server n{node} holds {key:?} modified at {index}, past \
                     its catalog index {}",
                    c.index()
                ));
            }
            let before = seen.entries.entry(key.clone()).or_insert(0);
            if index < *before {
                return Err(format!(
                    "modify-index-back: server n{node}'s {key:?} went from modify index \
                     {before} to {index}"
                ));
            }
            *before = index;
        }
        let applied = s.raft().applied_index();
        for served in s.served_in_step() {
            self.answers_checked += 1;
            for i in &served.instances {
                let listed = std::iter::once(("node", i.node.modify_index))
                    .chain(std::iter::once(("service", i.service.modify_index)))
                    .chain(i.checks.iter().map(|c| ("check", c.modify_index)));
                for (what, index) in listed {
                    if index > served.index {
                        return Err(format!(
                            "answer-index-below-entry: server n{node} answered n{} with index \
                             {} but a {what} of {} modified at {index}",
                            served.to, served.index, i.node.value.name
                        ));
                    }
                }
            }
            if served.min_index == 0 {
                continue;
            }
            if !served.wait_ended && served.index <= served.min_index {
                return Err(format!(
                    "blocking-returned-without-change: server n{node} answered n{}'s blocking \
                     query at index {} before its wait ran out, though it carried index {}",
                    served.to, served.index, served.min_index
                ));
            }
            if served.index < served.min_index {
                self.backwards_on_wait_end += 1;
                if applied >= served.min_index {
                    return Err(format!(
                        "blocking-index-back: server n{node} answered n{}'s blocking query with \
                         index {} below its {}, though it has applied index {applied}",
                        served.to, served.index, served.min_index
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Checker<ConsulNode> for CatalogIndexes {
    fn name(&self) -> &'static str {
        "catalog-index"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        // A server down now restarts with a rebuilt catalog: forget its history.
        for (id, seen) in self.servers.iter_mut().enumerate() {
            if view.node(id).is_none() {
                *seen = ServerIndexes::default();
            }
        }
        match view.node(node) {
            Some(ConsulNode::Server(s)) if node < self.servers.len() => self.check_server(node, s),
            _ => Ok(()),
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert(
            "blocking_answers_checked_count".into(),
            self.answers_checked as f64,
        );
        out.insert(
            "blocking_index_backwards_count".into(),
            self.backwards_on_wait_end as f64,
        );
    }
}

/// A service its agent dropped.
#[derive(Clone, Debug)]
struct Dropped {
    /// When the agent's local state lost it, in ms.
    since_ms: u64,
    /// When the agent first heard from a server after that, in ms.
    heard_ms: Option<u64>,
    /// The index its deregistration was acknowledged at.
    deregistered_at: Option<u64>,
}

/// No zombie services (see the [module docs](self)).
#[derive(Debug)]
pub struct NoZombie {
    servers: usize,
    bound_ms: u64,
    /// Each agent's services as of its last step.
    held: BTreeMap<NodeId, BTreeSet<String>>,
    /// Dropped services by (agent node, service id).
    dropped: BTreeMap<(NodeId, String), Dropped>,
    dropped_count: u64,
    longest_ms: u64,
}

impl NoZombie {
    /// For servers `0..servers`, with a bound of `bound_ms` ([`zombie_bound_ms`]).
    pub fn new(servers: usize, bound_ms: u64) -> Self {
        NoZombie {
            servers,
            bound_ms,
            held: BTreeMap::new(),
            dropped: BTreeMap::new(),
            dropped_count: 0,
            longest_ms: 0,
        }
    }

    fn lists(s: &ConsulServer, node: NodeId, service: &str) -> bool {
        s.catalog()
            .node_services(&node_name(node))
            .is_some_and(|ns| ns.services.contains_key(service))
    }
}

impl Checker<ConsulNode> for NoZombie {
    fn name(&self) -> &'static str {
        "no-zombie"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let now_ms = view.now.as_millis() as u64;
        match view.node(node) {
            Some(ConsulNode::Agent(a, _)) => {
                let now: BTreeSet<String> = a.local().services.keys().cloned().collect();
                let before = self.held.insert(node, now.clone()).unwrap_or_default();
                for service in before.difference(&now) {
                    self.dropped_count += 1;
                    self.dropped.insert(
                        (node, service.clone()),
                        Dropped {
                            since_ms: now_ms,
                            heard_ms: None,
                            deregistered_at: None,
                        },
                    );
                }
                self.dropped
                    .retain(|(n, service), _| *n != node || !now.contains(service));
                let name = a.node_name().to_string();
                for ((n, service), d) in self.dropped.iter_mut() {
                    if *n != node {
                        continue;
                    }
                    if a.heard_in_step() && d.heard_ms.is_none() {
                        d.heard_ms = Some(now_ms);
                    }
                    for (cmd, index) in a.acked_in_step() {
                        let gone = match cmd {
                            CatalogCommand::DeregisterService {
                                node: on,
                                service_id,
                            } => *on == name && service_id.as_str() == service.as_str(),
                            CatalogCommand::DeregisterNode { node: on } => *on == name,
                            _ => false,
                        };
                        if gone && d.deregistered_at.is_none() {
                            d.deregistered_at = Some(*index);
                        }
                    }
                }
            }
            Some(ConsulNode::Server(s)) => {
                let applied = s.raft().applied_index();
                for ((agent, service), d) in &self.dropped {
                    match d.deregistered_at {
                        Some(i) if applied >= i && Self::lists(s, *agent, service) => {
                            return Err(format!(
                                "zombie-reappeared: server n{node} has applied index {applied} \
                                 and lists n{agent}'s service {service:?}, whose deregistration \
                                 its agent had acknowledged at index {i}"
                            ));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        // The most advanced server up: what the cluster has committed.
        let leading = (0..self.servers)
            .filter_map(|id| view.node(id).and_then(ConsulNode::server))
            .max_by_key(|s| s.raft().applied_index());
        let Some(s) = leading else {
            return Ok(());
        };
        for ((agent, service), d) in &self.dropped {
            let Some(heard) = d.heard_ms else {
                continue;
            };
            if !Self::lists(s, *agent, service) {
                continue;
            }
            let stayed = now_ms.saturating_sub(heard);
            self.longest_ms = self.longest_ms.max(stayed);
            if stayed > self.bound_ms {
                return Err(format!(
                    "zombie: n{agent} dropped service {service:?} at {} ms and reached the \
                     servers at {heard} ms, yet the most advanced server (applied index {}) \
                     still lists it {stayed} ms later (bound: one full sync, {} ms)",
                    d.since_ms,
                    s.raft().applied_index(),
                    self.bound_ms
                ));
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("services_dropped_count".into(), self.dropped_count as f64);
        out.insert("zombie_bound_ms".into(), self.bound_ms as f64);
        out.insert("zombie_stay_max_ms".into(), self.longest_ms as f64);
    }
}

/// The catalog figures (see the [module docs](self)): anti-entropy's catalog
/// writes, operator deregistrations and how long until an agent undid them, and
/// calls to long-dead instances. Never fails a run.
#[derive(Debug)]
pub struct CatalogFigures {
    agents: std::ops::Range<NodeId>,
    callers: std::ops::Range<NodeId>,
    long_dead_ms: u64,
    /// Since when each instance has been down or without its service, in ms.
    dead_since_ms: BTreeMap<NodeId, u64>,
    writes: u64,
    /// Operator deregistrations not yet undone: (node, service) → when, in ms.
    operator_pending: BTreeMap<(String, String), u64>,
    operator_deregistrations: u64,
    undone: u64,
    undone_max_ms: u64,
    long_dead_calls: u64,
    last_ms: u64,
}

impl CatalogFigures {
    /// Agents on `agents`, callers on `callers`; a call counts as one to a long-dead
    /// instance past `long_dead_ms` ([`long_dead_bound_ms`]).
    pub fn new(
        agents: std::ops::Range<NodeId>,
        callers: std::ops::Range<NodeId>,
        long_dead_ms: u64,
    ) -> Self {
        CatalogFigures {
            agents,
            callers,
            long_dead_ms,
            dead_since_ms: BTreeMap::new(),
            writes: 0,
            operator_pending: BTreeMap::new(),
            operator_deregistrations: 0,
            undone: 0,
            undone_max_ms: 0,
            long_dead_calls: 0,
            last_ms: 0,
        }
    }
}

impl Checker<ConsulNode> for CatalogFigures {
    fn name(&self) -> &'static str {
        "catalog-figures"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let now_ms = view.now.as_millis() as u64;
        self.last_ms = now_ms;
        for id in self.agents.clone() {
            let alive = view
                .node(id)
                .and_then(ConsulNode::agent)
                .is_some_and(|a| a.has_service());
            match alive {
                true => {
                    self.dead_since_ms.remove(&id);
                }
                false => {
                    self.dead_since_ms.entry(id).or_insert(now_ms);
                }
            }
        }
        match view.node(node) {
            Some(ConsulNode::Agent(a, _)) => {
                self.writes += a.acked_in_step().len() as u64;
                for (cmd, _) in a.operator_acked_in_step() {
                    if let CatalogCommand::DeregisterService { node, service_id } = cmd {
                        self.operator_deregistrations += 1;
                        self.operator_pending
                            .insert((node.clone(), service_id.clone()), now_ms);
                    }
                }
                for (cmd, _) in a.acked_in_step() {
                    let CatalogCommand::Register(r) = cmd else {
                        continue;
                    };
                    let Some(service) = &r.service else {
                        continue;
                    };
                    let key = (r.node.name.clone(), service.id.clone());
                    if let Some(at) = self.operator_pending.remove(&key) {
                        self.undone += 1;
                        self.undone_max_ms = self.undone_max_ms.max(now_ms - at);
                    }
                }
            }
            Some(ConsulNode::Caller(c)) if self.callers.contains(&node) => {
                for (_, to) in c.started_in_step() {
                    let long_dead = self
                        .dead_since_ms
                        .get(to)
                        .is_some_and(|&since| now_ms - since > self.long_dead_ms);
                    if long_dead {
                        self.long_dead_calls += 1;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("catalog_writes_count".into(), self.writes as f64);
        let minutes = self.last_ms as f64 / 60_000.0;
        let per_min = match minutes > 0.0 {
            true => self.writes as f64 / minutes,
            false => 0.0,
        };
        out.insert("catalog_writes_per_min".into(), per_min);
        out.insert(
            "operator_deregistrations_count".into(),
            self.operator_deregistrations as f64,
        );
        out.insert(
            "operator_deregistrations_undone_count".into(),
            self.undone as f64,
        );
        out.insert(
            "operator_deregistration_undone_max_ms".into(),
            self.undone_max_ms as f64,
        );
        out.insert(
            "calls_to_long_dead_count".into(),
            self.long_dead_calls as f64,
        );
        out.insert("long_dead_bound_ms".into(), self.long_dead_ms as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_scale_follows_the_cluster_size() {
        assert_eq!(sync_scale(3), 1);
        assert_eq!(sync_scale(128), 1);
        assert_eq!(sync_scale(129), 2);
        assert_eq!(sync_scale(256), 2);
        assert_eq!(sync_scale(257), 3);
        assert_eq!(sync_scale(1024), 4);
    }

    #[test]
    fn bounds_follow_the_config() {
        let mut cfg = ConsulConfig::default();
        cfg.discovery.servers = 3;
        cfg.discovery.ae_interval_ms = 10_000;
        cfg.discovery.request_timeout_ms = 1_000;
        cfg.discovery.retry_backoff_ms = 100;
        cfg.discovery.call_interval_ms = 100;
        assert_eq!(zombie_bound_ms(&cfg, 8), 20_000 + 3_000 + 100);
        assert_eq!(long_dead_bound_ms(&cfg, 8), 23_100 + 1_000 + 100);
        assert_eq!(zombie_bound_ms(&cfg, 200), 30_000 + 3_000 + 100);
    }
}
