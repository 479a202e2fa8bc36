//! A custom policy driving the engine: one replica per 50 queued jobs, and never fewer than the deepest queue
//! of the last five minutes needed, which it reads from its check's history. The engine adds stabilization,
//! rate rules, bounds and cooldowns, and keeps the history in its state.
//! Run: `cargo run -p autoscale-examples --example custom_policy`
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::MIN_RESOLUTION;
use autoscale_core::policy::PolicyContext;
use autoscale_core::{
    Check, Engine, EngineConfig, EngineState, Policy, ReplicaStatus, Replicas, Timestamp,
};

/// How far back the policy looks.
const MEMORY: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct QueueDepth(f64);

impl Policy for QueueDepth {
    fn kind(&self) -> &str {
        "queue_depth"
    }
    fn recommend(
        &self,
        queued: f64,
        _: ReplicaStatus,
        context: &mut PolicyContext<'_>,
    ) -> Replicas {
        let now = context.now();
        let history = context.history_mut();
        history.record(now, queued, MIN_RESOLUTION, MEMORY);
        let deepest = history
            .between(now - MEMORY, now, MIN_RESOLUTION)
            .map(|bucket| bucket.max)
            .fold(queued, f64::max);
        (deepest / self.0).ceil() as Replicas
    }
}

fn main() {
    let check = Check::new("queue", Arc::new(QueueDepth(50.0)));
    let engine = Engine::new(
        EngineConfig::builder(1, 20)
            .check(check)
            .build()
            .expect("valid"),
    );
    let (mut state, mut replicas) = (EngineState::default(), 1);
    for (tick, queued) in [40.0, 900.0, 900.0, 900.0, 120.0, 0.0]
        .into_iter()
        .enumerate()
    {
        let now = Timestamp::from_secs(tick as i64 * 15);
        let status = ReplicaStatus::all_ready(replicas);
        let (decision, next) = engine.evaluate(state, status, &[queued.into()], now);
        println!(
            "t={now} queued={queued:>5} {replicas:>2} -> {:>2}  {}",
            decision.desired, decision.reason
        );
        state = next;
        state.record_scale(now, replicas, decision.desired);
        replicas = decision.desired;
    }
}
