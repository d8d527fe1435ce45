//! Running scenarios: one seed on a fresh thread and runtime, sweeps over seed ranges
//! with several jobs, the determinism check, expectations and artifacts; failures
//! grouped by signature; and summaries of shards of a sweep merged into the sweep's.

#![warn(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::Metrics;
use crate::scenario::{Scenario, ScenarioError, Schedule};
use crate::sim::{simulate, Failure, FailureKind, SimResult};
use crate::system::{Setup, System, Verdict};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The seeds to run, each once (twice with `check_determinism`).
    pub seeds: Vec<u64>,
    /// Seeds run at once, each on its own thread.
    pub jobs: usize,
    /// Run every seed twice and fail on any difference.
    pub check_determinism: bool,
    /// Run these faults instead of the scenario's (the seed is still the run's).
    pub schedule: Option<Schedule>,
    /// Bugs to inject, on top of the scenario's own.
    pub bugs: Vec<String>,
    /// Where artifacts go (`results/` by default); `None` writes none.
    pub artifacts: Option<PathBuf>,
    /// Keep artifacts of every seed, not only failing ones.
    pub keep: bool,
    /// Without `keep`, the most failing seeds whose artifacts a sweep writes (each
    /// holds a full trace and its report, megabytes); the others are listed and can be
    /// replayed. The first to finish take the places, so with several jobs which ones
    /// varies.
    pub failing_artifacts_max: usize,
    /// Show a progress bar on stderr while a sweep of two or more seeds runs.
    pub progress: bool,
    /// Write each seed's request traces here, in OpenTelemetry and Chrome trace-event
    /// JSON (see [`crate::spans::trace_paths`]: `FILE.otlp.json`, `FILE.chrome.json`,
    /// with the seed in the names when more than one seed runs). Each seed then also
    /// runs once more, recording.
    pub traces: Option<PathBuf>,
}

impl Default for RunRequest {
    fn default() -> Self {
        RunRequest {
            seeds: vec![0],
            jobs: 1,
            check_determinism: false,
            schedule: None,
            bugs: Vec::new(),
            artifacts: None,
            keep: false,
            failing_artifacts_max: usize::MAX,
            progress: false,
            traces: None,
        }
    }
}

/// How one seed ended, judged against the scenario's expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every check passed, as expected.
    Passed,
    /// A check failed that the scenario does not expect to, or the run panicked or
    /// was not deterministic.
    Failed,
    /// No check failed, but the history checker could not decide.
    Unknown,
    /// A teaching scenario showed the anomaly it expects.
    Shown,
    /// A teaching scenario's anomaly did not show in this seed.
    NotShown,
}

/// One seed's run: its `summary.json`, and a row of a sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// How it ended, judged against the scenario's expectation.
    pub status: Status,
    /// The failure, if any (an expected one included).
    pub failure: Option<Failure>,
    /// The failure's [`signature`], if there is a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The trace hash, the run's fingerprint (16 hex digits in JSON).
    #[serde(serialize_with = "hex", deserialize_with = "unhex")]
    pub trace_hash: u64,
    /// Events the trace hash covers.
    pub trace_events: u64,
    /// Simulated time the run took, in ms.
    pub sim_ms: f64,
    /// Wall-clock time the run took, in ms (the first run, with the determinism check).
    pub wall_ms: f64,
    /// Of `wall_ms`, the history check's share.
    pub check_wall_ms: f64,
    /// Events in the client history.
    pub history_ops: usize,
    /// The run's metrics, by name.
    pub metrics: Metrics,
    /// Where its artifacts went, if anywhere.
    pub artifacts: Option<String>,
    /// The request trace files written (`--traces`), or why they could not be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<String>,
}

fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

fn unhex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    u64::from_str_radix(&text, 16)
        .map_err(|e| serde::de::Error::custom(format!("trace hash `{text}`: {e}")))
}

/// Mean, min, max, p50 and p99 of one metric over the seeds of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The mean.
    pub mean: f64,
    /// The lowest value.
    pub min: f64,
    /// The median (nearest rank: the sorted values at index `round((n - 1) * 0.5)`).
    pub p50: f64,
    /// The 99th percentile (nearest rank: index `round((n - 1) * 0.99)`).
    pub p99: f64,
    /// The highest value.
    pub max: f64,
}

/// The failures of a sweep that share a [`signature`]: the same check, failing with
/// the same message once numbers and ids are taken out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// `CHECK: MESSAGE`, the message normalised by [`normalise`].
    pub signature: String,
    /// The check that failed ([`Failure::check`]).
    pub check: String,
    /// Failed seeds with this signature.
    pub count: usize,
    /// The smallest of them: the one to replay first.
    pub smallest_seed: u64,
    /// All of them, in ascending order.
    pub seeds: Vec<u64>,
}

/// Which share of a sweep's seeds one process ran (`faultline run --shard I/N`): the
/// seeds `s` of the range with `s % count == index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u64,
    /// The number of shards the sweep is cut into.
    pub count: u64,
    /// The whole sweep's seeds, as given to `--seeds` (`A..B`).
    pub seeds: String,
}

