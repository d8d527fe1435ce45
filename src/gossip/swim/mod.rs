//! The SWIM member as a sans-IO [`Process`]: failure detector (§3.1, §4.3),
//! suspicion with incarnations (§4.2), infection-style dissemination (§4.1), push-pull
//! anti-entropy, join through seeds, graceful leave, and Lifeguard's three parts.
//!
//! This module holds the member's state, its accessors for the omniscient view, and
//! the [`Process`] entry points that route each message and timer to the module
//! whose job it is:
//!
//! - `message`: the wire messages and their sizes;
//! - `probe`: direct and indirect probes (ping, ping-req, ack, nack);
//! - `select`: which members to probe and to gossip with;
//! - `suspicions`: suspicions running out into deaths, and their confirmations;
//! - `membership`: merging rumours into the view by precedence, and refuting;
//! - `dissemination`: piggybacking queued updates and the gossip timer;
//! - `push_pull`: full state exchange and partition repair;
//! - `lifecycle`: start, join through seeds, graceful leave;
//! - `lifeguard`: the Local Health Multiplier and the Buddy System;
//! - `metrics`: what the member records for checkers and metrics only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexSet;

use super::broadcast::BroadcastQueue;
use super::config::SwimConfig;
use super::member::{Member, MemberState, NodeMeta};
use crate::process::{Context, DurableOutbox, NodeId, Process, RequestId, SyncError, SyncId};

mod dissemination;
mod lifecycle;
mod lifeguard;
mod membership;
mod message;
mod metrics;
mod probe;
mod push_pull;
mod select;
mod suspicions;

pub use message::SwimMessage;

use message::message_bytes;
use metrics::Bookkeeping;
use probe::{Probe, Relay};
use suspicions::Suspicion;

/// Storage key of the member's own incarnation; synced before any message uses it.
pub const INCARNATION_KEY: &str = "swim/incarnation";

/// A member's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwimTimer {
    /// Time to join (`join_at_ms`), for a member that starts dormant.
    Join,
    /// End the probe period (suspecting a target that never acked) and start the next.
    ProbeTick,
    /// Probe `seq` had no direct ack in time: ask others to ping the target.
    ProbeTimeout {
        /// The probe's sequence number.
        seq: u64,
    },
    /// Lifeguard: the relay for ping-req `seq` had no ack from the target: send a nack.
    RelayNack {
        /// The ping-req's sequence number.
        seq: u64,
    },
    /// Forget the relay for ping-req `seq`.
    RelayExpire {
        /// The ping-req's sequence number.
        seq: u64,
    },
    /// The suspicion of `node` at `incarnation` ran out: declare it dead, unless it
    /// was refuted meanwhile.
    Suspicion {
        /// The suspect.
        node: NodeId,
        /// The incarnation it was suspected at.
        incarnation: u64,
    },
    /// Send the next round of gossip.
    Gossip,
    /// Exchange full state with a random member.
    PushPull,
    /// Time to leave the cluster (`leave_at_ms`).
    Leave,
}

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `join_at_ms`: silent.
    Dormant,
    /// A member: probes, gossips and answers.
    Active,
    /// Spreading its own leave; no longer probes or answers.
    Leaving,
    /// Gone: silent for good.
    Left,
}

/// Bugs that can be switched on to show a checker catching them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwimBugs {
    /// Refute a suspicion without raising the incarnation.
    pub refute_same_incarnation: bool,
    /// Let Alive clear a Suspect of the same incarnation (breaks precedence).
    pub alive_overrides_suspect: bool,
}

/// One SWIM member with Lifeguard's extensions: it probes a member per period
/// (directly, then through others), spreads membership updates by piggybacking and
/// gossip, suspects before declaring dead, and refutes suspicions of itself.
pub struct SwimProcess {
    cfg: Arc<SwimConfig>,
    id: NodeId,
    nodes: usize,
    meta: Arc<NodeMeta>,
    bugs: SwimBugs,
    phase: Phase,
    /// This observer's view, indexed by member id; `None` = never heard of.
    members: Vec<Option<Member>>,
    /// Known members other than self that are alive or suspect.
    /// Insertion-ordered, so the random pick by position is deterministic; removal
    /// swaps the last id into the gap (O(1)).
    /// At most one entry per member of the cluster.
    live: IndexSet<NodeId>,
    /// The round-robin probe order: each member at most once (`in_probe_list` guards
    /// every insertion), so at most `nodes` entries.
    probe_list: Vec<NodeId>,
    in_probe_list: Vec<bool>,
    probe_next: usize,
    probe: Option<Probe>,
    /// Ping-reqs served, by the relay ping's sequence number: at most
    /// `probe::RELAYS_MAX`, each forgotten at its `RelayExpire` timer.
    relays: BTreeMap<u64, Relay>,
    next_seq: u64,
    /// At most one suspicion per member (keyed by it).
    suspicions: BTreeMap<NodeId, Suspicion>,
    /// At most one update per member (see [`BroadcastQueue`]).
    broadcasts: BroadcastQueue,
    /// Lifeguard Local Health Multiplier, 0..=lhm_max.
    lhm: u32,
    /// Last time each member was told we hold it dead (rate limit).
    dead_notice_at: Vec<Option<Duration>>,
    /// Written by the protocol, read only by checkers and metrics.
    metrics: Bookkeeping,
    out: DurableOutbox<SwimMessage, ()>,
}

