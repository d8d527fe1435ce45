//! The process boundary: protocols are pure state machines.
//!
//! A [`Process`] never touches a runtime, a clock, a socket, a file or a global RNG.
//! Each handler gets a [`Context`] that carries the inputs it may read (its node id,
//! its *local* clock, a seeded RNG, its durable storage) and collects the effects it
//! wants carried out, as data: messages to send, timers to set or cancel, writes and
//! syncs, replies to clients, trace lines. The simulation driver feeds inputs and
//! carries out effects; a unit test can do the same by hand.
//!
//! A handler runs atomically in simulated time: no fault can interleave with it. A
//! crash therefore loses exactly what was written but not [`Context::sync`]ed before
//! the crash, whatever order the effects of one step came in.

use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::fingerprint::Fingerprint;
use crate::storage::Storage;

/// Index of a server process in its cluster: `0..nodes`.
pub type NodeId = usize;

/// Index of a simulated client: `0..clients`.
pub type ClientId = usize;

/// A timer handle. Ids are unique within one incarnation of a process, so a timer
/// set before a crash can never fire after the restart, and a cancelled id never fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// Identifies one client request: the client and that client's sequence number.
/// A process answers it with [`Context::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RequestId {
    pub client: ClientId,
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
    /// A timer set by this incarnation fired (at its local clock's deadline).
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Self::Timer);
    /// A client request; answer it (now or later) with [`Context::reply`], or not at all.
    fn on_request(&mut self, ctx: &mut Context<'_, Self>, id: RequestId, req: Self::Request);

    /// Approximate wire size of a message, for the bytes-per-operation metrics.
    fn message_bytes(_msg: &Self::Message) -> usize {
        64
    }
}

/// An effect a handler asks for. The driver carries them out in order.
#[derive(Debug)]
pub enum Effect<P: Process> {
    Send {
        to: NodeId,
        msg: P::Message,
    },
    SetTimer {
        id: TimerId,
        after: Duration,
        timer: P::Timer,
    },
    CancelTimer {
        id: TimerId,
    },
    /// A write (or removal, `written: false`) that reached the unsynced tail of storage.
    Write {
        key: String,
        written: bool,
    },
    /// Everything written so far is durable.
    Sync,
    Reply {
        id: RequestId,
        response: P::Response,
    },
    Trace {
        line: String,
    },
}

/// What a handler can see and do. Built by the driver (or a unit test) per step.
pub struct Context<'a, P: Process> {
    id: NodeId,
    nodes: usize,
    now: Duration,
    rng: &'a mut ChaCha8Rng,
    storage: &'a mut Storage<P::Record>,
    next_timer: &'a mut u64,
    effects: &'a mut Vec<Effect<P>>,
}

impl<'a, P: Process> Context<'a, P> {
    /// `now` is the process's local clock; `next_timer` is the incarnation's timer id counter.
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
            rng,
            storage,
            next_timer,
            effects,
        }
    }

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

    /// The local clock: it may be offset from and drift against other nodes' clocks.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// This node's random stream, derived from the run's seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Durable storage as this process sees it, unsynced writes included.
    pub fn storage(&self) -> &Storage<P::Record> {
        self.storage
    }

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

    /// Fires `timer` once, `after` from now by the local clock.
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

    pub fn remove(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.storage.write(key.clone(), None);
        self.effects.push(Effect::Write {
            key,
            written: false,
        });
    }

    /// Makes every write so far durable.
    pub fn sync(&mut self) {
        self.storage.sync();
        self.effects.push(Effect::Sync);
    }

    pub fn reply(&mut self, id: RequestId, response: P::Response) {
        self.effects.push(Effect::Reply { id, response });
    }

    /// A line for the run's trace (and `faultline replay`'s log).
    pub fn trace(&mut self, line: impl Into<String>) {
        self.effects.push(Effect::Trace { line: line.into() });
    }
}

crate::impl_fingerprint!(struct RequestId { client, seq });
