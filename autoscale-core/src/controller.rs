//! The per-service control loop: status, then checks, then the engine, then scale, then record.
//!
//! [`ServiceLoop`] is what the `autoscale` daemon runs for each service, and what a Rust program embeds to
//! autoscale with its own [`MetricSource`]s, [`Policy`]s and [`Scaler`]. It owns the service's
//! [`EngineState`]; the engine itself stays pure. Every backend call has a timeout, a service's evaluations
//! never overlap (the next tick waits for the current round), and metric queries can share a semaphore that
//! bounds concurrency across services.
//!
//! A scaler that can watch its service ([`Scaler::changes`]) lets the loop read the status between rounds
//! when told of a change ([`ServiceLoop::observe_status`]): an outside change is recorded within a moment,
//! while evaluation and scaling keep to the rounds.
//!
//! A check whose policy learns from the past ([`Policy::backfill`]) and whose source
//! comes with a backfill query ([`CheckSource::backfill`]) has its history filled from the source's past when
//! the loop starts ([`ServiceLoop::start_backfill`]). The range query runs beside the rounds: scaling never
//! waits for it, and a backfill that fails leaves the policy to start without history.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use autoscale_core::controller::{CheckSource, ServiceLoop};
//! use autoscale_core::policy::{TargetForm, TargetPolicy};
//! use autoscale_core::testing::{RecordingScaler, ScriptedSource};
//! use autoscale_core::{Check, EngineConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let source = ScriptedSource::constant("cpu", 1.2);
//! let scaler = RecordingScaler::new(2);
//! let cpu = Check::new("cpu", Arc::new(TargetPolicy::new(0.6, TargetForm::PerReplica).unwrap()));
//! let mut service = ServiceLoop::builder("web", EngineConfig::builder(1, 10), Arc::new(scaler.clone()))
//!     .check(cpu, CheckSource::new(Arc::new(source), "cpu"))
//!     .interval(Duration::from_secs(10))
//!     .build()
//!     .unwrap();
//! let round = service.evaluate_once().await;
//! assert_eq!(round.decision.unwrap().desired, 4);
//! assert_eq!(scaler.current().current, 4);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use futures_util::future::join_all;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use crate::engine::{
    Check, CheckHistory, ConfigError, Decision, Engine, EngineConfigBuilder, EngineState,
    MIN_RESOLUTION, Pause, PausedBy, RuntimePause, Token,
};
use crate::error::Error;
use crate::traits::{ChangeFeed, MetricSource, Policy, ScaleOutcome, Scaler};
use crate::types::{FailureKind, Observation, ReplicaStatus, Replicas, Timestamp};

/// A source of wall-clock time for the loop. The engine never reads a clock; the loop does, through this.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock. Persisted state holds wall-clock times, so cooldowns survive a restart.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_millis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that follows tokio's clock from a fixed origin: under `tokio::time::pause` it advances only when
/// the test advances time, which makes loop tests exact.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Timestamp,
    start: Instant,
}

impl TokioClock {
    /// A clock reading `origin` now.
    pub fn starting_at(origin: Timestamp) -> Self {
        TokioClock {
            origin,
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.origin + self.start.elapsed()
    }
}

/// Where one check's value comes from: a source and the query to ask it, and optionally the query of its
/// past demand to fill a forecasting policy's history at start.
#[derive(Debug, Clone)]
pub struct CheckSource {
    source: Arc<dyn MetricSource>,
    query: String,
    backfill: Option<String>,
}

impl CheckSource {
    /// Ask `source` for `query`.
    pub fn new(source: Arc<dyn MetricSource>, query: impl Into<String>) -> Self {
        CheckSource {
            source,
            query: query.into(),
            backfill: None,
        }
    }

    /// Fill the check's history at the loop's start from the past of `query`, asked of the same source with
    /// [`MetricSource::fetch_range`]. Its values are the demand the policy learns
    /// ([`Policy::learn`]), which for a per-replica metric is not the check's query.
    /// Only a check whose policy asks for a backfill uses it.
    pub fn backfill(mut self, query: impl Into<String>) -> Self {
        self.backfill = Some(query.into());
        self
    }

    /// The query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The backfill query, if there is one.
    pub fn backfill_query(&self) -> Option<&str> {
        self.backfill.as_deref()
    }
}

/// How long each kind of backend call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A status read.
    pub status: Duration,
    /// One metric query (queuing for a concurrency permit included).
    pub metric: Duration,
    /// One scale call.
    pub scale: Duration,
}

impl Timeouts {
    /// The longest a round can take, by its timeouts: a status read, one metric query (the checks' queries
    /// run concurrently) and one scale call. Saturates instead of overflowing.
    pub fn round_budget(&self) -> Duration {
        self.status
            .saturating_add(self.metric)
            .saturating_add(self.scale)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            status: Duration::from_secs(30),
            metric: Duration::from_secs(15),
            scale: Duration::from_secs(180),
        }
    }
}

/// Why a [`ServiceLoop`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoopError {
    /// The engine builder came with checks of its own, which have no source: add every check with
    /// [`ServiceLoopBuilder::check`], together with its source.
    #[error("service {service}: {checks} checks but {sources} check sources")]
    SourceCount {
        /// The service.
        service: String,
        /// Checks in the engine config.
        checks: usize,
        /// Sources given.
        sources: usize,
    },
    /// The interval is zero.
    #[error("service {0}: the interval must be above 0")]
    ZeroInterval(String),
    /// The engine configuration was refused.
    #[error("service {service}: {source}")]
    Config {
        /// The service.
        service: String,
        /// Why.
        source: ConfigError,
    },
}

/// One check's reading in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReading {
    /// The check's name.
    pub name: String,
    /// The value, or the failure's kind and message.
    pub result: Result<f64, (FailureKind, String)>,
    /// What this check alone recommended, when it has a usable value.
    pub recommendation: Option<Replicas>,
}

