//! Outside changes within a moment: one Docker event stream per endpoint, and the change feeds
//! ([`Scaler::changes`](autoscale_core::Scaler::changes)) of the scalers on it.
//!
//! The stream (`GET /events`, filtered to containers and services) starts with the endpoint's first subscriber
//! and stops when the last one goes. An event about a Compose service's containers, or a Swarm service (its
//! update, or its tasks' containers on this node), first drops the endpoint's snapshot that it changed, then
//! notifies that service's feeds: their loops read the status again, from a fresh list. A Swarm task's
//! container event notifies its service once more half a second later, when the manager has caught up with
//! the task's state. While the stream is
//! broken it is reopened with a backoff (0.5 s doubling to 30 s, back to 0.5 s after a minute connected), and
//! the endpoint is polled instead: one fresh snapshot every 2 s, notifying the services whose replicas or
//! readiness changed. When it is back, every service is notified once, for what the gap may have hidden.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use autoscale_core::{ChangeFeed, ReplicaStatus};
use bollard::models::{EventMessage, EventMessageTypeEnum};
use futures_util::{Stream, StreamExt as _};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::compose::{ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL};
use crate::discovery::DiscoverKind;
use crate::engine::EngineEndpoint;

/// The first wait before reopening a broken stream; it doubles at each failure.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// The longest wait before reopening a broken stream.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// A stream connected this long counts as healthy: its next break starts the backoff over.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How often the endpoint is polled while its stream is broken.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// A stream that opened and stayed up this long without an error counts as connected (Docker sends nothing
/// until an event happens).
const CONNECTED_AFTER: Duration = Duration::from_millis(500);
/// How long after a Swarm task's container event its service is notified again: the manager marks the task
/// failed or running a moment after the container's own event (about 0.2 s on the test engine).
const SWARM_SETTLE: Duration = Duration::from_millis(500);
/// The limit of each call the watch makes (the client's negotiation, a poll's snapshot).
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The swarm labels of a task's container.
const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";
const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";

/// A service whose scalers hold change feeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A Compose service: its project and service names.
    Compose { project: String, service: String },
    /// A Swarm service, by the name or ID its scaler was given.
    Swarm(String),
    /// Every Compose service, or every Swarm service, of the endpoint: what a discovery of that kind lists.
    Discovery(DiscoverKind),
}

/// What an event says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Changed {
    Compose {
        project: String,
        service: String,
    },
    Swarm {
        name: Option<String>,
        id: Option<String>,
    },
}

impl Changed {
    fn concerns(&self, target: &Target) -> bool {
        match (self, target) {
            (
                Changed::Compose { project, service },
                Target::Compose {
                    project: p,
                    service: s,
                },
            ) => project == p && service == s,
            (Changed::Swarm { name, id }, Target::Swarm(wanted)) => {
                name.as_deref() == Some(wanted) || id.as_deref() == Some(wanted)
            }
            (Changed::Compose { .. }, Target::Discovery(DiscoverKind::Compose))
            | (Changed::Swarm { .. }, Target::Discovery(DiscoverKind::Swarm)) => true,
            _ => false,
        }
    }
}

/// The services an event may have changed: none for what cannot change a replica count or readiness (an
/// `exec` of a healthcheck, an `attach`, a container of no Compose project nor Swarm service).
fn changed_by(event: &EventMessage) -> Vec<Changed> {
    let action = event.action.as_deref().unwrap_or_default();
    let attributes = event.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let attribute = |key: &str| attributes.and_then(|a| a.get(key)).cloned();
    match event.typ {
        Some(EventMessageTypeEnum::CONTAINER) => {
            const QUIET: [&str; 9] = [
                "exec_",
                "attach",
                "resize",
                "top",
                "commit",
                "copy",
                "export",
                "archive-path",
                "extract-to-dir",
            ];
            if QUIET.iter().any(|quiet| action.starts_with(quiet)) {
                return Vec::new();
            }
            let mut changed = Vec::new();
            if let (Some(project), Some(service)) =
                (attribute(PROJECT_LABEL), attribute(SERVICE_LABEL))
                && attribute(ONEOFF_LABEL).as_deref() != Some("True")
            {
                changed.push(Changed::Compose { project, service });
            }
            let (name, id) = (attribute(SWARM_SERVICE_NAME), attribute(SWARM_SERVICE_ID));
            if name.is_some() || id.is_some() {
                changed.push(Changed::Swarm { name, id });
            }
            changed
        }
        Some(EventMessageTypeEnum::SERVICE) => vec![Changed::Swarm {
            name: attribute("name"),
            id: event.actor.as_ref().and_then(|a| a.id.clone()),
        }],
        _ => Vec::new(),
    }
}

