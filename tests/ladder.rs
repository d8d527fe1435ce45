//! The consistency ladder on hand-written histories, one that passes and one that
//! fails each rung, and property tests on histories generated from sequential
//! executions.

use faultline::check::ladder::ops::operations;
use faultline::check::ladder::sequential::{search, ScOutcome};
use faultline::check::ladder::session::{self, Input, SessionVerdict};
use faultline::check::ladder::versions::{reads_from, VersionOrder};
use faultline::check::ladder::{check_kv, Ladder, Level, Rung, RungVerdict};
use faultline::check::linearizability::{
    generate_linearizable_history, problem_from_kv, GenParams,
};
use faultline::check::model::{Machine, ModelKind};
use faultline::{HistoryEvent, KvOp, OpType};
use proptest::prelude::*;

/// One operation: client, op (a get carries what it read), invoke and completion
/// times (`None`: never completed), and its completion type.
struct H(Vec<(usize, KvOp, u64, Option<u64>, OpType)>);

fn put(c: usize, k: &str, v: &str, at: u64, done: u64) -> (usize, KvOp, u64, Option<u64>, OpType) {
    let op = KvOp::Put {
        key: k.into(),
        value: v.into(),
    };
    (c, op, at, Some(done), OpType::Ok)
}

fn get(
    c: usize,
    k: &str,
    v: Option<&str>,
    at: u64,
    done: u64,
) -> (usize, KvOp, u64, Option<u64>, OpType) {
    let op = KvOp::Get {
        key: k.into(),
        value: v.map(str::to_string),
    };
    (c, op, at, Some(done), OpType::Ok)
}

impl H {
    /// Events in time order; invokes before completions at equal times.
    fn events(&self) -> Vec<HistoryEvent<KvOp>> {
        let mut evs: Vec<(u64, u8, usize, OpType, KvOp)> = Vec::new();
        for (c, op, at, done, kind) in &self.0 {
            let invoke_op = match op {
                KvOp::Get { key, .. } => KvOp::Get {
                    key: key.clone(),
                    value: None,
                },
                other => other.clone(),
            };
            evs.push((*at, 0, *c, OpType::Invoke, invoke_op));
            if let Some(d) = done {
                evs.push((*d, 1, *c, *kind, op.clone()));
            }
        }
        evs.sort_by_key(|e| (e.0, e.1));
        evs.into_iter()
            .enumerate()
            .map(|(index, (t, _, c, kind, op))| HistoryEvent {
                index,
                process: c,
                kind,
                op,
                time_ns: t,
            })
            .collect()
    }

    fn ladder(&self) -> Ladder {
        check_kv(&self.events())
    }
}

fn broken(l: &Ladder, r: Rung) -> Vec<usize> {
    match l.verdict(r) {
        RungVerdict::Broken(c) => c.ops.clone(),
        other => panic!(
            "{} should be broken, is {other:?}\n{}",
            r.name(),
            l.render_table()
        ),
    }
}

fn holds(l: &Ladder, r: Rung) {
    assert_eq!(
        *l.verdict(r),
        RungVerdict::Holds,
        "{} should hold\n{}",
        r.name(),
        l.render_table()
    );
}

#[test]
fn a_read_after_the_write_is_linearizable() {
    let l = H(vec![
        put(0, "x", "a", 0, 10),
        get(1, "x", Some("a"), 20, 30),
    ])
    .ladder();
    for r in Rung::ALL {
        holds(&l, r);
    }
    assert_eq!(l.level(), Some(Level::Linearizable));
    assert_eq!(l.exit_code(), 0);
}

#[test]
fn a_stale_read_by_another_client_is_sequential_not_linearizable() {
    let l = H(vec![put(0, "x", "a", 0, 10), get(1, "x", None, 20, 30)]).ladder();
    // Events: 0 invoke put, 1 ok put, 2 invoke get, 3 ok get.
    assert_eq!(broken(&l, Rung::Linearizable), vec![0, 2]);
    holds(&l, Rung::Sequential);
    assert_eq!(l.level(), Some(Level::Sequential));
    assert_eq!(l.exit_code(), 1);
}

