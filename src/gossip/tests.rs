//! Tests by paper section, without the simulator: an in-test router moves messages
//! between N processes on a manual clock, and the SWIM checkers watch every step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::broadcast::BroadcastQueue;
use super::check::{checkers, ConvergenceChecker};
use super::config::{NodeSpec, ProbeOrder, SwimConfig};
use super::member::{overrides, Member, MemberState, Update};
use super::suspicion::suspicion_timeout;
use super::swim::{Phase, SwimBugs, SwimMessage, SwimProcess, SwimTimer, INCARNATION_KEY};
use crate::check::{Checker, ClusterView, Metrics};
use crate::process::{Context, Effect, NodeId, Process, TimerId};
use crate::storage::Storage;

const LATENCY: Duration = Duration::from_millis(2);
/// Most events one `run_for` handles; more means a runaway protocol.
const EVENTS_MAX: usize = 5_000_000;

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: SwimMessage,
    },
    Timer {
        node: NodeId,
        life: u64,
        id: TimerId,
        timer: SwimTimer,
    },
}

struct Slot {
    rng: ChaCha8Rng,
    storage: Storage<u64>,
    next_timer: u64,
    /// Bumped on crash: timers of an earlier life never fire.
    life: u64,
    cancelled: BTreeSet<TimerId>,
    paused: bool,
    held: Vec<Event>,
}

struct Net {
    cfg: Arc<SwimConfig>,
    bugs: SwimBugs,
    now: Duration,
    procs: Vec<Option<SwimProcess>>,
    slots: Vec<Slot>,
    queue: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    checkers: Vec<Box<dyn Checker<SwimProcess>>>,
    /// A second, unboxed convergence checker whose count the tests can read.
    convergence: Option<ConvergenceChecker>,
    /// Every message sent: (time, from, to, message).
    log: Vec<(Duration, NodeId, NodeId, SwimMessage)>,
    keep_log: bool,
}

impl Net {
    fn new(nodes: usize, cfg: SwimConfig, seed: u64) -> Net {
        Net::with_bugs(nodes, cfg, seed, SwimBugs::default())
    }

    fn with_bugs(nodes: usize, cfg: SwimConfig, seed: u64, bugs: SwimBugs) -> Net {
        cfg.validate(nodes).expect("test config is valid");
        let checkers = checkers(&cfg, nodes);
        let mut net = Net {
            cfg: Arc::new(cfg),
            bugs,
            now: Duration::ZERO,
            procs: (0..nodes).map(|_| None).collect(),
            slots: (0..nodes)
                .map(|i| Slot {
                    rng: ChaCha8Rng::seed_from_u64(seed * 1000 + i as u64),
                    storage: Storage::default(),
                    next_timer: 0,
                    life: 0,
                    cancelled: BTreeSet::new(),
                    paused: false,
                    held: Vec::new(),
                })
                .collect(),
            queue: BTreeMap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            checkers,
            convergence: Some(ConvergenceChecker::default()),
            log: Vec::new(),
            keep_log: false,
        };
        for i in 0..nodes {
            net.start(i);
        }
        net
    }

    fn n(&self) -> usize {
        self.procs.len()
    }

    fn p(&self, i: NodeId) -> &SwimProcess {
        self.procs[i].as_ref().expect("node is up")
    }

