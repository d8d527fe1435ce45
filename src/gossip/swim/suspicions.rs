//! Suspicions this member holds (SWIM §4.2): each runs a timer and, unless refuted
//! meanwhile, ends in a death this member declares. Lifeguard's LHA-Suspicion (§IV-B)
//! starts the timer at Max and shortens it towards Min with each independent
//! confirmation.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{SwimProcess, SwimTimer};
use crate::gossip::member::{MemberState, Update};
use crate::gossip::suspicion::suspicion_timeout;
use crate::process::{Context, NodeId, TimerId};

#[derive(Clone, Debug)]
pub(super) struct Suspicion {
    incarnation: u64,
    started_at: Duration,
    /// The suspecter whose rumour started it: not an independent confirmation.
    first_from: NodeId,
    /// Independent confirmers: at most `k` (`confirm` stops adding at `k`).
    confirmers: BTreeSet<NodeId>,
    k: u64,
    min: Duration,
    max: Duration,
    timer: TimerId,
}

impl Suspicion {
    pub(super) fn timeout(&self) -> Duration {
        suspicion_timeout(self.confirmers.len() as u64, self.k, self.min, self.max)
    }
}

impl SwimProcess {
    /// The current suspicion timeout this observer applies to `node`, if suspected.
    pub fn suspicion_timeout_of(&self, node: NodeId) -> Option<Duration> {
        self.suspicions.get(&node).map(|s| s.timeout())
    }

    /// Number of independent confirmations gathered for a suspicion of `node`.
    pub fn confirmations_of(&self, node: NodeId) -> Option<usize> {
        self.suspicions.get(&node).map(|s| s.confirmers.len())
    }

    /// Forgets any suspicion of `node` and its timer (its record just changed).
    pub(super) fn drop_suspicion(&mut self, ctx: &mut Context<'_, Self>, node: NodeId) {
        if let Some(s) = self.suspicions.remove(&node) {
            ctx.cancel_timer(s.timer);
        }
    }

    pub(super) fn start_suspicion(
        &mut self,
        ctx: &mut Context<'_, Self>,
        node: NodeId,
        inc: u64,
        from: NodeId,
    ) {
        let n = self.estimated_size();
        let k = if self.cfg.lifeguard_dynamic_suspicion {
            self.cfg.suspicion_k(n)
        } else {
            0
        };
        let min = self.cfg.suspicion_min(n);
        let max = self.cfg.suspicion_max(n);
        let timeout = suspicion_timeout(0, k, min, max);
        let timer = ctx.set_timer(
            timeout,
            SwimTimer::Suspicion {
                node,
                incarnation: inc,
            },
        );
        self.suspicions.insert(
            node,
            Suspicion {
                incarnation: inc,
                started_at: ctx.now(),
                first_from: from,
                confirmers: BTreeSet::new(),
                k,
                min,
                max,
                timer,
            },
        );
    }

    /// Lifeguard LHA-Suspicion: an independent suspicion of the same incarnation
    /// shortens the timeout; the first K are re-gossiped.
    pub(super) fn confirm(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        if !self.cfg.lifeguard_dynamic_suspicion {
            return;
        }
        let now = ctx.now();
        let Some(s) = self.suspicions.get_mut(&update.node) else {
            return;
        };
        if s.incarnation != update.incarnation
            || update.from == s.first_from
            || (s.confirmers.len() as u64) >= s.k
            || !s.confirmers.insert(update.from)
        {
            return;
        }
        ctx.sometimes("suspicion-confirmed");
        let elapsed = now.saturating_sub(s.started_at);
        let remaining = s.timeout().saturating_sub(elapsed);
        ctx.cancel_timer(s.timer);
        s.timer = ctx.set_timer(
            remaining,
            SwimTimer::Suspicion {
                node: update.node,
                incarnation: update.incarnation,
            },
        );
        self.queue(update);
    }

    pub(super) fn on_suspicion_timer(
        &mut self,
        ctx: &mut Context<'_, Self>,
        node: NodeId,
        inc: u64,
    ) {
        let Some(s) = self.suspicions.get(&node) else {
            return;
        };
        let still = self.members[node]
            .as_ref()
            .is_some_and(|m| m.state == MemberState::Suspect && m.incarnation == inc);
        if s.incarnation != inc || !still {
            return;
        }
        let elapsed = ctx.now().saturating_sub(s.started_at);
        let timeout = s.timeout();
        if elapsed < timeout {
            let timer = ctx.set_timer(
                timeout - elapsed,
                SwimTimer::Suspicion {
                    node,
                    incarnation: inc,
                },
            );
            self.suspicions.get_mut(&node).expect("checked above").timer = timer;
            return;
        }
        let dead = Update {
            node,
            incarnation: inc,
            state: MemberState::Dead,
            from: self.id,
            meta: None,
        };
        ctx.sometimes("member-declared-dead");
        self.metrics.declared.push((node, MemberState::Dead));
        self.merge(ctx, dead);
    }
}
