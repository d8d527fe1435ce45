//! The driver on madsim: each process and each client is a madsim node whose task
//! loops over its mailbox; the main task plays the fault schedule, then heals
//! everything and waits for the liveness phase to settle.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::Handle;
use tokio::sync::Notify;

use super::trace::{Actor, TraceRecord};
use super::world::{ClockFault, DiskFault, Failure, FailureKind, NodeAction, Op, Status, World};
use crate::check::{Availability, Metrics};
use crate::history::HistoryEvent;
use crate::process::NodeId;
use crate::process::ServiceFault;
use crate::rng::{stream, Purpose};
use crate::scenario::{Fault, FaultSpec, Scenario, Schedule};
use crate::system::{Setup, System};

/// How often the liveness phase polls the checkers, in simulated time.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// What one simulated run produced.
pub struct SimResult<S: System> {
    /// The trace hash, the run's fingerprint.
    pub trace_hash: u64,
    /// Events the trace hash covers.
    pub trace_events: u64,
    /// Simulated time the run took.
    pub sim_ns: u64,
    /// The first invariant or liveness failure, if any; the run stops at it.
    pub failure: Option<Failure>,
    /// The run's metrics, by name (with `settle_ms` when the liveness phase settled).
    pub metrics: Metrics,
    /// The clients' history, in order, for the history checker.
    pub history: Vec<HistoryEvent<Op<S>>>,
    /// The full trace, when recorded.
    pub trace: Vec<TraceRecord>,
    /// The request traces, when recorded (else empty).
    pub spans: crate::spans::RunSpans,
    /// The nodes each targeted fault struck, by fault index, in the order they
    /// started: what [`Schedule::with_resolved`] records.
    pub resolved: Vec<(usize, Vec<NodeId>)>,
}

type Shared<S> = Arc<Mutex<World<S>>>;

fn lock<S: System>(world: &Shared<S>) -> std::sync::MutexGuard<'_, World<S>> {
    // A poisoned lock means a protocol panicked mid-step; the run is over anyway and
    // the panic is reported by the thread that runs it.
    world.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sleeps until `deadline_ns` after `start` or until something is notified, whichever
/// is first (a notification wins a tie, as with madsim's `timeout`). Written out rather
/// than with `timeout`: this runs once per wake-up of every actor.
async fn wait(start: madsim::time::Instant, notify: &Notify, deadline_ns: Option<u64>) {
    let notified = std::pin::pin!(notify.notified());
    match deadline_ns {
        Some(at) => {
            let mut notified = notified;
            let mut sleep =
                std::pin::pin!(madsim::time::sleep_until(start + Duration::from_nanos(at)));
            std::future::poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await
        }
        None => notified.await,
    }
}

/// A node's task: handles what is due, sleeps until the next thing is. The process
/// itself is (re)started by the driver, synchronously, so that a fault at the same
/// instant as a restart sees the node up.
async fn node_main<S: System>(world: Shared<S>, id: usize) {
    let (notify, start) = {
        let w = lock(&world);
        (w.nodes[id].mailbox.notify.clone(), w.start_instant())
    };
    // Runs until the driver kills the node (a crash, or the end of the run); each
    // round handles a bounded number of items (see `World::run_node`).
    loop {
        let next = lock(&world).run_node(id);
        wait(start, &notify, next).await;
    }
}

async fn client_main<S: System>(world: Shared<S>, c: usize) {
    let (notify, start) = {
        let mut w = lock(&world);
        w.start_client(c);
        (w.clients[c].mailbox.notify.clone(), w.start_instant())
    };
    // Runs until the driver kills the client at the end of the run; each round
    // handles a bounded number of items.
    loop {
        let next = lock(&world).run_client(c);
        wait(start, &notify, next).await;
    }
}

/// The operator's task (only in runs with member faults): carries out its rounds, and
/// kills and restarts the node tasks of replaced nodes as they ask.
async fn operator_main<S: System>(world: Shared<S>) {
    // Taken here, not captured by the node's init closure: the runtime keeps that
    // closure, and a handle in it would keep the runtime alive after the run.
    let handle = Handle::current();
    let (notify, start) = {
        let w = lock(&world);
        (w.operator.mailbox.notify.clone(), w.start_instant())
    };
    // Runs until the driver kills it at the end of the run; each round handles a
    // bounded number of items.
    loop {
        let (next, actions) = lock(&world).run_operator();
        // At most two per round (a replacement's kill and restart).
        for action in actions {
            match action {
                NodeAction::Kill(id) => handle.kill(id),
                NodeAction::Restart(id) => handle.restart(id),
            }
        }
        wait(start, &notify, next).await;
    }
}

