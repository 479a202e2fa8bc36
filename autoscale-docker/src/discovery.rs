//! Finding the services that ask to be autoscaled, through their labels, in the endpoint's shared snapshots.
//!
//! A Swarm service opts in with a label on the service; a Compose service with a label on its containers (what
//! the `labels:` of a compose file's service puts there). The selector is `autoscale.enable=true` unless
//! configured. Every `autoscale.*` label is passed on as it is: this module does not interpret them (the
//! daemon's configuration layer does, and reports a bad one with its reason).
//!
//! ```text
//! docker service create --label autoscale.enable=true --label autoscale.min=2 --label autoscale.max=10 \
//!     --label autoscale.interval=15s ... web
//! ```
//!
//! ```yaml
//! services:
//!   web:
//!     labels:
//!       autoscale.enable: "true"
//!       autoscale.min: "1"
//!       autoscale.max: "6"
//! ```
//!
//! Discovery reads the same lists as the status reads ([`EngineEndpoint`]): in the same second as a round's
//! reads it sends no request of its own.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use std::sync::Arc;

use autoscale_core::{ChangeFeed, Replicas};
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, Service};
use serde::Serialize;

use crate::compose::{PROJECT_LABEL, SERVICE_LABEL};
use crate::engine::EngineEndpoint;
use crate::error::Error;
use crate::names::{self, Rule};

/// The prefix of every label discovery passes on.
pub const LABEL_PREFIX: &str = "autoscale.";
/// The label of the default selector, `autoscale.enable=true`.
pub const ENABLE_LABEL: &str = "autoscale.enable";
/// The label holding the least replica count.
pub const MIN_LABEL: &str = "autoscale.min";
/// The label holding the greatest replica count.
pub const MAX_LABEL: &str = "autoscale.max";
/// The label holding the metric query.
pub const QUERY_LABEL: &str = "autoscale.query";
/// The label holding the target value of the query (per replica).
pub const TARGET_LABEL: &str = "autoscale.target";
/// The label holding the value above which the service scales up (with [`SCALE_DOWN_BELOW_LABEL`]).
pub const SCALE_UP_ABOVE_LABEL: &str = "autoscale.scale_up_above";
/// The label holding the value below which the service scales down (with [`SCALE_UP_ABOVE_LABEL`]).
pub const SCALE_DOWN_BELOW_LABEL: &str = "autoscale.scale_down_below";
/// The label holding the evaluation interval.
pub const INTERVAL_LABEL: &str = "autoscale.interval";
/// The label holding the cooldown after a scale-down.
pub const COOLDOWN_DOWN_LABEL: &str = "autoscale.cooldown_down";
/// The label Compose puts on a project's containers with its compose files, comma-separated.
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";
/// The label Compose puts on a project's containers with its working directory.
pub const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";

/// Which kind of services a discovery looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoverKind {
    /// Swarm services, by their spec labels.
    Swarm,
    /// Compose services, by the labels of their containers.
    Compose,
}

impl fmt::Display for DiscoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiscoverKind::Swarm => "swarm",
            DiscoverKind::Compose => "compose",
        })
    }
}

/// The label a service must carry to be discovered: a key, and the exact value when given.
///
/// ```
/// use autoscale_docker::Selector;
///
/// assert_eq!(Selector::default().to_string(), "autoscale.enable=true");
/// assert_eq!(Selector::parse("team.scaled").unwrap().to_string(), "team.scaled");
/// assert!(Selector::parse("=true").unwrap_err().contains("empty"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    key: String,
    value: Option<String>,
}

