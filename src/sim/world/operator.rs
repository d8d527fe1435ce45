//! The operator: the actor that carries out a schedule's member faults, as a person
//! with `etcdctl member add/remove` would. It knows nothing of the protocol: the
//! [`System`] turns a change into a request ([`System::member_request`]) and says how
//! to take each answer ([`System::member_answer`]).
//!
//! One change at a time, in schedule order: faults that start while one is under way
//! wait their turn (a real operator, and Raft's single-change rule, do the same). For
//! each change the operator asks the node it believes leads (at first the node that
//! led the last change, node 0 before any), follows redirects, asks the next node
//! after [`ANSWER_TIMEOUT_NS`] without an answer or after a redirect to no one, and
//! asks again after [`RETRY_NS`] when told to retry (unavailable, or an outcome
//! unknown). It stops at a final answer (committed or refused), or gives the change up
//! after [`ATTEMPTS_MAX`] requests. A `member-replace` removes the node; once that
//! removal is committed, crashes it, wipes its disk, seeds it with
//! [`System::rejoin_records`], restarts it, adds it back as a learner and, if it was a
//! voter, promotes it [`CATCH_UP_NS`] later (etcd's `member add --learner`, then
//! `member promote`).
//!
//! Requests travel with the client latency and are never cut by client faults (the
//! operator stands on the cluster's management network); the operator's requests carry
//! the client id one past the workload's clients. It draws nothing at random.

use std::collections::VecDeque;

use super::super::mailbox::{Due, Mailbox};
use super::super::trace::Actor;
use super::{NodeInput, Status, World, P};
use crate::process::{NodeId, Process, RequestId, TimerId};
use crate::scenario::{Fault, Members};
use crate::system::{MemberAnswer, MemberChange, System};

/// How long the operator waits for an answer before it asks another node, in ns
/// (true time): a few election timeouts, as etcdctl's default command timeout is a
/// few seconds.
pub const ANSWER_TIMEOUT_NS: u64 = 1_000_000_000;

/// The pause before asking again after a retry answer or a redirect to no one, in ns.
pub const RETRY_NS: u64 = 100_000_000;

/// The most requests the operator sends for one step of a change (the removal or the
/// addition of a replacement, each) before it gives the change up: with the timeouts
/// above, at least 5 s and at most 50 s of trying.
pub const ATTEMPTS_MAX: u32 = 50;

/// How long the operator lets a replacement machine, added back as a learner, catch
/// up before promoting it to voter, in ns: etcd's procedure (`member add --learner`,
/// then `member promote` once the learner is in sync). Promoted at once, a replacement
/// that has not yet received the entry that re-added it would be a voter that cannot
/// vote (see `Record::Join` in Raft), and a two-voter configuration would then elect
/// no one.
pub const CATCH_UP_NS: u64 = 1_000_000_000;

/// What wakes the operator.
#[derive(Clone, Debug)]
pub enum OperatorTimer {
    /// No answer to request `seq` in time.
    Timeout { seq: u64 },
    /// Ask again.
    Retry,
    /// Try the wipe of a replacement again (the node was paused).
    Wipe,
    /// A replacement's catch-up time is over.
    CaughtUp,
    /// Fault `index`'s command timeout (`timeout_ms`) is over.
    Deadline { index: usize },
}

/// A node's answer to one of the operator's requests.
pub struct OperatorReply<P: Process> {
    pub(super) from: NodeId,
    pub(super) id: RequestId,
    pub(super) response: P::Response,
}

/// What the operator's madsim task must do once it lets go of the world: a replaced
/// node's task is killed and restarted, as a crash fault's is.
#[derive(Clone, Copy, Debug)]
pub enum NodeAction {
    /// Kill the node's task (its process is already down in the world).
    Kill(madsim::task::NodeId),
    /// Start it again (after `Kill`, as madsim requires).
    Restart(madsim::task::NodeId),
}

