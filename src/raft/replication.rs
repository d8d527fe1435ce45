//! Log replication (§5.3) with batching, pipelining and fast backtracking; the commit
//! rule (§5.4.2); applying committed entries to the state machine.

use super::membership::{ConfChange, ConfChangeError, MemberChange};
use super::messages::{AppendResult, Entry, EntryData, Message, Response};
use super::session::Applied;
use super::state_machine::StateMachine;
use super::{entry_digest, log_key, span_entry, AppliedEntry, Ctx, RaftProcess, Role};
use crate::process::{NodeId, RequestId};
use std::sync::Arc;

impl<S: StateMachine> RaftProcess<S> {
    /// A client command: append it to the leader's log and replicate it.
    pub(super) fn propose(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: RequestId,
        seq: u64,
        cmd: Arc<S::Command>,
    ) {
        if self.role != Role::Leader {
            let leader = self.leader_hint(ctx.now());
            self.reply(id, Response::Redirect { seq, leader });
            return;
        }
        let max_pending = self.cfg.max_pending_requests;
        let ls = self.leader_state.as_mut().expect("leader");
        if ls.transfer.is_some() {
            // Handing over: what is appended now the new leader would have to commit.
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        // A retry of a write this leader holds uncommitted (same client, same session
        // sequence number): answer the latest attempt when the entry commits instead
        // of appending a duplicate the session would skip anyway.
        let retried = ls
            .pending_writes
            .values_mut()
            .find(|(held, held_seq)| held.client == id.client && *held_seq == seq);
        if let Some(held) = retried {
            held.0 = id;
            return;
        }
        if ls.pending_writes.len() >= max_pending {
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        let entry = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            data: EntryData::Command {
                client: id.client,
                seq,
                cmd,
            },
        };
        let index = entry.index;
        let blind_output = match &entry.data {
            EntryData::Command { cmd, .. } => S::blind_output(cmd),
            EntryData::Noop | EntryData::ConfChange(_) => None,
        };
        let ack_now = self.bugs.acks_on_append(blind_output.is_some());
        span_entry(ctx, &entry, "appended");
        self.append_entry(ctx, entry);
        if ack_now {
            // The bug: the client hears "done" while the entry sits only in this node's
            // page cache; replication waits for the next heartbeat.
            self.defer_sync = true;
            self.acked.push((index, self.term));
            let result = blind_output.expect("the bug acks only commands with a blind output");
            self.reply(id, Response::Written { seq, result });
            return;
        }
        let ls = self.leader_state.as_mut().expect("leader");
        ls.pending_writes.insert(index, (id, seq));
        self.broadcast_append();
        self.maybe_commit(ctx);
    }

    pub(super) fn broadcast_append(&mut self) {
        for peer in 0..self.nodes {
            if peer != self.id && self.membership.1.is_member(peer) {
                self.send_append(peer, false);
            }
        }
    }

    /// Sends `peer` what it lacks, within the in-flight bound: one message while
    /// probing (`probe` allows an empty one), otherwise batches back to back.
    pub(super) fn send_append(&mut self, peer: NodeId, probe: bool) {
        let max_inflight = self.cfg.max_inflight_appends;
        let max_batch = self.cfg.max_batch_entries as u64;
        let last_index = self.log.last_index();
        // Bounded by the in-flight limit: each round adds one in-flight message.
        for _ in 0..max_inflight {
            let ls = self.leader_state.as_mut().expect("leader");
            let pr = &mut ls.progress[peer];
            if pr.abandoned
                || pr.inflight.len() >= max_inflight
                || (pr.probing && !pr.inflight.is_empty())
            {
                return;
            }
            if pr.next <= self.log.snapshot_index() {
                // The entries it needs are compacted: send the snapshot (§7).
                let snapshot = self.log.snapshot().clone();
                pr.inflight.push_back(snapshot.index);
                pr.next = snapshot.index + 1;
                pr.probing = true;
                let msg = Message::Snapshot {
                    term: self.term,
                    snapshot,
                };
                self.send(peer, msg);
                return;
            }
            if pr.next > last_index && !(probe && pr.probing) {
                return;
            }
            let prev_index = pr.next - 1;
            let prev_term = self.log.term(prev_index).expect("prev is in the log");
            let entries = self.log.slice(pr.next, pr.next + max_batch - 1).to_vec();
            let sent_last = prev_index + entries.len() as u64;
            pr.inflight.push_back(sent_last);
            let probing = pr.probing;
            if !probing {
                pr.next = sent_last + 1;
            }
            let commit = self.commit;
            self.send(
                peer,
                Message::Append {
                    term: self.term,
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                },
            );
            if probing {
                return;
            }
        }
    }

    pub(super) fn on_append(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        mut prev_index: u64,
        mut prev_term: u64,
        mut entries: Vec<Entry<S>>,
        leader_commit: u64,
    ) {
        if !self.hear_from_leader(ctx, from) {
            return;
        }
        // The committed prefix already matches the leader's log (leader completeness):
        // skip the part of the message it covers.
        if prev_index < self.commit {
            let skip = ((self.commit - prev_index) as usize).min(entries.len());
            entries.drain(..skip);
            prev_index = self.commit;
            prev_term = self.log.term(self.commit).expect("commit is in the log");
        }
        if self.log.term(prev_index) != Some(prev_term) {
            let (hint_index, hint_term) = if prev_index > self.log.last_index() {
                (self.log.last_index() + 1, None)
            } else {
                let t = self
                    .log
                    .term(prev_index)
                    .expect("prev is at or after the snapshot");
                (self.log.first_index_of_term(prev_index, t), Some(t))
            };
            self.send(
                from,
                Message::AppendResp {
                    term: self.term,
                    result: AppendResult::Rejected {
                        prev_index,
                        hint_index,
                        hint_term,
                    },
                },
            );
            return;
        }
        let match_index = prev_index + entries.len() as u64;
        if self.bugs.truncates_after_prev() && prev_index < self.log.last_index() {
            self.truncate(ctx, prev_index + 1);
        }
        for e in entries {
            match self.log.term(e.index) {
                Some(t) if t == e.term => continue, // Already held: never take it back.
                Some(_) => {
                    if e.index <= self.commit {
                        // Only an injected bug (a wrong commit here or a second leader
                        // elsewhere) gets here; keep running so the checkers report it.
                        assert!(self.bugs.any(), "a conflict inside the committed prefix");
                        return;
                    }
                    self.truncate(ctx, e.index);
                }
                None => {}
            }
            span_entry(ctx, &e, "replicated");
            self.append_entry(ctx, e);
        }
        // Fig. 2 rule 5: commit up to the last entry this message verified, no further.
        let bound = self
            .bugs
            .follower_commit_bound(match_index, self.log.last_index());
        let commit = leader_commit.min(bound);
        if commit > self.commit {
            self.commit_to(ctx, commit);
        }
        self.send(
            from,
            Message::AppendResp {
                term: self.term,
                result: AppendResult::Accepted { match_index },
            },
        );
    }

    /// Removes entries `from..` from the log and from storage.
    fn truncate(&mut self, ctx: &mut Ctx<'_, S>, from: u64) {
        assert!(from > self.commit, "committed entries are never removed");
        ctx.sometimes("follower-log-truncated");
        self.note_log_change(from);
        self.forget_durable_from(from);
        for i in from..=self.log.last_index() {
            ctx.remove(log_key(i));
        }
        self.log.truncate_from(from);
        if self.configs.last().is_some_and(|(i, _)| *i >= from) {
            // The configuration reverts with the entries that changed it (thesis §4.1).
            self.rebuild_configs();
        }
    }

    /// Any message from the leader of the current term.
    /// `false` if this node leads the same term itself: only possible when an
    /// injected bug broke election safety; the message is then ignored (the election
    /// safety checker reports it) rather than crashing the node.
    pub(super) fn hear_from_leader(&mut self, ctx: &mut Ctx<'_, S>, from: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(ctx, term, Some(from));
        }
        self.leader = Some(from);
        self.leader_contact = Some(ctx.now());
        let timeout = self.random_election_timeout(ctx);
        self.reset_election_timer(ctx, timeout);
        true
    }

