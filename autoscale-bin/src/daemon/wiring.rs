//! From validated configuration to running parts: Prometheus clients and sources, scalers, service loops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::Scaler;
use autoscale_core::controller::{CheckSource, ServiceLoop, Timeouts};
use autoscale_prom::{
    PrometheusClient, PrometheusConfig, PrometheusSource, QueryOptions, RangeWindow,
};
use tokio::sync::Semaphore;

use crate::config::{
    AnsibleProgram, AnsibleSettings, AnsibleStatus, ComposeSettings, Config, DockerSettings,
    NonFinite, OnEmpty, PromAuth, PrometheusSettings, RangeReduce, ScalerSettings, SeriesReduce,
    ServiceConfig, SwarmSettings,
};

/// The compose project of the original scaler, the default of the env-only configuration.
const DEFAULT_COMPOSE_PROJECT: &str = "prometheus-autoscale-sim";

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
    #[error("service {service}: scaler: {message}")]
    Scaler {
        /// The service.
        service: String,
        /// What the backend said.
        message: String,
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
    let err = |source: autoscale_prom::Error| WiringError::Prometheus {
        instance: instance.cloned(),
        source: Box::new(source),
    };
    let mut config = PrometheusConfig::new(settings.url.expose().as_str())
        .map_err(err)?
        .timeout(settings.timeout)
        .insecure_skip_verify(settings.insecure_skip_verify)
        .on_empty(match settings.on_empty {
            OnEmpty::Error => autoscale_prom::OnEmpty::Error,
            OnEmpty::Zero => autoscale_prom::OnEmpty::Zero,
        })
        .max_response_bytes(settings.max_response_bytes)
        .ready_timeout(settings.ready_timeout);
    match &settings.auth {
        Some(PromAuth::Bearer { token_file }) => config = config.bearer_token_file(token_file),
        Some(PromAuth::Basic {
            username,
            password_file,
        }) => {
            config = config.basic_auth(username, password_file);
        }
        None => {}
    }
    for header in &settings.headers {
        config = config.header(&header.name, &header.value).map_err(err)?;
    }
    if let Some(ca) = &settings.ca_file {
        config = config.ca_file(ca);
    }
    if let Some(identity) = &settings.client_identity {
        config = config
            .client_cert_file(&identity.cert_file)
            .client_key_file(&identity.key_file);
    }
    PrometheusClient::new(config).map_err(err)
}

fn query_options(
    service: &ServiceConfig,
    check: &crate::config::CheckSettings,
) -> Result<QueryOptions, WiringError> {
    let mut options = QueryOptions::new()
        .on_empty(match check.on_empty {
            OnEmpty::Error => autoscale_prom::OnEmpty::Error,
            OnEmpty::Zero => autoscale_prom::OnEmpty::Zero,
        })
        .non_finite(match check.non_finite {
            NonFinite::Error => autoscale_prom::NonFinite::Error,
            NonFinite::Accept => autoscale_prom::NonFinite::Accept,
        });
    if let Some(range) = &check.range {
        let window = RangeWindow::new(range.range, range.step)
            .map_err(|source| WiringError::Query {
                service: service.name.clone(),
                check: check.name.clone(),
                source: Box::new(source),
            })?
            .reduce(match range.reduce {
                RangeReduce::Avg => autoscale_prom::RangeReduce::Avg,
                RangeReduce::Max => autoscale_prom::RangeReduce::Max,
                RangeReduce::Min => autoscale_prom::RangeReduce::Min,
                RangeReduce::Last => autoscale_prom::RangeReduce::Last,
            });
        options = options.range(window);
    }
    if let Some(reduce) = check.reduce {
        options = options.reduce(match reduce {
            SeriesReduce::Sum => autoscale_prom::Reduce::Sum,
            SeriesReduce::Max => autoscale_prom::Reduce::Max,
            SeriesReduce::Min => autoscale_prom::Reduce::Min,
            SeriesReduce::Avg => autoscale_prom::Reduce::Avg,
        });
    }
    Ok(options)
}

fn docker_cli(
    settings: &DockerSettings,
    command: Option<&[String]>,
    timeout: Duration,
) -> autoscale_docker::DockerCli {
    let mut env = autoscale_docker::DockerEnv::new();
    if let Some(host) = &settings.host {
        env = env.host(host);
    }
    if let Some(context) = &settings.context {
        env = env.context(context);
    }
    if let Some(verify) = settings.tls_verify {
        env = env.tls_verify(verify);
    }
    if let Some(path) = &settings.cert_path {
        env = env.cert_path(path);
    }
    let mut cli = autoscale_docker::DockerCli::new().env(env).timeout(timeout);
    if let Some(argv) = command {
        cli = cli.command(argv.iter().cloned());
    }
    cli
}