    fn push(&mut self, at: Duration, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Runs `f` on node `i` with a hand-made context, then carries out its effects.
    fn step(&mut self, i: NodeId, f: impl FnOnce(&mut SwimProcess, &mut Context<'_, SwimProcess>)) {
        let n = self.n();
        let mut effects = Vec::new();
        {
            let slot = &mut self.slots[i];
            let p = self.procs[i].as_mut().expect("stepping a live node");
            let mut ctx = Context::new(
                i,
                n,
                self.now,
                &mut slot.rng,
                &mut slot.storage,
                &mut slot.next_timer,
                &mut effects,
            );
            f(p, &mut ctx);
        }
        let mut syncs = Vec::new();
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    if self.keep_log {
                        self.log.push((self.now, i, to, msg.clone()));
                    }
                    if !self.cut.contains(&(i, to)) {
                        let at = self.now + LATENCY;
                        self.push(at, Event::Deliver { from: i, to, msg });
                    }
                }
                Effect::SetTimer { id, after, timer } => {
                    let life = self.slots[i].life;
                    let at = self.now + after;
                    self.push(
                        at,
                        Event::Timer {
                            node: i,
                            life,
                            id,
                            timer,
                        },
                    );
                }
                Effect::CancelTimer { id } => {
                    self.slots[i].cancelled.insert(id);
                }
                // A disk with no latency: the sync completes right after the step.
                Effect::Sync { id, writes } => syncs.push((id, writes)),
                Effect::Abort { reason } => panic!("node {i} aborted: {reason}"),
                Effect::Write { .. }
                | Effect::Trace { .. }
                | Effect::Sometimes { .. }
                | Effect::Span { .. }
                | Effect::Reply { .. } => {}
            }
        }
        self.check(i);
        for (id, writes) in syncs {
            self.slots[i].storage.complete_sync(writes);
            let synced: SyncedStep<SwimProcess> =
                Box::new(move |p, ctx| p.on_synced(ctx, id, Ok(())));
            self.step(i, synced);
        }
    }

    fn check(&mut self, i: NodeId) {
        let view = ClusterView::new(self.now, &self.procs);
        for c in &mut self.checkers {
            if let Err(e) = c.after_step(&view, i) {
                panic!("checker {} failed at {:?}: {e}", c.name(), self.now);
            }
        }
        if let Some(c) = &mut self.convergence {
            c.after_step(&view, i)
                .expect("convergence has no safety rule");
        }
    }

    fn start(&mut self, i: NodeId) {
        assert!(self.procs[i].is_none());
        self.procs[i] = Some(SwimProcess::new(self.cfg.clone(), i, self.n(), self.bugs));
        self.step(i, |p, ctx| p.on_start(ctx));
    }

    fn crash(&mut self, i: NodeId) {
        self.procs[i] = None;
        let slot = &mut self.slots[i];
        slot.storage.crash(0);
        slot.life += 1;
        slot.cancelled.clear();
        slot.held.clear();
        slot.paused = false;
        slot.next_timer = 0;
        self.check(i);
    }

    fn pause(&mut self, i: NodeId) {
        self.slots[i].paused = true;
    }

    fn resume(&mut self, i: NodeId) {
        self.slots[i].paused = false;
        for ev in std::mem::take(&mut self.slots[i].held) {
            let at = self.now;
            self.push(at, ev);
        }
    }

    fn isolate(&mut self, group: &[NodeId]) {
        for &a in group {
            for b in 0..self.n() {
                if !group.contains(&b) {
                    self.cut.insert((a, b));
                    self.cut.insert((b, a));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Delivers a message as if `from` had sent it.
    fn inject(&mut self, from: NodeId, to: NodeId, msg: SwimMessage) {
        let at = self.now;
        self.push(at, Event::Deliver { from, to, msg });
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for handled in 0..=EVENTS_MAX {
            let Some((&(at, seq), _)) = self.queue.first_key_value() else {
                break;
            };
            if at > until {
                break;
            }
            // Events due are never left behind: a run this busy is a runaway protocol.
            assert!(
                handled < EVENTS_MAX,
                "more than {EVENTS_MAX} events in {d:?}"
            );
            let ev = self.queue.remove(&(at, seq)).expect("just seen");
            self.now = at;
            let node = match &ev {
                Event::Deliver { to, .. } => *to,
                Event::Timer { node, .. } => *node,
            };
            if self.procs[node].is_none() {
                continue;
            }
            if self.slots[node].paused {
                self.slots[node].held.push(ev);
                continue;
            }
            match ev {
                Event::Deliver { from, to, msg } => {
                    self.step(to, |p, ctx| p.on_message(ctx, from, msg))
                }
                Event::Timer {
                    node,
                    life,
                    id,
                    timer,
                } => {
                    let slot = &mut self.slots[node];
                    if life != slot.life || slot.cancelled.remove(&id) {
                        continue;
                    }
                    self.step(node, |p, ctx| p.on_timer(ctx, timer));
                }
            }
        }
        self.now = until;
    }

    /// Runs until `pred` holds, checking every 100 ms; returns the time it took.
    fn run_until(
        &mut self,
        bound: Duration,
        mut pred: impl FnMut(&Net) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now < start + bound {
            if pred(self) {
                return Some(self.now - start);
            }
            self.run_for(Duration::from_millis(100));
        }
        pred(self).then(|| self.now - start)
    }

    fn settled(&self) -> Result<(), String> {
        let view = ClusterView::new(self.now, &self.procs);
        let full = ConvergenceChecker::disagreement(&view);
        // The incremental checker must agree with the full scan, entry for entry.
        let (count, _) = ConvergenceChecker::scan(&view);
        assert_eq!(self.convergence().wrong_count(), count, "{full:?}");
        full
    }

    fn convergence(&self) -> &ConvergenceChecker {
        self.convergence
            .as_ref()
            .expect("the harness keeps its own convergence checker")
    }

    fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        for c in &self.checkers {
            c.metrics(&mut m);
        }
        m
    }

    fn state(&self, observer: NodeId, of: NodeId) -> Option<MemberState> {
        self.p(observer).member(of).map(|m| m.state)
    }

    fn all_hold(&self, of: NodeId, state: MemberState) -> bool {
        (0..self.n())
            .filter(|&o| {
                o != of
                    && self.procs[o]
                        .as_ref()
                        .is_some_and(|p| p.phase() == Phase::Active)
            })
            .all(|o| self.state(o, of) == Some(state))
    }
}

fn quick() -> SwimConfig {
    SwimConfig {
        push_pull_interval_ms: 10_000,
        ..SwimConfig::default()
    }
}

fn converge(net: &mut Net) -> Duration {
    net.run_until(Duration::from_secs(60), |n| n.settled().is_ok())
        .unwrap_or_else(|| panic!("no convergence: {:?}", net.settled()))
}

fn suspect_update(node: NodeId, incarnation: u64, from: NodeId) -> Update {
    Update {
        node,
        incarnation,
        state: MemberState::Suspect,
        from,
        meta: None,
    }
}

// ---- §3.1 / §4.3: the failure detector ----

#[test]
fn s4_1_members_join_through_one_seed_and_agree() {
    let mut net = Net::new(8, quick(), 1);
    // Before any message moves, a member knows only itself.
    assert_eq!(net.p(5).members().count(), 1);
    converge(&mut net);
    for o in 0..8 {
        assert_eq!(net.p(o).members().count(), 8);
    }
}

#[test]
fn s4_1_a_crashed_member_is_suspected_then_dead_at_all_within_the_bound() {
    for order in [ProbeOrder::RoundRobin, ProbeOrder::Random] {
        let cfg = SwimConfig {
            probe_order: order,
            ..quick()
        };
        let bound = cfg.detection_bound(8);
        let mut net = Net::new(8, cfg, 2);
        converge(&mut net);
        net.crash(3);
        let took = net
            .run_until(bound, |n| n.all_hold(3, MemberState::Dead))
            .expect("crashed member declared dead by all within the detection bound");
        assert!(took <= bound);
        let m = net.metrics();
        assert_eq!(m["crashes"], 1.0);
        let first_s = m["first_detection_ms_p50"];
        let first_d = m["first_dead_ms_p50"];
        let full = m["full_dissemination_ms_p50"];
        assert!(first_s <= first_d && first_d <= full, "{m:?}");
        assert!(full <= took.as_millis() as f64 + 100.0, "{m:?}");
        assert!(net.settled().is_ok());
        // Steady state: about one ping and one ack out per period, plus gossip.
        assert!(m["messages_per_member_per_period"] > 1.0, "{m:?}");
    }
}

#[test]
fn s4_3_round_robin_probes_every_member_within_2n_minus_1_periods() {
    let mut net = Net::new(6, quick(), 3);
    converge(&mut net);
    net.keep_log = true;
    net.run_for(Duration::from_secs(30));
    // A healthy cluster: every ping is a rotation ping, none relayed.
    assert!(!net
        .log
        .iter()
        .any(|(_, _, _, m)| matches!(m, SwimMessage::PingReq { .. })));
    let period_ms = 1000u128;
    for o in 0..6 {
        let pings: Vec<(Duration, NodeId)> = net
            .log
            .iter()
            .filter(|(_, f, _, m)| *f == o && matches!(m, SwimMessage::Ping { .. }))
            .map(|(t, _, to, _)| (*t, *to))
            .collect();
        for target in (0..6).filter(|&t| t != o) {
            let times: Vec<u128> = pings
                .iter()
                .filter(|(_, to)| *to == target)
                .map(|(t, _)| t.as_millis())
                .collect();
            assert!(
                times.len() >= 3,
                "{o} pinged {target} {} times",
                times.len()
            );
            for w in times.windows(2) {
                // The gap between two probes of one member is at most (2n − 1)
                // periods, n being the other members.
                assert!(w[1] - w[0] <= (2 * 5 - 1) * period_ms + 10, "gap {w:?}");
            }
        }
    }
}

// ---- §4.2: suspicion and incarnations ----

#[test]
fn s4_2_precedence_table() {
    let m = |state, incarnation| Member {
        state,
        incarnation,
        meta: None,
        changed_at: Duration::ZERO,
    };
    let u = |state, incarnation| Update {
        node: 1,
        incarnation,
        state,
        from: 0,
        meta: None,
    };
    use MemberState::*;
    // (update, current, overrides?)
    let table = [
        (u(Alive, 2), m(Suspect, 1), true),
        (u(Alive, 1), m(Suspect, 1), false),
        (u(Alive, 2), m(Alive, 1), true),
        (u(Alive, 1), m(Alive, 1), false),
        (u(Suspect, 1), m(Alive, 1), true),
        (u(Suspect, 0), m(Alive, 1), false),
        (u(Suspect, 2), m(Suspect, 1), true),
        (u(Suspect, 1), m(Suspect, 1), false),
        (u(Dead, 1), m(Alive, 1), true),
        (u(Dead, 1), m(Suspect, 1), true),
        (u(Dead, 0), m(Suspect, 1), false),
        (u(Alive, 2), m(Dead, 1), true),
        (u(Alive, 1), m(Dead, 1), false),
        (u(Suspect, 1), m(Dead, 1), false),
        (u(Left, 1), m(Alive, 1), true),
    ];
    for (upd, cur, want) in table {
        assert_eq!(overrides(&upd, Some(&cur)), want, "{upd:?} over {cur:?}");
    }
    assert!(overrides(&u(Suspect, 0), None));
}

#[test]
fn s4_2_a_suspected_live_member_refutes_with_a_higher_incarnation() {
    let mut net = Net::new(5, quick(), 4);
    converge(&mut net);
    assert_eq!(net.p(2).incarnation(), 0);
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(2, 0, 1)],
        },
    );
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.state(0, 2), Some(MemberState::Suspect));
    let took = net
        .run_until(Duration::from_secs(10), |n| {
            (0..5).filter(|&o| o != 2).all(|o| {
                n.p(o)
                    .member(2)
                    .is_some_and(|m| m.state == MemberState::Alive && m.incarnation == 1)
            })
        })
        .expect("refutation reaches everyone");
    assert!(
        took < quick().suspicion_min(5),
        "refuted before any timeout"
    );
    assert_eq!(net.p(2).incarnation(), 1);
    assert_eq!(net.slots[2].storage.get(INCARNATION_KEY), Some(&1));
    assert_eq!(net.p(2).refutations(), 1);
}

