//! One test per pipeline rule of docs/engine.md, in pipeline order.

mod common;

use std::sync::Arc;

use autoscale_core::engine::{Fallback, FallbackMode, Limit, Pause, Rule, ScalingRules, Select};
use autoscale_core::policy::{Step, ThresholdPolicy};
use autoscale_core::{
    Behavior, Check, Direction, Engine, EngineConfig, EngineState, FailureKind, MockPolicy,
    Observation, ReplicaStatus, Token,
};
use common::*;

fn no_windows() -> Behavior {
    let rules = |r: Rule| ScalingRules::new(secs(0), Select::Max, vec![r]).unwrap();
    Behavior {
        scale_up: rules(Rule::percent(1000, secs(15)).unwrap()),
        scale_down: rules(Rule::percent(100, secs(15)).unwrap()),
    }
}

fn once(
    config: EngineConfig,
    status: ReplicaStatus,
    obs: &[Observation],
) -> autoscale_core::Decision {
    Engine::new(config)
        .evaluate(EngineState::default(), status, obs, at(100))
        .0
}

// 1. Out-of-range current.

#[test]
fn above_max_goes_to_max_without_metrics() {
    let config = EngineConfig::builder(1, 5)
        .check(target(0.6))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(9), &[FAIL]);
    assert_eq!(
        (d.desired, d.reason.token, d.reason.recommended),
        (5, Token::OutOfRangeMax, None)
    );
}

#[test]
fn below_min_goes_to_min_even_from_zero() {
    let config = EngineConfig::builder(2, 5)
        .check(target(0.6))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(0), &[v(0.0)]);
    assert_eq!((d.desired, d.reason.token), (2, Token::OutOfRangeMin));
}

// 2. Recommendations.

#[test]
fn target_within_tolerance_keeps_current() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .behavior(no_windows())
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(10), &[v(0.55)]);
    assert_eq!((d.desired, d.reason.token), (10, Token::WithinTolerance));
}

#[test]
fn target_outside_tolerance_uses_ready_replicas() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .behavior(no_windows())
        .build()
        .unwrap();
    // ratio 1.5 * 4 ready = 6, but current 8 > ready with ratio > 1: never below current.
    let d = once(
        config.clone(),
        ReplicaStatus {
            current: 8,
            ready: 4,
        },
        &[v(0.75)],
    );
    assert_eq!(d.desired, 8);
    // ratio 2.0 * 6 ready = 12.
    let d = once(
        config,
        ReplicaStatus {
            current: 8,
            ready: 6,
        },
        &[v(1.0)],
    );
    assert_eq!((d.desired, d.reason.token), (12, Token::ScaleUp));
}

#[test]
fn threshold_percent_step() {
    let config = EngineConfig::builder(1, 50)
        .check(threshold(0.6, 0.3, Step::Percent(25.0)))
        .behavior(no_windows())
        .build()
        .unwrap();
    // max(1, ceil(10 * 25 / 100)) = 3
    let d = once(config, ReplicaStatus::all_ready(10), &[v(0.9)]);
    assert_eq!(d.desired, 13);
}

#[test]
fn a_custom_policy_plugs_in_through_the_trait() {
    let mut policy = MockPolicy::new();
    policy.expect_kind().return_const("custom".to_owned());
    policy
        .expect_recommend()
        .withf(|value, status, context| {
            *value == 42.0 && status.current == 3 && context.history().check == "custom"
        })
        .return_const(7u32);
    let config = EngineConfig::builder(1, 10)
        .check(Check::new("custom", Arc::new(policy)))
        .behavior(no_windows())
        .build()
        .unwrap();
    assert_eq!(config.policy_kinds(), "custom");
    let d = once(config, ReplicaStatus::all_ready(3), &[v(42.0)]);
    assert_eq!((d.desired, d.reason.check), (7, Some(0)));
}

// 3. Combining checks.

