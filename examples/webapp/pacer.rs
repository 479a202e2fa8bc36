//! The simulated work: one FIFO server whose service time is `1 / capacity`.
//!
//! A request arriving while the server is busy waits its turn, so latency grows with the queue exactly as
//! in an M/D/1 system: below capacity requests take about `1 / capacity`, above it the queue (and the
//! latency) grows until the bounded wait turns requests away. The clock is a parameter so the arithmetic
//! is tested without sleeping.

use std::time::Duration;

use tokio::time::Instant;

/// Admission control and scheduling of one replica's simulated work.
#[derive(Debug)]
pub struct Pacer {
    service: Duration,
    max_wait: Duration,
    next_free: Option<Instant>,
}

/// The server was busy for longer than the allowed queueing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    /// How long the request would have waited before its service started.
    pub wait: Duration,
}

impl Pacer {
    /// A server that completes `capacity_rps` requests per second and queues a request for at most
    /// `max_wait` before its service starts.
    ///
    /// # Panics
    ///
    /// If `capacity_rps` is not finite and positive (the configuration is validated before).
    pub fn new(capacity_rps: f64, max_wait: Duration) -> Self {
        assert!(
            capacity_rps.is_finite() && capacity_rps > 0.0,
            "capacity must be positive, got {capacity_rps}"
        );
        Self {
            service: Duration::from_secs_f64(1.0 / capacity_rps),
            max_wait,
            next_free: None,
        }
    }

    /// The service time of one request.
    pub fn service_time(&self) -> Duration {
        self.service
    }

    /// Admits a request arriving at `now`: returns the instant its work completes, or why it was refused.
    /// A refused request does not occupy the server.
    pub fn admit(&mut self, now: Instant) -> Result<Instant, Overloaded> {
        let start = self.next_free.map_or(now, |free| free.max(now));
        let wait = start - now;
        if wait > self.max_wait {
            return Err(Overloaded { wait });
        }
        let done = start + self.service;
        self.next_free = Some(done);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn below_capacity_every_request_takes_the_service_time() {
        let mut pacer = Pacer::new(20.0, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..10 {
            let arrival = t0 + 100 * MS * i;
            assert_eq!(pacer.admit(arrival), Ok(arrival + 50 * MS));
        }
    }

    #[test]
    fn a_burst_queues_in_arrival_order() {
        let mut pacer = Pacer::new(10.0, Duration::from_secs(1));
        let t0 = Instant::now();
        let done: Vec<_> = (0..4).map(|_| pacer.admit(t0).unwrap() - t0).collect();
        assert_eq!(done, [100 * MS, 200 * MS, 300 * MS, 400 * MS]);
    }

    #[test]
    fn the_queue_drains_while_idle() {
        let mut pacer = Pacer::new(10.0, Duration::from_secs(1));
        let t0 = Instant::now();
        pacer.admit(t0).unwrap();
        pacer.admit(t0).unwrap();
        let later = t0 + Duration::from_secs(5);
        assert_eq!(pacer.admit(later), Ok(later + 100 * MS));
    }

    #[test]
    fn a_request_that_would_wait_too_long_is_refused_without_taking_a_slot() {
        let mut pacer = Pacer::new(10.0, 250 * MS);
        let t0 = Instant::now();
        // Waits of 0, 100, 200 ms are admitted; 300 ms is not.
        for _ in 0..3 {
            pacer.admit(t0).unwrap();
        }
        assert_eq!(pacer.admit(t0), Err(Overloaded { wait: 300 * MS }));
        assert_eq!(pacer.admit(t0 + 100 * MS), Ok(t0 + 400 * MS));
    }

    #[test]
    fn throughput_never_exceeds_capacity() {
        let mut pacer = Pacer::new(4.0, Duration::from_secs(3600));
        let t0 = Instant::now();
        let last = (0..40).map(|_| pacer.admit(t0).unwrap()).last().unwrap();
        assert_eq!(last - t0, Duration::from_secs(10));
    }
}
