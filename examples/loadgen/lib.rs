//! The demo load generator: a scripted, open-loop request rate spread round-robin over the webapp's
//! replicas.
//!
//! Open loop: requests leave on schedule whether or not earlier ones were answered, as real users do, so
//! an overloaded service shows growing latency and errors instead of a politely slowing client. Every run
//! is bounded: by its duration, a total request count, and a cap on requests in flight (beyond it a
//! request counts as failed instead of queueing in the client).
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use autoscale_examples::loadgen::{run, Config};
//!
//! let config = Config::from_lookup(|var| match var {
//!     "LOAD_PATTERN" => Some("0s:5,10s:40".into()),
//!     "LOAD_DURATION" => Some("20s".into()),
//!     "LOAD_PORTS" => Some("19111-19130".into()),
//!     _ => None,
//! })?;
//! let summary = run(&config, |second| println!("{second}")).await;
//! println!("{summary}");
//! # Ok(())
//! # }
//! ```

pub mod http;
pub mod pattern;
pub mod stats;
pub mod targets;

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

use pattern::LoadPattern;
use stats::{Outcome, Second, Summary, Window};
use targets::{TargetSpec, Targets};

/// How often replicas are discovered again (new replicas get load within this delay).
const DISCOVERY_PERIOD: Duration = Duration::from_secs(2);
/// The longest run allowed, all passes included.
const MAX_TOTAL: Duration = Duration::from_secs(24 * 3600);

/// The generator's configuration, from `LOAD_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `LOAD_PATTERN` (default `0s:5,60s:60,240s:5`).
    pub pattern: LoadPattern,
    /// `LOAD_DURATION`: one pass of the pattern (default: its last offset plus 60 s).
    pub duration: Duration,
    /// `LOAD_REPEAT` (default 1, at most 1000): passes of the pattern.
    pub repeat: u32,
    /// `LOAD_PORTS` (a range on 127.0.0.1), else `LOAD_TARGETS` (default `127.0.0.1:8080`, a comma list).
    /// `LOAD_PORTS` wins when both are set.
    pub targets: TargetSpec,
    /// `LOAD_PATH` (default `/`).
    pub path: String,
    /// `LOAD_TIMEOUT` (default `10s`): per request.
    pub timeout: Duration,
    /// `LOAD_MAX_IN_FLIGHT` (default 512).
    pub max_in_flight: usize,
    /// `LOAD_MAX_REQUESTS` (default 1000000): the run stops after this many requests.
    pub max_requests: u64,
}

impl Config {
    /// Reads the configuration through `var` (`std::env::var` in the binary); unset and empty are alike.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let bad = |name: &str, value: &str, why: &dyn std::fmt::Display| {
            format!("{name}={value:?}: {why}")
        };
        let opt_duration = |name: &str| -> Result<Option<Duration>, String> {
            get(name)
                .map(|v| humantime::parse_duration(&v).map_err(|e| bad(name, &v, &e)))
                .transpose()
        };
        let number = |name: &str, default: u64, max: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        bad(
                            name,
                            &v,
                            &format!("expected a whole number from 1 to {max}"),
                        )
                    }),
            }
        };

        let pattern_text = get("LOAD_PATTERN").unwrap_or_else(|| "0s:5,60s:60,240s:5".into());
        let pattern: LoadPattern = pattern_text
            .parse()
            .map_err(|e: String| bad("LOAD_PATTERN", &pattern_text, &e))?;
        let duration = opt_duration("LOAD_DURATION")?
            .unwrap_or_else(|| pattern.last_offset() + Duration::from_secs(60));
        if duration <= pattern.last_offset() {
            return Err(format!(
                "LOAD_DURATION ({}) must be longer than the pattern's last offset ({})",
                humantime::format_duration(duration),
                humantime::format_duration(pattern.last_offset())
            ));
        }
        let repeat = number("LOAD_REPEAT", 1, 1000)? as u32;
        if duration.saturating_mul(repeat) > MAX_TOTAL {
            return Err(format!(
                "LOAD_DURATION x LOAD_REPEAT must not exceed {}",
                humantime::format_duration(MAX_TOTAL)
            ));
        }
        // LOAD_PORTS wins so that a host-network run can override an image's LOAD_TARGETS.
        let targets = match (get("LOAD_PORTS"), get("LOAD_TARGETS")) {
            (Some(v), _) => {
                TargetSpec::Ports(v.parse().map_err(|e: String| bad("LOAD_PORTS", &v, &e))?)
            }
            (None, v) => {
                let v = v.unwrap_or_else(|| "127.0.0.1:8080".into());
                let hosts = v
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(|e| bad("LOAD_TARGETS", &v, &e))?;
                TargetSpec::Hosts(hosts)
            }
        };
        let path = get("LOAD_PATH").unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "LOAD_PATH",
                &path,
                &"expected an absolute path without spaces",
            ));
        }
        Ok(Self {
            pattern,
            duration,
            repeat,
            targets,
            path,
            timeout: opt_duration("LOAD_TIMEOUT")?.unwrap_or(Duration::from_secs(10)),
            max_in_flight: number("LOAD_MAX_IN_FLIGHT", 512, 100_000)? as usize,
            max_requests: number("LOAD_MAX_REQUESTS", 1_000_000, 100_000_000)?,
        })
    }
}

