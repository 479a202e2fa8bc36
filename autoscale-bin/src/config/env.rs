//! The environment: the original scaler's variables (a whole single-service configuration when there is no
//! file) and the overrides that apply on top of a file.
//!
//! The environment is passed in as an [`Env`] value rather than read from the process, so tests never touch
//! the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::{Behavior, ScalingRules};
use autoscale_core::policy::{Step, ThresholdPolicy};
use autoscale_core::{Check, EngineConfig};

use autoscale_docker::NameRule;

use super::daemon::parse_listen;
use super::diagnostics::{NameKind, check_name};
use super::duration::{Limit, parse_duration};
use super::prometheus::{DEFAULT_PROMETHEUS_URL, parse_url};
use super::{
    CheckSettings, ComposeSettings, Config, ConfigError, DaemonSettings, LogLevel, NonFinite,
    OnEmpty, PolicySettings, PromUrl, PrometheusSettings, ScalerSettings, ServiceConfig, Source,
    service,
};

/// The check query of the environment-only configuration: the demo webapp's utilization, requests served per
/// second over the capacity of its replicas.
pub const DEFAULT_METRIC_QUERY: &str = r#"sum(rate(webapp_requests_total{job="webapp"}[30s])) / sum(webapp_capacity_rps{job="webapp"})"#;

/// Every environment variable the configuration reads: the original scaler's, and the overrides of a file.
pub const KNOWN_VARIABLES: &[&str] = &[
    "PROMETHEUS_URL",
    "PROMETHEUS_URL_FILE",
    "SERVICE_NAME",
    "SCALE_UP_THRESHOLD",
    "SCALE_DOWN_THRESHOLD",
    "METRIC_QUERY",
    "MIN_REPLICAS",
    "MAX_REPLICAS",
    "CHECK_INTERVAL",
    "COOLDOWN",
    "STABILIZATION_WINDOW",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "LOG_LEVEL",
    "DRY_RUN",
    "AUTOSCALE_LISTEN",
    "STATE_DIR",
];

/// The check name of the environment-only configuration.
pub const ENV_CHECK_NAME: &str = "metric";

/// Environment variables, as a map. An empty value counts as unset, as compose files often pass `VAR=`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// No variables.
    pub fn empty() -> Self {
        Env::default()
    }

    /// The process environment (variables that are not valid UTF-8 are left out).
    pub fn from_process() -> Self {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// The same variables plus `name=value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The variables that look like a misspelling of one in [`KNOWN_VARIABLES`] (`SCALE_UP_TRESHOLD`): within
    /// two edits of it, case ignored, without being it. Each comes with the variable it likely meant, and is
    /// worth a warning, since a misspelled variable is otherwise silently ignored.
    pub fn likely_misspellings(&self) -> Vec<(&str, &'static str)> {
        self.vars
            .keys()
            .filter(|name| !KNOWN_VARIABLES.contains(&name.as_str()))
            .filter_map(|name| {
                let upper = name.to_ascii_uppercase();
                KNOWN_VARIABLES
                    .iter()
                    .map(|known| (edit_distance(&upper, known), *known))
                    .filter(|(distance, _)| *distance <= 2)
                    .min()
                    .map(|(_, known)| (name.as_str(), known))
            })
            .collect()
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Env {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the environment holds credentials of all kinds.
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Levenshtein distance over bytes (the names compared are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 {
        // More than the distance that matters; spares the table.
        return a.len().abs_diff(b.len());
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

type Result<T> = std::result::Result<T, ConfigError>;

fn parse_var<T>(
    env: &Env,
    var: &'static str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    env.get(var)
        .map(|v| parse(v).map_err(|m| ConfigError::env(var, m)))
        .transpose()
}

fn count(s: &str) -> std::result::Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number from 0 to 4294967295"))
}

fn number(s: &str) -> std::result::Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))
}

/// A duration: humantime (`"10s"`), or a bare number of seconds as the original scaler read it.
fn duration(s: &str) -> std::result::Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse_duration(s),
    }
}

