//! The demo webapp: an HTTP service whose replicas each serve a configured number of requests per second.
//!
//! `GET /` does simulated work on one FIFO server with a service time of `1 / capacity` ([`pacer`]):
//! below capacity a request takes about that long, above it requests queue and latency grows, and a
//! request that would queue longer than `max_queue` is answered 503 at once. `GET /metrics` exposes
//! `webapp_requests_total{code}`, `webapp_capacity_rps`, `webapp_in_flight` and the
//! `webapp_request_duration_seconds` histogram ([`metrics`]), so the utilization of the service is
//! `sum(rate(webapp_requests_total[30s])) / sum(webapp_capacity_rps)`. `GET /healthz` answers `ok`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use autoscale_examples::webapp::{bind, serve, App, Listen};
//!
//! let listener = bind(&Listen::Addr("127.0.0.1:8080".parse().unwrap())).await?;
//! let app = App::new(20.0, std::time::Duration::from_secs(5));
//! serve(listener, app.into(), std::future::pending(), std::time::Duration::from_secs(5)).await
//! # }
//! ```

pub mod metrics;
pub mod pacer;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

use metrics::Metrics;
use pacer::Pacer;

/// An invalid environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An inclusive range of TCP ports, written `19111-19130` (or a single port, `19111`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The range `first..=last`; `None` if it is empty or starts at port 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first != 0 && first <= last).then_some(Self { first, last })
    }

    /// The ports, lowest first.
    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{:?} is not a port number", p.trim()))
        };
        let (first, last) = match s.split_once('-') {
            Some((first, last)) => (port(first)?, port(last)?),
            None => (port(s)?, port(s)?),
        };
        Self::new(first, last).ok_or_else(|| {
            format!("expected FIRST-LAST with 0 < FIRST <= LAST, got {first}-{last}")
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Where a replica listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// One address (bridge networks, where every replica has its own IP).
    Addr(SocketAddr),
    /// The first free port of the range on 127.0.0.1 (host networking, where replicas share the host's ports).
    Ports(PortRange),
}

/// The webapp's configuration, from `WEBAPP_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `WEBAPP_CAPACITY_RPS` (default 20): requests per second one replica serves.
    pub capacity_rps: f64,
    /// `WEBAPP_PORTS` (a range on 127.0.0.1), else `WEBAPP_LISTEN` (default `127.0.0.1:8080`).
    pub listen: Listen,
    /// `WEBAPP_MAX_QUEUE` (default `5s`): the longest a request queues before it is answered 503.
    pub max_queue: Duration,
    /// `WEBAPP_DRAIN_TIMEOUT` (default `5s`): how long in-flight requests may finish after SIGTERM.
    pub drain_timeout: Duration,
    /// `WEBAPP_ADDR_FILE`: where to write the bound address, for `webapp healthcheck`.
    pub addr_file: Option<PathBuf>,
}

impl Config {
    /// Reads the configuration through `var` (`std::env::var` in the binary); unset and empty are alike.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let invalid = |var: &'static str, value: &str, reason: String| ConfigError {
            var,
            value: value.to_owned(),
            reason,
        };
        let duration = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(v) => {
                humantime::parse_duration(v.trim()).map_err(|e| invalid(name, &v, e.to_string()))
            }
        };

        let capacity_rps = match get("WEBAPP_CAPACITY_RPS") {
            None => 20.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(c) if c.is_finite() && c > 0.0 && c <= 1e6 => c,
                _ => {
                    return Err(invalid(
                        "WEBAPP_CAPACITY_RPS",
                        &v,
                        "expected a number of requests per second in (0, 1000000]".into(),
                    ));
                }
            },
        };
        // WEBAPP_PORTS wins so that a host-network deployment can override an image's WEBAPP_LISTEN.
        let listen = match (get("WEBAPP_PORTS"), get("WEBAPP_LISTEN")) {
            (Some(v), _) => Listen::Ports(v.parse().map_err(|e| invalid("WEBAPP_PORTS", &v, e))?),
            (None, Some(v)) => Listen::Addr(v.trim().parse().map_err(|_| {
                invalid(
                    "WEBAPP_LISTEN",
                    &v,
                    "expected IP:PORT, e.g. 0.0.0.0:8080".into(),
                )
            })?),
            (None, None) => Listen::Addr(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))),
        };
        Ok(Self {
            capacity_rps,
            listen,
            max_queue: duration("WEBAPP_MAX_QUEUE", Duration::from_secs(5))?,
            drain_timeout: duration("WEBAPP_DRAIN_TIMEOUT", Duration::from_secs(5))?,
            addr_file: get("WEBAPP_ADDR_FILE").map(PathBuf::from),
        })
    }
}

/// Binds the listener: the address, or the first port of the range that is free on 127.0.0.1.
pub async fn bind(listen: &Listen) -> io::Result<TcpListener> {
    match *listen {
        Listen::Addr(addr) => TcpListener::bind(addr).await,
        Listen::Ports(range) => {
            for port in range.ports() {
                match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                    Ok(listener) => return Ok(listener),
                    // Another replica got there first: try the next port.
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                    Err(e) => return Err(e),
                }
            }
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("every port of 127.0.0.1:{range} is in use"),
            ))
        }
    }
}

