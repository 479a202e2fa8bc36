//! Health that tells the truth, against the built binary: a real dockerd and Compose scaler, and a scripted
//! Prometheus on 127.0.0.1:0 that is late, slow or fine on demand.
//!
//! - `/readyz` follows the latest query result: it turns 200 when Prometheus first answers after
//!   `ready_timeout`.
//! - `/healthz` (and `autoscale healthcheck`) stays 200 while every query times out, since each such round
//!   completes.
//! - The preflight: without Compose (or without docker) one ERROR says what is missing and how to fix it,
//!   the daemon keeps running, `/readyz` names the service and why, and the failing scale calls back off,
//!   as `/status` shows.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autoscale_core::testing::require_service;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing;
use support::{free_port, get, wait_until};

/// The scripted Prometheus: `up` decides whether it answers at all (503 otherwise), `delay_ms` how long a
/// query takes.
#[derive(Clone, Default)]
struct Script {
    up: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

struct FakePrometheus {
    url: String,
    script: Script,
    _server: support::Server,
}

fn fake_prometheus(up: bool, delay: Duration) -> FakePrometheus {
    let script = Script::default();
    script.up.store(up, Ordering::SeqCst);
    script
        .delay_ms
        .store(delay.as_millis() as u64, Ordering::SeqCst);
    let ready = {
        let script = script.clone();
        move || async move {
            if script.up.load(Ordering::SeqCst) {
                (StatusCode::OK, "Prometheus Server is Ready.\n")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
            }
        }
    };
    let query = {
        let script = script.clone();
        move || async move {
            if !script.up.load(Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
            }
            let delay = Duration::from_millis(script.delay_ms.load(Ordering::SeqCst));
            tokio::time::sleep(delay).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{now},"0"]}}]}}}}"#
            );
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    let app = Router::new()
        .route("/-/ready", routing::get(ready))
        .route("/api/v1/query", routing::get(query.clone()).post(query));
    let server = support::serve(app);
    FakePrometheus {
        url: format!("http://{}", server.addr),
        script,
        _server: server,
    }
}

/// The daemon, stopped with SIGTERM whatever happens.
struct Daemon {
    child: Child,
    listen: SocketAddr,
    log: std::path::PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(self.listen, path).unwrap_or((0, String::new()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The docker host, or `None` (skipping loudly, failing in CI) without one.
fn docker_host() -> Option<String> {
    require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine")
}

/// Start the daemon on a compose service of a project no test shares (nothing of it runs): `min` replicas,
/// a check against `prometheus`, with `prometheus_keys` added to `[prometheus]`, and `path` as `PATH`.
fn start(
    dir: &Path,
    docker_host: &str,
    prometheus: &str,
    prometheus_keys: &str,
    min: u32,
    path: Option<&std::ffi::OsStr>,
) -> Daemon {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let compose = dir.join("compose.yml");
    std::fs::write(
        &compose,
        "version: \"2.4\"\nservices:\n  idle:\n    image: local/busybox:1\n    command: [\"sleep\", \"3600\"]\n",
    )
    .unwrap();
    let project = format!(
        "health{}{}",
        std::process::id(),
        dir.file_name().unwrap().to_string_lossy().to_lowercase()
    )
    .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let config = dir.join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "{prometheus}"
{prometheus_keys}

[daemon]
listen = "{listen}"
state_dir = "{state}"

[[service]]
name = "idle"
min_replicas = {min}
max_replicas = 2
interval = "1s"

[service.scaler]
kind = "compose"
project = "{project}"
file = "{file}"
docker_host = "{docker_host}"

[[service.check]]
name = "load"
query = "load"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
            state = dir.join("state").display(),
            file = compose.display(),
        ),
    )
    .unwrap();
    let log = dir.join("daemon.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_autoscale"));
    command
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("PROMETHEUS_URL")
        .env("LOG_LEVEL", "info")
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let child = command.spawn().unwrap();
    let daemon = Daemon { child, listen, log };
    wait_until("the daemon listens", Duration::from_secs(20), || {
        get(listen, "/healthz").is_ok()
    });
    daemon
}

