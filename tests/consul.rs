//! Consul as a discovery system: servers replicating the catalog on Raft, agents
//! syncing their checks into it, callers watching `?passing` with blocking queries.
//! Each shipped scenario passes 100 seeds and shows what it teaches, the servers'
//! `?passing` bug is caught, and settings that cannot work are refused naming the
//! field.

use faultline::consul::Consul;
use faultline::run::{run, RunRequest, Status, Summary};
use faultline::scenario::Scenario;

fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, bug: Option<&str>) -> Summary {
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        bugs: bug.map(|b| vec![b.to_string()]).unwrap_or_default(),
        artifacts: None,
        ..RunRequest::default()
    };
    run::<Consul>(scenario, &request).unwrap_or_else(|e| panic!("{e}"))
}

fn shipped(name: &str) -> Scenario {
    Scenario::find(name).unwrap_or_else(|e| panic!("{e}"))
}

fn metric(summary: &Summary, seed: usize, name: &str) -> f64 {
    let r = &summary.runs[seed];
    *r.metrics
        .get(name)
        .unwrap_or_else(|| panic!("seed {}: no metric {name}", r.seed))
}

#[test]
fn every_consul_scenario_passes_100_seeds() {
    for name in [
        "consul-discovery-unhealthy-then-crash",
        "consul-discovery-stale-reads",
        "consul-discovery-warning",
        "consul-discovery-herd",
    ] {
        let s = sweep(&shipped(name), 0..100, None);
        assert_eq!(s.passed, 100, "{name}: {:?}", s.failing_seeds);
    }
}

#[test]
fn an_unhealthy_instance_goes_within_a_probe_and_a_crashed_one_after_gossip() {
    let s = sweep(
        &shipped("consul-discovery-unhealthy-then-crash"),
        0..5,
        None,
    );
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    for seed in 0..5 {
        assert_eq!(metric(&s, seed, "stops_count"), 2.0);
        // The unhealthy one: a probe interval (1 s) and a few round trips.
        assert!(metric(&s, seed, "removal_p50_ms") <= 1_100.0);
        // The crashed one: only gossip notices; the leader marks its serfHealth
        // critical after the suspicion, slower than a probe but within the bound.
        assert_eq!(metric(&s, seed, "never_removed_count"), 0.0);
        assert_eq!(metric(&s, seed, "serf_critical_episodes_count"), 1.0);
        let crashed = metric(&s, seed, "removal_max_ms");
        assert!(crashed > 1_100.0, "seed {seed}: {crashed}");
        assert!(crashed <= metric(&s, seed, "passing_bound_down_ms"));
        assert!(metric(&s, seed, "dead_calls_count") > 0.0);
    }
}

