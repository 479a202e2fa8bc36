//! `autoscale pause` and `autoscale resume` against the built binary running a real Compose service (busybox
//! containers on the real dockerd) with an in-process scripted Prometheus: the pause holds through a restart
//! (it is in the service's state), shows in `status` and `/metrics`, needs the admin token when one is set,
//! and `resume` lets the service scale again. `status --watch` redraws in place.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::compose::{Cleanup, Prometheus, env};
use support::{free_port, get, status_json, wait_until};

fn autoscale(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("AUTOSCALE_LISTEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn spawn_daemon(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["run", "--config"])
        .arg(config)
        .env("LOG_LEVEL", "info")
        .env_remove("PROMETHEUS_URL")
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the daemon exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the daemon did not stop within 30 s");
}

/// A POST without a body, with an optional bearer token: the status code.
fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn last_token(addr: SocketAddr) -> Option<String> {
    Some(
        status_json(addr)?["services"][0]["last_evaluation"]["token"]
            .as_str()?
            .to_owned(),
    )
}

/// The last evaluation's time, to wait for rounds after a moment.
fn last_at(addr: SocketAddr) -> Option<String> {
    Some(
        status_json(addr)?["services"][0]["last_evaluation"]["at"]
            .as_str()?
            .to_owned(),
    )
}

/// Wait for two more rounds than the one reported now.
fn two_more_rounds(addr: SocketAddr) {
    for _ in 0..2 {
        let now = last_at(addr);
        wait_until("a new round", Duration::from_secs(30), || {
            last_at(addr) != now
        });
    }
}

#[test]
fn a_pause_holds_through_a_restart_until_resume() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let prometheus = Prometheus::start(0.5);
    let project = format!("pause{}", std::process::id());
    let compose_file = dir.path().join("compose.yml");
    std::fs::write(
        &compose_file,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    \
             stop_signal: SIGKILL\n    network_mode: none\n",
            env.image
        ),
    )
    .unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.path().join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "http://{prom}"
timeout = "2s"

[daemon]
listen = "{listen}"
state_dir = "{state}"
admin_token_file = "{token}"

[[service]]
name = "web"
min_replicas = 1
max_replicas = 3
interval = "1s"
cooldown_up = "0s"
cooldown_down = "0s"

[service.scaler]
kind = "compose"
project = "{project}"
file = "{file}"
service = "web"
command = ["{compose}"]
docker_host = "{docker_host}"

