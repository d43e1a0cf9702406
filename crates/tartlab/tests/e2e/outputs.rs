//! Snapshots of what a user reads (issue 34): the real `tartlab` binary's exit code, stdout
//! and stderr for every command's `--help`, `plan`, `status`, the recap of `up`, `doctor` and
//! each class of failure, through one macro (`output_snapshot!`, after uv's `uv_snapshot!`).
//! Values that differ between machines or runs (addresses, times, temporary paths, versions,
//! process ids, key fingerprints) are filtered. Review with `cargo insta review`.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use crate::support::{Lab, Out, PAIR};

/// Filters for outputs that touched VMs: addresses, times, versions, pids, fingerprints.
fn run_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
            "[TIMESTAMP]",
        ),
        // A table's column after a value of varying width: padded to two spaces.
        (
            r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(/\d+)?\b {2,}",
            "[IP]  ",
        ),
        (r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(/\d+)?\b", "[IP]"),
        (r"\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b", "[MAC]"),
        (r"SHA256:[A-Za-z0-9+/=]+", "[FINGERPRINT]"),
        (r"sha256:[0-9a-f]{12,64}", "[DIGEST]"),
        (r"\bpid \d+", "pid [PID]"),
        (r"\[ *\d+(\.\d+)?s\]", "[TIME]"),
        // The IP column is as wide as the longest address: its header and `-` are padded as
        // wide as `[IP]  `, so the columns still line up.
        (r"\bIP {2,}(\S)", "IP    $1"),
        (r" - {2,}(\S)", " -     $1"),
        (r"\bTIME {2,}(\S)", "TIME    $1"),
        (r"\b\d+(\.\d+)?\s?(ms|s|m|h)\b {2,}", "[TIME]  "),
        (r"\b\d+(\.\d+)?\s?(ms|s|m|h)\b", "[TIME]"),
        (r"\b\d+(\.\d+)?\s?([KMGT]i?B) free", "[SIZE] free"),
        (
            r"(tart version +\S+ +)\d+\.\d+(\.\d+)?",
            "${1}[TART_VERSION]",
        ),
        (r"\btart(-sim)? \d+\.\d+(\.\d+)?\b", "tart [TART_VERSION]"),
    ]
}

/// The one-line header of a snapshot's body, then exit code, stdout and stderr, with the
/// temporary directories replaced by names (they are paths, not patterns).
fn render(tmp: Option<&Path>, args: &[&str], out: &Out) -> String {
    let mut text = format!(
        "$ tartlab {}\nexit code: {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
        args.join(" "),
        out.code,
        out.stdout,
        progress_sorted(&out.stderr)
    );
    if let Some(tmp) = tmp {
        let tmp = tmp.display().to_string();
        text = text
            .replace(&format!("{tmp}/lab"), "[LAB]")
            .replace(&format!("{tmp}/home"), "[TART_HOME]")
            .replace(&format!("{tmp}/data"), "[DATA]")
            .replace(&tmp, "[TMP]");
    }
    let version = env!("CARGO_PKG_VERSION");
    text.replace(&format!("tartlab {version}"), "tartlab [VERSION]")
        .replace(&std::env::temp_dir().display().to_string(), "[TEMP]")
}

/// Progress lines (`[  1.2s] node: stage: ...`) interleave nodes as they run and say how
/// far a pull got when it was sampled: sorted, the pull's percentages left out, ahead of the
/// other lines (errors, hints), which keep their order.
fn progress_sorted(stderr: &str) -> String {
    let is_progress = |l: &&str| l.starts_with('[') && l.contains("s] ");
    let mut progress: Vec<&str> = stderr
        .lines()
        .filter(is_progress)
        .filter(|l| !l.trim_end().ends_with('%'))
        // Whether a node waits for a peer's address or sshd depends on which boots first.
        .filter(|l| !(l.contains(": network: waiting for") || l.contains(": hosts: waiting for")))
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    progress.sort_unstable();
    let mut text: String = progress.iter().map(|l| format!("[TIME] {l}\n")).collect();
    for line in stderr.lines().filter(|l| !is_progress(l)) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Runs tartlab with `args` (in `lab`'s environment, or none for help) and snapshots what it
/// printed as `name`.
macro_rules! output_snapshot {
    ($name:expr, $lab:expr, $args:expr) => {{
        let lab: &Lab = $lab;
        let args: &[&str] = $args;
        let out = lab.tartlab(args);
        let text = render(Some(lab.dir.path()), args, &out);
        insta::with_settings!({ filters => run_filters(), prepend_module_to_snapshot => true }, {
            insta::assert_snapshot!($name, text);
        });
        out
    }};
    (help: $name:expr, $args:expr) => {{
        let args: &[&str] = $args;
        let out: Out = Command::new(env!("CARGO_BIN_EXE_tartlab"))
            .args(args)
            .env_remove("COLUMNS")
            .output()
            .unwrap()
            .into();
        let text = render(None, args, &out);
        let filters = vec![(r"\(commit [0-9a-f]+\)", "(commit [COMMIT])")];
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => true }, {
            insta::assert_snapshot!($name, text);
        });
        out
    }};
}

/// The commands `tartlab --help` lists (help aside), each with its `--help` snapshotted.
const COMMANDS: &[&str] = &[
    "init",
    "validate",
    "plan",
    "up",
    "status",
    "stop",
    "start",
    "restart",
    "down",
    "snapshot",
    "ssh",
    "exec",
    "cp",
    "forward",
    "logs",
    "ssh-config",
    "inventory",
    "config",
    "schema",
    "labs",
    "doctor",
    "completions",
    "man",
];

