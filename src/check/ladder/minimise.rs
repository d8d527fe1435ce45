//! Shrinks a set of operations with no sequentially consistent order to a small one
//! that still has none: the shortest failing prefix (by invoke position), then one
//! operation removed at a time while the rest still fails (a 1-minimal set, in the
//! sense of Zeller and Hildebrandt's delta debugging, TSE 2002).
//!
//! A candidate must keep a source for every value its operations observe (a write
//! that could have produced it, or the initial value): without that rule, removing
//! the write a read saw would "fail" only because the read's value comes from
//! nowhere, which is not the anomaly being explained.

use crate::check::ladder::ops::LadderOp;
use crate::check::ladder::sequential::{search, ScOutcome};
use crate::check::model::{Machine, Op};

/// Steps each candidate's search may take; a candidate that runs out is kept out.
pub const CANDIDATE_STEPS_MAX: u64 = 20_000;

/// Shrinks `failing` (positions into `ops`, with no sequentially consistent order),
/// spending at most `steps_max` search steps in all. Returns a failing set (the
/// smallest found; `failing` itself if nothing smaller was proven to fail) and
/// whether every single-operation removal was tried.
pub fn minimise(
    ops: &[LadderOp],
    failing: &[usize],
    keys: usize,
    machine: &mut Machine<'_>,
    steps_max: u64,
) -> (Vec<usize>, bool) {
    let mut spent: u64 = 0;
    let fails = |set: &[usize], machine: &mut Machine<'_>, spent: &mut u64| -> Option<bool> {
        if *spent >= steps_max {
            return None;
        }
        let budget = CANDIDATE_STEPS_MAX.min(steps_max - *spent);
        let (outcome, steps) = search(ops, set, keys, machine, budget);
        *spent += steps;
        Some(outcome == ScOutcome::Broken)
    };
    let mut best: Vec<usize> = failing.to_vec();
    best.sort_unstable();
    // The shortest failing prefix, by bisection over its length.
    let (mut lo, mut hi) = (1usize, best.len());
    // Bisection: about log2(failing) rounds.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let prefix = &best[..mid];
        let ok = sourced(ops, prefix, machine);
        match ok.then(|| fails(prefix, machine, &mut spent)).flatten() {
            Some(true) => hi = mid,
            Some(false) => lo = mid + 1,
            None if ok => break,
            None => lo = mid + 1,
        }
    }
    best.truncate(hi);
    // One operation at a time, latest first.
    let mut i = best.len();
    let mut complete = true;
    // One round per operation of the prefix, latest first.
    while i > 0 {
        i -= 1;
        let mut candidate = best.clone();
        candidate.remove(i);
        if candidate.is_empty() || !sourced(ops, &candidate, machine) {
            continue;
        }
        match fails(&candidate, machine, &mut spent) {
            Some(true) => best = candidate,
            Some(false) => {}
            None => {
                complete = false;
                break;
            }
        }
    }
    (best, complete)
}

/// Whether every value an operation of `set` observes (a read's result, a cas's
/// expected value) is the initial value or has a write in `set` that could have
/// produced it.
pub fn sourced(ops: &[LadderOp], set: &[usize], machine: &Machine<'_>) -> bool {
    set.iter().all(|&r| {
        let o = &ops[r];
        let seen = match o.op {
            Op::Read(v) if o.determinate() => v,
            Op::Cas(v, _) => v,
            _ => return true,
        };
        seen == machine.initial
            || set
                .iter()
                .any(|&w| ops[w].key == o.key && machine.contributes(&ops[w].op, seen))
    })
}
