//! This crate's errors, and how they map onto the kinds of [`autoscale_core::Error`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::{FailureKind, Timestamp};

use crate::options::{RangeWindow, fmt_duration};
use crate::response::{ParseError, ResultError};

/// The backend name in [`autoscale_core::Error`]s from this crate.
pub const BACKEND: &str = "prometheus";

/// What was asked of which server: the endpoint URL (never with credentials), the query, the evaluation
/// time and the range window, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTarget {
    /// The endpoint, such as `http://prometheus:9090/api/v1/query`, without credentials.
    pub url: String,
    /// The PromQL expression.
    pub query: String,
    /// The evaluation time.
    pub at: Timestamp,
    /// The range window of a `query_range`.
    pub window: Option<RangeWindow>,
}

impl fmt::Display for QueryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query `{}` at {}", self.query, self.at)?;
        if let Some(w) = &self.window {
            write!(
                f,
                " over {} step {}",
                fmt_duration(w.range()),
                fmt_duration(w.step())
            )?;
        }
        write!(f, " against {}", self.url)
    }
}

/// A failure of this crate: configuration, transport, Prometheus's answer, or the shape of the result.
///
/// Every message says what was attempted against which URL (without credentials) and what came back. No
/// variant carries a token, a password or a header value. Cheap to clone, so identical queries of one
/// evaluation round can share one failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid Prometheus configuration: {reason}")]
    Config {
        /// What is wrong, naming the key.
        reason: String,
    },
    /// A file the configuration names (token, password, certificate, URL file) could not be used.
    #[error("cannot use the {what} file {}: {reason}", path.display())]
    File {
        /// Which file: `bearer token`, `basic auth password`, `CA`, ...
        what: &'static str,
        /// Its path (a path, never the contents).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The request did not get an answer: connection refused or reset, DNS, TLS handshake.
    #[error("{target}: cannot reach Prometheus: {source}")]
    Unreachable {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The transport error (its URL removed: `target` has the safe one).
        source: Arc<reqwest::Error>,
    },
    /// The connection failed while the answer was being read.
    #[error("{target}: the connection failed while reading the answer: {source}")]
    Interrupted {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The transport error.
        source: Arc<reqwest::Error>,
    },
    /// No complete answer within the per-query timeout (retries included).
    #[error("{target}: no answer within {}", fmt_duration(*after))]
    Timeout {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The timeout.
        after: Duration,
    },
    /// An HTTP error that is not a Prometheus API answer (a proxy's 502, a 401, a 404 from a wrong URL).
    #[error("{target}: HTTP {status}{}", detail_suffix(detail))]
    Status {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The HTTP status code.
        status: u16,
        /// The start of the body, or where a redirect pointed.
        detail: String,
    },
    /// Prometheus answered with `"status": "error"`.
    #[error(
        "{target}: Prometheus answered HTTP {status} {error_type}: {message}{}",
        warnings_suffix(warnings)
    )]
    Api {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The HTTP status code.
        status: u16,
        /// Prometheus's `errorType`.
        error_type: String,
        /// Prometheus's `error`.
        message: String,
        /// Prometheus's `warnings`.
        warnings: Vec<String>,
    },
    /// The body is not a Prometheus API response (wrong content type, truncated or invalid JSON).
    #[error("{target}: the answer is not a Prometheus API response: {reason}")]
    Malformed {
        /// What was asked.
        target: Box<QueryTarget>,
        /// What is wrong with it.
        reason: String,
    },
    /// The body exceeded the response size cap.
    #[error("{target}: the answer exceeds the {limit}-byte limit (max_response_bytes)")]
    TooLarge {
        /// What was asked.
        target: Box<QueryTarget>,
        /// The cap in bytes.
        limit: u64,
    },
    /// Prometheus answered, but the result is not one usable number.
    #[error("{target}: {reason}{}", warnings_suffix(warnings))]
    Result {
        /// What was asked.
        target: Box<QueryTarget>,
        /// What is wrong with the result.
        reason: ResultError,
        /// Prometheus's warnings, which often explain an empty or partial result.
        warnings: Vec<String>,
    },
    /// Prometheus did not become ready before the deadline.
    #[error("Prometheus at {url} was not ready after {}: {last}", fmt_duration(*waited))]
    NotReady {
        /// The base URL, without credentials.
        url: String,
        /// How long the wait lasted.
        waited: Duration,
        /// The last probe's outcome.
        last: String,
        /// The HTTP status that ended the wait early (401 or 403), if one did.
        status: Option<u16>,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn warnings_suffix(warnings: &[String]) -> String {
    if warnings.is_empty() {
        String::new()
    } else {
        format!(" (Prometheus warnings: {})", warnings.join("; "))
    }
}

impl Error {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Error::Config {
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(target: &QueryTarget, reason: impl fmt::Display) -> Self {
        Error::Malformed {
            target: Box::new(target.clone()),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn with_wait(mut self, elapsed: Duration) -> Self {
        if let Error::NotReady { waited, .. } = &mut self {
            *waited = elapsed;
        }
        self
    }

    pub(crate) fn from_parse(target: &QueryTarget, e: ParseError) -> Self {
        Self::malformed(target, e)
    }

    /// The kind of failure a caller acts on, as [`autoscale_core::Error::kind`] reports it.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Config { .. } | Error::File { .. } => FailureKind::Other,
            Error::NotReady {
                status: Some(status),
                ..
            } => status_kind(*status),
            Error::Unreachable { .. } | Error::Interrupted { .. } | Error::NotReady { .. } => {
                FailureKind::Unavailable
            }
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::Status { status, .. } => status_kind(*status),
            Error::Api {
                status, error_type, ..
            } => match error_type.as_str() {
                // A malformed expression or parameter, or one Prometheus cannot evaluate (many-to-many
                // matching, too many samples): it fails again unchanged, so the query must be fixed.
                "bad_data" | "execution" => FailureKind::InvalidQuery,
                "timeout" => FailureKind::Timeout,
                "canceled" | "internal" | "unavailable" => FailureKind::Unavailable,
                _ => status_kind(*status),
            },
            Error::Malformed { .. } | Error::TooLarge { .. } => FailureKind::BadResult,
            Error::Result { reason, .. } => match reason {
                ResultError::Empty => FailureKind::Empty,
                ResultError::NonFinite { .. } => FailureKind::NonFinite,
                _ => FailureKind::BadResult,
            },
        }
    }

    /// What was asked, for the errors that come from a query.
    pub fn target(&self) -> Option<&QueryTarget> {
        match self {
            Error::Unreachable { target, .. }
            | Error::Interrupted { target, .. }
            | Error::Timeout { target, .. }
            | Error::Status { target, .. }
            | Error::Api { target, .. }
            | Error::Malformed { target, .. }
            | Error::TooLarge { target, .. }
            | Error::Result { target, .. } => Some(target),
            Error::Config { .. } | Error::File { .. } | Error::NotReady { .. } => None,
        }
    }
}

fn status_kind(status: u16) -> FailureKind {
    match status {
        401 | 403 | 407 => FailureKind::Rejected,
        400 | 422 => FailureKind::InvalidQuery,
        429 | 500..=599 => FailureKind::Unavailable,
        _ => FailureKind::Other,
    }
}

impl From<Error> for autoscale_core::Error {
    fn from(e: Error) -> Self {
        let backend = BACKEND;
        match (e.kind(), &e) {
            (FailureKind::NonFinite, Error::Result { target, reason, .. }) => {
                let value = match reason {
                    ResultError::NonFinite { value } => *value,
                    _ => f64::NAN,
                };
                autoscale_core::Error::NonFinite {
                    backend,
                    value,
                    query: target.query.clone(),
                }
            }
            (FailureKind::Timeout, _) => {
                let after = match &e {
                    Error::Timeout { after, .. } => *after,
                    _ => Duration::ZERO,
                };
                autoscale_core::Error::Timeout {
                    backend,
                    after,
                    source: Box::new(e),
                }
            }
            (kind, _) => {
                let source = Box::new(e);
                match kind {
                    FailureKind::Unavailable => {
                        autoscale_core::Error::Unavailable { backend, source }
                    }
                    FailureKind::InvalidQuery => {
                        autoscale_core::Error::InvalidQuery { backend, source }
                    }
                    FailureKind::Empty => autoscale_core::Error::Empty { backend, source },
                    FailureKind::BadResult | FailureKind::NonFinite => {
                        autoscale_core::Error::BadResult { backend, source }
                    }
                    FailureKind::Rejected => autoscale_core::Error::Rejected { backend, source },
                    _ => autoscale_core::Error::Other { backend, source },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Box<QueryTarget> {
        Box::new(QueryTarget {
            url: "https://prom.example:9090/api/v1/query".to_owned(),
            query: "up".to_owned(),
            at: Timestamp::from_millis(1_700_000_000_250),
            window: None,
        })
    }

    #[test]
    fn api_errors_map_by_error_type_then_status() {
        let api = |status, error_type: &str| Error::Api {
            target: target(),
            status,
            error_type: error_type.to_owned(),
            message: "m".to_owned(),
            warnings: vec![],
        };
        assert_eq!(api(400, "bad_data").kind(), FailureKind::InvalidQuery);
        assert_eq!(api(422, "execution").kind(), FailureKind::InvalidQuery);
        assert_eq!(api(503, "timeout").kind(), FailureKind::Timeout);
        assert_eq!(api(503, "unavailable").kind(), FailureKind::Unavailable);
        assert_eq!(api(500, "internal").kind(), FailureKind::Unavailable);
        assert_eq!(api(404, "not_found").kind(), FailureKind::Other);
        assert_eq!(api(401, "").kind(), FailureKind::Rejected);
    }

    #[test]
    fn core_errors_keep_the_kind_and_the_message() {
        let e = Error::Result {
            target: target(),
            reason: ResultError::NonFinite {
                value: f64::INFINITY,
            },
            warnings: vec![],
        };
        let core: autoscale_core::Error = e.into();
        assert_eq!(core.kind(), FailureKind::NonFinite);
        assert_eq!(
            core.to_string(),
            "prometheus returned a non-finite value (inf) for up"
        );

        let e = Error::Timeout {
            target: target(),
            after: Duration::from_secs(5),
        };
        let core: autoscale_core::Error = e.into();
        assert!(core.is_transient());
        assert_eq!(
            core.to_string(),
            "prometheus timed out after 5s: query `up` at 1700000000.250s against \
             https://prom.example:9090/api/v1/query: no answer within 5s"
        );

        let e = Error::Status {
            target: target(),
            status: 401,
            detail: String::new(),
        };
        let core: autoscale_core::Error = e.into();
        assert_eq!(core.kind(), FailureKind::Rejected);
    }
}
