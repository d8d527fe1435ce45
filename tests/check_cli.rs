//! `faultline check` as a user runs it: batch mode, JSON, exit codes, bounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run faultline")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes `files` into a fresh scratch directory; returns their paths.
fn write(name: &str, files: &[(&str, &str)]) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("faultline-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    files
        .iter()
        .map(|(f, text)| {
            let p = dir.join(f);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

const GOOD: &str = "[{:process 0, :type :invoke, :f :write, :value 1}\n {:process 0, :type :ok, :f :write, :value 1}]\n";
const BAD: &str = "0\t:invoke\t:write\t1\n0\t:ok\t:write\t1\n0\t:invoke\t:write\t2\n0\t:ok\t:write\t2\n1\t:invoke\t:read\tnil\n1\t:ok\t:read\t1\n";
const MALFORMED: &str = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0 :type :ok";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn batch_prints_a_line_per_file_and_a_summary() {
    let p = write(
        "batch",
        &[
            ("good.edn", GOOD),
            ("bad.txt", BAD),
            ("malformed.edn", MALFORMED),
        ],
    );
    let o = faultline(&["check", s(&p[0]), s(&p[1]), "--model", "cas-register"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("linearizable  ") && lines[0].contains("good.edn"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("not linearizable  ") && lines[1].contains("3 ops at lines 1 3 5"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("2 file(s): 1 linearizable, 1 not linearizable"),
        "{out}"
    );
    // Bad input anywhere makes the batch exit 2, and is named with its place.
    let o = faultline(&["check", s(&p[0]), s(&p[2]), "--model", "cas-register"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("malformed.edn:2:1: this map is never closed"),
        "{}",
        stdout(&o)
    );
    // Only good files: 0.
    let o = faultline(&["check", s(&p[0]), s(&p[0]), "--model", "cas-register"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn one_file_gets_the_full_report_with_lines_as_written() {
    let p = write("one", &[("bad.txt", BAD)]);
    let o = faultline(&["check", s(&p[0]), "--model", "cas-register"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().last(), Some("not linearizable"));
    assert!(out.contains("history.txt history"), "{out}");
    assert!(
        out.contains("6: 1\t:ok\t:read\t1") || out.contains("6: 1 :ok :read 1"),
        "{out}"
    );
}

#[test]
fn json_has_per_key_verdicts_timings_and_witnesses() {
    let p = write("json", &[("bad.txt", BAD), ("good.edn", GOOD)]);
    let o = faultline(&[
        "check",
        s(&p[0]),
        s(&p[1]),
        "--model",
        "cas-register",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["exit_code"], 1);
    let bad = &j["files"][0];
    assert_eq!(bad["verdict"], "not-linearizable");
    assert_eq!(bad["format"], "history.txt");
    let key = &bad["keys"][0];
    assert_eq!(key["verdict"], "not-linearizable");
    assert!(key["elapsed_s"].is_number() && key["steps"].as_u64().unwrap() > 0);
    let w = key["witness"].as_array().unwrap();
    assert_eq!(w.len(), 3);
    assert_eq!(w[2]["invoke"]["line"], 5);
    assert_eq!(w[2]["completion"]["line"], 6);
    assert_eq!(w[2]["description"], "read -> 1");
    assert_eq!(j["files"][1]["verdict"], "linearizable");
}

#[test]
fn bounds_give_unknown_and_exit_3() {
    let mut hard = String::new();
    for p in 0..24 {
        hard += &format!(
            "{{:process {p}, :type :invoke, :f :append, :key \"k\", :value \"{p:02}\"}}\n"
        );
    }
    hard += "{:process 99, :type :invoke, :f :get, :key \"k\", :value nil}\n{:process 99, :type :ok, :f :get, :key \"k\", :value \"no\"}\n";
    let p = write("bounds", &[("hard.edn", &hard)]);
    let o = faultline(&["check", s(&p[0]), "--max-steps", "50000"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("step bound reached"), "{}", stdout(&o));
    let start = std::time::Instant::now();
    let o = faultline(&["check", s(&p[0]), "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(3));
    // The bound stops the search (precision: results/bench/checker.md).
    assert!(start.elapsed().as_secs_f64() < 3.0, "{:?}", start.elapsed());
    let o = faultline(&["check", s(&p[0]), "--max-memory", "8M"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("memory bound"), "{}", stdout(&o));
}

#[test]
fn bad_options_exit_2() {
    let p = write("opts", &[("good.edn", GOOD)]);
    for args in [
        vec!["--absent-reads", "zero"],
        vec!["--model", "cas-register", "--absent-reads", "nil"],
        vec!["--max-memory", "lots"],
        vec!["--timeout", "0"],
        vec!["--initial", "[1"],
    ] {
        let mut all = vec!["check", s(&p[0])];
        all.extend(args.iter().copied());
        let o = faultline(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
    }
}
