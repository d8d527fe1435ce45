//! The MVCC store itself: see the [module docs](super).

use std::collections::BTreeMap;

use crate::raft::StateMachine;

/// A lease id, chosen by the client that grants it (etcd lets clients pick one).
pub type LeaseId = u64;

/// A key as a read returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The revision of the put that created this generation of the key.
    pub create_revision: u64,
    /// The revision of its latest change.
    pub mod_revision: u64,
    /// Puts since its generation began: 1 when created.
    pub version: u64,
    /// The lease it is attached to (0: none).
    pub lease: LeaseId,
}

/// One version of a key: a value, or the tombstone a delete leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Version {
    mod_revision: u64,
    /// `None`: deleted at `mod_revision`.
    kv: Option<KeyValue>,
}

/// What a watch sees: a change at a revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key as written (for a delete: the key, its last value, and the delete's
    /// revision as `mod_revision`).
    pub kv: KeyValue,
}

/// An event's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// Which field of a key a [`Compare`] looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CompareTarget {
    /// The value (an absent key has none, and compares unequal to every value).
    Value(String),
    /// The version (0 for an absent key).
    Version(u64),
    /// The create revision (0 for an absent key).
    CreateRevision(u64),
    /// The mod revision (0 for an absent key).
    ModRevision(u64),
}

/// How a [`Compare`] relates the key's field to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareResult {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// The key's field is greater.
    Greater,
    /// The key's field is less.
    Less,
}

/// A transaction's guard: `key`'s field `result` `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// The relation.
    pub result: CompareResult,
    /// The field and the value it is compared with.
    pub target: CompareTarget,
}

/// One operation of a request or transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Set `key` to `value`, attached to `lease` (0: none).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The lease (0: none); it must exist.
        lease: LeaseId,
    },
    /// Delete `[key, range_end)` (see [`EtcdQuery::Range`] for `range_end`).
    DeleteRange {
        /// The first key.
        key: String,
        /// The end of the range.
        range_end: String,
    },
    /// Read `[key, range_end)` at the transaction's revision.
    Range {
        /// The first key.
        key: String,
        /// The end of the range.
        range_end: String,
    },
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// A put; the key's previous value, if any.
    Put {
        /// The key before the put.
        prev: Option<KeyValue>,
    },
    /// A delete: how many keys it deleted.
    DeleteRange {
        /// Keys deleted.
        deleted: u64,
    },
    /// A read's keys, in key order.
    Range {
        /// The keys.
        kvs: Vec<KeyValue>,
    },
}

/// A state-changing request, applied through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EtcdCommand {
    /// A single put or delete (a range here is answered but changes nothing).
    Op(Op),
    /// `if all compares hold { success } else { failure }`, under one revision.
    Txn {
        /// The guards.
        compare: Vec<Compare>,
        /// Operations if every guard holds.
        success: Vec<Op>,
        /// Operations otherwise.
        failure: Vec<Op>,
    },
    /// Drop the history below `revision`.
    Compact {
        /// The new compaction point.
        revision: u64,
    },
    /// Grant lease `id` with a TTL of `ttl_ms`.
    LeaseGrant {
        /// The lease.
        id: LeaseId,
        /// Its time to live, in milliseconds.
        ttl_ms: u64,
    },
    /// Revoke lease `id`: its keys are deleted, in one revision.
    LeaseRevoke {
        /// The lease.
        id: LeaseId,
    },
    /// Record the remaining TTL (ms) of leases, as the leader's lessor counted them
    /// (etcd's `LeaseCheckpoint`, `--experimental-enable-lease-checkpoint`): a new
    /// leader resumes each countdown from it. A remaining TTL of the full TTL clears
    /// the record; leases that no longer exist are skipped. Changes no revision.
    /// Empty, it changes nothing: the lessor uses one to confirm its leadership.
    LeaseCheckpoint {
        /// (lease, remaining ms) pairs.
        checkpoints: Vec<(LeaseId, u64)>,
    },
}

