//! Simulated etcd clients: each runs one key-value request at a time, drawn from a
//! weighted mix of put, range, delete and an optimistic-concurrency transaction over
//! a few keys, and records every operation, with the revision its answer carried, in
//! the history (invoke, then ok / fail / info).
//!
//! The requests follow etcd's KV API (<https://etcd.io/docs/v3.5/learning/api/>):
//!
//! - **put** `key = value`; the answer's header revision is the put's revision.
//! - **range** `key`, at the current revision: linearizable by default (the cluster's
//!   `read_mode` is `read_index` or `lease`), serializable when the cluster answers
//!   reads from any member's own state (`read_mode = "follower"`, etcd's
//!   `--consistency=s`). The answer gives the value, its `mod_revision`, and the
//!   store's header revision.
//! - **delete** `key`; the answer says how many keys went.
//! - **txn**, etcd's optimistic-concurrency recipe: `if mod_revision(key) == r then
//!   put(key, value) else range(key)`, where `r` is the key's mod revision as this
//!   client last saw it (0: absent, never seen).
//!
//! Retries and redirects are the session client's ([`crate::raft::client`]), as for the
//! KV client: every attempt of an operation carries its session sequence number, so
//! Raft applies it at most once; an attempt with no answer within `request_timeout_ms`
//! goes to the next node, a redirect to the leader it names; once the clients quiesce
//! an operation is abandoned `op_timeout_ms` later. Client 0 puts key `probe` once
//! after the heal, so the liveness phase sees a fresh write commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    Compare, CompareResult, CompareTarget, EtcdCommand, EtcdOutput, EtcdQuery, EtcdStore, Op,
    OpResult, RangeResult,
};
use crate::history::OpType;
use crate::process::ClientId;
use crate::raft::client::{Pacing, RaftClient, Workload};
use crate::raft::RequestOp;

/// Relative weights of the request kinds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdMix {
    /// Weight of ranges (reads of one key).
    pub range: u32,
    /// Weight of puts.
    pub put: u32,
    /// Weight of deletes.
    pub delete: u32,
    /// Weight of transactions comparing the key's mod revision, then putting.
    pub txn: u32,
}

impl Default for EtcdMix {
    fn default() -> Self {
        EtcdMix {
            range: 40,
            put: 25,
            delete: 10,
            txn: 25,
        }
    }
}

impl EtcdMix {
    fn total(&self) -> u32 {
        self.range + self.put + self.delete + self.txn
    }
}

/// The `[workload]` table of an etcd scenario (times in milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdWorkload {
    /// Client processes, each one request at a time.
    pub clients: usize,
    /// Keys are `k0 .. k{keys-1}`.
    pub keys: usize,
    /// How often each request kind is drawn.
    pub mix: EtcdMix,
    /// How long one attempt waits for an answer before trying the next node.
    pub request_timeout_ms: u64,
    /// How long after the quiesce an operation is still retried.
    pub op_timeout_ms: u64,
    /// Most operations each client starts (0: no bound); the post-heal put is not
    /// counted.
    pub ops_per_client_max: u64,
    /// Pause between an operation's end and the next one's start.
    pub think_time_ms: u64,
    /// Pause before retrying after "no leader known" or "not ready".
    pub retry_backoff_ms: u64,
}

impl Default for EtcdWorkload {
    fn default() -> Self {
        EtcdWorkload {
            clients: 3,
            keys: 3,
            mix: EtcdMix::default(),
            request_timeout_ms: 250,
            op_timeout_ms: 3000,
            ops_per_client_max: 0,
            think_time_ms: 20,
            retry_backoff_ms: 20,
        }
    }
}

impl EtcdWorkload {
    /// Checks the table's values; `Err((field, message))` names the bad field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if self.keys == 0 || self.keys > 1000 {
            return bad("keys", "must be in 1..=1000");
        }
        if self.clients > 10_000 {
            return bad("clients", "must be at most 10000");
        }
        if self.mix.total() == 0 {
            return bad("mix", "at least one weight must be positive");
        }
        self.pacing().validate()
    }

    /// The table's timing of attempts and operations.
    pub fn pacing(&self) -> Pacing {
        Pacing {
            request_timeout_ms: self.request_timeout_ms,
            op_timeout_ms: self.op_timeout_ms,
            ops_per_client_max: self.ops_per_client_max,
            give_up: false,
            think_time_ms: self.think_time_ms,
            retry_backoff_ms: self.retry_backoff_ms,
        }
    }
}

