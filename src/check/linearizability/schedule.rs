//! The scheduler: runs every key's search in rounds of doubling step budgets on a
//! pool of threads, enforces the step, memory and wall-clock bounds, and minimises
//! a witness for each failing key (see the parent module's docs for the policy).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::check::model::{Machine, NIL};
use crate::check::search::{Search, SearchOp, Status};
use crate::check::witness::{minimise, MinimiseBudget};
use crate::system::Verdict;

use super::format::verdict_of;
use super::{Failure, KeyOutcome, KeyResult, Limits, Operation, Outcome, Problem, Unknown};

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
/// Most rounds one check runs. The per-key target doubles each round from
/// [`ROUND_STEPS_FIRST`], so in this round it has saturated at `u64::MAX`, past any
/// `key_steps_max`: every key still running then reaches its bound or its allowance,
/// and gets a result (or the check aborts).
const ROUNDS_MAX: u32 = u64::BITS - ROUND_STEPS_FIRST.ilog2() + 1;

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
    // Each round runs exactly `chunk` steps unless the search ends or aborts: at most
    // target / CHUNK_STEPS + 1 rounds.
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
                // Sleeps at most 5 ms a round, and ends at the deadline at the latest.
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
        let mut rounds = 0;
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
            rounds += 1;
            assert!(
                rounds <= ROUNDS_MAX,
                "keys still unjudged after {ROUNDS_MAX} rounds"
            );
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
                        // Each round takes the next job: `eligible.len()` in all.
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
