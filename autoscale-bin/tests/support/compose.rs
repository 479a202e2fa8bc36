//! A real compose project for the tests that run the built daemon against Docker: the services it needs,
//! a scripted Prometheus, and a guard that stops the daemons and takes the project down whatever happens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autoscale_core::testing::require_service;

pub struct Env {
    pub docker_host: String,
    pub compose: String,
    pub image: String,
}

pub fn env() -> Option<Env> {
    Some(Env {
        docker_host: require_service("AUTOSCALE_TEST_DOCKER_HOST", "a real Docker engine")?,
        compose: require_service("AUTOSCALE_TEST_COMPOSE", "docker-compose")?,
        image: require_service("AUTOSCALE_TEST_BUSYBOX_IMAGE", "the busybox test image")?,
    })
}

/// The scripted Prometheus: `/-/ready` and an instant query that answers `value` for any expression.
pub struct Prometheus {
    pub addr: SocketAddr,
    value: Arc<AtomicU64>,
    _server: super::Server,
}

impl Prometheus {
    pub fn start(value: f64) -> Self {
        use axum::routing::{any, get};
        let value = Arc::new(AtomicU64::new(value.to_bits()));
        let answer = Arc::clone(&value);
        let query = move || {
            let v = f64::from_bits(answer.load(Ordering::Relaxed));
            async move {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    format!(
                        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{now},"{v}"]}}]}}}}"#
                    ),
                )
            }
        };
        let app = axum::Router::new()
            .route(
                "/-/ready",
                get(|| async { "Prometheus Server is Ready.\n" }),
            )
            .route("/api/v1/query", any(query));
        let server = super::serve(app);
        Prometheus {
            addr: server.addr,
            value,
            _server: server,
        }
    }

    pub fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Stops every process still running and tears the compose project down, whatever happens.
pub struct Cleanup {
    pub env: Env,
    pub project: String,
    pub file: PathBuf,
    pub children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self
            .compose(&["down", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Cleanup {
    pub fn compose(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.env.compose);
        command
            .args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .args(args)
            .env("DOCKER_HOST", &self.env.docker_host);
        command
    }

    pub fn running(&self) -> usize {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.project),
            ])
            .env("DOCKER_HOST", &self.env.docker_host)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// The `web` containers compose knows of.
    pub fn replicas(&self) -> usize {
        let out = self.compose(&["ps", "-q", "web"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// Scale `web` with compose itself, as an operator would.
    pub fn scale_outside(&self, n: u32) {
        let out = self
            .compose(&["up", "-d", "--no-recreate", "--scale", &format!("web={n}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
