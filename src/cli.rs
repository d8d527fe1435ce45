//! The `faultline` command line: `list`, `run`, `merge`, `replay`, `bugs` and `check`,
//! for the built-in protocols and for any others a crate adds.
//!
//! Exit codes: 0 every seed passed, 1 a seed failed, 2 bad input or usage, 3 a verdict
//! is unknown.
//!
//! A crate with a protocol of its own gets the whole command line from a three-line
//! binary, `src/bin/sim.rs`:
//!
//! ```no_run
//! # mod my_protocol { pub type MySystem = faultline::broadcast::Broadcast; }
//! fn main() -> std::process::ExitCode {
//!     faultline::cli::Cli::new().protocol::<my_protocol::MySystem>().run()
//! }
//! ```
//!
//! `cargo run --release --bin sim -- run my-scenario --seeds 0..100` then runs
//! `scenarios/my-scenario.toml` of that crate, and the replay lines it prints are
//! `cargo run --release --bin sim -- replay ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::registry::{self, Protocol};
use crate::run::{RunRequest, Shard, Status, Summary};
use crate::scenario::{Scenario, ScenarioError, Schedule};
use crate::system::System;
use crate::testing::parse_seed_range;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Deterministic simulation testbed for distributed protocols"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per scenario, in ./scenarios and faultline's own: its name, then its
    /// description.
    List,
    /// Run a scenario over one seed or a range of seeds.
    Run {
        #[command(flatten)]
        target: Target,
        /// A range of seeds, A..B (B excluded) [default: 0..20].
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<String>,
        /// Run only shard I of N (0 <= I < N) of the seeds: those s with s % N == I.
        /// Each shard's `--json` summary says which it is; `faultline merge` makes the
        /// sweep's summary of them. A shard's exit code judges its seeds alone.
        #[arg(long, value_name = "I/N", conflicts_with = "seed")]
        shard: Option<String>,
        /// Seeds run at once [default: the number of cores].
        #[arg(long)]
        jobs: Option<usize>,
        /// Run every seed twice, on fresh threads, and fail on any difference.
        #[arg(long)]
        check_determinism: bool,
        /// Keep the artifacts of every seed, not only failing ones.
        #[arg(long)]
        keep: bool,
        /// Write the artifacts of at most this many failing seeds (a trace and a
        /// report each, megabytes); replay the others.
        #[arg(long, default_value_t = 20)]
        artifacts_max: usize,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        traces: Traces,
    },
    /// Merge the `run --json` summaries of a sweep's shards (`run --shard I/N`, or
    /// disjoint seed ranges) into the summary one run over all their seeds gives, as
    /// JSON on stdout; its exit code is that run's (0 passed, 1 a seed failed, 3
    /// unknown). Exit 2 if a file cannot be read, or the summaries are of different
    /// scenarios or bugs, overlap, or leave out a shard.
    Merge {
        /// The summaries, one per shard.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also print the human summary of the merged sweep, on stderr.
        #[arg(long)]
        human: bool,
    },
    /// Rerun one seed with full tracing (filter with RUST_LOG, e.g. RUST_LOG=faultline=info).
    Replay {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        traces: Traces,
    },
    /// Shrink a failing seed: the smallest fault schedule found that still fails the
    /// same check (the fault phase ended at the failure, delta debugging over the
    /// faults, small subsets of them, then shorter and later faults, fewer nodes per
    /// fault, a shorter fault phase, fewer clients). Prints each
    /// accepted step, writes schedule.min.toml beside the seed's artifacts, and the
    /// replay command. Exit 1 when the seed fails (and was shrunk), 0 when it passes
    /// (nothing is written), 2 on bad input.
    Shrink {
        #[command(flatten)]
        target: Target,
    },
    /// Guided exploration: spend a budget of runs on fresh seeds and on forks of the
    /// runs that reached rare `sometimes` marks or fault effects (their faults up to a
    /// random cut, then new random faults). Prints each failure found with its replay
    /// command and writes its schedule under results/SCENARIO/explore/. Deterministic
    /// for a given --seed. Exit 1 when a run failed, 0 when none did, 2 on bad input.
    Explore {
        /// A scenario file, or the name of one in scenarios/.
        scenario: String,
        /// Runs to spend.
        #[arg(long, default_value_t = 200)]
        budget: usize,
        /// The explorer's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Inject a bug by name (see `faultline bugs`); repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// The share of runs spent on forks once some run reached something new.
        #[arg(long, default_value_t = 0.5)]
        fork_share: f64,
        /// Runs at once [default: the number of cores]; the result does not depend on it.
        #[arg(long)]
        jobs: Option<usize>,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// One line per injectable bug: NAME SCENARIO description.
    Bugs,
    /// Check history files for linearizability: Jepsen/Knossos EDN (op maps, one per
    /// line, pretty-printed or in one vector), Jepsen history.txt, Jepsen console logs,
    /// or faultline's history.jsonl. One file: a full report, the verdict last. Several:
    /// one line per file and a summary. Exit 0 all linearizable, 1 some not, 2 bad input,
    /// 3 unknown.
    Check(CheckArgs),
    /// Write DIR/report.html: one self-contained page picturing a seed's run from its
    /// artifacts (DIR is results/SCENARIO/seed-N): messages, faults, the protocol's
    /// leaders or views, the client history and the failure. Exit 2 if DIR lacks an
    /// artifact or one is malformed.
    Report {
        /// A seed's artifact folder.
        dir: PathBuf,
    },
    /// The lesson catalogue: without NAME, one line per lesson; with NAME, the
    /// lesson printed, run (its scenario at its seed, with its bug, replaying its
    /// shrunk schedule) and judged against the catalogue, artifacts written. Exit 0
    /// as the catalogue says, 1 otherwise, 2 unknown lesson or bad input.
    Lessons {
        /// A lesson's name.
        name: Option<String>,
    },
    /// Run every discovery design (etcd, Consul, gossip-only) under the same faults
    /// (`scenarios/discovery-<design>-<fault>.toml`) over seeds 0..N and write the
    /// table of their discovery figures as Markdown. Exit 0 when written (whatever
    /// the seeds' verdicts, which the table shows), 2 on bad arguments or a file that
    /// cannot be written.
    CompareDiscovery {
        /// Seeds per scenario (1 to 1000); the default's table takes about 15 s on
        /// 2 cores in release.
        #[arg(long, default_value_t = 50)]
        seeds: u64,
        /// Where the table goes.
        #[arg(long, default_value = "results/discovery.md")]
        out: PathBuf,
        /// Seeds run at once [default: the number of cores]; the table does not
        /// depend on it.
        #[arg(long)]
        jobs: Option<usize>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Model {
    /// get/put/append/delete/cas per key (Porcupine's kv)
    Kv,
    /// read/write on one register, or one per key (Knossos's register)
    Register,
    /// read/write/cas on one register, or one per key (Knossos's cas-register)
    CasRegister,
}

#[derive(clap::Args)]
struct Traces {
    /// Write request traces (each client operation a trace of the steps it caused on
    /// each node, in simulated time) to FILE.otlp.json (OpenTelemetry JSON, for Jaeger
    /// or an OTLP collector) and FILE.chrome.json (Chrome trace events, for Perfetto or
    /// chrome://tracing); a .json ending of FILE is dropped first. With several seeds,
    /// one pair per seed: FILE.seed-N.otlp.json and FILE.seed-N.chrome.json. Each
    /// seed runs once more, recording.
    #[arg(long, value_name = "FILE")]
    traces: Option<PathBuf>,
}

#[derive(clap::Args)]
struct Target {
    /// A scenario file, or the name of one in scenarios/.
    scenario: String,
    /// Run this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run this fault schedule (as written to schedule.toml) instead of the scenario's.
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// Inject a bug by name (see `faultline bugs`); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
}

/// The command line of the `faultline` binary: [`Cli::new`] run on the process's
/// arguments.
pub fn main() -> ExitCode {
    Cli::new().run()
}

/// A command line over a set of protocols: the built-in ones and those added with
/// [`Cli::protocol`].
#[derive(Debug)]
pub struct Cli {
    protocols: Vec<Protocol>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli::new()
    }
}

impl Cli {
    /// The built-in protocols ([`registry::protocols`]).
    pub fn new() -> Cli {
        Cli {
            protocols: registry::protocols(),
        }
    }

    /// Adds system `S`: scenarios whose `cluster.protocol` is [`System::NAME`] run it,
    /// and `bugs` lists its bugs. A name already known is replaced.
    pub fn protocol<S: System>(self) -> Cli {
        self.with(registry::entry::<S>())
    }

    /// Adds a protocol entry (see [`registry::entry`]); a name already known is
    /// replaced.
    pub fn with(mut self, protocol: Protocol) -> Cli {
        self.protocols.retain(|p| p.name != protocol.name);
        self.protocols.push(protocol);
        self
    }

    /// The protocols this command line knows, built-in first.
    pub fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }

    /// Parses the process's arguments and runs the command; the exit code is the
    /// command's (0 passed, 1 a seed failed, 2 bad input or usage, 3 unknown). Usage
    /// errors print clap's message and exit 2.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Like [`Cli::run`], on the given arguments (the first is the program's name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let program = args.first().cloned();
        let parsed = Args::parse_from(args);
        let context = Invocation {
            protocols: self.protocols,
            replay: replay_prefix(program.as_deref()),
        };
        ExitCode::from(context.execute(parsed.command))
    }
}

