//! Leader election through a lease in a compare-and-swap store, as Kubernetes' client-go does it.
//!
//! Several autoscale daemons share one target; only the one holding the lease scales. The lease is a record
//! (holder, renew time, duration, transitions) in a store that updates it only at a given version
//! ([`LeaseStore`]): Swarm's Raft store through a placeholder service's labels, in `autoscale-docker`.
//!
//! [`Elector`] is the state machine, pure: it reads no clock and does no I/O. Each attempt, every
//! [`LeaseConfig::retry`], is a read of the record, then [`Elector::decide`] (with the local time the read
//! returned), then the write it asks for, if any, and [`Elector::written`]. [`elect`] drives it with a
//! store and tokio's clock.
//!
//! Safety does not depend on the hosts' clocks agreeing: every time compared is read on one host's own
//! monotonic clock.
//! - A leader leads until its last successful write's start plus `renew_deadline`, whatever the store says
//!   afterwards: a leader cut off from the store stops on time ([`Elector::is_leader`]).
//! - A follower takes over only when the record has not changed for `lease + margin` since it first saw
//!   it (client-go's observed time; a new version with the same record, as Swarm writes when its Raft
//!   leader changes, is not a renewal). The holder's write started before that, so the
//!   follower's takeover starts more than `lease - renew_deadline + margin` after the old leader stopped.
//! - One refinement of client-go: a renewal read late (the store unreachable for a while, as while Swarm
//!   elects a Raft leader) counts from when it was written at the latest, not from when it was read. Each
//!   record carries its holder's monotonic clock ([`LeaseRecord::monotonic`]), so the interval between two
//!   records of one holder is known without comparing clocks of two hosts: the later one started at most
//!   that interval (plus `margin`) after the follower first saw the earlier one. It is used only when the
//!   holder's wall clock agrees with it to within `margin`, which rules out a holder that restarted under
//!   the same identity (a monotonic clock with another origin).
//! - Every write carries the version it read, so of two concurrent writes one fails ([`Written::Conflict`]).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::Timestamp;

/// The timing of an election. The defaults are client-go's: lease 15 s, renew deadline 10 s, retry 2 s, and
/// a margin of 1 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    lease: Duration,
    renew_deadline: Duration,
    retry: Duration,
    margin: Duration,
}

/// Why a [`LeaseConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseConfigError {
    /// The durations are not `0 < retry < renew_deadline < lease`.
    #[error(
        "the lease timing must be 0 < retry ({retry:?}) < renew_deadline ({renew_deadline:?}) < lease ({lease:?})"
    )]
    Order {
        /// The lease.
        lease: Duration,
        /// The renew deadline.
        renew_deadline: Duration,
        /// The retry period.
        retry: Duration,
    },
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease: Self::DEFAULT_LEASE,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            retry: Self::DEFAULT_RETRY,
            margin: Self::DEFAULT_MARGIN,
        }
    }
}

impl LeaseConfig {
    /// How long a lease lasts without renewal, as followers see it.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
    /// How long a leader keeps leading since its last successful renewal.
    pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
    /// How often each candidate tries to acquire or renew.
    pub const DEFAULT_RETRY: Duration = Duration::from_secs(2);
    /// How much longer than the lease a follower waits, for clocks that run at slightly different rates and
    /// the store's latency.
    pub const DEFAULT_MARGIN: Duration = Duration::from_secs(1);

    /// A timing with the default margin; `0 < retry < renew_deadline < lease`.
    pub fn new(
        lease: Duration,
        renew_deadline: Duration,
        retry: Duration,
    ) -> Result<Self, LeaseConfigError> {
        if retry.is_zero() || retry >= renew_deadline || renew_deadline >= lease {
            return Err(LeaseConfigError::Order {
                lease,
                renew_deadline,
                retry,
            });
        }
        Ok(LeaseConfig {
            lease,
            renew_deadline,
            retry,
            margin: Self::DEFAULT_MARGIN,
        })
    }

