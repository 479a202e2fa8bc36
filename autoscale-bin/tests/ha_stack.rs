//! The deployment file, docker/autoscale-ha-stack.yml, on the 3-manager Swarm of `scripts/multinode`:
//! `scripts/ha-soak deploy` loads `local/autoscale-swarm:dev` into the three nodes, runs `docker stack deploy`
//! with a scripted Prometheus, and fails unless the two replicas (on two managers, host network, each node's
//! socket mounted) agree on one leader within 90 s and that leader scales a Swarm service to the demand. It
//! always removes the stack and its services.

mod support;

use std::path::Path;
use std::process::Command;

use autoscale_core::testing::require_service;

const IMAGE: &str = "local/autoscale-swarm:dev";

#[test]
fn the_ha_stack_deploys_on_the_managers_and_its_one_leader_scales() {
    let Some(_) = require_service(
        "AUTOSCALE_TEST_MULTINODE_HOSTS",
        "the 3-manager Swarm test bed",
    ) else {
        return;
    };
    let Some(host) = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine") else {
        return;
    };
    if !support::require_image(&host, IMAGE) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(root.join("scripts/ha-soak"))
        .arg("deploy")
        .env("AUTOSCALE_SOAK_DIR", out_dir.path())
        .env("AUTOSCALE_IMAGE", IMAGE)
        .output()
        .expect("running scripts/ha-soak deploy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "scripts/ha-soak deploy failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("deploy: OK (one leader among 2 replicas"),
        "{stdout}"
    );
}