/// The feeds of one endpoint, and its stream's thread while anyone listens.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    inner: Mutex<WatchInner>,
}

#[derive(Debug, Default)]
struct WatchInner {
    targets: HashMap<Target, Feeds>,
    /// Dropped to stop the stream's thread; closed when the thread has ended.
    stop: Option<watch::Sender<()>>,
}

/// The feeds of one service: its channel, and how many subscriptions hold it.
#[derive(Debug)]
struct Feeds {
    sender: watch::Sender<u64>,
    holders: usize,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, WatchInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The services with feeds.
    fn targets(&self) -> Vec<Target> {
        self.lock().targets.keys().cloned().collect()
    }

    /// Notify the feeds of every service `which` selects; whether any was.
    fn notify(&self, which: impl Fn(&Target) -> bool) -> bool {
        let inner = self.lock();
        let mut any = false;
        for (target, feeds) in &inner.targets {
            if which(target) {
                feeds.sender.send_modify(|n| *n = n.wrapping_add(1));
                any = true;
            }
        }
        any
    }
}

/// Holds a service's subscription while its feed lives; the last one gone stops the endpoint's stream.
#[derive(Debug)]
struct Subscription {
    endpoint: Arc<EngineEndpoint>,
    target: Target,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut inner = self.endpoint.watch().lock();
        if let Some(feeds) = inner.targets.get_mut(&self.target) {
            feeds.holders = feeds.holders.saturating_sub(1);
            if feeds.holders == 0 {
                inner.targets.remove(&self.target);
            }
        }
        if inner.targets.is_empty() && inner.stop.take().is_some() {
            tracing::debug!(
                endpoint = self.endpoint.address(),
                "no change feed left: event stream stopped"
            );
        }
    }
}

/// A change feed of `target` on `endpoint`, starting the endpoint's stream if it is the first. `None` when
/// no thread can be started for the stream.
///
/// The stream runs on a thread of its own, with a single-threaded runtime: the endpoint is shared by the whole
/// process, and its stream must outlive the runtime of whichever caller subscribed first (a program, or a test
/// harness, may run several).
pub(crate) fn subscribe(endpoint: &Arc<EngineEndpoint>, target: Target) -> Option<ChangeFeed> {
    let mut inner = endpoint.watch().lock();
    if inner.stop.as_ref().is_none_or(watch::Sender::is_closed) {
        let (stop, stopped) = watch::channel(());
        let followed = Arc::clone(endpoint);
        let started = std::thread::Builder::new()
            .name("docker-events".to_owned())
            .spawn(move || run_stream(followed, stopped));
        if let Err(e) = started {
            tracing::warn!(
                endpoint = endpoint.address(), error = %e,
                "cannot start the Docker event stream's thread: outside changes are seen at the rounds"
            );
            return None;
        }
        inner.stop = Some(stop);
    }
    let feeds = inner
        .targets
        .entry(target.clone())
        .or_insert_with(|| Feeds {
            sender: watch::channel(0).0,
            holders: 0,
        });
    feeds.holders += 1;
    let receiver = feeds.sender.subscribe();
    drop(inner);
    Some(ChangeFeed::new(receiver).with_guard(Subscription {
        endpoint: Arc::clone(endpoint),
        target,
    }))
}

/// The wait before the next attempt to open the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: RECONNECT_FIRST,
        }
    }

    /// The wait after a failure (a stream that broke, or did not open), `connected` how long it had been up.
    fn after_failure(&mut self, connected: Option<Duration>) -> Duration {
        if connected.is_some_and(|up| up >= HEALTHY_AFTER) {
            self.next = RECONNECT_FIRST;
        }
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(RECONNECT_MAX);
        wait
    }
}

