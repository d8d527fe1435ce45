//! The history as the checker reads it: events, and their pairing into operations
//! per key. Dropping what cannot constrain a linearization (`fail` operations,
//! indeterminate reads) happens here, once, so the search sees only what matters.

use std::collections::BTreeMap;

use crate::check::model::{Op, ValueId};
use crate::history::OpType;

/// One event of a history, as the checker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client process (Jepsen's integer `:process`).
    pub process: u64,
    /// Invoke, ok, fail or info.
    pub kind: OpType,
    /// Nanoseconds, or the event's position when the history has no times.
    pub time: u64,
    /// The operation (on an invoke) or what its completion says.
    pub body: Body,
}

/// What an event says about its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The operation, with its input, on a key (an index into the history's keys).
    Invoke {
        /// The key's index.
        key: usize,
        /// The operation and its input.
        op: Op,
    },
    /// A completion: the key it names, if it names one (it must match the
    /// invoke's), the value an `ok` read returned, and the operation's name (`read`,
    /// `write`, ...; it must match the invoke's).
    Complete {
        /// The key's index, if the completion names one.
        key: Option<usize>,
        /// What an `ok` read returned.
        read: Option<ValueId>,
        /// The operation's name.
        f: &'static str,
    },
}

/// The name of an operation's function, as [`Body::Complete`] gives it.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Read(_) => "read",
        Op::Write(_) => "write",
        Op::Cas(..) => "cas",
        Op::Append(_) => "append",
        Op::Delete => "delete",
    }
}

/// One operation: an invoke paired with its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client process.
    pub process: u64,
    /// Its invoke's time (as [`Event::time`]).
    pub call: u64,
    /// `None`: indeterminate (`info`, or never completed).
    pub ret: Option<u64>,
    /// Input and, for a read, its output.
    pub op: Op,
    /// Positions (in the event list) of its invoke and completion.
    pub invoke: usize,
    /// Position of its completion; `None` if it never completed.
    pub completion: Option<usize>,
}

/// A history that does not pair up: `position` is the offending event's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairError {
    /// Position of the offending event in the event list.
    pub position: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Pairs each invoke with its process's next completion, per key (`keys` keys). `fail`
/// operations and indeterminate reads are dropped. Operations come out in invoke order.
pub fn pair(events: &[Event], keys: usize) -> Result<Vec<Vec<Operation>>, PairError> {
    // process -> (pos, key, slot): one entry per process at most (a second invoke
    // while one is pending is refused below).
    let mut pending: BTreeMap<u64, (usize, usize, usize)> = BTreeMap::new();
    let mut out: Vec<Vec<Option<Operation>>> = vec![Vec::new(); keys];
    for (pos, ev) in events.iter().enumerate() {
        let err = |message: String| PairError {
            position: pos,
            message,
        };
        match &ev.body {
            Body::Invoke { key, op } => {
                if ev.kind != OpType::Invoke {
                    return Err(err("an invoke event must have :type :invoke".to_string()));
                }
                if let Some(&(p, _, _)) = pending.get(&ev.process) {
                    return Err(err(format!(
                        "process {} invoked again while its operation invoked at event {} is pending",
                        ev.process,
                        p + 1
                    )));
                }
                assert!(*key < keys, "event key out of range");
                pending.insert(ev.process, (pos, *key, out[*key].len()));
                out[*key].push(Some(Operation {
                    process: ev.process,
                    call: ev.time,
                    ret: None,
                    op: *op,
                    invoke: pos,
                    completion: None,
                }));
            }
            Body::Complete { key, read, f } => {
                let Some((_, k, slot)) = pending.remove(&ev.process) else {
                    return Err(err(format!(
                        "process {} completed an operation it never invoked",
                        ev.process
                    )));
                };
                let o = out[k][slot].as_mut().expect("a pending slot");
                if *f != op_name(&o.op) {
                    return Err(err(format!(
                        "this :{f} completes process {}'s :{} invoked at event {}",
                        ev.process,
                        op_name(&o.op),
                        o.invoke + 1
                    )));
                }
                if key.is_some_and(|key| key != k) {
                    return Err(err(format!(
                        "this completion names another key than its invoke at event {}",
                        o.invoke + 1
                    )));
                }
                if ev.time < o.call {
                    return Err(err(format!(
                        "completion at time {} precedes its invoke at {}",
                        ev.time, o.call
                    )));
                }
                o.completion = Some(pos);
                match ev.kind {
                    OpType::Fail => out[k][slot] = None,
                    OpType::Info => {}
                    OpType::Ok => {
                        o.ret = Some(ev.time);
                        if let Op::Read(v) = &mut o.op {
                            let Some(r) = read else {
                                return Err(err(
                                    "an ok read must give the value it read (nil if none)"
                                        .to_string(),
                                ));
                            };
                            *v = *r;
                        }
                    }
                    OpType::Invoke => {
                        return Err(err("a completion cannot have :type :invoke".to_string()))
                    }
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|ops| {
            ops.into_iter()
                .flatten()
                .filter(|o| o.ret.is_some() || !o.op.is_read())
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::NIL;

    #[test]
    fn pairing_drops_fail_and_indeterminate_reads() {
        let ev = |process, kind, body| Event {
            process,
            kind,
            time: 0,
            body,
        };
        let inv = |op| Body::Invoke { key: 0, op };
        let done = |f, read| Body::Complete { key: None, read, f };
        let events = vec![
            ev(0, OpType::Invoke, inv(Op::Write(1))),
            ev(0, OpType::Fail, done("write", None)),
            ev(1, OpType::Invoke, inv(Op::Read(NIL))),
            ev(1, OpType::Info, done("read", None)),
            ev(2, OpType::Invoke, inv(Op::Write(2))),
        ];
        let ops = pair(&events, 1).unwrap();
        assert_eq!(ops[0].len(), 1);
        assert_eq!(ops[0][0].op, Op::Write(2));
        assert_eq!(ops[0][0].ret, None);
        let bad = vec![ev(0, OpType::Ok, done("write", None))];
        assert!(pair(&bad, 1).unwrap_err().message.contains("never invoked"));
        let mismatch = vec![
            ev(0, OpType::Invoke, inv(Op::Write(1))),
            ev(0, OpType::Ok, done("cas", None)),
        ];
        assert_eq!(pair(&mismatch, 1).unwrap_err().position, 1);
    }
}
