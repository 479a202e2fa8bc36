//! `webapp`: the demo service autoscale scales. See `examples/README.md` for its environment variables.
//!
//! `webapp` serves until SIGTERM or SIGINT, then drains and exits 0. `webapp healthcheck` exits 0 if the
//! replica whose address is in `WEBAPP_ADDR_FILE` (else `WEBAPP_LISTEN`) answers `GET /healthz` (the
//! container HEALTHCHECK; the image has no shell or curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use autoscale_examples::loadgen::http;
use autoscale_examples::webapp::{App, Config, Listen, bind, serve};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("webapp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match std::env::args().nth(1).as_deref() {
        None => runtime.block_on(run()),
        Some("healthcheck") => runtime.block_on(healthcheck()),
        Some(other) => Err(format!(
            "unknown argument {other:?}; usage: webapp [healthcheck]"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webapp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn run() -> Result<(), String> {
    let config = Config::from_lookup(env).map_err(|e| e.to_string())?;
    let listener = bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {:?}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(file) = &config.addr_file {
        std::fs::write(file, addr.to_string())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    // Tests and scripts read this line to find the port.
    println!(
        "webapp listening on {addr} (capacity {} rps, max queue {:?})",
        config.capacity_rps, config.max_queue
    );
    let app = Arc::new(App::new(config.capacity_rps, config.max_queue));
    let shutdown = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        println!("webapp on {addr}: stopping");
    };
    serve(listener, app, shutdown, config.drain_timeout)
        .await
        .map_err(|e| e.to_string())
}

async fn healthcheck() -> Result<(), String> {
    let config = Config::from_lookup(env).map_err(|e| e.to_string())?;
    let addr: SocketAddr = match (&config.addr_file, config.listen) {
        (Some(file), _) => std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            .trim()
            .parse()
            .map_err(|_| format!("{} does not hold an address", file.display()))?,
        (None, Listen::Addr(addr)) => addr,
        (None, Listen::Ports(_)) => {
            return Err("WEBAPP_PORTS needs WEBAPP_ADDR_FILE to find the replica's port".into());
        }
    };
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    let status = http::get(addr, "/healthz", Duration::from_secs(3))
        .await
        .map_err(|e| format!("GET http://{addr}/healthz: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("GET http://{addr}/healthz: {status}"))
    }
}
