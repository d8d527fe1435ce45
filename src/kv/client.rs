//! Simulated KV clients: each runs one operation at a time from a weighted mix over a
//! small key set, finds the leader through redirect hints, retries with timeouts, and
//! records every operation in the history (invoke, then ok / fail / info).
//!
//! Every attempt of one operation carries the same session sequence number, so the
//! state machine applies it at most once however many attempts reach a leader (Raft
//! thesis §6.3). By default a client retries an operation whose attempt timed out
//! until some attempt is answered, so the history records it `ok` or `fail`: only
//! operations still unanswered when the run ends are `info`. Once the clients quiesce
//! (the liveness phase), an operation is abandoned `op_timeout_ms` after the quiesce,
//! so a cluster that cannot recover leaves its clients idle rather than retrying.
//!
//! With `give_up = true` a client instead abandons an operation `op_timeout_ms` after
//! it started, as Jepsen's clients do: the operation is `info` (indeterminate) if any
//! attempt might have been appended (it timed out, or a leader dropped it); the next
//! operation takes the next sequence number, and the state machine skips the abandoned
//! one if it ever commits later (see [`crate::raft::session::Applied::Stale`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::client::{Client, ClientContext};
use crate::history::{KvOp, OpType};
use crate::kv::{KvCommand, KvQuery, KvResult};
use crate::process::{NodeId, RequestId};
use crate::raft::messages::{Request, RequestOp, Response};
use crate::raft::RaftProcess;

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
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms", "must be positive");
        }
        if self.op_timeout_ms < self.request_timeout_ms {
            return bad("op_timeout_ms", "must be at least request_timeout_ms");
        }
        if self.retry_backoff_ms == 0 {
            return bad("retry_backoff_ms", "must be positive");
        }
        Ok(())
    }
}

/// The key-value client's timers.
#[derive(Clone, Debug)]
pub enum ClientTimer {
    /// Start the next operation.
    Think,
    /// Attempt `attempt` of operation `seq` had no reply in time.
    Attempt {
        /// The operation's session sequence number.
        seq: u64,
        /// Which attempt, from 1.
        attempt: u64,
    },
    /// Retry operation `seq` after a backoff.
    Retry {
        /// The operation's session sequence number.
        seq: u64,
        /// The attempt that ended (a later attempt makes the timer stale).
        attempt: u64,
    },
}

struct InFlight {
    /// The session sequence number shared by every attempt.
    seq: u64,
    op: KvOp,
    req: Request,
    started: Duration,
    attempt: u64,
    /// The request of the latest attempt: only its non-final answers steer retries.
    req_id: Option<RequestId>,
    /// Some attempt may have been appended to a log: giving up is indeterminate.
    maybe_applied: bool,
}

/// A client of the Raft key-value store: one operation at a time, drawn from the
/// workload's mix, tried node after node (following leader hints) until it completes
/// or its time runs out, with a session sequence number so that retries apply once.
pub struct KvClient {
    w: KvWorkload,
    /// When the clients quiesced (the liveness phase began), if they have.
    stopped: Option<Duration>,
    /// Client 0 writes once more after the heal (key `probe`), so the liveness phase
    /// has a fresh write to see commit even when the leader was elected before the heal.
    probe_due: bool,
    target: NodeId,
    last_seq: u64,
    current: Option<InFlight>,
    /// The last value this client saw per key, to aim cas operations at.
    seen: BTreeMap<String, Option<String>>,
}

type Cx<'a> = ClientContext<'a, RaftProcess, KvClient>;

impl KvClient {
    /// A client running workload `w`.
    pub fn new(w: KvWorkload) -> KvClient {
        KvClient {
            w,
            stopped: None,
            probe_due: false,
            target: 0,
            last_seq: 0,
            current: None,
            seen: BTreeMap::new(),
        }
    }

