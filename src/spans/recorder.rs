//! The driver's side of request traces: turns what the driver sees (client operations
//! and attempts, requests and replies at nodes, protocol steps, which message a
//! handler is running for) into [`Span`]s with parents. Built only when the run
//! records; nothing here feeds the trace hash or draws from a random stream.
//!
//! `mark` arguments are the run's send counter at the moment: a span with mark `k`
//! happened before every message whose send counter is `k` or more, which is how a
//! handler for a message finds the sender's latest span before the send.

use std::collections::BTreeMap;

use super::{OpId, RunSpans, Span, SpanActor, SpanKind, SpanStatus, SpanValue, SPANS_MAX};
use crate::history::OpType;
use crate::process::{ClientId, NodeId, RequestId};

/// What a node's handler call is running for.
pub(crate) enum Cause {
    /// A client's request, with its text.
    Request(RequestId, String),
    /// A message, with the sender and the run's send counter at its send.
    Message { from: NodeId, seq: u64 },
    /// A timer, a disk completion, a start.
    Local,
}

/// The handler call under way at a node.
struct Step {
    node: NodeId,
    /// The run's send counter at the message that caused it (`Cause::Message`).
    message: Option<(NodeId, u64)>,
    /// The `received` span the call opened (`Cause::Request`).
    received: Option<usize>,
    /// The latest span of each trace in this call.
    last: BTreeMap<u64, usize>,
}

/// Spans of one run as they are recorded (indices into `spans`).
///
/// `spans` holds at most [`SPANS_MAX`]; the maps of span indices below only gain an
/// entry with a span, so they are bounded with it. `ops` and `attempt_counts` gain one
/// per operation or request even past that bound: the run's operations, which its
/// simulated duration bounds.
#[derive(Default)]
pub(crate) struct SpanRecorder {
    spans: Vec<Span>,
    dropped: u64,
    traces: u64,
    /// Protocol operations, bound to the trace of the request that first named them.
    ops: BTreeMap<OpId, u64>,
    /// Each trace's root (the client operation), if it has one.
    roots: BTreeMap<u64, usize>,
    /// Each client's operation in flight (its root span).
    open_ops: BTreeMap<ClientId, usize>,
    /// Every attempt a client sent (its `request` span), answered or not.
    attempts: BTreeMap<RequestId, usize>,
    /// Attempts sent so far per trace.
    attempt_counts: BTreeMap<u64, i64>,
    /// Attempts not answered yet, ended by their response or their operation's end.
    open_attempts: BTreeMap<RequestId, usize>,
    /// `received` spans whose request has no reply yet, by node and request.
    received: BTreeMap<(NodeId, RequestId), usize>,
    /// Each node's spans per trace, with their marks, in order.
    at_node: BTreeMap<(NodeId, u64), Vec<(u64, usize)>>,
    /// A node's latest protocol span per trace, which ends when the next one starts.
    open_steps: BTreeMap<(NodeId, u64), usize>,
    step: Option<Step>,
}

impl SpanRecorder {
    fn new_trace(&mut self) -> u64 {
        self.traces += 1;
        self.traces
    }

