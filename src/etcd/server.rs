//! An etcd member, sans-IO: Raft ([`RaftProcess`]) replicating the MVCC store, the
//! lessor ([`Lessor`]) that counts leases down on the leader, and the watches
//! ([`WatchServer`]) this member serves from its own store, after etcd's
//! `server/etcdserver` (`server.go`, `v3_server.go`).
//!
//! **Clients.** The simulation's workload clients reach Raft as before (requests and
//! replies). Nodes that are etcd clients (a discovery run's service instances and
//! callers) send [`ClientRequest`]s as messages and get [`ClientResponse`]s back:
//! key-value requests go through Raft under the client's session, keepalives to
//! the leader's lessor (a follower answers `NotLeader`, where etcd forwards them),
//! watches to this member's [`WatchServer`].
//!
//! **Leases.** Grants, revocations and checkpoints are store commands; after every
//! step the lessor is brought in line with the store as applied. The lessor is
//! promoted when this member, as leader, has applied an entry of its own term (etcd
//! promotes on applying the leader's empty entry, `applyEntryNormal`), extended by
//! the election timeout as etcd's `Promote(electionTimeout)`; it is demoted as soon
//! as Raft stops leading. Every [`LESSOR_TICK_MS`] the leader proposes the
//! revocation of the leases the lessor lists as expired, the checkpoints it asks for
//! (`lease_checkpoint_ms`), and, after a stall, an empty checkpoint whose commit
//! confirms its leadership before it revokes again (etcd's fix for #15247).
//!
//! **A blocked loop.** etcd writes its WAL synchronously in its Raft loop, and its
//! apply loop waits on it: a disk that stops answering stops the member. So while
//! one of this member's syncs has been in flight for more than `wal_block_ms`, every
//! input but the disk's completions waits, in order. When the disk answers, the
//! member first runs the lessor (its own goroutine in etcd, which the block did not
//! stop), then the held inputs, and proposes what the lessor asked for last: a
//! member that stopped leading meanwhile forwards its proposals to the leader it
//! now knows, as etcd Raft forwards a follower's proposals (`MsgProp`). This is the
//! schedule of etcd#15247: a leader stalled on its disk resumes, revokes by its old
//! countdown, and the new leader commits it.
//!
//! **Compaction.** With `auto_compaction_retention` set, the leader proposes every
//! `auto_compaction_interval_ms` to compact the store to its revision minus the
//! retention (etcd's `--auto-compaction-mode=revision`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::lessor::{LeaseError, Lessor, LessorBugs, LessorConfig};
use super::store::LeaseId;
use super::watch::{
    Created, WatchBugs, WatchError, WatchId, WatchRequest, WatchResponse, WatchServer,
};
use super::{EtcdCommand, EtcdStore};
use crate::fingerprint::{tag, Fingerprint, Sink};
use crate::process::{ClientId, Context, Effect, NodeId, Process, RequestId, SyncError, SyncId};
use crate::raft::{self, Bugs, RaftProcess, RequestOp, Response};

/// How often the lessor's loop runs on the leader, in ms: etcd checks expiry every
/// 500 ms; a finer tick keeps the lessor's stall detection (`stall_ms`, 500 ms by
/// default) meaningful.
pub const LESSOR_TICK_MS: u64 = 100;

/// Session ids of node clients start here, and the members' own sessions are just
/// below it; the simulation's workload clients are numbered far below.
pub const NODE_SESSION_BASE: ClientId = 1 << 40;

/// Most members a cluster has: member `id`'s own session is
/// `NODE_SESSION_BASE - 1 - id`.
pub const MEMBERS_MAX: ClientId = 1 << 16;

/// Most watches one member serves: a bound on its memory (callers hold one each).
pub const WATCHES_MAX: usize = 1024;