impl Selector {
    /// `key=value` (the label has exactly this value) or `key` (the label is present, with any value).
    ///
    /// The key takes letters, digits, `.`, `-`, `_` and `/`; the value any characters but control characters.
    /// An empty key or value is refused, with the reason.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let (key, value) = match s.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(format!("selector {s:?}: the label key is empty"));
        }
        if let Some(c) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-/".contains(*c)))
        {
            return Err(format!(
                "selector {s:?}: {c:?} is not allowed in a label key (letters, digits, '.', '-', '_' and '/')"
            ));
        }
        match value {
            Some("") => Err(format!(
                "selector {s:?}: the value after '=' is empty; write the key alone to match any value"
            )),
            Some(value) if value.chars().any(char::is_control) => Err(format!(
                "selector {s:?}: the value holds a control character"
            )),
            _ => Ok(Selector {
                key: key.to_owned(),
                value: value.map(str::to_owned),
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value the label must have, if any.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    fn matches(&self, labels: &HashMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(found), Some(want)) => found == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            key: ENABLE_LABEL.to_owned(),
            value: Some("true".to_owned()),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// A service that opted in to autoscaling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveredService {
    /// Swarm or Compose.
    pub kind: DiscoverKind,
    /// Swarm: the service ID; Compose: `project/service`.
    pub id: String,
    /// Swarm: the service name; Compose: the compose service name.
    pub name: String,
    /// The Compose project (`None` for Swarm).
    pub project: Option<String>,
    /// Compose: the files of `com.docker.compose.project.config_files`, a relative one joined to the working
    /// directory (empty for Swarm, or when Compose did not record them).
    pub config_files: Vec<PathBuf>,
    /// Compose: `com.docker.compose.project.working_dir`.
    pub working_dir: Option<PathBuf>,
    /// Swarm: the spec replicas; Compose: the running containers (one-off containers excluded).
    pub replicas: Replicas,
    /// Every label whose key starts with `autoscale.`, under its full key, uninterpreted.
    pub labels: BTreeMap<String, String>,
}

impl DiscoveredService {
    /// A service with no project, files or labels (for tests and embedders; discovery fills them).
    pub fn new(
        kind: DiscoverKind,
        id: impl Into<String>,
        name: impl Into<String>,
        replicas: Replicas,
    ) -> Self {
        DiscoveredService {
            kind,
            id: id.into(),
            name: name.into(),
            project: None,
            config_files: Vec::new(),
            working_dir: None,
            replicas,
            labels: BTreeMap::new(),
        }
    }
}

/// A service that carries the selector's label but cannot be autoscaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedService {
    /// Swarm or Compose.
    pub kind: DiscoverKind,
    /// As in [`DiscoveredService::id`] (for a container without a service label, `project/CONTAINER`).
    pub id: String,
    /// As in [`DiscoveredService::name`] (the container name, without a service label).
    pub name: String,
    /// Why, for the operator.
    pub reason: String,
}

/// The result of a discovery: the services to scale, and the opted-in ones that cannot be, with the reason.
/// Both sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Services to scale.
    pub services: Vec<DiscoveredService>,
    /// Opted-in services that cannot be scaled.
    pub skipped: Vec<SkippedService>,
}

impl EngineEndpoint {
    /// The services of `kind` on this endpoint carrying `selector`'s label.
    ///
    /// It reads the endpoint's shared snapshot (`GET /services` and `GET /tasks` for Swarm, `GET
    /// /containers/json` for Compose): within [`DEFAULT_FRESHNESS`](crate::DEFAULT_FRESHNESS) of the status
    /// reads of a round it sends no request. A service whose labels changed, or that was removed, shows as it
    /// is in the next call past that freshness.
    ///
    /// - Swarm: the service's spec labels. Services in global or job mode are skipped.
    /// - Compose: the labels of the service's newest containers (mid-update, the containers being replaced
    ///   carry the old ones). Skipped: newest containers that disagree on the selector or the `autoscale.*`
    ///   labels, a container without the compose service label, a project without compose file or working
    ///   directory labels, a project or service name the Compose scaler refuses.
    pub async fn discover(
        &self,
        kind: DiscoverKind,
        selector: &Selector,
        timeout: Duration,
    ) -> Result<Discovery, Error> {
        match kind {
            DiscoverKind::Swarm => {
                let state = self.swarm(timeout).await?;
                Ok(classify_swarm(&state.services, selector))
            }
            DiscoverKind::Compose => {
                let containers = self.containers(timeout).await?;
                Ok(classify_compose(&containers, selector))
            }
        }
    }

    /// A change feed for a discovery of `kind`: notified, through the endpoint's event stream, when a
    /// container of any Compose service (for [`DiscoverKind::Compose`]) or any Swarm service or task (for
    /// [`DiscoverKind::Swarm`]) changes, which includes a service created, removed or relabelled. The snapshot
    /// the event changed is dropped first, so a [`discover`](Self::discover) that follows reads it anew.
    /// While the stream is down it is not notified: a discovery keeps its own periodic resync for that.
    /// `None` when the stream's thread cannot be started.
    pub fn discovery_changes(self: &Arc<Self>, kind: DiscoverKind) -> Option<ChangeFeed> {
        crate::events::subscribe(self, crate::events::Target::Discovery(kind))
    }
}

