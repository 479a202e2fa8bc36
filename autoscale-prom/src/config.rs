//! The `[prometheus]` table, validated, and the `PROMETHEUS_URL` / `PROMETHEUS_URL_FILE` helper.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use crate::error::Error;
use crate::options::OnEmpty;

/// The default per-query timeout (`timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default cap on a response body (`max_response_bytes`): 8 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// The default deadline of the readiness wait at start-up (`ready_timeout`).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a finished fetch stays shared with identical queries of the same evaluation time.
pub const DEFAULT_ROUND_CACHE_TTL: Duration = Duration::from_secs(10);

/// Headers the client sets itself, or that would break the request, and so cannot be configured.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "user-agent",
    "accept",
];

/// A secret held in memory (a basic-auth password given in the URL). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Where a basic-auth password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Password {
    /// `basic_auth.password_file`, re-read when it changes.
    File(PathBuf),
    /// The password of a `user:password@` URL.
    Inline(Secret),
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Bearer(PathBuf),
    Basic {
        username: String,
        password: Password,
    },
}

/// The validated `[prometheus]` table (or one `[prometheus.instances.NAME]`).
///
/// Built with [`PrometheusConfig::new`] and setters; the setters that can be wrong return a `Result`, and
/// [`PrometheusClient::new`](crate::PrometheusClient::new) checks what depends on several keys or on files.
/// Its `Debug` output names files and header names, never a secret or a header value.
///
/// ```
/// use std::time::Duration;
/// use autoscale_prom::{OnEmpty, PrometheusConfig};
///
/// let config = PrometheusConfig::new("http://127.0.0.1:9090")?
///     .timeout(Duration::from_secs(3))
///     .header("X-Scope-OrgID", "team-a")?
///     .on_empty(OnEmpty::Error);
/// assert_eq!(config.url().as_str(), "http://127.0.0.1:9090/");
/// # Ok::<(), autoscale_prom::Error>(())
/// ```
#[derive(Clone)]
pub struct PrometheusConfig {
    pub(crate) url: Url,
    pub(crate) timeout: Duration,
    pub(crate) auth: Auth,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert_file: Option<PathBuf>,
    pub(crate) client_key_file: Option<PathBuf>,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) on_empty: OnEmpty,
    pub(crate) max_response_bytes: u64,
    pub(crate) ready_timeout: Duration,
    pub(crate) round_cache_ttl: Duration,
}

impl PrometheusConfig {
    /// A configuration for the Prometheus at `url` (its base URL, such as `http://prometheus:9090` or
    /// `https://example.com/prometheus`), with every other key at its default.
    ///
    /// The URL must be `http` or `https` with a host, and no query or fragment. Credentials in it
    /// (`https://user:password@host`) become basic auth and are removed from the URL, so they appear in no
    /// message.
    pub fn new(url: &str) -> Result<Self, Error> {
        let (url, auth) = parse_url(url)?;
        Ok(PrometheusConfig {
            url,
            timeout: DEFAULT_TIMEOUT,
            auth,
            headers: BTreeMap::new(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            insecure_skip_verify: false,
            on_empty: OnEmpty::Error,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            round_cache_ttl: DEFAULT_ROUND_CACHE_TTL,
        })
    }

    /// Replace the URL (for an instance that inherits every other key).
    ///
    /// Credentials in the new URL replace the configured basic auth only if the URL has some.
    pub fn with_url(mut self, url: &str) -> Result<Self, Error> {
        let (url, auth) = parse_url(url)?;
        self.url = url;
        if auth != Auth::None {
            self.auth = auth;
        }
        Ok(self)
    }

    /// The per-query timeout (`timeout`), retries included. Must not be zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send `Authorization: Bearer <token>` with the token read from `path` (`bearer_token_file`), re-read
    /// whenever the file changes.
    pub fn bearer_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::Bearer(path.into());
        self
    }

    /// Basic auth with the password read from `password_file` (`basic_auth`), re-read whenever it changes.
    pub fn basic_auth(mut self, username: &str, password_file: impl Into<PathBuf>) -> Self {
        self.auth = Auth::Basic {
            username: username.to_owned(),
            password: Password::File(password_file.into()),
        };
        self
    }

