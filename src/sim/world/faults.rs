//! Fault application: the node, clock, disk and client faults of the schedule as the
//! world carries them out (crash, disk wipe, restart, pause, slow, clock and disk
//! faults, client partitions, pauses and pins), and what each one did. The network's
//! faults are [`super::super::network::Network::apply`]; a `hold`'s release is in
//! [`super::delivery`].

use super::super::mailbox::Due;
use super::super::trace::Actor;
use super::{NodeInput, Status, World};
use crate::process::NodeId;
use crate::scenario::{FaultSpec, Latency};
use crate::storage::Storage;
use crate::system::System;

impl<S: System> World<S> {
    /// Each node's role now ([`crate::Process::role`]); `None` while it is down.
    pub fn roles(&self) -> Vec<Option<crate::process::Role>> {
        self.processes
            .iter()
            .map(|p| p.as_ref().map(crate::Process::role))
            .collect()
    }

    /// The run's fault schedule, for the per-fault effects in [`World::metrics`].
    pub fn set_faults(&mut self, faults: &[FaultSpec]) {
        self.fault_kinds = faults.iter().map(|f| f.kind()).collect();
        self.fault_started = vec![false; faults.len()];
        self.operator.enabled = faults.iter().any(|f| f.kind().is_membership());
    }

    /// Fault `index` started.
    pub fn fault_started(&mut self, index: usize) {
        if let Some(started) = self.fault_started.get_mut(index) {
            *started = true;
        }
    }

    /// A crash fault (with `wipe`, a disk wipe) starts. Down faults compose: a node
    /// already down stays down, now until this fault ends too. Returns whether the
    /// node went down now (so its madsim task must be killed).
    pub fn crash(&mut self, id: NodeId, index: usize, torn: bool, wipe: bool) -> bool {
        let slot = &mut self.nodes[id];
        slot.downs += 1;
        // The fault, not a supervisor, now decides when the node comes back.
        slot.restart_at_ns = None;
        let was_up = slot.status != Status::Down;
        if was_up {
            let (kept, lost) = self.take_down(id, torn);
            self.fault_effects.add(index, "nodes_downed", 1.0);
            self.fault_effects.add(index, "writes_lost", lost as f64);
            if !wipe {
                self.fault_effects.add(index, "writes_kept", kept as f64);
            }
        }
        if wipe {
            let now = self.now_ns();
            let slot = &mut self.nodes[id];
            let lost = slot.storage.unsynced_writes() as u64;
            slot.storage = Storage::default();
            self.counters.disk_wipes += 1;
            self.fault_effects.add(index, "disks_wiped", 1.0);
            self.trace.event(now, Actor::Node(id), "wipe", &lost, || {
                "the disk comes back empty".into()
            });
        }
        was_up
    }

    /// A crash or disk wipe fault ends. Returns whether the node starts now (the last
    /// down fault on it ended).
    pub fn restart(&mut self, id: NodeId) -> bool {
        let slot = &mut self.nodes[id];
        assert!(slot.downs > 0, "node {id} restarted without a crash");
        slot.downs -= 1;
        if slot.downs > 0 {
            return false;
        }
        self.start_node(id);
        true
    }

