//! The linearizability checker against known-good and known-bad histories, in every
//! file format it reads: one test per kind of history it once got wrong, histories
//! generated from real sequential executions (and mutated ones), its bounds, and a
//! comparison with a brute-force oracle that shares no code with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline::check::history_file::{
    parse_bytes, AbsentReads, HistoryError, LoadedHistory, Options,
};
use faultline::check::linearizability::{
    check_kv, check_problems, generate_linearizable_history, GenParams, KeyResult, Limits, Outcome,
    Unknown,
};
use faultline::check::model::ModelKind;
use faultline::check::report::{check_file, render_text};
use faultline::{HistoryEvent, KvOp, OpType, Verdict};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BUDGET: Duration = Duration::from_secs(30);

fn limits() -> Limits {
    Limits {
        timeout: Some(BUDGET),
        ..Limits::default()
    }
}

fn load_text(text: &str, options: &Options) -> Result<LoadedHistory, HistoryError> {
    parse_bytes(text.as_bytes(), Path::new("h.edn"), options)
}

fn opts(model: ModelKind) -> Options {
    Options::new(model)
}

fn check_text(text: &str, options: &Options) -> (LoadedHistory, Outcome) {
    let h = load_text(text, options).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let o = check_problems(std::slice::from_ref(&h.problem), &limits())
        .pop()
        .unwrap();
    (h, o)
}

fn verdict(text: &str, options: &Options) -> &'static str {
    match check_text(text, options).1.verdict {
        Verdict::Pass => "linearizable",
        Verdict::Fail(_) => "not linearizable",
        Verdict::Unknown(_) => "unknown",
    }
}

fn cas_reg() -> Options {
    opts(ModelKind::CasRegister)
}

// ---- The kinds of files once refused or misjudged, one test each. ----

#[test]
fn kind_01_a_whole_file_vector_or_list_of_ops() {
    let ops = "{:process 0, :type :invoke, :f :write, :value 1}\n {:process 0, :type :ok, :f :write, :value 1}\n {:process 1, :type :invoke, :f :read, :value nil}\n {:process 1, :type :ok, :f :read, :value 1}";
    assert_eq!(verdict(&format!("[{ops}]\n"), &cas_reg()), "linearizable");
    assert_eq!(verdict(&format!("({ops})"), &cas_reg()), "linearizable");
    let bad = ops.replace("read, :value 1}", "read, :value 2}");
    assert_eq!(verdict(&format!("[{bad}]"), &cas_reg()), "not linearizable");
    // Something after the vector is an error, at its place.
    let e = load_text(&format!("[{ops}]\n[]"), &cas_reg())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("h.edn:5:1:"), "{e}");
}

#[test]
fn kind_02_maps_pretty_printed_over_lines_in_any_key_order() {
    let text = "{:process 0,\n :type :invoke,\n :f :write,\n :value 1}\n{:value 1\n :f :write :type :ok\n :process 0 :index 7 :node \"n1\" :error nil}\n";
    let (h, o) = check_text(text, &cas_reg());
    assert_eq!(o.verdict, Verdict::Pass);
    assert_eq!((h.sources[0].line, h.sources[1].line), (1, 5));
}

