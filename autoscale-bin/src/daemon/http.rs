//! The daemon's HTTP endpoints, `/metrics`, `/healthz`, `/readyz` and `/status`, and the admin endpoints
//! `POST /pause/SERVICE` and `POST /resume/SERVICE`, from both ends: [`serve`] on the daemon's side, and
//! [`probe`], [`fetch_status`] and [`instruct`] for the commands that ask a running daemon (`autoscale
//! healthcheck`, `status`, `pause`, `resume`). The paths and what each status code means are kept here,
//! once, for both.
//!
//! The admin endpoints answer only clients on loopback, unless `[daemon] admin_token_file` is set: then
//! every client must send `Authorization: Bearer TOKEN`, compared in constant time. A request that carries an
//! `Origin` header (a web page in a browser) is refused either way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use autoscale_core::controller::Instruction;
use autoscale_core::engine::Pause;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

use crate::daemon::Shared;
use crate::daemon::report::{PauseAnswer, PauseReport, StatusReport};
use crate::daemon::shared::InstructError;

/// How much the HTTP server lets its clients hold.
///
/// - A connection with no request being handled is closed once it has been so for `idle_timeout`: an idle
///   keep-alive connection, one that sends its request slowly (headers or body), one that reads an answer
///   slowly.
/// - At most `max_connections` are open at once. When a new connection finds them all taken, the oldest one
///   with no request being handled is closed to make room, so a client that asks something is served even
///   while the slots are held by idle connections; if every slot is handling a request, the new connection
///   waits for one in the listen backlog (the kernel's, not the daemon's file descriptors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// How long a connection may go without a request being handled.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

impl ServeLimits {
    /// 30 s and 512 connections.
    pub const DEFAULT: ServeLimits = ServeLimits {
        idle_timeout: Duration::from_secs(30),
        max_connections: 512,
    };
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits::DEFAULT
    }
}

/// Serve the endpoints on `listener` until `shutdown` turns true, within [`ServeLimits::DEFAULT`].
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve_with(listener, shared, shutdown, ServeLimits::DEFAULT).await
}

/// Serve the endpoints on `listener` until `shutdown` turns true, within `limits`.
///
/// At shutdown, no connection is accepted any more, connections without a request in progress are closed,
/// and the others are closed as soon as their answer is sent.
pub async fn serve_with(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/pause/{service}", post(pause))
        .route("/resume/{service}", post(resume))
        .with_state(shared);
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let open = Arc::new(Connections::default());
    let stopping = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(stopping);
    loop {
        let stream = tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                open.evict_oldest_idle();
                tokio::select! {
                    () = &mut stopping => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (id, conn) = open.add();
        let app = app.clone();
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            serve_connection(stream, app, &conn, limits.idle_timeout).await;
            open.remove(id);
            drop(slot);
        });
    }
    drop(listener);
    // Close the idle connections and let the busy ones finish their answer; the idle timeout bounds the wait.
    open.shut_down();
    let _all_closed = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// An accept error: a client that gave up before it was accepted is nothing; anything else (out of file
/// descriptors) is logged, and accepting pauses a little so as not to spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "the HTTP server cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The open connections, oldest first.
#[derive(Default)]
struct Connections {
    by_age: Mutex<(u64, BTreeMap<u64, Arc<Conn>>)>,
}

impl Connections {
    fn add(&self) -> (u64, Arc<Conn>) {
        let mut guard = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, open) = &mut *guard;
        let id = *next;
        *next += 1;
        let conn = Arc::new(Conn::new());
        open.insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        let mut guard = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
        guard.1.remove(&id);
    }

    /// Close the oldest connection that has no request being handled, if there is one.
    fn evict_oldest_idle(&self) {
        let guard = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = guard.1.values().find(|c| !c.busy()) {
            conn.close.notify_one();
        }
    }

    fn shut_down(&self) {
        let guard = self.by_age.lock().unwrap_or_else(PoisonError::into_inner);
        for conn in guard.1.values() {
            conn.close.notify_one();
        }
    }
}

