//! The store against etcd's documented data model
//! (<https://etcd.io/docs/v3.5/learning/data_model/>, `api.md`).

use super::*;

fn put(key: &str, value: &str) -> EtcdCommand {
    EtcdCommand::put(key, value)
}

fn delete(key: &str, range_end: &str) -> EtcdCommand {
    EtcdCommand::delete_range(key, range_end)
}

fn range(store: &EtcdStore, key: &str, range_end: &str, revision: u64) -> RangeResult {
    let q = EtcdQuery::Range {
        key: key.into(),
        range_end: range_end.into(),
        revision,
    };
    store.read(0, &q)
}

fn get(store: &EtcdStore, key: &str, revision: u64) -> Option<KeyValue> {
    let kvs = range(store, key, "", revision)
        .kvs
        .expect("a readable revision");
    assert!(kvs.len() <= 1);
    kvs.into_iter().next()
}

/// Applies `commands` in order from index 1.
fn store_after(commands: &[EtcdCommand]) -> EtcdStore {
    let mut store = EtcdStore::default();
    for (i, c) in commands.iter().enumerate() {
        store.apply(i as u64 + 1, c);
    }
    store
}

#[test]
fn every_change_takes_one_revision_and_keys_keep_create_mod_and_version() {
    let store = store_after(&[put("a", "1"), put("b", "1"), put("a", "2")]);
    assert_eq!(store.revision(), 3);
    let a = get(&store, "a", 0).expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 3, 2));
    assert_eq!(a.value, "2");
    // Reads at a past revision see the store as it was.
    assert_eq!(get(&store, "a", 2).expect("a at 2").value, "1");
    assert_eq!(get(&store, "b", 1), None);
}

#[test]
fn a_delete_ends_a_generation_and_a_later_put_starts_over() {
    let mut store = store_after(&[put("k", "1"), put("k", "2")]);
    let out = store.apply(3, &delete("k", ""));
    assert_eq!(out.revision, 3);
    assert_eq!(out.results, Ok(vec![OpResult::DeleteRange { deleted: 1 }]));
    assert_eq!(get(&store, "k", 0), None);
    store.apply(4, &put("k", "3"));
    let k = get(&store, "k", 0).expect("k");
    assert_eq!((k.create_revision, k.mod_revision, k.version), (4, 4, 1));
    // Deleting nothing changes nothing and takes no revision.
    let out = store.apply(5, &delete("nothing", ""));
    assert_eq!((out.revision, store.revision()), (4, 4));
}

#[test]
fn ranges_by_prefix_and_from_a_key() {
    let store = store_after(&[put("a", "1"), put("ab", "2"), put("ac", "3"), put("b", "4")]);
    let keys = |r: RangeResult| -> Vec<String> {
        r.kvs.expect("ok").into_iter().map(|kv| kv.key).collect()
    };
    assert_eq!(keys(range(&store, "a", "b", 0)), ["a", "ab", "ac"]);
    assert_eq!(keys(range(&store, "ab", "\0", 0)), ["ab", "ac", "b"]);
    assert_eq!(range(&store, "b", "a", 0).kvs, Err(EtcdError::BadRange));
}

