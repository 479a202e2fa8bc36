//! What the loops and the HTTP endpoints share: each service's last round, the history, the metrics and the
//! readiness, and how a round is accounted for (metrics, history, persisting the state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use autoscale_core::controller::{
    Instruction, OnZeroOutside, Round, ScaleResult, StatusObservation,
};
use autoscale_core::engine::{Fallback, Pause, PausedBy, RuntimePause};
use autoscale_core::{EngineState, ReplicaStatus, Timestamp, Token};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::ServiceConfig;
use crate::daemon::health::{PersistHealth, ServiceHealth, is_stale, readiness};
use crate::daemon::history::{Entry, History};
use crate::daemon::metrics::Metrics;
use crate::daemon::preflight;
use crate::daemon::report::{
    BackoffReport, CheckReport, DaemonCondition, DiscoveryReport, ErrorReport, ServiceReport,
    StatusReport,
};

/// What the HTTP endpoints and the loops share.
#[derive(Debug)]
pub struct Shared {
    pub(super) metrics: Metrics,
    history: Mutex<History>,
    services: RwLock<BTreeMap<String, ServiceView>>,
    pub(super) prometheus_ready: AtomicBool,
    persist: Mutex<std::sync::mpsc::Sender<Persist>>,
    persist_health: Arc<PersistHealth>,
    /// `[daemon] admin_token_file` of the configuration in force.
    admin_token_file: Mutex<Option<std::path::PathBuf>>,
    /// What each `[[discover]]` section found, for `/status`.
    discovery: RwLock<Vec<DiscoveryReport>>,
    /// Bumped to make every discovery list its endpoint now rather than at its next resync.
    discovery_trigger: tokio::sync::watch::Sender<u64>,
}

/// What the state writer is asked to do.
#[derive(Debug)]
pub(super) enum Persist {
    /// Write this state of this service.
    Save(String, Box<EngineState>),
    /// Answer once every write asked for before is done.
    Flush(std::sync::mpsc::SyncSender<()>),
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
    pub(super) spec: ServiceSpec,
    pub(super) last: Option<Round>,
    /// The last status read between rounds, on a change the scaler notified.
    observed: Option<(Timestamp, ReplicaStatus)>,
    last_blocked: Option<(Token, u32)>,
    last_scale_at: Option<Timestamp>,
    /// The run-time pause of the service's state.
    pub(super) pause: Option<RuntimePause>,
    /// The last failure the loop met, kept after later rounds succeed.
    pub(super) last_error: Option<ErrorReport>,
    /// Where `autoscale pause` and `resume` reach the running loop.
    instructions: Option<mpsc::Sender<Instruction>>,
    pub(super) health: ServiceHealth,
}

/// What `/status` shows of a service's configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct ServiceSpec {
    pub(super) min_replicas: u32,
    pub(super) max_replicas: u32,
    pub(super) pause: Pause,
    pub(super) fallback: Option<Fallback>,
    pub(super) on_zero_outside: OnZeroOutside,
    /// Each check's policy, without readings.
    pub(super) checks: Vec<CheckReport>,
}

/// Why a pause instruction could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InstructError {
    /// No service of that name.
    Unknown,
    /// The service's loop is not running (a reload in progress); try again.
    NotRunning,
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
            spec: ServiceSpec::default(),
            last: None,
            observed: None,
            last_blocked: None,
            last_scale_at: None,
            pause: None,
            last_error: None,
            instructions: None,
            health: ServiceHealth::default(),
        }
    }
}

