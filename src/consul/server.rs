//! A Consul server, sans-IO: a Raft member ([`RaftProcess`]) replicating the
//! [`Catalog`], answering the agents' catalog writes and the callers' health
//! queries, after Consul's `agent/consul` (`rpc.go`: `blockingQuery`,
//! `consistentRead`; `health_endpoint.go`) and its HTTP handler
//! (`agent/health_endpoint.go`: `filterNonPassing`).
//!
//! **Node clients** (agents, callers) send [`ConsulRequest`]s as messages, under a
//! session id above [`NODE_SESSION_BASE`] (as etcd's node clients do), and get
//! [`ConsulResponse`]s back:
//!
//! - **Writes** (anti-entropy's registrations and deregistrations) go through Raft
//!   under the client's session: at most once, answered when applied.
//! - **Reads** in one of Consul's consistency modes ([`Consistency`]): `default`
//!   on the leader, from its applied state, with no quorum check (a server that
//!   does not lead names the leader it knows); `consistent` a Raft read through the
//!   configured `read_mode` (`read_index` or `lease`: the leader confirms it
//!   leads); `stale` on any server, from its own state.
//! - **Blocking queries** (a read with a minimum index and a wait): held until
//!   [`Catalog::wakes`] says the index they wait on moved past the minimum, or
//!   until the wait (plus up to a sixteenth of it, Consul's jitter) ran out; then
//!   served as above. They wake on the service's index or, with `wake_on =
//!   "global"`, on any write (Consul before per-service indexes, consul#1244).
//!   A `default` or `consistent` query held on a server that stops leading is
//!   answered "not leader" at once. Waking on the global index, a health answer
//!   carries the global index too (a `consistent` one: the index as the answer
//!   leaves, which may be past the state it was read from by entries applied in
//!   the same step; their change then waits for the next wake or the wait).
//! - **`?passing`** is applied here, after the read, as Consul's HTTP handler does
//!   after its RPC: the catalog is read with every instance and the instances with a
//!   check that is not `passing` are dropped ([`passing_filter`]).
//!
//! A crash loses the held queries; their callers time out and ask again.
//!
//! **Membership.** Every server is a member of the LAN pool ([`LanMember`]). The
//! leader reconciles membership into the catalog ([`reconcile_member`]) as Consul's
//! leader loop does (`agent/consul/leader.go`): once it has applied an entry of its
//! own term (Consul's barrier in `establishLeadership`), every member; then each
//! member whose record changed in its view; and every member again every
//! `reconcile_interval_ms`. Its writes go through Raft under the server's own
//! session; a write for a member still in flight is not proposed twice. A server
//! that does not lead drops membership changes (Consul's `reconcileCh` is fed only
//! on the leader).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::catalog::{
    Catalog, CatalogAnswer, CatalogCommand, CatalogQuery, ServiceInstance, WakeOn,
};
use super::config::Consistency;
use super::health::Status;
use super::lan::{LanMember, Lift, SerfStatus};
use super::node::{ConsulMessage, ConsulNode, ConsulTimer};
use super::reconcile::reconcile_member;
use crate::fingerprint::{tag, Fingerprint, Sink};
use crate::gossip::{SwimMessage, SwimTimer};
use crate::process::{ClientId, Context, Effect, NodeId, Process, RequestId, SyncError, SyncId};
use crate::raft::{self, Bugs, RaftProcess, RequestOp, Response, StateMachine};

pub use crate::etcd::server::{MEMBERS_MAX, NODE_SESSION_BASE};

/// Most blocking queries one server holds (callers hold one each); beyond it the
/// oldest is answered at once.
pub const BLOCKED_MAX: usize = 1024;

/// What a node client asks a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsulRequest {
    /// A catalog write, through Raft.
    Write(Arc<CatalogCommand>),
    /// A catalog read.
    Read {
        /// The query.
        query: CatalogQuery,
        /// Its consistency mode.
        mode: Consistency,
        /// Block until the index moves past this (0: answer at once).
        min_index: u64,
        /// The longest wait, in ms.
        wait_ms: u64,
    },
}

