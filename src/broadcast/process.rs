//! The broadcast process: eager reliable broadcast with acknowledgements.
//!
//! A node that gets a value (from a client, or first from a peer) stores it durably,
//! then sends it to every peer and keeps resending it to each peer that has not
//! acknowledged it. Relaying on first receipt is what makes the broadcast *reliable*:
//! once any correct node holds a value, every node that stays reachable gets it, even
//! if the node that first accepted it crashes.
//!
//! What survives a crash is the delivered set (in storage). What does not is who has
//! acknowledged what: a restarted node resends everything, and receivers treat
//! duplicates as no-ops that they acknowledge again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use std::sync::Arc;

use serde::Deserialize;

use crate::process::{
    Context, DurableOutbox, NodeId, Process, RequestId, SyncError, SyncId, TimerId, Waits,
    OUTBOX_SYNCS_MAX,
};

/// The scenario's `[cluster.config]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Delay before the first resend to a peer that has not acknowledged.
    pub retransmit_ms: u64,
    /// The delay doubles on every resend round without an ack, up to this cap, so a
    /// long-partitioned peer costs little yet hears from us soon after the heal.
    pub retransmit_ms_max: u64,
    /// Values a node stores at most; broadcasts beyond that are refused with `Full`.
    pub max_values: usize,
    /// Messages sent to one peer per resend round at most: a peer coming back from a
    /// long partition is caught up over several rounds instead of in one burst.
    pub retransmit_batch_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retransmit_ms: 50,
            retransmit_ms_max: 800,
            max_values: 10_000,
            retransmit_batch_max: 64,
        }
    }
}

/// Deliberate mistakes a scenario can switch on (see [`super::Broadcast`]'s bugs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Reply `Ok` before the value is synced; the sync waits for a later step that
    /// syncs anyway (a resend tick, or a new value from a peer).
    pub ack_before_sync: bool,
    /// Send each value once and never resend: a lost message is lost for good.
    pub no_retransmit: bool,
}

/// A client's request to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Broadcast `value`. `id` must be unique per value (the client and its sequence
    /// number); asking again with a known id is a no-op that is acknowledged again.
    Broadcast {
        /// The value's id.
        id: u64,
        /// The value.
        value: String,
    },
    /// Which ids this node has delivered.
    Read,
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The value is durably stored on the node that answered.
    Ok,
    /// The node holds `max_values` values and refused this one: it did not take effect.
    Full,
    /// The ids this node has delivered (the answer to [`Request::Read`]).
    Values(BTreeSet<u64>),
}

/// What nodes send each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "Deliver this value." It also tells the receiver that the sender holds it.
    Value {
        /// The value's id.
        id: u64,
        /// The value, shared: sending it to every peer, storing it and delivering it
        /// bump a reference count instead of copying the string.
        value: Arc<str>,
    },
    /// "I hold `id` durably": stop sending it to me.
    Ack {
        /// The value's id.
        id: u64,
    },
}

/// A node's timers.
#[derive(Clone, Debug)]
pub enum Timer {
    /// Resend what `peer` has not acknowledged.
    Retransmit {
        /// The peer.
        peer: NodeId,
    },
}

/// Where a delivery came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A client's request.
    Client,
    /// A peer's message.
    Peer(NodeId),
    /// Found in storage when this incarnation started.
    Recovered,
}

/// One delivery event: checkers read these to learn what changed since their last look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The value's id.
    pub id: u64,
    /// Where it came from.
    pub source: Source,
}

/// What one node knows about one peer. Volatile: rebuilt from storage on restart.
#[derive(Debug)]
struct Peer {
    /// Ids we hold that the peer has not acknowledged. Invariant: a subset of `delivered`,
    /// so at most `max_values`.
    unacked: BTreeSet<u64>,
    /// Delay of the next resend round: `retransmit_ms ..= retransmit_ms_max`.
    backoff: Duration,
    /// The pending resend timer, if any: at most one per peer, and none once nothing
    /// is owed (a cancelled timer never fires).
    timer: Option<TimerId>,
}

const KEY_PREFIX: &str = "value/";

/// Zero-padded, so that storage's key order is id order.
fn key(id: u64) -> String {
    format!("{KEY_PREFIX}{id:020}")
}

