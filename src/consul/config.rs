//! The `[cluster.config]` table of a Consul scenario: Raft's settings
//! ([`RaftConfig`], the servers' log) and the nodes' roles with the discovery set-up
//! ([`DiscoveryConfig`], the `discovery` sub-table).
//!
//! ```toml
//! [cluster.config]
//! election_timeout_ms_min = 150     # Raft's (read_mode: the path of `consistent`)
//! [cluster.config.discovery]
//! servers = 3                       # nodes 0..3 are Consul servers,
//! instances = 4                     # then agents, each with one service instance,
//! callers = 2                       # then the callers
//! read_mode = "stale"               # callers' health queries: default|consistent|stale
//! probe_interval_ms = 1000          # the agents' checks
//! check_ttl_ms = 3000
//! [cluster.config.gossip]           # the LAN pool (servers and agents; SWIM's fields,
//! probe_interval_ms = 1000          # memberlist's DefaultLANConfig by default)
//! lifeguard = true                  # false: no LHM, no dynamic suspicion, no buddy
//! reconcile_interval_ms = 60000     # the leader's full reconcile (Consul: 60 s)
//! ```

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::check_state::TtlRestore;
use super::health::{CheckConfig, Hysteresis};
use super::lan::GossipConfig;
use super::operator::OperatorAction;
use crate::discovery::profile::CallerProfile;
use crate::raft::RaftConfig;

/// The name of the flapping second service (`flapper_ms`).
pub const FLAPPER: &str = "flapper";

/// How a health query is served (Consul's consistency modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// The leader answers from its own state, without a quorum check.
    Default,
    /// The leader confirms its leadership first: a Raft read through the
    /// configured `read_mode`.
    Consistent,
    /// Any server answers from its own state.
    Stale,
}

impl Consistency {
    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Consistency> {
        match name {
            "default" => Some(Consistency::Default),
            "consistent" => Some(Consistency::Consistent),
            "stale" => Some(Consistency::Stale),
            _ => None,
        }
    }
}

crate::impl_fingerprint!(enum Consistency {
    0 => Default,
    1 => Consistent,
    2 => Stale,
});

