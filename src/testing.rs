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

use proptest::strategy::Strategy;

use crate::rng::{stream, Purpose};
use crate::run::{run, RunRequest, Status, Summary};
use crate::scenario::{FaultKind, FaultSpec, RandomFaults, Scenario, Schedule};
use crate::system::System;

/// Runs a scenario file (a path, or a name in `scenarios/` of the crate under test or
/// of faultline) over `seeds` with system `S`, and returns the sweep's summary.
///
/// `FAULTLINE_SEED` / `FAULTLINE_SEEDS` in the environment replace `seeds` (see
/// [`seeds_from_env`]). Panics when the file cannot be read or is invalid (the message
/// names the file and the line or field), and when a seed fails, with the seed, what
/// failed and two commands: the `cargo test` line that reruns this test on that seed,
/// and the replay command of the crate's binary that runs [`crate::cli::Cli`] (or how
/// to add one).
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
            let replay = match replay_program() {
                Some(program) => format!(
                    "replay it with a full trace:  {program} replay {}{bugs} --seed {}",
                    scenario.file, run.seed
                ),
                None => "replay it with a full trace:  add a binary that runs \
                         faultline::cli::Cli with this protocol (faultline's README, \
                         \"Use faultline in your crate\")"
                    .to_string(),
            };
            format!(
                "faultline: scenario `{}` failed at seed {} ({} of {} seeds failed: {:?})\n  {failure}\n  \
                 rerun this test on that seed: FAULTLINE_SEED={} cargo test {test}\n  \
                 {replay}",
                scenario.name,
                run.seed,
                summary.failed,
                summary.seeds_run,
                summary.failing_seeds,
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

/// The `cargo run` line of a binary that runs faultline's command line, for the crate
/// whose tests are running: faultline's own `cargo run --release --`; in another crate,
/// `cargo run --release --bin NAME --` for the first of `src/main.rs` and
/// `src/bin/NAME.rs` (or `src/bin/NAME/main.rs`) that calls `faultline::cli`; `None`
/// when there is none. `cargo test` sets CARGO_PKG_NAME and CARGO_MANIFEST_DIR for the
/// test binaries it runs.
fn replay_program() -> Option<String> {
    let package = std::env::var("CARGO_PKG_NAME").ok();
    let root = std::env::var_os("CARGO_MANIFEST_DIR");
    let (Some(package), Some(root)) = (package, root) else {
        return Some("cargo run --release --".into());
    };
    if package == "faultline" {
        return Some("cargo run --release --".into());
    }
    let root = std::path::Path::new(&root);
    let mut candidates = vec![(package.clone(), root.join("src/main.rs"))];
    let mut bins: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(root.join("src/bin"))
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            if path.is_dir() {
                let name = path.file_name()?.to_str()?.to_string();
                Some((name, path.join("main.rs")))
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem()?.to_str()?.to_string();
                Some((name, path))
            } else {
                None
            }
        })
        .collect();
    bins.sort();
    candidates.extend(bins);
    candidates.into_iter().find_map(|(name, path)| {
        let source = std::fs::read_to_string(path).ok()?;
        source
            .contains("faultline::cli")
            .then(|| format!("cargo run --release --bin {name} --"))
    })
}

/// A proptest strategy over fault schedules of `scenario`, for property tests whose
/// failures proptest shrinks with its own machinery: a seed, then the scenario's own
/// faults and up to `faults_max` more, each of a kind from its `[random]` table (every
/// kind when it has none; client kinds only when `clients > 0`) starting within the
/// fault phase and lasting within the table's `duration_ms` range, its targets and
/// values drawn as the scenario's generator draws them ([`Scenario::schedule`]).
///
/// Shrinking removes drawn faults, moves them earlier, shortens them, picks earlier
/// kinds of the table and smaller draw seeds; run each value with
/// [`crate::run::run_seed`] after [`Scenario::with_overrides`]. Panics if `scenario`
/// has no kind to draw.
pub fn schedules(
    scenario: &Scenario,
    clients: usize,
    faults_max: usize,
) -> impl Strategy<Value = Schedule> {
    let r = scenario.random.clone().unwrap_or_else(|| RandomFaults {
        kinds: FaultKind::ALL.to_vec(),
        ..RandomFaults::default()
    });
    let kinds: Vec<FaultKind> = r
        .kinds
        .iter()
        .copied()
        .filter(|k| {
            let client_kind = matches!(
                k,
                FaultKind::ClientPartition | FaultKind::ClientPause | FaultKind::ClientPin
            );
            clients > 0 || !client_kind
        })
        .collect();
    assert!(!kinds.is_empty(), "the scenario has no fault kind to draw");
    let duration_ms = scenario.duration_ms;
    let fault = (
        0..duration_ms,
        r.duration_ms.min..=r.duration_ms.max,
        0..kinds.len(),
        proptest::num::u64::ANY,
    );
    let scenario = scenario.clone();
    (
        proptest::num::u64::ANY,
        proptest::collection::vec(fault, 0..=faults_max),
    )
        .prop_map(move |(seed, mut drawn)| {
            // In time order, so `max_down` sees the down faults as the run will.
            drawn.sort_by_key(|&(at_ms, ..)| at_ms);
            let mut downs = scenario
                .faults
                .iter()
                .filter_map(|f| Some((f.downed_node()?, f.at_ms(), f.end_ms().unwrap_or(u64::MAX))))
                .collect();
            let mut faults = scenario.faults.clone();
            for (at_ms, len_ms, kind, draw_seed) in drawn {
                let mut rng = stream(draw_seed, Purpose::Schedule, 1);
                let until = (at_ms + len_ms).min(duration_ms);
                let window = (at_ms, until);
                let drawn = crate::scenario::draw(
                    &scenario,
                    &r,
                    kinds[kind],
                    window,
                    &mut downs,
                    &mut rng,
                    clients,
                );
                faults.extend(drawn.map(FaultSpec::from));
            }
            Schedule {
                seed,
                duration_ms: None,
                workload: None,
                faults,
                swarm_kinds: None,
            }
        })
}
