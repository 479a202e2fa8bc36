//! The Docker Engine API: which endpoint a [`DockerEnv`] names, one shared client per endpoint, and the
//! per-round snapshots every scaler on that endpoint reads.
//!
//! Status reads never start a process: a Compose scaler reads the endpoint's container list and a Swarm scaler
//! its services and tasks lists. Scalers on the same endpoint share one client, and one list per round: the
//! first caller fetches, concurrent callers await the same request, and a finished list is reused for
//! [`DEFAULT_FRESHNESS`] (a round's services are evaluated within that time of each other). A scale action
//! drops the snapshot it changed, so the next read sees it, and so does an event of the endpoint's event
//! stream about a service with a change feed (see `events.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use autoscale_core::FailureKind;
use bollard::Docker;
use bollard::models::{ContainerSummary, Service, Task};
use tokio::sync::OnceCell;

use crate::compose::{ONEOFF_LABEL, PROJECT_LABEL};
use crate::docker::DockerEnv;
use crate::error::{ApiError, Error};
use crate::events::Watch;

/// How long a snapshot is reused: long enough for every service of one round, far shorter than an interval.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(1);

/// The daemon's default socket, as the docker CLI uses it.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where a Docker daemon listens, and the TLS files to reach it with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    /// `unix:///path` or `tcp://host:port`.
    pub host: String,
    /// The directory with `ca.pem`, `cert.pem` and `key.pem`, when TLS is on.
    pub tls: Option<PathBuf>,
}

impl Endpoint {
    /// The address for messages: a tcp URL loses any user information.
    pub fn shown(&self) -> String {
        match self.host.split_once("://") {
            Some((scheme, rest)) if scheme != "unix" => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => self.host.clone(),
            },
            _ => self.host.clone(),
        }
    }
}

/// The process environment, as far as resolving an endpoint reads it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessEnv {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    pub tls_verify: Option<String>,
    pub cert_path: Option<PathBuf>,
    /// `DOCKER_CONFIG`, else `$HOME/.docker`.
    pub config_dir: Option<PathBuf>,
}

impl ProcessEnv {
    pub fn current() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        ProcessEnv {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            tls_verify: var("DOCKER_TLS_VERIFY"),
            cert_path: var("DOCKER_CERT_PATH").map(PathBuf::from),
            config_dir: var("DOCKER_CONFIG")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| Path::new(&home).join(".docker"))),
        }
    }
}

/// The endpoint the docker CLI would talk to with `env` over `process`: the configured host or context, else
/// `DOCKER_HOST`, else `DOCKER_CONTEXT`, else the CLI's current context (`config.json`), else the default
/// socket. A context is read from `CONFIG/contexts/meta/SHA256(name)/meta.json`, its TLS files from
/// `CONFIG/contexts/tls/SHA256(name)/docker/`.
pub(crate) fn resolve(env: &DockerEnv, process: &ProcessEnv) -> Result<Endpoint, Error> {
    let context = match (&env.host, &env.context) {
        (Some(host), _) => return Ok(host_endpoint(host, env, process)),
        (None, Some(context)) => Some(context.clone()),
        (None, None) => match (&process.docker_host, &process.docker_context) {
            (Some(host), _) => return Ok(host_endpoint(host, env, process)),
            (None, Some(context)) => Some(context.clone()),
            (None, None) => current_context(process),
        },
    };
    match context {
        Some(name) if name != "default" => context_endpoint(&name, process),
        _ => Ok(Endpoint {
            host: DEFAULT_SOCKET.to_owned(),
            tls: None,
        }),
    }
}

fn host_endpoint(host: &str, env: &DockerEnv, process: &ProcessEnv) -> Endpoint {
    let verify = env.tls_verify.unwrap_or(process.tls_verify.is_some());
    let cert_path = env.cert_path.clone().or_else(|| process.cert_path.clone());
    // The CLI uses TLS without verification for DOCKER_CERT_PATH alone; this client always verifies.
    let tls = (verify || env.cert_path.is_some())
        .then(|| cert_path.or_else(|| process.config_dir.clone()))
        .flatten();
    Endpoint {
        host: host.to_owned(),
        tls: if host.starts_with("unix://") {
            None
        } else {
            tls
        },
    }
}

