//! Per-node durable storage with explicit sync.
//!
//! Writes land in an unsynced tail, in order, and are readable at once (a page cache).
//! A sync covers every write issued before it; the simulated disk completes syncs in
//! issue order, some time later, making the writes they cover durable (or, on an fsync
//! error, dropping them). A crash keeps the durable part and loses the tail — or, as a
//! fault, keeps a prefix of it (a torn tail: the disk wrote some of the pending writes,
//! in order, before power went).

#![warn(missing_docs)]

use std::collections::BTreeMap;

/// One node's disk: records of type `R` by string key, durable or in the unsynced
/// tail. A process reads it through [`crate::Context::storage`] and changes it through
/// the context's `write`, `remove` and `sync`.
#[derive(Clone, Debug)]
pub struct Storage<R> {
    durable: BTreeMap<String, R>,
    /// Pending writes in issue order; `None` removes the key. Protocols sync at the end
    /// of a step, so this stays short: reads scan it before the durable map, and writes
    /// and syncs move values instead of copying them.
    unsynced: Vec<(String, Option<R>)>,
    /// How many of the first unsynced writes syncs in flight cover.
    /// Invariant: `syncing <= unsynced.len()`.
    syncing: usize,
}

impl<R> Default for Storage<R> {
    fn default() -> Self {
        Storage {
            durable: BTreeMap::new(),
            unsynced: Vec::new(),
            syncing: 0,
        }
    }
}

impl<R: Clone> Storage<R> {
    /// The value of `key`, unsynced writes included.
    pub fn get(&self, key: &str) -> Option<&R> {
        match self.unsynced.iter().rev().find(|(k, _)| k == key) {
            Some((_, pending)) => pending.as_ref(),
            None => self.durable.get(key),
        }
    }

    /// Entries whose key starts with `prefix`, in key order, unsynced writes included.
    pub fn scan<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a R)> + 'a {
        let from = (
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        );
        let mut view: BTreeMap<&'a str, &'a R> = self
            .durable
            .range::<str, _>(from)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        for (key, pending) in self.unsynced.iter().filter(|(k, _)| k.starts_with(prefix)) {
            match pending {
                Some(v) => view.insert(key, v),
                None => view.remove(key.as_str()),
            };
        }
        view.into_iter()
    }

    /// Number of writes not yet durable (whether or not a sync in flight covers them).
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    /// Number of writes that no sync in flight covers: a new sync is needed for them.
    pub fn writes_not_syncing(&self) -> usize {
        self.unsynced.len() - self.syncing
    }

    pub(crate) fn write(&mut self, key: String, record: Option<R>) {
        self.unsynced.push((key, record));
    }

    /// A sync starts: it covers every write so far. Returns how many writes it adds to
    /// those already covered by syncs in flight.
    pub(crate) fn start_sync(&mut self) -> usize {
        let added = self.unsynced.len() - self.syncing;
        self.syncing = self.unsynced.len();
        added
    }

    /// The oldest sync in flight completed: its `writes` (the oldest unsynced ones)
    /// are durable.
    pub fn complete_sync(&mut self, writes: usize) {
        assert!(
            writes <= self.syncing,
            "a sync completes only what it covered"
        );
        self.syncing -= writes;
        for (key, record) in self.unsynced.drain(..writes) {
            match record {
                Some(r) => self.durable.insert(key, r),
                None => self.durable.remove(&key),
            };
        }
    }

    /// The oldest sync in flight failed: its `writes` are dropped from the page cache
    /// (reads see the durable values again) and never become durable.
    pub fn fail_sync(&mut self, writes: usize) {
        assert!(writes <= self.syncing, "a sync fails only what it covered");
        self.syncing -= writes;
        self.unsynced.drain(..writes);
    }

    /// Every write so far is durable at once (a test harness's disk with no latency).
    pub fn sync_all(&mut self) {
        self.syncing = self.unsynced.len();
        self.complete_sync(self.unsynced.len());
    }

    /// Power loss: the first `kept` unsynced writes reach the disk, the rest are gone,
    /// and so are the syncs in flight. Returns how many writes were lost.
    pub fn crash(&mut self, kept: usize) -> usize {
        let kept = kept.min(self.unsynced.len());
        let lost = self.unsynced.len() - kept;
        self.unsynced.truncate(kept);
        self.sync_all();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_unsynced_writes_and_a_crash_loses_them() {
        let mut s = Storage::default();
        s.write("a".into(), Some(1));
        s.sync_all();
        s.write("b".into(), Some(2));
        s.write("a".into(), None);
        assert_eq!(s.get("b"), Some(&2));
        assert_eq!(s.get("a"), None);
        assert_eq!(s.crash(0), 2);
        assert_eq!(s.get("a"), Some(&1));
        assert_eq!(s.get("b"), None);
    }

    #[test]
    fn a_torn_tail_keeps_a_prefix_in_order() {
        let mut s = Storage::default();
        for i in 0..5 {
            s.write(format!("k{i}"), Some(i));
        }
        assert_eq!(s.crash(2), 3);
        let keys: Vec<_> = s.scan("k").map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["k0", "k1"]);
    }

    #[test]
    fn syncs_complete_in_order_and_a_failed_one_drops_its_writes() {
        let mut s = Storage::default();
        s.write("a".into(), Some(1));
        assert_eq!(s.start_sync(), 1);
        s.write("b".into(), Some(2));
        s.write("c".into(), Some(3));
        assert_eq!(s.writes_not_syncing(), 2);
        assert_eq!(s.start_sync(), 2);
        assert_eq!(s.writes_not_syncing(), 0);
        s.complete_sync(1);
        assert_eq!(s.unsynced_writes(), 2);
        s.fail_sync(2);
        assert_eq!(
            s.get("b"),
            None,
            "a failed sync's writes leave the page cache"
        );
        assert_eq!(s.crash(0), 0);
        assert_eq!(s.get("a"), Some(&1));
    }
}
