//! An operator's catalog writes, scripted in a scenario
//! (`[[cluster.config.discovery.operator]]`), after Consul's
//! `/v1/catalog/deregister` (`agent/catalog_endpoint.go`: `CatalogDeregister`,
//! forwarded to the servers as `Catalog.Deregister`).
//!
//! Any agent serves the catalog endpoint and forwards the request to the
//! servers; the request goes around the agent's local state, so the agent keeps
//! the service and its next anti-entropy sync registers it again (the agent is
//! authoritative; consul#3169). Here the request is sent through the agent of the
//! node it names, at `at_ms`:
//!
//! ```toml
//! [[cluster.config.discovery.operator]]
//! at_ms = 20000
//! action = "deregister-service"   # or "deregister-node", "restart-agent"
//! node = 3                        # an agent's node
//! ```
//!
//! `deregister-service` removes the node's instance of the discovery service with
//! its checks; `deregister-node` removes the node with everything on it. A
//! request whose time passed while its agent was down is not sent.
//! `restart-agent` is no catalog write: the agent process restarts while its
//! service runs on (as for an upgrade), keeping only what its disk holds
//! ([`super::check_state`]).

use std::time::Duration;

use serde::Deserialize;

use super::agent::node_name;
use super::catalog::CatalogCommand;
use crate::process::NodeId;

/// Most operator requests one scenario may script.
pub const OPERATOR_ACTIONS_MAX: usize = 64;

/// The action that restarts an agent.
pub const RESTART_AGENT: &str = "restart-agent";

/// One scripted operator request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorAction {
    /// When it is sent, in ms from the start of the run (at least 1).
    pub at_ms: u64,
    /// `"deregister-service"`, `"deregister-node"` or `"restart-agent"`.
    pub action: String,
    /// The agent's node it names (and sends it through).
    pub node: NodeId,
}

impl OperatorAction {
    /// Whether it restarts the agent rather than writing to the catalog.
    pub fn is_restart(&self) -> bool {
        self.action == RESTART_AGENT
    }

    /// The catalog write it makes for a run whose service is `service`. Panics on an
    /// unknown action or a restart (validation refuses the first; callers filter
    /// out the second).
    pub fn command(&self, service: &str) -> CatalogCommand {
        match self.action.as_str() {
            "deregister-service" => CatalogCommand::DeregisterService {
                node: node_name(self.node),
                service_id: service.to_string(),
            },
            "deregister-node" => CatalogCommand::DeregisterNode {
                node: node_name(self.node),
            },
            a => unreachable!("unknown operator action {a:?} (validation refuses it)"),
        }
    }

    /// When it is sent.
    pub fn at(&self) -> Duration {
        Duration::from_millis(self.at_ms)
    }
}

/// Checks scripted requests against the agents' nodes `agents`: `Err((field,
/// message))` for an unknown action, a node that runs no agent, a time of 0, or
/// more than [`OPERATOR_ACTIONS_MAX`] requests.
pub fn validate(
    actions: &[OperatorAction],
    agents: std::ops::Range<NodeId>,
) -> Result<(), (String, String)> {
    let field = |i: usize, k: &str| format!("cluster.config.discovery.operator[{i}].{k}");
    if actions.len() > OPERATOR_ACTIONS_MAX {
        return Err((
            "cluster.config.discovery.operator".into(),
            format!("{} requests; at most {OPERATOR_ACTIONS_MAX}", actions.len()),
        ));
    }
    for (i, a) in actions.iter().enumerate() {
        if !["deregister-service", "deregister-node", RESTART_AGENT].contains(&a.action.as_str()) {
            return Err((
                field(i, "action"),
                format!(
                    "unknown action {:?}: deregister-service, deregister-node or restart-agent",
                    a.action
                ),
            ));
        }
        if !agents.contains(&a.node) {
            return Err((
                field(i, "node"),
                format!(
                    "node {} runs no agent (agents: nodes {}..{})",
                    a.node, agents.start, agents.end
                ),
            ));
        }
        if a.at_ms == 0 {
            return Err((field(i, "at_ms"), "must be at least 1 ms".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(action: &str, node: NodeId, at_ms: u64) -> OperatorAction {
        OperatorAction {
            at_ms,
            action: action.into(),
            node,
        }
    }

    #[test]
    fn commands_name_the_agent_node_and_the_service() {
        assert_eq!(
            action("deregister-service", 3, 10).command("api"),
            CatalogCommand::DeregisterService {
                node: "node-3".into(),
                service_id: "api".into()
            }
        );
        assert_eq!(
            action("deregister-node", 4, 10).command("api"),
            CatalogCommand::DeregisterNode {
                node: "node-4".into()
            }
        );
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        assert_eq!(
            validate(&[action("deregister-service", 3, 5)], 3..5),
            Ok(())
        );
        let e = validate(&[action("purge", 3, 5)], 3..5).unwrap_err();
        assert_eq!(e.0, "cluster.config.discovery.operator[0].action");
        let e = validate(
            &[
                action("deregister-node", 3, 5),
                action("deregister-node", 1, 5),
            ],
            3..5,
        )
        .unwrap_err();
        assert_eq!(e.0, "cluster.config.discovery.operator[1].node");
        let e = validate(&[action("deregister-node", 3, 0)], 3..5).unwrap_err();
        assert_eq!(e.0, "cluster.config.discovery.operator[0].at_ms");
    }
}
