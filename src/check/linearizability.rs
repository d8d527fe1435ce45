//! Linearizability checking of client histories.
//!
//! The search is Wing & Gong's, with Lowe's memoization of (set of linearized
//! operations, model state) and P-compositionality: the history is split per key and
//! each key is checked on its own (a history is linearizable iff each key's is).
//!
//! Semantics (Jepsen's): an `ok` operation happened at one instant inside its
//! [invoke, completion] interval (closed: an operation invoked at the same instant
//! another completed may be ordered either way); a `fail` operation did not happen
//! and is dropped; an `info` operation, or an invoke with no completion, is
//! indeterminate: it returns "at infinity", so it may take effect at any instant after
//! its invoke, or never.
//!
//! On a failure the checker names the key and a small set of operations that has no
//! linearization on its own, found in two steps:
//! 1. the earliest completion time `t` such that the history cut at `t` (operations
//!    completed by `t`, plus operations pending at `t` as indeterminate) is not
//!    linearizable; cuts are monotone, so this is a binary search;
//! 2. within that cut, operations are deleted greedily (delta-debugging style) while
//!    the cut stays non-linearizable, except that a write is kept while a kept read
//!    (or cas) observed a value it may have written (else the witness could blame the
//!    read for a "never written" value instead of for the real anomaly). What is
//!    left is the witness: it has no linearization, and without any one of its
//!    operations it would have one. The effort is bounded in checks and time.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::model::{KvModel, Model};
use crate::history::{HistoryEvent, KvOp, OpType};
use crate::process::ClientId;
use crate::system::Verdict;

/// One operation: its invoke paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<O> {
    pub process: ClientId,
    /// The history index of its invoke.
    pub index: usize,
    pub call_ns: u64,
    /// `None`: indeterminate (`info`, or never completed); it returns at infinity.
    pub return_ns: Option<u64>,
    /// Input and, for a determinate read, its output.
    pub op: O,
}

impl<O> Operation<O> {
    pub fn determinate(&self) -> bool {
        self.return_ns.is_some()
    }
}

/// A history that does not pair up (a completion with no invoke, a second invoke
/// while one is pending, ...). `position` is the offending event's position in the
/// slice given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairError {
    pub position: usize,
    pub message: String,
}

/// Upper bound on events per history: positions and bitsets are sized from it.
pub const HISTORY_EVENTS_MAX: usize = 100_000_000;

fn same_kind(a: &KvOp, b: &KvOp) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) && a.key() == b.key()
}

/// Pairs each invoke with its process's next completion. `fail` operations are
/// dropped; `info` and never-completed ones are indeterminate. Operations come out in
/// invoke order.
pub fn pair_events(history: &[HistoryEvent<KvOp>]) -> Result<Vec<Operation<KvOp>>, PairError> {
    assert!(history.len() <= HISTORY_EVENTS_MAX, "history too long");
    // process -> (position of its pending invoke, slot in `ops`)
    let mut pending: BTreeMap<ClientId, (usize, usize)> = BTreeMap::new();
    let mut ops: Vec<Option<Operation<KvOp>>> = Vec::new();
    for (pos, ev) in history.iter().enumerate() {
        let err = |message: String| PairError {
            position: pos,
            message,
        };
        match ev.kind {
            OpType::Invoke => {
                if let Some(&(p, _)) = pending.get(&ev.process) {
                    return Err(err(format!(
                        "process {} invoked again while its invoke at event {} has not completed",
                        ev.process, history[p].index
                    )));
                }
                pending.insert(ev.process, (pos, ops.len()));
                ops.push(Some(Operation {
                    process: ev.process,
                    index: ev.index,
                    call_ns: ev.time_ns,
                    return_ns: None,
                    op: ev.op.clone(),
                }));
            }
            OpType::Ok | OpType::Fail | OpType::Info => {
                let Some((inv_pos, slot)) = pending.remove(&ev.process) else {
                    return Err(err(format!(
                        "process {} completed an operation it never invoked",
                        ev.process
                    )));
                };
                let inv = &history[inv_pos];
                if !same_kind(&inv.op, &ev.op) {
                    return Err(err(format!(
                        "completion {:?} does not match its invoke {:?} at event {}",
                        ev.op, inv.op, inv.index
                    )));
                }
                if !matches!(ev.op, KvOp::Get { .. }) && ev.op != inv.op && ev.kind == OpType::Ok {
                    return Err(err(format!(
                        "completion {:?} changes the input of its invoke {:?} at event {}",
                        ev.op, inv.op, inv.index
                    )));
                }
                if ev.time_ns < inv.time_ns {
                    return Err(err(format!(
                        "completion at {} ns precedes its invoke at {} ns",
                        ev.time_ns, inv.time_ns
                    )));
                }
                match ev.kind {
                    OpType::Fail => ops[slot] = None,
                    OpType::Info => {}
                    OpType::Ok => {
                        let op = ops[slot].as_mut().expect("slot of a pending invoke");
                        op.return_ns = Some(ev.time_ns);
                        if let KvOp::Get { .. } = ev.op {
                            op.op = ev.op.clone();
                        }
                    }
                    OpType::Invoke => unreachable!(),
                }
            }
        }
    }
    Ok(ops.into_iter().flatten().collect())
}

