//! Shrinking a failing run: the smallest fault schedule found that still fails the
//! same check. First the fault phase ends right after the failure, without the faults
//! that come later; then delta debugging (Zeller and Hildebrandt, "Simplifying and
//! Isolating Failure-Inducing Input", TSE 2002) over the faults, a search over small
//! subsets of them, then smaller faults, a shorter fault phase and a lighter workload.
//!
//! A candidate keeps the seed, so the network, nodes and clients draw from the same
//! streams; it "still fails" when its run fails the same check with the same kind of
//! failure (the same invariant, linearizability, or liveness). Runs are deterministic,
//! so the same input always shrinks to the same schedule.
//!
//! Those streams are drawn in the order events happen, so a candidate differs from its
//! schedule from its first change on: removing a crash also moves every later message
//! fate and election timeout. A rare failure (a coincidence of timings) then rarely
//! survives a removal, and the search must also take steps that do not remove faults:
//! a shorter or later fault that still fails may fail earlier, and every fault after
//! the new failure goes at once; a small subset of the faults may fail on its own
//! although no single fault can go.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use crate::run::{run_seed, Outcome};
use crate::scenario::{Fault, FaultSpec, Scenario, ScenarioError, Schedule};
use crate::sim::{Failure, FailureKind};
use crate::system::System;

/// Most candidate runs one shrink tries.
pub const RUNS_MAX: usize = 3_000;
/// Most passes over the reductions (each pass runs them all until none applies).
const PASSES_MAX: usize = 8;

/// What a shrink found.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The failure every accepted candidate reproduced.
    pub failure: Failure,
    /// The schedule shrinking started from.
    pub original: Schedule,
    /// The smallest schedule found that still fails (`faultline shrink` writes it to
    /// `schedule.min.toml`).
    pub minimal: Schedule,
    /// Simulated time of the original run, in ms.
    pub sim_ms_before: f64,
    /// Simulated time of the minimal run, in ms.
    pub sim_ms_after: f64,
    /// Each accepted reduction, in order.
    pub steps: Vec<String>,
    /// Candidate runs tried.
    pub runs: usize,
}

/// Shrinks `schedule` (with the bugs `bugs`) on `scenario`. `Ok(None)`: the schedule's
/// run does not fail, so there is nothing to shrink. `on_step` sees each accepted
/// reduction as it happens.
pub fn shrink<S: System>(
    scenario: &Scenario,
    bugs: &[String],
    schedule: Schedule,
    mut on_step: impl FnMut(&str),
) -> Result<Option<Shrunk>, ScenarioError> {
    let mut shrinker = Shrinker::<S> {
        scenario,
        bugs,
        runs: 0,
        target: None,
        failing_history_ops: 0,
        failing_ns: 0,
        chunk: usize::MAX,
        tried: HashMap::new(),
        _system: std::marker::PhantomData,
    };
    let Some(first) = shrinker.run(&schedule)? else {
        return Ok(None);
    };
    let Some(failure) = first.failure.clone() else {
        return Ok(None);
    };
    shrinker.target = Some(failure.clone());
    shrinker.failing_history_ops = first.history_ops;
    shrinker.failing_ns = failure.time_ns;
    // Targeted faults keep the nodes they struck in the failing run, so that every
    // candidate strikes the same nodes whoever holds the role then.
    let mut best = schedule.with_resolved(&first.resolved);
    let mut best_sim_ns = first.sim_ns;
    let mut steps = Vec::new();
    for _ in 0..PASSES_MAX {
        let before = steps.len();
        for reduce in reductions::<S>() {
            while let Some((candidate, what, sim_ns)) = reduce(&mut shrinker, &best)? {
                on_step(&what);
                steps.push(what);
                best = candidate;
                best_sim_ns = sim_ns;
                // A step can move the failure earlier; the faults after it then go at
                // once, and every later candidate runs a shorter phase.
                if let Some((candidate, what, sim_ns)) = end_phase_at_failure(&mut shrinker, &best)?
                {
                    on_step(&what);
                    steps.push(what);
                    best = candidate;
                    best_sim_ns = sim_ns;
                }
                if shrinker.runs >= RUNS_MAX {
                    break;
                }
            }
        }
        if steps.len() == before || shrinker.runs >= RUNS_MAX {
            break;
        }
    }
    Ok(Some(Shrunk {
        failure,
        sim_ms_before: first.sim_ns as f64 / 1e6,
        sim_ms_after: best_sim_ns as f64 / 1e6,
        original: schedule,
        minimal: best,
        steps,
        runs: shrinker.runs,
    }))
}

