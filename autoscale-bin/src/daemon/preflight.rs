//! The start-up check of each service's scaler: its programs are found and its status can be read. A failure
//! is logged once, with what is missing and how to fix it, and holds `/readyz` at 503 until the service's
//! calls succeed; the daemon keeps running (the fault may be fixed while it runs).

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use autoscale_docker::ComposeCommand;

use crate::config::{AnsibleProgram, ScalerSettings, ServiceConfig};
use crate::daemon::wiring;

/// Which part of a scaler a failed preflight is about: the programs it runs to scale, or its status read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A program the scale calls need is missing.
    Program,
    /// The status read failed.
    Status,
}

/// Why a service's scaler cannot run, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub stage: Stage,
    /// What is missing or what the backend said.
    pub error: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; to fix: {}", self.error, self.fix)
    }
}

/// The programs of `service`'s scaler are found, then its status is read.
pub async fn check(service: &ServiceConfig) -> Result<(), Failure> {
    programs(&service.scaler).await?;
    let (scaler, timeout) = wiring::scaler(service).map_err(|e| Failure {
        stage: Stage::Status,
        error: e.to_string(),
        fix: "correct the scaler's settings".into(),
    })?;
    // The same margin the loop gives its status reads over the scaler's own per-command timeout.
    let limit = timeout.saturating_add(Duration::from_secs(5));
    match tokio::time::timeout(limit, scaler.status()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure {
            stage: Stage::Status,
            error: format!("cannot read its status: {e}"),
            fix: fix_for(&e).into(),
        }),
        Err(_) => Err(Failure {
            stage: Stage::Status,
            error: format!("cannot read its status: no answer within {limit:?}"),
            fix: TIMEOUT_FIX.into(),
        }),
    }
}

const TIMEOUT_FIX: &str = "check that the backend answers, or raise the scaler's `timeout`";

/// The programs a scale call runs: Compose (detected as the scaler would), docker, or ansible-playbook.
async fn programs(settings: &ScalerSettings) -> Result<(), Failure> {
    let program = match settings {
        ScalerSettings::Compose(compose) => match &compose.command {
            ComposeCommand::Argv(argv) => argv.first().map(PathBuf::from),
            ComposeCommand::Detect => {
                let scaler = compose.scaler().map_err(|e| Failure {
                    stage: Stage::Program,
                    error: e.to_string(),
                    fix: "correct the scaler's settings".into(),
                })?;
                return match scaler.compose_command().await {
                    Ok(_) => Ok(()),
                    Err(e @ autoscale_docker::Error::ComposeNotFound { .. }) => Err(Failure {
                        stage: Stage::Program,
                        error: e.to_string(),
                        fix: "install the docker-compose package or the docker compose v2 plugin, \
                              or name the Compose program in the scaler's `command`"
                            .into(),
                    }),
                    Err(e) => Err(Failure {
                        stage: Stage::Program,
                        error: format!("cannot detect Docker Compose: {e}"),
                        fix: TIMEOUT_FIX.into(),
                    }),
                };
            }
        },
        // The Swarm scaler talks to the Engine API: it starts no program.
        ScalerSettings::Swarm(_) => None,
        ScalerSettings::Ansible(ansible) => Some(match &ansible.program {
            AnsibleProgram::Path(path) => path.clone(),
            AnsibleProgram::Virtualenv(venv) => venv.join("bin").join("ansible-playbook"),
        }),
    };
    match program {
        Some(program) => find_program(&program, std::env::var_os("PATH").as_deref()),
        None => Ok(()),
    }
}

/// `program` as the system would start it: a path with a separator as it is, a bare name through `path`.
fn find_program(program: &Path, path: Option<&std::ffi::OsStr>) -> Result<(), Failure> {
    let missing = |error: String| Failure {
        stage: Stage::Program,
        error,
        fix: format!(
            "install {} or give its full path in the scaler's settings",
            program.display()
        ),
    };
    if program.components().count() > 1 {
        return if is_executable(program) {
            Ok(())
        } else {
            Err(missing(format!(
                "{} is not an executable file",
                program.display()
            )))
        };
    }
    let found = path
        .map(|p| std::env::split_paths(p).any(|dir| is_executable(&dir.join(program))))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(missing(format!(
            "{} is not found in PATH",
            program.display()
        )))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How to fix a failed status read, from the kind of error at the bottom of its chain.
fn fix_for(error: &autoscale_core::Error) -> &'static str {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return "install the program the message names (the Docker CLI for `docker`), or give its full \
                    path in the scaler's `command`";
        }
        if let Some(docker) = e.downcast_ref::<autoscale_docker::Error>() {
            match docker {
                autoscale_docker::Error::DaemonUnavailable { .. } => {
                    return "start the Docker engine, or point the scaler's `docker_host` (DOCKER_HOST) at a \
                            running one";
                }
                autoscale_docker::Error::NotSwarmManager { .. } => {
                    return "run it against a Swarm manager (`docker swarm init`, or join as a manager)";
                }
                autoscale_docker::Error::ServiceNotFound { .. } => {
                    return "create the Swarm service, or correct the scaler's `service`";
                }
                _ => {}
            }
        }
        cause = e.source();
    }
    match error.kind() {
        autoscale_core::FailureKind::Timeout => TIMEOUT_FIX,
        _ => "check the scaler's settings against what the backend said",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_looked_up_like_the_system_does() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = Some(dir.path().as_os_str());
        let failure = find_program(Path::new("tool"), path).unwrap_err();
        assert_eq!(
            failure.error, "tool is not found in PATH",
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        find_program(Path::new("tool"), path).unwrap();
        find_program(&tool, None).unwrap();
        let failure = find_program(Path::new("ansible-playbook"), None).unwrap_err();
        assert_eq!(
            failure.to_string(),
            "ansible-playbook is not found in PATH; to fix: install ansible-playbook or give its full path \
             in the scaler's settings"
        );
        let failure = find_program(&dir.path().join("absent"), path).unwrap_err();
        assert!(
            failure.error.ends_with("absent is not an executable file"),
            "{failure}"
        );
    }

    #[tokio::test]
    async fn a_swarm_scaler_needs_no_program() {
        let mut swarm = autoscale_docker::SwarmSettings::new("web");
        swarm.command = vec!["/nonexistent/docker".into()];
        programs(&ScalerSettings::Swarm(swarm)).await.unwrap();
    }
}