/// A witness operation, as reports show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpReport {
    pub process: ClientId,
    pub index: usize,
    pub call_ns: u64,
    pub return_ns: Option<u64>,
    pub description: String,
    /// Not part of the witness: a write of a value a witness read returned, shown so
    /// the reader sees where the value came from.
    pub context: bool,
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub key: String,
    /// Operations on the key that the search considered (after dropping `fail`
    /// operations and indeterminate reads).
    pub key_ops: usize,
    /// The most operations the search managed to linearize in order.
    pub linearized_max: usize,
    /// The earliest completion time by which the key's history is already
    /// non-linearizable.
    pub cut_ns: u64,
    /// Operations with no linearization on their own (those not marked `context`),
    /// by invoke time.
    pub witness: Vec<OpReport>,
    /// Whether minimisation ran to the end (each witness op is needed, or wrote a
    /// value another one observed) or stopped at its effort bound (the witness may
    /// hold more than it needs).
    pub minimal: bool,
}

/// The result of checking a history.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub model: &'static str,
    pub keys: usize,
    pub keys_checked: usize,
    pub operations: usize,
    pub failure: Option<Failure>,
    /// Keys the budget ran out on.
    pub unknown_keys: Vec<String>,
    pub elapsed: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Search {
    Linearizable,
    /// With the most operations linearized in order.
    NotLinearizable(usize),
    TimedOut,
}

/// Checks a key-value history against [`KvModel`] within `budget`.
///
/// # Panics
/// If the history does not pair up: histories recorded by the simulator are well
/// formed by construction. Use [`pair_events`] on untrusted input.
pub fn check_kv(history: &[HistoryEvent<KvOp>], budget: Duration) -> Outcome {
    check_history(&KvModel, history, budget)
}

/// Checks a key-value-shaped history against `model`, per key.
///
/// # Panics
/// If the history does not pair up; see [`try_check_history`].
pub fn check_history<M: Model<Op = KvOp>>(
    model: &M,
    history: &[HistoryEvent<KvOp>],
    budget: Duration,
) -> Outcome {
    match try_check_history(model, history, budget) {
        Ok(outcome) => outcome,
        Err(e) => panic!("malformed history at event {}: {}", e.position, e.message),
    }
}

/// [`check_history`] for histories that may not pair up.
pub fn try_check_history<M: Model<Op = KvOp>>(
    model: &M,
    history: &[HistoryEvent<KvOp>],
    budget: Duration,
) -> Result<Outcome, PairError> {
    let ops = pair_events(history)?;
    let mut partitions: BTreeMap<String, Vec<Operation<KvOp>>> = BTreeMap::new();
    for op in ops {
        partitions
            .entry(op.op.key().to_string())
            .or_default()
            .push(op);
    }
    Ok(check_partitions(model, partitions, budget))
}