/// An etcd operation as a history line records it (`f` is `put`, `range`, `delete`
/// or `txn`). On the invoke the answer's fields are `null`; on an `ok` they hold what
/// the answer said. `revision` is the answer's header revision (for a write that
/// changed the store, the write's own revision).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum EtcdOp {
    /// `put key value`.
    Put {
        /// The key.
        key: String,
        /// The value written (unique in a run: `client.seq`).
        value: String,
        /// The header revision of the answer.
        revision: Option<u64>,
    },
    /// `get key`: the value read and its mod revision (`None`, 0: absent).
    Range {
        /// The key.
        key: String,
        /// Served by any member from its own state, without consensus.
        serializable: bool,
        /// The value read (`None`: absent, or not answered yet).
        value: Option<String>,
        /// The key's mod revision as read (0: absent).
        mod_revision: Option<u64>,
        /// The header revision of the answer.
        revision: Option<u64>,
    },
    /// `del key`.
    Delete {
        /// The key.
        key: String,
        /// How many keys the delete removed (0 or 1).
        deleted: Option<u64>,
        /// The header revision of the answer.
        revision: Option<u64>,
    },
    /// `txn: if mod_revision(key) == expected_mod_revision then put key value else
    /// get key`.
    Txn {
        /// The key.
        key: String,
        /// The mod revision compared (0: the key must be absent).
        expected_mod_revision: u64,
        /// The value the client saw with that mod revision (`None`: absent).
        expected_value: Option<String>,
        /// The value put if the compare holds (unique in a run).
        value: String,
        /// Whether the compare held.
        succeeded: Option<bool>,
        /// When it did not: the value the `else` branch read (`None`: absent).
        read: Option<String>,
        /// When it did not: the mod revision the `else` branch read (0: absent).
        read_mod_revision: Option<u64>,
        /// The header revision of the answer.
        revision: Option<u64>,
    },
}

impl EtcdOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            EtcdOp::Put { key, .. }
            | EtcdOp::Range { key, .. }
            | EtcdOp::Delete { key, .. }
            | EtcdOp::Txn { key, .. } => key,
        }
    }

    /// The answer's header revision, once answered.
    pub fn revision(&self) -> Option<u64> {
        match self {
            EtcdOp::Put { revision, .. }
            | EtcdOp::Range { revision, .. }
            | EtcdOp::Delete { revision, .. }
            | EtcdOp::Txn { revision, .. } => *revision,
        }
    }
}

crate::impl_fingerprint!(enum EtcdOp {
    0 => Put { key, value, revision },
    1 => Range { key, serializable, value, mod_revision, revision },
    2 => Delete { key, deleted, revision },
    3 => Txn { key, expected_mod_revision, expected_value, value, succeeded, read,
               read_mod_revision, revision },
});

/// The etcd workload's part of an [`EtcdClient`]: draws requests from the mix over
/// the workload's keys and reads the cluster's answers.
pub struct EtcdOps {
    keys: usize,
    mix: EtcdMix,
    /// Ranges are served by any member without consensus.
    serializable: bool,
    /// Per key: the value and mod revision this client last saw (`None`, 0: absent),
    /// which its transactions compare against.
    seen: BTreeMap<String, (Option<String>, u64)>,
}

/// A client of the etcd cluster: one request at a time, drawn from the workload's
/// mix, tried node after node (following leader hints) until it is answered.
pub type EtcdClient = RaftClient<EtcdOps>;

impl EtcdClient {
    /// A client running workload `w`; `serializable`: its ranges are answered by
    /// whichever member it asks, from that member's own state.
    pub fn new(w: EtcdWorkload, serializable: bool) -> EtcdClient {
        let pacing = w.pacing();
        let ops = EtcdOps {
            keys: w.keys,
            mix: w.mix,
            serializable,
            seen: BTreeMap::new(),
        };
        RaftClient::with_workload(pacing, ops)
    }
}

