//! What a check is given and what it returns: the problem (model, values, operations
//! per key), its bounds, and the per-key and per-history results.

use std::time::Duration;

use crate::check::model::{ModelKind, ValueId, Values};
use crate::system::Verdict;

use super::Operation;

/// A history ready to check: its model, values, and operations per key.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The model operations are checked against.
    pub model: ModelKind,
    /// The values the operations name, interned.
    pub values: Values,
    /// The state of every key before any operation (`--initial`).
    pub initial: ValueId,
    /// Key names (as reports show them) and their operations.
    pub keys: Vec<(String, Vec<Operation>)>,
}

/// Bounds on a check.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Search steps per key before it is `unknown` (deterministic).
    pub key_steps_max: u64,
    /// Search steps per failing key for its witness (deterministic).
    pub minimise_steps_max: u64,
    /// Wall-clock bound on the whole check; unfinished keys are `unknown`.
    pub timeout: Option<Duration>,
    /// Bound on the searches' memory, in bytes; unfinished keys are `unknown`.
    pub memory_bytes_max: u64,
    /// Worker threads.
    pub threads: usize,
    /// Check every key to the end even once one fails (else the others get a
    /// bounded allowance of further steps, then are left unfinished).
    pub all_keys: bool,
}

/// A quarter of the machine's memory (from /proc/meminfo), or 4 GiB if unknown.
pub fn default_memory_bytes_max() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    total.map_or(4 << 30, |t| t / 4)
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            key_steps_max: 1 << 30,
            minimise_steps_max: 20_000_000,
            timeout: None,
            memory_bytes_max: default_memory_bytes_max(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            all_keys: false,
        }
    }
}

/// Why a key has no verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// The key used its step bound.
    StepLimit,
    /// The wall-clock timeout passed.
    Timeout,
    /// The memory bound was reached.
    Memory,
    /// Another key failed first; this one was left unfinished.
    NotNeeded,
}

impl Unknown {
    /// Why, in a few words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Unknown::StepLimit => "step bound reached",
            Unknown::Timeout => "timeout",
            Unknown::Memory => "memory bound reached",
            Unknown::NotNeeded => "left unfinished: another key already fails",
        }
    }
}

/// Why a key is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Indices into the key's operations, by invoke order: together they have no
    /// linearization.
    pub witness: Vec<usize>,
    /// The earliest completion time by which the key is already not linearizable.
    pub cut: u64,
    /// Whether minimisation finished within its step bound.
    pub minimal: bool,
    /// The most operations the search linearized in one order.
    pub linearized_max: usize,
}

/// One key's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    /// Some order of its operations respects real time and the model.
    Linearizable,
    /// None does; the failure carries a witness.
    NotLinearizable(Failure),
    /// The search stopped before a verdict.
    Unknown(Unknown),
}

/// One key's result.
#[derive(Clone, Debug)]
pub struct KeyOutcome {
    /// The key's name.
    pub key: String,
    /// The key's position in its [`Problem`]'s keys.
    pub index: usize,
    /// Operations searched (after dropping `fail` ones and indeterminate reads).
    pub operations: usize,
    /// The verdict.
    pub result: KeyResult,
    /// Search steps, the witness's included.
    pub steps: u64,
    /// Wall time spent on this key (not a verdict input).
    pub elapsed: Duration,
}

/// The result of checking one history.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Pass if every key is linearizable, Fail if one is not, else Unknown.
    pub verdict: Verdict,
    /// The model's name.
    pub model: &'static str,
    /// Every key's result, in the history's key order.
    pub keys: Vec<KeyOutcome>,
    /// Operations searched, over all keys (`fail` ones and indeterminate reads
    /// dropped).
    pub operations: usize,
    /// Wall time of the whole check (not a verdict input).
    pub elapsed: Duration,
}

impl Outcome {
    /// The keys that are not linearizable, with their failures.
    pub fn failures(&self) -> impl Iterator<Item = (&KeyOutcome, &Failure)> {
        self.keys.iter().filter_map(|k| match &k.result {
            KeyResult::NotLinearizable(f) => Some((k, f)),
            _ => None,
        })
    }
}
