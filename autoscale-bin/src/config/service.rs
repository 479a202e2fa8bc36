//! `[[service]]`: bounds, interval, cooldowns, fallback, pause and `behavior`; the checks and the scaler have
//! their own modules.

use std::collections::BTreeMap;
use std::time::Duration;

use autoscale_core::EngineConfig;
use autoscale_core::controller::OnZeroOutside;
use autoscale_core::engine::{
    Behavior, Deadband, Fallback, FallbackMode, Pause, Rule, ScalingRules, Select,
};
use autoscale_core::policy::ThresholdPolicy;

use super::check::{self, CheckSettings, PolicySettings};
use super::diagnostics::{Ctx, NameKind, Result, join_key};
use super::keyword::keyword;
use super::prometheus::PrometheusSettings;
use super::raw::{RawBehavior, RawDeadband, RawDirection, RawService, S};
use super::scaler::{self, ScalerSettings};

keyword!(FallbackMode, "fallback mode", "static" => FallbackMode::Static, "if_higher" => FallbackMode::IfHigher);
keyword!(Pause, "pause setting", "none" => Pause::None, "all" => Pause::All, "up" => Pause::Up, "down" => Pause::Down);
keyword!(OnZeroOutside, "on_zero_outside setting", "pause" => OnZeroOutside::Pause, "restore" => OnZeroOutside::Restore);
keyword!(Select, "select", "max" => Select::Max, "min" => Select::Min, "disabled" => Select::Disabled);

/// The bounds of a service that sets none.
pub(crate) const MIN_REPLICAS: u32 = 1;
/// See [`MIN_REPLICAS`].
pub(crate) const MAX_REPLICAS: u32 = 10;
/// How often a service that sets no `interval` is evaluated.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

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
    /// What to do when someone outside autoscale takes the running service to 0 replicas.
    pub on_zero_outside: OnZeroOutside,
    /// The checks' query settings, in the engine's check order.
    pub checks: Vec<CheckSettings>,
    /// The scaler.
    pub scaler: ScalerSettings,
}

/// One `[[service]]`.
pub(crate) fn section(
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
        .map_or(MIN_REPLICAS, |v| *v.get_ref());
    let max = raw
        .max_replicas
        .as_ref()
        .map_or(MAX_REPLICAS, |v| *v.get_ref());
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
    let interval = ctx.opt_duration(&raw.interval, &k("interval"), INTERVAL)?;

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
        let settings = check::section(ctx, check.get_ref(), &ck, interval, prometheus, instances)?;
        let taken = checks.iter().any(|c| c.name == settings.name);
        ctx.unique(
            taken,
            &check.get_ref().name,
            &ck,
            "check name",
            " in this service",
        )?;
        builder = builder.check(settings.engine.clone());
        if matches!(settings.policy, PolicySettings::Threshold { .. }) {
            builder = builder.default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
        }
        checks.push(settings);
    }

    // A forecast is smoothed already: its service's scale-down defaults to the dead-band.
    let predictive = checks.iter().any(|c| c.policy.is_predictive());
    let default_behavior = if predictive {
        Behavior::predictive()
    } else {
        Behavior::default()
    };
    builder = builder.behavior(match &raw.behavior {
        Some(behavior) => behavior_settings(ctx, behavior, &k("behavior"), default_behavior)?,
        None => default_behavior,
    });
    if let Some(c) = &raw.cooldown_up {
        builder = builder.cooldown_up(ctx.duration(c, &k("cooldown_up"))?);
    }
    if let Some(c) = &raw.cooldown_down {
        builder = builder.cooldown_down(ctx.duration(c, &k("cooldown_down"))?);
    }
    if let Some(fb) = &raw.fallback {
        let f = fb.get_ref();
        let mode = ctx.opt_keyword(&f.mode, &k("fallback.mode"), FallbackMode::Static)?;
        if *f.replicas.get_ref() > max {
            return Err(ctx.err(
                f.replicas.span(),
                k("fallback.replicas"),
                format!(
                    "{} must not be above max_replicas ({max})",
                    f.replicas.get_ref()
                ),
            ));
        }
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
        builder = builder.pause(ctx.keyword(p, &k("paused"))?);
    }
    // Everything the builder checks was checked above with a position; this is the backstop.
    let engine = builder
        .build()
        .map_err(|e| ctx.err(svc.span(), key, e.to_string()))?;

    let on_zero_outside = ctx.opt_keyword(
        &raw.on_zero_outside,
        &k("on_zero_outside"),
        OnZeroOutside::default(),
    )?;

    let scaler = scaler::section(ctx, &raw.scaler, &k("scaler"), &name)?;
    Ok(ServiceConfig {
        name,
        interval,
        dry_run: daemon_dry_run || raw.dry_run.unwrap_or(false),
        engine,
        on_zero_outside,
        checks,
        scaler,
    })
}

fn behavior_settings(
    ctx: &Ctx<'_>,
    raw: &RawBehavior,
    key: &str,
    default: Behavior,
) -> Result<Behavior> {
    let side = |raw: &Option<S<RawDirection>>, name: &str, default: ScalingRules| match raw {
        Some(r) => direction(ctx, r, &join_key(key, name), default),
        None => Ok(default),
    };
    Ok(Behavior {
        scale_up: side(&raw.scale_up, "scale_up", default.scale_up)?,
        scale_down: side(&raw.scale_down, "scale_down", default.scale_down)?,
    })
}

/// A direction table: the keys it sets over the direction's defaults.
fn direction(
    ctx: &Ctx<'_>,
    raw: &S<RawDirection>,
    key: &str,
    default: ScalingRules,
) -> Result<ScalingRules> {
    let raw = raw.get_ref();
    let k = |name: &str| join_key(key, name);
    let window = match &raw.stabilization_window {
        Some(w) => ctx.duration(w, &k("stabilization_window"))?,
        None => default.stabilization_window(),
    };
    let select = ctx.opt_keyword(&raw.select, &k("select"), default.select())?;
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
    let deadband = match &raw.deadband {
        None => default.deadband(),
        Some(d) if key.ends_with("scale_up") => {
            return Err(ctx.err(d.span(), k("deadband"), "only scale_down has a dead-band"));
        }
        Some(d) => Some(deadband(ctx, d.get_ref(), &k("deadband"))?),
    };
    ScalingRules::new(window, select, rules)
        .map(|r| r.with_deadband(deadband))
        .map_err(|e| ctx.err(0..0, k("rules"), e.to_string()))
}

/// `deadband = { min_drop = 0.2, hold = "10m" }`; a key left out takes its default.
fn deadband(ctx: &Ctx<'_>, raw: &RawDeadband, key: &str) -> Result<Deadband> {
    let k = |name: &str| join_key(key, name);
    let min_drop = raw
        .min_drop
        .as_ref()
        .map_or(Deadband::DEFAULT_MIN_DROP, |m| *m.get_ref());
    let hold = match &raw.hold {
        Some(h) => ctx.duration(h, &k("hold"))?,
        None => Deadband::DEFAULT_HOLD,
    };
    Deadband::new(min_drop, hold).map_err(|e| {
        let span = raw.min_drop.as_ref().map_or(0..0, S::span);
        ctx.err(span, k("min_drop"), e.to_string())
    })
}
