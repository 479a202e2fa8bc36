//! The properties of docs/engine.md, over random configs and random metric sequences.

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::{Fallback, FallbackMode, Rule, ScalingRules, Select};
use autoscale_core::policy::{Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::{
    Behavior, Check, Decision, Engine, EngineConfig, EngineState, FailureKind, Observation,
    ReplicaStatus, Replicas, Timestamp,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum PolicySpec {
    Target {
        target: f64,
        total: bool,
        tolerance: f64,
    },
    Threshold {
        up: f64,
        down: f64,
        step: u32,
    },
}

#[derive(Debug, Clone)]
struct RuleSpec {
    percent: bool,
    amount: u32,
    period_s: u64,
}

#[derive(Debug, Clone)]
struct DirectionSpec {
    window_s: u64,
    select: u8,
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone)]
struct ConfigSpec {
    min: Replicas,
    max: Replicas,
    checks: Vec<(PolicySpec, f64)>,
    up: DirectionSpec,
    down: DirectionSpec,
    cooldown_up_s: u64,
    cooldown_down_s: u64,
    fallback: Option<(u32, Replicas, bool)>,
    idle_after_s: Option<u64>,
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    prop_oneof![
        (0.1f64..2.0, any::<bool>(), 0.0f64..0.3).prop_map(|(target, total, tolerance)| {
            PolicySpec::Target {
                target,
                total,
                tolerance,
            }
        }),
        (0.2f64..2.0, 0.0f64..1.0, 1u32..4).prop_map(|(up, frac, step)| PolicySpec::Threshold {
            up,
            down: up * frac,
            step,
        }),
    ]
}

fn direction_spec() -> impl Strategy<Value = DirectionSpec> {
    let rule =
        (any::<bool>(), 1u32..300, 1u64..120).prop_map(|(percent, amount, period_s)| RuleSpec {
            percent,
            amount: if percent { amount } else { amount % 10 + 1 },
            period_s,
        });
    (0u64..120, 0u8..6, prop::collection::vec(rule, 1..4)).prop_map(|(window_s, select, rules)| {
        DirectionSpec {
            window_s,
            select,
            rules,
        }
    })
}

fn config_spec() -> impl Strategy<Value = ConfigSpec> {
    (
        0u32..4,
        1u32..30,
        prop::collection::vec((policy_spec(), 0.0f64..0.2), 1..4),
        direction_spec(),
        direction_spec(),
        (0u64..60, 0u64..60),
        prop::option::of((1u32..4, 0u32..40, any::<bool>())),
        prop::option::of(0u64..120),
    )
        .prop_map(
            |(min, span, checks, up, down, (cu, cd), fallback, idle)| ConfigSpec {
                min,
                max: min.max(1) + span,
                checks,
                up,
                down,
                cooldown_up_s: cu,
                cooldown_down_s: cd,
                fallback,
                idle_after_s: if min == 0 { idle } else { None },
            },
        )
}

fn build_rules(d: &DirectionSpec) -> ScalingRules {
    let select = match d.select {
        0 => Select::Min,
        1 => Select::Disabled,
        _ => Select::Max,
    };
    let rules = d
        .rules
        .iter()
        .map(|r| {
            let period = Duration::from_secs(r.period_s);
            if r.percent {
                Rule::percent(r.amount, period)
            } else {
                Rule::pods(r.amount, period)
            }
            .unwrap()
        })
        .collect();
    ScalingRules::new(Duration::from_secs(d.window_s), select, rules).unwrap()
}

fn build(spec: &ConfigSpec, with_fallback: bool) -> EngineConfig {
    let mut b = EngineConfig::builder(spec.min, spec.max)
        .behavior(Behavior {
            scale_up: build_rules(&spec.up),
            scale_down: build_rules(&spec.down),
        })
        .cooldown_up(Duration::from_secs(spec.cooldown_up_s))
        .cooldown_down(Duration::from_secs(spec.cooldown_down_s));
    for (i, (p, activation)) in spec.checks.iter().enumerate() {
        let policy: Arc<dyn autoscale_core::Policy> = match *p {
            PolicySpec::Target {
                target,
                total,
                tolerance,
            } => {
                let form = if total {
                    TargetForm::Total
                } else {
                    TargetForm::PerReplica
                };
                Arc::new(TargetPolicy::with_tolerance(target, form, tolerance).unwrap())
            }
            PolicySpec::Threshold { up, down, step } => {
                Arc::new(ThresholdPolicy::new(up, down, Step::Count(step)).unwrap())
            }
        };
        b = b.check(
            Check::new(format!("c{i}"), policy)
                .with_activation(*activation)
                .unwrap(),
        );
    }
    if let (true, Some((after, replicas, if_higher))) = (with_fallback, spec.fallback) {
        let mode = if if_higher {
            FallbackMode::IfHigher
        } else {
            FallbackMode::Static
        };
        b = b.fallback(Fallback::new(after, replicas, mode).unwrap());
    }
    if let Some(s) = spec.idle_after_s {
        b = b.idle_after(Duration::from_secs(s));
    }
    b.build().unwrap()
}

/// One tick of input: seconds since the previous tick, not-ready replicas, one observation per check.
#[derive(Debug, Clone)]
struct Step_ {
    dt_s: u64,
    unready: Replicas,
    observations: Vec<Observation>,
}

fn observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        8 => (0.0f64..3.0).prop_map(Observation::Value),
        1 => Just(Observation::Failed(FailureKind::Unavailable)),
        1 => Just(Observation::Value(f64::NAN)),
    ]
}

