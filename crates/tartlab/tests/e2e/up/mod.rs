//! `tartlab up` end to end: the real binary against tart-sim, checked the way a user would
//! check (tart list, ssh into the VMs, files on the guests): the seed lab comes up, converges
//! and goes down without a trace; a recreate is asked on a terminal; the live line per node;
//! an image that cannot be pulled fails only its nodes; no `tart` says how to get it. Its
//! faults, its lock and the VMs it does not own have modules of their own.

mod concurrency;
mod ownership;
mod reliability;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, examples, Lab, PAIR};

/// A user key for the lab's `devops` user, made with ssh-keygen like a user would.
fn user_key(lab: &Lab) -> std::path::PathBuf {
    // Inside the lab's directory: a lab reads no file outside it unless it says so.
    let key = lab.lab.join("devops_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "devops@test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    key
}

#[test]
fn the_seed_lab_comes_up_converges_and_goes_down_without_a_trace() {
    let seed = std::fs::read_to_string(examples().join("seed-lab.yaml")).unwrap();
    let lab = Lab::new("lab: placeholder\nclusters: []\n");
    let key = user_key(&lab);
    let with_key = seed.replace(
        "    shell: /bin/bash\n",
        &format!(
            "    shell: /bin/bash\n    authorized_keys: [{}.pub]\n",
            key.display()
        ),
    );
    assert_ne!(with_key, seed, "the seed lab's user has a shell line");
    lab.write("tartlab.yaml", &with_key);

    lab.up_all_ok(9);
    let clusters = ["dev", "stg", "prod"];
    let names: Vec<String> = clusters
        .iter()
        .flat_map(|c| {
            [
                format!("{c}-master"),
                format!("{c}-worker-1"),
                format!("{c}-worker-2"),
            ]
        })
        .collect();
    let running: Vec<String> = lab
        .vms()
        .into_iter()
        .filter(|(_, r)| *r)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        running.iter().collect::<BTreeSet<_>>(),
        names.iter().collect::<BTreeSet<_>>()
    );

    let mut machine_ids = BTreeSet::new();
    for vm in &names {
        // The lab user logs in with their own key; the host key is the one tartlab pinned.
        let out = lab.ssh_with(
            &key,
            "devops",
            vm,
            "hostname; cat /etc/machine-id; sudo -n id -u; cat /etc/hosts",
        );
        assert_eq!(out.code, 0, "{vm}: {}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], vm, "hostname of {vm}");
        machine_ids.insert(lines[1].to_string());
        assert_eq!(lines[2], "0", "devops has passwordless sudo on {vm}");
        let cluster = vm.split('-').next().unwrap();
        for other in &names {
            let listed = out
                .stdout
                .lines()
                .any(|l| l.ends_with(&format!(" {other}")) && !l.starts_with("127.0.1.1"));
            assert_eq!(
                listed,
                other.starts_with(&format!("{cluster}-")),
                "{other} in /etc/hosts of {vm}:\n{}",
                out.stdout
            );
        }
    }
    assert_eq!(machine_ids.len(), 9, "every VM has its own machine-id");

    // Converged: nothing is cloned, booted or provisioned again.
    let calls_before = lab.calls().len();
    let again = lab.ok(&["up", "--json"]);
    let recap = again.stdout.lines().last().unwrap();
    let recap: serde_json::Value = serde_json::from_str(recap).unwrap();
    for node in recap["recap"].as_array().unwrap() {
        assert_eq!(node["actions"], serde_json::json!([]), "{node}");
    }
    let new_calls = &lab.calls()[calls_before..];
    assert!(
        new_calls
            .iter()
            .all(|c| c.starts_with("--version") || c.starts_with("list")),
        "a converged up only reads: {new_calls:?}"
    );

    let status = lab.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let states: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["running"; 9]);

    // tartlab never passes a flag `tart run --help` does not list (the seed's BUG-001).
    let help = lab.tart(&["run", "--help"]).stdout;
    for call in lab.calls().iter().filter(|c| c.starts_with("run ")) {
        for flag in call
            .split_whitespace()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap())
        {
            assert!(
                help.contains(flag),
                "{flag} of `tart {call}` is not in tart run --help"
            );
        }
        assert!(!call.contains("--config"));
    }

    let down = lab.ok(&["down"]);
    assert!(
        down.stdout.contains("down: 9 of 9 nodes ok"),
        "{}",
        down.stdout
    );
    assert!(lab.vms().is_empty(), "{:?}", lab.vms());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.processes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lab.processes(), Vec::<String>::new());
    assert_eq!(lab.mounts(), Vec::<String>::new());
    assert_eq!(lab.state()["vms"], serde_json::json!({}));
}

