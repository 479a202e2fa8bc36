//! Pausing at run time: an operator's pause and resume, and a service taken to 0 replicas outside autoscale,
//! which is left alone (as Kubernetes' HPA treats 0 as "autoscaling off") unless configured to be restored.

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::controller::{
    CheckSource, Instruction, LoopEvent, OnZeroOutside, ServiceLoop, TokioClock,
};
use autoscale_core::engine::{Pause, PausedBy, RuntimePause};
use autoscale_core::policy::{TargetForm, TargetPolicy};
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use autoscale_core::{
    Check, Engine, EngineConfig, EngineState, Observation, ReplicaStatus, Timestamp, Token,
};

fn service(scaler: &RecordingScaler, value: f64, on_zero: OnZeroOutside) -> ServiceLoop {
    let cpu = Check::new(
        "cpu",
        Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
    );
    let source = ScriptedSource::constant("cpu", value);
    ServiceLoop::builder(
        "web",
        EngineConfig::builder(2, 10),
        Arc::new(scaler.clone()),
    )
    .check(cpu, CheckSource::new(Arc::new(source), "cpu"))
    .on_zero_outside(on_zero)
    .clock(Arc::new(TokioClock::starting_at(Timestamp::from_secs(
        1_000_000,
    ))))
    .build()
    .unwrap()
}

fn status(current: u32) -> ReplicaStatus {
    ReplicaStatus {
        current,
        ready: current,
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_taken_to_zero_outside_is_left_alone_until_it_is_back_above_zero() {
    let scaler = RecordingScaler::new(3);
    // At the target: nothing to do at first.
    let mut svc = service(&scaler, 0.5, OnZeroOutside::Pause);
    svc.evaluate_once().await;
    assert_eq!(svc.state().pause, None);

    scaler.set_outside(status(0));
    let round = svc.evaluate_once().await;
    assert_eq!(round.outside_change, Some((3, 0)));
    let pause = svc.state().pause.expect("paused by hand");
    assert_eq!(
        (pause.directions, pause.by),
        (Pause::All, PausedBy::ZeroOutside)
    );
    assert_eq!(round.decision.as_ref().unwrap().reason.token, Token::Paused);
    assert_eq!(round.decision.unwrap().desired, 0, "left at 0");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let round = svc.evaluate_once().await;
        assert_eq!(round.decision.unwrap().desired, 0);
    }
    assert_eq!(scaler.scale_calls(), Vec::<u32>::new(), "no scale call");

    // Brought back above 0 outside: autoscaling resumes at once, from the count found.
    scaler.set_outside(status(1));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let round = svc.evaluate_once().await;
    assert_eq!(svc.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 2, "raised to min_replicas");
    assert_eq!(scaler.scale_calls(), [2]);
}

#[tokio::test(start_paused = true)]
async fn resume_lifts_a_pause_by_hand_and_the_service_is_raised_to_min() {
    let scaler = RecordingScaler::new(3);
    let mut svc = service(&scaler, 0.5, OnZeroOutside::Pause);
    svc.evaluate_once().await;
    scaler.set_outside(status(0));
    svc.evaluate_once().await;
    assert!(svc.state().pause.is_some());

    let lifted = svc.resume().expect("the pause by hand");
    assert_eq!(lifted.by, PausedBy::ZeroOutside);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let round = svc.evaluate_once().await;
    assert_eq!(round.decision.unwrap().reason.token, Token::OutOfRangeMin);
    assert_eq!(scaler.scale_calls(), [2]);
}

#[tokio::test(start_paused = true)]
async fn with_restore_a_service_taken_to_zero_is_raised_to_min_as_before() {
    let scaler = RecordingScaler::new(3);
    let mut svc = service(&scaler, 0.5, OnZeroOutside::Restore);
    svc.evaluate_once().await;
    scaler.set_outside(status(0));
    let round = svc.evaluate_once().await;
    assert_eq!(svc.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 2);
    assert_eq!(scaler.scale_calls(), [2]);
}

#[tokio::test(start_paused = true)]
async fn a_service_never_started_is_raised_to_min() {
    let scaler = RecordingScaler::new(0);
    let mut svc = service(&scaler, 1.0, OnZeroOutside::Pause);
    let round = svc.evaluate_once().await;
    assert_eq!(round.outside_change, None);
    assert_eq!(svc.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 2);
    assert_eq!(scaler.scale_calls(), [2]);
}

#[tokio::test(start_paused = true)]
async fn an_operators_pause_holds_one_direction_and_survives_a_rebuild_from_the_state() {
    let scaler = RecordingScaler::new(2);
    // 4 replicas' worth of load.
    let mut svc = service(&scaler, 1.0, OnZeroOutside::Pause);
    assert_eq!(svc.pause(Pause::Up), None);
    let round = svc.evaluate_once().await;
    assert_eq!(round.decision.unwrap().reason.token, Token::Paused);
    assert_eq!(scaler.scale_calls(), Vec::<u32>::new());

    // The state is what a restart starts from.
    let state = svc.into_state();
    assert_eq!(
        state.pause.map(|p| (p.directions, p.by)),
        Some((Pause::Up, PausedBy::Operator))
    );
    let json = serde_json::to_string(&state).unwrap();
    let back: EngineState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);

    let mut svc = ServiceLoop::builder(
        "web",
        EngineConfig::builder(2, 10),
        Arc::new(scaler.clone()),
    )
    .check(
        Check::new(
            "cpu",
            Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
        ),
        CheckSource::new(Arc::new(ScriptedSource::constant("cpu", 1.0)), "cpu"),
    )
    .state(back)
    .build()
    .unwrap();
    let round = svc.evaluate_once().await;
    assert_eq!(round.decision.unwrap().reason.token, Token::Paused);
    assert!(svc.resume().is_some());
    let round = svc.evaluate_once().await;
    assert_eq!(round.decision.unwrap().desired, 4);
    assert_eq!(scaler.scale_calls(), [4]);
}

