//! Same scenario + same seed = the same run, bit for bit: across threads, across
//! processes, and with the fault schedule written out and read back.

mod common;

use std::path::Path;
use std::process::Command;

use common::{probe_scenario, Probe};
use faultline::run::{run, RunRequest};
use faultline::sim::FailureKind;

/// Seeds per shipped scenario in the two-process comparison.
const SEEDS: u64 = 6;

fn hashes(scenario: &str) -> Vec<(u64, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            scenario,
            "--seeds",
            &format!("0..{SEEDS}"),
            "--json",
            "--jobs",
            "2",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run faultline");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{scenario}: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    let runs = summary["runs"].as_array().expect("runs");
    runs.iter()
        .map(|r| {
            (
                r["seed"].as_u64().unwrap(),
                r["trace_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_shipped_scenario_runs_the_same_in_two_processes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut scenarios: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scenarios.sort();
    assert!(
        scenarios.len() >= 4,
        "scenarios/ holds the shipped scenarios"
    );
    for path in scenarios {
        let path = path.display().to_string();
        let (first, second) = (hashes(&path), hashes(&path));
        assert_eq!(first.len() as u64, SEEDS);
        assert_eq!(
            first, second,
            "{path}: trace hashes differ between two processes"
        );
        let distinct: std::collections::BTreeSet<_> = first.iter().map(|(_, h)| h).collect();
        assert!(
            distinct.len() > 1,
            "{path}: different seeds give different runs"
        );
    }
}

#[test]
fn the_determinism_check_catches_state_that_leaks_between_runs() {
    let leaky = probe_scenario(3, 500, "[cluster.config]\nleak_static = true\n");
    let request = RunRequest {
        seeds: vec![1, 2],
        check_determinism: true,
        ..RunRequest::default()
    };
    let summary = run::<Probe>(&leaky, &request).unwrap();
    assert_eq!(summary.failed, 2);
    let failure = summary.runs[0].failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::Nondeterminism, "{failure:?}");
    assert!(
        failure.message.contains("trace hash"),
        "{}",
        failure.message
    );

    let clean = probe_scenario(3, 500, "");
    assert_eq!(
        run::<Probe>(&clean, &request).unwrap().failed,
        0,
        "a clean protocol passes the same check"
    );
}

#[test]
fn a_seed_runs_the_same_on_one_thread_or_many() {
    let s = probe_scenario(4, 2_000, "[random]\nkinds = [\"partition\", \"crash\", \"pause\", \"loss\"]\ninterval_ms = { min = 100, max = 300 }\nduration_ms = { min = 100, max = 500 }\n");
    let seeds: Vec<u64> = (0..8).collect();
    let one = run::<Probe>(
        &s,
        &RunRequest {
            seeds: seeds.clone(),
            jobs: 1,
            ..RunRequest::default()
        },
    )
    .unwrap();
    let many = run::<Probe>(
        &s,
        &RunRequest {
            seeds,
            jobs: 4,
            ..RunRequest::default()
        },
    )
    .unwrap();
    let h = |s: &faultline::run::Summary| s.runs.iter().map(|r| r.trace_hash).collect::<Vec<_>>();
    assert_eq!(h(&one), h(&many));
}

#[test]
fn a_saved_schedule_reproduces_the_seed_it_came_from() {
    let s = probe_scenario(4, 2_000, "[random]\nkinds = [\"partition\", \"one-way\", \"bridge\", \"crash\", \"clock-step\", \"clock-drift\", \"clock-freeze\", \"disk-stall\", \"disk-slow\", \"fsync-error\", \"disk-wipe\", \"latency-spike\"]\ninterval_ms = { min = 100, max = 300 }\nduration_ms = { min = 100, max = 500 }\n");
    let schedule = s.schedule(11, 1);
    let text = schedule.to_toml();
    let file = std::env::temp_dir().join(format!("faultline-schedule-{}.toml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let read = faultline::scenario::Schedule::load(&file, &s).unwrap();
    assert_eq!(read, schedule, "the schedule survives TOML");
    let from_seed = run::<Probe>(
        &s,
        &RunRequest {
            seeds: vec![11],
            ..RunRequest::default()
        },
    )
    .unwrap();
    let request = RunRequest {
        seeds: vec![11],
        schedule: Some(read),
        ..RunRequest::default()
    };
    let from_file = run::<Probe>(&s, &request).unwrap();
    assert_eq!(from_seed.runs[0].trace_hash, from_file.runs[0].trace_hash);
}
