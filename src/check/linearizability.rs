//! Linearizability checking of client histories.
//!
//! Semantics (Jepsen's and Knossos's): an `ok` operation happened at one instant
//! inside its [invoke, completion] interval (closed: an operation invoked at the
//! instant another completed may be ordered either way); a `fail` operation did not
//! happen and is dropped; an `info` operation, or an invoke with no completion, is
//! indeterminate: it returns "at infinity", so it may take effect at any instant
//! after its invoke, or never. An indeterminate read constrains nothing and is
//! dropped.
//!
//! The history is split per key (P-compositionality: a history is linearizable if
//! and only if each key's sub-history is) and each key is searched by
//! [`crate::check::search`] (Wing & Gong with Lowe's memoization).
//!
//! Keys are checked in rounds: every unfinished key gets a step budget that doubles
//! each round, and the keys of a round run in parallel on a pool of threads. So one
//! hard key cannot starve the others: a key that fails in N steps alone is found
//! within about 2N steps of every other key's work. Once a key fails, the others get
//! a bounded allowance of further steps (to report every failing key) and are then
//! left unchecked: the verdict is already known. Everything that decides a verdict or
//! a witness is bounded by steps, never by wall time; the wall-clock timeout and the
//! memory bound are outer bounds that turn unfinished keys into `unknown`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::model::{Machine, ModelKind, Op, ValueId, Values, NIL};
use crate::check::search::{Search, SearchOp, Status};
use crate::check::witness::{minimise, MinimiseBudget};
use crate::history::{HistoryEvent, KvOp, OpType};
use crate::process::ClientId;
use crate::system::Verdict;

/// One event of a history, as the checker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client process (Jepsen's integer `:process`).
    pub process: u64,
    /// Invoke, ok, fail or info.
    pub kind: OpType,
    /// Nanoseconds, or the event's position when the history has no times.
    pub time: u64,
    /// The operation (on an invoke) or what its completion says.
    pub body: Body,
}

/// What an event says about its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The operation, with its input, on a key (an index into the history's keys).
    Invoke {
        /// The key's index.
        key: usize,
        /// The operation and its input.
        op: Op,
    },
    /// A completion: the key it names, if it names one (it must match the
    /// invoke's), the value an `ok` read returned, and the operation's name (`read`,
    /// `write`, ...; it must match the invoke's).
    Complete {
        /// The key's index, if the completion names one.
        key: Option<usize>,
        /// What an `ok` read returned.
        read: Option<ValueId>,
        /// The operation's name.
        f: &'static str,
    },
}

/// The name of an operation's function, as [`Body::Complete`] gives it.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Read(_) => "read",
        Op::Write(_) => "write",
        Op::Cas(..) => "cas",
        Op::Append(_) => "append",
        Op::Delete => "delete",
    }
}

/// One operation: an invoke paired with its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client process.
    pub process: u64,
    /// Its invoke's time (as [`Event::time`]).
    pub call: u64,
    /// `None`: indeterminate (`info`, or never completed).
    pub ret: Option<u64>,
    /// Input and, for a read, its output.
    pub op: Op,
    /// Positions (in the event list) of its invoke and completion.
    pub invoke: usize,
    /// Position of its completion; `None` if it never completed.
    pub completion: Option<usize>,
}

/// A history that does not pair up: `position` is the offending event's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairError {
    /// Position of the offending event in the event list.
    pub position: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Pairs each invoke with its process's next completion, per key (`keys` keys). `fail`
