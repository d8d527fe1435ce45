//! A checker of etcd key-value histories, written from etcd's documented guarantees
//! (<https://etcd.io/docs/v3.5/learning/api_guarantees/>, and the data model of
//! <https://etcd.io/docs/v3.5/learning/data_model/>), independent of the store: it
//! sees only what clients asked and what the answers said ([`EtcdOp`]).
//!
//! - **Linearizability** (etcd: "strict serializability" of the KV API; a
//!   linearizable range sees every write acknowledged before it). Checked per key by
//!   the project's linearizability checker ([`crate::check::linearizability`]) with
//!   its `kv` model: a put is a write, a delete a delete, a linearizable range a read;
//!   a transaction `if mod_revision(k) == r then put(k, v) else get(k)` is a
//!   compare-and-set from the value the client saw with mod revision `r` (nil for
//!   `r = 0`) when it succeeded, and a read of what its `else` branch read when it did
//!   not. That translation is exact because every write of a run writes a unique
//!   value, so a key holds the value written at revision `r` exactly when its mod
//!   revision is `r`; [`Guarantee::ModRevision`] checks that pairing on every answer.
//!   Serializable ranges may be stale and take no part.
//! - **Revisions** ("the revision is a global logical clock", "revisions are
//!   monotonically increasing"; a read's header revision is the store's revision it
//!   answered from), over the `ok` operations:
//!   - [`Guarantee::UniqueRevision`]: every acknowledged write that changed the store
//!     (a put, a delete that removed a key, a transaction whose compare held) has a
//!     revision of its own;
//!   - [`Guarantee::WriteOrder`]: a write that started after another operation was
//!     acknowledged has a greater revision;
//!   - [`Guarantee::ReadRevision`]: an operation (a linearizable range, a failed
//!     compare, a delete of nothing) that started after another was acknowledged
//!     answers at a revision at least that one's;
//!   - [`Guarantee::ModRevision`]: a value read carries the mod revision of the write
//!     that wrote it, at most the answer's header revision.
//! - **Transactions** are atomic ("all of the operations in the transaction are
//!   executed at the same revision"): [`Guarantee::TxnAtomic`], a transaction whose
//!   compare `mod_revision(k) == r` failed read `k` in its `else` branch at a mod
//!   revision other than `r`.

use std::collections::BTreeMap;
use std::fmt;

use super::client::EtcdOp;
use crate::history::{HistoryEvent, KvOp, OpType};
use crate::system::Verdict;

/// The guarantee a [`Violation`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guarantee {
    /// Two acknowledged writes share a revision.
    UniqueRevision,
    /// A write's revision is not above that of an operation acknowledged before it
    /// started.
    WriteOrder,
    /// A read answered at a revision below that of an operation acknowledged before
    /// it started.
    ReadRevision,
    /// A value read with a mod revision other than its write's, or above the
    /// answer's header revision.
    ModRevision,
    /// A transaction ran its `else` branch though that branch read the key at the
    /// mod revision the compare asked for: compare and branch saw different states.
    TxnAtomic,
    /// The key-value operations have no linearization.
    Linearizable,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::UniqueRevision => "unique-revision",
            Guarantee::WriteOrder => "write-order",
            Guarantee::ReadRevision => "read-revision",
            Guarantee::ModRevision => "mod-revision",
            Guarantee::TxnAtomic => "txn-atomic",
            Guarantee::Linearizable => "linearizable",
        })
    }
}

/// A broken guarantee and the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which guarantee.
    pub guarantee: Guarantee,
    /// What happened, naming the operations by their history index.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.guarantee, self.message)
    }
}

/// One operation: its invoke and its completion, paired by client.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The history index of its invoke.
    pub index: usize,
    /// The client.
    pub process: usize,
    /// When it was invoked, ns.
    pub invoke_ns: u64,
    /// When it completed, ns (`u64::MAX`: never).
    pub complete_ns: u64,
    /// Ok, fail or info (an invoke never completed is info).
    pub kind: OpType,
    /// The operation as completed (as invoked, if it never was).
    pub op: EtcdOp,
}

impl Operation {
    /// Whether it is acknowledged and changed the store (and so took a revision).
    pub fn is_write(&self) -> bool {
        self.kind == OpType::Ok
            && match &self.op {
                EtcdOp::Put { .. } => true,
                EtcdOp::Delete { deleted, .. } => deleted.is_some_and(|d| d > 0),
                EtcdOp::Txn { succeeded, .. } => *succeeded == Some(true),
                EtcdOp::Range { .. } => false,
            }
    }