/// One node of the reliable broadcast: it stores each value it delivers, acknowledges
/// it once durable, and resends to every peer until that peer acknowledges it.
#[derive(Debug)]
pub struct BroadcastProcess {
    config: Config,
    bugs: Bugs,
    started: bool,
    /// Every value delivered here, by id. Invariant: each is in storage under `key(id)`,
    /// with a sync started at the end of the step that delivered it.
    delivered: BTreeMap<u64, Arc<str>>,
    /// This incarnation's deliveries in order, recovered ones first; one per id, so at
    /// most `max_values` (`deliver` asserts it).
    deliveries: Vec<Delivery>,
    /// Indexed by node id; our own slot is unused. Empty until `on_start`.
    peers: Vec<Peer>,
    /// Values resent by this incarnation (first sends not counted).
    retransmits: u64,
    /// Acks and replies, each emitted once the value it promises is durable.
    out: DurableOutbox<Message, Response>,
    /// Deliveries of the current step, acknowledged once its output leaves. Emptied at
    /// the end of every step.
    delivered_in_step: Vec<Delivery>,
    /// Deliveries whose acknowledgement waits for a sync, oldest first (`None`: the
    /// next sync, not started yet). One entry per batch `out` holds behind a sync, so
    /// at most [`OUTBOX_SYNCS_MAX`]; each delivery appears once.
    awaiting: std::collections::VecDeque<(Option<SyncId>, Vec<Delivery>)>,
    /// Deliveries whose acknowledgement (to a client or a peer) left in the latest step.
    /// Emptied at the start of every step.
    acknowledged_in_step: Vec<Delivery>,
}

impl BroadcastProcess {
    /// A fresh node with `config` and the bugs switched on; panics on a config that
    /// validation refuses.
    pub fn new(config: Config, bugs: Bugs) -> Self {
        assert!(config.retransmit_ms > 0 && config.retransmit_ms <= config.retransmit_ms_max);
        assert!(config.max_values > 0 && config.retransmit_batch_max > 0);
        BroadcastProcess {
            config,
            bugs,
            started: false,
            delivered: BTreeMap::new(),
            deliveries: Vec::new(),
            peers: Vec::new(),
            retransmits: 0,
            out: DurableOutbox::default(),
            delivered_in_step: Vec::new(),
            awaiting: std::collections::VecDeque::new(),
            acknowledged_in_step: Vec::new(),
        }
    }

    /// Deliveries whose acknowledgement (to a client or a peer) left this node in the
    /// latest step: from then on a crash must not lose them.
    pub fn acknowledged_in_step(&self) -> &[Delivery] {
        &self.acknowledged_in_step
    }

    fn begin(&mut self) {
        self.acknowledged_in_step.clear();
        assert!(self.delivered_in_step.is_empty() && self.out.is_empty());
    }

    /// Ends a step: its acks and replies wait for the sync of its writes (the
    /// `ack-before-sync` bug sends a client's `Ok` at once instead).
    fn finish(&mut self, ctx: &mut Context<'_, Self>, early: bool) {
        let ids = std::mem::take(&mut self.delivered_in_step);
        let waits = match early {
            true => {
                self.out.flush_early(ctx, false);
                Waits::Nothing
            }
            false => self.out.flush(ctx),
        };
        let sync = match waits {
            Waits::Nothing => return self.acknowledged_in_step.extend(ids),
            Waits::Sync(sync) => Some(sync),
            Waits::NextSync => None,
        };
        match self.awaiting.back_mut() {
            Some((last, waiting)) if *last == sync => waiting.extend(ids),
            _ => {
                assert!(
                    self.awaiting.len() < OUTBOX_SYNCS_MAX,
                    "more than {OUTBOX_SYNCS_MAX} acknowledgement groups wait for syncs"
                );
                self.awaiting.push_back((sync, ids));
            }
        }
    }

    /// False until `on_start` has recovered storage: a view of an unstarted node says
    /// nothing about what it holds.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Delivered values by id.
    pub fn delivered(&self) -> &BTreeMap<u64, Arc<str>> {
        &self.delivered
    }

    /// This incarnation's deliveries, in order, recovered ones first.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// The bugs this process was built with.
    pub fn bugs(&self) -> Bugs {
        self.bugs
    }

    /// Values this incarnation resent.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Acknowledgements still awaited, over all peers.
    pub fn unacked(&self) -> usize {
        self.peers.iter().map(|p| p.unacked.len()).sum()
    }

