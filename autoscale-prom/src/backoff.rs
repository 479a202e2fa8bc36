//! Jittered exponential backoff, as a pure schedule: the caller draws the randomness and does the sleeping.

use std::time::Duration;

/// Delays between attempts: `initial`, doubling up to `max`, each with "equal jitter" (a uniformly random
/// point in the upper half of the nominal delay), so that many clients restarted together do not probe in
/// lock step yet none retries almost immediately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// The schedule of the readiness wait: 250 ms, doubling to 5 s.
    pub const READY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    /// The schedule of query retries: 100 ms, doubling to 1 s (the whole query must fit its timeout).
    pub const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));

    /// A schedule starting at `initial` and capped at `max` (at least `initial`).
    pub const fn new(initial: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < initial.as_nanos() {
            initial
        } else {
            max
        };
        Backoff { initial, max }
    }

    /// The nominal delay after attempt `attempt` (1-based), before jitter.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The delay after attempt `attempt`, given `unit` drawn uniformly from `[0, 1)`: in
    /// `[nominal / 2, nominal]`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (nominal / 2 + nominal.div_f64(2.0).mul_f64(unit)).min(nominal)
    }

    /// [`delay`](Self::delay) with fresh randomness.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let nominal: Vec<u128> = (1..=6).map(|a| b.nominal(a).as_millis()).collect();
        assert_eq!(nominal, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn a_delay_is_always_within_half_and_all_of_its_nominal(
            attempt in 0u32..100,
            unit in proptest::num::f64::ANY,
            initial_ms in 0u64..10_000,
            max_ms in 0u64..100_000,
        ) {
            let b = Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(max_ms));
            let nominal = b.nominal(attempt);
            let d = b.delay(attempt, unit);
            prop_assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            prop_assert!(nominal <= Duration::from_millis(initial_ms.max(max_ms)));
        }
    }
}