    /// Whether it is an acknowledged answer the revision order binds: every `ok`
    /// operation but a serializable range, which may be stale.
    fn is_ordered(&self) -> bool {
        self.kind == OpType::Ok
            && self.op.revision().is_some()
            && !matches!(
                self.op,
                EtcdOp::Range {
                    serializable: true,
                    ..
                }
            )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} (client {}, {:?}, {}..{} ns) {:?}",
            self.index, self.process, self.kind, self.invoke_ns, self.complete_ns, self.op
        )
    }
}

/// Pairs each client's invoke with its next completion.
///
/// # Panics
/// If a completion has no invoke: the simulator's histories are well formed.
pub fn operations(history: &[HistoryEvent<EtcdOp>]) -> Vec<Operation> {
    let mut open: BTreeMap<usize, usize> = BTreeMap::new();
    let mut ops: Vec<Operation> = Vec::new();
    for ev in history {
        match ev.kind {
            OpType::Invoke => {
                open.insert(ev.process, ops.len());
                ops.push(Operation {
                    index: ev.index,
                    process: ev.process,
                    invoke_ns: ev.time_ns,
                    complete_ns: u64::MAX,
                    kind: OpType::Info,
                    op: ev.op.clone(),
                });
            }
            kind => {
                let at = open
                    .remove(&ev.process)
                    .unwrap_or_else(|| panic!("event {}: a completion with no invoke", ev.index));
                let o = &mut ops[at];
                o.complete_ns = ev.time_ns;
                o.kind = kind;
                o.op = ev.op.clone();
            }
        }
    }
    ops
}

/// The revision guarantees (see the [module docs](self)), in history order of the
/// later operation; empty if all hold.
pub fn check_revisions(ops: &[Operation]) -> Vec<Violation> {
    let mut out = Vec::new();
    let rev = |o: &Operation| {
        o.op.revision()
            .expect("an ordered operation has a revision")
    };

    // Unique revisions.
    let mut by_revision: BTreeMap<u64, &Operation> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.is_write()) {
        if let Some(first) = by_revision.insert(rev(o), o) {
            out.push(Violation {
                guarantee: Guarantee::UniqueRevision,
                message: format!("writes {first} and {o} both at revision {}", rev(o)),
            });
        }
    }

    // Real-time order: sweep the operations by invoke time, keeping the acknowledged
    // one of highest revision among those completed strictly before.
    let ordered: Vec<&Operation> = ops.iter().filter(|o| o.is_ordered()).collect();
    let mut by_completion = ordered.clone();
    by_completion.sort_by_key(|o| (o.complete_ns, o.index));
    let mut by_invoke = ordered;
    by_invoke.sort_by_key(|o| (o.invoke_ns, o.index));
    let mut done = 0;
    let mut highest: Option<&Operation> = None;
    for o in by_invoke {
        while done < by_completion.len() && by_completion[done].complete_ns < o.invoke_ns {
            let c = by_completion[done];
            if highest.is_none_or(|h| rev(c) > rev(h)) {
                highest = Some(c);
            }
            done += 1;
        }
        let Some(h) = highest else { continue };
        if o.is_write() && rev(o) <= rev(h) {
            out.push(Violation {
                guarantee: Guarantee::WriteOrder,
                message: format!(
                    "write {o} at revision {} started after {h} was acknowledged at revision {}",
                    rev(o),
                    rev(h)
                ),
            });
        } else if !o.is_write() && rev(o) < rev(h) {
            out.push(Violation {
                guarantee: Guarantee::ReadRevision,
                message: format!(
                    "{o} answered at revision {} though {h} was acknowledged at revision {} \
                     before it started",
                    rev(o),
                    rev(h)
                ),
            });
        }
    }

    // A value's mod revision is its write's revision. Values are unique per write.
    let mut written_at: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.is_write()) {
        match &o.op {
            EtcdOp::Put { key, value, .. } | EtcdOp::Txn { key, value, .. } => {
                written_at.insert((key, value), rev(o));
            }
            _ => {}
        }
    }
    for o in ops.iter().filter(|o| o.kind == OpType::Ok) {
        if let EtcdOp::Txn {
            expected_mod_revision,
            succeeded: Some(false),
            read_mod_revision: Some(m),
            ..
        } = &o.op
        {
            if m == expected_mod_revision {
                out.push(Violation {
                    guarantee: Guarantee::TxnAtomic,
                    message: format!(
                        "{o}: its compare mod_revision == {m} failed, yet its else branch \
                         read the key at mod revision {m}"
                    ),
                });
            }
        }
    }
    let mut read_at: BTreeMap<(&str, &str), (u64, &Operation)> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.kind == OpType::Ok) {
        let (key, value, m) = match &o.op {
            EtcdOp::Range {
                key,
                value: Some(v),
                mod_revision: Some(m),
                ..
            } => (key, v, *m),
            EtcdOp::Txn {
                key,
                read: Some(v),
                read_mod_revision: Some(m),
                ..
            } => (key, v, *m),
            _ => continue,
        };
        let header = rev(o);
        let bad = |why: String| Violation {
            guarantee: Guarantee::ModRevision,
            message: format!("{o} read {key} = {value:?} at mod revision {m}: {why}"),
        };
        if m == 0 || m > header {
            out.push(bad(format!("not in 1..={header}, the answer's revision")));
        } else if let Some(&w) = written_at.get(&(key.as_str(), value.as_str())) {
            if w != m {
                out.push(bad(format!("its write was acknowledged at revision {w}")));
            }
        } else if let Some(&(r, first)) = read_at.get(&(key.as_str(), value.as_str())) {
            if r != m {
                out.push(bad(format!("{first} read it at mod revision {r}")));
            }
        }
        read_at.entry((key, value)).or_insert((m, o));
    }
    out
}

