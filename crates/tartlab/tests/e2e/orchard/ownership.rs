//! tartlab never deletes, adopts or waits on an Orchard VM it did not create, against the
//! real Orchard controller and a worker (support/orchard.rs): a lab's VM is the one with the
//! uid the lab recorded, and a VM of a lab node's name with another uid is someone else's.
//! Someone replaces the VM tartlab waits on; then that VM meets the next `down` and `up`; then
//! the lab's record of the uid is gone (a create cut off before the controller answered) and
//! a running VM of that name is there. Each time it is left as it is, and tartlab says so.
//! Needs root and the orchard binary (scripts/install-deps.sh).

use std::process::Stdio;

use serde_json::{json, Value};

use crate::support;
use crate::support::orchard::Fleet;

/// The environment variable the test lab takes its Orchard token from.
const TOKEN_ENV: &str = "TARTLAB_TEST_ORCHARD_TOKEN";

/// One node, `a-master`, placed by the label `worker: WORKER`.
fn one_node_lab(url: &str, account: &str, worker: &str) -> String {
    format!(
        "lab: owned\nprovider:\n  orchard:\n    url: {url}\n    service_account: {account}\n    token_env: {TOKEN_ENV}\n    arch: amd64\nclusters:\n  - name: a\n    placement: {{ labels: {{ worker: {worker} }} }}\n    nodes:\n      - {{ name: master }}\n"
    )
}

/// tartlab with the lab's token, no other Orchard configuration, and a schedule bound long
/// enough that only tartlab's own check (not the bound) ends a wait on a foreign VM.
fn tartlab(lab: &support::Lab, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = lab.command(args);
    cmd.env(TOKEN_ENV, token)
        .env("TARTLAB_ORCHARD_SCHEDULE_TIMEOUT", "30")
        .env_remove("ORCHARD_URL")
        .env_remove("ORCHARD_SERVICE_ACCOUNT_NAME")
        .env_remove("ORCHARD_SERVICE_ACCOUNT_TOKEN")
        .env("ORCHARD_HOME", lab.dir.path().join("no-orchard-home"));
    cmd
}

fn run(lab: &support::Lab, token: &str, args: &[&str]) -> support::Out {
    tartlab(lab, token, args).output().unwrap().into()
}

/// A VM someone else makes by hand, named as the lab's node, placed by `worker`.
fn someone_elses_vm(fleet: &Fleet, worker: &str) -> String {
    let body = json!({
        "name": "a-master",
        "image": "ghcr.io/cirruslabs/ubuntu:latest",
        "os": "linux",
        "arch": "amd64",
        "headless": true,
        "labels": {"worker": worker},
    });
    let vm = fleet.api("POST", "/v1/vms", Some(&body)).ok();
    vm["uid"].as_str().unwrap().to_string()
}

/// The uid of `a-master` on the controller, if there is one.
/// The uid tartlab recorded for a-master as its POST was answered, if it has.
fn recorded_uid(lab: &support::Lab) -> Option<String> {
    let text = std::fs::read_to_string(lab.lab.join(".tartlab/orchard-uids.json")).ok()?;
    let uids: Value = serde_json::from_str(&text).ok()?;
    uids["a-master"].as_str().map(str::to_string)
}

fn uid_on_controller(fleet: &Fleet) -> Option<String> {
    let found = fleet.api("GET", "/v1/vms/a-master", None);
    (found.status == 200).then(|| found.json()["uid"].as_str().unwrap().to_string())
}

/// Pauses the worker's scheduling, as an operator does (`orchard pause worker`): VMs that
/// fit it stay unscheduled (tartlab waits on them, as on a busy worker). The worker's own
/// heartbeat keeps the flag.
fn pause_scheduling(fleet: &Fleet, worker: &str) {
    set_paused(fleet, worker, true);
}

fn resume_scheduling(fleet: &Fleet, worker: &str) {
    set_paused(fleet, worker, false);
}

fn set_paused(fleet: &Fleet, worker: &str, paused: bool) {
    fleet
        .api(
            "PUT",
            &format!("/v1/workers/{worker}"),
            Some(&json!({"name": worker, "scheduling_paused": paused})),
        )
        .ok();
}

fn deleted_by_hand(fleet: &Fleet) {
    fleet.delete_vms_and_wait_gone(&["a-master"]);
}