/// What happened to the decision.
#[derive(Debug, Clone, PartialEq)]
pub enum ScaleResult {
    /// The decision kept the current count.
    NotNeeded,
    /// A change was decided, but the service is in dry-run mode: nothing was called.
    DryRun,
    /// The scaler applied the change.
    Scaled,
    /// The scaler found the service already at the desired count.
    Unchanged,
    /// The scale call failed; nothing was recorded. The next round tries again, unless failures repeat:
    /// then the loop backs off (see [`ScaleBackoff`]).
    Failed {
        /// The failure's kind.
        kind: FailureKind,
        /// The error message (never a secret: backends redact).
        message: String,
    },
    /// A change was decided, but earlier scale calls kept failing and the loop is backing off: nothing was
    /// called. The round's [`Round::backoff`] says until when.
    BackingOff,
}

impl ScaleResult {
    /// A short label: `not_needed`, `dry_run`, `scaled`, `unchanged`, `failed` or `backing_off`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScaleResult::NotNeeded => "not_needed",
            ScaleResult::DryRun => "dry_run",
            ScaleResult::Scaled => "scaled",
            ScaleResult::Unchanged => "unchanged",
            ScaleResult::Failed { .. } => "failed",
            ScaleResult::BackingOff => "backing_off",
        }
    }
}

/// The report of one evaluation round.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The service.
    pub service: String,
    /// When the round was evaluated.
    pub at: Timestamp,
    /// The status read, or why it failed (then nothing else happened).
    pub status: Result<ReplicaStatus, (FailureKind, String)>,
    /// A change made outside autoscale since the last round: `(last known, found)`. It was recorded as a
    /// scale event, so cooldowns and rate rules honour it.
    pub outside_change: Option<(Replicas, Replicas)>,
    /// One reading per check.
    pub checks: Vec<CheckReading>,
    /// The engine's decision.
    pub decision: Option<Decision>,
    /// What happened to it.
    pub scale: ScaleResult,
    /// How long the round took.
    pub duration: Duration,
    /// The scale backoff in force after this round: `None` unless the last scale calls failed.
    pub backoff: Option<ScaleBackoff>,
}

/// Repeated scale failures of one service, and when the loop calls the scaler again.
///
/// The first two consecutive failures are retried at the next round, as a single failure (a Compose call
/// racing another, a Docker restart) usually is brief. From the third on, the wait doubles with each
/// failure: 2, 4, 8, ... intervals, capped at [`ScaleBackoff::cap`]. A successful scale call ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleBackoff {
    /// Scale calls that failed in a row.
    pub consecutive_failures: u32,
    /// No scale call before this time (the loop's clock).
    pub retry_at: Timestamp,
}

impl ScaleBackoff {
    /// Consecutive failures retried at the next round before the backoff starts.
    pub const FREE_RETRIES: u32 = 2;
    /// The longest wait, unless one interval is longer.
    pub const MAX_WAIT: Duration = Duration::from_secs(300);

    /// The longest wait between two scale calls for a service evaluated every `interval`: 10 intervals, at
    /// most [`MAX_WAIT`](Self::MAX_WAIT), and never less than one interval.
    pub fn cap(interval: Duration) -> Duration {
        interval
            .saturating_mul(10)
            .min(Self::MAX_WAIT)
            .max(interval)
    }

    /// How long to wait after `failures` consecutive failures before calling the scaler again.
    pub fn wait(failures: u32, interval: Duration) -> Duration {
        if failures <= Self::FREE_RETRIES {
            return Duration::ZERO;
        }
        let doublings = failures - Self::FREE_RETRIES;
        let factor = 1_u32.checked_shl(doublings).unwrap_or(u32::MAX);
        interval.saturating_mul(factor).min(Self::cap(interval))
    }

    fn after_failure(previous: Option<ScaleBackoff>, at: Timestamp, interval: Duration) -> Self {
        let consecutive_failures = previous
            .map_or(0, |b| b.consecutive_failures)
            .saturating_add(1);
        ScaleBackoff {
            consecutive_failures,
            retry_at: at + Self::wait(consecutive_failures, interval),
        }
    }
}

impl Round {
    /// The round's outcome label: `ok`, `no_data`, `status_failed`, `scale_failed` or `backing_off`.
    pub fn outcome(&self) -> &'static str {
        if self.status.is_err() {
            "status_failed"
        } else if matches!(self.scale, ScaleResult::Failed { .. }) {
            "scale_failed"
        } else if self.scale == ScaleResult::BackingOff {
            "backing_off"
        } else if self
            .decision
            .as_ref()
            .is_some_and(|d| d.reason.token == Token::NoData)
        {
            "no_data"
        } else {
            "ok"
        }
    }
}

/// The control loop of one service. Build it with [`ServiceLoop::builder`].
#[derive(Debug)]
pub struct ServiceLoop {
    name: String,
    engine: Engine,
    /// One per check of the engine's configuration, in its order: the builder adds them together.
    sources: Vec<CheckSource>,
    state: EngineState,
    options: LoopOptions,
    backoff: Option<ScaleBackoff>,
    /// Whether [`ServiceLoop::start_backfill`] ran: it fetches at most once per loop.
    backfill_started: bool,
    /// The range fetches still running, merged by the first round after they finish.
    backfills: Vec<PendingBackfill>,
    /// Failures that repeat, so that each is logged once and then every few minutes, not every round.
    failures: FailureLog,
    /// Whether the checks' queries were logged (once, at the first round).
    queries_logged: bool,
}

/// One check's range fetch, running in its own task.
#[derive(Debug)]
struct PendingBackfill {
    /// The check's index in the engine's configuration.
    check: usize,
    /// How far back it reaches.
    span: Duration,
    task: JoinHandle<crate::Result<Vec<(Timestamp, f64)>>>,
}

