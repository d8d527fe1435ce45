//! The run's event trace: every event feeds a 64-bit FNV-1a fingerprint; when
//! recording, events are also kept (for `trace.jsonl`) and logged through `tracing`.

use std::hash::{Hash, Hasher};

use serde::Serialize;

/// FNV-1a, 64-bit: stable across Rust versions and processes, unlike `DefaultHasher`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Who an event happened at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    Node(usize),
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
    pub time_ns: u64,
    pub actor: String,
    pub event: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Trace {
    hash: Fnv,
    events: u64,
    /// `Some` when recording: the full event list.
    records: Option<Vec<TraceRecord>>,
}

impl Trace {
    pub fn new(record: bool) -> Self {
        Trace {
            records: record.then(Vec::new),
            ..Trace::default()
        }
    }

    /// Adds an event. `payload` is hashed; `detail` is only called when recording.
    pub fn event(
        &mut self,
        time_ns: u64,
        actor: Actor,
        event: &'static str,
        payload: &impl Hash,
        detail: impl FnOnce() -> String,
    ) {
        self.events += 1;
        time_ns.hash(&mut self.hash);
        actor.hash(&mut self.hash);
        event.hash(&mut self.hash);
        payload.hash(&mut self.hash);
        if let Some(records) = &mut self.records {
            let detail = detail();
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
            });
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    pub fn events(&self) -> u64 {
        self.events
    }

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
