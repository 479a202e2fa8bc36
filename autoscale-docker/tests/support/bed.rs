//! The 3-manager Swarm of `scripts/multinode` (`AUTOSCALE_TEST_MULTINODE_*`), for the tests that run on it.
//! Each test file uses only some of it.
#![allow(dead_code)]

use std::process::{Command, Output};

use autoscale_core::testing::require_service;

pub struct Bed {
    /// The managers' DOCKER_HOST addresses, node 1 first.
    pub hosts: Vec<String>,
    /// `scripts/multinode`.
    pub script: String,
    /// An image every node has.
    pub image: String,
}

/// The test bed, or `None` after a loud skip (a failure in CI).
pub fn bed() -> Option<Bed> {
    let hosts = require_service(
        "AUTOSCALE_TEST_MULTINODE_HOSTS",
        "the 3-manager Swarm test bed",
    )?;
    let script = require_service("AUTOSCALE_TEST_MULTINODE_SCRIPT", "scripts/multinode")?;
    let image = require_service(
        "AUTOSCALE_TEST_MULTINODE_IMAGE",
        "an image on every node of the bed",
    )?;
    let hosts: Vec<String> = hosts.split_whitespace().map(str::to_owned).collect();
    assert_eq!(hosts.len(), 3, "three managers: {hosts:?}");
    Some(Bed {
        hosts,
        script,
        image,
    })
}

impl Bed {
    /// The host of node `n` (1-based).
    pub fn host(&self, n: usize) -> &str {
        &self.hosts[n - 1]
    }

    /// Run docker against node `n`, as the test's own setup and checks.
    pub fn docker(&self, n: usize, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host(n))
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("the docker CLI runs")
    }

    pub fn docker_ok(&self, n: usize, args: &[&str]) -> String {
        let out = self.docker(n, args);
        assert!(
            out.status.success(),
            "docker {args:?} on node {n} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `scripts/multinode ACTION [N]`.
    pub fn run(&self, args: &[&str]) {
        let out = Command::new(&self.script)
            .args(args)
            .output()
            .expect("scripts/multinode runs");
        assert!(
            out.status.success(),
            "scripts/multinode {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Brings every node back (start, heal, wait until the swarm sees three ready nodes) on drop.
pub struct Restore<'a>(pub &'a Bed);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = Command::new(&self.0.script).arg("up").output();
    }
}
