//! The built daemon under a flood of idle connections: with 3,000 open, it holds at most about 600 file
//! descriptors (the connection cap is 512) and `/metrics` still answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, Signal, getrlimit, kill_process, setrlimit};

const CONNECTIONS: usize = 3000;
const FD_BUDGET: usize = 600;

/// Stops the daemon whatever happens.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.0.id() as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let _ = self.0.wait();
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A GET on a new connection; the status code, or why there was none.
fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

#[test]
fn three_thousand_idle_connections_keep_the_daemon_within_600_fds_and_metrics_answers() {
    // The test holds 3,000 sockets, and the daemon inherits the limit (so it could hold them all too).
    let limit = getrlimit(Resource::Nofile);
    let want = 8192.min(limit.maximum.unwrap_or(u64::MAX));
    assert!(
        want >= CONNECTIONS as u64 + 200,
        "the hard open-file limit {:?} is too low for this test",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        },
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listen: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.path().join("autoscale.toml");
    std::fs::write(
        &config,
        format!(
            r#"[prometheus]
url = "http://127.0.0.1:9"

[daemon]
listen = "{listen}"
state_dir = "{state}"

[[service]]
name = "web"
min_replicas = 1
max_replicas = 2
interval = "10s"

[service.scaler]
kind = "compose"
project = "http-limits-test"
file = "{dir}/compose.yml"

[[service.check]]
name = "cpu"
query = "cpu"
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#,
            state = dir.path().join("state").display(),
            dir = dir.path().display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_autoscale"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("PROMETHEUS_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    let start = Instant::now();
    while get(listen, "/metrics") != Ok(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemon did not answer /metrics; its log:\n{}",
            daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_fds = open_fds(pid);

    let mut held = Vec::with_capacity(CONNECTIONS);
    let mut most = idle_fds;
    for i in 0..CONNECTIONS {
        held.push(TcpStream::connect_timeout(&listen, Duration::from_secs(10)).unwrap());
        if i % 100 == 0 {
            most = most.max(open_fds(pid));
        }
    }
    // Let the daemon take in what the kernel queued, then ask it something.
    std::thread::sleep(Duration::from_millis(500));
    most = most.max(open_fds(pid));
    let answered = get(listen, "/metrics");
    most = most.max(open_fds(pid));
    assert_eq!(
        answered,
        Ok(200),
        "/metrics with {CONNECTIONS} idle connections open"
    );
    assert!(
        most <= FD_BUDGET,
        "the daemon held {most} fds with {CONNECTIONS} idle connections open (idle: {idle_fds})"
    );
    eprintln!(
        "{CONNECTIONS} idle connections: the daemon held at most {most} fds (idle: {idle_fds}); /metrics answered"
    );
    drop(held);
}
