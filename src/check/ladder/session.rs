//! The four session guarantees of Terry et al., "Session Guarantees for Weakly
//! Consistent Replicated Data" (PDIS 1994), as Jepsen's consistency pages state
//! them for a client's operations (a session is one client process):
//!
//! - **read your writes**: a read sees the client's own earlier writes (a version
//!   of the key no older than the client's last completed write to it);
//! - **monotonic reads**: a client's later read of a key never sees an older
//!   version than an earlier one did;
//! - **monotonic writes**: if a client writes w1 then w2, every client that sees w2
//!   afterwards sees w1 too (no version of w1's key older than w1);
//! - **writes follow reads**: if a client reads w1 and then writes w2, every client
//!   that sees w2 afterwards sees w1 too.
//!
//! Versions and "older" are [`crate::check::ladder::versions`]'. Each check is a
//! scan of the history, polynomial, with a step budget (a comparison is a step);
//! every violation found is a counterexample, and the one with the fewest
//! operations is reported.

use std::collections::BTreeMap;

use crate::check::ladder::ops::LadderOp;
use crate::check::ladder::versions::{Version, VersionOrder};

/// A broken guarantee: the operations involved (positions into the ops), and the
/// rule they break, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Positions into the ops, in history order.
    pub ops: Vec<usize>,
    /// What happened, naming operations by their history index (`#12`).
    pub rule: String,
}

/// A guarantee's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    /// No violation.
    Holds,
    /// The smallest violation found.
    Broken(Violation),
    /// The step budget ran out before the scan finished, with no violation found.
    Unknown,
}

/// What every check reads.
pub struct Input<'a> {
    /// The operations.
    pub ops: &'a [LadderOp],
    /// Per operation, the version a determinate read saw (see
    /// [`crate::check::ladder::versions::reads_from`]).
    pub reads_from: &'a [Option<Version>],
    /// How versions are ordered.
    pub order: &'a VersionOrder,
    /// Key names, by key position.
    pub keys: &'a [String],
    /// Comparisons allowed per check.
    pub steps_max: u64,
}

/// Keeps the smallest violation and counts steps.
struct Scan<'a> {
    input: &'a Input<'a>,
    best: Option<Violation>,
    steps: u64,
}

impl<'a> Scan<'a> {
    fn new(input: &'a Input<'a>) -> Scan<'a> {
        Scan {
            input,
            best: None,
            steps: 0,
        }
    }

    /// Counts a step; false once the budget is spent.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.steps <= self.input.steps_max
    }

    fn older(&self, a: Version, b: Version) -> bool {
        self.input.order.older(self.input.ops, a, b)
    }

    fn found(&mut self, mut ops: Vec<usize>, rule: String) {
        ops.sort_unstable();
        ops.dedup();
        let smaller = self
            .best
            .as_ref()
            .is_none_or(|b| (ops.len(), ops.last()) < (b.ops.len(), b.ops.last()));
        if smaller {
            self.best = Some(Violation { ops, rule });
        }
    }

    fn finish(self, completed: bool) -> SessionVerdict {
        match (self.best, completed) {
            (Some(v), _) => SessionVerdict::Broken(v),
            (None, true) => SessionVerdict::Holds,
            (None, false) => SessionVerdict::Unknown,
        }
    }

    fn name(&self, i: usize) -> String {
        format!("#{}", self.input.ops[i].index)
    }

    fn version(&self, v: Version) -> String {
        match v {
            Version::Initial => "the initial value".into(),
            Version::Write(w) => format!("the value written by {}", self.name(w)),
        }
    }

    fn key(&self, i: usize) -> &str {
        &self.input.keys[self.input.ops[i].key]
    }
}

fn with_source(mut ops: Vec<usize>, v: Version) -> Vec<usize> {
    if let Version::Write(w) = v {
        ops.push(w);
    }
    ops
}

/// Each process's operation positions, in program order.
fn sessions(ops: &[LadderOp]) -> Vec<(u64, Vec<usize>)> {
    crate::check::ladder::ops::sessions(ops)
}

/// Read your writes.
pub fn read_your_writes(input: &Input<'_>) -> SessionVerdict {
    let mut scan = Scan::new(input);
    for (process, list) in sessions(input.ops) {
        let mut last_write: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in &list {
            if !scan.step() {
                return scan.finish(false);
            }
            let o = &input.ops[i];
            if !o.op.is_read() {
                if o.determinate() {
                    last_write.insert(o.key, i);
                }
                continue;
            }
            let (Some(v), Some(&w)) = (input.reads_from[i], last_write.get(&o.key)) else {
                continue;
            };
            if scan.older(v, Version::Write(w)) {
                let rule = format!(
                    "client {process} wrote {} at {}, then read it at {} and saw {}, older than its own write ({})",
                    scan.key(i),
                    scan.name(w),
                    scan.name(i),
                    scan.version(v),
                    input.order.rule()
                );
                scan.found(with_source(vec![w, i], v), rule);
            }
        }
    }
    scan.finish(true)
}