static NO_LABELS: LazyLock<HashMap<String, String>> = LazyLock::new(HashMap::new);

fn labels_of(container: &ContainerSummary) -> &HashMap<String, String> {
    container.labels.as_ref().unwrap_or(&NO_LABELS)
}

fn autoscale_labels(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| key.starts_with(LABEL_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Sort Swarm services into discovered and skipped.
fn classify_swarm(services: &[Service], selector: &Selector) -> Discovery {
    let mut discovery = Discovery::default();
    for service in services {
        let Some(spec) = &service.spec else {
            continue;
        };
        let labels = spec.labels.as_ref().unwrap_or(&NO_LABELS);
        if !selector.matches(labels) {
            continue;
        }
        let id = service.id.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        let skip = |reason: String| SkippedService {
            kind: DiscoverKind::Swarm,
            id: id.clone(),
            name: name.clone(),
            reason,
        };
        if id.is_empty() || name.is_empty() {
            discovery
                .skipped
                .push(skip("the service list gave it no ID or no name".to_owned()));
            continue;
        }
        if let Err(e) = names::check(Rule::SwarmService, &name) {
            discovery.skipped.push(skip(e.to_string()));
            continue;
        }
        let mode = spec.mode.as_ref();
        let replicas = match mode {
            Some(m) if m.replicated.is_some() => {
                // The engine's default when a spec omits the count.
                let replicas = m.replicated.as_ref().and_then(|r| r.replicas).unwrap_or(1);
                match Replicas::try_from(replicas) {
                    Ok(replicas) => replicas,
                    Err(_) => {
                        discovery
                            .skipped
                            .push(skip(format!("its spec has {replicas} replicas")));
                        continue;
                    }
                }
            }
            other => {
                let mode = match other {
                    Some(m) if m.global.is_some() => "global",
                    Some(m) if m.replicated_job.is_some() => "replicated-job",
                    Some(m) if m.global_job.is_some() => "global-job",
                    _ => "an unknown",
                };
                discovery.skipped.push(skip(format!(
                    "it runs in {mode} mode; only replicated services can be scaled"
                )));
                continue;
            }
        };
        let mut found = DiscoveredService::new(DiscoverKind::Swarm, id, name, replicas);
        found.labels = autoscale_labels(labels);
        discovery.services.push(found);
    }
    sort(&mut discovery);
    discovery
}

/// Sort Compose containers, grouped by project and service, into discovered services and skipped ones.
fn classify_compose(containers: &[ContainerSummary], selector: &Selector) -> Discovery {
    let mut discovery = Discovery::default();
    let mut groups: BTreeMap<(String, String), Vec<&ContainerSummary>> = BTreeMap::new();
    for container in containers {
        let labels = labels_of(container);
        let project = labels.get(PROJECT_LABEL).cloned().unwrap_or_default();
        match labels.get(SERVICE_LABEL).filter(|s| !s.is_empty()) {
            Some(service) => groups
                .entry((project, service.clone()))
                .or_default()
                .push(container),
            None if selector.matches(labels) => {
                let name = container
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .or_else(|| container.id.clone())
                    .unwrap_or_default();
                discovery.skipped.push(SkippedService {
                    kind: DiscoverKind::Compose,
                    id: format!("{project}/{name}"),
                    reason: format!("the container has no {SERVICE_LABEL} label"),
                    name,
                });
            }
            None => {}
        }
    }
    for ((project, service), members) in groups {
        let newest_at = members.iter().filter_map(|c| c.created).max();
        let newest: Vec<&HashMap<String, String>> = members
            .iter()
            .filter(|c| c.created == newest_at)
            .map(|c| labels_of(c))
            .collect();
        let opted_in = newest.iter().filter(|l| selector.matches(l)).count();
        if opted_in == 0 {
            continue;
        }
        let id = format!("{project}/{service}");
        let skip = |reason: String| SkippedService {
            kind: DiscoverKind::Compose,
            id: id.clone(),
            name: service.clone(),
            reason,
        };
        let labels = autoscale_labels(newest[0]);
        if opted_in < newest.len() || newest[1..].iter().any(|l| autoscale_labels(l) != labels) {
            discovery.skipped.push(skip(format!(
                "its newest containers disagree on {selector} or the {LABEL_PREFIX}* labels; it is left out \
                 until they agree (an update in progress?)"
            )));
            continue;
        }
        if let Err(e) = names::check(Rule::ComposeProject, &project)
            .and_then(|()| names::check(Rule::ComposeService, &service))
        {
            discovery.skipped.push(skip(e.to_string()));
            continue;
        }
        let working_dir = newest[0]
            .get(WORKING_DIR_LABEL)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let config_files: Vec<PathBuf> = newest[0]
            .get(CONFIG_FILES_LABEL)
            .map(|files| {
                files
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(|f| match &working_dir {
                        // Compose v1 records the files as given on its command line.
                        Some(dir) => dir.join(f),
                        None => PathBuf::from(f),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if config_files.is_empty() && working_dir.is_none() {
            discovery.skipped.push(skip(format!(
                "its containers have neither {CONFIG_FILES_LABEL} nor {WORKING_DIR_LABEL}: the compose file \
                 to scale it with is unknown"
            )));
            continue;
        }
        let running = members
            .iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .count();
        let mut found = DiscoveredService::new(
            DiscoverKind::Compose,
            id,
            service.clone(),
            Replicas::try_from(running).unwrap_or(Replicas::MAX),
        );
        found.project = Some(project);
        found.config_files = config_files;
        found.working_dir = working_dir;
        found.labels = labels;
        discovery.services.push(found);
    }
    sort(&mut discovery);
    discovery
}

fn sort(discovery: &mut Discovery) {
    discovery.services.sort_by(|a, b| a.id.cmp(&b.id));
    discovery.skipped.sort_by(|a, b| a.id.cmp(&b.id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated};

    fn map(labels: &[(&str, &str)]) -> HashMap<String, String> {
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_parse_or_say_why() {
        let ok = |s: &str| Selector::parse(s).unwrap();
        assert_eq!(ok("autoscale.enable=true"), Selector::default());
        assert_eq!(ok("team.scaled").value(), None);
        assert_eq!(ok("a=b=c").value(), Some("b=c"));
        assert_eq!(ok("io.k/x-y_z=on").to_string(), "io.k/x-y_z=on");
        assert_eq!(ok("k=two words").value(), Some("two words"));
        let bad: Vec<(&str, String)> = ["", "=true", "a b=1", "a;b", "k=", "k=\n", "ké=1"]
            .into_iter()
            .map(|s| (s, Selector::parse(s).unwrap_err()))
            .collect();
        insta::assert_debug_snapshot!(bad);
    }

    #[test]
    fn a_selector_matches_its_key_and_value() {
        let labels = map(&[("autoscale.enable", "true"), ("team", "shop")]);
        assert!(Selector::default().matches(&labels));
        assert!(ok_sel("team").matches(&labels));
        assert!(!ok_sel("team=web").matches(&labels));
        assert!(!ok_sel("other").matches(&labels));
        assert!(!Selector::default().matches(&map(&[("autoscale.enable", "True")])));
    }

    fn ok_sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn service(name: &str, mode: ServiceSpecMode, labels: &[(&str, &str)]) -> Service {
        Service {
            id: Some(format!("id-{name}")),
            spec: Some(ServiceSpec {
                name: Some(name.to_owned()),
                labels: Some(map(labels)),
                mode: Some(mode),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn replicated(n: Option<i64>) -> ServiceSpecMode {
        ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: n }),
            ..ServiceSpecMode::default()
        }
    }

    #[test]
    fn swarm_services_are_found_by_their_spec_labels() {
        let on = ("autoscale.enable", "true");
        let discovery = classify_swarm(
            &[
                service(
                    "web",
                    replicated(Some(2)),
                    &[
                        on,
                        ("autoscale.min", "1"),
                        ("autoscale.max", "lots"),
                        ("autoscale.query", "sum(rate(x[1m]))"),
                        ("com.example.team", "shop"),
                    ],
                ),
                service("api", replicated(None), &[on]),
                service(
                    "agent",
                    ServiceSpecMode {
                        global: Some(Default::default()),
                        ..ServiceSpecMode::default()
                    },
                    &[on],
                ),
                service("batch", ServiceSpecMode::default(), &[on]),
                service("weird", replicated(Some(-1)), &[on]),
                service("off", replicated(Some(1)), &[("autoscale.enable", "false")]),
                service("plain", replicated(Some(1)), &[]),
                Service::default(),
            ],
            &Selector::default(),
        );
        insta::assert_debug_snapshot!(discovery);
    }

    struct C<'a> {
        project: &'a str,
        service: Option<&'a str>,
        created: i64,
        running: bool,
        labels: &'a [(&'a str, &'a str)],
    }

    fn container(c: &C<'_>, n: usize) -> ContainerSummary {
        let mut labels = map(c.labels);
        labels.insert(PROJECT_LABEL.to_owned(), c.project.to_owned());
        labels.insert(WORKING_DIR_LABEL.to_owned(), format!("/srv/{}", c.project));
        labels.insert(
            CONFIG_FILES_LABEL.to_owned(),
            "docker-compose.yml,/etc/override.yml".to_owned(),
        );
        if let Some(service) = c.service {
            labels.insert(SERVICE_LABEL.to_owned(), service.to_owned());
        }
        ContainerSummary {
            id: Some(format!("c{n}")),
            names: Some(vec![format!(
                "/{}_{}_{n}",
                c.project,
                c.service.unwrap_or("x")
            )]),
            created: Some(c.created),
            state: Some(if c.running {
                ContainerSummaryStateEnum::RUNNING
            } else {
                ContainerSummaryStateEnum::EXITED
            }),
            labels: Some(labels),
            ..ContainerSummary::default()
        }
    }

    #[test]
    fn compose_services_are_found_by_their_newest_containers_labels() {
        let on = ("autoscale.enable", "true");
        let c = |project, service, created, running, labels| C {
            project,
            service,
            created,
            running,
            labels,
        };
        let containers: Vec<ContainerSummary> = [
            // Two running and one stopped: 2 replicas.
            c("shop", Some("web"), 10, true, &[on, ("autoscale.max", "6")]),
            c("shop", Some("web"), 10, true, &[on, ("autoscale.max", "6")]),
            c(
                "shop",
                Some("web"),
                10,
                false,
                &[on, ("autoscale.max", "6")],
            ),
            // Mid-update: the newest container's labels win.
            c("shop", Some("api"), 10, true, &[on, ("autoscale.max", "3")]),
            c("shop", Some("api"), 20, true, &[on, ("autoscale.max", "9")]),
            // Opting out mid-update: the newest says no.
            c("shop", Some("old"), 10, true, &[on]),
            c("shop", Some("old"), 20, true, &[]),
            // The newest disagree among themselves.
            c(
                "shop",
                Some("torn"),
                20,
                true,
                &[on, ("autoscale.min", "1")],
            ),
            c(
                "shop",
                Some("torn"),
                20,
                true,
                &[on, ("autoscale.min", "2")],
            ),
            // All stopped by hand: still there, with 0 replicas.
            c("shop", Some("idle"), 10, false, &[on]),
            c("shop", Some("db"), 10, true, &[]),
            c("shop", None, 10, true, &[on]),
            c("Shop", Some("web"), 10, true, &[on]),
        ]
        .iter()
        .enumerate()
        .map(|(n, c)| container(c, n))
        .collect();
        let discovery = classify_compose(&containers, &Selector::default());
        insta::assert_debug_snapshot!(discovery);
    }

    #[test]
    fn a_compose_project_without_file_labels_is_skipped() {
        let mut c = container(
            &C {
                project: "p",
                service: Some("s"),
                created: 1,
                running: true,
                labels: &[("autoscale.enable", "true")],
            },
            0,
        );
        let labels = c.labels.as_mut().unwrap();
        labels.remove(WORKING_DIR_LABEL);
        labels.remove(CONFIG_FILES_LABEL);
        let discovery = classify_compose(&[c.clone()], &Selector::default());
        assert!(discovery.services.is_empty());
        assert!(
            discovery.skipped[0].reason.contains(CONFIG_FILES_LABEL),
            "{:?}",
            discovery.skipped
        );
        // Files alone are enough, taken as they are.
        c.labels.as_mut().unwrap().insert(
            CONFIG_FILES_LABEL.to_owned(),
            "/srv/p/compose.yml".to_owned(),
        );
        let discovery = classify_compose(&[c], &Selector::default());
        assert_eq!(
            discovery.services[0].config_files,
            vec![PathBuf::from("/srv/p/compose.yml")]
        );
        assert_eq!(discovery.services[0].working_dir, None);
    }

    #[test]
    fn kinds_serialize_in_lowercase() {
        assert_eq!(
            serde_json::to_string(&[DiscoverKind::Swarm, DiscoverKind::Compose]).unwrap(),
            r#"["swarm","compose"]"#
        );
    }
}