#[test]
fn kind_03_non_client_ops_parse_and_are_skipped_whatever_they_hold() {
    let text = r#"{:process 0, :type :invoke, :f :write, :value 1}
{:process :nemesis, :type :info, :f :start, :value [:isolated {"n1" #{"n2" "n3"}}]}
{:type :info, :f :kill, :value ("n5" "n4"), :process :nemesis}
{:process :nemesis, :type :info, :f :clock, :value {:t #inst "2020-01-01T00:00:00Z", :u #uuid "550e8400-e29b-41d4-a716-446655440000", :c \a, :x 1.5e3, :r 1/2, :b 12345678901234567890N, :s sym/bol}}
{:process nemesis, :f :stop}
#_{:process 0, :type :ok, :f :write, :value 9}
; a comment
{:process 0, :type :ok, :f :write, :value 1}
"#;
    let (h, o) = check_text(text, &cas_reg());
    assert_eq!(o.verdict, Verdict::Pass, "{:?}", o.verdict);
    assert!(
        h.notes.iter().any(|n| n.contains("skipped 4 non-client")),
        "{:?}",
        h.notes
    );
}

#[test]
fn kind_04_independent_tuples_are_checked_per_key() {
    // Key 0 fine; key 1 has a stale read; key 2 a failed cas [k [old new]].
    let text = "\
{:process 0, :type :invoke, :f :write, :value [0 1]}
{:process 0, :type :ok, :f :write, :value [0 1]}
{:process 1, :type :invoke, :f :write, :value [1 5]}
{:process 1, :type :ok, :f :write, :value [1 5]}
{:process 2, :type :invoke, :f :cas, :value [2 [1 2]]}
{:process 2, :type :fail, :f :cas, :value [2 [1 2]]}
{:process 0, :type :invoke, :f :read, :value [1 nil]}
{:process 0, :type :ok, :f :read, :value [1 nil]}
{:process 1, :type :invoke, :f :read, :value [0 nil]}
{:process 1, :type :ok, :f :read, :value [0 1]}
";
    let (h, o) = check_text(text, &cas_reg());
    assert!(
        h.notes.iter().any(|n| n.contains("independent")),
        "{:?}",
        h.notes
    );
    let keys: Vec<(&str, bool)> = o
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.result == KeyResult::Linearizable))
        .collect();
    assert_eq!(keys, [("0", true), ("1", false), ("2", true)]);
    // The key is in the verdict.
    let Verdict::Fail(msg) = &o.verdict else {
        panic!()
    };
    assert!(msg.starts_with("key 1:"), "{msg}");
}

#[test]
fn kind_05_any_completion_may_carry_an_error_keyword() {
    for (kind, f, value) in [
        ("info", "cas", "[1 2]"),
        ("fail", "cas", "[1 2]"),
        ("info", "write", "3"),
        ("fail", "write", "3"),
        ("info", "read", "nil"),
    ] {
        let text = format!(
            "{{:process 0, :type :invoke, :f :{f}, :value {value}}}\n{{:process 0, :type :{kind}, :f :{f}, :value :timed-out, :error :timeout}}\n"
        );
        assert_eq!(verdict(&text, &cas_reg()), "linearizable", "{text}");
    }
    // An info cas may still have happened: a later read of its new value is fine.
    let text = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n{:process 1, :type :invoke, :f :cas, :value [1 2]}\n{:process 1, :type :info, :f :cas, :value :timed-out}\n{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value 2}\n";
    assert_eq!(verdict(text, &cas_reg()), "linearizable");
    // ...but a failed one did not: the same read is an anomaly.
    assert_eq!(
        verdict(
            &text.replace(":info, :f :cas", ":fail, :f :cas"),
            &cas_reg()
        ),
        "not linearizable"
    );
}

#[test]
fn kind_06_initial_value() {
    let text = "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value 0}\n";
    assert_eq!(verdict(text, &cas_reg()), "not linearizable");
    let zero = Options {
        initial: Some("0".into()),
        ..cas_reg()
    };
    assert_eq!(verdict(text, &zero), "linearizable");
    let with_nil = text.replace(":value 0}", ":value nil}");
    assert_eq!(verdict(&with_nil, &zero), "not linearizable");
    // A string "0" is not the integer 0 in a register.
    let string = Options {
        initial: Some("\"0\"".into()),
        ..cas_reg()
    };
    assert_eq!(verdict(text, &string), "not linearizable");
    // The kv model: every absent key starts at the initial value.
    let kv = Options {
        initial: Some("\"a\"".into()),
        ..opts(ModelKind::Kv)
    };
    let text = "{:process 0, :type :invoke, :f :append, :key \"k\", :value \"b\"}\n{:process 0, :type :ok, :f :append, :key \"k\", :value \"b\"}\n{:process 0, :type :invoke, :f :get, :key \"k\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"k\", :value \"ab\"}\n";
    assert_eq!(verdict(text, &kv), "linearizable");
    assert_eq!(verdict(text, &opts(ModelKind::Kv)), "not linearizable");
    let e = load_text(
        text,
        &Options {
            initial: Some("[1".into()),
            ..opts(ModelKind::Kv)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--initial"), "{e}");
}

#[test]
fn kind_07_kv_absent_reads() {
    let text = "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"1\", :value \"\"}\n{:process 1, :type :invoke, :f :append, :key \"1\", :value \"x\"}\n{:process 1, :type :ok, :f :append, :key \"1\", :value \"x\"}\n{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"1\", :value \"x\"}\n";
    let (h, o) = check_text(text, &opts(ModelKind::Kv));
    assert_eq!(o.verdict, Verdict::Pass);
    assert!(
        h.notes.iter().any(|n| n.contains("Porcupine")),
        "{:?}",
        h.notes
    );
    let nil = Options {
        absent_reads: AbsentReads::Nil,
        ..opts(ModelKind::Kv)
    };
    assert_eq!(verdict(text, &nil), "not linearizable");
    // Under the "" convention a nil read means absent too.
    let empty = Options {
        absent_reads: AbsentReads::Empty,
        ..opts(ModelKind::Kv)
    };
    assert_eq!(
        verdict(&text.replace("\"\"}", "nil}"), &empty),
        "linearizable"
    );
    // Not detected when "" is really written.
    let written = text.replace(":value \"x\"}\n{:process 0", ":value \"\"}\n{:process 0");
    let (h, _) = check_text(&written, &opts(ModelKind::Kv));
    assert!(
        h.notes.iter().all(|n| !n.contains("Porcupine")),
        "{:?}",
        h.notes
    );
}

/// 24 concurrent indeterminate appends and a read no order of them produces:
/// refuting it means trying every subset and order.
fn hard_key(key: &str, first_process: usize) -> String {
    let mut text = String::new();
    for p in 0..24 {
        text += &format!(
            "{{:process {}, :type :invoke, :f :append, :key \"{key}\", :value \"{p:02}\"}}\n",
            first_process + p
        );
    }
    text += &format!(
        "{{:process {}, :type :invoke, :f :get, :key \"{key}\", :value nil}}\n",
        first_process + 99
    );
    text += &format!(
        "{{:process {}, :type :ok, :f :get, :key \"{key}\", :value \"impossible\"}}\n",
        first_process + 99
    );
    text
}

/// A stale read on `key`: fails in a few steps.
fn stale_key(key: &str, p: usize) -> String {
    format!(
        "{{:process {p}, :type :invoke, :f :put, :key \"{key}\", :value \"1\"}}\n{{:process {p}, :type :ok, :f :put, :key \"{key}\", :value \"1\"}}\n{{:process {p}, :type :invoke, :f :get, :key \"{key}\", :value nil}}\n{{:process {p}, :type :ok, :f :get, :key \"{key}\", :value nil}}\n"
    )
}

#[test]
fn kind_08_a_hard_key_does_not_starve_a_failing_one() {
    // The hard key comes first in the file and in key order.
    let text = hard_key("a", 0) + &stale_key("b", 500);
    let start = Instant::now();
    let (_, o) = check_text(&text, &opts(ModelKind::Kv));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(o.verdict, Verdict::Fail(_)), "{:?}", o.verdict);
    assert_eq!(o.keys[0].result, KeyResult::Unknown(Unknown::NotNeeded));
    assert!(matches!(o.keys[1].result, KeyResult::NotLinearizable(_)));
    // The same on one thread: the verdict and witness do not depend on the pool.
    let one = Limits {
        threads: 1,
        ..limits()
    };
    let h = load_text(&text, &opts(ModelKind::Kv)).unwrap();
    let o1 = check_problems(std::slice::from_ref(&h.problem), &one)
        .pop()
        .unwrap();
    assert_eq!(o1.verdict, o.verdict);
    assert_eq!(o1.keys[1].result, o.keys[1].result);
    assert_eq!(o1.keys[0].steps, o.keys[0].steps);
}

#[test]
fn kind_09_timeout_and_memory_are_hard_bounds() {
    let h = load_text(&hard_key("a", 0), &opts(ModelKind::Kv)).unwrap();
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let o = check_problems(
        std::slice::from_ref(&h.problem),
        &Limits {
            timeout: Some(timeout),
            ..Limits::default()
        },
    )
    .pop()
    .unwrap();
    let took = start.elapsed();
    assert_eq!(o.keys[0].result, KeyResult::Unknown(Unknown::Timeout));
    assert!(matches!(o.verdict, Verdict::Unknown(_)));
    // The bound holds: without it this key searches for minutes. How closely it holds
    // (within 10% on an idle machine) is a measurement, recorded with its command in
    // results/bench/checker.md; a test that shares two cores with the rest of the suite
    // can only check that the search stops, not to the millisecond.
    assert!(took < timeout * 3, "took {took:?}");
    let start = Instant::now();
    let o = check_problems(
        std::slice::from_ref(&h.problem),
        &Limits {
            memory_bytes_max: 4 << 20,
            ..limits()
        },
    )
    .pop()
    .unwrap();
    assert_eq!(o.keys[0].result, KeyResult::Unknown(Unknown::Memory));
    assert!(start.elapsed() < Duration::from_secs(10));
    // A step bound gives the same unknown on every machine.
    let steps = Limits {
        key_steps_max: 100_000,
        ..limits()
    };
    let o = check_problems(std::slice::from_ref(&h.problem), &steps)
        .pop()
        .unwrap();
    assert_eq!(o.keys[0].result, KeyResult::Unknown(Unknown::StepLimit));
    assert_eq!(o.keys[0].steps, 100_000);
}

/// A long cas-register history with many writes of few values, cas and reads, and
/// a stale read at the end.
fn cas_heavy_history(seed: u64, with_stale_read: bool) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = "{:process 0, :type :invoke, :f :write, :value 0, :time 0}\n{:process 0, :type :ok, :f :write, :value 0, :time 1}\n".to_string();
    let mut value = 0;
    let mut t = 0u64;
    for _ in 0..600 {
        let p = rng.gen_range(0..5);
        t += 10;
        let (f, v, out, kind) = match rng.gen_range(0..3) {
            0 => {
                value = rng.gen_range(0..8);
                ("write", value.to_string(), value.to_string(), "ok")
            }
            1 => {
                let from = if rng.gen_bool(0.5) {
                    value
                } else {
                    rng.gen_range(0..8)
                };
                let to = rng.gen_range(0..8);
                let ok = from == value;
                if ok {
                    value = to;
                }
                (
                    "cas",
                    format!("[{from} {to}]"),
                    format!("[{from} {to}]"),
                    if ok { "ok" } else { "fail" },
                )
            }
            _ => ("read", "nil".to_string(), value.to_string(), "ok"),
        };
        text += &format!("{{:process {p}, :type :invoke, :f :{f}, :value {v}, :time {t}}}\n");
        text += &format!(
            "{{:process {p}, :type :{kind}, :f :{f}, :value {out}, :time {}}}\n",
            t + 5
        );
    }
    if with_stale_read {
        let stale = (value + 1) % 8;
        text += &format!("{{:process 1, :type :invoke, :f :write, :value {stale}, :time {}}}\n{{:process 1, :type :ok, :f :write, :value {stale}, :time {}}}\n", t + 10, t + 11);
        text += &format!("{{:process 2, :type :invoke, :f :write, :value {value}, :time {}}}\n{{:process 2, :type :ok, :f :write, :value {value}, :time {}}}\n", t + 20, t + 21);
        text += &format!("{{:process 3, :type :invoke, :f :read, :value nil, :time {}}}\n{{:process 3, :type :ok, :f :read, :value {stale}, :time {}}}\n", t + 30, t + 31);
    }
    text
}

#[test]
fn kind_10_witness_is_small_where_a_small_one_exists() {
    for seed in 0..5 {
        assert_eq!(
            verdict(&cas_heavy_history(seed, false), &cas_reg()),
            "linearizable"
        );
        let (h, o) = check_text(&cas_heavy_history(seed, true), &cas_reg());
        let (_, f) = o.failures().next().expect("a failing key");
        assert!(
            f.witness.len() <= 10,
            "seed {seed}: {} ops",
            f.witness.len()
        );
        assert!(f.minimal, "seed {seed}");
        // The stale read is in it, shown as written with its line.
        let text = render_text(&h, &o);
        let last_line = h.text.lines().count();
        assert!(
            text.contains(&format!("{last_line}: {{:process 3, :type :ok")),
            "{text}"
        );
    }
    // The shared case: 3 operations.
    let text = "{:index 8535, :time 7894709481, :type :invoke, :process 2, :f :write, :value 6}\n{:index 8541, :time 7898984681, :type :ok, :process 2, :f :write, :value 6}\n{:index 9041, :time 8338762817, :type :invoke, :process 2, :f :write, :value 7}\n{:index 9046, :time 8342985455, :type :ok, :process 2, :f :write, :value 7}\n{:index 9048, :time 8344675063, :type :invoke, :process 6, :f :read, :value nil}\n{:index 9051, :time 8347176676, :type :ok, :process 6, :f :read, :value 6}\n";
    let (_, o) = check_text(text, &cas_reg());
    assert_eq!(o.failures().next().unwrap().1.witness.len(), 3);
}

#[test]
fn kind_11_every_failing_key_is_reported() {
    let text =
        stale_key("a", 0) + &stale_key("b", 1) + &stale_key("c", 2).replace("nil}\n", "\"1\"}\n");
    let (h, o) = check_text(&text, &opts(ModelKind::Kv));
    let failing: Vec<&str> = o.failures().map(|(k, _)| k.key.as_str()).collect();
    assert_eq!(failing, ["a", "b"]);
    let report = render_text(&h, &o);
    assert!(report.contains("key a is not linearizable"), "{report}");
    assert!(report.contains("key b is not linearizable"), "{report}");
}

#[test]
fn kind_12_errors_show_edn_and_text_formats_are_read() {
    let bad = "{:process 0, :type :invoke, :f :cas, :value [2 8 9]}\n";
    let e = load_text(bad, &cas_reg()).unwrap_err().to_string();
    assert!(e.starts_with("h.edn:1:45:"), "{e}");
    assert!(e.contains("[2 8 9]"), "{e}");
    assert!(!e.contains("Vector") && !e.contains("Int("), "{e}");
    let e = load_text(
        "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}\n",
        &cas_reg(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(":txn") && e.contains("Elle"), "{e}");
    let e = load_text("{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0 :type :ok :f :write :value 1", &cas_reg())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("h.edn:2:1:") && e.contains("never closed"),
        "{e}"
    );
    // Jepsen's history.txt, and console logs as in Porcupine's corpus.
    let txt = "0\t:invoke\t:write\t1\n:nemesis\t:info\t:start\tnil\n0\t:ok\t:write\t1\n1\t:invoke\t:read\tnil\n1\t:ok\t:read\t0\n";
    assert_eq!(verdict(txt, &cas_reg()), "not linearizable");
    let log: String = txt
        .lines()
        .map(|l| format!("INFO  jepsen.util - {l}\n"))
        .collect();
    let log = format!("INFO  jepsen.core - Running test\n{log}");
    let (h, o) = check_text(&log, &cas_reg());
    assert!(matches!(o.verdict, Verdict::Fail(_)));
    let report = render_text(&h, &o);
    assert!(
        report.contains("6: INFO  jepsen.util - 1\t:ok\t:read\t0")
            || report.contains("6: INFO jepsen.util - 1 :ok :read 0"),
        "{report}"
    );
}

// ---- Generated histories. ----

fn params(ops: usize) -> GenParams {
    GenParams {
        ops,
        keys: 4,
        clients: 6,
        info_percent: 3,
    }
}

#[test]
fn generated_histories_pass_and_mutated_ones_fail() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for seed in 0..30 {
        let h = generate_linearizable_history(seed, params(300));
        let o = check_kv(&h, Some(BUDGET));
        assert_eq!(o.verdict, Verdict::Pass, "seed {seed}");
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| h[i].kind == OpType::Ok && matches!(h[i].op, KvOp::Get { .. }))
            .collect();
        let mut bad = h.clone();
        let i = reads[rng.gen_range(0..reads.len())];
        let key = bad[i].op.key().to_string();
        bad[i].op = KvOp::Get {
            key: key.clone(),
            value: Some("never-written".into()),
        };
        let o = check_kv(&bad, Some(BUDGET));
        let (k, f) = o.failures().next().expect("a failure");
        assert_eq!(k.key, format!("{key:?}"), "seed {seed}");
        // Nothing wrote that value, so the read alone is the whole story.
        assert!(f.minimal, "seed {seed}");
        assert_eq!(f.witness.len(), 1, "seed {seed}");
    }
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
    assert_eq!(
        check_kv(&h, Some(Duration::from_secs(60))).verdict,
        Verdict::Pass
    );
}

#[test]
fn simulator_json_lines_load_and_check() {
    let h = generate_linearizable_history(1, params(200));
    let text: String = h
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let (loaded, o) = check_text(&text, &opts(ModelKind::Kv));
    assert_eq!(o.verdict, Verdict::Pass);
    assert_eq!(o.keys.len(), 4);
    assert_eq!(loaded.sources.len(), h.len());
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/histories")
        .join(name)
}

#[test]
fn shipped_history_files() {
    let cases = [
        ("kv-good.jsonl", ModelKind::Kv, "linearizable"),
        ("kv-stale-read.jsonl", ModelKind::Kv, "not linearizable"),
        ("kv-lost-append.edn", ModelKind::Kv, "not linearizable"),
        (
            "cas-register-good.edn",
            ModelKind::CasRegister,
            "linearizable",
        ),
        (
            "cas-register-bad.edn",
            ModelKind::CasRegister,
            "not linearizable",
        ),
    ];
    for (name, model, last) in cases {
        let (text, _) =
            check_file(&data(name), &opts(model), &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.lines().last(), Some(last), "{name}:\n{text}");
    }
    let (text, _) = check_file(&data("cas-register-bad.edn"), &cas_reg(), &limits()).unwrap();
    assert!(text.contains("the register is not linearizable"), "{text}");
    assert!(
        text.contains("cas 0 -> 1") && text.contains("cas 0 -> 2"),
        "{text}"
    );
}

/// Porcupine's own test data, from a local checkout named by FAULTLINE_PORCUPINE
/// (skipped without one): every history gets Porcupine's expected verdict.
#[test]
fn porcupine_corpus_when_available() {
    let Some(dir) = std::env::var_os("FAULTLINE_PORCUPINE") else {
        eprintln!("skipped: set FAULTLINE_PORCUPINE to a Porcupine checkout to run");
        return;
    };
    let dir = PathBuf::from(dir).join("test_data");
    // From porcupine_test.go: the etcd logs it expects linearizable (95 is empty:
    // "etcd cluster failed to start up in test 95", linearizable here).
    let good_etcd = [
        2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 95, 98, 100, 101,
        102,
    ];
    let mut etcd: Vec<PathBuf> = (0..=102)
        .map(|i| dir.join(format!("jepsen/etcd_{i:03}.log")))
        .filter(|p| p.exists())
        .collect();
    etcd.sort();
    let o = cas_reg();
    let results = faultline::check::report::check_files(&etcd, &o, &limits());
    for r in &results {
        let n: usize = r.path.file_stem().unwrap().to_str().unwrap()[5..]
            .parse()
            .unwrap();
        let want = if good_etcd.contains(&n) { 0 } else { 1 };
        assert_eq!(
            r.exit_code(),
            want,
            "{}",
            faultline::check::report::render_line(r)
        );
        // Small witnesses on these cas-heavy histories.
        if let Ok((_, o)) = &r.result {
            for (_, f) in o.failures() {
                assert!(f.witness.len() <= 10, "{}", r.path.display());
            }
        }
    }
    let kv: Vec<PathBuf> = [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ]
    .iter()
    .map(|n| dir.join(format!("kv/{n}.txt")))
    .collect();
    let results = faultline::check::report::check_files(&kv, &opts(ModelKind::Kv), &limits());
    for r in &results {
        let want = if r.path.to_str().unwrap().contains("ok") {
            0
        } else {
            1
        };
        assert_eq!(
            r.exit_code(),
            want,
            "{}",
            faultline::check::report::render_line(r)
        );
    }
}

/// Knossos's cas-register data (`data/cas-register/{good,bad}`), from a local checkout
/// named by FAULTLINE_KNOSSOS (skipped without one): good files are linearizable, bad
/// ones not, each with a witness of at most 10 operations.
#[test]
fn knossos_corpus_when_available() {
    let Some(dir) = std::env::var_os("FAULTLINE_KNOSSOS") else {
        eprintln!("skipped: set FAULTLINE_KNOSSOS to a Knossos checkout to run");
        return;
    };
    let dir = PathBuf::from(dir).join("data/cas-register");
    for (sub, want) in [("good", 0), ("bad", 1)] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "edn"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no files in {sub}");
        for r in faultline::check::report::check_files(&files, &cas_reg(), &limits()) {
            assert_eq!(
                r.exit_code(),
                want,
                "{}",
                faultline::check::report::render_line(&r)
            );
            if let Ok((_, o)) = &r.result {
                for (_, f) in o.failures() {
                    assert!(f.witness.len() <= 10, "{}", r.path.display());
                }
            }
        }
    }
}

