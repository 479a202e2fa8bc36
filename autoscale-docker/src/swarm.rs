//! The Docker Swarm scaler.

use std::sync::Arc;

use async_trait::async_trait;
use autoscale_core::{ReplicaStatus, Replicas, ScaleOutcome, Scaler};
use bollard::models::Service;
use tokio::sync::Mutex;

use crate::docker::DockerCli;
use crate::engine::{EndpointCell, EngineEndpoint, SwarmState};
use crate::error::{ApiError, Error};
use crate::names::{self, Rule};
use crate::settings::SwarmSettings;

/// The backend name in [`autoscale_core::Error`]s from the Swarm scaler.
pub const BACKEND: &str = "docker swarm";

/// Scales one replicated Swarm service through the Docker Engine API; no docker CLI is needed.
///
/// - Status: `current` is the service's spec replicas, `ready` the number of its tasks that are running, from
///   the endpoint's `GET /services` and `GET /tasks?filters={"desired-state":["running"]}` of this round,
///   shared with every Swarm scaler on the same endpoint ([`EngineEndpoint`]). Swarm only reports a task with
///   a healthcheck as running once it is healthy, and replaces it when it turns unhealthy.
/// - Scale: `GET /services/NAME`, then `POST /services/ID/update?version=V` with the spec's replicas changed
///   (again once if another writer updated the service in between). It returns once the new spec is stored,
///   and the orchestrator converges in the background. Asking for the spec's count changes nothing and
///   returns [`ScaleOutcome::Unchanged`].
/// - Global services (one task per node) and jobs are refused with [`Error::UnsupportedMode`].
#[derive(Debug)]
pub struct SwarmScaler {
    settings: SwarmSettings,
    endpoint: EndpointCell,
    scaling: Mutex<()>,
}

impl SwarmScaler {
    /// The scaler of the Swarm service `service` (a name or an ID), on the daemon `docker` names.
    ///
    /// ```
    /// use autoscale_docker::{DockerCli, SwarmScaler};
    ///
    /// let scaler = SwarmScaler::new(DockerCli::new(), "mystack_webapp").unwrap();
    /// assert_eq!(scaler.service(), "mystack_webapp");
    /// assert!(SwarmScaler::new(DockerCli::new(), "web && reboot").is_err());
    /// ```
    pub fn new(docker: DockerCli, service: impl Into<String>) -> Result<Self, Error> {
        let command = docker.argv();
        let DockerCli { env, timeout, .. } = docker;
        SwarmScaler::from_settings(SwarmSettings {
            service: service.into(),
            command,
            timeout,
            docker: env,
        })
    }

    /// Check `settings` and build the scaler ([`SwarmSettings::scaler`]).
    pub(crate) fn from_settings(settings: SwarmSettings) -> Result<Self, Error> {
        names::check(Rule::SwarmService, &settings.service)?;
        let docker = DockerCli {
            command: Some(settings.command.clone()),
            env: settings.docker.clone(),
            timeout: settings.timeout,
        };
        docker.validate()?;
        Ok(SwarmScaler {
            settings,
            endpoint: EndpointCell::default(),
            scaling: Mutex::new(()),
        })
    }

    /// The settings the scaler was built from.
    pub fn settings(&self) -> &SwarmSettings {
        &self.settings
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.settings.service
    }

    /// The client of the scaler's Docker endpoint, shared with every scaler on the same endpoint (resolved on
    /// first use).
    pub fn endpoint(&self) -> Result<Arc<EngineEndpoint>, Error> {
        self.endpoint.get(&self.settings.docker)
    }

    /// The service's status, with this crate's error: from the endpoint's services and tasks lists of this
    /// round, shared with the other Swarm scalers on the endpoint.
    pub async fn read_status(&self) -> Result<ReplicaStatus, Error> {
        let endpoint = self.endpoint()?;
        let mut state = endpoint.swarm(self.settings.timeout).await?;
        if !state.services.iter().any(|s| self.is_this(s)) {
            // The shared list may predate the service: one fresh list before calling it missing.
            endpoint.invalidate_swarm();
            state = endpoint.swarm(self.settings.timeout).await?;
        }
        let service = state
            .services
            .iter()
            .find(|s| self.is_this(s))
            .ok_or_else(|| self.not_found(&endpoint))?;
        let current = self.replicas(service)?;
        let running = running_tasks(&state, service.id.as_deref().unwrap_or_default());
        // Right after a scale-down, tasks being stopped can still be listed as running.
        Ok(ReplicaStatus {
            current,
            ready: running.min(current),
        })
    }

