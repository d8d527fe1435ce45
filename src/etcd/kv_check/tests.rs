//! The etcd history checker on hand-made histories: good ones pass, and each bad one
//! is caught by the guarantee it breaks.

use super::*;

/// A hand-made history: operations as (client, invoke ms, completion ms, type, op).
#[derive(Default)]
struct H {
    ops: Vec<(usize, u64, u64, OpType, EtcdOp)>,
}

impl H {
    fn op(mut self, client: usize, from_ms: u64, to_ms: u64, kind: OpType, op: EtcdOp) -> H {
        self.ops.push((client, from_ms, to_ms, kind, op));
        self
    }

    fn ok(self, client: usize, from_ms: u64, to_ms: u64, op: EtcdOp) -> H {
        self.op(client, from_ms, to_ms, OpType::Ok, op)
    }

    /// The events in time order (an invoke before a completion at the same instant).
    fn history(&self) -> Vec<HistoryEvent<EtcdOp>> {
        let mut evs: Vec<(u64, u8, usize, OpType, EtcdOp)> = Vec::new();
        for (c, from, to, kind, op) in &self.ops {
            evs.push((from * 1_000_000, 0, *c, OpType::Invoke, op.clone()));
            evs.push((to * 1_000_000, 1, *c, *kind, op.clone()));
        }
        evs.sort_by_key(|e| (e.0, e.1, e.2));
        evs.into_iter()
            .enumerate()
            .map(|(index, (time_ns, _, process, kind, op))| HistoryEvent {
                index,
                process,
                kind,
                op,
                time_ns,
            })
            .collect()
    }

    fn revisions(&self) -> Vec<Guarantee> {
        check_revisions(&operations(&self.history()))
            .into_iter()
            .map(|v| v.guarantee)
            .collect()
    }

    fn verdict(&self) -> Verdict {
        check(&self.history())
    }
}

fn put(key: &str, value: &str, rev: u64) -> EtcdOp {
    EtcdOp::Put {
        key: key.into(),
        value: value.into(),
        revision: Some(rev),
    }
}

fn get(key: &str, value: Option<&str>, mod_rev: u64, rev: u64) -> EtcdOp {
    EtcdOp::Range {
        key: key.into(),
        serializable: false,
        value: value.map(Into::into),
        mod_revision: Some(mod_rev),
        revision: Some(rev),
    }
}

fn serializable_get(key: &str, value: Option<&str>, mod_rev: u64, rev: u64) -> EtcdOp {
    match get(key, value, mod_rev, rev) {
        EtcdOp::Range {
            key,
            value,
            mod_revision,
            revision,
            ..
        } => EtcdOp::Range {
            key,
            serializable: true,
            value,
            mod_revision,
            revision,
        },
        _ => unreachable!(),
    }
}

fn del(key: &str, deleted: u64, rev: u64) -> EtcdOp {
    EtcdOp::Delete {
        key: key.into(),
        deleted: Some(deleted),
        revision: Some(rev),
    }
}

/// `if mod_revision(key) == expected.1 then put value`, the compare holding.
fn txn(key: &str, expected: (Option<&str>, u64), value: &str, rev: u64) -> EtcdOp {
    EtcdOp::Txn {
        key: key.into(),
        expected_mod_revision: expected.1,
        expected_value: expected.0.map(Into::into),
        value: value.into(),
        succeeded: Some(true),
        read: None,
        read_mod_revision: None,
        revision: Some(rev),
    }
}

/// The same, the compare failing and the `else` branch reading `read`.
fn txn_failed(
    key: &str,
    expected: (Option<&str>, u64),
    value: &str,
    read: (Option<&str>, u64),
    rev: u64,
) -> EtcdOp {
    EtcdOp::Txn {
        key: key.into(),
        expected_mod_revision: expected.1,
        expected_value: expected.0.map(Into::into),
        value: value.into(),
        succeeded: Some(false),
        read: read.0.map(Into::into),
        read_mod_revision: Some(read.1),
        revision: Some(rev),
    }
}

fn assert_fails_with(h: &H, guarantee: Guarantee) {
    match h.verdict() {
        Verdict::Fail(why) => assert!(why.contains(&guarantee.to_string()), "{why}"),
        other => panic!("expected a {guarantee} failure, got {other:?}"),
    }
}

#[test]
fn a_sequential_history_of_every_operation_passes() {
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(1, 2, 3, get("k", Some("a"), 1, 1))
        .ok(1, 4, 5, txn("k", (Some("a"), 1), "b", 2))
        .ok(
            0,
            6,
            7,
            txn_failed("k", (Some("a"), 1), "c", (Some("b"), 2), 2),
        )
        .ok(0, 8, 9, del("k", 1, 3))
        .ok(1, 10, 11, del("k", 0, 3))
        .ok(1, 12, 13, get("k", None, 0, 3))
        .ok(0, 14, 15, txn("k", (None, 0), "d", 4))
        .op(2, 16, 17, OpType::Info, put("k", "e", 0));
    assert_eq!(h.revisions(), vec![]);
    assert_eq!(h.verdict(), Verdict::Pass);
}

#[test]
fn concurrent_writes_may_take_revisions_in_either_order() {
    // Two overlapping puts: the later-invoked one took the lower revision, and a read
    // after both sees the higher one's value.
    let h = H::default()
        .ok(0, 0, 10, put("k", "a", 2))
        .ok(1, 1, 5, put("k", "b", 1))
        .ok(2, 11, 12, get("k", Some("a"), 2, 2));
    assert_eq!(h.verdict(), Verdict::Pass);
}