// ---- Formats agree with each other and with a brute-force oracle. ----

/// An operation's function and input, in the oracle's own terms.
#[derive(Clone, Debug)]
enum F {
    Read,
    Write(u8),
    Cas(u8, u8),
}

/// One event of an oracle history: no type of the checker's is used.
#[derive(Clone, Debug)]
struct Ev {
    process: u8,
    /// "invoke", "ok", "fail", "info".
    kind: &'static str,
    key: u8,
    f: F,
    /// A read's result on ok (None = nil).
    read: Option<u8>,
}

fn random_history(rng: &mut ChaCha8Rng) -> Vec<Ev> {
    let processes = rng.gen_range(1..=4u8);
    let keys = rng.gen_range(1..=2u8);
    let ops_max = rng.gen_range(1..=7);
    let mut pending: Vec<Option<(u8, F)>> = vec![None; processes as usize];
    let mut out = Vec::new();
    let mut invoked = 0;
    // A process whose operation never completes invokes nothing more.
    let mut dead = vec![false; processes as usize];
    while invoked < ops_max || pending.iter().any(Option::is_some) {
        let p = rng.gen_range(0..processes);
        if dead[p as usize] {
            if dead.iter().all(|&d| d) {
                break;
            }
            continue;
        }
        match pending[p as usize].take() {
            None if invoked < ops_max => {
                let key = rng.gen_range(0..keys);
                let f = match rng.gen_range(0..3) {
                    0 => F::Read,
                    1 => F::Write(rng.gen_range(0..3)),
                    _ => F::Cas(rng.gen_range(0..3), rng.gen_range(0..3)),
                };
                out.push(Ev {
                    process: p,
                    kind: "invoke",
                    key,
                    f: f.clone(),
                    read: None,
                });
                pending[p as usize] = Some((key, f));
                invoked += 1;
            }
            None => {}
            Some((key, f)) => {
                if rng.gen_range(0..10) == 0 {
                    // Never completes.
                    dead[p as usize] = true;
                    continue;
                }
                let kind = match rng.gen_range(0..10) {
                    0 => "fail",
                    1 => "info",
                    _ => "ok",
                };
                let read = match (&f, kind) {
                    (F::Read, "ok") if rng.gen_bool(0.8) => Some(rng.gen_range(0..3)),
                    _ => None,
                };
                out.push(Ev {
                    process: p,
                    kind,
                    key,
                    f,
                    read,
                });
            }
        }
    }
    out
}

