//! Killing a child and everything it started.
//!
//! The child leads a process group of its own, so one `kill(-pgid, SIGKILL)` reaches every process that stayed
//! in it: a wrapper script's children, a plugin the CLI execs. That is not enough for ansible-playbook: each of
//! its workers calls `setsid()`, so a worker and the module processes it starts live in a group (and session)
//! of their own, which a signal to the child's group never reaches. Those groups are found through the process
//! tree in `/proc` while the child is still unreaped, stopped first (so that nothing forks past the second
//! look), then killed.

/// Kills the child's process group, and the groups its descendants lead, when told to or when dropped while
/// still armed (a cancelled call must not leave a tool running unseen).
///
/// Must be disarmed once the child is reaped: from then on its pid, the group id, may belong to an unrelated
/// process.
pub(crate) struct GroupGuard {
    pid: Option<u32>,
}

impl GroupGuard {
    pub(crate) fn new(pid: Option<u32>) -> Self {
        GroupGuard { pid }
    }

    /// The child was reaped: its group must never be signalled again.
    pub(crate) fn disarm(&mut self) {
        self.pid = None;
    }

    pub(crate) fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill_tree(pid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kill the process group led by `leader`, and every process group led by one of its descendants.
#[cfg(unix)]
fn kill_tree(leader: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // Pid 1 would mean "every process we may signal": never. The child's pid is never 0 or 1 anyway.
    let Some(leader) = i32::try_from(leader)
        .ok()
        .filter(|&p| p > 1)
        .and_then(Pid::from_raw)
    else {
        return;
    };
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

#[cfg(not(unix))]
fn kill_tree(_leader: u32) {
    // No process groups: the direct child is killed through tokio's handle instead.
}

/// The process groups that are led by a descendant of `root` (the group of `root` itself aside). Empty where
/// there is no `/proc`.
#[cfg(unix)]
fn descendant_groups(root: rustix::process::Pid) -> Vec<rustix::process::Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, ppid, pgid), for every process we may read.
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
        .filter_map(|(_, _, pgid)| rustix::process::Pid::from_raw(*pgid))
        .collect()
}

/// The parent pid and process group of a `/proc/PID/stat` line: `pid (comm) state ppid pgrp ...`. The command
/// name may hold spaces and parentheses, so fields are counted from the last `)`.
#[cfg_attr(not(unix), allow(dead_code))]
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names() {
        assert_eq!(
            parse_stat("4242 (ansible-playbook) S 1 4242 4242 0 -1 4194560 100"),
            Some((1, 4242))
        );
        assert_eq!(parse_stat("77 (a) b (c)) R 70 71 71 0 -1"), Some((70, 71)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
