//! Bounded `?passing`: how long a `?passing` answer may keep listing an instance
//! that is gone, and how soon after the faults heal a passing instance is listed
//! again ([`PassingBounded`]).
//!
//! The rules come from Consul's documentation, not from the catalog's code:
//!
//! - health checks (`/docs/services/usage/checks`): an interval check runs every
//!   `interval`, a probe fails after `timeout`, and the status turns critical after
//!   `failures_before_critical` consecutive failures (the first one when 0); a TTL
//!   check turns critical when no update arrives within its TTL;
//! - anti-entropy (`/docs/architecture/anti-entropy`): the agent syncs a status
//!   change to the servers at once;
//! - gossip (`/docs/architecture/gossip`, Serf and memberlist): a node that stops
//!   answering probes is suspected and, when nobody refutes it within the suspicion
//!   timeout, declared failed; the leader then marks its `serfHealth` critical, and
//!   `?passing` drops every instance with a critical check, node checks included
//!   (`/api-docs/health`).
//!
//! **Bounds** (in ms, from the run's config):
//!
//! - *check*: `check_ms + sync_ms + replication_ms`, where `check_ms` is the
//!   quickest of the configured checks to turn critical: a probe's
//!   `probe_interval_ms × max(1, failures_before_critical) + probe_timeout_ms`, a
//!   TTL check's `check_ttl_ms`; `sync_ms = 3 × request_timeout_ms +
//!   retry_backoff_ms` (the sync's read and write, one of them retried on another
//!   server); `replication_ms = 10 × election_timeout_ms_max` (Raft commits once a
//!   leader is there; the run's own leader bound);
//! - *node down*: `detection_ms + replication_ms`, where `detection_ms` is the
//!   leader's own detection under the pool's settings and size `n` (servers and
//!   agents): its round-robin probing reaches the node within `2n − 1` probe
//!   periods and fails it by the end of the next (SWIM §4.3,
//!   [`crate::gossip::SwimConfig::first_suspicion_bound`]: `2n × probe_interval_ms`),
//!   and its suspicion runs out within the suspicion timeout's maximum
//!   ([`crate::gossip::SwimConfig::suspicion_max`]: Lifeguard's
//!   `suspicion_max_timeout_mult ×` the minimum `suspicion_mult × max(1, log10 n) ×
//!   probe_interval_ms`, or the minimum without Lifeguard); rumours from other
//!   members only make it sooner. The leader reconciles a member the step its view
//!   of it changes, and a new leader reconciles every member once its term's
//!   first entry is applied, within `replication_ms`. The leader is assumed
//!   healthy (its probe periods are not stretched by Lifeguard's multiplier);
//! - *recovery* (liveness): `convergence_ms + check_ms + sync_ms + replication_ms`,
//!   where `convergence_ms` is SWIM's convergence bound after a heal
//!   ([`crate::gossip::SwimConfig::convergence_bound`]: the members reconnect at
//!   push-pull and the wrongly failed refute).
//!
//! - *majority back*: while fewer than a majority of the servers are up, nothing
//!   is written (Raft, `/docs/architecture/consensus`); once a majority is back, a
//!   bound starts no earlier than that moment, and a node-down bound no earlier
//!   than `convergence_ms` after it, since restarted servers learn who failed
//!   only when gossip reaches them (they rejoin through their seeds and hear the
//!   rest at push-pull).
//!
//! **Rules.** An instance is *gone* while its node is down (crashed or paused) or
//! its service is unhealthy or hung, since the moment that began (or the majority's
//! return, above). Then:
//!
//! 1. a `default` or `consistent` `?passing` answer lists no instance gone for
//!    longer than its bound (the node bound, or the check bound);
//! 2. a `stale` answer may: it reports how long past the bound it still listed one
//!    (`stale_overdue_max_ms`) instead of failing;
//! 3. liveness: once the faults heal, every instance that is up, healthy (not flapping) and still
//!    offers the service is listed as passing (all its checks and its node's
//!    `passing`) by every server that is up, hence by every read mode, and is in
//!    every caller's cache, within the recovery bound of the heal.

use std::time::Duration;

use super::agent::node_of;
use super::config::{Consistency, ConsulConfig};
use super::health::Status;
use super::node::ConsulNode;
use crate::check::{Checker, ClusterView, Metrics};
use crate::etcd::instance::Health;
use crate::process::NodeId;

/// The bounds of a run, in ms (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassingBounds {
    /// A check turned critical → gone from answers (`None`: no check configured).
    pub check_ms: Option<u64>,
    /// A node down → gone from answers.
    pub down_ms: u64,
    /// The heal → every passing instance listed and cached.
    pub recovery_ms: u64,
    /// Gossip's convergence after a heal: how long restarted servers may take to
    /// learn which members failed.
    pub convergence_ms: u64,
}

