//! A caller of a service discovered through etcd, sans-IO, after etcd's naming
//! resolver (`client/v3/naming/resolver`: read the prefix, then watch it from the
//! next revision) feeding a load balancer, and go-micro's client (random selector,
//! retries).
//!
//! - **Endpoints.** It reads `services/<name>/` (a linearizable range), takes the
//!   instances listed there, and watches the prefix from the revision after the
//!   read: a put adds an instance, a delete removes it. A watch refused or
//!   cancelled for compaction makes it read again and watch from the new revision,
//!   as etcd requires. A watch stream silent for `watch_timeout_ms` (members send
//!   a progress notification every `watch_progress_notify_ms`) is taken as broken:
//!   the caller resumes it on the next member from the revision it needs.
//! - **What it calls from.** The caller's [`CallerProfile`] decides: etcd's
//!   resolver serves exactly what the read and the watch delivered; go-micro's
//!   registry cache serves its set for a TTL, reads again once it expired, and
//!   serves the expired set while the registry fails ([`RegistryCache`]).
//! - **Calls.** Every `call_interval_ms` it picks an instance ([`crate::discovery::selector::Selector`]: round
//!   robin or random, with the profile's ejection) and calls it; no answer within
//!   the attempt timeout is a timeout. A failure the profile retries (`retry_on`)
//!   is tried again on a new pick, up to `retries` times, within the profile's
//!   request timeout. With no instance to pick the call fails at once
//!   (`no-endpoint`).
//! - A crash loses the endpoint set; the restarted caller reads it again.
//!
//! Records per step (for the checkers): its endpoint set when it changed, the
//! watch creations and responses, each call attempt's outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use super::conn::{Conn, NodeOut, Pending};
use super::server::WatchMsg;
use super::server::{ClientRequest, ClientResponse};
use super::watch::{prefix_end, ClientState, WatchBugs, WatchClient, WatchEvents, WatchResponse};
use super::watch_check::{Opened, Received};
use super::{EtcdQuery, EventKind, KeyValue};
use crate::discovery::cache::{Lookup, RegistryCache, WatchEvent};
use crate::discovery::calls::{CallAction, Calls};
use crate::discovery::profile::CallerProfile;
use crate::process::NodeId;
use crate::raft::{RequestOp, Response};

/// A caller's settings (ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerSettings {
    /// The service's name.
    pub service: String,
    /// Its client's behaviour: cache, selector, retries.
    pub profile: CallerProfile,
    /// Time between calls.
    pub call_interval_ms: u64,
    /// How long one call attempt waits for an answer.
    pub attempt_timeout_ms: u64,
    /// How long a request to etcd waits before trying the next member.
    pub request_timeout_ms: u64,
    /// A watch stream silent this long is broken.
    pub watch_timeout_ms: u64,
    /// Pause before reading again after an error.
    pub retry_backoff_ms: u64,
}

pub use crate::discovery::calls::{CallDone, Outcome};

/// What a caller's watch did in a step, for the watch checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchRecord {
    /// A new logical stream: the caller read the prefix and watches from after it.
    Stream,
    /// A creation was sent from this start revision (a new segment).
    Open(u64),
    /// The creation was answered.
    Opened(Opened),
    /// A response arrived on the current watch.
    Received(Received),
}

/// What a caller's request to etcd is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Reading the prefix.
    Read,
    /// Creating (or resuming) the watch.
    Watch,
}

/// A caller's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerTimer {
    /// The attempt of etcd request `seq` timed out.
    Attempt(u64),
    /// Send etcd request `seq` again, after a backoff.
    Resend(u64),
    /// Read the prefix again (after a backoff).
    Read,
    /// Time for the next call.
    Call,
    /// Call `id`'s attempt timed out.
    CallTimeout(u64),
    /// Check the watch stream is alive.
    WatchCheck,
}

/// What a caller does next.
pub type CallerOut = NodeOut<CallerTimer>;

/// One caller.
#[derive(Clone, Debug)]
pub struct Caller {
    settings: CallerSettings,
    servers: usize,
    prefix: String,
    bugs: WatchBugs,
    conn: Option<Conn>,
    cache: RegistryCache,
    calls: Calls,
    pending: Option<Pending<Purpose>>,
    watch: Option<WatchClient>,
    /// The watch stream: its member, its watch id, the next message number.
    stream: Option<(NodeId, u64, u64)>,
    /// Stream messages that came before their turn: (member, watch, number).
    early: BTreeMap<(NodeId, u64, u64), WatchResponse>,
    last_heard: Duration,
    changed_in_step: bool,
    watch_in_step: Vec<WatchRecord>,
}

