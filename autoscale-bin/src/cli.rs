//! The command line: what each subcommand and option means, in the words `--help` prints.

use std::path::PathBuf;
use std::time::Duration;

use autoscale_core::Replicas;
use autoscale_core::sim::{MetricMode, Pattern};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watches Prometheus metrics and sets the replica count of Docker Compose services, Docker Swarm services or
/// anything an Ansible playbook can reach.
#[derive(Debug, Parser)]
#[command(name = "autoscale", version, propagate_version = true)]
#[command(
    after_help = "Try `autoscale simulate` to see a policy react to a flash crowd; no service is needed."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration and print it resolved: every default filled in, secrets redacted.
    ///
    /// Exits with 0 when the configuration is valid and 2 when it is not. Without --config, the original
    /// scaler's environment variables (SERVICE_NAME, SCALE_UP_THRESHOLD, METRIC_QUERY, ...) are checked.
    /// PROMETHEUS_URL, PROMETHEUS_URL_FILE, LOG_LEVEL, DRY_RUN, AUTOSCALE_LISTEN and STATE_DIR override the
    /// file.
    Check(CheckArgs),
    /// Replay a load trace, or a built-in pattern, through a policy: what would it have done?
    ///
    /// Each tick, the real decision engine sees the utilization of a modelled service (load over the capacity
    /// of its ready replicas) and decides; new replicas become ready after --startup-delay. The summary gives
    /// the SPEC elasticity metrics (under- and over-provisioning accuracy and timeshare, instability, jitter),
    /// the replica-seconds paid, the scaling actions and the seconds in which the load was not served.
    ///
    /// Without --config the built-in service is `webapp`: min 1, max 10, interval 10s, one target check of 0.6
    /// per replica with Kubernetes' default behavior (the `hpa` reference). Without --trace it replays the
    /// `spike` pattern.
    #[command(after_long_help = SIMULATE_EXAMPLES)]
    Simulate(Box<SimulateArgs>),
    /// Run the daemon: evaluate every service at its interval and scale it.
    ///
    /// Without --config, one service is built from the original scaler's environment variables
    /// (PROMETHEUS_URL, SERVICE_NAME, SCALE_UP_THRESHOLD, SCALE_DOWN_THRESHOLD, METRIC_QUERY, MIN_REPLICAS,
    /// MAX_REPLICAS, CHECK_INTERVAL, COOLDOWN, COMPOSE_PROJECT_NAME, COMPOSE_FILE, ...). Serves /metrics,
    /// /healthz, /readyz and /status on daemon.listen. SIGTERM or SIGINT stops it cleanly (running scale calls
    /// finish, state is persisted); SIGHUP reloads the configuration, keeping the old one if the new one is
    /// invalid.
    ///
    /// --dry-run and --listen come first, then DRY_RUN and AUTOSCALE_LISTEN, then the file; they hold across
    /// reloads.
    Run(RunArgs),
    /// Evaluate every service once and print each decision with its reason. Scales only with --apply.
    ///
    /// Exits with 0 when every status read and check succeeded (and, with --apply, every scale call), 1 when
    /// one failed, and 2 for an invalid configuration or an unknown --service.
    Once(OnceArgs),
    /// Exit 0 if the local daemon's /healthz says healthy (for container HEALTHCHECKs).
    Healthcheck(ProbeArgs),
    /// Print what the running daemon knows about each service (its /status endpoint), as a table.
    Status(StatusArgs),
    /// Pause a service of the running daemon until `autoscale resume`: no scaling (or none up, or none
    /// down). The pause is kept in the service's state, so it survives a restart, and overrides the
    /// configured `paused` until resumed.
    ///
    /// The daemon accepts it only from loopback, unless `[daemon] admin_token_file` is set: then the token
    /// is read from that file of --config (or from --token-file) and sent as a bearer token.
    Pause(PauseArgs),
    /// Lift a service's run-time pause (set by `autoscale pause`, or by the service being taken to 0
    /// replicas outside autoscale). The configured `paused`, if any, applies again.
    Resume(ResumeArgs),
}

/// `autoscale run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file. Without it, the configuration comes from environment variables alone.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Decide and log, but never scale, whatever the configuration and DRY_RUN say.
    #[arg(long)]
    pub dry_run: bool,
    /// Serve the endpoints on this address, over AUTOSCALE_LISTEN and daemon.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `autoscale once`.
#[derive(Debug, Args)]
pub struct OnceArgs {
    /// The configuration file. Without it, the configuration comes from environment variables alone.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Apply the decisions (call the scalers). Without it, nothing is changed.
    #[arg(long)]
    pub apply: bool,
    /// Evaluate only this service.
    #[arg(long, short, value_name = "NAME")]
    pub service: Option<String>,
}

/// `autoscale healthcheck`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The daemon's address. Default: daemon.listen of --config, or AUTOSCALE_LISTEN, or 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Read daemon.listen from this configuration file.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How long to wait for an answer.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `autoscale status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the daemon is.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Print the raw JSON of /status instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Redraw the status in place every --interval until interrupted.
    #[arg(long, short)]
    pub watch: bool,
    /// How often --watch asks the daemon.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

/// Where the daemon is, and the token its admin endpoints may require.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Where the daemon is.
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// The file holding the daemon's admin token. Default: daemon.admin_token_file of --config.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `autoscale pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The service to pause.
    pub service: String,
    /// Pause only scaling up.
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// Pause only scaling down.
    #[arg(long)]
    pub down: bool,
    /// Where the daemon is.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `autoscale resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The service to resume.
    pub service: String,
    /// Where the daemon is.
    #[command(flatten)]
    pub admin: AdminArgs,
}