#[test]
fn s4_2_a_restarted_member_rejoins_with_a_higher_incarnation() {
    let mut net = Net::new(5, quick(), 5);
    converge(&mut net);
    net.crash(4);
    net.run_until(quick().detection_bound(5), |n| {
        n.all_hold(4, MemberState::Dead)
    })
    .expect("declared dead");
    net.start(4);
    assert_eq!(net.p(4).incarnation(), 1);
    converge(&mut net);
    for o in 0..4 {
        assert_eq!(net.p(o).member(4).map(|m| m.incarnation), Some(1));
    }
}

// ---- §4.1: dissemination ----

#[test]
fn s4_1_each_update_is_sent_at_most_its_retransmit_limit_least_sent_first() {
    let mut q = BroadcastQueue::new(4);
    q.push(suspect_update(1, 0, 0), 3);
    q.push(suspect_update(2, 0, 0), 3);
    let mut out = Vec::new();
    q.take(1, None, &mut out);
    // Newest first among equally sent.
    assert_eq!(out[0].node, 2);
    out.clear();
    q.take(1, None, &mut out);
    assert_eq!(out[0].node, 1, "least sent first");
    let mut sends = BTreeMap::new();
    for _ in 0..10 {
        out.clear();
        q.take(2, None, &mut out);
        for u in &out {
            *sends.entry(u.node).or_insert(1) += 1;
        }
    }
    assert_eq!(sends, BTreeMap::from([(1, 3), (2, 3)]));
    assert!(q.is_empty());
    assert_eq!(q.max_transmits(), 3);
    // A newer update about a member replaces the pending one.
    q.push(suspect_update(3, 0, 0), 3);
    q.push(suspect_update(3, 1, 0), 3);
    assert_eq!(q.len(), 1);
    assert_eq!(q.pending(3).map(|(u, _)| u.incarnation), Some(1));
}

