//! From [`raw`](super::raw) to settings that cannot be invalid. Every check here points at the value's line,
//! column and key, and says what is allowed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::{Behavior, Fallback, FallbackMode, Pause, Rule, ScalingRules, Select};
use autoscale_core::policy::{PolicyError, Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::{Check, EngineConfig, Policy};

use super::env::{self, Env};
use super::raw::{
    RawBasicAuth, RawCheck, RawConfig, RawDaemon, RawDirection, RawPolicy, RawPrometheus,
    RawScaler, RawService, RawStatus, S,
};
use super::{
    AnsibleProgram, AnsibleSettings, AnsibleStatus, CheckSettings, ClientIdentity, ComposeSettings,
    Config, ConfigError, DaemonSettings, DockerSettings, Header, LoadOptions, LogFormat, NonFinite,
    OnEmpty, Origin, PolicySettings, PromAuth, PromUrl, PrometheusSettings, RangeQuery,
    RangeReduce, ScalerSettings, SeriesReduce, ServiceConfig, Source, SwarmSettings,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// Defaults of `spec/config.md` and the agreed extension keys.
pub(crate) mod defaults {
    use std::time::Duration;

    pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(5);
    pub const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
    pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
    pub const LISTEN: &str = "127.0.0.1:9464";
    pub const STATE_DIR: &str = "./autoscale-state";
    pub const HISTORY_MAX_BYTES: u64 = 10 * 1024 * 1024;
    pub const CONCURRENCY: usize = 16;
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MIN_REPLICAS: u32 = 1;
    pub const MAX_REPLICAS: u32 = 10;
    pub const INTERVAL: Duration = Duration::from_secs(10);
    pub const COMPOSE_PROJECT: &str = "prometheus-autoscale-sim";
    pub const COMPOSE_FILE: &str = "docker-compose.yml";
    pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
    pub const ANSIBLE_TIMEOUT: Duration = Duration::from_secs(120);
    pub const ANSIBLE_PLAYBOOK: &str = "ansible-playbook";
    /// Prometheus refuses range queries of more points than this.
    pub const MAX_RANGE_POINTS: u128 = 11_000;
}

/// The file being validated: turns byte spans into `FILE:LINE:COLUMN` errors.
pub(crate) struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            origin: Origin::File {
                path: self.path.to_owned(),
                position: Some(self.position(span.start)),
            },
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            message: message.into(),
        }
    }

    fn toml_error(&self, e: &toml::de::Error, key: String) -> ConfigError {
        let message = rewrite_serde_message(e.message().trim_end());
        let (key, message) = match message {
            Rewritten::Missing(field) => (
                join_key(&key, &field),
                "missing; this key is required".to_owned(),
            ),
            Rewritten::Other(m) => (key, m),
        };
        ConfigError {
            origin: Origin::File {
                path: self.path.to_owned(),
                position: e.span().map(|s| self.position(s.start)),
            },
            key: Some(key).filter(|k| !k.is_empty()),
            message,
        }
    }

    fn duration(&self, v: &S<String>, key: &str) -> Result<Duration> {
        parse_duration(v.get_ref()).map_err(|m| self.err(v.span(), key, m))
    }

    fn positive_duration(&self, v: &S<String>, key: &str) -> Result<Duration> {
        let d = self.duration(v, key)?;
        if d.is_zero() {
            return Err(self.err(v.span(), key, "must be above 0s"));
        }
        Ok(d)
    }

    fn opt_duration(
        &self,
        v: &Option<S<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration> {
        v.as_ref()
            .map_or(Ok(default), |v| self.positive_duration(v, key))
    }

    fn one_of<T: Copy>(
        &self,
        v: &S<String>,
        key: &str,
        what: &str,
        options: &[(&str, T)],
    ) -> Result<T> {
        options
            .iter()
            .find(|(name, _)| *name == v.get_ref())
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(
                    v.span(),
                    key,
                    format!(
                        "unknown {what} {:?}; expected {}",
                        v.get_ref(),
                        quoted_list(&names)
                    ),
                )
            })
    }

    fn opt_one_of<T: Copy>(
        &self,
        v: &Option<S<String>>,
        key: &str,
        what: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Result<T> {
        v.as_ref()
            .map_or(Ok(default), |v| self.one_of(v, key, what, options))
    }

    fn name(&self, v: &S<String>, key: &str, kind: NameKind) -> Result<String> {
        check_name(v.get_ref(), kind).map_err(|m| self.err(v.span(), key, m))?;
        Ok(v.get_ref().clone())
    }

    fn path(&self, v: &S<String>, key: &str) -> Result<PathBuf> {
        check_path(v.get_ref()).map_err(|m| self.err(v.span(), key, m))?;
        Ok(PathBuf::from(v.get_ref()))
    }

    fn opt_path(&self, v: &Option<S<String>>, key: &str) -> Result<Option<PathBuf>> {
        v.as_ref().map(|v| self.path(v, key)).transpose()
    }

    fn argument(&self, v: &S<String>, key: &str) -> Result<String> {
        check_argument(v.get_ref()).map_err(|m| self.err(v.span(), key, m))?;
        Ok(v.get_ref().clone())
    }

    fn arguments(&self, v: &S<Vec<String>>, key: &str) -> Result<Vec<String>> {
        for arg in v.get_ref() {
            check_argument(arg).map_err(|m| self.err(v.span(), key, m))?;
        }
        Ok(v.get_ref().clone())
    }

    fn command(&self, v: &S<Vec<String>>, key: &str) -> Result<Vec<String>> {
        if v.get_ref().is_empty() {
            return Err(self.err(v.span(), key, "must name a program, such as [\"docker\"]"));
        }
        self.arguments(v, key)
    }
}

pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(crate) fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

enum Rewritten {
    Missing(String),
    Other(String),
}

