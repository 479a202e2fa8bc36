//! The built-in policies. Anything else that implements [`Policy`](crate::Policy) plugs in the same way.

mod context;
mod predictive;
mod target;
mod threshold;

pub use context::{Forecast, Part, PolicyContext};
pub use predictive::PredictivePolicy;
pub use target::{TargetForm, TargetPolicy};
pub use threshold::{Step, ThresholdPolicy};

use crate::Replicas;

/// `ceil(x)` as a replica count, the way Kubernetes' `int32(math.Ceil(x))` is meant: negative and NaN give 0,
/// and values past the range saturate (the max bound clamps them later).
pub(crate) fn ceil_replicas(x: f64) -> Replicas {
    // `as` saturates and maps NaN to 0, which is the behaviour wanted here.
    x.ceil() as Replicas
}

/// Why a built-in policy's parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A target must be a finite number above zero.
    #[error("target must be a finite number greater than 0, got {0}")]
    Target(f64),
    /// A tolerance must lie in [0, 1).
    #[error("tolerance must be at least 0 and below 1, got {0}")]
    Tolerance(f64),
    /// Thresholds must be finite, with `scale_down_below <= scale_up_above`.
    #[error("scale_down_below ({down}) must be finite and not above scale_up_above ({up})")]
    Thresholds {
        /// The scale-up threshold.
        up: f64,
        /// The scale-down threshold.
        down: f64,
    },
    /// A step must move at least one replica.
    #[error("step must be at least 1 replica or a percent above 0, got {0}")]
    Step(String),
    /// A short-term window must span at least one bucket of history.
    #[error("window must be at least 60s, got {}s", .0.as_secs_f64())]
    Window(std::time::Duration),
    /// `z` must be a finite number of deviations, at least 0.
    #[error("z must be a finite number at least 0, got {0}")]
    Z(f64),
    /// A season must lie between an hour and a week.
    #[error("season must be between 1h and 7d, got {}s", .0.as_secs_f64())]
    Season(std::time::Duration),
    /// The look-ahead must be shorter than the season.
    #[error("lead must be shorter than the season, got {}s", .0.as_secs_f64())]
    Lead(std::time::Duration),
}

/// One recommendation with a fresh, throwaway history: for tests of memoryless policies.
#[cfg(test)]
pub(crate) fn recommend_once(
    policy: &dyn crate::Policy,
    value: f64,
    status: crate::ReplicaStatus,
) -> Replicas {
    let mut history = crate::engine::CheckHistory::default();
    let mut context = PolicyContext::new(crate::Timestamp::EPOCH, &mut history);
    policy.recommend(value, status, &mut context)
}
