//! A node of a Consul run, in its role ([`NodeRole`]): a server
//! ([`ConsulServer`]), an agent with its service instance ([`Agent`]) or a caller
//! of the service ([`Caller`]). Every role is a node, so every fault strikes it
//! alike. Servers and agents are members of the LAN gossip pool ([`LanMember`]);
//! callers are not.

use super::agent::{Agent, AgentBugs, AgentOut, AgentSettings, AgentTimer};
use super::caller::{Caller, CallerOut, CallerSettings, CallerTimer};
use super::catalog::Catalog;
use super::check_state::{self, CheckState};
use super::config::{ConsulConfig, NodeRole, FLAPPER};
use super::lan::{LanMember, Lift};
use super::server::{ConsulRequest, ConsulServer, ServerBugs, ServerOut, ServerTimer};
use crate::etcd::instance::Health;
use crate::fingerprint::{tag, Fingerprint, Sink};
use crate::gossip::{SwimMessage, SwimProcess, SwimTimer};
use crate::process::{
    ClientId, Context, NodeId, Process, RequestId, ServiceFault, SyncError, SyncId,
};
use crate::raft::invariants::RaftNode;
use crate::raft::{self, Bugs, RaftProcess};

/// What the nodes of a Consul run send each other.
#[derive(Clone, Debug)]
pub enum ConsulMessage {
    /// From a server.
    Server(ServerOut),
    /// A node client's request `seq` of `session` to a server.
    Client {
        /// The client's session.
        session: ClientId,
        /// The request's sequence number.
        seq: u64,
        /// The request.
        req: ConsulRequest,
    },
    /// A caller calls an instance.
    Call {
        /// The call's id, the caller's.
        id: u64,
    },
    /// The instance's answer: ok or an error.
    Answer {
        /// The call's id.
        id: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// LAN gossip between members of the pool.
    Gossip(SwimMessage),
}

impl Fingerprint for ConsulMessage {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            ConsulMessage::Server(s) => s.fingerprint(out),
            ConsulMessage::Client { session, seq, req } => {
                tag(out, 0xC025_1001);
                session.fingerprint(out);
                seq.fingerprint(out);
                req.fingerprint(out);
            }
            ConsulMessage::Call { id } => {
                tag(out, 0xC025_1002);
                id.fingerprint(out);
            }
            ConsulMessage::Answer { id, ok } => {
                tag(out, 0xC025_1003);
                id.fingerprint(out);
                ok.fingerprint(out);
            }
            ConsulMessage::Gossip(m) => {
                tag(out, 0xC025_1004);
                m.fingerprint(out);
            }
        }
    }
}

/// The timers of a Consul run's nodes.
#[derive(Clone, Debug)]
pub enum ConsulTimer {
    /// A server's.
    Server(ServerTimer),
    /// An agent's.
    Agent(AgentTimer),
    /// A caller's.
    Caller(CallerTimer),
    /// A pool member's (server or agent).
    Gossip(SwimTimer),
}

/// A node of a Consul run.
pub enum ConsulNode {
    /// A Consul server.
    Server(Box<ConsulServer>),
    /// An agent with its service instance, and its member of the pool.
    Agent(Box<Agent>, Box<LanMember>),
    /// A caller of the service.
    Caller(Box<Caller>),
}

/// How an agent node lifts its member's messages and timers.
const LAN: Lift<ConsulNode> = (ConsulMessage::Gossip, ConsulTimer::Gossip);

/// Bugs a Consul run can switch on, by layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsulBugs {
    /// Raft's.
    pub raft: Bugs,
    /// The servers'.
    pub server: ServerBugs,
    /// The agents'.
    pub agent: AgentBugs,
}

