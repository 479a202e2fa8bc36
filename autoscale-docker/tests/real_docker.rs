//! The Compose and Swarm scalers against a real Docker engine: the dockerd, single-node Swarm, docker-compose
//! and `local/busybox:1` image that `scripts/services start` provides (see `AUTOSCALE_TEST_*`).
//!
//! Each test uses its own project or service name and removes what it created when it ends, failed or not
//! (drop guards). Containers use host networking and exit on SIGTERM, so scaling down is quick.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_core::testing::{require_service, scaler_conformance};
use autoscale_core::{FailureKind, ReplicaStatus, ScaleOutcome, Scaler};
use autoscale_docker::{
    ComposeCommand, ComposeScaler, DEFAULT_FRESHNESS, DiscoverKind, Discovery, DockerCli,
    DockerEnv, Selector, SwarmScaler,
};

/// A container command that exits at once on SIGTERM (PID 1 ignores signals it has no handler for).
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

struct Engine {
    host: String,
    image: String,
}

/// The engine, or `None` after a loud skip (a failure in CI).
fn engine() -> Option<Engine> {
    let host = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a Docker engine")?;
    let image = require_service("AUTOSCALE_TEST_BUSYBOX_IMAGE", "the local busybox image")?;
    Some(Engine { host, image })
}

/// The docker-compose binary and the engine, or `None` after a loud skip.
fn compose_engine() -> Option<(Engine, String)> {
    let engine = engine()?;
    let compose = require_service("AUTOSCALE_TEST_COMPOSE", "Docker Compose")?;
    Some((engine, compose))
}

/// The engine with Swarm mode on, or `None` after a loud skip.
fn swarm_engine() -> Option<Engine> {
    let engine = engine()?;
    require_service("AUTOSCALE_TEST_SWARM", "a single-node Docker Swarm")?;
    Some(engine)
}

impl Engine {
    fn cli(&self) -> DockerCli {
        DockerCli::new()
            .env(DockerEnv::new().host(&self.host))
            .timeout(Duration::from_secs(90))
    }

    /// Run docker by hand, as the test's own setup and cleanup.
    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("the docker CLI runs")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A name no other test (nor a concurrent run) uses.
fn unique(prefix: &str) -> String {
    format!("asdk-{prefix}-{}", std::process::id())
}

/// A Compose project in a temporary directory; its containers are removed on drop.
struct Project<'a> {
    engine: &'a Engine,
    name: String,
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl<'a> Project<'a> {
    fn new(engine: &'a Engine, name: &str, service_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docker-compose.yml");
        let yaml = format!(
            r#"version: "2.4"
services:
  app:
    image: {image}
    network_mode: host
    command: ["sh", "-c", "{IDLE}"]
    stop_grace_period: 2s
{service_extra}"#,
            image = engine.image,
        );
        std::fs::write(&file, yaml).unwrap();
        Project {
            engine,
            name: unique(name),
            _dir: dir,
            file,
        }
    }

    fn scaler(&self, command: ComposeCommand) -> ComposeScaler {
        ComposeScaler::builder(&self.name, "app")
            .file(&self.file)
            .command(command)
            .docker(self.engine.cli())
            .build()
            .unwrap()
    }

    fn container_ids(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        self.engine
            .docker_ok(&["ps", "-aq", "--filter", &filter])
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let ids = self.container_ids();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            self.engine.docker(&args);
        }
    }
}

/// A Swarm service created by hand; removed on drop.
struct Service<'a> {
    engine: &'a Engine,
    name: String,
}

impl<'a> Service<'a> {
    fn create(engine: &'a Engine, name: &str, options: &[&str]) -> Self {
        let service = Service {
            engine,
            name: unique(name),
        };
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &service.name,
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
        ];
        args.extend_from_slice(options);
        args.extend_from_slice(&[&engine.image, "sh", "-c", IDLE]);
        engine.docker_ok(&args);
        service
    }
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        self.engine.docker(&["service", "rm", &self.name]);
    }
}

/// `n` Swarm services of 1 replica named PREFIX0.., and their scalers, once every replica is ready.
async fn ready_services<'a>(
    engine: &'a Engine,
    prefix: &str,
    n: usize,
) -> (Vec<Service<'a>>, Vec<SwarmScaler>) {
    let services: Vec<Service<'a>> = (0..n)
        .map(|i| Service::create(engine, &format!("{prefix}{i}"), &["--replicas", "1"]))
        .collect();
    let scalers: Vec<SwarmScaler> = services
        .iter()
        .map(|s| SwarmScaler::new(engine.cli(), &s.name).unwrap())
        .collect();
    for scaler in &scalers {
        wait_for(scaler, ReplicaStatus::all_ready(1)).await;
    }
    (services, scalers)
}