/// What a command runs with: the protocols, and how to print a replay command that
/// works where it is printed.
struct Invocation {
    protocols: Vec<Protocol>,
    /// `faultline replay`, or `cargo run --release --bin sim -- replay`.
    replay: String,
}

/// The replay command of the running binary: `faultline replay` for faultline's own
/// (as the README writes it); for another binary run by cargo, the `cargo run` line
/// that runs it again; otherwise the program as it was invoked.
fn replay_prefix(program: Option<&std::ffi::OsStr>) -> String {
    let program = program.map(Path::new);
    let stem = program
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("faultline");
    if stem == "faultline" {
        return "faultline replay".into();
    }
    // `cargo run` and `cargo test` set CARGO_MANIFEST_DIR for the program they run.
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        return format!("cargo run --release --bin {stem} -- replay");
    }
    let shown = program.map_or(stem.into(), |p| p.display().to_string());
    format!("{shown} replay")
}

impl Invocation {
    fn execute(&self, command: Command) -> u8 {
        match command {
            Command::List => list(),
            Command::Bugs => bugs(self),
            Command::Run {
                target,
                seeds,
                shard,
                jobs,
                check_determinism,
                keep,
                artifacts_max,
                json,
                traces,
            } => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let options = RunOptions {
                    seeds,
                    shard,
                    jobs: jobs.unwrap_or(cores),
                    check_determinism,
                    keep,
                    artifacts_max,
                    json,
                    traces: traces.traces,
                };
                run(self, &target, &options)
            }
            Command::Merge { files, human } => merge(self, &files, human),
            Command::Replay { target, traces } => replay(self, &target, traces.traces),
            Command::Shrink { target } => shrink(self, &target),
            Command::Explore {
                scenario,
                budget,
                seed,
                bugs,
                fork_share,
                jobs,
                json,
            } => {
                let request = crate::explore::ExploreRequest {
                    budget,
                    seed,
                    bugs,
                    fork_share,
                    jobs: jobs.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    }),
                };
                explore(self, &scenario, &request, json)
            }
            Command::Check(args) => check(&args),
            Command::Report { dir } => match crate::report::write(&dir) {
                Ok(path) => {
                    println!("report: {}", path.display());
                    0
                }
                Err(e) => {
                    eprintln!("faultline: {e}");
                    e.exit_code() as u8
                }
            },
            Command::Lessons { name } => lessons(self, name.as_deref()),
            Command::CompareDiscovery { seeds, out, jobs } => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let request = crate::compare::CompareRequest {
                    seeds,
                    jobs: jobs.unwrap_or(cores),
                    out,
                };
                compare_discovery(&request)
            }
        }
    }
}

