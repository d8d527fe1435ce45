//! The simulated world: every node's process, storage, clock, mailbox and random
//! stream, the clients, the network and the trace. Node tasks on madsim lock it to
//! step; nothing awaits while holding it.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::Notify;

use super::clock::Clock;
use super::disk::{Completion, Disk};
use super::mailbox::{Due, Mailbox};
use super::network::{DropReason, Fate, Network};
use super::trace::{fmt_time, Actor, Trace};
use crate::check::{Availability, Checker, ClusterView, Metrics, Stall};
use crate::client::{Client, ClientContext, ClientEffect};
use crate::history::{HistoryEvent, OpType};
use crate::process::{ClientId, Context, Effect, NodeId, Process, RequestId, SyncError};
use crate::rng::{stream, Purpose};
use crate::scenario::{DiskSpec, Latency, NetworkSpec};
use crate::storage::Storage;
use crate::system::{Setup, System};

pub type Op<S> = <<S as System>::Client as Client<<S as System>::Process>>::Op;
type P<S> = <S as System>::Process;
type ClientTimer<S> = <<S as System>::Client as Client<P<S>>>::Timer;
type NodeDue<S> = Due<NodeInput<P<S>>, <P<S> as Process>::Timer>;
type ClientDue<S> = Due<ClientInput<P<S>>, ClientTimer<S>>;

/// How a run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The check that failed: an invariant's name, `liveness`, `linearizability`...
    pub check: String,
    pub message: String,
    pub time_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    Invariant,
    Liveness,
    History,
    Panic,
    /// The same seed ran twice and the runs differed.
    Nondeterminism,
    /// A scenario's `[expect]` bound on a metric did not hold.
    Expectation,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Invariant => "invariant",
            FailureKind::Liveness => "liveness",
            FailureKind::History => "history",
            FailureKind::Panic => "panic",
            FailureKind::Nondeterminism => "nondeterminism",
            FailureKind::Expectation => "expectation",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
    Paused,
}

pub enum NodeInput<P: Process> {
    Message {
        from: NodeId,
        msg: P::Message,
        /// The message's fingerprint, taken once at the send: the delivery's trace
        /// event hashes it instead of encoding the message again.
        digest: u64,
    },
    Request {
        id: RequestId,
        req: P::Request,
    },
    /// The disk may have completed a sync: see [`Disk::complete`].
    DiskWake,
}

pub struct NodeSlot<P: Process> {
    pub storage: Storage<P::Record>,
    pub clock: Clock,
    rng: ChaCha8Rng,
    incarnation: u64,
    next_timer: u64,
    pub mailbox: Mailbox<NodeInput<P>, P::Timer>,
    pub status: Status,
    pub madsim: Option<madsim::task::NodeId>,
    pub disk: Disk,
    /// Down faults (crash, disk wipe) active on the node: it stays down until the
    /// last one ends, so overlapping faults compose.
    downs: u32,
    /// Active clock freezes (they may overlap).
    freezes: u32,
    /// When a process that aborted itself is restarted (true time), if it is down for
    /// that reason.
    restart_at_ns: Option<u64>,
    /// A pause fault found the node down, so its resume has nothing to do.
    pause_skipped: bool,
}

pub struct ClientInput<P: Process> {
    from: NodeId,
    id: RequestId,
    response: P::Response,
}

pub struct ClientSlot<S: System> {
    client: S::Client,
    rng: ChaCha8Rng,
    next_seq: u64,
    next_timer: u64,
    pub mailbox: Mailbox<ClientInput<P<S>>, ClientTimer<S>>,
}

/// Counts for the run's metrics.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub sent: u64,
    pub bytes_sent: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub dropped_partition: u64,
    pub dropped_loss: u64,
    pub dropped_node_down: u64,
    pub timers_fired: u64,
    pub writes: u64,
    pub syncs: u64,
    pub syncs_completed: u64,
    pub sync_errors: u64,
    pub writes_lost: u64,
    pub aborts: u64,
    pub disk_wipes: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub pauses: u64,
    pub ops: [u64; 4],
}