impl Shard {
    /// Parses `I/N` (0 <= I < N) for the sweep over `seeds`.
    pub fn parse(text: &str, seeds: &str) -> Result<Shard, String> {
        let bad = |why: &str| format!("--shard {text}: {why}; expected I/N with 0 <= I < N");
        let (i, n) = text.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let index: u64 = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad("I must be below N (shards are numbered from 0)"));
        }
        Ok(Shard {
            index,
            count,
            seeds: seeds.to_string(),
        })
    }

    /// Whether `seed` is this shard's.
    pub fn has(&self, seed: u64) -> bool {
        seed % self.count == self.index
    }
}

/// A failure's signature, for grouping a sweep's failures: `CHECK: MESSAGE` with the
/// message [`normalise`]d, e.g. `broadcast-durability: node N lost N delivered values
/// in a restart, first id N`.
pub fn signature(failure: &Failure) -> String {
    format!("{}: {}", failure.check, normalise(&failure.message))
}

/// A failure message with its numbers and ids taken out, so that the same failure in
/// different seeds reads the same. The message is cut into words (runs of letters,
/// digits and `_`) and what lies between them:
/// - a word of hex digits (after an optional `0x`) with at least one decimal digit in
///   it, a number or an id, becomes `N`: `17`, `0x1f`, `7fa3c2`, `e4` → `N`;
/// - in any other word, each run of decimal digits becomes `N`: `n3` → `nN`, `10ms`
///   → `Nms`; words without digits stay (`dead`, `cafe`);
/// - `N.N` becomes `N` (decimal numbers: `1.5s` → `Ns`), and runs of white space one
///   space.
pub fn normalise(message: &str) -> String {
    fn word(w: &str, out: &mut String) {
        let digits = w.strip_prefix("0x").filter(|d| !d.is_empty()).unwrap_or(w);
        if digits.chars().all(|c| c.is_ascii_hexdigit())
            && digits.chars().any(|c| c.is_ascii_digit())
        {
            out.push('N');
            return;
        }
        let mut in_digits = false;
        for c in w.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('N');
                }
                in_digits = true;
            } else {
                out.push(c);
                in_digits = false;
            }
        }
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message.trim();
    while let Some(c) = rest.chars().next() {
        let end = if c.is_alphanumeric() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            word(&rest[..end], &mut out);
            end
        } else if c.is_whitespace() {
            out.push(' ');
            rest.find(|c: char| !c.is_whitespace())
                .unwrap_or(rest.len())
        } else {
            out.push(c);
            c.len_utf8()
        };
        rest = &rest[end..];
    }
    while out.contains("N.N") {
        out = out.replace("N.N", "N");
    }
    out
}

/// A sweep's result: counts by [`Status`], the seeds that failed, aggregated metrics
/// and every seed's report.
///
/// Everything but the wall times is a function of the seeds' reports ([`runs`]) and
/// of what ran ([`SweepHead`]): [`Summary::from_runs`] computes it, for a sweep run
/// here and for shards' summaries merged ([`merge`]), so the two agree.
///
/// [`runs`]: Summary::runs
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's file, as the user named it.
    pub file: String,
    /// The protocol that ran ([`System::NAME`]).
    pub protocol: String,
    /// The bugs injected: the scenario's, then the request's.
    pub bugs: Vec<String>,
    /// The check the scenario expects to fail, if it is a teaching scenario.
    pub expect_failure: Option<String>,
    /// `[expect] sometimes`: for each mark, the fraction of seeds that must reach it.
    #[serde(default)]
    pub expect_sometimes: BTreeMap<String, f64>,
    /// The share of the sweep this summary covers, if it is one shard's (`--shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Seeds run.
    pub seeds_run: usize,
    /// Seeds that did as expected: passed, or (teaching scenarios) showed the
    /// anomaly or did not.
    pub passed: usize,
    /// Seeds that failed.
    pub failed: usize,
    /// Seeds the history checker could not decide.
    pub unknown: usize,
    /// Seeds that showed the anomaly a teaching scenario expects.
    pub shown: usize,
    /// The failed seeds, in ascending order.
    pub failing_seeds: Vec<u64>,
    /// The failed seeds grouped by their failure's [`signature`], the largest group
    /// first (ties: the smallest seed first). The counts add up to `failed`.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Sweep-level expectations that did not hold (`[expect] sometimes`), each a
    /// message naming the mark, the fraction of seeds that hit it and the bound.
    pub sweep_failures: Vec<String>,
    /// Simulated time of all the seeds' runs together, in ms.
    pub sim_ms: f64,
    /// Wall-clock time of the sweep, in ms.
    pub wall_ms: f64,
    /// Each metric, by name, over the seeds that produced it.
    pub metrics: BTreeMap<String, Aggregate>,
    /// Proof that faults fired: for each fault effect the runs count
    /// (`fault_<kind>_<effect>` metrics), how many seeds saw it.
    pub fault_effects: BTreeMap<String, usize>,
    /// For each state the protocol may mark (`System::sometimes`), the fraction of
    /// seeds that reached it.
    pub sometimes: BTreeMap<String, f64>,
    /// Every seed's report, by seed.
    pub runs: Vec<SeedReport>,
}

