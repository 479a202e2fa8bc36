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
mod reason;
mod rules;
mod state;

use crate::types::duration_millis;
use crate::{Direction, FailureKind, Observation, ReplicaStatus, Replicas, Timestamp};

pub use config::{
    Behavior, Check, ConfigError, EngineConfig, EngineConfigBuilder, Fallback, FallbackMode, Pause,
    Rule, RuleAmount, ScalingRules, Select,
};
pub use reason::{Change, Cooldown, Decision, Limit, Reason, Token};
pub use state::{EngineState, Recommendation, ScaleEvent};

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
    pub fn evaluate(
        &self,
        mut state: EngineState,
        status: ReplicaStatus,
        observations: &[Observation],
        now: Timestamp,
    ) -> (Decision, EngineState) {
        let cfg = &self.config;
        let current = status.current;
        // A backend may briefly report more ready than desired replicas (a scale-down in progress).
        let status = ReplicaStatus {
            current,
            ready: status.ready.min(current),
        };
        let mut reason = Reason::empty();

        let read = |i: usize| match self.classify(i, observations.get(i).copied()) {
            Ok(v) => Reading::Value(v),
            Err(_) => Reading::Failed,
        };
        // Services have a handful of checks: keep their readings off the heap (an allocation per evaluation
        // is a measurable share of a simulated year).
        let mut inline = [Reading::Failed; INLINE_CHECKS];
        let spilled: Vec<Reading>;
        let readings: &[Reading] = if cfg.checks.len() <= INLINE_CHECKS {
            for (i, slot) in inline.iter_mut().enumerate().take(cfg.checks.len()) {
                *slot = read(i);
            }
            &inline[..cfg.checks.len()]
        } else {
            spilled = (0..cfg.checks.len()).map(read).collect();
            &spilled
        };
        reason.failed_checks = readings
            .iter()
            .filter(|r| matches!(r, Reading::Failed))
            .count();
        let all_failed = reason.failed_checks == readings.len();
        let any_failed = reason.failed_checks > 0;

        state.consecutive_failures = if all_failed {
            state.consecutive_failures.saturating_add(1)
        } else {
            0
        };
        self.update_idle_clock(&mut state, readings, now);
        self.prune(&mut state, now);

        // 1. Out-of-range current: no metric needed.
        let out_of_range = if current > cfg.max_replicas {
            Some(cfg.max_replicas)
        } else if current < cfg.min_replicas && cfg.min_replicas > 0 {
            Some(cfg.min_replicas)
        } else {
            None
        };
        if let Some(bound) = out_of_range {
            reason.out_of_range = Some(Change {
                from: current,
                to: bound,
            });
            return self.finish(state, current, bound, reason);
        }

        // 8 (first half). Every check failed: hold, or fall back once the failures have lasted.
        if all_failed {
            let desired = match cfg.fallback {
                Some(fb) if state.consecutive_failures >= fb.after() => {
                    let target = match fb.mode() {
                        config::FallbackMode::Static => fb.replicas(),
                        config::FallbackMode::IfHigher => fb.replicas().max(current),
                    };
                    let desired = target.clamp(cfg.min_replicas, cfg.max_replicas);
                    if desired != current {
                        reason.fallback = Some((
                            state.consecutive_failures,
                            Change {
                                from: current,
                                to: desired,
                            },
                        ));
                    }
                    desired
                }
                _ => current,
            };
            return self.finish(state, current, desired, reason);
        }

        // 2 and 3. One recommendation per successful check; the largest wins.
        let mut best: Option<(usize, Replicas)> = None;
        for (i, reading) in readings.iter().enumerate() {
            if let Reading::Value(value) = *reading {
                let rec = cfg.checks[i].policy().recommend(value, status);
                if best.is_none_or(|(_, b)| rec > b) {
                    best = Some((i, rec));
                }
            }
        }
        let (winner, mut recommendation) = best.expect("at least one check succeeded");
        reason.check = Some(winner);
        if any_failed && recommendation < current {
            // Partial data may scale up, never down.
            reason.partial_data = Some(Change {
                from: recommendation,
                to: current,
            });
            recommendation = current;
        }
        reason.recommended = Some(recommendation);

        // 4. Activation and idle, for services that may scale to zero.
        if cfg.min_replicas == 0 {
            let activated = self.activate(&state, readings, current, recommendation, now);
            if activated != recommendation {
                reason.activation = Some(Change {
                    from: recommendation,
                    to: activated,
                });
                recommendation = activated;
            }
        }

        // 5. Stabilization.
        if state.recommendations.is_empty() {
            state.recommendations.push_back(Recommendation {
                at: now,
                replicas: current,
            });
        }
        let behavior = &cfg.behavior;
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
        self.prune_recommendations(&mut state, now);
        if stabilized != recommendation {
            reason.stabilized = Some(Change {
                from: recommendation,
                to: stabilized,
            });
        }

        // 6. Rate rules and bounds.
        let mut desired = stabilized;
        if desired > current {
            let mut up_limit = rules::scale_up_limit(&state, &behavior.scale_up, current, now);
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
            if i64::from(desired) > bound {
                let to = bound as Replicas;
                reason.limited = Some((limit, Change { from: desired, to }));
                desired = to;
            }
        } else if desired < current {
            let down_limit = rules::scale_down_limit(&state, &behavior.scale_down, current, now);
            let min = i64::from(cfg.min_replicas);
            let (bound, limit) = if min < down_limit {
                (down_limit, Limit::RateLimited)
            } else {
                (min, Limit::MinReplicas)
            };
            if i64::from(desired) < bound {
                let to = bound as Replicas;
                reason.limited = Some((limit, Change { from: desired, to }));
                desired = to;
            }
        }

        // 7. Cooldown, measured from the last scaling action in either direction.
        let cooldown = match desired.cmp(&current) {
            std::cmp::Ordering::Greater => cfg.cooldown_up,
            std::cmp::Ordering::Less => cfg.cooldown_down,
            std::cmp::Ordering::Equal => std::time::Duration::ZERO,
        };
        if let Some(last) = state.last_scale_at {
            let elapsed = now.saturating_since(last);
            if elapsed < cooldown {
                reason.cooldown = Some(Cooldown {
                    blocked: desired,
                    remaining: cooldown - elapsed,
                });
                desired = current;
            }
        }

        self.finish(state, current, desired, reason)
    }

    /// Step 9 (pause) and the reason's token.
    fn finish(
        &self,
        state: EngineState,
        current: Replicas,
        mut desired: Replicas,
        mut reason: Reason,
    ) -> (Decision, EngineState) {
        let pause = self.config.pause;
        if (desired > current && pause.blocks_up()) || (desired < current && pause.blocks_down()) {
            reason.paused = Some(Change {
                from: desired,
                to: current,
            });
            desired = current;
        }
        let all_failed = reason.failed_checks == self.config.checks.len();
        reason.token = match reason.last_rule() {
            Some(token) => token,
            None if all_failed => Token::NoData,
            None => match Direction::of(current, desired) {
                Direction::Up => Token::ScaleUp,
                Direction::Down => Token::ScaleDown,
                Direction::None => Token::WithinTolerance,
            },
        };
        let decision = Decision {
            current,
            desired,
            direction: Direction::of(current, desired),
            reason,
        };
        (decision, state)
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

    /// Step 4: leave zero only when some value is strictly above its activation threshold, and reach zero only
    /// after `idle_after` of idleness.
    fn activate(
        &self,
        state: &EngineState,
        readings: &[Reading],
        current: Replicas,
        recommendation: Replicas,
        now: Timestamp,
    ) -> Replicas {
        let active = readings
            .iter()
            .zip(&self.config.checks)
            .any(|(r, c)| match *r {
                Reading::Value(v) => v > c.activation(),
                Reading::Failed => false,
            });
        if current == 0 {
            return if active { recommendation.max(1) } else { 0 };
        }
        let idle_long_enough = state
            .idle_since
            .is_some_and(|since| now.saturating_since(since) >= self.config.idle_after);
        if idle_long_enough {
            0
        } else if recommendation == 0 {
            1
        } else {
            recommendation
        }
    }

    /// Drop scale events that no rule period can count again.
    fn prune(&self, state: &mut EngineState, now: Timestamp) {
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
