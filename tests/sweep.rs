//! Sweeps: failures grouped by signature, `run --shard I/N`, `faultline merge`, and a
//! sharded sweep run as a Slurm job array (deploy/slurm/) merged into the summary one
//! process gives.
//!
//! The Slurm test needs `sbatch` and a cluster that runs jobs (`.ci/slurm-up` starts a
//! one-node one); without `sbatch` it is skipped, unless FAULTLINE_REQUIRE_SLURM is set
//! (as `.ci/run` sets it), when it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A fast scenario with a bug that fails about a third of its seeds.
const SCENARIO: &str = "broadcast-crash";
const BUG: &str = "ack-before-sync";
const SEEDS: &str = "0..200";

fn faultline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run faultline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\nstderr:\n{}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

/// The `run` flags of every sweep here: the bug, and no artifacts (which failing
/// seeds get them depends on which finish first, so they differ between shards and
/// one process).
fn run_args<'a>(seeds: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        SCENARIO,
        "--seeds",
        seeds,
        "--bug",
        BUG,
        "--artifacts-max",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    args
}

/// The 200-seed sweep in one process, run once for all the tests here.
fn one_process() -> &'static Value {
    static SUMMARY: OnceLock<Value> = OnceLock::new();
    SUMMARY.get_or_init(|| {
        let o = faultline(&scratch("one"), &run_args(SEEDS, &[]));
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        json(&o)
    })
}

/// A summary without its wall-clock times, which differ from run to run.
fn without_wall_times(mut summary: Value) -> Value {
    let top = summary.as_object_mut().expect("a summary is an object");
    assert!(top.remove("wall_ms").is_some());
    for run in summary["runs"].as_array_mut().expect("runs") {
        let run = run.as_object_mut().unwrap();
        assert!(run.remove("wall_ms").is_some());
        assert!(run.remove("check_wall_ms").is_some());
    }
    summary
}

/// The merged summary equals the one-process one, but for wall times; the totals,
/// failing seeds, groups and metric aggregates are compared first, for a readable
/// message.
fn assert_same_sweep(merged: &Value, one: &Value) {
    for field in [
        "seeds_run",
        "passed",
        "failed",
        "unknown",
        "shown",
        "failing_seeds",
        "groups",
        "sweep_failures",
        "sim_ms",
        "metrics",
        "fault_effects",
        "sometimes",
    ] {
        assert_eq!(merged[field], one[field], "`{field}` differs");
    }
    assert!(merged.get("shard").is_none(), "a merged sweep is no shard");
    assert_eq!(
        without_wall_times(merged.clone()),
        without_wall_times(one.clone())
    );
}

