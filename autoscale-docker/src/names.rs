//! Docker's naming rules, checked before anything runs. This module owns them: the configuration loader
//! checks the names it reads with these same rules ([`check`], exported as `check_name`).
//!
//! Names go to the CLI as single arguments, never through a shell, so a metacharacter could not inject a
//! command; they are still rejected, because a name Docker would refuse, or one that is not what the user
//! meant to write, is better reported at start-up than after the first scale action.

use crate::error::Error;

/// One of Docker's naming rules (exported as `NameRule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Compose project names: lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most
    /// 63 characters. (Compose v1 lowercases and strips other characters, v2 rejects them; requiring the
    /// normalised form makes the `com.docker.compose.project` label equal to the configured name under both.
    /// The project prefixes container and network names, hence a DNS label's length.)
    ComposeProject,
    /// Compose service names: letters, digits, `.`, `-` and `_`, starting with a letter or digit, at most 63
    /// characters (the service name is a DNS alias on the project's network).
    ComposeService,
    /// Swarm service names (or IDs): letters, digits, `-` and `_`, starting and ending with a letter or
    /// digit, at most 63 characters (swarmkit's rule: a service name is a DNS label).
    SwarmService,
    /// Compose profile names: letters, digits, `.`, `-` and `_`, starting with a letter or digit, at most 63
    /// characters.
    Profile,
    /// Docker context names: letters, digits, `.`, `+`, `-` and `_`, starting with a letter or digit.
    DockerContext,
}

impl Rule {
    fn what(self) -> &'static str {
        match self {
            Rule::ComposeProject => "compose project name",
            Rule::ComposeService => "compose service name",
            Rule::SwarmService => "swarm service name",
            Rule::Profile => "compose profile name",
            Rule::DockerContext => "docker context name",
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Rule::ComposeProject => {
                "lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters"
            }
            Rule::ComposeService | Rule::Profile => {
                "letters, digits, '.', '-' and '_', starting with a letter or digit, at most 63 characters"
            }
            Rule::SwarmService => {
                "letters, digits, '-' and '_', starting and ending with a letter or digit, at most 63 characters"
            }
            Rule::DockerContext => {
                "letters, digits, '.', '+', '-' and '_', starting with a letter or digit"
            }
        }
    }

    fn max_len(self) -> usize {
        match self {
            Rule::DockerContext => 255,
            Rule::ComposeProject | Rule::ComposeService | Rule::Profile | Rule::SwarmService => 63,
        }
    }

    fn inner_char_ok(self, c: char) -> bool {
        match self {
            Rule::ComposeProject => {
                c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c)
            }
            Rule::ComposeService | Rule::Profile => c.is_ascii_alphanumeric() || "._-".contains(c),
            Rule::SwarmService => c.is_ascii_alphanumeric() || "_-".contains(c),
            Rule::DockerContext => c.is_ascii_alphanumeric() || "._+-".contains(c),
        }
    }

    fn first_char_ok(self, c: char) -> bool {
        match self {
            Rule::ComposeProject => c.is_ascii_lowercase() || c.is_ascii_digit(),
            _ => c.is_ascii_alphanumeric(),
        }
    }
}

const SHELL_METACHARACTERS: &str = ";&|$`<>()\\'\"*?[]{}!#~ \t\n\r";

/// `Ok` if `name` follows `rule`, else an [`Error::InvalidName`] saying which character breaks it and why.
pub fn check(rule: Rule, name: &str) -> Result<(), Error> {
    let reason = violation(rule, name);
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            what: rule.what(),
            name: name.to_owned(),
            reason: format!("{reason} (allowed: {})", rule.allowed()),
        }),
    }
}

fn violation(rule: Rule, name: &str) -> Option<String> {
    if name.is_empty() {
        // Usually a missing setting rather than a typo.
        return Some("it is empty".to_owned());
    }
    if name.chars().count() > rule.max_len() {
        return Some(format!("longer than {} characters", rule.max_len()));
    }
    for (i, c) in name.chars().enumerate() {
        let ok = if i == 0 {
            rule.first_char_ok(c)
        } else {
            rule.inner_char_ok(c)
        };
        if ok {
            continue;
        }
        return Some(if SHELL_METACHARACTERS.contains(c) {
            format!("{c:?} is a shell metacharacter")
        } else if c.is_control() {
            format!("control character {c:?} at position {i}")
        } else if rule == Rule::ComposeProject && c.is_ascii_uppercase() {
            "uppercase letters are not allowed, as Compose lowercases project names".to_owned()
        } else if i == 0 {
            format!("it starts with {c:?}")
        } else {
            format!("{c:?} is not allowed")
        });
    }
    if rule == Rule::SwarmService && !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("it must end with a letter or digit".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(rule: Rule, name: &str) -> String {
        match check(rule, name) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_names_pass() {
        for name in ["webapp", "prometheus-autoscale-sim", "a_b", "0x"] {
            assert_eq!(reason(Rule::ComposeProject, name), "ok", "{name}");
        }
        for name in ["webapp", "Web.App-1", "x"] {
            assert_eq!(reason(Rule::ComposeService, name), "ok", "{name}");
        }
        for name in ["mystack_webapp", "w-1", "ski0j9sh6dxv1cvw750z9bh4y"] {
            assert_eq!(reason(Rule::SwarmService, name), "ok", "{name}");
        }
        assert_eq!(reason(Rule::DockerContext, "prod+eu.1"), "ok");
    }

    #[test]
    fn bad_names_say_why() {
        insta::assert_snapshot!(
            [
                reason(Rule::ComposeProject, ""),
                reason(Rule::ComposeProject, "web;rm -rf /"),
                reason(Rule::ComposeProject, "Web"),
                reason(Rule::ComposeProject, "-p"),
                reason(Rule::ComposeService, "web$(id)"),
                reason(Rule::ComposeService, "web\napp"),
                reason(Rule::ComposeService, "wéb"),
                reason(Rule::SwarmService, "web."),
                reason(Rule::SwarmService, "web_"),
                reason(Rule::SwarmService, &"a".repeat(64)),
                reason(Rule::Profile, "demo`x`"),
                reason(Rule::DockerContext, "prod eu"),
            ]
            .join("\n")
        );
    }

    #[test]
    fn compose_names_are_dns_labels() {
        for rule in [Rule::ComposeProject, Rule::ComposeService, Rule::Profile] {
            assert_eq!(reason(rule, &"a".repeat(63)), "ok", "{rule:?}");
            assert!(check(rule, &"a".repeat(64)).is_err(), "{rule:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_names_hold_no_shell_metacharacter(name in "\\PC{0,20}") {
            for rule in [Rule::ComposeProject, Rule::ComposeService, Rule::SwarmService, Rule::Profile, Rule::DockerContext] {
                if check(rule, &name).is_ok() {
                    prop_assert!(!name.is_empty());
                    prop_assert!(!name.starts_with('-'));
                    prop_assert!(name.chars().all(|c| c.is_ascii() && !SHELL_METACHARACTERS.contains(c)));
                }
            }
        }

        #[test]
        fn names_from_the_allowed_alphabet_pass(name in "[a-z0-9][a-z0-9_-]{0,40}") {
            prop_assert!(check(Rule::ComposeProject, &name).is_ok());
            prop_assert!(check(Rule::ComposeService, &name).is_ok());
        }
    }
}
