//! Nanoseconds per engine evaluation: `target` with the default behavior after a 5-minute history at 10 s
//! ticks (a full scale-down window of recommendations), `threshold`, and `predictive` with a full season (a
//! day and a bit of 10 s ticks: 1,441 one-minute buckets and running statistics) and its dead-band.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::Behavior;
use autoscale_core::policy::{PredictivePolicy, Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::{
    Check, Engine, EngineConfig, EngineState, Observation, Policy, ReplicaStatus, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};

const TICK_S: i64 = 10;

/// An engine and the state it has after `seconds` of 10 s ticks of a gently varying load.
fn warmed_up(
    policy: Arc<dyn Policy>,
    cooldown: Duration,
    behavior: Behavior,
    seconds: i64,
) -> (Engine, EngineState, ReplicaStatus, i64) {
    let engine = Engine::new(
        EngineConfig::builder(1, 50)
            .check(Check::new("m", policy))
            .default_cooldown(cooldown)
            .behavior(behavior)
            .build()
            .expect("valid config"),
    );
    let mut state = EngineState::default();
    let mut replicas = 4;
    let ticks = seconds / TICK_S;
    for k in 0..ticks {
        let value = 0.6 + 0.3 * ((k as f64) / 3.0).sin();
        let now = Timestamp::from_secs(k * TICK_S);
        let (decision, next) = engine.evaluate(
            state,
            ReplicaStatus::all_ready(replicas),
            &[Observation::Value(value)],
            now,
        );
        state = next;
        state.record_scale(now, replicas, decision.desired);
        replicas = decision.desired;
    }
    (engine, state, ReplicaStatus::all_ready(replicas), ticks)
}

fn bench(
    c: &mut Criterion,
    name: &str,
    policy: Arc<dyn Policy>,
    cooldown: Duration,
    value: f64,
    (behavior, seconds): (Behavior, i64),
) {
    let (engine, state, status, ticks) = warmed_up(policy, cooldown, behavior, seconds);
    let now = Timestamp::from_secs(ticks * TICK_S);
    let observations = [Observation::Value(value)];
    c.bench_function(name, |b| {
        b.iter_batched_ref(
            || state.clone(),
            |s| {
                let (decision, next) = engine.evaluate(
                    std::mem::take(s),
                    black_box(status),
                    black_box(&observations),
                    black_box(now),
                );
                *s = next;
                decision
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

fn engine(c: &mut Criterion) {
    let target = TargetPolicy::new(0.6, TargetForm::PerReplica).expect("valid target");
    bench(
        c,
        "evaluate/target_default_behavior_5min_history",
        Arc::new(target),
        Duration::ZERO,
        0.95,
        (Behavior::default(), 300),
    );
    let threshold = ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).expect("valid threshold");
    let cooldown = ThresholdPolicy::DEFAULT_COOLDOWN;
    let hpa = (Behavior::default(), 300);
    bench(
        c,
        "evaluate/threshold",
        Arc::new(threshold),
        cooldown,
        0.75,
        hpa,
    );
    let predictive = PredictivePolicy::new(0.85, TargetForm::PerReplica, Duration::from_secs(10))
        .expect("valid predictive");
    bench_running(c, "evaluate/predictive_full_season", Arc::new(predictive));
}

/// One decision after another on the same state, each 10 s after the last, as a running daemon or the
/// simulator makes them: the season of history stays the size it is (the oldest minute goes as a new one
/// comes) and stays in cache, so this is the cost of the decision itself. (Cloning a fresh copy of a season
/// per iteration, as `bench` does, would time the cache misses of the copy instead.)
fn bench_running(c: &mut Criterion, name: &str, policy: Arc<dyn Policy>) {
    let season = 86_400 + 3_600;
    let (engine, mut state, status, mut tick) =
        warmed_up(policy, Duration::ZERO, Behavior::predictive(), season);
    c.bench_function(name, |b| {
        b.iter(|| {
            tick += 1;
            let value = 0.6 + 0.3 * ((tick as f64) / 3.0).sin();
            let (decision, next) = engine.evaluate(
                std::mem::take(&mut state),
                black_box(status),
                black_box(&[Observation::Value(value)]),
                black_box(Timestamp::from_secs(tick * TICK_S)),
            );
            state = next;
            decision
        });
    });
    let buckets = state.checks[0].buckets.len();
    assert!(
        buckets > 1_400,
        "a full season of history: {buckets} buckets"
    );
}

criterion_group!(benches, engine);
criterion_main!(benches);
