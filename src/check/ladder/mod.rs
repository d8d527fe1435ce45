//! The consistency ladder: for one key-value history, which of these models it
//! satisfies, from strongest to weakest, and for each that fails a small set of
//! operations that shows it:
//!
//! 1. **linearizable** (Herlihy & Wing 1990): [`crate::check::linearizability`];
//! 2. **sequentially consistent** (Lamport 1979): [`sequential`], a search of its
//!    own over the whole history;
//! 3. the four **session guarantees** of Terry et al. 1994 ([`session`]): read your
//!    writes, monotonic reads, monotonic writes, writes follow reads, judged against
//!    the version order of [`versions`].
//!
//! Each model implies the ones below it (Jepsen's consistency-model map:
//! linearizable ⇒ sequential ⇒ the session guarantees), so the history's
//! [`Level`] is the strongest rung that holds. Indeterminate operations (`info`)
//! may or may not have taken effect, as in Jepsen. Every search has a hard step
//! budget ([`Budget`]); a rung whose search runs out is `unknown`.

use serde_json::{json, Value as Json};

use crate::check::linearizability::{check_problems, problem_from_kv, KeyResult, Limits, Problem};
use crate::check::model::{Machine, ModelKind};
use crate::history::{HistoryEvent, KvOp};

pub mod minimise;
pub mod ops;
pub mod sequential;
pub mod session;
pub mod versions;

use ops::LadderOp;
use sequential::ScOutcome;
use session::{Input, SessionVerdict};
use versions::VersionOrder;

/// A rung of the ladder, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rung {
    /// Linearizability.
    Linearizable,
    /// Sequential consistency.
    Sequential,
    /// Read your writes.
    ReadYourWrites,
    /// Monotonic reads.
    MonotonicReads,
    /// Monotonic writes.
    MonotonicWrites,
    /// Writes follow reads.
    WritesFollowReads,
}

impl Rung {
    /// Every rung, strongest first.
    pub const ALL: [Rung; 6] = [
        Rung::Linearizable,
        Rung::Sequential,
        Rung::ReadYourWrites,
        Rung::MonotonicReads,
        Rung::MonotonicWrites,
        Rung::WritesFollowReads,
    ];

    /// Its name in reports: `linearizable`, `sequential`, `read-your-writes`,
    /// `monotonic-reads`, `monotonic-writes`, `writes-follow-reads`.
    pub fn name(self) -> &'static str {
        match self {
            Rung::Linearizable => "linearizable",
            Rung::Sequential => "sequential",
            Rung::ReadYourWrites => "read-your-writes",
            Rung::MonotonicReads => "monotonic-reads",
            Rung::MonotonicWrites => "monotonic-writes",
            Rung::WritesFollowReads => "writes-follow-reads",
        }
    }
}

/// The strongest level a history reaches: the value of a scenario's
/// `[expect] rung`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Not even every session guarantee holds.
    Weaker,
    /// Every session guarantee holds, sequential consistency does not.
    Session,
    /// Sequentially consistent, not linearizable.
    Sequential,
    /// Linearizable.
    Linearizable,
}

impl Level {
    /// The names [`Level::parse`] takes, strongest first.
    pub const NAMES: [&'static str; 4] = ["linearizable", "sequential", "session", "weaker"];

    /// Its name: `linearizable`, `sequential`, `session` (all four session
    /// guarantees, not sequential), `weaker` (some session guarantee broken).
    pub fn name(self) -> &'static str {
        match self {
            Level::Linearizable => "linearizable",
            Level::Sequential => "sequential",
            Level::Session => "session",
            Level::Weaker => "weaker",
        }
    }

    /// Parses one of [`Level::NAMES`].
    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Linearizable,
            Level::Sequential,
            Level::Session,
            Level::Weaker,
        ]
        .into_iter()
        .find(|l| l.name() == s)
    }
}

/// A failing rung's evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The operations involved, by history index (the invoke's position among the
    /// client events, from 0: `history.jsonl`'s `index`), ascending.
    pub ops: Vec<usize>,
    /// The rule they break, in words.
    pub rule: String,
}

/// One rung's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RungVerdict {
    /// The history satisfies it.
    Holds,
    /// It does not.
    Broken(Counterexample),
    /// The search's budget ran out first (the reason says which).
    Unknown(String),
}

impl RungVerdict {
    /// `holds`, `broken`, `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            RungVerdict::Holds => "holds",
            RungVerdict::Broken(_) => "broken",
            RungVerdict::Unknown(_) => "unknown",
        }
    }
}

/// Hard bounds on the ladder's searches, all in steps (never wall time, so a
/// verdict does not depend on the machine).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Linearizability search steps per key.
    pub linearizable_steps_max: u64,
    /// Sequential-consistency search steps, for each key alone and then the whole.
    pub sequential_steps_max: u64,
    /// Steps to shrink a sequential-consistency counterexample.
    pub minimise_steps_max: u64,
    /// Comparisons per session guarantee.
    pub session_steps_max: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            linearizable_steps_max: 1 << 26,
            sequential_steps_max: 1 << 21,
            minimise_steps_max: 1 << 22,
            session_steps_max: 1 << 26,
        }
    }
}

