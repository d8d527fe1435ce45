//! Random fault schedules on the in-test network: the correct protocol keeps every
//! invariant; each injected safety bug is caught by one.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::net::Net;
use crate::kv::{KvWorkload, OpMix};
use crate::raft::{Bugs, RaftConfig};

/// Runs `secs` seconds of random faults with clients; returns the first violation.
pub fn chaos(seed: u64, bugs: Bugs, secs: u64) -> Option<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = RaftConfig {
        snapshot_threshold_entries: 40,
        ..RaftConfig::default()
    };
    let n = 5;
    let mut net = Net::new(n, cfg, bugs, seed);
    net.panic_on_violation = false;
    net.jitter_us = 20_000;
    net.loss = 0.02;
    net.dup = 0.05;
    net.torn = true;
    let w = KvWorkload {
        clients: 3,
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
    net.violation
}

#[test]
fn random_faults_keep_every_invariant() {
    for seed in 0..12 {
        if let Some(v) = chaos(seed, Bugs::default(), 8) {
            panic!("seed {seed}: {v}");
        }
    }
}

fn caught(name: &str, seeds: u64) -> Option<(u64, String)> {
    let mut bugs = Bugs::default();
    assert!(bugs.set(name));
    (0..seeds).find_map(|seed| chaos(seed, bugs, 8).map(|v| (seed, v)))
}

#[test]
fn safety_bugs_are_caught_by_an_invariant() {
    for name in [
        "vote-without-log-check",
        "figure8-commit",
        "ack-before-sync",
        "stale-append-truncates",
        "apply-uncommitted",
        "vote-not-persisted",
    ] {
        let found = caught(name, 30);
        assert!(found.is_some(), "{name} was not caught in 30 seeds");
        eprintln!("{name}: {:?}", found);
    }
}