/// The member settings etcd has beyond Raft's (`[cluster.config]` keys).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// etcd's `--experimental-lease-checkpoint-interval` in ms, with checkpoints on
    /// (`--experimental-enable-lease-checkpoint` and `-persist`); 0: off, etcd's
    /// default, under which every new leader gives every lease its full TTL again.
    pub lease_checkpoint_ms: u64,
    /// A gap of more than this between two runs of the lessor's loop is a stall
    /// (ms).
    pub stall_ms: u64,
    /// A sync in flight longer than this blocks the member's loop (ms): etcd
    /// fsyncs its WAL inside its Raft loop, so a disk that stops answering stops
    /// the member. Below it, syncs overlap the loop's work, as group commit does.
    /// Keep it below the election timeout: a member whose disk is stuck must not
    /// go on answering its peers.
    pub wal_block_ms: u64,
    /// Revisions the leader's auto-compaction keeps (etcd's
    /// `--auto-compaction-retention` in revision mode); 0: no auto-compaction.
    pub auto_compaction_retention: u64,
    /// How often the leader compacts, in ms (etcd checks every 5 minutes).
    pub auto_compaction_interval_ms: u64,
    /// Every this many ms a member sends a progress notification to each watch
    /// that is up to date (etcd's `--experimental-watch-progress-notify-interval`,
    /// 10 minutes by default; callers here also take it as the stream's heartbeat).
    pub watch_progress_notify_ms: u64,
    /// Most revisions per watch response (at least 1).
    pub watch_revisions_max: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            lease_checkpoint_ms: 0,
            stall_ms: 500,
            wal_block_ms: 50,
            auto_compaction_retention: 0,
            auto_compaction_interval_ms: 300_000,
            watch_progress_notify_ms: 1_000,
            watch_revisions_max: 100,
        }
    }
}

impl ServerConfig {
    /// The keys of [`ServerConfig`], as `[cluster.config]` spells them.
    pub const KEYS: &'static [&'static str] = &[
        "lease_checkpoint_ms",
        "stall_ms",
        "wal_block_ms",
        "auto_compaction_retention",
        "auto_compaction_interval_ms",
        "watch_progress_notify_ms",
        "watch_revisions_max",
    ];

    /// `Err((field, message))` for settings that cannot work.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let field = |k: &str| format!("cluster.config.{k}");
        if self.stall_ms == 0 {
            return Err((field("stall_ms"), "must be at least 1 ms".into()));
        }
        if self.wal_block_ms == 0 {
            return Err((field("wal_block_ms"), "must be at least 1 ms".into()));
        }
        if self.auto_compaction_retention > 0 && self.auto_compaction_interval_ms == 0 {
            return Err((
                field("auto_compaction_interval_ms"),
                "must be at least 1 ms when auto_compaction_retention is set".into(),
            ));
        }
        if self.watch_progress_notify_ms == 0 {
            return Err((
                field("watch_progress_notify_ms"),
                "must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }
}

/// What a node that is an etcd client asks a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// A key-value or lease request through Raft (range, put, txn, grant, revoke).
    Kv(RequestOp<EtcdStore>),
    /// Renew a lease (etcd's `LeaseKeepAlive`), on the leader.
    KeepAlive(LeaseId),
    /// Open a watch on this member.
    Watch(WatchRequest),
    /// Close one.
    CancelWatch(WatchId),
}

/// Why a keepalive got no TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveError {
    /// This member does not lead; the leader it knows.
    NotLeader(Option<NodeId>),
    /// The leader cannot renew now (not yet promoted, or confirming its leadership
    /// after a stall); try again.
    Unavailable,
    /// No such lease: it expired or was revoked (etcd's `ErrLeaseNotFound`).
    NotFound,
}

/// A member's answer to a node client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResponse {
    /// Raft's answer to a [`ClientRequest::Kv`].
    Kv(Response<EtcdStore>),
    /// The lease's TTL in ms, renewed from now, or why not.
    KeepAlive(Result<u64, KeepAliveError>),
}

/// A message of a watch stream. etcd serves a watch over one gRPC stream, which is
/// ordered and loses nothing until it breaks; here each message carries its place
/// in the stream (`seq`), and a receiver that sees a gap takes the stream as broken
/// and resumes the watch, as a client whose connection reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMsg {
    /// The answer to the watch request `request` (the stream's message 0).
    Created {
        /// The creating request's sequence number.
        request: u64,
        /// Created, or refused for compaction.
        result: Result<Created, WatchError>,
    },
    /// A response on the watch.
    Response(WatchResponse),
}