impl EtcdCommand {
    /// A `put` of `value` at `key`, attached to no lease.
    pub fn put(key: &str, value: &str) -> EtcdCommand {
        EtcdCommand::Op(Op::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        })
    }

    /// A `delete_range` of `[key, range_end)` (an empty `range_end`: `key` alone).
    pub fn delete_range(key: &str, range_end: &str) -> EtcdCommand {
        EtcdCommand::Op(Op::DeleteRange {
            key: key.into(),
            range_end: range_end.into(),
        })
    }
}

/// Why a request failed (etcd's `rpctypes` errors).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EtcdError {
    /// The revision asked for was compacted (`mvcc: required revision has been
    /// compacted`); the compaction point is given.
    Compacted(u64),
    /// The revision asked for is above the current one.
    FutureRevision(u64),
    /// A put or revoke names a lease that does not exist.
    LeaseNotFound(LeaseId),
    /// A grant names a lease that exists.
    LeaseExists(LeaseId),
    /// A compaction at or below the current compaction point, or above the current
    /// revision.
    BadCompaction(u64),
    /// A range end that is not after its key (and not empty or "\0").
    BadRange,
    /// A transaction writes this key twice (etcd: "duplicate key given in txn
    /// request").
    DuplicateKey(String),
}

/// What applying a command answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EtcdOutput {
    /// The store's revision after the command (etcd's response header revision).
    pub revision: u64,
    /// For a transaction: whether the guards held.
    pub succeeded: bool,
    /// Each operation's result, in order; or the error that refused the command
    /// (nothing changed then).
    pub results: Result<Vec<OpResult>, EtcdError>,
}

/// A read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EtcdQuery {
    /// Keys in `[key, range_end)` as of `revision` (0: the current one). `range_end`
    /// empty: `key` alone; `"\0"`: every key from `key` on; otherwise the keys from
    /// `key` up to, not including, `range_end` (a prefix `p` is `[p, p + 1)`).
    Range {
        /// The first key.
        key: String,
        /// The end of the range.
        range_end: String,
        /// The revision to read at (0: current).
        revision: u64,
    },
}

/// A range's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RangeResult {
    /// The store's current revision when it answered.
    pub revision: u64,
    /// The keys, or why there are none.
    pub kvs: Result<Vec<KeyValue>, EtcdError>,
}

/// The etcd store: every key's versions since the compaction point, the events, the
/// leases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EtcdStore {
    /// The current revision: the number of changing requests applied.
    revision: u64,
    /// Revisions below this are compacted.
    compacted: u64,
    /// Per key: its versions in revision order (a tombstone ends a generation).
    keys: BTreeMap<String, Vec<Version>>,
    /// Changes by revision, each revision's events in the order they happened.
    events: BTreeMap<u64, Vec<Event>>,
    /// Leases: TTL in ms, and the keys attached.
    leases: BTreeMap<LeaseId, (u64, Vec<String>)>,
    /// Checkpointed remaining TTLs in ms, of leases that have one below their TTL.
    checkpoints: BTreeMap<LeaseId, u64>,
}

/// Whether `k` lies in `[key, range_end)` (see [`EtcdQuery::Range`]).
fn covers(key: &str, range_end: &str, k: &str) -> bool {
    match range_end {
        "" => k == key,
        "\0" => k >= key,
        end => k >= key && k < end,
    }
}

/// The keys `[key, range_end)` of `map`, in order (see [`EtcdQuery::Range`]).
fn in_range<'a, V>(
    map: &'a BTreeMap<String, V>,
    key: &'a str,
    range_end: &'a str,
) -> Result<Box<dyn Iterator<Item = (&'a String, &'a V)> + 'a>, EtcdError> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    check_range(key, range_end)?;
    let key = key.to_string();
    Ok(match range_end {
        "" => Box::new(map.range(key.clone()..=key)),
        "\0" => Box::new(map.range((Included(key), Unbounded))),
        end => Box::new(map.range((Included(key), Excluded(end.to_string())))),
    })
}