impl ConsulNode {
    /// Node `id` of a cluster of `nodes` under `cfg`.
    pub fn new(cfg: &ConsulConfig, bugs: ConsulBugs, nodes: usize, id: NodeId) -> Self {
        let servers = cfg.servers(nodes);
        let d = &cfg.discovery;
        let members = servers + d.instances;
        let lan = || {
            let mut services = vec![d.service.clone()];
            if d.flapper_ms.is_some() {
                services.push(FLAPPER.to_string());
            }
            let swim = cfg.gossip.swim_for(servers, members, &services);
            LanMember::new(std::sync::Arc::new(swim), id, nodes)
        };
        match cfg.role(nodes, id) {
            NodeRole::Server => ConsulNode::Server(Box::new(ConsulServer::new(
                cfg.raft_for(nodes),
                bugs.raft,
                bugs.server,
                cfg.wake_global(),
                lan(),
                members,
                cfg.gossip.reconcile_interval_ms,
            ))),
            NodeRole::Agent => ConsulNode::Agent(
                Box::new(Agent::new(
                    id,
                    servers,
                    AgentSettings {
                        service: d.service.clone(),
                        checks: cfg.checks(),
                        ttl_refresh_ms: cfg.ttl_refresh_ms(),
                        flapper_ms: d.flapper_ms,
                        ae_interval: std::time::Duration::from_millis(d.ae_interval_ms),
                        cluster_nodes: nodes,
                        request_timeout_ms: d.request_timeout_ms,
                        retry_backoff_ms: d.retry_backoff_ms,
                        probe_flap_ms: d.probe_flap_ms.filter(|_| id == servers),
                        operator: d
                            .operator
                            .iter()
                            .filter(|a| a.node == id && !a.is_restart())
                            .map(|a| (a.at(), a.command(&d.service)))
                            .collect(),
                        bugs: bugs.agent,
                        deploy: cfg.deploy_of(nodes, id),
                        ttl_restore: d.ttl_restore,
                        restarts: d
                            .operator
                            .iter()
                            .filter(|a| a.node == id && a.is_restart())
                            .map(|a| a.at())
                            .collect(),
                    },
                )),
                Box::new(lan()),
            ),
            NodeRole::Caller => {
                let profile = cfg.caller_profile();
                ConsulNode::Caller(Box::new(Caller::new(
                    servers,
                    CallerSettings {
                        service: d.service.clone(),
                        profile,
                        mode: cfg.consistency(),
                        wait_ms: d.blocking_wait_ms,
                        call_interval_ms: d.call_interval_ms,
                        attempt_timeout_ms: d
                            .call_timeout_ms
                            .or(profile.connect_timeout_ms)
                            .unwrap_or(1_000),
                        request_timeout_ms: d.request_timeout_ms,
                        retry_backoff_ms: d.retry_backoff_ms,
                        watchers: d.watchers,
                    },
                )))
            }
        }
    }

    /// The server, if this node is one.
    pub fn server(&self) -> Option<&ConsulServer> {
        match self {
            ConsulNode::Server(s) => Some(s),
            _ => None,
        }
    }

    /// The agent, if this node is one.
    pub fn agent(&self) -> Option<&Agent> {
        match self {
            ConsulNode::Agent(a, _) => Some(a),
            _ => None,
        }
    }

    /// Its member of the LAN pool, if this node is in the pool.
    pub fn lan(&self) -> Option<&LanMember> {
        match self {
            ConsulNode::Server(s) => Some(s.lan()),
            ConsulNode::Agent(_, l) => Some(l),
            ConsulNode::Caller(_) => None,
        }
    }

    /// The caller, if this node is one.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            ConsulNode::Caller(c) => Some(c),
            _ => None,
        }
    }

    fn begin(&mut self) {
        match self {
            ConsulNode::Server(s) => s.begin(),
            ConsulNode::Agent(a, _) => a.begin(),
            ConsulNode::Caller(c) => c.begin(),
        }
    }
}

type Ctx<'a> = Context<'a, ConsulNode>;

