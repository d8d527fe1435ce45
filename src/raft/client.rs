//! The client side of Raft's sessions, shared by the clients of every replicated
//! state machine ([`crate::kv::KvClient`], [`crate::etcd::EtcdClient`]): one operation
//! at a time, tried node after node (following leader hints) until it is answered or
//! its time runs out, and recorded in the history (invoke, then ok / fail / info).
//!
//! Every attempt of one operation carries the same session sequence number, so the
//! state machine applies it at most once however many attempts reach a leader (Raft
//! thesis §6.3). An attempt with no answer within `request_timeout_ms` goes to the next
//! node, a redirect to the leader it names; "no leader known", "not ready" and a
//! dropped request wait `retry_backoff_ms` before the next attempt. By default a client
//! retries an operation until some attempt is answered, so the history records it `ok`
//! or `fail`: only operations still unanswered when the run ends are `info`. Once the
//! clients quiesce (the liveness phase), an operation is abandoned `op_timeout_ms`
//! after the quiesce, so a cluster that cannot recover leaves its clients idle rather
//! than retrying; client 0 then writes once more (the workload's probe), so the
//! liveness phase has a fresh write to see commit even when the leader was elected
//! before the heal.
//!
//! With [`Pacing::give_up`] a client instead abandons an operation `op_timeout_ms`
//! after it started, as Jepsen's clients do: the operation is `info` (indeterminate) if
//! any attempt might have been appended (it timed out, or a leader dropped it); the
//! next operation takes the next sequence number, and the state machine skips the
//! abandoned one if it ever commits later (see [`crate::raft::session::Applied::Stale`]).
//!
//! What differs between workloads (which operation comes next, the request it makes,
//! and how an answer becomes a history record) is a [`Workload`]'s.

use std::fmt::Debug;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Request, RequestOp, Response, StateMachine};
use crate::client::{Client, ClientContext};
use crate::history::OpType;
use crate::process::{ClientId, NodeId, RequestId};

/// The timing of a session client's attempts and operations (all times in
/// milliseconds), taken from its workload's `[workload]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// How long one attempt waits for an answer before trying the next node.
    pub request_timeout_ms: u64,
    /// How long an operation is retried before the client gives up on it: from its
    /// start with `give_up`, else from the quiesce (the liveness phase).
    pub op_timeout_ms: u64,
    /// Most operations the client starts (0: no bound); the post-heal probe is not
    /// counted.
    pub ops_per_client_max: u64,
    /// Abandon an operation `op_timeout_ms` after it started, recording it `info` if
    /// it may have taken effect. `false`: retry it until an attempt is answered.
    pub give_up: bool,
    /// Pause between an operation's end and the next one's start (and the most a
    /// client waits before its first).
    pub think_time_ms: u64,
    /// Pause before retrying after "no leader known", "not ready" or a dropped request.
    pub retry_backoff_ms: u64,
}

impl Pacing {
    /// Checks the timing; `Err((field, message))` names the bad field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
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

/// What one kind of session client draws, asks and records; [`RaftClient`] does the
/// rest.
pub trait Workload: Send + 'static {
    /// The state machine the cluster replicates.
    type Store: StateMachine;
    /// The nodes it talks to: Raft nodes, or processes that hold one and take
    /// Raft's requests (etcd's members).
    type Node: crate::process::Process<
        Request = Request<Self::Store>,
        Response = Response<Self::Store>,
    >;
    /// One history operation, as [`Client::Op`].
    type Op: Clone + Debug + crate::fingerprint::Fingerprint + Serialize + Send + 'static;