/// One step of a change under way.
#[derive(Clone, Debug)]
enum Phase {
    Change(MemberChange),
    /// Crash, wipe, seed and restart a node whose removal is committed.
    Wipe,
    /// Give a replacement added as a learner [`CATCH_UP_NS`] to receive the log
    /// before promoting it.
    Wait,
}

/// The change under way.
struct Job<P: Process> {
    /// The member fault's index in the schedule.
    index: usize,
    node: NodeId,
    /// What is left to do, the current step first. At most 3 steps (a replacement).
    phases: VecDeque<Phase>,
    /// Requests sent for the current step.
    attempts: u32,
    /// The request awaiting an answer, if any.
    seq: Option<u64>,
    timer: Option<TimerId>,
    /// The answer that committed a replacement's removal, for its rejoin records.
    removal: Option<P::Response>,
}

/// The operator's state (see the module's doc).
pub struct Operator<P: Process> {
    /// Replies (`None`: a wake-up for a fault that started) and timers.
    pub mailbox: Mailbox<Option<OperatorReply<P>>, OperatorTimer>,
    /// Whether the schedule has member faults (else the operator has no task, and
    /// the run reports no operator metrics).
    pub enabled: bool,
    /// Member faults that started and wait for the one under way: at most one entry
    /// per fault of the schedule.
    queue: VecDeque<(usize, Fault)>,
    job: Option<Job<P>>,
    /// Where the next request goes.
    target: NodeId,
    /// The node asked next when a node names no leader or does not answer: it moves
    /// round the cluster by itself, so that redirects between nodes with stale
    /// knowledge cannot keep the operator from the others.
    cursor: NodeId,
    next_seq: u64,
    next_timer: u64,
    /// The configuration the committed changes so far lead to, from the bootstrap one
    /// (a replacement comes back as a learner if it left as one).
    members: Members,
    /// Kills and restarts for the operator's task, taken by [`World::run_operator`].
    actions: Vec<NodeAction>,
    committed: u64,
    refused: u64,
    abandoned: u64,
}

impl<P: Process> Operator<P> {
    pub fn new(bootstrap: Option<Members>) -> Self {
        Operator {
            mailbox: Mailbox::default(),
            enabled: false,
            queue: VecDeque::new(),
            job: None,
            target: 0,
            cursor: 0,
            next_seq: 0,
            next_timer: 0,
            members: bootstrap.unwrap_or_default(),
            actions: Vec::new(),
            committed: 0,
            refused: 0,
            abandoned: 0,
        }
    }

    /// (committed, refused, abandoned, pending) changes, for the run's metrics; a
    /// replacement counts its removal and its addition.
    pub fn counts(&self) -> [u64; 4] {
        let pending = self.queue.len() as u64 + u64::from(self.job.is_some());
        [self.committed, self.refused, self.abandoned, pending]
    }
}

impl<S: System> World<S> {
    /// The client id the operator's requests carry: one past the workload's clients.
    pub(super) fn operator_id(&self) -> usize {
        self.clients.len()
    }

    /// Member fault `index` starts: the operator takes it up now, or after the
    /// changes before it.
    pub fn member_fault(&mut self, index: usize, fault: &Fault) {
        assert!(
            fault.kind().is_membership(),
            "not a member fault: {fault:?}"
        );
        self.operator.queue.push_back((index, fault.clone()));
        let now = self.now_ns();
        // Wake the operator's task: it starts the change in its next round.
        self.operator.mailbox.push(now, None);
    }

