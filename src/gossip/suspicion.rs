//! Lifeguard's LHA-Suspicion timeout (memberlist `suspicion.go`).

use std::time::Duration;

/// `max(min, max − (max − min) · log(C + 1) / log(K + 1))`, truncated to whole
/// milliseconds as memberlist does. With K = 0 the timeout starts at Min.
pub fn suspicion_timeout(confirmations: u64, k: u64, min: Duration, max: Duration) -> Duration {
    assert!(min <= max, "suspicion min {min:?} above max {max:?}");
    if k == 0 {
        return min;
    }
    // `libm` (pure Rust), not `f64::ln`, so that every platform computes the same timeout.
    let frac = libm::log((confirmations as f64) + 1.0) / libm::log((k as f64) + 1.0);
    let raw_s = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let timeout = Duration::from_millis((1000.0 * raw_s).floor().max(0.0) as u64);
    timeout.max(min)
}
