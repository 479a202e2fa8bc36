//! The predictive policy in the engine: the dead-band, properties over arbitrary demand, traces of typical
//! shapes (insta), and a restart through the serialized state.

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::{
    Behavior, CheckHistory, Deadband, MAX_BUCKETS, Rule, ScalingRules, Select,
};
use autoscale_core::policy::{Part, PolicyContext, PredictivePolicy, TargetForm, TargetPolicy};
use autoscale_core::{
    Check, Engine, EngineConfig, EngineState, Observation, Policy, ReplicaStatus, Replicas,
    Timestamp,
};
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);
const INTERVAL: i64 = 10;

fn predictive(target: f64, season: Option<Duration>) -> PredictivePolicy {
    PredictivePolicy::with(
        target,
        TargetForm::PerReplica,
        PredictivePolicy::DEFAULT_WINDOW,
        PredictivePolicy::DEFAULT_Z,
        season,
        40 * S,
    )
    .unwrap()
}

fn engine(policy: impl Policy + 'static, behavior: Behavior, max: Replicas) -> Engine {
    Engine::new(
        EngineConfig::builder(1, max)
            .check(Check::new("demand", Arc::new(policy)))
            .behavior(behavior)
            .build()
            .unwrap(),
    )
}

/// A service that becomes ready at once: each tick the engine sees `demand / ready` as utilization.
struct Run {
    engine: Engine,
    state: EngineState,
    replicas: Replicas,
}

impl Run {
    fn new(engine: Engine, replicas: Replicas) -> Self {
        Run {
            engine,
            state: EngineState::default(),
            replicas,
        }
    }

    fn tick(&mut self, at: i64, demand: f64) -> autoscale_core::Decision {
        let now = Timestamp::from_secs(at);
        let utilization = demand / f64::from(self.replicas.max(1));
        let (decision, state) = self.engine.evaluate(
            std::mem::take(&mut self.state),
            ReplicaStatus::all_ready(self.replicas),
            &[Observation::Value(utilization)],
            now,
        );
        self.state = state;
        if decision.is_change() {
            self.state
                .record_scale(now, self.replicas, decision.desired);
            self.replicas = decision.desired;
        }
        decision
    }
}

// ---- the dead-band --------------------------------------------------------------------------------------

/// A target policy with no tolerance and no windows, behind a dead-band of 20 % for 60 s.
fn deadbanded() -> Engine {
    let down = ScalingRules::new(
        Duration::ZERO,
        Select::Max,
        vec![Rule::percent(100, 15 * S).unwrap()],
    )
    .unwrap()
    .with_deadband(Some(Deadband::new(0.2, 60 * S).unwrap()));
    let behavior = Behavior {
        scale_up: ScalingRules::default_up(),
        scale_down: down,
    };
    let policy = TargetPolicy::with_tolerance(1.0, TargetForm::Total, 0.0).unwrap();
    engine(policy, behavior, 100)
}

fn total_tick(
    engine: &Engine,
    state: EngineState,
    current: Replicas,
    at: i64,
    value: f64,
) -> (Replicas, String, EngineState) {
    let (d, state) = engine.evaluate(
        state,
        ReplicaStatus::all_ready(current),
        &[Observation::Value(value)],
        Timestamp::from_secs(at),
    );
    (d.desired, d.reason.to_string(), state)
}

#[test]
fn the_deadband_holds_a_scale_down_until_the_drop_is_large_and_long_enough() {
    let e = deadbanded();
    let mut state = EngineState::default();
    // 10 replicas; the recommendation drops to 9 (10 %): never a scale-down.
    for at in (0..300).step_by(10) {
        let (desired, reason, next) = total_tick(&e, state, 10, at, 9.0);
        assert_eq!(desired, 10, "{reason}");
        assert!(reason.starts_with("deadband"), "{reason}");
        state = next;
    }
    // Below the count for 300 s already: a drop to 7 (30 %) applies at once.
    let (desired, reason, _) = total_tick(&e, state, 10, 300, 7.0);
    assert_eq!(desired, 7, "{reason}");
    // A fresh service whose recommendation drops by 30 %: held for 60 s, then applied.
    let mut state = EngineState::default();
    let mut seen = Vec::new();
    for at in (0..100).step_by(10) {
        let (desired, _, next) = total_tick(&e, state, 10, at, 7.0);
        seen.push(desired);
        state = next;
        if desired != 10 {
            break;
        }
    }
    assert_eq!(seen, [10, 10, 10, 10, 10, 10, 7]);
}

