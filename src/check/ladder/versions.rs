//! Which write a read saw, and which of two versions of a key is newer: what the
//! session guarantees are judged against.
//!
//! **Reads-from.** faultline's clients write unique values (`c<client>.<seq>`), so a
//! read names the write it saw: the put or cas that wrote exactly its value, or the
//! append whose piece its value ends with, or the initial value (absent) when no
//! delete could have produced it. A read that more than one write could explain
//! (equal values written twice, an absent key with deletes about) is not judged.
//!
//! **Version order** (Terry et al. 1994 judge guarantees against the order in which
//! servers apply writes, which a client cannot see; Jepsen's pages define them on an
//! order all processes agree on). It is derived as follows, and a guarantee is broken
//! only when the order says so:
//! - the initial value is older than every write;
//! - when the history is sequentially consistent, the order the sequential search
//!   found (then every session guarantee holds by construction: one total order that
//!   keeps each client's program order satisfies all four);
//! - otherwise real time, as Elle's rw-register also infers version orders: write A
//!   is older than write B when A completed (`ok`) before B was invoked. Overlapping
//!   writes, and indeterminate ones, are not ordered, and no guarantee is judged
//!   broken through them. For faultline's Raft store this is the log's order: a write
//!   is acknowledged only once committed.

use crate::check::ladder::ops::LadderOp;
use crate::check::model::{Machine, Op};

/// A version of a key: the initial value, or the one a write left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Nothing written yet (absent, or `--initial`).
    Initial,
    /// What the write at this position (into the ops) left.
    Write(usize),
}

/// How versions of a key are ordered.
#[derive(Clone, Debug)]
pub enum VersionOrder {
    /// A completed write is older than one invoked after it completed.
    RealTime,
    /// Ranks in a total order (by op position; `None`: not in the order, an
    /// indeterminate write that never took effect).
    Total(Vec<Option<usize>>),
}

impl VersionOrder {
    /// From a total order of operation positions (`ops_len` operations in all).
    pub fn total(order: &[usize], ops_len: usize) -> VersionOrder {
        let mut rank = vec![None; ops_len];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = Some(r);
        }
        VersionOrder::Total(rank)
    }

    /// Whether `a` is strictly older than `b` (both of one key).
    pub fn older(&self, ops: &[LadderOp], a: Version, b: Version) -> bool {
        match (a, b) {
            (_, Version::Initial) => false,
            (Version::Initial, Version::Write(_)) => true,
            (Version::Write(x), Version::Write(y)) => match self {
                VersionOrder::RealTime => ops[x].ret.is_some_and(|r| r < ops[y].call),
                VersionOrder::Total(rank) => match (rank[x], rank[y]) {
                    (Some(rx), Some(ry)) => rx < ry,
                    _ => false,
                },
            },
        }
    }

    /// How a report explains "older": `completed before ... was invoked`, or
    /// `comes before ... in the sequential order`.
    pub fn rule(&self) -> &'static str {
        match self {
            VersionOrder::RealTime => "older: completed before the other was invoked",
            VersionOrder::Total(_) => "older: earlier in the sequential order",
        }
    }
}

/// Per operation (by position): for a determinate read, the version it saw, if one
/// write (or the initial value) alone explains it; `None` otherwise.
pub fn reads_from(ops: &[LadderOp], machine: &Machine<'_>) -> Vec<Option<Version>> {
    // Per key, its writes: at most a few thousand per history, so a scan per read
    // is bounded by ops × writes of that key.
    let mut writes: Vec<Vec<usize>> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        if !o.op.is_read() {
            if writes.len() <= o.key {
                writes.resize(o.key + 1, Vec::new());
            }
            writes[o.key].push(i);
        }
    }
    ops.iter()
        .map(|o| {
            let Op::Read(v) = o.op else { return None };
            if !o.determinate() {
                return None;
            }
            let text = machine.text(v);
            let mut found: Option<Version> = None;
            let mut count = 0usize;
            if v == machine.initial {
                found = Some(Version::Initial);
                count += 1;
            }
            for &w in writes.get(o.key).map_or(&[][..], |w| w.as_slice()) {
                let explains = match ops[w].op {
                    Op::Write(x) | Op::Cas(_, x) => x == v,
                    Op::Append(x) => {
                        let piece = machine.text(x);
                        !piece.is_empty() && text.ends_with(piece)
                    }
                    Op::Delete => v == machine.initial,
                    Op::Read(_) => false,
                };
                if explains {
                    found = Some(Version::Write(w));
                    count += 1;
                }
            }
            (count == 1).then_some(found).flatten()
        })
        .collect()
}