    /// Records a delivery event without the state change it should come with: lets a
    /// test hand a checker a view that a correct process never produces.
    #[cfg(test)]
    pub(super) fn forge_delivery(&mut self, delivery: Delivery) {
        self.deliveries.push(delivery);
    }

    fn deliver(&mut self, id: u64, value: Arc<str>, source: Source) {
        let previous = self.delivered.insert(id, value);
        assert!(previous.is_none(), "value {id} delivered twice");
        self.delivered_in_step.push(Delivery { id, source });
        assert!(self.delivered.len() <= self.config.max_values);
        self.deliveries.push(Delivery { id, source });
    }

    /// Sends a freshly delivered value to every peer but `holder` (who sent it to us),
    /// and keeps it owed to them until they acknowledge it.
    fn disseminate(
        &mut self,
        ctx: &mut Context<'_, Self>,
        id: u64,
        value: &Arc<str>,
        holder: Option<NodeId>,
    ) {
        for peer in 0..ctx.nodes() {
            if peer == ctx.id() || Some(peer) == holder {
                continue;
            }
            self.out.send(
                peer,
                Message::Value {
                    id,
                    value: Arc::clone(value),
                },
            );
            if !self.bugs.no_retransmit {
                self.peers[peer].unacked.insert(id);
                self.arm(ctx, peer);
            }
        }
    }

    /// Sets `peer`'s resend timer if something is owed to it and none is pending.
    fn arm(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        let state = &mut self.peers[peer];
        if state.unacked.is_empty() || state.timer.is_some() || self.bugs.no_retransmit {
            return;
        }
        state.timer = Some(ctx.set_timer(state.backoff, Timer::Retransmit { peer }));
    }

    /// `peer` holds `id`: stop owing it, and drop the timer once nothing is owed.
    fn acknowledged(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId, id: u64) {
        let state = &mut self.peers[peer];
        if !state.unacked.remove(&id) {
            return;
        }
        // The link works again: the next loss is retried promptly.
        state.backoff = Duration::from_millis(self.config.retransmit_ms);
        if state.unacked.is_empty() {
            if let Some(timer) = state.timer.take() {
                ctx.cancel_timer(timer);
            }
        }
    }
}

impl Process for BroadcastProcess {
    type Message = Message;
    type Timer = Timer;
    type Request = Request;
    type Response = Response;
    /// A delivered value, stored under `value/<id>`.
    type Record = Arc<str>;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.begin();
        self.start(ctx);
        self.finish(ctx, false);
    }

    fn on_request(&mut self, ctx: &mut Context<'_, Self>, request: RequestId, req: Request) {
        self.begin();
        self.request(ctx, request, req);
        self.finish(ctx, self.bugs.ack_before_sync);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Message) {
        self.begin();
        self.message(ctx, from, msg);
        self.finish(ctx, false);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        self.begin();
        self.timer(ctx, timer);
        self.finish(ctx, false);
    }

    /// A completed sync releases the acks and replies that waited for it; on an
    /// fsync error the node stops (the default) and recovers what its disk kept.
    fn on_synced(
        &mut self,
        ctx: &mut Context<'_, Self>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) {
        self.begin();
        if result.is_err() {
            self.out.on_synced(ctx, sync, result);
            return;
        }
        let next = self.out.synced(ctx, sync);
        // Pops each waiting group at most once: at most the queue's length.
        while self
            .awaiting
            .front()
            .is_some_and(|(s, _)| s.is_some_and(|s| s <= sync))
        {
            let (_, ids) = self.awaiting.pop_front().expect("front exists");
            self.acknowledged_in_step.extend(ids);
        }
        if let Some((waiting @ None, _)) = self.awaiting.front_mut() {
            *waiting = next;
        }
    }

    fn message_bytes(msg: &Message) -> usize {
        match msg {
            Message::Value { value, .. } => 16 + value.len(),
            Message::Ack { .. } => 16,
        }
    }

    fn message_class(msg: &Message) -> &'static str {
        match msg {
            Message::Value { .. } => "value",
            Message::Ack { .. } => "ack",
        }
    }

    fn message_classes() -> &'static [&'static str] {
        &["value", "ack"]
    }
}

