//! What the loops and the HTTP endpoints share: each service's last round, the history, the metrics and the
//! readiness, and how a round is accounted for (metrics, history, persisting the state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use autoscale_core::controller::{Round, ScaleResult};
use autoscale_core::{EngineState, Timestamp, Token};
use serde_json::json;
use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::daemon::health::{PersistHealth, ServiceHealth, is_stale, readiness};
use crate::daemon::history::{Entry, History};
use crate::daemon::metrics::Metrics;
use crate::daemon::preflight;

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

/// What `/status`, `/healthz` and `/readyz` know about one service.
#[derive(Debug, Clone)]
pub(super) struct ServiceView {
    pub(super) interval: Duration,
    /// The longest a round may take by its timeouts.
    pub(super) round_budget: Duration,
    pub(super) since: Instant,
    pub(super) last_round: Option<Instant>,
    dry_run: bool,
    cooldown_up: Duration,
    cooldown_down: Duration,
    last: Option<serde_json::Value>,
    last_blocked: Option<(Token, u32)>,
    last_scale_at: Option<Timestamp>,
    pub(super) health: ServiceHealth,
}

#[cfg(test)]
impl ServiceView {
    /// A service registered now that has not completed a round.
    pub(super) fn new(interval: Duration, round_budget: Duration) -> Self {
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

    /// Services whose loop has not completed a round within its [`staleness_limit`](super::health::staleness_limit).
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
        "forecast": decision.and_then(|d| d.reason.forecast),
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