#[test]
fn a_runtime_pause_replaces_the_configured_one() {
    let config = |pause| {
        EngineConfig::builder(1, 10)
            .check(Check::new(
                "cpu",
                Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
            ))
            .pause(pause)
            .build()
            .unwrap()
    };
    let at = Timestamp::from_secs(1_000);
    let runtime = |directions| EngineState {
        pause: Some(RuntimePause {
            directions,
            by: PausedBy::Operator,
            since: at,
        }),
        ..EngineState::default()
    };
    let up = [Observation::Value(1.0)];
    // Configured to pause everything, paused at run time only downwards: the scale-up goes through.
    let engine = Engine::new(config(Pause::All));
    let (d, _) = engine.evaluate(runtime(Pause::Down), status(2), &up, at);
    assert_eq!(d.desired, 4);
    assert_eq!(engine.effective_pause(&runtime(Pause::Down)), Pause::Down);
    // Without a run-time pause, the configured one holds.
    let (d, _) = engine.evaluate(EngineState::default(), status(2), &up, at);
    assert_eq!((d.desired, d.reason.token), (2, Token::Paused));
    // Configured to run, paused at run time.
    let engine = Engine::new(config(Pause::None));
    let (d, _) = engine.evaluate(runtime(Pause::Up), status(2), &up, at);
    assert_eq!((d.desired, d.reason.token), (2, Token::Paused));
}

#[tokio::test(start_paused = true)]
async fn instructions_reach_a_running_loop_between_rounds_and_are_reported() {
    let scaler = RecordingScaler::new(2);
    let svc = service(&scaler, 1.0, OnZeroOutside::Pause);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let task = tokio::spawn(svc.run_instructed(shutdown, rx, move |event, state| {
        let line = match event {
            LoopEvent::Round(r) => format!("round {}", r.decision.as_ref().unwrap().desired),
            LoopEvent::Paused(before, after) => format!(
                "paused {:?} -> {:?} (state {:?})",
                before.map(|p| p.directions),
                after.map(|p| p.directions),
                state.pause.map(|p| p.directions)
            ),
            LoopEvent::Observed(o) => format!("observed {}", o.status.current),
        };
        seen.lock().unwrap().push(line);
    }));
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(Instruction::Pause(Pause::All, reply))
        .await
        .unwrap();
    let now = answer.await.unwrap().unwrap();
    assert_eq!((now.directions, now.by), (Pause::All, PausedBy::Operator));
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(scaler.scale_calls(), Vec::<u32>::new(), "paused");

    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(Instruction::Resume(reply)).await.unwrap();
    assert_eq!(answer.await.unwrap(), None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.send(true).unwrap();
    let state = task.await.unwrap();
    assert_eq!(state.pause, None);
    assert_eq!(scaler.scale_calls(), [4]);
    let events = events.lock().unwrap().clone();
    assert_eq!(events[0], "paused None -> Some(All) (state Some(All))");
    assert!(
        events.contains(&"paused Some(All) -> None (state None)".to_owned()),
        "{events:?}"
    );
}
