//! Overhead of the Docker scalers over the same docker commands run by hand with `std::process::Command`:
//! a status read and a scale action, for Compose and for Swarm, each reported as a ratio (goal: < 1.05).
//!
//! "By hand" runs exactly the commands the scaler runs, in the same order: for a Compose status read,
//! `docker ps` on the project's labels; for a Compose scale action, that `docker ps` (the scaler's no-op check)
//! and `docker-compose up -d --no-recreate --scale`; for Swarm, `docker service inspect` plus
//! `docker service ps` or `docker service scale --detach`. Scale actions alternate between 2 and 3 replicas so
//! that each one changes something. A fifth pair, `cli_run`, times `docker --version` (no daemon involved)
//! through `autoscale_exec::Invocation` and by hand: the cost of the process handling alone.
//!
//! Needs the real engine of `scripts/services start` (`AUTOSCALE_TEST_DOCKER_HOST`, plus
//! `AUTOSCALE_TEST_COMPOSE` for the Compose half); without it, it says so and measures nothing.
//! Run: `source /tmp/autoscale-test/env && cargo bench -p autoscale-benches --bench docker`.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use autoscale_core::{ScaleOutcome, Scaler};
use autoscale_docker::{ComposeCommand, ComposeScaler, DockerCli, DockerEnv, SwarmScaler};
use autoscale_exec::Invocation;
use criterion::{Criterion, SamplingMode};

/// Exits at once on SIGTERM: `wait` is interrupted by the signal, unlike a foreground `sleep`.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";
const PS_FORMAT: &str = r#"{"ID":{{json .ID}},"Names":{{json .Names}},"State":{{json .State}},"Status":{{json .Status}}}"#;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Paired timings: the scaler and by hand, alternately, so that the load of a shared machine weighs on both
/// alike. Criterion's own numbers measure one side after the other.
#[derive(Default)]
struct Pairs(RefCell<Vec<PairResult>>);

/// One pair's outcome: median times of both sides and the median of the per-round ratios.
struct PairResult {
    group: String,
    what: &'static str,
    scaler: Duration,
    hand: Duration,
    ratio: f64,
}

impl Pairs {
    fn measure(
        &self,
        group: &str,
        what: &'static str,
        rounds: usize,
        scaler: &dyn Fn(),
        hand: &dyn Fn(),
    ) {
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            f();
            start.elapsed()
        };
        let mut scaler_times = Vec::with_capacity(rounds);
        let mut hand_times = Vec::with_capacity(rounds);
        for round in 0..rounds {
            // Alternate which side goes first, too.
            if round % 2 == 0 {
                scaler_times.push(time(scaler));
                hand_times.push(time(hand));
            } else {
                hand_times.push(time(hand));
                scaler_times.push(time(scaler));
            }
        }
        // Each round's two runs saw about the same load: the median of the per-round ratios is the steadiest.
        let mut ratios: Vec<f64> = scaler_times
            .iter()
            .zip(&hand_times)
            .map(|(s, h)| s.as_secs_f64() / h.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        self.0.borrow_mut().push(PairResult {
            group: group.to_owned(),
            what,
            scaler: median(scaler_times),
            hand: median(hand_times),
            ratio,
        });
    }

