//! Why running a command failed.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use crate::CommandLine;

/// Why running a command failed.
///
/// Every variant names the command; those that ran it far enough also carry the end of its stderr, where tools
/// put the reason they failed. None carries an environment value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be started (not found, not executable).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: CommandLine,
        /// The OS error.
        source: io::Error,
    },
    /// The command did not finish in time; it and every process it started were killed.
    #[error(
        "`{command}` did not finish within {after:?} and was killed{}",
        StderrNote(stderr_tail)
    )]
    Timeout {
        /// The command.
        command: CommandLine,
        /// The timeout that expired.
        after: Duration,
        /// What it had written to stderr by then.
        stderr_tail: String,
    },
    /// The command exited with a non-zero status (see [`Output::check`](crate::Output::check)).
    #[error("`{command}` failed ({status}){}", StderrNote(stderr_tail))]
    Failed {
        /// The command.
        command: CommandLine,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The command wrote more than the cap to stdout; it and every process it started were killed.
    #[error(
        "`{command}` wrote more than {limit} bytes to stdout and was killed{}",
        StderrNote(stderr_tail)
    )]
    OutputTooLarge {
        /// The command.
        command: CommandLine,
        /// The cap.
        limit: usize,
        /// What it had written to stderr by then.
        stderr_tail: String,
    },
    /// Reading the command's output or waiting for it failed; it and every process it started were killed.
    #[error("reading the output of `{command}` failed: {source}")]
    Io {
        /// The command.
        command: CommandLine,
        /// The OS error.
        source: io::Error,
    },
}

impl Error {
    /// The command this error is about.
    pub fn command(&self) -> &CommandLine {
        match self {
            Error::Spawn { command, .. }
            | Error::Timeout { command, .. }
            | Error::Failed { command, .. }
            | Error::OutputTooLarge { command, .. }
            | Error::Io { command, .. } => command,
        }
    }

    /// The end of the command's stderr, when it ran far enough to have one.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            Error::Timeout { stderr_tail, .. }
            | Error::Failed { stderr_tail, .. }
            | Error::OutputTooLarge { stderr_tail, .. } => Some(stderr_tail),
            Error::Spawn { .. } | Error::Io { .. } => None,
        }
    }

    /// The exit status, for [`Error::Failed`].
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            Error::Failed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The timeout that expired, for [`Error::Timeout`].
    pub fn timed_out_after(&self) -> Option<Duration> {
        match self {
            Error::Timeout { after, .. } => Some(*after),
            _ => None,
        }
    }
}

/// Renders a stderr tail into an error message: its last few non-empty lines on one line, so a log line stays
/// one line.
struct StderrNote<'a>(&'a str);

impl fmt::Display for StderrNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LINES: usize = 6;
        let lines: Vec<&str> = self
            .0
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return f.write_str("; stderr was empty");
        }
        let shown = &lines[lines.len().saturating_sub(LINES)..];
        f.write_str("; stderr: ")?;
        if shown.len() < lines.len() {
            f.write_str("… | ")?;
        }
        f.write_str(&shown.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_notes_keep_the_last_lines_on_one_line() {
        let text = (1..=9).map(|i| format!("line {i}\n")).collect::<String>();
        assert_eq!(
            StderrNote(&text).to_string(),
            "; stderr: … | line 4 | line 5 | line 6 | line 7 | line 8 | line 9"
        );
        assert_eq!(StderrNote(" \n").to_string(), "; stderr was empty");
    }
}
