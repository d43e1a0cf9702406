//! Every way into a node (`ssh`, `exec`, `cp`, `ssh-config`, `inventory`) through the binary
//! against tart-sim, in the shapes people type them: `exec` as `ssh NODE COMMAND`, stdin that
//! reaches the command, root by the login user's sudo, `exec` while an `up` holds the lab,
//! `cp` to and from several nodes, a local tree that cannot be copied found before anything
//! is sent, and `ssh` with no node in a one-node lab. `forward` and the hostile guest's
//! attacks on these commands have modules of their own.

mod forward;
mod hostile_guest;
mod logs;

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{self, Lab, Out, ONE_NODE, PAIR, TWO_CLUSTERS, TWO_NODES};

#[test]
fn ssh_exec_logs_and_cp_take_the_shapes_people_type() {
    let lab = Lab::new(&format!(
        "{TWO_CLUSTERS}provision:\n  - name: hello\n    run: echo hello\n"
    ));
    lab.up_all_ok(3);
    // ssh NODE CMD, as ssh takes it.
    let ssh = lab.ok(&["ssh", "dev-a", "hostname"]);
    assert_eq!(ssh.stdout, "dev-a\n");
    let ssh = lab.ok(&["ssh", "dev-a", "--", "echo", "-n", "x"]);
    assert_eq!(ssh.stdout, "x");
    // Several selectors, lists and globs.
    let exec = lab.ok(&["exec", "dev-*", "stg-a", "--json", "--", "hostname"]);
    let nodes: Vec<String> = exec.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["dev-a", "dev-b", "stg-a"]);
    let by_cluster = lab.ok(&["exec", "cluster=dev,stg", "--json", "--", "true"]);
    assert_eq!(by_cluster.json()["results"].as_array().unwrap().len(), 3);
    let unknown = lab.tartlab(&["exec", "dev-c", "--", "true"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("`dev-c` matches no node of the lab (did you mean `dev-a`?)")
            && unknown.stderr.contains("the nodes are dev-a, dev-b, stg-a"),
        "{}",
        unknown.stderr
    );
    // logs --tail N (the node's last N lines), -F is --follow.
    let tail = lab.ok(&["logs", "--tail", "1", "dev-a"]);
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the node's last line: {}", tail.stdout);
    assert!(lines[0].starts_with("dev-a | "), "{}", tail.stdout);
    assert!(lab
        .command(&["logs", "-F", "dev-a"])
        .arg("--help")
        .output()
        .unwrap()
        .status
        .success());
    // A step name after --reprovision with a space is not taken for a node.
    let step = lab.tartlab(&["up", "--reprovision", "hello"]);
    assert_eq!(step.code, 2, "{}", step.stderr);
    assert!(
        step.stderr.contains("`hello` is a step, not a node"),
        "{}",
        step.stderr
    );
    assert!(
        step.stderr.contains("--reprovision=hello"),
        "{}",
        step.stderr
    );
    let typo = lab.tartlab(&["up", "--reprovision=helo"]);
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr.contains("(did you mean `hello`?)"),
        "{}",
        typo.stderr
    );
    // cp: NODE: is the home; each error with its own hint.
    lab.write("note.txt", "note\n");
    lab.ok(&["cp", "note.txt", "dev-a:"]);
    assert_eq!(lab.ssh("dev-a", "cat ~/note.txt").stdout, "note\n");
    let cases = [
        (
            vec!["cp", "note.txt", "dev-a:/root/x"],
            "permission denied",
            "--user root",
        ),
        (
            vec!["cp", "dev-a:nosuch", "."],
            "no such file or directory",
            "`dev-a:` alone is that home",
        ),
        (vec!["cp", "dev-a:/etc", "."], "is a directory", "add -r"),
        (
            vec!["cp", "note.txt", "dev-c:/tmp"],
            "`dev-c` matches no node",
            "the nodes are dev-a, dev-b, stg-a",
        ),
    ];
    for (args, message, hint) in cases {
        let out = lab.tartlab(&args);
        assert_ne!(out.code, 0, "{args:?}");
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(hint), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.matches(message).count(),
            1,
            "said once: {}",
            out.stderr
        );
    }
    // A VM deleted behind tartlab's back: one command brings it back.
    let deleted = lab.tart(&["stop", "stg-a"]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(lab.tart(&["delete", "stg-a"]).code, 0);
    let ssh = lab.tartlab(&["ssh", "stg-a", "true"]);
    assert!(
        ssh.stderr.contains(
            "stg-a no longer exists (deleted outside tartlab?): `tartlab up stg-a` makes it again"
        ),
        "{}",
        ssh.stderr
    );
}