fn compare_discovery(request: &crate::compare::CompareRequest) -> u8 {
    // The folder first: a bad --out fails before minutes of runs.
    let out = &request.out;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage(format!("--out {}: {e}", out.display()));
        }
    }
    let rows = crate::compare::compare(request, |r| {
        eprintln!("{} {}: {}/{} passed", r.design, r.fault, r.passed, r.seeds)
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return usage(e),
    };
    let text = crate::compare::render(&rows, request.seeds);
    match std::fs::write(out, text) {
        Ok(()) => {
            println!("wrote {}", out.display());
            0
        }
        Err(e) => usage(format!("--out {}: {e}", out.display())),
    }
}

fn usage(message: impl std::fmt::Display) -> u8 {
    eprintln!("faultline: {message}");
    2
}

/// The folders `list` reads, in order: `scenarios/` in the working directory (a
/// crate's own), then faultline's, where [`Scenario::find`] also looks.
fn scenario_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in [
        PathBuf::from("scenarios"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
    ] {
        let Ok(canonical) = dir.canonicalize() else {
            continue;
        };
        if canonical.is_dir()
            && !dirs
                .iter()
                .any(|d| d.canonicalize().ok() == Some(canonical.clone()))
        {
            dirs.push(dir);
        }
    }
    dirs
}

fn list() -> u8 {
    let dirs = scenario_dirs();
    if dirs.is_empty() {
        return usage("no scenarios/ folder here, and faultline's own is missing");
    }
    let mut code = 0;
    for dir in dirs {
        let mut paths: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect(),
            Err(e) => return usage(format!("cannot read {}: {e}", dir.display())),
        };
        paths.sort();
        for path in paths {
            match Scenario::load(&path) {
                Ok(s) => println!("{:<32} {}", s.name, s.description),
                Err(e) => code = usage(e),
            }
        }
    }
    code
}

