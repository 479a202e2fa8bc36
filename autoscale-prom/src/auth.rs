//! Credentials read from files, re-read when the file changes (Kubernetes and Docker rotate them in place).

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

use crate::config::{Auth, Password, Secret};
use crate::error::Error;

/// What identifies one version of a file without reading it. Rotation by rename (a new inode) or by
/// rewrite (a new mtime or length) both change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

/// A secret kept in a file: read on first use, then again whenever the file's stamp changes. One `stat` per
/// request is the whole cost of noticing a rotation.
pub(crate) struct SecretFile {
    what: &'static str,
    path: PathBuf,
    cached: Mutex<Option<(Stamp, Secret)>>,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("what", &self.what)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretFile {
    pub(crate) fn new(what: &'static str, path: PathBuf) -> Self {
        SecretFile {
            what,
            path,
            cached: Mutex::new(None),
        }
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::File {
            what: self.what,
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// The current secret, trimmed of surrounding whitespace (as Prometheus does).
    pub(crate) fn current(&self) -> Result<Secret, Error> {
        let meta = std::fs::metadata(&self.path).map_err(|e| self.error(e.to_string()))?;
        let stamp = Stamp::of(&meta);
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, secret)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(secret.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.error(e.to_string()))?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(self.error("the file is empty"));
        }
        let secret = Secret(secret.to_owned());
        *cached = Some((stamp, secret.clone()));
        Ok(secret)
    }
}

/// The client's credentials, ready to produce an `Authorization` header per request.
#[derive(Debug)]
pub(crate) enum Credentials {
    None,
    Bearer(SecretFile),
    Basic {
        username: String,
        password: PasswordSource,
    },
}

#[derive(Debug)]
pub(crate) enum PasswordSource {
    File(SecretFile),
    Inline(Secret),
}

impl Credentials {
    pub(crate) fn new(auth: &Auth) -> Self {
        match auth {
            Auth::None => Credentials::None,
            Auth::Bearer(path) => {
                Credentials::Bearer(SecretFile::new("bearer token", path.clone()))
            }
            Auth::Basic { username, password } => Credentials::Basic {
                username: username.clone(),
                password: match password {
                    Password::File(path) => {
                        PasswordSource::File(SecretFile::new("basic auth password", path.clone()))
                    }
                    Password::Inline(secret) => PasswordSource::Inline(secret.clone()),
                },
            },
        }
    }

    /// The `Authorization` header for the next request, marked sensitive so that no HTTP-level log shows it.
    pub(crate) fn header(&self) -> Result<Option<HeaderValue>, Error> {
        let value = match self {
            Credentials::None => return Ok(None),
            Credentials::Bearer(file) => {
                let token = file.current()?;
                HeaderValue::from_str(&format!("Bearer {}", token.0))
                    .map_err(|_| file.error("the token has characters a header cannot hold"))?
            }
            Credentials::Basic { username, password } => {
                let password = match password {
                    PasswordSource::File(file) => file.current()?,
                    PasswordSource::Inline(secret) => secret.clone(),
                };
                let encoded = base64(format!("{username}:{}", password.0).as_bytes());
                HeaderValue::from_str(&format!("Basic {encoded}"))
                    .expect("base64 is a valid header value")
            }
        };
        let mut value = value;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// The secrets in use, to scrub from any text echoed from the server.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let cached = |file: &SecretFile| {
            file.cached
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .map(|(_, s)| s.0.clone())
        };
        match self {
            Credentials::None => vec![],
            Credentials::Bearer(file) => cached(file).into_iter().collect(),
            Credentials::Basic { password, .. } => match password {
                PasswordSource::File(file) => cached(file).into_iter().collect(),
                PasswordSource::Inline(secret) => vec![secret.0.clone()],
            },
        }
    }

    /// Read every file once, so that a missing or empty file fails at start-up rather than at the first
    /// query.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.header().map(drop)
    }
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header: a dozen lines instead of a dependency.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn a_rotated_token_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let creds = Credentials::new(&Auth::Bearer(path.clone()));
        assert_eq!(creds.header().unwrap().unwrap(), "Bearer first");
        // Rotation by rename, as Kubernetes does it: a new inode even if the size and mtime match.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "secnd\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(creds.header().unwrap().unwrap(), "Bearer secnd");
        assert_eq!(creds.secrets(), vec!["secnd".to_owned()]);

        std::fs::write(&path, "  \n").unwrap();
        let err = creds.header().unwrap_err().to_string();
        assert!(
            err.contains("bearer token file") && err.contains("empty"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(creds.check().is_err());
    }

    #[test]
    fn basic_auth_headers_are_sensitive_and_debug_shows_no_secret() {
        let creds = Credentials::new(&Auth::Basic {
            username: "Aladdin".to_owned(),
            password: Password::Inline(Secret("open sesame".to_owned())),
        });
        let header = creds.header().unwrap().unwrap();
        assert_eq!(header, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(header.is_sensitive());
        let debug = format!("{creds:?}");
        assert!(!debug.contains("sesame"), "{debug}");
    }
}
