//! Whether the daemon is healthy and ready: each service's latest calls and staleness, and the state writer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use autoscale_core::FailureKind;
use autoscale_core::controller::{Round, ScaleBackoff, ScaleResult};
use prometheus_client::metrics::counter::Counter;

use crate::daemon::preflight::{self, Stage};
use crate::daemon::shared::ServiceView;

/// The latest result of each kind of backend call of one service: what `/readyz` reports.
#[derive(Debug, Clone, Default)]
pub(super) struct ServiceHealth {
    /// The latest status read failed (or the preflight's did, before any round).
    status: Option<String>,
    /// The latest scale call failed, or the preflight found a program missing; cleared by a successful
    /// scale call (or a passing preflight, for its own failure).
    scale: Option<String>,
    scale_from_preflight: bool,
    /// The latest round's metric queries: `None` before any, else the checks whose source did not answer.
    queries: Option<Result<(), String>>,
    /// The scale backoff in force.
    pub(super) backoff: Option<ScaleBackoff>,
}

impl ServiceHealth {
    pub(super) fn observe(&mut self, round: &Round) {
        self.backoff = round.backoff;
        if let Err((_, message)) = &round.status {
            self.status = Some(message.clone());
            return;
        }
        self.status = None;
        // A failure that shows the source did not answer, as opposed to an answer without usable data.
        let unanswered: Vec<String> = round
            .checks
            .iter()
            .filter_map(|c| match &c.result {
                Err((kind, _)) if unanswered(*kind) => Some(format!("check {} ({kind})", c.name)),
                _ => None,
            })
            .collect();
        self.queries = Some(if unanswered.is_empty() {
            Ok(())
        } else {
            Err(unanswered.join(", "))
        });
        match &round.scale {
            ScaleResult::Failed { message, .. } => {
                self.scale = Some(message.clone());
                self.scale_from_preflight = false;
            }
            ScaleResult::Scaled | ScaleResult::Unchanged => self.scale = None,
            ScaleResult::NotNeeded | ScaleResult::DryRun | ScaleResult::BackingOff => {}
        }
    }

    pub(super) fn preflight(&mut self, result: Result<(), &preflight::Failure>) {
        match result {
            Ok(()) => {
                if self.scale_from_preflight {
                    self.scale = None;
                }
            }
            Err(failure) => match failure.stage {
                Stage::Status => self.status = Some(failure.to_string()),
                Stage::Program => {
                    self.scale = Some(failure.to_string());
                    self.scale_from_preflight = true;
                }
            },
        }
    }

    /// Why this service keeps the daemon from being ready: one line per failing kind of call.
    pub(super) fn problems(&self, service: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(why) = &self.status {
            problems.push(format!("service {service}: status read failing: {why}"));
        }
        if let Some(why) = &self.scale {
            problems.push(format!("service {service}: scale calls failing: {why}"));
        }
        if let Some(Err(why)) = &self.queries {
            problems.push(format!(
                "service {service}: Prometheus did not answer the latest query of {why}"
            ));
        }
        problems
    }
}

/// Whether a check failure of this kind means the metric source did not answer.
fn unanswered(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::Unavailable
            | FailureKind::Timeout
            | FailureKind::Rejected
            | FailureKind::Other
    )
}

/// Why the daemon is not ready: one line per reason, none when it is ready. Each term of readiness is one
/// statement here.
///
/// - Before a service's first round, Prometheus must have answered its readiness probe; after it, the
///   latest queries count, so readiness follows Prometheus both ways.
/// - Every service has completed a round.
/// - No service's latest status read, scale call or metric query failed (nor its preflight).
pub(super) fn readiness(
    prometheus_probe_ok: bool,
    services: &BTreeMap<String, ServiceView>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if !prometheus_probe_ok && services.values().any(|v| v.health.queries.is_none()) {
        reasons.push("Prometheus has not answered /-/ready yet".to_owned());
    }
    let waiting: Vec<&str> = services
        .iter()
        .filter(|(_, v)| v.last_round.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !waiting.is_empty() {
        reasons.push(format!("no evaluation yet for {}", waiting.join(", ")));
    }
    for (name, view) in services {
        reasons.extend(view.health.problems(name));
    }
    reasons
}

/// How long a service may go without completing a round before `/healthz` calls it stuck: three intervals
/// plus the longest one round may take by its timeouts, so a slow backend that times out is not a stuck loop.
pub(super) fn staleness_limit(view: &ServiceView) -> Duration {
    view.interval
        .saturating_mul(3)
        .saturating_add(view.round_budget)
}

pub(super) fn is_stale(view: &ServiceView) -> bool {
    view.last_round.unwrap_or(view.since).elapsed() > staleness_limit(view)
}

/// Whether the state writer's last write of each service failed, and the count of failed writes.
#[derive(Debug)]
pub(super) struct PersistHealth {
    errors: Counter,
    failing: Mutex<BTreeMap<String, String>>,
}

impl PersistHealth {
    pub(super) fn new(errors: Counter) -> Self {
        PersistHealth {
            errors,
            failing: Mutex::new(BTreeMap::new()),
        }
    }

    /// Account for one write of `service`'s state.
    pub(super) fn record(&self, service: &str, result: std::io::Result<()>) {
        let mut failing = self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(()) => {
                if failing.remove(service).is_some() {
                    tracing::info!(service, "the engine state is persisted again");
                }
            }
            Err(e) => {
                self.errors.inc();
                tracing::error!(service, error = %e, "cannot persist the engine state");
                failing.insert(service.to_owned(), e.to_string());
            }
        }
    }

    /// The services whose last write failed, with the error.
    pub(super) fn failing(&self) -> BTreeMap<String, String> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn retain(&self, names: &[String]) {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|name, _| names.contains(name));
    }
}

