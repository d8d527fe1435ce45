//! Reading a seed's artifacts (`trace.jsonl`, `history.jsonl`, `summary.json`,
//! `schedule.toml`), with errors that name the file, the line and what was expected.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scenario::Schedule;

/// The artifacts a report reads, in the order they are looked for.
pub const ARTIFACTS: [&str; 4] = [
    "summary.json",
    "schedule.toml",
    "trace.jsonl",
    "history.jsonl",
];

/// Why a report could not be written. [`ReportError::exit_code`] maps it to the
/// command line's codes (2 bad input, 3 could not write).
#[derive(Debug)]
pub enum ReportError {
    /// The folder is not a seed's artifact folder: `file` is missing from it.
    Missing {
        /// The folder.
        dir: PathBuf,
        /// The first artifact not found (one of [`ARTIFACTS`]).
        file: &'static str,
    },
    /// A line of an artifact is not what it should be.
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was expected there, and what was found.
        message: String,
    },
    /// An artifact could not be read, or the report could not be written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
        /// Whether it was the report being written (exit 3) rather than an input
        /// being read (exit 2).
        writing: bool,
    },
}

impl ReportError {
    /// 2 for bad input (missing or malformed artifacts, unreadable files), 3 when the
    /// report itself could not be written.
    pub fn exit_code(&self) -> i32 {
        match self {
            ReportError::Io { writing: true, .. } => 3,
            _ => 2,
        }
    }
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Missing { dir, file } => write!(
                f,
                "{}: no {file} here: expected a seed's artifact folder (results/SCENARIO/seed-N, \
                 holding {})",
                dir.display(),
                ARTIFACTS.join(", ")
            ),
            ReportError::Malformed {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            ReportError::Io { path, error, .. } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for ReportError {}

/// One line of `trace.jsonl` as read back (see [`crate::sim::trace::TraceRecord`]).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TraceLine {
    /// Simulated time, ns.
    pub time_ns: u64,
    /// `n3`, `c0` or `sim`.
    pub actor: String,
    /// The event's name.
    pub event: String,
    /// Its description.
    #[serde(default)]
    pub detail: String,
    /// A node message's id.
    #[serde(default)]
    pub msg: Option<u64>,
    /// The other end.
    #[serde(default)]
    pub peer: Option<String>,
    /// The message class.
    #[serde(default)]
    pub class: Option<String>,
    /// A client request's number.
    #[serde(default)]
    pub req: Option<u64>,
}

/// One line of `history.jsonl` as read back: the fields every protocol's history has,
/// and the operation's own (`f`, `key`, `value`...) as JSON.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct HistoryLine {
    /// The client.
    pub process: u64,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Simulated time, ns.
    pub time_ns: u64,
    /// Everything else on the line but `index`.
    #[serde(flatten)]
    pub op: serde_json::Map<String, serde_json::Value>,
}

/// Every artifact of a seed, read.
pub struct Artifacts {
    /// The folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: serde_json::Value,
    /// `schedule.toml`.
    pub schedule: Schedule,
    /// `trace.jsonl`.
    pub trace: Vec<TraceLine>,
    /// `history.jsonl`, and its bytes (the linearizability witness re-reads them).
    pub history: Vec<HistoryLine>,
    /// `history.jsonl` as read.
    pub history_bytes: Vec<u8>,
}

