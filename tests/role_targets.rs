//! Faults aimed at roles (`target = "leader"`, `majority`, ...): they strike the nodes
//! holding the role when they start, the ids they resolved to are recorded in the
//! schedule a run writes, and that schedule replays the same run.

use std::sync::Arc;

use faultline::gossip::Swim;
use faultline::raft::RaftKv;
use faultline::run::{run, run_seed, RunRequest};
use faultline::scenario::{Fault, FaultKind, Scenario, Schedule, Target};

fn raft_scenario(faults: &str, random: &str) -> Scenario {
    let text = format!(
        r#"
name = "targets"
description = "role-targeted faults on Raft"
duration_ms = 8000
[cluster]
protocol = "raft"
nodes = 5
[workload]
clients = 2
keys = 3
{faults}
{random}
[liveness]
quiesce_ms = 15000
"#
    );
    Scenario::parse("targets.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// The node that leads at `at_ns`, read from the Raft notes of a recorded trace
/// ("nX leads term T", "steps down", crashes), independently of `Process::role`.
fn leader_at(trace_lines: &[String], at_ns: u64) -> Vec<usize> {
    let mut leading: Vec<usize> = Vec::new();
    for line in trace_lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["time_ns"].as_u64().unwrap() >= at_ns {
            break;
        }
        let actor = v["actor"].as_str().unwrap_or("");
        let node = actor
            .strip_prefix('n')
            .and_then(|n| n.parse::<usize>().ok());
        let detail = v["detail"].as_str().unwrap_or("");
        let event = v["event"].as_str().unwrap_or("");
        match (node, event) {
            (Some(n), "crash" | "abort") => leading.retain(|&l| l != n),
            (Some(n), "note") if detail.contains(" leads term ") => leading.push(n),
            (Some(n), "note")
                if detail.contains(" steps down in term ")
                    || detail.contains(" lost its quorum in term ") =>
            {
                leading.retain(|&l| l != n)
            }
            _ => {}
        }
    }
    leading.sort_unstable();
    leading.dedup();
    leading
}

#[test]
fn a_leader_target_strikes_the_node_that_leads_when_it_starts() {
    let s = raft_scenario(
        r#"[[faults]]
kind = "isolate"
at_ms = 3000
heal_ms = 6000
target = "leader""#,
        "",
    );
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let mut struck = Vec::new();
    for seed in 0..6 {
        let schedule = s.schedule_for(seed, &setup);
        let out = run_seed::<RaftKv>(&s, &setup, &schedule, true);
        assert!(out.failure.is_none(), "seed {seed}: {:?}", out.failure);
        let expected = leader_at(&out.trace_lines, 3_000_000_000);
        assert_eq!(out.resolved, vec![(0, expected.clone())], "seed {seed}");
        assert_eq!(expected.len(), 1, "seed {seed}: one leader at 3 s");
        // Cut off, the old leader is replaced: a new one leads within the fault.
        let later = leader_at(&out.trace_lines, 5_900_000_000);
        assert!(
            later.iter().any(|l| !expected.contains(l)),
            "seed {seed}: a new leader after isolating {expected:?}, got {later:?}"
        );
        struck.extend(expected);
    }
    struck.sort_unstable();
    struck.dedup();
    assert!(struck.len() > 1, "leaders differ across seeds: {struck:?}");
}

#[test]
fn a_majority_crash_takes_down_three_of_five_and_followers_exclude_the_leader() {
    let s = raft_scenario(
        r#"[[faults]]
kind = "crash"
at_ms = 3000
restart_ms = 5000
target = "majority"
[[faults]]
kind = "partition"
at_ms = 6000
heal_ms = 7000
target = "followers""#,
        "",
    );
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    for seed in 0..4 {
        let out = run_seed::<RaftKv>(&s, &setup, &s.schedule_for(seed, &setup), true);
        assert!(out.failure.is_none(), "seed {seed}: {:?}", out.failure);
        assert_eq!(out.metrics["fault_crash_nodes_downed"], 3.0, "seed {seed}");
        let [(0, majority), (1, followers)] = out.resolved.as_slice() else {
            panic!("seed {seed}: {:?}", out.resolved);
        };
        assert_eq!(majority.len(), 3);
        let leaders = leader_at(&out.trace_lines, 6_000_000_000);
        let expected: Vec<usize> = (0..5).filter(|n| !leaders.contains(n)).collect();
        assert_eq!(*followers, expected, "seed {seed}");
    }
}

#[test]
fn the_recorded_schedule_names_the_ids_and_replays_the_same_run() {
    let s = raft_scenario(
        "",
        r#"[random]
kinds = ["partition", "one-way", "isolate", "crash", "pause", "clock-freeze", "disk-stall", "loss", "slow"]
interval_ms = { min = 300, max = 900 }
duration_ms = { min = 300, max = 1500 }
max_down = 2
target_rate = 1.0"#,
    );
    let dir = std::env::temp_dir().join(format!("faultline-targets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let request = RunRequest {
        seeds: vec![3],
        keep: true,
        artifacts: Some(dir.clone()),
        ..RunRequest::default()
    };
    let summary = run::<RaftKv>(&s, &request).unwrap();
    let hash = summary.runs[0].trace_hash;
    let path = dir.join("targets/seed-3/schedule.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let schedule = Schedule::load(&path, &s).unwrap_or_else(|e| panic!("{e}"));
    let targeted: Vec<_> = schedule
        .faults
        .iter()
        .filter(|f| f.target.is_some())
        .collect();
    assert!(targeted.len() >= 5, "{text}");
    assert!(
        targeted.iter().all(|f| f.resolved.is_some()),
        "every targeted fault that started records its ids:\n{text}"
    );
    // Written as the target and its ids, without placeholder node fields.
    assert!(
        text.contains("target = \"") && text.contains("resolved = ["),
        "{text}"
    );
    assert!(!text.contains("node = 0\ntarget"), "{text}");
    // The round trip keeps every field.
    let again: Schedule = toml::from_str(&schedule.to_toml()).unwrap();
    assert_eq!(again, schedule);

    let replay = RunRequest {
        seeds: vec![3],
        schedule: Some(schedule),
        ..RunRequest::default()
    };
    let replayed = run::<RaftKv>(&s, &replay).unwrap();
    assert_eq!(
        replayed.runs[0].trace_hash, hash,
        "a replay is the same run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_generator_draws_targets_only_when_asked() {
    let random = |rate: &str| {
        format!(
            r#"[random]
kinds = ["partition", "crash", "bridge"]
interval_ms = {{ min = 300, max = 900 }}
max_down = 1
{rate}"#
        )
    };
    let plain = raft_scenario("", &random(""));
    let aimed = raft_scenario("", &random("target_rate = 0.5"));
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let p = Schedule::expand(&plain, seed, 2);
        assert!(p.faults.iter().all(|f| f.target.is_none()));
        let a = Schedule::expand(&aimed, seed, 2);
        for f in &a.faults {
            if let Some(t) = f.target {
                assert_ne!(f.kind(), FaultKind::Bridge, "a bridge has no target");
                if f.kind() == FaultKind::Crash {
                    assert!(
                        matches!(t, Target::Leader | Target::Followers | Target::One),
                        "max_down = 1 allows one node: {t:?}"
                    );
                }
                seen.insert(t);
            }
        }
    }
    assert!(seen.len() >= 4, "{seen:?}");
}

#[test]
fn a_protocol_without_roles_has_no_leader_to_strike() {
    let text = r#"
name = "gossip-targets"
description = "a leader target on gossip"
duration_ms = 6000
[cluster]
protocol = "swim"
nodes = 5
[[faults]]
kind = "crash"
at_ms = 2000
restart_ms = 2500
target = "leader"
[[faults]]
kind = "pause"
at_ms = 3000
resume_ms = 4000
target = "one"
"#;
    let s = Scenario::parse("g.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(s.setup::<Swim>(&[]).unwrap());
    let out = run_seed::<Swim>(&s, &setup, &s.schedule_for(1, &setup), false);
    assert_eq!(out.resolved.len(), 2, "{:?}", out.resolved);
    assert_eq!(out.resolved[0], (0, vec![]), "no gossip member leads");
    assert_eq!(out.resolved[1].1.len(), 1);
    assert_eq!(out.metrics["fault_crash_nodes_downed"], 0.0);
    assert_eq!(out.metrics["fault_pause_nodes_paused"], 1.0);
}

#[test]
fn bad_targets_are_refused_naming_the_field() {
    let refused = |fault: &str| {
        let text = format!(
            "name = \"t\"\ndescription = \"d\"\nduration_ms = 5000\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n[[faults]]\n{fault}\n"
        );
        Scenario::parse("bad.toml", &text)
            .expect_err(fault)
            .to_string()
    };
    let e = refused("kind = \"bridge\"\nat_ms = 1000\ntarget = \"leader\"");
    assert!(
        e.contains("target: a `bridge` fault cannot") && e.contains("bad.toml:7"),
        "{e}"
    );
    let e = refused("kind = \"crash\"\nat_ms = 1000\nnode = 2\ntarget = \"leader\"");
    assert!(e.contains("remove `node`") && e.contains("bad.toml"), "{e}");
    let e = refused("kind = \"crash\"\nat_ms = 1000\ntarget = \"primary\"");
    assert!(e.contains("primary") && e.contains("leader"), "{e}");
    let e = refused("kind = \"crash\"\nat_ms = 1000\ntarget = \"minority\"\nresolved = [0, 1, 2]");
    assert!(
        e.contains("faults[0].resolved") && e.contains("2 of 5"),
        "{e}"
    );
    let e = refused("kind = \"crash\"\nat_ms = 1000\ntarget = \"one\"\nresolved = [7]");
    assert!(
        e.contains("faults[0].resolved") && e.contains("node 7"),
        "{e}"
    );
    let e = refused("kind = \"crash\"\nat_ms = 1000\nnode = 1\nresolved = [1]");
    assert!(e.contains("faults[0].resolved"), "{e}");
    let e = refused(
        "kind = \"pause\"\nat_ms = 1000\ntarget = \"leader\"\n[[faults]]\nkind = \"crash\"\nat_ms = 1500\nnode = 2",
    );
    assert!(
        e.contains("faults[0].at_ms") && e.contains("faults[1] overlaps"),
        "{e}"
    );
}

#[test]
fn concrete_faults_follow_the_shape_of_their_kind() {
    let spec = |toml: &str| -> faultline::scenario::FaultSpec {
        toml::from_str(toml).unwrap_or_else(|e| panic!("{e}"))
    };
    let p = spec("kind = \"partition\"\nat_ms = 1\ntarget = \"minority\"");
    assert!(matches!(
        p.concrete(&[1, 3], 5).as_slice(),
        [Fault::Partition { groups, .. }] if *groups == vec![vec![1, 3]]
    ));
    assert!(
        p.concrete(&[0, 1, 2, 3, 4], 5).is_empty(),
        "nothing to cut off"
    );
    let o = spec("kind = \"one-way\"\nat_ms = 1\ntarget = \"leader\"");
    assert!(matches!(
        o.concrete(&[2], 4).as_slice(),
        [Fault::OneWay { from, to, .. }] if *from == vec![2] && *to == vec![0, 1, 3]
    ));
    let i = spec("kind = \"isolate\"\nat_ms = 1\ntarget = \"majority\"");
    assert!(matches!(
        i.concrete(&[0, 2, 4], 5).as_slice(),
        [Fault::Partition { groups, .. }] if *groups == vec![vec![0], vec![2], vec![4]]
    ));
    let c = spec("kind = \"crash\"\nat_ms = 1\ntarget = \"all\"");
    let nodes: Vec<_> = c
        .concrete(&[0, 1, 2], 3)
        .iter()
        .filter_map(|f| f.downed_node())
        .collect();
    assert_eq!(nodes, vec![0, 1, 2]);
    let l = spec("kind = \"loss\"\nat_ms = 1\nrate = 0.5\ntarget = \"leader\"");
    assert!(
        l.concrete(&[], 5).is_empty(),
        "no leader: no loss, not loss everywhere"
    );
}