/// One connection's state, as its request handling and the server see it.
struct Conn {
    /// Requests being handled (0 or 1 on HTTP/1).
    requests: AtomicUsize,
    /// When the last request was handled, or the connection was accepted.
    idle_since: Mutex<Instant>,
    /// Told to close (evicted, or the server is stopping).
    close: Notify,
}

impl Conn {
    fn new() -> Self {
        Conn {
            requests: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: Notify::new(),
        }
    }

    fn busy(&self) -> bool {
        self.requests.load(Ordering::Acquire) > 0
    }

    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks a connection busy while a request is handled.
struct Handling(Arc<Conn>);

impl Handling {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.requests.fetch_add(1, Ordering::AcqRel);
        Handling(Arc::clone(conn))
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve one connection until the client closes it, it stays without a request being handled for
/// `idle_timeout`, or it is told to close.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    conn: &Arc<Conn>,
    idle_timeout: Duration,
) {
    let peer = stream.peer_addr().ok();
    let tower = TowerToHyperService::new(app);
    let handler = Arc::clone(conn);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        // Who is asking, for the admin endpoints (axum's `ConnectInfo` extractor reads it).
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let handling = Handling::new(&handler);
        let answer = hyper::service::Service::call(&tower, request);
        async move {
            let answer = answer.await;
            drop(handling);
            answer
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        // A request in progress holds the connection; the clock starts again when it is answered.
        let deadline = if conn.busy() {
            Instant::now() + idle_timeout
        } else {
            conn.idle_since() + idle_timeout
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            () = conn.close.notified(), if !closing => {
                if !conn.busy() {
                    return;
                }
                // Stopping: finish the answer in progress, then close.
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(deadline) => {
                if !conn.busy() && conn.idle_since() + idle_timeout <= Instant::now() {
                    return;
                }
            }
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let stale = shared.stale_services();
    if stale.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = format!(
            "unhealthy: no evaluation completed within 3 intervals plus a round's timeouts: {}\n",
            stale.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reasons) => {
            let body: String = reasons
                .iter()
                .map(|r| format!("not ready: {r}\n"))
                .collect();
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let now = autoscale_core::controller::Clock::now(&autoscale_core::controller::SystemClock);
    let body = serde_json::to_string_pretty(&shared.report(now)).unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether the client may use the admin endpoints: `None` if it may, else the refusal to send.
fn refused(shared: &Shared, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Response> {
    let refuse = |code: StatusCode, why: &str| Some((code, format!("{why}\n")).into_response());
    if headers.contains_key(header::ORIGIN) {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: the admin endpoints do not answer requests from web pages",
        );
    }
    match shared.admin_token_file() {
        Some(path) => {
            let expected = match crate::config::read_admin_token(&path) {
                Ok(token) => token,
                Err(e) => {
                    tracing::error!(error = %e, "an admin request cannot be checked");
                    return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e);
                }
            };
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                given.as_bytes(),
                expected.as_bytes(),
            )) {
                None
            } else {
                let mut answer = (
                    StatusCode::UNAUTHORIZED,
                    "refused: a valid bearer token (daemon.admin_token_file) is required\n",
                )
                    .into_response();
                answer.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                Some(answer)
            }
        }
        None if peer.is_some_and(|p| is_loopback(p.ip())) => None,
        None => refuse(
            StatusCode::FORBIDDEN,
            "refused: the admin endpoints answer only loopback clients, unless daemon.admin_token_file is set",
        ),
    }
}

fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The pause a request asks for: `?direction=all|up|down`, all by default.
fn direction(uri: &Uri) -> Result<Pause, String> {
    let mut direction = Pause::All;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("direction", "all")) => direction = Pause::All,
            Some(("direction", "up")) => direction = Pause::Up,
            Some(("direction", "down")) => direction = Pause::Down,
            _ => {
                return Err(format!(
                    "unknown parameter {pair:?}: expected direction=all, up or down"
                ));
            }
        }
    }
    Ok(direction)
}

