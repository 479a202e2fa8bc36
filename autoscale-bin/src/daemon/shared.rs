//! What the loops and the HTTP endpoints share: each service's last round, the history, the metrics and the
//! readiness, and how a round is accounted for (metrics, history, persisting the state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use autoscale_core::controller::{Round, ScaleBackoff, ScaleResult};
use autoscale_core::{EngineState, FailureKind, Timestamp, Token};
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::daemon::history::{Entry, History};
use crate::daemon::metrics::Metrics;
use crate::daemon::preflight::{self, Stage};

/// What the HTTP endpoints and the loops share.
#[derive(Debug)]
pub struct Shared {
    pub(super) metrics: Metrics,
    history: Mutex<History>,
    services: RwLock<BTreeMap<String, ServiceView>>,
    pub(super) prometheus_ready: AtomicBool,
    persist: Mutex<mpsc::Sender<Persist>>,
    persist_health: Arc<PersistHealth>,
}

/// What the state writer is asked to do.
#[derive(Debug)]
pub(super) enum Persist {
    /// Write this state of this service.
    Save(String, EngineState),
    /// Answer once every write asked for before is done.
    Flush(mpsc::SyncSender<()>),
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
    fn failing(&self) -> BTreeMap<String, String> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn retain(&self, names: &[String]) {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|name, _| names.contains(name));
    }
}

/// What `/status`, `/healthz` and `/readyz` know about one service.
#[derive(Debug, Clone)]
struct ServiceView {
    interval: Duration,
    /// The longest a round may take by its timeouts.
    round_budget: Duration,
    since: Instant,
    last_round: Option<Instant>,
    dry_run: bool,
    cooldown_up: Duration,
    cooldown_down: Duration,
    last: Option<serde_json::Value>,
    last_blocked: Option<(Token, u32)>,
    last_scale_at: Option<Timestamp>,
    health: ServiceHealth,
}

/// The latest result of each kind of backend call of one service: what `/readyz` reports.
#[derive(Debug, Clone, Default)]
struct ServiceHealth {
    /// The latest status read failed (or the preflight's did, before any round).
    status: Option<String>,
    /// The latest scale call failed, or the preflight found a program missing; cleared by a successful
    /// scale call (or a passing preflight, for its own failure).
    scale: Option<String>,
    scale_from_preflight: bool,
    /// The latest round's metric queries: `None` before any, else the checks whose source did not answer.
    queries: Option<Result<(), String>>,
    /// The scale backoff in force.
    backoff: Option<ScaleBackoff>,
}