impl Summary {
    /// How many seeds' runs had `metric` above zero (e.g. `storage_writes_lost`).
    pub fn seeds_with(&self, metric: &str) -> usize {
        self.runs
            .iter()
            .filter(|r| r.metrics.get(metric).is_some_and(|&v| v > 0.0))
            .count()
    }

    /// 0 every seed as expected, 1 a seed failed (or a lesson never showed, or a
    /// sweep-level expectation did not hold), 3 unknown.
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0
            || (self.expect_failure.is_some() && self.shown == 0)
            || !self.sweep_failures.is_empty()
        {
            1
        } else if self.unknown > 0 {
            3
        } else {
            0
        }
    }
}

/// Runs `request` against `scenario` with the protocol `S`.
pub fn run<S: System>(scenario: &Scenario, request: &RunRequest) -> Result<Summary, ScenarioError> {
    let setup = Arc::new(scenario.setup::<S>(&request.bugs)?);
    if let Some(schedule) = &request.schedule {
        scenario.check_clients("faults", &schedule.faults, S::clients(&setup))?;
        let bootstrap = S::bootstrap_members(&setup);
        scenario.check_members("faults", &schedule.faults, bootstrap.as_ref())?;
        let known = <S::Process as crate::process::Process>::message_classes();
        scenario.check_classes("faults", &schedule.faults, known)?;
    }
    assert!(request.jobs >= 1, "at least one job");
    let started = Instant::now();
    let bar = progress_bar(request);
    let next = AtomicUsize::new(0);
    let artifact_places = AtomicUsize::new(request.failing_artifacts_max);
    let reports = Mutex::new(Vec::with_capacity(request.seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..request.jobs.min(request.seeds.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = request.seeds.get(i) else {
                    break;
                };
                let report = run_and_judge::<S>(scenario, &setup, request, seed, &artifact_places);
                bar.inc(1);
                reports.lock().unwrap().push(report);
            });
        }
    });
    bar.finish_and_clear();
    let head = SweepHead {
        scenario: scenario.name.clone(),
        file: scenario.file.clone(),
        protocol: S::NAME.to_string(),
        bugs: setup.bugs.clone(),
        expect_failure: scenario.expect.failure.clone(),
        expect_sometimes: scenario.expect.sometimes.clone(),
        sometimes: S::sometimes().iter().map(|n| n.to_string()).collect(),
    };
    let runs = reports.into_inner().unwrap();
    Ok(Summary::from_runs(
        head,
        runs,
        started.elapsed().as_secs_f64() * 1e3,
    ))
}

/// What a sweep ran, apart from its seeds: all a [`Summary`] needs beside the seeds'
/// reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepHead {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's file, as the user named it.
    pub file: String,
    /// The protocol that ran.
    pub protocol: String,
    /// The bugs injected: the scenario's, then the request's.
    pub bugs: Vec<String>,
    /// The check the scenario expects to fail, if it is a teaching scenario.
    pub expect_failure: Option<String>,
    /// `[expect] sometimes`: the fraction of seeds each mark must reach.
    pub expect_sometimes: BTreeMap<String, f64>,
    /// The marks the protocol may set (`System::sometimes`), reported even when no
    /// seed reached them.
    pub sometimes: Vec<String>,
}

impl Summary {
    /// The summary of a sweep whose seeds ended as `runs` (in any order), which took
    /// `wall_ms`: the one place where counts, failing seeds, groups, metric
    /// aggregates, fault effects, `sometimes` fractions and sweep-level expectations
    /// are computed, for [`run`] and for [`merge`] alike. Sets each report's
    /// [`SeedReport::signature`].
    pub fn from_runs(head: SweepHead, mut runs: Vec<SeedReport>, wall_ms: f64) -> Summary {
        runs.sort_by_key(|r| r.seed);
        for r in &mut runs {
            r.signature = r.failure.as_ref().map(signature);
        }
        let count = |s: Status| runs.iter().filter(|r| r.status == s).count();
        Summary {
            seeds_run: runs.len(),
            passed: count(Status::Passed) + count(Status::Shown) + count(Status::NotShown),
            failed: count(Status::Failed),
            unknown: count(Status::Unknown),
            shown: count(Status::Shown),
            failing_seeds: runs
                .iter()
                .filter(|r| r.status == Status::Failed)
                .map(|r| r.seed)
                .collect(),
            groups: groups(&runs),
            sweep_failures: sometimes_failures(&head.expect_sometimes, &runs),
            sim_ms: runs.iter().map(|r| r.sim_ms).sum(),
            wall_ms,
            metrics: aggregate(&runs),
            fault_effects: fault_effects(&runs),
            sometimes: sometimes(&head.sometimes, &runs),
            scenario: head.scenario,
            file: head.file,
            protocol: head.protocol,
            bugs: head.bugs,
            expect_failure: head.expect_failure,
            expect_sometimes: head.expect_sometimes,
            shard: None,
            runs,
        }
    }

