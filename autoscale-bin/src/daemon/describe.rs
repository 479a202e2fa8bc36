//! One service's [`ServiceReport`] from what the daemon keeps of it: its configuration, its last round, its
//! pause, its last error. The conditions follow `kubectl describe hpa`: a type, a status, a CamelCase reason
//! and a sentence.

use std::time::Duration;

use autoscale_core::controller::{Round, ScaleResult};
use autoscale_core::engine::{Limit, Pause, PausedBy, RuntimePause};
use autoscale_core::{Decision, Timestamp, Token};

use crate::daemon::history::Entry;
use crate::daemon::report::{
    CheckReport, Condition, CooldownRemaining, EvaluatedCheck, Evaluation, PauseReport,
    ServiceReport,
};
use crate::daemon::shared::{ServiceSpec, ServiceView, rfc3339};

/// The report of the service `name`, as of `now`.
pub(super) fn service(
    name: &str,
    view: &ServiceView,
    history: Vec<Entry>,
    now: Timestamp,
) -> ServiceReport {
    let round = view.last.as_ref();
    let decision = round.and_then(|r| r.decision.as_ref());
    let (cooldown_up, cooldown_down) = view.cooldowns();
    let remaining = |cooldown: Duration| {
        view.last_scale_at()
            .map(|t| {
                cooldown
                    .saturating_sub(now.saturating_since(t))
                    .as_secs_f64()
            })
            .unwrap_or(0.0)
    };
    let cooldown = CooldownRemaining {
        up: remaining(cooldown_up),
        down: remaining(cooldown_down),
        blocking: round
            .and_then(|r| blocking_cooldown(r, now))
            .map(|d| d.as_secs_f64()),
    };
    let paused = pause_report(view.pause, view.spec.pause);
    let checks = checks(&view.spec, round);
    let mut report = ServiceReport {
        service: name.to_owned(),
        min_replicas: view.spec.min_replicas,
        max_replicas: view.spec.max_replicas,
        current: view.latest_status().map(|s| s.current),
        ready: view.latest_status().map(|s| s.ready),
        desired: decision.map(|d| d.desired),
        dry_run: view.dry_run(),
        interval_s: view.interval.as_secs_f64(),
        on_zero_outside: view.spec.on_zero_outside.as_str().to_owned(),
        cooldown_remaining_s: cooldown,
        paused,
        checks,
        conditions: Vec::new(),
        last_error: view.last_error.clone(),
        last_evaluation: round.map(evaluation),
        scale_backoff: view.backoff(),
        not_ready: view.health.problems(name),
        history,
    };
    report.conditions = conditions(name, &view.spec, view.pause, round, &report, now);
    report
}

/// The cooldown that blocked the round's decision, counted down to `now`: the engine's own remaining time,
/// less what has passed since.
fn blocking_cooldown(round: &Round, now: Timestamp) -> Option<Duration> {
    let cooldown = round.decision.as_ref()?.reason.cooldown?;
    Some(
        cooldown
            .remaining
            .saturating_sub(now.saturating_since(round.at)),
    )
}

fn pause_report(pause: Option<RuntimePause>, configured: Pause) -> Option<PauseReport> {
    match pause {
        Some(p) => Some(PauseReport {
            directions: p.directions.as_str().to_owned(),
            by: p.by.as_str().to_owned(),
            since: Some(rfc3339(p.since)),
        }),
        None if configured != Pause::None => Some(PauseReport {
            directions: configured.as_str().to_owned(),
            by: "config".to_owned(),
            since: None,
        }),
        None => None,
    }
}

/// Each configured check with its reading in `round`.
fn checks(spec: &ServiceSpec, round: Option<&Round>) -> Vec<CheckReport> {
    let decision = round.and_then(|r| r.decision.as_ref());
    spec.checks
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let mut check = check.clone();
            let reading = round.and_then(|r| r.checks.iter().find(|c| c.name == check.name));
            if let Some(reading) = reading {
                match &reading.result {
                    Ok(v) => check.value = Some(*v),
                    Err((kind, message)) => check.error = Some(failure(kind.as_str(), message)),
                }
                check.recommendation = reading.recommendation;
            }
            check.forecast = decision
                .filter(|d| d.reason.check == Some(i))
                .and_then(|d| d.reason.forecast);
            check
        })
        .collect()
}