/// serde's messages speak Rust ("expected u32", "unknown field"); say the same in the file's terms.
fn rewrite_serde_message(message: &str) -> Rewritten {
    fn backticked(s: &str) -> Vec<&str> {
        s.split('`').skip(1).step_by(2).collect()
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return Rewritten::Missing(rest.trim_matches('`').to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let allowed = rest
            .split_once(", expected")
            .map(|(_, e)| backticked(e))
            .unwrap_or_default();
        return Rewritten::Other(if allowed.is_empty() {
            "unknown key; this table takes no keys".to_owned()
        } else {
            format!("unknown key; expected {}", quoted_list(&allowed))
        });
    }
    let typed = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some(rest) = typed
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "u32" => "a whole number from 0 to 4294967295",
            "u64" => "a whole number of 0 or more",
            "f64" => "a number",
            "a sequence" => "an array",
            "a map" => "a table",
            "a boolean" => "true or false",
            e if e.starts_with("struct ") => "a table",
            e => e,
        };
        let found = found.replace('`', "");
        return Rewritten::Other(format!("expected {expected}, found {found}"));
    }
    Rewritten::Other(message.to_owned())
}

/// A humantime duration: `"10s"`, `"5m"`, `"1h30m"`, `"250ms"`.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("invalid duration {s:?}: expected a number with a unit, such as \"10s\", \"5m\" or \"1h30m\"")
    })
}

/// What a name names decides which characters it may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// Service, check and instance names, and compose/Swarm service names: they appear in metric labels, file
    /// names and command arguments.
    Service,
    /// Compose project names (lower case, as `docker compose` requires).
    Project,
    /// Environment variable names.
    EnvVar,
}

pub(crate) fn check_name(name: &str, kind: NameKind) -> std::result::Result<(), String> {
    type CharTest = fn(char) -> bool;
    let (first_ok, rest_ok, max, rule): (CharTest, CharTest, usize, &str) = match kind {
        NameKind::Service => (
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
            63,
            "1 to 63 characters: letters, digits, '_', '.' and '-', starting with a letter or digit",
        ),
        NameKind::Project => (
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'),
            63,
            "1 to 63 characters: lower-case letters, digits, '_' and '-', starting with a letter or digit",
        ),
        NameKind::EnvVar => (
            |c| c.is_ascii_alphabetic() || c == '_',
            |c| c.is_ascii_alphanumeric() || c == '_',
            255,
            "letters, digits and '_', not starting with a digit",
        ),
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(first_ok) && chars.all(rest_ok) && name.len() <= max;
    if valid {
        Ok(())
    } else {
        Err(format!("invalid name {name:?}: expected {rule}"))
    }
}

fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        Err("must not be empty".to_owned())
    } else if path.contains('\0') {
        Err("must not contain a NUL character".to_owned())
    } else {
        Ok(())
    }
}

/// A value passed to a program as one argument: it must not be mistaken for an option.
fn check_argument(arg: &str) -> std::result::Result<(), String> {
    check_path(arg)?;
    if arg.starts_with('-') {
        return Err(format!(
            "{arg:?} must not start with '-': the program would read it as an option"
        ));
    }
    Ok(())
}

pub(crate) fn parse_url(s: &str) -> std::result::Result<PromUrl, String> {
    // The message never repeats the value: it may hold a password.
    let url = url::Url::parse(s.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported URL scheme {:?}; expected \"http\" or \"https\", as in http://HOST:PORT",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(PromUrl(url))
}

pub(crate) fn parse_listen(s: &str) -> std::result::Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid listen address {s:?}: expected IP:PORT, such as \"127.0.0.1:9464\"")
    })
}

pub(crate) fn from_toml(
    path: &Path,
    text: &str,
    env: &Env,
    options: LoadOptions,
) -> Result<Config> {
    let ctx = Ctx { path, text };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        // The parser names no key; for a duplicate, the key is the text it points at.
        let key = match e.span() {
            Some(span) if e.message().starts_with("duplicate key") => {
                text.get(span).unwrap_or_default().trim().to_owned()
            }
            _ => String::new(),
        };
        ctx.toml_error(&e, key)
    })?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = path_to_key(e.path());
        ctx.toml_error(e.inner(), key)
    })?;
    validate(&ctx, raw, env, options)
}

/// `service[0].check[1].policy.kind`, without the markers that `toml::Spanned` adds.
fn path_to_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } if k.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {}
        }
    }
    key
}

fn validate(ctx: &Ctx<'_>, raw: RawConfig, env: &Env, options: LoadOptions) -> Result<Config> {
    let (prom_raw, prom_span) = match raw.prometheus {
        Some(p) => {
            let span = p.span();
            (p.into_inner(), span)
        }
        None => (RawPrometheus::default(), 0..0),
    };
    let url = match env::prometheus_url(env)? {
        Some(url) => url,
        None => match &prom_raw.url {
            Some(u) => {
                parse_url(u.get_ref()).map_err(|m| ctx.err(u.span(), "prometheus.url", m))?
            }
            None if options.url_optional => {
                parse_url(env::DEFAULT_PROMETHEUS_URL).expect("the default URL is valid")
            }
            None => {
                return Err(ctx.err(
                    prom_span,
                    "prometheus.url",
                    "missing; set it in [prometheus], or set PROMETHEUS_URL or PROMETHEUS_URL_FILE",
                ));
            }
        },
    };
    let prometheus = prometheus_settings(ctx, &prom_raw, "prometheus", url.clone())?;

    let mut instances = BTreeMap::new();
    for (name, inst) in prom_raw.instances.iter().flatten() {
        let key = format!("prometheus.instances.{}", name.get_ref());
        ctx.name(name, &key, NameKind::Service)?;
        let inst_raw = inst.get_ref();
        if let Some(nested) = &inst_raw.instances {
            let span = nested.keys().next().map_or(inst.span(), S::span);
            return Err(ctx.err(
                span,
                join_key(&key, "instances"),
                "instances cannot be nested",
            ));
        }
        let merged = inherit(inst_raw, &prom_raw);
        let inst_url = match &inst_raw.url {
            Some(u) => {
                parse_url(u.get_ref()).map_err(|m| ctx.err(u.span(), join_key(&key, "url"), m))?
            }
            None => url.clone(),
        };
        instances.insert(
            name.get_ref().clone(),
            prometheus_settings(ctx, &merged, &key, inst_url)?,
        );
    }

    let daemon = daemon_settings(ctx, raw.daemon.unwrap_or_default(), env)?;

    if raw.service.is_empty() {
        return Err(ctx.err(
            0..0,
            "service",
            "missing; the file needs at least one [[service]]",
        ));
    }
    let mut services: Vec<ServiceConfig> = Vec::with_capacity(raw.service.len());
    for (i, svc) in raw.service.iter().enumerate() {
        let key = format!("service[{i}]");
        let service = service_config(ctx, svc, &key, &prometheus, &instances, daemon.dry_run)?;
        if services.iter().any(|s| s.name == service.name) {
            return Err(ctx.err(
                svc.get_ref().name.span(),
                join_key(&key, "name"),
                format!("service name {:?} is used twice", service.name),
            ));
        }
        if let Some(other) = services
            .iter()
            .find(|s| same_target(&s.scaler, &service.scaler))
        {
            return Err(ctx.err(
                svc.get_ref().scaler.span(),
                join_key(&key, "scaler"),
                format!(
                    "scales the same target as service {:?}; two services would fight over it",
                    other.name
                ),
            ));
        }
        services.push(service);
    }

    Ok(Config {
        source: Source::File(ctx.path.to_owned()),
        prometheus,
        instances,
        daemon,
        services,
    })
}

