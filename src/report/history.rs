//! The client history as bars (Porcupine's picture: a row per client, a bar from
//! invoke to completion), and the linearizability checker's minimal witness and cut.
//! Porcupine's visualisation: <https://github.com/anishathalye/porcupine> (`visualization.go`).

use std::path::Path;

use serde::Serialize;

use super::input::HistoryLine;
use crate::check::history_file::{parse_bytes, Options};
use crate::check::linearizability::{check_problems, key_label, Limits, KV_KEY_STEPS_MAX};
use crate::check::model::ModelKind;

/// Most operations drawn; a longer history keeps the witness's and those nearest it.
pub const OPS_MAX: usize = 20_000;

/// One operation: an invoke and its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Op {
    /// The client.
    pub process: u64,
    /// Invoke time, ns.
    pub start: u64,
    /// Completion time, ns; `None` if it never completed.
    pub end: Option<u64>,
    /// `ok`, `fail`, `info` or `pending` (no completion).
    pub kind: String,
    /// What it did: `put k1 "3"`, `get k1 -> "3"`.
    pub text: String,
    /// The invoke's line in `history.jsonl` (1-based).
    pub line: usize,
    /// Whether it is in the checker's minimal non-linearizable set.
    pub witness: bool,
}

/// Where the linearizability check got stuck, for one key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stuck {
    /// `key "k1"`.
    pub key: String,
    /// The earliest completion time (ns) by which the key is already not
    /// linearizable: the point the search could not get past.
    pub cut: u64,
    /// The most operations the search linearized in one order, of `operations`.
    pub linearized_max: usize,
    /// The key's operations.
    pub operations: usize,
    /// The witness's size.
    pub witness: usize,
    /// Whether the witness is minimal (minimisation finished within its bound).
    pub minimal: bool,
}

/// The history lane.
#[derive(Debug, Default, Serialize)]
pub struct HistoryLane {
    /// The operations, by invoke time.
    pub ops: Vec<Op>,
    /// Operations in the history (more than `ops.len()` when cut).
    pub total: usize,
    /// Per non-linearizable key, where the check got stuck.
    pub stuck: Vec<Stuck>,
    /// Why there is no witness, when there is none.
    pub note: Option<String>,
}

/// Pairs each invoke with its client's next completion.
pub fn operations(history: &[HistoryLine]) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut open: std::collections::HashMap<u64, usize> = Default::default();
    for (i, h) in history.iter().enumerate() {
        if h.kind == "invoke" {
            open.insert(h.process, ops.len());
            ops.push(Op {
                process: h.process,
                start: h.time_ns,
                end: None,
                kind: "pending".into(),
                text: describe(&h.op),
                line: i + 1,
                witness: false,
            });
        } else if let Some(at) = open.remove(&h.process) {
            let op = &mut ops[at];
            op.end = Some(h.time_ns);
            op.kind = h.kind.clone();
            if h.kind == "ok" {
                // An ok read's value is the completion's.
                op.text = describe(&h.op);
            }
        }
    }
    ops
}

/// `f key value`, from the operation's JSON fields.
fn describe(op: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = op.get("f").and_then(|f| f.as_str()) {
        parts.push(f.to_string());
    }
    for (k, v) in op {
        if k != "f" && k != "index" {
            parts.push(match v {
                serde_json::Value::String(s) if k == "key" => s.clone(),
                _ => format!("{k}={v}"),
            });
        }
    }
    parts.join(" ")
}

/// Checks the history as a key-value history and marks the witness of each
/// non-linearizable key, by its invoke's line. A history that is not a key-value
/// one (broadcast, gossip) gets a note instead.
pub fn witness(ops: &mut [Op], history_bytes: &[u8], path: &Path) -> (Vec<Stuck>, Option<String>) {
    let loaded = match parse_bytes(history_bytes, path, &Options::new(ModelKind::Kv)) {
        Ok(h) => h,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("not checked as a key-value history: {e}")),
            )
        }
    };
    // The run's own bounds (see check_kv): the verdict depends on the history alone.
    let limits = Limits {
        key_steps_max: KV_KEY_STEPS_MAX,
        threads: 1,
        ..Limits::default()
    };
    let Some(outcome) = check_problems(std::slice::from_ref(&loaded.problem), &limits).pop() else {
        return (Vec::new(), Some("no outcome".into()));
    };
    let mut stuck = Vec::new();
    for (k, f) in outcome.failures() {
        let key_ops = &loaded.problem.keys[k.index].1;
        for &i in &f.witness {
            let line = loaded.sources[key_ops[i].invoke].line;
            if let Some(op) = ops.iter_mut().find(|o| o.line == line) {
                op.witness = true;
            }
        }
        stuck.push(Stuck {
            key: key_label(&k.key),
            cut: f.cut,
            linearized_max: f.linearized_max,
            operations: k.operations,
            witness: f.witness.len(),
            minimal: f.minimal,
        });
    }
    let note = stuck
        .is_empty()
        .then(|| format!("the history is linearizable ({})", outcome.model));
    (stuck, note)
}

/// Keeps at most `max` operations: every witness operation, then those nearest
/// `focus_ns` in time.
pub fn cut(ops: &mut Vec<Op>, max: usize, focus_ns: u64) {
    if ops.len() <= max {
        return;
    }
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (!ops[i].witness, ops[i].start.abs_diff(focus_ns)));
    let mut keep = vec![false; ops.len()];
    for &i in order.iter().take(max) {
        keep[i] = true;
    }
    let mut i = 0;
    ops.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::input::parse_lines;

    const STALE: &str = r#"{"index":0,"process":0,"type":"invoke","f":"put","key":"x","value":"1","time_ns":0}
{"index":1,"process":0,"type":"ok","f":"put","key":"x","value":"1","time_ns":10}
{"index":2,"process":1,"type":"invoke","f":"get","key":"x","value":null,"time_ns":20}
{"index":3,"process":1,"type":"ok","f":"get","key":"x","value":null,"time_ns":30}
{"index":4,"process":2,"type":"invoke","f":"put","key":"y","value":"2","time_ns":40}
"#;

    #[test]
    fn operations_pair_up_and_a_stale_read_is_the_witness() {
        let lines: Vec<HistoryLine> = parse_lines(Path::new("h"), STALE.as_bytes(), "").unwrap();
        let mut ops = operations(&lines);
        assert_eq!(ops.len(), 3);
        assert_eq!(
            (ops[1].start, ops[1].end, ops[1].kind.as_str()),
            (20, Some(30), "ok")
        );
        assert_eq!(ops[2].kind, "pending");
        let (stuck, note) = witness(&mut ops, STALE.as_bytes(), Path::new("h"));
        assert_eq!(note, None);
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck[0].key, "key x");
        assert_eq!(stuck[0].cut, 30);
        let marked: Vec<usize> = ops.iter().filter(|o| o.witness).map(|o| o.line).collect();
        assert_eq!(marked, [1, 3]);
    }

    #[test]
    fn a_cut_keeps_the_witness_first() {
        let mut ops: Vec<Op> = (0..10)
            .map(|i| Op {
                process: 0,
                start: i * 10,
                end: Some(i * 10 + 5),
                kind: "ok".into(),
                text: String::new(),
                line: i as usize + 1,
                witness: i == 0,
            })
            .collect();
        cut(&mut ops, 3, 90);
        assert_eq!(ops.iter().map(|o| o.line).collect::<Vec<_>>(), [1, 9, 10]);
    }
}
