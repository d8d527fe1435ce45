//! Consul's LAN gossip pool: every server and every agent node runs a SWIM member
//! with Lifeguard ([`SwimProcess`]), as each Consul agent runs Serf over memberlist
//! (`agent/consul/server_serf.go`, `client_serf.go`); callers are not members.
//!
//! - **Settings** ([`GossipConfig`], `[cluster.config.gossip]`): SWIM's fields
//!   ([`SwimConfig`]), defaulting to memberlist's `DefaultLANConfig` (probe interval
//!   1 s, probe timeout 500 ms, suspicion multiplier 4, 3 indirect checks, Lifeguard
//!   on); `lifeguard = false` switches off all three parts of Lifeguard (memberlist
//!   before 0.1.0's awareness and dynamic suspicion); `reconcile_interval_ms` is the
//!   leader's full reconcile (Consul's `ReconcileInterval`, 60 s). The pool's members
//!   and their metadata come from the roles: servers are tagged `role = "consul"`,
//!   agents `role = "node"` and publish their service (Serf tags).
//! - **Nesting** ([`LanMember`]): the member runs inside its node on the node's clock
//!   and random stream. Its one durable record, the incarnation, is kept in a
//!   storage of its own that the node loses when it crashes: memberlist keeps its
//!   incarnation in memory, and a restarted member refutes the death others hold
//!   (they tell it so when it contacts them). Its timer ids live in a range of
//!   their own so that they never collide with the node's.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::gossip::{
    MemberState, NodeSpec, SwimBugs, SwimConfig, SwimMessage, SwimProcess, SwimTimer,
};
use crate::process::{Context, Effect, NodeId, Process, SyncId};
use crate::storage::Storage;

/// Timer ids of the nested member start here; a node's own ids count up from 0 per
/// incarnation and never reach it.
pub const TIMER_ID_BASE: u64 = 1 << 48;

/// Most rounds of completing the member's own syncs in one step (a step writes the
/// incarnation at most once, so one round suffices; the bound guards the loop).
const SYNC_ROUNDS_MAX: usize = 8;

/// `[cluster.config.gossip]`: the LAN pool's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GossipConfig {
    /// SWIM's and Lifeguard's settings (memberlist's `DefaultLANConfig` by default).
    pub swim: SwimConfig,
    /// Lifeguard as a whole; `false` switches off its Local Health Multiplier,
    /// dynamic suspicion and buddy system whatever their own fields say.
    pub lifeguard: bool,
    /// The leader reconciles every member with the catalog this often, in ms
    /// (Consul's `reconcile_interval`, 60 s).
    pub reconcile_interval_ms: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            swim: SwimConfig::default(),
            lifeguard: true,
            reconcile_interval_ms: 60_000,
        }
    }
}

