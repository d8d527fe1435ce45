//! The key-value state machine replicated by Raft.
//!
//! Commands (put, delete, append, cas) reach it only through the committed log, in log
//! order. Reads (get) are answered from it by the read path the cluster is configured
//! with. Client sessions make a retried command apply at most once: each command carries
//! its client's id and a per-client sequence number, and the store remembers the last
//! sequence number applied per client with its result. The session table is part of the
//! state, so it travels in snapshots.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use crate::history::KvOp;
use crate::process::ClientId;

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

/// What [`KvStore::apply`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// First application of this (client, seq): `result` is what it did.
    Fresh(KvResult),
    /// The same (client, seq) was applied before: nothing changed; this is its result.
    Duplicate(KvResult),
    /// An older seq than the client's last applied one: the client has moved on (it
    /// reported this command as indeterminate), so it is skipped, never applied late.
    Stale,
}

/// The replicated state: data plus the session table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    /// Per client: the last applied sequence number and its result. One entry per
    /// client, so the table is bounded by the number of clients.
    sessions: BTreeMap<ClientId, (u64, KvResult)>,
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

    /// The last (seq, result) applied for `client`.
    pub fn session(&self, client: ClientId) -> Option<(u64, KvResult)> {
        self.sessions.get(&client).copied()
    }

    /// Applies `cmd` for `client`'s session `seq`, at most once per (client, seq).
    pub fn apply(&mut self, client: ClientId, seq: u64, cmd: &KvCommand) -> Applied {
        assert!(seq > 0, "session sequence numbers start at 1");
        if let Some(&(last_seq, result)) = self.sessions.get(&client) {
            if seq == last_seq {
                return Applied::Duplicate(result);
            }
            if seq < last_seq {
                return Applied::Stale;
            }
        }
        let result = match cmd {
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
        };
        self.sessions.insert(client, (seq, result));
        Applied::Fresh(result)
    }

    /// Approximate encoded size, for snapshot message byte estimates.
    pub fn size_bytes(&self) -> usize {
        let data: usize = self.data.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        data + self.sessions.len() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> KvCommand {
        KvCommand::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn commands_change_state_as_documented() {
        let mut kv = KvStore::default();
        assert_eq!(
            kv.apply(0, 1, &put("x", "1")),
            Applied::Fresh(KvResult::Done)
        );
        let app = KvCommand::Append {
            key: "x".into(),
            value: "2".into(),
        };
        kv.apply(0, 2, &app);
        assert_eq!(kv.get("x").map(String::as_str), Some("12"));
        let cas_bad = KvCommand::Cas {
            key: "x".into(),
            expected: Some("1".into()),
            new: "9".into(),
        };
        assert_eq!(
            kv.apply(0, 3, &cas_bad),
            Applied::Fresh(KvResult::CasFailed)
        );
        assert_eq!(kv.get("x").map(String::as_str), Some("12"));
        let cas_absent = KvCommand::Cas {
            key: "y".into(),
            expected: None,
            new: "7".into(),
        };
        assert_eq!(kv.apply(0, 4, &cas_absent), Applied::Fresh(KvResult::Done));
        assert_eq!(kv.get("y").map(String::as_str), Some("7"));
        kv.apply(0, 5, &KvCommand::Delete { key: "x".into() });
        assert_eq!(kv.get("x"), None);
    }

    #[test]
    fn a_retried_command_applies_once_and_returns_the_first_result() {
        let mut kv = KvStore::default();
        let app = KvCommand::Append {
            key: "x".into(),
            value: "a".into(),
        };
        assert_eq!(kv.apply(3, 1, &app), Applied::Fresh(KvResult::Done));
        assert_eq!(kv.apply(3, 1, &app), Applied::Duplicate(KvResult::Done));
        assert_eq!(kv.get("x").map(String::as_str), Some("a"));
        // Another client's seq 1 is a different command.
        assert_eq!(kv.apply(4, 1, &app), Applied::Fresh(KvResult::Done));
        assert_eq!(kv.get("x").map(String::as_str), Some("aa"));
    }

    #[test]
    fn an_older_seq_arriving_late_is_skipped() {
        let mut kv = KvStore::default();
        kv.apply(1, 2, &put("x", "new"));
        assert_eq!(kv.apply(1, 1, &put("x", "old")), Applied::Stale);
        assert_eq!(kv.get("x").map(String::as_str), Some("new"));
    }

    #[test]
    fn the_session_table_travels_with_a_clone() {
        let mut kv = KvStore::default();
        kv.apply(1, 5, &put("x", "1"));
        let mut restored = kv.clone();
        assert_eq!(
            restored.apply(1, 5, &put("x", "2")),
            Applied::Duplicate(KvResult::Done)
        );
        assert_eq!(restored.get("x").map(String::as_str), Some("1"));
    }
}

crate::impl_fingerprint!(enum KvCommand {
    0 => Put { key, value },
    1 => Delete { key },
    2 => Append { key, value },
    3 => Cas { key, expected, new },
});

crate::impl_fingerprint!(enum KvResult {
    0 => Done,
    1 => CasFailed,
});
