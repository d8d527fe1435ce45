//! What a member records for the checkers and metrics only: the protocol writes it
//! and never reads it back.
//!
//! The send counts look like the driver's `messages_sent`/`bytes_sent`, but the driver
//! counts the whole run while the detection metrics need each member's own sends per
//! incarnation, and a checker sees processes, not the driver's counters. The stall
//! intervals are this member's own local-time gaps between steps, which the driver's
//! per-node stall total does not give.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Phase, SwimProcess};
use crate::gossip::member::MemberState;
use crate::process::NodeId;

/// Stall intervals remembered for the false-positive accounting.
const STALLS_MAX: usize = 64;

/// Counters, per-step records and stall intervals of one member incarnation.
#[derive(Clone, Debug, Default)]
pub(super) struct Bookkeeping {
    /// Members whose record changed in the current step. Cleared at every step, which
    /// handles one timer or one message (at most `max_piggyback + 1` updates, or a full
    /// state of at most `nodes`), so it holds one entry per update merged at most.
    pub(super) changed: Vec<NodeId>,
    /// Verdicts this member reached itself in the current step (not heard as rumours):
    /// a suspicion at the end of a failed probe, a death when a suspicion timed out.
    /// Cleared at every step; one timer gives at most one verdict.
    pub(super) declared: Vec<(NodeId, MemberState)>,
    messages_sent: u64,
    bytes_sent: u64,
    /// Probe periods begun (each with a ping to a target).
    pub(super) probe_periods: u64,
    pub(super) refutations: u64,
    last_step_at: Option<Duration>,
    /// The latest stalls, at most [`STALLS_MAX`] (the oldest goes first).
    stalls: VecDeque<(Duration, Duration)>,
}

impl Bookkeeping {
    /// Counts one message of `bytes` (by [`message_bytes`](super::message::message_bytes)).
    pub(super) fn on_send(&mut self, bytes: usize) {
        self.messages_sent += 1;
        self.bytes_sent += bytes as u64;
    }
}

impl SwimProcess {
    /// Clears the per-step records and notes a stall if this step comes late.
    pub(super) fn begin_step(&mut self, now: Duration) {
        let m = &mut self.metrics;
        m.changed.clear();
        m.declared.clear();
        // Timers fire at least every gossip interval while active: a gap of several
        // intervals means this member was not scheduled (paused, or overloaded).
        if let Some(last) = m.last_step_at {
            let threshold = self.cfg.gossip_interval() * 5;
            if self.phase == Phase::Active && now > last + threshold {
                if m.stalls.len() == STALLS_MAX {
                    m.stalls.pop_front();
                }
                m.stalls.push_back((last, now));
            }
        }
        m.last_step_at = Some(now);
    }

    /// Messages this incarnation has sent.
    pub fn messages_sent(&self) -> u64 {
        self.metrics.messages_sent
    }

    /// Bytes this incarnation has sent, by [`Process::message_bytes`](crate::process::Process::message_bytes).
    pub fn bytes_sent(&self) -> u64 {
        self.metrics.bytes_sent
    }

    /// Probe periods this incarnation has begun with a ping.
    pub fn probe_periods(&self) -> u64 {
        self.metrics.probe_periods
    }

    /// Verdicts this member reached itself in its last step: `(member, Suspect)` when
    /// a probe of it failed, `(member, Dead)` when its suspicion timed out here.
    pub fn declared(&self) -> &[(NodeId, MemberState)] {
        &self.metrics.declared
    }

    /// Suspicions of itself this incarnation refuted (by a higher incarnation).
    pub fn refutations(&self) -> u64 {
        self.metrics.refutations
    }

    /// Members whose record changed in the last step.
    pub fn changed(&self) -> &[NodeId] {
        &self.metrics.changed
    }

    /// Intervals of local time in which this member took no step although its
    /// timers were due (it was paused or starved): `(from, to)`.
    pub fn stalls(&self) -> impl Iterator<Item = &(Duration, Duration)> {
        self.metrics.stalls.iter()
    }

    /// Local time of this member's latest step.
    pub fn last_step_at(&self) -> Option<Duration> {
        self.metrics.last_step_at
    }
}