// The oracle follows the definition (Herlihy & Wing 1990) with its own spec, its
// own pairing and its own search; it uses no type or function of the checker's.

/// The oracle's bound: a history of at most this many operations (after pairing).
/// It tries every order, so its work grows as n!: 10 operations is at most 3.6
/// million orders, about a second; the random histories have at most 7.
const ORACLE_OPS_MAX: usize = 10;

/// The oracle's sequential specification: a map of cas registers, all nil at first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spec {
    regs: std::collections::BTreeMap<u8, u8>,
}

impl Spec {
    /// Applies `f` to `key`, given what an ok read returned (None: nil). False if the
    /// spec forbids it (a read of another value, a cas whose expected value is not
    /// there); the state is then unchanged.
    fn apply(&mut self, key: u8, f: &F, read: Option<u8>) -> bool {
        let now = self.regs.get(&key).copied();
        match *f {
            F::Read => read == now,
            F::Write(v) => {
                self.regs.insert(key, v);
                true
            }
            F::Cas(expected, new) => {
                let ok = now == Some(expected);
                if ok {
                    self.regs.insert(key, new);
                }
                ok
            }
        }
    }
}

/// An operation as the oracle pairs it.
#[derive(Clone, Debug)]
struct OracleOp {
    /// Position of its invoke in the history.
    call: usize,
    /// Position of its ok completion; None: indeterminate (info, or never completed),
    /// so it may take effect at any point after its call, or never.
    ret: Option<usize>,
    key: u8,
    f: F,
    /// What an ok read returned.
    read: Option<u8>,
}