/// operations and indeterminate reads are dropped. Operations come out in invoke order.
pub fn pair(events: &[Event], keys: usize) -> Result<Vec<Vec<Operation>>, PairError> {
    let mut pending: BTreeMap<u64, (usize, usize, usize)> = BTreeMap::new(); // process -> (pos, key, slot)
    let mut out: Vec<Vec<Option<Operation>>> = vec![Vec::new(); keys];
    for (pos, ev) in events.iter().enumerate() {
        let err = |message: String| PairError {
            position: pos,
            message,
        };
        match &ev.body {
            Body::Invoke { key, op } => {
                if ev.kind != OpType::Invoke {
                    return Err(err("an invoke event must have :type :invoke".to_string()));
                }
                if let Some(&(p, _, _)) = pending.get(&ev.process) {
                    return Err(err(format!(
                        "process {} invoked again while its operation invoked at event {} is pending",
                        ev.process,
                        p + 1
                    )));
                }
                assert!(*key < keys, "event key out of range");
                pending.insert(ev.process, (pos, *key, out[*key].len()));
                out[*key].push(Some(Operation {
                    process: ev.process,
                    call: ev.time,
                    ret: None,
                    op: *op,
                    invoke: pos,
                    completion: None,
                }));
            }
            Body::Complete { key, read, f } => {
                let Some((_, k, slot)) = pending.remove(&ev.process) else {
                    return Err(err(format!(
                        "process {} completed an operation it never invoked",
                        ev.process
                    )));
                };
                let o = out[k][slot].as_mut().expect("a pending slot");
                if *f != op_name(&o.op) {
                    return Err(err(format!(
                        "this :{f} completes process {}'s :{} invoked at event {}",
                        ev.process,
                        op_name(&o.op),
                        o.invoke + 1
                    )));
                }
                if key.is_some_and(|key| key != k) {
                    return Err(err(format!(
                        "this completion names another key than its invoke at event {}",
                        o.invoke + 1
                    )));
                }
                if ev.time < o.call {
                    return Err(err(format!(
                        "completion at time {} precedes its invoke at {}",
                        ev.time, o.call
                    )));
                }
                o.completion = Some(pos);
                match ev.kind {
                    OpType::Fail => out[k][slot] = None,
                    OpType::Info => {}
                    OpType::Ok => {
                        o.ret = Some(ev.time);
                        if let Op::Read(v) = &mut o.op {
                            let Some(r) = read else {
                                return Err(err(
                                    "an ok read must give the value it read (nil if none)"
                                        .to_string(),
                                ));
                            };
                            *v = *r;
                        }
                    }
                    OpType::Invoke => {
                        return Err(err("a completion cannot have :type :invoke".to_string()))
                    }
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|ops| {
            ops.into_iter()
                .flatten()
                .filter(|o| o.ret.is_some() || !o.op.is_read())
                .collect()
        })
        .collect())
}

/// A history ready to check: its model, values, and operations per key.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The model operations are checked against.
    pub model: ModelKind,
    /// The values the operations name, interned.
    pub values: Values,
    /// The state of every key before any operation (`--initial`).
    pub initial: ValueId,
    /// Key names (as reports show them) and their operations.
    pub keys: Vec<(String, Vec<Operation>)>,
}

/// Bounds on a check.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Search steps per key before it is `unknown` (deterministic).
    pub key_steps_max: u64,
    /// Search steps per failing key for its witness (deterministic).
    pub minimise_steps_max: u64,
    /// Wall-clock bound on the whole check; unfinished keys are `unknown`.
    pub timeout: Option<Duration>,
    /// Bound on the searches' memory, in bytes; unfinished keys are `unknown`.
    pub memory_bytes_max: u64,
    /// Worker threads.
    pub threads: usize,
    /// Check every key to the end even once one fails (else the others get a
    /// bounded allowance of further steps, then are left unfinished).
    pub all_keys: bool,
}

/// A quarter of the machine's memory (from /proc/meminfo), or 4 GiB if unknown.
pub fn default_memory_bytes_max() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    total.map_or(4 << 30, |t| t / 4)
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            key_steps_max: 1 << 30,
            minimise_steps_max: 20_000_000,
            timeout: None,
            memory_bytes_max: default_memory_bytes_max(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            all_keys: false,
        }
    }
}

/// Why a key has no verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// The key used its step bound.
    StepLimit,
    /// The wall-clock timeout passed.
    Timeout,
    /// The memory bound was reached.
    Memory,
    /// Another key failed first; this one was left unfinished.
    NotNeeded,
}

impl Unknown {
    /// Why, in a few words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Unknown::StepLimit => "step bound reached",
            Unknown::Timeout => "timeout",
            Unknown::Memory => "memory bound reached",
            Unknown::NotNeeded => "left unfinished: another key already fails",
        }
    }
}

