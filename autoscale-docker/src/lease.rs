//! The leader-election lease in Swarm's Raft store: the labels of a placeholder service with 0 replicas.
//!
//! Every write is a service update carrying the version read (`POST /services/ID/update?version=V`), so
//! Swarm refuses it (`update out of sequence`) when another candidate wrote first: a compare-and-swap on
//! Raft. The service is created by the first candidate that finds none; a second creation fails with a
//! name conflict, which is the same lost race. The service runs no task, so its image is never pulled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use autoscale_core::Timestamp;
use autoscale_core::lease::{LeaseError, LeaseRecord, LeaseStore, Versioned};
use bollard::models::{
    Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec,
};

use crate::docker::DockerEnv;
use crate::engine::{EngineEndpoint, ProcessEnv, resolve};
use crate::error::Error;
use crate::names::{self, Rule};

/// The default name of the placeholder service.
pub const DEFAULT_LOCK_SERVICE: &str = "autoscale-lock";
/// The label holding the holder's identity (empty: released).
pub const HOLDER_LABEL: &str = "autoscale.lease.holder";
/// The label holding the holder's last renewal, RFC 3339 by the holder's clock.
pub const RENEWED_LABEL: &str = "autoscale.lease.renewed_at";
/// The label holding the lease's duration in milliseconds.
pub const DURATION_LABEL: &str = "autoscale.lease.duration_ms";
/// The label holding how many times the lease changed hands.
pub const TRANSITIONS_LABEL: &str = "autoscale.lease.transitions";
/// The label holding the holder's monotonic clock at its last renewal, in milliseconds from an origin of its
/// own ([`LeaseRecord::monotonic`]).
pub const MONOTONIC_LABEL: &str = "autoscale.lease.monotonic_ms";
/// The image named in the placeholder's spec; with 0 replicas it is never pulled nor run.
const PLACEHOLDER_IMAGE: &str = "autoscale-lock-placeholder:0";

/// A [`LeaseStore`] in the labels of a Swarm service, through one manager's Engine API.
#[derive(Debug)]
pub struct SwarmLeaseStore {
    endpoint: Arc<EngineEndpoint>,
    service: String,
    timeout: Duration,
}

impl SwarmLeaseStore {
    /// The lease in the service `lock_service` on the manager `docker` names; each request within
    /// `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use autoscale_docker::{DockerEnv, SwarmLeaseStore};
    ///
    /// let store = SwarmLeaseStore::new(
    ///     DockerEnv::new().host("unix:///var/run/docker.sock"),
    ///     "autoscale-lock",
    ///     Duration::from_secs(2),
    /// )
    /// .unwrap();
    /// assert_eq!(store.service(), "autoscale-lock");
    /// assert!(SwarmLeaseStore::new(DockerEnv::new(), "lock;rm", Duration::from_secs(2)).is_err());
    /// ```
    pub fn new(
        docker: DockerEnv,
        lock_service: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let service = lock_service.into();
        names::check(Rule::SwarmService, &service)?;
        let endpoint = EngineEndpoint::shared(resolve(&docker, &ProcessEnv::current())?);
        Ok(SwarmLeaseStore {
            endpoint,
            service,
            timeout,
        })
    }

    /// The placeholder service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    async fn inspect(&self) -> Result<Option<Service>, Error> {
        let service = self.service.clone();
        let read = self
            .endpoint
            .request("GET /services/{id}", self.timeout, |docker| async move {
                docker
                    .inspect_service(
                        &service,
                        None::<bollard::query_parameters::InspectServiceOptions>,
                    )
                    .await
            })
            .await;
        match read {
            Ok(service) => Ok(Some(service)),
            Err(Error::Api { source }) if source.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, record: &LeaseRecord) -> ServiceSpec {
        ServiceSpec {
            name: Some(self.service.clone()),
            labels: Some(labels(record)),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
                ..ServiceSpecMode::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(PLACEHOLDER_IMAGE.to_owned()),
                    ..TaskSpecContainerSpec::default()
                }),
                ..TaskSpec::default()
            }),
            ..ServiceSpec::default()
        }
    }

    async fn create(&self, record: &LeaseRecord) -> Result<u64, LeaseError> {
        let spec = self.spec(record);
        let created = self
            .endpoint
            .request("POST /services/create", self.timeout, |docker| async move {
                docker.create_service(spec, None).await
            })
            .await;
        match created {
            Ok(_) => {}
            Err(Error::Api { source }) if source.status == Some(409) => {
                return Err(LeaseError::Conflict);
            }
            Err(e) => return Err(store_error(e)),
        }
        // The creation is the write; its version is read back for the next renewal (a later writer's
        // version would only make that renewal lose its compare-and-swap).
        let service = self.inspect().await.map_err(store_error)?;
        Ok(service.and_then(|s| version(&s)).unwrap_or(0))
    }
}