/// A [`duration`] within `limit`.
fn bounded(limit: Limit) -> impl Fn(&str) -> std::result::Result<Duration, String> {
    move |s| duration(s).and_then(|d| limit.check(s, d))
}

fn boolean(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{s:?} is not a boolean; expected true or false (or 1/0, yes/no, on/off)"
        )),
    }
}

fn log_level(s: &str) -> std::result::Result<LogLevel, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "off" => LogLevel::Off,
        _ => {
            return Err(format!(
                "unknown log level {s:?}; expected \"trace\", \"debug\", \"info\", \"warn\", \"error\" or \"off\""
            ));
        }
    })
}

/// `PROMETHEUS_URL`, or the contents of the file named by `PROMETHEUS_URL_FILE`.
pub(crate) fn prometheus_url(env: &Env) -> Result<Option<PromUrl>> {
    match (env.get("PROMETHEUS_URL"), env.get("PROMETHEUS_URL_FILE")) {
        (Some(_), Some(_)) => Err(ConfigError::env(
            "PROMETHEUS_URL_FILE",
            "cannot be set together with PROMETHEUS_URL; set one of them",
        )),
        (Some(url), None) => parse_url(url)
            .map(Some)
            .map_err(|m| ConfigError::env("PROMETHEUS_URL", m)),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                ConfigError::env("PROMETHEUS_URL_FILE", format!("cannot read {file:?}: {e}"))
            })?;
            parse_url(text.trim())
                .map(Some)
                .map_err(|m| ConfigError::env("PROMETHEUS_URL_FILE", format!("in {file:?}: {m}")))
        }
        (None, None) => Ok(None),
    }
}

/// `LOG_LEVEL`, `DRY_RUN`, `AUTOSCALE_LISTEN` and `STATE_DIR` over the daemon's settings.
pub(crate) fn apply_daemon_overrides(env: &Env, daemon: &mut DaemonSettings) -> Result<()> {
    if let Some(level) = parse_var(env, "LOG_LEVEL", log_level)? {
        daemon.log_level = level;
    }
    if let Some(dry_run) = parse_var(env, "DRY_RUN", boolean)? {
        daemon.dry_run = dry_run;
    }
    if let Some(listen) = parse_var(env, "AUTOSCALE_LISTEN", parse_listen)? {
        daemon.listen = listen;
    }
    if let Some(dir) = parse_var(env, "STATE_DIR", |s| {
        if s.contains('\0') {
            Err("must not contain a NUL character".to_owned())
        } else {
            Ok(PathBuf::from(s))
        }
    })? {
        daemon.state_dir = dir;
    }
    Ok(())
}

/// The original scaler's engine: one threshold check named [`ENV_CHECK_NAME`], the same cooldown both ways, and
/// a scale-down stabilization window (the original had none: 0 s); the rate rules are Kubernetes' defaults,
/// which a step of one never reaches.
pub(crate) fn seed_engine(
    min: u32,
    max: u32,
    policy: ThresholdPolicy,
    cooldown: Duration,
    window: Duration,
) -> std::result::Result<EngineConfig, autoscale_core::engine::ConfigError> {
    let default_down = ScalingRules::default_down();
    let scale_down =
        ScalingRules::new(window, default_down.select(), default_down.rules().to_vec())?;
    EngineConfig::builder(min, max)
        .check(Check::new(ENV_CHECK_NAME, Arc::new(policy)))
        .behavior(Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down,
        })
        .cooldown_up(cooldown)
        .cooldown_down(cooldown)
        .build()
}

