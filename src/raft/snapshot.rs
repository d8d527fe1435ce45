//! Log compaction (§7): snapshots of the state machine, and InstallSnapshot for a
//! follower that needs entries the leader has compacted away.

use std::sync::Arc;

use super::messages::{AppendResult, Message, Record, Snapshot};
use super::state_machine::StateMachine;
use super::{log_key, Ctx, RaftProcess};
use crate::process::NodeId;

impl<S: StateMachine> RaftProcess<S> {
    /// Compacts the applied prefix once it exceeds the configured threshold.
    pub(super) fn maybe_snapshot(&mut self, ctx: &mut Ctx<'_, S>) {
        let since = self.applied - self.log.snapshot_index();
        if since < self.cfg.snapshot_threshold_entries {
            return;
        }
        let snapshot = Arc::new(Snapshot {
            index: self.applied,
            term: self.log.term(self.applied).expect("applied is in the log"),
            state: self.machine.snapshot(),
            sessions: self.sessions.clone(),
            membership: Some(self.config_at(self.applied).clone()),
        });
        ctx.trace(format!(
            "node {} snapshots at index {} term {}",
            self.id, snapshot.index, snapshot.term
        ));
        self.store_snapshot(ctx, snapshot);
    }

    /// Makes `snapshot` the log's prefix, in memory and in storage. The snapshot record
    /// is written before the compacted entries are removed: a torn crash keeps either
    /// the old entries or the snapshot covering them (recovery drops entries it covers).
    fn store_snapshot(&mut self, ctx: &mut Ctx<'_, S>, snapshot: Arc<Snapshot<S>>) {
        let old_first = self.log.first_index();
        let old_last = self.log.last_index();
        ctx.write("snapshot", Record::Snapshot(snapshot.clone()));
        self.note_log_change(snapshot.index + 1);
        self.forget_durable_from(snapshot.index + 1);
        self.log.install(snapshot);
        self.rebuild_configs();
        // Remove every old entry key the new log no longer holds.
        let removed_to = if self.log.last_index() > self.log.snapshot_index() {
            self.log.snapshot_index()
        } else {
            old_last
        };
        for i in old_first..=removed_to {
            ctx.remove(log_key(i));
        }
    }

    pub(super) fn on_snapshot(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        snapshot: Arc<Snapshot<S>>,
    ) {
        if !self.hear_from_leader(ctx, from) {
            return;
        }
        let match_index = if snapshot.index <= self.commit {
            // Nothing new: we already hold (and committed) that prefix.
            self.commit
        } else {
            ctx.trace(format!(
                "node {} installs snapshot at index {} term {}",
                self.id, snapshot.index, snapshot.term
            ));
            ctx.sometimes("snapshot-installed");
            let index = snapshot.index;
            self.installed_in_step = Some((index, snapshot.term));
            self.machine = S::restore(&snapshot.state);
            self.sessions = snapshot.sessions.clone();
            self.store_snapshot(ctx, snapshot);
            self.commit = index;
            self.applied = index;
            index
        };
        self.send(
            from,
            Message::AppendResp {
                term: self.term,
                result: AppendResult::Accepted { match_index },
            },
        );
    }
}