    fn report(&self) {
        println!(
            "\nscaler / by hand, interleaved runs: median times, and the median of per-round ratios (goal < 1.05):"
        );
        for PairResult {
            group,
            what,
            scaler,
            hand,
            ratio,
        } in self.0.borrow().iter()
        {
            println!(
                "  {group:<15} {what:<17} scaler {:>9.2} ms   by hand {:>9.2} ms   ratio {ratio:.3}",
                scaler.as_secs_f64() * 1e3,
                hand.as_secs_f64() * 1e3,
            );
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Run docker by hand, failing loudly (a failed command would make the comparison meaningless).
fn by_hand(program: &str, args: &[&str], host: &str) {
    let out = Command::new(program)
        .args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("the command runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct ComposeFixture {
    host: String,
    compose: String,
    project: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl ComposeFixture {
    fn new(host: &str, compose: &str, image: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(
            &file,
            format!(
                "version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    network_mode: host\n    \
                 command: [\"sh\", \"-c\", \"{idle}\"]\n    stop_grace_period: 2s\n",
                // Compose interpolates `$`: `$$` is a literal one.
                idle = IDLE.replace('$', "$$"),
            ),
        )
        .expect("the compose file is written");
        ComposeFixture {
            host: host.to_owned(),
            compose: compose.to_owned(),
            project: format!("asdk-bench-{}", std::process::id()),
            file,
            _dir: dir,
        }
    }

    fn up_args(&self, replicas: u32) -> Vec<String> {
        [
            "--project-name",
            &self.project,
            "--file",
            &self.file.to_string_lossy(),
            "up",
            "-d",
            "--no-recreate",
            "--scale",
            &format!("app={replicas}"),
            "app",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn ps_args(&self) -> Vec<String> {
        [
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.service=app",
            "--filter",
            "label=com.docker.compose.oneoff=False",
            "--format",
            PS_FORMAT,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for ComposeFixture {
    fn drop(&mut self) {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .env("DOCKER_HOST", &self.host)
            .output();
        if let Ok(out) = out {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .env("DOCKER_HOST", &self.host)
                    .output();
            }
        }
    }
}

struct SwarmFixture {
    host: String,
    service: String,
}

impl SwarmFixture {
    fn new(host: &str, image: &str) -> Self {
        let service = format!("asdk-bench-{}", std::process::id());
        by_hand(
            "docker",
            &[
                "service",
                "create",
                "--detach",
                "--quiet",
                "--name",
                &service,
                "--network",
                "host",
                "--replicas",
                "2",
                "--stop-grace-period",
                "1s",
                image,
                "sh",
                "-c",
                IDLE,
            ],
            host,
        );
        SwarmFixture {
            host: host.to_owned(),
            service,
        }
    }
}

impl Drop for SwarmFixture {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.service])
            .env("DOCKER_HOST", &self.host)
            .output();
    }
}

/// The next count of an alternating 2 <-> 3 scale action.
fn flip(current: &RefCell<u32>) -> u32 {
    let mut current = current.borrow_mut();
    *current = if *current == 2 { 3 } else { 2 };
    *current
}

fn main() {
    let Some(host) = env("AUTOSCALE_TEST_DOCKER_HOST") else {
        eprintln!(
            "docker bench SKIPPED: no Docker engine (AUTOSCALE_TEST_DOCKER_HOST is not set). \
             Run scripts/services start and source its env file."
        );
        return;
    };
    let image = env("AUTOSCALE_TEST_BUSYBOX_IMAGE").unwrap_or_else(|| "local/busybox:1".to_owned());
    // `cargo test --all-targets` runs this once in test mode: check that it works, but print no ratios.
    let bench_mode = std::env::args().any(|a| a == "--bench");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cli = DockerCli::new()
        .env(DockerEnv::new().host(&host))
        .timeout(Duration::from_secs(120));
    let pairs = Pairs::default();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    // Criterion times each side of a pair (the scaler, the same commands by hand); then, in bench mode,
    // `rounds` interleaved runs give the ratio.
    let measure = |c: &mut Criterion,
                   (group, what): (&str, &'static str),
                   rounds: usize,
                   scaler: &dyn Fn(),
                   hand: &dyn Fn()| {
        let mut g = c.benchmark_group(group);
        if rounds < 30 {
            // Slow actions: one run per sample.
            g.sampling_mode(SamplingMode::Flat);
        }
        g.bench_function("scaler", |b| b.iter(scaler));
        g.bench_function("by_hand", |b| b.iter(hand));
        g.finish();
        if bench_mode {
            pairs.measure(group, what, rounds, scaler, hand);
        }
    };

    // The process handling alone (spawn, pipes, process group, reaping), without the daemon's variance:
    // `docker --version` answers without contacting it.
    let version = Invocation::new("docker")
        .arg("--version")
        .timeout(Duration::from_secs(60));
    measure(
        &mut c,
        ("cli_run", "docker --version"),
        60,
        &|| {
            let out = rt.block_on(version.run()).expect("docker --version runs");
            assert!(out.success());
        },
        &|| by_hand("docker", &["--version"], &host),
    );

    match env("AUTOSCALE_TEST_COMPOSE") {
        None => eprintln!(
            "docker bench: the Compose half is SKIPPED (AUTOSCALE_TEST_COMPOSE is not set)"
        ),
        Some(compose) => {
            let fixture = ComposeFixture::new(&host, &compose, &image);
            let scaler = ComposeScaler::builder(&fixture.project, "app")
                .file(&fixture.file)
                .command(ComposeCommand::argv([&compose]))
                .docker(cli.clone())
                .build()
                .expect("a valid compose scaler");
            by_hand(
                &compose,
                &fixture
                    .up_args(2)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                &host,
            );
            let ps_args = fixture.ps_args();
            let ps: Vec<&str> = ps_args.iter().map(String::as_str).collect();

            measure(
                &mut c,
                ("compose_status", "status read"),
                60,
                &|| {
                    rt.block_on(scaler.status()).expect("status");
                },
                &|| by_hand("docker", &ps, &host),
            );
            let current = RefCell::new(2);
            measure(
                &mut c,
                ("compose_scale", "scale action"),
                20,
                &|| {
                    let n = flip(&current);
                    assert_eq!(
                        rt.block_on(scaler.scale(n)).expect("scale"),
                        ScaleOutcome::Scaled
                    );
                },
                &|| {
                    let n = flip(&current);
                    by_hand("docker", &ps, &host);
                    let up = fixture.up_args(n);
                    by_hand(
                        &fixture.compose,
                        &up.iter().map(String::as_str).collect::<Vec<_>>(),
                        &host,
                    );
                },
            );
        }
    }

    let fixture = SwarmFixture::new(&host, &image);
    let scaler = SwarmScaler::new(cli, &fixture.service).expect("a valid swarm scaler");
    let service = fixture.service.as_str();
    let inspect = ["service", "inspect", service];
    let tasks = [
        "service",
        "ps",
        "--no-resolve",
        "--filter",
        "desired-state=running",
        "--format",
        "{{json .}}",
        service,
    ];
    measure(
        &mut c,
        ("swarm_status", "status read"),
        60,
        &|| {
            rt.block_on(scaler.status()).expect("status");
        },
        &|| {
            by_hand("docker", &inspect, &host);
            by_hand("docker", &tasks, &host);
        },
    );
    let current = RefCell::new(2);
    measure(
        &mut c,
        ("swarm_scale", "scale action"),
        60,
        &|| {
            let n = flip(&current);
            assert_eq!(
                rt.block_on(scaler.scale(n)).expect("scale"),
                ScaleOutcome::Scaled
            );
        },
        &|| {
            let n = flip(&current);
            by_hand("docker", &inspect, &host);
            let target = format!("{service}={n}");
            by_hand("docker", &["service", "scale", &target, "--detach"], &host);
        },
    );
    c.final_summary();
    if bench_mode {
        pairs.report();
    }
}
