//! What a check remembers of its past: a bounded, bucketed series of its demand and running statistics.
//!
//! It lives in [`EngineState`](crate::EngineState), one per check, so it is serialized with the rest of the
//! state and a restart keeps it. A policy reads and extends it through its
//! [`PolicyContext`](crate::policy::PolicyContext); memoryless policies leave it empty.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::types::duration_millis;

/// The finest resolution a history keeps: one bucket per minute. A season of 10 s ticks would otherwise be
/// 8,640 entries a day for little gain in a forecast.
pub const MIN_RESOLUTION: Duration = Duration::from_secs(60);

/// The most buckets a history keeps, whatever a policy asks: two weeks at one minute. It bounds the memory and
/// the size of the state file (about 50 bytes a bucket in JSON).
pub const MAX_BUCKETS: usize = 14 * 24 * 60;

/// The demand seen over one bucket, `[start, start + resolution)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's start, a multiple of the resolution.
    pub start: Timestamp,
    /// The mean of the samples.
    pub mean: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples it holds.
    pub count: u32,
}

/// An exponentially weighted mean and variance, decayed by elapsed time rather than by sample count, so a
/// gap in the samples or a changed interval weighs the way time says.
///
/// It keeps the total weight of what it has seen: while the samples span less than a window, each weighs
/// the same (the statistic is then the plain mean and variance so far, not one biased towards the first
/// sample), and from a few windows on it is the usual exponential average. A policy that starts cold thus
/// learns the level and the spread of its first minutes at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// The weighted mean.
    pub mean: f64,
    /// The weighted variance.
    pub variance: f64,
    /// When the last sample was taken.
    pub at: Timestamp,
    /// The total weight of the samples, in (0, 1]: 1 once they span many windows.
    #[serde(default = "full_weight")]
    pub weight: f64,
}

fn full_weight() -> f64 {
    1.0
}

impl Ewma {
    /// A statistic that starts at `x`, with no spread.
    pub fn start(at: Timestamp, x: f64) -> Self {
        Ewma {
            mean: x,
            variance: 0.0,
            at,
            weight: 0.0,
        }
    }

    /// Add sample `x` taken at `at`, with time constant `window`: a sample `window` old weighs `1/e` of a new
    /// one. A sample not later than the last one changes nothing; a non-finite one is ignored.
    pub fn update(&mut self, at: Timestamp, x: f64, window: Duration) {
        if !x.is_finite() {
            return;
        }
        let elapsed = at.as_millis().saturating_sub(self.at.as_millis());
        if elapsed <= 0 {
            return;
        }
        let tau = duration_millis(window).max(1) as f64;
        let alpha = 1.0 - (-(elapsed as f64) / tau).exp();
        if self.weight.is_nan() || self.weight <= 0.0 {
            // The first sample weighs as much as one interval's.
            self.weight = alpha;
        }
        self.weight = (self.weight * (1.0 - alpha) + alpha).min(1.0);
        let k = alpha / self.weight;
        let delta = x - self.mean;
        self.mean += k * delta;
        self.variance = (1.0 - k) * (self.variance + k * delta * delta);
        self.at = at;
    }

    /// The weighted standard deviation.
    pub fn deviation(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }
}

/// One check's memory: its demand per bucket, oldest first, and running statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckHistory {
    /// The check's name, so a reloaded configuration that renames or reorders checks starts them afresh.
    pub check: String,
    /// The demand per bucket, oldest first.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    pub buckets: VecDeque<Bucket>,
    /// Running statistics of the demand over the policy's short-term window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_term: Option<Ewma>,
    /// The same statistics of the demand one season earlier, to compare today with the last season.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_season: Option<Ewma>,
}

impl CheckHistory {
    /// An empty history for check `check`.
    pub fn new(check: impl Into<String>) -> Self {
        CheckHistory {
            check: check.into(),
            ..CheckHistory::default()
        }
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.short_term.is_none() && self.last_season.is_none()
    }

    /// Record demand `x` at `at` into buckets of `resolution` (at least [`MIN_RESOLUTION`]), keeping `keep` of
    /// the past and at most [`MAX_BUCKETS`] buckets.
    ///
    /// A sample before the newest bucket means the clock went back: the buckets after it are dropped, so the
    /// history follows the clock instead of waiting for it. Non-finite samples are ignored.
    pub fn record(&mut self, at: Timestamp, x: f64, resolution: Duration, keep: Duration) {
        if !x.is_finite() {
            return;
        }
        let start = bucket_start(at, resolution);
        while self.buckets.back().is_some_and(|b| b.start > start) {
            self.buckets.pop_back();
        }
        match self.buckets.back_mut() {
            Some(b) if b.start == start => {
                b.count = b.count.saturating_add(1);
                b.mean += (x - b.mean) / f64::from(b.count);
                b.max = b.max.max(x);
            }
            _ => self.buckets.push_back(Bucket {
                start,
                mean: x,
                max: x,
                count: 1,
            }),
        }
        let cutoff = at - keep;
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start < cutoff || self.buckets.len() > MAX_BUCKETS)
        {
            self.buckets.pop_front();
        }
    }

    /// The bucket that holds time `at`, if it was recorded.
    pub fn bucket_at(&self, at: Timestamp, resolution: Duration) -> Option<&Bucket> {
        let start = bucket_start(at, resolution);
        let i = self.buckets.partition_point(|b| b.start < start);
        self.buckets.get(i).filter(|b| b.start == start)
    }

    /// The recorded buckets that overlap `[from, to]`, oldest first.
    pub fn between(
        &self,
        from: Timestamp,
        to: Timestamp,
        resolution: Duration,
    ) -> impl Iterator<Item = &Bucket> {
        let first = bucket_start(from, resolution);
        let i = self.buckets.partition_point(|b| b.start < first);
        self.buckets.range(i..).take_while(move |b| b.start <= to)
    }
}

