//! Services found by `[[discover]]` sections, under tokio's paused clock with in-memory fakes: services that
//! appear, change and vanish are started, restarted and stopped while the others keep running undisturbed,
//! a removed service's state is kept for its return, a bad label is skipped and reported, and a failed
//! listing keeps the services found before.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoscale_bin::config::{
    Config, ConfigError, DiscoverKind, DiscoverSettings, Env, LoadOptions,
};
use autoscale_bin::daemon::report::StatusReport;
use autoscale_bin::daemon::wiring::WiringError;
use autoscale_bin::daemon::{Backends, Control, run_with};
use autoscale_bin::discovered::{DiscoveredService, Discovery};
use autoscale_core::controller::ServiceLoop;
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use autoscale_core::{ChangeFeed, EngineState};
use support::Fakes;
use tokio::sync::mpsc;

fn config_with_resync(dir: &std::path::Path, resync: &str) -> Result<Config, ConfigError> {
    let toml = format!(
        r#"
[prometheus]
url = "http://127.0.0.1:1"

[daemon]
listen = "127.0.0.1:0"
state_dir = "{}"

[[service]]
name = "static"
interval = "10s"
scaler = {{ kind = "compose", project = "demo" }}
check = [{{ name = "cpu", query = "static_q", policy = {{ kind = "target", target = 0.5 }} }}]

[[discover]]
kind = "swarm"
interval = "10s"
resync = "{resync}"
[discover.check]
policy = {{ kind = "target", target = 0.5 }}
"#,
        dir.display()
    );
    Config::from_toml("test.toml", &toml, &Env::empty(), LoadOptions::default())
}

fn swarm(name: &str, labels: &[(&str, &str)]) -> DiscoveredService {
    let mut found = DiscoveredService::new(DiscoverKind::Swarm, format!("id-{name}"), name, 2);
    found.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("autoscale.enable".to_owned(), "true".to_owned())])
        .collect();
    found
}

/// The fakes, and what the endpoint lists (changed by the test while the daemon runs).
struct Discovering {
    fakes: Fakes,
    listed: Listed,
    /// What the endpoint's event stream would notify, when the test has one.
    changes: Option<tokio::sync::watch::Receiver<u64>>,
}

/// What the endpoint lists, shared with the daemon's fakes.
type Listed = Arc<Mutex<Result<Discovery, String>>>;

impl Discovering {
    /// Services `names`, each with a scaler at 2 replicas and its query `NAME_q` on target (no change), and an
    /// endpoint that lists `found`. Also returns the scalers and the listing, for the test to read and change.
    fn on_target(
        names: &[&str],
        found: Vec<DiscoveredService>,
    ) -> (Discovering, BTreeMap<String, RecordingScaler>, Listed) {
        let source = ScriptedSource::new();
        for name in names {
            source.set(&format!("{name}_q"), Ok(0.5));
        }
        let scalers: BTreeMap<String, RecordingScaler> = names
            .iter()
            .map(|n| ((*n).to_owned(), RecordingScaler::new(2)))
            .collect();
        let listed = Arc::new(Mutex::new(listing(found)));
        let backends = Discovering {
            fakes: Fakes {
                source,
                scalers: scalers.clone(),
            },
            listed: Arc::clone(&listed),
            changes: None,
        };
        (backends, scalers, listed)
    }
}

#[async_trait::async_trait]
impl Backends for Discovering {
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError> {
        self.fakes.loops(config, state)
    }

    async fn wait_ready(&self, _config: &Config) -> bool {
        true
    }

    async fn discover(&self, _section: &DiscoverSettings) -> Result<Discovery, String> {
        self.listed.lock().unwrap().clone()
    }

    fn discovery_changes(&self, _section: &DiscoverSettings) -> Option<ChangeFeed> {
        self.changes.clone().map(ChangeFeed::new)
    }
}

/// A daemon running on the fakes (`run_with`), reloading the same configuration.
struct Running {
    addr: std::net::SocketAddr,
    controls: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<Result<(), autoscale_bin::daemon::DaemonError>>,
}

impl Running {
    async fn start(dir: &std::path::Path, resync: &'static str, backends: Discovering) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (controls, rx) = mpsc::channel(4);
        let path = dir.to_owned();
        let task = tokio::spawn(run_with(
            config_with_resync(dir, resync).unwrap(),
            move || config_with_resync(&path, resync),
            Arc::new(backends),
            rx,
            listener,
        ));
        Running {
            addr,
            controls,
            task,
        }
    }

