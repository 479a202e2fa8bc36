//! The decision engine: `(state, status, observations, now) -> (decision, state)`, pure and deterministic.
//!
//! [`Engine::evaluate`] runs the pipeline of `docs/engine.md` top to bottom. Where the spec is silent it follows
//! Kubernetes' `horizontal.go` and `replica_calculator.go`, including the order of float operations, `ceil`
//! against truncation, and strict "newer than" cut-offs.
//!
//! Deliberate differences from Kubernetes, and why:
//! - A service below `min_replicas` is raised to it, even from 0: pausing is explicit here
//!   ([`Pause`]), so 0 replicas does not mean "autoscaling disabled".
//! - Replicas that are still starting never turn a scale-up into a scale-down ([`TargetPolicy`](crate::policy::TargetPolicy)).
//! - Scale to zero waits for `idle_after` and then goes through the scale-down rules, so a lull of a few
//!   seconds cannot take a service to zero in one jump.
//! - Once a service has been idle (every check at or below its activation threshold) for `idle_after`, the
//!   recommendation is 0 even if a policy would keep one replica (a target policy whose value sits between 0
//!   and the activation threshold would otherwise never let the service reach zero).
//! - From zero, a value above activation recommends at least one replica: "active" means "serve". The
//!   scale-up limit from zero is at least one, since a percent rule allows nothing from zero.
//! - A missing observation (fewer observations than checks) counts as a failed check rather than a panic.
//! - Replicas that were ready and dropped out while the count held (their node was lost, and the
//!   orchestrator is replacing them) hold a scale-down at `current` until they are ready again, as partial
//!   data does: their share of the load is unknown, and the metric of the replicas left may lag behind the
//!   load they take over. Kubernetes counts such missing pods at the target on a scale-down; a hold is the
//!   same for a metric that has caught up, and safe for one that has not. Replicas not ready because they
//!   are starting (after a count change) are not lost, so the simulator, whose replicas are never lost, is
//!   not affected.
//!
//! Readings of the spec where it leaves room:
//! - An out-of-range round still counts towards the failure counter when every check failed, and a pause
//!   also holds an out-of-range service (pausing means "touch nothing").
//! - The token is `within_tolerance` when no rule changed the number and the decision keeps the count; a
//!   partial-data hold reports `partial_data`.
//! - A fallback that leaves the count where it is changed nothing, so the round reports `no_data`.
//! - "No scale-down while a check failed" does not cover a `static` fallback, which the spec defines as
//!   exactly its count, nor the out-of-range rule.

mod config;
mod history;
mod reason;
mod rules;
mod state;

use crate::policy::PolicyContext;
use crate::types::duration_millis;
use crate::{Direction, FailureKind, Observation, ReplicaStatus, Replicas, Timestamp};

pub use config::{
    Behavior, Check, ConfigError, Deadband, EngineConfig, EngineConfigBuilder, Fallback,
    FallbackMode, Pause, Rule, RuleAmount, ScalingRules, Select,
};
pub use history::{Bucket, CheckHistory, Ewma, MAX_BUCKETS, MIN_RESOLUTION, bucket_start};
pub use reason::{Change, Cooldown, Decision, Limit, Reason, Token};
pub use state::{EngineState, PausedBy, Recommendation, RuntimePause, ScaleEvent};

/// The engine of one service. It holds only the service's configuration; all memory is in [`EngineState`].
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
}

/// Checks whose readings are kept on the stack.
const INLINE_CHECKS: usize = 8;

/// One check's reading after the non-finite rule.
#[derive(Clone, Copy)]
enum Reading {
    Value(f64),
    Failed,
}

