//! Guided exploration: spend a budget of runs partly on fresh seeds and partly on
//! forks of runs that reached something rare, the fork-and-mutate search of
//! coverage-guided fuzzers (AFL) and of Antithesis, over explicit fault schedules.
//!
//! A run's coverage is the set of its `sometimes` marks ([`crate::Context::sometimes`]),
//! each with its count bucketed by powers of two (1, 2-3, 4-7, ...), and the fault
//! effects it had (`fault_<kind>_<effect>` above zero): a coarse picture of the
//! protocol states it reached, which every protocol gives without extra code; plus,
//! for protocols that give one ([`crate::Process::coverage`]: Raft, etcd's members,
//! SWIM), the coarse states its nodes reached (`coverage.<state>`). A run
//! that reaches a feature no earlier run reached joins the corpus. A fork takes a
//! corpus run, keeps its seed and its faults that start before a cut time drawn at
//! random (the same run up to the cut: the seed's streams are drawn in the same order
//! until then) and replaces the rest by faults the scenario's generator draws for
//! another seed, from the cut on. Forks favour the corpus runs holding the rarest
//! features.
//!
//! Every run is a plain seed and schedule: a failure found is replayed with
//! `faultline run SCENARIO --schedule FILE`. The search is deterministic for a given
//! explorer seed: it runs in rounds of [`ROUND_RUNS`] candidates, each round drawn
//! from the corpus as the previous rounds left it, whatever the number of threads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::run::{run_seed, verdict, Outcome, Status};
use crate::scenario::{Scenario, ScenarioError, Schedule};
use crate::sim::Failure;
use crate::system::System;

/// Candidates drawn per round: the corpus is updated between rounds only, so the
/// search does not depend on how many run at once.
pub const ROUND_RUNS: usize = 8;

/// Most runs one exploration may spend.
pub const BUDGET_MAX: usize = 1_000_000;

/// What to explore with.
#[derive(Clone, Debug)]
pub struct ExploreRequest {
    /// Runs to spend (1 to [`BUDGET_MAX`]).
    pub budget: usize,
    /// The explorer's own seed: which seeds it starts from and every choice it makes.
    pub seed: u64,
    /// Bugs to inject, by name.
    pub bugs: Vec<String>,
    /// The share of runs spent on forks once the corpus is not empty, in [0, 1].
    pub fork_share: f64,
    /// Runs at once.
    pub jobs: usize,
}

impl Default for ExploreRequest {
    fn default() -> Self {
        ExploreRequest {
            budget: 100,
            seed: 0,
            bugs: Vec::new(),
            fork_share: 0.5,
            jobs: 1,
        }
    }
}

/// One failing run the exploration found.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// Which run of the budget it was (0-based).
    pub run: usize,
    /// Whether it was a fork (else a fresh seed).
    pub fork: bool,
    /// The failure.
    pub failure: Failure,
    /// Its seed and schedule: replay it with `--schedule`.
    #[serde(skip)]
    pub schedule: Schedule,
}

/// What an exploration did.
#[derive(Clone, Debug, Serialize)]
pub struct Exploration {
    /// The scenario explored.
    pub scenario: String,
    /// Runs spent.
    pub runs: usize,
    /// Runs spent on forks.
    pub forks: usize,
    /// Runs that joined the corpus (reached a feature first).
    pub corpus: usize,
    /// Distinct coverage features reached, and how many runs reached each.
    pub features: BTreeMap<String, usize>,
    /// Failing runs, in run order.
    pub failures: Vec<Found>,
}

impl Exploration {
    /// The run index of the first failure, if any.
    pub fn first_failure(&self) -> Option<usize> {
        self.failures.first().map(|f| f.run)
    }
}

