//! Client histories, recorded Jepsen-style: an `invoke` event, then `ok`, `fail`
//! (certainly did not take effect) or `info` (indeterminate) for the same process.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::process::ClientId;

/// A history event's `type`, as Jepsen names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation began.
    Invoke,
    /// It took effect, once, between its invoke and this event.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may have taken effect, any time after its invoke, or never.
    Info,
}

/// One line of `history.jsonl`: `{"index":..,"process":..,"type":"invoke",...op fields...,"time_ns":..}`.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEvent<O> {
    /// The event's position in the history, from 0.
    pub index: usize,
    /// The client that recorded it.
    pub process: ClientId,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation, its fields flattened into the line.
    #[serde(flatten)]
    pub op: O,
    /// Simulated time since the run began, in nanoseconds (the true clock).
    pub time_ns: u64,
}

/// A key-value operation as it appears in a history line (Jepsen's `:f`, `:key`,
/// `:value`): `{"f":"get","key":"x","value":"3"}`. On an `invoke` a get's value is
/// `null`; on its `ok` it is what was read (`null`: the key was absent). A cas's value
/// is `[expected, new]`, where an `expected` of `null` means "the key is absent".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase", deny_unknown_fields)]
pub enum KvOp {
    /// Read a key.
    Get {
        /// The key.
        key: String,
        /// What was read (`None`: absent, or not known yet on an invoke).
        value: Option<String>,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Append to a key's value (an absent key reads as empty).
    Append {
        /// The key.
        key: String,
        /// What is appended.
        value: String,
    },
    /// Compare-and-set: set the key to the new value if it holds the expected one.
    Cas {
        /// The key.
        key: String,
        /// `(expected, new)`; an expected `None` means absent.
        value: (Option<String>, String),
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key, .. }
            | KvOp::Put { key, .. }
            | KvOp::Delete { key }
            | KvOp::Append { key, .. }
            | KvOp::Cas { key, .. } => key,
        }
    }
}

crate::impl_fingerprint!(enum OpType {
    0 => Invoke,
    1 => Ok,
    2 => Fail,
    3 => Info,
});

crate::impl_fingerprint!(enum KvOp {
    0 => Get { key, value },
    1 => Put { key, value },
    2 => Delete { key },
    3 => Append { key, value },
    4 => Cas { key, value },
});
