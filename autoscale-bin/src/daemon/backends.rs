//! How a configuration becomes running loops: the [`Backends`] seam, and the production backends behind it.

use std::sync::{Arc, Mutex};

use autoscale_core::controller::ServiceLoop;
use autoscale_core::{ChangeFeed, EngineState};
use tokio::sync::Semaphore;

use crate::config::{Config, DiscoverSettings, PrometheusSettings};
use crate::daemon::preflight;
use crate::daemon::wiring::{self, Clients, LoopParts, WiringError};
use crate::discovered::{self, Discovery, Selector};

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

    /// Check that each service's scaler can run (its programs are found, its status can be read): one
    /// result per service checked. Backends without such checks (in-memory fakes) check none.
    async fn preflight(&self, config: &Config) -> Vec<(String, Result<(), preflight::Failure>)> {
        let _ = config;
        Vec::new()
    }

    /// List the services a `[[discover]]` section selects on its endpoint. The error says what was asked
    /// of which endpoint and what came back. Backends without an endpoint (in-memory fakes) find nothing.
    async fn discover(&self, section: &DiscoverSettings) -> Result<Discovery, String> {
        let _ = section;
        Ok(Discovery::default())
    }

    /// A feed notified when the section's endpoint sees a service change (created, relabelled, removed), so
    /// that it is listed again at once rather than at its next resync. `None`: the resync alone.
    fn discovery_changes(&self, section: &DiscoverSettings) -> Option<ChangeFeed> {
        let _ = section;
        None
    }
}

/// The production backends: Prometheus, Docker Compose, Docker Swarm and Ansible.
#[derive(Debug, Default)]
pub struct RealBackends {
    clients: Mutex<Option<Clients>>,
    /// The parts every loop shares, with the settings they were built from: loops started later (a
    /// discovered service, a service a reload adds) share the clients and the query permits of the others.
    parts: Mutex<Option<(PartsKey, LoopParts)>>,
}

/// The settings [`LoopParts`] are built from.
type PartsKey = (
    PrometheusSettings,
    std::collections::BTreeMap<String, PrometheusSettings>,
    usize,
    bool,
);

#[async_trait::async_trait]
impl Backends for RealBackends {
    fn loops(
        &self,
        config: &Config,
        state: &dyn Fn(&str) -> Result<Option<EngineState>, WiringError>,
    ) -> Result<Vec<ServiceLoop>, WiringError> {
        let key: PartsKey = (
            config.prometheus.clone(),
            config.instances.clone(),
            config.daemon.concurrency,
            config.daemon.dry_run,
        );
        let parts = {
            let mut cached = self
                .parts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*cached {
                Some((k, parts)) if *k == key => parts.clone(),
                _ => {
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
                    *cached = Some((key, parts.clone()));
                    parts
                }
            }
        };
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

    async fn preflight(&self, config: &Config) -> Vec<(String, Result<(), preflight::Failure>)> {
        let mut checks = tokio::task::JoinSet::new();
        for service in config.services.clone() {
            checks.spawn(async move {
                let result = preflight::check(&service).await;
                (service.name, result)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = checks.join_next().await {
            match joined {
                Ok(result) => results.push(result),
                Err(e) => tracing::error!(error = %e, "a scaler preflight panicked"),
            }
        }
        results
    }

    fn discovery_changes(&self, section: &DiscoverSettings) -> Option<ChangeFeed> {
        discovered::endpoint(&section.docker)
            .ok()?
            .discovery_changes(section.kind)
    }

    async fn discover(&self, section: &DiscoverSettings) -> Result<Discovery, String> {
        let endpoint = discovered::endpoint(&section.docker).map_err(|e| e.to_string())?;
        let selector = Selector::parse(&section.selector)?;
        discovered::discover(&endpoint, section.kind, &selector, section.timeout)
            .await
            .map_err(|e| e.to_string())
    }
}