/// The generic core: checks each partition (one key's operations) independently.
pub fn check_partitions<M: Model>(
    model: &M,
    partitions: BTreeMap<String, Vec<Operation<M::Op>>>,
    budget: Duration,
) -> Outcome {
    let start = Instant::now();
    let deadline = start.checked_add(budget);
    let mut outcome = Outcome {
        verdict: Verdict::Pass,
        model: model.name(),
        keys: partitions.len(),
        keys_checked: 0,
        operations: partitions.values().map(Vec::len).sum(),
        failure: None,
        unknown_keys: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for (key, ops) in partitions {
        let ops: Vec<_> = ops
            .into_iter()
            .filter(|o| o.determinate() || !model.is_read(&o.op))
            .collect();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            outcome.unknown_keys.push(key);
            continue;
        }
        match search(model, &ops, deadline) {
            Search::Linearizable => outcome.keys_checked += 1,
            Search::TimedOut => outcome.unknown_keys.push(key),
            Search::NotLinearizable(linearized_max) => {
                outcome.keys_checked += 1;
                let failure = explain(model, key, ops, linearized_max, deadline);
                outcome.verdict = Verdict::Fail(format!(
                    "{}: {} operation(s) have no linearization: {}",
                    key_name(&failure.key),
                    failure.witness.iter().filter(|o| !o.context).count(),
                    failure
                        .witness
                        .iter()
                        .filter(|o| !o.context)
                        .map(|o| format!("[p{} {}]", o.process, o.description))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                outcome.failure = Some(failure);
                // One counterexample is the answer; the other keys cannot undo it.
                break;
            }
        }
    }
    if outcome.failure.is_none() && !outcome.unknown_keys.is_empty() {
        outcome.verdict = Verdict::Unknown(format!(
            "time budget of {:?} ran out; {} of {} keys unchecked",
            budget,
            outcome.unknown_keys.len(),
            outcome.keys
        ));
    }
    outcome.elapsed = start.elapsed();
    outcome
}

const NONE: usize = usize::MAX;

/// The set of linearized operations. Operations are numbered in invoke order, so the
/// set is nearly always a dense prefix plus a few operations concurrent with its end;
/// cache keys store it that way, which keeps the cache at O(operations x concurrency)
/// rather than O(operations^2 / 64) for a long single-key history.
struct LinSet {
    bits: Vec<u64>,
    /// Every operation below `prefix` is in the set; `prefix` itself is not.
    prefix: usize,
    len: usize,
    n: usize,
}

impl LinSet {
    fn new(n: usize) -> LinSet {
        LinSet {
            bits: vec![0; n.div_ceil(64)],
            prefix: 0,
            len: 0,
            n,
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        assert!(
            i < self.n && !self.contains(i),
            "operation {i} linearized twice"
        );
        self.bits[i / 64] |= 1 << (i % 64);
        self.len += 1;
        while self.prefix < self.n && self.contains(self.prefix) {
            self.prefix += 1;
        }
    }

    fn remove(&mut self, i: usize) {
        assert!(self.contains(i), "operation {i} undone but not linearized");
        self.bits[i / 64] &= !(1 << (i % 64));
        self.len -= 1;
        self.prefix = self.prefix.min(i);
    }

    /// The members past the dense prefix, ascending.
    fn extra(&self) -> Box<[u32]> {
        let want = self.len - self.prefix;
        let mut out = Vec::with_capacity(want);
        let mut w = self.prefix / 64;
        while out.len() < want {
            assert!(w < self.bits.len(), "set size out of step with its bits");
            let mut word = self.bits[w];
            if w == self.prefix / 64 {
                // Bits below the prefix are all set; skip them.
                word &= !((1u64 << (self.prefix % 64)) - 1);
            }
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                out.push((w * 64 + bit) as u32);
                word &= word - 1;
            }
            w += 1;
        }
        out.into_boxed_slice()
    }
}

/// A cache entry: the linearized set and the state it led to.
#[derive(PartialEq, Eq, Hash)]
struct CacheKey<S> {
    prefix: u32,
    extra: Box<[u32]>,
    state: S,
}

/// The Wing & Gong search with Lowe's memoization over one partition.
fn search<M: Model>(model: &M, ops: &[Operation<M::Op>], deadline: Option<Instant>) -> Search {
    let n = ops.len();
    if n == 0 {
        return Search::Linearizable;
    }
    // Entries: (time, 0 = call / 1 = return, op). Calls sort before returns at equal
    // times, which makes intervals closed.
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.call_ns, 0, i));
        if let Some(r) = o.return_ns {
            assert!(r >= o.call_ns, "operation returns before it is called");
            order.push((r, 1, i));
        }
    }
    order.sort_unstable();
    let m = order.len();
    // Linked list over entries 0..m, with a head sentinel at m.
    let head = m;
    let mut next = vec![NONE; m + 1];
    let mut prev = vec![NONE; m + 1];
    let mut is_call = vec![false; m];
    let mut entry_op = vec![0usize; m];
    let mut return_entry = vec![NONE; n]; // op -> its return entry
    let mut last = head;
    for (e, &(_, kind, op)) in order.iter().enumerate() {
        is_call[e] = kind == 0;
        entry_op[e] = op;
        if kind == 1 {
            return_entry[op] = e;
        }
        next[last] = e;
        prev[e] = last;
        last = e;
    }
    let determinate_total = ops.iter().filter(|o| o.determinate()).count();

    assert!(n < u32::MAX as usize, "partition too large");
    let mut set = LinSet::new(n);
    let mut state = model.init();
    let mut cache: HashSet<CacheKey<M::State>> = HashSet::new();
    // (call entry, state before it)
    let mut calls: Vec<(usize, M::State)> = Vec::with_capacity(n);
    let mut determinate_done = 0usize;
    let mut linearized_max = 0usize;
    let mut steps: u64 = 0;

    let mut entry = next[head];
    loop {
        steps += 1;
        if steps.is_multiple_of(1024) && deadline.is_some_and(|d| Instant::now() >= d) {
            return Search::TimedOut;
        }
        if determinate_done == determinate_total {
            // Every operation that must have happened is placed; the indeterminate
            // ones left may simply not have happened.
            return Search::Linearizable;
        }
        if entry == NONE {
            // Only call entries remain past this point, so no return is left: done.
            return Search::Linearizable;
        }
        if is_call[entry] {
            let op_id = entry_op[entry];
            let op = &ops[op_id];
            if let Some(new_state) = model.step(&state, &op.op, op.determinate()) {
                set.insert(op_id);
                let key = CacheKey {
                    prefix: set.prefix as u32,
                    extra: set.extra(),
                    state: new_state,
                };
                if !cache.contains(&key) {
                    let new_state = key.state.clone();
                    cache.insert(key);
                    calls.push((entry, std::mem::replace(&mut state, new_state)));
                    if op.determinate() {
                        determinate_done += 1;
                    }
                    linearized_max = linearized_max.max(calls.len());
                    // Lift the call and its return out of the list.
                    next[prev[entry]] = next[entry];
                    if next[entry] != NONE {
                        prev[next[entry]] = prev[entry];
                    }
                    let r = return_entry[op_id];
                    if r != NONE {
                        next[prev[r]] = next[r];
                        if next[r] != NONE {
                            prev[next[r]] = prev[r];
                        }
                    }
                    entry = next[head];
                    continue;
                }
                set.remove(op_id);
            }
            entry = next[entry];
        } else {
            // A return whose operation is not linearized yet: everything before it
            // has been tried, so undo the last choice.
            let Some((call, old_state)) = calls.pop() else {
                return Search::NotLinearizable(linearized_max);
            };
            let op_id = entry_op[call];
            state = old_state;
            set.remove(op_id);
            if ops[op_id].determinate() {
                determinate_done -= 1;
            }
            // Unlift in reverse order: the return first, then the call.
            let r = return_entry[op_id];
            if r != NONE {
                next[prev[r]] = r;
                if next[r] != NONE {
                    prev[next[r]] = r;
                }
            }
            next[prev[call]] = call;
            if next[call] != NONE {
                prev[next[call]] = call;
            }
            entry = next[call];
        }
    }
}

