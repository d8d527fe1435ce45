//! The simulated world: every node's process, storage, clock, mailbox and random
//! stream, the clients, the network and the trace. Node tasks on madsim lock it to
//! step; nothing awaits while holding it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::Notify;

use super::clock::Clock;
use super::disk::{Completion, Disk};
use super::mailbox::{Due, Mailbox};
use super::network::{DropReason, Fate, FaultEffects, Network};
use super::trace::{fmt_time, Actor, Fields, Trace};
use crate::check::{Availability, Checker, ClusterView, Metrics, Stall};
use crate::client::{Client, ClientContext, ClientEffect};
use crate::history::{HistoryEvent, OpType};
use crate::process::{ClientId, Context, Effect, NodeId, Process, RequestId, SyncError, TimerId};
use crate::rng::{stream, Purpose};
use crate::scenario::{DiskSpec, Fault, FaultKind, Latency, NetworkSpec};
use crate::spans::recorder::{Cause, SpanRecorder};
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
    /// What kind of check failed.
    pub kind: FailureKind,
    /// The check that failed: an invariant's name, `liveness`, `linearizability`...
    pub check: String,
    /// What the check saw.
    pub message: String,
    /// When it was found, in simulated (true) time since the run began, in ns (0 when
    /// the run gives no time, as for a panic).
    pub time_ns: u64,
}

/// The kinds of failure, named in lowercase (see [`FailureKind::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// A checker's safety check (`Checker::after_step`) failed after a step.
    Invariant,
    /// The liveness phase did not end as expected within its bound.
    Liveness,
    /// The client history failed its check (e.g. linearizability).
    History,
    /// The run panicked (a protocol, a checker, or the driver).
    Panic,
    /// The same seed ran twice and the runs differed.
    Nondeterminism,
    /// A scenario's `[expect]` bound on a metric did not hold.
    Expectation,
}

impl FailureKind {
    /// The name `[expect] failure` and `summary.json` use.
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
        /// The run's send counter at the send: a `hold` releases in this order.
        seq: u64,
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
    /// Active `slow` faults on the node: (index, delay, busy, timers).
    slow: Vec<(usize, Latency, bool, bool)>,
    /// Inputs and timers that came due while the node was slow, in the order they
    /// run (see [`World::enqueue_late`]).
    late: VecDeque<Late<P>>,
    /// When the last late handler starts (true time).
    late_until_ns: u64,
    /// The last `slow` fault that delayed a handler here.
    last_slow: Option<usize>,
}

/// A message a `hold` keeps: (the run's send counter at its send, receiver, message).
type Held<P> = (u64, NodeId, NodeInput<P>);

