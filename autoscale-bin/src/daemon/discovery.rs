//! The `[[discover]]` sections at run time: one task per section lists its endpoint at start, every `resync`,
//! when the endpoint's event stream reports a service changed (`Backends::discovery_changes`) and whenever
//! [`Shared::trigger_discovery`] is called; what it found becomes services, which the run loop starts,
//! restarts or stops like those of a reload.
//!
//! A listing that fails keeps the services found before (one WARN per new failure). A found service whose
//! labels are bad is skipped, with one WARN per new reason, and shown in `/status`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use autoscale_core::controller::{Clock, SystemClock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, DiscoverKind, DiscoverSettings, ServiceConfig, Skipped};
use crate::daemon::backends::Backends;
use crate::daemon::report::{DiscoveryReport, SkippedReport};
use crate::daemon::shared::{Shared, rfc3339};
use crate::discovered::Discovery;

/// How long a discovery waits after a change is heard before listing, so that a burst of events (a scale,
/// a rolling update) costs one listing.
const CHANGE_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// What one listing of a section's endpoint returned.
#[derive(Debug)]
pub(super) struct Found {
    /// The section's index in the configuration.
    pub(super) section: usize,
    /// Which start of the tasks it comes from: a listing from before a reload is dropped.
    pub(super) generation: u64,
    pub(super) result: Result<Discovery, String>,
}

