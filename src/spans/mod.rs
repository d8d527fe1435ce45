//! Request traces: each client operation becomes a trace whose spans are the steps it
//! caused on each node, in simulated time, exported as OpenTelemetry JSON ([`otlp`])
//! and Chrome trace events ([`chrome`]).
//!
//! Who records what:
//! - the driver, for every protocol: the client's operation (the root span, from the
//!   history's invoke to its `ok`/`fail`/`info`), each attempt the client sends
//!   (`request`, until its response), each node's handling of a request (`received`,
//!   until its reply leaves) and the reply itself (`answered`);
//! - the protocol, for its own steps, with [`crate::process::Context::span`]: Raft's
//!   `appended`, `replicated`, `committed` and `applied`.
//!
//! Parents come from causality the driver sees: a span's parent is the previous span
//! of the same trace in the same handler call; else, in a handler for a client
//! request, that request's `received` span; in a handler for a message, the sender's
//! latest span of the trace before it sent the message (of the steps the protocol
//! named with [`crate::process::Context::span_after`], if it has one, else of any);
//! else the node's own latest span of the trace; else the trace's root.
//!
//! Spans are collected only when the run records (as for `trace.jsonl`), and never feed
//! the trace hash: recording them changes nothing in the run.

#![warn(missing_docs)]

use serde::Serialize;

use crate::process::{ClientId, NodeId};

pub mod chrome;
pub mod otlp;
#[cfg(madsim)]
pub(crate) mod recorder;

/// The client operation a protocol step serves: the client, and the operation number
/// the protocol's requests carry (Raft's session sequence number, which every retry
/// of one operation shares, so retries land in one trace). A step that names an `OpId`
/// first seen in a handler for a client request joins that request's trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OpId {
    /// The client that invoked the operation.
    pub client: ClientId,
    /// The protocol's number for the operation, unique per client.
    pub op: u64,
}

/// Where a span happened: a node or a client (one OpenTelemetry resource, one Chrome
/// trace process each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum SpanActor {
    /// A server process, `n<id>`.
    Node(NodeId),
    /// A simulated client, `c<id>`.
    Client(ClientId),
}

impl std::fmt::Display for SpanActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpanActor::Node(n) => write!(f, "n{n}"),
            SpanActor::Client(c) => write!(f, "c{c}"),
        }
    }
}

/// A span's kind, as OpenTelemetry's `SpanKind` (trace.proto): the numbers are its
/// enum values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SpanKind {
    /// `SPAN_KIND_INTERNAL` (1): a step inside one actor.
    Internal = 1,
    /// `SPAN_KIND_SERVER` (2): a node handling a client's request.
    Server = 2,
    /// `SPAN_KIND_CLIENT` (3): one attempt a client sends.
    Client = 3,
}

/// How a span ended, as OpenTelemetry's `Status` (trace.proto).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SpanStatus {
    /// `STATUS_CODE_UNSET` (0): no verdict (every step span; an operation the run
    /// ended before it completed).
    Unset,
    /// `STATUS_CODE_OK` (1): the operation completed `ok`.
    Ok,
    /// `STATUS_CODE_ERROR` (2) with a message: the operation completed `fail` (it
    /// certainly did not happen) or `info` (it may or may not have happened).
    Error(String),
}

/// An attribute's value: OpenTelemetry's `AnyValue` `intValue` or `stringValue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SpanValue {
    /// A 64-bit integer (an index, a term, a node id).
    Int(i64),
    /// Text (a request, a response).
    Str(String),
}

/// One recorded span. Times are simulated (true) time since the run began, in ns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// The trace it belongs to, numbered from 1 in the order traces began in the run.
    pub trace: u64,
    /// Its id, numbered from 1 in the order spans began in the run.
    pub id: u64,
    /// Its parent's id (in the same trace), `None` for a root.
    pub parent: Option<u64>,
    /// The step: `operation`, `request`, `received`, `answered`, or a protocol's own
    /// (`appended`, `replicated`, `committed`, `applied`).
    pub name: String,
    /// Where it happened.
    pub actor: SpanActor,
    /// OpenTelemetry's span kind.
    pub kind: SpanKind,
    /// When it began, ns.
    pub start_ns: u64,
    /// When it ended, ns (`>= start_ns`).
    pub end_ns: u64,
    /// Attributes, in the order they were given.
    pub attrs: Vec<(String, SpanValue)>,
    /// Its status.
    pub status: SpanStatus,
}