#[async_trait]
impl LeaseStore for SwarmLeaseStore {
    async fn get(&self) -> Result<Option<Versioned>, LeaseError> {
        let Some(service) = self.inspect().await.map_err(store_error)? else {
            return Ok(None);
        };
        let version = version(&service).ok_or_else(|| {
            LeaseError::Store(format!("service {} has no version", self.service).into())
        })?;
        let empty = HashMap::new();
        let labels = service
            .spec
            .as_ref()
            .and_then(|s| s.labels.as_ref())
            .unwrap_or(&empty);
        Ok(Some(Versioned {
            record: record(labels),
            version,
        }))
    }

    async fn update(&self, record: &LeaseRecord, version: Option<u64>) -> Result<u64, LeaseError> {
        let Some(expected) = version else {
            return self.create(record).await;
        };
        let Some(service) = self.inspect().await.map_err(store_error)? else {
            return Err(LeaseError::Conflict);
        };
        if self::version(&service) != Some(expected) {
            return Err(LeaseError::Conflict);
        }
        let mut spec = service.spec.unwrap_or_else(|| self.spec(record));
        let mut merged = spec.labels.take().unwrap_or_default();
        merged.extend(labels(record));
        spec.labels = Some(merged);
        let name = self.service.clone();
        let options = bollard::query_parameters::UpdateServiceOptionsBuilder::new()
            .version(i32::try_from(expected).unwrap_or(i32::MAX))
            .build();
        let updated = self
            .endpoint
            .request(
                "POST /services/{id}/update",
                self.timeout,
                |docker| async move { docker.update_service(&name, spec, options, None).await },
            )
            .await;
        match updated {
            Ok(_) => {}
            Err(Error::Api { source })
                if source.reason.contains("out of sequence") || source.status == Some(404) =>
            {
                return Err(LeaseError::Conflict);
            }
            Err(e) => return Err(store_error(e)),
        }
        // Swarm's version is its Raft index: the update's is the next one that touched the service, read
        // back; were it another writer's, the next renewal would lose its compare-and-swap, as it should.
        let service = self.inspect().await.map_err(store_error)?;
        Ok(service
            .and_then(|s| self::version(&s))
            .unwrap_or(expected + 1))
    }
}

fn version(service: &Service) -> Option<u64> {
    service.version.as_ref().and_then(|v| v.index)
}

fn store_error(error: Error) -> LeaseError {
    LeaseError::Store(Box::new(error))
}

/// The labels of `record`.
fn labels(record: &LeaseRecord) -> HashMap<String, String> {
    let renewed = jiff::Timestamp::from_millisecond(record.renewed_at.as_millis()).map_or_else(
        |_| record.renewed_at.as_millis().to_string(),
        |t| t.to_string(),
    );
    let mut labels = HashMap::from([
        (HOLDER_LABEL.to_owned(), record.holder.clone()),
        (RENEWED_LABEL.to_owned(), renewed),
        (
            DURATION_LABEL.to_owned(),
            record.lease.as_millis().to_string(),
        ),
        (TRANSITIONS_LABEL.to_owned(), record.transitions.to_string()),
    ]);
    if let Some(at) = record.monotonic {
        labels.insert(MONOTONIC_LABEL.to_owned(), at.as_millis().to_string());
    }
    labels
}

/// The record in `labels`. A service without them (made by hand) holds a released lease; a duration that
/// does not parse counts as the default lease.
fn record(labels: &HashMap<String, String>) -> LeaseRecord {
    let label = |key: &str| labels.get(key).map(String::as_str).unwrap_or_default();
    let renewed_at = label(RENEWED_LABEL)
        .parse::<jiff::Timestamp>()
        .map_or(Timestamp::EPOCH, |t| {
            Timestamp::from_millis(t.as_millisecond())
        });
    let lease = label(DURATION_LABEL).parse::<u64>().map_or(
        autoscale_core::lease::LeaseConfig::DEFAULT_LEASE,
        Duration::from_millis,
    );
    LeaseRecord {
        holder: label(HOLDER_LABEL).to_owned(),
        renewed_at,
        lease,
        transitions: label(TRANSITIONS_LABEL).parse().unwrap_or(0),
        monotonic: label(MONOTONIC_LABEL)
            .parse()
            .ok()
            .map(Timestamp::from_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_labels() {
        let record = LeaseRecord {
            holder: "host-a/1234".to_owned(),
            renewed_at: Timestamp::from_millis(1_796_029_810_349),
            lease: Duration::from_secs(15),
            transitions: 3,
            monotonic: Some(Timestamp::from_millis(61_002)),
        };
        let labels = labels(&record);
        assert_eq!(labels[RENEWED_LABEL], "2026-11-30T09:10:10.349Z");
        assert_eq!(labels[MONOTONIC_LABEL], "61002");
        assert_eq!(super::record(&labels), record);
        let released = LeaseRecord {
            holder: String::new(),
            monotonic: None,
            ..record
        };
        assert!(!super::labels(&released).contains_key(MONOTONIC_LABEL));
        assert_eq!(super::record(&super::labels(&released)), released);
    }

    #[test]
    fn a_service_without_lease_labels_holds_a_released_lease() {
        let record = record(&HashMap::new());
        assert_eq!(record.holder, "");
        assert_eq!(record.lease, Duration::from_secs(15));
    }
}
