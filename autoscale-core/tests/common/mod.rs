//! A small driver for engine tests: runs a service tick by tick, applying every decision as a scaler would,
//! and prints one readable line per tick.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::policy::{Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::{
    Check, Decision, Engine, EngineConfig, EngineState, FailureKind, Observation, ReplicaStatus,
    Replicas, Timestamp,
};

pub fn target(target: f64) -> Check {
    Check::new(
        "util",
        Arc::new(TargetPolicy::new(target, TargetForm::PerReplica).unwrap()),
    )
}

pub fn total(target: f64) -> Check {
    Check::new(
        "rps",
        Arc::new(TargetPolicy::new(target, TargetForm::Total).unwrap()),
    )
}

pub fn threshold(up: f64, down: f64, step: Step) -> Check {
    Check::new(
        "latency",
        Arc::new(ThresholdPolicy::new(up, down, step).unwrap()),
    )
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(s: i64) -> Timestamp {
    Timestamp::from_secs(s)
}

pub const FAIL: Observation = Observation::Failed(FailureKind::Unavailable);

pub fn v(x: f64) -> Observation {
    Observation::Value(x)
}

/// A service under test: the engine, its state, and the replica count it runs.
pub struct Service {
    pub engine: Engine,
    pub state: EngineState,
    pub replicas: Replicas,
    /// Replicas that are not ready yet (the test sets it; each applied scale-up adds its new replicas here
    /// only when `startup_ticks` > 0).
    pub unready: Replicas,
    pub now: Timestamp,
    pub log: String,
}

impl Service {
    pub fn new(config: EngineConfig, replicas: Replicas) -> Self {
        Service {
            engine: Engine::new(config),
            state: EngineState::default(),
            replicas,
            unready: 0,
            now: at(0),
            log: String::new(),
        }
    }

    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            current: self.replicas,
            ready: self.replicas.saturating_sub(self.unready),
        }
    }

    /// Evaluate at the current time, apply the decision, log a line, then advance the clock by `dt`.
    pub fn tick(&mut self, observations: &[Observation], dt: Duration) -> Decision {
        let status = self.status();
        let (decision, state) = self.engine.evaluate(
            std::mem::take(&mut self.state),
            status,
            observations,
            self.now,
        );
        self.state = state;
        let obs: Vec<String> = observations
            .iter()
            .map(|o| match o {
                Observation::Value(x) => format!("{x:.2}"),
                Observation::Failed(kind) => format!("failed({kind})"),
            })
            .collect();
        writeln!(
            self.log,
            "t={:>4}s in=[{}] current={} ready={} -> desired={} | {}",
            self.now.as_millis() / 1000,
            obs.join(","),
            status.current,
            status.ready,
            decision.desired,
            decision.reason
        )
        .unwrap();
        if decision.desired != self.replicas {
            self.state
                .record_scale(self.now, self.replicas, decision.desired);
            self.replicas = decision.desired;
        }
        self.now = self.now + dt;
        decision
    }

    /// Run the same observation for `n` ticks.
    pub fn run(&mut self, observations: &[Observation], n: usize, dt: Duration) -> Decision {
        let mut last = None;
        for _ in 0..n {
            last = Some(self.tick(observations, dt));
        }
        last.expect("n > 0")
    }
}