impl Workload for EtcdOps {
    type Store = EtcdStore;
    type Node = super::node::EtcdNode;
    type Op = EtcdOp;

    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: ClientId, seq: u64) -> EtcdOp {
        let key = format!("k{}", crate::rng::index(rng, 0..self.keys));
        let value = format!("{client}.{seq}");
        let m = &self.mix;
        let mut pick = rng.gen_range(0..m.total());
        if pick < m.range {
            return EtcdOp::Range {
                key,
                serializable: self.serializable,
                value: None,
                mod_revision: None,
                revision: None,
            };
        }
        pick -= m.range;
        if pick < m.put {
            return EtcdOp::Put {
                key,
                value,
                revision: None,
            };
        }
        pick -= m.put;
        if pick < m.delete {
            return EtcdOp::Delete {
                key,
                deleted: None,
                revision: None,
            };
        }
        let (expected_value, expected_mod_revision) =
            self.seen.get(&key).cloned().unwrap_or((None, 0));
        EtcdOp::Txn {
            key,
            expected_mod_revision,
            expected_value,
            value,
            succeeded: None,
            read: None,
            read_mod_revision: None,
            revision: None,
        }
    }

    fn probe(&self, client: ClientId, seq: u64) -> EtcdOp {
        EtcdOp::Put {
            key: "probe".into(),
            value: format!("{client}.{seq}"),
            revision: None,
        }
    }

    fn request(&self, op: &EtcdOp) -> RequestOp<EtcdStore> {
        let command = match op {
            EtcdOp::Range { key, .. } => {
                return RequestOp::Read(EtcdQuery::Range {
                    key: key.clone(),
                    range_end: String::new(),
                    revision: 0,
                })
            }
            EtcdOp::Put { key, value, .. } => EtcdCommand::put(key, value),
            EtcdOp::Delete { key, .. } => EtcdCommand::delete_range(key, ""),
            EtcdOp::Txn {
                key,
                expected_mod_revision,
                value,
                ..
            } => EtcdCommand::Txn {
                compare: vec![Compare {
                    key: key.clone(),
                    result: CompareResult::Equal,
                    target: CompareTarget::ModRevision(*expected_mod_revision),
                }],
                success: vec![Op::Put {
                    key: key.clone(),
                    value: value.clone(),
                    lease: 0,
                }],
                failure: vec![Op::Range {
                    key: key.clone(),
                    range_end: String::new(),
                }],
            },
        };
        RequestOp::Command(Arc::new(command))
    }

    fn written(&self, op: &EtcdOp, output: EtcdOutput) -> (OpType, EtcdOp) {
        written(op.clone(), &output)
    }

    fn read(&self, op: &EtcdOp, answer: RangeResult) -> (OpType, EtcdOp) {
        let RangeResult { revision, kvs } = answer;
        let EtcdOp::Range {
            key, serializable, ..
        } = op.clone()
        else {
            panic!("a value answers a range, not {op:?}");
        };
        match kvs {
            Ok(kvs) => {
                let (value, m) = one_key(&kvs);
                let op = EtcdOp::Range {
                    key,
                    serializable,
                    value,
                    mod_revision: Some(m),
                    revision: Some(revision),
                };
                (OpType::Ok, op)
            }
            Err(_) => (OpType::Fail, op.clone()),
        }
    }

    fn finished(&mut self, kind: OpType, op: &EtcdOp) {
        if kind != OpType::Ok {
            return;
        }
        match op {
            EtcdOp::Put {
                key,
                value,
                revision: Some(rev),
            } => {
                self.seen.insert(key.clone(), (Some(value.clone()), *rev));
            }
            EtcdOp::Range {
                key,
                value,
                mod_revision: Some(m),
                ..
            } => {
                self.seen.insert(key.clone(), (value.clone(), *m));
            }
            EtcdOp::Delete { key, .. } => {
                self.seen.insert(key.clone(), (None, 0));
            }
            EtcdOp::Txn {
                key,
                value,
                succeeded: Some(true),
                revision: Some(rev),
                ..
            } => {
                self.seen.insert(key.clone(), (Some(value.clone()), *rev));
            }
            EtcdOp::Txn {
                key,
                succeeded: Some(false),
                read,
                read_mod_revision: Some(m),
                ..
            } => {
                self.seen.insert(key.clone(), (read.clone(), *m));
            }
            _ => {}
        }
    }
}

/// The single key a range answer holds: its value and mod revision (`None`, 0:
/// absent).
fn one_key(kvs: &[super::KeyValue]) -> (Option<String>, u64) {
    match kvs.first() {
        Some(kv) => (Some(kv.value.clone()), kv.mod_revision),
        None => (None, 0),
    }
}

/// The history operation `op` completed by a command's `output`, and its type
/// (`fail` if the store refused the command: nothing changed).
fn written(op: EtcdOp, output: &EtcdOutput) -> (OpType, EtcdOp) {
    let results = match &output.results {
        Ok(results) => results,
        Err(_) => return (OpType::Fail, op),
    };
    let rev = Some(output.revision);
    let done = match op {
        EtcdOp::Put { key, value, .. } => EtcdOp::Put {
            key,
            value,
            revision: rev,
        },
        EtcdOp::Delete { key, .. } => {
            let deleted = match results.first() {
                Some(OpResult::DeleteRange { deleted }) => *deleted,
                other => panic!("a delete answered with {other:?}"),
            };
            EtcdOp::Delete {
                key,
                deleted: Some(deleted),
                revision: rev,
            }
        }
        EtcdOp::Txn {
            key,
            expected_mod_revision,
            expected_value,
            value,
            ..
        } => {
            let (read, read_mod_revision) = match (output.succeeded, results.first()) {
                (true, _) => (None, None),
                (false, Some(OpResult::Range { kvs })) => {
                    let (v, m) = one_key(kvs);
                    (v, Some(m))
                }
                (false, other) => panic!("a txn's else branch answered with {other:?}"),
            };
            EtcdOp::Txn {
                key,
                expected_mod_revision,
                expected_value,
                value,
                succeeded: Some(output.succeeded),
                read,
                read_mod_revision,
                revision: rev,
            }
        }
        EtcdOp::Range { .. } => panic!("a range is a query, not a command"),
    };
    (OpType::Ok, done)
}
