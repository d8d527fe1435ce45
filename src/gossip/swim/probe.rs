//! The failure detector's probes (SWIM §3.1, §4.3): each protocol period pings one
//! member, asks `indirect_checks` others to ping it (ping-req) after the probe
//! timeout, and suspects it at the end of the period if no ack came, directly or
//! through a relay. A relay answers with Lifeguard's nack when the target is silent.

use super::message::SwimMessage;
use super::{Phase, SwimProcess, SwimTimer};
use crate::gossip::member::{MemberState, Update};
use crate::process::{Context, NodeId};

/// Most ping-req relays a member serves at once; further requests are dropped
/// (the prober then misses a nack and backs off, as intended under overload).
const RELAYS_MAX: usize = 1024;

/// The probe of the current protocol period.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    target: NodeId,
    seq: u64,
    acked: bool,
    relays_asked: u32,
    nacks: u32,
}

/// A ping this member sends on another's behalf (a ping-req it serves).
#[derive(Clone, Debug)]
pub(super) struct Relay {
    origin: NodeId,
    origin_seq: u64,
    acked: bool,
}

impl SwimProcess {
    /// The target of the probe in progress, if any.
    pub fn probe_target(&self) -> Option<NodeId> {
        self.probe.as_ref().map(|p| p.target)
    }

    /// End of a protocol period: no ack, direct or indirect → suspect (SWIM §4.2).
    pub(super) fn finish_probe(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(p) = self.probe.take() else {
            return;
        };
        if p.acked {
            return;
        }
        self.on_probe_missed(p.relays_asked, p.nacks);
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
        self.metrics.declared.push((p.target, MemberState::Suspect));
        self.merge(ctx, suspect);
    }

    pub(super) fn on_probe_tick(&mut self, ctx: &mut Context<'_, Self>) {
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
            self.metrics.probe_periods += 1;
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

    pub(super) fn on_probe_timeout(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
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

    pub(super) fn on_ping_req(
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
        self.arm_relay_nack(ctx, seq);
        ctx.set_timer(self.cfg.probe_interval(), SwimTimer::RelayExpire { seq });
    }

    pub(super) fn on_ack(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
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

    /// Lifeguard: a relay of the current probe reports that the target did not ack it.
    pub(super) fn on_nack(&mut self, seq: u64) {
        if let Some(p) = &mut self.probe {
            if p.seq == seq && p.nacks < p.relays_asked {
                p.nacks += 1;
            }
        }
    }

    /// The relay for ping-req `seq` had no ack from the target in time: nack the origin.
    pub(super) fn on_relay_nack(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
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

    /// Forgets the relay for ping-req `seq`.
    pub(super) fn on_relay_expire(&mut self, seq: u64) {
        self.relays.remove(&seq);
    }
}
