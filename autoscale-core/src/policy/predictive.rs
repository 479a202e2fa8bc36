//! The predictive policy: provision for where demand is going, not where it was.
//!
//! Per evaluation, in the check's units of demand (`value × ready` for a per-replica metric, `value` for a
//! total, so that the history does not move when the replica count does):
//!
//! 1. **Now.** The demand right now. The recommendation never falls below what it needs at the target.
//! 2. **Short term.** An exponentially weighted mean `m` and deviation `σ` of demand over `window`, and the
//!    estimate `m + z·σ`. On a noisy signal this is the level plus the noise a replica count must absorb,
//!    instead of a trailing maximum; on a quiet one it is the mean.
//! 3. **Seasonal.** The level demand held one `season` ago from `lead` ahead on (the time a new replica
//!    needs to be ready, plus one interval): the lowest one-minute mean over the `window` that starts there,
//!    so a single noisy minute of the last season is not a forecast, while a ramp or a step is. It is scaled
//!    by how today compares with the same time one season earlier (the ratio of the two short-term means,
//!    at most 2, so one quiet day cannot multiply a forecast without bound; a busier last season scales it
//!    down as far as today says), and today's `z·σ` is added. It is there so that replicas are ready when a
//!    daily ramp arrives, and it only ever adds capacity: a forecast alone never scales in.
//!
//! The recommendation is the largest of the three, divided by the target, rounded up. The decision's reason
//! names the part that won and all three numbers.
//!
//! Scale-downs are left to the engine's dead-band (`behavior.scale_down.deadband`), on by default for a
//! service with a predictive check: a recommendation must stay clearly below the current count for a while
//! before the service shrinks.

use std::time::Duration;

use crate::engine::{CheckHistory, Ewma, MIN_RESOLUTION};
use crate::policy::{Forecast, Part, PolicyContext, PolicyError, TargetForm, ceil_replicas};
use crate::{Policy, ReplicaStatus, Replicas, Timestamp};

/// The largest factor by which today's level may scale up the demand of one season ago.
const MAX_LEVEL_RATIO: f64 = 2.0;

/// Forecast demand from its short-term statistics and its season, and provision for it at `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictivePolicy {
    target: f64,
    form: TargetForm,
    window: Duration,
    z: f64,
    season: Option<Duration>,
    lead: Duration,
}

impl PredictivePolicy {
    /// The default short-term window.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
    /// The default number of deviations above the short-term mean.
    pub const DEFAULT_Z: f64 = 1.5;
    /// The default season: a day.
    pub const DEFAULT_SEASON: Duration = Duration::from_secs(24 * 3600);
    /// The default startup delay the look-ahead covers, before the evaluation interval is added.
    pub const DEFAULT_STARTUP: Duration = Duration::from_secs(30);

    /// A predictive policy at `target` with every other parameter at its default, and a look-ahead of
    /// [`DEFAULT_STARTUP`](Self::DEFAULT_STARTUP) plus `interval`.
    pub fn new(target: f64, form: TargetForm, interval: Duration) -> Result<Self, PolicyError> {
        Self::with(
            target,
            form,
            Self::DEFAULT_WINDOW,
            Self::DEFAULT_Z,
            Some(Self::DEFAULT_SEASON),
            Self::DEFAULT_STARTUP.saturating_add(interval),
        )
    }

    /// A predictive policy with every parameter given. `season = None` turns the seasonal forecast off.
    pub fn with(
        target: f64,
        form: TargetForm,
        window: Duration,
        z: f64,
        season: Option<Duration>,
        lead: Duration,
    ) -> Result<Self, PolicyError> {
        if !(target.is_finite() && target > 0.0) {
            return Err(PolicyError::Target(target));
        }
        if window < MIN_RESOLUTION {
            return Err(PolicyError::Window(window));
        }
        if !(z.is_finite() && z >= 0.0) {
            return Err(PolicyError::Z(z));
        }
        if let Some(season) = season
            && (season < Duration::from_secs(3600) || season > Duration::from_secs(7 * 24 * 3600))
        {
            return Err(PolicyError::Season(season));
        }
        if season.is_some_and(|s| lead >= s) {
            return Err(PolicyError::Lead(lead));
        }
        Ok(PredictivePolicy {
            target,
            form,
            window,
            z,
            season,
            lead,
        })
    }

