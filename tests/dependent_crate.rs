//! faultline from a crate of its own, as its users have it: a scratch crate in a
//! temporary folder, with a protocol, scenarios, tests and a `src/bin/sim.rs`, depends
//! on this one by path. Its `cargo test` passes one test and fails one with an injected
//! bug; the replay commands the failure prints work; its binary lists, runs and replays
//! its scenarios.
//!
//! Cost: the scratch crate builds offline into this crate's target directory, with the
//! same profile settings and features as faultline's own `cargo test`, so faultline and
//! its dependencies are reused and only the scratch crate compiles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The scratch crate's files (`tests/dependent-crate/`), by their path in it.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("dependent-crate/Cargo.toml.in")),
    (
        ".cargo/config.toml",
        include_str!("dependent-crate/.cargo/config.toml"),
    ),
    ("src/lib.rs", include_str!("dependent-crate/src/lib.rs")),
    (
        "src/bin/sim.rs",
        include_str!("dependent-crate/src/bin/sim.rs"),
    ),
    (
        "tests/ticker.rs",
        include_str!("dependent-crate/tests/ticker.rs"),
    ),
    (
        "scenarios/ticker-crash.toml",
        include_str!("dependent-crate/scenarios/ticker-crash.toml"),
    ),
    (
        "scenarios/ticker-forget.toml",
        include_str!("dependent-crate/scenarios/ticker-forget.toml"),
    ),
];

/// faultline's dev-dependencies, as its Cargo.toml gives them: the scratch crate
/// declares them too, so that features resolve as in faultline's own test build.
fn dev_dependencies() -> String {
    let manifest: toml::Table =
        toml::from_str(include_str!("../Cargo.toml")).expect("Cargo.toml parses");
    let dev = manifest["dev-dependencies"].as_table().expect("a table");
    dev.iter()
        .map(|(name, spec)| format!("{name} = {spec}\n"))
        .collect()
}

struct Scratch {
    dir: PathBuf,
    target: PathBuf,
}

impl Scratch {
    fn create() -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("faultline-dependent-crate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let faultline = env!("CARGO_MANIFEST_DIR");
        for (path, text) in FILES {
            let text = text
                .replace("@FAULTLINE@", faultline)
                .replace("@DEV_DEPENDENCIES@", &dev_dependencies());
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        // The same versions as faultline's own build, resolved without a registry.
        std::fs::copy(
            Path::new(faultline).join("Cargo.lock"),
            dir.join("Cargo.lock"),
        )
        .unwrap();
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .to_path_buf();
        Scratch { dir, target }
    }

    /// Runs a command line as a user would type it in the crate's folder, with any
    /// leading `NAME=value` words as its environment.
    fn sh(&self, line: &str) -> Output {
        let mut words = line.split_whitespace().peekable();
        let mut env = Vec::new();
        while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
            env.push((name.to_string(), value.to_string()));
            words.next();
        }
        let program = words.next().expect("a command");
        let program = match program {
            "cargo" => std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            other => other.into(),
        };
        let start = Instant::now();
        let output = Command::new(program)
            .args(words)
            .envs(env)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        eprintln!("{:>6.1} s  {line}", start.elapsed().as_secs_f64());
        output
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The rest of the line after `marker`, in the first line holding it.
fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in:\n{text}"));
    text[start + marker.len()..].lines().next().unwrap().trim()
}

/// The replay lines say `cargo run --release`; run here without `--release`, which
/// would build faultline and its dependencies a second time, in target/release.
fn debug_build(line: &str) -> String {
    line.replacen(" --release", "", 1)
}

#[test]
fn a_crate_of_its_own_tests_and_replays_its_protocol() {
    let scratch = Scratch::create();

    // cargo test: one test passes, the one with the injected bug fails with replay lines.
    let tests = scratch.sh("cargo test");
    let out = text(&tests);
    assert_eq!(tests.status.code(), Some(101), "{out}");
    assert!(out.contains("test ticks_survive_crashes ... ok"), "{out}");
    assert!(
        out.contains("test forgetting_the_disk_is_caught ... FAILED"),
        "{out}"
    );
    assert!(out.contains("durable-count"), "{out}");
    let rerun = after(&out, "rerun this test on that seed: ").to_string();
    let replay = after(&out, "replay it with a full trace:  ").to_string();
    assert!(
        rerun.starts_with("FAULTLINE_SEED=")
            && rerun.ends_with(" cargo test forgetting_the_disk_is_caught"),
        "{rerun}"
    );
    assert!(
        replay.starts_with("cargo run --release --bin sim -- replay scenarios/ticker-forget.toml"),
        "{replay}"
    );
    let seed = after(&out, "failed at seed ")
        .split(' ')
        .next()
        .unwrap()
        .to_string();

    // The rerun line runs that test on that seed alone, and it fails again.
    let again = scratch.sh(&rerun);
    let again_out = text(&again);
    assert_eq!(again.status.code(), Some(101), "{again_out}");
    assert!(
        again_out.contains(&format!("failed at seed {seed} (1 of 1 seeds failed")),
        "{again_out}"
    );

    // The replay line traces the seed and finds the same failure.
    let replayed = scratch.sh(&debug_build(&replay));
    let replayed_out = text(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "{replayed_out}");
    assert!(
        replayed_out.contains("scenario ticker-forget (ticker with bugs forget-on-restart"),
        "{replayed_out}"
    );
    assert!(
        replayed_out.contains(" crash "),
        "the full trace: {replayed_out}"
    );
    assert!(
        replayed_out.contains(&format!("seed {seed}: ")),
        "{replayed_out}"
    );
    assert!(replayed_out.contains("trace-hash: "), "{replayed_out}");

    // The binary: its own scenarios beside the shipped ones, its bugs, run and replay.
    let list = text(&scratch.sh("cargo run --bin sim -- list"));
    for name in ["ticker-crash", "ticker-forget", "raft-nemesis"] {
        assert!(list.contains(name), "{list}");
    }
    let bugs = text(&scratch.sh("cargo run --bin sim -- bugs"));
    assert!(bugs.contains("forget-on-restart"), "{bugs}");
    assert!(bugs.contains("ack-before-sync"), "{bugs}");
    let passing = scratch.sh("cargo run --bin sim -- run ticker-crash --seeds 0..3");
    let passing_out = text(&passing);
    assert_eq!(passing.status.code(), Some(0), "{passing_out}");
    assert!(
        passing_out.contains("seeds run: 3  passed: 3"),
        "{passing_out}"
    );
    let failing = scratch.sh("cargo run --bin sim -- run ticker-forget --seeds 0..2");
    let failing_out = text(&failing);
    assert_eq!(failing.status.code(), Some(1), "{failing_out}");
    let replay = after(&failing_out, "  replay: ").to_string();
    assert!(
        replay.starts_with(
            "cargo run --release --bin sim -- replay scenarios/ticker-forget.toml --seed "
        ),
        "{replay}"
    );
    let replayed = scratch.sh(&debug_build(&replay));
    let replayed_out = text(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "{replayed_out}");
    assert!(replayed_out.contains("durable-count"), "{replayed_out}");
}
