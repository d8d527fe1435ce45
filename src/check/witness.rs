//! Witness minimisation: given one key's operations, known not linearizable, find a
//! small subset that has no linearization on its own.
//!
//! 1. The earliest completion time `t` such that the history cut at `t`
//!    (operations completed by `t`, plus those pending at `t` as indeterminate,
//!    pending reads dropped) is not linearizable, by binary search.
//! 2. Windows of the cut's latest operations, doubling (1, 2, 4, ...), each closed
//!    under sources (below), until one is not linearizable: anomalies are usually
//!    local, so this finds a small set in a few searches even in a long history.
//! 3. Delta debugging on that set (delete halves, then single operations) while it
//!    stays non-linearizable and closed under sources.
//!
//! Sources: if an operation in the set observed a value (a read's result, a cas's
//! expected value) that some operation of the cut wrote, the set keeps at least one
//! such writer (for appends: a writer of each contributing piece). Without this the
//! witness could blame a read for a value "never written" instead of the real
//! anomaly. The initial value needs no writer.
//!
//! Every search is bounded by steps, and so is the whole minimisation: the witness
//! depends on the history and the bounds only, never on machine load.

use std::sync::atomic::AtomicBool;

use crate::check::model::Machine;
use crate::check::search::{Search, SearchOp, Status};

/// Most delta-debugging passes over the set (step 3). A pass that removes nothing
/// ends them sooner; the step budget bounds each pass.
const SHRINK_PASSES_MAX: usize = 8;

/// Work bounds for one key's minimisation, in search steps.
#[derive(Clone, Copy, Debug)]
pub struct MinimiseBudget {
    /// All searches together.
    pub total_steps: u64,
    /// One search.
    pub check_steps: u64,
}

/// A minimised witness: indices into the key's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// Indices into the key's operations, in invoke order: together they have no
    /// linearization.
    pub ops: Vec<usize>,
    /// The earliest completion time by which the key is already not linearizable.
    pub cut: u64,
    /// Whether minimisation finished within its bounds (each op is needed, or is the
    /// only kept source of a value another one observed).
    pub minimal: bool,
    /// Search steps spent.
    pub steps: u64,
}

struct Minimiser<'m, 'a> {
    machine: &'m mut Machine<'a>,
    /// The cut: (index in the key's operations, op as searched).
    cut: Vec<(usize, SearchOp)>,
    /// Per cut op: groups of cut ops, one of each must be kept with it (lazy).
    sources: Vec<Option<Vec<Vec<usize>>>>,
    budget: MinimiseBudget,
    spent: u64,
    exhausted: bool,
    abort: &'m AtomicBool,
}

impl Minimiser<'_, '_> {
    /// Searches the subset: Some(true) proven not linearizable, Some(false)
    /// linearizable, None gave up (bounds, abort).
    fn bad(&mut self, subset: &[usize]) -> Option<bool> {
        let left = self.budget.total_steps.saturating_sub(self.spent);
        if left == 0 {
            self.exhausted = true;
            return None;
        }
        let ops: Vec<SearchOp> = subset.iter().map(|&i| self.cut[i].1).collect();
        let mut s = Search::new(ops, self.machine.initial);
        let st = s.run(self.machine, left.min(self.budget.check_steps), self.abort);
        self.spent += s.steps;
        match st {
            Status::NotLinearizable(_) => Some(true),
            Status::Linearizable => Some(false),
            Status::Running | Status::Aborted => {
                self.exhausted = true;
                None
            }
        }
    }

    fn sources_of(&mut self, i: usize) -> &[Vec<usize>] {
        if self.sources[i].is_none() {
            let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
            if let Some(seen) = self.machine.observed(&self.cut[i].1.op) {
                for (j, (_, w)) in self.cut.iter().enumerate() {
                    if j != i && self.machine.contributes(&w.op, seen) {
                        let v = self.machine.written(&w.op).expect("a contributor writes");
                        match groups.iter_mut().find(|(g, _)| *g == v) {
                            Some((_, members)) => members.push(j),
                            None => groups.push((v, vec![j])),
                        }
                    }
                }
            }
            self.spent += self.cut.len() as u64 / 16;
            self.sources[i] = Some(groups.into_iter().map(|(_, m)| m).collect());
        }
        self.sources[i].as_deref().expect("just filled")
    }

