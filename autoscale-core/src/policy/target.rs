//! Target tracking, as Kubernetes' HPA does it.

use crate::policy::{PolicyContext, PolicyError, ceil_replicas};
use crate::{Policy, ReplicaStatus, Replicas};

/// How a [`TargetPolicy`]'s metric relates to the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// The metric is an average per replica, such as CPU utilization (`per = "replica"`).
    PerReplica,
    /// The metric is a total over all replicas, such as requests per second (`per = "total"`). This is what
    /// Kubernetes does for External metrics of type AverageValue.
    Total,
}

/// Keep the metric at `target`: the HPA's algorithm, with its f64 arithmetic in the same order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetPolicy {
    target: f64,
    form: TargetForm,
    tolerance: f64,
}

impl TargetPolicy {
    /// Kubernetes' default tolerance.
    pub const DEFAULT_TOLERANCE: f64 = 0.1;

    /// A target policy with the default tolerance.
    pub fn new(target: f64, form: TargetForm) -> Result<Self, PolicyError> {
        Self::with_tolerance(target, form, Self::DEFAULT_TOLERANCE)
    }

    /// A target policy with an explicit tolerance in `[0, 1)`.
    pub fn with_tolerance(
        target: f64,
        form: TargetForm,
        tolerance: f64,
    ) -> Result<Self, PolicyError> {
        if !(target.is_finite() && target > 0.0) {
            return Err(PolicyError::Target(target));
        }
        if !(tolerance.is_finite() && (0.0..1.0).contains(&tolerance)) {
            return Err(PolicyError::Tolerance(tolerance));
        }
        Ok(TargetPolicy {
            target,
            form,
            tolerance,
        })
    }

    /// The target value.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// The metric's form.
    pub fn form(&self) -> TargetForm {
        self.form
    }

    /// The tolerance around a ratio of 1 within which nothing changes.
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }

    /// Kubernetes 1.33+'s `Tolerances.isWithin`, in exactly this f64 form.
    fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.tolerance) <= ratio && ratio <= (1.0 + self.tolerance)
    }
}

impl Policy for TargetPolicy {
    fn kind(&self) -> &str {
        "target"
    }

    fn recommend(
        &self,
        value: f64,
        status: ReplicaStatus,
        _context: &mut PolicyContext<'_>,
    ) -> Replicas {
        let ReplicaStatus { current, ready } = status;
        match self.form {
            TargetForm::PerReplica => {
                let ratio = value / self.target;
                if current == 0 {
                    return ceil_replicas(ratio);
                }
                if self.is_within(ratio) {
                    return current;
                }
                let recommendation = if ready == 0 {
                    // Nothing is ready to share the load: read the value as one replica's.
                    ceil_replicas(ratio)
                } else {
                    ceil_replicas(ratio * f64::from(ready))
                };
                if ready < current && ratio > 1.0 {
                    // Replicas are still starting: never let their absence shrink a scale-up.
                    recommendation.max(current)
                } else {
                    recommendation
                }
            }
            TargetForm::Total => {
                if current > 0 {
                    // GetExternalPerPodMetricReplicas: usage / (target * replicas).
                    let ratio = value / (self.target * f64::from(current));
                    if self.is_within(ratio) {
                        return current;
                    }
                }
                ceil_replicas(value / self.target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::recommend_once;

    fn per_replica(target: f64) -> TargetPolicy {
        TargetPolicy::new(target, TargetForm::PerReplica).unwrap()
    }

    #[test]
    fn per_replica_follows_the_hpa_formula() {
        let p = per_replica(0.6);
        // ratio 1.5 on 4 ready: ceil(6.0) = 6
        assert_eq!(recommend_once(&p, 0.9, ReplicaStatus::all_ready(4)), 6);
        // ratio 0.5: ceil(2.0) = 2
        assert_eq!(recommend_once(&p, 0.3, ReplicaStatus::all_ready(4)), 2);
    }

    #[test]
    fn tolerance_bounds_are_inclusive() {
        let p = TargetPolicy::with_tolerance(1.0, TargetForm::PerReplica, 0.1).unwrap();
        assert_eq!(recommend_once(&p, 1.1, ReplicaStatus::all_ready(10)), 10);
        assert_eq!(recommend_once(&p, 0.9, ReplicaStatus::all_ready(10)), 10);
        assert_eq!(
            recommend_once(&p, 1.1000001, ReplicaStatus::all_ready(10)),
            12
        );
        assert_eq!(
            recommend_once(&p, 0.8999999, ReplicaStatus::all_ready(10)),
            9
        );
    }

    #[test]
    fn from_zero_the_tolerance_is_skipped() {
        let p = per_replica(1.0);
        assert_eq!(recommend_once(&p, 1.05, ReplicaStatus::all_ready(0)), 2);
        assert_eq!(recommend_once(&p, 0.0, ReplicaStatus::all_ready(0)), 0);
    }

    #[test]
    fn starting_replicas_never_shrink_a_scale_up() {
        let p = per_replica(0.5);
        // 2 of 5 ready, ratio 1.2: ceil(2.4) = 3, held at 5.
        assert_eq!(
            recommend_once(
                &p,
                0.6,
                ReplicaStatus {
                    current: 5,
                    ready: 2
                }
            ),
            5
        );
        // Nothing ready: the value is one replica's: ceil(3.0) = 3, held at 5.
        assert_eq!(
            recommend_once(
                &p,
                1.5,
                ReplicaStatus {
                    current: 5,
                    ready: 0
                }
            ),
            5
        );
        // Below target with replicas starting: a scale-down is still allowed.
        assert_eq!(
            recommend_once(
                &p,
                0.25,
                ReplicaStatus {
                    current: 5,
                    ready: 2
                }
            ),
            1
        );
    }

    #[test]
    fn total_form_is_external_average_value() {
        let p = TargetPolicy::new(100.0, TargetForm::Total).unwrap();
        assert_eq!(recommend_once(&p, 450.0, ReplicaStatus::all_ready(2)), 5);
        assert_eq!(recommend_once(&p, 205.0, ReplicaStatus::all_ready(2)), 2);
        assert_eq!(recommend_once(&p, 50.0, ReplicaStatus::all_ready(0)), 1);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(TargetPolicy::new(0.0, TargetForm::Total).is_err());
        assert!(TargetPolicy::new(f64::NAN, TargetForm::Total).is_err());
        assert!(TargetPolicy::with_tolerance(1.0, TargetForm::Total, 1.0).is_err());
        assert!(TargetPolicy::with_tolerance(1.0, TargetForm::Total, -0.1).is_err());
    }
}
