//! The reliability matrix of `up` (docs/RELIABILITY.md): faults injected through tart-sim's
//! knobs and interruptions (SIGKILL at many points, Ctrl-C, a `tart set` that outlives its
//! tartlab). Each fault test asserts the message (node, stage, log tail, hint), the exit code,
//! what is left running, and that the next `up` converges once the fault is gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, served_key, Lab, PAIR};

#[test]
fn up_after_a_sigkill_at_any_stage_converges_without_duplicates() {
    let lab = Lab::new(PAIR);
    // Each kill comes at the run's first event of a stage: the run is frozen there
    // (SIGSTOP), checked to be still running, then killed.
    for stage in ["pull", "create", "boot", "ip", "ssh", "base", "hosts"] {
        let from = lab.events().len();
        let mut up = lab.spawn(&["up"]);
        lab.wait_for_event(&mut up, from, stage, |e| e["stage"] == stage);
        support::freeze(&up);
        assert!(up.try_wait().unwrap().is_none(), "up ended before {stage}");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(up.id() as i32, libc::SIGKILL) };
        let _ = up.wait();
        let again = lab.ok(&["up"]);
        assert!(
            again.stdout.contains("up: 2 of 2 nodes ok"),
            "after a kill at {stage}: {}",
            again.stdout
        );
        assert_eq!(
            lab.vms(),
            vec![
                ("dev-master".to_string(), true),
                ("dev-worker".to_string(), true)
            ],
            "after a kill at {stage}"
        );
        for vm in ["dev-master", "dev-worker"] {
            assert_eq!(
                lab.state()["vms"][vm]["mac"],
                lab.mac(vm),
                "ownership of {vm} kept"
            );
            assert_eq!(lab.ssh(vm, "hostname").stdout.trim(), vm);
        }
        lab.ok(&["down"]);
    }
}

#[test]
fn a_vm_whose_tart_run_dies_fails_at_once_with_the_log_tail() {
    let lab = Lab::new(PAIR);
    let out = lab
        .command(&["up"])
        .env("TART_SIM_FAULTS", "dev-worker:run-fails")
        .output()
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: dev-worker failed at stage `ip`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("before the VM got an IP address; last lines of its log"),
        "{stderr}"
    );
    assert!(stderr.contains("dev-worker.run.log"), "{stderr}");
    assert!(
        stdout.contains("dev-master") && stdout.contains("up: 1 of 2 nodes ok, 1 failed"),
        "{stdout}"
    );
    // Once the fault is gone, the next up finishes the lab.
    lab.up_all_ok(2);
}

#[test]
fn ctrl_c_stops_cleanly_leaving_the_vms_running_and_up_finishes_the_lab() {
    let lab = Lab::new(PAIR);
    let mut up = lab
        .command(&["up"])
        .env("TART_SIM_BOOT_MS", "2000")
        .spawn()
        .unwrap();
    let run_log = lab.lab.join(".tartlab/logs/dev-master.run.log");
    // A bound, not a timing: on a loaded machine the image's pull alone took 15 s once.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run_log.exists() {
        assert!(Instant::now() < deadline, "up never booted dev-master");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(up.id() as i32, libc::SIGINT) };
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // tart run takes its lock a moment after it starts (slower on a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.vms().contains(&("dev-master".to_string(), true)) {
        assert!(
            Instant::now() < deadline,
            "the VM keeps running after Ctrl-C: {:?}",
            lab.vms()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lab.state()["vms"]["dev-master"]["mac"].is_string(),
        "ownership saved"
    );
    lab.up_all_ok(2);
    assert_eq!(
        lab.boots("dev-master"),
        1,
        "the running VM was not booted twice"
    );
}