[[service.check]]
name = "load"
query = "load"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
            prom = prometheus.addr,
            state = state_dir.display(),
            token = token_file.display(),
            file = compose_file.display(),
            compose = env.compose,
            docker_host = env.docker_host,
        ),
    )
    .unwrap();
    let mut cleanup = Cleanup {
        env,
        project,
        file: compose_file,
        children: Vec::new(),
    };
    let up = cleanup
        .compose(&["up", "-d", "--no-recreate", "--scale", "web=1"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    cleanup
        .children
        .push(spawn_daemon(&config, &dir.path().join("a.log")));
    wait_until("the first round", Duration::from_secs(30), || {
        last_token(listen).is_some()
    });

    // The admin endpoints want the token; `pause` reads it from the configuration's admin_token_file.
    assert_eq!(post(listen, "/pause/web", None), 401);
    assert_eq!(post(listen, "/pause/web", Some("wrong")), 401);
    assert_eq!(
        post(listen, "/pause/nosuch", Some("s3cret-admin-token")),
        404
    );
    let (ok, out) = autoscale(&["pause", "web", "--up"], &config);
    assert!(ok, "{out}");
    assert_eq!(out, "web: scaling up paused until `autoscale resume web`\n");

    // 4 replicas' worth of load (capped at 3): held at 1.
    prometheus.set(2.0);
    two_more_rounds(listen);
    assert_eq!(last_token(listen).as_deref(), Some("paused"));
    assert_eq!(cleanup.running(), 1);
    let status = status_json(listen).unwrap();
    assert_eq!(status["services"][0]["paused"]["by"], "operator");
    assert_eq!(status["services"][0]["paused"]["directions"], "up");
    let (_, metrics) = get(listen, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"autoscale_paused{service="web",by="operator"} 1"#),
        "{metrics}"
    );
    let (ok, table) = autoscale(&["status"], &config);
    assert!(ok, "{table}");
    assert!(
        table.contains("Paused:      scaling up (by `autoscale pause`)"),
        "{table}"
    );

    // A restart keeps the pause: it is in the state.
    let mut first = cleanup.children.remove(0);
    stop(&mut first);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("web.state.json")).unwrap())
            .unwrap();
    assert_eq!(state["pause"]["directions"], "up", "{state}");
    cleanup
        .children
        .push(spawn_daemon(&config, &dir.path().join("b.log")));
    wait_until(
        "the first round after the restart",
        Duration::from_secs(30),
        || last_token(listen).is_some(),
    );
    two_more_rounds(listen);
    assert_eq!(last_token(listen).as_deref(), Some("paused"));
    assert_eq!(cleanup.running(), 1);

    // `status --watch` redraws in place.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["status", "--watch", "--interval", "200ms", "--listen"])
        .arg(listen.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watch.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && String::from_utf8_lossy(&seen)
            .matches("\x1b[H\x1b[2J")
            .count()
            < 2
    {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.matches("\x1b[H\x1b[2J").count() >= 2, "{seen}");
    assert!(seen.contains("SERVICE"), "{seen}");

    // Resume: the service scales to what the load asks for.
    let (ok, out) = autoscale(&["resume", "web"], &config);
    assert!(ok, "{out}");
    assert_eq!(out, "web: autoscaling resumed\n");
    wait_until("the scale-up after resume", Duration::from_secs(60), || {
        cleanup.running() == 3
    });
    let results = || -> Vec<String> {
        std::fs::read_to_string(state_dir.join("history.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["result"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    // The containers run before the round that started them has written its history line.
    wait_until(
        "the scale-up in the history",
        Duration::from_secs(30),
        || results().iter().filter(|r| *r == "scaled").count() > 0,
    );
    let results = results();
    let paused = results.iter().position(|r| r == "paused").expect("paused");
    let resumed = results
        .iter()
        .position(|r| r == "resumed")
        .expect("resumed");
    let scaled = results.iter().rposition(|r| r == "scaled").expect("scaled");
    assert!(paused < resumed && resumed < scaled, "{results:?}");
    let logs = std::fs::read_to_string(dir.path().join("a.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("b.log")).unwrap();
    assert!(
        !logs.contains("s3cret-admin-token"),
        "the token is never logged"
    );
    assert!(logs.contains("service web resumed"), "{logs}");

    // Every container stopped by hand: left alone, shown as paused by hand, with a log line saying how to
    // resume; one started by hand resumes autoscaling.
    let ids = String::from_utf8(
        Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!(
                "label=com.docker.compose.project={}",
                cleanup.project
            ))
            .env("DOCKER_HOST", &cleanup.env.docker_host)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let stopped = Command::new("docker")
        .args(["stop", "-t", "1"])
        .args(&ids)
        .env("DOCKER_HOST", &cleanup.env.docker_host)
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let paused_by = || {
        status_json(listen)
            .and_then(|s| s["services"][0]["paused"]["by"].as_str().map(str::to_owned))
    };
    wait_until("the pause by hand", Duration::from_secs(30), || {
        paused_by().as_deref() == Some("zero_outside")
    });
    two_more_rounds(listen);
    assert_eq!(cleanup.running(), 0, "left alone at 0");
    let (_, metrics) = get(listen, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"autoscale_paused{service="web",by="zero_outside"} 1"#),
        "{metrics}"
    );
    let log = std::fs::read_to_string(dir.path().join("b.log")).unwrap();
    assert!(
        log.contains(
            "service web was taken to 0 replicas outside autoscale: leaving it alone (paused by hand). To \
             resume autoscaling, scale it above 0 or run `autoscale resume web`"
        ),
        "{log}"
    );
    let started = Command::new("docker")
        .args(["start", ids[0]])
        .env("DOCKER_HOST", &cleanup.env.docker_host)
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    wait_until("autoscaling to resume", Duration::from_secs(30), || {
        status_json(listen).is_some_and(|s| s["services"][0]["paused"].is_null())
    });
}
