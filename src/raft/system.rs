//! Raft + KV as a [`System`] for scenario files.

use std::time::Duration;

use super::bugs::Bugs;
use super::config::RaftConfig;
use super::invariants;
use super::RaftProcess;
use crate::check::Checker;
use crate::history::{HistoryEvent, KvOp};
use crate::kv::{KvClient, KvWorkload};
use crate::process::{ClientId, NodeId};
use crate::scenario::Members;
use crate::system::{Bug, MemberAnswer, MemberChange, Setup, System, Verdict};

use super::membership::{ConfChange, ConfChangeError, MemberChange as RaftChange};
use super::messages::{Record, Request, RequestOp, Response};

/// Raft replicating the KV store, driven by simulated KV clients.
pub struct RaftKv;

/// The bug library: each is a realistic mistake and the shipped scenario that shows it.
pub const BUGS: &[Bug] = &[
    Bug {
        name: "vote-not-persisted",
        scenario: "raft-election",
        description: "A node grants its vote without making it durable first; after a crash \
                      and restart it votes again in the same term, and two leaders are elected \
                      in one term (election safety).",
    },
    Bug {
        name: "figure8-commit",
        scenario: "raft-figure8",
        description: "A leader commits an entry from an earlier term by counting replicas \
                      (and appends no no-op); a later leader overwrites it after it was applied \
                      (Raft Figure 8; state machine safety, leader completeness).",
    },
    Bug {
        name: "stale-append-truncates",
        scenario: "raft-nemesis",
        description: "A follower cuts its log after prev_index on every matching AppendEntries; \
                      a delayed or duplicated message takes back entries it already acknowledged, \
                      and an entry counted as committed disappears (leader completeness).",
    },
    Bug {
        name: "vote-without-log-check",
        scenario: "raft-minority-partition",
        description: "Votes are granted without the §5.4.1 up-to-date check; a node missing \
                      committed entries becomes leader and overwrites them (leader completeness, \
                      state machine safety).",
    },
    Bug {
        name: "apply-uncommitted",
        scenario: "raft-figure8",
        description: "Followers advance their commit index to the leader's, bounded only by their \
                      own log, and apply a stale tail never checked against the leader (state \
                      machine safety).",
    },
    Bug {
        name: "ack-before-sync",
        scenario: "raft-leader-crash",
        description:
            "The leader answers a write as soon as it appends it, before it is durable or \
                      replicated; a crash loses the acknowledged write (no acknowledged write \
                      lost; linearizability).",
    },
    Bug {
        name: "stale-vote-counting",
        scenario: "raft-election",
        description: "A candidate counts vote replies from earlier terms and duplicates; with \
                      delayed and duplicated messages two leaders win one term (election safety).",
    },
    Bug {
        name: "no-prevote-checkquorum",
        scenario: "raft-bridge-partition",
        description: "PreVote and CheckQuorum are off: a leader that can send but not hear keeps \
                      its followers from timing out while nothing commits, and a follower that \
                      cannot hear deposes healthy leaders again and again (progress).",
    },
    Bug {
        name: "read-before-noop",
        scenario: "raft-minority-partition",
        description:
            "A new leader serves read_index reads before its term's no-op commits, from a \
                      commit index that may lag writes its predecessor acknowledged: a stale read \
                      (linearizability).",
    },
    Bug {
        name: "send-before-persist",
        scenario: "raft-disk-crash",
        description: "A node sends a message as soon as its step ends, before the sync of the \
                      writes it depends on completes: a follower acknowledges an append, or grants \
                      a vote, that a crash then takes back (leader completeness, election safety).",
    },
    Bug {
        name: "ignore-fsync-error",
        scenario: "raft-fsync-error",
        description: "On an fsync error a node carries on as if the sync had succeeded; the \
                      entries it acknowledged were dropped from the page cache, and the next \
                      crash loses them (leader completeness; linearizability).",
    },
    Bug {
        name: "no-catch-up",
        scenario: "raft-follower-catch-up",
        description: "After a follower rejects an append (its log diverged or fell behind), \
                      the leader sends it no more entries until the next election, while its \
                      heartbeats keep the follower from campaigning; the follower stays behind \
                      for good (hashicorp/raft#612; liveness: a live replica must catch up).",
    },
    Bug {
        name: "learner-votes",
        scenario: "raft-learner-votes",
        description: "Learners are counted in quorums: their acknowledgements commit and their \
                      votes elect, though no configuration's majority stands behind them \
                      (membership-safety).",
    },
    Bug {
        name: "config-on-commit",
        scenario: "raft-config-on-commit",
        description: "A node uses a new configuration only once its entry commits, not once it \
                      is in its log (thesis §4.1 uses it at once): a leader counts quorums in a \
                      configuration its log has moved past (membership-safety).",
    },
    Bug {
        name: "single-change-without-term-entry",
        scenario: "raft-single-change-without-term-entry",
        description: "A new leader changes membership one server at a time before an entry of                       its own term is committed (the 2015 raft-dev bug; thesis §4.1's fix): with                       a change of the old leader's still in some logs, two configurations that                       share no majority each elect a leader (leader completeness).",
    },
];

