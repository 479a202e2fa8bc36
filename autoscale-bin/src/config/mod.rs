//! The configuration: loading a TOML file (or the original scaler's environment variables) into settings that
//! cannot be invalid.
//!
//! The file format is `spec/config.md` plus the keys listed in this crate's README. Loading happens in three
//! steps: `raw` deserializes the file exactly as written (unknown keys are errors), `validate` turns it into
//! the types below, and environment overrides ([`Env`]) apply on top. Every error names the file, line, column
//! and key, or the environment variable, and says what is allowed.
//!
//! ```
//! use autoscale_bin::config::{Config, Env, LoadOptions};
//!
//! let toml = r#"
//! [prometheus]
//! url = "http://127.0.0.1:9090"
//!
//! [[service]]
//! name = "webapp"
//! scaler = { kind = "compose" }
//! check = [{ name = "cpu", query = "avg(rate(cpu[1m]))", policy = { kind = "target", target = 0.6 } }]
//! "#;
//! let config = Config::from_toml("example.toml", toml, &Env::empty(), LoadOptions::default()).unwrap();
//! assert_eq!(config.services[0].engine.max_replicas(), 10);
//!
//! let err = Config::from_toml("example.toml", "[prometheus]\nurll = 1\n", &Env::empty(), LoadOptions::default())
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("example.toml:2:1: prometheus.urll: unknown key"));
//! ```

mod env;
mod raw;
mod render;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use autoscale_core::EngineConfig;
use autoscale_core::policy::{Step, TargetForm};

pub(crate) use env::seed_engine;
pub use env::{DEFAULT_METRIC_QUERY, DEFAULT_PROMETHEUS_URL, Env};
pub(crate) use render::duration as format_duration;
pub use render::is_sensitive_name;
pub(crate) use validate::parse_duration;

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A TOML file (plus environment overrides).
    File(PathBuf),
    /// The original scaler's environment variables alone.
    Environment,
}

/// What the loaded configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Accept a file without `[prometheus] url` (and without `PROMETHEUS_URL`): the simulator never talks to
    /// Prometheus, so it should not need one. The URL then reads as [`env::DEFAULT_PROMETHEUS_URL`].
    pub url_optional: bool,
}

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: Source,
    /// The default Prometheus server (`[prometheus]`).
    pub prometheus: PrometheusSettings,
    /// Further Prometheus servers (`[prometheus.instances.NAME]`), with unset keys inherited.
    pub instances: BTreeMap<String, PrometheusSettings>,
    /// The daemon's own settings.
    pub daemon: DaemonSettings,
    /// The services, in file order; names are unique.
    pub services: Vec<ServiceConfig>,
}

impl Config {
    /// Read and validate the file at `path`, then apply the environment overrides from `env`.
    pub fn load(path: &Path, env: &Env, options: LoadOptions) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: Origin::File {
                path: path.to_owned(),
                position: None,
            },
            key: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::from_toml(path, &text, env, options)
    }

    /// Validate `text` as if it were the file at `path` (which is only used in messages).
    pub fn from_toml(
        path: impl AsRef<Path>,
        text: &str,
        env: &Env,
        options: LoadOptions,
    ) -> Result<Config, ConfigError> {
        validate::from_toml(path.as_ref(), text, env, options)
    }

    /// Build a single-service configuration from the original scaler's environment variables.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        env::config_from_env(env)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The configuration as TOML in the file's own format, every default filled in and every secret redacted:
    /// what `autoscale check` prints.
    pub fn to_redacted_toml(&self) -> String {
        render::render(self)
    }
}

/// A Prometheus URL. Its `Debug` and `Display` hide a password in the userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct PromUrl(url::Url);

impl PromUrl {
    /// The URL, credentials included: for the HTTP client only, never for messages.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// The URL with any password replaced by `REDACTED`.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have credentials, which a parsed http(s) URL always can.
            let _ = url.set_password(Some("REDACTED"));
        }
        url.to_string()
    }
}

impl fmt::Debug for PromUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PromUrl({:?})", self.redacted())
    }
}

impl fmt::Display for PromUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A Prometheus server's settings.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// The base URL (http or https).
    pub url: PromUrl,
    /// The timeout of one query.
    pub timeout: Duration,
    /// How to authenticate, if at all.
    pub auth: Option<PromAuth>,
    /// Extra request headers, in name order.
    pub headers: Vec<Header>,
    /// A CA bundle to trust, in PEM.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// Accept any server certificate (for tests only).
    pub insecure_skip_verify: bool,
    /// What an empty result means.
    pub on_empty: OnEmpty,
    /// The largest response body accepted.
    pub max_response_bytes: u64,
    /// The overall deadline of the readiness wait at daemon start.
    pub ready_timeout: Duration,
}

