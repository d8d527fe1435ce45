//! Request traces: the OpenTelemetry file parses with the real OTLP schema
//! (opentelemetry-proto's `ExportTraceServiceRequest`), its spans are the steps each
//! request caused with parents that resolve, the Chrome file follows the Trace Event
//! Format, the same seed gives the same bytes, and recording spans changes nothing in
//! the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use faultline::raft::RaftKv;
use faultline::run::{run_seed, Outcome};
use faultline::scenario::Scenario;
use faultline::spans::{trace_paths, write_traces};
use faultline::System;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

/// Five Raft nodes, five clients, no faults: client `c` first asks node `c`, so four
/// of them are redirected to the leader before their first operation commits.
const CALM: &str = r#"
name = "traces-calm"
description = "five nodes, five clients, no faults"
duration_ms = 2000
[cluster]
protocol = "raft"
nodes = 5
[workload]
clients = 5
[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 5 }
[liveness]
quiesce_ms = 5000
"#;

/// The same cluster under crashes and partitions: retries, leader changes, restarts.
const STORMY: &str = r#"
name = "traces-stormy"
description = "five nodes under crashes and partitions"
duration_ms = 4000
[cluster]
protocol = "raft"
nodes = 5
[workload]
clients = 3
[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 10 }
[random]
kinds = ["crash", "partition", "isolate"]
interval_ms = { min = 200, max = 600 }
duration_ms = { min = 200, max = 900 }
max_down = 2
[liveness]
quiesce_ms = 10000
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("traces")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn run(text: &str, seed: u64, record: bool) -> Outcome {
    let scenario = Scenario::parse("traces.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(
        scenario
            .setup::<RaftKv>(&[])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let schedule = scenario.schedule(seed, RaftKv::clients(&setup));
    run_seed::<RaftKv>(&scenario, &setup, &schedule, record)
}

/// Records `text` at `seed` and writes its two files into a fresh folder `name`.
fn export(text: &str, seed: u64, name: &str) -> (PathBuf, PathBuf) {
    let outcome = run(text, seed, true);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let base = scratch(name).join("out.json");
    write_traces(&outcome.spans, &base, None).expect("traces written")
}

/// A span with the service (resource) it belongs to.
#[derive(Clone, Debug)]
struct Seen {
    service: String,
    span: Span,
}

impl Seen {
    fn attr(&self, key: &str) -> Option<&Any> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            Any::IntValue(i) => Some(*i),
            _ => None,
        }
    }
    fn text(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            Any::StringValue(s) => Some(s),
            _ => None,
        }
    }
    fn start(&self) -> u64 {
        self.span.start_time_unix_nano
    }
}

/// Parses the OTLP file with opentelemetry-proto's serde types; spans by trace.
fn parse_otlp(path: &Path) -> BTreeMap<Vec<u8>, Vec<Seen>> {
    let text = std::fs::read_to_string(path).expect("the OTLP file");
    let request: ExportTraceServiceRequest =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not OTLP/JSON: {e}"));
    assert!(!request.resource_spans.is_empty());
    let mut traces: BTreeMap<Vec<u8>, Vec<Seen>> = BTreeMap::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.as_ref().expect("a resource");
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .expect("every resource has a service.name");
        assert_eq!(rs.scope_spans.len(), 1);
        let scope = rs.scope_spans[0].scope.as_ref().expect("a scope");
        assert_eq!(scope.name, "faultline");
        for span in &rs.scope_spans[0].spans {
            traces.entry(span.trace_id.clone()).or_default().push(Seen {
                service: service.clone(),
                span: span.clone(),
            });
        }
    }
    traces
}

fn by_id(spans: &[Seen]) -> BTreeMap<Vec<u8>, &Seen> {
    spans.iter().map(|s| (s.span.span_id.clone(), s)).collect()
}

fn parent_of<'a>(ids: &BTreeMap<Vec<u8>, &'a Seen>, s: &Seen) -> Option<&'a Seen> {
    (!s.span.parent_span_id.is_empty()).then(|| ids[&s.span.parent_span_id])
}

