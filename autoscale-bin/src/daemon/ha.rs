//! `[daemon] ha`: this daemon's candidacy in the election of the daemons that share the services. The
//! elector runs beside the loops; every loop scales only while it leads (the others decide in dry run), and
//! `/status` and `/metrics` say who leads.

use std::sync::Arc;

use autoscale_core::lease::{Elector, LeaseStatus, elect};
use autoscale_docker::{DockerEnv, SwarmLeaseStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{HaKind, HaSettings};
use crate::daemon::DaemonError;
use crate::daemon::report::LeadershipReport;
use crate::daemon::shared::Shared;

/// This daemon's identity in the lease: the host's name, the process id and a random suffix, unique among
/// the candidates and to this process. In a container the process id is 1, and with host networking the host
/// name is the node's, so without the suffix a restarted daemon, or two on one node, would share one.
pub(crate) fn identity() -> String {
    use std::hash::{BuildHasher, Hasher};

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    // RandomState is seeded from the operating system's randomness, per process.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!(
        "{host}/{}-{:04x}",
        std::process::id(),
        hasher.finish() & 0xffff
    )
}

/// The running election.
#[derive(Debug)]
pub(crate) struct Leadership {
    status: watch::Receiver<LeaseStatus>,
    stop: watch::Sender<bool>,
    elector: JoinHandle<()>,
    reporter: JoinHandle<()>,
}

impl Leadership {
    /// Join the election of `settings`, reporting into `shared`'s metrics and `/status`.
    pub(crate) fn start(settings: &HaSettings, shared: Arc<Shared>) -> Result<Self, DaemonError> {
        let config = settings.lease_config();
        let store = match settings.kind {
            // Each request within the retry period: an attempt that hangs must not delay the next.
            HaKind::Swarm => {
                SwarmLeaseStore::new(DockerEnv::new(), &settings.lock_service, config.retry())
            }
        }
        .map_err(|e| DaemonError::Ha(e.to_string()))?;
        let identity = identity();
        tracing::info!(
            identity, lock_service = %settings.lock_service,
            lease_s = config.lease().as_secs_f64(), renew_deadline_s = config.renew_deadline().as_secs_f64(),
            retry_s = config.retry().as_secs_f64(),
            "high availability: joining the election; scaling only while leading"
        );
        let (status_tx, status) = watch::channel(LeaseStatus::default());
        let (stop, shutdown) = watch::channel(false);
        let elector = Elector::new(identity.clone(), config);
        let elector =
            tokio::spawn(async move { elect(&store, elector, status_tx, shutdown).await });
        let mut updates = status.clone();
        let report = move |s: &LeaseStatus| LeadershipReport {
            identity: identity.clone(),
            leader: s.leader,
            holder: s.holder.clone(),
            changes: s.changes,
        };
        shared.metrics.set_leadership(report(&updates.borrow()));
        let reporter = tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                let now = report(&updates.borrow_and_update());
                shared.metrics.set_leadership(now);
            }
        });
        Ok(Leadership {
            status,
            stop,
            elector,
            reporter,
        })
    }

    /// What the loops follow.
    pub(crate) fn status(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// Leave the election: a leader releases the lease, so that another daemon takes over at once.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.elector.await;
        self.reporter.abort();
    }
}
