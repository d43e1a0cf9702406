//! Host folders in the nodes (`mounts:`, issue 32), through the binary: what `validate`
//! refuses, located, before anything runs, and what a provider without host folders says.

use crate::support::Lab;

#[test]
fn a_missing_host_directory_is_refused_by_validate_before_anything_runs() {
    let lab = Lab::new(
        "lab: shared\nclusters:\n  - name: dev\n    nodes:\n      - name: vm\n        mounts:\n          - { host: ./manifests, guest: /srv/manifests, read_only: true }\n",
    );
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("mount host directory `./manifests` does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--> tartlab.yaml:7:21"),
        "{}",
        out.stderr
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(lab.vms().is_empty());
    assert!(lab.calls().iter().all(|c| !c.starts_with("clone")));

    // A file is not a directory either.
    lab.write("manifests", "not a directory\n");
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("mount host path `./manifests` is not a directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_guest_path_of_etc_or_a_relative_one_or_one_taken_twice_is_refused() {
    let lab = Lab::new(
        "lab: shared\ndefaults:\n  mounts:\n    - ./code:/etc\n    - ./code:srv/code\n    - ./code:/srv/code\n    - { host: ./data, guest: /srv/code/ }\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n",
    );
    std::fs::create_dir_all(lab.lab.join("code")).unwrap();
    std::fs::create_dir_all(lab.lab.join("data")).unwrap();
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("mount guest path `/etc` is a system directory"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--> tartlab.yaml:4:7"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("mount guest path `srv/code` is not absolute"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("two mounts on guest path `/srv/code`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--> tartlab.yaml:7:"), "{}", out.stderr);
}

#[test]
fn a_short_form_that_is_not_host_guest_ro_is_refused_and_good_ones_pass() {
    let lab = Lab::new(
        "lab: shared\nclusters:\n  - name: dev\n    mounts: [./code:/srv/code:rx]\n    nodes: [{ name: vm }]\n",
    );
    std::fs::create_dir_all(lab.lab.join("code")).unwrap();
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "mount `./code:/srv/code:rx` is not HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:rw"
        ),
        "{}",
        out.stderr
    );
    lab.write(
        "tartlab.yaml",
        "lab: shared\nclusters:\n  - name: dev\n    mounts: [./code:/srv/code:ro, { host: code, guest: /opt/code }]\n    nodes: [{ name: vm }]\n",
    );
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn orchard_refuses_mounts_with_its_name_and_the_reason() {
    let lab = Lab::new(
        "lab: fleet\nprovider: { orchard: { url: http://127.0.0.1:6120, service_account: ci, token_env: T } }\nclusters:\n  - name: dev\n    nodes:\n      - { name: vm, mounts: [./code:/srv/code] }\n",
    );
    std::fs::create_dir_all(lab.lab.join("code")).unwrap();
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "dev-vm has `mounts`, which the orchard provider cannot do: its VMs run on a worker, which has no way to this Mac's folders"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--> tartlab.yaml:6:"), "{}", out.stderr);
}

/// Waits until tart says `vm` is stopped (a reboot from inside ends a tart VM).
fn wait_stopped(lab: &Lab, vm: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lab.vms().iter().any(|(n, running)| n == vm && *running) {
        assert!(std::time::Instant::now() < deadline, "{vm} never stopped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const BOTH_MOUNTED: &str =
    "mountpoint -q /srv/code && mountpoint -q /srv/manifests && cat /srv/manifests/app.yaml";

#[test]
fn a_node_sees_its_folders_both_ways_read_only_enforced_across_restarts_and_changes() {
    let lab = Lab::new(
        "lab: shared\nclusters:\n  - name: dev\n    nodes:\n      - name: vm\n        mounts:\n          - ./code:/srv/code\n          - { host: ./manifests, guest: /srv/manifests, read_only: true }\n",
    );
    let (code, manifests, extra) = (
        lab.lab.join("code"),
        lab.lab.join("manifests"),
        lab.lab.join("extra"),
    );
    for d in [&code, &manifests, &extra] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(code.join("from-host"), "edited on the Mac\n").unwrap();
    std::fs::write(manifests.join("app.yaml"), "kind: Deployment\n").unwrap();
    std::fs::write(extra.join("chart"), "chart\n").unwrap();
    lab.up_all_ok(1);
    // tart run got them as --dir, one tag each, the read-only one with `ro`.
    let run = lab
        .calls()
        .into_iter()
        .find(|c| c.starts_with("run dev-vm"))
        .unwrap();
    let real = |p: &std::path::Path| std::fs::canonicalize(p).unwrap().display().to_string();
    assert!(
        run.contains(&format!("--dir {}:tag=tartlab-0", real(&code)))
            && run.contains(&format!("--dir {}:ro,tag=tartlab-1", real(&manifests))),
        "{run}"
    );

    // Host to guest, guest to host (as root: the simulator's guest sees the host's owners
    // and modes, and this test's host files are root's).
    let out = lab.ssh(
        "dev-vm",
        "cat /srv/code/from-host && echo 'written in the node' | sudo tee /srv/code/from-guest >/dev/null",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "edited on the Mac\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(code.join("from-guest")).unwrap(),
        "written in the node\n"
    );
    std::fs::write(code.join("later"), "a later edit\n").unwrap();
    let out = lab.ssh("dev-vm", "cat /srv/code/later");
    assert_eq!(out.stdout, "a later edit\n", "{}", out.stderr);
    // The read-only one refuses a write, root's too.
    let out = lab.ssh(
        "dev-vm",
        "cat /srv/manifests/app.yaml && sudo touch /srv/manifests/new",
    );
    assert_eq!(out.stdout, "kind: Deployment\n", "{}", out.stderr);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert!(!manifests.join("new").exists());

    // status --json and config show them.
    let status: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"]).stdout).unwrap();
    let shown = &status["nodes"][0]["mounts"];
    assert_eq!(shown[1]["guest"], "/srv/manifests", "{status}");
    assert_eq!(shown[1]["read_only"], true, "{status}");
    let config = lab.ok(&["config"]).stdout;
    assert!(config.contains("guest: /srv/manifests"), "{config}");

    // A converged up does nothing.
    let boots = lab.boots("dev-vm");
    let plan = lab.ok(&["plan"]).stdout;
    assert!(!plan.contains("restart"), "{plan}");
    lab.up_all_ok(1);
    assert_eq!(lab.boots("dev-vm"), boots);

    // After stop and start.
    lab.ok(&["stop"]);
    lab.ok(&["start"]);
    let out = lab.ssh("dev-vm", BOTH_MOUNTED);
    assert_eq!(out.code, 0, "after stop/start: {}", out.stderr);

    // After a reboot from inside (which ends a tart VM) and an up.
    let _ = lab.ssh("dev-vm", "sudo reboot");
    wait_stopped(&lab, "dev-vm");
    lab.up_all_ok(1);
    let out = lab.ssh("dev-vm", BOTH_MOUNTED);
    assert_eq!(out.code, 0, "after a reboot and up: {}", out.stderr);

    // Adding a mount is planned as a restart, and applied.
    lab.write(
        "tartlab.yaml",
        "lab: shared\nclusters:\n  - name: dev\n    nodes:\n      - name: vm\n        mounts:\n          - ./code:/srv/code\n          - { host: ./manifests, guest: /srv/manifests, read_only: true }\n          - ./extra:/srv/extra:ro\n",
    );
    let plan = lab.ok(&["plan"]).stdout;
    assert!(plan.contains("restart (mounts"), "{plan}");
    lab.up_all_ok(1);
    assert_eq!(lab.boots("dev-vm"), boots + 3);
    let out = lab.ssh("dev-vm", "cat /srv/extra/chart && cat /srv/code/from-host");
    assert_eq!(out.stdout, "chart\nedited on the Mac\n", "{}", out.stderr);

    // Removing one unmounts it on the next up, and its fstab line goes.
    lab.write(
        "tartlab.yaml",
        "lab: shared\nclusters:\n  - name: dev\n    nodes:\n      - name: vm\n        mounts:\n          - ./code:/srv/code\n",
    );
    lab.up_all_ok(1);
    let out = lab.ssh(
        "dev-vm",
        "mountpoint -q /srv/code && ! mountpoint -q /srv/manifests && ! mountpoint -q /srv/extra && ! grep -q /srv/manifests /etc/fstab && ls /srv/manifests | wc -l",
    );
    assert_eq!((out.code, out.stdout.trim()), (0, "0"), "{}", out.stderr);
}