#[test]
fn otlp_spans_parse_with_the_real_schema_and_every_parent_resolves_in_its_trace() {
    let (otlp, _) = export(STORMY, 3, "schema");
    let traces = parse_otlp(&otlp);
    assert!(traces.len() > 10, "only {} traces", traces.len());
    let mut all_ids = BTreeSet::new();
    for (trace, spans) in &traces {
        assert_eq!(trace.len(), 16, "a trace id is 16 bytes");
        assert!(trace.iter().any(|&b| b != 0), "a trace id is not all zero");
        let ids = by_id(spans);
        let roots: Vec<_> = spans
            .iter()
            .filter(|s| s.span.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1, "one root per trace: {roots:?}");
        assert!(
            roots[0].service.starts_with('c'),
            "the root is the client's operation: {roots:?}"
        );
        for s in spans {
            assert_eq!(s.span.span_id.len(), 8, "a span id is 8 bytes");
            assert!(
                all_ids.insert(s.span.span_id.clone()),
                "span ids are unique"
            );
            assert!(s.span.end_time_unix_nano >= s.start(), "{s:?}");
            if let Some(parent) = parent_of(&ids, s) {
                // A cause comes before its effect.
                assert!(parent.start() <= s.start(), "{parent:?} after {s:?}");
            } else {
                assert!(s.span.parent_span_id.is_empty());
            }
            assert!(
                (1..=3).contains(&s.span.kind),
                "kind is internal, server or client"
            );
        }
    }
}

#[test]
fn a_committed_put_on_five_nodes_has_every_step_with_parents_across_messages() {
    let (otlp, _) = export(CALM, 1, "steps");
    let traces = parse_otlp(&otlp);
    let mut puts = 0;
    for spans in traces.values() {
        let ids = by_id(spans);
        let root = spans
            .iter()
            .find(|s| s.span.parent_span_id.is_empty())
            .expect("a root");
        let ok = root.span.status.as_ref().is_some_and(|s| s.code == 1);
        if !(root.span.name.starts_with("put ") && ok) {
            continue;
        }
        puts += 1;
        let named = |name: &'static str| spans.iter().filter(move |s| s.span.name == name);
        let count = |name: &'static str| named(name).count();
        assert!(count("received") >= 1, "{spans:#?}");
        assert_eq!(count("appended"), 1, "{spans:#?}");
        assert!(
            count("replicated") >= 2,
            "a majority of 5 needs 2 followers"
        );
        assert_eq!(count("committed"), 1);
        assert!(count("applied") >= 3, "a majority applies it");
        assert!(count("answered") >= 1);
        assert!(root.text("outcome") == Some("ok"));

        let appended = named("appended").next().expect("appended");
        let leader = &appended.service;
        assert!(appended.int("index").is_some_and(|i| i > 0));
        assert!(appended.int("term").is_some_and(|t| t > 0));
        // The leader appended it while handling the client's request.
        let cause = parent_of(&ids, appended).expect("a parent");
        assert_eq!(cause.span.name, "received");
        assert_eq!(&cause.service, leader);
        let request = parent_of(&ids, cause).expect("the client's attempt");
        assert_eq!(request.span.name, "request");
        assert_eq!(
            parent_of(&ids, request).map(|r| &r.span.name),
            Some(&root.span.name)
        );
        // Each follower's append hangs off the leader's, across the message.
        for r in named("replicated") {
            assert_ne!(&r.service, leader);
            let parent = parent_of(&ids, r).expect("a parent");
            assert_eq!(&parent.service, leader, "{r:?} under {parent:?}");
            assert_eq!(parent.span.name, "appended");
            assert_eq!(r.int("index"), appended.int("index"));
            assert!(r.start() >= appended.start());
        }
        // The commit follows a follower's acknowledgement.
        let committed = named("committed").next().expect("committed");
        assert_eq!(&committed.service, leader);
        let ack = parent_of(&ids, committed).expect("a parent");
        assert_eq!(ack.span.name, "replicated");
        // Earlier attempts may have been turned away (no leader yet); one is written.
        let written = |a: &&Seen| a.text("response").is_some_and(|r| r.starts_with("Written"));
        let answered: Vec<_> = named("answered").filter(written).collect();
        assert_eq!(answered.len(), 1, "{spans:#?}");
        assert_eq!(&answered[0].service, leader);
        // In time: invoke, append, commit, answer, completion.
        assert!(root.start() <= appended.start());
        assert!(appended.start() <= committed.start());
        assert!(committed.start() <= answered[0].start());
        assert!(answered[0].start() <= root.span.end_time_unix_nano);
        // The appended span lasts until the commit (its next step at the leader).
        assert_eq!(appended.span.end_time_unix_nano, committed.start());
        let services: BTreeSet<&str> = named("applied").map(|a| a.service.as_str()).collect();
        assert!(services.len() >= 3, "applied on {services:?}");
    }
    assert!(puts >= 5, "only {puts} committed puts");
}