/// Most due items one actor handles before yielding to the executor.
const STEPS_PER_WAKE_MAX: usize = 4_096;

pub struct World<S: System> {
    pub setup: Arc<Setup<S>>,
    seed: u64,
    /// madsim's clock, read directly: `Instant::now()` would go through the
    /// intercepted `clock_gettime`, which costs a tenth of a run.
    time: madsim::time::TimeHandle,
    start: madsim::time::Instant,
    processes: Vec<Option<P<S>>>,
    paused: Vec<bool>,
    stalls: Vec<Stall>,
    /// Links that still work once the liveness phase starts (see [`ClusterView::links`]).
    links: Vec<bool>,
    availability: Availability,
    pub nodes: Vec<NodeSlot<P<S>>>,
    pub clients: Vec<ClientSlot<S>>,
    pub net: Network,
    crash_rng: ChaCha8Rng,
    disk_rng: ChaCha8Rng,
    sync_latency: Latency,
    abort_restart_ns: u64,
    pub trace: Trace,
    pub history: Vec<HistoryEvent<Op<S>>>,
    checkers: Vec<Box<dyn Checker<P<S>>>>,
    pub failure: Option<Failure>,
    /// Wakes the driver when the run fails.
    pub stop: Arc<Notify>,
    pub counters: Counters,
    effects: Vec<Effect<P<S>>>,
    client_effects: Vec<ClientEffect<P<S>, S::Client>>,
}

impl<S: System> World<S> {
    pub fn new(
        setup: Arc<Setup<S>>,
        network: &NetworkSpec,
        disk: &DiskSpec,
        seed: u64,
        record: bool,
    ) -> Self {
        let n = setup.nodes;
        let nodes = (0..n)
            .map(|_| NodeSlot {
                storage: Storage::default(),
                clock: Clock::default(),
                rng: stream(seed, Purpose::Node, 0),
                incarnation: 0,
                next_timer: 0,
                mailbox: Mailbox::default(),
                status: Status::Down,
                madsim: None,
                disk: Disk::default(),
                downs: 0,
                freezes: 0,
                restart_at_ns: None,
                pause_skipped: false,
            })
            .collect();
        let clients = (0..S::clients(&setup))
            .map(|c| ClientSlot {
                client: S::client(&setup, c),
                rng: stream(seed, Purpose::Client, c as u64),
                next_seq: 0,
                next_timer: 0,
                mailbox: Mailbox::default(),
            })
            .collect();
        World {
            checkers: S::checkers(&setup),
            seed,
            time: madsim::time::TimeHandle::current(),
            start: madsim::time::Instant::now(),
            processes: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            stalls: vec![Stall::default(); n],
            links: Vec::new(),
            availability: Availability::Progress,
            nodes,
            clients,
            net: Network::new(n, network, stream(seed, Purpose::Network, 0)),
            crash_rng: stream(seed, Purpose::Crash, 0),
            disk_rng: stream(seed, Purpose::Disk, 0),
            sync_latency: disk.sync_latency.clone(),
            abort_restart_ns: disk.abort_restart_ms * 1_000_000,
            trace: Trace::new(record),
            history: Vec::new(),
            failure: None,
            stop: Arc::new(Notify::new()),
            counters: Counters::default(),
            effects: Vec::new(),
            client_effects: Vec::new(),
            setup,
        }
    }

    pub fn now_ns(&self) -> u64 {
        (self.time.now_instant() - self.start).as_nanos() as u64
    }

    pub fn start_instant(&self) -> madsim::time::Instant {
        self.start
    }

    pub fn fail(&mut self, kind: super::FailureKind, check: &str, message: String) {
        if self.failure.is_some() {
            return;
        }
        let time_ns = self.now_ns();
        self.trace
            .event(time_ns, Actor::Sim, "failure", &(check, &message), || {
                format!("{check}: {message}")
            });
        self.failure = Some(Failure {
            kind,
            check: check.to_string(),
            message,
            time_ns,
        });
        self.stop.notify_one();
    }

