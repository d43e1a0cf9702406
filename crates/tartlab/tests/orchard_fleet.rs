//! tartlab on a fleet of Macs through Orchard, against the real Orchard controller and
//! workers (common/orchard.rs: the workers drive tart-sim through Orchard's own tart
//! runtime, one TART_HOME each). For now the fleet itself, checked as the Orchard provider
//! will rely on it: the workers register as a Mac's would, VMs created through the API run
//! where their labels say, reach each other on one worker and not across workers (two
//! Macs' networks are apart), and leave nothing behind once deleted. Needs root and the
//! orchard binary (scripts/install-deps.sh).

mod common;

use std::time::Instant;

use common::orchard::Fleet;
use serde_json::{json, Value};

fn two_workers() -> Fleet {
    Fleet::start(&[("w1", &[("worker", "w1")]), ("w2", &[("worker", "w2")])])
}

/// A VM as a test of the Orchard provider creates it: Linux on this machine's arch,
/// softnet open to every address (the VMs of a worker may meet), pinned by label.
fn vm_body(name: &str, worker: &str) -> Value {
    json!({
        "name": name,
        "image": "ghcr.io/cirruslabs/ubuntu:latest",
        "os": "linux",
        "arch": "amd64",
        "headless": true,
        "netSoftnet": true,
        "netSoftnetAllow": ["0.0.0.0/0"],
        "labels": {"worker": worker},
    })
}

/// Whether VM `from` opens TCP port 22 of `to_ip`, tried from inside the guest over
/// `orchard ssh vm` (the controller's port-forward, then the image's admin login).
fn reaches(fleet: &Fleet, from: &str, to_ip: &str) -> bool {
    let probe =
        format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{to_ip}/22' && echo reached || echo apart");
    let out = fleet.orchard(&["ssh", "vm", from, "--wait", "30", &probe]);
    assert_eq!(
        out.code, 0,
        "orchard ssh vm {from}: {}{}",
        out.stdout, out.stderr
    );
    match out.stdout.trim() {
        "reached" => true,
        "apart" => false,
        other => panic!("orchard ssh vm {from} printed {other:?}"),
    }
}

#[test]
fn the_fleet_lists_both_workers_as_tart_amd64_with_their_labels() {
    let started = Instant::now();
    let fleet = two_workers();
    eprintln!("fleet of 2 workers up in {:?}", started.elapsed());
    let workers = fleet.api("GET", "/v1/workers", None).ok();
    let mut seen: Vec<(String, String, String, Value)> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let s = |k: &str| w[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("runtime"), s("arch"), w["labels"].clone())
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let want = |name: &str| {
        (
            name.to_string(),
            "tart".to_string(),
            "amd64".to_string(),
            json!({"worker": name}),
        )
    };
    assert_eq!(seen, vec![want("w1"), want("w2")]);
    // A worker's account may read and write compute, nothing more: no admin.
    let info = fleet
        .api_as(&fleet.workers_account, "GET", "/v1/controller/info", None)
        .ok();
    assert!(info["capabilities"].is_array(), "{info}");
    let settings = fleet.api_as(&fleet.workers_account, "GET", "/v1/cluster-settings", None);
    assert_eq!(settings.status, 401, "{settings:?}");
}