/// Pairs each invoke with its process's next completion. A failed operation did not
/// happen; an indeterminate read constrains nothing. Both are dropped.
fn oracle_pair(h: &[Ev]) -> Vec<OracleOp> {
    let mut ops: Vec<Option<OracleOp>> = Vec::new();
    let mut open: Vec<(u8, usize)> = Vec::new(); // (process, index in ops)
    for (pos, e) in h.iter().enumerate() {
        if e.kind == "invoke" {
            assert!(
                open.iter().all(|&(p, _)| p != e.process),
                "a process has one operation at a time"
            );
            open.push((e.process, ops.len()));
            ops.push(Some(OracleOp {
                call: pos,
                ret: None,
                key: e.key,
                f: e.f.clone(),
                read: None,
            }));
            continue;
        }
        let at = open
            .iter()
            .position(|&(p, _)| p == e.process)
            .expect("a completion follows its invoke");
        let (_, i) = open.remove(at);
        match e.kind {
            "ok" => {
                let o = ops[i].as_mut().expect("open");
                o.ret = Some(pos);
                o.read = e.read;
            }
            "fail" => ops[i] = None,
            _ => {}
        }
    }
    ops.into_iter()
        .flatten()
        .filter(|o| o.ret.is_some() || !matches!(o.f, F::Read))
        .collect()
}

