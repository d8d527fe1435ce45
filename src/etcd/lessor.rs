//! etcd's lessor, sans-IO: the countdown of each lease on the leader, after etcd's
//! lease API (<https://etcd.io/docs/v3.5/learning/api/#lease-api>) and its lessor
//! (`server/lease/lessor.go`).
//!
//! Every member holds one [`Lessor`]; the grants, revocations and checkpoints reach
//! all of them through Raft. Only the *primary* (the lessor of the leader) counts
//! down: the others hold each lease's TTL and wait to be promoted.
//!
//! - **Promote.** A member that becomes leader calls [`Lessor::promote`]: every
//!   lease expires its *remaining TTL* from now, which is the full TTL unless a
//!   checkpoint recorded less (etcd's `Promote`, `refresh`; etcd also adds an
//!   election timeout, which a caller models by passing a later `now`). Without
//!   checkpoints a new leader gives every lease its full TTL again, so leases that
//!   nobody keeps alive live as long as elections keep coming (etcd#9395).
//! - **Demote.** A member that stops being leader calls [`Lessor::demote`]: it
//!   forgets every countdown (etcd's `Demote`: every lease expires "forever").
//! - **Grant, revoke.** [`Lessor::grant`] and [`Lessor::revoked`] apply the
//!   committed `LeaseGrant` and `LeaseRevoke`; a grant on the primary starts its
//!   countdown at once.
//! - **Keepalive.** [`Lessor::renew`] restarts a lease's countdown at its full
//!   TTL; only the primary does it (others answer [`LeaseError::NotPrimary`]; etcd
//!   forwards the keepalive to the leader), and an expired lease is not found (it is
//!   about to be revoked).
//! - **Expiry.** [`Lessor::expired`] lists the leases the primary must propose to
//!   revoke, earliest expiry first (ties by id), at most `max_revokes` per call
//!   (etcd's `leaseRevokeRate`). They stay until the revocation is applied
//!   ([`Lessor::revoked`]), so a later call lists them again, as etcd retries.
//! - **Checkpoints.** With `checkpoint_ms` set, [`Lessor::checkpoint`] gives every
//!   lease's remaining TTL, once per interval, to be proposed through Raft and
//!   applied on every member with [`Lessor::apply_checkpoint`]; a promotion then
//!   resumes from it (etcd's `--experimental-enable-lease-checkpoint` with
//!   `CheckpointPersist`). A keepalive clears a checkpointed lease's remaining TTL
//!   with a checkpoint of the full TTL, returned by the next call whatever the
//!   interval (etcd proposes it from `Renew` at once): without it a new leader
//!   would resume from the older, shorter remaining TTL.
//! - **Stalls.** The primary's clock is the `now` of its calls. A gap of more
//!   than `stall_ms` between two calls means its loop was stalled (a blocked disk,
//!   a paused process), long enough for another member to have been elected, to
//!   have promoted the leases and acknowledged keepalives. After such a gap the
//!   lessor neither revokes nor renews until the leader confirms it still is one
//!   ([`Lessor::confirm_primary`], after a quorum round such as a ReadIndex) or
//!   learns it is not ([`Lessor::demote`]); [`Lessor::needs_confirmation`] says
//!   when. etcd fixed #15247 the same way, by confirming leadership before revoking
//!   (`ensureLeadership`).
//!
//! Time is a monotonic [`Duration`] passed in by the caller; everything is
//! deterministic (ordered maps) and pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::store::LeaseId;

/// Faults to inject into the lessor (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LessorBugs {
    /// `lease-revoke-by-stale-leader`: the lessor does not notice a stall. A
    /// primary whose loop resumes after a stall, before it learns it was replaced,
    /// acts on its countdown from before the stall: its first call to
    /// [`Lessor::expired`] lists every lease whose old expiry passed during the
    /// stall, without asking for leadership to be confirmed, and it still
    /// acknowledges keepalives. Meanwhile a new leader had promoted those leases
    /// and kept them alive for their owners; the stale leader's revocation,
    /// forwarded to it and committed, deletes the keys of live owners (etcd#15247).
    pub revoke_by_stale_countdown: bool,
}

/// A lessor's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LessorConfig {
    /// The checkpoint interval in ms (`None`: no checkpoints, etcd's default).
    pub checkpoint_ms: Option<u64>,
    /// The most leases [`Lessor::expired`] lists per call (at least 1).
    pub max_revokes: usize,
    /// The longest gap between two calls of the primary that is not a stall (ms).
    /// Keep it below the election timeout: followers wait that long before they
    /// elect another leader.
    pub stall_ms: u64,
}