/// A server's answer to a node client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsulResponse {
    /// Raft's answer to a write (or to a `consistent` read it could not serve).
    Raft(Response<Catalog>),
    /// A read's answer (`?passing` applied).
    Read(CatalogAnswer),
    /// This server does not lead: the leader it knows.
    NotLeader(Option<NodeId>),
}

/// What leaves a server for another node.
#[derive(Clone, Debug)]
pub enum ServerOut {
    /// Raft's message to another server.
    Raft(raft::Message<Catalog>),
    /// A server's answer to a node client's request `seq`.
    Response(u64, ConsulResponse),
}

/// A server's timers.
#[derive(Clone, Debug)]
pub enum ServerTimer {
    /// Raft's.
    Raft(raft::Timer),
    /// The wait of blocking query `seq` of the node ran out.
    Wait(NodeId, u64),
    /// Time for the leader's periodic full reconcile.
    Reconcile,
}

/// Bugs a server can switch on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerBugs {
    /// `?passing` drops only `critical` instances, keeping `warning` ones (what
    /// Consul's DNS does, consul#2452, but not its health API).
    pub passing_admits_warning: bool,
    /// A held health query wakes only when the service's instances are registered
    /// or deregistered, not when a check changes (as if it waited on the catalog's
    /// service listing rather than on the health index): callers learn of a
    /// failing instance only when their wait runs out.
    pub blocking_ignores_check_updates: bool,
    /// The leader ignores failed members when it reconciles: a crashed node keeps
    /// `serfHealth` passing and its services stay passing.
    pub serf_failed_not_reconciled: bool,
    /// `?passing` looks only at the service's own checks, not at its node's (such
    /// as `serfHealth`).
    pub passing_ignores_node_checks: bool,
    /// A held query wakes as soon as the index it waits on differs from the one it
    /// carried, lower included: a server behind the leader answers a blocking query
    /// at once with an index lower than the one it was given.
    pub blocking_returns_stale_index: bool,
}

/// A health answer a server sent, for the checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The node it went to.
    pub to: NodeId,
    /// Answered from this server's state as it stands at the end of the step (a
    /// `default` or `stale` read); `false`: a Raft read, answered at some point of
    /// the step.
    pub local: bool,
    /// The read's consistency mode.
    pub mode: Consistency,
    /// The service.
    pub service: String,
    /// The instances listed.
    pub instances: Vec<ServiceInstance>,
    /// The index the answer carries (`X-Consul-Index`).
    pub index: u64,
    /// The index the query carried (0: not a blocking query).
    pub min_index: u64,
    /// Answered because its wait ran out (or the server would hold no more), not
    /// because the index moved.
    pub wait_ended: bool,
}

/// `?passing` (`filterNonPassing`): keeps the instances whose every check, node
/// checks included, is `passing` (with the bugs, also `warning`, or whatever the
/// node's checks say).
pub fn passing_filter(instances: Vec<ServiceInstance>, bugs: ServerBugs) -> Vec<ServiceInstance> {
    instances
        .into_iter()
        .filter(|i| {
            i.checks.iter().all(|c| match c.value.status {
                _ if bugs.passing_ignores_node_checks && c.value.service_id.is_none() => true,
                Status::Passing => true,
                Status::Warning => bugs.passing_admits_warning,
                Status::Critical => false,
            })
        })
        .collect()
}

/// A held blocking query.
#[derive(Clone, Debug)]
struct Blocked {
    session: ClientId,
    query: CatalogQuery,
    mode: Consistency,
    min_index: u64,
    /// The service's instances when it was held (for the bug only).
    instances: Vec<(String, String)>,
    /// Served because its wait ran out.
    wait_ended: bool,
}

/// A held blocking query, for the checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldQuery {
    /// The node that asked.
    pub from: NodeId,
    /// The service it asks about (`None`: another query).
    pub service: Option<String>,
    /// The index it waits to move past.
    pub min_index: u64,
}

