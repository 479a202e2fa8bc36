//! Services from labels, with the built binary against the real dockerd's Swarm and a scripted Prometheus: a
//! `[[discover]]` section finds labelled services at start, follows a label changed while the daemon runs
//! (`autoscale.max` lowered: the service is scaled down to it), drops a service whose opt-in label is removed,
//! and reports a bad label in `/status` and `autoscale status` while the other services keep running.
//!
//! The section's resync is an hour: after the first listing, every change is found through the endpoint's
//! event stream (a service updated or relabelled), within the test's few seconds. The periodic resync is
//! `daemon_discovery.rs`'s, under the paused clock.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use autoscale_core::testing::require_service;
use support::compose::Prometheus;
use support::{free_port, status_json, wait_until};

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

struct Swarm {
    host: String,
    image: String,
    services: Vec<String>,
    daemon: Option<Child>,
}

impl Swarm {
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env_remove("DOCKER_CONTEXT")
            .output()
            .unwrap()
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create(&mut self, name: &str, replicas: u32, labels: &[&str]) {
        let replicas = replicas.to_string();
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            name,
            "--replicas",
            &replicas,
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
        ];
        for label in labels {
            args.extend_from_slice(&["--label", label]);
        }
        args.extend_from_slice(&[&self.image, "sh", "-c", IDLE]);
        self.docker_ok(&args);
        self.services.push(name.to_owned());
    }

    fn spec_replicas(&self, name: &str) -> u32 {
        self.docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
            name,
        ])
        .trim()
        .parse()
        .unwrap_or(0)
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        for name in &self.services {
            self.docker(&["service", "rm", name]);
        }
    }
}

fn found(status: &serde_json::Value) -> Vec<String> {
    status["discovery"][0]["found"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn rounds(status: &serde_json::Value, service: &str) -> Option<String> {
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["service"] == service)
        .and_then(|s| s["last_evaluation"]["at"].as_str().map(str::to_owned))
}

#[test]
fn labelled_swarm_services_are_found_followed_dropped_and_a_bad_label_reported() {
    let Some(host) = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine") else {
        return;
    };
    let Some(image) = require_service("AUTOSCALE_TEST_BUSYBOX_IMAGE", "the busybox test image")
    else {
        return;
    };
    if require_service("AUTOSCALE_TEST_SWARM", "a single-node Docker Swarm").is_none() {
        return;
    }
    let id = std::process::id();
    let (web, api, bad) = (
        format!("dl{id}web"),
        format!("dl{id}api"),
        format!("dl{id}bad"),
    );
    // This run's own selector: services of other tests on the same engine are not found.
    let selector = format!("autoscale.run={id}");
    let mut swarm = Swarm {
        host: host.clone(),
        image,
        services: Vec::new(),
        daemon: None,
    };
    swarm.create(&web, 3, &[&selector, "autoscale.max=5"]);
    swarm.create(&api, 1, &[&selector, "autoscale.min=1"]);
    swarm.create(&bad, 1, &[&selector, "autoscale.max=ten"]);

    // One replica's worth of load per replica: every service stays where it is until a label says otherwise.
    let prometheus = Prometheus::start(1.0);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "http://{prom}"

[daemon]
listen = "127.0.0.1:{port}"
state_dir = "{state}"

[[discover]]
kind = "swarm"
selector = "{selector}"
interval = "1s"
resync = "1h"
docker_host = "{host}"
cooldown_down = "0s"

[discover.check]
query = "load"
policy = {{ kind = "target", target = 1.0 }}
"#,
            prom = prometheus.addr,
            state = dir.path().join("state").display(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    swarm.daemon = Some(spawn_daemon(&config, &log));
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    // Found at start; the bad label is reported with its reason, the others run.
    wait_until("web and api found", Duration::from_secs(60), || {
        status_json(listen).is_some_and(|s| {
            let mut f = found(&s);
            f.sort();
            f == [api.clone(), web.clone()]
        })
    });
    let status = status_json(listen).unwrap();
    let skipped = &status["discovery"][0]["skipped"][0];
    assert_eq!(skipped["service"], bad.as_str(), "{status}");
    assert_eq!(
        skipped["reason"],
        format!("service {bad} (swarm label autoscale.max): \"ten\" is not a whole number"),
        "{status}"
    );
    assert_eq!(status["discovery"][0]["kind"], "swarm");
    let text = autoscale_status(listen);
    assert!(
        text.contains(&format!(
            "Skipped {bad} ({}): service {bad} (swarm label autoscale.max): \"ten\" is not a whole number",
            status["discovery"][0]["skipped"][0]["id"].as_str().unwrap()
        )),
        "{text}"
    );
    wait_until("api evaluated", Duration::from_secs(30), || {
        status_json(listen).is_some_and(|s| rounds(&s, &api).is_some())
    });

    // autoscale.max lowered while the daemon runs: web follows it down.
    swarm.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "autoscale.max=2",
        &web,
    ]);
    wait_until("web scaled to its new max", Duration::from_secs(60), || {
        swarm.spec_replicas(&web) == 2
    });
    let status = status_json(listen).unwrap();
    let web_report = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == web.as_str())
        .unwrap();
    assert_eq!(web_report["max_replicas"], 2, "{status}");

    // The opt-in label removed: web is no longer scaled; api keeps evaluating throughout.
    swarm.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-rm",
        "autoscale.run",
        &web,
    ]);
    wait_until("web dropped", Duration::from_secs(60), || {
        status_json(listen)
            .is_some_and(|s| found(&s) == [api.clone()] && rounds(&s, &web).is_none())
    });
    let before = rounds(&status_json(listen).unwrap(), &api);
    wait_until("api still evaluated", Duration::from_secs(30), || {
        status_json(listen).is_some_and(|s| rounds(&s, &api) != before)
    });
    assert!(
        dir.path()
            .join("state")
            .join(format!("{web}.state.json"))
            .exists(),
        "web's state is kept for its return"
    );

    // The bad label fixed: bad is found too.
    swarm.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "autoscale.max=3",
        &bad,
    ]);
    wait_until("bad found once fixed", Duration::from_secs(60), || {
        status_json(listen).is_some_and(|s| found(&s).contains(&bad))
    });
    let text = logs();
    assert_eq!(
        text.matches("\"ten\" is not a whole number").count(),
        1,
        "the bad label is logged once, not at every resync:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

fn spawn_daemon(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["run", "--config"])
        .arg(config)
        .env("LOG_LEVEL", "info")
        .env_remove("PROMETHEUS_URL")
        .env_remove("RUST_LOG")
        .env_remove("AUTOSCALE_LISTEN")
        .env_remove("STATE_DIR")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn autoscale_status(listen: SocketAddr) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["status", "--listen", &listen.to_string()])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