    pub(super) fn on_append_resp(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        result: AppendResult,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let ls = self.leader_state.as_mut().expect("leader");
        let pr = &mut ls.progress[from];
        pr.acked_since_tick = true;
        match result {
            AppendResult::Accepted { match_index } => {
                if match_index > last_index {
                    // An ack of another leader's entries in this term: only an injected
                    // bug elects two; the election safety checker reports it.
                    assert!(self.bugs.any(), "follower acked beyond the leader's log");
                    return;
                }
                if pr.rejoined.is_some_and(|added_at| match_index >= added_at) {
                    pr.rejoined = None; // It holds the entry that added it back.
                }
                pr.matched = pr.matched.max(match_index);
                while pr.inflight.front().is_some_and(|&i| i <= match_index) {
                    pr.inflight.pop_front();
                }
                if pr.probing {
                    pr.probing = false;
                    pr.inflight.clear();
                    pr.next = pr.matched + 1;
                }
                pr.next = pr.next.max(pr.matched + 1);
                self.maybe_commit(ctx);
                // A commit that removed this leader from the configuration ended its
                // leadership (thesis §4.2.2).
                if self.role == Role::Leader {
                    self.send_append(from, false);
                    self.maybe_send_timeout_now();
                }
            }
            AppendResult::Rejected {
                prev_index,
                hint_index,
                hint_term,
            } => {
                if pr.rejoined.is_some() && hint_term.is_none() && hint_index <= pr.matched {
                    // Its log ends below what it acknowledged: a replacement machine,
                    // whose predecessor's acknowledgements arrived after it was added
                    // back. They claimed only entries committed before its removal.
                    pr.matched = hint_index.saturating_sub(1);
                }
                if prev_index <= pr.matched {
                    return; // A stale rejection: the follower has matched since.
                }
                if self.bugs.abandons_rejecting_follower() {
                    // The bug: replication to this follower stops here, until another
                    // election builds fresh progress; heartbeats keep it quiet.
                    pr.abandoned = true;
                    pr.inflight.clear();
                    return;
                }
                // Skip the follower's whole conflicting term at once (§5.3, last
                // paragraph): resume after our last entry of that term if we have one,
                // else at the first index the follower holds of it.
                let next = match hint_term {
                    None => hint_index,
                    Some(t) => match self.log.last_index_of_term(t) {
                        Some(i) if i < prev_index => i + 1,
                        _ => hint_index,
                    },
                };
                let ls = self.leader_state.as_mut().expect("leader");
                let pr = &mut ls.progress[from];
                pr.next = next.clamp(pr.matched + 1, prev_index.max(pr.matched + 1));
                pr.probing = true;
                pr.inflight.clear();
                self.send_append(from, true);
            }
        }
    }

