//! `[[service.check]]`: the query settings and the policy of one check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::policy::{
    PolicyError, PredictivePolicy, Step, TargetForm, TargetPolicy, ThresholdPolicy,
};
use autoscale_core::{Check, Policy};

use autoscale_prom::{
    MAX_RANGE_POINTS, NonFinite, OnEmpty, QueryOptions, RangeReduce, RangeWindow, Reduce,
};

use super::diagnostics::{Ctx, NameKind, Result, join_key, only_keys, quoted_list};
use super::keyword::keyword;
use super::prometheus::PrometheusSettings;
use super::raw::{RawCheck, RawPolicy, S};

keyword!(RangeReduce, "range reduction", own);
keyword!(Reduce, "reduction", own);
keyword!(OnEmpty, "value", own);
keyword!(NonFinite, "value", own);
keyword!(TargetForm, "value", "replica" => TargetForm::PerReplica, "total" => TargetForm::Total);

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
    /// A forecast of demand.
    Predictive {
        /// The target value.
        target: f64,
        /// Per replica or total.
        per: TargetForm,
        /// The short-term window.
        window: Duration,
        /// Deviations above the short-term mean.
        z: f64,
        /// The season, `None` when the seasonal forecast is off.
        season: Option<Duration>,
        /// How far ahead the seasonal forecast looks.
        lead: Duration,
    },
}

impl PolicySettings {
    /// Whether the policy forecasts (and so the service's scale-down defaults to the dead-band).
    pub fn is_predictive(&self) -> bool {
        matches!(self, PolicySettings::Predictive { .. })
    }
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
    /// What an empty result means (the instance's setting unless the check overrides it).
    pub on_empty: OnEmpty,
    /// How ±Inf is treated.
    pub non_finite: NonFinite,
    /// A range query instead of an instant query.
    pub range: Option<RangeQuery>,
    /// How several series combine; `None` makes several series an error.
    pub reduce: Option<Reduce>,
    /// The policy.
    pub policy: PolicySettings,
    /// A query of this check's demand, to fill a predictive policy's history at start (`demand_query`).
    pub demand_query: Option<String>,
    /// The activation threshold.
    pub activation: f64,
    /// The engine's side of this check (its name, policy and activation), as the service's engine holds it.
    /// The daemon hands it to the service's loop together with this check's metric source.
    pub engine: Check,
}

impl CheckSettings {
    /// The query whose past values are this check's demand, to fill a forecasting policy's history at start
    /// (`None` when the policy keeps no history or the demand cannot be read from a query).
    ///
    /// A predictive check's `demand_query`, or its own query when it is a total (its values are then the
    /// demand). A per-replica value times the replicas of the time is the demand, and the replica count of the
    /// past is not in the query, so a per-replica check without `demand_query` starts cold.
    pub fn backfill_query(&self) -> Option<&str> {
        match self.policy {
            PolicySettings::Predictive { per, .. } => match (&self.demand_query, per) {
                (Some(q), _) => Some(q),
                (None, TargetForm::Total) => Some(&self.query),
                (None, TargetForm::PerReplica) => None,
            },
            _ => None,
        }
    }

    /// How the Prometheus source asks and reads this check's query.
    pub fn query_options(&self) -> std::result::Result<QueryOptions, autoscale_prom::Error> {
        let mut options = QueryOptions::new()
            .on_empty(self.on_empty)
            .non_finite(self.non_finite);
        if let Some(range) = &self.range {
            options =
                options.range(RangeWindow::new(range.range, range.step)?.reduce(range.reduce));
        }
        if let Some(reduce) = self.reduce {
            options = options.reduce(reduce);
        }
        Ok(options)
    }
}

