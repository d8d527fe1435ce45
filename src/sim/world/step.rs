//! Stepping: each actor's event loop. A node's or client's task asks the world to
//! handle what is due at it; this picks the items in order (at most
//! [`STEPS_PER_WAKE_MAX`] per wake-up), routes a slow node's items through its late
//! queue, and runs one handler per item with a fresh [`Context`]. What the handler
//! asked for is carried out by [`super::effects`], and the checkers look after each
//! node step ([`super::check`]).

use std::time::Duration;

use super::super::disk::Completion;
use super::super::mailbox::{Due, Mailbox};
use super::super::trace::{Actor, Fields};
use super::{ClientDue, ClientInput, Late, NodeDue, NodeInput, Status, World, LATE_MAX, P};
use crate::client::{Client, ClientContext};
use crate::process::{ClientId, Context, NodeId, Process, SyncError, TimerId};
use crate::rng::{stream, Purpose};
use crate::spans::recorder::Cause;
use crate::system::System;

/// Most due items one actor handles before yielding to the executor.
pub(super) const STEPS_PER_WAKE_MAX: usize = 4_096;

impl<S: System> World<S> {
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
        // One entry per active slow fault on the node.
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
        assert!(
            slot.late.len() < LATE_MAX,
            "more than {LATE_MAX} handlers queued late at node {id}"
        );
        slot.late.push_back(Late { run_ns, timer, due });
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
            Some(Due::Input(NodeInput::Service { fault, on })) => {
                self.trace.event(now, actor, "service", &on, || {
                    format!("{fault:?} {}", if on { "starts" } else { "ends" })
                });
                process.on_service_fault(&mut ctx, fault, on);
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

    /// Tells every client the fault phase is over.
    pub fn quiesce_clients(&mut self) {
        // One step per client.
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
        self.carry_out_client(c, now, &mut effects);
        self.client_effects = effects;
    }
}

enum ClientStep<S: System> {
    Due(ClientDue<S>),
    Quiesce,
}