/// Why a key is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Indices into the key's operations, by invoke order: together they have no
    /// linearization.
    pub witness: Vec<usize>,
    /// The earliest completion time by which the key is already not linearizable.
    pub cut: u64,
    /// Whether minimisation finished within its step bound.
    pub minimal: bool,
    /// The most operations the search linearized in one order.
    pub linearized_max: usize,
}

/// One key's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyResult {
    /// Some order of its operations respects real time and the model.
    Linearizable,
    /// None does; the failure carries a witness.
    NotLinearizable(Failure),
    /// The search stopped before a verdict.
    Unknown(Unknown),
}

/// One key's result.
#[derive(Clone, Debug)]
pub struct KeyOutcome {
    /// The key's name.
    pub key: String,
    /// The key's position in its [`Problem`]'s keys.
    pub index: usize,
    /// Operations searched (after dropping `fail` ones and indeterminate reads).
    pub operations: usize,
    /// The verdict.
    pub result: KeyResult,
    /// Search steps, the witness's included.
    pub steps: u64,
    /// Wall time spent on this key (not a verdict input).
    pub elapsed: Duration,
}

/// The result of checking one history.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Pass if every key is linearizable, Fail if one is not, else Unknown.
    pub verdict: Verdict,
    /// The model's name.
    pub model: &'static str,
    /// Every key's result, in the history's key order.
    pub keys: Vec<KeyOutcome>,
    /// Operations searched, over all keys (`fail` ones and indeterminate reads
    /// dropped).
    pub operations: usize,
    /// Wall time of the whole check (not a verdict input).
    pub elapsed: Duration,
}

impl Outcome {
    /// The keys that are not linearizable, with their failures.
    pub fn failures(&self) -> impl Iterator<Item = (&KeyOutcome, &Failure)> {
        self.keys.iter().filter_map(|k| match &k.result {
            KeyResult::NotLinearizable(f) => Some((k, f)),
            _ => None,
        })
    }
}

struct Job<'a> {
    problem: usize,
    key: usize,
    machine: Machine<'a>,
    search: Option<Search>,
    result: Option<KeyResult>,
    steps: u64,
    elapsed: Duration,
    bytes: u64,
}

struct Shared {
    abort: AtomicBool,
    /// 0 running, 1 timeout, 2 memory.
    reason: AtomicUsize,
    memory: AtomicU64,
    memory_max: u64,
}

impl Shared {
    fn stop(&self, reason: usize) {
        let _ = self
            .reason
            .compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst);
        self.abort.store(true, Ordering::SeqCst);
    }
}

/// Steps a search runs between looks at the memory bound.
const CHUNK_STEPS: u64 = 1 << 16;
/// The first round's budget per key.
const ROUND_STEPS_FIRST: u64 = 1 << 15;
/// Least further steps every key gets once another key of its history fails.
const ALLOWANCE_STEPS_MIN: u64 = 1 << 18;

fn search_ops(ops: &[Operation]) -> Vec<SearchOp> {
    ops.iter()
        .map(|o| SearchOp {
            call: o.call,
            ret: o.ret,
            op: o.op,
        })
        .collect()
}

