//! What a scale action costs through Ansible, against the Docker Compose scaler and against
//! `docker-compose up -d --no-recreate --scale` run by hand, on the same compose project:
//!
//! - `by_hand`: the compose command alone;
//! - `compose_scaler`: `ComposeScaler::scale` (its status read, then the compose command);
//! - `ansible_playbook`: `AnsibleScaler::run_scale`, one run of the shipped `scale.yml` (no status read);
//! - `ansible_compose_status`: `AnsibleScaler::scale` reading the status through the Compose scaler;
//! - `ansible_status_playbook`: `AnsibleScaler::scale` reading the status through the shipped `status.yml`.
//!
//! and a status read: `ComposeScaler::status` against the shipped `status.yml`. Scale actions alternate
//! between 2 and 3 replicas so that each one changes something.
//!
//! Needs the services of `scripts/services start` (`AUTOSCALE_TEST_DOCKER_HOST`, `AUTOSCALE_TEST_COMPOSE`,
//! `AUTOSCALE_TEST_ANSIBLE_PLAYBOOK`, `AUTOSCALE_TEST_ANSIBLE_PYTHON`); without them it says so and measures
//! nothing. Run: `source /tmp/autoscale-test/env && cargo bench -p autoscale-benches --bench ansible`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscale_ansible::{AnsibleScaler, AnsibleScalerBuilder, StatusPlaybook, StatusSource};
use autoscale_core::{ScaleOutcome, Scaler};
use autoscale_docker::{ComposeCommand, ComposeScaler, DockerCli, DockerEnv};
use criterion::{Criterion, SamplingMode};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

struct Services {
    docker_host: String,
    compose: String,
    ansible_playbook: String,
    python: String,
    image: String,
}

impl Services {
    fn from_env() -> Option<Services> {
        let found = Services {
            docker_host: env("AUTOSCALE_TEST_DOCKER_HOST")?,
            compose: env("AUTOSCALE_TEST_COMPOSE")?,
            ansible_playbook: env("AUTOSCALE_TEST_ANSIBLE_PLAYBOOK")?,
            python: env("AUTOSCALE_TEST_ANSIBLE_PYTHON")?,
            image: env("AUTOSCALE_TEST_BUSYBOX_IMAGE").unwrap_or_else(|| "local/busybox:1".into()),
        };
        Some(found)
    }
}

/// A compose project of one service, "web", taken down when dropped.
struct Project {
    name: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Project {
    fn new(services: &Services) -> Project {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(
            &file,
            format!(
                "version: \"2.4\"\nservices:\n  web:\n    image: {}\n    network_mode: host\n    \
                 command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done\"]\n",
                services.image
            ),
        )
        .expect("writing the compose file");
        Project {
            name: format!("asan-bench-{}", std::process::id()),
            file,
            _dir: dir,
        }
    }

    fn compose(&self, services: &Services, args: &[&str]) {
        let out = Command::new(&services.compose)
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(args)
            .env("DOCKER_HOST", &services.docker_host)
            .output()
            .expect("running docker-compose");
        assert!(out.status.success(), "docker-compose {args:?}: {out:?}");
    }

    fn scale_by_hand(&self, services: &Services, replicas: u32) {
        let scale = format!("web={replicas}");
        self.compose(
            services,
            &["up", "-d", "--no-recreate", "--scale", &scale, "web"],
        );
    }
}

/// The next count of an alternating 2 <-> 3 scale action.
fn flip(current: &RefCell<u32>) -> u32 {
    let mut current = current.borrow_mut();
    *current = if *current == 2 { 3 } else { 2 };
    *current
}

/// A named way of doing the measured action.
type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let Some(services) = Services::from_env() else {
        eprintln!(
            "ansible bench SKIPPED: it needs a Docker engine, docker-compose and ansible-playbook \
             (AUTOSCALE_TEST_DOCKER_HOST, AUTOSCALE_TEST_COMPOSE, AUTOSCALE_TEST_ANSIBLE_PLAYBOOK, \
             AUTOSCALE_TEST_ANSIBLE_PYTHON). Run scripts/services start and source its env file."
        );
        return;
    };
    // `cargo test --all-targets` runs this once in test mode: check that it works, but print no summary.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ansible");
    let project = Project::new(&services);
    let down = scopeguard(|| {
        let _ = Command::new(&services.compose)
            .args(["-p", &project.name, "-f"])
            .arg(&project.file)
            .args(["down", "-t", "1"])
            .env("DOCKER_HOST", &services.docker_host)
            .output();
    });
    project.scale_by_hand(&services, 2);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let compose_scaler: Arc<ComposeScaler> = Arc::new(
        ComposeScaler::builder(&project.name, "web")
            .file(&project.file)
            .command(ComposeCommand::argv([&services.compose]))
            .docker(
                DockerCli::new()
                    .env(DockerEnv::new().host(&services.docker_host))
                    .timeout(Duration::from_secs(120)),
            )
            .build()
            .expect("a valid compose scaler"),
    );
    let ansible = |status: StatusSource| -> AnsibleScalerBuilder {
        AnsibleScaler::builder("web", examples.join("scale.yml"), status)
            .inventory(examples.join("inventory.ini").display().to_string())
            .ansible_playbook(&services.ansible_playbook)
            .extra_var("ansible_python_interpreter", services.python.as_str())
            .extra_var("compose_project", project.name.as_str())
            .extra_var("compose_file", project.file.display().to_string())
            .extra_var("compose_command", vec![services.compose.clone()])
            .env("DOCKER_HOST", services.docker_host.as_str())
            .timeout(Duration::from_secs(120))
    };
    let with_playbook_status = ansible(StatusSource::Playbook(StatusPlaybook::new(
        examples.join("status.yml"),
    )))
    .build()
    .expect("a valid ansible scaler");
    let with_compose_status = ansible(StatusSource::Scaler(compose_scaler.clone()))
        .build()
        .expect("a valid ansible scaler");