impl Drop for PendingBackfill {
    /// A loop given up (at shutdown or a reload) stops its fetches with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a loop runs, apart from its engine and checks: the same in the builder and in the loop.
#[derive(Debug)]
struct LoopOptions {
    scaler: Arc<dyn Scaler>,
    interval: Duration,
    timeouts: Timeouts,
    dry_run: bool,
    clock: Arc<dyn Clock>,
    metric_permits: Option<Arc<Semaphore>>,
    on_zero_outside: OnZeroOutside,
}

/// What the loop does when someone outside autoscale takes a running service to 0 replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnZeroOutside {
    /// Leave it alone: 0 set by hand means "autoscaling off", as for Kubernetes' HPA. The service is paused
    /// ([`PausedBy::ZeroOutside`]) until it is brought back above 0 outside, or resumed.
    #[default]
    Pause,
    /// Raise it back to `min_replicas`, as for any count below the minimum.
    Restore,
}

impl OnZeroOutside {
    /// `pause` or `restore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OnZeroOutside::Pause => "pause",
            OnZeroOutside::Restore => "restore",
        }
    }
}

/// An operator's instruction to a running loop, with where to send the pause in force afterwards.
#[derive(Debug)]
pub enum Instruction {
    /// Pause these directions until resumed (replacing any run-time pause).
    Pause(Pause, oneshot::Sender<Option<RuntimePause>>),
    /// Lift the run-time pause, whoever set it; the configured pause applies again.
    Resume(oneshot::Sender<Option<RuntimePause>>),
}

/// What [`ServiceLoop::run_instructed`] reports to its caller.
#[derive(Debug)]
pub enum LoopEvent<'a> {
    /// A round ran.
    Round(&'a Round),
    /// An instruction changed the run-time pause from the first to the second.
    Paused(Option<RuntimePause>, Option<RuntimePause>),
    /// The scaler notified a possible change and the status was read between rounds
    /// ([`ServiceLoop::observe_status`]).
    Observed(&'a StatusObservation),
}

/// A status read between rounds ([`ServiceLoop::observe_status`]): what it found, and the outside change it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusObservation {
    /// The service.
    pub service: String,
    /// When the status was read.
    pub at: Timestamp,
    /// The status read.
    pub status: ReplicaStatus,
    /// A change made outside autoscale since the last read: `(last known, found)`, recorded as a scale event
    /// as a round records it.
    pub outside_change: Option<(Replicas, Replicas)>,
}

/// Builds a [`ServiceLoop`]: the engine's settings, then each check together with its source.
#[derive(Debug)]
pub struct ServiceLoopBuilder {
    name: String,
    engine: EngineConfigBuilder,
    checks: Vec<(Check, CheckSource)>,
    state: EngineState,
    options: LoopOptions,
}

impl ServiceLoopBuilder {
    /// Add a check and the source of its value. Checks are evaluated in the order they are added.
    pub fn check(mut self, check: Check, source: CheckSource) -> Self {
        self.checks.push((check, source));
        self
    }

    /// The evaluation interval (default 10 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.options.interval = interval;
        self
    }

    /// The backend call timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.options.timeouts = timeouts;
        self
    }

    /// Decide and log, but never call the scaler's `scale`.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }

    /// Start from a persisted state.
    pub fn state(mut self, state: EngineState) -> Self {
        self.state = state;
        self
    }

    /// Read time from `clock` (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = clock;
        self
    }

    /// Share `permits` with other services to bound concurrent metric queries.
    pub fn metric_permits(mut self, permits: Arc<Semaphore>) -> Self {
        self.options.metric_permits = Some(permits);
        self
    }

    /// What to do when someone outside autoscale takes the running service to 0 (default: pause).
    pub fn on_zero_outside(mut self, on_zero_outside: OnZeroOutside) -> Self {
        self.options.on_zero_outside = on_zero_outside;
        self
    }

    /// Build the engine configuration from the settings and the checks, and validate the whole.
    pub fn build(self) -> Result<ServiceLoop, LoopError> {
        let name = self.name;
        let mut engine = self.engine;
        let mut sources = Vec::with_capacity(self.checks.len());
        for (check, source) in self.checks {
            engine = engine.check(check);
            sources.push(source);
        }
        let config = match engine.build() {
            Ok(config) => config,
            Err(source) => {
                return Err(LoopError::Config {
                    service: name,
                    source,
                });
            }
        };
        // Only checks that came inside the engine builder can lack a source.
        if config.checks().len() != sources.len() {
            return Err(LoopError::SourceCount {
                service: name,
                checks: config.checks().len(),
                sources: sources.len(),
            });
        }
        if self.options.interval.is_zero() {
            return Err(LoopError::ZeroInterval(name));
        }
        Ok(ServiceLoop {
            name,
            engine: Engine::new(config),
            sources,
            state: self.state,
            options: self.options,
            backoff: None,
            backfill_started: false,
            backfills: Vec::new(),
            failures: FailureLog::default(),
            queries_logged: false,
        })
    }
}

