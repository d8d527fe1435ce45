//! The discovery figures of a run, computed from a neutral log the simulation
//! records at true simulated time ([`DiscoveryLog`]).
//!
//! What the log holds: instances going down (stopped, crashed, paused, unhealthy)
//! and coming back; each caller's endpoint set whenever it changes (the whole set);
//! callers going down and coming back; every call (caller, instance, start, end,
//! outcome); an instance's registration removed (deregistered, or expired) and
//! written again.
//!
//! The figures ([`DiscoveryLog::write_figures`], units last in the names):
//!
//! - `stops_count`: down episodes (an instance going down while up).
//! - `removal_p50_ms`, `removal_p99_ms`, `removal_max_ms`: per down episode, the
//!   time from the instance going down to the first moment no *live* caller's
//!   endpoint set holds it. A caller that is down does not hold it up; a caller that
//!   never recorded a set holds nothing. An episode whose instance is still listed
//!   when the run ends counts with the run's end as its removal (and in
//!   `never_removed_count`); one whose instance comes back first is left out of the
//!   latencies (and counted in `back_before_removed_count`). Percentiles are
//!   nearest-rank ([`nearest_rank`]); left out when there is no latency.
//! - `calls_count`, `failed_calls_count`, `failed_calls_per_1000`: calls, those not
//!   `ok`, and failed per 1,000 calls (left out with no calls).
//! - `dead_calls_count`: calls that started while their instance was down or its
//!   registration was gone (deregistered or expired, and not written again).
//! - `dead_call_window_max_ms`: per down episode, the time from the instance going
//!   down to the start of the last call some caller sent it before it came back
//!   (0 with none); the largest over the episodes (0 with none). This is the window
//!   of go-micro#2805 ("clients keep dialling the old IP for ~45–60 s").
//! - `expired_while_alive_count`: registrations that expired while their instance
//!   was alive: up, or merely unhealthy (a stopped, crashed or paused owner cannot
//!   keep it alive).
//!
//! Events at the same time are applied together before anything is judged, so
//! their order within one instant does not matter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{CallerId, InstanceId};

/// The most events and calls a log holds (each); recording more panics.
pub const MAX_LOG_LEN: usize = 1 << 24;

/// How an instance went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DownKind {
    /// Stopped gracefully.
    Stopped,
    /// Crashed.
    Crashed,
    /// Paused (alive, but not running).
    Paused,
    /// Running, but failing its health check.
    Unhealthy,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// Answered successfully.
    Ok,
    /// Answered with an error.
    Error,
    /// The connection was refused (nothing listening).
    Refused,
    /// No answer within the deadline.
    Timeout,
}

/// One call, as the caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// Who called.
    pub caller: CallerId,
    /// The instance it picked.
    pub instance: InstanceId,
    /// When it was sent.
    pub start: Duration,
    /// When it ended (answer, refusal or timeout).
    pub end: Duration,
    /// How it ended.
    pub outcome: CallOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    InstanceDown(InstanceId, DownKind),
    InstanceUp(InstanceId),
    Endpoints(CallerId, BTreeSet<InstanceId>),
    CallerDown(CallerId),
    CallerUp(CallerId),
    Deregistered(InstanceId),
    Registered(InstanceId),
    RegistrationExpired(InstanceId),
}

/// What happened to discovery during a run, recorded in time order.
///
/// Every instance is up and registered, and every caller up with no endpoint set,
/// until the log says otherwise. A caller that restarts should record its endpoint
/// set again (empty if it starts empty): the log keeps a caller's last set across
/// its down time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryLog {
    events: Vec<(Duration, Event)>,
    calls: Vec<Call>,
}

