//! The tick model of `docs/simulation.md`: replicas with a startup delay, the real engine deciding at each
//! tick, and the perfect-foresight oracle.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::engine::{Change, Limit};
use crate::sim::metrics::{Accumulator, Sample};
use crate::sim::trace::{Cursor, WindowMax};
use crate::sim::{Summary, Trace};
use crate::types::duration_millis;
use crate::{
    Direction, Engine, EngineState, Observation, Reason, ReplicaStatus, Replicas, Timestamp, Token,
};

/// What every check of the simulated service observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricMode {
    /// `load / (max(ready, 1) * capacity)`: the utilization of the ready replicas.
    #[default]
    Utilization,
    /// The raw load, for checks whose policy works on a total (such as `target` with `per = "total"`).
    Load,
}

impl MetricMode {
    /// `"utilization"` or `"load"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricMode::Utilization => "utilization",
            MetricMode::Load => "load",
        }
    }
}

impl fmt::Display for MetricMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetricMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "utilization" => Ok(MetricMode::Utilization),
            "load" => Ok(MetricMode::Load),
            other => Err(format!(
                "unknown metric {other:?}: expected utilization or load"
            )),
        }
    }
}

/// The simulated service.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The load one ready replica serves at utilization 1.0. Must be finite and above 0
    /// ([`Model::validate`]).
    pub capacity: f64,
    /// How long a new replica takes to become ready.
    pub startup_delay: Duration,
    /// The replica count at the start, all ready; `None` is the service's `min_replicas`.
    pub initial: Option<Replicas>,
    /// What the checks observe.
    pub metric: MetricMode,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            capacity: 1.0,
            startup_delay: Duration::ZERO,
            initial: None,
            metric: MetricMode::Utilization,
        }
    }
}

/// Why a [`Model`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The capacity is not a finite number above 0.
    #[error("capacity must be a finite number greater than 0, got {0}")]
    Capacity(f64),
}

impl Model {
    /// Check the model. [`simulate`] runs any model, but a capacity of 0 or NaN makes every metric non-finite,
    /// which the engine reads as failed checks: callers should refuse such input first.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.capacity.is_finite() && self.capacity > 0.0 {
            Ok(())
        } else {
            Err(ModelError::Capacity(self.capacity))
        }
    }
}

/// One tick of a simulation: a row of the `--format csv` output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Seconds since the trace's first row.
    pub t: f64,
    /// The load at this tick.
    pub load: f64,
    /// The value every check observed.
    pub metric: f64,
    /// `R` before the decision.
    pub current: Replicas,
    /// The combined recommendation of the checks (pipeline step 3), or `current` when the out-of-range rule
    /// decided or every check failed.
    pub recommended: Replicas,
    /// The decision: `R` after this tick.
    pub desired: Replicas,
    /// Ready replicas after the decision (`s_k`).
    pub ready: Replicas,
    /// `ceil(load / capacity)` (`d_k`).
    pub demand: u64,
    /// Why; its `Display` is `token: detail`, its `token` the CSV's stable token.
    pub reason: Reason,
}

/// The replicas of the model: how many are ready, and when the others will be.
///
/// Replicas are added in time order and the startup delay is the same for all, so ready times increase with
/// age, and the not-yet-ready replicas are always the youngest. Removing "not ready first, then the youngest"
/// is therefore removing from the young end of one stack, and the ready ones need no identity at all.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    ready: Replicas,
    /// Groups added at one tick: (ready time in ms, count), oldest first.
    starting: VecDeque<(i64, Replicas)>,
    delay_ms: i64,
}

impl Pool {
    /// `initial` replicas, all ready.
    pub(crate) fn new(initial: Replicas, startup_delay: Duration) -> Self {
        Pool {
            ready: initial,
            starting: VecDeque::new(),
            delay_ms: duration_millis(startup_delay),
        }
    }

    /// Promote the replicas whose ready time is `<= now`; the number ready.
    pub(crate) fn advance(&mut self, now: i64) -> Replicas {
        while let Some(&(at, n)) = self.starting.front() {
            if at > now {
                break;
            }
            self.ready += n;
            self.starting.pop_front();
        }
        self.ready
    }

    /// The number ready.
    pub(crate) fn ready(&self) -> Replicas {
        self.ready
    }

