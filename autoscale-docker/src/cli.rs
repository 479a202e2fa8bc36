//! Run a program as an argument vector, with a timeout that kills it and everything it started.
//!
//! This module is deliberately self-contained (std, tokio, thiserror and, on unix, rustix): nothing in it knows
//! about Docker, so it can move to a shared crate for every backend that drives a command-line tool.
//!
//! - No shell is ever involved: the program and its arguments are passed to the OS as they are.
//! - The child runs in its own process group. When the timeout expires, when stdout grows past its cap, or when
//!   the future returned by [`Invocation::run`] is dropped before the child finished, the whole group is
//!   killed with `SIGKILL`. A wrapper script that runs the real tool as its own child leaves nothing behind.
//! - stdout is captured up to a cap; of stderr only the tail is kept, because that is where tools put the
//!   reason they failed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use autoscale_docker::cli::{Invocation, RunError};
//!
//! let out = Invocation::new("sh")
//!     .args(["-c", "echo hello; echo oops >&2; exit 3"])
//!     .timeout(Duration::from_secs(10))
//!     .run()
//!     .await
//!     .unwrap();
//! assert_eq!(out.stdout, b"hello\n");
//! assert_eq!(out.status.code(), Some(3));
//! let err = out.check().unwrap_err();
//! assert!(matches!(err, RunError::Failed { .. }));
//! assert!(err.to_string().contains("oops"));
//! # }
//! ```

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The timeout of an [`Invocation`] unless [`Invocation::timeout`] sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How many bytes of stdout an [`Invocation`] keeps unless [`Invocation::max_stdout`] sets another.
pub const DEFAULT_MAX_STDOUT: usize = 16 * 1024 * 1024;
/// How many trailing bytes of stderr an [`Invocation`] keeps unless [`Invocation::stderr_tail`] sets another.
pub const DEFAULT_STDERR_TAIL: usize = 4096;

/// How long to wait for a killed child to be reaped before leaving it to tokio's orphan reaper.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// One command to run: a program, its arguments, changes to the inherited environment, and limits.
///
/// Build it with the chaining methods, then [`run`](Invocation::run) it (as often as needed: `run` takes
/// `&self`).
///
/// Arguments are shown in error messages and in the OS process list, so never put a secret in one: pass it in
/// a file or in the environment. `Debug` shows the names of the environment variables that are changed, never
/// their values.
#[derive(Clone)]
pub struct Invocation {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
    max_stdout: usize,
    stderr_tail: usize,
}