    /// Adds a span; `None` once the run holds [`SPANS_MAX`].
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        trace: u64,
        parent: Option<usize>,
        name: &str,
        actor: SpanActor,
        kind: SpanKind,
        now: u64,
        attrs: Vec<(String, SpanValue)>,
    ) -> Option<usize> {
        if self.spans.len() >= SPANS_MAX {
            self.dropped += 1;
            return None;
        }
        let index = self.spans.len();
        self.spans.push(Span {
            trace,
            id: index as u64 + 1,
            parent: parent.map(|p| self.spans[p].id),
            name: name.to_string(),
            actor,
            kind,
            start_ns: now,
            end_ns: now,
            attrs,
            status: SpanStatus::Unset,
        });
        Some(index)
    }

    fn at_node(&mut self, node: NodeId, trace: u64, mark: u64, index: usize) {
        self.at_node
            .entry((node, trace))
            .or_default()
            .push((mark, index));
    }

    // ---- Clients. ----

    /// Client `c` invokes an operation (`op` is its history entry, as JSON): a new
    /// trace, rooted in the operation.
    pub(crate) fn invoke(&mut self, c: ClientId, now: u64, op: serde_json::Value) {
        if let Some(open) = self.open_ops.remove(&c) {
            self.spans[open].end_ns = now; // a client that never completed it
        }
        let trace = self.new_trace();
        let name = op_name(&op);
        let attrs = vec![
            ("client".into(), SpanValue::Int(c as i64)),
            ("op".into(), SpanValue::Str(op.to_string())),
        ];
        let actor = SpanActor::Client(c);
        if let Some(root) = self.push(trace, None, &name, actor, SpanKind::Internal, now, attrs) {
            self.roots.insert(trace, root);
            self.open_ops.insert(c, root);
        }
    }

    /// Client `c` completes its operation: the root ends with the outcome, and so do
    /// its unanswered attempts.
    pub(crate) fn complete(&mut self, c: ClientId, now: u64, kind: OpType, op: serde_json::Value) {
        let Some(root) = self.open_ops.remove(&c) else {
            return;
        };
        let trace = self.spans[root].trace;
        let span = &mut self.spans[root];
        span.end_ns = now;
        let outcome = match kind {
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
            OpType::Invoke => unreachable!("a completion"),
        };
        span.status = match kind {
            OpType::Ok => SpanStatus::Ok,
            OpType::Fail => SpanStatus::Error("fail: it did not happen".into()),
            _ => SpanStatus::Error("info: it may or may not have happened".into()),
        };
        span.attrs
            .push(("outcome".into(), SpanValue::Str(outcome.into())));
        span.attrs
            .push(("result".into(), SpanValue::Str(op.to_string())));
        let open: Vec<RequestId> = self
            .open_attempts
            .iter()
            .filter(|(_, &i)| self.spans[i].trace == trace)
            .map(|(&id, _)| id)
            .collect();
        for id in open {
            let i = self.open_attempts.remove(&id).expect("listed");
            self.spans[i].end_ns = now;
        }
    }

    /// Client `c` sends attempt `id` to node `to`: a `request` span under its
    /// operation (a trace of its own if none is in flight).
    pub(crate) fn request(
        &mut self,
        c: ClientId,
        now: u64,
        to: NodeId,
        id: RequestId,
        req: String,
    ) {
        let root = self.open_ops.get(&c).copied();
        let trace = match root {
            Some(r) => self.spans[r].trace,
            None => self.new_trace(),
        };
        // An attempt still unanswered when the next one leaves was given up on then.
        let superseded: Vec<RequestId> = self
            .open_attempts
            .iter()
            .filter(|(_, &i)| self.spans[i].trace == trace)
            .map(|(&id, _)| id)
            .collect();
        for id in superseded {
            let i = self.open_attempts.remove(&id).expect("listed");
            self.spans[i].end_ns = now;
        }
        let attempt = self.attempt_counts.entry(trace).or_default();
        *attempt += 1;
        let attempt = *attempt;
        let attrs = vec![
            ("to".into(), SpanValue::Str(format!("n{to}"))),
            ("request.seq".into(), SpanValue::Int(id.seq as i64)),
            ("attempt".into(), SpanValue::Int(attempt)),
            ("request".into(), SpanValue::Str(req)),
        ];
        let actor = SpanActor::Client(c);
        if let Some(i) = self.push(trace, root, "request", actor, SpanKind::Client, now, attrs) {
            self.attempts.insert(id, i);
            self.open_attempts.insert(id, i);
        }
    }

    /// Client `c` gets node `from`'s answer to attempt `id`.
    pub(crate) fn response(&mut self, now: u64, from: NodeId, id: RequestId, resp: String) {
        if let Some(i) = self.open_attempts.remove(&id) {
            let span = &mut self.spans[i];
            span.end_ns = now;
            span.attrs
                .push(("from".into(), SpanValue::Str(format!("n{from}"))));
            span.attrs.push(("response".into(), SpanValue::Str(resp)));
        }
    }

    // ---- Nodes. ----

    /// A handler call begins at `node`; a request opens its `received` span.
    pub(crate) fn begin_step(&mut self, node: NodeId, now: u64, mark: u64, cause: Cause) {
        let mut step = Step {
            node,
            message: None,
            received: None,
            last: BTreeMap::new(),
        };
        match cause {
            Cause::Local => {}
            Cause::Message { from, seq } => step.message = Some((from, seq)),
            Cause::Request(id, req) => {
                let attempt = self.attempts.get(&id).copied();
                let trace = match attempt {
                    Some(a) => self.spans[a].trace,
                    None => self.new_trace(),
                };
                let attrs = vec![
                    ("client".into(), SpanValue::Int(id.client as i64)),
                    ("request.seq".into(), SpanValue::Int(id.seq as i64)),
                    ("request".into(), SpanValue::Str(req)),
                ];
                let actor = SpanActor::Node(node);
                let kind = SpanKind::Server;
                if let Some(i) = self.push(trace, attempt, "received", actor, kind, now, attrs) {
                    self.received.insert((node, id), i);
                    self.at_node(node, trace, mark, i);
                    step.received = Some(i);
                    step.last.insert(trace, i);
                }
            }
        }
        self.step = Some(step);
    }

    /// A protocol step `name` at `node` for operation `op` (`Context::span_after`),
    /// at `(now, mark)`; a message's sender's spans named in `after` (empty: any)
    /// may be its parent.
    pub(crate) fn span(
        &mut self,
        node: NodeId,
        (now, mark): (u64, u64),
        op: OpId,
        (name, after): (&str, &[&str]),
        attrs: &[(&'static str, i64)],
    ) {
        let step = self.step.as_ref().filter(|s| s.node == node);
        let request_trace = step.and_then(|s| s.received).map(|i| self.spans[i].trace);
        let trace = match (self.ops.get(&op), request_trace) {
            (Some(&t), _) => t,
            (None, Some(t)) => t,
            (None, None) => self.new_trace(),
        };
        self.ops.entry(op).or_insert(trace);
        let step = self.step.as_ref().filter(|s| s.node == node);
        let in_step = step.and_then(|s| s.last.get(&trace).copied());
        let message = step.and_then(|s| s.message);
        let from_message = |names: &[&str]| {
            message.and_then(|(from, seq)| self.latest_before(from, trace, seq, names))
        };
        let parent = in_step
            .or_else(|| from_message(after))
            .or_else(|| from_message(&[]))
            .or_else(|| self.latest_before(node, trace, u64::MAX, &[]))
            .or_else(|| self.roots.get(&trace).copied());
        let mut all = vec![
            ("client".into(), SpanValue::Int(op.client as i64)),
            ("op".into(), SpanValue::Int(op.op as i64)),
        ];
        all.extend(
            attrs
                .iter()
                .map(|&(k, v)| (k.to_string(), SpanValue::Int(v))),
        );
        let actor = SpanActor::Node(node);
        let Some(i) = self.push(trace, parent, name, actor, SpanKind::Internal, now, all) else {
            return;
        };
        // The node's previous step of this operation lasted until this one.
        if let Some(previous) = self.open_steps.insert((node, trace), i) {
            self.spans[previous].end_ns = now;
        }
        self.at_node(node, trace, mark, i);
        if let Some(step) = self.step.as_mut().filter(|s| s.node == node) {
            step.last.insert(trace, i);
        }
    }

    /// The latest span of `trace` at `node` whose mark is at most `seq`, among those
    /// named in `names` (empty: any).
    fn latest_before(&self, node: NodeId, trace: u64, seq: u64, names: &[&str]) -> Option<usize> {
        let spans = self.at_node.get(&(node, trace))?;
        let named = |i: usize| names.is_empty() || names.contains(&self.spans[i].name.as_str());
        spans
            .iter()
            .rev()
            .find(|&&(mark, i)| mark <= seq && named(i))
            .map(|&(_, i)| i)
    }

    /// `node` answers request `id`: an `answered` span, which ends the `received` one.
    pub(crate) fn reply(&mut self, node: NodeId, now: u64, mark: u64, id: RequestId, resp: String) {
        let received = self.received.remove(&(node, id));
        let parent = received.or_else(|| self.attempts.get(&id).copied());
        let trace = match parent {
            Some(p) => self.spans[p].trace,
            None => self.new_trace(),
        };
        if let Some(r) = received {
            self.spans[r].end_ns = now;
        }
        let attrs = vec![
            ("client".into(), SpanValue::Int(id.client as i64)),
            ("request.seq".into(), SpanValue::Int(id.seq as i64)),
            ("response".into(), SpanValue::Str(resp)),
        ];
        let actor = SpanActor::Node(node);
        if let Some(i) = self.push(
            trace,
            parent,
            "answered",
            actor,
            SpanKind::Internal,
            now,
            attrs,
        ) {
            self.at_node(node, trace, mark, i);
        }
    }

    /// `node` went down: its open spans end now, and its next incarnation starts none
    /// of them again.
    pub(crate) fn node_down(&mut self, node: NodeId, now: u64) {
        let keys: Vec<_> = self
            .received
            .keys()
            .filter(|k| k.0 == node)
            .copied()
            .collect();
        for key in keys {
            let i = self.received.remove(&key).expect("listed");
            self.spans[i].end_ns = now;
        }
        self.open_steps.retain(|k, _| k.0 != node);
    }

    /// The run is over at `now`: operations and attempts still open end now.
    pub(crate) fn finish(mut self, now: u64) -> RunSpans {
        for &i in self.open_ops.values().chain(self.open_attempts.values()) {
            self.spans[i].end_ns = now;
        }
        RunSpans {
            spans: self.spans,
            dropped: self.dropped,
            ..RunSpans::default()
        }
    }
}

/// A root span's name from a history operation: its `f` and `key` (`put k1`), or
/// `operation`.
fn op_name(op: &serde_json::Value) -> String {
    let f = op.get("f").and_then(|f| f.as_str());
    let key = op.get("key").and_then(|k| k.as_str());
    match (f, key) {
        (Some(f), Some(key)) => format!("{f} {key}"),
        (Some(f), None) => f.to_string(),
        _ => "operation".into(),
    }
}