/// Most searches the witness minimisation may run, and the longest it may take.
const MINIMISE_CHECKS_MAX: usize = 400;
const MINIMISE_TIME_MAX: Duration = Duration::from_secs(2);

struct Minimiser<'a, M: Model> {
    model: &'a M,
    /// The cut being minimised; `deleted[i]` leaves `ops[i]` out.
    ops: Vec<Operation<M::Op>>,
    deleted: Vec<bool>,
    checks: usize,
    deadline: Instant,
    exhausted: bool,
}

impl<M: Model> Minimiser<'_, M> {
    /// Whether the cut, less the deleted operations, is proven non-linearizable.
    fn still_bad(&mut self) -> bool {
        if self.checks >= MINIMISE_CHECKS_MAX || Instant::now() >= self.deadline {
            self.exhausted = true;
            return false;
        }
        self.checks += 1;
        let ops: Vec<Operation<M::Op>> = self
            .ops
            .iter()
            .zip(&self.deleted)
            .filter(|(_, &d)| !d)
            .map(|(o, _)| o.clone())
            .collect();
        // One search may not take all that is left; giving up on it only keeps more
        // operations in the witness.
        let left = self.deadline.saturating_duration_since(Instant::now());
        let per_check = (left / 4).max(Duration::from_millis(5));
        match search(self.model, &ops, Some(Instant::now() + per_check)) {
            Search::NotLinearizable(_) => true,
            Search::Linearizable => false,
            Search::TimedOut => {
                self.exhausted = true;
                false
            }
        }
    }

    /// Whether a deleted operation may have written a value that a kept read (or
    /// cas) observed: deleting it would blame the observer for a value "never
    /// written" instead of for what really went wrong.
    fn orphans_an_observer(&self) -> bool {
        self.ops.iter().zip(&self.deleted).any(|(w, &dw)| {
            dw && self
                .ops
                .iter()
                .zip(&self.deleted)
                .any(|(r, &dr)| !dr && self.model.wrote_value_observed(&w.op, &r.op))
        })
    }

    /// Deletes as many of `candidates` as possible, halving on failure.
    fn shrink(&mut self, candidates: &[usize], depth: usize) {
        assert!(
            depth <= 64,
            "shrinking recursion deeper than log2 of a history"
        );
        if candidates.is_empty() {
            return;
        }
        for &c in candidates {
            self.deleted[c] = true;
        }
        if !self.orphans_an_observer() && self.still_bad() {
            return;
        }
        for &c in candidates {
            self.deleted[c] = false;
        }
        if candidates.len() == 1 {
            return;
        }
        let (a, b) = candidates.split_at(candidates.len() / 2);
        self.shrink(a, depth + 1);
        self.shrink(b, depth + 1);
    }
}

