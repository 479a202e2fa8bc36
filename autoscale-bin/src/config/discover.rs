//! `[[discover]]`: a Docker endpoint whose labelled Swarm or Compose services are scaled without a
//! `[[service]]` each, and the defaults of what it finds.
//!
//! A found service becomes a [`ServiceConfig`] through the very validation of a `[[service]]`: its labels and
//! the section's defaults are written as one `[[service]]` table, which [`super::service::section`] reads. A
//! bad label therefore gets the message a bad key would, said of the label:
//! `service web (swarm label autoscale.max): "ten" is not a whole number`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::diagnostics::{ConfigError, Ctx, NameKind, Result, check_name, join_key, path_to_key};
use super::keyword::{Keyword, keyword};
use super::prometheus::PrometheusSettings;
use super::raw::{
    RawCheck, RawConfig, RawDiscover, RawDiscoverCheck, RawPolicy, RawScaler, RawService, S,
};
use super::{ServiceConfig, service};
pub use crate::discovered::{DiscoverKind, DiscoveredService, Selector};

keyword!(DiscoverKind, "discovery kind", "swarm" => DiscoverKind::Swarm, "compose" => DiscoverKind::Compose);

/// How often a section lists its endpoint's services when nothing asks earlier.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);

/// The label that opts a service in under the default selector.
pub const ENABLE_LABEL: &str = "autoscale.enable";
/// The labels a found service may carry, each read as the `[[service]]` key it sets.
pub const LABELS: [&str; 10] = [
    ENABLE_LABEL,
    "autoscale.min",
    "autoscale.max",
    "autoscale.query",
    "autoscale.target",
    "autoscale.scale_up_above",
    "autoscale.scale_down_below",
    "autoscale.interval",
    "autoscale.cooldown_up",
    "autoscale.cooldown_down",
];

/// The check of a found service is named this unless `[discover.check] name` says otherwise.
pub const DEFAULT_CHECK_NAME: &str = "labels";

/// The Compose label holding the project's name.
const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The Compose label holding the project's files.
const FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// One `[[discover]]` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverSettings {
    /// Swarm services or Compose services.
    pub kind: DiscoverKind,
    /// The labels that opt a service in, as [`Selector`] writes them (it parses again without fail).
    pub selector: String,
    /// The evaluation interval of what it finds, unless `autoscale.interval` says otherwise.
    pub interval: Duration,
    /// How often the services are listed again.
    pub resync: Duration,
    /// The timeout of one listing, and of the found services' scaler calls.
    pub timeout: Duration,
    /// The endpoint.
    pub docker: autoscale_docker::DockerEnv,
    /// The `[[service]]` keys every found service starts from (bounds, cooldowns, dry_run, the check), as
    /// written.
    defaults: Table,
    /// The scaler keys every found service's scaler starts from (timeout, command, the endpoint).
    scaler: Table,
}

/// A found service that cannot be scaled as labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name the service would have had.
    pub name: String,
    /// The Swarm service ID, or `project/service`.
    pub id: String,
    /// Why, for the operator and `/status`.
    pub reason: String,
}

impl DiscoverSettings {
    /// The name a found service takes: the Swarm service's, or `PROJECT-SERVICE` for Compose.
    pub fn service_name(found: &DiscoveredService) -> String {
        match (&found.kind, &found.project) {
            (DiscoverKind::Compose, Some(project)) => format!("{project}-{}", found.name),
            _ => found.name.clone(),
        }
    }

