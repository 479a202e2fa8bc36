//! The daemon's run loop: serve the endpoints, start one task per service and one discovery task per
//! `[[discover]]` section, and on each signal either reload the configuration or stop, waiting for running
//! rounds and persisting every state. A reload or a discovery restarts only the loops of the services it
//! adds, changes or removes (keeping each one's state); the others keep running undisturbed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use tokio::sync::{mpsc as channel, watch};

use crate::config::{Config, Env};
use crate::daemon::backends::{Backends, RealBackends};
use crate::daemon::discovery::{self, Found, Sections};
use crate::daemon::ha::Leadership;
use crate::daemon::health::PersistHealth;
use crate::daemon::history::History;
use crate::daemon::metrics::Metrics;
use crate::daemon::shared::{Persist, Shared};
use crate::daemon::store::{StateLock, StateStore};
use crate::daemon::supervise::{Supervisor, Wanted};
use crate::daemon::wiring::WiringError;
use crate::daemon::{Control, DaemonError, http};

/// The one writer of engine states: a thread, so that fsync never blocks a loop, and the only one, so that
/// no two saves race on a temporary file and a late write never replaces a newer state. Pending writes of the
/// same service are coalesced to the latest; a flush is answered once the writes asked for before it are
/// done.
fn spawn_state_writer(
    store: StateStore,
    health: Arc<PersistHealth>,
) -> (mpsc::Sender<Persist>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Persist>();
    let handle = std::thread::Builder::new()
        .name("state-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut pending = BTreeMap::new();
                let mut flushes = Vec::new();
                for message in std::iter::once(first).chain(rx.try_iter()) {
                    match message {
                        Persist::Save(service, state) => {
                            pending.insert(service, state);
                        }
                        Persist::Flush(done) => flushes.push(done),
                    }
                }
                for (service, state) in pending {
                    health.record(&service, store.save(&service, &state));
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        })
        .expect("spawning a thread");
    (tx, handle)
}

/// Check every service's scaler once (at start and after each reload), beside the loops: one ERROR per
/// service that cannot run, saying what is missing and how to fix it. The daemon keeps running; `/readyz`
/// reports the failure until the service's calls succeed.
async fn preflight(shared: Arc<Shared>, backends: Arc<dyn Backends>, config: Config) {
    for (service, result) in backends.preflight(&config).await {
        match &result {
            Ok(()) => tracing::info!(service = %service, "scaler preflight passed"),
            Err(failure) => tracing::error!(
                service = %service,
                "service {service} cannot scale: {failure}"
            ),
        }
        shared.preflight(&service, result.as_ref().map(|_| ()));
    }
}

