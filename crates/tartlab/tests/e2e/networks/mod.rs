//! Nodes that reach each other, checked as on a Mac: the simulator keeps guests apart in NAT
//! and plain Softnet as vmnet does, so only a mode that lets VMs talk passes the
//! connectivity check; Softnet that is not set up is refused before anything boots; bridged
//! VMs get their address from the guest agent, never from a stale lease.

mod ready_sooner;

use std::process::Command;

use crate::support::{examples, Lab};

/// A `sudo` on the lab's private PATH that behaves as a Mac user's: this script's body.
fn fake_sudo(lab: &Lab, body: &str) {
    let sudo = lab.bin().join("sudo");
    std::fs::write(&sudo, format!("#!/bin/sh\n{body}\n")).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&sudo)
        .status()
        .unwrap();
}

/// The recap of `up --json` (its last line).
fn recap(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn the_seed_lab_in_the_default_mode_reaches_its_peers_within_each_cluster() {
    let seed = std::fs::read_to_string(examples().join("seed-lab.yaml")).unwrap();
    let lab = Lab::new(&seed);
    let up = lab.ok(&["up", "--json"]);
    let first = recap(&up.stdout);
    for node in first["recap"].as_array().unwrap() {
        let name = node["node"].as_str().unwrap();
        let cluster = name.split('-').next().unwrap();
        let matrix = node["network"]
            .as_object()
            .unwrap_or_else(|| panic!("{node}"));
        assert_eq!(
            matrix.len(),
            2,
            "{name} probes its two cluster peers: {node}"
        );
        for (peer, reached) in matrix {
            assert!(
                peer.starts_with(&format!("{cluster}-")),
                "{name} probed {peer}"
            );
            assert_eq!(reached, true, "{name} -> {peer}");
        }
    }
    // Guest to guest by name, through the /etc/hosts block.
    let by_name = lab.ssh(
        "dev-master",
        "timeout 5 bash -c 'exec 3<>/dev/tcp/dev-worker-1/22' && echo reached",
    );
    assert_eq!(by_name.stdout.trim(), "reached", "{}", by_name.stderr);
    // A converged up checks nothing again (no node or peer booted).
    let again = recap(&lab.ok(&["up", "--json"]).stdout);
    assert!(again["recap"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n.get("network").is_none()));
}

#[test]
fn the_same_lab_in_nat_fails_at_stage_network_on_every_node_with_the_mode_that_works() {
    let seed = std::fs::read_to_string(examples().join("seed-lab.yaml")).unwrap();
    let nat = seed.replace(
        "network: { mode: softnet, allow: [0.0.0.0/0] }",
        "network: nat",
    );
    assert_ne!(nat, seed);
    let lab = Lab::new(&nat);
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    for cluster in ["dev", "stg", "prod"] {
        for node in ["master", "worker-1", "worker-2"] {
            let vm = format!("{cluster}-{node}");
            assert!(
                up.stderr.contains(&format!(
                    "error: {vm} failed at stage `network`: {vm} cannot reach"
                )),
                "{vm}: {}",
                up.stderr
            );
        }
    }
    assert!(up.stderr.contains("(network mode nat)"), "{}", up.stderr);
    assert!(
        up.stderr.contains(
            "in mode nat macOS keeps VMs apart (vmnet's bridge isolation): use the default network"
        ),
        "{}",
        up.stderr
    );
    // Nothing else is broken: every VM runs, provisioned, reachable from the host.
    assert!(
        lab.vms().iter().all(|(_, running)| *running),
        "{:?}",
        lab.vms()
    );
    assert_eq!(
        lab.ssh("stg-worker-2", "hostname").stdout.trim(),
        "stg-worker-2"
    );
    // Back to the default: the nodes restart into it and reach each other.
    lab.write("tartlab.yaml", &seed);
    lab.up_all_ok(9);
}

#[test]
fn softnet_that_is_not_set_up_is_refused_before_anything_boots() {
    let lab = Lab::new("lab: soft\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    // A Mac user's sudo, which wants a password.
    fake_sudo(&lab, "echo 'sudo: a password is required' >&2\nexit 1");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let softnet = lab.bin().join("softnet");
    assert!(
        up.stderr.contains(&format!(
            "error: softnet ({}) can neither run as root (it has no SUID bit) nor through passwordless sudo",
            softnet.display()
        )),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(&format!(
            "`sudo chown root {0} && sudo chmod u+s {0}`",
            softnet.display()
        )),
        "{}",
        up.stderr
    );
    let calls = lab.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("clone") || c.starts_with("run dev-")),
        "nothing was made or booted: {calls:?}"
    );
    // The one-time set-up, as the hint says (here as root already).
    Command::new("chmod")
        .arg("u+s")
        .arg(&softnet)
        .status()
        .unwrap();
    lab.up_all_ok(1);
}

#[test]
fn a_bridged_node_gets_its_address_from_the_guest_agent_never_from_a_stale_lease() {
    let nat = "lab: br\nclusters:\n  - name: dev\n    nodes: [{ name: vm, network: nat }]\n";
    let lab = Lab::new(nat);
    lab.up_all_ok(1);
    let nat_ip = lab.ip("dev-vm");
    lab.write(
        "tartlab.yaml",
        &nat.replace("network: nat", "network: bridged:en0"),
    );
    let up = lab.up_all_ok(1);
    assert!(
        up.stdout.contains("network nat -> bridged:en0"),
        "{}",
        up.stdout
    );
    let bridged_ip = lab.ip("dev-vm");
    assert_ne!(bridged_ip, nat_ip, "not the stale NAT lease");
    // The lease file still holds the NAT lease of the same MAC: tartlab did not take it.
    let dhcp = lab.tart(&["ip", "dev-vm"]);
    assert_eq!(dhcp.stdout.trim(), nat_ip);
    assert_eq!(lab.ssh("dev-vm", "hostname").stdout.trim(), "dev-vm");
    let resolvers: Vec<String> = lab
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("ip dev-vm"))
        .collect();
    assert!(
        resolvers.iter().any(|c| c.contains("--resolver agent")),
        "{resolvers:?}"
    );
}

#[test]
fn on_a_terminal_up_offers_the_softnet_set_up_and_goes_on() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("lab: soft\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    // A Mac user's sudo: no password-less use; with the password (typed here by the test's
    // stand-in), it runs the command.
    fake_sudo(
        &lab,
        "case $1 in -n|--non-interactive) echo 'sudo: a password is required' >&2; exit 1 ;; esac\nexec \"$@\"",
    );
    // `script` gives tartlab a pseudo-terminal, as a user's shell would; "y" answers it.
    let mut script = Command::new("script");
    lab.env(&mut script);
    script
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .args([
            "-qec",
            &format!("{} up", env!("CARGO_BIN_EXE_tartlab")),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = script.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("Run it now? sudo may ask for your password. [y/N]"),
        "{screen}"
    );
    assert!(screen.contains("up: 1 of 1 node ok"), "{screen}");
    let mode = std::fs::metadata(lab.bin().join("softnet"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o4000, 0, "the SUID bit is set");
}
