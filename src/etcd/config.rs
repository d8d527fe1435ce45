//! The `[cluster.config]` table of an etcd scenario: Raft's settings
//! ([`RaftConfig`]), the members' own ([`ServerConfig`]), and the nodes' roles with
//! the discovery set-up ([`DiscoveryConfig`], the `discovery` sub-table).
//!
//! ```toml
//! [cluster.config]
//! election_timeout_ms_min = 150     # Raft's
//! lease_checkpoint_ms = 1000        # the members'
//! [cluster.config.discovery]
//! servers = 3                       # nodes 0..3 are etcd members,
//! instances = 10                    # then the instances of the service,
//! callers = 5                       # then its callers
//! ```

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::caller::CallerSettings;
use super::instance::InstanceSettings;
use super::server::ServerConfig;
use crate::discovery::profile::{CallerProfile, InstanceProfile};
use crate::raft::RaftConfig;

/// Roles and the service's set-up (`[cluster.config.discovery]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// etcd members: nodes `0..servers` (0: every node).
    pub servers: usize,
    /// Instances of the service: the next `instances` nodes.
    pub instances: usize,
    /// Callers of the service: the last `callers` nodes.
    pub callers: usize,
    /// The service's name: instances register under `services/<service>/`.
    pub service: String,
    /// How instances register: `"etcd"` (etcd's naming client) or `"go-micro"`
    /// ([`InstanceProfile`]).
    pub instance_profile: String,
    /// How callers discover and pick: `"etcd"` (etcd's resolver and gRPC's round
    /// robin) or `"go-micro"` (its registry cache and selector) ([`CallerProfile`]).
    pub caller_profile: String,
    /// The instances' lease TTL in ms (unset: the profile's).
    pub lease_ttl_ms: Option<u64>,
    /// Time between an instance's keepalives in ms (unset: the profile's).
    pub keepalive_ms: Option<u64>,
    /// Time between a caller's calls in ms.
    pub call_interval_ms: u64,
    /// How long a call attempt waits in ms (unset: the profile's connection
    /// timeout, else 1 s).
    pub call_timeout_ms: Option<u64>,
    /// How long a request to etcd waits before trying the next member, in ms.
    pub request_timeout_ms: u64,
    /// A watch stream silent this long is broken, in ms (unset: three progress
    /// notifications).
    pub watch_timeout_ms: Option<u64>,
    /// Pause before retrying a request to etcd, in ms.
    pub retry_backoff_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            servers: 0,
            instances: 0,
            callers: 0,
            service: "api".into(),
            instance_profile: "etcd".into(),
            caller_profile: "etcd".into(),
            lease_ttl_ms: None,
            keepalive_ms: None,
            call_interval_ms: 100,
            call_timeout_ms: None,
            request_timeout_ms: 1_000,
            watch_timeout_ms: None,
            retry_backoff_ms: 100,
        }
    }
}

/// A node's role in an etcd run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// An etcd member.
    Server,
    /// An instance of the service.
    Instance,
    /// A caller of the service.
    Caller,
}

/// `[cluster.config]` of protocol `etcd`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EtcdConfig {
    /// Raft's settings (every key not the members' or `discovery`).
    pub raft: RaftConfig,
    /// The members' settings.
    pub server: ServerConfig,
    /// Roles and the service.
    pub discovery: DiscoveryConfig,
}

impl<'de> Deserialize<'de> for EtcdConfig {
    /// Splits the table: [`ServerConfig::KEYS`] and `discovery` are etcd's, the rest
    /// Raft's; each part is read strictly (unknown keys are refused).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let mut server = toml::Table::new();
        for &k in ServerConfig::KEYS {
            if let Some(v) = table.remove(k) {
                server.insert(k.to_string(), v);
            }
        }
        let discovery = match table.remove("discovery") {
            Some(v) => DiscoveryConfig::deserialize(v)
                .map_err(|e| D::Error::custom(format!("discovery: {e}")))?,
            None => DiscoveryConfig::default(),
        };
        let raft = RaftConfig::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        let server =
            ServerConfig::deserialize(toml::Value::Table(server)).map_err(D::Error::custom)?;
        Ok(EtcdConfig {
            raft,
            server,
            discovery,
        })
    }
}

impl EtcdConfig {
    /// The members in a cluster of `nodes`.
    pub fn servers(&self, nodes: usize) -> usize {
        match self.discovery.servers {
            0 => nodes,
            s => s,
        }
    }

    /// Node `id`'s role in a cluster of `nodes`.
    pub fn role(&self, nodes: usize, id: usize) -> NodeRole {
        let servers = self.servers(nodes);
        if id < servers {
            NodeRole::Server
        } else if id < servers + self.discovery.instances {
            NodeRole::Instance
        } else {
            NodeRole::Caller
        }
    }

