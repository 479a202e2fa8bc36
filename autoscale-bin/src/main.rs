//! The `autoscale` command. Everything lives in the `autoscale_bin` library; this only maps its result to an
//! exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match autoscale_bin::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(e.exit_code())
        }
    }
}
