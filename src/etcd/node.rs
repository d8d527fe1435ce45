//! A node of an etcd run, in its role ([`NodeRole`]): an etcd member
//! ([`EtcdServer`]), an instance of the service ([`Instance`]) or a caller of it
//! ([`Caller`]). Every role is a node, so every fault strikes it alike.

use super::caller::{Caller, CallerOut, CallerTimer};
use super::config::{EtcdConfig, NodeRole};
use super::conn::NodeOut;
use super::instance::{Health, Instance, InstanceOut, InstanceTimer};
use super::server::{ClientRequest, EtcdServer, Holder, MemberInput, ServerOut, ServerTimer};
use super::watch::WatchBugs;
use super::{lessor::LessorBugs, EtcdStore};
use crate::fingerprint::{tag, Fingerprint, Sink};
use crate::process::{
    ClientId, Context, NodeId, Process, RequestId, ServiceFault, SyncError, SyncId,
};
use crate::raft::invariants::RaftNode;
use crate::raft::{self, Bugs, RaftProcess};

/// What the nodes of an etcd run send each other.
#[derive(Clone, Debug)]
pub enum EtcdMessage {
    /// From a member.
    Server(ServerOut),
    /// A node client's request `seq` of `session` to a member.
    Client {
        /// The client's session.
        session: ClientId,
        /// The request's sequence number.
        seq: u64,
        /// The request.
        req: ClientRequest,
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
}

impl Fingerprint for EtcdMessage {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            EtcdMessage::Server(s) => s.fingerprint(out),
            EtcdMessage::Client { session, seq, req } => {
                tag(out, 0xE7C1_0001);
                session.fingerprint(out);
                seq.fingerprint(out);
                req.fingerprint(out);
            }
            EtcdMessage::Call { id } => {
                tag(out, 0xE7C1_0002);
                id.fingerprint(out);
            }
            EtcdMessage::Answer { id, ok } => {
                tag(out, 0xE7C1_0003);
                id.fingerprint(out);
                ok.fingerprint(out);
            }
        }
    }
}

/// The timers of an etcd run's nodes.
#[derive(Clone, Debug)]
pub enum EtcdTimer {
    /// A member's.
    Server(ServerTimer),
    /// An instance's.
    Instance(InstanceTimer),
    /// A caller's.
    Caller(CallerTimer),
}

/// A node of an etcd run.
pub enum EtcdNode {
    /// An etcd member.
    Server(Box<EtcdServer>),
    /// An instance of the service.
    Instance(Box<Instance>),
    /// A caller of the service.
    Caller(Box<Caller>),
}

/// Bugs an etcd run can switch on, by layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct EtcdBugs {
    /// Raft's.
    pub raft: Bugs,
    /// The lessor's.
    pub lessor: LessorBugs,
    /// The watches'.
    pub watch: WatchBugs,
}

impl EtcdNode {
    /// Node `id` of a cluster of `nodes` under `cfg`.
    pub fn new(cfg: &EtcdConfig, bugs: EtcdBugs, nodes: usize, id: NodeId) -> Self {
        let servers = cfg.servers(nodes);
        match cfg.role(nodes, id) {
            NodeRole::Server => EtcdNode::Server(Box::new(EtcdServer::new(
                cfg.raft_for(nodes),
                bugs.raft,
                cfg.server.clone(),
                bugs.lessor,
                bugs.watch,
            ))),
            NodeRole::Instance => EtcdNode::Instance(Box::new(Instance::new(
                &cfg.discovery.service,
                id,
                servers,
                cfg.instance(),
            ))),
            NodeRole::Caller => {
                EtcdNode::Caller(Box::new(Caller::new(servers, cfg.caller(), bugs.watch)))
            }
        }
    }

    /// The member, if this node is one.
    pub fn server(&self) -> Option<&EtcdServer> {
        match self {
            EtcdNode::Server(s) => Some(s),
            _ => None,
        }
    }

    /// The instance, if this node is one.
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            EtcdNode::Instance(i) => Some(i),
            _ => None,
        }
    }

    /// The caller, if this node is one.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            EtcdNode::Caller(c) => Some(c),
            _ => None,
        }
    }

    /// Sets an instance's health (application faults); other roles ignore it.
    pub fn set_health(&mut self, health: Health) {
        if let EtcdNode::Instance(i) = self {
            i.set_health(health);
        }
    }

    fn begin(&mut self) {
        match self {
            EtcdNode::Server(s) => s.begin(),
            EtcdNode::Instance(i) => i.begin(),
            EtcdNode::Caller(c) => c.begin(),
        }
    }
}

impl Holder for EtcdNode {
    fn wrap(out: ServerOut) -> EtcdMessage {
        EtcdMessage::Server(out)
    }
    fn wrap_timer(timer: ServerTimer) -> EtcdTimer {
        EtcdTimer::Server(timer)
    }
    fn wrap_reply(response: raft::Response<EtcdStore>) -> raft::Response<EtcdStore> {
        response
    }
}

type Ctx<'a> = Context<'a, EtcdNode>;

/// Carries out what an instance or a caller asked for, its timers wrapped by
/// `timer`.
fn node_effects<T>(ctx: &mut Ctx<'_>, out: Vec<NodeOut<T>>, timer: fn(T) -> EtcdTimer) {
    for o in out {
        match o {
            NodeOut::Request {
                to,
                session,
                seq,
                req,
            } => ctx.send(to, EtcdMessage::Client { session, seq, req }),
            NodeOut::Call { to, id } => ctx.send(to, EtcdMessage::Call { id }),
            NodeOut::Timer(after, t) => {
                ctx.set_timer(after, timer(t));
            }
        }
    }
}

