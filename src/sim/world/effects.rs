//! The effect interpreter: a handler returns its effects as data, and this carries
//! them out in order against the world: a node's sends (through the network's
//! send-time fate), timers, storage writes and syncs, replies, trace notes, marks,
//! spans and aborts; a client's requests, timers and history events.

use super::super::network::{DropReason, Fate};
use super::super::trace::{fmt_time, Actor, Fields};
use super::{ClientInput, NodeInput, World, P};
use crate::client::ClientEffect;
use crate::history::{HistoryEvent, OpType};
use crate::process::{ClientId, Effect, NodeId, Process};
use crate::system::System;

impl<S: System> World<S> {
    pub(super) fn carry_out(&mut self, id: NodeId, now: u64, effects: &mut Vec<Effect<P<S>>>) {
        let actor = Actor::Node(id);
        let mut abort = None;
        // The effects of one handler call, each carried out once.
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, msg } => {
                    let seq = self.counters.sent;
                    self.counters.sent += 1;
                    if self.counters.sent_by.len() <= id {
                        self.counters.sent_by.resize(id + 1, 0);
                    }
                    self.counters.sent_by[id] += 1;
                    self.counters.bytes_sent += <P<S>>::message_bytes(&msg) as u64;
                    let digest = crate::fingerprint::fnv(&msg);
                    let class = <P<S>>::message_class(&msg);
                    let fields = || Fields::message(seq, Actor::Node(to), class);
                    self.trace
                        .event_with(now, actor, "send", &(to, digest), || {
                            (format!("to n{to} {msg:?}"), fields())
                        });
                    match self.net.route(id, to, class) {
                        Fate::Dropped(reason) => {
                            match reason {
                                DropReason::Loss => self.counters.dropped_loss += 1,
                                _ => self.counters.dropped_partition += 1,
                            }
                            self.trace
                                .event_with(now, actor, "drop", &(to, reason), || {
                                    (format!("to n{to}: {}", reason.name()), fields())
                                });
                        }
                        Fate::Delivered {
                            latency_ns,
                            duplicate_ns,
                        } => {
                            if let Some(dup_ns) = duplicate_ns {
                                self.counters.duplicated += 1;
                                self.trace.event_with(
                                    now,
                                    actor,
                                    "duplicate",
                                    &(to, dup_ns),
                                    || (format!("to n{to}"), fields()),
                                );
                                let copy = NodeInput::Message {
                                    from: id,
                                    msg: msg.clone(),
                                    digest,
                                    seq,
                                };
                                self.nodes[to].mailbox.push(now + dup_ns, copy);
                            }
                            self.nodes[to].mailbox.push(
                                now + latency_ns,
                                NodeInput::Message {
                                    from: id,
                                    msg,
                                    digest,
                                    seq,
                                },
                            );
                        }
                    }
                }
                Effect::SetTimer {
                    id: timer_id,
                    after,
                    timer,
                } => {
                    let slot = &mut self.nodes[id];
                    let at = slot.clock.timer_due_ns(now, after);
                    slot.mailbox.set_timer(timer_id, at, timer);
                }
                Effect::CancelTimer { id: timer_id } => {
                    let slot = &mut self.nodes[id];
                    slot.mailbox.cancel_timer(timer_id);
                    // A timer that fired but waits for a slow node's CPU is still
                    // cancellable: a cancelled timer never runs.
                    if !slot.late.is_empty() {
                        slot.late.retain(|l| l.timer != Some(timer_id));
                    }
                }
                Effect::Write { key, written } => {
                    self.counters.writes += 1;
                    self.trace
                        .event(now, actor, "write", &(&key, written), || key.clone());
                }
                Effect::Sync { id: sync, writes } => {
                    self.counters.syncs += 1;
                    let latency_ns = self.sync_latency.sample_ns(&mut self.disk_rng);
                    let slot = &mut self.nodes[id];
                    if let Some(fault) = slot.disk.slowed_by() {
                        self.fault_effects.add(fault, "syncs_slowed", 1.0);
                    }
                    let due_ns = slot.disk.start(sync, writes, now, latency_ns);
                    slot.mailbox.push(due_ns, NodeInput::DiskWake);
                    self.trace
                        .event(now, actor, "sync", &(sync.0, writes, due_ns), || {
                            format!(
                                "sync {} of {writes} writes, due at {}",
                                sync.0,
                                fmt_time(due_ns)
                            )
                        });
                }
                Effect::Abort { reason } => {
                    self.trace
                        .event(now, actor, "abort", &reason, || reason.clone());
                    abort = Some(reason);
                }
                Effect::Reply {
                    id: request,
                    response,
                } => {
                    let fields =
                        || Fields::request(request.seq, Actor::Client(request.client), "reply");
                    self.trace
                        .event_with(now, actor, "reply", &(request, &response), || {
                            (format!("{request:?} {response:?}"), fields())
                        });
                    if let Some(spans) = &mut self.spans {
                        let sent = self.counters.sent;
                        spans.reply(id, now, sent, request, format!("{response:?}"));
                    }
                    if request.client == self.operator_id() {
                        // The operator's management network: no client fault cuts it.
                        let at = now + self.net.client_latency_ns();
                        let reply = super::operator::OperatorReply {
                            from: id,
                            id: request,
                            response,
                        };
                        self.operator.mailbox.push(at, Some(reply));
                        continue;
                    }
                    if !self.client_connected(request.client, id) {
                        self.trace.event_with(
                            now,
                            actor,
                            "drop",
                            &(request, "client-partition"),
                            || {
                                let detail =
                                    format!("reply to c{}: client-partition", request.client);
                                (detail, fields())
                            },
                        );
                        continue;
                    }
                    let at = now + self.net.client_latency_ns();
                    let input = ClientInput {
                        from: id,
                        id: request,
                        response,
                    };
                    self.clients[request.client].mailbox.push(at, input);
                }
                Effect::Trace { line } => {
                    self.trace.event(now, actor, "note", &line, || line.clone());
                }
                Effect::Sometimes { name } => {
                    assert!(
                        S::sometimes().contains(&name),
                        "`{name}` is marked but not listed in {}'s System::sometimes",
                        S::NAME
                    );
                    *self.sometimes.entry(name).or_default() += 1;
                }
                Effect::Span {
                    op,
                    name,
                    after,
                    attrs,
                } => {
                    if let Some(spans) = &mut self.spans {
                        let sent = self.counters.sent;
                        spans.span(id, (now, sent), op, (name, after), &attrs);
                    }
                }
            }
        }
        if abort.is_some() {
            self.counters.aborts += 1;
            self.take_down(id, false);
            self.nodes[id].restart_at_ns = Some(now + self.abort_restart_ns);
        }
    }

    /// Carries out what client `c` asked for in one step, in order: requests (through
    /// any pin and client partition), timers, history events and notes.
    pub(super) fn carry_out_client(
        &mut self,
        c: ClientId,
        now: u64,
        effects: &mut Vec<ClientEffect<P<S>, S::Client>>,
    ) {
        let actor = Actor::Client(c);
        // The effects of one handler call, each carried out once.
        for effect in effects.drain(..) {
            match effect {
                ClientEffect::Request { to, id, req } => {
                    let to = match self.clients[c].pins.last() {
                        Some(&(pin, pinned)) => {
                            if pinned != to {
                                self.counters.client_requests_pinned += 1;
                                self.fault_effects.add(pin, "requests_pinned", 1.0);
                            }
                            pinned
                        }
                        None => to,
                    };
                    let fields = || Fields::request(id.seq, Actor::Node(to), "request");
                    self.trace
                        .event_with(now, actor, "request", &(to, id, &req), || {
                            (format!("to n{to} {id:?} {req:?}"), fields())
                        });
                    if let Some(spans) = &mut self.spans {
                        spans.request(c, now, to, id, format!("{req:?}"));
                    }
                    if !self.client_connected(c, to) {
                        self.trace.event_with(
                            now,
                            actor,
                            "drop",
                            &(to, "client-partition"),
                            || (format!("to n{to}: client-partition"), fields()),
                        );
                        continue;
                    }
                    let at = now + self.net.client_latency_ns();
                    self.nodes[to]
                        .mailbox
                        .push(at, NodeInput::Request { id, req });
                }
                ClientEffect::SetTimer { id, after, timer } => {
                    self.clients[c]
                        .mailbox
                        .set_timer(id, now + after.as_nanos() as u64, timer)
                }
                ClientEffect::CancelTimer { id } => self.clients[c].mailbox.cancel_timer(id),
                ClientEffect::History { kind, op } => {
                    self.counters.ops[kind as usize] += 1;
                    let index = self.history.len();
                    self.trace.event(now, actor, "op", &(kind, &op), || {
                        format!("{kind:?} {op:?}")
                    });
                    if let Some(spans) = &mut self.spans {
                        let json = serde_json::to_value(&op).unwrap_or_default();
                        match kind {
                            OpType::Invoke => spans.invoke(c, now, json),
                            _ => spans.complete(c, now, kind, json),
                        }
                    }
                    self.history.push(HistoryEvent {
                        index,
                        process: c,
                        kind,
                        op,
                        time_ns: now,
                    });
                }
                ClientEffect::Trace { line } => {
                    self.trace.event(now, actor, "note", &line, || line.clone())
                }
            }
        }
    }
}
