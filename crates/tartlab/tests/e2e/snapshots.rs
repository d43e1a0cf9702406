//! `tartlab snapshot` end to end against tart-sim: a provisioned lab saved, broken (a file
//! deleted, a hostname changed, a VM deleted with `tart delete`) and restored with each
//! node's address and host key; a subset restore; a restore after `down --keep-snapshots`;
//! a foreign VM in a snapshot VM's place left alone.

use crate::support::{self, Lab};

/// Two nodes; a step that counts its runs in a guest file, and a worker whose config holds
/// the master's address (as a k3s agent's does).
const LAB: &str = "lab: snap\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\nprovision:\n  - name: count\n    run: echo run >> /var/tmp/count\n  - name: join\n    on: role=worker\n    run: getent hosts dev-master | cut -d' ' -f1 > /var/tmp/master-ip\n";

const NODES: [&str; 2] = ["dev-master", "dev-worker"];

/// How many times the `count` step ran on `vm`.
fn runs(lab: &Lab, vm: &str) -> usize {
    let out = lab.ssh(vm, "cat /var/tmp/count");
    assert_eq!(out.code, 0, "{vm}: {}", out.stderr);
    out.stdout.lines().count()
}

/// The pinned host keys, one line per key, sorted.
fn pinned(lab: &Lab) -> Vec<String> {
    let text = std::fs::read_to_string(lab.lab.join(".tartlab/known_hosts")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn plan_is_empty(lab: &Lab) {
    let plan: serde_json::Value =
        serde_json::from_str(&lab.ok(&["plan", "--json"]).stdout).unwrap();
    for node in plan["nodes"].as_array().unwrap() {
        assert_eq!(node["actions"], serde_json::json!([]), "{node}");
    }
}

fn snapshot_vms(lab: &Lab) -> Vec<String> {
    lab.vms()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".snapshot."))
        .collect()
}

/// Each of `nodes` is as the snapshot had it: its address and MAC of before, its own host
/// name over pinned-key ssh (StrictHostKeyChecking=yes: the host key is the snapshot's),
/// and the counting step run once, before the save.
fn back_as_saved(lab: &Lab, nodes: &[&str], ips: &[String], macs: &[String]) {
    for (i, vm) in nodes.iter().enumerate() {
        assert_eq!(lab.ip(vm), ips[i], "{vm}'s address");
        assert_eq!(lab.mac(vm), macs[i], "{vm}'s MAC");
        assert_eq!(lab.ssh(vm, "hostname").stdout.trim(), *vm);
        assert_eq!(runs(lab, vm), 1, "{vm}: the step ran once, before the save");
    }
}

