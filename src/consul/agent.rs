//! A Consul agent with its one service instance on the same node, sans-IO, after
//! `agent/agent.go` (`AddService`, `reapServicesInternal`), `agent/local/state.go`
//! and `agent/ae/ae.go`.
//!
//! - **Registration.** At boot the agent holds its node, the service instance and
//!   its checks ([`CheckConfig`]s from the scenario: a TTL check the service
//!   refreshes and/or an interval probe of the service), each a [`HealthCheck`]
//!   starting `critical`, as Consul's do.
//! - **Checks.** The service refreshes its TTL check every `ttl_refresh_ms`:
//!   passing while healthy, critical while unhealthy (`service-unhealthy`), not at
//!   all while it hangs (`service-hang`), so the TTL runs out. A probe of the local
//!   service answers at once: HTTP 200 while healthy, 500 while unhealthy, nothing
//!   while it hangs (the probe times out: critical).
//! - **Anti-entropy.** A sync reads the catalog's view of the node (a `default`
//!   read on the leader) and sends [`sync_commands`] one by one, each through Raft;
//!   it runs at boot, after every status change (a partial sync in Consul; here a
//!   full comparison, which sends the same commands), and every
//!   `ae_interval + stagger(scale · ae_interval)` ([`full_sync_delay`], with the
//!   node's RNG). Output-only changes are synced at once too
//!   (`check_update_interval = 0`): the outputs here change only with the status.
//! - **Reaping.** [`Reaper`] every 30 s: a service whose check has been critical
//!   longer than `deregister_critical_service_after` is removed from the agent,
//!   and the next sync deregisters it from the catalog; it does not come back
//!   until the agent restarts.
//! - **Calls.** A caller's call is answered `ok`, `error` while unhealthy, nothing
//!   while hung.
//! - **Gossip.** The agent's node is a member of the LAN pool
//!   ([`super::lan::LanMember`], held next to the agent by its node) and publishes
//!   its service in its metadata; the node's health as gossip sees it reaches the
//!   catalog as `serfHealth`, which the leader writes ([`super::reconcile`]) and
//!   anti-entropy leaves alone. A crashed agent's own entries stay as its last sync
//!   left them, but its node's `serfHealth` turns critical once gossip fails it.
//! - **Flapping** (`probe_flap_ms`, consul#2890): the service itself turns from
//!   healthy to failing and back every so often; its probes, TTL reports and calls
//!   see it so (a fault's health comes first: unhealthy or hung stays so).
//! - **Operator requests** ([`super::operator`]): a catalog write sent through this
//!   agent's catalog endpoint at its time, forwarded to the servers between two
//!   syncs, without touching the local state, so the next full sync undoes a
//!   deregistration of a service the agent still runs.
//!
//! Requests rotate through the servers on timeouts and follow a named leader;
//! a refusal or a dropped write is retried after a backoff.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::anti_entropy::{full_sync_delay, sync_commands, LocalState};
use super::catalog::{CatalogAnswer, CatalogCommand, CatalogQuery, CheckDef, NodeInfo, ServiceDef};
use super::check_state::{CheckState, TtlRestore};
use super::config::{Consistency, FLAPPER};
use super::conn::{attempt_timeout, Conn, Pending};
use super::health::{
    CheckConfig, CheckKind, CheckUpdate, HealthCheck, ProbeOutcome, Reaper, Status,
};
use super::server::{ConsulRequest, ConsulResponse};
use crate::etcd::instance::Health;
use crate::process::NodeId;
use crate::raft::Response;

/// The catalog name of node `id`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}")
}

/// The node a catalog name names.
pub fn node_of(name: &str) -> Option<NodeId> {
    name.strip_prefix("node-")?.parse().ok()
}

/// An agent's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// The service's name (also its instance id on the node).
    pub service: String,
    /// Its checks: (check id, config).
    pub checks: Vec<(String, CheckConfig)>,
    /// How often the service refreshes its TTL check (ms), if it has one.
    pub ttl_refresh_ms: Option<u64>,
    /// A second service, [`FLAPPER`], whose TTL check flips between passing and
    /// critical every this many ms (`None`: none).
    pub flapper_ms: Option<u64>,
    /// The full-sync interval before scaling and stagger.
    pub ae_interval: Duration,
    /// Nodes in the cluster (the sync interval's scale).
    pub cluster_nodes: usize,
    /// How long an attempt waits before trying the next server (ms).
    pub request_timeout_ms: u64,
    /// Pause before retrying a refused request (ms).
    pub retry_backoff_ms: u64,
    /// With a value, the service itself flaps: every this many ms it turns from
    /// healthy to failing or back (an intermittently failing instance, consul#2890);
    /// its probes and calls see it so. `None`: it does not flap.
    pub probe_flap_ms: Option<u64>,
    /// Operator requests sent through this agent's catalog endpoint (forwarded to
    /// the servers, not applied to the agent's local state): (when, the write).
    pub operator: Vec<(Duration, CatalogCommand)>,
    /// Bugs to inject.
    pub bugs: AgentBugs,
    /// A rolling deploy's turn for this node: (stop, start) times since the run
    /// began. The stop is graceful (go-micro's `Stop`: deregister, then stop
    /// serving); the start registers the service anew.
    pub deploy: Option<(Duration, Duration)>,
    /// What the agent saves of its TTL checks and restores when it starts again
    /// ([`TtlRestore`]).
    pub ttl_restore: TtlRestore,
    /// When the agent restarts while its service runs on (an operator's
    /// `restart-agent`, as for an upgrade), since the run began.
    pub restarts: Vec<Duration>,
}

