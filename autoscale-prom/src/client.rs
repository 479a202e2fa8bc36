//! The HTTP client: requests, retries, the size cap, readiness, and turning answers into values.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::Timestamp;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION,
};
use reqwest::{Certificate, Identity, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::auth::Credentials;
use crate::backoff::Backoff;
use crate::cache::{Key, RoundCache};
use crate::config::PrometheusConfig;
use crate::error::{Error, QueryTarget};
use crate::options::{MAX_RANGE_POINTS, OnEmpty, QueryOptions, RangeWindow, fmt_duration};
use crate::response::{Envelope, QueryResponse, evaluate, evaluate_range, parse};

/// Queries whose encoded parameters are longer than this go as a form POST, so no proxy or server URL
/// limit truncates them; shorter ones stay GETs, which show up readably in access logs.
pub const POST_THRESHOLD: usize = 2048;

/// At most this many attempts per query (and never past its timeout).
const MAX_ATTEMPTS: u32 = 4;

/// How much of an unexpected body an error quotes.
const SNIPPET_CHARS: usize = 200;

/// A client of one Prometheus server (or Prometheus-compatible API: Thanos, Cortex, Mimir).
///
/// It holds the connection pool and the round cache, so build one per server and share it (`Arc`) among
/// that server's [`PrometheusSource`](crate::PrometheusSource)s.
pub struct PrometheusClient {
    http: reqwest::Client,
    base: Url,
    query_url: Url,
    range_url: Url,
    ready_url: Url,
    credentials: Credentials,
    headers: HeaderMap,
    timeout: Duration,
    max_response_bytes: u64,
    on_empty: OnEmpty,
    ready_timeout: Duration,
    cache: RoundCache,
}

impl fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("url", &self.base.as_str())
            .field("credentials", &self.credentials)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("on_empty", &self.on_empty)
            .finish_non_exhaustive()
    }
}

/// One attempt's failure, and whether another attempt may succeed.
struct Failure {
    error: Error,
    retry: bool,
}

impl Failure {
    fn last(error: Error) -> Self {
        Failure {
            error,
            retry: false,
        }
    }
}

/// One readiness probe's answer.
enum Probe {
    Ready,
    NotYet(String),
    /// `/-/ready` is a 404: a Prometheus-compatible API without it; probe the query API instead.
    NoReadyEndpoint,
}