impl ServiceLoop {
    /// Start building the loop of service `name`. `engine` holds the engine's bounds, behavior, cooldowns,
    /// fallback and pause; the checks come with their sources through [`ServiceLoopBuilder::check`]. (From a
    /// built configuration, [`EngineConfig::builder_without_checks`](crate::EngineConfig::builder_without_checks)
    /// gives such a builder.)
    pub fn builder(
        name: impl Into<String>,
        engine: EngineConfigBuilder,
        scaler: Arc<dyn Scaler>,
    ) -> ServiceLoopBuilder {
        ServiceLoopBuilder {
            name: name.into(),
            engine,
            checks: Vec::new(),
            state: EngineState::default(),
            options: LoopOptions {
                scaler,
                interval: Duration::from_secs(10),
                timeouts: Timeouts::default(),
                dry_run: false,
                clock: Arc::new(SystemClock),
                metric_permits: None,
                on_zero_outside: OnZeroOutside::default(),
            },
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The evaluation interval.
    pub fn interval(&self) -> Duration {
        self.options.interval
    }

    /// The backend call timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.options.timeouts
    }

    /// The scale backoff in force, if the last scale calls failed.
    pub fn backoff(&self) -> Option<ScaleBackoff> {
        self.backoff
    }

    /// The engine state as of the last round.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Give up the loop and keep its state (for a reload).
    pub fn into_state(self) -> EngineState {
        self.state
    }

    /// Pause `directions` from now until [`resume`](Self::resume), whatever the configuration says. The
    /// pause is kept in the state, so it survives a restart. Returns the run-time pause it replaced.
    pub fn pause(&mut self, directions: Pause) -> Option<RuntimePause> {
        let pause = RuntimePause {
            directions,
            by: PausedBy::Operator,
            since: self.options.clock.now(),
        };
        self.state.pause.replace(pause)
    }

    /// Lift the run-time pause, whoever set it: the configured pause applies again. Returns the pause lifted.
    pub fn resume(&mut self) -> Option<RuntimePause> {
        self.state.pause.take()
    }

    /// Start filling the history of every check that wants it, once per loop: [`run`](Self::run) calls it
    /// before its first round; a program driving [`evaluate_once`](Self::evaluate_once) itself calls it
    /// first. It returns at once.
    ///
    /// A check is backfilled when its policy asks for a span of the past ([`Policy::backfill`]), its source
    /// has a backfill query ([`CheckSource::backfill`]) and its history is empty: a state restored with a
    /// history already has its past, and is left alone. The range `[now - span, now]` is fetched at one point
    /// a minute (the history's resolution) in a task of its own, under the metric timeout and the shared
    /// metric permits, while the rounds run as usual. The first round after it finishes merges it (see
    /// [`merge_backfill`]); a failure is logged once and the policy starts without history. Nothing is
    /// retried before the next loop start (a restart or a reload).
    pub fn start_backfill(&mut self) {
        if std::mem::replace(&mut self.backfill_started, true) {
            return;
        }
        let end = self.options.clock.now();
        let checks = self.engine.config().checks();
        for (i, (check, source)) in checks.iter().zip(&self.sources).enumerate() {
            let (Some(span), Some(query)) = (check.policy().backfill(), source.backfill.clone())
            else {
                continue;
            };
            if self
                .state
                .checks
                .iter()
                .any(|h| h.check == check.name() && !h.is_empty())
            {
                tracing::debug!(
                    service = %self.name, check = check.name(),
                    "not backfilling: the restored state already holds this check's history"
                );
                continue;
            }
            let start = end - span;
            let metric = Arc::clone(&source.source);
            let permits = self.options.metric_permits.clone();
            let limit = self.options.timeouts.metric;
            let task = tokio::spawn(async move {
                let fetch = async {
                    let _permit = match &permits {
                        Some(permits) => Some(permits.acquire().await),
                        None => None,
                    };
                    metric.fetch_range(&query, start, end, MIN_RESOLUTION).await
                };
                match timeout(limit, fetch).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::Timeout {
                        backend: "metric source",
                        after: limit,
                        source: format!("range query {query:?} from {start} to {end}").into(),
                    }),
                }
            });
            self.backfills.push(PendingBackfill {
                check: i,
                span,
                task,
            });
        }
    }

    /// Merge every backfill that has finished into its check's history; leave the others running.
    fn merge_finished_backfills(&mut self) {
        if self.backfills.is_empty() {
            return;
        }
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.backfills)
            .into_iter()
            .partition(|b| b.task.is_finished());
        self.backfills = running;
        for mut backfill in done {
            let Some(joined) = (&mut backfill.task).now_or_never() else {
                // Finished tasks are ready; should one not be, it is merged next round.
                self.backfills.push(backfill);
                continue;
            };
            let Some(check) = self.engine.config().checks().get(backfill.check) else {
                continue;
            };
            let name = check.name();
            let points = match joined {
                Ok(Ok(points)) => points,
                Ok(Err(e)) => {
                    tracing::warn!(
                        service = %self.name, check = name, kind = %e.kind(), error = %e,
                        "backfilling the check's history failed; its policy starts without history"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(
                        service = %self.name, check = name, error = %e,
                        "the backfill of the check's history did not finish; its policy starts without history"
                    );
                    continue;
                }
            };
            let slot = match self.state.checks.iter().position(|h| h.check == name) {
                Some(i) => i,
                None => {
                    self.state.checks.push(CheckHistory::new(name));
                    self.state.checks.len() - 1
                }
            };
            match merge_backfill(check.policy().as_ref(), &self.state.checks[slot], points) {
                Some((merged, learned)) => {
                    self.state.checks[slot] = merged;
                    tracing::info!(
                        service = %self.name, check = name, points = learned,
                        span_s = backfill.span.as_secs(),
                        "backfilled the check's history from the metric source"
                    );
                }
                None => tracing::warn!(
                    service = %self.name, check = name,
                    "not backfilling: the policy's live history has no buckets to order the past before"
                ),
            }
        }
    }

    /// One round: read the status, fetch every check, evaluate, scale if needed, and record.
    ///
    /// A backfill that has finished since the last round is merged first, so this round already uses it.
    pub async fn evaluate_once(&mut self) -> Round {
        self.merge_finished_backfills();
        self.log_queries();
        let started = Instant::now();
        let at = self.options.clock.now();
        if let Some(latest) = self.state.clamp_future(at) {
            tracing::warn!(
                service = %self.name, latest = %latest, now = %at,
                "the engine state holds times in the future (a clock that stepped back, or a state from \
                 another host); counting them as now"
            );
        }
        let mut round = Round {
            service: self.name.clone(),
            at,
            status: Err((FailureKind::Other, String::new())),
            outside_change: None,
            checks: Vec::new(),
            decision: None,
            scale: ScaleResult::NotNeeded,
            duration: Duration::ZERO,
            backoff: self.backoff,
        };

        let status = match call(
            self.options.timeouts.status,
            "status read",
            self.options.scaler.status(),
        )
        .await
        {
            Ok(status) => status,
            Err(e) => {
                let error = quiet_error(&e, None, at);
                match self.failures.failed(Failing::Status, e.kind(), at) {
                    Streak::First => tracing::warn!(
                        service = %self.name, kind = %e.kind(), error,
                        "status read failed; skipping this round"
                    ),
                    Streak::Again { count, over } => tracing::warn!(
                        service = %self.name, kind = %e.kind(), error, failures = count,
                        "status read failed {count} times in a row over {}; skipping rounds until it works",
                        fmt_span(over)
                    ),
                    Streak::Quiet { count } => tracing::debug!(
                        service = %self.name, kind = %e.kind(), error, failures = count,
                        "status read failed again; skipping this round"
                    ),
                }
                round.status = Err((e.kind(), e.to_string()));
                round.duration = started.elapsed();
                return round;
            }
        };
        round.status = Ok(status);
        if let Some((count, over)) = self.failures.recovered(Failing::Status, at) {
            tracing::info!(
                service = %self.name, failures = count,
                "status read works again after {count} failures over {}", fmt_span(over)
            );
        }
        round.outside_change = self.note_outside_change(at, status.current);

        let results = self.fetch_all(at).await;
        let (observations, messages) = self.observe(results, at);
        let mut per_check = vec![None; observations.len()];
        let (decision, state) = self.engine.evaluate_checks(
            std::mem::take(&mut self.state),
            status,
            &observations,
            at,
            &mut per_check,
        );
        self.state = state;
        round.checks = self.readings(&observations, &messages, &per_check);
        self.log_decision(&round, &decision);

        if decision.is_change() {
            round.scale = if self.options.dry_run {
                tracing::info!(
                    service = %self.name, from = decision.current, to = decision.desired,
                    reason = %decision.reason, "would scale (dry run)"
                );
                ScaleResult::DryRun
            } else if let Some(backoff) = self.backoff.filter(|b| at < b.retry_at) {
                tracing::debug!(
                    service = %self.name, from = decision.current, to = decision.desired,
                    failures = backoff.consecutive_failures, retry_at = %backoff.retry_at,
                    "not scaling: backing off after repeated scale failures"
                );
                ScaleResult::BackingOff
            } else {
                self.apply(&decision, at).await
            };
        }
        round.backoff = self.backoff;
        round.decision = Some(decision);
        round.duration = started.elapsed();
        round
    }

    /// Run rounds every `interval` until `shutdown` turns true (or its sender is dropped), calling `on_round`
    /// after each one. A round in progress when shutdown arrives runs to its end (its backend calls have their
    /// own timeouts). Returns the final state, for persisting.
    ///
    /// When the scaler has a [change feed](Scaler::changes), a notification between rounds is followed, after
    /// at most [`COALESCE_CHANGES`] (a burst is read once), by an [observation](Self::observe_status): a status read
    /// that records an outside change at once. It never evaluates nor scales, and the rounds keep their
    /// schedule. `on_round` hears of it through the state the next round reports;
    /// [`run_instructed`](Self::run_instructed) reports it as [`LoopEvent::Observed`].
    pub async fn run<F>(self, shutdown: watch::Receiver<bool>, mut on_round: F) -> EngineState
    where
        F: FnMut(&Round, &EngineState) + Send,
    {
        // A sender dropped at once: no instruction ever comes.
        let (_, instructions) = mpsc::channel(1);
        self.run_instructed(shutdown, instructions, move |event, state| {
            if let LoopEvent::Round(round) = event {
                on_round(round, state);
            }
        })
        .await
    }

    /// [`run`](Self::run), also taking [`Instruction`]s from `instructions` between rounds: each is applied
    /// at once (a round in progress finishes first), answered with the pause in force, and reported to
    /// `on_event` with the new state, for persisting.
    pub async fn run_instructed<F>(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        mut instructions: mpsc::Receiver<Instruction>,
        mut on_event: F,
    ) -> EngineState
    where
        F: FnMut(LoopEvent<'_>, &EngineState) + Send,
    {
        self.start_backfill();
        // A stable per-service phase offset (up to a tenth of the interval) spreads services' rounds apart.
        let start = Instant::now() + phase_offset(&self.name, self.options.interval);
        let mut ticker = tokio::time::interval_at(start, self.options.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut open = true;
        let mut feed = self.options.scaler.changes();
        // When the observation of the notifications received so far is due.
        let mut observe_at: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                instruction = instructions.recv(), if open => match instruction {
                    Some(instruction) => {
                        let before = self.state.pause;
                        let reply = match instruction {
                            Instruction::Pause(directions, reply) => {
                                self.pause(directions);
                                reply
                            }
                            Instruction::Resume(reply) => {
                                self.resume();
                                reply
                            }
                        };
                        let _ = reply.send(self.state.pause);
                        on_event(LoopEvent::Paused(before, self.state.pause), &self.state);
                    }
                    None => open = false,
                },
                _ = ticker.tick() => {
                    // The round's own status read covers what was notified so far.
                    if let Some(feed) = &mut feed {
                        feed.mark_seen();
                    }
                    observe_at = None;
                    let round = self.evaluate_once().await;
                    on_event(LoopEvent::Round(&round), &self.state);
                }
                _ = tokio::time::sleep_until(observe_at.unwrap_or_else(Instant::now)),
                    if observe_at.is_some() =>
                {
                    observe_at = None;
                    if let Some(feed) = &mut feed {
                        feed.mark_seen();
                    }
                    if let Some(observation) = self.observe_status().await {
                        on_event(LoopEvent::Observed(&observation), &self.state);
                    }
                }
                changed = next_change(&mut feed), if observe_at.is_none() => {
                    if changed {
                        observe_at = Some(Instant::now() + COALESCE_CHANGES);
                    } else {
                        tracing::debug!(
                            service = %self.name,
                            "the scaler stopped its change feed; outside changes are seen at the rounds"
                        );
                        feed = None;
                    }
                }
            }
        }
        self.state
    }

    /// Read the status between rounds, on a notification from the scaler's [change feed](Scaler::changes):
    /// an *observation*. An outside change it finds is recorded exactly as a round records it (a scale event
    /// for the cooldowns and rate rules, the pause of a service taken to 0, the same log lines); it never
    /// evaluates the checks nor scales. `None` when the read fails (logged at debug level: the next round
    /// reads again, and reports a failure that lasts).
    ///
    /// [`run`](Self::run) and [`run_instructed`](Self::run_instructed) call it; a program driving
    /// [`evaluate_once`](Self::evaluate_once) itself may call it on its own notifications.
    pub async fn observe_status(&mut self) -> Option<StatusObservation> {
        let at = self.options.clock.now();
        match call(
            self.options.timeouts.status,
            "status read",
            self.options.scaler.status(),
        )
        .await
        {
            Ok(status) => {
                let outside_change = self.note_outside_change(at, status.current);
                Some(StatusObservation {
                    service: self.name.clone(),
                    at,
                    status,
                    outside_change,
                })
            }
            Err(e) => {
                tracing::debug!(
                    service = %self.name, kind = %e.kind(), error = quiet_error(&e, None, at),
                    "status read between rounds failed; the next round reads again"
                );
                None
            }
        }
    }

    /// Record a count that differs from the last one known as a change made outside autoscale, and follow a
    /// service taken to 0 or brought back from it. Returns the change, `(last known, found)`.
    fn note_outside_change(
        &mut self,
        at: Timestamp,
        current: Replicas,
    ) -> Option<(Replicas, Replicas)> {
        let change = self.state.observe_replicas(at, current).map(|from| {
            tracing::info!(
                service = %self.name, from, to = current,
                "replica count changed outside autoscale; recorded as a scaling action"
            );
            (from, current)
        });
        self.follow_zero_outside(at, change, current);
        change
    }

    /// A running service taken to 0 outside autoscale is paused (unless configured to be restored), and a
    /// service so paused resumes once it is back above 0. A first observation of 0 is a service never
    /// started: it is no change, and the engine raises it to `min_replicas`.
    fn follow_zero_outside(
        &mut self,
        at: Timestamp,
        outside: Option<(Replicas, Replicas)>,
        current: Replicas,
    ) {
        let paused_by_zero = self
            .state
            .pause
            .is_some_and(|p| p.by == PausedBy::ZeroOutside);
        if paused_by_zero && current > 0 {
            self.state.pause = None;
            tracing::info!(
                service = %self.name, current,
                "the service is back above 0 replicas: autoscaling resumes"
            );
        } else if let Some((from, 0)) = outside
            && from > 0
            && self.options.on_zero_outside == OnZeroOutside::Pause
            && self.state.pause.is_none()
        {
            self.state.pause = Some(RuntimePause {
                directions: Pause::All,
                by: PausedBy::ZeroOutside,
                since: at,
            });
        }
    }

    /// Every check's result.
    async fn fetch_all(&self, at: Timestamp) -> Vec<crate::Result<f64>> {
        let fetches = self.sources.iter().map(|check| async move {
            let fetch = async {
                let _permit = match &self.options.metric_permits {
                    Some(permits) => Some(permits.acquire().await),
                    None => None,
                };
                check.source.fetch(&check.query, at).await
            };
            match timeout(self.options.timeouts.metric, fetch).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::Timeout {
                    backend: "metric source",
                    after: self.options.timeouts.metric,
                    source: format!("query `{}`", check.query).into(),
                }),
            }
        });
        join_all(fetches).await
    }

    /// The checks' results as observations, with the message of each failed query (backends keep secrets
    /// out of it), logging a failure when it starts, every [`FailureLog::EVERY`] while it lasts, and when it
    /// ends.
    fn observe(
        &mut self,
        results: Vec<crate::Result<f64>>,
        at: Timestamp,
    ) -> (Vec<Observation>, Vec<Option<String>>) {
        let checks = self.engine.config().checks();
        let mut observations = Vec::with_capacity(results.len());
        let mut messages = Vec::with_capacity(results.len());
        for (i, (result, check)) in results.into_iter().zip(checks).enumerate() {
            let check = check.name();
            match result {
                Ok(value) => {
                    if let Some((count, over)) = self.failures.recovered(Failing::Check(i), at) {
                        tracing::info!(
                            service = %self.name, check, failures = count,
                            "metric query works again after {count} failures over {}", fmt_span(over)
                        );
                    }
                    observations.push(Observation::Value(value));
                    messages.push(None);
                }
                Err(e) => {
                    let query = self.sources.get(i).map(CheckSource::query);
                    let error = quiet_error(&e, query, at);
                    match self.failures.failed(Failing::Check(i), e.kind(), at) {
                        Streak::First => tracing::warn!(
                            service = %self.name, check, kind = %e.kind(), error,
                            "metric query failed"
                        ),
                        Streak::Again { count, over } => tracing::warn!(
                            service = %self.name, check, kind = %e.kind(), error, failures = count,
                            "metric query failed {count} times in a row over {}", fmt_span(over)
                        ),
                        Streak::Quiet { count } => tracing::debug!(
                            service = %self.name, check, kind = %e.kind(), error, failures = count,
                            "metric query failed again"
                        ),
                    }
                    observations.push(Observation::Failed(e.kind()));
                    messages.push(Some(e.to_string()));
                }
            }
        }
        (observations, messages)
    }

    /// Each check's query, once per loop at debug level, so that the warnings can name the check alone.
    fn log_queries(&mut self) {
        if std::mem::replace(&mut self.queries_logged, true) {
            return;
        }
        for (check, source) in self.engine.config().checks().iter().zip(&self.sources) {
            tracing::debug!(
                service = %self.name, check = check.name(), query = source.query(),
                backfill = source.backfill_query(), "check query"
            );
        }
    }

    /// Each check's value and, from the evaluation just made, its own recommendation.
    fn readings(
        &self,
        observations: &[Observation],
        messages: &[Option<String>],
        per_check: &[Option<Replicas>],
    ) -> Vec<CheckReading> {
        let checks = self.engine.config().checks();
        observations
            .iter()
            .enumerate()
            .map(|(i, obs)| {
                // The query's own message when it failed; the kind alone for a value the engine refused.
                let result = self.engine.classify(i, Some(*obs)).map_err(|kind| {
                    let message = messages.get(i).cloned().flatten();
                    (kind, message.unwrap_or_else(|| format!("{kind}")))
                });
                let recommendation = per_check.get(i).copied().flatten();
                CheckReading {
                    name: checks[i].name().to_owned(),
                    result,
                    recommendation,
                }
            })
            .collect()
    }

    fn log_decision(&self, round: &Round, decision: &Decision) {
        for reading in &round.checks {
            let (Ok(value), Some(rec)) = (&reading.result, reading.recommendation) else {
                continue;
            };
            let value = round_to_4_digits(*value);
            if rec > decision.current {
                tracing::info!(
                    service = %self.name, check = %reading.name, value, recommendation = rec,
                    current = decision.current,
                    "ABOVE scale-up threshold: check {} = {value} recommends {rec} replicas", reading.name
                );
            } else if rec < decision.current {
                tracing::info!(
                    service = %self.name, check = %reading.name, value, recommendation = rec,
                    current = decision.current,
                    "BELOW scale-down threshold: check {} = {value} recommends {rec} replicas", reading.name
                );
            }
        }
        // The reason goes in the message only, once; the token is the field to filter on.
        match decision.reason.token {
            Token::Cooldown => tracing::info!(
                service = %self.name, token = %decision.reason.token.as_str(),
                "Scaling action postponed: {}", decision.reason
            ),
            Token::RateLimited | Token::Stabilized | Token::Paused
                if decision.desired == decision.current =>
            {
                tracing::info!(
                    service = %self.name, token = %decision.reason.token.as_str(),
                    "Scaling action postponed: {}", decision.reason
                );
            }
            _ => tracing::debug!(
                service = %self.name, current = decision.current, desired = decision.desired,
                reason = %decision.reason, "evaluated"
            ),
        }
    }

    async fn apply(&mut self, decision: &Decision, at: Timestamp) -> ScaleResult {
        match call(
            self.options.timeouts.scale,
            "scale",
            self.options.scaler.scale(decision.desired),
        )
        .await
        {
            Ok(outcome) => {
                self.backoff = None;
                if let Some((count, over)) = self.failures.recovered(Failing::Scale, at) {
                    tracing::info!(
                        service = %self.name, failures = count,
                        "scale calls work again after {count} failures over {}", fmt_span(over)
                    );
                }
                self.state
                    .record_scale(at, decision.current, decision.desired);
                tracing::info!(
                    service = %self.name, from = decision.current, to = decision.desired,
                    reason = %decision.reason,
                    "Successfully scaled to {} replicas", decision.desired
                );
                match outcome {
                    ScaleOutcome::Scaled => ScaleResult::Scaled,
                    ScaleOutcome::Unchanged => ScaleResult::Unchanged,
                }
            }
            Err(e) => {
                let backoff = ScaleBackoff::after_failure(self.backoff, at, self.options.interval);
                self.backoff = Some(backoff);
                let wait = backoff.retry_at.saturating_since(at);
                let error = quiet_error(&e, None, at);
                let failures = backoff.consecutive_failures;
                match self.failures.failed(Failing::Scale, e.kind(), at) {
                    Streak::Quiet { .. } => tracing::debug!(
                        service = %self.name, from = decision.current, to = decision.desired,
                        kind = %e.kind(), error, failures, wait_s = wait.as_secs_f64(),
                        "Scaling action failed again"
                    ),
                    _ if !wait.is_zero() => tracing::error!(
                        service = %self.name, from = decision.current, to = decision.desired,
                        kind = %e.kind(), error, failures, wait_s = wait.as_secs_f64(),
                        "Scaling action failed {failures} times in a row; the next attempt waits {}",
                        fmt_span(wait)
                    ),
                    _ => tracing::error!(
                        service = %self.name, from = decision.current, to = decision.desired,
                        kind = %e.kind(), error, failures,
                        "Scaling action failed; it will be retried at the next evaluation"
                    ),
                }
                ScaleResult::Failed {
                    kind: e.kind(),
                    message: e.to_string(),
                }
            }
        }
    }
}

