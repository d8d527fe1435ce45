//! Simulated clients: sans-IO like processes, but they talk to the cluster with
//! requests and record what they observe as a Jepsen-style history.

#![warn(missing_docs)]

use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::history::OpType;
use crate::process::{ClientId, NodeId, Process, RequestId, TimerId};

/// A client of a cluster of `P`. One value per run: clients do not crash.
pub trait Client<P: Process>: Sized + Send + 'static {
    /// Typed timer tokens, as for [`Process::Timer`].
    type Timer: Clone + Debug + Send + 'static;
    /// One history operation (its `f`, key and value), serialized into `history.jsonl`.
    type Op: Clone + Debug + crate::fingerprint::Fingerprint + Serialize + Send + 'static;

    /// The run began: set a first timer or send a first request.
    fn on_start(&mut self, ctx: &mut ClientContext<'_, P, Self>);
    /// Node `from` answered request `id` (perhaps one the client gave up on, or a
    /// duplicate).
    fn on_response(
        &mut self,
        ctx: &mut ClientContext<'_, P, Self>,
        from: NodeId,
        id: RequestId,
        response: P::Response,
    );
    /// A timer this client set fired (on the true simulated clock).
    fn on_timer(&mut self, ctx: &mut ClientContext<'_, P, Self>, timer: Self::Timer);
    /// The fault phase is over: start no new operations, finish the ones in flight.
    fn on_quiesce(&mut self, ctx: &mut ClientContext<'_, P, Self>);
    /// Operations invoked and not yet completed; the liveness phase waits for zero.
    fn pending(&self) -> usize;
}

/// An effect a client handler asks for; the driver carries them out in order.
#[derive(Debug)]
pub enum ClientEffect<P: Process, C: Client<P>> {
    /// A request to a node ([`ClientContext::request`]).
    Request {
        /// The node it goes to.
        to: NodeId,
        /// Its id, which the reply carries.
        id: RequestId,
        /// The request.
        req: P::Request,
    },
    /// A timer set ([`ClientContext::set_timer`]).
    SetTimer {
        /// Its handle.
        id: TimerId,
        /// Its delay from now.
        after: Duration,
        /// The token [`Client::on_timer`] gets back.
        timer: C::Timer,
    },
    /// A timer cancelled.
    CancelTimer {
        /// The timer's handle.
        id: TimerId,
    },
    /// A history event ([`ClientContext::invoke`], [`ClientContext::complete`]).
    History {
        /// Invoke, ok, fail or info.
        kind: OpType,
        /// The operation.
        op: C::Op,
    },
    /// A line for the trace.
    Trace {
        /// The text.
        line: String,
    },
}

/// What a client handler can see and do, built by the driver (or a unit test) per step.
pub struct ClientContext<'a, P: Process, C: Client<P>> {
    id: ClientId,
    nodes: usize,
    now: Duration,
    rng: &'a mut ChaCha8Rng,
    next_seq: &'a mut u64,
    next_timer: &'a mut u64,
    /// What this one handler call does; the driver applies and empties it when the
    /// call returns, so it holds one call's effects.
    effects: &'a mut Vec<ClientEffect<P, C>>,
}

impl<'a, P: Process, C: Client<P>> ClientContext<'a, P, C> {
    /// A context for client `id` of a cluster of `nodes` at simulated time `now`;
    /// `next_seq` and `next_timer` are the client's counters for request and timer
    /// ids, and `effects` collects what the handler asks for.
    pub fn new(
        id: ClientId,
        nodes: usize,
        now: Duration,
        rng: &'a mut ChaCha8Rng,
        next_seq: &'a mut u64,
        next_timer: &'a mut u64,
        effects: &'a mut Vec<ClientEffect<P, C>>,
    ) -> Self {
        ClientContext {
            id,
            nodes,
            now,
            rng,
            next_seq,
            next_timer,
            effects,
        }
    }

    /// This client's id, in `0..clients`.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Cluster size: requests go to nodes `0..nodes()`.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Simulated time since the run began. Clients share the true clock, so the
    /// history's times are comparable across clients.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// This client's random stream, derived from the run's seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Sends a request to a server; its reply (if any) comes to [`Client::on_response`].
    pub fn request(&mut self, to: NodeId, req: P::Request) -> RequestId {
        assert!(
            to < self.nodes,
            "request to node {to} outside a cluster of {}",
            self.nodes
        );
        *self.next_seq += 1;
        let id = RequestId {
            client: self.id,
            seq: *self.next_seq,
        };
        self.effects.push(ClientEffect::Request { to, id, req });
        id
    }

    /// Fires `timer` once, `after` from now.
    pub fn set_timer(&mut self, after: Duration, timer: C::Timer) -> TimerId {
        *self.next_timer += 1;
        let id = TimerId(*self.next_timer);
        self.effects
            .push(ClientEffect::SetTimer { id, after, timer });
        id
    }

    /// Cancelling a timer that already fired or was cancelled is a no-op.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.effects.push(ClientEffect::CancelTimer { id });
    }

    /// Records the invocation of `op` in the history, stamped with the current time.
    pub fn invoke(&mut self, op: C::Op) {
        self.effects.push(ClientEffect::History {
            kind: OpType::Invoke,
            op,
        });
    }

    /// Records how an invoked operation ended: `Ok`, `Fail` (certainly did not happen)
    /// or `Info` (unknown: it may or may not have happened).
    pub fn complete(&mut self, kind: OpType, op: C::Op) {
        assert_ne!(kind, OpType::Invoke, "complete() takes ok, fail or info");
        self.effects.push(ClientEffect::History { kind, op });
    }

    /// A line for the run's trace (and `faultline replay`'s log).
    pub fn trace(&mut self, line: impl Into<String>) {
        self.effects.push(ClientEffect::Trace { line: line.into() });
    }
}

/// A workload of no clients, for protocols judged by their checkers alone.
#[derive(Debug, Default)]
pub struct NoClient;

impl<P: Process> Client<P> for NoClient {
    type Timer = ();
    type Op = ();

    fn on_start(&mut self, _ctx: &mut ClientContext<'_, P, Self>) {}
    fn on_response(
        &mut self,
        _: &mut ClientContext<'_, P, Self>,
        _: NodeId,
        _: RequestId,
        _: P::Response,
    ) {
    }
    fn on_timer(&mut self, _ctx: &mut ClientContext<'_, P, Self>, _timer: ()) {}
    fn on_quiesce(&mut self, _ctx: &mut ClientContext<'_, P, Self>) {}
    fn pending(&self) -> usize {
        0
    }
}
