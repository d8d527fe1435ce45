//! The injectable Raft bugs, each a deliberate mistake switched on by name, and the
//! one hook per site where it departs from the algorithm.
//!
//! The algorithm calls a hook where a bug could change what it does; every hook returns
//! the correct value when its bug is off, so the correct path reads as the paper's rule
//! with a named exit. Each bug has a detection test (`tests/bugs.rs` and
//! `src/raft/tests/bugs.rs`) and the scenario that catches it (`results/raft/bugs.md`).

use super::membership::{Membership, VoteResult};
use super::Role;
use crate::process::SyncError;

/// Deliberate mistakes, each switched on by name (see [`super::system::BUGS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Grant a vote without making it durable first.
    pub(super) vote_not_persisted: bool,
    /// Commit an entry of an older term by counting replicas (and skip the no-op).
    pub(super) figure8_commit: bool,
    /// On a matching AppendEntries, cut the log after prev_index instead of at the first
    /// conflict: a stale or duplicated message takes back acknowledged entries.
    pub(super) stale_append_truncates: bool,
    /// Grant votes without the §5.4.1 up-to-date check.
    pub(super) vote_without_log_check: bool,
    /// Followers advance commit to the leader's commit, bounded only by their own last
    /// index, applying a stale tail that was never checked against the leader.
    pub(super) apply_uncommitted: bool,
    /// Reply to a write as soon as the leader appends it, before it is durable or
    /// replicated.
    pub(super) ack_before_sync: bool,
    /// Count vote replies from older terms, and duplicates.
    pub(super) stale_vote_counting: bool,
    /// Ignore the config and run without PreVote and CheckQuorum.
    pub(super) no_prevote_checkquorum: bool,
    /// Serve read_index reads before the leader's no-op of its term is committed.
    pub(super) read_before_noop: bool,
    /// Send messages and replies (a vote, an append acknowledgement) as soon as the
    /// step ends, before the sync of the writes they depend on completes.
    pub(super) send_before_persist: bool,
    /// On an fsync error, carry on as if the sync had succeeded.
    pub(super) ignore_fsync_error: bool,
    /// After a follower rejects an append, send it no more entries until the next
    /// election (heartbeats still go out).
    pub(super) no_catch_up: bool,
    /// Propose a single-server membership change before an entry of the leader's own
    /// term is committed (the 2015 single-server change bug).
    pub(super) single_change_without_term_entry: bool,
    /// Count learners in quorums: their acknowledgements commit, their votes elect.
    pub(super) learner_votes: bool,
    /// Use a new configuration only once its entry commits, not once it is in the log.
    pub(super) config_on_commit: bool,
}

impl Bugs {
    /// Whether any bug is switched on.
    pub fn any(&self) -> bool {
        *self != Bugs::default()
    }

    /// Sets the flag named `name`; `false` if there is no such bug.
    pub fn set(&mut self, name: &str) -> bool {
        let flag = match name {
            "vote-not-persisted" => &mut self.vote_not_persisted,
            "figure8-commit" => &mut self.figure8_commit,
            "stale-append-truncates" => &mut self.stale_append_truncates,
            "vote-without-log-check" => &mut self.vote_without_log_check,
            "apply-uncommitted" => &mut self.apply_uncommitted,
            "ack-before-sync" => &mut self.ack_before_sync,
            "stale-vote-counting" => &mut self.stale_vote_counting,
            "no-prevote-checkquorum" => &mut self.no_prevote_checkquorum,
            "read-before-noop" => &mut self.read_before_noop,
            "send-before-persist" => &mut self.send_before_persist,
            "ignore-fsync-error" => &mut self.ignore_fsync_error,
            "no-catch-up" => &mut self.no_catch_up,
            "single-change-without-term-entry" => &mut self.single_change_without_term_entry,
            "learner-votes" => &mut self.learner_votes,
            "config-on-commit" => &mut self.config_on_commit,
            _ => return false,
        };
        *flag = true;
        true
    }

    /// vote-without-log-check: the §5.4.1 up-to-date rule, `up_to_date` when correct.
    pub(super) fn vote_log_check(&self, up_to_date: bool) -> bool {
        up_to_date || self.vote_without_log_check
    }

    /// vote-not-persisted: a granted vote is written (and synced before the reply).
    pub(super) fn persists_vote(&self) -> bool {
        !self.vote_not_persisted
    }

