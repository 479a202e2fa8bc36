//! Finding the Swarm services that ask to be autoscaled, through their labels.
//!
//! A service opts in with `autoscale.enable=true` and gives its bounds with `autoscale.min` and
//! `autoscale.max`; any other `autoscale.*` label is passed on as a setting for the daemon to interpret:
//!
//! ```text
//! docker service create --label autoscale.enable=true --label autoscale.min=2 --label autoscale.max=10 \
//!     --label autoscale.interval=15s ... web
//! ```

use std::collections::BTreeMap;

use autoscale_core::Replicas;

use crate::docker::{DockerCli, run_checked};
use crate::error::Error;
use crate::parse::{self, Mode, ServiceInfo};

/// The prefix of every label discovery reads.
pub const LABEL_PREFIX: &str = "autoscale.";
/// The label that opts a service in; only the exact value `true` does.
pub const ENABLE_LABEL: &str = "autoscale.enable";
/// The label holding the least replica count.
pub const MIN_LABEL: &str = "autoscale.min";
/// The label holding the greatest replica count.
pub const MAX_LABEL: &str = "autoscale.max";

/// A Swarm service that opted in to autoscaling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveredService {
    /// The service ID.
    pub id: String,
    /// The service name (what [`SwarmScaler::new`](crate::SwarmScaler::new) takes).
    pub name: String,
    /// Its spec replicas when it was discovered.
    pub replicas: Replicas,
    /// `autoscale.min`, when given.
    pub min: Option<Replicas>,
    /// `autoscale.max`, when given.
    pub max: Option<Replicas>,
    /// Every other `autoscale.*` label, without the prefix (`autoscale.interval=15s` is `interval`).
    pub settings: BTreeMap<String, String>,
}

/// A service that carries `autoscale.enable=true` but cannot be autoscaled as labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedService {
    /// The service ID.
    pub id: String,
    /// The service name.
    pub name: String,
    /// Why, for the operator.
    pub reason: String,
}

/// The result of a discovery: the services to scale, and the opted-in ones that cannot be, with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Discovery {
    /// Services to scale, by name.
    pub services: Vec<DiscoveredService>,
    /// Opted-in services with unusable labels or a mode that cannot be scaled, by name.
    pub skipped: Vec<SkippedService>,
}

/// List the Swarm services labelled `autoscale.enable=true`.
///
/// Two calls: `docker service ls -q --filter label=autoscale.enable=true`, then one `docker service inspect`
/// of all the IDs it printed. A service removed between the two makes the second fail; the next discovery
/// will not see it.
pub async fn discover_swarm_services(docker: &DockerCli) -> Result<Discovery, Error> {
    docker.validate()?;
    let list = docker.docker([
        "service".to_owned(),
        "ls".to_owned(),
        "--quiet".to_owned(),
        "--filter".to_owned(),
        format!("label={ENABLE_LABEL}=true"),
    ]);
    let out = run_checked(&list).await?;
    let ids = parse::ids(&out.stdout).map_err(|reason| Error::UnexpectedOutput {
        command: out.command.clone(),
        reason,
        excerpt: parse::excerpt(&out.stdout),
    })?;
    if ids.is_empty() {
        return Ok(Discovery::default());
    }
    let inspect = docker.docker(
        ["service".to_owned(), "inspect".to_owned()]
            .into_iter()
            .chain(ids),
    );
    let out = run_checked(&inspect).await?;
    let services =
        parse::service_inspect(&out.stdout).map_err(|reason| Error::UnexpectedOutput {
            command: out.command.clone(),
            reason,
            excerpt: parse::excerpt(&out.stdout),
        })?;
    Ok(classify(services))
}

/// Sort services into usable and skipped by their labels and mode.
fn classify(services: Vec<ServiceInfo>) -> Discovery {
    let mut discovery = Discovery::default();
    for info in services {
        match discovered(&info) {
            Ok(Some(service)) => discovery.services.push(service),
            // The label changed between the listing and the inspection.
            Ok(None) => {}
            Err(reason) => discovery.skipped.push(SkippedService {
                id: info.id,
                name: info.name,
                reason,
            }),
        }
    }
    discovery.services.sort_by(|a, b| a.name.cmp(&b.name));
    discovery.skipped.sort_by(|a, b| a.name.cmp(&b.name));
    discovery
}

