//! The daemon: one [`ServiceLoop`] task per service, wired from the
//! configuration, plus state persistence, the history, metrics, HTTP endpoints and signal handling.
//!
//! - SIGTERM or SIGINT: stop scheduling, let running rounds (and their scale calls) finish up to
//!   `daemon.shutdown_timeout`, persist every state, exit 0.
//! - SIGHUP: load and validate the configuration again; if it is valid, restart the loops with it, keeping
//!   each service's state; if not, log the error and keep running the old one.

pub mod history;
pub mod http;
pub mod metrics;
pub mod store;
pub mod wiring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use autoscale_core::controller::{Round, ScaleResult, ServiceLoop};
use autoscale_core::{EngineState, Timestamp, Token};
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{Config, Env, ServiceConfig};
use crate::daemon::history::{Entry, History};
use crate::daemon::metrics::Metrics;
use crate::daemon::store::StateStore;
use crate::daemon::wiring::{Clients, LoopParts, WiringError};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration could not be wired into running parts.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory could not be used.
    #[error("state_dir {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Installing a signal handler failed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// What the HTTP endpoints and the loops share.
#[derive(Debug)]
pub struct Shared {
    metrics: Metrics,
    history: Mutex<History>,
    services: RwLock<BTreeMap<String, ServiceView>>,
    prometheus_ready: AtomicBool,
    persist: Mutex<mpsc::Sender<(String, EngineState)>>,
}

/// What `/status`, `/healthz` and `/readyz` know about one service.
#[derive(Debug, Clone)]
struct ServiceView {
    interval: Duration,
    since: Instant,
    last_round: Option<Instant>,
    dry_run: bool,
    cooldown_up: Duration,
    cooldown_down: Duration,
    last: Option<serde_json::Value>,
    last_blocked: Option<(Token, u32)>,
    last_scale_at: Option<Timestamp>,
}

impl Shared {
    fn new(history: History, persist: mpsc::Sender<(String, EngineState)>) -> Self {
        Shared {
            metrics: Metrics::new(),
            history: Mutex::new(history),
            services: RwLock::new(BTreeMap::new()),
            prometheus_ready: AtomicBool::new(false),
            persist: Mutex::new(persist),
        }
    }

