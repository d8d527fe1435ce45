//! Which members to contact: the probe list (SWIM §4.3: round-robin over a list
//! reshuffled each pass, new members at random positions) or uniform picks, and
//! random samples of the live set for ping-req relays, gossip and push-pull.

use rand::seq::SliceRandom;

use super::SwimProcess;
use crate::gossip::config::ProbeOrder;
use crate::gossip::member::MemberState;
use crate::process::{Context, NodeId};

impl SwimProcess {
    /// Puts a member that just became live into the probe list, if not there yet.
    pub(super) fn add_to_probe_list(&mut self, ctx: &mut Context<'_, Self>, node: NodeId) {
        if !self.in_probe_list[node] {
            // SWIM §4.3: a new member goes to a random position in the list.
            let at = crate::rng::index(ctx.rng(), 0..self.probe_list.len() + 1);
            self.probe_list.insert(at, node);
            self.in_probe_list[node] = true;
            if at < self.probe_next {
                self.probe_next += 1;
            }
        }
    }

    /// Random distinct members from the live set, without scanning it when large.
    pub(super) fn sample(
        &self,
        ctx: &mut Context<'_, Self>,
        k: usize,
        exclude: Option<NodeId>,
        alive_only: bool,
    ) -> Vec<NodeId> {
        let ok = |id: NodeId| {
            Some(id) != exclude
                && (!alive_only
                    || self.members[id]
                        .as_ref()
                        .is_some_and(|m| m.state == MemberState::Alive))
        };
        let items = self.live.as_slice();
        if k == 0 || items.is_empty() {
            return Vec::new();
        }
        if items.len() <= 3 * k {
            let mut c: Vec<NodeId> = items.iter().copied().filter(|&i| ok(i)).collect();
            c.shuffle(ctx.rng());
            c.truncate(k);
            return c;
        }
        let mut out = Vec::with_capacity(k);
        // Bounded draws: a sparse acceptable subset yields fewer than k, which is fine.
        for _ in 0..(4 * k + 8) {
            if out.len() == k {
                break;
            }
            let id = items[crate::rng::index(ctx.rng(), 0..items.len())];
            if ok(id) && !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    pub(super) fn next_probe_target(&mut self, ctx: &mut Context<'_, Self>) -> Option<NodeId> {
        if self.live.is_empty() {
            return None;
        }
        if self.cfg.probe_order == ProbeOrder::Random {
            let items = self.live.as_slice();
            return Some(items[crate::rng::index(ctx.rng(), 0..items.len())]);
        }
        // Round-robin: at most one pass plus one rebuilt pass.
        for _ in 0..2 {
            while self.probe_next < self.probe_list.len() {
                let id = self.probe_list[self.probe_next];
                self.probe_next += 1;
                if self.live.contains(&id) {
                    return Some(id);
                }
            }
            // End of a pass: drop down members and reshuffle (SWIM §4.3).
            for &id in &self.probe_list {
                self.in_probe_list[id] = false;
            }
            self.probe_list.clear();
            self.probe_list.extend(self.live.iter().copied());
            self.probe_list.sort_unstable();
            let mut list = std::mem::take(&mut self.probe_list);
            list.shuffle(ctx.rng());
            self.probe_list = list;
            for &id in &self.probe_list {
                self.in_probe_list[id] = true;
            }
            self.probe_next = 0;
        }
        unreachable!("a non-empty live set yields a target within two passes")
    }
}
