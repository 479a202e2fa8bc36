//! The three seams of autoscale: where metrics come from, how a number becomes a recommendation, and how a
//! replica count is applied.
//!
//! Backends are chosen at run time from config, so all three are dyn-compatible and are held as
//! `Arc<dyn Trait>`. Each has as few required methods as it can, and no default methods that a wrapper could
//! silently skip.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::CheckHistory;
use crate::error::{Error, Result};
use crate::policy::PolicyContext;
use crate::types::{ReplicaStatus, Replicas, Timestamp};

/// Where one check's value comes from: Prometheus, or anything else that can answer a query.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MetricSource: Send + Sync + fmt::Debug {
    /// Fetch the value of `query` as of `at`.
    ///
    /// Returning a value means "this is the metric"; any doubt (no sample, several series, NaN unless the
    /// source is configured to accept it) must be an error, because a wrong value is a wrong scaling action.
    async fn fetch(&self, query: &str, at: Timestamp) -> Result<f64>;

    /// Fetch the values of `query` over `[start, end]`, about one point every `step`, oldest first: the past
    /// a forecasting policy learns from before its first evaluation (see [`Policy::backfill`]).
    ///
    /// A source may widen `step` to keep the answer within its limits, and skips the points that have no
    /// usable value (NaN), so the points need not be evenly spaced. Several series are combined as
    /// [`fetch`](Self::fetch) would combine them, or are an error.
    ///
    /// The default returns [`Error::Rejected`]: a source that cannot read the past says so, and the policy
    /// starts without history. Unlike `fetch` it is optional, because most sources are live gauges with no
    /// past to read; a source that wraps another must forward it, or backfilling through it stops working.
    async fn fetch_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<(Timestamp, f64)>> {
        let _ = (start, end, step);
        Err(Error::Rejected {
            backend: "metric source",
            source: format!("this metric source cannot read a range of values (query {query:?})")
                .into(),
        })
    }
}

/// What a [`Scaler::scale`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleOutcome {
    /// The backend was told to run the new count.
    Scaled,
    /// The service already had that count: nothing was run.
    Unchanged,
}

/// Reads and sets the replica count of one service (a compose service, a Swarm service, a playbook's target).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Scaler: Send + Sync + fmt::Debug {
    /// The service's desired count and how many of those are ready.
    async fn status(&self) -> Result<ReplicaStatus>;

    /// Ask the backend to run `replicas` replicas. Setting the count the service already has is a no-op that
    /// returns [`ScaleOutcome::Unchanged`].
    async fn scale(&self, replicas: Replicas) -> Result<ScaleOutcome>;

    /// Notifications that the service may have changed outside autoscale (an operator's `docker service
    /// scale`, a container that died), for a backend that can watch for them; `None`, the default, for one
    /// that cannot.
    ///
    /// The per-service loop asks once when it starts and holds the feed while it runs. On a notification it
    /// reads the status between rounds (an *observation*, see
    /// [`ServiceLoop::observe_status`](crate::controller::ServiceLoop::observe_status)), so an outside change reaches the cooldown bookkeeping
    /// and the reports within a moment instead of at the next round. A notification only says "read again":
    /// spurious ones (the loop's own scale actions) cost one status read and change nothing. A scaler that
    /// wraps another should forward its feed, or the loop sees outside changes only at its rounds.
    fn changes(&self) -> Option<ChangeFeed> {
        None
    }
}

/// A stream of "the service may have changed" notifications from a [`Scaler`] ([`Scaler::changes`]).
///
/// The backend bumps a [`watch`](tokio::sync::watch) channel; a burst of bumps between two reads is seen as
/// one. The feed may carry a guard the backend keeps alive while the feed is held (say, its subscription to an
/// event stream, which stops when the last feed is dropped).
///
/// ```
/// use autoscale_core::ChangeFeed;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (notify, receiver) = tokio::sync::watch::channel(0_u64);
/// let mut feed = ChangeFeed::new(receiver);
/// notify.send_modify(|n| *n += 1);
/// notify.send_modify(|n| *n += 1);
/// assert!(feed.changed().await, "two notifications, seen as one");
/// feed.mark_seen();
/// drop(notify);
/// assert!(!feed.changed().await, "the backend stopped the feed");
/// # }
/// ```
pub struct ChangeFeed {
    receiver: tokio::sync::watch::Receiver<u64>,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl ChangeFeed {
    /// A feed that fires when `receiver`'s value changes; what was sent before counts as seen.
    pub fn new(mut receiver: tokio::sync::watch::Receiver<u64>) -> Self {
        receiver.mark_unchanged();
        ChangeFeed {
            receiver,
            _guard: None,
        }
    }

    /// Keep `guard` alive as long as the feed: dropping the feed drops it.
    pub fn with_guard(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// Wait for a notification not yet [seen](Self::mark_seen); at once if one is pending. `false` once the
    /// backend has stopped the feed: no notification will come.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }

    /// Count every notification so far as seen: the status read that follows covers them.
    pub fn mark_seen(&mut self) {
        self.receiver.mark_unchanged();
    }
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("notifications", &*self.receiver.borrow())
            .field("guarded", &self._guard.is_some())
            .finish()
    }
}

/// Turns one check's value and the service's status into a recommended replica count. Synchronous and pure:
/// the same value, status and history always give the same recommendation.
///
/// A memoryless policy ignores its [`PolicyContext`]. A policy that learns from the past (the
/// [`PredictivePolicy`](crate::policy::PredictivePolicy)) records into the check's history through it; the
/// history lives in the [`EngineState`](crate::EngineState), so it is persisted and replayed like the rest.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Policy: Send + Sync + fmt::Debug {
    /// A short, stable name of the policy's kind, such as `target` or `threshold`. The simulator's summary
    /// joins the kinds of a service's checks with `+`.
    fn kind(&self) -> &str;

    /// The replica count this policy recommends for `value` given `status`, at `context.now()`.
    ///
    /// The value is finite unless the check was configured to accept non-finite values. The engine calls this
    /// once per evaluation and check, with the check's own history in `context`.
    fn recommend<'a>(
        &self,
        value: f64,
        status: ReplicaStatus,
        context: &mut PolicyContext<'a>,
    ) -> Replicas;

    /// How much of the past this policy wants in its check's history before its first evaluation, so that a
    /// runner with a metric store can fill it ([`learn`](Self::learn)). `None`, the default, for a policy that
    /// keeps no history.
    fn backfill(&self) -> Option<Duration> {
        None
    }

    /// Take in one past sample of demand at `at`, oldest first, as evaluations at that time would have
    /// recorded it. The default does nothing, which is right for a policy without history.
    fn learn(&self, history: &mut CheckHistory, at: Timestamp, demand: f64) {
        let _ = (history, at, demand);
    }
}

/// Compile-time guard: all three traits must stay usable as trait objects.
fn _dyn_compatible(_: &dyn MetricSource, _: &dyn Scaler, _: &dyn Policy) {}
