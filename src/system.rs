//! A [`System`] ties a protocol to scenario files: its processes, clients, checkers,
//! the config tables it reads and the bugs it can inject.

#![warn(missing_docs)]

use std::fmt::Debug;

use serde::de::DeserializeOwned;

use crate::check::Checker;
use crate::client::Client;
use crate::history::HistoryEvent;
use crate::process::{ClientId, NodeId, Process};

/// How a run is set up, as the system's factories see it.
#[derive(Clone, Debug)]
pub struct Setup<S: System> {
    /// Nodes in the cluster (`cluster.nodes`), numbered `0..nodes`.
    pub nodes: usize,
    /// The scenario's `[cluster.config]` table.
    pub config: S::Config,
    /// The scenario's `[workload]` table.
    pub workload: S::Workload,
    /// Bugs switched on for this run, by name (see [`System::bugs`]).
    pub bugs: Vec<String>,
    /// After the heal, a leader followed by a majority must exist within this many ms
    /// (the scenario's `liveness.leader_ms`, else [`System::leader_bound_ms`]);
    /// `None` for protocols without a leader.
    pub leader_ms: Option<u64>,
    /// Record the coverage states every node reaches ([`crate::Process::coverage`])
    /// as `coverage.<state>` metrics: on for guided exploration, off otherwise (it
    /// costs a little per step).
    pub coverage: bool,
}

impl<S: System> Setup<S> {
    /// Whether the bug named `name` is switched on for this run (by the scenario's
    /// `bugs` or by `--bug`).
    pub fn bug(&self, name: &str) -> bool {
        self.bugs.iter().any(|b| b == name)
    }
}

/// An injectable bug: a deliberate mistake that a shipped scenario catches.
#[derive(Clone, Copy, Debug)]
pub struct Bug {
    /// What `--bug` and a scenario's `bugs` call it, in kebab-case.
    pub name: &'static str,
    /// The shipped scenario that catches it.
    pub scenario: &'static str,
    /// One line: the mistake, as `faultline bugs` prints it.
    pub description: &'static str,
}

/// A membership change a scenario's member fault asks for, in the protocol's neutral
/// terms (etcd's `member add [--learner]` and `member remove`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Add `node` as a voter (promoting it if it is a learner), or with `learner` as a
    /// learner.
    Add {
        /// The node added.
        node: NodeId,
        /// As a non-voting member.
        learner: bool,
    },
    /// Remove `node` (a voter or a learner).
    Remove {
        /// The node removed.
        node: NodeId,
    },
}

/// How the operator takes a node's answer to a membership request (see
/// [`System::member_answer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAnswer {
    /// Final: the change is committed.
    Committed,
    /// Final: the change was refused and nothing was done; the text says why.
    Refused(String),
    /// Not the leader, nothing done: ask `Some(leader)`, or another node if `None`.
    Redirect(Option<NodeId>),
    /// Not final: nothing done now, or an outcome unknown (leadership lost); ask
    /// again after a pause. The text says why, for the trace.
    Retry(String),
}

/// The verdict of a history checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The history is correct under the checker's model.
    Pass,
    /// It is not; the message says why (operations, keys, a witness).
    Fail(String),
    /// The checker gave up (time budget); neither pass nor fail.
    Unknown(String),
}

