//! Runs one command as an argument vector, in its own process group, with a timeout that kills the group and
//! the groups its descendants started.
//!
//! `ansible-playbook` forks workers, and its local connection and modules start processes of their own; killing
//! only the direct child on a timeout would leave those running. The child is started as the leader of a new
//! process group, so one `kill(-pgid, SIGKILL)` reaches the processes that stayed in it; see [`kill_tree`] for
//! those that did not.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunSpec {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// Set on top of the inherited environment, in order.
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) timeout: Duration,
}

/// What a finished run left.
#[derive(Debug)]
pub(crate) struct RunOutput {
    pub(crate) status: ExitStatus,
    /// Stdout, up to [`STDOUT_LIMIT`] bytes.
    pub(crate) stdout: Vec<u8>,
    /// Whether stdout went past the limit (the rest was read and dropped).
    pub(crate) stdout_truncated: bool,
    /// The last [`STDERR_TAIL`] bytes of stderr, lossily decoded.
    pub(crate) stderr_tail: String,
}

/// Why a run gave no output.
#[derive(Debug)]
pub(crate) enum RunError {
    Spawn(std::io::Error),
    Timeout { stderr_tail: String },
    Wait(std::io::Error),
}

/// The JSON report of a large inventory can be big, but not this big: past it the report is unusable anyway.
pub(crate) const STDOUT_LIMIT: usize = 16 * 1024 * 1024;
/// Enough of stderr for an error message (Ansible's last error is at the end).
pub(crate) const STDERR_TAIL: usize = 4096;

/// Kills the run's processes when dropped while armed: on a timeout, and when the caller drops the run's
/// future midway (a cancelled scale must not leave a playbook running unseen).
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_tree(pgid);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kill the process group led by `leader`, and every process group led by one of its descendants.
///
/// The group alone is not enough for ansible-playbook: each of its worker processes calls `setsid()`, so a
/// worker and the module processes it starts live in a group (and session) of their own, which a signal to
/// the leader's group never reaches. Those groups are found through the process tree in /proc while the
/// leader is still alive, stopped first (so that nothing forks past the second look), then killed.
fn kill_tree(leader: Pid) {
    let mut groups = vec![leader];
    for _ in 0..2 {
        for pgid in descendant_groups(leader) {
            if !groups.contains(&pgid) {
                groups.push(pgid);
            }
        }
        for &pgid in &groups {
            // ESRCH (the group is already gone) is the outcome we want.
            let _ = kill_process_group(pgid, Signal::STOP);
        }
    }
    for &pgid in &groups {
        let _ = kill_process_group(pgid, Signal::KILL);
    }
}

/// The process groups that are led by a descendant of `root` (the group of `root` itself aside). Empty where
/// there is no /proc.
fn descendant_groups(root: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // pid -> (ppid, pgid), for every process we may read.
    let table: Vec<(i32, i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (ppid, pgid) = parse_stat(&stat)?;
            Some((pid, ppid, pgid))
        })
        .collect();
    let mut tree = vec![root.as_raw_nonzero().get()];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            table
                .iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, _)| *pid),
        );
        i += 1;
    }
    // Only groups whose leader is in the tree: a process that joined some other group is not a reason to
    // signal that group's other members.
    table
        .iter()
        .filter(|(pid, _, pgid)| pid == pgid && *pid != tree[0] && tree.contains(pid))
        .filter_map(|(_, _, pgid)| Pid::from_raw(*pgid))
        .collect()
}

/// The parent pid and process group of a /proc/PID/stat line: `pid (comm) state ppid pgrp ...`. The command
/// name may hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid))
}

/// Run `spec` to completion or until its timeout.
pub(crate) async fn run(spec: &RunSpec) -> Result<RunOutput, RunError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().map_err(RunError::Spawn)?;
    // The child leads its own group, so the group id is its pid. It has not been waited for yet, so the pid
    // cannot have been reused.
    let mut guard = GroupGuard {
        pgid: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (tail_tx, mut tail_rx) = tokio::sync::watch::channel(String::new());

    let finished = tokio::time::timeout(spec.timeout, async {
        let (status, stdout, ()) = tokio::join!(
            child.wait(),
            read_capped(stdout, STDOUT_LIMIT),
            read_tail(stderr, STDERR_TAIL, &tail_tx),
        );
        (status, stdout)
    })
    .await;

    match finished {
        Ok((status, (stdout, stdout_truncated))) => {
            guard.disarm();
            let status = status.map_err(RunError::Wait)?;
            Ok(RunOutput {
                status,
                stdout,
                stdout_truncated,
                stderr_tail: tail_rx.borrow_and_update().clone(),
            })
        }
        Err(_elapsed) => {
            guard.kill();
            // Reap the leader now that it is dead, so it does not linger as a zombie.
            let _ = child.wait().await;
            Err(RunError::Timeout {
                stderr_tail: tail_rx.borrow_and_update().clone(),
            })
        }
    }
}