    /// Scale the service to `replicas`, with this crate's error: a service update carrying the spec's version
    /// (`--detach`: it returns once the new spec is stored).
    pub async fn set_replicas(&self, replicas: Replicas) -> Result<ScaleOutcome, Error> {
        let Ok(_scaling) = self.scaling.try_lock() else {
            return Err(Error::Busy {
                target: format!("swarm service {}", self.settings.service),
            });
        };
        let endpoint = self.endpoint()?;
        let from = std::sync::Mutex::new(None);
        let changed = endpoint
            .update_replicas(
                &self.settings.service,
                self.settings.timeout,
                i64::from(replicas),
                |service| {
                    let current = self.replicas(service)?;
                    *from
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current);
                    Ok(current != replicas)
                },
            )
            .await
            .map_err(|e| match e {
                Error::Api { source } if source.status == Some(404) => Error::ServiceNotFound {
                    service: self.settings.service.clone(),
                    source: Arc::new(source),
                },
                other => other,
            })?;
        if !changed {
            tracing::debug!(service = %self.settings.service, replicas, "already at the count");
            return Ok(ScaleOutcome::Unchanged);
        }
        let from = from
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tracing::info!(service = %self.settings.service, from, to = replicas, "scaled swarm service");
        Ok(ScaleOutcome::Scaled)
    }

    /// The service by its name, its full ID, or an unambiguous ID prefix as the CLI takes it.
    fn is_this(&self, service: &Service) -> bool {
        let name = service.spec.as_ref().and_then(|s| s.name.as_deref());
        name == Some(self.settings.service.as_str())
            || service.id.as_deref() == Some(self.settings.service.as_str())
    }

    fn replicas(&self, service: &Service) -> Result<Replicas, Error> {
        let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
        let unsupported = |mode: &str| Error::UnsupportedMode {
            service: self.settings.service.clone(),
            mode: mode.to_owned(),
        };
        match mode {
            Some(m) if m.replicated.is_some() => {
                let replicas = m.replicated.as_ref().and_then(|r| r.replicas).unwrap_or(1);
                Replicas::try_from(replicas).map_err(|_| Error::Api {
                    source: ApiError {
                        request: "GET /services".to_owned(),
                        endpoint: String::new(),
                        status: None,
                        reason: format!(
                            "service {:?} has {replicas} replicas",
                            self.settings.service
                        ),
                        kind: autoscale_core::FailureKind::BadResult,
                    },
                })
            }
            Some(m) if m.global.is_some() => Err(unsupported("global")),
            Some(m) if m.replicated_job.is_some() => Err(unsupported("replicated-job")),
            Some(m) if m.global_job.is_some() => Err(unsupported("global-job")),
            _ => Err(unsupported("unknown")),
        }
    }

    fn not_found(&self, endpoint: &EngineEndpoint) -> Error {
        Error::ServiceNotFound {
            service: self.settings.service.clone(),
            source: Arc::new(ApiError {
                request: "GET /services".to_owned(),
                endpoint: endpoint.address().to_owned(),
                status: None,
                reason: "no such service in the list".to_owned(),
                kind: autoscale_core::FailureKind::Rejected,
            }),
        }
    }
}

#[async_trait]
impl Scaler for SwarmScaler {
    async fn status(&self) -> autoscale_core::Result<ReplicaStatus> {
        self.read_status().await.map_err(|e| e.attribute(BACKEND))
    }

    async fn scale(&self, replicas: Replicas) -> autoscale_core::Result<ScaleOutcome> {
        self.set_replicas(replicas)
            .await
            .map_err(|e| e.attribute(BACKEND))
    }

    /// Notified by the endpoint's event stream when the service is updated (its replicas set by hand) or one
    /// of its task containers on this node starts or stops (see [`EngineEndpoint`]); `None` when the endpoint
    /// cannot be resolved or outside a tokio runtime.
    fn changes(&self) -> Option<autoscale_core::ChangeFeed> {
        let endpoint = self
            .endpoint()
            .inspect_err(
                |e| tracing::debug!(error = %e, "no change feed: the endpoint is unresolved"),
            )
            .ok()?;
        crate::events::subscribe(
            &endpoint,
            crate::events::Target::Swarm(self.settings.service.clone()),
        )
    }
}

/// The status of `service` (a name or ID) in an endpoint's services and tasks lists: `None` when it is not
/// there or not a replicated service.
pub(crate) fn status_in(state: &SwarmState, service: &str) -> Option<ReplicaStatus> {
    let found = state.services.iter().find(|s| {
        s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(service)
            || s.id.as_deref() == Some(service)
    })?;
    let replicas = found
        .spec
        .as_ref()?
        .mode
        .as_ref()?
        .replicated
        .as_ref()?
        .replicas
        .unwrap_or(1);
    let current = Replicas::try_from(replicas).ok()?;
    let running = running_tasks(state, found.id.as_deref().unwrap_or_default());
    Some(ReplicaStatus {
        current,
        ready: running.min(current),
    })
}

/// How many tasks of the service with ID `id` are running.
fn running_tasks(state: &SwarmState, id: &str) -> Replicas {
    let running = state
        .tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(id))
        .filter(|t| {
            t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING)
        })
        .count();
    Replicas::try_from(running).unwrap_or(Replicas::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "web;id", "-web", "web.1", "web_", "$(reboot)"] {
            let err = SwarmScaler::new(DockerCli::new(), name).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name}: {err}");
        }
    }
}
