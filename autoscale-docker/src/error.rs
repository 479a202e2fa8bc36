//! The errors of the Docker scalers, and how they map onto [`autoscale_core::Error`].

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::FailureKind;
use autoscale_exec::{CommandLine, Error as RunError};

/// The cause of a failure: a command that ran ([`autoscale_exec::Error`]) or a Docker Engine API request
/// ([`ApiError`]). Shared, so a failed snapshot reaches every scaler that waited for it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// A Docker Engine API request that failed: the request, the endpoint (never with credentials), and what
/// came back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{request}` at {endpoint} failed: {}{reason}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
#[non_exhaustive]
pub struct ApiError {
    /// The request, such as `GET /services`.
    pub request: String,
    /// The daemon's address.
    pub endpoint: String,
    /// The HTTP status, when the daemon answered.
    pub status: Option<u16>,
    /// What the daemon said, or why there was no answer.
    pub reason: String,
    /// The kind of failure.
    pub kind: FailureKind,
}

/// The backend name in [`autoscale_core::Error`]s converted with `From`; the Compose and Swarm scalers name
/// themselves instead ([`COMPOSE_BACKEND`](crate::COMPOSE_BACKEND), [`SWARM_BACKEND`](crate::SWARM_BACKEND)).
pub const BACKEND: &str = "docker";

/// What went wrong driving the Docker CLI.
///
/// Every variant that ran a command carries it (as an [`autoscale_exec::Error`] or a [`CommandLine`]), so
/// messages show the
/// command line, the exit status and the tail of stderr. None carries a secret: environment values are never
/// shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A project, service, profile or context name breaks Docker's naming rules. Nothing was run.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name is for, such as `compose project`.
        what: &'static str,
        /// The name as configured.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The configuration cannot work (an empty command, conflicting settings). Nothing was run.
    #[error("invalid Docker scaler configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The Docker daemon could not be reached (not running, wrong `DOCKER_HOST`, TLS failure).
    #[error("the Docker daemon is not reachable: {source}")]
    DaemonUnavailable {
        /// The command and what it printed, or the API request and why it failed.
        source: Cause,
    },
    /// A command or an API request did not finish within its timeout; a command and its children were killed.
    #[error("{source}")]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The command, the timeout and what it printed, or the API request.
        source: Cause,
    },
    /// A Docker Engine API request failed in a way no other variant covers: the daemon refused it, or
    /// answered something that cannot be read.
    #[error("{source}")]
    Api {
        /// The request, the endpoint and the answer.
        source: ApiError,
    },
    /// A command could not be started or exited with a failure not covered by another variant.
    #[error("{source}")]
    CommandFailed {
        /// The command, its exit status and the tail of its stderr.
        source: RunError,
    },
    /// Neither `docker compose` (v2) nor `docker-compose` (v1) works.
    #[error("no Docker Compose found: {v2}; and {v1}")]
    ComposeNotFound {
        /// Why `docker compose version` failed.
        v2: Box<RunError>,
        /// Why `docker-compose version` failed.
        v1: Box<RunError>,
    },
    /// The Swarm service does not exist.
    #[error("no Swarm service {service:?}: {source}")]
    ServiceNotFound {
        /// The service as configured.
        service: String,
        /// Where it was looked for.
        source: Cause,
    },
    /// The engine is not a Swarm manager, so it cannot list or scale services.
    #[error("the Docker engine is not a Swarm manager: {source}")]
    NotSwarmManager {
        /// The command and what it printed, or the API request.
        source: Cause,
    },
    /// The Swarm service is not a replicated service (global services run one task per node and cannot be
    /// scaled; jobs run to completion).
    #[error(
        "Swarm service {service:?} runs in {mode} mode: only replicated services can be scaled \
         (a global service runs one task per node; scale it by adding nodes or use mode replicated)"
    )]
    UnsupportedMode {
        /// The service.
        service: String,
        /// Its mode: `global`, `replicated-job`, `global-job` or what the engine reported.
        mode: String,
    },
    /// A command succeeded but printed something that cannot be understood.
    #[error("unexpected output from `{command}`: {reason}; the output began with {excerpt:?}")]
    UnexpectedOutput {
        /// The command.
        command: CommandLine,
        /// What was wrong with the output.
        reason: String,
        /// The start of the output.
        excerpt: String,
    },
    /// A scale action for this service is still running; the new one was not started.
    #[error("a scale action for {target} is already running")]
    Busy {
        /// The service.
        target: String,
    },
}