impl PrometheusClient {
    /// Build a client: validate the configuration, read the credential and certificate files once (so a
    /// missing file fails now, not at the first query), and set up TLS. No request is sent.
    ///
    /// With `insecure_skip_verify`, a warning is logged.
    pub fn new(config: PrometheusConfig) -> Result<Self, Error> {
        config.validate()?;
        let credentials = Credentials::new(&config.auth);
        credentials.check()?;

        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Validated by the config setter; a custom header may carry a key, so it is marked sensitive.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::config(format!("headers: {name:?} is not a header name")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Error::config(format!("headers: the value of {name:?} is invalid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        let mut builder = reqwest::Client::builder()
            // A redirect would send the credentials' request elsewhere and turn a POST into a GET: refuse it
            // and say where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("autoscale/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            let pem = read_file("CA", path)?;
            let certs =
                Certificate::from_pem_bundle(&pem).map_err(|e| file_error("CA", path, e))?;
            if certs.is_empty() {
                return Err(file_error("CA", path, "no PEM certificate in the file"));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&config.client_cert_file, &config.client_key_file) {
            let mut pem = read_file("client certificate", cert)?;
            pem.push(b'\n');
            pem.extend(read_file("client key", key)?);
            let identity = Identity::from_pem(&pem)
                .map_err(|e| file_error("client certificate or key", cert, e))?;
            builder = builder.identity(identity);
        }
        if config.insecure_skip_verify {
            tracing::warn!(
                url = %config.url,
                "insecure_skip_verify is set: the Prometheus server's TLS certificate is NOT verified, so \
                 anyone on the path can impersonate it"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::config(format!("cannot set up the HTTP client: {e}")))?;

        let join = |path: &str| {
            config
                .url
                .join(path)
                .map_err(|e| Error::config(format!("url: cannot append {path}: {e}")))
        };
        Ok(PrometheusClient {
            http,
            query_url: join("api/v1/query")?,
            range_url: join("api/v1/query_range")?,
            ready_url: join("-/ready")?,
            base: config.url,
            credentials,
            headers,
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            on_empty: config.on_empty,
            ready_timeout: config.ready_timeout,
            cache: RoundCache::new(config.round_cache_ttl, config.timeout),
        })
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// The configured readiness deadline (`ready_timeout`), for [`wait_ready`](Self::wait_ready).
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout
    }

    /// The value of `query` at `at`, read strictly according to `options` (see
    /// [`evaluate`](crate::response::evaluate)).
    ///
    /// Identical requests (same query, `at` and window) made while one is in flight, or shortly after,
    /// share its answer.
    pub async fn query(
        &self,
        query: &str,
        at: Timestamp,
        options: &QueryOptions,
    ) -> Result<f64, Error> {
        let response = self.fetch(query, at, options.window()).await?;
        evaluate(&response.data, options, self.on_empty).map_err(|reason| Error::Result {
            target: Box::new(self.target(query, at, options.window())),
            reason,
            warnings: response.warnings.clone(),
        })
    }

    /// The points of `query` over `[start, end]`, oldest first, read according to `options` (see
    /// [`evaluate_range`](crate::response::evaluate_range)): the past a forecasting policy learns from.
    ///
    /// It is one `query_range` ending at `end`, through the same requests, retries, timeout and size cap as
    /// every query. The step is `step`, widened when needed so that the range has at most
    /// [`MAX_RANGE_POINTS`] points; the first point is the last whole step after `start`. The check's own
    /// range window does not apply: `query` is asked as it is.
    pub async fn query_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
        options: &QueryOptions,
    ) -> Result<Vec<(Timestamp, f64)>, Error> {
        let window = range_window(start, end, step)?;
        let response = self.fetch(query, end, Some(&window)).await?;
        evaluate_range(&response.data, options).map_err(|reason| Error::Result {
            target: Box::new(self.target(query, end, Some(&window))),
            reason,
            warnings: response.warnings.clone(),
        })
    }

    /// The decoded answer to `query` at `at` (an instant query, or `query_range` over `window` ending at
    /// `at`), shared with identical requests of the same round.
    pub async fn fetch(
        &self,
        query: &str,
        at: Timestamp,
        window: Option<&RangeWindow>,
    ) -> Result<Arc<QueryResponse>, Error> {
        self.cache
            .get_or_fetch(Key::new(query, at, window), || {
                self.fetch_uncached(query, at, window)
            })
            .await
    }

    fn target(&self, query: &str, at: Timestamp, window: Option<&RangeWindow>) -> QueryTarget {
        let url = if window.is_some() {
            &self.range_url
        } else {
            &self.query_url
        };
        QueryTarget {
            url: url.to_string(),
            query: query.to_owned(),
            at,
            window: window.copied(),
        }
    }

    /// The form-encoded parameters of a request. The `timeout` parameter makes Prometheus abandon a query
    /// this client has given up on.
    fn params(&self, query: &str, at: Timestamp, window: Option<&RangeWindow>) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("query", query);
        match window {
            None => {
                form.append_pair("time", &fmt_seconds(at.as_millis()));
            }
            Some(w) => {
                let start = at.as_millis().saturating_sub(w.aligned_span_millis());
                let step = i64::try_from(w.step().as_millis()).unwrap_or(i64::MAX);
                form.append_pair("start", &fmt_seconds(start));
                form.append_pair("end", &fmt_seconds(at.as_millis()));
                form.append_pair("step", &fmt_seconds(step));
            }
        }
        form.append_pair("timeout", &format!("{}ms", self.timeout.as_millis()));
        form.finish()
    }

    async fn fetch_uncached(
        &self,
        query: &str,
        at: Timestamp,
        window: Option<&RangeWindow>,
    ) -> Result<Arc<QueryResponse>, Error> {
        let target = self.target(query, at, window);
        let endpoint = if window.is_some() {
            &self.range_url
        } else {
            &self.query_url
        };
        let params = self.params(query, at, window);
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = || Error::Timeout {
                target: Box::new(target.clone()),
                after: self.timeout,
            };
            if remaining.is_zero() {
                return Err(timeout());
            }
            let failure =
                match tokio::time::timeout(remaining, self.attempt(&target, endpoint, &params))
                    .await
                {
                    Err(_elapsed) => return Err(timeout()),
                    Ok(Ok(response)) => {
                        if !response.warnings.is_empty() {
                            tracing::warn!(
                                url = %target.url,
                                query = %target.query,
                                warnings = ?response.warnings,
                                "Prometheus answered with warnings"
                            );
                        }
                        return Ok(Arc::new(response));
                    }
                    Ok(Err(failure)) => failure,
                };
            let delay = Backoff::RETRY.jittered(attempt);
            if !failure.retry || attempt >= MAX_ATTEMPTS || Instant::now() + delay >= deadline {
                return Err(failure.error);
            }
            tracing::debug!(attempt, error = %failure.error, "retrying a Prometheus query");
            tokio::time::sleep(delay).await;
        }
    }

    /// A request with the custom headers, `Accept`, and the current credentials (read per request, so a
    /// rotated token is used as soon as its file changes).
    fn request(&self, method: reqwest::Method, url: Url) -> Result<reqwest::RequestBuilder, Error> {
        let mut request = self
            .http
            .request(method, url)
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json");
        if let Some(auth) = self.credentials.header()? {
            request = request.header(AUTHORIZATION, auth);
        }
        Ok(request)
    }

    async fn attempt(
        &self,
        target: &QueryTarget,
        endpoint: &Url,
        params: &str,
    ) -> Result<QueryResponse, Failure> {
        let request = if params.len() > POST_THRESHOLD {
            self.request(reqwest::Method::POST, endpoint.clone())
                .map_err(Failure::last)?
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(params.to_owned())
        } else {
            let mut url = endpoint.clone();
            url.set_query(Some(params));
            self.request(reqwest::Method::GET, url)
                .map_err(Failure::last)?
        };
        let boxed = || Box::new(target.clone());
        let mut response = request.send().await.map_err(|e| Failure {
            retry: !e.is_builder(),
            error: Error::Unreachable {
                target: boxed(),
                source: Arc::new(e.without_url()),
            },
        })?;

        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(safe_location)
                .unwrap_or_default();
            return Err(Failure::last(Error::Status {
                target: boxed(),
                status: status.as_u16(),
                detail: format!(
                    "redirected to {location}: redirects are not followed, set url to the final address"
                ),
            }));
        }
        let json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
        let body = self.read_body(&mut response, target).await?;
        let retry = matches!(status.as_u16(), 502..=504);

        let status_error = |body: &[u8]| Failure {
            retry,
            error: Error::Status {
                target: boxed(),
                status: status.as_u16(),
                detail: self.snippet(body),
            },
        };
        let is_json = json
            .as_deref()
            .is_some_and(|ct| ct.eq_ignore_ascii_case("application/json"));
        if !is_json {
            if status.is_success() {
                return Err(Failure::last(Error::malformed(
                    target,
                    format!(
                        "expected Content-Type application/json, got {}",
                        json.as_deref()
                            .map_or("none".to_owned(), |ct| format!("{ct:?}"))
                    ),
                )));
            }
            return Err(status_error(&body));
        }
        match parse(&body) {
            Ok(Envelope::Success(response)) if status.is_success() => Ok(response),
            Ok(Envelope::Success(_)) => Err(status_error(b"")),
            Ok(Envelope::Failure(f)) => Err(Failure {
                retry,
                error: Error::Api {
                    target: boxed(),
                    status: status.as_u16(),
                    error_type: f.error_type,
                    message: self.scrub(&f.error),
                    warnings: f.warnings,
                },
            }),
            Err(e) if status.is_success() => Err(Failure::last(Error::from_parse(target, e))),
            Err(_) => Err(status_error(&body)),
        }
    }

