//! The original scaler's policy: step up above one threshold, step down below another.

use std::time::Duration;

use crate::policy::{PolicyContext, PolicyError, ceil_replicas};
use crate::{Policy, ReplicaStatus, Replicas};

/// How far one threshold decision moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// A fixed number of replicas (`step = 1`).
    Count(Replicas),
    /// A percent of the current count, at least one replica (`step_percent = 50`).
    Percent(f64),
}

impl Step {
    fn replicas(self, current: Replicas) -> Replicas {
        match self {
            Step::Count(n) => n,
            // max(1, ceil(current * percent / 100)), left to right in f64.
            Step::Percent(p) => ceil_replicas(f64::from(current) * p / 100.0).max(1),
        }
    }
}

/// `current + step` above `scale_up_above`, `current - step` below `scale_down_below` (strict comparisons).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdPolicy {
    up: f64,
    down: f64,
    step: Step,
}

impl ThresholdPolicy {
    /// The cooldown of a service with a threshold check when it sets none (the original scaler's). The engine
    /// does not apply it by itself: whoever builds the service's configuration passes it to
    /// [`EngineConfigBuilder::default_cooldown`](crate::engine::EngineConfigBuilder::default_cooldown).
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

    /// A threshold policy. `scale_down_below` must not be above `scale_up_above`, and the step must move at
    /// least one replica.
    pub fn new(
        scale_up_above: f64,
        scale_down_below: f64,
        step: Step,
    ) -> Result<Self, PolicyError> {
        if !(scale_up_above.is_finite() && scale_down_below.is_finite())
            || scale_down_below > scale_up_above
        {
            return Err(PolicyError::Thresholds {
                up: scale_up_above,
                down: scale_down_below,
            });
        }
        match step {
            Step::Count(0) => return Err(PolicyError::Step("0".into())),
            Step::Percent(p) if !(p.is_finite() && p > 0.0) => {
                return Err(PolicyError::Step(format!("{p}%")));
            }
            _ => {}
        }
        Ok(ThresholdPolicy {
            up: scale_up_above,
            down: scale_down_below,
            step,
        })
    }

    /// The scale-up threshold.
    pub fn scale_up_above(&self) -> f64 {
        self.up
    }

    /// The scale-down threshold.
    pub fn scale_down_below(&self) -> f64 {
        self.down
    }

    /// The step.
    pub fn step(&self) -> Step {
        self.step
    }
}

impl Policy for ThresholdPolicy {
    fn kind(&self) -> &str {
        "threshold"
    }

    fn recommend(
        &self,
        value: f64,
        status: ReplicaStatus,
        _context: &mut PolicyContext<'_>,
    ) -> Replicas {
        let current = status.current;
        if value > self.up {
            current.saturating_add(self.step.replicas(current))
        } else if value < self.down {
            current.saturating_sub(self.step.replicas(current))
        } else {
            current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::recommend_once;

    #[test]
    fn strict_comparisons_and_a_floor_at_zero() {
        let p = ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).unwrap();
        let s = ReplicaStatus::all_ready(3);
        assert_eq!(recommend_once(&p, 0.61, s), 4);
        assert_eq!(recommend_once(&p, 0.6, s), 3);
        assert_eq!(recommend_once(&p, 0.3, s), 3);
        assert_eq!(recommend_once(&p, 0.29, s), 2);
        let big = ThresholdPolicy::new(0.6, 0.3, Step::Count(5)).unwrap();
        assert_eq!(recommend_once(&big, 0.0, s), 0);
    }

    #[test]
    fn percent_steps_round_up_and_move_at_least_one() {
        let p = ThresholdPolicy::new(0.6, 0.3, Step::Percent(50.0)).unwrap();
        assert_eq!(recommend_once(&p, 1.0, ReplicaStatus::all_ready(3)), 5); // ceil(1.5) = 2
        assert_eq!(recommend_once(&p, 1.0, ReplicaStatus::all_ready(1)), 2); // ceil(0.5) = 1
        assert_eq!(recommend_once(&p, 1.0, ReplicaStatus::all_ready(0)), 1); // max(1, 0)
        assert_eq!(recommend_once(&p, 0.0, ReplicaStatus::all_ready(10)), 5);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(ThresholdPolicy::new(0.3, 0.6, Step::Count(1)).is_err());
        assert!(ThresholdPolicy::new(0.6, 0.3, Step::Count(0)).is_err());
        assert!(ThresholdPolicy::new(0.6, 0.3, Step::Percent(0.0)).is_err());
        assert!(ThresholdPolicy::new(f64::INFINITY, 0.3, Step::Count(1)).is_err());
    }
}