/// Bugs an agent can switch on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentBugs {
    /// Anti-entropy never deletes catalog entries the agent does not hold locally
    /// (`updateSyncState` skipping remote-only services and checks): a service the
    /// agent dropped while it could not reach the servers stays in the catalog.
    pub anti_entropy_never_removes: bool,
}

/// An agent's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentTimer {
    /// A check's, the reaper's or the TTL refresh's deadline.
    Deadline(Duration),
    /// Time for a periodic full sync.
    FullSync,
    /// Attempt `.1` of request `.0` timed out.
    Attempt(u64, u32),
    /// Retry the pending request after a backoff.
    Retry(u64),
    /// A rolling deploy stops the service (`true`) or starts it again.
    Deploy(bool),
    /// The agent restarts; its holder carries it out ([`Agent::restart`]), as only
    /// the holder reads the disk.
    Restart,
}

/// What an agent does next, for its holder to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentOut {
    /// Send `req` as request `seq` of `session` to server `to`.
    Request {
        /// The server.
        to: NodeId,
        /// The session.
        session: usize,
        /// The request's sequence number.
        seq: u64,
        /// The request.
        req: ConsulRequest,
    },
    /// Set a timer.
    Timer(Duration, AgentTimer),
    /// Save a TTL check's report on the node's disk ([`CheckState`], with the wall
    /// clock added by the holder), without an fsync, as Consul does.
    SaveCheck {
        /// The check.
        check_id: String,
        /// The reported status.
        status: Status,
        /// The reported output.
        output: String,
        /// The check's TTL, in ms.
        ttl_ms: u64,
    },
}

/// Where anti-entropy stands.
#[derive(Clone, Debug)]
enum SyncState {
    Idle,
    /// Reading the catalog's view of the node.
    Reading,
    /// Sending the commands: the one in flight is `pending`, then these.
    Writing(VecDeque<CatalogCommand>),
}

/// One agent and its service instance.
#[derive(Clone, Debug)]
pub struct Agent {
    settings: AgentSettings,
    servers: usize,
    conn: Option<Conn>,
    local: LocalState,
    /// Check id → (its service id, the check).
    checks: BTreeMap<String, (Option<String>, HealthCheck)>,
    reaper: Reaper,
    health: Health,
    next_refresh: Option<Duration>,
    /// The flapper's next report, and whether it reports passing.
    next_flap: Option<(Duration, bool)>,
    /// Deadline timers set and not yet fired.
    armed: BTreeSet<Duration>,
    sync: SyncState,
    pending: Option<Pending>,
    /// Waiting for a backoff before resending `pending`.
    waiting: bool,
    dirty: bool,
    updates_in_step: Vec<(String, Status)>,
    acked_in_step: Vec<(CatalogCommand, u64)>,
    reaped_in_step: Vec<String>,
    /// The flapping service's next turn, and whether it is failing now.
    next_turn: Option<(Duration, bool)>,
    /// Operator requests not yet sent, by time.
    operator: VecDeque<(Duration, CatalogCommand)>,
    /// The operator request in flight (its write is not anti-entropy's).
    operator_pending: bool,
    operator_acked_in_step: Vec<(CatalogCommand, u64)>,
    heard_in_step: bool,
    /// When the periodic full sync armed last is due: a restart starts a new chain,
    /// and the old chain's timer, when it fires, is ignored.
    full_sync_at: Duration,
}

impl Agent {
    /// The agent of node `node`, syncing with servers `0..servers`.
    pub fn new(node: NodeId, servers: usize, settings: AgentSettings) -> Self {
        let local = LocalState {
            node: NodeInfo {
                name: node_name(node),
                id: format!("id-{node}"),
                address: format!("10.0.{}.{}", node / 256, node % 256),
            },
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
        };
        Agent {
            settings,
            servers,
            conn: None,
            local,
            checks: BTreeMap::new(),
            reaper: Reaper::new(Duration::ZERO),
            health: Health::Healthy,
            next_refresh: None,
            next_flap: None,
            armed: BTreeSet::new(),
            sync: SyncState::Idle,
            pending: None,
            waiting: false,
            dirty: false,
            updates_in_step: Vec::new(),
            acked_in_step: Vec::new(),
            reaped_in_step: Vec::new(),
            next_turn: None,
            operator: VecDeque::new(),
            operator_pending: false,
            operator_acked_in_step: Vec::new(),
            heard_in_step: false,
            full_sync_at: Duration::ZERO,
        }
    }

    /// Its node's name.
    pub fn node_name(&self) -> &str {
        &self.local.node.name
    }

    /// What it holds: the authoritative state.
    pub fn local(&self) -> &LocalState {
        &self.local
    }

    /// Whether its service is registered with it (not reaped).
    pub fn has_service(&self) -> bool {
        self.local.services.contains_key(&self.settings.service)
    }

    /// Check status changes of the last step: (check id, new status).
    pub fn updates_in_step(&self) -> &[(String, Status)] {
        &self.updates_in_step
    }

    /// Catalog writes acknowledged to it in the last step, with the index they
    /// were applied at.
    pub fn acked_in_step(&self) -> &[(CatalogCommand, u64)] {
        &self.acked_in_step
    }