    fn register(&self, service: &ServiceConfig, dry_run: bool, state: &EngineState) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = services.remove(&service.name);
        services.insert(
            service.name.clone(),
            ServiceView {
                interval: service.interval,
                since: Instant::now(),
                last_round: previous.as_ref().and_then(|p| p.last_round),
                dry_run,
                cooldown_up: service.engine.cooldown_up(),
                cooldown_down: service.engine.cooldown_down(),
                last: previous.as_ref().and_then(|p| p.last.clone()),
                last_blocked: None,
                last_scale_at: state.last_scale_at,
            },
        );
    }

    fn retain(&self, names: &[String]) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services.retain(|name, _| names.contains(name));
    }

    /// Account for a round: metrics, status, history, and persisting the state if it changed.
    fn on_round(&self, round: &Round, state: &EngineState, previous: &mut EngineState) {
        self.metrics.record(round);
        let entry = self.history_entry(round);
        {
            let mut services = self
                .services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(view) = services.get_mut(&round.service) {
                view.last_round = Some(Instant::now());
                view.last_scale_at = state.last_scale_at;
                view.last = Some(round_json(round));
                let blocked = blocked(round);
                if entry.as_ref().is_some_and(|e| e.result == "blocked")
                    && view.last_blocked == blocked
                {
                    // The same block as last round: already in the history.
                    view.last_blocked = blocked;
                    return self.persist(round, state, previous);
                }
                view.last_blocked = blocked;
            }
        }
        if let Some(entry) = entry {
            let mut history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = history.append(entry) {
                tracing::error!(error = %e, "cannot append to the history file");
            }
        }
        self.persist(round, state, previous);
    }

    fn persist(&self, round: &Round, state: &EngineState, previous: &mut EngineState) {
        if state != previous {
            *previous = state.clone();
            let sender = self
                .persist
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if sender.send((round.service.clone(), state.clone())).is_err() {
                tracing::error!(service = %round.service, "the state writer has stopped; state not persisted");
            }
        }
    }

    fn history_entry(&self, round: &Round) -> Option<Entry> {
        let decision = round.decision.as_ref();
        let (from, to, reason, result, error) = match (&round.scale, decision) {
            (ScaleResult::NotNeeded, Some(d)) if blocked(round).is_some() => {
                let to = d.reason.recommended.unwrap_or(d.desired);
                (
                    d.current,
                    to,
                    d.reason.to_string(),
                    "blocked".to_owned(),
                    None,
                )
            }
            (ScaleResult::NotNeeded, _) => match round.outside_change {
                Some((from, to)) => (
                    from,
                    to,
                    "changed outside autoscale".to_owned(),
                    "outside".to_owned(),
                    None,
                ),
                None => return None,
            },
            (ScaleResult::Failed { message, .. }, Some(d)) => (
                d.current,
                d.desired,
                d.reason.to_string(),
                "failed".to_owned(),
                Some(message.clone()),
            ),
            (other, Some(d)) => (
                d.current,
                d.desired,
                d.reason.to_string(),
                other.as_str().to_owned(),
                None,
            ),
            (_, None) => return None,
        };
        Some(Entry {
            time: rfc3339(round.at),
            at_ms: round.at.as_millis(),
            service: round.service.clone(),
            from,
            to,
            reason,
            result,
            error,
        })
    }

    /// Services whose loop has not completed a round within 3 intervals.
    fn stale_services(&self) -> Vec<String> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services
            .iter()
            .filter(|(_, v)| v.last_round.unwrap_or(v.since).elapsed() > v.interval * 3)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Why the daemon is not ready, if it is not.
    fn not_ready(&self) -> Option<String> {
        if !self.prometheus_ready.load(Ordering::Relaxed) {
            return Some("Prometheus has not answered /-/ready yet".into());
        }
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waiting: Vec<&str> = services
            .iter()
            .filter(|(_, v)| v.last_round.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        (!waiting.is_empty()).then(|| format!("no evaluation yet for {}", waiting.join(", ")))
    }

    fn status_json(&self) -> serde_json::Value {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let history = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = autoscale_core::controller::Clock::now(&autoscale_core::controller::SystemClock);
        let list: Vec<serde_json::Value> = services
            .iter()
            .map(|(name, v)| {
                let remaining = |cooldown: Duration| {
                    v.last_scale_at
                        .map(|t| cooldown.saturating_sub(now.saturating_since(t)).as_secs_f64())
                        .unwrap_or(0.0)
                };
                let last = v.last.clone().unwrap_or(serde_json::Value::Null);
                json!({
                    "service": name,
                    "current": last.get("current").cloned().unwrap_or_default(),
                    "ready": last.get("ready").cloned().unwrap_or_default(),
                    "desired": last.get("desired").cloned().unwrap_or_default(),
                    "dry_run": v.dry_run,
                    "interval_s": v.interval.as_secs_f64(),
                    "cooldown_remaining_s": { "up": remaining(v.cooldown_up), "down": remaining(v.cooldown_down) },
                    "last_evaluation": last,
                    "history": history.recent(name),
                })
            })
            .collect();
        json!({ "services": list })
    }
}

/// The count and token of a round that wanted a change the pipeline blocked (cooldown, rate rule, pause).
fn blocked(round: &Round) -> Option<(Token, u32)> {
    let d = round.decision.as_ref()?;
    let wanted = d.reason.recommended?;
    let blocking = matches!(
        d.reason.token,
        Token::Cooldown | Token::RateLimited | Token::Paused
    );
    (blocking && wanted != d.current && d.desired == d.current).then_some((d.reason.token, wanted))
}

