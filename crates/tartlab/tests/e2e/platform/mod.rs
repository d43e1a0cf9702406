//! tartlab runs on macOS: the product crate uses no Linux-only API or path (those live in
//! tart-sim and in the tests), every line a Mac compiles type-checks and lints clean for
//! aarch64-apple-darwin (scripts/check-macos.sh, part of the test run), and the Homebrew
//! formula is valid Ruby whose installed files the binary makes.

mod layering;

use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_product_crate_uses_no_linux_only_api_outside_its_tests() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // A file's unit tests are its last part, from `#[cfg(test)]` on.
        let product = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in product.lines().enumerate() {
            for linux_only in [
                "/proc/",
                "std::os::linux",
                "target_os = \"linux\"",
                "libc::prctl",
                "O_DIRECT ",
            ] {
                if line.contains(linux_only) {
                    found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Linux-only code in the product:\n{}",
        found.join("\n")
    );
}

/// The compiler is the check of the `cfg(target_os = "macos")` paths (a test compiled for
/// Linux never sees them): this holds the test run to running it, for every target.
#[test]
fn the_test_run_compiles_and_lints_tartlab_for_the_mac() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let test_run = std::fs::read_to_string(scripts.join("test.sh")).unwrap();
    assert!(
        test_run
            .lines()
            .any(|l| l.trim() == "bash scripts/check-macos.sh"),
        "scripts/test.sh no longer runs scripts/check-macos.sh"
    );
    let check = std::fs::read_to_string(scripts.join("check-macos.sh")).unwrap();
    for needed in [
        "target=aarch64-apple-darwin",
        "-p tartlab --all-targets",
        "cargo check \"${cargo[@]}\"",
        "\"${clippy[@]}\" \"${cargo[@]}\" \"$@\" -- -D warnings",
    ] {
        assert!(check.contains(needed), "check-macos.sh lost `{needed}`");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn the_homebrew_formula_is_ruby_and_installs_what_the_binary_makes() {
    // Here, not at the top: this test is Linux-only, so on a Mac the import would be unused.
    use std::process::Command;

    let formula = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/homebrew/tartlab.rb");
    let check = Command::new("ruby")
        .arg("-c")
        .arg(&formula)
        .output()
        .expect(
            "ruby is missing: scripts/install-deps.sh installs it (Debian's ruby) for this test",
        );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = std::fs::read_to_string(&formula).unwrap();
    assert!(text.contains("generate_completions_from_executable(bin/\"tartlab\", \"completions\")"));
    assert!(text.contains("\"man\", \"--dir\""));
    // What those lines run: each shell's completions, and the man pages.
    let tartlab = env!("CARGO_BIN_EXE_tartlab");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(tartlab)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let pages = tempfile::tempdir().unwrap();
    let out = Command::new(tartlab)
        .args(["man", "--dir"])
        .arg(pages.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(pages.path().join("tartlab.1").is_file());
    assert!(pages.path().join("tartlab-up.1").is_file());
}
