//! Reproduces the SWIM and Lifeguard papers' figures with faultline's simulator and
//! prints markdown tables (results/gossip.md holds a run of each).
//!
//! ```text
//! cargo run --release --example gossip_paper -- detection 2000
//! cargo run --release --example gossip_paper -- dissemination
//! cargo run --release --example gossip_paper -- false-positives 40
//! cargo run --release --example gossip_paper -- lifeguard 20
//! ```
//! The number is the seed count per row (defaults below). Scenarios are built in code
//! as TOML and run with `faultline::run::run::<Swim>` on two threads.

use std::fmt::Write as _;

use faultline::gossip::Swim;
use faultline::run::{run, RunRequest, SeedReport, Status};
use faultline::scenario::Scenario;

/// SWIM as the paper analyses it: random targets, k ping-req relays, no Lifeguard.
fn swim_config(k: usize) -> String {
    format!(
        "probe_order = \"random\"\nindirect_checks = {k}\nsuspicion_mult = 5\n\
         lifeguard_lhm = false\nlifeguard_dynamic_suspicion = false\nlifeguard_buddy = false\n"
    )
}

/// Lifeguard as its paper's tables run it: α = 5, β = 6, K = 3, every part on.
fn lifeguard_config(k: usize) -> String {
    format!(
        "indirect_checks = {k}\nsuspicion_mult = 5\nsuspicion_max_timeout_mult = 6\n\
         suspicion_confirmations = 3\nlifeguard_lhm = true\n\
         lifeguard_dynamic_suspicion = true\nlifeguard_buddy = true\n"
    )
}