fn same_target(a: &ScalerSettings, b: &ScalerSettings) -> bool {
    match (a, b) {
        (ScalerSettings::Compose(a), ScalerSettings::Compose(b)) => {
            a.project == b.project && a.service == b.service && a.docker == b.docker
        }
        (ScalerSettings::Swarm(a), ScalerSettings::Swarm(b)) => {
            a.service == b.service && a.docker == b.docker
        }
        _ => false,
    }
}

/// An instance's keys over `[prometheus]`'s. Credentials and the client identity are inherited as a unit, so an
/// instance that sets its own bearer token does not also inherit a basic-auth password.
fn inherit(inst: &RawPrometheus, base: &RawPrometheus) -> RawPrometheus {
    let own_auth = inst.bearer_token_file.is_some() || inst.basic_auth.is_some();
    let own_identity = inst.client_cert_file.is_some() || inst.client_key_file.is_some();
    let pick = |own: bool, i: &Option<S<String>>, b: &Option<S<String>>| {
        if own { i.clone() } else { b.clone() }
    };
    RawPrometheus {
        url: inst.url.clone(),
        timeout: inst.timeout.clone().or_else(|| base.timeout.clone()),
        bearer_token_file: pick(own_auth, &inst.bearer_token_file, &base.bearer_token_file),
        basic_auth: if own_auth {
            inst.basic_auth.clone()
        } else {
            base.basic_auth.clone()
        },
        headers: inst.headers.clone().or_else(|| base.headers.clone()),
        ca_file: inst.ca_file.clone().or_else(|| base.ca_file.clone()),
        client_cert_file: pick(own_identity, &inst.client_cert_file, &base.client_cert_file),
        client_key_file: pick(own_identity, &inst.client_key_file, &base.client_key_file),
        insecure_skip_verify: inst.insecure_skip_verify.or(base.insecure_skip_verify),
        on_empty: inst.on_empty.clone().or_else(|| base.on_empty.clone()),
        max_response_bytes: inst
            .max_response_bytes
            .clone()
            .or_else(|| base.max_response_bytes.clone()),
        ready_timeout: inst
            .ready_timeout
            .clone()
            .or_else(|| base.ready_timeout.clone()),
        instances: None,
    }
}

const ON_EMPTY: &[(&str, OnEmpty)] = &[("error", OnEmpty::Error), ("zero", OnEmpty::Zero)];

fn prometheus_settings(
    ctx: &Ctx<'_>,
    raw: &RawPrometheus,
    key: &str,
    url: PromUrl,
) -> Result<PrometheusSettings> {
    let k = |name: &str| join_key(key, name);
    let auth = match (&raw.bearer_token_file, &raw.basic_auth) {
        (Some(_), Some(b)) => {
            return Err(ctx.err(
                b.span(),
                k("basic_auth"),
                "bearer_token_file and basic_auth cannot both be set; choose one",
            ));
        }
        (Some(t), None) => Some(PromAuth::Bearer {
            token_file: ctx.path(t, &k("bearer_token_file"))?,
        }),
        (None, Some(b)) => {
            let RawBasicAuth {
                username,
                password_file,
            } = b.get_ref();
            if username.get_ref().is_empty() || username.get_ref().contains(':') {
                return Err(ctx.err(
                    username.span(),
                    k("basic_auth.username"),
                    "must be non-empty and must not contain ':'",
                ));
            }
            Some(PromAuth::Basic {
                username: username.get_ref().clone(),
                password_file: ctx.path(password_file, &k("basic_auth.password_file"))?,
            })
        }
        (None, None) => None,
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let hk = format!("{}.{:?}", k("headers"), name.get_ref());
        let valid_name = !name.get_ref().is_empty()
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(ctx.err(
                name.span(),
                hk,
                "invalid header name: expected letters, digits and '-'",
            ));
        }
        let lower = name.get_ref().to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "content-type" | "transfer-encoding" | "connection"
        ) {
            return Err(ctx.err(
                name.span(),
                hk,
                "this header is set by the client and cannot be configured",
            ));
        }
        if value
            .get_ref()
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            // Never repeat the value: it may be a credential.
            return Err(ctx.err(
                value.span(),
                hk,
                "the value must not contain control characters",
            ));
        }
        headers.push(Header {
            name: name.get_ref().clone(),
            value: value.get_ref().clone(),
        });
    }
    let client_identity = match (&raw.client_cert_file, &raw.client_key_file) {
        (Some(c), Some(kf)) => Some(ClientIdentity {
            cert_file: ctx.path(c, &k("client_cert_file"))?,
            key_file: ctx.path(kf, &k("client_key_file"))?,
        }),
        (Some(c), None) => {
            return Err(ctx.err(c.span(), k("client_cert_file"), "needs client_key_file too"));
        }
        (None, Some(kf)) => {
            return Err(ctx.err(
                kf.span(),
                k("client_key_file"),
                "needs client_cert_file too",
            ));
        }
        (None, None) => None,
    };
    let max_response_bytes = match &raw.max_response_bytes {
        Some(v) if *v.get_ref() == 0 => {
            return Err(ctx.err(v.span(), k("max_response_bytes"), "must be above 0"));
        }
        Some(v) => *v.get_ref(),
        None => defaults::MAX_RESPONSE_BYTES,
    };
    Ok(PrometheusSettings {
        url,
        timeout: ctx.opt_duration(&raw.timeout, &k("timeout"), defaults::PROMETHEUS_TIMEOUT)?,
        auth,
        headers,
        ca_file: ctx.opt_path(&raw.ca_file, &k("ca_file"))?,
        client_identity,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        on_empty: ctx.opt_one_of(
            &raw.on_empty,
            &k("on_empty"),
            "value",
            ON_EMPTY,
            OnEmpty::Error,
        )?,
        max_response_bytes,
        ready_timeout: ctx.opt_duration(
            &raw.ready_timeout,
            &k("ready_timeout"),
            defaults::READY_TIMEOUT,
        )?,
    })
}

