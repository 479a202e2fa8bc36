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

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(season: Option<Duration>) -> PredictivePolicy {
        PredictivePolicy::with(
            0.5,
            TargetForm::PerReplica,
            15 * MIN,
            2.0,
            season,
            40 * Duration::from_secs(1),
        )
        .unwrap()
    }

    /// Evaluate `policy` at `at` seconds on `history`: the recommendation and the forecast.
    fn step(
        p: &PredictivePolicy,
        history: &mut CheckHistory,
        at: i64,
        value: f64,
        ready: Replicas,
    ) -> (Replicas, Forecast) {
        let mut context = PolicyContext::new(Timestamp::from_secs(at), history);
        let rec = p.recommend(value, ReplicaStatus::all_ready(ready), &mut context);
        (rec, context.into_forecast().unwrap())
    }

    #[test]
    fn demand_is_the_value_times_the_ready_replicas_or_the_total() {
        let p = policy(None);
        let status = ReplicaStatus {
            current: 6,
            ready: 4,
        };
        assert_eq!(p.demand(0.5, status), 2.0);
        assert_eq!(
            p.demand(0.5, ReplicaStatus::all_ready(0)),
            0.5,
            "none ready: one replica's"
        );
        let total =
            PredictivePolicy::new(10.0, TargetForm::Total, 10 * Duration::from_secs(1)).unwrap();
        assert_eq!(total.demand(35.0, status), 35.0);
        assert_eq!(
            total.lead(),
            Duration::from_secs(40),
            "the startup delay plus the interval"
        );
    }

    #[test]
    fn the_short_term_estimate_is_the_mean_plus_z_deviations() {
        let p = policy(None);
        let mut h = CheckHistory::new("c");
        // Demand alternates 4 and 6 every 10 s: mean 5, deviation 1.
        let mut last = None;
        for i in 0..2000 {
            let value = if i % 2 == 0 { 2.0 } else { 3.0 };
            last = Some(step(&p, &mut h, i * 10, value, 2));
        }
        let (rec, forecast) = last.unwrap();
        assert!((forecast.short_term - 7.0).abs() < 0.1, "{forecast:?}");
        assert_eq!(forecast.part, Part::ShortTerm);
        // ceil(7 / 0.5), or one more for the spread's last decimals.
        assert!((14..=15).contains(&rec), "{rec}");
    }

    #[test]
    fn never_below_what_the_demand_of_the_moment_needs() {
        let p = policy(None);
        let mut h = CheckHistory::new("c");
        for i in 0..100 {
            step(&p, &mut h, i * 10, 1.0, 2);
        }
        // A burst: 10 units of demand, far above the short-term estimate.
        let (rec, forecast) = step(&p, &mut h, 1000, 5.0, 2);
        assert_eq!(forecast.part, Part::Current);
        assert_eq!(rec, 20);
    }

    #[test]
    fn the_seasonal_forecast_looks_ahead_by_the_lead_and_scales_to_today() {
        let p = policy(Some(24 * HOUR));
        let mut h = CheckHistory::new("c");
        let day = 86_400;
        // Yesterday: 10 units until 08:00, then 30.
        for s in (0..day).step_by(10) {
            let demand = if s < 8 * 3600 { 10.0 } else { 30.0 };
            step(&p, &mut h, s, demand, 1);
        }
        // Today runs at half of yesterday's level until just before 08:00.
        for s in (day..day + 8 * 3600 - 40).step_by(10) {
            step(&p, &mut h, s, 5.0, 1);
        }
        let (rec, forecast) = step(&p, &mut h, day + 8 * 3600 - 30, 5.0, 1);
        assert_eq!(forecast.part, Part::Seasonal, "{forecast:?}");
        // 30 units tomorrow, at today's half: 15, so ceil(15 / 0.5) = 30 replicas before the ramp arrives.
        let seasonal = forecast.seasonal.unwrap();
        assert!((15.0..15.5).contains(&seasonal), "{forecast:?}");
        assert_eq!(rec, 31);
        // An hour earlier, last season held 10 over the look-ahead and the window: nothing to add.
        let mut quiet = CheckHistory::new("c");
        for s in (0..day + 7 * 3600).step_by(10) {
            let demand = if s < 8 * 3600 {
                10.0
            } else if s < day {
                30.0
            } else {
                5.0
            };
            step(&p, &mut quiet, s, demand, 1);
        }
        let (_, earlier) = step(&p, &mut quiet, day + 7 * 3600, 5.0, 1);
        assert!(earlier.seasonal.unwrap() < 5.5, "{earlier:?}");
    }

    #[test]
    fn a_single_noisy_minute_of_the_last_season_is_not_a_forecast() {
        let p = policy(Some(HOUR));
        let mut h = CheckHistory::new("c");
        // Last hour: flat at 10 but for one minute at 40.
        for s in (0..3600).step_by(10) {
            let demand = if (1800..1860).contains(&s) {
                40.0
            } else {
                10.0
            };
            step(&p, &mut h, s, demand, 1);
        }
        for s in (3600..3600 + 1790).step_by(10) {
            step(&p, &mut h, s, 10.0, 1);
        }
        let (_, forecast) = step(&p, &mut h, 3600 + 1790, 10.0, 1);
        assert!(
            forecast.seasonal.unwrap() <= forecast.short_term + 1e-9,
            "{forecast:?}"
        );
        assert_ne!(forecast.part, Part::Seasonal);
    }

    #[test]
    fn without_a_season_of_history_there_is_no_seasonal_forecast() {
        let p = policy(Some(24 * HOUR));
        let mut h = CheckHistory::new("c");
        let (_, forecast) = step(&p, &mut h, 0, 1.0, 1);
        assert_eq!(forecast.seasonal, None);
        assert_eq!(
            forecast.to_string(),
            "current 1 (demand 1, short term 1, no season yet)"
        );
    }

    #[test]
    fn history_keeps_a_season_and_the_look_ahead() {
        let p = policy(Some(HOUR));
        assert_eq!(p.retention(), HOUR + Duration::from_secs(40) + MIN);
        assert_eq!(p.backfill(), Some(HOUR + 15 * MIN));
        assert_eq!(policy(None).backfill(), Some(15 * MIN));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let f = TargetForm::PerReplica;
        let s = Duration::from_secs;
        assert!(PredictivePolicy::with(0.0, f, 15 * MIN, 2.0, None, s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, s(30), 2.0, None, s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, -1.0, None, s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, f64::NAN, None, s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, 2.0, Some(MIN), s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, 2.0, Some(8 * 24 * HOUR), s(40)).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, 2.0, Some(HOUR), HOUR).is_err());
        assert!(PredictivePolicy::with(0.5, f, 15 * MIN, 2.0, None, HOUR).is_ok());
    }
}