/// Roles and the service's set-up (`[cluster.config.discovery]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Consul servers: nodes `0..servers`.
    pub servers: usize,
    /// Agents, each with one instance of the service: the next `instances` nodes.
    pub instances: usize,
    /// Callers of the service: the last `callers` nodes.
    pub callers: usize,
    /// The service's name.
    pub service: String,
    /// How callers cache and pick: `"go-micro"` or `"etcd"` ([`CallerProfile`]).
    pub caller_profile: String,
    /// The callers' health queries: `"default"`, `"consistent"` or `"stale"`.
    pub read_mode: String,
    /// A blocking query waits at most this long for a change (Consul's `?wait`,
    /// 5 minutes by default), in ms.
    pub blocking_wait_ms: u64,
    /// What wakes a blocking query: `"service"` (the service's own index) or
    /// `"global"` (any write: Consul before per-service indexes).
    pub wake_on: String,
    /// The TTL check's TTL in ms (unset: no TTL check).
    pub check_ttl_ms: Option<u64>,
    /// How often the service refreshes its TTL check, in ms (unset: a third of
    /// the TTL).
    pub ttl_refresh_ms: Option<u64>,
    /// What an agent saves of its TTL checks and restores when it starts again:
    /// `"full-ttl"` (Consul: the saved status and a whole new TTL),
    /// `"remaining-ttl"` (the saved status until its saved expiry) or `"none"`
    /// ([`TtlRestore`]).
    pub ttl_restore: TtlRestore,
    /// The interval probe's period in ms (unset: no probe; with neither check the
    /// service is always listed as passing).
    pub probe_interval_ms: Option<u64>,
    /// How long a probe may run, in ms.
    pub probe_timeout_ms: u64,
    /// `success_before_passing` of the probe.
    pub success_before_passing: u32,
    /// `failures_before_warning` of the probe (unset: as `failures_before_critical`).
    pub failures_before_warning: Option<u32>,
    /// `failures_before_critical` of the probe: at least 1 (Consul treats 0 as 1: the
    /// first failure applies).
    pub failures_before_critical: u32,
    /// `deregister_critical_service_after` of both checks, in ms (unset: never).
    pub deregister_critical_service_after_ms: Option<u64>,
    /// With a value, each agent also runs a second service, `flapper`, whose TTL
    /// check it reports every this many ms, alternately passing and critical (a
    /// flapping batch job): catalog writes that concern another service than the
    /// callers'.
    pub flapper_ms: Option<u64>,
    /// The agents' full-sync interval before scaling and stagger, in ms (Consul:
    /// 1 minute).
    pub ae_interval_ms: u64,
    /// Time between a caller's calls in ms.
    pub call_interval_ms: u64,
    /// How long a call attempt waits in ms (unset: the profile's connection
    /// timeout, else 1 s).
    pub call_timeout_ms: Option<u64>,
    /// How long a request to a server waits before trying the next one, in ms
    /// (a blocking query: on top of its wait).
    pub request_timeout_ms: u64,
    /// Pause before retrying a request, in ms; also the least time between two
    /// blocking queries whose index did not move (a caller's rate limit).
    pub retry_backoff_ms: u64,
    /// With a value, the first instance's service flaps: every this many ms it
    /// turns from healthy to failing or back, so its probe flaps (consul#2890).
    pub probe_flap_ms: Option<u64>,
    /// An operator's catalog writes ([`OperatorAction`]).
    pub operator: Vec<OperatorAction>,
    /// Blocking queries each caller node holds on the service (1 to
    /// [`WATCHERS_MAX`](super::caller::WATCHERS_MAX)): other processes on the host
    /// watching the same endpoint; only the first feeds the node's calls. A
    /// thousand watchers need not be a thousand nodes.
    pub watchers: usize,
    /// Overrides the profile's cache `stale_on_error`: whether a caller keeps
    /// serving its last answer past the cache's TTL while the registry fails
    /// (go-micro: true).
    pub stale_on_error: Option<bool>,
    /// Overrides the profile's selector: eject an instance after this many failed
    /// calls in a row (0: never; go-micro's `Mark` does nothing). Set with
    /// `eject_ms`.
    pub eject_after_failures: Option<u32>,
    /// How long an ejected instance stays out of the picks, in ms.
    pub eject_ms: Option<u64>,
    /// A rolling deploy: with a value, agent `i` (0-based, in node order) stops
    /// its service at `deploy_start_ms + i * deploy_every_ms` and starts it again
    /// `deploy_down_ms` later. A stop is graceful, as go-micro's: the service
    /// deregisters from its agent (which syncs the deregistration) and refuses
    /// calls; the start registers it anew, its checks `critical` until they pass.
    pub deploy_start_ms: Option<u64>,
    /// Time between two instances' stops in a rolling deploy, in ms.
    pub deploy_every_ms: u64,
    /// How long an instance stays stopped in a rolling deploy, in ms.
    pub deploy_down_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            servers: 0,
            instances: 0,
            callers: 0,
            service: "api".into(),
            caller_profile: "go-micro".into(),
            read_mode: "default".into(),
            blocking_wait_ms: 300_000,
            wake_on: "service".into(),
            check_ttl_ms: None,
            ttl_refresh_ms: None,
            ttl_restore: TtlRestore::default(),
            probe_interval_ms: None,
            probe_timeout_ms: 500,
            success_before_passing: 0,
            failures_before_warning: None,
            failures_before_critical: 1,
            deregister_critical_service_after_ms: None,
            flapper_ms: None,
            ae_interval_ms: 60_000,
            call_interval_ms: 100,
            call_timeout_ms: None,
            request_timeout_ms: 1_000,
            retry_backoff_ms: 100,
            probe_flap_ms: None,
            operator: Vec::new(),
            watchers: 1,
            stale_on_error: None,
            eject_after_failures: None,
            eject_ms: None,
            deploy_start_ms: None,
            deploy_every_ms: 10_000,
            deploy_down_ms: 2_000,
        }
    }
}

/// A node's role in a Consul run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// A Consul server.
    Server,
    /// An agent with its service instance.
    Agent,
    /// A caller of the service.
    Caller,
}

/// `[cluster.config]` of protocol `consul`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsulConfig {
    /// Raft's settings (every key but `discovery`).
    pub raft: RaftConfig,
    /// Roles and the service.
    pub discovery: DiscoveryConfig,
    /// The LAN gossip pool and the leader's reconcile (the `gossip` sub-table).
    pub gossip: GossipConfig,
}

impl<'de> Deserialize<'de> for ConsulConfig {
    /// Splits the table: `discovery` and `gossip` are Consul's, the rest Raft's;
    /// each part is read strictly (unknown keys are refused).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let discovery = match table.remove("discovery") {
            Some(v) => DiscoveryConfig::deserialize(v)
                .map_err(|e| D::Error::custom(format!("discovery: {e}")))?,
            None => DiscoveryConfig::default(),
        };
        let gossip = match table.remove("gossip") {
            Some(v) => {
                GossipConfig::from_value(v).map_err(|e| D::Error::custom(format!("gossip: {e}")))?
            }
            None => GossipConfig::default(),
        };
        let raft = RaftConfig::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(ConsulConfig {
            raft,
            discovery,
            gossip,
        })
    }
}

