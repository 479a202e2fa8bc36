//! From validated configuration to running parts: Prometheus clients and sources, scalers, service loops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::Scaler;
use autoscale_core::controller::{CheckSource, ServiceLoop, Timeouts};
use autoscale_prom::{PrometheusClient, PrometheusSource};
use tokio::sync::Semaphore;

use crate::config::{self, Config, PrometheusSettings, ScalerSettings, ServiceConfig};

/// A backend's error, kept whole so that its `source()` chain survives.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the configuration could not be turned into running parts.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// A Prometheus setting the client refuses.
    #[error("prometheus{}: {source}", .instance.as_deref().map(|i| format!(".instances.{i}")).unwrap_or_default())]
    Prometheus {
        /// The instance, or `None` for `[prometheus]`.
        instance: Option<String>,
        /// What the client said.
        source: Box<autoscale_prom::Error>,
    },
    /// A check names a Prometheus instance that does not exist.
    #[error("service {service}: check {check}: unknown prometheus instance {instance:?}")]
    UnknownInstance {
        /// The service.
        service: String,
        /// The check.
        check: String,
        /// The instance name.
        instance: String,
    },
    /// A query option the client refuses.
    #[error("service {service}: check {check}: {source}")]
    Query {
        /// The service.
        service: String,
        /// The check.
        check: String,
        /// What the client said.
        source: Box<autoscale_prom::Error>,
    },
    /// A scaler setting the backend refuses.
    #[error("service {service}: scaler: {source}")]
    Scaler {
        /// The service.
        service: String,
        /// What the backend said (its own error type: `autoscale_docker::Error` or the Ansible crate's).
        source: BoxError,
    },
    /// The loop refused its parts.
    #[error(transparent)]
    Loop(#[from] autoscale_core::controller::LoopError),
    /// The persisted state could not be read.
    #[error("service {service}: {source}")]
    State {
        /// The service.
        service: String,
        /// The I/O or parse error.
        source: std::io::Error,
    },
}

/// One Prometheus server: its client and its query timeout.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The client (shared by every check that uses this server, so a round's identical queries are fetched
    /// once).
    pub client: Arc<PrometheusClient>,
    /// The per-query timeout.
    pub timeout: Duration,
}

/// The Prometheus clients of a configuration: `[prometheus]` and each named instance.
#[derive(Debug, Clone)]
pub struct Clients {
    default: Instance,
    instances: BTreeMap<String, Instance>,
}

impl Clients {
    /// Build every client (sends nothing).
    pub fn new(config: &Config) -> Result<Self, WiringError> {
        let instance = |settings: &PrometheusSettings,
                        name: Option<&String>|
         -> Result<Instance, WiringError> {
            Ok(Instance {
                client: Arc::new(client(settings, name)?),
                timeout: settings.timeout,
            })
        };
        let default = instance(&config.prometheus, None)?;
        let mut instances = BTreeMap::new();
        for (name, settings) in &config.instances {
            instances.insert(name.clone(), instance(settings, Some(name))?);
        }
        Ok(Clients { default, instances })
    }

    /// Every client, the default first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<PrometheusClient>> {
        std::iter::once(&self.default.client).chain(self.instances.values().map(|i| &i.client))
    }
}

fn client(
    settings: &PrometheusSettings,
    instance: Option<&String>,
) -> Result<PrometheusClient, WiringError> {
    settings
        .client_config()
        .and_then(PrometheusClient::new)
        .map_err(|source| WiringError::Prometheus {
            instance: instance.cloned(),
            source: Box::new(source),
        })
}

/// The scaler of a service, and the timeout of its calls.
pub fn scaler(service: &ServiceConfig) -> Result<(Arc<dyn Scaler>, Duration), WiringError> {
    let built: Result<Arc<dyn Scaler>, BoxError> = match &service.scaler {
        ScalerSettings::Compose(s) => s.scaler().map(|c| Arc::new(c) as _).map_err(Into::into),
        ScalerSettings::Swarm(s) => s.scaler().map(|c| Arc::new(c) as _).map_err(Into::into),
        ScalerSettings::Ansible(s) => {
            config::ansible_scaler(&service.name, s).map(|c| Arc::new(c) as _)
        }
    };
    let scaler = built.map_err(|source| WiringError::Scaler {
        service: service.name.clone(),
        source,
    })?;
    Ok((scaler, service.scaler.timeout()))
}

/// What every loop of one daemon shares.
#[derive(Debug, Clone)]
pub struct LoopParts {
    /// The Prometheus clients.
    pub clients: Clients,
    /// Bounds concurrent metric queries across services.
    pub metric_permits: Arc<Semaphore>,
    /// The daemon-wide dry run.
    pub dry_run: bool,
}

/// The loop of one service, starting from `state` when there is one.
pub fn service_loop(
    service: &ServiceConfig,
    parts: &LoopParts,
    state: Option<autoscale_core::EngineState>,
) -> Result<ServiceLoop, WiringError> {
    let (scaler, scaler_timeout) = scaler(service)?;
    let engine = service.engine.builder_without_checks();
    let mut builder = ServiceLoop::builder(&service.name, engine, scaler)
        .interval(service.interval)
        .dry_run(parts.dry_run || service.dry_run)
        .metric_permits(Arc::clone(&parts.metric_permits))
        .on_zero_outside(service.on_zero_outside);
    let mut metric_timeout = Duration::ZERO;
    for check in &service.checks {
        let client =
            match &check.prometheus {
                None => &parts.clients.default,
                Some(name) => parts.clients.instances.get(name).ok_or_else(|| {
                    WiringError::UnknownInstance {
                        service: service.name.clone(),
                        check: check.name.clone(),
                        instance: name.clone(),
                    }
                })?,
            };
        metric_timeout = metric_timeout.max(client.timeout);
        let options = check.query_options().map_err(|source| WiringError::Query {
            service: service.name.clone(),
            check: check.name.clone(),
            source: Box::new(source),
        })?;
        let source = PrometheusSource::new(Arc::clone(&client.client), options);
        let mut check_source = CheckSource::new(Arc::new(source), &check.query);
        // The loop fills a forecasting check's history from this query when it starts: at daemon start, and
        // for every loop a reload (SIGHUP) builds, so a service or check added by a reload is backfilled too.
        if let Some(query) = check.backfill_query() {
            check_source = check_source.backfill(query);
        }
        builder = builder.check(check.engine.clone(), check_source);
    }
    // The client enforces its own per-query timeout; this outer one also covers waiting for a permit.
    builder = builder.timeouts(Timeouts {
        status: scaler_timeout.saturating_add(Duration::from_secs(5)),
        metric: metric_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1)),
        scale: scaler_timeout.saturating_add(Duration::from_secs(5)),
    });
    if let Some(state) = state {
        builder = builder.state(state);
    }
    Ok(builder.build()?)
}