impl Invocation {
    /// A command running `program` (a path, or a name looked up in `PATH`) with no arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        Invocation {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
            max_stdout: DEFAULT_MAX_STDOUT,
            stderr_tail: DEFAULT_STDERR_TAIL,
        }
    }

    /// A command from a whole argument vector: the first element is the program. `None` if `argv` is empty.
    pub fn from_argv<I, S>(argv: I) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = argv.into_iter();
        let program = argv.next()?;
        Some(Invocation::new(program).args(argv))
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set an environment variable for the child, overriding the inherited value.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Remove an environment variable from what the child inherits.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// Run the child in `dir` instead of the current directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// How long the child may run, output included, before it and its process group are killed.
    /// Default: [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most bytes of stdout accepted; more kills the child and fails with
    /// [`RunError::OutputTooLarge`]. Default: [`DEFAULT_MAX_STDOUT`].
    pub fn max_stdout(mut self, bytes: usize) -> Self {
        self.max_stdout = bytes;
        self
    }

    /// How many trailing bytes of stderr to keep. Default: [`DEFAULT_STDERR_TAIL`].
    pub fn stderr_tail(mut self, bytes: usize) -> Self {
        self.stderr_tail = bytes;
        self
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn arguments(&self) -> impl ExactSizeIterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The environment changes, in order: `(name, Some(value))` sets, `(name, None)` removes.
    ///
    /// Values may be secrets: do not log them.
    pub fn env_changes(&self) -> &[(OsString, Option<OsString>)] {
        &self.env
    }

    /// The configured timeout.
    pub fn timeout_duration(&self) -> Duration {
        self.timeout
    }

    /// The program and arguments, for messages.
    pub fn command_line(&self) -> CommandLine {
        CommandLine::new(std::iter::once(self.program.as_os_str()).chain(self.arguments()))
    }

    /// Run the command to completion or to its timeout.
    ///
    /// Returns the [`Output`] whatever the exit status (use [`Output::check`] to turn a failure into an
    /// error); fails only when the command could not be started, timed out, wrote too much to stdout, or its
    /// pipes could not be read. In the last three cases the child's process group has been killed.
    ///
    /// Dropping the returned future before it completes kills the process group too.
    pub async fn run(&self) -> Result<Output, RunError> {
        let command = self.command_line();
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the future is dropped, tokio kills the direct child and reaps it in the background; the group
            // guard below takes care of the rest of the group.
            .kill_on_drop(true);
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        // A group of its own, so that one signal reaches the child and everything it started (a wrapper
        // script's children, a plugin the CLI execs), and so that a terminal's Ctrl-C aimed at us does not
        // reach it half-way through a scale action.
        #[cfg(unix)]
        cmd.process_group(0);

        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            command: command.clone(),
            source,
        })?;
        // Declared after `child`, so dropped before it: the group is signalled while the child is not yet
        // reaped, which keeps its pid (the group id) from being reused by an unrelated process.
        let mut group = GroupGuard::new(child.id());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(RunError::Io {
                command,
                source: io::Error::other("the child's pipes were not set up"),
            });
        };

        let mut out = Vec::new();
        let mut tail = TailBuffer::new(self.stderr_tail);
        let finished = tokio::time::timeout(self.timeout, async {
            // Read both pipes to the end first and only then reap the child: until it is reaped its pid stays
            // reserved, so killing the group on timeout can never hit a recycled process group.
            tokio::try_join!(
                read_capped(stdout, &mut out, self.max_stdout),
                read_tail(stderr, &mut tail),
            )?;
            child.wait().await.map_err(ReadFailure::Io)
        })
        .await;

        let failure = match finished {
            Ok(Ok(status)) => {
                group.disarm();
                return Ok(Output {
                    command,
                    status,
                    stdout: out,
                    stderr_tail: tail.render(),
                    elapsed: started.elapsed(),
                });
            }
            Ok(Err(ReadFailure::TooLarge)) => RunError::OutputTooLarge {
                command,
                limit: self.max_stdout,
            },
            Ok(Err(ReadFailure::Io(source))) => RunError::Io { command, source },
            Err(_elapsed) => RunError::Timeout {
                command,
                after: self.timeout,
                stderr_tail: tail.render(),
            },
        };
        group.kill();
        #[cfg(not(unix))]
        let _ = child.start_kill();
        // SIGKILL cannot be caught; a child stuck in the kernel is left to tokio's orphan reaper.
        let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
        Err(failure)
    }
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(key, value)| match value {
                Some(_) => format!("{}=…", key.to_string_lossy()),
                None => format!("-{}", key.to_string_lossy()),
            })
            .collect();
        f.debug_struct("Invocation")
            .field("command", &self.command_line())
            .field("env", &env)
            .field("current_dir", &self.current_dir)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a finished command produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Output {
    /// The command that ran.
    pub command: CommandLine,
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// The end of what it wrote to stderr (see [`Invocation::stderr_tail`]), lossily decoded.
    pub stderr_tail: String,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// `self` if the command exited with status 0, else [`RunError::Failed`] with the status and stderr tail.
    pub fn check(self) -> Result<Output, RunError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(RunError::Failed {
                command: self.command,
                status: self.status,
                stderr_tail: self.stderr_tail,
            })
        }
    }
}

/// Why running a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program could not be started (not found, not executable).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: CommandLine,
        /// The OS error.
        source: io::Error,
    },
    /// The command did not finish in time; it and its process group were killed.
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
    /// The command exited with a non-zero status (see [`Output::check`]).
    #[error("`{command}` failed ({status}){}", StderrNote(stderr_tail))]
    Failed {
        /// The command.
        command: CommandLine,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The command wrote more than the cap to stdout; it and its process group were killed.
    #[error("`{command}` wrote more than {limit} bytes to stdout and was killed")]
    OutputTooLarge {
        /// The command.
        command: CommandLine,
        /// The cap.
        limit: usize,
    },
    /// Reading the command's output or waiting for it failed; it and its process group were killed.
    #[error("reading the output of `{command}` failed: {source}")]
    Io {
        /// The command.
        command: CommandLine,
        /// The OS error.
        source: io::Error,
    },
}

