//! The `[cluster.config]` table of a gossip-only discovery scenario: SWIM's settings
//! ([`SwimConfig`], memberlist's LAN defaults with Lifeguard on) and the nodes' roles
//! ([`DiscoveryConfig`], the `discovery` sub-table).
//!
//! ```toml
//! [cluster.config]
//! probe_interval_ms = 1000          # SWIM's (memberlist's DefaultLANConfig)
//! [cluster.config.discovery]
//! instances = 4                     # nodes 0..4 offer the service,
//! callers = 3                       # then the callers; every node is a member
//! ```
//!
//! There are no servers: `discovery.servers` must be 0 (or left out).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::discovery::profile::CallerProfile;
use crate::gossip::{NodeSpec, SwimConfig};
use crate::process::NodeId;

/// Roles and the service's set-up (`[cluster.config.discovery]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Registry servers: none in this design; any other value is refused (the key
    /// exists so that a file written for etcd or Consul gets a clear error).
    pub servers: usize,
    /// Members that offer the service in their metadata: nodes `0..instances`.
    pub instances: usize,
    /// Members that call the service: the last `callers` nodes.
    pub callers: usize,
    /// The service's name, as instances publish it in their `NodeMeta`.
    pub service: String,
    /// How callers pick: `"etcd"` or `"go-micro"` ([`CallerProfile`]); only the
    /// selector and the retries matter, as the endpoint set is the member's view.
    pub caller_profile: String,
    /// Time between a caller's calls in ms.
    pub call_interval_ms: u64,
    /// How long a call attempt waits in ms (unset: the profile's connection
    /// timeout, else 1 s).
    pub call_timeout_ms: Option<u64>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            servers: 0,
            instances: 0,
            callers: 0,
            service: "api".into(),
            caller_profile: "etcd".into(),
            call_interval_ms: 100,
            call_timeout_ms: None,
        }
    }
}

/// A node's role in a gossip-only discovery run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// A member that offers the service.
    Instance,
    /// A member that calls it.
    Caller,
}

/// `[cluster.config]` of protocol `gossip-discovery`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GossipDiscoveryConfig {
    /// SWIM's settings (every key but `discovery`).
    pub swim: SwimConfig,
    /// Roles and the service.
    pub discovery: DiscoveryConfig,
}

impl<'de> Deserialize<'de> for GossipDiscoveryConfig {
    /// Splits the table: `discovery` is the roles', the rest SWIM's; each part is
    /// read strictly (unknown keys are refused).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let discovery = match table.remove("discovery") {
            Some(v) => DiscoveryConfig::deserialize(v)
                .map_err(|e| D::Error::custom(format!("discovery: {e}")))?,
            None => DiscoveryConfig::default(),
        };
        let swim = SwimConfig::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(GossipDiscoveryConfig { swim, discovery })
    }
}

impl GossipDiscoveryConfig {
    /// Node `id`'s role.
    pub fn role(&self, id: NodeId) -> NodeRole {
        match id < self.discovery.instances {
            true => NodeRole::Instance,
            false => NodeRole::Caller,
        }
    }

    /// SWIM's settings for a cluster of `nodes`, with every instance publishing the
    /// service in its metadata.
    pub fn swim_for(&self, nodes: usize) -> SwimConfig {
        let mut swim = self.swim.clone();
        for id in 0..self.discovery.instances.min(nodes) {
            match swim.nodes.iter_mut().find(|s| s.id == id) {
                Some(spec) => spec.services = vec![self.discovery.service.clone()],
                None => swim.nodes.push(NodeSpec {
                    id,
                    services: vec![self.discovery.service.clone()],
                    ..NodeSpec::default()
                }),
            }
        }
        swim
    }

    /// The callers' profile. Panics on an unknown name (validation refuses it first).
    pub fn caller_profile(&self) -> CallerProfile {
        CallerProfile::from_name(&self.discovery.caller_profile).expect("a validated profile")
    }

    /// `Err((field, message))` unless the roles and settings fit a cluster of `nodes`.
    pub fn validate(&self, nodes: usize) -> Result<(), (String, String)> {
        let d = &self.discovery;
        let field = |k: &str| format!("cluster.config.discovery.{k}");
        if d.servers != 0 {
            return Err((
                field("servers"),
                "gossip-only discovery has no registry servers: every node is a SWIM \
                 member, instances then callers (leave servers out)"
                    .into(),
            ));
        }
        if d.instances == 0 {
            return Err((field("instances"), "at least one instance".into()));
        }
        if d.instances + d.callers != nodes {
            return Err((
                "cluster.nodes".into(),
                format!(
                    "{nodes} nodes, but the roles add up to {} ({} instances + {} callers)",
                    d.instances + d.callers,
                    d.instances,
                    d.callers
                ),
            ));
        }
        if d.service.is_empty() {
            return Err((field("service"), "a non-empty name".into()));
        }
        if let Err(e) = CallerProfile::from_name(&d.caller_profile) {
            return Err((field("caller_profile"), e.to_string()));
        }
        if d.call_interval_ms == 0 {
            return Err((field("call_interval_ms"), "must be at least 1 ms".into()));
        }
        if d.call_timeout_ms == Some(0) {
            return Err((field("call_timeout_ms"), "must be at least 1 ms".into()));
        }
        if let Some(spec) = self.swim.nodes.iter().find(|s| !s.services.is_empty()) {
            return Err((
                "cluster.config.nodes".into(),
                format!(
                    "node {} lists services: the instances publish `{}` themselves \
                     (discovery.instances)",
                    spec.id, d.service
                ),
            ));
        }
        self.swim
            .validate(nodes)
            .map_err(|(f, m)| (format!("cluster.config.{f}"), m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GossipDiscoveryConfig {
        let table: toml::Table = toml::from_str(text).expect("toml");
        GossipDiscoveryConfig::deserialize(toml::Value::Table(table)).expect("config")
    }

    #[test]
    fn servers_are_refused_by_name() {
        let cfg = parse("[discovery]\nservers = 3\ninstances = 2\ncallers = 1");
        let (field, message) = cfg.validate(6).unwrap_err();
        assert_eq!(field, "cluster.config.discovery.servers");
        assert!(message.contains("no registry servers"), "{message}");
    }

    #[test]
    fn instances_publish_the_service() {
        let cfg = parse(
            "probe_interval_ms = 500\nprobe_timeout_ms = 200\n[discovery]\ninstances = 2\ncallers = 1",
        );
        assert_eq!(cfg.validate(3), Ok(()));
        let swim = cfg.swim_for(3);
        assert_eq!(swim.probe_interval_ms, 500);
        let offering: Vec<_> = swim
            .nodes
            .iter()
            .filter(|s| s.services == ["api"])
            .map(|s| s.id)
            .collect();
        assert_eq!(offering, [0, 1]);
        assert_eq!(cfg.validate(4).unwrap_err().0, "cluster.nodes");
    }
}
