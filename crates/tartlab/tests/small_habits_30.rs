//! The small habits of issue 30, point 8, through the binary: `plan` counts "1 node", the
//! minimal `init` template is a commented lab file whose commented keys are right when
//! uncommented, and `tartlab ssh` with no node logs into a one-node lab's node (as
//! `vagrant ssh` does) or, with several, says which to name.

mod common;

use common::Lab;

const ONE: &str = "lab: small\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";
const TWO: &str = "lab: small\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n";

#[test]
fn plan_counts_one_node_in_the_singular() {
    let lab = Lab::new(ONE);
    let plan = lab.ok(&["plan"]);
    insta::assert_snapshot!("plan_of_one_node", plan.stdout);
    assert!(
        plan.stdout.contains("lab `small`: 1 node (hostname"),
        "{}",
        plan.stdout
    );
    lab.write("tartlab.yaml", TWO);
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout.contains("lab `small`: 2 nodes (hostname"),
        "{}",
        plan.stdout
    );
}

#[test]
fn the_minimal_template_is_commented_and_its_comments_are_keys_that_work() {
    let lab = Lab::new(ONE);
    let dir = lab.dir.path().join("fresh");
    lab.ok(&["init", dir.to_str().unwrap()]);
    let text = std::fs::read_to_string(dir.join("tartlab.yaml")).unwrap();
    let comments = text
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(
        comments >= 20,
        "a commented file, not one comment line: {text}"
    );
    for key in [
        "defaults:",
        "image:",
        "memory:",
        "count:",
        "role:",
        "provision:",
        "users:",
    ] {
        assert!(
            text.contains(&format!("# {key}")) || text.contains(&format!("#   {key}")),
            "{key}: {text}"
        );
    }
    // Uncommented (the users' key file aside, which this machine has not), it is valid.
    let uncommented: String = text
        .lines()
        .filter(|l| !l.contains("authorized_keys"))
        .map(uncomment)
        .collect::<Vec<_>>()
        .join("\n");
    lab.write("uncommented.yaml", &uncommented);
    let valid = lab.tartlab(&["validate", "-f", "uncommented.yaml"]);
    assert_eq!(valid.code, 0, "{uncommented}\n{}", valid.stderr);
    assert!(
        valid.stdout.contains("(3 nodes in 1 cluster)"),
        "{}",
        valid.stdout
    );
}

/// A line with its `# ` taken out when what follows is a key (`key: ...`, `- key: ...`,
/// indented or not); prose comments stay.
fn uncomment(line: &str) -> String {
    let Some(at) = line.find("# ") else {
        return line.to_string();
    };
    let (indent, rest) = (&line[..at], &line[at + 2..]);
    let body = rest.trim_start().trim_start_matches("- ");
    let key = body.split(':').next().unwrap_or("");
    let is_key = indent.trim().is_empty()
        && body.contains(':')
        && !key.is_empty()
        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if is_key {
        format!("{indent}{rest}")
    } else {
        line.to_string()
    }
}

#[test]
fn ssh_without_a_node_logs_into_the_only_one_or_asks_which() {
    let lab = Lab::new(ONE);
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
    let out: common::Out = child.wait_with_output().unwrap().into();
    // The login shell's banner, then what `hostname` printed.
    assert!(
        out.stdout.trim_end().ends_with("\ndev-vm"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(plain.stdout.trim(), "dev-vm");
    lab.ok(&["down"]);

    let lab = Lab::new(TWO);
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
