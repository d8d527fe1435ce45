//! Chrome trace events: the JSON Object Format of Google's "Trace Event Format"
//! document (`{"traceEvents": [...]}`), which Perfetto (ui.perfetto.dev) and
//! chrome://tracing open.
//!
//! - each node and client is a process (`pid` 1.. for `n0..`, then the clients), named
//!   by a `process_name` metadata event (`ph: "M"`);
//! - within it, the operations it served are packed into rows (threads, `tid` from
//!   1, named `operations N` by `thread_name` events): all of one operation's spans at
//!   one actor share a row, and operations whose time at that actor overlaps get
//!   different rows, so complete events on one row nest as the format requires;
//! - each span is a complete event (`ph: "X"`, `ts` and `dur` in microseconds of
//!   simulated time since the run began, `args` its attributes, trace and span ids);
//! - a parent in another process is drawn as a flow arrow: a flow start (`ph: "s"`) at
//!   the parent's start in the parent's row and a flow finish (`ph: "f"`, `bp: "e"`,
//!   binding to the enclosing slice) at the child's start, sharing the child's span id
//!   as the flow `id`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{RunSpans, Span, SpanActor, SpanStatus, SpanValue};

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

/// The row (`tid`, from 1) of each span, by span id. A trace's spans at one actor
/// form clusters (spans that overlap in time, transitively, and nest: a span that
/// overlaps one it does not fit inside is a cluster of its own); each cluster's
/// interval is packed greedily, by start, into the first row of its process whose last
/// interval has ended, so rows grow only when every row is busy.
fn rows(spans: &RunSpans) -> BTreeMap<u64, u64> {
    let mut by_place: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    for (i, s) in spans.spans.iter().enumerate() {
        by_place
            .entry((pid(spans, s.actor), s.trace))
            .or_default()
            .push(i);
    }
    // (pid, start, end, members) of each cluster.
    let mut clusters: Vec<(u64, u64, u64, Vec<usize>)> = Vec::new();
    for ((pid, _), mut members) in by_place {
        // Enclosing spans first, so that what nests comes after what it nests in.
        members.sort_by_key(|&i| {
            let s = &spans.spans[i];
            (s.start_ns, std::cmp::Reverse(s.end_ns), i)
        });
        let mut current: Option<(u64, u64, Vec<usize>)> = None;
        // Ends of the current cluster's spans that enclose the next start.
        let mut open: Vec<u64> = Vec::new();
        for i in members {
            let s = &spans.spans[i];
            // Each round pops one end, and each span pushes one: at most `members`.
            while open.last().is_some_and(|&end| end <= s.start_ns) {
                open.pop();
            }
            match &mut current {
                Some(c) if s.start_ns < c.1 || (s.start_ns == c.1 && !open.is_empty()) => {
                    if open.last().is_some_and(|&end| s.end_ns > end) {
                        // Overlaps without nesting: a row of its own.
                        clusters.push((pid, s.start_ns, s.end_ns, vec![i]));
                        continue;
                    }
                    c.1 = c.1.max(s.end_ns);
                    c.2.push(i);
                }
                _ => {
                    if let Some((start, end, m)) = current.take() {
                        clusters.push((pid, start, end, m));
                    }
                    open.clear();
                    current = Some((s.start_ns, s.end_ns, vec![i]));
                }
            }
            open.push(s.end_ns);
        }
        if let Some((start, end, m)) = current {
            clusters.push((pid, start, end, m));
        }
    }
    clusters.sort_by_key(|c| (c.0, c.1, c.3[0]));
    let mut rows = BTreeMap::new();
    // Per process, the end of the last interval in each row.
    let mut ends: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (pid, start, end, members) in clusters {
        let busy = ends.entry(pid).or_default();
        let row = match busy.iter().position(|&e| e <= start) {
            Some(free) => free,
            None => {
                busy.push(0);
                busy.len() - 1
            }
        };
        busy[row] = end;
        for i in members {
            rows.insert(spans.spans[i].id, row as u64 + 1);
        }
    }
    rows
}

/// The run's spans as Chrome trace-event JSON, one event per line: the same spans
/// give the same bytes.
pub fn to_json(spans: &RunSpans) -> String {
    let rows = rows(spans);
    let tid = |span: &Span| rows[&span.id];
    let by_id: BTreeMap<u64, usize> = spans
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();

    let mut events: Vec<Value> = Vec::new();
    let mut threads: BTreeSet<(u64, u64)> = BTreeSet::new();
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
        threads.insert((pid(spans, s.actor), tid(s)));
    }
    for &(pid, tid) in &threads {
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
            "args": { "name": format!("operations {tid}") },
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
        let (pid_s, tid_s) = (pid(spans, s.actor), tid(s));
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
                "pid": pid(spans, parent.actor), "tid": tid(parent),
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