#[test]
fn failures_are_grouped_by_signature_with_their_smallest_seed() {
    let one = one_process();
    let failed = one["failed"].as_u64().unwrap();
    assert!(failed > 10, "the bug fails many seeds: {failed}");
    let groups = one["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    let counted: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, failed, "the groups' counts add up to the failures");
    let mut in_groups = BTreeSet::new();
    for g in groups {
        let seeds: Vec<u64> = g["seeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        assert_eq!(g["count"].as_u64().unwrap(), seeds.len() as u64);
        assert_eq!(g["smallest_seed"].as_u64(), seeds.iter().min().copied());
        let signature = g["signature"].as_str().unwrap();
        let check = g["check"].as_str().unwrap();
        assert!(signature.starts_with(&format!("{check}: ")), "{signature}");
        assert!(
            !signature.chars().any(|c| c.is_ascii_digit()),
            "no numbers in a signature: {signature}"
        );
        for seed in seeds {
            let run = &one["runs"][seed as usize];
            assert_eq!(run["seed"].as_u64(), Some(seed));
            assert_eq!(run["status"], "failed");
            assert_eq!(run["signature"].as_str(), Some(signature));
            assert_eq!(run["failure"]["check"].as_str(), Some(check));
            assert!(in_groups.insert(seed), "seed {seed} in two groups");
        }
    }
    let failing: BTreeSet<u64> = one["failing_seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(in_groups, failing);
    for run in one["runs"].as_array().unwrap() {
        assert_eq!(run["failure"].is_null(), run.get("signature").is_none());
    }
}

#[test]
fn the_human_summary_lists_each_group_after_the_failing_seeds() {
    let dir = scratch("human");
    let o = faultline(
        &dir,
        &[
            "run",
            SCENARIO,
            "--seeds",
            "0..20",
            "--bug",
            BUG,
            "--artifacts-max",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("failing seeds: ["))
        .unwrap_or_else(|| panic!("no failing seeds line:\n{out}"));
    let smallest: u64 = lines[at]["failing seeds: [".len()..]
        .split([',', ']'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lines[at + 1].starts_with("failures by signature"), "{out}");
    let group = lines[at + 2];
    assert!(
        group.contains(&format!("seed {smallest} "))
            && group.contains("broadcast-durability: node N lost N delivered values"),
        "{out}"
    );
}

#[test]
fn a_bad_shard_is_a_usage_error() {
    let dir = scratch("bad-shard");
    for (shard, why) in [
        ("4/4", "I must be below N"),
        ("1/0", "N must be at least 1"),
        ("two/4", "I is not a number"),
        ("1", "no `/`"),
    ] {
        let o = faultline(
            &dir,
            &["run", SCENARIO, "--seeds", "0..8", "--shard", shard],
        );
        assert_eq!(o.status.code(), Some(2), "--shard {shard}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("--shard {shard}: {why}")) && err.contains("0 <= I < N"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn four_shards_merge_into_the_one_process_sweep() {
    let dir = scratch("merge");
    let mut files = Vec::new();
    let mut seeds_run = 0;
    for i in 0..4 {
        let shard = format!("{i}/4");
        let o = faultline(&dir, &run_args(SEEDS, &["--shard", &shard]));
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            text(&o.stderr)
        );
        let summary = json(&o);
        assert_eq!(summary["shard"]["index"], i);
        assert_eq!(summary["shard"]["count"], 4);
        assert_eq!(summary["shard"]["seeds"], SEEDS);
        for run in summary["runs"].as_array().unwrap() {
            assert_eq!(run["seed"].as_u64().unwrap() % 4, i, "shard {shard}");
        }
        seeds_run += summary["seeds_run"].as_u64().unwrap();
        let file = dir.join(format!("shard-{i}.json"));
        std::fs::write(&file, &o.stdout).unwrap();
        files.push(file.display().to_string());
    }
    assert_eq!(seeds_run, 200);
    // In any order.
    files.reverse();
    let mut args = vec!["merge"];
    args.extend(files.iter().map(String::as_str));
    let o = faultline(&dir, &args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the one-process sweep's exit code: {}",
        text(&o.stderr)
    );
    assert_same_sweep(&json(&o), one_process());

    // --human adds the human summary, on stderr.
    args.insert(1, "--human");
    let o = faultline(&dir, &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("seeds run: 200"),
        "{}",
        text(&o.stderr)
    );
    assert_same_sweep(&json(&o), one_process());

    // Bad input: exit 2, naming the file.
    let merge_error = |files: &[&str]| {
        let mut args = vec!["merge"];
        args.extend_from_slice(files);
        let o = faultline(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "merge {files:?}");
        assert!(o.stdout.is_empty());
        text(&o.stderr)
    };
    let [s3, s2, s1, s0] = [&files[0], &files[1], &files[2], &files[3]].map(String::as_str);
    let e = merge_error(&[s0, s1, s2]);
    assert!(e.contains("missing: 3/4"), "{e}");
    let e = merge_error(&[s0, s1, s2, s3, s1]);
    assert!(e.contains(&format!("{s1}: shard 1/4 again")), "{e}");
    std::fs::write(dir.join("broken.json"), "{\"scenario\":").unwrap();
    let e = merge_error(&[s0, "broken.json"]);
    assert!(
        e.contains("broken.json: not a `faultline run --json` summary"),
        "{e}"
    );
    let e = merge_error(&[s0, "absent.json"]);
    assert!(e.contains("cannot read absent.json"), "{e}");
    // Another bug, or another scenario (one seed is enough: the summaries' heads
    // differ).
    for (what, args) in [
        (
            "bugs",
            [SCENARIO, "--bug", BUG, "--bug", "no-retransmit"].as_slice(),
        ),
        ("scenario", ["broadcast-lossy"].as_slice()),
    ] {
        let mut run = vec!["run"];
        run.extend_from_slice(args);
        run.extend_from_slice(&["--seeds", "3..4", "--json", "--artifacts-max", "0"]);
        let o = faultline(&dir, &run);
        assert!(
            o.status.code().is_some_and(|c| c != 2),
            "{}",
            text(&o.stderr)
        );
        let other = dir.join(format!("other-{what}.json"));
        std::fs::write(&other, &o.stdout).unwrap();
        let other = other.display().to_string();
        let e = merge_error(&[s0, &other]);
        assert!(e.contains(&format!("{other}: {what} ")), "{e}");
    }
    // Overlapping seeds, without shards: the same whole sweep twice.
    let one = dir.join("one.json");
    std::fs::write(&one, serde_json::to_string(one_process()).unwrap()).unwrap();
    let one = one.display().to_string();
    let e = merge_error(&[&one, &one]);
    assert!(
        e.contains("seed 0 is also in") && e.contains("overlap"),
        "{e}"
    );
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Waits for `child` at most `limit`; kills it and panics after.
fn wait_for(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!(
                "{what} still running after {limit:?}; is the Slurm node up (sinfo)?\n{}{}",
                text(&o.stdout),
                text(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_slurm_job_array_of_four_shards_merges_into_the_one_process_sweep() {
    if !on_path("sbatch") {
        if std::env::var_os("FAULTLINE_REQUIRE_SLURM").is_some() {
            panic!("FAULTLINE_REQUIRE_SLURM is set but sbatch is not on PATH: run .ci/slurm-up");
        }
        eprintln!(
            "\n*** SKIPPED a_slurm_job_array_of_four_shards_merges_into_the_one_process_sweep: \
             sbatch is not on PATH (run .ci/slurm-up for a one-node cluster, or set \
             FAULTLINE_REQUIRE_SLURM=1 to make this a failure) ***\n"
        );
        return;
    }
    let dir = scratch("slurm");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm");
    let sbatch = |args: &[&str]| {
        let mut command = Command::new("sbatch");
        command
            .args(args)
            .current_dir(&dir)
            .env("FAULTLINE", env!("CARGO_BIN_EXE_faultline"))
            .env("FAULTLINE_OUT", "out")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("run sbatch")
    };
    let array = sbatch(&[
        "--parsable",
        "--array=0-3",
        deploy.join("sweep.sbatch").to_str().unwrap(),
        SCENARIO,
        SEEDS,
        "--bug",
        BUG,
        "--artifacts-max",
        "0",
    ]);
    let o = wait_for(array, Duration::from_secs(60), "sbatch --array");
    assert!(o.status.success(), "sbatch: {}", text(&o.stderr));
    let job = text(&o.stdout);
    let job = job.trim().split(';').next().unwrap().to_string();
    assert!(job.chars().all(|c| c.is_ascii_digit()), "job id {job:?}");
    // The merge runs once every task has ended, failing or not; --wait returns its
    // exit code.
    let merge = sbatch(&[
        "--wait",
        &format!("--dependency=afterany:{job}"),
        deploy.join("merge.sbatch").to_str().unwrap(),
    ]);
    let o = wait_for(merge, Duration::from_secs(900), "the Slurm sweep");
    let logs = || {
        let mut all = String::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "out") {
                all += &format!("== {}\n", path.display());
                all += &std::fs::read_to_string(&path).unwrap_or_default();
            }
        }
        all
    };
    assert_eq!(
        o.status.code(),
        Some(1),
        "the merge job exits as the one-process sweep does\n{}\n{}",
        text(&o.stderr),
        logs()
    );
    for i in 0..4 {
        assert!(
            dir.join(format!("out/shard-{i}.json")).is_file(),
            "{}",
            logs()
        );
    }
    let merged = std::fs::read(dir.join("out/merged.json")).expect("out/merged.json");
    let merged: Value = serde_json::from_slice(&merged).unwrap();
    assert_same_sweep(&merged, one_process());
    assert!(logs().contains("seeds run: 200"), "{}", logs());
}

const K8S_JOB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s/sweep-job.yaml");

/// The pod script of the Kubernetes Job, as its spec gives it: the lines of the
/// container's `args: - |` block, dedented, with the Job's `SHARDS` value.
fn k8s_pod_script(yaml: &str) -> (String, usize) {
    // A `key: value` line's value, unquoted.
    let value = |line: &str| -> String {
        let (_, v) = line.split_once(':').expect("a `key: value` line");
        v.trim().trim_matches('"').to_string()
    };
    let field = |key: &str| -> String {
        value(
            yaml.lines()
                .find(|l| l.trim_start().starts_with(&format!("{key}:")))
                .unwrap_or_else(|| panic!("no `{key}` in the manifest")),
        )
    };
    assert_eq!(field("completionMode"), "Indexed");
    let lines: Vec<&str> = yaml.lines().collect();
    let shards_at = lines
        .iter()
        .position(|l| l.trim() == "- name: SHARDS")
        .expect("a SHARDS variable");
    let shards: usize = value(lines[shards_at + 1])
        .parse()
        .expect("SHARDS is a number");
    assert_eq!(field("completions").parse::<usize>().unwrap(), shards);
    assert_eq!(field("parallelism").parse::<usize>().unwrap(), shards);
    let start = lines
        .iter()
        .position(|l| l.trim() == "- |")
        .expect("the args block")
        + 1;
    let body: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with("resources:"))
        .copied()
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("a script");
    let script = body
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    (script, shards)
}

/// The Kubernetes Indexed Job's pods, run as Kubernetes runs them (no cluster here):
/// each pod's script with its `JOB_COMPLETION_INDEX`, the Job's environment and the
/// shared volume mounted at /out (here a scratch folder), then `faultline merge` of
/// the shards. The merged summary equals the one-process sweep; a pod whose shard
/// found failing seeds still succeeds (the merge judges the sweep), and one given bad
/// input exits 2, which the manifest's `podFailurePolicy` turns into a failed Job.
#[test]
fn the_kubernetes_indexed_job_pods_merge_into_the_one_process_sweep() {
    let yaml = std::fs::read_to_string(K8S_JOB).unwrap();
    let (script, shards) = k8s_pod_script(&yaml);
    assert!(script.contains("$JOB_COMPLETION_INDEX/$SHARDS"), "{script}");
    let dir = scratch("k8s");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let script = script.replace("/out", out.to_str().unwrap());
    let bin = Path::new(env!("CARGO_BIN_EXE_faultline")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pod = |index: usize, scenario: &str| {
        Command::new("/bin/sh")
            .args(["-c", &script])
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .env("PATH", &path)
            .env("SCENARIO", scenario)
            .env("SEEDS", SEEDS)
            .env("SHARDS", shards.to_string())
            .env(
                "RUN_ARGS",
                format!("--bug {BUG} --artifacts-max 0").as_str(),
            )
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .expect("run the pod script")
    };
    for i in 0..shards {
        let o = pod(i, SCENARIO);
        assert_eq!(o.status.code(), Some(0), "pod {i}: {}", text(&o.stderr));
        let status = std::fs::read_to_string(out.join(format!("shard-{i}.status"))).unwrap();
        assert!(["0", "1"].contains(&status.trim()), "pod {i}: {status}");
    }
    let files: Vec<String> = (0..shards)
        .map(|i| out.join(format!("shard-{i}.json")).display().to_string())
        .collect();
    let mut args = vec!["merge"];
    args.extend(files.iter().map(String::as_str));
    let merged = faultline(&dir, &args);
    assert_eq!(merged.status.code(), Some(1), "{}", text(&merged.stderr));
    assert_same_sweep(&json(&merged), one_process());

    let bad = pod(0, "no-such-scenario");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        yaml.contains("action: FailJob") && yaml.contains("values: [2]"),
        "exit 2 fails the Job"
    );
}
