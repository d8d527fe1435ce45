//! What a discovery run's checker sees, turned into a [`DiscoveryLog`]: nodes going
//! down and coming back, instances turning unhealthy, registrations, callers'
//! endpoint sets and their calls. A protocol's checker (etcd's, Consul's) reads its
//! nodes after every step and tells the recorder in these terms, at true time; the
//! figures are the log's.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use super::calls::{CallDone, Outcome};
use super::metrics::{CallOutcome, DiscoveryLog, DownKind};
use crate::check::Metrics;
use crate::process::NodeId;

/// Most call attempts awaiting their end (callers bound their own).
const STARTED_MAX: usize = 1 << 16;

/// The discovery log of a run whose instances are nodes `instances` and callers
/// nodes `callers`.
#[derive(Clone, Debug)]
pub struct Recorder {
    log: DiscoveryLog,
    instances: Range<NodeId>,
    callers: Range<NodeId>,
    /// Nodes seen up.
    up: BTreeSet<NodeId>,
    /// Callers that have started once.
    booted: BTreeSet<NodeId>,
    /// Instances with a registration.
    listed: BTreeSet<NodeId>,
    /// Instances down (crashed or unhealthy) since the log said so.
    downed: BTreeSet<NodeId>,
    unhealthy: BTreeSet<NodeId>,
    /// (caller, attempt) → (instance, start).
    started: BTreeMap<(NodeId, u64), (NodeId, Duration)>,
    no_endpoint: u64,
    last_now: Duration,
}

impl Recorder {
    /// A recorder for these roles.
    pub fn new(instances: Range<NodeId>, callers: Range<NodeId>) -> Self {
        Recorder {
            log: DiscoveryLog::new(),
            instances,
            callers,
            up: BTreeSet::new(),
            booted: BTreeSet::new(),
            listed: BTreeSet::new(),
            downed: BTreeSet::new(),
            unhealthy: BTreeSet::new(),
            started: BTreeMap::new(),
            no_endpoint: 0,
            last_now: Duration::ZERO,
        }
    }

    /// Instances with a registration now.
    pub fn listed(&self) -> &BTreeSet<NodeId> {
        &self.listed
    }

    /// `node` is down at `now` (a crash; other roles' nodes are ignored). Only a
    /// listed instance has something for callers to drop.
    pub fn down(&mut self, now: Duration, node: NodeId) {
        self.last_now = now;
        if !self.up.remove(&node) {
            return;
        }
        if self.callers.contains(&node) {
            self.started.retain(|&(c, _), _| c != node);
            self.log.caller_down(now, node);
        } else if self.instances.contains(&node)
            && (self.listed.contains(&node) || self.downed.contains(&node))
        {
            self.downed.insert(node);
            self.log.instance_down(now, node, DownKind::Crashed);
        }
    }

    /// A member (or another node without a discovery role) stepped at `now`.
    pub fn member(&mut self, now: Duration, node: NodeId) {
        self.last_now = now;
        self.up.insert(node);
    }

    /// `instance` was registered at `now`.
    pub fn registered(&mut self, now: Duration, instance: NodeId) {
        self.listed.insert(instance);
        self.log.registered(now, instance);
    }

    /// `instance`'s registration was removed at `now`: by its owner (`expired`
    /// false) or because its lease or TTL ran out.
    pub fn unregistered(&mut self, now: Duration, instance: NodeId, expired: bool) {
        self.listed.remove(&instance);
        match expired {
            true => self.log.registration_expired(now, instance),
            false => self.log.deregistered(now, instance),
        }
    }

    /// `instance` stepped at `now`, answering calls (`healthy`) or not.
    pub fn instance(&mut self, now: Duration, instance: NodeId, healthy: bool) {
        self.last_now = now;
        self.up.insert(instance);
        if !healthy && self.unhealthy.insert(instance) && self.listed.contains(&instance) {
            self.downed.insert(instance);
            self.log.instance_down(now, instance, DownKind::Unhealthy);
        }
        if healthy {
            self.unhealthy.remove(&instance);
            if self.downed.remove(&instance) {
                self.log.instance_up(now, instance);
            }
        }
    }

    /// `caller` stepped at `now`: its endpoint set (and whether it changed), the
    /// attempts it sent and those that ended.
    pub fn caller(
        &mut self,
        now: Duration,
        caller: NodeId,
        endpoints: &BTreeSet<NodeId>,
        changed: bool,
        started: &[(u64, NodeId)],
        done: &[CallDone],
    ) {
        self.last_now = now;
        if self.up.insert(caller) {
            if !self.booted.insert(caller) {
                self.log.caller_up(now, caller);
            }
            self.log.endpoints(now, caller, endpoints);
        } else if changed {
            self.log.endpoints(now, caller, endpoints);
        }
        for &(attempt, instance) in started {
            if self.started.len() >= STARTED_MAX {
                self.started.pop_first();
            }
            self.started.insert((caller, attempt), (instance, now));
        }
        for d in done {
            let Some((instance, start)) = self.started.remove(&(caller, d.attempt)) else {
                self.no_endpoint += u64::from(d.outcome == Outcome::NoEndpoint);
                continue;
            };
            let outcome = match d.outcome {
                Outcome::Ok => CallOutcome::Ok,
                Outcome::Error => CallOutcome::Error,
                Outcome::Timeout | Outcome::NoEndpoint => CallOutcome::Timeout,
            };
            self.log.call(caller, instance, start, now, outcome);
        }
    }

    /// The figures (see [`DiscoveryLog::write_figures`]) and `calls_without_endpoint`.
    pub fn figures(&self, out: &mut Metrics) {
        self.log.write_figures(self.last_now, out);
        out.insert("calls_without_endpoint".into(), self.no_endpoint as f64);
    }
}
