//! `faultline compare-discovery`: three discovery designs under the same faults,
//! one table. Every (design, fault) pair is a shipped scenario,
//! `scenarios/discovery-<design>-<fault>.toml`, with the same instances, callers,
//! call rate and durations; this runs each over the same seeds and writes the
//! discovery figures ([`crate::discovery::metrics`]) side by side, as Markdown.
//!
//! The designs: etcd (leases, watches; [`crate::etcd`]), Consul (agents' checks, a
//! Raft catalog, blocking queries; [`crate::consul`]) and gossip-only discovery
//! (SWIM metadata, no servers; [`crate::gossip_discovery`]). A server fault has
//! nothing to strike in the last: its file says so and runs without it.
//!
//! The same request gives the same file, byte for byte: every figure is simulated
//! (no wall-clock time), and seeds are run in order.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::registry;
use crate::run::{RunRequest, SeedReport};
use crate::scenario::Scenario;

/// A discovery design: its name in scenario file names, and its registry servers.
#[derive(Clone, Copy, Debug)]
pub struct Design {
    /// `etcd`, `consul` or `gossip` (`scenarios/discovery-<name>-<fault>.toml`).
    pub name: &'static str,
    /// How the table names it.
    pub title: &'static str,
    /// Registry servers: nodes `0..servers` (0 for gossip-only discovery).
    pub servers: usize,
}

/// The designs compared, in table order.
pub const DESIGNS: [Design; 3] = [
    Design {
        name: "etcd",
        title: "etcd",
        servers: 3,
    },
    Design {
        name: "consul",
        title: "Consul",
        servers: 3,
    },
    Design {
        name: "gossip",
        title: "gossip-only",
        servers: 0,
    },
];

/// A fault of the set: its name in scenario file names and what it does.
#[derive(Clone, Copy, Debug)]
pub struct FaultCase {
    /// The name (`scenarios/discovery-<design>-<name>.toml`).
    pub name: &'static str,
    /// What it does, for the table.
    pub what: &'static str,
    /// Whether it strikes the registry's servers (nothing to strike without them).
    pub on_servers: bool,
}

/// The fault set, in table order.
pub const FAULTS: [FaultCase; 8] = [
    FaultCase {
        name: "instance-crash",
        what: "an instance crashes at 10 s, for good",
        on_servers: false,
    },
    FaultCase {
        name: "instance-unhealthy",
        what: "an instance answers errors 10-30 s, its process alive (service-unhealthy)",
        on_servers: false,
    },
    FaultCase {
        name: "instance-slow",
        what: "an instance answers nothing 10-30 s, its process alive (service-hang)",
        on_servers: false,
    },
    FaultCase {
        name: "instance-partitioned",
        what: "an instance cut off from the servers 10-30 s (callers still reach it)",
        on_servers: true,
    },
    FaultCase {
        name: "caller-partitioned",
        what: "a caller cut off from the servers 10-30 s; an instance crashes at 12 s",
        on_servers: true,
    },
    FaultCase {
        name: "leader-crash",
        what: "the servers' Raft leader crashes 10-12 s; an instance crashes at 12 s",
        on_servers: true,
    },
    FaultCase {
        name: "majority-loss",
        what: "2 of 3 servers crash 10-30 s; an instance crashes at 15 s",
        on_servers: true,
    },
    FaultCase {
        name: "slow-agents",
        what: "every instance node CPU-starved 10-30 s (handlers 100-900 ms late)",
        on_servers: false,
    },
];

/// In `majority-loss`, how long after the instance's crash (15 s) the servers
/// come back (30 s), in ms: a design that removes it sooner kept discovery working
/// without a majority.
pub const MAJORITY_BACK_AFTER_CRASH_MS: f64 = 15_000.0;

/// Most seeds a comparison runs per scenario.
pub const SEEDS_MAX: u64 = 1_000;

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareRequest {
    /// Seeds `0..seeds` of every scenario (1 to [`SEEDS_MAX`]).
    pub seeds: u64,
    /// Seeds run at once (at least 1); the table does not depend on it.
    pub jobs: usize,
    /// Where the table goes.
    pub out: PathBuf,
}

/// One row's figures over the seeds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// The design's name.
    pub design: &'static str,
    /// The fault's name.
    pub fault: &'static str,
    /// Seeds whose checks passed.
    pub passed: usize,
    /// Seeds run.
    pub seeds: usize,
    /// Down episodes (an instance crashed or unhealthy while listed), over the seeds.
    pub stops: f64,
    /// Median over the seeds of the run's median removal time, ms (`None`: no
    /// episode).
    pub removal_p50_ms: Option<f64>,
    /// Highest over the seeds of the run's 99th percentile removal time, ms.
    pub removal_p99_ms: Option<f64>,
    /// Longest a down instance stayed in some caller's set, over the seeds, ms
    /// (to the end of the run if never removed).
    pub stale_view_max_ms: Option<f64>,
    /// Seeds in which some down instance was never removed.
    pub never_removed_seeds: usize,
    /// Seeds in which some down instance came back (healed) before any removal.
    pub back_before_removed_seeds: usize,
    /// Failed calls per 1,000, mean over the seeds.
    pub failed_per_1000: f64,
    /// Calls to dead instances, mean over the seeds.
    pub dead_calls: f64,
    /// The longest window of calls to a dead instance, over the seeds, ms.
    pub dead_call_window_max_ms: f64,
    /// Registrations that expired while their owner was alive, mean over the seeds.
    pub expired_while_alive: f64,
    /// Messages sent per second by each server, mean (`None`: no servers).
    pub server_msgs_per_s: Option<f64>,
    /// Messages sent per second by each node, mean over all nodes.
    pub node_msgs_per_s: f64,
}

