//! `[daemon]`: the daemon's own settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::{Ctx, Result};
use super::keyword::keyword;
use super::raw::RawDaemon;

const LISTEN: &str = "127.0.0.1:9464";
const STATE_DIR: &str = "./autoscale-state";
const HISTORY_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The smallest `history_max_bytes`: a few entries.
const MIN_HISTORY_MAX_BYTES: u64 = 1024;
const CONCURRENCY: usize = 16;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log level from `LOG_LEVEL` (`RUST_LOG`, when set, is read by the daemon's logger and wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Decisions and actions.
    #[default]
    Info,
    /// Problems.
    Warn,
    /// Failures only.
    Error,
    /// Nothing.
    Off,
}

impl LogLevel {
    /// The level as `tracing` directives spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// The daemon's settings (`[daemon]`). It serializes as the file's `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DaemonSettings {
    /// Where /metrics, /healthz, /readyz and /status listen.
    pub listen: SocketAddr,
    /// Where state and history live (relative to the working directory if relative).
    pub state_dir: PathBuf,
    /// The log format.
    #[serde(serialize_with = "super::render::keyword")]
    pub log_format: LogFormat,
    /// The log level (from `LOG_LEVEL`, not a file key).
    #[serde(skip)]
    pub log_level: LogLevel,
    /// Never call a scaler.
    pub dry_run: bool,
    /// The size at which the history file is rotated.
    pub history_max_bytes: u64,
    /// How many services are evaluated at once (at least 1).
    pub concurrency: usize,
    /// How long a shutdown waits for running evaluations.
    #[serde(serialize_with = "super::render::text_duration")]
    pub shutdown_timeout: Duration,
    /// The file holding the bearer token that `POST /pause` and `/resume` require. Without it, those
    /// endpoints answer only clients on loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// High availability: several daemons, one leader (`ha`). Without it, the daemon scales alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<super::HaSettings>,
}

keyword!(LogFormat, "log format", "text" => LogFormat::Text, "json" => LogFormat::Json);

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: parse_listen(LISTEN).expect("the default listen address is valid"),
            state_dir: PathBuf::from(STATE_DIR),
            log_format: LogFormat::Text,
            log_level: LogLevel::Info,
            dry_run: false,
            history_max_bytes: HISTORY_MAX_BYTES,
            concurrency: CONCURRENCY,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            admin_token_file: None,
            ha: None,
        }
    }
}

pub(crate) fn parse_listen(s: &str) -> std::result::Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("invalid listen address {s:?}: expected IP:PORT, such as \"127.0.0.1:9464\"")
    })
}

/// The admin token in `path`: its content without surrounding whitespace, which must not be empty. The
/// message never holds the token.
pub fn read_admin_token(path: &std::path::Path) -> std::result::Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the admin token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

/// `[daemon]`, before the environment overrides. `read_files`: check that `admin_token_file` holds a token
/// (not for a probe, which only needs the address).
pub(crate) fn section(ctx: &Ctx<'_>, raw: RawDaemon, read_files: bool) -> Result<DaemonSettings> {
    let default = DaemonSettings::default();
    let listen = match &raw.listen {
        Some(l) => parse_listen(l.get_ref()).map_err(|m| ctx.err(l.span(), "daemon.listen", m))?,
        None => default.listen,
    };
    let state_dir = match &raw.state_dir {
        Some(d) => ctx.path(d, "daemon.state_dir")?,
        None => default.state_dir,
    };
    let log_format = ctx.opt_keyword(&raw.log_format, "daemon.log_format", default.log_format)?;
    let history_max_bytes = match &raw.history_max_bytes {
        Some(v) if *v.get_ref() < MIN_HISTORY_MAX_BYTES => {
            return Err(ctx.err(
                v.span(),
                "daemon.history_max_bytes",
                format!(
                    "{} is too small: the history file needs at least {MIN_HISTORY_MAX_BYTES} bytes",
                    v.get_ref()
                ),
            ));
        }
        Some(v) => *v.get_ref(),
        None => HISTORY_MAX_BYTES,
    };
    let concurrency = match &raw.concurrency {
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > 4096 => {
            return Err(ctx.err(v.span(), "daemon.concurrency", "must be from 1 to 4096"));
        }
        Some(v) => usize::try_from(*v.get_ref()).unwrap_or(CONCURRENCY),
        None => CONCURRENCY,
    };
    let admin_token_file = match &raw.admin_token_file {
        Some(p) => {
            let path = ctx.path(p, "daemon.admin_token_file")?;
            if read_files {
                read_admin_token(&path)
                    .map_err(|m| ctx.err(p.span(), "daemon.admin_token_file", m))?;
            }
            Some(path)
        }
        None => None,
    };
    let ha = match &raw.ha {
        Some(ha) => Some(super::ha::section(ctx, ha)?),
        None => None,
    };
    Ok(DaemonSettings {
        admin_token_file,
        ha,
        listen,
        state_dir,
        log_format,
        log_level: default.log_level,
        dry_run: raw.dry_run.unwrap_or(default.dry_run),
        history_max_bytes,
        concurrency,
        shutdown_timeout: ctx.opt_duration(
            &raw.shutdown_timeout,
            "daemon.shutdown_timeout",
            SHUTDOWN_TIMEOUT,
        )?,
    })
}
