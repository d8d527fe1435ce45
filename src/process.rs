//! The process boundary: protocols are pure state machines.
//!
//! A [`Process`] never touches a runtime, a clock, a socket, a file or a global RNG.
//! Each handler gets a [`Context`] that carries the inputs it may read (its node id,
//! its *local* clock, a seeded RNG, its durable storage) and collects the effects it
//! wants carried out, as data: messages to send, timers to set or cancel, writes and
//! syncs, replies to clients, trace lines. The simulation driver feeds inputs and
//! carries out effects; a unit test can do the same by hand.
//!
//! A handler runs atomically in simulated time: no fault can interleave with it.
//!
//! Durability is asynchronous, as on a real disk. [`Context::write`] lands in the page
//! cache (readable at once); [`Context::sync`] *starts* an fsync of everything written so
//! far and returns a [`SyncId`]; the disk completes it later, in issue order, and the
//! driver then calls [`Process::on_synced`] with `Ok`, or with `Err` when the fsync
//! failed (the writes it covered are then gone from the page cache, as Linux drops them).
//! A crash loses every write whose sync had not completed. So a process that must not
//! reveal state a crash could lose (a vote, an append acknowledgement, a reply) holds
//! those messages until `on_synced`; [`DurableOutbox`] does exactly that.
//!
//! Two clocks, as machines have them: [`Context::now`] is the *monotonic* clock (it may
//! drift, never jumps back, and stops while the node's clock source is frozen); timers
//! run on it. [`Context::wall_clock`] is the time of day: the monotonic clock plus an
//! offset that NTP-like steps move forward or back.

#![warn(missing_docs)]

use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::fingerprint::Fingerprint;
use crate::spans::OpId;
use crate::storage::Storage;

/// Index of a server process in its cluster: `0..nodes`.
pub type NodeId = usize;

/// Index of a simulated client: `0..clients`.
pub type ClientId = usize;

/// A timer handle. Ids are unique within one incarnation of a process, so a timer
/// set before a crash can never fire after the restart, and a cancelled id never fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// A sync in flight: [`Process::on_synced`] names it when the disk completes it.
/// Ids are unique within one incarnation and increase in issue order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncId(pub u64);

/// Why a sync failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncError {
    /// The fsync returned EIO. The writes it covered are gone from the page cache and
    /// will never be durable; a later sync does not bring them back (PostgreSQL's
    /// "fsyncgate"). Crash-stop, then recovery from disk, is the safe answer.
    Io,
}

/// Identifies one client request: the client and that client's sequence number.
/// A process answers it with [`Context::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RequestId {
    /// The client that sent it.
    pub client: ClientId,
    /// That client's request counter, from 1 (a resend is a new request, with a new
    /// number).
    pub seq: u64,
}