const SIMULATE_EXAMPLES: &str = "\
Examples:
  autoscale simulate --pattern spike
  autoscale simulate --pattern sine --base 2 --peak 8 --period 30m --duration 3h --format csv
  autoscale simulate --config autoscale.toml --trace traffic.csv --capacity 50 --startup-delay 30s
  autoscale simulate --trace examples/traces/wc98_per_minute.csv --capacity 2000 --compare seed,hpa,oracle
  autoscale simulate --config autoscale.toml --trace traffic.csv --chart replay.svg";

/// `autoscale check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file. Without it, the configuration comes from environment variables alone.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The summary and tick formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The summary, for a person.
    Table,
    /// One row per tick: t,load,metric,current,recommended,desired,ready,demand,reason. With --compare, one
    /// summary row per policy.
    Csv,
    /// The summary as one JSON object. With --compare, an array of them.
    Json,
}

/// `autoscale simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The daemon's configuration file: the service's checks, policies, behavior, bounds and interval come from
    /// it (each check's query is replaced by the model's metric). Without it, the built-in `webapp` service.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The service to simulate; may be left out when the configuration has only one.
    #[arg(long, short, value_name = "NAME", requires = "config")]
    pub service: Option<String>,

    /// A CSV load trace with a header row: the time (seconds, or RFC 3339) in column 1, the load in column 2.
    #[arg(long, short, value_name = "CSV", conflicts_with = "pattern")]
    pub trace: Option<PathBuf>,

    /// Read the load from the column with this header instead of column 2.
    #[arg(long, value_name = "NAME", requires = "trace")]
    pub column: Option<String>,

    /// A built-in load pattern instead of a trace [default: spike].
    #[arg(long, short, value_name = "KIND", value_parser = clap::builder::PossibleValuesParser::new(Pattern::KINDS))]
    pub pattern: Option<String>,

    /// The load one ready replica serves at utilization 1.0.
    #[arg(long, value_name = "X", default_value = "1", value_parser = positive_number, allow_negative_numbers = true)]
    pub capacity: f64,

    /// How long a new replica takes to become ready, such as 30s or 2m.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = duration)]
    pub startup_delay: Duration,

    /// The replica count at the start, all ready [default: the service's min_replicas].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub initial: Option<Replicas>,

    /// What every check observes: the utilization of the ready replicas, load / (max(ready, 1) * capacity), or
    /// the raw load (for checks with a `per = "total"` target). The seed and hpa references always observe
    /// utilization.
    #[arg(long, value_name = "METRIC", default_value = "utilization", value_parser = metric_mode)]
    pub metric: MetricMode,

    /// The output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Also write an SVG chart: load and replicas over time, with scaling actions marked.
    #[arg(long, value_name = "OUT.svg")]
    pub chart: Option<PathBuf>,

    /// Run several policies over the same trace and print their summaries side by side. Each entry is `seed`
    /// (the original scaler: threshold 0.6/0.3, step 1, cooldown 60s), `hpa` (a target of 0.6 per replica
    /// with Kubernetes' default behavior), `predictive` (the predictive policy with its defaults, a target of
    /// 0.6 per replica), `oracle` (perfect foresight at a target of 0.6: a reference for timing that knows the
    /// future, not a policy and not a lower bound on cost, since a policy's tolerance can undercut it), or a configuration
    /// file, `FILE` or `FILE#SERVICE`. The references take min, max and interval
    /// from --config's service (else 1, 10, 10s); --config's service, when given, comes first.
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1..)]
    pub compare: Vec<String>,

    /// The shape of the built-in pattern (last, so that its help heading does not spill onto other options).
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// The shape of a built-in pattern. Options a pattern does not have are refused.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Pattern options")]
pub struct ShapeArgs {
    /// The low load [default: 1].
    #[arg(long, value_name = "X", conflicts_with = "trace", value_parser = non_negative_number, allow_negative_numbers = true)]
    pub base: Option<f64>,
    /// The high load [default: 6, which a target of 0.6 per replica serves with 10 replicas].
    #[arg(long, value_name = "X", conflicts_with = "trace", value_parser = non_negative_number, allow_negative_numbers = true)]
    pub peak: Option<f64>,
    /// The cycle of sine [default: 20m] and sawtooth [default: 15m].
    #[arg(long, value_name = "DUR", conflicts_with = "trace", value_parser = duration)]
    pub period: Option<Duration>,
    /// When step [default: 15m], ramp [default: 10m] and spike [default: 20m] start.
    #[arg(long, value_name = "DUR", conflicts_with = "trace", value_parser = duration)]
    pub at: Option<Duration>,
    /// How long ramp [default: 30m] and spike [default: 2m] last.
    #[arg(long, value_name = "DUR", conflicts_with = "trace", value_parser = duration)]
    pub width: Option<Duration>,
    /// How long the pattern runs.
    #[arg(long, value_name = "DUR", default_value = "1h", conflicts_with = "trace", value_parser = duration)]
    pub duration: Duration,
    /// The pattern's sampling step.
    #[arg(long, value_name = "DUR", default_value = "1s", conflicts_with = "trace", value_parser = positive_duration)]
    pub resolution: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("must be above 0s".to_owned()),
        d => Ok(d),
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))
}

fn positive_number(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err("must be a number greater than 0".to_owned()),
    }
}

fn non_negative_number(s: &str) -> Result<f64, String> {
    match number(s)? {
        v if v >= 0.0 => Ok(v),
        _ => Err("must be a number of 0 or more".to_owned()),
    }
}

fn metric_mode(s: &str) -> Result<MetricMode, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