/// [`shrink`] for one seed: the seed's schedule from the scenario (or `schedule`, run
/// with this seed) — the entry the command line holds per protocol.
pub fn shrink_seed<S: System>(
    scenario: &Scenario,
    bugs: &[String],
    seed: u64,
    schedule: Option<Schedule>,
    on_step: &mut dyn FnMut(&str),
) -> Result<Option<Shrunk>, ScenarioError> {
    let setup = scenario.setup::<S>(bugs)?;
    let schedule = match schedule {
        Some(s) => {
            scenario.check_clients("faults", &s.faults, S::clients(&setup))?;
            let bootstrap = S::bootstrap_members(&setup);
            scenario.check_members("faults", &s.faults, bootstrap.as_ref())?;
            Schedule { seed, ..s }
        }
        None => scenario.schedule_for(seed, &setup),
    };
    shrink::<S>(scenario, bugs, schedule, on_step)
}

/// A reduction: the first smaller candidate that still fails, with what it changed
/// and its run's simulated time, or `None` when it finds none.
type Reduction<S> =
    fn(&mut Shrinker<'_, S>, &Schedule) -> Result<Option<(Schedule, String, u64)>, ScenarioError>;

struct Shrinker<'a, S: System> {
    scenario: &'a Scenario,
    bugs: &'a [String],
    runs: usize,
    target: Option<Failure>,
    /// History events of the latest run that failed as the target did (the schedule
    /// being shrunk): two per operation.
    failing_history_ops: usize,
    /// When the latest run that failed as the target did found its failure, in ns of
    /// simulated time.
    failing_ns: u64,
    /// Delta debugging's granularity: how many faults the last removal took out.
    chunk: usize,
    /// Every candidate run so far, by its schedule's TOML: whether it failed as the
    /// target did (its simulated time, the failure's time and history events if so).
    /// Runs are deterministic, so a candidate met again (the same subset reached by
    /// another path, or a pass repeating a search) needs no second run.
    tried: HashMap<String, Option<(u64, u64, usize)>>,
    _system: std::marker::PhantomData<S>,
}

impl<S: System> Shrinker<'_, S> {
    /// Runs `schedule`; `None` if the scenario refuses it (an invalid candidate).
    fn run(&mut self, schedule: &Schedule) -> Result<Option<Outcome>, ScenarioError> {
        let Ok(scenario) = self.scenario.with_overrides(schedule) else {
            return Ok(None);
        };
        if scenario.check_faults("faults", &schedule.faults).is_err() {
            return Ok(None);
        }
        let setup = match scenario.setup::<S>(self.bugs) {
            Ok(setup) => Arc::new(setup),
            // The original scenario must set up; a candidate that cannot is skipped.
            Err(e) if self.target.is_none() => return Err(e),
            Err(_) => return Ok(None),
        };
        if scenario
            .check_clients("faults", &schedule.faults, S::clients(&setup))
            .is_err()
        {
            return Ok(None);
        }
        // A candidate without an earlier member fault may make a later one invalid.
        let bootstrap = S::bootstrap_members(&setup);
        if scenario
            .check_members("faults", &schedule.faults, bootstrap.as_ref())
            .is_err()
        {
            return Ok(None);
        }
        self.runs += 1;
        Ok(Some(run_seed::<S>(&scenario, &setup, schedule, false)))
    }

    /// Whether `candidate` still fails the same check; its simulated time if so.
    fn fails(&mut self, candidate: &Schedule) -> Result<Option<u64>, ScenarioError> {
        let key = candidate.to_toml();
        if let Some(&known) = self.tried.get(&key) {
            return Ok(known.map(|found| self.accept(found)));
        }
        if self.runs >= RUNS_MAX {
            return Ok(None);
        }
        let target = self.target.clone().expect("a target failure");
        let Some(outcome) = self.run(candidate)? else {
            return Ok(None);
        };
        let found = outcome
            .failure
            .as_ref()
            .filter(|f| {
                f.kind == target.kind && (f.check == target.check || f.kind == FailureKind::Panic)
            })
            .map(|f| (outcome.sim_ns, f.time_ns, outcome.history_ops));
        self.tried.insert(key, found);
        Ok(found.map(|found| self.accept(found)))
    }

    /// Notes what the run of a failing candidate found (the first failing candidate is
    /// the one accepted, `first_failing`); returns its simulated time.
    fn accept(&mut self, (sim_ns, failing_ns, history_ops): (u64, u64, usize)) -> u64 {
        self.failing_ns = failing_ns;
        self.failing_history_ops = history_ops;
        sim_ns
    }

    /// The first of `candidates` that still fails.
    fn first_failing(
        &mut self,
        candidates: impl IntoIterator<Item = (Schedule, String)>,
    ) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
        for (candidate, what) in candidates {
            if let Some(sim_ns) = self.fails(&candidate)? {
                return Ok(Some((candidate, what, sim_ns)));
            }
        }
        Ok(None)
    }
}