/// Runs every (design, fault) scenario over the request's seeds: the rows in table
/// order, or an error naming what could not run.
pub fn compare(request: &CompareRequest, mut on_row: impl FnMut(&Row)) -> Result<Vec<Row>, String> {
    if request.seeds == 0 || request.seeds > SEEDS_MAX {
        return Err(format!(
            "--seeds {}: must be between 1 and {SEEDS_MAX}",
            request.seeds
        ));
    }
    if request.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let mut rows = Vec::with_capacity(DESIGNS.len() * FAULTS.len());
    for design in DESIGNS {
        for fault in FAULTS {
            let name = format!("discovery-{}-{}", design.name, fault.name);
            let scenario = Scenario::find(&name).map_err(|e| e.to_string())?;
            let protocol = registry::for_scenario(&scenario).map_err(|e| e.to_string())?;
            let run = RunRequest {
                seeds: (0..request.seeds).collect(),
                jobs: request.jobs,
                ..RunRequest::default()
            };
            let summary = (protocol.run)(&scenario, &run).map_err(|e| e.to_string())?;
            let mut runs = summary.runs.clone();
            runs.sort_by_key(|r| r.seed);
            let row = row(design, fault, scenario.nodes, summary.passed, &runs);
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn metric(r: &SeedReport, name: &str) -> Option<f64> {
    r.metrics.get(name).copied()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[(v.len() - 1) / 2])
}

fn max(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    v.into_iter().reduce(f64::max)
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = v
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The figures of one scenario's runs (sorted by seed).
fn row(design: Design, fault: FaultCase, nodes: usize, passed: usize, runs: &[SeedReport]) -> Row {
    let all = |name: &'static str| runs.iter().filter_map(move |r| metric(r, name));
    let per_s = |r: &SeedReport, sent: f64| sent * 1000.0 / r.sim_ms.max(1.0);
    let server_msgs_per_s = (design.servers > 0).then(|| {
        mean(runs.iter().map(|r| {
            let sent: f64 = (0..design.servers)
                .map(|n| metric(r, &format!("messages_sent.n{n}")).unwrap_or(0.0))
                .sum();
            per_s(r, sent) / design.servers as f64
        }))
    });
    Row {
        design: design.name,
        fault: fault.name,
        passed,
        seeds: runs.len(),
        stops: all("stops_count").sum(),
        removal_p50_ms: median(all("removal_p50_ms").collect()),
        removal_p99_ms: max(all("removal_p99_ms")),
        stale_view_max_ms: max(all("removal_max_ms")),
        never_removed_seeds: all("never_removed_count").filter(|&n| n > 0.0).count(),
        back_before_removed_seeds: all("back_before_removed_count")
            .filter(|&n| n > 0.0)
            .count(),
        failed_per_1000: mean(all("failed_calls_per_1000")),
        dead_calls: mean(all("dead_calls_count")),
        dead_call_window_max_ms: max(all("dead_call_window_max_ms")).unwrap_or(0.0),
        expired_while_alive: mean(all("expired_while_alive_count")),
        server_msgs_per_s,
        node_msgs_per_s: mean(
            runs.iter()
                .map(|r| per_s(r, metric(r, "messages_sent").unwrap_or(0.0)) / nodes as f64),
        ),
    }
}

/// Whether discovery kept working without a server majority: in `majority-loss`,
/// the crashed instance left every caller's set before the servers came back.
pub fn available_without_majority(row: &Row) -> bool {
    row.never_removed_seeds == 0
        && row
            .removal_p99_ms
            .is_some_and(|ms| ms < MAJORITY_BACK_AFTER_CRASH_MS)
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) => format!("{v:.0} ms"),
        None => "—".into(),
    }
}

/// The Markdown table of `rows`, saying which command and seeds made it.
pub fn render(rows: &[Row], seeds: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Discovery under faults: etcd, Consul, gossip-only\n");
    let _ = writeln!(
        s,
        "Regenerate with `faultline compare-discovery --seeds {seeds}` (seeds 0..{seeds} of \
         every scenario; the same command writes the same file). Each row is one shipped \
         scenario, `scenarios/discovery-<design>-<fault>.toml`: 3 servers (none for \
         gossip-only), 4 instances and 3 callers; each caller calls every 100 ms with a \
         500 ms timeout and gRPC's round robin with ejection (profile `etcd`), 40 s of run, \
         faults from 10 s. etcd: 5 s leases, watches. Consul: a probe check every 1 s \
         (500 ms timeout), blocking `?passing` queries in `default` mode with a 10 s wait, \
         every server and agent in the LAN gossip pool (SWIM with Lifeguard: the leader \
         turns a failed member's `serfHealth` critical). Gossip-only: SWIM with memberlist's LAN defaults and \
         Lifeguard; a server fault has nothing to strike there, so its row runs without it.\n"
    );
    let _ = writeln!(
        s,
        "Columns: **detect p50 / p99**: from an instance going down (crash, or its \
         application failing) to its removal from every caller's set (median of the \
         seeds' medians; highest of their 99th percentiles); **stale max**: the longest \
         a down instance stayed in some caller's set (to the end of the run when never \
         removed; *never* counts the seeds where that happened; *not removed*: the \
         instance stayed listed until its fault healed); **failed ‰**: failed \
         calls per 1,000; **dead calls**: calls sent to a dead instance (mean per run); \
         **dead window**: the longest stretch of calls to one dead instance; **live \
         expired**: registrations expired under a live owner; **msg/s server**, \
         **msg/s node**: messages sent per second by each server, and by each node on \
         average; **passed**: seeds whose checks passed.\n"
    );
    let _ = writeln!(
        s,
        "| design | fault | detect p50 | detect p99 | stale max | never | failed ‰ | dead calls | dead window | live expired | msg/s server | msg/s node | passed |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let titles: BTreeMap<&str, &str> = DESIGNS.iter().map(|d| (d.name, d.title)).collect();
    for r in rows {
        let design = titles.get(r.design).copied().unwrap_or(r.design);
        let server = match r.server_msgs_per_s {
            Some(v) => format!("{v:.1}"),
            None => "—".into(),
        };
        let (p50, p99) = match (r.removal_p50_ms, r.stops > 0.0) {
            (None, true) => ("not removed".to_string(), "not removed".to_string()),
            _ => (ms(r.removal_p50_ms), ms(r.removal_p99_ms)),
        };
        let _ = writeln!(
            s,
            "| {design} | {} | {p50} | {p99} | {} | {}/{} | {:.1} | {:.1} | {} | {:.1} | {server} | {:.1} | {}/{} |",
            r.fault,
            ms(r.stale_view_max_ms),
            r.never_removed_seeds,
            r.seeds,
            r.failed_per_1000,
            r.dead_calls,
            ms(Some(r.dead_call_window_max_ms)),
            r.expired_while_alive,
            r.node_msgs_per_s,
            r.passed,
            r.seeds,
        );
    }
    let _ = writeln!(s, "\nThe faults:\n");
    for f in FAULTS {
        let note = if f.on_servers {
            " (gossip-only: no servers, nothing to strike)"
        } else {
            ""
        };
        let _ = writeln!(s, "- `{}`: {}{note}.", f.name, f.what);
    }
    let _ = writeln!(
        s,
        "\n## Without a server majority (CP or AP)\n\nIn `majority-loss` an instance \
         crashes 5 s into the loss; the servers come back 15 s after it. Discovery that \
         removes it before then kept working without a majority.\n"
    );
    let _ = writeln!(s, "| design | removal (p99) | discovery during the loss |");
    let _ = writeln!(s, "|---|---:|---|");
    for r in rows.iter().filter(|r| r.fault == "majority-loss") {
        let design = titles.get(r.design).copied().unwrap_or(r.design);
        let verdict = match available_without_majority(r) {
            true => "keeps working (AP)",
            false => "stops until a majority is back (CP)",
        };
        let _ = writeln!(s, "| {design} | {} | {verdict} |", ms(r.removal_p99_ms));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_seed_counts_and_jobs_are_refused_by_name() {
        let req = |seeds, jobs| CompareRequest {
            seeds,
            jobs,
            out: PathBuf::from("unused.md"),
        };
        let e = compare(&req(0, 1), |_| {}).unwrap_err();
        assert!(e.contains("--seeds"), "{e}");
        let e = compare(&req(SEEDS_MAX + 1, 1), |_| {}).unwrap_err();
        assert!(e.contains("--seeds"), "{e}");
        let e = compare(&req(1, 0), |_| {}).unwrap_err();
        assert!(e.contains("--jobs"), "{e}");
    }

    #[test]
    fn availability_needs_every_seed_to_remove_before_the_servers_return() {
        let mut r = Row {
            removal_p99_ms: Some(4_000.0),
            ..Row::default()
        };
        assert!(available_without_majority(&r));
        r.never_removed_seeds = 1;
        assert!(!available_without_majority(&r));
        r.never_removed_seeds = 0;
        r.removal_p99_ms = Some(16_000.0);
        assert!(!available_without_majority(&r));
    }
}