#[test]
fn readyz_turns_ready_when_prometheus_first_answers_after_ready_timeout() {
    let Some(docker_host) = docker_host() else {
        return;
    };
    let prometheus = fake_prometheus(false, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(
        dir.path(),
        &docker_host,
        &prometheus.url,
        r#"ready_timeout = "1s""#,
        0,
        None,
    );
    wait_until(
        "the readiness wait gives up",
        Duration::from_secs(20),
        || daemon.log().contains("Prometheus is not ready"),
    );
    assert_eq!(daemon.get("/readyz").0, 503);

    prometheus.script.up.store(true, Ordering::SeqCst);
    wait_until(
        "/readyz following Prometheus's recovery",
        Duration::from_secs(20),
        || daemon.get("/readyz").0 == 200,
    );
    // And back: readiness follows the latest result both ways, and says which query went unanswered.
    prometheus.script.up.store(false, Ordering::SeqCst);
    wait_until(
        "/readyz following Prometheus's outage",
        Duration::from_secs(20),
        || daemon.get("/readyz").0 == 503,
    );
    let (_, body) = daemon.get("/readyz");
    assert_eq!(
        body,
        "not ready: service idle: Prometheus did not answer the latest query of check load (unavailable)\n"
    );
    assert_eq!(daemon.get("/healthz").0, 200, "{}", daemon.log());
}

#[test]
fn a_slow_prometheus_keeps_the_daemon_healthy() {
    let Some(docker_host) = docker_host() else {
        return;
    };
    // Every query outlasts its 4 s timeout: more than 3 intervals of 1 s.
    let prometheus = fake_prometheus(true, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(
        dir.path(),
        &docker_host,
        &prometheus.url,
        r#"timeout = "4s""#,
        0,
        None,
    );
    let start = Instant::now();
    let mut probes = 0;
    while start.elapsed() < Duration::from_secs(14) {
        let (code, body) = daemon.get("/healthz");
        assert_eq!(
            code,
            200,
            "after {:?}: {body}\n{}",
            start.elapsed(),
            daemon.log()
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(probes > 20);
    let healthcheck = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["healthcheck", "--listen", &daemon.listen.to_string()])
        .output()
        .unwrap();
    assert!(
        healthcheck.status.success(),
        "{}",
        String::from_utf8_lossy(&healthcheck.stderr)
    );
    // Rounds did complete, each ending in a metric timeout, and readiness says so.
    let log = daemon.log();
    assert!(log.contains("metric query failed"), "{log}");
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("check load (timeout)"), "{body}");
}

/// A directory for `PATH` holding only the given programs (symlinks to the real ones).
fn path_with(dir: &Path, programs: &[&str]) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in programs {
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} is not in PATH"));
        std::os::unix::fs::symlink(real, bin.join(program)).unwrap();
    }
    bin.into_os_string()
}

fn preflight_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("ERROR") && l.contains("cannot scale"))
        .collect()
}

#[test]
fn without_compose_the_preflight_says_how_to_fix_it_and_scale_calls_back_off() {
    let Some(docker_host) = docker_host() else {
        return;
    };
    let prometheus = fake_prometheus(true, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    // docker, but neither the compose plugin (absent here) nor docker-compose: an image without Compose.
    let path = path_with(dir.path(), &["docker"]);
    if Command::new(Path::new(&path).join("docker"))
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "\n########## SKIPPED: the docker compose plugin is installed. This test did NOT run. ##########\n"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run without the plugin"
        );
        return;
    }
    // One replica wanted, none running: every round decides to scale, and every scale call fails.
    let mut daemon = start(
        dir.path(),
        &docker_host,
        &prometheus.url,
        "",
        1,
        Some(&path),
    );
    wait_until("the preflight error", Duration::from_secs(20), || {
        !preflight_errors(&daemon.log()).is_empty()
    });
    wait_until(
        "a scale backoff in /status",
        Duration::from_secs(30),
        || {
            let (_, body) = daemon.get("/status");
            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|s| {
                s["services"][0]["scale_backoff"]["consecutive_failures"]
                    .as_u64()
                    .is_some_and(|n| n >= 4)
            })
        },
    );
    let (_, status) = daemon.get("/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let backoff = &status["services"][0]["scale_backoff"];
    assert!(backoff["next_retry"].is_string(), "{status:#}");
    assert_eq!(
        status["services"][0]["last_evaluation"]["current"], 0,
        "{status:#}"
    );

    let log = daemon.log();
    let errors = preflight_errors(&log);
    assert_eq!(errors.len(), 1, "{log}");
    for needle in [
        "service idle cannot scale: no Docker Compose found",
        "to fix: install the docker-compose package or the docker compose v2 plugin",
    ] {
        assert!(errors[0].contains(needle), "{needle:?} in {}", errors[0]);
    }
    // Scale calls were spaced out: rounds in between backed off instead of calling.
    let (_, metrics) = daemon.get("/metrics");
    let counter = |outcome: &str| {
        let series =
            format!(r#"autoscale_evaluations_total{{service="idle",outcome="{outcome}"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(counter("backing_off") >= 1, "{metrics}");
    assert!(counter("scale_failed") >= 4, "{metrics}");

    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("not ready: service idle: scale calls failing:")
            && body.contains("no Docker Compose found"),
        "{body}"
    );
    assert_eq!(daemon.get("/healthz").0, 200, "liveness is not readiness");
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon keeps running"
    );
}

#[test]
fn without_docker_the_preflight_names_the_missing_program_and_status_reads_still_work() {
    let Some(docker_host) = docker_host() else {
        return;
    };
    let prometheus = fake_prometheus(true, Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let path = path_with(dir.path(), &[]);
    let mut daemon = start(
        dir.path(),
        &docker_host,
        &prometheus.url,
        "",
        1,
        Some(&path),
    );
    wait_until("the preflight error", Duration::from_secs(20), || {
        !preflight_errors(&daemon.log()).is_empty()
    });
    // Status reads go to the Engine API, which needs no docker CLI: the rounds go on, only scaling fails.
    wait_until("a status read", Duration::from_secs(20), || {
        let (_, body) = daemon.get("/status");
        serde_json::from_str::<serde_json::Value>(&body)
            .is_ok_and(|s| s["services"][0]["last_evaluation"]["current"] == 0)
    });
    let log = daemon.log();
    let errors = preflight_errors(&log);
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("no Docker Compose found")
            && errors[0].contains("could not start `docker")
            && errors[0].contains("to fix: install"),
        "{}",
        errors[0]
    );
    assert!(!log.contains("status read failed"), "{log}");
    assert_eq!(daemon.get("/healthz").0, 200, "liveness is not readiness");
    assert!(daemon.child.try_wait().unwrap().is_none());
}
