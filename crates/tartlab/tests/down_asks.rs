//! `tartlab down` through the binary (issue 30, point 4): on a terminal it lists what it
//! deletes and asks `[y/N]` (`-y`/`--yes` skips the question); off a terminal, or in CI,
//! it asks nothing, as before; a node name that is nearly right gets a "did you mean".

mod common;

use std::process::{Command, Stdio};

use common::Lab;

const TWO: &str = "lab: asks\nclusters:\n  - name: dev\n    nodes: [{ name: web }, { name: db }]\n";

/// `tartlab ARGS` on a terminal (util-linux `script` gives it a pty, and CI is unset),
/// `input` typed at it; its screen is the output's stdout.
fn on_a_terminal(lab: &Lab, args: &str, input: &str) -> common::Out {
    use std::io::Write;
    let found = Command::new("script").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "no util-linux `script` to give tartlab a terminal: apt-get install bsdutils"
    );
    let line = format!("'{}' {args}", env!("CARGO_BIN_EXE_tartlab"));
    let mut cmd = Command::new("script");
    lab.env(&mut cmd);
    cmd.env_remove("CI")
        .env("NO_COLOR", "1")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

fn names(lab: &Lab) -> Vec<String> {
    lab.vms().into_iter().map(|(name, _)| name).collect()
}

#[test]
fn on_a_terminal_down_lists_what_it_deletes_and_no_keeps_it() {
    let lab = Lab::new(TWO);
    lab.ok(&["up"]);
    lab.ok(&["stop", "dev-db"]);
    let no = on_a_terminal(&lab, "down", "n\n");
    assert_eq!(no.code, 1, "{}", no.stdout);
    assert!(
        no.stdout
            .contains("down deletes these VMs, and their disks with them:")
            && no.stdout.contains("  dev-web (running)")
            && no.stdout.contains("  dev-db\r\n")
            && no.stdout.contains("Delete these 2 VMs? [y/N]")
            && no.stdout.contains("down: nothing deleted"),
        "{}",
        no.stdout
    );
    assert_eq!(names(&lab).len(), 2, "nothing was deleted");
    // The end of input is no as well.
    let eof = on_a_terminal(&lab, "down dev-web", "");
    assert_eq!(eof.code, 1, "{}", eof.stdout);
    assert!(
        eof.stdout.contains("Delete this VM? [y/N]"),
        "{}",
        eof.stdout
    );
    assert_eq!(names(&lab).len(), 2);
    let yes = on_a_terminal(&lab, "down dev-web", "y\n");
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert_eq!(names(&lab), ["dev-db"]);
    // `--yes` asks nothing, on a terminal too.
    let skipped = on_a_terminal(&lab, "down --yes", "");
    assert_eq!(skipped.code, 0, "{}", skipped.stdout);
    assert!(!skipped.stdout.contains("[y/N]"), "{}", skipped.stdout);
    assert!(names(&lab).is_empty());
}

#[test]
fn off_a_terminal_down_asks_nothing_and_a_near_name_is_suggested() {
    let lab = Lab::new(TWO);
    lab.ok(&["up"]);
    let wrong = lab.tartlab(&["down", "dev-wbe"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("(did you mean `dev-web`?)"),
        "{}",
        wrong.stderr
    );
    assert_eq!(names(&lab).len(), 2);
    let down = lab.ok(&["down", "-y", "dev-web"]);
    assert!(!down.stderr.contains("[y/N]"), "{}", down.stderr);
    // Piped, without --yes: no question, as scripts expect.
    let down = lab.ok(&["down"]);
    assert!(!down.stderr.contains("[y/N]"), "{}", down.stderr);
    assert!(names(&lab).is_empty());
}