/// The state shared by a replica's request handlers.
#[derive(Debug)]
pub struct App {
    pacer: Mutex<Pacer>,
    metrics: Metrics,
}

impl App {
    /// A replica serving `capacity_rps` and queueing a request for at most `max_queue`.
    pub fn new(capacity_rps: f64, max_queue: Duration) -> Self {
        Self {
            pacer: Mutex::new(Pacer::new(capacity_rps, max_queue)),
            metrics: Metrics::new(capacity_rps),
        }
    }

    /// The replica's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/") => self.work().await,
            (&Method::GET, "/metrics") => {
                let mut response = text(StatusCode::OK, self.metrics.snapshot().render());
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (_, "/" | "/metrics" | "/healthz") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn work(&self) -> Response<Full<Bytes>> {
        let _in_flight = self.metrics.start();
        let arrived = Instant::now();
        let admitted = self
            .pacer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(arrived);
        match admitted {
            Ok(done) => {
                tokio::time::sleep_until(done).await;
                self.metrics.served(arrived.elapsed());
                text(StatusCode::OK, "ok\n")
            }
            Err(_) => {
                self.metrics.rejected();
                let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "overloaded\n");
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Serves HTTP/1 on `listener` until `shutdown` completes, then stops accepting and lets the requests in
/// flight finish for up to `drain` (idle keep-alive connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = Arc::clone(&app);
                    let service = service_fn(move |req| {
                        let app = Arc::clone(&app);
                        async move { Ok::<_, Infallible>(app.handle(&req).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        // A client that hangs up mid-request is its own business.
                        let _ = connection.await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    eprintln!("webapp: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            eprintln!("webapp: requests still in flight after {drain:?}; exiting anyway");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn port_ranges_parse() {
        assert_eq!(
            "19111-19130".parse(),
            Ok(PortRange::new(19111, 19130).unwrap())
        );
        assert_eq!(" 8080 ".parse(), Ok(PortRange::new(8080, 8080).unwrap()));
        assert_eq!("1 - 2".parse(), Ok(PortRange::new(1, 2).unwrap()));
        let ports: Vec<u16> = "7-9".parse::<PortRange>().unwrap().ports().collect();
        assert_eq!(ports, [7, 8, 9]);
        assert_eq!(PortRange::new(7, 9).unwrap().to_string(), "7-9");
    }

    #[test]
    fn bad_port_ranges_say_why() {
        for (input, why) in [
            (
                "19130-19111",
                "expected FIRST-LAST with 0 < FIRST <= LAST, got 19130-19111",
            ),
            ("0-5", "expected FIRST-LAST with 0 < FIRST <= LAST, got 0-5"),
            ("80-", "\"\" is not a port number"),
            ("70000", "\"70000\" is not a port number"),
            ("a-b", "\"a\" is not a port number"),
        ] {
            assert_eq!(input.parse::<PortRange>(), Err(why.to_string()), "{input}");
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(
            config(&[]).unwrap(),
            Config {
                capacity_rps: 20.0,
                listen: Listen::Addr("127.0.0.1:8080".parse().unwrap()),
                max_queue: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(5),
                addr_file: None,
            }
        );
    }

    #[test]
    fn a_port_range_overrides_the_listen_address() {
        let c = config(&[
            ("WEBAPP_LISTEN", "0.0.0.0:8080"),
            ("WEBAPP_PORTS", "19111-19130"),
            ("WEBAPP_CAPACITY_RPS", "2.5"),
            ("WEBAPP_MAX_QUEUE", "1500ms"),
            ("WEBAPP_ADDR_FILE", "/tmp/webapp.addr"),
        ])
        .unwrap();
        assert_eq!(
            c.listen,
            Listen::Ports(PortRange::new(19111, 19130).unwrap())
        );
        assert_eq!(c.capacity_rps, 2.5);
        assert_eq!(c.max_queue, Duration::from_millis(1500));
        assert_eq!(c.addr_file, Some(PathBuf::from("/tmp/webapp.addr")));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("WEBAPP_CAPACITY_RPS", "0"),
            ("WEBAPP_CAPACITY_RPS", "NaN"),
            ("WEBAPP_LISTEN", "localhost"),
            ("WEBAPP_PORTS", "9-8"),
            ("WEBAPP_MAX_QUEUE", "5"),
        ] {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var);
            assert!(
                e.to_string().starts_with(&format!("{var}={value:?}: ")),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_port_range_binds_the_first_free_port() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let Some(range) = PortRange::new(port, port.saturating_add(20)) else {
            return;
        };
        let listener = bind(&Listen::Ports(range)).await.unwrap();
        let bound = listener.local_addr().unwrap();
        assert!(bound.ip().is_loopback());
        assert!(bound.port() > port && bound.port() <= port + 20, "{bound}");

        let only_taken = PortRange::new(port, port).unwrap();
        let e = bind(&Listen::Ports(only_taken)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
