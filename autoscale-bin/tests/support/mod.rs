//! Helpers the daemon's integration tests share: in-memory backends for the paused-clock tests, and for the
//! tests that run the built binary, a free port, a plain HTTP GET, a wait, and an axum server on a runtime of
//! its own. Each test file uses only some of them.
#![allow(dead_code)]

pub mod compose;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_bin::config::Config;
use autoscale_bin::daemon::Backends;
use autoscale_bin::daemon::wiring::WiringError;
use autoscale_core::controller::{CheckSource, ServiceLoop, TokioClock};
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use autoscale_core::{EngineState, Timestamp};

/// Loops over a scripted metric source and recording scalers, one per service name, on tokio's clock.
pub struct Fakes {
    pub source: ScriptedSource,
    pub scalers: BTreeMap<String, RecordingScaler>,
}

#[async_trait::async_trait]
impl Backends for Fakes {
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError> {
        config
            .services
            .iter()
            .map(|service| {
                let scaler = self.scalers[&service.name].clone();
                let engine = service.engine.builder_without_checks();
                let clock = TokioClock::starting_at(Timestamp::from_secs(1_800_000_000));
                let mut builder = ServiceLoop::builder(&service.name, engine, Arc::new(scaler))
                    .interval(service.interval)
                    .on_zero_outside(service.on_zero_outside)
                    .clock(Arc::new(clock));
                for check in &service.checks {
                    let source = CheckSource::new(Arc::new(self.source.clone()), &check.query);
                    builder = builder.check(check.engine.clone(), source);
                }
                if let Some(s) = state(&service.name)? {
                    builder = builder.state(s);
                }
                Ok(builder.build()?)
            })
            .collect()
    }

    async fn wait_ready(&self, _config: &Config) -> bool {
        true
    }
}

/// A port on loopback that nothing listens on (for the moment).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP GET on loopback; returns (status, body).
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Whether `image` is in the engine at `docker_host`. A missing image fails in CI (scripts/build-images
/// builds it there) and is a loud skip elsewhere.
pub fn require_image(docker_host: &str, image: &str) -> bool {
    let found = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .env("DOCKER_HOST", docker_host)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{image} is missing: scripts/build-images must build it in CI"
        );
        // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n########## SKIPPED: {image} is missing (run scripts/build-images). This test did NOT run. ##########\n"
        );
    }
    found
}

/// The daemon's `/status`, when it answers 200 with JSON.
pub fn status_json(addr: SocketAddr) -> Option<serde_json::Value> {
    let (code, body) = get(addr, "/status").ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Poll `f` until it holds, and say how long that took; panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}");
}

/// An axum app served on 127.0.0.1:0 by a runtime of its own, so that the code under test keeps its own.
pub struct Server {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

pub fn serve(app: axum::Router) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        _runtime: runtime,
    }
}