    /// The body, up to the size cap: refused before reading when `Content-Length` is over it, cut off as soon
    /// as a streamed body passes it.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        target: &QueryTarget,
    ) -> Result<Vec<u8>, Failure> {
        let cap = self.max_response_bytes;
        let too_large = || {
            Failure::last(Error::TooLarge {
                target: Box::new(target.clone()),
                limit: cap,
            })
        };
        let expected = response.content_length();
        if expected.is_some_and(|len| len > cap) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(expected.unwrap_or(0) as usize);
        loop {
            let chunk = response.chunk().await.map_err(|e| Failure {
                // The connection failed mid-answer: a connection error, worth another attempt.
                retry: true,
                error: Error::Interrupted {
                    target: Box::new(target.clone()),
                    source: Arc::new(e.without_url()),
                },
            })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// The start of an unexpected body for an error message: printable, short, and scrubbed of the
    /// credentials in case a server echoes the request.
    fn snippet(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let mut out: String = text
            .chars()
            .take(SNIPPET_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.chars().nth(SNIPPET_CHARS).is_some() {
            out.push('…');
        }
        self.scrub(out.trim())
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.credentials.secrets() {
            if !secret.is_empty() {
                text = text.replace(&secret, "[REDACTED]");
            }
        }
        text
    }

    /// Wait until Prometheus answers `GET /-/ready` with a success, probing with jittered exponential backoff
    /// (250 ms doubling to 5 s) until `deadline` has passed. Logs "Prometheus is ready" (INFO) when it does.
    ///
    /// A server without `/-/ready` (a 404, as some Prometheus-compatible APIs) is probed with the query
    /// `1` instead. Refused credentials (401, 403) end the wait at once: waiting will not fix them.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let mut attempt: u32 = 0;
        let mut query_api = false;
        let mut last = "no probe finished".to_owned();
        loop {
            let remaining = deadline.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return Err(Error::NotReady {
                    url: self.base.to_string(),
                    waited: start.elapsed(),
                    last,
                    status: None,
                });
            }
            attempt += 1;
            let probe = tokio::time::timeout(self.timeout.min(remaining), self.probe(query_api));
            match probe.await {
                Ok(Ok(Probe::Ready)) => {
                    tracing::info!(
                        url = %self.base,
                        attempts = attempt,
                        waited_ms = start.elapsed().as_millis() as u64,
                        "Prometheus is ready"
                    );
                    return Ok(());
                }
                Ok(Ok(Probe::NoReadyEndpoint)) if !query_api => {
                    query_api = true;
                    last = "GET /-/ready: HTTP 404; probing the query API".to_owned();
                    continue;
                }
                Ok(Ok(Probe::NoReadyEndpoint)) => last = "HTTP 404".to_owned(),
                Ok(Ok(Probe::NotYet(why))) => last = why,
                // Refused credentials or an unreadable credential file: waiting will not fix either.
                Ok(Err(error)) => return Err(error.with_wait(start.elapsed())),
                Err(_) => {
                    last = format!(
                        "no answer within {}",
                        fmt_duration(self.timeout.min(remaining))
                    );
                }
            }
            if attempt == 1 {
                tracing::info!(url = %self.base, reason = %last, "waiting for Prometheus to become ready");
            } else {
                tracing::debug!(url = %self.base, attempt, reason = %last, "Prometheus is not ready yet");
            }
            let delay = Backoff::READY
                .jittered(attempt)
                .min(deadline.saturating_sub(start.elapsed()));
            tokio::time::sleep(delay).await;
        }
    }

    async fn probe(&self, query_api: bool) -> Result<Probe, Error> {
        let url = if query_api {
            let mut url = self.query_url.clone();
            url.set_query(Some("query=1"));
            url
        } else {
            self.ready_url.clone()
        };
        let response = match self.request(reqwest::Method::GET, url)?.send().await {
            Ok(response) => response,
            // With its root cause: `error sending request` alone does not say the connection was refused.
            Err(e) => return Ok(Probe::NotYet(autoscale_core::brief_error(&e.without_url()))),
        };
        let status = response.status();
        match status {
            s if s.is_success() => Ok(Probe::Ready),
            StatusCode::NOT_FOUND if !query_api => Ok(Probe::NoReadyEndpoint),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Error::NotReady {
                url: self.base.to_string(),
                waited: Duration::ZERO,
                last: format!("HTTP {status}: the credentials were refused"),
                status: Some(status.as_u16()),
            }),
            _ => Ok(Probe::NotYet(format!("HTTP {status}"))),
        }
    }
}