/// `BadRange` unless `range_end` is empty, `"\0"`, or after `key`.
fn check_range(key: &str, range_end: &str) -> Result<(), EtcdError> {
    match range_end {
        "" | "\0" => Ok(()),
        end if end > key => Ok(()),
        _ => Err(EtcdError::BadRange),
    }
}

impl EtcdStore {
    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The compaction point: revisions below it are gone.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The events at revisions `from..`, in order (what a watch from `from` replays);
    /// `Compacted` if some of them are gone.
    pub fn events_from(&self, from: u64) -> Result<Vec<(u64, &Event)>, EtcdError> {
        if from < self.compacted {
            return Err(EtcdError::Compacted(self.compacted));
        }
        Ok(self
            .events
            .range(from..)
            .flat_map(|(&rev, evs)| evs.iter().map(move |e| (rev, e)))
            .collect())
    }

    /// The TTL (ms) of lease `id`, if granted.
    pub fn lease_ttl_ms(&self, id: LeaseId) -> Option<u64> {
        self.leases.get(&id).map(|(ttl, _)| *ttl)
    }

    /// The leases in id order: (id, TTL in ms, checkpointed remaining TTL in ms if
    /// below the TTL).
    pub fn leases(&self) -> impl Iterator<Item = (LeaseId, u64, Option<u64>)> + '_ {
        self.leases
            .iter()
            .map(|(&id, (ttl, _))| (id, *ttl, self.checkpoints.get(&id).copied()))
    }

    /// The keys attached to lease `id` (empty if there is no such lease).
    pub fn lease_keys(&self, id: LeaseId) -> &[String] {
        self.leases
            .get(&id)
            .map_or(&[], |(_, keys)| keys.as_slice())
    }

    /// `key` as of `revision`.
    fn get_at(&self, key: &str, revision: u64) -> Option<&KeyValue> {
        let versions = self.keys.get(key)?;
        let at = versions.partition_point(|v| v.mod_revision <= revision);
        versions[..at].last()?.kv.as_ref()
    }

    /// Keys in range as of `revision`.
    fn range_at(
        &self,
        key: &str,
        range_end: &str,
        revision: u64,
    ) -> Result<Vec<KeyValue>, EtcdError> {
        if revision > self.revision {
            return Err(EtcdError::FutureRevision(revision));
        }
        if revision < self.compacted {
            return Err(EtcdError::Compacted(self.compacted));
        }
        let keys = in_range(&self.keys, key, range_end)?;
        Ok(keys
            .filter_map(|(k, _)| self.get_at(k, revision).cloned())
            .collect())
    }

    fn compare(&self, c: &Compare) -> bool {
        use std::cmp::Ordering;
        let kv = self.get_at(&c.key, self.revision);
        let ordering = match &c.target {
            CompareTarget::Value(v) => match kv {
                // An absent key's value compares unequal (and neither less nor greater).
                None => return c.result == CompareResult::NotEqual,
                Some(kv) => kv.value.as_str().cmp(v.as_str()),
            },
            CompareTarget::Version(n) => kv.map_or(0, |kv| kv.version).cmp(n),
            CompareTarget::CreateRevision(n) => kv.map_or(0, |kv| kv.create_revision).cmp(n),
            CompareTarget::ModRevision(n) => kv.map_or(0, |kv| kv.mod_revision).cmp(n),
        };
        match c.result {
            CompareResult::Equal => ordering == Ordering::Equal,
            CompareResult::NotEqual => ordering != Ordering::Equal,
            CompareResult::Greater => ordering == Ordering::Greater,
            CompareResult::Less => ordering == Ordering::Less,
        }
    }

    /// Checks `ops` against the current state before anything changes: a command
    /// either applies whole or not at all.
    fn validate(&self, ops: &[Op]) -> Result<(), EtcdError> {
        let mut puts = std::collections::BTreeSet::new();
        for op in ops {
            if let Op::Put { key, .. } = op {
                if !puts.insert(key.as_str()) {
                    return Err(EtcdError::DuplicateKey(key.clone()));
                }
            }
        }
        for op in ops {
            if let Op::DeleteRange { key, range_end } = op {
                if let Some(k) = puts.iter().find(|k| covers(key, range_end, k)) {
                    return Err(EtcdError::DuplicateKey(k.to_string()));
                }
            }
        }
        for op in ops {
            match op {
                Op::Put { lease, .. } if *lease != 0 && !self.leases.contains_key(lease) => {
                    return Err(EtcdError::LeaseNotFound(*lease));
                }
                Op::DeleteRange { key, range_end } | Op::Range { key, range_end } => {
                    check_range(key, range_end)?;
                }
                Op::Put { .. } => {}
            }
        }
        Ok(())
    }

    /// Runs `ops` in order at revision `rev` (writes land at `rev`; reads see the
    /// writes before them).
    fn run(&mut self, ops: &[Op], rev: u64) -> Vec<OpResult> {
        ops.iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    let prev = self.get_at(key, rev).cloned();
                    self.put(key, value, *lease, rev, prev.as_ref());
                    OpResult::Put { prev }
                }
                Op::DeleteRange { key, range_end } => {
                    let live: Vec<String> = in_range(&self.keys, key, range_end)
                        .expect("validated")
                        .filter(|(k, _)| self.get_at(k, rev).is_some())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in &live {
                        self.delete(k, rev);
                    }
                    OpResult::DeleteRange {
                        deleted: live.len() as u64,
                    }
                }
                Op::Range { key, range_end } => {
                    let keys = in_range(&self.keys, key, range_end).expect("validated");
                    let kvs = keys
                        .filter_map(|(k, _)| self.get_at(k, rev).cloned())
                        .collect();
                    OpResult::Range { kvs }
                }
            })
            .collect()
    }

    fn put(&mut self, key: &str, value: &str, lease: LeaseId, rev: u64, prev: Option<&KeyValue>) {
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            create_revision: prev.map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.map_or(1, |p| p.version + 1),
            lease,
        };
        if let Some(p) = prev.filter(|p| p.lease != 0 && p.lease != lease) {
            self.detach(p.lease, key);
        }
        if lease != 0 {
            let attached = &mut self.leases.get_mut(&lease).expect("validated").1;
            if !attached.iter().any(|k| k == key) {
                attached.push(key.to_string());
            }
        }
        self.record(key, rev, Some(kv.clone()));
        self.events.entry(rev).or_default().push(Event {
            kind: EventKind::Put,
            kv,
        });
    }

    fn delete(&mut self, key: &str, rev: u64) {
        let prev = self.get_at(key, rev).cloned().expect("a live key");
        if prev.lease != 0 {
            self.detach(prev.lease, key);
        }
        self.record(key, rev, None);
        self.events.entry(rev).or_default().push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                mod_revision: rev,
                ..prev
            },
        });
    }

    fn detach(&mut self, lease: LeaseId, key: &str) {
        if let Some((_, keys)) = self.leases.get_mut(&lease) {
            keys.retain(|k| k != key);
        }
    }

    /// A key's new version at `rev`; a second write of a key in one revision (a
    /// transaction) replaces the first.
    fn record(&mut self, key: &str, rev: u64, kv: Option<KeyValue>) {
        let versions = self.keys.entry(key.to_string()).or_default();
        if versions.last().is_some_and(|v| v.mod_revision == rev) {
            versions.pop();
        }
        versions.push(Version {
            mod_revision: rev,
            kv,
        });
    }

    fn compact(&mut self, revision: u64) {
        self.compacted = revision;
        for versions in self.keys.values_mut() {
            // Keep the latest version at or below the compaction point (it is what a
            // read at that revision sees), unless it is a tombstone.
            let at = versions.partition_point(|v| v.mod_revision <= revision);
            let keep_from = match versions[..at].last() {
                Some(v) if v.kv.is_some() => at - 1,
                _ => at,
            };
            versions.drain(..keep_from);
        }
        self.keys.retain(|_, versions| !versions.is_empty());
        self.events = self.events.split_off(&revision);
    }

    /// The outcome of a refused command: nothing changed.
    fn refused(&self, error: EtcdError) -> EtcdOutput {
        EtcdOutput {
            revision: self.revision,
            succeeded: false,
            results: Err(error),
        }
    }

    fn changes(ops: &[Op]) -> bool {
        ops.iter().any(|op| !matches!(op, Op::Range { .. }))
    }
}

