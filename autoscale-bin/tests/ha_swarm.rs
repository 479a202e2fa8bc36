//! High availability end to end, on the 3-manager Swarm of `scripts/multinode`, with the built binary and a
//! scripted Prometheus: a daemon on manager 2 leads and scales; a second daemon starts on manager 3 with an
//! empty state and follows; a's node crashes; b takes over within 30 s, keeps the cooldown of a's action
//! (read from Swarm when it started), then scales on. Then b's node is cut off from the other managers: b stops leading within the
//! renew deadline and a leads again, never both at once.

#[path = "../../autoscale-docker/tests/support/bed.rs"]
mod bed;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bed::{Bed, bed};
use support::compose::Prometheus;
use support::{free_port, get, status_json, wait_until};

impl Bed {
    fn spec_replicas(&self, service: &str) -> u32 {
        self.docker_ok(
            1,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.Mode.Replicated.Replicas}}",
                service,
            ],
        )
        .trim()
        .parse()
        .unwrap()
    }
}

/// Kills the daemons, restores the bed and removes the services, whatever happens.
struct Cleanup<'a> {
    bed: &'a Bed,
    services: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(&self.bed.script).arg("up").output();
        for service in &self.services {
            let _ = Command::new("docker")
                .args(["service", "rm", service])
                .env("DOCKER_HOST", &self.bed.hosts[0])
                .output();
        }
    }
}

fn daemon(dir: &Path, name: &str, docker_host: &str, config: &str) -> (Child, SocketAddr) {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = dir.join(format!("{name}.toml"));
    let state = dir.join(format!("{name}-state"));
    std::fs::write(
        &path,
        config
            .replace("@LISTEN@", &listen.to_string())
            .replace("@STATE@", &state.display().to_string()),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["run", "--config"])
        .arg(&path)
        .env("DOCKER_HOST", docker_host)
        .env("LOG_LEVEL", "info")
        .env_remove("PROMETHEUS_URL")
        .env_remove("RUST_LOG")
        .env_remove("DOCKER_CONTEXT")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (child, listen)
}

fn leader(addr: SocketAddr) -> Option<bool> {
    status_json(addr)?["leadership"]["leader"].as_bool()
}

fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = get(addr, "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_crashed_leader_is_replaced_and_its_cooldown_holds() {
    let Some(bed) = bed() else { return };
    let pid = std::process::id();
    let service = format!("asmn-ha-{pid}");
    let lock = format!("asmn-ha-lock-{pid}");
    let mut cleanup = Cleanup {
        bed: &bed,
        services: vec![service.clone(), lock.clone()],
        children: Vec::new(),
    };
    bed.docker_ok(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--name",
            &service,
            "--replicas",
            "1",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            &bed.image,
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ],
    );
    // Demand of 4 replicas (a total of 4 against a target of 1 each), then of 6.
    let prometheus = Prometheus::start(4.0);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[prometheus]
url = "http://{prom}"
timeout = "2s"

[daemon]
listen = "@LISTEN@"
state_dir = "@STATE@"
ha = {{ kind = "swarm", lock_service = "{lock}" }}

[[service]]
name = "web"
min_replicas = 1
max_replicas = 8
interval = "1s"
cooldown_up = "45s"

[service.scaler]
kind = "swarm"
service = "{service}"