#[test]
fn up_on_a_terminal_asks_before_a_recreate_and_no_leaves_the_vm_as_it_was() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up", "dev-master"]);
    let mac = lab.mac("dev-master");
    let changed = PAIR.replace(
        "clusters:",
        "defaults: { image: ghcr.io/cirruslabs/debian:latest }\nclusters:",
    );
    lab.write("tartlab.yaml", &changed);
    let no = support::on_a_terminal(&lab, "up dev-master", "n\n");
    assert_eq!(no.code, 1, "{}", no.stdout);
    assert!(
        no.stdout
            .contains("  dev-master was made from ghcr.io/cirruslabs/ubuntu:latest")
            && no.stdout.contains("Recreate 1 node(s)? [y/N]"),
        "{}",
        no.stdout
    );
    assert!(
        no.stdout.contains("--recreate"),
        "the blocker's message: {}",
        no.stdout
    );
    assert_eq!(lab.mac("dev-master"), mac, "no: the VM is as it was");
    // Off a terminal nothing is asked.
    let piped = lab.tartlab(&["up", "dev-master"]);
    assert_eq!(piped.code, 1, "{}", piped.stderr);
    assert!(
        !piped.stderr.contains("Recreate 1 node(s)?"),
        "{}",
        piped.stderr
    );
    let yes = support::on_a_terminal(&lab, "up dev-master", "y\n");
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert_ne!(lab.mac("dev-master"), mac, "yes: made anew");
    assert_eq!(
        lab.ssh("dev-master", "hostname").stdout.trim(),
        "dev-master"
    );
}

#[test]
fn without_tart_every_changing_command_says_how_to_get_it() {
    let lab = Lab::new(PAIR);
    let out = lab
        .command(&["up"])
        .env("TARTLAB_TART", "/nonexistent/tart")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot find tart: /nonexistent/tart does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("brew install cirruslabs/cli/tart"),
        "{stderr}"
    );
}

#[test]
fn on_a_terminal_up_draws_a_live_line_per_node_and_honours_no_color() {
    let lab = Lab::new(PAIR);
    // `script` gives tartlab a pseudo-terminal, as a user's shell would.
    let on_terminal = |args: &str, no_color: bool| -> (i32, String) {
        let mut script = Command::new("script");
        lab.env(&mut script);
        script.env_remove("CI").args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_tartlab")),
            "/dev/null",
        ]);
        if no_color {
            script.env("NO_COLOR", "1");
        }
        let out = script.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, screen) = on_terminal("up", false);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("\x1b[2K"),
        "lines are redrawn in place: {screen}"
    );
    assert!(
        screen.contains("\x1b[32m+\x1b[0m dev-master"),
        "a green mark when ready: {screen}"
    );
    assert!(screen.contains("up: 2 of 2 nodes ok"), "{screen}");
    let (code, screen) = on_terminal("status", true);
    assert_eq!(code, 0);
    assert!(
        !screen.contains("\x1b[3"),
        "no colour with NO_COLOR: {screen}"
    );
    let (code, screen) = on_terminal("down --yes", true);
    assert_eq!(code, 0);
    assert!(screen.contains("+ dev-master"), "{screen}");
    assert!(!screen.contains("\x1b[32m"), "{screen}");
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
