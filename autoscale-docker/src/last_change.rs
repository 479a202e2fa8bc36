//! A Swarm service's last replica change as Swarm records it: `UpdatedAt`, and the replicas of `Spec` and
//! `PreviousSpec` (what the service was before its last update).
//!
//! bollard's `Service` model has no `PreviousSpec`, so the service is read raw: one `GET /services/NAME`
//! over HTTP/1.0 (the daemon answers without chunking and closes), on the unix socket or plain tcp. A loop
//! reads it once at start and after a failover, not every round. Over TLS the record is not read (`None`),
//! and cooldowns count the local state only.

use std::sync::Arc;

use autoscale_core::{FailureKind, ReplicaChange, Replicas, Timestamp};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::engine::{Endpoint, ProcessEnv, resolve};
use crate::error::{ApiError, Error};
use crate::swarm::SwarmScaler;

/// The most of an answer read: a service's inspect is a few KiB.
const MAX_ANSWER: u64 = 4 << 20;

impl SwarmScaler {
    /// The service's last replica change as Swarm records it, with this crate's error: `None` when its last
    /// update did not change the count (or it was never updated), or the endpoint uses TLS.
    pub async fn read_last_change(&self) -> Result<Option<ReplicaChange>, Error> {
        let settings = self.settings();
        let endpoint = resolve(&settings.docker, &ProcessEnv::current())?;
        let request = format!("GET /services/{}", settings.service);
        let api = |status, reason: String, kind| ApiError {
            request: "GET /services/{id}".to_owned(),
            endpoint: endpoint.shown(),
            status,
            reason,
            kind,
        };
        let read = tokio::time::timeout(settings.timeout, get(&endpoint, &request)).await;
        let (status, body) = match read {
            Err(_) => {
                return Err(Error::Timeout {
                    after: settings.timeout,
                    source: Arc::new(api(
                        None,
                        format!("no answer within {:?}", settings.timeout),
                        FailureKind::Timeout,
                    )),
                });
            }
            Ok(Err(Unsupported)) => {
                tracing::debug!(
                    service = %settings.service, endpoint = %endpoint.shown(),
                    "not reading the service's previous spec over TLS"
                );
                return Ok(None);
            }
            Ok(Ok(Err(e))) => {
                return Err(Error::Api {
                    source: api(None, e.to_string(), FailureKind::Unavailable),
                });
            }
            Ok(Ok(Ok(answer))) => answer,
        };
        let json: Value = serde_json::from_slice(&body).map_err(|e| Error::Api {
            source: api(
                Some(status),
                format!("the answer is not JSON: {e}"),
                FailureKind::BadResult,
            ),
        })?;
        if status != 200 {
            let message = json
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned();
            let kind = if status >= 500 {
                FailureKind::Other
            } else {
                FailureKind::Rejected
            };
            return Err(Error::Api {
                source: api(Some(status), message, kind),
            });
        }
        last_change(&json).map_err(|reason| Error::Api {
            source: api(Some(status), reason, FailureKind::BadResult),
        })
    }
}

/// The endpoint cannot be read raw (TLS).
struct Unsupported;

/// `request` (`GET /path`) on `endpoint`: the status code and the body.
async fn get(
    endpoint: &Endpoint,
    request: &str,
) -> Result<std::io::Result<(u16, Vec<u8>)>, Unsupported> {
    let host = endpoint.host.as_str();
    Ok(match host.split_once("://") {
        Some(("unix", path)) => match tokio::net::UnixStream::connect(path).await {
            Ok(stream) => exchange(stream, request).await,
            Err(e) => Err(e),
        },
        Some(("tcp" | "http", address)) if endpoint.tls.is_none() => {
            match tokio::net::TcpStream::connect(address.trim_end_matches('/')).await {
                Ok(stream) => exchange(stream, request).await,
                Err(e) => Err(e),
            }
        }
        _ => return Err(Unsupported),
    })
}

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let head = format!("{request} HTTP/1.0\r\nHost: docker\r\nAccept: application/json\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    parse_answer(&answer).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an HTTP answer".to_owned(),
        )
    })
}