impl StateMachine for EtcdStore {
    type Command = EtcdCommand;
    type Output = EtcdOutput;
    type Query = EtcdQuery;
    type Answer = RangeResult;
    /// The store is cloned whole.
    type Snapshot = EtcdStore;

    fn apply(&mut self, _index: u64, command: &EtcdCommand) -> EtcdOutput {
        let (ops, succeeded) = match command {
            EtcdCommand::Op(op) => (std::slice::from_ref(op), true),
            EtcdCommand::Txn {
                compare,
                success,
                failure,
            } => match compare.iter().all(|c| self.compare(c)) {
                true => (success.as_slice(), true),
                false => (failure.as_slice(), false),
            },
            EtcdCommand::Compact { revision } => {
                if *revision <= self.compacted || *revision > self.revision {
                    return self.refused(EtcdError::BadCompaction(*revision));
                }
                self.compact(*revision);
                return EtcdOutput {
                    revision: self.revision,
                    succeeded: true,
                    results: Ok(Vec::new()),
                };
            }
            EtcdCommand::LeaseGrant { id, ttl_ms } => {
                if self.leases.contains_key(id) {
                    return self.refused(EtcdError::LeaseExists(*id));
                }
                self.leases.insert(*id, (*ttl_ms, Vec::new()));
                return EtcdOutput {
                    revision: self.revision,
                    succeeded: true,
                    results: Ok(Vec::new()),
                };
            }
            EtcdCommand::LeaseCheckpoint { checkpoints } => {
                for &(id, remaining_ms) in checkpoints {
                    match self.leases.get(&id) {
                        Some(&(ttl_ms, _)) if remaining_ms < ttl_ms => {
                            self.checkpoints.insert(id, remaining_ms);
                        }
                        Some(_) => {
                            self.checkpoints.remove(&id);
                        }
                        None => {}
                    }
                }
                return EtcdOutput {
                    revision: self.revision,
                    succeeded: true,
                    results: Ok(Vec::new()),
                };
            }
            EtcdCommand::LeaseRevoke { id } => {
                let Some((_, keys)) = self.leases.remove(id) else {
                    return self.refused(EtcdError::LeaseNotFound(*id));
                };
                self.checkpoints.remove(id);
                let live: Vec<&String> = keys
                    .iter()
                    .filter(|k| self.get_at(k, self.revision).is_some())
                    .collect();
                if live.is_empty() {
                    return EtcdOutput {
                        revision: self.revision,
                        succeeded: true,
                        results: Ok(Vec::new()),
                    };
                }
                // Every key of the lease goes in one revision.
                self.revision += 1;
                let rev = self.revision;
                let live: Vec<String> = live.into_iter().cloned().collect();
                for key in &live {
                    self.delete(key, rev);
                }
                return EtcdOutput {
                    revision: rev,
                    succeeded: true,
                    results: Ok(vec![OpResult::DeleteRange {
                        deleted: live.len() as u64,
                    }]),
                };
            }
        };
        if let Err(error) = self.validate(ops) {
            return self.refused(error);
        }
        let rev = match Self::changes(ops) {
            true => self.revision + 1,
            false => self.revision,
        };
        let results = self.run(ops, rev);
        // A delete of nothing changes nothing, and takes no revision.
        if self.events.contains_key(&rev) {
            self.revision = rev;
        }
        EtcdOutput {
            revision: self.revision,
            succeeded,
            results: Ok(results),
        }
    }

