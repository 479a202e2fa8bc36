//! Nanoseconds per engine evaluation: `target` with the default behavior after a 5-minute history at 10 s
//! ticks (a full scale-down window of recommendations), and `threshold`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::policy::{Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::{
    Check, Engine, EngineConfig, EngineState, Observation, Policy, ReplicaStatus, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};

const TICK_S: i64 = 10;

/// An engine and the state it has after five minutes of 10 s ticks of a gently varying load.
fn warmed_up(
    policy: Arc<dyn Policy>,
    cooldown: Duration,
) -> (Engine, EngineState, ReplicaStatus, i64) {
    let engine = Engine::new(
        EngineConfig::builder(1, 50)
            .check(Check::new("m", policy))
            .default_cooldown(cooldown)
            .build()
            .expect("valid config"),
    );
    let mut state = EngineState::default();
    let mut replicas = 4;
    let ticks = 300 / TICK_S;
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

fn bench(c: &mut Criterion, name: &str, policy: Arc<dyn Policy>, cooldown: Duration, value: f64) {
    let (engine, state, status, ticks) = warmed_up(policy, cooldown);
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
    );
    let threshold = ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).expect("valid threshold");
    let cooldown = ThresholdPolicy::DEFAULT_COOLDOWN;
    bench(c, "evaluate/threshold", Arc::new(threshold), cooldown, 0.75);
}

criterion_group!(benches, engine);
criterion_main!(benches);
