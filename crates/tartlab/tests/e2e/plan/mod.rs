//! `tartlab plan` and the changes `up` makes to a lab that exists, through the binary
//! against tart-sim: what `plan` says is what `up` then does; a changed cpu restarts only its
//! VM; a lowered count leaves an orphan that `up` keeps and `--remove-orphans` deletes; a disk
//! smaller than the image or the VM is refused before anything changes; one node is counted
//! in the singular.

mod node_names;

use crate::support::{k3s_lab, Lab, K3S_STAND_IN, ONE_NODE, PAIR, TWO_NODES};

#[test]
fn plan_counts_one_node_in_the_singular() {
    let lab = Lab::new(ONE_NODE);
    let plan = lab.ok(&["plan"]);
    insta::assert_snapshot!("plan_of_one_node", plan.stdout);
    assert!(
        plan.stdout.contains("lab `small`: 1 node (hostname"),
        "{}",
        plan.stdout
    );
    lab.write("tartlab.yaml", TWO_NODES);
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout.contains("lab `small`: 2 nodes (hostname"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_changed_cpu_restarts_only_that_vm() {
    let lab = Lab::new(PAIR);
    // This test waits for addresses with `tart ip --wait`, as without a lease file.
    lab.lease_file.set(false);
    lab.ok(&["up"]);
    assert!(lab
        .calls()
        .iter()
        .any(|c| c.starts_with("ip dev-worker --wait")));
    lab.write(
        "tartlab.yaml",
        &PAIR.replace(
            "{ name: worker, role: worker }",
            "{ name: worker, role: worker, cpu: 3 }",
        ),
    );
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout.contains("restart (cpu 2 -> 3)"),
        "{}",
        plan.stdout
    );
    let up = lab.ok(&["up"]);
    assert!(up.stdout.contains("cpu 2 -> 3"), "{}", up.stdout);
    let get: serde_json::Value =
        serde_json::from_str(&lab.tart(&["get", "dev-worker", "--format", "json"]).stdout).unwrap();
    assert_eq!(get["CPU"], 3);
    assert_eq!(lab.boots("dev-worker"), 2);
    assert_eq!(
        lab.boots("dev-master"),
        1,
        "the unchanged VM was not restarted"
    );
    assert_eq!(
        lab.ssh("dev-worker", "hostname").stdout.trim(),
        "dev-worker"
    );
}

#[test]
fn a_lowered_count_leaves_an_orphan_that_up_keeps_and_remove_orphans_deletes() {
    let three = "lab: shrink\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker, count: 3 }\n";
    let lab = Lab::new(three);
    lab.up_all_ok(4);
    lab.write("tartlab.yaml", &three.replace("count: 3", "count: 2"));

    let plan = lab.ok(&["plan"]);
    let row = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("dev-worker-3"))
        .unwrap_or_else(|| panic!("{}", plan.stdout));
    assert!(row.contains("orphan: kept"), "{row}");
    let status = lab.ok(&["status"]);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("dev-worker-3") && l.contains("running (orphan)")),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("--remove-orphans"),
        "{}",
        status.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"]).stdout).unwrap();
    let orphan = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "dev-worker-3")
        .unwrap();
    assert_eq!(orphan["orphan"], true);

    let kept = lab.up_all_ok(3);
    assert!(
        kept.stderr.contains("warning: dev-worker-3 is an orphan"),
        "{}",
        kept.stderr
    );
    assert!(
        lab.vms().contains(&("dev-worker-3".to_string(), true)),
        "kept, running"
    );

    let removed = lab.ok(&["up", "--remove-orphans"]);
    assert!(
        removed.stdout.contains("deleted (orphan)"),
        "{}",
        removed.stdout
    );
    assert_eq!(
        lab.vms(),
        vec![
            ("dev-master".to_string(), true),
            ("dev-worker-1".to_string(), true),
            ("dev-worker-2".to_string(), true)
        ]
    );
    for vm in ["dev-master", "dev-worker-1", "dev-worker-2"] {
        assert_eq!(lab.boots(vm), 1, "{vm} was left alone");
    }
    assert!(lab.state()["vms"].get("dev-worker-3").is_none());

    // `down NODE...` deletes only the selection; a selector that names nothing is refused.
    let unknown = lab.tartlab(&["down", "dev-nothing"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("matches no node"),
        "{}",
        unknown.stderr
    );
    lab.ok(&["down", "dev-worker-2"]);
    assert_eq!(
        lab.vms(),
        vec![
            ("dev-master".to_string(), true),
            ("dev-worker-1".to_string(), true)
        ]
    );
}

