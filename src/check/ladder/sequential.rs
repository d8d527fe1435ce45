//! Sequential consistency (Lamport 1979, "How to Make a Multiprocessor Computer
//! That Correctly Executes Multiprocess Programs"): some single total order of all
//! operations keeps each client's program order and is legal for the key-value
//! model (every read returns what the last write before it left). Unlike
//! linearizability it ignores real time between clients.
//!
//! It is not compositional: every key can be sequentially consistent on its own
//! while the whole history is not (two clients that each see the other's write on
//! one key late and on the other early). So the search runs over the whole history.
//! Since a total order of the whole restricts to one of every key, a key with no
//! such order already refutes the whole; each key is tried alone first, which finds
//! most failures on a much smaller search, and the whole history is searched after.
//!
//! The search is a depth-first search over interleavings, written for this rung:
//! the state is each client's next operation, the indeterminate writes already
//! applied, and every key's value; states seen once are not explored again. Moves
//! are tried by invoke time, so a history that respects real time is ordered with
//! no backtracking. Two reductions keep it small, both exact: a read that is legal
//! now is taken at once with no alternative (moving a client's next read earlier
//! never breaks an order, since a read changes nothing); and a write that
//! overwrites a value some pending read still needs, when nothing left can write
//! that value again, is refused (that read could never be placed).
//!
//! Indeterminate writes (`info`) are Jepsen's: they may take effect at any point
//! after the client's earlier operations (even after its later ones, since the
//! request may still be in flight), or never. Every search has a hard step budget:
//! a move tried is one step, and the memo holds at most one state per step.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use crate::check::ladder::ops::LadderOp;
use crate::check::model::{FxHasher, FxMap, Machine, Op, ValueId};

/// A search's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScOutcome {
    /// An order exists: the operations' positions (into the ops) in that order;
    /// indeterminate writes left out never took effect.
    Holds(Vec<usize>),
    /// No order exists.
    Broken,
    /// The step budget ran out first.
    Unknown,
}

