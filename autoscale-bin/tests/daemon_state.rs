//! The daemon's state directory under tokio's paused clock, with in-memory fakes behind the real wiring of
//! rounds, state persistence, history and HTTP: one owner per state_dir, a change made outside during a
//! cooldown, and a state that cannot be written.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autoscale_bin::config::{Config, ConfigError, Env, LoadOptions};
use autoscale_bin::daemon::store::LockError;
use autoscale_bin::daemon::{Control, DaemonError, run_with};
use autoscale_core::ReplicaStatus;
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use support::Fakes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn config(dir: &std::path::Path) -> Result<Config, ConfigError> {
    let toml = format!(
        r#"
[prometheus]
url = "http://127.0.0.1:1"

[daemon]
listen = "127.0.0.1:0"
state_dir = "{}"

[[service]]
name = "web"
min_replicas = 1
max_replicas = 10
interval = "10s"
cooldown_up = "60s"
cooldown_down = "60s"

[service.scaler]
kind = "compose"
project = "demo"
file = "docker-compose.yml"

[[service.check]]
name = "cpu"
query = "cpu"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
        dir.display()
    );
    Config::from_toml("test.toml", &toml, &Env::empty(), LoadOptions::default())
}

struct Harness {
    controls: mpsc::Sender<Control>,
    daemon: tokio::task::JoinHandle<Result<(), DaemonError>>,
    addr: SocketAddr,
}

async fn start(
    dir: &std::path::Path,
    source: &ScriptedSource,
    scaler: &RecordingScaler,
) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (controls, rx) = mpsc::channel(4);
    let fakes = Fakes {
        source: source.clone(),
        scalers: BTreeMap::from([("web".to_owned(), scaler.clone())]),
    };
    let path = dir.to_owned();
    let daemon = tokio::spawn(run_with(
        config(dir).unwrap(),
        move || config(&path),
        Arc::new(fakes),
        rx,
        listener,
    ));
    Harness {
        controls,
        daemon,
        addr,
    }
}

/// A plain HTTP/1.0 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Wait, in real time, for the state writer (a thread of its own) to catch up, until `f` holds.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within 2 s");
}

fn history(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = ScriptedSource::constant("cpu", 0.5);
    let scaler = RecordingScaler::new(2);
    let first = start(dir.path(), &source, &scaler).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = start(dir.path(), &source, &scaler).await;
    let err = second.daemon.await.unwrap().unwrap_err();
    assert!(
        matches!(err, DaemonError::Lock(LockError::InUse { pid: Some(pid), .. }) if pid == std::process::id()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "state_dir {} is in use by pid {}",
            dir.path().display(),
            std::process::id()
        )
    );
    first.controls.send(Control::Shutdown).await.unwrap();
    first.daemon.await.unwrap().unwrap();
    // Released with the first daemon.
    let third = start(dir.path(), &source, &scaler).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    third.controls.send(Control::Shutdown).await.unwrap();
    third.daemon.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_change_made_outside_during_a_cooldown_is_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    // 2 replicas at 1.25 against 0.5 per replica: 5.
    let source = ScriptedSource::constant("cpu", 1.25);
    let scaler = RecordingScaler::new(2);
    let h = start(dir.path(), &source, &scaler).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(scaler.scale_calls(), vec![5]);
    // Someone scales to 8 within the 60 s cooldown; the engine then wants 20 (10 once bounded),
    // which the cooldown blocks.
    scaler.set_outside(ReplicaStatus::all_ready(8));
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();

    assert_eq!(scaler.scale_calls(), vec![5], "the cooldown held");
    let lines = history(dir.path());
    let results: Vec<(&str, u64, u64)> = lines
        .iter()
        .map(|e| {
            (
                e["result"].as_str().unwrap(),
                e["from"].as_u64().unwrap(),
                e["to"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![("scaled", 2, 5), ("outside", 5, 8), ("blocked", 8, 20)],
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_state_that_cannot_be_written_shows_in_metrics_status_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let source = ScriptedSource::constant("cpu", 0.5);
    let scaler = RecordingScaler::new(2);
    // The writer's temporary file cannot be created while a directory has its name: a write fails as on a
    // full disk.
    let blocker = dir.path().join(".web.state.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let h = start(dir.path(), &source, &scaler).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    eventually("/readyz answers 503", async || {
        get(h.addr, "/readyz").await.0 == 503
    })
    .await;
    let (_, body) = get(h.addr, "/readyz").await;
    assert!(
        body.contains("cannot persist the engine state of web"),
        "{body}"
    );
    let (_, metrics) = get(h.addr, "/metrics").await;
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("autoscale_state_persist_errors_total "))
        .unwrap_or_else(|| panic!("no persist error counter in:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(errors >= 1.0, "{metrics}");
    let status: serde_json::Value = serde_json::from_str(&get(h.addr, "/status").await.1).unwrap();
    let condition = &status["conditions"][0];
    assert_eq!(condition["type"], "StatePersisted");
    assert_eq!(condition["status"], false, "{status:#}");
    assert!(
        condition["failing"]["web"]
            .as_str()
            .unwrap()
            .contains(".web.state.json.tmp"),
        "{status:#}"
    );

    // The disk recovers: the next write succeeds and the daemon is ready again.
    std::fs::remove_dir(&blocker).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    eventually("/readyz answers 200", async || {
        get(h.addr, "/readyz").await.0 == 200
    })
    .await;
    let status: serde_json::Value = serde_json::from_str(&get(h.addr, "/status").await.1).unwrap();
    assert_eq!(status["conditions"][0]["status"], true, "{status:#}");
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();
    assert!(dir.path().join("web.state.json").exists());
}