#[test]
fn retransmit_limits_and_suspicion_bounds_follow_memberlist() {
    let c = SwimConfig::default();
    assert_eq!(c.retransmit_limit(9), 4);
    assert_eq!(c.retransmit_limit(10), 8);
    assert_eq!(c.retransmit_limit(100), 12);
    assert_eq!(c.suspicion_min(5), Duration::from_secs(4));
    assert_eq!(c.suspicion_max(5), Duration::from_secs(24));
    assert_eq!(c.suspicion_min(100), Duration::from_secs(8));
    assert_eq!(c.suspicion_max(100), Duration::from_secs(48));
    assert_eq!(c.push_pull_interval(32), Duration::from_secs(30));
    assert_eq!(c.push_pull_interval(100), Duration::from_secs(90));
    assert_eq!(c.suspicion_k(10), 2);
    assert_eq!(c.suspicion_k(3), 0);
}

#[test]
fn discovery_metadata_spreads_to_all_members() {
    let mut cfg = quick();
    cfg.nodes = vec![NodeSpec {
        id: 5,
        tags: BTreeMap::from([("zone".to_string(), "b".to_string())]),
        services: vec!["web".into()],
        ..NodeSpec::default()
    }];
    let mut net = Net::new(7, cfg, 6);
    converge(&mut net);
    for o in 0..7 {
        let m = net.p(o).member(5).expect("knows 5");
        let meta = m.meta.as_ref().expect("metadata spread");
        assert_eq!(meta.tags.get("zone").map(String::as_str), Some("b"));
        assert_eq!(net.p(o).providers("web").collect::<Vec<_>>(), vec![5]);
    }
    // Once 5 is dead it no longer provides the service.
    net.crash(5);
    net.run_until(quick().detection_bound(7), |n| {
        n.all_hold(5, MemberState::Dead)
    })
    .expect("declared dead");
    assert_eq!(net.p(0).providers("web").count(), 0);
}

