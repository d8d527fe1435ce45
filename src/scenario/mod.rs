//! Scenario files: a cluster, a workload, network conditions, faults (explicit and
//! random), a run length, a final heal-and-quiesce phase, and what to expect.
//!
//! Parsing is strict (unknown fields are refused) and every error names the file and
//! a line and column or a field. Bad input never panics.

#![warn(missing_docs)]

mod error;
mod fault;
mod schedule;
mod target;

use std::path::Path;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use error::{Location, ScenarioError};
pub use fault::{in_scope, Fault, FaultKind, Latency, Link};
pub(crate) use schedule::draw;
pub use schedule::Schedule;
pub use target::{FaultSpec, Target};

use crate::check::Availability;
use crate::process::{NodeId, Process};
use crate::system::{Setup, System};

/// The largest cluster a scenario may ask for.
pub const NODES_MAX: usize = 1024;
/// The longest fault phase or quiesce phase, in milliseconds (a simulated day).
pub const DURATION_MS_MAX: u64 = 86_400_000;
/// The most faults a run may have: listed, saved in a schedule, or drawn at random.
pub const RANDOM_FAULTS_MAX: usize = 10_000;
/// Largest clock drift a scenario may ask for, in parts per million (±50%).
pub const DRIFT_PPM_MAX: f64 = 500_000.0;

/// A scenario file, parsed and checked (see [`Scenario::parse`]). The protocol's own
/// `[cluster.config]` and `[workload]` tables are kept as text and typed by
/// [`Scenario::setup`].
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file it came from, as the user named it (for error messages).
    pub file: String,
    text: String,
    /// Its name; a run's artifacts go to `<artifacts>/<name>/seed-<seed>/`.
    pub name: String,
    /// One line on what it runs (`faultline list` prints it).
    pub description: String,
    /// What it teaches; empty if the file has no `lesson`.
    pub lesson: String,
    /// `[cluster] protocol`: the [`System::NAME`] that runs it.
    pub protocol: String,
    /// `[cluster] nodes`: the cluster's size, 1 to [`NODES_MAX`].
    pub nodes: usize,
    /// `[network]`: conditions for the whole run.
    pub network: NetworkSpec,
    /// `[disk]`: every node's disk.
    pub disk: DiskSpec,
    /// The explicit `[[faults]]`, in file order.
    pub faults: Vec<FaultSpec>,
    /// `[random]`: the fault generator, if the file has one.
    pub random: Option<RandomFaults>,
    /// The fault phase's length, in ms (1 to [`DURATION_MS_MAX`]).
    pub duration_ms: u64,
    /// `[liveness]`: the final phase.
    pub liveness: LivenessSpec,
    /// `[expect]`: what a run must show.
    pub expect: Expect,
    /// Bugs to inject, by name (checked against [`System::bugs`] by
    /// [`Scenario::setup`]).
    pub bugs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioDoc {
    name: String,
    description: String,
    #[serde(default)]
    lesson: String,
    cluster: ClusterDoc,
    #[serde(default)]
    #[allow(dead_code)] // read by the second, typed pass
    workload: toml::Table,
    #[serde(default)]
    network: NetworkSpec,
    #[serde(default)]
    disk: DiskSpec,
    #[serde(default)]
    faults: Vec<FaultSpec>,
    random: Option<RandomFaults>,
    duration_ms: u64,
    #[serde(default)]
    liveness: LivenessSpec,
    #[serde(default)]
    expect: Expect,
    #[serde(default)]
    bugs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterDoc {
    protocol: String,
    nodes: usize,
    #[serde(default)]
    #[allow(dead_code)] // read by the second, typed pass
    config: toml::Table,
}

/// The typed pass: only the protocol's own tables, at their place in the file, so
/// that their errors carry lines and columns too.
#[derive(Deserialize)]
#[serde(bound(
    deserialize = "C: serde::de::DeserializeOwned + Default, W: serde::de::DeserializeOwned + Default"
))]
struct TypedDoc<C, W> {
    cluster: TypedCluster<C>,
    #[serde(default)]
    workload: W,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "C: serde::de::DeserializeOwned + Default"))]
struct TypedCluster<C> {
    #[serde(default)]
    config: C,
}