fn round_json(round: &Round) -> serde_json::Value {
    let status = round.status.as_ref().ok();
    let decision = round.decision.as_ref();
    json!({
        "at": rfc3339(round.at),
        "current": status.map(|s| s.current),
        "ready": status.map(|s| s.ready),
        "desired": decision.map(|d| d.desired),
        "token": decision.map(|d| d.reason.token.as_str()),
        "reason": decision.map(|d| d.reason.to_string()),
        "status_error": round.status.as_ref().err().map(|(_, m)| m.clone()),
        "checks": round.checks.iter().map(|c| json!({
            "name": c.name,
            "value": c.result.as_ref().ok(),
            "error": c.result.as_ref().err().map(|(k, _)| k.as_str()),
            "recommendation": c.recommendation,
        })).collect::<Vec<_>>(),
        "scale": round.scale.as_str(),
        "duration_ms": round.duration.as_secs_f64() * 1000.0,
    })
}

fn rfc3339(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.as_millis())
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// A writer thread for engine states, so that fsync never blocks a loop. Pending writes of the same service
/// are coalesced to the latest.
fn spawn_state_writer(
    store: StateStore,
) -> (
    mpsc::Sender<(String, EngineState)>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel::<(String, EngineState)>();
    let handle = std::thread::Builder::new()
        .name("state-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut pending = BTreeMap::from([first]);
                pending.extend(rx.try_iter());
                for (service, state) in pending {
                    if let Err(e) = store.save(&service, &state) {
                        tracing::error!(service = %service, error = %e, "cannot persist the engine state");
                    }
                }
            }
        })
        .expect("spawning a thread");
    (tx, handle)
}

/// What the daemon is told to do from outside: the signals, as values (so tests can send them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM or SIGINT: stop scheduling, let running rounds finish, persist, exit.
    Shutdown,
    /// SIGHUP: reload the configuration.
    Reload,
}

/// How a configuration becomes running loops. [`RealBackends`] builds Prometheus sources and Docker or
/// Ansible scalers; tests build loops over in-memory fakes.
#[async_trait::async_trait]
pub trait Backends: Send + Sync {
    /// The loops of every service of `config`, each starting from `state(name)` when there is one.
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError>;

    /// Wait until every metric source answers (logging "Prometheus is ready"); false if one never did.
    async fn wait_ready(&self, config: &Config) -> bool;
}

/// The production backends: Prometheus, Docker Compose, Docker Swarm and Ansible.
#[derive(Debug, Default)]
pub struct RealBackends {
    clients: Mutex<Option<Clients>>,
}

#[async_trait::async_trait]
impl Backends for RealBackends {
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError> {
        let clients = Clients::new(config)?;
        let parts = LoopParts {
            clients: clients.clone(),
            metric_permits: Arc::new(Semaphore::new(config.daemon.concurrency.max(1))),
            dry_run: config.daemon.dry_run,
        };
        *self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(clients);
        config
            .services
            .iter()
            .map(|service| wiring::service_loop(service, &parts, state(&service.name)?))
            .collect()
    }

    async fn wait_ready(&self, _config: &Config) -> bool {
        let clients: Vec<_> = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|c| c.all().cloned().collect())
            .unwrap_or_default();
        let mut all = true;
        for client in clients {
            if let Err(e) = client.wait_ready(client.ready_timeout()).await {
                tracing::error!(
                    error = %e,
                    "Prometheus is not ready; checks fail (and never scale down) until it answers"
                );
                all = false;
            }
        }
        all
    }
}

/// Run `loops` until `stop` turns true, then wait for running rounds up to `shutdown_timeout`. Returns the
/// final states.
async fn run_loops(
    loops: Vec<ServiceLoop>,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> BTreeMap<String, EngineState> {
    let mut tasks = JoinSet::new();
    for service_loop in loops {
        let shared = Arc::clone(shared);
        let stop = stop.clone();
        let name = service_loop.name().to_owned();
        tasks.spawn(async move {
            let mut previous = service_loop.state().clone();
            let state = service_loop
                .run(stop, move |round, state| {
                    shared.on_round(round, state, &mut previous);
                })
                .await;
            (name, state)
        });
    }
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let mut states = BTreeMap::new();
    let deadline = tokio::time::sleep(shutdown_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((name, state))) => { states.insert(name, state); }
                Some(Err(e)) => tracing::error!(error = %e, "a service loop panicked"),
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!(
                    still_running = tasks.len(),
                    "shutdown timeout reached; abandoning the rounds still running"
                );
                tasks.abort_all();
                break;
            }
        }
    }
    states
}

