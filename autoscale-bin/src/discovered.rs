//! Service discovery's types, as the Docker backend defines them: what a `[[discover]]` section finds on its
//! endpoint. The configuration turns a found service into a `ServiceConfig`; the daemon asks for them.
//!
//! Until the backend's discovery API is available, this holds the same interface with a discovery that
//! always fails with "not available".

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::Replicas;
use autoscale_docker::{DockerEnv, EngineEndpoint, Error};

/// What a discovery lists: Swarm services or Compose services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverKind {
    /// Swarm services, by their service labels.
    Swarm,
    /// Compose services, by their containers' labels.
    Compose,
}

/// Which labels opt a service in: `key=value` pairs, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<(String, String)>);

impl Selector {
    /// `autoscale.enable=true` or `a=b,c=d`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut pairs = Vec::new();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            if k.trim().is_empty() {
                return Err(format!("{part:?} has an empty key"));
            }
            pairs.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Ok(Selector(pairs))
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector(vec![("autoscale.enable".to_owned(), "true".to_owned())])
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// A service that opted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredService {
    /// Swarm or Compose.
    pub kind: DiscoverKind,
    /// The Swarm service ID, or `project/service`.
    pub id: String,
    /// The Swarm service name, or the Compose service.
    pub name: String,
    /// The Compose project.
    pub project: Option<String>,
    /// The Compose files, as the project was started with.
    pub config_files: Vec<PathBuf>,
    /// The Compose project's working directory.
    pub working_dir: Option<PathBuf>,
    /// The replicas when it was discovered.
    pub replicas: Replicas,
    /// Every `autoscale.*` label, full key.
    pub labels: BTreeMap<String, String>,
}

impl DiscoveredService {
    /// A service with no project, files or labels.
    pub fn new(
        kind: DiscoverKind,
        id: impl Into<String>,
        name: impl Into<String>,
        replicas: Replicas,
    ) -> Self {
        DiscoveredService {
            kind,
            id: id.into(),
            name: name.into(),
            project: None,
            config_files: Vec::new(),
            working_dir: None,
            replicas,
            labels: BTreeMap::new(),
        }
    }
}

/// A service that opted in but cannot be scaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedService {
    /// Swarm or Compose.
    pub kind: DiscoverKind,
    /// See [`DiscoveredService::id`].
    pub id: String,
    /// See [`DiscoveredService::name`].
    pub name: String,
    /// Why.
    pub reason: String,
}

/// One discovery's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The services to scale.
    pub services: Vec<DiscoveredService>,
    /// The ones that cannot be scaled, with why.
    pub skipped: Vec<SkippedService>,
}

/// The endpoint of `env`.
pub fn endpoint(env: &DockerEnv) -> Result<Arc<EngineEndpoint>, Error> {
    let _ = env;
    Err(Error::InvalidConfig {
        reason: "service discovery is not available in this build".to_owned(),
    })
}

/// List the services of `kind` whose labels match `selector`.
pub async fn discover(
    endpoint: &EngineEndpoint,
    kind: DiscoverKind,
    selector: &Selector,
    timeout: Duration,
) -> Result<Discovery, Error> {
    let _ = (endpoint, kind, selector, timeout);
    Err(Error::InvalidConfig {
        reason: "service discovery is not available in this build".to_owned(),
    })
}