/// Runs `schedule` to the end. Call inside a madsim runtime whose seed is the
/// schedule's seed, on a fresh thread.
pub async fn simulate<S: System>(
    scenario: &Scenario,
    setup: Arc<Setup<S>>,
    schedule: &Schedule,
    record: bool,
) -> SimResult<S> {
    let handle = Handle::current();
    let world: Shared<S> = Arc::new(Mutex::new(World::new(
        setup.clone(),
        &scenario.network,
        &scenario.disk,
        schedule.seed,
        record,
    )));
    let (nodes, clients, stop, start) = {
        let mut w = lock(&world);
        w.set_faults(&schedule.faults);
        (
            w.nodes.len(),
            w.clients.len(),
            w.stop.clone(),
            w.start_instant(),
        )
    };
    for id in 0..nodes {
        let w = world.clone();
        let node = handle
            .create_node()
            .name(format!("n{id}"))
            .init(move || node_main(w.clone(), id))
            .build();
        let mut w = lock(&world);
        w.nodes[id].madsim = Some(node.id());
        w.start_node(id);
    }
    let mut actors: Vec<_> = lock(&world)
        .nodes
        .iter()
        .map(|n| n.madsim.expect("node built"))
        .collect();
    for c in 0..clients {
        let w = world.clone();
        let client = handle
            .create_node()
            .name(format!("c{c}"))
            .init(move || client_main(w.clone(), c))
            .build();
        actors.push(client.id());
    }
    // Only runs with member faults have an operator, so that others run as before.
    if lock(&world).operator.enabled {
        let w = world.clone();
        let operator = handle
            .create_node()
            .name("operator")
            .init(move || operator_main(w.clone()))
            .build();
        actors.push(operator.id());
    }

    let mut nemesis = Nemesis {
        handle: &handle,
        world: &world,
        faults: &schedule.faults,
        active: BTreeSet::new(),
        struck: BTreeMap::new(),
        resolved: Vec::new(),
        rng: stream(schedule.seed, Purpose::Target, 0),
    };
    let duration_ns = scenario.duration_ms * 1_000_000;
    let mut timeline: Vec<(u64, usize, bool)> = Vec::new();
    for (i, fault) in schedule.faults.iter().enumerate() {
        timeline.push((fault.at_ms() * 1_000_000, i, true));
        if let Some(end) = fault.end_ms().filter(|&e| e * 1_000_000 < duration_ns) {
            timeline.push((end * 1_000_000, i, false));
        }
    }
    timeline.sort_by_key(|&(at, i, on)| (at, on, i)); // ends before starts at the same instant

    // Safety phase: faults as scheduled. The timeline has at most two entries per
    // fault (its start and its end), plus the end of the phase.
    let mut failed = false;
    for (at_ns, index, on) in timeline
        .into_iter()
        .chain([(duration_ns, usize::MAX, false)])
    {
        failed = !sleep_until(&world, &stop, start, at_ns).await;
        if failed {
            break;
        }
        if index != usize::MAX {
            nemesis.toggle(index, on);
        }
    }

    // Liveness phase: heal everything but the permanent faults, let clients finish,
    // wait for the checkers. Expecting progress, the phase ends as soon as every
    // checker is settled; expecting unavailability, it runs to its bound and the
    // checkers judge it then (they report any progress as a reason).
    let bound_ms = scenario.quiesce_ms(&setup);
    let mut availability = Availability::Progress;
    if !failed {
        nemesis.heal_all();
        let mut w = lock(&world);
        let now = w.now_ns();
        w.trace.event(now, Actor::Sim, "heal", &(), || {
            "every fault healed; clients quiesce".into()
        });
        availability = w.begin_liveness(scenario.liveness.expect);
        w.quiesce_clients();
    }
    let unavailable = availability == Availability::Unavailable;
    let heal_ns = lock(&world).now_ns();
    let deadline_ns = heal_ns + bound_ms * 1_000_000;
    // Once settled, a scenario's `stable_ms` keeps the phase running that much longer
    // and judges it again at the end.
    let stable_ns = scenario.liveness.stable_ms.unwrap_or(0) * 1_000_000;
    let mut settle_ns = None;
    // Each poll advances simulated time by at least SETTLE_POLL, and the phase ends
    // at the first poll past the deadline, or past the stable window that began at a
    // settled poll no later than that. The slack covers the first poll, the poll that
    // settles past the deadline and the one that ends the window.
    let polls_max = (deadline_ns - heal_ns + stable_ns) / SETTLE_POLL.as_nanos() as u64 + 4;
    let mut polls = 0;
    while !failed {
        polls += 1;
        assert!(polls <= polls_max, "more than {polls_max} liveness polls");
        let (now, settled) = {
            let mut w = lock(&world);
            (w.now_ns(), w.settled())
        };
        match (settled, settle_ns) {
            (Ok(()), None) if scenario.liveness.check && !unavailable => {
                settle_ns = Some(now - heal_ns);
                lock(&world).confirm_settled();
                if stable_ns == 0 {
                    break;
                }
            }
            (result, Some(at_ns)) => {
                if now < heal_ns + at_ns + stable_ns {
                    // Judged only at the window's end: replicas may lag for a moment.
                } else {
                    if let Err(reasons) = result {
                        let message = format!(
                            "settled {} ms after the heal, but not {} ms later: {}",
                            at_ns / 1_000_000,
                            stable_ns / 1_000_000,
                            reasons.join("; ")
                        );
                        lock(&world).fail(FailureKind::Liveness, "liveness", message);
                    }
                    break;
                }
            }
            (Err(reasons), None) if now >= deadline_ns => {
                if scenario.liveness.check {
                    let message = match unavailable {
                        false => format!(
                            "not settled {bound_ms} ms after the heal: {}",
                            reasons.join("; ")
                        ),
                        true => format!(
                            "expected the cluster to stay unavailable, but {bound_ms} ms \
                             after the heal: {}",
                            reasons.join("; ")
                        ),
                    };
                    lock(&world).fail(FailureKind::Liveness, "liveness", message);
                }
                break;
            }
            _ if now >= deadline_ns => break,
            _ => {}
        }
        failed = !sleep_until(&world, &stop, start, now + SETTLE_POLL.as_nanos() as u64).await;
    }

    let result = {
        let mut w = lock(&world);
        let sim_ns = w.now_ns();
        let mut metrics = w.metrics();
        if let Some(ns) = settle_ns {
            metrics.insert("settle_ms".into(), ns as f64 / 1e6);
        }
        SimResult {
            trace_hash: w.trace.hash(),
            trace_events: w.trace.events(),
            sim_ns,
            failure: w.failure.clone(),
            metrics,
            history: std::mem::take(&mut w.history),
            trace: w.trace.take_records(),
            spans: crate::spans::RunSpans {
                scenario: scenario.name.clone(),
                ..w.take_spans(sim_ns)
            },
            resolved: std::mem::take(&mut nemesis.resolved),
        }
    };
    // Each actor's task holds the world, and the world's mailboxes hold the tasks'
    // wakers: a cycle that would keep every run's world alive after its runtime is
    // gone. Killing the actors makes madsim drop their futures at their next poll.
    // One per node and client.
    for id in actors {
        handle.kill(id);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
    result
}

/// Sleeps until `at_ns` after the start; `false` if the run failed first.
async fn sleep_until<S: System>(
    world: &Shared<S>,
    stop: &Notify,
    start: madsim::time::Instant,
    at_ns: u64,
) -> bool {
    // Each round sleeps until `at_ns` or until the run fails (the only notification
    // `stop` gets), so it ends after a round or two: the loop only guards against a
    // wake-up that comes before the deadline.
    loop {
        {
            let w = lock(world);
            if w.failure.is_some() {
                return false;
            }
            if w.now_ns() >= at_ns {
                return true;
            }
        }
        let deadline = start + Duration::from_nanos(at_ns);
        let _ =
            madsim::time::timeout(deadline - madsim::time::Instant::now(), stop.notified()).await;
    }
}

/// Plays faults on the world and on madsim's nodes.
struct Nemesis<'a, S: System> {
    handle: &'a Handle,
    world: &'a Shared<S>,
    faults: &'a [FaultSpec],
    active: BTreeSet<usize>,
    /// What each targeted fault that started struck, as concrete faults: what its
    /// end undoes. At most one entry per fault of the schedule.
    struck: BTreeMap<usize, Vec<Fault>>,
    /// The ids each targeted fault resolved to, in start order.
    resolved: Vec<(usize, Vec<NodeId>)>,
    /// Draws the random targets (`minority`, `majority`, `one`).
    rng: rand_chacha::ChaCha8Rng,
}

