//! The linearizability checker against known-good and known-bad histories, histories
//! generated from real sequential executions (and mutated ones), its time budget,
//! and history files in both formats.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline::check::history_file::{check_file, load, parse_bytes, HistoryError};
use faultline::check::linearizability::{
    check_kv, generate_linearizable_history, render_report, Failure, GenParams, Outcome, TimeBase,
};
use faultline::check::model::ModelKind;
use faultline::{HistoryEvent, KvOp, OpType, Verdict};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BUDGET: Duration = Duration::from_secs(30);

/// Builds a history from `(process, kind, op, time)` rows.
fn history(rows: &[(usize, OpType, KvOp, u64)]) -> Vec<HistoryEvent<KvOp>> {
    rows.iter()
        .enumerate()
        .map(|(index, (process, kind, op, time_ns))| HistoryEvent {
            index,
            process: *process,
            kind: *kind,
            op: op.clone(),
            time_ns: *time_ns,
        })
        .collect()
}

fn put(k: &str, v: &str) -> KvOp {
    KvOp::Put {
        key: k.into(),
        value: v.into(),
    }
}
fn get(k: &str, v: Option<&str>) -> KvOp {
    KvOp::Get {
        key: k.into(),
        value: v.map(str::to_string),
    }
}
fn append(k: &str, v: &str) -> KvOp {
    KvOp::Append {
        key: k.into(),
        value: v.into(),
    }
}
fn cas(k: &str, old: Option<&str>, new: &str) -> KvOp {
    KvOp::Cas {
        key: k.into(),
        value: (old.map(str::to_string), new.into()),
    }
}

use OpType::{Fail, Info, Invoke, Ok as Done};

fn passes(o: &Outcome) -> bool {
    o.verdict == Verdict::Pass
}
fn failure(o: &Outcome) -> &Failure {
    assert!(matches!(o.verdict, Verdict::Fail(_)), "{:?}", o.verdict);
    o.failure.as_ref().expect("a failure names its witness")
}

#[test]
fn concurrent_ops_can_be_reordered() {
    // The read overlaps the write and sees it; a second read overlapping it sees nil.
    let h = history(&[
        (0, Invoke, put("x", "1"), 0),
        (1, Invoke, get("x", None), 1),
        (2, Invoke, get("x", None), 2),
        (1, Done, get("x", Some("1")), 3),
        (2, Done, get("x", None), 4),
        (0, Done, put("x", "1"), 5),
    ]);
    assert!(passes(&check_kv(&h, BUDGET)));
}

#[test]
fn read_that_sees_old_value_after_newer_read_fails() {
    // Same as above, but the nil read starts after the "1" read returned.
    let h = history(&[
        (0, Invoke, put("x", "1"), 0),
        (1, Invoke, get("x", None), 1),
        (1, Done, get("x", Some("1")), 2),
        (2, Invoke, get("x", None), 3),
        (2, Done, get("x", None), 4),
        (0, Done, put("x", "1"), 5),
    ]);
    let o = check_kv(&h, BUDGET);
    let f = failure(&o);
    assert_eq!(f.key, "x");
    assert!(f.minimal);
    // The put is still pending when the nil read returns, so it is indeterminate
    // there; it stays in the witness as the source of the "1".
    let shown: Vec<(&str, bool)> = f
        .witness
        .iter()
        .map(|w| (w.description.as_str(), w.context))
        .collect();
    assert_eq!(
        shown,
        [
            ("put x \"1\"", false),
            ("get x -> \"1\"", false),
            ("get x -> nil", false)
        ]
    );
}

#[test]
fn stale_read_names_key_and_operations() {
    let h = history(&[
        (0, Invoke, put("y", "a"), 0),
        (0, Done, put("y", "a"), 1),
        (0, Invoke, put("x", "0"), 2),
        (0, Done, put("x", "0"), 3),
        (0, Invoke, put("x", "1"), 4),
        (0, Done, put("x", "1"), 5),
        (1, Invoke, get("x", None), 6),
        (1, Done, get("x", Some("0")), 7),
    ]);
    let o = check_kv(&h, BUDGET);
    let f = failure(&o);
    assert_eq!(f.key, "x");
    let descs: Vec<&str> = f.witness.iter().map(|w| w.description.as_str()).collect();
    assert_eq!(descs, ["put x \"0\"", "put x \"1\"", "get x -> \"0\""]);
    assert_eq!(f.witness[2].process, 1);
    assert_eq!((f.witness[2].call_ns, f.witness[2].return_ns), (6, Some(7)));
    let Verdict::Fail(msg) = &o.verdict else {
        unreachable!()
    };
    assert!(msg.contains("key \"x\""), "{msg}");
}