    /// What ran, without the seeds.
    pub fn head(&self) -> SweepHead {
        SweepHead {
            scenario: self.scenario.clone(),
            file: self.file.clone(),
            protocol: self.protocol.clone(),
            bugs: self.bugs.clone(),
            expect_failure: self.expect_failure.clone(),
            expect_sometimes: self.expect_sometimes.clone(),
            sometimes: self.sometimes.keys().cloned().collect(),
        }
    }
}

/// Why shards' summaries cannot be merged; each names the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError(pub String);

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MergeError {}

/// Merges the summaries of a sweep's shards (each named, by its file, for the errors)
/// into the summary one process running all their seeds gives: their seeds' reports
/// summarized again by [`Summary::from_runs`]. The wall time is the longest shard's
/// (the shards ran side by side). The summaries must be of the same scenario,
/// protocol, bugs and expectations and share no seed; shards (`--shard I/N`) must be
/// of one sweep (the same N and seed range), each once, and all there.
pub fn merge(parts: Vec<(String, Summary)>) -> Result<Summary, MergeError> {
    let Some((first_name, first)) = parts.first() else {
        return Err(MergeError("no summaries to merge".into()));
    };
    let head = first.head();
    let mut sometimes_names: std::collections::BTreeSet<String> = Default::default();
    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    let mut shards: BTreeMap<u64, &str> = BTreeMap::new();
    for (name, part) in &parts {
        let other = part.head();
        let differs = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            MergeError(format!(
                "{name}: {what} {b:?}, but {first_name} has {what} {a:?}: not shards of one sweep"
            ))
        };
        if other.scenario != head.scenario {
            return Err(differs("scenario", &head.scenario, &other.scenario));
        }
        if other.protocol != head.protocol {
            return Err(differs("protocol", &head.protocol, &other.protocol));
        }
        if other.bugs != head.bugs {
            return Err(differs("bugs", &head.bugs, &other.bugs));
        }
        if other.expect_failure != head.expect_failure {
            return Err(differs(
                "expect_failure",
                &head.expect_failure,
                &other.expect_failure,
            ));
        }
        if other.expect_sometimes != head.expect_sometimes {
            return Err(differs(
                "expect_sometimes",
                &head.expect_sometimes,
                &other.expect_sometimes,
            ));
        }
        if part.shard.is_some() != first.shard.is_some() {
            return Err(MergeError(format!(
                "{name}: {}, but {first_name} is {}",
                shard_text(&part.shard),
                shard_text(&first.shard)
            )));
        }
        if let (Some(a), Some(b)) = (&first.shard, &part.shard) {
            if (a.count, &a.seeds) != (b.count, &b.seeds) {
                return Err(differs(
                    "shard",
                    &shard_text(&first.shard),
                    &shard_text(&part.shard),
                ));
            }
            if let Some(before) = shards.insert(b.index, name) {
                return Err(MergeError(format!(
                    "{name}: shard {}/{} again (also in {before})",
                    b.index, b.count
                )));
            }
        }
        if part.runs.len() != part.seeds_run {
            return Err(MergeError(format!(
                "{name}: {} seeds run but {} reports in `runs`",
                part.seeds_run,
                part.runs.len()
            )));
        }
        for r in &part.runs {
            if let Some(before) = seen.insert(r.seed, name) {
                return Err(MergeError(format!(
                    "{name}: seed {} is also in {before}: the summaries overlap",
                    r.seed
                )));
            }
        }
        sometimes_names.extend(part.sometimes.keys().cloned());
    }
    if let Some(shard) = &first.shard {
        let missing: Vec<String> = (0..shard.count)
            .filter(|i| !shards.contains_key(i))
            .map(|i| format!("{i}/{}", shard.count))
            .collect();
        if !missing.is_empty() {
            return Err(MergeError(format!(
                "shards of --seeds {} missing: {} (have {})",
                shard.seeds,
                missing.join(", "),
                shards.values().copied().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let wall_ms = parts.iter().map(|(_, p)| p.wall_ms).fold(0.0, f64::max);
    let head = SweepHead {
        sometimes: sometimes_names.into_iter().collect(),
        ..head
    };
    let runs = parts.into_iter().flat_map(|(_, p)| p.runs).collect();
    Ok(Summary::from_runs(head, runs, wall_ms))
}

fn shard_text(shard: &Option<Shard>) -> String {
    match shard {
        Some(s) => format!("shard {}/{} of --seeds {}", s.index, s.count, s.seeds),
        None => "not a shard".into(),
    }
}

/// Failed seeds by signature: the largest group first, then the smallest seed.
fn groups(runs: &[SeedReport]) -> Vec<Group> {
    let mut by_signature: BTreeMap<&str, Group> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.status == Status::Failed) {
        let signature = r.signature.as_deref().unwrap_or("(no failure recorded)");
        let group = by_signature.entry(signature).or_insert_with(|| Group {
            signature: signature.to_string(),
            check: r
                .failure
                .as_ref()
                .map_or(String::new(), |f| f.check.clone()),
            count: 0,
            smallest_seed: r.seed,
            seeds: Vec::new(),
        });
        group.count += 1;
        group.smallest_seed = group.smallest_seed.min(r.seed);
        group.seeds.push(r.seed);
    }
    let mut groups: Vec<Group> = by_signature.into_values().collect();
    for g in &mut groups {
        g.seeds.sort_unstable();
    }
    groups.sort_by(|a, b| {
        (b.count, a.smallest_seed, &a.signature).cmp(&(a.count, b.smallest_seed, &b.signature))
    });
    groups
}

/// `[expect] sometimes`: each mark must show (metric `sometimes.<name>` above zero) in
/// at least its fraction of the sweep's seeds.
fn sometimes_failures(expect: &BTreeMap<String, f64>, runs: &[SeedReport]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, &min_fraction) in expect {
        let metric = format!("sometimes.{name}");
        let hits = runs
            .iter()
            .filter(|r| r.metrics.get(&metric).is_some_and(|&v| v > 0.0))
            .count();
        let fraction = hits as f64 / runs.len().max(1) as f64;
        if fraction < min_fraction {
            failures.push(format!(
                "sometimes `{name}`: reached in {hits} of {} seeds ({fraction:.3}), below the \
                 expected fraction {min_fraction}",
                runs.len()
            ));
        }
    }
    failures
}

/// `[expect.metrics]`: the first metric outside its bound, or missing from the run,
/// as a failure.
fn metric_failure(scenario: &Scenario, metrics: &Metrics, sim_ns: u64) -> Option<Failure> {
    for (name, bound) in &scenario.expect.metrics {
        let message = match metrics.get(name) {
            Some(&value) => match bound.check(value) {
                Ok(()) => continue,
                Err(which) => format!("metric `{name}` = {value} is outside the bound {which}"),
            },
            None => {
                let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                format!(
                    "expect.metrics.{name}: the run produced no metric `{name}`; it produced: {}",
                    known.join(", ")
                )
            }
        };
        return Some(Failure {
            kind: FailureKind::Expectation,
            check: name.clone(),
            message,
            time_ns: sim_ns,
        });
    }
    None
}

fn progress_bar(request: &RunRequest) -> indicatif::ProgressBar {
    if !request.progress || request.seeds.len() < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(request.seeds.len() as u64);
    let style =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed} (eta {eta})");
    bar.set_style(style.expect("a valid template"));
    bar
}

/// One seed, judged; with its artifacts written if it failed or `keep` is set.
fn run_and_judge<S: System>(
    scenario: &Scenario,
    setup: &Arc<Setup<S>>,
    request: &RunRequest,
    seed: u64,
    artifact_places: &AtomicUsize,
) -> SeedReport {
    let schedule = match &request.schedule {
        Some(s) => Schedule { seed, ..s.clone() },
        None => scenario.schedule_for(seed, setup),
    };
    let started = Instant::now();
    let mut outcome = run_seed::<S>(scenario, setup, &schedule, false);
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    if request.check_determinism
        && outcome
            .failure
            .as_ref()
            .is_none_or(|f| f.kind != FailureKind::Panic)
    {
        let again = run_seed::<S>(scenario, setup, &schedule, false);
        if let Some(difference) = difference(&outcome, &again) {
            outcome.failure = Some(Failure {
                kind: FailureKind::Nondeterminism,
                check: "determinism".into(),
                message: format!("seed {seed} ran twice and differed: {difference}"),
                time_ns: outcome.sim_ns,
            });
        }
    }
    if outcome.failure.is_none() {
        outcome.failure = metric_failure(scenario, &outcome.metrics, outcome.sim_ns);
    }
    let status = judge(scenario, &outcome);
    let mut report = SeedReport {
        seed,
        status,
        trace_hash: outcome.trace_hash,
        trace_events: outcome.trace_events,
        sim_ms: outcome.sim_ns as f64 / 1e6,
        wall_ms,
        check_wall_ms: outcome.check_wall_ms,
        history_ops: outcome.history_ops,
        metrics: outcome.metrics.clone(),
        signature: outcome.failure.as_ref().map(signature),
        failure: outcome.failure.clone(),
        artifacts: None,
        traces: Vec::new(),
    };
    if let Some(dir) = &request.artifacts {
        let failing = status == Status::Failed || status == Status::Shown;
        let place = || {
            artifact_places
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        };
        if request.keep || (failing && place()) {
            report.artifacts = Some(write_artifacts::<S>(
                scenario,
                setup,
                &schedule,
                dir,
                &request.bugs,
                &mut report,
            ));
        }
    }
    if let Some(file) = &request.traces {
        let several = request.seeds.len() > 1;
        report.traces = write_traces::<S>(scenario, setup, &schedule, file, several);
    }
    report
}

/// Reruns the seed recording and writes its request traces; the paths written, or why
/// not.
fn write_traces<S: System>(
    scenario: &Scenario,
    setup: &Arc<Setup<S>>,
    schedule: &Schedule,
    file: &Path,
    several: bool,
) -> Vec<String> {
    let recorded = run_seed::<S>(scenario, setup, schedule, true);
    let seed = several.then_some(schedule.seed);
    match crate::spans::write_traces(&recorded.spans, file, seed) {
        Ok((otlp, chrome)) => vec![otlp.display().to_string(), chrome.display().to_string()],
        Err(e) => vec![format!(
            "(could not write traces for {}: {e})",
            file.display()
        )],
    }
}

fn difference(a: &Outcome, b: &Outcome) -> Option<String> {
    if a.trace_hash != b.trace_hash {
        return Some(format!(
            "trace hash {:016x} then {:016x}",
            a.trace_hash, b.trace_hash
        ));
    }
    if a.failure != b.failure {
        return Some(format!("failure {:?} then {:?}", a.failure, b.failure));
    }
    None
}

/// A finished run's status and failure, as a sweep judges it: the run's own failure,
/// else a metric outside its `[expect.metrics]` bounds.
pub(crate) fn verdict(scenario: &Scenario, mut outcome: Outcome) -> (Status, Outcome) {
    if outcome.failure.is_none() {
        outcome.failure = metric_failure(scenario, &outcome.metrics, outcome.sim_ns);
    }
    (judge(scenario, &outcome), outcome)
}

fn judge(scenario: &Scenario, outcome: &Outcome) -> Status {
    let failure = outcome.failure.as_ref();
    match (&scenario.expect.failure, failure) {
        (_, Some(f)) if f.kind == FailureKind::Nondeterminism || f.kind == FailureKind::Panic => {
            Status::Failed
        }
        (Some(expected), Some(f)) if &f.check == expected || f.kind.name() == expected => {
            Status::Shown
        }
        (_, Some(_)) => Status::Failed,
        (_, None) if outcome.unknown => Status::Unknown,
        (Some(_), None) => Status::NotShown,
        (None, None) => Status::Passed,
    }
}

/// A finished run, protocol types erased.
pub struct Outcome {
    /// The trace hash (0 when the run panicked).
    pub trace_hash: u64,
    /// Events the trace hash covers.
    pub trace_events: u64,
    /// Simulated time the run took, in ns.
    pub sim_ns: u64,
    /// The simulation's failure, else the history checker's, if any (a panic is a
    /// failure of kind `panic`). Metric bounds are judged later, by [`run`].
    pub failure: Option<Failure>,
    /// The history checker could not decide.
    pub unknown: bool,
    /// Wall-clock time the history check took, in ms (not a metric: it varies with
    /// the machine).
    pub check_wall_ms: f64,
    /// The run's metrics, by name.
    pub metrics: Metrics,
    /// Events in the client history.
    pub history_ops: usize,
    /// `history.jsonl`, one line per event, when recorded.
    pub history_lines: Vec<String>,
    /// `trace.jsonl`, when recorded.
    pub trace_lines: Vec<String>,
    /// The request traces, when recorded (else empty).
    pub spans: crate::spans::RunSpans,
    /// The nodes each targeted fault struck (fault index, ids), in start order.
    pub resolved: Vec<(usize, Vec<crate::process::NodeId>)>,
}

/// Runs one seed in a fresh thread with a fresh madsim runtime (madsim keeps state
/// per thread, and std's hash seeds are per thread), then checks the history.
pub fn run_seed<S: System>(
    scenario: &Scenario,
    setup: &Arc<Setup<S>>,
    schedule: &Schedule,
    record: bool,
) -> Outcome {
    let seed = schedule.seed;
    // Slack over the scenario's own bound: the driver ends the run itself; this limit
    // only guards against a driver bug spinning forever in simulated time.
    let phases_ms = scenario.duration_ms
        + scenario.quiesce_ms(setup)
        + scenario.liveness.stable_ms.unwrap_or(0);
    let limit = Duration::from_millis(2 * phases_ms + 60_000);
    let joined = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .spawn_scoped(scope, || {
                let mut runtime =
                    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
                runtime.set_time_limit(limit);
                runtime.block_on(simulate::<S>(scenario, setup.clone(), schedule, record))
            })
            .expect("spawn a seed thread")
            .join()
    });
    let result: SimResult<S> = match joined {
        Ok(result) => result,
        Err(panic) => return Outcome::panicked(seed, panic),
    };
    let mut failure = result.failure;
    let mut unknown = false;
    let check_started = Instant::now();
    if failure.is_none() {
        match S::check_history(setup, &result.history) {
            Verdict::Pass => {}
            Verdict::Fail(message) => {
                let check = S::HISTORY_CHECK.to_string();
                failure = Some(Failure {
                    kind: FailureKind::History,
                    check,
                    message,
                    time_ns: result.sim_ns,
                });
            }
            Verdict::Unknown(_) => unknown = true,
        }
    }
    let check_wall_ms = check_started.elapsed().as_secs_f64() * 1e3;
    let json = |v: &dyn erased::Json| v.line();
    Outcome {
        trace_hash: result.trace_hash,
        trace_events: result.trace_events,
        sim_ns: result.sim_ns,
        failure,
        unknown,
        check_wall_ms,
        metrics: result.metrics,
        history_ops: result.history.len(),
        // Only recorded runs write artifacts; the others need no JSON.
        history_lines: if record {
            result.history.iter().map(|e| json(e)).collect()
        } else {
            Vec::new()
        },
        trace_lines: result.trace.iter().map(|e| json(e)).collect(),
        spans: result.spans,
        resolved: result.resolved,
    }
}