    /// §5.3/§5.4.2: commit the highest index stored on a majority, but only by counting
    /// replicas of an entry from the current term.
    pub(super) fn maybe_commit(&mut self, ctx: &mut Ctx<'_, S>) {
        // The leader counts itself only through what its own disk holds: a sole voter
        // (or one whose copy completes a quorum) that counted its unsynced tail would
        // commit, apply and answer entries a crash then takes back. The
        // `send-before-persist` bug acts on its log before it is durable here too.
        let own = match self.bugs.sends_before_persist() {
            true => self.log.last_index(),
            false => self.durable.0.min(self.log.last_index()),
        };
        let (id, last) = (self.id, own);
        let ls = self.leader_state.as_mut().expect("leader");
        let (progress, scratch) = (&ls.progress, &mut ls.scratch);
        let matched = |p: usize| match p == id {
            true => last,
            false => progress[p].matched,
        };
        // In a joint configuration, a majority of each voter set (thesis §4.3).
        let n = self.quorum.quorum_value(scratch, matched);
        if n > self.commit && self.bugs.commit_rule(self.log.term(n) == Some(self.term)) {
            self.commit_to(ctx, n);
        }
    }

    pub(super) fn commit_to(&mut self, ctx: &mut Ctx<'_, S>, commit: u64) {
        assert!(commit > self.commit, "commit only advances");
        assert!(commit <= self.log.last_index(), "commit beyond the log");
        if self.role == Role::Leader && ctx.spans_enabled() {
            for e in self.log.slice(self.commit + 1, commit) {
                span_entry(ctx, e, "committed");
            }
        }
        self.commit = commit;
        self.apply_committed(ctx);
    }

