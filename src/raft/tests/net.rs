//! A tiny deterministic network for unit tests: an event queue of timers, messages,
//! client requests and replies, with link cuts, loss, duplication, jitter, crashes
//! (which lose unsynced writes) and every invariant checked after every step.
//!
//! Its disk follows the simulator's semantics: a sync completes after `sync_latency`
//! (in issue order), and only then does `on_synced` run; a crash before that loses the
//! writes. With `sync_latency` zero (the default) a sync completes right after the step
//! that started it, so a test can look at a step's output at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{Checker, ClusterView};
use crate::client::{Client, ClientContext, ClientEffect};
use crate::history::OpType;
use crate::kv::{KvClient, KvCommand, KvStore, KvWorkload};
use crate::process::{ClientId, Context, Effect, NodeId, Process, RequestId, SyncId, TimerId};
use crate::raft::invariants;
use crate::raft::{
    Bugs, Message, RaftConfig, RaftProcess, Record, Request, RequestOp, Response, StateMachine,
    Timer,
};
use crate::storage::Storage;

enum Ev<S: StateMachine, C: Client<RaftProcess<S>>> {
    Timer {
        node: NodeId,
        inc: u64,
        id: TimerId,
        timer: Timer,
    },
    Msg {
        from: NodeId,
        to: NodeId,
        msg: Message<S>,
    },
    Req {
        to: NodeId,
        id: RequestId,
        req: Request<S>,
    },
    Resp {
        from: NodeId,
        id: RequestId,
        resp: Response<S>,
    },
    ClientTimer {
        client: ClientId,
        id: TimerId,
        timer: C::Timer,
    },
    Synced {
        node: NodeId,
        inc: u64,
        id: SyncId,
        writes: usize,
    },
}

/// The omniscient view checkers get (no node is ever paused here).
fn view<S: StateMachine>(
    now: Duration,
    nodes: &[Option<RaftProcess<S>>],
) -> ClusterView<'_, RaftProcess<S>> {
    ClusterView::new(now, nodes)
}

/// A cluster replicating `S`, with simulated clients of type `C` (the KV store and its
/// clients unless a test names others).
pub struct Net<S: StateMachine = KvStore, C: Client<RaftProcess<S>> = KvClient> {
    pub cfg: RaftConfig,
    pub bugs: Bugs,
    pub nodes: Vec<Option<RaftProcess<S>>>,
    pub storage: Vec<Storage<Record<S>>>,
    rngs: Vec<ChaCha8Rng>,
    timer_ids: Vec<u64>,
    inc: Vec<u64>,
    cancelled: BTreeSet<(NodeId, u64, TimerId)>,
    pub now: Duration,
    seq: u64,
    events: BTreeMap<(Duration, u64), Ev<S, C>>,
    /// Directed links that drop everything: (from, to).
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    pub latency: Duration,
    pub jitter_us: u64,
    pub loss: f64,
    pub dup: f64,
    /// Probability that a crash keeps each unsynced write prefix (torn tail).
    pub torn: bool,
    /// Time from a sync's start to its completion (zero: right after the step).
    pub sync_latency: Duration,
    net_rng: ChaCha8Rng,
    checkers: Vec<Box<dyn Checker<RaftProcess<S>>>>,
    /// The first invariant violation, if `panic_on_violation` is off.
    pub violation: Option<String>,
    pub panic_on_violation: bool,
    /// Replies to requests made with [`Net::request`] (client ids >= `clients.len()`).
    pub replies: Vec<(RequestId, Response<S>)>,
    pub sent: Vec<(NodeId, NodeId, Message<S>)>,
    pub record_sent: bool,
    pub clients: Vec<C>,
    client_rngs: Vec<ChaCha8Rng>,
    client_seqs: Vec<u64>,
    client_timers: Vec<u64>,
    client_cancelled: BTreeSet<(ClientId, TimerId)>,
    pub history: Vec<(ClientId, OpType, C::Op)>,
    next_manual_seq: u64,
}

impl Net {
    /// A KV cluster of `n` nodes, every node started.
    pub fn new(n: usize, cfg: RaftConfig, bugs: Bugs, seed: u64) -> Net {
        Net::build(n, cfg, bugs, seed)
    }

    pub fn put(&mut self, to: NodeId, key: &str, value: &str) -> RequestId {
        self.request(
            to,
            RequestOp::Command(
                KvCommand::Put {
                    key: key.into(),
                    value: value.into(),
                }
                .into(),
            ),
        )
    }