/// The daemon, driven by the process's signals. `config_path` is re-read on SIGHUP (without one, the
/// environment is).
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    env: Env,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let (control, controls) = tokio::sync::mpsc::channel(4);
    let signals = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); Control::Shutdown }
                _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); Control::Shutdown }
                _ = sighup.recv() => { tracing::info!("SIGHUP: reloading the configuration"); Control::Reload }
            };
            if control.send(event).await.is_err() {
                break;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(config.daemon.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.daemon.listen,
            source,
        })?;
    let reload = move || match &config_path {
        Some(path) => Config::load(path, &env, Default::default()),
        None => Config::from_env(&env),
    };
    let result = run_with(
        config,
        reload,
        Arc::new(RealBackends::default()),
        controls,
        listener,
    )
    .await;
    signals.abort();
    result
}

/// The daemon with its parts given: `reload` produces the configuration on [`Control::Reload`], `backends`
/// turns it into loops, `controls` delivers the signals, and `listener` serves the HTTP endpoints. Returns
/// after a [`Control::Shutdown`] (or when `controls` closes), once every state is persisted.
pub async fn run_with(
    config: Config,
    reload: impl Fn() -> Result<Config, crate::config::ConfigError>,
    backends: Arc<dyn Backends>,
    mut controls: tokio::sync::mpsc::Receiver<Control>,
    listener: tokio::net::TcpListener,
) -> Result<(), DaemonError> {
    let daemon = config.daemon.clone();
    let store = StateStore::open(&daemon.state_dir).map_err(|source| DaemonError::StateDir {
        path: daemon.state_dir.clone(),
        source,
    })?;
    let history = History::open(&daemon.state_dir, daemon.history_max_bytes).map_err(|source| {
        DaemonError::StateDir {
            path: daemon.state_dir.clone(),
            source,
        }
    })?;
    let (persist, writer) = spawn_state_writer(store.clone());
    let shared = Arc::new(Shared::new(history, persist));
    let (http_stop, http_shutdown) = watch::channel(false);
    let http = tokio::spawn(http::serve(listener, Arc::clone(&shared), http_shutdown));
    tracing::info!(listen = %daemon.listen, services = config.services.len(), "autoscale daemon started");

    let mut config = config;
    let result = loop {
        let load_state = |name: &str| {
            store.load(name).map_err(|source| WiringError::State {
                service: name.to_owned(),
                source,
            })
        };
        let loops = match backends.loops(&config, &load_state) {
            Ok(loops) => loops,
            Err(e) => break Err(DaemonError::Wiring(e)),
        };
        for (service, service_loop) in config.services.iter().zip(&loops) {
            shared.register(
                service,
                config.daemon.dry_run || service.dry_run,
                service_loop.state(),
            );
        }
        shared.retain(
            &config
                .services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        );

        let readiness = {
            let (shared, backends, config) =
                (Arc::clone(&shared), Arc::clone(&backends), config.clone());
            tokio::spawn(async move {
                shared.prometheus_ready.store(false, Ordering::Relaxed);
                let ready = backends.wait_ready(&config).await;
                shared.prometheus_ready.store(ready, Ordering::Relaxed);
            })
        };
        let (stop, stop_rx) = watch::channel(false);
        let running = {
            let shared = Arc::clone(&shared);
            let timeout = config.daemon.shutdown_timeout;
            tokio::spawn(async move { run_loops(loops, &shared, stop_rx, timeout).await })
        };

        let next = match controls.recv().await {
            Some(Control::Reload) => match reload() {
                Ok(new) => {
                    if new.daemon.listen != config.daemon.listen
                        || new.daemon.state_dir != config.daemon.state_dir
                    {
                        tracing::warn!(
                            "daemon.listen and daemon.state_dir changes take effect after a restart"
                        );
                    }
                    tracing::info!(services = new.services.len(), "configuration reloaded");
                    Some(new)
                }
                Err(e) => {
                    tracing::error!(error = %e, "the new configuration is invalid; keeping the running one");
                    Some(config.clone())
                }
            },
            Some(Control::Shutdown) | None => None,
        };
        readiness.abort();
        let _ = stop.send(true);
        let states = running.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the service loops failed");
            BTreeMap::new()
        });
        for (service, state) in &states {
            if let Err(e) = store.save(service, state) {
                tracing::error!(service = %service, error = %e, "cannot persist the engine state");
            }
        }
        match next {
            Some(mut new) => {
                new.daemon.listen = daemon.listen;
                new.daemon.state_dir.clone_from(&daemon.state_dir);
                config = new;
            }
            None => break Ok(()),
        }
    };
    let _ = http_stop.send(true);
    let _ = http.await;
    drop(shared);
    let _ = writer.join();
    tracing::info!("autoscale daemon stopped");
    result
}