/// Searches `subset` (positions into `ops`, in program order) for a sequentially
/// consistent order, within `steps_max` moves. `keys` is the number of keys. Returns
/// the outcome (orders as positions into `ops`) and the steps taken.
pub fn search(
    ops: &[LadderOp],
    subset: &[usize],
    keys: usize,
    machine: &mut Machine<'_>,
    steps_max: u64,
) -> (ScOutcome, u64) {
    // Per process, its operations in program order.
    let mut procs: Vec<(u64, Vec<usize>)> = Vec::new();
    for &i in subset {
        match procs.iter_mut().find(|(p, _)| *p == ops[i].process) {
            Some((_, list)) => list.push(i),
            None => procs.push((ops[i].process, vec![i])),
        }
    }
    let infos: Vec<usize> = subset
        .iter()
        .copied()
        .filter(|&i| !ops[i].determinate())
        .collect();
    // Per indeterminate write: its process and position in that process's list;
    // it is released once the process's pointer is past it.
    let info_at: Vec<(usize, u32)> = infos
        .iter()
        .map(|&i| {
            let p = procs
                .iter()
                .position(|(id, _)| *id == ops[i].process)
                .expect("its process");
            let at = procs[p]
                .1
                .iter()
                .position(|&x| x == i)
                .expect("in its list");
            (p, at as u32)
        })
        .collect();
    let mut s = State {
        ptr: vec![0; procs.len()],
        applied: vec![false; infos.len()],
        kv: vec![machine.initial; keys],
        needed: FxMap::default(),
        producers: FxMap::default(),
        appended: vec![false; keys],
    };
    for &i in subset {
        let o = &ops[i];
        if let Some(v) = needs(o) {
            *s.needed.entry((o.key, v)).or_default() += 1;
        }
        if let Some(v) = machine.written(&o.op) {
            *s.producers.entry((o.key, v)).or_default() += 1;
        }
        if matches!(o.op, Op::Append(_)) {
            s.appended[o.key] = true;
        }
    }
    for p in 0..procs.len() {
        skip_infos(&procs, &ops_det(ops), p, &mut s.ptr);
    }
    let mut seen: HashSet<Vec<u32>, BuildHasherDefault<FxHasher>> = HashSet::default();
    seen.insert(s.key());
    // The DFS stack: per level, its candidate moves, the next to try, and how to
    // undo the move taken from it.
    let mut stack: Vec<Frame> = vec![Frame::new(candidates(ops, &procs, &info_at, &s, machine))];
    let mut order: Vec<usize> = Vec::new();
    let mut steps: u64 = 0;
    // A round either takes a move (one step, at most `steps_max`) or pops the frame a
    // step pushed: at most 2 * steps_max + 3 rounds. The stack is at most one frame
    // per operation deep, as each move applies an operation not yet applied.
    loop {
        if s.ptr
            .iter()
            .zip(&procs)
            .all(|(&p, (_, l))| p as usize >= l.len())
        {
            return (ScOutcome::Holds(order), steps);
        }
        let Some(frame) = stack.last_mut() else {
            return (ScOutcome::Broken, steps);
        };
        let Some(&mv) = frame.moves.get(frame.next) else {
            // Every move from here failed: undo the move that led here.
            stack.pop();
            if let Some(parent) = stack.last() {
                let undo = parent.undo.expect("a move led here");
                s.undo(undo);
                s.count(machine, &ops[undo.op], 1);
                order.pop();
            }
            continue;
        };
        frame.next += 1;
        steps += 1;
        if steps > steps_max {
            return (ScOutcome::Unknown, steps);
        }
        let op_pos = match mv {
            Move::Next(p) => procs[p].1[s.ptr[p] as usize],
            Move::Info(slot) => infos[slot],
        };
        let o = &ops[op_pos];
        let Some(next) = machine.step(s.kv[o.key], &o.op, o.determinate()) else {
            continue;
        };
        let old = s.kv[o.key];
        s.count(machine, o, -1);
        if old != next && !s.appended[o.key] {
            let pending = s.needed.get(&(o.key, old)).copied().unwrap_or(0);
            let again = s.producers.get(&(o.key, old)).copied().unwrap_or(0);
            if pending > 0 && again == 0 {
                // A read still needs `old`, and nothing left can write it again.
                s.count(machine, o, 1);
                continue;
            }
        }
        let undo = Undo {
            op: op_pos,
            mv,
            key: o.key,
            value: s.kv[o.key],
            ptr: match mv {
                Move::Next(p) => s.ptr[p],
                Move::Info(_) => 0,
            },
        };
        s.kv[o.key] = next;
        match mv {
            Move::Next(p) => {
                s.ptr[p] += 1;
                skip_infos(&procs, &ops_det(ops), p, &mut s.ptr);
            }
            Move::Info(slot) => s.applied[slot] = true,
        }
        if !seen.insert(s.key()) {
            s.undo(undo);
            s.count(machine, o, 1);
            continue;
        }
        frame.undo = Some(undo);
        order.push(op_pos);
        let moves = candidates(ops, &procs, &info_at, &s, machine);
        stack.push(Frame::new(moves));
    }
}

/// Whether each operation is determinate, by position.
fn ops_det(ops: &[LadderOp]) -> impl Fn(usize) -> bool + '_ {
    move |i| ops[i].determinate()
}

/// Moves process `p`'s pointer past indeterminate operations: they are released,
/// free to take effect any time from now on (or never).
fn skip_infos(
    procs: &[(u64, Vec<usize>)],
    det: &impl Fn(usize) -> bool,
    p: usize,
    ptr: &mut [u32],
) {
    let list = &procs[p].1;
    // Moves forward each round: at most the process's operations.
    while let Some(&i) = list.get(ptr[p] as usize) {
        if det(i) {
            break;
        }
        ptr[p] += 1;
    }
}