    /// Applies committed entries in order and answers the clients waiting on them.
    fn apply_committed(&mut self, ctx: &mut Ctx<'_, S>) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let entry = self
                .log
                .entry(index)
                .expect("committed entries are in the log");
            span_entry(ctx, entry, "applied");
            self.applied_in_step.push(AppliedEntry {
                index,
                term: entry.term,
                digest: entry_digest(entry),
                command: matches!(entry.data, EntryData::Command { .. }),
            });
            let outcome = match &entry.data {
                EntryData::Noop => Outcome::Noop,
                EntryData::ConfChange(_) => Outcome::ConfChange,
                EntryData::Command { client, seq, cmd } => Outcome::Command {
                    seq: *seq,
                    applied: self
                        .sessions
                        .apply(&mut self.machine, index, *client, *seq, cmd),
                },
            };
            let term = entry.term;
            self.applied = index;
            let Some(ls) = self.leader_state.as_mut() else {
                continue;
            };
            let Some((id, req_seq)) = ls.pending_writes.remove(&index) else {
                continue;
            };
            let resp = match outcome {
                Outcome::Command {
                    seq,
                    applied: Applied::Fresh(result) | Applied::Duplicate(result),
                } => {
                    assert_eq!(seq, req_seq, "the leader's own entry at {index}");
                    self.acked.push((index, term));
                    Response::Written { seq, result }
                }
                Outcome::ConfChange => Response::Reconfigured {
                    seq: req_seq,
                    index,
                },
                Outcome::Command {
                    applied: Applied::Stale,
                    ..
                }
                | Outcome::Noop => Response::Dropped { seq: req_seq },
            };
            self.reply(id, resp);
        }
        self.membership_committed(ctx);
        self.maybe_snapshot(ctx);
        self.serve_reads();
    }

    /// What a committed configuration asks of this node: with the `config-on-commit`
    /// bug it only now takes effect; a leader it removes steps down (thesis §4.2.2: it
    /// managed the cluster until then without counting itself); a leader whose joint
    /// configuration committed moves on to the new one (thesis §4.3).
    fn membership_committed(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.bugs.config_in_effect_at(self.commit).is_some() {
            self.refresh_membership();
        }
        if self.role != Role::Leader || self.configs.last().is_some_and(|(i, _)| *i > self.commit) {
            return;
        }
        if !self.config_at(self.commit).is_voter(self.id) {
            ctx.trace(format!(
                "node {} leaves leadership: the configuration at {} removed it",
                self.id, self.membership.0
            ));
            let term = self.term;
            self.become_follower(ctx, term, None);
        } else if self.membership.1.is_joint() {
            let entry = Entry {
                term: self.term,
                index: self.log.last_index() + 1,
                data: EntryData::ConfChange(Arc::new(ConfChange::LeaveJoint)),
            };
            self.append_entry(ctx, entry);
            self.broadcast_append();
            self.maybe_commit(ctx);
        }
    }

    /// An operator's membership change (etcd's `member add/remove/promote`): appended
    /// if this node leads, has committed an entry of its term (thesis §4.1), has no
    /// change in flight, and the change is valid in the latest configuration; answered
    /// once it commits.
    pub(super) fn propose_conf_change(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: RequestId,
        seq: u64,
        change: Arc<ConfChange>,
    ) {
        if self.role != Role::Leader {
            let leader = self.leader_hint(ctx.now());
            self.reply(id, Response::Redirect { seq, leader });
            return;
        }
        let ls = self.leader_state.as_ref().expect("leader");
        let refused = if !self
            .bugs
            .may_change_membership(self.commit >= ls.term_start)
        {
            Some(ConfChangeError::TermNotCommitted)
        } else if self.configs.last().is_some_and(|(i, _)| *i > self.commit) {
            let (index, _) = self.configs.last().expect("a change in flight");
            Some(ConfChangeError::InFlight(*index))
        } else {
            let (latest_index, latest) = self.configs.last().expect("a base");
            let promoted = |c: &MemberChange| match *c {
                MemberChange::AddVoter(n) if latest.is_learner(n) => Some(n),
                _ => None,
            };
            let behind = match &*change {
                ConfChange::Single(c) => promoted(c).into_iter().collect(),
                ConfChange::EnterJoint(cs) => cs.iter().filter_map(promoted).collect(),
                ConfChange::LeaveJoint => Vec::new(),
            }
            .into_iter()
            .find(|&n| ls.progress[n].matched < *latest_index);
            match behind {
                Some(n) => Some(ConfChangeError::LearnerBehind(n)),
                None => latest.apply(&change).err(),
            }
        };
        if let Some(error) = refused {
            self.reply(id, Response::Refused { seq, error });
            return;
        }
        if ls.pending_writes.len() >= self.cfg.max_pending_requests || ls.transfer.is_some() {
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            data: EntryData::ConfChange(change),
        };
        self.append_entry(ctx, entry);
        let ls = self.leader_state.as_mut().expect("leader");
        ls.pending_writes.insert(index, (id, seq));
        self.broadcast_append();
        self.maybe_commit(ctx);
    }

    /// Heartbeat period: keep followers quiet, confirm reads, and restart replication
    /// to any follower whose pipeline stalled (a message or its reply was lost).
    pub(super) fn heartbeat_tick(&mut self, ctx: &mut Ctx<'_, S>) {
        self.expire_transfer(ctx.now());
        let last_index = self.log.last_index();
        for peer in 0..self.nodes {
            if peer == self.id || !self.membership.1.is_member(peer) {
                continue;
            }
            let ls = self.leader_state.as_mut().expect("leader");
            let pr = &mut ls.progress[peer];
            if pr.matched < last_index && !pr.acked_since_tick {
                pr.probing = true;
                pr.inflight.clear();
                pr.next = pr.matched + 1;
            }
            pr.acked_since_tick = false;
            self.send_append(peer, false);
        }
        self.broadcast_heartbeat(ctx);
    }

    pub(super) fn broadcast_heartbeat(&mut self, ctx: &mut Ctx<'_, S>) {
        let sent_at_ns = ctx.now().as_nanos() as u64;
        let ls = self.leader_state.as_ref().expect("leader");
        let read_seq = ls.read_seq;
        for peer in 0..self.nodes {
            if peer == self.id || !self.membership.1.is_member(peer) {
                continue;
            }
            let ls = self.leader_state.as_ref().expect("leader");
            // A follower may only commit what it is known to hold, unless the bug
            // hands it the leader's commit index as is.
            let verified = self.commit.min(ls.progress[peer].matched);
            let commit = self.bugs.follower_commit_bound(verified, self.commit);
            self.send(
                peer,
                Message::Heartbeat {
                    term: self.term,
                    commit,
                    read_seq,
                    sent_at_ns,
                },
            );
        }
    }

    pub(super) fn on_heartbeat(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        commit: u64,
        read_seq: u64,
        sent_at_ns: u64,
    ) {
        if !self.hear_from_leader(ctx, from) {
            return;
        }
        let commit = commit.min(self.log.last_index());
        if commit > self.commit {
            self.commit_to(ctx, commit);
        }
        self.send(
            from,
            Message::HeartbeatResp {
                term: self.term,
                read_seq,
                sent_at_ns,
            },
        );
    }
}

/// What applying one committed entry gave, for the client waiting on it.
enum Outcome<O> {
    Noop,
    Command { seq: u64, applied: Applied<O> },
    ConfChange,
}
