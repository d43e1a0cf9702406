//! Files, steps in phases, outputs between nodes, ready probes, and every way in (`ssh`,
//! `exec`, `cp`, `logs`, `ssh-config`, `inventory`), end to end against tart-sim.

mod common;

use std::process::Command;

use common::Lab;

/// The k3s example's token flow with a stand-in for the k3s install (the guests cannot
/// download k3s): the master makes a token and prints it as a secret output; the workers
/// read it from `{{ cluster.master.outputs.token }}`. A second cluster keeps its own token.
const K3S_STAND_IN: &str = r#"lab: k3s
clusters:
  - name: k3s
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker, count: 2 }
  - name: other
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker }
files:
  - { src: files/motd, dest: /etc/motd, mode: "0640", owner: "root:adm", on: all }
provision:
  - name: server
    on: role=master
    script: scripts/server.sh
    outputs: [{ name: token, secret: true }, url]
  - name: agents
    on: role=worker
    env:
      K3S_URL: "{{ cluster.master.outputs.url }}"
      K3S_TOKEN: "{{ cluster.master.outputs.token }}"
    run: |
      echo "joining $K3S_URL as $TARTLAB_NODE"
      server=${K3S_URL#https://}
      timeout 10 bash -c "exec 3<>/dev/tcp/${server%:*}/${server##*:}"
      echo "connected to ${server%:*} on port ${server##*:}"
      printf '%s\n' "$K3S_TOKEN" > /etc/k3s-token
ready:
  - { on: all, run: "test -s /etc/motd", hint: "the motd did not arrive" }
"#;

const SERVER_SH: &str = r#"#!/usr/bin/env bash
# Stand-in for the k3s server install: a token made once, then printed for the workers, and
# a listener on the API server's port 6443 (on the node's own address) that they connect to.
set -euo pipefail
[ -f /var/lib/k3s-token ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > /var/lib/k3s-token
address=$(sed -n '/^# BEGIN tartlab$/,/^# END tartlab$/p' /etc/hosts | awk -v n="$TARTLAB_NODE" '$2 == n { print $1 }')
if ! timeout 2 bash -c "exec 3<>/dev/tcp/$address/6443" 2>/dev/null; then
  nohup python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 6443))
s.listen(16)
while True:
    s.accept()[0].close()
' "$address" > /dev/null 2>&1 &
  for i in $(seq 50); do timeout 1 bash -c "exec 3<>/dev/tcp/$address/6443" 2>/dev/null && break; sleep 0.1; done
fi
echo "tartlab-output token=$(cat /var/lib/k3s-token)"
echo "tartlab-output url=https://$TARTLAB_NODE:6443"
"#;

fn k3s_lab() -> Lab {
    let lab = Lab::new(K3S_STAND_IN);
    std::fs::create_dir_all(lab.lab.join("files")).unwrap();
    std::fs::create_dir_all(lab.lab.join("scripts")).unwrap();
    lab.write("files/motd", "welcome to the k3s lab\n");
    lab.write("scripts/server.sh", SERVER_SH);
    lab
}