fn with_faults(schedule: &Schedule, faults: Vec<FaultSpec>) -> Schedule {
    Schedule {
        faults,
        ..schedule.clone()
    }
}

/// The reductions, coarse to fine: each pass runs them in this order.
fn reductions<S: System>() -> [Reduction<S>; 7] {
    [
        shorten_fault_phase,
        remove_faults,
        keep_few_faults,
        shorten_faults,
        start_faults_later,
        shrink_fault_nodes,
        lighten_workload,
    ]
}

/// Delta debugging: removes a chunk of faults, halving the chunk size from where the
/// last removal left it down to single faults; at each size it also tries keeping one
/// chunk alone (a failure that needs only a few faults close together in time).
fn remove_faults<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let k = best.faults.len();
    if k == 0 {
        return Ok(None);
    }
    let mut size = s.chunk.min(k);
    loop {
        let chunks: Vec<_> = (0..k)
            .step_by(size)
            .map(|start| (start, (start + size).min(k)))
            .collect();
        let removed = chunks.iter().map(|&(start, end)| {
            let mut faults = best.faults.clone();
            faults.drain(start..end);
            let what = match end - start {
                1 => format!("removed fault {start} ({:?})", best.faults[start].kind()),
                n => format!("removed {n} faults ({start}..{end})"),
            };
            (with_faults(best, faults), what)
        });
        // One chunk alone: with two chunks that is the other's removal, already tried.
        let kept = chunks
            .iter()
            .filter(|_| chunks.len() > 2 && size > 1)
            .map(|&(start, end)| {
                let faults = best.faults[start..end].to_vec();
                let what = format!("kept only faults {start}..{end}");
                (with_faults(best, faults), what)
            });
        let candidates: Vec<_> = removed.chain(kept).collect();
        if let Some(found) = s.first_failing(candidates)? {
            s.chunk = size;
            return Ok(Some(found));
        }
        if size == 1 {
            return Ok(None);
        }
        size = size.div_ceil(2);
    }
}

/// Most subsets one search of [`keep_few_faults`] runs.
const SUBSETS_MAX: usize = 1_000;

/// Keeps only a few of the faults: every subset of one fault, then of two, and so
/// on, while all the subsets of the next size fit in [`SUBSETS_MAX`]. Removing faults
/// one chunk at a time stops where every single removal passes; a failure that needs
/// faults in a particular combination can still hold with far fewer, and each removal
/// changes the run from that point on (the seed's random streams are drawn in a
/// different order), so a smaller failing schedule need not be reachable one removal
/// at a time.
fn keep_few_faults<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let k = best.faults.len();
    let mut budget = SUBSETS_MAX;
    // Sizes up to k - 2: keeping k - 1 is removing one fault.
    for size in 1..k.saturating_sub(1) {
        let count = binomial(k, size);
        if count > budget {
            break;
        }
        budget -= count;
        let candidates = Combinations::new(k, size).map(|kept| {
            let faults = kept.iter().map(|&i| best.faults[i].clone()).collect();
            let what = format!("kept only faults {kept:?}");
            (with_faults(best, faults), what)
        });
        if let Some(found) = s.first_failing(candidates)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `n` choose `k` (`k` at most `n`), saturating.
fn binomial(n: usize, k: usize) -> usize {
    // Each partial product is itself a binomial coefficient, so the division is exact.
    (0..k.min(n - k)).fold(1usize, |c, i| c.saturating_mul(n - i) / (i + 1))
}

/// The `size`-element subsets of `0..n`, as sorted index lists in lexicographic order.
struct Combinations {
    n: usize,
    next: Option<Vec<usize>>,
}

impl Combinations {
    fn new(n: usize, size: usize) -> Self {
        let next = (size <= n).then(|| (0..size).collect());
        Combinations { n, next }
    }
}

impl Iterator for Combinations {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let size = current.len();
        // The rightmost index that can still move right, then everything after it
        // packed behind it.
        let movable = (0..size).rev().find(|&i| current[i] < self.n - size + i);
        self.next = movable.map(|i| {
            let mut next = current.clone();
            next[i] += 1;
            for j in i + 1..size {
                next[j] = next[j - 1] + 1;
            }
            next
        });
        Some(current)
    }
}

