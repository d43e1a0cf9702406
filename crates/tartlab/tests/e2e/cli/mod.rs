//! The tartlab binary as a user meets it: version and help.

mod completion;
mod habits;

use std::path::Path;
use std::process::Command;

use crate::support::tartlab;

#[test]
fn version_prints_the_crate_version_and_the_commit_it_was_built_from() {
    let (code, stdout, _) = tartlab(Path::new("."), &["--version"]);
    assert_eq!(code, 0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(head.len(), 12, "this test runs in the repository");
    assert_eq!(
        stdout,
        format!("tartlab {} (commit {head})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_says_what_the_tool_is_for_and_lists_its_commands() {
    let (code, stdout, _) = tartlab(Path::new("."), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Declarative labs of Linux VMs on Apple Silicon Macs with tart"),
        "{stdout}"
    );
    for command in ["init", "up", "status", "ssh", "exec", "down", "doctor"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} is not listed: {stdout}"
        );
    }
    assert!(stdout.contains("docs/LAB-FILE.md"), "{stdout}");
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_exit_2() {
    let (code, _, stderr) = tartlab(Path::new("."), &["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}

#[test]
fn a_bare_tartlab_shows_help_and_exits_2_and_a_parallel_of_0_is_refused_with_the_range() {
    let (code, stdout, stderr) = tartlab(Path::new("."), &[]);
    assert_eq!(
        code, 2,
        "as clap does for a missing subcommand: {stdout}{stderr}"
    );
    assert!(stderr.contains("Usage: tartlab <COMMAND>"), "{stderr}");
    for args in [
        &["up", "--parallel", "0"][..],
        &["exec", "--parallel", "0", "all", "true"],
    ] {
        let (code, _, stderr) = tartlab(Path::new("."), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("invalid value '0' for '--parallel <N>': 0 is not in 1..=1024"),
            "{args:?}: {stderr}"
        );
    }
}
