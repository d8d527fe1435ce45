//! A caller's calls, sans-IO: each picks an instance with the [`Selector`], waits
//! for an answer up to an attempt timeout, and is tried again on a new pick when the
//! caller's profile retries that failure ([`CallerProfile::retry_on`], `retries`,
//! within `request_timeout_ms`), as go-micro's client does; gRPC's balancer, which
//! etcd's resolver feeds, does not retry. Every outcome is reported to the selector,
//! which may eject the instance.
//!
//! The registry (etcd's watch, Consul's blocking queries) feeds the endpoint set;
//! the transport is the holder's: it sends each [`CallAction::Call`], sets each
//! [`CallAction::Timeout`], and hands back answers and timeouts. Records per step
//! (attempts sent, attempts ended) feed the discovery figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use super::profile::{CallerProfile, RetryOn};
use super::selector::Selector;
use crate::process::NodeId;

/// How a call attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered ok.
    Ok,
    /// Answered with an error.
    Error,
    /// Not answered in time.
    Timeout,
    /// No instance to call.
    NoEndpoint,
}

/// One call attempt, as the caller saw it end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDone {
    /// The attempt's id (as [`Calls::started_in_step`] named it; 0 for a call
    /// that found no instance and sent nothing).
    pub attempt: u64,
    /// The instance called (`None`: none to pick).
    pub instance: Option<NodeId>,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the holder does for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Send call `id` to instance `to`.
    Call {
        /// The instance.
        to: NodeId,
        /// The attempt's id.
        id: u64,
    },
    /// Hand back [`Calls::timed_out`]`(id)` after `after`.
    Timeout {
        /// The attempt's id.
        id: u64,
        /// The attempt timeout.
        after: Duration,
    },
}

/// A call attempt in flight.
#[derive(Clone, Debug)]
struct InCall {
    instance: NodeId,
    /// Tries left after this one.
    tries_left: u32,
    /// No new try starts after this (the profile's request timeout).
    deadline: Option<Duration>,
}

/// Most attempts in flight (one call starts per interval; each ends by its timeout).
pub const CALLS_MAX: usize = 1024;

/// A caller's calls and its selector.
#[derive(Clone, Debug)]
pub struct Calls {
    profile: CallerProfile,
    attempt_timeout: Duration,
    selector: Selector,
    calls: BTreeMap<u64, InCall>,
    next_attempt: u64,
    started_in_step: Vec<(u64, NodeId)>,
    done_in_step: Vec<CallDone>,
}

impl Calls {
    /// Calls as `profile` makes them, each attempt waiting `attempt_timeout_ms`.
    pub fn new(profile: CallerProfile, attempt_timeout_ms: u64) -> Self {
        Calls {
            profile,
            attempt_timeout: Duration::from_millis(attempt_timeout_ms.max(1)),
            selector: Selector::new(profile.selector),
            calls: BTreeMap::new(),
            next_attempt: 0,
            started_in_step: Vec::new(),
            done_in_step: Vec::new(),
        }
    }

    /// The instances it picks from.
    pub fn endpoints(&self) -> &BTreeSet<NodeId> {
        self.selector.endpoints()
    }

    /// Replaces the endpoint set; whether it changed (see [`Selector::set_endpoints`]).
    pub fn set_endpoints(&mut self, endpoints: &BTreeSet<NodeId>, rng: &mut impl Rng) -> bool {
        self.selector.set_endpoints(endpoints, rng)
    }

    /// The attempts sent in the last step: (attempt id, instance).
    pub fn started_in_step(&self) -> &[(u64, NodeId)] {
        &self.started_in_step
    }

    /// The attempts that ended in the last step.
    pub fn done_in_step(&self) -> &[CallDone] {
        &self.done_in_step
    }

    /// Resets the per-step records.
    pub fn begin(&mut self) {
        self.started_in_step.clear();
        self.done_in_step.clear();
    }

    /// A new call at `now`, unless [`CALLS_MAX`] attempts are in flight.
    pub fn start(&mut self, now: Duration, rng: &mut impl Rng) -> Vec<CallAction> {
        if self.calls.len() >= CALLS_MAX {
            return Vec::new();
        }
        let deadline = self
            .profile
            .request_timeout_ms
            .map(|ms| now + Duration::from_millis(ms));
        self.attempt(now, self.profile.retries, deadline, rng)
    }