/// The ladder of one history.
#[derive(Clone, Debug)]
pub struct Ladder {
    /// Every rung's verdict, strongest first (as [`Rung::ALL`]).
    pub rungs: Vec<(Rung, RungVerdict)>,
    /// The version order the session guarantees were judged against, in words.
    pub version_order: &'static str,
    /// Operations judged (after dropping `fail` ones and indeterminate reads).
    pub operations: usize,
}

impl Ladder {
    /// A rung's verdict.
    pub fn verdict(&self, rung: Rung) -> &RungVerdict {
        &self
            .rungs
            .iter()
            .find(|(r, _)| *r == rung)
            .expect("every rung")
            .1
    }

    /// The strongest level the history reaches, or `None` when an unknown rung
    /// leaves it open.
    pub fn level(&self) -> Option<Level> {
        let v = |r| self.verdict(r);
        match v(Rung::Linearizable) {
            RungVerdict::Holds => return Some(Level::Linearizable),
            RungVerdict::Unknown(_) => return None,
            RungVerdict::Broken(_) => {}
        }
        match v(Rung::Sequential) {
            RungVerdict::Holds => return Some(Level::Sequential),
            RungVerdict::Unknown(_) => return None,
            RungVerdict::Broken(_) => {}
        }
        let session = &Rung::ALL[2..];
        if session
            .iter()
            .any(|&r| matches!(v(r), RungVerdict::Broken(_)))
        {
            Some(Level::Weaker)
        } else if session.iter().all(|&r| *v(r) == RungVerdict::Holds) {
            Some(Level::Session)
        } else {
            None
        }
    }

    /// 0 linearizable, 1 some rung broken, 3 some rung unknown (and none broken).
    pub fn exit_code(&self) -> i32 {
        if self
            .rungs
            .iter()
            .any(|(_, v)| matches!(v, RungVerdict::Broken(_)))
        {
            1
        } else if self
            .rungs
            .iter()
            .any(|(_, v)| matches!(v, RungVerdict::Unknown(_)))
        {
            3
        } else {
            0
        }
    }

    /// The ladder as a table: rung, verdict, counterexample (operations by history
    /// index, then the rule), then the strongest level.
    pub fn render_table(&self) -> String {
        let mut out = format!("{:<20} {:<8} counterexample\n", "rung", "verdict");
        for (rung, verdict) in &self.rungs {
            let detail = match verdict {
                RungVerdict::Holds => String::new(),
                RungVerdict::Broken(c) => format!("{}: {}", show_ops(&c.ops), c.rule),
                RungVerdict::Unknown(why) => why.clone(),
            };
            let line = format!("{:<20} {:<8} {detail}", rung.name(), verdict.name());
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!("versions: {}\n", self.version_order));
        out.push_str(&format!(
            "strongest: {}\n",
            self.level().map_or("unknown", Level::name)
        ));
        out
    }

    /// The ladder as JSON: `{"operations", "version_order", "strongest", "rungs":
    /// [{"rung", "verdict", "ops", "rule"}]}`.
    pub fn to_json(&self) -> Json {
        let rungs: Vec<Json> = self
            .rungs
            .iter()
            .map(|(rung, v)| match v {
                RungVerdict::Holds => json!({"rung": rung.name(), "verdict": "holds"}),
                RungVerdict::Broken(c) => json!({
                    "rung": rung.name(), "verdict": "broken", "ops": c.ops, "rule": c.rule
                }),
                RungVerdict::Unknown(why) => {
                    json!({"rung": rung.name(), "verdict": "unknown", "reason": why})
                }
            })
            .collect();
        json!({
            "operations": self.operations,
            "version_order": self.version_order,
            "strongest": self.level().map(Level::name),
            "rungs": rungs,
        })
    }
}

