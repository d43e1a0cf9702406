//! Files, steps in phases, outputs between nodes and ready probes, end to end against
//! tart-sim: a changed step reruns only where it changed and `--reprovision` forces it, a
//! failing step stops its cluster and the other goes on, a step that hangs is cut at the
//! command timeout, and a failing ready probe shows its hint.

mod cloud_init;
mod hostile_guest;
mod mounts;
mod secrets;
mod systemd_guests;

use crate::support::{self, Lab, PAIR};

#[test]
fn a_step_that_hangs_is_cut_at_the_command_timeout() {
    let lab = Lab::new(&format!(
        "{PAIR}provision:\n  - name: hang\n    on: dev-worker\n    run: sleep 60\n"
    ));
    let up = support::output(lab.command(&["up"]).env("TARTLAB_COMMAND_TIMEOUT", "2"));
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(up.stderr.contains("error: dev-worker failed at stage `provision`: step `hang`: did not finish within 2 s (TARTLAB_COMMAND_TIMEOUT)"), "{}", up.stderr);
    assert!(
        lab.running("dev-worker"),
        "the VM is left running to look at"
    );
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
