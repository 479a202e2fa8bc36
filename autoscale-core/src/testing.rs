//! In-memory fakes for tests and examples, the shared backend conformance suite, and the rule for tests that
//! need a real service. Enabled by the `testing` feature.
//!
//! The fakes are real implementations of the traits with scripted behaviour; they are for unit tests, loop
//! tests and examples only. Integration tests run against the real Prometheus, dockerd and ansible-playbook.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::traits::{ChangeFeed, MetricSource, ScaleOutcome, Scaler};
use crate::types::{FailureKind, ReplicaStatus, Replicas, Timestamp};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data usable for its report.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error of the given kind, as a fake backend would return it.
pub fn fake_error(kind: FailureKind) -> Error {
    let source = format!("scripted {kind} failure").into();
    let backend = "fake";
    match kind {
        FailureKind::Unavailable => Error::Unavailable { backend, source },
        FailureKind::Timeout => Error::Timeout {
            backend,
            after: std::time::Duration::from_secs(5),
            source,
        },
        FailureKind::InvalidQuery => Error::InvalidQuery { backend, source },
        FailureKind::Empty => Error::Empty { backend, source },
        FailureKind::BadResult | FailureKind::NonFinite => Error::BadResult { backend, source },
        FailureKind::Rejected => Error::Rejected { backend, source },
        FailureKind::Other => Error::Other { backend, source },
    }
}

/// A metric source whose answers are scripted per query.
///
/// Each query has a queue of answers; a fetch pops the front, and the last answer repeats once the queue has
/// one left. A query with no script fails as [`FailureKind::Empty`].
///
/// Its past, for [`MetricSource::fetch_range`], is scripted apart ([`set_range`](Self::set_range)): a range
/// fetch answers the scripted points inside the range asked, after [`with_range_delay`](Self::with_range_delay)
/// of tokio time.
#[derive(Debug, Default, Clone)]
pub struct ScriptedSource {
    inner: Arc<Mutex<ScriptedInner>>,
}

#[derive(Debug, Default)]
struct ScriptedInner {
    answers: HashMap<String, VecDeque<std::result::Result<f64, FailureKind>>>,
    fetches: Vec<(String, Timestamp)>,
    ranges: HashMap<String, std::result::Result<Vec<(Timestamp, f64)>, FailureKind>>,
    range_fetches: Vec<RangeFetch>,
    range_delay: std::time::Duration,
}

/// One [`MetricSource::fetch_range`] call a [`ScriptedSource`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeFetch {
    /// The query.
    pub query: String,
    /// The range's start.
    pub start: Timestamp,
    /// The range's end.
    pub end: Timestamp,
    /// The step asked for.
    pub step: std::time::Duration,
}

impl ScriptedSource {
    /// A source with no scripts.
    pub fn new() -> Self {
        Self::default()
    }

    /// A source that always answers `value` for `query`.
    pub fn constant(query: &str, value: f64) -> Self {
        let source = Self::new();
        source.push(query, Ok(value));
        source
    }

    /// Append an answer to `query`'s script.
    pub fn push(&self, query: &str, answer: std::result::Result<f64, FailureKind>) {
        lock(&self.inner)
            .answers
            .entry(query.to_owned())
            .or_default()
            .push_back(answer);
    }

    /// Replace `query`'s script with a single answer that repeats.
    pub fn set(&self, query: &str, answer: std::result::Result<f64, FailureKind>) {
        lock(&self.inner)
            .answers
            .insert(query.to_owned(), VecDeque::from([answer]));
    }

    /// Every fetch so far, in order.
    pub fn fetches(&self) -> Vec<(String, Timestamp)> {
        lock(&self.inner).fetches.clone()
    }

    /// Script `query`'s past: the points a range fetch answers (those inside the range asked), or its failure.
    pub fn set_range(
        &self,
        query: &str,
        answer: std::result::Result<Vec<(Timestamp, f64)>, FailureKind>,
    ) {
        lock(&self.inner).ranges.insert(query.to_owned(), answer);
    }

    /// Make every range fetch take `delay` (tokio time) before it answers, like a slow server.
    pub fn with_range_delay(self, delay: std::time::Duration) -> Self {
        lock(&self.inner).range_delay = delay;
        self
    }

