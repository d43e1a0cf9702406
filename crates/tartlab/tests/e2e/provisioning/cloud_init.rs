//! `cloud_init:` in the lab file: a node's #cloud-config user-data applied by the guest's
//! own cloud-init (tart-sim's systemd guests carry Debian's cloud-init with every datasource
//! off, as the cirruslabs images do). Through the binary: the example lab comes up with its
//! user, file and command; an error is reported at stage `cloud-init` with the module and
//! the log's tail; unchanged user-data reboots nothing; changed user-data applies again.

use std::path::Path;
use std::process::Command;

use crate::support::{self, examples, Lab};

/// The example lab, copied with its user-data, whose key is replaced by one this test holds.
fn example_lab() -> (Lab, std::path::PathBuf) {
    let lab_text = std::fs::read_to_string(examples().join("cloud-init-lab.yaml")).unwrap();
    let lab = Lab::new(&lab_text);
    lab.use_systemd_guests();
    let key = lab.dir.path().join("alice");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let user_data = std::fs::read_to_string(examples().join("cloud-init/web.yaml")).unwrap();
    let example_key = user_data
        .lines()
        .find(|l| l.trim_start().starts_with("- ssh-ed25519 "))
        .unwrap()
        .trim_start()
        .trim_start_matches("- ")
        .to_string();
    std::fs::create_dir_all(lab.lab.join("cloud-init")).unwrap();
    lab.write(
        "cloud-init/web.yaml",
        &user_data.replace(&example_key, public.trim()),
    );
    (lab, key)
}

fn as_alice(lab: &Lab, key: &Path, vm: &str, command: &str) -> support::Out {
    lab.ssh_with(key, "alice", vm, command)
}

#[test]
fn the_example_lab_is_configured_by_cloud_init_and_left_alone_until_its_user_data_changes() {
    let (lab, key) = example_lab();
    let up = lab.up_all_ok(2);
    assert!(
        up.stdout.contains("cloud-init"),
        "the recap names it: {}",
        up.stdout
    );
    for (vm, role) in [("web-front", "front"), ("web-back", "back")] {
        let out = as_alice(
            &lab,
            &key,
            vm,
            "whoami; cat /etc/lab-node; test -s /var/tmp/cloud-init-ran && echo ran; sudo -n true && echo sudo; cloud-init status",
        );
        assert_eq!(
            out.stdout,
            format!("alice\n{vm}: the {role} node of cluster web in lab cloudy\nran\nsudo\nstatus: done\n"),
            "{vm}: {}",
            out.stderr
        );
        // tartlab's base still holds: its hostname, its pinned host keys (ssh checked them).
        assert_eq!(
            lab.ssh(vm, "hostnamectl --static").stdout,
            format!("{vm}\n")
        );
        assert_eq!(lab.boots(vm), 2, "booted, then once more for cloud-init");
    }
    // Unchanged user-data: nothing reboots.
    let again = lab.up_all_ok(2);
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);
    assert_eq!(lab.boots("web-front"), 2);
    let plan = lab.ok(&["plan"]);
    assert!(plan.stdout.contains("nothing"), "{}", plan.stdout);
    // Changed user-data: planned, then applied again (with a new instance-id).
    let text = std::fs::read_to_string(lab.lab.join("cloud-init/web.yaml")).unwrap();
    lab.write(
        "cloud-init/web.yaml",
        &text.replace(
            "in lab {{ lab.name }}",
            "in lab {{ lab.name }}, second edition",
        ),
    );
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout.contains("provision (cloud-init)"),
        "{}",
        plan.stdout
    );
    lab.up_all_ok(2);
    assert_eq!(lab.boots("web-front"), 3);
    assert_eq!(
        as_alice(&lab, &key, "web-front", "cat /etc/lab-node").stdout,
        "web-front: the front node of cluster web in lab cloudy, second edition\n"
    );
}