/// When each fault ends: its own end, or the final heal at the end of the phase.
fn end_ms(s: &Shrinker<'_, impl System>, best: &Schedule, fault: &Fault) -> u64 {
    fault
        .end_ms()
        .unwrap_or(best.duration_ms.unwrap_or(s.scenario.duration_ms))
}

/// A fault with its end at `end` (`None` for a fault that has no end).
fn set_end(fault: &Fault, end: u64) -> Option<Fault> {
    let mut f = fault.clone();
    *f.end_ms_mut()? = Some(end);
    Some(f)
}

fn set_start(fault: &Fault, at: u64) -> Fault {
    let mut f = fault.clone();
    *f.at_ms_mut() = at;
    f
}

/// Halves a fault's duration.
fn shorten_faults<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let candidates = each_fault(s, best, |i, fault, at, end| {
        let shorter = at + (end.saturating_sub(at)) / 2;
        (shorter > at).then_some(())?;
        let what = format!("fault {i} ({:?}) ends at {shorter} ms", fault.kind());
        Some((set_end(fault, shorter)?, what))
    });
    s.first_failing(candidates)
}

/// Moves a fault's start halfway to its end.
fn start_faults_later<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let candidates = each_fault(s, best, |i, fault, at, end| {
        let later = at + (end.saturating_sub(at)) / 2;
        (later > at && later < end).then_some(())?;
        let what = format!("fault {i} ({:?}) starts at {later} ms", fault.kind());
        Some((set_start(fault, later), what))
    });
    s.first_failing(candidates)
}

/// One candidate per fault that `change` (given the fault's index, itself, its start
/// and its end in ms) replaces, with what it changed; the faults stay in start order.
fn each_fault<S: System>(
    s: &Shrinker<'_, S>,
    best: &Schedule,
    change: impl Fn(usize, &Fault, u64, u64) -> Option<(Fault, String)>,
) -> Vec<(Schedule, String)> {
    (0..best.faults.len())
        .filter_map(|i| {
            let fault = &best.faults[i];
            let (replaced, what) = change(i, fault, fault.at_ms(), end_ms(s, best, fault))?;
            let mut faults = best.faults.clone();
            faults[i].fault = replaced;
            faults.sort_by_key(|f| f.at_ms());
            Some((with_faults(best, faults), what))
        })
        .collect()
}

/// Takes one node out of a fault's node list (a partition group, a side of a one-way
/// cut or a bridge, a spike's or a client partition's nodes).
fn shrink_fault_nodes<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let mut candidates = Vec::new();
    for (i, fault) in best.faults.iter().enumerate() {
        // A targeted fault's nodes are the target's: nothing to take out.
        let smaller = match fault.target {
            None => fewer_nodes(fault),
            Some(_) => Vec::new(),
        };
        for smaller in smaller {
            let mut faults = best.faults.clone();
            faults[i].fault = smaller;
            let what = format!("fault {i} ({:?}) names fewer nodes", fault.kind());
            candidates.push((with_faults(best, faults), what));
        }
    }
    s.first_failing(candidates)
}

/// Every version of `fault` with one node fewer in one of its lists (a list never
/// goes empty: for some faults an empty list means every node).
fn fewer_nodes(fault: &Fault) -> Vec<Fault> {
    let mut out = Vec::new();
    let lists = node_lists(&mut fault.clone()).len();
    for list in 0..lists {
        let len = node_lists(&mut fault.clone())[list].len();
        for j in (0..len).filter(|_| len >= 2) {
            let mut smaller = fault.clone();
            node_lists(&mut smaller)[list].remove(j);
            out.push(smaller);
        }
    }
    out
}

/// The lists of node ids a fault names: partition groups, the sides of a one-way cut,
/// a hold or a bridge, a spike's or a client partition's nodes.
fn node_lists(fault: &mut Fault) -> Vec<&mut Vec<usize>> {
    match fault {
        Fault::Partition { groups, .. } => groups.iter_mut().collect(),
        Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => vec![from, to],
        Fault::Bridge { left, right, .. } => vec![left, right],
        Fault::LatencySpike { nodes, .. } | Fault::ClientPartition { nodes, .. } => vec![nodes],
        _ => Vec::new(),
    }
}