impl PassingBounds {
    /// The bounds of `cfg` in a cluster of `nodes`.
    pub fn of(cfg: &ConsulConfig, nodes: usize) -> PassingBounds {
        let d = &cfg.discovery;
        let raft = cfg.raft_for(nodes);
        let replication_ms = 10 * raft.election_timeout_ms_max;
        let sync_ms = 3 * d.request_timeout_ms + d.retry_backoff_ms;
        let probe = d
            .probe_interval_ms
            .map(|i| i * u64::from(d.failures_before_critical.max(1)) + d.probe_timeout_ms);
        let check = match (probe, d.check_ttl_ms) {
            (Some(p), Some(t)) => Some(p.min(t)),
            (p, t) => p.or(t),
        };
        let members = cfg.servers(nodes) + d.instances;
        let swim = cfg.gossip.swim_for(
            cfg.servers(nodes),
            members,
            std::slice::from_ref(&d.service),
        );
        let ms = |t: Duration| t.as_millis() as u64;
        let detection_ms = ms(swim.first_suspicion_bound(members) + swim.suspicion_max(members));
        let convergence_ms = ms(swim.convergence_bound(members));
        let check_ms = check.map(|c| c + sync_ms + replication_ms);
        PassingBounds {
            check_ms,
            down_ms: detection_ms + replication_ms,
            recovery_ms: convergence_ms + check.unwrap_or(0) + sync_ms + replication_ms,
            convergence_ms,
        }
    }
}

/// Why an instance is gone, and since when.
#[derive(Clone, Copy, Debug, Default)]
struct Gone {
    down_since: Option<Duration>,
    unhealthy_since: Option<Duration>,
}

/// The bounded `?passing` rules (see the [module docs](self)).
pub struct PassingBounded {
    bounds: PassingBounds,
    instances: std::ops::Range<NodeId>,
    servers: std::ops::Range<NodeId>,
    callers: std::ops::Range<NodeId>,
    service: String,
    gone: Vec<Gone>,
    answers_judged: u64,
    stale_overdue_max_ms: u64,
    stale_overdue_answers: u64,
    heal_at: Option<Duration>,
    recovered_ms: Option<u64>,
    /// Whether a majority of the servers is up (`None`: not yet, at boot), and
    /// when it last came back after being lost (`None`: never lost).
    majority_up: Option<bool>,
    majority_back_at: Option<Duration>,
}

impl PassingBounded {
    /// For `service` on nodes `instances`, served by `servers`, cached by
    /// `callers`, under `bounds`.
    pub fn new(
        bounds: PassingBounds,
        service: &str,
        servers: std::ops::Range<NodeId>,
        instances: std::ops::Range<NodeId>,
        callers: std::ops::Range<NodeId>,
    ) -> Self {
        PassingBounded {
            bounds,
            gone: vec![Gone::default(); instances.len()],
            instances,
            servers,
            callers,
            service: service.to_string(),
            answers_judged: 0,
            stale_overdue_max_ms: 0,
            stale_overdue_answers: 0,
            heal_at: None,
            recovered_ms: None,
            majority_up: None,
            majority_back_at: None,
        }
    }

    /// Notes which instances are down or unhealthy now.
    fn observe(&mut self, view: &ClusterView<'_, ConsulNode>) {
        let now = view.now;
        let up = self
            .servers
            .clone()
            .filter(|&s| view.node(s).and_then(ConsulNode::server).is_some() && !view.is_paused(s))
            .count();
        let majority_up = up > self.servers.len() / 2;
        if self.majority_up == Some(false) && majority_up {
            self.majority_back_at = Some(now);
        }
        // Until a majority first forms (at boot) there is nothing to lose.
        if majority_up || self.majority_up.is_some() {
            self.majority_up = Some(majority_up);
        }
        for (k, id) in self.instances.clone().enumerate() {
            let g = &mut self.gone[k];
            let agent = view.node(id).and_then(ConsulNode::agent);
            let down = agent.is_none() || view.is_paused(id);
            let unhealthy = agent.is_some_and(|a| a.health() != Health::Healthy);
            g.down_since = match down {
                true => g.down_since.or(Some(now)),
                false => None,
            };
            g.unhealthy_since = match unhealthy {
                true => g.unhealthy_since.or(Some(now)),
                false => None,
            };
        }
    }