fn compose_scaler(
    service: &str,
    s: &ComposeSettings,
) -> Result<autoscale_docker::ComposeScaler, WiringError> {
    let mut builder = autoscale_docker::ComposeScaler::builder(&s.project, &s.service)
        .file(&s.file)
        .docker(docker_cli(&s.docker, None, s.timeout));
    if let Some(env_file) = &s.env_file {
        builder = builder.env_file(env_file);
    }
    for profile in &s.profiles {
        builder = builder.profile(profile);
    }
    if let Some(command) = &s.command {
        builder = builder.command(autoscale_docker::ComposeCommand::argv(
            command.iter().cloned(),
        ));
    }
    builder.build().map_err(|e| WiringError::Scaler {
        service: service.to_owned(),
        message: e.to_string(),
    })
}

fn swarm_scaler(
    service: &str,
    s: &SwarmSettings,
) -> Result<autoscale_docker::SwarmScaler, WiringError> {
    autoscale_docker::SwarmScaler::new(
        docker_cli(&s.docker, Some(&s.command), s.timeout),
        &s.service,
    )
    .map_err(|e| WiringError::Scaler {
        service: service.to_owned(),
        message: e.to_string(),
    })
}

fn ansible_scaler(
    service: &str,
    s: &AnsibleSettings,
) -> Result<autoscale_ansible::AnsibleScaler, WiringError> {
    let refuse = |message: String| WiringError::Scaler {
        service: service.to_owned(),
        message,
    };
    // Without `status`, count the compose service of the same name in the project the playbook scales
    // (`extra_vars.compose_project`, or the original scaler's project).
    let default_status = AnsibleStatus::Compose {
        project: s
            .extra_vars
            .get("compose_project")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_COMPOSE_PROJECT)
            .to_owned(),
        file: None,
        service: service.to_owned(),
    };
    let status = match s.status.as_ref().unwrap_or(&default_status) {
        AnsibleStatus::Compose {
            project,
            file,
            service: compose_service,
        } => {
            let mut builder = autoscale_docker::ComposeScaler::builder(project, compose_service)
                .docker(autoscale_docker::DockerCli::new().timeout(s.timeout));
            if let Some(file) = file {
                builder = builder.file(file);
            }
            let compose = builder.build().map_err(|e| refuse(e.to_string()))?;
            autoscale_ansible::StatusSource::Scaler(Arc::new(compose))
        }
        AnsibleStatus::Swarm {
            service: swarm_service,
        } => {
            let cli = autoscale_docker::DockerCli::new().timeout(s.timeout);
            let swarm = autoscale_docker::SwarmScaler::new(cli, swarm_service)
                .map_err(|e| refuse(e.to_string()))?;
            autoscale_ansible::StatusSource::Scaler(Arc::new(swarm))
        }
        AnsibleStatus::Playbook {
            playbook,
            inventory,
        } => {
            let mut status = autoscale_ansible::StatusPlaybook::new(playbook);
            if let Some(inventory) = inventory {
                status = status.inventory(inventory.display().to_string());
            }
            autoscale_ansible::StatusSource::Playbook(status)
        }
    };
    let mut builder = autoscale_ansible::AnsibleScaler::builder(service, &s.playbook, status)
        .extra_vars(s.extra_vars.clone())
        .timeout(s.timeout)
        .check_mode(s.check_mode)
        .tags(s.tags.iter().cloned());
    if let Some(inventory) = &s.inventory {
        builder = builder.inventory(inventory.display().to_string());
    }
    if let Some(limit) = &s.limit {
        builder = builder.limit(limit);
    }
    if let Some(vault) = &s.vault_password_file {
        builder = builder.vault_password_file(vault);
    }
    for (key, value) in &s.env {
        builder = builder.env(key, value);
    }
    builder = match &s.program {
        AnsibleProgram::Binary(path) => builder.ansible_playbook(path),
        AnsibleProgram::Virtualenv(dir) => builder.virtualenv(dir),
    };
    builder.build().map_err(|e| refuse(e.to_string()))
}

/// The scaler of a service, and the timeout of its calls.
pub fn scaler(service: &ServiceConfig) -> Result<(Arc<dyn Scaler>, Duration), WiringError> {
    Ok(match &service.scaler {
        ScalerSettings::Compose(s) => (Arc::new(compose_scaler(&service.name, s)?), s.timeout),
        ScalerSettings::Swarm(s) => (Arc::new(swarm_scaler(&service.name, s)?), s.timeout),
        ScalerSettings::Ansible(s) => (Arc::new(ansible_scaler(&service.name, s)?), s.timeout),
    })
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
        .metric_permits(Arc::clone(&parts.metric_permits));
    let mut metric_timeout = Duration::ZERO;
    for (engine_check, check) in service.engine.checks().iter().zip(&service.checks) {
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
        let source =
            PrometheusSource::new(Arc::clone(&client.client), query_options(service, check)?);
        let source = CheckSource::new(Arc::new(source), &check.query);
        builder = builder.check(engine_check.clone(), source);
    }
    // The client enforces its own per-query timeout; this outer one also covers waiting for a permit.
    builder = builder.timeouts(Timeouts {
        status: scaler_timeout + Duration::from_secs(5),
        metric: metric_timeout * 2 + Duration::from_secs(1),
        scale: scaler_timeout + Duration::from_secs(5),
    });
    if let Some(state) = state {
        builder = builder.state(state);
    }
    Ok(builder.build()?)
}