/// The history of one key cut at `t`: operations completed by `t` as they are,
/// operations pending at `t` as indeterminate (reads among them dropped).
fn cut<M: Model>(model: &M, ops: &[Operation<M::Op>], t: u64) -> Vec<Operation<M::Op>> {
    ops.iter()
        .filter(|o| o.call_ns <= t)
        .filter_map(|o| match o.return_ns {
            Some(r) if r <= t => Some(o.clone()),
            _ if model.is_read(&o.op) => None,
            _ => Some(Operation {
                return_ns: None,
                ..o.clone()
            }),
        })
        .collect()
}

fn explain<M: Model>(
    model: &M,
    key: String,
    ops: Vec<Operation<M::Op>>,
    linearized_max: usize,
    deadline: Option<Instant>,
) -> Failure {
    let now = Instant::now();
    let mut min_deadline = now + MINIMISE_TIME_MAX;
    if let Some(d) = deadline {
        // The verdict is known; explaining it may use a little past the budget, but
        // not much, so that a caller's time limit still roughly holds.
        min_deadline = min_deadline.min(d.max(now + Duration::from_millis(200)));
    }
    let mut returns: Vec<u64> = ops.iter().filter_map(|o| o.return_ns).collect();
    returns.sort_unstable();
    returns.dedup();
    assert!(
        !returns.is_empty(),
        "a history without completions cannot fail"
    );
    // Binary search the earliest non-linearizable cut. `hi` is known bad: the cut at
    // the last completion is the whole history minus indeterminate operations invoked
    // after it, which may always be dropped.
    let (mut lo, mut hi) = (0usize, returns.len() - 1);
    let mut checks = 0usize;
    let mut exhausted = false;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        checks += 1;
        let left = min_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || checks > 64 {
            exhausted = true;
            break;
        }
        match search(
            model,
            &cut(model, &ops, returns[mid]),
            Some(Instant::now() + left / 2),
        ) {
            Search::NotLinearizable(_) => hi = mid,
            Search::Linearizable => lo = mid + 1,
            Search::TimedOut => {
                exhausted = true;
                lo = mid + 1;
            }
        }
    }
    let cut_ns = returns[hi];
    let cut_ops = cut(model, &ops, cut_ns);
    // Latest first: readers come after the writers they protect, so deleting them
    // first frees those writers within the same pass.
    let mut candidates: Vec<usize> = (0..cut_ops.len()).collect();
    candidates.sort_by_key(|&i| std::cmp::Reverse((cut_ops[i].call_ns, cut_ops[i].index)));
    let mut min = Minimiser {
        model,
        deleted: vec![false; cut_ops.len()],
        ops: cut_ops,
        checks: 0,
        deadline: min_deadline,
        exhausted,
    };
    // Repeat until nothing more goes: a deletion can unprotect a writer kept earlier.
    for _pass in 0..8 {
        let before = min.deleted.iter().filter(|&&d| d).count();
        min.shrink(&candidates, 0);
        candidates.retain(|&i| !min.deleted[i]);
        if min.deleted.iter().filter(|&&d| d).count() == before || min.exhausted {
            break;
        }
    }
    let kept: Vec<&Operation<M::Op>> = min
        .ops
        .iter()
        .zip(&min.deleted)
        .filter(|(_, &d)| !d)
        .map(|(o, _)| o)
        .collect();
    let mut witness: Vec<OpReport> = kept
        .iter()
        .map(|o| OpReport {
            process: o.process,
            index: o.index,
            call_ns: o.call_ns,
            return_ns: o.return_ns,
            description: model.describe(&o.op, o.determinate()),
            context: false,
        })
        .collect();
    // Context: for each witness read whose value no witness op wrote, the first
    // write of it in the cut (the witness stands without it; the reader may not).
    for read in &kept {
        if kept
            .iter()
            .any(|w| model.wrote_value_observed(&w.op, &read.op))
        {
            continue;
        }
        let source = min
            .ops
            .iter()
            .filter(|w| model.wrote_value_observed(&w.op, &read.op))
            .min_by_key(|w| (w.call_ns, w.index));
        if let Some(w) = source {
            if !witness.iter().any(|o| o.index == w.index) {
                witness.push(OpReport {
                    process: w.process,
                    index: w.index,
                    call_ns: w.call_ns,
                    return_ns: w.return_ns,
                    description: model.describe(&w.op, w.determinate()),
                    context: true,
                });
            }
        }
    }
    witness.sort_by_key(|o| (o.call_ns, o.index));
    Failure {
        key,
        key_ops: ops.len(),
        linearized_max,
        cut_ns,
        witness,
        minimal: !min.exhausted,
    }
}

