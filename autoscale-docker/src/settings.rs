//! The scalers' settings as plain values: what a configuration file holds for a Compose or Swarm scaler, with
//! the defaults of the keys it may leave out. A settings value becomes a scaler with
//! [`ComposeSettings::scaler`] or [`SwarmSettings::scaler`], which check every name against Docker's rules
//! ([`NameRule`](crate::NameRule)).
//!
//! They serialize with the configuration file's key names (durations as serde writes a `Duration`), so a
//! configuration can be written back out without listing the keys again.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::compose::{ComposeCommand, ComposeScaler, ComposeScalerBuilder};
use crate::docker::{DEFAULT_TIMEOUT, DockerEnv};
use crate::error::Error;
use crate::swarm::SwarmScaler;

/// The Compose project of a scaler that names none: the original scaler's.
pub const DEFAULT_PROJECT: &str = "prometheus-autoscale-sim";
/// The Compose file of a scaler that names none, relative to the working directory.
pub const DEFAULT_FILE: &str = "docker-compose.yml";
/// The docker command of a Swarm scaler that names none, looked up in `PATH`.
pub const DEFAULT_DOCKER_COMMAND: &str = "docker";

/// A [`ComposeScaler`]'s settings (`kind = "compose"`). [`ComposeScalerBuilder`] sets the same fields, and the
/// scaler keeps them.
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
    /// The Compose file, unless [`files`](Self::files) says otherwise.
    pub file: PathBuf,
    /// Not a configuration key: the Compose files that [`ComposeScalerBuilder::file`] gives, each passed with
    /// its own `--file`, instead of `file`. An empty list passes none, and Compose finds the project's own
    /// files in the working directory.
    #[serde(skip)]
    pub files: Option<Vec<PathBuf>>,
    /// The Compose service.
    pub service: String,
    /// The Compose command; [`ComposeCommand::Detect`] detects one (`docker compose`, else `docker-compose`).
    #[serde(skip_serializing_if = "ComposeCommand::is_detect")]
    pub command: ComposeCommand,
    /// Not a configuration key: the docker CLI of the status read, as [`ComposeScalerBuilder::docker`] gives
    /// it. `None` is `docker` from `PATH`, or `DOCKER` when the Compose command is `[DOCKER, "compose"]`.
    #[serde(skip)]
    pub docker_command: Option<Vec<OsString>>,
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
            files: None,
            service: service.into(),
            command: ComposeCommand::Detect,
            docker_command: None,
            env_file: None,
            profiles: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            docker: DockerEnv::default(),
        }
    }

    /// The Compose files passed with `--file`: [`files`](Self::files) if set, else [`file`](Self::file).
    pub fn compose_files(&self) -> &[PathBuf] {
        self.files
            .as_deref()
            .unwrap_or(std::slice::from_ref(&self.file))
    }

    /// Check the settings and build the scaler. Nothing runs yet.
    pub fn scaler(&self) -> Result<ComposeScaler, Error> {
        ComposeScalerBuilder::from(self.clone()).build()
    }
}

/// A [`SwarmScaler`]'s settings (`kind = "swarm"`). The scaler keeps them.
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
    #[serde(serialize_with = "serialize_argv")]
    pub command: Vec<OsString>,
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
            command: vec![DEFAULT_DOCKER_COMMAND.into()],
            timeout: DEFAULT_TIMEOUT,
            docker: DockerEnv::default(),
        }
    }

    /// Check the settings and build the scaler. Nothing runs yet.
    pub fn scaler(&self) -> Result<SwarmScaler, Error> {
        SwarmScaler::from_settings(self.clone())
    }
}

/// An argument vector as the configuration file writes it: a list of strings.
pub(crate) fn serialize_argv<S: Serializer>(argv: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(argv.iter().map(|word| word.to_string_lossy()))
}