/// Network conditions for the whole run (faults come on top, and are healed at the
/// end; these conditions are not).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Between processes, unless a link overrides it.
    pub latency: Latency,
    /// Between clients and processes (clients are never partitioned, lose or
    /// duplicate nothing: they stand for well-connected application servers).
    pub client_latency: Option<Latency>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice (the copy has its own latency).
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_ms_max` extra.
    pub reorder: f64,
    /// Most extra delay a held-back message gets, in ms, drawn uniformly from
    /// `[0, reorder_ms_max]` (0 to 1,000,000; default 0).
    pub reorder_ms_max: f64,
    /// Per-link latency overrides (directed).
    pub links: Vec<LinkSpec>,
}

/// Every node's disk (faults come on top).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpec {
    /// Time from a sync's start to its completion when the disk is idle; syncs
    /// complete in issue order, so one waits for those before it. The default, 0.5 to
    /// 2 ms, is a datacenter SSD's fsync.
    pub sync_latency: Latency,
    /// How long after a process aborts itself (see `Context::abort`, e.g. on an fsync
    /// error) its supervisor restarts it, in ms.
    pub abort_restart_ms: u64,
}

impl Default for DiskSpec {
    fn default() -> Self {
        DiskSpec {
            sync_latency: Latency::Uniform {
                min_ms: 0.5,
                max_ms: 2.0,
            },
            abort_restart_ms: 500,
        }
    }
}

/// A latency override for one directed link, in `network.links`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// What messages from `from` to `to` draw instead of `network.latency`.
    pub latency: Latency,
}

/// A random fault generator, expanded from the seed before the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomFaults {
    /// Time between the starts of two faults.
    pub interval_ms: RangeMs,
    /// How long each fault lasts.
    pub duration_ms: RangeMs,
    /// The kinds to draw from, uniformly, one per fault (not empty; default
    /// `partition` and `crash`). A down fault (crash, pause, disk wipe) that finds no
    /// node to take down within `max_down` is skipped.
    pub kinds: Vec<FaultKind>,
    /// At most this many nodes crashed or paused at once.
    pub max_down: usize,
    /// When drawing starts, in ms: the first fault starts one interval later.
    pub start_ms: u64,
    /// Defaults to the scenario's `duration_ms`.
    pub end_ms: Option<u64>,
    /// At most this many faults are drawn (at most [`RANDOM_FAULTS_MAX`]).
    pub max_faults: usize,
    /// Probability that a crash tears the unsynced tail instead of losing it whole.
    pub torn_rate: f64,
    /// The `rate` of a drawn `loss` fault.
    pub loss_rate: f64,
    /// The `rate` of a drawn `duplicate` fault.
    pub duplicate_rate: f64,
    /// The `delay` of a drawn `latency-spike` fault.
    pub spike: Latency,
    /// Clock steps move a wall clock by at most this much either way.
    pub clock_offset_ms_max: i64,
    /// Clock drifts are drawn from ±this.
    pub drift_ppm_max: f64,
    /// A `disk-slow` fault multiplies sync latency by this.
    pub disk_slow_factor: f64,
    /// Probability that a `loss` fault hits only the links of one node drawn at
    /// random (a flaky NIC) instead of every link.
    pub loss_per_node: f64,
    /// How late a `slow` node runs each handler.
    pub slow_delay: Latency,
    /// Probability that a drawn `member-add` of a node outside the cluster adds it as
    /// a learner rather than as a voter (a learner is later promoted by another
    /// `member-add`). Drawn only when above 0.
    pub member_learner_rate: f64,
    /// The operator's command timeout (etcdctl's `--command-timeout`) of a drawn
    /// `member-add` or `member-remove`, in ms, drawn from this range: past it the
    /// operator gives the change up and moves on, while the change may still commit.
    /// Unset, it keeps asking until a final answer. Drawn only when set.
    pub member_timeout_ms: Option<RangeMs>,
    /// Probability that a drawn network cut (`partition`, `one-way`, `bridge`,
    /// `isolate`) drops only some classes of messages (see `Process::message_class`)
    /// and lets the others through: a gray failure, where what one path observes
    /// differs from what another does (Huang et al., "Gray Failure: The Achilles'
    /// Heel of Cloud-Scale Systems", HotOS 2017). Drawn only when above 0.
    pub classes_rate: f64,
    /// The class sets such a cut draws from, uniformly (each set a list of the
    /// protocol's classes) [default: none, and a cut drops a random non-empty proper
    /// subset of the protocol's classes, each class with probability one half].
    pub class_sets: Vec<Vec<String>>,
    /// Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): each seed enables its
    /// own random subset of `kinds` (each distinct kind with probability one half, at
    /// least one; a kind listed twice keeps its weight) and its own range of times
    /// between faults, drawn within `interval_ms`. The subset is written into the
    /// schedule. Off by default.
    pub swarm: bool,
    /// Probability that a drawn fault of a kind that can name a role (see
    /// [`FaultKind::targetable`]) names one of `targets` instead of node ids, as
    /// Jepsen's nemesis targets `:primaries` or `:majority`. Drawn only when above 0.
    pub target_rate: f64,
    /// The roles a targeted fault draws from (uniformly; list one twice to weigh it
    /// double) [default: every target]. For `crash`, `pause` and `disk-wipe` only
    /// those that take down at most `max_down` nodes are drawn.
    pub targets: Vec<Target>,
}

impl Default for RandomFaults {
    fn default() -> Self {
        RandomFaults {
            interval_ms: RangeMs {
                min: 1_000,
                max: 3_000,
            },
            duration_ms: RangeMs {
                min: 500,
                max: 5_000,
            },
            kinds: vec![FaultKind::Partition, FaultKind::Crash],
            max_down: 1,
            start_ms: 0,
            end_ms: None,
            max_faults: 1_000,
            torn_rate: 0.5,
            loss_rate: 0.2,
            duplicate_rate: 0.2,
            spike: Latency::Exponential {
                min_ms: 50.0,
                mean_ms: 200.0,
            },
            clock_offset_ms_max: 500,
            drift_ppm_max: 1_000.0,
            disk_slow_factor: 20.0,
            loss_per_node: 0.0,
            slow_delay: Latency::Uniform {
                min_ms: 1.0,
                max_ms: 50.0,
            },
            member_learner_rate: 0.0,
            member_timeout_ms: None,
            classes_rate: 0.0,
            class_sets: Vec::new(),
            swarm: false,
            target_rate: 0.0,
            targets: Target::ALL.to_vec(),
        }
    }
}

/// `{ min = .., max = .. }` in ms, both inclusive; draws are uniform over it. The
/// generator's ranges need `0 < min <= max <=` [`DURATION_MS_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeMs {
    /// The shortest, in ms.
    pub min: u64,
    /// The longest, in ms.
    pub max: u64,
}

