//! What the loops and the HTTP endpoints share: each service's last round, the history, the metrics and the
//! readiness, and how a round is accounted for (metrics, history, persisting the state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use autoscale_core::controller::{Round, ScaleResult};
use autoscale_core::{EngineState, Timestamp, Token};
use serde_json::json;
use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::daemon::history::{Entry, History};
use crate::daemon::metrics::Metrics;

/// What the HTTP endpoints and the loops share.
#[derive(Debug)]
pub struct Shared {
    pub(super) metrics: Metrics,
    history: Mutex<History>,
    services: RwLock<BTreeMap<String, ServiceView>>,
    pub(super) prometheus_ready: AtomicBool,
    persist: Mutex<mpsc::Sender<(String, EngineState)>>,
}

/// What `/status`, `/healthz` and `/readyz` know about one service.
#[derive(Debug, Clone)]
struct ServiceView {
    interval: Duration,
    since: Instant,
    last_round: Option<Instant>,
    dry_run: bool,
    cooldown_up: Duration,
    cooldown_down: Duration,
    last: Option<serde_json::Value>,
    last_blocked: Option<(Token, u32)>,
    last_scale_at: Option<Timestamp>,
}

impl Shared {
    pub(super) fn new(history: History, persist: mpsc::Sender<(String, EngineState)>) -> Self {
        Shared {
            metrics: Metrics::new(),
            history: Mutex::new(history),
            services: RwLock::new(BTreeMap::new()),
            prometheus_ready: AtomicBool::new(false),
            persist: Mutex::new(persist),
        }
    }

    pub(super) fn register(&self, service: &ServiceConfig, dry_run: bool, state: &EngineState) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = services.remove(&service.name);
        services.insert(
            service.name.clone(),
            ServiceView {
                interval: service.interval,
                since: Instant::now(),
                last_round: previous.as_ref().and_then(|p| p.last_round),
                dry_run,
                cooldown_up: service.engine.cooldown_up(),
                cooldown_down: service.engine.cooldown_down(),
                last: previous.as_ref().and_then(|p| p.last.clone()),
                last_blocked: None,
                last_scale_at: state.last_scale_at,
            },
        );
    }

    pub(super) fn retain(&self, names: &[String]) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services.retain(|name, _| names.contains(name));
        self.metrics.retain(names);
    }

    /// Account for a round: metrics, status, history, and persisting the state if it changed.
    pub(super) fn on_round(&self, round: &Round, state: &EngineState, previous: &mut EngineState) {
        self.metrics.record(round);
        let entry = self.history_entry(round);
        {
            let mut services = self
                .services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(view) = services.get_mut(&round.service) {
                view.last_round = Some(Instant::now());
                view.last_scale_at = state.last_scale_at;
                view.last = Some(round_json(round));
                let blocked = blocked(round);
                if entry.as_ref().is_some_and(|e| e.result == "blocked")
                    && view.last_blocked == blocked
                {
                    // The same block as last round: already in the history.
                    view.last_blocked = blocked;
                    return self.persist(round, state, previous);
                }
                view.last_blocked = blocked;
            }
        }
        if let Some(entry) = entry {
            let mut history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = history.append(entry) {
                tracing::error!(error = %e, "cannot append to the history file");
            }
        }
        self.persist(round, state, previous);
    }

    fn persist(&self, round: &Round, state: &EngineState, previous: &mut EngineState) {
        if state != previous {
            *previous = state.clone();
            let sender = self
                .persist
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if sender.send((round.service.clone(), state.clone())).is_err() {
                tracing::error!(service = %round.service, "the state writer has stopped; state not persisted");
            }
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
            (ScaleResult::NotNeeded, _) => match round.outside_change {
                Some((from, to)) => (
                    from,
                    to,
                    "changed outside autoscale".to_owned(),
                    "outside".to_owned(),
                    None,
                ),
                None => return None,
            },
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

    /// Services whose loop has not completed a round within 3 intervals.
    pub(super) fn stale_services(&self) -> Vec<String> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services
            .iter()
            .filter(|(_, v)| {
                v.last_round.unwrap_or(v.since).elapsed() > v.interval.saturating_mul(3)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Why the daemon is not ready, if it is not.
    pub(super) fn not_ready(&self) -> Option<String> {
        if !self.prometheus_ready.load(Ordering::Relaxed) {
            return Some("Prometheus has not answered /-/ready yet".into());
        }
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let waiting: Vec<&str> = services
            .iter()
            .filter(|(_, v)| v.last_round.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        (!waiting.is_empty()).then(|| format!("no evaluation yet for {}", waiting.join(", ")))
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
                    "history": history.recent(name),
                })
            })
            .collect();
        json!({ "services": list })
    }
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
