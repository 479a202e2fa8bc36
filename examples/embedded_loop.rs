//! Embedding the control loop: autoscale a worker pool inside your own program, with your own metric
//! source, policy and scaler. Run: `cargo run -p autoscale-examples --example embedded_loop`
//!
//! The "service" here is a pool of workers draining a queue. The metric source reads the queue depth from
//! shared memory, a custom policy wants one worker per 25 queued jobs, and the scaler resizes the pool. The
//! engine adds everything else: stabilization, rate rules, bounds, cooldowns and failure handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use autoscale_core::controller::{CheckSource, ServiceLoop};
use autoscale_core::engine::{Rule, ScalingRules, Select};
use autoscale_core::policy::PolicyContext;
use autoscale_core::{
    Behavior, Check, EngineConfig, MetricSource, Policy, ReplicaStatus, Replicas, ScaleOutcome,
    Scaler, Timestamp,
};

/// The queue, shared with the producers and the workers.
#[derive(Debug, Default)]
struct Queue {
    depth: AtomicU64,
    workers: AtomicU32,
}

#[derive(Debug)]
struct QueueDepth(Arc<Queue>);

#[async_trait]
impl MetricSource for QueueDepth {
    async fn fetch(&self, _query: &str, _at: Timestamp) -> autoscale_core::Result<f64> {
        Ok(self.0.depth.load(Ordering::Relaxed) as f64)
    }
}

#[derive(Debug)]
struct JobsPerWorker(f64);

impl Policy for JobsPerWorker {
    fn kind(&self) -> &str {
        "jobs_per_worker"
    }
    fn recommend(&self, queued: f64, _: ReplicaStatus, _: &mut PolicyContext<'_>) -> Replicas {
        (queued / self.0).ceil() as Replicas
    }
}

#[derive(Debug)]
struct Pool(Arc<Queue>);

#[async_trait]
impl Scaler for Pool {
    async fn status(&self) -> autoscale_core::Result<ReplicaStatus> {
        Ok(ReplicaStatus::all_ready(
            self.0.workers.load(Ordering::Relaxed),
        ))
    }
    async fn scale(&self, workers: Replicas) -> autoscale_core::Result<ScaleOutcome> {
        let before = self.0.workers.swap(workers, Ordering::Relaxed);
        println!("    pool resized {before} -> {workers} workers");
        Ok(if before == workers {
            ScaleOutcome::Unchanged
        } else {
            ScaleOutcome::Scaled
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let queue = Arc::new(Queue {
        depth: AtomicU64::new(0),
        workers: AtomicU32::new(1),
    });
    // Quick reactions for a demo: no scale-down window, at most 4 workers added, and half removed, per 500 ms.
    let behavior = Behavior {
        scale_up: ScalingRules::new(
            Duration::ZERO,
            Select::Max,
            vec![Rule::pods(4, Duration::from_millis(500)).unwrap()],
        )
        .unwrap(),
        scale_down: ScalingRules::new(
            Duration::ZERO,
            Select::Max,
            vec![Rule::percent(50, Duration::from_millis(500)).unwrap()],
        )
        .unwrap(),
    };
    let config = EngineConfig::builder(1, 12).behavior(behavior);
    let mut service = ServiceLoop::builder("workers", config, Arc::new(Pool(Arc::clone(&queue))))
        .check(
            Check::new("queue", Arc::new(JobsPerWorker(25.0))),
            CheckSource::new(Arc::new(QueueDepth(Arc::clone(&queue))), "queue_depth"),
        )
        .interval(Duration::from_millis(600))
        .build()
        .expect("a valid engine config");

    // A burst of jobs arrives, then drains. Drive the loop round by round (`ServiceLoop::run` does the same
    // at its interval, until told to stop).
    for depth in [10, 400, 400, 400, 120, 30, 0, 0] {
        queue.depth.store(depth, Ordering::Relaxed);
        let round = service.evaluate_once().await;
        let decision = round.decision.expect("the status was read");
        println!(
            "queued={depth:>3}  workers {:>2} -> {:>2}  {}",
            decision.current, decision.desired, decision.reason
        );
        tokio::time::sleep(service.interval()).await;
    }
}