#[test]
fn vms_run_where_their_labels_say_and_meet_only_on_their_own_worker() {
    let fleet = two_workers();
    let placed = [("a1", "w1"), ("a2", "w1"), ("b1", "w2")];
    let posted = Instant::now();
    for (name, worker) in placed {
        fleet
            .api("POST", "/v1/vms", Some(&vm_body(name, worker)))
            .ok();
    }
    let mut ips = std::collections::BTreeMap::new();
    for (name, worker) in placed {
        let vm = fleet.wait_for_vm(name, "running");
        assert_eq!(vm["worker"], worker, "{vm}");
        // The worker ran `tart fqn` after the clone (tart-sim answers it as tart does).
        let fqn = vm["image_fqn"].as_str().unwrap_or_default();
        assert!(fqn.starts_with("ghcr.io/cirruslabs/ubuntu@sha256:"), "{vm}");
        let ip = fleet
            .api("GET", &format!("/v1/vms/{name}/ip?wait=30"), None)
            .ok();
        ips.insert(name, ip["ip"].as_str().unwrap().to_string());
    }
    eprintln!(
        "3 VMs on 2 workers POST -> running with an IP: {:?}",
        posted.elapsed()
    );
    assert!(reaches(&fleet, "a1", &ips["a2"]), "a1 reaches a2 on w1");
    assert!(reaches(&fleet, "a2", &ips["a1"]), "a2 reaches a1 on w1");
    eprintln!("... -> SSH through the controller: {:?}", posted.elapsed());
    assert!(
        !reaches(&fleet, "a1", &ips["b1"]),
        "a1 (w1) must not reach b1 (w2)"
    );
    assert!(
        !reaches(&fleet, "b1", &ips["a1"]),
        "b1 (w2) must not reach a1 (w1)"
    );
    // Each worker's VMs are in its own TART_HOME, under Orchard's on-disk names.
    for (worker, count) in [("w1", 2), ("w2", 1)] {
        let vms = fleet.tart_vms(worker);
        assert_eq!(vms.len(), count, "{worker}: {vms:?}");
        assert!(vms.iter().all(|v| v.starts_with("orchard-")), "{vms:?}");
    }

    let deleting = Instant::now();
    fleet.delete_vms_and_wait_gone(&["a1", "a2", "b1"]);
    eprintln!("DELETE -> no VM on any worker: {:?}", deleting.elapsed());
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
}

#[test]
fn a_killed_worker_leaves_its_vm_running_and_a_restart_fails_it_and_keeps_its_clone() {
    // What the Orchard provider meets when a Mac's worker crashes (shared/tools/orchard's
    // README): the VM lives on and the API still says running. The worker, restarted with
    // the same name and home, stops it and reports it failed, but never deletes its clone:
    // the on-disk sync that would (internal/worker/worker.go, syncOnDiskVMs) runs only when
    // a worker starts, so a DELETE leaves the stopped clone until the next restart.
    let mut fleet = Fleet::start(&[("w1", &[("worker", "w1")])]);
    fleet
        .api("POST", "/v1/vms", Some(&vm_body("c1", "w1")))
        .ok();
    fleet.wait_for_vm("c1", "running");
    fleet.kill_worker("w1");
    let vm = fleet.api("GET", "/v1/vms/c1", None).ok();
    assert_eq!(vm["status"], "running", "{vm}");
    assert_eq!(fleet.tart_vm_states("w1"), ["running"]);

    let restarting = Instant::now();
    fleet.restart_worker("w1");
    let vm = fleet.wait_for_vm("c1", "failed");
    eprintln!(
        "worker restart -> VM failed in {:?}: {}",
        restarting.elapsed(),
        vm["status_message"]
    );
    assert_eq!(vm["status_message"], "Worker lost track of VM");
    assert_eq!(fleet.tart_vm_states("w1"), ["stopped"]);
    let r = fleet.api("DELETE", "/v1/vms/c1", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), json!([]));
    // A sync of the worker (every 5 s) later, the clone is still there...
    let calls = |f: &Fleet| std::fs::read_to_string(&f.worker("w1").tart_calls).unwrap();
    let empty_syncs = |f: &Fleet| {
        let log = std::fs::read_to_string(&f.worker("w1").log).unwrap();
        log.matches("syncing 0 local VMs against 0 remote VMs")
            .count()
    };
    let (syncs, lists) = (empty_syncs(&fleet), calls(&fleet).matches("list").count());
    fleet.wait_for("another sync of w1", || {
        (empty_syncs(&fleet) > syncs).then_some(())
    });
    assert_eq!(
        calls(&fleet).matches("list").count(),
        lists,
        "no tart list since"
    );
    assert_eq!(fleet.tart_vm_states("w1"), ["stopped"]);
    // ...and the next start of the worker deletes it.
    fleet.restart_worker("w1");
    fleet.wait_for("w1's restart to delete the clone", || {
        fleet.tart_vms("w1").is_empty().then_some(())
    });
}