fn instance_effects(ctx: &mut Ctx<'_>, out: Vec<InstanceOut>) {
    node_effects(ctx, out, EtcdTimer::Instance);
}

fn caller_effects(ctx: &mut Ctx<'_>, out: Vec<CallerOut>) {
    node_effects(ctx, out, EtcdTimer::Caller);
}

impl Process for EtcdNode {
    type Message = EtcdMessage;
    type Timer = EtcdTimer;
    type Request = raft::Request<EtcdStore>;
    type Response = raft::Response<EtcdStore>;
    type Record = raft::Record<EtcdStore>;

    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.begin();
        let (id, now) = (ctx.id(), ctx.now());
        match self {
            EtcdNode::Server(s) => s.on_start(ctx),
            EtcdNode::Instance(i) => {
                let out = i.on_start(id, now, ctx.rng());
                instance_effects(ctx, out);
            }
            EtcdNode::Caller(c) => {
                let out = c.on_start(id, now, ctx.rng());
                caller_effects(ctx, out);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: EtcdMessage) {
        self.begin();
        let now = ctx.now();
        match (self, msg) {
            (EtcdNode::Server(s), EtcdMessage::Server(ServerOut::Raft(m))) => {
                s.on_input(ctx, MemberInput::Message(from, m))
            }
            (EtcdNode::Server(s), EtcdMessage::Server(ServerOut::Forward(cmd))) => {
                s.on_input(ctx, MemberInput::Forward(cmd))
            }
            (EtcdNode::Server(s), EtcdMessage::Client { session, seq, req }) => {
                s.on_input(ctx, MemberInput::Client(from, session, seq, req))
            }
            (EtcdNode::Instance(i), EtcdMessage::Server(ServerOut::Response(seq, resp))) => {
                let out = i.on_response(seq, resp, now, ctx.rng());
                instance_effects(ctx, out);
            }
            (EtcdNode::Instance(i), EtcdMessage::Call { id }) => {
                if let Some(ok) = i.answer() {
                    ctx.send(from, EtcdMessage::Answer { id, ok });
                }
            }
            (EtcdNode::Caller(c), EtcdMessage::Server(ServerOut::Response(seq, resp))) => {
                let out = c.on_response(seq, resp, now, ctx.rng());
                caller_effects(ctx, out);
            }
            (EtcdNode::Caller(c), EtcdMessage::Server(ServerOut::Watch(n, m))) => {
                let out = c.on_watch(from, n, m, now, ctx.rng());
                caller_effects(ctx, out);
            }
            (EtcdNode::Caller(c), EtcdMessage::Answer { id, ok }) => {
                let out = c.on_answer(from, id, ok, now, ctx.rng());
                caller_effects(ctx, out);
            }
            // Anything else reached a node of another role (a stale address): dropped.
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: EtcdTimer) {
        self.begin();
        let now = ctx.now();
        match (self, timer) {
            (EtcdNode::Server(s), EtcdTimer::Server(t)) => s.on_timer(ctx, t),
            (EtcdNode::Instance(i), EtcdTimer::Instance(t)) => {
                let out = i.on_timer(t, now);
                instance_effects(ctx, out);
            }
            (EtcdNode::Caller(c), EtcdTimer::Caller(t)) => {
                let out = c.on_timer(t, now, ctx.rng());
                caller_effects(ctx, out);
            }
            _ => unreachable!("a node sets only its role's timers"),
        }
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, id: RequestId, req: raft::Request<EtcdStore>) {
        self.begin();
        match self {
            EtcdNode::Server(s) => s.on_input(ctx, MemberInput::Request(id, req)),
            // Not a member: the workload client tries another node.
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
            EtcdNode::Server(s) => s.on_synced(ctx, sync, result),
            _ => unreachable!("only members write"),
        }
    }

    fn message_bytes(msg: &EtcdMessage) -> usize {
        match msg {
            EtcdMessage::Server(ServerOut::Raft(m)) => m.size_bytes(),
            _ => 64,
        }
    }

    fn message_class(msg: &EtcdMessage) -> &'static str {
        match msg {
            EtcdMessage::Server(ServerOut::Raft(m)) => m.class(),
            EtcdMessage::Server(ServerOut::Forward(_)) => "forward",
            EtcdMessage::Server(ServerOut::Watch(..)) => "watch",
            EtcdMessage::Server(ServerOut::Response(..)) | EtcdMessage::Client { .. } => "client",
            EtcdMessage::Call { .. } | EtcdMessage::Answer { .. } => "call",
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
            "forward",
            "watch",
            "client",
            "call",
        ]
    }

    /// An instance's calls fail or hang; other roles serve no application.
    fn on_service_fault(&mut self, _ctx: &mut Ctx<'_>, fault: ServiceFault, active: bool) {
        self.begin();
        let health = match (fault, active) {
            (_, false) => Health::Healthy,
            (ServiceFault::Unhealthy, true) => Health::Unhealthy,
            (ServiceFault::Hang, true) => Health::Hung,
        };
        self.set_health(health);
    }

    fn serves_application() -> bool {
        true
    }

    fn role(&self) -> crate::Role {
        match self {
            EtcdNode::Server(s) => Process::role(s.raft()),
            _ => crate::Role::None,
        }
    }

    fn coverage(&self) -> Option<u64> {
        match self {
            EtcdNode::Server(s) => Process::coverage(s.raft()),
            _ => None,
        }
    }
}

impl RaftNode for EtcdNode {
    type Machine = EtcdStore;
    fn raft(&self) -> Option<&RaftProcess<EtcdStore>> {
        self.server().map(EtcdServer::raft)
    }
}