/// Prometheus authentication. The secrets stay in files; only their paths are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromAuth {
    /// `Authorization: Bearer <contents of token_file>`.
    Bearer {
        /// The file holding the token.
        token_file: PathBuf,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The file holding the password.
        password_file: PathBuf,
    },
}

/// A client certificate and its key, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// An extra request header. `Debug` hides the value when the name looks like a credential
/// ([`is_sensitive_name`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The value.
    pub value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if is_sensitive_name(&self.name) {
            "REDACTED"
        } else {
            &self.value
        };
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &value)
            .finish()
    }
}

/// What an empty query result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnEmpty {
    /// A failed check (the safe default: no sample is no information).
    #[default]
    Error,
    /// The value 0 (for queries such as a request rate that vanish when idle).
    Zero,
}

/// How a check treats ±Inf (NaN is always a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// A failed check.
    #[default]
    Error,
    /// Passed to the policy.
    Accept,
}

/// How a range query's samples become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RangeReduce {
    /// The mean.
    #[default]
    Avg,
    /// The largest.
    Max,
    /// The smallest.
    Min,
    /// The newest.
    Last,
}

/// How several series become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesReduce {
    /// Their sum.
    Sum,
    /// The largest.
    Max,
    /// The smallest.
    Min,
    /// The mean.
    Avg,
}

/// A check's range query: `query_range` over `[at - range, at]` every `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeQuery {
    /// How far back.
    pub range: Duration,
    /// The resolution (above zero, and at most 11,000 points per range, Prometheus' limit).
    pub step: Duration,
    /// How the points become one value.
    pub reduce: RangeReduce,
}

/// A check's policy, as configured (the engine holds the built policy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicySettings {
    /// Target tracking.
    Target {
        /// The target value.
        target: f64,
        /// Per replica or total.
        per: TargetForm,
        /// The tolerance.
        tolerance: f64,
    },
    /// Thresholds.
    Threshold {
        /// Scale up above this.
        scale_up_above: f64,
        /// Scale down below this.
        scale_down_below: f64,
        /// How far one decision moves.
        step: Step,
    },
}

/// One check's query settings.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// The check's name (unique within its service).
    pub name: String,
    /// The PromQL query.
    pub query: String,
    /// The Prometheus instance, `None` for `[prometheus]`.
    pub prometheus: Option<String>,
    /// A range query instead of an instant query.
    pub range: Option<RangeQuery>,
    /// How several series combine; `None` makes several series an error.
    pub reduce: Option<SeriesReduce>,
    /// What an empty result means (the instance's setting unless the check overrides it).
    pub on_empty: OnEmpty,
    /// How ±Inf is treated.
    pub non_finite: NonFinite,
    /// The policy.
    pub policy: PolicySettings,
    /// The activation threshold.
    pub activation: f64,
}

/// A scaled service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The name, used in logs, metrics and the state file.
    pub name: String,
    /// How often it is evaluated (above zero).
    pub interval: Duration,
    /// Decide and log, but never call the scaler (the service's or the daemon's setting).
    pub dry_run: bool,
    /// The engine's configuration: bounds, checks and policies, behavior, cooldowns, fallback, pause.
    pub engine: EngineConfig,
    /// The checks' query settings, in the engine's check order.
    pub checks: Vec<CheckSettings>,
    /// The scaler.
    pub scaler: ScalerSettings,
}

/// Where the docker CLI connects; unset values come from the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerSettings {
    /// `DOCKER_HOST`.
    pub host: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub context: Option<String>,
    /// `DOCKER_TLS_VERIFY`.
    pub tls_verify: Option<bool>,
    /// `DOCKER_CERT_PATH`.
    pub cert_path: Option<PathBuf>,
}

/// `kind = "compose"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeSettings {
    /// The compose project name.
    pub project: String,
    /// The compose file.
    pub file: PathBuf,
    /// The compose service.
    pub service: String,
    /// The compose command; `None` lets the scaler find one (`docker compose`, else `docker-compose`).
    pub command: Option<Vec<String>>,
    /// An env file for compose.
    pub env_file: Option<PathBuf>,
    /// Compose profiles to enable.
    pub profiles: Vec<String>,
    /// The timeout of one compose command.
    pub timeout: Duration,
    /// Docker connection settings.
    pub docker: DockerSettings,
}

/// `kind = "swarm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmSettings {
    /// The Swarm service.
    pub service: String,
    /// The docker command.
    pub command: Vec<String>,
    /// The timeout of one docker command.
    pub timeout: Duration,
    /// Docker connection settings.
    pub docker: DockerSettings,
}