impl DiscoveryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, at: Duration, event: Event) {
        if let Some((last, _)) = self.events.last() {
            assert!(
                at >= *last,
                "discovery events must be recorded in time order: {at:?} after {last:?}"
            );
        }
        assert!(self.events.len() < MAX_LOG_LEN, "discovery log is full");
        self.events.push((at, event));
    }

    /// `instance` went down at `at`. Going down again while down (a paused instance
    /// that crashes) continues the same episode, with the new kind.
    pub fn instance_down(&mut self, at: Duration, instance: InstanceId, kind: DownKind) {
        self.push(at, Event::InstanceDown(instance, kind));
    }

    /// `instance` came back (restarted, resumed, healthy again) at `at`.
    pub fn instance_up(&mut self, at: Duration, instance: InstanceId) {
        self.push(at, Event::InstanceUp(instance));
    }

    /// `caller`'s endpoint set became `endpoints` at `at`.
    pub fn endpoints(&mut self, at: Duration, caller: CallerId, endpoints: &BTreeSet<InstanceId>) {
        self.push(at, Event::Endpoints(caller, endpoints.clone()));
    }

    /// `caller` went down (crashed, stopped, paused) at `at`.
    pub fn caller_down(&mut self, at: Duration, caller: CallerId) {
        self.push(at, Event::CallerDown(caller));
    }

    /// `caller` came back at `at`.
    pub fn caller_up(&mut self, at: Duration, caller: CallerId) {
        self.push(at, Event::CallerUp(caller));
    }

    /// `instance`'s registration was removed from the registry at `at` (a
    /// deregistration or a revoked lease).
    pub fn deregistered(&mut self, at: Duration, instance: InstanceId) {
        self.push(at, Event::Deregistered(instance));
    }

    /// `instance` was registered again at `at`.
    pub fn registered(&mut self, at: Duration, instance: InstanceId) {
        self.push(at, Event::Registered(instance));
    }

    /// `instance`'s lease or registration TTL expired at `at`, removing it from the
    /// registry (whether its owner was alive is the log's to judge).
    pub fn registration_expired(&mut self, at: Duration, instance: InstanceId) {
        self.push(at, Event::RegistrationExpired(instance));
    }

    /// A call, recorded when it ends (calls may be recorded in any order).
    ///
    /// Panics if `end < start`.
    pub fn call(
        &mut self,
        caller: CallerId,
        instance: InstanceId,
        start: Duration,
        end: Duration,
        outcome: CallOutcome,
    ) {
        assert!(
            end >= start,
            "a call ends before it starts: {start:?}..{end:?}"
        );
        assert!(self.calls.len() < MAX_LOG_LEN, "discovery log is full");
        self.calls.push(Call {
            caller,
            instance,
            start,
            end,
            outcome,
        });
    }

    /// The calls recorded.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Writes the figures (see the module docs) of a run that ended at `end` into
    /// `out`.
    ///
    /// Panics if `end` is before the last event.
    pub fn write_figures(&self, end: Duration, out: &mut BTreeMap<String, f64>) {
        if let Some((last, _)) = self.events.last() {
            assert!(end >= *last, "the run ends ({end:?}) before its last event");
        }
        let timeline = self.replay(end);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut put = |name: &str, value: f64| {
            out.insert(name.to_owned(), value);
        };

        put("stops_count", timeline.episodes.len() as f64);
        let mut latencies: Vec<Duration> = Vec::new();
        let (mut never, mut back) = (0, 0);
        for e in &timeline.episodes {
            match e.removed {
                Some(at) => latencies.push(at - e.down),
                None if e.up.is_some() => back += 1,
                None => {
                    never += 1;
                    latencies.push(end - e.down);
                }
            }
        }
        latencies.sort();
        for (name, percent) in [("removal_p50_ms", 50), ("removal_p99_ms", 99)] {
            if let Some(x) = nearest_rank(&latencies, percent) {
                put(name, ms(x));
            }
        }
        if let Some(&x) = latencies.last() {
            put("removal_max_ms", ms(x));
        }
        put("never_removed_count", never as f64);
        put("back_before_removed_count", back as f64);

        let failed = self
            .calls
            .iter()
            .filter(|c| c.outcome != CallOutcome::Ok)
            .count();
        put("calls_count", self.calls.len() as f64);
        put("failed_calls_count", failed as f64);
        if !self.calls.is_empty() {
            put(
                "failed_calls_per_1000",
                failed as f64 * 1000.0 / self.calls.len() as f64,
            );
        }

        let within = |spans: &[(Duration, Option<Duration>)], t: Duration| {
            spans
                .iter()
                .any(|&(from, to)| from <= t && to.is_none_or(|to| t < to))
        };
        let mut dead = 0;
        let mut window = Duration::ZERO;
        for c in &self.calls {
            let down = timeline.down_spans.get(&c.instance);
            let gone = timeline.unregistered_spans.get(&c.instance);
            if down.is_some_and(|s| within(s, c.start)) || gone.is_some_and(|s| within(s, c.start))
            {
                dead += 1;
            }
            for e in timeline
                .episodes
                .iter()
                .filter(|e| e.instance == c.instance)
            {
                if e.down <= c.start && e.up.is_none_or(|up| c.start < up) {
                    window = window.max(c.start - e.down);
                }
            }
        }
        put("dead_calls_count", dead as f64);
        put("dead_call_window_max_ms", ms(window));
        put(
            "expired_while_alive_count",
            timeline.expired_while_alive as f64,
        );
    }

    /// Replays the events: the down episodes and when each was removed everywhere,
    /// the spans each instance was down or unregistered, and the expiries under a
    /// live owner.
    fn replay(&self, end: Duration) -> Timeline {
        let mut t = Timeline::default();
        let mut sets: BTreeMap<CallerId, BTreeSet<InstanceId>> = BTreeMap::new();
        let mut callers_down: BTreeSet<CallerId> = BTreeSet::new();
        // Down instances: their kind and their episode's index.
        let mut down: BTreeMap<InstanceId, (DownKind, usize)> = BTreeMap::new();
        let mut unregistered: BTreeSet<InstanceId> = BTreeSet::new();
        let mut pending: BTreeSet<usize> = BTreeSet::new();

        let mut i = 0;
        while i < self.events.len() {
            let now = self.events[i].0;
            while i < self.events.len() && self.events[i].0 == now {
                match &self.events[i].1 {
                    Event::InstanceDown(id, kind) => {
                        if let Some((k, _)) = down.get_mut(id) {
                            *k = *kind; // the same episode, now for this reason
                        } else {
                            down.insert(*id, (*kind, t.episodes.len()));
                            pending.insert(t.episodes.len());
                            t.episodes.push(Episode {
                                instance: *id,
                                down: now,
                                up: None,
                                removed: None,
                            });
                            t.down_spans.entry(*id).or_default().push((now, None));
                        }
                    }
                    Event::InstanceUp(id) => {
                        if let Some((_, episode)) = down.remove(id) {
                            t.episodes[episode].up = Some(now);
                            close(t.down_spans.get_mut(id), now);
                        }
                    }
                    Event::Endpoints(caller, set) => {
                        sets.insert(*caller, set.clone());
                    }
                    Event::CallerDown(caller) => {
                        callers_down.insert(*caller);
                    }
                    Event::CallerUp(caller) => {
                        callers_down.remove(caller);
                    }
                    Event::Deregistered(id) | Event::RegistrationExpired(id) => {
                        if let Event::RegistrationExpired(_) = &self.events[i].1 {
                            let alive = down
                                .get(id)
                                .is_none_or(|(kind, _)| *kind == DownKind::Unhealthy);
                            if alive {
                                t.expired_while_alive += 1;
                            }
                        }
                        if unregistered.insert(*id) {
                            t.unregistered_spans
                                .entry(*id)
                                .or_default()
                                .push((now, None));
                        }
                    }
                    Event::Registered(id) => {
                        if unregistered.remove(id) {
                            close(t.unregistered_spans.get_mut(id), now);
                        }
                    }
                }
                i += 1;
            }
            // Judge the pending episodes on the state after this instant.
            pending.retain(|&k| {
                let e = &mut t.episodes[k];
                let held = sets
                    .iter()
                    .any(|(c, set)| !callers_down.contains(c) && set.contains(&e.instance));
                if !held {
                    e.removed = Some(now);
                    false
                } else {
                    e.up.is_none() // back before removed: no longer pending
                }
            });
        }
        debug_assert!(t
            .episodes
            .iter()
            .all(|e| e.removed.is_none_or(|r| r <= end)));
        t
    }
}