fn daemon_settings(ctx: &Ctx<'_>, raw: RawDaemon, env: &Env) -> Result<DaemonSettings> {
    let listen = match &raw.listen {
        Some(l) => parse_listen(l.get_ref()).map_err(|m| ctx.err(l.span(), "daemon.listen", m))?,
        None => parse_listen(defaults::LISTEN).expect("the default listen address is valid"),
    };
    let state_dir = match &raw.state_dir {
        Some(d) => ctx.path(d, "daemon.state_dir")?,
        None => PathBuf::from(defaults::STATE_DIR),
    };
    let log_format = ctx.opt_one_of(
        &raw.log_format,
        "daemon.log_format",
        "log format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        LogFormat::Text,
    )?;
    let history_max_bytes = match &raw.history_max_bytes {
        Some(v) if *v.get_ref() == 0 => {
            return Err(ctx.err(v.span(), "daemon.history_max_bytes", "must be above 0"));
        }
        Some(v) => *v.get_ref(),
        None => defaults::HISTORY_MAX_BYTES,
    };
    let concurrency = match &raw.concurrency {
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > 4096 => {
            return Err(ctx.err(v.span(), "daemon.concurrency", "must be from 1 to 4096"));
        }
        Some(v) => usize::try_from(*v.get_ref()).unwrap_or(defaults::CONCURRENCY),
        None => defaults::CONCURRENCY,
    };
    let mut daemon = DaemonSettings {
        listen,
        state_dir,
        log_format,
        log_level: Default::default(),
        dry_run: raw.dry_run.unwrap_or(false),
        history_max_bytes,
        concurrency,
        shutdown_timeout: ctx.opt_duration(
            &raw.shutdown_timeout,
            "daemon.shutdown_timeout",
            defaults::SHUTDOWN_TIMEOUT,
        )?,
    };
    env::apply_daemon_overrides(env, &mut daemon)?;
    Ok(daemon)
}

fn service_config(
    ctx: &Ctx<'_>,
    svc: &S<RawService>,
    key: &str,
    prometheus: &PrometheusSettings,
    instances: &BTreeMap<String, PrometheusSettings>,
    daemon_dry_run: bool,
) -> Result<ServiceConfig> {
    let raw = svc.get_ref();
    let k = |name: &str| join_key(key, name);
    let name = ctx.name(&raw.name, &k("name"), NameKind::Service)?;
    let min = raw
        .min_replicas
        .as_ref()
        .map_or(defaults::MIN_REPLICAS, |v| *v.get_ref());
    let max = raw
        .max_replicas
        .as_ref()
        .map_or(defaults::MAX_REPLICAS, |v| *v.get_ref());
    if max == 0 {
        let span = raw.max_replicas.as_ref().map_or(svc.span(), S::span);
        return Err(ctx.err(span, k("max_replicas"), "must be at least 1"));
    }
    if min > max {
        let span = raw
            .min_replicas
            .as_ref()
            .or(raw.max_replicas.as_ref())
            .map_or(svc.span(), S::span);
        return Err(ctx.err(
            span,
            k("min_replicas"),
            format!("min_replicas ({min}) must not be above max_replicas ({max})"),
        ));
    }
    let interval = ctx.opt_duration(&raw.interval, &k("interval"), defaults::INTERVAL)?;

    if raw.check.is_empty() {
        return Err(ctx.err(
            svc.span(),
            k("check"),
            "missing; a service needs at least one [[service.check]]",
        ));
    }
    let mut builder = EngineConfig::builder(min, max);
    let mut checks: Vec<CheckSettings> = Vec::new();
    for (j, check) in raw.check.iter().enumerate() {
        let ck = format!("{key}.check[{j}]");
        let (settings, engine_check) =
            check_settings(ctx, check.get_ref(), &ck, interval, prometheus, instances)?;
        if checks.iter().any(|c| c.name == settings.name) {
            return Err(ctx.err(
                check.get_ref().name.span(),
                join_key(&ck, "name"),
                format!(
                    "check name {:?} is used twice in this service",
                    settings.name
                ),
            ));
        }
        builder = builder.check(engine_check);
        if matches!(settings.policy, PolicySettings::Threshold { .. }) {
            builder = builder.default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
        }
        checks.push(settings);
    }

    if let Some(behavior) = &raw.behavior {
        builder = builder.behavior(behavior_settings(ctx, behavior, &k("behavior"))?);
    }
    if let Some(c) = &raw.cooldown_up {
        builder = builder.cooldown_up(ctx.duration(c, &k("cooldown_up"))?);
    }
    if let Some(c) = &raw.cooldown_down {
        builder = builder.cooldown_down(ctx.duration(c, &k("cooldown_down"))?);
    }
    if let Some(fb) = &raw.fallback {
        let f = fb.get_ref();
        let mode = ctx.opt_one_of(
            &f.mode,
            &k("fallback.mode"),
            "fallback mode",
            &[
                ("static", FallbackMode::Static),
                ("if_higher", FallbackMode::IfHigher),
            ],
            FallbackMode::Static,
        )?;
        let fallback = Fallback::new(*f.after.get_ref(), *f.replicas.get_ref(), mode)
            .map_err(|_| ctx.err(f.after.span(), k("fallback.after"), "must be at least 1"))?;
        builder = builder.fallback(fallback);
    }
    if let Some(idle) = &raw.idle_after {
        if min > 0 {
            return Err(ctx.err(
                idle.span(),
                k("idle_after"),
                format!("only allowed when min_replicas = 0 (it is {min}): only a service that may scale to zero becomes idle"),
            ));
        }
        builder = builder.idle_after(ctx.positive_duration(idle, &k("idle_after"))?);
    }
    if let Some(p) = &raw.paused {
        let pause = ctx.one_of(
            p,
            &k("paused"),
            "pause setting",
            &[
                ("none", Pause::None),
                ("all", Pause::All),
                ("up", Pause::Up),
                ("down", Pause::Down),
            ],
        )?;
        builder = builder.pause(pause);
    }
    // Everything the builder checks was checked above with a position; this is the backstop.
    let engine = builder
        .build()
        .map_err(|e| ctx.err(svc.span(), key, e.to_string()))?;

    let scaler = scaler_settings(ctx, &raw.scaler, &k("scaler"), &name)?;
    Ok(ServiceConfig {
        name,
        interval,
        dry_run: daemon_dry_run || raw.dry_run.unwrap_or(false),
        engine,
        checks,
        scaler,
    })
}