    /// How far past its bound instance `id` is gone at `now`, in ms, if it is.
    fn overdue_ms(&self, id: NodeId, now: Duration) -> Option<(u64, &'static str)> {
        let k = id.checked_sub(self.instances.start)?;
        let g = self.gone.get(k)?;
        let back = self.majority_back_at;
        let past = |since: Option<Duration>, bound: Option<u64>| {
            let since = since?.max(back.unwrap_or_default());
            let age = now.saturating_sub(since).as_millis() as u64;
            let bound = bound?;
            (age > bound).then(|| age - bound)
        };
        let learnt = back.map(|b| b + Duration::from_millis(self.bounds.convergence_ms));
        past(
            g.down_since.map(|d| d.max(learnt.unwrap_or_default())),
            Some(self.bounds.down_ms),
        )
        .map(|o| (o, "its node is down"))
        .or_else(|| past(g.unhealthy_since, self.bounds.check_ms).map(|o| (o, "its service fails")))
    }

    /// Whether server `s`'s catalog lists instance `id` with every check of the
    /// instance and of its node passing.
    fn listed_passing(catalog: &super::catalog::Catalog, id: NodeId, service: &str) -> bool {
        let Some(node) = catalog.node_services(&super::agent::node_name(id)) else {
            return false;
        };
        let Some((sid, _)) = node.services.iter().find(|(_, s)| s.value.name == service) else {
            return false;
        };
        node.checks.values().all(|c| {
            let covers = c.value.service_id.as_ref().is_none_or(|s| s == sid);
            !covers || c.value.status == Status::Passing
        })
    }
}

impl Checker<ConsulNode> for PassingBounded {
    fn name(&self) -> &'static str {
        "passing-bounded"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        self.observe(view);
        let Some(ConsulNode::Server(s)) = view.node(node) else {
            return Ok(());
        };
        for served in s.served_in_step() {
            self.answers_judged += 1;
            for i in &served.instances {
                let Some(id) = node_of(&i.node.value.name) else {
                    continue;
                };
                let Some((overdue, why)) = self.overdue_ms(id, view.now) else {
                    continue;
                };
                if served.mode == Consistency::Stale {
                    self.stale_overdue_answers += 1;
                    self.stale_overdue_max_ms = self.stale_overdue_max_ms.max(overdue);
                    continue;
                }
                let bound = match why {
                    "its node is down" => self.bounds.down_ms,
                    _ => self.bounds.check_ms.unwrap_or(0),
                };
                return Err(format!(
                    "passing-past-bound: server n{node} answered a {:?} `?passing` to n{} with \
                     n{id}, though {why} for {} ms past its bound of {bound} ms",
                    served.mode, served.to, overdue
                ));
            }
        }
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, ConsulNode>) -> Result<(), String> {
        self.observe(view);
        let now = view.now;
        let heal_at = *self.heal_at.get_or_insert(now);
        if let Some(took) = self.recovered_ms {
            return match took <= self.bounds.recovery_ms {
                true => Ok(()),
                false => Err(format!(
                    "passing instances listed {took} ms after the heal, past the bound of {} ms",
                    self.bounds.recovery_ms
                )),
            };
        }
        for id in self.instances.clone() {
            let Some(agent) = view.node(id).and_then(ConsulNode::agent) else {
                continue;
            };
            // A flapping service is never healthy for long: nothing owes it a listing.
            let steady = agent.health() == Health::Healthy && !agent.flaps();
            if view.is_paused(id) || !steady || !agent.has_service() {
                continue;
            }
            for s in self.servers.clone() {
                let Some(server) = view.node(s).and_then(ConsulNode::server) else {
                    continue;
                };
                if view.is_paused(s) {
                    continue;
                }
                if !Self::listed_passing(server.catalog(), id, &self.service) {
                    return Err(format!(
                        "server n{s}'s catalog does not list healthy n{id} as passing"
                    ));
                }
            }
            for c in self.callers.clone() {
                let Some(caller) = view.node(c).and_then(ConsulNode::caller) else {
                    continue;
                };
                if view.is_paused(c) {
                    continue;
                }
                if !caller.endpoints().contains(&id) {
                    return Err(format!("caller n{c} has not cached healthy n{id}"));
                }
            }
        }
        let took = now.saturating_sub(heal_at).as_millis() as u64;
        self.recovered_ms = Some(took);
        match took <= self.bounds.recovery_ms {
            true => Ok(()),
            false => Err(format!(
                "passing instances listed {took} ms after the heal, past the bound of {} ms",
                self.bounds.recovery_ms
            )),
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("passing_bound_down_ms".into(), self.bounds.down_ms as f64);
        if let Some(c) = self.bounds.check_ms {
            out.insert("passing_bound_check_ms".into(), c as f64);
        }
        out.insert(
            "passing_bound_recovery_ms".into(),
            self.bounds.recovery_ms as f64,
        );
        out.insert(
            "stale_overdue_answers_count".into(),
            self.stale_overdue_answers as f64,
        );
        out.insert(
            "stale_overdue_max_ms".into(),
            self.stale_overdue_max_ms as f64,
        );
        if let Some(r) = self.recovered_ms {
            out.insert("passing_recovery_ms".into(), r as f64);
        }
    }
}