    fn next_op(&mut self, ctx: &mut Cx<'_>) -> KvOp {
        let key = format!("k{}", crate::rng::index(ctx.rng(), 0..self.w.keys));
        let value = format!("{}.{}", ctx.id(), self.last_seq);
        let m = &self.w.mix;
        let mut pick = ctx.rng().gen_range(0..m.total());
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

    /// Whether the workload's bound on operations lets this client start another.
    fn may_start(&self) -> bool {
        self.w.ops_per_client_max == 0 || self.last_seq < self.w.ops_per_client_max
    }

    /// Starts an operation: the next of the mix, or the post-heal write.
    fn start_op(&mut self, ctx: &mut Cx<'_>) {
        assert!(self.current.is_none(), "one operation at a time");
        self.last_seq += 1;
        let seq = self.last_seq;
        let op = match std::mem::take(&mut self.probe_due) {
            // A key of its own, so the workload's keys keep what the run left there.
            true => KvOp::Put {
                key: "probe".into(),
                value: format!("{}.{}", ctx.id(), seq),
            },
            false => self.next_op(ctx),
        };
        let req_op = match KvCommand::from_op(&op) {
            Some(cmd) => RequestOp::Command(Arc::new(cmd)),
            None => RequestOp::Read(KvQuery {
                key: op.key().to_string(),
            }),
        };
        ctx.invoke(op.clone());
        self.current = Some(InFlight {
            seq,
            op,
            req: Request { seq, op: req_op },
            started: ctx.now(),
            attempt: 0,
            req_id: None,
            maybe_applied: false,
        });
        self.attempt(ctx);
    }

    /// Sends one attempt, or gives up once the operation's time is spent.
    fn attempt(&mut self, ctx: &mut Cx<'_>) {
        let cur = self.current.as_mut().expect("an operation in flight");
        let since = match (self.w.give_up, self.stopped) {
            (true, _) => Some(cur.started),
            (false, quiesced) => quiesced.map(|at| at.max(cur.started)),
        };
        if since.is_some_and(|at| ctx.now() >= at + Duration::from_millis(self.w.op_timeout_ms)) {
            let kind = match (&cur.req.op, cur.maybe_applied) {
                // A read changes nothing: abandoning it is a definite non-event.
                (RequestOp::Read(_) | RequestOp::TransferLeader(_), _) | (_, false) => OpType::Fail,
                (RequestOp::Command(_) | RequestOp::ConfChange(_), true) => OpType::Info,
            };
            self.finish(ctx, kind, None);
            return;
        }
        cur.attempt += 1;
        let (seq, attempt) = (cur.seq, cur.attempt);
        cur.req_id = Some(ctx.request(self.target, cur.req.clone()));
        ctx.set_timer(
            Duration::from_millis(self.w.request_timeout_ms),
            ClientTimer::Attempt { seq, attempt },
        );
    }

    /// Retries after a pause; a new attempt number invalidates the pending timeout.
    fn backoff(&mut self, ctx: &mut Cx<'_>) {
        let cur = self.current.as_mut().expect("an operation in flight");
        cur.attempt += 1;
        cur.req_id = None;
        let (seq, attempt) = (cur.seq, cur.attempt);
        ctx.set_timer(
            Duration::from_millis(self.w.retry_backoff_ms),
            ClientTimer::Retry { seq, attempt },
        );
    }

    /// Records the end of the current operation; `read` is a get's value.
    fn finish(&mut self, ctx: &mut Cx<'_>, kind: OpType, read: Option<Option<String>>) {
        let cur = self.current.take().expect("an operation in flight");
        let op = match (cur.op, read) {
            (KvOp::Get { key, .. }, Some(value)) => {
                self.seen.insert(key.clone(), value.clone());
                KvOp::Get { key, value }
            }
            (op, _) => op,
        };
        if kind == OpType::Ok {
            match &op {
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
                KvOp::Get { .. } => {}
            }
        }
        ctx.complete(kind, op);
        if self.probe_due {
            self.start_op(ctx);
        } else if self.stopped.is_none() {
            ctx.set_timer(
                Duration::from_millis(self.w.think_time_ms),
                ClientTimer::Think,
            );
        }
    }
}

impl Client<RaftProcess> for KvClient {
    type Timer = ClientTimer;
    type Op = KvOp;

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        self.target = ctx.id() % ctx.nodes();
        // Stagger the clients' first operations.
        let jitter = ctx.rng().gen_range(0..=self.w.think_time_ms);
        ctx.set_timer(Duration::from_millis(jitter), ClientTimer::Think);
    }

    fn on_response(&mut self, ctx: &mut Cx<'_>, from: NodeId, id: RequestId, resp: Response) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if resp.seq() != cur.seq {
            return; // An answer to an operation already finished.
        }
        let final_answer = matches!(resp, Response::Written { .. } | Response::Value { .. });
        if !final_answer && cur.req_id != Some(id) {
            // A late answer to an earlier attempt; a later attempt is under way.
            if matches!(resp, Response::Dropped { .. }) {
                cur.maybe_applied = true;
            }
            return;
        }
        match resp {
            Response::Written { result, .. } => {
                let kind = match result {
                    KvResult::Done => OpType::Ok,
                    KvResult::CasFailed => OpType::Fail,
                };
                self.finish(ctx, kind, None);
            }
            Response::Value { value, .. } => {
                assert!(matches!(cur.op, KvOp::Get { .. }), "a value answers a get");
                self.finish(ctx, OpType::Ok, Some(value));
            }
            Response::Redirect { leader, .. } => match leader {
                Some(l) if l != from => {
                    self.target = l;
                    self.attempt(ctx);
                }
                _ => {
                    self.target = (from + 1) % ctx.nodes();
                    self.backoff(ctx);
                }
            },
            Response::Unavailable { .. } => self.backoff(ctx),
            Response::Reconfigured { .. }
            | Response::Refused { .. }
            | Response::TransferStarted { .. } => {
                unreachable!("a KV client asks for no membership change or transfer")
            }
            Response::Dropped { .. } => {
                cur.maybe_applied = true;
                self.target = (from + 1) % ctx.nodes();
                self.backoff(ctx);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, timer: ClientTimer) {
        match timer {
            ClientTimer::Think => {
                if self.stopped.is_none() && self.current.is_none() && self.may_start() {
                    self.start_op(ctx);
                }
            }
            ClientTimer::Attempt { seq, attempt } => {
                let Some(cur) = self.current.as_mut() else {
                    return;
                };
                if cur.seq != seq || cur.attempt != attempt {
                    return;
                }
                // No reply: the request may have been appended before the node died.
                if matches!(cur.req.op, RequestOp::Command(_)) {
                    cur.maybe_applied = true;
                }
                self.target = (self.target + 1) % ctx.nodes();
                self.attempt(ctx);
            }
            ClientTimer::Retry { seq, attempt } => {
                if self
                    .current
                    .as_ref()
                    .is_some_and(|c| c.seq == seq && c.attempt == attempt)
                {
                    self.attempt(ctx);
                }
            }
        }
    }

    fn on_quiesce(&mut self, ctx: &mut Cx<'_>) {
        self.stopped = Some(ctx.now());
        self.probe_due = ctx.id() == 0;
        if self.probe_due && self.current.is_none() {
            self.start_op(ctx);
        }
    }

    fn pending(&self) -> usize {
        usize::from(self.current.is_some())
    }
}
