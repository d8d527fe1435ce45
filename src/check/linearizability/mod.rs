//! Linearizability checking of client histories.
//!
//! Semantics (Jepsen's and Knossos's): an `ok` operation happened at one instant
//! inside its [invoke, completion] interval (closed: an operation invoked at the
//! instant another completed may be ordered either way); a `fail` operation did not
//! happen and is dropped; an `info` operation, or an invoke with no completion, is
//! indeterminate: it returns "at infinity", so it may take effect at any instant
//! after its invoke, or never. An indeterminate read constrains nothing and is
//! dropped.
//!
//! The history is split per key (P-compositionality: a history is linearizable if
//! and only if each key's sub-history is) and each key is searched by
//! [`crate::check::search`] (Wing & Gong with Lowe's memoization).
//!
//! Keys are checked in rounds: every unfinished key gets a step budget that doubles
//! each round, and the keys of a round run in parallel on a pool of threads. So one
//! hard key cannot starve the others: a key that fails in N steps alone is found
//! within about 2N steps of every other key's work. Once a key fails, the others get
//! a bounded allowance of further steps (to report every failing key) and are then
//! left unchecked: the verdict is already known. Everything that decides a verdict or
//! a witness is bounded by steps, never by wall time; the wall-clock timeout and the
//! memory bound are outer bounds that turn unfinished keys into `unknown`.
//!
//! Modules, one job each: [`history`] pairs events into operations, [`outcome`]
//! holds the problem, bounds and results, the scheduler runs the per-key searches
//! ([`crate::check::search`]) and minimises witnesses ([`crate::check::witness`]),
//! [`format`](mod@format) words the verdict, and [`generate`] makes linearizable
//! histories for tests. This module reads simulator histories ([`check_kv`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::check::model::{ModelKind, Op, Values, NIL};
use crate::history::{HistoryEvent, KvOp, OpType};

pub mod format;
pub mod generate;
pub mod history;
pub mod outcome;
mod schedule;

pub use format::key_label;
pub use generate::{generate_linearizable_history, GenParams};
pub use history::{op_name, pair, Body, Event, Operation, PairError};
pub use outcome::{
    default_memory_bytes_max, Failure, KeyOutcome, KeyResult, Limits, Outcome, Problem, Unknown,
};
pub use schedule::check_problems;

/// Reads simulator histories: kv values are strings, keys are named by their
/// strings. Returns the problem for `model`, or the pairing error.
pub fn problem_from_kv(
    model: ModelKind,
    history: &[HistoryEvent<KvOp>],
) -> Result<Problem, PairError> {
    let mut values = Values::new(true);
    let mut key_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut key_names: Vec<String> = Vec::new();
    let mut events = Vec::with_capacity(history.len());
    for (pos, ev) in history.iter().enumerate() {
        let key_name = ev.op.key().to_string();
        let key = *key_ids.entry(key_name.clone()).or_insert_with(|| {
            key_names.push(key_name);
            key_names.len() - 1
        });
        let mut val = |s: &str| values.intern(s);
        let op = match &ev.op {
            KvOp::Get { value, .. } => Op::Read(value.as_deref().map_or(NIL, &mut val)),
            KvOp::Put { value, .. } => Op::Write(val(value)),
            KvOp::Append { value, .. } => Op::Append(val(value)),
            KvOp::Delete { .. } => Op::Delete,
            KvOp::Cas {
                value: (old, new), ..
            } => Op::Cas(old.as_deref().map_or(NIL, &mut val), val(new)),
        };
        if let Err(message) = model.supports(&op) {
            return Err(PairError {
                position: pos,
                message,
            });
        }
        let body = match ev.kind {
            OpType::Invoke => Body::Invoke { key, op },
            _ => Body::Complete {
                key: Some(key),
                read: match op {
                    Op::Read(v) => Some(v),
                    _ => None,
                },
                f: op_name(&op),
            },
        };
        events.push(Event {
            process: ev.process as u64,
            kind: ev.kind,
            time: ev.time_ns,
            body,
        });
    }
    let per_key = pair(&events, key_names.len())?;
    Ok(Problem {
        model,
        values,
        initial: NIL,
        keys: key_names
            .into_iter()
            .map(|k| format!("{k:?}"))
            .zip(per_key)
            .collect(),
    })
}

/// Search steps per key [`check_kv`] allows before the verdict is unknown: about
/// 2 to 10 seconds of search, so that on a hard history this deterministic bound,
/// not the caller's wall-clock budget, is what usually ends the search.
pub const KV_KEY_STEPS_MAX: u64 = 1 << 26;

/// Checks a simulator key-value history against the kv model: at most
/// [`KV_KEY_STEPS_MAX`] search steps per key (a deterministic bound), and `budget`
/// of wall time as an outer bound if given (`None`: the verdict depends on the
/// history alone, as the simulator's runs need).
///
/// # Panics
/// If the history does not pair up: histories recorded by the simulator are well
/// formed by construction. Use [`problem_from_kv`] on untrusted input.
pub fn check_kv(history: &[HistoryEvent<KvOp>], budget: Option<Duration>) -> Outcome {
    let problem = match problem_from_kv(ModelKind::Kv, history) {
        Ok(p) => p,
        Err(e) => panic!("malformed history at event {}: {}", e.position, e.message),
    };
    // One thread: sweeps already run seeds in parallel, and a pool per seed costs
    // more than this check's few milliseconds.
    let limits = Limits {
        key_steps_max: KV_KEY_STEPS_MAX,
        timeout: budget,
        threads: 1,
        ..Limits::default()
    };
    check_problems(std::slice::from_ref(&problem), &limits)
        .pop()
        .expect("one outcome per problem")
}