/// The original scaler's contract: one compose service, one threshold check.
pub(crate) fn config_from_env(env: &Env) -> Result<Config> {
    let url = match prometheus_url(env)? {
        Some(url) => url,
        None => parse_url(DEFAULT_PROMETHEUS_URL).expect("the default URL is valid"),
    };
    let mut daemon = DaemonSettings::default();
    apply_daemon_overrides(env, &mut daemon)?;

    let name = env.get("SERVICE_NAME").unwrap_or("webapp").to_owned();
    check_name(&name, NameKind::Service).map_err(|m| ConfigError::env("SERVICE_NAME", m))?;
    let up = parse_var(env, "SCALE_UP_THRESHOLD", number)?.unwrap_or(0.6);
    let down = parse_var(env, "SCALE_DOWN_THRESHOLD", number)?.unwrap_or(0.3);
    let query = env
        .get("METRIC_QUERY")
        .unwrap_or(DEFAULT_METRIC_QUERY)
        .to_owned();
    let min = parse_var(env, "MIN_REPLICAS", count)?.unwrap_or(service::MIN_REPLICAS);
    let max = parse_var(env, "MAX_REPLICAS", count)?.unwrap_or(service::MAX_REPLICAS);
    let interval =
        parse_var(env, "CHECK_INTERVAL", bounded(Limit::Interval))?.unwrap_or(service::INTERVAL);
    let cooldown = parse_var(env, "COOLDOWN", bounded(Limit::Window))?
        .unwrap_or(ThresholdPolicy::DEFAULT_COOLDOWN);
    let window =
        parse_var(env, "STABILIZATION_WINDOW", bounded(Limit::Window))?.unwrap_or(Duration::ZERO);
    let mut compose = ComposeSettings::new(&name);
    if let Some(project) = env.get("COMPOSE_PROJECT_NAME") {
        autoscale_docker::check_name(NameRule::ComposeProject, project)
            .map_err(|e| ConfigError::env("COMPOSE_PROJECT_NAME", e.to_string()))?;
        project.clone_into(&mut compose.project);
    }
    // The original scaler ran in a container with the compose file mounted at the root.
    compose.file = PathBuf::from(env.get("COMPOSE_FILE").unwrap_or("/docker-compose.yml"));

    if max == 0 {
        return Err(ConfigError::env("MAX_REPLICAS", "must be at least 1"));
    }
    if min > max {
        return Err(ConfigError::env(
            "MIN_REPLICAS",
            format!("{min} must not be above MAX_REPLICAS ({max})"),
        ));
    }
    if interval.is_zero() {
        return Err(ConfigError::env("CHECK_INTERVAL", "must be above 0s"));
    }
    if query.trim().is_empty() {
        return Err(ConfigError::env("METRIC_QUERY", "must not be empty"));
    }
    let policy = ThresholdPolicy::new(up, down, Step::Count(1)).map_err(|_| {
        ConfigError::env(
            "SCALE_DOWN_THRESHOLD",
            format!("{down} must not be above SCALE_UP_THRESHOLD ({up})"),
        )
    })?;
    let engine = seed_engine(min, max, policy, cooldown, window)
        // Every input the builder checks was checked above, with the variable's name.
        .map_err(|e| ConfigError::env("MIN_REPLICAS", e.to_string()))?;

    let check = CheckSettings {
        name: ENV_CHECK_NAME.to_owned(),
        query,
        prometheus: None,
        range: None,
        reduce: None,
        on_empty: OnEmpty::Error,
        non_finite: NonFinite::Error,
        policy: PolicySettings::Threshold {
            scale_up_above: up,
            scale_down_below: down,
            step: Step::Count(1),
        },
        demand_query: None,
        activation: 0.0,
        engine: engine.checks()[0].clone(),
    };
    let service = ServiceConfig {
        name,
        interval,
        dry_run: daemon.dry_run,
        engine,
        on_zero_outside: Default::default(),
        checks: vec![check],
        scaler: ScalerSettings::Compose(compose),
    };
    Ok(Config {
        source: Source::Environment,
        prometheus: PrometheusSettings::new(url),
        instances: BTreeMap::new(),
        daemon,
        services: vec![service],
        discover: Vec::new(),
    })
}