#[test]
fn lost_write_fails() {
    let h = history(&[
        (0, Invoke, append("k", "a"), 0),
        (0, Done, append("k", "a"), 1),
        (1, Invoke, append("k", "b"), 2),
        (1, Done, append("k", "b"), 3),
        (2, Invoke, get("k", None), 4),
        (2, Done, get("k", Some("b")), 5),
    ]);
    failure(&check_kv(&h, BUDGET));
    // With the first append concurrent with the read, "b" alone is still impossible
    // (appends only grow the value), but "ab" is fine.
    let ok = history(&[
        (0, Invoke, append("k", "a"), 0),
        (0, Done, append("k", "a"), 1),
        (1, Invoke, append("k", "b"), 2),
        (1, Done, append("k", "b"), 3),
        (2, Invoke, get("k", None), 4),
        (2, Done, get("k", Some("ab")), 5),
    ]);
    assert!(passes(&check_kv(&ok, BUDGET)));
}

#[test]
fn cas_anomalies() {
    // Two successful cas from the same expected value, one after the other.
    let double = history(&[
        (0, Invoke, cas("c", None, "a"), 0),
        (0, Done, cas("c", None, "a"), 1),
        (1, Invoke, cas("c", None, "b"), 2),
        (1, Done, cas("c", None, "b"), 3),
    ]);
    failure(&check_kv(&double, BUDGET));
    // A successful cas from a value never held.
    let never = history(&[
        (0, Invoke, put("c", "1"), 0),
        (0, Done, put("c", "1"), 1),
        (1, Invoke, cas("c", Some("7"), "8"), 2),
        (1, Done, cas("c", Some("7"), "8"), 3),
    ]);
    failure(&check_kv(&never, BUDGET));
    // The same cas recorded as `fail` did not happen: fine.
    let failed = history(&[
        (0, Invoke, put("c", "1"), 0),
        (0, Done, put("c", "1"), 1),
        (1, Invoke, cas("c", Some("7"), "8"), 2),
        (1, Fail, cas("c", Some("7"), "8"), 3),
        (1, Invoke, get("c", None), 4),
        (1, Done, get("c", Some("1")), 5),
    ]);
    assert!(passes(&check_kv(&failed, BUDGET)));
    // Concurrent cas chains order themselves: nil->a and a->b overlapping.
    let chain = history(&[
        (1, Invoke, cas("c", Some("a"), "b"), 0),
        (0, Invoke, cas("c", None, "a"), 1),
        (0, Done, cas("c", None, "a"), 2),
        (1, Done, cas("c", Some("a"), "b"), 3),
        (2, Invoke, get("c", None), 4),
        (2, Done, get("c", Some("b")), 5),
    ]);
    assert!(passes(&check_kv(&chain, BUDGET)));
}

#[test]
fn indeterminate_ops_may_happen_later_or_never() {
    // An info put may take effect long after it was invoked...
    let later = history(&[
        (0, Invoke, put("x", "1"), 0),
        (0, Done, put("x", "1"), 1),
        (1, Invoke, put("x", "2"), 2),
        (1, Info, put("x", "2"), 3),
        (2, Invoke, get("x", None), 4),
        (2, Done, get("x", Some("1")), 5),
        (2, Invoke, get("x", None), 6),
        (2, Done, get("x", Some("2")), 7),
    ]);
    assert!(passes(&check_kv(&later, BUDGET)));
    // ...or never; an invoke that never completes is the same.
    let never = history(&[
        (1, Invoke, put("x", "2"), 0),
        (2, Invoke, get("x", None), 4),
        (2, Done, get("x", None), 5),
    ]);
    assert!(passes(&check_kv(&never, BUDGET)));
    let unfinished_seen = history(&[
        (1, Invoke, put("x", "2"), 0),
        (2, Invoke, get("x", None), 4),
        (2, Done, get("x", Some("2")), 5),
    ]);
    assert!(passes(&check_kv(&unfinished_seen, BUDGET)));
}