/// A protocol process. One value per node incarnation: the driver builds a fresh value
/// on every start and restart (volatile state is gone), then calls [`Process::on_start`],
/// where the process recovers whatever it needs from [`Context::storage`].
pub trait Process: Sized + Send + 'static {
    /// What processes send each other. [`Fingerprint`] feeds the run's trace hash.
    type Message: Clone + Debug + Fingerprint + Send + 'static;
    /// Typed timer tokens: the handler learns which timer fired without a lookup.
    type Timer: Clone + Debug + Send + 'static;
    /// A client's request body.
    type Request: Clone + Debug + Fingerprint + Send + 'static;
    /// A reply to a client.
    type Response: Clone + Debug + Fingerprint + Send + 'static;
    /// A value kept in durable storage.
    type Record: Clone + Debug + Send + 'static;

    /// Boot or recovery: storage holds exactly what survived.
    fn on_start(&mut self, ctx: &mut Context<'_, Self>);
    /// A message from another process.
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Message);
    /// A timer set by this incarnation fired (at its deadline on the monotonic clock).
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Self::Timer);
    /// A client request; answer it (now or later) with [`Context::reply`], or not at all.
    fn on_request(&mut self, ctx: &mut Context<'_, Self>, id: RequestId, req: Self::Request);

    /// The disk completed sync `sync` (syncs complete in issue order). On `Ok`, every
    /// write issued before that [`Context::sync`] is durable. On `Err`, those writes are
    /// lost. The default is crash-stop on an error: [`Context::abort`].
    fn on_synced(
        &mut self,
        ctx: &mut Context<'_, Self>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) {
        if let Err(error) = result {
            ctx.abort(format!("sync {} failed: {error:?}", sync.0));
        }
    }

    /// Approximate wire size of a message, for the bytes-per-operation metrics.
    fn message_bytes(_msg: &Self::Message) -> usize {
        64
    }

    /// The message's class, which network faults can be restricted to (a scenario's
    /// `classes = [...]`): e.g. Raft's `append` or SWIM's `probe`. One of
    /// [`Process::message_classes`].
    fn message_class(_msg: &Self::Message) -> &'static str {
        "message"
    }

    /// Every class [`Process::message_class`] can return; scenarios are checked
    /// against it.
    fn message_classes() -> &'static [&'static str] {
        &["message"]
    }

    /// An application fault starts (`active`) or ends on this node
    /// (`service-unhealthy`, `service-hang`: see [`ServiceFault`]). The default
    /// ignores it: only a process that serves an application (a discovery run's
    /// service instance) has one to break.
    fn on_service_fault(
        &mut self,
        _ctx: &mut Context<'_, Self>,
        _fault: ServiceFault,
        _active: bool,
    ) {
    }

    /// Whether this protocol's nodes serve an application that service faults
    /// strike; scenarios with service faults are refused otherwise.
    fn serves_application() -> bool {
        false
    }

    /// The role this node holds now, which faults aimed at roles read when they
    /// start (see [`crate::scenario::Target`]). The default, [`Role::None`], suits a
    /// protocol without distinguished nodes (gossip, broadcast).
    fn role(&self) -> Role {
        Role::None
    }

    /// A coarse fingerprint of this node's protocol state, for guided exploration
    /// (`faultline explore`, [`crate::explore`]): a run that brings some node to a
    /// state no earlier run reached joins the explorer's corpus. It should take few
    /// values, ones a protocol engineer would tell
    /// apart (a role, whether the leader's log ends in an entry of an older term, a
    /// joint configuration), and never an unbounded counter such as a term or an
    /// index, which would make every run look new. `None` (the default): the protocol
    /// gives none, and only its `sometimes` marks and fault effects guide the search.
    fn coverage(&self) -> Option<u64> {
        None
    }
}

/// What an application fault does to the service a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceFault {
    /// Calls are answered with errors (`service-unhealthy`).
    Unhealthy,
    /// Calls are not answered (`service-hang`).
    Hang,
}

/// What a node is in its protocol at a moment: Raft's server states (Raft paper
/// §5.1, thesis §4.2.1 for learners), or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Leads its term: handles client requests and replicates.
    Leader,
    /// Follows a leader (or waits for one).
    Follower,
    /// Campaigns for leadership (a pre-candidate too).
    Candidate,
    /// A non-voting member catching up.
    Learner,
    /// No distinguished role.
    None,
}

/// An effect a handler asks for. The driver carries them out in order.
#[derive(Debug)]
pub enum Effect<P: Process> {
    /// A message to another node ([`Context::send`]).
    Send {
        /// The node it goes to.
        to: NodeId,
        /// The message.
        msg: P::Message,
    },
    /// A timer set ([`Context::set_timer`]).
    SetTimer {
        /// Its handle, for [`Context::cancel_timer`].
        id: TimerId,
        /// Its delay from the step's time, on the monotonic clock.
        after: Duration,
        /// The token [`Process::on_timer`] gets back.
        timer: P::Timer,
    },
    /// A timer cancelled ([`Context::cancel_timer`]).
    CancelTimer {
        /// The timer's handle.
        id: TimerId,
    },
    /// A write (or removal, `written: false`) that reached the unsynced tail of storage.
    Write {
        /// The storage key.
        key: String,
        /// `true` for [`Context::write`], `false` for [`Context::remove`].
        written: bool,
    },
    /// A sync started, covering the `writes` unsynced writes that no earlier sync in
    /// flight covers (all issued before it).
    Sync {
        /// Its id, as [`Process::on_synced`] will name it.
        id: SyncId,
        /// How many writes it covers.
        writes: usize,
    },
    /// The process stops itself (a fatal error): the driver crashes the node and
    /// restarts it after the disk's `abort_restart_ms`.
    Abort {
        /// Why, for the trace.
        reason: String,
    },
    /// An answer to a client request ([`Context::reply`]).
    Reply {
        /// The request it answers.
        id: RequestId,
        /// The answer.
        response: P::Response,
    },
    /// A line for the trace ([`Context::trace`]).
    Trace {
        /// The text.
        line: String,
    },
    /// The process reached a state worth reaching in some seeds: see
    /// [`Context::sometimes`].
    Sometimes {
        /// The state's name, kebab-case.
        name: &'static str,
    },
    /// A step of a client operation, for its request trace ([`Context::span`]).
    Span {
        /// The operation it serves.
        op: OpId,
        /// The step's name (`appended`, `replicated`...).
        name: &'static str,
        /// The sender's steps it may follow from, when a message caused this handler
        /// call (empty: any).
        after: &'static [&'static str],
        /// Integer attributes (`index`, `term`...).
        attrs: Vec<(&'static str, i64)>,
    },
}

