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
//! - **Watchers.** A caller node may hold several watchers of the service
//!   (`watchers`, at least 1): the other processes on that host blocking on the
//!   same endpoint, each with its own connection (session) and index, as a
//!   thousand `consul watch` handlers or sidecars would (consul#1244). Only the
//!   first feeds the cache the calls pick from; every one counts its wake-ups
//!   ([`Caller::woken_in_step`]).
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
    /// Blocking queries the node holds on the service at once (at least 1).
    pub watchers: usize,
}

/// Request numbers per watcher: watcher `w` numbers its requests from
/// `w * WATCH_SEQ_SPAN + 1` ([`Conn::with_seq_base`]).
pub const WATCH_SEQ_SPAN: u64 = 1 << 40;

/// The most watchers one caller node holds (the servers hold at most
/// [`super::server::BLOCKED_MAX`] queries).
pub const WATCHERS_MAX: usize = 1_000;

/// A caller's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerTimer {
    /// Attempt `.1` of query `.0` timed out.
    Attempt(u64, u32),
    /// Watcher 0 asks again (after a backoff).
    Query,
    /// Watcher `w` (1 and up) asks again (after a backoff).
    WatchQuery(usize),
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

/// One blocking query loop: its connection, its request in flight, its index.
#[derive(Clone, Debug)]
struct Watch {
    conn: Conn,
    pending: Option<Pending>,
    /// The index of the last answer (`X-Consul-Index`).
    index: u64,
    /// What the last answer said: the highest modify index of its entries and
    /// the nodes it listed.
    last: Option<(u64, BTreeSet<NodeId>)>,
}

/// One caller.
#[derive(Clone, Debug)]
pub struct Caller {
    settings: CallerSettings,
    servers: usize,
    /// Watcher 0 feeds the cache; empty until started.
    watches: Vec<Watch>,
    cache: RegistryCache,
    calls: Calls,
    changed_in_step: bool,
    answers_in_step: Vec<BTreeSet<NodeId>>,
    woken_in_step: Vec<(usize, bool)>,
    registry_errors_in_step: u32,
}

impl Caller {
    /// A caller of `settings.service` using servers `0..servers`.
    ///
    /// Panics if `settings.watchers` is not in `1..=WATCHERS_MAX` (the scenario's
    /// validation refuses it first).
    pub fn new(servers: usize, settings: CallerSettings) -> Self {
        assert!(
            (1..=WATCHERS_MAX).contains(&settings.watchers),
            "watchers: 1 to {WATCHERS_MAX}"
        );
        let calls = Calls::new(settings.profile, settings.attempt_timeout_ms);
        let cache = settings.profile.cache;
        Caller {
            settings,
            servers,
            watches: Vec::new(),
            cache: RegistryCache::new(cache),
            calls,
            changed_in_step: false,
            answers_in_step: Vec::new(),
            woken_in_step: Vec::new(),
            registry_errors_in_step: 0,
        }
    }

    /// Its health queries' consistency mode.
    pub fn mode(&self) -> Consistency {
        self.settings.mode
    }

    /// The watchers that took an answer whose index moved in the last step
    /// (woken by a write, not by the wait running out), each with whether the
    /// answer differs from the watcher's previous one (another set of nodes, or
    /// an entry modified since): `false` is a wake-up for nothing, a write
    /// elsewhere in the catalog.
    pub fn woken_in_step(&self) -> &[(usize, bool)] {
        &self.woken_in_step
    }

    /// Health queries of its first watcher that failed in the last step (no
    /// answer in time, or an answer that was no health answer): the registry
    /// errors its cache saw.
    pub fn registry_errors_in_step(&self) -> u32 {
        self.registry_errors_in_step
    }

    /// The instances it would call now.
    pub fn endpoints(&self) -> &BTreeSet<NodeId> {
        self.calls.endpoints()
    }

    /// The index its first watcher blocks on.
    pub fn index(&self) -> u64 {
        self.watches.first().map_or(0, |w| w.index)
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
        self.woken_in_step.clear();
        self.registry_errors_in_step = 0;
        self.calls.begin();
    }

    /// Boot: every watcher asks, and calls start.
    pub fn on_start(&mut self, id: NodeId, rng: &mut impl Rng) -> Vec<CallerOut> {
        self.watches.clear();
        for w in 0..self.settings.watchers {
            // Watchers spread over the servers as separate clients would.
            let conn =
                Conn::new(self.servers, id + w, rng).with_seq_base(w as u64 * WATCH_SEQ_SPAN);
            self.watches.push(Watch {
                conn,
                pending: None,
                index: 0,
                last: None,
            });
        }
        let mut out = self.query(0);
        out.push(self.timer(self.settings.call_interval_ms, CallerTimer::Call));
        for w in 1..self.watches.len() {
            out.extend(self.query(w));
        }
        out
    }

    /// The watcher whose request `seq` is.
    fn watcher_of(seq: u64) -> usize {
        (seq / WATCH_SEQ_SPAN) as usize
    }