#[test]
fn indeterminate_ops_cannot_happen_before_invoke_or_twice() {
    // Seen before it was invoked.
    let early = history(&[
        (2, Invoke, get("x", None), 0),
        (2, Done, get("x", Some("2")), 1),
        (1, Invoke, put("x", "2"), 2),
        (1, Info, put("x", "2"), 3),
    ]);
    let o = check_kv(&early, BUDGET);
    // The read alone is the witness: the info put, invoked after it, cannot help.
    assert_eq!(failure(&o).witness.len(), 1);
    let text = render_report(&o, TimeBase::Nanos);
    assert!(text.contains("get x -> \"2\""), "{text}");
    // An indeterminate op in a witness is shown as such.
    let pending = history(&[
        (0, Invoke, put("x", "1"), 0),
        (0, Done, put("x", "1"), 1),
        (1, Invoke, put("x", "2"), 2),
        (1, Info, put("x", "2"), 3),
        (2, Invoke, get("x", None), 4),
        (2, Done, get("x", Some("2")), 5),
        (2, Invoke, get("x", None), 6),
        (2, Done, get("x", Some("1")), 7),
    ]);
    let o = check_kv(&pending, BUDGET);
    assert_eq!(failure(&o).witness.len(), 4, "{:?}", failure(&o).witness);
    let text = render_report(&o, TimeBase::Nanos);
    assert!(text.contains("? (indeterminate)"), "{text}");
    // Taking effect twice: 1, then 2 (the info put), then 1 again, then 2 again.
    let twice = history(&[
        (0, Invoke, put("x", "1"), 0),
        (0, Done, put("x", "1"), 1),
        (1, Invoke, put("x", "2"), 2),
        (1, Info, put("x", "2"), 3),
        (2, Invoke, get("x", None), 4),
        (2, Done, get("x", Some("2")), 5),
        (0, Invoke, put("x", "1"), 6),
        (0, Done, put("x", "1"), 7),
        (2, Invoke, get("x", None), 8),
        (2, Done, get("x", Some("2")), 9),
    ]);
    failure(&check_kv(&twice, BUDGET));
    // A failed put did not happen, so it cannot be read.
    let failed = history(&[
        (1, Invoke, put("x", "2"), 0),
        (1, Fail, put("x", "2"), 1),
        (2, Invoke, get("x", None), 2),
        (2, Done, get("x", Some("2")), 3),
    ]);
    failure(&check_kv(&failed, BUDGET));
}

#[test]
fn equal_timestamps_are_concurrent() {
    // The read is invoked at the instant the write completes: either order is allowed.
    let h = history(&[
        (0, Invoke, put("x", "1"), 0),
        (1, Invoke, get("x", None), 5),
        (0, Done, put("x", "1"), 5),
        (1, Done, get("x", None), 6),
    ]);
    assert!(passes(&check_kv(&h, BUDGET)));
}

/// Brute force: is there an order of all determinate operations and some subset of
/// the indeterminate ones that respects real time and the kv model?
fn linearizable_by_brute_force(h: &[HistoryEvent<KvOp>]) -> bool {
    use faultline::check::linearizability::pair_events;
    use faultline::check::model::{KvModel, Model};
    let ops = pair_events(h).expect("well formed");
    let n = ops.len();
    assert!(n <= 7, "brute force is for tiny histories");
    let info: Vec<usize> = (0..n).filter(|&i| ops[i].return_ns.is_none()).collect();
    for mask in 0u32..(1 << info.len()) {
        let chosen: Vec<usize> = (0..n)
            .filter(|&i| match info.iter().position(|&j| j == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            })
            .collect();
        // Depth-first over orders of `chosen`.
        fn extend(
            ops: &[faultline::check::linearizability::Operation<KvOp>],
            chosen: &[usize],
            used: &mut Vec<bool>,
            state: Option<String>,
            placed: usize,
        ) -> bool {
            if placed == chosen.len() {
                return true;
            }
            for (k, &i) in chosen.iter().enumerate() {
                if used[k] {
                    continue;
                }
                // Every unplaced op that returned before i was invoked must come first.
                let blocked = chosen.iter().enumerate().any(|(k2, &j)| {
                    !used[k2] && j != i && ops[j].return_ns.is_some_and(|r| r < ops[i].call_ns)
                });
                if blocked {
                    continue;
                }
                if let Some(next) = KvModel.step(&state, &ops[i].op, ops[i].return_ns.is_some()) {
                    used[k] = true;
                    if extend(ops, chosen, used, next, placed + 1) {
                        return true;
                    }
                    used[k] = false;
                }
            }
            false
        }
        let mut used = vec![false; chosen.len()];
        if extend(&ops, &chosen, &mut used, None, 0) {
            return true;
        }
    }
    false
}