/// The window of a range `[start, end]` at `step` or more: at least 1 ms, and coarse enough to stay within
/// [`MAX_RANGE_POINTS`]. A range shorter than its step is one step.
fn range_window(start: Timestamp, end: Timestamp, step: Duration) -> Result<RangeWindow, Error> {
    let span_ms =
        u64::try_from(end.as_millis().saturating_sub(start.as_millis())).map_err(|_| {
            Error::config(format!(
                "a range must end after it starts (from {start} to {end})"
            ))
        })?;
    let step_ms = u64::try_from(step.as_millis())
        .unwrap_or(u64::MAX)
        .max(span_ms.div_ceil(MAX_RANGE_POINTS - 1))
        .max(1);
    let step = Duration::from_millis(step_ms);
    RangeWindow::new(Duration::from_millis(span_ms).max(step), step)
}

/// A redirect target for a message: scheme, host, port and path only (no credentials, no query).
fn safe_location(location: &str) -> String {
    match Url::parse(location) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        // A relative location: keep its path only.
        Err(_) => location.split(['?', '#']).next().unwrap_or("").to_owned(),
    }
}

/// Milliseconds since the epoch as the decimal seconds Prometheus takes (`1700000000.250`), exactly.
fn fmt_seconds(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let abs = millis.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| file_error(what, path, e))
}

