//! Protocols by the name scenario files give them (`[cluster] protocol = "raft"`), their
//! types erased so that the command line can hold several.
//!
//! The built-in ones are [`protocols`]; a crate of its own adds its systems with
//! [`entry`], usually through [`crate::cli::Cli::protocol`].

#![warn(missing_docs)]

use crate::explore::{explore, Exploration, ExploreRequest};
use crate::run::{run, RunRequest, Summary};
use crate::scenario::{Scenario, ScenarioError, Schedule};
use crate::shrink::{shrink_seed, Shrunk};
use crate::system::{Bug, System};

/// A [`System`], its types erased for the command line.
#[derive(Clone, Copy)]
pub struct Protocol {
    /// [`System::NAME`]: what a scenario's `cluster.protocol` names.
    pub name: &'static str,
    /// [`run`] for this system: the scenario over the request's seeds, or the error
    /// that names the scenario's bad field.
    pub run: fn(&Scenario, &RunRequest) -> Result<Summary, ScenarioError>,
    /// [`System::bugs`]: the bugs `--bug` can inject.
    pub bugs: fn() -> &'static [Bug],
    /// [`shrink_seed`] for this system: a failing seed's smallest schedule found.
    pub shrink: ShrinkFn,
    /// [`explore`] for this system: a guided search over fault schedules.
    pub explore: fn(&Scenario, &ExploreRequest) -> Result<Exploration, ScenarioError>,
}

/// [`shrink_seed`], its system erased: (scenario, bugs, seed, schedule, on_step).
pub type ShrinkFn = fn(
    &Scenario,
    &[String],
    u64,
    Option<Schedule>,
    &mut dyn FnMut(&str),
) -> Result<Option<Shrunk>, ScenarioError>;

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The entry for system `S`.
///
/// ```no_run
/// # fn demo<MySystem: faultline::System>() {
/// let protocols = [faultline::registry::entry::<MySystem>()];
/// # }
/// ```
pub fn entry<S: System>() -> Protocol {
    Protocol {
        name: S::NAME,
        run: run::<S>,
        bugs: S::bugs,
        shrink: shrink_seed::<S>,
        explore: explore::<S>,
    }
}

/// The protocols faultline ships: `broadcast`, `swim`, `raft`, `etcd`, `consul` and
/// `gossip-discovery`.
pub fn protocols() -> Vec<Protocol> {
    vec![
        entry::<crate::broadcast::Broadcast>(),
        entry::<crate::gossip::Swim>(),
        entry::<crate::raft::RaftKv>(),
        entry::<crate::etcd::Etcd>(),
        entry::<crate::consul::Consul>(),
        entry::<crate::gossip_discovery::GossipDiscovery>(),
    ]
}

/// The built-in protocol a scenario names, or an error naming the field.
pub fn for_scenario(scenario: &Scenario) -> Result<Protocol, ScenarioError> {
    find(&protocols(), scenario)
}

/// The protocol among `protocols` that a scenario names, or an error naming the field
/// `cluster.protocol` and listing the known names.
pub fn find(protocols: &[Protocol], scenario: &Scenario) -> Result<Protocol, ScenarioError> {
    protocols
        .iter()
        .find(|p| p.name == scenario.protocol)
        .copied()
        .ok_or_else(|| {
            let known: Vec<_> = protocols.iter().map(|p| p.name).collect();
            let message = format!(
                "unknown protocol `{}` (known: {})",
                scenario.protocol,
                known.join(", ")
            );
            ScenarioError::field(&scenario.file, "cluster.protocol", message)
        })
}
