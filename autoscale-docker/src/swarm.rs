//! The Docker Swarm scaler.

use async_trait::async_trait;
use autoscale_core::{ReplicaStatus, Replicas, ScaleOutcome, Scaler};
use autoscale_exec::{Invocation, Output};
use tokio::sync::Mutex;

use crate::docker::{DockerCli, run_checked};
use crate::error::Error;
use crate::names::{self, Rule};
use crate::parse::{self, Mode, ServiceInfo};
use crate::settings::SwarmSettings;

/// The backend name in [`autoscale_core::Error`]s from the Swarm scaler.
pub const BACKEND: &str = "docker swarm";

/// Scales one replicated Swarm service through `docker service`.
///
/// - Status: `current` is the service's spec replicas (`docker service inspect`); `ready` is the number of its
///   tasks that are running, from the engine's service status when `inspect` includes one, else from
///   `docker service ps --filter desired-state=running`. Swarm only reports a task with a healthcheck as
///   running once it is healthy, and replaces it when it turns unhealthy.
/// - Scale: `docker service scale SERVICE=N --detach`: the call returns once the new spec is stored, and the
///   orchestrator converges in the background. Asking for the spec's count runs nothing and returns
///   [`ScaleOutcome::Unchanged`].
/// - Global services (one task per node) and jobs are refused with [`Error::UnsupportedMode`].
#[derive(Debug)]
pub struct SwarmScaler {
    settings: SwarmSettings,
    /// The docker CLI the settings describe.
    docker: DockerCli,
    scaling: Mutex<()>,
}

impl SwarmScaler {
    /// The scaler of the Swarm service `service` (a name or an ID), run through `docker`.
    ///
    /// ```
    /// use autoscale_docker::{DockerCli, SwarmScaler};
    ///
    /// let scaler = SwarmScaler::new(DockerCli::new(), "mystack_webapp").unwrap();
    /// assert_eq!(scaler.service(), "mystack_webapp");
    /// assert!(SwarmScaler::new(DockerCli::new(), "web && reboot").is_err());
    /// ```
    pub fn new(docker: DockerCli, service: impl Into<String>) -> Result<Self, Error> {
        let command = docker.argv();
        let DockerCli { env, timeout, .. } = docker;
        SwarmScaler::from_settings(SwarmSettings {
            service: service.into(),
            command,
            timeout,
            docker: env,
        })
    }

    /// Check `settings` and build the scaler ([`SwarmSettings::scaler`]).
    pub(crate) fn from_settings(settings: SwarmSettings) -> Result<Self, Error> {
        names::check(Rule::SwarmService, &settings.service)?;
        let docker = DockerCli {
            command: Some(settings.command.clone()),
            env: settings.docker.clone(),
            timeout: settings.timeout,
        };
        docker.validate()?;
        Ok(SwarmScaler {
            settings,
            docker,
            scaling: Mutex::new(()),
        })
    }

    /// The settings the scaler was built from.
    pub fn settings(&self) -> &SwarmSettings {
        &self.settings
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.settings.service
    }

    /// The service's status, with this crate's error.
    pub async fn read_status(&self) -> Result<ReplicaStatus, Error> {
        let info = self.inspect().await?;
        let current = self.replicas(&info)?;
        let running = match info.running_tasks {
            Some(running) => running,
            None => {
                let out = run_checked(&self.tasks_invocation())
                    .await
                    .map_err(|e| self.not_found(e))?;
                parse::running_tasks(&out.stdout).map_err(|reason| unexpected(&out, reason))?
            }
        };
        // Right after a scale-down, tasks being stopped can still be listed as running.
        Ok(ReplicaStatus {
            current,
            ready: running.min(current),
        })
    }

    /// Scale the service to `replicas`, with this crate's error.
    pub async fn set_replicas(&self, replicas: Replicas) -> Result<ScaleOutcome, Error> {
        let Ok(_scaling) = self.scaling.try_lock() else {
            return Err(Error::Busy {
                target: format!("swarm service {}", self.settings.service),
            });
        };
        let info = self.inspect().await?;
        let current = self.replicas(&info)?;
        if current == replicas {
            tracing::debug!(service = %self.settings.service, replicas, "already at the count");
            return Ok(ScaleOutcome::Unchanged);
        }
        run_checked(&self.scale_invocation(replicas))
            .await
            .map_err(|e| self.not_found(e))?;
        tracing::info!(service = %self.settings.service, from = current, to = replicas, "scaled swarm service");
        Ok(ScaleOutcome::Scaled)
    }

