//! Checking history files and reporting on them: the full text report of one file,
//! one line per file for a batch, and JSON.
//!
//! Exit codes (`faultline check`): 0 every file linearizable, 1 some file not
//! linearizable, 2 bad input or usage (takes precedence: a file could not be read),
//! 3 some verdict unknown and none not linearizable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::check::history_file::{load, HistoryError, LoadedHistory, Options};
use crate::check::linearizability::{
    check_problems, key_label, KeyResult, Limits, Operation, Outcome,
};
use crate::check::model::Machine;
use crate::system::Verdict;

/// One file's result: loaded and checked, or why not.
pub struct FileResult {
    /// The file.
    pub path: PathBuf,
    /// The history and its outcome, or why it could not be read.
    pub result: Result<(LoadedHistory, Outcome), HistoryError>,
    /// Wall time to read and parse the file.
    pub load_time: Duration,
}

impl FileResult {
    /// 0 linearizable, 1 not, 2 bad input, 3 unknown.
    pub fn exit_code(&self) -> i32 {
        match &self.result {
            Err(_) => 2,
            Ok((_, o)) => match o.verdict {
                Verdict::Pass => 0,
                Verdict::Fail(_) => 1,
                Verdict::Unknown(_) => 3,
            },
        }
    }
}

/// The exit code of a batch: 2 if any file is bad input, else 1 if any is not
/// linearizable, else 3 if any is unknown, else 0.
pub fn exit_code(results: &[FileResult]) -> i32 {
    let codes: Vec<i32> = results.iter().map(FileResult::exit_code).collect();
    [2, 1, 3]
        .into_iter()
        .find(|c| codes.contains(c))
        .unwrap_or(0)
}

/// Loads every file (in parallel, on `limits.threads` threads) and checks them
/// together under one set of bounds; results in the order of `paths`. The
/// timeout covers loading and checking.
pub fn check_files(paths: &[PathBuf], options: &Options, limits: &Limits) -> Vec<FileResult> {
    let start = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<FileResult>>> =
        paths.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..limits.threads.clamp(1, paths.len().max(1)) {
            // Each round takes the next file: `paths.len()` in all.
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(path) = paths.get(i) else { return };
                let t = Instant::now();
                let loaded = load(path, options);
                *slots[i].lock().expect("slot") = Some(FileResult {
                    path: path.clone(),
                    result: loaded.map(|h| {
                        let o = Outcome {
                            verdict: Verdict::Pass,
                            model: "",
                            keys: Vec::new(),
                            operations: 0,
                            elapsed: Duration::ZERO,
                        };
                        (h, o)
                    }),
                    load_time: t.elapsed(),
                });
            });
        }
    });
    let mut results: Vec<FileResult> = slots
        .into_iter()
        .map(|s| s.into_inner().expect("slot").expect("every file loaded"))
        .collect();
    let mut limits = limits.clone();
    if let Some(t) = limits.timeout {
        limits.timeout = Some(
            t.saturating_sub(start.elapsed())
                .max(Duration::from_millis(1)),
        );
    }
    let loaded: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].result.is_ok())
        .collect();
    let problems: Vec<_> = loaded
        .iter()
        .map(|&i| {
            let (h, _) = results[i].result.as_ref().expect("loaded");
            h.problem.clone()
        })
        .collect();
    let outcomes = check_problems(&problems, &limits);
    for (i, o) in loaded.into_iter().zip(outcomes) {
        if let Ok((_, slot)) = &mut results[i].result {
            *slot = o;
        }
    }
    results
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass => "linearizable",
        Verdict::Fail(_) => "not linearizable",
        Verdict::Unknown(_) => "unknown",
    }
}

fn show_time(h: &LoadedHistory, t: u64) -> String {
    if h.timed {
        format!("{}.{:06}ms", t / 1_000_000, t % 1_000_000)
    } else {
        format!("event {}", t + 1)
    }
}