/// Runs the pattern to its end (or `max_requests`), calling `report` once a second, and returns the totals.
pub async fn run(config: &Config, mut report: impl FnMut(&Second)) -> Summary {
    let targets = Arc::new(Targets::default());
    let (found, notes) = targets::discover(&config.targets).await;
    print_notes(&notes);
    targets.replace(found);
    let discovery = tokio::spawn(rediscover(config.targets.clone(), Arc::clone(&targets)));

    let window = Arc::new(Mutex::new(Window::default()));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    let start = Instant::now();
    let end = start + config.duration.saturating_mul(config.repeat);
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut summary = Summary::default();
    let mut emit = |summary: &mut Summary, rate: f64| {
        let taken = std::mem::take(&mut *window.lock().unwrap_or_else(PoisonError::into_inner));
        let second = Second::new(start.elapsed(), rate, targets.len(), taken);
        summary.add(&second);
        report(&second);
    };

    let mut next_send = start;
    let mut started = 0;
    loop {
        let now = Instant::now();
        if now >= end || started >= config.max_requests {
            break;
        }
        let offset = pass_offset(now - start, config.duration);
        let rate = config.pattern.rate_at(offset);
        let wake = if rate <= 0.0 {
            let pass_start = now - offset;
            let change = config
                .pattern
                .next_change(offset)
                .unwrap_or(config.duration);
            (pass_start + change).min(end)
        } else if now < next_send {
            next_send.min(end)
        } else {
            // After a stall (or a silent step), start afresh instead of sending a burst to catch up.
            if now - next_send > Duration::from_secs(1) {
                next_send = now;
            }
            next_send += Duration::from_secs_f64(1.0 / rate);
            started += 1;
            send(config, &targets, &window, &in_flight);
            continue;
        };
        tokio::select! {
            _ = ticker.tick() => emit(&mut summary, rate),
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    discovery.abort();
    // Let the last requests finish (each is bounded by the timeout) so the totals are complete.
    let all = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        config.timeout + Duration::from_secs(1),
        in_flight.acquire_many(all),
    )
    .await;
    emit(&mut summary, 0.0);
    summary
}

fn pass_offset(elapsed: Duration, pass: Duration) -> Duration {
    let nanos = elapsed.as_nanos() % pass.as_nanos().max(1);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn send(
    config: &Config,
    targets: &Arc<Targets>,
    window: &Arc<Mutex<Window>>,
    in_flight: &Arc<Semaphore>,
) {
    let record = |window: &Mutex<Window>, outcome: Option<Outcome>| {
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            None => window.sent += 1,
            Some(outcome) => window.record(outcome),
        }
    };
    record(window, None);
    let (Some(addr), Ok(permit)) = (targets.pick(), Arc::clone(in_flight).try_acquire_owned())
    else {
        record(window, Some(Outcome::Failed));
        return;
    };
    let (targets, window) = (Arc::clone(targets), Arc::clone(window));
    let (path, timeout) = (config.path.clone(), config.timeout);
    tokio::spawn(async move {
        let began = Instant::now();
        let outcome = match http::get(addr, &path, timeout).await {
            Ok(status) if status.is_success() => Outcome::Ok(began.elapsed()),
            Ok(_) => Outcome::Rejected,
            Err(http::Error::Connect(e)) => {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    targets.mark_down(addr);
                }
                Outcome::Failed
            }
            Err(_) => Outcome::Failed,
        };
        record(&window, Some(outcome));
        drop(permit);
    });
}

