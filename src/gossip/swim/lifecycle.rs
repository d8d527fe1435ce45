//! A member's life: it starts (a restart rejoins above every incarnation it used),
//! stays dormant until `join_at_ms`, joins by pushing its state to the seeds until it
//! hears back, and leaves gracefully at `leave_at_ms` once its leave is spread.

use std::time::Duration;

use rand::Rng;

use super::message::SwimMessage;
use super::{Phase, SwimProcess, SwimTimer, INCARNATION_KEY};
use crate::gossip::member::MemberState;
use crate::process::{Context, NodeId};

impl SwimProcess {
    pub(super) fn start(&mut self, ctx: &mut Context<'_, Self>) {
        assert_eq!(ctx.id(), self.id);
        assert_eq!(ctx.nodes(), self.nodes);
        self.begin_step(ctx.now());
        // A restarted member rejoins above every incarnation it ever used.
        let inc = ctx
            .storage()
            .get(INCARNATION_KEY)
            .map(|i| i + 1)
            .unwrap_or(0);
        self.persist_incarnation(ctx, inc);
        self.set_self(ctx, MemberState::Alive, inc);
        let spec = self.cfg.node_spec(self.id);
        let leave_at = spec.and_then(|s| s.leave_at_ms).map(Duration::from_millis);
        let join_at = spec.and_then(|s| s.join_at_ms).map(Duration::from_millis);
        if leave_at.is_some_and(|l| ctx.now() >= l) {
            // It left before this restart: it stays gone.
            self.phase = Phase::Left;
            return;
        }
        match join_at {
            Some(j) if j > ctx.now() => {
                ctx.set_timer(j - ctx.now(), SwimTimer::Join);
            }
            _ => self.join(ctx),
        }
    }

    pub(super) fn join(&mut self, ctx: &mut Context<'_, Self>) {
        assert_eq!(self.phase, Phase::Dormant);
        self.phase = Phase::Active;
        ctx.trace(format!(
            "swim: {} joins at incarnation {}",
            self.id,
            self.incarnation()
        ));
        let alive = self.self_update(MemberState::Alive);
        self.queue(alive);
        self.contact_seeds(ctx);
        let interval = self.cfg.probe_interval();
        // Random stagger so members do not probe in lock step.
        let stagger = Duration::from_millis(ctx.rng().gen_range(0..self.cfg.probe_interval_ms));
        ctx.set_timer(stagger.min(interval), SwimTimer::ProbeTick);
        ctx.set_timer(self.cfg.gossip_interval(), SwimTimer::Gossip);
        if self.cfg.push_pull_interval_ms > 0 {
            let first = ctx.rng().gen_range(0..self.cfg.push_pull_interval_ms);
            ctx.set_timer(Duration::from_millis(first), SwimTimer::PushPull);
        }
        if let Some(leave) = self.cfg.node_spec(self.id).and_then(|s| s.leave_at_ms) {
            let at = Duration::from_millis(leave);
            ctx.set_timer(at.saturating_sub(ctx.now()), SwimTimer::Leave);
        }
    }

    pub(super) fn contact_seeds(&mut self, ctx: &mut Context<'_, Self>) {
        let seeds: Vec<NodeId> = self
            .cfg
            .seeds
            .iter()
            .copied()
            .filter(|&s| s != self.id)
            .collect();
        for s in seeds {
            let members = self.full_state();
            self.send(
                ctx,
                s,
                SwimMessage::PushPull {
                    reply: true,
                    members,
                },
            );
        }
    }

    pub(super) fn on_leave(&mut self, ctx: &mut Context<'_, Self>) {
        if self.phase != Phase::Active {
            return;
        }
        let inc = self.incarnation();
        self.set_self(ctx, MemberState::Left, inc);
        self.phase = Phase::Leaving;
        ctx.trace(format!("swim: {} leaves", self.id));
        let left = self.self_update(MemberState::Left);
        self.queue(left);
        self.probe = None;
    }

    /// The leave has been spread: the member falls silent for good.
    pub(super) fn finish_leaving(&mut self, ctx: &mut Context<'_, Self>) {
        self.phase = Phase::Left;
        ctx.trace(format!("swim: {} has left", self.id));
    }
}