fn lines_of(h: &LoadedHistory, o: &Operation) -> String {
    let inv = h.sources[o.invoke].line;
    match o.completion {
        Some(c) => format!("lines {inv}, {}", h.sources[c].line),
        None => format!("line {inv} (never completed)"),
    }
}

/// The full report of one checked file: details, then a last line
/// `linearizable`, `not linearizable` or `unknown`.
pub fn render_text(h: &LoadedHistory, o: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} history, model {}: {} operation(s) on {} key(s)",
        h.path.display(),
        h.format.name(),
        o.model,
        o.operations,
        o.keys.len()
    );
    for n in &h.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for (k, f) in o.failures() {
        let ops = &h.problem.keys[k.index].1;
        let m = Machine::new(h.problem.model, &h.problem.values, h.problem.initial);
        let cut_line = ops
            .iter()
            .filter(|op| op.ret == Some(f.cut))
            .filter_map(|op| op.completion)
            .map(|c| h.sources[c].line)
            .min();
        let _ = writeln!(
            out,
            "{} is not linearizable: the search linearized at most {} of its {} operation(s); already so at {}{}.",
            key_label(&k.key),
            f.linearized_max,
            k.operations,
            show_time(h, f.cut),
            cut_line.map_or(String::new(), |l| format!(" (line {l})")),
        );
        let _ = writeln!(
            out,
            "  These {} operation(s) have no linearization{}:",
            f.witness.len(),
            if f.minimal {
                " (minimal: without any one of them the rest would be linearizable, or it is the only source of a value one of them observed)"
            } else {
                " (minimisation stopped at its step bound; some may not be needed)"
            }
        );
        for &i in &f.witness {
            let op = &ops[i];
            let ret = op
                .ret
                .map_or_else(|| "? (indeterminate)".to_string(), |r| show_time(h, r));
            let _ = writeln!(
                out,
                "  process {} [{} .. {}]  {}  ({})",
                op.process,
                show_time(h, op.call),
                ret,
                m.describe(&op.op, op.ret.is_some()),
                lines_of(h, op)
            );
            let _ = writeln!(
                out,
                "    {:>6}: {}",
                h.sources[op.invoke].line,
                h.event_text(op.invoke)
            );
            if let Some(c) = op.completion {
                let _ = writeln!(out, "    {:>6}: {}", h.sources[c].line, h.event_text(c));
            }
        }
    }
    let unknown: Vec<String> = o
        .keys
        .iter()
        .filter_map(|k| match k.result {
            KeyResult::Unknown(why) => Some(format!("{} ({})", key_label(&k.key), why.describe())),
            _ => None,
        })
        .collect();
    if !unknown.is_empty() {
        let shown = unknown
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if unknown.len() > 10 { ", ..." } else { "" };
        let _ = writeln!(out, "unchecked: {shown}{more}");
    }
    let count = |f: fn(&KeyResult) -> bool| o.keys.iter().filter(|k| f(&k.result)).count();
    let _ = writeln!(
        out,
        "{} key(s): {} linearizable, {} not, {} unknown; {:.3}s of checking",
        o.keys.len(),
        count(|r| matches!(r, KeyResult::Linearizable)),
        count(|r| matches!(r, KeyResult::NotLinearizable(_))),
        count(|r| matches!(r, KeyResult::Unknown(_))),
        o.elapsed.as_secs_f64()
    );
    out.push_str(verdict_word(&o.verdict));
    out.push('\n');
    out
}

