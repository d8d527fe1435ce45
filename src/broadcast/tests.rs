//! The broadcast driven by hand, without the simulator: each test builds a cluster,
//! injects a fault, runs, and asserts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::check::{ClusterView, Metrics};
use crate::client::{Client, ClientContext, ClientEffect};
use crate::history::OpType;
use crate::process::{Context, Effect, Process, RequestId, TimerId};
use crate::storage::Storage;

/// Steps any one test may take; a livelock fails instead of hanging.
const STEPS_MAX: usize = 100_000;

/// A cluster on an instant network. Messages on a cut link are lost; timers fire in
/// deadline order; a crash loses unsynced writes. The checkers look after every step.
struct Cluster {
    config: Config,
    bugs: Bugs,
    nodes: Vec<Option<BroadcastProcess>>,
    storage: Vec<Storage<std::sync::Arc<str>>>,
    /// Per node, its storage as of the last step that left nothing unsynced: what its
    /// disk holds (see [`Cluster::crash`]).
    disk: Vec<Storage<std::sync::Arc<str>>>,
    rng: Vec<ChaCha8Rng>,
    next_timer: Vec<u64>,
    now: Duration,
    in_flight: VecDeque<(NodeId, NodeId, Message)>,
    timers: BTreeMap<(Duration, NodeId, TimerId), Timer>,
    replies: Vec<(RequestId, Response)>,
    /// Directed links `(from, to)` that lose every message.
    cut: BTreeSet<(NodeId, NodeId)>,
    checkers: Vec<Box<dyn Checker<BroadcastProcess>>>,
    /// The first safety violation, as `checker: reason`.
    violation: Option<String>,
    next_request: u64,
}

impl Cluster {
    fn new(nodes: usize, config: Config, bugs: Bugs) -> Self {
        let mut cluster = Cluster {
            config,
            bugs,
            nodes: (0..nodes).map(|_| None).collect(),
            storage: vec![Storage::default(); nodes],
            disk: vec![Storage::default(); nodes],
            rng: (0..nodes as u64).map(ChaCha8Rng::seed_from_u64).collect(),
            next_timer: vec![0; nodes],
            now: Duration::ZERO,
            in_flight: VecDeque::new(),
            timers: BTreeMap::new(),
            replies: Vec::new(),
            cut: BTreeSet::new(),
            checkers: vec![
                Box::new(Integrity::new(nodes)),
                Box::new(Durability::new(nodes)),
                Box::new(Agreement::new(nodes)),
            ],
            violation: None,
            next_request: 0,
        };
        for node in 0..nodes {
            cluster.start(node);
        }
        cluster
    }

    fn healthy(nodes: usize) -> Self {
        Cluster::new(nodes, Config::default(), Bugs::default())
    }

    fn node(&self, node: NodeId) -> &BroadcastProcess {
        self.nodes[node].as_ref().expect("node is up")
    }

