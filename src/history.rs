//! Client histories, recorded Jepsen-style: an `invoke` event, then `ok`, `fail`
//! (certainly did not take effect) or `info` (indeterminate) for the same process.

use serde::{Deserialize, Serialize};

use crate::process::ClientId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of `history.jsonl`: `{"index":..,"process":..,"type":"invoke",...op fields...,"time_ns":..}`.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEvent<O> {
    pub index: usize,
    pub process: ClientId,
    #[serde(rename = "type")]
    pub kind: OpType,
    #[serde(flatten)]
    pub op: O,
    pub time_ns: u64,
}

/// A key-value operation as it appears in a history line (Jepsen's `:f`, `:key`,
/// `:value`): `{"f":"get","key":"x","value":"3"}`. On an `invoke` a get's value is
/// `null`; on its `ok` it is what was read (`null`: the key was absent). A cas's value
/// is `[expected, new]`, where an `expected` of `null` means "the key is absent".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase", deny_unknown_fields)]
pub enum KvOp {
    Get {
        key: String,
        value: Option<String>,
    },
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    Append {
        key: String,
        value: String,
    },
    Cas {
        key: String,
        value: (Option<String>, String),
    },
}

impl KvOp {
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
