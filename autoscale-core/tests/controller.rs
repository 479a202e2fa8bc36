//! The per-service loop under tokio's paused clock, with the in-memory fakes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoscale_core::controller::{
    CheckSource, Round, ScaleResult, ServiceLoop, Timeouts, TokioClock,
};
use autoscale_core::engine::{EngineConfigBuilder, Fallback, FallbackMode};
use autoscale_core::policy::{Step, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use autoscale_core::{Check, EngineConfig, EngineState, FailureKind, ReplicaStatus, Timestamp};

fn cpu() -> Check {
    Check::new(
        "cpu",
        Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
    )
}
use tokio::sync::watch;

/// The engine's settings; the check comes with its source.
fn target_config(fallback: Option<Fallback>) -> EngineConfigBuilder {
    let mut b = EngineConfig::builder(1, 10);
    if let Some(fb) = fallback {
        b = b.fallback(fb);
    }
    b
}

fn service(
    config: EngineConfigBuilder,
    check: Check,
    source: &ScriptedSource,
    scaler: &RecordingScaler,
) -> ServiceLoop {
    ServiceLoop::builder("web", config, Arc::new(scaler.clone()))
        .check(check, CheckSource::new(Arc::new(source.clone()), "cpu"))
        .interval(Duration::from_secs(10))
        .clock(Arc::new(TokioClock::starting_at(Timestamp::from_secs(
            1_000_000,
        ))))
        .build()
        .unwrap()
}

/// Run the loop in the background, collecting its rounds, for `span` of (paused) time.
async fn run_for(svc: ServiceLoop, span: Duration) -> (Vec<Round>, EngineState) {
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let (stop, shutdown) = watch::channel(false);
    let sink = rounds.clone();
    let task = tokio::spawn(svc.run(shutdown, move |round, _| {
        sink.lock().unwrap().push(round.clone());
    }));
    tokio::time::sleep(span).await;
    stop.send(true).unwrap();
    let state = task.await.unwrap();
    let rounds = rounds.lock().unwrap().clone();
    (rounds, state)
}

#[tokio::test(start_paused = true)]
async fn rounds_follow_the_interval_and_never_overlap() {
    let source = ScriptedSource::constant("cpu", 0.5);
    let scaler = RecordingScaler::new(2);
    let (rounds, _) = run_for(
        service(target_config(None), cpu(), &source, &scaler),
        Duration::from_secs(95),
    )
    .await;
    // Ticks at phase, phase+10, ... within 95 s: 10 rounds (phase < 1 s).
    assert_eq!(rounds.len(), 10);
    let gaps: Vec<i64> = rounds
        .windows(2)
        .map(|w| w[1].at.as_millis() - w[0].at.as_millis())
        .collect();
    assert!(gaps.iter().all(|&g| g == 10_000), "{gaps:?}");

    // A scale call slower than the interval delays the next round instead of overlapping it.
    let source = ScriptedSource::constant("cpu", 2.0);
    let slow = RecordingScaler::new(1).with_scale_delay(Duration::from_secs(25));
    let (rounds, _) = run_for(
        service(target_config(None), cpu(), &source, &slow),
        Duration::from_secs(100),
    )
    .await;
    assert_eq!(slow.max_concurrent_scales(), 1);
    for pair in rounds.windows(2) {
        let end_of_first = pair[0].at + pair[0].duration;
        assert!(
            pair[1].at >= end_of_first,
            "round at {} overlaps {:?}",
            pair[1].at,
            pair[0]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_metric_outage_never_scales_down_and_falls_back_after_n() {
    let source = ScriptedSource::new();
    source.push("cpu", Ok(0.1)); // the first round wants 1 replica, held by the down window
    source.push("cpu", Err(FailureKind::Unavailable));
    let scaler = RecordingScaler::new(4);
    let fallback = Fallback::new(3, 6, FallbackMode::IfHigher).unwrap();
    let (rounds, state) = run_for(
        service(target_config(Some(fallback)), cpu(), &source, &scaler),
        Duration::from_secs(55),
    )
    .await;
    let tokens: Vec<&str> = rounds
        .iter()
        .map(|r| r.decision.as_ref().unwrap().reason.token.as_str())
        .collect();
    assert_eq!(
        tokens,
        [
            "stabilized",
            "no_data",
            "no_data",
            "fallback",
            "no_data",
            "no_data"
        ]
    );
    assert_eq!(scaler.scale_calls(), vec![6]);
    assert_eq!(rounds[1].outcome(), "no_data");
    assert_eq!(state.consecutive_failures, 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_scale_is_retried_at_the_next_round_and_records_nothing() {
    let source = ScriptedSource::constant("cpu", 1.0);
    let scaler = RecordingScaler::new(2);
    scaler.fail_next_scale(FailureKind::Unavailable);
    scaler.fail_next_scale(FailureKind::Timeout);
    let mut svc = service(target_config(None), cpu(), &source, &scaler);
    let first = svc.evaluate_once().await;
    assert!(matches!(
        first.scale,
        ScaleResult::Failed {
            kind: FailureKind::Unavailable,
            ..
        }
    ));
    assert_eq!(first.outcome(), "scale_failed");
    assert!(svc.state().scale_events.is_empty());
    assert_eq!(svc.state().last_scale_at, None);
    let second = svc.evaluate_once().await;
    assert!(matches!(
        second.scale,
        ScaleResult::Failed {
            kind: FailureKind::Timeout,
            ..
        }
    ));
    let third = svc.evaluate_once().await;
    assert_eq!(third.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![4, 4, 4]);
    assert_eq!(svc.state().scale_events.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn repeated_scale_failures_back_off_exponentially_until_one_succeeds() {
    let source = ScriptedSource::constant("cpu", 1.0);
    let scaler = RecordingScaler::new(2);
    for _ in 0..8 {
        scaler.fail_next_scale(FailureKind::Unavailable);
    }
    let (rounds, _) = run_for(
        service(target_config(None), cpu(), &source, &scaler),
        Duration::from_secs(465),
    )
    .await;
    let start = rounds[0].at;
    let offset = |r: &Round| (r.at.as_millis() - start.as_millis()) / 1000;
    let called: Vec<i64> = rounds
        .iter()
        .filter(|r| matches!(r.scale, ScaleResult::Failed { .. } | ScaleResult::Scaled))
        .map(offset)
        .collect();
    // Interval 10 s: two retries at the next round, then waits of 20, 40, 80 s, then the cap of 10 intervals.
    assert_eq!(called, [0, 10, 20, 40, 80, 160, 260, 360, 460]);
    assert_eq!(scaler.scale_calls().len(), 9);
    // Every round in between decided the same change and skipped the call, showing until when.
    let waiting = rounds.iter().find(|r| offset(r) == 170).unwrap();
    assert_eq!(waiting.scale, ScaleResult::BackingOff);
    assert_eq!(waiting.outcome(), "backing_off");
    let backoff = waiting.backoff.unwrap();
    assert_eq!(backoff.consecutive_failures, 6);
    assert_eq!(backoff.retry_at, start + Duration::from_secs(260));
    // The success at 460 s ends the backoff.
    let last = rounds.last().unwrap();
    assert_eq!((offset(last), &last.scale), (460, &ScaleResult::Scaled));
    assert_eq!(last.backoff, None);
}

#[tokio::test(start_paused = true)]
async fn the_scale_backoff_is_per_loop_and_a_success_resets_it() {
    let source = ScriptedSource::constant("cpu", 1.0);
    let scaler = RecordingScaler::new(2);
    for _ in 0..3 {
        scaler.fail_next_scale(FailureKind::Other);
    }
    let mut svc = service(target_config(None), cpu(), &source, &scaler);
    let other = RecordingScaler::new(2);
    let mut healthy = service(target_config(None), cpu(), &source, &other);
    for _ in 0..3 {
        svc.evaluate_once().await;
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(svc.backoff().unwrap().consecutive_failures, 3);
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::BackingOff);
    assert_eq!(healthy.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(healthy.backoff(), None);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(svc.backoff(), None);
    // After the reset, one failure is retried at the next round again.
    scaler.fail_next_scale(FailureKind::Other);
    tokio::time::advance(Duration::from_secs(10)).await;
    let failed = svc.evaluate_once().await;
    assert!(
        matches!(failed.scale, ScaleResult::Failed { .. }),
        "{failed:?}"
    );
    assert_eq!(failed.backoff.unwrap().consecutive_failures, 1);
    assert_eq!(failed.backoff.unwrap().retry_at, failed.at);
}

#[test]
fn the_scale_backoff_saturates_instead_of_overflowing() {
    use autoscale_core::controller::ScaleBackoff;
    let interval = Duration::from_secs(10);
    assert_eq!(ScaleBackoff::wait(2, interval), Duration::ZERO);
    assert_eq!(ScaleBackoff::wait(3, interval), Duration::from_secs(20));
    assert_eq!(
        ScaleBackoff::wait(u32::MAX, interval),
        Duration::from_secs(100)
    );
    assert_eq!(
        ScaleBackoff::wait(40, Duration::from_secs(60)),
        ScaleBackoff::MAX_WAIT
    );
    // A wait never shorter than one interval, even a huge one.
    assert_eq!(ScaleBackoff::wait(u32::MAX, Duration::MAX), Duration::MAX);
    assert_eq!(
        ScaleBackoff::cap(Duration::from_secs(3600)),
        Duration::from_secs(3600)
    );
    let timeouts = Timeouts {
        status: Duration::MAX,
        metric: Duration::from_secs(1),
        scale: Duration::MAX,
    };
    assert_eq!(timeouts.round_budget(), Duration::MAX);
    assert_eq!(Timeouts::default().round_budget(), Duration::from_secs(225));
}

#[tokio::test(start_paused = true)]
async fn a_hung_scale_call_times_out() {
    let source = ScriptedSource::constant("cpu", 1.0);
    let scaler = RecordingScaler::new(2).with_scale_delay(Duration::from_secs(3600));
    let mut svc = ServiceLoop::builder("web", target_config(None), Arc::new(scaler.clone()))
        .check(cpu(), CheckSource::new(Arc::new(source), "cpu"))
        .timeouts(Timeouts {
            scale: Duration::from_secs(30),
            ..Timeouts::default()
        })
        .build()
        .unwrap();
    let round = svc.evaluate_once().await;
    assert!(
        matches!(
            round.scale,
            ScaleResult::Failed {
                kind: FailureKind::Timeout,
                ..
            }
        ),
        "{round:?}"
    );
    assert_eq!(round.duration, Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_a_cooldown_still_honours_it() {
    let threshold = || {
        Check::new(
            "lat",
            Arc::new(ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).unwrap()),
        )
    };
    let source = ScriptedSource::constant("cpu", 0.9);
    let scaler = RecordingScaler::new(1);
    let clock = Arc::new(TokioClock::starting_at(Timestamp::from_secs(5_000)));
    let build = |state: EngineState| {
        let config =
            EngineConfig::builder(1, 10).default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
        ServiceLoop::builder("web", config, Arc::new(scaler.clone()))
            .check(
                threshold(),
                CheckSource::new(Arc::new(source.clone()), "cpu"),
            )
            .clock(clock.clone())
            .state(state)
            .build()
            .unwrap()
    };
    let mut first = build(EngineState::default());
    assert_eq!(first.evaluate_once().await.scale, ScaleResult::Scaled); // 1 -> 2, cooldown 60 s starts
    let saved = serde_json::to_string(first.state()).unwrap();
    drop(first);

    tokio::time::advance(Duration::from_secs(20)).await;
    let mut restarted = build(serde_json::from_str(&saved).unwrap());
    let round = restarted.evaluate_once().await;
    let decision = round.decision.unwrap();
    assert_eq!(decision.reason.token.as_str(), "cooldown");
    assert_eq!(
        decision.reason.cooldown.unwrap().remaining,
        Duration::from_secs(40)
    );
    tokio::time::advance(Duration::from_secs(40)).await;
    assert_eq!(restarted.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![2, 3]);
}

/// A `last_scale_at` from a clock that stepped back (or another host) must not block scaling until the clock
/// catches up: it counts as now, so the cooldown runs from the first round.
#[tokio::test(start_paused = true)]
async fn a_last_scale_time_in_the_future_counts_as_now() {
    let threshold = Check::new(
        "lat",
        Arc::new(ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).unwrap()),
    );
    let source = ScriptedSource::constant("cpu", 0.9);
    let scaler = RecordingScaler::new(1);
    let mut state = EngineState::default();
    // A day ahead of the loop's clock (1_000_000 s).
    state.record_scale(Timestamp::from_secs(1_086_400), 2, 1);
    let config = EngineConfig::builder(1, 10).default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
    let mut svc = ServiceLoop::builder("web", config, Arc::new(scaler.clone()))
        .check(threshold, CheckSource::new(Arc::new(source.clone()), "cpu"))
        .clock(Arc::new(TokioClock::starting_at(Timestamp::from_secs(
            1_000_000,
        ))))
        .state(state)
        .build()
        .unwrap();
    let round = svc.evaluate_once().await;
    let decision = round.decision.unwrap();
    assert_eq!(decision.reason.token.as_str(), "cooldown");
    assert_eq!(
        decision.reason.cooldown.unwrap().remaining,
        ThresholdPolicy::DEFAULT_COOLDOWN,
        "the cooldown runs from now"
    );
    assert_eq!(svc.state().last_scale_at, Some(round.at));
    tokio::time::advance(ThresholdPolicy::DEFAULT_COOLDOWN).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn scaling_done_outside_is_recorded_and_starts_the_cooldown() {
    let config = EngineConfig::builder(1, 10).default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN);
    let lat = Check::new(
        "lat",
        Arc::new(ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).unwrap()),
    );
    let source = ScriptedSource::constant("cpu", 0.45);
    let scaler = RecordingScaler::new(3);
    let mut svc = service(config, lat, &source, &scaler);
    assert_eq!(svc.evaluate_once().await.outside_change, None);
    scaler.set_outside(ReplicaStatus::all_ready(6));
    tokio::time::advance(Duration::from_secs(10)).await;
    source.set("cpu", Ok(0.1));
    let round = svc.evaluate_once().await;
    assert_eq!(round.outside_change, Some((3, 6)));
    assert_eq!(round.decision.unwrap().reason.token.as_str(), "cooldown");
    assert!(scaler.scale_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_slow_scale_call_finish() {
    let source = ScriptedSource::constant("cpu", 2.0);
    let scaler = RecordingScaler::new(1).with_scale_delay(Duration::from_secs(20));
    let svc = service(target_config(None), cpu(), &source, &scaler);
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let sink = rounds.clone();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(svc.run(shutdown, move |r, _| sink.lock().unwrap().push(r.clone())));
    tokio::time::sleep(Duration::from_secs(5)).await; // the first round is inside its 20 s scale call
    stop.send(true).unwrap();
    let state = task.await.unwrap();
    let rounds = rounds.lock().unwrap();
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0].scale, ScaleResult::Scaled);
    assert_eq!(
        state.scale_events.len(),
        1,
        "the finished action is in the state to persist"
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_decides_but_never_scales() {
    let source = ScriptedSource::constant("cpu", 2.0);
    let scaler = RecordingScaler::new(1);
    let mut svc = ServiceLoop::builder("web", target_config(None), Arc::new(scaler.clone()))
        .check(cpu(), CheckSource::new(Arc::new(source), "cpu"))
        .dry_run(true)
        .build()
        .unwrap();
    let round = svc.evaluate_once().await;
    assert_eq!(round.scale, ScaleResult::DryRun);
    assert_eq!(round.decision.unwrap().desired, 4);
    assert!(scaler.scale_calls().is_empty());
}

#[test]
fn the_source_count_must_match_the_checks() {
    // Only a check slipped into the engine builder can come without a source.
    let scaler = RecordingScaler::new(1);
    let err = ServiceLoop::builder("web", target_config(None).check(cpu()), Arc::new(scaler))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "service web: 1 checks but 0 check sources");
}

#[test]
fn the_engine_config_is_validated_with_the_checks() {
    let scaler = RecordingScaler::new(1);
    let source = ScriptedSource::constant("cpu", 0.5);
    let pair = || CheckSource::new(Arc::new(source.clone()), "cpu");
    let err = ServiceLoop::builder("web", target_config(None), Arc::new(scaler.clone()))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service web: a service needs at least one check"
    );
    let err = ServiceLoop::builder("web", target_config(None), Arc::new(scaler))
        .check(cpu(), pair())
        .check(cpu(), pair())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service web: check name \"cpu\" is used twice"
    );
}

#[test]
fn a_built_config_without_its_checks_rebuilds_the_same_engine() {
    let built = EngineConfig::builder(0, 10)
        .check(cpu())
        .cooldown_up(Duration::from_secs(7))
        .idle_after(Duration::from_secs(90))
        .fallback(Fallback::new(2, 3, FallbackMode::Static).unwrap())
        .build()
        .unwrap();
    let source = ScriptedSource::constant("cpu", 0.5);
    let svc = service(
        built.builder_without_checks(),
        built.checks()[0].clone(),
        &source,
        &RecordingScaler::new(1),
    );
    let rebuilt = svc.engine().config();
    assert_eq!(format!("{rebuilt:?}"), format!("{built:?}"));
    // A service with a minimum has the default idle_after, which its builder must not be given again.
    let bounded = target_config(None).check(cpu()).build().unwrap();
    assert!(
        bounded.builder_without_checks().build().is_err(),
        "no checks"
    );
    let svc = service(
        bounded.builder_without_checks(),
        cpu(),
        &source,
        &RecordingScaler::new(1),
    );
    assert_eq!(svc.engine().config().idle_after(), bounded.idle_after());
}

/// Any duration at all, from zero to `Duration::MAX`, weighted towards the extremes where arithmetic
/// overflows.
fn any_duration() -> impl proptest::strategy::Strategy<Value = Duration> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Duration::MAX),
        (u64::MAX / 4..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_secs),
        (0u64..7 * 24 * 3600 * 1000).prop_map(Duration::from_millis),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// No interval, timeout, cooldown or window makes the loop panic: every sum and product saturates.
    #[test]
    fn no_duration_panics_the_loop(
        interval in prop_oneof_interval(),
        timeout in any_duration(),
        cooldown in any_duration(),
        window in any_duration(),
    ) {
        use autoscale_core::engine::{Behavior, ScalingRules};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let source = ScriptedSource::constant("cpu", 0.9);
            let scaler = RecordingScaler::new(2);
            let down = ScalingRules::default_down();
            let behavior = Behavior {
                scale_up: ScalingRules::default_up(),
                scale_down: ScalingRules::new(window, down.select(), down.rules().to_vec()).unwrap(),
            };
            let config = target_config(None)
                .cooldown_up(cooldown)
                .cooldown_down(cooldown)
                .behavior(behavior);
            let svc = ServiceLoop::builder("web", config, Arc::new(scaler.clone()))
                .check(cpu(), CheckSource::new(Arc::new(source.clone()), "cpu"))
                .interval(interval)
                .timeouts(Timeouts { status: timeout, metric: timeout, scale: timeout })
                .clock(Arc::new(TokioClock::starting_at(Timestamp::from_secs(1_000_000))))
                .build()
                .unwrap();
            let (rounds, _) = run_for(svc, Duration::from_secs(60)).await;
            // A short interval ran its rounds; a long one has not come round yet.
            if interval <= Duration::from_secs(50) {
                assert!(!rounds.is_empty());
            }
        });
    }
}

/// An interval the loop accepts (above zero), short enough to run some rounds or far too long to.
fn prop_oneof_interval() -> impl proptest::strategy::Strategy<Value = Duration> {
    use proptest::prelude::*;
    prop_oneof![
        (100u64..120_000).prop_map(Duration::from_millis),
        any_duration().prop_filter("above zero", |d| *d >= Duration::from_millis(100)),
    ]
}

/// Filling a forecasting check's history from its source's past at the loop's start.
/// Log lines captured while a test runs, for the tests of what the loop logs.
mod captured {
    use std::io;
    use std::sync::{Arc, Mutex};

    /// Log lines captured while the guard lives (this thread only: the tests run on one thread).
    pub struct Logs {
        buffer: Arc<Mutex<Vec<u8>>>,
        _guard: tracing::subscriber::DefaultGuard,
    }

    impl Logs {
        pub fn capture() -> Logs {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = Arc::clone(&buffer);
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || LogWriter(Arc::clone(&writer)))
                .finish();
            Logs {
                buffer,
                _guard: tracing::subscriber::set_default(subscriber),
            }
        }

        pub fn lines(&self, containing: &str) -> Vec<String> {
            String::from_utf8_lossy(&self.buffer.lock().unwrap())
                .lines()
                .filter(|l| l.contains(containing))
                .map(str::to_owned)
                .collect()
        }

        /// The lines at `level` (INFO, WARN, ...) that contain `containing`.
        pub fn at(&self, level: &str, containing: &str) -> Vec<String> {
            self.lines(containing)
                .into_iter()
                .filter(|l| l.contains(&format!(" {level} ")))
                .collect()
        }
    }

    struct LogWriter(Arc<Mutex<Vec<u8>>>);

    impl io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}

mod backfill {
    use super::captured::Logs;
    use std::sync::Arc;
    use std::time::Duration;

    use autoscale_core::controller::{CheckSource, Round, ServiceLoop, TokioClock, merge_backfill};
    use autoscale_core::engine::{CheckHistory, bucket_start};
    use autoscale_core::policy::{PredictivePolicy, TargetForm, TargetPolicy};
    use autoscale_core::testing::{RecordingScaler, ScriptedSource};
    use autoscale_core::{Check, EngineConfig, EngineState, MockMetricSource, Policy, Timestamp};

    /// The loop's clock at its start: a whole minute, so samples fall on bucket starts.
    const T0: i64 = 999_960;
    const SEASON: u64 = 3600;
    const WINDOW: u64 = 300;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn policy() -> Arc<PredictivePolicy> {
        Arc::new(
            PredictivePolicy::with(
                10.0,
                TargetForm::Total,
                Duration::from_secs(WINDOW),
                0.0,
                Some(Duration::from_secs(SEASON)),
                Duration::from_secs(600),
            )
            .unwrap(),
        )
    }

    /// A season and a window of past demand, one point a minute up to `T0`: 10, with a peak of 100 one season
    /// ago, held over the minutes the seasonal forecast looks ahead at (the lead, then the window).
    fn past() -> Vec<(Timestamp, f64)> {
        let span = (SEASON + WINDOW) as i64;
        (0..=span / 60)
            .map(|m| {
                let at = T0 - span + m * 60;
                let peak = (T0 - 3060..=T0 - 2640).contains(&at);
                (t(at), if peak { 100.0 } else { 10.0 })
            })
            .collect()
    }

    fn service(
        source: Arc<dyn autoscale_core::MetricSource>,
        backfill: bool,
        state: EngineState,
        policy: Arc<dyn Policy>,
    ) -> (ServiceLoop, RecordingScaler) {
        let scaler = RecordingScaler::new(1);
        let mut check_source = CheckSource::new(source, "rps");
        if backfill {
            check_source = check_source.backfill("rps_demand");
        }
        let service = ServiceLoop::builder(
            "web",
            EngineConfig::builder(1, 20),
            Arc::new(scaler.clone()),
        )
        .check(Check::new("demand", policy), check_source)
        .interval(Duration::from_secs(10))
        .clock(Arc::new(TokioClock::starting_at(t(T0))))
        .state(state)
        .build()
        .unwrap();
        (service, scaler)
    }

    fn recommendation(round: &Round) -> Option<u32> {
        round.checks[0].recommendation
    }

    fn scripted(live: f64) -> ScriptedSource {
        let source = ScriptedSource::constant("rps", live);
        source.set_range("rps_demand", Ok(past()));
        source
    }

    #[tokio::test(start_paused = true)]
    async fn a_backfilled_check_decides_as_if_it_had_learned_the_past_itself() {
        let logs = Logs::capture();
        let source = scripted(10.0);
        let (mut backfilled, _) = service(
            Arc::new(source.clone()),
            true,
            EngineState::default(),
            policy(),
        );
        backfilled.start_backfill();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let round = backfilled.evaluate_once().await;

        let mut learned = CheckHistory::new("demand");
        for (at, demand) in past() {
            policy().learn(&mut learned, at, demand);
        }
        let state = EngineState {
            checks: vec![learned],
            ..EngineState::default()
        };
        let (mut direct, _) = service(Arc::new(scripted(10.0)), false, state, policy());
        tokio::time::sleep(Duration::from_millis(1)).await;
        let expected = direct.evaluate_once().await;

        assert_eq!(round.decision, expected.decision);
        assert_eq!(round.checks, expected.checks);
        assert_eq!(backfilled.state().checks, direct.state().checks);
        // The seasonal peak one season ago (100, a little more by the ratio of levels), at the target of 10:
        // what a cold start cannot know.
        assert!(recommendation(&round) >= Some(10), "{round:?}");
        let (mut cold, _) = service(
            Arc::new(scripted(10.0)),
            false,
            EngineState::default(),
            policy(),
        );
        cold.start_backfill();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(recommendation(&cold.evaluate_once().await), Some(1));

        let fetches = source.range_fetches();
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches[0].query, "rps_demand");
        assert_eq!(
            (fetches[0].start, fetches[0].end, fetches[0].step),
            (
                t(T0) - Duration::from_secs(SEASON + WINDOW),
                t(T0),
                Duration::from_secs(60)
            )
        );
        let info = logs.lines("backfilled the check's history");
        assert_eq!(info.len(), 1, "{info:?}");
        for field in [
            "INFO",
            "service=web",
            "check=\"demand\"",
            "points=66",
            "span_s=3900",
        ] {
            assert!(info[0].contains(field), "{field} missing: {}", info[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_backfill_goes_before_the_live_history_and_the_rounds_never_waited() {
        let source = scripted(50.0).with_range_delay(Duration::from_secs(12));
        let (mut svc, _) = service(
            Arc::new(source.clone()),
            true,
            EngineState::default(),
            policy(),
        );
        svc.start_backfill();
        let mut rounds = Vec::new();
        for _ in 0..4 {
            rounds.push(svc.evaluate_once().await);
            if rounds.len() < 4 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
        let at: Vec<Timestamp> = rounds.iter().map(|r| r.at).collect();
        assert_eq!(at, [t(T0), t(T0 + 10), t(T0 + 20), t(T0 + 30)]);
        // Live only until the fetch finishes at T0 + 12 s (within the metric timeout): the rounds before ran on
        // what they had, and the one after has the seasonal forecast.
        assert!(
            rounds[..2]
                .iter()
                .all(|r| recommendation(r) == Some(5) && r.decision.is_some()),
            "{rounds:?}"
        );

        assert!(recommendation(&rounds[2]) >= Some(10), "{:?}", rounds[2]);

        let history = &svc.state().checks[0];
        let starts: Vec<Timestamp> = history.buckets.iter().map(|b| b.start).collect();
        let first = t(T0 - (SEASON + WINDOW) as i64);
        assert_eq!(starts.first(), Some(&first));
        assert_eq!(
            starts.len(),
            66,
            "65 minutes of the past, then the live one"
        );
        assert!(
            starts
                .windows(2)
                .all(|w| w[1].saturating_since(w[0]) == Duration::from_secs(60))
        );
        let live = history.buckets.back().unwrap();
        assert_eq!((live.start, live.mean), (t(T0), 50.0));
        let peak = history
            .bucket_at(t(T0 - 3000), Duration::from_secs(60))
            .unwrap();
        assert_eq!(peak.mean, 100.0);
        assert_eq!(
            history.buckets[history.buckets.len() - 2].start,
            bucket_start(t(T0 - 60), Duration::from_secs(60))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_backfill_is_logged_once_and_the_policy_starts_cold() {
        let logs = Logs::capture();
        let mut source = MockMetricSource::new();
        source.expect_fetch().returning(|_, _| Ok(10.0));
        source
            .expect_fetch_range()
            .times(1)
            .returning(|query, _, _, _| {
                Err(autoscale_core::Error::Unavailable {
                    backend: "mock",
                    source: format!("connection refused asking {query}").into(),
                })
            });
        let (mut svc, _) = service(Arc::new(source), true, EngineState::default(), policy());
        svc.start_backfill();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let first = svc.evaluate_once().await;
        svc.start_backfill();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let second = svc.evaluate_once().await;

        assert_eq!(recommendation(&first), Some(1));
        assert!(second.decision.is_some());
        assert_eq!(svc.state().checks[0].buckets.len(), 1, "live samples only");
        let warnings = logs.lines("backfilling the check's history failed");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        for field in [
            "WARN",
            "service=web",
            "check=\"demand\"",
            "kind=unavailable",
            "connection refused asking rps_demand",
        ] {
            assert!(
                warnings[0].contains(field),
                "{field} missing: {}",
                warnings[0]
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_range_fetch_delays_no_round_and_times_out() {
        let logs = Logs::capture();
        // As good as never: a year.
        let source = scripted(10.0).with_range_delay(Duration::from_secs(365 * 24 * 3600));
        let (svc, scaler) = service(
            Arc::new(source.clone()),
            true,
            EngineState::default(),
            policy(),
        );
        let (rounds, _) = super::run_for(svc, Duration::from_secs(95)).await;

        assert_eq!(rounds.len(), 10);
        assert!(rounds[0].at.saturating_since(t(T0)) < Duration::from_secs(1));
        assert!(rounds.iter().all(|r| r.decision.is_some()));
        assert_eq!(scaler.status_calls(), 10);
        // The metric timeout (15 s by default) ends the fetch: one warning, and the policy stays cold.
        let warnings = logs.lines("backfilling the check's history failed");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("kind=timeout"), "{}", warnings[0]);
        assert!(rounds.iter().all(|r| recommendation(r) == Some(1)));
        assert_eq!(source.range_fetches().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_empty_histories_of_policies_that_ask_are_backfilled() {
        let source = scripted(10.0);
        // A restored history already holds the past.
        let mut restored = CheckHistory::new("demand");
        policy().learn(&mut restored, t(T0 - 600), 10.0);
        let state = EngineState {
            checks: vec![restored.clone()],
            ..EngineState::default()
        };
        let (mut svc, _) = service(Arc::new(source.clone()), true, state, policy());
        svc.start_backfill();
        // A memoryless policy wants no past.
        let target = Arc::new(TargetPolicy::new(1.0, TargetForm::Total).unwrap());
        let (mut memoryless, _) = service(
            Arc::new(source.clone()),
            true,
            EngineState::default(),
            target,
        );
        memoryless.start_backfill();
        tokio::time::sleep(Duration::from_millis(1)).await;
        svc.evaluate_once().await;
        memoryless.evaluate_once().await;

        assert!(source.range_fetches().is_empty());
        assert_eq!(svc.state().checks[0].buckets[0], restored.buckets[0]);
    }

    #[test]
    fn the_merge_keeps_the_live_buckets_and_only_the_older_past() {
        let policy = policy();
        let mut live = CheckHistory::new("demand");
        for s in [0, 30, 60] {
            policy.learn(&mut live, t(T0 + s), 7.0);
        }
        // The past overlaps the live minutes, and comes unordered.
        let mut points = past();
        points.push((t(T0 + 60), 999.0));
        points.reverse();
        let (merged, learned) = merge_backfill(policy.as_ref(), &live, points).unwrap();
        assert_eq!(learned, 65);
        assert_eq!(merged.check, "demand");
        let tail: Vec<(Timestamp, f64)> = merged
            .buckets
            .iter()
            .rev()
            .take(3)
            .map(|b| (b.start, b.mean))
            .collect();
        assert_eq!(tail, [(t(T0 + 60), 7.0), (t(T0), 7.0), (t(T0 - 60), 10.0)]);

        // A history with statistics but no buckets cannot be ordered: it is kept as it is.
        let mut bare = CheckHistory::new("demand");
        bare.short_term = live.short_term;
        assert!(merge_backfill(policy.as_ref(), &bare, past()).is_none());
        // An empty one takes the whole past.
        let (all, learned) =
            merge_backfill(policy.as_ref(), &CheckHistory::new("demand"), past()).unwrap();
        assert_eq!((learned, all.buckets.len()), (66, 66));
    }
}

/// What the loop logs, as a person reads it: rounded values, root causes, no query text in warnings, and a
/// repeated failure logged once, then every five minutes, then its recovery.
mod readable_logs {
    use super::captured::Logs;
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use autoscale_core::controller::{CheckSource, ServiceLoop, TokioClock};
    use autoscale_core::testing::{RecordingScaler, ScriptedSource};
    use autoscale_core::{
        EngineConfig, Error, FailureKind, MockMetricSource, MockScaler, ReplicaStatus, Timestamp,
    };
    use tokio::sync::watch;

    use super::cpu;

    const QUERY: &str = r#"sum(rate(http_requests_total{job="web"}[1m]))"#;
    const START: i64 = 1_000_000;

    fn clock() -> Arc<TokioClock> {
        Arc::new(TokioClock::starting_at(Timestamp::from_secs(START)))
    }

    fn web(
        source: Arc<dyn autoscale_core::MetricSource>,
        scaler: Arc<dyn autoscale_core::Scaler>,
    ) -> ServiceLoop {
        ServiceLoop::builder("web", EngineConfig::builder(1, 10), scaler)
            .check(cpu(), CheckSource::new(source, QUERY))
            .interval(Duration::from_secs(10))
            .clock(clock())
            .build()
            .unwrap()
    }

    /// An error as a Prometheus client reports a refused connection: the query and the time in the middle
    /// level, the operating system's reason at the bottom.
    #[derive(Debug)]
    struct Unreachable {
        at: Timestamp,
        source: io::Error,
    }

    impl std::fmt::Display for Unreachable {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "query `{QUERY}` at {} against http://prom:9090/api/v1/query: cannot reach Prometheus: \
                 error sending request",
                self.at
            )
        }
    }

    impl std::error::Error for Unreachable {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_query_is_logged_by_its_root_cause_without_its_query_or_time() {
        let logs = Logs::capture();
        let mut source = MockMetricSource::new();
        source.expect_fetch().returning(|_, at| {
            Err(Error::Unavailable {
                backend: "prometheus",
                source: Box::new(Unreachable {
                    at,
                    source: io::Error::from(io::ErrorKind::ConnectionRefused),
                }),
            })
        });
        let scaler = RecordingScaler::new(2);
        let mut svc = web(Arc::new(source), Arc::new(scaler));
        let round = svc.evaluate_once().await;

        let warnings = logs.at("WARN", "metric query failed");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert!(
            warning.contains(r#"error="prometheus is unavailable: connection refused""#),
            "{warning}"
        );
        assert!(!warning.contains("http_requests_total"), "{warning}");
        assert!(
            !warning.contains(&format!("{}", Timestamp::from_secs(START))),
            "{warning}"
        );
        // The round keeps the whole message, query included, for whoever reports it.
        let (_, message) = round.checks[0].result.clone().unwrap_err();
        assert!(!message.is_empty());
        // The query is logged once, at debug level, at the first round only.
        svc.evaluate_once().await;
        let queries = logs.at("DEBUG", "check query");
        assert_eq!(queries.len(), 1, "{queries:?}");
        assert!(
            queries[0].contains("http_requests_total") && queries[0].contains(r#"check="cpu""#)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_names_the_query_keeps_only_what_came_back() {
        let logs = Logs::capture();
        let mut source = MockMetricSource::new();
        source.expect_fetch().returning(|query, at| {
            Err(Error::InvalidQuery {
                backend: "prometheus",
                source: format!(
                    "query `{query}` at {at} against http://prom:9090/api/v1/query: Prometheus answered \
                     HTTP 400 bad_data: parse error at char 5"
                )
                .into(),
            })
        });
        let mut svc = web(Arc::new(source), Arc::new(RecordingScaler::new(2)));
        svc.evaluate_once().await;
        let warnings = logs.at("WARN", "metric query failed");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(
                "error=\"prometheus rejected the query as invalid: Prometheus answered HTTP 400 bad_data: \
                 parse error at char 5\""
            ),
            "{}",
            warnings[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_query_failure_is_logged_once_then_every_five_minutes_then_its_recovery() {
        let logs = Logs::capture();
        let source = ScriptedSource::new();
        source.set(QUERY, Err(FailureKind::Unavailable));
        let scaler = RecordingScaler::new(2);
        let svc = web(Arc::new(source.clone()), Arc::new(scaler));
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(svc.run(shutdown, |_, _| {}));
        // Rounds at 0 s, 10 s, ... 650 s: 66 failures.
        tokio::time::sleep(Duration::from_secs(655)).await;
        source.set(QUERY, Ok(0.9));
        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.send(true).unwrap();
        task.await.unwrap();

        let warnings = logs.at("WARN", "metric query failed");
        assert_eq!(warnings.len(), 3, "at 0 s, 300 s and 600 s: {warnings:#?}");
        assert!(!warnings[0].contains("times in a row"), "{}", warnings[0]);
        assert!(
            warnings[1].contains("failed 31 times in a row over 5m0s")
                && warnings[1].contains("failures=31"),
            "{}",
            warnings[1]
        );
        assert!(
            warnings[2].contains("failed 61 times in a row over 10m0s"),
            "{}",
            warnings[2]
        );
        assert_eq!(logs.at("DEBUG", "metric query failed again").len(), 63);
        let recovered = logs.at("INFO", "metric query works again");
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        assert!(
            recovered[0].contains("after 66 failures over 11m0s"),
            "{}",
            recovered[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_status_failure_is_logged_once_then_every_five_minutes_then_its_recovery() {
        let logs = Logs::capture();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut scaler = MockScaler::new();
        let flag = Arc::clone(&failing);
        scaler.expect_status().returning(move || {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                Err(autoscale_core::testing::fake_error(
                    FailureKind::Unavailable,
                ))
            } else {
                Ok(ReplicaStatus::all_ready(2))
            }
        });
        scaler
            .expect_scale()
            .returning(|_| Ok(autoscale_core::ScaleOutcome::Scaled));
        // A mock mocks the default method too: no change feed.
        scaler.expect_changes().returning(|| None);
        let svc = web(
            Arc::new(ScriptedSource::constant(QUERY, 1.0)),
            Arc::new(scaler),
        );
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(svc.run(shutdown, |_, _| {}));
        tokio::time::sleep(Duration::from_secs(305)).await;
        failing.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(20)).await;
        stop.send(true).unwrap();
        task.await.unwrap();

        let warnings = logs.at("WARN", "status read failed");
        assert_eq!(warnings.len(), 2, "at 0 s and 300 s: {warnings:#?}");
        assert!(
            warnings[1].contains("failed 31 times in a row"),
            "{}",
            warnings[1]
        );
        let recovered = logs.at("INFO", "status read works again");
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        assert!(
            recovered[0].contains("after 31 failures"),
            "{}",
            recovered[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_scale_failures_are_logged_once_then_every_five_minutes_then_the_recovery() {
        let logs = Logs::capture();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut scaler = MockScaler::new();
        scaler
            .expect_status()
            .returning(|| Ok(ReplicaStatus::all_ready(2)));
        let flag = Arc::clone(&failing);
        scaler.expect_scale().returning(move |_| {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                Err(autoscale_core::testing::fake_error(FailureKind::Rejected))
            } else {
                Ok(autoscale_core::ScaleOutcome::Scaled)
            }
        });
        scaler.expect_changes().returning(|| None);
        // 2.0 at a target of 0.5 per replica: 8 replicas wanted, from 2.
        let svc = web(
            Arc::new(ScriptedSource::constant(QUERY, 2.0)),
            Arc::new(scaler),
        );
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(svc.run(shutdown, |_, _| {}));
        tokio::time::sleep(Duration::from_secs(15 * 60)).await;
        failing.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(10 * 60)).await;
        stop.send(true).unwrap();
        task.await.unwrap();

        let errors = logs.at("ERROR", "Scaling action failed");
        // Attempts (with the backoff) at 0, 10, 20, 40, 80, 160, 320, 620, 920 s; logged at 0, 320 and 620 s,
        // and at 920 s, five minutes after 620.
        assert!(errors.len() >= 2 && errors.len() <= 4, "{errors:#?}");
        assert!(
            errors[0].contains("Scaling action failed; it will be retried"),
            "{}",
            errors[0]
        );
        assert!(!logs.at("DEBUG", "Scaling action failed again").is_empty());
        let recovered = logs.at("INFO", "scale calls work again");
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        // The mock's count never changes, so every round after the recovery scales again.
        assert!(
            !logs
                .at("INFO", "Successfully scaled to 8 replicas")
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn values_are_rounded_and_a_check_below_the_count_says_so() {
        let logs = Logs::capture();
        // 1/3 at a target of 0.5 per replica with 4 replicas: 3 wanted, below 4.
        let source = ScriptedSource::constant(QUERY, 1.0 / 3.0);
        let mut svc = web(Arc::new(source.clone()), Arc::new(RecordingScaler::new(4)));
        svc.evaluate_once().await;
        let below = logs.at("INFO", "BELOW scale-down threshold");
        assert_eq!(below.len(), 1, "{below:#?}");
        assert!(
            below[0].contains("check cpu = 0.3333 recommends 3 replicas")
                && below[0].contains("value=0.3333"),
            "{}",
            below[0]
        );
        assert!(!below[0].contains("0.33333"), "{}", below[0]);

        source.set(QUERY, Ok(2.0 / 3.0 * 10.0));
        tokio::time::sleep(Duration::from_secs(10)).await;
        svc.evaluate_once().await;
        let above = logs.at("INFO", "ABOVE scale-up threshold");
        assert_eq!(above.len(), 1, "{above:#?}");
        assert!(
            above[0].contains("check cpu = 6.667 recommends"),
            "{}",
            above[0]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_postponed_action_gives_its_reason_once() {
        let logs = Logs::capture();
        // 1.0 with 4 replicas scales to 8; then 0.1 recommends 2, which the scale-down stabilization window
        // holds at 8.
        let source = ScriptedSource::constant(QUERY, 1.0);
        let mut svc = web(Arc::new(source.clone()), Arc::new(RecordingScaler::new(4)));
        svc.evaluate_once().await;
        source.set(QUERY, Ok(0.1));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let round = svc.evaluate_once().await;
        let reason = round.decision.unwrap().reason.to_string();
        let postponed = logs.at("INFO", "Scaling action postponed");
        assert_eq!(postponed.len(), 1, "{postponed:#?}");
        assert_eq!(
            postponed[0].matches(&reason).count(),
            1,
            "{reason:?} in {}",
            postponed[0]
        );
        assert!(
            postponed[0].contains("token=stabilized"),
            "{}",
            postponed[0]
        );
    }
}

/// A scaler's change feed: a notification between rounds is followed by a status read (an observation) that
/// records an outside change at once, and by nothing else.
mod change_feed {
    use super::captured::Logs;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use autoscale_core::controller::{
        COALESCE_CHANGES, CheckSource, LoopEvent, ServiceLoop, StatusObservation, TokioClock,
    };
    use autoscale_core::policy::{Step, ThresholdPolicy};
    use autoscale_core::testing::{RecordingScaler, ScriptedSource};
    use autoscale_core::{
        Check, EngineConfig, EngineState, FailureKind, ReplicaStatus, Replicas, Timestamp,
    };
    use tokio::sync::{mpsc, watch};

    const START: i64 = 1_000_000;
    const INTERVAL: Duration = Duration::from_secs(60);

    /// What the loop reported, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        Round {
            at: Timestamp,
            outside_change: Option<(Replicas, Replicas)>,
            token: String,
        },
        Observed(StatusObservation),
    }

    /// A threshold check on `lat` (up above 0.6, down below 0.3, one replica a step) with the default
    /// cooldown, evaluated every minute.
    fn service(scaler: &RecordingScaler, source: &ScriptedSource) -> ServiceLoop {
        let lat = Check::new(
            "lat",
            Arc::new(ThresholdPolicy::new(0.6, 0.3, Step::Count(1)).unwrap()),
        );
        ServiceLoop::builder(
            "web",
            EngineConfig::builder(1, 10).default_cooldown(ThresholdPolicy::DEFAULT_COOLDOWN),
            Arc::new(scaler.clone()),
        )
        .check(lat, CheckSource::new(Arc::new(source.clone()), "lat"))
        .interval(INTERVAL)
        .clock(Arc::new(TokioClock::starting_at(Timestamp::from_secs(
            START,
        ))))
        .build()
        .unwrap()
    }

    /// A round's time, the outside change it found and its decision's token.
    type RoundSeen = (Timestamp, Option<(Replicas, Replicas)>, String);

    struct Running {
        events: Arc<Mutex<Vec<Event>>>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<EngineState>,
        _instructions: mpsc::Sender<autoscale_core::controller::Instruction>,
    }

    impl Running {
        fn start(svc: ServiceLoop) -> Running {
            let events = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&events);
            let (stop, shutdown) = watch::channel(false);
            let (tx, rx) = mpsc::channel(1);
            let task = tokio::spawn(svc.run_instructed(shutdown, rx, move |event, _| {
                let event = match event {
                    LoopEvent::Round(r) => Event::Round {
                        at: r.at,
                        outside_change: r.outside_change,
                        token: r
                            .decision
                            .as_ref()
                            .map(|d| d.reason.token.as_str().to_owned())
                            .unwrap_or_default(),
                    },
                    LoopEvent::Observed(o) => Event::Observed(o.clone()),
                    LoopEvent::Paused(..) => return,
                };
                sink.lock().unwrap().push(event);
            }));
            Running {
                events,
                stop,
                task,
                _instructions: tx,
            }
        }

        fn events(&self) -> Vec<Event> {
            self.events.lock().unwrap().clone()
        }

        fn observations(&self) -> Vec<StatusObservation> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Observed(o) => Some(o),
                    Event::Round { .. } => None,
                })
                .collect()
        }

        fn rounds(&self) -> Vec<RoundSeen> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Round {
                        at,
                        outside_change,
                        token,
                    } => Some((at, outside_change, token)),
                    Event::Observed(_) => None,
                })
                .collect()
        }

        async fn stop(self) -> EngineState {
            self.stop.send(true).unwrap();
            self.task.await.unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outside_change_is_recorded_between_rounds_and_starts_the_cooldown() {
        let logs = Logs::capture();
        let scaler = RecordingScaler::new(3).with_change_feed();
        let source = ScriptedSource::constant("lat", 0.45);
        let started = tokio::time::Instant::now();
        let running = Running::start(service(&scaler, &source));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(scaler.change_feeds(), 1, "the loop holds the feed");
        assert_eq!(running.rounds().len(), 1);

        // An operator scales to 6 at 10 s; the backend notices at once.
        scaler.set_outside_and_notify(ReplicaStatus::all_ready(6));
        let notified = Timestamp::from_secs(START) + started.elapsed();
        source.set("lat", Ok(0.1));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let observed = running.observations();
        assert_eq!(
            observed,
            vec![StatusObservation {
                service: "web".to_owned(),
                at: notified + COALESCE_CHANGES,
                status: ReplicaStatus::all_ready(6),
                outside_change: Some((3, 6)),
            }]
        );
        assert_eq!(
            logs.at("INFO", "replica count changed outside autoscale")
                .len(),
            1,
            "the round's log line"
        );
        assert_eq!(scaler.status_calls(), 2, "one round, one observation");

        // The next round finds nothing new, and the cooldown counts from the observation: 0.1 wants 5 but
        // waits.
        tokio::time::sleep(INTERVAL).await;
        let rounds = running.rounds();
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[1].1, None, "already recorded");
        assert_eq!(rounds[1].2, "cooldown");
        assert!(scaler.scale_calls().is_empty());
        let state = running.stop().await;
        assert_eq!(state.last_scale_at, Some(notified + COALESCE_CHANGES));
        assert_eq!(
            scaler.change_feeds(),
            0,
            "the feed is dropped with the loop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_observation_never_scales_and_the_rounds_keep_their_schedule() {
        let scaler = RecordingScaler::new(3).with_change_feed();
        // Above the threshold: every round scales up by one.
        let source = ScriptedSource::constant("lat", 0.9);
        let running = Running::start(service(&scaler, &source));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(scaler.scale_calls(), vec![4]);
        // Two observations before the next round: they scale nothing, though the check is above.
        for _ in 0..2 {
            scaler.notify();
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        assert_eq!(scaler.status_calls(), 3);
        assert_eq!(scaler.scale_calls(), vec![4]);
        for _ in 0..3 {
            scaler.notify();
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        // 110 s: rounds at the phase and a minute later; five observations, none of which scaled or found a
        // change (the loop's own scale is no outside change).
        let rounds = running.rounds();
        assert_eq!(rounds.len(), 2);
        assert_eq!(
            rounds[1].0.as_millis() - rounds[0].0.as_millis(),
            60_000,
            "the schedule is unchanged"
        );
        let observed = running.observations();
        assert_eq!(observed.len(), 5);
        assert!(observed.iter().all(|o| o.outside_change.is_none()));
        // One scale call per round.
        assert_eq!(scaler.scale_calls(), vec![4, 5]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_notifications_is_read_once() {
        let logs = Logs::capture();
        let scaler = RecordingScaler::new(3).with_change_feed();
        let source = ScriptedSource::constant("lat", 0.45);
        let running = Running::start(service(&scaler, &source));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let reads = scaler.status_calls();

        for _ in 0..10 {
            scaler.notify();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            scaler.status_calls(),
            reads + 1,
            "ten notifications, one read"
        );
        assert_eq!(running.observations().len(), 1);

        // A failed read is no event, and only a debug line.
        scaler.fail_next_status(FailureKind::Unavailable);
        scaler.notify();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(scaler.status_calls(), reads + 2);
        assert_eq!(running.observations().len(), 1);
        assert_eq!(
            logs.at("DEBUG", "status read between rounds failed").len(),
            1
        );
        assert!(logs.at("WARN", "status read").is_empty());
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_feed_an_outside_change_waits_for_the_next_round() {
        let scaler = RecordingScaler::new(3);
        let source = ScriptedSource::constant("lat", 0.45);
        let running = Running::start(service(&scaler, &source));
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Without a feed, notifying does nothing: the fake behaves as a backend that cannot watch.
        scaler.set_outside_and_notify(ReplicaStatus::all_ready(6));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(running.observations().is_empty());
        assert_eq!(scaler.status_calls(), 1);
        tokio::time::sleep(INTERVAL).await;
        let rounds = running.rounds();
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[1].1, Some((3, 6)), "seen at the round");
        assert_eq!(scaler.change_feeds(), 0);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_taken_to_zero_is_paused_by_the_observation() {
        let scaler = RecordingScaler::new(3).with_change_feed();
        let source = ScriptedSource::constant("lat", 0.45);
        let svc = service(&scaler, &source);
        let (stop, shutdown) = watch::channel(false);
        let (_tx, rx) = mpsc::channel(1);
        let states = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&states);
        let task = tokio::spawn(svc.run_instructed(shutdown, rx, move |event, state| {
            if let LoopEvent::Observed(o) = event {
                sink.lock()
                    .unwrap()
                    .push((o.outside_change, state.pause.map(|p| p.by)));
            }
        }));
        tokio::time::sleep(Duration::from_secs(10)).await;
        scaler.set_outside_and_notify(ReplicaStatus::all_ready(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
        scaler.set_outside_and_notify(ReplicaStatus::all_ready(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            *states.lock().unwrap(),
            vec![
                (
                    Some((3, 0)),
                    Some(autoscale_core::engine::PausedBy::ZeroOutside)
                ),
                (Some((0, 2)), None),
            ]
        );
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
