//! The errors of the Ansible scaler, and how they map onto the core's kinds of failure.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use autoscale_core::FailureKind;
use autoscale_exec::CommandLine;

/// The backend name every error of this crate carries through [`autoscale_core::Error`].
pub const BACKEND: &str = "ansible";

/// Why a host failed: the task, and what the module said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    /// The inventory name of the host.
    pub host: String,
    /// The name of the task that failed (or found the host unreachable).
    pub task: String,
    /// The module's message, followed by the tail of its stderr when it printed one.
    pub message: String,
}

impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: task {:?}: {}", self.host, self.task, self.message)
    }
}

/// Several host failures, for messages: the first three in full, then how many more.
struct Failures<'a>(&'a [HostFailure]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().take(3).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        if self.0.len() > 3 {
            write!(f, "; and {} more", self.0.len() - 3)?;
        }
        Ok(())
    }
}

/// A failure of the Ansible scaler.
///
/// Command lines are the argument vector as run: the playbook, inventory and option values, and the path of the
/// extra-vars file, never the vars themselves (they may hold secrets) nor the extra environment. Failures of
/// the run itself carry the runner's [`autoscale_exec::Error`] as their `source`, with the command, the exit
/// status and the end of stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scaler's settings are invalid; nothing was run.
    #[error("invalid ansible scaler settings: {0}")]
    InvalidConfig(String),

    /// `ansible-playbook` could not be started.
    #[error("{source}")]
    Spawn {
        /// The command and what the operating system said.
        source: autoscale_exec::Error,
    },

    /// A local file operation around the run failed (the extra-vars file, the callback plugin, a pipe).
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The run did not finish in time; it, its workers and every process they started were killed.
    #[error("{source}")]
    Timeout {
        /// The timeout.
        after: Duration,
        /// The command and the end of what it printed on stderr before it was killed.
        source: autoscale_exec::Error,
    },

    /// At least one host failed a task.
    #[error("`{command}` failed: {}", Failures(failures))]
    TaskFailed {
        /// The command line.
        command: CommandLine,
        /// Each failed host with its task and message.
        failures: Vec<HostFailure>,
    },

    /// At least one host could not be reached (and none failed a task).
    #[error("`{command}`: unreachable: {}", Failures(hosts))]
    Unreachable {
        /// The command line.
        command: CommandLine,
        /// Each unreachable host with the task that tried it and the connection's message.
        hosts: Vec<HostFailure>,
    },

    /// `ansible-playbook` exited with an error before it could report on hosts: a syntax error, a missing
    /// playbook or inventory, a bad option, a vault that could not be opened.
    #[error("{source}")]
    Exited {
        /// The command, its exit status and the end of its stderr.
        source: autoscale_exec::Error,
    },

    /// The run's output could not be understood.
    #[error("`{command}` printed no usable report ({reason}); stderr: {stderr_tail:?}")]
    BadOutput {
        /// The command line.
        command: CommandLine,
        /// What was wrong with the output.
        reason: String,
        /// The end of what the run printed on stderr.
        stderr_tail: String,
    },

    /// The status playbook ran but did not report a usable replica count.
    #[error("`{}` reported no usable replica count: {reason}", playbook.display())]
    NoCount {
        /// The status playbook.
        playbook: PathBuf,
        /// What was missing or wrong.
        reason: String,
    },

    /// A scale run for this service is already going; this one was not started.
    #[error("a scale run for service {service:?} is already going")]
    Busy {
        /// The service.
        service: String,
    },
}

