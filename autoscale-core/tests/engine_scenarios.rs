//! Readable decision traces of the main scenarios, one line per tick: inputs, desired, reason.
//! Review a changed snapshot line by line: each line is a decision an operator would see.

mod common;

use autoscale_core::engine::{Fallback, FallbackMode, Rule, ScalingRules, Select};
use autoscale_core::policy::{Step, ThresholdPolicy};
use autoscale_core::{Behavior, EngineConfig};
use common::*;

#[test]
fn steady_load_stays_put() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.6))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 3);
    for x in [0.60, 0.62, 0.58, 0.65, 0.55, 0.61] {
        svc.tick(&[v(x)], secs(10));
    }
    insta::assert_snapshot!(svc.log);
}

#[test]
fn a_spike_scales_up_at_once_and_down_after_the_window() {
    let config = EngineConfig::builder(1, 20)
        .check(target(0.6))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    svc.run(&[v(0.6)], 2, secs(10));
    svc.run(&[v(2.4)], 3, secs(15));
    svc.run(&[v(0.3)], 24, secs(15));
    insta::assert_snapshot!(svc.log);
}

#[test]
fn a_slow_ramp_follows_the_load() {
    let config = EngineConfig::builder(1, 20)
        .check(target(0.6))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    for k in 0..20 {
        // Total load grows by 0.1 replica-worth per tick; the metric is per replica.
        let load = 1.2 + 0.1 * f64::from(k);
        let per_replica = load / f64::from(svc.replicas);
        svc.tick(&[v(per_replica)], secs(10));
    }
    insta::assert_snapshot!(svc.log);
}

#[test]
fn oscillation_around_the_target_is_damped_by_the_down_window() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.6))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 4);
    for k in 0..16 {
        let load = if k % 2 == 0 { 2.0 } else { 3.2 };
        let per_replica = load / f64::from(svc.replicas);
        svc.tick(&[v(per_replica)], secs(10));
    }
    insta::assert_snapshot!(svc.log);
}

#[test]
fn a_metric_outage_holds_then_falls_back() {
    let config = EngineConfig::builder(1, 10)
        .check(target(0.6))
        .fallback(Fallback::new(3, 6, FallbackMode::Static).unwrap())
        .build()
        .unwrap();
    let mut svc = Service::new(config, 3);
    svc.tick(&[v(0.3)], secs(10));
    svc.run(&[FAIL], 5, secs(10));
    svc.run(&[v(0.6)], 2, secs(10));
    insta::assert_snapshot!(svc.log);
}

#[test]
fn scale_to_zero_and_back() {
    let down = ScalingRules::new(
        secs(30),
        Select::Max,
        vec![Rule::percent(100, secs(15)).unwrap()],
    )
    .unwrap();
    let config = EngineConfig::builder(0, 10)
        .check(target(0.6).with_activation(0.05).unwrap())
        .behavior(Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: down,
        })
        .idle_after(secs(60))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    svc.run(&[v(0.0)], 12, secs(10));
    svc.run(&[v(0.04)], 2, secs(10));
    svc.run(&[v(0.9)], 3, secs(10));
    insta::assert_snapshot!(svc.log);
}

#[test]
fn a_burst_is_rate_limited() {
    let config = EngineConfig::builder(1, 50)
        .check(total(100.0))
        .build()
        .unwrap();
    let mut svc = Service::new(config, 2);
    svc.run(&[v(4000.0)], 8, secs(5));
    insta::assert_snapshot!(svc.log);
}

#[test]
fn threshold_steps_honour_the_cooldown() {
    let config = EngineConfig::builder(1, 10)
        .check(threshold(0.6, 0.3, Step::Count(1)))
        .default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN)
        .behavior(Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::new(
                secs(0),
                Select::Max,
                vec![Rule::percent(100, secs(15)).unwrap()],
            )
            .unwrap(),
        })
        .build()
        .unwrap();
    let mut svc = Service::new(config, 1);
    svc.run(&[v(0.9)], 9, secs(10));
    svc.run(&[v(0.1)], 9, secs(10));
    insta::assert_snapshot!(svc.log);
}