/// Brute force: is there a sequence of all determinate operations and some subset
/// of the indeterminate ones that respects real time (an operation that returned
/// before another was invoked comes first) and that the spec accepts?
fn oracle_linearizable(h: &[Ev]) -> bool {
    let ops = oracle_pair(h);
    assert!(
        ops.len() <= ORACLE_OPS_MAX,
        "the oracle takes at most {ORACLE_OPS_MAX} operations, not {}",
        ops.len()
    );
    fn extend(ops: &[OracleOp], placed: &mut [bool], spec: &Spec) -> bool {
        if ops.iter().zip(&*placed).all(|(o, &p)| p || o.ret.is_none()) {
            return true;
        }
        for i in 0..ops.len() {
            // Next may be any unplaced operation that no unplaced one precedes.
            let blocked =
                (0..ops.len()).any(|j| !placed[j] && ops[j].ret.is_some_and(|r| r < ops[i].call));
            if placed[i] || blocked {
                continue;
            }
            let mut next = spec.clone();
            if next.apply(ops[i].key, &ops[i].f, ops[i].read) {
                placed[i] = true;
                if extend(ops, placed, &next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    extend(&ops, &mut vec![false; ops.len()], &Spec::default())
}

fn edn_value(e: &Ev, tuple: bool) -> String {
    let v = match (&e.f, e.kind) {
        (_, "fail" | "info") if e.process.is_multiple_of(2) => ":timed-out".to_string(),
        (F::Read, "ok") => e.read.map_or("nil".to_string(), |v| v.to_string()),
        (F::Read, _) => "nil".to_string(),
        (F::Write(v), _) => v.to_string(),
        (F::Cas(a, b), _) => format!("[{a} {b}]"),
    };
    if tuple && v != ":timed-out" {
        format!("[{} {v}]", e.key)
    } else {
        v
    }
}

fn f_name(e: &Ev) -> &'static str {
    match e.f {
        F::Read => "read",
        F::Write(_) => "write",
        F::Cas(..) => "cas",
    }
}

/// The history in every format the checker reads.
fn render_all(h: &[Ev]) -> Vec<(&'static str, String)> {
    let map = |e: &Ev| {
        format!(
            "{{:process {}, :type :{}, :f :{}, :key {}, :value {}}}",
            e.process,
            e.kind,
            f_name(e),
            e.key,
            edn_value(e, false)
        )
    };
    let nemesis = "{:process :nemesis, :type :info, :f :start, :value #{:n1 (:n2)}}";
    let lines: Vec<String> = h.iter().map(map).collect();
    let per_line = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                format!("{nemesis}\n{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect::<String>();
    let vector = format!("[{}]\n", lines.join("\n "));
    let pretty: String = h
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "{{:value {},\n :index {i}\n :f :{}\n :type :{},\n :key {}\n :process {}}}\n",
                edn_value(e, false),
                f_name(e),
                e.kind,
                e.key,
                e.process
            )
        })
        .collect();
    let tuples: String = h
        .iter()
        .map(|e| {
            format!(
                "{{:process {}, :type :{}, :f :{}, :value {}}}\n",
                e.process,
                e.kind,
                f_name(e),
                edn_value(e, true)
            )
        })
        .collect();
    let txt: String = h
        .iter()
        .map(|e| {
            format!(
                "{}\t:{}\t:{}\t{}\n",
                e.process,
                e.kind,
                f_name(e),
                edn_value(e, true)
            )
        })
        .collect();
    let log: String = txt
        .lines()
        .map(|l| format!("INFO  jepsen.util - {l}\n"))
        .collect();
    vec![
        ("line-per-op", per_line),
        ("vector", vector),
        ("pretty", pretty),
        ("tuples", tuples),
        ("history.txt", txt),
        ("console-log", log),
    ]
}

fn check_all_formats(h: &[Ev]) -> (bool, Vec<String>) {
    let expected = oracle_linearizable(h);
    let mut seen = Vec::new();
    for (name, text) in render_all(h) {
        let (loaded, o) = check_text(&text, &cas_reg());
        let ok = match o.verdict {
            Verdict::Pass => true,
            Verdict::Fail(_) => false,
            Verdict::Unknown(ref m) => panic!("{name}: unknown {m}"),
        };
        seen.push(format!("{name}: {ok}"));
        assert_eq!(
            ok, expected,
            "{name} disagrees with the oracle on {h:#?}\n{text}"
        );
        // Each witness has no linearization on its own, by the oracle too.
        for (k, f) in o.failures() {
            let ops = &loaded
                .problem
                .keys
                .iter()
                .find(|(n, _)| *n == k.key)
                .unwrap()
                .1;
            let mut positions: Vec<usize> = f
                .witness
                .iter()
                .flat_map(|&i| std::iter::once(ops[i].invoke).chain(ops[i].completion))
                .collect();
            positions.sort_unstable();
            let sub: Vec<Ev> = positions.iter().map(|&p| h[p].clone()).collect();
            assert!(
                !oracle_linearizable(&sub),
                "{name}: witness {sub:#?} of {h:#?}"
            );
        }
    }
    (expected, seen)
}

#[test]
fn formats_agree_with_each_other_and_the_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (mut good, mut bad) = (0, 0);
    // Rejected histories with several keys and a process doing several operations:
    // the shapes where pairing or per-key splitting could go wrong.
    let mut bad_multi = 0;
    for _ in 0..1500 {
        let h = random_history(&mut rng);
        if check_all_formats(&h).0 {
            good += 1;
        } else {
            bad += 1;
            let keys = h
                .iter()
                .map(|e| e.key)
                .collect::<std::collections::BTreeSet<_>>();
            let busy = (0..4u8).any(|p| {
                h.iter()
                    .filter(|e| e.process == p && e.kind == "invoke")
                    .count()
                    > 1
            });
            if keys.len() > 1 && busy {
                bad_multi += 1;
            }
        }
    }
    // Both answers must be well represented for the comparison to mean anything.
    assert!(good > 300 && bad > 300, "good {good}, bad {bad}");
    assert!(
        bad_multi > 100,
        "rejected multi-key, multi-op histories: {bad_multi}"
    );
}