impl<Q: Process> Effect<Q> {
    /// Maps a nested process's effect ([`Context::nested`]) into the effect of `P`
    /// that holds it: messages by `msg`, timer tokens by `timer`, and a client reply
    /// by `reply`, which may also turn it into another effect (a message to a node
    /// that asked) or drop it (`None`). Storage, trace and span effects pass as they
    /// are.
    pub fn lift<P: Process>(
        self,
        msg: impl FnOnce(Q::Message) -> P::Message,
        timer: impl FnOnce(Q::Timer) -> P::Timer,
        reply: impl FnOnce(RequestId, Q::Response) -> Option<Effect<P>>,
    ) -> Option<Effect<P>> {
        Some(match self {
            Effect::Send { to, msg: m } => Effect::Send { to, msg: msg(m) },
            Effect::SetTimer {
                id,
                after,
                timer: t,
            } => Effect::SetTimer {
                id,
                after,
                timer: timer(t),
            },
            Effect::CancelTimer { id } => Effect::CancelTimer { id },
            Effect::Write { key, written } => Effect::Write { key, written },
            Effect::Sync { id, writes } => Effect::Sync { id, writes },
            Effect::Abort { reason } => Effect::Abort { reason },
            Effect::Reply { id, response } => return reply(id, response),
            Effect::Trace { line } => Effect::Trace { line },
            Effect::Sometimes { name } => Effect::Sometimes { name },
            Effect::Span {
                op,
                name,
                after,
                attrs,
            } => Effect::Span {
                op,
                name,
                after,
                attrs,
            },
        })
    }
}

/// What a handler can see and do. Built by the driver (or a unit test) per step.
pub struct Context<'a, P: Process> {
    id: NodeId,
    nodes: usize,
    now: Duration,
    wall: Duration,
    rng: &'a mut ChaCha8Rng,
    storage: &'a mut Storage<P::Record>,
    next_timer: &'a mut u64,
    effects: &'a mut Vec<Effect<P>>,
    /// Whether [`Context::span`] records (the driver's run is recording).
    spans: bool,
}

impl<'a, P: Process> Context<'a, P> {
    /// `now` is the process's monotonic clock (the wall clock reads the same until
    /// [`Context::with_wall_clock`]); `next_timer` is the incarnation's counter for
    /// timer and sync ids.
    pub fn new(
        id: NodeId,
        nodes: usize,
        now: Duration,
        rng: &'a mut ChaCha8Rng,
        storage: &'a mut Storage<P::Record>,
        next_timer: &'a mut u64,
        effects: &'a mut Vec<Effect<P>>,
    ) -> Self {
        assert!(id < nodes, "node {id} outside a cluster of {nodes}");
        Context {
            id,
            nodes,
            now,
            wall: now,
            rng,
            storage,
            next_timer,
            effects,
            spans: false,
        }
    }

    /// Switches [`Context::span`] on: the driver does when the run records its trace.
    pub fn with_spans(mut self, on: bool) -> Self {
        self.spans = on;
        self
    }

    /// Sets the wall clock (the monotonic clock plus the node's NTP offset).
    pub fn with_wall_clock(mut self, wall: Duration) -> Self {
        self.wall = wall;
        self
    }

