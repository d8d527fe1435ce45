//! The run's event trace: every event feeds a 64-bit FNV-1a fingerprint (the trace
//! hash, over the portable encoding of [`crate::fingerprint`]); when recording, events
//! are also kept (for `trace.jsonl`) and logged through `tracing`.

use serde::Serialize;

use crate::fingerprint::{self, Fingerprint, Fnv};

/// Who an event happened at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A server process, by node id (`n3` in trace lines).
    Node(usize),
    /// A simulated client, by client id (`c0`).
    Client(usize),
    /// The simulator itself: faults and phases.
    Sim,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Node(n) => write!(f, "n{n}"),
            Actor::Client(c) => write!(f, "c{c}"),
            Actor::Sim => f.write_str("sim"),
        }
    }
}

/// One line of `trace.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct TraceRecord {
    /// Simulated (true) time since the run began, in ns.
    pub time_ns: u64,
    /// Who it happened at: `n3`, `c0` or `sim`.
    pub actor: String,
    /// The event's name (`send`, `drop`, `crash`, `fault`...).
    pub event: &'static str,
    /// A human-readable description (not hashed).
    pub detail: String,
    /// What pairs a message's events up (not hashed; absent from other events).
    #[serde(flatten)]
    pub fields: Fields,
}

/// Structured fields of a message event, for pictures of a run (`faultline report`):
/// they pair a `send` with its `deliver`, `drop`, `duplicate` or `hold`, and a
/// client's `request` with the node's `request` and `reply`. Only built when
/// recording, never hashed; each is left out of `trace.jsonl` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fields {
    /// The message's id: the run's send counter at its `send` (0, 1, ...). A
    /// duplicate keeps its original's id, so one id may be delivered twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<u64>,
    /// The other end: the receiver of a send, the sender of a delivery (`n3`, `c0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The message's class ([`crate::Process::message_class`]), `request` or `reply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    /// A client request's number (its `RequestId::seq`; the client is the actor or
    /// the peer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req: Option<u64>,
}

impl Fields {
    /// A node-to-node message: its id, the other node, its class.
    pub fn message(msg: u64, peer: Actor, class: &'static str) -> Fields {
        Fields {
            msg: Some(msg),
            peer: Some(peer.to_string()),
            class: Some(class),
            req: None,
        }
    }

    /// A client request or its reply (`class` is `request` or `reply`).
    pub fn request(seq: u64, peer: Actor, class: &'static str) -> Fields {
        Fields {
            msg: None,
            peer: Some(peer.to_string()),
            class: Some(class),
            req: Some(seq),
        }
    }
}

/// The trace of one run: its hash and event count, and with recording on, its
/// records.
#[derive(Debug)]
pub struct Trace {
    hash: Fnv,
    events: u64,
    /// `Some` when recording: the full event list. Bounded by the run's events, which
    /// its simulated duration bounds (every event takes a step, and steps per wake-up
    /// are bounded); recording is for single-seed replays, not sweeps.
    records: Option<Vec<TraceRecord>>,
}

impl Trace {
    /// An empty trace; `record` keeps every event as a [`TraceRecord`] and logs it.
    pub fn new(record: bool) -> Self {
        // The hash starts from the encoding's version: a new encoding, new hashes.
        let mut hash = Fnv::default();
        fingerprint::VERSION.fingerprint(&mut hash);
        Trace {
            hash,
            events: 0,
            records: record.then(Vec::new),
        }
    }

    /// Adds an event. Its time, actor, name and `payload` feed the fingerprint, in this
    /// order; `detail` is only called when recording.
    pub fn event(
        &mut self,
        time_ns: u64,
        actor: Actor,
        event: &'static str,
        payload: &impl Fingerprint,
        detail: impl FnOnce() -> String,
    ) {
        self.event_with(time_ns, actor, event, payload, || {
            (detail(), Fields::default())
        });
    }

    /// [`Trace::event`] with structured [`Fields`]: `detail` returns the description
    /// and the fields, and is only called when recording, so neither feeds the hash.
    pub fn event_with(
        &mut self,
        time_ns: u64,
        actor: Actor,
        event: &'static str,
        payload: &impl Fingerprint,
        detail: impl FnOnce() -> (String, Fields),
    ) {
        self.events += 1;
        time_ns.fingerprint(&mut self.hash);
        actor.fingerprint(&mut self.hash);
        event.fingerprint(&mut self.hash);
        payload.fingerprint(&mut self.hash);
        if let Some(records) = &mut self.records {
            let (detail, fields) = detail();
            let time = fmt_time(time_ns);
            match event {
                "failure" => tracing::warn!(target: "faultline", "{time} {actor} {event} {detail}"),
                "note" | "fault" | "heal" | "crash" | "restart" | "pause" | "resume" => {
                    tracing::info!(target: "faultline", "{time} {actor} {event} {detail}")
                }
                _ => tracing::debug!(target: "faultline", "{time} {actor} {event} {detail}"),
            }
            records.push(TraceRecord {
                time_ns,
                actor: actor.to_string(),
                event,
                detail,
                fields,
            });
        }
    }

    /// The trace hash so far: the run's fingerprint.
    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    /// Events added so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The recorded events, in order, leaving none; empty when not recording.
    pub fn take_records(&mut self) -> Vec<TraceRecord> {
        self.records.take().unwrap_or_default()
    }
}

/// Simulated time as `12.345678s`.
pub fn fmt_time(time_ns: u64) -> String {
    format!(
        "{}.{:06}s",
        time_ns / 1_000_000_000,
        (time_ns % 1_000_000_000) / 1_000
    )
}

crate::impl_fingerprint!(enum Actor {
    0 => Node(node),
    1 => Client(client),
    2 => Sim,
});