fn check_settings(
    ctx: &Ctx<'_>,
    raw: &RawCheck,
    key: &str,
    interval: Duration,
    prometheus: &PrometheusSettings,
    instances: &BTreeMap<String, PrometheusSettings>,
) -> Result<(CheckSettings, Check)> {
    let k = |name: &str| join_key(key, name);
    let name = ctx.name(&raw.name, &k("name"), NameKind::Service)?;
    if raw.query.get_ref().trim().is_empty() {
        return Err(ctx.err(raw.query.span(), k("query"), "must not be empty"));
    }
    let instance = match &raw.prometheus {
        Some(p) => match instances.get(p.get_ref()) {
            Some(inst) => Some((p.get_ref().clone(), inst)),
            None => {
                let names: Vec<&str> = instances.keys().map(String::as_str).collect();
                let expected = if names.is_empty() {
                    "no [prometheus.instances.NAME] is defined".to_owned()
                } else {
                    format!("expected {}", quoted_list(&names))
                };
                return Err(ctx.err(
                    p.span(),
                    k("prometheus"),
                    format!("unknown instance {:?}; {expected}", p.get_ref()),
                ));
            }
        },
        None => None,
    };
    let on_empty_default = instance
        .as_ref()
        .map_or(prometheus.on_empty, |(_, i)| i.on_empty);

    let range = match &raw.range {
        Some(r) => {
            let range = ctx.positive_duration(r, &k("range"))?;
            let step = ctx.opt_duration(&raw.step, &k("step"), interval)?;
            let reduce = ctx.opt_one_of(
                &raw.range_reduce,
                &k("range_reduce"),
                "range reduction",
                &[
                    ("avg", RangeReduce::Avg),
                    ("max", RangeReduce::Max),
                    ("min", RangeReduce::Min),
                    ("last", RangeReduce::Last),
                ],
                RangeReduce::Avg,
            )?;
            if range.as_millis() / step.as_millis().max(1) > defaults::MAX_RANGE_POINTS {
                return Err(ctx.err(
                    r.span(),
                    k("range"),
                    format!("range / step gives more than {} points, which Prometheus refuses; raise step", defaults::MAX_RANGE_POINTS),
                ));
            }
            Some(RangeQuery {
                range,
                step,
                reduce,
            })
        }
        None => {
            for (name, v) in [("step", &raw.step), ("range_reduce", &raw.range_reduce)] {
                if let Some(v) = v {
                    return Err(ctx.err(v.span(), k(name), "only allowed together with range"));
                }
            }
            None
        }
    };
    let reduce = raw
        .reduce
        .as_ref()
        .map(|r| {
            ctx.one_of(
                r,
                &k("reduce"),
                "reduction",
                &[
                    ("sum", SeriesReduce::Sum),
                    ("max", SeriesReduce::Max),
                    ("min", SeriesReduce::Min),
                    ("avg", SeriesReduce::Avg),
                ],
            )
        })
        .transpose()?;
    let on_empty = ctx.opt_one_of(
        &raw.on_empty,
        &k("on_empty"),
        "value",
        ON_EMPTY,
        on_empty_default,
    )?;
    let non_finite = ctx.opt_one_of(
        &raw.non_finite,
        &k("non_finite"),
        "value",
        &[("error", NonFinite::Error), ("accept", NonFinite::Accept)],
        NonFinite::Error,
    )?;
    let (policy_settings, policy) = policy_settings(ctx, raw.policy.get_ref(), &k("policy"))?;
    let mut check =
        Check::new(name.clone(), policy).accepting_non_finite(non_finite == NonFinite::Accept);
    let mut activation = 0.0;
    if let Some(a) = &raw.activation {
        check = check
            .with_activation(*a.get_ref())
            .map_err(|e| ctx.err(a.span(), k("activation"), e.to_string()))?;
        activation = *a.get_ref();
    }
    let settings = CheckSettings {
        name,
        query: raw.query.get_ref().clone(),
        prometheus: instance.map(|(n, _)| n),
        range,
        reduce,
        on_empty,
        non_finite,
        policy: policy_settings,
        activation,
    };
    Ok((settings, check))
}