impl RaftKv {
    /// The bugs a set-up switches on, as the processes read them; panics on a name
    /// that is not one of [`System::bugs`] (validation refuses those first).
    pub fn bugs_of(setup: &Setup<RaftKv>) -> Bugs {
        let mut bugs = Bugs::default();
        for name in &setup.bugs {
            let known = bugs.set(name);
            assert!(known, "unknown raft bug {name:?} (validate rejects it)");
        }
        bugs
    }
}

impl System for RaftKv {
    const NAME: &'static str = "raft";
    const HISTORY_CHECK: &'static str = "linearizability";
    type Process = RaftProcess;
    type Client = KvClient;
    type Config = RaftConfig;
    type Workload = KvWorkload;

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        setup.config.validate_for(setup.nodes)?;
        setup.workload.validate()?;
        for name in &setup.bugs {
            if !Bugs::default().set(name) {
                let known: Vec<_> = BUGS.iter().map(|b| b.name).collect();
                return Err((
                    "bugs".into(),
                    format!("unknown bug {name:?}; known: {}", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn process(setup: &Setup<Self>, _id: NodeId) -> RaftProcess {
        RaftProcess::new(setup.config.clone(), Self::bugs_of(setup))
    }

    fn clients(setup: &Setup<Self>) -> usize {
        setup.workload.clients
    }

    fn client(setup: &Setup<Self>, _id: ClientId) -> KvClient {
        KvClient::new(setup.workload.clone())
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<RaftProcess>>> {
        let leader_ms = setup
            .leader_ms
            .unwrap_or(10 * setup.config.election_timeout_ms_max);
        invariants::all(setup.nodes, &setup.config, Duration::from_millis(leader_ms))
    }

    fn check_history(_setup: &Setup<Self>, history: &[HistoryEvent<KvOp>]) -> Verdict {
        // Bounded by search steps alone, so a seed's verdict never depends on the
        // machine's load.
        crate::check::linearizability::check_kv(history, None).verdict
    }

    fn sometimes() -> &'static [&'static str] {
        &[
            "leader-stepped-down-with-uncommitted-entries",
            "lease-read-refused",
            "follower-log-truncated",
            "snapshot-installed",
            // Marked by the election safety checker's metrics.
            "leader-changed",
        ]
    }
    fn bugs() -> &'static [Bug] {
        BUGS
    }

    /// Ten election timeouts (at most): with randomized timeouts a split vote repeats
    /// with probability well under a half, so ten in a row is rare on a network that
    /// meets the §5.6 timing requirement.
    fn ops_per_client_key() -> Option<&'static str> {
        Some("ops_per_client_max")
    }

    fn leader_bound_ms(setup: &Setup<Self>) -> Option<u64> {
        Some(10 * setup.config.election_timeout_ms_max)
    }

    /// Voters `0..initial_voters` (every node when 0); the others are spares.
    fn bootstrap_members(setup: &Setup<Self>) -> Option<Members> {
        let bootstrap = setup.config.bootstrap_membership(setup.nodes);
        Some(Members::voters(bootstrap.voters().iter().copied()))
    }

    /// A single-server change (thesis §4.1; etcd's `member add [--learner]` and
    /// `member remove`): one node changes at a time.
    fn member_request(_setup: &Setup<Self>, change: MemberChange, seq: u64) -> Request {
        let change = match change {
            MemberChange::Add {
                node,
                learner: false,
            } => RaftChange::AddVoter(node),
            MemberChange::Add {
                node,
                learner: true,
            } => RaftChange::AddLearner(node),
            MemberChange::Remove { node } => RaftChange::Remove(node),
        };
        Request {
            seq,
            op: RequestOp::ConfChange(std::sync::Arc::new(ConfChange::Single(change))),
        }
    }

    /// `Reconfigured` is final, and so is a refusal the configuration itself gives
    /// (already a member, not a member, no voter left...); a change in flight, a
    /// leader whose term has no committed entry yet and a learner not yet in sync
    /// pass, so those are retried, as
    /// are `Unavailable` and `Dropped` (the outcome unknown: a retry of a change that
    /// did commit is then refused as already done).
    fn member_answer(response: &Response) -> MemberAnswer {
        match response {
            Response::Reconfigured { .. } => MemberAnswer::Committed,
            Response::Refused {
                error:
                    error @ (ConfChangeError::InFlight(_)
                    | ConfChangeError::TermNotCommitted
                    | ConfChangeError::LearnerBehind(_)),
                ..
            } => MemberAnswer::Retry(error.to_string()),
            Response::Refused { error, .. } => MemberAnswer::Refused(error.to_string()),
            Response::Redirect { leader, .. } => MemberAnswer::Redirect(*leader),
            Response::Unavailable { .. } => MemberAnswer::Retry("the leader is unavailable".into()),
            Response::Dropped { .. } => {
                MemberAnswer::Retry("leadership lost: the outcome is unknown".into())
            }
            Response::Written { .. }
            | Response::Value { .. }
            | Response::TransferStarted { .. } => {
                MemberAnswer::Retry(format!("not an answer to a change: {response:?}"))
            }
        }
    }

    /// A [`Record::Join`] naming the index of the entry that removed the node.
    fn rejoin_records(
        _setup: &Setup<Self>,
        node: NodeId,
        removal: &Response,
    ) -> Vec<(String, Record)> {
        match removal {
            Response::Reconfigured { index, .. } => {
                vec![("join".into(), Record::Join { removed_at: *index })]
            }
            _ => unreachable!("node {node}'s removal committed with {removal:?}"),
        }
    }

    /// Unless a scenario sets `liveness.quiesce_ms`: the bound on a leader
    /// followed by a majority (`liveness.leader_ms`, else 10 election timeouts), 2 operation timeouts for the clients (an operation in
    /// flight at the heal ends within one; the write the workload sends after the heal
    /// to show progress, within another), and 20 heartbeats for lagging replicas to
    /// catch up (each heartbeat restarts a stalled pipeline; a snapshot install is one
    /// round trip). With the defaults: 3 000 + 6 000 + 1 000 = 10 000 ms.
    fn liveness_bound_ms(setup: &Setup<Self>) -> Option<u64> {
        let cfg = &setup.config;
        let leader_ms = setup.leader_ms.unwrap_or(10 * cfg.election_timeout_ms_max);
        Some(leader_ms + 2 * setup.workload.op_timeout_ms + 20 * cfg.heartbeat_ms)
    }
}