#[test]
fn the_largest_recommendation_wins() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .check(threshold(0.6, 0.3, Step::Count(1)))
        .behavior(no_windows())
        .build()
        .unwrap();
    let d = once(
        config.clone(),
        ReplicaStatus::all_ready(4),
        &[v(1.0), v(0.7)],
    );
    assert_eq!((d.desired, d.reason.check), (8, Some(0)));
    let d = once(config, ReplicaStatus::all_ready(4), &[v(0.1), v(0.7)]);
    assert_eq!((d.desired, d.reason.check), (5, Some(1)));
}

#[test]
fn partial_data_may_scale_up_never_down() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .check(threshold(0.6, 0.3, Step::Count(1)))
        .behavior(no_windows())
        .build()
        .unwrap();
    let d = once(config.clone(), ReplicaStatus::all_ready(4), &[v(0.1), FAIL]);
    assert_eq!(
        (d.desired, d.reason.token, d.reason.failed_checks),
        (4, Token::PartialData, 1)
    );
    let d = once(config, ReplicaStatus::all_ready(4), &[v(1.0), FAIL]);
    assert_eq!((d.desired, d.reason.token), (8, Token::ScaleUp));
}

#[test]
fn non_finite_values_are_failures_unless_accepted() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .behavior(no_windows())
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(4), &[v(f64::INFINITY)]);
    assert_eq!((d.desired, d.reason.token), (4, Token::NoData));
    let accepting = EngineConfig::builder(1, 50)
        .check(target(0.5).accepting_non_finite(true))
        .behavior(no_windows())
        .build()
        .unwrap();
    let d = once(
        accepting.clone(),
        ReplicaStatus::all_ready(4),
        &[v(f64::INFINITY)],
    );
    assert_eq!((d.desired, d.reason.token), (44, Token::RateLimited));
    let d = once(accepting, ReplicaStatus::all_ready(4), &[v(f64::NAN)]);
    assert_eq!(d.reason.token, Token::NoData);
}

#[test]
fn a_missing_observation_is_a_failed_check() {
    let config = EngineConfig::builder(1, 50)
        .check(target(0.5))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(4), &[]);
    assert_eq!((d.desired, d.reason.token), (4, Token::NoData));
}

#[test]
fn replicas_lost_from_a_steady_count_hold_a_scale_down_until_they_are_back() {
    let engine = Engine::new(
        EngineConfig::builder(1, 10)
            .check(target(1.0))
            .behavior(no_windows())
            .build()
            .unwrap(),
    );
    let status = |ready| ReplicaStatus { current: 6, ready };
    // 85 % of the target on 6 ready needs 6: ceil(5.1).
    let (d, state) = engine.evaluate(EngineState::default(), status(6), &[v(0.85)], at(0));
    assert_eq!(d.desired, 6);
    // A node is lost: 2 drop out of ready, the count holds, the value has not caught up. ceil(0.85 * 4) = 4
    // is held at 6.
    let (d, state) = engine.evaluate(state, status(4), &[v(0.85)], at(10));
    assert_eq!(
        (d.desired, d.reason.token, d.reason.recommended),
        (6, Token::PartialData, Some(6))
    );
    assert_eq!(state.lost_replicas, 2);
    let (d, state) = engine.evaluate(state, status(5), &[v(0.85)], at(20));
    assert_eq!((d.desired, d.reason.token), (6, Token::PartialData));
    // Replaced: a real drop of the load scales down again.
    let (d, state) = engine.evaluate(state, status(6), &[v(0.85)], at(30));
    assert_eq!(d.desired, 6);
    assert_eq!(state.lost_replicas, 0);
    let (d, _) = engine.evaluate(state, status(6), &[v(0.5)], at(40));
    assert_eq!((d.desired, d.reason.token), (3, Token::ScaleDown));
}