/// The status code and body of an HTTP/1.x answer without chunking.
fn parse_answer(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer[end + 4..].to_vec()))
}

/// The change of the last update from a service's inspect: `None` without a previous spec or when the
/// update kept the count.
fn last_change(service: &Value) -> Result<Option<ReplicaChange>, String> {
    let replicas = |spec: &Value| -> Result<Option<Replicas>, String> {
        let Some(replicated) = spec.pointer("/Mode/Replicated") else {
            return Ok(None);
        };
        // Swarm stores a replicated service created without a count as 1 replica.
        let n = replicated
            .get("Replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        Replicas::try_from(n)
            .map(Some)
            .map_err(|_| format!("{n} replicas"))
    };
    let (Some(spec), Some(previous)) = (service.get("Spec"), service.get("PreviousSpec")) else {
        return Ok(None);
    };
    let (Some(to), Some(from)) = (replicas(spec)?, replicas(previous)?) else {
        return Ok(None);
    };
    if from == to {
        return Ok(None);
    }
    let updated = service
        .get("UpdatedAt")
        .and_then(Value::as_str)
        .ok_or("no UpdatedAt")?;
    let at: jiff::Timestamp = updated
        .parse()
        .map_err(|e| format!("UpdatedAt {updated:?}: {e}"))?;
    Ok(Some(ReplicaChange {
        at: Timestamp::from_millis(at.as_millisecond()),
        from,
        to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_update_s_replicas_and_time() {
        let service = serde_json::json!({
            "UpdatedAt": "2026-11-30T09:00:01.123456789Z",
            "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 5}}},
            "PreviousSpec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 2}}},
        });
        let change = last_change(&service).unwrap().unwrap();
        assert_eq!((change.from, change.to), (2, 5));
        assert_eq!(change.at.as_millis() % 1000, 123);
        let at: jiff::Timestamp = "2026-11-30T09:00:01Z".parse().unwrap();
        assert_eq!(change.at.as_millis() / 1000, at.as_second());
    }

    #[test]
    fn no_change_without_a_previous_spec_or_with_the_same_count() {
        let created = serde_json::json!({
            "UpdatedAt": "2026-11-30T09:00:01Z",
            "Spec": {"Mode": {"Replicated": {"Replicas": 5}}},
        });
        assert_eq!(last_change(&created).unwrap(), None);
        let relabelled = serde_json::json!({
            "UpdatedAt": "2026-11-30T09:00:01Z",
            "Spec": {"Mode": {"Replicated": {"Replicas": 5}}},
            "PreviousSpec": {"Mode": {"Replicated": {"Replicas": 5}}},
        });
        assert_eq!(last_change(&relabelled).unwrap(), None);
        let global = serde_json::json!({
            "UpdatedAt": "2026-11-30T09:00:01Z",
            "Spec": {"Mode": {"Global": {}}},
            "PreviousSpec": {"Mode": {"Global": {}}},
        });
        assert_eq!(last_change(&global).unwrap(), None);
    }

    #[test]
    fn a_count_missing_in_a_replicated_spec_is_one() {
        let service = serde_json::json!({
            "UpdatedAt": "2026-11-30T09:00:01Z",
            "Spec": {"Mode": {"Replicated": {"Replicas": 3}}},
            "PreviousSpec": {"Mode": {"Replicated": {}}},
        });
        let change = last_change(&service).unwrap().unwrap();
        assert_eq!((change.from, change.to), (1, 3));
    }

    #[test]
    fn a_bad_time_is_an_error() {
        let service = serde_json::json!({
            "UpdatedAt": "yesterday",
            "Spec": {"Mode": {"Replicated": {"Replicas": 3}}},
            "PreviousSpec": {"Mode": {"Replicated": {"Replicas": 1}}},
        });
        assert!(last_change(&service).unwrap_err().contains("yesterday"));
    }

    #[test]
    fn an_answer_s_status_and_body() {
        let answer =
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"x\"}";
        assert_eq!(
            parse_answer(answer),
            Some((404, b"{\"message\":\"x\"}".to_vec()))
        );
        assert_eq!(parse_answer(b"garbage"), None);
    }
}
