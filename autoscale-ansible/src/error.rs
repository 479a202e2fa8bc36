//! The errors of the Ansible scaler, and how they map onto the core's kinds of failure.

use std::fmt;
use std::time::Duration;

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
/// `command` fields hold the argument vector as run: the playbook, inventory and option values, and the path of
/// the extra-vars file, never the vars themselves (they may hold secrets) nor the extra environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnsibleError {
    /// The scaler's settings are invalid; nothing was run.
    #[error("invalid ansible scaler settings: {0}")]
    InvalidConfig(String),

    /// `ansible-playbook` could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program that was run.
        program: String,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// A local file operation around the run failed (the extra-vars file, the callback plugin, a pipe).
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The run did not finish in time; its whole process group was killed.
    #[error("`{command}` did not finish within {after:?} and was killed; stderr: {stderr_tail:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        after: Duration,
        /// The end of what the run printed on stderr before it was killed.
        stderr_tail: String,
    },

    /// At least one host failed a task.
    #[error("`{command}` failed: {}", Failures(failures))]
    TaskFailed {
        /// The command line.
        command: String,
        /// Each failed host with its task and message.
        failures: Vec<HostFailure>,
    },

    /// At least one host could not be reached (and none failed a task).
    #[error("`{command}`: unreachable: {}", Failures(hosts))]
    Unreachable {
        /// The command line.
        command: String,
        /// Each unreachable host with the task that tried it and the connection's message.
        hosts: Vec<HostFailure>,
    },

    /// `ansible-playbook` exited with an error before it could report on hosts: a syntax error, a missing
    /// playbook or inventory, a bad option, a vault that could not be opened.
    #[error("`{command}` exited with {status}; stderr: {stderr_tail:?}")]
    Exited {
        /// The command line.
        command: String,
        /// The exit status, as the operating system describes it.
        status: String,
        /// The end of what the run printed on stderr.
        stderr_tail: String,
    },

    /// The run's output could not be understood.
    #[error("`{command}` printed no usable report ({reason}); stderr: {stderr_tail:?}")]
    BadOutput {
        /// The command line.
        command: String,
        /// What was wrong with the output.
        reason: String,
        /// The end of what the run printed on stderr.
        stderr_tail: String,
    },

    /// The status playbook ran but did not report a usable replica count.
    #[error("`{command}` reported no usable replica count: {reason}")]
    NoCount {
        /// The command line.
        command: String,
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

impl From<AnsibleError> for autoscale_core::Error {
    fn from(error: AnsibleError) -> Self {
        use autoscale_core::Error;
        let backend = BACKEND;
        match error {
            AnsibleError::Busy { .. } => Error::Busy { backend },
            AnsibleError::Timeout { after, .. } => Error::Timeout {
                backend,
                after,
                source: error.into(),
            },
            // A host that cannot be reached may be back on the next try; a failed task usually will not be.
            AnsibleError::Unreachable { .. } | AnsibleError::Spawn { .. } => Error::Unavailable {
                backend,
                source: error.into(),
            },
            AnsibleError::InvalidConfig(_) => Error::Rejected {
                backend,
                source: error.into(),
            },
            AnsibleError::BadOutput { .. } | AnsibleError::NoCount { .. } => Error::BadResult {
                backend,
                source: error.into(),
            },
            AnsibleError::TaskFailed { .. }
            | AnsibleError::Exited { .. }
            | AnsibleError::Io { .. } => Error::Other {
                backend,
                source: error.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscale_core::FailureKind;

    fn failure(host: &str) -> HostFailure {
        HostFailure {
            host: host.to_owned(),
            task: "Scale".to_owned(),
            message: "non-zero return code".to_owned(),
        }
    }

    #[test]
    fn messages_name_the_host_task_and_message_and_cut_long_lists() {
        let error = AnsibleError::TaskFailed {
            command: "ansible-playbook scale.yml".to_owned(),
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
        let command = String::from("ansible-playbook x.yml");
        let cases = [
            (
                AnsibleError::Busy {
                    service: "web".into(),
                },
                FailureKind::Unavailable,
                true,
            ),
            (
                AnsibleError::Timeout {
                    command: command.clone(),
                    after: Duration::from_secs(1),
                    stderr_tail: String::new(),
                },
                FailureKind::Timeout,
                true,
            ),
            (
                AnsibleError::Unreachable {
                    command: command.clone(),
                    hosts: vec![failure("a")],
                },
                FailureKind::Unavailable,
                true,
            ),
            (
                AnsibleError::TaskFailed {
                    command: command.clone(),
                    failures: vec![failure("a")],
                },
                FailureKind::Other,
                false,
            ),
            (
                AnsibleError::InvalidConfig("bad".into()),
                FailureKind::Rejected,
                false,
            ),
            (
                AnsibleError::NoCount {
                    command,
                    reason: "none".into(),
                },
                FailureKind::BadResult,
                false,
            ),
        ];
        for (error, kind, transient) in cases {
            let text = error.to_string();
            let core = autoscale_core::Error::from(error);
            assert_eq!(core.kind(), kind, "{text}");
            assert_eq!(core.is_transient(), transient, "{text}");
        }
    }
}
