//! Sequential specifications for the linearizability checker.
//!
//! The checker splits a history per key (P-compositionality: a history is
//! linearizable if and only if each key's sub-history is), so a model's state is
//! the value of one key only. A model is pure: `step` must not depend on anything but
//! its arguments.

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::KvOp;

/// A sequential specification the checker searches against.
pub trait Model {
    /// One key's state. Cached by value in the search, so keep it small.
    type State: Clone + Eq + Hash + Debug;
    type Op: Clone + Debug;

    fn name(&self) -> &'static str;
    fn init(&self) -> Self::State;

    /// Applies `op` to `state`: `Some(next)` if the op, with the output it reported,
    /// is legal in `state`. `determinate` is false for an indeterminate op (`info`, or
    /// an invoke with no completion): its output is unknown and must not be checked,
    /// only its effect applied.
    fn step(&self, state: &Self::State, op: &Self::Op, determinate: bool) -> Option<Self::State>;

    /// Whether `op` is a pure read: an indeterminate read constrains nothing, so the
    /// checker drops it before searching.
    fn is_read(&self, op: &Self::Op) -> bool;

    /// Whether `write` may have produced (or contributed to) the value that
    /// `observer` saw: a read's result, or the value a cas compared against. Only
    /// witness minimisation and reports use it, to keep the sources of an observed
    /// value next to its observer; over-approximating is harmless.
    fn wrote_value_observed(&self, _write: &Self::Op, _observer: &Self::Op) -> bool {
        false
    }

    /// `get x -> "1"`, as a report shows it.
    fn describe(&self, op: &Self::Op, determinate: bool) -> String;
}

/// Which model a history file is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// get/put/append/delete/cas per key.
    Kv,
    /// read/write/cas on one register (or one per key).
    CasRegister,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Kv => "kv",
            ModelKind::CasRegister => "cas-register",
        }
    }

    /// Parses a CLI `--model` value.
    pub fn parse(s: &str) -> Option<ModelKind> {
        match s {
            "kv" => Some(ModelKind::Kv),
            "cas-register" => Some(ModelKind::CasRegister),
            _ => None,
        }
    }

    /// `Err(reason)` if the model has no such operation.
    pub fn supports(self, op: &KvOp) -> Result<(), String> {
        match (self, op) {
            (ModelKind::CasRegister, KvOp::Append { .. }) => {
                Err("the cas-register model has no append (use --model kv)".to_string())
            }
            (ModelKind::CasRegister, KvOp::Delete { .. }) => {
                Err("the cas-register model has no delete (use --model kv)".to_string())
            }
            _ => Ok(()),
        }
    }
}

/// A key-value store, one key at a time. An absent key reads as nil (`None`), which
/// counts as "" for append; a cas whose expected value is `None` succeeds only if the
/// key is absent. A cas that failed its compare is recorded by clients as `fail` and
/// never reaches the model, so an `ok` cas must have matched.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

/// A compare-and-set register (Knossos' `cas-register`), one per key: read, write,
/// cas. It starts as nil.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegisterModel;

fn step_common(state: &Option<String>, op: &KvOp, determinate: bool) -> Option<Option<String>> {
    match op {
        KvOp::Get { value, .. } => {
            if !determinate || value == state {
                Some(state.clone())
            } else {
                None
            }
        }
        KvOp::Put { value, .. } => Some(Some(value.clone())),
        KvOp::Cas {
            value: (expected, new),
            ..
        } => {
            // An indeterminate cas that did not match is the same as one that never
            // happened, which the search covers by not linearizing it at all.
            if expected == state {
                Some(Some(new.clone()))
            } else {
                None
            }
        }
        KvOp::Delete { .. } => Some(None),
        KvOp::Append { value, .. } => {
            let mut next = state.clone().unwrap_or_default();
            next.push_str(value);
            Some(Some(next))
        }
    }
}

fn wrote_value_observed_common(write: &KvOp, observer: &KvOp) -> bool {
    let seen = match observer {
        KvOp::Get { value, .. } => value,
        KvOp::Cas {
            value: (expected, _),
            ..
        } => expected,
        _ => return false,
    };
    // A nil seen after the key existed came from a delete (or from the start).
    let Some(seen) = seen else {
        return matches!(write, KvOp::Delete { .. });
    };
    // With appends a value is built by a put (or cas) and the appends after it, so a
    // writer contributed if its value starts the one seen, or an append's is in it.
    // This over-approximates, which only keeps an extra op in a witness.
    match write {
        KvOp::Put { value, .. } => seen.starts_with(value.as_str()),
        KvOp::Cas {
            value: (_, new), ..
        } => seen.starts_with(new.as_str()),
        KvOp::Append { value, .. } => seen.contains(value.as_str()),
        KvOp::Get { .. } | KvOp::Delete { .. } => false,
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "nil".to_string(),
    }
}

fn describe_common(op: &KvOp, determinate: bool, read: &str, write: &str) -> String {
    // A keyless history (one register) has the empty key: leave it out.
    let k = |key: &str| {
        if key.is_empty() {
            String::new()
        } else {
            format!(" {key}")
        }
    };
    match op {
        KvOp::Get { key, value } => {
            if determinate {
                format!("{read}{} -> {}", k(key), show(value))
            } else {
                format!("{read}{} -> ?", k(key))
            }
        }
        KvOp::Put { key, value } => format!("{write}{} {value:?}", k(key)),
        KvOp::Delete { key } => format!("delete{}", k(key)),
        KvOp::Append { key, value } => format!("append{} {value:?}", k(key)),
        KvOp::Cas {
            key,
            value: (expected, new),
        } => format!("cas{} {} -> {new:?}", k(key), show(expected)),
    }
}