    async fn status(&self) -> StatusReport {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let body = client
            .get(format!("http://{}/status", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    async fn control(&self, control: Control) {
        self.controls.send(control).await.unwrap();
    }

    async fn stop(self) {
        self.control(Control::Shutdown).await;
        self.task.await.unwrap().unwrap();
    }
}

fn listing(services: Vec<DiscoveredService>) -> Result<Discovery, String> {
    Ok(Discovery {
        services,
        ..Discovery::default()
    })
}

#[tokio::test(start_paused = true)]
async fn services_come_change_and_go_while_the_others_run_undisturbed() {
    let dir = tempfile::tempdir().unwrap();
    let (backends, scalers, listed) = Discovering::on_target(
        &["static", "web", "api"],
        vec![swarm(
            "web",
            &[("autoscale.query", "web_q"), ("autoscale.max", "10")],
        )],
    );
    let daemon = Running::start(dir.path(), "1s", backends).await;

    // t = 5 s: both ran their first round.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(scalers["static"].status_calls(), 1);
    assert_eq!(scalers["web"].status_calls(), 1);
    let report = daemon.status().await;
    assert_eq!(report.discovery.len(), 1);
    assert_eq!(report.discovery[0].found, ["web"]);
    assert_eq!(report.discovery[0].kind, "swarm");

    // web's max is lowered to 1, api appears, and bad carries a bad label.
    *listed.lock().unwrap() = listing(vec![
        swarm(
            "web",
            &[("autoscale.query", "web_q"), ("autoscale.max", "1")],
        ),
        swarm("api", &[("autoscale.query", "api_q")]),
        swarm("bad", &[("autoscale.query", "q"), ("autoscale.max", "ten")]),
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await; // t = 8 s
    assert_eq!(scalers["web"].scale_calls(), [1], "web follows its new max");
    assert_eq!(scalers["api"].status_calls(), 1, "api started");
    let report = daemon.status().await;
    assert_eq!(report.discovery[0].found, ["web", "api"]);
    assert_eq!(report.discovery[0].skipped.len(), 1);
    assert_eq!(report.discovery[0].skipped[0].service, "bad");
    assert_eq!(
        report.discovery[0].skipped[0].reason,
        "service bad (swarm label autoscale.max): \"ten\" is not a whole number"
    );
    let names: Vec<&str> = report.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["api", "static", "web"]);
    let web = report.services.iter().find(|s| s.service == "web").unwrap();
    assert_eq!(web.max_replicas, 1);

    // web vanishes; the listing then fails: api is kept.
    *listed.lock().unwrap() = listing(vec![swarm("api", &[("autoscale.query", "api_q")])]);
    tokio::time::sleep(Duration::from_secs(2)).await; // t = 10 s
    let web_rounds = scalers["web"].status_calls();
    *listed.lock().unwrap() = Err("the Docker daemon is not reachable".to_owned());
    tokio::time::sleep(Duration::from_secs(25)).await; // t = 35 s
    assert_eq!(
        scalers["web"].status_calls(),
        web_rounds,
        "web's loop stopped"
    );
    let saved: EngineState =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("web.state.json")).unwrap())
            .unwrap();
    assert_eq!(saved.scale_events.len(), 1, "web's state was persisted");
    assert_eq!(
        scalers["api"].status_calls(),
        3,
        "api, found at the 6 s listing, keeps running while the listing fails: rounds at 6, 16 and 26 s, \
         none extra"
    );
    let report = daemon.status().await;
    assert_eq!(report.discovery[0].found, ["api"]);
    assert_eq!(
        report.discovery[0].last_error.as_deref(),
        Some("the Docker daemon is not reachable")
    );

    // The static service was never restarted: one round every 10 s since t = 0.
    assert_eq!(scalers["static"].status_calls(), 4);

    // web comes back, from its saved state.
    *listed.lock().unwrap() = listing(vec![
        swarm("api", &[("autoscale.query", "api_q")]),
        swarm(
            "web",
            &[("autoscale.query", "web_q"), ("autoscale.max", "1")],
        ),
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.stop().await;
    let saved: EngineState =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("web.state.json")).unwrap())
            .unwrap();
    assert_eq!(
        saved.scale_events.len(),
        1,
        "web resumed from its saved state (its scale event is still there)"
    );
    assert_eq!(
        scalers["static"].status_calls(),
        4,
        "static untouched to the end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_static_service_of_the_same_name_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (backends, _, _) = Discovering::on_target(
        &["static"],
        vec![swarm("static", &[("autoscale.query", "other_q")])],
    );
    let daemon = Running::start(dir.path(), "1s", backends).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = daemon.status().await;
    assert!(report.discovery[0].found.is_empty());
    assert_eq!(
        report.discovery[0].skipped[0].reason,
        "a [[service]] named \"static\" is configured; it takes precedence"
    );
    let static_report = &report.services[0];
    assert_eq!(
        static_report.checks[0].name, "cpu",
        "the configured service runs"
    );
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_discovery_can_be_asked_for_before_the_resync() {
    let dir = tempfile::tempdir().unwrap();
    let (backends, scalers, listed) = Discovering::on_target(&["static", "web"], Vec::new());
    let daemon = Running::start(dir.path(), "1h", backends).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    *listed.lock().unwrap() = listing(vec![swarm("web", &[("autoscale.query", "web_q")])]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        daemon.status().await.discovery[0].found.is_empty(),
        "not before the resync"
    );
    daemon.control(Control::Discover).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(daemon.status().await.discovery[0].found, ["web"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(scalers["web"].status_calls() >= 1, "web runs");
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_heard_from_the_endpoint_is_listed_before_the_resync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backends, _, listed) = Discovering::on_target(&["static", "web"], Vec::new());
    let (events, changes) = tokio::sync::watch::channel(0_u64);
    backends.changes = Some(changes);
    let daemon = Running::start(dir.path(), "1h", backends).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    *listed.lock().unwrap() = listing(vec![swarm("web", &[("autoscale.query", "web_q")])]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        daemon.status().await.discovery[0].found.is_empty(),
        "nothing heard yet"
    );
    events.send_modify(|n| *n += 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        daemon.status().await.discovery[0].found,
        ["web"],
        "heard, and listed at once"
    );
    daemon.stop().await;
}