    fn query_timer(&self, w: usize) -> CallerOut {
        let t = match w {
            0 => CallerTimer::Query,
            w => CallerTimer::WatchQuery(w),
        };
        self.timer(self.settings.retry_backoff_ms, t)
    }

    fn timer(&self, ms: u64, t: CallerTimer) -> CallerOut {
        CallerOut::Timer(Duration::from_millis(ms.max(1)), t)
    }

    fn query(&mut self, w: usize) -> Vec<CallerOut> {
        let watch = &mut self.watches[w];
        let req = ConsulRequest::Read {
            query: CatalogQuery::ServiceHealth {
                service: self.settings.service.clone(),
                passing_only: true,
            },
            mode: self.settings.mode,
            min_index: watch.index,
            wait_ms: self.settings.wait_ms,
        };
        let p = watch.conn.start(req);
        watch.pending = Some(p);
        self.send(w)
    }

    fn send(&mut self, w: usize) -> Vec<CallerOut> {
        let watch = &self.watches[w];
        let session = watch.conn.session();
        let p = watch.pending.as_ref().expect("a request");
        vec![
            CallerOut::Request {
                to: p.to,
                session,
                seq: p.seq,
                req: p.req.clone(),
            },
            CallerOut::Timer(
                attempt_timeout(&p.req, self.settings.request_timeout_ms),
                CallerTimer::Attempt(p.seq, p.attempt),
            ),
        ]
    }

    fn resend(&mut self, w: usize) -> Vec<CallerOut> {
        let watch = &mut self.watches[w];
        watch
            .conn
            .retarget(watch.pending.as_mut().expect("pending"));
        self.send(w)
    }

    /// Whether `seq` is the request watcher `w` has in flight.
    fn is_pending(&self, w: usize, seq: u64) -> bool {
        self.watches
            .get(w)
            .and_then(|watch| watch.pending.as_ref())
            .is_some_and(|p| p.seq == seq)
    }

    /// Watcher `w`'s query failed: a registry error for the cache if it feeds it.
    fn registry_error(&mut self, w: usize) {
        if w == 0 {
            self.cache.registry_error();
            self.registry_errors_in_step += 1;
        }
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
            CallerTimer::Attempt(seq, attempt) => {
                let w = Self::watcher_of(seq);
                let latest = self.watches[w]
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.attempt == attempt);
                if !self.is_pending(w, seq) || !latest {
                    return Vec::new();
                }
                self.registry_error(w);
                self.watches[w].conn.next();
                self.resend(w)
            }
            CallerTimer::Query => self.query_again(0),
            CallerTimer::WatchQuery(w) => self.query_again(w),
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

    /// Watcher `w` asks again unless it already has a query out.
    fn query_again(&mut self, w: usize) -> Vec<CallerOut> {
        match self.watches.get(w) {
            Some(watch) if watch.pending.is_none() => self.query(w),
            _ => Vec::new(),
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
        let w = Self::watcher_of(seq);
        if !self.is_pending(w, seq) {
            return Vec::new();
        }
        match resp {
            ConsulResponse::NotLeader(Some(leader))
            | ConsulResponse::Raft(Response::Redirect {
                leader: Some(leader),
                ..
            }) => {
                self.watches[w].conn.follow(Some(leader));
                self.resend(w)
            }
            ConsulResponse::Read(CatalogAnswer::ServiceHealth { index, instances }) => {
                let set: BTreeSet<NodeId> = instances
                    .iter()
                    .filter_map(|i| node_of(&i.node.value.name))
                    .collect();
                let modified = instances
                    .iter()
                    .flat_map(|i| {
                        let checks = i.checks.iter().map(|c| c.modify_index);
                        [i.node.modify_index, i.service.modify_index]
                            .into_iter()
                            .chain(checks)
                    })
                    .max()
                    .unwrap_or(0);
                let watch = &mut self.watches[w];
                watch.pending = None;
                let moved = index != watch.index;
                let content = Some((modified, set));
                if moved {
                    self.woken_in_step.push((w, watch.last != content));
                }
                watch.last = content;
                // Consul: reset to 0 if the index goes backwards; never block on 0
                // twice in a row without a pause.
                watch.index = if index < watch.index { 0 } else { index };
                let again = moved && watch.index > 0;
                if w == 0 {
                    let set = watch.last.as_ref().expect("just set").1.clone();
                    self.answers_in_step.push(set.clone());
                    self.cache.full_read(&self.settings.service, set, now);
                    self.lookup(now, rng);
                }
                match again {
                    true => self.query(w),
                    false => vec![self.query_timer(w)],
                }
            }
            _ => {
                // Not ready, no leader known ("No cluster leader"), or an answer of
                // another kind: a registry error; ask the next server after a
                // pause, lest the query circle the servers at network speed.
                self.watches[w].conn.next();
                self.watches[w].pending = None;
                self.registry_error(w);
                vec![self.query_timer(w)]
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
                watchers: 1,
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
