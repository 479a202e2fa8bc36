//! The running service loops, each with its own stop: a new set of services (from a reload or a discovery)
//! stops only the loops that were removed or changed, persisting their state, starts only the new and changed
//! ones from their saved state, and leaves every other loop running undisturbed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::EngineState;
use autoscale_core::controller::{Instruction, LoopEvent, ServiceLoop};
use tokio::sync::{mpsc as channel, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, ServiceConfig};
use crate::daemon::backends::Backends;
use crate::daemon::shared::Shared;
use crate::daemon::store::StateStore;
use crate::daemon::wiring::WiringError;

/// One running loop.
struct Running {
    /// What it was started from: a loop whose configuration (or the daemon-wide parts it shares) changes is
    /// restarted.
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<EngineState>,
}

/// A service to run, and whether it was discovered (a discovered service that cannot be wired is skipped;
/// a configured one stops the daemon, as at start).
pub(super) struct Wanted {
    pub(super) service: ServiceConfig,
    pub(super) discovered: bool,
}

/// What [`Supervisor::apply`] did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// The services started (new or changed), for their preflight.
    pub(super) started: Vec<ServiceConfig>,
    /// Discovered services that could not be wired, with why.
    pub(super) failed: Vec<(String, String)>,
}

/// The running loops.
pub(super) struct Supervisor {
    running: BTreeMap<String, Running>,
    shared: Arc<Shared>,
    backends: Arc<dyn Backends>,
    store: StateStore,
    /// The election's outcome, given to every loop started (`[daemon] ha`): only the leader scales.
    leadership: Option<tokio::sync::watch::Receiver<autoscale_core::lease::LeaseStatus>>,
}

impl Supervisor {
    pub(super) fn new(shared: Arc<Shared>, backends: Arc<dyn Backends>, store: StateStore) -> Self {
        Supervisor {
            running: BTreeMap::new(),
            shared,
            backends,
            store,
            leadership: None,
        }
    }

    /// Give every loop started from now on the election's outcome: it scales only while this daemon leads.
    pub(super) fn set_leadership(
        &mut self,
        leadership: tokio::sync::watch::Receiver<autoscale_core::lease::LeaseStatus>,
    ) {
        self.leadership = Some(leadership);
    }

    /// Make the running loops those of `wanted`, with the daemon-wide parts of `config`.
    pub(super) async fn apply(
        &mut self,
        config: &Config,
        wanted: Vec<Wanted>,
    ) -> Result<Applied, WiringError> {
        let parts = parts_fingerprint(config);
        let fingerprints: BTreeMap<String, String> = wanted
            .iter()
            .map(|w| (w.service.name.clone(), format!("{parts}|{:?}", w.service)))
            .collect();
        let outdated: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| fingerprints.get(*name) != Some(&running.fingerprint))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &outdated {
            let why = if fingerprints.contains_key(name) {
                "changed"
            } else {
                "removed"
            };
            tracing::info!(service = %name, "service {why}: stopping its loop");
        }
        self.stop(&outdated, config.daemon.shutdown_timeout).await;