async fn pause(
    State(shared): State<Arc<Shared>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&shared, peer.map(|p| (p.0).0), &headers) {
        return refusal;
    }
    let directions = match direction(&uri) {
        Ok(d) => d,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let result = shared
        .instruct(&service, |reply| Instruction::Pause(directions, reply))
        .await;
    instructed(&shared, &service, result)
}

async fn resume(
    State(shared): State<Arc<Shared>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refused(&shared, peer.map(|p| (p.0).0), &headers) {
        return refusal;
    }
    let result = shared.instruct(&service, Instruction::Resume).await;
    instructed(&shared, &service, result)
}

/// The answer to a pause or resume: the pause now in force.
fn instructed(
    shared: &Shared,
    service: &str,
    result: Result<Option<autoscale_core::engine::RuntimePause>, InstructError>,
) -> Response {
    let pause = match result {
        Ok(pause) => pause,
        Err(InstructError::Unknown) => {
            return (
                StatusCode::NOT_FOUND,
                format!("no service named {service:?}\n"),
            )
                .into_response();
        }
        Err(InstructError::NotRunning) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the loop of {service} is not running (a reload in progress?); try again\n"
                ),
            )
                .into_response();
        }
    };
    let configured = shared.configured_pause(service).unwrap_or_default();
    let (paused, message) = match (pause, configured) {
        (Some(p), _) => (
            Some(PauseReport {
                directions: p.directions.as_str().to_owned(),
                by: p.by.as_str().to_owned(),
                since: Some(super::shared::rfc3339(p.since)),
            }),
            format!(
                "{service}: {} paused until `autoscale resume {service}`",
                match p.directions {
                    Pause::Up => "scaling up",
                    Pause::Down => "scaling down",
                    _ => "scaling",
                }
            ),
        ),
        (None, Pause::None) => (None, format!("{service}: autoscaling resumed")),
        (None, configured) => (
            Some(PauseReport {
                directions: configured.as_str().to_owned(),
                by: "config".to_owned(),
                since: None,
            }),
            format!(
                "{service}: resumed, but its configuration still pauses it (paused = \"{}\")",
                configured.as_str()
            ),
        ),
    };
    let answer = PauseAnswer {
        service: service.to_owned(),
        paused,
        message,
    };
    let body = serde_json::to_string_pretty(&answer).unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The most of an answer the probes read; `/status` of hundreds of services is far below it.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A GET of `path` on the daemon at `addr`: (status code, body), the whole exchange within `timeout`.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    http_request(addr, reqwest::Method::GET, path, None, timeout).await
}

/// A request of `path` on the daemon at `addr`, with a bearer `token` if given: (status code, body), the
/// whole exchange within `timeout`.
async fn http_request(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let failed = |e: reqwest::Error| format!("{addr}: {}", os_cause(&e));
    let request = async {
        let client = reqwest::Client::builder()
            // The daemon is on this host: an HTTP_PROXY in a container's environment must not take the health
            // check elsewhere.
            .no_proxy()
            // Plain HTTP only, so trust no certificate authority: this skips reading the system's CA bundle on
            // every probe, and an image without one still passes its health check.
            .tls_certs_only([])
            .build()
            .map_err(failed)?;
        let mut request = client.request(method, format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(failed)?;
        let code = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            let room = MAX_ANSWER_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_ANSWER_BYTES {
                break;
            }
        }
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| format!("{addr}: no answer within {timeout:?}"))?
}

/// Why a request failed, as the operating system put it ("Connection refused (os error 111)"): the innermost
/// I/O error of the chain, else reqwest's own message.
fn os_cause(e: &reqwest::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.to_string();
        }
        cause = error.source();
    }
    e.to_string()
}

/// `autoscale healthcheck`: whether the daemon at `addr` answers `/healthz` with 200, within `timeout`.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match http_get(addr, "/healthz", timeout).await? {
        (200, _) => Ok(()),
        (code, body) => Err(format!("{addr}/healthz answered {code}: {}", body.trim())),
    }
}

/// `autoscale status`: the JSON of `/status`.
pub async fn fetch_status(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    match http_get(addr, "/status", timeout).await? {
        (200, body) => Ok(body),
        (code, body) => Err(format!("{addr}/status answered {code}: {}", body.trim())),
    }
}