impl Shared {
    pub(super) fn new(
        metrics: Metrics,
        history: History,
        persist: std::sync::mpsc::Sender<Persist>,
        persist_health: Arc<PersistHealth>,
    ) -> Self {
        Shared {
            metrics,
            history: Mutex::new(history),
            services: RwLock::new(BTreeMap::new()),
            prometheus_ready: AtomicBool::new(false),
            persist: Mutex::new(persist),
            persist_health,
            admin_token_file: Mutex::new(None),
            discovery: RwLock::new(Vec::new()),
            discovery_trigger: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Make every `[[discover]]` section list its endpoint now, not at its next resync: for a watcher of the
    /// endpoint's events that saw a service appear, change or go.
    pub fn trigger_discovery(&self) {
        self.discovery_trigger
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a discovery task waits on besides its resync timer.
    pub(super) fn discovery_triggered(&self) -> tokio::sync::watch::Receiver<u64> {
        self.discovery_trigger.subscribe()
    }

    /// Replace what `/status` shows of the `[[discover]]` sections.
    pub(super) fn set_discovery(&self, reports: Vec<DiscoveryReport>) {
        *self
            .discovery
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reports;
    }

    /// Take `[daemon] admin_token_file` of the configuration now in force.
    pub(super) fn set_admin_token_file(&self, path: Option<std::path::PathBuf>) {
        *self
            .admin_token_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = path;
    }

    /// `[daemon] admin_token_file` of the configuration in force.
    pub(super) fn admin_token_file(&self) -> Option<std::path::PathBuf> {
        self.admin_token_file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Hand `state` to the state writer.
    pub(super) fn save(&self, service: &str, state: EngineState) {
        let sender = self
            .persist
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sender
            .send(Persist::Save(service.to_owned(), Box::new(state)))
            .is_err()
        {
            tracing::error!(service, "the state writer has stopped; state not persisted");
        }
    }

    /// Wait until the state writer has done every write asked for so far. It blocks the calling thread, as
    /// the writes themselves would: it runs only on a reload or at shutdown, with the loops stopped.
    pub(super) fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
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
        instructions: mpsc::Sender<Instruction>,
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
                spec: ServiceSpec::of(service),
                last: previous.as_ref().and_then(|p| p.last.clone()),
                observed: previous.as_ref().and_then(|p| p.observed),
                last_blocked: None,
                last_scale_at: state.last_scale_at,
                pause: state.pause,
                last_error: previous.as_ref().and_then(|p| p.last_error.clone()),
                instructions: Some(instructions),
                health: previous.map(|p| p.health).unwrap_or_default(),
            },
        );
        drop(services);
        self.metrics.set_paused(
            &service.name,
            paused_by(state.pause, service.engine.pause()),
        );
    }

    /// Hand `instruction` (made with `reply`'s sender) to the running loop of `service`, and wait for the
    /// pause it leaves in force.
    pub(super) async fn instruct(
        &self,
        service: &str,
        instruction: impl FnOnce(tokio::sync::oneshot::Sender<Option<RuntimePause>>) -> Instruction,
    ) -> Result<Option<RuntimePause>, InstructError> {
        let sender = {
            let services = self
                .services
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let view = services.get(service).ok_or(InstructError::Unknown)?;
            view.instructions.clone().ok_or(InstructError::NotRunning)?
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        sender
            .send(instruction(reply))
            .await
            .map_err(|_| InstructError::NotRunning)?;
        answer.await.map_err(|_| InstructError::NotRunning)
    }

    /// The configured pause of `service`, if it is known.
    pub(super) fn configured_pause(&self, service: &str) -> Option<Pause> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services.get(service).map(|v| v.spec.pause)
    }

    /// Account for an instruction the loop of `service` carried out: the history, the metrics, persisting.
    pub(super) fn on_paused(
        &self,
        service: &str,
        before: Option<RuntimePause>,
        after: Option<RuntimePause>,
        state: &EngineState,
        previous: &mut EngineState,
    ) {
        self.note_pause(
            service,
            before,
            after,
            state.pause.map_or(0, |p| p.since.as_millis()),
        );
        if state != previous {
            *previous = state.clone();
            self.save(service, state.clone());
        }
    }

    /// Record a change of the run-time pause: the view, the gauge, a history line and a log line.
    fn note_pause(
        &self,
        service: &str,
        before: Option<RuntimePause>,
        after: Option<RuntimePause>,
        at_ms: i64,
    ) {
        if before == after {
            return;
        }
        let configured = {
            let mut services = self
                .services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(view) = services.get_mut(service) else {
                return;
            };
            view.pause = after;
            view.spec.pause
        };
        self.metrics
            .set_paused(service, paused_by(after, configured));
        let now = autoscale_core::controller::Clock::now(&autoscale_core::controller::SystemClock);
        let at = if at_ms > 0 {
            Timestamp::from_millis(at_ms)
        } else {
            now
        };
        let current = self.current_of(service);
        let (reason, result) = match (before, after) {
            (_, Some(p)) if p.by == PausedBy::ZeroOutside => {
                tracing::warn!(
                    service,
                    "service {service} was taken to 0 replicas outside autoscale: leaving it alone (paused by \
                     hand). To resume autoscaling, scale it above 0 or run `autoscale resume {service}`"
                );
                (
                    "taken to 0 replicas outside autoscale: paused until scaled above 0 or resumed"
                        .to_owned(),
                    "paused",
                )
            }
            (_, Some(p)) => {
                tracing::info!(
                    service,
                    directions = p.directions.as_str(),
                    "service {service} paused ({}) until `autoscale resume {service}`",
                    p.directions.as_str()
                );
                (
                    format!("paused ({}) by an operator", p.directions.as_str()),
                    "paused",
                )
            }
            (Some(p), None) => {
                let still = match configured {
                    Pause::None => String::new(),
                    other => format!("; the configured pause ({}) applies", other.as_str()),
                };
                tracing::info!(service, "service {service} resumed{still}");
                let why = match p.by {
                    PausedBy::ZeroOutside if current.is_some_and(|c| c > 0) => {
                        "back above 0 replicas"
                    }
                    _ => "resumed",
                };
                (format!("{why}{still}"), "resumed")
            }
            (None, None) => return,
        };
        let entry = Entry {
            time: rfc3339(at),
            at_ms: at.as_millis(),
            service: service.to_owned(),
            from: current.unwrap_or(0),
            to: current.unwrap_or(0),
            reason,
            result: result.to_owned(),
            error: None,
        };
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = history.append(entry) {
            tracing::error!(error = %e, "cannot append to the history file");
        }
    }

    /// The count last read, by a round or between rounds, if one was read.
    fn current_of(&self, service: &str) -> Option<u32> {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        services.get(service)?.latest_status().map(|s| s.current)
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
        let pause_before = {
            let services = self
                .services
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            services.get(&round.service).map(|v| v.pause)
        };
        // A change made outside is always recorded, whatever the round then decided (a cooldown that blocks
        // the decision, a scale in the same round).
        let mut entries: Vec<Entry> = outside_entry(&round.service, round.at, round.outside_change)
            .into_iter()
            .collect();
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
                view.last = Some(round.clone());
                if let Some(error) = round_error(round) {
                    view.last_error = Some(error);
                }
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
        if let Some(before) = pause_before {
            self.note_pause(&round.service, before, state.pause, round.at.as_millis());
        }
        if state != previous {
            *previous = state.clone();
            self.save(&round.service, state.clone());
        }
    }

    /// Account for a status read between rounds: the replicas `/status` and the metrics show, and an outside
    /// change it recorded (the history, the last scale time, a pause for a service taken to 0, persisting).
    pub(super) fn on_observed(
        &self,
        observation: &StatusObservation,
        state: &EngineState,
        previous: &mut EngineState,
    ) {
        let service = observation.service.as_str();
        self.metrics.record_replicas(service, observation.status);
        let pause_before = {
            let mut services = self
                .services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            services.get_mut(service).map(|view| {
                view.observed = Some((observation.at, observation.status));
                view.last_scale_at = state.last_scale_at;
                view.pause
            })
        };
        if let Some(entry) = outside_entry(service, observation.at, observation.outside_change) {
            let mut history = self
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = history.append(entry) {
                tracing::error!(error = %e, "cannot append to the history file");
            }
        }
        if let Some(before) = pause_before {
            self.note_pause(service, before, state.pause, observation.at.as_millis());
        }
        if state != previous {
            *previous = state.clone();
            self.save(service, state.clone());
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

    /// What `/status` answers, as of `now`.
    pub(super) fn report(&self, now: Timestamp) -> StatusReport {
        let services = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let history = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list: Vec<ServiceReport> = services
            .iter()
            .map(|(name, v)| super::describe::service(name, v, history.recent(name), now))
            .collect();
        let failing = self.persist_health.failing();
        StatusReport {
            services: list,
            conditions: vec![DaemonCondition {
                kind: "StatePersisted".to_owned(),
                status: failing.is_empty(),
                message: if failing.is_empty() {
                    "every engine state is persisted".to_owned()
                } else {
                    format!(
                        "cannot persist the engine state of {}",
                        failing.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
                failing: failing.into_iter().collect(),
            }],
            leadership: self.metrics.leadership(),
            discovery: self
                .discovery
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

impl ServiceSpec {
    fn of(service: &ServiceConfig) -> Self {
        use crate::config::PolicySettings;
        let checks = service
            .checks
            .iter()
            .map(|c| {
                let mut check = CheckReport {
                    name: c.name.clone(),
                    ..CheckReport::default()
                };
                match &c.policy {
                    PolicySettings::Target { target, per, .. } => {
                        check.policy = "target".to_owned();
                        check.target = Some(*target);
                        check.per = Some(per_keyword(*per).to_owned());
                    }
                    PolicySettings::Threshold {
                        scale_up_above,
                        scale_down_below,
                        ..
                    } => {
                        check.policy = "threshold".to_owned();
                        check.scale_up_above = Some(*scale_up_above);
                        check.scale_down_below = Some(*scale_down_below);
                    }
                    PolicySettings::Predictive { target, per, .. } => {
                        check.policy = "predictive".to_owned();
                        check.target = Some(*target);
                        check.per = Some(per_keyword(*per).to_owned());
                    }
                }
                check
            })
            .collect();
        ServiceSpec {
            min_replicas: service.engine.min_replicas(),
            max_replicas: service.engine.max_replicas(),
            pause: service.engine.pause(),
            fallback: service.engine.fallback(),
            on_zero_outside: service.on_zero_outside,
            checks,
        }
    }
}

impl ServiceView {
    pub(super) fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub(super) fn cooldowns(&self) -> (Duration, Duration) {
        (self.cooldown_up, self.cooldown_down)
    }

    pub(super) fn last_scale_at(&self) -> Option<Timestamp> {
        self.last_scale_at
    }

    /// The latest status read: the last round's, or a read between rounds made since.
    pub(super) fn latest_status(&self) -> Option<ReplicaStatus> {
        let round = self
            .last
            .as_ref()
            .and_then(|r| r.status.as_ref().ok().map(|s| (r.at, *s)));
        match (round, self.observed) {
            (Some((round_at, status)), Some((observed_at, _))) if round_at >= observed_at => {
                Some(status)
            }
            (_, Some((_, observed))) => Some(observed),
            (round, None) => round.map(|(_, s)| s),
        }
    }

    pub(super) fn backoff(&self) -> Option<BackoffReport> {
        self.health.backoff.map(|b| BackoffReport {
            consecutive_failures: b.consecutive_failures,
            next_retry: rfc3339(b.retry_at),
        })
    }
}

fn per_keyword(per: autoscale_core::policy::TargetForm) -> &'static str {
    match per {
        autoscale_core::policy::TargetForm::PerReplica => "replica",
        autoscale_core::policy::TargetForm::Total => "total",
    }
}

/// The metrics' `by` label of the pause in force: `operator`, `zero_outside`, `config`, or `None`.
fn paused_by(pause: Option<RuntimePause>, configured: Pause) -> Option<&'static str> {
    match pause {
        Some(p) => Some(p.by.as_str()),
        None if configured != Pause::None => Some("config"),
        None => None,
    }
}

/// The round's failure, if it had one: the status read, else the scale call, else the first failed query.
fn round_error(round: &Round) -> Option<ErrorReport> {
    let at = rfc3339(round.at);
    if let Err((kind, message)) = &round.status {
        return Some(ErrorReport {
            at,
            during: "status read".to_owned(),
            kind: kind.as_str().to_owned(),
            message: message.clone(),
        });
    }
    if let ScaleResult::Failed { kind, message } = &round.scale {
        return Some(ErrorReport {
            at,
            during: "scale".to_owned(),
            kind: kind.as_str().to_owned(),
            message: message.clone(),
        });
    }
    round.checks.iter().find_map(|c| match &c.result {
        Err((kind, message)) => Some(ErrorReport {
            at: at.clone(),
            during: format!("check {}", c.name),
            kind: kind.as_str().to_owned(),
            message: message.clone(),
        }),
        Ok(_) => None,
    })
}

/// The history line of a change made outside autoscale, if a status read at `at` found one.
fn outside_entry(service: &str, at: Timestamp, change: Option<(u32, u32)>) -> Option<Entry> {
    let (from, to) = change?;
    Some(Entry {
        time: rfc3339(at),
        at_ms: at.as_millis(),
        service: service.to_owned(),
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

pub(super) fn rfc3339(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.as_millis())
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| t.to_string())
}