/// Most stream messages a caller holds for their turn.
const EARLY_MAX: usize = 256;

impl Caller {
    /// A caller of `settings.service` using members `0..servers`.
    pub fn new(servers: usize, settings: CallerSettings, bugs: WatchBugs) -> Self {
        let prefix = format!("services/{}/", settings.service);
        let calls = Calls::new(settings.profile, settings.attempt_timeout_ms);
        let cache = settings.profile.cache;
        Caller {
            settings,
            servers,
            prefix,
            bugs,
            conn: None,
            cache: RegistryCache::new(cache),
            calls,
            pending: None,
            watch: None,
            stream: None,
            early: BTreeMap::new(),
            last_heard: Duration::ZERO,
            changed_in_step: false,
            watch_in_step: Vec::new(),
        }
    }

    /// The instances it would call now (its selector's set, as of its last
    /// lookup).
    pub fn endpoints(&self) -> &BTreeSet<NodeId> {
        self.calls.endpoints()
    }

    /// Whether its endpoint set changed in the last step.
    pub fn changed_in_step(&self) -> bool {
        self.changed_in_step
    }

    /// What its watch did in the last step.
    pub fn watch_in_step(&self) -> &[WatchRecord] {
        &self.watch_in_step
    }

    /// The call attempts sent in the last step: (attempt id, instance).
    pub fn started_in_step(&self) -> &[(u64, NodeId)] {
        self.calls.started_in_step()
    }

    /// The call attempts that ended in the last step.
    pub fn calls_in_step(&self) -> &[CallDone] {
        self.calls.done_in_step()
    }

    /// The watched range: the prefix and its end.
    pub fn range(&self) -> (String, String) {
        (self.prefix.clone(), prefix_end(&self.prefix))
    }

    /// Resets the per-step records; the holder calls it first in every handler.
    pub fn begin(&mut self) {
        self.changed_in_step = false;
        self.watch_in_step.clear();
        self.calls.begin();
    }

    /// Boot: read the prefix, and start calling.
    pub fn on_start(&mut self, id: NodeId, now: Duration, rng: &mut impl Rng) -> Vec<CallerOut> {
        self.conn = Some(Conn::new(
            self.servers,
            id,
            self.settings.request_timeout_ms,
            rng,
        ));
        let mut out = self.read(now);
        out.push(self.timer(self.settings.call_interval_ms, CallerTimer::Call));
        out.push(self.timer(self.settings.watch_timeout_ms / 2, CallerTimer::WatchCheck));
        out
    }

    fn timer(&self, ms: u64, t: CallerTimer) -> CallerOut {
        NodeOut::Timer(Duration::from_millis(ms.max(1)), t)
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("started")
    }

    fn read(&mut self, now: Duration) -> Vec<CallerOut> {
        let (key, range_end) = self.range();
        let req = ClientRequest::Kv(RequestOp::Read(EtcdQuery::Range {
            key,
            range_end,
            revision: 0,
        }));
        let p = self.conn().start(req, Purpose::Read, now);
        self.pending = Some(p);
        self.send()
    }

    fn open_watch(&mut self, now: Duration) -> Vec<CallerOut> {
        let watch = self.watch.as_ref().expect("a watch");
        let request = watch.request();
        self.watch_in_step
            .push(WatchRecord::Open(request.start_revision));
        let p = self
            .conn()
            .start(ClientRequest::Watch(request), Purpose::Watch, now);
        self.pending = Some(p);
        self.send()
    }

    fn send(&mut self) -> Vec<CallerOut> {
        let p = self.pending.as_mut().expect("a request");
        let timer = CallerTimer::Attempt(p.seq);
        self.conn.as_ref().expect("started").attempt(p, timer)
    }

    /// Brings the selector to what the cache serves at `now`; starts a read when
    /// the cache has nothing fresh and none is in flight.
    fn lookup(&mut self, now: Duration, rng: &mut impl Rng) -> Vec<CallerOut> {
        let (set, refresh) = match self.cache.get(&self.settings.service, now) {
            Lookup::Fresh(set) => (set.clone(), false),
            Lookup::Stale { endpoints, .. } => (endpoints.clone(), true),
            Lookup::Missing => (BTreeSet::new(), true),
        };
        if self.calls.set_endpoints(&set, rng) {
            self.changed_in_step = true;
        }
        if refresh && self.pending.is_none() {
            return self.read(now);
        }
        Vec::new()
    }

