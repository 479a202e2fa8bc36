//! The history: an append-only JSON-lines file in `state_dir`, one line per scaling action and per blocked
//! action, rotated by size.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One history line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Unix time in milliseconds, for programs.
    pub at_ms: i64,
    /// The service.
    pub service: String,
    /// The count before.
    pub from: u32,
    /// The count decided (or found, for a change made outside).
    pub to: u32,
    /// The decision's reason (`token: detail`).
    pub reason: String,
    /// `scaled`, `unchanged`, `failed`, `dry_run`, `blocked` or `outside`.
    pub result: String,
    /// The error, for a failed action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The history file plus the last few entries of each service, for `/status`.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    max_bytes: u64,
    keep_files: usize,
    file: Option<File>,
    size: u64,
    recent: BTreeMap<String, VecDeque<Entry>>,
    recent_per_service: usize,
}

impl History {
    /// The file name inside `state_dir`.
    pub const FILE: &'static str = "history.jsonl";

    /// Open (or create) the history in `dir`, rotating at `max_bytes`. An error names the file it is about
    /// (`…/history.jsonl: Is a directory`), not just the directory.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
        let path = dir.join(Self::FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| with_path(&path, e))?;
        let size = file.metadata().map_err(|e| with_path(&path, e))?.len();
        Ok(History {
            path,
            max_bytes: max_bytes.max(1024),
            keep_files: 3,
            file: Some(file),
            size,
            recent: BTreeMap::new(),
            recent_per_service: 20,
        })
    }

    /// Append an entry (and keep it in the recent list). Errors are returned for the caller to log: losing a
    /// history line must never stop the daemon.
    pub fn append(&mut self, entry: Entry) -> io::Result<()> {
        let recent = self.recent.entry(entry.service.clone()).or_default();
        recent.push_back(entry.clone());
        while recent.len() > self.recent_per_service {
            recent.pop_front();
        }
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// The last entries of `service`, oldest first.
    pub fn recent(&self, service: &str) -> Vec<Entry> {
        self.recent
            .get(service)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `history.jsonl` becomes `history.jsonl.1`, `.1` becomes `.2`, and so on; the oldest is dropped.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = fs::remove_file(numbered(self.keep_files));
        for n in (1..self.keep_files).rev() {
            if numbered(n).exists() {
                fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        fs::rename(&self.path, numbered(1))?;
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &str, to: u32) -> Entry {
        Entry {
            time: "2026-01-01T00:00:00Z".into(),
            at_ms: 0,
            service: service.into(),
            from: 1,
            to,
            reason: "scale_up: recommended 2".into(),
            result: "scaled".into(),
            error: None,
        }
    }

    #[test]
    fn appends_json_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::open(dir.path(), 1024).unwrap();
        for i in 0..40 {
            history.append(entry("web", i)).unwrap();
        }
        let current = fs::read_to_string(dir.path().join(History::FILE)).unwrap();
        assert!(current.len() <= 1024);
        for line in current.lines() {
            let parsed: Entry = serde_json::from_str(line).unwrap();
            assert_eq!(parsed.service, "web");
        }
        assert!(dir.path().join("history.jsonl.1").exists());
        assert!(
            !dir.path().join("history.jsonl.4").exists(),
            "only three rotated files are kept"
        );
        let recent = history.recent("web");
        assert_eq!(recent.len(), 20);
        assert_eq!(recent.last().unwrap().to, 39);
    }

    #[test]
    fn an_unusable_history_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(History::FILE)).unwrap();
        let err = History::open(dir.path(), 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", dir.path().join(History::FILE).display())),
            "{err}"
        );
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        History::open(dir.path(), 1 << 20)
            .unwrap()
            .append(entry("a", 2))
            .unwrap();
        History::open(dir.path(), 1 << 20)
            .unwrap()
            .append(entry("a", 3))
            .unwrap();
        let text = fs::read_to_string(dir.path().join(History::FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
