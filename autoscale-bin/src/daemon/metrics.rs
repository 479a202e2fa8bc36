//! The daemon's own metrics, in Prometheus exposition format.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PausedLabels {
    service: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DockerRequest {
    endpoint: String,
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A label set of one service's series.
trait OfService: Clone + Hash + Eq {
    fn service(&self) -> &str;
}

macro_rules! of_service {
    ($($ty:ty),+) => {
        $(impl OfService for $ty {
            fn service(&self) -> &str {
                &self.service
            }
        })+
    };
}
of_service!(
    Outcome,
    Action,
    ReplicaState,
    CheckLabels,
    CheckError,
    ServiceLabel,
    PausedLabels
);

/// A family that remembers the label sets it has created, so that the series of a service that is gone
/// can go too (the family itself cannot list them).
#[derive(Debug)]
struct Tracked<S, M> {
    family: Family<S, M>,
    created: Mutex<HashSet<S>>,
}

impl<S: OfService, M: Default> Tracked<S, M> {
    fn new(family: Family<S, M>) -> Self {
        Tracked {
            family,
            created: Mutex::new(HashSet::new()),
        }
    }

    fn get(&self, labels: &S) -> impl std::ops::Deref<Target = M> + '_ {
        let mut created = self
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !created.contains(labels) {
            created.insert(labels.clone());
        }
        self.family.get_or_create(labels)
    }

    /// Remove the series of every service not in `services`.
    fn retain(&self, services: &HashSet<&str>) {
        let mut created = self
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        created.retain(|labels| {
            let keep = services.contains(labels.service());
            if !keep {
                self.family.remove(labels);
            }
            keep
        });
    }
}