#[test]
fn a_disk_smaller_than_the_image_or_the_vm_is_refused_before_anything_changes() {
    let lab =
        Lab::new("lab: disk\nclusters:\n  - name: dev\n    nodes: [{ name: vm, disk: 15 }]\n");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 2, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains(
            "dev-vm: disk 15 GB is smaller than the image's disk (20 GB), and a disk can only grow"
        ),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("tartlab.yaml:4:"),
        "located: {}",
        up.stderr
    );
    assert!(lab.vms().is_empty(), "nothing was created");
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout
            .contains("blocked: disk 15 GB is smaller than the image's disk"),
        "{}",
        plan.stdout
    );

    lab.write(
        "tartlab.yaml",
        "lab: disk\nclusters:\n  - name: dev\n    nodes: [{ name: vm, disk: 25 }]\n",
    );
    lab.up_all_ok(1);
    lab.write(
        "tartlab.yaml",
        "lab: disk\nclusters:\n  - name: dev\n    nodes: [{ name: vm, disk: 22 }]\n",
    );
    let shrink = lab.tartlab(&["up"]);
    assert_eq!(shrink.code, 2, "{}", shrink.stderr);
    assert!(
        shrink
            .stderr
            .contains("smaller than its current disk (25 GB)"),
        "{}",
        shrink.stderr
    );
    assert_eq!(lab.boots("dev-vm"), 1, "not restarted");
}

/// Each node's actions: what `plan --json` expects, or what `up --json` did.
fn actions(json: &serde_json::Value, list: &str) -> Vec<(String, serde_json::Value)> {
    json[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["orphan"] != true)
        .map(|n| {
            let name = n["vm_name"].as_str().or(n["node"].as_str()).unwrap();
            (name.to_string(), n["actions"].clone())
        })
        .collect()
}

#[test]
fn what_plan_says_is_what_up_then_does() {
    let lab = k3s_lab();
    let agree = |when: &str| {
        let plan: serde_json::Value =
            serde_json::from_str(&lab.ok(&["plan", "--json"]).stdout).unwrap();
        let up = lab.ok(&["up", "--json"]);
        let recap: serde_json::Value =
            serde_json::from_str(up.stdout.lines().last().unwrap()).unwrap();
        let planned = actions(&plan, "nodes");
        assert_eq!(planned, actions(&recap, "recap"), "{when}");
        planned
    };
    let fresh = agree("a fresh lab");
    let (_, master) = fresh.iter().find(|(n, _)| n == "k3s-master").unwrap();
    assert_eq!(
        master,
        &serde_json::json!([
            "created",
            "booted",
            "provisioned identity, hosts, files /etc/motd",
            "ran server"
        ])
    );
    let converged = agree("a converged lab");
    assert!(converged.iter().all(|(_, a)| a == &serde_json::json!([])));
    lab.write("files/motd", "a new motd\n");
    let changed = agree("a changed file");
    let (_, worker) = changed.iter().find(|(n, _)| n == "other-worker").unwrap();
    assert_eq!(
        worker,
        &serde_json::json!(["provisioned files /etc/motd", "ran agents"])
    );
    lab.write(
        "tartlab.yaml",
        &K3S_STAND_IN.replace(
            "      - { name: worker, role: worker }\nfiles",
            "      - { name: worker, role: worker, cpu: 3 }\nfiles",
        ),
    );
    let restarted = agree("a changed cpu");
    let (_, worker) = restarted.iter().find(|(n, _)| n == "other-worker").unwrap();
    assert_eq!(worker, &serde_json::json!(["cpu 2 -> 3", "booted"]));
}