fn run_job(job: &mut Job<'_>, problems: &[Problem], target: u64, limits: &Limits, shared: &Shared) {
    let started = Instant::now();
    let ops = &problems[job.problem].keys[job.key].1;
    let initial = problems[job.problem].initial;
    let search = job
        .search
        .get_or_insert_with(|| Search::new(search_ops(ops), initial));
    let target = target.min(limits.key_steps_max);
    let mut status = search.status();
    while status == Status::Running && search.steps < target {
        let chunk = (target - search.steps).min(CHUNK_STEPS);
        status = search.run(&mut job.machine, chunk, &shared.abort);
        let bytes = (search.bytes() + job.machine.bytes) as u64;
        let total = if bytes >= job.bytes {
            shared
                .memory
                .fetch_add(bytes - job.bytes, Ordering::Relaxed)
                + (bytes - job.bytes)
        } else {
            shared
                .memory
                .fetch_sub(job.bytes - bytes, Ordering::Relaxed)
                - (job.bytes - bytes)
        };
        job.bytes = bytes;
        if total > shared.memory_max {
            shared.stop(2);
        }
    }
    job.steps = search.steps;
    let result = match status {
        Status::Linearizable => Some(KeyResult::Linearizable),
        Status::NotLinearizable(linearized_max) => {
            let budget = MinimiseBudget {
                total_steps: limits.minimise_steps_max,
                check_steps: (4 * job.steps).clamp(100_000, limits.minimise_steps_max),
            };
            let w = minimise(&mut job.machine, &search_ops(ops), budget, &shared.abort);
            job.steps += w.steps;
            Some(KeyResult::NotLinearizable(Failure {
                witness: w.ops,
                cut: w.cut,
                minimal: w.minimal,
                linearized_max,
            }))
        }
        Status::Running if job.steps >= limits.key_steps_max => {
            Some(KeyResult::Unknown(Unknown::StepLimit))
        }
        Status::Running | Status::Aborted => None,
    };
    if result.is_some() {
        job.search = None;
        shared.memory.fetch_sub(job.bytes, Ordering::Relaxed);
        job.bytes = 0;
        job.result = result;
    }
    job.elapsed += started.elapsed();
}

/// Checks several histories together: their keys share the pool and the bounds.
/// Results come in the order of `problems`, keys in the order of each problem's.
pub fn check_problems(problems: &[Problem], limits: &Limits) -> Vec<Outcome> {
    let start = Instant::now();
    let mut jobs: Vec<Mutex<Job<'_>>> = Vec::new();
    for (p, problem) in problems.iter().enumerate() {
        for k in 0..problem.keys.len() {
            jobs.push(Mutex::new(Job {
                problem: p,
                key: k,
                machine: Machine::new(problem.model, &problem.values, problem.initial),
                search: None,
                result: None,
                steps: 0,
                elapsed: Duration::ZERO,
                bytes: 0,
            }));
        }
    }
    let shared = Shared {
        abort: AtomicBool::new(false),
        reason: AtomicUsize::new(0),
        memory: AtomicU64::new(0),
        memory_max: limits.memory_bytes_max,
    };
    let deadline = limits.timeout.map(|t| start + t);
    let done = AtomicBool::new(false);
    // Per problem: the step allowance once one of its keys failed.
    let mut allowance: Vec<Option<u64>> = vec![None; problems.len()];
    std::thread::scope(|scope| {
        if let Some(deadline) = deadline {
            let (shared, done) = (&shared, &done);
            scope.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now >= deadline {
                        shared.stop(1);
                        return;
                    }
                    std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
                }
            });
        }
        let mut target = ROUND_STEPS_FIRST;
        loop {
            if shared.abort.load(Ordering::SeqCst) {
                break;
            }
            let eligible: Vec<usize> = (0..jobs.len())
                .filter(|&j| {
                    let job = jobs[j].lock().expect("job lock");
                    job.result.is_none()
                })
                .collect();
            if eligible.is_empty() {
                break;
            }
            let allow = allowance.clone();
            let run_one = |j: usize| {
                let mut job = jobs[j].lock().expect("job lock");
                let t = allow[job.problem].map_or(target, |a| target.min(a));
                run_job(&mut job, problems, t, limits, &shared);
            };
            let workers = limits.threads.max(1).min(eligible.len());
            if workers <= 1 {
                eligible.iter().for_each(|&j| run_one(j));
            } else {
                let next = AtomicUsize::new(0);
                std::thread::scope(|s| {
                    for _ in 0..workers {
                        s.spawn(|| loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(&j) = eligible.get(i) else { return };
                            run_one(j);
                        });
                    }
                });
            }
            // Round end: histories with a failing key give the rest an allowance;
            // keys past it are left unfinished.
            for j in &eligible {
                let job = jobs[*j].lock().expect("job lock");
                if matches!(job.result, Some(KeyResult::NotLinearizable(_)))
                    && allowance[job.problem].is_none()
                    && !limits.all_keys
                {
                    allowance[job.problem] = Some((4 * target).max(ALLOWANCE_STEPS_MIN));
                }
            }
            for j in &eligible {
                let mut job = jobs[*j].lock().expect("job lock");
                if job.result.is_none() && allowance[job.problem].is_some_and(|a| job.steps >= a) {
                    job.result = Some(KeyResult::Unknown(Unknown::NotNeeded));
                    job.search = None;
                }
            }
            target = target.saturating_mul(2);
        }
        done.store(true, Ordering::SeqCst);
    });
    let reason = match shared.reason.load(Ordering::SeqCst) {
        2 => Unknown::Memory,
        _ => Unknown::Timeout,
    };
    let mut outcomes: Vec<Outcome> = problems
        .iter()
        .map(|p| Outcome {
            verdict: Verdict::Pass,
            model: p.model.name(),
            keys: Vec::new(),
            operations: p.keys.iter().map(|(_, o)| o.len()).sum(),
            elapsed: Duration::ZERO,
        })
        .collect();
    // Unfinished searches may hold gigabytes: free them on another thread, so that
    // the timeout bounds the return of this function, not the end of a free.
    let mut garbage: Vec<Box<dyn Send>> = Vec::new();
    for job in jobs {
        let mut job = job.into_inner().expect("job lock");
        if let Some(s) = job.search.take() {
            garbage.push(Box::new(s));
        }
        let machine = std::mem::replace(
            &mut job.machine,
            Machine::new(
                problems[job.problem].model,
                &problems[job.problem].values,
                NIL,
            ),
        );
        if machine.bytes > 1 << 20 {
            garbage.push(Box::new(machine.into_tables()));
        }
        let (name, ops) = &problems[job.problem].keys[job.key];
        let out = &mut outcomes[job.problem];
        out.elapsed += job.elapsed;
        out.keys.push(KeyOutcome {
            key: name.clone(),
            index: job.key,
            operations: ops.len(),
            result: job.result.unwrap_or(KeyResult::Unknown(reason)),
            steps: job.steps,
            elapsed: job.elapsed,
        });
    }
    if !garbage.is_empty() {
        std::thread::spawn(move || drop(garbage));
    }
    for (out, p) in outcomes.iter_mut().zip(problems) {
        out.verdict = verdict_of(out, p);
    }
    outcomes
}