/// A tiny random history on one key: small value domain, overlapping intervals,
/// some `fail`, `info` and never-completed operations.
fn random_tiny_history(rng: &mut ChaCha8Rng) -> Vec<HistoryEvent<KvOp>> {
    let vals = ["a", "b", "c"];
    let mut rows: Vec<(u64, usize, usize, OpType, KvOp)> = Vec::new();
    let n = rng.gen_range(1..=6);
    for p in 0..n {
        let v = vals[rng.gen_range(0..3)];
        let maybe = |rng: &mut ChaCha8Rng| {
            if rng.gen_bool(0.3) {
                None
            } else {
                Some(vals[rng.gen_range(0..3)])
            }
        };
        let op = match rng.gen_range(0..6) {
            0 | 1 => get("x", maybe(rng)),
            2 => put("x", v),
            3 => append("x", v),
            4 => KvOp::Delete { key: "x".into() },
            _ => cas("x", maybe(rng), v),
        };
        let call = rng.gen_range(0..20u64);
        let ret = call + rng.gen_range(0..10u64);
        let invoke_op = match &op {
            KvOp::Get { .. } => get("x", None),
            o => o.clone(),
        };
        rows.push((call, 0, p, Invoke, invoke_op));
        match rng.gen_range(0..10) {
            0 => rows.push((ret, 1, p, Info, op)),
            1 => rows.push((ret, 1, p, Fail, op)),
            2 => {} // never completed
            _ => rows.push((ret, 1, p, Done, op)),
        }
    }
    rows.sort_by_key(|r| (r.0, r.1, r.2));
    rows.into_iter()
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

#[test]
fn agrees_with_brute_force_on_tiny_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (mut good, mut bad) = (0, 0);
    for case in 0..4000 {
        let h = random_tiny_history(&mut rng);
        let expected = linearizable_by_brute_force(&h);
        let o = check_kv(&h, BUDGET);
        assert_eq!(
            passes(&o),
            expected,
            "case {case}: checker says {:?}, brute force {expected}: {h:#?}",
            o.verdict
        );
        if expected {
            good += 1;
        } else {
            bad += 1;
            // The witness has no linearization on its own, by brute force too.
            let f = failure(&o);
            assert!(
                !linearizable_by_brute_force(&witness_history(&h, f)),
                "case {case}"
            );
        }
    }
    // Both answers must be well represented for the comparison to mean anything.
    assert!(good > 800 && bad > 800, "good {good}, bad {bad}");
}

fn params(ops: usize) -> GenParams {
    GenParams {
        ops,
        keys: 4,
        clients: 6,
        info_percent: 3,
    }
}

/// The sub-history of the witness's operations: each invoke with its completion.
fn witness_history(h: &[HistoryEvent<KvOp>], f: &Failure) -> Vec<HistoryEvent<KvOp>> {
    let mut out = Vec::new();
    for w in f.witness.iter().filter(|w| !w.context) {
        let inv = h.iter().position(|e| e.index == w.index).expect("invoke");
        out.push(h[inv].clone());
        // An indeterminate witness op may never have completed.
        if let Some(done) = h[inv + 1..].iter().find(|e| e.process == w.process) {
            out.push(done.clone());
        }
    }
    out.sort_by_key(|e| (e.time_ns, e.index));
    out
}