/// Creates the file a held `tart set` waits for, when dropped (so a failing test never
/// leaves a `tart set` waiting).
struct Release(std::path::PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[test]
fn a_tart_set_outlives_an_interrupted_or_killed_tartlab_and_the_next_up_waits_for_it() {
    // tart rewrites config.json in place: a `tart set` killed halfway would leave a VM tart
    // cannot read. On Ctrl-C or SIGKILL tartlab ends, the `tart set` it ran finishes, and it
    // holds the lab lock (its inherited descriptor) until then: the next `up` waits for it.
    let lab = Lab::new("lab: one\nclusters:\n  - name: dev\n    nodes: [{ name: vm, cpu: 3 }]\n");
    lab.ok(&["up", "--no-provision"]);
    lab.ok(&["down"]);
    for (signal, code) in [(libc::SIGINT, Some(130)), (libc::SIGKILL, None)] {
        let hold = lab.dir.path().join(format!("release-set-{signal}"));
        let release = Release(hold.clone());
        let sets = |lab: &Lab| {
            lab.calls()
                .iter()
                .filter(|c| c.starts_with("set dev-vm"))
                .count()
        };
        let before = sets(&lab);
        let mut up = lab
            .command(&["up"])
            .env("TEST_HOLD_SET", &hold)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sets(&lab) == before {
            assert!(up.try_wait().unwrap().is_none(), "up ended before tart set");
            assert!(Instant::now() < deadline, "up never reached tart set");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(up.id() as i32, signal) };
        assert_eq!(up.wait().unwrap().code(), code, "signal {signal}");
        // The set still runs, held: the next `up` says it waits for it, and goes on once it
        // is released.
        let mut next = lab
            .command(&["up"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = Vec::new();
        let mut lines = BufReader::new(next.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let waiting = line.contains("waiting for the tart commands of a tartlab that ended");
            said.push(line);
            if waiting {
                break;
            }
        }
        assert!(
            said.last()
                .is_some_and(|l| l.contains("waiting for the tart commands")),
            "signal {signal}: the next up did not wait for the held tart set: {said:#?}"
        );
        drop(release);
        said.extend(lines.map(|l| l.unwrap()));
        assert_eq!(next.wait().unwrap().code(), Some(0), "{said:#?}");
        let get = lab.tart(&["get", "dev-vm", "--format", "json"]);
        assert_eq!(get.code, 0, "the VM is readable: {}", get.stderr);
        let config: serde_json::Value = serde_json::from_str(&get.stdout).unwrap();
        assert_eq!(config["CPU"], 3, "the set finished after tartlab ended");
        lab.ok(&["down"]);
    }
}

/// Asserts that `up` now converges: exit 0 and every node of the pair lab reachable.
fn converges(lab: &Lab) {
    lab.up_all_ok(2);
    for vm in ["dev-master", "dev-worker"] {
        assert_eq!(lab.ssh(vm, "hostname").stdout.trim(), vm);
    }
}

#[test]
fn no_ip_within_the_timeout_names_the_stage_and_stops_the_vm() {
    let lab = Lab::new(PAIR);
    let no_lease = |lab: &Lab| {
        support::output(
            lab.command(&["up"])
                .env("TART_SIM_FAULTS", "dev-worker:no-lease")
                .env("TARTLAB_IP_TIMEOUT", "2"),
        )
    };
    let up = no_lease(&lab);
    assert_eq!(up.code, 3, "{}\n{}", up.stdout, up.stderr);
    assert!(up.stderr.contains("error: dev-worker failed at stage `ip`: no IP address for dev-worker within 2 s: no lease for its MAC"), "{}", up.stderr);
    assert!(
        up.stderr
            .contains("hint: the VM runs but took no DHCP lease"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("dev-worker was stopped; `tartlab up` boots it again"),
        "{}",
        up.stderr
    );
    assert!(
        up.stdout.contains("up: 1 of 2 nodes ok, 1 failed"),
        "{}",
        up.stdout
    );
    assert!(
        lab.running("dev-master") && !lab.running("dev-worker"),
        "{:?}",
        lab.vms()
    );
    // The same through `tart ip --wait`, with tart's own words.
    lab.lease_file.set(false);
    let up = no_lease(&lab);
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(up.stderr.contains("no IP address found"), "{}", up.stderr);
    assert!(!lab.running("dev-worker"));
    converges(&lab);
}

#[test]
fn sshd_that_never_answers_is_reported_with_the_address_and_a_hint() {
    let lab = Lab::new(PAIR);
    let up = support::output(
        lab.command(&["up"])
            .env("TART_SIM_FAULTS", "dev-worker:no-sshd")
            .env("TARTLAB_SSH_TIMEOUT", "3"),
    );
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(
        up.stderr
            .contains("error: dev-worker failed at stage `ssh`: sshd on dev-worker ("),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(":22) did not answer within 3 s"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("TARTLAB_SSH_TIMEOUT"), "{}", up.stderr);
    assert!(!lab.running("dev-worker"));
    converges(&lab);
}

#[test]
fn a_rejected_login_password_says_which_setting_to_fix() {
    let lab = Lab::new(&PAIR.replace(
        "clusters:",
        "defaults: { login: { user: admin, password: wrong } }\nclusters:",
    ));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "every node failed: {}", up.stderr);
    assert!(
        up.stderr
            .contains("error: dev-master failed at stage `ssh`: admin@"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("refused the login password"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("hint: set defaults.login"),
        "{}",
        up.stderr
    );
    lab.write("tartlab.yaml", PAIR);
    converges(&lab);
}

#[test]
fn a_changed_host_key_is_refused_with_the_fix() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    // Someone replaces the VM's host keys behind tartlab's back.
    let ip = lab.ip("dev-worker");
    let pinned = served_key(&ip);
    let swap = lab.ssh(
        "dev-worker",
        "sudo rm -f /etc/ssh/ssh_host_* && sudo ssh-keygen -A >/dev/null && sudo kill -HUP $(cat /run/sshd.pid)",
    );
    assert_eq!(swap.code, 0, "{}", swap.stderr);
    // sshd serves the new key once it has started again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while [String::new(), pinned.clone()].contains(&served_key(&ip)) {
        assert!(Instant::now() < deadline, "sshd never served the new key");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exec = lab.tartlab(&["exec", "all", "--", "true"]);
    assert_eq!(exec.code, 3, "{}", exec.stderr);
    assert!(
        exec.stderr
            .contains("dev-worker | error: the VM's host key changed"),
        "{}",
        exec.stderr
    );
    lab.write(
        "tartlab.yaml",
        &format!("{PAIR}provision:\n  - name: touch\n    run: touch /var/tmp/t\n"),
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(
        up.stderr
            .contains("error: dev-worker failed at stage `ssh`: dev-worker at"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("presented a host key other than the one pinned for it"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("nothing was sent to it"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("remove its lines from"), "{}", up.stderr);
    assert_eq!(
        lab.ssh("dev-master", "ls /var/tmp/t").code,
        0,
        "dev-master went on"
    );
    // The fix the hint gives: forget the old key; the next up pins the new one.
    let known = lab.lab.join(".tartlab/known_hosts");
    let kept: String = std::fs::read_to_string(&known)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("dev-worker "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known, kept).unwrap();
    lab.ok(&["up"]);
    assert_eq!(lab.ssh("dev-worker", "ls /var/tmp/t").code, 0);
}

#[test]
fn a_vm_that_dies_mid_provision_fails_and_the_next_up_boots_and_finishes_it() {
    // Two clusters, so the healthy node's steps go on whatever stage the other dies in.
    let lab = Lab::new("lab: dies\nclusters:\n  - name: dev\n    nodes: [{ name: master }]\n  - name: stg\n    nodes: [{ name: master }]\nprovision:\n  - name: slow\n    run: sleep 6 && touch /var/tmp/slow-done\n");
    std::fs::create_dir_all(lab.home.join("sim")).unwrap();
    std::fs::write(
        lab.home.join("sim/faults"),
        "dev-master die-after-ms=4000\n",
    )
    .unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("error: dev-master failed at stage `"),
        "{}",
        up.stderr
    );
    assert!(!lab.running("dev-master"), "the VM died");
    assert_eq!(
        lab.ssh("stg-master", "ls /var/tmp/slow-done").code,
        0,
        "the other node finished"
    );
    std::fs::remove_file(lab.home.join("sim/faults")).unwrap();
    lab.up_all_ok(2);
    assert_eq!(lab.ssh("dev-master", "ls /var/tmp/slow-done").code, 0);
}

#[test]
fn a_tart_that_is_too_old_is_refused_before_anything_is_made() {
    let lab = Lab::new(PAIR);
    let old = lab.dir.path().join("old-tart");
    std::fs::write(&old, "#!/bin/sh\necho 1.9.0\n").unwrap();
    Command::new("chmod").arg("755").arg(&old).status().unwrap();
    let up = support::output(lab.command(&["up"]).env("TARTLAB_TART", &old));
    assert_eq!(up.code, 1);
    assert!(
        up.stderr
            .contains("tart 1.9.0 is too old; tartlab needs 2.0 or newer"),
        "{}",
        up.stderr
    );
    assert!(up.stderr.contains("brew upgrade"), "{}", up.stderr);
    assert!(lab.vms().is_empty());
}

/// A read-only bind mount over a directory, undone on drop.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(path: &std::path::Path) -> ReadOnly {
        let p = path.to_str().unwrap();
        assert!(Command::new("mount")
            .args(["--bind", p, p])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("mount")
            .args(["-o", "remount,bind,ro", p])
            .status()
            .unwrap()
            .success());
        ReadOnly(path.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_state_directory_fails_clearly_and_changes_nothing() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    lab.write(
        "tartlab.yaml",
        &PAIR.replace(
            "{ name: worker, role: worker }",
            "{ name: worker, role: worker, cpu: 3 }",
        ),
    );
    {
        let _ro = ReadOnly::new(&lab.lab.join(".tartlab"));
        let up = lab.tartlab(&["up"]);
        assert_eq!(up.code, 1, "{}", up.stderr);
        assert!(up.stderr.contains(".tartlab"), "{}", up.stderr);
        assert!(up.stderr.contains("Read-only file system"), "{}", up.stderr);
        assert_eq!(lab.boots("dev-worker"), 1, "nothing was restarted");
    }
    lab.ok(&["up"]);
    assert_eq!(lab.boots("dev-worker"), 2, "applied once writable again");
}

#[test]
fn a_corrupted_state_file_is_a_clear_error_and_adopt_recovers_the_lab() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    let macs = (lab.mac("dev-master"), lab.mac("dev-worker"));
    let state = lab.lab.join(".tartlab/state.json");
    std::fs::write(
        &state,
        "{\"version\": 1, \"lab\": \"pair\", \"vms\": {\"dev-master\": ",
    )
    .unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1);
    assert!(
        up.stderr.contains("state.json is corrupted"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("move it away, then `tartlab up --adopt`"),
        "{}",
        up.stderr
    );
    std::fs::rename(&state, lab.lab.join(".tartlab/state.json.bad")).unwrap();
    let foreign = lab.tartlab(&["up"]);
    assert_eq!(
        foreign.code, 1,
        "without the state, the VMs are not the lab's: {}",
        foreign.stderr
    );
    let adopted = lab.ok(&["up", "--adopt"]);
    assert!(adopted.stdout.contains("adopted"), "{}", adopted.stdout);
    assert_eq!(
        (lab.mac("dev-master"), lab.mac("dev-worker")),
        macs,
        "the same VMs, not new ones"
    );
    assert_eq!(lab.boots("dev-master"), 1, "adopted running, not restarted");
    assert_eq!(
        lab.ssh("dev-worker", "hostname").stdout.trim(),
        "dev-worker"
    );
}

const NINE: &str = "lab: nine\nhosts: cluster\nusers:\n  - { name: devops, sudo: nopasswd }\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker, count: 2 }\n  - name: stg\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker, count: 2 }\n  - name: prod\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker, count: 2 }\n";

fn nine_names() -> Vec<String> {
    let mut names: Vec<String> = ["dev", "stg", "prod"]
        .iter()
        .flat_map(|c| {
            [
                format!("{c}-master"),
                format!("{c}-worker-1"),
                format!("{c}-worker-2"),
            ]
        })
        .collect();
    names.sort();
    names
}

#[test]
fn sigkill_at_ten_points_of_a_nine_vm_up_then_up_converges() {
    let lab = Lab::new(NINE);
    let events = lab.lab.join(".tartlab/events.jsonl");
    let count = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    // Kill points, as a number of events into the run: pulls, clones, boots, addresses,
    // logins, base provisioning, /etc/hosts.
    let mut stages_hit = std::collections::BTreeSet::new();
    for (i, point) in [1usize, 4, 10, 18, 27, 36, 45, 54, 63, 72]
        .into_iter()
        .enumerate()
    {
        let before = count(&events);
        let mut up = lab.spawn(&["up"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&events) < before + point
            && up.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Frozen where it reached, checked to be still running, then killed.
        support::freeze(&up);
        assert!(
            up.try_wait().unwrap().is_none(),
            "kill {i}: up ended before event {point}"
        );
        let last = lab.events().last().cloned().unwrap_or_default();
        stages_hit.insert(last["stage"].as_str().unwrap_or("none").to_string());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(up.id() as i32, libc::SIGKILL) };
        let _ = up.wait();
        let again = lab.ok(&["up"]);
        assert!(
            again.stdout.contains("up: 9 of 9 nodes ok"),
            "kill {i} at event {point}: {}",
            again.stdout
        );
        let vms: Vec<String> = lab
            .vms()
            .into_iter()
            .filter(|(_, r)| *r)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            vms,
            nine_names(),
            "kill {i}: exactly the lab's VMs, running"
        );
        for vm in nine_names() {
            assert_eq!(
                lab.state()["vms"][&vm]["mac"],
                lab.mac(&vm),
                "kill {i}: ownership of {vm}"
            );
        }
        let hosts = lab.ssh_with(
            &lab.lab.join(".tartlab/id_ed25519"),
            "devops",
            "stg-worker-2",
            "hostname; sed -n '/BEGIN tartlab/,/END tartlab/p' /etc/hosts | grep -c ' stg-'",
        );
        assert_eq!(
            hosts.stdout, "stg-worker-2\n3\n",
            "kill {i}: {}",
            hosts.stderr
        );
        // Each kill interrupts a run that has everything to do.
        lab.ok(&["down"]);
    }
    // The kills landed in several stages, not all before anything started.
    assert!(stages_hit.len() >= 4, "kills hit only {stages_hit:?}");
}

/// The pair lab with a third node, `dev-extra`.
fn pair_and_extra() -> String {
    PAIR.replace(
        "{ name: worker, role: worker }",
        "{ name: worker, role: worker }\n      - { name: extra }",
    )
}

#[test]
fn a_state_file_that_cannot_be_read_is_an_error_not_an_empty_lab() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    let state = lab.lab.join(".tartlab/state.json");
    std::fs::rename(&state, lab.lab.join(".tartlab/state.json.kept")).unwrap();
    std::fs::create_dir(&state).unwrap();
    for args in [&["up"][..], &["status"], &["down"]] {
        let out = lab.tartlab(args);
        assert_ne!(out.code, 0, "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("cannot read") && out.stderr.contains("state.json"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        lab.vms(),
        vec![("dev-master".into(), true), ("dev-worker".into(), true)],
        "the lab's VMs were neither forgotten nor deleted"
    );
    assert_eq!(
        lab.calls()
            .iter()
            .filter(|c| c.starts_with("clone "))
            .count(),
        2
    );
}

#[test]
fn a_state_write_that_fails_mid_run_stops_before_any_clone() {
    // The state file itself made read-only after a first `up` (the lock and the logs stay
    // writable): the first write of the run, the new node's record before its clone, fails.
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    lab.write("tartlab.yaml", &pair_and_extra());
    let clones = |lab: &Lab| {
        lab.calls()
            .iter()
            .filter(|c| c.starts_with("clone "))
            .count()
    };
    {
        let _ro = ReadOnly::new(&lab.lab.join(".tartlab/state.json"));
        let up = lab.tartlab(&["up"]);
        assert_ne!(up.code, 0, "{}", up.stdout);
        assert!(
            up.stderr.contains("dev-extra failed at stage `create`"),
            "{}",
            up.stderr
        );
        assert!(up.stderr.contains("state.json"), "{}", up.stderr);
        assert!(up.stderr.contains("hint:"), "{}", up.stderr);
        assert_eq!(clones(&lab), 2, "no clone without its record");
        assert!(!lab.vms().iter().any(|(vm, _)| vm == "dev-extra"));
    }
    lab.up_all_ok(3);
    assert_eq!(clones(&lab), 3);
}

#[test]
fn a_cached_image_is_not_pulled_again_for_a_new_node_after_down() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    let pulls = |lab: &Lab| {
        lab.calls()
            .iter()
            .filter(|c| c.starts_with("pull "))
            .count()
    };
    assert_eq!(pulls(&lab), 1, "{:?}", lab.calls());
    lab.ok(&["down"]);
    lab.write("tartlab.yaml", &pair_and_extra());
    lab.up_all_ok(3);
    assert_eq!(
        pulls(&lab),
        1,
        "the cached image was pulled again: {:?}",
        lab.calls()
    );
}

#[test]
fn a_partial_up_lists_running_nodes_outside_it_in_hosts_and_leaves_out_stopped_ones() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    let master_ip = lab.ip("dev-master");
    lab.ok(&["stop", "dev-worker"]);
    lab.write("tartlab.yaml", &pair_and_extra());
    lab.ok(&["up", "dev-extra"]);
    assert!(
        !lab.running("dev-worker"),
        "outside the selection: left stopped"
    );
    let hosts = lab.ssh("dev-extra", "cat /etc/hosts").stdout;
    let block: Vec<&str> = hosts
        .lines()
        .skip_while(|l| *l != "# BEGIN tartlab")
        .take_while(|l| *l != "# END tartlab")
        .collect();
    assert!(
        block
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..2]
                == [master_ip.as_str(), "dev-master"]),
        "{hosts}"
    );
    assert!(
        block
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some("dev-extra")),
        "{hosts}"
    );
    assert!(
        !block.iter().any(|l| l.contains("dev-worker")),
        "a stopped node's old address is not published: {hosts}"
    );
}

#[test]
fn an_up_killed_right_after_it_booted_a_provisioned_node_is_waited_for_by_the_next_up() {
    let lab =
        Lab::new("lab: cut\nclusters:\n  - name: dev\n    nodes:\n      - { name: master }\n");
    lab.up_all_ok(1);
    lab.ok(&["stop"]);
    // The guest of the `tart run` the killed `up` spawns takes 4 s to its lease and sshd.
    let from = lab.events().len();
    let mut up = lab
        .command(&["up"])
        .env("TART_SIM_BOOT_MS", "4000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its first event once `tart run` was spawned: the wait for the address.
    lab.wait_for_event(&mut up, from, "dev-master's wait for its address", |e| {
        e["node"] == "dev-master" && support::is_event(e, "ip", "started")
    });
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(up.id() as i32, libc::SIGKILL) };
    let _ = up.wait();
    // The spawned `tart run` outlives it (a bound, not a timing: it may take a moment to
    // show in `tart list`).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.running("dev-master") {
        assert!(
            Instant::now() < deadline,
            "the killed up left no VM running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout
            .contains("its last boot was cut short: up waits for it"),
        "{}",
        plan.stdout
    );
    let from = lab.events().len();
    let again = lab.ok(&["up"]);
    assert!(
        again.stdout.contains("up: 1 of 1 node ok"),
        "{}",
        again.stdout
    );
    // It logged in before it said ok, and a user's ssh right after gets in.
    let events = lab.events();
    let login = events[from..]
        .iter()
        .position(|e| e["node"] == "dev-master" && support::is_event(e, "ssh", "done"));
    let ready = events[from..]
        .iter()
        .position(|e| e["node"] == "dev-master" && support::is_event(e, "ready", "done"));
    assert!(
        matches!((login, ready), (Some(l), Some(r)) if l < r),
        "up said dev-master was ready without logging in: {:#?}",
        &events[from..]
    );
    let ssh = lab.ok(&["ssh", "dev-master", "true"]);
    assert_eq!(ssh.code, 0);
    // Seen ready once, it is as cheap as any converged node again: no login.
    let from = lab.events().len();
    lab.up_all_ok(1);
    assert!(
        !lab.events()[from..]
            .iter()
            .any(|e| support::is_event(e, "ssh", "started")),
        "a converged up logged in"
    );
    assert!(!lab.ok(&["plan"]).stdout.contains("cut short"));
}
