//! Per-service engine state on disk: one JSON file per service in `state_dir`, replaced atomically, and the
//! lock that makes one process the owner of a `state_dir`.
//!
//! File names: a service's name is kept as is where it is ASCII letters, digits, `-` and `_`, and every other
//! byte of its UTF-8 form is written `%XX` (upper-case hex), so `web.app` is `web%2Eapp.state.json` and
//! `web_app` is `web_app.state.json`. The mapping is one-to-one and reversible ([`service_name`]), and no
//! file name can start with a dot or leave the directory. Earlier versions wrote every other character as
//! `_`; such a file is still read, and moved to its new name, when exactly one configured service could
//! have written it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use autoscale_core::EngineState;

const SUFFIX: &str = ".state.json";

/// Where the engine states live. A write goes to a temporary file that is fsynced and then renamed over the
/// old one (and the directory fsynced), so a crash leaves either the old or the new state, never half of one.
///
/// Every write of a daemon goes through its one writer thread, so two saves of the same service never race
/// on the temporary file.
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

    /// The file that holds the state of `service`.
    pub fn path(&self, service: &str) -> PathBuf {
        self.dir.join(file_name(service))
    }

    /// The persisted state of `service`, if there is one. `configured` are the names of every service of the
    /// configuration, to tell whether a file of the earlier naming belongs to `service` alone.
    ///
    /// A file that cannot be parsed is an error: starting from scratch would silently drop cooldowns and
    /// stabilization. Fields this version does not know are ignored, with one warning.
    pub fn load(&self, service: &str, configured: &[String]) -> io::Result<Option<EngineState>> {
        let path = self.path(service);
        if let Some(state) = read(&path)? {
            return Ok(Some(state));
        }
        let legacy = self.dir.join(format!("{}{SUFFIX}", legacy_stem(service)));
        if legacy == path {
            return Ok(None);
        }
        let Some(state) = read(&legacy)? else {
            return Ok(None);
        };
        let claimants: Vec<&String> = configured
            .iter()
            .filter(|name| legacy_stem(name) == legacy_stem(service))
            .collect();
        if claimants.len() > 1 {
            tracing::warn!(
                service, file = %legacy.display(), services = ?claimants,
                "a state file of the earlier naming could belong to several services; not using it"
            );
            return Ok(None);
        }
        self.save(service, &state)?;
        fs::remove_file(&legacy)?;
        tracing::info!(
            service, from = %legacy.display(), to = %path.display(),
            "state file moved to its new name"
        );
        Ok(Some(state))
    }

    /// Replace the persisted state of `service` atomically.
    pub fn save(&self, service: &str, state: &EngineState) -> io::Result<()> {
        let path = self.path(service);
        let tmp = self.dir.join(format!(".{}.tmp", file_name(service)));
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        let with_path = |p: &Path| {
            let p = p.to_path_buf();
            move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()))
        };
        {
            let mut file = File::create(&tmp).map_err(with_path(&tmp))?;
            file.write_all(&bytes).map_err(with_path(&tmp))?;
            file.sync_all().map_err(with_path(&tmp))?;
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(with_path(&path)(e));
        }
        // The rename itself is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(with_path(&self.dir))
    }
}

/// Read and parse one state file; `None` when it does not exist.
fn read(path: &Path) -> io::Result<Option<EngineState>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let invalid = |e: serde_json::Error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a valid engine state: {e}", path.display()),
        )
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
    let unknown: Vec<&str> = value
        .as_object()
        .map(|fields| {
            fields
                .keys()
                .map(String::as_str)
                .filter(|k| !EngineState::FIELDS.contains(k))
                .collect()
        })
        .unwrap_or_default();
    let mut state: EngineState = serde_json::from_value(value.clone()).map_err(invalid)?;
    if !unknown.is_empty() || state.version > EngineState::VERSION {
        tracing::warn!(
            file = %path.display(), version = state.version, this_version = EngineState::VERSION,
            ignored = ?unknown,
            "the state file was written by another version; ignoring the fields this one does not know"
        );
    }
    // From here on it is this version's state, and is written as one.
    state.version = EngineState::VERSION;
    Ok(Some(state))
}

/// The file name of `service`'s state (see the module's documentation).
pub fn file_name(service: &str) -> String {
    let mut name = String::with_capacity(service.len() + SUFFIX.len());
    if service.is_empty() {
        // Not a hidden `.state.json`; a lone `%` is no other name's spelling.
        name.push('%');
    }
    for b in service.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(SUFFIX);
    name
}