#[cfg(test)]
mod tests {
    use autoscale_core::controller::CheckReading;
    use autoscale_core::{ReplicaStatus, Timestamp};
    use tokio::time::Instant;

    use super::*;

    fn round(
        status: Result<ReplicaStatus, (FailureKind, String)>,
        check: Result<f64, FailureKind>,
        scale: ScaleResult,
    ) -> Round {
        Round {
            service: "web".into(),
            at: Timestamp::from_secs(1_700_000_000),
            status,
            outside_change: None,
            checks: vec![CheckReading {
                name: "cpu".into(),
                result: check.map_err(|k| (k, k.to_string())),
                recommendation: None,
            }],
            decision: None,
            scale,
            duration: Duration::ZERO,
            backoff: None,
        }
    }

    #[test]
    fn readiness_follows_the_latest_result_of_each_call() {
        let mut services = BTreeMap::from([(
            "web".to_owned(),
            ServiceView::new(Duration::from_secs(10), Duration::ZERO),
        )]);
        assert_eq!(
            readiness(false, &services),
            [
                "Prometheus has not answered /-/ready yet",
                "no evaluation yet for web"
            ]
        );
        let web = services.get_mut("web").unwrap();
        web.last_round = Some(Instant::now());
        let ok = || Ok(ReplicaStatus::all_ready(2));
        // A query that went unanswered, then one answered: the probe that gave up no longer counts.
        web.health.observe(&round(
            ok(),
            Err(FailureKind::Timeout),
            ScaleResult::NotNeeded,
        ));
        assert_eq!(
            readiness(false, &services),
            ["service web: Prometheus did not answer the latest query of check cpu (timeout)"]
        );
        let web = services.get_mut("web").unwrap();
        web.health
            .observe(&round(ok(), Ok(0.5), ScaleResult::NotNeeded));
        assert!(readiness(false, &services).is_empty());
        // An answer without data is an answer.
        let web = services.get_mut("web").unwrap();
        web.health.observe(&round(
            ok(),
            Err(FailureKind::Empty),
            ScaleResult::NotNeeded,
        ));
        assert!(readiness(true, &services).is_empty());

        // A failed scale call holds until one succeeds; rounds without a call (or backing off) keep it.
        let web = services.get_mut("web").unwrap();
        let failed = ScaleResult::Failed {
            kind: FailureKind::Other,
            message: "compose failed".into(),
        };
        web.health.observe(&round(ok(), Ok(0.5), failed));
        web.health
            .observe(&round(ok(), Ok(0.5), ScaleResult::BackingOff));
        assert_eq!(
            readiness(true, &services),
            ["service web: scale calls failing: compose failed"]
        );
        let web = services.get_mut("web").unwrap();
        web.health
            .observe(&round(ok(), Ok(0.5), ScaleResult::Scaled));
        assert!(readiness(true, &services).is_empty());

        // A failed status read holds until the next one succeeds.
        let web = services.get_mut("web").unwrap();
        let status = Err((FailureKind::Unavailable, "docker is down".to_owned()));
        web.health
            .observe(&round(status, Ok(0.5), ScaleResult::NotNeeded));
        assert_eq!(
            readiness(true, &services),
            ["service web: status read failing: docker is down"]
        );
        let web = services.get_mut("web").unwrap();
        web.health
            .observe(&round(ok(), Ok(0.5), ScaleResult::NotNeeded));
        assert!(readiness(true, &services).is_empty());
    }

    #[test]
    fn a_failed_preflight_holds_until_the_calls_it_stands_for_succeed() {
        let mut services = BTreeMap::from([(
            "web".to_owned(),
            ServiceView::new(Duration::from_secs(10), Duration::ZERO),
        )]);
        let web = services.get_mut("web").unwrap();
        web.last_round = Some(Instant::now());
        let missing = preflight::Failure {
            stage: Stage::Program,
            error: "no Docker Compose found".into(),
            fix: "install it".into(),
        };
        web.health.preflight(Err(&missing));
        web.health.observe(&round(
            Ok(ReplicaStatus::all_ready(1)),
            Ok(0.1),
            ScaleResult::NotNeeded,
        ));
        assert_eq!(
            readiness(true, &services),
            ["service web: scale calls failing: no Docker Compose found; to fix: install it"]
        );
        // A passing preflight (after a reload) clears its own failure.
        let web = services.get_mut("web").unwrap();
        web.health.preflight(Ok(()));
        assert!(readiness(true, &services).is_empty());
    }

    #[test]
    fn the_staleness_limit_covers_a_round_and_saturates() {
        let slow = ServiceView::new(Duration::from_secs(1), Duration::from_secs(45));
        assert_eq!(staleness_limit(&slow), Duration::from_secs(48));
        let huge = ServiceView::new(Duration::MAX, Duration::MAX);
        assert_eq!(staleness_limit(&huge), Duration::MAX);
        assert!(!is_stale(&huge));
        let mut stuck = ServiceView::new(Duration::from_millis(1), Duration::from_millis(1));
        stuck.since -= Duration::from_millis(5);
        assert!(is_stale(&stuck));
    }
}
