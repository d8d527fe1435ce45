//! The operations every rung of the ladder reads: one list over all keys, each with
//! its client, key, interval and index in the history.

use crate::check::linearizability::Problem;
use crate::check::model::Op;

/// One operation of a history, for the ladder's rungs.
///
/// `fail` operations are not here (they did not happen), nor indeterminate reads
/// (they constrain nothing); indeterminate writes are, with `ret = None`: as in
/// Jepsen, they may or may not have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LadderOp {
    /// The invoke event's position among the history's client events, from 0: in a
    /// faultline `history.jsonl`, its `index` field.
    pub index: usize,
    /// The client process.
    pub process: u64,
    /// The key's position in the [`Problem`]'s keys.
    pub key: usize,
    /// The invoke's time (ns, or the event's position when the file has no times).
    pub call: u64,
    /// The completion's time; `None` for an indeterminate operation.
    pub ret: Option<u64>,
    /// The operation, with a read's result.
    pub op: Op,
}

impl LadderOp {
    /// Whether it certainly happened (`ok`).
    pub fn determinate(&self) -> bool {
        self.ret.is_some()
    }
}

/// Every key's operations of `problem` in one list, ordered by invoke position (so
/// each client's operations come in its program order).
pub fn operations(problem: &Problem) -> Vec<LadderOp> {
    let mut out: Vec<LadderOp> = problem
        .keys
        .iter()
        .enumerate()
        .flat_map(|(key, (_, ops))| {
            ops.iter().map(move |o| LadderOp {
                index: o.invoke,
                process: o.process,
                key,
                call: o.call,
                ret: o.ret,
                op: o.op,
            })
        })
        .collect();
    out.sort_by_key(|o| o.index);
    out
}

/// Each process's operations (positions into `ops`), in program order, processes
/// by id.
pub fn sessions(ops: &[LadderOp]) -> Vec<(u64, Vec<usize>)> {
    let mut by: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, o) in ops.iter().enumerate() {
        by.entry(o.process).or_default().push(i);
    }
    by.into_iter().collect()
}
