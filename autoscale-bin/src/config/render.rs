//! The resolved configuration as TOML in the file's own format, for `autoscale check`: every default filled in,
//! every secret redacted. Without secrets, the output loads back to the same configuration.

use std::time::Duration;

use autoscale_core::engine::{RuleAmount, ScalingRules};
use autoscale_core::policy::Step;
use toml::{Table, Value};

use super::keyword::Keyword;
use super::{
    CheckSettings, Config, DiscoverSettings, PolicySettings, PromAuth, PrometheusSettings,
    ScalerSettings, ServiceConfig, Source,
};

/// What replaces a secret in the output.
const REDACTED: &str = "REDACTED";

/// Whether a header, variable or key name suggests its value is a credential (`Authorization`, `X-Api-Key`,
/// `DB_PASSWORD`, `session_token`, ...). Such values are never printed.
pub fn is_sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "cookie",
        "credential",
        "session",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

pub(crate) fn duration(d: Duration) -> String {
    // humantime writes "1h 30m"; the file format's examples write "1h30m", and both parse.
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// A [`Keyword`] value as the file spells it, for `#[serde(serialize_with)]`.
pub(crate) fn keyword<T: Keyword, S: serde::Serializer>(v: &T, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(v.keyword())
}

/// A duration as the file writes it, for `#[serde(serialize_with)]`.
pub(crate) fn text_duration<S: serde::Serializer>(v: &Duration, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&duration(*v))
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn d(v: Duration) -> Value {
    s(duration(v))
}

fn path(p: &std::path::Path) -> Value {
    s(p.to_string_lossy())
}

/// An array of tables, one per item.
fn tables<T>(items: &[T], table: fn(&T) -> Table) -> Value {
    Value::Array(items.iter().map(|i| Value::Table(table(i))).collect())
}

fn int(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

pub(crate) fn render(config: &Config) -> String {
    let mut root = Table::new();
    let mut prometheus = prometheus_table(&config.prometheus);
    if !config.instances.is_empty() {
        let instances: Table = config
            .instances
            .iter()
            .map(|(name, settings)| (name.clone(), Value::Table(prometheus_table(settings))))
            .collect();
        prometheus.insert("instances".into(), Value::Table(instances));
    }
    root.insert("prometheus".into(), Value::Table(prometheus));

    let daemon = &config.daemon;
    let daemon_table = Value::try_from(daemon).expect("the daemon's settings serialize to a table");
    root.insert("daemon".into(), daemon_table);

    let origin = match &config.source {
        Source::File(p) => format!("{} (with environment overrides)", p.to_string_lossy()),
        Source::Environment => "environment variables (no configuration file)".to_owned(),
    };
    let mut out = format!(
        "# Resolved configuration from {origin}.\n# Every default is filled in and secrets are redacted. Log level: {}.\n\n{}",
        daemon.log_level.as_str(),
        toml::to_string(&root).expect("a TOML table always serializes")
    );
    // One service at a time: the same text as one document, but the serializer slows down more than linearly
    // with the length of an array of tables (30,000 services took about 18 s as one array, 0.5 s like this).
    for service in &config.services {
        let mut one = Table::new();
        one.insert(
            "service".into(),
            tables(std::slice::from_ref(service), service_table),
        );
        out.push('\n');
        out.push_str(&toml::to_string(&one).expect("a TOML table always serializes"));
    }
    if !config.discover.is_empty() {
        let mut discover = Table::new();
        discover.insert("discover".into(), tables(&config.discover, discover_table));
        out.push('\n');
        out.push_str(&toml::to_string(&discover).expect("a TOML table always serializes"));
    }
    out
}

fn discover_table(section: &DiscoverSettings) -> Table {
    let mut t = Table::new();
    t.insert("kind".into(), s(section.kind.keyword()));
    t.insert("selector".into(), s(section.selector.clone()));
    t.insert("interval".into(), d(section.interval));
    t.insert("resync".into(), d(section.resync));
    // The endpoint and the timeout; then the defaults, the check last so that it renders as a sub-table.
    t.extend(section.scaler_defaults().clone());
    let mut defaults = section.defaults().clone();
    let check = defaults.remove("check");
    let behavior = defaults.remove("behavior");
    t.extend(defaults);
    if let Some(check) = check {
        t.insert("check".into(), check);
    }
    if let Some(behavior) = behavior {
        t.insert("behavior".into(), behavior);
    }
    t
}

fn prometheus_table(p: &PrometheusSettings) -> Table {
    let mut t = Table::new();
    t.insert("url".into(), s(p.url.redacted()));
    t.insert("timeout".into(), d(p.timeout));
    match &p.auth {
        Some(PromAuth::Bearer { token_file }) => {
            t.insert("bearer_token_file".into(), path(token_file));
        }
        Some(PromAuth::Basic {
            username,
            password_file,
        }) => {
            let mut b = Table::new();
            b.insert("username".into(), s(username.clone()));
            b.insert("password_file".into(), path(password_file));
            t.insert("basic_auth".into(), Value::Table(b));
        }
        None => {}
    }
    if !p.headers.is_empty() {
        let headers: Table = p
            .headers
            .iter()
            .map(|h| {
                let value = if is_sensitive_name(&h.name) {
                    REDACTED
                } else {
                    &h.value
                };
                (h.name.clone(), s(value))
            })
            .collect();
        t.insert("headers".into(), Value::Table(headers));
    }
    if let Some(ca) = &p.ca_file {
        t.insert("ca_file".into(), path(ca));
    }
    if let Some(id) = &p.client_identity {
        t.insert("client_cert_file".into(), path(&id.cert_file));
        t.insert("client_key_file".into(), path(&id.key_file));
    }
    t.insert(
        "insecure_skip_verify".into(),
        Value::Boolean(p.insecure_skip_verify),
    );
    t.insert("on_empty".into(), s(p.on_empty.as_str()));
    t.insert(
        "max_response_bytes".into(),
        int(i64::try_from(p.max_response_bytes).unwrap_or(i64::MAX)),
    );
    t.insert("ready_timeout".into(), d(p.ready_timeout));
    t
}

fn service_table(svc: &ServiceConfig) -> Table {
    let e = &svc.engine;
    let mut t = Table::new();
    t.insert("name".into(), s(svc.name.clone()));
    t.insert("min_replicas".into(), int(e.min_replicas()));
    t.insert("max_replicas".into(), int(e.max_replicas()));
    t.insert("interval".into(), d(svc.interval));
    t.insert("dry_run".into(), Value::Boolean(svc.dry_run));
    t.insert("cooldown_up".into(), d(e.cooldown_up()));
    t.insert("cooldown_down".into(), d(e.cooldown_down()));
    if let Some(fb) = e.fallback() {
        let mut f = Table::new();
        f.insert("after".into(), int(fb.after()));
        f.insert("replicas".into(), int(fb.replicas()));
        f.insert("mode".into(), s(fb.mode().keyword()));
        t.insert("fallback".into(), Value::Table(f));
    }
    if e.min_replicas() == 0 {
        t.insert("idle_after".into(), d(e.idle_after()));
    }
    t.insert("paused".into(), s(e.pause().keyword()));
    t.insert("on_zero_outside".into(), s(svc.on_zero_outside.keyword()));
    t.insert("scaler".into(), Value::Table(scaler_table(&svc.scaler)));
    t.insert("check".into(), tables(&svc.checks, check_table));
    let mut behavior = Table::new();
    behavior.insert(
        "scale_up".into(),
        Value::Table(direction_table(&e.behavior().scale_up)),
    );
    behavior.insert(
        "scale_down".into(),
        Value::Table(direction_table(&e.behavior().scale_down)),
    );
    t.insert("behavior".into(), Value::Table(behavior));
    t
}

fn check_table(c: &CheckSettings) -> Table {
    let mut t = Table::new();
    t.insert("name".into(), s(c.name.clone()));
    t.insert("query".into(), s(c.query.clone()));
    let (kind, keys) = match c.policy {
        PolicySettings::Target {
            target,
            per,
            tolerance,
        } => (
            "target",
            vec![
                ("target", Value::Float(target)),
                ("per", s(per.keyword())),
                ("tolerance", Value::Float(tolerance)),
            ],
        ),
        PolicySettings::Threshold {
            scale_up_above: up,
            scale_down_below: down,
            step,
        } => {
            let step = match step {
                Step::Count(n) => ("step", int(n)),
                Step::Percent(pct) => ("step_percent", Value::Float(pct)),
            };
            let bounds = [("scale_up_above", up), ("scale_down_below", down)];
            let mut keys: Vec<_> = bounds.map(|(k, v)| (k, Value::Float(v))).into();
            keys.push(step);
            ("threshold", keys)
        }
        PolicySettings::Predictive {
            target,
            per,
            window,
            z,
            season,
            lead,
        } => {
            let mut keys = vec![
                ("target", Value::Float(target)),
                ("per", s(per.keyword())),
                ("window", d(window)),
                ("z", Value::Float(z)),
                ("season", season.map_or_else(|| s("off"), d)),
                ("lead", d(lead)),
            ];
            if let Some(q) = &c.demand_query {
                keys.push(("demand_query", s(q.clone())));
            }
            ("predictive", keys)
        }
    };
    let mut p = Table::new();
    p.insert("kind".into(), s(kind));
    p.extend(keys.into_iter().map(|(k, v)| (k.to_owned(), v)));
    t.insert("policy".into(), Value::Table(p));
    t.insert("activation".into(), Value::Float(c.activation));
    if let Some(instance) = &c.prometheus {
        t.insert("prometheus".into(), s(instance.clone()));
    }
    if let Some(r) = c.range {
        t.insert("range".into(), d(r.range));
        t.insert("step".into(), d(r.step));
        t.insert("range_reduce".into(), s(r.reduce.as_str()));
    }
    if let Some(r) = c.reduce {
        t.insert("reduce".into(), s(r.as_str()));
    }
    t.insert("on_empty".into(), s(c.on_empty.as_str()));
    t.insert("non_finite".into(), s(c.non_finite.as_str()));
    t
}

fn direction_table(r: &ScalingRules) -> Table {
    let mut t = Table::new();
    t.insert("stabilization_window".into(), d(r.stabilization_window()));
    t.insert("select".into(), s(r.select().keyword()));
    let rules = r
        .rules()
        .iter()
        .map(|rule| {
            let mut rt = Table::new();
            match rule.amount() {
                RuleAmount::Pods(n) => rt.insert("pods".into(), int(n)),
                RuleAmount::Percent(n) => rt.insert("percent".into(), int(n)),
            };
            rt.insert("period".into(), d(rule.period()));
            Value::Table(rt)
        })
        .collect();
    t.insert("rules".into(), Value::Array(rules));
    if let Some(db) = r.deadband() {
        let mut dt = Table::new();
        dt.insert("min_drop".into(), Value::Float(db.min_drop()));
        dt.insert("hold".into(), d(db.hold()));
        t.insert("deadband".into(), Value::Table(dt));
    }
    t
}

/// Values under a sensitive key are replaced, at any depth; JSON's null, which TOML cannot hold, becomes "".
fn redact_json(key: &str, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    if is_sensitive_name(key) {
        return Json::from(REDACTED);
    }
    match value {
        Json::Null => Json::from(""),
        // TOML integers are i64: a larger one is written as a float.
        Json::Number(n) if n.as_i64().is_none() => n
            .as_f64()
            .map_or_else(|| Json::from(n.to_string()), Json::from),
        Json::Array(a) => Json::Array(a.iter().map(|v| redact_json("", v)).collect()),
        Json::Object(o) => Json::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), redact_json(k, v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The scaler's settings as serde writes them under the file's keys, with secrets redacted and the timeout
/// written as the file writes durations.
fn scaler_table(scaler: &ScalerSettings) -> Table {
    let redacted;
    let scaler = match scaler {
        ScalerSettings::Ansible(a) => {
            let mut a = a.clone();
            a.extra_vars = a
                .extra_vars
                .iter()
                .map(|(k, v)| (k.clone(), redact_json(k, v)))
                .collect();
            for (k, v) in &mut a.env {
                if is_sensitive_name(k) {
                    REDACTED.clone_into(v);
                }
            }
            redacted = ScalerSettings::Ansible(a);
            &redacted
        }
        other => other,
    };
    let Ok(Value::Table(mut t)) = Value::try_from(scaler) else {
        unreachable!("scaler settings serialize to a table");
    };
    t.insert("timeout".into(), d(scaler.timeout()));
    t
}