    async fn inspect(&self) -> Result<ServiceInfo, Error> {
        let out = run_checked(&self.inspect_invocation())
            .await
            .map_err(|e| self.not_found(e))?;
        let mut services =
            parse::service_inspect(&out.stdout).map_err(|reason| unexpected(&out, reason))?;
        match (services.pop(), services.is_empty()) {
            (Some(info), true) => Ok(info),
            _ => Err(unexpected(
                &out,
                "expected exactly one service in the array".to_owned(),
            )),
        }
    }

    fn replicas(&self, info: &ServiceInfo) -> Result<Replicas, Error> {
        match &info.mode {
            Mode::Replicated { replicas } => Ok(*replicas),
            Mode::Other(mode) => Err(Error::UnsupportedMode {
                service: self.settings.service.clone(),
                mode: mode.clone(),
            }),
        }
    }

    /// "No such service" is a failure of its own: the name is wrong or the stack is gone.
    fn not_found(&self, error: Error) -> Error {
        match error {
            Error::CommandFailed { source }
                if source
                    .stderr_tail()
                    .is_some_and(|s| s.to_ascii_lowercase().contains("no such service")) =>
            {
                Error::ServiceNotFound {
                    service: self.settings.service.clone(),
                    source,
                }
            }
            other => other,
        }
    }

    fn inspect_invocation(&self) -> Invocation {
        self.docker
            .docker(["service", "inspect", &self.settings.service])
    }

    fn tasks_invocation(&self) -> Invocation {
        // --no-resolve: node and service names are not needed, and resolving them costs API calls.
        self.docker.docker([
            "service",
            "ps",
            "--no-resolve",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
            &self.settings.service,
        ])
    }

    fn scale_invocation(&self, replicas: Replicas) -> Invocation {
        self.docker.docker([
            "service".to_owned(),
            "scale".to_owned(),
            format!("{}={replicas}", self.settings.service),
            "--detach".to_owned(),
        ])
    }
}

fn unexpected(out: &Output, reason: String) -> Error {
    Error::UnexpectedOutput {
        command: out.command.clone(),
        reason,
        excerpt: parse::excerpt(&out.stdout),
    }
}

#[async_trait]
impl Scaler for SwarmScaler {
    async fn status(&self) -> autoscale_core::Result<ReplicaStatus> {
        self.read_status().await.map_err(|e| e.attribute(BACKEND))
    }