/// Monotonic reads.
pub fn monotonic_reads(input: &Input<'_>) -> SessionVerdict {
    let mut scan = Scan::new(input);
    for (process, list) in sessions(input.ops) {
        // Per key: the versions this client saw so far, each with its first read.
        let mut seen: BTreeMap<usize, Vec<(Version, usize)>> = BTreeMap::new();
        for &i in &list {
            let Some(v) = input.reads_from[i] else {
                continue;
            };
            let key = input.ops[i].key;
            let earlier = seen.entry(key).or_default();
            let mut hit: Option<(Version, usize)> = None;
            for &(v0, r0) in earlier.iter() {
                if !scan.step() {
                    return scan.finish(false);
                }
                if scan.older(v, v0) {
                    hit = Some((v0, r0));
                    break;
                }
            }
            if !earlier.iter().any(|&(x, _)| x == v) {
                earlier.push((v, i));
            }
            if let Some((v0, r0)) = hit {
                let rule = format!(
                    "client {process} read {} at {} and saw {}, then at {} saw {}, which is older ({})",
                    scan.key(i),
                    scan.name(r0),
                    scan.version(v0),
                    scan.name(i),
                    scan.version(v),
                    input.order.rule()
                );
                scan.found(with_source(with_source(vec![r0, i], v0), v), rule);
            }
        }
    }
    scan.finish(true)
}

/// A version a reader must not go below, once it saw `w2`: `w1`, with the
/// operations that make it so and the sentence that says why.
#[derive(Clone, Copy)]
struct Floor {
    w1: usize,
    /// The client that wrote `w2`.
    process: u64,
    /// Its read of `w1` (writes follow reads), or none (monotonic writes).
    r1: Option<usize>,
    w2: usize,
}

impl Floor {
    fn why(&self, ops: &[LadderOp]) -> String {
        let (p, w1, w2) = (self.process, ops[self.w1].index, ops[self.w2].index);
        match self.r1 {
            None => format!("client {p} wrote #{w1} then #{w2}"),
            Some(r1) => format!(
                "client {p} read the value written by #{w1} at #{}, then wrote #{w2}",
                ops[r1].index
            ),
        }
    }
}

/// Shared by monotonic writes and writes follow reads: `floors_of(w2)` are the
/// versions a client must see, after it saw `w2`, on each key. Scans every
/// client's reads in order against the floors its earlier reads set.
fn judge_floors(input: &Input<'_>, floors_of: &BTreeMap<usize, Vec<Floor>>) -> SessionVerdict {
    let mut scan = Scan::new(input);
    for (process, list) in sessions(input.ops) {
        let mut floors: BTreeMap<usize, Vec<(Floor, usize)>> = BTreeMap::new();
        for &i in &list {
            let Some(v) = input.reads_from[i] else {
                continue;
            };
            let key = input.ops[i].key;
            for (floor, ra) in floors.get(&key).map_or(&[][..], |f| f.as_slice()) {
                if !scan.step() {
                    return scan.finish(false);
                }
                if scan.older(v, Version::Write(floor.w1)) {
                    let rule = format!(
                        "{}; client {process} saw it at {}, then read {} at {} and saw {}, older than {} ({})",
                        floor.why(input.ops),
                        scan.name(*ra),
                        scan.key(i),
                        scan.name(i),
                        scan.version(v),
                        scan.name(floor.w1),
                        input.order.rule()
                    );
                    let mut ops = vec![floor.w1, floor.w2, *ra, i];
                    ops.extend(floor.r1);
                    scan.found(with_source(ops, v), rule);
                }
            }
            let Version::Write(w2) = v else { continue };
            for floor in floors_of.get(&w2).map_or(&[][..], |f| f.as_slice()) {
                if !scan.step() {
                    return scan.finish(false);
                }
                let k = input.ops[floor.w1].key;
                let list = floors.entry(k).or_default();
                if !list.iter().any(|(f, _)| f.w1 == floor.w1) {
                    list.push((*floor, i));
                }
            }
        }
    }
    scan.finish(true)
}

/// Monotonic writes.
pub fn monotonic_writes(input: &Input<'_>) -> SessionVerdict {
    let ops = input.ops;
    let mut floors_of: BTreeMap<usize, Vec<Floor>> = BTreeMap::new();
    for (process, list) in sessions(ops) {
        // Per key, this client's latest completed write so far.
        let mut last: BTreeMap<usize, usize> = BTreeMap::new();
        for &w2 in &list {
            if ops[w2].op.is_read() {
                continue;
            }
            let floors: Vec<Floor> = last
                .values()
                .map(|&w1| Floor {
                    w1,
                    process,
                    r1: None,
                    w2,
                })
                .collect();
            if !floors.is_empty() {
                floors_of.insert(w2, floors);
            }
            if ops[w2].determinate() {
                last.insert(ops[w2].key, w2);
            }
        }
    }
    judge_floors(input, &floors_of)
}

/// Writes follow reads.
pub fn writes_follow_reads(input: &Input<'_>) -> SessionVerdict {
    let ops = input.ops;
    let mut floors_of: BTreeMap<usize, Vec<Floor>> = BTreeMap::new();
    for (process, list) in sessions(ops) {
        // Per key, the write this client read last, with the read. Only the last:
        // it bounds the floors per write by the keys (an earlier read it saw is
        // judged through the last one when monotonic reads hold).
        let mut read: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for &i in &list {
            if ops[i].op.is_read() {
                if let Some(Version::Write(w1)) = input.reads_from[i] {
                    read.insert(ops[i].key, (w1, i));
                }
                continue;
            }
            let floors: Vec<Floor> = read
                .values()
                .filter(|&&(w1, _)| w1 != i)
                .map(|&(w1, r1)| Floor {
                    w1,
                    process,
                    r1: Some(r1),
                    w2: i,
                })
                .collect();
            if !floors.is_empty() {
                floors_of.insert(i, floors);
            }
        }
    }
    judge_floors(input, &floors_of)
}