    /// The operator's round: handles what is due (bounded), starts the next change
    /// when idle. Returns when it is next due, and what its task must do to node tasks.
    pub fn run_operator(&mut self) -> (Option<u64>, Vec<NodeAction>) {
        let now = self.now_ns();
        // Each item is a reply, a timer or a wake-up; a round handles a bounded number.
        for _ in 0..super::step::STEPS_PER_WAKE_MAX {
            if self.failure.is_some() {
                break;
            }
            if self.operator.job.is_none() {
                if let Some((index, fault)) = self.operator.queue.pop_front() {
                    self.start_job(index, &fault, now);
                    continue;
                }
            }
            match self.operator.mailbox.pop_due(now) {
                Some(Due::Input(reply)) => self.operator_reply(reply, now),
                Some(Due::Timer(timer)) => self.operator_timer(timer, now),
                None => break,
            }
        }
        let next = match self.failure {
            Some(_) => None,
            None => self.operator.mailbox.next_due_ns(),
        };
        self.operator.mailbox.sleep_until(next);
        (next, std::mem::take(&mut self.operator.actions))
    }

    fn operator_event(&mut self, now: u64, event: &'static str, detail: String) {
        self.trace
            .event(now, Actor::Sim, event, &detail, || detail.clone());
    }

    fn start_job(&mut self, index: usize, fault: &Fault, now: u64) {
        let phases: VecDeque<Phase> = match *fault {
            Fault::MemberAdd { node, learner, .. } => {
                [Phase::Change(MemberChange::Add { node, learner })].into()
            }
            Fault::MemberRemove { node, .. } => {
                [Phase::Change(MemberChange::Remove { node })].into()
            }
            Fault::MemberReplace { node, .. } => {
                let learner = self.operator.members.learners.contains(&node);
                let mut phases: VecDeque<Phase> = [
                    Phase::Change(MemberChange::Remove { node }),
                    Phase::Wipe,
                    Phase::Change(MemberChange::Add {
                        node,
                        learner: true,
                    }),
                ]
                .into();
                if !learner {
                    phases.extend([
                        Phase::Wait,
                        Phase::Change(MemberChange::Add {
                            node,
                            learner: false,
                        }),
                    ]);
                }
                phases
            }
            _ => unreachable!("not a member fault: {fault:?}"),
        };
        let node = fault.node_ids()[0].1;
        // Without a command timeout the fault reads as it did before it had one, so
        // that the trace (whose hash covers this text) of such runs stays the same.
        let shown = format!("{fault:?}").replace(", timeout_ms: None", "");
        self.operator_event(now, "operator-start", format!("fault {index}: {shown}"));
        if let Fault::MemberAdd {
            timeout_ms: Some(ms),
            ..
        }
        | Fault::MemberRemove {
            timeout_ms: Some(ms),
            ..
        } = *fault
        {
            let op = &mut self.operator;
            op.next_timer += 1;
            let timer = TimerId(op.next_timer);
            op.mailbox.set_timer(
                timer,
                now + ms * 1_000_000,
                OperatorTimer::Deadline { index },
            );
        }
        self.operator.job = Some(Job {
            index,
            node,
            phases,
            attempts: 0,
            seq: None,
            timer: None,
            removal: None,
        });
        self.operator_step(now);
    }

    /// Carries out the current step of the job: sends its request, or wipes.
    fn operator_step(&mut self, now: u64) {
        let Some(job) = &self.operator.job else {
            return;
        };
        match job.phases.front().cloned() {
            None => {
                let detail = format!("fault {} done", job.index);
                self.operator.job = None;
                self.operator_event(now, "operator-done", detail);
            }
            Some(Phase::Wipe) => self.operator_wipe(now),
            Some(Phase::Wait) => {
                let op = &mut self.operator;
                let job = op.job.as_mut().expect("a job");
                job.phases.pop_front();
                op.next_timer += 1;
                let timer = TimerId(op.next_timer);
                job.timer = Some(timer);
                op.mailbox
                    .set_timer(timer, now + CATCH_UP_NS, OperatorTimer::CaughtUp);
            }
            Some(Phase::Change(change)) => self.operator_send(change, now),
        }
    }

