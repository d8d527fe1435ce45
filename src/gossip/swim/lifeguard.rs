//! Lifeguard's local health awareness (Dadgar et al. 2018, §IV-A and §IV-C): the Local
//! Health Multiplier that stretches a slow member's probe period and timeout, the nack
//! timing that feeds it, and the Buddy System's piggybacked suspicion.
//! (LHA-Suspicion, the third part, lives with the suspicions it shortens.)

use super::{SwimProcess, SwimTimer};
use crate::gossip::member::{MemberState, Update};
use crate::process::{Context, NodeId};

impl SwimProcess {
    /// Lifeguard's Local Health Multiplier.
    pub fn lhm(&self) -> u32 {
        self.lhm
    }

    /// Probe scale (LHM + 1), 1 without Lifeguard LHA-Probe.
    pub fn probe_scale(&self) -> u32 {
        if self.cfg.lifeguard_lhm {
            self.lhm + 1
        } else {
            1
        }
    }

    pub(super) fn lhm_add(&mut self, delta: i64) {
        if !self.cfg.lifeguard_lhm {
            return;
        }
        let v = (self.lhm as i64 + delta).clamp(0, self.cfg.lhm_max as i64);
        self.lhm = v as u32;
    }

    /// Lifeguard: missed nacks mean we, not the target, may be the slow one; if
    /// every relay answered with a nack the target is the likely culprit.
    pub(super) fn on_probe_missed(&mut self, relays_asked: u32, nacks: u32) {
        let delta = if relays_asked > 0 {
            (relays_asked - nacks.min(relays_asked)) as i64
        } else {
            1
        };
        self.lhm_add(delta);
    }

    /// A relay for ping-req `seq` sends a nack if the target has not acked by
    /// `nack_percent` of the probe timeout.
    pub(super) fn arm_relay_nack(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
        if self.cfg.lifeguard_lhm {
            let nack_after = self.cfg.probe_timeout() * self.cfg.nack_percent as u32 / 100;
            ctx.set_timer(nack_after, SwimTimer::RelayNack { seq });
        }
    }

    /// The Buddy System (§IV-C): a message to a member we suspect carries that
    /// suspicion first, so that it can refute at once.
    pub(super) fn buddy_suspicion(&self, to: NodeId) -> Option<Update> {
        if !self.cfg.lifeguard_buddy {
            return None;
        }
        let m = self.members[to].as_ref()?;
        (m.state == MemberState::Suspect).then_some(Update {
            node: to,
            incarnation: m.incarnation,
            state: MemberState::Suspect,
            from: self.id,
            meta: None,
        })
    }
}
