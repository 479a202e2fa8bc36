//! Parsing what the docker CLI prints. Pure functions: every shape, including garbage, is unit-tested.
//!
//! Fields are read by name and unknown fields are ignored, so newer CLIs that add fields keep working; a
//! missing or mistyped field that matters is an error, never a guess.

use std::collections::BTreeMap;

use autoscale_core::{ReplicaStatus, Replicas};
use serde::Deserialize;

/// A container as the status read counts it (from the Engine API's container list).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PsContainer {
    #[serde(rename = "ID")]
    pub id: String,
    pub names: String,
    /// `running`, `paused`, `restarting`...; older CLIs lack it, and list only running containers anyway.
    #[serde(default)]
    pub state: Option<String>,
    /// Human text such as `Up 5 minutes (healthy)`: the only place `docker ps` reports health.
    pub status: String,
}

/// A container's health, as `docker ps` reports it at the end of its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    NoCheck,
    Starting,
    Healthy,
    Unhealthy,
}

impl PsContainer {
    pub fn is_running(&self) -> bool {
        match &self.state {
            Some(state) => state == "running",
            None => self.status.starts_with("Up") && !self.status.contains("(Paused)"),
        }
    }

    pub fn health(&self) -> Health {
        // The daemon appends exactly one of these to "Up ..." (container/state.go in moby).
        if self.status.ends_with("(healthy)") {
            Health::Healthy
        } else if self.status.ends_with("(unhealthy)") {
            Health::Unhealthy
        } else if self.status.ends_with("(health: starting)") {
            Health::Starting
        } else {
            Health::NoCheck
        }
    }
}

/// Lines of JSON objects, one per container; blank lines are ignored.
#[cfg(test)]
pub(crate) fn ps_containers(stdout: &[u8]) -> Result<Vec<PsContainer>, String> {
    json_lines(stdout)
}

/// `current` = running containers; `ready` = running ones that are healthy or have no healthcheck.
pub(crate) fn compose_status(containers: &[PsContainer]) -> Result<ReplicaStatus, String> {
    let running = || containers.iter().filter(|c| c.is_running());
    let current = count(running().count())?;
    let ready = count(
        running()
            .filter(|c| matches!(c.health(), Health::Healthy | Health::NoCheck))
            .count(),
    )?;
    Ok(ReplicaStatus { current, ready })
}

/// What `docker service inspect` says about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub labels: BTreeMap<String, String>,
    /// `ServiceStatus.RunningTasks`, when the engine included it.
    pub running_tasks: Option<Replicas>,
}

/// A Swarm service's mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Replicated {
        replicas: Replicas,
    },
    /// `global`, `replicated-job`, `global-job`, or an unknown mode's key.
    Other(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawService {
    #[serde(rename = "ID")]
    id: String,
    spec: RawSpec,
    #[serde(default)]
    service_status: Option<RawServiceStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSpec {
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    mode: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawServiceStatus {
    running_tasks: u64,
}

/// The JSON array `docker service inspect` prints (without `--format`).
pub(crate) fn service_inspect(stdout: &[u8]) -> Result<Vec<ServiceInfo>, String> {
    let raw: Vec<RawService> =
        serde_json::from_slice(stdout).map_err(|e| format!("not a JSON array of services: {e}"))?;
    raw.into_iter().map(service_info).collect()
}

fn service_info(raw: RawService) -> Result<ServiceInfo, String> {
    let mode = mode(&raw.spec.name, &raw.spec.mode)?;
    let running_tasks = raw
        .service_status
        .map(|s| replicas_from(s.running_tasks))
        .transpose()?;
    Ok(ServiceInfo {
        id: raw.id,
        name: raw.spec.name,
        mode,
        labels: raw.spec.labels.unwrap_or_default(),
        running_tasks,
    })
}

fn mode(name: &str, raw: &serde_json::Map<String, serde_json::Value>) -> Result<Mode, String> {
    let mut keys = raw.keys();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(format!(
            "service {name:?} has {} modes in Spec.Mode, expected one",
            raw.len()
        ));
    };
    match key.as_str() {
        "Replicated" => {
            let replicas = raw[key]
                .get("Replicas")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| {
                    format!("service {name:?} has no whole Spec.Mode.Replicated.Replicas")
                })?;
            Ok(Mode::Replicated {
                replicas: replicas_from(replicas)?,
            })
        }
        "Global" => Ok(Mode::Other("global".to_owned())),
        "ReplicatedJob" => Ok(Mode::Other("replicated-job".to_owned())),
        "GlobalJob" => Ok(Mode::Other("global-job".to_owned())),
        other => Ok(Mode::Other(other.to_owned())),
    }
}

/// One ID per line, as `-q` prints them.
pub(crate) fn ids(stdout: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(stdout).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|id| {
            if id.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(id.to_owned())
            } else {
                Err(format!("{id:?} is not an ID"))
            }
        })
        .collect()
}

#[cfg(test)]
fn json_lines<T: serde::de::DeserializeOwned>(stdout: &[u8]) -> Result<Vec<T>, String> {
    let text = std::str::from_utf8(stdout).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("line {} is not the expected JSON: {e}", i + 1))
        })
        .collect()
}