    /// The configuration of a found service: its labels over this section's defaults, checked as a
    /// `[[service]]` is. The error says which label (or default) is wrong, and why.
    pub fn service(
        &self,
        found: &DiscoveredService,
        prometheus: &PrometheusSettings,
        instances: &BTreeMap<String, PrometheusSettings>,
        daemon_dry_run: bool,
    ) -> std::result::Result<ServiceConfig, ConfigError> {
        let name = Self::service_name(found);
        let kind = self.kind.keyword();
        let label_err = |label: &str, message: String| {
            ConfigError::discovered(&name, format!("{kind} label {label}"), None, message)
        };
        check_name(&name, NameKind::Service)
            .map_err(|m| ConfigError::discovered(&name, format!("{kind} service name"), None, m))?;
        if let Some(label) = found
            .labels
            .keys()
            .find(|l| !LABELS.contains(&l.as_str()) && !self.selects(l))
        {
            return Err(label_err(
                label,
                format!("unknown label; expected one of {}", LABELS.join(", ")),
            ));
        }
        let label = |l: &str| found.labels.get(l).map(String::as_str);
        let whole = |l: &str| -> Result<Option<Value>> {
            label(l)
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map(|n| Value::Integer(n.into()))
                        .map_err(|_| label_err(l, format!("{v:?} is not a whole number")))
                })
                .transpose()
        };
        let number = |l: &str| -> Result<Option<Value>> {
            label(l)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map(Value::Float)
                        .map_err(|_| label_err(l, format!("{v:?} is not a number")))
                })
                .transpose()
        };

        // Which keys of the table come from which label, to say so in an error.
        let mut from_label: Vec<(&str, &str)> = Vec::new();
        let mut svc = self.defaults.clone();
        svc.insert("name".into(), Value::String(name.clone()));
        svc.insert(
            "interval".into(),
            Value::String(super::format_duration(self.interval)),
        );
        for (key, l) in [
            ("min_replicas", "autoscale.min"),
            ("max_replicas", "autoscale.max"),
        ] {
            if let Some(v) = whole(l)? {
                svc.insert(key.into(), v);
                from_label.push((key, l));
            }
        }
        for (key, l) in [
            ("interval", "autoscale.interval"),
            ("cooldown_up", "autoscale.cooldown_up"),
            ("cooldown_down", "autoscale.cooldown_down"),
        ] {
            if let Some(v) = label(l) {
                svc.insert(key.into(), Value::String(v.trim().to_owned()));
                from_label.push((key, l));
            }
        }

        let mut check = match svc.remove("check") {
            Some(Value::Table(t)) => t,
            _ => Table::new(),
        };
        check
            .entry("name")
            .or_insert_with(|| Value::String(DEFAULT_CHECK_NAME.into()));
        if let Some(q) = label("autoscale.query") {
            check.insert("query".into(), Value::String(q.to_owned()));
            from_label.push(("check[0].query", "autoscale.query"));
        }
        if !check.contains_key("query") {
            return Err(label_err(
                "autoscale.query",
                "missing; set this label, or a default query in [discover.check]".into(),
            ));
        }
        let default_policy = match check.get("policy") {
            Some(Value::Table(t)) => Some(t.clone()),
            _ => None,
        };
        let default_kind = default_policy
            .as_ref()
            .and_then(|p| p.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let target = number("autoscale.target")?;
        let up = number("autoscale.scale_up_above")?;
        let down = number("autoscale.scale_down_below")?;
        match (target, up.is_some() || down.is_some()) {
            (Some(_), true) => {
                let other = if up.is_some() {
                    "autoscale.scale_up_above"
                } else {
                    "autoscale.scale_down_below"
                };
                return Err(label_err(
                    other,
                    "cannot be set together with autoscale.target; choose a target or thresholds"
                        .into(),
                ));
            }
            (Some(target), false) => {
                let mut policy = match (default_kind.as_deref(), &default_policy) {
                    (Some("target"), Some(p)) => p.clone(),
                    _ => Table::from_iter([("kind".to_owned(), Value::String("target".into()))]),
                };
                policy.insert("target".into(), target);
                check.insert("policy".into(), Value::Table(policy));
                from_label.push(("check[0].policy", "autoscale.target"));
            }
            (None, true) => {
                let mut policy = match (default_kind.as_deref(), &default_policy) {
                    (Some("threshold"), Some(p)) => p.clone(),
                    _ => {
                        let (given, missing) = if up.is_some() {
                            ("autoscale.scale_up_above", "autoscale.scale_down_below")
                        } else {
                            ("autoscale.scale_down_below", "autoscale.scale_up_above")
                        };
                        if up.is_none() || down.is_none() {
                            return Err(label_err(
                                given,
                                format!(
                                    "needs {missing} too, unless [discover.check] has a threshold policy"
                                ),
                            ));
                        }
                        Table::from_iter([("kind".to_owned(), Value::String("threshold".into()))])
                    }
                };
                let label_of = if up.is_some() {
                    "autoscale.scale_up_above"
                } else {
                    "autoscale.scale_down_below"
                };
                if let Some(v) = up {
                    policy.insert("scale_up_above".into(), v);
                }
                if let Some(v) = down {
                    policy.insert("scale_down_below".into(), v);
                }
                check.insert("policy".into(), Value::Table(policy));
                from_label.push(("check[0].policy", label_of));
            }
            (None, false) if default_policy.is_none() => {
                return Err(label_err(
                    "autoscale.target",
                    "missing; set autoscale.target, or autoscale.scale_up_above and \
                     autoscale.scale_down_below, or a default policy in [discover.check]"
                        .into(),
                ));
            }
            (None, false) => {}
        }
        svc.insert("check".into(), Value::Array(vec![Value::Table(check)]));

        let mut scaler = self.scaler.clone();
        scaler.insert("kind".into(), Value::String(kind.into()));
        scaler.insert("service".into(), Value::String(found.name.clone()));
        let files = compose_files(found);
        if self.kind == DiscoverKind::Compose {
            let project = found.project.clone().unwrap_or_default();
            scaler.insert("project".into(), Value::String(project));
            from_label.push(("scaler.project", PROJECT_LABEL));
            if let Some(first) = files.first() {
                scaler.insert(
                    "file".into(),
                    Value::String(first.to_string_lossy().into_owned()),
                );
                from_label.push(("scaler.file", FILES_LABEL));
            }
        }
        svc.insert("scaler".into(), Value::Table(scaler));

        let root =
            Table::from_iter([("service".to_owned(), Value::Array(vec![Value::Table(svc)]))]);
        let text = toml::to_string(&root).map_err(|e| {
            ConfigError::discovered(&name, format!("{kind} labels"), None, e.to_string())
        })?;
        let in_terms_of_labels = |e: ConfigError| {
            let key = e
                .key()
                .unwrap_or_default()
                .trim_start_matches('.')
                .to_owned();
            let by_label = from_label.iter().find(|(k, _)| {
                key == *k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}["))
            });
            match by_label {
                Some((_, l)) => {
                    ConfigError::discovered(&name, format!("{kind} label {l}"), None, e.message())
                }
                None => ConfigError::discovered(
                    &name,
                    "[[discover]] defaults".to_owned(),
                    Some(key),
                    e.message(),
                ),
            }
        };
        let path = Path::new("discovered");
        let ctx = Ctx::new(path, &text);
        let de = toml::Deserializer::parse(&text)
            .map_err(|e| in_terms_of_labels(ctx.toml_error(&e, String::new())))?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = path_to_key(e.path());
            in_terms_of_labels(ctx.toml_error(e.inner(), key.replacen("service[0]", "", 1)))
        })?;
        let Some(raw) = raw.service.first() else {
            return Err(label_err("", "no service".into()));
        };
        let mut config = service::section(&ctx, raw, "", prometheus, instances, daemon_dry_run)
            .map_err(in_terms_of_labels)?;
        if let super::ScalerSettings::Compose(compose) = &mut config.scaler
            && files.len() > 1
        {
            compose.files = Some(files);
        }
        Ok(config)
    }

    /// Whether `label` is one of the selector's.
    fn selects(&self, label: &str) -> bool {
        self.selector
            .split(',')
            .any(|pair| pair.split('=').next() == Some(label))
    }

    /// The `[[service]]` keys a found service starts from, as `check` shows them.
    pub(crate) fn defaults(&self) -> &Table {
        &self.defaults
    }

    /// The scaler keys a found service's scaler starts from, as `check` shows them.
    pub(crate) fn scaler_defaults(&self) -> &Table {
        &self.scaler
    }
}

