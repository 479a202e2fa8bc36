//! Where a configuration error is and what it says: the error type, byte spans turned into
//! `FILE:LINE:COLUMN`, serde's messages said in the file's terms, and the typed reads of a spanned value that
//! every section shares.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::{Limit, parse_duration};
use super::keyword::Keyword;
use super::raw::S;
/// Where a configuration error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// In a file, at a 1-based line and column when known.
    File {
        path: PathBuf,
        position: Option<(usize, usize)>,
    },
    /// In an environment variable.
    Env(&'static str),
    /// In what a `[[discover]]` section found: a service's labels, or the section's defaults.
    Discovered { service: String, from: String },
}

/// A configuration error: where, which key, and what is allowed.
///
/// Displays as `FILE:LINE:COLUMN: KEY: MESSAGE`, or `environment variable NAME: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: Origin,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error about the file as a whole, such as one that cannot be read.
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            origin: Origin::File {
                path: path.to_owned(),
                position: None,
            },
            key: None,
            message: message.into(),
        }
    }

    pub(crate) fn env(var: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            origin: Origin::Env(var),
            key: None,
            message: message.into(),
        }
    }

    /// An error in what discovery found: the `service` it would be, `from` which label or default.
    pub(crate) fn discovered(
        service: &str,
        from: String,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            origin: Origin::Discovered {
                service: service.to_owned(),
                from,
            },
            key: key.filter(|k| !k.is_empty()),
            message: message.into(),
        }
    }

    /// The same error, said of another key.
    pub(crate) fn map_key(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.key = self.key.map(|k| f(&k));
        self
    }

    /// The 1-based line and column, for errors found in a file.
    pub fn position(&self) -> Option<(usize, usize)> {
        match &self.origin {
            Origin::File { position, .. } => *position,
            Origin::Env(_) | Origin::Discovered { .. } => None,
        }
    }

    /// The key, such as `service[0].check[1].policy.kind`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The environment variable, for errors found in one.
    pub fn variable(&self) -> Option<&str> {
        match self.origin {
            Origin::Env(v) => Some(v),
            Origin::File { .. } | Origin::Discovered { .. } => None,
        }
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, position } => {
                write!(f, "{}", path.display())?;
                if let Some((line, column)) = position {
                    write!(f, ":{line}:{column}")?;
                }
                f.write_str(": ")?;
            }
            Origin::Env(var) => write!(f, "environment variable {var}: ")?,
            Origin::Discovered { service, from } => write!(f, "service {service} ({from}): ")?,
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// The file being validated: turns byte spans into `FILE:LINE:COLUMN` errors.
pub(crate) struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Ctx { path, text }
    }

    /// The file, for [`Source::File`](super::Source::File).
    pub(crate) fn file(&self) -> &Path {
        self.path
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    /// Two keys of which at most one may be set: when both are, the error points at the second.
    pub(crate) fn at_most_one<A, B>(
        &self,
        key: &str,
        (first, first_name): (&Option<S<A>>, &str),
        (second, second_name): (&Option<S<B>>, &str),
    ) -> Result<()> {
        match (first, second) {
            (Some(_), Some(b)) => Err(self.err(
                b.span(),
                join_key(key, second_name),
                format!("{first_name} and {second_name} cannot both be set; choose one"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            origin: Origin::File {
                path: self.path.to_owned(),
                position: Some(self.position(span.start)),
            },
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            message: message.into(),
        }
    }

    pub(crate) fn toml_error(&self, e: &toml::de::Error, key: String) -> ConfigError {
        let message = rewrite_serde_message(e.message().trim_end());
        let (key, message) = match message {
            Rewritten::Missing(field) => (
                join_key(&key, &field),
                "missing; this key is required".to_owned(),
            ),
            Rewritten::Other(m) => (key, m),
        };
        ConfigError {
            origin: Origin::File {
                path: self.path.to_owned(),
                position: e.span().map(|s| self.position(s.start)),
            },
            key: Some(key).filter(|k| !k.is_empty()),
            message,
        }
    }

    /// A cooldown or a window: from 0s to [`Limit::Window`].
    pub(crate) fn duration(&self, v: &S<String>, key: &str) -> Result<Duration> {
        self.bounded(v, key, Limit::Window)
    }

    fn bounded(&self, v: &S<String>, key: &str, limit: Limit) -> Result<Duration> {
        parse_duration(v.get_ref())
            .and_then(|d| limit.check(v.get_ref(), d))
            .map_err(|m| self.err(v.span(), key, m))
    }

    fn nonzero(&self, v: &S<String>, key: &str, limit: Limit) -> Result<Duration> {
        let d = self.bounded(v, key, limit)?;
        if d.is_zero() {
            return Err(self.err(v.span(), key, "must be above 0s"));
        }
        Ok(d)
    }

    /// A window or a period that must not be empty: above 0s, at most [`Limit::Window`].
    pub(crate) fn positive_duration(&self, v: &S<String>, key: &str) -> Result<Duration> {
        self.nonzero(v, key, Limit::Window)
    }

    /// An interval or a timeout, or `default` when not set: above 0s, at most [`Limit::Interval`].
    pub(crate) fn opt_duration(
        &self,
        v: &Option<S<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration> {
        v.as_ref()
            .map_or(Ok(default), |v| self.nonzero(v, key, Limit::Interval))
    }

    pub(crate) fn one_of<T: Copy>(
        &self,
        v: &S<String>,
        key: &str,
        what: &str,
        options: &[(&str, T)],
    ) -> Result<T> {
        options
            .iter()
            .find(|(name, _)| *name == v.get_ref())
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(
                    v.span(),
                    key,
                    format!(
                        "unknown {what} {:?}; expected {}",
                        v.get_ref(),
                        quoted_list(&names)
                    ),
                )
            })
    }

    /// A key that the table's `kind` makes necessary; a missing one is reported at `kind`, saying `why`.
    pub(crate) fn required<'v, T>(
        &self,
        v: &'v Option<S<T>>,
        kind: &S<String>,
        key: &str,
        why: &str,
    ) -> Result<&'v S<T>> {
        v.as_ref()
            .ok_or_else(|| self.err(kind.span(), key, format!("missing; {why}")))
    }

    /// Refuse the `name` of the table at `key` when another of its scope has `taken` it.
    pub(crate) fn unique(
        &self,
        taken: bool,
        name: &S<String>,
        key: &str,
        what: &str,
        scope: &str,
    ) -> Result<()> {
        if taken {
            let message = format!("{what} {:?} is used twice{scope}", name.get_ref());
            return Err(self.err(name.span(), join_key(key, "name"), message));
        }
        Ok(())
    }

    /// A keyword of `T`.
    pub(crate) fn keyword<T: Keyword>(&self, v: &S<String>, key: &str) -> Result<T> {
        self.one_of(v, key, T::WHAT, &T::keywords())
    }

    /// A keyword of `T`, or `default` when the key is not set.
    pub(crate) fn opt_keyword<T: Keyword>(
        &self,
        v: &Option<S<String>>,
        key: &str,
        default: T,
    ) -> Result<T> {
        v.as_ref().map_or(Ok(default), |v| self.keyword(v, key))
    }

    pub(crate) fn name(&self, v: &S<String>, key: &str, kind: NameKind) -> Result<String> {
        check_name(v.get_ref(), kind).map_err(|m| self.err(v.span(), key, m))?;
        Ok(v.get_ref().clone())
    }

    /// A name that Docker's `rule` governs.
    pub(crate) fn docker_name(
        &self,
        v: &S<String>,
        key: &str,
        rule: autoscale_docker::NameRule,
    ) -> Result<String> {
        autoscale_docker::check_name(rule, v.get_ref())
            .map_err(|e| self.err(v.span(), key, e.to_string()))?;
        Ok(v.get_ref().clone())
    }

    pub(crate) fn path(&self, v: &S<String>, key: &str) -> Result<PathBuf> {
        check_path(v.get_ref()).map_err(|m| self.err(v.span(), key, m))?;
        Ok(PathBuf::from(v.get_ref()))
    }

    pub(crate) fn opt_path(&self, v: &Option<S<String>>, key: &str) -> Result<Option<PathBuf>> {
        v.as_ref().map(|v| self.path(v, key)).transpose()
    }

    /// A path a scaler reads (a compose file, a playbook, an inventory, ...): a relative one is relative to
    /// the configuration file's directory, so that the daemon finds it whatever its working directory. The
    /// directory is made absolute (canonical when it exists), so that `check`'s output, saved anywhere, loads
    /// back to the same path. Next to a file in the working directory, it stays as written.
    pub(crate) fn file_path(&self, v: &S<String>, key: &str) -> Result<PathBuf> {
        let path = self.path(v, key)?;
        Ok(match self.file().parent() {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => {
                // The directory of a file just read exists: canonical, it shows no `..`.
                let dir = std::fs::canonicalize(dir)
                    .or_else(|_| std::path::absolute(dir))
                    .unwrap_or_else(|_| dir.to_owned());
                let path: PathBuf = path
                    .components()
                    .filter(|c| *c != std::path::Component::CurDir)
                    .collect();
                dir.join(path)
            }
            _ => path,
        })
    }

    pub(crate) fn opt_file_path(
        &self,
        v: &Option<S<String>>,
        key: &str,
    ) -> Result<Option<PathBuf>> {
        v.as_ref().map(|v| self.file_path(v, key)).transpose()
    }

    pub(crate) fn argument(&self, v: &S<String>, key: &str) -> Result<String> {
        check_argument(v.get_ref()).map_err(|m| self.err(v.span(), key, m))?;
        Ok(v.get_ref().clone())
    }

    pub(crate) fn arguments(&self, v: &S<Vec<String>>, key: &str) -> Result<Vec<String>> {
        for arg in v.get_ref() {
            check_argument(arg).map_err(|m| self.err(v.span(), key, m))?;
        }
        Ok(v.get_ref().clone())
    }

    pub(crate) fn command(&self, v: &S<Vec<String>>, key: &str) -> Result<Vec<String>> {
        if v.get_ref().is_empty() {
            return Err(self.err(v.span(), key, "must name a program, such as [\"docker\"]"));
        }
        self.arguments(v, key)
    }
}

pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(crate) fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

enum Rewritten {
    Missing(String),
    Other(String),
}

/// serde's messages speak Rust ("expected u32", "unknown field"); say the same in the file's terms.
fn rewrite_serde_message(message: &str) -> Rewritten {
    fn backticked(s: &str) -> Vec<&str> {
        s.split('`').skip(1).step_by(2).collect()
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return Rewritten::Missing(rest.trim_matches('`').to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let allowed = rest
            .split_once(", expected")
            .map(|(_, e)| backticked(e))
            .unwrap_or_default();
        return Rewritten::Other(if allowed.is_empty() {
            "unknown key; this table takes no keys".to_owned()
        } else {
            format!("unknown key; expected {}", quoted_list(&allowed))
        });
    }
    let typed = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some(rest) = typed
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = match expected {
            "u32" => "a whole number from 0 to 4294967295",
            "u64" => "a whole number of 0 or more",
            "f64" => "a number",
            "a sequence" => "an array",
            "a map" => "a table",
            "a boolean" => "true or false",
            e if e.starts_with("struct ") => "a table",
            e => e,
        };
        let found = found.replace('`', "");
        return Rewritten::Other(format!("expected {expected}, found {found}"));
    }
    Rewritten::Other(message.to_owned())
}

pub(crate) fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        Err("must not be empty".to_owned())
    } else if path.contains('\0') {
        Err("must not contain a NUL character".to_owned())
    } else {
        Ok(())
    }
}

