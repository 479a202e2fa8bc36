//! # autoscale-exec
//!
//! Run one command-line tool the way autoscale's backends need it: as an argument vector, with a timeout that
//! kills it and everything it started, and with an error that says what ran and what it printed.
//!
//! - **No shell, ever.** The program and its arguments go to the OS as they are ([`Invocation`]).
//! - **Explicit environment.** The child inherits this process's environment with the changes the caller made
//!   ([`Invocation::env`], [`Invocation::env_remove`]); `Debug` shows their names, never their values.
//! - **The whole tree is killed.** The child leads a process group of its own. On a timeout, on too much
//!   output, or when the future of [`Invocation::run`] is dropped, that group is killed with `SIGKILL`, and so
//!   is every group or session a descendant started with `setsid` (ansible-playbook's workers do), found
//!   through `/proc` while the child is still unreaped.
//! - **Too much output kills.** stdout is captured up to a cap ([`Invocation::max_stdout`]); one byte more
//!   kills the tree and fails with [`Error::OutputTooLarge`]. Killing rather than truncating bounds both the
//!   memory and the time a runaway tool can take: output past the cap is unusable to every caller, and reading
//!   it to the end would keep such a tool running until its timeout. (The tools driven here print their
//!   answer last: a scale has been done by the time its report is printed.)
//! - **Bounded waits.** Reading the pipes and reaping the child happen within the timeout; after a kill the
//!   reap is awaited for a few seconds at most, then left to tokio's orphan reaper.
//! - **Pipes first, then the reap.** Both pipes are read to their end before the child is reaped: until then
//!   its pid (the group id) cannot be reused, so a kill can never reach an unrelated process.
//! - **One way to quote a command.** [`CommandLine`] renders an argument vector as a POSIX shell would need
//!   it, for messages that can be pasted into a terminal.
//!
//! Why not the `process-wrap` crate: what it adds over `std`'s `process_group(0)` and one `kill(2)` is
//! portability (Windows job objects) that autoscale does not need, while the hard part here (reaching the
//! sessions that descendants start with `setsid`, and never signalling after the reap) it does not do.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::time::Duration;
//! use autoscale_exec::{Error, Invocation};
//!
//! let out = Invocation::new("sh")
//!     .args(["-c", "echo \"hello $WHO\"; echo oops >&2; exit 3"])
//!     .env("WHO", "world")
//!     .timeout(Duration::from_secs(10))
//!     .run()
//!     .await
//!     .unwrap();
//! assert_eq!(out.stdout, b"hello world\n");
//! assert_eq!(out.status.code(), Some(3));
//!
//! let err = out.check().unwrap_err();
//! assert!(matches!(err, Error::Failed { .. }));
//! assert_eq!(
//!     err.to_string(),
//!     "`sh -c 'echo \"hello $WHO\"; echo oops >&2; exit 3'` failed (exit status: 3); stderr: oops"
//! );
//! # }
//! ```
#![warn(missing_docs)]

mod capture;
mod command_line;
mod error;
mod invocation;
mod kill;

pub use command_line::CommandLine;
pub use error::Error;
pub use invocation::{
    DEFAULT_MAX_STDOUT, DEFAULT_STDERR_TAIL, DEFAULT_TIMEOUT, Invocation, Output,
};