#[test]
fn a_vm_someone_else_put_under_a_lab_name_is_never_deleted_adopted_or_waited_on() {
    let fleet = Fleet::start(&[("w1", &[("worker", "w1")])]);
    pause_scheduling(&fleet, "w1");
    let account = fleet.service_account("tartlab", &["compute:read", "compute:write"]);
    let token = account.token.as_str();
    // The one worker that fits, w1, has its scheduling paused: the lab's VM stays
    // unscheduled, and tartlab waits on it (up to the schedule bound, after which it
    // deletes the VM it made).
    let lab = support::Lab::new(&one_node_lab(&fleet.url, &account.name, "w1"));

    // 1. Replaced while tartlab waits. The first actor reports its create, and its VM is on
    // the controller; held there, it is replaced by a VM of the same name, someone else's.
    let mut up = tartlab(&lab, token, &["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.wait_for_event(&mut up, 0, "a-master's create", |e| {
        e["node"] == "a-master" && support::is_event(e, "create", "started")
    });
    let ours = fleet.wait_for("tartlab's a-master on the controller", || {
        uid_on_controller(&fleet)
    });
    support::freeze(&up);
    deleted_by_hand(&fleet);
    let theirs = someone_elses_vm(&fleet, "w1");
    support::thaw(&up);
    let replaced: support::Out = up.wait_with_output().unwrap().into();
    assert_ne!(replaced.code, 0, "{}", replaced.shown());
    assert!(
        replaced.stderr.contains(&format!(
            "a-master on the Orchard controller at {} is no longer the VM tartlab created: it has another uid ({theirs}; tartlab's was {ours})",
            fleet.url
        )) && replaced.stderr.contains("tartlab left it alone"),
        "{}",
        replaced.shown()
    );
    assert_eq!(
        uid_on_controller(&fleet).as_deref(),
        Some(theirs.as_str()),
        "the replacing VM is untouched: {}",
        replaced.shown()
    );

    // 2. `down` finds the lab's intent and that VM: it is not the lab's, so not deleted.
    let down = run(&lab, token, &["down"]);
    assert_ne!(down.code, 0, "{}", down.shown());
    assert!(
        down.stderr
            .contains("that this lab cannot prove it created")
            && down.stderr.contains(&format!(
                "it has uid {theirs}, and the VM this lab made had {ours}"
            )),
        "{}",
        down.shown()
    );
    assert_eq!(uid_on_controller(&fleet).as_deref(), Some(theirs.as_str()));

    // 3. `up` finishes the interrupted create: the POST meets a 409, and the VM of that
    // name has not the uid the create recorded: refused, not taken over or waited on.
    let again = run(&lab, token, &["up"]);
    assert_ne!(again.code, 0, "{}", again.shown());
    assert!(
        again
            .stderr
            .contains("that this lab cannot prove it created"),
        "{}",
        again.shown()
    );
    assert_eq!(uid_on_controller(&fleet).as_deref(), Some(theirs.as_str()));

    // 4. An intent and no uid at all (a create cut off before the controller answered: its
    // record gone), and a running VM of that name, someone else's. `up` does not adopt it,
    // `down` does not delete it.
    std::fs::remove_file(lab.lab.join(".tartlab/orchard-uids.json")).unwrap();
    deleted_by_hand(&fleet);
    resume_scheduling(&fleet, "w1");
    let running = someone_elses_vm(&fleet, "w1");
    fleet.wait_for_vm("a-master", "running");
    let intent = &lab.state()["vms"]["a-master"];
    assert!(
        intent.is_object() && intent["mac"].is_null(),
        "the state keeps the intent, no uid: {intent}"
    );
    let up = run(&lab, token, &["up"]);
    assert_ne!(up.code, 0, "{}", up.shown());
    assert!(
        up.stderr.contains(&format!(
            "it has uid {running}, and this lab recorded none: its create of a-master was cut off before the controller answered"
        )),
        "{}",
        up.shown()
    );
    assert_ne!(
        lab.state()["vms"]["a-master"]["mac"],
        json!(running),
        "not adopted"
    );
    let down = run(&lab, token, &["down"]);
    assert_ne!(down.code, 0, "{}", down.shown());
    assert!(
        down.stderr.contains("this lab recorded none"),
        "{}",
        down.shown()
    );
    let still = fleet.api("GET", "/v1/vms/a-master", None).ok();
    assert_eq!(
        (still["uid"].clone(), still["status"].clone()),
        (json!(running), json!("running")),
        "left running as it was: {}",
        down.shown()
    );

    // Once that VM is gone, `down` forgets the intent and the lab is clean.
    deleted_by_hand(&fleet);
    let down = run(&lab, token, &["down"]);
    assert_eq!(down.code, 0, "{}", down.shown());
    assert!(
        lab.state()["vms"].get("a-master").is_none(),
        "{}",
        down.shown()
    );
    assert_eq!(fleet.api("GET", "/v1/vms", None).ok(), Value::Array(vec![]));
}

#[test]
fn a_create_killed_in_its_wait_leaves_the_uid_that_tells_its_vm_from_a_replacement() {
    let fleet = Fleet::start(&[("w1", &[("worker", "w1")])]);
    pause_scheduling(&fleet, "w1");
    let account = fleet.service_account("tartlab", &["compute:read", "compute:write"]);
    let token = account.token.as_str();
    let lab = support::Lab::new(&one_node_lab(&fleet.url, &account.name, "w1"));
    // The first actor reports its create, and its VM is on the controller: it is killed in
    // the wait for a worker, so the state keeps the intent and no uid.
    let mut up = tartlab(&lab, token, &["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.wait_for_event(&mut up, 0, "a-master's create", |e| {
        e["node"] == "a-master" && support::is_event(e, "create", "started")
    });
    // The point is the first actor's record of the uid the controller answered: the VM on
    // the controller alone can come before tartlab has read the answer to its POST.
    let ours = fleet.wait_for("tartlab's record of a-master's uid", || recorded_uid(&lab));
    assert_eq!(uid_on_controller(&fleet), Some(ours.clone()));
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(lab.state()["vms"]["a-master"]["mac"].is_null());
    // Someone replaces it with a running VM of that name.
    deleted_by_hand(&fleet);
    resume_scheduling(&fleet, "w1");
    let theirs = someone_elses_vm(&fleet, "w1");
    fleet.wait_for_vm("a-master", "running");
    let up = run(&lab, token, &["up"]);
    assert_ne!(up.code, 0, "{}", up.shown());
    assert!(
        up.stderr.contains(&format!(
            "it has uid {theirs}, and the VM this lab made had {ours}"
        )),
        "{}",
        up.shown()
    );
    assert_ne!(
        lab.state()["vms"]["a-master"]["mac"],
        json!(theirs),
        "not adopted"
    );
    let down = run(&lab, token, &["down"]);
    assert_ne!(down.code, 0, "{}", down.shown());
    let still = fleet.api("GET", "/v1/vms/a-master", None).ok();
    assert_eq!(
        (still["uid"].clone(), still["status"].clone()),
        (json!(theirs), json!("running")),
        "left running as it was: {}",
        down.shown()
    );
    deleted_by_hand(&fleet);
}