    /// The target value.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// The metric's form.
    pub fn form(&self) -> TargetForm {
        self.form
    }

    /// The short-term window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Deviations above the short-term mean.
    pub fn z(&self) -> f64 {
        self.z
    }

    /// The season, if the seasonal forecast is on.
    pub fn season(&self) -> Option<Duration> {
        self.season
    }

    /// How far ahead the seasonal forecast looks.
    pub fn lead(&self) -> Duration {
        self.lead
    }

    /// The demand behind `value`: for a per-replica metric the value times the ready replicas (the value is
    /// one replica's when none is ready), for a total the value itself.
    pub fn demand(&self, value: f64, status: ReplicaStatus) -> f64 {
        match self.form {
            TargetForm::PerReplica => value * f64::from(status.ready.max(1)),
            TargetForm::Total => value,
        }
    }

    /// How much history a check keeps: a season and the look-ahead, or just the window without a season.
    pub fn retention(&self) -> Duration {
        match self.season {
            Some(season) => season
                .saturating_add(self.lead)
                .saturating_add(MIN_RESOLUTION),
            None => self.window,
        }
    }

    /// Feed a demand sample into `history` as an evaluation at `at` does.
    fn observe(&self, history: &mut CheckHistory, at: Timestamp, demand: f64) {
        if !demand.is_finite() {
            return;
        }
        history.record(at, demand, MIN_RESOLUTION, self.retention());
        match &mut history.short_term {
            Some(e) => e.update(at, demand, self.window),
            None => history.short_term = Some(Ewma::start(at, demand)),
        }
        if let Some(season) = self.season {
            let past = history
                .bucket_at(at - season, MIN_RESOLUTION)
                .map(|b| b.mean);
            if let Some(past) = past {
                match &mut history.last_season {
                    Some(e) => e.update(at, past, self.window),
                    None => history.last_season = Some(Ewma::start(at, past)),
                }
            }
        }
    }

    /// The three estimates at `now` from `history` (after `learn` has recorded `demand`).
    fn estimate(&self, history: &CheckHistory, demand: f64, now: Timestamp) -> Forecast {
        let short_term = history
            .short_term
            .map_or(demand, |e| e.mean + self.z * e.deviation());
        let seasonal = self.season.and_then(|season| {
            let last = history.last_season?;
            let now_stats = history.short_term?;
            if !(last.mean > 0.0 && now_stats.mean >= 0.0) {
                return None;
            }
            let ratio = (now_stats.mean / last.mean).min(MAX_LEVEL_RATIO);
            // The level last season held from the look-ahead on: a single noisy minute is not a forecast.
            let from = now - season + self.lead;
            let sustained = history
                .between(from, from + self.window, MIN_RESOLUTION)
                .map(|b| b.mean)
                .reduce(f64::min)?;
            Some(ratio * sustained + self.z * now_stats.deviation())
        });
        let mut forecast = Forecast {
            part: Part::Current,
            demand,
            short_term,
            seasonal,
        };
        if short_term > forecast.value() {
            forecast.part = Part::ShortTerm;
        }
        if seasonal.is_some_and(|s| s > forecast.value()) {
            forecast.part = Part::Seasonal;
        }
        forecast
    }
}

impl Policy for PredictivePolicy {
    fn kind(&self) -> &str {
        "predictive"
    }

    fn recommend(
        &self,
        value: f64,
        status: ReplicaStatus,
        context: &mut PolicyContext<'_>,
    ) -> Replicas {
        let now = context.now();
        let demand = self.demand(value, status);
        self.observe(context.history_mut(), now, demand);
        let forecast = self.estimate(context.history(), demand, now);
        context.explain(forecast);
        ceil_replicas(forecast.value() / self.target)
    }

    /// A season and the window before it, so the seasonal forecast works from the first evaluation.
    fn backfill(&self) -> Option<Duration> {
        Some(match self.season {
            Some(season) => season.saturating_add(self.window),
            None => self.window,
        })
    }

    fn learn(&self, history: &mut CheckHistory, at: Timestamp, demand: f64) {
        self.observe(history, at, demand);
    }
}