fn verdict_of(out: &Outcome, p: &Problem) -> Verdict {
    let failing: Vec<String> = out
        .failures()
        .map(|(k, f)| {
            let ops: Vec<String> = f
                .witness
                .iter()
                .map(|&i| {
                    let o = p.keys[k.index].1[i];
                    let m = Machine::new(p.model, &p.values, p.initial);
                    format!("[p{} {}]", o.process, m.describe(&o.op, o.ret.is_some()))
                })
                .collect();
            format!(
                "{}: {} operation(s) have no linearization: {}",
                key_label(&k.key),
                f.witness.len(),
                ops.join(" ")
            )
        })
        .collect();
    if !failing.is_empty() {
        return Verdict::Fail(failing.join("; "));
    }
    let unknown: Vec<&KeyOutcome> = out
        .keys
        .iter()
        .filter(|k| matches!(k.result, KeyResult::Unknown(_)))
        .collect();
    if let Some(first) = unknown.first() {
        let KeyResult::Unknown(why) = first.result else {
            unreachable!()
        };
        return Verdict::Unknown(format!(
            "{}; {} of {} key(s) unchecked",
            why.describe(),
            unknown.len(),
            out.keys.len()
        ));
    }
    Verdict::Pass
}

/// `key "x"`, or `the register` for a keyless history.
pub fn key_label(key: &str) -> String {
    if key.is_empty() {
        "the register".to_string()
    } else {
        format!("key {key}")
    }
}