/// Run the configured services and those the sections found; a discovered service that cannot be wired is
/// skipped with why. Returns the services started.
async fn apply_services(
    supervisor: &mut Supervisor,
    sections: &mut Sections,
    config: &Config,
) -> Result<Vec<crate::config::ServiceConfig>, WiringError> {
    let wanted = |sections: &Sections| {
        config
            .services
            .iter()
            .map(|s| Wanted {
                service: s.clone(),
                discovered: false,
            })
            .chain(sections.services().into_iter().map(|s| Wanted {
                service: s,
                discovered: true,
            }))
            .collect::<Vec<_>>()
    };
    let applied = supervisor.apply(config, wanted(sections)).await?;
    let mut started = applied.started;
    if !applied.failed.is_empty() {
        for (name, reason) in applied.failed {
            tracing::error!(service = %name, error = %reason, "discovered service cannot be wired; skipped");
            sections.unwirable(&name, format!("cannot be wired: {reason}"), config);
        }
        started.extend(supervisor.apply(config, wanted(sections)).await?.started);
    }
    Ok(started)
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
    // Before the port: a second daemon started with the same configuration is told that the state_dir is
    // taken, not that the address is.
    let lock = StateLock::acquire(&config.daemon.state_dir)?;
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
    let result = run_locked(
        lock,
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
///
/// It owns `daemon.state_dir` while it runs: if another daemon (or `once --apply`) holds it, it returns
/// [`DaemonError::Lock`] at once.
pub async fn run_with(
    config: Config,
    reload: impl Fn() -> Result<Config, crate::config::ConfigError>,
    backends: Arc<dyn Backends>,
    controls: tokio::sync::mpsc::Receiver<Control>,
    listener: tokio::net::TcpListener,
) -> Result<(), DaemonError> {
    let lock = StateLock::acquire(&config.daemon.state_dir)?;
    run_locked(lock, config, reload, backends, controls, listener).await
}

/// [`run_with`], with the state_dir's lock already taken. The lock is held until this returns (and released
/// by the kernel however the process ends).
async fn run_locked(
    _lock: StateLock,
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
    let history =
        History::open(&daemon.state_dir, daemon.history_max_bytes).map_err(DaemonError::History)?;
    let metrics = Metrics::new();
    let health = Arc::new(PersistHealth::new(metrics.persist_errors()));
    let (persist, writer) = spawn_state_writer(store.clone(), Arc::clone(&health));
    let shared = Arc::new(Shared::new(metrics, history, persist, health));
    let (http_stop, http_shutdown) = watch::channel(false);
    let http = tokio::spawn(http::serve(listener, Arc::clone(&shared), http_shutdown));

    let leadership = match &daemon.ha {
        Some(ha) => Some(Leadership::start(ha, Arc::clone(&shared))?),
        None => None,
    };

    let mut config = config;
    let mut supervisor = Supervisor::new(Arc::clone(&shared), Arc::clone(&backends), store);
    if let Some(leadership) = &leadership {
        supervisor.set_leadership(leadership.status());
    }
    let mut sections = Sections::default();
    sections.reconfigure(&config);
    shared.set_discovery(sections.reports());
    let (found_tx, mut found_rx) = channel::channel::<Found>(16);
    let mut generation = 0;
    let mut discovery = discovery::spawn_all(&config, generation, &backends, &shared, &found_tx);
    let mut started = false;
    let mut readiness: Option<tokio::task::JoinHandle<()>> = None;
    let mut preflights: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // What to do next: apply the configuration (after a start or a reload, `true` also re-checks that
    // Prometheus is ready), or wait for a signal or a discovery.
    let mut apply = Some(true);
    let result = loop {
        if let Some(reload) = apply.take() {
            shared.set_admin_token_file(config.daemon.admin_token_file.clone());
            let applied = match apply_services(&mut supervisor, &mut sections, &config).await {
                Ok(applied) => applied,
                Err(e) => break Err(DaemonError::Wiring(e)),
            };
            shared.set_discovery(sections.reports());
            // Only once the services are wired: a daemon that fails to start never says it started.
            if !std::mem::replace(&mut started, true) {
                tracing::info!(
                    listen = %daemon.listen,
                    services = config.services.len(),
                    discover = config.discover.len(),
                    "autoscale daemon started"
                );
            }
            if reload {
                if let Some(r) = readiness.take() {
                    r.abort();
                }
                let (shared, backends, config) =
                    (Arc::clone(&shared), Arc::clone(&backends), config.clone());
                readiness = Some(tokio::spawn(async move {
                    shared.prometheus_ready.store(false, Ordering::Relaxed);
                    let ready = backends.wait_ready(&config).await;
                    shared.prometheus_ready.store(ready, Ordering::Relaxed);
                }));
            }
            if !applied.is_empty() {
                let mut checked = config.clone();
                checked.services = applied;
                checked.discover = Vec::new();
                preflights.retain(|p| !p.is_finished());
                preflights.push(tokio::spawn(preflight(
                    Arc::clone(&shared),
                    Arc::clone(&backends),
                    checked,
                )));
            }
        }

        tokio::select! {
            control = controls.recv() => match control {
                Some(Control::Reload) => match reload() {
                    Ok(mut new) => {
                        if new.daemon.listen != config.daemon.listen
                            || new.daemon.state_dir != config.daemon.state_dir
                            || new.daemon.ha != config.daemon.ha
                        {
                            tracing::warn!(
                                "daemon.listen, daemon.state_dir and daemon.ha changes take effect after a restart"
                            );
                        }
                        tracing::info!(
                            services = new.services.len(),
                            discover = new.discover.len(),
                            "configuration reloaded"
                        );
                        new.daemon.listen = daemon.listen;
                        new.daemon.state_dir.clone_from(&daemon.state_dir);
                        config = new;
                        for task in discovery.drain(..) {
                            task.abort();
                        }
                        sections.reconfigure(&config);
                        generation += 1;
                        discovery =
                            discovery::spawn_all(&config, generation, &backends, &shared, &found_tx);
                        apply = Some(true);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the new configuration is invalid; keeping the running one");
                    }
                },
                Some(Control::Discover) => shared.trigger_discovery(),
                Some(Control::Shutdown) | None => break Ok(()),
            },
            Some(found) = found_rx.recv() => {
                if found.generation == generation && sections.update(found, &config) {
                    apply = Some(false);
                }
                shared.set_discovery(sections.reports());
            }
        }
    };
    supervisor.stop_all(daemon.shutdown_timeout).await;
    // Every holder of `shared` is gone before the state writer is joined: it stops once its senders are.
    drop(supervisor);
    let others = discovery.into_iter().chain(readiness).chain(preflights);
    for task in others {
        task.abort();
        let _ = task.await;
    }
    if let Some(leadership) = leadership {
        leadership.stop().await;
    }
    let _ = http_stop.send(true);
    let _ = http.await;
    drop(shared);
    let _ = writer.join();
    tracing::info!("autoscale daemon stopped");
    result
}