/// One line for a batch: `VERDICT  PATH  (details)`.
pub fn render_line(r: &FileResult) -> String {
    match &r.result {
        Err(e) => format!("bad input  {}  ({e})", r.path.display()),
        Ok((h, o)) => {
            let detail = match &o.verdict {
                Verdict::Pass => format!("{} ops, {} key(s)", o.operations, o.keys.len()),
                Verdict::Fail(_) => {
                    let failing: Vec<String> = o
                        .failures()
                        .map(|(k, f)| {
                            let ops = &h.problem.keys[k.index].1;
                            let lines: Vec<String> = f
                                .witness
                                .iter()
                                .map(|&i| h.sources[ops[i].invoke].line.to_string())
                                .collect();
                            format!(
                                "{}: {} ops at lines {}",
                                key_label(&k.key),
                                f.witness.len(),
                                lines.join(" ")
                            )
                        })
                        .collect();
                    failing.join("; ")
                }
                Verdict::Unknown(why) => why.clone(),
            };
            format!(
                "{}  {}  ({detail}; {:.3}s)",
                verdict_word(&o.verdict),
                r.path.display(),
                o.elapsed.as_secs_f64() + r.load_time.as_secs_f64()
            )
        }
    }
}

/// The batch summary line.
pub fn render_summary(results: &[FileResult], wall: Duration) -> String {
    let n = |c: i32| results.iter().filter(|r| r.exit_code() == c).count();
    format!(
        "{} file(s): {} linearizable, {} not linearizable, {} unknown, {} bad input; {:.3}s",
        results.len(),
        n(0),
        n(1),
        n(3),
        n(2),
        wall.as_secs_f64()
    )
}

/// Per-file, per-key verdicts, timings and witnesses as JSON.
pub fn to_json(results: &[FileResult], wall: Duration) -> Json {
    let files: Vec<Json> = results.iter().map(file_json).collect();
    json!({
        "files": files,
        "exit_code": exit_code(results),
        "wall_s": wall.as_secs_f64(),
    })
}

fn file_json(r: &FileResult) -> Json {
    let path = r.path.display().to_string();
    match &r.result {
        Err(e) => json!({"path": path, "verdict": "bad-input", "error": e.to_string()}),
        Ok((h, o)) => {
            let keys: Vec<Json> = o
                .keys
                .iter()
                .map(|k| {
                    let ops = &h.problem.keys[k.index].1;
                    let m = Machine::new(h.problem.model, &h.problem.values, h.problem.initial);
                    let mut j = json!({
                        "key": k.key,
                        "operations": k.operations,
                        "steps": k.steps,
                        "elapsed_s": k.elapsed.as_secs_f64(),
                    });
                    match &k.result {
                        KeyResult::Linearizable => j["verdict"] = json!("linearizable"),
                        KeyResult::Unknown(why) => {
                            j["verdict"] = json!("unknown");
                            j["reason"] = json!(why.describe());
                        }
                        KeyResult::NotLinearizable(f) => {
                            j["verdict"] = json!("not-linearizable");
                            j["minimal"] = json!(f.minimal);
                            j["cut"] = json!(f.cut);
                            j["witness"] = f
                                .witness
                                .iter()
                                .map(|&i| {
                                    let op = &ops[i];
                                    json!({
                                        "process": op.process,
                                        "description": m.describe(&op.op, op.ret.is_some()),
                                        "invoke": {"line": h.sources[op.invoke].line, "text": h.event_text(op.invoke)},
                                        "completion": op.completion.map(|c| json!({"line": h.sources[c].line, "text": h.event_text(c)})),
                                    })
                                })
                                .collect();
                        }
                    }
                    j
                })
                .collect();
            json!({
                "path": path,
                "format": h.format.name(),
                "model": o.model,
                "verdict": match o.verdict { Verdict::Pass => "linearizable", Verdict::Fail(_) => "not-linearizable", Verdict::Unknown(_) => "unknown" },
                "operations": o.operations,
                "notes": h.notes,
                "load_s": r.load_time.as_secs_f64(),
                "check_s": o.elapsed.as_secs_f64(),
                "keys": keys,
            })
        }
    }
}

/// Loads and checks one file, and renders its full report.
pub fn check_file(
    path: &Path,
    options: &Options,
    limits: &Limits,
) -> Result<(String, Outcome), HistoryError> {
    let mut results = check_files(&[path.to_path_buf()], options, limits);
    let r = results.pop().expect("one result");
    let (h, o) = r.result?;
    Ok((render_text(&h, &o), o))
}