/// A run's coverage features: its marks, count bucketed by powers of two, its
/// fault effects and its nodes' coverage states.
fn features(outcome: &Outcome) -> BTreeSet<String> {
    outcome
        .metrics
        .iter()
        .filter(|&(_, &v)| v > 0.0)
        .filter_map(|(name, &v)| {
            if let Some(mark) = name.strip_prefix("sometimes.") {
                let bucket = (v as u64).ilog2();
                Some(format!("{mark}#{bucket}"))
            } else if name.starts_with("coverage.")
                || (name.starts_with("fault_") && !name.ends_with("_count"))
            {
                Some(name.clone())
            } else {
                None
            }
        })
        .collect()
}

struct Entry {
    schedule: Schedule,
    features: BTreeSet<String>,
}

/// Explores `scenario` with protocol `S`. `Err`: the scenario or a bug name is bad.
pub fn explore<S: System>(
    scenario: &Scenario,
    request: &ExploreRequest,
) -> Result<Exploration, ScenarioError> {
    let mut setup = scenario.setup::<S>(&request.bugs)?;
    setup.coverage = true;
    let setup = Arc::new(setup);
    let end_ms = scenario.duration_ms;
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let mut corpus: Vec<Entry> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut forks = 0;
    let budget = request.budget.clamp(1, BUDGET_MAX);
    let mut next_seed = request.seed.wrapping_mul(1_000_003);
    let mut runs = 0;
    // Each round spends up to ROUND_RUNS of the budget: at most
    // budget / ROUND_RUNS + 1 rounds.
    while runs < budget {
        let round = ROUND_RUNS.min(budget - runs);
        let candidates: Vec<(Schedule, bool)> = (0..round)
            .map(|_| {
                let fork = !corpus.is_empty() && rng.gen_bool(request.fork_share);
                if !fork {
                    next_seed = next_seed.wrapping_add(1);
                    return (scenario.schedule_for(next_seed, &setup), false);
                }
                let parent = pick(&corpus, &seen, &mut rng);
                let cut_ms = rng.gen_range(0..end_ms.max(1));
                let suffix_seed: u64 = rng.gen();
                (fork_of(scenario, &setup, parent, cut_ms, suffix_seed), true)
            })
            .collect();
        let outcomes = run_all::<S>(scenario, &setup, &candidates, request.jobs);
        for ((schedule, fork), outcome) in candidates.into_iter().zip(outcomes) {
            forks += usize::from(fork);
            let (status, outcome) = verdict(scenario, outcome);
            let failing = matches!(status, Status::Failed | Status::Shown);
            if let (true, Some(failure)) = (failing, outcome.failure.clone()) {
                failures.push(Found {
                    run: runs,
                    fork,
                    failure,
                    schedule: schedule.with_resolved(&outcome.resolved),
                });
            }
            let reached = features(&outcome);
            let new = reached.iter().any(|f| !seen.contains_key(f));
            for f in &reached {
                *seen.entry(f.clone()).or_default() += 1;
            }
            if new {
                corpus.push(Entry {
                    schedule: schedule.with_resolved(&outcome.resolved),
                    features: reached,
                });
            }
            runs += 1;
        }
    }
    Ok(Exploration {
        scenario: scenario.name.clone(),
        runs,
        forks,
        corpus: corpus.len(),
        features: seen,
        failures,
    })
}