/// What a member does on its own, through Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Proposal {
    /// Revoke an expired lease.
    Revoke(LeaseId),
    /// Record remaining TTLs; the keepalives whose answer waits for it to commit
    /// (node, request seq, TTL in ms).
    Checkpoint(Vec<(LeaseId, u64)>, Vec<(NodeId, u64, u64)>),
    /// An empty checkpoint whose commit confirms this member still leads.
    Confirm,
    /// Compact the store.
    Compact(u64),
    /// Another member's proposal, forwarded here.
    Forwarded,
}

impl Proposal {
    fn command(&self) -> EtcdCommand {
        match self {
            Proposal::Revoke(id) => EtcdCommand::LeaseRevoke { id: *id },
            Proposal::Checkpoint(c, _) => EtcdCommand::LeaseCheckpoint {
                checkpoints: c.clone(),
            },
            Proposal::Confirm => EtcdCommand::LeaseCheckpoint {
                checkpoints: Vec::new(),
            },
            Proposal::Compact(revision) => EtcdCommand::Compact {
                revision: *revision,
            },
            Proposal::Forwarded => unreachable!("a forwarded proposal has its own command"),
        }
    }
}

/// A member's timers.
#[derive(Clone, Debug)]
pub enum ServerTimer {
    /// Raft's.
    Raft(raft::Timer),
    /// The lessor's loop, auto-compaction and watch progress.
    Tick,
}

/// An input of a member other than its disk's completions and its own tick: what
/// a blocked loop holds.
#[derive(Debug)]
pub enum MemberInput {
    /// A Raft message from another member.
    Message(NodeId, raft::Message<EtcdStore>),
    /// One of Raft's timers fired.
    Timer(raft::Timer),
    /// A workload client's request.
    Request(RequestId, raft::Request<EtcdStore>),
    /// A node client's request: (node, session, seq, request).
    Client(NodeId, ClientId, u64, ClientRequest),
    /// Another member's proposal, forwarded to this one as leader.
    Forward(Arc<EtcdCommand>),
}

/// Most inputs a blocked member holds; beyond it the oldest are dropped, as a
/// kernel drops packets a process does not read.
const HELD_MAX: usize = 65_536;

/// What leaves a member for another node: wrapped by the holder's message type.
#[derive(Clone, Debug)]
pub enum ServerOut {
    /// Raft's message to another member.
    Raft(raft::Message<EtcdStore>),
    /// A member's answer to a node client's request `seq`.
    Response(u64, ClientResponse),
    /// Message `seq` of a watch stream, for the node that watches.
    Watch(u64, WatchMsg),
    /// A proposal forwarded to the leader.
    Forward(Arc<EtcdCommand>),
}

/// One etcd member.
pub struct EtcdServer {
    cfg: ServerConfig,
    election_timeout: Duration,
    raft: RaftProcess<EtcdStore>,
    lessor: Lessor,
    watches: WatchServer,
    /// Watch id → the node that watches and the stream's next message number.
    watchers: BTreeMap<WatchId, (NodeId, u64)>,
    /// Node clients' sessions → their nodes, for the answers.
    sessions: BTreeMap<ClientId, NodeId>,
    /// This member's own session: just below [`NODE_SESSION_BASE`].
    session: ClientId,
    next_seq: u64,
    /// Own proposals in flight, by seq.
    proposals: BTreeMap<u64, Proposal>,
    /// Own proposals of this step, made at its end (after its Raft input).
    to_propose: Vec<Proposal>,
    /// Leases whose revocation this member proposed and has not seen applied.
    revoking: BTreeSet<LeaseId>,
    confirming: bool,
    /// Syncs in flight and when each started (monotonic clock).
    syncs: BTreeMap<SyncId, Duration>,
    held: VecDeque<MemberInput>,
    /// The applied index the lessor and the watches last saw.
    applied: u64,
    tick_armed: bool,
    next_compaction: Duration,
    next_progress: Duration,
    /// Leases this member's lessor listed as expired while it led (for checkers).
    expired_in_step: Vec<LeaseId>,
    /// Leases whose revocation this member applied in the step (for checkers).
    revoked_in_step: Vec<LeaseId>,
    /// Leases its lessor renewed in the step (for checkers).
    renewed_in_step: Vec<LeaseId>,
}