fn scenario(name: &str, nodes: usize, duration_ms: u64, config: &str, rest: &str) -> Scenario {
    let text = format!(
        "name = \"{name}\"\ndescription = \"{name}\"\nduration_ms = {duration_ms}\n\
         [cluster]\nprotocol = \"swim\"\nnodes = {nodes}\n[cluster.config]\n{config}\n{rest}"
    );
    Scenario::parse(&format!("{name}.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Runs `seeds`, asserting each passed, and returns the per-seed reports.
fn sweep(s: &Scenario, seeds: std::ops::Range<u64>) -> Vec<SeedReport> {
    let request = RunRequest {
        seeds: seeds.collect(),
        jobs: 2,
        ..RunRequest::default()
    };
    let summary = run::<Swim>(s, &request).unwrap_or_else(|e| panic!("{e}"));
    for r in &summary.runs {
        assert_eq!(
            r.status,
            Status::Passed,
            "{} seed {}: {:?}",
            s.name,
            r.seed,
            r.failure
        );
    }
    summary.runs
}

fn values(runs: &[SeedReport], metric: &str) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.metrics.get(metric).copied())
        .collect()
}

fn mean(xs: &[f64]) -> f64 {
    assert!(!xs.is_empty(), "no values");
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Nearest-rank quantile.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Standard error of the mean.
fn sem(xs: &[f64]) -> f64 {
    let m = mean(xs);
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64;
    (var / xs.len() as f64).sqrt()
}

/// One crash of a random member at a random time in 5..10 s, down to the end.
const ONE_CRASH: &str = "[network]\nlatency = { dist = \"uniform\", min_ms = 1, max_ms = 10 }\n\
    [random]\nkinds = [\"crash\"]\nstart_ms = 4999\ninterval_ms = { min = 1, max = 5001 }\n\
    duration_ms = { min = 600000, max = 600000 }\nmax_faults = 1\nmax_down = 1\ntorn_rate = 0.0\n\
    [liveness]\nquiesce_ms = 120000\n";

fn detection(seeds: u64) -> String {
    let mut out = String::new();
    let s = Scenario::find("gossip-swim-paper").unwrap_or_else(|e| panic!("{e}"));
    let runs = sweep(&s, 0..seeds);
    let periods = values(&runs, "first_detection_periods_mean");
    let first = values(&runs, "first_detection_ms_mean");
    let load = values(&runs, "messages_per_member_per_period");
    let bytes = values(&runs, "bytes_per_member_per_period");
    let n = s.nodes as f64;
    let exact = 1.0 / (1.0 - (1.0 - 1.0 / (n - 1.0)).powf(n - 1.0));
    let e = std::f64::consts::E;
    writeln!(
        out,
        "gossip-swim-paper, {} seeds (one crash each):\n",
        runs.len()
    )
    .unwrap();
    writeln!(
        out,
        "| quantity | measured (mean ± s.e.) | p50 | p99 | paper |"
    )
    .unwrap();
    writeln!(out, "| --- | --- | --- | --- | --- |").unwrap();
    writeln!(
        out,
        "| first detection, probe periods | {:.3} ± {:.3} | {} | {} | e/(e−1) = {:.3} (n → ∞); {exact:.3} for 31 pickers |",
        mean(&periods),
        sem(&periods),
        quantile(&periods, 0.5),
        quantile(&periods, 0.99),
        e / (e - 1.0)
    )
    .unwrap();
    writeln!(
        out,
        "| first detection (crash → first suspicion), ms | {:.0} ± {:.0} | {:.0} | {:.0} | — (≈ one period more than the pick, see text) |",
        mean(&first),
        sem(&first),
        quantile(&first, 0.5),
        quantile(&first, 0.99)
    )
    .unwrap();
    writeln!(
        out,
        "| messages sent per member per period | {:.2} | {:.2} | {:.2} | ≈ 2.0 (Fig. 2, no gossip timer) |",
        mean(&load),
        quantile(&load, 0.5),
        quantile(&load, 0.99)
    )
    .unwrap();
    writeln!(
        out,
        "| bytes sent per member per period | {:.0} | {:.0} | {:.0} | ≤ 135 B per message |",
        mean(&bytes),
        quantile(&bytes, 0.5),
        quantile(&bytes, 0.99)
    )
    .unwrap();
    out
}

fn dissemination(scale: u64) -> String {
    let mut out = String::new();
    writeln!(out, "SWIM (random targets, k = 1, gossip every 200 ms to 3, λ = 4), one crash per run; dissemination = first member holds it dead → every member does:\n").unwrap();
    writeln!(out, "| n | seeds | dissemination mean ms | p50 | p99 | per ln n, ms | first detection, periods | msgs/member/period | wall s |").unwrap();
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    .unwrap();
    for (n, seeds) in [
        (8, 100),
        (16, 100),
        (32, 100),
        (64, 60),
        (128, 40),
        (256, 20),
        (512, 10),
    ] {
        let seeds = (seeds * scale).max(2);
        let s = scenario(
            &format!("gossip-dissemination-{n}"),
            n,
            40_000,
            &swim_config(1),
            ONE_CRASH,
        );
        let started = std::time::Instant::now();
        let runs = sweep(&s, 0..seeds);
        let wall = started.elapsed().as_secs_f64();
        let spread: Vec<f64> = runs
            .iter()
            .filter_map(|r| {
                let full = r.metrics.get("full_dissemination_ms_mean")?;
                let first = r.metrics.get("first_dead_ms_mean")?;
                Some(full - first)
            })
            .collect();
        let periods = values(&runs, "first_detection_periods_mean");
        let load = values(&runs, "messages_per_member_per_period");
        writeln!(
            out,
            "| {n} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {wall:.1} |",
            runs.len(),
            mean(&spread),
            quantile(&spread, 0.5),
            quantile(&spread, 0.99),
            mean(&spread) / (n as f64).ln(),
            mean(&periods),
            mean(&load),
        )
        .unwrap();
    }
    out
}

/// SWIM §3.1: probability that a live member is falsely detected in a period by the
/// basic protocol, q_f (1 − q²)(1 − q_f q⁴)^k e^{q_f}/(e^{q_f} − 1) with q_f = 1.
fn paper_fp(loss: f64, k: i32) -> f64 {
    let q = 1.0 - loss;
    let e = std::f64::consts::E;
    (1.0 - q * q) * (1.0 - q.powi(4)).powi(k) * e / (e - 1.0)
}

const FP_RUN_MS: u64 = 60_000;
const LOSS_FROM_MS: u64 = 1_000;

fn false_positives(seeds: u64) -> String {
    let mut out = String::new();
    writeln!(out, "32 members, random targets, no crash, 60 s per run, {seeds} seeds per row; loss on every message from 1 s to 60 s; a false detection is a failed probe of a live member (each one a detection in SWIM's basic protocol); per member per probe period:\n").unwrap();
    writeln!(out, "| loss | k | measured | paper formula | (1−q²)(1−q⁴)^k | false deaths per run (with suspicion) |").unwrap();
    writeln!(out, "| --- | --- | --- | --- | --- | --- |").unwrap();
    for k in [1, 3] {
        for loss in [0.0, 0.01, 0.02, 0.05, 0.10, 0.15, 0.20] {
            // Loss from 1 s (after the join) to the end of the run, healed for the
            // liveness phase: under constant loss some live member is always suspected
            // somewhere, so the group would never be seen converged.
            let rest = format!(
                "[network]\nlatency = {{ dist = \"uniform\", min_ms = 1, max_ms = 10 }}\n\
                 [[faults]]\nkind = \"loss\"\nat_ms = {LOSS_FROM_MS}\nrate = {loss}\n\
                 [liveness]\nquiesce_ms = 120000\n"
            );
            let s = scenario(
                &format!("gossip-fp-k{k}-loss{loss}"),
                32,
                FP_RUN_MS,
                &swim_config(k as usize),
                &rest,
            );
            let runs = sweep(&s, 0..seeds);
            // Per member per period of the lossy window (the liveness phase has no loss).
            let member_periods = 32.0 * (FP_RUN_MS - LOSS_FROM_MS) as f64 / 1000.0;
            let rate: Vec<f64> = values(&runs, "false_positive_suspect")
                .iter()
                .map(|f| f / member_periods)
                .collect();
            let dead = values(&runs, "false_positive_dead");
            let q = 1.0 - loss;
            writeln!(
                out,
                "| {:.0}% | {k} | {:.2e} | {:.2e} | {:.2e} | {:.2} |",
                loss * 100.0,
                mean(&rate),
                paper_fp(loss, k),
                (1.0 - q * q) * (1.0 - q.powi(4)).powi(k),
                mean(&dead),
            )
            .unwrap();
        }
    }
    out
}

/// `slow` members starved together for `d_ms`, then well for `i_ms`, repeated from 5 s
/// to `until_ms` (Lifeguard's Interval experiment, fully correlated anomalies): a
/// `slow` fault on each, whose handlers of the messages it receives start late by a
/// delay uniform in `delay` (ms). With `timers = false` its timers fire on time, so
/// its probes time out on acks that already arrived and it suspects healthy members,
/// as a CPU-starved agent does; with `timers = true` they wait in line too.
fn slow_faults(
    slow: &[usize],
    d_ms: u64,
    i_ms: u64,
    delay: (u64, u64),
    timers: bool,
    until_ms: u64,
) -> String {
    let mut out = String::new();
    let mut t = 5_000;
    while t + d_ms < until_ms {
        for &node in slow {
            writeln!(
                out,
                "[[faults]]\nkind = \"slow\"\nat_ms = {t}\nheal_ms = {}\nnode = {node}\n\
                 delay = {{ dist = \"uniform\", min_ms = {}, max_ms = {} }}\ntimers = {timers}",
                t + d_ms,
                delay.0,
                delay.1
            )
            .unwrap();
        }
        t += d_ms + i_ms;
    }
    out
}

fn lifeguard(seeds: u64) -> String {
    let mut out = String::new();
    let n = 128;
    let slow = [5, 37, 70, 101];
    writeln!(out, "{n} members, k = 3, α = 5; members {slow:?} starved together for D (a `slow` fault: each message they receive is handled late by a delay uniform in the given range; their timers on time, or late in line with the messages), then well for I, repeated from 5 s to 120 s; {seeds} seeds per row. FP: live members declared dead (each declaration by a member whose own suspicion timed out), about anyone; FP about healthy: about members not slow within the last suspicion window; FP−: by healthy members about healthy members.\n").unwrap();
    writeln!(out, "| D ms | I ms | handler delay ms | timers | config | FP | FP about healthy | FP− | false suspicions | msgs/member/period | bytes/member/period |").unwrap();
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    .unwrap();
    for (d, i, delay, timers) in [
        (16_000, 4_000, (2_000, 6_000), false),
        (16_000, 4_000, (8_000, 16_000), false),
        (16_000, 4_000, (8_000, 16_000), true),
    ] {
        for (label, config) in [("SWIM", swim_config(3)), ("Lifeguard", lifeguard_config(3))] {
            let config = config.replace("probe_order = \"random\"\n", "");
            let rest = format!(
                "[network]\nlatency = {{ dist = \"uniform\", min_ms = 1, max_ms = 10 }}\n{}\
                 [liveness]\nquiesce_ms = 180000\n",
                slow_faults(&slow, d, i, delay, timers, 120_000)
            );
            let s = scenario(
                &format!("gossip-lifeguard-{label}-{d}-{i}"),
                n,
                120_000,
                &config,
                &rest,
            );
            let runs = sweep(&s, 0..seeds);
            let total = |m: &str| values(&runs, m).iter().sum::<f64>();
            writeln!(
                out,
                "| {d} | {i} | {}–{} | {} | {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} |",
                delay.0,
                delay.1,
                if timers { "late" } else { "on time" },
                total("false_positive_dead"),
                total("false_positive_dead_about_healthy"),
                total("false_positive_dead_healthy"),
                total("false_positive_suspect"),
                mean(&values(&runs, "messages_per_member_per_period")),
                mean(&values(&runs, "bytes_per_member_per_period")),
            )
            .unwrap();
        }
    }
    writeln!(
        out,
        "\nDetection latency of one crash (no slow members), {n} members, {} seeds per row, ms:\n",
        seeds * 5
    )
    .unwrap();
    writeln!(
        out,
        "| config | p50 first | p99 first | p99.9 first | p50 full | p99 full | p99.9 full |"
    )
    .unwrap();
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |").unwrap();
    for (label, config) in [("SWIM", swim_config(3)), ("Lifeguard", lifeguard_config(3))] {
        let config = config.replace("probe_order = \"random\"\n", "");
        let s = scenario(
            &format!("gossip-lifeguard-latency-{label}"),
            n,
            60_000,
            &config,
            ONE_CRASH,
        );
        let runs = sweep(&s, 0..seeds * 5);
        let first = values(&runs, "first_dead_ms_mean");
        let full = values(&runs, "full_dissemination_ms_mean");
        writeln!(
            out,
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            quantile(&first, 0.5),
            quantile(&first, 0.99),
            quantile(&first, 0.999),
            quantile(&full, 0.5),
            quantile(&full, 0.99),
            quantile(&full, 0.999),
        )
        .unwrap();
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("");
    let count = |default: u64| {
        args.get(1)
            .map(|s| s.parse::<u64>().expect("a seed count"))
            .unwrap_or(default)
    };
    let started = std::time::Instant::now();
    let table = match what {
        "detection" => detection(count(2000)),
        "dissemination" => dissemination(count(1)),
        "false-positives" => false_positives(count(40)),
        "lifeguard" => lifeguard(count(20)),
        _ => {
            eprintln!("usage: gossip_paper detection|dissemination|false-positives|lifeguard [N]");
            std::process::exit(2);
        }
    };
    println!("{table}");
    println!("(wall time {:.1} s)", started.elapsed().as_secs_f64());
}