    /// With another margin.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The renew deadline.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// The retry period.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// The margin.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Who holds it; empty when released.
    pub holder: String,
    /// When the holder last renewed it, by the holder's wall clock: for people reading the store, never
    /// compared with another host's clock.
    pub renewed_at: Timestamp,
    /// How long it lasts without renewal, as the holder configured it.
    pub lease: Duration,
    /// How many times it changed hands.
    pub transitions: u32,
    /// The holder's monotonic clock when it started writing this record, from an origin of its own: only
    /// the difference between two records of one holder means anything. `None` when released, or written
    /// by a version that did not record it.
    pub monotonic: Option<Timestamp>,
}

/// A record with the version the store gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The record.
    pub record: LeaseRecord,
    /// Its version: a write must name it.
    pub version: u64,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another writer changed the record since it was read (or created it first): the compare-and-swap lost.
    #[error("the lease changed since it was read")]
    Conflict,
    /// The store could not be read or written.
    #[error("the lease store failed: {0}")]
    Store(#[source] crate::BoxError),
}

/// Where the lease lives: a record with a version, updated only at the version read.
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// The record and its version, or `None` when there is none yet.
    async fn get(&self) -> Result<Option<Versioned>, LeaseError>;

    /// Write `record` if the stored version is still `version` (`None`: create it, if there is none).
    /// Returns the new version; [`LeaseError::Conflict`] when another write came first.
    async fn update(&self, record: &LeaseRecord, version: Option<u64>) -> Result<u64, LeaseError>;
}

/// What an [`Elector`] asks for after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Write this record at this version (`None`: create it). Its result goes to [`Elector::written`].
    Write {
        /// The record.
        record: LeaseRecord,
        /// The version read.
        version: Option<u64>,
    },
    /// Another candidate holds a lease that has not expired: nothing to write.
    Follow,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored, with this new version.
    Stored(u64),
    /// Another write came first.
    Conflict,
    /// The store failed; whether the write happened is unknown.
    Failed,
}

/// One candidate's view of the election. Times are the candidate's own monotonic clock (any origin); the
/// wall-clock time only goes into the record for people to read.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    config: LeaseConfig,
    /// The record last read or written, and the local time its version was first seen.
    observed: Option<(Versioned, Timestamp)>,
    /// The write in flight and the local time it started.
    pending: Option<(LeaseRecord, Timestamp)>,
    /// The start of the last successful write of this candidate's own lease.
    renewed_from: Option<Timestamp>,
}

impl Elector {
    /// A candidate called `identity` (unique among the candidates: a host name and a process id).
    pub fn new(identity: impl Into<String>, config: LeaseConfig) -> Self {
        Elector {
            identity: identity.into(),
            config,
            observed: None,
            pending: None,
            renewed_from: None,
        }
    }

    /// The candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timing.
    pub fn config(&self) -> LeaseConfig {
        self.config
    }

    /// Whether this candidate leads at `now`: its last successful write started less than
    /// `renew_deadline` ago. A renewal that did not succeed in time ends it, even if the store still names
    /// this candidate.
    pub fn is_leader(&self, now: Timestamp) -> bool {
        self.renewed_from
            .is_some_and(|from| now < from + self.config.renew_deadline)
    }