/// Stops sshd on `vm` from inside (the guest then answers no login), and waits until it
/// no longer answers (at most 15 s).
fn stop_sshd(lab: &Lab, vm: &str) {
    lab.ssh(
        vm,
        "sudo sh -c 'sleep 0.3; pkill -x sshd' >/dev/null 2>&1 </dev/null &",
    );
    let gone = std::time::Instant::now();
    while lab.ssh(vm, "true").code == 0 {
        assert!(gone.elapsed().as_secs() < 15, "sshd still answers on {vm}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_broken_lab_comes_back_from_its_snapshot_with_its_addresses_and_keys() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let ips: Vec<String> = NODES.iter().map(|vm| lab.ip(vm)).collect();
    let macs: Vec<String> = NODES.iter().map(|vm| lab.mac(vm)).collect();
    let keys = pinned(&lab);

    let saved = lab.ok(&["snapshot", "save", "provisioned"]);
    assert!(saved.stdout.contains("2 of 2 nodes ok"), "{}", saved.stdout);
    // Started again as they were, at the same addresses; the snapshot VMs never run.
    for (vm, ip) in NODES.iter().zip(&ips) {
        assert_eq!(&lab.ip(vm), ip);
        assert_eq!(lab.ssh(vm, "true").code, 0);
    }
    let snaps = snapshot_vms(&lab);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(lab
        .vms()
        .iter()
        .all(|(n, running)| !n.contains(".snapshot.") || !running));
    let status = lab.ok(&["status"]);
    assert!(!status.stdout.contains(".snapshot."), "{}", status.stdout);
    let list: serde_json::Value =
        serde_json::from_str(&lab.ok(&["snapshot", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["snapshots"][0]["name"], "provisioned");
    assert_eq!(list["snapshots"][0]["nodes"], serde_json::json!(NODES));
    assert!(list["snapshots"][0]["size_gb"].is_u64(), "{list}");
    let again = lab.tartlab(&["snapshot", "save", "provisioned"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    // Break it: on the master a file deleted, the hostname changed and sshd stopped; the
    // worker's VM deleted with tart.
    assert_eq!(
        lab.ssh(
            "dev-master",
            "sudo rm /var/tmp/count && sudo hostname broken && echo broken | sudo tee /etc/hostname"
        )
        .code,
        0
    );
    stop_sshd(&lab, "dev-master");
    assert_eq!(lab.tart(&["stop", "dev-worker"]).code, 0);
    assert_eq!(lab.tart(&["delete", "dev-worker"]).code, 0);

    let restored = lab.ok(&["snapshot", "restore", "provisioned"]);
    assert!(
        restored.stdout.contains("2 of 2 nodes ok"),
        "{}\n{}",
        restored.stdout,
        restored.stderr
    );
    assert!(
        !restored.stderr.contains("changed anyway"),
        "{}",
        restored.stderr
    );
    back_as_saved(&lab, &NODES, &ips, &macs);
    assert_eq!(pinned(&lab), keys);
    assert_eq!(
        lab.ssh("dev-worker", "cat /var/tmp/master-ip")
            .stdout
            .trim(),
        ips[0]
    );
    plan_is_empty(&lab);
    let up = lab.up_all_ok(2);
    assert!(!up.stdout.contains("ran count"), "{}", up.stdout);
    for vm in NODES {
        assert_eq!(runs(&lab, vm), 1);
    }

    // A subset: only the worker goes back; the master keeps what it has now.
    assert_eq!(
        lab.ssh("dev-master", "echo later | sudo tee /var/tmp/later")
            .code,
        0
    );
    assert_eq!(
        lab.ssh("dev-worker", "echo later | sudo tee /var/tmp/later")
            .code,
        0
    );
    let subset = lab.ok(&["snapshot", "restore", "provisioned", "dev-worker"]);
    assert!(
        subset.stdout.contains("1 of 1 node ok"),
        "{}",
        subset.stdout
    );
    assert_eq!(lab.ssh("dev-master", "cat /var/tmp/later").code, 0);
    assert_ne!(lab.ssh("dev-worker", "cat /var/tmp/later").code, 0);
    assert_eq!(lab.ip("dev-worker"), ips[1]);
    plan_is_empty(&lab);

    // Deleted: its VMs go, nothing else.
    lab.ok(&["snapshot", "delete", "provisioned"]);
    assert!(snapshot_vms(&lab).is_empty());
    assert_eq!(lab.vms().len(), 2);
}

#[test]
fn down_keeps_snapshots_when_asked_and_a_restore_brings_the_lab_back_from_nothing() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let ips: Vec<String> = NODES.iter().map(|vm| lab.ip(vm)).collect();
    lab.ok(&["snapshot", "save", "base"]);
    let down = lab.ok(&["down", "--keep-snapshots"]);
    assert!(
        down.stderr.contains("1 snapshot(s) kept"),
        "{}",
        down.stderr
    );
    assert_eq!(snapshot_vms(&lab).len(), 2);
    assert_eq!(lab.vms().len(), 2, "only the snapshot VMs are left");
    let list = lab.ok(&["snapshot", "list"]);
    assert!(list.stdout.contains("base"), "{}", list.stdout);

    lab.ok(&["snapshot", "restore", "base"]);
    for (vm, ip) in NODES.iter().zip(&ips) {
        assert_eq!(&lab.ip(vm), ip);
        assert_eq!(runs(&lab, vm), 1);
    }
    plan_is_empty(&lab);

    let down = lab.ok(&["down"]);
    assert!(
        down.stderr.contains("1 snapshot(s) deleted"),
        "{}",
        down.stderr
    );
    assert!(lab.vms().is_empty(), "{:?}", lab.vms());
    let list: serde_json::Value =
        serde_json::from_str(&lab.ok(&["snapshot", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["snapshots"], serde_json::json!([]));
}

#[test]
fn a_foreign_vm_named_like_a_snapshot_vm_is_never_touched() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    // Someone else's VM, where the first save of `base` would put dev-worker's copy.
    assert_eq!(
        lab.tart(&[
            "clone",
            "ghcr.io/cirruslabs/ubuntu:latest",
            "dev-worker.snapshot.base.1"
        ])
        .code,
        0
    );
    let foreign = lab.mac("dev-worker.snapshot.base.1");
    let refused = lab.tartlab(&["snapshot", "save", "base"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("dev-worker.snapshot.base.1")
            && refused.stderr.contains("left alone"),
        "{}",
        refused.stderr
    );
    assert_eq!(lab.mac("dev-worker.snapshot.base.1"), foreign);
    assert!(lab
        .vms()
        .iter()
        .filter(|(n, _)| NODES.contains(&n.as_str()))
        .all(|(_, r)| *r));

    // A snapshot VM replaced behind the lab's back is foreign too: neither restored from
    // nor deleted.
    lab.ok(&["snapshot", "save", "other"]);
    assert_eq!(lab.tart(&["delete", "dev-master.snapshot.other.1"]).code, 0);
    assert_eq!(
        lab.tart(&[
            "clone",
            "ghcr.io/cirruslabs/ubuntu:latest",
            "dev-master.snapshot.other.1"
        ])
        .code,
        0
    );
    let intruder = lab.mac("dev-master.snapshot.other.1");
    let refused = lab.tartlab(&["snapshot", "restore", "other"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("no longer the snapshot VM"),
        "{}",
        refused.stderr
    );
    let deleted = lab.ok(&["snapshot", "delete", "other"]);
    assert!(deleted.stderr.contains("left alone"), "{}", deleted.stderr);
    assert_eq!(lab.mac("dev-master.snapshot.other.1"), intruder);
    assert_eq!(lab.mac("dev-worker.snapshot.base.1"), foreign);
}

/// Starts `tartlab ARGS`, freezes it at the first event from `from` on that `wanted`
/// accepts, and kills it there (SIGKILL); returns the event's stage and node.
fn kill_at(
    lab: &Lab,
    args: &[&str],
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let from = lab.events().len();
    let mut child = lab.spawn(args);
    let at = lab.wait_for_event(&mut child, from, what, wanted);
    // Unless it ended with that event (then there is nothing left to cut short).
    if child.try_wait().unwrap().is_none() {
        // SAFETY: signalling our own child, not yet reaped (a zombie at worst).
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    }
    let _ = child.wait();
    let event = &lab.events()[at];
    format!("{} {} {}", event["stage"], event["status"], event["node"])
}

/// An event's stage, status and node (null for the run's own), which together name one
/// point of a command's progress.
type Point = (serde_json::Value, serde_json::Value, serde_json::Value);

fn point(event: &serde_json::Value) -> Point {
    (
        event["stage"].clone(),
        event["status"].clone(),
        event["node"].clone(),
    )
}

/// Every point a whole run of `tartlab ARGS` reports, in the order first seen, but its
/// end (nothing is left to cut short once the run has said it ended).
fn every_point(lab: &Lab, args: &[&str]) -> Vec<Point> {
    let from = lab.events().len();
    lab.ok(args);
    let mut points: Vec<Point> = Vec::new();
    for event in &lab.events()[from..] {
        let p = point(event);
        if event["detail"]["kind"] == "run_finished" || points.contains(&p) {
            continue;
        }
        points.push(p);
    }
    assert!(points.len() > 8, "too few events to kill at: {points:?}");
    points
}

/// Whether the event is at that point.
fn at(wanted: Point) -> impl Fn(&serde_json::Value) -> bool {
    move |e| point(e) == wanted
}

/// What `status` says of the journal a killed command left (checked before the next
/// command settles it): a cut-short save or restore is named with what settles it. Returns
/// whether there was one.
fn status_names_the_cut_short(lab: &Lab, op: &str, killed: &str) -> bool {
    let journal = lab.state().get("journal").cloned();
    let status = lab.ok(&["status"]);
    let said = status
        .stderr
        .contains(&format!("`tartlab snapshot {op} base` was cut short"));
    assert_eq!(
        said,
        journal.is_some(),
        "killed at {killed}: {}",
        status.stderr
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        json["unsettled"].is_null(),
        journal.is_none(),
        "killed at {killed}"
    );
    journal.is_some()
}

#[test]
fn a_save_killed_at_any_event_leaves_the_old_state_or_the_new_and_the_next_command_settles_it() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let ips: Vec<String> = NODES.iter().map(|vm| lab.ip(vm)).collect();
    let points = every_point(&lab, &["snapshot", "save", "base"]);
    lab.ok(&["snapshot", "delete", "base"]);
    let mut cut_short = 0;
    for wanted in points {
        let killed = kill_at(
            &lab,
            &["snapshot", "save", "base"],
            &format!("{wanted:?}"),
            at(wanted.clone()),
        );
        cut_short += usize::from(status_names_the_cut_short(&lab, "save", &killed));
        // Never a half snapshot listed as whole.
        let list: serde_json::Value =
            serde_json::from_str(&lab.ok(&["snapshot", "list", "--json"]).stdout).unwrap();
        let listed = list["snapshots"].as_array().unwrap().len();
        if listed == 1 {
            assert_eq!(snapshot_vms(&lab).len(), 2, "killed at {killed}");
        }
        // The next command settles it and says which, then does its own work (a save
        // killed once whole left no journal: its nodes are only to boot, as `up` does).
        let journal = lab.state().get("journal").is_some();
        let up = lab.ok(&["up"]);
        assert_eq!(
            up.stderr
                .contains("the interrupted `tartlab snapshot save base` was"),
            journal,
            "killed at {killed}: {}",
            up.stderr
        );
        assert!(up.stdout.contains("2 of 2 nodes ok"), "{}", up.stdout);
        assert!(lab.state().get("journal").is_none(), "killed at {killed}");
        let list: serde_json::Value =
            serde_json::from_str(&lab.ok(&["snapshot", "list", "--json"]).stdout).unwrap();
        let whole = list["snapshots"].as_array().unwrap().len();
        assert_eq!(snapshot_vms(&lab).len(), 2 * whole, "killed at {killed}");
        for (vm, ip) in NODES.iter().zip(&ips) {
            assert_eq!(&lab.ip(vm), ip, "killed at {killed}");
            assert_eq!(runs(&lab, vm), 1, "killed at {killed}");
        }
        if whole == 1 {
            lab.ok(&["snapshot", "delete", "base"]);
        }
        assert!(snapshot_vms(&lab).is_empty());
    }
    assert!(cut_short > 0, "no kill left a save to settle");
}

#[test]
fn a_restore_killed_at_any_event_is_finished_by_the_next_command() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let ips: Vec<String> = NODES.iter().map(|vm| lab.ip(vm)).collect();
    let macs: Vec<String> = NODES.iter().map(|vm| lab.mac(vm)).collect();
    lab.ok(&["snapshot", "save", "base"]);
    let points = every_point(&lab, &["snapshot", "restore", "base"]);
    let mut cut_short = 0;
    for wanted in points {
        assert_eq!(lab.ssh("dev-master", "sudo rm -f /var/tmp/count").code, 0);
        let boots: Vec<usize> = NODES.iter().map(|vm| lab.boots(vm)).collect();
        let from = lab.events().len();
        let killed = kill_at(
            &lab,
            &["snapshot", "restore", "base"],
            &format!("{wanted:?}"),
            at(wanted.clone()),
        );
        let journal = status_names_the_cut_short(&lab, "restore", &killed);
        cut_short += usize::from(journal);
        // The run says it started before it writes its journal: a kill in between (a
        // loaded host gives it time) lands before the restore began. Every restore event
        // comes after the journal, so a killed run that left no journal and said nothing
        // past its start changed nothing.
        let begun = journal
            || lab.events()[from..]
                .iter()
                .any(|e| e["detail"]["kind"] != "run_started");
        let up = lab.ok(&["up"]);
        if !begun {
            // The lab is as it was: nothing to finish, no VM booted again, the deleted
            // counter still gone, and `up` has nothing to provision.
            assert!(!up.stderr.contains("interrupted"), "{}", up.stderr);
            assert!(up.stdout.contains("2 of 2 nodes ok"), "{}", up.stdout);
            assert!(lab.state().get("journal").is_none(), "killed at {killed}");
            for (i, vm) in NODES.iter().enumerate() {
                assert_eq!(lab.boots(vm), boots[i], "killed at {killed}: {vm} booted");
                assert_eq!(lab.ip(vm), ips[i], "killed at {killed}: {vm}'s address");
            }
            let count = lab.ssh("dev-master", "cat /var/tmp/count");
            assert_ne!(count.code, 0, "killed at {killed}: {}", count.stdout);
            assert_eq!(runs(&lab, "dev-worker"), 1, "killed at {killed}");
            plan_is_empty(&lab);
            continue;
        }
        assert!(up.stdout.contains("2 of 2 nodes ok"), "{}", up.stdout);
        assert!(lab.state().get("journal").is_none(), "killed at {killed}");
        for (i, vm) in NODES.iter().enumerate() {
            assert_eq!(lab.ip(vm), ips[i], "killed at {killed}: {vm}'s address");
            assert_eq!(lab.mac(vm), macs[i], "killed at {killed}: {vm}'s MAC");
        }
        // A VM whose `tart run` the killed command had just spawned is waited for by `up`
        // (its boot was cut short): once `up` says ok, its guest answers.
        let reach = lab.ssh("dev-master", "true");
        assert_eq!(
            reach.code, 0,
            "killed at {killed}: {}\n{}",
            reach.stderr, up.stderr
        );
        // The restore was finished: the master's counter is back, the step never ran again.
        assert_eq!(
            runs(&lab, "dev-master"),
            1,
            "killed at {killed}: {}",
            up.stderr
        );
        assert_eq!(runs(&lab, "dev-worker"), 1, "killed at {killed}");
        plan_is_empty(&lab);
    }
    assert!(cut_short > 0, "no kill left a restore to finish");
}

#[test]
fn a_save_with_a_stopped_node_leaves_it_stopped_and_a_restore_boots_it() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let ips: Vec<String> = NODES.iter().map(|vm| lab.ip(vm)).collect();
    lab.ok(&["stop", "dev-worker"]);
    let boots = lab.boots("dev-worker");
    let saved = lab.ok(&["snapshot", "save", "half-off"]);
    assert!(saved.stdout.contains("2 of 2 nodes ok"), "{}", saved.stdout);
    let running = |vm: &str| lab.vms().into_iter().any(|(n, r)| n == vm && r);
    assert!(running("dev-master"), "started again: it ran");
    assert!(!running("dev-worker"), "left stopped: it was");
    assert_eq!(lab.boots("dev-worker"), boots);

    lab.ok(&["snapshot", "restore", "half-off"]);
    for (vm, ip) in NODES.iter().zip(&ips) {
        assert!(running(vm), "{vm}");
        assert_eq!(&lab.ip(vm), ip);
        assert_eq!(runs(&lab, vm), 1);
    }
    plan_is_empty(&lab);
}

#[test]
fn a_restore_whose_address_changes_anyway_says_so_and_makes_etc_hosts_again_everywhere() {
    let lab = Lab::new(LAB);
    lab.up_all_ok(2);
    let worker_ip = lab.ip("dev-worker");
    lab.ok(&["snapshot", "save", "base"]);
    // The DHCP server forgets the worker's lease (bootpd's leases expire): its MAC, put back
    // by the restore, then gets a new address.
    assert_eq!(lab.tart(&["stop", "dev-worker"]).code, 0);
    let leases = lab.home.join("sim/dhcpd_leases");
    let text = std::fs::read_to_string(&leases).unwrap();
    let kept: Vec<&str> = text
        .split_inclusive("}\n")
        .filter(|block| !block.contains(&format!("ip_address={worker_ip}\n")))
        .collect();
    assert_ne!(kept.concat(), text, "the worker's lease is in the file");
    std::fs::write(&leases, kept.concat()).unwrap();

    let restored = lab.ok(&["snapshot", "restore", "base", "dev-worker"]);
    let now = lab.ip("dev-worker");
    assert_ne!(now, worker_ip);
    assert!(
        restored
            .stderr
            .contains(&format!("dev-worker {worker_ip} -> {now}"))
            && restored
                .stderr
                .contains("/etc/hosts is made again on every node"),
        "{}",
        restored.stderr
    );
    for vm in NODES {
        let hosts = lab.ssh(vm, "cat /etc/hosts").stdout;
        assert!(
            hosts.contains(&format!("{now} dev-worker")),
            "{vm}: {hosts}"
        );
        assert!(
            !hosts.contains(&format!("{worker_ip} dev-worker")),
            "{vm}: {hosts}"
        );
    }
    assert_eq!(runs(&lab, "dev-worker"), 1);
}

/// The seed lab (examples/seed-lab.yaml: three clusters of a master and two workers) with
/// the counting step and the workers' join step.
fn seed_lab() -> String {
    let seed = std::fs::read_to_string(support::examples().join("seed-lab.yaml")).unwrap();
    format!(
        "{seed}provision:\n  - name: count\n    run: echo run >> /var/tmp/count\n  - name: join\n    on: role=worker\n    run: getent hosts $(hostname | sed 's/-worker-.*/-master/') | cut -d' ' -f1 > /var/tmp/master-ip\n"
    )
}

const SEED: [&str; 9] = [
    "dev-master",
    "dev-worker-1",
    "dev-worker-2",
    "stg-master",
    "stg-worker-1",
    "stg-worker-2",
    "prod-master",
    "prod-worker-1",
    "prod-worker-2",
];

#[test]
fn the_seed_lab_broken_in_each_cluster_comes_back_whole_from_its_snapshot() {
    let lab = Lab::new(&seed_lab());
    lab.up_all_ok(9);
    let ips: Vec<String> = SEED.iter().map(|vm| lab.ip(vm)).collect();
    let macs: Vec<String> = SEED.iter().map(|vm| lab.mac(vm)).collect();
    let keys = pinned(&lab);
    let saved = lab.ok(&["snapshot", "save", "provisioned"]);
    assert!(saved.stdout.contains("9 of 9 nodes ok"), "{}", saved.stdout);
    assert_eq!(snapshot_vms(&lab).len(), 9);

    // Broken in each cluster: a file gone on dev's master, a host name changed on a stg
    // worker, sshd stopped on prod's master, a prod worker's VM deleted with tart.
    assert_eq!(lab.ssh("dev-master", "sudo rm /var/tmp/count").code, 0);
    assert_eq!(
        lab.ssh(
            "stg-worker-1",
            "sudo hostname broken && echo broken | sudo tee /etc/hostname"
        )
        .code,
        0
    );
    stop_sshd(&lab, "prod-master");
    assert_eq!(lab.tart(&["stop", "prod-worker-2"]).code, 0);
    assert_eq!(lab.tart(&["delete", "prod-worker-2"]).code, 0);

    let restored = lab.ok(&["snapshot", "restore", "provisioned"]);
    assert!(
        restored.stdout.contains("9 of 9 nodes ok"),
        "{}\n{}",
        restored.stdout,
        restored.stderr
    );
    back_as_saved(&lab, &SEED, &ips, &macs);
    for vm in SEED {
        if vm.contains("-worker-") {
            // The join step's record of its master's address still points at the master.
            let (cluster, _) = vm.split_once("-worker-").unwrap();
            let master = SEED.iter().position(|m| *m == format!("{cluster}-master"));
            assert_eq!(
                lab.ssh(vm, "cat /var/tmp/master-ip").stdout.trim(),
                ips[master.unwrap()],
                "{vm}"
            );
        }
    }
    assert_eq!(pinned(&lab), keys);
    plan_is_empty(&lab);
}
