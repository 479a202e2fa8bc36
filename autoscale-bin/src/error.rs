//! The command's errors and their exit codes.

use std::io;

use crate::config::ConfigError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line could not be parsed. Its message is clap's, with usage.
    #[error("{}", .0.render().to_string().trim_end())]
    Usage(#[from] clap::Error),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Some other input is bad: an unreadable or malformed trace, an unknown service, a bad option value.
    #[error("{0}")]
    Input(String),
    /// The daemon, or a one-off evaluation, failed at run time (a port in use, an unusable state directory,
    /// a failed round of `once`, an unhealthy daemon).
    #[error("{0}")]
    Runtime(String),
    /// The output could not be written.
    #[error("cannot write {what}: {source}")]
    Output {
        /// What was being written.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

impl CliError {
    /// The process exit code: 2 for any bad input (as clap does for a bad command line), 1 when the output
    /// could not be written.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(e) => u8::try_from(e.exit_code()).unwrap_or(2),
            CliError::Config(_) | CliError::Input(_) => 2,
            CliError::Output { .. } | CliError::Runtime(_) => 1,
        }
    }

    /// Print the error to standard error, as the user sees it.
    pub fn report(&self) {
        match self {
            // clap colours its own messages when standard error is a terminal.
            CliError::Usage(e) => {
                let _ = e.print();
            }
            other => eprintln!("error: {other}"),
        }
    }

    pub(crate) fn output(what: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Output { what, source }
    }
}
