//! Leader election (§5.2), the up-to-date vote restriction (§5.4.1), PreVote and
//! CheckQuorum (thesis §9.6, §6).

use std::time::Duration;

use super::membership::{ConfChangeError, VoteResult};
use super::messages::{Entry, EntryData, Message, Response};
use super::state_machine::StateMachine;
use super::{Ctx, LeaderState, Progress, RaftProcess, Role, Timer, Transfer};
use crate::process::{NodeId, RequestId};

impl<S: StateMachine> RaftProcess<S> {
    /// Whether this node leads, or heard from the leader of its term within the
    /// minimum election timeout (thesis §4.2.3). Such a node believes a leader is
    /// working, so it refuses pre-votes (thesis §9.6), CheckQuorum on or off.
    pub(super) fn heard_from_leader_recently(&self, now: Duration) -> bool {
        if self.role == Role::Leader {
            return true;
        }
        match (self.leader, self.leader_contact) {
            (Some(_), Some(at)) => now < at + self.cfg.election_timeout_min(),
            _ => false,
        }
    }

    /// With CheckQuorum, whether this node refuses to help depose a leader: it heard
    /// from one recently, or it restarted within a lease (see `lease_guard_until`).
    /// Such a node also ignores vote requests of higher terms (§6, as etcd-io/raft
    /// applies it: only with CheckQuorum, since leadership transfer must get through).
    pub(super) fn in_lease(&self, now: Duration) -> bool {
        self.check_quorum && (now < self.lease_guard_until || self.heard_from_leader_recently(now))
    }

    /// The election timer fired on a follower or candidate.
    pub(super) fn election_timeout(&mut self, ctx: &mut Ctx<'_, S>) {
        assert_ne!(self.role, Role::Leader);
        let voter = self.quorum.is_voter(self.id)
            || (self.configs.len() > 1 && self.config_at(self.commit).is_voter(self.id));
        if !voter || self.rejoining() {
            // A learner, a spare or a removed server never campaigns (etcd-io/raft's
            // `promotable`): it could not win, and a removed one must not disrupt the
            // cluster it left (thesis §4.2.3). Nor does a replacement machine before it
            // has learnt the configuration that re-added it. A voter of the committed
            // configuration whose log ends with its own removal, not yet committed,
            // still does (counting only the new configuration's votes, thesis §4.2.2's
            // leader outside its configuration): else, with the remaining voters
            // behind it, no one could be elected, since their logs are less up to date
            // than its own and it would not vote for them.
            let timeout = self.random_election_timeout(ctx);
            self.reset_election_timer(ctx, timeout);
            return;
        }
        if self.pre_vote {
            self.become_pre_candidate(ctx);
        } else {
            self.become_candidate(ctx);
        }
    }

    fn become_pre_candidate(&mut self, ctx: &mut Ctx<'_, S>) {
        // A pre-candidate keeps its term and vote: it only asks whether it could win.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.start_poll(ctx);
        let (term, last_index, last_term) =
            (self.term + 1, self.log.last_index(), self.log.last_term());
        for peer in 0..self.nodes {
            if peer != self.id && self.quorum.is_voter(peer) {
                self.send(
                    peer,
                    Message::PreVote {
                        term,
                        last_index,
                        last_term,
                    },
                );
            }
        }
        self.check_poll(ctx);
    }

    fn become_candidate(&mut self, ctx: &mut Ctx<'_, S>) {
        self.term += 1;
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        // The self-vote is durable before any vote request leaves (finish syncs first).
        self.persist_hard(ctx);
        ctx.trace(format!("node {} campaigns in term {}", self.id, self.term));
        self.start_poll(ctx);
        self.request_votes();
        let term = self.term;
        ctx.set_timer(self.cfg.heartbeat(), Timer::VoteRetry { term });
        self.check_poll(ctx);
    }

    /// Sends RequestVote to every peer that has not answered this candidacy.
    pub(super) fn request_votes(&mut self) {
        let (term, last_index, last_term) =
            (self.term, self.log.last_index(), self.log.last_term());
        for peer in 0..self.nodes {
            if peer != self.id && self.quorum.is_voter(peer) && !self.votes.contains_key(&peer) {
                self.send(
                    peer,
                    Message::Vote {
                        term,
                        last_index,
                        last_term,
                        transfer: self.transfer_campaign,
                    },
                );
            }
        }
    }

    fn start_poll(&mut self, ctx: &mut Ctx<'_, S>) {
        self.votes.clear();
        self.votes.insert(self.id, true);
        self.bug_vote_count = 1;
        let timeout = self.random_election_timeout(ctx);
        self.reset_election_timer(ctx, timeout);
    }

