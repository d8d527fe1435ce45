//! The discovery comparison: every design under every fault of the set, and the
//! figures that each design's nature fixes (what gossip cannot see, what a
//! registry on Raft cannot do without a majority).

use std::process::Command;

use faultline::compare::{self, CompareRequest, Row, DESIGNS, FAULTS};
use faultline::registry;
use faultline::run::RunRequest;
use faultline::scenario::Scenario;

fn rows(seeds: u64) -> Vec<Row> {
    let request = CompareRequest {
        seeds,
        jobs: 2,
        out: std::env::temp_dir().join("unused.md"),
    };
    compare::compare(&request, |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

fn row<'a>(rows: &'a [Row], design: &str, fault: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.design == design && r.fault == fault)
        .unwrap_or_else(|| panic!("no row {design} {fault}"))
}

#[test]
fn the_command_writes_every_row_and_the_figures_the_designs_fix() {
    let rows = rows(2);
    assert_eq!(rows.len(), DESIGNS.len() * FAULTS.len());
    for r in &rows {
        assert_eq!(r.passed, r.seeds, "{} {}: a seed failed", r.design, r.fault);
    }

    // The command line writes the same table the library makes: one line per row,
    // the command and the seeds named, the same bytes (the file is deterministic).
    let out = std::env::temp_dir().join(format!("discovery-{}.md", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["compare-discovery", "--seeds", "2", "--jobs", "1", "--out"])
        .arg(&out)
        .status()
        .expect("the binary runs");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&out).expect("the table");
    let _ = std::fs::remove_file(&out);
    assert_eq!(text, compare::render(&rows, 2));
    assert!(
        text.contains("faultline compare-discovery --seeds 2"),
        "{text}"
    );
    for d in DESIGNS {
        for f in FAULTS {
            let line = format!("| {} | {} |", d.title, f.name);
            assert_eq!(text.matches(&line).count(), 1, "{line} in\n{text}");
        }
    }

    // Service health is invisible to gossip, and to etcd's leases: an instance that
    // fails (or hangs) while its process lives stays in every caller's set until it
    // heals. Consul's checks remove it within a probe interval and a sync.
    for fault in ["instance-unhealthy", "instance-slow"] {
        for design in ["gossip", "etcd"] {
            let r = row(&rows, design, fault);
            assert!(r.stops > 0.0, "{design} {fault}: {r:?}");
            assert_eq!(r.removal_p50_ms, None, "{design} {fault}: {r:?}");
            assert_eq!(
                r.back_before_removed_seeds, r.seeds,
                "{design} {fault}: {r:?}"
            );
            assert!(r.failed_per_1000 > 0.0, "{design} {fault}: {r:?}");
        }
        let consul = row(&rows, "consul", fault);
        let p99 = consul.removal_p99_ms.expect("Consul removes it");
        assert!(p99 < 2_500.0, "{fault}: {consul:?}");
    }

    // Without a server majority, etcd and Consul make no change to what callers
    // see until the servers are back; gossip-only discovery goes on removing.
    for design in ["etcd", "consul"] {
        let r = row(&rows, design, "majority-loss");
        assert!(!compare::available_without_majority(r), "{design}: {r:?}");
    }
    let gossip = row(&rows, "gossip", "majority-loss");
    assert!(compare::available_without_majority(gossip), "{gossip:?}");

    // A crashed instance: etcd removes it once its lease runs out (a 5 s TTL, kept
    // alive every third of it); gossip once SWIM declares it dead (a probe period,
    // then a suspicion of 4 to 24 periods that confirmations shorten).
    let etcd = row(&rows, "etcd", "instance-crash");
    let (lo, hi) = (etcd.removal_p50_ms.unwrap(), etcd.removal_p99_ms.unwrap());
    assert!(
        lo >= 5_000.0 * 2.0 / 3.0 - 100.0 && hi <= 6_500.0,
        "{etcd:?}"
    );
    let gossip = row(&rows, "gossip", "instance-crash");
    let (lo, hi) = (
        gossip.removal_p50_ms.unwrap(),
        gossip.removal_p99_ms.unwrap(),
    );
    assert!(lo >= 4_000.0 && hi <= 26_000.0, "{gossip:?}");
    assert_eq!(gossip.never_removed_seeds, 0);

    // An instance cut off from etcd loses its lease while alive; gossip has no
    // servers to cut it from, and its row shows nothing happening.
    assert!(row(&rows, "etcd", "instance-partitioned").expired_while_alive > 0.0);
    let g = row(&rows, "gossip", "instance-partitioned");
    assert_eq!((g.stops, g.failed_per_1000), (0.0, 0.0), "{g:?}");

    // Server faults strike nothing in gossip-only discovery: the rows whose only
    // other fault is the same instance crash at 12 s see the same calls, and
    // removal times within a millisecond (the untargeted fault entry shifts the
    // network's draws by microseconds).
    let (a, b) = (
        row(&rows, "gossip", "caller-partitioned"),
        row(&rows, "gossip", "leader-crash"),
    );
    assert_eq!(
        (a.stops, a.dead_calls),
        (b.stops, b.dead_calls),
        "{a:?} {b:?}"
    );
    assert_eq!(a.failed_per_1000, b.failed_per_1000, "{a:?} {b:?}");
    let close = |x: Option<f64>, y: Option<f64>| (x.unwrap() - y.unwrap()).abs() < 1.0;
    assert!(close(a.removal_p50_ms, b.removal_p50_ms), "{a:?} {b:?}");
    assert!(close(a.removal_p99_ms, b.removal_p99_ms), "{a:?} {b:?}");
    assert!(a.server_msgs_per_s.is_none());
    assert!(
        row(&rows, "etcd", "instance-crash")
            .server_msgs_per_s
            .unwrap()
            > 0.0
    );
}

#[test]
fn bad_arguments_exit_2_naming_them() {
    for args in [
        &["compare-discovery", "--seeds", "0"][..],
        &["compare-discovery", "--seeds", "many"],
        &["compare-discovery", "--seeds", "1", "--jobs", "0"],
        &[
            "compare-discovery",
            "--out",
            "/proc/no/such/dir/x.md",
            "--seeds",
            "1",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(args)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let named = ["--seeds", "--jobs", "--out"]
            .iter()
            .any(|flag| args.contains(flag) && stderr.contains(flag));
        assert!(named, "{args:?}: {stderr}");
    }
}

#[test]
fn gossip_discovery_keeps_swims_rules_and_its_checker_catches_a_precedence_bug() {
    let scenario =
        Scenario::find("gossip-discovery-slow-members").unwrap_or_else(|e| panic!("{e}"));
    let protocol = registry::for_scenario(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let good = RunRequest {
        seeds: (0..10).collect(),
        jobs: 2,
        ..RunRequest::default()
    };
    let summary = (protocol.run)(&scenario, &good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.groups);
    assert!(summary.sometimes["suspicion-refuted"] > 0.0);
    let bad = RunRequest {
        bugs: vec!["swim-alive-overrides-suspect".into()],
        ..good
    };
    let summary = (protocol.run)(&scenario, &bad).unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.failed > 0, "the bug went unseen");
    assert!(
        summary.groups.iter().all(|g| g.check == "swim-rules"),
        "{:?}",
        summary.groups
    );
}