impl Error {
    /// The kind of failure a caller acts on, as [`autoscale_core::Error::kind`] reports it.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Timeout { .. } => FailureKind::Timeout,
            // A host that cannot be reached may be back on the next try; a failed task usually will not be.
            Error::Busy { .. } | Error::Unreachable { .. } | Error::Spawn { .. } => {
                FailureKind::Unavailable
            }
            Error::InvalidConfig(_) => FailureKind::Rejected,
            Error::BadOutput { .. } | Error::NoCount { .. } => FailureKind::BadResult,
            Error::TaskFailed { .. } | Error::Exited { .. } | Error::Io { .. } => {
                FailureKind::Other
            }
        }
    }

    /// The error for a run that could not give an output.
    pub(crate) fn from_run(error: autoscale_exec::Error) -> Self {
        use autoscale_exec::Error as Run;
        match error {
            Run::Spawn { .. } => Error::Spawn { source: error },
            Run::Timeout { after, .. } => Error::Timeout {
                after,
                source: error,
            },
            Run::OutputTooLarge {
                command,
                limit,
                stderr_tail,
            } => Error::BadOutput {
                command,
                reason: format!("stdout exceeded {limit} bytes"),
                stderr_tail,
            },
            Run::Io { command, source } => Error::Io {
                what: format!("reading the output of `{command}`"),
                source,
            },
            // A failed exit status, the only other way a run can end.
            other => Error::Exited { source: other },
        }
    }
}

impl From<Error> for autoscale_core::Error {
    fn from(error: Error) -> Self {
        use autoscale_core::Error as Core;
        let backend = BACKEND;
        match (error.kind(), &error) {
            (_, Error::Busy { .. }) => Core::Busy { backend },
            (_, Error::Timeout { after, .. }) => Core::Timeout {
                backend,
                after: *after,
                source: error.into(),
            },
            (FailureKind::Unavailable, _) => Core::Unavailable {
                backend,
                source: error.into(),
            },
            (FailureKind::Rejected, _) => Core::Rejected {
                backend,
                source: error.into(),
            },
            (FailureKind::BadResult, _) => Core::BadResult {
                backend,
                source: error.into(),
            },
            _ => Core::Other {
                backend,
                source: error.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn failure(host: &str) -> HostFailure {
        HostFailure {
            host: host.to_owned(),
            task: "Scale".to_owned(),
            message: "non-zero return code".to_owned(),
        }
    }

    #[test]
    fn messages_name_the_host_task_and_message_and_cut_long_lists() {
        let error = Error::TaskFailed {
            command: CommandLine::new(["ansible-playbook", "scale.yml"].map(OsStr::new)),
            failures: ["a", "b", "c", "d", "e"].map(failure).to_vec(),
        };
        assert_eq!(
            error.to_string(),
            "`ansible-playbook scale.yml` failed: a: task \"Scale\": non-zero return code; \
             b: task \"Scale\": non-zero return code; c: task \"Scale\": non-zero return code; and 2 more"
        );
    }

    #[test]
    fn kinds_map_onto_the_core_kinds() {
        let command = CommandLine::new(["ansible-playbook", "x.yml"].map(OsStr::new));
        let cases = [
            (
                Error::Busy {
                    service: "web".into(),
                },
                FailureKind::Unavailable,
                true,
            ),
            (
                Error::Timeout {
                    after: Duration::from_secs(1),
                    source: autoscale_exec::Error::Timeout {
                        command: command.clone(),
                        after: Duration::from_secs(1),
                        stderr_tail: String::new(),
                    },
                },
                FailureKind::Timeout,
                true,
            ),
            (
                Error::Unreachable {
                    command: command.clone(),
                    hosts: vec![failure("a")],
                },
                FailureKind::Unavailable,
                true,
            ),
            (
                Error::TaskFailed {
                    command: command.clone(),
                    failures: vec![failure("a")],
                },
                FailureKind::Other,
                false,
            ),
            (
                Error::InvalidConfig("bad".into()),
                FailureKind::Rejected,
                false,
            ),
            (
                Error::NoCount {
                    playbook: "x.yml".into(),
                    reason: "none".into(),
                },
                FailureKind::BadResult,
                false,
            ),
        ];
        for (error, kind, transient) in cases {
            let text = error.to_string();
            assert_eq!(error.kind(), kind, "{text}");
            let core = autoscale_core::Error::from(error);
            assert_eq!(core.kind(), kind, "{text}");
            assert_eq!(core.is_transient(), transient, "{text}");
        }
    }
}
