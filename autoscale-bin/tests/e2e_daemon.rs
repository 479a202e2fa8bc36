//! End to end, with real parts: the real Prometheus, the real dockerd and docker-compose, the demo webapp in
//! containers (host network), and the built `autoscale` binary. A load step drives the webapp's utilization
//! above target; the service must scale up, and back down once the load stops, within bounded time.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoscale_core::testing::require_service;
use support::{free_port, get, status_json, wait_until};

const IMAGE: &str = "local/autoscale-webapp:dev";
const PORTS: (u16, u16) = (19111, 19130);

struct Env {
    prometheus: String,
    docker_host: String,
    compose: String,
}

fn env() -> Option<Env> {
    Some(Env {
        prometheus: require_service("AUTOSCALE_TEST_PROMETHEUS_URL", "a real Prometheus")?,
        docker_host: require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine")?,
        compose: require_service("AUTOSCALE_TEST_COMPOSE", "docker-compose")?,
    })
}

/// Tears the compose project down and stops the daemon whatever happens.
struct Cleanup {
    compose: String,
    docker_host: String,
    project: String,
    file: std::path::PathBuf,
    daemon: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        let _ = Command::new(&self.compose)
            .args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .args(["down", "-t", "1"])
            .env("DOCKER_HOST", &self.docker_host)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn current_replicas(addr: SocketAddr) -> Option<u64> {
    status_json(addr)?["services"][0]["current"].as_u64()
}

/// Sends `rps` requests per second, spread over the webapp replicas that answer, until `stop`.
fn load(rps: u64, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let interval = Duration::from_secs_f64(1.0 / rps as f64);
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut port = PORTS.0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            port = if port >= PORTS.1 { PORTS.0 } else { port + 1 };
            let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
                continue;
            };
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(stream, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink);
            });
            sent.fetch_add(1, Ordering::Relaxed);
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    })
}

fn write_files(dir: &Path, env: &Env, project: &str, listen: SocketAddr) -> std::path::PathBuf {
    let compose = dir.join("compose.yml");
    std::fs::write(
        &compose,
        format!(
            r#"version: "2.4"
services:
  webapp:
    image: {IMAGE}
    network_mode: host
    environment:
      WEBAPP_PORTS: "{}-{}"
      WEBAPP_CAPACITY_RPS: "10"
    stop_grace_period: 2s
"#,
            PORTS.0, PORTS.1
        ),
    )
    .unwrap();
    let config = dir.join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "{prom}"
timeout = "3s"

[daemon]
listen = "{listen}"
state_dir = "{state}"

[[service]]
name = "webapp"
min_replicas = 1
max_replicas = 4
interval = "2s"

[service.scaler]
kind = "compose"
project = "{project}"
file = "{file}"
command = ["{compose_cmd}"]
docker_host = "{docker_host}"

[[service.check]]
name = "utilization"
query = 'sum(rate(webapp_requests_total{{job="webapp"}}[10s])) / sum(webapp_capacity_rps{{job="webapp"}})'
policy = {{ kind = "target", target = 0.6, per = "replica" }}
on_empty = "zero"

[service.behavior.scale_down]
stabilization_window = "20s"
"#,
            prom = env.prometheus,
            state = dir.join("state").display(),
            file = compose.display(),
            compose_cmd = env.compose,
            docker_host = env.docker_host,
        ),
    )
    .unwrap();
    config
}

#[test]
fn the_daemon_scales_a_real_compose_service_up_under_load_and_back_down() {
    let Some(env) = env() else { return };
    if !support::require_image(&env.docker_host, IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = format!("e2e{}", std::process::id());
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = write_files(dir.path(), &env, &project, listen);
    let mut cleanup = Cleanup {
        compose: env.compose.clone(),
        docker_host: env.docker_host.clone(),
        project: project.clone(),
        file: dir.path().join("compose.yml"),
        daemon: None,
    };
    let up = Command::new(&env.compose)
        .args(["-p", &project, "-f"])
        .arg(&cleanup.file)
        .args(["up", "-d", "--scale", "webapp=1"])
        .env("DOCKER_HOST", &env.docker_host)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    cleanup.daemon = Some(
        Command::new(env!("CARGO_BIN_EXE_autoscale"))
            .args(["run", "--config"])
            .arg(&config)
            .env("LOG_LEVEL", "debug")
            .env_remove("PROMETHEUS_URL")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    wait_until(
        "the daemon's first evaluation",
        Duration::from_secs(60),
        || current_replicas(listen) == Some(1),
    );

    // The load step: 30 rps against 10 rps per replica at a 0.6 target wants ceil(3 / 0.6) = 5, capped at 4.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let step = Instant::now();
    let step_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let loader = load(30, Arc::clone(&stop), Arc::clone(&sent));
    let reaction = wait_until("a scale-up under load", Duration::from_secs(90), || {
        current_replicas(listen).is_some_and(|n| n >= 3)
    });
    eprintln!(
        "scale-up observed {reaction:?} after the load step ({} requests sent)",
        sent.load(Ordering::Relaxed)
    );

    let (code, metrics) = get(listen, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            r#"autoscale_scale_actions_total{service="webapp",direction="up",result="scaled"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoscale_check_value{service="webapp",check="utilization"}"#),
        "{metrics}"
    );
    // The compose status reads went to the Engine API: the container lists are counted per endpoint.
    let containers = metrics
        .lines()
        .find(|l| {
            l.starts_with("autoscale_docker_api_requests_total{")
                && l.contains(&format!(r#"endpoint="{}""#, env.docker_host))
                && l.contains(r#"kind="containers""#)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no container-list count for {}: {metrics}", env.docker_host));
    assert!(containers > 0, "{metrics}");
    let status = status_json(listen).unwrap();
    let history = status["services"][0]["history"].as_array().unwrap().clone();
    let first_up = history
        .iter()
        .find(|e| e["result"] == "scaled")
        .expect("a scaled entry in the history");
    let reaction_ms = first_up["at_ms"].as_i64().unwrap() - step_ms;
    eprintln!("first scale action {reaction_ms} ms after the load step: {first_up}");
    assert_eq!(get(listen, "/healthz").unwrap().0, 200);
    assert_eq!(get(listen, "/readyz").unwrap().0, 200);
    // The container HEALTHCHECK and the Grafana-free view.
    let autoscale = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autoscale"))
            .args(args)
            .args(["--listen", &listen.to_string()])
            .output()
            .unwrap()
    };
    let health = autoscale(&["healthcheck"]);
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let table = autoscale(&["status"]);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with("SERVICE") && table.contains("webapp"),
        "{table}"
    );

    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    let calm = wait_until(
        "the scale-down after the load",
        Duration::from_secs(120),
        || current_replicas(listen) == Some(1),
    );
    eprintln!(
        "back to 1 replica {calm:?} after the load stopped (total {:?})",
        step.elapsed()
    );
    let log = daemon_log();
    for message in [
        "Prometheus is ready",
        "ABOVE scale-up threshold",
        "Successfully scaled to",
        "BELOW scale-down threshold",
    ] {
        assert!(
            log.contains(message),
            "the daemon log lacks {message:?}:\n{log}"
        );
    }

    // SIGTERM: a clean exit with code 0 and the state persisted; then the health check fails.
    let mut child = cleanup.daemon.take().unwrap();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}:\n{}", daemon_log());
    assert!(
        !autoscale(&["healthcheck"]).status.success(),
        "healthcheck must fail with the daemon gone"
    );
    let state = std::fs::read_to_string(dir.path().join("state/webapp.state.json")).unwrap();
    assert!(state.contains("scale_events"), "{state}");
}
