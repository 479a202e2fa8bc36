//! How a command is shown in messages.

use std::ffi::OsStr;
use std::fmt;

/// A command line for messages: the program and its arguments, quoted the way a POSIX shell would need them,
/// so it can be copied into a terminal to reproduce a failure.
///
/// ```
/// use autoscale_exec::CommandLine;
///
/// let line = CommandLine::new(["docker", "ps", "--format", "{{json .}}", "it's"].map(AsRef::as_ref));
/// assert_eq!(line.as_str(), r#"docker ps --format '{{json .}}' 'it'\''s'"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CommandLine(String);

impl CommandLine {
    /// A command line from an argument vector, program first.
    pub fn new<'a>(argv: impl IntoIterator<Item = &'a OsStr>) -> Self {
        let words: Vec<String> = argv
            .into_iter()
            .map(|arg| quote(&arg.to_string_lossy()))
            .collect();
        CommandLine(words.join(" "))
    }

    /// The rendered command line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(argv: &[&str]) -> String {
        CommandLine::new(argv.iter().map(OsStr::new)).to_string()
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_need() {
        assert_eq!(
            line(&[
                "docker",
                "ps",
                "--filter",
                "label=a.b=c",
                "--format",
                "{{json .}}",
                "it's",
                "",
            ]),
            r#"docker ps --filter label=a.b=c --format '{{json .}}' 'it'\''s' ''"#
        );
    }

    #[test]
    fn the_command_line_is_the_argument_vector() {
        assert_eq!(
            line(&["ansible-playbook", "--check", "--", "scale.yml"]),
            "ansible-playbook --check -- scale.yml"
        );
        assert_eq!(
            line(&["ansible-playbook", "--limit=web1:&prod"]),
            "ansible-playbook '--limit=web1:&prod'"
        );
    }
}
