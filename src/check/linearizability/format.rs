//! Formatting of results: the verdict line a history's outcome reports, naming each
//! failing key and its witness operations.

use crate::check::model::Machine;
use crate::system::Verdict;

use super::{KeyOutcome, KeyResult, Outcome, Problem};

pub(super) fn verdict_of(out: &Outcome, p: &Problem) -> Verdict {
    let failing: Vec<String> = out
        .failures()
        .map(|(k, f)| {
            let ops: Vec<String> = f
                .witness
                .iter()
                .map(|&i| {
                    let o = p.keys[k.index].1[i];
                    let m = Machine::new(p.model, &p.values, p.initial);
                    format!("[p{} {}]", o.process, m.describe(&o.op, o.ret.is_some()))
                })
                .collect();
            format!(
                "{}: {} operation(s) have no linearization: {}",
                key_label(&k.key),
                f.witness.len(),
                ops.join(" ")
            )
        })
        .collect();
    if !failing.is_empty() {
        return Verdict::Fail(failing.join("; "));
    }
    let unknown: Vec<&KeyOutcome> = out
        .keys
        .iter()
        .filter(|k| matches!(k.result, KeyResult::Unknown(_)))
        .collect();
    if let Some(first) = unknown.first() {
        let KeyResult::Unknown(why) = first.result else {
            unreachable!()
        };
        return Verdict::Unknown(format!(
            "{}; {} of {} key(s) unchecked",
            why.describe(),
            unknown.len(),
            out.keys.len()
        ));
    }
    Verdict::Pass
}

/// `key "x"`, or `the register` for a keyless history.
pub fn key_label(key: &str) -> String {
    if key.is_empty() {
        "the register".to_string()
    } else {
        format!("key {key}")
    }
}
