//! Delivery: what an input meets when it comes due, before a handler runs. This is
//! where the delivery-time cut check lives (the send-time one is
//! [`Network::route`](super::super::network::Network::route)): a message in flight
//! when a cut appeared is dropped here. `hold` faults keep messages here until
//! their heal, and client partitions drop requests and replies.

use super::super::mailbox::Due;
use super::super::trace::{Actor, Fields};
use super::{NodeDue, NodeInput, World, HELD_MAX, P};
use crate::process::{ClientId, NodeId, Process};
use crate::system::System;

impl<S: System> World<S> {
    /// A message comes due at node `id`: it is dropped if a cut now separates the
    /// nodes (it was in flight when the cut appeared), held if a `hold` covers the
    /// link, and otherwise handed on. A client's request is dropped if a
    /// `client-partition` now cuts the client from the node. Other inputs and timers
    /// pass through.
    pub(super) fn arrive(&mut self, id: NodeId, due: NodeDue<S>, now: u64) -> Option<NodeDue<S>> {
        if let Due::Input(NodeInput::Request { id: request, .. }) = &due {
            if !self.client_connected(request.client, id) {
                self.trace.event_with(
                    now,
                    Actor::Node(id),
                    "drop",
                    &(request, "client-partition"),
                    || {
                        let peer = Actor::Client(request.client);
                        (
                            format!("{request:?} from c{} (cut in flight)", request.client),
                            Fields::request(request.seq, peer, "request"),
                        )
                    },
                );
                return None;
            }
        }
        let Due::Input(NodeInput::Message {
            from,
            msg,
            digest,
            seq,
        }) = &due
        else {
            return Some(due);
        };
        let (from, digest, seq) = (*from, *digest, *seq);
        let class = <P<S>>::message_class(msg);
        if let Some(fault) = self.net.cut_by(from, id, class) {
            self.counters.dropped_partition += 1;
            self.net.effects.add(fault, "messages_dropped", 1.0);
            self.trace.event_with(
                now,
                Actor::Node(id),
                "drop",
                &(from, digest, "partition"),
                || {
                    (
                        format!("from n{from} (cut in flight) {msg:?}"),
                        Fields::message(seq, Actor::Node(from), class),
                    )
                },
            );
            return None;
        }
        if let Some(fault) = self.net.held_by(from, id, class) {
            self.trace
                .event_with(now, Actor::Node(id), "hold", &(from, digest, fault), || {
                    (
                        format!("from n{from} held by fault {fault}: {msg:?}"),
                        Fields::message(seq, Actor::Node(from), class),
                    )
                });
            self.fault_effects.add(fault, "messages_held", 1.0);
            let Due::Input(input) = due else {
                unreachable!("matched above");
            };
            let held = self.held.entry(fault).or_default();
            assert!(
                held.len() < HELD_MAX,
                "more than {HELD_MAX} messages held by fault {fault}"
            );
            held.push((seq, id, input));
            return None;
        }
        Some(due)
    }

    /// Whether no client partition cuts client `c` from `node`; if one does, the
    /// drop counts against the first listed in the schedule.
    pub(super) fn client_connected(&mut self, c: ClientId, node: NodeId) -> bool {
        let cut = self
            .client_cuts
            .iter()
            .filter(|(_, clients, nodes)| {
                (clients.is_empty() || clients.contains(&c)) && nodes.contains(&node)
            })
            .map(|cut| cut.0)
            .min();
        if let Some(index) = cut {
            self.counters.dropped_client_partition += 1;
            self.fault_effects.add(index, "messages_dropped", 1.0);
        }
        cut.is_none()
    }

    /// A `hold` fault ends: what it held is delivered now, in send order (or shuffled
    /// from the network stream). Each message then passes [`World::arrive`] again,
    /// so a cut or another hold still applies, and a receiver that is down drops it.
    pub fn release_held(&mut self, index: usize, shuffle: bool) {
        let now = self.now_ns();
        let mut held = self.held.remove(&index).unwrap_or_default();
        held.sort_by_key(|h| h.0);
        if shuffle {
            self.net.shuffle(&mut held);
        }
        let count = held.len() as u64;
        self.fault_effects
            .add(index, "messages_released", count as f64);
        self.trace
            .event(now, Actor::Sim, "release", &(index, count), || {
                format!("fault {index} releases {count} held messages")
            });
        // At most HELD_MAX messages, each pushed once.
        for (_, to, input) in held {
            self.nodes[to].mailbox.push(now, input);
        }
    }
}