    /// Send a custom header with every request (`headers`), such as `X-Scope-OrgID` for Thanos, Cortex or
    /// Mimir. Headers the client sets itself (`Authorization`, `Host`, `Content-Type`, ...) are refused.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::config(format!("headers: {name:?} is not a valid header name")))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(Error::config(format!(
                "headers: {name:?} is set by the client itself (use bearer_token_file or basic_auth for \
                 credentials)"
            )));
        }
        // The value is never echoed: a custom header may well carry an API key.
        HeaderValue::from_str(value).map_err(|_| {
            Error::config(format!(
                "headers: the value of {name:?} has characters a header cannot hold"
            ))
        })?;
        self.headers
            .insert(parsed.as_str().to_owned(), value.to_owned());
        Ok(self)
    }

    /// Trust only the CA certificates (PEM) in `path` for the server's certificate (`ca_file`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this client certificate (PEM, `client_cert_file`) for mutual TLS; needs
    /// [`client_key_file`](Self::client_key_file).
    pub fn client_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(path.into());
        self
    }

    /// The private key (PEM, `client_key_file`) of the client certificate.
    pub fn client_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_key_file = Some(path.into());
        self
    }

    /// Accept any server certificate (`insecure_skip_verify`). The client logs a warning when built.
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }

    /// What an empty result means for checks that do not say (`on_empty`).
    pub fn on_empty(mut self, on_empty: OnEmpty) -> Self {
        self.on_empty = on_empty;
        self
    }

    /// The cap on a response body in bytes (`max_response_bytes`). Must not be zero.
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The overall deadline of the readiness wait at start-up (`ready_timeout`).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// How long a finished fetch is shared with identical queries for the same evaluation time (not a file
    /// key: the default suits every evaluation round that ends within it). Zero still shares in-flight
    /// fetches.
    pub fn round_cache_ttl(mut self, ttl: Duration) -> Self {
        self.round_cache_ttl = ttl;
        self
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Check what depends on several keys. Files are checked when the client is built.
    pub fn validate(&self) -> Result<(), Error> {
        if self.timeout.is_zero() {
            return Err(Error::config("timeout must be greater than zero"));
        }
        if self.max_response_bytes == 0 {
            return Err(Error::config(
                "max_response_bytes must be greater than zero",
            ));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(Error::config(
                "client_cert_file and client_key_file must be set together",
            ));
        }
        if let Auth::Basic { username, .. } = &self.auth
            && (username.is_empty() || username.contains(':'))
        {
            return Err(Error::config(
                "basic_auth.username must be non-empty and must not contain ':'",
            ));
        }
        if self.url.scheme() == "http"
            && (self.ca_file.is_some() || self.client_cert_file.is_some())
        {
            return Err(Error::config(
                "ca_file, client_cert_file and client_key_file need an https url",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("on_empty", &self.on_empty)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("ready_timeout", &self.ready_timeout)
            .field("round_cache_ttl", &self.round_cache_ttl)
            .finish()
    }
}

fn parse_url(raw: &str) -> Result<(Url, Auth), Error> {
    // Never echo the raw string: it may hold a password. Describe the problem instead.
    let mut url =
        Url::parse(raw.trim()).map_err(|e| Error::config(format!("url is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "url must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::config("url has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(
            "url must be the base URL of Prometheus, without a query or fragment",
        ));
    }
    let auth = if url.username().is_empty() && url.password().is_none() {
        Auth::None
    } else {
        let username = percent_decode(url.username())?;
        let password = percent_decode(url.password().unwrap_or(""))?;
        // Clearing cannot fail for an http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Auth::Basic {
            username,
            password: Password::Inline(Secret(password)),
        }
    };
    // API paths are joined onto the base, so it must end with a slash to keep a path prefix.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok((url, auth))
}

fn percent_decode(s: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| Error::config("url has credentials that are not UTF-8"))
}

/// The Prometheus URL from the environment, for the config layer: `PROMETHEUS_URL`, or the contents of the
/// file `PROMETHEUS_URL_FILE` names. `None` when neither is set (an empty value counts as unset).
///
/// Setting both is an error, because it is ambiguous which one was meant.
pub fn url_from_env() -> Result<Option<String>, Error> {
    url_from_env_with(|name| std::env::var(name).ok())
}

/// [`url_from_env`] with the environment given as a lookup function, for tests and embedders.
pub fn url_from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Option<String>, Error> {
    let set = |name| var(name).filter(|v| !v.trim().is_empty());
    match (set("PROMETHEUS_URL"), set("PROMETHEUS_URL_FILE")) {
        (Some(_), Some(_)) => Err(Error::config(
            "both PROMETHEUS_URL and PROMETHEUS_URL_FILE are set: set only one",
        )),
        (Some(url), None) => Ok(Some(url.trim().to_owned())),
        (None, Some(file)) => read_url_file(Path::new(file.trim())).map(Some),
        (None, None) => Ok(None),
    }
}

/// Read a URL from a file (`PROMETHEUS_URL_FILE`): its contents, trimmed, which must be one non-empty line.
/// The URL is validated by [`PrometheusConfig::new`].
pub fn read_url_file(path: &Path) -> Result<String, Error> {
    let file_error = |reason: String| Error::File {
        what: "URL",
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let url = text.trim();
    if url.is_empty() {
        return Err(file_error("the file is empty".to_owned()));
    }
    if url.lines().count() > 1 {
        return Err(file_error("the file holds more than one line".to_owned()));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_path_prefix_and_lose_their_credentials() {
        let c = PrometheusConfig::new("https://scaler:s%40cret@prom.example/prometheus").unwrap();
        assert_eq!(c.url().as_str(), "https://prom.example/prometheus/");
        assert_eq!(
            c.auth,
            Auth::Basic {
                username: "scaler".to_owned(),
                password: Password::Inline(Secret("s@cret".to_owned())),
            }
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("cret"), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "prom:9090",
            "ftp://prom",
            "http://",
            "http://prom:9090/?x=1",
            "not a url with a p4ssword",
        ] {
            let err = PrometheusConfig::new(bad).unwrap_err().to_string();
            assert!(!err.contains("p4ssword"), "{err}");
            assert!(
                err.starts_with("invalid Prometheus configuration: url"),
                "{err}"
            );
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        let c = PrometheusConfig::new("http://p").unwrap();
        assert!(c.clone().header("X-Scope-OrgID", "team-a").is_ok());
        assert!(c.clone().header("Authorization", "Bearer x").is_err());
        assert!(c.clone().header("bad header", "x").is_err());
        let err = c
            .header("X-Api-Key", "line\nbreak-secret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn validation_covers_keys_that_depend_on_each_other() {
        let c = PrometheusConfig::new("https://p").unwrap();
        assert!(c.clone().validate().is_ok());
        assert!(c.clone().timeout(Duration::ZERO).validate().is_err());
        assert!(c.clone().max_response_bytes(0).validate().is_err());
        assert!(c.clone().client_cert_file("c.pem").validate().is_err());
        assert!(
            c.clone()
                .client_cert_file("c.pem")
                .client_key_file("k.pem")
                .validate()
                .is_ok()
        );
        assert!(c.basic_auth("a:b", "pw").validate().is_err());
        let http = PrometheusConfig::new("http://p").unwrap().ca_file("ca.pem");
        assert!(http.validate().is_err());
    }

    #[test]
    fn the_url_comes_from_the_variable_or_the_file_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "http://from-file:9090\n").unwrap();
        let file = file.to_str().unwrap().to_owned();
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        assert_eq!(url_from_env_with(env(&[])).unwrap(), None);
        assert_eq!(
            url_from_env_with(env(&[("PROMETHEUS_URL", "http://a:9090")])).unwrap(),
            Some("http://a:9090".to_owned())
        );
        assert_eq!(
            url_from_env_with(env(&[
                ("PROMETHEUS_URL_FILE", &file),
                ("PROMETHEUS_URL", "")
            ]))
            .unwrap(),
            Some("http://from-file:9090".to_owned())
        );
        assert!(
            url_from_env_with(env(&[
                ("PROMETHEUS_URL_FILE", &file),
                ("PROMETHEUS_URL", "x")
            ]))
            .is_err()
        );
        let missing = dir.path().join("missing");
        let err = read_url_file(&missing).unwrap_err();
        assert!(matches!(err, Error::File { what: "URL", .. }), "{err}");
        std::fs::write(&missing, "  \n").unwrap();
        assert!(read_url_file(&missing).is_err());
    }
}