    /// When this candidate stops leading unless a renewal succeeds first: its last successful write's start
    /// plus `renew_deadline`.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.renewed_from
            .map(|from| from + self.config.renew_deadline)
    }

    /// Who holds the lease as far as this candidate knows (the last record it read or wrote); `None` when
    /// nobody does or nothing was read yet.
    pub fn holder(&self) -> Option<&str> {
        self.observed
            .as_ref()
            .map(|(v, _)| v.record.holder.as_str())
            .filter(|h| !h.is_empty())
    }

    /// The record read at `now` (`None`: the store has none), and what to write. A follower asks to write
    /// only when the lease has not changed for `lease + margin` since it was written at the latest (when it
    /// was first seen, or for a later record of the holder seen before, the bound on its writing), or was
    /// released.
    pub fn decide(&mut self, now: Timestamp, wall: Timestamp, read: Option<Versioned>) -> Attempt {
        let Some(read) = read else {
            return self.write(now, wall, 0, None);
        };
        // As client-go, a renewal is a new record, not a new version: Swarm bumps the version of every service
        // when its Raft leader changes, and a follower that took that for a renewal would wait a whole lease
        // more after a manager was lost.
        let seen = match &self.observed {
            Some((known, at)) if known.record == read.record => *at,
            Some((known, at)) => renewal_interval(&known.record, &read.record, self.config.margin)
                .map_or(now, |interval| now.min(*at + interval)),
            None => now,
        };
        let version = read.version;
        let record = read.record.clone();
        self.observed = Some((read, seen));
        let mine = record.holder == self.identity;
        let released = record.holder.is_empty();
        let expired = now >= seen + record.lease.max(self.config.lease) + self.config.margin;
        if !(mine || released || expired) {
            return Attempt::Follow;
        }
        let transitions = if mine {
            record.transitions
        } else {
            record.transitions.saturating_add(1)
        };
        self.write(now, wall, transitions, Some(version))
    }

    /// Ask to write this candidate's lease, started at `now`.
    fn write(
        &mut self,
        now: Timestamp,
        wall: Timestamp,
        transitions: u32,
        version: Option<u64>,
    ) -> Attempt {
        let record = LeaseRecord {
            holder: self.identity.clone(),
            renewed_at: wall,
            lease: self.config.lease,
            transitions,
            monotonic: Some(now),
        };
        self.pending = Some((record.clone(), now));
        Attempt::Write { record, version }
    }

    /// The result of the write [`decide`](Self::decide) asked for, known at `now`. A stored write makes
    /// this candidate the leader from the write's start until `renew_deadline` later (so a write that took
    /// longer than that gives no leadership); a lost or failed one changes nothing, and leadership ends on
    /// time.
    pub fn written(&mut self, now: Timestamp, result: Written) {
        let Some((record, started)) = self.pending.take() else {
            return;
        };
        match result {
            Written::Stored(version) => {
                self.renewed_from = Some(started);
                self.observed = Some((Versioned { record, version }, now));
            }
            // Another write came first. The next read compares its record with the one observed: a new record
            // (a renewal, another candidate) starts its time then; a new version of the same record (Swarm
            // rewriting its services after a Raft election) does not, or every such rewrite would cost a
            // follower a whole lease more.
            Written::Conflict => {}
            Written::Failed => {}
        }
    }

    /// A record that hands the lease over at once, to write (at the version last seen) when a leader stops:
    /// `None` unless this candidate holds it. The candidate stops leading now.
    pub fn release(&mut self, wall: Timestamp) -> Option<(LeaseRecord, u64)> {
        self.renewed_from = None;
        if self
            .observed
            .as_ref()
            .is_none_or(|(known, _)| known.record.holder != self.identity)
        {
            return None;
        }
        let (known, _) = self.observed.take()?;
        Some((
            LeaseRecord {
                holder: String::new(),
                renewed_at: wall,
                lease: self.config.lease,
                transitions: known.record.transitions,
                monotonic: None,
            },
            known.version,
        ))
    }
}

/// How much later than `before` its holder started writing `after`, plus `tolerance`: an upper bound, when
/// both are records of one holder (same holder and transitions, its monotonic clock gone forward) and the
/// holder's wall clock agrees with its monotonic clock on the interval to within `tolerance`. `None`
/// otherwise: another holder, a release, a record without the monotonic clock, a holder that restarted
/// under the same identity (a monotonic clock with another origin, while its wall clock went on), or one
/// whose wall clock stepped.
fn renewal_interval(
    before: &LeaseRecord,
    after: &LeaseRecord,
    tolerance: Duration,
) -> Option<Duration> {
    if before.holder.is_empty()
        || before.holder != after.holder
        || before.transitions != after.transitions
        || after.renewed_at < before.renewed_at
    {
        return None;
    }
    let (before_at, after_at) = (before.monotonic?, after.monotonic?);
    if after_at < before_at {
        return None;
    }
    let interval = after_at.saturating_since(before_at);
    let wall = after.renewed_at.saturating_since(before.renewed_at);
    (wall.abs_diff(interval) <= tolerance).then(|| interval + tolerance)
}

/// What [`elect`] reports after every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseStatus {
    /// Whether this candidate leads.
    pub leader: bool,
    /// Who holds the lease, as far as this candidate knows.
    pub holder: Option<String>,
    /// How many times this candidate started or stopped leading.
    pub changes: u64,
}

