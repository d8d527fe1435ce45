//! The SWIM member as a sans-IO [`Process`]: failure detector (§3.1, §4.3),
//! suspicion with incarnations (§4.2), infection-style dissemination (§4.1), push-pull
//! anti-entropy, join through seeds, graceful leave, and Lifeguard's three parts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use super::broadcast::BroadcastQueue;
use super::config::{ProbeOrder, SwimConfig};
use super::member::{overrides, IdSet, Member, MemberState, NodeMeta, Update};
use super::suspicion::suspicion_timeout;
use crate::process::{
    Context, DurableOutbox, NodeId, Process, RequestId, SyncError, SyncId, TimerId,
};

/// Storage key of the member's own incarnation; synced before any message uses it.
pub const INCARNATION_KEY: &str = "swim/incarnation";

/// Most ping-req relays a member serves at once; further requests are dropped
/// (the prober then misses a nack and backs off, as intended under overload).
const RELAYS_MAX: usize = 1024;
/// Stall intervals remembered for the false-positive accounting.
const STALLS_MAX: usize = 64;

/// What members send each other (SWIM's ping, ack and ping-req, Lifeguard's nack,
/// memberlist's gossip and push-pull), each carrying membership updates piggybacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwimMessage {
    /// "Are you alive?" `seq` is the sender's probe (or relay) sequence number; acks
    /// echo it.
    Ping {
        /// The probe's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// "I am": the answer to a ping.
    Ack {
        /// The ping's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Lifeguard: a ping-req relay got no ack from the target in time.
    Nack {
        /// The ping-req's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// "Ping `target` for me": an indirect probe through this member.
    PingReq {
        /// The requester's probe sequence number.
        seq: u64,
        /// The member to ping.
        target: NodeId,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Updates alone, sent every gossip interval to a few random members.
    Gossip {
        /// Membership updates.
        updates: Vec<Update>,
    },
    /// Full state; the receiver answers with its own when `reply` is set.
    PushPull {
        /// Whether the receiver should answer with its own state.
        reply: bool,
        /// Every member the sender knows of.
        members: Vec<Update>,
    },
}

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

#[derive(Clone, Debug)]
struct Probe {
    target: NodeId,
    seq: u64,
    acked: bool,
    relays_asked: u32,
    nacks: u32,
}

#[derive(Clone, Debug)]
struct Relay {
    origin: NodeId,
    origin_seq: u64,
    acked: bool,
}

#[derive(Clone, Debug)]
struct Suspicion {
    incarnation: u64,
    started_at: Duration,
    /// The suspecter whose rumour started it: not an independent confirmation.
    first_from: NodeId,
    confirmers: BTreeSet<NodeId>,
    k: u64,
    min: Duration,
    max: Duration,
    timer: TimerId,
}

impl Suspicion {
    fn timeout(&self) -> Duration {
        suspicion_timeout(self.confirmers.len() as u64, self.k, self.min, self.max)
    }
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
    live: IdSet,
    probe_list: Vec<NodeId>,
    in_probe_list: Vec<bool>,
    probe_next: usize,
    probe: Option<Probe>,
    relays: BTreeMap<u64, Relay>,
    next_seq: u64,
    suspicions: BTreeMap<NodeId, Suspicion>,
    broadcasts: BroadcastQueue,
    /// Lifeguard Local Health Multiplier, 0..=lhm_max.
    lhm: u32,
    /// Last time each member was told we hold it dead (rate limit).
    dead_notice_at: Vec<Option<Duration>>,
    /// Members whose record changed in the current step, for the checkers.
    changed: Vec<NodeId>,
    messages_sent: u64,
    bytes_sent: u64,
    /// Probe periods begun (each with a ping to a target).
    probe_periods: u64,
    /// Verdicts this member reached itself in the current step (not heard as rumours):
    /// a suspicion at the end of a failed probe, a death when a suspicion timed out.
    declared: Vec<(NodeId, MemberState)>,
    refutations: u64,
    last_step_at: Option<Duration>,
    stalls: VecDeque<(Duration, Duration)>,
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
            live: IdSet::new(nodes),
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
            changed: Vec::new(),
            messages_sent: 0,
            bytes_sent: 0,
            probe_periods: 0,
            declared: Vec::new(),
            refutations: 0,
            last_step_at: None,
            stalls: VecDeque::new(),
            out: DurableOutbox::default(),
            cfg,
        }
    }

    // ---- accessors (the omniscient view the checkers and scenarios read) ----

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

    /// Lifeguard's Local Health Multiplier.
    pub fn lhm(&self) -> u32 {
        self.lhm
    }

    /// Messages this incarnation has sent.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Bytes this incarnation has sent, by [`Process::message_bytes`].
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Probe periods this incarnation has begun with a ping.
    pub fn probe_periods(&self) -> u64 {
        self.probe_periods
    }

    /// The target of the probe in progress, if any.
    pub fn probe_target(&self) -> Option<NodeId> {
        self.probe.as_ref().map(|p| p.target)
    }

    /// Verdicts this member reached itself in its last step: `(member, Suspect)` when
    /// a probe of it failed, `(member, Dead)` when its suspicion timed out here.
    pub fn declared(&self) -> &[(NodeId, MemberState)] {
        &self.declared
    }

    /// Suspicions of itself this incarnation refuted (by a higher incarnation).
    pub fn refutations(&self) -> u64 {
        self.refutations
    }

    /// The most times one update was sent by this member.
    pub fn max_update_transmits(&self) -> u32 {
        self.broadcasts.max_transmits()
    }

    /// Updates still queued for piggybacking.
    pub fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// Members whose record changed in the last step.
    pub fn changed(&self) -> &[NodeId] {
        &self.changed
    }

    /// Intervals of local time in which this member took no step although its
    /// timers were due (it was paused or starved): `(from, to)`.
    pub fn stalls(&self) -> impl Iterator<Item = &(Duration, Duration)> {
        self.stalls.iter()
    }

    /// Local time of this member's latest step.
    pub fn last_step_at(&self) -> Option<Duration> {
        self.last_step_at
    }

    /// The current suspicion timeout this observer applies to `node`, if suspected.
    pub fn suspicion_timeout_of(&self, node: NodeId) -> Option<Duration> {
        self.suspicions.get(&node).map(|s| s.timeout())
    }

    /// Number of independent confirmations gathered for a suspicion of `node`.
    pub fn confirmations_of(&self, node: NodeId) -> Option<usize> {
        self.suspicions.get(&node).map(|s| s.confirmers.len())
    }

    /// Probe scale (LHM + 1), 1 without Lifeguard LHA-Probe.
    pub fn probe_scale(&self) -> u32 {
        if self.cfg.lifeguard_lhm {
            self.lhm + 1
        } else {
            1
        }
    }

    /// Members this observer holds alive or suspect, self included.
    pub fn estimated_size(&self) -> usize {
        self.live.len() + 1
    }

    // ---- internals ----

    fn begin_step(&mut self, now: Duration) {
        self.changed.clear();
        self.declared.clear();
        // Timers fire at least every gossip interval while active: a gap of several
        // intervals means this member was not scheduled (paused, or overloaded).
        if let Some(last) = self.last_step_at {
            let threshold = self.cfg.gossip_interval() * 5;
            if self.phase == Phase::Active && now > last + threshold {
                if self.stalls.len() == STALLS_MAX {
                    self.stalls.pop_front();
                }
                self.stalls.push_back((last, now));
            }
        }
        self.last_step_at = Some(now);
    }

    fn send(&mut self, _ctx: &mut Context<'_, Self>, to: NodeId, msg: SwimMessage) {
        self.messages_sent += 1;
        self.bytes_sent += message_bytes(&msg) as u64;
        self.out.send(to, msg);
    }

    fn lhm_add(&mut self, delta: i64) {
        if !self.cfg.lifeguard_lhm {
            return;
        }
        let v = (self.lhm as i64 + delta).clamp(0, self.cfg.lhm_max as i64);
        self.lhm = v as u32;
    }

    fn retransmit_limit(&self) -> u32 {
        self.cfg.retransmit_limit(self.estimated_size())
    }

    fn queue(&mut self, update: Update) {
        let limit = self.retransmit_limit();
        self.broadcasts.push(update, limit);
    }

    /// Piggyback for a message to `to`: the Buddy System's suspicion first (Lifeguard
    /// §IV-C), then the least-sent pending updates.
    fn updates_for(&mut self, to: NodeId) -> Vec<Update> {
        let mut out = Vec::new();
        let mut skip = None;
        if self.cfg.lifeguard_buddy {
            if let Some(m) = &self.members[to] {
                if m.state == MemberState::Suspect {
                    out.push(Update {
                        node: to,
                        incarnation: m.incarnation,
                        state: MemberState::Suspect,
                        from: self.id,
                        meta: None,
                    });
                    skip = Some(to);
                }
            }
        }
        let room = self.cfg.max_piggyback.saturating_sub(out.len());
        self.broadcasts.take(room, skip, &mut out);
        out
    }

    fn self_update(&self, state: MemberState) -> Update {
        Update {
            node: self.id,
            incarnation: self.incarnation(),
            state,
            from: self.id,
            meta: (state == MemberState::Alive).then(|| self.meta.clone()),
        }
    }

    /// Writes the incarnation; the step's output (which may announce it) waits for
    /// the sync, so a restart never reuses an incarnation others have heard.
    fn persist_incarnation(&mut self, ctx: &mut Context<'_, Self>, inc: u64) {
        ctx.write(INCARNATION_KEY, inc);
    }

    fn set_self(&mut self, ctx: &mut Context<'_, Self>, state: MemberState, inc: u64) {
        let prev = self.members[self.id].as_ref().map(|m| m.incarnation);
        assert!(
            prev.is_none_or(|p| p <= inc),
            "own incarnation must not decrease"
        );
        self.members[self.id] = Some(Member {
            state,
            incarnation: inc,
            meta: Some(self.meta.clone()),
            changed_at: ctx.now(),
        });
        self.changed.push(self.id);
    }

    fn join(&mut self, ctx: &mut Context<'_, Self>) {
        assert_eq!(self.phase, Phase::Dormant);
        self.phase = Phase::Active;
        ctx.trace(format!(
            "swim: {} joins at incarnation {}",
            self.id,
            self.incarnation()
        ));
        let alive = self.self_update(MemberState::Alive);
        self.queue(alive);
        self.contact_seeds(ctx);
        let interval = self.cfg.probe_interval();
        // Random stagger so members do not probe in lock step.
        let stagger = Duration::from_millis(ctx.rng().gen_range(0..self.cfg.probe_interval_ms));
        ctx.set_timer(stagger.min(interval), SwimTimer::ProbeTick);
        ctx.set_timer(self.cfg.gossip_interval(), SwimTimer::Gossip);
        if self.cfg.push_pull_interval_ms > 0 {
            let first = ctx.rng().gen_range(0..self.cfg.push_pull_interval_ms);
            ctx.set_timer(Duration::from_millis(first), SwimTimer::PushPull);
        }
        if let Some(leave) = self.cfg.node_spec(self.id).and_then(|s| s.leave_at_ms) {
            let at = Duration::from_millis(leave);
            ctx.set_timer(at.saturating_sub(ctx.now()), SwimTimer::Leave);
        }
    }

    fn contact_seeds(&mut self, ctx: &mut Context<'_, Self>) {
        let seeds: Vec<NodeId> = self
            .cfg
            .seeds
            .iter()
            .copied()
            .filter(|&s| s != self.id)
            .collect();
        for s in seeds {
            let members = self.full_state();
            self.send(
                ctx,
                s,
                SwimMessage::PushPull {
                    reply: true,
                    members,
                },
            );
        }
    }

    fn full_state(&self) -> Vec<Update> {
        self.members()
            .map(|(node, m)| Update {
                node,
                incarnation: m.incarnation,
                state: m.state,
                from: self.id,
                meta: m.meta.clone(),
            })
            .collect()
    }

    /// Applies one rumour to the view, by precedence.
    fn merge(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        assert!(
            update.node < self.nodes,
            "update about node {} outside the cluster",
            update.node
        );
        if update.node == self.id {
            self.merge_about_self(ctx, &update);
            return;
        }
        let cur = self.members[update.node].as_ref();
        let same_inc_alive_bug = self.bugs.alive_overrides_suspect
            && update.state == MemberState::Alive
            && cur.is_some_and(|m| {
                m.state == MemberState::Suspect && m.incarnation == update.incarnation
            });
        if overrides(&update, cur) || same_inc_alive_bug {
            self.apply(ctx, update);
        } else if update.state == MemberState::Suspect
            && cur.is_some_and(|m| {
                m.state == MemberState::Suspect && m.incarnation == update.incarnation
            })
        {
            self.confirm(ctx, update);
        }
    }

    fn merge_about_self(&mut self, ctx: &mut Context<'_, Self>, update: &Update) {
        if self.phase != Phase::Active {
            return;
        }
        let mine = self.incarnation();
        let accused = match update.state {
            MemberState::Alive => update.incarnation > mine,
            _ => update.incarnation >= mine,
        };
        if accused {
            self.refute(ctx, update.incarnation);
        }
    }

    /// SWIM §4.2: only the member raises its own incarnation, past the accusation.
    fn refute(&mut self, ctx: &mut Context<'_, Self>, accused: u64) {
        let mine = self.incarnation();
        let new = if self.bugs.refute_same_incarnation {
            accused.max(mine)
        } else {
            accused.max(mine) + 1
        };
        self.persist_incarnation(ctx, new);
        self.set_self(ctx, MemberState::Alive, new);
        self.refutations += 1;
        // Lifeguard: being accused hints that we are the slow one.
        self.lhm_add(1);
        let alive = self.self_update(MemberState::Alive);
        self.queue(alive);
        ctx.trace(format!("swim: {} refutes at incarnation {new}", self.id));
        ctx.sometimes("suspicion-refuted");
    }

    fn apply(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        let node = update.node;
        assert_ne!(node, self.id);
        let now = ctx.now();
        let old = self.members[node].take();
        let meta = update
            .meta
            .clone()
            .or_else(|| old.as_ref().and_then(|m| m.meta.clone()));
        // Trace state changes, but not the first news of a live member (a join
        // would otherwise trace n² lines).
        let first_alive = old.is_none() && update.state == MemberState::Alive;
        if !first_alive && old.as_ref().map(|m| m.state) != Some(update.state) {
            ctx.trace(format!(
                "swim: {} holds {node} {:?} at incarnation {} (from {})",
                self.id, update.state, update.incarnation, update.from
            ));
        }
        self.members[node] = Some(Member {
            state: update.state,
            incarnation: update.incarnation,
            meta,
            changed_at: now,
        });
        self.changed.push(node);
        if update.state.is_down() {
            self.live.remove(node);
        } else {
            self.live.insert(node);
            if !self.in_probe_list[node] {
                // SWIM §4.3: a new member goes to a random position in the list.
                let at = crate::rng::index(ctx.rng(), 0..self.probe_list.len() + 1);
                self.probe_list.insert(at, node);
                self.in_probe_list[node] = true;
                if at < self.probe_next {
                    self.probe_next += 1;
                }
            }
        }
        if let Some(s) = self.suspicions.remove(&node) {
            ctx.cancel_timer(s.timer);
        }
        if update.state == MemberState::Suspect {
            self.start_suspicion(ctx, node, update.incarnation, update.from);
        }
        self.queue(update);
    }

    fn start_suspicion(
        &mut self,
        ctx: &mut Context<'_, Self>,
        node: NodeId,
        inc: u64,
        from: NodeId,
    ) {
        let n = self.estimated_size();
        let k = if self.cfg.lifeguard_dynamic_suspicion {
            self.cfg.suspicion_k(n)
        } else {
            0
        };
        let min = self.cfg.suspicion_min(n);
        let max = self.cfg.suspicion_max(n);
        let timeout = suspicion_timeout(0, k, min, max);
        let timer = ctx.set_timer(
            timeout,
            SwimTimer::Suspicion {
                node,
                incarnation: inc,
            },
        );
        self.suspicions.insert(
            node,
            Suspicion {
                incarnation: inc,
                started_at: ctx.now(),
                first_from: from,
                confirmers: BTreeSet::new(),
                k,
                min,
                max,
                timer,
            },
        );
    }

    /// Lifeguard LHA-Suspicion: an independent suspicion of the same incarnation
    /// shortens the timeout; the first K are re-gossiped.
    fn confirm(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        if !self.cfg.lifeguard_dynamic_suspicion {
            return;
        }
        let now = ctx.now();
        let Some(s) = self.suspicions.get_mut(&update.node) else {
            return;
        };
        if s.incarnation != update.incarnation
            || update.from == s.first_from
            || (s.confirmers.len() as u64) >= s.k
            || !s.confirmers.insert(update.from)
        {
            return;
        }
        ctx.sometimes("suspicion-confirmed");
        let elapsed = now.saturating_sub(s.started_at);
        let remaining = s.timeout().saturating_sub(elapsed);
        ctx.cancel_timer(s.timer);
        s.timer = ctx.set_timer(
            remaining,
            SwimTimer::Suspicion {
                node: update.node,
                incarnation: update.incarnation,
            },
        );
        self.queue(update);
    }

    fn on_suspicion_timer(&mut self, ctx: &mut Context<'_, Self>, node: NodeId, inc: u64) {
        let Some(s) = self.suspicions.get(&node) else {
            return;
        };
        let still = self.members[node]
            .as_ref()
            .is_some_and(|m| m.state == MemberState::Suspect && m.incarnation == inc);
        if s.incarnation != inc || !still {
            return;
        }
        let elapsed = ctx.now().saturating_sub(s.started_at);
        let timeout = s.timeout();
        if elapsed < timeout {
            let timer = ctx.set_timer(
                timeout - elapsed,
                SwimTimer::Suspicion {
                    node,
                    incarnation: inc,
                },
            );
            self.suspicions.get_mut(&node).expect("checked above").timer = timer;
            return;
        }
        let dead = Update {
            node,
            incarnation: inc,
            state: MemberState::Dead,
            from: self.id,
            meta: None,
        };
        ctx.sometimes("member-declared-dead");
        self.declared.push((node, MemberState::Dead));
        self.merge(ctx, dead);
    }

    /// Random distinct members from the live set, without scanning it when large.
    fn sample(
        &self,
        ctx: &mut Context<'_, Self>,
        k: usize,
        exclude: Option<NodeId>,
        alive_only: bool,
    ) -> Vec<NodeId> {
        let ok = |id: NodeId| {
            Some(id) != exclude
                && (!alive_only
                    || self.members[id]
                        .as_ref()
                        .is_some_and(|m| m.state == MemberState::Alive))
        };
        let items = self.live.as_slice();
        if k == 0 || items.is_empty() {
            return Vec::new();
        }
        if items.len() <= 3 * k {
            let mut c: Vec<NodeId> = items.iter().copied().filter(|&i| ok(i)).collect();
            c.shuffle(ctx.rng());
            c.truncate(k);
            return c;
        }
        let mut out = Vec::with_capacity(k);
        // Bounded draws: a sparse acceptable subset yields fewer than k, which is fine.
        for _ in 0..(4 * k + 8) {
            if out.len() == k {
                break;
            }
            let id = items[crate::rng::index(ctx.rng(), 0..items.len())];
            if ok(id) && !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    fn next_probe_target(&mut self, ctx: &mut Context<'_, Self>) -> Option<NodeId> {
        if self.live.is_empty() {
            return None;
        }
        if self.cfg.probe_order == ProbeOrder::Random {
            let items = self.live.as_slice();
            return Some(items[crate::rng::index(ctx.rng(), 0..items.len())]);
        }
        // Round-robin: at most one pass plus one rebuilt pass.
        for _ in 0..2 {
            while self.probe_next < self.probe_list.len() {
                let id = self.probe_list[self.probe_next];
                self.probe_next += 1;
                if self.live.contains(id) {
                    return Some(id);
                }
            }
            // End of a pass: drop down members and reshuffle (SWIM §4.3).
            for &id in &self.probe_list {
                self.in_probe_list[id] = false;
            }
            self.probe_list.clear();
            self.probe_list.extend_from_slice(self.live.as_slice());
            self.probe_list.sort_unstable();
            let mut list = std::mem::take(&mut self.probe_list);
            list.shuffle(ctx.rng());
            self.probe_list = list;
            for &id in &self.probe_list {
                self.in_probe_list[id] = true;
            }
            self.probe_next = 0;
        }
        unreachable!("a non-empty live set yields a target within two passes")
    }

    /// End of a protocol period: no ack, direct or indirect → suspect (SWIM §4.2).
    fn finish_probe(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(p) = self.probe.take() else {
            return;
        };
        if p.acked {
            return;
        }
        // Lifeguard: missed nacks mean we, not the target, may be the slow one; if
        // every relay answered with a nack the target is the likely culprit.
        let delta = if p.relays_asked > 0 {
            (p.relays_asked - p.nacks.min(p.relays_asked)) as i64
        } else {
            1
        };
        self.lhm_add(delta);
        let Some(m) = self.members[p.target].as_ref() else {
            return;
        };
        if m.state.is_down() {
            return;
        }
        let suspect = Update {
            node: p.target,
            incarnation: m.incarnation,
            state: MemberState::Suspect,
            from: self.id,
            meta: None,
        };
        self.declared.push((p.target, MemberState::Suspect));
        self.merge(ctx, suspect);
    }

    fn on_probe_tick(&mut self, ctx: &mut Context<'_, Self>) {
        if self.phase != Phase::Active {
            return;
        }
        self.finish_probe(ctx);
        if self.live.is_empty() {
            // Not joined yet (or everyone else is down): keep knocking on the seeds.
            self.contact_seeds(ctx);
        }
        if let Some(target) = self.next_probe_target(ctx) {
            self.next_seq += 1;
            self.probe_periods += 1;
            let seq = self.next_seq;
            let updates = self.updates_for(target);
            self.send(ctx, target, SwimMessage::Ping { seq, updates });
            self.probe = Some(Probe {
                target,
                seq,
                acked: false,
                relays_asked: 0,
                nacks: 0,
            });
            let scale = self.probe_scale();
            ctx.set_timer(
                self.cfg.probe_timeout() * scale,
                SwimTimer::ProbeTimeout { seq },
            );
        }
        let scale = self.probe_scale();
        ctx.set_timer(self.cfg.probe_interval() * scale, SwimTimer::ProbeTick);
    }

    fn on_probe_timeout(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
        let Some(p) = &self.probe else {
            return;
        };
        if p.seq != seq || p.acked {
            return;
        }
        let target = p.target;
        let relays = self.sample(ctx, self.cfg.indirect_checks, Some(target), true);
        for &r in &relays {
            let updates = self.updates_for(r);
            self.send(
                ctx,
                r,
                SwimMessage::PingReq {
                    seq,
                    target,
                    updates,
                },
            );
        }
        self.probe.as_mut().expect("checked above").relays_asked = relays.len() as u32;
    }

    fn on_ping_req(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        origin_seq: u64,
        target: NodeId,
    ) {
        if target == self.id || target >= self.nodes || self.relays.len() >= RELAYS_MAX {
            return;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.relays.insert(
            seq,
            Relay {
                origin: from,
                origin_seq,
                acked: false,
            },
        );
        let updates = self.updates_for(target);
        self.send(ctx, target, SwimMessage::Ping { seq, updates });
        if self.cfg.lifeguard_lhm {
            let nack_after = self.cfg.probe_timeout() * self.cfg.nack_percent as u32 / 100;
            ctx.set_timer(nack_after, SwimTimer::RelayNack { seq });
        }
        ctx.set_timer(self.cfg.probe_interval(), SwimTimer::RelayExpire { seq });
    }

    fn on_ack(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
        if let Some(p) = &mut self.probe {
            if p.seq == seq {
                if !p.acked {
                    p.acked = true;
                    self.lhm_add(-1);
                }
                return;
            }
        }
        if let Some(r) = self.relays.get_mut(&seq) {
            if !r.acked {
                r.acked = true;
                let (origin, origin_seq) = (r.origin, r.origin_seq);
                let updates = self.updates_for(origin);
                self.send(
                    ctx,
                    origin,
                    SwimMessage::Ack {
                        seq: origin_seq,
                        updates,
                    },
                );
            }
        }
    }

    fn on_gossip_tick(&mut self, ctx: &mut Context<'_, Self>) {
        match self.phase {
            Phase::Active | Phase::Leaving => {}
            Phase::Dormant | Phase::Left => return,
        }
        if !self.broadcasts.is_empty() {
            let targets = self.sample(ctx, self.cfg.gossip_nodes, None, false);
            for t in targets {
                let updates = self.updates_for(t);
                if !updates.is_empty() {
                    self.send(ctx, t, SwimMessage::Gossip { updates });
                }
            }
        }
        if self.phase == Phase::Leaving && self.broadcasts.is_empty() {
            self.phase = Phase::Left;
            ctx.trace(format!("swim: {} has left", self.id));
            return;
        }
        ctx.set_timer(self.cfg.gossip_interval(), SwimTimer::Gossip);
    }

    fn on_push_pull_tick(&mut self, ctx: &mut Context<'_, Self>) {
        if self.phase != Phase::Active {
            return;
        }
        let partner = self.sample(ctx, 1, None, false);
        // Reconnect (as Serf does): also try one member held dead, so that sides of
        // a healed partition find each other again and the wrongly dead refute.
        let dead: Vec<NodeId> = self
            .members()
            .filter(|(i, m)| *i != self.id && m.state == MemberState::Dead)
            .map(|(i, _)| i)
            .collect();
        let reconnect = dead.choose(ctx.rng()).copied();
        for to in partner.into_iter().chain(reconnect) {
            let members = self.full_state();
            self.send(
                ctx,
                to,
                SwimMessage::PushPull {
                    reply: true,
                    members,
                },
            );
        }
        let interval = self.cfg.push_pull_interval(self.estimated_size());
        ctx.set_timer(interval, SwimTimer::PushPull);
    }

    fn on_push_pull(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        reply: bool,
        remote: Vec<Update>,
    ) {
        let n = remote.len().min(self.nodes);
        for mut u in remote.into_iter().take(n) {
            if u.node >= self.nodes {
                continue;
            }
            // memberlist: a remote dead is only suspected here, so that a member that
            // is in fact alive gets a suspicion timeout to refute in.
            if u.state == MemberState::Dead && u.node != self.id {
                u.state = MemberState::Suspect;
                u.from = from;
            }
            // Lifeguard (§IV-B) shortens a suspicion for each independent suspicion, a
            // member's own failed probe. A push-pull relays state: it confirms nothing.
            let repeats_suspicion = u.state == MemberState::Suspect
                && self.members[u.node].as_ref().is_some_and(|m| {
                    m.state == MemberState::Suspect && m.incarnation == u.incarnation
                });
            if !repeats_suspicion {
                self.merge(ctx, u);
            }
        }
        if reply {
            let members = self.full_state();
            self.send(
                ctx,
                from,
                SwimMessage::PushPull {
                    reply: false,
                    members,
                },
            );
        }
    }

    fn on_leave(&mut self, ctx: &mut Context<'_, Self>) {
        if self.phase != Phase::Active {
            return;
        }
        let inc = self.incarnation();
        self.set_self(ctx, MemberState::Left, inc);
        self.phase = Phase::Leaving;
        ctx.trace(format!("swim: {} leaves", self.id));
        let left = self.self_update(MemberState::Left);
        self.queue(left);
        self.probe = None;
    }

    /// foca's notify-down-members: tell a member we hold dead that it is, so that it
    /// refutes, at most once per probe interval.
    fn notify_if_dead(&mut self, ctx: &mut Context<'_, Self>, from: NodeId) {
        let Some(m) = &self.members[from] else {
            return;
        };
        if m.state != MemberState::Dead {
            return;
        }
        let now = ctx.now();
        if self.dead_notice_at[from].is_some_and(|t| now < t + self.cfg.probe_interval()) {
            return;
        }
        self.dead_notice_at[from] = Some(now);
        let updates = vec![Update {
            node: from,
            incarnation: m.incarnation,
            state: MemberState::Dead,
            from: self.id,
            meta: None,
        }];
        self.send(ctx, from, SwimMessage::Gossip { updates });
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
        match msg {
            SwimMessage::Ping { .. }
            | SwimMessage::Ack { .. }
            | SwimMessage::Nack { .. }
            | SwimMessage::PingReq { .. } => "probe",
            SwimMessage::Gossip { .. } => "gossip",
            SwimMessage::PushPull { .. } => "push-pull",
        }
    }

    fn message_classes() -> &'static [&'static str] {
        &["probe", "gossip", "push-pull"]
    }
}

/// The handlers; the [`Process`] impl wraps each so that its output waits for the
/// writes before it.
impl SwimProcess {
    fn start(&mut self, ctx: &mut Context<'_, Self>) {
        assert_eq!(ctx.id(), self.id);
        assert_eq!(ctx.nodes(), self.nodes);
        self.begin_step(ctx.now());
        // A restarted member rejoins above every incarnation it ever used.
        let inc = ctx
            .storage()
            .get(INCARNATION_KEY)
            .map(|i| i + 1)
            .unwrap_or(0);
        self.persist_incarnation(ctx, inc);
        self.set_self(ctx, MemberState::Alive, inc);
        let spec = self.cfg.node_spec(self.id);
        let leave_at = spec.and_then(|s| s.leave_at_ms).map(Duration::from_millis);
        let join_at = spec.and_then(|s| s.join_at_ms).map(Duration::from_millis);
        if leave_at.is_some_and(|l| ctx.now() >= l) {
            // It left before this restart: it stays gone.
            self.phase = Phase::Left;
            return;
        }
        match join_at {
            Some(j) if j > ctx.now() => {
                ctx.set_timer(j - ctx.now(), SwimTimer::Join);
            }
            _ => self.join(ctx),
        }
    }

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
            Some(SwimMessage::Nack { seq, .. }) => {
                if let Some(p) = &mut self.probe {
                    if p.seq == seq && p.nacks < p.relays_asked {
                        p.nacks += 1;
                    }
                }
            }
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
                if self.phase != Phase::Active {
                    return;
                }
                if let Some(r) = self.relays.get(&seq) {
                    if !r.acked {
                        let (origin, origin_seq) = (r.origin, r.origin_seq);
                        let updates = self.updates_for(origin);
                        self.send(
                            ctx,
                            origin,
                            SwimMessage::Nack {
                                seq: origin_seq,
                                updates,
                            },
                        );
                    }
                }
            }
            SwimTimer::RelayExpire { seq } => {
                self.relays.remove(&seq);
            }
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

/// Approximate wire size of a message, in bytes.
fn message_bytes(msg: &SwimMessage) -> usize {
    {
        fn updates_bytes(us: &[Update]) -> usize {
            us.iter()
                .map(|u| {
                    24 + u.meta.as_ref().map_or(0, |m| {
                        m.tags
                            .iter()
                            .map(|(k, v)| k.len() + v.len() + 2)
                            .sum::<usize>()
                            + m.services.iter().map(|s| s.len() + 1).sum::<usize>()
                    })
                })
                .sum()
        }
        let body = match msg {
            SwimMessage::Ping { updates, .. }
            | SwimMessage::Ack { updates, .. }
            | SwimMessage::Nack { updates, .. }
            | SwimMessage::PingReq { updates, .. }
            | SwimMessage::Gossip { updates } => updates_bytes(updates),
            SwimMessage::PushPull { members, .. } => updates_bytes(members),
        };
        16 + body
    }
}

crate::impl_fingerprint!(enum SwimMessage {
    0 => Ping { seq, updates },
    1 => Ack { seq, updates },
    2 => Nack { seq, updates },
    3 => PingReq { seq, target, updates },
    4 => Gossip { updates },
    5 => PushPull { reply, members },
});