#[derive(clap::Args)]
struct CheckArgs {
    /// History files to check; each gets its own verdict.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The model the operations are checked against.
    #[arg(long, value_enum, default_value = "kv")]
    model: Model,
    /// The initial value of the register, or of every kv key, as EDN (0, nil, "").
    #[arg(long)]
    initial: Option<String>,
    /// What an absent kv key reads as: nil, or "" (Porcupine); detected if not given.
    #[arg(long, value_name = "nil|\"\"")]
    absent_reads: Option<String>,
    /// Wall-clock seconds for the whole check; unfinished keys are `unknown`.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Memory for the searches, in bytes (suffixes K, M, G) [default: a quarter of
    /// the machine's]; unfinished keys are `unknown`.
    #[arg(long)]
    max_memory: Option<String>,
    /// Search steps per key before it is `unknown` (a bound that does not depend on
    /// the machine).
    #[arg(long, default_value_t = 1 << 30)]
    max_steps: u64,
    /// Worker threads [default: the number of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Check every key to the end, even once one fails (else the others are left
    /// unfinished after a bounded number of further steps).
    #[arg(long)]
    all_keys: bool,
    /// Per-file, per-key verdicts, timings and witnesses as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// The consistency ladder instead: which of linearizable, sequential, and the
    /// four session guarantees each history satisfies, with a counterexample for
    /// each that fails (see `faultline::check::ladder`). Exit 0 linearizable, 1 a
    /// rung broken, 2 bad input, 3 a rung unknown.
    #[arg(long)]
    ladder: bool,
}

/// `4G`, `512M`, `100K`, `1000`: bytes.
fn parse_bytes_arg(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn check(args: &CheckArgs) -> u8 {
    use crate::check::history_file::{AbsentReads, Options};
    use crate::check::linearizability::{default_memory_bytes_max, Limits};
    use crate::check::model::ModelKind;
    use crate::check::report;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 86_400.0) {
        return usage("--timeout must be a number of seconds between 0 and 86400");
    }
    let model = match args.model {
        Model::Kv => ModelKind::Kv,
        Model::Register => ModelKind::Register,
        Model::CasRegister => ModelKind::CasRegister,
    };
    let absent_reads = match args.absent_reads.as_deref() {
        None => AbsentReads::Auto,
        Some("nil") => AbsentReads::Nil,
        Some("" | "\"\"") => AbsentReads::Empty,
        Some(other) => return usage(format!("--absent-reads {other:?}: expected nil or \"\"")),
    };
    if absent_reads != AbsentReads::Auto && model != ModelKind::Kv {
        return usage("--absent-reads applies to the kv model only (registers use --initial)");
    }
    let memory_bytes_max = match args.max_memory.as_deref() {
        None => default_memory_bytes_max(),
        Some(m) => match parse_bytes_arg(m) {
            Some(b) if b > 0 => b,
            _ => {
                return usage(format!(
                    "--max-memory {m:?}: expected bytes, like 4G or 512M"
                ))
            }
        },
    };
    if args.jobs == Some(0) || args.max_steps == 0 {
        return usage("--jobs and --max-steps must be at least 1");
    }
    let options = Options {
        model,
        initial: args.initial.clone(),
        absent_reads,
    };
    let limits = Limits {
        key_steps_max: args.max_steps,
        timeout: Some(std::time::Duration::from_secs_f64(args.timeout)),
        memory_bytes_max,
        threads: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        all_keys: args.all_keys,
        ..Limits::default()
    };
    if args.ladder {
        return ladder(&args.files, &options, args.json);
    }
    let start = std::time::Instant::now();
    let results = report::check_files(&args.files, &options, &limits);
    let wall = start.elapsed();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::to_json(&results, wall)).expect("JSON")
        );
    } else if let [only] = results.as_slice() {
        match &only.result {
            Ok((h, o)) => print!("{}", report::render_text(h, o)),
            Err(e) => eprintln!("faultline: {e}"),
        }
    } else {
        for r in &results {
            println!("{}", report::render_line(r));
        }
        println!("{}", report::render_summary(&results, wall));
    }
    report::exit_code(&results) as u8
}

/// Counterexample operations printed under a ladder's table, at most.
const LADDER_OPS_SHOWN_MAX: usize = 40;