impl Error {
    /// The kind of failure a caller acts on, as [`autoscale_core::Error::kind`] reports it.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidConfig { .. }
            | Error::ServiceNotFound { .. }
            | Error::NotSwarmManager { .. }
            | Error::UnsupportedMode { .. } => FailureKind::Rejected,
            Error::DaemonUnavailable { .. } | Error::Busy { .. } => FailureKind::Unavailable,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::Api { source } => source.kind,
            Error::UnexpectedOutput { .. } => FailureKind::BadResult,
            Error::CommandFailed { .. } | Error::ComposeNotFound { .. } => FailureKind::Other,
        }
    }

    /// The core error for this failure, attributed to `backend`: what `From` does with [`BACKEND`], and what
    /// the scalers do with their own names.
    pub(crate) fn attribute(self, backend: &'static str) -> autoscale_core::Error {
        use autoscale_core::Error as Core;
        if let Error::Busy { .. } = self {
            return Core::Busy { backend };
        }
        if let Error::Timeout { after, .. } = &self {
            return Core::Timeout {
                backend,
                after: *after,
                source: Box::new(self),
            };
        }
        let kind = self.kind();
        let source = Box::new(self);
        match kind {
            FailureKind::Rejected => Core::Rejected { backend, source },
            FailureKind::Unavailable => Core::Unavailable { backend, source },
            FailureKind::BadResult => Core::BadResult { backend, source },
            _ => Core::Other { backend, source },
        }
    }

    /// Classify a failed Docker CLI run by what it printed.
    pub(crate) fn from_run(source: RunError) -> Self {
        match &source {
            RunError::Timeout { after, .. } => Error::Timeout {
                after: *after,
                source: Arc::new(source),
            },
            RunError::Failed { stderr_tail, .. } if daemon_unreachable(stderr_tail) => {
                Error::DaemonUnavailable {
                    source: Arc::new(source),
                }
            }
            RunError::Failed { stderr_tail, .. } if not_a_swarm_manager(stderr_tail) => {
                Error::NotSwarmManager {
                    source: Arc::new(source),
                }
            }
            _ => Error::CommandFailed { source },
        }
    }
}

impl Error {
    /// The same failure, for another caller of a shared request.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::DaemonUnavailable { source } => Error::DaemonUnavailable {
                source: Arc::clone(source),
            },
            Error::Timeout { after, source } => Error::Timeout {
                after: *after,
                source: Arc::clone(source),
            },
            Error::Api { source } => Error::Api {
                source: source.clone(),
            },
            Error::NotSwarmManager { source } => Error::NotSwarmManager {
                source: Arc::clone(source),
            },
            Error::ServiceNotFound { service, source } => Error::ServiceNotFound {
                service: service.clone(),
                source: Arc::clone(source),
            },
            Error::InvalidConfig { reason } => Error::InvalidConfig {
                reason: reason.clone(),
            },
            other => Error::Api {
                source: ApiError {
                    request: "a shared request".to_owned(),
                    endpoint: "the Docker daemon".to_owned(),
                    status: None,
                    reason: other.to_string(),
                    kind: other.kind(),
                },
            },
        }
    }
}

impl From<Error> for autoscale_core::Error {
    fn from(error: Error) -> Self {
        error.attribute(BACKEND)
    }
}

/// What the docker CLI (Go) and docker-compose v1 (Python) print when they cannot talk to the daemon.
fn daemon_unreachable(stderr: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "Cannot connect to the Docker daemon",
        "Is the docker daemon running",
        "error during connect",
        "Error while fetching server API version",
        "Couldn't connect to Docker daemon",
        "connection refused",
        "tls: ",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}

fn not_a_swarm_manager(stderr: &str) -> bool {
    stderr.contains("not a swarm manager")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn failed(stderr: &str) -> RunError {
        RunError::Failed {
            command: CommandLine::new(["docker".as_ref(), "ps".as_ref()]),
            status: std::process::ExitStatus::from_raw(1 << 8),
            stderr_tail: stderr.to_owned(),
        }
    }

    #[test]
    fn failures_are_classified_by_what_docker_printed() {
        let cases = [
            (
                "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?\n",
                FailureKind::Unavailable,
            ),
            (
                "docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.')\n",
                FailureKind::Unavailable,
            ),
            (
                "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\"\n",
                FailureKind::Rejected,
            ),
            ("Error: something else\n", FailureKind::Other),
        ];
        for (stderr, kind) in cases {
            let error = Error::from_run(failed(stderr));
            assert_eq!(error.kind(), kind, "{stderr}");
            let core: autoscale_core::Error = error.into();
            assert_eq!(core.kind(), kind, "{stderr}");
        }
    }

    #[test]
    fn messages_carry_the_command_the_status_and_stderr() {
        let err = Error::from_run(failed(
            "Cannot connect to the Docker daemon at unix:///x.sock.\n",
        ))
        .attribute("docker swarm");
        assert_eq!(
            err.to_string(),
            "docker swarm is unavailable: the Docker daemon is not reachable: `docker ps` failed \
             (exit status: 1); stderr: Cannot connect to the Docker daemon at unix:///x.sock."
        );
    }

    #[test]
    fn a_timeout_keeps_its_duration() {
        let err = Error::from_run(RunError::Timeout {
            command: CommandLine::new(["docker".as_ref()]),
            after: std::time::Duration::from_secs(3),
            stderr_tail: String::new(),
        })
        .attribute("docker compose");
        assert!(matches!(
            err,
            autoscale_core::Error::Timeout { after, .. } if after.as_secs() == 3
        ));
        assert!(err.is_transient());
    }
}
