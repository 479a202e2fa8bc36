//! The daemon under load: N services at a 10 s interval, each querying the real Prometheus, through the
//! daemon's own loops, persistence, history and metrics; the scalers are in memory so that only the daemon
//! is measured (a real scaler's cost is per action, not per round). Prints the rounds completed against the
//! rounds due, the slowest round, the process's RSS and its CPU use.
//!
//! Run: `scripts/bench-daemon` (starts the services), or by hand with AUTOSCALE_TEST_PROMETHEUS_URL set:
//! `cargo run --release -p autoscale-benches --example daemon_load -- 1000 60`

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_bin::config::{Config, Env, LoadOptions};
use autoscale_bin::daemon::wiring::WiringError;
use autoscale_bin::daemon::{Backends, Control, run_with};
use autoscale_core::EngineState;
use autoscale_core::controller::{CheckSource, ServiceLoop, Timeouts};
use autoscale_core::testing::RecordingScaler;
use autoscale_prom::{PrometheusClient, PrometheusConfig, PrometheusSource, QueryOptions};
use tokio::sync::{Semaphore, mpsc};

struct PromBackends {
    client: Arc<PrometheusClient>,
}

#[async_trait::async_trait]
impl Backends for PromBackends {
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError> {
        let permits = Arc::new(Semaphore::new(config.daemon.concurrency));
        config
            .services
            .iter()
            .map(|service| {
                let source = PrometheusSource::new(Arc::clone(&self.client), QueryOptions::new());
                let mut builder = ServiceLoop::builder(
                    &service.name,
                    service.engine.builder_without_checks(),
                    Arc::new(RecordingScaler::new(2)),
                )
                .interval(service.interval)
                .metric_permits(Arc::clone(&permits))
                .timeouts(Timeouts {
                    metric: Duration::from_secs(10),
                    ..Timeouts::default()
                });
                for (engine_check, check) in service.engine.checks().iter().zip(&service.checks) {
                    let source = CheckSource::new(Arc::new(source.clone()), &check.query);
                    builder = builder.check(engine_check.clone(), source);
                }
                if let Some(s) = state(&service.name)? {
                    builder = builder.state(s);
                }
                Ok(builder.build()?)
            })
            .collect()
    }

    async fn wait_ready(&self, _config: &Config) -> bool {
        self.client
            .wait_ready(Duration::from_secs(30))
            .await
            .is_ok()
    }
}

fn config(prometheus: &str, services: usize, state_dir: &std::path::Path) -> Config {
    let mut toml = format!(
        "[prometheus]\nurl = \"{prometheus}\"\n\n[daemon]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nconcurrency = 16\n",
        state_dir.display()
    );
    for i in 0..services {
        toml.push_str(&format!(
            r#"
[[service]]
name = "svc{i}"
interval = "10s"
[service.scaler]
kind = "compose"
project = "bench"
file = "docker-compose.yml"
service = "svc{i}"
[[service.check]]
name = "rate"
query = 'sum(rate(prometheus_http_requests_total[1m])) * 0 + 0.5 + {i} * 0'
policy = {{ kind = "target", target = 0.5, per = "replica" }}
"#
        ));
    }
    Config::from_toml("bench.toml", &toml, &Env::empty(), LoadOptions::default())
        .expect("a valid config")
}

/// (RSS in KiB, CPU seconds used so far) of this process.
fn usage() -> (u64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    (rss, ticks / 100.0)
}

fn main() {
    let Ok(prometheus) = std::env::var("AUTOSCALE_TEST_PROMETHEUS_URL") else {
        eprintln!(
            "SKIPPED: AUTOSCALE_TEST_PROMETHEUS_URL is not set (scripts/bench-daemon starts Prometheus)"
        );
        return;
    };
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = config(&prometheus, services, dir.path());
    let client =
        Arc::new(PrometheusClient::new(PrometheusConfig::new(&prometheus).unwrap()).unwrap());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (controls, rx) = mpsc::channel(1);
        let reload_config = config.clone();
        let daemon = tokio::spawn(run_with(
            config,
            move || Ok(reload_config.clone()),
            Arc::new(PromBackends { client }),
            rx,
            listener,
        ));
        // Let the first round of every service pass before measuring.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let (_, cpu_start) = usage();
        let start = Instant::now();
        let before = scrape(addr).await;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after = scrape(addr).await;
        let elapsed = start.elapsed().as_secs_f64();
        let (rss, cpu_end) = usage();
        let rounds = after.0 - before.0;
        let due = services as f64 * elapsed / 10.0;
        println!(
            "services={services} window={elapsed:.0}s rounds={rounds:.0} due={due:.0} ({:.1}%) \
             mean_round_ms={:.2} slowest_bucket_le_s={} rss_mib={:.1} cpu={:.1}%",
            100.0 * rounds / due,
            1000.0 * (after.1 - before.1) / rounds.max(1.0),
            after.2,
            rss as f64 / 1024.0,
            100.0 * (cpu_end - cpu_start) / elapsed,
        );
        controls.send(Control::Shutdown).await.unwrap();
        daemon.await.unwrap().unwrap();
    });
}

/// (evaluations, total round seconds, the smallest histogram bucket holding every round) from /metrics.
async fn scrape(addr: std::net::SocketAddr) -> (f64, f64, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let mut evaluations = 0.0;
    let mut sum = 0.0;
    let mut count = 0.0;
    let mut buckets = Vec::new();
    for line in text.lines() {
        let value = |l: &str| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if line.starts_with("autoscale_evaluations_total{") {
            evaluations += value(line);
        } else if line.starts_with("autoscale_evaluation_duration_seconds_sum") {
            sum = value(line);
        } else if line.starts_with("autoscale_evaluation_duration_seconds_count") {
            count = value(line);
        } else if let Some(rest) =
            line.strip_prefix("autoscale_evaluation_duration_seconds_bucket{le=\"")
        {
            let le = rest.split('"').next().unwrap_or("").to_owned();
            buckets.push((le, value(line)));
        }
    }
    let slowest = buckets
        .iter()
        .find(|(_, n)| *n >= count)
        .map(|(le, _)| le.clone())
        .unwrap_or_default();
    (evaluations, sum, slowest)
}