/// The Compose files of a found project, made absolute against its working directory.
fn compose_files(found: &DiscoveredService) -> Vec<PathBuf> {
    found
        .config_files
        .iter()
        .map(|f| match &found.working_dir {
            Some(dir) if f.is_relative() => dir.join(f),
            _ => f.clone(),
        })
        .collect()
}

/// One `[[discover]]`, checked as the `[[service]]` every found service will be (with a placeholder name,
/// query and policy where the labels will give them), so that a bad default is reported here, at its line.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    raw: &S<RawDiscover>,
    key: &str,
    prometheus: &PrometheusSettings,
    instances: &BTreeMap<String, PrometheusSettings>,
) -> Result<DiscoverSettings> {
    let span = raw.span();
    let raw = raw.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind: DiscoverKind = ctx.keyword(&raw.kind, &k("kind"))?;
    let selector = match &raw.selector {
        Some(s) => Selector::parse(s.get_ref())
            .map_err(|m| ctx.err(s.span(), k("selector"), m))?
            .to_string(),
        None => Selector::default().to_string(),
    };
    let interval = ctx.opt_duration(&raw.interval, &k("interval"), service::INTERVAL)?;
    let resync = ctx.opt_duration(&raw.resync, &k("resync"), DEFAULT_RESYNC)?;
    let timeout = ctx.opt_duration(
        &raw.timeout,
        &k("timeout"),
        autoscale_docker::DEFAULT_TIMEOUT,
    )?;
    if let (DiscoverKind::Swarm, Some(c)) = (kind, &raw.command) {
        return Err(ctx.err(
            c.span(),
            k("command"),
            "not allowed with kind = \"swarm\": Swarm is scaled through the Engine API",
        ));
    }

    let probe = probe_service(raw, span.clone(), kind);
    let checked = service::section(ctx, &probe, key, prometheus, instances, false)
        .map_err(|e| e.map_key(discover_key))?;
    let docker = match checked.scaler {
        super::ScalerSettings::Compose(c) => c.docker,
        super::ScalerSettings::Swarm(s) => s.docker,
        super::ScalerSettings::Ansible(_) => autoscale_docker::DockerEnv::default(),
    };

    let mut defaults = Table::new();
    let mut put = |name: &str, v: Option<Value>| {
        if let Some(v) = v {
            defaults.insert(name.into(), v);
        }
    };
    let int = |v: &Option<S<u32>>| v.as_ref().map(|v| Value::Integer((*v.get_ref()).into()));
    let text = |v: &Option<S<String>>| v.as_ref().map(|v| Value::String(v.get_ref().clone()));
    put("min_replicas", int(&raw.min_replicas));
    put("max_replicas", int(&raw.max_replicas));
    put("cooldown_up", text(&raw.cooldown_up));
    put("cooldown_down", text(&raw.cooldown_down));
    put("dry_run", raw.dry_run.map(Value::Boolean));
    put("on_zero_outside", text(&raw.on_zero_outside));
    if let Some(check) = &raw.check {
        let table = Value::try_from(check.get_ref())
            .map_err(|e| ctx.err(check.span(), k("check"), e.to_string()))?;
        put("check", Some(table));
    }
    if let Some(behavior) = &raw.behavior {
        let table = Value::try_from(behavior)
            .map_err(|e| ctx.err(span.clone(), k("behavior"), e.to_string()))?;
        put("behavior", Some(table));
    }

    let mut scaler = Table::new();
    scaler.insert(
        "timeout".into(),
        Value::String(super::format_duration(timeout)),
    );
    if let Some(c) = &raw.command {
        scaler.insert(
            "command".into(),
            Value::Array(c.get_ref().iter().cloned().map(Value::String).collect()),
        );
    }
    if let Ok(Value::Table(endpoint)) = Value::try_from(&docker) {
        scaler.extend(endpoint);
    }
    Ok(DiscoverSettings {
        kind,
        selector,
        interval,
        resync,
        timeout,
        docker,
        defaults,
        scaler,
    })
}