/// Reads a seed's artifact folder; the first missing file is named.
pub fn read(dir: &Path) -> Result<Artifacts, ReportError> {
    for file in ARTIFACTS {
        if !dir.join(file).is_file() {
            return Err(ReportError::Missing {
                dir: dir.to_path_buf(),
                file,
            });
        }
    }
    let path = dir.join("summary.json");
    let summary: serde_json::Value = serde_json::from_slice(&read_bytes(&path)?)
        .map_err(|e| malformed(&path, e.line(), format!("expected a JSON summary: {e}")))?;
    if summary.get("seed").and_then(|s| s.as_u64()).is_none() {
        return Err(malformed(
            &path,
            1,
            "expected a JSON object with a `seed` number".into(),
        ));
    }
    let path = dir.join("schedule.toml");
    let text = String::from_utf8_lossy(&read_bytes(&path)?).into_owned();
    let schedule: Schedule = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        malformed(
            &path,
            line,
            format!("expected a fault schedule: {}", e.message()),
        )
    })?;
    let path = dir.join("trace.jsonl");
    let trace = parse_lines(
        &path,
        &read_bytes(&path)?,
        "a trace record {time_ns, actor, event, detail}",
    )?;
    let path = dir.join("history.jsonl");
    let history_bytes = read_bytes(&path)?;
    let history: Vec<HistoryLine> = parse_lines(
        &path,
        &history_bytes,
        "a history event {process, type, time_ns, ...}",
    )?;
    for (i, h) in history.iter().enumerate() {
        if !matches!(h.kind.as_str(), "invoke" | "ok" | "fail" | "info") {
            return Err(malformed(
                &path,
                i + 1,
                format!(
                    "expected `type` invoke, ok, fail or info, found {:?}",
                    h.kind
                ),
            ));
        }
    }
    Ok(Artifacts {
        dir: dir.to_path_buf(),
        summary,
        schedule,
        trace,
        history,
        history_bytes,
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, ReportError> {
    std::fs::read(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
        writing: false,
    })
}

fn malformed(path: &Path, line: usize, message: String) -> ReportError {
    ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// One JSON value per non-blank line; a bad line is reported with its number and
/// `expected`.
pub fn parse_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    expected: &str,
) -> Result<Vec<T>, ReportError> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value = serde_json::from_slice(line)
            .map_err(|e| malformed(path, i + 1, format!("expected {expected}: {e}")))?;
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_trace_line_names_its_line_and_what_was_expected() {
        let text = b"{\"time_ns\":1,\"actor\":\"n0\",\"event\":\"send\",\"detail\":\"\"}\n\n{\"time_ns\":2}\n";
        let err = parse_lines::<TraceLine>(Path::new("t.jsonl"), text, "a trace record")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.jsonl:3: expected a trace record"),
            "{err}"
        );
        assert!(err.contains("actor"), "{err}");
    }

    #[test]
    fn structured_fields_are_read_when_present() {
        let text = br#"{"time_ns":5,"actor":"n1","event":"send","detail":"x","msg":7,"peer":"n2","class":"append"}"#;
        let lines: Vec<TraceLine> = parse_lines(Path::new("t"), text, "").unwrap();
        assert_eq!(lines[0].msg, Some(7));
        assert_eq!(lines[0].peer.as_deref(), Some("n2"));
        assert_eq!(lines[0].class.as_deref(), Some("append"));
    }

    #[test]
    fn a_folder_without_artifacts_names_the_missing_file() {
        let dir =
            std::env::temp_dir().join(format!("faultline-report-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), "{\"seed\":1}").unwrap();
        let err = read(&dir).err().expect("schedule.toml is missing");
        assert!(matches!(
            err,
            ReportError::Missing {
                file: "schedule.toml",
                ..
            }
        ));
        assert_eq!(err.exit_code(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_history_line_with_an_unknown_type_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("faultline-report-type-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), "{\"seed\":1}").unwrap();
        std::fs::write(dir.join("schedule.toml"), "seed = 1\n").unwrap();
        std::fs::write(dir.join("trace.jsonl"), "").unwrap();
        std::fs::write(
            dir.join("history.jsonl"),
            "{\"process\":0,\"type\":\"invoke\",\"time_ns\":1}\n{\"process\":0,\"type\":\"done\",\"time_ns\":2}\n",
        )
        .unwrap();
        let err = read(&dir).err().expect("a bad type").to_string();
        assert!(
            err.contains("history.jsonl:2: expected `type` invoke"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