/// `check --ladder`: one table (or JSON object) per file.
fn ladder(files: &[PathBuf], options: &crate::check::history_file::Options, json: bool) -> u8 {
    use crate::check::ladder::{self, Budget};
    let mut codes = Vec::new();
    let mut out = Vec::new();
    for file in files {
        let h = match crate::check::history_file::load(file, options) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("faultline: {e}");
                codes.push(2);
                continue;
            }
        };
        let l = ladder::check(&h.problem, &Budget::default());
        codes.push(l.exit_code());
        if json {
            let mut j = l.to_json();
            j["file"] = serde_json::json!(file.display().to_string());
            out.push(j);
        } else {
            if files.len() > 1 {
                println!("{}:", file.display());
            }
            print!("{}", l.render_table());
            // The counterexamples' operations as the file writes them (their invokes).
            let mut shown: Vec<usize> = l
                .rungs
                .iter()
                .filter_map(|(_, v)| match v {
                    ladder::RungVerdict::Broken(c) => Some(c.ops.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            shown.sort_unstable();
            shown.dedup();
            let completions: std::collections::BTreeMap<usize, Option<usize>> = h
                .problem
                .keys
                .iter()
                .flat_map(|(_, ops)| ops.iter().map(|o| (o.invoke, o.completion)))
                .collect();
            for i in shown.into_iter().take(LADDER_OPS_SHOWN_MAX) {
                let line = h.sources.get(i).map_or(0, |s| s.line);
                println!("  #{i} (line {line}): {}", h.event_text(i));
                if let Some(Some(c)) = completions.get(&i) {
                    let line = h.sources.get(*c).map_or(0, |s| s.line);
                    println!("        (line {line}): {}", h.event_text(*c));
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    }
    let code = [2, 1, 3]
        .into_iter()
        .find(|c| codes.contains(c))
        .unwrap_or(0);
    code as u8
}

/// `lessons [NAME]`.
fn lessons(invocation: &Invocation, name: Option<&str>) -> u8 {
    use crate::lessons;
    let Some(name) = name else {
        let all = match lessons::catalogue() {
            Ok(all) => all,
            Err(e) => return usage(e),
        };
        for l in &all {
            let bug = l.bug.as_deref().unwrap_or("-");
            println!(
                "{:<28} {:<28} {:<24} seed {:<3} {}",
                l.name, l.scenario, bug, l.seed, l.title
            );
        }
        return 0;
    };
    let lesson = match lessons::find(name) {
        Ok(l) => l,
        Err(e) => return usage(e),
    };
    println!("lesson {}: {}", lesson.name, lesson.title);
    let bug = lesson
        .bug
        .as_ref()
        .map_or(String::new(), |b| format!(" --bug {b}"));
    println!(
        "scenario {} seed {}{bug}, schedule lessons/{} ({} faults before shrinking)",
        lesson.scenario, lesson.seed, lesson.schedule, lesson.faults_before
    );
    let run = match lessons::run(&lesson, &invocation.protocols, Path::new("results")) {
        Ok(run) => run,
        Err(e) => return usage(e),
    };
    println!("\n{}", run.scenario.lesson.trim_end());
    println!();
    let report = &run.summary.runs[0];
    match &report.failure {
        Some(f) => println!(
            "failed: {} `{}` at {:.3}s: {}",
            f.kind.name(),
            f.check,
            f.time_ns as f64 / 1e9,
            f.message
        ),
        None => println!("passed every check"),
    }
    for name in lesson.metrics.keys() {
        if let Some(v) = report.metrics.get(name) {
            println!("metric {name} = {v}");
        }
    }
    if let Some(l) = &run.ladder {
        println!("\nconsistency ladder of the history:");
        print!("{}", l.render_table());
    }
    if let Some(dir) = &run.artifacts {
        match crate::report::write(dir) {
            Ok(page) => println!("artifacts: {}\nreport: {}", dir.display(), page.display()),
            Err(e) => {
                eprintln!("faultline: {e}");
                return e.exit_code() as u8;
            }
        }
    }
    println!(
        "replay: {} {} --schedule lessons/{} --seed {}{bug}",
        invocation.replay, lesson.scenario, lesson.schedule, lesson.seed
    );
    match run.as_expected {
        Ok(()) => {
            println!("as the catalogue says");
            0
        }
        Err(e) => {
            println!("NOT as the catalogue says: {e}");
            1
        }
    }
}

fn bugs(invocation: &Invocation) -> u8 {
    for protocol in &invocation.protocols {
        for bug in (protocol.bugs)() {
            println!("{:<28} {:<32} {}", bug.name, bug.scenario, bug.description);
        }
    }
    0
}

struct RunOptions {
    seeds: Option<String>,
    shard: Option<String>,
    jobs: usize,
    check_determinism: bool,
    keep: bool,
    artifacts_max: usize,
    json: bool,
    traces: Option<PathBuf>,
}

/// The scenario, its protocol and the request the flags describe.
fn prepare(
    invocation: &Invocation,
    target: &Target,
    seeds: Vec<u64>,
) -> Result<(Scenario, Protocol, RunRequest), ScenarioError> {
    let scenario = Scenario::find(&target.scenario)?;
    let protocol = registry::find(&invocation.protocols, &scenario)?;
    let schedule = target
        .schedule
        .as_deref()
        .map(|p| Schedule::load(p, &scenario))
        .transpose()?;
    let scenario = match &schedule {
        Some(s) => scenario.with_overrides(s)?,
        None => scenario,
    };
    let seeds = match (&schedule, target.seed) {
        (Some(s), None) => vec![s.seed],
        _ => seeds,
    };
    let request = RunRequest {
        seeds,
        schedule,
        bugs: target.bugs.clone(),
        artifacts: Some(PathBuf::from("results")),
        ..RunRequest::default()
    };
    Ok((scenario, protocol, request))
}

fn run(invocation: &Invocation, target: &Target, options: &RunOptions) -> u8 {
    let mut seeds: Vec<u64> = match (target.seed, &options.seeds) {
        (Some(seed), _) => vec![seed],
        (None, Some(range)) => match parse_seed_range(range) {
            Ok(r) => r.collect(),
            Err(e) => return usage(format!("--seeds {e}")),
        },
        (None, None) => (0..20).collect(),
    };
    let shard = match &options.shard {
        Some(text) => {
            let range = options.seeds.as_deref().unwrap_or("0..20");
            match Shard::parse(text, range) {
                Ok(shard) => Some(shard),
                Err(e) => return usage(e),
            }
        }
        None => None,
    };
    if let Some(shard) = &shard {
        seeds.retain(|&s| shard.has(s));
    }
    if options.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    let (scenario, protocol, mut request) = match prepare(invocation, target, seeds) {
        Ok(prepared) => prepared,
        Err(e) => return usage(e),
    };
    request.jobs = options.jobs;
    request.check_determinism = options.check_determinism;
    request.keep = options.keep;
    request.failing_artifacts_max = options.artifacts_max;
    request.progress = !options.json;
    request.traces = options.traces.clone();
    let mut summary = match (protocol.run)(&scenario, &request) {
        Ok(summary) => summary,
        Err(e) => return usage(e),
    };
    summary.shard = shard;
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serializes")
        );
    } else {
        print_summary(invocation, &summary, target);
    }
    traces_written(&summary, options.json).unwrap_or(summary.exit_code() as u8)
}

/// `merge FILES...`: the sweep's summary from its shards' summaries.
fn merge(invocation: &Invocation, files: &[PathBuf], human: bool) -> u8 {
    let mut parts = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => return usage(format!("cannot read {name}: {e}")),
        };
        match serde_json::from_str::<Summary>(&text) {
            Ok(summary) => parts.push((name, summary)),
            Err(e) => return usage(format!("{name}: not a `faultline run --json` summary: {e}")),
        }
    }
    let merged = match crate::run::merge(parts) {
        Ok(merged) => merged,
        Err(e) => return usage(e),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&merged).expect("a summary serializes")
    );
    if human {
        // The replay lines name the bugs the run was given, not the scenario's own.
        let own = Scenario::find(&merged.file).map_or(0, |s| s.bugs.len());
        let target = Target {
            scenario: merged.file.clone(),
            seed: None,
            schedule: None,
            bugs: merged.bugs.iter().skip(own).cloned().collect(),
        };
        let mut text = Vec::new();
        write_summary(&mut text, invocation, &merged, &target).expect("writes to memory");
        eprint!("{}", String::from_utf8_lossy(&text));
    }
    merged.exit_code() as u8
}