#[test]
fn a_redirect_and_the_retry_belong_to_one_trace() {
    let (otlp, _) = export(CALM, 1, "redirect");
    let traces = parse_otlp(&otlp);
    let mut redirected = 0;
    for spans in traces.values() {
        let ids = by_id(spans);
        let requests: Vec<_> = spans.iter().filter(|s| s.span.name == "request").collect();
        let redirect = spans.iter().find(|s| {
            s.span.name == "answered"
                && s.text("response")
                    .is_some_and(|r| r.starts_with("Redirect"))
        });
        let Some(redirect) = redirect else {
            continue;
        };
        redirected += 1;
        assert!(requests.len() >= 2, "a redirect is followed by a retry");
        let seqs: BTreeSet<i64> = requests
            .iter()
            .filter_map(|r| r.int("request.seq"))
            .collect();
        assert_eq!(
            seqs.len(),
            requests.len(),
            "each attempt is its own request"
        );
        let roots: BTreeSet<_> = requests
            .iter()
            .map(|r| r.span.parent_span_id.clone())
            .collect();
        assert_eq!(roots.len(), 1, "every attempt under the one operation");
        // The redirect is a `received` span at the node asked first.
        let received = parent_of(&ids, redirect).expect("a parent");
        assert_eq!(received.span.name, "received");
        assert_eq!(received.service, redirect.service);
        assert_eq!(received.span.end_time_unix_nano, redirect.start());
    }
    assert!(
        redirected >= 1,
        "no redirect in a run where 4 clients start at followers"
    );
}