/// A check's history with its backfilled past put before what the loop has recorded live, and how many of the
/// past `points` it took in. `None` when `live` cannot be ordered against the past (it holds statistics but no
/// buckets), and is better kept as it is.
///
/// The history is rebuilt through the policy, as if the loop had run all along: a fresh history learns
/// ([`Policy::learn`]) the backfilled points older than the first live bucket, oldest first, then the live
/// buckets on top, each as one sample of its mean at its start. Where the two overlap the live samples win.
/// A live bucket's maximum and sample count are not kept (it becomes one sample of its mean), which changes a
/// forecast by at most the spread within a minute of the first minutes after start.
pub fn merge_backfill(
    policy: &dyn Policy,
    live: &CheckHistory,
    mut points: Vec<(Timestamp, f64)>,
) -> Option<(CheckHistory, usize)> {
    let first_live = live.buckets.front().map(|b| b.start);
    if first_live.is_none() && !live.is_empty() {
        return None;
    }
    points.sort_by_key(|&(at, _)| at);
    let mut merged = CheckHistory::new(live.check.clone());
    let mut learned = 0;
    for (at, demand) in points {
        if first_live.is_some_and(|first| at >= first) {
            break;
        }
        policy.learn(&mut merged, at, demand);
        learned += 1;
    }
    for bucket in &live.buckets {
        policy.learn(&mut merged, bucket.start, bucket.mean);
    }
    Some((merged, learned))
}

