//! The liveness phase: Raft must make progress after the heal (a fresh commit, every
//! live replica caught up), permanent faults outlast the heal and set what the phase
//! expects, paused time does not count against the progress check, and `[expect]`
//! bounds metrics per seed and `sometimes` marks per sweep.

use faultline::raft::RaftKv;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;

fn scenario_text(name: &str) -> String {
    let path = format!("{}/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("a shipped scenario")
}

fn sweep(text: &str, seeds: std::ops::Range<u64>, bugs: &[&str]) -> Summary {
    let scenario = Scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
        ..RunRequest::default()
    };
    run::<RaftKv>(&scenario, &request).unwrap_or_else(|e| panic!("{e}"))
}

fn first_failure(summary: &Summary) -> (String, String) {
    let run = summary
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .expect("a failing seed");
    let f = run.failure.as_ref().expect("a failure");
    (f.check.clone(), f.message.clone())
}

/// raft-leader-crash without its own `[expect]` tables.
fn leader_crash() -> String {
    let text = scenario_text("raft-leader-crash");
    let cut = text.find("\n[expect").unwrap_or(text.len());
    let cut = text[..cut]
        .rfind("\n\n#")
        .filter(|_| cut < text.len())
        .unwrap_or(cut);
    text[..cut].to_string()
}

/// Inserts `table` before the `[random]` table (or at the end).
fn with_table(text: &str, table: &str) -> String {
    match text.find("\n[random]") {
        Some(at) => format!("{}\n{table}\n{}", &text[..at], &text[at..]),
        None => format!("{text}\n{table}\n"),
    }
}

#[test]
fn a_follower_the_leader_stops_feeding_is_named_with_how_far_behind() {
    let text = scenario_text("raft-follower-catch-up");
    let clean = sweep(&text, 0..3, &[]);
    assert_eq!(clean.exit_code(), 0, "{:?}", clean.failing_seeds);
    assert!(clean
        .runs
        .iter()
        .all(|r| r.metrics["fresh_commit_after_heal_ms"] >= 0.0));
    let buggy = sweep(&text, 0..1, &["no-catch-up"]);
    let (check, message) = first_failure(&buggy);
    assert_eq!(check, "liveness");
    assert!(
        message.contains("has applied through index") && message.contains("entries behind"),
        "{message}"
    );
}

#[test]
fn a_permanent_crash_is_not_restarted_and_the_survivors_must_progress() {
    let summary = sweep(&scenario_text("raft-permanent-crash"), 0..5, &[]);
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.failing_seeds);
    for r in &summary.runs {
        assert_eq!(r.metrics["crashes"], 1.0);
        assert_eq!(r.metrics["restarts"], 0.0, "seed {}: restarted", r.seed);
        assert!(r.metrics.contains_key("fresh_commit_after_heal_ms"));
    }
}

#[test]
fn expecting_unavailability_fails_when_something_commits_after_the_heal() {
    // A majority survives, so the write sent after the heal commits.
    let text = with_table(
        &scenario_text("raft-permanent-crash"),
        "[liveness]\nexpect = \"unavailable\"\n",
    );
    let (check, message) = first_failure(&sweep(&text, 0..1, &[]));
    assert_eq!(check, "liveness");
    assert!(
        message.contains("stay unavailable") && message.contains("committed after the heal"),
        "{message}"
    );
}

#[test]
fn a_lost_majority_is_judged_safe_and_unavailable() {
    let text = scenario_text("raft-majority-down");
    let summary = sweep(&text, 0..5, &[]);
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.failing_seeds);
    assert!(summary.runs.iter().all(|r| r.metrics["restarts"] == 0.0));
    assert!(summary.runs.iter().all(|r| r.metrics["ops_info"] > 0.0));
    // Asked for progress, the same runs fail: no leader can be elected.
    let progress = with_table(&text, "[liveness]\nexpect = \"progress\"\n");
    let (check, message) = first_failure(&sweep(&progress, 0..1, &[]));
    assert_eq!(check, "liveness");
    assert!(message.contains("no leader"), "{message}");
}