fn close(spans: Option<&mut Vec<(Duration, Option<Duration>)>>, at: Duration) {
    let last = spans.and_then(|s| s.last_mut()).expect("an open span");
    assert!(last.1.is_none(), "closing a closed span");
    last.1 = Some(at);
}

/// One instance's time down, from going down to coming back.
#[derive(Clone, Copy, Debug)]
struct Episode {
    instance: InstanceId,
    down: Duration,
    up: Option<Duration>,
    /// When no live caller held it any more.
    removed: Option<Duration>,
}

#[derive(Default)]
struct Timeline {
    episodes: Vec<Episode>,
    /// Per instance, `[from, to)` while down (`None`: until the end).
    down_spans: BTreeMap<InstanceId, Vec<(Duration, Option<Duration>)>>,
    /// Per instance, `[from, to)` while not in the registry.
    unregistered_spans: BTreeMap<InstanceId, Vec<(Duration, Option<Duration>)>>,
    expired_while_alive: usize,
}

/// The nearest-rank `percent`-th percentile of `sorted` (ascending): the smallest
/// value with at least `percent`% of the values at or below it, that is the
/// element of 1-based rank ⌈percent × n / 100⌉ (rank 1 at least). `None` if empty.
///
/// Panics unless `1 <= percent <= 100`.
pub fn nearest_rank<T: Copy + Ord>(sorted: &[T], percent: u32) -> Option<T> {
    assert!(
        (1..=100).contains(&percent),
        "percentile {percent} not in 1..=100"
    );
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (percent as usize * n).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn set(ids: &[InstanceId]) -> BTreeSet<InstanceId> {
        ids.iter().copied().collect()
    }

    fn figures(log: &DiscoveryLog, end_ms: u64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        log.write_figures(ms(end_ms), &mut out);
        out
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank::<u32>(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 1), Some(7));
        assert_eq!(nearest_rank(&[7], 100), Some(7));
        let xs: Vec<u32> = (1..=10).collect();
        assert_eq!(nearest_rank(&xs, 50), Some(5)); // ⌈5⌉
        assert_eq!(nearest_rank(&xs, 51), Some(6)); // ⌈5.1⌉
        assert_eq!(nearest_rank(&xs, 99), Some(10));
        assert_eq!(nearest_rank(&xs, 10), Some(1));
        assert_eq!(nearest_rank(&xs, 11), Some(2));
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 99), Some(99));
        assert_eq!(nearest_rank(&hundred, 50), Some(50));
        // Four values: p50 is the 2nd, p99 the 4th.
        assert_eq!(nearest_rank(&[10, 20, 30, 40], 50), Some(20));
        assert_eq!(nearest_rank(&[10, 20, 30, 40], 99), Some(40));
    }

    #[test]
    #[should_panic(expected = "not in 1..=100")]
    fn nearest_rank_refuses_zero() {
        nearest_rank(&[1], 0);
    }

    #[test]
    fn removal_waits_for_every_live_caller() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1, 2]));
        log.endpoints(ms(0), 11, &set(&[1, 2]));
        log.instance_down(ms(100), 1, DownKind::Stopped);
        log.endpoints(ms(300), 10, &set(&[2]));
        log.endpoints(ms(700), 11, &set(&[2]));
        let f = figures(&log, 1000);
        assert_eq!(f["stops_count"], 1.0);
        assert_eq!(f["removal_p50_ms"], 600.0);
        assert_eq!(f["removal_p99_ms"], 600.0);
        assert_eq!(f["removal_max_ms"], 600.0);
        assert_eq!(f["never_removed_count"], 0.0);
    }

    #[test]
    fn removal_percentiles_over_episodes() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1, 2, 3, 4]));
        for (id, down) in [(1, 0), (2, 0), (3, 0), (4, 0)] {
            log.instance_down(ms(down), id, DownKind::Crashed);
        }
        log.endpoints(ms(100), 10, &set(&[2, 3, 4]));
        log.endpoints(ms(200), 10, &set(&[3, 4]));
        log.endpoints(ms(300), 10, &set(&[4]));
        log.endpoints(ms(400), 10, &set(&[]));
        let f = figures(&log, 1000);
        assert_eq!(f["removal_p50_ms"], 200.0);
        assert_eq!(f["removal_p99_ms"], 400.0);
        assert_eq!(f["removal_max_ms"], 400.0);
    }

    #[test]
    fn a_down_caller_does_not_hold_removal_up() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1]));
        log.endpoints(ms(0), 11, &set(&[1]));
        log.caller_down(ms(50), 11); // crashed holding the old set
        log.instance_down(ms(100), 1, DownKind::Stopped);
        log.endpoints(ms(250), 10, &set(&[]));
        let f = figures(&log, 1000);
        assert_eq!(f["removal_max_ms"], 150.0);

        // The caller going down while removal is pending completes it then.
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1]));
        log.endpoints(ms(0), 11, &set(&[1]));
        log.instance_down(ms(100), 1, DownKind::Stopped);
        log.endpoints(ms(200), 10, &set(&[]));
        log.caller_down(ms(400), 11);
        log.caller_up(ms(900), 11);
        let f = figures(&log, 1000);
        assert_eq!(f["removal_max_ms"], 300.0);
        assert_eq!(f["never_removed_count"], 0.0);
    }

    #[test]
    fn never_removed_counts_to_the_end() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1, 2]));
        log.instance_down(ms(100), 1, DownKind::Crashed);
        log.instance_down(ms(200), 2, DownKind::Crashed);
        log.endpoints(ms(300), 10, &set(&[1]));
        let f = figures(&log, 5000);
        assert_eq!(f["never_removed_count"], 1.0);
        assert_eq!(f["removal_p50_ms"], 100.0);
        assert_eq!(f["removal_max_ms"], 4900.0);
    }

    #[test]
    fn back_before_removal_is_left_out() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1]));
        log.instance_down(ms(100), 1, DownKind::Paused);
        log.instance_up(ms(400), 1);
        let f = figures(&log, 1000);
        assert_eq!(f["stops_count"], 1.0);
        assert_eq!(f["back_before_removed_count"], 1.0);
        assert_eq!(f["never_removed_count"], 0.0);
        assert!(!f.contains_key("removal_max_ms"));
    }

    #[test]
    fn already_unlisted_is_removed_at_once_and_order_within_an_instant_does_not_matter() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1]));
        // Down and removed in the same instant, the removal recorded first.
        log.endpoints(ms(100), 10, &set(&[]));
        log.instance_down(ms(100), 1, DownKind::Stopped);
        // An instance no caller ever listed.
        log.instance_down(ms(200), 2, DownKind::Stopped);
        let f = figures(&log, 1000);
        assert_eq!(f["stops_count"], 2.0);
        assert_eq!(f["removal_max_ms"], 0.0);
    }

    #[test]
    fn repeated_downs_are_one_episode() {
        let mut log = DiscoveryLog::new();
        log.endpoints(ms(0), 10, &set(&[1]));
        log.instance_down(ms(100), 1, DownKind::Paused);
        log.instance_down(ms(200), 1, DownKind::Crashed);
        log.instance_down(ms(300), 2, DownKind::Unhealthy);
        log.instance_down(ms(400), 2, DownKind::Crashed);
        log.registration_expired(ms(500), 2); // crashed by then: not alive
        log.endpoints(ms(600), 10, &set(&[]));
        let f = figures(&log, 1000);
        assert_eq!(f["stops_count"], 2.0);
        assert_eq!(f["removal_max_ms"], 500.0);
        assert_eq!(f["expired_while_alive_count"], 0.0);
    }

    #[test]
    fn failed_calls_per_thousand() {
        let mut log = DiscoveryLog::new();
        let outcomes = [
            CallOutcome::Ok,
            CallOutcome::Ok,
            CallOutcome::Error,
            CallOutcome::Refused,
            CallOutcome::Timeout,
            CallOutcome::Ok,
            CallOutcome::Ok,
            CallOutcome::Ok,
        ];
        for (k, outcome) in outcomes.into_iter().enumerate() {
            log.call(10, 1, ms(k as u64), ms(k as u64 + 1), outcome);
        }
        let f = figures(&log, 100);
        assert_eq!(f["calls_count"], 8.0);
        assert_eq!(f["failed_calls_count"], 3.0);
        assert_eq!(f["failed_calls_per_1000"], 375.0);
    }

    #[test]
    fn no_calls_no_rate() {
        let log = DiscoveryLog::new();
        let f = figures(&log, 100);
        assert_eq!(f["calls_count"], 0.0);
        assert_eq!(f["dead_calls_count"], 0.0);
        assert_eq!(f["dead_call_window_max_ms"], 0.0);
        assert_eq!(f["stops_count"], 0.0);
        assert!(!f.contains_key("failed_calls_per_1000"));
        assert!(!f.contains_key("removal_p50_ms"));
    }

    #[test]
    fn calls_to_dead_or_deregistered_instances() {
        let mut log = DiscoveryLog::new();
        log.instance_down(ms(100), 1, DownKind::Stopped);
        log.instance_up(ms(1000), 1);
        log.deregistered(ms(2000), 2);
        log.registered(ms(3000), 2);
        log.call(10, 1, ms(99), ms(150), CallOutcome::Ok); // sent while up
        log.call(10, 1, ms(100), ms(110), CallOutcome::Refused); // dead
        log.call(11, 1, ms(700), ms(710), CallOutcome::Refused); // dead, last one
        log.call(10, 1, ms(1000), ms(1010), CallOutcome::Ok); // back
        log.call(10, 2, ms(2500), ms(2510), CallOutcome::Ok); // deregistered
        log.call(10, 2, ms(3000), ms(3010), CallOutcome::Ok); // registered again
        let f = figures(&log, 4000);
        assert_eq!(f["dead_calls_count"], 3.0);
        assert_eq!(f["dead_call_window_max_ms"], 600.0);
    }

    #[test]
    fn dead_window_is_per_episode() {
        let mut log = DiscoveryLog::new();
        log.instance_down(ms(0), 1, DownKind::Crashed);
        log.instance_up(ms(100), 1);
        log.instance_down(ms(1000), 1, DownKind::Crashed);
        log.call(10, 1, ms(90), ms(95), CallOutcome::Refused);
        log.call(10, 1, ms(1030), ms(1035), CallOutcome::Refused);
        // Sent while up, between the episodes: not dead.
        log.call(10, 1, ms(500), ms(505), CallOutcome::Ok);
        let f = figures(&log, 2000);
        assert_eq!(f["dead_calls_count"], 2.0);
        assert_eq!(f["dead_call_window_max_ms"], 90.0);
    }

    #[test]
    fn expirations_under_a_live_owner() {
        let mut log = DiscoveryLog::new();
        log.registration_expired(ms(100), 1); // up: counts
        log.instance_down(ms(200), 2, DownKind::Crashed);
        log.instance_down(ms(200), 3, DownKind::Unhealthy);
        log.registration_expired(ms(300), 2); // crashed: does not
        log.instance_down(ms(400), 4, DownKind::Paused);
        log.registration_expired(ms(400), 3); // unhealthy but alive: counts
        log.registration_expired(ms(500), 4); // paused: does not
        log.call(10, 1, ms(150), ms(160), CallOutcome::Ok); // expired, not back: dead
        let f = figures(&log, 1000);
        assert_eq!(f["expired_while_alive_count"], 2.0);
        assert_eq!(f["dead_calls_count"], 1.0);
    }

    #[test]
    #[should_panic(expected = "time order")]
    fn events_out_of_order_panic() {
        let mut log = DiscoveryLog::new();
        log.instance_up(ms(10), 1);
        log.instance_up(ms(5), 1);
    }
}
