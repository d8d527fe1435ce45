//! A node's local clock: an offset from and a drift against the simulation's true
//! time. Changes are piecewise: the local clock never jumps except by an explicit
//! offset change.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clock {
    /// True time at which the current rate took effect.
    base_true_ns: u64,
    /// Local time at `base_true_ns`, possibly negative before clamping.
    base_local_ns: i128,
    /// Rate error in parts per million: +100 runs 0.01% fast.
    drift_ppm: f64,
}

impl Clock {
    fn local_ns(&self, true_ns: u64) -> i128 {
        assert!(
            true_ns >= self.base_true_ns,
            "clock read before its last change"
        );
        let elapsed = (true_ns - self.base_true_ns) as f64;
        self.base_local_ns + (elapsed * (1.0 + self.drift_ppm / 1e6)) as i128
    }

    /// The local clock at true time `true_ns`; it does not go below zero.
    pub fn local(&self, true_ns: u64) -> Duration {
        Duration::from_nanos(self.local_ns(true_ns).max(0) as u64)
    }

    /// How much true time passes while this clock advances by `local`.
    pub fn true_after(&self, local: Duration) -> u64 {
        (local.as_nanos() as f64 / (1.0 + self.drift_ppm / 1e6)).ceil() as u64
    }

    /// From `true_ns` on, the clock is `offset_ms` away from true time (a jump) and
    /// drifts at `drift_ppm`. Returns old rate / new rate, by which the true time left
    /// on pending timers scales: a timer measures elapsed local time, so a faster clock
    /// fires it sooner, while a jump leaves it alone (like a monotonic timer).
    pub fn set(&mut self, true_ns: u64, offset_ms: i64, drift_ppm: f64) -> f64 {
        assert!(drift_ppm > -1e6, "a clock cannot run backwards");
        let factor = (1.0 + self.drift_ppm / 1e6) / (1.0 + drift_ppm / 1e6);
        self.base_true_ns = true_ns;
        self.base_local_ns = i128::from(true_ns) + i128::from(offset_ms) * 1_000_000;
        self.drift_ppm = drift_ppm;
        factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_and_offset_change_the_local_rate_and_position() {
        let mut c = Clock::default();
        assert_eq!(c.local(5_000), Duration::from_nanos(5_000));
        let factor = c.set(1_000_000_000, 250, 100_000.0); // +250 ms, 10% fast
        assert!((factor - 1.0 / 1.1).abs() < 1e-12);
        assert_eq!(c.local(1_000_000_000), Duration::from_millis(1_250));
        assert_eq!(c.local(2_000_000_000), Duration::from_millis(2_350));
        assert_eq!(c.true_after(Duration::from_millis(110)), 100_000_000);
    }
}
