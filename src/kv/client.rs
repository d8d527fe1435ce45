//! Simulated KV clients: each runs one operation at a time from a weighted mix over a
//! small key set and records every operation in the history (invoke, then ok / fail /
//! info). Finding the leader, retries, timeouts, giving up and the post-heal probe are
//! the session client's ([`crate::raft::client`]); this module draws the operations
//! and reads the store's answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::history::{KvOp, OpType};
use crate::kv::{KvCommand, KvQuery, KvResult, KvStore};
use crate::process::ClientId;
use crate::raft::client::{Pacing, RaftClient, Workload};
use crate::raft::RequestOp;

/// Relative weights of the operation kinds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpMix {
    /// Weight of reads.
    pub get: u32,
    /// Weight of puts.
    pub put: u32,
    /// Weight of appends.
    pub append: u32,
    /// Weight of deletes.
    pub delete: u32,
    /// Weight of compare-and-sets.
    pub cas: u32,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix {
            get: 40,
            put: 25,
            append: 10,
            delete: 5,
            cas: 20,
        }
    }
}

impl OpMix {
    fn total(&self) -> u32 {
        self.get + self.put + self.append + self.delete + self.cas
    }
}

/// The scenario's `[workload]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvWorkload {
    /// Client processes, each one operation at a time.
    pub clients: usize,
    /// Keys are `k0 .. k{keys-1}`.
    pub keys: usize,
    /// How often each operation kind is drawn.
    pub mix: OpMix,
    /// How long one attempt waits for a reply before trying the next node.
    pub request_timeout_ms: u64,
    /// How long an operation is retried before the client gives up on it: from its
    /// start with `give_up`, else from the quiesce (the liveness phase).
    pub op_timeout_ms: u64,
    /// Most operations each client starts (0: no bound); the post-heal write is not
    /// counted. `faultline shrink` lowers it to find a failure with fewer operations.
    pub ops_per_client_max: u64,
    /// Abandon an operation `op_timeout_ms` after it started, recording it `info` if
    /// it may have taken effect (Jepsen's clients). `false` (the default): retry it,
    /// with the same session sequence number, until an attempt is answered.
    pub give_up: bool,
    /// Pause between an operation's end and the next one's start.
    pub think_time_ms: u64,
    /// Pause before retrying after "no leader known" or "not ready".
    pub retry_backoff_ms: u64,
}

impl Default for KvWorkload {
    fn default() -> Self {
        KvWorkload {
            clients: 3,
            keys: 3,
            mix: OpMix::default(),
            request_timeout_ms: 250,
            op_timeout_ms: 3000,
            give_up: false,
            ops_per_client_max: 0,
            think_time_ms: 20,
            retry_backoff_ms: 20,
        }
    }
}

impl KvWorkload {
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
            give_up: self.give_up,
            think_time_ms: self.think_time_ms,
            retry_backoff_ms: self.retry_backoff_ms,
        }
    }
}

/// The key-value workload's part of a [`KvClient`]: draws operations from the mix
/// over the workload's keys and reads the store's answers.
pub struct KvOps {
    keys: usize,
    mix: OpMix,
    /// The last value this client saw per key, to aim cas operations at.
    seen: BTreeMap<String, Option<String>>,
}

/// A client of the Raft key-value store: one operation at a time, drawn from the
/// workload's mix, tried node after node (following leader hints) until it completes
/// or its time runs out, with a session sequence number so that retries apply once.
pub type KvClient = RaftClient<KvOps>;

impl KvClient {
    /// A client running workload `w`.
    pub fn new(w: KvWorkload) -> KvClient {
        let pacing = w.pacing();
        let ops = KvOps {
            keys: w.keys,
            mix: w.mix,
            seen: BTreeMap::new(),
        };
        RaftClient::with_workload(pacing, ops)
    }
}

impl Workload for KvOps {
    type Store = KvStore;
    type Node = crate::raft::RaftProcess<KvStore>;
    type Op = KvOp;

    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: ClientId, seq: u64) -> KvOp {
        let key = format!("k{}", crate::rng::index(rng, 0..self.keys));
        let value = format!("{client}.{seq}");
        let m = &self.mix;
        let mut pick = rng.gen_range(0..m.total());
        for (weight, kind) in [
            (m.get, 0),
            (m.put, 1),
            (m.append, 2),
            (m.delete, 3),
            (m.cas, 4),
        ] {
            if pick < weight {
                return match kind {
                    0 => KvOp::Get { key, value: None },
                    1 => KvOp::Put { key, value },
                    2 => KvOp::Append {
                        key,
                        value: format!("{value};"),
                    },
                    3 => KvOp::Delete { key },
                    _ => {
                        let expected = self.seen.get(&key).cloned().flatten();
                        KvOp::Cas {
                            key,
                            value: (expected, value),
                        }
                    }
                };
            }
            pick -= weight;
        }
        unreachable!("pick < total weight")
    }

    fn probe(&self, client: ClientId, seq: u64) -> KvOp {
        KvOp::Put {
            key: "probe".into(),
            value: format!("{client}.{seq}"),
        }
    }

    fn request(&self, op: &KvOp) -> RequestOp {
        match KvCommand::from_op(op) {
            Some(cmd) => RequestOp::Command(Arc::new(cmd)),
            None => RequestOp::Read(KvQuery {
                key: op.key().to_string(),
            }),
        }
    }

    fn written(&self, op: &KvOp, output: KvResult) -> (OpType, KvOp) {
        let kind = match output {
            KvResult::Done => OpType::Ok,
            KvResult::CasFailed => OpType::Fail,
        };
        (kind, op.clone())
    }

    fn read(&self, op: &KvOp, value: Option<String>) -> (OpType, KvOp) {
        let KvOp::Get { key, .. } = op else {
            panic!("a value answers a get, not {op:?}");
        };
        let key = key.clone();
        (OpType::Ok, KvOp::Get { key, value })
    }

    fn finished(&mut self, kind: OpType, op: &KvOp) {
        if kind != OpType::Ok {
            return;
        }
        match op {
            KvOp::Get { key, value } => {
                self.seen.insert(key.clone(), value.clone());
            }
            KvOp::Put { key, value }
            | KvOp::Cas {
                key,
                value: (_, value),
            } => {
                self.seen.insert(key.clone(), Some(value.clone()));
            }
            KvOp::Delete { key } => {
                self.seen.insert(key.clone(), None);
            }
            KvOp::Append { key, .. } => {
                self.seen.remove(key);
            }
        }
    }
}