#[test]
fn the_masters_token_reaches_every_worker_of_its_cluster_and_is_never_shown() {
    let lab = k3s_lab();
    let up = lab.up_all_ok(5);
    let state = lab.state();
    for cluster in ["k3s", "other"] {
        let token = state["vms"][format!("{cluster}-master")]["outputs"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(token.len(), 32);
        let workers: Vec<String> = if cluster == "k3s" {
            vec!["k3s-worker-1".into(), "k3s-worker-2".into()]
        } else {
            vec!["other-worker".into()]
        };
        for worker in workers {
            let out = lab.ssh(
                &worker,
                "sudo cat /etc/k3s-token; stat -c '%a %U:%G' /etc/motd; sudo cat /etc/motd",
            );
            assert_eq!(
                out.stdout,
                format!("{token}\n640 root:adm\nwelcome to the k3s lab\n"),
                "{worker}: {}",
                out.stderr
            );
        }
        // The secret is masked everywhere tartlab writes or prints, the state file aside:
        // where the master printed it, its transcript has the mask.
        assert!(!up.stdout.contains(&token) && !up.stderr.contains(&token));
        let printed = std::fs::read_to_string(
            lab.lab
                .join(format!(".tartlab/logs/{cluster}-master.provision.log")),
        )
        .unwrap();
        assert!(
            printed.contains("tartlab-output token=********"),
            "{printed}"
        );
        assert!(
            !lab.tartlab_files_text(&["state.json"]).contains(&token),
            "{cluster}'s token leaked into .tartlab/"
        );
    }
    let transcript =
        std::fs::read_to_string(lab.lab.join(".tartlab/logs/k3s-worker-1.provision.log")).unwrap();
    assert!(
        transcript.contains("export K3S_TOKEN=********"),
        "{transcript}"
    );
    assert!(
        transcript.contains("joining https://k3s-master:6443 as k3s-worker-1"),
        "{transcript}"
    );
    assert!(
        transcript.contains("connected to k3s-master on port 6443"),
        "the worker reached its master's API port: {transcript}"
    );
    let logs = lab.ok(&["logs", "k3s-master"]);
    assert!(
        logs.stdout.contains("tartlab-output token=********"),
        "{}",
        logs.stdout
    );

    // Converged: nothing runs again, and no SSH step is needed to know it.
    let again = lab.ok(&["up", "--json"]);
    let recap: serde_json::Value =
        serde_json::from_str(again.stdout.lines().last().unwrap()).unwrap();
    for node in recap["recap"].as_array().unwrap() {
        assert_eq!(node["actions"], serde_json::json!([]), "{node}");
    }
}

#[test]
fn a_changed_step_reruns_only_where_it_changed_and_reprovision_forces_it() {
    let yaml = "lab: steps\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\nprovision:\n  - name: common\n    run: echo run >> /var/tmp/common\n  - name: workers\n    on: role=worker\n    run: echo one >> /var/tmp/workers\n";
    let lab = Lab::new(yaml);
    lab.ok(&["up"]);
    lab.write("tartlab.yaml", &yaml.replace("echo one", "echo two"));
    let plan = lab.ok(&["plan"]);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.starts_with("dev-worker") && l.ends_with("provision (step workers)")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.starts_with("dev-master") && l.ends_with("nothing")),
        "{}",
        plan.stdout
    );
    let up = lab.ok(&["up"]);
    assert!(
        up.stdout
            .lines()
            .any(|l| l.starts_with("dev-worker") && l.contains("ran workers")),
        "{}",
        up.stdout
    );
    assert!(!up.stdout.contains("ran common"), "{}", up.stdout);
    assert_eq!(
        lab.ssh("dev-worker", "cat /var/tmp/workers").stdout,
        "one\ntwo\n"
    );
    for vm in ["dev-master", "dev-worker"] {
        assert_eq!(
            lab.ssh(vm, "cat /var/tmp/common").stdout,
            "run\n",
            "{vm} ran `common` once"
        );
    }
    lab.ok(&["up", "--reprovision=common"]);
    assert_eq!(
        lab.ssh("dev-master", "cat /var/tmp/common").stdout,
        "run\nrun\n"
    );
    assert_eq!(
        lab.ssh("dev-worker", "cat /var/tmp/workers").stdout,
        "one\ntwo\n"
    );
    let unknown = lab.tartlab(&["up", "--reprovision=nosuch"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("the lab file has no step `nosuch`"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_failing_step_stops_its_cluster_and_the_other_cluster_goes_on() {
    let yaml = "lab: fail\nclusters:\n  - name: a\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\n  - name: b\n    nodes:\n      - { name: master, role: master }\nprovision:\n  - name: one\n    run: |\n      echo \"working on $TARTLAB_NODE\"\n      if [ \"$TARTLAB_NODE\" = a-worker ]; then echo 'disk full' >&2; exit 5; fi\n  - name: two\n    run: touch /var/tmp/two\n";
    let lab = Lab::new(yaml);
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains(
            "error: a-worker failed at stage `provision`: step `one` failed (exit status 5)"
        ),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("disk full"),
        "the output's tail is shown: {}",
        up.stderr
    );
    assert!(
        up.stderr.contains("a-worker.provision.log"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(
            "error: a-master failed at stage `provision`: not fully provisioned: a-worker failed, so `two` did not run on cluster a"
        ),
        "{}",
        up.stderr
    );
    // "see its error above" is true: the cause comes first, though a-master is listed first.
    let cause = up.stderr.find("error: a-worker failed").unwrap();
    let consequence = up.stderr.find("error: a-master failed").unwrap();
    assert!(cause < consequence, "{}", up.stderr);
    assert_eq!(
        lab.ssh("b-master", "ls /var/tmp/two").code,
        0,
        "the other cluster went on"
    );
    assert_ne!(
        lab.ssh("a-master", "ls /var/tmp/two").code,
        0,
        "the failed cluster stopped"
    );
    lab.write("tartlab.yaml", &yaml.replace("exit 5", "true"));
    lab.up_all_ok(3);
    assert_eq!(lab.ssh("a-master", "ls /var/tmp/two").code, 0);
}

#[test]
fn a_failing_ready_probe_shows_its_hint() {
    let lab = Lab::new("lab: probe\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\nready:\n  - { on: all, run: \"test -f /etc/app.conf\", hint: \"the app is not configured: run the config step\" }\n");
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("dev-vm failed at stage `ready`"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr
            .contains("hint: the app is not configured: run the config step"),
        "{}",
        up.stderr
    );
}

const PAIR: &str = "lab: pair\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\n";

#[test]
fn exec_ssh_and_cp_reach_the_nodes() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);

    let all = lab.ok(&["exec", "all", "--", "hostname"]);
    assert!(
        all.stdout.lines().any(|l| l == "dev-master | dev-master"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.lines().any(|l| l == "dev-worker | dev-worker"),
        "{}",
        all.stdout
    );
    let some = lab.tartlab(&["exec", "all", "--", "test $(hostname) = dev-master"]);
    assert_eq!(some.code, 3, "some nodes failed: {}", some.stderr);
    let json = lab.tartlab(&[
        "exec",
        "role=worker",
        "--json",
        "--",
        "echo out; echo err >&2; exit 4",
    ]);
    assert_eq!(json.code, 1, "every selected node failed");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let worker = &report["results"][0];
    assert_eq!(
        (worker["node"].as_str(), worker["exit_code"].as_u64()),
        (Some("dev-worker"), Some(4))
    );
    assert_eq!(
        (worker["stdout"].as_str(), worker["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );

    // ssh: a command without a terminal, its exit code passed through.
    let out = lab.tartlab(&["ssh", "dev-worker", "--", "echo", "hi;", "exit", "7"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (7, "hi\n"),
        "{}",
        out.stderr
    );

    let local = lab.dir.path().join("payload");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("sub/a.txt"), "alpha\n").unwrap();
    std::fs::write(local.join("b.txt"), "beta\n").unwrap();
    lab.ok(&["cp", "-r", local.to_str().unwrap(), "dev-master:/tmp"]);
    assert_eq!(
        lab.ssh(
            "dev-master",
            "cat /tmp/payload/sub/a.txt /tmp/payload/b.txt"
        )
        .stdout,
        "alpha\nbeta\n"
    );
    let back = lab.dir.path().join("back.txt");
    lab.ok(&[
        "cp",
        "dev-master:/tmp/payload/b.txt",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "beta\n");
    let dir = lab.tartlab(&["cp", local.to_str().unwrap(), "dev-master:/tmp/x"]);
    assert_eq!(dir.code, 1);
    assert!(
        dir.stderr.contains("is a directory") && dir.stderr.contains("add -r"),
        "{}",
        dir.stderr
    );
}

#[test]
fn ssh_config_works_with_ssh_and_the_inventory_with_ansible() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    lab.ok(&["ssh-config"]);
    let config = lab.lab.join(".tartlab/ssh_config");
    let out = Command::new("ssh")
        .args([
            "-F",
            config.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "dev-worker",
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dev-worker\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `tartlab proxy NODE`, the ProxyCommand of a provider whose way in is not plain TCP,
    // carries a whole session: OpenSSH itself, through the dialer, to the pinned key.
    let proxy = format!(
        "ProxyCommand={} proxy -f {} dev-worker",
        env!("CARGO_BIN_EXE_tartlab"),
        lab.lab.join("tartlab.yaml").display()
    );
    let mut through = Command::new("ssh");
    lab.env(&mut through);
    let out = through
        .args(["-F", config.to_str().unwrap(), "-o", &proxy])
        .args(["-o", "BatchMode=yes", "dev-worker", "hostname"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dev-worker\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = lab.tartlab(&["proxy", "dev-nowhere"]);
    assert_eq!(stopped.code, 2, "{}", stopped.stderr);

    let ansible = std::env::var("TARTLAB_TEST_ANSIBLE_INVENTORY")
        .unwrap_or_else(|_| "/opt/tartlab-test-tools/ansible/bin/ansible-inventory".into());
    assert!(
        std::path::Path::new(&ansible).is_file(),
        "{ansible} is missing: scripts/install-deps.sh --with-nextest installs it"
    );
    // YAML and INI files, and `--json` as a dynamic inventory: a script Ansible runs with
    // `--list`, which prints the JSON itself.
    let script = format!(
        "#!/bin/sh\nexec {} inventory --json -f {}\n",
        env!("CARGO_BIN_EXE_tartlab"),
        lab.lab.join("tartlab.yaml").display()
    );
    for (flag, file) in [
        ("", "inventory.yaml"),
        ("--ini", "inventory.ini"),
        ("--json", "inventory.sh"),
    ] {
        if flag == "--json" {
            lab.write(file, &script);
            Command::new("chmod")
                .arg("755")
                .arg(lab.lab.join(file))
                .status()
                .unwrap();
        } else {
            let args: Vec<&str> = if flag.is_empty() {
                vec!["inventory"]
            } else {
                vec!["inventory", flag]
            };
            let text = lab.ok(&args).stdout;
            lab.write(file, &text);
        }
        let parsed = Command::new(&ansible)
            .args(["-i", lab.lab.join(file).to_str().unwrap(), "--list"])
            .env("ANSIBLE_LOCAL_TEMP", lab.dir.path())
            .env("ANSIBLE_HOME", lab.dir.path())
            .output()
            .unwrap();
        assert!(
            parsed.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&parsed.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        assert_eq!(
            list["dev"]["hosts"],
            serde_json::json!(["dev-master", "dev-worker"]),
            "{file}: {list}"
        );
        assert_eq!(
            list["worker"]["hosts"],
            serde_json::json!(["dev-worker"]),
            "{file}"
        );
        let vars = &list["_meta"]["hostvars"]["dev-worker"];
        assert_eq!(
            vars["ansible_host"],
            serde_json::json!(lab.ip("dev-worker")),
            "{file}"
        );
        assert_eq!(vars["ansible_user"], "admin", "{file}");
    }
}

#[test]
fn logs_follow_prints_what_is_appended() {
    use std::io::{BufRead, BufReader};
    let lab = Lab::new(PAIR);
    lab.ok(&["up", "dev-master"]);
    let logs = lab.ok(&["logs", "--raw", "dev-master"]);
    assert!(
        logs.stdout
            .contains("--- tartlab: tart run dev-master --no-graphics"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("$ sudo -n /bin/bash -c"),
        "the transcript: {}",
        logs.stdout
    );
    let mut follow = lab
        .command(&["logs", "--raw", "dev-master", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let run_log = lab.lab.join(".tartlab/logs/dev-master.run.log");
    // What is there is shown first, the run log then the transcript: once the transcript's
    // last line is out, anything more was followed, not read at the start.
    let transcript = lab.lab.join(".tartlab/logs/dev-master.provision.log");
    let transcript_end = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let header = format!("==> {} <==", transcript.display());
    let mut in_transcript = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        in_transcript |= line.ends_with(&header[header.len() - 30..]);
        if in_transcript && line == transcript_end {
            break;
        }
    }
    assert!(in_transcript, "logs showed no transcript");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&run_log)
        .unwrap();
    std::io::Write::write_all(&mut file, b"appended while following\n").unwrap();
    let found = lines.any(|l| l.unwrap() == "appended while following");
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(found);
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
