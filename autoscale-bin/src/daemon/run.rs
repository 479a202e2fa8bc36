//! The daemon's run loop: serve the endpoints, start one task per service, and on each signal either reload
//! the configuration (keeping every service's state) or stop, waiting for running rounds and persisting
//! every state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use autoscale_core::EngineState;
use autoscale_core::controller::{Instruction, LoopEvent, ServiceLoop};
use tokio::sync::{mpsc as channel, watch};
use tokio::task::JoinSet;

use crate::config::{Config, Env};
use crate::daemon::backends::{Backends, RealBackends};
use crate::daemon::ha::Leadership;
use crate::daemon::health::PersistHealth;
use crate::daemon::history::History;
use crate::daemon::metrics::Metrics;
use crate::daemon::shared::{Persist, Shared};
use crate::daemon::store::{StateLock, StateStore};
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

/// Run `loops` until `stop` turns true, then wait for running rounds up to `shutdown_timeout`. Returns the
/// final states.
async fn run_loops(
    loops: Vec<(ServiceLoop, channel::Receiver<Instruction>)>,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) -> BTreeMap<String, EngineState> {
    let mut tasks = JoinSet::new();
    for (service_loop, instructions) in loops {
        let shared = Arc::clone(shared);
        let stop = stop.clone();
        let name = service_loop.name().to_owned();
        tasks.spawn(async move {
            let mut previous = service_loop.state().clone();
            let service = name.clone();
            let state = service_loop
                .run_instructed(stop, instructions, move |event, state| match event {
                    LoopEvent::Round(round) => shared.on_round(round, state, &mut previous),
                    LoopEvent::Paused(before, after) => {
                        shared.on_paused(&service, before, after, state, &mut previous);
                    }
                    LoopEvent::Observed(observation) => {
                        shared.on_observed(observation, state, &mut previous);
                    }
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
    let mut started = false;
    let result = loop {
        let names: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
        let load_state = |name: &str| {
            store
                .load(name, &names)
                .map_err(|source| WiringError::State {
                    service: name.to_owned(),
                    source,
                })
        };
        let loops = match backends.loops(&config, &load_state) {
            Ok(loops) => loops,
            Err(e) => break Err(DaemonError::Wiring(e)),
        };
        // Only once the services are wired: a daemon that fails to start never says it started.
        if !std::mem::replace(&mut started, true) {
            tracing::info!(listen = %daemon.listen, services = config.services.len(), "autoscale daemon started");
        }
        shared.set_admin_token_file(config.daemon.admin_token_file.clone());
        let mut instructed = Vec::with_capacity(loops.len());
        for (service, mut service_loop) in config.services.iter().zip(loops) {
            if let Some(leadership) = &leadership {
                service_loop.set_leadership(leadership.status());
            }
            let (instructions, receiver) = channel::channel(8);
            shared.register(
                service,
                config.daemon.dry_run || service.dry_run,
                service_loop.state(),
                service_loop.timeouts().round_budget(),
                instructions,
            );
            instructed.push((service_loop, receiver));
        }
        let loops = instructed;
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
        let preflight = tokio::spawn(preflight(
            Arc::clone(&shared),
            Arc::clone(&backends),
            config.clone(),
        ));
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
                        || new.daemon.ha != config.daemon.ha
                    {
                        tracing::warn!(
                            "daemon.listen, daemon.state_dir and daemon.ha changes take effect after a restart"
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
        preflight.abort();
        let _ = stop.send(true);
        let states = running.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the service loops failed");
            BTreeMap::new()
        });
        // Through the writer, after whatever it still has queued, and done before the states are read back.
        for (service, state) in states {
            shared.save(&service, state);
        }
        shared.flush();
        match next {
            Some(mut new) => {
                new.daemon.listen = daemon.listen;
                new.daemon.state_dir.clone_from(&daemon.state_dir);
                config = new;
            }
            None => break Ok(()),
        }
    };
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
