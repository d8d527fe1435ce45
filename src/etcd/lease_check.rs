//! A checker of etcd's lease guarantee, written from the lease API
//! (<https://etcd.io/docs/v3.5/learning/api/#lease-api>), independent of any lessor:
//! it sees only, in true time, what each lease's owner was told and when leases
//! were revoked by expiry.
//!
//! A lease's *acknowledgements* are its grant and every keepalive acknowledged to
//! its owner; each promises the owner the lease for its TTL from when the leader
//! renewed it, which lies between the request's first sending and its answer. So
//! safety counts the TTL from the sending (the earliest the renewal can have
//! been), liveness from the answer (the latest). The rules:
//!
//! - **Safety** ([`Rule::RevokedWhileAlive`]): a lease is not revoked by expiry
//!   less than its TTL after an acknowledgement, minus a clock-drift allowance:
//!   a revocation at `r` after an acknowledgement at `a <= r` with
//!   `r - a < ttl - drift` is a violation. `drift` is how much faster than true
//!   time the members' clocks may run over one TTL (0 for exact clocks); etcd
//!   tolerates none, but a lease's owner must not rely on the last part of it.
//! - **Liveness** ([`Rule::NotRevoked`]): a lease whose last acknowledgement was at
//!   `t` (or that was last renewed at `t`, the answer lost) is
//!   revoked by expiry by `t + ttl + bound` (revoked later, or still there
//!   when the history ends after that instant, is a violation). `bound` is the
//!   slack the system is allowed: the revocation loop's period, the time to commit
//!   the revocation, the extensions a leader change gives.
//!
//! Revocations by the owner are not recorded: only expiry is judged. Events of a
//! lease never granted in the history are ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::store::LeaseId;

/// What happened to one lease, in true time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    ttl: Duration,
    /// The grant and every acknowledged keepalive, in the order recorded: when its
    /// request was first sent and when its answer arrived (the leader started the
    /// countdown in between).
    acks: Vec<(Duration, Duration)>,
    /// The latest moment it may have been renewed (see [`LeaseHistory::attempt`]).
    last_attempt: Duration,
    /// When it was revoked by expiry.
    revoked: Option<Duration>,
}

/// The leases' history: grants, acknowledged keepalives, revocations by expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseHistory {
    leases: BTreeMap<LeaseId, Record>,
}

impl LeaseHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lease `id` was granted to its owner at `at` with `ttl_ms`.
    pub fn grant(&mut self, id: LeaseId, ttl_ms: u64, at: Duration) {
        self.grant_between(id, ttl_ms, at, at);
    }

    /// Lease `id` was granted with `ttl_ms` by a request first sent at `sent` and
    /// answered at `acked`: safety counts the TTL from `sent`, liveness from
    /// `acked`.
    pub fn grant_between(&mut self, id: LeaseId, ttl_ms: u64, sent: Duration, acked: Duration) {
        assert!(sent <= acked, "answered before it was sent");
        self.leases.insert(
            id,
            Record {
                ttl: Duration::from_millis(ttl_ms),
                acks: vec![(sent, acked)],
                last_attempt: sent,
                revoked: None,
            },
        );
    }

    /// A keepalive of `id` was acknowledged to its owner at `at`.
    pub fn keepalive(&mut self, id: LeaseId, at: Duration) {
        self.keepalive_between(id, at, at);
    }

    /// A keepalive of `id` first sent at `sent` was acknowledged at `acked` (as
    /// [`LeaseHistory::grant_between`]).
    pub fn keepalive_between(&mut self, id: LeaseId, sent: Duration, acked: Duration) {
        assert!(sent <= acked, "answered before it was sent");
        if let Some(r) = self.leases.get_mut(&id) {
            r.acks.push((sent, acked));
        }
    }

    /// Lease `id` may have been renewed at `at`: its owner sent a keepalive then,
    /// or a leader took one then, answered or not. Liveness counts the TTL from the
    /// latest such.
    pub fn attempt(&mut self, id: LeaseId, at: Duration) {
        if let Some(r) = self.leases.get_mut(&id) {
            r.last_attempt = r.last_attempt.max(at);
        }
    }

    /// Lease `id` was revoked by expiry at `at` (the revocation was applied).
    pub fn expired(&mut self, id: LeaseId, at: Duration) {
        if let Some(r) = self.leases.get_mut(&id) {
            r.revoked.get_or_insert(at);
        }
    }
}

