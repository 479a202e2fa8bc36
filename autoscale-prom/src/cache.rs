//! Identical queries of one evaluation round are fetched once.
//!
//! Checks of one service are evaluated at the same `at`; two checks (or two services on the same tick) asking
//! the same expression over the same window would otherwise load Prometheus twice and, worse, could read two
//! different answers for what is one moment. The key is what is sent (query, evaluation time, window), not
//! how the answer is read, so checks that reduce the same answer differently still share one fetch.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscale_core::Timestamp;
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::options::RangeWindow;
use crate::response::QueryResponse;

/// What identifies one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) query: String,
    pub(crate) at: Timestamp,
    /// Range and step in milliseconds; the window's reduction is applied after the fetch.
    pub(crate) window: Option<(u128, u128)>,
}

impl Key {
    pub(crate) fn new(query: &str, at: Timestamp, window: Option<&RangeWindow>) -> Self {
        Key {
            query: query.to_owned(),
            at,
            window: window.map(|w| (w.range().as_millis(), w.step().as_millis())),
        }
    }
}

pub(crate) type Fetched = Result<Arc<QueryResponse>, Error>;

#[derive(Default)]
struct Entries {
    cells: HashMap<Key, Arc<OnceCell<Fetched>>>,
    /// Keys by creation time, oldest first: expiry pops from the front, so a lookup costs O(1) amortised
    /// however many distinct requests a busy daemon makes.
    created: VecDeque<(Instant, Key)>,
}

/// A map from request to its one shared answer. Callers of the same key await the same in-flight fetch;
/// a finished answer (success or failure) is shared for `ttl`.
pub(crate) struct RoundCache {
    entries: Mutex<Entries>,
    /// How long an entry lives: the sharing window plus the longest a fetch can take.
    lifetime: Duration,
}

impl std::fmt::Debug for RoundCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundCache")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl RoundCache {
    /// `ttl` after a fetch that takes at most `fetch_timeout`.
    pub(crate) fn new(ttl: Duration, fetch_timeout: Duration) -> Self {
        RoundCache {
            entries: Mutex::new(Entries::default()),
            lifetime: ttl.saturating_add(fetch_timeout),
        }
    }

    /// The answer for `key`: shared if another caller fetched it or is fetching it, else from `fetch`.
    ///
    /// If the caller doing the fetch is cancelled, a waiting caller takes over (the cell is left
    /// uninitialised), so a dropped future never strands the others.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: Key, fetch: F) -> Fetched
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Fetched>,
    {
        let cell = self.cell(key, Instant::now());
        cell.get_or_init(fetch).await.clone()
    }

    fn cell(&self, key: Key, now: Instant) -> Arc<OnceCell<Fetched>> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Expiring on every lookup keeps the map at about one round's worth of queries, with no task to run.
        while let Some((created, _)) = entries.created.front()
            && now.saturating_duration_since(*created) > self.lifetime
        {
            if let Some((_, old)) = entries.created.pop_front() {
                entries.cells.remove(&old);
            }
        }
        if let Some(cell) = entries.cells.get(&key) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(OnceCell::new());
        entries.created.push_back((now, key.clone()));
        entries.cells.insert(key, Arc::clone(&cell));
        cell
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap();
        assert_eq!(entries.cells.len(), entries.created.len());
        entries.cells.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::response::QueryData;

    fn answer(v: f64) -> Fetched {
        Ok(Arc::new(QueryResponse {
            data: QueryData::Scalar(crate::response::Point {
                time: 0.0,
                value: v,
            }),
            warnings: vec![],
        }))
    }

    fn key(q: &str, at: i64) -> Key {
        Key::new(q, Timestamp::from_secs(at), None)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_keys_are_distinct() {
        let cache = RoundCache::new(Duration::from_secs(10), Duration::from_secs(5));
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            answer(1.0)
        };
        let (a, b, c) = tokio::join!(
            cache.get_or_fetch(key("up", 1), fetch),
            cache.get_or_fetch(key("up", 1), fetch),
            cache.get_or_fetch(key("up", 1), fetch),
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        cache.get_or_fetch(key("up", 2), fetch).await.unwrap();
        cache.get_or_fetch(key("down", 1), fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cancelled_fetch_hands_over_to_the_next_caller() {
        let cache = RoundCache::new(Duration::from_secs(10), Duration::from_secs(5));
        let never = cache.get_or_fetch(key("up", 1), std::future::pending);
        assert!(
            tokio::time::timeout(Duration::from_millis(1), never)
                .await
                .is_err()
        );
        let v = cache
            .get_or_fetch(key("up", 1), || async { answer(2.0) })
            .await;
        assert!(v.is_ok());
    }

    #[test]
    fn entries_expire_after_their_lifetime() {
        let cache = RoundCache::new(Duration::from_secs(1), Duration::from_secs(1));
        let t0 = Instant::now();
        cache.cell(key("a", 1), t0);
        cache.cell(key("b", 1), t0 + Duration::from_millis(1500));
        assert_eq!(cache.len(), 2);
        cache.cell(key("c", 1), t0 + Duration::from_millis(2001));
        assert_eq!(cache.len(), 2, "a is older than ttl + timeout");
    }
}