/// A `[[discover]]`'s key for a key of its probe `[[service]]`: its scaler's and its check's keys are the
/// section's own.
fn discover_key(key: &str) -> String {
    key.replacen(".scaler.", ".", 1)
        .replacen(".check[0].", ".check.", 1)
        .trim_end_matches(".scaler")
        .to_owned()
}

/// The `[[service]]` a section's defaults describe, with placeholders where labels will fill in.
fn probe_service(raw: &RawDiscover, span: Range<usize>, kind: DiscoverKind) -> S<RawService> {
    let at = |v: &str| S::new(span.clone(), v.to_owned());
    let check = raw.check.as_ref().map(S::get_ref);
    let policy = check.and_then(|c| c.policy.clone()).unwrap_or_else(|| {
        S::new(
            span.clone(),
            RawPolicy {
                kind: at("target"),
                target: Some(S::new(span.clone(), 1.0)),
                per: None,
                tolerance: None,
                scale_up_above: None,
                scale_down_below: None,
                step: None,
                step_percent: None,
                window: None,
                z: None,
                season: None,
                lead: None,
                demand_query: None,
            },
        )
    });
    let field = |f: fn(&RawDiscoverCheck) -> &Option<S<String>>| check.and_then(|c| f(c).clone());
    let probe_check = RawCheck {
        name: field(|c| &c.name).unwrap_or_else(|| at(DEFAULT_CHECK_NAME)),
        query: field(|c| &c.query).unwrap_or_else(|| at("vector(0)")),
        policy,
        activation: check.and_then(|c| c.activation.clone()),
        prometheus: field(|c| &c.prometheus),
        range: None,
        step: None,
        range_reduce: None,
        reduce: field(|c| &c.reduce),
        on_empty: field(|c| &c.on_empty),
        non_finite: field(|c| &c.non_finite),
    };
    let scaler = RawScaler {
        kind: S::new(raw.kind.span(), kind.keyword().to_owned()),
        project: None,
        file: None,
        service: None,
        command: raw.command.clone(),
        env_file: None,
        profiles: None,
        timeout: raw.timeout.clone(),
        docker_host: raw.docker_host.clone(),
        docker_context: raw.docker_context.clone(),
        docker_tls_verify: raw.docker_tls_verify.clone(),
        docker_cert_path: raw.docker_cert_path.clone(),
        playbook: None,
        inventory: None,
        extra_vars: None,
        status: None,
        limit: None,
        tags: None,
        check_mode: None,
        vault_password_file: None,
        env: None,
        ansible_playbook: None,
        virtualenv: None,
    };
    S::new(
        span.clone(),
        RawService {
            name: at("discovered"),
            min_replicas: raw.min_replicas.clone(),
            max_replicas: raw.max_replicas.clone(),
            interval: raw.interval.clone(),
            dry_run: raw.dry_run,
            cooldown_up: raw.cooldown_up.clone(),
            cooldown_down: raw.cooldown_down.clone(),
            fallback: None,
            idle_after: None,
            paused: None,
            on_zero_outside: raw.on_zero_outside.clone(),
            scaler: S::new(span.clone(), scaler),
            check: vec![S::new(span, probe_check)],
            behavior: raw.behavior.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env, LoadOptions, ScalerSettings};

    const PROM: &str = "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n";

    fn config(discover: &str) -> Config {
        Config::from_toml(
            "config.toml",
            &format!("{PROM}{discover}"),
            &Env::empty(),
            LoadOptions::default(),
        )
        .unwrap()
    }

    fn found(kind: DiscoverKind, labels: &[(&str, &str)]) -> DiscoveredService {
        let id = match kind {
            DiscoverKind::Swarm => "abc123",
            DiscoverKind::Compose => "shop/web",
        };
        let mut found = DiscoveredService::new(kind, id, "web", 1);
        found.project = (kind == DiscoverKind::Compose).then(|| "shop".into());
        found.config_files = vec![PathBuf::from("/srv/shop/compose.yml")];
        found.working_dir = Some(PathBuf::from("/srv/shop"));
        found.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        found
    }

    fn service(
        config: &Config,
        found: &DiscoveredService,
    ) -> std::result::Result<ServiceConfig, String> {
        config.discover[0]
            .service(found, &config.prometheus, &config.instances, false)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_config_of_discover_sections_alone_is_valid() {
        let c = config("[[discover]]\nkind = \"swarm\"\n");
        assert!(c.services.is_empty());
        assert_eq!(c.discover[0].selector, "autoscale.enable=true");
        assert_eq!(c.discover[0].resync, DEFAULT_RESYNC);
        let err = Config::from_toml("c.toml", PROM, &Env::empty(), LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at least one [[service]] or [[discover]]"),
            "{err}"
        );
    }

    #[test]
    fn labels_set_the_bounds_query_and_policy_over_the_defaults() {
        let c = config(
            "[[discover]]\nkind = \"swarm\"\ninterval = \"7s\"\nmin_replicas = 2\ncooldown_down = \"2m\"\n\
             docker_host = \"tcp://10.0.0.1:2376\"\n[discover.check]\nquery = \"avg(load)\"\n\
             policy = { kind = \"target\", target = 0.5, tolerance = 0.2 }\n",
        );
        let s = service(
            &c,
            &found(
                DiscoverKind::Swarm,
                &[
                    ("autoscale.enable", "true"),
                    ("autoscale.max", "6"),
                    ("autoscale.target", "0.8"),
                    ("autoscale.cooldown_down", "30s"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(s.name, "web");
        assert_eq!(s.interval, Duration::from_secs(7));
        assert_eq!((s.engine.min_replicas(), s.engine.max_replicas()), (2, 6));
        assert_eq!(s.engine.cooldown_down(), Duration::from_secs(30));
        assert_eq!(s.checks[0].name, DEFAULT_CHECK_NAME);
        assert_eq!(s.checks[0].query, "avg(load)");
        assert!(matches!(
            s.checks[0].policy,
            crate::config::PolicySettings::Target { target, tolerance, .. } if target == 0.8 && tolerance == 0.2
        ));
        let ScalerSettings::Swarm(swarm) = &s.scaler else {
            panic!("{:?}", s.scaler)
        };
        assert_eq!(swarm.service, "web");
        assert_eq!(swarm.docker.host.as_deref(), Some("tcp://10.0.0.1:2376"));
    }

    #[test]
    fn a_compose_service_is_named_after_its_project_and_scaled_with_its_files() {
        let c = config("[[discover]]\nkind = \"compose\"\n");
        let mut f = found(
            DiscoverKind::Compose,
            &[
                ("autoscale.query", "sum(rate(x[1m]))"),
                ("autoscale.scale_up_above", "10"),
                ("autoscale.scale_down_below", "2"),
                ("autoscale.interval", "3s"),
            ],
        );
        f.config_files.push(PathBuf::from("override.yml"));
        let s = service(&c, &f).unwrap();
        assert_eq!(s.name, "shop-web");
        assert_eq!(s.interval, Duration::from_secs(3));
        let ScalerSettings::Compose(compose) = &s.scaler else {
            panic!("{:?}", s.scaler)
        };
        assert_eq!(
            (compose.project.as_str(), compose.service.as_str()),
            ("shop", "web")
        );
        assert_eq!(
            compose.compose_files(),
            [
                PathBuf::from("/srv/shop/compose.yml"),
                PathBuf::from("/srv/shop/override.yml")
            ]
        );
        assert!(matches!(
            s.checks[0].policy,
            crate::config::PolicySettings::Threshold { scale_up_above, scale_down_below, .. }
                if scale_up_above == 10.0 && scale_down_below == 2.0
        ));
    }

    #[test]
    fn a_bad_label_is_named_with_the_reason() {
        let c = config(
            "[[discover]]\nkind = \"swarm\"\n[discover.check]\nquery = \"q\"\npolicy = { kind = \"target\", target = 1 }\n",
        );
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[("autoscale.max", "ten")],
                "service web (swarm label autoscale.max): \"ten\" is not a whole number",
            ),
            (
                &[("autoscale.min", "5"), ("autoscale.max", "2")],
                "service web (swarm label autoscale.min): min_replicas (5) must not be above max_replicas (2)",
            ),
            (
                &[("autoscale.max", "0")],
                "service web (swarm label autoscale.max): must be at least 1",
            ),
            (
                &[("autoscale.interval", "soon")],
                "service web (swarm label autoscale.interval): ",
            ),
            (
                &[("autoscale.cooldown_down", "-1s")],
                "service web (swarm label autoscale.cooldown_down): ",
            ),
            (
                &[("autoscale.target", "high")],
                "service web (swarm label autoscale.target): \"high\" is not a number",
            ),
            (
                &[("autoscale.target", "1"), ("autoscale.scale_up_above", "2")],
                "service web (swarm label autoscale.scale_up_above): cannot be set together with autoscale.target",
            ),
            (
                &[("autoscale.scale_up_above", "2")],
                "service web (swarm label autoscale.scale_up_above): needs autoscale.scale_down_below too",
            ),
            (
                &[("autoscale.maxx", "3")],
                "service web (swarm label autoscale.maxx): unknown label; expected one of autoscale.enable,",
            ),
        ];
        for (labels, expected) in cases {
            let err = service(&c, &found(DiscoverKind::Swarm, labels)).unwrap_err();
            assert!(
                err.starts_with(expected),
                "{labels:?}:\n{err}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn without_a_default_the_query_and_policy_labels_are_required() {
        let c = config("[[discover]]\nkind = \"swarm\"\n");
        let err = service(
            &c,
            &found(DiscoverKind::Swarm, &[("autoscale.target", "1")]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "service web (swarm label autoscale.query): missing; set this label, or a default query in [discover.check]"
        );
        let err =
            service(&c, &found(DiscoverKind::Swarm, &[("autoscale.query", "q")])).unwrap_err();
        assert!(
            err.starts_with("service web (swarm label autoscale.target): missing;"),
            "{err}"
        );
    }

    #[test]
    fn check_renders_the_sections_and_loads_them_back() {
        let c = config(
            "[[discover]]\nkind = \"compose\"\nresync = \"5s\"\nmax_replicas = 4\ncommand = [\"docker\", \"compose\"]\n\
             [discover.check]\nquery = \"q\"\npolicy = { kind = \"target\", target = 1 }\n\
             [discover.behavior.scale_down]\nstabilization_window = \"0s\"\n",
        );
        let found = found(DiscoverKind::Compose, &[("autoscale.enable", "true")]);
        let s = c.discover[0]
            .service(&found, &c.prometheus, &c.instances, false)
            .unwrap();
        assert_eq!(
            s.engine.behavior().scale_down.stabilization_window(),
            Duration::ZERO
        );
        let text = c.to_redacted_toml();
        assert!(
            text.contains(
                "[[discover]]\nkind = \"compose\"\nselector = \"autoscale.enable=true\"\n"
            ),
            "{text}"
        );
        let again =
            Config::from_toml("again.toml", &text, &Env::empty(), LoadOptions::default()).unwrap();
        assert_eq!(again.discover, c.discover);
    }
}
