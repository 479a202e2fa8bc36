//! The daemon's control paths under tokio's paused clock, with in-memory fakes behind the real wiring of
//! rounds, state persistence and HTTP: SIGTERM during a slow scale call, SIGHUP with a good and a bad
//! configuration.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_bin::config::{Config, ConfigError, Env, LoadOptions};
use autoscale_bin::daemon::{Backends, Control, run_with};
use autoscale_core::EngineState;
use autoscale_core::controller::ServiceLoop;
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use support::Fakes;
use tokio::sync::mpsc;

fn config(dir: &std::path::Path, max: u32) -> Result<Config, ConfigError> {
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
max_replicas = {max}
interval = "10s"

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
    daemon: tokio::task::JoinHandle<Result<(), autoscale_bin::daemon::DaemonError>>,
    addr: std::net::SocketAddr,
}

async fn start(
    initial: Config,
    reload: impl Fn() -> Result<Config, ConfigError> + Send + 'static,
    fakes: Fakes,
) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (controls, rx) = mpsc::channel(4);
    let daemon = tokio::spawn(run_with(initial, reload, Arc::new(fakes), rx, listener));
    Harness {
        controls,
        daemon,
        addr,
    }
}

#[tokio::test(start_paused = true)]
async fn sigterm_during_a_slow_scale_call_lets_it_finish_and_persists_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let source = ScriptedSource::constant("cpu", 1.0);
    let scaler = RecordingScaler::new(2).with_scale_delay(Duration::from_secs(20));
    let fakes = Fakes {
        source,
        scalers: BTreeMap::from([("web".to_owned(), scaler.clone())]),
    };
    let path = dir.path().to_owned();
    let h = start(
        config(dir.path(), 10).unwrap(),
        move || config(&path, 10),
        fakes,
    )
    .await;

    tokio::time::sleep(Duration::from_secs(5)).await; // the first round is inside its 20 s scale call
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();

    assert_eq!(
        scaler.scale_calls(),
        vec![4],
        "the running scale call finished"
    );
    let state: EngineState =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("web.state.json")).unwrap())
            .unwrap();
    assert_eq!(state.scale_events.len(), 1);
    assert_eq!(state.last_known_replicas, Some(4));
    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    assert!(history.contains(r#""result":"scaled""#), "{history}");
}

#[tokio::test(start_paused = true)]
async fn sighup_with_a_good_config_applies_it_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let source = ScriptedSource::constant("cpu", 0.5); // exactly on target: no change
    let scaler = RecordingScaler::new(5);
    let fakes = Fakes {
        source,
        scalers: BTreeMap::from([("web".to_owned(), scaler.clone())]),
    };
    let path = dir.path().to_owned();
    let h = start(
        config(dir.path(), 10).unwrap(),
        move || config(&path, 3),
        fakes,
    )
    .await;

    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(scaler.scale_calls().is_empty());
    h.controls.send(Control::Reload).await.unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    // max_replicas is now 3: the out-of-range rule brings 5 down to 3.
    assert_eq!(scaler.scale_calls(), vec![3]);
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();
    let state: EngineState =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("web.state.json")).unwrap())
            .unwrap();
    assert!(
        state.recommendations.len() >= 3,
        "recommendations from before the reload are kept: {state:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn sighup_with_a_bad_config_keeps_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let source = ScriptedSource::constant("cpu", 0.5);
    let scaler = RecordingScaler::new(2);
    let fakes = Fakes {
        source: source.clone(),
        scalers: BTreeMap::from([("web".to_owned(), scaler.clone())]),
    };
    let bad = || {
        Config::from_toml(
            "bad.toml",
            "[prometheus]\nurll = 1\n",
            &Env::empty(),
            LoadOptions::default(),
        )
    };
    let h = start(config(dir.path(), 10).unwrap(), bad, fakes).await;

    tokio::time::sleep(Duration::from_secs(15)).await;
    h.controls.send(Control::Reload).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    source.set("cpu", Ok(1.0));
    tokio::time::sleep(Duration::from_secs(10)).await; // one round
    assert_eq!(
        scaler.scale_calls(),
        vec![4],
        "the old configuration is still running"
    );

    let status = autoscale_bin::daemon::http::fetch_status(h.addr, Duration::from_secs(5))
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["services"][0]["service"], "web");
    assert_eq!(status["services"][0]["desired"], 4);
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();
}