#[test]
fn a_rise_that_reaches_the_current_count_restarts_the_hold_and_one_that_does_not_keeps_it() {
    let e = deadbanded();
    let mut state = EngineState::default();
    let run = |state: EngineState, at: i64, value: f64| total_tick(&e, state, 10, at, value);
    let (_, _, s) = run(state, 0, 5.0);
    // A burst to 9 (below 10) does not restart the hold that began at 0.
    let (_, _, s) = run(s, 30, 9.0);
    let (desired, reason, s) = run(s, 60, 5.0);
    assert_eq!(desired, 5, "{reason}");
    state = s;
    // From 10 again: a burst that reaches 10 restarts it.
    let (_, _, s) = run(state, 100, 5.0);
    let (_, _, s) = run(s, 130, 10.0);
    let (desired, _, s) = run(s, 160, 5.0);
    assert_eq!(desired, 10, "held: the hold restarted at 160");
    let (desired, _, _) = run(s, 220, 5.0);
    assert_eq!(desired, 5);
}

#[test]
fn without_a_deadband_nothing_changes_for_the_hpa() {
    // Kubernetes' behavior has no dead-band, and the token never appears.
    assert!(Behavior::default().scale_down.deadband().is_none());
    assert_eq!(
        Behavior::predictive().scale_down.deadband(),
        Some(Deadband::new(0.2, 600 * S).unwrap())
    );
    assert!(Deadband::new(1.0, S).is_err());
    assert!(Deadband::new(f64::NAN, S).is_err());
}

// ---- properties -----------------------------------------------------------------------------------------