    /// Wins or loses the current (pre-)election once a majority has answered.
    fn check_poll(&mut self, ctx: &mut Ctx<'_, S>) {
        let current = self.quorum.vote_result(&self.votes);
        let majority = self.quorum.voters().len() / 2 + 1;
        let result = self
            .bugs
            .poll_result(self.role, current, self.bug_vote_count, majority);
        match result {
            VoteResult::Won => match self.role {
                Role::PreCandidate => self.become_candidate(ctx),
                Role::Candidate => self.become_leader(ctx),
                _ => unreachable!("polls run only in elections"),
            },
            VoteResult::Lost => {
                // Lost: wait for the next timeout as a follower of no one.
                self.role = Role::Follower;
                self.votes.clear();
            }
            VoteResult::Pending => {}
        }
    }

    /// Thesis §9.6: a pre-vote is granted when this node would grant the real vote and
    /// believes no leader is working. It would vote for a higher term, or in its own
    /// term if it has not voted for another and knows no leader (etcd-io/raft's
    /// `canVote`); the candidate's log must be at least as up to date (§5.4.1); and it
    /// must not have heard from a leader within the minimum election timeout, whether
    /// or not CheckQuorum is on. etcd-io/raft checks the last only with CheckQuorum;
    /// without it, a follower whose heartbeats arrive late would help a pre-candidate
    /// depose a leader the rest of the cluster still follows. A refusal carries this
    /// node's term, a grant the term asked for.
    pub(super) fn on_pre_vote(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
    ) {
        let would_vote = term > self.term
            || (term == self.term
                && (self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none())));
        let up_to_date = self
            .bugs
            .vote_log_check(self.log.is_up_to_date(last_index, last_term));
        let now = ctx.now();
        let granted = would_vote
            && up_to_date
            && !self.rejoining()
            && !self.heard_from_leader_recently(now)
            && !self.in_lease(now);
        let term = if granted { term } else { self.term };
        self.send(from, Message::PreVoteResp { term, granted });
    }

    pub(super) fn on_vote(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
    ) {
        assert_eq!(term, self.term, "step() aligned the terms");
        // One vote per term, first come first served; a repeated request from the
        // candidate voted for is granted again (its first reply may have been lost).
        let can_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let up_to_date = self
            .bugs
            .vote_log_check(self.log.is_up_to_date(last_index, last_term));
        // A replacement machine forgot the votes its predecessor cast.
        let granted = can_vote && up_to_date && !self.rejoining();
        if granted {
            self.vote = Some(from);
            if self.bugs.persists_vote() {
                self.persist_hard(ctx);
            }
            let timeout = self.random_election_timeout(ctx);
            self.reset_election_timer(ctx, timeout);
        }
        self.send(
            from,
            Message::VoteResp {
                term: self.term,
                granted,
            },
        );
    }

    pub(super) fn on_vote_resp(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        term: u64,
        granted: bool,
        pre: bool,
    ) {
        let current = match (self.role, pre) {
            // A pre-vote grant carries the term asked for, a refusal the voter's own
            // (thesis §9.6): a refusal from a voter in this node's term counts too.
            (Role::PreCandidate, true) => term == self.term + u64::from(granted),
            (Role::Candidate, false) => term == self.term,
            _ => return, // The election this answers is over.
        };
        if !self
            .bugs
            .tally_stale_vote(pre, granted, &mut self.bug_vote_count)
            && !current
        {
            return;
        }
        self.votes.insert(from, granted);
        self.check_poll(ctx);
    }

    fn become_leader(&mut self, ctx: &mut Ctx<'_, S>) {
        assert_eq!(self.role, Role::Candidate);
        self.transfer_campaign = false;
        assert_eq!(self.vote, Some(self.id));
        ctx.trace(format!("node {} leads term {}", self.id, self.term));
        self.role = Role::Leader;
        self.leader = Some(self.id);
        let next = self.log.last_index() + 1;
        // The voters that granted this term spoke to this node within an election
        // timeout: they count toward the first CheckQuorum period (etcd-io/raft starts
        // every follower inactive, so a leader whose heartbeat replies are all slow
        // steps down at its first check though a majority just elected it).
        let voters = std::mem::take(&mut self.votes);
        self.leader_state = Some(LeaderState {
            progress: (0..self.nodes)
                .map(|p| Progress::new(next, voters.get(&p) == Some(&true)))
                .collect(),
            term_start: next,
            pending_writes: Default::default(),
            read_seq: 0,
            pending_reads: Default::default(),
            scratch: Vec::with_capacity(self.nodes),
            transfer: None,
        });
        // The no-op lets this term commit (and so learn the commit index) at once.
        if self.bugs.appends_term_noop() {
            let entry = Entry {
                term: self.term,
                index: next,
                data: EntryData::Noop,
            };
            self.append_entry(ctx, entry);
        }
        // CheckQuorum runs on the election timer, every minimum election timeout.
        let period = self.cfg.election_timeout_min();
        self.reset_election_timer(ctx, period);
        ctx.set_timer(self.cfg.heartbeat(), Timer::Heartbeat { term: self.term });
        // Probe every follower at once: its reply tells where its log matches ours.
        for peer in 0..self.nodes {
            if peer != self.id && self.membership.1.is_member(peer) {
                self.send_append(peer, true);
            }
        }
        self.maybe_commit(ctx);
    }

    /// CheckQuorum: a leader that has not heard from a majority within the period steps
    /// down, so that a partitioned leader stops serving.
    pub(super) fn check_quorum_tick(&mut self, ctx: &mut Ctx<'_, S>) {
        let period = self.cfg.election_timeout_min();
        self.reset_election_timer(ctx, period);
        if !self.check_quorum {
            return;
        }
        let id = self.id;
        let ls = self.leader_state.as_mut().expect("leader");
        let (progress, scratch) = (&mut ls.progress, &mut ls.scratch);
        let active = |p: usize| u64::from(p == id || progress[p].active);
        let quorum_active = self.quorum.quorum_value(scratch, active) == 1;
        for pr in progress.iter_mut() {
            pr.active = false;
        }
        if !quorum_active {
            ctx.trace(format!(
                "node {} lost its quorum in term {}",
                self.id, self.term
            ));
            let term = self.term;
            self.become_follower(ctx, term, None);
        }
    }

    /// Leadership transfer (thesis §3.10, etcd's `move-leader`): an operator asks the
    /// leader to hand over to the voter `to`. The leader stops taking proposals,
    /// brings `to` up to date, then sends it `TimeoutNow`; it gives up after an
    /// election timeout. Answered `TransferStarted` once `TimeoutNow` is sent.
    pub(super) fn transfer_leadership(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: RequestId,
        seq: u64,
        to: NodeId,
    ) {
        if self.role != Role::Leader {
            let leader = self.leader;
            self.reply(id, Response::Redirect { seq, leader });
            return;
        }
        if to == self.id {
            self.reply(id, Response::TransferStarted { seq, to });
            return;
        }
        if !self.membership.1.is_voter(to) {
            let error = ConfChangeError::NotVoter(to);
            self.reply(id, Response::Refused { seq, error });
            return;
        }
        let deadline = ctx.now() + self.cfg.election_timeout_min();
        let ls = self.leader_state.as_mut().expect("leader");
        if ls.transfer.is_some() {
            self.reply(id, Response::Unavailable { seq });
            return;
        }
        ls.transfer = Some(Transfer {
            to,
            deadline,
            request: Some((id, seq)),
        });
        ctx.trace(format!("node {} hands leadership to node {to}", self.id));
        self.send_append(to, true);
        self.maybe_send_timeout_now();
    }

    /// Sends `TimeoutNow` to the transfer's target once its log matches the leader's.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let last = self.log.last_index();
        let Some(ls) = self.leader_state.as_mut() else {
            return;
        };
        let Some(transfer) = ls.transfer.as_mut() else {
            return;
        };
        if ls.progress[transfer.to].matched < last {
            return;
        }
        let to = transfer.to;
        if let Some((id, seq)) = transfer.request.take() {
            self.reply(id, Response::TransferStarted { seq, to });
            self.send(to, Message::TimeoutNow { term: self.term });
        }
    }

    /// The heartbeat tick ends a transfer that took longer than an election timeout:
    /// the leader takes proposals again.
    pub(super) fn expire_transfer(&mut self, now: Duration) {
        let ls = self.leader_state.as_mut().expect("leader");
        if ls.transfer.as_ref().is_some_and(|t| now >= t.deadline) {
            let transfer = ls.transfer.take().expect("checked");
            if let Some((id, seq)) = transfer.request {
                self.reply(id, Response::Unavailable { seq });
            }
        }
    }

    /// A follower whose leader handed over campaigns at once, skipping PreVote (the
    /// leader vouched that its log is up to date).
    pub(super) fn on_timeout_now(&mut self, ctx: &mut Ctx<'_, S>, from: NodeId) {
        if self.role != Role::Follower
            || self.leader != Some(from)
            || !self.quorum.is_voter(self.id)
        {
            return;
        }
        ctx.trace(format!(
            "node {} campaigns: leadership handed over",
            self.id
        ));
        self.transfer_campaign = true;
        self.become_candidate(ctx);
    }
}
