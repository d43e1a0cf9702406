//! The seed lab on a fleet of the real Orchard (support/orchard.rs): one cluster per worker
//! on three workers, used the way people use it (status, exec, the system's ssh, Ansible's
//! inventory, a converged re-up, down); a worker killed in the middle of an `up`; and a
//! Linux fleet of Orchard's own build (vetu runtime), which tartlab refuses in words.
//! Needs root and the orchard binaries (scripts/install-deps.sh).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::support::orchard::{Build, Fleet};
use crate::support::{self, is_event, Lab, Out};

/// The environment variable the test labs take their Orchard token from.
const TOKEN_ENV: &str = "TARTLAB_TEST_ORCHARD_TOKEN";

/// The seed lab's clusters and the worker each is pinned to.
const SEED_CLUSTERS: [(&str, &str); 3] = [("dev", "w1"), ("stg", "w2"), ("prod", "w3")];

/// examples/seed-lab.yaml as it is, with the fleet as its provider and each cluster pinned
/// to its worker by the worker's label.
fn seed_lab(url: &str, account: &str) -> String {
    let mut text = std::fs::read_to_string(support::examples().join("seed-lab.yaml")).unwrap();
    let provider = format!(
        "lab: seed\nprovider:\n  orchard:\n    url: {url}\n    service_account: {account}\n    token_env: {TOKEN_ENV}\n    arch: amd64\n"
    );
    assert_eq!(text.matches("lab: seed\n").count(), 1, "{text}");
    text = text.replace("lab: seed\n", &provider);
    for (cluster, worker) in SEED_CLUSTERS {
        let at = format!("  - name: {cluster}\n");
        assert_eq!(text.matches(&at).count(), 1, "{text}");
        text = text.replace(
            &at,
            &format!("{at}    placement: {{ labels: {{ worker: {worker} }} }}\n"),
        );
    }
    text
}

/// The seed lab's nine nodes with their cluster and worker.
fn seed_nodes() -> Vec<(String, &'static str, &'static str)> {
    SEED_CLUSTERS
        .iter()
        .flat_map(|&(cluster, worker)| {
            ["master", "worker-1", "worker-2"]
                .map(|node| (format!("{cluster}-{node}"), cluster, worker))
        })
        .collect()
}

/// tartlab with the lab's token in its environment, and no other Orchard credentials.
fn tartlab_command(lab: &Lab, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = lab.command(args);
    token_env(&mut cmd, lab, token);
    cmd
}

fn token_env(cmd: &mut std::process::Command, lab: &Lab, token: &str) {
    cmd.env(TOKEN_ENV, token)
        .env_remove("ORCHARD_URL")
        .env_remove("ORCHARD_SERVICE_ACCOUNT_NAME")
        .env_remove("ORCHARD_SERVICE_ACCOUNT_TOKEN")
        .env("ORCHARD_HOME", lab.dir.path().join("no-orchard-home"));
}

fn tartlab(lab: &Lab, token: &str, args: &[&str]) -> Out {
    tartlab_command(lab, token, args).output().unwrap().into()
}

/// Fails the test with everything there is to see unless the command exited 0.
fn ok(lab: &Lab, fleet: &Fleet, token: &str, args: &[&str]) -> Out {
    let out = tartlab(lab, token, args);
    assert_eq!(
        out.code,
        0,
        "tartlab {args:?}\n{}\n{}\n{}",
        out.shown(),
        lab.transcript_tails(),
        fleet.log_tails()
    );
    out
}

