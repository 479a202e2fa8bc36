//! Per-second counts and the lines the generator prints.

use std::fmt;
use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A 2xx response, after this long.
    Ok(Duration),
    /// A response with another status (the webapp answers 503 when its queue is full).
    Rejected,
    /// No response: no replica, connection refused, timeout, or too many requests in flight.
    Failed,
}

/// The counts of one reporting period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Requests started.
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses.
    pub rejected: u64,
    /// Requests without a response.
    pub failed: u64,
    /// Latencies of the 2xx responses, in seconds.
    pub latencies: Vec<f64>,
}

impl Window {
    /// Counts a finished request.
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok(latency) => {
                self.ok += 1;
                self.latencies.push(latency.as_secs_f64());
            }
            Outcome::Rejected => self.rejected += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; `None` if there are none.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.saturating_sub(1)])
}

/// One printed line: what happened in the second ending at `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Second {
    /// Time since the start.
    pub t: Duration,
    /// The pattern's rate at the end of the second.
    pub target_rps: f64,
    /// Replicas in use.
    pub replicas: usize,
    /// Requests started.
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses.
    pub rejected: u64,
    /// Requests without a response.
    pub failed: u64,
    /// The 90th percentile latency of the 2xx responses, in seconds.
    pub p90: Option<f64>,
}

impl Second {
    /// Summarises a window.
    pub fn new(t: Duration, target_rps: f64, replicas: usize, mut window: Window) -> Self {
        Self {
            t,
            target_rps,
            replicas,
            sent: window.sent,
            ok: window.ok,
            rejected: window.rejected,
            failed: window.failed,
            p90: quantile(&mut window.latencies, 0.9),
        }
    }
}

impl fmt::Display for Second {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:>5.0}s rps={:<6} sent={:<5} ok={:<5} err={:<4} (http={} net={}) p90=",
            self.t.as_secs_f64(),
            self.target_rps,
            self.sent,
            self.ok,
            self.rejected + self.failed,
            self.rejected,
            self.failed,
        )?;
        match self.p90 {
            Some(p90) => write!(f, "{p90:.3}s")?,
            None => f.write_str("-")?,
        }
        write!(f, " replicas={}", self.replicas)
    }
}

/// The totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests started.
    pub sent: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses.
    pub rejected: u64,
    /// Requests without a response.
    pub failed: u64,
}

impl Summary {
    /// Adds a period's counts.
    pub fn add(&mut self, second: &Second) {
        self.sent += second.sent;
        self.ok += second.ok;
        self.rejected += second.rejected;
        self.failed += second.failed;
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "total sent={} ok={} rejected={} failed={}",
            self.sent, self.ok, self.rejected, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(quantile(&mut [], 0.9), None);
        assert_eq!(quantile(&mut [3.0], 0.9), Some(3.0));
        let mut ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut ten, 0.9), Some(9.0));
        assert_eq!(quantile(&mut ten, 0.5), Some(5.0));
        assert_eq!(quantile(&mut ten, 1.0), Some(10.0));
        assert_eq!(quantile(&mut ten, 0.0), Some(1.0));
        let mut hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut hundred, 0.9), Some(90.0));
    }

    #[test]
    fn a_second_prints_counts_and_p90() {
        let mut window = Window {
            sent: 4,
            ..Window::default()
        };
        for ms in [100, 50, 250] {
            window.record(Outcome::Ok(Duration::from_millis(ms)));
        }
        window.record(Outcome::Rejected);
        let second = Second::new(Duration::from_secs(12), 60.0, 3, window);
        assert_eq!(
            second.to_string(),
            "t=   12s rps=60     sent=4     ok=3     err=1    (http=1 net=0) p90=0.250s replicas=3"
        );
        let idle = Second::new(Duration::from_secs(1), 0.5, 0, Window::default());
        assert_eq!(
            idle.to_string(),
            "t=    1s rps=0.5    sent=0     ok=0     err=0    (http=0 net=0) p90=- replicas=0"
        );
        let mut total = Summary::default();
        total.add(&second);
        total.add(&second);
        assert_eq!(total.to_string(), "total sent=8 ok=6 rejected=2 failed=0");
    }
}
