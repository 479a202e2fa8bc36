//! The scaler's settings as plain values: what a configuration file holds for an Ansible scaler, with the
//! defaults of the keys it may leave out. [`AnsibleSettings::builder`] turns them into an
//! [`AnsibleScalerBuilder`], which holds them and checks them; the scaler keeps them.
//!
//! They serialize with the configuration file's key names (durations as serde writes a `Duration`), so a
//! configuration can be written back out without listing the keys again. Serializing writes the values of
//! `extra_vars` and `env`: redact them first where the output is shown.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{AnsibleScalerBuilder, DEFAULT_TIMEOUT, Program, StatusPlaybook, StatusSource};

/// How the scaler reads the current count (`status`).
///
/// A Compose or Swarm status is read by another backend's scaler, which the embedder builds and passes as a
/// [`StatusSource::Scaler`]: this crate does not depend on Docker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StatusSettings {
    /// From a Compose project.
    Compose {
        /// The Compose project.
        project: String,
        /// The Compose file, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
        /// The Compose service.
        service: String,
    },
    /// From a Swarm service.
    Swarm {
        /// The Swarm service.
        service: String,
    },
    /// From a playbook that reports the count.
    Playbook(StatusPlaybook),
}

/// An [`AnsibleScaler`](crate::AnsibleScaler)'s settings (`kind = "ansible"`). [`AnsibleScalerBuilder`] sets
/// the same fields, and the scaler keeps them. `Debug` shows the names of `extra_vars` and `env`, never their
/// values.
///
/// ```
/// use autoscale_ansible::{AnsibleSettings, StatusPlaybook, StatusSource};
///
/// let settings = AnsibleSettings::new("scale.yml");
/// let status = StatusSource::Playbook(StatusPlaybook::new("status.yml"));
/// let scaler = settings.builder("webapp", status).build()?;
/// assert_eq!(scaler.service(), "webapp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Serialize)]
pub struct AnsibleSettings {
    /// The playbook that applies a count.
    pub playbook: PathBuf,
    /// The inventory: a path, or a comma-separated host list such as `"web1,web2,"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
    /// Extra variables (`service`, `replicas` and `previous_replicas` are always passed too).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra_vars: Map<String, Value>,
    /// How the current count is read; `None` leaves it to the embedder's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusSettings>,
    /// The timeout of one playbook run.
    pub timeout: Duration,
    /// `--limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `--tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `--check`.
    pub check_mode: bool,
    /// `--vault-password-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_password_file: Option<PathBuf>,
    /// Extra environment variables of the playbook process.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The program to run: `ansible_playbook = PATH` or `virtualenv = DIR`.
    #[serde(flatten)]
    pub program: Program,
}

impl AnsibleSettings {
    /// The settings of `playbook` with every other key at its default.
    pub fn new(playbook: impl Into<PathBuf>) -> Self {
        AnsibleSettings {
            playbook: playbook.into(),
            inventory: None,
            extra_vars: Map::new(),
            status: None,
            timeout: DEFAULT_TIMEOUT,
            limit: None,
            tags: Vec::new(),
            check_mode: false,
            vault_password_file: None,
            env: BTreeMap::new(),
            program: Program::default(),
        }
    }

    /// A builder of the scaler of `service` with these settings, reading the count from `status` (see
    /// [`StatusSettings::playbook_source`] for a playbook status).
    pub fn builder(&self, service: &str, status: StatusSource) -> AnsibleScalerBuilder {
        // The program counts as chosen: a builder method choosing the other kind is refused.
        AnsibleScalerBuilder::from_settings(service, self.clone(), status, true)
    }
}

impl StatusSettings {
    /// The status source of a playbook status; `None` for the kinds another backend reads.
    pub fn playbook_source(&self) -> Option<StatusSource> {
        match self {
            StatusSettings::Playbook(status) => Some(StatusSource::Playbook(status.clone())),
            StatusSettings::Compose { .. } | StatusSettings::Swarm { .. } => None,
        }
    }
}

impl fmt::Debug for AnsibleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Variables and environment may carry credentials: show their names, not their values.
        f.debug_struct("AnsibleSettings")
            .field("playbook", &self.playbook)
            .field("inventory", &self.inventory)
            .field("extra_vars", &self.extra_vars.keys().collect::<Vec<_>>())
            .field("status", &self.status)
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .field("tags", &self.tags)
            .field("check_mode", &self.check_mode)
            .field("vault_password_file", &self.vault_password_file)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("program", &self.program)
            .finish()
    }
}
