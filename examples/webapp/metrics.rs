//! The webapp's metrics and their Prometheus text exposition (format 0.0.4).
//!
//! Written by hand: four series do not justify a metrics library in an image meant to stay small, and a
//! plain [`Snapshot`] keeps the rendering a pure, snapshot-tested function.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets: Prometheus' default buckets.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The live counters of one replica, updated by the request handlers.
#[derive(Debug)]
pub struct Metrics {
    capacity_rps: f64,
    served: AtomicU64,
    rejected: AtomicU64,
    in_flight: AtomicI64,
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A consistent-enough copy of [`Metrics`] to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The configured capacity of the replica.
    pub capacity_rps: f64,
    /// Requests to `/` answered 200.
    pub served: u64,
    /// Requests to `/` answered 503 because the queue was full.
    pub rejected: u64,
    /// Requests to `/` queued or in service now.
    pub in_flight: i64,
    /// Non-cumulative counts per bucket of [`BUCKETS`], then the `+Inf` bucket.
    pub buckets: Vec<u64>,
    /// Total latency of the served requests.
    pub sum_seconds: f64,
}

/// Decrements the in-flight gauge when a request ends, however it ends (including a client hang-up).
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counters at zero for a replica of this capacity.
    pub fn new(capacity_rps: f64) -> Self {
        Self {
            capacity_rps,
            served: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Records a served request and its latency.
    pub fn served(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request turned away because the queue was full.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            capacity_rps: self.capacity_rps,
            served: self.served.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

impl Snapshot {
    /// The Prometheus text exposition of these values.
    ///
    /// The histogram's `_count` is the sum of its buckets, not the `served` counter, so the `+Inf` bucket
    /// and `_count` always agree even when a request completes while the snapshot is taken.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1536);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP webapp_requests_total Requests to / answered, by status code (503: queue full).\n\
             # TYPE webapp_requests_total counter\n\
             webapp_requests_total{{code=\"200\"}} {}\n\
             webapp_requests_total{{code=\"503\"}} {}\n\
             # HELP webapp_capacity_rps Requests per second this replica serves at most.\n\
             # TYPE webapp_capacity_rps gauge\n\
             webapp_capacity_rps {}\n\
             # HELP webapp_in_flight Requests to / queued or in service.\n\
             # TYPE webapp_in_flight gauge\n\
             webapp_in_flight {}\n\
             # HELP webapp_request_duration_seconds Latency of served requests to /, queueing included.\n\
             # TYPE webapp_request_duration_seconds histogram\n",
            self.served, self.rejected, self.capacity_rps, self.in_flight
        );
        let mut cumulative = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            cumulative += count;
            match BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(
                        out,
                        "webapp_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "webapp_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                    );
                }
            }
        }
        let _ = write!(
            out,
            "webapp_request_duration_seconds_sum {}\nwebapp_request_duration_seconds_count {cumulative}\n",
            self.sum_seconds
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_counters_render_zeroes() {
        insta::assert_snapshot!(Metrics::new(20.0).snapshot().render());
    }

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let metrics = Metrics::new(2.5);
        metrics.served(Duration::from_millis(50)); // le="0.05" exactly
        metrics.served(Duration::from_millis(300));
        metrics.served(Duration::from_secs(12)); // beyond the last bound: +Inf only
        metrics.rejected();
        let guard = metrics.start();
        let _still_running = metrics.start();
        drop(guard);
        insta::assert_snapshot!(metrics.snapshot().render());
    }

    #[test]
    fn every_sample_line_is_a_name_optional_labels_and_a_number() {
        let metrics = Metrics::new(0.5);
        metrics.served(Duration::from_micros(1));
        for line in metrics.snapshot().render().lines() {
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("webapp_"), "{line}");
        }
    }
}