impl ServiceHealth {
    fn observe(&mut self, round: &Round) {
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

    fn preflight(&mut self, result: Result<(), &preflight::Failure>) {
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
    fn problems(&self, service: &str) -> Vec<String> {
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
fn readiness(prometheus_probe_ok: bool, services: &BTreeMap<String, ServiceView>) -> Vec<String> {
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
fn staleness_limit(view: &ServiceView) -> Duration {
    view.interval
        .saturating_mul(3)
        .saturating_add(view.round_budget)
}

fn is_stale(view: &ServiceView) -> bool {
    view.last_round.unwrap_or(view.since).elapsed() > staleness_limit(view)
}

impl Shared {
    pub(super) fn new(
        metrics: Metrics,
        history: History,
        persist: mpsc::Sender<Persist>,
        persist_health: Arc<PersistHealth>,
    ) -> Self {
        Shared {
            metrics,
            history: Mutex::new(history),
            services: RwLock::new(BTreeMap::new()),
            prometheus_ready: AtomicBool::new(false),
            persist: Mutex::new(persist),
            persist_health,
        }
    }

    /// Hand `state` to the state writer.
    pub(super) fn save(&self, service: &str, state: EngineState) {
        let sender = self
            .persist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sender
            .send(Persist::Save(service.to_owned(), state))
            .is_err()
        {
            tracing::error!(service, "the state writer has stopped; state not persisted");
        }
    }

    /// Wait until the state writer has done every write asked for so far. It blocks the calling thread, as
    /// the writes themselves would: it runs only on a reload or at shutdown, with the loops stopped.
    pub(super) fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        let sent = self
            .persist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(Persist::Flush(done))
            .is_ok();
        if sent {
            let _ = wait.recv();
        }
    }

    pub(super) fn register(
        &self,
        service: &ServiceConfig,
        dry_run: bool,
        state: &EngineState,
        round_budget: Duration,
    ) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = services.remove(&service.name);
        services.insert(
            service.name.clone(),
            ServiceView {
                interval: service.interval,
                round_budget,
                since: Instant::now(),
                last_round: previous.as_ref().and_then(|p| p.last_round),
                dry_run,
                cooldown_up: service.engine.cooldown_up(),
                cooldown_down: service.engine.cooldown_down(),
                last: previous.as_ref().and_then(|p| p.last.clone()),
                last_blocked: None,
                last_scale_at: state.last_scale_at,
                health: previous.map(|p| p.health).unwrap_or_default(),
            },
        );
    }

    /// Account for the preflight of `service`.
    pub(super) fn preflight(&self, service: &str, result: Result<(), &preflight::Failure>) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(view) = services.get_mut(service) {
            view.health.preflight(result);
        }
    }

    pub(super) fn retain(&self, names: &[String]) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services.retain(|name, _| names.contains(name));
        self.persist_health.retain(names);
        self.metrics.retain(names);
    }

    /// Account for a round: metrics, status, history, and persisting the state if it changed.
    pub(super) fn on_round(&self, round: &Round, state: &EngineState, previous: &mut EngineState) {
        self.metrics.record(round);
        // A change made outside is always recorded, whatever the round then decided (a cooldown that blocks
        // the decision, a scale in the same round).
        let mut entries: Vec<Entry> = outside_entry(round).into_iter().collect();
        let entry = self.history_entry(round);
        {
            let mut services = self
                .services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut repeated = false;
            if let Some(view) = services.get_mut(&round.service) {
                view.last_round = Some(Instant::now());
                view.health.observe(round);
                view.last_scale_at = state.last_scale_at;
                view.last = Some(round_json(round));
                let blocked = blocked(round);
                // The same block as last round is already in the history.
                repeated = entry.as_ref().is_some_and(|e| e.result == "blocked")
                    && view.last_blocked == blocked;
                view.last_blocked = blocked;
            }
            if !repeated {
                entries.extend(entry);
            }
        }
        if !entries.is_empty() {
            let mut history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for entry in entries {
                if let Err(e) = history.append(entry) {
                    tracing::error!(error = %e, "cannot append to the history file");
                }
            }
        }
        if state != previous {
            *previous = state.clone();
            self.save(&round.service, state.clone());
        }
    }

    fn history_entry(&self, round: &Round) -> Option<Entry> {
        let decision = round.decision.as_ref();
        let (from, to, reason, result, error) = match (&round.scale, decision) {
            (ScaleResult::NotNeeded, Some(d)) if blocked(round).is_some() => {
                let to = d.reason.recommended.unwrap_or(d.desired);
                (
                    d.current,
                    to,
                    d.reason.to_string(),
                    "blocked".to_owned(),
                    None,
                )
            }
            (ScaleResult::NotNeeded, _) => return None,
            (ScaleResult::Failed { message, .. }, Some(d)) => (
                d.current,
                d.desired,
                d.reason.to_string(),
                "failed".to_owned(),
                Some(message.clone()),
            ),
            (other, Some(d)) => (
                d.current,
                d.desired,
                d.reason.to_string(),
                other.as_str().to_owned(),
                None,
            ),
            (_, None) => return None,
        };
        Some(Entry {
            time: rfc3339(round.at),
            at_ms: round.at.as_millis(),
            service: round.service.clone(),
            from,
            to,
            reason,
            result,
            error,
        })
    }

    /// Why the state cannot be persisted, while it cannot: a separate readiness term.
    fn persist_not_ready(&self) -> Option<String> {
        let failing = self.persist_health.failing();
        (!failing.is_empty()).then(|| {
            let list: Vec<String> = failing.iter().map(|(s, e)| format!("{s} ({e})")).collect();
            format!("cannot persist the engine state of {}", list.join(", "))
        })
    }

    /// Services whose loop has not completed a round within its [`staleness_limit`].
    pub(super) fn stale_services(&self) -> Vec<String> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services
            .iter()
            .filter(|(_, v)| is_stale(v))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Why the daemon is not ready, one reason per line; `None` when it is ready.
    pub(super) fn not_ready(&self) -> Option<Vec<String>> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut reasons: Vec<String> = self.persist_not_ready().into_iter().collect();
        reasons.extend(readiness(
            self.prometheus_ready.load(Ordering::Relaxed),
            &services,
        ));
        (!reasons.is_empty()).then_some(reasons)
    }

