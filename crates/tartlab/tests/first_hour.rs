//! The first hour of a new user (issue 28), through the binary against tart-sim: `exec` in
//! the shape of `ssh NODE COMMAND`, stdin that reaches the command, root by the login user's
//! sudo for `ssh`, `exec` and `cp`, `exec` while an `up` holds the lab, `cp` to and from
//! several nodes, and a local tree that cannot be copied found before anything is sent.

mod common;

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