    /// Whether every kept observer keeps a source of each piece it observed.
    fn closed(&mut self, kept: &[bool]) -> bool {
        for i in 0..kept.len() {
            if !kept[i] {
                continue;
            }
            let groups = self.sources_of(i).to_vec();
            if groups.iter().any(|g| !g.iter().any(|&j| kept[j])) {
                return false;
            }
        }
        true
    }

    /// Adds sources until closed: for a missing piece, its latest writer invoked
    /// before the observer returned (else the earliest one).
    fn close(&mut self, kept: &mut [bool]) {
        let mut work: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
        // An operation joins `work` only as it becomes kept, so each at most once: at
        // most `kept.len()` rounds.
        while let Some(i) = work.pop() {
            let ret = self.cut[i].1.ret.unwrap_or(u64::MAX);
            let groups = self.sources_of(i).to_vec();
            for g in groups {
                if g.iter().any(|&j| kept[j]) {
                    continue;
                }
                let pick = g
                    .iter()
                    .copied()
                    .filter(|&j| self.cut[j].1.call <= ret)
                    .max_by_key(|&j| (self.cut[j].1.call, j))
                    .or_else(|| g.iter().copied().min_by_key(|&j| (self.cut[j].1.call, j)))
                    .expect("a source group is not empty");
                kept[pick] = true;
                work.push(pick);
            }
        }
    }

    fn still_bad(&mut self, kept: &[bool]) -> bool {
        if !self.closed(kept) {
            return false;
        }
        let subset: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
        self.bad(&subset) == Some(true)
    }

    /// Deletes as many of `candidates` as possible, halving on failure.
    fn shrink(&mut self, kept: &mut [bool], candidates: &[usize], depth: usize) {
        assert!(depth <= 64, "shrinking deeper than log2 of a history");
        if candidates.is_empty() || self.exhausted {
            return;
        }
        for &c in candidates {
            kept[c] = false;
        }
        if self.still_bad(kept) {
            return;
        }
        for &c in candidates {
            kept[c] = true;
        }
        if candidates.len() == 1 {
            return;
        }
        let (a, b) = candidates.split_at(candidates.len() / 2);
        self.shrink(kept, a, depth + 1);
        self.shrink(kept, b, depth + 1);
    }
}

/// The key's history cut at `t`.
fn cut(ops: &[SearchOp], t: u64) -> Vec<(usize, SearchOp)> {
    ops.iter()
        .enumerate()
        .filter(|(_, o)| o.call <= t)
        .filter_map(|(i, o)| match o.ret {
            Some(r) if r <= t => Some((i, *o)),
            _ if o.op.is_read() => None,
            _ => Some((i, SearchOp { ret: None, ..*o })),
        })
        .collect()
}