[[service.check]]
name = "load"
query = "load"
policy = {{ kind = "target", target = 1.0, per = "total" }}
"#,
        prom = prometheus.addr,
    );

    let (a, a_addr) = daemon(dir.path(), "a", &bed.hosts[1], &config);
    cleanup.children.push(a);
    wait_until("daemon a leads", Duration::from_secs(20), || {
        leader(a_addr) == Some(true)
    });
    assert_eq!(metric(a_addr, "autoscale_leader"), Some(1.0));
    wait_until("a scales to 4", Duration::from_secs(20), || {
        bed.spec_replicas(&service) == 4
    });
    let scaled = Instant::now();

    // A daemon with an empty state starts on manager 3, after a's action: it follows a.
    let (b, b_addr) = daemon(dir.path(), "b", &bed.hosts[2], &config);
    cleanup.children.push(b);
    let a_identity = status_json(a_addr).unwrap()["leadership"]["identity"].clone();
    wait_until("b follows a", Duration::from_secs(20), || {
        status_json(b_addr).is_some_and(|s| {
            s["leadership"]["holder"] == a_identity && s["leadership"]["leader"] == false
        })
    });

    // Demand grows, and a's node crashes: a stops leading, b takes over within the goal, 30 s, even when
    // the crashed node also led Swarm's Raft (the API then answers on no manager for a while).
    prometheus.set(6.0);
    bed.run(&["crash", "2"]);
    let crashed = Instant::now();
    let stopped = wait_until("a stops leading", Duration::from_secs(12), || {
        leader(a_addr) == Some(false)
    });
    wait_until("b leads", Duration::from_secs(30), || {
        leader(b_addr) == Some(true)
    });
    let took_over = crashed.elapsed();
    // b read a's action from Swarm: no scaling before the cooldown of 45 s since it.
    while scaled.elapsed() < Duration::from_secs(42) {
        assert_eq!(
            bed.spec_replicas(&service),
            4,
            "the cooldown of a's action holds across the failover"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until("b scales to 6", Duration::from_secs(15), || {
        bed.spec_replicas(&service) == 6
    });
    let scaled_again = scaled.elapsed();
    assert_eq!(metric(b_addr, "autoscale_leader"), Some(1.0));
    assert!(metric(b_addr, "autoscale_leader_changes_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(metric(a_addr, "autoscale_leader"), Some(0.0));
    let status = status_json(b_addr).unwrap();
    assert_eq!(
        status["leadership"]["holder"], status["leadership"]["identity"],
        "{status}"
    );
    eprintln!(
        "a stopped leading {:.1} s after its node crashed; b led {:.1} s after the crash (started after \
         a's action, empty state); b scaled {:.1} s after a's action (cooldown 45 s)",
        stopped.as_secs_f64(),
        took_over.as_secs_f64(),
        scaled_again.as_secs_f64()
    );

    // a's node comes back: a follows b. Then b's node is cut off from the other managers: b stops leading
    // within the renew deadline, a takes over, and at no time do both lead.
    bed.run(&["up"]);
    let b_identity = status["leadership"]["identity"].clone();
    wait_until("a follows b", Duration::from_secs(30), || {
        status_json(a_addr).is_some_and(|s| s["leadership"]["holder"] == b_identity)
    });
    bed.run(&["cut", "3"]);
    let cut = Instant::now();
    let mut b_stopped = None;
    let mut a_led = None;
    while a_led.is_none() {
        let (la, lb) = (leader(a_addr), leader(b_addr));
        assert!(
            !(la == Some(true) && lb == Some(true)),
            "both daemons lead {:?} after the cut",
            cut.elapsed()
        );
        if b_stopped.is_none() && lb == Some(false) {
            b_stopped = Some(cut.elapsed());
        }
        if la == Some(true) {
            a_led = Some(cut.elapsed());
        }
        assert!(
            cut.elapsed() < Duration::from_secs(40),
            "a did not lead again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_stopped = b_stopped.expect("b stopped before a led");
    assert!(
        b_stopped <= Duration::from_secs(11),
        "b stopped within the renew deadline: {b_stopped:?}"
    );
    bed.run(&["heal", "3"]);
    eprintln!(
        "b cut off: it stopped leading after {:.1} s, a led after {:.1} s",
        b_stopped.as_secs_f64(),
        a_led.unwrap_or_default().as_secs_f64()
    );
}

/// The stack file that deploys the daemons is valid for `docker stack deploy` and runs them as the election
/// needs: on managers, one per manager, with host networking and the docker socket.
#[test]
fn the_stack_file_runs_a_daemon_on_each_manager() {
    if autoscale_core::testing::require_service(
        "AUTOSCALE_TEST_DOCKER_HOST",
        "a Docker engine (its CLI)",
    )
    .is_none()
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("docker")
        .args(["stack", "config", "-c"])
        .arg(root.join("docker/autoscale-ha-stack.yml"))
        .env_remove("AUTOSCALE_IMAGE")
        .env_remove("AUTOSCALE_CONFIG")
        .env_remove("DOCKER_SOCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker stack config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for want in [
        "node.role == manager",
        "max_replicas_per_node: 1",
        "replicas: 2",
        "name: host",
        "source: /var/run/docker.sock",
        "target: /var/run/docker.sock",
        "/etc/autoscale/autoscale.toml",
        "examples/configs/ha.toml",
    ] {
        assert!(config.contains(want), "{want:?} missing from:\n{config}");
    }
    // The configuration it deploys loads, with its lease.
    let loaded = autoscale_bin::config::Config::load(
        &root.join("examples/configs/ha.toml"),
        &autoscale_bin::config::Env::empty(),
        autoscale_bin::config::LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        loaded.daemon.ha.map(|h| h.lock_service),
        Some("autoscale-lock".to_owned())
    );
}