#[test]
fn chrome_trace_events_follow_the_trace_event_format() {
    let (otlp, chrome) = export(STORMY, 3, "chrome");
    let spans: usize = parse_otlp(&otlp).values().map(Vec::len).sum();
    let text = std::fs::read_to_string(chrome).expect("the Chrome file");
    let json: Value = serde_json::from_str(&text).expect("Chrome trace JSON parses");
    let events = json["traceEvents"].as_array().expect("a traceEvents array");
    let mut complete = 0;
    let mut named_pids = BTreeSet::new();
    let mut used_pids = BTreeSet::new();
    let mut starts = BTreeMap::new();
    let mut finishes = BTreeMap::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string(), "name: {e}");
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "pid and tid: {e}");
        match ph {
            "M" => {
                let name = e["name"].as_str().expect("name");
                assert!(["process_name", "process_sort_index", "thread_name"].contains(&name));
                if name == "process_name" {
                    assert!(e["args"]["name"].is_string());
                    named_pids.insert(e["pid"].as_u64());
                }
            }
            "X" => {
                complete += 1;
                assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "ts: {e}");
                assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "dur: {e}");
                assert!(e["args"]["trace_id"]
                    .as_str()
                    .is_some_and(|t| t.len() == 32));
                used_pids.insert(e["pid"].as_u64());
            }
            "s" => {
                assert!(e["ts"].is_number());
                starts.insert(e["id"].as_u64().expect("a flow id"), e.clone());
            }
            "f" => {
                assert!(e["ts"].is_number());
                assert_eq!(e["bp"], "e", "a flow finish binds to its enclosing slice");
                finishes.insert(e["id"].as_u64().expect("a flow id"), e.clone());
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert_eq!(complete, spans, "one complete event per span");
    // Complete events on one thread nest (the format's rule for X and B/E events).
    let mut rows: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        let row = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        rows.entry(row).or_default().push((ts, ts + dur));
    }
    let slack = 1e-3; // a nanosecond, for microseconds printed as decimals
    for (row, mut slices) in rows {
        slices.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (start, end) in slices {
            while open.last().is_some_and(|&e| e <= start + slack) {
                open.pop();
            }
            if let Some(&enclosing) = open.last() {
                assert!(end <= enclosing + slack, "{row:?}: {start}..{end} overlaps");
            }
            open.push(end);
        }
    }
    assert_eq!(used_pids, named_pids, "every process is named");
    assert!(!starts.is_empty(), "parents across processes are drawn");
    assert_eq!(
        starts.keys().collect::<Vec<_>>(),
        finishes.keys().collect::<Vec<_>>(),
        "every flow start has its finish"
    );
    for (id, s) in &starts {
        let f = &finishes[id];
        assert_ne!(s["pid"], f["pid"], "flows cross processes");
        assert!(s["ts"].as_f64() <= f["ts"].as_f64());
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_recording_changes_nothing() {
    let (otlp_a, chrome_a) = export(STORMY, 5, "same-a");
    let (otlp_b, chrome_b) = export(STORMY, 5, "same-b");
    let read = |p: &Path| std::fs::read(p).expect("written");
    assert_eq!(read(&otlp_a), read(&otlp_b), "OTLP bytes differ");
    assert_eq!(read(&chrome_a), read(&chrome_b), "Chrome bytes differ");
    let (otlp_c, _) = export(STORMY, 6, "other-seed");
    assert_ne!(read(&otlp_a), read(&otlp_c), "another seed, other traces");

    let recorded = run(STORMY, 5, true);
    let plain = run(STORMY, 5, false);
    assert!(!recorded.spans.spans.is_empty());
    assert!(plain.spans.spans.is_empty(), "no spans unless recording");
    assert_eq!(recorded.trace_hash, plain.trace_hash);
    assert_eq!(recorded.trace_events, plain.trace_events);
    assert_eq!(recorded.metrics, plain.metrics);
}

#[test]
fn the_command_writes_both_files_and_refuses_a_path_it_cannot_write() {
    let dir = scratch("cli");
    let scenario = dir.join("calm.toml");
    std::fs::write(&scenario, CALM).expect("scenario written");
    let faultline = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("faultline runs")
    };
    let out = faultline(&["run", "calm.toml", "--seed", "2", "--traces", "t/run.json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let (otlp, chrome) = trace_paths(Path::new("t/run.json"), None);
    assert!(
        stdout.contains(&format!("traces: {}", otlp.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("traces: {}", chrome.display())),
        "{stdout}"
    );
    let first = parse_otlp(&dir.join(&otlp));
    assert!(!first.is_empty());

    // Replay writes the same traces.
    let out = faultline(&["replay", "calm.toml", "--seed", "2", "--traces", "t/replay"]);
    assert_eq!(out.status.code(), Some(0));
    let read = |p: &str| std::fs::read(dir.join(p)).expect("written");
    assert_eq!(read("t/run.otlp.json"), read("t/replay.otlp.json"));
    assert_eq!(read("t/run.chrome.json"), read("t/replay.chrome.json"));

    // A sweep writes one pair per seed.
    let out = faultline(&["run", "calm.toml", "--seeds", "3..5", "--traces", "t/sweep"]);
    assert_eq!(out.status.code(), Some(0));
    for seed in [3, 4] {
        assert!(dir.join(format!("t/sweep.seed-{seed}.otlp.json")).is_file());
        assert!(dir
            .join(format!("t/sweep.seed-{seed}.chrome.json"))
            .is_file());
    }

    let out = faultline(&["run", "calm.toml", "--seed", "2", "--traces", "calm.toml/x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("could not write traces"), "{stderr}");
}