    /// (Re)starts node `id`: a fresh process recovers from what its storage kept.
    pub fn start_node(&mut self, id: NodeId) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        assert_eq!(slot.status, Status::Down, "node {id} started while running");
        slot.incarnation += 1;
        slot.rng = stream(
            self.seed,
            Purpose::Node,
            ((id as u64) << 16) | slot.incarnation,
        );
        slot.next_timer = 0;
        slot.mailbox.clear_timers();
        slot.status = Status::Up;
        let lost = slot.mailbox.drop_inputs_before(now).len() as u64;
        self.counters.dropped_node_down += lost;
        let restart = slot.incarnation > 1;
        self.counters.restarts += u64::from(restart);
        let event = if restart { "restart" } else { "start" };
        let incarnation = slot.incarnation;
        self.trace
            .event(now, Actor::Node(id), event, &(incarnation, lost), || {
                format!(
                    "incarnation {incarnation}, {lost} messages that arrived while down dropped"
                )
            });
        self.processes[id] = Some(S::process(&self.setup, id));
        self.step_node(id, None, now);
    }

    /// Handles everything due at node `id` (bounded); returns when it is next due.
    pub fn run_node(&mut self, id: NodeId) -> Option<u64> {
        if let Some(at) = self.nodes[id].restart_at_ns {
            if self.now_ns() < at {
                self.nodes[id].mailbox.sleep_until(Some(at));
                return Some(at);
            }
            self.nodes[id].restart_at_ns = None;
            self.start_node(id);
        }
        let next = self.drain(
            id,
            |w, id| &mut w.nodes[id].mailbox,
            |w, id| w.nodes[id].status == Status::Up,
            |w, id, due, now| w.step_node(id, Some(due), now),
        );
        // A process that aborted itself in this drain waits for its restart.
        match self.nodes[id].restart_at_ns {
            Some(at) if self.failure.is_none() => {
                self.nodes[id].mailbox.sleep_until(Some(at));
                Some(at)
            }
            _ => next,
        }
    }

    /// Handles what is due at actor `id` (at most `STEPS_PER_WAKE_MAX` items, so the
    /// others get their turn), and tells its mailbox when its loop will next wake:
    /// the next due time, now (more is due), or `None` (only a notification wakes it).
    fn drain<I, T>(
        &mut self,
        id: usize,
        mailbox: fn(&mut Self, usize) -> &mut Mailbox<I, T>,
        runnable: fn(&Self, usize) -> bool,
        step: fn(&mut Self, usize, Due<I, T>, u64),
    ) -> Option<u64> {
        // Simulated time stands still while the world is locked: read it once.
        let now = self.now_ns();
        for _ in 0..STEPS_PER_WAKE_MAX {
            if self.failure.is_some() || !runnable(self, id) {
                mailbox(self, id).sleep_until(None);
                return None;
            }
            let queue = mailbox(self, id);
            match queue.pop_due(now) {
                Some(due) => step(self, id, due, now),
                None => {
                    let next = queue.next_due_ns();
                    queue.sleep_until(next);
                    return next;
                }
            }
        }
        mailbox(self, id).sleep_until(Some(now));
        Some(now)
    }

    /// One handler call: `None` is `on_start`.
    fn step_node(&mut self, id: NodeId, due: Option<NodeDue<S>>, now: u64) {
        let n = self.setup.nodes;
        if let Some(Due::Input(NodeInput::Message { from, msg, digest })) = &due {
            if !self.net.connected(*from, id) {
                self.counters.dropped_partition += 1;
                self.trace.event(
                    now,
                    Actor::Node(id),
                    "drop",
                    &(from, digest, "partition"),
                    || format!("from n{from} (cut in flight) {msg:?}"),
                );
                return;
            }
        }
        let slot = &mut self.nodes[id];
        let actor = Actor::Node(id);
        let synced = match due {
            Some(Due::Input(NodeInput::DiskWake)) => {
                let Some(completion) = slot.disk.complete(now) else {
                    return; // nothing due: a stall or a crash intervened
                };
                let (sync, result) = match completion {
                    Completion::Synced(p) => {
                        slot.storage.complete_sync(p.writes);
                        self.counters.syncs_completed += 1;
                        (p, Ok(()))
                    }
                    Completion::Failed(p) => {
                        slot.storage.fail_sync(p.writes);
                        self.counters.sync_errors += 1;
                        self.counters.writes_lost += p.writes as u64;
                        (p, Err(SyncError::Io))
                    }
                };
                let event = if result.is_ok() {
                    "synced"
                } else {
                    "sync-error"
                };
                self.trace
                    .event(now, actor, event, &(sync.id.0, sync.writes), || {
                        format!("sync {} ({} writes)", sync.id.0, sync.writes)
                    });
                // Syncs that fell due behind this one (during a stall) complete next.
                if let Some(next) = slot.disk.next_due_ns().filter(|&t| t <= now) {
                    slot.mailbox.push(next.max(now), NodeInput::DiskWake);
                }
                Some((sync.id, result))
            }
            _ => None,
        };
        let process = self.processes[id]
            .as_mut()
            .expect("a running node has a process");
        let mut effects = std::mem::take(&mut self.effects);
        let mut ctx = Context::new(
            id,
            n,
            slot.clock.monotonic(now),
            &mut slot.rng,
            &mut slot.storage,
            &mut slot.next_timer,
            &mut effects,
        )
        .with_wall_clock(slot.clock.wall(now));
        match due {
            None => process.on_start(&mut ctx),
            Some(Due::Input(NodeInput::DiskWake)) => {
                let (sync, result) = synced.expect("a completion");
                process.on_synced(&mut ctx, sync, result);
            }
            Some(Due::Input(NodeInput::Message { from, msg, digest })) => {
                self.counters.delivered += 1;
                self.trace
                    .event(now, actor, "deliver", &(from, digest), || {
                        format!("from n{from} {msg:?}")
                    });
                process.on_message(&mut ctx, from, msg);
            }
            Some(Due::Input(NodeInput::Request { id: request, req })) => {
                self.trace
                    .event(now, actor, "request", &(request, &req), || {
                        format!("{request:?} {req:?}")
                    });
                process.on_request(&mut ctx, request, req);
            }
            Some(Due::Timer(timer)) => {
                self.counters.timers_fired += 1;
                self.trace
                    .event(now, actor, "timer", &(), || format!("{timer:?}"));
                process.on_timer(&mut ctx, timer);
            }
        }
        self.carry_out(id, now, &mut effects);
        self.effects = effects;
        self.check(id, now);
    }

    fn carry_out(&mut self, id: NodeId, now: u64, effects: &mut Vec<Effect<P<S>>>) {
        let actor = Actor::Node(id);
        let mut abort = None;
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, msg } => {
                    self.counters.sent += 1;
                    self.counters.bytes_sent += <P<S>>::message_bytes(&msg) as u64;
                    let digest = crate::fingerprint::fnv(&msg);
                    self.trace.event(now, actor, "send", &(to, digest), || {
                        format!("to n{to} {msg:?}")
                    });
                    match self.net.route(id, to) {
                        Fate::Dropped(reason) => {
                            match reason {
                                DropReason::Loss => self.counters.dropped_loss += 1,
                                _ => self.counters.dropped_partition += 1,
                            }
                            self.trace.event(now, actor, "drop", &(to, reason), || {
                                format!("to n{to}: {}", reason.name())
                            });
                        }
                        Fate::Delivered {
                            latency_ns,
                            duplicate_ns,
                        } => {
                            if let Some(dup_ns) = duplicate_ns {
                                self.counters.duplicated += 1;
                                self.trace
                                    .event(now, actor, "duplicate", &(to, dup_ns), || {
                                        format!("to n{to}")
                                    });
                                let copy = NodeInput::Message {
                                    from: id,
                                    msg: msg.clone(),
                                    digest,
                                };
                                self.nodes[to].mailbox.push(now + dup_ns, copy);
                            }
                            self.nodes[to].mailbox.push(
                                now + latency_ns,
                                NodeInput::Message {
                                    from: id,
                                    msg,
                                    digest,
                                },
                            );
                        }
                    }
                }
                Effect::SetTimer {
                    id: timer_id,
                    after,
                    timer,
                } => {
                    let slot = &mut self.nodes[id];
                    let at = slot.clock.timer_due_ns(now, after);
                    slot.mailbox.set_timer(timer_id, at, timer);
                }
                Effect::CancelTimer { id: timer_id } => {
                    self.nodes[id].mailbox.cancel_timer(timer_id)
                }
                Effect::Write { key, written } => {
                    self.counters.writes += 1;
                    self.trace
                        .event(now, actor, "write", &(&key, written), || key.clone());
                }
                Effect::Sync { id: sync, writes } => {
                    self.counters.syncs += 1;
                    let latency_ns = self.sync_latency.sample_ns(&mut self.disk_rng);
                    let slot = &mut self.nodes[id];
                    let due_ns = slot.disk.start(sync, writes, now, latency_ns);
                    slot.mailbox.push(due_ns, NodeInput::DiskWake);
                    self.trace
                        .event(now, actor, "sync", &(sync.0, writes, due_ns), || {
                            format!(
                                "sync {} of {writes} writes, due at {}",
                                sync.0,
                                fmt_time(due_ns)
                            )
                        });
                }
                Effect::Abort { reason } => {
                    self.trace
                        .event(now, actor, "abort", &reason, || reason.clone());
                    abort = Some(reason);
                }
                Effect::Reply {
                    id: request,
                    response,
                } => {
                    self.trace
                        .event(now, actor, "reply", &(request, &response), || {
                            format!("{request:?} {response:?}")
                        });
                    let at = now + self.net.client_latency_ns();
                    let input = ClientInput {
                        from: id,
                        id: request,
                        response,
                    };
                    self.clients[request.client].mailbox.push(at, input);
                }
                Effect::Trace { line } => {
                    self.trace.event(now, actor, "note", &line, || line.clone());
                }
            }
        }
        if abort.is_some() {
            self.counters.aborts += 1;
            self.take_down(id, false);
            self.nodes[id].restart_at_ns = Some(now + self.abort_restart_ns);
        }
    }

    pub fn start_client(&mut self, c: ClientId) {
        let now = self.now_ns();
        self.step_client(c, None, now);
    }

    pub fn run_client(&mut self, c: ClientId) -> Option<u64> {
        self.drain(
            c,
            |w, c| &mut w.clients[c].mailbox,
            |_, _| true,
            |w, c, due, now| w.step_client(c, Some(ClientStep::Due(due)), now),
        )
    }

    /// Tells every client the fault phase is over.
    pub fn quiesce_clients(&mut self) {
        for c in 0..self.clients.len() {
            let now = self.now_ns();
            self.step_client(c, Some(ClientStep::Quiesce), now);
        }
    }

    fn step_client(&mut self, c: ClientId, step: Option<ClientStep<S>>, now: u64) {
        let slot = &mut self.clients[c];
        let mut effects = std::mem::take(&mut self.client_effects);
        let mut ctx = ClientContext::new(
            c,
            self.setup.nodes,
            Duration::from_nanos(now),
            &mut slot.rng,
            &mut slot.next_seq,
            &mut slot.next_timer,
            &mut effects,
        );
        match step {
            None => slot.client.on_start(&mut ctx),
            Some(ClientStep::Quiesce) => slot.client.on_quiesce(&mut ctx),
            Some(ClientStep::Due(Due::Input(ClientInput { from, id, response }))) => {
                self.trace.event(
                    now,
                    Actor::Client(c),
                    "response",
                    &(from, id, &response),
                    || format!("from n{from} {id:?} {response:?}"),
                );
                slot.client.on_response(&mut ctx, from, id, response);
            }
            Some(ClientStep::Due(Due::Timer(timer))) => {
                self.trace
                    .event(now, Actor::Client(c), "timer", &(), || format!("{timer:?}"));
                slot.client.on_timer(&mut ctx, timer);
            }
        }
        let actor = Actor::Client(c);
        for effect in effects.drain(..) {
            match effect {
                ClientEffect::Request { to, id, req } => {
                    self.trace
                        .event(now, actor, "request", &(to, id, &req), || {
                            format!("to n{to} {id:?} {req:?}")
                        });
                    let at = now + self.net.client_latency_ns();
                    self.nodes[to]
                        .mailbox
                        .push(at, NodeInput::Request { id, req });
                }
                ClientEffect::SetTimer { id, after, timer } => {
                    self.clients[c]
                        .mailbox
                        .set_timer(id, now + after.as_nanos() as u64, timer)
                }
                ClientEffect::CancelTimer { id } => self.clients[c].mailbox.cancel_timer(id),
                ClientEffect::History { kind, op } => {
                    self.counters.ops[kind as usize] += 1;
                    let index = self.history.len();
                    self.trace.event(now, actor, "op", &(kind, &op), || {
                        format!("{kind:?} {op:?}")
                    });
                    self.history.push(HistoryEvent {
                        index,
                        process: c,
                        kind,
                        op,
                        time_ns: now,
                    });
                }
                ClientEffect::Trace { line } => {
                    self.trace.event(now, actor, "note", &line, || line.clone())
                }
            }
        }
        self.client_effects = effects;
    }

    /// Runs every checker's safety check after node `id` changed.
    fn check(&mut self, id: NodeId, now: u64) {
        if self.failure.is_some() {
            return;
        }
        let view = ClusterView {
            now: Duration::from_nanos(now),
            nodes: &self.processes,
            paused: &self.paused,
            stalls: &self.stalls,
            links: &self.links,
            availability: self.availability,
        };
        let mut failed = None;
        for checker in &mut self.checkers {
            if let Err(message) = checker.after_step(&view, id) {
                failed = Some((checker.name(), message));
                break;
            }
        }
        if let Some((name, message)) = failed {
            self.fail(super::FailureKind::Invariant, name, message);
        }
    }

    /// A crash fault (with `wipe`, a disk wipe) starts. Down faults compose: a node
    /// already down stays down, now until this fault ends too. Returns whether the
    /// node went down now (so its madsim task must be killed).
    pub fn crash(&mut self, id: NodeId, torn: bool, wipe: bool) -> bool {
        let slot = &mut self.nodes[id];
        slot.downs += 1;
        // The fault, not a supervisor, now decides when the node comes back.
        slot.restart_at_ns = None;
        let was_up = slot.status != Status::Down;
        if was_up {
            self.take_down(id, torn);
        }
        if wipe {
            let now = self.now_ns();
            let slot = &mut self.nodes[id];
            let lost = slot.storage.unsynced_writes() as u64;
            slot.storage = Storage::default();
            self.counters.disk_wipes += 1;
            self.trace.event(now, Actor::Node(id), "wipe", &lost, || {
                "the disk comes back empty".into()
            });
        }
        was_up
    }

    /// A crash or disk wipe fault ends. Returns whether the node starts now (the last
    /// down fault on it ended).
    pub fn restart(&mut self, id: NodeId) -> bool {
        let slot = &mut self.nodes[id];
        assert!(slot.downs > 0, "node {id} restarted without a crash");
        slot.downs -= 1;
        if slot.downs > 0 {
            return false;
        }
        self.start_node(id);
        true
    }

    /// The process and its timers are gone; storage keeps what was synced (with
    /// `torn`, also a random prefix of the unsynced tail), and syncs in flight are lost.
    fn take_down(&mut self, id: NodeId, torn: bool) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        assert_ne!(slot.status, Status::Down, "node {id} crashed twice");
        let unsynced = slot.storage.unsynced_writes();
        let kept = if torn {
            crate::rng::index(&mut self.crash_rng, 0..unsynced + 1)
        } else {
            0
        };
        let lost = slot.storage.crash(kept) as u64;
        slot.disk.crash();
        slot.mailbox.clear_timers();
        slot.status = Status::Down;
        self.processes[id] = None;
        self.counters.crashes += 1;
        self.counters.writes_lost += lost;
        self.trace
            .event(now, Actor::Node(id), "crash", &(kept, lost), || {
                format!("{lost} unsynced writes lost, {kept} kept (torn: {torn})")
            });
        self.check(id, now);
    }

    /// A clock fault on node `id`: a wall-clock step, a drift change, or a freeze
    /// starting or ending.
    pub fn clock_fault(&mut self, id: NodeId, fault: ClockFault) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        match fault {
            ClockFault::Step { offset_ns } => slot.clock.step_wall(offset_ns),
            ClockFault::Drift { drift_ppm } => {
                let factor = slot.clock.set_drift(now, drift_ppm);
                slot.mailbox.rescale_timers(now, factor);
            }
            ClockFault::Freeze(true) => {
                slot.freezes += 1;
                if slot.freezes == 1 {
                    self.stalls[id].begin(now);
                    slot.clock.set_frozen(now, true);
                    slot.mailbox.timers_held = true;
                }
            }
            ClockFault::Freeze(false) => {
                assert!(slot.freezes > 0, "a freeze ends only once");
                slot.freezes -= 1;
                if slot.freezes == 0 {
                    self.stalls[id].end(now);
                    slot.clock.set_frozen(now, false);
                    slot.mailbox.release_timers();
                }
            }
        }
    }

    /// A disk fault on node `id` starts (`on`) or ends.
    pub fn disk_fault(&mut self, id: NodeId, index: usize, fault: DiskFault, on: bool) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        match fault {
            DiskFault::Stall => {
                slot.disk.set_stalled(on);
                if let Some(due) = slot.disk.next_due_ns() {
                    slot.mailbox.push(due.max(now), NodeInput::DiskWake);
                }
            }
            DiskFault::Slow { factor } => slot.disk.set_slow(index, factor, on),
            DiskFault::FsyncError => slot.disk.fail_next(),
        }
    }

    /// A pause fault starts or ends. A node that is down then (restarting after it
    /// aborted itself) is not paused: there is no process to freeze. Returns whether
    /// the node's madsim task must be paused or resumed.
    pub fn set_paused(&mut self, id: NodeId, paused: bool) -> bool {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        if paused && slot.status == Status::Down {
            slot.pause_skipped = true;
            return false;
        }
        if !paused && std::mem::take(&mut slot.pause_skipped) {
            return false;
        }
        let (from, to, event) = match paused {
            true => (Status::Up, Status::Paused, "pause"),
            false => (Status::Paused, Status::Up, "resume"),
        };
        assert_eq!(slot.status, from, "node {id} cannot {event} now");
        slot.status = to;
        self.paused[id] = paused;
        match paused {
            true => self.stalls[id].begin(now),
            false => self.stalls[id].end(now),
        }
        self.counters.pauses += u64::from(paused);
        slot.mailbox.sleep_until(Some(0));
        slot.mailbox.notify.notify_one();
        self.trace
            .event(now, Actor::Node(id), event, &(), String::new);
        true
    }

    /// The liveness phase starts, with only permanent faults left: records which links
    /// still work and what the phase expects (`None`: derive it). The derived
    /// expectation is progress when a majority of the nodes is up (or restarting), not
    /// paused, and connected both ways to one another; unavailability otherwise.
    pub fn begin_liveness(&mut self, expect: Option<Availability>) -> Availability {
        let n = self.nodes.len();
        let cut = (0..n).any(|a| (0..n).any(|b| a != b && !self.net.connected(a, b)));
        if cut {
            self.links = (0..n * n)
                .map(|i| i / n == i % n || self.net.connected(i / n, i % n))
                .collect();
        }
        let alive: Vec<bool> = (0..n)
            .map(|i| {
                let slot = &self.nodes[i];
                match slot.status {
                    Status::Up => true,
                    Status::Down => slot.restart_at_ns.is_some(),
                    Status::Paused => false,
                }
            })
            .collect();
        let linked = |a: usize, b: usize| self.links[a * n + b] && self.links[b * n + a];
        // The largest group of live nodes that all reach one another, grown greedily
        // from each node (partitions make such groups disjoint; a bridge node may
        // belong to two, and either counts).
        let largest = match cut {
            false => alive.iter().filter(|&&a| a).count(),
            true => (0..n)
                .filter(|&a| alive[a])
                .map(|a| {
                    let mut group = vec![a];
                    for b in (0..n).filter(|&b| b != a && alive[b]) {
                        if group.iter().all(|&g| linked(g, b)) {
                            group.push(b);
                        }
                    }
                    group.len()
                })
                .max()
                .unwrap_or(0),
        };
        let derived = match largest > n / 2 {
            true => Availability::Progress,
            false => Availability::Unavailable,
        };
        self.availability = expect.unwrap_or(derived);
        self.availability
    }

    /// Liveness: `Ok` once every checker is settled and every client is idle.
    pub fn settled(&mut self) -> Result<(), Vec<String>> {
        let view = ClusterView {
            now: Duration::from_nanos(self.now_ns()),
            nodes: &self.processes,
            paused: &self.paused,
            stalls: &self.stalls,
            links: &self.links,
            availability: self.availability,
        };
        let mut reasons = Vec::new();
        for checker in &mut self.checkers {
            if let Err(reason) = checker.settled(&view) {
                reasons.push(format!("{}: {reason}", checker.name()));
            }
        }
        for (c, slot) in self.clients.iter().enumerate() {
            let pending = slot.client.pending();
            if pending > 0 {
                reasons.push(format!("client c{c} has {pending} operations pending"));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        for checker in &self.checkers {
            checker.metrics(&mut m);
        }
        let c = &self.counters;
        let figures = [
            ("messages_sent", c.sent),
            ("bytes_sent", c.bytes_sent),
            ("messages_delivered", c.delivered),
            ("messages_duplicated", c.duplicated),
            ("messages_dropped_partition", c.dropped_partition),
            ("messages_dropped_loss", c.dropped_loss),
            ("messages_dropped_node_down", c.dropped_node_down),
            ("timers_fired", c.timers_fired),
            ("storage_writes", c.writes),
            ("storage_syncs", c.syncs),
            ("storage_syncs_completed", c.syncs_completed),
            ("storage_sync_errors", c.sync_errors),
            ("storage_writes_lost", c.writes_lost),
            ("aborts", c.aborts),
            ("disk_wipes", c.disk_wipes),
            ("crashes", c.crashes),
            ("restarts", c.restarts),
            ("pauses", c.pauses),
            ("ops_ok", c.ops[OpType::Ok as usize]),
            ("ops_fail", c.ops[OpType::Fail as usize]),
            ("ops_info", c.ops[OpType::Info as usize]),
        ];
        for (name, value) in figures {
            m.insert(name.to_string(), value as f64);
        }
        if let Some(&committed) = m.get("committed_ops").filter(|&&v| v > 0.0) {
            m.insert(
                "messages_per_committed_op".into(),
                c.sent as f64 / committed,
            );
            m.insert(
                "bytes_per_committed_op".into(),
                c.bytes_sent as f64 / committed,
            );
        }
        m
    }
}

/// A clock fault as the world carries it out.
#[derive(Clone, Copy, Debug)]
pub enum ClockFault {
    Step { offset_ns: i64 },
    Drift { drift_ppm: f64 },
    Freeze(bool),
}

/// A disk fault as the world carries it out.
#[derive(Clone, Copy, Debug)]
pub enum DiskFault {
    Stall,
    Slow { factor: f64 },
    FsyncError,
}

enum ClientStep<S: System> {
    Due(ClientDue<S>),
    Quiesce,
}
