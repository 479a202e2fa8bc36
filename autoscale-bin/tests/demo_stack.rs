//! The demo stack of docker-compose.yml, whole, on the test dockerd, from the images scripts/build-images makes
//! out of the host's binaries (no registry): Prometheus, the webapp, the load generator and the autoscaler, each
//! in its own container. The autoscaler scales the webapp from inside its container, with the Compose that
//! build-images put into its image, through the mounted docker socket, configured by the webapp's labels
//! alone (a `[[discover]]` section finds it). A short load pattern must take the webapp to at least 3
//! replicas and back to 1; the stack goes down whatever happens.
//!
//! The test dockerd has no bridge networking (scripts/services), so an override puts every container on the
//! host network, on loopback ports of their own, with 1 s scrapes and short intervals and cooldowns. The
//! stack is the demo file merged with that override by `docker-compose config` (without its `build:`
//! sections: the images are built already), and the autoscaler scales with that same merged file, which the
//! webapp's Compose labels name by its host path (mounted at that path in the autoscaler's container).
//!
//! The images are built when missing; after changing the code, `scripts/build-images` rebuilds them
//! (scripts/test always does).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use autoscale_core::testing::require_service;
use support::{free_port, status_json, wait_until};

/// The webapp replicas' ports (each binds the first free one), apart from e2e_daemon's 19111-19130.
const WEBAPP_PORTS: (u16, u16) = (19141, 19160);

struct Stack {
    compose: String,
    docker_host: String,
    project: String,
    file: PathBuf,
}

impl Stack {
    fn compose(&self) -> Command {
        let mut command = Command::new(&self.compose);
        command
            .args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .env("DOCKER_HOST", &self.docker_host);
        command
    }

    fn logs(&self, service: &str) -> String {
        self.compose()
            .args(["logs", "--no-color", service])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The running containers of `service`, as docker sees them.
    fn running(&self, service: &str) -> usize {
        let out = Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.project))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .env("DOCKER_HOST", &self.docker_host)
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).lines().count(),
            _ => 0,
        }
    }
}