    fn read(&self, _applied_index: u64, query: &EtcdQuery) -> RangeResult {
        let EtcdQuery::Range {
            key,
            range_end,
            revision,
        } = query;
        let at = if *revision == 0 {
            self.revision
        } else {
            *revision
        };
        RangeResult {
            revision: self.revision,
            kvs: self.range_at(key, range_end, at),
        }
    }

    fn snapshot(&self) -> EtcdStore {
        self.clone()
    }

    fn restore(snapshot: &EtcdStore) -> EtcdStore {
        snapshot.clone()
    }

    fn command_size_bytes(command: &EtcdCommand) -> usize {
        let op = |op: &Op| match op {
            Op::Put { key, value, .. } => 16 + key.len() + value.len(),
            Op::DeleteRange { key, range_end } | Op::Range { key, range_end } => {
                8 + key.len() + range_end.len()
            }
        };
        match command {
            EtcdCommand::Op(o) => op(o),
            EtcdCommand::Txn {
                compare,
                success,
                failure,
            } => {
                let guards: usize = compare.iter().map(|c| 24 + c.key.len()).sum();
                guards + success.iter().chain(failure).map(op).sum::<usize>()
            }
            _ => 16,
        }
    }

    fn snapshot_size_bytes(snapshot: &EtcdStore) -> usize {
        let versions: usize = snapshot
            .keys
            .iter()
            .map(|(k, vs)| k.len() + vs.len() * 32)
            .sum();
        versions + snapshot.leases.len() * 16
    }
}