    pub fn add_clients(&mut self, w: KvWorkload, seed: u64) {
        for c in 0..w.clients {
            self.clients.push(KvClient::new(w.clone()));
            self.client_rngs
                .push(ChaCha8Rng::seed_from_u64(seed * 7919 + c as u64));
            self.client_seqs.push(0);
            self.client_timers.push(0);
            self.client_step(c, |cl, ctx| cl.on_start(ctx));
        }
    }
}

impl<S: StateMachine, C: Client<RaftProcess<S>>> Net<S, C> {
    /// A cluster of `n` nodes replicating `S`, every node started.
    pub fn build(n: usize, cfg: RaftConfig, bugs: Bugs, seed: u64) -> Net<S, C> {
        let leader_bound = Duration::from_millis(10 * cfg.election_timeout_ms_max);
        let checkers = invariants::all(n, &cfg, leader_bound);
        let mut net = Net {
            cfg,
            bugs,
            nodes: (0..n).map(|_| None).collect(),
            storage: (0..n).map(|_| Storage::default()).collect(),
            rngs: (0..n)
                .map(|i| ChaCha8Rng::seed_from_u64(seed * 1000 + i as u64))
                .collect(),
            timer_ids: vec![0; n],
            inc: vec![0; n],
            cancelled: BTreeSet::new(),
            now: Duration::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            blocked: BTreeSet::new(),
            latency: Duration::from_millis(2),
            jitter_us: 0,
            loss: 0.0,
            dup: 0.0,
            torn: false,
            sync_latency: Duration::ZERO,
            net_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            checkers,
            violation: None,
            panic_on_violation: true,
            replies: Vec::new(),
            sent: Vec::new(),
            record_sent: false,
            clients: Vec::new(),
            client_rngs: Vec::new(),
            client_seqs: Vec::new(),
            client_timers: Vec::new(),
            client_cancelled: BTreeSet::new(),
            history: Vec::new(),
            next_manual_seq: 0,
        };
        for i in 0..n {
            net.start(i);
        }
        net
    }

    /// Stops running the checker named `name` (for tests that forge messages).
    pub fn drop_checker(&mut self, name: &str) {
        let before = self.checkers.len();
        self.checkers.retain(|c| c.name() != name);
        assert_eq!(self.checkers.len() + 1, before, "one checker named {name}");
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: NodeId) -> &RaftProcess<S> {
        self.nodes[i].as_ref().expect("node is up")
    }

    fn push(&mut self, at: Duration, ev: Ev<S, C>) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn check(&mut self, node: NodeId) {
        let view = view(self.now, &self.nodes);
        for c in &mut self.checkers {
            if let Err(e) = c.after_step(&view, node) {
                if self.panic_on_violation {
                    panic!("{} at {:?}: {e}", c.name(), self.now);
                }
                if self.violation.is_none() {
                    self.violation = Some(format!("{}: {e}", c.name()));
                }
            }
        }
    }

    pub fn settled(&mut self) -> Result<(), String> {
        let view = view(self.now, &self.nodes);
        for c in &mut self.checkers {
            c.settled(&view)?;
        }
        Ok(())
    }

    pub fn metrics(&self) -> crate::check::Metrics {
        let mut m = crate::check::Metrics::new();
        for c in &self.checkers {
            c.metrics(&mut m);
        }
        m
    }