    /// This node's id, in `0..nodes()`.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Cluster size; peers are `0..nodes()` except [`Context::id`].
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// All other nodes, in id order.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes).filter(move |&n| n != self.id)
    }

    /// The monotonic clock: time since the node's clock source started. It may drift
    /// against other nodes' clocks and stops while the clock source is frozen, but it
    /// never jumps back. Timers, timeouts and leases use it.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The wall clock (time of day): [`Context::now`] plus an offset that clock steps
    /// move forward or back. Not for measuring intervals. Never below zero: a clock
    /// stepped back before the epoch reads zero.
    pub fn wall_clock(&self) -> Duration {
        self.wall
    }

    /// This node's random stream, derived from the run's seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Durable storage as this process sees it, unsynced writes included.
    pub fn storage(&self) -> &Storage<P::Record> {
        self.storage
    }

    /// Sends `msg` to node `to` through the simulated network, which may delay, drop,
    /// duplicate or reorder it as the scenario says. Sending to oneself is a
    /// programmer error (it panics).
    pub fn send(&mut self, to: NodeId, msg: P::Message) {
        assert!(
            to < self.nodes,
            "send to node {to} outside a cluster of {}",
            self.nodes
        );
        assert_ne!(to, self.id, "a process does not send to itself");
        self.effects.push(Effect::Send { to, msg });
    }

    /// Sends a copy of `msg` to every peer.
    pub fn broadcast(&mut self, msg: P::Message) {
        for to in (0..self.nodes).filter(|&n| n != self.id) {
            self.effects.push(Effect::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Fires `timer` once, `after` from now on the monotonic clock.
    pub fn set_timer(&mut self, after: Duration, timer: P::Timer) -> TimerId {
        *self.next_timer += 1;
        let id = TimerId(*self.next_timer);
        self.effects.push(Effect::SetTimer { id, after, timer });
        id
    }

    /// Cancelling a timer that already fired or was cancelled is a no-op.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.effects.push(Effect::CancelTimer { id });
    }

    /// Writes to the unsynced tail: readable at once, lost by a crash until [`Context::sync`].
    pub fn write(&mut self, key: impl Into<String>, record: P::Record) {
        let key = key.into();
        self.storage.write(key.clone(), Some(record));
        self.effects.push(Effect::Write { key, written: true });
    }

    /// Removes `key`, in the unsynced tail like [`Context::write`].
    pub fn remove(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.storage.write(key.clone(), None);
        self.effects.push(Effect::Write {
            key,
            written: false,
        });
    }

    /// Starts a sync of every write so far; [`Process::on_synced`] reports its outcome.
    /// Until then a crash loses those writes (or, torn, keeps a prefix in write order).
    pub fn sync(&mut self) -> SyncId {
        *self.next_timer += 1;
        let id = SyncId(*self.next_timer);
        let writes = self.storage.start_sync();
        self.effects.push(Effect::Sync { id, writes });
        id
    }

    /// Stops this incarnation, as a process aborting on a fatal error: volatile state
    /// and unsynced writes are lost, and the node restarts from its disk after the
    /// scenario's `disk.abort_restart_ms`. The rest of this step's effects still happen
    /// (a real process's earlier sends are already on the wire); emit none after it.
    pub fn abort(&mut self, reason: impl Into<String>) {
        self.effects.push(Effect::Abort {
            reason: reason.into(),
        });
    }

    /// Answers client request `id` (at most once is the protocol's business; the
    /// client ignores answers it no longer waits for).
    pub fn reply(&mut self, id: RequestId, response: P::Response) {
        self.effects.push(Effect::Reply { id, response });
    }

    /// A line for the run's trace (and `faultline replay`'s log).
    pub fn trace(&mut self, line: impl Into<String>) {
        self.effects.push(Effect::Trace { line: line.into() });
    }

    /// Marks an interesting state as reached (e.g. `lease-read-refused`), in the
    /// spirit of Antithesis' `sometimes` assertions: a run counts each name's marks in
    /// the metric `sometimes.<name>`, a sweep reports the fraction of seeds that
    /// reached each, and a scenario's `[expect] sometimes` can demand a fraction. A
    /// mark changes nothing in the run (it is not in the trace or its hash). Names are
    /// kebab-case and listed in the protocol's `System::sometimes`.
    pub fn sometimes(&mut self, name: &'static str) {
        self.effects.push(Effect::Sometimes { name });
    }

    /// Runs `step` on a context for `Q`, a process nested inside this one (etcd's
    /// server holds a Raft node and its lessor): the same node, clocks, RNG, storage
    /// and timer-id counter, so `Q`'s writes, syncs and timer ids are this process's.
    /// Returns what `step` returned and `Q`'s effects, in order, which the caller
    /// hands on with [`Context::emit`] after mapping them ([`Effect::lift`]).
    pub fn nested<Q, R>(
        &mut self,
        step: impl FnOnce(&mut Context<'_, Q>) -> R,
    ) -> (R, Vec<Effect<Q>>)
    where
        Q: Process<Record = P::Record>,
    {
        let mut effects = Vec::new();
        let mut ctx = Context {
            id: self.id,
            nodes: self.nodes,
            now: self.now,
            wall: self.wall,
            rng: &mut *self.rng,
            storage: &mut *self.storage,
            next_timer: &mut *self.next_timer,
            effects: &mut effects,
            spans: self.spans,
        };
        let out = step(&mut ctx);
        (out, effects)
    }

    /// Hands on an effect, as a nested process produced it ([`Context::nested`]).
    /// Storage effects must come from a nested step on this context: the storage
    /// already holds the writes they describe.
    pub fn emit(&mut self, effect: Effect<P>) {
        self.effects.push(effect);
    }

    /// Whether [`Context::span`] records in this step: a protocol may skip work that
    /// only feeds spans when it does not.
    pub fn spans_enabled(&self) -> bool {
        self.spans
    }

    /// Records a step of client operation `op` for its request trace (see
    /// [`crate::spans`]): `name` is the step (`appended`), `attrs` its integer
    /// attributes (`[("index", 7), ("term", 2)]`). The driver gives it a parent from
    /// what caused this handler call and an end (the node's next step of the same
    /// operation). Like [`Context::sometimes`] it changes nothing in the run; it is a
    /// no-op unless the run records.
    pub fn span(&mut self, op: OpId, name: &'static str, attrs: &[(&'static str, i64)]) {
        self.span_after(op, name, &[], attrs);
    }

    /// [`Context::span`] for a step that a message carries on from particular steps
    /// at its sender: when a message caused this handler call, the parent is the
    /// sender's latest span named in `after` before it sent the message (Raft: a
    /// follower's `replicated` follows the leader's `appended`, not its later
    /// `answered`). Empty `after` is [`Context::span`].
    pub fn span_after(
        &mut self,
        op: OpId,
        name: &'static str,
        after: &'static [&'static str],
        attrs: &[(&'static str, i64)],
    ) {
        if self.spans {
            let attrs = attrs.to_vec();
            self.effects.push(Effect::Span {
                op,
                name,
                after,
                attrs,
            });
        }
    }
}

/// Messages and replies held until the writes they depend on are durable: the
/// persist-before-send rule (Raft §5, "respond to RPCs ... after updating stable
/// storage"; etcd-io/raft's `Ready` contract) under asynchronous syncs.
///
/// Each step, [`DurableOutbox::flush`] holds the step's output until a sync covering
/// the step's writes completes; output of a step that wrote nothing waits behind any
/// sync still in flight, so nothing is sent before state it may reflect is durable,
/// and output leaves in the order it was produced. Group commit: at most one sync is
/// in flight; writes made meanwhile wait, with their output, for the next one, which
/// starts when the current one completes (as etcd-raft's storage loop batches
/// `Ready`s). Volatile: a crash drops what is held, as it would a process's buffers.
#[derive(Debug)]
pub struct DurableOutbox<M, R> {
    /// Output produced in the current step.
    sends: Vec<(NodeId, M)>,
    replies: Vec<(RequestId, R)>,
    /// Held output, oldest first, each behind the sync it waits for (`None`: the next
    /// sync, not started yet; only the last entry can be that).
    held: std::collections::VecDeque<Held<M, R>>,
}

#[derive(Debug)]
struct Held<M, R> {
    sync: Option<SyncId>,
    sends: Vec<(NodeId, M)>,
    replies: Vec<(RequestId, R)>,
}

/// What a step's output waits for, from [`DurableOutbox::flush`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waits {
    /// Nothing: it was emitted.
    Nothing,
    /// This sync, in flight.
    Sync(SyncId),
    /// The next sync, which starts when the one in flight completes.
    NextSync,
}

