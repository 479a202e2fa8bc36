//! The built daemon against a real Compose service with a one-minute interval: a container stopped by hand,
//! and a scale made by hand, show in `/status` (and the history) within a second, through the Docker event
//! stream, long before the next round could explain them.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::compose::{Cleanup, Prometheus, env};
use support::{free_port, status_json, wait_until};

/// Poll `/status` every 10 ms until `want` holds of the one service; how long that took after `since`.
fn seen(
    addr: SocketAddr,
    since: Instant,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let deadline = since + Duration::from_secs(5);
    loop {
        if let Some(status) = status_json(addr)
            && want(&status["services"][0])
        {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 5 s: {:?}",
            status_json(addr)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn report(what: &str, latency: Duration) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "MEASURED {what}: {:.0} ms",
        latency.as_secs_f64() * 1000.0
    );
}

#[test]
fn changes_made_by_hand_show_in_status_within_a_second() {
    let Some(env) = env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(0.5);
    let project = format!("outev{}", std::process::id());
    let compose_file = dir.path().join("compose.yml");
    // Containers that exit at once on SIGTERM, so that `docker stop` returns quickly.
    std::fs::write(
        &compose_file,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {}\n    command: [\"sh\", \"-c\", \"trap 'exit 0' \
             TERM; while true; do sleep 0.2; done\"]\n    network_mode: none\n",
            env.image
        ),
    )
    .unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.path().join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "http://{prom}"

[daemon]
listen = "{listen}"
state_dir = "{state}"

[[service]]
name = "web"
min_replicas = 1
max_replicas = 5
interval = "60s"
cooldown_down = "5m"

[service.scaler]
kind = "compose"
project = "{project}"
file = "{file}"
command = ["{compose}"]
docker_host = "{docker_host}"

[[service.check]]
name = "load"
query = "load"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
            prom = prometheus.addr,
            state = dir.path().join("state").display(),
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
    cleanup.scale_outside(2);
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    cleanup.children.push(
        Command::new(env!("CARGO_BIN_EXE_autoscale"))
            .args(["run", "--config"])
            .arg(&config)
            .env("LOG_LEVEL", "info")
            .env_remove("PROMETHEUS_URL")
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    wait_until("the first round", Duration::from_secs(30), || {
        status_json(listen).is_some_and(|s| s["services"][0]["last_evaluation"].is_object())
    });
    let first_round = status_json(listen).unwrap()["services"][0]["last_evaluation"]["at"].clone();
    // The daemon's event stream is open once its loop runs; give it a moment to connect.
    std::thread::sleep(Duration::from_secs(1));

    // A container stopped by hand.
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", cleanup.project),
        ])
        .env("DOCKER_HOST", &cleanup.env.docker_host)
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
    let victim = ids.split_whitespace().next().expect("a running container");
    let since = Instant::now();
    let stopped = Command::new("docker")
        .args(["stop", "-t", "5", victim])
        .env("DOCKER_HOST", &cleanup.env.docker_host)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(stopped.success());
    let returned = Instant::now();
    let latency = seen(listen, returned, "ready 1 after docker stop", |s| {
        s["ready"] == 1
    });
    report("daemon: docker stop (returned) -> /status ready 1", latency);
    report(
        "daemon: docker stop (started) -> /status ready 1",
        returned.duration_since(since) + latency,
    );
    assert!(
        latency < Duration::from_secs(1),
        "{latency:?}\n{}",
        daemon_log()
    );

    // Scaled to 4 by hand: the change is in /status and the history at once, recorded as a scaling action.
    let since = Instant::now();
    cleanup.scale_outside(4);
    let returned = Instant::now();
    let latency = seen(
        listen,
        returned,
        "current 4 after compose up --scale",
        |s| {
            s["current"] == 4
                && s["history"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|e| e["result"] == "outside" && e["to"] == 4))
        },
    );
    report(
        "daemon: compose up --scale (returned) -> /status current 4",
        latency,
    );
    report(
        "daemon: compose up --scale (started) -> /status current 4",
        returned.duration_since(since) + latency,
    );
    assert!(
        latency < Duration::from_secs(1),
        "{latency:?}\n{}",
        daemon_log()
    );
    let status = status_json(listen).unwrap();
    assert_eq!(
        status["services"][0]["last_evaluation"]["at"], first_round,
        "no round explains it"
    );
    // The scale-down cooldown (5 min) counts from the change just seen.
    let down = status["services"][0]["cooldown_remaining_s"]["down"]
        .as_f64()
        .unwrap();
    assert!(down > 290.0, "{status:#}");
    assert!(
        daemon_log().contains("replica count changed outside autoscale"),
        "{}",
        daemon_log()
    );
}
