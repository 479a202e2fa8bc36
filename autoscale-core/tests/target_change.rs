//! The loop reads the target's last replica change before its first round, so cooldowns hold with the
//! local state lost (a restart without state, a failover to another host).

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::controller::{
    CheckSource, ScaleResult, ServiceLoop, ServiceLoopBuilder, TokioClock,
};
use autoscale_core::engine::{Rule, ScalingRules, Select};
use autoscale_core::policy::{TargetForm, TargetPolicy};
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use autoscale_core::{Behavior, Check, EngineConfig, ReplicaChange, Timestamp, Token};

const START: Timestamp = Timestamp::from_secs(1_000_000);

/// 6 replicas at 10 % of a 50 % target want 2; no stabilization window, a 60 s scale-down cooldown.
fn builder(scaler: &RecordingScaler) -> ServiceLoopBuilder {
    let rules = |r: Rule| ScalingRules::new(Duration::ZERO, Select::Max, vec![r]).unwrap();
    let behavior = Behavior {
        scale_up: rules(Rule::percent(100, Duration::from_secs(15)).unwrap()),
        scale_down: rules(Rule::percent(100, Duration::from_secs(15)).unwrap()),
    };
    let check = Check::new(
        "cpu",
        Arc::new(TargetPolicy::new(0.5, TargetForm::PerReplica).unwrap()),
    );
    let config = EngineConfig::builder(1, 10)
        .behavior(behavior)
        .cooldown_down(Duration::from_secs(60));
    ServiceLoop::builder("web", config, Arc::new(scaler.clone()))
        .check(
            check,
            CheckSource::new(Arc::new(ScriptedSource::constant("cpu", 0.1)), "cpu"),
        )
        .clock(Arc::new(TokioClock::starting_at(START)))
}

fn service(scaler: &RecordingScaler) -> ServiceLoop {
    builder(scaler).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_fresh_loop_honours_the_cooldown_of_a_change_it_has_no_record_of() {
    let scaler = RecordingScaler::new(6);
    // Someone (an earlier leader, an operator) scaled 3 -> 6 twenty seconds ago.
    scaler.set_last_change(Some(ReplicaChange {
        at: START - Duration::from_secs(20),
        from: 3,
        to: 6,
    }));
    let mut svc = service(&scaler);
    let round = svc.evaluate_once().await;
    let decision = round.decision.unwrap();
    assert_eq!(decision.reason.token, Token::Cooldown, "{decision:?}");
    assert_eq!(
        decision.reason.cooldown.map(|c| c.remaining),
        Some(Duration::from_secs(40))
    );
    assert_eq!(round.scale, ScaleResult::NotNeeded);
    assert_eq!(
        svc.state().last_scale_at,
        Some(START - Duration::from_secs(20))
    );

    tokio::time::sleep(Duration::from_secs(39)).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::NotNeeded);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![2]);
    assert_eq!(
        scaler.last_change_calls(),
        1,
        "read once, before the first round"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_record_in_the_target_the_loop_acts_at_once() {
    let scaler = RecordingScaler::new(6);
    let mut svc = service(&scaler);
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn the_loops_own_action_read_back_from_the_target_is_not_counted_twice() {
    let scaler = RecordingScaler::new(6);
    let mut svc = service(&scaler);
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    // The target stamps the action a little after the round that made it.
    scaler.set_last_change(Some(ReplicaChange {
        at: START + Duration::from_millis(150),
        from: 6,
        to: 2,
    }));
    svc.reread_target();
    tokio::time::sleep(Duration::from_secs(10)).await;
    svc.evaluate_once().await;
    assert_eq!(scaler.last_change_calls(), 2);
    assert_eq!(svc.state().scale_events.len(), 1);
    assert_eq!(svc.state().last_scale_at, Some(START));
}

#[tokio::test(start_paused = true)]
async fn a_state_that_knows_a_later_action_keeps_it() {
    let scaler = RecordingScaler::new(6);
    scaler.set_last_change(Some(ReplicaChange {
        at: START - Duration::from_secs(500),
        from: 3,
        to: 6,
    }));
    let mut state = autoscale_core::EngineState::default();
    state.record_scale(START - Duration::from_secs(100), 4, 6);
    let mut svc = builder(&scaler).state(state).build().unwrap();
    // The cooldown from the state's action (100 s ago) is over; the older change in the target adds nothing.
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(svc.state().last_scale_at, Some(START));
    assert_eq!(svc.state().scale_events.len(), 1, "only the new action");
}

#[tokio::test(start_paused = true)]
async fn a_follower_decides_without_scaling_and_a_new_leader_rereads_the_target() {
    use autoscale_core::lease::LeaseStatus;

    let scaler = RecordingScaler::new(6);
    let (leadership, status) = tokio::sync::watch::channel(LeaseStatus::default());
    let mut svc = builder(&scaler).leadership(status).build().unwrap();
    // A follower: the decision is made and reported, nothing is scaled.
    let round = svc.evaluate_once().await;
    assert_eq!(round.decision.map(|d| d.desired), Some(2));
    assert_eq!(round.scale, ScaleResult::DryRun);
    assert!(scaler.scale_calls().is_empty());
    assert_eq!(scaler.last_change_calls(), 1);
    // Meanwhile the leader scaled 6 -> 4; this one takes over: it reads that first, and its cooldown holds.
    scaler.set_outside(autoscale_core::ReplicaStatus::all_ready(4));
    scaler.set_last_change(Some(ReplicaChange {
        at: START + Duration::from_secs(5),
        from: 6,
        to: 4,
    }));
    tokio::time::sleep(Duration::from_secs(10)).await;
    leadership.send_modify(|s| s.leader = true);
    let round = svc.evaluate_once().await;
    assert_eq!(scaler.last_change_calls(), 2);
    assert_eq!(
        round.outside_change, None,
        "known from the target, at its time"
    );
    assert_eq!(
        round.decision.map(|d| d.reason.token),
        Some(Token::Cooldown)
    );
    assert_eq!(round.scale, ScaleResult::NotNeeded);
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::Scaled);
    assert_eq!(scaler.scale_calls(), vec![1]);
    // Leadership lost: back to deciding only.
    leadership.send_modify(|s| s.leader = false);
    scaler.set_outside(autoscale_core::ReplicaStatus::all_ready(6));
    tokio::time::sleep(Duration::from_secs(10)).await;
    svc.evaluate_once().await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(svc.evaluate_once().await.scale, ScaleResult::DryRun);
    assert_eq!(scaler.scale_calls(), vec![1]);
}