#[test]
fn a_late_member_joins_and_a_leaving_member_is_left_everywhere() {
    let mut cfg = quick();
    cfg.nodes = vec![
        NodeSpec {
            id: 4,
            join_at_ms: Some(5_000),
            ..NodeSpec::default()
        },
        NodeSpec {
            id: 2,
            leave_at_ms: Some(20_000),
            ..NodeSpec::default()
        },
    ];
    let mut net = Net::new(6, cfg, 7);
    net.run_for(Duration::from_secs(4));
    assert_eq!(net.p(4).phase(), Phase::Dormant);
    assert!((0..6)
        .filter(|&o| o != 4)
        .all(|o| net.p(o).member(4).is_none()));
    net.run_for(Duration::from_secs(8));
    assert!(net.all_hold(4, MemberState::Alive));
    net.run_until(Duration::from_secs(30), |n| {
        n.all_hold(2, MemberState::Left)
    })
    .expect("leave spreads");
    assert_eq!(net.p(2).phase(), Phase::Left);
    converge(&mut net);
    assert_eq!(net.metrics()["false_positive_dead"], 0.0);
}

// ---- Lifeguard ----

#[test]
fn lifeguard_dynamic_timeout_matches_hand_computed_values() {
    let ms = Duration::from_millis;
    // memberlist suspicion test vectors: Min 500 ms, Max 1000 ms, K = 3.
    assert_eq!(suspicion_timeout(0, 3, ms(500), ms(1000)), ms(1000));
    assert_eq!(suspicion_timeout(1, 3, ms(500), ms(1000)), ms(750));
    // 1000 − 500 · ln 3 / ln 4 = 603.76 → truncated to 603.
    assert_eq!(suspicion_timeout(2, 3, ms(500), ms(1000)), ms(603));
    assert_eq!(suspicion_timeout(3, 3, ms(500), ms(1000)), ms(500));
    assert_eq!(suspicion_timeout(4, 3, ms(500), ms(1000)), ms(500));
    assert_eq!(suspicion_timeout(0, 0, ms(500), ms(1000)), ms(500));
}