/// The history as the `kv` model of the linearizability checker reads it (see the
/// [module docs](self)): serializable ranges left out, transactions as
/// compare-and-sets or reads.
pub fn to_kv_history(history: &[HistoryEvent<EtcdOp>]) -> Vec<HistoryEvent<KvOp>> {
    let mut out = Vec::with_capacity(history.len());
    for (pos, ev) in history.iter().enumerate() {
        let op = match &ev.op {
            EtcdOp::Range {
                serializable: true, ..
            } => continue,
            EtcdOp::Range { key, value, .. } => KvOp::Get {
                key: key.clone(),
                value: value.clone(),
            },
            EtcdOp::Put { key, value, .. } => KvOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            EtcdOp::Delete { key, .. } => KvOp::Delete { key: key.clone() },
            EtcdOp::Txn {
                key,
                succeeded: Some(false),
                read,
                ..
            } if ev.kind == OpType::Ok => KvOp::Get {
                key: key.clone(),
                value: read.clone(),
            },
            EtcdOp::Txn {
                key,
                expected_value,
                value,
                ..
            } => KvOp::Cas {
                key: key.clone(),
                value: (expected_value.clone(), value.clone()),
            },
        };
        // The invoke of a transaction that answered "compare failed" must read as
        // the same kind of operation as its completion: a get.
        let op = match (&op, ev.kind) {
            (KvOp::Cas { key, .. }, OpType::Invoke) if txn_failed(&history[pos + 1..], ev) => {
                KvOp::Get {
                    key: key.clone(),
                    value: None,
                }
            }
            _ => op,
        };
        out.push(HistoryEvent {
            index: out.len(),
            process: ev.process,
            kind: ev.kind,
            op,
            time_ns: ev.time_ns,
        });
    }
    out
}

/// Whether the invoke `ev` of a transaction completes `ok` with its compare failed;
/// `after` is the history after it.
fn txn_failed(after: &[HistoryEvent<EtcdOp>], ev: &HistoryEvent<EtcdOp>) -> bool {
    after
        .iter()
        .find(|c| c.process == ev.process)
        .is_some_and(|c| {
            c.kind == OpType::Ok
                && matches!(
                    c.op,
                    EtcdOp::Txn {
                        succeeded: Some(false),
                        ..
                    }
                )
        })
}

/// The linearizability of the key-value operations, by the project's checker
/// (bounded by search steps, so the verdict depends on the history alone).
pub fn check_linearizable(history: &[HistoryEvent<EtcdOp>]) -> Verdict {
    crate::check::linearizability::check_kv(&to_kv_history(history), None).verdict
}

/// Every guarantee: the revision checks, then linearizability. `Fail` names the first
/// few violations.
pub fn check(history: &[HistoryEvent<EtcdOp>]) -> Verdict {
    let violations = check_revisions(&operations(history));
    if !violations.is_empty() {
        let shown: Vec<String> = violations.iter().take(3).map(|v| v.to_string()).collect();
        return Verdict::Fail(format!(
            "{} revision violation(s); {}",
            violations.len(),
            shown.join("; ")
        ));
    }
    match check_linearizable(history) {
        Verdict::Fail(why) => Verdict::Fail(format!("{}: {why}", Guarantee::Linearizable)),
        other => other,
    }
}

#[cfg(test)]
mod tests;
