//! Raft configuration (the scenario's `[cluster.config]` table) and injectable bugs.

use std::time::Duration;

use serde::Deserialize;

use super::membership::Membership;

/// How a `get` is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Linearizable: the leader records its commit index, confirms it is still leader
    /// with a heartbeat round to a majority, waits until it has applied that index, then
    /// answers. Only after its term's no-op is committed (so its commit index is current).
    #[default]
    ReadIndex,
    /// The leader answers locally while it holds a lease: a majority acknowledged a
    /// heartbeat sent less than `election_timeout_ms_min - lease_drift_bound_ms` ago.
    /// Linearizable only while clock drift stays within the bound (and with CheckQuorum,
    /// which makes followers refuse votes while they hear from a leader).
    Lease,
    /// Unsafe: the leader answers from its own state without confirming leadership.
    LeaderLocal,
    /// Unsafe: any replica answers from its own state.
    Follower,
}

/// The `[cluster.config]` table of a Raft scenario (times in milliseconds, on each
/// node's monotonic clock).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// Election timeouts are drawn uniformly from [min, max).
    pub election_timeout_ms_min: u64,
    /// See `election_timeout_ms_min`.
    pub election_timeout_ms_max: u64,
    /// Leader heartbeat interval; must be well below the election timeout.
    pub heartbeat_ms: u64,
    /// Thesis §9.6: a node first asks whether it could win before bumping its term.
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a majority within an election
    /// timeout; followers that hear from a leader ignore vote requests (§6).
    pub check_quorum: bool,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Most entries in one AppendEntries.
    pub max_batch_entries: usize,
    /// Most AppendEntries outstanding (sent, not acknowledged) per follower.
    pub max_inflight_appends: usize,
    /// Take a snapshot once this many applied entries follow the last one.
    pub snapshot_threshold_entries: u64,
    /// The clock drift a lease tolerates: lease = election_timeout_ms_min - this.
    pub lease_drift_bound_ms: u64,
    /// Most client requests a leader holds (proposed, not yet answered; reads waiting).
    pub max_pending_requests: usize,
    /// Progress check, judged during the fault phase too (0 = off): a leader may hold an
    /// uncommitted entry without its commit index moving for at most this long. Only
    /// meaningful where a leader is expected to stay able to commit (no pauses, no
    /// minority partitions longer than the bound with CheckQuorum off).
    pub max_commit_stall_ms: u64,
    /// The bootstrap configuration: nodes `0..initial_voters` are its voters; the
    /// others start as spares outside the cluster, for membership changes to add
    /// (thesis chapter 4). 0: every node is a voter.
    pub initial_voters: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            heartbeat_ms: 50,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::ReadIndex,
            max_batch_entries: 64,
            max_inflight_appends: 8,
            snapshot_threshold_entries: 1000,
            lease_drift_bound_ms: 30,
            max_pending_requests: 1024,
            max_commit_stall_ms: 0,
            initial_voters: 0,
        }
    }
}

impl RaftConfig {
    /// [`RaftConfig::validate`] for a cluster of `nodes` nodes: at least one, and no
    /// more initial voters than nodes.
    pub fn validate_for(&self, nodes: usize) -> Result<(), (String, String)> {
        if nodes == 0 {
            return Err(("nodes".into(), "a cluster needs at least one node".into()));
        }
        self.validate()?;
        if self.initial_voters > nodes {
            return Err((
                "cluster.config.initial_voters".into(),
                format!(
                    "{} voters in a cluster of {nodes} nodes; at most the node count",
                    self.initial_voters
                ),
            ));
        }
        Ok(())
    }

    /// `Err((field, message))` for the first bad field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if self.election_timeout_ms_min == 0 {
            return bad("election_timeout_ms_min", "must be positive".into());
        }
        if self.election_timeout_ms_max <= self.election_timeout_ms_min {
            return bad(
                "election_timeout_ms_max",
                format!(
                    "must exceed election_timeout_ms_min ({}) so timeouts are randomized",
                    self.election_timeout_ms_min
                ),
            );
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= self.election_timeout_ms_min {
            return bad(
                "heartbeat_ms",
                format!(
                    "must be positive and below election_timeout_ms_min ({})",
                    self.election_timeout_ms_min
                ),
            );
        }
        if self.max_batch_entries == 0 || self.max_batch_entries > 10_000 {
            return bad("max_batch_entries", "must be in 1..=10000".into());
        }
        if self.max_inflight_appends == 0 || self.max_inflight_appends > 1024 {
            return bad("max_inflight_appends", "must be in 1..=1024".into());
        }
        if self.snapshot_threshold_entries == 0 {
            return bad("snapshot_threshold_entries", "must be positive".into());
        }
        if self.read_mode == ReadMode::Lease
            && self.lease_drift_bound_ms >= self.election_timeout_ms_min
        {
            return bad(
                "lease_drift_bound_ms",
                "must be below election_timeout_ms_min, or the lease is empty".into(),
            );
        }
        if self.read_mode == ReadMode::Lease && !self.check_quorum {
            return bad(
                "read_mode",
                "lease reads need check_quorum: followers must refuse votes while a \
                 leader's lease may still hold"
                    .into(),
            );
        }
        // Without PreVote a higher term can reach a follower inside the lease in a
        // reply, knock it out of the lease and let it vote for a new leader while the
        // old lease still holds; PreVote keeps every term above the lease's out until a
        // majority has heard nothing from the leader (thesis §9.6). etcd only
        // recommends the pair; faultline requires it.
        if self.read_mode == ReadMode::Lease && !self.pre_vote {
            return bad(
                "read_mode",
                "lease reads need pre_vote: without it a higher term in a reply can make a \
                 follower in the lease vote for a new leader while the old lease holds"
                    .into(),
            );
        }
        if self.max_pending_requests == 0 {
            return bad("max_pending_requests", "must be positive".into());
        }
        Ok(())
    }

    /// The bootstrap configuration of a cluster of `nodes`: voters `0..initial_voters`
    /// (every node when 0).
    pub fn bootstrap_membership(&self, nodes: usize) -> Membership {
        let voters = match self.initial_voters {
            0 => nodes,
            n => n.min(nodes),
        };
        Membership::new(0..voters)
    }

    /// `election_timeout_ms_min`.
    pub fn election_timeout_min(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms_min)
    }

    /// `heartbeat_ms`.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// How long a majority's heartbeat acknowledgement keeps a lease.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(
            self.election_timeout_ms_min
                .saturating_sub(self.lease_drift_bound_ms),
        )
    }
}
