//! What a new node costs its guest and its peers (issue 31): the `/etc/hosts` block and the
//! connectivity check are one remote command, and a node with no peers runs neither.

use crate::support::Lab;

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

/// An nftables table of this test's own that drops ICMP echo requests to one address (a
/// guest whose firewall drops ICMP), removed when dropped.
struct DropsIcmp(String);

impl DropsIcmp {
    fn to(ip: &str) -> DropsIcmp {
        let table = format!("tartlab_test_noicmp_{}", std::process::id());
        let rules = format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook output priority -10; policy accept;\n    ip daddr {ip} icmp type echo-request drop\n  }}\n}}\n"
        );
        nft(&rules);
        DropsIcmp(table)
    }
}

impl Drop for DropsIcmp {
    fn drop(&mut self) {
        nft(&format!("delete table inet {}\n", self.0));
    }
}

fn nft(script: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft refused:\n{script}");
}

/// What `vm`'s last connectivity check said of `peer` (`yes icmp`, `yes tcp`, `no`).
fn last_verdict(lab: &Lab, vm: &str, peer: &str) -> String {
    let log =
        std::fs::read_to_string(lab.lab.join(format!(".tartlab/logs/{vm}.provision.log"))).unwrap();
    let prefix = format!("tartlab-reach: {peer} ");
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{vm} never checked {peer}:\n{log}"))
        .to_string()
}

#[test]
fn the_check_is_an_icmp_echo_and_a_peer_that_drops_icmp_is_reached_on_its_sshd() {
    let lab = Lab::new(PAIR_AND_LONE);
    lab.up_all_ok(3);
    // The peer's kernel answered: its sshd started nothing for the check.
    assert_eq!(last_verdict(&lab, "pair-a", "pair-b"), "yes icmp");
    assert_eq!(last_verdict(&lab, "pair-b", "pair-a"), "yes icmp");

    // pair-b now drops ICMP; pair-a boots again, so it checks its peer again.
    let _firewall = DropsIcmp::to(&lab.ip("pair-b"));
    lab.ok(&["stop", "pair-a"]);
    let up = lab.ok(&["up", "--json"]);
    let recap: serde_json::Value = serde_json::from_str(up.stdout.lines().last().unwrap()).unwrap();
    let a = recap["recap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "pair-a")
        .unwrap();
    assert_eq!(a["network"]["pair-b"], true, "{a}");
    assert_eq!(last_verdict(&lab, "pair-a", "pair-b"), "yes tcp");
}

#[test]
fn an_isolated_peer_is_reported_though_the_check_starts_with_icmp() {
    // NAT: macOS's vmnet keeps the VMs apart, and so does the simulator, for ICMP too.
    let lab = Lab::new(&PAIR_AND_LONE.replace(
        "hosts: cluster\n",
        "hosts: cluster\ndefaults:\n  network: nat\n",
    ));
    let up = lab.tartlab(&["up"]);
    assert_eq!(
        up.code, 3,
        "some nodes failed:\n{}\n{}",
        up.stdout, up.stderr
    );
    for (vm, peer) in [("pair-a", "pair-b"), ("pair-b", "pair-a")] {
        assert!(
            up.stderr.contains(&format!(
                "error: {vm} failed at stage `network`: {vm} cannot reach {peer} ({})",
                lab.ip(peer)
            )),
            "{vm}: {}",
            up.stderr
        );
        assert_eq!(last_verdict(&lab, vm, peer), "no");
    }
    assert!(
        !up.stderr.contains("lone-only failed"),
        "a node with no peers has nothing to reach: {}",
        up.stderr
    );
}
