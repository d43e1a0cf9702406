//! The tartlab binary as a user meets it: version and help.

use std::process::Command;

fn tartlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tartlab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_crate_version() {
    let (code, stdout, _) = tartlab(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("tartlab {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_says_what_the_tool_is_for() {
    let (code, stdout, _) = tartlab(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Usage: tartlab"), "{stdout}");
    assert!(stdout.contains("tart"), "{stdout}");
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_exit_2() {
    let (code, _, stderr) = tartlab(&["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--frobnicate"), "{stderr}");
}