#[test]
fn a_client_not_seeing_its_own_write_breaks_read_your_writes() {
    let l = H(vec![put(0, "x", "a", 0, 10), get(0, "x", None, 20, 30)]).ladder();
    assert_eq!(broken(&l, Rung::Sequential), vec![0, 2]);
    assert_eq!(broken(&l, Rung::ReadYourWrites), vec![0, 2]);
    holds(&l, Rung::MonotonicReads);
    assert_eq!(l.level(), Some(Level::Weaker));
}

#[test]
fn reading_a_newer_then_an_older_version_breaks_monotonic_reads_only() {
    let l = H(vec![
        put(0, "x", "a", 0, 10),
        put(0, "x", "b", 20, 30),
        get(1, "x", Some("b"), 40, 50),
        get(1, "x", Some("a"), 60, 70),
    ])
    .ladder();
    let ce = broken(&l, Rung::MonotonicReads);
    assert_eq!(ce, vec![0, 2, 4, 6], "both writes and both reads");
    broken(&l, Rung::Sequential);
    holds(&l, Rung::ReadYourWrites);
    holds(&l, Rung::MonotonicWrites);
    holds(&l, Rung::WritesFollowReads);
    // The same reads in the right order hold.
    let ok = H(vec![
        put(0, "x", "a", 0, 10),
        put(0, "x", "b", 20, 30),
        get(1, "x", Some("a"), 40, 50),
        get(1, "x", Some("b"), 60, 70),
    ])
    .ladder();
    holds(&ok, Rung::MonotonicReads);
}

#[test]
fn seeing_a_second_write_without_the_first_breaks_monotonic_writes() {
    let l = H(vec![
        put(0, "x", "1", 0, 10),
        put(0, "y", "2", 20, 30),
        get(1, "y", Some("2"), 40, 50),
        get(1, "x", None, 60, 70),
    ])
    .ladder();
    assert_eq!(broken(&l, Rung::MonotonicWrites), vec![0, 2, 4, 6]);
    holds(&l, Rung::ReadYourWrites);
    holds(&l, Rung::MonotonicReads);
    holds(&l, Rung::WritesFollowReads);
    broken(&l, Rung::Sequential);
    let ok = H(vec![
        put(0, "x", "1", 0, 10),
        put(0, "y", "2", 20, 30),
        get(1, "y", Some("2"), 40, 50),
        get(1, "x", Some("1"), 60, 70),
    ])
    .ladder();
    holds(&ok, Rung::MonotonicWrites);
    assert_eq!(ok.level(), Some(Level::Linearizable));
}

#[test]
fn seeing_a_write_without_what_its_writer_had_read_breaks_writes_follow_reads() {
    let l = H(vec![
        put(0, "x", "1", 0, 10),
        get(1, "x", Some("1"), 20, 30),
        put(1, "y", "2", 40, 50),
        get(2, "y", Some("2"), 60, 70),
        get(2, "x", None, 80, 90),
    ])
    .ladder();
    assert_eq!(broken(&l, Rung::WritesFollowReads), vec![0, 2, 4, 6, 8]);
    holds(&l, Rung::ReadYourWrites);
    holds(&l, Rung::MonotonicReads);
    holds(&l, Rung::MonotonicWrites);
    broken(&l, Rung::Sequential);
}

#[test]
fn sequential_consistency_is_judged_over_the_whole_history_not_per_key() {
    // Store buffering (Dekker): each key alone has an order, the whole has none.
    let l = H(vec![
        put(0, "x", "1", 0, 10),
        put(1, "y", "1", 0, 10),
        get(0, "y", None, 20, 30),
        get(1, "x", None, 20, 30),
    ])
    .ladder();
    assert_eq!(broken(&l, Rung::Sequential).len(), 4);
    for r in &Rung::ALL[2..] {
        holds(&l, *r);
    }
    assert_eq!(l.level(), Some(Level::Session));
}