fn current_context(process: &ProcessEnv) -> Option<String> {
    let config = std::fs::read(process.config_dir.as_ref()?.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&config).ok()?;
    value
        .get("currentContext")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn context_endpoint(name: &str, process: &ProcessEnv) -> Result<Endpoint, Error> {
    use sha2::Digest;
    let invalid = |reason: String| Error::InvalidConfig { reason };
    let dir = process.config_dir.as_ref().ok_or_else(|| {
        invalid(format!(
            "docker context {name:?}: no DOCKER_CONFIG nor HOME"
        ))
    })?;
    let digest: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = dir.join("contexts/meta").join(&digest).join("meta.json");
    let text = std::fs::read(&meta).map_err(|e| {
        invalid(format!(
            "docker context {name:?}: cannot read {}: {e}",
            meta.display()
        ))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        invalid(format!(
            "docker context {name:?}: {} is not JSON: {e}",
            meta.display()
        ))
    })?;
    let docker = value.pointer("/Endpoints/docker");
    let host = docker
        .and_then(|d| d.get("Host"))
        .and_then(serde_json::Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "docker context {name:?} has no docker endpoint host in {}",
                meta.display()
            ))
        })?;
    let tls_dir = dir.join("contexts/tls").join(&digest).join("docker");
    let tls = (!host.starts_with("unix://") && tls_dir.join("ca.pem").is_file()).then_some(tls_dir);
    Ok(Endpoint {
        host: host.to_owned(),
        tls,
    })
}

/// A scaler's endpoint client, resolved on first use (so a scaler built before its context exists still
/// builds, and reports the missing context when it reads).
#[derive(Debug, Default)]
pub(crate) struct EndpointCell(std::sync::OnceLock<Arc<EngineEndpoint>>);

impl EndpointCell {
    pub fn get(&self, env: &DockerEnv) -> Result<Arc<EngineEndpoint>, Error> {
        if let Some(endpoint) = self.0.get() {
            return Ok(Arc::clone(endpoint));
        }
        let endpoint = endpoint(env)?;
        Ok(Arc::clone(self.0.get_or_init(|| endpoint)))
    }
}

/// The shared client of the endpoint `env` names (its host or context, else the process environment, as the
/// docker CLI resolves it): the one the scalers on that endpoint use, so discovery and status reads share
/// their snapshots. Connecting waits for the first request.
pub fn endpoint(env: &DockerEnv) -> Result<Arc<EngineEndpoint>, Error> {
    Ok(EngineEndpoint::shared(resolve(
        env,
        &ProcessEnv::current(),
    )?))
}

/// Every endpoint client in use in this process (by a scaler or a discovery), in no particular order: what a
/// daemon reports of its Docker requests.
pub fn endpoints() -> Vec<Arc<EngineEndpoint>> {
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .filter_map(Weak::upgrade)
        .collect()
}

/// How many requests an endpoint's client has sent, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCounts {
    /// `GET /containers/json` (Compose status reads).
    pub containers: u64,
    /// `GET /services` (Swarm status reads).
    pub services: u64,
    /// `GET /tasks` (Swarm status reads).
    pub tasks: u64,
    /// `GET /services/ID` and `POST /services/ID/update` (Swarm scale actions).
    pub service_updates: u64,
    /// Times the event stream (`GET /events`) connected: once, plus once per reconnection.
    pub event_connects: u64,
    /// Times a connected event stream broke.
    pub event_disconnects: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    containers: AtomicU64,
    services: AtomicU64,
    tasks: AtomicU64,
    service_updates: AtomicU64,
    pub(crate) event_connects: AtomicU64,
    pub(crate) event_disconnects: AtomicU64,
}

/// The Swarm half of a snapshot: every service, and the tasks meant to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct SwarmState {
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
}

type Shared<T> = Result<Arc<T>, Arc<Error>>;
/// When a fetch started, and its one shared answer.
type Slot<T> = Option<(Instant, Arc<OnceCell<Shared<T>>>)>;

/// One list shared by the callers of a round.
#[derive(Debug)]
struct Snapshot<T> {
    slot: Mutex<Slot<T>>,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot {
            slot: Mutex::new(None),
        }
    }
}

