//! The daemon's HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and `/status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::daemon::Shared;

/// Serve the endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
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
            "unhealthy: no evaluation completed within 3 intervals: {}\n",
            stale.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string_pretty(&shared.status_json()).unwrap_or_else(|_| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A plain HTTP/1.0 GET of `path` on the daemon at `addr`: (status code, body). No client library is
/// needed for the daemon's own loopback endpoints, which keeps `autoscale healthcheck` cheap.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(16 * 1024 * 1024)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, body.to_owned()))
    };
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| format!("{addr}: no answer within {timeout:?}"))?
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