/// Poll `scaler` until its status is `want` (a bounded wait for containers and tasks to converge).
async fn wait_for(scaler: &dyn Scaler, want: ReplicaStatus) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = scaler.status().await.expect("status read");
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the status never became {want:?}; last {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_project_scales_1_3_1() {
    let Some((engine, compose)) = compose_engine() else {
        return;
    };
    let project = Project::new(&engine, "c131", "");
    let scaler = project.scaler(ComposeCommand::argv([&compose]));

    assert_eq!(scaler.status().await.unwrap(), ReplicaStatus::all_ready(0));
    for (target, from) in [(1, 0), (3, 1), (1, 3)] {
        assert_eq!(
            scaler.scale(target).await.unwrap(),
            ScaleOutcome::Scaled,
            "{from} -> {target}"
        );
        // Compose has created and started the containers when `up` returns; without a healthcheck they are
        // ready as soon as they run.
        assert_eq!(
            scaler.status().await.unwrap(),
            ReplicaStatus::all_ready(target)
        );
        assert_eq!(project.container_ids().len(), target as usize);
        assert_eq!(scaler.scale(target).await.unwrap(), ScaleOutcome::Unchanged);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_scaler_passes_the_conformance_suite_with_detection() {
    let Some((engine, _compose)) = compose_engine() else {
        return;
    };
    let project = Project::new(&engine, "cconf", "");
    let scaler = project.scaler(ComposeCommand::Detect);
    assert_eq!(scaler.scale(1).await.unwrap(), ScaleOutcome::Scaled);
    let detected = scaler.compose_command().await.unwrap();
    eprintln!("detected compose command: {detected:?}");
    let boxed: Box<dyn Scaler> = Box::new(scaler);
    scaler_conformance(boxed.as_ref(), &[3, 3, 1, 0], |_| async {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_lowers_ready() {
    let Some((engine, compose)) = compose_engine() else {
        return;
    };
    // Healthy until /tmp/unhealthy exists in the container.
    let healthcheck = r#"    healthcheck:
      test: ["CMD-SHELL", "[ ! -f /tmp/unhealthy ]"]
      interval: 1s
      timeout: 2s
      retries: 1
"#;
    let project = Project::new(&engine, "unhealthy", healthcheck);
    let scaler = project.scaler(ComposeCommand::argv([&compose]));
    scaler.scale(2).await.unwrap();
    wait_for(&scaler, ReplicaStatus::all_ready(2)).await;

    let victim = project.container_ids().remove(0);
    engine.docker_ok(&["exec", &victim, "touch", "/tmp/unhealthy"]);
    wait_for(
        &scaler,
        ReplicaStatus {
            current: 2,
            ready: 1,
        },
    )
    .await;
    // An unhealthy replica still counts as running, so asking for 2 changes nothing.
    assert_eq!(scaler.scale(2).await.unwrap(), ScaleOutcome::Unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_service_scales_1_4_2() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let service = Service::create(&engine, "s142", &["--replicas", "1"]);
    let scaler = SwarmScaler::new(engine.cli(), &service.name).unwrap();
    wait_for(&scaler, ReplicaStatus::all_ready(1)).await;

    for target in [4, 2] {
        assert_eq!(scaler.scale(target).await.unwrap(), ScaleOutcome::Scaled);
        // --detach: the spec changes at once, the tasks follow.
        let status = scaler.status().await.unwrap();
        assert_eq!(status.current, target);
        assert!(status.ready <= target);
        wait_for(&scaler, ReplicaStatus::all_ready(target)).await;
        assert_eq!(scaler.scale(target).await.unwrap(), ScaleOutcome::Unchanged);
    }
    let spec = engine.docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
        &service.name,
    ]);
    assert_eq!(spec.trim(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_scaler_passes_the_conformance_suite() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let service = Service::create(&engine, "sconf", &["--replicas", "1"]);
    let scaler = SwarmScaler::new(engine.cli(), &service.name).unwrap();
    let boxed: Box<dyn Scaler> = Box::new(scaler);
    scaler_conformance(boxed.as_ref(), &[3, 3, 1, 0], |_| async {}).await;
}

/// Every Swarm service on one endpoint read in one round costs one services request and one tasks request;
/// every Compose service, one container list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_of_reads_is_one_snapshot_per_endpoint() {
    let Some(mut engine) = swarm_engine() else {
        return;
    };
    // The other tests of this process share the engine's endpoint client: an address of its own (the same
    // socket) keeps their reads out of the counts.
    engine.host = engine.host.replacen("unix:///", "unix:////", 1);
    let (_services, scalers) = ready_services(&engine, "snap", 4).await;
    let endpoint = scalers[0].endpoint().unwrap();
    assert!(Arc::ptr_eq(&endpoint, &scalers[3].endpoint().unwrap()));
    // A new round: past the freshness window of the reads above.
    tokio::time::sleep(autoscale_docker::DEFAULT_FRESHNESS * 2).await;
    let before = endpoint.requests();
    let reads = futures_join(scalers.iter().map(|s| s.status())).await;
    assert!(
        reads
            .iter()
            .all(|r| *r.as_ref().unwrap() == ReplicaStatus::all_ready(1))
    );
    let after = endpoint.requests();
    assert_eq!(
        (after.services - before.services, after.tasks - before.tasks),
        (1, 1),
        "{} services read",
        scalers.len()
    );

    // Compose scalers of several services share one container list.
    let compose: Vec<ComposeScaler> = ["a", "b", "c"]
        .iter()
        .map(|s| {
            ComposeScaler::builder(unique("snap"), *s)
                .docker(engine.cli())
                .build()
                .unwrap()
        })
        .collect();
    tokio::time::sleep(autoscale_docker::DEFAULT_FRESHNESS * 2).await;
    let before = endpoint.requests();
    let reads = futures_join(compose.iter().map(|s| s.status())).await;
    assert!(
        reads
            .iter()
            .all(|r| *r.as_ref().unwrap() == ReplicaStatus::all_ready(0))
    );
    assert_eq!(endpoint.requests().containers - before.containers, 1);
}

/// Await every future concurrently, as the daemon's service loops do within one round.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    // Started together: the first read fetches, the rest wait for it.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, r) in pinned.iter_mut().zip(results.iter_mut()) {
            if r.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *r = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[path = "support/proxy.rs"]
mod proxy;

/// What a loop reported, with when it arrived.
#[derive(Debug, Clone)]
enum Seen {
    Round,
    Observed(autoscale_core::controller::StatusObservation),
}

/// A control loop over `scaler` with a one-minute interval, so that only the scaler's change feed can explain
/// a status read within seconds; its check is always at its target, so it scales nothing within `[1, 10]`.
struct Watched {
    seen: Arc<std::sync::Mutex<Vec<(Instant, Seen)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<autoscale_core::EngineState>,
}

impl Watched {
    fn start(scaler: Arc<dyn Scaler>) -> Watched {
        use autoscale_core::controller::{CheckSource, LoopEvent, ServiceLoop};
        use autoscale_core::policy::{TargetForm, TargetPolicy};
        use autoscale_core::testing::ScriptedSource;
        use autoscale_core::{Check, EngineConfig};

        let check = Check::new(
            "load",
            Arc::new(TargetPolicy::new(1.0, TargetForm::PerReplica).unwrap()),
        );
        let service = ServiceLoop::builder("app", EngineConfig::builder(1, 10), scaler)
            .check(
                check,
                CheckSource::new(Arc::new(ScriptedSource::constant("load", 1.0)), "load"),
            )
            .interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (_, instructions) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(
            service.run_instructed(shutdown, instructions, move |event, _| {
                let seen = match event {
                    LoopEvent::Round(_) => Seen::Round,
                    LoopEvent::Observed(o) => Seen::Observed(o.clone()),
                    LoopEvent::Paused(..) => return,
                };
                sink.lock().unwrap().push((Instant::now(), seen));
            }),
        );
        Watched { seen, stop, task }
    }

    /// [Start](Self::start), then wait for the first round and for the endpoint's event stream: from then on
    /// a change is heard through the stream or not at all, the next round being a minute away.
    async fn connected(
        scaler: Arc<dyn Scaler>,
        endpoint: &autoscale_docker::EngineEndpoint,
    ) -> Watched {
        let watched = Watched::start(scaler);
        watched.first_round().await;
        wait_counts(
            endpoint,
            Duration::from_secs(10),
            "the stream connects",
            |c| c.event_connects >= 1,
        )
        .await;
        watched
    }

    /// Wait (at most 20 s) for the first round, so that the next one is a minute away.
    async fn first_round(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| matches!(s, Seen::Round))
        {
            assert!(Instant::now() < deadline, "no first round");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How long after `since` an observation matching `want` was reported, waiting at most `limit`.
    async fn observed(
        &self,
        since: Instant,
        limit: Duration,
        want: impl Fn(&autoscale_core::controller::StatusObservation) -> bool,
    ) -> Duration {
        let deadline = since + limit;
        loop {
            let found = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find_map(|(at, s)| match s {
                    Seen::Observed(o) if *at >= since && want(o) => Some(at.duration_since(since)),
                    _ => None,
                });
            if let Some(latency) = found {
                return latency;
            }
            assert!(
                Instant::now() < deadline,
                "no such observation within {limit:?}: {:#?}",
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The rounds reported so far.
    fn rounds(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| matches!(s, Seen::Round))
            .count()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// Wait (at most `limit`) until `endpoint`'s counts satisfy `want`.
async fn wait_counts(
    endpoint: &autoscale_docker::EngineEndpoint,
    limit: Duration,
    what: &str,
    want: impl Fn(autoscale_docker::RequestCounts) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !want(endpoint.requests()) {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: {:?}",
            endpoint.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every log line of this test process at INFO and above, for the tests of what the event stream logs (its
/// task runs on the runtime's worker threads, so the capture is process-wide; a test filters on its own
/// endpoint's address).
fn logs() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        struct Writer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Writer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Writer(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global log capture");
        buffer
    })
}

/// The captured lines at `level` that contain every one of `words`.
fn log_lines(level: &str, words: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(&format!(" {level} ")) && words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

/// Print a measured latency where a person running the tests sees it.
fn report(what: &str, latency: Duration) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "MEASURED {what}: {:.0} ms",
        latency.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_swarm_scale_is_seen_through_events_within_a_second() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let service = Service::create(&engine, "evscale", &["--replicas", "1"]);
    let scaler = Arc::new(SwarmScaler::new(engine.cli(), &service.name).unwrap());
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(1)).await;
    let endpoint = scaler.endpoint().unwrap();
    let watched = Watched::connected(scaler.clone(), &endpoint).await;

    let since = Instant::now();
    engine.docker_ok(&[
        "service",
        "scale",
        "--detach",
        &format!("{}=3", service.name),
    ]);
    let latency = watched
        .observed(since, Duration::from_secs(1), |o| {
            o.outside_change == Some((1, 3))
        })
        .await;
    report(
        "docker service scale -> observation with the outside change",
        latency,
    );
    assert_eq!(watched.rounds(), 1, "no round explains it");
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_container_stopped_by_hand_shows_within_a_second() {
    let Some((engine, compose)) = compose_engine() else {
        return;
    };
    let project = Project::new(&engine, "evstop", "");
    let scaler = Arc::new(project.scaler(ComposeCommand::argv([&compose])));
    scaler.scale(3).await.unwrap();
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(3)).await;
    let endpoint = scaler.endpoint().unwrap();
    let watched = Watched::connected(scaler.clone(), &endpoint).await;

    let victim = project.container_ids().remove(0);
    let since = Instant::now();
    engine.docker_ok(&["stop", "-t", "1", &victim]);
    let stopped = Instant::now();
    let latency = watched
        .observed(since, Duration::from_secs(5), |o| o.status.ready == 2)
        .await;
    // From `docker stop`'s return: the container may take up to a second to act on SIGTERM.
    let after_stop = latency.saturating_sub(stopped.duration_since(since));
    report(
        "docker stop (returned) -> observation with ready 2",
        after_stop,
    );
    report("docker stop (started) -> observation with ready 2", latency);
    assert!(after_stop < Duration::from_secs(1), "{after_stop:?}");
    assert_eq!(watched.rounds(), 1, "no round explains it");
    watched.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_task_container_that_dies_shows_in_ready_within_a_second() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let service = Service::create(&engine, "evdie", &["--replicas", "2"]);
    let scaler = Arc::new(SwarmScaler::new(engine.cli(), &service.name).unwrap());
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(2)).await;
    let endpoint = scaler.endpoint().unwrap();
    let watched = Watched::connected(scaler.clone(), &endpoint).await;

    let filter = format!("label=com.docker.swarm.service.name={}", service.name);
    let victim = engine.docker_ok(&["ps", "-q", "--filter", &filter]);
    let victim = victim.split_whitespace().next().expect("a task container");
    let since = Instant::now();
    engine.docker_ok(&["kill", victim]);
    // The manager marks the task failed a moment after the container's `die` event.
    let latency = watched
        .observed(since, Duration::from_secs(1), |o| {
            o.status
                == ReplicaStatus {
                    current: 2,
                    ready: 1,
                }
        })
        .await;
    report(
        "docker kill of a swarm task container -> observation with ready 1",
        latency,
    );
    assert_eq!(watched.rounds(), 1, "no round explains it");
    watched.stop().await;
}

/// The event stream cut (every connection through a proxy closed, event streams refused): changes are still
/// seen, by polling; restored: the stream reconnects and changes are seen within a second again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_event_stream_falls_back_to_polling_and_reconnects() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = engine
        .host
        .strip_prefix("unix://")
        .expect("the test engine listens on a unix socket");
    logs();
    let proxy = proxy::Proxy::start(Path::new(socket), dir.path());
    let service = Service::create(&engine, "evcut", &["--replicas", "1"]);
    let cli = DockerCli::new()
        .env(DockerEnv::new().host(proxy.host()))
        .timeout(Duration::from_secs(30));
    let scaler = Arc::new(SwarmScaler::new(cli, &service.name).unwrap());
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(1)).await;
    let endpoint = scaler.endpoint().unwrap();
    let watched = Watched::start(scaler.clone());
    watched.first_round().await;
    wait_counts(
        &endpoint,
        Duration::from_secs(10),
        "the stream connects",
        |c| c.event_connects == 1,
    )
    .await;
    let scale = |n: u32| {
        engine.docker_ok(&[
            "service",
            "scale",
            "--detach",
            &format!("{}={n}", service.name),
        ]);
    };

    let since = Instant::now();
    scale(2);
    let latency = watched
        .observed(since, Duration::from_secs(1), |o| {
            o.outside_change == Some((1, 2))
        })
        .await;
    report("connected: outside scale -> observation", latency);

    proxy.cut();
    wait_counts(
        &endpoint,
        Duration::from_secs(5),
        "the break is seen",
        |c| c.event_disconnects == 1,
    )
    .await;
    let since = Instant::now();
    scale(3);
    let latency = watched
        .observed(since, Duration::from_secs(4), |o| {
            o.outside_change == Some((2, 3))
        })
        .await;
    report(
        "cut (polling every 2 s): outside scale -> observation",
        latency,
    );
    // Reopening is refused meanwhile, with a backoff.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(proxy.refused() >= 1, "the stream tried to reopen");
    assert_eq!(endpoint.requests().event_connects, 1);

    proxy.restore();
    let restored = Instant::now();
    wait_counts(
        &endpoint,
        Duration::from_secs(40),
        "the stream reconnects",
        |c| c.event_connects == 2,
    )
    .await;
    report("restored -> stream reconnected", restored.elapsed());
    let since = Instant::now();
    scale(4);
    let latency = watched
        .observed(since, Duration::from_secs(1), |o| {
            o.outside_change == Some((3, 4))
        })
        .await;
    report("reconnected: outside scale -> observation", latency);
    assert_eq!(watched.rounds(), 1, "no round explains any of it");
    // One warning for the outage, though reopening failed several times, and one line when it is back.
    let address = proxy.host();
    let down = log_lines("WARN", &["event stream", &address, "is down"]);
    assert_eq!(down.len(), 1, "{down:#?}");
    let back = log_lines("INFO", &["event stream", &address, "is back"]);
    assert_eq!(back.len(), 1, "{back:#?}");
    watched.stop().await;
    // The last feed gone, the stream stops.
    let before = endpoint.requests();
    drop(proxy);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        endpoint.requests().event_disconnects,
        before.event_disconnects
    );
}

/// With the event stream on, a round of reads still costs one request per endpoint, and a quiet stream costs
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_endpoint_per_round_with_events_on() {
    let Some(mut engine) = swarm_engine() else {
        return;
    };
    // An address of its own (the same socket), as above, and not the one that test uses.
    engine.host = engine.host.replacen("unix:///", "unix://///", 1);
    let (_services, scalers) = ready_services(&engine, "evreq", 3).await;
    let feeds: Vec<_> = scalers.iter().map(|s| s.changes().unwrap()).collect();
    let endpoint = scalers[0].endpoint().unwrap();
    wait_counts(
        &endpoint,
        Duration::from_secs(10),
        "the stream connects",
        |c| c.event_connects == 1,
    )
    .await;
    // The tasks' containers settle (their start events) before counting.
    tokio::time::sleep(autoscale_docker::DEFAULT_FRESHNESS * 2).await;
    for round in 0..3 {
        tokio::time::sleep(autoscale_docker::DEFAULT_FRESHNESS * 2).await;
        let before = endpoint.requests();
        let reads = futures_join(scalers.iter().map(|s| s.status())).await;
        assert!(reads.iter().all(|r| r.is_ok()));
        let after = endpoint.requests();
        assert_eq!(
            (after.services - before.services, after.tasks - before.tasks),
            (1, 1),
            "round {round}: {} services read",
            scalers.len()
        );
    }
    let quiet = endpoint.requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        endpoint.requests(),
        quiet,
        "a quiet stream sends no request"
    );
    assert_eq!(quiet.event_disconnects, 0);
    drop(feeds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_service_is_refused() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let service = Service::create(&engine, "global", &["--mode", "global"]);
    let scaler = SwarmScaler::new(engine.cli(), &service.name).unwrap();
    let err = scaler.scale(3).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Rejected);
    assert!(err.to_string().contains("runs in global mode"), "{err}");
    assert_eq!(
        scaler.status().await.unwrap_err().kind(),
        FailureKind::Rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_swarm_service_is_refused_with_dockers_words() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let scaler = SwarmScaler::new(engine.cli(), unique("missing")).unwrap();
    let err = scaler.status().await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Rejected);
    let message = err.to_string();
    assert!(message.contains("no such service"), "{message}");
    assert!(message.contains("GET /services"), "{message}");
    assert!(message.contains(&engine.host), "{message}");
}

/// The engine's socket under an address of its own: an endpoint client no other test of this process shares,
/// so its snapshots and request counts are this test's alone. `n` tells the callers apart.
fn own_endpoint(engine: &Engine, n: usize) -> Engine {
    Engine {
        host: engine
            .host
            .replacen("unix:///", &format!("unix:///{}", "/".repeat(n)), 1),
        image: engine.image.clone(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Discover past the freshness of the endpoint's last snapshot, as the next resync would.
async fn rediscover(endpoint: &autoscale_docker::EngineEndpoint, kind: DiscoverKind) -> Discovery {
    tokio::time::sleep(DEFAULT_FRESHNESS * 2).await;
    endpoint
        .discover(kind, &Selector::default(), Duration::from_secs(30))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_swarm_services_are_discovered_changed_and_removed() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let engine = own_endpoint(&engine, 2);
    let good = Service::create(
        &engine,
        "disc-good",
        &[
            "--replicas",
            "2",
            "--label",
            "autoscale.enable=true",
            "--label",
            "autoscale.max=lots",
            "--label",
            "autoscale.interval=15s",
            "--label",
            "com.example.team=shop",
        ],
    );
    let global = Service::create(
        &engine,
        "disc-global",
        &["--mode", "global", "--label", "autoscale.enable=true"],
    );
    let off = Service::create(
        &engine,
        "disc-off",
        &["--replicas", "1", "--label", "autoscale.enable=false"],
    );
    let plain = Service::create(&engine, "disc-plain", &["--replicas", "1"]);

    // A round's status read, then discovery in the same second: no request of its own.
    let scaler = SwarmScaler::new(engine.cli(), &good.name).unwrap();
    assert_eq!(scaler.status().await.unwrap().current, 2);
    let endpoint = autoscale_docker::endpoint(&DockerEnv::new().host(&engine.host)).unwrap();
    assert!(Arc::ptr_eq(&endpoint, &scaler.endpoint().unwrap()));
    let before = endpoint.requests();
    let discovery = endpoint
        .discover(
            DiscoverKind::Swarm,
            &Selector::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        endpoint.requests(),
        before,
        "discovery reused the round's snapshot"
    );

    // Other tests' services may be listed too: look at ours only.
    let found = discovery
        .services
        .iter()
        .find(|s| s.name == good.name)
        .expect("the labelled service is discovered");
    assert_eq!(found.kind, DiscoverKind::Swarm);
    assert_eq!(found.replicas, 2);
    assert_eq!(found.project, None);
    // Passed on as they are, a bad value included: the daemon's configuration judges them.
    assert_eq!(
        found.labels,
        labels(&[
            ("autoscale.enable", "true"),
            ("autoscale.interval", "15s"),
            ("autoscale.max", "lots"),
        ])
    );
    let id = found.id.clone();
    assert!(
        engine
            .docker_ok(&["service", "inspect", "--format", "{{.ID}}", &good.name])
            .trim()
            == id
    );
    let skipped = discovery
        .skipped
        .iter()
        .find(|s| s.name == global.name)
        .expect("the global service is reported");
    assert!(skipped.reason.contains("global mode"), "{}", skipped.reason);
    let names: Vec<&String> = discovery
        .services
        .iter()
        .map(|s| &s.name)
        .chain(discovery.skipped.iter().map(|s| &s.name))
        .collect();
    assert!(
        !names.contains(&&off.name) && !names.contains(&&plain.name),
        "{names:?}"
    );

    // A label changed by hand shows at the next discovery; so does one opting in.
    engine.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "autoscale.max=9",
        &good.name,
    ]);
    engine.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "autoscale.enable=true",
        &off.name,
    ]);
    let discovery = rediscover(&endpoint, DiscoverKind::Swarm).await;
    let found = discovery.services.iter().find(|s| s.id == id).unwrap();
    assert_eq!(found.labels["autoscale.max"], "9");
    assert!(discovery.services.iter().any(|s| s.name == off.name));

    // Removed: gone from the next discovery.
    drop(good);
    let discovery = rediscover(&endpoint, DiscoverKind::Swarm).await;
    assert!(discovery.services.iter().all(|s| s.id != id));
}

/// Bring `project` up (or update it) with docker-compose, by hand.
fn compose_up(engine: &Engine, compose: &str, project: &Project<'_>) {
    let out = Command::new(compose)
        .args(["--project-name", &project.name, "--file"])
        .arg(&project.file)
        .args(["up", "-d"])
        .env("DOCKER_HOST", &engine.host)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("docker-compose runs");
    assert!(
        out.status.success(),
        "compose up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_compose_services_are_discovered_changed_and_removed() {
    let Some((engine, compose)) = compose_engine() else {
        return;
    };
    let engine = own_endpoint(&engine, 3);
    // `app` carries the labels; `other`, in the same project, none.
    let extra = |max: &str| {
        format!(
            r#"    labels:
      autoscale.enable: "true"
      autoscale.max: "{max}"
      autoscale.query: 'sum(rate(http_requests_total{{job="web"}}[1m]))'
      com.example.team: shop
  other:
    image: {image}
    network_mode: host
    command: ["sh", "-c", "{IDLE}"]
    stop_grace_period: 2s
"#,
            image = engine.image
        )
    };
    let project = Project::new(&engine, "disc", &extra("4"));
    compose_up(&engine, &compose, &project);

    // A round's status read, then discovery in the same second: no request of its own.
    let scaler = project.scaler(ComposeCommand::argv([&compose]));
    assert_eq!(scaler.status().await.unwrap().current, 1);
    let endpoint = scaler.endpoint().unwrap();
    let before = endpoint.requests();
    let discovery = endpoint
        .discover(
            DiscoverKind::Compose,
            &Selector::default(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        endpoint.requests(),
        before,
        "discovery reused the round's snapshot"
    );

    let id = format!("{}/app", project.name);
    let found = discovery
        .services
        .iter()
        .find(|s| s.id == id)
        .expect("the labelled compose service is discovered");
    assert_eq!(
        (
            found.kind,
            found.name.as_str(),
            found.project.as_deref(),
            found.replicas
        ),
        (DiscoverKind::Compose, "app", Some(project.name.as_str()), 1)
    );
    assert_eq!(
        found.labels,
        labels(&[
            ("autoscale.enable", "true"),
            ("autoscale.max", "4"),
            (
                "autoscale.query",
                r#"sum(rate(http_requests_total{job="web"}[1m]))"#
            ),
        ])
    );
    let dir = project.file.parent().unwrap();
    assert_eq!(found.working_dir.as_deref(), Some(dir));
    assert_eq!(found.config_files, vec![project.file.clone()]);
    let other = format!("{}/other", project.name);
    assert!(discovery.services.iter().all(|s| s.id != other));
    assert!(discovery.skipped.iter().all(|s| s.id != other));

    // The compose file's label changed and applied: Compose recreates the container, which carries it.
    std::fs::write(
        &project.file,
        std::fs::read_to_string(&project.file)
            .unwrap()
            .replace(r#"autoscale.max: "4""#, r#"autoscale.max: "7""#),
    )
    .unwrap();
    compose_up(&engine, &compose, &project);
    let discovery = rediscover(&endpoint, DiscoverKind::Compose).await;
    let found = discovery.services.iter().find(|s| s.id == id).unwrap();
    assert_eq!(found.labels["autoscale.max"], "7");

    // Stopped by hand: still discovered, with no replica running (the daemon's loop decides what to do).
    let mut stop = vec!["stop", "-t", "1"];
    let ids = project.container_ids();
    stop.extend(ids.iter().map(String::as_str));
    engine.docker_ok(&stop);
    let discovery = rediscover(&endpoint, DiscoverKind::Compose).await;
    let found = discovery.services.iter().find(|s| s.id == id).unwrap();
    assert_eq!(found.replicas, 0);

    // Removed: gone from the next discovery.
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    engine.docker_ok(&rm);
    let discovery = rediscover(&endpoint, DiscoverKind::Compose).await;
    assert!(discovery.services.iter().all(|s| s.id != id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_running_is_unavailable() {
    // Needs the docker CLI (installed with the engine), not a daemon.
    let Some((_engine, compose)) = compose_engine() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("unix://{}", dir.path().join("docker.sock").display());
    let cli = DockerCli::new()
        .env(DockerEnv::new().host(&dead))
        .timeout(Duration::from_secs(30));

    let swarm = SwarmScaler::new(cli.clone(), "web").unwrap();
    let compose = ComposeScaler::builder("dead", "web")
        .command(ComposeCommand::argv([&compose]))
        .docker(cli)
        .build()
        .unwrap();
    for (scaler, command) in [
        (&swarm as &dyn Scaler, "`connect`"),
        (&compose as &dyn Scaler, "`connect`"),
    ] {
        for err in [
            scaler.status().await.unwrap_err(),
            scaler.scale(2).await.unwrap_err(),
        ] {
            assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");
            let message = err.to_string();
            assert!(
                message.contains("the Docker daemon is not reachable"),
                "{message}"
            );
            assert!(message.contains(command), "{message}");
            assert!(message.contains(&dead), "{message}");
        }
    }
}

/// Whether `pid` is gone, or a zombie waiting for a parent other than us.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn pids_in(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_times_out() {
    // No engine needed: a socket that accepts connections and never answers.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hung.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let cli = DockerCli::new()
        .env(DockerEnv::new().host(format!("unix://{}", socket.display())))
        .timeout(Duration::from_secs(1));
    let swarm = SwarmScaler::new(cli.clone(), "web").unwrap();
    let compose = ComposeScaler::builder("hung", "web")
        .docker(cli)
        .build()
        .unwrap();
    for err in [
        swarm.status().await.unwrap_err(),
        swarm.scale(2).await.unwrap_err(),
        compose.status().await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), FailureKind::Timeout, "{err}");
        let message = err.to_string();
        assert!(message.contains("no answer within 1s"), "{message}");
        assert!(message.contains("hung.sock"), "{message}");
    }
    accepting.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_compose_times_out_and_leaves_no_process_behind() {
    // The status read goes to the engine; the "compose" is a script that hangs, given as the configured binary.
    let Some(engine) = engine() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let script = dir.path().join("docker");
    std::fs::write(
        &script,
        format!(
            "echo \"$$\" >> {pids}\nsleep 60 &\necho \"$!\" >> {pids}\nwait\n",
            pids = pids.display()
        ),
    )
    .unwrap();
    // Run through sh rather than exec'ing the fresh file: another test forking while it is being written
    // would make exec fail with ETXTBSY.
    let cli = engine.cli().timeout(Duration::from_secs(1));
    let compose = ComposeScaler::builder(unique("hung"), "web")
        .command(ComposeCommand::argv([Path::new("sh"), script.as_path()]))
        .docker(cli)
        .build()
        .unwrap();
    let err = compose.scale(2).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Timeout, "{err}");
    assert!(
        err.to_string()
            .contains("did not finish within 1s and was killed"),
        "{err}"
    );
    let started = pids_in(&pids);
    assert_eq!(started.len(), 2, "one call, two processes");
    // SIGKILL is delivered before the call returns; the kernel may take a moment to tear a process down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !started.iter().all(|&pid| is_dead(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alive: Vec<u32> = started.into_iter().filter(|&pid| !is_dead(pid)).collect();
    assert!(alive.is_empty(), "left behind: {alive:?}");
}

/// A control loop over `scaler` whose one check is always at its target: it changes nothing unless the
/// count leaves `[2, 5]`.
fn zero_outside_loop(
    scaler: std::sync::Arc<dyn Scaler>,
    on_zero: autoscale_core::controller::OnZeroOutside,
) -> autoscale_core::controller::ServiceLoop {
    use std::sync::Arc;

    use autoscale_core::controller::{CheckSource, ServiceLoop};
    use autoscale_core::policy::{TargetForm, TargetPolicy};
    use autoscale_core::testing::ScriptedSource;
    use autoscale_core::{Check, EngineConfig};

    let check = Check::new(
        "load",
        Arc::new(TargetPolicy::new(1.0, TargetForm::PerReplica).unwrap()),
    );
    ServiceLoop::builder("app", EngineConfig::builder(2, 5), scaler)
        .check(
            check,
            CheckSource::new(Arc::new(ScriptedSource::constant("load", 1.0)), "load"),
        )
        .on_zero_outside(on_zero)
        .build()
        .unwrap()
}

/// Compose containers all stopped by hand are left alone, and reported as paused by hand, until one is
/// started again outside; with `restore`, they are brought back to `min_replicas`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_containers_stopped_by_hand_are_left_alone_until_one_is_started() {
    use std::sync::Arc;

    use autoscale_core::controller::OnZeroOutside;
    use autoscale_core::engine::PausedBy;

    let Some((engine, compose)) = compose_engine() else {
        return;
    };
    let project = Project::new(&engine, "zero", "");
    let scaler = Arc::new(project.scaler(ComposeCommand::argv([&compose])));
    let mut service = zero_outside_loop(scaler.clone(), OnZeroOutside::Pause);

    // Never started: raised to min_replicas as always.
    let round = service.evaluate_once().await;
    assert_eq!(round.outside_change, None);
    assert_eq!(round.decision.unwrap().desired, 2);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(2)).await;
    service.evaluate_once().await;

    let mut stop = vec!["stop", "-t", "1"];
    let ids = project.container_ids();
    stop.extend(ids.iter().map(String::as_str));
    engine.docker_ok(&stop);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(0)).await;
    for _ in 0..3 {
        let round = service.evaluate_once().await;
        assert_eq!(round.decision.unwrap().desired, 0, "left at 0");
    }
    assert_eq!(
        service.state().pause.map(|p| p.by),
        Some(PausedBy::ZeroOutside)
    );
    assert_eq!(scaler.status().await.unwrap(), ReplicaStatus::all_ready(0));

    // One started by hand: autoscaling resumes, and raises it to min_replicas.
    engine.docker_ok(&["start", &ids[0]]);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(1)).await;
    let round = service.evaluate_once().await;
    assert_eq!(service.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 2);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(2)).await;

    // With restore, stopping them all is undone at the next round.
    let mut service = zero_outside_loop(scaler.clone(), OnZeroOutside::Restore);
    service.evaluate_once().await;
    let mut stop = vec!["stop", "-t", "1"];
    let ids = project.container_ids();
    stop.extend(ids.iter().map(String::as_str));
    engine.docker_ok(&stop);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(0)).await;
    let round = service.evaluate_once().await;
    assert_eq!(service.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 2);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(2)).await;
}

/// A Swarm service set to 0 replicas by hand is left alone until it is scaled above 0 outside, or resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_service_set_to_zero_by_hand_is_left_alone_until_resumed() {
    use std::sync::Arc;

    use autoscale_core::controller::OnZeroOutside;
    use autoscale_core::engine::PausedBy;

    let Some(engine) = swarm_engine() else {
        return;
    };
    let swarm = Service::create(&engine, "zero", &["--replicas", "2"]);
    let scaler = Arc::new(SwarmScaler::new(engine.cli(), &swarm.name).unwrap());
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(2)).await;
    let mut service = zero_outside_loop(scaler.clone(), OnZeroOutside::Pause);
    service.evaluate_once().await;

    engine.docker_ok(&["service", "scale", "--detach", &format!("{}=0", swarm.name)]);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(0)).await;
    for _ in 0..3 {
        let round = service.evaluate_once().await;
        assert_eq!(round.decision.unwrap().desired, 0, "left at 0");
    }
    assert_eq!(
        service.state().pause.map(|p| p.by),
        Some(PausedBy::ZeroOutside)
    );
    let replicas = |engine: &Engine| {
        engine
            .docker_ok(&[
                "service",
                "inspect",
                "--format",
                "{{.Spec.Mode.Replicated.Replicas}}",
                &swarm.name,
            ])
            .trim()
            .to_owned()
    };
    assert_eq!(replicas(&engine), "0");

    // Resumed by the operator: raised to min_replicas.
    assert!(service.resume().is_some());
    let round = service.evaluate_once().await;
    assert_eq!(round.decision.unwrap().desired, 2);
    assert_eq!(replicas(&engine), "2");

    // Set to 0 again, then to 3 by hand: it resumes and keeps the 3 (within bounds, at target).
    engine.docker_ok(&["service", "scale", "--detach", &format!("{}=0", swarm.name)]);
    wait_for(scaler.as_ref(), ReplicaStatus::all_ready(0)).await;
    service.evaluate_once().await;
    assert!(service.state().pause.is_some());
    engine.docker_ok(&["service", "scale", "--detach", &format!("{}=3", swarm.name)]);
    // The next round: past the freshness of the round's shared snapshot.
    tokio::time::sleep(autoscale_docker::DEFAULT_FRESHNESS * 2).await;
    let round = service.evaluate_once().await;
    assert_eq!(service.state().pause, None);
    assert_eq!(round.decision.unwrap().desired, 3);
}