#[test]
fn replicas_starting_are_not_lost_and_a_scale_down_still_happens() {
    let engine = Engine::new(
        EngineConfig::builder(1, 10)
            .check(target(1.0))
            .behavior(no_windows())
            .build()
            .unwrap(),
    );
    // First seen with 2 of 6 ready, then the count changes with replicas starting: step 2 as written.
    let starting = ReplicaStatus {
        current: 6,
        ready: 2,
    };
    let (d, state) = engine.evaluate(EngineState::default(), starting, &[v(0.5)], at(0));
    assert_eq!((d.desired, d.reason.token), (1, Token::ScaleDown));
    let (d, _) = engine.evaluate(
        state,
        ReplicaStatus {
            current: 8,
            ready: 2,
        },
        &[v(0.5)],
        at(10),
    );
    assert_eq!((d.desired, d.reason.token), (1, Token::ScaleDown));
}

// 4. Activation and idle.

fn to_zero(idle_after: u64) -> EngineConfig {
    EngineConfig::builder(0, 10)
        .check(target(0.5).with_activation(0.1).unwrap())
        .behavior(no_windows())
        .idle_after(secs(idle_after))
        .build()
        .unwrap()
}

#[test]
fn zero_is_left_only_above_activation() {
    let d = once(to_zero(60), ReplicaStatus::all_ready(0), &[v(0.1)]);
    assert_eq!((d.desired, d.reason.token), (0, Token::Activation));
    let d = once(to_zero(60), ReplicaStatus::all_ready(0), &[v(0.11)]);
    assert_eq!(d.desired, 1);
}

#[test]
fn zero_is_reached_only_after_idle_after_and_failures_reset_the_clock() {
    let mut svc = Service::new(to_zero(60), 2);
    assert_eq!(svc.run(&[v(0.0)], 6, secs(10)).desired, 1); // t = 0..50: held at 1
    assert_eq!(svc.state.idle_since, Some(at(0)));
    svc.tick(&[FAIL], secs(10)); // t = 60: a failure resets the clock
    assert_eq!(svc.state.idle_since, None);
    assert_eq!(svc.run(&[v(0.0)], 6, secs(10)).desired, 1); // t = 70..120
    assert_eq!(svc.tick(&[v(0.0)], secs(10)).desired, 0); // t = 130: idle since 70 for 60 s
}

#[test]
fn idle_after_with_a_minimum_is_refused() {
    let err = EngineConfig::builder(1, 10)
        .check(target(0.5))
        .idle_after(secs(60))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "idle_after is only allowed when min_replicas = 0"
    );
}

// 5. Stabilization.

#[test]
fn the_first_evaluation_is_stabilized_against_current() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.5))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(6), &[v(0.1)]);
    assert_eq!((d.desired, d.reason.token), (6, Token::Stabilized));
}

#[test]
fn an_up_window_takes_the_minimum() {
    let up = ScalingRules::new(
        secs(30),
        Select::Max,
        vec![Rule::pods(100, secs(15)).unwrap()],
    )
    .unwrap();
    let config = EngineConfig::builder(1, 100)
        .check(target(1.0))
        .behavior(Behavior {
            scale_up: up,
            scale_down: ScalingRules::default_down(),
        })
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    // The initial (t0, 2) entry is inside the window: no scale-up at t0.
    assert_eq!(svc.tick(&[v(3.0)], secs(10)).desired, 2);
    assert_eq!(svc.tick(&[v(3.0)], secs(10)).desired, 2);
    assert_eq!(svc.tick(&[v(3.0)], secs(10)).desired, 2);
    // t = 30: the t0 entry is exactly at the cut-off, no longer newer: min of recommendations is 6.
    let d = svc.tick(&[v(3.0)], secs(10));
    assert_eq!((d.desired, d.reason.token), (6, Token::ScaleUp));
}

// 6. Rate rules and bounds.

#[test]
fn tie_at_max_is_reported_as_max_replicas() {
    // Up limit = 2 + 4 = 6 = max_replicas: the bound is max_replicas.
    let config = EngineConfig::builder(1, 6)
        .check(target(0.5))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(2), &[v(5.0)]);
    assert_eq!((d.desired, d.reason.token), (6, Token::MaxReplicas));
    let config = EngineConfig::builder(1, 7)
        .check(target(0.5))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(2), &[v(5.0)]);
    assert_eq!((d.desired, d.reason.token), (6, Token::RateLimited));
}

