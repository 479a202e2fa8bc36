//! The Swarm scaler on a real 3-manager Swarm whose nodes are separate dockerds (`scripts/multinode`, see
//! `AUTOSCALE_TEST_MULTINODE_*`): status when tasks spread over nodes, scaling through each manager, and a
//! node lost while a control loop runs.
//!
//! The tests crash and restart nodes, so they run one at a time (a lock), and each restores the bed when it
//! ends, failed or not (drop guards).

#[path = "support/bed.rs"]
mod bed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_core::controller::{CheckSource, ScaleResult, ServiceLoop};
use autoscale_core::engine::{Behavior, ScalingRules, Select};
use autoscale_core::policy::{TargetForm, TargetPolicy};
use autoscale_core::testing::ScriptedSource;
use autoscale_core::{Check, EngineConfig, ReplicaStatus, ScaleOutcome, Scaler};
use autoscale_docker::{DockerCli, DockerEnv, SwarmScaler};
use bed::{Bed, Restore, bed};

/// A container command that exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// One test at a time: they crash nodes of the one bed.
static BED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Bed {
    fn cli(&self, n: usize) -> DockerCli {
        DockerCli::new()
            .env(DockerEnv::new().host(self.host(n)))
            .timeout(Duration::from_secs(20))
    }

    fn scaler(&self, n: usize, service: &str) -> SwarmScaler {
        SwarmScaler::new(self.cli(n), service).unwrap()
    }

    /// The nodes (hostnames) of the service's tasks that are meant to run and do, as node 1 sees them.
    fn running_nodes(&self, service: &str) -> Vec<String> {
        let out = self.docker_ok(
            1,
            &[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.CurrentState}}",
                service,
            ],
        );
        let mut nodes: Vec<String> = out
            .lines()
            .filter(|l| l.contains(" Running"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        nodes.sort();
        nodes
    }
}

/// A Swarm service created through node 1; removed on drop.
struct Service<'a> {
    bed: &'a Bed,
    name: String,
}

impl<'a> Service<'a> {
    fn create(bed: &'a Bed, name: &str, replicas: u32) -> Self {
        let service = Service {
            bed,
            name: format!("asmn-{name}-{}", std::process::id()),
        };
        let replicas = replicas.to_string();
        bed.docker_ok(
            1,
            &[
                "service",
                "create",
                "--detach",
                "--quiet",
                "--no-resolve-image",
                "--name",
                &service.name,
                "--replicas",
                &replicas,
                "--network",
                "host",
                "--stop-grace-period",
                "1s",
                &bed.image,
                "sh",
                "-c",
                IDLE,
            ],
        );
        service
    }
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        self.bed.docker(1, &["service", "rm", &self.name]);
    }
}

