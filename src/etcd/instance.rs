//! A service instance registered in etcd, sans-IO: it grants itself a lease, puts
//! its key `services/<name>/<node>` under it and keeps the lease alive, as etcd's
//! naming client (`client/v3/naming/endpoints`, on a `concurrency.Session`) and
//! go-micro's etcd registry (`Register`, then `KeepAliveOnce` every
//! `RegisterInterval`) do; and it answers its callers.
//!
//! - **Registration.** Grant (a lease id of its own), then put. A put refused for a
//!   missing lease, or a keepalive answered `NotFound`, means the lease expired: it
//!   registers again under a new lease, as both clients do.
//! - **Keepalive** every `keepalive_ms` to the leader; a member that does not lead
//!   names the leader and the keepalive goes there at once; no answer within
//!   `request_timeout_ms` sends it to the next member.
//! - **Calls.** A caller's call is answered `ok`, or `error` while the instance is
//!   unhealthy (`service-unhealthy`), or not at all while it hangs
//!   (`service-hang`); its keepalives go on either way, so etcd keeps listing it.
//! - A crash stops everything; the key stays until the lease expires (nothing
//!   deregisters a crashed process).

use std::time::Duration;

use rand::Rng;

use super::conn::{Conn, NodeOut, Pending};
use super::server::{ClientRequest, ClientResponse, KeepAliveError};
use super::store::LeaseId;
use super::{EtcdCommand, EtcdError, EtcdOutput};
use crate::raft::{RequestOp, Response};
use std::sync::Arc;

/// How an instance registers: lease TTL and keepalive period (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceSettings {
    /// The lease's TTL.
    pub ttl_ms: u64,
    /// The time between keepalives.
    pub keepalive_ms: u64,
    /// How long one attempt waits for an answer before trying the next member.
    pub request_timeout_ms: u64,
    /// Pause before retrying after "not ready" or a dropped request.
    pub retry_backoff_ms: u64,
}

/// What a request of the instance is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Granting its lease.
    Grant,
    /// Putting its key.
    Put,
    /// Renewing its lease.
    KeepAlive,
}

/// An instance's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceTimer {
    /// The attempt of request `seq` timed out.
    Attempt(u64),
    /// Time for the next keepalive, or for the retry of a request after a backoff.
    Next,
}

/// How an instance answers calls (driven by application faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// Answers `ok`.
    #[default]
    Healthy,
    /// Answers `error` (`service-unhealthy`).
    Unhealthy,
    /// Does not answer (`service-hang`).
    Hung,
}

/// What an instance does next.
pub type InstanceOut = NodeOut<InstanceTimer>;

/// One service instance.
#[derive(Clone, Debug)]
pub struct Instance {
    settings: InstanceSettings,
    servers: usize,
    key: String,
    value: String,
    conn: Option<Conn>,
    lease: LeaseId,
    registered: bool,
    pending: Option<Pending<Purpose>>,
    /// Waiting for a backoff or the keepalive period before sending `pending`.
    waiting: bool,
    health: Health,
    granted_in_step: Vec<(u64, LeaseId, u64)>,
    kept_alive_in_step: Vec<(u64, LeaseId)>,
    first_sent_in_step: Vec<u64>,
    keepalives_sent_in_step: Vec<LeaseId>,
}

impl Instance {
    /// Instance of `service` on node `node`, registering with members
    /// `0..servers`.
    pub fn new(service: &str, node: usize, servers: usize, settings: InstanceSettings) -> Self {
        Instance {
            settings,
            servers,
            key: format!("services/{service}/{node}"),
            value: format!("n{node}"),
            conn: None,
            lease: 0,
            registered: false,
            pending: None,
            waiting: false,
            health: Health::Healthy,
            granted_in_step: Vec::new(),
            kept_alive_in_step: Vec::new(),
            first_sent_in_step: Vec::new(),
            keepalives_sent_in_step: Vec::new(),
        }
    }