#[test]
fn an_indeterminate_write_may_or_may_not_have_happened() {
    let info = (
        0,
        KvOp::Put {
            key: "x".into(),
            value: "a".into(),
        },
        0,
        None,
        OpType::Info,
    );
    let seen = H(vec![
        (0, info.1.clone(), 0, None, OpType::Info),
        get(1, "x", Some("a"), 20, 30),
    ])
    .ladder();
    assert_eq!(seen.level(), Some(Level::Linearizable));
    let unseen = H(vec![info, get(1, "x", None, 20, 30)]).ladder();
    assert_eq!(unseen.level(), Some(Level::Linearizable));
    // Seen, then unseen by one client: no order has it both ways.
    let both = H(vec![
        (
            0,
            KvOp::Put {
                key: "x".into(),
                value: "a".into(),
            },
            0,
            None,
            OpType::Info,
        ),
        get(1, "x", Some("a"), 20, 30),
        get(1, "x", None, 40, 50),
    ])
    .ladder();
    broken(&both, Rung::Sequential);
}

#[test]
fn the_sequential_counterexample_is_shrunk_to_the_operations_that_matter() {
    // Noise on other keys and clients around one client that misses its own write.
    let mut ops = vec![];
    for i in 0..6u64 {
        ops.push(put(2, "z", &format!("z{i}"), i * 100, i * 100 + 5));
        ops.push(get(
            3,
            "z",
            Some(&format!("z{i}")),
            i * 100 + 10,
            i * 100 + 20,
        ));
    }
    ops.push(put(0, "x", "a", 700, 710));
    ops.push(get(0, "x", None, 720, 730));
    let l = H(ops).ladder();
    assert_eq!(broken(&l, Rung::Sequential).len(), 2);
}