/// Start one discovery task per section of `config`.
pub(super) fn spawn_all(
    config: &Config,
    generation: u64,
    backends: &Arc<dyn Backends>,
    shared: &Arc<Shared>,
    found: &mpsc::Sender<Found>,
) -> Vec<JoinHandle<()>> {
    config
        .discover
        .iter()
        .enumerate()
        .map(|(section, settings)| {
            let (settings, backends, found) =
                (settings.clone(), Arc::clone(backends), found.clone());
            let mut trigger = shared.discovery_triggered();
            tokio::spawn(async move {
                let mut feed = backends.discovery_changes(&settings);
                loop {
                    // The listing that follows covers every change heard so far.
                    if let Some(feed) = &mut feed {
                        feed.mark_seen();
                    }
                    let result = backends.discover(&settings).await;
                    let sent = found
                        .send(Found {
                            section,
                            generation,
                            result,
                        })
                        .await;
                    if sent.is_err() {
                        break;
                    }
                    let heard = async {
                        match &mut feed {
                            Some(feed) => feed.changed().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(settings.resync) => {}
                        changed = trigger.changed() => if changed.is_err() { break },
                        open = heard => {
                            if open {
                                // A scale or an update is a burst of events: one listing after it.
                                tokio::time::sleep(CHANGE_SETTLE).await;
                            } else {
                                // The stream has stopped for good: the resync alone from now on.
                                feed = None;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// What one section knows.
#[derive(Debug, Default)]
struct Section {
    /// The last successful listing; kept when a later one fails.
    last: Option<Discovery>,
    last_resync: Option<String>,
    last_error: Option<String>,
    /// The services it adds, from `last`.
    services: Vec<ServiceConfig>,
    skipped: Vec<Skipped>,
    /// The (id, reason) pairs already logged, so a bad label is logged once, not at every resync.
    warned: HashSet<(String, String)>,
    /// Discovered services that could not be wired, with why (until the next listing).
    unwirable: BTreeMap<String, String>,
}

/// Every section of the configuration in force.
#[derive(Debug, Default)]
pub(super) struct Sections {
    settings: Vec<DiscoverSettings>,
    sections: Vec<Section>,
}

impl Sections {
    /// Take the sections of `config`: a section that is unchanged keeps what it found.
    pub(super) fn reconfigure(&mut self, config: &Config) {
        let mut old: Vec<Option<Section>> = std::mem::take(&mut self.sections)
            .into_iter()
            .map(Some)
            .collect();
        self.sections = config
            .discover
            .iter()
            .enumerate()
            .map(|(i, settings)| match self.settings.get(i) {
                Some(before) if before == settings => {
                    old.get_mut(i).and_then(Option::take).unwrap_or_default()
                }
                _ => Section::default(),
            })
            .collect();
        self.settings.clone_from(&config.discover);
        self.resolve(config);
    }

    /// Take a listing; returns whether the services may have changed.
    pub(super) fn update(&mut self, found: Found, config: &Config) -> bool {
        let Some(section) = self.sections.get_mut(found.section) else {
            return false;
        };
        let settings = &self.settings[found.section];
        match found.result {
            Ok(discovery) => {
                section.last_resync = Some(rfc3339(SystemClock.now()));
                if section.last_error.take().is_some() {
                    tracing::info!(
                        kind = settings.kind.as_str(),
                        endpoint = %endpoint(settings),
                        "service discovery works again"
                    );
                }
                section.unwirable.clear();
                section.last = Some(discovery);
            }
            Err(e) => {
                if section.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(
                        kind = settings.kind.as_str(),
                        endpoint = %endpoint(settings),
                        error = %e,
                        "service discovery failed; keeping the {} services found before",
                        section.services.len()
                    );
                }
                section.last_error = Some(e);
                return false;
            }
        }
        self.resolve(config);
        true
    }

    /// A discovered service that could not be wired: skipped until the next listing.
    pub(super) fn unwirable(&mut self, name: &str, reason: String, config: &Config) {
        for section in &mut self.sections {
            if section.services.iter().any(|s| s.name == name) {
                section.unwirable.insert(name.to_owned(), reason);
                break;
            }
        }
        self.resolve(config);
    }

    /// The services every section adds.
    pub(super) fn services(&self) -> Vec<ServiceConfig> {
        self.sections
            .iter()
            .flat_map(|s| s.services.iter().cloned())
            .collect()
    }

    /// Turn each section's last listing into services: a configured `[[service]]` of the same name or target
    /// wins, then an earlier section; a service whose labels are bad is skipped with why.
    fn resolve(&mut self, config: &Config) {
        let mut claimed: BTreeSet<String> =
            config.services.iter().map(|s| s.name.clone()).collect();
        for (settings, section) in self.settings.iter().zip(&mut self.sections) {
            section.services.clear();
            section.skipped.clear();
            let Some(last) = &section.last else {
                continue;
            };
            for skipped in &last.skipped {
                section.skipped.push(Skipped {
                    name: match settings.kind {
                        DiscoverKind::Compose => skipped.id.replace('/', "-"),
                        DiscoverKind::Swarm => skipped.name.clone(),
                    },
                    id: skipped.id.clone(),
                    reason: skipped.reason.clone(),
                });
            }
            for found in &last.services {
                let name = DiscoverSettings::service_name(found);
                let built = if config.service(&name).is_some() {
                    Err(format!(
                        "a [[service]] named {name:?} is configured; it takes precedence"
                    ))
                } else if claimed.contains(&name) {
                    Err(format!(
                        "another [[discover]] section already adds a service named {name:?}"
                    ))
                } else if let Some(reason) = section.unwirable.get(&name) {
                    Err(reason.clone())
                } else {
                    settings
                        .service(
                            found,
                            &config.prometheus,
                            &config.instances,
                            config.daemon.dry_run,
                        )
                        .map_err(|e| e.to_string())
                        .and_then(|service| {
                            match config
                                .services
                                .iter()
                                .find(|s| crate::config::same_target(&s.scaler, &service.scaler))
                            {
                                Some(other) => Err(format!(
                                    "the [[service]] {:?} scales the same target; it takes precedence",
                                    other.name
                                )),
                                None => Ok(service),
                            }
                        })
                };
                match built {
                    Ok(service) => {
                        claimed.insert(name);
                        section.services.push(service);
                    }
                    Err(reason) => section.skipped.push(Skipped {
                        name,
                        id: found.id.clone(),
                        reason,
                    }),
                }
            }
            let now: HashSet<(String, String)> = section
                .skipped
                .iter()
                .map(|s| (s.id.clone(), s.reason.clone()))
                .collect();
            for skipped in &section.skipped {
                if !section
                    .warned
                    .contains(&(skipped.id.clone(), skipped.reason.clone()))
                {
                    tracing::warn!(
                        service = %skipped.name,
                        id = %skipped.id,
                        "discovered service {} skipped: {}",
                        skipped.name,
                        skipped.reason
                    );
                }
            }
            section.warned = now;
        }
    }

    /// What `/status` shows of each section.
    pub(super) fn reports(&self) -> Vec<DiscoveryReport> {
        self.settings
            .iter()
            .zip(&self.sections)
            .map(|(settings, section)| DiscoveryReport {
                kind: settings.kind.as_str().to_owned(),
                endpoint: endpoint(settings),
                selector: settings.selector.clone(),
                resync_s: settings.resync.as_secs_f64(),
                last_resync: section.last_resync.clone(),
                last_error: section.last_error.clone(),
                found: section.services.iter().map(|s| s.name.clone()).collect(),
                skipped: section
                    .skipped
                    .iter()
                    .map(|s| SkippedReport {
                        service: s.name.clone(),
                        id: s.id.clone(),
                        reason: s.reason.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A section's endpoint as `/status` names it.
fn endpoint(settings: &DiscoverSettings) -> String {
    match (&settings.docker.host, &settings.docker.context) {
        (Some(host), _) => host.clone(),
        (None, Some(context)) => format!("context {context}"),
        (None, None) => "default".to_owned(),
    }
}

trait KindName {
    fn as_str(&self) -> &'static str;
}

impl KindName for DiscoverKind {
    fn as_str(&self) -> &'static str {
        match self {
            DiscoverKind::Swarm => "swarm",
            DiscoverKind::Compose => "compose",
        }
    }
}