impl SwimProcess {
    /// Member `id` of a cluster of `nodes` with `cfg` and the bugs switched on; panics
    /// if `id` is not below `nodes`.
    pub fn new(cfg: Arc<SwimConfig>, id: NodeId, nodes: usize, bugs: SwimBugs) -> Self {
        assert!(id < nodes, "node {id} outside a cluster of {nodes}");
        let meta = cfg
            .node_spec(id)
            .map(|s| NodeMeta {
                tags: s.tags.clone(),
                services: s.services.clone(),
            })
            .unwrap_or_default();
        SwimProcess {
            id,
            nodes,
            meta: Arc::new(meta),
            bugs,
            phase: Phase::Dormant,
            members: vec![None; nodes],
            live: IndexSet::with_capacity(nodes),
            probe_list: Vec::new(),
            in_probe_list: vec![false; nodes],
            probe_next: 0,
            probe: None,
            relays: BTreeMap::new(),
            next_seq: 0,
            suspicions: BTreeMap::new(),
            broadcasts: BroadcastQueue::new(nodes),
            lhm: 0,
            dead_notice_at: vec![None; nodes],
            metrics: Bookkeeping::default(),
            out: DurableOutbox::default(),
            cfg,
        }
    }

    // ---- accessors (the omniscient view the checkers and scenarios read; each
    // module adds those about the state it owns) ----

    /// This member's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The cluster's SWIM configuration.
    pub fn config(&self) -> &SwimConfig {
        &self.cfg
    }

    /// Dormant, active or leaving.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The member's own incarnation.
    pub fn incarnation(&self) -> u64 {
        self.members[self.id]
            .as_ref()
            .map(|m| m.incarnation)
            .unwrap_or(0)
    }

    /// This observer's record of `node`.
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members[node].as_ref()
    }

    /// Every member this observer knows of: id → (state, incarnation, metadata).
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
    }

    /// Members this observer holds alive or suspect offering `service`.
    pub fn providers<'a>(&'a self, service: &'a str) -> impl Iterator<Item = NodeId> + 'a {
        self.members().filter_map(move |(i, m)| {
            let offers = m
                .meta
                .as_ref()
                .is_some_and(|meta| meta.services.iter().any(|s| s == service));
            (offers && !m.state.is_down()).then_some(i)
        })
    }

    /// This member's own metadata (tags, services), as it advertises them.
    pub fn meta(&self) -> &Arc<NodeMeta> {
        &self.meta
    }

    /// Members this observer holds alive or suspect, self included.
    pub fn estimated_size(&self) -> usize {
        self.live.len() + 1
    }

    /// Queues `msg` for `to`; it leaves once the step's writes are synced.
    fn send(&mut self, _ctx: &mut Context<'_, Self>, to: NodeId, msg: SwimMessage) {
        self.metrics.on_send(message_bytes(&msg));
        self.out.send(to, msg);
    }
}

