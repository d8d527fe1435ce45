//! Bad scenario files get clear errors naming the file and a line and column or a
//! field; they never panic or hang.

use faultline::broadcast::Broadcast;
use faultline::scenario::{Location, Scenario};
use proptest::prelude::*;

const GOOD: &str = r#"
name = "ok"
description = "a valid scenario"
duration_ms = 1000

[cluster]
protocol = "broadcast"
nodes = 3

[[faults]]
kind = "crash"
node = 1
at_ms = 100
restart_ms = 500

[random]
kinds = ["partition", "crash", "pause"]
interval_ms = { min = 50, max = 200 }
duration_ms = { min = 50, max = 300 }
max_down = 1
"#;

fn error(text: &str) -> String {
    let e = Scenario::parse("s.toml", text)
        .and_then(|s| s.setup::<Broadcast>(&[]).map(|_| ()))
        .unwrap_err();
    e.to_string()
}

fn with(old: &str, new: &str) -> String {
    assert!(GOOD.contains(old), "{old} not in the base scenario");
    GOOD.replacen(old, new, 1)
}

#[test]
fn the_base_scenario_is_valid() {
    let s = Scenario::parse("s.toml", GOOD).unwrap();
    s.setup::<Broadcast>(&[]).unwrap();
    assert!(
        s.schedule(1, 1).faults.len() > 1,
        "the random generator adds faults"
    );
}

#[test]
fn syntax_and_type_errors_give_file_line_and_column() {
    assert_eq!(
        error(&with("nodes = 3", "nodes = ")),
        "s.toml:8:9: invalid string: expected `\"`, `'`"
    );
    assert_eq!(
        error(&with("duration_ms = 1000", "duration_ms = -5"))
            .split(": ")
            .next(),
        Some("s.toml:4:15")
    );
    assert!(error(&with("nodes = 3", "nodes = \"three\""))
        .starts_with("s.toml:8:9: invalid type: string"));
}

#[test]
fn unknown_fields_are_refused_where_they_stand() {
    let e = error(&with("nodes = 3", "nodes = 3\nleader = 1"));
    assert!(e.starts_with("s.toml:9:1: unknown field `leader`"), "{e}");
    let e = error(&with("restart_ms = 500", "restart_ms = 500\nreboot = true"));
    assert!(e.starts_with("s.toml:10:1: unknown field `reboot`"), "{e}");
    let e = error(&with(
        "nodes = 3",
        "nodes = 3\n[cluster.config]\nretransmit = 5",
    ));
    assert!(
        e.starts_with("s.toml:10:1: unknown field `retransmit`"),
        "{e}"
    );
}

#[test]
fn semantic_errors_name_the_file_and_the_field() {
    let cases = [
        (
            with("node = 1", "node = 3"),
            "s.toml: faults[0].node: node 3 is out of range: the cluster has nodes 0..3",
        ),
        (
            with("duration_ms = 1000", "duration_ms = 0"),
            "s.toml: duration_ms: must be more than 0",
        ),
        (
            with("nodes = 3", "nodes = 3\n[network]\nloss = 1.5"),
            "s.toml: network.loss: 1.5 is not a probability in [0, 1]",
        ),
        (
            with("restart_ms = 500", "restart_ms = 50"),
            "s.toml: faults[0].restart_ms: 50 is not after the fault's start",
        ),
        (
            with("max_down = 1", "max_down = 4"),
            "s.toml: random.max_down: 4 nodes down at once is more than the cluster's 3 nodes",
        ),
        (
            with("at_ms = 100", "at_ms = 1000"),
            "s.toml: faults[0].at_ms: starts at or after the fault phase ends",
        ),
        (
            with("min = 50, max = 200", "min = 0, max = 200"),
            "s.toml: random.interval_ms: needs 0 < min <= max",
        ),
        (
            with(
                "[random]",
                "[[faults]]\nkind = \"crash\"\nnode = 1\nat_ms = 300\n[random]",
            ),
            "s.toml: faults[1].at_ms: node 1 is already down then",
        ),
        (
            with(
                "nodes = 3",
                "nodes = 3\n[cluster.config]\nretransmit_ms = 0",
            ),
            "s.toml: cluster.config.retransmit_ms: must be at least 1",
        ),
        (
            with(
                "duration_ms = 1000",
                "duration_ms = 1000\nbugs = [\"nope\"]",
            ),
            "s.toml: bugs[0]: unknown bug `nope`",
        ),
    ];
    for (text, expected) in cases {
        let e = error(&text);
        assert!(e.starts_with(expected), "expected `{expected}`, got `{e}`");
    }
}

/// `with` plus one more fault, `faults[1]`, before the `[random]` table.
fn with_fault(fault: &str) -> String {
    with("[random]", &format!("[[faults]]\n{fault}\n[random]"))
}