impl RunError {
    /// The command this error is about.
    pub fn command(&self) -> &CommandLine {
        match self {
            RunError::Spawn { command, .. }
            | RunError::Timeout { command, .. }
            | RunError::Failed { command, .. }
            | RunError::OutputTooLarge { command, .. }
            | RunError::Io { command, .. } => command,
        }
    }

    /// The end of the command's stderr, when it ran far enough to have one.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            RunError::Timeout { stderr_tail, .. } | RunError::Failed { stderr_tail, .. } => {
                Some(stderr_tail)
            }
            _ => None,
        }
    }

    /// The exit status, for [`RunError::Failed`].
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            RunError::Failed { status, .. } => Some(*status),
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

/// A command line for messages: the program and its arguments, quoted the way a POSIX shell would need them,
/// so it can be copied into a terminal to reproduce a failure.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CommandLine(String);

impl CommandLine {
    /// A command line from an argument vector.
    pub fn new<'a>(argv: impl IntoIterator<Item = &'a OsStr>) -> Self {
        let words: Vec<String> = argv
            .into_iter()
            .map(|arg| quote(&arg.to_string_lossy()))
            .collect();
        CommandLine(words.join(" "))
    }

    /// The rendered command line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

enum ReadFailure {
    TooLarge,
    Io(io::Error),
}

async fn read_capped(
    mut pipe: impl AsyncRead + Unpin,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ReadFailure> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await.map_err(ReadFailure::Io)?;
        if n == 0 {
            return Ok(());
        }
        if out.len() + n > limit {
            return Err(ReadFailure::TooLarge);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

async fn read_tail(
    mut pipe: impl AsyncRead + Unpin,
    tail: &mut TailBuffer,
) -> Result<(), ReadFailure> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await.map_err(ReadFailure::Io)?;
        if n == 0 {
            return Ok(());
        }
        tail.push(&chunk[..n]);
    }
}

/// The last `cap` bytes written to a stream.
#[derive(Debug)]
struct TailBuffer {
    bytes: VecDeque<u8>,
    cap: usize,
    dropped: bool,
}