/// Refuse keys that the chosen kind does not take, naming the ones it does.
fn only_keys(
    ctx: &Ctx<'_>,
    key: &str,
    kind: &str,
    present: &[(&str, Option<Range<usize>>)],
    allowed: &[&str],
) -> Result<()> {
    for (name, span) in present {
        if let Some(span) = span
            && !allowed.contains(name)
        {
            return Err(ctx.err(
                span.clone(),
                join_key(key, name),
                format!(
                    "not allowed with kind = {kind:?}; allowed keys: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn policy_settings<'r>(
    ctx: &Ctx<'_>,
    raw: &'r RawPolicy,
    key: &str,
) -> Result<(PolicySettings, Arc<dyn Policy>)> {
    let k = |name: &str| join_key(key, name);
    let kind = ctx.one_of(
        &raw.kind,
        &k("kind"),
        "policy",
        &[("target", true), ("threshold", false)],
    )?;
    let present = [
        ("target", raw.target.as_ref().map(S::span)),
        ("per", raw.per.as_ref().map(S::span)),
        ("tolerance", raw.tolerance.as_ref().map(S::span)),
        ("scale_up_above", raw.scale_up_above.as_ref().map(S::span)),
        (
            "scale_down_below",
            raw.scale_down_below.as_ref().map(S::span),
        ),
        ("step", raw.step.as_ref().map(S::span)),
        ("step_percent", raw.step_percent.as_ref().map(S::span)),
    ];
    let required = |v: &'r Option<S<f64>>, name: &str| -> Result<&'r S<f64>> {
        v.as_ref().ok_or_else(|| {
            ctx.err(
                raw.kind.span(),
                k(name),
                format!("missing; a {} policy needs {name}", raw.kind.get_ref()),
            )
        })
    };
    if kind {
        only_keys(
            ctx,
            key,
            "target",
            &present,
            &["kind", "target", "per", "tolerance"],
        )?;
        let target = required(&raw.target, "target")?;
        let per = ctx.opt_one_of(
            &raw.per,
            &k("per"),
            "value",
            &[
                ("replica", TargetForm::PerReplica),
                ("total", TargetForm::Total),
            ],
            TargetForm::PerReplica,
        )?;
        let tolerance = raw
            .tolerance
            .as_ref()
            .map_or(TargetPolicy::DEFAULT_TOLERANCE, |t| *t.get_ref());
        let policy = TargetPolicy::with_tolerance(*target.get_ref(), per, tolerance).map_err(
            |e| match e {
                PolicyError::Tolerance(_) => ctx.err(
                    raw.tolerance.as_ref().map_or(target.span(), S::span),
                    k("tolerance"),
                    e.to_string(),
                ),
                _ => ctx.err(target.span(), k("target"), e.to_string()),
            },
        )?;
        let settings = PolicySettings::Target {
            target: policy.target(),
            per,
            tolerance: policy.tolerance(),
        };
        Ok((settings, Arc::new(policy)))
    } else {
        only_keys(
            ctx,
            key,
            "threshold",
            &present,
            &[
                "kind",
                "scale_up_above",
                "scale_down_below",
                "step",
                "step_percent",
            ],
        )?;
        let up = required(&raw.scale_up_above, "scale_up_above")?;
        let down = required(&raw.scale_down_below, "scale_down_below")?;
        let step = match (&raw.step, &raw.step_percent) {
            (Some(_), Some(p)) => {
                return Err(ctx.err(
                    p.span(),
                    k("step_percent"),
                    "step and step_percent cannot both be set; choose one",
                ));
            }
            (Some(s), None) => Step::Count(*s.get_ref()),
            (None, Some(p)) => Step::Percent(*p.get_ref()),
            (None, None) => Step::Count(1),
        };
        let policy =
            ThresholdPolicy::new(*up.get_ref(), *down.get_ref(), step).map_err(|e| match e {
                PolicyError::Step(_) => {
                    let (span, name) = match (&raw.step, &raw.step_percent) {
                        (Some(s), _) => (s.span(), "step"),
                        (_, Some(p)) => (p.span(), "step_percent"),
                        _ => (raw.kind.span(), "step"),
                    };
                    ctx.err(span, k(name), e.to_string())
                }
                _ => ctx.err(down.span(), k("scale_down_below"), e.to_string()),
            })?;
        let settings = PolicySettings::Threshold {
            scale_up_above: policy.scale_up_above(),
            scale_down_below: policy.scale_down_below(),
            step,
        };
        Ok((settings, Arc::new(policy)))
    }
}

fn behavior_settings(ctx: &Ctx<'_>, raw: &super::raw::RawBehavior, key: &str) -> Result<Behavior> {
    let mut behavior = Behavior::default();
    if let Some(up) = &raw.scale_up {
        behavior.scale_up = direction(
            ctx,
            up.get_ref(),
            &join_key(key, "scale_up"),
            ScalingRules::default_up(),
        )?;
    }
    if let Some(down) = &raw.scale_down {
        behavior.scale_down = direction(
            ctx,
            down.get_ref(),
            &join_key(key, "scale_down"),
            ScalingRules::default_down(),
        )?;
    }
    Ok(behavior)
}

/// A direction table: the keys it sets over the direction's defaults.
fn direction(
    ctx: &Ctx<'_>,
    raw: &RawDirection,
    key: &str,
    default: ScalingRules,
) -> Result<ScalingRules> {
    let k = |name: &str| join_key(key, name);
    let window = match &raw.stabilization_window {
        Some(w) => ctx.duration(w, &k("stabilization_window"))?,
        None => default.stabilization_window(),
    };
    let select = ctx.opt_one_of(
        &raw.select,
        &k("select"),
        "select",
        &[
            ("max", Select::Max),
            ("min", Select::Min),
            ("disabled", Select::Disabled),
        ],
        default.select(),
    )?;
    let rules = match &raw.rules {
        None => default.rules().to_vec(),
        Some(rules) if rules.get_ref().is_empty() => {
            return Err(ctx.err(
                rules.span(),
                k("rules"),
                "must not be empty: remove the key to use the defaults, or set select = \"disabled\"",
            ));
        }
        Some(rules) => {
            let mut out = Vec::new();
            for (i, rule) in rules.get_ref().iter().enumerate() {
                let rk = format!("{}[{i}]", k("rules"));
                let r = rule.get_ref();
                let period = ctx.positive_duration(&r.period, &join_key(&rk, "period"))?;
                let built = match (&r.pods, &r.percent) {
                    (Some(_), Some(p)) => {
                        return Err(ctx.err(
                            p.span(),
                            join_key(&rk, "percent"),
                            "a rule has either pods or percent, not both",
                        ));
                    }
                    (Some(p), None) => Rule::pods(*p.get_ref(), period)
                        .map_err(|e| ctx.err(p.span(), join_key(&rk, "pods"), e.to_string()))?,
                    (None, Some(p)) => Rule::percent(*p.get_ref(), period)
                        .map_err(|e| ctx.err(p.span(), join_key(&rk, "percent"), e.to_string()))?,
                    (None, None) => {
                        return Err(ctx.err(
                            rule.span(),
                            rk,
                            "missing; a rule needs pods or percent",
                        ));
                    }
                };
                out.push(built);
            }
            out
        }
    };
    ScalingRules::new(window, select, rules).map_err(|e| ctx.err(0..0, k("rules"), e.to_string()))
}

fn docker_settings(ctx: &Ctx<'_>, raw: &RawScaler, key: &str) -> Result<DockerSettings> {
    let k = |name: &str| join_key(key, name);
    let text = |v: &Option<S<String>>, name: &str| -> Result<Option<String>> {
        v.as_ref()
            .map(|v| {
                check_path(v.get_ref()).map_err(|m| ctx.err(v.span(), k(name), m))?;
                Ok(v.get_ref().clone())
            })
            .transpose()
    };
    Ok(DockerSettings {
        host: text(&raw.docker_host, "docker_host")?,
        context: text(&raw.docker_context, "docker_context")?,
        tls_verify: raw.docker_tls_verify.as_ref().map(|v| *v.get_ref()),
        cert_path: ctx.opt_path(&raw.docker_cert_path, &k("docker_cert_path"))?,
    })
}

const DOCKER_KEYS: [&str; 4] = [
    "docker_host",
    "docker_context",
    "docker_tls_verify",
    "docker_cert_path",
];

fn scaler_settings(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    service_name: &str,
) -> Result<ScalerSettings> {
    let raw = scaler.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind = ctx.one_of(
        &raw.kind,
        &k("kind"),
        "scaler",
        &[("compose", 0), ("swarm", 1), ("ansible", 2)],
    )?;
    let present = [
        ("project", raw.project.as_ref().map(S::span)),
        ("file", raw.file.as_ref().map(S::span)),
        ("service", raw.service.as_ref().map(S::span)),
        ("command", raw.command.as_ref().map(S::span)),
        ("env_file", raw.env_file.as_ref().map(S::span)),
        ("profiles", raw.profiles.as_ref().map(S::span)),
        ("timeout", raw.timeout.as_ref().map(S::span)),
        ("docker_host", raw.docker_host.as_ref().map(S::span)),
        ("docker_context", raw.docker_context.as_ref().map(S::span)),
        (
            "docker_tls_verify",
            raw.docker_tls_verify.as_ref().map(S::span),
        ),
        (
            "docker_cert_path",
            raw.docker_cert_path.as_ref().map(S::span),
        ),
        ("playbook", raw.playbook.as_ref().map(S::span)),
        ("inventory", raw.inventory.as_ref().map(S::span)),
        ("extra_vars", raw.extra_vars.as_ref().map(S::span)),
        ("status", raw.status.as_ref().map(S::span)),
        ("limit", raw.limit.as_ref().map(S::span)),
        ("tags", raw.tags.as_ref().map(S::span)),
        ("check_mode", raw.check_mode.as_ref().map(S::span)),
        (
            "vault_password_file",
            raw.vault_password_file.as_ref().map(S::span),
        ),
        ("env", raw.env.as_ref().map(S::span)),
        (
            "ansible_playbook",
            raw.ansible_playbook.as_ref().map(S::span),
        ),
        ("virtualenv", raw.virtualenv.as_ref().map(S::span)),
    ];
    let target_service = |v: &Option<S<String>>, name: &str| -> Result<String> {
        match v {
            Some(s) => ctx.name(s, &k(name), NameKind::Service),
            None => Ok(service_name.to_owned()),
        }
    };
    match kind {
        0 => {
            let mut allowed = vec![
                "kind", "project", "file", "service", "command", "env_file", "profiles", "timeout",
            ];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "compose", &present, &allowed)?;
            let profiles = match &raw.profiles {
                Some(p) => {
                    for profile in p.get_ref() {
                        check_name(profile, NameKind::Service)
                            .map_err(|m| ctx.err(p.span(), k("profiles"), m))?;
                    }
                    p.get_ref().clone()
                }
                None => Vec::new(),
            };
            Ok(ScalerSettings::Compose(ComposeSettings {
                project: match &raw.project {
                    Some(p) => ctx.name(p, &k("project"), NameKind::Project)?,
                    None => defaults::COMPOSE_PROJECT.to_owned(),
                },
                file: match &raw.file {
                    Some(f) => ctx.path(f, &k("file"))?,
                    None => PathBuf::from(defaults::COMPOSE_FILE),
                },
                service: target_service(&raw.service, "service")?,
                command: raw
                    .command
                    .as_ref()
                    .map(|c| ctx.command(c, &k("command")))
                    .transpose()?,
                env_file: ctx.opt_path(&raw.env_file, &k("env_file"))?,
                profiles,
                timeout: ctx.opt_duration(&raw.timeout, &k("timeout"), defaults::DOCKER_TIMEOUT)?,
                docker: docker_settings(ctx, raw, key)?,
            }))
        }
        1 => {
            let mut allowed = vec!["kind", "service", "command", "timeout"];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "swarm", &present, &allowed)?;
            Ok(ScalerSettings::Swarm(SwarmSettings {
                service: target_service(&raw.service, "service")?,
                command: match &raw.command {
                    Some(c) => ctx.command(c, &k("command"))?,
                    None => vec!["docker".to_owned()],
                },
                timeout: ctx.opt_duration(&raw.timeout, &k("timeout"), defaults::DOCKER_TIMEOUT)?,
                docker: docker_settings(ctx, raw, key)?,
            }))
        }
        _ => {
            only_keys(
                ctx,
                key,
                "ansible",
                &present,
                &[
                    "kind",
                    "playbook",
                    "inventory",
                    "extra_vars",
                    "status",
                    "timeout",
                    "limit",
                    "tags",
                    "check_mode",
                    "vault_password_file",
                    "env",
                    "ansible_playbook",
                    "virtualenv",
                ],
            )?;
            ansible_settings(ctx, scaler, key, service_name).map(ScalerSettings::Ansible)
        }
    }
}

fn ansible_settings(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    service_name: &str,
) -> Result<AnsibleSettings> {
    let raw = scaler.get_ref();
    let k = |name: &str| join_key(key, name);
    let playbook = match &raw.playbook {
        Some(p) => ctx.path(p, &k("playbook"))?,
        None => {
            return Err(ctx.err(
                raw.kind.span(),
                k("playbook"),
                "missing; an ansible scaler needs a playbook",
            ));
        }
    };
    let mut extra_vars = serde_json::Map::new();
    if let Some(vars) = &raw.extra_vars {
        for (name, value) in vars.get_ref() {
            if matches!(name.as_str(), "service" | "replicas") {
                return Err(ctx.err(
                    vars.span(),
                    format!("{}.{name}", k("extra_vars")),
                    "is always passed by the scaler and cannot be set here",
                ));
            }
            let value = toml_to_json(value)
                .map_err(|m| ctx.err(vars.span(), format!("{}.{name}", k("extra_vars")), m))?;
            extra_vars.insert(name.clone(), value);
        }
    }
    let status = raw
        .status
        .as_ref()
        .map(|s| ansible_status(ctx, s, &k("status"), service_name))
        .transpose()?;
    let tags = match &raw.tags {
        Some(t) => ctx.arguments(t, &k("tags"))?,
        None => Vec::new(),
    };
    let mut env = BTreeMap::new();
    if let Some(vars) = &raw.env {
        for (name, value) in vars.get_ref() {
            check_name(name, NameKind::EnvVar)
                .map_err(|m| ctx.err(vars.span(), format!("{}.{name}", k("env")), m))?;
            if value.contains('\0') {
                return Err(ctx.err(
                    vars.span(),
                    format!("{}.{name}", k("env")),
                    "must not contain a NUL character",
                ));
            }
            env.insert(name.clone(), value.clone());
        }
    }
    let program = match (&raw.ansible_playbook, &raw.virtualenv) {
        (Some(_), Some(v)) => {
            return Err(ctx.err(
                v.span(),
                k("virtualenv"),
                "ansible_playbook and virtualenv cannot both be set; choose one",
            ));
        }
        (Some(p), None) => AnsibleProgram::Binary(ctx.path(p, &k("ansible_playbook"))?),
        (None, Some(v)) => AnsibleProgram::Virtualenv(ctx.path(v, &k("virtualenv"))?),
        (None, None) => AnsibleProgram::Binary(PathBuf::from(defaults::ANSIBLE_PLAYBOOK)),
    };
    Ok(AnsibleSettings {
        playbook,
        inventory: ctx.opt_path(&raw.inventory, &k("inventory"))?,
        extra_vars,
        status,
        timeout: ctx.opt_duration(&raw.timeout, &k("timeout"), defaults::ANSIBLE_TIMEOUT)?,
        limit: raw
            .limit
            .as_ref()
            .map(|l| ctx.argument(l, &k("limit")))
            .transpose()?,
        tags,
        check_mode: raw.check_mode.as_ref().is_some_and(|c| *c.get_ref()),
        vault_password_file: ctx.opt_path(&raw.vault_password_file, &k("vault_password_file"))?,
        env,
        program,
    })
}

fn ansible_status(
    ctx: &Ctx<'_>,
    status: &S<RawStatus>,
    key: &str,
    service_name: &str,
) -> Result<AnsibleStatus> {
    let raw = status.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind = ctx.one_of(
        &raw.kind,
        &k("kind"),
        "status kind",
        &[("compose", 0), ("swarm", 1), ("playbook", 2)],
    )?;
    let present = [
        ("project", raw.project.as_ref().map(S::span)),
        ("file", raw.file.as_ref().map(S::span)),
        ("service", raw.service.as_ref().map(S::span)),
        ("playbook", raw.playbook.as_ref().map(S::span)),
        ("inventory", raw.inventory.as_ref().map(S::span)),
    ];
    let service = |v: &Option<S<String>>| -> Result<String> {
        match v {
            Some(s) => ctx.name(s, &k("service"), NameKind::Service),
            None => Ok(service_name.to_owned()),
        }
    };
    match kind {
        0 => {
            only_keys(
                ctx,
                key,
                "compose",
                &present,
                &["kind", "project", "file", "service"],
            )?;
            Ok(AnsibleStatus::Compose {
                project: match &raw.project {
                    Some(p) => ctx.name(p, &k("project"), NameKind::Project)?,
                    None => defaults::COMPOSE_PROJECT.to_owned(),
                },
                file: ctx.opt_path(&raw.file, &k("file"))?,
                service: service(&raw.service)?,
            })
        }
        1 => {
            only_keys(ctx, key, "swarm", &present, &["kind", "service"])?;
            Ok(AnsibleStatus::Swarm {
                service: service(&raw.service)?,
            })
        }
        _ => {
            only_keys(
                ctx,
                key,
                "playbook",
                &present,
                &["kind", "playbook", "inventory"],
            )?;
            let playbook = match &raw.playbook {
                Some(p) => ctx.path(p, &k("playbook"))?,
                None => {
                    return Err(ctx.err(
                        raw.kind.span(),
                        k("playbook"),
                        "missing; a playbook status needs a playbook",
                    ));
                }
            };
            Ok(AnsibleStatus::Playbook {
                playbook,
                inventory: ctx.opt_path(&raw.inventory, &k("inventory"))?,
            })
        }
    }
}

fn toml_to_json(value: &toml::Value) -> std::result::Result<serde_json::Value, String> {
    Ok(match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or("must be a finite number")?,
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        // Ansible reads dates as strings anyway; say so rather than guess a format.
        toml::Value::Datetime(_) => {
            return Err("dates are not supported; write the date as a string".to_owned());
        }
        toml::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(toml_to_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
    })
}