/// Which `ansible-playbook` to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsibleProgram {
    /// This binary (a bare name is looked up in `PATH`).
    Binary(PathBuf),
    /// `VIRTUALENV/bin/ansible-playbook`.
    Virtualenv(PathBuf),
}

/// How the ansible scaler reads the current count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsibleStatus {
    /// From a compose project.
    Compose {
        /// The compose project.
        project: String,
        /// The compose file, if any.
        file: Option<PathBuf>,
        /// The compose service.
        service: String,
    },
    /// From a Swarm service.
    Swarm {
        /// The Swarm service.
        service: String,
    },
    /// From a playbook that reports the count.
    Playbook {
        /// The status playbook.
        playbook: PathBuf,
        /// Its inventory (the scaler's inventory if `None`).
        inventory: Option<PathBuf>,
    },
}

/// `kind = "ansible"`.
#[derive(Clone, PartialEq)]
pub struct AnsibleSettings {
    /// The playbook that applies a count.
    pub playbook: PathBuf,
    /// The inventory.
    pub inventory: Option<PathBuf>,
    /// Extra variables, passed as JSON (`service` and `replicas` are always passed too).
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
    /// How the current count is read; `None` leaves it to the scaler's default.
    pub status: Option<AnsibleStatus>,
    /// The timeout of one playbook run.
    pub timeout: Duration,
    /// `--limit`.
    pub limit: Option<String>,
    /// `--tags`.
    pub tags: Vec<String>,
    /// `--check`.
    pub check_mode: bool,
    /// `--vault-password-file`.
    pub vault_password_file: Option<PathBuf>,
    /// Extra environment variables of the playbook process.
    pub env: BTreeMap<String, String>,
    /// The program to run.
    pub program: AnsibleProgram,
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

/// A service's scaler.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalerSettings {
    /// Docker Compose.
    Compose(ComposeSettings),
    /// Docker Swarm.
    Swarm(SwarmSettings),
    /// An Ansible playbook.
    Ansible(AnsibleSettings),
}

impl ScalerSettings {
    /// `"compose"`, `"swarm"` or `"ansible"`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScalerSettings::Compose(_) => "compose",
            ScalerSettings::Swarm(_) => "swarm",
            ScalerSettings::Ansible(_) => "ansible",
        }
    }
}

/// The daemon's log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log level from `LOG_LEVEL` (`RUST_LOG`, when set, is read by the daemon's logger and wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Decisions and actions.
    #[default]
    Info,
    /// Problems.
    Warn,
    /// Failures only.
    Error,
    /// Nothing.
    Off,
}

impl LogLevel {
    /// The level as `tracing` directives spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// The daemon's settings (`[daemon]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Where /metrics, /healthz, /readyz and /status listen.
    pub listen: SocketAddr,
    /// Where state and history live (relative to the working directory if relative).
    pub state_dir: PathBuf,
    /// The log format.
    pub log_format: LogFormat,
    /// The log level.
    pub log_level: LogLevel,
    /// Never call a scaler.
    pub dry_run: bool,
    /// The size at which the history file is rotated.
    pub history_max_bytes: u64,
    /// How many services are evaluated at once (at least 1).
    pub concurrency: usize,
    /// How long a shutdown waits for running evaluations.
    pub shutdown_timeout: Duration,
}

/// Where a configuration error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// In a file, at a 1-based line and column when known.
    File {
        path: PathBuf,
        position: Option<(usize, usize)>,
    },
    /// In an environment variable.
    Env(&'static str),
}

/// A configuration error: where, which key, and what is allowed.
///
/// Displays as `FILE:LINE:COLUMN: KEY: MESSAGE`, or `environment variable NAME: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: Origin,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    pub(crate) fn env(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            origin: Origin::Env(var),
            key: None,
            message: message.into(),
        }
    }

    /// The 1-based line and column, for errors found in a file.
    pub fn position(&self) -> Option<(usize, usize)> {
        match &self.origin {
            Origin::File { position, .. } => *position,
            Origin::Env(_) => None,
        }
    }

    /// The key, such as `service[0].check[1].policy.kind`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The environment variable, for errors found in one.
    pub fn variable(&self) -> Option<&str> {
        match self.origin {
            Origin::Env(v) => Some(v),
            Origin::File { .. } => None,
        }
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, position } => {
                write!(f, "{}", path.display())?;
                if let Some((line, column)) = position {
                    write!(f, ":{line}:{column}")?;
                }
                f.write_str(": ")?;
            }
            Origin::Env(var) => write!(f, "environment variable {var}: ")?,
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