/// One Consul server.
pub struct ConsulServer {
    raft: RaftProcess<Catalog>,
    bugs: ServerBugs,
    wake_global: bool,
    /// Node clients' sessions → their nodes, for Raft's answers.
    sessions: BTreeMap<ClientId, NodeId>,
    /// Raft reads in flight for node clients: (session, seq) → (node, `?passing`,
    /// the query's index, whether its wait ran out).
    reads: BTreeMap<(ClientId, u64), (NodeId, bool, u64, bool)>,
    /// Held blocking queries by (node, seq).
    blocked: BTreeMap<(NodeId, u64), Blocked>,
    applied: u64,
    served_in_step: Vec<Served>,
    /// Its member of the LAN pool.
    lan: LanMember,
    /// The pool: nodes `0..members`.
    members: usize,
    reconcile_interval: Duration,
    /// The server's own Raft session (the leader's reconcile writes): just below
    /// [`NODE_SESSION_BASE`].
    session: ClientId,
    next_seq: u64,
    /// Reconcile writes in flight: member → (seq, the write).
    inflight: BTreeMap<NodeId, (u64, CatalogCommand)>,
    /// The term whose first full reconcile is done (0: none yet).
    reconciled_term: u64,
    /// The periodic full reconcile is due.
    full_due: bool,
    /// Reconcile writes proposed, for the figures.
    reconcile_writes: u64,
}

/// How a server lifts its member's messages and timers.
const LAN: Lift<ConsulNode> = (lan_message, lan_timer);

fn lan_message(m: SwimMessage) -> ConsulMessage {
    ConsulMessage::Gossip(m)
}

fn lan_timer(t: SwimTimer) -> ConsulTimer {
    ConsulTimer::Gossip(t)
}

type Ctx<'a> = Context<'a, ConsulNode>;

fn wrap(out: ServerOut) -> ConsulMessage {
    ConsulMessage::Server(out)
}

/// The catalog query a server runs for `query`: `?passing` is applied after it.
fn unfiltered(query: &CatalogQuery) -> (CatalogQuery, bool) {
    match query {
        CatalogQuery::ServiceHealth {
            service,
            passing_only,
        } => (
            CatalogQuery::ServiceHealth {
                service: service.clone(),
                passing_only: false,
            },
            *passing_only,
        ),
        q => (q.clone(), false),
    }
}

impl ConsulServer {
    /// A server with Raft's `raft_cfg` and `bugs`; blocking queries wake on the
    /// global index if `wake_global`; `lan` is its member of the pool of nodes
    /// `0..members`, reconciled fully every `reconcile_interval_ms` when it leads.
    pub fn new(
        raft_cfg: raft::RaftConfig,
        bugs: Bugs,
        server_bugs: ServerBugs,
        wake_global: bool,
        lan: LanMember,
        members: usize,
        reconcile_interval_ms: u64,
    ) -> Self {
        ConsulServer {
            lan,
            members,
            reconcile_interval: Duration::from_millis(reconcile_interval_ms),
            session: NODE_SESSION_BASE,
            next_seq: 0,
            inflight: BTreeMap::new(),
            reconciled_term: 0,
            full_due: false,
            reconcile_writes: 0,
            raft: RaftProcess::new(raft_cfg, bugs),
            bugs: server_bugs,
            wake_global,
            sessions: BTreeMap::new(),
            reads: BTreeMap::new(),
            blocked: BTreeMap::new(),
            applied: 0,
            served_in_step: Vec::new(),
        }
    }

    /// Its Raft node.
    pub fn raft(&self) -> &RaftProcess<Catalog> {
        &self.raft
    }

    /// Its catalog, as applied.
    pub fn catalog(&self) -> &Catalog {
        self.raft.state_machine()
    }

    /// Blocking queries it holds.
    pub fn blocked(&self) -> usize {
        self.blocked.len()
    }

    /// Its member of the LAN pool.
    pub fn lan(&self) -> &LanMember {
        &self.lan
    }

    /// Reconcile writes this incarnation proposed as leader.
    pub fn reconcile_writes(&self) -> u64 {
        self.reconcile_writes
    }

    /// Health answers it sent in the last step.
    pub fn served_in_step(&self) -> &[Served] {
        &self.served_in_step
    }