impl Default for LessorConfig {
    /// No checkpoints, 1,000 revocations per call (etcd's `leaseRevokeRate`), a
    /// stall beyond 500 ms (etcd's revocation loop runs every 500 ms).
    fn default() -> Self {
        LessorConfig {
            checkpoint_ms: None,
            max_revokes: 1000,
            stall_ms: 500,
        }
    }
}

/// Why a lessor refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseError {
    /// Only the primary renews (etcd's `ErrNotPrimary`); also the answer of a primary
    /// that must confirm its leadership after a stall.
    NotPrimary,
    /// No such lease, or it has expired (etcd's `ErrLeaseNotFound`).
    NotFound(LeaseId),
    /// A grant names a lease that exists.
    Exists(LeaseId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lease {
    ttl_ms: u64,
    /// The remaining TTL a checkpoint recorded (`None`: the full TTL).
    remaining_ms: Option<u64>,
    /// When it expires, on the primary only.
    expiry: Option<Duration>,
    /// This primary proposed a checkpoint of less than the TTL, maybe not yet
    /// applied.
    proposed: bool,
    /// A keepalive cleared its checkpoint: the next checkpoint must say so.
    reset_pending: bool,
}

/// The leases of one member and, on the primary, their countdown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lessor {
    config: LessorConfig,
    bugs: LessorBugs,
    leases: BTreeMap<LeaseId, Lease>,
    primary: bool,
    /// Primary, but stalled since the last confirmation of its leadership.
    unconfirmed: bool,
    /// The latest `now` seen while primary.
    last_seen: Option<Duration>,
    /// When the next interval checkpoint is due.
    next_checkpoint: Option<Duration>,
}

fn ms(d: u64) -> Duration {
    Duration::from_millis(d)
}

/// `d` in whole ms, rounded up (a checkpoint never shortens a lease).
fn ceil_ms(d: Duration) -> u64 {
    let n = d.as_nanos();
    n.div_ceil(1_000_000) as u64
}

impl Lessor {
    /// A follower's lessor with no leases.
    pub fn new(config: LessorConfig, bugs: LessorBugs) -> Self {
        Lessor {
            config: LessorConfig {
                max_revokes: config.max_revokes.max(1),
                ..config
            },
            bugs,
            leases: BTreeMap::new(),
            primary: false,
            unconfirmed: false,
            last_seen: None,
            next_checkpoint: None,
        }
    }

    /// Whether this lessor is the primary.
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Whether the primary stalled and waits for [`confirm_primary`](Self::confirm_primary)
    /// or [`demote`](Self::demote) before it revokes or renews again.
    pub fn needs_confirmation(&self) -> bool {
        self.primary && self.unconfirmed
    }

