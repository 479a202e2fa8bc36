//! The configuration: loading a TOML file (or the original scaler's environment variables) into settings that
//! cannot be invalid.
//!
//! The file format is described in `docs/configuration.md`. Loading happens in three steps: `raw` deserializes
//! the file exactly as written (unknown keys are errors); one module per section (`prometheus`, `daemon`,
//! `service`, `check`, `scaler`, `ansible`) turns it into the types below, with `diagnostics` pointing each
//! error at its line and column; then the environment overrides ([`Env`]) apply on top. Every error names the
//! file, line, column and key, or the environment variable, and says what is allowed. `render` writes a
//! [`Config`] back out in the file's format.
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

mod ansible;
mod check;
mod client;
mod daemon;
mod diagnostics;
mod discover;
mod duration;
mod env;
mod ha;
mod keyword;
mod load;
mod prometheus;
mod raw;
mod render;
mod scaler;
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) use ansible::scaler as ansible_scaler;
/// The scalers' settings are their backend crates' own types.
pub use autoscale_ansible::{
    AnsibleSettings, Program as AnsibleProgram, StatusSettings as AnsibleStatus,
};
pub use autoscale_docker::{ComposeSettings, DockerEnv, SwarmSettings};
/// The query settings' keywords are the Prometheus source's own types.
pub use autoscale_prom::{NonFinite, OnEmpty, RangeReduce, Reduce};
pub use check::{CheckSettings, PolicySettings, RangeQuery};
pub use daemon::{DaemonSettings, LogFormat, LogLevel, read_admin_token};
pub use diagnostics::ConfigError;
pub use discover::{
    DEFAULT_CHECK_NAME, DEFAULT_RESYNC, DiscoverKind, DiscoverSettings, LABELS, Selector, Skipped,
};
pub(crate) use duration::parse_duration;
pub(crate) use env::seed_engine;
pub use env::{DEFAULT_METRIC_QUERY, Env, KNOWN_VARIABLES};
pub use ha::{HaKind, HaSettings};
pub use prometheus::{
    ClientIdentity, DEFAULT_PROMETHEUS_URL, Header, PromAuth, PromUrl, PrometheusSettings,
};
pub(crate) use render::duration as format_duration;
pub use render::is_sensitive_name;
pub use scaler::ScalerSettings;
pub(crate) use scaler::same_target;
pub use service::ServiceConfig;

/// The largest configuration file [`Config::load`] reads: 16 MiB, far above any real configuration (30,000
/// services take about 8 MiB).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

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
    /// The configuration will not query Prometheus (the simulator, a probe of a running daemon): accept a file
    /// without `[prometheus] url` (and without `PROMETHEUS_URL`), which then reads as
    /// [`DEFAULT_PROMETHEUS_URL`], and do not open the files the Prometheus client reads (credentials, CA,
    /// client certificate). Every other load checks those files as `autoscale run` does.
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
    /// The endpoints whose labelled services are added (`[[discover]]`), in file order.
    pub discover: Vec<DiscoverSettings>,
}

impl Config {
    /// Read and validate the file at `path`, then apply the environment overrides from `env`.
    ///
    /// Only a regular file of at most [`MAX_FILE_BYTES`] is read: a device such as `/dev/zero`, a FIFO or a
    /// directory is refused before anything is read from it.
    pub fn load(path: &Path, env: &Env, options: LoadOptions) -> Result<Config, ConfigError> {
        let text = load::read_file(path)?;
        Self::from_toml(path, &text, env, options)
    }

    /// Validate `text` as if it were the file at `path` (which is only used in messages).
    pub fn from_toml(
        path: impl AsRef<Path>,
        text: &str,
        env: &Env,
        options: LoadOptions,
    ) -> Result<Config, ConfigError> {
        load::from_toml(path.as_ref(), text, env, options)
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