/// Ten converged members; 9 is cut off (so it cannot refute) and 0 has heard 1's
/// suspicion of it.
fn node_0_suspects_9_on_1s_word() -> Net {
    let mut net = Net::new(10, quick(), 8);
    converge(&mut net);
    net.isolate(&[9]);
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(9, 0, 1)],
        },
    );
    net.run_for(Duration::from_millis(1));
    net
}

#[test]
fn lifeguard_independent_confirmations_shorten_the_suspicion() {
    let mut net = node_0_suspects_9_on_1s_word();
    let c = quick();
    let (min, max) = (c.suspicion_min(10), c.suspicion_max(10));
    assert_eq!(net.p(0).suspicion_timeout_of(9), Some(max));
    // Another suspicion from the first suspecter is not independent.
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(9, 0, 1)],
        },
    );
    net.inject(
        2,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(9, 0, 2)],
        },
    );
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.p(0).confirmations_of(9), Some(1));
    let k = c.suspicion_k(10);
    assert_eq!(
        net.p(0).suspicion_timeout_of(9),
        Some(suspicion_timeout(1, k, min, max))
    );
    net.inject(
        3,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(9, 0, 3)],
        },
    );
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.p(0).suspicion_timeout_of(9), Some(min));
    // With K confirmations 0 declares 9 dead at Min, not Max.
    let took = net
        .run_until(max, |n| n.state(0, 9) == Some(MemberState::Dead))
        .expect("declared dead");
    assert!(took <= min + Duration::from_millis(200), "took {took:?}");
}

/// A push-pull that carries a suspicion (or a death, which it relays as a suspicion)
/// the receiver already holds is not an independent confirmation: only a member's own
/// probe is (Lifeguard §IV-B).
#[test]
fn lifeguard_push_pull_is_not_an_independent_confirmation() {
    let mut net = node_0_suspects_9_on_1s_word();
    let max = quick().suspicion_max(10);
    assert_eq!(net.p(0).suspicion_timeout_of(9), Some(max));
    let mut dead = suspect_update(9, 0, 3);
    dead.state = MemberState::Dead;
    for (sender, update) in [(2, suspect_update(9, 0, 2)), (3, dead)] {
        net.inject(
            sender,
            0,
            SwimMessage::PushPull {
                reply: false,
                members: vec![update],
            },
        );
    }
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.p(0).confirmations_of(9), Some(0));
    assert_eq!(net.p(0).suspicion_timeout_of(9), Some(max));
    // The same suspicion by gossip, from a member that probed 9 itself, counts.
    net.inject(
        2,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(9, 0, 2)],
        },
    );
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.p(0).confirmations_of(9), Some(1));
}

#[test]
fn lifeguard_lhm_rises_only_at_the_cut_off_member_and_recovers() {
    let mut net = Net::new(6, quick(), 9);
    converge(&mut net);
    // One-way cut: 0 hears everyone but nobody hears 0, so its probes all fail and
    // no relay's nack reaches it; the others' relays nack them when 0 is silent.
    for b in 1..6 {
        net.cut.insert((0, b));
    }
    net.run_for(Duration::from_secs(6));
    assert!(net.p(0).lhm() >= 3, "lhm {}", net.p(0).lhm());
    assert!(net.p(0).probe_scale() > 1);
    for o in 1..6 {
        assert_eq!(net.p(o).lhm(), 0, "healthy member {o} kept its health");
    }
    net.heal();
    net.run_until(Duration::from_secs(120), |n| n.p(0).lhm() == 0)
        .expect("lhm decays on successful probes");
    converge(&mut net);
}