    /// Raft's settings with the members as the bootstrap voters.
    pub fn raft_for(&self, nodes: usize) -> RaftConfig {
        let mut raft = self.raft.clone();
        if self.discovery.servers > 0 {
            raft.initial_voters = self.servers(nodes);
        }
        raft
    }

    /// The instances' settings: the profile's, with the table's overrides. Panics
    /// on an unknown profile name (validation refuses it first).
    pub fn instance(&self) -> InstanceSettings {
        let d = &self.discovery;
        let profile = InstanceProfile::from_name(&d.instance_profile).expect("a validated profile");
        let ttl_ms = d.lease_ttl_ms.unwrap_or(profile.ttl_ms);
        let keepalive_ms = match (d.keepalive_ms, d.lease_ttl_ms) {
            (Some(k), _) => k,
            // A TTL of one's own, kept alive at the profile's rhythm.
            (None, Some(_)) => (ttl_ms * profile.refresh_ms / profile.ttl_ms).max(1),
            (None, None) => profile.refresh_ms,
        };
        InstanceSettings {
            ttl_ms,
            keepalive_ms,
            request_timeout_ms: d.request_timeout_ms,
            retry_backoff_ms: d.retry_backoff_ms,
        }
    }

    /// The callers' settings: the profile's, with the table's overrides. Panics on
    /// an unknown profile name (validation refuses it first).
    pub fn caller(&self) -> CallerSettings {
        let d = &self.discovery;
        let profile = CallerProfile::from_name(&d.caller_profile).expect("a validated profile");
        CallerSettings {
            service: d.service.clone(),
            profile,
            call_interval_ms: d.call_interval_ms,
            attempt_timeout_ms: d
                .call_timeout_ms
                .or(profile.connect_timeout_ms)
                .unwrap_or(1_000),
            request_timeout_ms: d.request_timeout_ms,
            watch_timeout_ms: d
                .watch_timeout_ms
                .unwrap_or(3 * self.server.watch_progress_notify_ms),
            retry_backoff_ms: d.retry_backoff_ms,
        }
    }

    /// How long past its TTL a lease whose owner went quiet may still stand, with
    /// no leader change: the lessor's tick and two election timeouts for the
    /// revocation to commit.
    pub fn lease_bound(&self) -> std::time::Duration {
        let election = self.raft.election_timeout_ms_max;
        std::time::Duration::from_millis(super::server::LESSOR_TICK_MS + 2 * election)
    }

    /// Checks the roles against a cluster of `nodes`: `Err((field, message))`.
    pub fn discovery_validate(&self, nodes: usize) -> Result<(), (String, String)> {
        let d = &self.discovery;
        let field = |k: &str| format!("cluster.config.discovery.{k}");
        crate::discovery::roles::check(
            (d.servers, d.instances, d.callers),
            nodes,
            &d.service,
            "etcd members",
            '/',
        )?;
        if let Err(e) = InstanceProfile::from_name(&d.instance_profile) {
            return Err((field("instance_profile"), e.to_string()));
        }
        if let Err(e) = CallerProfile::from_name(&d.caller_profile) {
            return Err((field("caller_profile"), e.to_string()));
        }
        if d.lease_ttl_ms == Some(0) {
            return Err((
                field("lease_ttl_ms"),
                "a lease TTL of 0 expires at once: at least 1 ms".into(),
            ));
        }
        let inst = self.instance();
        if d.instances > 0 && inst.keepalive_ms >= inst.ttl_ms {
            return Err((
                field("keepalive_ms"),
                format!(
                    "keepalives every {} ms cannot keep a lease of TTL {} ms alive",
                    inst.keepalive_ms, inst.ttl_ms
                ),
            ));
        }
        for (k, v) in [
            ("call_interval_ms", d.call_interval_ms),
            ("request_timeout_ms", d.request_timeout_ms),
            ("retry_backoff_ms", d.retry_backoff_ms),
        ] {
            if v == 0 {
                return Err((field(k), "must be at least 1 ms".into()));
            }
        }
        if d.call_timeout_ms == Some(0)
            || d.watch_timeout_ms == Some(0)
            || d.keepalive_ms == Some(0)
        {
            return Err((
                field("call_timeout_ms"),
                "timeouts and periods must be at least 1 ms".into(),
            ));
        }
        if self.raft.initial_voters != 0 && d.servers > 0 && self.raft.initial_voters != d.servers {
            return Err((
                "cluster.config.initial_voters".into(),
                "the etcd members are the voters: leave it unset when discovery.servers is set"
                    .into(),
            ));
        }
        Ok(())
    }
}