impl TailBuffer {
    fn new(cap: usize) -> Self {
        TailBuffer {
            bytes: VecDeque::new(),
            cap,
            dropped: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.cap {
            self.dropped = true;
            self.bytes.clear();
            &data[data.len() - self.cap..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.dropped = true;
            self.bytes.drain(..overflow);
        }
        self.bytes.extend(data);
    }

    /// The kept bytes as text; when the start was cut off, from the first whole line on.
    fn render(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if self.dropped {
            if let Some(newline) = text.find('\n').filter(|&i| i + 1 < text.len()) {
                text.drain(..=newline);
            }
            text.insert(0, '…');
        }
        text
    }
}

/// Kills the child's process group when told to, or when dropped while still armed.
struct GroupGuard {
    pid: Option<u32>,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        GroupGuard { pid }
    }

    /// The child was reaped: its pid may be reused from now on, so the group must never be signalled again.
    fn disarm(&mut self) {
        self.pid = None;
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // Pid 1 would mean "every process we may signal": never. The child's pid is never 0 or 1 anyway.
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .and_then(Pid::from_raw)
    else {
        return;
    };
    // ESRCH (the group is already gone) is the expected outcome when everything exited on its own.
    let _ = kill_process_group(pid, Signal::KILL);
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {
    // No process groups: the direct child is killed through tokio's handle instead.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation::new("sh").arg("-c").arg(script)
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_need() {
        let inv = Invocation::new("docker").args([
            "ps",
            "--filter",
            "label=a.b=c",
            "--format",
            "{{json .}}",
            "it's",
            "",
        ]);
        assert_eq!(
            inv.command_line().to_string(),
            r#"docker ps --filter label=a.b=c --format '{{json .}}' 'it'\''s' ''"#
        );
    }

    #[test]
    fn debug_hides_environment_values() {
        let inv = Invocation::new("x")
            .env("TOKEN", "s3cret")
            .env_remove("DOCKER_HOST");
        let debug = format!("{inv:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(
            debug.contains("TOKEN=…") && debug.contains("-DOCKER_HOST"),
            "{debug}"
        );
    }

    #[test]
    fn from_argv_needs_a_program() {
        assert!(Invocation::from_argv(Vec::<String>::new()).is_none());
        let inv = Invocation::from_argv(["docker", "compose"]).unwrap();
        assert_eq!(inv.command_line().as_str(), "docker compose");
    }

    #[test]
    fn tail_buffer_keeps_the_end_from_a_whole_line() {
        let mut tail = TailBuffer::new(16);
        tail.push(b"first line\nsecond\n");
        tail.push(b"third\n");
        assert_eq!(tail.render(), "…second\nthird\n");
        let mut short = TailBuffer::new(100);
        short.push(b"all of it\n");
        assert_eq!(short.render(), "all of it\n");
        let mut one_long_line = TailBuffer::new(4);
        one_long_line.push(b"abcdefgh");
        assert_eq!(one_long_line.render(), "…efgh");
    }

    #[test]
    fn stderr_notes_keep_the_last_lines_on_one_line() {
        let text = (1..=9).map(|i| format!("line {i}\n")).collect::<String>();
        assert_eq!(
            StderrNote(&text).to_string(),
            "; stderr: … | line 4 | line 5 | line 6 | line 7 | line 8 | line 9"
        );
        assert_eq!(StderrNote(" \n").to_string(), "; stderr was empty");
    }

    #[tokio::test]
    async fn output_status_and_streams_are_captured() {
        let out = sh("printf out; printf 'err\\n' >&2; exit 7")
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"out");
        assert_eq!(out.stderr_tail, "err\n");
        assert_eq!(out.status.code(), Some(7));
        let err = out.check().unwrap_err();
        assert_eq!(err.status().and_then(|s| s.code()), Some(7));
        assert_eq!(err.stderr_tail(), Some("err\n"));
        let message = err.to_string();
        assert!(message.contains("sh -c"), "{message}");
        assert!(message.contains("exit status: 7"), "{message}");
        assert!(message.ends_with("stderr: err"), "{message}");
    }

    #[tokio::test]
    async fn environment_changes_reach_the_child() {
        let out = sh("echo \"$A:${HOME:-unset}\"")
            .env("A", "1")
            .env_remove("HOME")
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"1:unset\n");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let err = Invocation::new("/nonexistent/docker")
            .arg("ps")
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err:?}");
        assert!(
            err.to_string().contains("`/nonexistent/docker ps`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn too_much_stdout_kills_the_child() {
        let err = sh("while true; do echo yes; done")
            .max_stdout(1000)
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(err, RunError::OutputTooLarge { limit: 1000, .. }),
            "{err:?}"
        );
    }

    /// Whether `pid` is gone (or a zombie: dead, waiting for a parent that is not us to reap it).
    fn is_dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state is the first field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    async fn wait_until_dead(pid: u32) -> bool {
        for _ in 0..100 {
            if is_dead(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The pids a test script wrote to `path`, once it has written them.
    async fn pids_written_to(path: &std::path::Path) -> Vec<u32> {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text
                    .split_whitespace()
                    .map(|p| p.parse().unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the script never wrote its pids to {}", path.display());
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The script starts a grandchild and waits on it, as a wrapper around the real tool would.
        let script = format!(
            "sleep 60 & echo $$ $! > {}; echo started >&2; wait",
            pids.display()
        );
        let timeout = Duration::from_secs(2);
        let err = sh(&script).timeout(timeout).run().await.unwrap_err();
        assert!(
            matches!(err, RunError::Timeout { after, .. } if after == timeout),
            "{err:?}"
        );
        assert!(err.to_string().contains("stderr: started"), "{err}");
        for pid in pids_written_to(&pids).await {
            assert!(
                wait_until_dead(pid).await,
                "process {pid} outlived the timeout"
            );
        }
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 60 & echo $$ $! > {}; wait", pids.display());
        let inv = sh(&script).timeout(Duration::from_secs(60));
        // Boxed, so that dropping it really drops the future (a stack-pinned one lives to the end of scope).
        let mut run = Box::pin(inv.run());
        let written = tokio::select! {
            result = &mut run => panic!("the script finished: {result:?}"),
            written = pids_written_to(&pids) => written,
        };
        drop(run);
        for pid in written {
            assert!(
                wait_until_dead(pid).await,
                "process {pid} outlived the drop"
            );
        }
    }
}
