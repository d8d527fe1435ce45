//! etcd as a [`System`] for scenario files (`[cluster] protocol = "etcd"`): etcd
//! members ([`super::server::EtcdServer`]: Raft replicating the MVCC store, the
//! lessor, the watches), and, when `[cluster.config.discovery]` gives nodes roles,
//! service instances registered under leases and callers that watch and call them
//! ([`super::node::EtcdNode`]). etcd clients ([`EtcdClient`]) are the workload;
//! Raft's invariants are checked after every step, etcd's key-value guarantees
//! ([`super::kv_check`]) judge the history, and with roles the lease guarantee, the
//! watch guarantees and the discovery figures ([`super::checks`]) come too.
//!
//! `[cluster.config]` is [`EtcdConfig`]: Raft's settings, whose `read_mode` decides
//! the ranges' consistency (`read_index` or `lease` serve etcd's linearizable reads,
//! `follower` its serializable ones; the other read modes are refused), the
//! members' ([`super::server::ServerConfig`]) and the roles. `[workload]` is
//! [`EtcdWorkload`]. The bugs `--bug` injects are [`BUGS`].

use std::time::Duration;

use super::checks::{DiscoveryFigures, LeaseGuarantee, WatchGuarantees};
use super::client::{EtcdClient, EtcdOp, EtcdWorkload};
use super::config::EtcdConfig;
use super::node::{EtcdBugs, EtcdNode};
use crate::check::Checker;
use crate::history::HistoryEvent;
use crate::process::{ClientId, NodeId};
use crate::raft::{invariants, ReadMode};
use crate::system::{Bug, Setup, System, Verdict};

/// Raft replicating etcd's MVCC store, driven by simulated etcd clients.
pub struct Etcd;

/// The bugs an etcd run can inject: Raft's that `etcd-nemesis` is known to catch
/// (results/etcd/nemesis.md gives the seeds), the lessor's and the watch's, each
/// with the scenario that catches it.
pub const BUGS: &[Bug] = &[
    Bug {
        name: "read-before-noop",
        scenario: "etcd-nemesis",
        description: "A new leader serves linearizable ranges before its term's no-op \
                      commits, from a commit index that may lag writes its predecessor \
                      acknowledged: a range answers at a revision below an acknowledged \
                      write's (etcd's read-revision guarantee; linearizability).",
    },
    Bug {
        name: "ignore-fsync-error",
        scenario: "etcd-nemesis",
        description: "On an fsync error a node carries on as if the sync had succeeded; \
                      the entries it acknowledged left the page cache, and the next crash \
                      loses them (recovery-keeps-durable).",
    },
    Bug {
        name: "lease-revoke-by-stale-leader",
        scenario: "etcd-stuck-leader-leases",
        description: "A leader whose loop was stalled (its disk stuck) resumes and revokes \
                      the leases its old countdown says expired, without first confirming \
                      it still leads; forwarded to the new leader, which had kept them \
                      alive, the revocation deletes the keys of live owners (etcd#15247; \
                      lease-guarantee).",
    },
    Bug {
        name: "watch-skip-at-compaction",
        scenario: "etcd-watch-compaction",
        description: "A watch that starts exactly at the compaction revision misses the \
                      events of that revision (etcd#18089, #19179; watch reliable).",
    },
    Bug {
        name: "watch-resume-off-by-one",
        scenario: "etcd-watch-compaction",
        description: "A caller resumes a broken watch one revision too late, losing the \
                      events of the revision after the last it saw (watch reliable).",
    },
];

impl Etcd {
    /// The bugs a set-up switches on; panics on a name that is not one of
    /// [`System::bugs`] (validation refuses those first).
    pub fn bugs_of(setup: &Setup<Etcd>) -> EtcdBugs {
        let mut bugs = EtcdBugs::default();
        for name in &setup.bugs {
            match name.as_str() {
                "lease-revoke-by-stale-leader" => bugs.lessor.revoke_by_stale_countdown = true,
                "watch-skip-at-compaction" => bugs.watch.skip_at_compaction = true,
                "watch-resume-off-by-one" => bugs.watch.resume_off_by_one = true,
                _ => assert!(
                    bugs.raft.set(name),
                    "unknown raft bug {name:?} (validate rejects it)"
                ),
            }
        }
        bugs
    }
}