/// Shorthands for hand-written oracle histories.
fn inv(process: u8, key: u8, f: F) -> Ev {
    Ev {
        process,
        kind: "invoke",
        key,
        f,
        read: None,
    }
}

fn done(process: u8, kind: &'static str, key: u8, f: F, read: Option<u8>) -> Ev {
    Ev {
        process,
        kind,
        key,
        f,
        read,
    }
}

/// Known anomalies in the shapes the random comparison covers (several keys, several
/// operations per process): the oracle and the checker, in every format, must both
/// reject each, and accept its repaired twin. A checker that accepted any of these
/// would fail here even if the oracle were wrong the same way.
#[test]
fn oracle_and_checker_reject_known_anomalies_across_keys_and_processes() {
    use F::{Cas, Read, Write};
    // p0 writes x then y; p1 then reads y (new) and x (stale: nil).
    let stale = |x_read: Option<u8>| {
        vec![
            inv(0, 0, Write(1)),
            done(0, "ok", 0, Write(1), None),
            inv(0, 1, Write(2)),
            done(0, "ok", 1, Write(2), None),
            inv(1, 1, Read),
            done(1, "ok", 1, Read, Some(2)),
            inv(1, 0, Read),
            done(1, "ok", 0, Read, x_read),
        ]
    };
    // Two cas operations from 0, one after the other, both succeed; p0 keeps
    // working on key 1 in between, and an indeterminate write to key 1 hangs.
    let double_cas = |second: &'static str| {
        vec![
            inv(0, 0, Write(0)),
            done(0, "ok", 0, Write(0), None),
            inv(3, 1, Write(2)),
            inv(1, 0, Cas(0, 1)),
            done(1, "ok", 0, Cas(0, 1), None),
            inv(0, 1, Write(1)),
            done(0, "ok", 1, Write(1), None),
            inv(2, 0, Cas(0, 2)),
            done(2, second, 0, Cas(0, 2), None),
            inv(0, 1, Read),
            done(0, "ok", 1, Read, Some(1)),
        ]
    };
    // Two concurrent writes to key 0, then one process reads 1, 2, 1: the value
    // cannot flip back. Reads of key 1 (nil) are interleaved.
    let flip = |last: u8| {
        vec![
            inv(0, 0, Write(1)),
            inv(1, 0, Write(2)),
            done(0, "ok", 0, Write(1), None),
            inv(2, 0, Read),
            done(1, "ok", 0, Write(2), None),
            done(2, "ok", 0, Read, Some(1)),
            inv(2, 1, Read),
            done(2, "ok", 1, Read, None),
            inv(2, 0, Read),
            done(2, "ok", 0, Read, Some(2)),
            inv(2, 0, Read),
            done(2, "ok", 0, Read, Some(last)),
        ]
    };
    let cases = [
        ("stale read", stale(None), stale(Some(1))),
        ("double cas", double_cas("ok"), double_cas("fail")),
        ("flip back", flip(1), flip(2)),
    ];
    for (name, bad, good) in cases {
        assert!(!oracle_linearizable(&bad), "oracle accepts {name}");
        assert!(oracle_linearizable(&good), "oracle rejects fixed {name}");
        // check_all_formats asserts the checker agrees with the oracle in every format.
        assert!(!check_all_formats(&bad).0, "{name}");
        assert!(check_all_formats(&good).0, "fixed {name}");
    }
}

