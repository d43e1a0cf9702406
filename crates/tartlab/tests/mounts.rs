//! Host folders in the nodes (`mounts:`, issue 32), through the binary: what `validate`
//! refuses, located, before anything runs, and what a provider without host folders says.

mod common;

use common::Lab;

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
