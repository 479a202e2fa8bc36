//! One HTTP/1 GET on its own connection: the load generator spreads requests over replicas by address,
//! so it never reuses a connection, and the webapp's healthcheck needs nothing more.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bodies larger than this are an error (the webapp's `/metrics` is about 1.5 KiB).
const MAX_BODY: usize = 1 << 20;

/// Why a GET got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection failed (refused, unreachable).
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// No complete response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The server broke the HTTP exchange.
    #[error("http: {0}")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A response's status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The body (at most 1 MiB).
    pub body: Bytes,
}

/// `GET path` from `addr`, reading the whole response within `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<StatusCode, Error> {
    Ok(fetch(addr, path, timeout).await?.status)
}

/// `GET path` from `addr` with its body, within `timeout`.
pub async fn fetch(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, Error> {
    tokio::time::timeout(timeout, exchange(addr, path))
        .await
        .map_err(|_| Error::Timeout(timeout))?
}

async fn exchange(addr: SocketAddr, path: &str) -> Result<Response, Error> {
    let stream = TcpStream::connect(addr).await.map_err(Error::Connect)?;
    // Small requests: do not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Http(e.into()))?;
    // The connection task ends when `sender` is dropped or the server closes.
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Http(e.into()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::Http(e.into()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(Error::Http)?
        .to_bytes();
    Ok(Response { status, body })
}
