//! A node's two clocks, as machines have them.
//!
//! - The **monotonic** clock (CLOCK_MONOTONIC) counts from the node's boot at a rate
//!   that may drift from true time (an oscillator's error, up to ±50%). It never jumps
//!   back. A drift change moves only its rate. While the clock source is **frozen** (a
//!   VM paused by its hypervisor, a stalled clock source) it reads the value it had
//!   when the freeze began; at the thaw it catches up to where it would have been, as
//!   a guest's clock does after a pause, so timers due in between fire late, at once.
//! - The **wall** clock (time of day) is the monotonic clock plus an offset that
//!   NTP-like steps move forward or back. It is clamped at zero: a step back past the
//!   epoch reads zero rather than a negative time.
//!
//! Timers run on the monotonic clock: they measure elapsed local time, so a faster
//! clock fires them sooner and a wall-clock step does not move them.

use std::time::Duration;

use crate::scenario::DRIFT_PPM_MAX;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clock {
    /// True time at which the current rate took effect.
    base_true_ns: u64,
    /// Monotonic reading at `base_true_ns`.
    base_mono_ns: u64,
    /// Rate error in parts per million: +100 runs 0.01% fast.
    drift_ppm: f64,
    /// Wall clock minus monotonic clock, in ns.
    wall_offset_ns: i64,
    /// True time at which the clock source froze, while frozen.
    frozen_at_ns: Option<u64>,
}

impl Clock {
    fn rate(&self) -> f64 {
        1.0 + self.drift_ppm / 1e6
    }

    /// The monotonic reading at true time `true_ns` had the clock never frozen.
    fn running_ns(&self, true_ns: u64) -> u64 {
        assert!(
            true_ns >= self.base_true_ns,
            "clock read before its last change"
        );
        let elapsed = (true_ns - self.base_true_ns) as f64;
        self.base_mono_ns + (elapsed * self.rate()) as u64
    }

    /// The monotonic clock at true time `true_ns`.
    pub fn monotonic(&self, true_ns: u64) -> Duration {
        let at = self.frozen_at_ns.map_or(true_ns, |f| f.min(true_ns));
        Duration::from_nanos(self.running_ns(at.max(self.base_true_ns)))
    }

    /// The wall clock at true time `true_ns`, never below zero.
    pub fn wall(&self, true_ns: u64) -> Duration {
        let mono = self.monotonic(true_ns).as_nanos() as i128;
        Duration::from_nanos((mono + i128::from(self.wall_offset_ns)).max(0) as u64)
    }

    /// Whether the clock source is frozen (timers cannot fire).
    pub fn frozen(&self) -> bool {
        self.frozen_at_ns.is_some()
    }

    /// How much true time passes while the monotonic clock advances by `local`.
    pub fn true_after(&self, local: Duration) -> u64 {
        (local.as_nanos() as f64 / self.rate()).ceil() as u64
    }

    /// The true time at which a timer set at true time `now_ns` for `after` on the
    /// monotonic clock is due. Set while frozen, it counts from the frozen reading, so
    /// it is overdue at the thaw if the freeze outlasted it.
    pub fn timer_due_ns(&self, now_ns: u64, after: Duration) -> u64 {
        self.frozen_at_ns.unwrap_or(now_ns) + self.true_after(after)
    }

    /// From `true_ns` on, the monotonic clock runs at `drift_ppm` without moving.
    /// Returns old rate / new rate, by which the true time left on pending timers
    /// scales.
    pub fn set_drift(&mut self, true_ns: u64, drift_ppm: f64) -> f64 {
        assert!(
            drift_ppm.abs() <= DRIFT_PPM_MAX,
            "drift {drift_ppm} ppm beyond ±{DRIFT_PPM_MAX}"
        );
        let old_rate = self.rate();
        self.base_mono_ns = self.running_ns(true_ns);
        self.base_true_ns = true_ns;
        self.drift_ppm = drift_ppm;
        old_rate / self.rate()
    }

    /// Steps the wall clock by `offset_ns` (an NTP step); the monotonic clock is
    /// untouched.
    pub fn step_wall(&mut self, offset_ns: i64) {
        self.wall_offset_ns = self.wall_offset_ns.saturating_add(offset_ns);
    }

    /// The clock source stops at `true_ns` (`true`) or thaws and catches up (`false`).
    pub fn set_frozen(&mut self, true_ns: u64, frozen: bool) {
        assert_eq!(self.frozen(), !frozen, "freezes do not nest");
        self.frozen_at_ns = frozen.then_some(true_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn drift_changes_only_the_rate_and_steps_move_only_the_wall_clock() {
        let mut c = Clock::default();
        assert_eq!(c.monotonic(5_000), Duration::from_nanos(5_000));
        let factor = c.set_drift(S, 100_000.0); // 10% fast from 1 s
        assert!((factor - 1.0 / 1.1).abs() < 1e-12);
        assert_eq!(
            c.monotonic(S),
            Duration::from_secs(1),
            "no jump at a drift change"
        );
        assert_eq!(c.monotonic(2 * S), Duration::from_millis(2_100));
        // A second drift-only fault continues from where the clock is.
        c.set_drift(2 * S, -100_000.0);
        assert_eq!(c.monotonic(2 * S), Duration::from_millis(2_100));
        assert_eq!(c.monotonic(3 * S), Duration::from_millis(3_000));
        c.step_wall(-2_500_000_000);
        assert_eq!(c.monotonic(3 * S), Duration::from_millis(3_000));
        assert_eq!(c.wall(3 * S), Duration::from_millis(500));
        c.step_wall(-1_000_000_000);
        assert_eq!(c.wall(3 * S), Duration::ZERO, "clamped at zero");
        assert_eq!(c.true_after(Duration::from_millis(90)), 100_000_000);
    }

    #[test]
    fn a_frozen_clock_stands_still_then_catches_up() {
        let mut c = Clock::default();
        c.set_frozen(S, true);
        assert_eq!(c.monotonic(3 * S), Duration::from_secs(1));
        assert_eq!(c.wall(3 * S), Duration::from_secs(1));
        c.set_frozen(4 * S, false);
        assert_eq!(c.monotonic(4 * S), Duration::from_secs(4));
    }
}