async fn rediscover(spec: TargetSpec, targets: Arc<Targets>) {
    let mut last_notes = Vec::new();
    loop {
        tokio::time::sleep(DISCOVERY_PERIOD).await;
        let (found, notes) = targets::discover(&spec).await;
        // The same complaint every two seconds is noise.
        if notes != last_notes {
            print_notes(&notes);
            last_notes = notes;
        }
        targets.replace(found);
    }
}

fn print_notes(notes: &[String]) {
    for note in notes {
        eprintln!("loadgen: {note}");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::webapp::PortRange;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.pattern.to_string(), "0s:5,1m:60,4m:5");
        assert_eq!(c.duration, Duration::from_secs(300));
        assert_eq!(c.repeat, 1);
        assert_eq!(
            c.targets,
            TargetSpec::Hosts(vec!["127.0.0.1:8080".parse().unwrap()])
        );
        assert_eq!(c.path, "/");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!((c.max_in_flight, c.max_requests), (512, 1_000_000));
    }

    #[test]
    fn ports_or_a_list_of_names() {
        let c = config(&[
            ("LOAD_PORTS", "19111-19130"),
            ("LOAD_TARGETS", "webapp:8080"),
        ])
        .unwrap();
        assert_eq!(
            c.targets,
            TargetSpec::Ports(PortRange::new(19111, 19130).unwrap())
        );
        let c = config(&[
            ("LOAD_TARGETS", "webapp:8080, other:9000"),
            ("LOAD_REPEAT", "3"),
        ])
        .unwrap();
        assert_eq!(
            c.targets,
            TargetSpec::Hosts(vec![
                "webapp:8080".parse().unwrap(),
                "other:9000".parse().unwrap()
            ])
        );
        assert_eq!(c.repeat, 3);
    }

    #[test]
    fn invalid_settings_say_what_is_wrong() {
        for (vars, why) in [
            (
                &[("LOAD_PATTERN", "5s:1")][..],
                "LOAD_PATTERN=\"5s:1\": \"5s:1\": the first step must be at 0s",
            ),
            (
                &[("LOAD_PATTERN", "0s:1,2m:3"), ("LOAD_DURATION", "2m")],
                "LOAD_DURATION (2m) must be longer than the pattern's last offset (2m)",
            ),
            (
                &[("LOAD_DURATION", "10h"), ("LOAD_REPEAT", "3")],
                "LOAD_DURATION x LOAD_REPEAT must not exceed 1day",
            ),
            (
                &[("LOAD_REPEAT", "0")],
                "LOAD_REPEAT=\"0\": expected a whole number from 1 to 1000",
            ),
            (
                &[("LOAD_TARGETS", "webapp")],
                "LOAD_TARGETS=\"webapp\": \"webapp\": expected HOST:PORT",
            ),
            (
                &[("LOAD_PATH", "x y")],
                "LOAD_PATH=\"x y\": expected an absolute path without spaces",
            ),
        ] {
            assert_eq!(config(vars), Err(why.to_string()), "{vars:?}");
        }
    }

    #[test]
    fn offsets_wrap_around_each_pass() {
        let pass = Duration::from_secs(300);
        assert_eq!(
            pass_offset(Duration::from_secs(30), pass),
            Duration::from_secs(30)
        );
        assert_eq!(
            pass_offset(Duration::from_secs(330), pass),
            Duration::from_secs(30)
        );
        assert_eq!(pass_offset(Duration::from_secs(600), pass), Duration::ZERO);
    }
}
