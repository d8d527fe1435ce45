//! The `faultline` command: output, exit codes (0 pass, 1 failure, 2 bad input or
//! usage) and artifacts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command.args(args).current_dir(dir).env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run faultline")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch working directory, so artifacts land outside the repository.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trace_hash(o: &Output) -> String {
    let line = stdout(o)
        .lines()
        .find(|l| l.starts_with("trace-hash: "))
        .map(str::to_string);
    let hash = line.unwrap_or_else(|| panic!("no trace-hash line in:\n{}", stdout(o)))
        ["trace-hash: ".len()..]
        .to_string();
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    hash
}

#[test]
fn list_names_every_shipped_scenario_with_its_description() {
    let o = faultline(&scratch("list"), &["list"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
        .count();
    let lines: Vec<_> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), files);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("broadcast-crash ") && l.contains("crash")));
}

#[test]
fn a_single_seed_prints_its_trace_hash_and_passes() {
    let dir = scratch("single");
    let o = faultline(&dir, &["run", "broadcast-partition", "--seed", "3"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("seeds run: 1  passed: 1  failed: 0"));
    let again = faultline(&dir, &["run", "broadcast-partition", "--seed", "3"], &[]);
    assert_eq!(trace_hash(&o), trace_hash(&again));
    assert!(
        !dir.join("results").exists(),
        "a passing seed leaves no artifacts without --keep"
    );
}

#[test]
fn a_caught_bug_exits_1_with_replay_lines_and_artifacts() {
    let dir = scratch("bug");
    let o = faultline(
        &dir,
        &[
            "run",
            "broadcast-crash",
            "--seeds",
            "0..6",
            "--bug",
            "ack-before-sync",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let seed: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("seed ")?.split(':').next()?.parse().ok())
        .expect("a failing seed");
    let replay = format!("replay: faultline replay {}/scenarios/broadcast-crash.toml --seed {seed} --bug ack-before-sync", env!("CARGO_MANIFEST_DIR"));
    assert!(out.contains(&replay), "{out}");
    let artifacts = dir
        .join("results/broadcast-crash")
        .join(format!("seed-{seed}"));
    for file in [
        "summary.json",
        "schedule.toml",
        "trace.jsonl",
        "history.jsonl",
    ] {
        let text =
            std::fs::read_to_string(artifacts.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!text.is_empty(), "{file} is empty");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifacts.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["failure"]["check"], "broadcast-durability");

    // The saved schedule reruns the same failure, with the same trace.
    let schedule = artifacts.join("schedule.toml").display().to_string();
    let seed_run = faultline(
        &dir,
        &[
            "run",
            "broadcast-crash",
            "--seed",
            &seed.to_string(),
            "--bug",
            "ack-before-sync",
        ],
        &[],
    );
    let file_run = faultline(
        &dir,
        &[
            "run",
            "broadcast-crash",
            "--schedule",
            &schedule,
            "--bug",
            "ack-before-sync",
        ],
        &[],
    );
    assert_eq!(file_run.status.code(), Some(1));
    assert_eq!(trace_hash(&seed_run), trace_hash(&file_run));
}

#[test]
fn replay_prints_every_event_with_simulated_time_and_node() {
    let dir = scratch("replay");
    let o = faultline(&dir, &["replay", "broadcast-crash", "--seed", "2"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let events: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("DEBUG") || l.starts_with("INFO"))
        .collect();
    assert!(events.len() > 1_000, "{} events", events.len());
    for line in &events {
        let mut words = line.split_whitespace().skip(1);
        let (time, actor) = (words.next().unwrap(), words.next().unwrap());
        assert!(
            time.ends_with('s') && time[..time.len() - 1].parse::<f64>().is_ok(),
            "{line}"
        );
        assert!(
            actor == "sim" || actor[1..].parse::<usize>().is_ok(),
            "{line}"
        );
    }
    assert!(out.contains(" n0 crash "), "crashes are traced");
    let info = faultline(
        &dir,
        &["replay", "broadcast-crash", "--seed", "2"],
        &[("RUST_LOG", "faultline=info")],
    );
    let info_out = stdout(&info);
    assert!(
        !info_out.contains("DEBUG") && info_out.contains("INFO"),
        "RUST_LOG filters the trace"
    );
    assert_eq!(trace_hash(&o), trace_hash(&info));
}

#[test]
fn json_summaries_aggregate_metrics_over_seeds() {
    let o = faultline(
        &scratch("json"),
        &["run", "broadcast-lossy", "--seeds", "0..4", "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["seeds_run"], 4);
    assert_eq!(s["passed"], 4);
    assert_eq!(s["runs"].as_array().unwrap().len(), 4);
    let sent = &s["metrics"]["messages_sent"];
    assert!(sent["min"].as_f64().unwrap() <= sent["mean"].as_f64().unwrap());
    assert!(sent["mean"].as_f64().unwrap() <= sent["max"].as_f64().unwrap());
    assert!(
        s["metrics"]["messages_dropped_loss"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn the_determinism_check_passes_for_shipped_scenarios() {
    let o = faultline(
        &scratch("det"),
        &[
            "run",
            "broadcast-nemesis",
            "--seeds",
            "0..3",
            "--check-determinism",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn bad_input_and_usage_exit_2_with_a_clear_message() {
    let dir = scratch("bad");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ndescription = \"y\"\nduration_ms = 100\n[cluster]\nprotocol = \"broadcast\"\nnodes = two\n").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["run", "bad.toml"], "faultline: bad.toml:6:9: "),
        (
            &["run", "no-such-scenario"],
            "faultline: no-such-scenario: no such file",
        ),
        (
            &["run", "broadcast-crash", "--seeds", "9..3"],
            "--seeds `9..3` is an empty range",
        ),
        (
            &["run", "broadcast-crash", "--bug", "nope"],
            "--bug: unknown bug `nope`",
        ),
        (
            &["run", "broadcast-crash", "--seed", "1", "--seeds", "0..2"],
            "cannot be used with",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        let o = faultline(&dir, args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
    std::fs::write(&bad, "name = \"x\"\ndescription = \"y\"\nduration_ms = 100\n[cluster]\nprotocol = \"paxos\"\nnodes = 3\n").unwrap();
    let o = faultline(&dir, &["run", "bad.toml"], &[]);
    assert!(
        stderr(&o).contains("bad.toml: cluster.protocol: unknown protocol `paxos`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bugs_lists_each_bug_with_a_shipped_scenario_that_catches_it() {
    let o = faultline(&scratch("bugs"), &["bugs"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.lines().count() >= 2);
    for line in out.lines() {
        let scenario = line.split_whitespace().nth(1).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{scenario}.toml"));
        assert!(path.exists(), "{line}: no scenario {scenario}");
    }
}

#[test]
fn check_prints_a_verdict_last_and_exits_by_it() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/histories");
    let cases = [
        ("kv-good.jsonl", "kv", 0, "linearizable"),
        ("kv-stale-read.jsonl", "kv", 1, "not linearizable"),
        ("kv-lost-append.edn", "kv", 1, "not linearizable"),
        ("cas-register-good.edn", "cas-register", 0, "linearizable"),
        (
            "cas-register-bad.edn",
            "cas-register",
            1,
            "not linearizable",
        ),
    ];
    for (file, model, code, verdict) in cases {
        let path = data.join(file).display().to_string();
        let o = faultline(&scratch("check"), &["check", &path, "--model", model], &[]);
        assert_eq!(o.status.code(), Some(code), "{file}: {}", stdout(&o));
        assert_eq!(stdout(&o).lines().last(), Some(verdict), "{file}");
    }
    let malformed = data.join("malformed.edn").display().to_string();
    let o = faultline(&scratch("check"), &["check", &malformed], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("malformed.edn:2:"), "{}", stderr(&o));
}

/// `shrink` on a failing seed: exit 1, each step printed, schedule.min.toml written
/// beside the seed's artifacts, and its printed replay command fails the same check.
#[test]
fn shrink_writes_a_smaller_schedule_whose_replay_fails_the_same_check() {
    let dir = scratch("shrink");
    let args = [
        "shrink",
        "broadcast-crash",
        "--seed",
        "1",
        "--bug",
        "ack-before-sync",
    ];
    let o = faultline(&dir, &args, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("failure kept: invariant `broadcast-durability`"),
        "{out}"
    );
    let line = out.lines().find(|l| l.starts_with("faults ")).unwrap();
    let counts: Vec<usize> = line["faults ".len()..]
        .split(',')
        .next()
        .unwrap()
        .split(" -> ")
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(counts[1] < counts[0], "{line}");
    let schedule = dir.join("results/broadcast-crash/seed-1/schedule.min.toml");
    assert!(schedule.exists());
    let replay = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: faultline "))
        .expect("a replay line");
    let replay_args: Vec<&str> = replay.split_whitespace().collect();
    let o = faultline(&dir, &replay_args, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("`broadcast-durability`"));
}

/// `shrink` on a seed that passes says so, exits 0 and writes nothing.
#[test]
fn shrink_on_a_passing_seed_writes_nothing() {
    let dir = scratch("shrink-pass");
    let o = faultline(&dir, &["shrink", "broadcast-crash", "--seed", "1"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("seed 1 passes: nothing to shrink"));
    assert!(!dir.join("results").exists());
}

#[test]
fn a_sweep_writes_artifacts_for_at_most_artifacts_max_failing_seeds() {
    let dir = scratch("artifacts-max");
    let o = faultline(
        &dir,
        &[
            "run",
            "raft-election",
            "--bug",
            "vote-not-persisted",
            "--seeds",
            "0..4",
            "--jobs",
            "1",
            "--artifacts-max",
            "1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("failed: 4"), "{out}");
    let written = std::fs::read_dir(dir.join("results/raft-election"))
        .unwrap()
        .count();
    assert_eq!(written, 1, "{out}");
    assert_eq!(
        out.matches("artifacts: none (--artifacts-max reached")
            .count(),
        3,
        "{out}"
    );
}
