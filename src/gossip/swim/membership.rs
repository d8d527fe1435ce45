//! The view and how rumours change it: each update is merged by SWIM's precedence
//! (§4.2, [`overrides`]), a suspicion of the same incarnation is a confirmation, and a
//! rumour about this member itself is refuted by raising its own incarnation.

use super::{Phase, SwimProcess, INCARNATION_KEY};
use crate::gossip::member::{overrides, Member, MemberState, Update};
use crate::process::Context;

impl SwimProcess {
    pub(super) fn self_update(&self, state: MemberState) -> Update {
        Update {
            node: self.id,
            incarnation: self.incarnation(),
            state,
            from: self.id,
            meta: (state == MemberState::Alive).then(|| self.meta.clone()),
        }
    }

    /// Writes the incarnation; the step's output (which may announce it) waits for
    /// the sync, so a restart never reuses an incarnation others have heard.
    pub(super) fn persist_incarnation(&mut self, ctx: &mut Context<'_, Self>, inc: u64) {
        ctx.write(INCARNATION_KEY, inc);
    }

    pub(super) fn set_self(&mut self, ctx: &mut Context<'_, Self>, state: MemberState, inc: u64) {
        let prev = self.members[self.id].as_ref().map(|m| m.incarnation);
        assert!(
            prev.is_none_or(|p| p <= inc),
            "own incarnation must not decrease"
        );
        self.members[self.id] = Some(Member {
            state,
            incarnation: inc,
            meta: Some(self.meta.clone()),
            changed_at: ctx.now(),
        });
        self.metrics.changed.push(self.id);
    }

    /// Applies one rumour to the view, by precedence.
    pub(super) fn merge(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        assert!(
            update.node < self.nodes,
            "update about node {} outside the cluster",
            update.node
        );
        if update.node == self.id {
            self.merge_about_self(ctx, &update);
            return;
        }
        let cur = self.members[update.node].as_ref();
        let same_inc_alive_bug = self.bugs.alive_overrides_suspect
            && update.state == MemberState::Alive
            && cur.is_some_and(|m| {
                m.state == MemberState::Suspect && m.incarnation == update.incarnation
            });
        if overrides(&update, cur) || same_inc_alive_bug {
            self.apply(ctx, update);
        } else if update.state == MemberState::Suspect
            && cur.is_some_and(|m| {
                m.state == MemberState::Suspect && m.incarnation == update.incarnation
            })
        {
            self.confirm(ctx, update);
        }
    }

    pub(super) fn merge_about_self(&mut self, ctx: &mut Context<'_, Self>, update: &Update) {
        if self.phase != Phase::Active {
            return;
        }
        let mine = self.incarnation();
        let accused = match update.state {
            MemberState::Alive => update.incarnation > mine,
            _ => update.incarnation >= mine,
        };
        if accused {
            self.refute(ctx, update.incarnation);
        }
    }

    /// SWIM §4.2: only the member raises its own incarnation, past the accusation.
    pub(super) fn refute(&mut self, ctx: &mut Context<'_, Self>, accused: u64) {
        let mine = self.incarnation();
        let new = if self.bugs.refute_same_incarnation {
            accused.max(mine)
        } else {
            accused.max(mine) + 1
        };
        self.persist_incarnation(ctx, new);
        self.set_self(ctx, MemberState::Alive, new);
        self.metrics.refutations += 1;
        // Lifeguard: being accused hints that we are the slow one.
        self.lhm_add(1);
        let alive = self.self_update(MemberState::Alive);
        self.queue(alive);
        ctx.trace(format!("swim: {} refutes at incarnation {new}", self.id));
        ctx.sometimes("suspicion-refuted");
    }

    pub(super) fn apply(&mut self, ctx: &mut Context<'_, Self>, update: Update) {
        let node = update.node;
        assert_ne!(node, self.id);
        let now = ctx.now();
        let old = self.members[node].take();
        let meta = update
            .meta
            .clone()
            .or_else(|| old.as_ref().and_then(|m| m.meta.clone()));
        // Trace state changes, but not the first news of a live member (a join
        // would otherwise trace n² lines).
        let first_alive = old.is_none() && update.state == MemberState::Alive;
        if !first_alive && old.as_ref().map(|m| m.state) != Some(update.state) {
            ctx.trace(format!(
                "swim: {} holds {node} {:?} at incarnation {} (from {})",
                self.id, update.state, update.incarnation, update.from
            ));
        }
        self.members[node] = Some(Member {
            state: update.state,
            incarnation: update.incarnation,
            meta,
            changed_at: now,
        });
        self.metrics.changed.push(node);
        if update.state.is_down() {
            self.live.swap_remove(&node);
        } else {
            self.live.insert(node);
            self.add_to_probe_list(ctx, node);
        }
        self.drop_suspicion(ctx, node);
        if update.state == MemberState::Suspect {
            self.start_suspicion(ctx, node, update.incarnation, update.from);
        }
        self.queue(update);
    }
}
