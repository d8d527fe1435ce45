//! A caller of a service discovered through Consul, sans-IO: a go-micro-like client
//! (its registry cache and selector, [`CallerProfile`]) whose registry is Consul's
//! `/v1/health/service/<name>?passing`, watched with blocking queries.
//!
//! - **Lookups.** It asks a server for the service's passing instances in its
//!   consistency mode (`default` and `consistent` go to the leader a server names;
//!   `stale` to whichever server it talks to), with the index of the last answer
//!   as `?index=` and the configured `?wait=`. Each answer replaces the cache's
//!   set ([`RegistryCache::full_read`]) and the next query goes out with the new
//!   index; an index that went backwards is reset to 0 and one that did not move
//!   waits `retry_backoff_ms` first (Consul's advice: rate-limit, and sanity-check
//!   the index). An attempt unanswered within the wait (and its jitter) plus the
//!   request timeout is a registry error: the next server is tried.
//! - **Calls** as an etcd caller's ([`crate::etcd::caller`]): every
//!   `call_interval_ms` the selector picks an instance from what the cache serves;
//!   no answer within the attempt timeout is a timeout; the profile's retries
//!   apply; no instance to pick fails the call at once.
//! - A crash loses the cache; the restarted caller asks from index 0.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;

use super::agent::node_of;
use super::catalog::{CatalogAnswer, CatalogQuery};
use super::config::Consistency;
use super::conn::{attempt_timeout, Conn, Pending};
use super::server::{ConsulRequest, ConsulResponse};
use crate::discovery::cache::{Lookup, RegistryCache};
use crate::discovery::calls::{CallAction, CallDone, Calls};
use crate::discovery::profile::CallerProfile;
use crate::process::NodeId;
use crate::raft::Response;

/// A caller's settings (ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerSettings {
    /// The service's name.
    pub service: String,
    /// Its client's behaviour: cache, selector, retries.
    pub profile: CallerProfile,
    /// Its health queries' consistency mode.
    pub mode: Consistency,
    /// A blocking query's `?wait=`.
    pub wait_ms: u64,
    /// Time between calls.
    pub call_interval_ms: u64,
    /// How long one call attempt waits for an answer.
    pub attempt_timeout_ms: u64,
    /// How long a request to a server waits (beyond a blocking query's wait).
    pub request_timeout_ms: u64,
    /// Pause before asking again after an error, or after an answer whose index
    /// did not move.
    pub retry_backoff_ms: u64,
}

/// A caller's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerTimer {
    /// The attempt of query `seq` timed out.
    Attempt(u64),
    /// Ask again (after a backoff).
    Query,
    /// Time for the next call.
    Call,
    /// Call `id`'s attempt timed out.
    CallTimeout(u64),
}

/// What a caller does next, for its holder to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerOut {
    /// Send `req` as request `seq` of `session` to server `to`.
    Request {
        /// The server.
        to: NodeId,
        /// The session.
        session: usize,
        /// The request's sequence number.
        seq: u64,
        /// The request.
        req: ConsulRequest,
    },
    /// Call instance `to` (call `id`).
    Call {
        /// The instance.
        to: NodeId,
        /// The call's id.
        id: u64,
    },
    /// Set a timer.
    Timer(Duration, CallerTimer),
}

/// One caller.
#[derive(Clone, Debug)]
pub struct Caller {
    settings: CallerSettings,
    servers: usize,
    conn: Option<Conn>,
    cache: RegistryCache,
    calls: Calls,
    pending: Option<Pending>,
    /// The index of the last answer (`X-Consul-Index`).
    index: u64,
    changed_in_step: bool,
    answers_in_step: Vec<BTreeSet<NodeId>>,
}

impl Caller {
    /// A caller of `settings.service` using servers `0..servers`.
    pub fn new(servers: usize, settings: CallerSettings) -> Self {
        let calls = Calls::new(settings.profile, settings.attempt_timeout_ms);
        let cache = settings.profile.cache;
        Caller {
            settings,
            servers,
            conn: None,
            cache: RegistryCache::new(cache),
            pending: None,
            index: 0,
            calls,
            changed_in_step: false,
            answers_in_step: Vec::new(),
        }
    }

    /// The instances it would call now.
    pub fn endpoints(&self) -> &BTreeSet<NodeId> {
        self.calls.endpoints()
    }

    /// The index it blocks on.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Whether its endpoint set changed in the last step.
    pub fn changed_in_step(&self) -> bool {
        self.changed_in_step
    }

