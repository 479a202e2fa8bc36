//! The daemon's lifecycle under faults, with the built `autoscale` binary, a real Compose service (busybox
//! containers on the real dockerd) and an in-process scripted Prometheus that answers one value:
//!
//! 1. two daemons on one state_dir: the second (and `once --apply`) exits 2 naming the owner's pid;
//! 2. a SIGHUP storm: no persist error, and a reader polling the state file never sees it torn;
//! 3. SIGTERM during a scale call: the call finishes, the state and the history record it, exit 0;
//! 4. a change made outside during the cooldown, then SIGKILL and a restart: the lock is free again, the
//!    cooldown still holds, and the history has every action.
//!
//! After each, the state file parses and every history line parses.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::compose::{Cleanup, Prometheus, env};
use support::{free_port, get, status_json, wait_until};

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

struct Files {
    dir: PathBuf,
    state_dir: PathBuf,
}

impl Files {
    fn config(&self, listen: SocketAddr) -> PathBuf {
        let path = self.dir.join(format!("autoscale-{}.toml", listen.port()));
        let template = std::fs::read_to_string(self.dir.join("autoscale.toml.in")).unwrap();
        std::fs::write(&path, template.replace("@LISTEN@", &listen.to_string())).unwrap();
        path
    }

    /// The state of the one service, parsed: it must always parse.
    fn state(&self) -> autoscale_core::EngineState {
        let path = self.state_dir.join("fi%2Eweb.state.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}:\n{text}", path.display()))
    }

    /// Every history line, parsed: each must parse.
    fn history(&self) -> Vec<(String, u64, u64)> {
        std::fs::read_to_string(self.state_dir.join("history.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let e: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("a torn history line {line:?}: {err}"));
                (
                    e["result"].as_str().unwrap().to_owned(),
                    e["from"].as_u64().unwrap(),
                    e["to"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

fn spawn_daemon(files: &Files, listen: SocketAddr, log: &str) -> Child {
    let log = std::fs::File::create(files.dir.join(log)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["run", "--config"])
        .arg(files.config(listen))
        .env("LOG_LEVEL", "info")
        .env_remove("PROMETHEUS_URL")
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn token(addr: SocketAddr) -> Option<String> {
    Some(
        status_json(addr)?["services"][0]["last_evaluation"]["token"]
            .as_str()?
            .to_owned(),
    )
}

#[test]
fn the_daemon_keeps_its_state_through_signals_kills_and_a_second_daemon() {
    let Some(env) = env() else { return };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let files = Files {
        dir: dir.path().to_owned(),
        state_dir: dir.path().join("state"),
    };
    let prometheus = Prometheus::start(0.5);
    let project = format!("fault{}", std::process::id());
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
    std::fs::write(
        dir.path().join("autoscale.toml.in"),
        format!(
            r#"[prometheus]
url = "http://{prom}"
timeout = "2s"

[daemon]
listen = "@LISTEN@"
state_dir = "{state}"

[[service]]
name = "fi.web"
min_replicas = 1
max_replicas = 3
interval = "1s"
cooldown_up = "60s"
cooldown_down = "60s"

[service.scaler]
kind = "compose"
project = "{project}"
file = "{file}"
service = "web"
command = ["{compose}"]
docker_host = "{docker_host}"

[service.behavior.scale_down]
stabilization_window = "0s"

[[service.check]]
name = "load"
query = "load"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
            prom = prometheus.addr,
            state = files.state_dir.display(),
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
    cleanup.scale_outside(1);

    // 1. Two daemons on one state_dir.
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    cleanup.children.push(spawn_daemon(&files, listen, "a.log"));
    let owner = cleanup.children[0].id();
    wait_until(
        "the first daemon's first round",
        Duration::from_secs(30),
        || token(listen).is_some(),
    );
    let in_use = format!(
        "state_dir {} is in use by pid {owner}",
        files.state_dir.display()
    );
    // The same configuration, port included: the state_dir is what is reported.
    let mut second = spawn_daemon(&files, listen, "b.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = second.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!(
                "a second daemon on the same state_dir kept running:\n{}",
                files.log("b.log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(2), "{}", files.log("b.log"));
    assert!(
        files.log("b.log").contains(&in_use),
        "{}",
        files.log("b.log")
    );
    let once = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["once", "--apply", "--config"])
        .arg(files.config(listen))
        .env_remove("PROMETHEUS_URL")
        .output()
        .unwrap();
    assert_eq!(once.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&once.stderr).contains(&in_use));
    // Without --apply it changes nothing, and needs no lock.
    let dry = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(["once", "--config"])
        .arg(files.config(listen))
        .env_remove("PROMETHEUS_URL")
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    files.state();

    // 2. A SIGHUP storm, with a reader polling the state file.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let path = files.state_dir.join("fi%2Eweb.state.json");
        std::thread::spawn(move || {
            let (mut reads, mut torn) = (0_u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    reads += 1;
                    if serde_json::from_str::<autoscale_core::EngineState>(&text).is_err() {
                        torn.push(text);
                    }
                }
            }
            (reads, torn)
        })
    };
    for _ in 0..100 {
        signal(&cleanup.children[0], "HUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after_storm = Instant::now();
    wait_until("a round after the storm", Duration::from_secs(20), || {
        token(listen).is_some() && after_storm.elapsed() > Duration::from_secs(2)
    });
    stop.store(true, Ordering::Relaxed);
    let (reads, torn) = reader.join().unwrap();
    assert!(reads > 0, "the reader never found the state file");
    assert!(
        torn.is_empty(),
        "{} torn reads of {reads}: {torn:?}",
        torn.len()
    );
    assert_eq!(
        cleanup.children[0].try_wait().unwrap(),
        None,
        "still running"
    );
    let log = files.log("a.log");
    assert!(log.matches("configuration reloaded").count() >= 10, "{log}");
    assert!(!log.contains("cannot persist"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    assert_eq!(get(listen, "/readyz").unwrap().0, 200);
    files.state();

    // 3. SIGTERM while the scale call (1 -> 3) runs.
    prometheus.set(1.5);
    let log_len = files.log("a.log").len();
    wait_until("the scale-up decision", Duration::from_secs(20), || {
        files.log("a.log")[log_len..].contains("ABOVE scale-up threshold")
    });
    signal(&cleanup.children[0], "TERM");
    let exit = cleanup.children[0].wait().unwrap();
    let log = files.log("a.log");
    assert!(exit.success(), "exit {exit:?}:\n{log}");
    let (term, scaled) = (
        log.find("SIGTERM: shutting down"),
        log.find("Successfully scaled to 3 replicas"),
    );
    assert!(
        term.is_some() && scaled.is_some() && term < scaled,
        "the SIGTERM came during the scale call, which finished:\n{log}"
    );
    assert!(!log.contains("cannot persist"), "{log}");
    assert_eq!(cleanup.replicas(), 3);
    let state = files.state();
    assert_eq!(state.last_known_replicas, Some(3));
    assert!(state.last_scale_at.is_some());
    assert!(
        files.history().contains(&("scaled".into(), 1, 3)),
        "{:?}",
        files.history()
    );
    cleanup.children.clear();

    // 4. Restart in the cooldown; a change made outside (3 -> 2); SIGKILL; restart again.
    prometheus.set(0.1);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    cleanup.children.push(spawn_daemon(&files, listen, "c.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while token(listen).as_deref() != Some("cooldown") {
        assert!(
            Instant::now() < deadline,
            "no cooldown after a restart: {:#?}\n{}",
            status_json(listen),
            files.log("c.log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    cleanup.scale_outside(2);
    wait_until(
        "the outside change in the history",
        Duration::from_secs(30),
        || files.history().contains(&("outside".into(), 3, 2)),
    );
    // The history is written before the state is handed to the writer: let it land.
    wait_until(
        "the state after the outside change",
        Duration::from_secs(10),
        || files.state().last_known_replicas == Some(2),
    );
    let killed = &mut cleanup.children[0];
    signal(killed, "KILL");
    killed.wait().unwrap();
    cleanup.children.clear();
    let state = files.state();
    assert_eq!(state.last_known_replicas, Some(2));

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    cleanup.children.push(spawn_daemon(&files, listen, "d.log"));
    wait_until(
        "a round after SIGKILL and restart",
        Duration::from_secs(30),
        || token(listen).is_some(),
    );
    let status = status_json(listen).unwrap();
    let service = &status["services"][0];
    assert_eq!(
        service["last_evaluation"]["token"], "cooldown",
        "{status:#}"
    );
    assert!(
        service["cooldown_remaining_s"]["down"].as_f64().unwrap() > 30.0,
        "{status:#}"
    );
    assert_eq!(cleanup.replicas(), 2, "the cooldown held");
    let history = files.history();
    for entry in [("scaled", 1, 3), ("outside", 3, 2)] {
        let entry = (entry.0.to_owned(), entry.1, entry.2);
        assert_eq!(
            history.iter().filter(|e| **e == entry).count(),
            1,
            "{entry:?} once in {history:?}"
        );
    }
    assert!(
        history
            .iter()
            .all(|(result, _, _)| ["scaled", "outside", "blocked"].contains(&result.as_str())),
        "{history:?}"
    );
    signal(&cleanup.children[0], "TERM");
    assert!(cleanup.children[0].wait().unwrap().success());
    cleanup.children.clear();
    files.state();
    for log in ["a.log", "c.log", "d.log"] {
        let text = files.log(log);
        assert!(!text.contains("cannot persist"), "{log}:\n{text}");
    }
    eprintln!("fault injection: {:?} in all", started.elapsed());
}