#[derive(Clone, Copy, Debug)]
enum Move {
    /// Process `p`'s next determinate operation.
    Next(usize),
    /// A released, not yet applied indeterminate write (its slot).
    Info(usize),
}

#[derive(Clone, Copy, Debug)]
struct Undo {
    op: usize,
    mv: Move,
    key: usize,
    value: ValueId,
    ptr: u32,
}

struct Frame {
    moves: Vec<Move>,
    next: usize,
    undo: Option<Undo>,
}

impl Frame {
    fn new(moves: Vec<Move>) -> Frame {
        Frame {
            moves,
            next: 0,
            undo: None,
        }
    }
}

struct State {
    ptr: Vec<u32>,
    applied: Vec<bool>,
    kv: Vec<ValueId>,
    /// Determinate reads not yet placed, by (key, value read).
    needed: FxMap<(usize, ValueId), u32>,
    /// Writes not yet applied, by (key, value written).
    producers: FxMap<(usize, ValueId), u32>,
    /// Keys with appends, whose values are built, not written whole: no refusals.
    appended: Vec<bool>,
}

/// The value a determinate read needs.
fn needs(o: &LadderOp) -> Option<ValueId> {
    match o.op {
        Op::Read(v) if o.determinate() => Some(v),
        _ => None,
    }
}

impl State {
    /// The memo key: pointers, applied indeterminate writes (as bits), values.
    fn key(&self) -> Vec<u32> {
        let mut k =
            Vec::with_capacity(self.ptr.len() + self.kv.len() + self.applied.len() / 32 + 1);
        k.extend_from_slice(&self.ptr);
        for chunk in self.applied.chunks(32) {
            k.push(
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << i)),
            );
        }
        k.extend_from_slice(&self.kv);
        k
    }

    /// Moves `o` out of (`-1`) or back into (`1`) the pending counts.
    fn count(&mut self, machine: &Machine<'_>, o: &LadderOp, by: i32) {
        let bump = |map: &mut FxMap<(usize, ValueId), u32>, v| {
            let c = map.entry((o.key, v)).or_default();
            *c = c.checked_add_signed(by).expect("counts stay non-negative");
        };
        if let Some(v) = needs(o) {
            bump(&mut self.needed, v);
        }
        if let Some(v) = machine.written(&o.op) {
            bump(&mut self.producers, v);
        }
    }

    fn undo(&mut self, u: Undo) {
        self.kv[u.key] = u.value;
        match u.mv {
            Move::Next(p) => self.ptr[p] = u.ptr,
            Move::Info(slot) => self.applied[slot] = false,
        }
    }
}

/// The moves from `s`: each process's next determinate operation by invoke time,
/// then the released indeterminate writes by invoke time (tried last: they are
/// needed only when some read saw them).
fn candidates(
    ops: &[LadderOp],
    procs: &[(u64, Vec<usize>)],
    info_at: &[(usize, u32)],
    s: &State,
    machine: &mut Machine<'_>,
) -> Vec<Move> {
    // A legal read is taken alone (see the module's notes).
    for (p, (_, list)) in procs.iter().enumerate() {
        if let Some(&i) = list.get(s.ptr[p] as usize) {
            let o = &ops[i];
            if o.op.is_read() && machine.step(s.kv[o.key], &o.op, true).is_some() {
                return vec![Move::Next(p)];
            }
        }
    }
    let mut next: Vec<(u64, Move)> = procs
        .iter()
        .enumerate()
        .filter_map(|(p, (_, list))| {
            let &i = list.get(s.ptr[p] as usize)?;
            Some((ops[i].call, Move::Next(p)))
        })
        .collect();
    // Stable: equal invoke times keep process order.
    next.sort_by_key(|&(call, _)| call);
    let mut out: Vec<Move> = next.into_iter().map(|(_, m)| m).collect();
    for (slot, &(p, at)) in info_at.iter().enumerate() {
        if !s.applied[slot] && s.ptr[p] > at {
            out.push(Move::Info(slot));
        }
    }
    out
}