impl EtcdServer {
    /// A member with Raft's `raft` settings and bugs, etcd's `cfg`, and the lessor's
    /// and the watches' bugs.
    pub fn new(
        raft_cfg: raft::RaftConfig,
        bugs: Bugs,
        cfg: ServerConfig,
        lessor_bugs: LessorBugs,
        watch_bugs: WatchBugs,
    ) -> Self {
        let election_timeout = Duration::from_millis(raft_cfg.election_timeout_ms_max);
        let lessor = Lessor::new(
            LessorConfig {
                checkpoint_ms: (cfg.lease_checkpoint_ms > 0).then_some(cfg.lease_checkpoint_ms),
                stall_ms: cfg.stall_ms,
                ..LessorConfig::default()
            },
            lessor_bugs,
        );
        let watches = WatchServer::new(cfg.watch_revisions_max, watch_bugs);
        EtcdServer {
            cfg,
            election_timeout,
            raft: RaftProcess::new(raft_cfg, bugs),
            lessor,
            watches,
            watchers: BTreeMap::new(),
            sessions: BTreeMap::new(),
            session: NODE_SESSION_BASE,
            next_seq: 0,
            proposals: BTreeMap::new(),
            to_propose: Vec::new(),
            revoking: BTreeSet::new(),
            confirming: false,
            syncs: BTreeMap::new(),
            held: VecDeque::new(),
            applied: 0,
            tick_armed: false,
            next_compaction: Duration::ZERO,
            next_progress: Duration::ZERO,
            expired_in_step: Vec::new(),
            revoked_in_step: Vec::new(),
            renewed_in_step: Vec::new(),
        }
    }

    /// Its Raft node.
    pub fn raft(&self) -> &RaftProcess<EtcdStore> {
        &self.raft
    }

    /// Its store, as applied.
    pub fn store(&self) -> &EtcdStore {
        self.raft.state_machine()
    }

    /// Its lessor.
    pub fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    /// Whether its loop is blocked on its disk now.
    pub fn is_blocked(&self) -> bool {
        !self.held.is_empty()
    }

    /// Leases its lessor listed as expired in the last step (what it proposed to
    /// revoke).
    pub fn expired_in_step(&self) -> &[LeaseId] {
        &self.expired_in_step
    }

    /// Leases whose revocation it applied in the last step (every revocation here
    /// is by expiry unless the owner asked for it).
    pub fn revoked_in_step(&self) -> &[LeaseId] {
        &self.revoked_in_step
    }

    /// Leases its lessor renewed in the last step (a keepalive it took, whether
    /// or not its answer reaches the owner).
    pub fn renewed_in_step(&self) -> &[LeaseId] {
        &self.renewed_in_step
    }

    fn blocked_at(&self, now: Duration) -> bool {
        let stall = Duration::from_millis(self.cfg.wal_block_ms);
        self.syncs
            .values()
            .next()
            .is_some_and(|&since| now.saturating_sub(since) > stall)
    }
}

/// The holder of an [`EtcdServer`]: how its effects leave. A member's messages,
/// timers and replies are wrapped into the holder's process's types.
pub trait Holder: Process<Record = raft::Record<EtcdStore>> {
    /// Wraps what a member sends.
    fn wrap(out: ServerOut) -> Self::Message;
    /// Wraps a member's timer.
    fn wrap_timer(timer: ServerTimer) -> Self::Timer;
    /// Wraps Raft's reply to a workload client.
    fn wrap_reply(response: Response<EtcdStore>) -> Self::Response;
}

type Ctx<'a, H> = Context<'a, H>;