    /// stale-vote-counting: how a candidate's election stands. Correct: `current`, from
    /// the grants of its term, one per voter; the bug wins once its `tally` of every
    /// grant reaches `majority`.
    pub(super) fn poll_result(
        &self,
        role: Role,
        current: VoteResult,
        tally: usize,
        majority: usize,
    ) -> VoteResult {
        if self.stale_vote_counting && role == Role::Candidate && tally >= majority {
            VoteResult::Won
        } else {
            current
        }
    }

    /// stale-vote-counting: tallies a vote reply of any term and any repetition;
    /// `true` when the bug took it, so the correct term filter does not apply.
    pub(super) fn tally_stale_vote(&self, pre: bool, granted: bool, tally: &mut usize) -> bool {
        let taken = self.stale_vote_counting && !pre;
        if taken && granted {
            *tally += 1;
        }
        taken
    }

    /// stale-vote-counting: a vote reply from an older term still reaches the poll.
    pub(super) fn hears_stale_vote_replies(&self) -> bool {
        self.stale_vote_counting
    }

    /// figure8-commit: a new leader appends the no-op of its term (§8).
    pub(super) fn appends_term_noop(&self) -> bool {
        !self.figure8_commit
    }

    /// figure8-commit: the §5.4.2 rule, `own_term` (the entry is of the leader's term)
    /// when correct; the bug commits by counting replicas alone.
    pub(super) fn commit_rule(&self, own_term: bool) -> bool {
        own_term || self.figure8_commit
    }

    /// stale-append-truncates: a matching AppendEntries cuts the log after `prev_index`
    /// instead of at the first conflicting entry.
    pub(super) fn truncates_after_prev(&self) -> bool {
        self.stale_append_truncates
    }

    /// apply-uncommitted: the commit index a follower may take, `verified` (what the
    /// leader knows it holds) when correct, `unchecked` with the bug.
    pub(super) fn follower_commit_bound(&self, verified: u64, unchecked: u64) -> u64 {
        if self.apply_uncommitted {
            unchecked
        } else {
            verified
        }
    }

    /// ack-before-sync: a command whose output does not depend on the state (a blind
    /// write, not a compare-and-set) is answered when appended.
    pub(super) fn acks_on_append(&self, has_blind_output: bool) -> bool {
        self.ack_before_sync && has_blind_output
    }

    /// read-before-noop: a read_index read waits until the term's no-op commits.
    pub(super) fn reads_wait_for_term_commit(&self) -> bool {
        !self.read_before_noop
    }

    /// send-before-persist: messages leave when the step ends, before their sync.
    pub(super) fn sends_before_persist(&self) -> bool {
        self.send_before_persist
    }

    /// ignore-fsync-error: the result of a sync as the node acts on it.
    pub(super) fn sync_result(&self, result: Result<(), SyncError>) -> Result<(), SyncError> {
        if self.ignore_fsync_error {
            Ok(())
        } else {
            result
        }
    }

    /// no-catch-up: a leader gives up on a follower that rejected an append.
    pub(super) fn abandons_rejecting_follower(&self) -> bool {
        self.no_catch_up
    }

    /// no-prevote-checkquorum: `(pre_vote, check_quorum)` as configured, or both off.
    pub(super) fn election_options(&self, pre_vote: bool, check_quorum: bool) -> (bool, bool) {
        if self.no_prevote_checkquorum {
            (false, false)
        } else {
            (pre_vote, check_quorum)
        }
    }

    /// single-change-without-term-entry: a leader changes membership only once an entry
    /// of its own term is committed (thesis §4.1); `own_term_committed` when correct.
    pub(super) fn may_change_membership(&self, own_term_committed: bool) -> bool {
        own_term_committed || self.single_change_without_term_entry
    }

    /// learner-votes: the configuration quorums are counted in; `membership` itself
    /// when correct, with the learners counted as voters with the bug.
    pub(super) fn quorum_membership(&self, membership: &Membership) -> Membership {
        if self.learner_votes {
            membership.with_learners_voting()
        } else {
            membership.clone()
        }
    }

    /// config-on-commit: the configuration in effect is the latest in the log when
    /// correct (`None`); with the bug, the latest at or below `commit`.
    pub(super) fn config_in_effect_at(&self, commit: u64) -> Option<u64> {
        self.config_on_commit.then_some(commit)
    }
}