#[test]
fn paused_leaders_do_not_fail_the_progress_check() {
    // Seed 0 failed `raft-progress` when paused time counted (11 of the first 30 did).
    let summary = sweep(&scenario_text("raft-paused-leader"), 0..10, &[]);
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.failing_seeds);
    assert!(summary.runs.iter().all(|r| r.metrics["pauses"] > 0.0));
}

#[test]
fn raft_leader_crash_bounds_its_leaderless_time_and_marks_leader_changes() {
    let text = scenario_text("raft-leader-crash");
    let scenario = Scenario::parse("s.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(scenario
        .expect
        .metrics
        .contains_key("time_without_leader_ms"));
    assert_eq!(scenario.expect.sometimes.get("leader-changed"), Some(&0.9));
    assert!(!leader_crash().contains("[expect"));
}

#[test]
fn a_metric_outside_its_bound_fails_the_seed_naming_metric_bound_and_value() {
    let text = with_table(&leader_crash(), "[expect.metrics]\ncrashes = { max = 0 }\n");
    let summary = sweep(&text, 0..1, &[]);
    let run = &summary.runs[0];
    let f = run.failure.as_ref().expect("fails");
    assert_eq!(f.kind.name(), "expectation");
    assert_eq!(f.check, "crashes");
    assert!(
        f.message.contains("metric `crashes` =") && f.message.contains("max = 0"),
        "{}",
        f.message
    );
    let ok = with_table(
        &leader_crash(),
        "[expect.metrics]\ncrashes = { min = 1 }\ntime_without_leader_ms = { max = 20000 }\n",
    );
    assert_eq!(sweep(&ok, 0..2, &[]).exit_code(), 0);
}

#[test]
fn an_unknown_metric_fails_naming_the_field_and_the_known_ones() {
    let text = with_table(
        &leader_crash(),
        "[expect.metrics]\nno_such_metric = { max = 1 }\n",
    );
    let (check, message) = first_failure(&sweep(&text, 0..1, &[]));
    assert_eq!(check, "no_such_metric");
    assert!(
        message.contains("expect.metrics.no_such_metric") && message.contains("committed_ops"),
        "{message}"
    );
}

#[test]
fn bad_metric_bounds_are_refused_with_the_field() {
    let text = with_table(
        &leader_crash(),
        "[expect.metrics]\ncrashes = { min = 3, max = 1 }\n",
    );
    let e = Scenario::parse("s.toml", &text).unwrap_err().to_string();
    assert!(
        e.contains("expect.metrics.crashes") && e.contains("above max"),
        "{e}"
    );
    let text = with_table(
        &leader_crash(),
        "[expect]\nsometimes = { leader-changed = 1.5 }\n",
    );
    let e = Scenario::parse("s.toml", &text).unwrap_err().to_string();
    assert!(e.contains("expect.sometimes.leader-changed"), "{e}");
}

#[test]
fn a_sometimes_mark_reached_too_rarely_fails_the_sweep() {
    let base = leader_crash();
    let met = with_table(&base, "[expect]\nsometimes = { leader-changed = 0.5 }\n");
    let summary = sweep(&met, 0..4, &[]);
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.sweep_failures);
    assert!(summary.seeds_with("sometimes.leader-changed") >= 2);
    // A mark these runs never reach (no lease reads here): the sweep fails though
    // every seed passed.
    let unmet = with_table(
        &base,
        "[expect]\nsometimes = { lease-read-refused = 0.1 }\n",
    );
    let summary = sweep(&unmet, 0..2, &[]);
    assert_eq!(summary.failed, 0);
    assert_eq!(summary.exit_code(), 1);
    let message = summary.sweep_failures.join("; ");
    assert!(
        message.contains("lease-read-refused")
            && message.contains("0 of 2")
            && message.contains("0.1"),
        "{message}"
    );
    assert_eq!(summary.sometimes["lease-read-refused"], 0.0);
}

#[test]
fn a_sometimes_name_the_protocol_never_marks_is_refused() {
    let text = with_table(
        &leader_crash(),
        "[expect]\nsometimes = { never-marked = 0.1 }\n",
    );
    let scenario = Scenario::parse("s.toml", &text).unwrap();
    let Err(e) = scenario.setup::<faultline::raft::RaftKv>(&[]) else {
        panic!("an unknown mark accepted");
    };
    let e = e.to_string();
    assert!(
        e.contains("expect.sometimes.never-marked") && e.contains("leader-changed"),
        "{e}"
    );
}