/// A discovery's change feed hears, through the event stream, a labelled Swarm service created, relabelled
/// and removed; the discovery that follows each notification already sees the change (the event dropped the
/// snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_feed_hears_services_created_relabelled_and_removed() {
    let Some(engine) = swarm_engine() else {
        return;
    };
    let engine = own_endpoint(&engine, 4);
    let endpoint = autoscale_docker::endpoint(&DockerEnv::new().host(&engine.host)).unwrap();
    let mut feed = endpoint
        .discovery_changes(DiscoverKind::Swarm)
        .expect("a discovery feed");
    let connected = Instant::now();
    while endpoint.requests().event_connects == 0 {
        assert!(
            connected.elapsed() < Duration::from_secs(10),
            "the event stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let discover = || async {
        endpoint
            .discover(
                DiscoverKind::Swarm,
                &Selector::default(),
                Duration::from_secs(30),
            )
            .await
            .unwrap()
    };
    let heard = |what: &'static str, started: Instant| {
        eprintln!(
            "MEASURED discovery feed: {what} heard after {:?}",
            started.elapsed()
        );
    };

    let started = Instant::now();
    let service = Service::create(
        &engine,
        "disc-feed",
        &["--replicas", "1", "--label", "autoscale.enable=true"],
    );
    let within = Duration::from_secs(2);
    assert!(
        tokio::time::timeout(within, feed.changed())
            .await
            .unwrap_or(false),
        "no notification within {within:?} of the service's creation"
    );
    heard("a service created", started);
    feed.mark_seen();
    let found = discover().await;
    assert!(
        found.services.iter().any(|s| s.name == service.name),
        "{found:?}"
    );

    let started = Instant::now();
    engine.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "autoscale.max=3",
        &service.name,
    ]);
    assert!(
        tokio::time::timeout(within, feed.changed())
            .await
            .unwrap_or(false),
        "no notification within {within:?} of the relabelling"
    );
    heard("a label added", started);
    feed.mark_seen();
    let found = discover().await;
    let relabelled = found
        .services
        .iter()
        .find(|s| s.name == service.name)
        .expect("still discovered");
    assert_eq!(
        relabelled.labels.get("autoscale.max").map(String::as_str),
        Some("3")
    );

    let name = service.name.clone();
    let started = Instant::now();
    drop(service);
    assert!(
        tokio::time::timeout(within, feed.changed())
            .await
            .unwrap_or(false),
        "no notification within {within:?} of the removal"
    );
    heard("a service removed", started);
    let found = discover().await;
    assert!(found.services.iter().all(|s| s.name != name), "{found:?}");
}