fn steps(checks: usize) -> impl Strategy<Value = Vec<Step_>> {
    prop::collection::vec(
        (
            1u64..30,
            0u32..3,
            prop::collection::vec(observation(), checks..=checks),
        )
            .prop_map(|(dt_s, unready, observations)| Step_ {
                dt_s,
                unready,
                observations,
            }),
        1..60,
    )
}

fn scenario() -> impl Strategy<Value = (ConfigSpec, Replicas, Vec<Step_>)> {
    config_spec().prop_flat_map(|spec| {
        let n = spec.checks.len();
        (Just(spec), 0u32..40, steps(n))
    })
}

/// Run a scenario, applying each decision, and hand every tick to `check`.
fn run(
    config: EngineConfig,
    initial: Replicas,
    steps: &[Step_],
    mut check: impl FnMut(&Engine, &EngineState, ReplicaStatus, &[Observation], Timestamp, &Decision),
) -> Vec<(Timestamp, Replicas)> {
    let engine = Engine::new(config);
    let mut state = EngineState::default();
    let mut replicas = initial;
    let mut now = Timestamp::from_secs(1_000);
    let mut trajectory = vec![(Timestamp::from_secs(i64::MIN / 2000), initial)];
    for step in steps {
        now = now + Duration::from_secs(step.dt_s);
        let status = ReplicaStatus {
            current: replicas,
            ready: replicas.saturating_sub(step.unready),
        };
        let before = state.clone();
        let (decision, next) = engine.evaluate(state, status, &step.observations, now);
        check(&engine, &before, status, &step.observations, now, &decision);
        state = next;
        if decision.desired != replicas {
            state.record_scale(now, replicas, decision.desired);
            replicas = decision.desired;
            trajectory.push((now, replicas));
        }
    }
    trajectory
}

/// The replica count at time `t`, counting changes made at `t` itself.
fn replicas_at(trajectory: &[(Timestamp, Replicas)], t: Timestamp) -> Replicas {
    trajectory
        .iter()
        .take_while(|(at, _)| *at <= t)
        .last()
        .map_or(0, |(_, r)| *r)
}

fn all_failed(engine: &Engine, observations: &[Observation]) -> bool {
    (0..engine.config().checks().len())
        .all(|i| engine.classify(i, observations.get(i).copied()).is_err())
}