    /// Resets the per-step records; the holder calls it first in every handler.
    pub fn begin(&mut self) {
        self.served_in_step.clear();
    }

    /// Boot or recovery.
    pub fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        assert!(
            ctx.id() < MEMBERS_MAX,
            "server {} beyond MEMBERS_MAX",
            ctx.id()
        );
        self.session = NODE_SESSION_BASE - 1 - ctx.id() as ClientId;
        self.lan.on_start(ctx, LAN);
        ctx.set_timer(
            self.reconcile_interval,
            ConsulTimer::Server(ServerTimer::Reconcile),
        );
        self.step_raft(ctx, |r, c| r.on_start(c));
        self.settle(ctx);
    }

    /// A gossip message from another member of the pool.
    pub fn on_gossip_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: SwimMessage) {
        self.lan.on_message(ctx, LAN, from, msg);
        self.settle(ctx);
    }

    /// One of its member's timers fired.
    pub fn on_gossip_timer(&mut self, ctx: &mut Ctx<'_>, timer: SwimTimer) {
        self.lan.on_timer(ctx, LAN, timer);
        self.settle(ctx);
    }

    /// A Raft message from another server.
    pub fn on_raft_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        msg: raft::Message<Catalog>,
    ) {
        self.step_raft(ctx, |r, c| r.on_message(c, from, msg));
        self.settle(ctx);
    }

    /// A workload client's request (no Consul run has workload clients; kept for
    /// the harness).
    pub fn on_request(&mut self, ctx: &mut Ctx<'_>, id: RequestId, req: raft::Request<Catalog>) {
        self.step_raft(ctx, |r, c| r.on_request(c, id, req));
        self.settle(ctx);
    }

    /// A timer fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: ServerTimer) {
        match timer {
            ServerTimer::Raft(t) => self.step_raft(ctx, |r, c| r.on_timer(c, t)),
            ServerTimer::Wait(node, seq) => {
                if let Some(mut b) = self.blocked.remove(&(node, seq)) {
                    b.wait_ended = true;
                    self.serve(ctx, node, seq, b);
                }
            }
            ServerTimer::Reconcile => {
                self.full_due = true;
                ctx.set_timer(
                    self.reconcile_interval,
                    ConsulTimer::Server(ServerTimer::Reconcile),
                );
            }
        }
        self.settle(ctx);
    }

    /// The disk completed `sync`.
    pub fn on_synced(&mut self, ctx: &mut Ctx<'_>, sync: SyncId, result: Result<(), SyncError>) {
        self.step_raft(ctx, |r, c| r.on_synced(c, sync, result));
        self.settle(ctx);
    }

    /// A node client's request `seq` of session `session`.
    pub fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        session: ClientId,
        seq: u64,
        req: ConsulRequest,
    ) {
        assert!(
            session >= NODE_SESSION_BASE,
            "node sessions start at the base"
        );
        match req {
            ConsulRequest::Write(cmd) => {
                self.sessions.insert(session, from);
                let id = RequestId {
                    client: session,
                    seq,
                };
                let op = RequestOp::Command(cmd);
                self.step_raft(ctx, |r, c| r.on_request(c, id, raft::Request { seq, op }));
            }
            ConsulRequest::Read {
                query,
                mode,
                min_index,
                wait_ms,
            } => {
                let instances = match self.bugs.blocking_ignores_check_updates {
                    true => self.instances_of(&query),
                    false => Vec::new(),
                };
                let b = Blocked {
                    session,
                    query,
                    mode,
                    min_index,
                    instances,
                    wait_ended: false,
                };
                if mode != Consistency::Stale && !self.raft.is_leader() {
                    self.not_leader(ctx, from, seq);
                } else if min_index > 0 && !self.wakes(&b) {
                    // One blocking query per client (a node's session): a retry
                    // replaces the older one.
                    self.blocked
                        .retain(|&(n, _), held| n != from || held.session != session);
                    if self.blocked.len() >= BLOCKED_MAX {
                        let ((n, s), mut oldest) = self.blocked.pop_first().expect("full");
                        oldest.wait_ended = true;
                        self.serve(ctx, n, s, oldest);
                    }
                    self.blocked.insert((from, seq), b);
                    let jitter = ctx.rng().gen_range(0..=wait_ms / 16);
                    ctx.set_timer(
                        Duration::from_millis(wait_ms + jitter),
                        ConsulTimer::Server(ServerTimer::Wait(from, seq)),
                    );
                } else {
                    self.serve(ctx, from, seq, b);
                }
            }
        }
        self.settle(ctx);
    }

    /// The (node, service id) pairs registered for a health query's service.
    fn instances_of(&self, query: &CatalogQuery) -> Vec<(String, String)> {
        match query {
            CatalogQuery::ServiceHealth { service, .. } => self
                .catalog()
                .service_health(service, false)
                .into_iter()
                .map(|i| (i.node.value.name, i.service.value.id))
                .collect(),
            CatalogQuery::Node { .. } => Vec::new(),
        }
    }

    /// The blocking queries it holds.
    pub fn held(&self) -> impl Iterator<Item = HeldQuery> + '_ {
        self.blocked.iter().map(|(&(from, _), b)| HeldQuery {
            from,
            service: match &b.query {
                CatalogQuery::ServiceHealth { service, .. } => Some(service.clone()),
                CatalogQuery::Node { .. } => None,
            },
            min_index: b.min_index,
        })
    }

    fn wakes(&self, b: &Blocked) -> bool {
        if self.bugs.blocking_returns_stale_index && b.min_index > 0 {
            let on = match (&b.query, self.wake_global) {
                (CatalogQuery::ServiceHealth { service, .. }, false) => {
                    WakeOn::Service(service.clone())
                }
                _ => WakeOn::Global,
            };
            if self.catalog().index_of(&on) < b.min_index {
                return true;
            }
        }
        if self.bugs.blocking_ignores_check_updates && b.min_index > 0 {
            if let CatalogQuery::ServiceHealth { .. } = b.query {
                return self.instances_of(&b.query) != b.instances;
            }
        }
        let on = match (&b.query, self.wake_global) {
            (CatalogQuery::ServiceHealth { service, .. }, false) => {
                WakeOn::Service(service.clone())
            }
            _ => WakeOn::Global,
        };
        self.catalog().wakes(&on, b.min_index)
    }

    fn not_leader(&mut self, ctx: &mut Ctx<'_>, to: NodeId, seq: u64) {
        let resp = ConsulResponse::NotLeader(self.raft.leader());
        ctx.send(to, wrap(ServerOut::Response(seq, resp)));
    }

    /// Answers query `seq` of node `to` now, in its mode.
    fn serve(&mut self, ctx: &mut Ctx<'_>, to: NodeId, seq: u64, b: Blocked) {
        let (query, passing) = unfiltered(&b.query);
        match b.mode {
            Consistency::Default if !self.raft.is_leader() => self.not_leader(ctx, to, seq),
            Consistency::Default | Consistency::Stale => {
                let answer = self.catalog().read(self.raft.applied_index(), &query);
                let asked = (b.min_index, b.wait_ended);
                self.answer(ctx, to, seq, answer, (passing, b.mode), true, asked);
            }
            Consistency::Consistent => {
                self.sessions.insert(b.session, to);
                if self.reads.len() >= BLOCKED_MAX {
                    // Reads Raft never answered (leadership lost): forget the oldest.
                    self.reads.pop_first();
                }
                self.reads
                    .insert((b.session, seq), (to, passing, b.min_index, b.wait_ended));
                let id = RequestId {
                    client: b.session,
                    seq,
                };
                let op = RequestOp::Read(query);
                self.step_raft(ctx, |r, c| r.on_request(c, id, raft::Request { seq, op }));
            }
        }
    }

    /// Sends a read's answer, `?passing` applied if asked; `asked` is the query's
    /// index and whether its wait ran out.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        to: NodeId,
        seq: u64,
        answer: CatalogAnswer,
        (passing, mode): (bool, Consistency),
        local: bool,
        asked: (u64, bool),
    ) {
        let answer = match answer {
            CatalogAnswer::ServiceHealth { index, instances } => {
                // Waking on the global index, the answer carries it, as Consul's did
                // before per-service indexes (else the caller would never block).
                let index = match self.wake_global {
                    true => self.catalog().index(),
                    false => index,
                };
                let instances = match passing {
                    true => passing_filter(instances, self.bugs),
                    false => instances,
                };
                if passing {
                    let service = match instances.first() {
                        Some(i) => i.service.value.name.clone(),
                        None => String::new(),
                    };
                    self.served_in_step.push(Served {
                        to,
                        local,
                        mode,
                        service,
                        instances: instances.clone(),
                        index,
                        min_index: asked.0,
                        wait_ended: asked.1,
                    });
                }
                CatalogAnswer::ServiceHealth { index, instances }
            }
            a => a,
        };
        ctx.send(
            to,
            wrap(ServerOut::Response(seq, ConsulResponse::Read(answer))),
        );
    }

    /// After every input: held queries whose index moved are answered, and those
    /// that need a leader, on a server that no longer leads, are turned away.
    fn settle(&mut self, ctx: &mut Ctx<'_>) {
        self.reconcile(ctx);
        if !self.raft.is_leader() {
            let gone: Vec<(NodeId, u64)> = self
                .blocked
                .iter()
                .filter(|(_, b)| b.mode != Consistency::Stale)
                .map(|(&k, _)| k)
                .collect();
            for (node, seq) in gone {
                self.blocked.remove(&(node, seq));
                self.not_leader(ctx, node, seq);
            }
        }
        if self.raft.applied_index() != self.applied {
            self.applied = self.raft.applied_index();
            let woken: Vec<(NodeId, u64)> = self
                .blocked
                .iter()
                .filter(|(_, b)| self.wakes(b))
                .map(|(&k, _)| k)
                .collect();
            for (node, seq) in woken {
                let b = self.blocked.remove(&(node, seq)).expect("held");
                self.serve(ctx, node, seq, b);
            }
        }
    }

    /// The leader's reconcile (see the module docs): a full one once its term's
    /// entry is applied and when the periodic one is due, else the members whose
    /// record changed.
    fn reconcile(&mut self, ctx: &mut Ctx<'_>) {
        let changed = self.lan.drain_changed();
        let term = self.raft.term();
        let ready =
            self.raft.is_leader() && self.raft.log().term(self.raft.applied_index()) == Some(term);
        if !ready {
            if !self.raft.is_leader() {
                self.inflight.clear();
                self.full_due = false;
            }
            return;
        }
        let todo: Vec<NodeId> = if self.reconciled_term != term || self.full_due {
            self.reconciled_term = term;
            self.full_due = false;
            (0..self.members).collect()
        } else {
            changed.into_iter().filter(|&n| n < self.members).collect()
        };
        let me = ctx.id();
        for node in todo {
            let status = match node == me {
                true => Some(SerfStatus::Alive),
                false => self.lan.status(node),
            };
            let Some(status) = status else {
                continue;
            };
            let ignore_failed = self.bugs.serf_failed_not_reconciled;
            let Some(cmd) = reconcile_member(self.catalog(), me, node, status, ignore_failed)
            else {
                continue;
            };
            if self.inflight.get(&node).is_some_and(|(_, c)| *c == cmd) {
                continue;
            }
            self.propose(ctx, node, cmd);
        }
    }

    /// Proposes a reconcile write for `node` under the server's own session.
    fn propose(&mut self, ctx: &mut Ctx<'_>, node: NodeId, cmd: CatalogCommand) {
        // Only a leader proposes, and a server leads again only in a higher term,
        // restarted or not: (term, count) keeps the session's numbers increasing.
        let base = self.raft.term() << 32;
        self.next_seq = self.next_seq.max(base) + 1;
        let seq = self.next_seq;
        ctx.trace(format!("reconcile: n{node} {cmd:?}"));
        self.inflight.insert(node, (seq, cmd.clone()));
        self.reconcile_writes += 1;
        let id = RequestId {
            client: self.session,
            seq,
        };
        let op = RequestOp::Command(Arc::new(cmd));
        self.step_raft(ctx, |r, c| r.on_request(c, id, raft::Request { seq, op }));
    }

    /// Runs one Raft handler and hands its effects on.
    fn step_raft(
        &mut self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut RaftProcess<Catalog>, &mut Context<'_, RaftProcess<Catalog>>),
    ) {
        let raft = &mut self.raft;
        let ((), effects) = ctx.nested(|c| f(raft, c));
        let mut replies = Vec::new();
        for effect in effects {
            let lifted = effect.lift::<ConsulNode>(
                |m| wrap(ServerOut::Raft(m)),
                |t| ConsulTimer::Server(ServerTimer::Raft(t)),
                |id, response| {
                    if id.client < NODE_SESSION_BASE - MEMBERS_MAX {
                        return Some(Effect::Reply { id, response });
                    }
                    replies.push((id, response));
                    None
                },
            );
            if let Some(e) = lifted {
                ctx.emit(e);
            }
        }
        for (id, response) in replies {
            if id.client == self.session {
                // A reconcile write was applied (or refused): the member may be
                // reconciled again.
                self.inflight.retain(|_, (seq, _)| *seq != id.seq);
                continue;
            }
            if let Some((to, passing, min_index, wait_ended)) =
                self.reads.remove(&(id.client, id.seq))
            {
                match response {
                    Response::Value { value, .. } => {
                        let asked = (min_index, wait_ended);
                        let how = (passing, Consistency::Consistent);
                        self.answer(ctx, to, id.seq, value, how, false, asked)
                    }
                    r => ctx.send(
                        to,
                        wrap(ServerOut::Response(id.seq, ConsulResponse::Raft(r))),
                    ),
                }
                continue;
            }
            if let Some(&to) = self.sessions.get(&id.client) {
                let resp = ConsulResponse::Raft(response);
                ctx.send(to, wrap(ServerOut::Response(id.seq, resp)));
            }
        }
    }
}