    /// Every range fetch so far, in order (recorded when it starts).
    pub fn range_fetches(&self) -> Vec<RangeFetch> {
        lock(&self.inner).range_fetches.clone()
    }
}

#[async_trait]
impl MetricSource for ScriptedSource {
    async fn fetch(&self, query: &str, at: Timestamp) -> Result<f64> {
        let mut inner = lock(&self.inner);
        inner.fetches.push((query.to_owned(), at));
        let answer = match inner.answers.get_mut(query) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().copied(),
            None => None,
        };
        match answer {
            Some(Ok(v)) => Ok(v),
            Some(Err(kind)) => Err(fake_error(kind)),
            None => Err(fake_error(FailureKind::Empty)),
        }
    }

    async fn fetch_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: std::time::Duration,
    ) -> Result<Vec<(Timestamp, f64)>> {
        let delay = {
            let mut inner = lock(&self.inner);
            inner.range_fetches.push(RangeFetch {
                query: query.to_owned(),
                start,
                end,
                step,
            });
            inner.range_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match lock(&self.inner).ranges.get(query) {
            Some(Ok(points)) => Ok(points
                .iter()
                .copied()
                .filter(|&(at, _)| start <= at && at <= end)
                .collect()),
            Some(Err(kind)) => Err(fake_error(*kind)),
            None => Err(fake_error(FailureKind::Empty)),
        }
    }
}

/// A scaler that keeps the replica count in memory and records every call.
///
/// Failures can be scripted: each queued failure is returned by the next `scale` call instead of scaling.
/// A change made outside autoscale, such as replicas that are not ready yet, is set with
/// [`set_outside`](RecordingScaler::set_outside).
///
/// Without [`with_change_feed`](RecordingScaler::with_change_feed) it has no [change feed](Scaler::changes),
/// like a backend that cannot watch; with it, [`notify`](RecordingScaler::notify) fires one notification, as
/// an event stream would.
#[derive(Debug, Clone)]
pub struct RecordingScaler {
    inner: Arc<Mutex<RecordingInner>>,
    changes: Option<Arc<tokio::sync::watch::Sender<u64>>>,
}

#[derive(Debug)]
struct RecordingInner {
    scale_delay: std::time::Duration,
    in_flight: usize,
    max_in_flight: usize,
    status: ReplicaStatus,
    scale_calls: Vec<Replicas>,
    status_calls: usize,
    scale_failures: VecDeque<FailureKind>,
    status_failures: VecDeque<FailureKind>,
}

impl RecordingScaler {
    /// A scaler whose service runs `replicas`, all ready.
    pub fn new(replicas: Replicas) -> Self {
        RecordingScaler {
            inner: Arc::new(Mutex::new(RecordingInner {
                scale_delay: std::time::Duration::ZERO,
                in_flight: 0,
                max_in_flight: 0,
                status: ReplicaStatus::all_ready(replicas),
                scale_calls: Vec::new(),
                status_calls: 0,
                scale_failures: VecDeque::new(),
                status_failures: VecDeque::new(),
            })),
            changes: None,
        }
    }

    /// Give the scaler a change feed, fired with [`notify`](Self::notify).
    pub fn with_change_feed(mut self) -> Self {
        self.changes = Some(Arc::new(tokio::sync::watch::channel(0).0));
        self
    }