/// Minimises a witness for `ops` (one key's operations, proven not linearizable
/// by a search from `machine.initial`).
///
/// # Panics
/// If `ops` has no determinate operation (such a history is always linearizable).
pub fn minimise(
    machine: &mut Machine<'_>,
    ops: &[SearchOp],
    budget: MinimiseBudget,
    abort: &AtomicBool,
) -> Witness {
    let mut returns: Vec<u64> = ops.iter().filter_map(|o| o.ret).collect();
    returns.sort_unstable();
    returns.dedup();
    assert!(
        !returns.is_empty(),
        "a history without completions cannot fail"
    );
    let mut m = Minimiser {
        machine,
        cut: Vec::new(),
        sources: Vec::new(),
        budget,
        spent: 0,
        exhausted: false,
        abort,
    };
    // 1. The earliest bad cut. The last one is known bad: it is the whole history
    // less indeterminate operations invoked after it, which may always be dropped.
    let (mut lo, mut hi) = (0usize, returns.len() - 1);
    // Bisection: about log2(returns) rounds.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        m.cut = cut(ops, returns[mid]);
        let all: Vec<usize> = (0..m.cut.len()).collect();
        match m.bad(&all) {
            Some(true) => hi = mid,
            _ => lo = mid + 1,
        }
    }
    let t = returns[hi];
    m.cut = cut(ops, t);
    m.sources = vec![None; m.cut.len()];
    let n = m.cut.len();
    // 2. Windows of the latest operations, with the ones completing at `t`.
    let mut latest: Vec<usize> = (0..n).collect();
    latest.sort_by_key(|&i| std::cmp::Reverse((m.cut[i].1.call, i)));
    let mut kept = vec![false; n];
    let mut w = 1usize;
    // `w` doubles each round and the loop ends once it reaches `n`: at most
    // log2(n) + 1 rounds.
    loop {
        if w >= n {
            kept = vec![true; n];
            break;
        }
        let mut trial = vec![false; n];
        for (i, o) in m.cut.iter().enumerate() {
            if o.1.ret == Some(t) {
                trial[i] = true;
            }
        }
        for &i in &latest[..w] {
            trial[i] = true;
        }
        m.close(&mut trial);
        let subset: Vec<usize> = (0..n).filter(|&i| trial[i]).collect();
        if m.bad(&subset) == Some(true) {
            kept = trial;
            break;
        }
        if m.exhausted {
            kept = vec![true; n];
            break;
        }
        w *= 2;
    }
    // 3. Delete halves, latest first (observers go before the writers they keep),
    // repeating while anything goes; then single operations.
    let was_exhausted = m.exhausted;
    m.exhausted = false;
    for _pass in 0..SHRINK_PASSES_MAX {
        let before = kept.iter().filter(|&&k| k).count();
        let candidates: Vec<usize> = latest.iter().copied().filter(|&i| kept[i]).collect();
        m.shrink(&mut kept, &candidates, 0);
        if kept.iter().filter(|&&k| k).count() == before || m.exhausted {
            break;
        }
    }
    let mut out: Vec<usize> = (0..n).filter(|&i| kept[i]).map(|i| m.cut[i].0).collect();
    out.sort_unstable();
    Witness {
        ops: out,
        cut: t,
        minimal: !m.exhausted && !was_exhausted,
        steps: m.spent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::{ModelKind, Op, Values, NIL};

    #[test]
    fn three_op_anomaly_in_a_long_history() {
        // Many writes, each read back, then a stale read of an old value.
        let mut vals = Values::new(false);
        let mut ops = Vec::new();
        let mut t = 0;
        for i in 0..300u64 {
            let v = vals.intern(&(i % 7).to_string());
            ops.push(SearchOp {
                call: t,
                ret: Some(t + 1),
                op: Op::Write(v),
            });
            ops.push(SearchOp {
                call: t + 2,
                ret: Some(t + 3),
                op: Op::Read(v),
            });
            t += 4;
        }
        let six = vals.lookup("6").unwrap();
        ops.push(SearchOp {
            call: t,
            ret: Some(t + 1),
            op: Op::Read(six),
        });
        let mut m = Machine::new(ModelKind::CasRegister, &vals, NIL);
        let w = minimise(
            &mut m,
            &ops,
            MinimiseBudget {
                total_steps: 10_000_000,
                check_steps: 1_000_000,
            },
            &AtomicBool::new(false),
        );
        assert!(w.minimal);
        assert_eq!(w.cut, t + 1);
        // A write of 6, a later write, and the stale read.
        assert_eq!(w.ops.len(), 3, "{:?}", w.ops);
        assert_eq!(*w.ops.last().unwrap(), ops.len() - 1);
    }
}
