//! A node's connection to the Consul servers (an agent's RPC client, a caller's
//! HTTP client): a session for Raft's at-most-once rule, one request at a time, a
//! per-attempt timeout after which the next server is tried, and the leader a
//! server names followed at once. The same rules as [`crate::etcd::conn`], for
//! Consul's requests.

use std::time::Duration;

use rand::Rng;

use super::server::{ConsulRequest, NODE_SESSION_BASE};
use crate::process::{ClientId, NodeId};

/// One in-flight request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number (a retry keeps it, so Raft applies it once).
    pub seq: u64,
    /// The request.
    pub req: ConsulRequest,
    /// The server the latest attempt went to.
    pub to: NodeId,
    /// The latest attempt's number (0 first): an attempt's timer is stale once a
    /// later attempt went out.
    pub attempt: u32,
}

/// A node's view of the servers `0..servers`.
#[derive(Clone, Debug)]
pub struct Conn {
    servers: usize,
    session: ClientId,
    last_seq: u64,
    target: NodeId,
}

impl Conn {
    /// A connection to servers `0..servers` (at least 1), with a session drawn from
    /// `rng` (a restarted node starts a new one); it starts with server
    /// `first % servers`.
    pub fn new(servers: usize, first: NodeId, rng: &mut impl Rng) -> Self {
        assert!(servers >= 1, "a connection needs a server");
        Conn {
            servers,
            session: NODE_SESSION_BASE + rng.gen::<u32>() as ClientId,
            last_seq: 0,
            target: first % servers,
        }
    }

    /// The same connection numbering its requests from `base + 1` on: several
    /// connections of one node (a caller's watchers) then never share a request
    /// number, which the servers key held queries by.
    pub fn with_seq_base(mut self, base: u64) -> Self {
        self.last_seq = base;
        self
    }

    /// The number of the last request started.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The session id.
    pub fn session(&self) -> ClientId {
        self.session
    }

    /// A new request to the current target.
    pub fn start(&mut self, req: ConsulRequest) -> Pending {
        self.last_seq += 1;
        Pending {
            seq: self.last_seq,
            req,
            to: self.target,
            attempt: 0,
        }
    }

    /// Aims `p`'s next attempt at the current target.
    pub fn retarget(&self, p: &mut Pending) {
        p.to = self.target;
        p.attempt += 1;
    }

    /// A server named `leader` as the leader: follow it (none named: the next).
    pub fn follow(&mut self, leader: Option<NodeId>) {
        match leader {
            Some(l) if l < self.servers && l != self.target => self.target = l,
            _ => self.next(),
        }
    }

    /// The current target did not answer: try the next server.
    pub fn next(&mut self) {
        self.target = (self.target + 1) % self.servers;
    }
}

/// How long an attempt of `req` may take: a blocking query's wait and its jitter
/// (a sixteenth) on top of the `timeout`.
pub fn attempt_timeout(req: &ConsulRequest, timeout_ms: u64) -> Duration {
    let wait_ms = match req {
        ConsulRequest::Read {
            min_index, wait_ms, ..
        } if *min_index > 0 => wait_ms + wait_ms / 16,
        _ => 0,
    };
    Duration::from_millis(wait_ms + timeout_ms)
}
