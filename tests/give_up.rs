//! `[workload] give_up = true`: a KV client abandons an operation `op_timeout_ms` after
//! it started and records it `info` when it may have taken effect (Jepsen's clients);
//! without it, the client retries until an attempt is answered.

use std::sync::Arc;

use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::Scenario;

fn infos(give_up: bool) -> (usize, Option<String>) {
    let text = format!(
        r#"
name = "give-up"
description = "clients that give up while the leader is cut off"
duration_ms = 6000
[cluster]
protocol = "raft"
nodes = 3
[workload]
clients = 3
keys = 2
give_up = {give_up}
request_timeout_ms = 100
op_timeout_ms = 100
[[faults]]
kind = "isolate"
at_ms = 2000
heal_ms = 4000
target = "leader"
[liveness]
quiesce_ms = 10000
"#
    );
    let s = Scenario::parse("give-up.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let mut total = 0;
    let mut failure = None;
    for seed in 0..3 {
        let out = run_seed::<RaftKv>(&s, &setup, &s.schedule_for(seed, &setup), true);
        failure = failure.or(out.failure.map(|f| f.message));
        total += out
            .history_lines
            .iter()
            .filter(|l| l.contains("\"info\""))
            .count();
    }
    (total, failure)
}

#[test]
fn clients_that_give_up_record_info_and_stay_linearizable() {
    let (given_up, failure) = infos(true);
    assert_eq!(failure, None);
    assert!(
        given_up > 0,
        "operations abandoned while the leader was cut off"
    );
    let (retried, failure) = infos(false);
    assert_eq!(failure, None);
    assert!(
        retried < given_up,
        "{retried} info without give_up, {given_up} with it"
    );
}
