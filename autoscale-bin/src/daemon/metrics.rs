//! The daemon's own metrics, in Prometheus exposition format.

use std::sync::atomic::AtomicU64;

use autoscale_core::controller::{Round, ScaleResult};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    service: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    service: String,
    direction: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaState {
    service: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    service: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckError {
    service: String,
    check: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    evaluations: Family<Outcome, Counter>,
    actions: Family<Action, Counter>,
    duration: Histogram,
    replicas: Family<ReplicaState, Gauge>,
    check_value: Family<CheckLabels, FloatGauge>,
    check_errors: Family<CheckError, Counter>,
    last_success: Family<ServiceLabel, FloatGauge>,
    persist_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let evaluations = Family::<Outcome, Counter>::default();
        let actions = Family::<Action, Counter>::default();
        // 1 ms .. ~16 s.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let replicas = Family::<ReplicaState, Gauge>::default();
        let check_value = Family::<CheckLabels, FloatGauge>::default();
        let check_errors = Family::<CheckError, Counter>::default();
        let last_success = Family::<ServiceLabel, FloatGauge>::default();
        let persist_errors = Counter::default();
        registry.register(
            "autoscale_evaluations",
            "Evaluation rounds by outcome (ok, no_data, status_failed, scale_failed, backing_off)",
            evaluations.clone(),
        );
        registry.register(
            "autoscale_scale_actions",
            "Scaling actions by direction and result (scaled, unchanged, failed, dry_run)",
            actions.clone(),
        );
        registry.register(
            "autoscale_evaluation_duration_seconds",
            "Duration of one evaluation round, backend calls included",
            duration.clone(),
        );
        registry.register(
            "autoscale_replicas",
            "Replica counts: current and ready as read, desired as decided",
            replicas.clone(),
        );
        registry.register(
            "autoscale_check_value",
            "The last value of each check",
            check_value.clone(),
        );
        registry.register(
            "autoscale_check_errors",
            "Failed check queries by kind of failure",
            check_errors.clone(),
        );
        registry.register(
            "autoscale_last_success_timestamp_seconds",
            "Unix time of the last round that read the status and decided",
            last_success.clone(),
        );
        registry.register(
            "autoscale_state_persist_errors",
            "Engine states that could not be written to state_dir (a full or read-only disk)",
            persist_errors.clone(),
        );
        Metrics {
            registry,
            evaluations,
            actions,
            duration,
            replicas,
            check_value,
            check_errors,
            last_success,
            persist_errors,
        }
    }

    /// The counter of failed state writes, for the state writer.
    pub fn persist_errors(&self) -> Counter {
        self.persist_errors.clone()
    }

    /// Account for one round.
    pub fn record(&self, round: &Round) {
        let service = &round.service;
        self.evaluations
            .get_or_create(&Outcome {
                service: service.clone(),
                outcome: round.outcome().to_owned(),
            })
            .inc();
        self.duration.observe(round.duration.as_secs_f64());
        if let Ok(status) = round.status {
            let set = |state: &str, v: u32| {
                self.replicas
                    .get_or_create(&ReplicaState {
                        service: service.clone(),
                        state: state.to_owned(),
                    })
                    .set(i64::from(v));
            };
            set("current", status.current);
            set("ready", status.ready);
            if let Some(d) = &round.decision {
                set("desired", d.desired);
                self.last_success
                    .get_or_create(&ServiceLabel {
                        service: service.clone(),
                    })
                    .set(round.at.as_secs_f64());
            }
        }
        for check in &round.checks {
            match &check.result {
                Ok(value) => {
                    self.check_value
                        .get_or_create(&CheckLabels {
                            service: service.clone(),
                            check: check.name.clone(),
                        })
                        .set(*value);
                }
                Err((kind, _)) => {
                    self.check_errors
                        .get_or_create(&CheckError {
                            service: service.clone(),
                            check: check.name.clone(),
                            kind: kind.to_string(),
                        })
                        .inc();
                }
            }
        }
        // A round backing off called nothing: it is no action.
        let acted = !matches!(
            round.scale,
            ScaleResult::NotNeeded | ScaleResult::BackingOff
        );
        if let (Some(d), true) = (&round.decision, acted) {
            self.actions
                .get_or_create(&Action {
                    service: service.clone(),
                    direction: d.direction.to_string(),
                    result: round.scale.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use autoscale_core::controller::CheckReading;
    use autoscale_core::{Decision, Direction, FailureKind, ReplicaStatus, Timestamp};

    use super::*;

    #[test]
    fn a_round_shows_up_in_every_family() {
        let metrics = Metrics::new();
        let mut reason = autoscale_core::engine::Reason {
            token: autoscale_core::Token::ScaleUp,
            recommended: Some(4),
            check: Some(0),
            failed_checks: 1,
            out_of_range: None,
            partial_data: None,
            activation: None,
            stabilized: None,
            limited: None,
            cooldown: None,
            fallback: None,
            paused: None,
        };
        reason.recommended = Some(4);
        metrics.record(&Round {
            service: "web".into(),
            at: Timestamp::from_secs(1_700_000_000),
            status: Ok(ReplicaStatus {
                current: 2,
                ready: 1,
            }),
            outside_change: None,
            checks: vec![
                CheckReading {
                    name: "cpu".into(),
                    result: Ok(0.9),
                    recommendation: Some(4),
                },
                CheckReading {
                    name: "lat".into(),
                    result: Err((FailureKind::Timeout, "timeout".into())),
                    recommendation: None,
                },
            ],
            decision: Some(Decision {
                current: 2,
                desired: 4,
                direction: Direction::Up,
                reason,
            }),
            scale: ScaleResult::Scaled,
            duration: Duration::from_millis(12),
            backoff: None,
        });
        let text = metrics.encode();
        for needle in [
            r#"autoscale_evaluations_total{service="web",outcome="ok"} 1"#,
            r#"autoscale_scale_actions_total{service="web",direction="up",result="scaled"} 1"#,
            "autoscale_evaluation_duration_seconds_count 1",
            r#"autoscale_replicas{service="web",state="current"} 2"#,
            r#"autoscale_replicas{service="web",state="ready"} 1"#,
            r#"autoscale_replicas{service="web",state="desired"} 4"#,
            r#"autoscale_check_value{service="web",check="cpu"} 0.9"#,
            r#"autoscale_check_errors_total{service="web",check="lat",kind="timeout"} 1"#,
            r#"autoscale_last_success_timestamp_seconds{service="web"} 1700000000"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in:\n{text}");
        }
    }
}
