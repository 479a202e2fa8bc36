//! `[[service.check]]`: the query settings and the policy of one check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::policy::{PolicyError, Step, TargetForm, TargetPolicy, ThresholdPolicy};
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
    /// The activation threshold.
    pub activation: f64,
    /// The engine's side of this check (its name, policy and activation), as the service's engine holds it.
    /// The daemon hands it to the service's loop together with this check's metric source.
    pub engine: Check,
}

impl CheckSettings {
    /// The query whose past values are this check's demand, to fill a forecasting policy's history at start
    /// (`None` when the policy keeps no history or the demand cannot be read from a query).
    pub fn backfill_query(&self) -> Option<&str> {
        None
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
        engine: check,
    };
    Ok(settings)
}

/// The policy table's `kind`.
#[derive(Clone, Copy, PartialEq)]
enum PolicyKind {
    Target,
    Threshold,
}

keyword!(PolicyKind, "policy", "target" => PolicyKind::Target, "threshold" => PolicyKind::Threshold);

fn policy_settings<'r>(
    ctx: &Ctx<'_>,
    raw: &'r RawPolicy,
    key: &str,
) -> Result<(PolicySettings, Arc<dyn Policy>)> {
    let k = |name: &str| join_key(key, name);
    let kind: PolicyKind = ctx.keyword(&raw.kind, &k("kind"))?;
    let present = raw.present();
    let required = |v: &'r Option<S<f64>>, name: &str| {
        let why = format!("a {} policy needs {name}", raw.kind.get_ref());
        ctx.required(v, &raw.kind, &k(name), &why)
    };
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