/// Poll `scaler` until its status is `want` (a bounded wait for tasks to converge).
async fn wait_for(scaler: &dyn Scaler, want: ReplicaStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = scaler.status().await;
        if status.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the status never became {want:?}; last {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_over_three_nodes_are_counted_once_from_every_manager() {
    let Some(bed) = bed() else {
        return;
    };
    let _one = BED.lock().await;
    let _restore = Restore(&bed);
    let service = Service::create(&bed, "spread", 6);
    for n in 1..=3 {
        wait_for(&bed.scaler(n, &service.name), ReplicaStatus::all_ready(6)).await;
    }
    let nodes = bed.running_nodes(&service.name);
    let mut distinct = nodes.clone();
    distinct.dedup();
    assert_eq!(nodes.len(), 6, "{nodes:?}");
    assert_eq!(
        distinct.len(),
        3,
        "the tasks spread over every node: {nodes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_works_through_each_manager() {
    let Some(bed) = bed() else {
        return;
    };
    let _one = BED.lock().await;
    let _restore = Restore(&bed);
    let service = Service::create(&bed, "each", 1);
    let scalers: Vec<SwarmScaler> = (1..=3).map(|n| bed.scaler(n, &service.name)).collect();
    wait_for(&scalers[0], ReplicaStatus::all_ready(1)).await;
    for (through, target) in [(0, 4), (1, 7), (2, 2), (1, 3)] {
        assert_eq!(
            scalers[through].scale(target).await.unwrap(),
            ScaleOutcome::Scaled,
            "scale to {target} through node {}",
            through + 1
        );
        // Every manager reads the new spec, and the tasks follow on every node.
        for scaler in &scalers {
            wait_for(scaler, ReplicaStatus::all_ready(target)).await;
        }
        assert_eq!(
            scalers[(through + 1) % 3].scale(target).await.unwrap(),
            ScaleOutcome::Unchanged
        );
    }
    let spec = bed.docker_ok(
        3,
        &[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
            &service.name,
        ],
    );
    assert_eq!(spec.trim(), "3");
}

/// A node crashes under a service at steady load: its tasks drop out of `ready` while the spec's count
/// holds, Swarm reschedules them, and a control loop that scales down without delay does not scale down
/// because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_tasks_leave_ready_and_the_loop_holds_the_count() {
    let Some(bed) = bed() else {
        return;
    };
    let _one = BED.lock().await;
    let _restore = Restore(&bed);
    let service = Service::create(&bed, "crash", 6);
    let scaler = Arc::new(bed.scaler(1, &service.name));
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(6)).await;
    let on_3 = bed
        .running_nodes(&service.name)
        .iter()
        .filter(|n| n.ends_with("n3"))
        .count();
    assert!(on_3 > 0, "node 3 runs some of the tasks");

    // Steady load: each replica at 85 % of the target, which needs all 6 (ceil(0.85 * 6) = 6). The value
    // stays there while the node is lost, as a per-replica average scraped over a window does for a while.
    // Scale-down has no stabilization window and no cooldown, so any scale-down decided would happen.
    let down = ScalingRules::new(
        Duration::ZERO,
        Select::Max,
        vec![autoscale_core::engine::Rule::percent(100, Duration::from_secs(15)).unwrap()],
    )
    .unwrap();
    let behavior = Behavior {
        scale_up: ScalingRules::default_up(),
        scale_down: down,
    };
    let check = Check::new(
        "load",
        Arc::new(TargetPolicy::new(1.0, TargetForm::PerReplica).unwrap()),
    );
    let mut service_loop = ServiceLoop::builder(
        "crash",
        EngineConfig::builder(1, 10).behavior(behavior),
        scaler.clone(),
    )
    .check(
        check,
        CheckSource::new(Arc::new(ScriptedSource::constant("load", 0.85)), "load"),
    )
    .build()
    .unwrap();

    let round = service_loop.evaluate_once().await;
    assert_eq!(round.decision.as_ref().map(|d| d.desired), Some(6));

    bed.run(&["crash", "3"]);
    let crashed = Instant::now();
    let mut lowest_ready = 6;
    let mut back_at = None;
    while crashed.elapsed() < Duration::from_secs(45) {
        let round = service_loop.evaluate_once().await;
        let status = round.status.clone().expect("node 1 answers");
        assert_eq!(status.current, 6, "the spec's count holds: {round:?}");
        lowest_ready = lowest_ready.min(status.ready);
        let decision = round.decision.as_ref().expect("a decision");
        assert!(
            decision.desired >= 6 && round.scale == ScaleResult::NotNeeded,
            "no scale-down because of the lost node: {round:?}"
        );
        if lowest_ready < 6 && status.ready == 6 {
            back_at = Some(crashed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        lowest_ready <= 6 - on_3 as u32,
        "the crashed node's tasks left ready (lowest {lowest_ready})"
    );
    let back_at = back_at.expect("Swarm rescheduled the lost tasks within 45 s");
    eprintln!(
        "node 3 crashed: ready fell to {lowest_ready} and was back at 6 after {:.1} s",
        back_at.as_secs_f64()
    );
    let nodes = bed.running_nodes(&service.name);
    assert!(
        nodes.iter().all(|n| !n.ends_with("n3")),
        "rescheduled on the live nodes: {nodes:?}"
    );
}
