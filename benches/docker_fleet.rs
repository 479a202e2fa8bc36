//! The daemon against a fleet of real Docker services: N Compose services and N Swarm services (one replica
//! each) on the test dockerd, all evaluated at a 10 s interval by the built `autoscale` binary, and, in the
//! same run, one round of the status reads the Docker CLI path ran for the same services.
//!
//! Prints, for the daemon: the Engine API requests per round, its CPU per service-round (everything a round does: the status read from the
//! endpoint's shared snapshot, the check, the engine, metrics and history), its RSS, the rounds completed
//! against the rounds due, and the rounds slower than their interval. For the status reads alone: the CPU
//! per service-round of the same scalers in this process, every read of a round at once. For the CLI path: the CPU of the
//! `docker` processes one status read ran (`docker ps` on the compose labels; `docker service inspect` plus
//! `docker service ps`), per service-round, and how long a round of all of them took one after another.
//!
//! Run: `scripts/bench-docker [SERVICES_PER_KIND] [SECONDS]` (defaults 200 and 60), which starts the services
//! and builds the binary; by hand, with the variables of `scripts/services start` sourced:
//! `cargo run --release -p autoscale-benches --example docker_fleet -- 200 60`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 10 & wait $!; done";
const PS_FORMAT: &str = r#"{"ID":{{json .ID}},"Names":{{json .Names}},"State":{{json .State}},"Status":{{json .Status}}}"#;
const INTERVAL: Duration = Duration::from_secs(10);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn docker(host: &str) -> Command {
    let mut command = Command::new("docker");
    command.env("DOCKER_HOST", host);
    command
}