    /// The next operation of client `client`, whose session sequence number is `seq`,
    /// drawn from the client's random stream `rng`.
    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: ClientId, seq: u64) -> Self::Op;
    /// The post-heal write of client `client` as operation `seq`: a key of its own, so
    /// the workload's keys keep what the run left there.
    fn probe(&self, client: ClientId, seq: u64) -> Self::Op;
    /// The request every attempt of `op` sends.
    fn request(&self, op: &Self::Op) -> RequestOp<Self::Store>;
    /// How the command `op` ended, given what applying it output: the history
    /// record's type and the operation with the answer filled in.
    fn written(
        &self,
        op: &Self::Op,
        output: <Self::Store as StateMachine>::Output,
    ) -> (OpType, Self::Op);
    /// How the read `op` ended, given the query's answer: as [`Workload::written`].
    fn read(
        &self,
        op: &Self::Op,
        answer: <Self::Store as StateMachine>::Answer,
    ) -> (OpType, Self::Op);
    /// `op` ended as `kind` (called just before the history records it): what the
    /// client learns from it, for the operations it draws next.
    fn finished(&mut self, kind: OpType, op: &Self::Op);
}

/// The session client's timers.
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

struct InFlight<W: Workload> {
    /// The session sequence number shared by every attempt.
    seq: u64,
    op: W::Op,
    req: Request<W::Store>,
    started: Duration,
    attempt: u64,
    /// The request of the latest attempt: only its non-final answers steer retries.
    req_id: Option<RequestId>,
    /// Some attempt may have been appended to a log: giving up is indeterminate.
    maybe_applied: bool,
}

/// A client of a Raft-replicated state machine: one operation at a time, drawn by its
/// [`Workload`], tried node after node (following leader hints) until it completes
/// or its time runs out, with a session sequence number so that retries apply once.
pub struct RaftClient<W: Workload> {
    pacing: Pacing,
    workload: W,
    /// When the clients quiesced (the liveness phase began), if they have.
    stopped: Option<Duration>,
    /// Client 0 writes once more after the heal ([`Workload::probe`]).
    probe_due: bool,
    target: NodeId,
    /// The nodes it sends to are `0..servers` (0: every node).
    servers: usize,
    last_seq: u64,
    current: Option<InFlight<W>>,
}

type Cx<'a, W> = ClientContext<'a, <W as Workload>::Node, RaftClient<W>>;

impl<W: Workload> RaftClient<W> {
    /// A client drawing its operations from `workload`, timed by `pacing`.
    pub fn with_workload(pacing: Pacing, workload: W) -> RaftClient<W> {
        RaftClient {
            pacing,
            workload,
            stopped: None,
            probe_due: false,
            target: 0,
            servers: 0,
            last_seq: 0,
            current: None,
        }
    }

    /// Sends only to nodes `0..servers` (the cluster's members, when other nodes
    /// have other roles).
    pub fn with_servers(mut self, servers: usize) -> Self {
        self.servers = servers;
        self
    }

    /// How many nodes it may send to, in a cluster of `nodes`.
    fn servers(&self, nodes: usize) -> usize {
        match self.servers {
            0 => nodes,
            s => s.min(nodes),
        }
    }

    /// Whether the bound on operations lets this client start another.
    fn may_start(&self) -> bool {
        self.pacing.ops_per_client_max == 0 || self.last_seq < self.pacing.ops_per_client_max
    }

    /// Starts an operation: the workload's next, or the post-heal probe.
    fn start_op(&mut self, ctx: &mut Cx<'_, W>) {
        assert!(self.current.is_none(), "one operation at a time");
        self.last_seq += 1;
        let seq = self.last_seq;
        let op = match std::mem::take(&mut self.probe_due) {
            true => self.workload.probe(ctx.id(), seq),
            false => {
                let client = ctx.id();
                self.workload.next_op(ctx.rng(), client, seq)
            }
        };
        let req = Request {
            seq,
            op: self.workload.request(&op),
        };
        ctx.invoke(op.clone());
        self.current = Some(InFlight {
            seq,
            op,
            req,
            started: ctx.now(),
            attempt: 0,
            req_id: None,
            maybe_applied: false,
        });
        self.attempt(ctx);
    }