#[test]
fn a_read_below_an_acknowledged_write_breaks_read_revision() {
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(0, 2, 3, put("k", "b", 2))
        .ok(1, 4, 5, get("k", Some("a"), 1, 1));
    assert_eq!(h.revisions(), vec![Guarantee::ReadRevision]);
    assert_fails_with(&h, Guarantee::ReadRevision);
}

#[test]
fn two_writes_at_one_revision_break_unique_revision() {
    let h = H::default()
        .ok(0, 0, 5, put("k", "a", 1))
        .ok(1, 1, 6, put("j", "b", 1));
    assert_eq!(h.revisions(), vec![Guarantee::UniqueRevision]);
    assert_fails_with(&h, Guarantee::UniqueRevision);
}

#[test]
fn a_later_write_at_a_lower_revision_breaks_write_order() {
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 2))
        .ok(1, 2, 3, put("j", "b", 1));
    assert_eq!(h.revisions(), vec![Guarantee::WriteOrder]);
    assert_fails_with(&h, Guarantee::WriteOrder);
    // A write after a read must be newer than the revision the read saw.
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(1, 2, 3, get("k", Some("a"), 1, 1))
        .ok(1, 4, 5, put("j", "b", 1));
    assert!(h.revisions().contains(&Guarantee::WriteOrder));
}

#[test]
fn a_value_read_with_another_mod_revision_breaks_mod_revision() {
    // The value's write took revision 1; the read claims 2.
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(0, 2, 3, put("j", "x", 2))
        .ok(1, 4, 5, get("k", Some("a"), 2, 2));
    assert_eq!(h.revisions(), vec![Guarantee::ModRevision]);
    // A mod revision above the answer's own revision.
    let h = H::default().ok(1, 4, 5, get("k", Some("a"), 3, 2));
    assert_eq!(h.revisions(), vec![Guarantee::ModRevision]);
    // Two reads of one value (its write not acknowledged) disagree.
    let h = H::default()
        .op(0, 0, 9, OpType::Info, put("k", "a", 0))
        .ok(1, 1, 2, get("k", Some("a"), 1, 1))
        .ok(1, 3, 4, txn_failed("k", (None, 0), "b", (Some("a"), 2), 2));
    assert_eq!(h.revisions(), vec![Guarantee::ModRevision]);
}

#[test]
fn a_stale_value_at_a_current_revision_is_caught_by_linearizability_alone() {
    // The header revision is current and the mod revision is the old value's: only
    // the value itself is stale.
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(0, 2, 3, put("k", "b", 2))
        .ok(1, 4, 5, get("k", Some("a"), 1, 2));
    assert_eq!(h.revisions(), vec![]);
    assert_fails_with(&h, Guarantee::Linearizable);
}

#[test]
fn a_lost_update_through_two_transactions_is_not_linearizable() {
    // Both clients read a at mod revision 1; both transactions succeed, one after the
    // other: the second compare should have failed.
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(1, 2, 3, get("k", Some("a"), 1, 1))
        .ok(2, 2, 3, get("k", Some("a"), 1, 1))
        .ok(1, 4, 5, txn("k", (Some("a"), 1), "x", 2))
        .ok(2, 6, 7, txn("k", (Some("a"), 1), "y", 3));
    assert_eq!(h.revisions(), vec![]);
    assert_fails_with(&h, Guarantee::Linearizable);
}

#[test]
fn a_failed_compare_reads_the_current_value() {
    // The compare failed, and its else branch read a value whose put failed: no
    // write ever left it there.
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .op(1, 2, 30, OpType::Fail, put("k", "b", 0))
        .ok(2, 40, 41, get("k", Some("a"), 1, 1))
        .ok(
            0,
            50,
            51,
            txn_failed("k", (Some("a"), 1), "c", (Some("b"), 2), 2),
        );
    assert_fails_with(&h, Guarantee::Linearizable);
    // The compare failed though the else branch read the very mod revision it
    // compared: the branch and the compare did not see one state.
    let h = H::default().ok(0, 0, 1, put("k", "a", 1)).ok(
        0,
        2,
        3,
        txn_failed("k", (Some("a"), 1), "c", (Some("a"), 1), 1),
    );
    assert_eq!(h.revisions(), vec![Guarantee::TxnAtomic]);
    assert_fails_with(&h, Guarantee::TxnAtomic);
}

#[test]
fn serializable_reads_may_be_stale_but_not_invented() {
    let h = H::default()
        .ok(0, 0, 1, put("k", "a", 1))
        .ok(0, 2, 3, put("k", "b", 2))
        .ok(1, 4, 5, serializable_get("k", Some("a"), 1, 1));
    assert_eq!(h.verdict(), Verdict::Pass);
    // Stale is allowed; a value with its write's mod revision wrong is not.
    let h = H::default().ok(0, 0, 1, put("k", "a", 1)).ok(
        1,
        4,
        5,
        serializable_get("k", Some("a"), 2, 2),
    );
    assert_fails_with(&h, Guarantee::ModRevision);
}

#[test]
fn indeterminate_and_failed_operations_bind_no_revision() {
    // The info put of "a" may take effect after "c" (its revision unknown); the
    // failed put of "b" never happened.
    let h = H::default()
        .op(0, 0, 1, OpType::Info, put("k", "a", 0))
        .op(1, 0, 1, OpType::Fail, put("k", "b", 0))
        .ok(2, 2, 3, put("k", "c", 1))
        .ok(2, 4, 5, get("k", Some("a"), 2, 2));
    assert_eq!(h.revisions(), vec![]);
    assert_eq!(h.verdict(), Verdict::Pass);
    // Reading the failed put's value is not linearizable.
    let h = H::default().op(1, 0, 1, OpType::Fail, put("k", "b", 0)).ok(
        2,
        4,
        5,
        get("k", Some("b"), 1, 1),
    );
    assert_fails_with(&h, Guarantee::Linearizable);
}