/// The final phase: every fault but the permanent ones is healed (partitions, spikes,
/// loss and duplication windows end; crashed nodes restart; paused nodes resume),
/// clients stop starting operations, and every checker's liveness condition must hold
/// within `quiesce_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessSpec {
    /// The bound. Unset, the protocol derives it from its config (see
    /// [`System::liveness_bound_ms`]; 10 s for a protocol that does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiesce_ms: Option<u64>,
    /// For protocols with a leader: a leader followed by a majority must exist this
    /// many ms after the heal, timed to the step it appeared in. Unset, the protocol
    /// derives it ([`System::leader_bound_ms`]; Raft: 10 election timeouts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_ms: Option<u64>,
    /// Once settled, the cluster must stay so this many ms more: the phase runs on,
    /// the leader found must keep its office (no new term led), and every condition
    /// must hold again at the end. Unset or 0: the phase ends as soon as it settles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_ms: Option<u64>,
    /// `false` skips the liveness judgement (the phase still runs).
    pub check: bool,
    /// `"progress"`: the cluster recovers and makes progress within the bound.
    /// `"unavailable"`: what permanent faults left cannot make progress; it must stay
    /// safe, make none, and every client must give up on what it asked by the bound.
    /// Unset: progress when a majority of the nodes is up, not paused, and connected
    /// both ways to one another after the heal; unavailable otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Availability>,
}

impl Default for LivenessSpec {
    fn default() -> Self {
        LivenessSpec {
            quiesce_ms: None,
            leader_ms: None,
            stable_ms: None,
            check: true,
            expect: None,
        }
    }
}

/// A cluster configuration as the scenario tracks it statically, from the bootstrap
/// one ([`System::bootstrap_members`]) through the member faults in start-time order:
/// what validation checks `member-add`/`member-remove`/`member-replace` against and
/// what the generator draws them from. The run itself may differ (a change refused
/// or abandoned at runtime); the nodes then answer with a refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// The voters.
    pub voters: std::collections::BTreeSet<NodeId>,
    /// The learners (members that vote in nothing); none is a voter.
    pub learners: std::collections::BTreeSet<NodeId>,
}

impl Members {
    /// A configuration of `voters` only.
    pub fn voters(voters: impl IntoIterator<Item = NodeId>) -> Members {
        Members {
            voters: voters.into_iter().collect(),
            learners: Default::default(),
        }
    }

    /// Whether `node` is a voter or a learner.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.learners.contains(&node)
    }

    /// Whether `node` may be removed: a member, and not the last voter.
    pub fn removable(&self, node: NodeId) -> Result<(), String> {
        if !self.is_member(node) {
            return Err(format!("node {node} is not a member ({self})"));
        }
        if self.voters.len() == 1 && self.voters.contains(&node) {
            return Err(format!(
                "removing node {node} would leave no voter ({self})"
            ));
        }
        Ok(())
    }

    /// Applies a member fault (other faults change nothing). `Err`: the fault is not
    /// valid in this configuration, saying why; the configuration is then unchanged.
    pub fn apply(&mut self, fault: &Fault) -> Result<(), String> {
        match *fault {
            Fault::MemberAdd { node, learner, .. } => {
                if self.voters.contains(&node) {
                    return Err(format!("node {node} is already a voter ({self})"));
                }
                if learner && self.learners.contains(&node) {
                    return Err(format!("node {node} is already a learner ({self})"));
                }
                if learner {
                    self.learners.insert(node);
                } else {
                    self.learners.remove(&node);
                    self.voters.insert(node);
                }
            }
            Fault::MemberRemove { node, .. } => {
                self.removable(node)?;
                self.voters.remove(&node);
                self.learners.remove(&node);
            }
            // Removed, then added back as it was: no change once it is done.
            Fault::MemberReplace { node, .. } => self.removable(node)?,
            _ => {}
        }
        Ok(())
    }
}

impl std::fmt::Display for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "voters {:?}, learners {:?}", self.voters, self.learners)
    }
}

/// The bound on the liveness phase when a scenario sets none and its protocol derives
/// none.
pub const QUIESCE_MS_DEFAULT: u64 = 10_000;

/// What a run must show. By default every check passes; a teaching scenario instead
/// names the check that must fail (`"linearizability"`, `"liveness"`, an invariant's
/// name, or a failure kind: `"invariant"`, `"history"`, `"panic"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// The check that must fail (its name, or its failure kind's); `None`: every
    /// check must pass.
    pub failure: Option<String>,
    /// Bounds on a run's metrics, by name: a seed whose metric falls outside fails
    /// (kind `expectation`, check = the metric's name); a metric the run does not
    /// produce fails it too, naming the ones it does.
    pub metrics: BTreeMap<String, MetricBound>,
    /// Sweep-level: `name = min_fraction` asks that at least that fraction of a sweep's
    /// seeds produce the metric `sometimes.<name>` above zero (a process or checker
    /// marks an interesting state that way); the sweep fails otherwise.
    pub sometimes: BTreeMap<String, f64>,
    /// Key-value scenarios: the strongest consistency level of the consistency
    /// ladder ([`crate::check::ladder::Level`]) the weakest of seeds 0..20 reaches:
    /// `linearizable`, `sequential`, `session` or `weaker`. Measured
    /// (results/ladder.md) and asserted by tests/ladder.rs; runs do not judge it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<String>,
}

