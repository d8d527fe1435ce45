//! The simulated world: every node's process, storage, clock, mailbox and random
//! stream, the clients, the network and the trace. Node tasks on madsim lock it to
//! step; nothing awaits while holding it.
//!
//! The world is one struct; its methods are split by job:
//!
//! - [`step`]: the event loop of each actor: choosing what is due at a node or a
//!   client (bounded per wake-up, slow nodes' late queue) and running one handler.
//! - [`delivery`]: what an input meets when it comes due, before a handler runs:
//!   the delivery-time cut check, `hold` faults and client partitions.
//! - [`effects`]: the effect interpreter: carrying out what a handler asked for
//!   (sends, timers, storage writes and syncs, replies, traces, aborts; a client's
//!   requests and history events).
//! - [`check`]: checker orchestration: the [`Checker`] hooks after each step, at the
//!   start of the liveness phase and when it settles.
//! - [`faults`]: applying the schedule's node, clock, disk and client faults (the
//!   network's own faults are [`Network::apply`]).
//! - [`metrics`]: the run's counters and the metrics built from them.
//! - [`operator`]: the operator that carries out member faults.
//!
//! ## Where a partition cut is checked
//!
//! A link is tested twice. At the send, [`Network::route`] (in `network.rs`) decides
//! the message's fate: dropped by a cut or by loss, or delivered after a drawn latency
//! (maybe duplicated). At delivery, when the message comes due in the receiver's
//! mailbox and before its handler runs, `World::arrive` (in [`delivery`]) asks
//! [`Network::cut_by`] again: a message in flight when a cut appeared is lost, as on
//! a real network whose route went away. The delivery-time test runs when the
//! receiver's loop takes the message out of its mailbox, not at the instant it is
//! due: a message that became due at a paused node while the link was up is still
//! dropped if a cut starts before the resume. (A slow node takes messages out when
//! they are due and queues them to run late; the test runs then, so a cut that starts
//! while one waits in the late queue does not drop it.)

mod check;
mod delivery;
mod effects;
mod faults;
mod metrics;
mod operator;
mod step;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::clock::Clock;
use super::disk::Disk;
use super::mailbox::{Due, Mailbox};
use super::network::{FaultEffects, Network};
use super::trace::{Actor, Trace};
use crate::check::{Availability, Checker, Stall};
use crate::client::{Client, ClientEffect};
use crate::history::HistoryEvent;
use crate::process::{ClientId, Effect, NodeId, Process, RequestId, TimerId};
use crate::rng::{stream, Purpose};
use crate::scenario::{DiskSpec, FaultKind, Latency, NetworkSpec};
use crate::spans::recorder::SpanRecorder;
use crate::storage::Storage;
use crate::system::{Setup, System};

pub use faults::{ClockFault, DiskFault};
pub use metrics::Counters;
pub use operator::{NodeAction, Operator};

/// Most handler calls one slow node has queued to run late: every input and timer
/// that comes due at it joins the queue, so it is bounded like its mailbox
/// ([`super::mailbox::INPUTS_MAX`]); more means a slow fault outpaced by its load.
const LATE_MAX: usize = 1 << 20;

/// Most coverage states a run records: a protocol whose coverage takes more values
/// than this gives a coarser picture, not an unbounded one.
pub const COVERAGE_MAX: usize = 1 << 12;

/// Most messages one `hold` fault keeps until its heal: as many as could be in flight
/// to every node at once.
const HELD_MAX: usize = 1 << 24;

pub type Op<S> = <<S as System>::Client as Client<<S as System>::Process>>::Op;
type P<S> = <S as System>::Process;
type ClientTimer<S> = <<S as System>::Client as Client<P<S>>>::Timer;
type NodeDue<S> = Due<NodeInput<P<S>>, <P<S> as Process>::Timer>;
type ClientDue<S> = Due<ClientInput<P<S>>, ClientTimer<S>>;

/// How a run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// An application fault starts (`on`) or ends.
    Service {
        fault: crate::process::ServiceFault,
        on: bool,
    },
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
    /// Active `slow` faults on the node: (index, delay, busy, timers). At most one
    /// entry per fault of the schedule (a fault's start replaces its entry).
    slow: Vec<(usize, Latency, bool, bool)>,
    /// Inputs and timers that came due while the node was slow, in the order they
    /// run (see [`World::enqueue_late`]); at most [`LATE_MAX`].
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
    /// Active pin faults, oldest first, by fault index: the latest decides. At most
    /// one entry per fault of the schedule.
    pins: Vec<(usize, NodeId)>,
}

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
    /// Active client partitions: (fault index, clients (empty: all), nodes). At most
    /// one entry per fault of the schedule.
    client_cuts: Vec<(usize, Vec<ClientId>, Vec<NodeId>)>,
    crash_rng: ChaCha8Rng,
    disk_rng: ChaCha8Rng,
    sync_latency: Latency,
    abort_restart_ns: u64,
    pub trace: Trace,
    /// The clients' history: two events per operation at most (invoke and
    /// completion), so bounded by the operations the run's duration allows.
    pub history: Vec<HistoryEvent<Op<S>>>,
    checkers: Vec<Box<dyn Checker<P<S>>>>,
    /// Coverage states the nodes reached, when `setup.coverage` asks for them; at
    /// most [`COVERAGE_MAX`].
    coverage: BTreeSet<u64>,
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
    /// When a pause or clock freeze began, by fault index: at most one entry per fault.
    fault_since: BTreeMap<usize, u64>,
    /// Messages held by each active `hold` fault: (send counter, receiver, message).
    /// One list per active hold, each at most [`HELD_MAX`].
    held: BTreeMap<usize, Vec<Held<P<S>>>>,
    slow_rng: ChaCha8Rng,
    /// The effects of the handler being carried out, reused across steps: one
    /// handler call's worth (its syncs bounded by the process's own outbox limits).
    effects: Vec<Effect<P<S>>>,
    /// A client step's effects, reused likewise.
    client_effects: Vec<ClientEffect<P<S>, S::Client>>,
    /// Request traces, when recording (never hashed).
    spans: Option<SpanRecorder>,
    /// The actor that carries out member faults (see [`operator`]).
    pub operator: Operator<P<S>>,
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
            coverage: BTreeSet::new(),
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
            operator: Operator::new(S::bootstrap_members(&setup)),
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
}