/// `autoscale once`: one round of every service, printed; scale only with `apply`.
pub async fn once(
    config: &Config,
    apply: bool,
    out: &mut dyn std::io::Write,
) -> Result<bool, DaemonError> {
    let parts = LoopParts {
        clients: Clients::new(config)?,
        metric_permits: Arc::new(Semaphore::new(config.daemon.concurrency.max(1))),
        dry_run: !apply || config.daemon.dry_run,
    };
    let mut all_ok = true;
    for service in &config.services {
        let mut service_loop = wiring::service_loop(service, &parts, None)?;
        let round = service_loop.evaluate_once().await;
        all_ok &= round.outcome() == "ok";
        let line = match (&round.status, &round.decision) {
            (Err((_, message)), _) => format!("{}: status read failed: {message}", round.service),
            (Ok(status), Some(d)) => {
                let checks: Vec<String> = round
                    .checks
                    .iter()
                    .map(|c| match &c.result {
                        Ok(v) => format!("{}={v}", c.name),
                        Err((kind, _)) => format!("{}=failed({kind})", c.name),
                    })
                    .collect();
                format!(
                    "{}: current={} ready={} desired={} [{}] {} | {}",
                    round.service,
                    status.current,
                    status.ready,
                    d.desired,
                    round.scale.as_str(),
                    d.reason,
                    checks.join(" ")
                )
            }
            (Ok(_), None) => format!("{}: no decision", round.service),
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(all_ok)
}

/// `/status` as a table for a person: one line per service.
pub fn status_table(json: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("/status is not JSON: {e}"))?;
    let mut out = format!(
        "{:<20} {:>7} {:>5} {:>7} {:>9}  {:<8} {}\n",
        "SERVICE", "CURRENT", "READY", "DESIRED", "COOLDOWN", "LAST", "REASON"
    );
    let services = value["services"].as_array().cloned().unwrap_or_default();
    for s in services {
        let num =
            |v: &serde_json::Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let cooldown = s["cooldown_remaining_s"]["up"]
            .as_f64()
            .unwrap_or(0.0)
            .max(s["cooldown_remaining_s"]["down"].as_f64().unwrap_or(0.0));
        let last = &s["last_evaluation"];
        out.push_str(&format!(
            "{:<20} {:>7} {:>5} {:>7} {:>8.0}s  {:<8} {}\n",
            s["service"].as_str().unwrap_or("?"),
            num(&s["current"]),
            num(&s["ready"]),
            num(&s["desired"]),
            cooldown,
            last["scale"].as_str().unwrap_or("-"),
            last["reason"]
                .as_str()
                .or(last["status_error"].as_str())
                .unwrap_or("no evaluation yet"),
        ));
    }
    Ok(out)
}
