//! A simulated client: broadcasts values to random nodes, one at a time, and records
//! each as `invoke` then `ok` (stored), `fail` (refused) or `info` (timed out: the
//! value may or may not have been stored).

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::process::{BroadcastProcess, Request, Response};
use crate::client::{Client, ClientContext};
use crate::history::OpType;
use crate::process::{NodeId, RequestId, TimerId};

/// The scenario's `[workload]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Client processes, each one broadcast at a time.
    pub clients: usize,
    /// Time between a client's attempts to start a broadcast.
    pub interval_ms: u64,
    /// A broadcast without a reply by then is recorded as `info`.
    pub request_timeout_ms: u64,
    /// Broadcasts each client issues at most.
    pub max_values: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            interval_ms: 20,
            request_timeout_ms: 500,
            max_values: 200,
        }
    }
}

/// A history operation: `{"f":"broadcast","id":4294967303,"value":"c1-7"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Op {
    /// Broadcast `value` under `id`.
    Broadcast {
        /// Unique per run: the client in the high 32 bits, its count in the low.
        id: u64,
        /// `c<client>-<count>`.
        value: String,
    },
}

/// The broadcast client's timers.
#[derive(Clone, Debug)]
pub enum ClientTimer {
    /// Time to start the next broadcast, if none is in flight.
    Next,
    /// `request` has had its time.
    Timeout(RequestId),
}

#[derive(Debug)]
struct InFlight {
    request: RequestId,
    op: Op,
    timeout: TimerId,
}

/// A client that broadcasts one value at a time, every `interval_ms`, up to
/// `max_values`, to a random node, recording each as `ok` on an acknowledgement,
/// `fail` when the node is full, and `info` on a timeout.
#[derive(Debug)]
pub struct BroadcastClient {
    interval: Duration,
    timeout: Duration,
    max_values: u64,
    /// Broadcasts issued so far: `0..=max_values`; also the sequence in value ids.
    issued: u64,
    quiesced: bool,
    /// One operation at a time, as a Jepsen process.
    in_flight: Option<InFlight>,
}

impl BroadcastClient {
    /// A client for `workload`; panics if its interval or timeout is zero (validation
    /// refuses them first).
    pub fn new(workload: &Workload) -> Self {
        assert!(workload.interval_ms > 0 && workload.request_timeout_ms > 0);
        BroadcastClient {
            interval: Duration::from_millis(workload.interval_ms),
            timeout: Duration::from_millis(workload.request_timeout_ms),
            max_values: workload.max_values,
            issued: 0,
            quiesced: false,
            in_flight: None,
        }
    }

    /// Broadcasts issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    fn issue(&mut self, ctx: &mut ClientContext<'_, BroadcastProcess, Self>) {
        self.issued += 1;
        let client = u64::try_from(ctx.id()).expect("client ids fit in u64");
        assert!(
            client < 1 << 32 && self.issued < 1 << 32,
            "ids pack client and seq"
        );
        // Unique across clients without coordination: client in the high half.
        let id = client << 32 | self.issued;
        let value = format!("c{client}-{}", self.issued);
        let nodes = ctx.nodes();
        let node: NodeId = crate::rng::index(ctx.rng(), 0..nodes);
        let request = ctx.request(
            node,
            Request::Broadcast {
                id,
                value: value.clone(),
            },
        );
        let op = Op::Broadcast { id, value };
        ctx.invoke(op.clone());
        let timeout = ctx.set_timer(self.timeout, ClientTimer::Timeout(request));
        self.in_flight = Some(InFlight {
            request,
            op,
            timeout,
        });
    }
}

impl Client<BroadcastProcess> for BroadcastClient {
    type Timer = ClientTimer;
    type Op = Op;

    fn on_start(&mut self, ctx: &mut ClientContext<'_, BroadcastProcess, Self>) {
        if self.max_values == 0 {
            return;
        }
        // A random phase, so that clients do not all fire in the same instant.
        let phase_ms = ctx.rng().gen_range(0..self.interval.as_millis() as u64);
        ctx.set_timer(Duration::from_millis(phase_ms), ClientTimer::Next);
    }

    fn on_response(
        &mut self,
        ctx: &mut ClientContext<'_, BroadcastProcess, Self>,
        from: NodeId,
        id: RequestId,
        response: Response,
    ) {
        let Some(flight) = self.in_flight.take_if(|f| f.request == id) else {
            ctx.trace(format!("late reply from node {from} to {id:?} ignored"));
            return;
        };
        ctx.cancel_timer(flight.timeout);
        let kind = match response {
            Response::Ok => OpType::Ok,
            Response::Full => OpType::Fail,
            Response::Values(_) => panic!("a broadcast answered with values"),
        };
        ctx.complete(kind, flight.op);
    }

    fn on_timer(
        &mut self,
        ctx: &mut ClientContext<'_, BroadcastProcess, Self>,
        timer: ClientTimer,
    ) {
        match timer {
            ClientTimer::Next => {
                if self.quiesced {
                    return;
                }
                if self.in_flight.is_none() {
                    self.issue(ctx);
                }
                if self.issued < self.max_values {
                    ctx.set_timer(self.interval, ClientTimer::Next);
                }
            }
            ClientTimer::Timeout(request) => {
                if let Some(flight) = self.in_flight.take_if(|f| f.request == request) {
                    ctx.complete(OpType::Info, flight.op);
                }
            }
        }
    }

    fn on_quiesce(&mut self, _ctx: &mut ClientContext<'_, BroadcastProcess, Self>) {
        // The in-flight broadcast, if any, still ends by its reply or its timeout.
        self.quiesced = true;
    }

    fn pending(&self) -> usize {
        usize::from(self.in_flight.is_some())
    }
}

crate::impl_fingerprint!(enum Op {
    0 => Broadcast { id, value },
});