fn demand_strategy() -> impl Strategy<Value = Vec<(i64, f64)>> {
    // (gap in seconds, demand): gaps from one tick to over a day, demand from 0 to large.
    proptest::collection::vec(
        (
            prop_oneof![Just(10i64), 1i64..400, 3600i64..100_000],
            0.0f64..5e3,
        ),
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn with_constant_demand_it_converges_to_what_the_demand_needs_and_stays(
        demand in 0.1f64..500.0,
        target in 0.1f64..1.0,
        start in 1u32..50,
    ) {
        let needed = (demand / target).ceil() as Replicas;
        let mut run = Run::new(engine(predictive(target, None), Behavior::predictive(), 10_000), start);
        let mut last = Vec::new();
        for k in 0..400i64 {
            let d = run.tick(k * INTERVAL, demand);
            if k >= 380 {
                last.push(d.desired);
            }
        }
        // From below it reaches the need at once; from above, the dead-band may keep up to a fifth more.
        for r in last {
            prop_assert!(r >= needed, "{r} < {needed}");
            prop_assert!(f64::from(r) * 0.8 < f64::from(needed) + 1.0, "{r} stays far above {needed}");
        }
        // The policy alone recommends exactly the need.
        let p = predictive(target, None);
        let mut h = CheckHistory::new("c");
        let mut rec = 0;
        for k in 0..100i64 {
            let mut cx = PolicyContext::new(Timestamp::from_secs(k * INTERVAL), &mut h);
            rec = p.recommend(demand / 4.0, ReplicaStatus::all_ready(4), &mut cx);
        }
        prop_assert_eq!(rec, needed);
    }

    #[test]
    fn it_never_recommends_less_than_the_demand_of_the_moment_needs(
        samples in demand_strategy(),
        target in 0.05f64..2.0,
        ready in 0u32..200,
    ) {
        let p = predictive(target, Some(Duration::from_secs(3600)));
        let mut h = CheckHistory::new("c");
        let mut at = 0i64;
        for (gap, value) in samples {
            at += gap;
            let status = ReplicaStatus { current: ready.max(1), ready };
            let mut cx = PolicyContext::new(Timestamp::from_secs(at), &mut h);
            let rec = p.recommend(value, status, &mut cx);
            let forecast = cx.into_forecast().unwrap();
            let needed = (p.demand(value, status) / target).ceil();
            prop_assert!(f64::from(rec) >= needed.min(f64::from(u32::MAX)), "{rec} < {needed}");
            prop_assert!(forecast.value() >= forecast.demand);
        }
    }

    #[test]
    fn history_stays_bounded_whatever_the_input(
        samples in demand_strategy(),
        back in proptest::collection::vec(0i64..200_000, 0..5),
    ) {
        let p = predictive(0.6, Some(Duration::from_secs(7 * 86_400)));
        let mut h = CheckHistory::new("c");
        let mut at = 0i64;
        let mut back = back.into_iter();
        for (i, (gap, value)) in samples.into_iter().enumerate() {
            // Now and then the clock steps back.
            at += if i % 50 == 49 { -back.next().unwrap_or(0) } else { gap };
            let mut cx = PolicyContext::new(Timestamp::from_secs(at), &mut h);
            p.recommend(value, ReplicaStatus::all_ready(3), &mut cx);
            prop_assert!(h.buckets.len() <= MAX_BUCKETS);
            let retention = p.retention().as_secs() as i64 / 60 + 2;
            prop_assert!(h.buckets.len() as i64 <= retention, "{} buckets", h.buckets.len());
            prop_assert!(h.buckets.iter().zip(h.buckets.iter().skip(1)).all(|(a, b)| a.start < b.start));
        }
    }

    #[test]
    fn no_panic_on_any_finite_input_or_gap(
        values in proptest::collection::vec(prop_oneof![Just(0.0), Just(f64::MAX), Just(f64::MIN_POSITIVE), -1e300f64..1e300], 1..100),
        gaps in proptest::collection::vec(prop_oneof![Just(0i64), Just(i64::MAX / 4), -1_000_000i64..1_000_000], 1..100),
        ready in 0u32..u32::MAX,
    ) {
        let p = predictive(1e-300_f64.max(0.5), Some(Duration::from_secs(86_400)));
        let mut h = CheckHistory::new("c");
        let mut at = 0i64;
        for (value, gap) in values.into_iter().zip(gaps.into_iter().cycle()) {
            at = at.saturating_add(gap);
            let mut cx = PolicyContext::new(Timestamp::from_millis(at), &mut h);
            let _ = p.recommend(value, ReplicaStatus { current: ready, ready }, &mut cx);
        }
    }
}

// ---- traces ---------------------------------------------------------------------------------------------

/// A deterministic noise in [-1, 1] (splitmix64 of `k`).
fn noise(k: i64) -> f64 {
    let mut x = (k as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Every decision that changed the count, as `t  demand  current -> desired  reason`.
fn trace(policy: PredictivePolicy, ticks: i64, demand: impl Fn(i64) -> f64) -> String {
    let mut run = Run::new(engine(policy, Behavior::predictive(), 100), 1);
    let mut out = String::new();
    for k in 0..ticks {
        let at = k * INTERVAL;
        let d = demand(at);
        let decision = run.tick(at, d);
        if decision.is_change() {
            out.push_str(&format!(
                "{:>7}s  demand {d:>6.2}  {:>2} -> {:>2}  {}\n",
                at, decision.current, decision.desired, decision.reason
            ));
        }
    }
    out
}

/// The lines of a trace from `t` seconds on.
fn from(trace: &str, t: i64) -> String {
    trace
        .lines()
        .filter(|l| {
            l.trim_start()
                .split('s')
                .next()
                .and_then(|at| at.parse::<i64>().ok())
                .is_some_and(|at| at >= t)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn trace_of_a_noisy_step() {
    // 10 units ± 30 % for an hour, then 20 ± 30 %: it follows the step at once, absorbs the noise
    // without flapping, and gives back the headroom it no longer needs only through the dead-band.
    let out = trace(predictive(0.85, None), 720, |at| {
        let level = if at < 3600 { 10.0 } else { 20.0 };
        level * (1.0 + 0.3 * noise(at / 60))
    });
    insta::assert_snapshot!(out);
}

#[test]
fn trace_of_a_daily_ramp() {
    // Two days of a morning ramp from 10 to 40 units between 08:00 and 09:00. On the second day the seasonal
    // forecast brings replicas in before the ramp instead of after it.
    let day = 86_400;
    let out = trace(
        predictive(0.85, Some(Duration::from_secs(day as u64))),
        2 * day / INTERVAL,
        |at| {
            let t = at % day;
            match t {
                _ if t < 8 * 3600 => 10.0,
                _ if t < 9 * 3600 => 10.0 + 30.0 * (t - 8 * 3600) as f64 / 3600.0,
                _ if t < 18 * 3600 => 40.0,
                _ => 10.0,
            }
        },
    );
    let second_day = from(&out, day);
    assert!(second_day.contains("from seasonal"), "{second_day}");
    insta::assert_snapshot!(second_day);
}

#[test]
fn trace_of_a_missed_season() {
    // Yesterday had a peak of 40 units from 12:00 to 14:00; today stays at 10. The forecast sees the peak
    // coming, adds capacity for a while, and lets it go as today's level shows the peak is not coming.
    let day = 86_400;
    let out = trace(
        predictive(0.85, Some(Duration::from_secs(day as u64))),
        (day + 16 * 3600) / INTERVAL,
        |at| {
            let t = at % day;
            if at < day && (12 * 3600..14 * 3600).contains(&t) {
                40.0
            } else {
                10.0
            }
        },
    );
    let second_day = from(&out, day);
    insta::assert_snapshot!(second_day);
}

// ---- restart --------------------------------------------------------------------------------------------

#[test]
fn the_history_survives_a_restart_and_the_next_decision_is_the_same() {
    let day = 86_400;
    let demand = |at: i64| {
        10.0 + 5.0 * ((at % day) as f64 / day as f64 * std::f64::consts::TAU).sin() + noise(at / 60)
    };
    let mut straight = Run::new(
        engine(
            predictive(0.85, Some(Duration::from_secs(day as u64))),
            Behavior::predictive(),
            100,
        ),
        1,
    );
    let mut restarted = Run::new(
        engine(
            predictive(0.85, Some(Duration::from_secs(day as u64))),
            Behavior::predictive(),
            100,
        ),
        1,
    );
    let stop = day + 3 * 3600;
    for at in (0..stop).step_by(INTERVAL as usize) {
        straight.tick(at, demand(at));
        restarted.tick(at, demand(at));
    }
    // The daemon writes the state as JSON and reads it back at start.
    let json = serde_json::to_string(&restarted.state).unwrap();
    let state: EngineState = serde_json::from_str(&json).unwrap();
    assert_eq!(state, restarted.state);
    assert!(
        state.checks[0].buckets.len() > 1000,
        "a season of history is kept"
    );
    restarted.state = state;
    for at in (stop..stop + 3600).step_by(INTERVAL as usize) {
        let a = straight.tick(at, demand(at));
        let b = restarted.tick(at, demand(at));
        assert_eq!(a, b, "at {at}");
        if at == stop {
            assert!(a.reason.forecast.is_some());
        }
    }
    // A cold start, by contrast, has no seasonal forecast at first.
    let mut cold = Run::new(
        engine(
            predictive(0.85, Some(Duration::from_secs(day as u64))),
            Behavior::predictive(),
            100,
        ),
        straight.replicas,
    );
    let first = cold.tick(stop + 3600, demand(stop + 3600));
    assert_eq!(first.reason.forecast.unwrap().seasonal, None);
    assert_ne!(first.reason.forecast.unwrap().part, Part::Seasonal);
}