    /// The instance a key names (`services/<name>/<node>`).
    fn instance_of(&self, key: &str) -> Option<NodeId> {
        key.strip_prefix(&self.prefix)?.parse().ok()
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
                // An attempt's timer is stale once a later attempt moved the deadline.
                if self
                    .pending
                    .as_ref()
                    .is_none_or(|p| p.seq != seq || now < p.deadline)
                {
                    return Vec::new();
                }
                self.cache.registry_error();
                self.conn().next();
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
            CallerTimer::Resend(seq) => {
                if self.pending.as_ref().is_none_or(|p| p.seq != seq) {
                    return Vec::new();
                }
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
            CallerTimer::Read => {
                if self.pending.is_some() {
                    return Vec::new();
                }
                self.read(now)
            }
            CallerTimer::Call => {
                let mut out = vec![self.timer(self.settings.call_interval_ms, CallerTimer::Call)];
                out.extend(self.lookup(now, rng));
                let actions = self.calls.start(now, rng);
                out.extend(Self::act(actions));
                out
            }
            CallerTimer::CallTimeout(id) => Self::act(self.calls.timed_out(id, now, rng)),
            CallerTimer::WatchCheck => {
                let mut out =
                    vec![self.timer(self.settings.watch_timeout_ms / 2, CallerTimer::WatchCheck)];
                let silent = now.saturating_sub(self.last_heard)
                    > Duration::from_millis(self.settings.watch_timeout_ms);
                let watching = matches!(
                    self.watch.as_ref().map(WatchClient::state),
                    Some(ClientState::Watching(_))
                );
                if watching && silent && self.pending.is_none() {
                    out.extend(self.broken());
                    self.conn().next();
                    out.extend(self.open_watch(now));
                }
                out
            }
        }
    }

