//! Leader election through the Swarm lease on the real 3-manager Swarm of `scripts/multinode`: two
//! candidates on two managers, one leads; its node crashes and the other takes over; a leader cut off from
//! the others stops leading within the renew deadline. At no time do both lead.

#[path = "support/bed.rs"]
mod bed;

use std::time::{Duration, Instant};

use autoscale_core::lease::{Elector, LeaseConfig, LeaseStatus, elect};
use autoscale_docker::{DockerEnv, SwarmLeaseStore};
use bed::{Bed, Restore, bed};
use tokio::sync::watch;

/// Removes the lock service on drop, after the bed is restored.
struct RemoveLock<'a> {
    bed: &'a Bed,
    lock: String,
}

impl Drop for RemoveLock<'_> {
    fn drop(&mut self) {
        let _ = self.bed.docker(1, &["service", "rm", &self.lock]);
    }
}

/// A candidate on node `n` (1-based): its status, and the sender that stops it.
struct Candidate {
    node: usize,
    status: watch::Receiver<LeaseStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn candidate(bed: &Bed, node: usize, lock: &str) -> Candidate {
    let store = SwarmLeaseStore::new(
        DockerEnv::new().host(bed.host(node)),
        lock,
        Duration::from_secs(2),
    )
    .unwrap();
    let elector = Elector::new(format!("node{node}"), LeaseConfig::default());
    let (status_tx, status) = watch::channel(LeaseStatus::default());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(async move { elect(&store, elector, status_tx, shutdown).await });
    Candidate {
        node,
        status,
        stop,
        task,
    }
}

/// How long a takeover may take: the lease takes lease + retry + margin (18 s) from the last renewal seen.
/// When the lost node was Swarm's own Raft leader, the API answers on no manager until the others elect
/// one, and the last renewal is read late; it counts from when it was written at the latest.
const TAKEOVER_GOAL: Duration = Duration::from_secs(30);

/// Sample both candidates every 50 ms until `done` holds of them, at most `limit`; fail if both ever lead.
async fn watch_until(
    candidates: &[&Candidate],
    limit: Duration,
    what: &str,
    done: impl Fn(&[bool]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let leading: Vec<bool> = candidates
            .iter()
            .map(|c| c.status.borrow().leader)
            .collect();
        assert!(
            leading.iter().filter(|l| **l).count() <= 1,
            "two candidates lead at once: {leading:?}"
        );
        if done(&leading) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_a_crash_hands_over_and_a_cut_off_leader_stops_on_time() {
    let Some(bed) = bed() else {
        return;
    };
    let lock = format!("asmn-lock-{}", std::process::id());
    let _remove = RemoveLock {
        bed: &bed,
        lock: lock.clone(),
    };
    let _restore = Restore(&bed);
    let config = LeaseConfig::default();

    // Two candidates on managers 2 and 3 (manager 1 keeps Raft's leadership out of the way of the crash).
    let a = candidate(&bed, 2, &lock);
    let b = candidate(&bed, 3, &lock);
    let elected = watch_until(&[&a, &b], Duration::from_secs(10), "a first leader", |l| {
        l.contains(&true)
    })
    .await;
    // Both see the same holder.
    watch_until(
        &[&a, &b],
        Duration::from_secs(5),
        "one holder seen by both",
        |_| {
            let (ha, hb) = (
                a.status.borrow().holder.clone(),
                b.status.borrow().holder.clone(),
            );
            ha.is_some() && ha == hb
        },
    )
    .await;
    let (leader, follower) = if a.status.borrow().leader {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // It holds for longer than the lease: renewals keep it.
    let steady = Instant::now();
    while steady.elapsed() < config.lease() + config.retry() {
        assert!(leader.status.borrow().leader, "the leader kept leading");
        assert!(!follower.status.borrow().leader, "one leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leader's node crashes: the follower leads within lease + retry (+ the margin and one round trip).
    bed.run(&["crash", &leader.node.to_string()]);
    let takeover = watch_until(
        &[leader, follower],
        TAKEOVER_GOAL,
        "a takeover after the crash",
        |l| l[1],
    )
    .await;
    eprintln!(
        "first leader after {:.1} s; after node {} crashed, node {} led after {:.1} s",
        elected.as_secs_f64(),
        leader.node,
        follower.node,
        takeover.as_secs_f64()
    );
    assert!(
        takeover >= config.lease() - config.retry(),
        "not before the lease: {takeover:?}"
    );

    // Bring the crashed node back; its candidate (whose store answers again) follows.
    bed.run(&["up"]);
    let (new_leader, old) = (follower, leader);
    watch_until(
        &[new_leader, old],
        Duration::from_secs(20),
        "the old leader follows",
        |_| old.status.borrow().holder.as_deref() == Some(&format!("node{}", new_leader.node)),
    )
    .await;

    // The leader is cut off from the other managers: it stops leading within the renew deadline.
    bed.run(&["cut", &new_leader.node.to_string()]);
    let stopped = watch_until(
        &[new_leader, old],
        config.renew_deadline() + Duration::from_millis(500),
        "the cut-off leader stops",
        |l| !l[0],
    )
    .await;
    let handed = watch_until(
        &[new_leader, old],
        TAKEOVER_GOAL,
        "the other takes over",
        |l| l[1],
    )
    .await;
    eprintln!(
        "node {} cut off: it stopped leading after {:.1} s; node {} led {:.1} s later",
        new_leader.node,
        stopped.as_secs_f64(),
        old.node,
        handed.as_secs_f64()
    );
    bed.run(&["heal", &new_leader.node.to_string()]);

    for c in [a, b] {
        let _ = c.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), c.task).await;
    }
}
