//! Anti-entropy and partition repair: push-pull exchanges full state with a random
//! member (memberlist), each push-pull also contacts one member held dead (Serf's
//! reconnect), and a member that hears from one it holds dead tells it so (foca's
//! notify-down-members), so that the wrongly dead refute.

use rand::seq::SliceRandom;

use super::message::SwimMessage;
use super::{Phase, SwimProcess, SwimTimer};
use crate::gossip::member::{MemberState, Update};
use crate::process::{Context, NodeId};

impl SwimProcess {
    /// Every record this member holds, as updates from itself.
    pub(super) fn full_state(&self) -> Vec<Update> {
        self.members()
            .map(|(node, m)| Update {
                node,
                incarnation: m.incarnation,
                state: m.state,
                from: self.id,
                meta: m.meta.clone(),
            })
            .collect()
    }

    pub(super) fn on_push_pull_tick(&mut self, ctx: &mut Context<'_, Self>) {
        if self.phase != Phase::Active {
            return;
        }
        let partner = self.sample(ctx, 1, None, false);
        // Reconnect (as Serf does): also try one member held dead, so that sides of
        // a healed partition find each other again and the wrongly dead refute.
        let dead: Vec<NodeId> = self
            .members()
            .filter(|(i, m)| *i != self.id && m.state == MemberState::Dead)
            .map(|(i, _)| i)
            .collect();
        let reconnect = dead.choose(ctx.rng()).copied();
        for to in partner.into_iter().chain(reconnect) {
            let members = self.full_state();
            self.send(
                ctx,
                to,
                SwimMessage::PushPull {
                    reply: true,
                    members,
                },
            );
        }
        let interval = self.cfg.push_pull_interval(self.estimated_size());
        ctx.set_timer(interval, SwimTimer::PushPull);
    }

    pub(super) fn on_push_pull(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        reply: bool,
        remote: Vec<Update>,
    ) {
        let n = remote.len().min(self.nodes);
        for mut u in remote.into_iter().take(n) {
            if u.node >= self.nodes {
                continue;
            }
            // memberlist: a remote dead is only suspected here, so that a member that
            // is in fact alive gets a suspicion timeout to refute in.
            if u.state == MemberState::Dead && u.node != self.id {
                u.state = MemberState::Suspect;
                u.from = from;
            }
            // Lifeguard (§IV-B) shortens a suspicion for each independent suspicion, a
            // member's own failed probe. A push-pull relays state: it confirms nothing.
            let repeats_suspicion = u.state == MemberState::Suspect
                && self.members[u.node].as_ref().is_some_and(|m| {
                    m.state == MemberState::Suspect && m.incarnation == u.incarnation
                });
            if !repeats_suspicion {
                self.merge(ctx, u);
            }
        }
        if reply {
            let members = self.full_state();
            self.send(
                ctx,
                from,
                SwimMessage::PushPull {
                    reply: false,
                    members,
                },
            );
        }
    }

    /// foca's notify-down-members: tell a member we hold dead that it is, so that it
    /// refutes, at most once per probe interval.
    pub(super) fn notify_if_dead(&mut self, ctx: &mut Context<'_, Self>, from: NodeId) {
        let Some(m) = &self.members[from] else {
            return;
        };
        if m.state != MemberState::Dead {
            return;
        }
        let now = ctx.now();
        if self.dead_notice_at[from].is_some_and(|t| now < t + self.cfg.probe_interval()) {
            return;
        }
        self.dead_notice_at[from] = Some(now);
        let updates = vec![Update {
            node: from,
            incarnation: m.incarnation,
            state: MemberState::Dead,
            from: self.id,
            meta: None,
        }];
        self.send(ctx, from, SwimMessage::Gossip { updates });
    }
}