#[test]
fn lifeguard_buddy_ping_carries_the_suspicion_and_the_suspect_refutes() {
    let mut net = Net::new(5, quick(), 10);
    converge(&mut net);
    net.keep_log = true;
    // Only 0 suspects 3; gossip would also carry it, but the ping must lead with it.
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(3, 0, 1)],
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.p(3).incarnation() == 1)
        .expect("3 refutes");
    for (_, from, to, msg) in &net.log {
        if let (0, 3, SwimMessage::Ping { updates, .. }) = (*from, *to, msg) {
            assert_eq!(
                updates.first(),
                Some(&suspect_update(3, 0, 0)),
                "buddy first"
            );
        }
    }
}

#[test]
fn a_healed_partition_converges_and_false_positives_are_counted() {
    let cfg = quick();
    let bound = cfg.convergence_bound(6);
    let mut net = Net::new(6, cfg, 11);
    converge(&mut net);
    net.isolate(&[0, 1, 2]);
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.state(0, 4), Some(MemberState::Dead));
    assert_eq!(net.state(4, 0), Some(MemberState::Dead));
    assert!(net.settled().is_err());
    net.heal();
    net.run_until(bound, |n| n.settled().is_ok())
        .unwrap_or_else(|| panic!("no convergence after heal: {:?}", net.settled()));
    let m = net.metrics();
    assert!(m["false_positive_dead"] > 0.0);
    assert!(
        m["false_positive_dead_healthy"] > 0.0,
        "nobody stalled: {m:?}"
    );
    // Declarations are counted at the declarer; every declarer's own view turned
    // dead too, as did the views of those who only heard of it.
    assert!(
        m["false_positive_dead_views"] >= m["false_positive_dead"],
        "{m:?}"
    );
    assert!(m["false_positive_suspect"] > 0.0, "{m:?}");
}

#[test]
fn a_paused_members_false_positives_are_not_counted_as_healthy() {
    let mut net = Net::new(6, quick(), 12);
    converge(&mut net);
    net.pause(5);
    net.run_until(Duration::from_secs(60), |n| {
        n.state(0, 5) == Some(MemberState::Dead)
    })
    .expect("paused member declared dead");
    net.resume(5);
    converge(&mut net);
    let m = net.metrics();
    assert!(m["false_positive_dead"] > 0.0);
    assert_eq!(m["false_positive_dead_healthy"], 0.0, "{m:?}");
    assert!(net.p(5).incarnation() >= 1, "the paused member refuted");
}

// ---- injectable bugs are caught ----

#[test]
#[should_panic(expected = "swim-precedence")]
fn bug_alive_overriding_a_same_incarnation_suspect_is_caught() {
    let bugs = SwimBugs {
        alive_overrides_suspect: true,
        ..SwimBugs::default()
    };
    let mut net = Net::with_bugs(5, quick(), 13, bugs);
    converge(&mut net);
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(2, 0, 1)],
        },
    );
    net.inject(
        3,
        0,
        SwimMessage::Gossip {
            updates: vec![Update {
                node: 2,
                incarnation: 0,
                state: MemberState::Alive,
                from: 2,
                meta: None,
            }],
        },
    );
    net.run_for(Duration::from_millis(10));
}

#[test]
fn bug_refuting_at_the_same_incarnation_leaves_a_live_member_dead() {
    let bugs = SwimBugs {
        refute_same_incarnation: true,
        ..SwimBugs::default()
    };
    let mut net = Net::with_bugs(5, quick(), 14, bugs);
    converge(&mut net);
    net.inject(
        1,
        0,
        SwimMessage::Gossip {
            updates: vec![suspect_update(2, 0, 1)],
        },
    );
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.state(0, 2), Some(MemberState::Dead));
    assert!(net.settled().is_err());
}