    pub(super) fn status_json(&self) -> serde_json::Value {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let history = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = autoscale_core::controller::Clock::now(&autoscale_core::controller::SystemClock);
        let list: Vec<serde_json::Value> = services
            .iter()
            .map(|(name, v)| {
                let remaining = |cooldown: Duration| {
                    v.last_scale_at
                        .map(|t| cooldown.saturating_sub(now.saturating_since(t)).as_secs_f64())
                        .unwrap_or(0.0)
                };
                let last = v.last.clone().unwrap_or(serde_json::Value::Null);
                json!({
                    "service": name,
                    "current": last.get("current").cloned().unwrap_or_default(),
                    "ready": last.get("ready").cloned().unwrap_or_default(),
                    "desired": last.get("desired").cloned().unwrap_or_default(),
                    "dry_run": v.dry_run,
                    "interval_s": v.interval.as_secs_f64(),
                    "cooldown_remaining_s": { "up": remaining(v.cooldown_up), "down": remaining(v.cooldown_down) },
                    "last_evaluation": last,
                    "scale_backoff": v.health.backoff.map(|b| json!({
                        "consecutive_failures": b.consecutive_failures,
                        "next_retry": rfc3339(b.retry_at),
                    })),
                    "not_ready": v.health.problems(name),
                    "history": history.recent(name),
                })
            })
            .collect();
        let failing = self.persist_health.failing();
        json!({
            "services": list,
            "conditions": [{
                "type": "StatePersisted",
                "status": failing.is_empty(),
                "message": if failing.is_empty() {
                    "every engine state is persisted".to_owned()
                } else {
                    format!("cannot persist the engine state of {}", failing.keys().cloned().collect::<Vec<_>>().join(", "))
                },
                "failing": failing,
            }],
        })
    }
}

/// The history line of a change made outside autoscale, if the round found one.
fn outside_entry(round: &Round) -> Option<Entry> {
    let (from, to) = round.outside_change?;
    Some(Entry {
        time: rfc3339(round.at),
        at_ms: round.at.as_millis(),
        service: round.service.clone(),
        from,
        to,
        reason: "changed outside autoscale".to_owned(),
        result: "outside".to_owned(),
        error: None,
    })
}

/// The count and token of a round that wanted a change the pipeline blocked (cooldown, rate rule, pause).
fn blocked(round: &Round) -> Option<(Token, u32)> {
    let d = round.decision.as_ref()?;
    let wanted = d.reason.recommended?;
    let blocking = matches!(
        d.reason.token,
        Token::Cooldown | Token::RateLimited | Token::Paused
    );
    (blocking && wanted != d.current && d.desired == d.current).then_some((d.reason.token, wanted))
}

fn round_json(round: &Round) -> serde_json::Value {
    let status = round.status.as_ref().ok();
    let decision = round.decision.as_ref();
    json!({
        "at": rfc3339(round.at),
        "current": status.map(|s| s.current),
        "ready": status.map(|s| s.ready),
        "desired": decision.map(|d| d.desired),
        "token": decision.map(|d| d.reason.token.as_str()),
        "reason": decision.map(|d| d.reason.to_string()),
        "status_error": round.status.as_ref().err().map(|(_, m)| m.clone()),
        "checks": round.checks.iter().map(|c| json!({
            "name": c.name,
            "value": c.result.as_ref().ok(),
            "error": c.result.as_ref().err().map(|(k, _)| k.as_str()),
            "recommendation": c.recommendation,
        })).collect::<Vec<_>>(),
        "scale": round.scale.as_str(),
        "duration_ms": round.duration.as_secs_f64() * 1000.0,
    })
}

fn rfc3339(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.as_millis())
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use autoscale_core::ReplicaStatus;
    use autoscale_core::controller::CheckReading;

    use super::*;

    fn view(interval: Duration, round_budget: Duration) -> ServiceView {
        ServiceView {
            interval,
            round_budget,
            since: Instant::now(),
            last_round: None,
            dry_run: false,
            cooldown_up: Duration::ZERO,
            cooldown_down: Duration::ZERO,
            last: None,
            last_blocked: None,
            last_scale_at: None,
            health: ServiceHealth::default(),
        }
    }

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
            view(Duration::from_secs(10), Duration::ZERO),
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
            view(Duration::from_secs(10), Duration::ZERO),
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
        let slow = view(Duration::from_secs(1), Duration::from_secs(45));
        assert_eq!(staleness_limit(&slow), Duration::from_secs(48));
        let huge = view(Duration::MAX, Duration::MAX);
        assert_eq!(staleness_limit(&huge), Duration::MAX);
        assert!(!is_stale(&huge));
        let mut stuck = view(Duration::from_millis(1), Duration::from_millis(1));
        stuck.since -= Duration::from_millis(5);
        assert!(is_stale(&stuck));
    }
}
