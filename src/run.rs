//! Running scenarios: one seed on a fresh thread and runtime, sweeps over seed ranges
//! with several jobs, the determinism check, expectations and artifacts.

#![warn(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// How it ended, judged against the scenario's expectation.
    pub status: Status,
    /// The failure, if any (an expected one included).
    pub failure: Option<Failure>,
    /// The trace hash, the run's fingerprint (16 hex digits in JSON).
    #[serde(serialize_with = "hex")]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub traces: Vec<String>,
}

fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

/// Mean, min, max, p50 and p99 of one metric over the seeds of a sweep.
#[derive(Clone, Debug, Serialize)]
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

/// A sweep's result: counts by [`Status`], the seeds that failed, aggregated metrics
/// and every seed's report.
#[derive(Clone, Debug, Serialize)]
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
    /// Sweep-level expectations that did not hold (`[expect] sometimes`), each a
    /// message naming the mark, the fraction of seeds that hit it and the bound.
    pub sweep_failures: Vec<String>,
    /// Simulated time of all the seeds' runs together, in ms.
    pub sim_ms: f64,
    /// Wall-clock time of the sweep, in ms.
    pub wall_ms: f64,
    /// Each metric, by name, over the seeds that produced it.
    pub metrics: std::collections::BTreeMap<String, Aggregate>,
    /// Proof that faults fired: for each fault effect the runs count
    /// (`fault_<kind>_<effect>` metrics), how many seeds saw it.
    pub fault_effects: std::collections::BTreeMap<String, usize>,
    /// For each state the protocol may mark (`System::sometimes`), the fraction of
    /// seeds that reached it.
    pub sometimes: std::collections::BTreeMap<String, f64>,
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
    let mut runs = reports.into_inner().unwrap();
    runs.sort_by_key(|r| r.seed);
    let count = |s: Status| runs.iter().filter(|r| r.status == s).count();
    let sweep_failures = sometimes_failures(scenario, &runs);
    Ok(Summary {
        scenario: scenario.name.clone(),
        file: scenario.file.clone(),
        protocol: S::NAME.to_string(),
        bugs: setup.bugs.clone(),
        expect_failure: scenario.expect.failure.clone(),
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
        sweep_failures,
        sim_ms: runs.iter().map(|r| r.sim_ms).sum(),
        wall_ms: started.elapsed().as_secs_f64() * 1e3,
        metrics: aggregate(&runs),
        fault_effects: fault_effects(&runs),
        sometimes: sometimes(S::sometimes(), &runs),
        runs,
    })
}

/// `[expect] sometimes`: each mark must show (metric `sometimes.<name>` above zero) in
/// at least its fraction of the sweep's seeds.
fn sometimes_failures(scenario: &Scenario, runs: &[SeedReport]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, &min_fraction) in &scenario.expect.sometimes {
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
fn fault_effects(runs: &[SeedReport]) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
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
fn sometimes(names: &[&str], runs: &[SeedReport]) -> std::collections::BTreeMap<String, f64> {
    let mut reached: std::collections::BTreeMap<String, usize> =
        names.iter().map(|n| (n.to_string(), 0)).collect();
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

fn aggregate(runs: &[SeedReport]) -> std::collections::BTreeMap<String, Aggregate> {
    let mut values: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
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
