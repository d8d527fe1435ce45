//! Read paths: read_index (linearizable), lease (linearizable while clock drift stays
//! within the configured bound), and two unsafe modes kept for teaching.

use std::time::Duration;

use super::config::ReadMode;
use super::messages::Response;
use super::state_machine::StateMachine;
use super::{Ctx, PendingRead, RaftProcess, Role};
use crate::process::{NodeId, RequestId};

impl<S: StateMachine> RaftProcess<S> {
    pub(super) fn read(&mut self, ctx: &mut Ctx<'_, S>, id: RequestId, seq: u64, query: S::Query) {
        let mode = self.cfg.read_mode;
        if mode == ReadMode::Follower {
            // Unsafe: whatever this replica has applied, however stale.
            let value = self.machine.read(self.applied, &query);
            self.reply(id, Response::Value { seq, value });
            return;
        }
        if self.role != Role::Leader {
            let leader = self.leader_hint(ctx.now());
            self.reply(id, Response::Redirect { seq, leader });
            return;
        }
        if mode == ReadMode::LeaderLocal {
            // Unsafe: a deposed leader that has not noticed answers from old state.
            let value = self.machine.read(self.applied, &query);
            self.reply(id, Response::Value { seq, value });
            return;
        }
        // A new leader's commit index may lag what earlier leaders committed until an
        // entry of its own term commits (etcd's TestReadOnlyForNewLeader).
        let term_start = self.leader_state.as_ref().expect("leader").term_start;
        let term_committed = self.commit >= term_start;
        if !term_committed && self.bugs.reads_wait_for_term_commit() {
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        if mode == ReadMode::Lease {
            if self.lease_valid(ctx.now()) {
                assert_eq!(self.applied, self.commit, "a leader applies as it commits");
                let value = self.machine.read(self.applied, &query);
                self.reply(id, Response::Value { seq, value });
                return;
            }
            // No valid lease: the read takes the read_index path instead.
            ctx.sometimes("lease-read-refused");
        }
        let read_index = self.commit;
        let max_pending = self.cfg.max_pending_requests;
        let ls = self.leader_state.as_mut().expect("leader");
        if ls.pending_reads.len() >= max_pending {
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        ls.read_seq += 1;
        let read_seq = ls.read_seq;
        ls.pending_reads.push_back(PendingRead {
            id,
            seq,
            query,
            read_seq,
            read_index,
        });
        // A heartbeat round confirms that no newer leader existed when the read arrived.
        self.broadcast_heartbeat(ctx);
        self.serve_reads();
    }

    /// A leader holds a lease while a majority (itself included) acknowledged a
    /// heartbeat sent within the lease duration, measured on its own clock.
    fn lease_valid(&mut self, now: Duration) -> bool {
        let id = self.id;
        let ls = self.leader_state.as_mut().expect("leader");
        let (progress, scratch) = (&ls.progress, &mut ls.scratch);
        let acked = |p: usize| match p == id {
            true => now.as_nanos() as u64,
            false => progress[p].lease_acked_at.as_nanos() as u64,
        };
        let since = Duration::from_nanos(self.quorum.quorum_value(scratch, acked));
        since > Duration::ZERO && now < since + self.cfg.lease()
    }

    pub(super) fn on_heartbeat_resp(
        &mut self,
        _ctx: &mut Ctx<'_, S>,
        from: NodeId,
        read_seq: u64,
        sent_at_ns: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let ls = self.leader_state.as_mut().expect("leader");
        let pr = &mut ls.progress[from];
        pr.read_acked = pr.read_acked.max(read_seq);
        pr.lease_acked_at = pr.lease_acked_at.max(Duration::from_nanos(sent_at_ns));
        let resume = pr.matched < last_index && pr.inflight.is_empty();
        if resume {
            self.send_append(from, true);
        }
        self.serve_reads();
    }

    /// Answers the reads whose round a majority confirmed and whose index is applied.
    pub(super) fn serve_reads(&mut self) {
        let id = self.id;
        let Some(ls) = self.leader_state.as_mut() else {
            return;
        };
        if ls.pending_reads.is_empty() {
            return;
        }
        let read_seq = ls.read_seq;
        let (progress, scratch) = (&ls.progress, &mut ls.scratch);
        let acked = |p: usize| match p == id {
            true => read_seq,
            false => progress[p].read_acked,
        };
        let confirmed = self.quorum.quorum_value(scratch, acked);
        while let Some(r) = ls.pending_reads.front() {
            if r.read_seq > confirmed || r.read_index > self.applied {
                break;
            }
            let r = ls.pending_reads.pop_front().expect("front exists");
            let value = self.machine.read(self.applied, &r.query);
            self.out.reply(r.id, Response::Value { seq: r.seq, value });
        }
    }
}