    /// The health answers it took in the last step (the instances listed).
    pub fn answers_in_step(&self) -> &[BTreeSet<NodeId>] {
        &self.answers_in_step
    }

    /// The call attempts sent in the last step: (attempt id, instance).
    pub fn started_in_step(&self) -> &[(u64, NodeId)] {
        self.calls.started_in_step()
    }

    /// The call attempts that ended in the last step.
    pub fn calls_in_step(&self) -> &[CallDone] {
        self.calls.done_in_step()
    }

    /// Resets the per-step records; the holder calls it first in every handler.
    pub fn begin(&mut self) {
        self.changed_in_step = false;
        self.answers_in_step.clear();
        self.calls.begin();
    }

    /// Boot: ask, and start calling.
    pub fn on_start(&mut self, id: NodeId, rng: &mut impl Rng) -> Vec<CallerOut> {
        self.conn = Some(Conn::new(self.servers, id, rng));
        let mut out = self.query();
        out.push(self.timer(self.settings.call_interval_ms, CallerTimer::Call));
        out
    }

    fn timer(&self, ms: u64, t: CallerTimer) -> CallerOut {
        CallerOut::Timer(Duration::from_millis(ms.max(1)), t)
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("started")
    }

    fn query(&mut self) -> Vec<CallerOut> {
        let req = ConsulRequest::Read {
            query: CatalogQuery::ServiceHealth {
                service: self.settings.service.clone(),
                passing_only: true,
            },
            mode: self.settings.mode,
            min_index: self.index,
            wait_ms: self.settings.wait_ms,
        };
        let p = self.conn().start(req);
        self.pending = Some(p);
        self.send()
    }

    fn send(&mut self) -> Vec<CallerOut> {
        let session = self.conn().session();
        let p = self.pending.as_ref().expect("a request");
        vec![
            CallerOut::Request {
                to: p.to,
                session,
                seq: p.seq,
                req: p.req.clone(),
            },
            CallerOut::Timer(
                attempt_timeout(&p.req, self.settings.request_timeout_ms),
                CallerTimer::Attempt(p.seq),
            ),
        ]
    }

    fn resend(&mut self) -> Vec<CallerOut> {
        let conn = self.conn.clone().expect("started");
        conn.retarget(self.pending.as_mut().expect("pending"));
        self.send()
    }

    /// Brings the selector to what the cache serves at `now`.
    fn lookup(&mut self, now: Duration, rng: &mut impl Rng) {
        let set = match self.cache.get(&self.settings.service, now) {
            Lookup::Fresh(set) => set.clone(),
            Lookup::Stale { endpoints, .. } => endpoints.clone(),
            Lookup::Missing => BTreeSet::new(),
        };
        if self.calls.set_endpoints(&set, rng) {
            self.changed_in_step = true;
        }
    }