impl EtcdServer {
    /// Boot or recovery.
    pub fn on_start<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>) {
        // Not drawn from the node's random stream, which Raft's timeouts use: the
        // session is the member's own, and its sequence numbers start with the term
        // (see `propose`), so that they grow across restarts.
        assert!(
            ctx.id() < MEMBERS_MAX,
            "member {} beyond MEMBERS_MAX",
            ctx.id()
        );
        self.session = NODE_SESSION_BASE - 1 - ctx.id();
        self.step_raft(ctx, |r, c| r.on_start(c));
        self.settle(ctx);
    }

    /// An input (see [`MemberInput`]): run now, or held while the loop is blocked.
    pub fn on_input<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, input: MemberInput) {
        let blocked = !self.held.is_empty() || self.blocked_at(ctx.now());
        if blocked {
            if self.held.is_empty() {
                ctx.trace("etcd loop blocked: a sync is stuck");
            }
            if self.held.len() >= HELD_MAX {
                self.held.pop_front();
            }
            self.held.push_back(input);
            return;
        }
        self.run(ctx, input);
        self.settle(ctx);
    }

    fn run<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, input: MemberInput) {
        match input {
            MemberInput::Message(from, msg) => {
                self.step_raft(ctx, |r, c| r.on_message(c, from, msg))
            }
            MemberInput::Timer(t) => self.step_raft(ctx, |r, c| r.on_timer(c, t)),
            MemberInput::Request(id, req) => self.step_raft(ctx, |r, c| r.on_request(c, id, req)),
            MemberInput::Client(from, session, seq, req) => {
                self.client(ctx, from, session, seq, req)
            }
            MemberInput::Forward(cmd) => self.forwarded(ctx, cmd),
        }
    }

    /// A timer of this member fired.
    pub fn on_timer<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, timer: ServerTimer) {
        match timer {
            ServerTimer::Raft(t) => return self.on_input(ctx, MemberInput::Timer(t)),
            ServerTimer::Tick => {
                self.tick_armed = false;
                if !self.blocked_at(ctx.now()) {
                    self.tick(ctx);
                }
            }
        }
        self.settle(ctx);
    }

    /// The disk completed `sync`. If that unblocks the loop: the lessor first, then
    /// the held inputs in order.
    pub fn on_synced<H: Holder>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) {
        self.syncs.retain(|&id, _| id > sync);
        self.step_raft(ctx, |r, c| r.on_synced(c, sync, result));
        if !self.held.is_empty() && !self.blocked_at(ctx.now()) {
            // The lessor first; what it asks for goes out after the held inputs.
            ctx.trace(format!(
                "etcd loop resumes: {} inputs held",
                self.held.len()
            ));
            self.tick(ctx);
            let asked = std::mem::take(&mut self.to_propose);
            while let Some(input) = self.held.pop_front() {
                self.run(ctx, input);
                self.settle(ctx);
                if self.blocked_at(ctx.now()) {
                    break;
                }
            }
            self.to_propose.splice(0..0, asked);
        }
        self.settle(ctx);
    }

    /// Runs one Raft handler and hands its effects on.
    fn step_raft<H: Holder>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        f: impl FnOnce(&mut RaftProcess<EtcdStore>, &mut Context<'_, RaftProcess<EtcdStore>>),
    ) {
        let raft = &mut self.raft;
        let ((), effects) = ctx.nested(|c| f(raft, c));
        let now = ctx.now();
        for effect in effects {
            let mut internal = None;
            if let Effect::Sync { id, .. } = &effect {
                self.syncs.insert(*id, now);
            }
            let sessions = &self.sessions;
            let own = self.session;
            let lifted = effect.lift::<H>(
                |m| H::wrap(ServerOut::Raft(m)),
                |t| H::wrap_timer(ServerTimer::Raft(t)),
                |id, response| {
                    if id.client < NODE_SESSION_BASE - MEMBERS_MAX {
                        return Some(Effect::Reply {
                            id,
                            response: H::wrap_reply(response),
                        });
                    }
                    if id.client == own {
                        internal = Some(response);
                        return None;
                    }
                    let &to = sessions.get(&id.client)?;
                    Some(Effect::Send {
                        to,
                        msg: H::wrap(ServerOut::Response(id.seq, ClientResponse::Kv(response))),
                    })
                },
            );
            if let Some(e) = lifted {
                ctx.emit(e);
            }
            if let Some(response) = internal {
                self.answered(ctx, response);
            }
        }
    }

    /// Raft answered one of this member's own proposals.
    fn answered<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, response: Response<EtcdStore>) {
        let Some(proposal) = self.proposals.remove(&response.seq()) else {
            return;
        };
        let committed = matches!(response, Response::Written { .. });
        match proposal {
            Proposal::Confirm => {
                self.confirming = false;
                if committed && self.raft.is_leader() {
                    self.lessor.confirm_primary(ctx.now());
                }
            }
            Proposal::Revoke(id) => {
                self.revoking.remove(&id);
            }
            Proposal::Checkpoint(_, waiting) => Self::answer_renewals(ctx, waiting, committed),
            Proposal::Compact(_) | Proposal::Forwarded => {}
        }
    }

    /// Answers keepalives that waited for their reset checkpoint: the TTL if it
    /// committed, else "try again" (a new leader resumes from the older one).
    fn answer_renewals<H: Holder>(
        ctx: &mut Ctx<'_, H>,
        waiting: Vec<(NodeId, u64, u64)>,
        committed: bool,
    ) {
        for (to, seq, ttl_ms) in waiting {
            let result = match committed {
                true => Ok(ttl_ms),
                false => Err(KeepAliveError::Unavailable),
            };
            let resp = ClientResponse::KeepAlive(result);
            ctx.send(to, H::wrap(ServerOut::Response(seq, resp)));
        }
    }

    fn client<H: Holder>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        from: NodeId,
        session: ClientId,
        seq: u64,
        req: ClientRequest,
    ) {
        assert!(
            session >= NODE_SESSION_BASE,
            "node sessions start at the base"
        );
        let answer = |ctx: &mut Ctx<'_, H>, resp| {
            ctx.send(from, H::wrap(ServerOut::Response(seq, resp)));
        };
        match req {
            ClientRequest::Kv(op) => {
                self.sessions.insert(session, from);
                let id = RequestId {
                    client: session,
                    seq,
                };
                self.step_raft(ctx, |r, c| r.on_request(c, id, raft::Request { seq, op }));
            }
            ClientRequest::KeepAlive(lease) => {
                let result = if !self.raft.is_leader() {
                    Err(KeepAliveError::NotLeader(self.raft.leader()))
                } else {
                    match self.lessor.renew(lease, ctx.now()) {
                        Ok(ttl_ms) => {
                            self.renewed_in_step.push(lease);
                            // A lease with a checkpoint of less than its TTL: etcd's
                            // `Renew` proposes the reset and answers once it commits,
                            // so that no new leader resumes from the older one.
                            let checkpoints = self.lessor.checkpoint(ctx.now());
                            if checkpoints.iter().any(|&(id, _)| id == lease) {
                                let waiting = vec![(from, seq, ttl_ms)];
                                self.to_propose
                                    .push(Proposal::Checkpoint(checkpoints, waiting));
                                return;
                            }
                            if !checkpoints.is_empty() {
                                self.to_propose
                                    .push(Proposal::Checkpoint(checkpoints, Vec::new()));
                            }
                            Ok(ttl_ms)
                        }
                        Err(LeaseError::NotPrimary) => Err(KeepAliveError::Unavailable),
                        Err(LeaseError::NotFound(_) | LeaseError::Exists(_)) => {
                            Err(KeepAliveError::NotFound)
                        }
                    }
                };
                answer(ctx, ClientResponse::KeepAlive(result));
            }
            ClientRequest::Watch(request) => {
                // One stream per node: a new watch replaces the node's older ones.
                let old: Vec<WatchId> = self
                    .watchers
                    .iter()
                    .filter(|&(_, &(n, _))| n == from)
                    .map(|(&id, _)| id)
                    .collect();
                for id in old {
                    self.watchers.remove(&id);
                    self.watches.cancel(id);
                }
                if self.watchers.len() >= WATCHES_MAX {
                    let (&oldest, _) = self.watchers.iter().next().expect("full");
                    self.watchers.remove(&oldest);
                    self.watches.cancel(oldest);
                }
                let created = self.watches.create(self.raft.state_machine(), request);
                if let Ok(c) = &created {
                    self.watchers.insert(c.watch_id, (from, 1));
                }
                let msg = WatchMsg::Created {
                    request: seq,
                    result: created,
                };
                ctx.send(from, H::wrap(ServerOut::Watch(0, msg)));
                self.poll_watches(ctx);
            }
            ClientRequest::CancelWatch(id) => {
                if self.watchers.get(&id).is_some_and(|&(n, _)| n == from) {
                    self.watchers.remove(&id);
                    self.watches.cancel(id);
                }
            }
        }
    }

    fn forwarded<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, cmd: Arc<EtcdCommand>) {
        if self.raft.is_leader() {
            self.propose(ctx, Proposal::Forwarded, cmd);
        }
    }

    fn propose<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, p: Proposal, cmd: Arc<EtcdCommand>) {
        // Only a leader proposes, and a member leads again only in a higher term,
        // restarted or not: (term, count) keeps the session's numbers increasing.
        let base = self.raft.term() << 32;
        self.next_seq = self.next_seq.max(base) + 1;
        let seq = self.next_seq;
        self.proposals.insert(seq, p);
        let id = RequestId {
            client: self.session,
            seq,
        };
        let op = RequestOp::Command(cmd);
        self.step_raft(ctx, |r, c| r.on_request(c, id, raft::Request { seq, op }));
    }

    /// The lessor's loop, auto-compaction and watch progress.
    fn tick<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>) {
        let now = ctx.now();
        if self.raft.is_leader() && self.lessor.is_primary() {
            if self.lessor.needs_confirmation() && !self.confirming {
                self.confirming = true;
                self.to_propose.push(Proposal::Confirm);
            }
            for id in self.lessor.expired(now) {
                if self.revoking.insert(id) {
                    ctx.trace(format!("lessor: lease {id} expired"));
                    self.expired_in_step.push(id);
                    self.to_propose.push(Proposal::Revoke(id));
                }
            }
            let checkpoints = self.lessor.checkpoint(now);
            if !checkpoints.is_empty() {
                self.to_propose
                    .push(Proposal::Checkpoint(checkpoints, Vec::new()));
            }
        }
        let retention = self.cfg.auto_compaction_retention;
        if retention > 0 && self.raft.is_leader() && now >= self.next_compaction {
            self.next_compaction =
                now + Duration::from_millis(self.cfg.auto_compaction_interval_ms);
            let store = self.raft.state_machine();
            let revision = store.revision().saturating_sub(retention);
            if revision > store.compacted() {
                self.to_propose.push(Proposal::Compact(revision));
            }
        }
        if now >= self.next_progress {
            self.next_progress = now + Duration::from_millis(self.cfg.watch_progress_notify_ms);
            for r in self.watches.progress(self.raft.state_machine()) {
                self.send_watch(ctx, r);
            }
        }
    }

    /// After every input: the lessor and the watches catch up with the store and
    /// the role, this step's own proposals go out, and the tick is armed.
    fn settle<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>) {
        let now = ctx.now();
        if !self.raft.is_leader() && self.lessor.is_primary() {
            ctx.trace("lessor demoted");
            self.lessor.demote();
            self.revoking.clear();
            self.confirming = false;
        }
        if self.raft.applied_index() != self.applied {
            self.applied = self.raft.applied_index();
            self.sync_lessor(now);
            self.poll_watches(ctx);
        }
        if self.raft.is_leader() && !self.lessor.is_primary() {
            let applied = self.raft.applied_index();
            if self.raft.log().term(applied) == Some(self.raft.term()) {
                ctx.trace("lessor promoted");
                self.lessor.promote(now + self.election_timeout);
            }
        }
        for p in std::mem::take(&mut self.to_propose) {
            let cmd = Arc::new(p.command());
            if self.raft.is_leader() {
                self.propose(ctx, p, cmd);
            } else {
                if let Proposal::Revoke(id) = p {
                    self.revoking.remove(&id);
                }
                if p == Proposal::Confirm {
                    self.confirming = false;
                    continue;
                }
                if let Proposal::Checkpoint(_, waiting) = p {
                    // Not leading any more: the keepalives it held try again.
                    Self::answer_renewals(ctx, waiting, false);
                    continue;
                }
                match self.raft.leader() {
                    Some(l) if l != ctx.id() => {
                        ctx.trace(format!("forward {cmd:?} to n{l}"));
                        ctx.send(l, H::wrap(ServerOut::Forward(cmd)))
                    }
                    _ => {}
                }
            }
        }
        // Armed only when there is work: a run without leases, watches or
        // compaction steps exactly as a plain Raft cluster.
        let wanted = (self.lessor.is_primary() && self.lessor.leases().next().is_some())
            || !self.watchers.is_empty()
            || (self.cfg.auto_compaction_retention > 0 && self.raft.is_leader());
        if wanted && !self.tick_armed {
            self.tick_armed = true;
            ctx.set_timer(
                Duration::from_millis(LESSOR_TICK_MS),
                H::wrap_timer(ServerTimer::Tick),
            );
        }
    }

    /// Brings the lessor in line with the store: grants, revocations, checkpoints.
    fn sync_lessor(&mut self, now: Duration) {
        let store = self.raft.state_machine();
        let gone: Vec<LeaseId> = self
            .lessor
            .leases()
            .filter(|&id| store.lease_ttl_ms(id).is_none())
            .collect();
        for id in gone {
            self.lessor.revoked(id);
            self.revoking.remove(&id);
            self.revoked_in_step.push(id);
        }
        for (id, ttl_ms, remaining_ms) in store.leases() {
            if self.lessor.ttl_ms(id).is_none() {
                self.lessor
                    .grant(id, ttl_ms, now)
                    .expect("a lease the lessor lacks");
            }
            if self.lessor.checkpointed_ms(id) != remaining_ms {
                self.lessor
                    .apply_checkpoint(id, remaining_ms.unwrap_or(ttl_ms));
            }
        }
    }

    fn poll_watches<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>) {
        for r in self.watches.poll(self.raft.state_machine()) {
            self.send_watch(ctx, r);
        }
    }

    fn send_watch<H: Holder>(&mut self, ctx: &mut Ctx<'_, H>, r: WatchResponse) {
        let Some((to, seq)) = self.watchers.get_mut(&r.watch_id) else {
            return;
        };
        let (to, n) = (*to, *seq);
        *seq += 1;
        if matches!(r.body, super::watch::WatchEvents::Canceled(_)) {
            self.watchers.remove(&r.watch_id);
        }
        ctx.send(to, H::wrap(ServerOut::Watch(n, WatchMsg::Response(r))));
    }

    /// Resets what checkers read per step; the holder calls it first in every
    /// handler.
    pub fn begin(&mut self) {
        self.expired_in_step.clear();
        self.revoked_in_step.clear();
        self.renewed_in_step.clear();
    }
}

crate::impl_fingerprint!(enum ClientRequest {
    0 => Kv(op),
    1 => KeepAlive(lease),
    2 => Watch(request),
    3 => CancelWatch(id),
});
crate::impl_fingerprint!(enum KeepAliveError {
    0 => NotLeader(leader),
    1 => Unavailable,
    2 => NotFound,
});
crate::impl_fingerprint!(enum ClientResponse {
    0 => Kv(response),
    1 => KeepAlive(result),
});
crate::impl_fingerprint!(enum WatchMsg {
    0 => Created { request, result },
    1 => Response(response),
});

impl Fingerprint for ServerOut {
    /// A Raft message encodes as itself, so that runs without node clients keep the
    /// trace of a plain Raft cluster.
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            ServerOut::Raft(m) => m.fingerprint(out),
            ServerOut::Response(seq, r) => {
                tag(out, 0xE7C0_0001);
                seq.fingerprint(out);
                r.fingerprint(out);
            }
            ServerOut::Watch(seq, m) => {
                tag(out, 0xE7C0_0002);
                seq.fingerprint(out);
                m.fingerprint(out);
            }
            ServerOut::Forward(c) => {
                tag(out, 0xE7C0_0003);
                c.fingerprint(out);
            }
        }
    }
}