#[test]
fn a_user_data_error_fails_its_node_at_stage_cloud_init_with_the_module_and_log() {
    let lab = Lab::new(
        "lab: cloudy\nclusters:\n  - name: good\n    nodes: [{ name: vm }]\n  - name: bad\n    cloud_init: broken.yaml\n    nodes: [{ name: vm }]\n",
    );
    lab.use_systemd_guests();
    lab.write(
        "broken.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo about to fail; exit 7\" ]\n",
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr
            .contains("bad-vm failed at stage `cloud-init`: cloud-init ended with an error"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("scripts"), "the module: {}", up.stderr);
    assert!(
        up.stderr.contains("about to fail"),
        "the log's tail: {}",
        up.stderr
    );
    assert!(up.stderr.contains("fix broken.yaml"), "{}", up.stderr);
    assert!(
        up.stdout.contains("up: 1 of 2 nodes ok, 1 failed"),
        "{}",
        up.stdout
    );
    // Fixed: applied on the next up.
    lab.write(
        "broken.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo fixed > /var/tmp/fixed\" ]\n",
    );
    lab.up_all_ok(2);
    assert_eq!(lab.ssh("bad-vm", "cat /var/tmp/fixed").stdout, "fixed\n");
}

#[test]
fn user_data_that_is_not_cloud_config_is_refused_before_anything_runs() {
    let lab = Lab::new(
        "lab: cloudy\ndefaults:\n  cloud_init: script.sh\nclusters:\n  - name: dev\n    nodes: [{ name: vm, count: 2 }]\n",
    );
    lab.write("script.sh", "#!/bin/sh\necho hi\n");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(
        up.stderr.contains(
            "cloud-init file `script.sh` (for dev-vm-1): its first line is not `#cloud-config`"
        ),
        "{}",
        up.stderr
    );
    assert_eq!(
        up.stderr.matches("cloud-init file").count(),
        1,
        "said once: {}",
        up.stderr
    );
    assert!(lab.vms().is_empty());
}

#[test]
fn a_cloud_init_that_ends_degraded_is_done_with_a_warning_not_a_failure() {
    // cloud-init 23.4 and later (Ubuntu 24.04's) exit 2 for "done, with recoverable errors"
    // (a deprecated key, say); the guest's Debian cloud-init 22.4 never does, so a wrapper
    // in /usr/local/bin (first in sudo's PATH) plays that cloud-init's `status`.
    let lab = Lab::new("lab: cloudy\ndefaults:\n  cloud_init: user-data.yaml\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    lab.use_systemd_guests();
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo one > /var/tmp/edition\" ]\n",
    );
    lab.up_all_ok(1);
    // It lets the real cloud-init end first, so the run it reports on is over.
    let wrapper = "#!/bin/sh\nif [ \"$1\" = status ]; then /usr/bin/cloud-init status --wait >/dev/null 2>&1; /usr/bin/cloud-init \"$@\"; echo \"recoverable_errors: WARNING: a deprecated key\"; exit 2; fi\nexec /usr/bin/cloud-init \"$@\"\n";
    let installed = lab.ssh(
        "dev-vm",
        &format!("printf %s '{wrapper}' | sudo tee /usr/local/bin/cloud-init >/dev/null && sudo chmod 755 /usr/local/bin/cloud-init && {{ sudo cloud-init status > /tmp/status.out; echo $?; tail -n 1 /tmp/status.out; }}"),
    );
    assert_eq!(
        installed.stdout, "2\nrecoverable_errors: WARNING: a deprecated key\n",
        "the wrapper answers: {}",
        installed.stderr
    );
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo two > /var/tmp/edition\" ]\n",
    );
    let up = lab.up_all_ok(1);
    assert!(
        up.stderr.contains("dev-vm: cloud-init done: done, with recoverable errors (`tartlab ssh dev-vm cloud-init status --long` lists them)"),
        "{}",
        up.stderr
    );
    assert_eq!(lab.ssh("dev-vm", "cat /var/tmp/edition").stdout, "two\n");
}