    fn step(
        &mut self,
        node: NodeId,
        handler: impl FnOnce(&mut BroadcastProcess, &mut Context<'_, BroadcastProcess>),
    ) {
        let mut effects = Vec::new();
        let nodes = self.nodes.len();
        let process = self.nodes[node].as_mut().expect("only up nodes step");
        let mut ctx = Context::new(
            node,
            nodes,
            self.now,
            &mut self.rng[node],
            &mut self.storage[node],
            &mut self.next_timer[node],
            &mut effects,
        );
        handler(process, &mut ctx);
        let mut syncs = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { to, msg } if !self.cut.contains(&(node, to)) => {
                    self.in_flight.push_back((node, to, msg));
                }
                Effect::SetTimer { id, after, timer } => {
                    self.timers.insert((self.now + after, node, id), timer);
                }
                Effect::CancelTimer { id } => self.timers.retain(|k, _| (k.1, k.2) != (node, id)),
                Effect::Reply { id, response } => self.replies.push((id, response)),
                // A disk with no latency: the sync completes right after the step.
                Effect::Sync { id, writes } => syncs.push((id, writes)),
                _ => {}
            }
        }
        if self.storage[node].unsynced_writes() == 0 {
            self.disk[node] = self.storage[node].clone();
        }
        self.check(node);
        for (id, writes) in syncs {
            self.storage[node].complete_sync(writes);
            let synced: SyncedStep<BroadcastProcess> =
                Box::new(move |p, ctx| p.on_synced(ctx, id, Ok(())));
            self.step(node, synced);
        }
    }

    fn check(&mut self, node: NodeId) {
        let view = ClusterView::new(self.now, &self.nodes);
        for checker in &mut self.checkers {
            if let Err(reason) = checker.after_step(&view, node) {
                let name = checker.name();
                self.violation.get_or_insert(format!("{name}: {reason}"));
            }
        }
    }

    fn start(&mut self, node: NodeId) {
        assert!(self.nodes[node].is_none(), "always kill before restart");
        self.nodes[node] = Some(BroadcastProcess::new(self.config.clone(), self.bugs));
        self.next_timer[node] = 0;
        self.step(node, |p, ctx| p.on_start(ctx));
    }

    /// Power loss: unsynced writes, timers and messages on their way to it are gone.
    fn crash(&mut self, node: NodeId) {
        if self.storage[node].unsynced_writes() == 0 {
            self.storage[node].crash(0);
        } else {
            // `Storage::crash` trips its own debug assertion when it drops a write to a
            // new key, so fall back to the last synced image. That image is exact here:
            // every handler that syncs leaves nothing unsynced behind it.
            self.storage[node] = self.disk[node].clone();
        }
        self.nodes[node] = None;
        self.timers.retain(|k, _| k.1 != node);
        self.in_flight.retain(|m| m.1 != node);
        self.check(node);
    }

    fn request(&mut self, node: NodeId, req: Request) -> Response {
        self.next_request += 1;
        let id = RequestId {
            client: 0,
            seq: self.next_request,
        };
        self.step(node, |p, ctx| p.on_request(ctx, id, req));
        let at = self
            .replies
            .iter()
            .position(|r| r.0 == id)
            .expect("a reply");
        self.replies.remove(at).1
    }

    fn broadcast(&mut self, node: NodeId, id: u64) -> Response {
        let value = format!("v{id}");
        self.request(node, Request::Broadcast { id, value })
    }

    /// Isolates `node`: every message to or from it is lost until [`Cluster::heal`].
    fn isolate(&mut self, node: NodeId) {
        for other in (0..self.nodes.len()).filter(|&o| o != node) {
            self.cut.insert((node, other));
            self.cut.insert((other, node));
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Delivers every message, then fires timers due by `until`, until neither is left.
    fn run_until(&mut self, until: Duration) {
        for _ in 0..STEPS_MAX {
            if let Some((from, to, msg)) = self.in_flight.pop_front() {
                if self.nodes[to].is_some() {
                    self.step(to, |p, ctx| p.on_message(ctx, from, msg));
                }
                continue;
            }
            match self.timers.first_key_value() {
                Some((&(at, node, _), _)) if at <= until => {
                    let (_, timer) = self.timers.pop_first().expect("just seen");
                    self.now = at;
                    self.step(node, |p, ctx| p.on_timer(ctx, timer));
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("no quiescence within {STEPS_MAX} steps");
    }

    fn run_ms(&mut self, ms: u64) {
        self.run_until(self.now + Duration::from_millis(ms));
    }

    fn settled(&mut self) -> Result<(), String> {
        let view = ClusterView::new(self.now, &self.nodes);
        self.checkers.iter_mut().try_for_each(|c| c.settled(&view))
    }

    fn metrics(&self) -> Metrics {
        let mut out = Metrics::new();
        self.checkers.iter().for_each(|c| c.metrics(&mut out));
        out
    }

    fn ids(&self, node: NodeId) -> Vec<u64> {
        self.node(node).delivered().keys().copied().collect()
    }

    /// One random event: a message delivered out of order, lost or duplicated, a timer
    /// fired, a broadcast at a random node, or a crash or restart.
    fn random_event(&mut self, rng: &mut ChaCha8Rng, next_id: &mut u64) {
        self.now += Duration::from_millis(1);
        let nodes = self.nodes.len();
        let pending = self.in_flight.len();
        let node = rng.gen_range(0..nodes);
        match rng.gen_range(0..100) {
            0..50 if pending > 0 => {
                let (from, to, msg) = self.in_flight.remove(rng.gen_range(0..pending)).unwrap();
                if self.nodes[to].is_some() {
                    self.step(to, |p, ctx| p.on_message(ctx, from, msg));
                }
            }
            50..60 if pending > 0 => {
                self.in_flight.remove(rng.gen_range(0..pending));
            }
            60..65 if pending > 0 => {
                let copy = self.in_flight[rng.gen_range(0..pending)].clone();
                self.in_flight.push_back(copy);
            }
            65..80 => {
                if let Some(((at, node, _), timer)) = self.timers.pop_first() {
                    self.now = self.now.max(at);
                    self.step(node, |p, ctx| p.on_timer(ctx, timer));
                }
            }
            80..93 if self.nodes[node].is_some() => {
                *next_id += 1;
                self.broadcast(node, *next_id);
            }
            93..97 if self.nodes[node].is_some() => self.crash(node),
            _ if self.nodes[node].is_none() => self.start(node),
            _ => {}
        }
    }

    /// Random faults for `events` steps, then the heal: every node up, no loss, time
    /// to settle. Returns the first violation, or why agreement did not settle.
    fn chaos(&mut self, seed: u64, events: usize) -> Result<(), String> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut next_id = 0;
        for _ in 0..events {
            self.random_event(&mut rng, &mut next_id);
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].is_none() {
                self.start(node);
            }
        }
        self.run_ms(10_000);
        match self.violation.take() {
            Some(violation) => Err(violation),
            None => self.settled(),
        }
    }
}

#[test]
fn a_broadcast_reaches_every_node_and_is_acknowledged_by_all() {
    let mut c = Cluster::healthy(3);
    assert_eq!(c.broadcast(1, 7), Response::Ok);
    assert_eq!(c.ids(1), [7], "the origin delivers before it answers");
    c.run_ms(0);
    for node in 0..3 {
        assert_eq!(c.node(node).delivered().get(&7).map(|v| &**v), Some("v7"));
        assert_eq!(c.node(node).unacked(), 0, "node {node} awaits no ack");
    }
    assert_eq!(c.node(0).deliveries()[0].source, Source::Peer(1));
    assert!(c.timers.is_empty(), "nothing owed, so no resend timer left");
    assert_eq!(c.violation, None);
    assert_eq!(c.settled(), Ok(()));
    let read = c.request(2, Request::Read);
    assert_eq!(read, Response::Values(BTreeSet::from([7])));
}

#[test]
fn duplicates_are_delivered_once_and_acknowledged_again() {
    let mut c = Cluster::healthy(2);
    let msg = Message::Value {
        id: 3,
        value: "v3".into(),
    };
    c.broadcast(0, 3);
    c.in_flight.clear();
    for _ in 0..2 {
        c.step(1, |p, ctx| p.on_message(ctx, 0, msg.clone()));
    }
    assert_eq!(c.node(1).deliveries().len(), 1);
    let acks: Vec<_> = c.in_flight.iter().map(|m| &m.2).collect();
    assert_eq!(acks, [&Message::Ack { id: 3 }, &Message::Ack { id: 3 }]);
    // A client asking again with a known id is answered, not delivered again.
    assert_eq!(c.broadcast(1, 3), Response::Ok);
    assert_eq!(c.node(1).deliveries().len(), 1);
    assert_eq!(c.violation, None);
}

#[test]
fn a_lost_value_is_resent_until_acknowledged() {
    let mut c = Cluster::healthy(3);
    c.isolate(2);
    c.broadcast(0, 1);
    c.run_ms(500);
    assert_eq!(c.ids(2), Vec::<u64>::new());
    let resent_while_cut = c.node(0).retransmits() + c.node(1).retransmits();
    assert!(resent_while_cut > 0);
    assert!(c.settled().is_err(), "node 2 cannot have it yet");
    c.heal();
    c.run_ms(1_000);
    assert_eq!(c.ids(2), [1]);
    assert_eq!(c.node(0).unacked() + c.node(1).unacked(), 0);
    assert!(c.timers.is_empty());
    assert_eq!(c.settled(), Ok(()));
    assert_eq!(c.violation, None);
}

#[test]
fn resends_back_off_to_the_cap_and_are_batched() {
    let config = Config {
        retransmit_ms: 10,
        retransmit_ms_max: 40,
        retransmit_batch_max: 2,
        ..Config::default()
    };
    let mut c = Cluster::new(2, config, Bugs::default());
    c.isolate(1);
    for id in 0..5 {
        c.broadcast(0, id);
    }
    let mut fired_at = Vec::new();
    let mut resent = Vec::new();
    for _ in 0..5 {
        let (&(at, node, _), _) = c.timers.first_key_value().expect("a resend timer");
        assert_eq!(node, 0);
        let before = c.node(0).retransmits();
        c.run_until(at);
        fired_at.push(at.as_millis());
        resent.push(c.node(0).retransmits() - before);
    }
    assert_eq!(
        fired_at,
        [10, 30, 70, 110, 150],
        "10, 20, 40, then capped at 40"
    );
    assert_eq!(resent, [2, 2, 2, 2, 2], "at most a batch per round");
    c.heal();
    c.run_ms(1_000);
    assert_eq!(c.ids(1), [0, 1, 2, 3, 4]);
    // The acks showed the link works: a new loss is retried after the base delay again.
    c.isolate(1);
    c.broadcast(0, 5);
    let (&(at, _, _), _) = c.timers.first_key_value().expect("a resend timer");
    assert_eq!(at - c.now, Duration::from_millis(10));
}

#[test]
fn a_node_refuses_values_beyond_its_capacity() {
    let config = Config {
        max_values: 2,
        ..Config::default()
    };
    let mut c = Cluster::new(2, config, Bugs::default());
    assert_eq!(c.broadcast(0, 1), Response::Ok);
    assert_eq!(c.broadcast(0, 2), Response::Ok);
    assert_eq!(c.broadcast(0, 3), Response::Full);
    assert_eq!(
        c.broadcast(0, 2),
        Response::Ok,
        "a known id is still answered"
    );
    assert_eq!(c.ids(0), [1, 2]);
}

#[test]
fn a_value_reaches_every_node_though_its_origin_crashes() {
    let mut c = Cluster::healthy(3);
    c.cut.insert((0, 2));
    c.broadcast(0, 5);
    c.crash(0);
    c.run_ms(1_000);
    assert_eq!(
        c.ids(2),
        [5],
        "node 1 relayed what the origin could not send"
    );
    assert_eq!(c.node(2).deliveries()[0].source, Source::Peer(1));
    assert_eq!(c.settled(), Ok(()));
}

#[test]
fn a_restarted_node_recovers_its_values_and_resends_them() {
    let mut c = Cluster::healthy(3);
    c.isolate(2);
    for id in 1..=3 {
        c.broadcast(0, id);
    }
    c.run_ms(0);
    // Node 1 is the only other holder; crash the origin, then node 1 too.
    c.crash(0);
    c.start(0);
    let sources: Vec<_> = c.node(0).deliveries().iter().map(|d| d.source).collect();
    assert_eq!(sources, [Source::Recovered; 3]);
    c.crash(1);
    c.heal();
    c.run_ms(1_000);
    assert_eq!(
        c.ids(2),
        [1, 2, 3],
        "the restarted origin resent what node 2 lacked"
    );
    c.start(1);
    assert_eq!(c.ids(1), [1, 2, 3]);
    c.run_ms(1_000);
    assert_eq!(c.settled(), Ok(()));
    assert_eq!(c.violation, None);
}

#[test]
fn ack_before_sync_loses_an_acknowledged_value_and_durability_says_so() {
    for bugs in [
        Bugs::default(),
        Bugs {
            ack_before_sync: true,
            ..Bugs::default()
        },
    ] {
        let mut c = Cluster::new(3, Config::default(), bugs);
        c.isolate(0);
        assert_eq!(c.broadcast(0, 9), Response::Ok);
        c.crash(0);
        c.start(0);
        if bugs.ack_before_sync {
            assert_eq!(c.ids(0), Vec::<u64>::new());
            let violation = c.violation.expect("durability catches the loss");
            assert!(
                violation.starts_with("broadcast-durability: node 0 lost 1"),
                "{violation}"
            );
        } else {
            assert_eq!(c.ids(0), [9]);
            assert_eq!(c.violation, None);
        }
    }
}

#[test]
fn no_retransmit_leaves_a_node_behind_after_the_heal_and_agreement_says_so() {
    for bugs in [
        Bugs::default(),
        Bugs {
            no_retransmit: true,
            ..Bugs::default()
        },
    ] {
        let mut c = Cluster::new(3, Config::default(), bugs);
        c.isolate(2);
        c.broadcast(0, 4);
        c.run_ms(100);
        c.heal();
        c.run_ms(2_000);
        assert_eq!(c.violation, None, "safety holds either way");
        if bugs.no_retransmit {
            assert_eq!(c.node(0).retransmits(), 0);
            let reason = c.settled().expect_err("agreement fails");
            assert!(reason.starts_with("node 2 lacks 1 of 1"), "{reason}");
        } else {
            assert_eq!(c.settled(), Ok(()));
        }
    }
}

#[test]
fn integrity_rejects_a_value_nobody_broadcast() {
    let mut c = Cluster::healthy(2);
    c.broadcast(0, 1);
    c.run_ms(0);
    assert_eq!(c.violation, None);
    let forged = Message::Value {
        id: 99,
        value: "forged".into(),
    };
    c.step(1, |p, ctx| p.on_message(ctx, 0, forged));
    let violation = c.violation.expect("integrity catches it");
    assert!(
        violation.starts_with("broadcast-integrity: node 1 delivered id 99"),
        "{violation}"
    );
}

#[test]
fn integrity_rejects_a_changed_value_and_a_second_delivery() {
    let mut c = Cluster::healthy(2);
    c.broadcast(0, 1);
    let changed = Message::Value {
        id: 1,
        value: "other".into(),
    };
    c.in_flight.clear();
    c.step(1, |p, ctx| p.on_message(ctx, 0, changed));
    let violation = c.violation.take().expect("a changed value is caught");
    assert!(
        violation.contains("but \"v1\" was broadcast"),
        "{violation}"
    );

    let mut c = Cluster::healthy(2);
    c.broadcast(0, 1);
    c.run_ms(0);
    let again = Delivery {
        id: 1,
        source: Source::Peer(1),
    };
    c.nodes[0].as_mut().unwrap().forge_delivery(again);
    c.check(0);
    let violation = c.violation.expect("a second delivery is caught");
    assert_eq!(
        violation,
        "broadcast-integrity: node 0 delivered id 1 twice"
    );
}

#[test]
fn durability_rejects_a_node_that_comes_back_with_less() {
    let mut c = Cluster::healthy(2);
    c.broadcast(0, 1);
    c.run_ms(0);
    c.crash(1);
    c.start(1);
    assert_eq!(
        c.violation, None,
        "a restart from its own disk keeps everything"
    );
    c.crash(1);
    c.storage[1] = Storage::default(); // a replaced disk
    c.start(1);
    let violation = c.violation.expect("durability catches it");
    assert!(
        violation.starts_with("broadcast-durability: node 1 lost 1"),
        "{violation}"
    );
}

#[test]
fn agreement_waits_for_every_up_node_and_reports_metrics() {
    let mut c = Cluster::healthy(3);
    c.isolate(2);
    c.broadcast(0, 1);
    c.broadcast(1, 2);
    c.run_ms(0);
    let reason = c.settled().expect_err("node 2 is cut off");
    assert_eq!(reason, "node 2 lacks 2 of 2 broadcast values, first id 1");
    c.crash(2);
    assert_eq!(c.settled(), Ok(()), "only up nodes must agree");
    c.start(2);
    c.heal();
    c.run_ms(1_000);
    assert_eq!(c.settled(), Ok(()));
    let metrics = c.metrics();
    assert_eq!(metrics["delivered_values"], 2.0);
    assert!(metrics["retransmits"] > 0.0);
    // Broadcast at 0 ms; node 2 came back and got both at the first resend after the heal.
    let delivered_at = c.now.as_secs_f64() * 1000.0;
    assert!(metrics["max_delivery_ms"] > 0.0 && metrics["max_delivery_ms"] <= delivered_at);
}

type Effects = Vec<ClientEffect<BroadcastProcess, BroadcastClient>>;

/// Client 1 of a 3-node cluster, driven by hand.
struct TestClient {
    client: BroadcastClient,
    rng: ChaCha8Rng,
    next_seq: u64,
    next_timer: u64,
}

impl TestClient {
    fn new(workload: &Workload) -> Self {
        TestClient {
            client: BroadcastClient::new(workload),
            rng: ChaCha8Rng::seed_from_u64(1),
            next_seq: 0,
            next_timer: 0,
        }
    }

    /// Runs one handler and returns its effects.
    fn step(
        &mut self,
        handler: impl FnOnce(
            &mut BroadcastClient,
            &mut ClientContext<'_, BroadcastProcess, BroadcastClient>,
        ),
    ) -> Effects {
        let mut effects = Vec::new();
        let mut ctx = ClientContext::new(
            1,
            3,
            Duration::ZERO,
            &mut self.rng,
            &mut self.next_seq,
            &mut self.next_timer,
            &mut effects,
        );
        handler(&mut self.client, &mut ctx);
        effects
    }

    /// Fires the tick timer and returns the request it sent, with the effects.
    fn tick(&mut self) -> (RequestId, Effects) {
        let effects = self.step(|c, ctx| c.on_timer(ctx, ClientTimer::Next));
        let requests: Vec<RequestId> = effects
            .iter()
            .filter_map(|e| match e {
                ClientEffect::Request { to, id, .. } if *to < 3 => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(requests.len(), 1, "one request per tick: {effects:?}");
        (requests[0], effects)
    }

    fn respond(&mut self, id: RequestId, response: Response) -> Effects {
        self.step(|c, ctx| c.on_response(ctx, 0, id, response))
    }
}

fn history(effects: &Effects) -> Vec<(OpType, Op)> {
    let ops = effects.iter().filter_map(|e| match e {
        ClientEffect::History { kind, op } => Some((*kind, op.clone())),
        _ => None,
    });
    ops.collect()
}

fn sets_next_tick(effects: &Effects) -> bool {
    let next = |e: &_| {
        matches!(
            e,
            ClientEffect::SetTimer {
                timer: ClientTimer::Next,
                ..
            }
        )
    };
    effects.iter().any(next)
}

#[test]
fn the_client_records_ok_fail_and_info_and_counts_pending() {
    let mut t = TestClient::new(&Workload {
        max_values: 3,
        ..Workload::default()
    });
    let started = t.step(|c, ctx| c.on_start(ctx));
    let phase_ok = |e: &_| matches!(e, ClientEffect::SetTimer { after, .. } if *after < Duration::from_millis(20));
    assert!(started.len() == 1 && phase_ok(&started[0]), "{started:?}");

    let (request, first) = t.tick();
    let op = Op::Broadcast {
        id: 1 << 32 | 1,
        value: "c1-1".into(),
    };
    assert_eq!(history(&first), [(OpType::Invoke, op.clone())]);
    let asked = Request::Broadcast {
        id: 1 << 32 | 1,
        value: "c1-1".into(),
    };
    let sent = |e: &_| matches!(e, ClientEffect::Request { req, .. } if *req == asked);
    assert!(first.iter().any(sent), "{first:?}");
    assert!(sets_next_tick(&first));
    assert_eq!(t.client.pending(), 1);
    let done = t.respond(request, Response::Ok);
    assert!(
        matches!(done[0], ClientEffect::CancelTimer { .. }),
        "{done:?}"
    );
    assert_eq!(history(&done), [(OpType::Ok, op)]);
    assert_eq!(t.client.pending(), 0);

    let (request, _) = t.tick();
    let refused = t.respond(request, Response::Full);
    assert_eq!(history(&refused)[0].0, OpType::Fail);

    let (request, third) = t.tick();
    assert!(!sets_next_tick(&third), "max_values reached: no next tick");
    let timed_out = t.step(|c, ctx| c.on_timer(ctx, ClientTimer::Timeout(request)));
    assert_eq!(history(&timed_out)[0].0, OpType::Info);
    assert_eq!(t.client.pending(), 0);
    let late = t.respond(request, Response::Ok);
    assert_eq!(history(&late), [], "a late reply changes nothing");
    assert_eq!(t.client.issued(), 3);
}

#[test]
fn a_quiesced_client_starts_nothing_but_finishes_what_is_in_flight() {
    let mut t = TestClient::new(&Workload::default());
    let (request, _) = t.tick();
    t.step(|c, ctx| c.on_quiesce(ctx));
    assert_eq!(t.client.pending(), 1);
    let tick = t.step(|c, ctx| c.on_timer(ctx, ClientTimer::Next));
    assert!(tick.is_empty(), "{tick:?}");
    t.respond(request, Response::Ok);
    assert_eq!(t.client.pending(), 0);
    assert_eq!(t.client.issued(), 1);
}

#[test]
fn ops_serialize_as_history_fields() {
    let op = Op::Broadcast {
        id: 1 << 32 | 7,
        value: "c1-7".into(),
    };
    let json = serde_json::to_string(&op).unwrap();
    assert_eq!(json, r#"{"f":"broadcast","id":4294967303,"value":"c1-7"}"#);
}

fn setup(config: Config, workload: Workload, bugs: &[&str]) -> Setup<Broadcast> {
    Setup {
        nodes: 3,
        config,
        workload,
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
        leader_ms: None,
        coverage: false,
    }
}

#[test]
fn scenario_tables_parse_with_defaults_and_reject_unknown_fields() {
    let config: Config = toml::from_str("retransmit_ms = 20").unwrap();
    assert_eq!(config.retransmit_ms, 20);
    assert_eq!(
        config.retransmit_ms_max,
        Config::default().retransmit_ms_max
    );
    let err = toml::from_str::<Config>("retransmit = 20").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `retransmit`"),
        "{err}"
    );
    let workload: Workload = toml::from_str("clients = 5\ninterval_ms = 3").unwrap();
    assert_eq!((workload.clients, workload.interval_ms), (5, 3));
    assert!(toml::from_str::<Workload>("rate = 1").is_err());
}

#[test]
fn validate_names_the_bad_field() {
    let ok = setup(Config::default(), Workload::default(), &[]);
    assert_eq!(Broadcast::validate(&ok), Ok(()));
    let config = Config {
        retransmit_ms_max: 10,
        ..Config::default()
    };
    let err = Broadcast::validate(&setup(config, Workload::default(), &[])).unwrap_err();
    assert_eq!(err.0, "cluster.config.retransmit_ms_max");
    let workload = Workload {
        clients: 100,
        max_values: 1_000,
        ..Workload::default()
    };
    let err = Broadcast::validate(&setup(Config::default(), workload, &[])).unwrap_err();
    assert_eq!(err.0, "workload.max_values");
    let workload = Workload {
        request_timeout_ms: 0,
        ..Workload::default()
    };
    let err = Broadcast::validate(&setup(Config::default(), workload, &[])).unwrap_err();
    assert_eq!(err.0, "workload.request_timeout_ms");
}

#[test]
fn listed_bugs_reach_the_process() {
    let names: Vec<_> = Broadcast::bugs()
        .iter()
        .map(|b| (b.name, b.scenario))
        .collect();
    assert_eq!(
        names,
        [
            ("ack-before-sync", "broadcast-crash"),
            ("no-retransmit", "broadcast-lossy")
        ]
    );
    // A process built with no-retransmit sends once and sets no timer.
    let s = setup(Config::default(), Workload::default(), &["no-retransmit"]);
    let mut c = Cluster::new(3, s.config.clone(), Broadcast::process(&s, 0).bugs());
    c.broadcast(0, 1);
    assert!(c.timers.is_empty());
    assert_eq!(Broadcast::checkers(&s).len(), 3);
}

#[test]
fn random_loss_duplication_reordering_and_crashes_break_nothing() {
    let mut resent = 0.0;
    for seed in 0..100 {
        let mut c = Cluster::healthy(4);
        assert_eq!(c.chaos(seed, 300), Ok(()), "seed {seed}");
        let metrics = c.metrics();
        assert!(
            metrics["delivered_values"] > 0.0,
            "seed {seed}: nothing broadcast"
        );
        resent += metrics["retransmits"];
    }
    assert!(resent > 0.0, "losses and crashes must have caused resends");
}

#[test]
fn random_faults_expose_each_bug() {
    let caught = |bugs: Bugs, checker: &str| {
        let seeds = (0..100).filter(|&seed| {
            let mut c = Cluster::new(4, Config::default(), bugs);
            match c.chaos(seed, 300) {
                Ok(()) => false,
                Err(reason) => {
                    assert!(reason.starts_with(checker), "seed {seed}: {reason}");
                    true
                }
            }
        });
        seeds.count()
    };
    let ack_before_sync = Bugs {
        ack_before_sync: true,
        ..Bugs::default()
    };
    let no_retransmit = Bugs {
        no_retransmit: true,
        ..Bugs::default()
    };
    assert!(caught(ack_before_sync, "broadcast-durability") > 0);
    // Agreement's reasons carry no checker name: they come from `settled`.
    assert!(caught(no_retransmit, "node ") > 0);
}

/// The handler a completed sync runs, boxed so that stepping it is not generic
/// recursion.
type SyncedStep<P> = Box<dyn FnOnce(&mut P, &mut Context<'_, P>)>;