fn session_input_holds(history: &[HistoryEvent<KvOp>]) {
    let problem = problem_from_kv(ModelKind::Kv, history).unwrap();
    let ops = operations(&problem);
    let machine = Machine::new(problem.model, &problem.values, problem.initial);
    let rf = reads_from(&ops, &machine);
    let keys: Vec<String> = problem.keys.iter().map(|(k, _)| k.clone()).collect();
    let input = Input {
        ops: &ops,
        reads_from: &rf,
        order: &VersionOrder::RealTime,
        keys: &keys,
        steps_max: 1 << 30,
    };
    for (name, check) in [
        (
            "ryw",
            session::read_your_writes as fn(&Input<'_>) -> SessionVerdict,
        ),
        ("mr", session::monotonic_reads),
        ("mw", session::monotonic_writes),
        ("wfr", session::writes_follow_reads),
    ] {
        assert_eq!(check(&input), SessionVerdict::Holds, "{name}");
    }
    let mut m = Machine::new(problem.model, &problem.values, problem.initial);
    let all: Vec<usize> = (0..ops.len()).collect();
    let (outcome, _) = search(&ops, &all, keys.len(), &mut m, 1 << 22);
    assert!(matches!(outcome, ScOutcome::Holds(_)), "{outcome:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A history from a real sequential execution (each operation at one instant in
    /// its interval) is linearizable; so it is sequentially consistent and keeps
    /// every session guarantee, judged on their own against real time.
    #[test]
    fn every_linearizable_history_is_sequential_and_keeps_the_session_guarantees(
        seed in any::<u64>(),
        ops in 5usize..60,
        keys in 1usize..4,
        clients in 1usize..5,
        info_percent in 0u32..20,
    ) {
        let h = generate_linearizable_history(seed, GenParams { ops, keys, clients, info_percent });
        let l = check_kv(&h);
        prop_assert_eq!(l.level(), Some(Level::Linearizable), "{}", l.render_table());
        for r in Rung::ALL {
            prop_assert_eq!(l.verdict(r), &RungVerdict::Holds);
        }
        session_input_holds(&h);
    }

    /// Shifting every operation of one client later in real time (a client whose
    /// clock, or replica, lags) keeps a linearizable history sequentially
    /// consistent: the original order still keeps each client's program order. The
    /// ladder never calls it weaker.
    #[test]
    fn a_client_shifted_in_time_is_at_least_sequential(
        seed in any::<u64>(),
        ops in 5usize..40,
        keys in 1usize..3,
    ) {
        let mut h = generate_linearizable_history(seed, GenParams { ops, keys, clients: 3, info_percent: 0 });
        for e in h.iter_mut().filter(|e| e.process == 0) {
            e.time_ns += 1_000_000;
        }
        h.sort_by_key(|e| (e.time_ns, e.kind != OpType::Invoke));
        for (i, e) in h.iter_mut().enumerate() {
            e.index = i;
        }
        let l = check_kv(&h);
        prop_assert!(l.level() >= Some(Level::Sequential), "{}", l.render_table());
    }
}

// ---- Scenarios: the rung they state, measured. ----

use faultline::check::history_file::{load, Options};
use faultline::check::ladder::{check, Budget};
use faultline::run::RunRequest;
use faultline::scenario::Scenario;

/// Seeds over which a scenario's `[expect] rung` is the weakest level (as
/// results/ladder.md measured it).
const RUNG_SEEDS: std::ops::Range<u64> = 0..20;

#[test]
fn a_rung_that_is_not_one_is_refused_naming_the_field_and_the_rungs() {
    let text = r#"
name = "ok"
description = "d"
duration_ms = 1000
[cluster]
protocol = "raft"
nodes = 3
[expect]
rung = "strict"
"#;
    let e = Scenario::parse("s.toml", text).unwrap_err().to_string();
    assert!(e.contains("expect.rung"), "{e}");
    assert!(
        e.contains("linearizable, sequential, session, weaker"),
        "{e}"
    );
    let ok = text.replace("strict", "session");
    let s = Scenario::parse("s.toml", &ok).unwrap();
    assert_eq!(s.expect.rung.as_deref(), Some("session"));
}

/// Runs every shipped scenario that states a rung over [`RUNG_SEEDS`] and climbs the
/// ladder of each seed's history: no seed is below the stated rung, and some seed
/// is at it (it is the weakest, not a lower bound picked for safety).
#[test]
fn every_scenario_reaches_the_rung_it_states() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let out = std::env::temp_dir().join(format!("faultline-ladder-{}", std::process::id()));
    let mut stated = 0;
    for path in paths {
        let scenario = Scenario::load(&path).unwrap();
        let Some(rung) = scenario.expect.rung.clone() else {
            continue;
        };
        stated += 1;
        let want = Level::parse(&rung).unwrap();
        let protocol = faultline::registry::for_scenario(&scenario).unwrap();
        let request = RunRequest {
            seeds: RUNG_SEEDS.collect(),
            jobs: 2,
            keep: true,
            artifacts: Some(out.clone()),
            ..RunRequest::default()
        };
        let summary = (protocol.run)(&scenario, &request).unwrap();
        let mut levels = Vec::new();
        for r in &summary.runs {
            let dir = std::path::PathBuf::from(r.artifacts.as_ref().unwrap());
            let h = load(&dir.join("history.jsonl"), &Options::new(ModelKind::Kv)).unwrap();
            let l = check(&h.problem, &Budget::default());
            let level = l.level().unwrap_or_else(|| {
                panic!(
                    "{} seed {}: unknown\n{}",
                    scenario.name,
                    r.seed,
                    l.render_table()
                )
            });
            levels.push((r.seed, level));
        }
        let weakest = levels.iter().map(|&(_, l)| l).min().unwrap();
        assert_eq!(
            weakest, want,
            "{}: states rung {rung}, seeds {RUNG_SEEDS:?} reach {levels:?}",
            scenario.name
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(stated >= 6, "only {stated} scenarios state a rung");
}

/// `check --ladder` on files: the table, `--json`, and the exit codes (0
/// linearizable, 1 a rung broken, 2 bad input).
#[test]
fn check_ladder_prints_the_table_and_exits_by_the_verdict() {
    let dir = std::env::temp_dir().join(format!("faultline-ladder-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, h: &H| {
        let path = dir.join(name);
        let lines: Vec<String> = h
            .events()
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let good = write(
        "good.jsonl",
        &H(vec![
            put(0, "x", "a", 0, 10),
            get(1, "x", Some("a"), 20, 30),
        ]),
    );
    let stale = write(
        "stale.jsonl",
        &H(vec![put(0, "x", "a", 0, 10), get(1, "x", None, 20, 30)]),
    );
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{not json\n").unwrap();
    let run = |args: &[&std::path::Path], json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"));
        c.args(["check", "--ladder"]).args(args);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = run(&[&good], false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("strongest: linearizable"), "{out}");
    let (code, out) = run(&[&stale], false);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("linearizable         broken   #0 #2"), "{out}");
    assert!(out.contains("strongest: sequential"), "{out}");
    let (code, out) = run(&[&stale], true);
    assert_eq!(code, Some(1));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j[0]["strongest"], "sequential");
    assert_eq!(j[0]["rungs"][0]["ops"], serde_json::json!([0, 2]));
    let (code, _) = run(&[&bad], false);
    assert_eq!(code, Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_spent_budget_is_unknown_and_exits_3() {
    let h = H(vec![put(0, "x", "a", 0, 10), get(1, "x", Some("a"), 5, 30)]);
    let problem = problem_from_kv(ModelKind::Kv, &h.events()).unwrap();
    let tiny = Budget {
        linearizable_steps_max: 1,
        sequential_steps_max: 1,
        ..Budget::default()
    };
    let l = check(&problem, &tiny);
    assert!(matches!(
        l.verdict(Rung::Linearizable),
        RungVerdict::Unknown(_)
    ));
    assert!(matches!(
        l.verdict(Rung::Sequential),
        RungVerdict::Unknown(_)
    ));
    assert_eq!(l.level(), None);
    assert_eq!(l.exit_code(), 3);
    assert!(l.render_table().contains("strongest: unknown"));
}

/// Whether some interleaving of the clients' operations (each client's in its
/// order) is legal for a key-value store: every interleaving, tried one by one.
fn brute_force_sequential(clients: &[Vec<(String, KvOp)>]) -> bool {
    fn go(
        clients: &[Vec<(String, KvOp)>],
        at: &mut Vec<usize>,
        store: &mut std::collections::BTreeMap<String, String>,
    ) -> bool {
        if at.iter().zip(clients).all(|(&i, c)| i == c.len()) {
            return true;
        }
        for c in 0..clients.len() {
            let Some((key, op)) = clients[c].get(at[c]) else {
                continue;
            };
            let before = store.get(key).cloned();
            match op {
                KvOp::Get { value, .. } => {
                    if *value != before {
                        continue;
                    }
                }
                KvOp::Put { value, .. } => {
                    store.insert(key.clone(), value.clone());
                }
                _ => unreachable!("puts and gets only"),
            }
            at[c] += 1;
            let found = go(clients, at, store);
            at[c] -= 1;
            match before {
                Some(v) => store.insert(key.clone(), v),
                None => store.remove(key),
            };
            if found {
                return true;
            }
        }
        false
    }
    go(
        clients,
        &mut vec![0; clients.len()],
        &mut Default::default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// On small random histories (any values read, so many are not sequentially
    /// consistent), the sequential rung agrees with trying every interleaving.
    #[test]
    fn the_sequential_rung_agrees_with_brute_force(
        script in proptest::collection::vec((0usize..3, 0usize..2, any::<bool>(), 0usize..4), 1..8),
    ) {
        let mut clients: Vec<Vec<(String, KvOp)>> = vec![Vec::new(); 3];
        let mut ops = Vec::new();
        for (n, &(c, k, is_put, v)) in script.iter().enumerate() {
            let key = format!("k{k}");
            let t = n as u64 * 10;
            let op = if is_put {
                // Unique values, as faultline's clients write.
                let value = format!("{c}.{n}");
                put(c, &key, &value, t, t + 5)
            } else {
                let seen = (v > 0).then(|| {
                    let i = (v * 7 + n) % script.len();
                    format!("{}.{i}", script[i].0)
                });
                get(c, &key, seen.as_deref(), t, t + 5)
            };
            clients[c].push((key, op.1.clone()));
            ops.push(op);
        }
        let expected = brute_force_sequential(&clients);
        let l = H(ops).ladder();
        let got = l.verdict(Rung::Sequential);
        prop_assert_eq!(
            *got == RungVerdict::Holds,
            expected,
            "{:?}\n{}",
            clients,
            l.render_table()
        );
    }
}
