//! Every shipped scenario passes a 20-seed sweep: its checks pass, or, for a teaching
//! scenario, the anomaly it teaches shows.

use faultline::registry;
use faultline::run::RunRequest;
use faultline::scenario::Scenario;

#[test]
fn every_shipped_scenario_passes_20_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        let scenario = Scenario::load(path).unwrap_or_else(|e| panic!("{e}"));
        let protocol = registry::for_scenario(&scenario).unwrap_or_else(|e| panic!("{e}"));
        let request = RunRequest {
            seeds: (0..20).collect(),
            jobs: 2,
            ..RunRequest::default()
        };
        let summary = (protocol.run)(&scenario, &request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.seeds_run, 20);
        if summary.exit_code() != 0 {
            failures.push(format!(
                "{}: failing seeds {:?}",
                scenario.name, summary.failing_seeds
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_bug_names_a_shipped_scenario_of_its_protocol() {
    for protocol in registry::protocols() {
        for bug in (protocol.bugs)() {
            let scenario =
                Scenario::find(bug.scenario).unwrap_or_else(|e| panic!("bug {}: {e}", bug.name));
            assert_eq!(scenario.protocol, protocol.name, "bug {}", bug.name);
        }
    }
}

#[test]
fn most_broadcast_nemesis_seeds_lose_in_flight_writes_in_crashes_and_still_pass() {
    let scenario = Scenario::find("broadcast-nemesis").unwrap_or_else(|e| panic!("{e}"));
    let protocol = registry::for_scenario(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let request = RunRequest {
        seeds: (0..40).collect(),
        jobs: 2,
        ..RunRequest::default()
    };
    let summary = (protocol.run)(&scenario, &request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.failing_seeds);
    let lost = summary.seeds_with("storage_writes_lost");
    assert!(
        lost * 2 > summary.runs.len(),
        "{lost} of 40 seeds lost a write"
    );
}