/// `{ min = .., max = .. }`, either or both, inclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBound {
    /// The lowest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl MetricBound {
    /// `Err` describing the bound when `value` is outside it.
    pub fn check(&self, value: f64) -> Result<(), String> {
        match (self.min, self.max) {
            (Some(min), _) if value < min => Err(format!("min = {min}")),
            (_, Some(max)) if value > max => Err(format!("max = {max}")),
            _ => Ok(()),
        }
    }
}

impl Scenario {
    /// Reads a scenario file and [`parse`](Scenario::parse)s it; `path`, as given,
    /// names it in errors. Errors: the file cannot be read, or what `parse` refuses.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::file(&file, format!("cannot read: {e}")))?;
        Scenario::parse(&file, &text)
    }

    /// A path to a scenario file, or the name of one in `scenarios/` (looked up in the
    /// working directory, then beside faultline's own sources).
    pub fn find(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let path = Path::new(name_or_path);
        if path.exists() {
            return Scenario::load(path);
        }
        let file = format!("{}.toml", name_or_path.trim_end_matches(".toml"));
        for dir in [
            Path::new("scenarios"),
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
        ] {
            let candidate = dir.join(&file);
            if candidate.exists() {
                return Scenario::load(&candidate);
            }
        }
        Err(ScenarioError::file(
            name_or_path,
            "no such file, and no scenario of that name in scenarios/",
        ))
    }

    /// Parses and checks a scenario's `text`; `file` names it in errors. Errors: a TOML
    /// syntax or type error or an unknown field (with its line and column), or a value
    /// out of range (with its field): node ids, probabilities, latencies, durations,
    /// fault shapes, overlapping down faults, the generator's settings.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let doc: ScenarioDoc =
            toml::from_str(text).map_err(|e| ScenarioError::toml(file, text, &e))?;
        let scenario = Scenario {
            file: file.to_string(),
            text: text.to_string(),
            name: doc.name,
            description: doc.description,
            lesson: doc.lesson,
            protocol: doc.cluster.protocol,
            nodes: doc.cluster.nodes,
            network: doc.network,
            disk: doc.disk,
            faults: doc.faults,
            random: doc.random,
            duration_ms: doc.duration_ms,
            liveness: doc.liveness,
            expect: doc.expect,
            bugs: doc.bugs,
        };
        scenario.validate()?;
        Ok(scenario)
    }

    /// The protocol's own tables, typed, and the set-up for `S` with `extra_bugs`.
    pub fn setup<S: System>(&self, extra_bugs: &[String]) -> Result<Setup<S>, ScenarioError> {
        let doc: TypedDoc<S::Config, S::Workload> = toml::from_str(&self.text)
            .map_err(|e| ScenarioError::toml(&self.file, &self.text, &e))?;
        let mut bugs = self.bugs.clone();
        bugs.extend(extra_bugs.iter().cloned());
        for (i, bug) in bugs.iter().enumerate() {
            if !S::bugs().iter().any(|b| b.name == bug) {
                let known: Vec<_> = S::bugs().iter().map(|b| b.name).collect();
                let field = if i < self.bugs.len() {
                    format!("bugs[{i}]")
                } else {
                    "--bug".to_string()
                };
                let message = format!(
                    "unknown bug `{bug}` for protocol {} (known: {})",
                    S::NAME,
                    known.join(", ")
                );
                return Err(ScenarioError::field(&self.file, field, message));
            }
        }
        let classes = <S::Process as Process>::message_classes();
        self.check_classes("faults", &self.faults, classes)?;
        if let Some(random) = &self.random {
            self.check_class_sets(random, classes)?;
        }
        let mut setup = Setup {
            nodes: self.nodes,
            config: doc.cluster.config,
            workload: doc.workload,
            bugs,
            leader_ms: None,
            coverage: false,
        };
        S::validate(&setup)
            .map_err(|(field, message)| ScenarioError::field(&self.file, field, message))?;
        setup.leader_ms = match (self.liveness.leader_ms, S::leader_bound_ms(&setup)) {
            (Some(_), None) => {
                let message = format!("protocol {} has no leader to bound", S::NAME);
                return Err(self.err("liveness.leader_ms", message));
            }
            (ms, derived) => ms.or(derived),
        };
        self.check_clients("faults", &self.faults, S::clients(&setup))?;
        self.check_services(
            "faults",
            &self.faults,
            <S::Process as Process>::serves_application(),
        )?;
        self.check_members(
            "faults",
            &self.faults,
            S::bootstrap_members(&setup).as_ref(),
        )?;
        for name in self.expect.sometimes.keys() {
            if !S::sometimes().contains(&name.as_str()) {
                let message = format!(
                    "{} marks no state `{name}` (it marks: {})",
                    S::NAME,
                    S::sometimes().join(", ")
                );
                return Err(self.err(format!("expect.sometimes.{name}"), message));
            }
        }
        Ok(setup)
    }

    /// The liveness phase's bound for protocol `S`: the scenario's `quiesce_ms`, else
    /// what the protocol derives from its config.
    pub fn quiesce_ms<S: System>(&self, setup: &Setup<S>) -> u64 {
        self.liveness
            .quiesce_ms
            .or_else(|| S::liveness_bound_ms(setup))
            .unwrap_or(QUIESCE_MS_DEFAULT)
    }

    /// The seed's explicit fault schedule: the scenario's own faults plus what its
    /// random generator draws from the seed. `clients` is how many clients the
    /// protocol's workload runs (`System::clients`), for random client faults.
    pub fn schedule(&self, seed: u64, clients: usize) -> Schedule {
        Schedule::expand(self, seed, clients)
    }

    /// The scenario as `schedule` runs it: its `duration_ms` and `[workload]` keys, if
    /// it has any, replace the scenario's own. The schedule's faults replace the
    /// scenario's own and its generator's, so those are left out: a staged fault after
    /// a shorter fault phase, or naming a client a lighter workload lacks, is not the
    /// schedule's. Errors name the schedule's field.
    pub fn with_overrides(&self, schedule: &Schedule) -> Result<Scenario, ScenarioError> {
        if !schedule.overrides() {
            return Ok(self.clone());
        }
        let mut doc: toml::Table = toml::from_str(&self.text)
            .map_err(|e| ScenarioError::toml(&self.file, &self.text, &e))?;
        doc.remove("faults");
        doc.remove("random");
        if let Some(ms) = schedule.duration_ms {
            doc.insert(
                "duration_ms".into(),
                toml::Value::Integer(ms.min(i64::MAX as u64) as i64),
            );
        }
        if let Some(keys) = &schedule.workload {
            let workload = doc
                .entry("workload")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(table) = workload.as_table_mut() else {
                return Err(self.err("workload", "is not a table"));
            };
            table.extend(keys.clone());
        }
        let text = toml::to_string(&doc).expect("a TOML table serializes");
        Scenario::parse(&self.file, &text)
    }

    /// [`Scenario::schedule`] for protocol `S` set up as `setup`: its client count, and
    /// its bootstrap configuration for the membership kinds of `[random]` (which
    /// [`Scenario::schedule`] alone never draws).
    pub fn schedule_for<S: System>(&self, seed: u64, setup: &Setup<S>) -> Schedule {
        Schedule::expand_with(
            self,
            seed,
            S::clients(setup),
            S::bootstrap_members(setup).as_ref(),
            <S::Process as Process>::message_classes(),
        )
    }

    /// Checks the member faults of `faults` (`what` names the list in errors) against
    /// the configuration they lead to from `bootstrap`, in start-time order (ties in
    /// list order): no `member-add` of a voter (or, as a learner, of a member), no
    /// `member-remove` or `member-replace` of a non-member or of the last voter; and
    /// none at all when the protocol has no membership changes (`bootstrap` is
    /// `None`), nor in `[random] kinds` then.
    pub fn check_members(
        &self,
        what: &str,
        faults: &[FaultSpec],
        bootstrap: Option<&Members>,
    ) -> Result<(), ScenarioError> {
        let Some(bootstrap) = bootstrap else {
            let none = |field: String| {
                let message = format!(
                    "protocol {} has no membership changes: member faults need one that has",
                    self.protocol
                );
                Err(self.err(field, message))
            };
            if let Some(i) = faults.iter().position(|f| f.kind().is_membership()) {
                return none(format!("{what}[{i}].kind"));
            }
            let random = self.random.iter().flat_map(|r| &r.kinds);
            if random.clone().any(|k| k.is_membership()) {
                return none("random.kinds".into());
            }
            return Ok(());
        };
        let mut order: Vec<usize> = (0..faults.len())
            .filter(|&i| faults[i].kind().is_membership())
            .collect();
        order.sort_by_key(|&i| faults[i].at_ms()); // stable: ties keep list order
        let mut members = bootstrap.clone();
        for i in order {
            if let Err(why) = members.apply(&faults[i]) {
                let message = format!(
                    "{why}, as the bootstrap configuration and the earlier member faults leave it"
                );
                return Err(self.err(format!("{what}[{i}].node"), message));
            }
        }
        Ok(())
    }

    /// An integer key of the scenario's `[workload]` table, if it has one.
    pub fn workload_integer(&self, key: &str) -> Option<i64> {
        let doc: toml::Table = toml::from_str(&self.text).ok()?;
        doc.get("workload")?.get(key)?.as_integer()
    }

    /// Checks the client ids `faults` name against the `clients` the workload runs,
    /// and that random client faults have a client to strike.
    pub fn check_clients(
        &self,
        what: &str,
        faults: &[FaultSpec],
        clients: usize,
    ) -> Result<(), ScenarioError> {
        for (i, fault) in faults.iter().enumerate() {
            for (field, client) in fault.client_ids() {
                if client >= clients {
                    let message = format!(
                        "client {client} is out of range: the workload has clients 0..{clients}"
                    );
                    return Err(self.err(format!("{what}[{i}].{field}"), message));
                }
            }
        }
        let client_kinds = [
            FaultKind::ClientPartition,
            FaultKind::ClientPause,
            FaultKind::ClientPin,
        ];
        let mut random = self.random.iter().flat_map(|r| &r.kinds);
        if let Some(kind) = random.find(|k| client_kinds.contains(k)) {
            if clients == 0 {
                let message = format!("{kind:?} needs a client, and the workload runs none");
                return Err(self.err("random.kinds", message));
            }
        }
        Ok(())
    }

    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::field(&self.file, field, message)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(self.err(
                "cluster.nodes",
                format!("must be between 1 and {NODES_MAX}, not {}", self.nodes),
            ));
        }
        check_duration(self, "duration_ms", self.duration_ms)?;
        for (field, ms) in [
            ("liveness.quiesce_ms", self.liveness.quiesce_ms),
            ("liveness.leader_ms", self.liveness.leader_ms),
            ("liveness.stable_ms", self.liveness.stable_ms),
        ] {
            if let Some(ms) = ms {
                check_duration(self, field, ms)?;
            }
        }
        for (name, bound) in &self.expect.metrics {
            let field = format!("expect.metrics.{name}");
            let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
            if bound.min.is_none() && bound.max.is_none() {
                return Err(self.err(field, "needs `min`, `max` or both"));
            }
            if !finite(bound.min) || !finite(bound.max) {
                return Err(self.err(field, "bounds must be finite numbers"));
            }
            if let (Some(min), Some(max)) = (bound.min, bound.max) {
                if min > max {
                    return Err(self.err(field, format!("min = {min} is above max = {max}")));
                }
            }
        }
        if let Some(rung) = &self.expect.rung {
            if crate::check::ladder::Level::parse(rung).is_none() {
                let names = crate::check::ladder::Level::NAMES.join(", ");
                let message = format!("{rung:?} is not a rung: expected one of {names}");
                return Err(self.err("expect.rung", message));
            }
        }
        for (name, &fraction) in &self.expect.sometimes {
            if !(0.0..=1.0).contains(&fraction) {
                let message = format!("{fraction} is not a fraction of seeds in [0, 1]");
                return Err(self.err(format!("expect.sometimes.{name}"), message));
            }
        }
        let net = &self.network;
        for (field, p) in [
            ("loss", net.loss),
            ("duplicate", net.duplicate),
            ("reorder", net.reorder),
        ] {
            check_probability(self, &format!("network.{field}"), p)?;
        }
        if !(0.0..=1e6).contains(&net.reorder_ms_max) {
            return Err(self.err("network.reorder_ms_max", "must be between 0 and 1000000"));
        }
        net.latency
            .check()
            .map_err(|m| self.err("network.latency", m))?;
        if let Some(l) = &net.client_latency {
            l.check()
                .map_err(|m| self.err("network.client_latency", m))?;
        }
        for (i, link) in net.links.iter().enumerate() {
            self.check_node(&format!("network.links[{i}].from"), link.from)?;
            self.check_node(&format!("network.links[{i}].to"), link.to)?;
            link.latency
                .check()
                .map_err(|m| self.err(format!("network.links[{i}].latency"), m))?;
        }
        self.disk
            .sync_latency
            .check()
            .map_err(|m| self.err("disk.sync_latency", m))?;
        check_duration(self, "disk.abort_restart_ms", self.disk.abort_restart_ms)?;
        self.check_faults("faults", &self.faults)?;
        if let Some(random) = &self.random {
            self.check_random(random)?;
        }
        Ok(())
    }

    fn check_node(&self, field: &str, node: NodeId) -> Result<(), ScenarioError> {
        match node < self.nodes {
            true => Ok(()),
            false => Err(self.err(
                field,
                format!(
                    "node {node} is out of range: the cluster has nodes 0..{}",
                    self.nodes
                ),
            )),
        }
    }

    /// Checks a fault list; `what` is `faults` or the schedule's name for it.
    pub(crate) fn check_faults(
        &self,
        what: &str,
        faults: &[FaultSpec],
    ) -> Result<(), ScenarioError> {
        if faults.len() > RANDOM_FAULTS_MAX {
            let message = format!(
                "{} faults; at most {RANDOM_FAULTS_MAX} are allowed",
                faults.len()
            );
            return Err(self.err(what, message));
        }
        for (i, fault) in faults.iter().enumerate() {
            let field = |name: &str| format!("{what}[{i}].{name}");
            fault
                .check_target(self.nodes)
                .map_err(|(name, m)| self.err(field(name), m))?;
            if fault.target.is_none() {
                for (name, node) in fault.node_ids() {
                    self.check_node(&field(name), node)?;
                }
            }
            if fault.at_ms() >= self.duration_ms {
                let message = format!(
                    "starts at or after the fault phase ends (duration_ms = {})",
                    self.duration_ms
                );
                return Err(self.err(field("at_ms"), message));
            }
            if let Some(end) = fault.end_ms() {
                if end <= fault.at_ms() {
                    let message = format!(
                        "{end} is not after the fault's start at_ms = {}",
                        fault.at_ms()
                    );
                    return Err(self.err(field(fault.end_field()), message));
                }
            }
            if fault.permanent() && fault.end_ms().is_some() {
                let message = "a permanent fault never ends: drop the end time or `permanent`";
                return Err(self.err(field(fault.end_field()), message));
            }
            // A targeted fault's shape is checked as it strikes one node.
            for concrete in fault.concrete(&[0], self.nodes.max(2)) {
                check_fault_shape(&concrete).map_err(|(name, m)| self.err(field(name), m))?;
            }
        }
        // A targeted down fault learns its nodes only when it starts: no other down
        // fault may overlap it, so that no node is taken down twice at once.
        let end = |f: &Fault| f.end_ms().unwrap_or(u64::MAX);
        for (i, f) in faults.iter().enumerate() {
            if f.target.is_none() || f.downed_node().is_none() {
                continue;
            }
            let overlap = faults.iter().enumerate().find(|&(j, g)| {
                j != i && g.downed_node().is_some() && g.at_ms() < end(f) && f.at_ms() < end(g)
            });
            if let Some((j, _)) = overlap {
                let message = format!(
                    "a targeted `{}` may overlap no other crash, pause or disk-wipe, \
                     but {what}[{j}] overlaps it",
                    f.kind().name()
                );
                return Err(self.err(format!("{what}[{i}].at_ms"), message));
            }
        }
        // The same node cannot be down twice at once: that would be more concurrent
        // crashes than there are nodes to crash.
        let downs: Vec<_> = faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.target.is_none())
            .filter_map(|(i, f)| Some((i, f.downed_node()?, &f.fault)))
            .collect();
        for (a, (i, node, f)) in downs.iter().enumerate() {
            for (j, other, g) in &downs[a + 1..] {
                if node == other && f.at_ms() < end(g) && g.at_ms() < end(f) {
                    let message = format!("node {node} is already down then (by {what}[{i}])");
                    return Err(self.err(format!("{what}[{j}].at_ms"), message));
                }
            }
        }
        Ok(())
    }

    /// Service faults need a protocol whose nodes serve an application, and are
    /// never drawn at random.
    pub fn check_services(
        &self,
        what: &str,
        faults: &[FaultSpec],
        serves: bool,
    ) -> Result<(), ScenarioError> {
        let random = self.random.iter().flat_map(|r| &r.kinds);
        if let Some(k) = random.into_iter().find(|k| FaultKind::SERVICE.contains(k)) {
            let message = format!(
                "`{}` strikes an application, which only explicit faults name",
                k.name()
            );
            return Err(self.err("random.kinds", message));
        }
        if serves {
            return Ok(());
        }
        match faults
            .iter()
            .position(|f| FaultKind::SERVICE.contains(&f.kind()))
        {
            Some(i) => Err(self.err(
                format!("{what}[{i}].kind"),
                format!(
                    "protocol {} serves no application for `{}` to strike",
                    self.protocol,
                    faults[i].kind().name()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Checks that every fault's `classes` are message classes of the protocol.
    pub fn check_classes(
        &self,
        what: &str,
        faults: &[FaultSpec],
        known: &[&str],
    ) -> Result<(), ScenarioError> {
        for (i, fault) in faults.iter().enumerate() {
            if let Some(c) = fault
                .classes()
                .iter()
                .find(|c| !known.contains(&c.as_str()))
            {
                let message = format!(
                    "unknown message class `{c}` for protocol {} (known: {})",
                    self.protocol,
                    known.join(", ")
                );
                return Err(self.err(format!("{what}[{i}].classes"), message));
            }
        }
        Ok(())
    }

    /// Checks `[random] class_sets` against the protocol's message classes `known`:
    /// each set non-empty and of known classes; with `classes_rate` above 0 and no sets,
    /// the protocol must have two classes or more to drop some of.
    fn check_class_sets(&self, r: &RandomFaults, known: &[&str]) -> Result<(), ScenarioError> {
        for (i, set) in r.class_sets.iter().enumerate() {
            let field = format!("random.class_sets[{i}]");
            if set.is_empty() {
                return Err(self.err(field, "names no message class"));
            }
            if let Some(c) = set.iter().find(|c| !known.contains(&c.as_str())) {
                let message = format!(
                    "unknown message class `{c}` for protocol {} (known: {})",
                    self.protocol,
                    known.join(", ")
                );
                return Err(self.err(field, message));
            }
        }
        if r.classes_rate > 0.0 && r.class_sets.is_empty() && known.len() < 2 {
            let message = format!(
                "protocol {} has {} message class(es): a cut that drops some and lets others through needs two or more",
                self.protocol,
                known.len()
            );
            return Err(self.err("random.classes_rate", message));
        }
        Ok(())
    }

    fn check_random(&self, r: &RandomFaults) -> Result<(), ScenarioError> {
        let ranges = [
            ("interval_ms", Some(r.interval_ms)),
            ("duration_ms", Some(r.duration_ms)),
            ("member_timeout_ms", r.member_timeout_ms),
        ];
        for (field, range) in ranges
            .into_iter()
            .filter_map(|(field, range)| Some((field, range?)))
        {
            if range.min == 0 || range.min > range.max || range.max > DURATION_MS_MAX {
                let message = format!(
                    "needs 0 < min <= max <= {DURATION_MS_MAX}, not {}..{}",
                    range.min, range.max
                );
                return Err(self.err(format!("random.{field}"), message));
            }
        }
        if r.kinds.is_empty() {
            return Err(self.err("random.kinds", "names no fault kind"));
        }
        if r.max_down > self.nodes {
            let message = format!(
                "{} nodes down at once is more than the cluster's {} nodes",
                r.max_down, self.nodes
            );
            return Err(self.err("random.max_down", message));
        }
        let needs = |kind: FaultKind| match kind {
            FaultKind::Bridge => 3,
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Isolate | FaultKind::Hold => 2,
            _ => 1,
        };
        if let Some(kind) = r.kinds.iter().find(|&&k| needs(k) > self.nodes) {
            return Err(self.err(
                "random.kinds",
                format!("{kind:?} needs at least {} nodes", needs(*kind)),
            ));
        }
        if r.max_faults > RANDOM_FAULTS_MAX {
            return Err(self.err("random.max_faults", format!("at most {RANDOM_FAULTS_MAX}")));
        }
        if let Some(end) = r.end_ms {
            if end <= r.start_ms || end > self.duration_ms {
                return Err(self.err(
                    "random.end_ms",
                    "must be after start_ms and at most duration_ms",
                ));
            }
        }
        for (field, p) in [
            ("torn_rate", r.torn_rate),
            ("loss_rate", r.loss_rate),
            ("duplicate_rate", r.duplicate_rate),
            ("loss_per_node", r.loss_per_node),
            ("member_learner_rate", r.member_learner_rate),
            ("classes_rate", r.classes_rate),
        ] {
            check_probability(self, &format!("random.{field}"), p)?;
        }
        r.spike.check().map_err(|m| self.err("random.spike", m))?;
        r.slow_delay
            .check()
            .map_err(|m| self.err("random.slow_delay", m))?;
        if !(0..=3_600_000).contains(&r.clock_offset_ms_max) {
            return Err(self.err(
                "random.clock_offset_ms_max",
                "must be between 0 and 3600000",
            ));
        }
        if !(0.0..=DRIFT_PPM_MAX).contains(&r.drift_ppm_max) {
            let message = format!("must be between 0 and {DRIFT_PPM_MAX} (50%)");
            return Err(self.err("random.drift_ppm_max", message));
        }
        if !(1.0..=1e6).contains(&r.disk_slow_factor) {
            return Err(self.err("random.disk_slow_factor", "must be between 1 and 1000000"));
        }
        Ok(())
    }
}

fn check_duration(s: &Scenario, field: &str, ms: u64) -> Result<(), ScenarioError> {
    match ms > 0 && ms <= DURATION_MS_MAX {
        true => Ok(()),
        false => Err(s.err(
            field,
            format!("must be more than 0 and at most {DURATION_MS_MAX}, not {ms}"),
        )),
    }
}

fn check_probability(s: &Scenario, field: &str, p: f64) -> Result<(), ScenarioError> {
    match (0.0..=1.0).contains(&p) {
        true => Ok(()),
        false => Err(s.err(field, format!("{p} is not a probability in [0, 1]"))),
    }
}

/// Shape rules a fault must follow beyond node ranges: `Err((field, message))`.
fn check_fault_shape(fault: &Fault) -> Result<(), (&'static str, String)> {
    fn disjoint(a: &[NodeId], b: &[NodeId]) -> Option<NodeId> {
        a.iter().copied().find(|n| b.contains(n))
    }
    match fault {
        Fault::Partition { groups, .. } => {
            if groups.is_empty() || groups.iter().any(|g| g.is_empty()) {
                return Err((
                    "groups",
                    "needs at least one group and no empty group".into(),
                ));
            }
            let all: Vec<_> = groups.concat();
            let mut sorted = all.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != all.len() {
                return Err(("groups", "a node is listed twice".into()));
            }
        }
        Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => {
            if from.is_empty() || to.is_empty() {
                return Err(("from", "`from` and `to` must both name nodes".into()));
            }
            if let Some(n) = disjoint(from, to) {
                return Err(("to", format!("node {n} is on both sides")));
            }
        }
        Fault::Bridge {
            bridge,
            left,
            right,
            ..
        } => {
            if left.is_empty() || right.is_empty() {
                return Err(("left", "`left` and `right` must both name nodes".into()));
            }
            if let Some(n) = disjoint(left, right) {
                return Err(("right", format!("node {n} is on both sides")));
            }
            if left.contains(bridge) || right.contains(bridge) {
                return Err((
                    "bridge",
                    format!("the bridge node {bridge} is also on a side"),
                ));
            }
        }
        Fault::Loss { rate, .. } | Fault::Duplicate { rate, .. } if !(0.0..=1.0).contains(rate) => {
            return Err(("rate", format!("{rate} is not a probability in [0, 1]")));
        }
        Fault::ClockDrift { drift_ppm, .. }
            if !(-DRIFT_PPM_MAX..=DRIFT_PPM_MAX).contains(drift_ppm) =>
        {
            return Err((
                "drift_ppm",
                format!("{drift_ppm} is not between -{DRIFT_PPM_MAX} and {DRIFT_PPM_MAX} (±50%)"),
            ));
        }
        Fault::ClockStep { offset_ms, .. } if offset_ms.unsigned_abs() > 86_400_000 => {
            return Err(("offset_ms", "must be within a day".into()));
        }
        Fault::DiskSlow { factor, .. } if !(1.0..=1e6).contains(factor) => {
            return Err((
                "factor",
                format!("{factor} is not a slow-down between 1 and 1000000"),
            ));
        }
        Fault::LatencySpike { delay, .. } | Fault::Slow { delay, .. } => {
            delay.check().map_err(|m| ("delay", m))?
        }
        Fault::ClientPartition { nodes, .. } if nodes.is_empty() => {
            return Err(("nodes", "names no node to cut the clients from".into()));
        }
        _ => {}
    }
    match fault {
        Fault::LatencySpike { links, .. }
        | Fault::Loss { links, .. }
        | Fault::Duplicate { links, .. } => {
            if let Some(link) = links.iter().find(|l| l.from == l.to) {
                return Err(("links", format!("a link from node {} to itself", link.from)));
            }
        }
        _ => {}
    }
    let classes = fault.classes();
    if let Some(c) = classes.iter().find(|c| c.is_empty()) {
        return Err(("classes", format!("{c:?} is not a class name")));
    }
    for (i, c) in classes.iter().enumerate() {
        if classes[..i].contains(c) {
            return Err(("classes", format!("class `{c}` is listed twice")));
        }
    }
    Ok(())
}