/// The service whose state `file` holds: the inverse of [`file_name`]. `None` for any other file.
pub fn service_name(file: &str) -> Option<String> {
    let stem = file.strip_suffix(SUFFIX)?.as_bytes();
    if stem == b"%" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(stem.len());
    let mut i = 0;
    while i < stem.len() {
        match stem[i] {
            b'%' => {
                let hex = std::str::from_utf8(stem.get(i + 1..i + 3)?).ok()?;
                if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' => {
                bytes.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    // Only the canonical spelling maps back (`%41` is not another name for `A`).
    (file_name(&name) == file).then_some(name)
}

/// The file stem of earlier versions: every character but ASCII letters, digits, `-` and `_` became `_`.
fn legacy_stem(service: &str) -> String {
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

/// Why a `state_dir` could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("state_dir {} is in use by {}", .dir.display(), .pid.map_or_else(|| "another process".to_owned(), |p| format!("pid {p}")))]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("state_dir {}: cannot lock {}: {source}", .dir.display(), .file.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// An exclusive lock on a `state_dir`, held until it is dropped (or the process ends, however it ends: the
/// kernel releases an flock with the last descriptor). The lock file holds the owner's process id, for the
/// message another process gets.
#[derive(Debug)]
pub struct StateLock {
    // Holding the descriptor is holding the lock.
    _file: File,
}

impl StateLock {
    /// The lock file inside `state_dir`. It stays after the owner exits: removing it could let two processes
    /// lock two different files of the same name.
    pub const FILE: &'static str = "autoscale.lock";

    /// Lock `dir` (created if missing), or fail at once if another process holds it.
    pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
        let path = dir.join(Self::FILE);
        let io_error = |source| LockError::Io {
            dir: dir.to_path_buf(),
            file: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io_error)?;
                writeln!(file, "{}", std::process::id()).map_err(io_error)?;
                Ok(StateLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => Err(LockError::InUse {
                dir: dir.to_path_buf(),
                pid: holder(&mut file),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io_error(e)),
        }
    }
}

/// The pid the holder wrote. It writes it just after locking, so an empty file is read again a few times.
fn holder(file: &mut File) -> Option<u32> {
    for _ in 0..10 {
        let mut text = String::new();
        if file
            .read_to_string(&mut text)
            .is_ok_and(|_| !text.trim().is_empty())
        {
            return text.trim().parse().ok();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        use std::io::Seek;
        let _ = file.rewind();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscale_core::Timestamp;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.load("web", &[]).unwrap(), None);
        let mut state = EngineState::default();
        state.record_scale(Timestamp::from_secs(10), 1, 3);
        store.save("web", &state).unwrap();
        assert_eq!(store.load("web", &[]).unwrap(), Some(state.clone()));
        state.consecutive_failures = 2;
        store.save("web", &state).unwrap();
        assert_eq!(store.load("web", &[]).unwrap(), Some(state));
        assert_eq!(
            names(store.dir()),
            vec!["web.state.json"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("web.state.json"), b"{not json").unwrap();
        let err = store.load("web", &[]).unwrap_err();
        assert!(
            err.to_string().contains("not a valid engine state"),
            "{err}"
        );
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        assert_eq!(
            file_name("../etc/passwd"),
            "%2E%2E%2Fetc%2Fpasswd.state.json"
        );
        assert_eq!(file_name(".hidden"), "%2Ehidden.state.json");
    }

    #[test]
    fn names_that_collided_before_get_files_of_their_own() {
        assert_ne!(file_name("web.app"), file_name("web_app"));
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut dotted = EngineState::default();
        dotted.record_scale(Timestamp::from_secs(10), 1, 3);
        store.save("web.app", &dotted).unwrap();
        store.save("web_app", &EngineState::default()).unwrap();
        let both = ["web.app".to_owned(), "web_app".to_owned()];
        assert_eq!(store.load("web.app", &both).unwrap(), Some(dotted));
        assert_eq!(
            store.load("web_app", &both).unwrap(),
            Some(EngineState::default())
        );
    }

    #[test]
    fn the_mapping_is_reversible() {
        for name in [
            "web",
            "web.app",
            "web_app",
            "a%41",
            "ünï côdé",
            "x/../y",
            "-_-",
            "",
        ] {
            assert_eq!(
                service_name(&file_name(name)).as_deref(),
                Some(name),
                "{name}"
            );
        }
        assert_eq!(
            service_name("a%41.state.json"),
            None,
            "only the canonical spelling"
        );
        assert_eq!(service_name("a%4a.state.json"), None);
        assert_eq!(service_name("history.jsonl"), None);
    }

    proptest::proptest! {
        /// Any name, any Unicode: the file name maps back to it (so no two names share a file), stays in the
        /// directory and is not hidden.
        #[test]
        fn every_name_has_a_file_of_its_own(name in "\\PC*") {
            let file = file_name(&name);
            proptest::prop_assert_eq!(service_name(&file), Some(name));
            proptest::prop_assert!(!file.contains('/') && !file.starts_with('.'));
        }
    }

    #[test]
    fn a_file_of_the_earlier_naming_is_moved_when_it_is_unambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut state = EngineState::default();
        state.record_scale(Timestamp::from_secs(10), 1, 3);
        fs::write(
            dir.path().join("web_app.state.json"),
            serde_json::to_vec(&state).unwrap(),
        )
        .unwrap();
        // `web_app` is configured too: the old file could be either's.
        let both = ["web.app".to_owned(), "web_app".to_owned()];
        assert_eq!(store.load("web.app", &both).unwrap(), None);
        // Alone, `web.app` takes it, under its new name.
        let alone = ["web.app".to_owned()];
        assert_eq!(store.load("web.app", &alone).unwrap(), Some(state.clone()));
        assert_eq!(names(dir.path()), vec!["web%2Eapp.state.json"]);
        assert_eq!(store.load("web.app", &alone).unwrap(), Some(state));
    }

    #[test]
    fn unknown_fields_and_a_newer_version_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(
            dir.path().join("web.state.json"),
            br#"{"version": 7, "last_known_replicas": 4, "surge_budget": 3}"#,
        )
        .unwrap();
        let state = store.load("web", &[]).unwrap().unwrap();
        assert_eq!(state.last_known_replicas, Some(4));
        assert_eq!(state.version, EngineState::VERSION);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "state_dir {} is in use by pid {}",
                dir.path().display(),
                std::process::id()
            )
        );
        drop(first);
        StateLock::acquire(dir.path()).expect("free again once dropped");
    }
}