/// Run `elector` against `store` until `shutdown` turns true: an attempt every retry period, each bounded
/// by the retry period, and a status on `status` whenever it changes (and once a leader's deadline passes,
/// on time, between attempts). On shutdown a leader releases the lease, so another takes over at once.
pub async fn elect(
    store: &dyn LeaseStore,
    mut elector: Elector,
    status: tokio::sync::watch::Sender<LeaseStatus>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let origin = tokio::time::Instant::now();
    let now = || {
        let ms = origin.elapsed().as_millis();
        Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
    };
    let wall = || {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
    };
    let config = elector.config();
    let publish = |elector: &Elector, at: Timestamp| {
        let leader = elector.is_leader(at);
        let holder = elector.holder().map(str::to_owned);
        status.send_if_modified(|s| {
            let changed = s.leader != leader || s.holder != holder;
            if s.leader != leader {
                s.changes += 1;
                if leader {
                    tracing::info!(identity = elector.identity(), "leading: acquired the lease");
                } else {
                    tracing::warn!(
                        identity = elector.identity(),
                        "stopped leading: the lease was not renewed within the renew deadline"
                    );
                }
            }
            s.leader = leader;
            s.holder = holder;
            changed
        });
    };
    'attempts: loop {
        if *shutdown.borrow() {
            break;
        }
        let started = tokio::time::Instant::now();
        let attempt = async {
            let read = match store.get().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::debug!(identity = elector.identity(), error = %e, "reading the lease failed");
                    return;
                }
            };
            if let Attempt::Write { record, version } = elector.decide(now(), wall(), read) {
                let result = match store.update(&record, version).await {
                    Ok(version) => Written::Stored(version),
                    Err(LeaseError::Conflict) => Written::Conflict,
                    Err(e) => {
                        tracing::debug!(identity = elector.identity(), error = %e, "writing the lease failed");
                        Written::Failed
                    }
                };
                elector.written(now(), result);
            }
        };
        // An attempt that hangs (a store cut off) must not keep the next one from starting.
        let _ = tokio::time::timeout(config.retry(), attempt).await;
        publish(&elector, now());
        let next = started + config.retry();
        loop {
            // Wake at the leader's deadline too, to stop leading on time when no attempt renewed.
            let deadline = elector
                .deadline()
                .map(|d| origin + Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(0)));
            let wake = match deadline {
                Some(d) if d > tokio::time::Instant::now() && d < next => d,
                _ => next,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break 'attempts;
                    }
                }
            }
            publish(&elector, now());
            if wake >= next {
                break;
            }
        }
    }
    if let Some((record, version)) = elector.release(wall()) {
        let released =
            tokio::time::timeout(config.retry(), store.update(&record, Some(version))).await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::debug!(
                identity = elector.identity(),
                "releasing the lease failed; it expires"
            );
        }
    }
    publish(&elector, now());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    /// A linearizable store in memory.
    #[derive(Debug, Default)]
    struct Store {
        current: Option<Versioned>,
        next: u64,
    }

    impl Store {
        fn get(&self) -> Option<Versioned> {
            self.current.clone()
        }

        fn update(&mut self, record: &LeaseRecord, version: Option<u64>) -> Written {
            if self.current.as_ref().map(|v| v.version) != version {
                return Written::Conflict;
            }
            self.next += 1;
            self.current = Some(Versioned {
                record: record.clone(),
                version: self.next,
            });
            Written::Stored(self.next)
        }
    }

    /// An empty store and two candidates with the default timing.
    fn two(a: &str, b: &str) -> (Store, Elector, Elector) {
        (
            Store::default(),
            Elector::new(a, LeaseConfig::default()),
            Elector::new(b, LeaseConfig::default()),
        )
    }

    /// One attempt, read and write at `now` with nothing in between.
    fn attempt(elector: &mut Elector, store: &mut Store, now: Timestamp) -> bool {
        match elector.decide(now, now, store.get()) {
            Attempt::Write { record, version } => {
                let result = store.update(&record, version);
                elector.written(now, result);
                true
            }
            Attempt::Follow => false,
        }
    }

    #[test]
    fn the_defaults_are_kubernetes_and_the_order_is_checked() {
        let c = LeaseConfig::default();
        assert_eq!(
            (c.lease(), c.renew_deadline(), c.retry(), c.margin()),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2),
                Duration::from_secs(1)
            )
        );
        let s = Duration::from_secs;
        assert!(LeaseConfig::new(s(15), s(10), s(2)).is_ok());
        assert!(LeaseConfig::new(s(10), s(10), s(2)).is_err());
        assert!(LeaseConfig::new(s(15), s(2), s(2)).is_err());
        assert!(LeaseConfig::new(s(15), s(10), Duration::ZERO).is_err());
    }

    #[test]
    fn a_new_version_of_the_same_record_is_not_a_renewal() {
        let (mut store, mut a, mut b) = two("a", "b");
        assert!(attempt(&mut a, &mut store, secs(0)));
        assert!(!attempt(&mut b, &mut store, secs(1)), "b follows");
        // a is lost; at 9 s the store bumps the version without a write of a (Swarm's new Raft leader).
        let mut bumped = store.get().unwrap();
        store.next += 1;
        bumped.version = store.next;
        store.current = Some(bumped);
        // b still counts from when it first saw a's record: lease + margin after 1 s, not after 9 s.
        assert!(!attempt(&mut b, &mut store, secs(16)));
        // Its write at 17 s loses to another bump of the same record: no new lease period either.
        let Attempt::Write { record, version } = b.decide(secs(17), secs(17), store.get()) else {
            panic!("b writes at 17 s");
        };
        let mut bumped = store.get().unwrap();
        store.next += 1;
        bumped.version = store.next;
        store.current = Some(bumped);
        let lost = store.update(&record, version);
        assert_eq!(lost, Written::Conflict);
        b.written(secs(17), lost);
        assert!(!b.is_leader(secs(17)));
        assert!(attempt(&mut b, &mut store, at(17_500)));
        assert!(b.is_leader(at(17_500)));
        // A real renewal (a new record) does restart the count.
        let mut c = Elector::new("c", LeaseConfig::default());
        assert!(!attempt(&mut c, &mut store, secs(18)));
        assert!(attempt(&mut b, &mut store, secs(20)), "b renews");
        assert!(!attempt(&mut c, &mut store, secs(21)), "c sees the renewal");
        assert!(
            !attempt(&mut c, &mut store, secs(36)),
            "lease + margin after 21 s is 37 s"
        );
        assert!(attempt(&mut c, &mut store, secs(37)));
    }

    #[test]
    fn a_renewal_read_late_counts_from_when_it_was_written_at_the_latest() {
        let (mut store, mut a, mut b) = two("a", "b");
        assert!(attempt(&mut a, &mut store, secs(0)));
        assert!(!attempt(&mut b, &mut store, secs(1)));
        // a renews at 2 s and is lost; b cannot read until 19 s (the store had no Raft leader).
        assert!(attempt(&mut a, &mut store, secs(2)));
        assert_eq!(store.get().unwrap().record.monotonic, Some(secs(2)));
        // The renewal was written at most 2 s (a's own clock) after b first saw the record before it, plus
        // the margin: 4 s. client-go would count from 19 s and take over at 35 s; b takes over at 20 s, when a
        // has been out of the lead since 12 s.
        assert!(!attempt(&mut b, &mut store, secs(19)));
        assert!(attempt(&mut b, &mut store, secs(20)));
        assert!(b.is_leader(secs(20)) && !a.is_leader(secs(20)));
        let stored = store.get().unwrap().record;
        assert_eq!(
            (stored.holder.as_str(), stored.monotonic),
            ("b", Some(secs(20)))
        );
    }

    #[test]
    fn a_late_renewal_counts_from_its_reading_when_the_holders_clocks_disagree() {
        // a's wall clock steps 30 s ahead between two renewals: the interval is not trusted.
        let (mut store, mut a, mut b) = two("a", "b");
        assert!(attempt(&mut a, &mut store, secs(0)));
        assert!(!attempt(&mut b, &mut store, secs(1)));
        let Attempt::Write { record, version } = a.decide(secs(2), secs(32), store.get()) else {
            panic!("a renews");
        };
        a.written(secs(2), store.update(&record, version));
        assert!(!attempt(&mut b, &mut store, secs(19)));
        assert!(!attempt(&mut b, &mut store, at(34_999)));
        assert!(attempt(&mut b, &mut store, secs(35)), "19 + 15 + 1 s");

        // a restarts under the same identity (a monotonic clock with another origin, its wall clock going on)
        // and renews what it finds as its own; b, which saw the first process's record, must not trust the
        // interval, or it would take over at 20 s while the second process leads until 22 s.
        let (mut store, mut a, mut b) = two("a", "b");
        assert!(attempt(&mut a, &mut store, secs(0)));
        assert!(attempt(&mut a, &mut store, secs(2)));
        assert!(!attempt(&mut b, &mut store, secs(3)));
        let mut a2 = Elector::new("a", LeaseConfig::default());
        let restarted = |real: i64| (secs(real - 8), secs(real)); // (monotonic, wall)
        for t in [10, 12] {
            let (now, wall) = restarted(t);
            let Attempt::Write { record, version } = a2.decide(now, wall, store.get()) else {
                panic!("a2 takes its own lease");
            };
            a2.written(now, store.update(&record, version));
        }
        assert_eq!(store.get().unwrap().record.monotonic, Some(secs(4)));
        assert!(!attempt(&mut b, &mut store, secs(13)));
        assert!(a2.is_leader(restarted(21).0));
        assert!(!attempt(&mut b, &mut store, secs(20)));
        assert!(!attempt(&mut b, &mut store, at(28_999)));
        assert!(attempt(&mut b, &mut store, secs(29)), "13 + 15 + 1 s");
    }

    #[test]
    fn the_first_candidate_creates_the_lease_and_leads_until_its_deadline() {
        let mut store = Store::default();
        let mut a = Elector::new("a", LeaseConfig::default());
        assert!(!a.is_leader(secs(0)));
        assert!(attempt(&mut a, &mut store, secs(0)));
        assert!(a.is_leader(secs(0)));
        assert_eq!(a.holder(), Some("a"));
        assert_eq!(a.deadline(), Some(secs(10)));
        assert!(a.is_leader(at(9_999)));
        assert!(
            !a.is_leader(secs(10)),
            "no renewal: it stops at the deadline"
        );
        let stored = store.get().unwrap();
        assert_eq!(stored.record.holder, "a");
        assert_eq!(stored.record.lease, Duration::from_secs(15));
        // Renewing keeps it and moves the deadline.
        assert!(attempt(&mut a, &mut store, secs(2)));
        assert_eq!(a.deadline(), Some(secs(12)));
        assert_eq!(store.get().unwrap().record.transitions, 0);
    }

    #[test]
    fn a_follower_takes_over_only_after_the_lease_and_the_margin_by_its_own_observation() {
        let mut store = Store::default();
        let mut a = Elector::new("a", LeaseConfig::default());
        attempt(&mut a, &mut store, secs(0));
        // B's clock has another origin, and A's wall time in the record is far off: neither matters.
        let b_origin = 7_000_000;
        let mut b = Elector::new("b", LeaseConfig::default());
        assert!(!attempt(&mut b, &mut store, at(b_origin + 1_000)));
        assert_eq!(b.holder(), Some("a"));
        // A is gone. B first saw this version at +1 s: it waits until +1 + 15 + 1 s.
        assert!(!attempt(&mut b, &mut store, at(b_origin + 16_999)));
        assert!(!b.is_leader(at(b_origin + 16_999)));
        assert!(attempt(&mut b, &mut store, at(b_origin + 17_000)));
        assert!(b.is_leader(at(b_origin + 17_000)));
        let stored = store.get().unwrap().record;
        assert_eq!((stored.holder.as_str(), stored.transitions), ("b", 1));
        // A, back, follows.
        assert!(!attempt(&mut a, &mut store, secs(30)));
        assert!(!a.is_leader(secs(30)));
        assert_eq!(a.holder(), Some("b"));
    }

    #[test]
    fn a_renewal_seen_resets_the_followers_wait() {
        let (mut store, mut a, mut b) = two("a", "b");
        attempt(&mut a, &mut store, secs(0));
        for t in (2..60).step_by(2) {
            assert!(attempt(&mut a, &mut store, secs(t)));
            assert!(!attempt(
                &mut b,
                &mut store,
                secs(t) + Duration::from_millis(500)
            ));
        }
    }

    #[test]
    fn a_lost_compare_and_swap_leaves_the_loser_a_follower() {
        let (mut store, mut a, mut b) = two("a", "b");
        // Both find no lease and both try to create it.
        let wa = a.decide(secs(0), secs(0), store.get());
        let wb = b.decide(secs(0), secs(0), store.get());
        let (
            Attempt::Write {
                record: ra,
                version: va,
            },
            Attempt::Write {
                record: rb,
                version: vb,
            },
        ) = (wa, wb)
        else {
            panic!("both write");
        };
        a.written(secs(0), store.update(&ra, va));
        let lost = store.update(&rb, vb);
        assert_eq!(lost, Written::Conflict);
        b.written(secs(0), lost);
        assert!(a.is_leader(secs(1)));
        assert!(!b.is_leader(secs(1)));
        // The loser's next read starts its wait from then.
        assert!(!attempt(&mut b, &mut store, secs(2)));
        assert!(!attempt(&mut b, &mut store, at(17_999)));
        assert!(attempt(&mut b, &mut store, secs(18)));
    }

    #[test]
    fn a_renewal_that_comes_too_late_gives_no_leadership() {
        let mut store = Store::default();
        let mut a = Elector::new("a", LeaseConfig::default());
        attempt(&mut a, &mut store, secs(0));
        // A renewal starts at 2 s and hangs: A leads until 10 s, and not a moment longer.
        let Attempt::Write { record, version } = a.decide(secs(2), secs(2), store.get()) else {
            panic!("a renews");
        };
        assert!(a.is_leader(at(9_999)));
        assert!(!a.is_leader(secs(10)));
        // It is stored, but its answer arrives at 12.5 s, past 2 + 10 s: still not leading.
        let stored = store.update(&record, version);
        a.written(at(12_500), stored);
        assert!(!a.is_leader(at(12_500)));
        // The next renewal, on time, leads again (nobody else wrote meanwhile).
        assert!(attempt(&mut a, &mut store, secs(13)));
        assert!(a.is_leader(secs(13)));
    }

    #[test]
    fn a_failed_renewal_keeps_the_leader_only_until_its_deadline() {
        let mut store = Store::default();
        let mut a = Elector::new("a", LeaseConfig::default());
        attempt(&mut a, &mut store, secs(0));
        for t in [2, 4, 6, 8] {
            assert!(matches!(
                a.decide(secs(t), secs(t), store.get()),
                Attempt::Write { .. }
            ));
            a.written(secs(t), Written::Failed);
            assert!(a.is_leader(secs(t)));
        }
        assert!(!a.is_leader(secs(10)));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let (mut store, mut a, mut b) = two("a", "b");
        attempt(&mut a, &mut store, secs(0));
        assert!(!attempt(&mut b, &mut store, secs(1)));
        let (record, version) = a.release(secs(2)).expect("a holds it");
        assert!(!a.is_leader(secs(2)));
        assert!(matches!(
            store.update(&record, Some(version)),
            Written::Stored(_)
        ));
        assert!(attempt(&mut b, &mut store, secs(3)));
        assert!(b.is_leader(secs(3)));
        assert_eq!(
            b.release(secs(4)).map(|(r, _)| r.holder),
            Some(String::new())
        );
        assert_eq!(a.release(secs(4)), None, "a no longer holds it");
    }

    /// One step of a candidate in the interleaving property.
    #[derive(Debug, Clone)]
    enum Step {
        /// Real time passes.
        Wait(u16),
        /// A whole attempt with nothing in between: read, decide, write, answer.
        Attempt(usize),
        /// Read the store and decide (a write, if asked for, is then in flight).
        Read(usize),
        /// The write in flight reaches the store.
        Apply(usize),
        /// The answer of the write (applied or not) reaches the candidate, or is lost (`Failed`).
        Answer(usize, bool),
        /// The candidate's process restarts: a new identity and another monotonic origin; a write in flight
        /// may still reach the store, and its answer is lost.
        Restart(usize, i64),
        /// The candidate's wall clock steps by this many ms (its monotonic clock does not).
        ClockJump(usize, i32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u16..6_000).prop_map(Step::Wait),
            4 => (0usize..3).prop_map(Step::Attempt),
            2 => (0usize..3).prop_map(Step::Read),
            2 => (0usize..3).prop_map(Step::Apply),
            2 => ((0usize..3), any::<bool>()).prop_map(|(c, ok)| Step::Answer(c, ok)),
            1 => ((0usize..3), -1_000_000_000i64..1_000_000_000).prop_map(|(c, o)| Step::Restart(c, o)),
            1 => ((0usize..3), -60_000i32..60_000).prop_map(|(c, d)| Step::ClockJump(c, d)),
        ]
    }

    #[derive(Debug)]
    struct Candidate {
        elector: Elector,
        /// Its monotonic clock: real time plus this offset.
        offset: i64,
        /// Its wall clock: real time plus this offset.
        wall: i64,
        /// Restarts so far (for its identity).
        restarts: u32,
        /// A write decided and not yet applied, then its result not yet answered.
        write: Option<(LeaseRecord, Option<u64>)>,
        /// A write of the process before a restart, still on its way to the store.
        orphan: Option<(LeaseRecord, Option<u64>)>,
        result: Option<Written>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// Whatever the order of reads, writes, answers lost or late, restarts, and clocks with any offsets
        /// and wall-clock steps, two candidates never lead at the same time.
        #[test]
        fn two_candidates_never_both_lead(
            steps in proptest::collection::vec(step(), 1..300),
            offsets in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 3),
            walls in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 3),
        ) {
            let mut store = Store::default();
            let mut real: i64 = 0;
            let mut candidates: Vec<Candidate> = offsets
                .iter()
                .enumerate()
                .map(|(i, &offset)| Candidate {
                    elector: Elector::new(format!("c{i}"), LeaseConfig::default()),
                    offset,
                    wall: walls[i],
                    restarts: 0,
                    orphan: None,
                    write: None,
                    result: None,
                })
                .collect();
            for step in steps {
                match step {
                    Step::Wait(ms) => real += i64::from(ms),
                    Step::Attempt(i) => {
                        let c = &mut candidates[i];
                        if c.write.is_none() && c.result.is_none() {
                            let now = at(real + c.offset);
                            let wall = at(real + c.wall);
                            if let Attempt::Write { record, version } =
                                c.elector.decide(now, wall, store.get())
                            {
                                let result = store.update(&record, version);
                                c.elector.written(now, result);
                            }
                        }
                    }
                    Step::Read(i) => {
                        let c = &mut candidates[i];
                        if c.write.is_none() && c.result.is_none() {
                            let now = at(real + c.offset);
                            let wall = at(real + c.wall);
                            if let Attempt::Write { record, version } =
                                c.elector.decide(now, wall, store.get())
                            {
                                c.write = Some((record, version));
                            }
                        }
                    }
                    Step::Apply(i) => {
                        let c = &mut candidates[i];
                        if let Some((record, version)) = c.write.take() {
                            c.result = Some(store.update(&record, version));
                        } else if let Some((record, version)) = c.orphan.take() {
                            let _ = store.update(&record, version);
                        }
                    }
                    Step::Answer(i, delivered) => {
                        let c = &mut candidates[i];
                        let now = at(real + c.offset);
                        if let Some(result) = c.result.take() {
                            c.elector.written(now, if delivered { result } else { Written::Failed });
                        } else if c.write.take().is_some() {
                            // Lost before it reached the store.
                            c.elector.written(now, Written::Failed);
                        }
                    }
                    Step::Restart(i, offset) => {
                        let c = &mut candidates[i];
                        c.restarts += 1;
                        c.elector = Elector::new(format!("c{i}.{}", c.restarts), LeaseConfig::default());
                        c.offset = offset;
                        // A write in flight may still land, later; nobody hears its answer.
                        c.orphan = c.write.take().or(c.orphan.take());
                        c.result = None;
                    }
                    Step::ClockJump(i, ms) => candidates[i].wall += i64::from(ms),
                }
                let leading: Vec<usize> = candidates
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.elector.is_leader(at(real + c.offset)))
                    .map(|(i, _)| i)
                    .collect();
                prop_assert!(leading.len() <= 1, "both lead at {real} ms: {leading:?}");
            }
        }
    }

    #[test]
    fn the_property_sees_leadership_change_hands() {
        // A sanity check of the property's model: with these steps, c0 leads, goes silent, and c1 takes
        // over, so the property does test handovers.
        let (mut store, mut c0, mut c1) = two("c0", "c1");
        assert!(attempt(&mut c0, &mut store, secs(0)));
        assert!(!attempt(&mut c1, &mut store, secs(1)));
        assert!(attempt(&mut c1, &mut store, secs(17)));
        assert!(!c0.is_leader(secs(17)) && c1.is_leader(secs(17)));
    }
}
