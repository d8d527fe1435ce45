//! The key-value store: the first [`StateMachine`] replicated by Raft.
//!
//! Commands (put, delete, append, cas) reach it only through the committed log, in log
//! order. Reads (get) are answered from it by the read path the cluster is configured
//! with. Raft's client sessions ([`crate::raft::session`]) make a retried command apply
//! at most once.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use crate::history::KvOp;
use crate::raft::StateMachine;

pub mod client;

pub use client::{KvClient, KvWorkload, OpMix};

/// A state-changing command, applied through the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Appends `value` to `key`'s value (an absent key is empty).
    Append {
        /// The key.
        key: String,
        /// What is appended.
        value: String,
    },
    /// Sets `key` to `new` if its current value is `expected` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value it must hold; `None`: it must be absent.
        expected: Option<String>,
        /// Its new value.
        new: String,
    },
}

impl KvCommand {
    /// The command a history operation asks for; `None` for a read.
    pub fn from_op(op: &KvOp) -> Option<KvCommand> {
        match op {
            KvOp::Get { .. } => None,
            KvOp::Put { key, value } => Some(KvCommand::Put {
                key: key.clone(),
                value: value.clone(),
            }),
            KvOp::Delete { key } => Some(KvCommand::Delete { key: key.clone() }),
            KvOp::Append { key, value } => Some(KvCommand::Append {
                key: key.clone(),
                value: value.clone(),
            }),
            KvOp::Cas { key, value } => Some(KvCommand::Cas {
                key: key.clone(),
                expected: value.0.clone(),
                new: value.1.clone(),
            }),
        }
    }

    /// Approximate encoded size, for message byte estimates.
    pub fn size_bytes(&self) -> usize {
        match self {
            KvCommand::Put { key, value } | KvCommand::Append { key, value } => {
                8 + key.len() + value.len()
            }
            KvCommand::Delete { key } => 8 + key.len(),
            KvCommand::Cas { key, expected, new } => {
                8 + key.len() + expected.as_ref().map_or(0, |e| e.len()) + new.len()
            }
        }
    }
}

/// What applying a command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvResult {
    /// The command took effect.
    Done,
    /// A cas whose expected value did not match: nothing changed.
    CasFailed,
}

/// A read: the value of `key`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvQuery {
    /// The key.
    pub key: String,
}

/// The replicated data: every key and its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    data: BTreeMap<String, String>,
}

impl KvStore {
    /// The value of `key`, `None` if absent.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    /// Every key and its value, in key order.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
}

impl StateMachine for KvStore {
    type Command = KvCommand;
    type Output = KvResult;
    type Query = KvQuery;
    /// The value read, `None` if the key is absent.
    type Answer = Option<String>;
    /// The store is small and cloned whole.
    type Snapshot = KvStore;

    fn apply(&mut self, _index: u64, cmd: &KvCommand) -> KvResult {
        match cmd {
            KvCommand::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvResult::Done
            }
            KvCommand::Delete { key } => {
                self.data.remove(key);
                KvResult::Done
            }
            KvCommand::Append { key, value } => {
                self.data.entry(key.clone()).or_default().push_str(value);
                KvResult::Done
            }
            KvCommand::Cas { key, expected, new } => {
                if self.data.get(key) == expected.as_ref() {
                    self.data.insert(key.clone(), new.clone());
                    KvResult::Done
                } else {
                    KvResult::CasFailed
                }
            }
        }
    }

    fn read(&self, _applied_index: u64, query: &KvQuery) -> Option<String> {
        self.data.get(&query.key).cloned()
    }

    fn snapshot(&self) -> KvStore {
        self.clone()
    }

    fn restore(snapshot: &KvStore) -> KvStore {
        snapshot.clone()
    }

    /// Put, delete and append always succeed; a cas depends on the value.
    fn blind_output(cmd: &KvCommand) -> Option<KvResult> {
        match cmd {
            KvCommand::Cas { .. } => None,
            _ => Some(KvResult::Done),
        }
    }

    fn command_size_bytes(cmd: &KvCommand) -> usize {
        cmd.size_bytes()
    }

    fn snapshot_size_bytes(snapshot: &KvStore) -> usize {
        snapshot
            .data
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(kv: &mut KvStore, cmd: KvCommand) -> KvResult {
        kv.apply(0, &cmd)
    }

    #[test]
    fn commands_change_state_as_documented() {
        let mut kv = KvStore::default();
        let put = KvCommand::Put {
            key: "x".into(),
            value: "1".into(),
        };
        assert_eq!(apply(&mut kv, put), KvResult::Done);
        let app = KvCommand::Append {
            key: "x".into(),
            value: "2".into(),
        };
        apply(&mut kv, app);
        assert_eq!(kv.get("x").map(String::as_str), Some("12"));
        let cas_bad = KvCommand::Cas {
            key: "x".into(),
            expected: Some("1".into()),
            new: "9".into(),
        };
        assert_eq!(apply(&mut kv, cas_bad), KvResult::CasFailed);
        assert_eq!(kv.get("x").map(String::as_str), Some("12"));
        let cas_absent = KvCommand::Cas {
            key: "y".into(),
            expected: None,
            new: "7".into(),
        };
        assert_eq!(apply(&mut kv, cas_absent), KvResult::Done);
        assert_eq!(kv.get("y").map(String::as_str), Some("7"));
        apply(&mut kv, KvCommand::Delete { key: "x".into() });
        assert_eq!(kv.get("x"), None);
        let query = KvQuery { key: "y".into() };
        assert_eq!(kv.read(5, &query), Some("7".to_string()));
    }

    #[test]
    fn a_snapshot_restores_an_equal_store() {
        let mut kv = KvStore::default();
        let put = KvCommand::Put {
            key: "x".into(),
            value: "1".into(),
        };
        apply(&mut kv, put);
        let restored = KvStore::restore(&kv.snapshot());
        assert_eq!(restored, kv);
        assert_eq!(KvStore::snapshot_size_bytes(&kv.snapshot()), 8 + 1 + 1);
    }

    #[test]
    fn only_a_cas_has_no_blind_output() {
        let cas = KvCommand::Cas {
            key: "x".into(),
            expected: None,
            new: "1".into(),
        };
        assert_eq!(KvStore::blind_output(&cas), None);
        let del = KvCommand::Delete { key: "x".into() };
        assert_eq!(KvStore::blind_output(&del), Some(KvResult::Done));
    }
}

crate::impl_fingerprint!(enum KvCommand {
    0 => Put { key, value },
    1 => Delete { key },
    2 => Append { key, value },
    3 => Cas { key, expected, new },
});

crate::impl_fingerprint!(struct KvQuery { key });

crate::impl_fingerprint!(enum KvResult {
    0 => Done,
    1 => CasFailed,
});