/// Reads simulator histories: kv values are strings, keys are named by their
/// strings. Returns the problem for `model`, or the pairing error.
pub fn problem_from_kv(
    model: ModelKind,
    history: &[HistoryEvent<KvOp>],
) -> Result<Problem, PairError> {
    let mut values = Values::new(true);
    let mut key_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut key_names: Vec<String> = Vec::new();
    let mut events = Vec::with_capacity(history.len());
    for (pos, ev) in history.iter().enumerate() {
        let key_name = ev.op.key().to_string();
        let key = *key_ids.entry(key_name.clone()).or_insert_with(|| {
            key_names.push(key_name);
            key_names.len() - 1
        });
        let mut val = |s: &str| values.intern(s);
        let op = match &ev.op {
            KvOp::Get { value, .. } => Op::Read(value.as_deref().map_or(NIL, &mut val)),
            KvOp::Put { value, .. } => Op::Write(val(value)),
            KvOp::Append { value, .. } => Op::Append(val(value)),
            KvOp::Delete { .. } => Op::Delete,
            KvOp::Cas {
                value: (old, new), ..
            } => Op::Cas(old.as_deref().map_or(NIL, &mut val), val(new)),
        };
        if let Err(message) = model.supports(&op) {
            return Err(PairError {
                position: pos,
                message,
            });
        }
        let body = match ev.kind {
            OpType::Invoke => Body::Invoke { key, op },
            _ => Body::Complete {
                key: Some(key),
                read: match op {
                    Op::Read(v) => Some(v),
                    _ => None,
                },
                f: op_name(&op),
            },
        };
        events.push(Event {
            process: ev.process as u64,
            kind: ev.kind,
            time: ev.time_ns,
            body,
        });
    }
    let per_key = pair(&events, key_names.len())?;
    Ok(Problem {
        model,
        values,
        initial: NIL,
        keys: key_names
            .into_iter()
            .map(|k| format!("{k:?}"))
            .zip(per_key)
            .collect(),
    })
}

/// Search steps per key [`check_kv`] allows before the verdict is unknown: about
/// 2 to 10 seconds of search, so that on a hard history this deterministic bound,
/// not the caller's wall-clock budget, is what usually ends the search.
pub const KV_KEY_STEPS_MAX: u64 = 1 << 26;

/// Checks a simulator key-value history against the kv model: at most
/// [`KV_KEY_STEPS_MAX`] search steps per key (a deterministic bound), and `budget`
/// of wall time as an outer bound if given (`None`: the verdict depends on the
/// history alone, as the simulator's runs need).
///
/// # Panics
/// If the history does not pair up: histories recorded by the simulator are well
/// formed by construction. Use [`problem_from_kv`] on untrusted input.
pub fn check_kv(history: &[HistoryEvent<KvOp>], budget: Option<Duration>) -> Outcome {
    let problem = match problem_from_kv(ModelKind::Kv, history) {
        Ok(p) => p,
        Err(e) => panic!("malformed history at event {}: {}", e.position, e.message),
    };
    // One thread: sweeps already run seeds in parallel, and a pool per seed costs
    // more than this check's few milliseconds.
    let limits = Limits {
        key_steps_max: KV_KEY_STEPS_MAX,
        timeout: budget,
        threads: 1,
        ..Limits::default()
    };
    check_problems(std::slice::from_ref(&problem), &limits)
        .pop()
        .expect("one outcome per problem")
}
/// Shapes of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct GenParams {
    /// Operations in all.
    pub ops: usize,
    /// Keys they spread over.
    pub keys: usize,
    /// Client processes.
    pub clients: usize,
    /// Percent of operations whose completion is recorded as `info` (they still took
    /// effect, or not, at random).
    pub info_percent: u32,
}

