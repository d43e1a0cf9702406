//! `up`, `status`, `stop`, `start` and `down` end to end: the real binary against tart-sim,
//! checked the way a user would check (tart list, ssh into the VMs, files on the guests).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{examples, Lab};

const TWO_NODES: &str = "lab: pair\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\n";

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
fn a_changed_cpu_restarts_only_that_vm() {
    let lab = Lab::new(TWO_NODES);
    // This test waits for addresses with `tart ip --wait`, as without a lease file.
    lab.lease_file.set(false);
    lab.ok(&["up"]);
    assert!(lab
        .calls()
        .iter()
        .any(|c| c.starts_with("ip dev-worker --wait")));
    lab.write(
        "tartlab.yaml",
        &TWO_NODES.replace(
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
fn a_foreign_vm_with_a_lab_name_is_reported_and_left_untouched() {
    let lab = Lab::new(TWO_NODES);
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
fn stop_shuts_the_guests_down_and_start_brings_them_back() {
    let lab = Lab::new(TWO_NODES);
    lab.ok(&["up"]);
    let marker = lab.ssh("dev-master", "sudo touch /var/tmp/kept && echo ok");
    assert_eq!(marker.stdout.trim(), "ok", "{}", marker.stderr);
    let stop = lab.ok(&["stop"]);
    assert!(
        stop.stdout.contains("shut down"),
        "graceful, from the guest: {}",
        stop.stdout
    );
    assert!(
        lab.vms().iter().all(|(_, running)| !running),
        "{:?}",
        lab.vms()
    );
    lab.ok(&["start"]);
    assert!(lab.vms().iter().all(|(_, running)| *running));
    assert_eq!(
        lab.ssh("dev-master", "ls /var/tmp/kept").code,
        0,
        "the disk was kept"
    );
}

#[test]
fn up_after_a_sigkill_at_any_stage_converges_without_duplicates() {
    let lab = Lab::new(TWO_NODES);
    // Each kill comes at the run's first event of a stage: the run is frozen there
    // (SIGSTOP), checked to be still running, then killed.
    for stage in ["pull", "create", "boot", "ip", "ssh", "base", "hosts"] {
        let from = lab.events().len();
        let mut up = lab.spawn(&["up"]);
        lab.wait_for_event(&mut up, from, stage, |e| e["stage"] == stage);
        common::freeze(&up);
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
    let lab = Lab::new(TWO_NODES);
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
    let lab = Lab::new(TWO_NODES);
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

/// `tartlab ARGS` on a terminal (util-linux `script` gives it a pty for stdin, stdout and
/// stderr, and not CI), `input` typed at it. `script` comes with util-linux (Debian's
/// essential bsdutils): a machine without it fails the test rather than skipping it.
fn on_a_terminal(lab: &Lab, args: &str, input: &str) -> common::Out {
    use std::io::Write;
    let found = Command::new("script").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "no util-linux `script` to give tartlab a terminal: apt-get install bsdutils"
    );
    let line = format!("'{}' {args}", env!("CARGO_BIN_EXE_tartlab"));
    let mut cmd = Command::new("script");
    lab.env(&mut cmd);
    cmd.env_remove("CI")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn up_on_a_terminal_asks_before_a_recreate_and_no_leaves_the_vm_as_it_was() {
    let lab = Lab::new(TWO_NODES);
    lab.ok(&["up", "dev-master"]);
    let mac = lab.mac("dev-master");
    let changed = TWO_NODES.replace(
        "clusters:",
        "defaults: { image: ghcr.io/cirruslabs/debian:latest }\nclusters:",
    );
    lab.write("tartlab.yaml", &changed);
    let no = on_a_terminal(&lab, "up dev-master", "n\n");
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
    let yes = on_a_terminal(&lab, "up dev-master", "y\n");
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert_ne!(lab.mac("dev-master"), mac, "yes: made anew");
    assert_eq!(
        lab.ssh("dev-master", "hostname").stdout.trim(),
        "dev-master"
    );
}

#[test]
fn an_image_change_is_refused_without_recreate_and_adopt_takes_a_foreign_vm_over() {
    let lab = Lab::new(TWO_NODES);
    lab.ok(&["up", "dev-master"]);
    assert_eq!(
        lab.vms(),
        vec![("dev-master".to_string(), true)],
        "only the selected node"
    );
    let changed = TWO_NODES.replace(
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
fn without_tart_every_changing_command_says_how_to_get_it() {
    let lab = Lab::new(TWO_NODES);
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
    let lab = Lab::new(TWO_NODES);
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
