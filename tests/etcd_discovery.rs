//! etcd as a discovery system: members with their lessor and watches, service
//! instances registered under leases, callers that watch and call them. Each
//! shipped scenario shows what it teaches, each of the lessor's and the watch's
//! bugs is caught, and settings that cannot work are refused naming the field.
//! The 500-seed sweeps and the figures are in results/etcd.md.

use faultline::etcd::Etcd;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;
use faultline::testing;

fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, bug: Option<&str>) -> Summary {
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        bugs: bug.map(|b| vec![b.to_string()]).unwrap_or_default(),
        artifacts: None,
        ..RunRequest::default()
    };
    run::<Etcd>(scenario, &request).unwrap_or_else(|e| panic!("{e}"))
}

fn shipped(name: &str) -> Scenario {
    Scenario::find(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The first failure of a sweep: its check and message.
fn first_failure(summary: &Summary) -> (String, String) {
    let report = summary
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .expect("a failing seed");
    let f = report.failure.as_ref().expect("a failure");
    (f.check.clone(), f.message.clone())
}

fn metric(summary: &Summary, name: &str) -> f64 {
    let r = &summary.runs[0];
    *r.metrics
        .get(name)
        .unwrap_or_else(|| panic!("seed {}: no metric {name}", r.seed))
}

#[test]
fn a_stalled_leader_revokes_live_leases_only_with_the_bug() {
    let s = shipped("etcd-stuck-leader-leases");
    let without = sweep(&s, 0..3, None);
    assert_eq!(without.passed, 3, "{:?}", without.failing_seeds);
    let with = sweep(&s, 0..3, Some("lease-revoke-by-stale-leader"));
    assert_eq!(with.failing_seeds, vec![0, 1, 2]);
    let (check, message) = first_failure(&with);
    assert_eq!(check, "lease-guarantee", "{message}");
    assert!(message.contains("revoked-while-alive"), "{message}");
}

#[test]
fn a_new_leader_without_checkpoints_gives_a_dead_lease_its_ttl_back() {
    let with = testing::check_seeds::<Etcd>("etcd-lease-elections", 0..2);
    assert_eq!(with.passed, 2, "{:?}", with.failing_seeds);
    assert!(metric(&with, "leases_expired") >= 1.0);
    // Same run without checkpoints: the dead instance's lease is not revoked in time.
    let s = shipped("etcd-lease-elections-no-checkpoint");
    let without = sweep(&s, 0..1, None);
    let report = &without.runs[0];
    let failure = report
        .failure
        .as_ref()
        .expect("the lease outlives its bound");
    assert_eq!(failure.check, "liveness");
    assert!(
        failure.message.contains("not-revoked"),
        "{}",
        failure.message
    );
    // The scenario expects exactly that failure: the sweep passes.
    assert_eq!(without.exit_code(), 0);
}

#[test]
fn watch_bugs_break_a_documented_guarantee() {
    let s = shipped("etcd-watch-compaction");
    let clean = sweep(&s, 0..2, None);
    assert_eq!(clean.passed, 2, "{:?}", clean.failing_seeds);
    assert!(metric(&clean, "watch_events_delivered") > 0.0);
    // The first seed that catches each (results/etcd.md gives the 500-seed rates).
    for (bug, seed) in [
        ("watch-skip-at-compaction", 7),
        ("watch-resume-off-by-one", 1),
    ] {
        let with = sweep(&s, seed..seed + 1, Some(bug));
        assert_eq!(with.failing_seeds, vec![seed], "{bug} not caught");
        let (check, message) = first_failure(&with);
        assert_eq!(check, "watch-guarantees", "{bug}: {message}");
        assert!(
            message.contains("watch reliable") || message.contains("watch bookmarkable"),
            "{bug}: {message}"
        );
    }
}

#[test]
fn callers_drop_a_dead_instance_when_its_lease_expires() {
    // etcd's client: a 60 s lease renewed every 20 s, so 40 to 60 s.
    let etcd = testing::check_seeds::<Etcd>("etcd-discovery-rolling-restart", 0..1);
    assert_eq!(etcd.passed, 1);
    let p50 = metric(&etcd, "removal_p50_ms");
    assert!(
        (40_000.0..=61_000.0).contains(&p50),
        "etcd removal p50 {p50} ms"
    );
    assert_eq!(metric(&etcd, "stops_count"), 4.0);
    assert!(metric(&etcd, "dead_calls_count") > 0.0);
    // go-micro: a 90 s TTL re-registered every 30 s, so 60 to 90 s.
    let micro = testing::check_seeds::<Etcd>("etcd-discovery-rolling-restart-go-micro", 0..1);
    assert_eq!(micro.passed, 1);
    let p50 = metric(&micro, "removal_p50_ms");
    assert!(
        (60_000.0..=91_000.0).contains(&p50),
        "go-micro removal p50 {p50} ms"
    );
    assert!(metric(&micro, "removal_p99_ms") > metric(&etcd, "removal_p99_ms"));
}

#[test]
fn a_caller_cut_off_from_etcd_keeps_calling_a_dead_instance() {
    let s = testing::check_seeds::<Etcd>("etcd-discovery-partitioned-caller", 0..1);
    assert_eq!(s.passed, 1);
    // Node 3 dies at 8 s with a 5 s lease; the cut-off caller hears of it after 25 s.
    let removal = metric(&s, "removal_max_ms");
    assert!(removal >= 16_000.0, "removed after {removal} ms");
    assert!(metric(&s, "dead_call_window_max_ms") >= 10_000.0);
}

const SERVICE: &str = r#"
name = "service-faults"
description = "an instance that fails its calls, then one that hangs"
duration_ms = 12000

[cluster]
protocol = "etcd"
nodes = 6

[cluster.config.discovery]
servers = 3
instances = 2
callers = 1
lease_ttl_ms = 2000
call_timeout_ms = 300

[workload]
clients = 1
think_time_ms = 500

[[faults]]
kind = "service-unhealthy"
node = 3
at_ms = 2000
heal_ms = 5000

[[faults]]
kind = "service-hang"
node = 4
at_ms = 6000
heal_ms = 9000
"#;

#[test]
fn service_faults_fail_calls_while_the_registration_lives() {
    let s = Scenario::parse("service.toml", SERVICE).unwrap_or_else(|e| panic!("{e}"));
    let summary = sweep(&s, 0..1, None);
    assert_eq!(summary.passed, 1, "{:?}", summary.runs[0].failure);
    // Their keepalives went on: no lease expired, yet calls failed.
    assert_eq!(metric(&summary, "leases_expired"), 0.0);
    assert!(metric(&summary, "failed_calls_count") >= 5.0);
    // Each fault made its instance count as down, and callers called it.
    assert_eq!(metric(&summary, "stops_count"), 2.0);
    assert!(metric(&summary, "dead_calls_count") >= 5.0);
    assert!(metric(&summary, "fault_service-unhealthy_services_struck") >= 1.0);
}

fn refused(text: &str) -> String {
    let e = Scenario::parse("s.toml", text)
        .and_then(|s| s.setup::<Etcd>(&[]).map(|_| ()))
        .unwrap_err();
    e.to_string()
}

#[test]
fn settings_that_cannot_work_are_refused_naming_the_field() {
    let ttl = refused(&SERVICE.replace("lease_ttl_ms = 2000", "lease_ttl_ms = 0"));
    assert!(ttl.contains("discovery.lease_ttl_ms"), "{ttl}");
    let lonely =
        refused(&SERVICE.replace("instances = 2\ncallers = 1", "instances = 0\ncallers = 3"));
    assert!(lonely.contains("discovery.callers"), "{lonely}");
    assert!(lonely.contains("no instance offers"), "{lonely}");
    let sum = refused(&SERVICE.replace("nodes = 6", "nodes = 7"));
    assert!(
        sum.contains("cluster.nodes") && sum.contains("add up to 6"),
        "{sum}"
    );
    let profile =
        refused(&SERVICE.replace("callers = 1", "callers = 1\ncaller_profile = \"consul\""));
    assert!(profile.contains("discovery.caller_profile"), "{profile}");
    assert!(profile.contains("go-micro"), "{profile}");
    let slow = refused(&SERVICE.replace(
        "lease_ttl_ms = 2000",
        "lease_ttl_ms = 2000\nkeepalive_ms = 3000",
    ));
    assert!(slow.contains("discovery.keepalive_ms"), "{slow}");
    let unknown = refused(&SERVICE.replace("servers = 3", "servers = 3\nserver = 3"));
    assert!(unknown.contains("server"), "{unknown}");
}

#[test]
fn service_faults_are_refused_where_nothing_serves_an_application() {
    let raft = SERVICE
        .replace("protocol = \"etcd\"", "protocol = \"raft\"")
        .replace(
            "[cluster.config.discovery]\nservers = 3\ninstances = 2\ncallers = 1\nlease_ttl_ms = 2000\ncall_timeout_ms = 300\n",
            "",
        );
    let e = Scenario::parse("s.toml", &raft)
        .and_then(|s| s.setup::<faultline::raft::RaftKv>(&[]).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("faults[0].kind"), "{e}");
    assert!(e.contains("serves no application"), "{e}");
    let random = format!(
        "{SERVICE}\n[random]\nkinds = [\"service-hang\"]\ninterval_ms = {{ min = 100, max = 200 }}\nduration_ms = {{ min = 100, max = 200 }}\n"
    );
    let e = refused(&random);
    assert!(e.contains("random.kinds"), "{e}");
}