    /// A timer fired.
    pub fn on_timer(
        &mut self,
        timer: CallerTimer,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallerOut> {
        match timer {
            CallerTimer::Attempt(seq) => {
                if self.pending.as_ref().is_none_or(|p| p.seq != seq) {
                    return Vec::new();
                }
                self.cache.registry_error();
                self.conn().next();
                self.resend()
            }
            CallerTimer::Query => {
                if self.pending.is_some() {
                    return Vec::new();
                }
                self.query()
            }
            CallerTimer::Call => {
                let mut out = vec![self.timer(self.settings.call_interval_ms, CallerTimer::Call)];
                self.lookup(now, rng);
                let actions = self.calls.start(now, rng);
                out.extend(Self::act(actions));
                out
            }
            CallerTimer::CallTimeout(id) => Self::act(self.calls.timed_out(id, now, rng)),
        }
    }

    /// What the calls asked for, as this caller's outputs.
    fn act(actions: Vec<CallAction>) -> Vec<CallerOut> {
        actions
            .into_iter()
            .map(|a| match a {
                CallAction::Call { to, id } => CallerOut::Call { to, id },
                CallAction::Timeout { id, after } => {
                    CallerOut::Timer(after, CallerTimer::CallTimeout(id))
                }
            })
            .collect()
    }

    /// Instance `from` answered call `id`.
    pub fn on_answer(
        &mut self,
        from: NodeId,
        id: u64,
        ok: bool,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallerOut> {
        Self::act(self.calls.answered(from, id, ok, now, rng))
    }

    /// A server's answer to query `seq`.
    pub fn on_response(
        &mut self,
        seq: u64,
        resp: ConsulResponse,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallerOut> {
        if self.pending.as_ref().is_none_or(|p| p.seq != seq) {
            return Vec::new();
        }
        match resp {
            ConsulResponse::NotLeader(leader)
            | ConsulResponse::Raft(Response::Redirect { leader, .. }) => {
                self.conn().follow(leader);
                self.resend()
            }
            ConsulResponse::Read(CatalogAnswer::ServiceHealth { index, instances }) => {
                self.pending = None;
                let set: BTreeSet<NodeId> = instances
                    .iter()
                    .filter_map(|i| node_of(&i.node.value.name))
                    .collect();
                self.answers_in_step.push(set.clone());
                self.cache.full_read(&self.settings.service, set, now);
                self.lookup(now, rng);
                let moved = index != self.index;
                // Consul: reset to 0 if the index goes backwards; never block on 0
                // twice in a row without a pause.
                self.index = if index < self.index { 0 } else { index };
                match moved && self.index > 0 {
                    true => self.query(),
                    false => vec![self.timer(self.settings.retry_backoff_ms, CallerTimer::Query)],
                }
            }
            _ => {
                // Not ready, or an answer of another kind: a registry error; ask
                // again after a pause.
                self.pending = None;
                self.cache.registry_error();
                vec![self.timer(self.settings.retry_backoff_ms, CallerTimer::Query)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::agent::node_name;
    use crate::consul::catalog::{Entry, NodeInfo, ServiceDef, ServiceInstance};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn caller(mode: Consistency) -> Caller {
        Caller::new(
            3,
            CallerSettings {
                service: "api".into(),
                profile: CallerProfile::go_micro(),
                mode,
                wait_ms: 10_000,
                call_interval_ms: 100,
                attempt_timeout_ms: 500,
                request_timeout_ms: 1_000,
                retry_backoff_ms: 100,
            },
        )
    }

    fn entry<T>(value: T) -> Entry<T> {
        Entry {
            value,
            create_index: 1,
            modify_index: 1,
        }
    }

    fn instance(node: NodeId) -> ServiceInstance {
        ServiceInstance {
            node: entry(NodeInfo {
                name: node_name(node),
                ..NodeInfo::default()
            }),
            service: entry(ServiceDef {
                id: "api".into(),
                name: "api".into(),
                port: 8080,
                tags: Vec::new(),
            }),
            checks: Vec::new(),
        }
    }

    fn query(out: &[CallerOut]) -> Option<(NodeId, u64, u64)> {
        out.iter().find_map(|o| match o {
            CallerOut::Request {
                to,
                seq,
                req: ConsulRequest::Read { min_index, .. },
                ..
            } => Some((*to, *seq, *min_index)),
            _ => None,
        })
    }

    fn health(index: u64, nodes: &[NodeId]) -> ConsulResponse {
        ConsulResponse::Read(CatalogAnswer::ServiceHealth {
            index,
            instances: nodes.iter().map(|&n| instance(n)).collect(),
        })
    }

    #[test]
    fn blocking_queries_follow_the_index_and_reset_when_it_goes_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut c = caller(Consistency::Stale);
        let now = Duration::ZERO;
        let (to, seq, min) = query(&c.on_start(8, &mut rng)).expect("a query");
        assert_eq!((to, min), (2, 0));
        let out = c.on_response(seq, health(7, &[3, 4]), now, &mut rng);
        assert_eq!(c.endpoints().iter().copied().collect::<Vec<_>>(), [3, 4]);
        let (_, seq, min) = query(&out).expect("the next blocking query");
        assert_eq!(min, 7);
        // The index went back (a restored snapshot): reset to 0, after a pause.
        let out = c.on_response(seq, health(5, &[3]), now, &mut rng);
        assert_eq!(c.index(), 0);
        assert!(query(&out).is_none());
        assert_eq!(c.endpoints().iter().copied().collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn a_server_that_does_not_lead_sends_the_query_to_the_leader() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut c = caller(Consistency::Default);
        let (to, seq, _) = query(&c.on_start(6, &mut rng)).expect("a query");
        assert_eq!(to, 0);
        let out = c.on_response(
            seq,
            ConsulResponse::NotLeader(Some(2)),
            Duration::ZERO,
            &mut rng,
        );
        assert_eq!(query(&out).map(|q| (q.0, q.1)), Some((2, seq)));
    }
}