crate::impl_fingerprint!(struct KeyValue { key, value, create_revision, mod_revision, version, lease });
crate::impl_fingerprint!(struct Event { kind, kv });
crate::impl_fingerprint!(enum EventKind { 0 => Put, 1 => Delete });
crate::impl_fingerprint!(enum CompareTarget {
    0 => Value(v),
    1 => Version(n),
    2 => CreateRevision(n),
    3 => ModRevision(n),
});
crate::impl_fingerprint!(enum CompareResult {
    0 => Equal,
    1 => NotEqual,
    2 => Greater,
    3 => Less,
});
crate::impl_fingerprint!(struct Compare { key, result, target });
crate::impl_fingerprint!(enum Op {
    0 => Put { key, value, lease },
    1 => DeleteRange { key, range_end },
    2 => Range { key, range_end },
});
crate::impl_fingerprint!(enum OpResult {
    0 => Put { prev },
    1 => DeleteRange { deleted },
    2 => Range { kvs },
});
crate::impl_fingerprint!(enum EtcdCommand {
    0 => Op(op),
    1 => Txn { compare, success, failure },
    2 => Compact { revision },
    3 => LeaseGrant { id, ttl_ms },
    4 => LeaseRevoke { id },
    5 => LeaseCheckpoint { checkpoints },
});
crate::impl_fingerprint!(enum EtcdError {
    0 => Compacted(revision),
    1 => FutureRevision(revision),
    2 => LeaseNotFound(id),
    3 => LeaseExists(id),
    4 => BadCompaction(revision),
    5 => BadRange,
    6 => DuplicateKey(key),
});
crate::impl_fingerprint!(struct EtcdOutput { revision, succeeded, results });
crate::impl_fingerprint!(enum EtcdQuery {
    0 => Range { key, range_end, revision },
});
crate::impl_fingerprint!(struct RangeResult { revision, kvs });

#[cfg(test)]
mod tests;
