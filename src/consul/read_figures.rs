//! Figures of what the callers read, for the lessons of the read scenarios (no
//! rule is checked here; every step passes):
//!
//! - **Wake-ups** (consul#1244): a watcher's blocking query that returns with a
//!   moved index was woken by a write. The wake-up is *idle* when its answer is
//!   the watcher's previous one (the same nodes, no entry modified since): a
//!   write elsewhere in the catalog moved the index it waited on (`wake_on =
//!   "global"`), or a write to the service that left its `?passing` answer as it
//!   was. Unrelated writes are the catalog writes the agents had acknowledged
//!   that concern another service only (the flapping job).
//! - **Calls** as the callers saw them end, attempt by attempt: answered ok,
//!   failed (an error or no answer in time), or not made for want of an instance
//!   to call (an empty or expired cache), which the discovery figures'
//!   `calls_count` leaves out.
//! - **Stale answers** (Consul's consistency modes: "`stale` ... there is no upper
//!   limit on this staleness"; consul#1888): a health answer a server sends while
//!   its own index for the service is below the highest any server has applied
//!   (applied entries are committed, so that is the catalog the majority holds).
//!   Its lag is how long ago a server first applied the first change it misses,
//!   in ms, and how many service index steps it misses.

use std::collections::BTreeMap;
use std::time::Duration;

use super::catalog::{CatalogCommand, Registration};
use super::node::ConsulNode;
use crate::check::{Checker, ClusterView, Metrics};
use crate::discovery::calls::Outcome;
use crate::process::NodeId;

/// The bound on the service index values remembered with the time they first
/// appeared (older ones are dropped: a lag beyond them is measured from the
/// oldest kept).
const INDEX_TIMES_MAX: usize = 4_096;

/// See the [module docs](self).
#[derive(Debug)]
pub struct ReadFigures {
    service: String,
    /// Each server's index for the service now (a crashed one's as it last
    /// stood: it recovers it from disk).
    server_index: BTreeMap<NodeId, u64>,
    /// The service index values the servers reached, each with when a server
    /// first applied it, up to the highest one now.
    first_applied: BTreeMap<u64, Duration>,
    wakes: u64,
    idle_wakes: u64,
    unrelated_writes: u64,
    answers: u64,
    stale_answers: u64,
    lag_max: Duration,
    index_lag_max: u64,
    registry_errors: u64,
    calls_ok: u64,
    calls_failed: u64,
    calls_no_instance: u64,
}

impl ReadFigures {
    /// Figures of the callers of `service`.
    pub fn new(service: &str) -> Self {
        ReadFigures {
            service: service.to_string(),
            server_index: BTreeMap::new(),
            first_applied: BTreeMap::new(),
            wakes: 0,
            idle_wakes: 0,
            unrelated_writes: 0,
            answers: 0,
            stale_answers: 0,
            lag_max: Duration::ZERO,
            index_lag_max: 0,
            registry_errors: 0,
            calls_ok: 0,
            calls_failed: 0,
            calls_no_instance: 0,
        }
    }

    /// The highest service index any server holds now: applied entries are
    /// committed, so the majority holds it.
    fn majority_index(&self) -> u64 {
        self.server_index.values().copied().max().unwrap_or(0)
    }

    /// Whether a write concerns only services other than the callers'.
    fn unrelated(&self, cmd: &CatalogCommand) -> bool {
        match cmd {
            CatalogCommand::Register(Registration {
                service, checks, ..
            }) => {
                let other = |name: Option<&str>| name.is_some_and(|n| n != self.service);
                match service {
                    Some(s) => other(Some(&s.name)),
                    None => {
                        !checks.is_empty() && checks.iter().all(|c| other(c.service_id.as_deref()))
                    }
                }
            }
            CatalogCommand::DeregisterService { service_id, .. } => *service_id != self.service,
            _ => false,
        }
    }
}

impl Checker<ConsulNode> for ReadFigures {
    fn name(&self) -> &'static str {
        "read-figures"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ConsulNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let now = view.now;
        match view.node(node) {
            Some(ConsulNode::Server(s)) => {
                let index = s.catalog().health_index(&self.service);
                self.server_index.insert(node, index);
                // A service's index can go back (before it has instances it is the
                // catalog's): forget values above the highest held now.
                let majority = self.majority_index();
                self.first_applied.retain(|&i, _| i <= majority);
                if let std::collections::btree_map::Entry::Vacant(e) =
                    self.first_applied.entry(majority)
                {
                    e.insert(now);
                    if self.first_applied.len() > INDEX_TIMES_MAX {
                        self.first_applied.pop_first();
                    }
                }
                for _ in s.served_in_step() {
                    self.answers += 1;
                    let majority = self.majority_index();
                    if index >= majority {
                        continue;
                    }
                    self.stale_answers += 1;
                    let missed = self.first_applied.range(index + 1..);
                    let (_, &since) = missed.clone().next().expect("a higher index");
                    self.lag_max = self.lag_max.max(now.saturating_sub(since));
                    self.index_lag_max = self.index_lag_max.max(missed.count() as u64);
                }
            }
            Some(ConsulNode::Agent(a, _)) => {
                let n = a
                    .acked_in_step()
                    .iter()
                    .filter(|(cmd, _)| self.unrelated(cmd))
                    .count();
                self.unrelated_writes += n as u64;
            }
            Some(ConsulNode::Caller(c)) => {
                self.registry_errors += u64::from(c.registry_errors_in_step());
                for &(_, changed) in c.woken_in_step() {
                    self.wakes += 1;
                    if !changed {
                        self.idle_wakes += 1;
                    }
                }
                for done in c.calls_in_step() {
                    match done.outcome {
                        Outcome::Ok => self.calls_ok += 1,
                        Outcome::Error | Outcome::Timeout => self.calls_failed += 1,
                        Outcome::NoEndpoint => self.calls_no_instance += 1,
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        let per_write = match self.unrelated_writes {
            0 => 0.0,
            n => self.idle_wakes as f64 / n as f64,
        };
        for (k, v) in [
            ("watcher_wakes_count", self.wakes as f64),
            ("idle_wakes_count", self.idle_wakes as f64),
            ("unrelated_writes_count", self.unrelated_writes as f64),
            ("idle_wakes_per_unrelated_write", per_write),
            ("health_answers_count", self.answers as f64),
            ("stale_answers_count", self.stale_answers as f64),
            ("stale_answer_lag_max_ms", self.lag_max.as_millis() as f64),
            ("stale_answer_index_lag_max", self.index_lag_max as f64),
            ("registry_errors_count", self.registry_errors as f64),
            ("call_attempts_ok_count", self.calls_ok as f64),
            ("call_attempts_failed_count", self.calls_failed as f64),
            ("calls_no_instance_count", self.calls_no_instance as f64),
        ] {
            out.insert(k.into(), v);
        }
    }
}