crate::impl_fingerprint!(enum ConsulRequest {
    0 => Write(cmd),
    1 => Read { query, mode, min_index, wait_ms },
});
crate::impl_fingerprint!(enum ConsulResponse {
    0 => Raft(response),
    1 => Read(answer),
    2 => NotLeader(leader),
});

impl Fingerprint for ServerOut {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            ServerOut::Raft(m) => m.fingerprint(out),
            ServerOut::Response(seq, r) => {
                tag(out, 0xC025_0001);
                seq.fingerprint(out);
                r.fingerprint(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::catalog::{CheckDef, Entry, NodeInfo, ServiceDef};

    fn entry<T>(value: T) -> Entry<T> {
        Entry {
            value,
            create_index: 1,
            modify_index: 1,
        }
    }

    fn instance(node: &str, statuses: &[Status]) -> ServiceInstance {
        ServiceInstance {
            node: entry(NodeInfo {
                name: node.into(),
                ..NodeInfo::default()
            }),
            service: entry(ServiceDef {
                id: "api".into(),
                name: "api".into(),
                port: 8080,
                tags: Vec::new(),
            }),
            checks: statuses
                .iter()
                .enumerate()
                .map(|(i, &status)| {
                    entry(CheckDef {
                        id: format!("c{i}"),
                        service_id: (i > 0).then(|| "api".to_string()),
                        status,
                        output: String::new(),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn passing_drops_warning_and_node_checks_count() {
        let all = vec![
            instance("a", &[Status::Passing, Status::Passing]),
            instance("b", &[Status::Passing, Status::Warning]),
            instance("c", &[Status::Critical, Status::Passing]),
            instance("d", &[]),
        ];
        let names = |v: Vec<ServiceInstance>| -> Vec<String> {
            v.into_iter().map(|i| i.node.value.name).collect()
        };
        assert_eq!(
            names(passing_filter(all.clone(), ServerBugs::default())),
            ["a", "d"]
        );
        let bug = ServerBugs {
            passing_admits_warning: true,
            ..ServerBugs::default()
        };
        assert_eq!(names(passing_filter(all, bug)), ["a", "b", "d"]);
    }
}
