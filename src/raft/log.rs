//! The in-memory Raft log: a snapshot of a compacted prefix plus the entries after it.

use std::sync::Arc;

use super::messages::{Entry, Snapshot};
use super::state_machine::StateMachine;
use crate::kv::KvStore;

/// A node's log: a snapshot of the compacted prefix, then the entries after it.
#[derive(Clone, Debug)]
pub struct RaftLog<S: StateMachine = KvStore> {
    /// The compacted prefix: entries `..=snapshot.index` are gone from `entries`.
    /// Index 0 / term 0 is the empty snapshot every log starts from.
    snapshot: Arc<Snapshot<S>>,
    /// Entries `snapshot.index + 1 ..`, contiguous: `entries[i].index ==
    /// snapshot.index + 1 + i`, and terms never decrease along the log.
    entries: Vec<Entry<S>>,
}

impl<S: StateMachine> Default for RaftLog<S> {
    fn default() -> Self {
        RaftLog {
            snapshot: Arc::new(Snapshot::initial()),
            entries: Vec::new(),
        }
    }
}

impl<S: StateMachine> RaftLog<S> {
    /// Rebuilds a log from recovered parts; `entries` must follow `snapshot` contiguously
    /// (recovery drops any entry at or below the snapshot index before calling this).
    pub fn from_parts(snapshot: Arc<Snapshot<S>>, entries: Vec<Entry<S>>) -> RaftLog<S> {
        let log = RaftLog { snapshot, entries };
        log.assert_shape();
        log
    }

    fn assert_shape(&self) {
        let mut prev = (self.snapshot.index, self.snapshot.term);
        for e in &self.entries {
            assert_eq!(e.index, prev.0 + 1, "log entries are contiguous");
            assert!(e.term >= prev.1, "terms never decrease along the log");
            prev = (e.index, e.term);
        }
    }

    /// The snapshot of the compacted prefix.
    pub fn snapshot(&self) -> &Arc<Snapshot<S>> {
        &self.snapshot
    }

    /// The last index the snapshot covers (0: nothing compacted).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.index
    }

    /// The first index still held as an entry.
    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    /// The index of the last entry (the snapshot's if there is none after it).
    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// The term of the last entry (the snapshot's if there is none after it).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term at `index`, if known (the snapshot's own index counts; earlier ones don't).
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held (not compacted, not past the end).
    pub fn entry(&self, index: u64) -> Option<&Entry<S>> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.snapshot.index - 1) as usize)
    }

    /// Entries `from..=to`, clipped to what the log holds.
    pub fn slice(&self, from: u64, to: u64) -> &[Entry<S>] {
        let lo = from.max(self.first_index());
        let hi = to.min(self.last_index());
        if lo > hi {
            return &[];
        }
        let base = self.snapshot.index + 1;
        &self.entries[(lo - base) as usize..=(hi - base) as usize]
    }

    /// Every entry after the snapshot, in index order.
    pub fn entries(&self) -> &[Entry<S>] {
        &self.entries
    }

    /// §5.4.1: is a log ending at (last_index, last_term) at least as up to date as ours?
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends `entry` at the end; panics unless its index is `last_index() + 1` and
    /// its term at least `last_term()`.
    pub fn append(&mut self, entry: Entry<S>) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "append at the log's end"
        );
        assert!(entry.term >= self.last_term(), "terms never decrease");
        self.entries.push(entry);
    }

    /// Removes entries `from..`. Callers never truncate committed entries.
    pub fn truncate_from(&mut self, from: u64) {
        assert!(
            from > self.snapshot.index,
            "cannot truncate into the snapshot"
        );
        let keep = (from - self.snapshot.index - 1) as usize;
        self.entries.truncate(keep);
    }

    /// The first index holding `term`, scanning back from `index` (bounded by the log).
    pub fn first_index_of_term(&self, index: u64, term: u64) -> u64 {
        let mut i = index;
        while i > self.first_index() && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index holding `term`, if any (scans back from the end, bounded).
    pub fn last_index_of_term(&self, term: u64) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.term >= term)
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// Replaces the prefix `..=snapshot.index` with `snapshot`, keeping later entries
    /// only if the log agrees with the snapshot at its index (§7).
    pub fn install(&mut self, snapshot: Arc<Snapshot<S>>) {
        let keep_suffix = self.term(snapshot.index) == Some(snapshot.term);
        if keep_suffix && snapshot.index >= self.snapshot.index {
            let drop = (snapshot.index - self.snapshot.index) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot = snapshot;
        self.assert_shape();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::messages::EntryData;

    fn log_of(terms: &[u64]) -> RaftLog {
        let mut log = RaftLog::default();
        for (i, &t) in terms.iter().enumerate() {
            log.append(Entry {
                term: t,
                index: i as u64 + 1,
                data: EntryData::Noop,
            });
        }
        log
    }

    #[test]
    fn terms_and_slices_by_index() {
        let log = log_of(&[1, 1, 2, 3]);
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.term(0), Some(0));
        assert_eq!(log.term(3), Some(2));
        assert_eq!(log.term(5), None);
        assert_eq!(log.slice(2, 10).len(), 3);
        assert_eq!(log.first_index_of_term(2, 1), 1);
        assert_eq!(log.last_index_of_term(1), Some(2));
        assert_eq!(log.last_index_of_term(5), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_of(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(10, 1));
    }

    #[test]
    fn install_keeps_a_matching_suffix_and_drops_a_conflicting_one() {
        let mut log = log_of(&[1, 1, 2, 2]);
        let snap = |index, term| {
            Arc::new(Snapshot {
                index,
                term,
                ..Snapshot::<KvStore>::initial()
            })
        };
        log.install(snap(2, 1));
        assert_eq!((log.first_index(), log.last_index()), (3, 4));
        log.install(snap(3, 5));
        assert_eq!((log.snapshot_index(), log.last_index()), (3, 3));
        assert_eq!(log.term(3), Some(5));
    }
}