/// Every metric the daemon exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    evaluations: Tracked<Outcome, Counter>,
    actions: Tracked<Action, Counter>,
    duration: Histogram,
    replicas: Tracked<ReplicaState, Gauge>,
    check_value: Tracked<CheckLabels, FloatGauge>,
    check_errors: Tracked<CheckError, Counter>,
    last_success: Tracked<ServiceLabel, FloatGauge>,
    paused: Tracked<PausedLabels, Gauge>,
    persist_errors: Counter,
    docker_requests: Family<DockerRequest, Counter>,
    /// The endpoints' own counts at the last scrape, to add only what is new (an endpoint client made anew
    /// after a reload counts from 0 again).
    docker_seen: Mutex<std::collections::HashMap<DockerRequest, u64>>,
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
        let paused = Family::<PausedLabels, Gauge>::default();
        let docker_requests = Family::<DockerRequest, Counter>::default();
        registry.register(
            "autoscale_docker_api_requests",
            "Requests to each Docker endpoint's Engine API by kind: containers (compose status and discovery), \
             services and tasks (swarm status and discovery), service_updates (swarm scale actions), events (event \
             streams opened)",
            docker_requests.clone(),
        );
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
            "autoscale_paused",
            "1 while the service is paused, by whom: config (the paused key), operator (autoscale pause) or \
             zero_outside (taken to 0 replicas outside autoscale); 0 otherwise",
            paused.clone(),
        );
        registry.register(
            "autoscale_state_persist_errors",
            "Engine states that could not be written to state_dir (a full or read-only disk)",
            persist_errors.clone(),
        );
        Metrics {
            registry,
            evaluations: Tracked::new(evaluations),
            actions: Tracked::new(actions),
            duration,
            replicas: Tracked::new(replicas),
            check_value: Tracked::new(check_value),
            check_errors: Tracked::new(check_errors),
            last_success: Tracked::new(last_success),
            paused: Tracked::new(paused),
            persist_errors,
            docker_requests,
            docker_seen: Mutex::default(),
        }
    }

    /// The counter of failed state writes, for the state writer.
    pub fn persist_errors(&self) -> Counter {
        self.persist_errors.clone()
    }

    /// Drop every series of a service not in `services` (after a reload removed or renamed it).
    pub fn retain(&self, services: &[String]) {
        let keep: HashSet<&str> = services.iter().map(String::as_str).collect();
        self.evaluations.retain(&keep);
        self.actions.retain(&keep);
        self.replicas.retain(&keep);
        self.check_value.retain(&keep);
        self.check_errors.retain(&keep);
        self.last_success.retain(&keep);
        self.paused.retain(&keep);
    }

    /// Set `autoscale_paused` of `service`: 1 for the cause in force (`by`), 0 for the others.
    pub fn set_paused(&self, service: &str, by: Option<&str>) {
        for cause in ["config", "operator", "zero_outside"] {
            self.paused
                .get(&PausedLabels {
                    service: service.to_owned(),
                    by: cause.to_owned(),
                })
                .set(i64::from(by == Some(cause)));
        }
    }

    /// Account for one round.
    pub fn record(&self, round: &Round) {
        let service = &round.service;
        self.evaluations
            .get(&Outcome {
                service: service.clone(),
                outcome: round.outcome().to_owned(),
            })
            .inc();
        self.duration.observe(round.duration.as_secs_f64());
        if let Ok(status) = round.status {
            self.record_replicas(service, status);
            if let Some(d) = &round.decision {
                self.set_replicas(service, "desired", d.desired);
                self.last_success
                    .get(&ServiceLabel {
                        service: service.clone(),
                    })
                    .set(round.at.as_secs_f64());
            }
        }
        for check in &round.checks {
            match &check.result {
                Ok(value) => {
                    self.check_value
                        .get(&CheckLabels {
                            service: service.clone(),
                            check: check.name.clone(),
                        })
                        .set(*value);
                }
                Err((kind, _)) => {
                    self.check_errors
                        .get(&CheckError {
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
                .get(&Action {
                    service: service.clone(),
                    direction: d.direction.to_string(),
                    result: round.scale.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// Bring `autoscale_docker_api_requests` up to the counts of the Docker endpoint clients in use.
    fn collect_docker(&self) {
        let mut seen = self
            .docker_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for endpoint in autoscale_docker::endpoints() {
            let counts = endpoint.requests();
            for (kind, count) in [
                ("containers", counts.containers),
                ("services", counts.services),
                ("tasks", counts.tasks),
                ("service_updates", counts.service_updates),
                ("events", counts.event_connects),
            ] {
                let labels = DockerRequest {
                    endpoint: endpoint.address().to_owned(),
                    kind: kind.to_owned(),
                };
                let last = seen.insert(labels.clone(), count).unwrap_or(0);
                // Fewer than last time: a new client for the same endpoint, counting from 0.
                let new = if count >= last { count - last } else { count };
                self.docker_requests.get_or_create(&labels).inc_by(new);
            }
        }
    }

    /// Account for a status read: the `current` and `ready` replicas.
    pub fn record_replicas(&self, service: &str, status: autoscale_core::ReplicaStatus) {
        self.set_replicas(service, "current", status.current);
        self.set_replicas(service, "ready", status.ready);
    }

    fn set_replicas(&self, service: &str, state: &str, value: u32) {
        self.replicas
            .get(&ReplicaState {
                service: service.to_owned(),
                state: state.to_owned(),
            })
            .set(i64::from(value));
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        self.collect_docker();
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
    fn the_series_of_a_removed_service_go_and_the_others_stay() {
        let metrics = Metrics::new();
        let round = |service: &str| Round {
            service: service.into(),
            at: Timestamp::from_secs(1_700_000_000),
            status: Ok(ReplicaStatus {
                current: 2,
                ready: 2,
            }),
            outside_change: None,
            checks: vec![
                CheckReading {
                    name: "cpu".into(),
                    result: Ok(0.5),
                    recommendation: Some(2),
                },
                CheckReading {
                    name: "lat".into(),
                    result: Err((FailureKind::Timeout, "timeout".into())),
                    recommendation: None,
                },
            ],
            decision: None,
            scale: ScaleResult::NotNeeded,
            backoff: None,
            duration: Duration::from_millis(3),
        };
        metrics.record(&round("web"));
        metrics.record(&round("api"));
        metrics.record(&round("api"));
        assert!(metrics.encode().contains(r#"service="web""#));

        metrics.retain(&["api".to_owned(), "new".to_owned()]);
        let text = metrics.encode();
        assert!(!text.contains(r#"service="web""#), "{text}");
        for kept in [
            r#"autoscale_evaluations_total{service="api",outcome="ok"} 2"#,
            r#"autoscale_replicas{service="api",state="current"} 2"#,
            r#"autoscale_check_value{service="api",check="cpu"} 0.5"#,
            r#"autoscale_check_errors_total{service="api",check="lat",kind="timeout"} 2"#,
        ] {
            assert!(text.contains(kept), "missing {kept} in:\n{text}");
        }
        // A service that comes back starts its series afresh.
        metrics.record(&round("web"));
        let text = metrics.encode();
        assert!(
            text.contains(r#"autoscale_evaluations_total{service="web",outcome="ok"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_round_shows_up_in_every_family() {
        let metrics = Metrics::new();
        let mut reason = autoscale_core::engine::Reason {
            token: autoscale_core::Token::ScaleUp,
            recommended: Some(4),
            check: Some(0),
            forecast: None,
            failed_checks: 1,
            out_of_range: None,
            partial_data: None,
            activation: None,
            stabilized: None,
            deadband: None,
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
