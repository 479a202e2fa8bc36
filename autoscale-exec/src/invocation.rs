//! One command to run, and what it produced.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::capture::{ReadFailure, TailBuffer, read_capped, read_tail};
use crate::kill::GroupGuard;
use crate::{CommandLine, Error};

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

    /// How long the child may run, output included, before it and everything it started are killed.
    /// Default: [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most bytes of stdout accepted; more kills the child and fails with
    /// [`Error::OutputTooLarge`]. Default: [`DEFAULT_MAX_STDOUT`].
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
    /// pipes could not be read. In the last three cases the child and everything it started have been killed.
    ///
    /// Dropping the returned future before it completes kills them too.
    pub async fn run(&self) -> Result<Output, Error> {
        let command = self.command_line();
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the future is dropped, tokio kills the direct child and reaps it in the background; the group
            // guard below takes care of the rest of the tree.
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
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        // Declared after `child`, so dropped before it: the group is signalled while the child is not yet
        // reaped, which keeps its pid (the group id) from being reused by an unrelated process.
        let mut group = GroupGuard::new(child.id());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::Io {
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
            Ok(Err(ReadFailure::TooLarge)) => Error::OutputTooLarge {
                command,
                limit: self.max_stdout,
                stderr_tail: tail.render(),
            },
            Ok(Err(ReadFailure::Io(source))) => Error::Io { command, source },
            Err(_elapsed) => Error::Timeout {
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

    /// `self` if the command exited with status 0, else [`Error::Failed`] with the status and stderr tail.
    pub fn check(self) -> Result<Output, Error> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(Error::Failed {
                command: self.command,
                status: self.status,
                stderr_tail: self.stderr_tail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation::new("sh").arg("-c").arg(script)
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
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
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
            matches!(err, Error::OutputTooLarge { limit: 1000, .. }),
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
            matches!(err, Error::Timeout { after, .. } if after == timeout),
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

    #[tokio::test]
    async fn keeps_only_the_end_of_stderr() {
        let out = sh("i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done")
            .run()
            .await
            .unwrap();
        // The kept bytes, from the first whole line on, after a one-character mark that the start was cut.
        assert!(out.stderr_tail.len() <= DEFAULT_STDERR_TAIL + '…'.len_utf8());
        assert!(out.stderr_tail.starts_with('…'), "{}", out.stderr_tail);
        assert!(out.stderr_tail.ends_with("line1999\n"));
    }

    #[tokio::test]
    async fn a_missing_program_is_not_found() {
        let err = Invocation::new("/nonexistent/ansible-playbook")
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
    }

    /// Processes whose command line contains `marker`, from /proc.
    fn processes_with(marker: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .filter(|cmdline| cmdline.contains(marker))
            .collect()
    }

    /// Run `script` with a short timeout; check that a process with `marker` really started, that the run
    /// timed out with `expected_tail` on stderr, and that no process with `marker` is left.
    async fn times_out_leaving_nothing(script: String, marker: &str, expected_tail: &str) {
        let run = tokio::spawn({
            let inv = sh(&script).timeout(Duration::from_millis(1500));
            async move { inv.run().await }
        });
        let mut seen = false;
        for _ in 0..100 {
            seen = !processes_with(marker).is_empty();
            if seen || run.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match run.await.unwrap() {
            Err(Error::Timeout { stderr_tail, .. }) => {
                assert_eq!(stderr_tail.trim(), expected_tail);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(seen, "the marked process never started");
        // A SIGKILLed process may still be on its way out when kill(2) returns: look again, bounded.
        for _ in 0..100 {
            if processes_with(marker).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("left behind: {:?}", processes_with(marker));
    }

    #[tokio::test]
    async fn a_timeout_kills_foreground_and_background_grandchildren() {
        // The direct child is a shell; it starts two grandchildren, one in the background and one in the
        // foreground, each with a unique marker in its command line (`sh -c 'sleep 600' MARKER`).
        let marker = format!("autoscale-exec-marker-{}", std::process::id());
        let script = format!(
            "echo started >&2; sh -c 'sleep 600' {marker} & sh -c 'sleep 600' {marker}; echo never"
        );
        times_out_leaving_nothing(script, &marker, "started").await;
    }

    #[tokio::test]
    async fn a_timeout_also_kills_groups_that_descendants_started() {
        // `setsid` puts the sleeper in a session and group of its own, as ansible-playbook does with its
        // workers; a signal to the child's group alone would miss it.
        let marker = format!("autoscale-exec-setsid-marker-{}", std::process::id());
        let script = format!("setsid sh -c 'sleep 600' {marker} & sleep 600");
        times_out_leaving_nothing(script, &marker, "").await;
    }
}