impl System for Etcd {
    const NAME: &'static str = "etcd";
    const HISTORY_CHECK: &'static str = "etcd-kv-guarantees";
    type Process = EtcdNode;
    type Client = EtcdClient;
    type Config = EtcdConfig;
    type Workload = EtcdWorkload;

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        let cfg = &setup.config;
        cfg.discovery_validate(setup.nodes)?;
        cfg.raft_for(setup.nodes).validate_for(setup.nodes)?;
        cfg.server.validate()?;
        if cfg.raft.read_mode == ReadMode::LeaderLocal {
            return Err((
                "cluster.config.read_mode".into(),
                "etcd's ranges are linearizable (read_index, lease) or serializable \
                 (follower); leader_local is neither"
                    .into(),
            ));
        }
        setup.workload.validate()?;
        for name in &setup.bugs {
            if !BUGS.iter().any(|b| b.name == name) {
                let known: Vec<_> = Self::bugs().iter().map(|b| b.name).collect();
                return Err((
                    "bugs".into(),
                    format!("unknown bug {name:?}; known: {}", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn process(setup: &Setup<Self>, id: NodeId) -> EtcdNode {
        EtcdNode::new(&setup.config, Self::bugs_of(setup), setup.nodes, id)
    }

    fn clients(setup: &Setup<Self>) -> usize {
        setup.workload.clients
    }

    fn client(setup: &Setup<Self>, _id: ClientId) -> EtcdClient {
        let serializable = setup.config.raft.read_mode == ReadMode::Follower;
        EtcdClient::new(setup.workload.clone(), serializable)
            .with_servers(setup.config.servers(setup.nodes))
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<EtcdNode>>> {
        let raft = setup.config.raft_for(setup.nodes);
        let leader_ms = setup.leader_ms.unwrap_or(10 * raft.election_timeout_ms_max);
        let mut checkers = invariants::all(setup.nodes, &raft, Duration::from_millis(leader_ms));
        let d = &setup.config.discovery;
        if d.instances > 0 {
            let servers = setup.config.servers(setup.nodes);
            let callers = servers + d.instances..setup.nodes;
            let checkpoint_ms = setup.config.server.lease_checkpoint_ms;
            checkers.push(Box::new(LeaseGuarantee::new(
                setup.config.lease_bound(),
                Duration::from_millis(setup.config.raft.election_timeout_ms_max),
                (checkpoint_ms > 0).then(|| Duration::from_millis(checkpoint_ms)),
            )));
            checkers.push(Box::new(WatchGuarantees::new()));
            checkers.push(Box::new(DiscoveryFigures::new(
                &d.service, servers, callers,
            )));
        }
        checkers
    }

    fn check_history(_setup: &Setup<Self>, history: &[HistoryEvent<EtcdOp>]) -> Verdict {
        super::kv_check::check(history)
    }

    fn bugs() -> &'static [Bug] {
        BUGS
    }

    fn sometimes() -> &'static [&'static str] {
        crate::raft::RaftKv::sometimes()
    }

    fn ops_per_client_key() -> Option<&'static str> {
        Some("ops_per_client_max")
    }

    fn leader_bound_ms(setup: &Setup<Self>) -> Option<u64> {
        Some(10 * setup.config.raft.election_timeout_ms_max)
    }

    /// As for Raft's KV store: the leader bound, two operation timeouts for the
    /// clients, and 20 heartbeats for lagging replicas to catch up.
    fn liveness_bound_ms(setup: &Setup<Self>) -> Option<u64> {
        let cfg = &setup.config.raft;
        let leader_ms = setup.leader_ms.unwrap_or(10 * cfg.election_timeout_ms_max);
        Some(leader_ms + 2 * setup.workload.op_timeout_ms + 20 * cfg.heartbeat_ms)
    }
}
