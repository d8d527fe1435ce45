//! Random fault schedules on the in-test network: the correct protocol keeps every
//! invariant; each injected safety bug is caught by one.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::net::Net;
use crate::kv::{KvWorkload, OpMix};
use crate::raft::{Bugs, RaftConfig};

#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Crashes, restarts, partitions and heals at random.
    Mixed,
    /// The 6.824 Figure 8 test: crash the leader after a short random delay; keep
    /// at least a majority up. Many clients, so short-lived leaders get proposals.
    Figure8,
    /// Dueling candidates: no PreVote, narrow timeouts, heavy duplication and jitter,
    /// nodes crashing and restarting fast.
    Elections,
}

/// Runs `secs` seconds of faults in `style` with clients; returns the first violation.
pub fn run(seed: u64, bugs: Bugs, secs: u64, style: Style) -> Option<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cfg = RaftConfig {
        snapshot_threshold_entries: 40,
        ..RaftConfig::default()
    };
    if let Style::Elections = style {
        cfg.pre_vote = false;
        cfg.election_timeout_ms_max = 170;
    }
    let n = 5;
    let mut net = Net::new(n, cfg, bugs, seed);
    net.panic_on_violation = false;
    net.jitter_us = 20_000;
    net.loss = 0.02;
    net.dup = 0.05;
    // Syncs take a millisecond, so crashes land while writes are in flight and tear
    // them: recovery's gap and term-regression paths run.
    net.torn = true;
    net.sync_latency = Duration::from_millis(1);
    if let Style::Elections = style {
        net.dup = 0.3;
        net.jitter_us = 30_000;
    }
    let w = KvWorkload {
        clients: if let Style::Figure8 = style { 10 } else { 3 },
        think_time_ms: if let Style::Figure8 = style { 1 } else { 20 },
        mix: OpMix {
            get: 20,
            put: 30,
            append: 30,
            delete: 0,
            cas: 20,
        },
        ..KvWorkload::default()
    };
    net.add_clients(w, seed);
    let end = Duration::from_secs(secs);
    while net.now < end && net.violation.is_none() {
        if let Style::Figure8 = style {
            let wait = if rng.gen_bool(0.1) {
                rng.gen_range(0..500)
            } else {
                rng.gen_range(0..13)
            };
            net.run_for(Duration::from_millis(wait));
            if let Some(l) = net.leader() {
                net.crash(l);
            }
            let up = net.nodes.iter().filter(|p| p.is_some()).count();
            if up < 3 {
                let down: Vec<_> = (0..n).filter(|&i| net.nodes[i].is_none()).collect();
                net.start(down[rng.gen_range(0..down.len())]);
            }
            continue;
        }
        if let Style::Elections = style {
            net.run_for(Duration::from_millis(rng.gen_range(0..60)));
            let victim = rng.gen_range(0..n);
            if net.nodes[victim].is_some() {
                net.crash(victim);
                net.run_for(Duration::from_millis(rng.gen_range(0..30)));
                net.start(victim);
            }
            continue;
        }
        let wait = Duration::from_millis(rng.gen_range(10..400));
        net.run_for(wait);
        match rng.gen_range(0..10) {
            0..=2 => {
                // Crash the leader, or anyone.
                let victim = match net.leader() {
                    Some(l) if rng.gen_bool(0.7) => l,
                    _ => rng.gen_range(0..n),
                };
                if net.nodes[victim].is_some() {
                    net.crash(victim);
                }
            }
            3..=4 => {
                for i in 0..n {
                    if net.nodes[i].is_none() && rng.gen_bool(0.7) {
                        net.start(i);
                    }
                }
            }
            5..=6 => {
                net.heal();
                let k = rng.gen_range(1..=2);
                let mut group = Vec::new();
                for _ in 0..k {
                    group.push(rng.gen_range(0..n));
                }
                if let Some(l) = net.leader() {
                    if rng.gen_bool(0.5) {
                        group.push(l);
                    }
                }
                net.partition(&group);
            }
            _ => net.heal(),
        }
    }
    if net.violation.is_some() {
        return net.violation;
    }
    // Liveness: once faults stop, a leader emerges and every operation completes.
    net.heal();
    net.loss = 0.0;
    net.dup = 0.0;
    for i in 0..n {
        if net.nodes[i].is_none() {
            net.start(i);
        }
    }
    // The liveness phase, polled as the simulator does: the first poll is the heal.
    let mut settled = net.settled();
    net.quiesce_clients();
    for _ in 0..50 {
        if settled.is_ok() && net.clients_pending() == 0 {
            break;
        }
        net.run_for(Duration::from_millis(100));
        settled = net.settled();
    }
    if let Err(e) = settled {
        return Some(format!("liveness: {e}"));
    }
    if net.clients_pending() > 0 {
        return Some(format!(
            "liveness: {} operations pending",
            net.clients_pending()
        ));
    }
    net.violation
}

#[test]
fn random_faults_keep_every_invariant() {
    for style in [Style::Mixed, Style::Figure8, Style::Elections] {
        for seed in 0..10 {
            if let Some(v) = run(seed, Bugs::default(), 10, style) {
                panic!("{style:?} seed {seed}: {v}");
            }
        }
    }
}

/// Each bug with the fault style that reaches it; every one must be caught within
/// 30 seeds (figure8-commit and read-before-noop have scripted tests in `bugs.rs`).
#[test]
fn safety_bugs_are_caught_by_an_invariant() {
    for (name, style) in [
        ("vote-without-log-check", Style::Mixed),
        ("ack-before-sync", Style::Mixed),
        ("stale-append-truncates", Style::Mixed),
        ("apply-uncommitted", Style::Mixed),
        ("vote-not-persisted", Style::Elections),
        ("stale-vote-counting", Style::Elections),
    ] {
        let mut bugs = Bugs::default();
        assert!(bugs.set(name));
        // A safety violation, not merely a slow recovery.
        let found = (0..30)
            .find_map(|seed| run(seed, bugs, 8, style).filter(|v| !v.starts_with("liveness")));
        assert!(
            found.is_some(),
            "{name} was not caught in 30 seeds of {style:?}"
        );
    }
}
