//! The first hour of a new user (issue 28), through the binary against tart-sim: `exec` in
//! the shape of `ssh NODE COMMAND`, stdin that reaches the command, root by the login user's
//! sudo for `ssh`, `exec` and `cp`, `exec` while an `up` holds the lab, `cp` to and from
//! several nodes, a local tree that cannot be copied found before anything is sent, an image
//! reference tart could not read refused where it goes wrong, and an image that cannot be
//! pulled failing only its own nodes.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Lab, Out};

const TWO: &str = "lab: first\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n";

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Each node's stdout lines from `exec --json`, in lab order.
fn outputs(out: &Out) -> Vec<(String, String)> {
    json(out)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["stdout"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Finding 5: two nodes on a good image and one on a tag the registry does not have.
const ONE_BAD_IMAGE: &str = "lab: first\nclusters:\n  - name: dev\n    nodes:\n      - { name: a }\n      - { name: b }\n      - name: bad\n        image: ghcr.io/cirruslabs/ubuntu:24.4\n";

#[test]
fn an_image_that_cannot_be_pulled_fails_only_its_nodes_and_says_where_and_why() {
    let lab = Lab::new(ONE_BAD_IMAGE);
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "partial: {}\n{}", up.stdout, up.stderr);
    for vm in ["dev-a", "dev-b"] {
        assert_eq!(
            lab.ssh(vm, "hostname").stdout,
            format!("{vm}\n"),
            "{}",
            up.stderr
        );
    }
    // The node, the image, where the lab file gives it, and what the registry said.
    let failure = up
        .stderr
        .lines()
        .find(|l| l.starts_with("error: dev-bad failed at stage `pull`: "))
        .unwrap_or_else(|| panic!("no failure of dev-bad at pull:\n{}", up.stderr));
    for said in [
        "`ghcr.io/cirruslabs/ubuntu:24.4`",
        "(tartlab.yaml:8:16)",
        "the registry answered HTTP 404 while pulling manifest: MANIFEST_UNKNOWN: manifest unknown",
    ] {
        assert!(failure.contains(said), "{said} in {failure}");
    }
    assert!(
        up.stderr
            .contains("hint: fix `image:` at tartlab.yaml:8:16"),
        "{}",
        up.stderr
    );
    let row = up
        .stdout
        .lines()
        .find(|l| l.starts_with("dev-bad "))
        .unwrap();
    assert!(
        row.contains("failed") && row.ends_with("at pull"),
        "{}",
        up.stdout
    );
    assert!(
        up.stdout.contains("up: 2 of 3 nodes ok, 1 failed"),
        "{}",
        up.stdout
    );
    let made: Vec<String> = lab.vms().into_iter().map(|(vm, _)| vm).collect();
    assert_eq!(made, ["dev-a", "dev-b"]);
    // The image pulled once each, the missing one too.
    let pulls: Vec<String> = lab
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("pull "))
        .collect();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    // With the tag fixed, the next `up` makes the node and leaves the others running.
    lab.write(
        "tartlab.yaml",
        &ONE_BAD_IMAGE.replace("ubuntu:24.4", "ubuntu:24.04"),
    );
    lab.up_all_ok(3);
    assert_eq!(lab.ssh("dev-bad", "hostname").stdout, "dev-bad\n");
    assert_eq!((lab.boots("dev-a"), lab.boots("dev-b")), (1, 1));
}

#[test]
fn validate_points_at_the_character_where_an_image_reference_goes_wrong() {
    let lab = Lab::new("lab: first\nclusters:\n  - name: dev\n    nodes:\n      - { name: a, image: \"ghcr.io/cirruslabs/ubuntu:24..04\" }\n");
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("error: `ghcr.io/cirruslabs/ubuntu:24..04` is not an image reference"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--> tartlab.yaml:5:57"),
        "{}",
        out.stderr
    );
    // Refused before anything changes: `up` pulls, clones and records nothing.
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(up.stderr.contains("--> tartlab.yaml:5:57"), "{}", up.stderr);
    assert!(
        lab.calls()
            .iter()
            .all(|c| !c.starts_with("pull ") && !c.starts_with("clone ")),
        "{:?}",
        lab.calls()
    );
    assert!(!lab.lab.join(".tartlab/state.json").exists());
}