type Events<'a> =
    Pin<Box<dyn Stream<Item = Result<EventMessage, bollard::errors::Error>> + Send + 'a>>;

/// The next event of `stream`; never, without one.
async fn next_event(
    stream: &mut Option<Events<'_>>,
) -> Option<Result<EventMessage, bollard::errors::Error>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// The stream's thread: [`follow`] the events until the last feed goes.
fn run_stream(endpoint: Arc<EngineEndpoint>, mut stopped: watch::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(
                endpoint = endpoint.address(), error = %e,
                "cannot start the Docker event stream's runtime: outside changes are seen at the rounds"
            );
            return;
        }
    };
    runtime.block_on(async move {
        tokio::select! {
            () = follow(Arc::clone(&endpoint)) => {}
            // Only ever an error: the sender is dropped when the last feed goes.
            _ = stopped.changed() => {}
        }
    });
}

/// The endpoint's stream: follow the events, reopen the stream when it breaks, and poll meanwhile. It runs
/// until the last feed goes.
async fn follow(endpoint: Arc<EngineEndpoint>) {
    let endpoint = endpoint.as_ref();
    let shown = endpoint.address();
    let mut backoff = Backoff::new();
    let mut stream: Option<Events<'_>> = None;
    let mut opened = Instant::now();
    let mut connected: Option<Instant> = None;
    let mut retry_at: Option<Instant> = Some(Instant::now());
    // Since when the stream is down, and whether that was logged.
    let mut outage: Option<Instant> = None;
    let mut polled: Option<HashMap<Target, Option<ReplicaStatus>>> = None;
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Swarm services to notify again once their tasks' state settles, and when.
    let mut settle: Vec<Changed> = Vec::new();
    let mut settle_at: Option<Instant> = None;
    loop {
        let broke: Option<String> = tokio::select! {
            item = next_event(&mut stream) => match item {
                Some(Ok(event)) => {
                    if connected.is_none() {
                        connected = Some(Instant::now());
                        on_connected(endpoint, &mut outage);
                    }
                    for changed in on_event(endpoint, &event) {
                        settle_at.get_or_insert_with(|| Instant::now() + SWARM_SETTLE);
                        if !settle.contains(&changed) {
                            settle.push(changed);
                        }
                    }
                    None
                }
                Some(Err(e)) => Some(crate::engine::error_chain(&e)),
                None => Some("the daemon ended the stream".to_owned()),
            },
            _ = tokio::time::sleep_until(opened + CONNECTED_AFTER),
                if stream.is_some() && connected.is_none() =>
            {
                connected = Some(Instant::now());
                on_connected(endpoint, &mut outage);
                None
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                retry_at = None;
                match endpoint.client(WATCH_TIMEOUT).await {
                    Ok(docker) => {
                        let types = vec!["container", "service"];
                        let filters = HashMap::from([("type", types)]);
                        let options = bollard::query_parameters::EventsOptionsBuilder::new()
                            .filters(&filters)
                            .build();
                        stream = Some(Box::pin(docker.events(Some(options))));
                        opened = Instant::now();
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            _ = tokio::time::sleep_until(settle_at.unwrap_or_else(Instant::now)), if settle_at.is_some() => {
                settle_at = None;
                endpoint.invalidate_swarm();
                for changed in settle.drain(..) {
                    endpoint.watch().notify(|t| changed.concerns(t));
                }
                None
            }
            _ = poll.tick(), if outage.is_some() => {
                poll_once(endpoint, &mut polled).await;
                None
            }
        };
        let Some(reason) = broke else {
            continue;
        };
        stream = None;
        let up = connected.take().map(|since| since.elapsed());
        if up.is_some() {
            endpoint
                .counters()
                .event_disconnects
                .fetch_add(1, Ordering::Relaxed);
        }
        let wait = backoff.after_failure(up);
        retry_at = Some(Instant::now() + wait);
        if outage.is_none() {
            tracing::warn!(
                endpoint = shown,
                error = reason,
                retry_in_s = wait.as_secs_f64(),
                "the Docker event stream of {shown} is down; polling every {}s until it is back",
                POLL_EVERY.as_secs()
            );
            outage = Some(Instant::now());
            polled = None;
            poll.reset_immediately();
        } else {
            tracing::debug!(
                endpoint = shown,
                error = reason,
                retry_in_s = wait.as_secs_f64(),
                "the Docker event stream is still down"
            );
        }
    }
}

/// The stream is connected: count it, and after an outage, say so and notify every feed once.
fn on_connected(endpoint: &EngineEndpoint, outage: &mut Option<Instant>) {
    endpoint
        .counters()
        .event_connects
        .fetch_add(1, Ordering::Relaxed);
    if let Some(since) = outage.take() {
        let shown = endpoint.address();
        tracing::info!(
            endpoint = shown,
            down_s = since.elapsed().as_secs_f64(),
            "the Docker event stream of {shown} is back after {:.1}s; polling stops",
            since.elapsed().as_secs_f64()
        );
        endpoint.invalidate_containers();
        endpoint.invalidate_swarm();
        endpoint.watch().notify(|_| true);
    } else {
        tracing::debug!(
            endpoint = endpoint.address(),
            "Docker event stream connected"
        );
    }
}

/// Drop the snapshot `event` changed and notify the feeds it concerns. Returns the Swarm services it named
/// by a task's container, to notify again once the manager has caught up.
fn on_event(endpoint: &EngineEndpoint, event: &EventMessage) -> Vec<Changed> {
    let by_task = event.typ == Some(EventMessageTypeEnum::CONTAINER);
    let mut again = Vec::new();
    for changed in changed_by(event) {
        let watch = endpoint.watch();
        if !watch.lock().targets.keys().any(|t| changed.concerns(t)) {
            continue;
        }
        match changed {
            Changed::Compose { .. } => endpoint.invalidate_containers(),
            Changed::Swarm { .. } => endpoint.invalidate_swarm(),
        }
        watch.notify(|t| changed.concerns(t));
        tracing::trace!(
            endpoint = endpoint.address(), action = event.action.as_deref().unwrap_or_default(),
            changed = ?changed, "Docker event"
        );
        if by_task && matches!(changed, Changed::Swarm { .. }) {
            again.push(changed);
        }
    }
    again
}

/// One poll of a stream-less endpoint: fresh snapshots of what its feeds watch, and a notification for each
/// service whose status differs from the last poll's (every service, at the first poll of an outage).
async fn poll_once(
    endpoint: &EngineEndpoint,
    polled: &mut Option<HashMap<Target, Option<ReplicaStatus>>>,
) {
    let targets = endpoint.watch().targets();
    let compose = targets.iter().any(|t| matches!(t, Target::Compose { .. }));
    let swarm = targets.iter().any(|t| matches!(t, Target::Swarm(_)));
    let containers = if compose {
        endpoint.invalidate_containers();
        endpoint.containers(WATCH_TIMEOUT).await.ok()
    } else {
        None
    };
    let services = if swarm {
        endpoint.invalidate_swarm();
        endpoint.swarm(WATCH_TIMEOUT).await.ok()
    } else {
        None
    };
    let mut now = HashMap::new();
    for target in targets {
        let status = match &target {
            Target::Compose { project, service } => match &containers {
                Some(list) => crate::compose::status_in(list, project, service).ok(),
                None => continue,
            },
            Target::Swarm(service) => match &services {
                Some(state) => crate::swarm::status_in(state, service),
                None => continue,
            },
            // A discovery resyncs on its own period while the stream is down.
            Target::Discovery(_) => continue,
        };
        now.insert(target, status);
    }
    let last = polled.get_or_insert_with(HashMap::new);
    let first = last.is_empty();
    let changed: Vec<Target> = now
        .iter()
        .filter(|(target, status)| first || last.get(*target) != Some(*status))
        .map(|(target, _)| target.clone())
        .collect();
    last.extend(now);
    if !changed.is_empty() {
        tracing::debug!(
            endpoint = endpoint.address(),
            services = changed.len(),
            "polled while the event stream is down: notifying the services that changed"
        );
        endpoint.watch().notify(|t| changed.contains(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attrs: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some(id.to_owned()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
            }),
            ..EventMessage::default()
        }
    }

    fn compose(project: &str, service: &str) -> Target {
        Target::Compose {
            project: project.to_owned(),
            service: service.to_owned(),
        }
    }

    #[test]
    fn container_events_name_their_compose_service_or_swarm_service() {
        let labels = [
            (PROJECT_LABEL, "shop"),
            (SERVICE_LABEL, "web"),
            (ONEOFF_LABEL, "False"),
        ];
        let died = event(EventMessageTypeEnum::CONTAINER, "die", "c1", &labels);
        let changed = changed_by(&died);
        assert_eq!(changed.len(), 1);
        assert!(changed[0].concerns(&compose("shop", "web")));
        assert!(!changed[0].concerns(&compose("shop", "api")));
        assert!(!changed[0].concerns(&Target::Swarm("web".to_owned())));

        // A healthcheck's exec, a one-off `run` container, a container of neither: nothing.
        let exec = event(
            EventMessageTypeEnum::CONTAINER,
            "exec_start: sh -c true",
            "c1",
            &labels,
        );
        assert!(changed_by(&exec).is_empty());
        let oneoff = [
            (PROJECT_LABEL, "shop"),
            (SERVICE_LABEL, "web"),
            (ONEOFF_LABEL, "True"),
        ];
        assert!(
            changed_by(&event(
                EventMessageTypeEnum::CONTAINER,
                "start",
                "c2",
                &oneoff
            ))
            .is_empty()
        );
        assert!(changed_by(&event(EventMessageTypeEnum::CONTAINER, "start", "c3", &[])).is_empty());

        // A health change counts.
        let health = event(
            EventMessageTypeEnum::CONTAINER,
            "health_status: unhealthy",
            "c1",
            &labels,
        );
        assert_eq!(changed_by(&health).len(), 1);

        // A task's container names its Swarm service by name and ID.
        let task = [
            (SWARM_SERVICE_NAME, "shop_web"),
            (SWARM_SERVICE_ID, "abc123"),
        ];
        let changed = changed_by(&event(
            EventMessageTypeEnum::CONTAINER,
            "start",
            "c4",
            &task,
        ));
        assert_eq!(changed.len(), 1);
        assert!(changed[0].concerns(&Target::Swarm("shop_web".to_owned())));
        assert!(changed[0].concerns(&Target::Swarm("abc123".to_owned())));
    }

    #[test]
    fn a_discovery_hears_every_change_of_its_kind() {
        let compose = Changed::Compose {
            project: "shop".into(),
            service: "web".into(),
        };
        let swarm = Changed::Swarm {
            name: Some("api".into()),
            id: None,
        };
        let (compose_discovery, swarm_discovery) = (
            Target::Discovery(DiscoverKind::Compose),
            Target::Discovery(DiscoverKind::Swarm),
        );
        assert!(compose.concerns(&compose_discovery));
        assert!(!compose.concerns(&swarm_discovery));
        assert!(swarm.concerns(&swarm_discovery));
        assert!(!swarm.concerns(&compose_discovery));
    }

    #[test]
    fn service_events_name_the_service_by_name_and_id() {
        let update = event(
            EventMessageTypeEnum::SERVICE,
            "update",
            "xyz789",
            &[("name", "shop_web")],
        );
        let changed = changed_by(&update);
        assert!(changed[0].concerns(&Target::Swarm("shop_web".to_owned())));
        assert!(changed[0].concerns(&Target::Swarm("xyz789".to_owned())));
        assert!(!changed[0].concerns(&Target::Swarm("shop_api".to_owned())));
        let image = event(
            EventMessageTypeEnum::IMAGE,
            "pull",
            "i",
            &[("name", "shop_web")],
        );
        assert!(changed_by(&image).is_empty());
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_and_starts_over_after_a_healthy_minute() {
        let mut backoff = Backoff::new();
        let waits: Vec<f64> = (0..9)
            .map(|_| backoff.after_failure(None).as_secs_f64())
            .collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        // Up for a short while: still backing off.
        assert_eq!(
            backoff.after_failure(Some(Duration::from_secs(5))),
            RECONNECT_MAX
        );
        // Up for a minute: the next wait is the first again.
        assert_eq!(backoff.after_failure(Some(HEALTHY_AFTER)), RECONNECT_FIRST);
        assert_eq!(backoff.after_failure(None), Duration::from_secs(1));
    }
}
