//! The policy simulator: replay a load trace through a model of a service and the real [`Engine`](crate::Engine), and measure
//! how well the replicas followed the load. This is the library behind `autoscale simulate`; the model is the
//! normative one of `docs/simulation.md`.
//!
//! - [`Trace`] reads the trace CSV (or takes points from memory); [`Pattern`] generates synthetic ones.
//! - [`simulate`] runs the engine tick by tick; [`simulate_oracle`] runs the perfect-foresight reference.
//! - Each [`Tick`] is handed to a callback as it happens, and the [`Summary`] of elasticity metrics is built on
//!   the way, so nothing grows with the length of the trace.
//!
//! The model, at each tick `t_k = t0 + k * dt` while `t_k <= t_last`:
//! 1. replicas whose startup delay has passed are ready (`ready_k`);
//! 2. every check observes `load / (max(ready_k, 1) * capacity)` ([`MetricMode::Utilization`]) or the raw load,
//!    and the engine decides with `current = R`, `ready = ready_k`, `now = t_k`;
//! 3. a changed decision takes effect at once: new replicas are ready after the startup delay, and a
//!    scale-down removes the replicas that are still starting first, then the youngest ready ones.
//!
//! This module does no I/O: callers hand it a reader or values, and print what they like.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use autoscale_core::policy::{TargetForm, TargetPolicy};
//! use autoscale_core::sim::{self, Model, Pattern, PatternOptions, Trace};
//! use autoscale_core::{Check, Engine, EngineConfig};
//!
//! // Two requests per second for a minute, then nine.
//! let csv = "seconds,requests\n0,2\n60,9\n600,9\n";
//! let trace = Trace::parse(csv.as_bytes(), None)?;
//!
//! let policy = TargetPolicy::new(0.6, TargetForm::PerReplica)?;
//! let engine = Engine::new(
//!     EngineConfig::builder(1, 20)
//!         .check(Check::new("utilization", Arc::new(policy)))
//!         .build()?,
//! );
//! let model = Model { startup_delay: Duration::from_secs(30), ..Model::default() };
//!
//! let mut csv_rows = Vec::new();
//! let summary = sim::simulate(&engine, Duration::from_secs(15), &trace, &model, |tick| {
//!     csv_rows.push(format!("{},{},{},{}", tick.t, tick.load, tick.desired, tick.reason.token));
//! });
//! // Ticks at 0, 15, ..., 600 s.
//! assert_eq!(summary.ticks, 41);
//! // One replica at utilization 2 against a target of 0.6: ceil(2 / 0.6 * 1) = 4.
//! assert_eq!(csv_rows[0], "0,2,4,scale_up");
//! // Nine requests need ceil(9 / 0.6) = 15 replicas at the target.
//! assert_eq!(summary.max_replicas_used, 15);
//!
//! // The oracle knows the future: the reference for the same trace and target.
//! let oracle = sim::simulate_oracle(1, 20, 0.6, Duration::from_secs(15), &trace, &model, |_| {});
//! assert!(oracle.slo_violation_s <= summary.slo_violation_s);
//!
//! // A built-in pattern instead of a file.
//! let sine = Pattern::new("sine", &PatternOptions::default())?;
//! let trace = sine.trace(Pattern::DEFAULT_DURATION, Pattern::DEFAULT_RESOLUTION);
//! let summary = sim::simulate(&engine, Duration::from_secs(15), &trace, &model, |_| {});
//! assert_eq!(summary.ticks, 241);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod metrics;
mod model;
mod pattern;
mod trace;