impl ConsulConfig {
    /// The servers in a cluster of `nodes`.
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
            NodeRole::Agent
        } else {
            NodeRole::Caller
        }
    }

    /// Raft's settings with the servers as the bootstrap voters.
    pub fn raft_for(&self, nodes: usize) -> RaftConfig {
        let mut raft = self.raft.clone();
        if self.discovery.servers > 0 {
            raft.initial_voters = self.servers(nodes);
        }
        raft
    }

    /// The callers' consistency mode. Panics on an unknown name (validation
    /// refuses it first).
    pub fn consistency(&self) -> Consistency {
        Consistency::from_name(&self.discovery.read_mode).expect("a validated read mode")
    }

    /// Whether blocking queries wake on the global index.
    pub fn wake_global(&self) -> bool {
        self.discovery.wake_on == "global"
    }

    /// The callers' profile with the table's overrides (`stale_on_error`,
    /// `eject_after_failures`, `eject_ms`). Panics on an unknown name (validation
    /// refuses it first).
    pub fn caller_profile(&self) -> CallerProfile {
        let d = &self.discovery;
        let mut p = CallerProfile::from_name(&d.caller_profile).expect("a validated profile");
        if let Some(stale) = d.stale_on_error {
            p.cache.stale_on_error = stale;
        }
        if let Some(n) = d.eject_after_failures {
            p.selector.eject_after_failures = n;
        }
        if let Some(ms) = d.eject_ms {
            p.selector.eject_ms = ms;
        }
        p
    }

    /// The agents' checks on their service: (check id, its config), the TTL check
    /// first.
    pub fn checks(&self) -> Vec<(String, CheckConfig)> {
        let d = &self.discovery;
        let mut checks = Vec::new();
        if let Some(ttl_ms) = d.check_ttl_ms {
            let mut c = CheckConfig::ttl(ttl_ms);
            c.deregister_critical_service_after_ms = d.deregister_critical_service_after_ms;
            checks.push((format!("service:{}:ttl", d.service), c));
        }
        if let Some(interval_ms) = d.probe_interval_ms {
            let mut c = CheckConfig::probe(interval_ms, d.probe_timeout_ms);
            c.hysteresis = Hysteresis {
                success_before_passing: d.success_before_passing,
                failures_before_warning: d.failures_before_warning,
                failures_before_critical: d.failures_before_critical,
            };
            c.deregister_critical_service_after_ms = d.deregister_critical_service_after_ms;
            checks.push((format!("service:{}:probe", d.service), c));
        }
        checks
    }

    /// Agent `id`'s turn in the rolling deploy, if there is one: (stop, start)
    /// since the run began.
    pub fn deploy_of(&self, nodes: usize, id: usize) -> Option<(Duration, Duration)> {
        let d = &self.discovery;
        let start_ms = d.deploy_start_ms?;
        let i = id.checked_sub(self.servers(nodes))? as u64;
        let stop = start_ms + i * d.deploy_every_ms;
        Some((
            Duration::from_millis(stop),
            Duration::from_millis(stop + d.deploy_down_ms),
        ))
    }

    /// How often the service refreshes its TTL check, in ms.
    pub fn ttl_refresh_ms(&self) -> Option<u64> {
        let ttl = self.discovery.check_ttl_ms?;
        Some(self.discovery.ttl_refresh_ms.unwrap_or((ttl / 3).max(1)))
    }

    /// Checks the roles and the discovery settings against a cluster of `nodes`:
    /// `Err((field, message))`.
    pub fn discovery_validate(&self, nodes: usize) -> Result<(), (String, String)> {
        let d = &self.discovery;
        let field = |k: &str| format!("cluster.config.discovery.{k}");
        crate::discovery::roles::check(
            (d.servers, d.instances, d.callers),
            nodes,
            &d.service,
            "Consul servers",
            ':',
        )?;
        if let Err(e) = CallerProfile::from_name(&d.caller_profile) {
            return Err((field("caller_profile"), e.to_string()));
        }
        if Consistency::from_name(&d.read_mode).is_none() {
            return Err((
                field("read_mode"),
                format!(
                    "unknown read mode {:?}: default, consistent or stale",
                    d.read_mode
                ),
            ));
        }
        if d.wake_on != "service" && d.wake_on != "global" {
            return Err((
                field("wake_on"),
                format!("unknown index {:?}: service or global", d.wake_on),
            ));
        }
        if d.check_ttl_ms == Some(0) {
            return Err((
                field("check_ttl_ms"),
                "a TTL of 0 expires at once: at least 1 ms".into(),
            ));
        }
        if let (Some(ttl), Some(refresh)) = (d.check_ttl_ms, d.ttl_refresh_ms) {
            if refresh == 0 || refresh >= ttl {
                return Err((
                    field("ttl_refresh_ms"),
                    format!("refreshes every {refresh} ms cannot keep a TTL of {ttl} ms"),
                ));
            }
        }
        if d.flapper_ms == Some(0) {
            return Err((field("flapper_ms"), "must be at least 1 ms".into()));
        }
        if d.service == FLAPPER {
            return Err((
                field("service"),
                format!("{FLAPPER:?} is the flapping service's name"),
            ));
        }
        if d.probe_interval_ms == Some(0) {
            return Err((field("probe_interval_ms"), "must be at least 1 ms".into()));
        }
        if d.failures_before_critical == 0 {
            return Err((
                field("failures_before_critical"),
                "at least 1 (the first failure applies at 1)".into(),
            ));
        }
        if d.check_ttl_ms.is_some() && d.instances == 0 {
            return Err((
                field("check_ttl_ms"),
                "a TTL check needs a service to report it: set instances".into(),
            ));
        }
        if d.ttl_refresh_ms.is_some() && d.check_ttl_ms.is_none() {
            return Err((
                field("ttl_refresh_ms"),
                "refreshes of no TTL check: set check_ttl_ms".into(),
            ));
        }
        if d.probe_flap_ms == Some(0) {
            return Err((field("probe_flap_ms"), "must be at least 1 ms".into()));
        }
        if d.probe_flap_ms.is_some() && d.instances == 0 {
            return Err((
                field("probe_flap_ms"),
                "no instance to flap: set instances".into(),
            ));
        }
        let agents = self.servers(nodes)..self.servers(nodes) + d.instances;
        super::operator::validate(&d.operator, agents)?;
        if d.deploy_start_ms.is_some() && d.operator.iter().any(|a| a.is_restart()) {
            return Err((
                field("operator"),
                "restart-agent and a rolling deploy (deploy_start_ms) in one run: \
                 pick one"
                    .into(),
            ));
        }
        for (k, v) in [
            ("probe_timeout_ms", d.probe_timeout_ms),
            ("blocking_wait_ms", d.blocking_wait_ms),
            ("ae_interval_ms", d.ae_interval_ms),
            ("call_interval_ms", d.call_interval_ms),
            ("request_timeout_ms", d.request_timeout_ms),
            ("retry_backoff_ms", d.retry_backoff_ms),
        ] {
            if v == 0 {
                return Err((field(k), "must be at least 1 ms".into()));
            }
        }
        if !(1..=super::caller::WATCHERS_MAX).contains(&d.watchers) {
            return Err((
                field("watchers"),
                format!(
                    "{} watchers: 1 to {} per caller node",
                    d.watchers,
                    super::caller::WATCHERS_MAX
                ),
            ));
        }
        if let Err(e) = self.caller_profile().validate() {
            let key = match e.contains("eject") {
                true => "eject_after_failures",
                false => "caller_profile",
            };
            return Err((field(key), e));
        }
        if d.deploy_start_ms.is_some() {
            if d.deploy_down_ms == 0 || d.deploy_every_ms == 0 {
                let key = match d.deploy_down_ms {
                    0 => "deploy_down_ms",
                    _ => "deploy_every_ms",
                };
                return Err((field(key), "must be at least 1 ms".into()));
            }
            if d.deploy_down_ms >= d.deploy_every_ms {
                return Err((
                    field("deploy_down_ms"),
                    format!(
                        "an instance down {} ms every {} ms overlaps the next one's stop",
                        d.deploy_down_ms, d.deploy_every_ms
                    ),
                ));
            }
        }
        if d.call_timeout_ms == Some(0) {
            return Err((field("call_timeout_ms"), "must be at least 1 ms".into()));
        }
        self.gossip
            .validate(nodes, self.servers(nodes) + d.instances)?;
        if self.raft.initial_voters != 0 && d.servers > 0 && self.raft.initial_voters != d.servers {
            return Err((
                "cluster.config.initial_voters".into(),
                "the Consul servers are the voters: leave it unset when discovery.servers is set"
                    .into(),
            ));
        }
        Ok(())
    }
}
