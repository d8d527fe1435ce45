//! What is due at one simulated actor: inputs in flight to it and its timers, in
//! true-time order. Ties break by arrival sequence, so order is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::process::TimerId;

/// Most inputs in flight to one actor at once. Inputs are messages, requests,
/// replies and disk wake-ups that a run's sends and syncs put there; an actor with
/// more pending than this is being flooded faster than any scenario drives it.
pub const INPUTS_MAX: usize = 1 << 20;

/// Most timers one actor has pending at once: a process sets a handful per role
/// (election, heartbeat, probe, one per client operation); more means a timer leak.
pub const TIMERS_MAX: usize = 1 << 20;

pub enum Due<I, T> {
    Input(I),
    Timer(T),
}

pub struct Mailbox<I, T> {
    /// Inputs by (due time, arrival sequence); at most [`INPUTS_MAX`].
    inputs: BTreeMap<(u64, u64), I>,
    /// Timers by (due time, id); at most [`TIMERS_MAX`].
    timers: BTreeMap<(u64, TimerId), T>,
    /// Each pending timer's due time, by id: one entry per entry of `timers`.
    deadlines: BTreeMap<TimerId, u64>,
    seq: u64,
    /// While set, timers do not come due (the actor's clock source is frozen); they
    /// keep their deadlines and fire, late, once released.
    pub timers_held: bool,
    /// The true time the actor's loop sleeps until (`u64::MAX`: until notified). A new
    /// item due no earlier needs no wake-up: the loop wakes for it anyway.
    wake_ns: u64,
    /// Wakes the actor's loop when something is queued before `wake_ns`.
    pub notify: Arc<Notify>,
}

impl<I, T> Default for Mailbox<I, T> {
    fn default() -> Self {
        Mailbox {
            inputs: BTreeMap::new(),
            timers: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            seq: 0,
            timers_held: false,
            wake_ns: 0,
            notify: Arc::new(Notify::new()),
        }
    }
}

impl<I, T> Mailbox<I, T> {
    pub fn push(&mut self, at_ns: u64, input: I) {
        assert!(
            self.inputs.len() < INPUTS_MAX,
            "more than {INPUTS_MAX} inputs in flight to one actor"
        );
        self.seq += 1;
        self.inputs.insert((at_ns, self.seq), input);
        self.wake_before(at_ns);
    }

    fn wake_before(&mut self, at_ns: u64) {
        if at_ns < self.wake_ns {
            self.wake_ns = at_ns;
            self.notify.notify_one();
        }
    }

    /// The loop is about to sleep until `wake_ns` (`None`: until notified).
    pub fn sleep_until(&mut self, wake_ns: Option<u64>) {
        self.wake_ns = wake_ns.unwrap_or(u64::MAX);
    }

    pub fn set_timer(&mut self, id: TimerId, at_ns: u64, timer: T)
    where
        T: std::fmt::Debug,
    {
        let previous = self.deadlines.insert(id, at_ns);
        assert!(previous.is_none(), "timer {id:?} set twice");
        assert!(
            self.timers.len() < TIMERS_MAX,
            "more than {TIMERS_MAX} timers pending at one actor, the last {timer:?} at {at_ns} ns"
        );
        self.timers.insert((at_ns, id), timer);
        self.wake_before(at_ns);
    }

    pub fn cancel_timer(&mut self, id: TimerId) {
        if let Some(at_ns) = self.deadlines.remove(&id) {
            self.timers.remove(&(at_ns, id));
        }
    }

    /// The actor's clock changed rate at `now_ns`: each pending timer's remaining true
    /// time is multiplied by `factor` (old rate / new rate), keeping their order.
    pub fn rescale_timers(&mut self, now_ns: u64, factor: f64) {
        assert!(factor > 0.0, "a clock rate is positive");
        let timers = std::mem::take(&mut self.timers);
        // At most TIMERS_MAX timers.
        for ((at_ns, id), timer) in timers {
            let remaining = at_ns.saturating_sub(now_ns) as f64 * factor;
            let at_ns = now_ns + remaining.ceil() as u64;
            self.deadlines.insert(id, at_ns);
            self.timers.insert((at_ns, id), timer);
        }
        self.wake_ns = 0;
        self.notify.notify_one();
    }

    /// Volatile state is gone: a restarted actor starts with no timers.
    pub fn clear_timers(&mut self) {
        self.timers.clear();
        self.deadlines.clear();
    }

    /// Drops inputs due before `now_ns` (they reached a dead actor); returns how many.
    pub fn drop_inputs_before(&mut self, now_ns: u64) -> Vec<I> {
        let keep = self.inputs.split_off(&(now_ns, 0));
        std::mem::replace(&mut self.inputs, keep)
            .into_values()
            .collect()
    }

    /// Releases held timers: those that fell due meanwhile are due at once.
    pub fn release_timers(&mut self) {
        self.timers_held = false;
        self.wake_ns = 0;
        self.notify.notify_one();
    }

    fn first_timer_ns(&self) -> Option<u64> {
        match self.timers_held {
            true => None,
            false => self.timers.keys().next().map(|k| k.0),
        }
    }

    pub fn next_due_ns(&self) -> Option<u64> {
        let input = self.inputs.keys().next().map(|k| k.0);
        let timer = self.first_timer_ns();
        input.into_iter().chain(timer).min()
    }

    /// The earliest item due at or before `now_ns`; inputs first on a tie.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<Due<I, T>> {
        self.pop_due_entry(now_ns).map(|e| e.2)
    }

    /// As [`Mailbox::pop_due`], with the time the item was due and, for a timer, its id.
    pub fn pop_due_entry(&mut self, now_ns: u64) -> Option<(u64, Option<TimerId>, Due<I, T>)> {
        let input = self
            .inputs
            .first_key_value()
            .map(|(k, _)| k.0)
            .filter(|&t| t <= now_ns);
        let timer = self.first_timer_ns().filter(|&t| t <= now_ns);
        match (input, timer) {
            (Some(i), Some(t)) if t < i => self.pop_timer(),
            (Some(_), _) => self
                .inputs
                .pop_first()
                .map(|((at, _), i)| (at, None, Due::Input(i))),
            (None, Some(_)) => self.pop_timer(),
            (None, None) => None,
        }
    }

    fn pop_timer(&mut self) -> Option<(u64, Option<TimerId>, Due<I, T>)> {
        let ((at, id), timer) = self.timers.pop_first()?;
        self.deadlines.remove(&id);
        Some((at, Some(id), Due::Timer(timer)))
    }

    /// How many timers are pending; with `by_ns`, only those due by then.
    pub fn timers_pending(&self, by_ns: Option<u64>) -> usize {
        match by_ns {
            None => self.timers.len(),
            Some(t) => self.timers.range(..(t + 1, TimerId(0))).count(),
        }
    }
}