/// A value passed to a program as one argument: it must not be mistaken for an option.
pub(crate) fn check_argument(arg: &str) -> std::result::Result<(), String> {
    check_path(arg)?;
    if arg.starts_with('-') {
        return Err(format!(
            "{arg:?} must not start with '-': the program would read it as an option"
        ));
    }
    Ok(())
}

/// `service[0].check[1].policy.kind`, without the markers that `toml::Spanned` adds.
pub(crate) fn path_to_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } if k.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {}
        }
    }
    key
}

/// Refuse keys that the chosen kind does not take, naming the ones it does.
pub(crate) fn only_keys(
    ctx: &Ctx<'_>,
    key: &str,
    kind: &str,
    present: &[(&str, Range<usize>)],
    allowed: &[&str],
) -> Result<()> {
    for (name, span) in present {
        if !allowed.contains(name) {
            return Err(ctx.err(
                span.clone(),
                join_key(key, name),
                format!(
                    "not allowed with kind = {kind:?}; allowed keys: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// What a name names decides which characters it may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// autoscale's own names (services, checks, Prometheus instances), and the Swarm service a scaler targets
    /// until Swarm's own rule checks it: they appear in metric labels, file names and command arguments.
    /// Names that Docker governs are checked with [`autoscale_docker::NameRule`] instead.
    Service,
    /// Environment variable names.
    EnvVar,
}

pub(crate) fn check_name(name: &str, kind: NameKind) -> std::result::Result<(), String> {
    type CharTest = fn(char) -> bool;
    let (first_ok, rest_ok, max, rule): (CharTest, CharTest, usize, &str) = match kind {
        NameKind::Service => (
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
            63,
            "1 to 63 characters: letters, digits, '_', '.' and '-', starting with a letter or digit",
        ),
        NameKind::EnvVar => (
            |c| c.is_ascii_alphabetic() || c == '_',
            |c| c.is_ascii_alphanumeric() || c == '_',
            255,
            "letters, digits and '_', not starting with a digit",
        ),
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(first_ok) && chars.all(rest_ok) && name.len() <= max;
    if valid {
        Ok(())
    } else {
        Err(format!("invalid name {name:?}: expected {rule}"))
    }
}