/// `key "x"`, or `the register` for a keyless history.
fn key_name(key: &str) -> String {
    if key.is_empty() {
        "the register".to_string()
    } else {
        format!("key {key:?}")
    }
}

/// How to show the times of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBase {
    /// Times are nanoseconds.
    Nanos,
    /// Times are event positions (a file without times).
    EventOrder,
}

fn show_time(t: u64, base: TimeBase) -> String {
    match base {
        TimeBase::Nanos => format!("{}.{:06}ms", t / 1_000_000, t % 1_000_000),
        TimeBase::EventOrder => format!("#{t}"),
    }
}

/// The report text: details, then a last line `linearizable`, `not linearizable` or
/// `unknown`.
pub fn render_report(outcome: &Outcome, times: TimeBase) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {}: {} operation(s) on {} key(s), {} key(s) checked in {:.3}s",
        outcome.model,
        outcome.operations,
        outcome.keys,
        outcome.keys_checked,
        outcome.elapsed.as_secs_f64()
    );
    if let Some(f) = &outcome.failure {
        let _ = writeln!(
            out,
            "{} is not linearizable: the search linearized at most {} of its {} operation(s);",
            key_name(&f.key),
            f.linearized_max,
            f.key_ops
        );
        let _ = writeln!(
            out,
            "already so at {} (operations completed by then, the ones still pending as indeterminate).",
            show_time(f.cut_ns, times)
        );
        let _ = writeln!(
            out,
            "These {} operation(s) have no linearization{}:",
            f.witness.iter().filter(|o| !o.context).count(),
            if f.minimal {
                " (minimal: without any one of them the rest would be linearizable, or it wrote a value one of them observed)"
            } else {
                " (minimisation stopped at its effort bound; some may not be needed)"
            }
        );
        for o in &f.witness {
            // An indeterminate op returns "at infinity": it may have taken effect
            // any time after its invoke, or not at all.
            let ret = o
                .return_ns
                .map_or_else(|| "? (indeterminate)".to_string(), |r| show_time(r, times));
            let _ = writeln!(
                out,
                "  process {:<3} [{} .. {}]  {}   (event {}){}",
                o.process,
                show_time(o.call_ns, times),
                ret,
                o.description,
                o.index,
                if o.context {
                    "  [context: wrote a value read above; not needed for the violation]"
                } else {
                    ""
                }
            );
        }
    }
    if !outcome.unknown_keys.is_empty() {
        let shown: Vec<String> = outcome
            .unknown_keys
            .iter()
            .take(10)
            .map(|k| format!("{k:?}"))
            .collect();
        let _ = writeln!(
            out,
            "time budget ran out; unchecked key(s): {}{}",
            shown.join(", "),
            if outcome.unknown_keys.len() > 10 {
                ", ..."
            } else {
                ""
            }
        );
    }
    out.push_str(match outcome.verdict {
        Verdict::Pass => "linearizable",
        Verdict::Fail(_) => "not linearizable",
        Verdict::Unknown(_) => "unknown",
    });
    out.push('\n');
    out
}