#[test]
fn ssh_without_a_node_logs_into_the_only_one_or_asks_which() {
    let lab = Lab::new(ONE_NODE);
    lab.ok(&["up"]);
    let plain = lab.ok(&["ssh", "dev-vm", "hostname"]);
    let alone = lab.ok(&["ssh"]);
    // No terminal and no command: the login shell reads the (empty) input and ends.
    assert_eq!(alone.code, 0, "{}", alone.stderr);
    let mut cmd = lab.command(&["ssh"]);
    cmd.stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hostname\n").unwrap();
    }
    let out: support::Out = child.wait_with_output().unwrap().into();
    // The login shell's banner, then what `hostname` printed.
    assert!(
        out.stdout.trim_end().ends_with("\ndev-vm"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(plain.stdout.trim(), "dev-vm");
    lab.ok(&["down"]);

    let lab = Lab::new(TWO_NODES);
    let which = lab.tartlab(&["ssh"]);
    assert_eq!(which.code, 2, "{}", which.stderr);
    assert!(
        which
            .stderr
            .contains("which node? lab `small` has 2 nodes: dev-a, dev-b")
            && which.stderr.contains("tartlab ssh dev-a"),
        "{}",
        which.stderr
    );
}

/// Each node's stdout lines from `exec --json`, in lab order.
fn outputs(out: &Out) -> Vec<(String, String)> {
    out.json()["results"]
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

#[test]
fn exec_takes_a_selector_and_a_command_as_ssh_takes_a_node_and_a_command() {
    let lab = Lab::new(TWO_NODES);
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
    let lab = Lab::new(TWO_NODES);
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
    let lab = Lab::new(TWO_NODES);
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
    let lab = Lab::new(TWO_NODES);
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
    let results = partial.json()["results"].as_array().unwrap().clone();
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

#[test]
fn exec_ssh_and_cp_reach_the_nodes() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);

    let all = lab.ok(&["exec", "all", "--", "hostname"]);
    assert!(
        all.stdout.lines().any(|l| l == "dev-master | dev-master"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.lines().any(|l| l == "dev-worker | dev-worker"),
        "{}",
        all.stdout
    );
    let some = lab.tartlab(&["exec", "all", "--", "test $(hostname) = dev-master"]);
    assert_eq!(some.code, 3, "some nodes failed: {}", some.stderr);
    let json = lab.tartlab(&[
        "exec",
        "role=worker",
        "--json",
        "--",
        "echo out; echo err >&2; exit 4",
    ]);
    assert_eq!(json.code, 1, "every selected node failed");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let worker = &report["results"][0];
    assert_eq!(
        (worker["node"].as_str(), worker["exit_code"].as_u64()),
        (Some("dev-worker"), Some(4))
    );
    assert_eq!(
        (worker["stdout"].as_str(), worker["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );

    // ssh: a command without a terminal, its exit code passed through.
    let out = lab.tartlab(&["ssh", "dev-worker", "--", "echo", "hi;", "exit", "7"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (7, "hi\n"),
        "{}",
        out.stderr
    );

    let local = lab.dir.path().join("payload");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("sub/a.txt"), "alpha\n").unwrap();
    std::fs::write(local.join("b.txt"), "beta\n").unwrap();
    lab.ok(&["cp", "-r", local.to_str().unwrap(), "dev-master:/tmp"]);
    assert_eq!(
        lab.ssh(
            "dev-master",
            "cat /tmp/payload/sub/a.txt /tmp/payload/b.txt"
        )
        .stdout,
        "alpha\nbeta\n"
    );
    let back = lab.dir.path().join("back.txt");
    lab.ok(&[
        "cp",
        "dev-master:/tmp/payload/b.txt",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "beta\n");
    let dir = lab.tartlab(&["cp", local.to_str().unwrap(), "dev-master:/tmp/x"]);
    assert_eq!(dir.code, 1);
    assert!(
        dir.stderr.contains("is a directory") && dir.stderr.contains("add -r"),
        "{}",
        dir.stderr
    );
}

#[test]
fn ssh_config_works_with_ssh_and_the_inventory_with_ansible() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    lab.ok(&["ssh-config"]);
    let config = lab.lab.join(".tartlab/ssh_config");
    let out = Command::new("ssh")
        .args([
            "-F",
            config.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "dev-worker",
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dev-worker\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `tartlab proxy NODE`, the ProxyCommand of a provider whose way in is not plain TCP,
    // carries a whole session: OpenSSH itself, through the dialer, to the pinned key.
    let proxy = format!(
        "ProxyCommand={} proxy -f {} dev-worker",
        env!("CARGO_BIN_EXE_tartlab"),
        lab.lab.join("tartlab.yaml").display()
    );
    let mut through = Command::new("ssh");
    lab.env(&mut through);
    let out = through
        .args(["-F", config.to_str().unwrap(), "-o", &proxy])
        .args(["-o", "BatchMode=yes", "dev-worker", "hostname"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dev-worker\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = lab.tartlab(&["proxy", "dev-nowhere"]);
    assert_eq!(stopped.code, 2, "{}", stopped.stderr);

    let ansible = std::env::var("TARTLAB_TEST_ANSIBLE_INVENTORY")
        .unwrap_or_else(|_| "/opt/tartlab-test-tools/ansible/bin/ansible-inventory".into());
    assert!(
        std::path::Path::new(&ansible).is_file(),
        "{ansible} is missing: scripts/install-deps.sh --with-nextest installs it"
    );
    // YAML and INI files, and `--json` as a dynamic inventory: a script Ansible runs with
    // `--list`, which prints the JSON itself.
    let script = format!(
        "#!/bin/sh\nexec {} inventory --json -f {}\n",
        env!("CARGO_BIN_EXE_tartlab"),
        lab.lab.join("tartlab.yaml").display()
    );
    for (flag, file) in [
        ("", "inventory.yaml"),
        ("--ini", "inventory.ini"),
        ("--json", "inventory.sh"),
    ] {
        if flag == "--json" {
            lab.write(file, &script);
            Command::new("chmod")
                .arg("755")
                .arg(lab.lab.join(file))
                .status()
                .unwrap();
        } else {
            let args: Vec<&str> = if flag.is_empty() {
                vec!["inventory"]
            } else {
                vec!["inventory", flag]
            };
            let text = lab.ok(&args).stdout;
            lab.write(file, &text);
        }
        let parsed = Command::new(&ansible)
            .args(["-i", lab.lab.join(file).to_str().unwrap(), "--list"])
            .env("ANSIBLE_LOCAL_TEMP", lab.dir.path())
            .env("ANSIBLE_HOME", lab.dir.path())
            .output()
            .unwrap();
        assert!(
            parsed.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&parsed.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        assert_eq!(
            list["dev"]["hosts"],
            serde_json::json!(["dev-master", "dev-worker"]),
            "{file}: {list}"
        );
        assert_eq!(
            list["worker"]["hosts"],
            serde_json::json!(["dev-worker"]),
            "{file}"
        );
        let vars = &list["_meta"]["hostvars"]["dev-worker"];
        assert_eq!(
            vars["ansible_host"],
            serde_json::json!(lab.ip("dev-worker")),
            "{file}"
        );
        assert_eq!(vars["ansible_user"], "admin", "{file}");
    }
}
