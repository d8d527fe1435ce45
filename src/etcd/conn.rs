//! A node's connection to the etcd members, as clientv3 keeps one: a session for
//! Raft's at-most-once rule, one request at a time per purpose, a per-attempt
//! timeout after which the next member is tried, and the leader a member names
//! followed at once.
//!
//! Sans-IO: the holder sends what [`Conn::attempt`] returns and feeds back answers
//! and timeouts; time is the holder's monotonic clock.

use std::time::Duration;

use rand::Rng;

use super::server::{ClientRequest, NODE_SESSION_BASE};
use crate::process::{ClientId, NodeId};

/// One in-flight request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending<T> {
    /// Its sequence number (a retry keeps it, so Raft applies it once).
    pub seq: u64,
    /// The request.
    pub req: ClientRequest,
    /// What the holder does with the answer.
    pub purpose: T,
    /// The member the latest attempt went to.
    pub to: NodeId,
    /// When the latest attempt times out.
    pub deadline: Duration,
    /// Attempts sent so far.
    pub attempts: u32,
    /// Redirects followed since the last pause: a second one in a row waits
    /// `retry_backoff_ms` first, so that members with stale leader hints cannot
    /// bounce a request between them without end.
    pub redirects: u32,
}

/// What an instance or a caller does next, for its holder to carry out; `T` is its
/// timer type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOut<T> {
    /// Send `req` as request `seq` of `session` to member `to`.
    Request {
        /// The member.
        to: NodeId,
        /// The session.
        session: ClientId,
        /// The request's sequence number.
        seq: u64,
        /// The request.
        req: ClientRequest,
    },
    /// Call instance `to` (call `id`): callers only.
    Call {
        /// The instance.
        to: NodeId,
        /// The call's id.
        id: u64,
    },
    /// Set a timer.
    Timer(Duration, T),
}

/// A node's view of the etcd cluster: members `0..servers`.
#[derive(Clone, Debug)]
pub struct Conn {
    servers: usize,
    session: ClientId,
    last_seq: u64,
    /// The member it talks to.
    target: NodeId,
    /// How long an attempt waits for an answer.
    request_timeout: Duration,
}

impl Conn {
    /// A connection to members `0..servers` (at least 1), with a session drawn from
    /// `rng` (a restarted node starts a new one) and attempts timing out after
    /// `request_timeout_ms`; it starts with member `first % servers`.
    pub fn new(servers: usize, first: NodeId, request_timeout_ms: u64, rng: &mut impl Rng) -> Self {
        assert!(servers >= 1, "a connection needs a member");
        Conn {
            servers,
            session: NODE_SESSION_BASE + rng.gen::<u32>() as ClientId,
            last_seq: 0,
            target: first % servers,
            request_timeout: Duration::from_millis(request_timeout_ms.max(1)),
        }
    }

    /// The session id.
    pub fn session(&self) -> ClientId {
        self.session
    }

    /// The member requests go to next.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// A new request: the next sequence number, to the current target.
    pub fn start<T>(&mut self, req: ClientRequest, purpose: T, now: Duration) -> Pending<T> {
        self.last_seq += 1;
        Pending {
            seq: self.last_seq,
            req,
            purpose,
            to: self.target,
            deadline: now + self.request_timeout,
            attempts: 0,
            redirects: 0,
        }
    }

    /// Aims `p`'s next attempt at the current target, from `now`.
    pub fn retarget<T>(&self, p: &mut Pending<T>, now: Duration) {
        p.to = self.target;
        p.deadline = now + self.request_timeout;
    }

    /// The next attempt of `p`: the request to its member, and `timer` to fire when
    /// it times out.
    pub fn attempt<P, T>(&self, p: &mut Pending<P>, timer: T) -> Vec<NodeOut<T>> {
        p.attempts += 1;
        vec![
            NodeOut::Request {
                to: p.to,
                session: self.session,
                seq: p.seq,
                req: p.req.clone(),
            },
            NodeOut::Timer(self.request_timeout, timer),
        ]
    }

    /// A member named `leader` as the leader: follow it. Returns whether `p` may
    /// go there at once: the first redirect to a named leader does; a redirect
    /// with no leader named, or a second in a row, waits a pause (the holder's
    /// backoff), after which the count starts again.
    pub fn follow<T>(&mut self, p: &mut Pending<T>, leader: Option<NodeId>) -> bool {
        match leader {
            Some(l) if l < self.servers => self.target = l,
            _ => self.next(),
        }
        p.redirects += 1;
        let now = leader.is_some() && p.redirects == 1;
        if !now {
            p.redirects = 0;
        }
        now
    }

    /// The current target did not answer: try the next member.
    pub fn next(&mut self) {
        self.target = (self.target + 1) % self.servers;
    }
}