fn file_error(what: &'static str, path: &Path, reason: impl fmt::Display) -> Error {
    Error::File {
        what,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_formatted_exactly() {
        assert_eq!(fmt_seconds(1_700_000_000_250), "1700000000.250");
        assert_eq!(fmt_seconds(0), "0.000");
        assert_eq!(fmt_seconds(15_000), "15.000");
        assert_eq!(fmt_seconds(-1_500), "-1.500");
    }

    #[test]
    fn redirect_locations_lose_credentials_and_queries() {
        assert_eq!(
            safe_location("https://u:p@prom.example/api/v1/query?query=up#x"),
            "https://prom.example/api/v1/query"
        );
        assert_eq!(safe_location("/login?next=/api"), "/login");
    }

    #[test]
    fn a_long_range_widens_its_step_to_stay_within_the_point_cap() {
        let t = Timestamp::from_secs;
        let minute = Duration::from_secs(60);
        let day = range_window(t(0), t(86_400 + 900), minute).unwrap();
        assert_eq!(
            (day.range(), day.step()),
            (Duration::from_secs(87_300), minute)
        );
        // Two weeks at a minute would be 20,161 points: the step widens to fit.
        let fortnight = range_window(t(0), t(14 * 86_400), minute).unwrap();
        let points = fortnight.range().as_millis() / fortnight.step().as_millis() + 1;
        assert!(fortnight.step() > minute && points <= u128::from(MAX_RANGE_POINTS));
        assert_eq!(
            range_window(t(0), t(10), minute).unwrap().range(),
            minute,
            "one step"
        );
        assert!(range_window(t(10), t(0), minute).is_err());
    }

    #[test]
    fn parameters_of_instant_and_range_queries() {
        let client = PrometheusClient::new(
            PrometheusConfig::new("http://127.0.0.1:9/prefix")
                .unwrap()
                .timeout(Duration::from_millis(2500)),
        )
        .unwrap();
        let at = Timestamp::from_millis(1_700_000_000_250);
        assert_eq!(
            client.params("sum(rate(x[1m]))", at, None),
            "query=sum%28rate%28x%5B1m%5D%29%29&time=1700000000.250&timeout=2500ms"
        );
        let w = RangeWindow::new(Duration::from_secs(100), Duration::from_secs(15)).unwrap();
        assert_eq!(
            client.params("up", at, Some(&w)),
            "query=up&start=1699999910.250&end=1700000000.250&step=15.000&timeout=2500ms"
        );
        assert_eq!(
            client.target("up", at, Some(&w)).to_string(),
            "query `up` at 1700000000.250s over 100s step 15s against \
             http://127.0.0.1:9/prefix/api/v1/query_range"
        );
    }
}
