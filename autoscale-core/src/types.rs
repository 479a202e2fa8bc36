//! The small value types every part of autoscale speaks: replica counts, time, observations, status.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A number of replicas (containers, tasks, hosts: whatever the scaler counts).
///
/// Kubernetes uses `int32`; a `u32` can never be negative, and every arithmetic step in the engine that could
/// go below zero is done in `i64` and clamped explicitly.
pub type Replicas = u32;

/// A point in time, in whole milliseconds since the Unix epoch.
///
/// The engine never reads a clock: the caller passes `now`. The daemon passes wall-clock time (so persisted state
/// stays meaningful across restarts); the simulator passes trace time. Integer milliseconds keep every window
/// cut-off comparison exact, which is what makes "strictly newer than" well defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, also a convenient origin for simulations.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// A timestamp from whole seconds since the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch, as a float (for display and metrics).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// Whole milliseconds of a duration, saturating at `i64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(rhs)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(rhs)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0.div_euclid(1000),
            self.0.rem_euclid(1000)
        )
    }
}

/// What a scaler reports about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The desired/spec count: what the service was last told to run, or what was found running.
    pub current: Replicas,
    /// How many of those are running and healthy. Equal to `current` when the backend cannot tell.
    pub ready: Replicas,
}

impl ReplicaStatus {
    /// A status where every replica is ready.
    pub const fn all_ready(current: Replicas) -> Self {
        ReplicaStatus {
            current,
            ready: current,
        }
    }
}

/// A change of a service's replica count as the target itself recorded it (a Swarm service's `UpdatedAt`,
/// its previous and current spec): read on start so that cooldowns and rate rules hold with the local state
/// lost ([`Scaler::last_change`](crate::Scaler::last_change)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaChange {
    /// When the target recorded it (the target's clock).
    pub at: Timestamp,
    /// The count before.
    pub from: Replicas,
    /// The count after.
    pub to: Replicas,
}

/// Why a check produced no usable value. Stable, snake_case names: they appear in metrics labels and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The metric source could not be reached, or answered with a server error.
    Unavailable,
    /// The source did not answer in time.
    Timeout,
    /// The query was refused as malformed.
    InvalidQuery,
    /// The query returned no sample.
    Empty,
    /// The value was NaN or infinite and the check does not accept that.
    NonFinite,
    /// The result had a shape the check cannot use (several series, a matrix, a string).
    BadResult,
    /// Authentication or authorisation failed.
    Rejected,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The stable snake_case token of this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unavailable => "unavailable",
            FailureKind::Timeout => "timeout",
            FailureKind::InvalidQuery => "invalid_query",
            FailureKind::Empty => "empty",
            FailureKind::NonFinite => "non_finite",
            FailureKind::BadResult => "bad_result",
            FailureKind::Rejected => "rejected",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's observation at one evaluation: a value, or a failure with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// The metric's value. May be non-finite; the engine decides whether that counts as a failure.
    Value(f64),
    /// The metric could not be read.
    Failed(FailureKind),
}

impl Observation {
    /// The value, if there is one.
    pub const fn value(self) -> Option<f64> {
        match self {
            Observation::Value(v) => Some(v),
            Observation::Failed(_) => None,
        }
    }
}

impl From<f64> for Observation {
    fn from(value: f64) -> Self {
        Observation::Value(value)
    }
}

/// The direction of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
    /// No change.
    None,
}

impl Direction {
    /// The direction of a move from `from` to `to`.
    pub fn of(from: Replicas, to: Replicas) -> Self {
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::None,
        }
    }

    /// `"up"`, `"down"` or `"none"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::None => "none",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates_and_is_exact() {
        let t = Timestamp::from_secs(10);
        assert_eq!((t - Duration::from_secs(15)).as_millis(), -5000);
        assert_eq!((t + Duration::from_millis(1)).as_millis(), 10_001);
        assert_eq!(t.saturating_since(Timestamp::from_secs(12)), Duration::ZERO);
        assert_eq!(
            t.saturating_since(Timestamp::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(Timestamp::from_millis(-1500).to_string(), "-2.500s");
    }

    #[test]
    fn direction_of_a_move() {
        assert_eq!(Direction::of(3, 4), Direction::Up);
        assert_eq!(Direction::of(3, 1), Direction::Down);
        assert_eq!(Direction::of(3, 3), Direction::None);
    }
}