#[test]
fn generated_histories_pass_and_mutated_ones_fail() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for seed in 0..40 {
        let h = generate_linearizable_history(seed, params(300));
        let o = check_kv(&h, BUDGET);
        assert!(passes(&o), "seed {seed}: {:?}", o.verdict);
        assert_eq!(o.keys_checked, o.keys);

        // Change one successful read to a value never written.
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| h[i].kind == Done && matches!(h[i].op, KvOp::Get { .. }))
            .collect();
        let mut bad = h.clone();
        let i = reads[rng.gen_range(0..reads.len())];
        let key = bad[i].op.key().to_string();
        bad[i].op = get(&key, Some("never-written"));
        let o = check_kv(&bad, BUDGET);
        let f = failure(&o);
        assert_eq!(f.key, key, "seed {seed}");
        // Nothing wrote that value, so the read alone is the whole story.
        assert!(f.minimal, "seed {seed}");
        assert_eq!(f.witness.len(), 1, "seed {seed}: {:?}", f.witness);
        assert_eq!(f.witness[0].process, bad[i].process, "seed {seed}");
        assert!(
            f.witness[0].description.contains("never-written"),
            "seed {seed}: {:?}",
            f.witness
        );
        // The witness has no linearization on its own.
        let sub = witness_history(&bad, f);
        failure(&check_kv(&sub, BUDGET));
    }
}

#[test]
fn witness_of_a_swapped_read_is_small_and_self_contained() {
    // Swap two reads' values on one key: a subtler anomaly than a never-written value.
    let mut found = 0;
    for seed in 0..60u64 {
        let h = generate_linearizable_history(seed, params(200));
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| {
                h[i].kind == Done
                    && h[i].op.key() == "k0"
                    && matches!(h[i].op, KvOp::Get { value: Some(_), .. })
            })
            .collect();
        let (Some(&a), Some(&b)) = (reads.first(), reads.last()) else {
            continue;
        };
        if h[a].op == h[b].op {
            continue;
        }
        let mut bad = h.clone();
        let (oa, ob) = (bad[a].op.clone(), bad[b].op.clone());
        bad[a].op = ob;
        bad[b].op = oa;
        let o = check_kv(&bad, BUDGET);
        if let Some(f) = &o.failure {
            found += 1;
            assert!(f.witness.len() < f.key_ops, "seed {seed}");
            failure(&check_kv(&witness_history(&bad, f), BUDGET));
        }
    }
    assert!(found >= 10, "only {found} swaps were anomalies");
}

#[test]
fn long_single_key_history_passes() {
    let h = generate_linearizable_history(
        3,
        GenParams {
            ops: 20_000,
            keys: 1,
            clients: 10,
            info_percent: 0,
        },
    );
    let o = check_kv(&h, Duration::from_secs(60));
    assert!(passes(&o), "{:?}", o.verdict);
}

#[test]
fn budget_exhaustion_is_unknown() {
    // 24 concurrent indeterminate appends and a read no order of them produces:
    // refuting it means trying every subset and order, far past the budget.
    let mut rows = Vec::new();
    for p in 0..24 {
        rows.push((p, Invoke, append("k", &format!("{p:02}")), p as u64));
    }
    rows.push((99, Invoke, get("k", None), 100));
    rows.push((99, Done, get("k", Some("impossible")), 101));
    let h = history(&rows);
    let start = Instant::now();
    let o = check_kv(&h, Duration::from_millis(100));
    assert!(matches!(o.verdict, Verdict::Unknown(_)), "{:?}", o.verdict);
    assert_eq!(o.unknown_keys, ["k"]);
    assert!(start.elapsed() < Duration::from_secs(5));
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/histories")
        .join(name)
}