    /// Runs one handler of node `i` and carries out its effects.
    pub fn step(
        &mut self,
        i: NodeId,
        f: impl FnOnce(&mut RaftProcess<S>, &mut Context<'_, RaftProcess<S>>),
    ) {
        let mut effects = Vec::new();
        {
            let n = self.nodes.len();
            let p = self.nodes[i].as_mut().expect("node is up");
            let mut ctx = Context::new(
                i,
                n,
                self.now,
                &mut self.rngs[i],
                &mut self.storage[i],
                &mut self.timer_ids[i],
                &mut effects,
            );
            f(p, &mut ctx);
        }
        // Persist before send: a step that wrote must hold its messages until the sync
        // completes (a later `on_synced` step emits them).
        let mut wrote = false;
        let unsafe_sends = self.bugs.ack_before_sync || self.bugs.send_before_persist;
        let mut syncs = Vec::new();
        let mut aborted = false;
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    assert!(
                        !wrote || unsafe_sends,
                        "node {i} sent {msg:?} in the step that wrote what it depends on"
                    );
                    if self.record_sent {
                        self.sent.push((i, to, msg.clone()));
                    }
                    self.transmit(i, to, msg);
                }
                Effect::SetTimer { id, after, timer } => {
                    let inc = self.inc[i];
                    self.push(
                        self.now + after,
                        Ev::Timer {
                            node: i,
                            inc,
                            id,
                            timer,
                        },
                    );
                }
                Effect::CancelTimer { id } => {
                    self.cancelled.insert((i, self.inc[i], id));
                }
                Effect::Write { .. } => wrote = true,
                Effect::Sync { id, writes } => syncs.push((id, writes)),
                Effect::Abort { .. } => aborted = true,
                Effect::Reply { id, response } => {
                    assert!(
                        !wrote || unsafe_sends,
                        "node {i} replied {response:?} in the step that wrote what it depends on"
                    );
                    if id.client < self.clients.len() {
                        let at = self.now + self.latency;
                        self.push(
                            at,
                            Ev::Resp {
                                from: i,
                                id,
                                resp: response,
                            },
                        );
                    } else {
                        self.replies.push((id, response));
                    }
                }
                Effect::Trace { .. } | Effect::Sometimes { .. } | Effect::Span { .. } => {}
            }
        }
        self.check(i);
        if aborted {
            self.crash(i);
            self.start(i);
            return;
        }
        let inc = self.inc[i];
        for (id, writes) in syncs {
            if self.sync_latency.is_zero() {
                self.complete_sync(i, id, writes);
            } else {
                let at = self.now + self.sync_latency;
                self.push(
                    at,
                    Ev::Synced {
                        node: i,
                        inc,
                        id,
                        writes,
                    },
                );
            }
        }
    }

    /// Node `i`'s disk completed sync `id`: its writes are durable; the node hears so.
    fn complete_sync(&mut self, i: NodeId, id: SyncId, writes: usize) {
        self.storage[i].complete_sync(writes);
        let synced: SyncedStep<RaftProcess<S>> =
            Box::new(move |p, ctx| p.on_synced(ctx, id, Ok(())));
        self.step(i, synced);
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: Message<S>) {
        if self.blocked.contains(&(from, to)) {
            return;
        }
        if self.loss > 0.0 && self.net_rng.gen_bool(self.loss) {
            return;
        }
        let copies = if self.dup > 0.0 && self.net_rng.gen_bool(self.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.jitter_us > 0 {
                Duration::from_micros(self.net_rng.gen_range(0..self.jitter_us))
            } else {
                Duration::ZERO
            };
            let at = self.now + self.latency + jitter;
            self.push(
                at,
                Ev::Msg {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    pub fn start(&mut self, i: NodeId) {
        assert!(self.nodes[i].is_none());
        self.nodes[i] = Some(RaftProcess::new(self.cfg.clone(), self.bugs));
        self.timer_ids[i] = 0;
        self.step(i, |p, ctx| p.on_start(ctx));
    }

    /// Power loss: volatile state gone, unsynced writes lost (or torn).
    pub fn crash(&mut self, i: NodeId) {
        assert!(self.nodes[i].is_some());
        self.nodes[i] = None;
        let kept = if self.torn {
            let pending = self.storage[i].unsynced_writes();
            self.net_rng.gen_range(0..=pending)
        } else {
            0
        };
        self.storage[i].crash(kept);
        self.inc[i] += 1;
        self.check(i);
    }

    pub fn isolate(&mut self, i: NodeId) {
        for j in 0..self.n() {
            if j != i {
                self.blocked.insert((i, j));
                self.blocked.insert((j, i));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Splits the cluster into `group` and the rest.
    pub fn partition(&mut self, group: &[NodeId]) {
        for a in 0..self.n() {
            for b in 0..self.n() {
                if group.contains(&a) != group.contains(&b) {
                    self.blocked.insert((a, b));
                }
            }
        }
    }

    /// Sends a request from a pseudo-client (id 1000) and returns its id; the reply
    /// lands in `replies`.
    pub fn request(&mut self, to: NodeId, op: RequestOp<S>) -> RequestId {
        self.next_manual_seq += 1;
        let id = RequestId {
            client: 1000,
            seq: self.next_manual_seq,
        };
        let req = Request {
            seq: self.next_manual_seq,
            op,
        };
        self.step(to, |p, ctx| p.on_request(ctx, id, req));
        id
    }

    /// Sends a request with session sequence number `seq` (a retry when a request
    /// used it before), under a request id of its own; returns that id.
    pub fn request_with_seq(&mut self, to: NodeId, seq: u64, op: RequestOp<S>) -> RequestId {
        self.next_manual_seq += 1;
        let id = RequestId {
            client: 1000,
            seq: self.next_manual_seq,
        };
        let req = Request { seq, op };
        self.step(to, |p, ctx| p.on_request(ctx, id, req));
        id
    }

    pub fn reply_to(&self, id: RequestId) -> Option<&Response<S>> {
        self.replies
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, resp)| resp)
    }

    pub fn quiesce_clients(&mut self) {
        for c in 0..self.clients.len() {
            self.client_step(c, |cl, ctx| cl.on_quiesce(ctx));
        }
    }

    pub fn clients_pending(&self) -> usize {
        self.clients.iter().map(|c| c.pending()).sum()
    }

    fn client_step(
        &mut self,
        c: ClientId,
        f: impl FnOnce(&mut C, &mut ClientContext<'_, RaftProcess<S>, C>),
    ) {
        let mut effects = Vec::new();
        {
            let mut ctx = ClientContext::new(
                c,
                self.nodes.len(),
                self.now,
                &mut self.client_rngs[c],
                &mut self.client_seqs[c],
                &mut self.client_timers[c],
                &mut effects,
            );
            f(&mut self.clients[c], &mut ctx);
        }
        for e in effects {
            match e {
                ClientEffect::Request { to, id, req } => {
                    let at = self.now + self.latency;
                    self.push(at, Ev::Req { to, id, req });
                }
                ClientEffect::SetTimer { id, after, timer } => {
                    self.push(
                        self.now + after,
                        Ev::ClientTimer {
                            client: c,
                            id,
                            timer,
                        },
                    );
                }
                ClientEffect::CancelTimer { id } => {
                    self.client_cancelled.insert((c, id));
                }
                ClientEffect::History { kind, op } => self.history.push((c, kind, op)),
                ClientEffect::Trace { .. } => {}
            }
        }
    }

    /// Runs every event up to `until`.
    pub fn run_until(&mut self, until: Duration) {
        // Bounded: a runaway protocol would otherwise hang the test.
        for _ in 0..5_000_000 {
            let Some((&(at, seq), _)) = self.events.first_key_value() else {
                break;
            };
            if at > until {
                break;
            }
            let ev = self.events.remove(&(at, seq)).expect("present");
            self.now = at;
            self.dispatch(ev);
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn dispatch(&mut self, ev: Ev<S, C>) {
        match ev {
            Ev::Timer {
                node,
                inc,
                id,
                timer,
            } => {
                if self.inc[node] != inc
                    || self.nodes[node].is_none()
                    || self.cancelled.remove(&(node, inc, id))
                {
                    return;
                }
                self.step(node, |p, ctx| p.on_timer(ctx, timer));
            }
            Ev::Msg { from, to, msg } => {
                if self.nodes[to].is_none() || self.blocked.contains(&(from, to)) {
                    return;
                }
                self.step(to, |p, ctx| p.on_message(ctx, from, msg));
            }
            Ev::Req { to, id, req } => {
                if self.nodes[to].is_none() {
                    return;
                }
                self.step(to, |p, ctx| p.on_request(ctx, id, req));
            }
            Ev::Synced {
                node,
                inc,
                id,
                writes,
            } => {
                if self.inc[node] == inc && self.nodes[node].is_some() {
                    self.complete_sync(node, id, writes);
                }
            }
            Ev::Resp { from, id, resp } => {
                self.client_step(id.client, |cl, ctx| cl.on_response(ctx, from, id, resp));
            }
            Ev::ClientTimer { client, id, timer } => {
                if self.client_cancelled.remove(&(client, id)) {
                    return;
                }
                self.client_step(client, |cl, ctx| cl.on_timer(ctx, timer));
            }
        }
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        (0..self.n())
            .filter(|&i| self.nodes[i].as_ref().is_some_and(|p| p.is_leader()))
            .collect()
    }

    /// The leader of the highest term among nodes that are up.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&i| self.node(i).term())
    }

    /// Runs until some node leads (bounded).
    pub fn elect(&mut self) -> NodeId {
        for _ in 0..100 {
            if let Some(l) = self.leader() {
                if self.node(l).commit_index() >= self.node(l).log().last_index() {
                    return l;
                }
            }
            self.run_for(Duration::from_millis(50));
        }
        panic!("no leader within 5 s");
    }
}

/// The handler a completed sync runs, boxed so that stepping it is not generic
/// recursion.
type SyncedStep<P> = Box<dyn FnOnce(&mut P, &mut Context<'_, P>)>;