    /// What the calls asked for, as this caller's outputs.
    fn act(actions: Vec<CallAction>) -> Vec<CallerOut> {
        actions
            .into_iter()
            .map(|a| match a {
                CallAction::Call { to, id } => NodeOut::Call { to, id },
                CallAction::Timeout { id, after } => {
                    NodeOut::Timer(after, CallerTimer::CallTimeout(id))
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

    /// A member's answer to request `seq`.
    pub fn on_response(
        &mut self,
        seq: u64,
        resp: ClientResponse,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallerOut> {
        let Some(p) = self.pending.as_ref().filter(|p| p.seq == seq) else {
            return Vec::new();
        };
        let purpose = p.purpose;
        match (purpose, resp) {
            (_, ClientResponse::Kv(Response::Redirect { leader, .. })) => {
                let mut p = self.pending.take().expect("pending");
                let at_once = self.conn().follow(&mut p, leader);
                let seq = p.seq;
                self.pending = Some(p);
                if !at_once {
                    return vec![
                        self.timer(self.settings.retry_backoff_ms, CallerTimer::Resend(seq))
                    ];
                }
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
            (Purpose::Read, ClientResponse::Kv(Response::Value { value, .. })) => {
                self.pending = None;
                let Ok(kvs) = value.kvs else {
                    return vec![self.timer(self.settings.retry_backoff_ms, CallerTimer::Read)];
                };
                let endpoints = kvs
                    .iter()
                    .filter_map(|kv: &KeyValue| self.instance_of(&kv.key))
                    .collect();
                self.cache.full_read(&self.settings.service, endpoints, now);
                self.lookup(now, rng);
                let watching = matches!(
                    self.watch.as_ref().map(WatchClient::state),
                    Some(ClientState::Watching(_))
                );
                if watching {
                    // A TTL refresh while the watch runs: keep the watch.
                    return Vec::new();
                }
                let (key, end) = self.range();
                self.watch = Some(WatchClient::new(&key, &end, value.revision + 1, self.bugs));
                self.watch_in_step.push(WatchRecord::Stream);
                self.open_watch(now)
            }
            _ => {
                // Not ready, dropped, or an answer of another kind: a registry error;
                // try again after a pause, from the start (read, then watch).
                self.pending = None;
                self.cache.registry_error();
                self.watch = None;
                vec![self.timer(self.settings.retry_backoff_ms, CallerTimer::Read)]
            }
        }
    }

    /// The watch stream broke: close it on its member, and let the watch resume.
    fn broken(&mut self) -> Vec<CallerOut> {
        self.early.clear();
        if let Some(w) = self.watch.as_mut() {
            w.on_disconnect();
        }
        match self.stream.take() {
            Some((member, id, _)) => vec![self.cancel(member, id)],
            None => Vec::new(),
        }
    }

    fn cancel(&mut self, member: NodeId, id: u64) -> CallerOut {
        let session = self.conn().session();
        NodeOut::Request {
            to: member,
            session,
            seq: 0,
            req: ClientRequest::CancelWatch(id),
        }
    }

    /// Message `n` of a watch stream from member `from`. A stream is ordered: a
    /// message that arrives before one it follows waits in a buffer, as TCP holds
    /// a segment that came early; one that never comes leaves the stream silent,
    /// and the watch timeout resumes it.
    pub fn on_watch(
        &mut self,
        from: NodeId,
        n: u64,
        msg: WatchMsg,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallerOut> {
        let r = match msg {
            WatchMsg::Created { request, result } => {
                let ours = self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.seq == request && p.purpose == Purpose::Watch);
                if !ours || n != 0 {
                    // A creation this caller no longer waits for: close it.
                    return match result {
                        Ok(c) => vec![self.cancel(from, c.watch_id)],
                        Err(_) => Vec::new(),
                    };
                }
                self.pending = None;
                self.last_heard = now;
                self.watch
                    .as_mut()
                    .expect("a watch")
                    .on_created(result.clone());
                return match result {
                    Ok(c) => {
                        self.stream = Some((from, c.watch_id, 1));
                        self.early
                            .retain(|&(m, id, _), _| (m, id) == (from, c.watch_id));
                        self.watch_in_step
                            .push(WatchRecord::Opened(Opened::Created {
                                revision: c.revision,
                            }));
                        self.drain(now, rng)
                    }
                    Err(super::watch::WatchError::Compacted { compact_revision }) => {
                        self.watch_in_step
                            .push(WatchRecord::Opened(Opened::Compacted { compact_revision }));
                        self.watch = None;
                        self.read(now)
                    }
                };
            }
            WatchMsg::Response(r) => r,
        };
        let creating = self
            .pending
            .as_ref()
            .is_some_and(|p| p.purpose == Purpose::Watch);
        match self.stream {
            Some((member, id, next)) if member == from && id == r.watch_id => {
                if n < next {
                    return Vec::new(); // a copy of one already taken
                }
                self.hold(from, n, r);
                self.drain(now, rng)
            }
            // Maybe the stream being created, whose creation comes later.
            _ if creating && n > 0 => {
                self.hold(from, n, r);
                Vec::new()
            }
            // A stream this caller left: close it.
            _ => vec![self.cancel(from, r.watch_id)],
        }
    }

    /// Keeps a stream message until its turn.
    fn hold(&mut self, from: NodeId, n: u64, r: WatchResponse) {
        if self.early.len() >= EARLY_MAX {
            self.early.pop_first();
        }
        self.early.insert((from, r.watch_id, n), r);
    }

    /// Takes the current stream's messages that are next in order.
    fn drain(&mut self, now: Duration, rng: &mut impl Rng) -> Vec<CallerOut> {
        let mut out = Vec::new();
        while let Some((member, id, next)) = self.stream {
            let Some(r) = self.early.remove(&(member, id, next)) else {
                break;
            };
            self.stream = Some((member, id, next + 1));
            out.extend(self.take(r, now, rng));
        }
        out
    }

    /// The next response of the current stream.
    fn take(&mut self, r: WatchResponse, now: Duration, rng: &mut impl Rng) -> Vec<CallerOut> {
        self.last_heard = now;
        let watch = self.watch.as_mut().expect("a watch");
        watch.on_response(&r);
        match &r.body {
            WatchEvents::Events(events) => {
                self.watch_in_step
                    .push(WatchRecord::Received(Received::Events(events.clone())));
                for e in events {
                    if let Some(n) = self.instance_of(&e.kv.key) {
                        let event = match e.kind {
                            EventKind::Put => WatchEvent::Put(n),
                            EventKind::Delete => WatchEvent::Delete(n),
                        };
                        self.cache.apply(&self.settings.service, event, now);
                    }
                }
                self.lookup(now, rng)
            }
            WatchEvents::Progress => {
                self.watch_in_step
                    .push(WatchRecord::Received(Received::Progress(r.revision)));
                Vec::new()
            }
            WatchEvents::Canceled(super::watch::WatchError::Compacted { compact_revision }) => {
                self.watch_in_step
                    .push(WatchRecord::Received(Received::Compacted(
                        *compact_revision,
                    )));
                self.stream = None;
                self.watch = None;
                if self.pending.is_some() {
                    return Vec::new();
                }
                self.read(now)
            }
        }
    }
}
