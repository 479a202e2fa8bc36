//! Per-service engine state on disk: one JSON file per service in `state_dir`, replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use autoscale_core::EngineState;

/// Where the engine states live. A write goes to a temporary file that is fsynced and then renamed over the
/// old one (and the directory fsynced), so a crash leaves either the old or the new state, never half of one.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{}.state.json", file_stem(service)))
    }

    /// The persisted state of `service`, if there is one. A file that cannot be parsed is an error: starting
    /// from scratch would silently drop cooldowns and stabilization.
    pub fn load(&self, service: &str) -> io::Result<Option<EngineState>> {
        let path = self.path(service);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a valid engine state: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// Replace the persisted state of `service` atomically.
    pub fn save(&self, service: &str, state: &EngineState) -> io::Result<()> {
        let path = self.path(service);
        let tmp = self
            .dir
            .join(format!(".{}.state.json.tmp", file_stem(service)));
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        // The rename itself is durable only once the directory entry is.
        File::open(&self.dir)?.sync_all()
    }
}

/// A file-name-safe form of a service name (names are validated, but a file name must never escape the dir).
fn file_stem(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscale_core::Timestamp;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.load("web").unwrap(), None);
        let mut state = EngineState::default();
        state.record_scale(Timestamp::from_secs(10), 1, 3);
        store.save("web", &state).unwrap();
        assert_eq!(store.load("web").unwrap(), Some(state.clone()));
        state.consecutive_failures = 2;
        store.save("web", &state).unwrap();
        assert_eq!(store.load("web").unwrap(), Some(state));
        let names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec!["web.state.json"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("web.state.json"), b"{not json").unwrap();
        let err = store.load("web").unwrap_err();
        assert!(
            err.to_string().contains("not a valid engine state"),
            "{err}"
        );
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        assert_eq!(file_stem("../etc/passwd"), "___etc_passwd");
    }
}
