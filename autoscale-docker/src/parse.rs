//! Parsing what the docker CLI prints. Pure functions: every shape, including garbage, is unit-tested.
//!
//! Fields are read by name and unknown fields are ignored, so newer CLIs that add fields keep working; a
//! missing or mistyped field that matters is an error, never a guess.

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
}