#[test]
fn the_network_slow_and_hold_fields_are_checked_by_name() {
    let cases = [
        (
            with_fault("kind = \"slow\"\nnode = 1\nat_ms = 1\ndelay = { dist = \"uniform\", min_ms = 5, max_ms = 1 }"),
            "s.toml: faults[1].delay: Uniform { min_ms: 5.0, max_ms: 1.0 } is not a valid latency",
        ),
        (
            with_fault("kind = \"slow\"\nnode = 3\nat_ms = 1\ndelay = { dist = \"constant\", ms = 5 }"),
            "s.toml: faults[1].node: node 3 is out of range",
        ),
        (
            with_fault("kind = \"hold\"\nat_ms = 1\nfrom = [0]\nto = []"),
            "s.toml: faults[1].from: `from` and `to` must both name nodes",
        ),
        (
            with_fault("kind = \"hold\"\nat_ms = 1\nfrom = [0, 1]\nto = [1]"),
            "s.toml: faults[1].to: node 1 is on both sides",
        ),
        (
            with_fault("kind = \"loss\"\nat_ms = 1\nrate = 0.5\nnodes = [5]"),
            "s.toml: faults[1].nodes: node 5 is out of range",
        ),
        (
            with_fault("kind = \"loss\"\nat_ms = 1\nrate = 0.5\nlinks = [{ from = 0, to = 7 }]"),
            "s.toml: faults[1].links: node 7 is out of range",
        ),
        (
            with_fault("kind = \"duplicate\"\nat_ms = 1\nrate = 0.5\nlinks = [{ from = 1, to = 1 }]"),
            "s.toml: faults[1].links: a link from node 1 to itself",
        ),
        (
            with_fault("kind = \"loss\"\nat_ms = 1\nrate = 0.5\nclasses = [\"probe\"]"),
            "s.toml: faults[1].classes: unknown message class `probe` for protocol broadcast (known: value, ack)",
        ),
        (
            with_fault("kind = \"isolate\"\nat_ms = 1\nnode = 0\nclasses = [\"ack\", \"ack\"]"),
            "s.toml: faults[1].classes: class `ack` is listed twice",
        ),
        (
            with("max_down = 1", "max_down = 1\nslow_delay = { dist = \"constant\", ms = -1 }"),
            "s.toml: random.slow_delay: Constant { ms: -1.0 } is not a valid latency",
        ),
        (
            with("max_down = 1", "max_down = 1\nloss_per_node = 2"),
            "s.toml: random.loss_per_node: 2 is not a probability in [0, 1]",
        ),
    ];
    for (text, expected) in cases {
        let e = error(&text);
        assert!(e.starts_with(expected), "expected `{expected}`, got `{e}`");
    }
    // A link is a strict table; a duplicate window takes no classes.
    let e = error(&with_fault(
        "kind = \"loss\"\nat_ms = 1\nrate = 0.5\nlinks = [{ from = 0, to = 1, rate = 1 }]",
    ));
    assert!(e.contains("unknown field `rate`"), "{e}");
    let e = error(&with_fault(
        "kind = \"duplicate\"\nat_ms = 1\nrate = 0.5\nclasses = [\"ack\"]",
    ));
    assert!(e.contains("unknown field `classes`"), "{e}");
}

#[test]
fn a_schedule_naming_an_unknown_class_is_refused_before_it_runs() {
    let s = Scenario::parse("s.toml", GOOD).unwrap();
    let text = "seed = 1\n[[faults]]\nkind = \"hold\"\nat_ms = 1\nfrom = [0]\nto = [1]\nclasses = [\"vote\"]\n";
    let file = std::env::temp_dir().join(format!(
        "faultline-class-schedule-{}.toml",
        std::process::id()
    ));
    std::fs::write(&file, text).unwrap();
    let schedule = faultline::scenario::Schedule::load(&file, &s).unwrap();
    let request = faultline::run::RunRequest {
        seeds: vec![1],
        schedule: Some(schedule),
        ..faultline::run::RunRequest::default()
    };
    let e = faultline::run::run::<Broadcast>(&s, &request).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("s.toml: faults[0].classes: unknown message class `vote`"),
        "{e}"
    );
}

#[test]
fn a_partition_listing_a_node_twice_is_refused() {
    let text = with(
        "[random]",
        "[[faults]]\nkind = \"partition\"\nat_ms = 1\ngroups = [[0, 1], [1, 2]]\n[random]",
    );
    assert_eq!(
        error(&text),
        "s.toml: faults[1].groups: a node is listed twice"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = Scenario::parse("fuzz.toml", &text);
    }

    #[test]
    fn corrupted_scenarios_are_refused_or_expand_without_panicking(
        cuts in proptest::collection::vec((0..GOOD.len(), "[0-9a-z=\\[\\]{}\",.\n -]{0,6}"), 1..4),
        seed in any::<u64>(),
    ) {
        let mut text = GOOD.to_string();
        for (at, insert) in cuts {
            let at = (0..=at.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap();
            text.insert_str(at, &insert);
        }
        if let Ok(s) = Scenario::parse("fuzz.toml", &text) {
            let _ = s.setup::<Broadcast>(&[]);
            let schedule = s.schedule(seed, 1);
            prop_assert!(schedule.faults.len() <= s.faults.len() + faultline::scenario::RANDOM_FAULTS_MAX);
        }
    }
}

#[test]
fn errors_locate_positions_as_structured_data() {
    let e = Scenario::parse("s.toml", &with("nodes = 3", "nodes = []")).unwrap_err();
    assert_eq!(e.location, Location::Position { line: 8, col: 9 });
    let e = Scenario::parse("s.toml", &with("node = 1", "node = 9")).unwrap_err();
    assert_eq!(e.location, Location::Field("faults[0].node".into()));
}

#[test]
fn a_schedule_with_too_many_faults_is_refused_quickly() {
    let s = Scenario::parse("s.toml", GOOD).unwrap();
    let fault = "[[faults]]\nkind = \"loss\"\nat_ms = 1\nrate = 0.1\n";
    let text = format!(
        "seed = 1\n{}",
        fault.repeat(faultline::scenario::RANDOM_FAULTS_MAX + 1)
    );
    let file = std::env::temp_dir().join(format!(
        "faultline-big-schedule-{}.toml",
        std::process::id()
    ));
    std::fs::write(&file, text).unwrap();
    let e = faultline::scenario::Schedule::load(&file, &s).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("faults: 10001 faults; at most 10000 are allowed"),
        "{e}"
    );
}