/// Shapes of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct GenParams {
    pub ops: usize,
    pub keys: usize,
    pub clients: usize,
    /// Percent of operations whose completion is recorded as `info` (they still took
    /// effect, or not, at random).
    pub info_percent: u32,
}

/// A history generated from a real sequential execution of a key-value store: each
/// operation takes effect at one instant inside a random interval of its client's, so
/// the history is linearizable by construction. Deterministic in `seed`. For tests
/// and benchmarks.
pub fn generate_linearizable_history(seed: u64, p: GenParams) -> Vec<HistoryEvent<KvOp>> {
    assert!(p.keys > 0 && p.clients > 0, "need keys and clients");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store: BTreeMap<String, String> = BTreeMap::new();
    // Per client: when it is next free (ns).
    let mut free_at = vec![0u64; p.clients];
    // (time, order, event): sorted at the end; `order` keeps invoke before completion.
    let mut events: Vec<(u64, usize, ClientId, OpType, KvOp)> = Vec::new();
    let mut now: u64 = 0;
    let mut seq = 0usize;
    for i in 0..p.ops {
        now += rng.gen_range(1..=20);
        // A client free by now, or the earliest to become free.
        let free: Vec<usize> = (0..p.clients).filter(|&c| free_at[c] < now).collect();
        let client = if free.is_empty() {
            let c = (0..p.clients).min_by_key(|&c| free_at[c]).expect("clients");
            now = free_at[c] + 1;
            c
        } else {
            free[rng.gen_range(0..free.len())]
        };
        let call = rng.gen_range(free_at[client] + 1..=now);
        let lp = now;
        let key = format!("k{}", rng.gen_range(0..p.keys));
        let cur = store.get(&key).cloned();
        let (op, outcome) = match rng.gen_range(0..100) {
            0..=39 => (
                KvOp::Get {
                    key: key.clone(),
                    value: cur.clone(),
                },
                OpType::Ok,
            ),
            40..=64 => {
                let v = format!("v{i}");
                store.insert(key.clone(), v.clone());
                (KvOp::Put { key, value: v }, OpType::Ok)
            }
            65..=79 => {
                let v = format!("a{i},");
                store.insert(key.clone(), format!("{}{v}", cur.unwrap_or_default()));
                (KvOp::Append { key, value: v }, OpType::Ok)
            }
            80..=84 => {
                store.remove(&key);
                (KvOp::Delete { key }, OpType::Ok)
            }
            _ => {
                // Half the time expect the current value (succeeds), else a stale one.
                let expected = if rng.gen_bool(0.5) {
                    cur.clone()
                } else {
                    Some(format!("stale{i}"))
                };
                let new = format!("c{i}");
                let ok = expected == cur;
                if ok {
                    store.insert(key.clone(), new.clone());
                }
                (
                    KvOp::Cas {
                        key,
                        value: (expected, new),
                    },
                    if ok { OpType::Ok } else { OpType::Fail },
                )
            }
        };
        let ret = lp + rng.gen_range(0..=60);
        let kind = if outcome == OpType::Ok && rng.gen_range(0..100) < p.info_percent {
            OpType::Info
        } else {
            outcome
        };
        let invoke_op = match &op {
            KvOp::Get { key, .. } => KvOp::Get {
                key: key.clone(),
                value: None,
            },
            o => o.clone(),
        };
        events.push((call, seq, client, OpType::Invoke, invoke_op));
        events.push((ret, seq + 1, client, kind, op));
        seq += 2;
        free_at[client] = ret;
    }
    events.sort_by_key(|e| (e.0, e.1));
    events
        .into_iter()
        .enumerate()
        .map(|(index, (time_ns, _, process, kind, op))| HistoryEvent {
            index,
            process,
            kind,
            op,
            time_ns,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: usize, process: ClientId, kind: OpType, op: KvOp, t: u64) -> HistoryEvent<KvOp> {
        HistoryEvent {
            index,
            process,
            kind,
            op,
            time_ns: t,
        }
    }
    fn put(v: &str) -> KvOp {
        KvOp::Put {
            key: "x".into(),
            value: v.into(),
        }
    }
    fn get(v: Option<&str>) -> KvOp {
        KvOp::Get {
            key: "x".into(),
            value: v.map(str::to_string),
        }
    }

    #[test]
    fn stale_read_after_write_fails_with_small_witness() {
        let h = vec![
            ev(0, 0, OpType::Invoke, put("0"), 0),
            ev(1, 0, OpType::Ok, put("0"), 1),
            ev(2, 0, OpType::Invoke, put("1"), 2),
            ev(3, 0, OpType::Ok, put("1"), 3),
            ev(4, 1, OpType::Invoke, get(None), 4),
            ev(5, 1, OpType::Ok, get(Some("0")), 5),
        ];
        let o = check_kv(&h, Duration::from_secs(5));
        assert!(matches!(o.verdict, Verdict::Fail(_)), "{:?}", o.verdict);
        let f = o.failure.expect("failure");
        assert_eq!(f.key, "x");
        assert!(f.minimal);
        // put 0 is needed (else "0" was never written), put 1 and the read too.
        assert_eq!(f.witness.len(), 3, "{:?}", f.witness);
        assert_eq!(f.cut_ns, 5);
    }

    #[test]
    fn lin_set_keeps_a_dense_prefix_and_sparse_extra() {
        let mut set = LinSet::new(200);
        for i in [0, 1, 2, 70, 130] {
            set.insert(i);
        }
        assert_eq!(set.prefix, 3);
        assert_eq!(&*set.extra(), &[70, 130]);
        for i in 3..70 {
            set.insert(i);
        }
        assert_eq!(set.prefix, 71);
        assert_eq!(&*set.extra(), &[130]);
        set.remove(1);
        assert_eq!(set.prefix, 1);
        let extra = set.extra();
        assert_eq!(extra.len(), 70);
        assert_eq!((extra[0], extra[68], extra[69]), (2, 70, 130));
    }

    #[test]
    fn pairing_rejects_completion_without_invoke() {
        let h = vec![ev(0, 0, OpType::Ok, put("0"), 1)];
        let e = pair_events(&h).unwrap_err();
        assert_eq!(e.position, 0);
        assert!(e.message.contains("never invoked"), "{}", e.message);
    }

    #[test]
    fn pairing_drops_fail_and_keeps_unfinished_as_indeterminate() {
        let h = vec![
            ev(0, 0, OpType::Invoke, put("0"), 0),
            ev(1, 0, OpType::Fail, put("0"), 1),
            ev(2, 1, OpType::Invoke, put("1"), 2),
        ];
        let ops = pair_events(&h).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].return_ns, None);
        assert_eq!(ops[0].op, put("1"));
    }

    #[test]
    fn generated_history_is_linearizable() {
        for seed in 0..5 {
            let h = generate_linearizable_history(
                seed,
                GenParams {
                    ops: 400,
                    keys: 3,
                    clients: 5,
                    info_percent: 3,
                },
            );
            let o = check_kv(&h, Duration::from_secs(20));
            assert_eq!(o.verdict, Verdict::Pass, "seed {seed}");
        }
    }
}
