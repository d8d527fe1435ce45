//! The protocols the `faultline` command knows, by the name scenario files use.

use crate::run::{run, RunRequest, Summary};
use crate::scenario::{Scenario, ScenarioError};
use crate::system::{Bug, System};

/// A protocol, its types erased for the command line.
#[derive(Clone, Copy)]
pub struct Protocol {
    pub name: &'static str,
    pub run: fn(&Scenario, &RunRequest) -> Result<Summary, ScenarioError>,
    pub bugs: fn() -> &'static [Bug],
}

fn entry<S: System>() -> Protocol {
    Protocol {
        name: S::NAME,
        run: run::<S>,
        bugs: S::bugs,
    }
}

pub fn protocols() -> Vec<Protocol> {
    vec![
        entry::<crate::broadcast::Broadcast>(),
        entry::<crate::gossip::Swim>(),
        entry::<crate::raft::RaftKv>(),
    ]
}

/// The protocol a scenario names, or an error naming the field.
pub fn for_scenario(scenario: &Scenario) -> Result<Protocol, ScenarioError> {
    let all = protocols();
    all.iter()
        .find(|p| p.name == scenario.protocol)
        .copied()
        .ok_or_else(|| {
            let known: Vec<_> = all.iter().map(|p| p.name).collect();
            let message = format!(
                "unknown protocol `{}` (known: {})",
                scenario.protocol,
                known.join(", ")
            );
            ScenarioError::field(&scenario.file, "cluster.protocol", message)
        })
}