#[test]
fn tie_at_min_is_reported_as_min_replicas() {
    let down = |pods| {
        ScalingRules::new(
            secs(0),
            Select::Max,
            vec![Rule::pods(pods, secs(60)).unwrap()],
        )
        .unwrap()
    };
    let behavior = |pods| Behavior {
        scale_up: ScalingRules::default_up(),
        scale_down: down(pods),
    };
    let config = EngineConfig::builder(3, 10)
        .check(target(0.5))
        .behavior(behavior(5))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(8), &[v(0.01)]);
    assert_eq!((d.desired, d.reason.token), (3, Token::MinReplicas));
    let config = EngineConfig::builder(3, 10)
        .check(target(0.5))
        .behavior(behavior(4))
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(8), &[v(0.01)]);
    assert_eq!((d.desired, d.reason.token), (4, Token::RateLimited));
    assert!(matches!(d.reason.limited, Some((Limit::RateLimited, c)) if c.from == 1 && c.to == 4));
}

#[test]
fn a_disabled_direction_never_moves() {
    let disabled = ScalingRules::new(
        secs(0),
        Select::Disabled,
        vec![Rule::pods(4, secs(15)).unwrap()],
    )
    .unwrap();
    let config = EngineConfig::builder(1, 10)
        .check(target(0.5))
        .behavior(Behavior {
            scale_up: disabled,
            scale_down: ScalingRules::default_down(),
        })
        .build()
        .unwrap();
    let d = once(config, ReplicaStatus::all_ready(2), &[v(5.0)]);
    assert_eq!((d.desired, d.reason.token), (2, Token::RateLimited));
}

#[test]
fn empty_rules_are_refused() {
    assert!(ScalingRules::new(secs(0), Select::Max, vec![]).is_err());
}

// 7. Cooldown.

#[test]
fn cooldowns_are_per_direction_from_the_last_action_in_either() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.5))
        .behavior(no_windows())
        .cooldown_up(secs(30))
        .cooldown_down(secs(120))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 4);
    svc.state.record_scale(at(0), 3, 4);
    svc.now = at(20);
    let d = svc.tick(&[v(1.0)], secs(0));
    assert_eq!(d.reason.token, Token::Cooldown);
    assert_eq!(d.reason.cooldown.unwrap().remaining, secs(10));
    svc.now = at(30);
    assert_eq!(svc.tick(&[v(1.0)], secs(0)).desired, 8);
    // The scale-up at 30 starts the scale-down cooldown too.
    svc.now = at(149);
    assert_eq!(svc.tick(&[v(0.1)], secs(0)).reason.token, Token::Cooldown);
    svc.now = at(150);
    assert_eq!(svc.tick(&[v(0.1)], secs(0)).direction, Direction::Down);
}

#[test]
fn a_threshold_check_defaults_to_a_60s_cooldown() {
    // The config loader asks for the threshold default; the engine infers nothing from a policy's kind.
    let t = EngineConfig::builder(1, 10)
        .check(threshold(0.6, 0.3, Step::Count(1)))
        .default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN)
        .build()
        .unwrap();
    assert_eq!((t.cooldown_up(), t.cooldown_down()), (secs(60), secs(60)));
    let h = EngineConfig::builder(1, 10)
        .check(target(0.6))
        .build()
        .unwrap();
    assert_eq!((h.cooldown_up(), h.cooldown_down()), (secs(0), secs(0)));
}

#[test]
fn a_set_cooldown_wins_over_the_default_in_either_order() {
    let config = EngineConfig::builder(1, 10)
        .check(threshold(0.6, 0.3, Step::Count(1)))
        .cooldown_up(secs(5))
        .default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN)
        .build()
        .unwrap();
    assert_eq!(
        (config.cooldown_up(), config.cooldown_down()),
        (secs(5), secs(60))
    );
}