fn agent_effects(ctx: &mut Ctx<'_>, out: Vec<AgentOut>) {
    for o in out {
        match o {
            AgentOut::Request {
                to,
                session,
                seq,
                req,
            } => ctx.send(to, ConsulMessage::Client { session, seq, req }),
            AgentOut::Timer(after, t) => {
                ctx.set_timer(after, ConsulTimer::Agent(t));
            }
            AgentOut::SaveCheck {
                check_id,
                status,
                output,
                ttl_ms,
            } => {
                let state = CheckState::new(&check_id, status, &output, wall_ms(ctx), ttl_ms);
                ctx.write(
                    check_state::key(&check_id),
                    raft::Record::File(state.to_json()),
                );
            }
        }
    }
}

/// The wall clock, in ms (Consul's check states expire by it).
fn wall_ms(ctx: &Ctx<'_>) -> u64 {
    ctx.wall_clock().as_millis() as u64
}

/// The check states on the node's disk that decode (`loadCheckState` drops the
/// others).
fn saved_checks(ctx: &Ctx<'_>) -> Vec<CheckState> {
    ctx.storage()
        .scan(check_state::PREFIX)
        .filter_map(|(_, r)| match r {
            raft::Record::File(json) => CheckState::from_json(json),
            _ => None,
        })
        .collect()
}

fn caller_effects(ctx: &mut Ctx<'_>, out: Vec<CallerOut>) {
    for o in out {
        match o {
            CallerOut::Request {
                to,
                session,
                seq,
                req,
            } => ctx.send(to, ConsulMessage::Client { session, seq, req }),
            CallerOut::Call { to, id } => ctx.send(to, ConsulMessage::Call { id }),
            CallerOut::Timer(after, t) => {
                ctx.set_timer(after, ConsulTimer::Caller(t));
            }
        }
    }
}

