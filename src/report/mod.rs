//! `faultline report DIR`: one self-contained HTML page that pictures a seed's run
//! from its artifacts, on one simulated-time axis: a space-time (Lamport) diagram of
//! the messages, fault lanes, a protocol lane (Raft leaders and terms, SWIM views),
//! the client history as Porcupine-style bars with the linearizability witness
//! highlighted, and the failure with the commands that replay and shrink it.
//!
//! The page has no network access: its script and data are inline, the diagram is
//! drawn on a canvas. Runs too large to draw whole are windowed
//! ([`messages::window`], [`history::cut`]) and the page says what it left out.
//!
//! The pictures follow known ones: the space-time diagram is Lamport's ("Time, Clocks,
//! and the Ordering of Events in a Distributed System", CACM 1978) as Maelstrom's
//! `messages.svg` draws it (<https://github.com/jepsen-io/maelstrom>, which also caps
//! its events); the history bars and annotation lanes are Porcupine's visualisation
//! (<https://github.com/anishathalye/porcupine>, `visualization.go`).

pub mod history;
pub mod html;
pub mod input;
pub mod lanes;
pub mod messages;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use input::ReportError;

/// Most message arrows embedded in a page; a larger run shows a window of them
/// around the failure. 20,000 arrows redraw on a canvas in a few milliseconds.
pub const MESSAGES_MAX: usize = 20_000;

/// Everything the page draws, as embedded in it (JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The failure, the seed, the commands.
    pub meta: Meta,
    /// The space-time diagram's messages.
    pub messages: messages::Messages,
    /// The schedule's faults, one row each.
    pub faults: Vec<lanes::Span>,
    /// Faults in the schedule (more than `faults.len()` when cut).
    pub faults_total: usize,
    /// Nodes' and clients' down and paused spans.
    pub states: Vec<lanes::Span>,
    /// The protocol lane.
    pub protocol: lanes::ProtocolLane,
    /// The client history.
    pub history: history::HistoryLane,
}

/// The page's heading: what failed, where, and how to see it again.
#[derive(Debug, Serialize)]
pub struct Meta {
    /// The scenario's name (from `summary.json`, else the folder's parent).
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// `failed`, `shown` (an expected failure), `passed`...
    pub status: String,
    /// The failure: `{kind, check, message, time_ns}`, if any.
    pub failure: Option<serde_json::Value>,
    /// The run's length in simulated time, ns (the trace's last event).
    pub end_ns: u64,
    /// The trace hash, as `summary.json` gives it.
    pub trace_hash: String,
    /// `faultline replay ...`, `faultline shrink ...`, `faultline run ... --schedule`.
    pub commands: Vec<String>,
    /// Trace events read.
    pub trace_events: usize,
}

/// Builds the report of a seed's artifact folder and writes it to
/// `DIR/report.html`; returns that path.
///
/// # Errors
/// [`ReportError::Missing`] names the first artifact absent from `dir`;
/// [`ReportError::Malformed`] gives `file:line` and what was expected;
/// [`ReportError::Io`] when a file cannot be read or the page written.
pub fn write(dir: &Path) -> Result<PathBuf, ReportError> {
    let report = build(dir)?;
    let path = dir.join("report.html");
    std::fs::write(&path, html::render(&report)).map_err(|error| ReportError::Io {
        path: path.clone(),
        error,
        writing: true,
    })?;
    Ok(path)
}

/// Reads the artifacts and lays out what the page draws (see [`write`]).
///
/// # Errors
/// As [`write`], for reading.
pub fn build(dir: &Path) -> Result<Report, ReportError> {
    let a = input::read(dir)?;
    let s = &a.summary;
    let text = |k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let seed = s.get("seed").and_then(|v| v.as_u64()).unwrap_or(0);
    let scenario = text("scenario").unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|d| {
                d.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "SCENARIO".into())
    });
    let failure = s.get("failure").filter(|f| !f.is_null()).cloned();
    let failure_ns = failure
        .as_ref()
        .and_then(|f| f.get("time_ns"))
        .and_then(|t| t.as_u64());
    let end_ns = a.trace.last().map_or(0, |l| l.time_ns);
    let focus = failure_ns.filter(|&t| t > 0).unwrap_or(end_ns);

    let mut messages = messages::pair(&a.trace);
    messages::window(&mut messages, MESSAGES_MAX, focus);

    let mut ops = history::operations(&a.history);
    let total_ops = ops.len();
    let history_failed = failure
        .as_ref()
        .and_then(|f| f.get("kind"))
        .and_then(|k| k.as_str())
        == Some("history");
    let (stuck, note) = if history_failed {
        history::witness(&mut ops, &a.history_bytes, &dir.join("history.jsonl"))
    } else {
        let why = match failure {
            Some(_) => "the failure is not the history check's: no linearizability witness",
            None => "the run did not fail: no linearizability witness",
        };
        (Vec::new(), Some(why.to_string()))
    };
    history::cut(&mut ops, history::OPS_MAX, focus);

    let bugs: Vec<String> = s
        .get("bugs")
        .and_then(|b| b.as_array())
        .map(|b| {
            b.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let target = text("scenario_file").unwrap_or_else(|| scenario.clone());
    // The cluster's size, for what a targeted fault's ids cut off: every node acts.
    let nodes = a
        .trace
        .iter()
        .filter_map(|l| l.actor.strip_prefix('n')?.parse::<usize>().ok())
        .max()
        .map_or(0, |max| max + 1);
    let report = Report {
        meta: Meta {
            commands: commands(&target, seed, &bugs, dir),
            scenario,
            seed,
            status: text("status").unwrap_or_else(|| "unknown".into()),
            failure,
            end_ns,
            trace_hash: text("trace_hash").unwrap_or_default(),
            trace_events: a.trace.len(),
        },
        messages,
        faults_total: a.schedule.faults.len(),
        faults: lanes::fault_spans(&a.schedule.faults, nodes),
        states: lanes::node_states(&a.trace),
        protocol: lanes::protocol(&a.trace),
        history: history::HistoryLane {
            ops,
            total: total_ops,
            stuck,
            note,
        },
    };
    Ok(report)
}

/// The replay, shrink and exact-schedule commands for the seed.
fn commands(target: &str, seed: u64, bugs: &[String], dir: &Path) -> Vec<String> {
    let bug_flags: String = bugs.iter().map(|b| format!(" --bug {b}")).collect();
    vec![
        format!("faultline replay {target} --seed {seed}{bug_flags}"),
        format!("faultline shrink {target} --seed {seed}{bug_flags}"),
        format!(
            "faultline run {target} --schedule {}{bug_flags}",
            dir.join("schedule.toml").display()
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_carry_the_seed_and_every_bug() {
        let c = commands(
            "raft-figure8",
            3,
            &["a".into(), "b".into()],
            Path::new("r/s"),
        );
        assert_eq!(
            c[0],
            "faultline replay raft-figure8 --seed 3 --bug a --bug b"
        );
        assert_eq!(
            c[1],
            "faultline shrink raft-figure8 --seed 3 --bug a --bug b"
        );
        assert!(c[2].contains("--schedule r/s/schedule.toml"), "{}", c[2]);
    }
}