/// A corpus run to fork, favouring those holding the rarest features: the weight of
/// a run is the sum, over its features, of one over how many runs reached it.
fn pick<'a>(
    corpus: &'a [Entry],
    seen: &BTreeMap<String, usize>,
    rng: &mut impl Rng,
) -> &'a Schedule {
    let weights: Vec<f64> = corpus
        .iter()
        .map(|e| {
            e.features
                .iter()
                .map(|f| 1.0 / seen.get(f).copied().unwrap_or(1).max(1) as f64)
                .sum::<f64>()
                .max(1e-9)
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.gen_range(0.0..total);
    for (entry, w) in corpus.iter().zip(&weights) {
        if x < *w {
            return &entry.schedule;
        }
        x -= w;
    }
    &corpus.last().expect("a non-empty corpus").schedule
}

/// `parent`'s faults that start before `cut_ms`, then the schedule of `suffix_seed`
/// (the scenario's own faults and what its generator draws) from `cut_ms` on, under
/// the parent's seed. Member faults of the suffix that the
/// prefix's configuration refuses are left out.
fn fork_of<S: System>(
    scenario: &Scenario,
    setup: &crate::system::Setup<S>,
    parent: &Schedule,
    cut_ms: u64,
    suffix_seed: u64,
) -> Schedule {
    let drawn = scenario.schedule_for(suffix_seed, setup);
    let mut faults: Vec<_> = parent
        .faults
        .iter()
        .filter(|f| f.at_ms() < cut_ms)
        .cloned()
        .collect();
    let prefix = faults.len();
    faults.extend(drawn.faults.into_iter().filter(|f| f.at_ms() >= cut_ms));
    let mut schedule = Schedule {
        faults,
        swarm_kinds: None,
        ..parent.clone()
    };
    // A prefix fault that lasts past the cut may meet a suffix one on the same node:
    // the suffix's down faults give way (all of them, if the first cut is not enough).
    let prefix_down_end = schedule.faults[..prefix]
        .iter()
        .filter(|f| f.downed_node().is_some())
        .map(|f| f.end_ms().unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0);
    for keep_late in [true, false] {
        if scenario.check_faults("faults", &schedule.faults).is_ok() {
            break;
        }
        let mut i = 0;
        schedule.faults.retain(|f| {
            i += 1;
            i <= prefix || f.downed_node().is_none() || (keep_late && f.at_ms() >= prefix_down_end)
        });
    }
    let bootstrap = S::bootstrap_members(setup);
    if scenario
        .check_members("faults", &schedule.faults, bootstrap.as_ref())
        .is_err()
    {
        let mut i = 0;
        schedule.faults.retain(|f| {
            i += 1;
            i <= prefix || !f.kind().is_membership()
        });
    }
    schedule
}

/// Runs the candidates, `jobs` at a time; outcomes in candidate order.
fn run_all<S: System>(
    scenario: &Scenario,
    setup: &Arc<crate::system::Setup<S>>,
    candidates: &[(Schedule, bool)],
    jobs: usize,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = (0..candidates.len()).map(|_| None).collect();
    for (chunk, out) in candidates
        .chunks(jobs.max(1))
        .zip(outcomes.chunks_mut(jobs.max(1)))
    {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(schedule, _)| {
                    scope.spawn(|| run_seed::<S>(scenario, setup, schedule, false))
                })
                .collect();
            for (slot, handle) in out.iter_mut().zip(handles) {
                *slot = Some(handle.join().expect("run_seed catches panics"));
            }
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every candidate ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::RaftKv;

    #[test]
    fn a_fork_keeps_its_parents_faults_before_the_cut_and_its_seed() {
        let text = r#"
name = "fork"
description = "d"
duration_ms = 10000
[cluster]
protocol = "raft"
nodes = 5
[[faults]]
kind = "crash"
at_ms = 9000
node = 1
[random]
kinds = ["partition", "pause", "loss"]
interval_ms = { min = 300, max = 700 }
"#;
        let s = Scenario::parse("fork.toml", text).unwrap();
        let setup = s.setup::<RaftKv>(&[]).unwrap();
        let parent = s.schedule_for(7, &setup);
        let fork = fork_of(&s, &setup, &parent, 4000, 99);
        assert_eq!(
            fork.seed, 7,
            "the parent's seed: the same run up to the cut"
        );
        let before = |sch: &Schedule| -> Vec<_> {
            sch.faults
                .iter()
                .filter(|f| f.at_ms() < 4000)
                .cloned()
                .collect()
        };
        assert_eq!(before(&fork), before(&parent));
        let after: Vec<_> = fork.faults.iter().filter(|f| f.at_ms() >= 4000).collect();
        assert!(!after.is_empty());
        let other = s.schedule_for(99, &setup);
        assert!(
            after.iter().all(|f| other.faults.contains(f)),
            "drawn for the suffix seed"
        );
        let own = fork.faults.iter().filter(|f| s.faults.contains(f)).count();
        assert_eq!(own, 1, "the scenario's own crash at 9 s, once");
    }
}