        let names: Vec<String> = fingerprints.keys().cloned().collect();
        let load_state = |name: &str| {
            self.store
                .load(name, &names)
                .map_err(|source| WiringError::State {
                    service: name.to_owned(),
                    source,
                })
        };
        let (configured, discovered): (Vec<Wanted>, Vec<Wanted>) = wanted
            .into_iter()
            .filter(|w| !self.running.contains_key(&w.service.name))
            .partition(|w| !w.discovered);
        let mut applied = Applied::default();
        // The configured services in one batch, as at start: one that cannot be wired is an error.
        let batch: Vec<ServiceConfig> = configured.into_iter().map(|w| w.service).collect();
        let mut built = Vec::new();
        if !batch.is_empty() {
            let loops = self
                .backends
                .loops(&subset(config, batch.clone()), &load_state)?;
            built.extend(batch.into_iter().zip(loops));
        }
        // Each discovered one alone: one that cannot be wired is skipped, the others start.
        for w in discovered {
            match self
                .backends
                .loops(&subset(config, vec![w.service.clone()]), &load_state)
            {
                Ok(mut loops) if loops.len() == 1 => {
                    built.push((w.service, loops.remove(0)));
                }
                Ok(_) => applied
                    .failed
                    .push((w.service.name, "no loop was built".to_owned())),
                Err(e) => applied.failed.push((w.service.name, e.to_string())),
            }
        }
        for (service, mut service_loop) in built {
            if let Some(leadership) = &self.leadership {
                service_loop.set_leadership(leadership.clone());
            }
            let (instructions, receiver) = channel::channel(8);
            self.shared.register(
                &service,
                config.daemon.dry_run || service.dry_run,
                service_loop.state(),
                service_loop.timeouts().round_budget(),
                instructions,
            );
            let fingerprint = fingerprints.get(&service.name).cloned().unwrap_or_default();
            let (stop, task) = spawn(Arc::clone(&self.shared), service_loop, receiver);
            tracing::info!(service = %service.name, "service loop started");
            self.running.insert(
                service.name.clone(),
                Running {
                    fingerprint,
                    stop,
                    task,
                },
            );
            applied.started.push(service);
        }
        let running: Vec<String> = self.running.keys().cloned().collect();
        self.shared.retain(&running);
        Ok(applied)
    }

    /// Stop the loops of `names`, let their running rounds finish up to `timeout`, and persist their states.
    pub(super) async fn stop(&mut self, names: &[String], timeout: Duration) {
        let stopping: Vec<(String, Running)> = names
            .iter()
            .filter_map(|n| self.running.remove(n).map(|r| (n.clone(), r)))
            .collect();
        if stopping.is_empty() {
            return;
        }
        for (_, running) in &stopping {
            let _ = running.stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut abandoned = 0;
        for (name, mut running) in stopping {
            match tokio::time::timeout_at(deadline, &mut running.task).await {
                Ok(Ok(state)) => self.shared.save(&name, state),
                Ok(Err(e)) => {
                    tracing::error!(service = %name, error = %e, "a service loop panicked");
                }
                Err(_) => {
                    running.task.abort();
                    abandoned += 1;
                }
            }
        }
        if abandoned > 0 {
            tracing::warn!(
                still_running = abandoned,
                "shutdown timeout reached; abandoning the rounds still running"
            );
        }
        // Through the writer, after whatever it still has queued, and done before a state is read back.
        self.shared.flush();
    }

    /// Stop every loop, persisting every state.
    pub(super) async fn stop_all(&mut self, timeout: Duration) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        self.stop(&names, timeout).await;
    }
}

/// `config` with only `services`, to wire them with its daemon-wide parts.
fn subset(config: &Config, services: Vec<ServiceConfig>) -> Config {
    Config {
        source: config.source.clone(),
        prometheus: config.prometheus.clone(),
        instances: config.instances.clone(),
        daemon: config.daemon.clone(),
        services,
        discover: Vec::new(),
    }
}

/// The daemon-wide settings every loop is built with: when they change, every loop restarts.
fn parts_fingerprint(config: &Config) -> String {
    format!(
        "{:?}|{:?}|{}|{}",
        config.prometheus, config.instances, config.daemon.concurrency, config.daemon.dry_run
    )
}

/// Run one loop until its stop turns true; it returns its final state.
fn spawn(
    shared: Arc<Shared>,
    service_loop: ServiceLoop,
    instructions: channel::Receiver<Instruction>,
) -> (watch::Sender<bool>, JoinHandle<EngineState>) {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut previous = service_loop.state().clone();
        let service = service_loop.name().to_owned();
        service_loop
            .run_instructed(stop_rx, instructions, move |event, state| match event {
                LoopEvent::Round(round) => shared.on_round(round, state, &mut previous),
                LoopEvent::Paused(before, after) => {
                    shared.on_paused(&service, before, after, state, &mut previous);
                }
                LoopEvent::Observed(observation) => {
                    shared.on_observed(observation, state, &mut previous);
                }
            })
            .await
    });
    (stop, task)
}