#[test]
fn a_txn_runs_success_or_failure_under_one_revision() {
    let mut store = store_after(&[put("lock", "me")]);
    // The lock recipe: create the key only if it does not exist (create revision 0).
    let acquire = |who: &str| EtcdCommand::Txn {
        compare: vec![Compare {
            key: "lock".into(),
            result: CompareResult::Equal,
            target: CompareTarget::CreateRevision(0),
        }],
        success: vec![Op::Put {
            key: "lock".into(),
            value: who.into(),
            lease: 0,
        }],
        failure: vec![Op::Range {
            key: "lock".into(),
            range_end: String::new(),
        }],
    };
    let out = store.apply(2, &acquire("you"));
    assert!(!out.succeeded);
    assert_eq!(out.revision, 1, "a read-only branch takes no revision");
    let held = match &out.results.as_ref().expect("ok")[..] {
        [OpResult::Range { kvs }] => kvs[0].value.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(held, "me");
    store.apply(3, &delete("lock", ""));
    let out = store.apply(4, &acquire("you"));
    assert!(out.succeeded);
    assert_eq!(get(&store, "lock", 0).expect("held").value, "you");
    // Two writes in one transaction share its revision.
    let both = EtcdCommand::Txn {
        compare: vec![],
        success: vec![
            Op::Put {
                key: "x".into(),
                value: "1".into(),
                lease: 0,
            },
            Op::Put {
                key: "y".into(),
                value: "1".into(),
                lease: 0,
            },
        ],
        failure: vec![],
    };
    let out = store.apply(5, &both);
    assert_eq!(out.revision, 4);
    let revs: Vec<u64> = ["x", "y"]
        .iter()
        .map(|k| get(&store, k, 0).expect("written").mod_revision)
        .collect();
    assert_eq!(revs, [4, 4]);
}

#[test]
fn a_txn_writing_a_key_twice_is_refused_whole() {
    let mut store = EtcdStore::default();
    let twice = EtcdCommand::Txn {
        compare: vec![],
        success: vec![
            Op::Put {
                key: "k".into(),
                value: "1".into(),
                lease: 0,
            },
            Op::DeleteRange {
                key: "a".into(),
                range_end: "z".into(),
            },
        ],
        failure: vec![],
    };
    let out = store.apply(1, &twice);
    assert_eq!(out.results, Err(EtcdError::DuplicateKey("k".into())));
    assert_eq!(store.revision(), 0, "nothing changed");
}

#[test]
fn compares_on_value_version_and_revisions() {
    let store = store_after(&[put("k", "b"), put("k", "b")]);
    let holds = |result, target| {
        store.compare(&Compare {
            key: "k".into(),
            result,
            target,
        })
    };
    assert!(holds(
        CompareResult::Equal,
        CompareTarget::Value("b".into())
    ));
    assert!(holds(
        CompareResult::Greater,
        CompareTarget::Value("a".into())
    ));
    assert!(holds(CompareResult::Equal, CompareTarget::Version(2)));
    assert!(holds(CompareResult::Less, CompareTarget::ModRevision(3)));
    assert!(holds(
        CompareResult::Equal,
        CompareTarget::CreateRevision(1)
    ));
    let absent = Compare {
        key: "none".into(),
        result: CompareResult::Equal,
        target: CompareTarget::Value(String::new()),
    };
    assert!(!store.compare(&absent), "an absent key has no value");
}

#[test]
fn compaction_drops_history_below_it_and_reads_there_fail() {
    let mut store = store_after(&[put("a", "1"), put("a", "2"), put("b", "1"), delete("b", "")]);
    let out = store.apply(5, &EtcdCommand::Compact { revision: 3 });
    assert!(out.succeeded);
    assert_eq!(range(&store, "a", "", 2).kvs, Err(EtcdError::Compacted(3)));
    // At the compaction point the store still reads as it was.
    assert_eq!(get(&store, "a", 3).expect("a").value, "2");
    assert_eq!(get(&store, "b", 3).expect("b").value, "1");
    assert_eq!(
        range(&store, "a", "", 9).kvs,
        Err(EtcdError::FutureRevision(9))
    );
    assert_eq!(store.events_from(2), Err(EtcdError::Compacted(3)));
    let events: Vec<(u64, EventKind)> = store
        .events_from(3)
        .expect("kept")
        .into_iter()
        .map(|(rev, e)| (rev, e.kind))
        .collect();
    assert_eq!(events, [(3, EventKind::Put), (4, EventKind::Delete)]);
    let again = store.apply(6, &EtcdCommand::Compact { revision: 3 });
    assert_eq!(again.results, Err(EtcdError::BadCompaction(3)));
}

#[test]
fn revoking_a_lease_deletes_its_keys_in_one_revision() {
    let mut store = EtcdStore::default();
    store.apply(
        1,
        &EtcdCommand::LeaseGrant {
            id: 7,
            ttl_ms: 5000,
        },
    );
    assert_eq!(store.lease_ttl_ms(7), Some(5000));
    for (i, key) in ["svc/a", "svc/b"].iter().enumerate() {
        let attach = EtcdCommand::Op(Op::Put {
            key: key.to_string(),
            value: "10.0.0.1".into(),
            lease: 7,
        });
        store.apply(i as u64 + 2, &attach);
    }
    store.apply(4, &put("other", "x"));
    let out = store.apply(5, &EtcdCommand::LeaseRevoke { id: 7 });
    assert_eq!(out.revision, 4);
    assert_eq!(out.results, Ok(vec![OpResult::DeleteRange { deleted: 2 }]));
    assert!(range(&store, "svc/", "svc0", 0).kvs.expect("ok").is_empty());
    assert!(get(&store, "other", 0).is_some());
    let deletes: Vec<(u64, String)> = store
        .events_from(4)
        .expect("kept")
        .into_iter()
        .map(|(rev, e)| (rev, e.kv.key.clone()))
        .collect();
    assert_eq!(
        deletes,
        [(4, "svc/a".to_string()), (4, "svc/b".to_string())]
    );
    let unknown = EtcdCommand::Op(Op::Put {
        key: "k".into(),
        value: "v".into(),
        lease: 7,
    });
    let out = store.apply(6, &unknown);
    assert_eq!(out.results, Err(EtcdError::LeaseNotFound(7)));
}

#[test]
fn a_snapshot_restores_an_equal_store() {
    let store = store_after(&[put("a", "1"), delete("a", ""), put("b", "2")]);
    assert_eq!(EtcdStore::restore(&store.snapshot()), store);
}