/// A handler call a slow node runs late.
pub struct Late<P: Process> {
    run_ns: u64,
    /// A timer's id, so that cancelling it still works while it waits.
    timer: Option<TimerId>,
    due: Due<NodeInput<P>, P::Timer>,
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
    /// Active pause faults on the client (they may overlap).
    pauses: u32,
    /// Active pin faults, oldest first, by fault index: the latest decides.
    pins: Vec<(usize, NodeId)>,
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
    pub dropped_client_partition: u64,
    pub client_pauses: u64,
    /// Requests a pin sent to another node than the client chose.
    pub client_requests_pinned: u64,
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
    /// Nodes with a `slow` fault active, for checkers.
    slow: Vec<bool>,
    stalls: Vec<Stall>,
    /// Links that still work once the liveness phase starts (see [`ClusterView::links`]).
    links: Vec<bool>,
    availability: Availability,
    pub nodes: Vec<NodeSlot<P<S>>>,
    pub clients: Vec<ClientSlot<S>>,
    pub net: Network,
    /// Active client partitions: (fault index, clients (empty: all), nodes).
    client_cuts: Vec<(usize, Vec<ClientId>, Vec<NodeId>)>,
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
    /// Marks of [`Context::sometimes`], by name.
    sometimes: std::collections::BTreeMap<&'static str, u64>,
    /// What each fault did, beyond the network's (see [`World::metrics`]).
    pub fault_effects: FaultEffects,
    /// The schedule's fault kinds, by index, and which of them started.
    fault_kinds: Vec<FaultKind>,
    fault_started: Vec<bool>,
    /// When a pause or clock freeze began, by fault index.
    fault_since: BTreeMap<usize, u64>,
    /// Messages held by each active `hold` fault: (send counter, receiver, message).
    held: BTreeMap<usize, Vec<Held<P<S>>>>,
    slow_rng: ChaCha8Rng,
    effects: Vec<Effect<P<S>>>,
    client_effects: Vec<ClientEffect<P<S>, S::Client>>,
    /// Request traces, when recording (never hashed).
    spans: Option<SpanRecorder>,
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
                slow: Vec::new(),
                late: VecDeque::new(),
                late_until_ns: 0,
                last_slow: None,
            })
            .collect();
        let clients = (0..S::clients(&setup))
            .map(|c| ClientSlot {
                client: S::client(&setup, c),
                rng: stream(seed, Purpose::Client, c as u64),
                next_seq: 0,
                next_timer: 0,
                mailbox: Mailbox::default(),
                pauses: 0,
                pins: Vec::new(),
            })
            .collect();
        World {
            checkers: S::checkers(&setup),
            seed,
            time: madsim::time::TimeHandle::current(),
            start: madsim::time::Instant::now(),
            processes: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            slow: vec![false; n],
            stalls: vec![Stall::default(); n],
            links: Vec::new(),
            availability: Availability::Progress,
            nodes,
            clients,
            net: Network::new(n, network, stream(seed, Purpose::Network, 0)),
            client_cuts: Vec::new(),
            crash_rng: stream(seed, Purpose::Crash, 0),
            disk_rng: stream(seed, Purpose::Disk, 0),
            sync_latency: disk.sync_latency.clone(),
            abort_restart_ns: disk.abort_restart_ms * 1_000_000,
            trace: Trace::new(record),
            history: Vec::new(),
            failure: None,
            stop: Arc::new(Notify::new()),
            counters: Counters::default(),
            sometimes: Default::default(),
            fault_effects: FaultEffects::default(),
            fault_kinds: Vec::new(),
            fault_started: Vec::new(),
            fault_since: BTreeMap::new(),
            held: BTreeMap::new(),
            slow_rng: stream(seed, Purpose::Slow, 0),
            effects: Vec::new(),
            client_effects: Vec::new(),
            spans: record.then(SpanRecorder::default),
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
        let next = self.drain_node(id);
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

    /// [`World::drain`] for a node: what comes due goes through [`World::arrive`],
    /// then runs at once, or, while the node is slow (or still has late handlers
    /// queued), joins its late queue.
    fn drain_node(&mut self, id: NodeId) -> Option<u64> {
        let now = self.now_ns();
        for _ in 0..STEPS_PER_WAKE_MAX {
            if self.failure.is_some() || self.nodes[id].status != Status::Up {
                self.nodes[id].mailbox.sleep_until(None);
                return None;
            }
            let slot = &mut self.nodes[id];
            let late = !slot.slow.is_empty() || !slot.late.is_empty();
            // Timers skip the queue while every active slow fault spares them.
            let timers_late = slot.slow.is_empty() || slot.slow.iter().any(|s| s.3);
            if let Some((at, timer, due)) = slot.mailbox.pop_due_entry(now) {
                let late = late && (timer.is_none() || timers_late);
                if let Some(due) = self.arrive(id, due, now) {
                    match late {
                        true => self.enqueue_late(id, at, timer, due, now),
                        false => self.step_node(id, Some(due), now),
                    }
                }
                continue;
            }
            let slot = &mut self.nodes[id];
            let head = slot.late.front().map(|l| l.run_ns);
            match head {
                Some(t) if t <= now => {
                    let item = slot.late.pop_front().expect("a head");
                    self.step_node(id, Some(item.due), now);
                }
                _ => {
                    let next = slot.mailbox.next_due_ns().into_iter().chain(head).min();
                    slot.mailbox.sleep_until(next);
                    return next;
                }
            }
        }
        self.nodes[id].mailbox.sleep_until(Some(now));
        Some(now)
    }

    /// A message comes due at node `id`: it is dropped if a cut now separates the
    /// nodes (it was in flight when the cut appeared), held if a `hold` covers the
    /// link, and otherwise handed on. A client's request is dropped if a
    /// `client-partition` now cuts the client from the node. Other inputs and timers
    /// pass through.
    fn arrive(&mut self, id: NodeId, due: NodeDue<S>, now: u64) -> Option<NodeDue<S>> {
        if let Due::Input(NodeInput::Request { id: request, .. }) = &due {
            if !self.client_connected(request.client, id) {
                self.trace.event_with(
                    now,
                    Actor::Node(id),
                    "drop",
                    &(request, "client-partition"),
                    || {
                        let peer = Actor::Client(request.client);
                        (
                            format!("{request:?} from c{} (cut in flight)", request.client),
                            Fields::request(request.seq, peer, "request"),
                        )
                    },
                );
                return None;
            }
        }
        let Due::Input(NodeInput::Message {
            from,
            msg,
            digest,
            seq,
        }) = &due
        else {
            return Some(due);
        };
        let (from, digest, seq) = (*from, *digest, *seq);
        let class = <P<S>>::message_class(msg);
        if let Some(fault) = self.net.cut_by(from, id, class) {
            self.counters.dropped_partition += 1;
            self.net.effects.add(fault, "messages_dropped", 1.0);
            self.trace.event_with(
                now,
                Actor::Node(id),
                "drop",
                &(from, digest, "partition"),
                || {
                    (
                        format!("from n{from} (cut in flight) {msg:?}"),
                        Fields::message(seq, Actor::Node(from), class),
                    )
                },
            );
            return None;
        }
        if let Some(fault) = self.net.held_by(from, id, class) {
            self.trace
                .event_with(now, Actor::Node(id), "hold", &(from, digest, fault), || {
                    (
                        format!("from n{from} held by fault {fault}: {msg:?}"),
                        Fields::message(seq, Actor::Node(from), class),
                    )
                });
            self.fault_effects.add(fault, "messages_held", 1.0);
            let Due::Input(input) = due else {
                unreachable!("matched above");
            };
            self.held.entry(fault).or_default().push((seq, id, input));
            return None;
        }
        Some(due)
    }

    /// Node `id` is slow (or still has late handlers queued): `due`, which came due
    /// at `due_ns`, runs late. Its start is drawn per handler from every active
    /// `slow` fault on the node (their delays add up), keeping arrival order: by
    /// default at `max(due + delay, previous start)` (the process waits for a CPU
    /// slice), with `busy` at `max(due, previous start) + delay` (each handler takes
    /// `delay` of CPU, so inputs queue). After the heal, what is queued still runs
    /// in order, and new inputs queue behind it undelayed.
    fn enqueue_late(
        &mut self,
        id: NodeId,
        due_ns: u64,
        timer: Option<TimerId>,
        due: NodeDue<S>,
        now: u64,
    ) {
        let slot = &mut self.nodes[id];
        let mut delay_ns = 0;
        let mut busy = false;
        for (_, latency, b, _) in &slot.slow {
            delay_ns += latency.sample_ns(&mut self.slow_rng);
            busy |= *b;
        }
        let run_ns = match busy {
            true => due_ns.max(slot.late_until_ns) + delay_ns,
            false => (due_ns + delay_ns).max(slot.late_until_ns),
        }
        .max(now);
        slot.late_until_ns = run_ns;
        if let Some(&(fault, ..)) = slot.slow.iter().min_by_key(|s| s.0) {
            slot.last_slow = Some(fault);
        }
        if let Some(fault) = slot.last_slow.filter(|_| run_ns > due_ns) {
            // A handler that runs late is time the node could not act on time: the
            // progress check leaves it out, as it does a pause.
            self.stalls[id].add_late(due_ns, run_ns);
            self.fault_effects.add(fault, "handlers_delayed", 1.0);
            self.fault_effects
                .add(fault, "handler_delay_ms", (run_ns - due_ns) as f64 / 1e6);
        }
        slot.late.push_back(Late { run_ns, timer, due });
    }

    /// A `hold` fault ends: what it held is delivered now, in send order (or shuffled
    /// from the network stream). Each message then passes [`World::arrive`] again,
    /// so a cut or another hold still applies, and a receiver that is down drops it.
    pub fn release_held(&mut self, index: usize, shuffle: bool) {
        let now = self.now_ns();
        let mut held = self.held.remove(&index).unwrap_or_default();
        held.sort_by_key(|h| h.0);
        if shuffle {
            self.net.shuffle(&mut held);
        }
        let count = held.len() as u64;
        self.fault_effects
            .add(index, "messages_released", count as f64);
        self.trace
            .event(now, Actor::Sim, "release", &(index, count), || {
                format!("fault {index} releases {count} held messages")
            });
        for (_, to, input) in held {
            self.nodes[to].mailbox.push(now, input);
        }
    }

    /// One handler call: `None` is `on_start`.
    fn step_node(&mut self, id: NodeId, due: Option<NodeDue<S>>, now: u64) {
        if let Some(spans) = &mut self.spans {
            let cause = match &due {
                Some(Due::Input(NodeInput::Request { id, req })) => {
                    Cause::Request(*id, format!("{req:?}"))
                }
                Some(Due::Input(NodeInput::Message { from, seq, .. })) => Cause::Message {
                    from: *from,
                    seq: *seq,
                },
                _ => Cause::Local,
            };
            spans.begin_step(id, now, self.counters.sent, cause);
        }
        let n = self.setup.nodes;
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
                    Completion::Failed(p, fault) => {
                        self.fault_effects.add(fault, "syncs_failed", 1.0);
                        self.fault_effects
                            .add(fault, "writes_lost", p.writes as f64);
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
        .with_wall_clock(slot.clock.wall(now))
        .with_spans(self.spans.is_some());
        match due {
            None => process.on_start(&mut ctx),
            Some(Due::Input(NodeInput::DiskWake)) => {
                let (sync, result) = synced.expect("a completion");
                process.on_synced(&mut ctx, sync, result);
            }
            Some(Due::Input(NodeInput::Message {
                from,
                msg,
                digest,
                seq,
            })) => {
                self.counters.delivered += 1;
                self.trace
                    .event_with(now, actor, "deliver", &(from, digest), || {
                        let class = <P<S>>::message_class(&msg);
                        (
                            format!("from n{from} {msg:?}"),
                            Fields::message(seq, Actor::Node(from), class),
                        )
                    });
                process.on_message(&mut ctx, from, msg);
            }
            Some(Due::Input(NodeInput::Request { id: request, req })) => {
                self.trace
                    .event_with(now, actor, "request", &(request, &req), || {
                        let peer = Actor::Client(request.client);
                        (
                            format!("{request:?} {req:?}"),
                            Fields::request(request.seq, peer, "request"),
                        )
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
                    let seq = self.counters.sent;
                    self.counters.sent += 1;
                    self.counters.bytes_sent += <P<S>>::message_bytes(&msg) as u64;
                    let digest = crate::fingerprint::fnv(&msg);
                    let class = <P<S>>::message_class(&msg);
                    let fields = || Fields::message(seq, Actor::Node(to), class);
                    self.trace
                        .event_with(now, actor, "send", &(to, digest), || {
                            (format!("to n{to} {msg:?}"), fields())
                        });
                    match self.net.route(id, to, class) {
                        Fate::Dropped(reason) => {
                            match reason {
                                DropReason::Loss => self.counters.dropped_loss += 1,
                                _ => self.counters.dropped_partition += 1,
                            }
                            self.trace
                                .event_with(now, actor, "drop", &(to, reason), || {
                                    (format!("to n{to}: {}", reason.name()), fields())
                                });
                        }
                        Fate::Delivered {
                            latency_ns,
                            duplicate_ns,
                        } => {
                            if let Some(dup_ns) = duplicate_ns {
                                self.counters.duplicated += 1;
                                self.trace.event_with(
                                    now,
                                    actor,
                                    "duplicate",
                                    &(to, dup_ns),
                                    || (format!("to n{to}"), fields()),
                                );
                                let copy = NodeInput::Message {
                                    from: id,
                                    msg: msg.clone(),
                                    digest,
                                    seq,
                                };
                                self.nodes[to].mailbox.push(now + dup_ns, copy);
                            }
                            self.nodes[to].mailbox.push(
                                now + latency_ns,
                                NodeInput::Message {
                                    from: id,
                                    msg,
                                    digest,
                                    seq,
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
                    let slot = &mut self.nodes[id];
                    slot.mailbox.cancel_timer(timer_id);
                    // A timer that fired but waits for a slow node's CPU is still
                    // cancellable: a cancelled timer never runs.
                    if !slot.late.is_empty() {
                        slot.late.retain(|l| l.timer != Some(timer_id));
                    }
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
                    if let Some(fault) = slot.disk.slowed_by() {
                        self.fault_effects.add(fault, "syncs_slowed", 1.0);
                    }
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
                    let fields =
                        || Fields::request(request.seq, Actor::Client(request.client), "reply");
                    self.trace
                        .event_with(now, actor, "reply", &(request, &response), || {
                            (format!("{request:?} {response:?}"), fields())
                        });
                    if let Some(spans) = &mut self.spans {
                        let sent = self.counters.sent;
                        spans.reply(id, now, sent, request, format!("{response:?}"));
                    }
                    if !self.client_connected(request.client, id) {
                        self.trace.event_with(
                            now,
                            actor,
                            "drop",
                            &(request, "client-partition"),
                            || {
                                let detail =
                                    format!("reply to c{}: client-partition", request.client);
                                (detail, fields())
                            },
                        );
                        continue;
                    }
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
                Effect::Sometimes { name } => {
                    assert!(
                        S::sometimes().contains(&name),
                        "`{name}` is marked but not listed in {}'s System::sometimes",
                        S::NAME
                    );
                    *self.sometimes.entry(name).or_default() += 1;
                }
                Effect::Span {
                    op,
                    name,
                    after,
                    attrs,
                } => {
                    if let Some(spans) = &mut self.spans {
                        let sent = self.counters.sent;
                        spans.span(id, (now, sent), op, (name, after), &attrs);
                    }
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
            |w, c| w.clients[c].pauses == 0,
            |w, c, due, now| w.step_client(c, Some(ClientStep::Due(due)), now),
        )
    }

    /// Whether no client partition cuts client `c` from `node`; if one does, the
    /// drop counts against the first listed in the schedule.
    fn client_connected(&mut self, c: ClientId, node: NodeId) -> bool {
        let cut = self
            .client_cuts
            .iter()
            .filter(|(_, clients, nodes)| {
                (clients.is_empty() || clients.contains(&c)) && nodes.contains(&node)
            })
            .map(|cut| cut.0)
            .min();
        if let Some(index) = cut {
            self.counters.dropped_client_partition += 1;
            self.fault_effects.add(index, "messages_dropped", 1.0);
        }
        cut.is_none()
    }

    /// A client fault (fault `index` of the schedule) starts (`on`) or ends.
    pub fn client_fault(&mut self, index: usize, fault: &crate::scenario::Fault, on: bool) {
        use crate::scenario::Fault;
        let now = self.now_ns();
        match *fault {
            Fault::ClientPartition {
                ref clients,
                ref nodes,
                ..
            } => match on {
                true => self
                    .client_cuts
                    .push((index, clients.clone(), nodes.clone())),
                false => self.client_cuts.retain(|cut| cut.0 != index),
            },
            Fault::ClientPause { client, .. } => {
                let slot = &mut self.clients[client];
                if on {
                    slot.pauses += 1;
                    self.counters.client_pauses += u64::from(slot.pauses == 1);
                    self.fault_effects.add(index, "clients_paused", 1.0);
                    self.fault_since.insert(index, now);
                } else {
                    assert!(slot.pauses > 0, "a client pause ends only once");
                    slot.pauses -= 1;
                    let since = self.fault_since.remove(&index).unwrap_or(now);
                    let paused_ms = (now - since) as f64 / 1e6;
                    self.fault_effects.add(index, "paused_ms", paused_ms);
                }
                if slot.pauses == 0 {
                    // What fell due during the pause runs now, in order.
                    slot.mailbox.sleep_until(Some(0));
                    slot.mailbox.notify.notify_one();
                }
                let event = if on { "pause" } else { "resume" };
                self.trace
                    .event(now, Actor::Client(client), event, &(), String::new);
            }
            Fault::ClientPin { client, node, .. } => {
                let pins = &mut self.clients[client].pins;
                if on {
                    pins.push((index, node));
                } else {
                    pins.retain(|&(i, _)| i != index);
                }
            }
            _ => unreachable!("not a client fault: {fault:?}"),
        }
    }

    /// Tells every client the fault phase is over.
    pub fn quiesce_clients(&mut self) {
        for c in 0..self.clients.len() {
            let now = self.now_ns();
            self.step_client(c, Some(ClientStep::Quiesce), now);
        }
    }

    fn step_client(&mut self, c: ClientId, step: Option<ClientStep<S>>, now: u64) {
        if let Some(ClientStep::Due(Due::Input(ClientInput { from, id, .. }))) = &step {
            if !self.client_connected(c, *from) {
                self.trace.event_with(
                    now,
                    Actor::Client(c),
                    "drop",
                    &(from, id, "client-partition"),
                    || {
                        (
                            format!("reply {id:?} from n{from} (cut in flight)"),
                            Fields::request(id.seq, Actor::Node(*from), "reply"),
                        )
                    },
                );
                return;
            }
        }
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
                self.trace.event_with(
                    now,
                    Actor::Client(c),
                    "response",
                    &(from, id, &response),
                    || {
                        (
                            format!("from n{from} {id:?} {response:?}"),
                            Fields::request(id.seq, Actor::Node(from), "reply"),
                        )
                    },
                );
                if let Some(spans) = &mut self.spans {
                    spans.response(now, from, id, format!("{response:?}"));
                }
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
                    let to = match self.clients[c].pins.last() {
                        Some(&(pin, pinned)) => {
                            if pinned != to {
                                self.counters.client_requests_pinned += 1;
                                self.fault_effects.add(pin, "requests_pinned", 1.0);
                            }
                            pinned
                        }
                        None => to,
                    };
                    let fields = || Fields::request(id.seq, Actor::Node(to), "request");
                    self.trace
                        .event_with(now, actor, "request", &(to, id, &req), || {
                            (format!("to n{to} {id:?} {req:?}"), fields())
                        });
                    if let Some(spans) = &mut self.spans {
                        spans.request(c, now, to, id, format!("{req:?}"));
                    }
                    if !self.client_connected(c, to) {
                        self.trace.event_with(
                            now,
                            actor,
                            "drop",
                            &(to, "client-partition"),
                            || (format!("to n{to}: client-partition"), fields()),
                        );
                        continue;
                    }
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
                    if let Some(spans) = &mut self.spans {
                        let json = serde_json::to_value(&op).unwrap_or_default();
                        match kind {
                            OpType::Invoke => spans.invoke(c, now, json),
                            _ => spans.complete(c, now, kind, json),
                        }
                    }
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
        // The checkers leave the world while they look at it through the view.
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(now);
        let mut failed = None;
        for checker in &mut checkers {
            if let Err(message) = checker.after_step(&view, id) {
                failed = Some((checker.name(), message));
                break;
            }
        }
        self.checkers = checkers;
        if let Some((name, message)) = failed {
            self.fail(super::FailureKind::Invariant, name, message);
        }
    }

    /// A crash fault (with `wipe`, a disk wipe) starts. Down faults compose: a node
    /// already down stays down, now until this fault ends too. Returns whether the
    /// node went down now (so its madsim task must be killed).
    pub fn crash(&mut self, id: NodeId, index: usize, torn: bool, wipe: bool) -> bool {
        let slot = &mut self.nodes[id];
        slot.downs += 1;
        // The fault, not a supervisor, now decides when the node comes back.
        slot.restart_at_ns = None;
        let was_up = slot.status != Status::Down;
        if was_up {
            let (kept, lost) = self.take_down(id, torn);
            self.fault_effects.add(index, "nodes_downed", 1.0);
            self.fault_effects.add(index, "writes_lost", lost as f64);
            if !wipe {
                self.fault_effects.add(index, "writes_kept", kept as f64);
            }
        }
        if wipe {
            let now = self.now_ns();
            let slot = &mut self.nodes[id];
            let lost = slot.storage.unsynced_writes() as u64;
            slot.storage = Storage::default();
            self.counters.disk_wipes += 1;
            self.fault_effects.add(index, "disks_wiped", 1.0);
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
    /// Returns the unsynced writes kept (torn) and lost.
    fn take_down(&mut self, id: NodeId, torn: bool) -> (u64, u64) {
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
        // What a slow node had received but not yet handled is gone with it.
        let unhandled = slot
            .late
            .drain(..)
            .filter(|l| matches!(l.due, Due::Input(NodeInput::Message { .. })))
            .count() as u64;
        self.counters.dropped_node_down += unhandled;
        slot.status = Status::Down;
        self.processes[id] = None;
        self.counters.crashes += 1;
        self.counters.writes_lost += lost;
        if let Some(spans) = &mut self.spans {
            spans.node_down(id, now);
        }
        self.trace
            .event(now, Actor::Node(id), "crash", &(kept, lost), || {
                format!("{lost} unsynced writes lost, {kept} kept (torn: {torn})")
            });
        self.check(id, now);
        (kept as u64, lost)
    }

    /// A clock fault on node `id`: a wall-clock step, a drift change, or a freeze
    /// starting or ending.
    pub fn clock_fault(&mut self, id: NodeId, index: usize, fault: ClockFault) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        let fx = &mut self.fault_effects;
        match fault {
            ClockFault::Step { offset_ns } => {
                slot.clock.step_wall(offset_ns);
                fx.add(index, "offset_ms", offset_ns.unsigned_abs() as f64 / 1e6);
            }
            ClockFault::Drift { drift_ppm } => {
                let factor = slot.clock.set_drift(now, drift_ppm);
                let timers = slot.mailbox.timers_pending(None);
                fx.add(index, "timers_rescaled", timers as f64);
                slot.mailbox.rescale_timers(now, factor);
            }
            ClockFault::Freeze(true) => {
                self.fault_since.insert(index, now);
                slot.freezes += 1;
                if slot.freezes == 1 {
                    self.stalls[id].begin(now);
                    slot.clock.set_frozen(now, true);
                    slot.mailbox.timers_held = true;
                }
            }
            ClockFault::Freeze(false) => {
                assert!(slot.freezes > 0, "a freeze ends only once");
                let since = self.fault_since.remove(&index).unwrap_or(now);
                fx.add(index, "frozen_ms", (now - since) as f64 / 1e6);
                // Timers that fell due while frozen (and so fire late).
                let late = slot.mailbox.timers_pending(Some(now));
                fx.add(index, "timers_held", late as f64);
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
                if !on {
                    let stalled = slot.disk.due_by(now);
                    self.fault_effects
                        .add(index, "syncs_stalled", stalled as f64);
                }
                slot.disk.set_stalled(on);
                if let Some(due) = slot.disk.next_due_ns() {
                    slot.mailbox.push(due.max(now), NodeInput::DiskWake);
                }
            }
            DiskFault::Slow { factor } => slot.disk.set_slow(index, factor, on),
            DiskFault::FsyncError => slot.disk.fail_next(index),
        }
    }

    /// A pause fault starts or ends. A node that is down then (restarting after it
    /// aborted itself) is not paused: there is no process to freeze. Returns whether
    /// the node's madsim task must be paused or resumed.
    pub fn set_paused(&mut self, id: NodeId, index: usize, paused: bool) -> bool {
        let now = self.now_ns();
        let paused_now = self.set_paused_inner(id, paused);
        if paused_now {
            match paused {
                true => {
                    self.fault_since.insert(index, now);
                    self.fault_effects.add(index, "nodes_paused", 1.0);
                }
                false => {
                    let since = self.fault_since.remove(&index).unwrap_or(now);
                    self.fault_effects
                        .add(index, "paused_ms", (now - since) as f64 / 1e6);
                }
            }
        }
        paused_now
    }

    fn set_paused_inner(&mut self, id: NodeId, paused: bool) -> bool {
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

    /// A `slow` fault starts or ends on node `id`.
    pub fn set_slow(
        &mut self,
        id: NodeId,
        index: usize,
        delay: &Latency,
        busy: bool,
        timers: bool,
        on: bool,
    ) {
        let slot = &mut self.nodes[id];
        slot.slow.retain(|s| s.0 != index);
        if on {
            slot.slow.push((index, delay.clone(), busy, timers));
        }
        self.slow[id] = !slot.slow.is_empty();
    }

    /// The run's fault schedule, for the per-fault effects in [`World::metrics`].
    pub fn set_faults(&mut self, faults: &[Fault]) {
        self.fault_kinds = faults.iter().map(Fault::kind).collect();
        self.fault_started = vec![false; faults.len()];
    }

    /// Fault `index` started.
    pub fn fault_started(&mut self, index: usize) {
        if let Some(started) = self.fault_started.get_mut(index) {
            *started = true;
        }
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

    /// The liveness phase settled: tells every checker (see [`Checker::on_settled`]).
    pub fn confirm_settled(&mut self) {
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(self.now_ns());
        for checker in &mut checkers {
            checker.on_settled(&view);
        }
        self.checkers = checkers;
    }

    /// The omniscient view checkers judge at simulated time `now_ns`.
    fn view(&self, now_ns: u64) -> ClusterView<'_, S::Process> {
        ClusterView {
            now: Duration::from_nanos(now_ns),
            nodes: &self.processes,
            paused: &self.paused,
            slow: &self.slow,
            stalls: &self.stalls,
            links: &self.links,
            availability: self.availability,
        }
    }

    /// Liveness: `Ok` once every checker is settled and every client is idle.
    pub fn settled(&mut self) -> Result<(), Vec<String>> {
        let mut checkers = std::mem::take(&mut self.checkers);
        let view = self.view(self.now_ns());
        let mut reasons = Vec::new();
        for checker in &mut checkers {
            if let Err(reason) = checker.settled(&view) {
                reasons.push(format!("{}: {reason}", checker.name()));
            }
        }
        self.checkers = checkers;
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

    /// The run's request traces (empty when not recording), ending what is still
    /// open at `now`; the exporter's names are filled in but the scenario's.
    pub fn take_spans(&mut self, now: u64) -> crate::spans::RunSpans {
        let mut spans = self.spans.take().map(|r| r.finish(now)).unwrap_or_default();
        spans.protocol = S::NAME.to_string();
        spans.seed = self.seed;
        spans.nodes = self.nodes.len();
        spans.clients = self.clients.len();
        spans
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
            (
                "messages_dropped_client_partition",
                c.dropped_client_partition,
            ),
            ("client_pauses", c.client_pauses),
            ("client_requests_pinned", c.client_requests_pinned),
            ("ops_ok", c.ops[OpType::Ok as usize]),
            ("ops_fail", c.ops[OpType::Fail as usize]),
            ("ops_info", c.ops[OpType::Info as usize]),
        ];
        for (name, value) in figures {
            m.insert(name.to_string(), value as f64);
        }
        for (name, &count) in &self.sometimes {
            m.insert(format!("sometimes.{name}"), count as f64);
        }
        // What each fault did, by kind: `fault_<kind>_count` (faults of that kind that
        // started) and `fault_<kind>_<effect>` summed over them, for every kind in the
        // schedule (zero when they did nothing).
        for (index, &kind) in self.fault_kinds.iter().enumerate() {
            let count = m
                .entry(format!("fault_{}_count", kind.name()))
                .or_insert(0.0);
            *count += f64::from(u8::from(self.fault_started[index]));
            for effect in kind.effects() {
                let value =
                    self.fault_effects.get(index, effect) + self.net.effects.get(index, effect);
                *m.entry(format!("fault_{}_{effect}", kind.name()))
                    .or_insert(0.0) += value;
            }
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
