//! Infection-style dissemination (SWIM §4.1): updates queue with a retransmit limit
//! that grows with the cluster, ride on every message, and go out on the gossip timer
//! to a few random members.

use super::message::SwimMessage;
use super::{Phase, SwimProcess, SwimTimer};
use crate::gossip::member::Update;
use crate::process::{Context, NodeId};

impl SwimProcess {
    /// The most times one update was sent by this member.
    pub fn max_update_transmits(&self) -> u32 {
        self.broadcasts.max_transmits()
    }

    /// Updates still queued for piggybacking.
    pub fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    pub(super) fn retransmit_limit(&self) -> u32 {
        self.cfg.retransmit_limit(self.estimated_size())
    }

    pub(super) fn queue(&mut self, update: Update) {
        let limit = self.retransmit_limit();
        self.broadcasts.push(update, limit);
    }

    /// Piggyback for a message to `to`: the Buddy System's suspicion first (Lifeguard
    /// §IV-C), then the least-sent pending updates.
    pub(super) fn updates_for(&mut self, to: NodeId) -> Vec<Update> {
        let mut out = Vec::new();
        let mut skip = None;
        if let Some(suspicion) = self.buddy_suspicion(to) {
            out.push(suspicion);
            skip = Some(to);
        }
        let room = self.cfg.max_piggyback.saturating_sub(out.len());
        self.broadcasts.take(room, skip, &mut out);
        out
    }

    pub(super) fn on_gossip_tick(&mut self, ctx: &mut Context<'_, Self>) {
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
            self.finish_leaving(ctx);
            return;
        }
        ctx.set_timer(self.cfg.gossip_interval(), SwimTimer::Gossip);
    }
}