fn discovered(info: &ServiceInfo) -> Result<Option<DiscoveredService>, String> {
    if info.labels.get(ENABLE_LABEL).map(String::as_str) != Some("true") {
        return Ok(None);
    }
    let replicas = match info.mode {
        Mode::Replicated { replicas } => replicas,
        Mode::Other(ref mode) => {
            return Err(format!(
                "it runs in {mode} mode; only replicated services can be scaled"
            ));
        }
    };
    let min = bound(info, MIN_LABEL)?;
    let max = bound(info, MAX_LABEL)?;
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(format!("{MIN_LABEL}={min} is above {MAX_LABEL}={max}"));
    }
    let settings = info
        .labels
        .iter()
        .filter(|(key, _)| ![ENABLE_LABEL, MIN_LABEL, MAX_LABEL].contains(&key.as_str()))
        .filter_map(|(key, value)| {
            let name = key.strip_prefix(LABEL_PREFIX)?;
            Some((name.to_owned(), value.clone()))
        })
        .collect();
    Ok(Some(DiscoveredService {
        id: info.id.clone(),
        name: info.name.clone(),
        replicas,
        min,
        max,
        settings,
    }))
}

fn bound(info: &ServiceInfo, label: &str) -> Result<Option<Replicas>, String> {
    let Some(value) = info.labels.get(label) else {
        return Ok(None);
    };
    // Digits only: `+3`, ` 3` and `3.0` are more likely mistakes than intentions.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{label}={value:?} is not a whole number of replicas"
        ));
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{label}={value:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, mode: Mode, labels: &[(&str, &str)]) -> ServiceInfo {
        ServiceInfo {
            id: format!("id-{name}"),
            name: name.to_owned(),
            mode,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            running_tasks: None,
        }
    }

    #[test]
    fn labels_become_typed_settings_or_a_reason_to_skip() {
        let replicated = Mode::Replicated { replicas: 2 };
        let discovery = classify(vec![
            service(
                "web",
                replicated.clone(),
                &[
                    ("autoscale.enable", "true"),
                    ("autoscale.min", "1"),
                    ("autoscale.max", "8"),
                    ("autoscale.interval", "15s"),
                    ("autoscale.query", "sum(rate(x[1m]))"),
                    ("com.example.team", "shop"),
                ],
            ),
            service("api", replicated.clone(), &[("autoscale.enable", "true")]),
            service(
                "agent",
                Mode::Other("global".to_owned()),
                &[("autoscale.enable", "true")],
            ),
            service(
                "inverted",
                replicated.clone(),
                &[
                    ("autoscale.enable", "true"),
                    ("autoscale.min", "5"),
                    ("autoscale.max", "2"),
                ],
            ),
            service(
                "typo",
                replicated.clone(),
                &[("autoscale.enable", "true"), ("autoscale.max", "ten")],
            ),
            service(
                "huge",
                replicated.clone(),
                &[
                    ("autoscale.enable", "true"),
                    ("autoscale.max", "99999999999"),
                ],
            ),
            service("changed", replicated, &[("autoscale.enable", "false")]),
        ]);
        insta::assert_debug_snapshot!(discovery);
    }

    #[tokio::test]
    async fn nothing_labelled_means_one_call() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker.sh");
        std::fs::write(&script, "echo \"$*\" >> \"$0.calls\"\n").unwrap();
        let docker =
            DockerCli::new().command([std::ffi::OsString::from("sh"), script.clone().into()]);
        assert_eq!(
            discover_swarm_services(&docker).await.unwrap(),
            Discovery::default()
        );
        let calls = std::fs::read_to_string(format!("{}.calls", script.display())).unwrap();
        assert_eq!(
            calls,
            "service ls --quiet --filter label=autoscale.enable=true\n"
        );
    }
}