/// The rule a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Revoked by expiry less than its TTL (minus drift) after an acknowledgement.
    RevokedWhileAlive,
    /// Not revoked by its last acknowledgement + TTL + bound.
    NotRevoked,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::RevokedWhileAlive => "revoked-while-alive",
            Rule::NotRevoked => "not-revoked",
        })
    }
}

/// A broken rule: the lease, the times, the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The lease.
    pub lease: LeaseId,
    /// The rule.
    pub rule: Rule,
    /// Its TTL.
    pub ttl: Duration,
    /// The acknowledgement the rule counts from: the latest at or before the
    /// revocation (safety), the latest of all (liveness).
    pub acked_at: Duration,
    /// When it was revoked by expiry (`None`: never).
    pub revoked_at: Option<Duration>,
    /// The instant the rule names: the earliest allowed revocation (safety), the
    /// latest (liveness).
    pub deadline: Duration,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: lease {} (TTL {:?}) acknowledged at {:?}, ",
            self.rule, self.lease, self.ttl, self.acked_at
        )?;
        match (self.rule, self.revoked_at) {
            (Rule::RevokedWhileAlive, Some(r)) => {
                write!(f, "revoked by expiry at {r:?}, before {:?}", self.deadline)
            }
            (_, Some(r)) => write!(f, "revoked by expiry at {r:?}, after {:?}", self.deadline),
            (_, None) => write!(f, "not revoked by {:?}", self.deadline),
        }
    }
}

/// Checks `history` up to true time `until` (when it ends), with a clock-drift
/// allowance `drift` for safety and a slack `bound` for liveness: the violations,
/// by lease id, safety first.
pub fn check(
    history: &LeaseHistory,
    drift: Duration,
    bound: Duration,
    until: Duration,
) -> Vec<Violation> {
    check_with(history, drift, &|_, _| bound, until)
}

/// [`check`] with a liveness slack that depends on the lease's window: `bound(a,
/// end)` for a lease last acknowledged at `a` and revoked at `end` (or still there
/// at `until`), so that a slack can grow with what happened in between (a new
/// leader's extension, say).
pub fn check_with(
    history: &LeaseHistory,
    drift: Duration,
    bound: &dyn Fn(Duration, Duration) -> Duration,
    until: Duration,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (&lease, r) in &history.leases {
        if let Some(revoked) = r.revoked {
            let latest = r
                .acks
                .iter()
                .map(|&(sent, _)| sent)
                .filter(|&a| a <= revoked)
                .max();
            if let Some(a) = latest {
                let earliest = a + r.ttl.saturating_sub(drift);
                if revoked < earliest {
                    out.push(Violation {
                        lease,
                        rule: Rule::RevokedWhileAlive,
                        ttl: r.ttl,
                        acked_at: a,
                        revoked_at: Some(revoked),
                        deadline: earliest,
                    });
                }
            }
        }
        let Some(last) = r.acks.iter().map(|&(_, acked)| acked).max() else {
            continue;
        };
        let last = last.max(r.last_attempt);
        let deadline = last + r.ttl + bound(last, r.revoked.unwrap_or(until));
        let late = match r.revoked {
            Some(revoked) => revoked > deadline,
            None => until > deadline,
        };
        if late {
            out.push(Violation {
                lease,
                rule: Rule::NotRevoked,
                ttl: r.ttl,
                acked_at: last,
                revoked_at: r.revoked,
                deadline,
            });
        }
    }
    out.sort_by_key(|v| (v.rule != Rule::RevokedWhileAlive, v.lease));
    out
}

#[cfg(test)]
mod tests;