#[test]
fn help_of_every_command() {
    let top = output_snapshot!(help: "help_top", &["--help"]);
    assert_eq!(top.code, 0);
    // The list above is the list the user reads: a new command gets its snapshot.
    let listed: Vec<&str> = top
        .stdout
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert_eq!(listed, COMMANDS);
    for command in COMMANDS {
        let out = output_snapshot!(help: format!("help_{command}"), &[command, "--help"]);
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
    }
    for sub in ["save", "list", "restore", "delete"] {
        let out =
            output_snapshot!(help: format!("help_snapshot_{sub}"), &["snapshot", sub, "--help"]);
        assert_eq!(out.code, 0, "snapshot {sub}: {}", out.stderr);
    }
    let version = output_snapshot!(help: "version", &["--version"]);
    assert_eq!(version.code, 0);
}

#[test]
fn an_unknown_command_and_a_missing_argument() {
    output_snapshot!(help: "error_unknown_command", &["upp"]);
    output_snapshot!(help: "error_missing_argument", &["cp"]);
}

#[test]
fn a_lab_file_error() {
    let lab = Lab::new("lab: bad\nclusters:\n  - name: dev\n    nodes:\n      - { name: vm, cpus: 0, imagee: ubuntu }\n");
    let out = output_snapshot!("error_lab_file_validate", &lab, &["validate"]);
    assert_ne!(out.code, 0);
    let out = output_snapshot!("error_lab_file_up", &lab, &["up"]);
    assert_ne!(out.code, 0);
    let lab = Lab::new("");
    std::fs::remove_file(lab.lab.join("tartlab.yaml")).unwrap();
    let out = output_snapshot!("error_no_lab_file", &lab, &["status"]);
    assert_ne!(out.code, 0);
}

#[test]
fn plan_validate_and_config_of_a_small_lab() {
    let lab = Lab::new(PAIR);
    assert_eq!(
        output_snapshot!("validate_small_lab", &lab, &["validate"]).code,
        0
    );
    assert_eq!(output_snapshot!("plan_small_lab", &lab, &["plan"]).code, 0);
    assert_eq!(
        output_snapshot!("config_small_lab", &lab, &["config"]).code,
        0
    );
    assert_eq!(
        output_snapshot!("status_before_up", &lab, &["status"]).code,
        0
    );
}

#[test]
fn doctor_on_this_machine() {
    let lab = Lab::new(PAIR);
    output_snapshot!("doctor", &lab, &["doctor"]);
}

/// Holds the lab lock as another tartlab would: the lock file names a live pid (this test's).
fn hold_lock(lab: &Lab) -> std::fs::File {
    let path = lab.lab.join(".tartlab/lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    file
}

#[test]
fn a_lab_up_its_status_its_changes_and_its_mistakes() {
    let lab = Lab::new(PAIR);
    let up = output_snapshot!("up_recap", &lab, &["up"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_eq!(
        output_snapshot!("up_again_nothing_to_do", &lab, &["up"]).code,
        0
    );
    assert_eq!(output_snapshot!("status_table", &lab, &["status"]).code, 0);
    assert_eq!(
        output_snapshot!("status_wide", &lab, &["status", "-o", "wide"]).code,
        0
    );
    assert_eq!(
        output_snapshot!("status_json", &lab, &["status", "--json"]).code,
        0
    );
    assert_eq!(output_snapshot!("plan_no_changes", &lab, &["plan"]).code, 0);

    // A change, one node added, and the plan says so.
    lab.write(
        "tartlab.yaml",
        "lab: pair\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master, cpu: 4 }\n      - { name: worker, role: worker }\n      - { name: extra, role: worker }\n",
    );
    assert_eq!(
        output_snapshot!("plan_with_changes", &lab, &["plan"]).code,
        0
    );
    lab.write("tartlab.yaml", PAIR);

    // An unknown node name, with the name meant.
    let out = output_snapshot!(
        "error_unknown_node",
        &lab,
        &["ssh", "dev-mastr", "--", "true"]
    );
    assert_ne!(out.code, 0);
    let out = output_snapshot!(
        "error_unknown_node_exec",
        &lab,
        &["exec", "dev-wroker", "--", "true"]
    );
    assert_ne!(out.code, 0);
    assert_eq!(
        output_snapshot!("exec_recap", &lab, &["exec", "all", "--", "true"]).code,
        0
    );

    // The lab lock held by another tartlab.
    {
        let _held = hold_lock(&lab);
        let out = output_snapshot!("error_lab_locked", &lab, &["up"]);
        assert_ne!(out.code, 0);
    }

    // A VM deleted behind the lab's back.
    assert_eq!(lab.tart(&["stop", "dev-worker"]).code, 0);
    assert_eq!(lab.tart(&["delete", "dev-worker"]).code, 0);
    assert_eq!(
        output_snapshot!("status_missing_vm", &lab, &["status"]).code,
        0
    );
    let out = output_snapshot!(
        "error_missing_vm_ssh",
        &lab,
        &["ssh", "dev-worker", "--", "true"]
    );
    assert_ne!(out.code, 0);

    // The same name taken by a VM of someone else's.
    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "dev-worker"])
            .code,
        0
    );
    let out = output_snapshot!("error_foreign_vm", &lab, &["up", "dev-worker"]);
    assert_ne!(out.code, 0);
    assert_eq!(lab.tart(&["delete", "dev-worker"]).code, 0);

    assert_eq!(output_snapshot!("down", &lab, &["down", "--yes"]).code, 0);
}

#[test]
fn a_node_that_fails_to_boot() {
    let lab = Lab::new("lab: broken\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    std::fs::create_dir_all(lab.home.join("sim")).unwrap();
    std::fs::write(lab.home.join("sim/faults"), "dev-vm run-fails\n").unwrap();
    let out = output_snapshot!("error_boot_fails", &lab, &["up"]);
    assert_ne!(out.code, 0);
}