impl Process for SwimProcess {
    type Message = SwimMessage;
    type Timer = SwimTimer;
    type Request = ();
    type Response = ();
    type Record = u64;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.start(ctx);
        self.out.flush(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: SwimMessage) {
        self.message(ctx, from, msg);
        self.out.flush(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: SwimTimer) {
        self.timer(ctx, timer);
        self.out.flush(ctx);
    }

    fn on_request(&mut self, _ctx: &mut Context<'_, Self>, _id: RequestId, _req: ()) {}

    /// A completed sync releases what waited for it; on an fsync error the member
    /// stops (the default) and rejoins from its disk above every incarnation it kept.
    fn on_synced(
        &mut self,
        ctx: &mut Context<'_, Self>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) {
        self.out.on_synced(ctx, sync, result);
    }

    fn message_bytes(msg: &SwimMessage) -> usize {
        message_bytes(msg)
    }

    /// memberlist's transports: `probe` (ping, ack, nack, ping-req) and `gossip` go
    /// over UDP, `push-pull` (the full state sync) over TCP.
    fn message_class(msg: &SwimMessage) -> &'static str {
        message::class(msg)
    }

    /// The member's phase, whether it holds any member suspect, dead or left, and
    /// its Lifeguard local health (0, 1, 2-3, more): no incarnation or count.
    fn coverage(&self) -> Option<u64> {
        let phase: u64 = match self.phase() {
            Phase::Dormant => 0,
            Phase::Active => 1,
            Phase::Leaving => 2,
            Phase::Left => 3,
        };
        let holds = |s: MemberState| self.members().any(|(_, m)| m.state == s);
        let lhm: u64 = match self.lhm() {
            0 => 0,
            1 => 1,
            2 | 3 => 2,
            _ => 3,
        };
        let bits = [
            holds(MemberState::Suspect),
            holds(MemberState::Dead),
            holds(MemberState::Left),
        ];
        let state = bits
            .iter()
            .enumerate()
            .fold(phase | lhm << 2, |acc, (i, &b)| {
                acc | (u64::from(b) << (4 + i))
            });
        Some(state)
    }

    fn message_classes() -> &'static [&'static str] {
        &["probe", "gossip", "push-pull"]
    }
}

/// The handlers; the [`Process`] impl wraps each so that its output waits for the
/// writes before it.
impl SwimProcess {
    fn message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: SwimMessage) {
        self.begin_step(ctx.now());
        if self.phase != Phase::Active || from >= self.nodes || from == self.id {
            return;
        }
        let (updates, rest) = match msg {
            SwimMessage::Ping { seq, updates } => (
                updates,
                Some(SwimMessage::Ping {
                    seq,
                    updates: Vec::new(),
                }),
            ),
            SwimMessage::Ack { seq, updates } => (
                updates,
                Some(SwimMessage::Ack {
                    seq,
                    updates: Vec::new(),
                }),
            ),
            SwimMessage::Nack { seq, updates } => (
                updates,
                Some(SwimMessage::Nack {
                    seq,
                    updates: Vec::new(),
                }),
            ),
            SwimMessage::PingReq {
                seq,
                target,
                updates,
            } => (
                updates,
                Some(SwimMessage::PingReq {
                    seq,
                    target,
                    updates: Vec::new(),
                }),
            ),
            SwimMessage::Gossip { updates } => (updates, None),
            SwimMessage::PushPull { reply, members } => {
                self.on_push_pull(ctx, from, reply, members);
                self.notify_if_dead(ctx, from);
                return;
            }
        };
        // Bounded by what a sender may piggyback; a larger batch is malformed input.
        for u in updates.into_iter().take(self.cfg.max_piggyback.max(1) + 1) {
            if u.node < self.nodes {
                self.merge(ctx, u);
            }
        }
        match rest {
            Some(SwimMessage::Ping { seq, .. }) => {
                let updates = self.updates_for(from);
                self.send(ctx, from, SwimMessage::Ack { seq, updates });
            }
            Some(SwimMessage::Ack { seq, .. }) => self.on_ack(ctx, seq),
            Some(SwimMessage::Nack { seq, .. }) => self.on_nack(seq),
            Some(SwimMessage::PingReq { seq, target, .. }) => {
                self.on_ping_req(ctx, from, seq, target)
            }
            _ => {}
        }
        self.notify_if_dead(ctx, from);
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, timer: SwimTimer) {
        self.begin_step(ctx.now());
        match timer {
            SwimTimer::Join => {
                if self.phase == Phase::Dormant {
                    self.join(ctx);
                }
            }
            SwimTimer::ProbeTick => self.on_probe_tick(ctx),
            SwimTimer::ProbeTimeout { seq } => {
                if self.phase == Phase::Active {
                    self.on_probe_timeout(ctx, seq);
                }
            }
            SwimTimer::RelayNack { seq } => {
                if self.phase == Phase::Active {
                    self.on_relay_nack(ctx, seq);
                }
            }
            SwimTimer::RelayExpire { seq } => self.on_relay_expire(seq),
            SwimTimer::Suspicion { node, incarnation } => {
                if self.phase == Phase::Active {
                    self.on_suspicion_timer(ctx, node, incarnation);
                }
            }
            SwimTimer::Gossip => self.on_gossip_tick(ctx),
            SwimTimer::PushPull => self.on_push_pull_tick(ctx),
            SwimTimer::Leave => self.on_leave(ctx),
        }
    }
}
