//! The lesson catalogue: each lesson is a shipped scenario at one seed (with a bug
//! injected, or not) and the shrunk fault schedule that shows its anomaly, committed
//! under `lessons/`. `faultline lessons` lists them; `faultline lessons NAME` prints
//! one, runs it by replaying its schedule, and checks that it fails as the catalogue
//! says (and, for key-value lessons, reaches the consistency ladder's rung it names).
//!
//! A lesson file, `lessons/<name>.toml`:
//!
//! ```toml
//! name = "figure8"
//! title = "Raft Figure 8: an entry of an earlier term committed by counting replicas"
//! scenario = "raft-figure8"          # a shipped scenario
//! bug = "figure8-commit"             # optional: see `faultline bugs`
//! seed = 0
//! schedule = "figure8.schedule.toml" # beside it: `faultline shrink`'s schedule.min.toml
//! faults_before = 10                 # the seed's faults before shrinking
//! failure = "leader-completeness"    # the check that must fail; absent: it must pass
//! rung = "linearizable"              # optional: the ladder's level (key-value lessons)
//! [metrics]                          # optional: bounds the run's metrics must meet
//! false_positive_dead_about_healthy = { min = 1 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::history_file::{self, Options};
use crate::check::ladder::{self, Budget, Ladder, Level};
use crate::check::model::ModelKind;
use crate::registry::{self, Protocol};
use crate::run::{RunRequest, Summary};
use crate::scenario::{MetricBound, Scenario, Schedule};

/// Lesson files at most: the catalogue is read whole.
pub const LESSONS_MAX: usize = 256;

/// One catalogue entry (a `lessons/<name>.toml` file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    /// The name `faultline lessons NAME` takes.
    pub name: String,
    /// One line: what it shows.
    pub title: String,
    /// The shipped scenario it runs (a name in `scenarios/`).
    pub scenario: String,
    /// The bug injected, if any (`faultline bugs`).
    #[serde(default)]
    pub bug: Option<String>,
    /// The seed.
    pub seed: u64,
    /// The shrunk schedule's file, relative to the lessons folder.
    pub schedule: String,
    /// Faults of the seed's schedule before shrinking.
    pub faults_before: usize,
    /// The check that must fail (its name, or its failure kind's); `None`: the run
    /// must pass its checks.
    #[serde(default)]
    pub failure: Option<String>,
    /// Key-value lessons: the consistency ladder's level the history reaches
    /// ([`Level::NAMES`]).
    #[serde(default)]
    pub rung: Option<String>,
    /// Bounds the run's metrics must meet (what a lesson about rates shows).
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricBound>,
}

/// The lessons folder: `lessons/` of faultline's own crate.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lessons")
}

/// Every lesson, by name. Errors: the folder or a file cannot be read, a file is
/// not a lesson (naming the file and what is wrong), or names a rung that is not one.
pub fn catalogue() -> Result<Vec<Lesson>, String> {
    let dir = dir();
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut lessons = Vec::new();
    for entry in entries.take(LESSONS_MAX * 2) {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".toml") || name.ends_with(".schedule.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let lesson: Lesson =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(rung) = &lesson.rung {
            if Level::parse(rung).is_none() {
                return Err(format!(
                    "{}: rung {rung:?}: expected one of {}",
                    path.display(),
                    Level::NAMES.join(", ")
                ));
            }
        }
        lessons.push(lesson);
    }
    lessons.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(lessons)
}

/// The lesson named `name`; the error lists the names there are.
pub fn find(name: &str) -> Result<Lesson, String> {
    let all = catalogue()?;
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    let listed = names.join(", ");
    all.iter()
        .find(|l| l.name == name)
        .cloned()
        .ok_or_else(|| format!("no lesson named {name:?}; the lessons are: {listed}"))
}

/// What running a lesson showed.
#[derive(Debug)]
pub struct LessonRun {
    /// The scenario, with the schedule's overrides.
    pub scenario: Scenario,
    /// The run's summary (one seed).
    pub summary: Summary,
    /// The key-value history's ladder, for Raft lessons.
    pub ladder: Option<Ladder>,
    /// Where the run's artifacts are.
    pub artifacts: Option<PathBuf>,
    /// `Err` says how the run differs from what the catalogue says.
    pub as_expected: Result<(), String>,
}

/// Runs `lesson` (its scenario at its seed, its bug, its shrunk schedule) with
/// artifacts under `artifacts_root` (`results/<scenario>/seed-<N>/`), then judges
/// it against the catalogue. Errors: the scenario, schedule or bug is bad.
pub fn run(
    lesson: &Lesson,
    protocols: &[Protocol],
    artifacts_root: &Path,
) -> Result<LessonRun, String> {
    let base = Scenario::find(&lesson.scenario).map_err(|e| e.to_string())?;
    let protocol = registry::find(protocols, &base).map_err(|e| e.to_string())?;
    let schedule =
        Schedule::load(&dir().join(&lesson.schedule), &base).map_err(|e| e.to_string())?;
    let scenario = base.with_overrides(&schedule).map_err(|e| e.to_string())?;
    let request = RunRequest {
        seeds: vec![lesson.seed],
        schedule: Some(schedule),
        bugs: lesson.bug.iter().cloned().collect(),
        artifacts: Some(artifacts_root.to_path_buf()),
        keep: true,
        jobs: 1,
        ..RunRequest::default()
    };
    let summary = (protocol.run)(&scenario, &request).map_err(|e| e.to_string())?;
    let report = summary.runs.first().ok_or("the run produced no seed")?;
    let artifacts = report.artifacts.as_ref().map(PathBuf::from);
    let ladder = match (&artifacts, scenario.protocol.as_str()) {
        (Some(dir), "raft") => {
            let h = history_file::load(&dir.join("history.jsonl"), &Options::new(ModelKind::Kv))
                .map_err(|e| e.to_string())?;
            Some(ladder::check(&h.problem, &Budget::default()))
        }
        _ => None,
    };
    let as_expected = judge(lesson, &summary, ladder.as_ref());
    Ok(LessonRun {
        scenario,
        summary,
        ladder,
        artifacts,
        as_expected,
    })
}

/// Whether the run failed the check the lesson names (or passed, if it names none),
/// met its metric bounds, and reached its rung.
fn judge(lesson: &Lesson, summary: &Summary, ladder: Option<&Ladder>) -> Result<(), String> {
    let report = &summary.runs[0];
    let failed = report
        .failure
        .as_ref()
        .map(|f| (f.check.clone(), f.kind.name().to_string()));
    match (&lesson.failure, &failed) {
        (None, None) => {}
        (Some(want), Some((check, kind))) if want == check || want == kind => {}
        (want, got) => {
            return Err(format!(
                "expected {}, the run {}",
                want.as_ref()
                    .map_or("every check to pass".into(), |w| format!("`{w}` to fail")),
                got.as_ref()
                    .map_or("passed".into(), |(c, _)| format!("failed `{c}`"))
            ))
        }
    }
    for (name, bound) in &lesson.metrics {
        let value = report
            .metrics
            .get(name)
            .ok_or_else(|| format!("the run has no metric {name}"))?;
        bound
            .check(*value)
            .map_err(|b| format!("metric {name} = {value} is outside {b}"))?;
    }
    if let Some(want) = &lesson.rung {
        let got = ladder
            .and_then(Ladder::level)
            .map_or("unknown", Level::name);
        if got != want {
            return Err(format!("expected rung {want}, the ladder says {got}"));
        }
    }
    Ok(())
}