fn count(n: usize) -> Result<Replicas, String> {
    Replicas::try_from(n).map_err(|_| format!("{n} replicas do not fit a replica count"))
}

fn replicas_from(n: u64) -> Result<Replicas, String> {
    Replicas::try_from(n).map_err(|_| format!("{n} replicas do not fit a replica count"))
}

/// The start of some output, for error messages.
pub(crate) fn excerpt(stdout: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(stdout);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = r#"{"ID":"e238b3f8afab","Names":"p_app_2","State":"running","Status":"Up 6 seconds (healthy)"}
{"ID":"0dada224a4b9","Names":"p_app_1","State":"running","Status":"Up 11 seconds (unhealthy)"}
{"ID":"1dada224a4b9","Names":"p_app_3","State":"running","Status":"Up Less than a second (health: starting)"}
{"ID":"2dada224a4b9","Names":"p_app_4","State":"running","Status":"Up 2 hours"}
{"ID":"3dada224a4b9","Names":"p_app_5","State":"paused","Status":"Up 2 hours (Paused)"}
{"ID":"4dada224a4b9","Names":"p_app_6","State":"restarting","Status":"Restarting (1) 2 seconds ago"}

"#;

    #[test]
    fn compose_containers_are_counted_by_state_and_health() {
        let containers = ps_containers(PS.as_bytes()).unwrap();
        insta::assert_debug_snapshot!(
            containers
                .iter()
                .map(|c| (c.names.as_str(), c.is_running(), c.health()))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            compose_status(&containers).unwrap(),
            ReplicaStatus {
                current: 4,
                ready: 2
            }
        );
        assert_eq!(compose_status(&[]).unwrap(), ReplicaStatus::all_ready(0));
    }

    #[test]
    fn ps_without_a_state_field_reads_the_status_text() {
        let containers = ps_containers(
            br#"{"ID":"a","Names":"x","Status":"Up 1 second"}
{"ID":"b","Names":"y","Status":"Up 1 second (Paused)"}"#,
        )
        .unwrap();
        assert_eq!(
            compose_status(&containers).unwrap(),
            ReplicaStatus::all_ready(1)
        );
    }

    #[test]
    fn unexpected_ps_output_is_an_error() {
        let cases: [&[u8]; 5] = [
            b"CONTAINER ID   IMAGE     COMMAND\n",
            br#"{"ID":"a","Names":"x"}"#,
            br#"{"ID":1,"Names":"x","State":"running","Status":"Up"}"#,
            b"[]",
            b"\xff\xfe",
        ];
        let errors: Vec<String> = cases
            .iter()
            .map(|c| ps_containers(c).unwrap_err())
            .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    const INSPECT: &str = r#"[
    {
        "ID": "ski0j9sh6dxv1cvw750z9bh4y",
        "Version": { "Index": 12 },
        "Spec": {
            "Name": "web",
            "Labels": { "autoscale.enable": "true", "autoscale.max": "5" },
            "TaskTemplate": { "ContainerSpec": { "Image": "local/busybox:1" } },
            "Mode": { "Replicated": { "Replicas": 2 } },
            "SomeFutureField": [1, 2, 3]
        }
    },
    {
        "ID": "abc",
        "Spec": { "Name": "agent", "Mode": { "Global": {} } },
        "ServiceStatus": { "RunningTasks": 3, "DesiredTasks": 3, "CompletedTasks": 0 }
    },
    {
        "ID": "def",
        "Spec": { "Name": "batch", "Mode": { "ReplicatedJob": { "MaxConcurrent": 1, "TotalCompletions": 1 } } }
    },
    {
        "ID": "ghi",
        "Spec": { "Name": "idle", "Mode": { "Replicated": { "Replicas": 0 } } }
    }
]"#;

    #[test]
    fn service_inspect_reads_mode_replicas_labels_and_status() {
        insta::assert_debug_snapshot!(service_inspect(INSPECT.as_bytes()).unwrap());
    }

    #[test]
    fn unexpected_service_inspect_output_is_an_error() {
        let cases: [&[u8]; 7] = [
            b"",
            b"Error: no such service",
            br#"{"ID":"a"}"#,
            br#"[{"ID":"a","Spec":{"Name":"w","Mode":{}}}]"#,
            br#"[{"ID":"a","Spec":{"Name":"w","Mode":{"Replicated":{}}}}]"#,
            br#"[{"ID":"a","Spec":{"Name":"w","Mode":{"Replicated":{"Replicas":-1}}}}]"#,
            br#"[{"ID":"a","Spec":{"Name":"w","Mode":{"Replicated":{"Replicas":99999999999}}}}]"#,
        ];
        let errors: Vec<String> = cases
            .iter()
            .map(|c| service_inspect(c).unwrap_err())
            .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    #[test]
    fn ids_are_one_per_line() {
        assert_eq!(ids(b"abc\n\ndef\n").unwrap(), ["abc", "def"]);
        assert!(ids(b"abc def\n").is_err());
        assert!(ids(b"").unwrap().is_empty());
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt(b"short"), "short");
        let long = "é".repeat(300);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
    }
}