#[test]
fn stale_reads_keep_an_unhealthy_instance_until_the_cut_heals() {
    let stale = shipped("consul-discovery-stale-reads");
    let text = std::fs::read_to_string(&stale.file).unwrap();
    let default = Scenario::parse(
        "default.toml",
        &text.replace("read_mode = \"stale\"", "read_mode = \"default\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = sweep(&stale, 0..5, None);
    let d = sweep(&default, 0..5, None);
    assert_eq!(s.passed + d.passed, 10);
    for seed in 0..5 {
        // Stale: the cut-off server answers from its old catalog until 30 s.
        let stale_ms = metric(&s, seed, "removal_max_ms");
        assert!(stale_ms >= 15_000.0, "stale removal {stale_ms} ms");
        assert!(metric(&s, seed, "dead_calls_count") >= 20.0);
        // Default: the same caller is sent to the leader.
        let default_ms = metric(&d, seed, "removal_max_ms");
        assert!(default_ms <= 1_100.0, "default removal {default_ms} ms");
    }
}

#[test]
fn passing_admits_warning_is_caught_on_every_seed() {
    let s = sweep(
        &shipped("consul-discovery-warning"),
        0..100,
        Some("passing-admits-warning"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    let report = s
        .runs
        .iter()
        .find(|r| r.status == Status::Failed)
        .expect("a failing seed");
    let f = report.failure.as_ref().expect("a failure");
    assert_eq!(f.check, "passing-answers", "{}", f.message);
    assert!(f.message.contains("warning"), "{}", f.message);
}

const BASE: &str = r#"
name = "consul-settings"
description = "settings"
duration_ms = 5000

[cluster]
protocol = "consul"
nodes = 6

[cluster.config.discovery]
servers = 3
instances = 2
callers = 1
check_ttl_ms = 3000
"#;

fn refused(text: &str) -> String {
    let e = Scenario::parse("s.toml", text)
        .and_then(|s| s.setup::<Consul>(&[]).map(|_| ()))
        .unwrap_err();
    e.to_string()
}

#[test]
fn settings_that_cannot_work_are_refused_naming_the_field() {
    // The base is fine.
    Scenario::parse("s.toml", BASE)
        .and_then(|s| s.setup::<Consul>(&[]).map(|_| ()))
        .unwrap_or_else(|e| panic!("{e}"));
    let lonely = refused(&BASE.replace("instances = 2\ncallers = 1", "instances = 0\ncallers = 3"));
    assert!(lonely.contains("discovery.callers"), "{lonely}");
    assert!(lonely.contains("no instance offers"), "{lonely}");
    let mode = refused(&BASE.replace("callers = 1", "callers = 1\nread_mode = \"eventual\""));
    assert!(mode.contains("discovery.read_mode"), "{mode}");
    assert!(mode.contains("stale"), "{mode}");
    let ttl = refused(&BASE.replace("check_ttl_ms = 3000", "check_ttl_ms = 0"));
    assert!(ttl.contains("discovery.check_ttl_ms"), "{ttl}");
    let sum = refused(&BASE.replace("nodes = 6", "nodes = 7"));
    assert!(
        sum.contains("cluster.nodes") && sum.contains("add up to 6"),
        "{sum}"
    );
    let wake = refused(&BASE.replace("callers = 1", "callers = 1\nwake_on = \"node\""));
    assert!(wake.contains("discovery.wake_on"), "{wake}");
    let flap = refused(&BASE.replace("callers = 1", "callers = 1\nflapper_ms = 0"));
    assert!(flap.contains("discovery.flapper_ms"), "{flap}");
    let unknown = refused(&BASE.replace("servers = 3", "servers = 3\nserver = 3"));
    assert!(unknown.contains("server"), "{unknown}");
    let read = refused(&BASE.replace(
        "[cluster.config.discovery]",
        "[cluster.config]\nread_mode = \"follower\"\n[cluster.config.discovery]",
    ));
    assert!(read.contains("cluster.config.read_mode"), "{read}");
}

#[test]
fn a_hung_service_stops_refreshing_its_ttl_and_is_dropped() {
    // A TTL check of 3 s refreshed every second; node 3 hangs from 2 s to 9 s.
    let text = format!(
        "{}\n[[faults]]\nkind = \"service-hang\"\nnode = 3\nat_ms = 2000\nheal_ms = 9000\n",
        BASE.replace("duration_ms = 5000", "duration_ms = 12000")
    );
    let s = Scenario::parse("ttl.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let summary = sweep(&s, 0..5, None);
    assert_eq!(summary.passed, 5, "{:?}", summary.failing_seeds);
    for seed in 0..5 {
        assert_eq!(metric(&summary, seed, "stops_count"), 1.0);
        // Its last refresh was at most 1 s before the hang; the TTL runs 3 s after it.
        let removal = metric(&summary, seed, "removal_max_ms");
        assert!(
            (1_900.0..=3_200.0).contains(&removal),
            "removal {removal} ms"
        );
        assert!(metric(&summary, seed, "passing_answers_count") > 0.0);
    }
}

#[test]
fn a_service_critical_past_its_deregistration_timeout_is_reaped() {
    // Node 3 fails its probes from 2 s on; reaped 60 to 90 s after its check
    // turned critical (the reaper runs every 30 s), then deregistered by the
    // agent's next sync.
    let text = format!(
        "{}\n[[faults]]\nkind = \"service-unhealthy\"\nnode = 3\nat_ms = 2000\nheal_ms = 110000\n",
        BASE.replace("duration_ms = 5000", "duration_ms = 120000")
            .replace(
                "check_ttl_ms = 3000",
                "probe_interval_ms = 1000\nderegister_critical_service_after_ms = 60000",
            )
    );
    let s = Scenario::parse("reap.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let summary = sweep(&s, 0..3, None);
    assert_eq!(summary.passed, 3, "{:?}", summary.failing_seeds);
    for seed in 0..3 {
        assert_eq!(metric(&summary, seed, "services_reaped_count"), 1.0);
        // Dropped from the callers' sets at the first failed probe, long before.
        assert!(metric(&summary, seed, "removal_max_ms") <= 1_100.0);
    }
}

#[test]
fn a_query_that_sleeps_through_a_check_update_is_caught_on_every_seed() {
    let s = sweep(
        &shipped("consul-discovery-unhealthy-then-crash"),
        0..100,
        Some("blocking-ignores-check-updates"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    let f = s.runs[0].failure.as_ref().expect("a failure");
    assert_eq!(f.check, "blocking-wakes", "{}", f.message);
    assert!(f.message.contains("held-past-a-change"), "{}", f.message);
}

#[test]
fn waking_on_the_global_index_answers_more_often() {
    let shipped = shipped("consul-discovery-stale-reads");
    let text = std::fs::read_to_string(&shipped.file).unwrap();
    let global = Scenario::parse(
        "global.toml",
        &text.replace(
            "read_mode = \"stale\"",
            "read_mode = \"default\"\nwake_on = \"global\"",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let service = Scenario::parse(
        "service.toml",
        &text.replace("read_mode = \"stale\"", "read_mode = \"default\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = sweep(&global, 0..5, None);
    let s = sweep(&service, 0..5, None);
    assert_eq!(
        g.passed + s.passed,
        10,
        "{:?} {:?}",
        g.failing_seeds,
        s.failing_seeds
    );
    for seed in 0..5 {
        let (ga, sa) = (
            metric(&g, seed, "passing_answers_count"),
            metric(&s, seed, "passing_answers_count"),
        );
        assert!(ga >= sa, "global {ga} answers, per-service {sa}");
        // Every caller still blocks: no hot loop.
        assert!(ga < 200.0, "global {ga} answers");
        assert!(metric(&g, seed, "removal_max_ms") <= 1_100.0);
    }
}

#[test]
fn a_flapping_job_wakes_every_caller_only_on_the_global_index() {
    let herd = shipped("consul-discovery-herd");
    let text = std::fs::read_to_string(&herd.file).unwrap();
    let service = Scenario::parse(
        "service.toml",
        &text.replace("wake_on = \"global\"", "wake_on = \"service\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = sweep(&herd, 0..5, None);
    let s = sweep(&service, 0..5, None);
    assert_eq!(
        g.passed + s.passed,
        10,
        "{:?} {:?}",
        g.failing_seeds,
        s.failing_seeds
    );
    for seed in 0..5 {
        let (ga, sa) = (
            metric(&g, seed, "passing_answers_count"),
            metric(&s, seed, "passing_answers_count"),
        );
        assert!(ga >= 10.0 * sa, "global {ga} answers, per-service {sa}");
        assert!(metric(&g, seed, "removal_max_ms") <= 1_100.0);
    }
}

// ---- LAN gossip: serfHealth, the leader's reconcile, bounded `?passing` ----

#[test]
fn gossip_scenarios_pass_a_handful_of_seeds() {
    for name in [
        "consul-discovery-instance-crash",
        "consul-partitioned-agent",
        "consul-slow-agents",
        "consul-slow-agents-no-lifeguard",
    ] {
        let s = sweep(&shipped(name), 0..5, None);
        assert_eq!(s.passed, 5, "{name}: {:?}", s.failing_seeds);
    }
}

#[test]
fn a_crashed_instance_turns_serf_critical_and_leaves_within_the_bound() {
    let s = sweep(&shipped("consul-discovery-instance-crash"), 0..5, None);
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    for seed in 0..5 {
        assert_eq!(metric(&s, seed, "serf_critical_episodes_count"), 1.0);
        assert_eq!(metric(&s, seed, "serf_false_critical_episodes_count"), 0.0);
        assert_eq!(metric(&s, seed, "never_removed_count"), 0.0);
        let removal = metric(&s, seed, "removal_max_ms");
        // Not at once (a suspicion must run out), but within the derived bound.
        assert!(removal > 1_000.0, "seed {seed}: {removal}");
        assert!(removal <= metric(&s, seed, "passing_bound_down_ms"));
    }
}

#[test]
fn a_partitioned_agent_is_failed_not_deregistered_and_comes_back() {
    let s = sweep(&shipped("consul-partitioned-agent"), 0..5, None);
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    for seed in 0..5 {
        assert!(metric(&s, seed, "serf_critical_episodes_count") >= 1.0);
        assert_eq!(metric(&s, seed, "nodes_deregistered_count"), 0.0);
        // Critical, then passing again: at least two serfHealth writes.
        assert!(metric(&s, seed, "serf_health_writes_count") >= 2.0);
        assert!(
            metric(&s, seed, "passing_recovery_ms")
                <= metric(&s, seed, "passing_bound_recovery_ms")
        );
    }
}

#[test]
fn serf_failed_not_reconciled_is_caught_by_the_bound() {
    let s = sweep(
        &shipped("consul-discovery-instance-crash"),
        0..10,
        Some("serf-failed-not-reconciled"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    for r in &s.runs {
        let f = r.failure.as_ref().expect("a failure");
        assert_eq!(f.check, "passing-bounded", "{}", f.message);
        assert!(f.message.contains("passing-past-bound"), "{}", f.message);
        assert!(f.message.contains("n4"), "{}", f.message);
    }
}

#[test]
fn passing_ignores_node_checks_is_caught_once_serf_health_is_critical() {
    let s = sweep(
        &shipped("consul-discovery-instance-crash"),
        0..10,
        Some("passing-ignores-node-checks"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    for r in &s.runs {
        let f = r.failure.as_ref().expect("a failure");
        assert_eq!(f.check, "passing-answers", "{}", f.message);
        assert!(f.message.contains("serfHealth"), "{}", f.message);
    }
}

#[test]
fn lifeguard_halves_false_serf_health_failures_of_slow_agents() {
    let with = sweep(&shipped("consul-slow-agents"), 0..40, None);
    let without = sweep(&shipped("consul-slow-agents-no-lifeguard"), 0..40, None);
    assert_eq!(with.passed, 40, "{:?}", with.failing_seeds);
    assert_eq!(without.passed, 40, "{:?}", without.failing_seeds);
    let total = |s: &Summary, name: &str| -> f64 { (0..40).map(|i| metric(s, i, name)).sum() };
    let (w, wo) = (
        total(&with, "serf_false_critical_episodes_count"),
        total(&without, "serf_false_critical_episodes_count"),
    );
    // Gossip does fail live nodes in both, but Lifeguard far less often.
    assert!(w > 0.0, "no false episode with Lifeguard");
    assert!(
        w * 1.5 < wo,
        "false episodes: {w} with Lifeguard, {wo} without"
    );
    let (cw, cwo) = (
        total(&with, "catalog_writes_count"),
        total(&without, "catalog_writes_count"),
    );
    assert!(
        cw < cwo,
        "catalog writes: {cw} with Lifeguard, {cwo} without"
    );
}

#[test]
fn bad_gossip_settings_are_refused_naming_the_field() {
    let gossip = |table: &str| {
        refused(&BASE.replace(
            "[cluster.config.discovery]",
            &format!("[cluster.config.gossip]\n{table}\n[cluster.config.discovery]"),
        ))
    };
    let timeout = gossip("probe_interval_ms = 500\nprobe_timeout_ms = 500");
    assert!(
        timeout.contains("cluster.config.gossip.probe_timeout_ms"),
        "{timeout}"
    );
    let seed = gossip("seeds = [5]");
    assert!(seed.contains("cluster.config.gossip.seeds"), "{seed}");
    assert!(seed.contains("caller"), "{seed}");
    let reconcile = gossip("reconcile_interval_ms = 0");
    assert!(
        reconcile.contains("cluster.config.gossip.reconcile_interval_ms"),
        "{reconcile}"
    );
    let lifeguard = gossip("lifeguard = \"yes\"");
    assert!(lifeguard.contains("lifeguard"), "{lifeguard}");
    let unknown = gossip("probe_intervall_ms = 1000");
    assert!(unknown.contains("probe_intervall_ms"), "{unknown}");
    let nodes = gossip("[[cluster.config.gossip.nodes]]\nid = 3");
    assert!(nodes.contains("cluster.config.gossip.nodes"), "{nodes}");
}

// ---- The catalog's own checks: indexes, zombies, flapping, operator writes ----

#[test]
fn the_catalog_scenarios_pass_on_a_correct_build() {
    for name in [
        "consul-zombie-after-reap",
        "consul-blocking-stale-index",
        "consul-flapping-check",
        "consul-flapping-check-hysteresis",
        "consul-deregistration-vs-agent",
    ] {
        let s = sweep(&shipped(name), 0..8, None);
        assert_eq!(s.passed, 8, "{name}: {:?}", s.failing_seeds);
        for seed in 0..8 {
            // The index checker looked at answers in every run.
            assert!(
                metric(&s, seed, "blocking_answers_checked_count") > 0.0,
                "{name}"
            );
        }
    }
}

#[test]
fn anti_entropy_that_never_removes_leaves_a_zombie_caught_on_every_seed() {
    let s = sweep(
        &shipped("consul-zombie-after-reap"),
        0..10,
        Some("anti-entropy-never-removes"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    for r in &s.runs {
        let f = r.failure.as_ref().expect("a failure");
        assert_eq!(f.check, "no-zombie", "{}", f.message);
        assert!(f.message.contains("still lists it"), "{}", f.message);
    }
}

#[test]
fn a_blocking_query_answered_with_a_lower_index_is_caught_on_every_seed() {
    let s = sweep(
        &shipped("consul-blocking-stale-index"),
        0..10,
        Some("blocking-query-returns-stale-index"),
    );
    assert_eq!(s.passed, 0, "passing seeds with the bug");
    for r in &s.runs {
        let f = r.failure.as_ref().expect("a failure");
        assert_eq!(f.check, "catalog-index", "{}", f.message);
        assert!(
            f.message.contains("before its wait ran out"),
            "{}",
            f.message
        );
    }
}

#[test]
fn a_service_reaped_while_cut_off_leaves_the_catalog_once_its_agent_reaches_it() {
    let s = sweep(&shipped("consul-zombie-after-reap"), 0..5, None);
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    for seed in 0..5 {
        assert_eq!(metric(&s, seed, "services_reaped_count"), 1.0);
        assert_eq!(metric(&s, seed, "services_dropped_count"), 1.0);
        // Reaped at 90 s while cut off until 100 s: deregistered within a round
        // trip of the agent's first answer, far inside one full sync.
        let stay = metric(&s, seed, "zombie_stay_max_ms");
        assert!(
            stay < 1_000.0,
            "stayed {stay} ms after the agent reached the servers"
        );
        assert!(metric(&s, seed, "zombie_bound_ms") > 20_000.0);
        assert_eq!(metric(&s, seed, "calls_to_long_dead_count"), 0.0);
    }
}

#[test]
fn a_stale_server_holds_a_query_whose_index_it_has_not_reached() {
    let s = sweep(&shipped("consul-blocking-stale-index"), 0..5, None);
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    let backwards: f64 = (0..5)
        .map(|seed| metric(&s, seed, "blocking_index_backwards_count"))
        .sum();
    // The moved caller's query ran out its wait on the server behind (the
    // documented backwards case) in some seeds at least.
    assert!(backwards >= 1.0, "no query waited on the server behind");
}

#[test]
fn hysteresis_cuts_the_catalog_writes_of_a_flapping_check() {
    let plain = sweep(&shipped("consul-flapping-check"), 0..5, None);
    let damped = sweep(&shipped("consul-flapping-check-hysteresis"), 0..5, None);
    assert_eq!(plain.passed + damped.passed, 10);
    for seed in 0..5 {
        let p = metric(&plain, seed, "catalog_writes_per_min");
        let d = metric(&damped, seed, "catalog_writes_per_min");
        assert!(
            p >= 25.0,
            "seed {seed}: {p} writes a minute without hysteresis"
        );
        assert!(
            d * 2.0 < p,
            "seed {seed}: {d} with hysteresis vs {p} without"
        );
    }
}

#[test]
fn an_operator_deregistration_is_undone_by_the_agents_next_sync() {
    let s = sweep(&shipped("consul-deregistration-vs-agent"), 0..5, None);
    assert_eq!(s.passed, 5, "{:?}", s.failing_seeds);
    for seed in 0..5 {
        assert_eq!(metric(&s, seed, "operator_deregistrations_count"), 1.0);
        assert_eq!(
            metric(&s, seed, "operator_deregistrations_undone_count"),
            1.0
        );
        // Within one full sync: 15 s plus a jitter of up to 15 s.
        let undone = metric(&s, seed, "operator_deregistration_undone_max_ms");
        assert!(
            (1.0..=30_000.0).contains(&undone),
            "undone after {undone} ms"
        );
    }
}

#[test]
fn catalog_settings_that_cannot_work_are_refused_naming_the_field() {
    let with = |extra: &str| BASE.replace("callers = 1", &format!("callers = 1\n{extra}"));
    let interval = refused(&with("probe_interval_ms = 0"));
    assert!(
        interval.contains("discovery.probe_interval_ms"),
        "{interval}"
    );
    let failures = refused(&with(
        "probe_interval_ms = 1000\nfailures_before_critical = 0",
    ));
    assert!(
        failures.contains("discovery.failures_before_critical"),
        "{failures}"
    );
    let no_service = refused(
        &BASE
            .replace("nodes = 6", "nodes = 3")
            .replace("instances = 2\ncallers = 1", "instances = 0\ncallers = 0"),
    );
    assert!(
        no_service.contains("discovery.check_ttl_ms"),
        "{no_service}"
    );
    assert!(no_service.contains("service to report it"), "{no_service}");
    let unknown =
        refused(&BASE.replace("instances = 2\ncallers = 1", "instances = 0\ncallers = 3"));
    assert!(unknown.contains("discovery.callers"), "{unknown}");
    let mode = refused(&with("read_mode = \"linearizable\""));
    assert!(mode.contains("discovery.read_mode"), "{mode}");
    let flap = refused(&with("probe_flap_ms = 0"));
    assert!(flap.contains("discovery.probe_flap_ms"), "{flap}");
    let op = |body: &str| format!("{BASE}\n[[cluster.config.discovery.operator]]\n{body}\n");
    let action = refused(&op("at_ms = 1000\naction = \"purge\"\nnode = 3"));
    assert!(action.contains("discovery.operator[0].action"), "{action}");
    let node = refused(&op(
        "at_ms = 1000\naction = \"deregister-service\"\nnode = 0",
    ));
    assert!(node.contains("discovery.operator[0].node"), "{node}");
    let at = refused(&op("at_ms = 0\naction = \"deregister-node\"\nnode = 4"));
    assert!(at.contains("discovery.operator[0].at_ms"), "{at}");
}

// Discovery scenarios from production failure reports: wake-ups of a thousand
// watchers, reads while the leader is cut off, the server majority lost, a
// rolling deploy, and go-micro's missing ejection measured.

fn variant(name: &str, from: &str, to: &str) -> Scenario {
    let base = shipped(name);
    let text = std::fs::read_to_string(&base.file).unwrap();
    assert!(text.contains(from), "{name} has no {from:?}");
    Scenario::parse("variant.toml", &text.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"))
}

fn all_pass(s: &Summary, name: &str) {
    assert_eq!(s.passed, s.runs.len(), "{name}: {:?}", s.failing_seeds);
}

#[test]
fn a_thousand_watchers_wake_per_unrelated_write_only_on_the_global_index() {
    // Each scenario at 10 s and at 20 s: the second half adds only the flapping
    // job's writes (three a second), so what it adds is what they cost.
    let long = |name: &str| variant(name, "duration_ms = 10000", "duration_ms = 20000");
    let g = sweep(&shipped("consul-herd-1000"), 0..2, None);
    let s = sweep(&shipped("consul-herd-1000-service"), 0..2, None);
    let g2 = sweep(&long("consul-herd-1000"), 0..2, None);
    let s2 = sweep(&long("consul-herd-1000-service"), 0..2, None);
    for (summary, name) in [
        (&g, "global"),
        (&s, "service"),
        (&g2, "global 20 s"),
        (&s2, "service 20 s"),
    ] {
        all_pass(summary, name);
    }
    for seed in 0..2 {
        assert!(metric(&g, seed, "unrelated_writes_count") >= 25.0);
        assert_eq!(
            metric(&g, seed, "unrelated_writes_count"),
            metric(&s, seed, "unrelated_writes_count")
        );
        let (gw, sw) = (
            metric(&g, seed, "idle_wakes_per_unrelated_write"),
            metric(&s, seed, "idle_wakes_per_unrelated_write"),
        );
        // Global: most of the 1,000 watchers wake for every write elsewhere.
        assert!(
            gw >= 500.0,
            "global: {gw} idle wake-ups per unrelated write"
        );
        assert!(sw * 5.0 <= gw, "service {sw}, global {gw}");
        // The extra writes of the longer run: each wakes most watchers to an
        // answer they had on the global index, and nobody on the service's. (The
        // service's idle wake-ups come from `api`'s own writes at boot.)
        let writes = metric(&g2, seed, "unrelated_writes_count")
            - metric(&g, seed, "unrelated_writes_count");
        assert!(writes >= 25.0, "{writes} more unrelated writes");
        let idle = |a: &Summary, b: &Summary| {
            metric(b, seed, "idle_wakes_count") - metric(a, seed, "idle_wakes_count")
        };
        let (gi, si) = (idle(&g, &g2), idle(&s, &s2));
        assert!(
            gi >= 500.0 * writes,
            "global: {gi} more idle wake-ups for {writes} writes"
        );
        assert!(
            si <= writes,
            "service: {si} more idle wake-ups for {writes} writes"
        );
    }
}

#[test]
fn while_the_leader_is_cut_off_only_stale_reads_answer_behind_the_majority() {
    let modes = [
        ("default", shipped("consul-leader-loss-reads")),
        ("consistent", shipped("consul-leader-loss-reads-consistent")),
        ("stale", shipped("consul-leader-loss-reads-stale")),
    ];
    let runs: Vec<(&str, Summary)> = modes
        .iter()
        .map(|(m, s)| (*m, sweep(s, 0..3, None)))
        .collect();
    for (m, s) in &runs {
        all_pass(s, m);
    }
    for seed in 0..3 {
        for (m, s) in &runs {
            let stale = metric(s, seed, "stale_answers_count");
            match *m {
                "stale" => {
                    // The cut-off server keeps answering from its old catalog,
                    // seconds behind, and its caller never sees an error.
                    assert!(stale >= 1.0, "{m}: {stale}");
                    assert!(metric(s, seed, "stale_answer_lag_max_ms") >= 5_000.0);
                    assert_eq!(metric(s, seed, "registry_errors_count"), 0.0);
                    assert!(metric(s, seed, "removal_max_ms") >= 10_000.0);
                }
                _ => {
                    assert_eq!(stale, 0.0, "{m}");
                    // A probe interval, the sync, a 100 ms backoff from a server
                    // that names no leader yet, round trips.
                    assert!(metric(s, seed, "removal_max_ms") <= 1_250.0, "{m}");
                }
            }
        }
    }
}

#[test]
fn majority_loss_stale_cache_keeps_calling_while_fail_callers_fail() {
    let stale = sweep(&shipped("consul-majority-loss"), 0..3, None);
    let fail = sweep(&shipped("consul-majority-loss-fail"), 0..3, None);
    all_pass(&stale, "stale");
    all_pass(&fail, "fail");
    for seed in 0..3 {
        // Stale on error: out of instances only before the first answer at boot;
        // the dead one is called to the end.
        assert!(metric(&stale, seed, "calls_no_instance_count") <= 30.0);
        assert!(metric(&stale, seed, "dead_call_window_max_ms") >= 55_000.0);
        assert!(metric(&stale, seed, "call_attempts_ok_count") >= 2_500.0);
        // Fail: the cache expires 60 s after the last answer; then every call fails.
        let none = metric(&fail, seed, "calls_no_instance_count");
        assert!(none >= 600.0, "fail: {none} calls without an instance");
        assert!(
            metric(&fail, seed, "call_attempts_ok_count")
                < metric(&stale, seed, "call_attempts_ok_count")
        );
        assert!(metric(&stale, seed, "registry_errors_count") >= 5.0);
    }
}

#[test]
fn a_graceful_rolling_deploy_fails_few_calls() {
    let s = sweep(&shipped("consul-rolling-deploy"), 0..3, None);
    all_pass(&s, "rolling");
    for seed in 0..3 {
        assert_eq!(metric(&s, seed, "stops_count"), 4.0);
        // Deregistered before it stops: gone from every set within a sync and a
        // blocking query's round trips.
        assert!(metric(&s, seed, "removal_max_ms") <= 100.0);
        assert!(metric(&s, seed, "dead_call_window_max_ms") <= 100.0);
        assert!(metric(&s, seed, "failed_calls_per_1000") <= 10.0);
    }
}

#[test]
fn ejection_after_a_failed_call_spares_most_dead_calls() {
    let off = sweep(&shipped("consul-majority-loss"), 0..3, None);
    let on = sweep(
        &variant(
            "consul-majority-loss",
            "caller_profile = \"go-micro\"",
            "caller_profile = \"go-micro\"\neject_after_failures = 1\neject_ms = 30000",
        ),
        0..3,
        None,
    );
    all_pass(&off, "off");
    all_pass(&on, "on");
    for seed in 0..3 {
        let (d_off, d_on) = (
            metric(&off, seed, "dead_calls_count"),
            metric(&on, seed, "dead_calls_count"),
        );
        assert!(
            d_on * 10.0 <= d_off,
            "dead calls: {d_on} with ejection, {d_off} without"
        );
        assert!(
            metric(&on, seed, "failed_calls_per_1000") * 10.0
                <= metric(&off, seed, "failed_calls_per_1000")
        );
    }
}

#[test]
fn watchers_and_deploys_that_cannot_work_are_refused_naming_the_field() {
    let w = refused(&BASE.replace("callers = 1", "callers = 1\nwatchers = 0"));
    assert!(w.contains("discovery.watchers"), "{w}");
    let w = refused(&BASE.replace("callers = 1", "callers = 1\nwatchers = 1001"));
    assert!(w.contains("discovery.watchers"), "{w}");
    let e = refused(&BASE.replace("callers = 1", "callers = 1\neject_after_failures = 1"));
    assert!(e.contains("discovery.eject_after_failures"), "{e}");
    let d = refused(&BASE.replace(
        "callers = 1",
        "callers = 1\ndeploy_start_ms = 1000\ndeploy_every_ms = 1000\ndeploy_down_ms = 1000",
    ));
    assert!(d.contains("discovery.deploy_down_ms"), "{d}");
}

// consul#3569 and #1001: TTL checks across an agent restart, under each way of
// restoring them.

#[test]
fn a_restart_that_restores_a_whole_ttl_keeps_a_hung_service_passing_past_the_bound() {
    let full = sweep(&shipped("consul-ttl-across-restart"), 0..5, None);
    let remaining = sweep(&shipped("consul-ttl-across-restart-remaining"), 0..5, None);
    let none = sweep(&shipped("consul-ttl-across-restart-none"), 0..5, None);
    // `passed` counts the seeds where the lesson held: full-ttl must fail
    // passing-bounded, the other two must pass.
    assert_eq!(full.passed, 5, "full-ttl: {:?}", full.failing_seeds);
    assert_eq!(remaining.passed, 5, "{:?}", remaining.failing_seeds);
    assert_eq!(none.passed, 5, "{:?}", none.failing_seeds);
    for seed in 0..5 {
        let bound = metric(&full, seed, "passing_bound_check_ms");
        // The whole new TTL (30 s from the restart at 54 s) outlives the bound
        // counted from the hang at 30 s.
        assert!(metric(&full, seed, "dead_call_window_max_ms") > bound);
        // Keeping the saved expiry drops the hung instance within the TTL of its
        // last report, as without a restart.
        let kept = metric(&remaining, seed, "removal_max_ms");
        assert!(kept < 31_000.0 && kept < bound, "remaining-ttl: {kept} ms");
        // Restoring nothing drops it at the restart, and drops the healthy
        // instance too until its service reports again: calls find no instance.
        assert!(metric(&none, seed, "removal_max_ms") < 25_000.0);
        assert!(
            metric(&none, seed, "calls_no_instance_count")
                > metric(&remaining, seed, "calls_no_instance_count") + 5.0
        );
    }
}

#[test]
fn restart_settings_that_cannot_work_are_refused_naming_the_field() {
    let mode = refused(&BASE.replace("callers = 1", "callers = 1\nttl_restore = \"bogus\""));
    assert!(mode.contains("ttl_restore"), "{mode}");
    assert!(mode.contains("remaining-ttl"), "{mode}");
    let both = refused(&format!(
        "{}\n[[cluster.config.discovery.operator]]\nat_ms = 1000\naction = \"restart-agent\"\nnode = 3\n",
        BASE.replace("callers = 1", "callers = 1\ndeploy_start_ms = 2000")
    ));
    assert!(both.contains("operator"), "{both}");
    assert!(both.contains("restart-agent"), "{both}");
}