impl<T> Snapshot<T> {
    /// The current list: the one in flight or fetched within `freshness`, else a new fetch.
    async fn get<F, Fut>(&self, freshness: Duration, fetch: F) -> Shared<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let cell = {
            let mut slot = self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*slot {
                // Still in flight, or finished recently: shared.
                Some((at, cell)) if cell.get().is_none() || at.elapsed() <= freshness => {
                    Arc::clone(cell)
                }
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    *slot = Some((Instant::now(), Arc::clone(&cell)));
                    cell
                }
            }
        };
        cell.get_or_init(|| async { fetch().await.map(Arc::new).map_err(Arc::new) })
            .await
            .clone()
    }

    /// Forget the list: the next read fetches.
    fn invalidate(&self) {
        *self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// The client of one Docker endpoint, shared by every scaler that talks to it.
#[derive(Debug)]
pub struct EngineEndpoint {
    endpoint: Endpoint,
    shown: String,
    client: OnceCell<Docker>,
    freshness: Duration,
    containers: Snapshot<Vec<ContainerSummary>>,
    swarm: Snapshot<SwarmState>,
    counters: Counters,
    /// The change feeds of the services on this endpoint, and its event stream.
    watch: Watch,
}

static REGISTRY: LazyLock<Mutex<HashMap<Endpoint, Weak<EngineEndpoint>>>> =
    LazyLock::new(Mutex::default);

impl EngineEndpoint {
    /// The shared client of `endpoint`: the one other scalers use, or a new one.
    pub(crate) fn shared(endpoint: Endpoint) -> Arc<Self> {
        let mut registry = REGISTRY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        registry.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = registry.get(&endpoint).and_then(Weak::upgrade) {
            return existing;
        }
        let client = Arc::new(EngineEndpoint {
            shown: endpoint.shown(),
            endpoint: endpoint.clone(),
            client: OnceCell::new(),
            freshness: DEFAULT_FRESHNESS,
            containers: Snapshot::default(),
            swarm: Snapshot::default(),
            counters: Counters::default(),
            watch: Watch::default(),
        });
        registry.insert(endpoint, Arc::downgrade(&client));
        client
    }

    /// The endpoint's address, without credentials.
    pub fn address(&self) -> &str {
        &self.shown
    }

    /// The requests sent so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            containers: c.containers.load(Ordering::Relaxed),
            services: c.services.load(Ordering::Relaxed),
            tasks: c.tasks.load(Ordering::Relaxed),
            service_updates: c.service_updates.load(Ordering::Relaxed),
            event_connects: c.event_connects.load(Ordering::Relaxed),
            event_disconnects: c.event_disconnects.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn watch(&self) -> &Watch {
        &self.watch
    }

    /// The connected client, its API version negotiated with the daemon (once).
    pub(crate) async fn client(&self, timeout: Duration) -> Result<&Docker, Error> {
        self.client
            .get_or_try_init(|| async {
                let secs = timeout.as_secs().saturating_add(1);
                let version = bollard::API_DEFAULT_VERSION;
                let host = &self.endpoint.host;
                let connected = match (&self.endpoint.tls, host.split_once("://")) {
                    (_, Some(("unix", _))) => Docker::connect_with_unix(host, secs, version),
                    (Some(dir), Some(("tcp" | "https", _))) => Docker::connect_with_ssl(
                        host,
                        &dir.join("key.pem"),
                        &dir.join("cert.pem"),
                        &dir.join("ca.pem"),
                        secs,
                        version,
                    ),
                    (None, Some(("tcp" | "http", _))) => {
                        Docker::connect_with_http(host, secs, version)
                    }
                    _ => {
                        return Err(Error::InvalidConfig {
                            reason: format!(
                                "docker host {} is not unix://PATH nor tcp://HOST:PORT",
                                self.shown
                            ),
                        });
                    }
                };
                let docker = connected.map_err(|e| self.failure("connect", e))?;
                self.call("GET /version", timeout, docker.negotiate_version())
                    .await
            })
            .await
    }

    /// `request` within `timeout`, its failure classified and naming the endpoint.
    async fn call<T>(
        &self,
        request: &str,
        timeout: Duration,
        future: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(timeout, future).await {
            Ok(result) => result.map_err(|e| self.failure(request, e)),
            Err(_) => Err(Error::Timeout {
                after: timeout,
                source: Arc::new(ApiError {
                    request: request.to_owned(),
                    endpoint: self.shown.clone(),
                    status: None,
                    reason: format!("no answer within {timeout:?}"),
                    kind: FailureKind::Timeout,
                }),
            }),
        }
    }

    fn failure(&self, request: &str, error: bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        let api = |status: Option<u16>, reason: String, kind| ApiError {
            request: request.to_owned(),
            endpoint: self.shown.clone(),
            status,
            reason,
            kind,
        };
        match error {
            B::DockerResponseServerError {
                status_code,
                message,
            } => {
                let lower = message.to_ascii_lowercase();
                let source = api(Some(status_code), message, FailureKind::Rejected);
                if lower.contains("not a swarm manager") {
                    Error::NotSwarmManager {
                        source: Arc::new(source),
                    }
                } else if status_code >= 500 {
                    Error::Api {
                        source: ApiError {
                            kind: FailureKind::Other,
                            ..source
                        },
                    }
                } else {
                    Error::Api { source }
                }
            }
            B::JsonDataError { .. } | B::JsonSerdeError { .. } | B::APIVersionParseError {} => {
                Error::Api {
                    source: api(None, error.to_string(), FailureKind::BadResult),
                }
            }
            B::RequestTimeoutError => Error::Timeout {
                after: Duration::from_secs(self.client.get().map_or(0, |d| d.timeout().as_secs())),
                source: Arc::new(api(None, error.to_string(), FailureKind::Timeout)),
            },
            other => Error::DaemonUnavailable {
                source: Arc::new(api(None, error_chain(&other), FailureKind::Unavailable)),
            },
        }
    }

    /// The Compose containers of every project, stopped ones included (one-off `run` containers excluded),
    /// shared per round. Stopped containers keep a service stopped by hand visible to discovery; status reads
    /// count the running ones.
    pub(crate) async fn containers(
        &self,
        timeout: Duration,
    ) -> Result<Arc<Vec<ContainerSummary>>, Error> {
        let fetch = || async {
            let docker = self.client(timeout).await?;
            let filters = HashMap::from([(
                "label",
                vec![PROJECT_LABEL.to_owned(), format!("{ONEOFF_LABEL}=False")],
            )]);
            let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build();
            self.counters.containers.fetch_add(1, Ordering::Relaxed);
            self.call(
                "GET /containers/json",
                timeout,
                docker.list_containers(Some(options)),
            )
            .await
        };
        within(timeout, self.containers.get(self.freshness, fetch)).await
    }

    /// Every Swarm service, and the tasks meant to be running, shared per round.
    pub(crate) async fn swarm(&self, timeout: Duration) -> Result<Arc<SwarmState>, Error> {
        let fetch = || async {
            let docker = self.client(timeout).await?;
            self.counters.services.fetch_add(1, Ordering::Relaxed);
            let services = self
                .call(
                    "GET /services",
                    timeout,
                    docker.list_services(None::<bollard::query_parameters::ListServicesOptions>),
                )
                .await?;
            let filters = HashMap::from([("desired-state", vec!["running"])]);
            let options = bollard::query_parameters::ListTasksOptionsBuilder::new()
                .filters(&filters)
                .build();
            self.counters.tasks.fetch_add(1, Ordering::Relaxed);
            let tasks = self
                .call("GET /tasks", timeout, docker.list_tasks(Some(options)))
                .await?;
            Ok(SwarmState { services, tasks })
        };
        within(timeout, self.swarm.get(self.freshness, fetch)).await
    }

    /// Drop the services and tasks lists.
    pub(crate) fn invalidate_swarm(&self) {
        self.swarm.invalidate();
    }

    /// Drop the container list (after a Compose scale action).
    pub(crate) fn invalidate_containers(&self) {
        self.containers.invalidate();
    }

    /// Set a Swarm service's replicas: its current spec and version, then an update carrying that version,
    /// once more if another writer changed the service in between. `check` sees the spec first and may stop
    /// (the count is already right, or the mode cannot be scaled).
    pub(crate) async fn update_replicas(
        &self,
        service: &str,
        timeout: Duration,
        replicas: i64,
        check: impl Fn(&Service) -> Result<bool, Error>,
    ) -> Result<bool, Error> {
        let docker = self.client(timeout).await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.counters
                .service_updates
                .fetch_add(1, Ordering::Relaxed);
            let current = self
                .call(
                    "GET /services/{id}",
                    timeout,
                    docker.inspect_service(
                        service,
                        None::<bollard::query_parameters::InspectServiceOptions>,
                    ),
                )
                .await?;
            if !check(&current)? {
                return Ok(false);
            }
            let version = current.version.as_ref().and_then(|v| v.index);
            let (Some(mut spec), Some(version)) = (current.spec, version) else {
                return Err(Error::Api {
                    source: ApiError {
                        request: "GET /services/{id}".to_owned(),
                        endpoint: self.shown.clone(),
                        status: None,
                        reason: "the service has no spec or version".to_owned(),
                        kind: FailureKind::BadResult,
                    },
                });
            };
            if let Some(replicated) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
                replicated.replicas = Some(replicas);
            }
            let version = i32::try_from(version).unwrap_or(i32::MAX);
            let options = bollard::query_parameters::UpdateServiceOptionsBuilder::new()
                .version(version)
                .build();
            self.counters
                .service_updates
                .fetch_add(1, Ordering::Relaxed);
            let updated = self
                .call(
                    "POST /services/{id}/update",
                    timeout,
                    docker.update_service(service, spec, options, None),
                )
                .await;
            self.swarm.invalidate();
            match updated {
                Ok(_) => return Ok(true),
                Err(Error::Api { source })
                    if attempts < 2 && source.reason.contains("update out of sequence") =>
                {
                    tracing::debug!(service, "the service changed meanwhile; updating again");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Wait for a shared list no longer than this caller's own timeout.
async fn within<T>(
    timeout: Duration,
    shared: impl Future<Output = Shared<T>>,
) -> Result<Arc<T>, Error> {
    match tokio::time::timeout(timeout, shared).await {
        Ok(Ok(list)) => Ok(list),
        Ok(Err(error)) => Err(error.duplicate()),
        Err(_) => Err(Error::Timeout {
            after: timeout,
            source: Arc::new(SnapshotTimeout(timeout)),
        }),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the shared Docker snapshot did not arrive within {0:?}")]
struct SnapshotTimeout(Duration);

/// An error and its causes, as one line: transport errors keep the useful part (`connection refused`) deep.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(dir: &Path) -> ProcessEnv {
        ProcessEnv {
            config_dir: Some(dir.to_owned()),
            ..ProcessEnv::default()
        }
    }

    #[test]
    fn the_configured_host_wins_then_the_environment_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = process(dir.path());
        env.docker_host = Some("tcp://10.0.0.1:2375".to_owned());
        let host = |e: &DockerEnv, p: &ProcessEnv| resolve(e, p).unwrap().host;
        assert_eq!(
            host(&DockerEnv::new().host("unix:///x.sock"), &env),
            "unix:///x.sock"
        );
        assert_eq!(host(&DockerEnv::new(), &env), "tcp://10.0.0.1:2375");
        assert_eq!(
            host(&DockerEnv::new(), &process(dir.path())),
            DEFAULT_SOCKET
        );
        assert_eq!(
            host(&DockerEnv::new().context("default"), &env),
            DEFAULT_SOCKET
        );
    }

    #[test]
    fn tls_follows_docker_tls_verify_and_the_cert_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = process(dir.path());
        env.tls_verify = Some("1".to_owned());
        env.cert_path = Some("/certs".into());
        let tcp = DockerEnv::new().host("tcp://h:2376");
        assert_eq!(resolve(&tcp, &env).unwrap().tls, Some("/certs".into()));
        assert_eq!(
            resolve(&tcp.clone().tls_verify(false), &env).unwrap().tls,
            None
        );
        let env = process(dir.path());
        assert_eq!(
            resolve(&tcp.clone().tls_verify(true), &env).unwrap().tls,
            Some(dir.path().to_owned())
        );
    }

    #[test]
    fn a_context_is_read_from_its_meta_file() {
        let dir = tempfile::tempdir().unwrap();
        use sha2::Digest;
        let digest: String = sha2::Sha256::digest(b"prod")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let meta = dir.path().join("contexts/meta").join(&digest);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"prod","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://prod:2376","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let tls = dir.path().join("contexts/tls").join(&digest).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "").unwrap();
        let endpoint = resolve(&DockerEnv::new().context("prod"), &process(dir.path())).unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                host: "tcp://prod:2376".to_owned(),
                tls: Some(tls)
            }
        );
        // The CLI's current context, when nothing else names one.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"prod"}"#,
        )
        .unwrap();
        assert_eq!(
            resolve(&DockerEnv::new(), &process(dir.path()))
                .unwrap()
                .host,
            "tcp://prod:2376"
        );
        let err = resolve(&DockerEnv::new().context("gone"), &process(dir.path())).unwrap_err();
        assert!(err.to_string().contains("docker context \"gone\""), "{err}");
    }

    #[test]
    fn credentials_never_show() {
        let endpoint = Endpoint {
            host: "tcp://user:secret@h:2376".to_owned(),
            tls: None,
        };
        assert_eq!(endpoint.shown(), "tcp://h:2376");
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch_until_it_is_stale_or_dropped() {
        let snapshot = Snapshot::<u32>::default();
        let fetches = AtomicU64::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(7)
        };
        let long = Duration::from_secs(60);
        let (a, b, c) = tokio::join!(
            snapshot.get(long, fetch),
            snapshot.get(long, fetch),
            snapshot.get(long, fetch)
        );
        assert_eq!((*a.unwrap(), *b.unwrap(), *c.unwrap()), (7, 7, 7));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        snapshot.get(long, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "fresh: reused");
        snapshot.get(Duration::ZERO, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "stale: fetched again");
        snapshot.invalidate();
        snapshot.get(long, fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "dropped: fetched again");
    }
}