/// The handlers; the [`Process`] impl wraps each so that its acks and replies wait
/// for the writes they promise.
impl BroadcastProcess {
    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        assert!(!self.started, "on_start runs once per incarnation");
        let backoff = Duration::from_millis(self.config.retransmit_ms);
        self.peers = (0..ctx.nodes())
            .map(|_| Peer {
                unacked: BTreeSet::new(),
                backoff,
                timer: None,
            })
            .collect();
        let recovered: Vec<(u64, Arc<str>)> = ctx
            .storage()
            .scan(KEY_PREFIX)
            .map(|(k, v)| {
                let id = k[KEY_PREFIX.len()..]
                    .parse()
                    .expect("a key this process wrote");
                (id, v.clone())
            })
            .collect();
        assert!(recovered.len() <= self.config.max_values);
        // Who acknowledged what died with the last incarnation: owe everything to
        // everyone again. Peers that already hold a value just acknowledge it again.
        let peers: Vec<NodeId> = ctx.peers().collect();
        for (id, value) in recovered {
            self.deliver(id, value, Source::Recovered);
            if !self.bugs.no_retransmit {
                for &peer in &peers {
                    self.peers[peer].unacked.insert(id);
                }
            }
        }
        for &peer in &peers {
            self.arm(ctx, peer);
        }
        self.started = true;
        ctx.trace(format!("recovered {} values", self.delivered.len()));
    }

    fn request(&mut self, ctx: &mut Context<'_, Self>, request: RequestId, req: Request) {
        let (id, value) = match req {
            Request::Read => {
                let ids = self.delivered.keys().copied().collect();
                self.out.reply(request, Response::Values(ids));
                return;
            }
            Request::Broadcast { id, value } => (id, Arc::<str>::from(value)),
        };
        if self.delivered.contains_key(&id) {
            self.out.reply(request, Response::Ok);
            return;
        }
        if self.delivered.len() >= self.config.max_values {
            self.out.reply(request, Response::Full);
            return;
        }
        ctx.write(key(id), value.clone());
        // The Ok waits for the write's sync: it promises the value survives a crash of
        // this node. The ack-before-sync bug answers from the page cache instead.
        self.out.reply(request, Response::Ok);
        self.deliver(id, value.clone(), Source::Client);
        self.disseminate(ctx, id, &value, None);
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Message) {
        match msg {
            Message::Value { id, value } => {
                // The sender holds the value: we need not send it there any more.
                self.acknowledged(ctx, from, id);
                if !self.delivered.contains_key(&id) {
                    if self.delivered.len() >= self.config.max_values {
                        // No ack: the sender keeps the value owed and may retry.
                        ctx.trace(format!("full: dropped value {id} from node {from}"));
                        return;
                    }
                    // The ack waits for the write's sync: it promises the value survives
                    // a crash.
                    ctx.write(key(id), value.clone());
                    self.deliver(id, value.clone(), Source::Peer(from));
                    self.disseminate(ctx, id, &value, Some(from));
                }
                // A duplicate is acknowledged again: our earlier ack may have been lost.
                self.out.send(from, Message::Ack { id });
            }
            Message::Ack { id } => self.acknowledged(ctx, from, id),
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, timer: Timer) {
        let Timer::Retransmit { peer } = timer;
        let max = Duration::from_millis(self.config.retransmit_ms_max);
        let state = &mut self.peers[peer];
        assert!(
            state.timer.is_some(),
            "a resend timer fired that was not set"
        );
        state.timer = None;
        let batch: Vec<u64> = state
            .unacked
            .iter()
            .take(self.config.retransmit_batch_max)
            .copied()
            .collect();
        state.backoff = (state.backoff * 2).min(max);
        for id in batch {
            let value = self.delivered.get(&id).expect("unacked ids are delivered");
            let msg = Message::Value {
                id,
                value: value.clone(),
            };
            self.out.send(peer, msg);
            self.retransmits += 1;
        }
        self.arm(ctx, peer);
    }
}

crate::impl_fingerprint!(enum Request {
    0 => Broadcast { id, value },
    1 => Read,
});

crate::impl_fingerprint!(enum Response {
    0 => Ok,
    1 => Full,
    2 => Values(ids),
});

crate::impl_fingerprint!(enum Message {
    0 => Value { id, value },
    1 => Ack { id },
});
