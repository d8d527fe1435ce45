//! A node's simulated disk: the queue of syncs in flight and the faults on it.
//!
//! Syncs complete in issue order (one fsync covers every write before it, so a later
//! one cannot finish first). A sync's completion time is its start plus a latency drawn
//! from the scenario's `disk.sync_latency` (times the slow-down of any `disk-slow`
//! fault active when it started), and never before the sync ahead of it. While a
//! `disk-stall` is active nothing completes; at the heal, what fell due completes at
//! once. An `fsync-error` fails the next sync to complete. The page cache itself (the
//! unsynced tail) lives in [`crate::storage::Storage`]; this is only its timing.

use std::collections::VecDeque;

use crate::process::SyncId;

/// Most syncs in flight at one node: a process that starts more is not waiting for
/// any of them, which no protocol should do.
pub const SYNCS_IN_FLIGHT_MAX: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
pub struct PendingSync {
    pub id: SyncId,
    /// Writes it covers beyond the syncs ahead of it.
    pub writes: usize,
    /// True time at which it completes, stalls aside.
    pub due_ns: u64,
}

#[derive(Debug, Default)]
pub struct Disk {
    /// Syncs in flight, in issue order; at most [`SYNCS_IN_FLIGHT_MAX`].
    pending: VecDeque<PendingSync>,
    /// Active `disk-stall` faults (they may overlap).
    stalls: u32,
    /// Active `disk-slow` faults by index: the largest factor applies. At most one
    /// entry per fault of the schedule (a fault's start replaces its entry).
    slow: Vec<(usize, f64)>,
    /// Syncs still to fail: the `fsync-error` faults not yet consumed, by index. At
    /// most one entry per `fsync-error` fault of the schedule (each starts once).
    errors_due: VecDeque<usize>,
}

/// What the head of the queue does now.
pub enum Completion {
    Synced(PendingSync),
    /// Failed by the `fsync-error` fault of that index.
    Failed(PendingSync, usize),
}

impl Disk {
    /// Starts a sync at `now_ns` whose idle latency is `latency_ns`; returns when it
    /// is due (stalls aside).
    pub fn start(&mut self, id: SyncId, writes: usize, now_ns: u64, latency_ns: u64) -> u64 {
        assert!(
            self.pending.len() < SYNCS_IN_FLIGHT_MAX,
            "more than {SYNCS_IN_FLIGHT_MAX} syncs in flight"
        );
        let factor = self.slow.iter().map(|&(_, f)| f).fold(1.0, f64::max);
        let own_ns = now_ns + (latency_ns as f64 * factor) as u64;
        let due_ns = self.pending.back().map_or(own_ns, |p| p.due_ns.max(own_ns));
        if let Some(last) = self.pending.back() {
            assert!(last.id < id, "sync ids increase");
        }
        self.pending.push_back(PendingSync { id, writes, due_ns });
        due_ns
    }

    /// Completes the head of the queue if it is due at `now_ns` and the disk is not
    /// stalled.
    pub fn complete(&mut self, now_ns: u64) -> Option<Completion> {
        if self.stalls > 0 || self.pending.front()?.due_ns > now_ns {
            return None;
        }
        let head = self.pending.pop_front().expect("checked above");
        if let Some(fault) = self.errors_due.pop_front() {
            return Some(Completion::Failed(head, fault));
        }
        Some(Completion::Synced(head))
    }

    /// When the head of the queue can next complete, if it can at all.
    pub fn next_due_ns(&self) -> Option<u64> {
        match self.stalls {
            0 => self.pending.front().map(|p| p.due_ns),
            _ => None,
        }
    }

    /// A crash: syncs in flight are gone with the process that waited for them.
    pub fn crash(&mut self) {
        self.pending.clear();
    }

    pub fn set_stalled(&mut self, on: bool) {
        match on {
            true => self.stalls += 1,
            false => {
                assert!(self.stalls > 0, "a stall ends only once");
                self.stalls -= 1;
            }
        }
    }

    pub fn set_slow(&mut self, fault: usize, factor: f64, on: bool) {
        self.slow.retain(|&(f, _)| f != fault);
        if on {
            self.slow.push((fault, factor));
        }
    }

    pub fn fail_next(&mut self, fault: usize) {
        self.errors_due.push_back(fault);
    }

    /// The `disk-slow` fault whose factor a sync started now gets (the largest; the
    /// lowest index among equals), if any.
    pub fn slowed_by(&self) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        // One entry per active `disk-slow` fault.
        for &(index, factor) in &self.slow {
            if factor > 1.0 && best.is_none_or(|(i, f)| factor > f || (factor == f && index < i)) {
                best = Some((index, factor));
            }
        }
        best.map(|b| b.0)
    }

    /// Syncs in flight that were due by `now_ns` (and are held back by a stall).
    pub fn due_by(&self, now_ns: u64) -> usize {
        self.pending.iter().filter(|p| p.due_ns <= now_ns).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_complete_in_order_and_not_while_stalled() {
        let mut d = Disk::default();
        assert_eq!(d.start(SyncId(1), 2, 0, 5_000), 5_000);
        // A faster sync behind a slow one still waits for it.
        assert_eq!(d.start(SyncId(2), 1, 100, 1_000), 5_000);
        d.set_stalled(true);
        assert!(d.complete(10_000).is_none());
        assert_eq!(d.next_due_ns(), None);
        d.set_stalled(false);
        assert!(matches!(d.complete(10_000), Some(Completion::Synced(p)) if p.id == SyncId(1)));
        d.fail_next(4);
        assert!(matches!(d.complete(10_000), Some(Completion::Failed(p, 4)) if p.id == SyncId(2)));
        assert!(d.complete(10_000).is_none());
    }

    #[test]
    fn a_slow_disk_multiplies_latency_while_the_fault_lasts() {
        let mut d = Disk::default();
        d.set_slow(3, 10.0, true);
        assert_eq!(d.start(SyncId(1), 1, 0, 1_000), 10_000);
        d.set_slow(3, 10.0, false);
        assert_eq!(d.start(SyncId(2), 1, 20_000, 1_000), 21_000);
    }
}