/// The spans of one run, with what an exporter needs to name them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunSpans {
    /// The scenario's name.
    pub scenario: String,
    /// The protocol's name ([`crate::system::System::NAME`]).
    pub protocol: String,
    /// The run's seed: trace ids start with it, so traces of different seeds differ.
    pub seed: u64,
    /// Nodes in the cluster (actors `n0..`).
    pub nodes: usize,
    /// Clients in the run (actors `c0..`).
    pub clients: usize,
    /// Every span, in the order they began (ids ascending).
    pub spans: Vec<Span>,
    /// Spans not recorded because the run reached [`SPANS_MAX`].
    pub dropped: u64,
}

/// Most spans one run records; later ones are counted in [`RunSpans::dropped`].
pub const SPANS_MAX: usize = 2_000_000;

impl RunSpans {
    /// The 32-hex-digit OpenTelemetry trace id of trace `trace`: the seed, then the
    /// trace's number, each as 16 hex digits (never all zero: traces count from 1).
    pub fn trace_id(&self, trace: u64) -> String {
        format!("{:016x}{trace:016x}", self.seed)
    }

    /// The 16-hex-digit OpenTelemetry span id of span `id` (never zero: ids count
    /// from 1).
    pub fn span_id(id: u64) -> String {
        format!("{id:016x}")
    }

    /// Every actor that has a span, nodes first, each once, in id order.
    pub fn actors(&self) -> Vec<SpanActor> {
        let mut actors: Vec<SpanActor> = self.spans.iter().map(|s| s.actor).collect();
        actors.sort();
        actors.dedup();
        actors
    }
}

/// The two files `--traces FILE` writes for one seed: `FILE.otlp.json` and
/// `FILE.chrome.json`, a `.json` ending of `FILE` dropped first (`out.json` and `out`
/// both give `out.otlp.json`). With `seed`, the seed goes before the format:
/// `out.seed-7.otlp.json` (a sweep of several seeds writes one pair per seed).
pub fn trace_paths(
    file: &std::path::Path,
    seed: Option<u64>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let text = file.to_string_lossy();
    let base = text.strip_suffix(".json").unwrap_or(&text);
    let base = match seed {
        Some(seed) => format!("{base}.seed-{seed}"),
        None => base.to_string(),
    };
    (
        format!("{base}.otlp.json").into(),
        format!("{base}.chrome.json").into(),
    )
}

/// Writes `spans` as `FILE.otlp.json` and `FILE.chrome.json` (see [`trace_paths`]),
/// creating the folder if needed. Errors are the file system's.
pub fn write_traces(
    spans: &RunSpans,
    file: &std::path::Path,
    seed: Option<u64>,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (otlp_path, chrome_path) = trace_paths(file, seed);
    if let Some(dir) = otlp_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&otlp_path, otlp::to_json(spans))?;
    std::fs::write(&chrome_path, chrome::to_json(spans))?;
    Ok((otlp_path, chrome_path))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{trace_paths, RunSpans};

    #[test]
    fn trace_paths_drop_a_json_ending_and_name_the_seed_of_a_sweep() {
        let paths = |file: &str, seed| {
            let (otlp, chrome) = trace_paths(Path::new(file), seed);
            (otlp.display().to_string(), chrome.display().to_string())
        };
        let one = ("t/out.otlp.json".into(), "t/out.chrome.json".into());
        assert_eq!(paths("t/out.json", None), one);
        assert_eq!(paths("t/out", None), one);
        assert_eq!(
            paths("out.json", Some(7)),
            (
                "out.seed-7.otlp.json".into(),
                "out.seed-7.chrome.json".into()
            )
        );
    }

    #[test]
    fn ids_are_fixed_width_hex_with_the_seed_first() {
        let spans = RunSpans {
            seed: 0xab,
            ..RunSpans::default()
        };
        assert_eq!(spans.trace_id(3), "00000000000000ab0000000000000003");
        assert_eq!(RunSpans::span_id(255), "00000000000000ff");
        assert_eq!(spans.trace_id(u64::MAX).len(), 32);
    }
}