/// How long the loop gathers a burst of change notifications before it reads the status once.
pub const COALESCE_CHANGES: Duration = Duration::from_millis(100);

/// The next notification of `feed`; never, without a feed.
async fn next_change(feed: &mut Option<ChangeFeed>) -> bool {
    match feed {
        Some(feed) => feed.changed().await,
        None => std::future::pending().await,
    }
}

/// A backend call under a timeout, with the timeout as a typed error.
async fn call<T>(
    limit: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    match timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            backend: "scaler",
            after: limit,
            source: format!("{what} did not finish").into(),
        }),
    }
}

/// What can fail again and again in a loop, each logged on its own: the status read, one check's query (by
/// its index) and the scale call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failing {
    Status,
    Check(usize),
    Scale,
}

/// How to log one more failure of a kind that may be repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streak {
    /// The first failure (or a new kind of failure): log it in full.
    First,
    /// [`FailureLog::EVERY`] has passed since it was last logged: log it again with the count.
    Again { count: u32, over: Duration },
    /// Logged recently: only at debug level.
    Quiet { count: u32 },
}

/// Repeated failures, logged when they start, then every [`FailureLog::EVERY`] with their count, and when
/// they end, rather than at every round.
#[derive(Debug, Default)]
struct FailureLog {
    /// What is failing: since when, of which kind, how often, and when it was last logged.
    open: Vec<(Failing, FailureKind, Timestamp, u32, Timestamp)>,
}

