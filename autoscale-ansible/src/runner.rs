//! What one `ansible-playbook` run is, as a value: `Plan::run_spec` (in `config`)
//! builds it (a pure step, snapshot-tested), and [`autoscale_exec`] runs it, killing the playbook, its workers
//! and the sessions they start with `setsid` when the timeout expires.

use std::ffi::OsString;
use std::time::Duration;

use autoscale_exec::{CommandLine, Invocation};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunSpec {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    /// Set on top of the inherited environment, in order.
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) timeout: Duration,
}

impl RunSpec {
    /// The run, ready to start. stdout is capped at the runner's default (16 MiB: the JSON report of a large
    /// inventory can be big, but not this big); only the end of stderr is kept, where Ansible puts its last
    /// error.
    pub(crate) fn invocation(&self) -> Invocation {
        self.env.iter().fold(
            Invocation::new(&self.program)
                .args(&self.args)
                .timeout(self.timeout),
            |inv, (key, value)| inv.env(key, value),
        )
    }

    /// The command line for messages. It holds no secret: values go in files and the environment, never in
    /// the arguments.
    pub(crate) fn command_line(&self) -> CommandLine {
        CommandLine::new(
            std::iter::once(&self.program)
                .chain(&self.args)
                .map(AsRef::as_ref),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str]) -> RunSpec {
        RunSpec {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("AUTOSCALE_RUNNER_TEST".into(), "from-env".into())],
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_command_line_is_the_argument_vector() {
        let s = spec("ansible-playbook", &["--check", "--", "scale.yml"]);
        assert_eq!(
            s.command_line().as_str(),
            "ansible-playbook --check -- scale.yml"
        );
        assert_eq!(s.invocation().command_line(), s.command_line());
    }

    #[tokio::test]
    async fn the_environment_and_the_timeout_reach_the_run() {
        let s = spec("sh", &["-c", "echo \"$AUTOSCALE_RUNNER_TEST\""]);
        let inv = s.invocation();
        assert_eq!(inv.timeout_duration(), Duration::from_secs(30));
        assert_eq!(inv.run().await.unwrap().stdout, b"from-env\n");
    }
}