pub use metrics::Summary;
pub use model::{MetricMode, Model, ModelError, Tick, simulate, simulate_oracle};
pub use pattern::{Pattern, PatternError, PatternOptions};
pub use trace::{TimeKind, Trace, TraceError};

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::engine::{Behavior, Rule, ScalingRules, Select};
    use crate::policy::{Step, TargetForm, TargetPolicy, ThresholdPolicy};
    use crate::{Check, Engine, EngineConfig, Policy, Replicas, Timestamp};

    #[derive(Debug, Clone)]
    enum PolicyChoice {
        PerReplica(f64),
        Total(f64),
        Threshold(f64, f64),
    }

    #[derive(Debug, Clone)]
    struct Setup {
        min: Replicas,
        max: Replicas,
        policy: PolicyChoice,
        activation: f64,
        default_behavior: bool,
        interval_ms: u64,
        model: Model,
    }

    impl Setup {
        fn engine(&self) -> Engine {
            let policy: Arc<dyn Policy> = match self.policy {
                PolicyChoice::PerReplica(t) => {
                    Arc::new(TargetPolicy::new(t, TargetForm::PerReplica).unwrap())
                }
                PolicyChoice::Total(t) => {
                    Arc::new(TargetPolicy::new(t, TargetForm::Total).unwrap())
                }
                PolicyChoice::Threshold(up, down) => {
                    Arc::new(ThresholdPolicy::new(up, down, Step::Count(1)).unwrap())
                }
            };
            let mut builder = EngineConfig::builder(self.min, self.max).check(
                Check::new("m", policy)
                    .with_activation(self.activation)
                    .unwrap(),
            );
            if !self.default_behavior {
                let quick = |w| {
                    ScalingRules::new(
                        Duration::from_secs(w),
                        Select::Max,
                        vec![Rule::pods(2, Duration::from_secs(20)).unwrap()],
                    )
                    .unwrap()
                };
                builder = builder.behavior(Behavior {
                    scale_up: quick(0),
                    scale_down: quick(30),
                });
            }
            if self.min == 0 {
                builder = builder.idle_after(Duration::from_secs(40));
            }
            if matches!(self.policy, PolicyChoice::Threshold(..)) {
                builder = builder.default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
            }
            Engine::new(builder.build().unwrap())
        }
    }

    fn setup(min_range: std::ops::RangeInclusive<Replicas>) -> impl Strategy<Value = Setup> {
        let policy = prop_oneof![
            (0.2..1.5f64).prop_map(PolicyChoice::PerReplica),
            (0.5..10.0f64).prop_map(PolicyChoice::Total),
            (0.5..1.0f64, 0.0..0.5f64).prop_map(|(up, down)| PolicyChoice::Threshold(up, down)),
        ];
        let model = (
            0.1..5.0f64,
            0u64..60_000,
            proptest::option::of(0u32..30),
            any::<bool>(),
        )
            .prop_map(|(capacity, delay_ms, initial, load)| Model {
                capacity,
                startup_delay: Duration::from_millis(delay_ms),
                initial,
                metric: if load {
                    MetricMode::Load
                } else {
                    MetricMode::Utilization
                },
            });
        (
            min_range,
            1u32..20,
            policy,
            0.0..0.3f64,
            any::<bool>(),
            500u64..30_000,
            model,
        )
            .prop_map(
                |(min, span, policy, activation, default_behavior, interval_ms, model)| Setup {
                    min,
                    max: min.max(1) + span,
                    policy,
                    activation,
                    default_behavior,
                    interval_ms,
                    model,
                },
            )
    }

    /// Random traces: a start anywhere, gaps of 1 ms to 2 min, loads from 0 to 40 with runs of zeros.
    fn trace() -> impl Strategy<Value = Trace> {
        (
            -1_000_000i64..1_000_000,
            proptest::collection::vec((1i64..120_000, prop_oneof![Just(0.0), 0.0..40.0f64]), 1..80),
        )
            .prop_map(|(start, rows)| {
                let mut t = start;
                let points = rows
                    .into_iter()
                    .map(|(gap, load)| {
                        t += gap;
                        (Timestamp::from_millis(t), load)
                    })
                    .collect();
                Trace::from_points(points).unwrap()
            })
    }

    fn check_summary(s: &Summary, ticks: &[Tick], trace: &Trace, interval_ms: u64) {
        let span = trace.end().as_millis() - trace.start().as_millis();
        assert_eq!(s.ticks, (span / interval_ms as i64 + 1) as u64);
        assert_eq!(s.ticks as usize, ticks.len());
        for (name, v) in [
            ("theta_u", s.theta_u),
            ("tau_u", s.tau_u),
            ("tau_o", s.tau_o),
            ("instability", s.instability),
        ] {
            assert!((0.0..=100.0).contains(&v), "{name} = {v}");
        }
        // Over-provisioning accuracy has no upper bound (10 replicas for a demand of 1 is 900 %).
        assert!(s.theta_o >= 0.0 && s.theta_o.is_finite());
        assert!(s.tau_u + s.tau_o <= 100.0 + 1e-9);
        assert!(s.jitter_per_min.is_finite());
        let dt = interval_ms as f64 / 1000.0;
        let by_row: f64 = ticks.iter().map(|t| f64::from(t.desired) * dt).sum();
        assert!(
            (s.replica_seconds - by_row).abs() <= 1e-9 * by_row.max(1.0),
            "replica_seconds {} != {by_row}",
            s.replica_seconds
        );
        assert_eq!(
            s.scale_actions,
            ticks.iter().filter(|t| t.desired != t.current).count() as u64
        );
        assert_eq!(
            s.max_replicas_used,
            ticks.iter().map(|t| t.desired).max().unwrap()
        );
        for pair in ticks.windows(2) {
            // R carries over from one tick to the next.
            assert_eq!(pair[1].current, pair[0].desired);
        }
        for t in ticks {
            assert!(t.ready <= t.desired, "{t:?}");
        }
    }

    fn run(setup: &Setup, trace: &Trace) -> (Summary, Vec<Tick>) {
        let mut ticks = Vec::new();
        let summary = simulate(
            &setup.engine(),
            Duration::from_millis(setup.interval_ms),
            trace,
            &setup.model,
            |t| ticks.push(t.clone()),
        );
        (summary, ticks)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn summaries_are_consistent_and_desired_is_within_bounds(setup in setup(1..=4), trace in trace()) {
            let (summary, ticks) = run(&setup, &trace);
            check_summary(&summary, &ticks, &trace, setup.interval_ms);
            for t in &ticks {
                prop_assert!((setup.min..=setup.max).contains(&t.desired), "{t:?} outside [{}, {}]", setup.min, setup.max);
                if setup.model.startup_delay.is_zero() {
                    prop_assert_eq!(t.ready, t.desired);
                }
            }
        }

        #[test]
        fn scale_to_zero_follows_activation(setup in setup(0..=0), trace in trace()) {
            let (summary, ticks) = run(&setup, &trace);
            check_summary(&summary, &ticks, &trace, setup.interval_ms);
            for t in &ticks {
                prop_assert!(t.desired <= setup.max, "{t:?} above {}", setup.max);
                if t.desired == 0 && t.current > 0 {
                    prop_assert!(t.metric <= setup.activation, "went to zero while active: {t:?}");
                }
                if t.current == 0 && t.desired > 0 {
                    prop_assert!(t.metric > setup.activation, "left zero while idle: {t:?}");
                }
            }
        }

        #[test]
        fn the_oracle_is_bounded_and_never_short_without_delay(
            setup in setup(0..=4),
            target in 0.2..1.0f64,
            trace in trace(),
        ) {
            let mut ticks = Vec::new();
            let summary = simulate_oracle(
                setup.min,
                setup.max,
                target,
                Duration::from_millis(setup.interval_ms),
                &trace,
                &setup.model,
                |t| ticks.push(t.clone()),
            );
            check_summary(&summary, &ticks, &trace, setup.interval_ms);
            for t in &ticks {
                prop_assert!((setup.min..=setup.max).contains(&t.desired));
            }
            let peak = trace.points().map(|(_, l)| l).fold(0.0, f64::max);
            let enough = (peak / (setup.model.capacity * target)).ceil() as Replicas <= setup.max;
            if setup.model.startup_delay.is_zero() && enough {
                prop_assert_eq!(summary.tau_u, 0.0);
                prop_assert_eq!(summary.slo_violation_s, 0.0);
            }
        }
    }
}
