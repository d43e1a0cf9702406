//! tartlab never clones over, deletes or adopts a VM it did not create, through the binary
//! against tart-sim: a foreign VM with a lab name is reported and left untouched by `up`,
//! `stop`, `start`, `exec` and `down`; a same-named VM with another MAC is not the lab's even
//! though the state names it; `--adopt` takes a foreign VM over only when asked; two labs
//! with the same cluster names are kept apart by `vm_prefix`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, tart_sim, Lab, Out, PAIR};

#[test]
fn a_foreign_vm_with_a_lab_name_is_reported_and_left_untouched() {
    let lab = Lab::new(PAIR);
    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "dev-master"])
            .code,
        0
    );
    let mac = lab.mac("dev-master");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "partial failure\n{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr
            .contains("a VM named dev-master exists, and this lab did not create it"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("--adopt"), "{}", up.stderr);
    assert_eq!(lab.mac("dev-master"), mac, "not cloned over, not re-MACed");
    assert!(
        lab.vms().contains(&("dev-master".to_string(), false)),
        "not started"
    );
    assert!(lab.vms().contains(&("dev-worker".to_string(), true)));
    let status = lab.ok(&["status"]);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("dev-master") && l.contains("foreign")),
        "{}",
        status.stdout
    );
    lab.ok(&["down"]);
    assert_eq!(
        lab.vms(),
        vec![("dev-master".to_string(), false)],
        "down deletes only the lab's VMs"
    );
    assert_eq!(lab.mac("dev-master"), mac);
}

#[test]
fn an_image_change_is_refused_without_recreate_and_adopt_takes_a_foreign_vm_over() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up", "dev-master"]);
    assert_eq!(
        lab.vms(),
        vec![("dev-master".to_string(), true)],
        "only the selected node"
    );
    let changed = PAIR.replace(
        "clusters:",
        "defaults: { image: ghcr.io/cirruslabs/debian:latest }\nclusters:",
    );
    lab.write("tartlab.yaml", &changed);
    let refused = lab.tartlab(&["up", "dev-master"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("was made from ghcr.io/cirruslabs/ubuntu:latest"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--recreate"), "{}", refused.stderr);
    let recreated = lab.ok(&["up", "dev-master", "--recreate"]);
    assert!(
        recreated.stdout.contains("recreated"),
        "{}",
        recreated.stdout
    );
    assert_eq!(
        lab.ssh("dev-master", "hostname").stdout.trim(),
        "dev-master"
    );

    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/debian:latest", "dev-worker"])
            .code,
        0
    );
    let adopted = lab.ok(&["up", "--adopt"]);
    assert!(adopted.stdout.contains("adopted"), "{}", adopted.stdout);
    assert_eq!(
        lab.state()["vms"]["dev-worker"]["mac"],
        lab.mac("dev-worker")
    );
    assert_eq!(
        lab.ssh("dev-worker", "hostname").stdout.trim(),
        "dev-worker"
    );
}

#[test]
fn two_labs_with_the_same_cluster_names_are_kept_apart_by_vm_prefix() {
    let a = Lab::new(&PAIR.replace("lab: pair", "lab: a\nvm_prefix: a-"));
    // The second lab shares the first one's TART_HOME: two labs on one Mac.
    let b_dir = a.dir.path().join("lab-b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::write(
        b_dir.join("tartlab.yaml"),
        PAIR.replace("lab: pair", "lab: b\nvm_prefix: b-"),
    )
    .unwrap();
    let b_up = |args: &[&str]| -> Out { support::output(a.command(args).current_dir(&b_dir)) };
    let mut first = a.spawn(&["up"]);
    let second = b_up(&["up"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(first.wait().unwrap().success());
    let names: Vec<String> = a.vms().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "a-dev-master",
            "a-dev-worker",
            "b-dev-master",
            "b-dev-worker"
        ]
    );
    a.ok(&["down"]);
    assert_eq!(
        a.vms(),
        vec![("b-dev-master".into(), true), ("b-dev-worker".into(), true)],
        "b is untouched"
    );
    assert_eq!(b_up(&["exec", "all", "--", "hostname"]).code, 0);
}

#[test]
fn a_foreign_vm_is_never_touched_by_up_stop_start_exec_or_down() {
    let lab = Lab::new(PAIR);
    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "dev-worker"])
            .code,
        0
    );
    let mac = lab.mac("dev-worker");
    let mut foreign = Command::new(tart_sim());
    foreign
        .args(["run", "dev-worker", "--no-graphics"])
        .env("TART_HOME", &lab.home)
        .env("TART_SIM_BOOT_MS", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut foreign = foreign.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.running("dev-worker") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3);
    assert!(
        up.stderr
            .contains("a VM named dev-worker exists, and this lab did not create it"),
        "{}",
        up.stderr
    );
    lab.ok(&["stop"]);
    assert!(
        lab.running("dev-worker"),
        "stop left the foreign VM running"
    );
    assert!(!lab.running("dev-master"));
    let start = lab.tartlab(&["start"]);
    assert_eq!(start.code, 3, "{}", start.stderr);
    assert!(lab.running("dev-master"), "start booted the lab's own VM");
    assert!(
        start
            .stderr
            .contains("a VM named dev-worker exists, and this lab did not create it"),
        "{}",
        start.stderr
    );
    assert_eq!(lab.boots("dev-worker"), 0, "and never the foreign one");
    let exec = lab.tartlab(&["exec", "all", "--", "touch /var/tmp/touched"]);
    assert_eq!(exec.code, 3, "{}", exec.stderr);
    assert!(
        exec.stderr
            .contains("dev-worker | error: dev-worker has not been created by this lab"),
        "{}",
        exec.stderr
    );
    lab.ok(&["down"]);
    assert_eq!(
        lab.vms(),
        vec![("dev-worker".to_string(), true)],
        "down left it alone"
    );
    assert_eq!(lab.mac("dev-worker"), mac);
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "its tart run still runs"
    );
    let _ = foreign.kill();
    let _ = foreign.wait();
}

#[test]
fn a_same_named_vm_with_another_mac_is_not_the_labs_even_though_the_state_names_it() {
    // The lab's dev-worker was deleted behind its back and a VM of the same name made
    // (another MAC): the state still names dev-worker, but this VM is not the one it made.
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    lab.ok(&["stop", "dev-worker"]);
    assert_eq!(lab.tart(&["delete", "dev-worker"]).code, 0);
    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "dev-worker"])
            .code,
        0
    );
    let mac = lab.mac("dev-worker");
    let boots = lab.boots("dev-worker");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(
        up.stderr
            .contains("a VM named dev-worker exists, and this lab did not create it"),
        "{}",
        up.stderr
    );
    assert!(!lab.running("dev-worker"), "up booted the other VM");
    assert_eq!(lab.boots("dev-worker"), boots);
    assert_eq!(lab.mac("dev-worker"), mac, "nor cloned over it");
    let down = lab.ok(&["down"]);
    assert!(down.stdout.contains("dev-worker") || down.stderr.contains("dev-worker"));
    assert_eq!(
        lab.vms(),
        vec![("dev-worker".to_string(), false)],
        "down deleted only the lab's own VM"
    );
    assert_eq!(lab.mac("dev-worker"), mac);
}
