//! The Wing & Gong search with Lowe's memoization, over one key's operations, as
//! Porcupine implements it (`checker.go`, `checkSingle`): entries (calls and
//! returns) in a doubly linked list sorted by time, calls before returns at equal
//! times (closed intervals); at a call, try the operation, and if the pair (set of
//! linearized operations, state) is new, lift the call and its return out of the
//! list and restart from the head; at a return whose operation is not linearized,
//! backtrack.
//!
//! The search is resumable: [`Search::run`] takes a number of steps (loop
//! iterations) and can be called again, so a scheduler can interleave many keys and
//! bound each by work done rather than by wall time. The memo's set is hashed
//! incrementally (Zobrist: XOR of a fixed pseudo-random word per operation), and
//! stored as a dense prefix plus the few members past it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::check::model::{Machine, Op, ValueId};

/// One operation of a key, as the search sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOp {
    /// Its invoke's time.
    pub call: u64,
    /// `None`: indeterminate; it may take effect any time after `call`, or never.
    pub ret: Option<u64>,
    /// The operation, input and (for a read) output.
    pub op: Op,
}

/// Where a search stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The step budget ran out; call [`Search::run`] again to go on.
    Running,
    /// An order was found.
    Linearizable,
    /// With the most operations linearized in one order.
    NotLinearizable(usize),
    /// The abort flag was raised.
    Aborted,
}

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// SplitMix64: a fixed, well-mixed word per input.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const NONE: u32 = u32::MAX;

struct Entry {
    state: ValueId,
    prefix: u32,
    extra_len: u32,
    /// Arena chunk and offset in it.
    extra_chunk: u32,
    extra_off: u32,
    /// Next entry with the same hash, or NONE.
    next: u32,
}

/// The memo is kept in fixed-size pieces (hash shards, entry and arena chunks) so
/// that no single resize copies all of it: a search stops within a few
/// milliseconds of its abort flag however large the memo has grown.
const SHARDS: usize = 256;
const ENTRY_CHUNK: usize = 1 << 16;
const ARENA_CHUNK: usize = 1 << 18;

/// A resumable search over one key.
pub struct Search {
    ops: Vec<SearchOp>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Per entry: the operation, with the top bit set for a return.
    entry_op: Vec<u32>,
    return_entry: Vec<u32>,
    head: u32,
    bits: Vec<u64>,
    prefix: usize,
    len: usize,
    /// The highest member (meaningful when `len > 0`).
    hi: usize,
    set_hash: u64,
    zobrist: Vec<u64>,
    state: ValueId,
    /// The linearized calls, in order: each operation at most once (`insert` asserts
    /// it), so at most `ops.len()`.
    calls: Vec<(u32, ValueId)>,
    /// The memo: `heads`, `entries` and `arena` grow by one entry per step at most,
    /// so the step bound bounds them; the caller also stops a search past its memory
    /// bound, by [`Search::bytes`].
    heads: Vec<HashMap<u64, u32, BuildHasherDefault<Identity>>>,
    entries: Vec<Vec<Entry>>,
    entry_count: usize,
    arena: Vec<Vec<u32>>,
    arena_words: usize,
    scratch: Vec<u32>,
    determinate_total: usize,
    determinate_done: usize,
    linearized_max: usize,
    cursor: u32,
    /// Steps taken so far.
    pub steps: u64,
    status: Status,
}

const RETURN: u32 = 1 << 31;