    /// Its key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its current lease (0 before the first grant).
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// Whether its key is in etcd as far as it knows.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// How it answers calls now.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Grants acknowledged to it in the last step: (request seq, lease, TTL in ms).
    /// The leader started the lease's countdown between the request's first attempt
    /// ([`Instance::first_sent_in_step`]) and now, so the lease is the owner's for
    /// at least its TTL from that first attempt.
    pub fn granted_in_step(&self) -> &[(u64, LeaseId, u64)] {
        &self.granted_in_step
    }

    /// Keepalives acknowledged to it in the last step: (request seq, lease); as for
    /// grants, the renewal happened after the request's first attempt.
    pub fn kept_alive_in_step(&self) -> &[(u64, LeaseId)] {
        &self.kept_alive_in_step
    }

    /// Requests whose first attempt left in the last step, by seq.
    pub fn first_sent_in_step(&self) -> &[u64] {
        &self.first_sent_in_step
    }

    /// Keepalive attempts sent in the last step, by lease: each may renew it,
    /// answered or not.
    pub fn keepalives_sent_in_step(&self) -> &[LeaseId] {
        &self.keepalives_sent_in_step
    }

    /// Resets the per-step records; the holder calls it first in every handler.
    pub fn begin(&mut self) {
        self.keepalives_sent_in_step.clear();
        self.granted_in_step.clear();
        self.kept_alive_in_step.clear();
        self.first_sent_in_step.clear();
    }

    /// Sets how it answers calls.
    pub fn set_health(&mut self, health: Health) {
        self.health = health;
    }

    /// Whether a call gets an answer, and which: `Some(true)` ok, `Some(false)`
    /// error, `None` none.
    pub fn answer(&self) -> Option<bool> {
        match self.health {
            Health::Healthy => Some(true),
            Health::Unhealthy => Some(false),
            Health::Hung => None,
        }
    }

    /// Boot: a new session and a new lease, then registration.
    pub fn on_start(&mut self, id: usize, now: Duration, rng: &mut impl Rng) -> Vec<InstanceOut> {
        self.conn = Some(Conn::new(
            self.servers,
            id,
            self.settings.request_timeout_ms,
            rng,
        ));
        self.new_lease(rng);
        self.start(Purpose::Grant, now)
    }

    fn new_lease(&mut self, rng: &mut impl Rng) {
        self.lease = rng.gen_range(1..=u64::from(u32::MAX));
        self.registered = false;
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("started")
    }

    fn request(&self, purpose: Purpose) -> ClientRequest {
        let cmd = match purpose {
            Purpose::Grant => EtcdCommand::LeaseGrant {
                id: self.lease,
                ttl_ms: self.settings.ttl_ms,
            },
            Purpose::Put => EtcdCommand::Op(super::Op::Put {
                key: self.key.clone(),
                value: self.value.clone(),
                lease: self.lease,
            }),
            Purpose::KeepAlive => return ClientRequest::KeepAlive(self.lease),
        };
        ClientRequest::Kv(RequestOp::Command(Arc::new(cmd)))
    }

    fn start(&mut self, purpose: Purpose, now: Duration) -> Vec<InstanceOut> {
        let req = self.request(purpose);
        let p = self.conn().start(req, purpose, now);
        self.pending = Some(p);
        self.waiting = false;
        self.send()
    }

    /// The pending request's next attempt, now.
    fn send(&mut self) -> Vec<InstanceOut> {
        let p = self.pending.as_mut().expect("a request");
        if p.attempts == 0 {
            self.first_sent_in_step.push(p.seq);
        }
        if let ClientRequest::KeepAlive(lease) = p.req {
            self.keepalives_sent_in_step.push(lease);
        }
        let timer = InstanceTimer::Attempt(p.seq);
        self.conn.as_ref().expect("started").attempt(p, timer)
    }