/// A history generated from a real sequential execution of a key-value store: each
/// operation takes effect at one instant inside a random interval of its client's, so
/// the history is linearizable by construction. Deterministic in `seed`. For tests
/// and benchmarks.
pub fn generate_linearizable_history(seed: u64, p: GenParams) -> Vec<HistoryEvent<KvOp>> {
    assert!(p.keys > 0 && p.clients > 0, "need keys and clients");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store: BTreeMap<String, String> = BTreeMap::new();
    // Per client: when it is next free (ns).
    let mut free_at = vec![0u64; p.clients];
    // (time, order, event): sorted at the end; `order` keeps invoke before completion.
    let mut events: Vec<(u64, usize, ClientId, OpType, KvOp)> = Vec::new();
    let mut now: u64 = 0;
    let mut seq = 0usize;
    for i in 0..p.ops {
        now += rng.gen_range(1..=20);
        // A client free by now, or the earliest to become free.
        let free: Vec<usize> = (0..p.clients).filter(|&c| free_at[c] < now).collect();
        let client = if free.is_empty() {
            let c = (0..p.clients).min_by_key(|&c| free_at[c]).expect("clients");
            now = free_at[c] + 1;
            c
        } else {
            free[rng.gen_range(0..free.len())]
        };
        let call = rng.gen_range(free_at[client] + 1..=now);
        let lp = now;
        let key = format!("k{}", rng.gen_range(0..p.keys));
        let cur = store.get(&key).cloned();
        let (op, outcome) = match rng.gen_range(0..100) {
            0..=39 => (
                KvOp::Get {
                    key: key.clone(),
                    value: cur.clone(),
                },
                OpType::Ok,
            ),
            40..=64 => {
                let v = format!("v{i}");
                store.insert(key.clone(), v.clone());
                (KvOp::Put { key, value: v }, OpType::Ok)
            }
            65..=79 => {
                let v = format!("a{i},");
                store.insert(key.clone(), format!("{}{v}", cur.unwrap_or_default()));
                (KvOp::Append { key, value: v }, OpType::Ok)
            }
            80..=84 => {
                store.remove(&key);
                (KvOp::Delete { key }, OpType::Ok)
            }
            _ => {
                // Half the time expect the current value (succeeds), else a stale one.
                let expected = if rng.gen_bool(0.5) {
                    cur.clone()
                } else {
                    Some(format!("stale{i}"))
                };
                let new = format!("c{i}");
                let ok = expected == cur;
                if ok {
                    store.insert(key.clone(), new.clone());
                }
                (
                    KvOp::Cas {
                        key,
                        value: (expected, new),
                    },
                    if ok { OpType::Ok } else { OpType::Fail },
                )
            }
        };
        let ret = lp + rng.gen_range(0..=60);
        let kind = if outcome == OpType::Ok && rng.gen_range(0..100) < p.info_percent {
            OpType::Info
        } else {
            outcome
        };
        let invoke_op = match &op {
            KvOp::Get { key, .. } => KvOp::Get {
                key: key.clone(),
                value: None,
            },
            o => o.clone(),
        };
        events.push((call, seq, client, OpType::Invoke, invoke_op));
        events.push((ret, seq + 1, client, kind, op));
        seq += 2;
        free_at[client] = ret;
    }
    events.sort_by_key(|e| (e.0, e.1));
    events
        .into_iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_history_is_linearizable() {
        for seed in 0..5 {
            let h = generate_linearizable_history(
                seed,
                GenParams {
                    ops: 400,
                    keys: 3,
                    clients: 5,
                    info_percent: 3,
                },
            );
            let o = check_kv(&h, Some(Duration::from_secs(20)));
            assert_eq!(o.verdict, Verdict::Pass, "seed {seed}");
            assert_eq!(o.keys.len(), 3);
        }
    }

    #[test]
    fn pairing_drops_fail_and_indeterminate_reads() {
        let ev = |process, kind, body| Event {
            process,
            kind,
            time: 0,
            body,
        };
        let inv = |op| Body::Invoke { key: 0, op };
        let done = |f, read| Body::Complete { key: None, read, f };
        let events = vec![
            ev(0, OpType::Invoke, inv(Op::Write(1))),
            ev(0, OpType::Fail, done("write", None)),
            ev(1, OpType::Invoke, inv(Op::Read(NIL))),
            ev(1, OpType::Info, done("read", None)),
            ev(2, OpType::Invoke, inv(Op::Write(2))),
        ];
        let ops = pair(&events, 1).unwrap();
        assert_eq!(ops[0].len(), 1);
        assert_eq!(ops[0][0].op, Op::Write(2));
        assert_eq!(ops[0][0].ret, None);
        let bad = vec![ev(0, OpType::Ok, done("write", None))];
        assert!(pair(&bad, 1).unwrap_err().message.contains("never invoked"));
        let mismatch = vec![
            ev(0, OpType::Invoke, inv(Op::Write(1))),
            ev(0, OpType::Ok, done("cas", None)),
        ];
        assert_eq!(pair(&mismatch, 1).unwrap_err().position, 1);
    }
}
