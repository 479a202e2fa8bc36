//! The error every backend returns through the core traits.

use std::time::Duration;

use crate::types::FailureKind;

/// A boxed error from a backend, kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a metric source or a scaler, by the kind of failure a caller acts on.
///
/// Backend-specific detail (the URL without credentials, the query, the command line, the exit status and the
/// tail of stderr) lives in the `source`. No variant ever carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend could not be reached or answered with a server-side failure. Worth retrying.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend, such as `prometheus` or `docker compose`.
        backend: &'static str,
        /// What happened.
        source: BoxError,
    },
    /// The backend did not answer within its timeout.
    #[error("{backend} timed out after {after:?}: {source}")]
    Timeout {
        /// Which backend.
        backend: &'static str,
        /// The timeout that expired.
        after: Duration,
        /// What was attempted.
        source: BoxError,
    },
    /// The query or request was malformed and will fail again unchanged.
    #[error("{backend} rejected the query as invalid: {source}")]
    InvalidQuery {
        /// Which backend.
        backend: &'static str,
        /// The backend's message.
        source: BoxError,
    },
    /// The query returned no value.
    #[error("{backend} returned an empty result: {source}")]
    Empty {
        /// Which backend.
        backend: &'static str,
        /// The query.
        source: BoxError,
    },
    /// The result had an unusable shape or value (several series, NaN, a matrix, garbage).
    #[error("{backend} returned an unusable result: {source}")]
    BadResult {
        /// Which backend.
        backend: &'static str,
        /// What was wrong with it.
        source: BoxError,
    },
    /// The value was NaN or infinite.
    #[error("{backend} returned a non-finite value ({value}) for {query}")]
    NonFinite {
        /// Which backend.
        backend: &'static str,
        /// The value.
        value: f64,
        /// The query (never a secret).
        query: String,
    },
    /// The backend refused the request: bad credentials, an invalid name, an unsupported service mode.
    #[error("{backend} refused the request: {source}")]
    Rejected {
        /// Which backend.
        backend: &'static str,
        /// Why.
        source: BoxError,
    },
    /// A scale call for this service is already running; the new one was not started.
    #[error("{backend}: a scale action for this service is already running")]
    Busy {
        /// Which backend.
        backend: &'static str,
    },
    /// A failure that fits none of the kinds above.
    #[error("{backend} failed: {source}")]
    Other {
        /// Which backend.
        backend: &'static str,
        /// What happened.
        source: BoxError,
    },
}

impl Error {
    /// The kind of failure, as recorded in an [`Observation`](crate::Observation) and in metrics labels.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Unavailable { .. } | Error::Busy { .. } => FailureKind::Unavailable,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::InvalidQuery { .. } => FailureKind::InvalidQuery,
            Error::Empty { .. } => FailureKind::Empty,
            Error::BadResult { .. } => FailureKind::BadResult,
            Error::NonFinite { .. } => FailureKind::NonFinite,
            Error::Rejected { .. } => FailureKind::Rejected,
            Error::Other { .. } => FailureKind::Other,
        }
    }

    /// Whether the same call may succeed if retried unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Timeout { .. } | Error::Busy { .. }
        )
    }
}

/// The result type of the core traits.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The innermost cause of `error`: the last error of its [`source`](std::error::Error::source) chain, or
/// `error` itself when it has none. For a refused connection it is the operating system's
/// `Connection refused`, where the outer errors say only that a request could not be sent.
pub fn root_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause
}

/// `error` in one short line for a log: what failed at the top, without the text its sources add, then
/// the innermost cause, as in `prometheus is unavailable: Connection refused (os error 111)`. An error
/// without a source is its own message.
///
/// ```
/// use autoscale_core::{Error, brief_error};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let e = Error::Unavailable { backend: "prometheus", source: Box::new(refused) };
/// assert_eq!(brief_error(&e), "prometheus is unavailable: connection refused");
/// ```
pub fn brief_error(error: &(dyn std::error::Error + 'static)) -> String {
    let top = error.to_string();
    let Some(source) = error.source() else {
        return top;
    };
    // An error usually ends its message with its source's: what is left is its own context.
    let own = top
        .strip_suffix(&source.to_string())
        .map(|own| own.trim_end().trim_end_matches(':').trim_end())
        .filter(|own| !own.is_empty())
        .unwrap_or(&top);
    let root = root_cause(error).to_string();
    if own.contains(&root) {
        own.to_owned()
    } else {
        format!("{own}: {root}")
    }
}
