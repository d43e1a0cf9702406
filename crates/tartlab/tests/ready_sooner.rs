//! What a new node costs its guest and its peers (issue 31): the `/etc/hosts` block and the
//! connectivity check are one remote command, and a node with no peers runs neither.

mod common;

use common::Lab;

/// A pair that sees each other and a node alone in its cluster.
const PAIR_AND_LONE: &str = r#"lab: sooner
hosts: cluster
clusters:
  - name: pair
    nodes:
      - { name: a }
      - { name: b }
  - name: lone
    nodes:
      - { name: only }
"#;

/// The remote commands a node's provisioning transcript holds (one `=== ` header each).
fn remote_commands(lab: &Lab, vm: &str) -> usize {
    let log = lab.lab.join(format!(".tartlab/logs/{vm}.provision.log"));
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .lines()
        .filter(|l| l.starts_with("=== "))
        .count()
}

#[test]
fn a_new_node_with_peers_costs_two_remote_commands_and_one_alone_only_its_base() {
    let lab = Lab::new(PAIR_AND_LONE);
    let up = lab.ok(&["up", "--json"]);
    let recap: serde_json::Value = serde_json::from_str(up.stdout.lines().last().unwrap()).unwrap();
    for (vm, peer) in [("pair-a", "pair-b"), ("pair-b", "pair-a")] {
        assert_eq!(
            remote_commands(&lab, vm),
            2,
            "{vm}: the base, then the hosts block with the check\n{}",
            lab.transcript_tails()
        );
        let node = recap["recap"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == vm)
            .unwrap();
        assert_eq!(node["network"][peer], true, "{vm} reaches {peer}: {node}");
        let hosts = lab.ssh(vm, "cat /etc/hosts").stdout;
        assert!(
            hosts.contains(&format!("{} {peer}\n", lab.ip(peer))),
            "{vm}'s /etc/hosts lists {peer}:\n{hosts}"
        );
    }
    assert_eq!(
        remote_commands(&lab, "lone-only"),
        1,
        "a node with no peers runs only its base\n{}",
        lab.transcript_tails()
    );
    let hosts = lab.ssh("lone-only", "cat /etc/hosts").stdout;
    assert!(
        !hosts.contains("# BEGIN tartlab"),
        "no block for a node with no peers:\n{hosts}"
    );
    // Its own name still resolves, through the base's 127.0.1.1 line.
    assert_eq!(
        lab.ssh(
            "lone-only",
            "getent hosts \"$(hostname)\" | awk '{ print $1 }'"
        )
        .stdout
        .trim(),
        "127.0.1.1"
    );
}