mod erased {
    pub trait Json {
        fn line(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn line(&self) -> String {
            serde_json::to_string(self).expect("history and trace events serialize")
        }
    }
}

impl Outcome {
    fn panicked(seed: u64, panic: Box<dyn std::any::Any + Send>) -> Outcome {
        let message = match (panic.downcast_ref::<String>(), panic.downcast_ref::<&str>()) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => "a panic without a message".into(),
        };
        let message = format!("seed {seed} panicked: {message}");
        Outcome {
            trace_hash: 0,
            trace_events: 0,
            sim_ns: 0,
            failure: Some(Failure {
                kind: FailureKind::Panic,
                check: "panic".into(),
                message,
                time_ns: 0,
            }),
            unknown: false,
            check_wall_ms: 0.0,
            metrics: Metrics::new(),
            history_ops: 0,
            history_lines: Vec::new(),
            trace_lines: Vec::new(),
            spans: crate::spans::RunSpans::default(),
            resolved: Vec::new(),
        }
    }
}

/// Reruns the seed with the trace recorded (runs are deterministic, so this is the
/// same run) and writes `summary.json`, `schedule.toml`, `history.jsonl`, `trace.jsonl`.
fn write_artifacts<S: System>(
    scenario: &Scenario,
    setup: &Arc<Setup<S>>,
    schedule: &Schedule,
    root: &Path,
    bugs: &[String],
    report: &mut SeedReport,
) -> String {
    let dir = root
        .join(&scenario.name)
        .join(format!("seed-{}", schedule.seed));
    let recorded = run_seed::<S>(scenario, setup, schedule, true);
    if recorded.trace_hash != report.trace_hash
        && report
            .failure
            .as_ref()
            .is_none_or(|f| f.kind != FailureKind::Panic)
    {
        report.status = Status::Failed;
        report.failure = Some(Failure {
            kind: FailureKind::Nondeterminism,
            check: "determinism".into(),
            message: format!(
                "the recorded rerun's trace hash {:016x} differs",
                recorded.trace_hash
            ),
            time_ns: 0,
        });
        report.signature = report.failure.as_ref().map(signature);
    }
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let resolved = schedule.with_resolved(&recorded.resolved);
        std::fs::write(dir.join("schedule.toml"), resolved.to_toml())?;
        // The seed's summary, and what `faultline report` needs to name the replay.
        let mut summary = serde_json::to_value(&*report).expect("serializes");
        summary["scenario"] = scenario.name.clone().into();
        summary["scenario_file"] = scenario.file.clone().into();
        summary["bugs"] = bugs.into();
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(&summary).expect("serializes"),
        )?;
        write_lines(&dir.join("history.jsonl"), &recorded.history_lines)?;
        write_lines(&dir.join("trace.jsonl"), &recorded.trace_lines)
    })();
    match written {
        // A failing seed's picture: `faultline report` on the folder just written.
        Ok(()) if matches!(report.status, Status::Failed | Status::Shown) => {
            match crate::report::write(&dir) {
                Ok(_) => dir.display().to_string(),
                Err(e) => format!("{} (no report.html: {e})", dir.display()),
            }
        }
        Ok(()) => dir.display().to_string(),
        Err(e) => format!("(could not write {}: {e})", dir.display()),
    }
}