/// `#3 #7 #9`.
pub fn show_ops(ops: &[usize]) -> String {
    ops.iter()
        .map(|i| format!("#{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One session guarantee's check.
type SessionCheck = fn(&Input<'_>) -> SessionVerdict;

/// Climbs the ladder for `problem` within `budget`.
pub fn check(problem: &Problem, budget: &Budget) -> Ladder {
    let ops = ops::operations(problem);
    let keys: Vec<String> = problem.keys.iter().map(|(k, _)| k.clone()).collect();
    let mut rungs = vec![(Rung::Linearizable, linearizable(problem, budget))];
    let mut machine = Machine::new(problem.model, &problem.values, problem.initial);
    let (sc, order) = sequential_rung(&ops, keys.len(), &mut machine, budget);
    rungs.push((Rung::Sequential, sc));
    let order = match order {
        Some(order) => VersionOrder::total(&order, ops.len()),
        None => VersionOrder::RealTime,
    };
    let reads_from = versions::reads_from(&ops, &machine);
    let input = Input {
        ops: &ops,
        reads_from: &reads_from,
        order: &order,
        keys: &keys,
        steps_max: budget.session_steps_max,
    };
    let checks: [(Rung, SessionCheck); 4] = [
        (Rung::ReadYourWrites, session::read_your_writes),
        (Rung::MonotonicReads, session::monotonic_reads),
        (Rung::MonotonicWrites, session::monotonic_writes),
        (Rung::WritesFollowReads, session::writes_follow_reads),
    ];
    for (rung, check) in checks {
        let verdict = match check(&input) {
            SessionVerdict::Holds => RungVerdict::Holds,
            SessionVerdict::Broken(v) => RungVerdict::Broken(Counterexample {
                ops: v.ops.iter().map(|&i| ops[i].index).collect(),
                rule: v.rule,
            }),
            SessionVerdict::Unknown => RungVerdict::Unknown(format!(
                "budget of {} comparisons spent",
                budget.session_steps_max
            )),
        };
        rungs.push((rung, verdict));
    }
    Ladder {
        rungs,
        version_order: match order {
            VersionOrder::RealTime => {
                "real time (a write is older than one invoked after it completed)"
            }
            VersionOrder::Total(_) => "the sequential order found",
        },
        operations: ops.len(),
    }
}

/// Climbs the ladder for a simulator key-value history, within the default budget.
///
/// # Panics
/// If the history does not pair up: the simulator's histories are well formed by
/// construction.
pub fn check_kv(history: &[HistoryEvent<KvOp>]) -> Ladder {
    let problem = match problem_from_kv(ModelKind::Kv, history) {
        Ok(p) => p,
        Err(e) => panic!("malformed history at event {}: {}", e.position, e.message),
    };
    check(&problem, &Budget::default())
}

fn linearizable(problem: &Problem, budget: &Budget) -> RungVerdict {
    let limits = Limits {
        key_steps_max: budget.linearizable_steps_max,
        threads: 1,
        timeout: None,
        ..Limits::default()
    };
    let outcome = check_problems(std::slice::from_ref(problem), &limits)
        .pop()
        .expect("one outcome per problem");
    let mut unknown = None;
    for key in &outcome.keys {
        match &key.result {
            KeyResult::NotLinearizable(f) => {
                let ops = &problem.keys[key.index].1;
                let mut idx: Vec<usize> = f.witness.iter().map(|&i| ops[i].invoke).collect();
                idx.sort_unstable();
                return RungVerdict::Broken(Counterexample {
                    ops: idx,
                    rule: format!(
                        "no order of these operations on {} respects real time and the model",
                        key.key
                    ),
                });
            }
            KeyResult::Unknown(u) => unknown = Some(u.describe()),
            KeyResult::Linearizable => {}
        }
    }
    match unknown {
        Some(why) => RungVerdict::Unknown(format!(
            "{why} ({} steps per key)",
            budget.linearizable_steps_max
        )),
        None => RungVerdict::Holds,
    }
}

/// The sequential rung, and the order found when it holds: each key alone first (a
/// key with no order refutes the whole), then the whole history.
fn sequential_rung(
    ops: &[LadderOp],
    keys: usize,
    machine: &mut Machine<'_>,
    budget: &Budget,
) -> (RungVerdict, Option<Vec<usize>>) {
    let steps = budget.sequential_steps_max;
    let unknown =
        |what: &str| RungVerdict::Unknown(format!("{what}: search budget of {steps} steps spent"));
    let mut failing: Option<Vec<usize>> = None;
    let mut open = false;
    for key in 0..keys {
        let subset: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].key == key).collect();
        match sequential::search(ops, &subset, keys, machine, steps).0 {
            ScOutcome::Broken => {
                failing = Some(subset);
                break;
            }
            ScOutcome::Unknown => open = true,
            ScOutcome::Holds(_) => {}
        }
    }
    let all: Vec<usize> = (0..ops.len()).collect();
    let failing = match failing {
        Some(f) => f,
        None => match sequential::search(ops, &all, keys, machine, steps).0 {
            ScOutcome::Holds(order) => return (RungVerdict::Holds, Some(order)),
            ScOutcome::Unknown if open => return (unknown("a key and the whole history"), None),
            ScOutcome::Unknown => return (unknown("the whole history"), None),
            ScOutcome::Broken => all,
        },
    };
    let (set, complete) =
        minimise::minimise(ops, &failing, keys, machine, budget.minimise_steps_max);
    let idx: Vec<usize> = set.iter().map(|&i| ops[i].index).collect();
    let minimal = if complete {
        ""
    } else {
        " (not fully shrunk: budget spent)"
    };
    (
        RungVerdict::Broken(Counterexample {
            ops: idx,
            rule: format!(
                "no single order of these {} operations keeps each client's program order and gives every read the last value written{minimal}",
                set.len()
            ),
        }),
        None,
    )
}