    /// Sends one attempt, or gives up once the operation's time is spent.
    fn attempt(&mut self, ctx: &mut Cx<'_, W>) {
        let cur = self.current.as_mut().expect("an operation in flight");
        let since = match (self.pacing.give_up, self.stopped) {
            (true, _) => Some(cur.started),
            (false, quiesced) => quiesced.map(|at| at.max(cur.started)),
        };
        let op_timeout = Duration::from_millis(self.pacing.op_timeout_ms);
        if since.is_some_and(|at| ctx.now() >= at + op_timeout) {
            let kind = match (&cur.req.op, cur.maybe_applied) {
                // A read changes nothing: abandoning it is a definite non-event.
                (RequestOp::Read(_) | RequestOp::TransferLeader(_), _) | (_, false) => OpType::Fail,
                (RequestOp::Command(_) | RequestOp::ConfChange(_), true) => OpType::Info,
            };
            let op = cur.op.clone();
            self.finish(ctx, kind, op);
            return;
        }
        cur.attempt += 1;
        let (seq, attempt) = (cur.seq, cur.attempt);
        cur.req_id = Some(ctx.request(self.target, cur.req.clone()));
        ctx.set_timer(
            Duration::from_millis(self.pacing.request_timeout_ms),
            ClientTimer::Attempt { seq, attempt },
        );
    }

    /// Retries after a pause; a new attempt number invalidates the pending timeout.
    fn backoff(&mut self, ctx: &mut Cx<'_, W>) {
        let cur = self.current.as_mut().expect("an operation in flight");
        cur.attempt += 1;
        cur.req_id = None;
        let (seq, attempt) = (cur.seq, cur.attempt);
        ctx.set_timer(
            Duration::from_millis(self.pacing.retry_backoff_ms),
            ClientTimer::Retry { seq, attempt },
        );
    }

    /// Records the end of the current operation as `op` (the answer filled in), then
    /// starts the probe if it is due, or thinks before the next operation.
    fn finish(&mut self, ctx: &mut Cx<'_, W>, kind: OpType, op: W::Op) {
        self.current = None;
        self.workload.finished(kind, &op);
        ctx.complete(kind, op);
        if self.probe_due {
            self.start_op(ctx);
        } else if self.stopped.is_none() {
            ctx.set_timer(
                Duration::from_millis(self.pacing.think_time_ms),
                ClientTimer::Think,
            );
        }
    }
}

impl<W: Workload> Client<W::Node> for RaftClient<W> {
    type Timer = ClientTimer;
    type Op = W::Op;

    fn on_start(&mut self, ctx: &mut Cx<'_, W>) {
        self.target = ctx.id() % self.servers(ctx.nodes());
        // Stagger the clients' first operations.
        let jitter = ctx.rng().gen_range(0..=self.pacing.think_time_ms);
        ctx.set_timer(Duration::from_millis(jitter), ClientTimer::Think);
    }

    fn on_response(
        &mut self,
        ctx: &mut Cx<'_, W>,
        from: NodeId,
        id: RequestId,
        resp: Response<W::Store>,
    ) {
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
                let (kind, op) = self.workload.written(&cur.op, result);
                self.finish(ctx, kind, op);
            }
            Response::Value { value, .. } => {
                let (kind, op) = self.workload.read(&cur.op, value);
                self.finish(ctx, kind, op);
            }
            Response::Redirect { leader, .. } => match leader {
                Some(l) if l != from => {
                    self.target = l;
                    self.attempt(ctx);
                }
                _ => {
                    self.target = (from + 1) % self.servers(ctx.nodes());
                    self.backoff(ctx);
                }
            },
            Response::Unavailable { .. } => self.backoff(ctx),
            Response::Dropped { .. } => {
                cur.maybe_applied = true;
                self.target = (from + 1) % self.servers(ctx.nodes());
                self.backoff(ctx);
            }
            Response::Reconfigured { .. }
            | Response::Refused { .. }
            | Response::TransferStarted { .. } => {
                unreachable!("a session client asks for no membership change or transfer")
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_, W>, timer: ClientTimer) {
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
                self.target = (self.target + 1) % self.servers(ctx.nodes());
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

    fn on_quiesce(&mut self, ctx: &mut Cx<'_, W>) {
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