impl Search {
    /// Prepares a search over `ops` from `initial`.
    ///
    /// # Panics
    /// With 2^30 operations or more, or an operation returning before its call.
    pub fn new(ops: Vec<SearchOp>, initial: ValueId) -> Search {
        let n = ops.len();
        assert!(n < (1 << 30), "a key with 2^30 operations or more");
        let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n);
        for (i, o) in ops.iter().enumerate() {
            order.push((o.call, 0, i as u32));
            if let Some(r) = o.ret {
                assert!(r >= o.call, "operation returns before it is called");
                order.push((r, 1, i as u32));
            }
        }
        order.sort_unstable();
        let m = order.len();
        let head = m as u32;
        let mut next = vec![NONE; m + 1];
        let mut prev = vec![NONE; m + 1];
        let mut entry_op = vec![0u32; m];
        let mut return_entry = vec![NONE; n];
        let mut last = head;
        for (e, &(_, kind, op)) in order.iter().enumerate() {
            let e = e as u32;
            entry_op[e as usize] = op | if kind == 1 { RETURN } else { 0 };
            if kind == 1 {
                return_entry[op as usize] = e;
            }
            next[last as usize] = e;
            prev[e as usize] = last;
            last = e;
        }
        let determinate_total = ops.iter().filter(|o| o.ret.is_some()).count();
        let zobrist = (0..n as u64).map(|i| mix(i ^ 0x5EED_CAFE)).collect();
        let cursor = next[head as usize];
        Search {
            bits: vec![0; n.div_ceil(64)],
            ops,
            next,
            prev,
            entry_op,
            return_entry,
            head,
            prefix: 0,
            len: 0,
            hi: 0,
            set_hash: 0,
            zobrist,
            state: initial,
            calls: Vec::new(),
            heads: (0..SHARDS).map(|_| HashMap::default()).collect(),
            entries: Vec::new(),
            entry_count: 0,
            arena: Vec::new(),
            arena_words: 0,
            scratch: Vec::new(),
            determinate_total,
            determinate_done: 0,
            linearized_max: 0,
            cursor,
            steps: 0,
            status: Status::Running,
        }
    }

    /// Where the search stands after the last [`Search::run`].
    pub fn status(&self) -> Status {
        self.status
    }

    /// Bytes held (an estimate, for the memory bound).
    pub fn bytes(&self) -> usize {
        self.entries.len() * ENTRY_CHUNK * std::mem::size_of::<Entry>()
            + self.arena_words * 4
            + self.heads.iter().map(|h| h.capacity()).sum::<usize>() * 16
            + self.calls.capacity() * 8
            + (self.next.len() + self.prev.len() + self.entry_op.len()) * 4
            + self.ops.len() * (std::mem::size_of::<SearchOp>() + 12)
    }

    fn contains(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        assert!(!self.contains(i), "operation {i} linearized twice");
        self.bits[i / 64] |= 1 << (i % 64);
        if self.len == 0 || i > self.hi {
            self.hi = i;
        }
        self.len += 1;
        self.set_hash ^= self.zobrist[i];
        // At most `ops.len()` rounds.
        while self.prefix < self.ops.len() && self.contains(self.prefix) {
            self.prefix += 1;
        }
    }

    fn remove(&mut self, i: usize) {
        assert!(self.contains(i), "operation {i} undone but not linearized");
        self.bits[i / 64] &= !(1 << (i % 64));
        self.len -= 1;
        if i == self.hi && self.len > 0 {
            // No member is above `i`: the new highest is the top bit of the first
            // non-zero word at or below it.
            let mut w = i / 64;
            // The set is not empty and holds nothing above `i`: at most i / 64 rounds.
            while self.bits[w] == 0 {
                w -= 1;
            }
            self.hi = w * 64 + 63 - self.bits[w].leading_zeros() as usize;
        }
        self.set_hash ^= self.zobrist[i];
        self.prefix = self.prefix.min(i);
    }

    /// Fills `scratch` with the set's words from the one holding the dense prefix's
    /// end to the one holding its highest member (empty if nothing is past the
    /// prefix): with `prefix`, this is the whole set. Indeterminate operations that
    /// are never linearized leave holes, so the span is stored as words, not as a
    /// list of members.
    fn fill_extra(&mut self) {
        self.scratch.clear();
        if self.len > self.prefix {
            let words = &self.bits[self.prefix / 64..=self.hi / 64];
            self.scratch
                .extend(words.iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]));
        }
    }

    /// Records (set, state) in the memo; false if it was already there.
    fn remember(&mut self, state: ValueId) -> bool {
        let h = self.set_hash ^ mix(u64::from(state));
        self.fill_extra();
        let prefix = self.prefix as u32;
        let extra_len = self.scratch.len() as u32;
        // Middle bits: the table uses the low ones for buckets, the top ones for tags.
        let shard = (h >> 32) as usize % SHARDS;
        let first = self.heads[shard].get(&h).copied().unwrap_or(NONE);
        let mut e = first;
        // A chain links each entry to an older one: at most the memo's entries.
        while e != NONE {
            let ent = &self.entries[e as usize / ENTRY_CHUNK][e as usize % ENTRY_CHUNK];
            if ent.state == state && ent.prefix == prefix && ent.extra_len == extra_len {
                let chunk = &self.arena[ent.extra_chunk as usize];
                let off = ent.extra_off as usize;
                if chunk[off..off + extra_len as usize] == self.scratch[..] {
                    return false;
                }
            }
            e = ent.next;
        }
        let need = self.scratch.len();
        let fits = self
            .arena
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need);
        if !fits {
            self.arena.push(Vec::with_capacity(ARENA_CHUNK.max(need)));
            self.arena_words += ARENA_CHUNK.max(need);
        }
        let chunk_id = u32::try_from(self.arena.len() - 1).expect("arena under 2^32 chunks");
        let chunk = self.arena.last_mut().expect("a chunk");
        let off = u32::try_from(chunk.len()).expect("chunk under 2^32 words");
        chunk.extend_from_slice(&self.scratch);
        let id = u32::try_from(self.entry_count).expect("memo under 2^32 entries");
        if self.entry_count.is_multiple_of(ENTRY_CHUNK) {
            self.entries.push(Vec::with_capacity(ENTRY_CHUNK));
        }
        self.entries.last_mut().expect("a chunk").push(Entry {
            state,
            prefix,
            extra_len,
            extra_chunk: chunk_id,
            extra_off: off,
            next: first,
        });
        self.entry_count += 1;
        self.heads[shard].insert(h, id);
        true
    }

    fn lift(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NONE {
            self.prev[n as usize] = p;
        }
    }

    fn unlift(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NONE {
            self.prev[n as usize] = e;
        }
    }

    /// Runs at most `steps` more steps. `abort` is polled every few thousand steps.
    pub fn run(&mut self, machine: &mut Machine<'_>, steps: u64, abort: &AtomicBool) -> Status {
        if self.status != Status::Running {
            return self.status;
        }
        let stop_at = self.steps.saturating_add(steps);
        // One step per round: at most `steps` rounds.
        loop {
            if self.steps >= stop_at {
                return Status::Running;
            }
            self.steps += 1;
            if self.steps.is_multiple_of(4096) && abort.load(Ordering::Relaxed) {
                self.status = Status::Aborted;
                return self.status;
            }
            if self.determinate_done == self.determinate_total || self.cursor == NONE {
                // Every operation that must have happened is placed; the
                // indeterminate ones left may simply not have happened.
                self.status = Status::Linearizable;
                return self.status;
            }
            let entry = self.cursor;
            let tagged = self.entry_op[entry as usize];
            if tagged & RETURN == 0 {
                let op_id = tagged as usize;
                let o = self.ops[op_id];
                let determinate = o.ret.is_some();
                if let Some(new_state) = machine.step(self.state, &o.op, determinate) {
                    self.insert(op_id);
                    if self.remember(new_state) {
                        self.calls.push((entry, self.state));
                        self.state = new_state;
                        if determinate {
                            self.determinate_done += 1;
                        }
                        self.linearized_max = self.linearized_max.max(self.calls.len());
                        self.lift(entry);
                        let r = self.return_entry[op_id];
                        if r != NONE {
                            self.lift(r);
                        }
                        self.cursor = self.next[self.head as usize];
                        continue;
                    }
                    self.remove(op_id);
                }
                self.cursor = self.next[entry as usize];
            } else {
                // A return whose operation is not linearized yet: everything before
                // it has been tried, so undo the last choice.
                let Some((call, old_state)) = self.calls.pop() else {
                    self.status = Status::NotLinearizable(self.linearized_max);
                    return self.status;
                };
                let op_id = self.entry_op[call as usize] as usize;
                self.state = old_state;
                self.remove(op_id);
                if self.ops[op_id].ret.is_some() {
                    self.determinate_done -= 1;
                }
                let r = self.return_entry[op_id];
                if r != NONE {
                    self.unlift(r);
                }
                self.unlift(call);
                self.cursor = self.next[call as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::{ModelKind, Values, NIL};

    fn run(ops: Vec<SearchOp>, vals: &Values) -> Status {
        let mut m = Machine::new(ModelKind::CasRegister, vals, NIL);
        let mut s = Search::new(ops, NIL);
        s.run(&mut m, u64::MAX, &AtomicBool::new(false))
    }

    fn op(call: u64, ret: Option<u64>, op: Op) -> SearchOp {
        SearchOp { call, ret, op }
    }

    #[test]
    fn stale_read_fails_and_concurrent_read_passes() {
        let mut vals = Values::new(false);
        let one = vals.intern("1");
        let stale = vec![
            op(0, Some(1), Op::Write(one)),
            op(2, Some(3), Op::Read(NIL)),
        ];
        assert_eq!(run(stale, &vals), Status::NotLinearizable(1));
        let overlapping = vec![
            op(0, Some(2), Op::Write(one)),
            op(1, Some(3), Op::Read(NIL)),
        ];
        assert_eq!(run(overlapping, &vals), Status::Linearizable);
        // Closed intervals: a read invoked at the write's completion may precede it.
        let touching = vec![
            op(0, Some(2), Op::Write(one)),
            op(2, Some(3), Op::Read(NIL)),
        ];
        assert_eq!(run(touching, &vals), Status::Linearizable);
    }

    #[test]
    fn resumes_where_it_stopped() {
        let mut vals = Values::new(false);
        let ops: Vec<SearchOp> = (0..200)
            .map(|i| {
                let v = vals.intern(&i.to_string());
                op(2 * i, Some(2 * i + 1), Op::Write(v))
            })
            .collect();
        let mut m = Machine::new(ModelKind::CasRegister, &vals, NIL);
        let mut s = Search::new(ops, NIL);
        let abort = AtomicBool::new(false);
        assert_eq!(s.run(&mut m, 10, &abort), Status::Running);
        assert_eq!(s.steps, 10);
        assert_eq!(s.run(&mut m, u64::MAX, &abort), Status::Linearizable);
    }

    #[test]
    fn memo_tells_sets_apart() {
        let mut s = Search::new(
            (0..130)
                .map(|i| op(i, Some(i + 1), Op::Write(NIL)))
                .collect(),
            NIL,
        );
        s.insert(0);
        s.insert(70);
        assert!(s.remember(NIL));
        assert!(!s.remember(NIL));
        assert!(s.remember(5));
        s.remove(70);
        s.insert(71);
        assert!(s.remember(NIL));
        assert_eq!(s.prefix, 1);
    }
}
