//! Chrome trace events: the JSON Object Format of Google's "Trace Event Format"
//! document (`{"traceEvents": [...]}`), which Perfetto (ui.perfetto.dev) and
//! chrome://tracing open.
//!
//! - each node and client is a process (`pid` 1.. for `n0..`, then the clients), named
//!   by a `process_name` metadata event (`ph: "M"`);
//! - within it, each client whose operations it served is a thread (`tid` = client + 1;
//!   0 for steps of no client operation), named by a `thread_name` event, so one
//!   client's operations line up in one row on every node;
//! - each span is a complete event (`ph: "X"`, `ts` and `dur` in microseconds of
//!   simulated time since the run began, `args` its attributes, trace and span ids);
//! - a parent in another process is drawn as a flow arrow: a flow start (`ph: "s"`) at
//!   the parent's start in the parent's row and a flow finish (`ph: "f"`, `bp: "e"`,
//!   binding to the enclosing slice) at the child's start, sharing the child's span id
//!   as the flow `id`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{RunSpans, SpanActor, SpanStatus, SpanValue};

/// The process id of an actor: nodes from 1, then clients.
fn pid(spans: &RunSpans, actor: SpanActor) -> u64 {
    match actor {
        SpanActor::Node(n) => n as u64 + 1,
        SpanActor::Client(c) => (spans.nodes + c) as u64 + 1,
    }
}

/// Microseconds, as the format's `ts` and `dur` want them (fractions allowed).
fn micros(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The run's spans as Chrome trace-event JSON, one event per line: the same spans
/// give the same bytes.
pub fn to_json(spans: &RunSpans) -> String {
    // Each trace's client, from its root (the only spans at clients are theirs).
    let mut client_of: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &spans.spans {
        if let SpanActor::Client(c) = s.actor {
            client_of.entry(s.trace).or_insert(c);
        }
    }
    let tid = |trace: u64| client_of.get(&trace).map_or(0, |&c| c as u64 + 1);
    let by_id: BTreeMap<u64, usize> = spans
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();

    let mut events: Vec<Value> = Vec::new();
    let mut threads: BTreeMap<(u64, u64), ()> = BTreeMap::new();
    for actor in spans.actors() {
        let pid = pid(spans, actor);
        events.push(json!({
            "name": "process_name", "ph": "M", "pid": pid, "tid": 0,
            "args": { "name": actor.to_string() },
        }));
        events.push(json!({
            "name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
            "args": { "sort_index": pid },
        }));
    }
    for s in &spans.spans {
        threads.insert((pid(spans, s.actor), tid(s.trace)), ());
    }
    for &(pid, tid) in threads.keys() {
        let name = match tid {
            0 => "no client".to_string(),
            t => format!("c{} operations", t - 1),
        };
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
            "args": { "name": name },
        }));
    }
    let mut flows = Vec::new();
    for s in &spans.spans {
        let mut args = Map::new();
        args.insert("trace_id".into(), spans.trace_id(s.trace).into());
        args.insert("span_id".into(), RunSpans::span_id(s.id).into());
        for (key, value) in &s.attrs {
            let value = match value {
                SpanValue::Int(i) => Value::from(*i),
                SpanValue::Str(text) => Value::from(text.as_str()),
            };
            args.insert(key.clone(), value);
        }
        match &s.status {
            SpanStatus::Unset => {}
            SpanStatus::Ok => {
                args.insert("status".into(), "ok".into());
            }
            SpanStatus::Error(m) => {
                args.insert("status".into(), format!("error: {m}").into());
            }
        }
        let (pid_s, tid_s) = (pid(spans, s.actor), tid(s.trace));
        events.push(json!({
            "name": s.name, "cat": "span", "ph": "X",
            "ts": micros(s.start_ns), "dur": micros(s.end_ns - s.start_ns),
            "pid": pid_s, "tid": tid_s, "args": args,
        }));
        let parent = s
            .parent
            .and_then(|p| by_id.get(&p))
            .map(|&i| &spans.spans[i]);
        if let Some(parent) = parent.filter(|p| p.actor != s.actor) {
            let name = format!("{} → {}", parent.name, s.name);
            flows.push(json!({
                "name": name, "cat": "cause", "ph": "s", "id": s.id,
                "ts": micros(parent.start_ns),
                "pid": pid(spans, parent.actor), "tid": tid(parent.trace),
            }));
            flows.push(json!({
                "name": name, "cat": "cause", "ph": "f", "bp": "e", "id": s.id,
                "ts": micros(s.start_ns), "pid": pid_s, "tid": tid_s,
            }));
        }
    }
    events.extend(flows);
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    format!(
        "{{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n{}\n]}}\n",
        lines.join(",\n")
    )
}