/// `kind: message`, or the kind alone when the message says no more.
fn failure(kind: &str, message: &str) -> String {
    if message.is_empty() || message == kind {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

fn evaluation(round: &Round) -> Evaluation {
    let status = round.status.as_ref().ok();
    let decision = round.decision.as_ref();
    Evaluation {
        at: rfc3339(round.at),
        current: status.map(|s| s.current),
        ready: status.map(|s| s.ready),
        desired: decision.map(|d| d.desired),
        token: decision.map(|d| d.reason.token.as_str().to_owned()),
        reason: decision.map(|d| d.reason.to_string()),
        forecast: decision.and_then(|d| d.reason.forecast),
        status_error: round.status.as_ref().err().map(|(_, m)| m.clone()),
        checks: round
            .checks
            .iter()
            .map(|c| EvaluatedCheck {
                name: c.name.clone(),
                value: c.result.as_ref().ok().copied(),
                error: c.result.as_ref().err().map(|(k, _)| k.as_str().to_owned()),
                message: c.result.as_ref().err().map(|(_, m)| m.clone()),
                recommendation: c.recommendation,
            })
            .collect(),
        scale: round.scale.as_str().to_owned(),
        happened: happened(round),
        duration_ms: round.duration.as_secs_f64() * 1000.0,
    }
}

/// What the round did, in words: what the table's LAST column shows.
pub(super) fn happened(round: &Round) -> String {
    if round.status.is_err() {
        return "status read failed".to_owned();
    }
    let Some(d) = round.decision.as_ref() else {
        return "no decision".to_owned();
    };
    match &round.scale {
        ScaleResult::Scaled => format!("scaled {} -> {}", d.current, d.desired),
        ScaleResult::Unchanged => format!("already at {}", d.desired),
        ScaleResult::DryRun => format!("would scale {} -> {} (dry run)", d.current, d.desired),
        ScaleResult::Failed { .. } => format!("scale {} -> {} failed", d.current, d.desired),
        ScaleResult::BackingOff => "backing off after failed scale calls".to_owned(),
        ScaleResult::NotNeeded => held(d),
    }
}

/// Why a decision kept the count.
fn held(d: &Decision) -> String {
    let wanted = d.reason.recommended.filter(|&r| r != d.current);
    let blocked = |by: &str| match wanted {
        Some(r) => format!("{by} (wanted {r})"),
        None => by.to_owned(),
    };
    match d.reason.token {
        Token::Cooldown => blocked("blocked by cooldown"),
        Token::Paused => blocked("held by pause"),
        Token::RateLimited => blocked("held by rate rule"),
        Token::Stabilized => blocked("held by stabilization"),
        Token::Deadband => blocked("held by dead-band"),
        Token::PartialData => blocked("held: some checks failed"),
        Token::Activation => blocked("held by activation"),
        Token::MaxReplicas => blocked("at max_replicas"),
        Token::MinReplicas => blocked("at min_replicas"),
        Token::NoData => "no data: held".to_owned(),
        Token::Fallback => "fallback: no change".to_owned(),
        _ => "no change needed".to_owned(),
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.into(),
    }
}

fn conditions(
    name: &str,
    spec: &ServiceSpec,
    pause: Option<RuntimePause>,
    round: Option<&Round>,
    report: &ServiceReport,
    now: Timestamp,
) -> Vec<Condition> {
    let decision = round.and_then(|r| r.decision.as_ref());
    vec![
        able_to_scale(round, report, now),
        scaling_active(spec, pause, round),
        scaling_limited(spec, round),
        paused(name, pause, spec.pause),
        fallback(spec, decision),
        in_cooldown(decision, report),
    ]
}

fn able_to_scale(round: Option<&Round>, report: &ServiceReport, now: Timestamp) -> Condition {
    const KIND: &str = "AbleToScale";
    let Some(round) = round else {
        return condition(KIND, false, "NotEvaluatedYet", "no round has completed yet");
    };
    if let Err((_, message)) = &round.status {
        return condition(
            KIND,
            false,
            "FailedGetScale",
            format!("the status read failed: {message}"),
        );
    }
    if let Some(b) = round.backoff.filter(|b| b.retry_at > now) {
        return condition(
            KIND,
            false,
            "BackoffScaleFailures",
            format!(
                "{} scale calls failed in a row; the next attempt waits until {}",
                b.consecutive_failures,
                rfc3339(b.retry_at)
            ),
        );
    }
    let d = round.decision.as_ref();
    match (&round.scale, d) {
        (ScaleResult::Failed { message, .. }, _) => condition(
            KIND,
            false,
            "FailedUpdateScale",
            format!("the scale call failed: {message}"),
        ),
        (ScaleResult::Scaled | ScaleResult::Unchanged, Some(d)) => condition(
            KIND,
            true,
            "SucceededRescale",
            format!("the scaler set the count to {}", d.desired),
        ),
        (ScaleResult::DryRun, Some(d)) => condition(
            KIND,
            true,
            "DryRun",
            format!(
                "would scale from {} to {}; a dry run calls no scaler",
                d.current, d.desired
            ),
        ),
        _ if report.dry_run => condition(KIND, true, "DryRun", "decisions are only logged"),
        _ => condition(KIND, true, "ReadyForNewScale", "the service can be scaled"),
    }
}

fn scaling_active(
    spec: &ServiceSpec,
    pause: Option<RuntimePause>,
    round: Option<&Round>,
) -> Condition {
    const KIND: &str = "ScalingActive";
    let Some(round) = round else {
        return condition(KIND, false, "NotEvaluatedYet", "no round has completed yet");
    };
    if round.status.is_err() {
        return condition(
            KIND,
            false,
            "FailedGetScale",
            "the replica count could not be read",
        );
    }
    let directions = pause.map_or(spec.pause, |p| p.directions);
    if directions == Pause::All {
        return condition(
            KIND,
            false,
            "ScalingDisabled",
            "the service is paused in both directions",
        );
    }
    let failed: Vec<String> = round
        .checks
        .iter()
        .filter_map(|c| {
            c.result
                .as_ref()
                .err()
                .map(|(k, m)| format!("{} ({})", c.name, failure(k.as_str(), m)))
        })
        .collect();
    if !round.checks.is_empty() && failed.len() == round.checks.len() {
        return condition(
            KIND,
            false,
            "FailedGetMetrics",
            format!("every check failed: {}", failed.join("; ")),
        );
    }
    if !failed.is_empty() {
        return condition(
            KIND,
            true,
            "PartialMetrics",
            format!(
                "deciding from the other checks; failed: {}",
                failed.join("; ")
            ),
        );
    }
    let winner = round
        .decision
        .as_ref()
        .and_then(|d| d.reason.check)
        .and_then(|i| round.checks.get(i));
    match winner {
        Some(c) => condition(
            KIND,
            true,
            "ValidMetricFound",
            format!("the recommendation comes from check {}", c.name),
        ),
        None => condition(KIND, true, "ValidMetricFound", "every check has a value"),
    }
}

fn scaling_limited(spec: &ServiceSpec, round: Option<&Round>) -> Condition {
    const KIND: &str = "ScalingLimited";
    let reason = round.and_then(|r| r.decision.as_ref()).map(|d| &d.reason);
    if let Some((limit, c)) = reason.and_then(|r| r.limited) {
        return match limit {
            Limit::MaxReplicas => condition(
                KIND,
                true,
                "TooManyReplicas",
                format!(
                    "the desired count {} is above max_replicas: held at {}",
                    c.from, spec.max_replicas
                ),
            ),
            Limit::MinReplicas => condition(
                KIND,
                true,
                "TooFewReplicas",
                format!(
                    "the desired count {} is below min_replicas: held at {}",
                    c.from, spec.min_replicas
                ),
            ),
            Limit::RateLimited if c.from > c.to => condition(
                KIND,
                true,
                "ScaleUpLimit",
                format!("a scale-up rate rule limited {} to {}", c.from, c.to),
            ),
            Limit::RateLimited => condition(
                KIND,
                true,
                "ScaleDownLimit",
                format!("a scale-down rate rule limited {} to {}", c.from, c.to),
            ),
        };
    }
    if let Some(c) = reason.and_then(|r| r.out_of_range) {
        let (why, word) = if c.to > c.from {
            ("TooFewReplicas", "below min_replicas")
        } else {
            ("TooManyReplicas", "above max_replicas")
        };
        let then = if reason.is_some_and(|r| r.paused.is_some()) {
            "the pause keeps it there".to_owned()
        } else {
            format!("brought to {}", c.to)
        };
        return condition(
            KIND,
            true,
            why,
            format!("the current count {} is {word} {}: {then}", c.from, c.to),
        );
    }
    condition(
        KIND,
        false,
        "DesiredWithinRange",
        format!(
            "the desired count is within min_replicas {} and max_replicas {} and the rate rules",
            spec.min_replicas, spec.max_replicas
        ),
    )
}

fn paused(name: &str, pause: Option<RuntimePause>, configured: Pause) -> Condition {
    const KIND: &str = "Paused";
    match pause {
        Some(p) if p.by == PausedBy::ZeroOutside => condition(
            KIND,
            true,
            "ZeroReplicasOutside",
            format!(
                "taken to 0 replicas outside autoscale at {}: left alone until it is scaled above 0, or \
                 `autoscale resume {name}`",
                rfc3339(p.since)
            ),
        ),
        Some(p) => condition(
            KIND,
            true,
            "PausedByOperator",
            format!(
                "{} paused since {} by `autoscale pause`; `autoscale resume {name}` lifts it",
                directions_text(p.directions),
                rfc3339(p.since)
            ),
        ),
        None if configured != Pause::None => condition(
            KIND,
            true,
            "PausedByConfig",
            format!(
                "{} paused by the configuration (paused = \"{}\")",
                directions_text(configured),
                configured.as_str()
            ),
        ),
        None => condition(KIND, false, "NotPaused", "scaling in both directions"),
    }
}

fn directions_text(pause: Pause) -> &'static str {
    match pause {
        Pause::All => "scaling",
        Pause::Up => "scaling up",
        Pause::Down => "scaling down",
        Pause::None => "nothing",
    }
}

fn fallback(spec: &ServiceSpec, decision: Option<&Decision>) -> Condition {
    const KIND: &str = "Fallback";
    if let Some((failures, c)) = decision.and_then(|d| d.reason.fallback) {
        return condition(
            KIND,
            true,
            "FallbackActive",
            format!(
                "every check failed {failures} rounds in a row: the fallback set {} -> {}",
                c.from, c.to
            ),
        );
    }
    let no_data = decision.is_some_and(|d| d.reason.token == Token::NoData);
    match spec.fallback {
        Some(f) if no_data => condition(
            KIND,
            false,
            "FallbackPending",
            format!(
                "every check failed: the count is held; the fallback ({} replicas) applies after {} failed rounds",
                f.replicas(),
                f.after()
            ),
        ),
        Some(f) => condition(
            KIND,
            false,
            "MetricsAvailable",
            format!(
                "the fallback ({} replicas) applies after {} rounds in which every check failed",
                f.replicas(),
                f.after()
            ),
        ),
        None if no_data => condition(
            KIND,
            false,
            "NoFallback",
            "every check failed: the count is held (no fallback is configured)",
        ),
        None => condition(KIND, false, "NoFallback", "no fallback is configured"),
    }
}

fn in_cooldown(decision: Option<&Decision>, report: &ServiceReport) -> Condition {
    const KIND: &str = "InCooldown";
    let remaining = report.cooldown_remaining_s.blocking;
    match (
        decision.and_then(|d| d.reason.cooldown.map(|c| (d.current, c))),
        remaining,
    ) {
        (Some((current, c)), Some(left)) if left > 0.0 => {
            let (reason, what) = if c.blocked > current {
                ("CooldownUp", "scale-up")
            } else {
                ("CooldownDown", "scale-down")
            };
            condition(
                KIND,
                true,
                reason,
                format!(
                    "a {what} to {} is blocked for {} more",
                    c.blocked,
                    seconds(left)
                ),
            )
        }
        (Some((_, c)), _) => condition(
            KIND,
            false,
            "CooldownEnded",
            format!(
                "the cooldown that blocked a change to {} has ended",
                c.blocked
            ),
        ),
        (None, _) => condition(
            KIND,
            false,
            "NoCooldown",
            "no change is waiting for a cooldown",
        ),
    }
}

/// Whole seconds, rounded up: a cooldown of 0.2 s left is "1s", never "0s".
pub(crate) fn seconds(s: f64) -> String {
    format!("{}s", s.max(0.0).ceil())
}

#[cfg(test)]
mod tests {
    //! The `status` table of one service in each state a person must recognise, built in memory from real
    //! rounds: a configuration, a loop over fakes on tokio's paused clock, the daemon's accounting of each
    //! round, the report, and the command's rendering of it.

    use std::sync::Arc;

    use autoscale_core::controller::{CheckSource, ServiceLoop, TokioClock};
    use autoscale_core::testing::{RecordingScaler, ScriptedSource};
    use autoscale_core::{EngineState, Error, FailureKind, MetricSource, ReplicaStatus};

    use super::*;
    use crate::commands::status::render;
    use crate::config::{Config, Env, LoadOptions};
    use crate::daemon::Shared;
    use crate::daemon::health::PersistHealth;
    use crate::daemon::history::History;
    use crate::daemon::metrics::Metrics;
    use crate::daemon::report::StatusReport;

    const T0: i64 = 1_800_000_000;

    /// A metric source that fails as Prometheus does when nothing listens, with the client's message.
    #[derive(Debug)]
    struct Refused;

    #[async_trait::async_trait]
    impl MetricSource for Refused {
        async fn fetch(&self, query: &str, _at: Timestamp) -> autoscale_core::Result<f64> {
            Err(Error::Unavailable {
                backend: "prometheus",
                source: format!(
                    "query {query:?} at http://prometheus:9090/api/v1/query: error sending request: \
                     tcp connect error: Connection refused (os error 111)"
                )
                .into(),
            })
        }
    }

    struct Bench {
        shared: Shared,
        service: ServiceLoop,
        scaler: RecordingScaler,
        source: ScriptedSource,
        clock: TokioClock,
        previous: EngineState,
        /// What the state writer was asked to write.
        persisted: std::sync::mpsc::Receiver<crate::daemon::shared::Persist>,
        _dir: tempfile::TempDir,
    }

    impl Bench {
        /// Service `web` with `extra` keys, at `replicas`, its check `cpu` (with `policy`) reading `value`,
        /// and `rps` from `rps` when given.
        fn new(
            policy: &str,
            extra: &str,
            replicas: u32,
            value: f64,
            rps: Option<Arc<dyn MetricSource>>,
        ) -> Bench {
            let toml = format!(
                r#"
[prometheus]
url = "http://127.0.0.1:9090"

[[service]]
name = "web"
min_replicas = 1
max_replicas = 4
cooldown_up = "1m"
cooldown_down = "5m"
{extra}
scaler = {{ kind = "compose" }}

[[service.check]]
name = "cpu"
query = "cpu"
policy = {{POLICY}}
"#
            );
            let toml = toml.replace("{POLICY}", policy);
            let mut toml = toml;
            if rps.is_some() {
                toml.push_str(
                    "\n[[service.check]]\nname = \"rps\"\nquery = \"sum(rate(http_requests_total[1m]))\"\n\
                     policy = { kind = \"threshold\", scale_up_above = 100, scale_down_below = 20 }\n",
                );
            }
            let config = Config::from_toml(
                "t.toml",
                &toml,
                &Env::empty(),
                LoadOptions { url_optional: true },
            )
            .unwrap();
            let service = &config.services[0];
            let dir = tempfile::tempdir().unwrap();
            let metrics = Metrics::new();
            let health = Arc::new(PersistHealth::new(metrics.persist_errors()));
            let (persist, persisted) = std::sync::mpsc::channel();
            let shared = Shared::new(
                metrics,
                History::open(dir.path(), 1 << 20).unwrap(),
                persist,
                health,
            );
            let scaler = RecordingScaler::new(replicas);
            let source = ScriptedSource::constant("cpu", value);
            let clock = TokioClock::starting_at(Timestamp::from_secs(T0));
            let mut builder = ServiceLoop::builder(
                "web",
                service.engine.builder_without_checks(),
                Arc::new(scaler.clone()),
            )
            .interval(service.interval)
            .on_zero_outside(service.on_zero_outside)
            .clock(Arc::new(clock));
            builder = builder.check(
                service.checks[0].engine.clone(),
                CheckSource::new(Arc::new(source.clone()), "cpu"),
            );
            if let Some(rps) = rps {
                builder = builder.check(
                    service.checks[1].engine.clone(),
                    CheckSource::new(rps, &service.checks[1].query),
                );
            }
            let service_loop = builder.build().unwrap();
            shared.register(
                service,
                false,
                service_loop.state(),
                Duration::from_secs(60),
                tokio::sync::mpsc::channel(1).0,
            );
            Bench {
                shared,
                previous: service_loop.state().clone(),
                service: service_loop,
                scaler,
                source,
                clock,
                persisted,
                _dir: dir,
            }
        }

        /// A status read between rounds, accounted for as the daemon does.
        async fn observe(&mut self) -> Option<autoscale_core::controller::StatusObservation> {
            let observation = self.service.observe_status().await?;
            self.shared
                .on_observed(&observation, self.service.state(), &mut self.previous);
            Some(observation)
        }

        /// The services whose state was handed to the writer since the last call.
        fn saved(&self) -> Vec<String> {
            self.persisted
                .try_iter()
                .filter_map(|p| match p {
                    crate::daemon::shared::Persist::Save(service, _) => Some(service),
                    crate::daemon::shared::Persist::Flush(_) => None,
                })
                .collect()
        }

        /// `n` rounds, `every` apart.
        async fn rounds(&mut self, n: usize, every: Duration) {
            for _ in 0..n {
                let round = self.service.evaluate_once().await;
                self.shared
                    .on_round(&round, self.service.state(), &mut self.previous);
                tokio::time::sleep(every).await;
            }
        }

        fn report(&self) -> StatusReport {
            use autoscale_core::controller::Clock as _;
            self.shared.report(self.clock.now())
        }

        fn table(&self) -> String {
            render(&self.report())
        }
    }

    const TEN: Duration = Duration::from_secs(10);
    const TARGET: &str = r#"{ kind = "target", target = 0.5 }"#;

    #[tokio::test(start_paused = true)]
    async fn a_rate_rule_shows_as_a_scale_up_limit() {
        let mut bench = Bench::new(
            TARGET,
            "behavior.scale_up = { rules = [{ pods = 1, period = \"1m\" }] }",
            1,
            2.0,
            None,
        );
        bench.rounds(1, TEN).await;
        let report = bench.report();
        let limited = report.services[0].condition("ScalingLimited").unwrap();
        assert_eq!(
            (limited.status, limited.reason.as_str()),
            (true, "ScaleUpLimit")
        );
        assert_eq!(limited.message, "a scale-up rate rule limited 4 to 2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_predictive_check_shows_its_forecast() {
        let mut bench = Bench::new(
            r#"{ kind = "predictive", target = 0.5, window = "15m", z = 1.5 }"#,
            "",
            2,
            1.0,
            None,
        );
        bench.rounds(3, TEN).await;
        let report = bench.report();
        let check = &report.services[0].checks[0];
        assert_eq!(check.policy, "predictive");
        let forecast = check.forecast.expect("the winning check's forecast");
        let evaluation = report.services[0].last_evaluation.as_ref().unwrap();
        assert_eq!(evaluation.forecast, Some(forecast));
        let table = bench.table();
        assert!(table.contains(&format!("; forecast {forecast}")), "{table}");
    }

    #[tokio::test(start_paused = true)]
    async fn healthy() {
        let mut bench = Bench::new(TARGET, "", 1, 1.0, None);
        // 1 -> 2, then at the target for two minutes.
        bench.rounds(1, TEN).await;
        bench.source.set("cpu", Ok(0.5));
        bench.rounds(12, TEN).await;
        let report = bench.report();
        let s = &report.services[0];
        assert_eq!(s.condition("AbleToScale").map(|c| c.status), Some(true));
        assert_eq!(
            s.condition("ScalingActive").map(|c| c.reason.as_str()),
            Some("ValidMetricFound")
        );
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn in_cooldown() {
        let mut bench = Bench::new(TARGET, "", 1, 1.0, None);
        bench.rounds(1, TEN).await;
        // 4 replicas' worth, 10 s into the 1 min scale-up cooldown, then 5 s more.
        bench.source.set("cpu", Ok(1.0));
        bench.rounds(1, Duration::from_secs(5)).await;
        let report = bench.report();
        let s = &report.services[0];
        let last = s.last_evaluation.as_ref().unwrap();
        assert_eq!(last.token.as_deref(), Some("cooldown"));
        assert!(
            last.reason.as_deref().unwrap().contains("for 50.0s"),
            "{last:?}"
        );
        // What the reason said, less the 5 s since: the table and the condition say the same.
        assert_eq!(s.cooldown_remaining_s.blocking, Some(45.0));
        let condition = s.condition("InCooldown").unwrap();
        assert!(condition.status);
        assert!(condition.message.contains("for 45s more"), "{condition:?}");
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn limited_by_max() {
        let mut bench = Bench::new(TARGET, "", 4, 5.0, None);
        bench.rounds(1, TEN).await;
        let report = bench.report();
        let limited = report.services[0].condition("ScalingLimited").unwrap();
        assert_eq!(
            (limited.status, limited.reason.as_str()),
            (true, "TooManyReplicas")
        );
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn paused_by_hand() {
        let mut bench = Bench::new(TARGET, "", 2, 0.5, None);
        bench.rounds(2, TEN).await;
        bench.scaler.set_outside(ReplicaStatus {
            current: 0,
            ready: 0,
        });
        bench.rounds(3, TEN).await;
        assert!(bench.scaler.scale_calls().is_empty(), "left alone at 0");
        let report = bench.report();
        let s = &report.services[0];
        assert_eq!(
            s.paused.as_ref().map(|p| p.by.as_str()),
            Some("zero_outside")
        );
        assert_eq!(
            s.condition("Paused").map(|c| c.reason.as_str()),
            Some("ZeroReplicasOutside")
        );
        assert!(
            bench
                .shared
                .metrics
                .encode()
                .contains(r#"autoscale_paused{service="web",by="zero_outside"} 1"#),
            "{}",
            bench.shared.metrics.encode()
        );
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn fallback() {
        let mut bench = Bench::new(
            TARGET,
            "fallback = { after = 2, replicas = 3 }",
            1,
            0.5,
            None,
        );
        bench.rounds(1, TEN).await;
        bench.source.set("cpu", Err(FailureKind::Unavailable));
        bench.rounds(2, TEN).await;
        let report = bench.report();
        let fallback = report.services[0].condition("Fallback").unwrap();
        assert_eq!(
            (fallback.status, fallback.reason.as_str()),
            (true, "FallbackActive")
        );
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_check_with_its_message() {
        let mut bench = Bench::new(TARGET, "", 2, 0.5, Some(Arc::new(Refused)));
        bench.rounds(2, TEN).await;
        let report = bench.report();
        let s = &report.services[0];
        let error = s.last_error.as_ref().unwrap();
        assert_eq!(error.during, "check rps");
        assert!(
            error
                .message
                .contains("http://prometheus:9090/api/v1/query"),
            "{error:?}"
        );
        insta::assert_snapshot!(bench.table());
    }

    #[tokio::test(start_paused = true)]
    async fn an_outside_change_read_between_rounds_shows_at_once_and_is_persisted() {
        let mut bench = Bench::new(TARGET, "", 2, 1.0, None);
        bench.rounds(2, TEN).await;
        let _ = bench.saved();
        let before = bench.report();
        assert_eq!(before.services[0].current, Some(4));

        // Nothing changed: nothing to persist.
        bench.observe().await.unwrap();
        assert!(bench.saved().is_empty());

        // A container stopped by hand, then a scale by hand, each read between rounds.
        bench.scaler.set_outside(ReplicaStatus {
            current: 4,
            ready: 3,
        });
        bench.observe().await.unwrap();
        assert_eq!(bench.report().services[0].ready, Some(3));
        bench.scaler.set_outside(ReplicaStatus::all_ready(7));
        tokio::time::advance(Duration::from_secs(1)).await;
        let observation = bench.observe().await.unwrap();
        assert_eq!(observation.outside_change, Some((4, 7)));
        let report = bench.report();
        let s = &report.services[0];
        assert_eq!((s.current, s.ready), (Some(7), Some(7)));
        assert_eq!(
            s.last_evaluation.as_ref().unwrap().current,
            Some(4),
            "the round as it was"
        );
        let outside = s.history.last().unwrap();
        assert_eq!((outside.from, outside.to), (4, 7));
        assert_eq!(outside.result, "outside");
        // The scale-down cooldown counts from the change just read.
        assert_eq!(s.cooldown_remaining_s.down, 300.0);
        assert_eq!(bench.saved(), vec!["web".to_owned()]);
        assert!(
            bench
                .shared
                .metrics
                .encode()
                .contains(r#"autoscale_replicas{service="web",state="current"} 7"#),
            "{}",
            bench.shared.metrics.encode()
        );

        // Taken to 0 by hand: paused at once.
        bench.scaler.set_outside(ReplicaStatus::all_ready(0));
        bench.observe().await.unwrap();
        let report = bench.report();
        assert_eq!(
            report.services[0].paused.as_ref().map(|p| p.by.as_str()),
            Some("zero_outside")
        );
        assert_eq!(report.services[0].current, Some(0));
    }
}
