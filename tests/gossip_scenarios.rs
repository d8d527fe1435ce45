//! Every shipped gossip scenario passes a sweep of seeds, and shows what its lesson
//! says it shows. `FAULTLINE_SEEDS=0..1000` widens the sweep.

use faultline::gossip::Swim;
use faultline::run::Summary;
use faultline::testing::check_seeds;

const SEEDS: std::ops::Range<u64> = 0..20;

fn mean(summary: &Summary, metric: &str) -> f64 {
    summary
        .metrics
        .get(metric)
        .unwrap_or_else(|| panic!("no metric {metric} in {:?}", summary.metrics.keys()))
        .mean
}

#[test]
fn swim_paper() {
    let s = check_seeds::<Swim>("gossip-swim-paper", SEEDS);
    // One crash per run, detected by someone after a few random picks (mean 1.58).
    assert_eq!(mean(&s, "crashes"), 1.0);
    let periods = mean(&s, "first_detection_periods_mean");
    assert!((1.0..2.5).contains(&periods), "{periods}");
    // A ping and an ack per member per period, plus gossip of the crash.
    let load = mean(&s, "messages_per_member_per_period");
    assert!((2.0..5.0).contains(&load), "{load}");
    assert_eq!(mean(&s, "false_positive_dead"), 0.0);
}

#[test]
fn crash_detect() {
    let s = check_seeds::<Swim>("gossip-crash-detect", SEEDS);
    assert_eq!(mean(&s, "crashes"), 3.0);
    let first = mean(&s, "first_detection_ms_mean");
    let dead = mean(&s, "first_dead_ms_mean");
    let full = mean(&s, "full_dissemination_ms_mean");
    assert!(first < dead && dead <= full, "{first} {dead} {full}");
    assert_eq!(mean(&s, "false_positive_dead"), 0.0);
}

#[test]
fn join() {
    let s = check_seeds::<Swim>("gossip-join", SEEDS);
    assert_eq!(mean(&s, "false_positive_dead"), 0.0);
    assert_eq!(mean(&s, "crashes"), 1.0);
}

#[test]
fn lossy() {
    let s = check_seeds::<Swim>("gossip-lossy", SEEDS);
    // Loss makes live members suspected, and refutation keeps them alive.
    assert!(mean(&s, "false_positive_suspect") > 1.0);
    assert!(mean(&s, "false_positive_dead") < 0.5);
}

#[test]
fn partition_heal() {
    let s = check_seeds::<Swim>("gossip-partition-heal", SEEDS);
    // Each side declares the other dead, and the group merges after the heal.
    assert!(mean(&s, "false_positive_dead") > 12.0);
    assert!(s.metrics.contains_key("convergence_after_heal_ms"));
}

#[test]
fn slow_members_with_and_without_lifeguard() {
    let lifeguard = check_seeds::<Swim>("gossip-slow-members", SEEDS);
    let swim = check_seeds::<Swim>("gossip-slow-members-swim", SEEDS);
    // The slow fault ran: two members' handlers were delayed by seconds.
    assert_eq!(mean(&swim, "fault_slow_count"), 2.0);
    assert!(
        mean(&swim, "fault_slow_handler_delay_ms") / mean(&swim, "fault_slow_handlers_delayed")
            > 8000.0
    );
    // Lifeguard's claim: far fewer healthy members declared dead because of slow ones.
    let lg = mean(&lifeguard, "false_positive_dead_about_healthy");
    let sw = mean(&swim, "false_positive_dead_about_healthy");
    assert!(sw > 10.0 * lg + 1.0, "SWIM {sw} vs Lifeguard {lg}");
    // And fewer suspicions of live members: slow members back off their probes.
    assert!(mean(&swim, "false_positive_suspect") > mean(&lifeguard, "false_positive_suspect"));
}

#[test]
fn flaky_nic() {
    let s = check_seeds::<Swim>("gossip-flaky-nic", SEEDS);
    // One member's NIC loses 60% of its packets: it is suspected, and suspects
    // others, again and again; refutations mostly win.
    assert!(mean(&s, "fault_loss_messages_dropped") > 100.0);
    assert!(mean(&s, "false_positive_suspect") > 5.0);
    assert!(mean(&s, "false_positive_dead") < mean(&s, "false_positive_suspect"));
}

#[test]
fn probes_blocked_while_push_pull_works() {
    let s = check_seeds::<Swim>("gossip-probes-blocked", SEEDS);
    // Probes and gossip to and from member 5 are lost, push-pull is not: it is
    // declared dead, refutes over push-pull, and is declared dead again.
    assert!(mean(&s, "fault_loss_messages_dropped") > 200.0);
    assert!(mean(&s, "false_positive_dead") > 10.0);
    assert!(s.metrics.contains_key("convergence_after_heal_ms"));
}

#[test]
fn false_suspicion() {
    let s = check_seeds::<Swim>("gossip-false-suspicion", SEEDS);
    assert!(mean(&s, "false_positive_suspect") > 1.0);
}

/// The bugs gossip-false-suspicion names in its lesson are caught by the checks it says.
#[test]
fn false_suspicion_catches_the_injectable_bugs() {
    use faultline::run::{run, RunRequest};
    use faultline::scenario::Scenario;
    let scenario = Scenario::find("gossip-false-suspicion").unwrap();
    for (bug, check) in [
        ("swim-refute-same-incarnation", "liveness"),
        ("swim-alive-overrides-suspect", "swim-precedence"),
    ] {
        let request = RunRequest {
            seeds: (0..10).collect(),
            bugs: vec![bug.to_string()],
            ..RunRequest::default()
        };
        let summary = run::<Swim>(&scenario, &request).unwrap();
        assert!(summary.failed > 0, "{bug} not caught in 10 seeds");
        let caught = summary
            .runs
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .any(|f| f.check == check);
        assert!(caught, "{bug} not caught by {check}");
    }
}
