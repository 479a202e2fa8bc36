//! The daemon's HTTP endpoints, `/metrics`, `/healthz`, `/readyz` and `/status`, from both ends: [`serve`] on
//! the daemon's side, and [`probe`] and [`fetch_status`] for the commands that ask a running daemon
//! (`autoscale healthcheck`, `autoscale status`). The paths and what each status code means are kept here,
//! once, for both.

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
    let body = serde_json::to_string_pretty(&shared.status_json()).unwrap_or_else(|_| "{}".into());
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
        let mut response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .map_err(failed)?;
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