    async fn scale(&self, replicas: Replicas) -> autoscale_core::Result<ScaleOutcome> {
        self.set_replicas(replicas)
            .await
            .map_err(|e| e.attribute(BACKEND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DockerEnv;
    use std::ffi::OsString;
    use std::path::Path;

    fn argv(inv: &Invocation) -> Vec<String> {
        std::iter::once(inv.program())
            .chain(inv.arguments())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_command_is_an_argument_vector() {
        let scaler = SwarmScaler::new(
            DockerCli::new()
                .command(["/usr/bin/docker"])
                .env(DockerEnv::new().context("prod")),
            "mystack_webapp",
        )
        .unwrap();
        insta::assert_yaml_snapshot!([
            argv(&scaler.inspect_invocation()),
            argv(&scaler.tasks_invocation()),
            argv(&scaler.scale_invocation(4)),
        ]);
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "web;id", "-web", "web.1", "web_", "$(reboot)"] {
            let err = SwarmScaler::new(DockerCli::new(), name).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name}: {err}");
        }
    }

    /// A docker CLI that is a shell script, run through `sh` (no ETXTBSY when another test forks meanwhile).
    /// It prints `inspect` for `service inspect`, `ps` for `service ps`, and logs every call to `calls`.
    fn fake_docker(dir: &Path, inspect: &str, ps: &str) -> DockerCli {
        let script = format!(
            "echo \"$*\" >> {calls}\ncase \"$1 $2\" in\n  'service inspect') cat {dir}/inspect ;;\n  \
             'service ps') cat {dir}/ps ;;\n  'service scale') echo scaled ;;\n  *) exit 64 ;;\nesac\n",
            calls = dir.join("calls").display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("inspect"), inspect).unwrap();
        std::fs::write(dir.join("ps"), ps).unwrap();
        let path = dir.join("docker.sh");
        std::fs::write(&path, script).unwrap();
        DockerCli::new().command([OsString::from("sh"), path.into_os_string()])
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    const REPLICATED_3: &str =
        r#"[{"ID":"x","Spec":{"Name":"web","Mode":{"Replicated":{"Replicas":3}}}}]"#;
    const TASKS: &str = "{\"CurrentState\":\"Running 1 second ago\"}\n{\"CurrentState\":\"Starting 1 second ago\"}\n";

    #[tokio::test]
    async fn status_combines_spec_replicas_and_running_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let scaler = SwarmScaler::new(fake_docker(dir.path(), REPLICATED_3, TASKS), "web").unwrap();
        assert_eq!(
            scaler.read_status().await.unwrap(),
            ReplicaStatus {
                current: 3,
                ready: 1
            }
        );
        assert_eq!(calls(dir.path()), ["service inspect", "service ps"]);
    }

    #[tokio::test]
    async fn the_engines_service_status_saves_the_task_listing() {
        let dir = tempfile::tempdir().unwrap();
        let inspect = r#"[{"ID":"x","Spec":{"Name":"web","Mode":{"Replicated":{"Replicas":3}}},"ServiceStatus":{"RunningTasks":5,"DesiredTasks":3}}]"#;
        let scaler = SwarmScaler::new(fake_docker(dir.path(), inspect, ""), "web").unwrap();
        assert_eq!(
            scaler.read_status().await.unwrap(),
            ReplicaStatus::all_ready(3)
        );
        assert_eq!(calls(dir.path()), ["service inspect"]);
    }

    #[tokio::test]
    async fn the_same_count_runs_no_scale_command() {
        let dir = tempfile::tempdir().unwrap();
        let scaler = SwarmScaler::new(fake_docker(dir.path(), REPLICATED_3, TASKS), "web").unwrap();
        assert_eq!(
            scaler.set_replicas(3).await.unwrap(),
            ScaleOutcome::Unchanged
        );
        assert_eq!(calls(dir.path()), ["service inspect"]);
        assert_eq!(scaler.set_replicas(5).await.unwrap(), ScaleOutcome::Scaled);
        assert_eq!(
            calls(dir.path()),
            ["service inspect", "service inspect", "service scale"]
        );
    }

    #[tokio::test]
    async fn a_scale_while_another_runs_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), REPLICATED_3, TASKS);
        let scaler = SwarmScaler::new(docker, "web").unwrap();
        // join! polls the first call first: it holds the scale lock while its commands run.
        let (first, second) = tokio::join!(scaler.scale(5), scaler.scale(6));
        assert_eq!(first.unwrap(), ScaleOutcome::Scaled);
        let second = second.unwrap_err();
        assert!(
            matches!(second, autoscale_core::Error::Busy { backend: BACKEND }),
            "{second:?}"
        );
        // Status reads are never blocked by a scale action.
        assert!(scaler.status().await.is_ok());
    }

    #[tokio::test]
    async fn global_services_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inspect = r#"[{"ID":"x","Spec":{"Name":"agent","Mode":{"Global":{}}}}]"#;
        let scaler = SwarmScaler::new(fake_docker(dir.path(), inspect, ""), "agent").unwrap();
        let err = scaler.scale(2).await.unwrap_err();
        assert_eq!(err.kind(), autoscale_core::FailureKind::Rejected);
        insta::assert_snapshot!(err.to_string(), @"docker swarm refused the request: Swarm service \"agent\" runs in global mode: only replicated services can be scaled (a global service runs one task per node; scale it by adding nodes or use mode replicated)");
        assert!(scaler.status().await.is_err());
        assert_eq!(calls(dir.path()), ["service inspect", "service inspect"]);
    }

    #[tokio::test]
    async fn garbage_is_a_bad_result() {
        let dir = tempfile::tempdir().unwrap();
        let scaler = SwarmScaler::new(
            fake_docker(dir.path(), "<html>proxy error</html>", ""),
            "web",
        )
        .unwrap();
        let err = scaler.status().await.unwrap_err();
        assert_eq!(err.kind(), autoscale_core::FailureKind::BadResult);
        assert!(
            err.to_string().contains("<html>proxy error</html>"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let scaler = SwarmScaler::new(fake_docker(dir.path(), "[]", ""), "web").unwrap();
        let err = scaler.status().await.unwrap_err();
        assert!(err.to_string().contains("exactly one service"), "{err}");
    }
}