#[test]
fn a_policy_kind_changes_no_default() {
    let mut policy = MockPolicy::new();
    policy.expect_kind().return_const("threshold".to_owned());
    let config = EngineConfig::builder(1, 10)
        .check(Check::new("custom", Arc::new(policy)))
        .build()
        .unwrap();
    assert_eq!(
        (config.cooldown_up(), config.cooldown_down()),
        (secs(0), secs(0))
    );
}

// 8. Failure and fallback.

#[test]
fn fallback_static_and_if_higher() {
    let fb = |mode| {
        EngineConfig::builder(1, 10)
            .check(target(0.5))
            .fallback(Fallback::new(2, 4, mode).unwrap())
            .build()
            .unwrap()
    };
    for (mode, current, expected) in [
        (FallbackMode::Static, 7, 4),
        (FallbackMode::IfHigher, 7, 7),
        (FallbackMode::IfHigher, 2, 4),
    ] {
        let mut svc = Service::new(fb(mode), current);
        assert_eq!(svc.tick(&[FAIL], secs(10)).reason.token, Token::NoData);
        let d = svc.tick(&[FAIL], secs(10));
        assert_eq!(d.desired, expected, "{mode:?} from {current}");
    }
}

#[test]
fn fallback_passes_through_bounds_and_success_resets_the_counter() {
    let config = EngineConfig::builder(1, 5)
        .check(target(0.5))
        .fallback(Fallback::new(1, 9, FallbackMode::Static).unwrap())
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    let d = svc.tick(&[FAIL], secs(10));
    assert_eq!((d.desired, d.reason.token), (5, Token::Fallback));
    svc.tick(&[v(0.5)], secs(10));
    assert_eq!(svc.state.consecutive_failures, 0);
}

#[test]
fn every_failure_kind_counts() {
    let config = EngineConfig::builder(1, 5)
        .check(target(0.5))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    for kind in [
        FailureKind::Timeout,
        FailureKind::Empty,
        FailureKind::InvalidQuery,
    ] {
        svc.tick(&[Observation::Failed(kind)], secs(10));
    }
    assert_eq!(svc.state.consecutive_failures, 3);
}

// 9. Pause.

#[test]
fn pause_blocks_only_its_direction() {
    let config = |pause| {
        EngineConfig::builder(1, 10)
            .check(target(0.5))
            .behavior(no_windows())
            .pause(pause)
            .build()
            .unwrap()
    };
    let up = |p| once(config(p), ReplicaStatus::all_ready(4), &[v(1.0)]);
    let down = |p| once(config(p), ReplicaStatus::all_ready(4), &[v(0.1)]);
    assert_eq!(
        (up(Pause::Up).desired, up(Pause::Up).reason.token),
        (4, Token::Paused)
    );
    assert_eq!(down(Pause::Up).desired, 1);
    assert_eq!(
        (down(Pause::Down).desired, down(Pause::Down).reason.token),
        (4, Token::Paused)
    );
    assert_eq!(up(Pause::Down).desired, 8);
    assert_eq!(up(Pause::All).desired, 4);
    assert_eq!(down(Pause::All).desired, 4);
    // Pausing also holds an out-of-range service.
    let d = once(config(Pause::All), ReplicaStatus::all_ready(12), &[v(0.5)]);
    assert_eq!((d.desired, d.reason.token), (12, Token::Paused));
}

// State.

#[test]
fn state_round_trips_through_json_and_records_outside_changes() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.5))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    svc.run(&[v(1.0)], 3, secs(10));
    let json = serde_json::to_string(&svc.state).unwrap();
    let back: EngineState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, svc.state);

    let mut state = EngineState::default();
    assert_eq!(state.observe_replicas(at(0), 3), None);
    assert_eq!(state.observe_replicas(at(5), 3), None);
    assert_eq!(state.observe_replicas(at(9), 5), Some(3));
    assert_eq!(state.last_scale_at, Some(at(9)));
    assert_eq!(state.scale_events.back().unwrap().change, 2);
}