/// The start of the bucket of `resolution` (at least [`MIN_RESOLUTION`]) that holds `at`.
pub fn bucket_start(at: Timestamp, resolution: Duration) -> Timestamp {
    let step = duration_millis(resolution.max(MIN_RESOLUTION));
    Timestamp::from_millis(at.as_millis().div_euclid(step).saturating_mul(step))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_ewma_decays_with_time_not_samples() {
        let window = Duration::from_secs(600);
        // Young: the first two samples, one interval apart, weigh about the same (the first has decayed for
        // one interval), where a plain exponential average would give the second a sixtieth.
        let mut e = Ewma::start(Timestamp::from_secs(0), 10.0);
        e.update(Timestamp::from_secs(10), 20.0, window);
        assert!((e.mean - 15.0).abs() < 0.1, "{e:?}");
        assert!((e.variance - 25.0).abs() < 0.1, "{e:?}");
        // Old: once the weight is full, a sample a window later moves the mean by 1 - 1/e of the gap.
        let mut e = Ewma {
            mean: 10.0,
            variance: 0.0,
            at: Timestamp::from_secs(0),
            weight: 1.0,
        };
        e.update(Timestamp::from_secs(600), 20.0, window);
        let alpha = 1.0 - (-1.0f64).exp();
        assert!((e.mean - (10.0 + alpha * 10.0)).abs() < 1e-12);
        assert!((e.variance - (1.0 - alpha) * alpha * 100.0).abs() < 1e-9);
        assert!((e.deviation() - e.variance.sqrt()).abs() < 1e-12);
        // The same time, or earlier, changes nothing; neither does a non-finite sample.
        let before = e;
        e.update(Timestamp::from_secs(600), 1e6, window);
        e.update(Timestamp::from_secs(1), 1e6, window);
        e.update(Timestamp::from_secs(700), f64::NAN, window);
        assert_eq!(e, before);
    }

    #[test]
    fn buckets_hold_the_mean_and_max_of_a_minute() {
        let mut h = CheckHistory::new("c");
        for (s, x) in [(0, 1.0), (10, 3.0), (59, 2.0), (60, 7.0)] {
            h.record(Timestamp::from_secs(s), x, MIN, Duration::from_secs(3600));
        }
        assert_eq!(h.buckets.len(), 2);
        let b = h.bucket_at(Timestamp::from_secs(30), MIN).unwrap();
        assert_eq!((b.mean, b.max, b.count), (2.0, 3.0, 3));
        assert_eq!(
            h.bucket_at(Timestamp::from_secs(119), MIN).unwrap().mean,
            7.0
        );
        assert!(h.bucket_at(Timestamp::from_secs(120), MIN).is_none());
        let starts: Vec<i64> = h
            .between(Timestamp::from_secs(59), Timestamp::from_secs(60), MIN)
            .map(|b| b.start.as_millis() / 1000)
            .collect();
        assert_eq!(starts, [0, 60]);
    }

    #[test]
    fn history_is_pruned_to_what_is_kept_and_follows_a_clock_that_went_back() {
        let mut h = CheckHistory::new("c");
        let keep = Duration::from_secs(600);
        for m in 0..100 {
            h.record(Timestamp::from_secs(m * 60), 1.0, MIN, keep);
        }
        assert_eq!(h.buckets.len(), 11);
        h.record(Timestamp::from_secs(95 * 60), 5.0, MIN, keep);
        assert_eq!(
            h.buckets.back().unwrap().start,
            Timestamp::from_secs(95 * 60)
        );
        assert_eq!(h.buckets.back().unwrap().max, 5.0);
    }

    #[test]
    fn a_resolution_below_a_minute_is_a_minute() {
        assert_eq!(
            bucket_start(Timestamp::from_secs(119), Duration::from_secs(1)),
            Timestamp::from_secs(60)
        );
        assert_eq!(
            bucket_start(Timestamp::from_secs(-1), MIN),
            Timestamp::from_secs(-60)
        );
    }
}