impl<S: System> Nemesis<'_, S> {
    fn toggle(&mut self, index: usize, on: bool) {
        if !on && !self.active.remove(&index) {
            return; // already ended
        }
        let spec = &self.faults[index];
        let concrete: Cow<'_, [Fault]> = {
            let mut w = lock(self.world);
            let now = w.now_ns();
            let event = if on { "fault" } else { "heal" };
            w.trace.event(now, Actor::Sim, event, &index, || {
                format!("{:?}", spec.fault)
            });
            if on {
                w.fault_started(index);
            }
            match spec.target {
                None => Cow::Borrowed(std::slice::from_ref(&spec.fault)),
                Some(target) if on => {
                    let ids = match &spec.resolved {
                        Some(ids) => ids.clone(),
                        None => {
                            let mut ids = target.resolve(&w.roles(), &mut self.rng);
                            // A down fault strikes only nodes that are up: one that
                            // aborted itself stays as it is.
                            if spec.downed_node().is_some() {
                                ids.retain(|&id| w.nodes[id].status == Status::Up);
                            }
                            ids
                        }
                    };
                    w.trace
                        .event(now, Actor::Sim, "target", &(index, &ids), || {
                            format!("fault {index}: {} = {ids:?}", target.name())
                        });
                    let struck = spec.concrete(&ids, w.nodes.len());
                    self.resolved.push((index, ids));
                    self.struck.insert(index, struck.clone());
                    Cow::Owned(struck)
                }
                Some(_) => Cow::Owned(self.struck.remove(&index).unwrap_or_default()),
            }
        };
        for fault in concrete.iter() {
            self.apply(index, fault, on);
        }
        if on && spec.heals() && !spec.permanent() {
            self.active.insert(index);
        }
    }

    /// Starts or ends one concrete fault, as fault `index` of the schedule.
    fn apply(&self, index: usize, fault: &Fault, on: bool) {
        let mut w = lock(self.world);
        match *fault {
            Fault::Crash { node, torn, .. } => self.down(w, node, index, torn, false, on),
            Fault::DiskWipe { node, .. } => self.down(w, node, index, false, true, on),
            Fault::Pause { node, .. } => {
                let id = w.nodes[node].madsim.expect("node built");
                if w.set_paused(node, index, on) {
                    drop(w);
                    match on {
                        true => self.handle.pause(id),
                        false => self.handle.resume(id),
                    }
                }
            }
            Fault::ClockStep {
                node, offset_ms, ..
            } => w.clock_fault(
                node,
                index,
                ClockFault::Step {
                    offset_ns: offset_ms * 1_000_000,
                },
            ),
            Fault::ClockDrift {
                node, drift_ppm, ..
            } => w.clock_fault(node, index, ClockFault::Drift { drift_ppm }),
            Fault::ClockFreeze { node, .. } => w.clock_fault(node, index, ClockFault::Freeze(on)),
            Fault::DiskStall { node, .. } => w.disk_fault(node, index, DiskFault::Stall, on),
            Fault::DiskSlow { node, factor, .. } => {
                w.disk_fault(node, index, DiskFault::Slow { factor }, on)
            }
            Fault::FsyncError { node, .. } => w.disk_fault(node, index, DiskFault::FsyncError, on),
            Fault::ClientPartition { .. } | Fault::ClientPause { .. } | Fault::ClientPin { .. } => {
                w.client_fault(index, fault, on)
            }
            Fault::Slow {
                node,
                ref delay,
                busy,
                timers,
                ..
            } => w.set_slow(node, index, delay, busy, timers, on),
            Fault::MemberAdd { .. } | Fault::MemberRemove { .. } | Fault::MemberReplace { .. } => {
                w.member_fault(index, fault)
            }
            Fault::ServiceUnhealthy { node, .. } => {
                w.service_fault(node, index, ServiceFault::Unhealthy, on)
            }
            Fault::ServiceHang { node, .. } => w.service_fault(node, index, ServiceFault::Hang, on),
            Fault::Hold { shuffle, .. } => {
                w.net.apply(index, fault, on);
                if !on {
                    w.release_held(index, shuffle);
                }
            }
            _ => w.net.apply(index, fault, on),
        }
    }

    /// A crash or disk wipe starts or ends, on the world and on madsim's node.
    fn down(
        &self,
        mut w: std::sync::MutexGuard<'_, World<S>>,
        node: usize,
        index: usize,
        torn: bool,
        wipe: bool,
        on: bool,
    ) {
        let id = w.nodes[node].madsim.expect("node built");
        match on {
            true => {
                if w.crash(node, index, torn, wipe) {
                    drop(w);
                    self.handle.kill(id);
                }
            }
            false => {
                if w.restart(node) {
                    drop(w);
                    self.handle.restart(id); // after kill, as madsim requires
                }
            }
        }
    }

    /// Ends every active fault but the permanent ones: the start of the liveness phase.
    fn heal_all(&mut self) {
        // At most one entry per fault of the schedule.
        let active: Vec<_> = self.active.iter().copied().collect();
        for index in active {
            self.toggle(index, false);
        }
        let w = lock(self.world);
        let paused_for_good = |node| {
            let concrete = self
                .faults
                .iter()
                .enumerate()
                .flat_map(|(i, f)| match f.target {
                    None => std::slice::from_ref(&f.fault),
                    Some(_) => self.struck.get(&i).map_or(&[][..], Vec::as_slice),
                });
            concrete
                .filter(|f| f.permanent())
                .any(|f| matches!(*f, Fault::Pause { node: n, .. } if n == node))
        };
        assert!(
            (0..w.nodes.len()).all(|n| w.nodes[n].status != Status::Paused || paused_for_good(n)),
            "every pause but a permanent one ends at the heal"
        );
    }
}