/// A protocol as scenario files run it: the type of its nodes, of its clients, of its
/// `[cluster.config]` and `[workload]` tables, and the factories, checkers and bugs.
///
/// A run calls [`System::validate`] once, then [`System::process`] for each node at
/// every (re)start, [`System::client`] for each of [`System::clients`] clients and
/// [`System::checkers`] once; [`System::check_history`] judges the history at the end.
/// See the crate's front page for a complete example.
pub trait System: Sized + 'static {
    /// The name scenario files use in `cluster.protocol`.
    const NAME: &'static str;
    /// A node.
    type Process: Process;
    /// A simulated user; [`crate::NoClient`] for none.
    type Client: Client<Self::Process>;
    /// The `[cluster.config]` table, read with serde (`#[serde(deny_unknown_fields,
    /// default)]` keeps typos out); `()` for none.
    type Config: DeserializeOwned + Clone + Debug + Default + Send + Sync + 'static;
    /// The `[workload]` table, read like [`System::Config`]; `()` for none.
    type Workload: DeserializeOwned + Clone + Debug + Default + Send + Sync + 'static;

    /// Semantic checks on the config, beyond what parsing enforces. `Err((field, message))`.
    fn validate(_setup: &Setup<Self>) -> Result<(), (String, String)> {
        Ok(())
    }
    /// A fresh node `id`, at boot and at every restart: what it had on disk reaches
    /// it in [`Process::on_start`], so keep nothing here that a crash would lose.
    fn process(setup: &Setup<Self>, id: NodeId) -> Self::Process;
    /// How many clients run (usually from the workload table).
    fn clients(setup: &Setup<Self>) -> usize;
    /// Client `id`, in `0..clients(setup)`.
    fn client(setup: &Setup<Self>, id: ClientId) -> Self::Client;
    /// The checkers that judge every step (safety) and the end of the run (liveness);
    /// built once per run.
    fn checkers(_setup: &Setup<Self>) -> Vec<Box<dyn Checker<Self::Process>>> {
        Vec::new()
    }
    /// The name of the history check, as failures report it.
    const HISTORY_CHECK: &'static str = "history";

    /// Judges the whole client history once the run is over.
    fn check_history(
        _setup: &Setup<Self>,
        _history: &[HistoryEvent<<Self::Client as Client<Self::Process>>::Op>],
    ) -> Verdict {
        Verdict::Pass
    }
    /// The bugs this system can inject; its processes read them with [`Setup::bug`].
    fn bugs() -> &'static [Bug] {
        &[]
    }
    /// Every name the processes may mark with `Context::sometimes` (or a checker in
    /// its metrics, as `sometimes.<name>`): a sweep reports each, reached or not, and
    /// a scenario's `[expect] sometimes` may name only these.
    fn sometimes() -> &'static [&'static str] {
        &[]
    }
    /// The liveness phase's bound when a scenario sets no `liveness.quiesce_ms`,
    /// derived from the config (`None`: the scenario module's default, 10 s).
    fn liveness_bound_ms(_setup: &Setup<Self>) -> Option<u64> {
        None
    }
    /// The `[workload]` key that bounds how many operations each client starts, if
    /// the workload has one: `faultline shrink` lowers it to find a failure with less
    /// client load. `None` (the default): only the client count is shrunk.
    fn ops_per_client_key() -> Option<&'static str> {
        None
    }
    /// For a protocol with a leader: how soon after the heal a leader followed by a
    /// majority must exist when a scenario sets no `liveness.leader_ms`, derived from
    /// the config. `None` (the default): the protocol has no leader, and a scenario
    /// that sets `liveness.leader_ms` is refused.
    fn leader_bound_ms(_setup: &Setup<Self>) -> Option<u64> {
        None
    }

    /// For a protocol with membership changes: the configuration it boots with (the
    /// others nodes start outside the cluster). `None` (the default): the protocol has
    /// none, and a scenario with a member fault (or a membership kind in `[random]`)
    /// is refused at load.
    fn bootstrap_members(_setup: &Setup<Self>) -> Option<crate::scenario::Members> {
        None
    }

    /// The request an operator sends for `change`, as its `seq`-th request (from 1;
    /// each attempt is a new request). Called only when [`System::bootstrap_members`]
    /// is `Some`; the default panics.
    fn member_request(
        _setup: &Setup<Self>,
        change: MemberChange,
        _seq: u64,
    ) -> <Self::Process as Process>::Request {
        unreachable!("{} has no membership changes ({change:?})", Self::NAME)
    }

    /// How the operator takes `response` to one of its membership requests: final
    /// (committed or refused), a redirect, or a retry. The default, for a protocol
    /// without membership changes, retries.
    fn member_answer(_response: &<Self::Process as Process>::Response) -> MemberAnswer {
        MemberAnswer::Retry(format!("{} has no membership changes", Self::NAME))
    }

    /// What a replacement machine's disk holds when `member-replace` restarts `node`
    /// with a wiped disk, after `removal` (the answer that committed its removal):
    /// (key, record) pairs, durable. etcd starts such a member with
    /// `--initial-cluster-state existing`, so that it does not bootstrap a cluster of
    /// its own. The default: an empty disk.
    fn rejoin_records(
        _setup: &Setup<Self>,
        _node: NodeId,
        _removal: &<Self::Process as Process>::Response,
    ) -> Vec<(String, <Self::Process as Process>::Record)> {
        Vec::new()
    }
}