fn run_ok(mut command: Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This process's children's CPU time so far (the processes it waited for), from /proc/self/stat.
fn children_cpu() -> Duration {
    cpu_fields("/proc/self/stat", 16, 17)
}

/// A process's own CPU time (utime + stime).
fn process_cpu(pid: u32) -> Duration {
    cpu_fields(&format!("/proc/{pid}/stat"), 14, 15)
}

/// The sum of fields `a` and `b` (numbered from 1, as in proc(5)) of a stat file, in clock ticks, as time.
fn cpu_fields(path: &str, a: usize, b: usize) -> Duration {
    let stat = std::fs::read_to_string(path).expect("reading /proc");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let ticks: u64 = fields[a - 3].parse::<u64>().unwrap() + fields[b - 3].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

/// Compose services per project: compose v1 stalls when one `up` starts a few hundred services at once.
const PER_PROJECT: usize = 5;

/// One compose service of the fleet.
struct ComposeService {
    project: String,
    service: String,
    file: PathBuf,
}

/// The fleet: N compose services (in projects of [`PER_PROJECT`]) and N Swarm services; removed on drop.
struct Fleet {
    host: String,
    compose: String,
    projects: Vec<(String, PathBuf)>,
    services: Vec<ComposeService>,
    swarm: Vec<String>,
}

impl Fleet {
    fn create(host: &str, compose: &str, image: &str, n: usize, dir: &Path) -> Fleet {
        let prefix = format!("fleet{}", std::process::id());
        let mut fleet = Fleet {
            host: host.to_owned(),
            compose: compose.to_owned(),
            projects: Vec::new(),
            services: Vec::new(),
            swarm: Vec::new(),
        };
        let started = Instant::now();
        for (group, first) in (0..n).step_by(PER_PROJECT).enumerate() {
            let project = format!("{prefix}g{group:03}");
            let file = dir.join(format!("{project}.yml"));
            let mut yaml = String::from("services:\n");
            for i in first..n.min(first + PER_PROJECT) {
                let _ = write!(
                    yaml,
                    "  s{i:03}:\n    image: {image}\n    network_mode: host\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"{}\"]\n",
                    // `$` is Compose's interpolation: `$$` is a literal one.
                    IDLE.replace('$', "$$")
                );
                fleet.services.push(ComposeService {
                    project: project.clone(),
                    service: format!("s{i:03}"),
                    file: file.clone(),
                });
            }
            std::fs::write(&file, yaml).unwrap();
            fleet.projects.push((project.clone(), file.clone()));
            let mut up = Command::new(compose);
            up.args(["-p", &project, "-f"])
                .arg(&file)
                .args(["up", "-d"])
                .env("DOCKER_HOST", host);
            run_ok(up, "compose up");
        }
        eprintln!("{n} compose services up in {:.0?}", started.elapsed());
        let started = Instant::now();
        for i in 0..n {
            let name = format!("{prefix}-w{i:03}");
            let mut create = docker(host);
            create.args([
                "service",
                "create",
                "--detach",
                "--quiet",
                "--name",
                &name,
                "--network",
                "host",
                "--stop-grace-period",
                "1s",
                image,
                "sh",
                "-c",
                IDLE,
            ]);
            run_ok(create, "docker service create");
            fleet.swarm.push(name);
        }
        // Every task running before the daemon starts.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let mut ls = docker(host);
            ls.args([
                "service",
                "ls",
                "--filter",
                &format!("name={prefix}-w"),
                "--format",
                "{{.Replicas}}",
            ]);
            let out = run_ok(ls, "docker service ls");
            let ready = out.lines().filter(|l| l.starts_with("1/1")).count();
            if ready == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {ready} of {n} swarm services running after 10 minutes"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        eprintln!("{n} swarm services running in {:.0?}", started.elapsed());
        fleet
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let mut rm = docker(&self.host);
        rm.arg("service").arg("rm").args(&self.swarm);
        let _ = rm.stdout(Stdio::null()).stderr(Stdio::null()).status();
        for (project, file) in &self.projects {
            let _ = Command::new(&self.compose)
                .args(["-p", project, "-f"])
                .arg(file)
                .args(["down", "-t", "1"])
                .env("DOCKER_HOST", &self.host)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Stops the daemon whatever happens.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn config(prometheus: &str, fleet: &Fleet, dir: &Path, listen: SocketAddr) -> PathBuf {
    let mut toml = format!(
        "[prometheus]\nurl = \"{prometheus}\"\n\n[daemon]\nlisten = \"{listen}\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    );
    // A demand of 1 against a target of 1 per replica: every round decides 1, and nothing scales.
    let check = r#"check = [{ name = "demand", query = "vector(1)", policy = { kind = "target", target = 1, per = "total" } }]"#;
    for c in &fleet.services {
        let _ = write!(
            toml,
            "\n[[service]]\nname = \"{}-{}\"\ninterval = \"10s\"\nscaler = {{ kind = \"compose\", project = \"{}\", service = \"{}\", file = \"{}\" }}\n{check}\n",
            c.project,
            c.service,
            c.project,
            c.service,
            c.file.display()
        );
    }
    for service in &fleet.swarm {
        let _ = write!(
            toml,
            "\n[[service]]\nname = \"{service}\"\ninterval = \"10s\"\nscaler = {{ kind = \"swarm\", service = \"{service}\" }}\n{check}\n"
        );
    }
    let path = dir.join("fleet.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Rounds per service (`autoscale_evaluations` summed over outcomes), all rounds, and the rounds longer than
/// 8.2 s (the histogram's last bucket under the 10 s interval), from /metrics.
fn rounds(metrics: &str) -> (BTreeMap<String, f64>, f64, f64) {
    let mut per_service = BTreeMap::new();
    let (mut count, mut within) = (0.0, 0.0);
    let service_of = |line: &str| {
        let start = line.find("service=\"")? + 9;
        let end = start + line[start..].find('"')?;
        Some(line[start..end].to_owned())
    };
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if line.starts_with("autoscale_evaluations_total{")
            && let Some(service) = service_of(line)
        {
            *per_service.entry(service).or_insert(0.0) += value;
        } else if line.starts_with("autoscale_evaluation_duration_seconds_count") {
            count += value;
        } else if line.starts_with("autoscale_evaluation_duration_seconds_bucket{")
            && line.contains("le=\"8.192\"")
        {
            within += value;
        }
    }
    (per_service, count, count - within)
}

/// `autoscale_docker_api_requests_total` summed by kind, from /metrics.
fn requests(metrics: &str) -> BTreeMap<String, f64> {
    let mut by_kind = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("autoscale_docker_api_requests_total{"))
    {
        let kind = line
            .split_once("kind=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(kind, _)| kind.to_owned());
        let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(kind), Some(value)) = (kind, value) {
            *by_kind.entry(kind).or_insert(0.0) += value;
        }
    }
    by_kind
}

fn main() {
    let (Some(host), Some(compose), Some(image), Some(prometheus)) = (
        env("AUTOSCALE_TEST_DOCKER_HOST"),
        env("AUTOSCALE_TEST_COMPOSE"),
        env("AUTOSCALE_TEST_BUSYBOX_IMAGE"),
        env("AUTOSCALE_TEST_PROMETHEUS_URL"),
    ) else {
        eprintln!(
            "SKIPPED: the AUTOSCALE_TEST_* variables of `scripts/services start` are not set; nothing measured"
        );
        return;
    };
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let binary = env("AUTOSCALE_BIN").map_or_else(
        || {
            let target = env("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("release/autoscale")
        },
        PathBuf::from,
    );
    assert!(
        binary.exists(),
        "{} is missing: cargo build --release -p autoscale-bin",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::create(&host, &compose, &image, n, dir.path());

    // The daemon.
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = config(&prometheus, &fleet, dir.path(), listen);
    let daemon = Daemon(
        Command::new(&binary)
            .args(["run", "--config"])
            .arg(&config)
            .env("DOCKER_HOST", &host)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting autoscale"),
    );
    let pid = daemon.0.id();
    // One whole interval for the first rounds (and the compose CLI detection) before measuring.
    std::thread::sleep(INTERVAL + Duration::from_secs(2));
    let before = get(listen, "/metrics").expect("the daemon's /metrics");
    let (rounds_before, _, _) = rounds(&before);
    let (own_before, children_before) = (process_cpu(pid), children_cpu_of(pid));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let own = process_cpu(pid) - own_before;
    let children = children_cpu_of(pid) - children_before;
    let cpu = own + children;
    let elapsed = started.elapsed();
    let rss = rss_mib(pid);
    let after = get(listen, "/metrics").expect("the daemon's /metrics");
    let (rounds_after, all_rounds, slow) = rounds(&after);
    drop(daemon);
    let (requests_before, requests_after) = (requests(&before), requests(&after));
    let periods = elapsed.as_secs_f64() / INTERVAL.as_secs_f64();
    let per_round: Vec<String> = requests_after
        .iter()
        .map(|(kind, after)| {
            let before = requests_before.get(kind).copied().unwrap_or(0.0);
            format!("{kind} {:.2}", (after - before) / periods)
        })
        .collect();
    println!(
        "daemon: Engine API requests per 10 s round, one endpoint: {}",
        per_round.join(", ")
    );
    let services = 2 * n;
    let done: f64 = rounds_after.values().sum::<f64>() - rounds_before.values().sum::<f64>();
    let due = services as f64 * elapsed.as_secs_f64() / INTERVAL.as_secs_f64();
    let behind = rounds_after
        .iter()
        .filter(|(service, after)| {
            let before = rounds_before.get(*service).copied().unwrap_or(0.0);
            *after - before + 1.0 < elapsed.as_secs_f64() / INTERVAL.as_secs_f64()
        })
        .count();
    println!(
        "daemon: {services} services ({n} compose + {n} swarm) at 10 s for {:.0} s: {done:.0} rounds of {due:.0} due \
         ({:.1} %), {behind} services behind, {slow:.0} of {all_rounds:.0} rounds over 8.2 s; CPU {:.2} s = {:.3} ms \
         per service-round ({:.1} % of one core; {:.2} s of it in programs the daemon ran); RSS {rss:.1} MiB",
        elapsed.as_secs_f64(),
        100.0 * done / due,
        cpu.as_secs_f64(),
        1000.0 * cpu.as_secs_f64() / done,
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        children.as_secs_f64(),
    );
    let _ = own;

    // The status reads alone, in this process through the library: every service's read of a round at once,
    // as the daemon's loops do, rounds 1.5 s apart so that each fetches its own snapshot.
    let reads = status_reads(&host, &fleet, 10);
    println!(
        "status reads alone (library, {services} scalers, 10 rounds): {:.3} ms CPU per service-round",
        1000.0 * reads.as_secs_f64() / (10 * services) as f64
    );

    // The CLI path: one round of the status reads it ran, one after another.
    let cpu_before = children_cpu();
    let started = Instant::now();
    for c in &fleet.services {
        let mut ps = docker(&host);
        ps.args([
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", c.project),
            "--filter",
            &format!("label=com.docker.compose.service={}", c.service),
            "--filter",
            "label=com.docker.compose.oneoff=False",
            "--format",
            PS_FORMAT,
        ]);
        run_ok(ps, "docker ps");
    }
    let compose_cpu = children_cpu() - cpu_before;
    let compose_wall = started.elapsed();
    let cpu_before = children_cpu();
    let started = Instant::now();
    for service in &fleet.swarm {
        let mut inspect = docker(&host);
        inspect.args(["service", "inspect", service]);
        run_ok(inspect, "docker service inspect");
        let mut tasks = docker(&host);
        tasks.args([
            "service",
            "ps",
            "--no-resolve",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
            service,
        ]);
        run_ok(tasks, "docker service ps");
    }
    let swarm_cpu = children_cpu() - cpu_before;
    let swarm_wall = started.elapsed();
    println!(
        "CLI path, one round of status reads: compose {:.1} ms CPU per service-round ({:.1} s for {n} one after \
         another), swarm {:.1} ms ({:.1} s); {:.1} s of CPU per round of {services} services against a 10 s interval",
        1000.0 * compose_cpu.as_secs_f64() / n as f64,
        compose_wall.as_secs_f64(),
        1000.0 * swarm_cpu.as_secs_f64() / n as f64,
        swarm_wall.as_secs_f64(),
        (compose_cpu + swarm_cpu).as_secs_f64(),
    );
}

/// This process's CPU over `rounds` rounds of every scaler's status read at once.
fn status_reads(host: &str, fleet: &Fleet, rounds: usize) -> Duration {
    use std::sync::Arc;

    use autoscale_core::Scaler;
    use autoscale_docker::{ComposeScaler, DockerCli, DockerEnv, SwarmScaler};

    let cli = DockerCli::new().env(DockerEnv::new().host(host));
    let mut scalers: Vec<Arc<dyn Scaler>> = Vec::new();
    for c in &fleet.services {
        let scaler = ComposeScaler::builder(c.project.as_str(), c.service.as_str())
            .file(&c.file)
            .docker(cli.clone())
            .build()
            .expect("a compose scaler");
        scalers.push(Arc::new(scaler));
    }
    for name in &fleet.swarm {
        scalers.push(Arc::new(
            SwarmScaler::new(cli.clone(), name.as_str()).expect("a swarm scaler"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let round = || async {
        let mut reads = tokio::task::JoinSet::new();
        for scaler in &scalers {
            let scaler = Arc::clone(scaler);
            reads.spawn(async move { scaler.status().await });
        }
        while let Some(read) = reads.join_next().await {
            read.expect("a read task").expect("a status read");
        }
    };
    runtime.block_on(async {
        // Connecting and negotiating the API version are once per endpoint, not per round.
        round().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut cpu = Duration::ZERO;
        for _ in 0..rounds {
            let before = process_cpu(std::process::id());
            round().await;
            cpu += process_cpu(std::process::id()) - before;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        cpu
    })
}

/// The CPU of the processes `pid` waited for (none are expected: the Engine API path runs no program).
fn children_cpu_of(pid: u32) -> Duration {
    cpu_fields(&format!("/proc/{pid}/stat"), 16, 17)
}