/// The results of `exec --json`, as (node, exit code, stdout).
fn exec_results(out: &Out) -> Vec<(String, i64, String)> {
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("exec --json printed no JSON ({e}): {}", out.shown()));
    json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {json}"))
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap_or_default().to_string(),
                r["exit_code"].as_i64().unwrap_or(-1),
                r["stdout"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_seed_lab_runs_one_cluster_per_worker_and_leaves_no_vm_on_any_worker() {
    let fleet = Fleet::start(&[
        ("w1", &[("worker", "w1")]),
        ("w2", &[("worker", "w2")]),
        ("w3", &[("worker", "w3")]),
    ]);
    let account = fleet.service_account("tartlab", &["compute:read", "compute:write"]);
    let token = account.token.clone();
    let lab = Lab::new(&seed_lab(&fleet.url, &account.name));
    let nodes = seed_nodes();

    let started = Instant::now();
    let up = ok(&lab, &fleet, &token, &["up"]);
    eprintln!(
        "up of the seed lab (9 VMs) on 3 workers: {:?}",
        started.elapsed()
    );
    assert!(up.stdout.contains("up: 9 of 9 nodes ok"), "{}", up.shown());

    // Each VM runs where its cluster's label says, and `status` says which worker that is.
    let vms = fleet.api("GET", "/v1/vms", None).ok();
    let placed: BTreeMap<String, String> = vms
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (text("name"), text("worker"))
        })
        .collect();
    let wanted: BTreeMap<String, String> = nodes
        .iter()
        .map(|(vm, _, worker)| (vm.clone(), worker.to_string()))
        .collect();
    assert_eq!(placed, wanted);
    for (worker, _) in [("w1", ()), ("w2", ()), ("w3", ())] {
        assert_eq!(fleet.tart_vms(worker).len(), 3, "{worker}'s TART_HOME");
    }
    let status = ok(&lab, &fleet, &token, &["status"]);
    for (vm, _, worker) in &nodes {
        let line = status
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(vm))
            .unwrap_or_else(|| panic!("no line for {vm}: {}", status.stdout));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.contains(&"running") && words.contains(worker),
            "{vm} on {worker}: {}",
            status.stdout
        );
    }

    // exec on every node, through the controller: each is its own host, has the seed's
    // user, and finds the masters of its own cluster only (`hosts: cluster`).
    let exec = ok(
        &lab,
        &fleet,
        &token,
        &[
            "exec",
            "all",
            "--json",
            "--",
            "hostname; id -un devops; for m in dev-master stg-master prod-master; do getent hosts $m >/dev/null && echo $m; done; true",
        ],
    );
    let results = exec_results(&exec);
    assert_eq!(results.len(), 9, "{}", exec.stdout);
    for (vm, cluster, _) in &nodes {
        let (_, code, stdout) = results
            .iter()
            .find(|(node, _, _)| node == vm)
            .unwrap_or_else(|| panic!("no result for {vm}: {}", exec.stdout));
        assert_eq!(*code, 0, "{vm}: {}", exec.stdout);
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            [vm.as_str(), "devops", &format!("{cluster}-master")],
            "{vm}"
        );
    }

    // ssh-config, used by the system's ssh: one node on each worker.
    let config = ok(&lab, &fleet, &token, &["ssh-config"]);
    let config_file = lab.dir.path().join("ssh_config");
    std::fs::write(&config_file, &config.stdout).unwrap();
    for vm in ["dev-master", "stg-worker-1", "prod-worker-2"] {
        let mut ssh = std::process::Command::new("ssh");
        ssh.arg("-F").arg(&config_file).args([vm, "hostname"]);
        lab.env(&mut ssh);
        token_env(&mut ssh, &lab, &token);
        let out: Out = ssh.output().unwrap().into();
        assert_eq!(out.code, 0, "ssh -F ... {vm}: {}", out.shown());
        assert_eq!(out.stdout.trim(), vm);
    }

    // The inventory, read by Ansible's own parser: the nine hosts in their clusters'
    // groups, each reached through `tartlab proxy`.
    let inventory = ok(&lab, &fleet, &token, &["inventory"]);
    let inventory_file = lab.dir.path().join("inventory.yaml");
    std::fs::write(&inventory_file, &inventory.stdout).unwrap();
    let ansible_inventory = std::env::var("TARTLAB_TEST_ANSIBLE_INVENTORY")
        .unwrap_or_else(|_| "/opt/tartlab-test-tools/ansible/bin/ansible-inventory".into());
    assert!(
        std::path::Path::new(&ansible_inventory).is_file(),
        "{ansible_inventory} is missing: scripts/install-deps.sh --with-nextest installs it"
    );
    let mut parse = std::process::Command::new(&ansible_inventory);
    parse
        .args(["-i", inventory_file.to_str().unwrap(), "--list"])
        .env("ANSIBLE_LOCAL_TEMP", lab.dir.path())
        .env("ANSIBLE_HOME", lab.dir.path());
    let parsed: Out = parse.output().unwrap().into();
    assert_eq!(parsed.code, 0, "{}", parsed.shown());
    let parsed: Value = serde_json::from_str(&parsed.stdout).unwrap();
    for (vm, cluster, _) in &nodes {
        let hostvars = &parsed["_meta"]["hostvars"][vm];
        let args = hostvars["ansible_ssh_common_args"].as_str().unwrap_or("");
        assert!(
            args.contains("ProxyCommand") && args.contains("proxy -f"),
            "{vm}: {hostvars}"
        );
        let group = parsed[cluster]["hosts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            group.contains(&json!(vm)),
            "{vm} in group {cluster}: {parsed}"
        );
    }

    // A converged up touches no VM: the same nine uids, nothing made or deleted.
    let before = fleet.vm_uids();
    assert_eq!(before.len(), 9, "{before:?}");
    let again = ok(&lab, &fleet, &token, &["up"]);
    assert!(
        again.stdout.contains("up: 9 of 9 nodes ok"),
        "{}",
        again.shown()
    );
    assert_eq!(fleet.vm_uids(), before);

    // `down` leaves no VM: not on the controller, not in any worker's TART_HOME.
    let down = ok(&lab, &fleet, &token, &["down"]);
    assert_eq!(
        fleet.api("GET", "/v1/vms", None).ok(),
        json!([]),
        "{}",
        down.shown()
    );
    for worker in ["w1", "w2", "w3"] {
        fleet.wait_for(&format!("{worker} to delete its tart VMs"), || {
            fleet.tart_vms(worker).is_empty().then_some(())
        });
    }
}