    fn operator_send(&mut self, change: MemberChange, now: u64) {
        let op = &mut self.operator;
        let job = op.job.as_mut().expect("a job");
        job.attempts += 1;
        if job.attempts > ATTEMPTS_MAX {
            let index = job.index;
            op.abandoned += 1;
            op.job = None;
            self.fault_effects.add(index, "changes_abandoned", 1.0);
            let detail =
                format!("fault {index}: {change:?} given up after {ATTEMPTS_MAX} requests");
            self.operator_event(now, "operator-abandon", detail);
            return;
        }
        op.next_seq += 1;
        let seq = op.next_seq;
        let to = op.target;
        job.seq = Some(seq);
        op.next_timer += 1;
        let timer = TimerId(op.next_timer);
        job.timer = Some(timer);
        op.mailbox.set_timer(
            timer,
            now + ANSWER_TIMEOUT_NS,
            OperatorTimer::Timeout { seq },
        );
        let id = RequestId {
            client: self.operator_id(),
            seq,
        };
        let req = S::member_request(&self.setup, change, seq);
        self.trace
            .event(now, Actor::Sim, "operator-request", &(to, id, &req), || {
                format!("to n{to} {id:?} {req:?}")
            });
        let at = now + self.net.client_latency_ns();
        self.nodes[to]
            .mailbox
            .push(at, NodeInput::Request { id, req });
    }

    fn operator_reply(&mut self, reply: Option<OperatorReply<P<S>>>, now: u64) {
        let Some(OperatorReply { from, id, response }) = reply else {
            return; // a wake-up
        };
        self.trace.event(
            now,
            Actor::Sim,
            "operator-reply",
            &(from, id, &response),
            || format!("from n{from} {id:?} {response:?}"),
        );
        let op = &mut self.operator;
        let Some(job) = op.job.as_mut().filter(|j| j.seq == Some(id.seq)) else {
            return; // an answer to a request the operator no longer waits for
        };
        job.seq = None;
        if let Some(timer) = job.timer.take() {
            op.mailbox.cancel_timer(timer);
        }
        let index = job.index;
        match S::member_answer(&response) {
            MemberAnswer::Committed => {
                op.committed += 1;
                op.target = from;
                job.attempts = 0;
                if let Some(Phase::Change(change)) = job.phases.pop_front() {
                    let fault = match change {
                        MemberChange::Add { node, learner } => Fault::MemberAdd {
                            at_ms: 0,
                            node,
                            learner,
                            timeout_ms: None,
                        },
                        MemberChange::Remove { node } => Fault::MemberRemove {
                            at_ms: 0,
                            node,
                            timeout_ms: None,
                        },
                    };
                    // The static view may disagree with the cluster's after a change
                    // refused at runtime; it only decides how a replacement returns.
                    let _ = op.members.apply(&fault);
                    if matches!(change, MemberChange::Remove { .. }) {
                        job.removal = Some(response);
                    }
                }
                self.fault_effects.add(index, "changes_committed", 1.0);
                self.operator_step(now);
            }
            MemberAnswer::Refused(why) => {
                op.refused += 1;
                op.job = None;
                self.fault_effects.add(index, "changes_refused", 1.0);
                self.operator_event(now, "operator-refused", format!("fault {index}: {why}"));
            }
            MemberAnswer::Redirect(Some(leader)) if leader != from => {
                op.target = leader;
                self.operator_step(now);
            }
            MemberAnswer::Redirect(_) => {
                self.operator_next_node();
                self.operator_retry_later(now);
            }
            MemberAnswer::Retry(why) => {
                self.operator_event(now, "operator-retry", format!("fault {index}: {why}"));
                self.operator_retry_later(now);
            }
        }
    }

    /// The next node round the cluster from the cursor, past the one just asked.
    fn operator_next_node(&mut self) {
        let op = &mut self.operator;
        let n = self.setup.nodes;
        op.cursor = (op.cursor + 1) % n;
        if op.cursor == op.target && n > 1 {
            op.cursor = (op.cursor + 1) % n;
        }
        op.target = op.cursor;
    }