/// Prints the request trace files each seed wrote (unless the summary went out as
/// JSON, which lists them); `Some(2)` if one could not be written.
fn traces_written(summary: &Summary, json: bool) -> Option<u8> {
    let mut failed = None;
    for file in summary.runs.iter().flat_map(|r| &r.traces) {
        if file.starts_with("(could not") {
            eprintln!("faultline: {file}");
            failed = Some(2);
        } else if !json {
            println!("traces: {file}");
        }
    }
    failed
}

fn replay(invocation: &Invocation, target: &Target, traces: Option<PathBuf>) -> u8 {
    let Some(seed) = target.seed.or_else(|| target.schedule.as_ref().map(|_| 0)) else {
        return usage("replay needs --seed N");
    };
    let (scenario, protocol, mut request) = match prepare(invocation, target, vec![seed]) {
        Ok(prepared) => prepared,
        Err(e) => return usage(e),
    };
    install_tracing();
    request.keep = true;
    request.traces = traces;
    let summary = match (protocol.run)(&scenario, &request) {
        Ok(summary) => summary,
        Err(e) => return usage(e),
    };
    print_summary(invocation, &summary, target);
    traces_written(&summary, false).unwrap_or(summary.exit_code() as u8)
}

fn shrink(invocation: &Invocation, target: &Target) -> u8 {
    let Some(seed) = target.seed.or_else(|| target.schedule.as_ref().map(|_| 0)) else {
        return usage("shrink needs --seed N (or --schedule FILE)");
    };
    let (scenario, protocol, request) = match prepare(invocation, target, vec![seed]) {
        Ok(prepared) => prepared,
        Err(e) => return usage(e),
    };
    let seed = request.seeds[0];
    let started = std::time::Instant::now();
    let mut on_step = |step: &str| println!("  {step}");
    println!("shrinking {} seed {seed}:", scenario.name);
    let shrunk = match (protocol.shrink)(
        &scenario,
        &target.bugs,
        seed,
        request.schedule.clone(),
        &mut on_step,
    ) {
        Ok(Some(shrunk)) => shrunk,
        Ok(None) => {
            println!("seed {seed} passes: nothing to shrink");
            return 0;
        }
        Err(e) => return usage(e),
    };
    let f = &shrunk.failure;
    println!(
        "failure kept: {} `{}`: {}",
        f.kind.name(),
        f.check,
        f.message
    );
    println!(
        "faults {} -> {}, simulated {:.0} ms -> {:.0} ms, {} runs in {:.1} s",
        shrunk.original.faults.len(),
        shrunk.minimal.faults.len(),
        shrunk.sim_ms_before,
        shrunk.sim_ms_after,
        shrunk.runs,
        started.elapsed().as_secs_f64()
    );
    let dir = Path::new("results")
        .join(&scenario.name)
        .join(format!("seed-{seed}"));
    let path = dir.join("schedule.min.toml");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, shrunk.minimal.to_toml()));
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 3;
    }
    println!("schedule: {}", path.display());
    let replay = schedule_replay(invocation, &scenario, &path, &target.bugs);
    println!("  replay: {replay}");
    1
}