/// Scale: 512 members for 60 simulated seconds (run with `--ignored`; its speed is
/// measured by `benches/gossip.rs`, not here).
#[test]
#[ignore]
fn scale_512_members_for_60_seconds() {
    let cfg = SwimConfig::default();
    let mut net = Net::new(512, cfg, 15);
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.settled(), Ok(()), "512 members joined through one seed");
    net.crash(100);
    net.run_for(Duration::from_secs(30));
    let m = net.metrics();
    assert!(net.all_hold(100, MemberState::Dead));
    assert!(m["first_detection_ms_p50"] > 0.0);
    assert!(m["messages_per_member_per_period"] < 40.0, "{m:?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut net = Net::new(6, quick(), seed);
        net.keep_log = true;
        net.run_for(Duration::from_secs(5));
        net.crash(2);
        net.run_for(Duration::from_secs(20));
        format!("{:?}", net.log)
    };
    assert_eq!(run(16), run(16));
    assert_ne!(run(16), run(17));
}

#[test]
fn config_parses_from_a_scenario_table_and_names_bad_fields() {
    let cfg: SwimConfig = toml::from_str(
        r#"
        probe_order = "random"
        seeds = [0, 1]
        lifeguard_buddy = false
        nodes = [{ id = 2, tags = { zone = "a" }, services = ["web", "db"], join_at_ms = 3000 }]
        "#,
    )
    .expect("parses");
    assert_eq!(cfg.probe_order, ProbeOrder::Random);
    assert_eq!(cfg.seeds, vec![0, 1]);
    assert!(!cfg.lifeguard_buddy && cfg.lifeguard_lhm);
    assert_eq!(
        cfg.probe_interval_ms, 1_000,
        "unset fields keep memberlist defaults"
    );
    assert_eq!(cfg.node_spec(2).map(|s| s.services.len()), Some(2));
    assert!(cfg.validate(3).is_ok());
    assert_eq!(cfg.validate(1).unwrap_err().0, "seeds");
    assert_eq!(cfg.validate(2).unwrap_err().0, "nodes");
    let unknown = toml::from_str::<SwimConfig>("probe_intervall_ms = 5");
    assert!(unknown.is_err());
    let bad = SwimConfig {
        probe_timeout_ms: 1_000,
        ..SwimConfig::default()
    };
    assert_eq!(bad.validate(3).unwrap_err().0, "probe_timeout_ms");
    let twice = SwimConfig {
        nodes: vec![NodeSpec::default(), NodeSpec::default()],
        ..SwimConfig::default()
    };
    assert_eq!(twice.validate(3).unwrap_err().0, "nodes");
    assert!(toml::from_str::<super::SwimWorkload>("").is_ok());
    assert!(toml::from_str::<super::SwimWorkload>("clients = 1").is_err());
}

#[test]
fn a_quick_restart_is_not_a_false_positive_about_the_new_life() {
    let mut net = Net::new(5, quick(), 18);
    converge(&mut net);
    net.crash(3);
    net.run_for(Duration::from_millis(1500));
    net.start(3);
    converge(&mut net);
    assert_eq!(net.metrics()["false_positive_dead"], 0.0);
}

#[test]
fn first_detection_counts_probe_periods_from_the_crash_to_the_first_pick() {
    // Round-robin over 5 others: each member picks the crashed one within 2·5 − 1
    // periods of its first period after the crash, and the suspicion comes at the end
    // of the picking period.
    let mut net = Net::new(6, quick(), 21);
    converge(&mut net);
    net.crash(2);
    net.run_for(Duration::from_secs(30));
    let m = net.metrics();
    let periods = m["first_detection_periods_p50"];
    assert!((1.0..=9.0).contains(&periods), "{m:?}");
    assert_eq!(periods, periods.round(), "whole periods: {m:?}");
    // Any member's detection comes at the end of its picking period: at least as many
    // whole periods after the crash as it counted (≥ R), and the member that counted
    // R detects within one partial period more (≤ R + 1).
    let first_ms = m["first_detection_ms_p50"];
    assert!(first_ms >= periods * 1000.0 - 1.0, "{m:?}");
    assert!(first_ms <= (periods + 1.0) * 1000.0 + 100.0, "{m:?}");
    // Bytes: a 16-byte header per message at least.
    assert!(
        m["bytes_per_member_per_period"] >= 16.0 * m["messages_per_member_per_period"],
        "{m:?}"
    );
}

/// The handler a completed sync runs, boxed so that stepping it is not generic
/// recursion.
type SyncedStep<P> = Box<dyn FnOnce(&mut P, &mut Context<'_, P>)>;
