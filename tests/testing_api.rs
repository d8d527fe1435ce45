//! `faultline::testing`: scenarios over seed ranges from `cargo test`.

use faultline::broadcast::Broadcast;
use faultline::scenario::Scenario;
use faultline::testing::{check_scenario, check_seeds, parse_seed_range};

#[test]
fn shipped_scenarios_pass_from_a_test() {
    let summary = check_seeds::<Broadcast>("broadcast-partition", 0..5);
    assert_eq!(summary.passed, 5);
}

#[test]
fn a_failing_seed_panics_with_its_replay_commands() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/broadcast-crash.toml"
    ))
    .unwrap();
    let buggy = text.replacen(
        "duration_ms = 10000",
        "duration_ms = 10000\nbugs = [\"ack-before-sync\"]",
        1,
    );
    let scenario = Scenario::parse("buggy-crash.toml", &buggy).unwrap();
    let panic =
        std::panic::catch_unwind(|| check_scenario::<Broadcast>(&scenario, 0..10)).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    let seed: u64 = message
        .split("failed at seed ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        message.contains(&format!(
            "FAULTLINE_SEED={seed} cargo test a_failing_seed_panics_with_its_replay_commands"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "replay buggy-crash.toml --bug ack-before-sync --seed {seed}"
        )),
        "{message}"
    );
    assert!(message.contains("broadcast-durability"), "{message}");
}

#[test]
fn seed_ranges_parse_or_explain() {
    assert_eq!(parse_seed_range("3..7"), Ok(3..7));
    assert_eq!(parse_seed_range("42"), Ok(42..43));
    assert!(parse_seed_range("7..3")
        .unwrap_err()
        .contains("empty range"));
    assert!(parse_seed_range("x..3")
        .unwrap_err()
        .contains("`x` is not a seed"));
}