    /// Services it reaped in the last step.
    pub fn reaped_in_step(&self) -> &[String] {
        &self.reaped_in_step
    }

    /// Operator writes forwarded through its catalog endpoint and acknowledged in
    /// the last step, with the index they were applied at (not in
    /// [`Agent::acked_in_step`], which is anti-entropy's).
    pub fn operator_acked_in_step(&self) -> &[(CatalogCommand, u64)] {
        &self.operator_acked_in_step
    }

    /// Whether a server answered one of its requests in the last step.
    pub fn heard_in_step(&self) -> bool {
        self.heard_in_step
    }

    /// How the service behaves now: the fault's health, failing while it flaps down.
    fn effective_health(&self) -> Health {
        match (self.health, self.next_turn) {
            (Health::Healthy, Some((_, true))) => Health::Unhealthy,
            (h, _) => h,
        }
    }

    /// Whether its service flaps by itself (`probe_flap_ms`), so it never settles
    /// as healthy.
    pub fn flaps(&self) -> bool {
        self.settings.probe_flap_ms.is_some()
    }

    /// How its service answers calls now.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Sets how its service behaves (application faults).
    pub fn set_health(&mut self, health: Health) {
        self.health = health;
    }

    /// Whether a call gets an answer, and which: `Some(true)` ok, `Some(false)`
    /// error, `None` none. A reaped service refuses calls.
    pub fn answer(&self) -> Option<bool> {
        match self.effective_health() {
            Health::Healthy => Some(self.has_service()),
            Health::Unhealthy => Some(false),
            Health::Hung => None,
        }
    }

    /// Resets the per-step records; the holder calls it first in every handler.
    pub fn begin(&mut self) {
        self.updates_in_step.clear();
        self.acked_in_step.clear();
        self.reaped_in_step.clear();
        self.operator_acked_in_step.clear();
        self.heard_in_step = false;
    }

    /// Boot: the service and its checks (restoring the TTL checks' states `saved`
    /// on the disk, judged against the wall clock `wall_ms`), a first sync, the
    /// timers.
    pub fn on_start(
        &mut self,
        id: NodeId,
        now: Duration,
        (wall_ms, saved): (u64, &[CheckState]),
        rng: &mut impl Rng,
    ) -> Vec<AgentOut> {
        self.conn = Some(Conn::new(self.servers, id, rng));
        // Requests whose time passed while the node was down are not sent.
        self.operator = self
            .settings
            .operator
            .iter()
            .filter(|(at, _)| *at >= now)
            .cloned()
            .collect();
        let mut out = self.start(now, (wall_ms, saved), None, rng);
        if let Some((stop, _)) = self.settings.deploy.filter(|&(stop, _)| stop > now) {
            out.push(AgentOut::Timer(stop - now, AgentTimer::Deploy(true)));
        }
        for at in self.settings.restarts.iter().filter(|&&at| at > now) {
            out.push(AgentOut::Timer(*at - now, AgentTimer::Restart));
        }
        out
    }

    /// The agent process restarts at `now` while its service runs on
    /// (`consul` stopped and started, as for an upgrade): it forgets everything
    /// but what its disk holds (`saved`, judged against the wall clock `wall_ms`),
    /// registers its service and checks again, and syncs. Operator requests not yet
    /// sent stay scheduled. Its new RPC client numbers requests on from the old one,
    /// so no late answer to the old one passes for an answer to the new.
    pub fn restart(
        &mut self,
        now: Duration,
        (wall_ms, saved): (u64, &[CheckState]),
        rng: &mut impl Rng,
    ) -> Vec<AgentOut> {
        let old = self.conn.take().expect("started");
        let node = node_of(&self.local.node.name).expect("an agent's node name");
        let mut fresh = Agent::new(node, self.servers, self.settings.clone());
        fresh.health = self.health;
        fresh.operator = std::mem::take(&mut self.operator);
        // The service is its own process and runs on: its next TTL report comes
        // when it would have, so a check restored `critical` (or not restored)
        // stays so until then, as consul#1001's did.
        let next_report = self.next_refresh;
        *self = fresh;
        self.conn = Some(Conn::new(self.servers, node, rng).with_seq_base(old.last_seq()));
        self.start(now, (wall_ms, saved), next_report, rng)
    }