    /// Fire one change notification to every feed taken (nothing without a change feed).
    pub fn notify(&self) {
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// [`set_outside`](Self::set_outside), then [`notify`](Self::notify): a change made outside that the
    /// backend sees at once.
    pub fn set_outside_and_notify(&self, status: ReplicaStatus) {
        self.set_outside(status);
        self.notify();
    }

    /// How many change feeds are held.
    pub fn change_feeds(&self) -> usize {
        self.changes.as_ref().map_or(0, |c| c.receiver_count())
    }

    /// Make every `scale` call take `delay` (tokio time) before it takes effect, like a slow backend.
    pub fn with_scale_delay(self, delay: std::time::Duration) -> Self {
        lock(&self.inner).scale_delay = delay;
        self
    }

    /// The largest number of `scale` calls that were running at the same time.
    pub fn max_concurrent_scales(&self) -> usize {
        lock(&self.inner).max_in_flight
    }

    /// Make the next `scale` call fail with `kind` (calls queue up).
    pub fn fail_next_scale(&self, kind: FailureKind) {
        lock(&self.inner).scale_failures.push_back(kind);
    }

    /// Make the next `status` call fail with `kind` (calls queue up).
    pub fn fail_next_status(&self, kind: FailureKind) {
        lock(&self.inner).status_failures.push_back(kind);
    }

    /// Change the count behind autoscale's back, as an operator running `docker service scale` would.
    pub fn set_outside(&self, status: ReplicaStatus) {
        lock(&self.inner).status = status;
    }

    /// The counts passed to successful and failed `scale` calls, in order.
    pub fn scale_calls(&self) -> Vec<Replicas> {
        lock(&self.inner).scale_calls.clone()
    }

    /// How many times `status` was called.
    pub fn status_calls(&self) -> usize {
        lock(&self.inner).status_calls
    }

    /// The current in-memory status.
    pub fn current(&self) -> ReplicaStatus {
        lock(&self.inner).status
    }
}

#[async_trait]
impl Scaler for RecordingScaler {
    async fn status(&self) -> Result<ReplicaStatus> {
        let mut inner = lock(&self.inner);
        inner.status_calls += 1;
        if let Some(kind) = inner.status_failures.pop_front() {
            return Err(fake_error(kind));
        }
        Ok(inner.status)
    }

    async fn scale(&self, replicas: Replicas) -> Result<ScaleOutcome> {
        /// Counts a call as running until it ends, also when its future is dropped by a timeout.
        struct InFlight<'a>(&'a Mutex<RecordingInner>);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                lock(self.0).in_flight -= 1;
            }
        }
        let delay = {
            let mut inner = lock(&self.inner);
            inner.in_flight += 1;
            inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
            inner.scale_delay
        };
        let _in_flight = InFlight(&self.inner);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut inner = lock(&self.inner);
        inner.scale_calls.push(replicas);
        if let Some(kind) = inner.scale_failures.pop_front() {
            return Err(fake_error(kind));
        }
        if inner.status.current == replicas {
            return Ok(ScaleOutcome::Unchanged);
        }
        inner.status = ReplicaStatus::all_ready(replicas);
        Ok(ScaleOutcome::Scaled)
    }

    fn changes(&self) -> Option<ChangeFeed> {
        self.changes
            .as_ref()
            .map(|c| ChangeFeed::new(c.subscribe()))
    }
}

/// The backend conformance suite every [`Scaler`] passes, through `&dyn Scaler`.
///
/// It walks the service through `plan` (for example `[3, 1]`), checking after each step that:
/// - `status` reads back the requested count as `current`, with `ready <= current`;
/// - `scale` reports [`ScaleOutcome::Scaled`] for a change and [`ScaleOutcome::Unchanged`] for the same count.
///
/// `settle` is awaited after each change, for backends whose replicas take a moment to appear; it receives the
/// count just requested. Panics with a message naming the step that failed.
pub async fn scaler_conformance<F, Fut>(scaler: &dyn Scaler, plan: &[Replicas], settle: F)
where
    F: Fn(Replicas) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let initial = scaler
        .status()
        .await
        .unwrap_or_else(|e| panic!("conformance: the first status read failed: {e}"));
    assert!(
        initial.ready <= initial.current,
        "conformance: ready ({}) must not exceed current ({})",
        initial.ready,
        initial.current
    );
    let mut previous = initial.current;
    for &target in plan {
        let outcome = scaler
            .scale(target)
            .await
            .unwrap_or_else(|e| panic!("conformance: scale {previous} -> {target} failed: {e}"));
        let expected = if target == previous {
            ScaleOutcome::Unchanged
        } else {
            ScaleOutcome::Scaled
        };
        assert_eq!(
            outcome, expected,
            "conformance: scale {previous} -> {target}"
        );
        settle(target).await;
        let status = scaler.status().await.unwrap_or_else(|e| {
            panic!("conformance: status after scaling to {target} failed: {e}")
        });
        assert_eq!(
            status.current, target,
            "conformance: status after scaling to {target}"
        );
        assert!(
            status.ready <= status.current,
            "conformance: ready above current: {status:?}"
        );

        let again = scaler
            .scale(target)
            .await
            .unwrap_or_else(|e| panic!("conformance: repeating scale to {target} failed: {e}"));
        assert_eq!(
            again,
            ScaleOutcome::Unchanged,
            "conformance: scaling to the count the service already has must be a no-op"
        );
        previous = target;
    }
}

