//! Running scenarios from `cargo test`.
//!
//! ```no_run
//! # use faultline::{testing, system::System};
//! # fn demo<MyProtocol: System>() {
//! // Every seed in 0..50 must pass; FAULTLINE_SEED=7 or FAULTLINE_SEEDS=0..500
//! // in the environment select other seeds.
//! testing::check_seeds::<MyProtocol>("scenarios/my-protocol.toml", 0..50);
//! # }
//! ```
//! A failure panics with the seed and the commands that replay it.

use std::ops::Range;

use crate::run::{run, RunRequest, Status, Summary};
use crate::scenario::Scenario;
use crate::system::System;

/// Runs a scenario file (a path, or a name in `scenarios/`) over `seeds`, panicking on
/// the first failing seed with its replay commands.
pub fn check_seeds<S: System>(scenario: &str, seeds: Range<u64>) -> Summary {
    let loaded = Scenario::find(scenario).unwrap_or_else(|e| panic!("{e}"));
    check_scenario::<S>(&loaded, seeds)
}

/// Like [`check_seeds`], for a scenario built in code (e.g. with [`Scenario::parse`]).
pub fn check_scenario<S: System>(scenario: &Scenario, seeds: Range<u64>) -> Summary {
    let seeds = seeds_from_env().unwrap_or_else(|| seeds.collect());
    let request = RunRequest {
        seeds,
        ..RunRequest::default()
    };
    let summary = run::<S>(scenario, &request).unwrap_or_else(|e| panic!("{e}"));
    if summary.exit_code() != 0 {
        panic!("{}", failure_message(scenario, &summary));
    }
    summary
}

/// `FAULTLINE_SEED=N` runs seed N alone; `FAULTLINE_SEEDS=A..B` runs A to B-1.
pub fn seeds_from_env() -> Option<Vec<u64>> {
    if let Ok(seed) = std::env::var("FAULTLINE_SEED") {
        let seed = seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FAULTLINE_SEED={seed} is not a seed (u64)"));
        return Some(vec![seed]);
    }
    let range = std::env::var("FAULTLINE_SEEDS").ok()?;
    Some(
        parse_seed_range(&range)
            .unwrap_or_else(|e| panic!("FAULTLINE_SEEDS={range}: {e}"))
            .collect(),
    )
}

/// `A..B` (B excluded) or a single seed `N`.
pub fn parse_seed_range(text: &str) -> Result<Range<u64>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{s}` is not a seed (u64)"))
    };
    let range = match text.split_once("..") {
        Some((a, b)) => number(a)?..number(b)?,
        None => number(text).map(|n| n..n.saturating_add(1))?,
    };
    match range.is_empty() {
        true => Err(format!("`{text}` is an empty range: write A..B with A < B")),
        false => Ok(range),
    }
}

fn failure_message(scenario: &Scenario, summary: &Summary) -> String {
    let test = std::thread::current()
        .name()
        .unwrap_or("TEST_NAME")
        .to_string();
    let bugs: String = summary.bugs.iter().map(|b| format!(" --bug {b}")).collect();
    let failed = summary.runs.iter().find(|r| r.status == Status::Failed);
    match failed {
        Some(run) => {
            let failure = run
                .failure
                .as_ref()
                .map_or("expectation not met".to_string(), |f| {
                    format!(
                        "{} `{}` at {:.3}s: {}",
                        f.kind.name(),
                        f.check,
                        f.time_ns as f64 / 1e9,
                        f.message
                    )
                });
            format!(
                "faultline: scenario `{}` failed at seed {} ({} of {} seeds failed: {:?})\n  {failure}\n  \
                 rerun this test on that seed: FAULTLINE_SEED={} cargo test {test}\n  \
                 replay it with a full trace:  cargo run --release -- replay {}{bugs} --seed {}",
                scenario.name,
                run.seed,
                summary.failed,
                summary.seeds_run,
                summary.failing_seeds,
                run.seed,
                scenario.file,
                run.seed,
            )
        }
        None if !summary.sweep_failures.is_empty() => format!(
            "faultline: scenario `{}` over {} seeds: {}",
            scenario.name,
            summary.seeds_run,
            summary.sweep_failures.join("; ")
        ),
        None => format!(
            "faultline: scenario `{}` expects `{}` to fail, and it did not in any of {} seeds",
            scenario.name,
            summary.expect_failure.as_deref().unwrap_or("?"),
            summary.seeds_run
        ),
    }
}