/// Ends the fault phase right after the failure (a safety failure during the phase),
/// or halves it. Faults that start after the new end go: the run up to a failure is
/// the same without them, so the first candidate fails as the schedule does.
fn shorten_fault_phase<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let duration = best.duration_ms.unwrap_or(s.scenario.duration_ms);
    let failed_ms = s.failing_ns.div_ceil(1_000_000);
    let candidates = [failed_ms.saturating_add(1), duration / 2]
        .into_iter()
        .filter_map(|d| shorter_phase(s, best, d))
        .collect::<Vec<_>>();
    s.first_failing(candidates)
}

/// [`shorten_fault_phase`]'s first candidate alone: the step after any other.
fn end_phase_at_failure<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let failed_ms = s.failing_ns.div_ceil(1_000_000);
    let candidate = shorter_phase(s, best, failed_ms.saturating_add(1));
    s.first_failing(candidate)
}

/// `best` with a fault phase of `d` ms, without the faults that start after it;
/// `None` unless that is shorter.
fn shorter_phase<S: System>(
    s: &Shrinker<'_, S>,
    best: &Schedule,
    d: u64,
) -> Option<(Schedule, String)> {
    let duration = best.duration_ms.unwrap_or(s.scenario.duration_ms);
    (d > 0 && d < duration).then_some(())?;
    let faults: Vec<_> = best
        .faults
        .iter()
        .filter(|f| f.at_ms() < d)
        .cloned()
        .collect();
    let what = match best.faults.len() - faults.len() {
        0 => format!("the fault phase lasts {d} ms"),
        n => format!("the fault phase lasts {d} ms, without the {n} faults after it"),
    };
    let candidate = Schedule {
        duration_ms: Some(d),
        ..with_faults(best, faults)
    };
    Some((candidate, what))
}

/// Halves the workload's `clients`, then takes one away; then halves the operations
/// each client starts, or cuts them by a quarter ([`System::ops_per_client_key`]).
fn lighten_workload<S: System>(
    s: &mut Shrinker<'_, S>,
    best: &Schedule,
) -> Result<Option<(Schedule, String, u64)>, ScenarioError> {
    let Ok(scenario) = s.scenario.with_overrides(best) else {
        return Ok(None);
    };
    let with = |key: &str, n: i64| {
        let mut workload = best.workload.clone().unwrap_or_default();
        workload.insert(key.into(), toml::Value::Integer(n));
        Schedule {
            workload: Some(workload),
            ..best.clone()
        }
    };
    let mut candidates = Vec::new();
    let clients = scenario.workload_integer("clients");
    if let Some(clients) = clients {
        let mut counts = vec![clients / 2, clients - 1];
        counts.retain(|&c| c >= 1 && c < clients);
        counts.dedup();
        for c in counts {
            candidates.push((with("clients", c), format!("{c} clients")));
        }
    }
    if let Some(key) = S::ops_per_client_key() {
        // Unbounded so far: start from what each client ran in the failing run.
        let per_client = (s.failing_history_ops / 2) as i64 / clients.unwrap_or(1).max(1);
        let ops = match scenario.workload_integer(key) {
            Some(n) if n > 0 => n,
            _ => per_client + 1,
        };
        let mut counts = vec![ops / 2, ops * 3 / 4];
        counts.retain(|&n| n >= 1 && n < ops);
        counts.dedup();
        for n in counts {
            candidates.push((with(key, n), format!("{n} operations per client")));
        }
    }
    s.first_failing(candidates)
}

#[cfg(test)]
mod tests {
    use super::{binomial, Combinations};

    #[test]
    fn combinations_are_every_subset_of_a_size_once_in_order() {
        let all: Vec<_> = Combinations::new(4, 2).collect();
        let expected = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
        assert_eq!(all, expected.map(|c| c.to_vec()));
        for n in 0..8 {
            for k in 0..=n {
                assert_eq!(Combinations::new(n, k).count(), binomial(n, k), "{n} {k}");
            }
        }
        assert_eq!(Combinations::new(2, 3).count(), 0);
        assert_eq!(binomial(57, 2), 1596);
        assert!(binomial(200, 100) > 1 << 40, "saturates high");
    }
}
