//! The `autoscale` command. Its subcommands are not implemented yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("autoscale: no subcommand is implemented yet; see README.md");
    ExitCode::from(2)
}