fn any_failed(engine: &Engine, observations: &[Observation]) -> bool {
    (0..engine.config().checks().len())
        .any(|i| engine.classify(i, observations.get(i).copied()).is_err())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn desired_stays_within_bounds((spec, initial, steps) in scenario()) {
        let config = build(&spec, true);
        let (min, max) = (config.min_replicas(), config.max_replicas());
        run(config, initial, &steps, |_, _, _, _, _, d| {
            assert!(d.desired >= min && d.desired <= max, "{} outside [{min}, {max}]: {}", d.desired, d.reason);
        });
    }

    #[test]
    fn evaluation_is_deterministic((spec, initial, steps) in scenario()) {
        let config = build(&spec, true);
        run(config, initial, &steps, |engine, state, status, obs, now, d| {
            let (again, _) = engine.evaluate(state.clone(), status, obs, now);
            let (third, s3) = engine.evaluate(state.clone(), status, obs, now);
            let (_, s4) = engine.evaluate(state.clone(), status, obs, now);
            assert_eq!(&again, d);
            assert_eq!(&third, d);
            assert_eq!(s3, s4);
        });
    }

    #[test]
    fn no_change_within_tolerance(
        (spec, initial, steps) in scenario(),
        target in 0.1f64..2.0,
        tolerance in 0.0f64..0.3,
        total in any::<bool>(),
        position in -0.999f64..0.999,
    ) {
        let mut spec = spec;
        spec.checks = vec![(PolicySpec::Target { target, total, tolerance }, 0.0)];
        spec.min = spec.min.max(1);
        spec.idle_after_s = None;
        let config = build(&spec, false);
        let (min, max) = (config.min_replicas(), config.max_replicas());
        let initial = initial.clamp(min, max);
        let steps: Vec<Step_> = steps.into_iter().map(|s| Step_ { observations: vec![Observation::Value(0.0)], ..s }).collect();
        // Feed each tick a value whose ratio is strictly within the tolerance of 1.
        let engine = Engine::new(config);
        let mut state = EngineState::default();
        let mut now = Timestamp::from_secs(0);
        for step in &steps {
            now = now + Duration::from_secs(step.dt_s);
            let ratio = 1.0 + position * tolerance;
            let value = if total { ratio * target * f64::from(initial) } else { ratio * target };
            let status = ReplicaStatus { current: initial, ready: initial };
            let (d, next) = engine.evaluate(state, status, &[Observation::Value(value)], now);
            prop_assert_eq!(d.desired, initial, "{}", d.reason);
            state = next;
        }
    }

    #[test]
    fn a_larger_target_value_never_gives_fewer_replicas(
        (spec, initial, steps) in scenario(),
        target in 0.1f64..2.0,
        tolerance in 0.0f64..0.3,
        total in any::<bool>(),
        a in 0.0f64..5.0,
        b in 0.0f64..5.0,
    ) {
        let mut spec = spec;
        spec.checks.insert(0, (PolicySpec::Target { target, total, tolerance }, 0.05));
        let config = build(&spec, true);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let n = spec.checks.len();
        let steps: Vec<Step_> = steps
            .into_iter()
            .map(|mut s| { s.observations.resize(n, Observation::Value(0.5)); s })
            .collect();
        run(config, initial, &steps, |engine, state, status, obs, now, _| {
            let mut low = obs.to_vec();
            let mut high = obs.to_vec();
            low[0] = Observation::Value(lo);
            high[0] = Observation::Value(hi);
            let (dl, _) = engine.evaluate(state.clone(), status, &low, now);
            let (dh, _) = engine.evaluate(state.clone(), status, &high, now);
            assert!(dl.desired <= dh.desired, "value {lo} gave {} ({}), {hi} gave {} ({})", dl.desired, dl.reason, dh.desired, dh.reason);
        });
    }

    #[test]
    fn no_scale_down_while_any_check_failed((spec, initial, steps) in scenario()) {
        let config = build(&spec, false);
        let max = config.max_replicas();
        run(config, initial, &steps, |engine, _, status, obs, _, d| {
            if any_failed(engine, obs) && status.current <= max {
                assert!(d.desired >= status.current, "scaled down with a failed check: {}", d.reason);
            }
        });
    }

    #[test]
    fn no_scaling_in_a_direction_during_its_cooldown((spec, initial, steps) in scenario()) {
        let config = build(&spec, true);
        let (min, max) = (config.min_replicas(), config.max_replicas());
        let (up, down) = (config.cooldown_up(), config.cooldown_down());
        run(config, initial, &steps, |engine, state, status, obs, now, d| {
            let in_range = status.current <= max && (status.current >= min || min == 0);
            let Some(last) = state.last_scale_at else { return };
            if !in_range || all_failed(engine, obs) {
                return; // the out-of-range and fallback rules are not subject to cooldowns
            }
            let elapsed = now.saturating_since(last);
            if elapsed < up {
                assert!(d.desired <= status.current, "scaled up {elapsed:?} after the last action: {}", d.reason);
            }
            if elapsed < down {
                assert!(d.desired >= status.current, "scaled down {elapsed:?} after the last action: {}", d.reason);
            }
        });
    }

    #[test]
    fn changes_within_a_period_respect_the_rules((spec, initial, steps) in scenario()) {
        let config = build(&spec, false);
        let (min, max) = (config.min_replicas(), config.max_replicas());
        let behavior = config.behavior().clone();
        let mut history: Vec<(Timestamp, Replicas)> = vec![(Timestamp::from_secs(i64::MIN / 2000), initial)];
        let mut replicas = initial;
        let engine = Engine::new(config);
        let mut state = EngineState::default();
        let mut now = Timestamp::from_secs(1_000);
        for step in &steps {
            now = now + Duration::from_secs(step.dt_s);
            let status = ReplicaStatus { current: replicas, ready: replicas.saturating_sub(step.unready) };
            let (d, next) = engine.evaluate(state, status, &step.observations, now);
            state = next;
            let in_range = replicas <= max && (replicas >= min || min == 0);
            if in_range && d.desired > replicas {
                let limits = behavior.scale_up.rules().iter().map(|r| {
                    let start = i64::from(replicas_at(&history, now - r.period()));
                    match r.amount() {
                        autoscale_core::engine::RuleAmount::Pods(p) => start + i64::from(p),
                        autoscale_core::engine::RuleAmount::Percent(p) => (start as f64 * (1.0 + f64::from(p) / 100.0)).ceil() as i64,
                    }
                });
                let limit = match behavior.scale_up.select() {
                    Select::Min => limits.min().unwrap(),
                    Select::Max => limits.max().unwrap(),
                    Select::Disabled => i64::from(replicas),
                };
                // Never below current; and from zero at least one (activation; see the engine's docs).
                let limit = limit.max(i64::from(replicas)).max(i64::from(replicas == 0));
                prop_assert!(i64::from(d.desired) <= limit, "up to {} beyond limit {limit}: {}", d.desired, d.reason);
            }
            if in_range && d.desired < replicas {
                let limits = behavior.scale_down.rules().iter().map(|r| {
                    let start = i64::from(replicas_at(&history, now - r.period()));
                    match r.amount() {
                        autoscale_core::engine::RuleAmount::Pods(p) => start - i64::from(p),
                        autoscale_core::engine::RuleAmount::Percent(p) => (start as f64 * (1.0 - f64::from(p) / 100.0)) as i64,
                    }
                });
                let limit = match behavior.scale_down.select() {
                    Select::Min => limits.max().unwrap(),
                    Select::Max => limits.min().unwrap(),
                    Select::Disabled => i64::from(replicas),
                };
                prop_assert!(i64::from(d.desired) >= limit.min(i64::from(replicas)), "down to {} beyond limit {limit}: {}", d.desired, d.reason);
            }
            if d.desired != replicas {
                state.record_scale(now, replicas, d.desired);
                replicas = d.desired;
                history.push((now, replicas));
            }
        }
    }
}