    /// The leases, in id order.
    pub fn leases(&self) -> impl Iterator<Item = LeaseId> + '_ {
        self.leases.keys().copied()
    }

    /// The TTL of lease `id` in ms.
    pub fn ttl_ms(&self, id: LeaseId) -> Option<u64> {
        self.leases.get(&id).map(|l| l.ttl_ms)
    }

    /// The checkpointed remaining TTL of lease `id` in ms (`None`: none, or no lease).
    pub fn checkpointed_ms(&self, id: LeaseId) -> Option<u64> {
        self.leases.get(&id).and_then(|l| l.remaining_ms)
    }

    /// When lease `id` expires, on the primary.
    pub fn expiry(&self, id: LeaseId) -> Option<Duration> {
        self.leases.get(&id).and_then(|l| l.expiry)
    }

    /// Notes a call at `now`; a gap beyond `stall_ms` since the last one is a stall.
    fn observe(&mut self, now: Duration) {
        if !self.primary {
            return;
        }
        if let Some(last) = self.last_seen {
            if now.saturating_sub(last) > ms(self.config.stall_ms)
                && !self.bugs.revoke_by_stale_countdown
            {
                self.unconfirmed = true;
            }
        }
        self.last_seen = Some(self.last_seen.map_or(now, |l| l.max(now)));
    }

    /// Acting as primary: promoted, and not waiting for a confirmation.
    fn acting(&mut self, now: Duration) -> bool {
        self.observe(now);
        self.primary && !self.unconfirmed
    }

    /// The member became leader at `now`: every lease expires its remaining TTL
    /// (checkpointed, or full) from now.
    pub fn promote(&mut self, now: Duration) {
        self.primary = true;
        self.unconfirmed = false;
        self.last_seen = Some(now);
        self.next_checkpoint = self.config.checkpoint_ms.map(|c| now + ms(c));
        for l in self.leases.values_mut() {
            l.expiry = Some(now + ms(l.remaining_ms.unwrap_or(l.ttl_ms)));
        }
    }

    /// The member is no longer leader: no countdown.
    pub fn demote(&mut self) {
        self.primary = false;
        self.unconfirmed = false;
        self.last_seen = None;
        self.next_checkpoint = None;
        for l in self.leases.values_mut() {
            l.expiry = None;
            l.proposed = false;
            l.reset_pending = false;
        }
    }

    /// The leader confirmed at `now` that it still is one (a quorum answered it
    /// after the stall): the primary resumes its countdown.
    pub fn confirm_primary(&mut self, now: Duration) {
        if self.primary {
            self.unconfirmed = false;
            self.last_seen = Some(self.last_seen.map_or(now, |l| l.max(now)));
        }
    }

    /// Applies a committed grant of `id` with `ttl_ms`, at `now` (the countdown
    /// starts at once on the primary).
    pub fn grant(&mut self, id: LeaseId, ttl_ms: u64, now: Duration) -> Result<(), LeaseError> {
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists(id));
        }
        self.observe(now);
        let expiry = self.primary.then(|| now + ms(ttl_ms));
        self.leases.insert(
            id,
            Lease {
                ttl_ms,
                remaining_ms: None,
                expiry,
                proposed: false,
                reset_pending: false,
            },
        );
        Ok(())
    }

    /// Applies a committed revocation of `id` (by its owner or by expiry); false if
    /// there was no such lease.
    pub fn revoked(&mut self, id: LeaseId) -> bool {
        self.leases.remove(&id).is_some()
    }

    /// A keepalive for `id` at `now`: on the primary, its countdown restarts at the
    /// full TTL, which is returned (ms).
    pub fn renew(&mut self, id: LeaseId, now: Duration) -> Result<u64, LeaseError> {
        if !self.acting(now) {
            return Err(LeaseError::NotPrimary);
        }
        let checkpoints = self.config.checkpoint_ms.is_some();
        let l = self.leases.get_mut(&id).ok_or(LeaseError::NotFound(id))?;
        if l.expiry.is_some_and(|e| e <= now) {
            return Err(LeaseError::NotFound(id));
        }
        l.expiry = Some(now + ms(l.ttl_ms));
        if checkpoints && (l.remaining_ms.is_some() || l.proposed) {
            l.reset_pending = true;
        }
        Ok(l.ttl_ms)
    }

    /// The checkpoints to propose at `now`, in id order: the remaining TTL (ms,
    /// rounded up) of every lease that has used part of it, once per
    /// `checkpoint_ms`; and, at every call, the full TTL of each lease a keepalive
    /// renewed since a checkpoint of it was proposed or applied. Empty without `checkpoint_ms`, or off the
    /// primary.
    pub fn checkpoint(&mut self, now: Duration) -> Vec<(LeaseId, u64)> {
        let Some(interval) = self.config.checkpoint_ms else {
            return Vec::new();
        };
        if !self.acting(now) {
            return Vec::new();
        }
        let due = self.next_checkpoint.is_some_and(|t| t <= now);
        if due {
            self.next_checkpoint = Some(now + ms(interval));
        }
        let mut out = Vec::new();
        for (&id, l) in &mut self.leases {
            let Some(expiry) = l.expiry else { continue };
            let remaining = ceil_ms(expiry.saturating_sub(now)).min(l.ttl_ms);
            if std::mem::take(&mut l.reset_pending) {
                l.proposed = false;
                out.push((id, l.ttl_ms));
            } else if due && remaining < l.ttl_ms {
                l.proposed = true;
                out.push((id, remaining));
            }
        }
        out
    }

    /// Applies a committed checkpoint: lease `id` has `remaining_ms` left (the full
    /// TTL clears it). It moves no countdown; the next promotion starts from it.
    pub fn apply_checkpoint(&mut self, id: LeaseId, remaining_ms: u64) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.remaining_ms = (remaining_ms < l.ttl_ms).then_some(remaining_ms);
        }
    }

    /// The leases the primary must propose to revoke at `now`: expired, earliest
    /// first (ties by id), at most `max_revokes`. Empty off the primary and while a
    /// stalled primary waits for confirmation.
    pub fn expired(&mut self, now: Duration) -> Vec<LeaseId> {
        if !self.acting(now) {
            return Vec::new();
        }
        let mut due: Vec<(Duration, LeaseId)> = self
            .leases
            .iter()
            .filter_map(|(&id, l)| l.expiry.filter(|&e| e <= now).map(|e| (e, id)))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .take(self.config.max_revokes)
            .map(|(_, id)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests;
