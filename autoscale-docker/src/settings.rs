//! The scalers' settings as plain values: what a configuration file holds for a Compose or Swarm scaler, with
//! the defaults of the keys it may leave out. A settings value becomes a scaler with
//! [`ComposeSettings::scaler`] or [`SwarmSettings::scaler`], which check every name against Docker's rules
//! ([`NameRule`](crate::NameRule)).
//!
//! They serialize with the configuration file's key names (durations as serde writes a `Duration`), so a
//! configuration can be written back out without listing the keys again.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::compose::{ComposeCommand, ComposeScaler};
use crate::docker::{DEFAULT_TIMEOUT, DockerCli, DockerEnv};
use crate::error::Error;
use crate::swarm::SwarmScaler;

/// The Compose project of a scaler that names none: the original scaler's.
pub const DEFAULT_PROJECT: &str = "prometheus-autoscale-sim";
/// The Compose file of a scaler that names none, relative to the working directory.
pub const DEFAULT_FILE: &str = "docker-compose.yml";
/// The docker command of a Swarm scaler that names none, looked up in `PATH`.
pub const DEFAULT_DOCKER_COMMAND: &str = "docker";

/// A [`ComposeScaler`]'s settings (`kind = "compose"`).
///
/// ```
/// use autoscale_docker::ComposeSettings;
///
/// let settings = ComposeSettings::new("webapp");
/// assert_eq!(settings.project, "prometheus-autoscale-sim");
/// assert_eq!(settings.scaler()?.service(), "webapp");
/// # Ok::<(), autoscale_docker::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeSettings {
    /// The Compose project.
    pub project: String,
    /// The Compose file.
    pub file: PathBuf,
    /// The Compose service.
    pub service: String,
    /// The Compose command; `None` detects one (`docker compose`, else `docker-compose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// An env file for Compose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// Compose profiles to enable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The timeout of one command.
    pub timeout: Duration,
    /// Which Docker daemon to talk to.
    #[serde(flatten)]
    pub docker: DockerEnv,
}

impl ComposeSettings {
    /// The settings of `service` with every other key at its default.
    pub fn new(service: impl Into<String>) -> Self {
        ComposeSettings {
            project: DEFAULT_PROJECT.to_owned(),
            file: PathBuf::from(DEFAULT_FILE),
            service: service.into(),
            command: None,
            env_file: None,
            profiles: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            docker: DockerEnv::default(),
        }
    }

    /// Check the settings and build the scaler. Nothing runs yet.
    pub fn scaler(&self) -> Result<ComposeScaler, Error> {
        let docker = DockerCli::new()
            .env(self.docker.clone())
            .timeout(self.timeout);
        let mut builder = ComposeScaler::builder(&self.project, &self.service)
            .file(&self.file)
            .docker(docker);
        if let Some(env_file) = &self.env_file {
            builder = builder.env_file(env_file);
        }
        for profile in &self.profiles {
            builder = builder.profile(profile);
        }
        if let Some(command) = &self.command {
            builder = builder.command(ComposeCommand::argv(command));
        }
        builder.build()
    }
}

/// A [`SwarmScaler`]'s settings (`kind = "swarm"`).
///
/// ```
/// use autoscale_docker::SwarmSettings;
///
/// assert_eq!(SwarmSettings::new("shop_webapp").scaler()?.service(), "shop_webapp");
/// assert!(SwarmSettings::new("shop.webapp").scaler().is_err());
/// # Ok::<(), autoscale_docker::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmSettings {
    /// The Swarm service.
    pub service: String,
    /// The docker command.
    pub command: Vec<String>,
    /// The timeout of one command.
    pub timeout: Duration,
    /// Which Docker daemon to talk to.
    #[serde(flatten)]
    pub docker: DockerEnv,
}

impl SwarmSettings {
    /// The settings of `service` with every other key at its default.
    pub fn new(service: impl Into<String>) -> Self {
        SwarmSettings {
            service: service.into(),
            command: vec![DEFAULT_DOCKER_COMMAND.to_owned()],
            timeout: DEFAULT_TIMEOUT,
            docker: DockerEnv::default(),
        }
    }

    /// Check the settings and build the scaler. Nothing runs yet.
    pub fn scaler(&self) -> Result<SwarmScaler, Error> {
        let docker = DockerCli::new()
            .command(&self.command)
            .env(self.docker.clone())
            .timeout(self.timeout);
        SwarmScaler::new(docker, &self.service)
    }
}