    /// Waits `ms`, then sends `purpose` anew (a new request).
    fn later(&mut self, purpose: Purpose, ms: u64, now: Duration) -> Vec<InstanceOut> {
        let req = self.request(purpose);
        let p = self.conn().start(req, purpose, now);
        self.pending = Some(p);
        self.waiting = true;
        vec![NodeOut::Timer(
            Duration::from_millis(ms),
            InstanceTimer::Next,
        )]
    }

    /// A timer fired.
    pub fn on_timer(&mut self, timer: InstanceTimer, now: Duration) -> Vec<InstanceOut> {
        match timer {
            InstanceTimer::Attempt(seq) => {
                // Stale once a later attempt (or a wait) moved the deadline.
                let live = self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.seq == seq && !self.waiting && now >= p.deadline);
                if !live {
                    return Vec::new();
                }
                self.conn().next();
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
            InstanceTimer::Next => {
                if !self.waiting {
                    return Vec::new();
                }
                self.waiting = false;
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
        }
    }

    /// A member's answer to request `seq`.
    pub fn on_response(
        &mut self,
        seq: u64,
        resp: ClientResponse,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<InstanceOut> {
        let Some(p) = self
            .pending
            .as_ref()
            .filter(|p| p.seq == seq && !self.waiting)
        else {
            return Vec::new();
        };
        let purpose = p.purpose;
        let backoff = self.settings.retry_backoff_ms;
        match resp {
            ClientResponse::Kv(Response::Written { result, .. }) => {
                self.pending = None;
                self.written(seq, purpose, &result, now, rng)
            }
            ClientResponse::Kv(Response::Redirect { leader, .. })
            | ClientResponse::KeepAlive(Err(KeepAliveError::NotLeader(leader))) => {
                let mut p = self.pending.take().expect("pending");
                let at_once = self.conn().follow(&mut p, leader);
                self.pending = Some(p);
                if !at_once {
                    self.waiting = true;
                    return vec![NodeOut::Timer(
                        Duration::from_millis(backoff),
                        InstanceTimer::Next,
                    )];
                }
                let conn = self.conn.clone().expect("started");
                conn.retarget(self.pending.as_mut().expect("pending"), now);
                self.send()
            }
            ClientResponse::KeepAlive(Ok(_)) => {
                self.pending = None;
                self.kept_alive_in_step.push((seq, self.lease));
                self.later(Purpose::KeepAlive, self.settings.keepalive_ms, now)
            }
            ClientResponse::KeepAlive(Err(KeepAliveError::NotFound)) => {
                self.new_lease(rng);
                self.start(Purpose::Grant, now)
            }
            ClientResponse::KeepAlive(Err(KeepAliveError::Unavailable)) | ClientResponse::Kv(_) => {
                // Not ready, dropped or refused for now: the same request again
                // after a pause (Raft applies a retried command once).
                self.waiting = true;
                vec![NodeOut::Timer(
                    Duration::from_millis(backoff),
                    InstanceTimer::Next,
                )]
            }
        }
    }

    fn written(
        &mut self,
        seq: u64,
        purpose: Purpose,
        result: &EtcdOutput,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<InstanceOut> {
        match (purpose, &result.results) {
            (Purpose::Grant, Ok(_)) => {
                self.granted_in_step
                    .push((seq, self.lease, self.settings.ttl_ms));
                self.start(Purpose::Put, now)
            }
            (Purpose::Grant, Err(EtcdError::LeaseExists(_))) => {
                // An earlier attempt of this grant was applied: it is ours.
                self.granted_in_step
                    .push((seq, self.lease, self.settings.ttl_ms));
                self.start(Purpose::Put, now)
            }
            (Purpose::Put, Ok(_)) => {
                self.registered = true;
                self.later(Purpose::KeepAlive, self.settings.keepalive_ms, now)
            }
            (_, Err(_)) => {
                // The lease is gone (expired before the put): register anew.
                self.new_lease(rng);
                self.start(Purpose::Grant, now)
            }
            (Purpose::KeepAlive, Ok(_)) => unreachable!("keepalives do not go through Raft"),
        }
    }
}