/// The value of the environment variable `var` naming a real service a test needs, or `None` after a loud
/// skip message.
///
/// In CI (`CI` set) a missing service is a failure, never a skip: `.ci/run` must start it.
pub fn require_service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{what} is required in CI, but {var} is not set: .ci/run must start it (scripts/test does)"
            );
            // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n########## SKIPPED: {what} is not available ({var} is not set). \
                 Run scripts/test to start it. This test did NOT run. ##########\n"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_recording_scaler_passes_the_conformance_suite() {
        let scaler = RecordingScaler::new(1);
        let boxed: Box<dyn Scaler> = Box::new(scaler.clone());
        scaler_conformance(boxed.as_ref(), &[3, 3, 1], |_| async {}).await;
        assert_eq!(scaler.scale_calls(), vec![3, 3, 3, 3, 1, 1]);
    }

    #[tokio::test]
    async fn scripted_answers_pop_then_repeat() {
        let source = ScriptedSource::new();
        source.push("q", Ok(1.0));
        source.push("q", Err(FailureKind::Timeout));
        source.push("q", Ok(2.0));
        let t = Timestamp::EPOCH;
        assert_eq!(source.fetch("q", t).await.unwrap(), 1.0);
        assert_eq!(
            source.fetch("q", t).await.unwrap_err().kind(),
            FailureKind::Timeout
        );
        assert_eq!(source.fetch("q", t).await.unwrap(), 2.0);
        assert_eq!(source.fetch("q", t).await.unwrap(), 2.0);
        assert_eq!(
            source.fetch("other", t).await.unwrap_err().kind(),
            FailureKind::Empty
        );
        assert_eq!(source.fetches().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_ranges_answer_the_points_inside_the_range_after_their_delay() {
        let source = ScriptedSource::new().with_range_delay(std::time::Duration::from_secs(3));
        let t = Timestamp::from_secs;
        source.set_range("q", Ok(vec![(t(0), 1.0), (t(60), 2.0), (t(120), 3.0)]));
        source.set_range("bad", Err(FailureKind::Unavailable));
        let step = std::time::Duration::from_secs(60);
        let started = tokio::time::Instant::now();
        assert_eq!(
            source.fetch_range("q", t(30), t(120), step).await.unwrap(),
            vec![(t(60), 2.0), (t(120), 3.0)]
        );
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(3));
        assert_eq!(
            source
                .fetch_range("bad", t(0), t(60), step)
                .await
                .unwrap_err()
                .kind(),
            FailureKind::Unavailable
        );
        assert_eq!(
            source
                .fetch_range("none", t(0), t(60), step)
                .await
                .unwrap_err()
                .kind(),
            FailureKind::Empty
        );
        assert_eq!(
            source.range_fetches()[0],
            RangeFetch {
                query: "q".to_owned(),
                start: t(30),
                end: t(120),
                step
            }
        );
        assert_eq!(source.range_fetches().len(), 3);
    }

    #[derive(Debug)]
    struct Live;

    #[async_trait]
    impl MetricSource for Live {
        async fn fetch(&self, _query: &str, _at: Timestamp) -> Result<f64> {
            Ok(1.0)
        }
    }

    #[tokio::test]
    async fn a_source_without_a_past_refuses_a_range_naming_the_query() {
        let source: Box<dyn MetricSource> = Box::new(Live);
        let err = source
            .fetch_range(
                "queue_depth",
                Timestamp::EPOCH,
                Timestamp::from_secs(60),
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), FailureKind::Rejected);
        assert!(err.to_string().contains("cannot read a range"), "{err}");
        assert!(err.to_string().contains("queue_depth"), "{err}");
    }

    #[tokio::test]
    async fn scripted_scale_failures_record_the_call_and_change_nothing() {
        let scaler = RecordingScaler::new(2);
        scaler.fail_next_scale(FailureKind::Unavailable);
        assert!(scaler.scale(4).await.is_err());
        assert_eq!(scaler.current().current, 2);
        assert_eq!(scaler.scale(4).await.unwrap(), ScaleOutcome::Scaled);
        assert_eq!(scaler.scale_calls(), vec![4, 4]);
    }
}
