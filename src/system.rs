//! A [`System`] ties a protocol to scenario files: its processes, clients, checkers,
//! the config tables it reads and the bugs it can inject.

use std::fmt::Debug;

use serde::de::DeserializeOwned;

use crate::check::Checker;
use crate::client::Client;
use crate::history::HistoryEvent;
use crate::process::{ClientId, NodeId, Process};

/// How a run is set up, as the system's factories see it.
#[derive(Clone, Debug)]
pub struct Setup<S: System> {
    pub nodes: usize,
    /// The scenario's `[cluster.config]` table.
    pub config: S::Config,
    /// The scenario's `[workload]` table.
    pub workload: S::Workload,
    /// Bugs switched on for this run, by name (see [`System::bugs`]).
    pub bugs: Vec<String>,
}

impl<S: System> Setup<S> {
    pub fn bug(&self, name: &str) -> bool {
        self.bugs.iter().any(|b| b == name)
    }
}

/// An injectable bug: a deliberate mistake that a shipped scenario catches.
#[derive(Clone, Copy, Debug)]
pub struct Bug {
    pub name: &'static str,
    /// The shipped scenario that catches it.
    pub scenario: &'static str,
    pub description: &'static str,
}

/// The verdict of a history checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    /// The checker gave up (time budget); neither pass nor fail.
    Unknown(String),
}

pub trait System: Sized + 'static {
    /// The name scenario files use in `cluster.protocol`.
    const NAME: &'static str;
    type Process: Process;
    type Client: Client<Self::Process>;
    type Config: DeserializeOwned + Clone + Debug + Default + Send + Sync + 'static;
    type Workload: DeserializeOwned + Clone + Debug + Default + Send + Sync + 'static;

    /// Semantic checks on the config, beyond what parsing enforces. `Err((field, message))`.
    fn validate(_setup: &Setup<Self>) -> Result<(), (String, String)> {
        Ok(())
    }
    fn process(setup: &Setup<Self>, id: NodeId) -> Self::Process;
    fn clients(setup: &Setup<Self>) -> usize;
    fn client(setup: &Setup<Self>, id: ClientId) -> Self::Client;
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
    fn bugs() -> &'static [Bug] {
        &[]
    }
    /// The liveness phase's bound when a scenario sets no `liveness.quiesce_ms`,
    /// derived from the config (`None`: the scenario module's default, 10 s).
    fn liveness_bound_ms(_setup: &Setup<Self>) -> Option<u64> {
        None
    }
}
