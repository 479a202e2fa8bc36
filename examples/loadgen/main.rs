//! `loadgen`: sends the scripted load pattern of `LOAD_PATTERN` to the demo webapp's replicas and prints a
//! line per second. See `examples/README.md` for its environment variables.

use std::process::ExitCode;

use autoscale_examples::loadgen::{Config, run};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let config = match Config::from_lookup(|var| std::env::var(var).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("loadgen: cannot handle signals");
            return ExitCode::FAILURE;
        };
        println!(
            "loadgen: pattern {} over {} x{} to {} path {}",
            config.pattern,
            humantime::format_duration(config.duration),
            config.repeat,
            config.targets,
            config.path
        );
        tokio::select! {
            summary = run(&config, |second| println!("{second}")) => {
                println!("loadgen: {summary}");
                ExitCode::SUCCESS
            }
            // Stopping early is a normal end for a demo container.
            _ = term.recv() => ExitCode::SUCCESS,
            _ = int.recv() => ExitCode::SUCCESS,
        }
    })
}