    /// Ready plus starting: `R`.
    #[cfg(test)]
    pub(crate) fn total(&self) -> Replicas {
        self.ready + self.starting.iter().map(|&(_, n)| n).sum::<Replicas>()
    }

    /// Go from `from` to `to` replicas at `now`.
    pub(crate) fn resize(&mut self, now: i64, from: Replicas, to: Replicas) {
        if to > from {
            let added = to - from;
            if self.delay_ms == 0 {
                self.ready += added;
            } else {
                self.starting
                    .push_back((now.saturating_add(self.delay_ms), added));
            }
            return;
        }
        let mut remove = from - to;
        while remove > 0 {
            match self.starting.back_mut() {
                Some((_, n)) => {
                    let taken = (*n).min(remove);
                    *n -= taken;
                    remove -= taken;
                    if *n == 0 {
                        self.starting.pop_back();
                    }
                }
                None => {
                    self.ready = self.ready.saturating_sub(remove);
                    remove = 0;
                }
            }
        }
    }
}

/// What a decider sees at one tick.
struct Input {
    now: i64,
    metric: f64,
    current: Replicas,
    ready: Replicas,
}

/// The tick loop shared by the engine and the oracle: `decide` returns `(recommended, desired, reason)`.
fn run(
    interval: Duration,
    trace: &Trace,
    model: &Model,
    initial: Replicas,
    mut decide: impl FnMut(&Input) -> (Replicas, Replicas, Reason),
    mut on_tick: impl FnMut(&Tick),
) -> Summary {
    let dt = duration_millis(interval);
    assert!(
        dt > 0,
        "the simulation interval must be at least 1 ms, got {interval:?}"
    );
    let times = trace.times_ms();
    let loads = trace.loads();
    let t0 = times[0];
    let t_last = times[times.len() - 1];
    let capacity = model.capacity;

    let mut pool = Pool::new(initial, model.startup_delay);
    let mut replicas = initial;
    let mut cursor = Cursor::new(trace);
    let mut metrics = Accumulator::new(dt);
    let mut now = t0;
    while now <= t_last {
        let load = loads[cursor.seek(now)];
        let ready = pool.advance(now);
        let metric = match model.metric {
            MetricMode::Utilization => load / (f64::from(ready.max(1)) * capacity),
            MetricMode::Load => load,
        };
        let current = replicas;
        let (recommended, desired, reason) = decide(&Input {
            now,
            metric,
            current,
            ready,
        });
        let changed = desired != current;
        if changed {
            pool.resize(now, current, desired);
            replicas = desired;
        }
        let supply = pool.ready();
        // `as` saturates: an absurd load or a capacity near 0 gives u64::MAX, not a wrap.
        let demand = (load / capacity).ceil() as u64;
        metrics.push(Sample {
            demand,
            supply,
            requested: replicas,
            changed,
            violated: load > f64::from(supply) * capacity,
        });
        on_tick(&Tick {
            t: (now - t0) as f64 / 1000.0,
            load,
            metric,
            current,
            recommended,
            desired,
            ready: supply,
            demand,
            reason,
        });
        match now.checked_add(dt) {
            Some(next) => now = next,
            None => break,
        }
    }
    metrics.finish()
}

/// Replay `trace` through `engine`, one tick every `interval` (the service's evaluation interval), and
/// summarize. `on_tick` sees every tick as it happens; nothing is kept, so a year of 10 s ticks runs in
/// constant memory.
///
/// At tick `t_k`, replicas whose startup delay has passed become ready; every check observes the model's
/// metric; the engine evaluates with `current = R`, `ready = ready_k`, `now = t_k`; a changed decision is
/// recorded in the engine state ([`EngineState::record_scale`]) and applied at once, new replicas becoming
/// ready after `model.startup_delay`.
///
/// # Panics
///
/// If `interval` is under 1 ms.
pub fn simulate(
    engine: &Engine,
    interval: Duration,
    trace: &Trace,
    model: &Model,
    on_tick: impl FnMut(&Tick),
) -> Summary {
    let initial = model.initial.unwrap_or(engine.config().min_replicas());
    let checks = engine.config().checks().len();
    let mut state = EngineState::default();
    let mut observations = vec![Observation::Value(0.0); checks];
    let decide = |input: &Input| {
        observations.fill(Observation::Value(input.metric));
        let now = Timestamp::from_millis(input.now);
        let status = ReplicaStatus {
            current: input.current,
            ready: input.ready,
        };
        let (decision, next) =
            engine.evaluate(std::mem::take(&mut state), status, &observations, now);
        state = next;
        if decision.is_change() {
            state.record_scale(now, input.current, decision.desired);
        }
        let recommended = decision.reason.recommended.unwrap_or(input.current);
        (recommended, decision.desired, decision.reason)
    };
    run(interval, trace, model, initial, decide, on_tick)
}