fn write_lines(path: &Path, lines: &[String]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// Seeds in which each `fault_*` metric was above zero.
fn fault_effects(runs: &[SeedReport]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for run in runs {
        for (name, &value) in &run.metrics {
            if name.starts_with("fault_") {
                *seen.entry(name.clone()).or_default() += usize::from(value > 0.0);
            }
        }
    }
    seen
}

/// The fraction of seeds that reached each of `names` (a `sometimes.<name>` metric
/// above zero), and of any other name a checker marked.
fn sometimes(names: &[String], runs: &[SeedReport]) -> BTreeMap<String, f64> {
    let mut reached: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    for run in runs {
        for (metric, &value) in &run.metrics {
            if let Some(name) = metric.strip_prefix("sometimes.") {
                *reached.entry(name.to_string()).or_default() += usize::from(value > 0.0);
            }
        }
    }
    let seeds = runs.len().max(1) as f64;
    reached
        .into_iter()
        .map(|(name, n)| (name, n as f64 / seeds))
        .collect()
}

fn aggregate(runs: &[SeedReport]) -> BTreeMap<String, Aggregate> {
    let mut values: BTreeMap<&str, Vec<f64>> = Default::default();
    for run in runs {
        for (name, &v) in &run.metrics {
            values.entry(name).or_default().push(v);
        }
    }
    values
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(f64::total_cmp);
            let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (
                name.to_string(),
                Aggregate {
                    mean,
                    min: v[0],
                    p50: at(0.5),
                    p99: at(0.99),
                    max: v[v.len() - 1],
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_takes_numbers_and_ids_out() {
        assert_eq!(
            normalise("node 3 at index 17"),
            "node N at index N",
            "decimal numbers"
        );
        assert_eq!(
            normalise("node 0 lost 1 delivered values in a restart, first id 8589934775"),
            "node N lost N delivered values in a restart, first id N"
        );
        assert_eq!(normalise("term 12.5 after 1.25s"), "term N after Ns");
        assert_eq!(
            normalise("hash 0x1f then 7fa3c2 and fe12ab34"),
            "hash N then N and N"
        );
        assert_eq!(
            normalise("n3 and seed-17 took 10ms"),
            "nN and seed-N took Nms"
        );
        assert_eq!(normalise("dead cafe, face: ok"), "dead cafe, face: ok");
        assert_eq!(normalise("  two\n  lines\tend  "), "two lines end");
        assert_eq!(normalise("{1, 2, 3} [n1, n2]"), "{N, N, N} [nN, nN]");
    }

    #[test]
    fn a_signature_is_the_check_then_the_normalised_message() {
        let failure = Failure {
            kind: FailureKind::Invariant,
            check: "election-safety".into(),
            message: "two leaders in term 4: n1 and n3".into(),
            time_ns: 5,
        };
        assert_eq!(
            signature(&failure),
            "election-safety: two leaders in term N: nN and nN"
        );
    }

    #[test]
    fn a_shard_is_i_of_n_from_0() {
        let shard = Shard::parse("1/4", "0..200").unwrap();
        assert_eq!((shard.index, shard.count), (1, 4));
        let seeds: Vec<u64> = (0..10).filter(|&s| shard.has(s)).collect();
        assert_eq!(seeds, [1, 5, 9]);
        for bad in ["4/4", "1/0", "x", "1/", "-1/4", "1/4/2"] {
            let e = Shard::parse(bad, "0..10").unwrap_err();
            assert!(e.starts_with(&format!("--shard {bad}:")), "{e}");
        }
    }

    fn report(seed: u64, status: Status, message: Option<&str>) -> SeedReport {
        SeedReport {
            seed,
            status,
            failure: message.map(|m| Failure {
                kind: FailureKind::Invariant,
                check: "safety".into(),
                message: m.into(),
                time_ns: 0,
            }),
            signature: None,
            trace_hash: seed,
            trace_events: 1,
            sim_ms: seed as f64,
            wall_ms: 0.0,
            check_wall_ms: 0.0,
            history_ops: 0,
            metrics: [("m".to_string(), seed as f64)].into(),
            artifacts: None,
            traces: Vec::new(),
        }
    }

    fn head() -> SweepHead {
        SweepHead {
            scenario: "s".into(),
            file: "s.toml".into(),
            protocol: "p".into(),
            bugs: Vec::new(),
            expect_failure: None,
            expect_sometimes: BTreeMap::new(),
            sometimes: Vec::new(),
        }
    }

    #[test]
    fn failures_group_by_signature_largest_first() {
        let runs = vec![
            report(9, Status::Failed, Some("node 2 lost 1 values")),
            report(4, Status::Failed, Some("two leaders in term 3")),
            report(5, Status::Passed, None),
            report(7, Status::Failed, Some("node 0 lost 5 values")),
            report(6, Status::Failed, Some("node 1 lost 1 values")),
        ];
        let summary = Summary::from_runs(head(), runs, 1.0);
        let g = &summary.groups;
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].signature, "safety: node N lost N values");
        assert_eq!((g[0].count, g[0].smallest_seed), (3, 6));
        assert_eq!(g[0].seeds, [6, 7, 9]);
        assert_eq!((g[1].count, g[1].smallest_seed), (1, 4));
        assert_eq!(g.iter().map(|g| g.count).sum::<usize>(), summary.failed);
        assert_eq!(
            summary.runs[0].signature.as_deref(),
            Some("safety: two leaders in term N")
        );
    }

    #[test]
    fn merged_shards_summarize_as_one_sweep() {
        let all: Vec<SeedReport> = (0..10)
            .map(|s| match s % 3 {
                0 => report(s, Status::Failed, Some(&format!("node {s} lost"))),
                _ => report(s, Status::Passed, None),
            })
            .collect();
        let whole = Summary::from_runs(head(), all.clone(), 1.0);
        let shard = |i: u64| {
            let runs = all.iter().filter(|r| r.seed % 2 == i).cloned().collect();
            let mut s = Summary::from_runs(head(), runs, 1.0);
            s.shard = Some(Shard::parse(&format!("{i}/2"), "0..10").unwrap());
            (format!("shard-{i}.json"), s)
        };
        let merged = merge(vec![shard(1), shard(0)]).unwrap();
        assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            serde_json::to_value(&whole).unwrap()
        );
        let e = merge(vec![shard(0), shard(0)]).unwrap_err();
        assert!(e.0.contains("shard-0.json: shard 0/2 again"), "{e}");
        let e = merge(vec![shard(1)]).unwrap_err();
        assert!(e.0.contains("missing: 0/2"), "{e}");
        let mut other = shard(1);
        other.1.bugs = vec!["b".into()];
        let e = merge(vec![shard(0), other]).unwrap_err();
        assert!(e.0.starts_with("shard-1.json: bugs"), "{e}");
    }
}