impl FailureLog {
    /// How often a failure that lasts is logged again.
    const EVERY: Duration = Duration::from_secs(300);

    fn failed(&mut self, what: Failing, kind: FailureKind, at: Timestamp) -> Streak {
        match self.open.iter_mut().find(|f| f.0 == what) {
            Some((_, k, since, count, logged)) if *k == kind => {
                *count = count.saturating_add(1);
                if at.saturating_since(*logged) >= Self::EVERY {
                    *logged = at;
                    Streak::Again {
                        count: *count,
                        over: at.saturating_since(*since),
                    }
                } else {
                    Streak::Quiet { count: *count }
                }
            }
            Some(open) => {
                *open = (what, kind, at, 1, at);
                Streak::First
            }
            None => {
                self.open.push((what, kind, at, 1, at));
                Streak::First
            }
        }
    }

    /// The count and length of the failure of `what` that this success ends, if one was open.
    fn recovered(&mut self, what: Failing, at: Timestamp) -> Option<(u32, Duration)> {
        let i = self.open.iter().position(|f| f.0 == what)?;
        let (_, _, since, count, _) = self.open.swap_remove(i);
        Some((count, at.saturating_since(since)))
    }
}

/// A span for a log line, to the second: `45s`, `5m0s`, `2h3m`.
fn fmt_span(span: Duration) -> String {
    let secs = span.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `value` rounded to 4 significant digits, as log lines show values: `0.8333`, not `0.8333333333333334`.
/// Still a number, so that JSON logs keep it one.
fn round_to_4_digits(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let digits = 3 - value.abs().log10().floor() as i32;
    if digits >= 0 {
        let scale = 10_f64.powi(digits);
        (value * scale).round() / scale
    } else {
        let scale = 10_f64.powi(-digits);
        (value / scale).round() * scale
    }
}

/// An error for a log line that repeats: its brief form ([`brief_error`](crate::brief_error)), without the
/// query text (the first round logs each check's query) and without the evaluation time.
fn quiet_error(error: &Error, query: Option<&str>, at: Timestamp) -> String {
    let mut text = crate::error::brief_error(error);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        // A backend that names the query says what it asked before `: ` and what came back after it: keep the
        // answer. Otherwise the query's text gives way to a mention of it.
        let quoted = format!("`{query}`");
        let query = if text.contains(&quoted) {
            quoted.as_str()
        } else {
            query
        };
        text = match text.find(query) {
            Some(start) => match text[start + query.len()..].find(": ") {
                Some(end) => {
                    let head_end = text[..start].rfind(": ").map_or(0, |i| i + 2);
                    let tail = start + query.len() + end + 2;
                    format!("{}{}", &text[..head_end], &text[tail..])
                }
                None => text.replace(query, "its query"),
            },
            None => text,
        };
    }
    text.replace(&format!(" at {at}"), "")
}

/// A stable offset in `[0, interval / 10)` derived from the service's name (FNV-1a).
fn phase_offset(name: &str, interval: Duration) -> Duration {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let tenth = (interval.as_millis() / 10).max(1);
    Duration::from_millis(u64::try_from(u128::from(hash) % tenth).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_offsets_are_stable_and_small() {
        let interval = Duration::from_secs(10);
        assert_eq!(phase_offset("web", interval), phase_offset("web", interval));
        assert!(phase_offset("web", interval) < Duration::from_secs(1));
        assert_ne!(phase_offset("web", interval), phase_offset("api", interval));
    }
}