/// Down, whatever happens; on a failure, first the logs that say why.
impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for service in ["autoscale", "loadgen", "prometheus"] {
                let logs = self.logs(service);
                let tail: Vec<_> = logs.lines().rev().take(60).collect();
                eprintln!("---- {service} (last lines) ----");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = self
            .compose()
            .args(["down", "-v", "-t", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The merged stack without its `build:` and `ports:` sections. The images exist, and inside the autoscaler's
/// container the build contexts (host paths) do not, which Compose v1 refuses; on the host network, where the
/// override puts every service, published ports mean nothing and Compose v1 refuses them too.
fn without_build_and_ports(config: &str) -> String {
    let mut out = String::new();
    let mut skip_deeper_than = None;
    for line in config.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(level) = skip_deeper_than {
            // PyYAML writes a list at its key's indentation ("ports:\n    - ...").
            let item = indent == level && line.trim_start().starts_with("- ");
            if indent > level || item || line.trim().is_empty() {
                continue;
            }
            skip_deeper_than = None;
        }
        if matches!(line.trim_start(), "build:" | "ports:") {
            skip_deeper_than = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Host networking, loopback ports, 1 s scrapes: the test dockerd has no bridge network.
fn write_override(dir: &Path, prom_port: u16, autoscale_port: u16) -> PathBuf {
    let (lo, hi) = WEBAPP_PORTS;
    let targets: Vec<String> = (lo..=hi).map(|p| format!("'127.0.0.1:{p}'")).collect();
    let prometheus = dir.join("prometheus.yml");
    std::fs::write(
        &prometheus,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n\
             \x20 - job_name: webapp\n    static_configs:\n      - targets: [{}]\n\
             \x20 - job_name: autoscale\n    static_configs:\n      - targets: ['127.0.0.1:{autoscale_port}']\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    let file = dir.join("override.yml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  prometheus:
    network_mode: host
    command:
      - --config.file=/etc/prometheus/prometheus.yml
      - --storage.tsdb.path=/prometheus
      - --web.listen-address=127.0.0.1:{prom_port}
    volumes:
      - {prometheus}:/etc/prometheus/prometheus.yml:ro
  webapp:
    network_mode: host
    environment:
      WEBAPP_PORTS: "{lo}-{hi}"
      WEBAPP_DRAIN_TIMEOUT: 1s
    stop_grace_period: 3s
    labels:
      autoscale.query: 'sum(rate(webapp_requests_total{{job="webapp"}}[5s])) / sum(webapp_capacity_rps{{job="webapp"}})'
  loadgen:
    network_mode: host
    environment:
      LOAD_PORTS: "{lo}-{hi}"
  autoscale:
    network_mode: host
    volumes:
      - {stack}:/docker-compose.yml:ro
      - {dir}:{dir}:ro
    environment:
      PROMETHEUS_URL: http://127.0.0.1:{prom_port}
      AUTOSCALE_LISTEN: 127.0.0.1:{autoscale_port}
      METRIC_QUERY: 'sum(rate(webapp_requests_total{{job="webapp"}}[5s])) / sum(webapp_capacity_rps{{job="webapp"}})'
"#,
            prometheus = prometheus.display(),
            stack = dir.join("stack.yml").display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    file
}

#[test]
fn the_demo_stack_scales_its_webapp_from_the_autoscaler_container() {
    let Some(docker_host) = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine")
    else {
        return;
    };
    let Some(compose) = require_service("AUTOSCALE_TEST_COMPOSE", "docker-compose") else {
        return;
    };
    let Some(socket) = docker_host.strip_prefix("unix://") else {
        panic!(
            "AUTOSCALE_TEST_DOCKER_HOST={docker_host}: the autoscaler container needs a unix socket to mount"
        );
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let started = Instant::now();
    check(
        "scripts/build-images --if-missing",
        Command::new(root.join("scripts/build-images"))
            .arg("--if-missing")
            .env("DOCKER_HOST", &docker_host)
            .output(),
    );
    let images = started.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let project = format!("demo{}", std::process::id());
    let (prom_port, autoscale_port) = (free_port(), free_port());
    let override_file = write_override(dir.path(), prom_port, autoscale_port);
    // The demo's own settings, shortened: a 60 rps surge against 10 rps per replica from 10 s to 60 s.
    let settings = [
        ("COMPOSE_PROJECT_NAME", project.as_str()),
        ("DOCKER_SOCKET", socket),
        ("PROMETHEUS_PORT", &prom_port.to_string()),
        ("AUTOSCALE_PORT", &autoscale_port.to_string()),
        ("WEBAPP_CAPACITY_RPS", "10"),
        ("LOAD_PATTERN", "0s:2,10s:60,60s:2"),
        ("LOAD_DURATION", "300s"),
        ("LOAD_REPEAT", "1"),
        ("MAX_REPLICAS", "4"),
        ("CHECK_INTERVAL", "2s"),
        ("COOLDOWN", "6s"),
        ("LOG_LEVEL", "debug"),
        // Where the demo mounts its project directory in the autoscaler's container.
        ("PWD", root.to_str().unwrap()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let merged = check(
        "docker-compose config",
        Command::new(&compose)
            .args(["-p", &project, "-f"])
            .arg(root.join("docker-compose.yml"))
            .arg("-f")
            .arg(&override_file)
            .arg("config")
            .envs(settings.iter().cloned())
            .env("DOCKER_HOST", &docker_host)
            .output(),
    );
    let stack_file = dir.path().join("stack.yml");
    std::fs::write(
        &stack_file,
        without_build_and_ports(&String::from_utf8_lossy(&merged.stdout)),
    )
    .unwrap();
    let stack = Stack {
        compose,
        docker_host,
        project,
        file: stack_file,
    };
    check(
        "docker-compose up",
        stack.compose().args(["up", "-d", "--no-build"]).output(),
    );
    let up = started.elapsed();

    // The autoscaler answers from its container, and sees the one replica.
    let listen = SocketAddr::from(([127, 0, 0, 1], autoscale_port));
    assert_eq!(
        stack.running("autoscale"),
        1,
        "the autoscaler runs in a container"
    );
    wait_until(
        "the autoscaler's first evaluation",
        Duration::from_secs(60),
        || status_json(listen).is_some_and(|s| s["services"][0]["current"].as_u64() == Some(1)),
    );
    // Found through its labels: the one service is the webapp of this project, with its labelled bounds.
    let status = status_json(listen).expect("the autoscaler's /status");
    let webapp = format!("{}-webapp", stack.project);
    assert_eq!(status["discovery"][0]["kind"], "compose", "{status}");
    assert_eq!(
        status["discovery"][0]["found"][0],
        webapp.as_str(),
        "{status}"
    );
    assert_eq!(
        status["services"][0]["service"],
        webapp.as_str(),
        "{status}"
    );
    assert_eq!(status["services"][0]["max_replicas"], 4, "{status}");

    let surge = wait_until(
        "webapp at 3 replicas or more",
        Duration::from_secs(120),
        || stack.running("webapp") >= 3,
    );
    let calm = wait_until("webapp back at 1 replica", Duration::from_secs(150), || {
        stack.running("webapp") == 1
    });

    let logs = stack.logs("autoscale");
    assert!(!logs.contains("no Docker Compose found"), "{logs}");
    let status = status_json(listen).expect("the autoscaler's /status");
    let history = status["services"][0]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        history.iter().any(|e| e["result"] == "scaled"),
        "the scaling shows in the history: {status}"
    );
    eprintln!(
        "demo stack: images {images:?}, up after {up:?}, >= 3 replicas {surge:?} later, \
         back to 1 {calm:?} after that; {:?} in all",
        started.elapsed()
    );
}

#[test]
fn without_build_and_ports_drops_those_sections_only() {
    let config = "services:\n  a:\n    build:\n      context: /x\n      target: a\n    image: a\n    ports:\n    - 127.0.0.1:9090:9090/tcp\n    user: 0:0\n  b:\n    image: b\n    build:\n      context: /y\nvolumes:\n  v: {}\n";
    assert_eq!(
        without_build_and_ports(config),
        "services:\n  a:\n    image: a\n    user: 0:0\n  b:\n    image: b\nvolumes:\n  v: {}\n"
    );
}