/// Read all of `reader`, keeping the first `limit` bytes. Reading goes on past the limit so that the child never
/// blocks on a full pipe.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut reader) = reader else {
        return (kept, truncated);
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

/// Read all of `reader`, publishing the last `keep` bytes as they come, so that a timeout can still report
/// what was printed before it.
async fn read_tail(
    reader: Option<impl AsyncRead + Unpin>,
    keep: usize,
    tail: &tokio::sync::watch::Sender<String>,
) {
    let Some(mut reader) = reader else { return };
    let mut window: Vec<u8> = Vec::with_capacity(keep * 2);
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                window.extend_from_slice(&buf[..n]);
                if window.len() > keep {
                    window.drain(..window.len() - keep);
                }
                tail.send_replace(String::from_utf8_lossy(&window).trim().to_owned());
            }
        }
    }
}

/// The command line of `spec` for messages: the program and its arguments, space-separated. It holds no
/// secret: values go in files and the environment, never in the arguments.
pub(crate) fn display_command(spec: &RunSpec) -> String {
    std::iter::once(&spec.program)
        .chain(&spec.args)
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str], timeout: Duration) -> RunSpec {
        RunSpec {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("AUTOSCALE_RUNNER_TEST".into(), "from-env".into())],
            timeout,
        }
    }

    #[tokio::test]
    async fn captures_stdout_the_stderr_tail_and_the_status() {
        let out = run(&spec(
            "sh",
            &[
                "-c",
                "echo \"$AUTOSCALE_RUNNER_TEST\"; echo oops >&2; exit 3",
            ],
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
        assert_eq!(out.stdout, b"from-env\n");
        assert!(!out.stdout_truncated);
        assert_eq!(out.stderr_tail, "oops");
        assert_eq!(out.status.code(), Some(3));
    }

    #[tokio::test]
    async fn keeps_only_the_end_of_stderr() {
        let out = run(&spec(
            "sh",
            &[
                "-c",
                "i=0; while [ $i -lt 2000 ]; do echo line$i >&2; i=$((i+1)); done",
            ],
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
        assert!(out.stderr_tail.len() <= STDERR_TAIL);
        assert!(out.stderr_tail.ends_with("line1999"));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let err = run(&spec(
            "/nonexistent/ansible-playbook",
            &[],
            Duration::from_secs(5),
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound));
    }

    /// Processes whose command line contains `marker`, from /proc.
    pub(crate) fn processes_with(marker: &str) -> Vec<String> {
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
            let s = spec("sh", &["-c", &script], Duration::from_millis(1500));
            async move { run(&s).await }
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
            Err(RunError::Timeout { stderr_tail }) => assert_eq!(stderr_tail, expected_tail),
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
    async fn a_timeout_kills_the_whole_process_group() {
        // The direct child is a shell; it starts two grandchildren, one in the background and one in the
        // foreground, each with a unique marker in its command line (`sh -c 'sleep 600' MARKER`).
        let marker = format!("autoscale-runner-marker-{}", std::process::id());
        let script = format!(
            "echo started >&2; sh -c 'sleep 600' {marker} & sh -c 'sleep 600' {marker}; echo never"
        );
        times_out_leaving_nothing(script, &marker, "started").await;
    }

    #[test]
    fn stat_lines_with_odd_command_names() {
        assert_eq!(
            parse_stat("4242 (ansible-playbook) S 1 4242 4242 0 -1 4194560 100"),
            Some((1, 4242))
        );
        assert_eq!(parse_stat("77 (a) b (c)) R 70 71 71 0 -1"), Some((70, 71)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[tokio::test]
    async fn a_timeout_also_kills_groups_that_descendants_started() {
        // `setsid` puts the sleeper in a session and group of its own, as ansible-playbook does with its
        // workers; a signal to the child's group alone would miss it.
        let marker = format!("autoscale-setsid-marker-{}", std::process::id());
        let script = format!("setsid sh -c 'sleep 600' {marker} & sleep 600");
        times_out_leaving_nothing(script, &marker, "").await;
    }

    #[test]
    fn the_command_line_is_the_argument_vector() {
        let s = spec(
            "ansible-playbook",
            &["--check", "--", "scale.yml"],
            Duration::ZERO,
        );
        assert_eq!(display_command(&s), "ansible-playbook --check -- scale.yml");
    }
}