#[test]
fn exec_takes_a_selector_and_a_command_as_ssh_takes_a_node_and_a_command() {
    let lab = Lab::new(TWO);
    lab.up_all_ok(2);
    // `exec SELECTOR COMMAND...`: the first word selects, the rest (options too) is the command.
    let plain = lab.ok(&["exec", "all", "hostname"]);
    assert!(
        plain.stdout.contains("dev-a | dev-a") && plain.stdout.contains("dev-b | dev-b"),
        "{}",
        plain.stdout
    );
    let with_options = lab.ok(&["exec", "--json", "dev-*", "echo", "-n", "--json", "x y"]);
    assert_eq!(
        outputs(&with_options),
        [
            ("dev-a".to_string(), "--json x y".to_string()),
            ("dev-b".to_string(), "--json x y".to_string())
        ]
    );
    // The forms with `--` as before: several selectors, options among them.
    let several = lab.ok(&["exec", "dev-a", "dev-b", "--json", "--", "hostname"]);
    assert_eq!(outputs(&several).len(), 2);
    let one = lab.ok(&["exec", "-u", "admin", "dev-b", "--json", "--", "id", "-un"]);
    assert_eq!(
        outputs(&one),
        [("dev-b".to_string(), "admin\n".to_string())]
    );
    // No command at all is still a usage error.
    let none = lab.tartlab(&["exec", "all"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("<COMMAND>"), "{}", none.stderr);
}

/// `tartlab ARGS` with `input` on its stdin.
fn with_stdin(lab: &Lab, args: &[&str], input: &[u8]) -> Out {
    let mut child = lab
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A thread, so a command that reads nothing cannot block the write.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap().into();
    writer.join().unwrap();
    out
}

#[test]
fn exec_gives_its_stdin_to_the_command_on_one_node_and_the_same_bytes_to_each_of_several() {
    let lab = Lab::new(TWO);
    lab.up_all_ok(2);
    let one = with_stdin(&lab, &["exec", "dev-a", "--", "cat"], b"hi\n");
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.stdout, "dev-a | hi\n");
    // Several nodes: each reads the same bytes, all of them (more than one SSH window).
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let each = with_stdin(&lab, &["exec", "--json", "all", "--", "md5sum"], &big);
    assert_eq!(each.code, 0, "{}", each.stderr);
    let sum = md5_of(&big);
    for (node, stdout) in outputs(&each) {
        assert_eq!(stdout, format!("{sum}  -\n"), "{node}");
    }
    // Streamed as it comes, as ssh does: a pipe that stays open holds up no command that
    // does not read it.
    let mut open = lab
        .command(&["exec", "all", "--", "hostname"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = open.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = open.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exec waited for its stdin to end"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    drop(held);
    // `-n`, as ssh's: no input at all, the command sees its end at once.
    let none = with_stdin(&lab, &["exec", "-n", "dev-b", "--", "wc", "-c"], b"ignored");
    assert_eq!(none.stdout, "dev-b | 0\n", "{}", none.stderr);
}

/// The MD5 of `data`, by the host's md5sum (the guest's is the same program).
fn md5_of(data: &[u8]) -> String {
    let mut child = std::process::Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

#[test]
fn root_is_reached_by_the_login_users_sudo_for_ssh_exec_and_cp_and_a_user_without_it_is_told() {
    let lab = Lab::new(TWO);
    lab.up_all_ok(2);
    // ssh: the help's own example, a command, and a root shell reading its stdin.
    let listed = lab.ok(&["ssh", "-u", "root", "dev-a", "--", "ls", "-la", "/root"]);
    assert!(listed.stdout.contains(" .."), "{}", listed.stdout);
    assert_eq!(
        lab.ok(&["ssh", "-u", "root", "dev-a", "id", "-u"]).stdout,
        "0\n"
    );
    let shell = with_stdin(&lab, &["ssh", "-u", "root", "dev-a"], b"id -un; pwd\n");
    assert_eq!(shell.code, 0, "{}", shell.stderr);
    assert!(shell.stdout.ends_with("root\n/root\n"), "{}", shell.stdout);
    // exec: the command as root, in root's home, its words as the login shell reads them.
    let exec = lab.ok(&[
        "exec",
        "--user",
        "root",
        "dev-a",
        "--",
        "echo \"$(id -u) $HOME\"; pwd",
    ]);
    assert_eq!(exec.stdout, "dev-a | 0 /root\ndev-a | /root\n");
    // cp both ways, into root-only places, with the owner and mode asked for.
    lab.write("app.conf", "secret=1\n");
    lab.ok(&[
        "cp",
        "-u",
        "root",
        "--owner",
        "admin:admin",
        "--mode",
        "0600",
        "app.conf",
        "dev-a:/etc/",
    ]);
    let stat = lab.ok(&[
        "exec",
        "-u",
        "root",
        "dev-a",
        "stat -c '%U:%G %a' /etc/app.conf",
    ]);
    assert_eq!(stat.stdout, "dev-a | admin:admin 600\n");
    lab.ok(&["cp", "-u", "root", "app.conf", "dev-a:/root/only-root.conf"]);
    let mode = lab.ok(&[
        "exec",
        "-u",
        "root",
        "dev-a",
        "stat -c '%U %a' /root/only-root.conf",
    ]);
    assert_eq!(mode.stdout, "dev-a | root 644\n");
    lab.ok(&["cp", "-u", "root", "dev-a:only-root.conf", "back.conf"]);
    assert_eq!(
        std::fs::read_to_string(lab.lab.join("back.conf")).unwrap(),
        "secret=1\n"
    );
    let refused = lab.tartlab(&["cp", "app.conf", "dev-a:/root/x"]);
    assert!(
        refused.stderr.contains("`--user root` copies as root"),
        "{}",
        refused.stderr
    );
    let bad = lab.tartlab(&[
        "cp",
        "-u",
        "root",
        "--mode",
        "rw",
        "app.conf",
        "dev-a:/root/",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // A login user whose sudo is gone: each command says so, and runs nothing.
    lab.ok(&[
        "exec",
        "-u",
        "root",
        "dev-b",
        "rm",
        "-f",
        "/etc/sudoers.d/admin",
    ]);
    let words = "admin has no passwordless sudo on dev-b (sudo -n refused), and tartlab acts as root by that sudo, so nothing ran";
    for args in [
        &["exec", "-u", "root", "dev-b", "touch", "/tmp/made"][..],
        &["ssh", "-u", "root", "dev-b", "touch", "/tmp/made"],
        &["cp", "-u", "root", "app.conf", "dev-b:/tmp/made"],
    ] {
        let out = lab.tartlab(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("give admin passwordless sudo on the image"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let made = lab.ssh("dev-b", "test -e /tmp/made && echo made || echo absent");
    assert_eq!(made.stdout, "absent\n");
}

/// Lets a held `tart set` go on when dropped (the wrapper waits for this file).
struct Release(std::path::PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[test]
fn exec_ssh_and_cp_during_an_up_say_that_the_up_is_bringing_the_node_up() {
    let lab = Lab::new("lab: busy\nclusters:\n  - name: c\n    nodes: [{ name: n, count: 2 }]\n");
    let hold = lab.dir.path().join("release-set");
    let release = Release(hold.clone());
    let mut up = lab
        .command(&["up"])
        .env("TEST_HOLD_SET", &hold)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lab.calls().iter().any(|c| c.starts_with("set c-n-1")) {
        assert!(up.try_wait().unwrap().is_none(), "up ended before tart set");
        assert!(
            std::time::Instant::now() < deadline,
            "up never reached tart set"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let busy = format!(
        "an `up` (pid {}) is bringing it up; wait for it to end",
        up.id()
    );
    lab.write("x.txt", "x\n");
    for args in [
        &["exec", "c-n-1", "--", "hostname"][..],
        &["ssh", "c-n-1", "true"],
        &["cp", "x.txt", "c-n-1:"],
    ] {
        let out = lab.tartlab(args);
        assert_ne!(out.code, 0, "{args:?}");
        assert!(
            out.stderr.contains("c-n-1 ") && out.stderr.contains(&busy),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("`tartlab up c-n-1`"),
            "{args:?}: {}",
            out.stderr
        );
    }
    drop(release);
    assert_eq!(up.wait().unwrap().code(), Some(0));
    lab.ok(&["exec", "all", "--", "true"]);
    // Once the up is over, a stopped node gets the one command that boots it.
    lab.ok(&["stop", "c-n-2"]);
    let stopped = lab.tartlab(&["exec", "c-n-2", "--", "true"]);
    assert!(
        stopped
            .stderr
            .contains("c-n-2 is stopped: `tartlab up c-n-2` boots it"),
        "{}",
        stopped.stderr
    );
    // The lock file keeps the last holder's pid: a live process that is no tartlab under
    // that number (this test) is not taken for one.
    std::fs::write(
        lab.lab.join(".tartlab/lock"),
        std::process::id().to_string(),
    )
    .unwrap();
    let reused = lab.tartlab(&["exec", "c-n-2", "--", "true"]);
    assert!(
        reused
            .stderr
            .contains("c-n-2 is stopped: `tartlab up c-n-2` boots it"),
        "{}",
        reused.stderr
    );
}

#[test]
fn cp_to_a_selector_copies_to_each_node_and_from_several_into_a_directory_per_node() {
    let lab = Lab::new(TWO);
    lab.up_all_ok(2);
    lab.write("a.txt", "a\n");
    let each = lab.ok(&["cp", "a.txt", "dev-*:/tmp/"]);
    assert!(
        each.stderr.contains("cp: 2 of 2 node(s) copied"),
        "{}",
        each.stderr
    );
    for vm in ["dev-a", "dev-b"] {
        assert_eq!(lab.ssh(vm, "cat /tmp/a.txt").stdout, "a\n", "{vm}");
    }
    // From several nodes: DEST/NODE/NAME, made as needed.
    lab.ok(&["cp", "all:/etc/hostname", "from"]);
    for vm in ["dev-a", "dev-b"] {
        let copied = std::fs::read_to_string(lab.lab.join("from").join(vm).join("hostname"));
        assert_eq!(copied.unwrap(), format!("{vm}\n"));
    }
    // One node refuses: the others are copied, the recap names it, exit 3.
    lab.ok(&["exec", "dev-a", "--", "mkdir /tmp/ro"]);
    lab.ok(&["exec", "dev-b", "--", "mkdir -m 0555 /tmp/ro"]);
    let partial = lab.tartlab(&["cp", "--json", "a.txt", "cluster=dev:/tmp/ro/"]);
    assert_eq!(partial.code, 3, "{}", partial.stderr);
    let results = json(&partial)["results"].as_array().unwrap().clone();
    assert_eq!(
        (results[0]["node"].as_str(), results[0]["copied"].as_u64()),
        (Some("dev-a"), Some(1))
    );
    assert_eq!(results[1]["node"], "dev-b");
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("/tmp/ro/a.txt: permission denied"),
        "{}",
        partial.stdout
    );
    assert!(
        results[1]["hint"]
            .as_str()
            .unwrap()
            .contains("`--user root`"),
        "{}",
        partial.stdout
    );
    let back = lab.tartlab(&["cp", "dev-*:/tmp/ro/a.txt", "back"]);
    assert_eq!(back.code, 3, "{}", back.stderr);
    assert!(
        back.stderr.contains("dev-b") && back.stderr.contains("no such file or directory"),
        "{}",
        back.stderr
    );
    assert!(
        back.stderr.contains("cp: 1 of 2 node(s) copied"),
        "{}",
        back.stderr
    );
    assert_eq!(
        std::fs::read_to_string(lab.lab.join("back/dev-a/a.txt")).unwrap(),
        "a\n"
    );
    // Into a file, from several: refused before anything is read.
    let onto_file = lab.tartlab(&["cp", "all:/etc/hostname", "a.txt"]);
    assert_eq!(onto_file.code, 2, "{}", onto_file.stderr);
    assert!(
        onto_file.stderr.contains("one directory per node"),
        "{}",
        onto_file.stderr
    );
    // A selector that matches nothing names the lab's nodes, as before.
    let none = lab.tartlab(&["cp", "a.txt", "stg-*:/tmp/"]);
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("`stg-*` matches no node"),
        "{}",
        none.stderr
    );
}

#[test]
fn cp_of_a_local_tree_that_cannot_be_copied_says_so_before_connecting_and_leaves_nothing_behind() {
    let lab = Lab::new("lab: first\nclusters:\n  - name: dev\n    nodes: [{ name: a }]\n");
    let tree = lab.lab.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "a\n").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "b\n").unwrap();
    std::os::unix::fs::symlink("/nowhere/at-all", tree.join("sub/broken")).unwrap();
    let said = "cp tree dev-a:/tmp/dst: on this machine, tree/sub/broken is a symbolic link to /nowhere/at-all, which does not exist; nothing was copied";
    // Found before any node is reached: before `up`, there is none to reach.
    let unreached = lab.tartlab(&["cp", "-r", "tree", "dev-a:/tmp/dst"]);
    assert_eq!(unreached.code, 1, "{}", unreached.stderr);
    assert!(unreached.stderr.contains(said), "{}", unreached.stderr);
    lab.up_all_ok(1);
    let out = lab.tartlab(&["cp", "-r", "tree", "dev-a:/tmp/dst"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(said), "{}", out.stderr);
    assert!(
        out.stderr.contains("the problem is here, not on the node"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("remote paths"), "{}", out.stderr);
    assert_eq!(
        lab.ssh("dev-a", "test -e /tmp/dst && echo there || echo absent")
            .stdout,
        "absent\n"
    );
    // A copy the guest stops halfway: what it made goes, what was there stays.
    std::fs::remove_file(tree.join("sub/broken")).unwrap();
    lab.ok(&[
        "exec",
        "dev-a",
        "--",
        "mkdir -p /tmp/dst/tree && echo x > /tmp/dst/tree/sub",
    ]);
    // Copied in name order: a.txt and m/ are made before sub stops the copy.
    std::fs::create_dir_all(tree.join("m")).unwrap();
    std::fs::write(tree.join("m/c.txt"), "c\n").unwrap();
    let stopped = lab.tartlab(&["cp", "-r", "tree", "dev-a:/tmp/dst"]);
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("cp tree dev-a:/tmp/dst: /tmp/dst/tree/sub: exists and is not a directory, so the directory cannot be copied there; what this copy had made on the node was removed"),
        "{}",
        stopped.stderr
    );
    assert_eq!(lab.ssh("dev-a", "ls -A /tmp/dst/tree").stdout, "sub\n");
}
