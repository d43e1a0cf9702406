//! One tartlab at a time per lab, for real: a second changing command started at every stage
//! of an `up` (and during a `down`) is refused, while the reading commands keep working; and a
//! provisioning step cut off by Ctrl-C never runs twice at the same time. Each second actor
//! starts at a point the first one reports in `events.jsonl`, with the first frozen there
//! (SIGSTOP), never after a sleep.

use std::process::Command;

use crate::support::{freeze, is_event, thaw, Lab, Out};

/// Two nodes, a step, and a ready probe that holds the `up` until the test releases it
/// (a marker on each guest), so the first `up` is still running at every check.
const HELD: &str = r#"lab: busy
clusters:
  - name: dev
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker }
provision:
  - name: mark
    run: touch /var/tmp/provisioned
ready:
  - on: all
    run: "for i in $(seq 1200); do [ -e /var/tmp/release ] && exit 0; sleep 0.1; done; exit 1"
"#;

/// Whether the lab lock is free, as `flock -n` (a user's check) sees it.
fn lock_is_free(lab: &Lab) -> bool {
    Command::new("flock")
        .args(["-n"])
        .arg(lab.lab.join(".tartlab/lock"))
        .arg("true")
        .status()
        .unwrap()
        .success()
}

fn assert_refused(out: &Out, what: &str, holder: u32) {
    assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "another tartlab (pid {holder}) is working on this lab"
        )),
        "{what}: {}",
        out.stderr
    );
}

#[test]
fn every_changing_command_is_refused_at_every_stage_of_an_up_and_reading_ones_work() {
    let lab = Lab::new(HELD);
    let mut up = lab.spawn(&["up"]);
    let holder = up.id();
    let mut from = 0;
    for stage in [
        "pull",
        "create",
        "boot",
        "ip",
        "ssh",
        "base",
        "provision",
        "ready",
    ] {
        let at = lab.wait_for_event(&mut up, from, stage, |e| {
            e["stage"] == stage && (e["status"] == "started" || e["status"] == "info")
        });
        from = at + 1;
        freeze(&up);
        assert!(!lock_is_free(&lab), "the lock is held during {stage}");
        for command in ["up", "stop", "down", "start"] {
            assert_refused(
                &lab.tartlab(&[command]),
                &format!("{command} during {stage}"),
                holder,
            );
        }
        let status = lab.tartlab(&["status"]);
        assert_eq!(status.code, 0, "status during {stage}: {}", status.stderr);
        if stage == "provision" {
            let node = lab.events()[at]["node"].as_str().unwrap().to_string();
            let exec = lab.tartlab(&["exec", &node, "--", "hostname"]);
            assert_eq!(exec.code, 0, "exec during {stage}: {}", exec.stderr);
            assert!(exec.stdout.contains(&node), "{}", exec.stdout);
        }
        thaw(&up);
    }
    for vm in ["dev-master", "dev-worker"] {
        lab.wait_for_event(&mut up, 0, &format!("the probe on {vm}"), |e| {
            e["node"] == vm && is_event(e, "ready", "started")
        });
        assert_eq!(lab.ssh(vm, "sudo touch /var/tmp/release").code, 0);
    }
    assert!(up.wait().unwrap().success());
    assert!(lock_is_free(&lab), "released when the command ended");

    // `up` during a `down`, frozen while it stops the VMs.
    let mut down = lab.spawn(&["down"]);
    let from = lab.events().len();
    lab.wait_for_event(&mut down, from, "down stopping a VM", |e| {
        is_event(e, "stop", "started")
    });
    freeze(&down);
    assert!(!lock_is_free(&lab));
    assert_refused(&lab.tartlab(&["up"]), "up during down", down.id());
    thaw(&down);
    assert!(down.wait().unwrap().success());
    assert!(lab.vms().is_empty(), "{:?}", lab.vms());
}

#[test]
fn a_step_cut_off_by_ctrl_c_never_runs_twice_at_the_same_time() {
    let lab = Lab::new(
        r#"lab: step
clusters:
  - name: dev
    nodes: [{ name: vm }]
provision:
  - name: slow
    run: |
      if [ -e /var/tmp/slow.running ]; then echo overlap >> /var/tmp/slow.log; fi
      touch /var/tmp/slow.running
      echo start >> /var/tmp/slow.log
      sleep 8
      echo end >> /var/tmp/slow.log
      rm /var/tmp/slow.running
"#,
    );
    let mut up = lab.spawn(&["up"]);
    lab.wait_for_event(&mut up, 0, "the step started", |e| {
        is_event(e, "provision", "started") && e["message"] == "slow"
    });
    // The marker the step leaves while it runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lab.ssh("dev-vm", "test -e /var/tmp/slow.running").code != 0 {
        assert!(std::time::Instant::now() < deadline, "the step never ran");
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(up.id() as i32, libc::SIGINT) };
    assert_eq!(up.wait().unwrap().code(), Some(130));

    let again = lab.up_all_ok(1);
    assert!(
        again
            .stderr
            .contains("step `slow`: waiting for step `slow` (started "),
        "the second up says what it waits for: {}",
        again.stderr
    );
    let log = lab.ssh("dev-vm", "cat /var/tmp/slow.log");
    assert_eq!(
        log.stdout, "start\nend\nstart\nend\n",
        "one run after the other, never side by side"
    );
}