    /// The process and its timers are gone; storage keeps what was synced (with
    /// `torn`, also a random prefix of the unsynced tail), and syncs in flight are lost.
    /// Returns the unsynced writes kept (torn) and lost.
    pub(super) fn take_down(&mut self, id: NodeId, torn: bool) -> (u64, u64) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        assert_ne!(slot.status, Status::Down, "node {id} crashed twice");
        let unsynced = slot.storage.unsynced_writes();
        let kept = if torn {
            crate::rng::index(&mut self.crash_rng, 0..unsynced + 1)
        } else {
            0
        };
        let lost = slot.storage.crash(kept) as u64;
        slot.disk.crash();
        slot.mailbox.clear_timers();
        // What a slow node had received but not yet handled is gone with it.
        let unhandled = slot
            .late
            .drain(..)
            .filter(|l| matches!(l.due, Due::Input(NodeInput::Message { .. })))
            .count() as u64;
        self.counters.dropped_node_down += unhandled;
        slot.status = Status::Down;
        self.processes[id] = None;
        self.counters.crashes += 1;
        self.counters.writes_lost += lost;
        if let Some(spans) = &mut self.spans {
            spans.node_down(id, now);
        }
        self.trace
            .event(now, Actor::Node(id), "crash", &(kept, lost), || {
                format!("{lost} unsynced writes lost, {kept} kept (torn: {torn})")
            });
        self.check(id, now);
        (kept as u64, lost)
    }

    /// A clock fault on node `id`: a wall-clock step, a drift change, or a freeze
    /// starting or ending.
    pub fn clock_fault(&mut self, id: NodeId, index: usize, fault: ClockFault) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        let fx = &mut self.fault_effects;
        match fault {
            ClockFault::Step { offset_ns } => {
                slot.clock.step_wall(offset_ns);
                fx.add(index, "offset_ms", offset_ns.unsigned_abs() as f64 / 1e6);
            }
            ClockFault::Drift { drift_ppm } => {
                let factor = slot.clock.set_drift(now, drift_ppm);
                let timers = slot.mailbox.timers_pending(None);
                fx.add(index, "timers_rescaled", timers as f64);
                slot.mailbox.rescale_timers(now, factor);
            }
            ClockFault::Freeze(true) => {
                self.fault_since.insert(index, now);
                slot.freezes += 1;
                if slot.freezes == 1 {
                    self.stalls[id].begin(now);
                    slot.clock.set_frozen(now, true);
                    slot.mailbox.timers_held = true;
                }
            }
            ClockFault::Freeze(false) => {
                assert!(slot.freezes > 0, "a freeze ends only once");
                let since = self.fault_since.remove(&index).unwrap_or(now);
                fx.add(index, "frozen_ms", (now - since) as f64 / 1e6);
                // Timers that fell due while frozen (and so fire late).
                let late = slot.mailbox.timers_pending(Some(now));
                fx.add(index, "timers_held", late as f64);
                slot.freezes -= 1;
                if slot.freezes == 0 {
                    self.stalls[id].end(now);
                    slot.clock.set_frozen(now, false);
                    slot.mailbox.release_timers();
                }
            }
        }
    }

    /// A disk fault on node `id` starts (`on`) or ends.
    pub fn disk_fault(&mut self, id: NodeId, index: usize, fault: DiskFault, on: bool) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        match fault {
            DiskFault::Stall => {
                // A node whose disk makes nothing durable cannot acknowledge what it
                // is sent: the progress check excuses that time as it does a pause.
                match on {
                    true => self.stalls[id].begin(now),
                    false => self.stalls[id].end(now),
                }
                if !on {
                    let stalled = slot.disk.due_by(now);
                    self.fault_effects
                        .add(index, "syncs_stalled", stalled as f64);
                }
                slot.disk.set_stalled(on);
                if let Some(due) = slot.disk.next_due_ns() {
                    slot.mailbox.push(due.max(now), NodeInput::DiskWake);
                }
            }
            DiskFault::Slow { factor } => slot.disk.set_slow(index, factor, on),
            DiskFault::FsyncError => slot.disk.fail_next(index),
        }
    }

    /// An application fault starts or ends on `id`: the process hears of it in a
    /// step of its own. A node that is down has no application to strike.
    pub fn service_fault(
        &mut self,
        id: NodeId,
        index: usize,
        fault: crate::process::ServiceFault,
        on: bool,
    ) {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        if slot.status == Status::Down {
            return;
        }
        if on {
            self.fault_effects.add(index, "services_struck", 1.0);
        }
        slot.mailbox.push(now, NodeInput::Service { fault, on });
    }

    /// A pause fault starts or ends. A node that is down then (restarting after it
    /// aborted itself) is not paused: there is no process to freeze. Returns whether
    /// the node's madsim task must be paused or resumed.
    pub fn set_paused(&mut self, id: NodeId, index: usize, paused: bool) -> bool {
        let now = self.now_ns();
        let paused_now = self.set_paused_inner(id, paused);
        if paused_now {
            match paused {
                true => {
                    self.fault_since.insert(index, now);
                    self.fault_effects.add(index, "nodes_paused", 1.0);
                }
                false => {
                    let since = self.fault_since.remove(&index).unwrap_or(now);
                    self.fault_effects
                        .add(index, "paused_ms", (now - since) as f64 / 1e6);
                }
            }
        }
        paused_now
    }

    fn set_paused_inner(&mut self, id: NodeId, paused: bool) -> bool {
        let now = self.now_ns();
        let slot = &mut self.nodes[id];
        if paused && slot.status == Status::Down {
            slot.pause_skipped = true;
            return false;
        }
        if !paused && std::mem::take(&mut slot.pause_skipped) {
            return false;
        }
        let (from, to, event) = match paused {
            true => (Status::Up, Status::Paused, "pause"),
            false => (Status::Paused, Status::Up, "resume"),
        };
        assert_eq!(slot.status, from, "node {id} cannot {event} now");
        slot.status = to;
        self.paused[id] = paused;
        match paused {
            true => self.stalls[id].begin(now),
            false => self.stalls[id].end(now),
        }
        self.counters.pauses += u64::from(paused);
        slot.mailbox.sleep_until(Some(0));
        slot.mailbox.notify.notify_one();
        self.trace
            .event(now, Actor::Node(id), event, &(), String::new);
        true
    }

    /// A `slow` fault starts or ends on node `id`.
    pub fn set_slow(
        &mut self,
        id: NodeId,
        index: usize,
        delay: &Latency,
        busy: bool,
        timers: bool,
        on: bool,
    ) {
        let slot = &mut self.nodes[id];
        slot.slow.retain(|s| s.0 != index);
        if on {
            slot.slow.push((index, delay.clone(), busy, timers));
        }
        self.slow[id] = !slot.slow.is_empty();
    }

    /// A client fault (fault `index` of the schedule) starts (`on`) or ends.
    pub fn client_fault(&mut self, index: usize, fault: &crate::scenario::Fault, on: bool) {
        use crate::scenario::Fault;
        let now = self.now_ns();
        match *fault {
            Fault::ClientPartition {
                ref clients,
                ref nodes,
                ..
            } => match on {
                true => self
                    .client_cuts
                    .push((index, clients.clone(), nodes.clone())),
                false => self.client_cuts.retain(|cut| cut.0 != index),
            },
            Fault::ClientPause { client, .. } => {
                let slot = &mut self.clients[client];
                if on {
                    slot.pauses += 1;
                    self.counters.client_pauses += u64::from(slot.pauses == 1);
                    self.fault_effects.add(index, "clients_paused", 1.0);
                    self.fault_since.insert(index, now);
                } else {
                    assert!(slot.pauses > 0, "a client pause ends only once");
                    slot.pauses -= 1;
                    let since = self.fault_since.remove(&index).unwrap_or(now);
                    let paused_ms = (now - since) as f64 / 1e6;
                    self.fault_effects.add(index, "paused_ms", paused_ms);
                }
                if slot.pauses == 0 {
                    // What fell due during the pause runs now, in order.
                    slot.mailbox.sleep_until(Some(0));
                    slot.mailbox.notify.notify_one();
                }
                let event = if on { "pause" } else { "resume" };
                self.trace
                    .event(now, Actor::Client(client), event, &(), String::new);
            }
            Fault::ClientPin { client, node, .. } => {
                let pins = &mut self.clients[client].pins;
                if on {
                    pins.push((index, node));
                } else {
                    pins.retain(|&(i, _)| i != index);
                }
            }
            _ => unreachable!("not a client fault: {fault:?}"),
        }
    }
}

/// A clock fault as the world carries it out.
#[derive(Clone, Copy, Debug)]
pub enum ClockFault {
    Step { offset_ns: i64 },
    Drift { drift_ppm: f64 },
    Freeze(bool),
}

/// A disk fault as the world carries it out.
#[derive(Clone, Copy, Debug)]
pub enum DiskFault {
    Stall,
    Slow { factor: f64 },
    FsyncError,
}