#[test]
fn a_permanent_fault_with_an_end_is_refused() {
    let text = scenario_text("raft-permanent-crash").replace(
        "node = 0\npermanent = true",
        "node = 0\nrestart_ms = 9000\npermanent = true",
    );
    let e = Scenario::parse("s.toml", &text).unwrap_err().to_string();
    assert!(
        e.contains("faults[1].restart_ms") && e.contains("permanent"),
        "{e}"
    );
}

#[test]
fn lease_reads_without_pre_vote_are_refused_naming_the_field() {
    let text = scenario_text("raft-lease-read");
    let text = match text.find("[cluster.config]\n") {
        Some(at) => {
            let at = at + "[cluster.config]\n".len();
            format!("{}pre_vote = false\n{}", &text[..at], &text[at..])
        }
        None => panic!("raft-lease-read sets [cluster.config]"),
    };
    let scenario = Scenario::parse("s.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let e = match scenario.setup::<RaftKv>(&[]) {
        Ok(_) => panic!("lease reads without pre_vote were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("read_mode") && e.contains("pre_vote"), "{e}");
}

#[test]
fn invariants_judge_the_state_a_node_recovers_before_it_handles_anything() {
    // raft-disk-wipe brings node 0 back with an empty disk at 2500 ms: the restart's
    // own step (recovery, before any message or timer) is checked, so the failure is
    // reported at that instant (the driver wakes within nanoseconds of it), not at the
    // node's next step, which no message (1 ms or more away) or sync (0.5 ms) brings
    // sooner than 0.1 ms later.
    let summary = sweep(&scenario_text("raft-disk-wipe"), 0..3, &[]);
    for r in &summary.runs {
        let f = r.failure.as_ref().expect("the lesson shows");
        assert_eq!(f.check, "recovery-keeps-durable");
        assert!(
            (2_500_000_000..2_500_100_000).contains(&f.time_ns),
            "seed {} at {} ns: {}",
            r.seed,
            f.time_ns,
            f.message
        );
    }
}

#[test]
fn the_unreliable_network_settles_and_keeps_its_leader_with_and_without_prevote() {
    for name in ["raft-unreliable-network", "raft-unreliable-network-plain"] {
        let summary = sweep(&scenario_text(name), 0..6, &[]);
        assert_eq!(
            summary.exit_code(),
            0,
            "{name}: {:?}",
            summary.failing_seeds
        );
        for run in &summary.runs {
            let m = &run.metrics;
            assert!(m["leader_after_heal_ms"] <= 10_000.0, "{name}: {m:?}");
            // The phase ran on for its `stable_ms` after settling.
            assert!(run.sim_ms >= 60_000.0 + m["settle_ms"] + 10_000.0, "{name}");
        }
    }
}

#[test]
fn a_leader_that_loses_office_within_stable_ms_fails_the_seed() {
    // The same network with the paper's 150-300 ms election timeouts: heartbeats held
    // back for seconds make CheckQuorum depose leaders that had settled.
    let text = scenario_text("raft-unreliable-network");
    let start = text.find("[cluster.config]").expect("a config table");
    let end = start + text[start..].find("\n\n").expect("a blank line after it");
    let text = format!("{}{}", &text[..start], &text[end + 2..]);
    let summary = sweep(&text, 10..14, &[]);
    let (check, message) = first_failure(&summary);
    assert_eq!(check, "liveness");
    assert!(
        message.contains("but not 10000 ms later") && message.contains("lost its office"),
        "{message}"
    );
}

#[test]
fn a_leader_bound_for_a_protocol_without_a_leader_is_refused() {
    let text =
        scenario_text("gossip-lossy").replace("\n[liveness]\n", "\n[liveness]\nleader_ms = 5000\n");
    let scenario = Scenario::parse("s.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let Err(e) = scenario.setup::<faultline::gossip::Swim>(&[]) else {
        panic!("a leader bound accepted for gossip");
    };
    let e = e.to_string();
    assert!(
        e.contains("liveness.leader_ms") && e.contains("no leader"),
        "{e}"
    );
}