#[test]
fn shipped_history_files() {
    let cases = [
        ("kv-good.jsonl", ModelKind::Kv, 0, "linearizable"),
        ("kv-stale-read.jsonl", ModelKind::Kv, 1, "not linearizable"),
        ("kv-lost-append.edn", ModelKind::Kv, 1, "not linearizable"),
        (
            "cas-register-good.edn",
            ModelKind::CasRegister,
            0,
            "linearizable",
        ),
        (
            "cas-register-bad.edn",
            ModelKind::CasRegister,
            1,
            "not linearizable",
        ),
        // A cas-register history is also a kv history.
        ("cas-register-good.edn", ModelKind::Kv, 0, "linearizable"),
    ];
    for (name, model, code, last) in cases {
        let r = check_file(&data(name), model, BUDGET).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.exit_code(), code, "{name}:\n{}", r.text);
        assert_eq!(r.text.lines().last(), Some(last), "{name}");
    }
    let r = check_file(&data("kv-stale-read.jsonl"), ModelKind::Kv, BUDGET).unwrap();
    assert!(r.text.contains("key \"x\""), "{}", r.text);
    assert!(r.text.contains("get x -> \"0\""), "{}", r.text);
    assert!(r.text.contains("0.005000ms"), "{}", r.text);
    assert!(
        !r.text.contains("\"y\""),
        "the good key is not blamed:\n{}",
        r.text
    );
    let r = check_file(
        &data("cas-register-bad.edn"),
        ModelKind::CasRegister,
        BUDGET,
    )
    .unwrap();
    assert!(
        r.text.contains("the register is not linearizable"),
        "{}",
        r.text
    );
    // The write of the value both cas compared against is part of the story.
    assert!(r.text.contains("write \"0\""), "{}", r.text);
    assert!(r.text.contains("cas \"0\" -> \"1\""), "{}", r.text);
    assert!(r.text.contains("cas \"0\" -> \"2\""), "{}", r.text);
}

#[test]
fn recorded_json_lines_load_back_and_check_the_same() {
    // What the simulator writes (HistoryEvent's Serialize) is what the loader reads.
    for seed in 0..5 {
        let h = generate_linearizable_history(seed, params(200));
        let text: String = h
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let loaded = parse_bytes(text.as_bytes(), Path::new("h.jsonl"), ModelKind::Kv).unwrap();
        assert_eq!(loaded.events.len(), h.len());
        for (a, b) in loaded.events.iter().zip(&h) {
            assert_eq!(
                (a.index, a.process, a.kind, &a.op, a.time_ns),
                (b.index, b.process, b.kind, &b.op, b.time_ns)
            );
        }
        let r =
            faultline::check::history_file::check_loaded(&loaded, Path::new("h"), BUDGET).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.text);
    }
}

#[test]
fn malformed_files_name_file_and_line() {
    let e = load(&data("malformed.edn"), ModelKind::CasRegister).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("malformed.edn:2:"), "{s}");
    assert!(s.contains("expected `}`"), "{s}");
    // The kv-only append under cas-register.
    let e = load(&data("kv-lost-append.edn"), ModelKind::CasRegister).unwrap_err();
    assert!(e.to_string().contains("kv-lost-append.edn:2:"), "{e}");
    // A completion without its invoke is found when pairing, still by line.
    let text =
        "{:process 0, :type :invoke, :f :read}\n{:process 1, :type :ok, :f :read, :value 1}\n";
    let loaded = parse_bytes(text.as_bytes(), Path::new("p.edn"), ModelKind::CasRegister).unwrap();
    let e = faultline::check::history_file::check_loaded(&loaded, Path::new("p.edn"), BUDGET)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("p.edn:2: process 1 completed"),
        "{e}"
    );
    let missing = load(&data("no-such-file.edn"), ModelKind::Kv).unwrap_err();
    assert!(matches!(missing, HistoryError::Io { .. }));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_bytes(&bytes, Path::new("r"), ModelKind::Kv);
    }

    #[test]
    fn garbage_lines_never_panic(
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    Just("{"), Just("}"), Just("["), Just("]"), Just(":process"), Just(" 0"),
                    Just(":type"), Just(":ok"), Just(":invoke"), Just(":info"), Just(":fail"),
                    Just(":f"), Just(":read"), Just(":cas"), Just(":write"), Just(":append"),
                    Just(":value"), Just(" nil"), Just(" \"s\\u00e9"), Just("\""), Just("-"),
                    Just("99999999999999999999"), Just(","), Just(";"), Just(":key"),
                    Just(":time"), Just("\\"), Just("é"), Just("{\"index\":"), Just("\"f\":\"get\""),
                    Just(" 1"), Just(":delete"), Just("true"), Just("nil"),
                ],
                0..14,
            ),
            1..12,
        ),
        model in prop_oneof![Just(ModelKind::Kv), Just(ModelKind::CasRegister)],
    ) {
        let text: String = lines.iter().map(|l| l.concat() + "\n").collect();
        if let Ok(h) = parse_bytes(text.as_bytes(), Path::new("g"), model) {
            // Whatever parses must also check without panicking.
            let _ = faultline::check::history_file::check_loaded(&h, Path::new("g"), Duration::from_millis(50));
        }
    }
}