/// `/status` read into its report.
pub fn parse_status(body: &str) -> Result<StatusReport, String> {
    serde_json::from_str(body).map_err(|e| format!("/status is not a status report: {e}"))
}

/// `autoscale pause` and `resume`: pause `service` (`Some(directions)`) or resume it (`None`), with the
/// bearer `token` if there is one; the daemon's answer.
pub async fn instruct(
    addr: SocketAddr,
    service: &str,
    pause: Option<Pause>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<PauseAnswer, String> {
    let service_path: String = url::form_urlencoded::byte_serialize(service.as_bytes()).collect();
    let path = match pause {
        Some(directions) => format!("/pause/{service_path}?direction={}", directions.as_str()),
        None => format!("/resume/{service_path}"),
    };
    let (code, body) = http_request(addr, reqwest::Method::POST, &path, token, timeout).await?;
    let endpoint = path.split('?').next().unwrap_or(&path);
    match code {
        200 => serde_json::from_str(&body).map_err(|e| {
            format!("{addr}{endpoint} answered something else than a pause answer: {e}")
        }),
        code => Err(format!("{addr}{endpoint} answered {code}: {}", body.trim())),
    }
}

#[cfg(test)]
mod tests {
    //! The server's limits under tokio's paused clock: time runs ahead whenever every task waits, so a
    //! 30 s timeout takes no real time, and an elapsed time is exact.

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::daemon::health::PersistHealth;
    use crate::daemon::history::History;

    struct Server {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
        _dir: tempfile::TempDir,
    }

    async fn start(limits: ServeLimits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path(), 1 << 20).unwrap();
        let metrics = crate::daemon::metrics::Metrics::new();
        let health = Arc::new(PersistHealth::new(metrics.persist_errors()));
        let shared = Arc::new(Shared::new(
            metrics,
            history,
            std::sync::mpsc::channel().0,
            health,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serve_with(listener, shared, shutdown, limits));
        Server {
            addr,
            stop,
            task,
            _dir: dir,
        }
    }

    /// How long until the server closes `stream` (reads to the end, discarding what comes); at most 10 min.
    async fn closed_after(stream: &mut TcpStream) -> Duration {
        let start = Instant::now();
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(600), stream.read_to_end(&mut sink))
            .await
            .expect("the server never closed the connection")
            .ok();
        start.elapsed()
    }

    /// One keep-alive GET on `stream`; the status line of the answer.
    async fn get(stream: &mut TcpStream, path: &str) -> String {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // The endpoints' answers here are short and sent with a Content-Length: read until the body is in.
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed before the answer");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap();
                if body.len() >= length {
                    return head.lines().next().unwrap().to_owned();
                }
            }
        }
    }

    fn shared(dir: &std::path::Path) -> Shared {
        let metrics = crate::daemon::metrics::Metrics::new();
        let health = Arc::new(PersistHealth::new(metrics.persist_errors()));
        Shared::new(
            metrics,
            History::open(dir, 1 << 20).unwrap(),
            std::sync::mpsc::channel().0,
            health,
        )
    }

    fn code(answer: Option<Response>) -> Option<u16> {
        answer.map(|a| a.status().as_u16())
    }

    #[test]
    fn without_a_token_file_only_loopback_may_pause() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let none = HeaderMap::new();
        let at = |addr: &str| Some(addr.parse::<SocketAddr>().unwrap());
        assert_eq!(code(refused(&shared, at("127.0.0.1:40000"), &none)), None);
        assert_eq!(code(refused(&shared, at("127.8.0.1:40000"), &none)), None);
        assert_eq!(code(refused(&shared, at("[::1]:40000"), &none)), None);
        assert_eq!(
            code(refused(&shared, at("[::ffff:127.0.0.1]:40000"), &none)),
            None
        );
        assert_eq!(
            code(refused(&shared, at("10.0.0.7:40000"), &none)),
            Some(403)
        );
        assert_eq!(
            code(refused(&shared, at("[2001:db8::1]:40000"), &none)),
            Some(403)
        );
        assert_eq!(code(refused(&shared, None, &none)), Some(403));
        // A web page's request, even from this host.
        let mut origin = HeaderMap::new();
        origin.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(
            code(refused(&shared, at("127.0.0.1:40000"), &origin)),
            Some(403)
        );
    }

    #[test]
    fn with_a_token_file_every_client_needs_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let file = dir.path().join("token");
        std::fs::write(&file, "  t0ken \n").unwrap();
        shared.set_admin_token_file(Some(file.clone()));
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
            h
        };
        let remote = Some("10.0.0.7:40000".parse().unwrap());
        let local = Some("127.0.0.1:40000".parse().unwrap());
        assert_eq!(code(refused(&shared, remote, &bearer("t0ken"))), None);
        assert_eq!(code(refused(&shared, local, &bearer("t0ken"))), None);
        assert_eq!(code(refused(&shared, local, &HeaderMap::new())), Some(401));
        assert_eq!(code(refused(&shared, remote, &bearer("t0ke"))), Some(401));
        assert_eq!(code(refused(&shared, remote, &bearer("t0ken2"))), Some(401));
        // Rotated in place: the new token works at once.
        std::fs::write(&file, "other").unwrap();
        assert_eq!(code(refused(&shared, remote, &bearer("t0ken"))), Some(401));
        assert_eq!(code(refused(&shared, remote, &bearer("other"))), None);
        // A file gone is the daemon's problem, and says which file, not what it held.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(code(refused(&shared, local, &bearer("other"))), Some(500));
    }

    #[test]
    fn the_direction_comes_from_the_query() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(direction(&uri("/pause/web")), Ok(Pause::All));
        assert_eq!(direction(&uri("/pause/web?direction=up")), Ok(Pause::Up));
        assert_eq!(
            direction(&uri("/pause/web?direction=down")),
            Ok(Pause::Down)
        );
        assert!(direction(&uri("/pause/web?direction=sideways")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_sent_request_is_closed_after_30_s_by_default() {
        let server = start(ServeLimits::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        let after = closed_after(&mut stream).await;
        assert!(
            (Duration::from_secs(30)..Duration::from_secs(31)).contains(&after),
            "closed after {after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let server = start(ServeLimits {
            idle_timeout: Duration::from_secs(1),
            ..ServeLimits::DEFAULT
        })
        .await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get(&mut stream, "/healthz").await, "HTTP/1.1 200 OK");
        let after = closed_after(&mut stream).await;
        assert!(
            (Duration::from_secs(1)..Duration::from_millis(1500)).contains(&after),
            "closed after {after:?}"
        );

        // A connection that never sends a byte goes the same way.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let after = closed_after(&mut silent).await;
        assert!(
            (Duration::from_secs(1)..Duration::from_millis(1500)).contains(&after),
            "closed after {after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_idle_connection_makes_room_for_a_new_one() {
        let server = start(ServeLimits {
            max_connections: 4,
            ..ServeLimits::DEFAULT
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            // A full exchange, so the server has surely accepted this connection before the next.
            assert_eq!(get(&mut stream, "/healthz").await, "HTTP/1.1 200 OK");
            idle.push(stream);
        }
        let start = Instant::now();
        let mut fifth = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get(&mut fifth, "/metrics").await, "HTTP/1.1 200 OK");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "waited {:?}",
            start.elapsed()
        );
        // The oldest went to make room; the others are still open.
        let oldest = closed_after(&mut idle[0]).await;
        assert!(oldest < Duration::from_secs(1), "closed after {oldest:?}");
        assert_eq!(get(&mut idle[1], "/healthz").await, "HTTP/1.1 200 OK");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_idle_and_half_sent_connections_at_once() {
        let server = start(ServeLimits::default()).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get(&mut idle, "/healthz").await, "HTTP/1.1 200 OK");
        let mut half = TcpStream::connect(server.addr).await.unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\n").await.unwrap();
        tokio::task::yield_now().await;
        let start = Instant::now();
        server.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), server.task)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        assert!(closed_after(&mut idle).await < Duration::from_secs(1));
        assert!(closed_after(&mut half).await < Duration::from_secs(1));
    }
}