/// Two clusters: `a` (two nodes) pinned to w1, `b` (one node) to w2; a step on each node.
fn two_worker_lab(url: &str, account: &str) -> String {
    format!(
        "lab: midway\nprovider:\n  orchard:\n    url: {url}\n    service_account: {account}\n    token_env: {TOKEN_ENV}\n    arch: amd64\nhosts: cluster\nclusters:\n  - name: a\n    placement: {{ labels: {{ worker: w1 }} }}\n    nodes:\n      - {{ name: master }}\n      - {{ name: node }}\n  - name: b\n    placement: {{ labels: {{ worker: w2 }} }}\n    nodes:\n      - {{ name: master }}\nprovision:\n  - name: marker\n    run: echo \"step ran on $TARTLAB_NODE\" > /var/tmp/marker\n"
    )
}

#[test]
fn a_worker_killed_while_up_waits_for_its_node_fails_that_node_and_the_next_up_converges() {
    // A controller that holds a worker offline after 30 s unseen (3 min by default): two
    // missed heartbeats (every 15 s), so that the test does not wait Orchard's default.
    let mut fleet = Fleet::start_with(
        Build::TartRuntime,
        &[("w1", &[("worker", "w1")]), ("w2", &[("worker", "w2")])],
        &["--worker-offline-timeout", "30s"],
    );
    let account = fleet.service_account("tartlab", &["compute:read", "compute:write"]);
    let token = account.token.clone();
    let lab = Lab::new(&two_worker_lab(&fleet.url, &account.name));

    // `up` runs until b-master (on w2) waits for its address and w2 has been asked it; then
    // w2 dies as a crashed Mac's worker does (its VM lives on, the controller is not told).
    // The address timeout is left at its default (180 s): tartlab asks in short waits and
    // looks at the VM and its worker between them, so the controller's verdict on w2 ends
    // the wait, not the timeout.
    fleet.hold_tart_ip("w2");
    let mut up = tartlab_command(&lab, &token, &["up"]);
    up.env_remove("TARTLAB_IP_TIMEOUT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut up = up.spawn().unwrap();
    lab.wait_for_event(&mut up, 0, "b-master waiting for its address", |e| {
        e["node"] == "b-master" && is_event(e, "ip", "started")
    });
    fleet.wait_for("w2 to be asked b-master's address", || {
        fleet.tart_ip_asked("w2").then_some(())
    });
    fleet.kill_worker("w2");
    let killed = Instant::now();
    let up: Out = up.wait_with_output().unwrap().into();
    eprintln!(
        "up ended {:.1} s after w2 was killed",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(up.code, 3, "a partial failure: {}", up.shown());
    assert!(
        up.stderr.contains(
            "b-master failed on worker w2 while tartlab waited for its address: VM is assigned to a worker that lost connection with the controller (w2 was last seen"
        ),
        "{}",
        up.shown()
    );
    assert!(up.stdout.contains("up: 2 of 3 nodes ok"), "{}", up.shown());
    let exec = tartlab(
        &lab,
        &token,
        &["exec", "a-master", "a-node", "--", "cat /var/tmp/marker"],
    );
    assert_eq!(exec.code, 0, "{}", exec.shown());
    for vm in ["a-master", "a-node"] {
        assert!(
            exec.stdout.contains(&format!("step ran on {vm}")),
            "{}",
            exec.shown()
        );
    }
    let before = fleet.vm_uids();

    // w2 back (same name and home): it fails the VM it lost track of, and the next plain
    // `up` makes b-master anew and leaves cluster a's VMs as they are.
    fleet.release_tart_ip("w2");
    fleet.restart_worker("w2");
    fleet.wait_for_vm("b-master", "failed");
    let again = ok(&lab, &fleet, &token, &["up"]);
    assert!(
        again.stdout.contains("up: 3 of 3 nodes ok"),
        "{}",
        again.shown()
    );
    let after = fleet.vm_uids();
    assert_eq!(after["a-master"], before["a-master"]);
    assert_eq!(after["a-node"], before["a-node"]);
    assert_ne!(after["b-master"], before["b-master"]);
    let ssh = ok(
        &lab,
        &fleet,
        &token,
        &["ssh", "b-master", "--", "cat /var/tmp/marker"],
    );
    assert_eq!(ssh.stdout.trim(), "step ran on b-master");
    ok(&lab, &fleet, &token, &["down"]);
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
}

#[test]
fn a_worker_killed_before_it_picks_its_vm_up_fails_the_node_naming_when_it_was_last_seen() {
    // As in the test above, a controller that holds a worker offline after 30 s unseen.
    let mut fleet = Fleet::start_with(
        Build::TartRuntime,
        &[("w1", &[("worker", "w1")]), ("w2", &[("worker", "w2")])],
        &["--worker-offline-timeout", "30s"],
    );
    let account = fleet.service_account("tartlab", &["compute:read", "compute:write"]);
    let lab = Lab::new(&format!(
        "lab: orphan\nprovider:\n  orchard:\n    url: {}\n    service_account: {}\n    token_env: {TOKEN_ENV}\n    arch: amd64\nclusters:\n  - name: b\n    placement: {{ labels: {{ worker: w2 }} }}\n    nodes:\n      - {{ name: master }}\n",
        fleet.url, account.name
    ));

    // w2 dies before `up`: the controller still holds it online (seen within 30 s), so it
    // schedules b-master there, and no worker ever runs it.
    fleet.kill_worker("w2");
    let up = tartlab(&lab, &account.token, &["up"]);
    assert_ne!(up.code, 0, "{}", up.shown());
    assert!(
        up.stderr.contains(
            "b-master failed on worker w2: VM is assigned to a worker that lost connection with the controller (w2 was last seen"
        ),
        "{}",
        up.shown()
    );
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
}

/// One node on the worker labelled `worker: v1`, the runtime as given (none: the default).
fn vetu_fleet_lab(url: &str, runtime: &str) -> String {
    format!(
        "lab: linux\nprovider:\n  orchard:\n    url: {url}\n    service_account: bootstrap-admin\n    token_env: {TOKEN_ENV}\n    arch: amd64\n{runtime}clusters:\n  - name: a\n    placement: {{ labels: {{ worker: v1 }} }}\n    nodes:\n      - {{ name: master }}\n"
    )
}

#[test]
fn a_fleet_of_orchards_own_linux_build_runs_vetu_which_tartlab_refuses_in_words() {
    // Orchard's own build on Linux: its workers run the vetu runtime, whatever they are
    // asked (a Mac's run tart, the runtime tartlab's VMs ask for).
    let fleet = Fleet::start_build(Build::Unpatched, &[("v1", &[("worker", "v1")])]);
    let workers = fleet.api("GET", "/v1/workers", None).ok();
    assert_eq!(workers[0]["runtime"], "vetu", "{workers}");
    let token = fleet.admin.token.clone();

    // A lab of the default runtime (tart): no worker could ever take its VM, which `up`
    // says before it creates anything (not after the schedule bound, left at its default
    // of 120 s), with the fleet's workers and the runtime to change.
    let lab = Lab::new(&vetu_fleet_lab(&fleet.url, ""));
    let mut up = tartlab_command(&lab, &token, &["up"]);
    up.env_remove("TARTLAB_ORCHARD_SCHEDULE_TIMEOUT");
    let up: Out = up.output().unwrap().into();
    assert_eq!(up.code, 1, "{}", up.shown());
    assert!(
        up.stderr.contains(
            "no Orchard worker can take a-master: none that is online has arch amd64, runtime tart, labels worker=v1"
        ) && up.stderr.contains("v1 (amd64/vetu, labels worker=v1")
            && up.stderr.contains("nothing was created for it")
            && up.stderr.contains("the workers that would fit run the vetu runtime, and the lab's VMs ask for tart"),
        "{}",
        up.shown()
    );
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
    // `doctor` says it beforehand: the fleet's one worker runs vetu, and no worker fits.
    let doctor = tartlab(&lab, &token, &["doctor"]);
    assert_ne!(doctor.code, 0, "{}", doctor.shown());
    assert!(
        doctor
            .stdout
            .contains("1 online: v1 (amd64/vetu, labels worker=v1")
            && doctor.stdout.contains(
                "no online worker of arch amd64, runtime tart has the labels of a-master"
            ),
        "{}",
        doctor.shown()
    );

    // A lab that asks for vetu: refused where it says so, before anything is asked of the
    // controller.
    let lab = Lab::new(&vetu_fleet_lab(&fleet.url, "    runtime: vetu\n"));
    let up = tartlab(&lab, &token, &["up"]);
    assert_eq!(up.code, 2, "{}", up.shown());
    assert!(
        up.stderr
            .contains("`runtime` takes one of tart; got `vetu`\n --> tartlab.yaml:8:14")
            && up.stderr.contains("nothing was changed"),
        "{}",
        up.shown()
    );
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
}