    fn operator_retry_later(&mut self, now: u64) {
        let op = &mut self.operator;
        op.next_timer += 1;
        let timer = TimerId(op.next_timer);
        if let Some(job) = op.job.as_mut() {
            job.timer = Some(timer);
        }
        op.mailbox
            .set_timer(timer, now + RETRY_NS, OperatorTimer::Retry);
    }

    fn operator_timer(&mut self, timer: OperatorTimer, now: u64) {
        let Some(job) = self.operator.job.as_mut() else {
            return;
        };
        if let OperatorTimer::Deadline { index } = timer {
            // The change is given up with its outcome unknown: a late answer finds
            // no job (or another job, whose requests have other numbers).
            if job.index == index {
                if let Some(pending) = job.timer.take() {
                    self.operator.mailbox.cancel_timer(pending);
                }
                self.operator.abandoned += 1;
                self.operator.job = None;
                self.fault_effects.add(index, "changes_abandoned", 1.0);
                let detail = format!("fault {index}: command timeout, outcome unknown");
                self.operator_event(now, "operator-abandon", detail);
            }
            return;
        }
        job.timer = None;
        match timer {
            OperatorTimer::Timeout { seq } => {
                if job.seq != Some(seq) {
                    return;
                }
                job.seq = None;
                let detail = format!(
                    "fault {}: no answer from n{}",
                    job.index, self.operator.target
                );
                self.operator_next_node();
                self.operator_event(now, "operator-timeout", detail);
                self.operator_step(now);
            }
            OperatorTimer::Retry | OperatorTimer::Wipe | OperatorTimer::CaughtUp => {
                self.operator_step(now)
            }
            OperatorTimer::Deadline { .. } => unreachable!("handled above"),
        }
    }

    /// The replacement's machine: its removal is committed, so it is no member and
    /// may lose its disk. A paused node is waited for (a pause always ends at the heal,
    /// unless permanent; the attempts bound the wait).
    fn operator_wipe(&mut self, now: u64) {
        let job = self.operator.job.as_mut().expect("a job");
        let (index, node) = (job.index, job.node);
        if self.nodes[node].status == Status::Paused {
            job.attempts += 1;
            if job.attempts > ATTEMPTS_MAX {
                self.operator.abandoned += 1;
                self.operator.job = None;
                self.fault_effects.add(index, "changes_abandoned", 1.0);
                let detail = format!("fault {index}: n{node} stayed paused: not replaced");
                self.operator_event(now, "operator-abandon", detail);
                return;
            }
            let op = &mut self.operator;
            op.next_timer += 1;
            op.mailbox
                .set_timer(TimerId(op.next_timer), now + RETRY_NS, OperatorTimer::Wipe);
            return;
        }
        job.phases.pop_front();
        job.attempts = 0;
        let removal = job
            .removal
            .take()
            .expect("a committed removal before the wipe");
        let madsim = self.nodes[node].madsim.expect("node built");
        let was_up = self.crash(node, index, false, true);
        let records = S::rejoin_records(&self.setup, node, &removal);
        let storage = &mut self.nodes[node].storage;
        for (key, record) in records {
            storage.write(key, Some(record));
        }
        storage.sync_all();
        self.operator_event(now, "operator-replace", format!("n{node} on a fresh disk"));
        let started = self.restart(node);
        match (was_up, started) {
            (true, true) => {
                let actions = &mut self.operator.actions;
                actions.extend([NodeAction::Kill(madsim), NodeAction::Restart(madsim)]);
            }
            (true, false) => self.operator.actions.push(NodeAction::Kill(madsim)),
            // Down for another fault: it comes back when that one ends. Or down after
            // aborting itself, its task still running: it is up again now.
            (false, _) => {}
        }
        self.operator_step(now);
    }
}
