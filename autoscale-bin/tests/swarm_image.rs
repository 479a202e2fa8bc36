//! The Swarm-only image, `local/autoscale-swarm:dev` (scripts/build-images): the `autoscale` binary alone, with
//! no docker CLI and no Compose. It must read and scale a real Swarm service over the Engine API through the
//! mounted socket, and stay under 20 MB.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use autoscale_core::testing::require_service;

const IMAGE: &str = "local/autoscale-swarm:dev";
const GOAL_BYTES: u64 = 20_000_000;
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn docker(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("running docker")
}

fn docker_ok(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the service whatever happens.
struct Service<'a> {
    host: &'a str,
    name: String,
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = docker(self.host, &["service", "rm", &self.name]);
    }
}

#[test]
fn the_swarm_only_image_scales_a_swarm_service_without_the_docker_cli() {
    let Some(host) = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine") else {
        return;
    };
    let Some(_) = require_service("AUTOSCALE_TEST_SWARM", "a Swarm manager") else {
        return;
    };
    let Some(prometheus) = require_service("AUTOSCALE_TEST_PROMETHEUS_URL", "a real Prometheus")
    else {
        return;
    };
    let Some(busybox) = require_service("AUTOSCALE_TEST_BUSYBOX_IMAGE", "the local busybox image")
    else {
        return;
    };
    let Some(socket) = host.strip_prefix("unix://") else {
        panic!("AUTOSCALE_TEST_DOCKER_HOST={host}: the container needs a unix socket to mount");
    };
    if !support::require_image(&host, IMAGE) {
        return;
    }
    let size: u64 = docker_ok(&host, &["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .unwrap();
    eprintln!("{IMAGE}: {size} bytes");
    assert!(
        size < GOAL_BYTES,
        "{IMAGE} is {size} bytes, over the {GOAL_BYTES}-byte goal"
    );
    // Nothing but autoscale: the image has no docker CLI to fall back on.
    let cli = docker(
        &host,
        &["run", "--rm", "--entrypoint", "docker", IMAGE, "version"],
    );
    assert!(!cli.status.success(), "{IMAGE} runs a docker CLI");

    let service = Service {
        host: &host,
        name: format!("swimg{}", std::process::id()),
    };
    docker_ok(
        &host,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &service.name,
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            &busybox,
            "sh",
            "-c",
            IDLE,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // A constant demand of 3 against a target of 1 per replica: 3 replicas.
    std::fs::write(
        dir.path().join("autoscale.toml"),
        format!(
            r#"[prometheus]
url = "{prometheus}"

[[service]]
name = "web"
max_replicas = 5
scaler = {{ kind = "swarm", service = "{name}" }}
check = [{{ name = "demand", query = "vector(3)", policy = {{ kind = "target", target = 1, per = "total" }} }}]
"#,
            name = service.name
        ),
    )
    .unwrap();
    let config = format!("{}:/etc/autoscale:ro", dir.path().display());
    let mount = format!("{socket}:/var/run/docker.sock");
    let out = docker(
        &host,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "--user",
            "0:0",
            "-v",
            &mount,
            "-v",
            &config,
            IMAGE,
            "once",
            "--config",
            "/etc/autoscale/autoscale.toml",
            "--apply",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "autoscale once --apply in {IMAGE} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replicas = docker_ok(
            &host,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.Mode.Replicated.Replicas}}",
                &service.name,
            ],
        );
        if replicas == "3" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service has {replicas} replicas, not 3\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