/// The perfect-foresight reference: at each tick it requests `ceil(max load over [t, t + ahead] / (capacity *
/// target))`, where `t + ahead` is the first tick at or after `t + startup_delay` (the tick at which the
/// replicas it asks for are ready), clamped to `[min, max]`, and gets it at once, with no tolerance, window,
/// rate rule or cooldown. Replicas start and stop as in [`simulate`].
///
/// It is a reference to compare policies against, not a policy: it knows the future. It is not a lower bound
/// on cost: a policy's tolerance (the HPA's 10 %) can run hotter than its target and undercut it. `recommended` is the
/// unclamped request; the reason is `scale_up`, `scale_down`, `within_tolerance`, or `max_replicas` /
/// `min_replicas` when a bound changed the request. `target` should be above 0 (a target of 0 asks for
/// `max`); if `min > max`, `max` wins.
///
/// # Panics
///
/// If `interval` is under 1 ms.
pub fn simulate_oracle(
    min: Replicas,
    max: Replicas,
    target: f64,
    interval: Duration,
    trace: &Trace,
    model: &Model,
    on_tick: impl FnMut(&Tick),
) -> Summary {
    let initial = model.initial.unwrap_or(min);
    let per_replica = model.capacity * target;
    // Replicas asked for at `t` serve from the first tick at or after `t + startup_delay`: the request must
    // cover the load up to that tick, which lies a whole number of intervals ahead. (With a delay shorter
    // than the interval, looking only `startup_delay` ahead would miss the next tick's load.)
    let dt = duration_millis(interval).max(1);
    let delay = duration_millis(model.startup_delay);
    let ahead = (delay.max(0) as u64)
        .div_ceil(dt as u64)
        .saturating_mul(dt as u64);
    let ahead = i64::try_from(ahead).unwrap_or(i64::MAX);
    let mut window = WindowMax::new(trace, ahead);
    let decide = |input: &Input| {
        let peak = window.max_at(input.now);
        let wanted = (peak / per_replica).ceil();
        // `as` saturates and maps NaN to 0: a zero target asks for everything, a zero load for nothing.
        let wanted = if wanted.is_nan() {
            0
        } else {
            wanted as Replicas
        };
        let desired = wanted.max(min).min(max);
        let mut reason = Reason::empty();
        reason.recommended = Some(wanted);
        if desired != wanted && desired != input.current {
            let limit = if desired < wanted {
                Limit::MaxReplicas
            } else {
                Limit::MinReplicas
            };
            reason.limited = Some((
                limit,
                Change {
                    from: wanted,
                    to: desired,
                },
            ));
        }
        reason.token = reason
            .last_rule()
            .unwrap_or(match Direction::of(input.current, desired) {
                Direction::Up => Token::ScaleUp,
                Direction::Down => Token::ScaleDown,
                Direction::None => Token::WithinTolerance,
            });
        (wanted, desired, reason)
    };
    run(interval, trace, model, initial, decide, on_tick)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::{Behavior, Rule, ScalingRules, Select};
    use crate::policy::{TargetForm, TargetPolicy};
    use crate::{Check, EngineConfig};

    const S: Duration = Duration::from_secs(1);

    fn trace(rows: &[(i64, f64)]) -> Trace {
        Trace::from_points(
            rows.iter()
                .map(|&(s, l)| (Timestamp::from_secs(s), l))
                .collect(),
        )
        .unwrap()
    }

    /// Target 1.0 per replica with no tolerance, no windows and rate rules too loose to bite: the engine then
    /// asks for exactly `ceil(utilization * ready)`, which is easy to follow by hand.
    fn eager(min: Replicas, max: Replicas) -> Engine {
        let policy = TargetPolicy::with_tolerance(1.0, TargetForm::PerReplica, 0.0).unwrap();
        let loose = || {
            ScalingRules::new(
                Duration::ZERO,
                Select::Max,
                vec![Rule::pods(100, S).unwrap()],
            )
        };
        Engine::new(
            EngineConfig::builder(min, max)
                .check(Check::new("utilization", Arc::new(policy)))
                .behavior(Behavior {
                    scale_up: loose().unwrap(),
                    scale_down: loose().unwrap(),
                })
                .build()
                .unwrap(),
        )
    }

    fn collect(f: impl FnOnce(&mut dyn FnMut(&Tick)) -> Summary) -> (Vec<Tick>, Summary) {
        let mut ticks = Vec::new();
        let summary = f(&mut |t: &Tick| ticks.push(t.clone()));
        (ticks, summary)
    }

    #[test]
    fn pool_removes_starting_replicas_youngest_first_then_ready_ones() {
        let mut pool = Pool::new(1, 30 * S);
        // t=0: 1 -> 3, two ready at 30 s.
        assert_eq!(pool.advance(0), 1);
        pool.resize(0, 1, 3);
        // t=10: 3 -> 5, two more ready at 40 s.
        assert_eq!(pool.advance(10_000), 1);
        pool.resize(10_000, 3, 5);
        assert_eq!(pool.total(), 5);
        // t=20: 5 -> 2 removes both of the 40 s group and one of the 30 s group; the ready one stays.
        pool.resize(20_000, 5, 2);
        assert_eq!((pool.ready(), pool.total()), (1, 2));
        assert_eq!(pool.advance(29_999), 1);
        assert_eq!(pool.advance(30_000), 2);
        assert_eq!(pool.advance(40_000), 2);
        // 2 -> 0 with nothing starting takes ready ones.
        pool.resize(40_000, 2, 0);
        assert_eq!((pool.ready(), pool.total()), (0, 0));
    }

    #[test]
    fn pool_without_delay_is_ready_at_once() {
        let mut pool = Pool::new(2, Duration::ZERO);
        pool.resize(0, 2, 6);
        assert_eq!((pool.ready(), pool.advance(0)), (6, 6));
        pool.resize(0, 6, 1);
        assert_eq!(pool.ready(), 1);
    }

    /// The example of the module docs, worked by hand through the model and the metrics.
    #[test]
    fn startup_delay_by_hand() {
        // dt = 10 s, startup delay 10 s, capacity 1, initial 1; ticks at 0, 10, 20, 30, 40 (K = 5, T = 50 s).
        let trace = trace(&[(0, 1.0), (10, 3.0), (20, 3.0), (30, 3.0), (40, 0.0)]);
        let model = Model {
            startup_delay: 10 * S,
            initial: Some(1),
            ..Model::default()
        };
        let engine = eager(1, 10);
        let (ticks, summary) = collect(|f| simulate(&engine, 10 * S, &trace, &model, f));
        let rows: Vec<_> = ticks
            .iter()
            .map(|t| {
                (
                    t.t,
                    t.metric,
                    t.current,
                    t.recommended,
                    t.desired,
                    t.ready,
                    t.demand,
                    t.reason.token.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                // load 1 on 1 ready: utilization 1 = target.
                (0.0, 1.0, 1, 1, 1, 1, 1, "within_tolerance"),
                // load 3 on 1 ready: ceil(3 * 1) = 3. The two new replicas are ready at 20 s, so s = 1.
                (10.0, 3.0, 1, 3, 3, 1, 3, "scale_up"),
                // They are ready now: 3 / 3 = 1.
                (20.0, 1.0, 3, 3, 3, 3, 3, "within_tolerance"),
                (30.0, 1.0, 3, 3, 3, 3, 3, "within_tolerance"),
                // load 0: ceil(0) = 0, held at min 1; two ready replicas go at once.
                (40.0, 0.0, 3, 0, 1, 1, 0, "min_replicas"),
            ]
        );
        // d = 1 3 3 3 0; s = 1 1 3 3 1; R = 1 3 3 3 1.
        // theta_u = 100/50 * ((3-1)/3 * 10) = 13.333 %.
        assert!((summary.theta_u - 40.0 / 3.0).abs() < 1e-12);
        // theta_o = 100/50 * ((1-0)/max(0,1) * 10) = 20 %.
        assert_eq!(summary.theta_o, 20.0);
        // tau_u: k=1 only, tau_o: k=4 only: 10 s of 50 each.
        assert_eq!((summary.tau_u, summary.tau_o), (20.0, 20.0));
        // sgn ds = 0,+,0,-; sgn dd = +,0,0,-: they differ at k=1 and k=2. 100/(50-10) * 2 * 10 = 50 %.
        assert_eq!(summary.instability, 50.0);
        // E_s = 0+2+0+2 = 4, E_d = 2+0+0+3 = 5: (4-5) / (50/60) = -1.2 per minute.
        assert!((summary.jitter_per_min + 1.2).abs() < 1e-12);
        // (1+3+3+3+1) * 10 = 110.
        assert_eq!(summary.replica_seconds, 110.0);
        assert_eq!(summary.scale_actions, 2);
        // load > s * capacity only at k=1 (3 > 1).
        assert_eq!(summary.slo_violation_s, 10.0);
        assert_eq!(summary.max_replicas_used, 3);
        assert_eq!(summary.ticks, 5);
    }

    #[test]
    fn ticks_run_from_the_first_row_while_not_past_the_last() {
        // Rows at 5 s and 32 s, dt = 10 s: ticks at 5, 15, 25 (35 > 32). The load holds between rows.
        let trace = trace(&[(5, 2.0), (32, 9.0)]);
        let model = Model {
            metric: MetricMode::Load,
            initial: Some(2),
            ..Model::default()
        };
        let engine = eager(1, 10);
        let (ticks, summary) = collect(|f| simulate(&engine, 10 * S, &trace, &model, f));
        let times: Vec<(f64, f64)> = ticks.iter().map(|t| (t.t, t.load)).collect();
        assert_eq!(times, vec![(0.0, 2.0), (10.0, 2.0), (20.0, 2.0)]);
        assert_eq!(summary.ticks, 3);
        // A single row is one tick.
        let one = Trace::from_points(vec![(Timestamp::from_secs(7), 1.0)]).unwrap();
        let s = simulate(&engine, 10 * S, &one, &model, |_| {});
        assert_eq!((s.ticks, s.instability), (1, 0.0));
    }

    #[test]
    fn the_engine_sees_only_ready_replicas() {
        // Load 4, capacity 1, target 1, startup 30 s, dt 10 s, initial 1.
        // t=0: 4/1 ready -> ceil(4*1) = 4 (three starting, ready at 30 s).
        // t=10, 20: 1 ready of 4, utilization 4 > 1: the policy never shrinks a scale-up while replicas start,
        //           so R stays 4.
        // t=30: load drops to 1 while 4 are ready: 1/4 = 0.25 -> ceil(0.25*4) = 1.
        let trace = trace(&[(0, 4.0), (30, 1.0)]);
        let model = Model {
            startup_delay: 30 * S,
            initial: Some(1),
            ..Model::default()
        };
        let engine = eager(1, 10);
        let (ticks, _) = collect(|f| simulate(&engine, 10 * S, &trace, &model, f));
        let rows: Vec<_> = ticks
            .iter()
            .map(|t| (t.current, t.desired, t.ready))
            .collect();
        assert_eq!(rows, vec![(1, 4, 1), (4, 4, 1), (4, 4, 1), (4, 1, 1)]);
        // Utilization is over the ready replicas: 4 / 1 while three are starting, 1 / 4 once they are up.
        let metrics: Vec<f64> = ticks.iter().map(|t| t.metric).collect();
        assert_eq!(metrics, vec![4.0, 4.0, 4.0, 0.25]);
    }

    /// Recommends the observed value itself, so a load column scripts `R` directly.
    #[derive(Debug)]
    struct Echo;

    impl crate::Policy for Echo {
        fn kind(&self) -> &str {
            "echo"
        }

        fn recommend(
            &self,
            value: f64,
            _: ReplicaStatus,
            _: &mut crate::policy::PolicyContext<'_>,
        ) -> Replicas {
            value as Replicas
        }
    }

    #[test]
    fn a_scale_down_removes_starting_replicas_youngest_first() {
        let loose = || {
            ScalingRules::new(
                Duration::ZERO,
                Select::Max,
                vec![Rule::pods(100, S).unwrap()],
            )
        };
        let engine = Engine::new(
            EngineConfig::builder(1, 10)
                .check(Check::new("load", Arc::new(Echo)))
                .behavior(Behavior {
                    scale_up: loose().unwrap(),
                    scale_down: loose().unwrap(),
                })
                .build()
                .unwrap(),
        );
        let model = Model {
            startup_delay: 30 * S,
            initial: Some(1),
            metric: MetricMode::Load,
            ..Model::default()
        };
        let trace = trace(&[(0, 1.0), (10, 4.0), (20, 7.0), (30, 2.0), (60, 2.0)]);
        let (ticks, _) = collect(|f| simulate(&engine, 10 * S, &trace, &model, f));
        let rows: Vec<_> = ticks
            .iter()
            .map(|t| (t.t, t.current, t.desired, t.ready))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0.0, 1, 1, 1),
                // Group A: three replicas, ready at 40 s.
                (10.0, 1, 4, 1),
                // Group B: three more, ready at 50 s.
                (20.0, 4, 7, 1),
                // 7 -> 2 removes all of B, then two of A; the ready one stays.
                (30.0, 7, 2, 1),
                // A's last replica is ready at 40 s. Had B's survived, it would only be ready at 50 s.
                (40.0, 2, 2, 2),
                (50.0, 2, 2, 2),
                (60.0, 2, 2, 2),
            ]
        );
    }

    #[test]
    fn out_of_range_start_reports_current_as_recommended() {
        let trace = trace(&[(0, 1.0), (10, 1.0)]);
        let model = Model {
            initial: Some(0),
            ..Model::default()
        };
        let engine = eager(2, 10);
        let (ticks, _) = collect(|f| simulate(&engine, 10 * S, &trace, &model, f));
        assert_eq!(
            (ticks[0].current, ticks[0].recommended, ticks[0].desired),
            (0, 0, 2)
        );
        assert_eq!(ticks[0].reason.token, Token::OutOfRangeMin);
        // The default initial count is min_replicas.
        let (ticks, _) = collect(|f| simulate(&engine, 10 * S, &trace, &Model::default(), f));
        assert_eq!(ticks[0].current, 2);
    }

    #[test]
    fn oracle_with_a_delay_shorter_than_the_interval_looks_to_the_next_tick() {
        // Hourly steps up, ticks every 10 minutes, replicas ready 2 minutes after they are asked for: they
        // serve from the next tick, so each request must cover that tick's load.
        let trace = trace(&[(0, 1.0), (600, 3.0), (1200, 6.0), (1800, 6.0)]);
        let model = Model {
            startup_delay: 120 * S,
            initial: Some(1),
            ..Model::default()
        };
        let (ticks, summary) = collect(|f| simulate_oracle(1, 20, 1.0, 600 * S, &trace, &model, f));
        let asked: Vec<Replicas> = ticks.iter().map(|t| t.desired).collect();
        assert_eq!(asked, [3, 6, 6, 6]);
        assert_eq!(summary.slo_violation_s, 0.0);
    }

    #[test]
    fn oracle_looks_ahead_by_the_startup_delay() {
        // capacity 1, target 0.5, startup 20 s, dt 10 s. Load 1 until 30 s, then 4, then 0 from 60 s.
        let trace = trace(&[(0, 1.0), (30, 4.0), (60, 0.0), (80, 0.0)]);
        let model = Model {
            startup_delay: 20 * S,
            initial: Some(2),
            ..Model::default()
        };
        let (ticks, summary) = collect(|f| simulate_oracle(1, 6, 0.5, 10 * S, &trace, &model, f));
        let rows: Vec<_> = ticks
            .iter()
            .map(|t| {
                (
                    t.t,
                    t.recommended,
                    t.desired,
                    t.ready,
                    t.reason.token.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                // max over [0, 20] = 1 -> ceil(1 / 0.5) = 2.
                (0.0, 2, 2, 2, "within_tolerance"),
                // max over [10, 30] = 4 -> 8, clamped to 6; the four new ones are ready at 30 s.
                (10.0, 8, 6, 2, "max_replicas"),
                (20.0, 8, 6, 2, "within_tolerance"),
                (30.0, 8, 6, 6, "within_tolerance"),
                // [40, 60] still sees the 4 of 40-59 s.
                (40.0, 8, 6, 6, "within_tolerance"),
                (50.0, 8, 6, 6, "within_tolerance"),
                // [60, 80]: 0 -> 0, raised to min 1.
                (60.0, 0, 1, 1, "min_replicas"),
                (70.0, 0, 1, 1, "within_tolerance"),
                (80.0, 0, 1, 1, "within_tolerance"),
            ]
        );
        assert_eq!(summary.scale_actions, 2);
        // (2 + 6*5 + 1*3) * 10 = 350.
        assert_eq!(summary.replica_seconds, 350.0);
    }
}