/// The command that replays the schedule at `path` on `scenario` with `bugs`.
fn schedule_replay(
    invocation: &Invocation,
    scenario: &crate::scenario::Scenario,
    path: &Path,
    bugs: &[String],
) -> String {
    let mut replay = format!(
        "{} {} --schedule {}",
        invocation.replay,
        scenario.file,
        path.display()
    );
    for bug in bugs {
        replay.push_str(&format!(" --bug {bug}"));
    }
    replay
}

fn explore(
    invocation: &Invocation,
    scenario: &str,
    request: &crate::explore::ExploreRequest,
    json: bool,
) -> u8 {
    if request.budget == 0 || request.budget > crate::explore::BUDGET_MAX {
        let max = crate::explore::BUDGET_MAX;
        return usage(format!("--budget must be between 1 and {max}"));
    }
    if !(0.0..=1.0).contains(&request.fork_share) {
        return usage("--fork-share must be within [0, 1]");
    }
    if request.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    let target = Target {
        scenario: scenario.to_string(),
        seed: None,
        schedule: None,
        bugs: request.bugs.clone(),
    };
    let (scenario, protocol, _) = match prepare(invocation, &target, vec![0]) {
        Ok(prepared) => prepared,
        Err(e) => return usage(e),
    };
    let started = std::time::Instant::now();
    let found = match (protocol.explore)(&scenario, request) {
        Ok(found) => found,
        Err(e) => return usage(e),
    };
    let dir = Path::new("results").join(&scenario.name).join("explore");
    let mut replays = Vec::new();
    for f in &found.failures {
        let path = dir.join(format!("run-{}.toml", f.run));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, f.schedule.to_toml()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 3;
        }
        replays.push(schedule_replay(invocation, &scenario, &path, &request.bugs));
    }
    if json {
        let mut out = serde_json::to_value(&found).expect("serializes");
        out["replays"] = replays.clone().into();
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializes")
        );
    } else {
        println!(
            "explored {}: {} runs ({} forks), {} in the corpus, {} features, {:.1} s",
            found.scenario,
            found.runs,
            found.forks,
            found.corpus,
            found.features.len(),
            started.elapsed().as_secs_f64()
        );
        for (f, replay) in found.failures.iter().zip(&replays) {
            let kind = if f.fork { "fork" } else { "seed" };
            println!(
                "  run {} ({kind}, seed {}): {} `{}`: {}",
                f.run,
                f.schedule.seed,
                f.failure.kind.name(),
                f.failure.check,
                f.failure.message
            );
            println!("    replay: {replay}");
        }
        println!("failures: {}", found.failures.len());
    }
    u8::from(!found.failures.is_empty())
}

/// Trace lines on stdout, each with the simulated time and the node it happened at.
fn install_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("faultline=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(PlainFormat)
        .with_writer(std::io::stdout)
        .init();
}