/// `/metrics` of the daemon at `addr`.
async fn metrics(addr: std::net::SocketAddr) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn sighup_that_renames_a_service_removes_its_series_from_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Fakes {
        source: ScriptedSource::constant("cpu", 0.5),
        scalers: BTreeMap::from([
            ("web".to_owned(), RecordingScaler::new(2)),
            ("shop".to_owned(), RecordingScaler::new(2)),
        ]),
    };
    let path = dir.path().to_owned();
    let renamed = move || {
        let mut config = config(&path, 10)?;
        config.services[0].name = "shop".to_owned();
        Ok(config)
    };
    let h = start(config(dir.path(), 10).unwrap(), renamed, fakes).await;

    tokio::time::sleep(Duration::from_secs(15)).await;
    let before = metrics(h.addr).await;
    assert!(
        before.contains(r#"autoscale_replicas{service="web",state="current"} 2"#),
        "{before}"
    );
    h.controls.send(Control::Reload).await.unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = metrics(h.addr).await;
    assert!(!after.contains(r#"service="web""#), "{after}");
    assert!(
        after.contains(r#"autoscale_replicas{service="shop",state="current"} 2"#),
        "{after}"
    );
    h.controls.send(Control::Shutdown).await.unwrap();
    h.daemon.await.unwrap().unwrap();
}

/// Backends that cannot build any loop.
struct Unwirable;

#[async_trait::async_trait]
impl Backends for Unwirable {
    fn loops(
        &self,
        config: &Config,
        _state: &dyn Fn(
            &str,
        )
            -> Result<Option<EngineState>, autoscale_bin::daemon::wiring::WiringError>,
    ) -> Result<Vec<ServiceLoop>, autoscale_bin::daemon::wiring::WiringError> {
        Err(autoscale_bin::daemon::wiring::WiringError::State {
            service: config.services[0].name.clone(),
            source: std::io::Error::other("unreadable"),
        })
    }

    async fn wait_ready(&self, _config: &Config) -> bool {
        true
    }
}

#[tokio::test]
async fn a_daemon_that_cannot_wire_its_services_never_says_it_started() {
    let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = Arc::clone(&logs);
        move || LogWriter(Arc::clone(&logs))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_controls, rx) = mpsc::channel(4);
    let path = dir.path().to_owned();
    let result = run_with(
        config(dir.path(), 10).unwrap(),
        move || config(&path, 10),
        Arc::new(Unwirable),
        rx,
        listener,
    )
    .await;
    assert!(result.is_err());
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains("daemon started"), "{logs}");
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Any duration, weighted towards the extremes where arithmetic overflows.
fn any_duration() -> impl proptest::strategy::Strategy<Value = Duration> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Duration::MAX),
        (u64::MAX / 4..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_secs),
        (0u64..7 * 24 * 3600 * 1000).prop_map(Duration::from_millis),
    ]
}

/// `config` with its service's interval, cooldowns and scale-down window replaced, as an embedder could set
/// them (a file's are bounded by validation).
fn with_durations(
    mut config: Config,
    interval: Duration,
    cooldown: Duration,
    window: Duration,
) -> Config {
    use autoscale_core::engine::{Behavior, ScalingRules};
    let service = &mut config.services[0];
    service.interval = interval;
    let down = ScalingRules::default_down();
    let mut builder = service
        .engine
        .builder_without_checks()
        .cooldown_up(cooldown)
        .cooldown_down(cooldown)
        .behavior(Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::new(window, down.select(), down.rules().to_vec()).unwrap(),
        });
    for check in service.engine.checks() {
        builder = builder.check(check.clone());
    }
    service.engine = builder.build().unwrap();
    config
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Whatever the durations, /healthz, /readyz, /status and /metrics answer, and the loop keeps running.
    #[test]
    fn no_duration_panics_the_endpoints_or_the_loop(
        interval in proptest::strategy::Strategy::prop_filter(any_duration(), "the loop needs one above zero", |d| !d.is_zero()),
        cooldown in any_duration(),
        window in any_duration(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let scaler = RecordingScaler::new(2);
            let fakes = Fakes {
                source: ScriptedSource::constant("cpu", 1.0),
                scalers: BTreeMap::from([("web".to_owned(), scaler.clone())]),
            };
            let config = with_durations(config(dir.path(), 10).unwrap(), interval, cooldown, window);
            let reload = {
                let config = config.clone();
                move || Ok(config.clone())
            };
            let h = start(config, reload, fakes).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            for path in ["/healthz", "/readyz", "/status", "/metrics"] {
                let response = client
                    .get(format!("http://{}{path}", h.addr))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{path}: {e}"));
                let code = response.status().as_u16();
                assert!(code == 200 || code == 503, "{path}: {code}");
            }
            h.controls.send(Control::Shutdown).await.unwrap();
            h.daemon.await.unwrap().unwrap();
        });
    }
}

#[test]
fn the_longest_timeouts_wire_without_overflow() {
    use autoscale_bin::config::ScalerSettings;
    use autoscale_bin::daemon::wiring::{Clients, LoopParts, service_loop};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 10).unwrap();
    config.prometheus.timeout = Duration::MAX;
    if let ScalerSettings::Compose(compose) = &mut config.services[0].scaler {
        compose.timeout = Duration::MAX;
    }
    let parts = LoopParts {
        clients: Clients::new(&config).unwrap(),
        metric_permits: Arc::new(tokio::sync::Semaphore::new(1)),
        dry_run: true,
    };
    service_loop(&config.services[0], &parts, None).unwrap();
}