    /// What a start and a restart share: registration, the first reports and
    /// sync, the full-sync chain. `next_report`: when the running service reports
    /// next (`None`: it starts with the agent and reports at once).
    fn start(
        &mut self,
        now: Duration,
        (wall_ms, saved): (u64, &[CheckState]),
        next_report: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Vec<AgentOut> {
        self.reaper = Reaper::new(now);
        self.register_service(now, rng);
        if next_report.is_some() {
            self.next_refresh = next_report;
        }
        if let Some(ms) = self.settings.flapper_ms {
            let id = format!("service:{FLAPPER}:ttl");
            self.local.services.insert(
                FLAPPER.to_string(),
                ServiceDef {
                    id: FLAPPER.to_string(),
                    name: FLAPPER.to_string(),
                    port: 9090,
                    tags: Vec::new(),
                },
            );
            let check = HealthCheck::new(CheckConfig::ttl(3 * ms), now, rng);
            self.add_check(id, FLAPPER, check);
            self.next_flap = Some((now, true));
        }
        self.restore(now, wall_ms, saved);
        self.next_turn = self
            .settings
            .probe_flap_ms
            .map(|ms| (now + Duration::from_millis(ms), false));
        // A start syncs once: `due` already began that sync if the first reports
        // dirtied the local state, or sent a due operator request, which the sync
        // then follows.
        let mut out = self.due(now);
        match self.sync {
            SyncState::Idle => out.extend(self.start_sync(now)),
            SyncState::Reading => {}
            SyncState::Writing(_) => self.dirty = true,
        }
        out.push(self.next_full_sync(now, rng));
        out
    }

    /// Registers the service and its checks with the agent, each check new
    /// (`critical`), and has the service report at once.
    fn register_service(&mut self, now: Duration, rng: &mut impl Rng) {
        let service = self.settings.service.clone();
        self.local.services.insert(
            service.clone(),
            ServiceDef {
                id: service.clone(),
                name: service.clone(),
                port: 8080,
                tags: Vec::new(),
            },
        );
        for (check_id, config) in self.settings.checks.clone() {
            let check = HealthCheck::new(config, now, rng);
            self.add_check(check_id, &service, check);
        }
        // The service reports as soon as it runs.
        self.next_refresh = self.settings.ttl_refresh_ms.map(|_| now);
    }

    fn add_check(&mut self, check_id: String, service: &str, check: HealthCheck) {
        self.local.checks.insert(
            check_id.clone(),
            CheckDef {
                id: check_id.clone(),
                service_id: Some(service.to_string()),
                status: check.status(),
                output: check.output().to_string(),
            },
        );
        self.checks
            .insert(check_id, (Some(service.to_string()), check));
    }

    /// Gives the TTL checks the states saved on the disk that have not expired
    /// (`loadCheckState`), with the countdown [`TtlRestore`] says.
    fn restore(&mut self, now: Duration, wall_ms: u64, saved: &[CheckState]) {
        for state in saved {
            let Some((_, check)) = self.checks.get_mut(&state.check_id) else {
                continue;
            };
            let CheckKind::Ttl { ttl_ms } = check.config().kind else {
                continue;
            };
            let (Some(status), Some(remaining_ms)) = (state.status(), state.remaining_ms(wall_ms))
            else {
                continue;
            };
            let deadline_ms = match self.settings.ttl_restore {
                TtlRestore::FullTtl => ttl_ms,
                TtlRestore::RemainingTtl => remaining_ms,
                TtlRestore::None => continue,
            };
            let deadline = now + Duration::from_millis(deadline_ms);
            if let Ok(Some(u)) = check.restore(status, &state.output, deadline, now) {
                self.updated(&state.check_id.clone(), u);
            }
        }
    }

    /// Arms the next periodic full sync.
    fn next_full_sync(&mut self, now: Duration, rng: &mut impl Rng) -> AgentOut {
        let delay = full_sync_delay(self.settings.ae_interval, self.settings.cluster_nodes, rng);
        self.full_sync_at = now + delay;
        AgentOut::Timer(delay, AgentTimer::FullSync)
    }

    /// A rolling deploy's step: a graceful stop deregisters the service from the
    /// agent (`/v1/agent/service/deregister`, which removes its checks too) and
    /// the next sync deregisters it from the catalog; a start registers it as at
    /// boot, its checks `critical` until they pass.
    fn deploy(&mut self, stop: bool, now: Duration, rng: &mut impl Rng) -> Vec<AgentOut> {
        let service = self.settings.service.clone();
        let mut out = Vec::new();
        if stop {
            self.local.services.remove(&service);
            self.local
                .checks
                .retain(|_, c| c.service_id.as_deref() != Some(service.as_str()));
            self.checks
                .retain(|_, (s, _)| s.as_deref() != Some(service.as_str()));
            if let Some((stop_at, start_at)) = self.settings.deploy {
                out.push(AgentOut::Timer(
                    start_at.saturating_sub(stop_at),
                    AgentTimer::Deploy(false),
                ));
            }
        } else {
            self.register_service(now, rng);
        }
        self.dirty = true;
        out.extend(self.due(now));
        out
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("started")
    }

    /// Applies a check's update to the local state.
    fn updated(&mut self, check_id: &str, update: CheckUpdate) {
        if let Some(def) = self.local.checks.get_mut(check_id) {
            def.status = update.status;
            def.output = update.output;
            self.dirty = true;
            if update.previous != update.status {
                self.updates_in_step
                    .push((check_id.to_string(), update.status));
            }
        }
    }

    /// A TTL check's report (`/agent/check/pass|fail`, `updateTTLCheck`): applied,
    /// and saved on the disk unless the agent saves nothing.
    fn report(
        &mut self,
        id: &str,
        status: Status,
        output: &str,
        now: Duration,
    ) -> Option<AgentOut> {
        let (_, check) = self.checks.get_mut(id)?;
        let CheckKind::Ttl { ttl_ms } = check.config().kind else {
            return None;
        };
        if let Ok(Some(u)) = check.ttl_update(status, output, now) {
            self.updated(id, u);
        }
        (self.settings.ttl_restore != TtlRestore::None).then(|| AgentOut::SaveCheck {
            check_id: id.to_string(),
            status,
            output: output.to_string(),
            ttl_ms,
        })
    }

    /// Runs whatever is due at `now`, then arms the next deadline.
    fn due(&mut self, now: Duration) -> Vec<AgentOut> {
        let mut out = Vec::new();
        if let (Some((at, down)), Some(every)) = (self.next_turn, self.settings.probe_flap_ms) {
            if at <= now {
                self.next_turn = Some((now + Duration::from_millis(every), !down));
            }
        }
        if let (Some(at), Some(every)) = (self.next_refresh, self.settings.ttl_refresh_ms) {
            if at <= now {
                self.next_refresh = Some(now + Duration::from_millis(every));
                let report = match self.effective_health() {
                    Health::Healthy => Some((Status::Passing, "service ok")),
                    Health::Unhealthy => Some((Status::Critical, "service failing")),
                    Health::Hung => None,
                };
                if let Some((status, output)) = report {
                    let service = Some(self.settings.service.clone());
                    let ids: Vec<String> = self
                        .checks
                        .iter()
                        .filter(|(_, (s, _))| *s == service)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for id in ids {
                        out.extend(self.report(&id, status, output, now));
                    }
                }
            }
        }
        if let (Some((at, up)), Some(every)) = (self.next_flap, self.settings.flapper_ms) {
            if at <= now {
                self.next_flap = Some((now + Duration::from_millis(every), !up));
                let id = format!("service:{FLAPPER}:ttl");
                let (status, output) = match up {
                    true => (Status::Passing, "job ok"),
                    false => (Status::Critical, "job failed"),
                };
                out.extend(self.report(&id, status, output, now));
            }
        }
        let health = self.effective_health();
        let ids: Vec<String> = self.checks.keys().cloned().collect();
        for id in ids {
            // A deadline's outcome can schedule another at once (a probe that
            // starts and answers): a few rounds at most.
            for _ in 0..4 {
                let (_, check) = self.checks.get_mut(&id).expect("a check");
                if check.next_deadline().is_none_or(|d| d > now) {
                    break;
                }
                let outcome = check.on_deadline(now);
                let mut updates: Vec<CheckUpdate> = outcome.update.into_iter().collect();
                if let Some(probe) = outcome.start_probe {
                    let result = match health {
                        Health::Healthy => Some((ProbeOutcome::Passing, "HTTP GET: 200 OK")),
                        Health::Unhealthy => Some((
                            ProbeOutcome::Critical,
                            "HTTP GET: 500 Internal Server Error",
                        )),
                        Health::Hung => None,
                    };
                    if let Some((result, output)) = result {
                        if let Ok(Some(u)) = check.probe_result(probe, result, output, now) {
                            updates.push(u);
                        }
                    }
                }
                for u in updates {
                    self.updated(&id, u);
                }
            }
        }
        if now >= self.reaper.next_deadline() {
            let reaped = self.reaper.on_deadline(
                now,
                self.checks
                    .values()
                    .map(|(service, check)| (service.as_deref(), check)),
            );
            for service in reaped {
                self.local.services.remove(&service);
                self.local
                    .checks
                    .retain(|_, c| c.service_id.as_deref() != Some(service.as_str()));
                self.checks
                    .retain(|_, (s, _)| s.as_deref() != Some(service.as_str()));
                self.reaped_in_step.push(service);
                self.dirty = true;
            }
        }
        if matches!(self.sync, SyncState::Idle) {
            out.extend(self.next_work(now));
        }
        // The next deadline, armed unless an earlier timer is.
        let next = self
            .checks
            .values()
            .filter_map(|(_, c)| c.next_deadline())
            .chain(self.next_refresh)
            .chain(self.next_flap.map(|(at, _)| at))
            .chain(self.next_turn.map(|(at, _)| at))
            .chain(self.operator.front().map(|(at, _)| *at))
            .chain(Some(self.reaper.next_deadline()))
            .min()
            .expect("the reaper has a deadline");
        if self.armed.first().is_none_or(|&a| a > next) {
            let next = next.max(now);
            self.armed.insert(next);
            out.push(AgentOut::Timer(next - now, AgentTimer::Deadline(next)));
        }
        out
    }

    /// With nothing in flight: a due operator request first, else a sync if the
    /// local state changed.
    fn next_work(&mut self, now: Duration) -> Vec<AgentOut> {
        if self.operator.front().is_some_and(|(at, _)| *at <= now) {
            let (_, cmd) = self.operator.pop_front().expect("due");
            self.operator_pending = true;
            self.sync = SyncState::Writing(VecDeque::new());
            return self.request(ConsulRequest::Write(Arc::new(cmd)));
        }
        if self.dirty {
            return self.start_sync(now);
        }
        Vec::new()
    }

    fn start_sync(&mut self, now: Duration) -> Vec<AgentOut> {
        let _ = now;
        self.dirty = false;
        self.sync = SyncState::Reading;
        let query = CatalogQuery::Node {
            node: self.local.node.name.clone(),
        };
        let req = ConsulRequest::Read {
            query,
            mode: Consistency::Default,
            min_index: 0,
            wait_ms: 0,
        };
        self.request(req)
    }

    fn request(&mut self, req: ConsulRequest) -> Vec<AgentOut> {
        let p = self.conn().start(req);
        self.pending = Some(p);
        self.waiting = false;
        self.send()
    }

    fn send(&mut self) -> Vec<AgentOut> {
        let session = self.conn().session();
        let p = self.pending.as_ref().expect("a request");
        vec![
            AgentOut::Request {
                to: p.to,
                session,
                seq: p.seq,
                req: p.req.clone(),
            },
            AgentOut::Timer(
                attempt_timeout(&p.req, self.settings.request_timeout_ms),
                AgentTimer::Attempt(p.seq, p.attempt),
            ),
        ]
    }

    fn resend(&mut self) -> Vec<AgentOut> {
        let conn = self.conn.clone().expect("started");
        conn.retarget(self.pending.as_mut().expect("pending"));
        self.waiting = false;
        self.send()
    }

    /// A timer fired.
    pub fn on_timer(
        &mut self,
        timer: AgentTimer,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<AgentOut> {
        match timer {
            AgentTimer::Deadline(at) => {
                self.armed.remove(&at);
                self.due(now)
            }
            AgentTimer::FullSync => {
                if now < self.full_sync_at {
                    // Armed before a restart.
                    return Vec::new();
                }
                let mut out = vec![self.next_full_sync(now, rng)];
                match self.sync {
                    SyncState::Idle => out.extend(self.start_sync(now)),
                    _ => self.dirty = true,
                }
                out
            }
            AgentTimer::Attempt(seq, attempt) => {
                let live = self
                    .pending
                    .as_ref()
                    .is_some_and(|p| (p.seq, p.attempt) == (seq, attempt) && !self.waiting);
                if !live {
                    return Vec::new();
                }
                self.conn().next();
                self.resend()
            }
            AgentTimer::Deploy(stop) => self.deploy(stop, now, rng),
            // The holder restarts the agent (it reads the disk): see `restart`.
            AgentTimer::Restart => Vec::new(),
            AgentTimer::Retry(seq) => {
                let live = self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.seq == seq && self.waiting);
                if !live {
                    return Vec::new();
                }
                self.resend()
            }
        }
    }

    /// A server's answer to request `seq`.
    pub fn on_response(&mut self, seq: u64, resp: ConsulResponse, now: Duration) -> Vec<AgentOut> {
        if !self
            .pending
            .as_ref()
            .is_some_and(|p| p.seq == seq && !self.waiting)
        {
            return Vec::new();
        }
        self.heard_in_step = true;
        match resp {
            ConsulResponse::NotLeader(Some(leader))
            | ConsulResponse::Raft(Response::Redirect {
                leader: Some(leader),
                ..
            }) => {
                self.conn().follow(Some(leader));
                self.resend()
            }
            ConsulResponse::NotLeader(None) | ConsulResponse::Raft(Response::Redirect { .. }) => {
                // No leader known ("No cluster leader"): the next server, after a
                // pause, lest the request circle the servers at network speed.
                self.conn().next();
                self.waiting = true;
                vec![AgentOut::Timer(
                    Duration::from_millis(self.settings.retry_backoff_ms),
                    AgentTimer::Retry(seq),
                )]
            }
            ConsulResponse::Read(CatalogAnswer::Node { node, .. })
                if matches!(self.sync, SyncState::Reading) =>
            {
                self.pending = None;
                let mut commands = sync_commands(&self.local, node.as_ref(), &BTreeSet::new());
                if self.settings.bugs.anti_entropy_never_removes {
                    commands.retain(|c| {
                        !matches!(
                            c,
                            CatalogCommand::DeregisterService { .. }
                                | CatalogCommand::DeregisterCheck { .. }
                        )
                    });
                }
                self.sync = SyncState::Writing(commands.into());
                self.next_write(now)
            }
            ConsulResponse::Raft(Response::Written { result, .. })
                if matches!(self.sync, SyncState::Writing(_)) =>
            {
                let p = self.pending.take().expect("pending");
                if let ConsulRequest::Write(cmd) = p.req {
                    if result.result.is_ok() {
                        let acked = ((*cmd).clone(), result.index);
                        match std::mem::take(&mut self.operator_pending) {
                            true => self.operator_acked_in_step.push(acked),
                            false => self.acked_in_step.push(acked),
                        }
                    }
                }
                self.next_write(now)
            }
            _ => {
                // Not ready, dropped, or an answer of another kind: the same request
                // again after a pause (Raft applies a retried write once).
                self.waiting = true;
                vec![AgentOut::Timer(
                    Duration::from_millis(self.settings.retry_backoff_ms),
                    AgentTimer::Retry(seq),
                )]
            }
        }
    }

    /// Sends the next write of the sync, or ends it (and starts another if the
    /// local state changed meanwhile).
    fn next_write(&mut self, now: Duration) -> Vec<AgentOut> {
        let SyncState::Writing(queue) = &mut self.sync else {
            unreachable!("writing")
        };
        match queue.pop_front() {
            Some(cmd) => self.request(ConsulRequest::Write(Arc::new(cmd))),
            None => {
                self.sync = SyncState::Idle;
                self.next_work(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::catalog::CatalogOutput;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn agent() -> Agent {
        Agent::new(
            4,
            3,
            AgentSettings {
                service: "api".into(),
                checks: vec![("service:api:probe".into(), CheckConfig::probe(1_000, 500))],
                ttl_refresh_ms: None,
                flapper_ms: None,
                ae_interval: Duration::from_secs(60),
                cluster_nodes: 8,
                request_timeout_ms: 1_000,
                retry_backoff_ms: 100,
                probe_flap_ms: None,
                operator: Vec::new(),
                bugs: AgentBugs::default(),
                deploy: None,
                ttl_restore: TtlRestore::default(),
                restarts: Vec::new(),
            },
        )
    }

    /// An agent whose service refreshes a 10 s TTL check every 3 s.
    fn ttl_agent(ttl_restore: TtlRestore) -> Agent {
        let mut a = agent();
        a.settings.checks = vec![("service:api:ttl".into(), CheckConfig::ttl(10_000))];
        a.settings.ttl_refresh_ms = Some(3_000);
        a.settings.ttl_restore = ttl_restore;
        a
    }

    /// The states an agent's `SaveCheck`s write, at wall-clock time `wall_ms`.
    fn saved(out: &[AgentOut], wall_ms: u64) -> Vec<CheckState> {
        out.iter()
            .filter_map(|o| match o {
                AgentOut::SaveCheck {
                    check_id,
                    status,
                    output,
                    ttl_ms,
                } => Some(CheckState::new(check_id, *status, output, wall_ms, *ttl_ms)),
                _ => None,
            })
            .collect()
    }

    fn ttl_check(a: &Agent) -> &HealthCheck {
        &a.checks["service:api:ttl"].1
    }

    fn requests(out: &[AgentOut]) -> Vec<(NodeId, u64, ConsulRequest)> {
        out.iter()
            .filter_map(|o| match o {
                AgentOut::Request { to, seq, req, .. } => Some((*to, *seq, req.clone())),
                _ => None,
            })
            .collect()
    }

    fn written(seq: u64, index: u64) -> ConsulResponse {
        ConsulResponse::Raft(Response::Written {
            seq,
            result: CatalogOutput {
                index,
                result: Ok(()),
            },
        })
    }

    /// Answers the agent's sync until it stops asking; returns the writes.
    fn run_sync(a: &mut Agent, first: Vec<AgentOut>, now: Duration) -> Vec<CatalogCommand> {
        let mut out = first;
        let mut writes = Vec::new();
        let mut index = 10;
        for _ in 0..10 {
            let Some((_, seq, req)) = requests(&out).pop() else {
                break;
            };
            out = match req {
                ConsulRequest::Read { .. } => a.on_response(
                    seq,
                    ConsulResponse::Read(CatalogAnswer::Node { index, node: None }),
                    now,
                ),
                ConsulRequest::Write(cmd) => {
                    writes.push((*cmd).clone());
                    index += 1;
                    a.on_response(seq, written(seq, index), now)
                }
            };
        }
        writes
    }

    #[test]
    fn boot_registers_the_node_then_the_service_with_its_critical_check() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut a = agent();
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        let reqs = requests(&out);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, 1, "node 4 starts with server 4 % 3");
        assert!(matches!(
            reqs[0].2,
            ConsulRequest::Read {
                mode: Consistency::Default,
                ..
            }
        ));
        let writes = run_sync(&mut a, out, Duration::ZERO);
        assert_eq!(writes.len(), 2, "{writes:?}");
        let CatalogCommand::Register(service) = &writes[1] else {
            panic!("{writes:?}")
        };
        assert_eq!(service.service.as_ref().map(|s| s.id.as_str()), Some("api"));
        assert_eq!(service.checks[0].status, Status::Critical);
        assert_eq!(
            a.acked_in_step().len(),
            2,
            "no step began between the writes"
        );
    }

    #[test]
    fn a_failing_probe_syncs_critical_at_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut a = agent();
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        run_sync(&mut a, out, Duration::ZERO);
        // The first probe (within a second) passes: a status change, a sync.
        let t = Duration::from_millis(1_000);
        a.begin();
        let out = a.on_timer(AgentTimer::Deadline(t), t, &mut rng);
        assert_eq!(
            a.updates_in_step(),
            [("service:api:probe".into(), Status::Passing)]
        );
        let writes = run_sync(&mut a, out, t);
        assert!(writes.iter().any(|w| matches!(w,
            CatalogCommand::Register(r) if r.checks.iter().any(|c| c.status == Status::Passing))));
        a.set_health(Health::Unhealthy);
        let t = Duration::from_millis(2_100);
        a.begin();
        let out = a.on_timer(AgentTimer::Deadline(t), t, &mut rng);
        assert_eq!(
            a.updates_in_step(),
            [("service:api:probe".into(), Status::Critical)]
        );
        assert_eq!(requests(&out).len(), 1, "a sync starts");
        assert_eq!(a.answer(), Some(false));
    }

    /// consul#3569: the service reported at 0 s and then hung; the agent restarts
    /// at 8 s, 2 s before the report runs out.
    fn restart_after_a_hang(mode: TtlRestore) -> (Agent, Vec<CheckState>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut a = ttl_agent(mode);
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        assert_eq!(
            ttl_check(&a).status(),
            Status::Passing,
            "it reports at once"
        );
        let disk = saved(&out, 0);
        a.set_health(Health::Hung);
        let t = Duration::from_secs(8);
        a.begin();
        let out = a.restart(t, (8_000, &disk), &mut rng);
        assert!(
            saved(&out, 8_000).is_empty(),
            "a hung service reports nothing"
        );
        assert_eq!(a.health(), Health::Hung, "the service runs on, hung");
        (a, disk)
    }

    #[test]
    fn a_restart_restores_a_saved_ttl_check_with_a_whole_new_ttl() {
        let (a, disk) = restart_after_a_hang(TtlRestore::FullTtl);
        assert_eq!(disk.len(), 1);
        assert_eq!(
            (disk[0].status.as_str(), disk[0].expires_s),
            ("passing", 10)
        );
        assert_eq!(ttl_check(&a).status(), Status::Passing);
        // 18 s: a report made at 0 s with a 10 s TTL holds until 18 s.
        assert_eq!(ttl_check(&a).next_deadline(), Some(Duration::from_secs(18)));
        let local = &a.local.checks["service:api:ttl"];
        assert_eq!(local.status, Status::Passing, "the sync sends it passing");
    }

    #[test]
    fn a_restart_can_keep_the_saved_expiry() {
        let (a, _) = restart_after_a_hang(TtlRestore::RemainingTtl);
        assert_eq!(ttl_check(&a).status(), Status::Passing);
        assert_eq!(ttl_check(&a).next_deadline(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn without_saved_states_a_restart_starts_every_check_critical() {
        let (a, disk) = restart_after_a_hang(TtlRestore::None);
        assert!(disk.is_empty(), "nothing is saved");
        assert_eq!(ttl_check(&a).status(), Status::Critical);
    }

    /// consul#1001: without saved states a restart turns a healthy service's TTL
    /// check `critical` until the service's next report, which keeps its own
    /// schedule (the service did not restart).
    #[test]
    fn a_restart_without_saved_states_is_critical_until_the_next_report() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut a = ttl_agent(TtlRestore::None);
        a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        assert_eq!(ttl_check(&a).status(), Status::Passing);
        a.begin();
        a.restart(Duration::from_secs(1), (1_000, &[]), &mut rng);
        assert_eq!(ttl_check(&a).status(), Status::Critical);
        a.begin();
        let t = Duration::from_secs(3);
        a.on_timer(AgentTimer::Deadline(t), t, &mut rng);
        assert_eq!(
            ttl_check(&a).status(),
            Status::Passing,
            "the report due at 3 s passes it"
        );
    }

    /// The service reports at once and dirties the local state, so the start's
    /// first deadline already begins the sync: the start sends that one read, and
    /// so does a restart.
    #[test]
    fn a_start_and_a_restart_read_the_catalog_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut a = ttl_agent(TtlRestore::FullTtl);
        let reads = |out: &[AgentOut]| {
            requests(out)
                .iter()
                .filter(|(_, _, r)| matches!(r, ConsulRequest::Read { .. }))
                .count()
        };
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        assert!(a.local.checks.values().any(|c| c.status == Status::Passing));
        assert_eq!(reads(&out), 1, "{out:?}");
        a.begin();
        let out = a.restart(Duration::from_secs(1), (1_000, &[]), &mut rng);
        assert_eq!(reads(&out), 1, "{out:?}");
    }

    #[test]
    fn an_expired_saved_state_is_not_restored() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut a = ttl_agent(TtlRestore::FullTtl);
        let disk = [CheckState::new(
            "service:api:ttl",
            Status::Passing,
            "ok",
            0,
            10_000,
        )];
        a.set_health(Health::Hung);
        a.on_start(4, Duration::ZERO, (10_000, &disk), &mut rng);
        assert_eq!(ttl_check(&a).status(), Status::Critical);
    }

    #[test]
    fn a_restart_numbers_requests_on_and_drops_the_old_full_sync_chain() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut a = agent();
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        let before = requests(&out)[0].1;
        let t = Duration::from_secs(5);
        let out = a.restart(t, (5_000, &[]), &mut rng);
        assert!(requests(&out)[0].1 > before, "a new number");
        let at = a.full_sync_at;
        assert!(at > t);
        // The chain armed before the restart fires first: ignored.
        assert!(a
            .on_timer(
                AgentTimer::FullSync,
                at - Duration::from_millis(1),
                &mut rng
            )
            .is_empty());
        assert!(!a.on_timer(AgentTimer::FullSync, at, &mut rng).is_empty());
    }

    /// With no leader known the request waits a backoff before the next server
    /// (else it circles the servers at network speed), and only the latest
    /// attempt's timer resends (else every timeout adds a copy in flight).
    #[test]
    fn no_leader_known_backs_off_and_stale_attempt_timers_do_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut a = agent();
        let out = a.on_start(4, Duration::ZERO, (0, &[]), &mut rng);
        let (_, seq, _) = requests(&out).last().cloned().expect("a sync read");
        let t = Duration::from_millis(5);
        a.begin();
        let out = a.on_response(seq, ConsulResponse::NotLeader(None), t);
        assert!(requests(&out).is_empty(), "no resend before the backoff");
        assert!(out
            .iter()
            .any(|o| matches!(o, AgentOut::Timer(_, AgentTimer::Retry(s)) if *s == seq)));
        let t = t + Duration::from_millis(100);
        a.begin();
        assert_eq!(
            requests(&a.on_timer(AgentTimer::Retry(seq), t, &mut rng)).len(),
            1
        );
        let t = t + Duration::from_secs(1);
        a.begin();
        let stale = a.on_timer(AgentTimer::Attempt(seq, 0), t, &mut rng);
        assert!(
            requests(&stale).is_empty(),
            "the first attempt's timer is stale"
        );
        a.begin();
        let latest = a.on_timer(AgentTimer::Attempt(seq, 1), t, &mut rng);
        assert_eq!(
            requests(&latest).len(),
            1,
            "the latest attempt's timer resends"
        );
    }

    #[test]
    fn node_names_round_trip() {
        assert_eq!(node_of(&node_name(17)), Some(17));
        assert_eq!(node_of("server-1"), None);
    }
}
