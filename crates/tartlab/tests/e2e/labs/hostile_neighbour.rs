//! A hostile neighbour: another user of the same Mac who can write where tartlab looks (a
//! shared directory above the lab, tartlab's own data directory, the lab's `.tartlab/`).
//! Each test plays the attack through the binary; docs/RELIABILITY.md, "A hostile
//! neighbour", lists them.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use crate::support::{one_vm_lab, tartlab_with, Lab, ONE_VM};

#[test]
fn links_planted_in_the_state_directory_are_refused_by_name_and_modes_are_private() {
    let lab = Lab::new(&one_vm_lab(""));
    let state = lab.lab.join(".tartlab");
    let victim = lab.dir.path().join("victim");
    let victim_dir = lab.dir.path().join("victim-dir");
    std::fs::create_dir_all(state.join("logs")).unwrap();
    std::fs::create_dir_all(&victim_dir).unwrap();
    for planted in [
        "lock",
        "events.jsonl",
        "state.json",
        "known_hosts",
        "id_ed25519",
        "logs/dev-vm.provision.log",
        "logs/dev-vm.run.log",
    ] {
        std::fs::write(&victim, "precious").unwrap();
        let link = state.join(planted);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for args in [&["up"][..], &["status"], &["logs", ONE_VM]] {
            let out = lab.tartlab(args);
            assert_eq!(out.code, 1, "{planted}, {args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!(
                    ".tartlab/{planted} is a symbolic link; tartlab follows no link in its state directory"
                )),
                "{planted}, {args:?}: {}",
                out.stderr
            );
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_file(&link).unwrap();
    }
    // `logs/` itself, and `.tartlab/` itself.
    std::fs::remove_dir(state.join("logs")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, state.join("logs")).unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("logs is a symbolic link"),
        "{}",
        up.stderr
    );
    std::fs::remove_file(state.join("logs")).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    std::os::unix::fs::symlink(&victim_dir, &state).unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains(".tartlab is a symbolic link"),
        "{}",
        up.stderr
    );
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 0);
    assert!(lab.vms().is_empty(), "nothing was made");
    std::fs::remove_file(&state).unwrap();

    // A lab an older tartlab left open (0755, 0644) is made private by the next `up`.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        state.join("state.json"),
        "{\"version\": 1, \"lab\": \"hostile\", \"vms\": {}}",
    )
    .unwrap();
    std::fs::set_permissions(
        state.join("state.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    lab.up_all_ok(1);
    lab.ok(&["ssh-config"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    let mut files = 0;
    for dir in [state.clone(), state.join("logs")] {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 8,
        "state, lock, key, known hosts, events, logs: {files}"
    );
}

#[test]
fn a_users_links_never_make_root_write_for_them() {
    let users = |shell: &str| {
        one_vm_lab(&format!(
            "users:\n  - {{ name: devops, sudo: none, shell: {shell} }}\n"
        ))
    };
    let lab = Lab::new(&users("/bin/bash"));
    lab.up_all_ok(1);
    lab.as_root(
        ONE_VM,
        "echo precious > /etc/victim && chmod 644 /etc/victim && mkdir -m 755 /etc/victim-dir",
    );
    let key = lab.lab.join(".tartlab/id_ed25519");
    let as_devops = |command: &str| {
        let out = lab.ssh_with(&key, "devops", ONE_VM, command);
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
    };
    let victims = || {
        lab.as_root(ONE_VM, "stat -c '%U %a' /etc/victim /etc/victim-dir && cat /etc/victim && ls -A /etc/victim-dir",
        )
    };
    let untouched = "root 644\nroot 755\nprecious\n";

    // The name root used to write through.
    as_devops("ln -sf /etc/victim ~/.ssh/authorized_keys.tartlab");
    lab.write("tartlab.yaml", &users("/bin/sh"));
    lab.up_all_ok(1);
    assert_eq!(victims(), untouched);
    as_devops("true");

    // `~/.ssh` itself a link to a root directory: the user's keys cannot be written there.
    as_devops("rm -rf ~/.ssh && ln -s /etc/victim-dir ~/.ssh");
    lab.write("tartlab.yaml", &users("/bin/bash"));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("dev-vm failed at stage `base`"),
        "{}",
        up.stderr
    );
    assert_eq!(victims(), untouched);
}

/// A uid no account here has: the neighbour.
const NEIGHBOUR: u32 = 4242;

#[test]
fn a_lab_file_another_user_owns_in_a_parent_directory_is_used_only_when_named_with_f() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (chown)"
    );
    let shared = tempfile::tempdir().unwrap();
    let data = shared.path().join("data");
    let planted = shared.path().join("tartlab.yaml");
    std::fs::write(
        &planted,
        "lab: planted\nclusters:\n  - name: dev\n    nodes: [{ name: a }]\n",
    )
    .unwrap();
    chown(&planted, Some(NEIGHBOUR), None).unwrap();
    let work = shared.path().join("work/deeper");
    std::fs::create_dir_all(&work).unwrap();

    let (code, stdout, stderr) = tartlab_with(&work, &["validate"], &[("TARTLAB_DATA_DIR", &data)]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains("is valid"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "found {}, but it belongs to uid {NEIGHBOUR}, not to you",
            planted.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("`-f {}`", planted.display())),
        "{stderr}"
    );
    // `up` stops there too, before anything is made.
    let (code, _, stderr) = tartlab_with(&work, &["up"], &[("TARTLAB_DATA_DIR", &data)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!shared.path().join(".tartlab").exists());

    // Named, it is the user's choice.
    let (code, stdout, stderr) = tartlab_with(
        &work,
        &["validate", "-f", "../../tartlab.yaml"],
        &[("TARTLAB_DATA_DIR", &data)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("lab `planted` is valid"), "{stdout}");

    // A directory the neighbour owns is not searched above, even for root's own file.
    chown(&planted, Some(0), None).unwrap();
    chown(shared.path().join("work"), Some(NEIGHBOUR), None).unwrap();
    let (code, _, stderr) = tartlab_with(&work, &["validate"], &[("TARTLAB_DATA_DIR", &data)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "up to {}, which belongs to uid {NEIGHBOUR}",
            shared.path().join("work").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("-f FILE"), "{stderr}");
    chown(shared.path().join("work"), Some(0), None).unwrap();
}

#[test]
fn a_labs_index_cut_short_is_moved_aside_with_a_warning_not_read_as_empty() {
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let index = data.join("labs.json");
    let cut = "{\n  \"/srv/a/tartlab.yaml\": {\n    \"lab\": \"a\",\n    \"file\": \"/srv/a/tart";
    std::fs::write(&index, cut).unwrap();
    let (code, _, stderr) = tartlab_with(top.path(), &["labs"], &[("TARTLAB_DATA_DIR", &data)]);
    assert_eq!(code, 0, "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("labs.json.broken-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    assert_eq!(
        std::fs::read_to_string(&aside[0]).unwrap(),
        cut,
        "kept as it was"
    );
    assert!(stderr.contains("warning: the list of labs"), "{stderr}");
    assert!(stderr.contains(&index.display().to_string()), "{stderr}");
    assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
}
