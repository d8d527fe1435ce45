//! Clients in faults: partitioned from nodes, paused, pinned to a node.

use std::sync::Arc;

use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use serde_json::Value;

/// A 3-node Raft cluster with 3 clients for 8 s, plus `faults` (TOML).
fn scenario(faults: &str) -> Scenario {
    let text = format!(
        "name = \"clients\"\ndescription = \"client faults\"\nduration_ms = 8000\n\
         [cluster]\nprotocol = \"raft\"\nnodes = 3\n[workload]\nclients = 3\n{faults}"
    );
    Scenario::parse("clients.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

struct Run {
    passed: bool,
    metrics: faultline::check::Metrics,
    history: Vec<Value>,
    trace: Vec<Value>,
}

fn run(s: &Scenario, seed: u64) -> Run {
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let schedule = s.schedule(seed, 3);
    let outcome = run_seed::<RaftKv>(s, &setup, &schedule, true);
    let parse = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    Run {
        passed: outcome.failure.is_none() && !outcome.unknown,
        metrics: outcome.metrics,
        history: parse(&outcome.history_lines),
        trace: parse(&outcome.trace_lines),
    }
}

fn ms(v: &Value) -> f64 {
    v["time_ns"].as_u64().unwrap() as f64 / 1e6
}

/// Completions (`ok`, `fail`, `info`) of client `c`'s operations.
fn completions(r: &Run, c: u64) -> impl Iterator<Item = &Value> {
    r.history
        .iter()
        .filter(move |e| e["process"] == c && e["type"] != "invoke")
}

#[test]
fn a_client_cut_from_every_node_completes_nothing_until_the_heal() {
    let s = scenario(
        "[[faults]]\nkind = \"client-partition\"\nat_ms = 2000\nheal_ms = 5000\n\
         clients = [0]\nnodes = [0, 1, 2]\n",
    );
    let r = run(&s, 1);
    assert!(r.passed);
    assert!(r.metrics["messages_dropped_client_partition"] > 0.0);
    assert_eq!(
        r.metrics["fault_client-partition_messages_dropped"],
        r.metrics["messages_dropped_client_partition"]
    );
    // A reply already on its way at 2000 ms may still arrive (1-10 ms latency).
    let ok_inside = completions(&r, 0)
        .filter(|e| e["type"] == "ok" && (2_020.0..5_000.0).contains(&ms(e)))
        .count();
    assert_eq!(
        ok_inside, 0,
        "client 0 completed an operation while cut off"
    );
    for c in [1, 2] {
        let ok = completions(&r, c)
            .filter(|e| e["type"] == "ok" && (2_020.0..5_000.0).contains(&ms(e)))
            .count();
        assert!(ok > 10, "client {c} kept going ({ok} ok)");
    }
    let ok_after = completions(&r, 0)
        .filter(|e| e["type"] == "ok" && ms(e) > 5_000.0)
        .count();
    assert!(ok_after > 10, "client 0 resumes after the heal");
}

/// Raft has no proxying: a client that reaches the followers but not the leader is
/// redirected to it and loses every request there, so the cut is exact per node.
#[test]
fn a_client_cut_from_one_node_hears_only_the_others() {
    let s = scenario(
        "[[faults]]\nkind = \"client-partition\"\nat_ms = 1000\nheal_ms = 7000\n\
         clients = [0]\nnodes = [0]\n",
    );
    let r = run(&s, 2);
    assert!(r.passed);
    let responses = |node: &str| {
        r.trace
            .iter()
            .filter(|e| e["actor"] == "c0" && e["event"] == "response")
            .filter(|e| (1_020.0..7_000.0).contains(&ms(e)))
            .filter(|e| e["detail"].as_str().unwrap().starts_with(node))
            .count()
    };
    assert_eq!(responses("from n0 "), 0, "no reply crosses the cut");
    assert!(responses("from n1 ") + responses("from n2 ") > 0);
    let heard_by_n0 = r
        .trace
        .iter()
        .filter(|e| e["actor"] == "n0" && e["event"] == "request")
        .filter(|e| (1_020.0..7_000.0).contains(&ms(e)))
        .filter(|e| e["detail"].as_str().unwrap().contains("client: 0,"))
        .count();
    assert_eq!(heard_by_n0, 0, "no request crosses the cut");
}

#[test]
fn a_paused_client_handles_nothing_and_its_operation_stays_pending() {
    let s = scenario(
        "[[faults]]\nkind = \"client-pause\"\nat_ms = 2000\nresume_ms = 5000\nclient = 0\n",
    );
    let r = run(&s, 3);
    assert!(r.passed);
    let during = r
        .history
        .iter()
        .filter(|e| e["process"] == 0 && (2_000.0..5_000.0).contains(&ms(e)))
        .count();
    assert_eq!(during, 0, "a paused client records nothing");
    // Its last invocation before the pause completes only after the resume.
    let last_invoke = r
        .history
        .iter()
        .rfind(|e| e["process"] == 0 && e["type"] == "invoke" && ms(e) < 2_000.0)
        .expect("client 0 invoked before the pause");
    let completion = completions(&r, 0)
        .find(|e| e["index"].as_u64() > last_invoke["index"].as_u64())
        .expect("its operation completes");
    assert!(
        ms(completion) >= 5_000.0,
        "the operation in flight stayed pending through the pause ({} ms)",
        ms(completion)
    );
    assert_eq!(r.metrics["client_pauses"], 1.0);
    assert_eq!(r.metrics["fault_client-pause_clients_paused"], 1.0);
    assert_eq!(r.metrics["fault_client-pause_paused_ms"], 3_000.0);
}

#[test]
fn a_pinned_client_sends_every_request_to_its_node() {
    let s = scenario(
        "[[faults]]\nkind = \"client-pin\"\nat_ms = 1000\nheal_ms = 6000\nclient = 1\nnode = 2\n",
    );
    let r = run(&s, 4);
    assert!(r.passed);
    let pinned: Vec<&str> = r
        .trace
        .iter()
        .filter(|e| e["actor"] == "c1" && e["event"] == "request")
        .filter(|e| (1_000.0..6_000.0).contains(&ms(e)))
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(pinned.len() > 10);
    assert!(pinned.iter().all(|d| d.starts_with("to n2 ")), "{pinned:?}");
    assert!(
        r.metrics["client_requests_pinned"] > 0.0,
        "the pin overrode some of the client's own choices"
    );
    assert_eq!(
        r.metrics["fault_client-pin_requests_pinned"],
        r.metrics["client_requests_pinned"]
    );
}

#[test]
fn a_client_fault_naming_a_client_the_workload_lacks_is_refused() {
    let s = scenario("[[faults]]\nkind = \"client-pause\"\nat_ms = 10\nclient = 3\n");
    let Err(e) = s.setup::<RaftKv>(&[]) else {
        panic!("client 3 of 3 accepted");
    };
    let e = e.to_string();
    assert!(e.contains("faults[0].client") && e.contains("0..3"), "{e}");
}

#[test]
fn random_client_faults_are_drawn_and_the_same_seed_replays_them() {
    let s = scenario(
        "[random]\nkinds = [\"client-partition\", \"client-pause\", \"client-pin\"]\n\
         interval_ms = { min = 200, max = 600 }\nduration_ms = { min = 100, max = 1000 }\n",
    );
    let schedule = s.schedule(5, 3);
    for kind in ["ClientPartition", "ClientPause", "ClientPin"] {
        assert!(
            schedule
                .faults
                .iter()
                .any(|f| format!("{:?}", f.fault).starts_with(kind)),
            "{kind} drawn"
        );
    }
    let a = run(&s, 5);
    let b = run(&s, 5);
    assert!(a.passed);
    assert_eq!(a.trace, b.trace);
}

/// Client faults end at the final heal: the liveness phase waits for every client, so
/// `permanent` is refused on them, naming the field.
#[test]
fn a_permanent_client_fault_is_refused() {
    let text = "name = \"c\"\ndescription = \"c\"\nduration_ms = 8000\n[cluster]\n\
                protocol = \"raft\"\nnodes = 3\n[[faults]]\nkind = \"client-pause\"\n\
                at_ms = 10\npermanent = true\nclient = 0\n";
    let e = Scenario::parse("c.toml", text).unwrap_err().to_string();
    assert!(
        e.contains("c.toml:7:1") && e.contains("unknown field `permanent`"),
        "{e}"
    );
}