#[test]
fn a_guest_s_cloud_init_status_cannot_drive_the_terminal_and_an_empty_log_is_said() {
    // A guest whose `cloud-init status` names a module made of escape sequences (retitle
    // the window, clear the screen, a green "all modules ok"), and whose output log is
    // empty: a wrapper first in sudo's PATH, as in the degraded test above.
    let lab = Lab::new("lab: cloudy\ndefaults:\n  cloud_init: user-data.yaml\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    lab.use_systemd_guests();
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo one > /var/tmp/edition\" ]\n",
    );
    lab.up_all_ok(1);
    let wrapper = r#"#!/bin/sh
if [ "$1" = status ]; then
  # The real cloud-init ends first: it would write into the log after it was emptied.
  /usr/bin/cloud-init status --wait >/dev/null 2>&1
  : > /var/log/cloud-init-output.log
  printf "errors:\n  - ('\033]0;PWNED-TITLE\007\033[2J\033[1;32mall modules ok\033[0m', 'x')\n"
  exit 1
fi
exec /usr/bin/cloud-init "$@"
"#;
    lab.write("wrapper", wrapper);
    lab.ok(&["cp", "wrapper", "dev-vm:/tmp/wrapper"]);
    let installed = lab.ssh(
        "dev-vm",
        "sudo install -m 755 /tmp/wrapper /usr/local/bin/cloud-init",
    );
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo two > /var/tmp/edition\" ]\n",
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    for raw in ['\x1b', '\x07'] {
        assert!(
            !up.stderr.contains(raw) && !up.stdout.contains(raw),
            "{raw:?} reached the terminal: {}",
            up.stderr
        );
    }
    let module = r"\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[1;32mall modules ok\x1b[0m";
    assert!(
        up.stderr.contains(&format!(
            "in {module}; /var/log/cloud-init-output.log is empty"
        )) && up
            .stderr
            .contains(&format!("(cloud-init's module `{module}`)")),
        "{}",
        up.stderr
    );
    let events = std::fs::read_to_string(lab.lab.join(".tartlab/events.jsonl")).unwrap();
    assert!(
        !events.contains("\\u001b"),
        "the journal keeps it escaped too"
    );
}

#[test]
fn a_cloud_init_that_never_ends_is_a_requirement_unmet_with_its_status_and_log() {
    // A guest whose cloud-init always says it runs (a wrapper first in sudo's PATH, as in
    // the degraded test above): the wait ends at TARTLAB_COMMAND_TIMEOUT with the status
    // last seen, the end of its output log and a hint.
    let lab = Lab::new("lab: cloudy\ndefaults:\n  cloud_init: user-data.yaml\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    lab.use_systemd_guests();
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo one > /var/tmp/edition\" ]\n",
    );
    lab.up_all_ok(1);
    let wrapper = "#!/bin/sh\nif [ \"$1\" = status ]; then echo 'status: running'; echo 'still at the final modules' >> /var/log/cloud-init-output.log; exit 0; fi\nexec /usr/bin/cloud-init \"$@\"\n";
    lab.write("wrapper", wrapper);
    lab.ok(&["cp", "wrapper", "dev-vm:/tmp/wrapper"]);
    let installed = lab.ssh(
        "dev-vm",
        "sudo install -m 755 /tmp/wrapper /usr/local/bin/cloud-init",
    );
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    lab.write(
        "user-data.yaml",
        "#cloud-config\nruncmd:\n  - [ sh, -c, \"echo two > /var/tmp/edition\" ]\n",
    );
    let up: support::Out = lab
        .command(&["up"])
        .env("TARTLAB_COMMAND_TIMEOUT", "10")
        .output()
        .unwrap()
        .into();
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("dev-vm failed at stage `cloud-init`: cloud-init on dev-vm did not end within 10 s (status: running)"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("last lines of /var/log/cloud-init-output.log:")
            && up.stderr.contains("| still at the final modules"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("`tartlab ssh dev-vm cloud-init status --long`"),
        "{}",
        up.stderr
    );
}