impl Model for KvModel {
    type State = Option<String>;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "kv"
    }
    fn wrote_value_observed(&self, write: &KvOp, observer: &KvOp) -> bool {
        wrote_value_observed_common(write, observer)
    }
    fn init(&self) -> Option<String> {
        None
    }
    fn step(&self, state: &Option<String>, op: &KvOp, determinate: bool) -> Option<Option<String>> {
        step_common(state, op, determinate)
    }
    fn is_read(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get { .. })
    }
    fn describe(&self, op: &KvOp, determinate: bool) -> String {
        describe_common(op, determinate, "get", "put")
    }
}

impl Model for CasRegisterModel {
    type State = Option<String>;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "cas-register"
    }
    fn wrote_value_observed(&self, write: &KvOp, observer: &KvOp) -> bool {
        wrote_value_observed_common(write, observer)
    }
    fn init(&self) -> Option<String> {
        None
    }
    fn step(&self, state: &Option<String>, op: &KvOp, determinate: bool) -> Option<Option<String>> {
        // The loaders reject these; reaching here means a caller skipped validation.
        assert!(
            ModelKind::CasRegister.supports(op).is_ok(),
            "cas-register model given an unsupported op: {op:?}"
        );
        step_common(state, op, determinate)
    }
    fn is_read(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get { .. })
    }
    fn describe(&self, op: &KvOp, determinate: bool) -> String {
        describe_common(op, determinate, "read", "write")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn kv_append_to_absent_key_starts_from_empty() {
        let op = KvOp::Append {
            key: "x".into(),
            value: "ab".into(),
        };
        assert_eq!(KvModel.step(&None, &op, true), Some(s("ab")));
        assert_eq!(KvModel.step(&s("z"), &op, true), Some(s("zab")));
    }

    #[test]
    fn kv_cas_with_nil_expected_needs_absent_key() {
        let op = KvOp::Cas {
            key: "x".into(),
            value: (None, "1".into()),
        };
        assert_eq!(KvModel.step(&None, &op, true), Some(s("1")));
        assert_eq!(KvModel.step(&s(""), &op, true), None);
        assert_eq!(KvModel.step(&s("1"), &op, true), None);
    }

    #[test]
    fn read_checks_output_only_when_determinate() {
        let op = KvOp::Get {
            key: "x".into(),
            value: s("2"),
        };
        assert_eq!(KvModel.step(&s("1"), &op, true), None);
        assert_eq!(KvModel.step(&s("2"), &op, true), Some(s("2")));
        assert_eq!(KvModel.step(&s("1"), &op, false), Some(s("1")));
        let nil = KvOp::Get {
            key: "x".into(),
            value: None,
        };
        assert_eq!(CasRegisterModel.step(&None, &nil, true), Some(None));
        assert_eq!(CasRegisterModel.step(&s(""), &nil, true), None);
    }

    #[test]
    fn descriptions_name_key_and_values() {
        let cas = KvOp::Cas {
            key: "x".into(),
            value: (None, "1".into()),
        };
        assert_eq!(KvModel.describe(&cas, true), "cas x nil -> \"1\"");
        let read = KvOp::Get {
            key: String::new(),
            value: s("3"),
        };
        assert_eq!(CasRegisterModel.describe(&read, true), "read -> \"3\"");
        assert_eq!(CasRegisterModel.describe(&read, false), "read -> ?");
    }

    #[test]
    fn observed_values_name_their_writers() {
        let append = KvOp::Append {
            key: "x".into(),
            value: "b".into(),
        };
        let read = KvOp::Get {
            key: "x".into(),
            value: s("ab"),
        };
        let cas = KvOp::Cas {
            key: "x".into(),
            value: (s("ab"), "c".into()),
        };
        assert!(KvModel.wrote_value_observed(&append, &read));
        assert!(KvModel.wrote_value_observed(&append, &cas));
        assert!(!KvModel.wrote_value_observed(&cas, &read));
        let put = KvOp::Put {
            key: "x".into(),
            value: "a".into(),
        };
        assert!(KvModel.wrote_value_observed(&put, &read));
        let delete = KvOp::Delete { key: "x".into() };
        let read_nil = KvOp::Get {
            key: "x".into(),
            value: None,
        };
        assert!(KvModel.wrote_value_observed(&delete, &read_nil));
        assert!(!KvModel.wrote_value_observed(&delete, &read));
        assert!(!KvModel.wrote_value_observed(&read, &read));
    }

    #[test]
    fn delete_makes_key_absent() {
        let op = KvOp::Delete { key: "x".into() };
        assert_eq!(KvModel.step(&s("1"), &op, true), Some(None));
    }

    #[test]
    fn cas_register_rejects_append_at_validation() {
        let op = KvOp::Append {
            key: "x".into(),
            value: "1".into(),
        };
        assert!(ModelKind::CasRegister.supports(&op).is_err());
        assert!(ModelKind::Kv.supports(&op).is_ok());
    }
}