/// Most held batches a [`DurableOutbox`] keeps: a disk that falls this far behind is
/// stalled, and the process should stop producing output.
pub const OUTBOX_SYNCS_MAX: usize = 4_096;

impl<M, R> Default for DurableOutbox<M, R> {
    fn default() -> Self {
        DurableOutbox {
            sends: Vec::new(),
            replies: Vec::new(),
            held: std::collections::VecDeque::new(),
        }
    }
}

impl<M, R> DurableOutbox<M, R> {
    /// Queues a message for node `to`; it leaves at a later [`DurableOutbox::flush`]
    /// once what it may depend on is durable.
    pub fn send(&mut self, to: NodeId, msg: M) {
        self.sends.push((to, msg));
    }

    /// Queues an answer to client request `id`, released like [`DurableOutbox::send`].
    pub fn reply(&mut self, id: RequestId, response: R) {
        self.replies.push((id, response));
    }

    /// Output of the current step, not yet flushed.
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.replies.is_empty()
    }

    /// Ends a step: emits its output at once if nothing it may depend on is still
    /// unsynced, or holds it behind the sync that will cover its writes (starting
    /// one if none is in flight).
    pub fn flush<P>(&mut self, ctx: &mut Context<'_, P>) -> Waits
    where
        P: Process<Message = M, Response = R>,
    {
        if ctx.storage().writes_not_syncing() == 0 && self.held.is_empty() {
            // The common case: nothing unsynced; the buffers keep their capacity.
            Self::emit(ctx, self.sends.drain(..), self.replies.drain(..));
            return Waits::Nothing;
        }
        let sends = std::mem::take(&mut self.sends);
        let replies = std::mem::take(&mut self.replies);
        match self.held.back_mut() {
            // No new writes, or new writes joining the group that waits for the next
            // sync: the output waits with the last batch.
            Some(last) if ctx.storage().writes_not_syncing() == 0 || last.sync.is_none() => {
                last.sends.extend(sends);
                last.replies.extend(replies);
                last.sync.map_or(Waits::NextSync, Waits::Sync)
            }
            // A sync is in flight: the next one starts when it completes.
            Some(_) => {
                assert!(
                    self.held.len() < OUTBOX_SYNCS_MAX,
                    "the disk fell too far behind"
                );
                self.held.push_back(Held {
                    sync: None,
                    sends,
                    replies,
                });
                Waits::NextSync
            }
            None => {
                let sync = ctx.sync();
                self.held.push_back(Held {
                    sync: Some(sync),
                    sends,
                    replies,
                });
                Waits::Sync(sync)
            }
        }
    }

    /// Emits the current step's output at once, before the writes it may depend on
    /// are durable: deliberately unsafe, for the bugs that teach why. With
    /// `start_sync`, a sync of the writes so far starts now; without, they wait for a
    /// later step's sync. Returns the sync it started, if any.
    pub fn flush_early<P>(&mut self, ctx: &mut Context<'_, P>, start_sync: bool) -> Option<SyncId>
    where
        P: Process<Message = M, Response = R>,
    {
        let mut started = None;
        if start_sync && ctx.storage().writes_not_syncing() > 0 {
            let sync = ctx.sync();
            match self.held.back_mut() {
                Some(last) if last.sync.is_none() => last.sync = Some(sync),
                _ => self.held.push_back(Held {
                    sync: Some(sync),
                    sends: Vec::new(),
                    replies: Vec::new(),
                }),
            }
            started = Some(sync);
        }
        Self::emit(ctx, self.sends.drain(..), self.replies.drain(..));
        started
    }

    /// The usual [`Process::on_synced`]: on success, [`DurableOutbox::synced`]; on an
    /// fsync error, crash-stop ([`Context::abort`]), the safe answer. Returns the sync
    /// it started, if any.
    pub fn on_synced<P>(
        &mut self,
        ctx: &mut Context<'_, P>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) -> Option<SyncId>
    where
        P: Process<Message = M, Response = R>,
    {
        match result {
            Ok(()) => self.synced(ctx, sync),
            Err(error) => {
                ctx.abort(format!("sync {} failed: {error:?}", sync.0));
                None
            }
        }
    }

    /// Sync `sync` completed successfully: emits everything that waited for it, and
    /// starts the next sync for the group that waited behind it. Returns that sync.
    pub fn synced<P>(&mut self, ctx: &mut Context<'_, P>, sync: SyncId) -> Option<SyncId>
    where
        P: Process<Message = M, Response = R>,
    {
        while let Some(held) = self.held.front() {
            match held.sync {
                Some(s) if s <= sync => {}
                _ => break,
            }
            let held = self.held.pop_front().expect("front exists");
            Self::emit(ctx, held.sends.into_iter(), held.replies.into_iter());
        }
        match self.held.front_mut() {
            Some(next) if next.sync.is_none() => {
                let started = ctx.sync();
                next.sync = Some(started);
                Some(started)
            }
            _ => None,
        }
    }

    fn emit<P>(
        ctx: &mut Context<'_, P>,
        sends: impl Iterator<Item = (NodeId, M)>,
        replies: impl Iterator<Item = (RequestId, R)>,
    ) where
        P: Process<Message = M, Response = R>,
    {
        for (to, msg) in sends {
            ctx.send(to, msg);
        }
        for (id, response) in replies {
            ctx.reply(id, response);
        }
    }
}

crate::impl_fingerprint!(struct RequestId { client, seq });