    let current = RefCell::new(2);
    let scale = |scaler: &dyn Scaler| {
        let n = flip(&current);
        assert_eq!(
            rt.block_on(scaler.scale(n)).expect("scale"),
            ScaleOutcome::Scaled
        );
    };
    let variants: Vec<Variant<'_>> = vec![
        (
            "by_hand",
            Box::new(|| project.scale_by_hand(&services, flip(&current))),
        ),
        (
            "compose_scaler",
            Box::new(|| scale(compose_scaler.as_ref())),
        ),
        (
            "ansible_playbook",
            Box::new(|| {
                let n = flip(&current);
                let previous = if n == 2 { 3 } else { 2 };
                rt.block_on(with_playbook_status.run_scale(n, previous))
                    .expect("scale playbook");
            }),
        ),
        (
            "ansible_compose_status",
            Box::new(|| scale(&with_compose_status)),
        ),
        (
            "ansible_status_playbook",
            Box::new(|| scale(&with_playbook_status)),
        ),
    ];
    let status_variants: Vec<Variant<'_>> = vec![
        (
            "compose_scaler",
            Box::new(|| {
                rt.block_on(compose_scaler.status()).expect("status");
            }),
        ),
        (
            "status_playbook",
            Box::new(|| {
                rt.block_on(with_playbook_status.status()).expect("status");
            }),
        ),
    ];

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    for (group, list) in [
        ("ansible_scale_action", &variants),
        ("ansible_status_read", &status_variants),
    ] {
        let mut g = c.benchmark_group(group);
        // Each action takes seconds: one run per sample.
        g.sampling_mode(SamplingMode::Flat);
        for (name, f) in list {
            g.bench_function(*name, |b| b.iter(f));
        }
        g.finish();
    }

    if bench_mode {
        // Criterion measures one variant after the other; on a shared machine, interleaved rounds weigh the
        // load on all of them alike. Medians of ROUNDS rounds.
        const ROUNDS: usize = 7;
        for (group, list) in [
            ("scale action", &variants),
            ("status read", &status_variants),
        ] {
            let mut times: Vec<Vec<Duration>> = vec![Vec::new(); list.len()];
            for round in 0..ROUNDS {
                for i in 0..list.len() {
                    // Rotate the order each round, too.
                    let i = (i + round) % list.len();
                    let start = Instant::now();
                    (list[i].1)();
                    times[i].push(start.elapsed());
                }
            }
            println!("\n{group}, medians of {ROUNDS} interleaved rounds:");
            let base = median(times[0].clone());
            for ((name, _), t) in list.iter().zip(times) {
                let t = median(t);
                println!(
                    "  {name:<24} {:>9.0} ms   x{:.2} of {}",
                    t.as_secs_f64() * 1e3,
                    t.as_secs_f64() / base.as_secs_f64(),
                    list[0].0
                );
            }
        }
    }
    drop(down);
}

/// Runs `f` when dropped, so that the compose project goes away even when a measurement panics.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
