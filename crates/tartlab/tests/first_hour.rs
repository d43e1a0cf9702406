//! The first hour of a new user (issue 28), through the binary against tart-sim: `exec` in
//! the shape of `ssh NODE COMMAND`, stdin that reaches the command, root by the login user's
//! sudo for `ssh`, `exec` and `cp`, `exec` while an `up` holds the lab, `cp` to and from
//! several nodes, and a local tree that cannot be copied found before anything is sent.

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