impl Process for ConsulNode {
    type Message = ConsulMessage;
    type Timer = ConsulTimer;
    type Request = raft::Request<Catalog>;
    type Response = raft::Response<Catalog>;
    type Record = raft::Record<Catalog>;

    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.begin();
        let (id, now) = (ctx.id(), ctx.now());
        match self {
            ConsulNode::Server(s) => s.on_start(ctx),
            ConsulNode::Agent(a, lan) => {
                lan.on_start(ctx, LAN);
                let saved = saved_checks(ctx);
                let out = a.on_start(id, now, (wall_ms(ctx), &saved), ctx.rng());
                agent_effects(ctx, out);
            }
            ConsulNode::Caller(c) => {
                let out = c.on_start(id, ctx.rng());
                caller_effects(ctx, out);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: ConsulMessage) {
        self.begin();
        let now = ctx.now();
        match (self, msg) {
            (ConsulNode::Server(s), ConsulMessage::Server(ServerOut::Raft(m))) => {
                s.on_raft_message(ctx, from, m)
            }
            (ConsulNode::Server(s), ConsulMessage::Client { session, seq, req }) => {
                s.on_client(ctx, from, session, seq, req)
            }
            (ConsulNode::Server(s), ConsulMessage::Gossip(m)) => s.on_gossip_message(ctx, from, m),
            (ConsulNode::Agent(_, lan), ConsulMessage::Gossip(m)) => {
                lan.on_message(ctx, LAN, from, m)
            }
            (ConsulNode::Agent(a, _), ConsulMessage::Server(ServerOut::Response(seq, resp))) => {
                let out = a.on_response(seq, resp, now);
                agent_effects(ctx, out);
            }
            (ConsulNode::Agent(a, _), ConsulMessage::Call { id }) => {
                if let Some(ok) = a.answer() {
                    ctx.send(from, ConsulMessage::Answer { id, ok });
                }
            }
            (ConsulNode::Caller(c), ConsulMessage::Server(ServerOut::Response(seq, resp))) => {
                let out = c.on_response(seq, resp, now, ctx.rng());
                caller_effects(ctx, out);
            }
            (ConsulNode::Caller(c), ConsulMessage::Answer { id, ok }) => {
                let out = c.on_answer(from, id, ok, now, ctx.rng());
                caller_effects(ctx, out);
            }
            // Anything else reached a node of another role: dropped.
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: ConsulTimer) {
        self.begin();
        let now = ctx.now();
        match (self, timer) {
            (ConsulNode::Server(s), ConsulTimer::Server(t)) => s.on_timer(ctx, t),
            (ConsulNode::Server(s), ConsulTimer::Gossip(t)) => s.on_gossip_timer(ctx, t),
            (ConsulNode::Agent(_, lan), ConsulTimer::Gossip(t)) => lan.on_timer(ctx, LAN, t),
            (ConsulNode::Agent(a, _), ConsulTimer::Agent(AgentTimer::Restart)) => {
                ctx.trace("the agent restarts; its service runs on");
                let saved = saved_checks(ctx);
                let out = a.restart(now, (wall_ms(ctx), &saved), ctx.rng());
                agent_effects(ctx, out);
            }
            (ConsulNode::Agent(a, _), ConsulTimer::Agent(t)) => {
                let out = a.on_timer(t, now, ctx.rng());
                agent_effects(ctx, out);
            }
            (ConsulNode::Caller(c), ConsulTimer::Caller(t)) => {
                let out = c.on_timer(t, now, ctx.rng());
                caller_effects(ctx, out);
            }
            _ => unreachable!("a node sets only its role's timers"),
        }
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, id: RequestId, req: raft::Request<Catalog>) {
        self.begin();
        match self {
            ConsulNode::Server(s) => s.on_request(ctx, id, req),
            _ => ctx.reply(
                id,
                raft::Response::Redirect {
                    seq: req.seq,
                    leader: None,
                },
            ),
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_>, sync: SyncId, result: Result<(), SyncError>) {
        self.begin();
        match self {
            ConsulNode::Server(s) => s.on_synced(ctx, sync, result),
            _ => unreachable!("only servers write"),
        }
    }

    fn message_bytes(msg: &ConsulMessage) -> usize {
        match msg {
            ConsulMessage::Server(ServerOut::Raft(m)) => m.size_bytes(),
            ConsulMessage::Gossip(m) => SwimProcess::message_bytes(m),
            _ => 64,
        }
    }

    fn message_class(msg: &ConsulMessage) -> &'static str {
        match msg {
            ConsulMessage::Server(ServerOut::Raft(m)) => m.class(),
            ConsulMessage::Server(ServerOut::Response(..)) | ConsulMessage::Client { .. } => {
                "client"
            }
            ConsulMessage::Call { .. } | ConsulMessage::Answer { .. } => "call",
            ConsulMessage::Gossip(m) => SwimProcess::message_class(m),
        }
    }

    fn message_classes() -> &'static [&'static str] {
        &[
            "pre-vote",
            "vote",
            "append",
            "heartbeat",
            "snapshot",
            "timeout-now",
            "client",
            "call",
            "probe",
            "gossip",
            "push-pull",
        ]
    }

    /// An agent's service fails its calls and checks, or hangs; other roles serve
    /// no application.
    fn on_service_fault(&mut self, _ctx: &mut Ctx<'_>, fault: ServiceFault, active: bool) {
        self.begin();
        let health = match (fault, active) {
            (_, false) => Health::Healthy,
            (ServiceFault::Unhealthy, true) => Health::Unhealthy,
            (ServiceFault::Hang, true) => Health::Hung,
        };
        if let ConsulNode::Agent(a, _) = self {
            a.set_health(health);
        }
    }

    fn serves_application() -> bool {
        true
    }

    fn role(&self) -> crate::Role {
        match self {
            ConsulNode::Server(s) => Process::role(s.raft()),
            _ => crate::Role::None,
        }
    }
}

impl RaftNode for ConsulNode {
    type Machine = Catalog;
    fn raft(&self) -> Option<&RaftProcess<Catalog>> {
        self.server().map(ConsulServer::raft)
    }
}