/// One `[[service.check]]`: its query settings and the engine's check.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    raw: &RawCheck,
    key: &str,
    interval: Duration,
    prometheus: &PrometheusSettings,
    instances: &BTreeMap<String, PrometheusSettings>,
) -> Result<CheckSettings> {
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
            let reduce = ctx.opt_keyword(
                &raw.range_reduce,
                &k("range_reduce"),
                RangeReduce::default(),
            )?;
            if range.as_millis() / step.as_millis().max(1) > u128::from(MAX_RANGE_POINTS) {
                return Err(ctx.err(
                    r.span(),
                    k("range"),
                    format!("range / step gives more than {} points, which Prometheus refuses; raise step", MAX_RANGE_POINTS),
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
        .map(|r| ctx.keyword(r, &k("reduce")))
        .transpose()?;
    let on_empty = ctx.opt_keyword(&raw.on_empty, &k("on_empty"), on_empty_default)?;
    let non_finite = ctx.opt_keyword(&raw.non_finite, &k("non_finite"), NonFinite::default())?;
    let (policy_settings, policy) =
        policy_settings(ctx, raw.policy.get_ref(), &k("policy"), interval)?;
    let demand_query = match &raw.policy.get_ref().demand_query {
        Some(q) if q.get_ref().trim().is_empty() => {
            return Err(ctx.err(q.span(), k("policy.demand_query"), "must not be empty"));
        }
        Some(q) => Some(q.get_ref().clone()),
        None => None,
    };
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
        demand_query,
        activation,
        engine: check,
    };
    Ok(settings)
}

/// The policy table's `kind`.
#[derive(Clone, Copy, PartialEq)]
enum PolicyKind {
    Target,
    Threshold,
    Predictive,
}

keyword!(
    PolicyKind,
    "policy",
    "target" => PolicyKind::Target,
    "threshold" => PolicyKind::Threshold,
    "predictive" => PolicyKind::Predictive
);

fn policy_settings<'r>(
    ctx: &Ctx<'_>,
    raw: &'r RawPolicy,
    key: &str,
    interval: Duration,
) -> Result<(PolicySettings, Arc<dyn Policy>)> {
    let k = |name: &str| join_key(key, name);
    let kind: PolicyKind = ctx.keyword(&raw.kind, &k("kind"))?;
    let present = raw.present();
    let required = |v: &'r Option<S<f64>>, name: &str| {
        let why = format!("a {} policy needs {name}", raw.kind.get_ref());
        ctx.required(v, &raw.kind, &k(name), &why)
    };
    if kind == PolicyKind::Predictive {
        return predictive(ctx, raw, key, interval);
    }
    if kind == PolicyKind::Target {
        only_keys(
            ctx,
            key,
            "target",
            &present,
            &["kind", "target", "per", "tolerance"],
        )?;
        let target = required(&raw.target, "target")?;
        let per = ctx.opt_keyword(&raw.per, &k("per"), TargetForm::PerReplica)?;
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
        ctx.at_most_one(
            key,
            (&raw.step, "step"),
            (&raw.step_percent, "step_percent"),
        )?;
        let step = match (&raw.step, &raw.step_percent) {
            (Some(s), _) => Step::Count(*s.get_ref()),
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

/// `kind = "predictive"`: the target and form as a target policy's, the forecast's own keys, and
/// `demand_query`.
fn predictive(
    ctx: &Ctx<'_>,
    raw: &RawPolicy,
    key: &str,
    interval: Duration,
) -> Result<(PolicySettings, Arc<dyn Policy>)> {
    let k = |name: &str| join_key(key, name);
    only_keys(
        ctx,
        key,
        "predictive",
        &raw.present(),
        &[
            "kind",
            "target",
            "per",
            "window",
            "z",
            "season",
            "lead",
            "demand_query",
        ],
    )?;
    let why = "a predictive policy needs target";
    let target = ctx.required(&raw.target, &raw.kind, &k("target"), why)?;
    let per = ctx.opt_keyword(&raw.per, &k("per"), TargetForm::PerReplica)?;
    let window = match &raw.window {
        Some(w) => ctx.positive_duration(w, &k("window"))?,
        None => PredictivePolicy::DEFAULT_WINDOW,
    };
    let z = raw
        .z
        .as_ref()
        .map_or(PredictivePolicy::DEFAULT_Z, |z| *z.get_ref());
    let season = match &raw.season {
        Some(s) if s.get_ref() == "off" => None,
        Some(s) => Some(ctx.positive_duration(s, &k("season"))?),
        None => Some(PredictivePolicy::DEFAULT_SEASON),
    };
    let lead = match &raw.lead {
        Some(l) => ctx.duration(l, &k("lead"))?,
        None => PredictivePolicy::DEFAULT_STARTUP.saturating_add(interval),
    };
    let policy =
        PredictivePolicy::with(*target.get_ref(), per, window, z, season, lead).map_err(|e| {
            let at = |v: &Option<S<String>>, name: &str| {
                ctx.err(
                    v.as_ref().map_or(raw.kind.span(), S::span),
                    k(name),
                    e.to_string(),
                )
            };
            match e {
                PolicyError::Window(_) => at(&raw.window, "window"),
                PolicyError::Season(_) => at(&raw.season, "season"),
                PolicyError::Lead(_) => at(&raw.lead, "lead"),
                PolicyError::Z(_) => ctx.err(
                    raw.z.as_ref().map_or(raw.kind.span(), S::span),
                    k("z"),
                    e.to_string(),
                ),
                _ => ctx.err(target.span(), k("target"), e.to_string()),
            }
        })?;
    let settings = PolicySettings::Predictive {
        target: policy.target(),
        per,
        window,
        z,
        season,
        lead,
    };
    Ok((settings, Arc::new(policy)))
}