impl GossipConfig {
    /// Reads the table: `lifeguard` and `reconcile_interval_ms` are Consul's, the
    /// rest SWIM's, read strictly (unknown keys are refused).
    pub fn from_value(value: toml::Value) -> Result<GossipConfig, String> {
        let toml::Value::Table(mut table) = value else {
            return Err("must be a table".into());
        };
        let mut cfg = GossipConfig::default();
        if let Some(v) = table.remove("lifeguard") {
            cfg.lifeguard = v.as_bool().ok_or("lifeguard: must be true or false")?;
        }
        if let Some(v) = table.remove("reconcile_interval_ms") {
            cfg.reconcile_interval_ms = v
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or("reconcile_interval_ms: must be a number of ms")?;
        }
        cfg.swim = SwimConfig::deserialize(toml::Value::Table(table)).map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Checks the settings for a cluster of `nodes` whose pool is nodes
    /// `0..members`: `Err((field, message))` naming the field.
    pub fn validate(&self, nodes: usize, members: usize) -> Result<(), (String, String)> {
        let field = |k: &str| format!("cluster.config.gossip.{k}");
        if !self.swim.nodes.is_empty() {
            return Err((
                field("nodes"),
                "the pool's members and their metadata come from the roles".into(),
            ));
        }
        self.swim.validate(nodes).map_err(|(f, m)| (field(&f), m))?;
        if let Some(&s) = self.swim.seeds.iter().find(|&&s| s >= members) {
            return Err((
                field("seeds"),
                format!("node {s} is a caller, not a member of the pool (nodes 0..{members})"),
            ));
        }
        if self.reconcile_interval_ms == 0 {
            return Err((
                field("reconcile_interval_ms"),
                "must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }

    /// The pool's SWIM settings: Lifeguard as switched, servers `0..servers` tagged
    /// `role = "consul"`, agents `servers..members` tagged `role = "node"` and
    /// offering `services`.
    pub fn swim_for(&self, servers: usize, members: usize, services: &[String]) -> SwimConfig {
        let mut swim = self.swim.clone();
        if !self.lifeguard {
            swim.lifeguard_lhm = false;
            swim.lifeguard_dynamic_suspicion = false;
            swim.lifeguard_buddy = false;
        }
        swim.nodes = (0..members)
            .map(|id| {
                let server = id < servers;
                let role = if server { "consul" } else { "node" };
                NodeSpec {
                    id,
                    tags: [("role".to_string(), role.to_string())].into(),
                    services: if server {
                        Vec::new()
                    } else {
                        services.to_vec()
                    },
                    join_at_ms: None,
                    leave_at_ms: None,
                }
            })
            .collect();
        swim
    }
}

/// Serf's view of a member, as the leader reconciles it (`serf.MemberStatus`): a
/// suspect member is still alive to Serf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerfStatus {
    /// Alive or suspect.
    Alive,
    /// Declared dead by gossip (`StatusFailed`).
    Failed,
    /// Left gracefully (`StatusLeft`).
    Left,
}

impl SerfStatus {
    /// The status of a SWIM state.
    pub fn of(state: MemberState) -> SerfStatus {
        match state {
            MemberState::Alive | MemberState::Suspect => SerfStatus::Alive,
            MemberState::Dead => SerfStatus::Failed,
            MemberState::Left => SerfStatus::Left,
        }
    }
}

/// One node's member of the LAN pool, nested in the node (see the module docs).
pub struct LanMember {
    swim: SwimProcess,
    storage: Storage<u64>,
    next_timer: u64,
    /// Members whose record changed since the holder last drained them.
    changed: BTreeSet<NodeId>,
}

impl LanMember {
    /// Member `id` of a cluster of `nodes` with the pool's settings `cfg`.
    pub fn new(cfg: Arc<SwimConfig>, id: NodeId, nodes: usize) -> Self {
        LanMember {
            swim: SwimProcess::new(cfg, id, nodes, SwimBugs::default()),
            storage: Storage::default(),
            next_timer: TIMER_ID_BASE,
            changed: BTreeSet::new(),
        }
    }

    /// The SWIM member.
    pub fn swim(&self) -> &SwimProcess {
        &self.swim
    }

    /// Serf's status of `node` in this member's view (`None`: never heard of).
    pub fn status(&self, node: NodeId) -> Option<SerfStatus> {
        self.swim.member(node).map(|m| SerfStatus::of(m.state))
    }

    /// Members whose record changed since the last call, in id order.
    pub fn drain_changed(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// Boot or recovery.
    pub fn on_start<P: Process>(&mut self, ctx: &mut Context<'_, P>, lift: Lift<P>) {
        self.step(ctx, lift, |s, c| s.on_start(c));
    }

    /// A message from another member.
    pub fn on_message<P: Process>(
        &mut self,
        ctx: &mut Context<'_, P>,
        lift: Lift<P>,
        from: NodeId,
        msg: SwimMessage,
    ) {
        self.step(ctx, lift, |s, c| s.on_message(c, from, msg));
    }

    /// One of its timers fired.
    pub fn on_timer<P: Process>(&mut self, ctx: &mut Context<'_, P>, lift: Lift<P>, t: SwimTimer) {
        self.step(ctx, lift, |s, c| s.on_timer(c, t));
    }

    /// Runs one SWIM handler on a context over the member's own storage and timer
    /// ids, completes its syncs at once (the storage is volatile) and hands its
    /// effects on, lifted into the holder's.
    fn step<P: Process>(
        &mut self,
        ctx: &mut Context<'_, P>,
        lift: Lift<P>,
        f: impl FnOnce(&mut SwimProcess, &mut Context<'_, SwimProcess>),
    ) {
        let mut effects = self.run(ctx, f);
        for _ in 0..SYNC_ROUNDS_MAX {
            let syncs: Vec<(SyncId, usize)> = effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Sync { id, writes } => Some((*id, *writes)),
                    _ => None,
                })
                .collect();
            self.emit(ctx, lift, effects);
            if syncs.is_empty() {
                self.changed.extend(self.swim.changed().iter().copied());
                return;
            }
            self.changed.extend(self.swim.changed().iter().copied());
            effects = Vec::new();
            for (id, writes) in syncs {
                self.storage.complete_sync(writes);
                effects.extend(self.run(ctx, |s, c| s.on_synced(c, id, Ok(()))));
            }
        }
        unreachable!("a member's step syncs at most {SYNC_ROUNDS_MAX} times");
    }

    fn run<P: Process>(
        &mut self,
        ctx: &mut Context<'_, P>,
        f: impl FnOnce(&mut SwimProcess, &mut Context<'_, SwimProcess>),
    ) -> Vec<Effect<SwimProcess>> {
        let (id, nodes, now) = (ctx.id(), ctx.nodes(), ctx.now());
        let mut effects = Vec::new();
        let mut c = Context::new(
            id,
            nodes,
            now,
            ctx.rng(),
            &mut self.storage,
            &mut self.next_timer,
            &mut effects,
        );
        f(&mut self.swim, &mut c);
        effects
    }

    fn emit<P: Process>(
        &mut self,
        ctx: &mut Context<'_, P>,
        lift: Lift<P>,
        effects: Vec<Effect<SwimProcess>>,
    ) {
        for effect in effects {
            match effect {
                // The member's storage is its own, not the node's disk.
                Effect::Write { .. } | Effect::Sync { .. } => {}
                e => {
                    if let Some(e) = e.lift::<P>(lift.0, lift.1, |_, _| None) {
                        ctx.emit(e);
                    }
                }
            }
        }
    }
}

/// How the holder wraps the member's messages and timers.
pub type Lift<P> = (
    fn(SwimMessage) -> <P as Process>::Message,
    fn(SwimTimer) -> <P as Process>::Timer,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GossipConfig, String> {
        GossipConfig::from_value(toml::Value::Table(text.parse().unwrap()))
    }

    #[test]
    fn defaults_are_memberlists_lan_config_with_lifeguard() {
        let c = parse("").unwrap();
        assert_eq!(c.swim.probe_interval_ms, 1_000);
        assert_eq!(c.swim.probe_timeout_ms, 500);
        assert_eq!(c.swim.suspicion_mult, 4);
        assert_eq!(c.swim.indirect_checks, 3);
        assert!(c.lifeguard && c.swim.lifeguard_lhm && c.swim.lifeguard_dynamic_suspicion);
        assert_eq!(c.reconcile_interval_ms, 60_000);
        assert_eq!(c.validate(8, 6), Ok(()));
    }

    #[test]
    fn lifeguard_off_switches_off_all_three_parts() {
        let c = parse("lifeguard = false\nlhm_max = 4").unwrap();
        let swim = c.swim_for(3, 5, &["api".into()]);
        assert!(!swim.lifeguard_lhm && !swim.lifeguard_dynamic_suspicion && !swim.lifeguard_buddy);
        assert_eq!(swim.suspicion_max(5), swim.suspicion_min(5));
        let on = parse("").unwrap().swim_for(3, 5, &["api".into()]);
        assert_eq!(on.suspicion_max(5), on.suspicion_min(5) * 6);
    }

    #[test]
    fn agents_publish_their_service_and_servers_do_not() {
        let swim = parse("").unwrap().swim_for(3, 5, &["api".into()]);
        assert_eq!(swim.nodes.len(), 5, "callers are not members");
        for spec in &swim.nodes {
            let server = spec.id < 3;
            assert_eq!(spec.services.is_empty(), server, "node {}", spec.id);
            let role = if server { "consul" } else { "node" };
            assert_eq!(spec.tags["role"], role);
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        let c = parse("probe_timeout_ms = 1000").unwrap();
        assert_eq!(
            c.validate(8, 6).unwrap_err().0,
            "cluster.config.gossip.probe_timeout_ms"
        );
        let c = parse("seeds = [6]").unwrap();
        assert_eq!(
            c.validate(8, 6).unwrap_err().0,
            "cluster.config.gossip.seeds"
        );
        let c = parse("reconcile_interval_ms = 0").unwrap();
        assert_eq!(
            c.validate(8, 6).unwrap_err().0,
            "cluster.config.gossip.reconcile_interval_ms"
        );
        assert!(parse("lifeguard = 1").unwrap_err().contains("lifeguard"));
        assert!(parse("probe_every_ms = 1")
            .unwrap_err()
            .contains("probe_every_ms"));
    }
}
