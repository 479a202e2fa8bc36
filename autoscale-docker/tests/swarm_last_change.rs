//! A Swarm service scaled outside autoscale, then a control loop that starts with an empty state: the
//! change Swarm recorded (UpdatedAt, PreviousSpec) starts the cooldown, so the loop waits as the one that
//! made the change would have. Against the single-node Swarm of `scripts/services`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_core::controller::{CheckSource, ScaleResult, ServiceLoop};
use autoscale_core::engine::{Rule, ScalingRules, Select};
use autoscale_core::policy::{TargetForm, TargetPolicy};
use autoscale_core::testing::{ScriptedSource, require_service};
use autoscale_core::{Behavior, Check, EngineConfig, ReplicaStatus, Scaler, Timestamp, Token};
use autoscale_docker::{DockerCli, DockerEnv, SwarmScaler};

fn docker(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Service<'a> {
    host: &'a str,
    name: String,
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.name])
            .env("DOCKER_HOST", self.host)
            .output();
    }
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_loop_honours_the_cooldown_of_an_outside_docker_service_scale() {
    let Some(host) = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a Docker engine") else {
        return;
    };
    let Some(image) = require_service("AUTOSCALE_TEST_BUSYBOX_IMAGE", "the local busybox image")
    else {
        return;
    };
    if require_service("AUTOSCALE_TEST_SWARM", "a single-node Docker Swarm").is_none() {
        return;
    }
    let service = Service {
        host: &host,
        name: format!("aslc-{}", std::process::id()),
    };
    docker(
        &host,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &service.name,
            "--replicas",
            "1",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            &image,
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    let scaler = Arc::new(
        SwarmScaler::new(
            DockerCli::new()
                .env(DockerEnv::new().host(&host))
                .timeout(Duration::from_secs(30)),
            &service.name,
        )
        .unwrap(),
    );
    assert_eq!(
        scaler.read_last_change().await.unwrap(),
        None,
        "created only"
    );

    let before = now();
    docker(
        &host,
        &[
            "service",
            "scale",
            "--detach",
            &format!("{}=3", service.name),
        ],
    );
    let after = now();
    let change = scaler.last_change().await.unwrap().expect("a change");
    assert_eq!((change.from, change.to), (1, 3));
    // One clock on one host: the time Swarm stamped lies within the command.
    assert!(
        change.at >= before - Duration::from_secs(1) && change.at <= after + Duration::from_secs(1),
        "{} not within {before}..{after}",
        change.at
    );

    // A loop with an empty state that wants 1 replica (10 % of a 50 % target on 3), with a 60 s cooldown.
    let rules = |r: Rule| ScalingRules::new(Duration::ZERO, Select::Max, vec![r]).unwrap();
    let behavior = Behavior {
        scale_up: rules(Rule::percent(100, Duration::from_secs(15)).unwrap()),
        scale_down: rules(Rule::percent(100, Duration::from_secs(15)).unwrap()),
    };
    let check = Check::new(
        "cpu",
        Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
    );
    let mut svc = ServiceLoop::builder(
        "web",
        EngineConfig::builder(1, 10)
            .behavior(behavior)
            .cooldown_down(Duration::from_secs(60)),
        scaler.clone(),
    )
    .check(
        check,
        CheckSource::new(Arc::new(ScriptedSource::constant("cpu", 0.1)), "cpu"),
    )
    .build()
    .unwrap();
    let started = Instant::now();
    let round = svc.evaluate_once().await;
    let decision = round.decision.clone().expect("a decision");
    assert_eq!(decision.reason.token, Token::Cooldown, "{round:?}");
    assert_eq!(round.scale, ScaleResult::NotNeeded);
    let remaining = decision.reason.cooldown.expect("a cooldown").remaining;
    assert!(
        remaining > Duration::from_secs(50) && remaining <= Duration::from_secs(60),
        "{remaining:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The service kept the count the operator set.
    let status: ReplicaStatus = scaler.status().await.unwrap();
    assert_eq!(status.current, 3);
}
