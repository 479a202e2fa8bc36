//! The README's Get started stays true: the Rust version is the workspace's, the `autoscale.toml` to copy is a
//! valid configuration, and the files its first example reads are in the repository.

use std::path::{Path, PathBuf};

use autoscale_bin::config::Env;
use autoscale_bin::run_with;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The body of the first fenced block of `lang` after `heading`.
fn block_after(text: &str, heading: &str, lang: &str) -> String {
    let section = &text[text.find(heading).expect(heading)..];
    let open = format!("```{lang}\n");
    let start = section.find(&open).expect("a fenced block") + open.len();
    let len = section[start..].find("```").expect("a closed block");
    section[start..start + len].to_owned()
}

#[test]
fn the_readme_opens_with_its_two_commands() {
    let text = readme();
    let first = block_after(&text, "# autoscale", "sh");
    let commands: Vec<_> = first
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -p autoscale-bin -- simulate --pattern spike",
            "scripts/test"
        ]
    );
    assert_eq!(
        text.find("\n## ").map(|i| i + 1),
        text.find("## Get started"),
        "Get started is the first section"
    );
}

#[test]
fn the_rust_version_is_the_workspaces() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("the workspace's rust-version")
        .trim_matches('"');
    let text = readme();
    let get_started = &text[text.find("## Get started").unwrap()..];
    assert!(
        get_started.contains(&format!("Rust {version} or newer")),
        "README's Get started must name Rust {version}"
    );
}

#[test]
fn the_minimal_configuration_is_valid() {
    let toml = block_after(&readme(), "## Get started", "toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("autoscale.toml");
    std::fs::write(&file, &toml).unwrap();
    let mut out = Vec::new();
    run_with(
        ["autoscale", "check", "--config", file.to_str().unwrap()],
        &Env::empty(),
        &mut out,
    )
    .unwrap_or_else(|e| panic!("README's autoscale.toml: {e}\n{toml}"));
    let resolved = String::from_utf8(out).unwrap();
    assert!(resolved.contains("target = 0.6"), "{resolved}");
}

#[test]
fn the_first_examples_files_are_shipped() {
    let text = readme();
    let example = block_after(&text, "## What would my policy have done?", "sh");
    for word in example.split_whitespace() {
        if word.starts_with("examples/") {
            assert!(
                root().join(word).is_file(),
                "README names {word}, which is missing"
            );
        }
    }
    assert!(
        example.contains("examples/traces/wc98_per_minute.csv"),
        "{example}"
    );
    assert!(
        !text.contains("--trace ../shared"),
        "README examples must not need ../shared"
    );
}