    /// Attempt `id`'s timeout fired.
    pub fn timed_out(&mut self, id: u64, now: Duration, rng: &mut impl Rng) -> Vec<CallAction> {
        let Some(call) = self.calls.remove(&id) else {
            return Vec::new();
        };
        self.done(id, call.instance, Outcome::Timeout, now);
        self.retry(call, Outcome::Timeout, now, rng)
    }

    /// Instance `from` answered attempt `id`: ok, or an error.
    pub fn answered(
        &mut self,
        from: NodeId,
        id: u64,
        ok: bool,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallAction> {
        let Some(call) = self.calls.get(&id).filter(|c| c.instance == from).cloned() else {
            return Vec::new();
        };
        self.calls.remove(&id);
        if ok {
            self.done(id, from, Outcome::Ok, now);
            return Vec::new();
        }
        self.done(id, from, Outcome::Error, now);
        self.retry(call, Outcome::Error, now, rng)
    }

    fn done(&mut self, id: u64, instance: NodeId, outcome: Outcome, now: Duration) {
        self.selector.report(instance, outcome == Outcome::Ok, now);
        self.done_in_step.push(CallDone {
            attempt: id,
            instance: Some(instance),
            outcome,
        });
    }

    /// A failed attempt of `call`: tried again on a new pick if the profile retries
    /// this failure, tries are left, and the call's deadline has not passed.
    fn retry(
        &mut self,
        call: InCall,
        outcome: Outcome,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Vec<CallAction> {
        let retried = match self.profile.retry_on {
            RetryOn::Never => false,
            RetryOn::Timeout => outcome == Outcome::Timeout,
            RetryOn::AnyError => true,
        };
        if !retried || call.tries_left == 0 || call.deadline.is_some_and(|d| now >= d) {
            return Vec::new();
        }
        self.attempt(now, call.tries_left - 1, call.deadline, rng)
    }

    fn attempt(
        &mut self,
        now: Duration,
        tries_left: u32,
        deadline: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Vec<CallAction> {
        let Ok(instance) = self.selector.pick(now, rng) else {
            self.done_in_step.push(CallDone {
                attempt: 0,
                instance: None,
                outcome: Outcome::NoEndpoint,
            });
            return Vec::new();
        };
        self.next_attempt += 1;
        let id = self.next_attempt;
        self.calls.insert(
            id,
            InCall {
                instance,
                tries_left,
                deadline,
            },
        );
        self.started_in_step.push((id, instance));
        vec![
            CallAction::Call { to: instance, id },
            CallAction::Timeout {
                id,
                after: self.attempt_timeout,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn go_micro_retries_a_timeout_on_a_new_pick_but_not_an_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut calls = Calls::new(CallerProfile::go_micro(), 100);
        calls.set_endpoints(&set(&[3, 4]), &mut rng);
        let t0 = Duration::from_secs(1);
        let first = calls.start(t0, &mut rng);
        let CallAction::Call { id, to } = first[0] else {
            panic!("{first:?}")
        };
        let again = calls.timed_out(id, t0 + Duration::from_millis(100), &mut rng);
        assert!(
            matches!(again[0], CallAction::Call { .. }),
            "a timeout is retried"
        );
        assert_eq!(calls.done_in_step()[0].outcome, Outcome::Timeout);
        assert_eq!(calls.done_in_step()[0].instance, Some(to));
        let CallAction::Call { id: id2, to: to2 } = again[0] else {
            unreachable!()
        };
        assert!(
            calls.answered(to2, id2, false, t0, &mut rng).is_empty(),
            "errors are not"
        );
    }

    #[test]
    fn without_retries_a_failed_call_ends_and_an_empty_set_has_no_endpoint() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut calls = Calls::new(CallerProfile::etcd(), 100);
        assert!(calls.start(Duration::ZERO, &mut rng).is_empty());
        assert_eq!(calls.done_in_step()[0].outcome, Outcome::NoEndpoint);
        calls.set_endpoints(&set(&[5]), &mut rng);
        let out = calls.start(Duration::ZERO, &mut rng);
        let CallAction::Call { id, to } = out[0] else {
            panic!("{out:?}")
        };
        assert!(calls
            .timed_out(id, Duration::from_millis(100), &mut rng)
            .is_empty());
        // The answer of a timed-out attempt counts for nothing.
        assert!(calls
            .answered(to, id, true, Duration::from_millis(150), &mut rng)
            .is_empty());
        assert_eq!(calls.done_in_step().len(), 2);
    }
}