impl Engine {
    /// An engine for a validated configuration.
    pub fn new(config: EngineConfig) -> Self {
        Engine { config }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// What each check's observation means after the non-finite rule: a value, or the kind of failure.
    pub fn classify(
        &self,
        index: usize,
        observation: Option<Observation>,
    ) -> Result<f64, FailureKind> {
        let accept_inf = self
            .config
            .checks
            .get(index)
            .is_some_and(|c| c.accepts_non_finite());
        match observation {
            None => Err(FailureKind::Other),
            Some(Observation::Failed(kind)) => Err(kind),
            Some(Observation::Value(v)) if v.is_nan() => Err(FailureKind::NonFinite),
            Some(Observation::Value(v)) if v.is_infinite() && !accept_inf => {
                Err(FailureKind::NonFinite)
            }
            Some(Observation::Value(v)) => Ok(v),
        }
    }

    /// Evaluate one service at `now`.
    ///
    /// `observations` holds one entry per check, in the order of [`EngineConfig::checks`]. The returned state
    /// holds the new recommendation, the failure counter and the idle clock. Scale events are recorded by the
    /// caller, with [`EngineState::record_scale`], once the scaler has applied the decision.
    ///
    /// The body is the pipeline of `docs/engine.md`, one step function per step. Each step returns the change
    /// it made, if any; that change goes into the [`Reason`], and its `to` is the number the next step starts
    /// from.
    pub fn evaluate(
        &self,
        state: EngineState,
        status: ReplicaStatus,
        observations: &[Observation],
        now: Timestamp,
    ) -> (Decision, EngineState) {
        self.evaluate_checks(state, status, observations, now, &mut [])
    }

    /// [`evaluate`](Self::evaluate), also writing each check's own recommendation into `per_check` (as many
    /// as it has room for; `None` for a check that failed), for a caller that reports them.
    pub fn evaluate_checks(
        &self,
        mut state: EngineState,
        status: ReplicaStatus,
        observations: &[Observation],
        now: Timestamp,
        per_check: &mut [Option<Replicas>],
    ) -> (Decision, EngineState) {
        per_check.fill(None);
        let current = status.current;
        // A backend may briefly report more ready than desired replicas (a scale-down in progress).
        let status = ReplicaStatus {
            current,
            ready: status.ready.min(current),
        };
        let mut inline = [Reading::Failed; INLINE_CHECKS];
        let mut spilled = Vec::new();
        let readings = self.read(observations, &mut inline, &mut spilled);
        let mut reason = Reason::empty();
        reason.failed_checks = readings
            .iter()
            .filter(|r| matches!(r, Reading::Failed))
            .count();

        // The memory of steps 4, 6 and 8 is brought up to date before step 1, because every round counts,
        // whichever step ends up deciding it: an out-of-range round still moves the failure counter (step 8)
        // and the idle clock (step 4), and events older than every rule period (step 6) are dropped.
        count_failures(&mut state, reason.failed_checks == readings.len());
        state.observe_ready(status);
        self.align_histories(&mut state);
        self.update_idle_clock(&mut state, readings, now);
        self.prune_scale_events(&mut state, now);

        // 1. Out-of-range current: no metric needed, so it decides alone.
        let decided = match self.out_of_range(current) {
            Some(change) => {
                // The policies still see the round, so that their histories have no hole and each check's
                // own recommendation is known; the number is not used.
                self.recommend(
                    &mut state,
                    readings,
                    status,
                    now,
                    &mut Reason::empty(),
                    per_check,
                );
                reason.out_of_range = Some(change);
                change.to
            }
            // 2 to 7, when some check succeeded; otherwise 8.
            None => match self.scale_on_metrics(
                &mut state,
                readings,
                status,
                now,
                &mut reason,
                per_check,
            ) {
                Some(desired) => desired,
                None => {
                    reason.fallback = self.fallback(&state, current);
                    reason.fallback.map_or(current, |(_, change)| change.to)
                }
            },
        };
        // 9. Pause, over whichever step decided: a pause set at run time replaces the configured one.
        reason.paused = self.pause(self.effective_pause(&state), current, decided);
        let desired = reason.paused.map_or(decided, |change| change.to);

        reason.token = self.token(&reason, current, desired);
        let decision = Decision {
            current,
            desired,
            direction: Direction::of(current, desired),
            reason,
        };
        (decision, state)
    }

    /// Classify every check's observation, keeping the readings off the heap for a handful of checks (an
    /// allocation per evaluation is a measurable share of a simulated year).
    fn read<'a>(
        &self,
        observations: &[Observation],
        inline: &'a mut [Reading; INLINE_CHECKS],
        spilled: &'a mut Vec<Reading>,
    ) -> &'a [Reading] {
        let read = |i: usize| match self.classify(i, observations.get(i).copied()) {
            Ok(v) => Reading::Value(v),
            Err(_) => Reading::Failed,
        };
        let checks = self.config.checks.len();
        if checks <= INLINE_CHECKS {
            for (i, slot) in inline.iter_mut().enumerate().take(checks) {
                *slot = read(i);
            }
            &inline[..checks]
        } else {
            spilled.extend((0..checks).map(read));
            spilled
        }
    }

    /// Step 1: a current count outside `[min, max]` is brought to the bound it crossed.
    fn out_of_range(&self, current: Replicas) -> Option<Change> {
        let cfg = &self.config;
        let bound = if current > cfg.max_replicas {
            cfg.max_replicas
        } else if current < cfg.min_replicas && cfg.min_replicas > 0 {
            cfg.min_replicas
        } else {
            return None;
        };
        Some(Change {
            from: current,
            to: bound,
        })
    }

    /// Steps 2 to 7, recording each change in `reason`. `None` when every check failed: then there is nothing
    /// to recommend, and step 8 decides.
    fn scale_on_metrics(
        &self,
        state: &mut EngineState,
        readings: &[Reading],
        status: ReplicaStatus,
        now: Timestamp,
        reason: &mut Reason,
        per_check: &mut [Option<Replicas>],
    ) -> Option<Replicas> {
        let current = status.current;
        // 2 and 3.
        let (check, mut n) = self.recommend(state, readings, status, now, reason, per_check)?;
        reason.check = Some(check);
        reason.partial_data =
            hold_on_partial_data(current, n, reason.failed_checks, state.lost_replicas)
                .inspect(|c| n = c.to);
        reason.recommended = Some(n);
        // 4.
        reason.activation = self
            .activation(state, readings, current, n, now)
            .inspect(|c| n = c.to);
        // 5.
        reason.stabilized = self.stabilize(state, current, n, now).inspect(|c| n = c.to);
        reason.deadband = self.deadband(state, current, n, now).inspect(|c| n = c.to);
        // 6.
        reason.limited = self
            .limit(state, current, n, now)
            .inspect(|(_, c)| n = c.to);
        // 7.
        reason.cooldown = self
            .cooldown(state, current, n, now)
            .inspect(|_| n = current);
        Some(n)
    }

    /// Steps 2 and 3: one recommendation per successful check, and the largest wins (the first check at a
    /// tie). Each policy sees its check's history in `state`. `None` when every check failed.
    fn recommend(
        &self,
        state: &mut EngineState,
        readings: &[Reading],
        status: ReplicaStatus,
        now: Timestamp,
        reason: &mut Reason,
        per_check: &mut [Option<Replicas>],
    ) -> Option<(usize, Replicas)> {
        let mut best: Option<(usize, Replicas)> = None;
        for (i, reading) in readings.iter().enumerate() {
            if let Reading::Value(value) = *reading {
                let history = &mut state.checks[i];
                let mut context = PolicyContext::new(now, history);
                let rec = self.config.checks[i]
                    .policy()
                    .recommend(value, status, &mut context);
                let forecast = context.into_forecast();
                if let Some(slot) = per_check.get_mut(i) {
                    *slot = Some(rec);
                }
                if best.is_none_or(|(_, b)| rec > b) {
                    best = Some((i, rec));
                    reason.forecast = forecast;
                }
            }
        }
        best
    }

    /// Give every check its history: the one it had, by name, or an empty one.
    fn align_histories(&self, state: &mut EngineState) {
        let checks = &self.config.checks;
        let aligned = state.checks.len() == checks.len()
            && state
                .checks
                .iter()
                .zip(checks)
                .all(|(h, c)| h.check == c.name());
        if aligned {
            return;
        }
        let mut old = std::mem::take(&mut state.checks);
        state.checks = checks
            .iter()
            .map(|c| match old.iter().position(|h| h.check == c.name()) {
                Some(i) => old.swap_remove(i),
                None => CheckHistory::new(c.name()),
            })
            .collect();
    }

    /// Step 4: leave zero only when some value is strictly above its activation threshold, and reach zero only
    /// after `idle_after` of idleness. Only for services that may scale to zero.
    fn activation(
        &self,
        state: &EngineState,
        readings: &[Reading],
        current: Replicas,
        recommendation: Replicas,
        now: Timestamp,
    ) -> Option<Change> {
        if self.config.min_replicas > 0 {
            return None;
        }
        let active = readings
            .iter()
            .zip(&self.config.checks)
            .any(|(r, c)| match *r {
                Reading::Value(v) => v > c.activation(),
                Reading::Failed => false,
            });
        let activated = if current == 0 {
            if active { recommendation.max(1) } else { 0 }
        } else if state
            .idle_since
            .is_some_and(|since| now.saturating_since(since) >= self.config.idle_after)
        {
            0
        } else if recommendation == 0 {
            1
        } else {
            recommendation
        };
        changed(recommendation, activated)
    }

    /// Step 5: clamp `current` between the stabilization windows' bounds, then record the recommendation in
    /// the history (which starts with `(now, current)` the first time a service is seen).
    fn stabilize(
        &self,
        state: &mut EngineState,
        current: Replicas,
        recommendation: Replicas,
        now: Timestamp,
    ) -> Option<Change> {
        if state.recommendations.is_empty() {
            state.recommendations.push_back(Recommendation {
                at: now,
                replicas: current,
            });
        }
        let behavior = &self.config.behavior;
        let stabilized = rules::stabilize(
            &state.recommendations,
            &behavior.scale_up,
            &behavior.scale_down,
            current,
            recommendation,
            now,
        );
        state.recommendations.push_back(Recommendation {
            at: now,
            replicas: recommendation,
        });
        self.prune_recommendations(state, now);
        changed(recommendation, stabilized)
    }

    /// Step 5, second half: with a scale-down dead-band, a scale-down waits until the recommendation has been
    /// below `current` for `hold`, and then happens only if it is at least `min_drop` below; a smaller drop
    /// never scales down.
    ///
    /// The hold runs from the first evaluation below `current`, and only a recommendation at or above
    /// `current` (the service needs every replica it has) restarts it. A brief rise that stays below
    /// `current`, such as the tail of a burst, does not: otherwise on a noisy signal every burst would hold the
    /// count it caused for another full `hold`, the trailing maximum the dead-band is meant to replace.
    fn deadband(
        &self,
        state: &mut EngineState,
        current: Replicas,
        recommendation: Replicas,
        now: Timestamp,
    ) -> Option<Change> {
        let Some(deadband) = self.config.behavior.scale_down.deadband() else {
            state.below_since = None;
            return None;
        };
        if recommendation >= current {
            state.below_since = None;
            return None;
        }
        let since = *state.below_since.get_or_insert(now);
        let held = now.saturating_since(since) >= deadband.hold();
        if held && deadband.is_below(current, recommendation) {
            None
        } else {
            changed(recommendation, current)
        }
    }

    /// Step 6: the rate rules of the direction, and the bound on that side, whichever is tighter.
    fn limit(
        &self,
        state: &EngineState,
        current: Replicas,
        desired: Replicas,
        now: Timestamp,
    ) -> Option<(Limit, Change)> {
        let cfg = &self.config;
        let behavior = &cfg.behavior;
        let (bound, limit) = if desired > current {
            let mut up_limit = rules::scale_up_limit(state, &behavior.scale_up, current, now);
            if current == 0 {
                // A percent rule allows nothing from zero; activation must still be able to reach one.
                up_limit = up_limit.max(1);
            }
            let max = i64::from(cfg.max_replicas);
            let (bound, limit) = if max > up_limit {
                (up_limit, Limit::RateLimited)
            } else {
                (max, Limit::MaxReplicas)
            };
            if i64::from(desired) <= bound {
                return None;
            }
            (bound, limit)
        } else if desired < current {
            let down_limit = rules::scale_down_limit(state, &behavior.scale_down, current, now);
            let min = i64::from(cfg.min_replicas);
            let (bound, limit) = if min < down_limit {
                (down_limit, Limit::RateLimited)
            } else {
                (min, Limit::MinReplicas)
            };
            if i64::from(desired) >= bound {
                return None;
            }
            (bound, limit)
        } else {
            return None;
        };
        // The bound lies between `current` and `desired`, so it fits in `Replicas`.
        let to = bound as Replicas;
        Some((limit, Change { from: desired, to }))
    }

    /// Step 7: a change is blocked until its direction's cooldown has passed since the last scaling action in
    /// either direction.
    fn cooldown(
        &self,
        state: &EngineState,
        current: Replicas,
        desired: Replicas,
        now: Timestamp,
    ) -> Option<Cooldown> {
        let cooldown = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => self.config.cooldown_up,
            std::cmp::Ordering::Less => self.config.cooldown_down,
            std::cmp::Ordering::Equal => std::time::Duration::ZERO,
        };
        let elapsed = now.saturating_since(state.last_scale_at?);
        (elapsed < cooldown).then(|| Cooldown {
            blocked: desired,
            remaining: cooldown - elapsed,
        })
    }

    /// Step 8, once every check failed: hold, or run the fallback count (within the bounds) once the failures
    /// have lasted `fallback.after` evaluations. Returns the failure count with the change.
    fn fallback(&self, state: &EngineState, current: Replicas) -> Option<(u32, Change)> {
        let cfg = &self.config;
        let fallback = cfg.fallback?;
        let failures = state.consecutive_failures;
        if failures < fallback.after() {
            return None;
        }
        let target = match fallback.mode() {
            FallbackMode::Static => fallback.replicas(),
            FallbackMode::IfHigher => fallback.replicas().max(current),
        };
        let desired = target.clamp(cfg.min_replicas, cfg.max_replicas);
        changed(current, desired).map(|change| (failures, change))
    }

    /// The pause in force for a service in `state`: its run-time pause if it has one, else the configured one.
    pub fn effective_pause(&self, state: &EngineState) -> Pause {
        state.pause.map_or(self.config.pause, |p| p.directions)
    }

    /// Step 9: a paused direction stays at `current`.
    fn pause(&self, pause: Pause, current: Replicas, desired: Replicas) -> Option<Change> {
        let blocked =
            (desired > current && pause.blocks_up()) || (desired < current && pause.blocks_down());
        blocked.then_some(Change {
            from: desired,
            to: current,
        })
    }

    /// The reason's token: the last rule that changed the number, or what the round amounted to.
    fn token(&self, reason: &Reason, current: Replicas, desired: Replicas) -> Token {
        let all_failed = reason.failed_checks == self.config.checks.len();
        match reason.last_rule() {
            Some(token) => token,
            None if all_failed => Token::NoData,
            None => match Direction::of(current, desired) {
                Direction::Up => Token::ScaleUp,
                Direction::Down => Token::ScaleDown,
                Direction::None => Token::WithinTolerance,
            },
        }
    }

    /// The idle clock starts at the first evaluation where every check succeeded at or below its activation
    /// threshold; any failure, or any value above activation, resets it.
    fn update_idle_clock(&self, state: &mut EngineState, readings: &[Reading], now: Timestamp) {
        if self.config.min_replicas > 0 {
            state.idle_since = None;
            return;
        }
        let idle = readings
            .iter()
            .zip(&self.config.checks)
            .all(|(r, c)| match *r {
                Reading::Value(v) => v <= c.activation(),
                Reading::Failed => false,
            });
        if !idle {
            state.idle_since = None;
        } else if state.idle_since.is_none() {
            state.idle_since = Some(now);
        }
    }

    /// Drop scale events that no rule period can count again.
    fn prune_scale_events(&self, state: &mut EngineState, now: Timestamp) {
        let cutoff = now - self.config.behavior.longest_period();
        // Oldest first, so stop at the first one still in use: a full `retain` scan on every evaluation was
        // half of the simulator's time. (After a wall clock steps back, an older entry may sit behind a newer
        // one and be pruned later; counting compares every timestamp, so it never counts wrongly.)
        while state.scale_events.front().is_some_and(|e| e.at <= cutoff) {
            state.scale_events.pop_front();
        }
    }

    /// Drop recommendations that no stabilization window can count again.
    fn prune_recommendations(&self, state: &mut EngineState, now: Timestamp) {
        let window = duration_millis(self.config.behavior.longest_window());
        let cutoff = Timestamp::from_millis(now.as_millis().saturating_sub(window));
        while state
            .recommendations
            .front()
            .is_some_and(|r| r.at <= cutoff)
        {
            state.recommendations.pop_front();
        }
    }
}

/// Step 3's second half: partial data may scale up, never down, so a recommendation below `current` is held
/// at `current` while any check failed, or while replicas lost from a steady count are being replaced.
fn hold_on_partial_data(
    current: Replicas,
    recommendation: Replicas,
    failed_checks: usize,
    lost_replicas: Replicas,
) -> Option<Change> {
    ((failed_checks > 0 || lost_replicas > 0) && recommendation < current).then_some(Change {
        from: recommendation,
        to: current,
    })
}

/// The change from `from` to `to`, if they differ.
fn changed(from: Replicas, to: Replicas) -> Option<Change> {
    (from != to).then_some(Change { from, to })
}

/// Step 8's counter: evaluations in a row in which every check failed.
fn count_failures(state: &mut EngineState, all_failed: bool) {
    state.consecutive_failures = if all_failed {
        state.consecutive_failures.saturating_add(1)
    } else {
        0
    };
}