proptest! {
    #[test]
    fn formats_agree_on_random_histories(seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        check_all_formats(&random_history(&mut rng));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_bytes(&bytes, Path::new("r"), &opts(ModelKind::Kv));
    }

    #[test]
    fn garbage_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{"), Just("}"), Just("["), Just("]"), Just("("), Just(")"), Just("#{"),
                Just(":process"), Just(" 0"), Just(":type"), Just(":ok"), Just(":invoke"),
                Just(":info"), Just(":fail"), Just(":f"), Just(":read"), Just(":cas"),
                Just(":write"), Just(":append"), Just(":value"), Just(" nil"), Just("\"s"),
                Just("\""), Just("\\"), Just("#_"), Just("#inst"), Just("\t"), Just("\n"),
                Just("INFO  jepsen.util - "), Just("99999999999999999999"), Just(","),
                Just(";"), Just(":key"), Just(":time"), Just("é"), Just(" 1"), Just("[0 [1 2]]"),
            ],
            0..40,
        ),
        model in prop_oneof![Just(ModelKind::Kv), Just(ModelKind::CasRegister), Just(ModelKind::Register)],
    ) {
        let text: String = parts.concat();
        if let Ok(h) = parse_bytes(text.as_bytes(), Path::new("g"), &opts(model)) {
            let l = Limits { timeout: Some(Duration::from_millis(200)), ..Limits::default() };
            let o = check_problems(std::slice::from_ref(&h.problem), &l).pop().unwrap();
            let _ = render_text(&h, &o);
        }
    }
}

#[test]
fn simulator_histories_keep_their_api() {
    // `check_kv` is what the Raft system calls; it takes simulator events.
    let h: Vec<HistoryEvent<KvOp>> = vec![
        HistoryEvent {
            index: 0,
            process: 0,
            kind: OpType::Invoke,
            op: KvOp::Put {
                key: "x".into(),
                value: "1".into(),
            },
            time_ns: 0,
        },
        HistoryEvent {
            index: 1,
            process: 0,
            kind: OpType::Ok,
            op: KvOp::Put {
                key: "x".into(),
                value: "1".into(),
            },
            time_ns: 1,
        },
        HistoryEvent {
            index: 2,
            process: 1,
            kind: OpType::Invoke,
            op: KvOp::Get {
                key: "x".into(),
                value: None,
            },
            time_ns: 2,
        },
        HistoryEvent {
            index: 3,
            process: 1,
            kind: OpType::Ok,
            op: KvOp::Get {
                key: "x".into(),
                value: None,
            },
            time_ns: 3,
        },
    ];
    let o = check_kv(&h, Some(BUDGET));
    let Verdict::Fail(msg) = &o.verdict else {
        panic!("{:?}", o.verdict)
    };
    assert!(msg.contains("key \"x\""), "{msg}");
}