/// `LEVEL message`, without madsim's task spans (their ids are process-global and
/// differ between runs).
struct PlainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "{:<5} ", event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn replay_command(
    invocation: &Invocation,
    summary: &Summary,
    target: &Target,
    seed: u64,
) -> String {
    let mut command = format!("{} {} --seed {seed}", invocation.replay, summary.file);
    for bug in &target.bugs {
        command.push_str(&format!(" --bug {bug}"));
    }
    if let Some(schedule) = &target.schedule {
        command.push_str(&format!(" --schedule {}", schedule.display()));
    }
    command
}

fn print_summary(invocation: &Invocation, summary: &Summary, target: &Target) {
    write_summary(&mut std::io::stdout().lock(), invocation, summary, target)
        .expect("write the summary to stdout");
}

/// The human summary of a sweep.
fn write_summary(
    out: &mut dyn std::io::Write,
    invocation: &Invocation,
    summary: &Summary,
    target: &Target,
) -> std::io::Result<()> {
    let s = summary;
    let bugs = if s.bugs.is_empty() {
        String::new()
    } else {
        format!(" with bugs {}", s.bugs.join(", "))
    };
    writeln!(out, "scenario {} ({}{bugs})", s.scenario, s.protocol)?;
    writeln!(
        out,
        "seeds run: {}  passed: {}  failed: {}  unknown: {}",
        s.seeds_run, s.passed, s.failed, s.unknown
    )?;
    if let Some(expected) = &s.expect_failure {
        let shown: Vec<_> = s
            .runs
            .iter()
            .filter(|r| r.status == Status::Shown)
            .map(|r| r.seed)
            .collect();
        writeln!(
            out,
            "lesson: `{expected}` must fail; it did in {} of {} seeds {:?}",
            shown.len(),
            s.seeds_run,
            shown
        )?;
    }
    if let Some(shard) = &s.shard {
        writeln!(
            out,
            "shard {}/{} of seeds {} (the seeds s with s % {} == {})",
            shard.index, shard.count, shard.seeds, shard.count, shard.index
        )?;
    }
    if !s.failing_seeds.is_empty() {
        writeln!(out, "failing seeds: {:?}", s.failing_seeds)?;
        writeln!(
            out,
            "failures by signature (seeds, the smallest, then the signature):"
        )?;
        for g in &s.groups {
            writeln!(
                out,
                "  {:>5}  seed {:<6} {}",
                g.count, g.smallest_seed, g.signature
            )?;
        }
    }
    for failure in &s.sweep_failures {
        writeln!(out, "sweep failed: {failure}")?;
    }
    let speed = if s.wall_ms > 0.0 {
        s.sim_ms / s.wall_ms
    } else {
        0.0
    };
    writeln!(
        out,
        "simulated {:.1} s in {:.2} s wall ({speed:.0}x)",
        s.sim_ms / 1e3,
        s.wall_ms / 1e3
    )?;
    write_fault_effects(out, s)?;
    if !s.sometimes.is_empty() {
        writeln!(out, "sometimes (fraction of seeds that reached each):")?;
        for (name, fraction) in &s.sometimes {
            writeln!(out, "  {fraction:>6.3}  {name}")?;
        }
    }
    for r in s
        .runs
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Unknown | Status::Shown))
    {
        let what = match &r.failure {
            Some(f) => format!(
                "{} `{}` at {:.3}s: {}",
                f.kind.name(),
                f.check,
                f.time_ns as f64 / 1e9,
                f.message
            ),
            None => "verdict unknown".to_string(),
        };
        writeln!(out, "seed {}: {what}", r.seed)?;
        writeln!(
            out,
            "  replay: {}",
            replay_command(invocation, s, target, r.seed)
        )?;
        match &r.artifacts {
            Some(dir) => writeln!(out, "  artifacts: {dir}")?,
            None if r.status != Status::Unknown => writeln!(
                out,
                "  artifacts: none (--artifacts-max reached; the replay writes them)"
            )?,
            None => {}
        }
    }
    if let [only] = s.runs.as_slice() {
        writeln!(out, "trace-hash: {:016x}", only.trace_hash)?;
    }
    Ok(())
}

/// One line per fault kind: how many seeds saw each of its effects, out of the sweep.
fn write_fault_effects(out: &mut dyn std::io::Write, s: &Summary) -> std::io::Result<()> {
    let mut kinds: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (metric, seeds) in &s.fault_effects {
        let Some((kind, effect)) = metric
            .strip_prefix("fault_")
            .and_then(|rest| rest.split_once('_'))
        else {
            continue;
        };
        kinds
            .entry(kind)
            .or_default()
            .push(format!("{effect} {seeds}"));
    }
    if kinds.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "fault effects (seeds of {} in which each happened):",
        s.seeds_run
    )?;
    for (kind, effects) in kinds {
        writeln!(out, "  {kind:<14} {}", effects.join(", "))?;
    }
    Ok(())
}
