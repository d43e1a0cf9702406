//! Node names that stay when a `count` changes (issue 28, finding 2): a node with `count` is
//! numbered at any count, so lowering it orphans the last VMs and raising it adds VMs, and
//! no VM is renamed; a lab whose VM an older tartlab named `<cluster>-<node>` (at `count: 1`)
//! keeps that VM and its name. The real binary against tart-sim.

use crate::support::Lab;

/// A lab of one cluster `stg`: a master and `worker` as given (`count` or not).
fn lab_file(worker: &str) -> String {
    format!("lab: names\nclusters:\n  - name: stg\n    nodes:\n      - {{ name: master, role: master }}\n      - {{ name: worker, role: worker{worker} }}\n")
}

/// The row of `plan`'s table for this VM (its first column, exactly).
fn row<'a>(plan: &'a str, vm: &str) -> Option<&'a str> {
    plan.lines()
        .find(|l| l.split_whitespace().next() == Some(vm))
}

/// The action `plan` gives a VM the lab keeps as it is: nothing, or new /etc/hosts when a
/// neighbour came or went; never a create, boot or restart.
fn kept_as_is(plan: &str, vm: &str) {
    let row = row(plan, vm).unwrap_or_else(|| panic!("no row for {vm}:\n{plan}"));
    let action = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .last();
    assert!(
        matches!(action, Some("nothing" | "provision (hosts)")),
        "{vm} is kept as it is: {row}\n{plan}"
    );
}

#[test]
fn lowering_a_count_keeps_the_first_vms_and_makes_the_last_an_orphan() {
    let lab = Lab::new(&lab_file(", count: 2"));
    lab.up_all_ok(3);
    let mac = lab.mac("stg-worker-1");
    lab.write("tartlab.yaml", &lab_file(", count: 1"));

    let plan = lab.ok(&["plan"]).stdout;
    kept_as_is(&plan, "stg-worker-1");
    assert!(
        row(&plan, "stg-worker").is_none(),
        "nothing renamed:\n{plan}"
    );
    let orphan = row(&plan, "stg-worker-2").unwrap_or_else(|| panic!("{plan}"));
    assert!(orphan.contains("orphan: kept"), "{orphan}");

    let up = lab.up_all_ok(2);
    assert!(
        up.stderr.contains("warning: stg-worker-2 is an orphan"),
        "{}",
        up.stderr
    );
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker-1".to_string(), true),
            ("stg-worker-2".to_string(), true)
        ],
        "the orphan is kept, running, as up keeps orphans"
    );
    assert_eq!(lab.mac("stg-worker-1"), mac, "the same VM, not a new one");
    assert_eq!(lab.boots("stg-worker-1"), 1, "never restarted");
    let hostname = lab.ssh("stg-worker-1", "hostname");
    assert_eq!(
        hostname.stdout.trim(),
        "stg-worker-1",
        "{}",
        hostname.stderr
    );
}

#[test]
fn raising_a_count_adds_the_next_numbers_and_renames_nothing() {
    let lab = Lab::new(&lab_file(", count: 1"));
    lab.up_all_ok(2);
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker-1".to_string(), true)
        ],
        "a node with `count` is numbered at count 1 too"
    );
    let mac = lab.mac("stg-worker-1");
    lab.write("tartlab.yaml", &lab_file(", count: 2"));

    let plan = lab.ok(&["plan"]).stdout;
    kept_as_is(&plan, "stg-worker-1");
    let added = row(&plan, "stg-worker-2").unwrap_or_else(|| panic!("{plan}"));
    assert!(added.trim_end().ends_with("create"), "{added}");
    assert!(!plan.contains("orphan"), "{plan}");

    lab.up_all_ok(3);
    assert_eq!(lab.mac("stg-worker-1"), mac, "the same VM, not a new one");
    assert_eq!(lab.boots("stg-worker-1"), 1, "never restarted");
    let hosts = lab.ssh("stg-worker-1", "cat /etc/hosts");
    assert!(hosts.stdout.contains("stg-worker-2"), "{}", hosts.stdout);
}

/// An older tartlab named a `count: 1` node `<cluster>-<node>`, exactly as it (and this one)
/// names a node without `count`, from the same settings: a lab brought up without `count`
/// is, in tart and in `.tartlab/`, the lab an older tartlab made with `count: 1`. Adding
/// `count: 1` then is the upgrade.
#[test]
fn a_vm_an_older_tartlab_named_keeps_its_name_until_it_is_made_anew() {
    let lab = Lab::new(&lab_file(""));
    lab.up_all_ok(2);
    let mac = lab.mac("stg-worker");
    lab.write("tartlab.yaml", &lab_file(", count: 1"));

    let plan = lab.ok(&["plan"]).stdout;
    let worker = row(&plan, "stg-worker").unwrap_or_else(|| panic!("{plan}"));
    assert!(worker.trim_end().ends_with("nothing"), "{worker}");
    let master = row(&plan, "stg-master").unwrap_or_else(|| panic!("{plan}"));
    assert!(master.trim_end().ends_with("nothing"), "{master}");
    assert!(row(&plan, "stg-worker-1").is_none(), "{plan}");
    assert!(!plan.contains("orphan"), "{plan}");
    assert!(
        plan.contains("stg-worker (by the rule stg-worker-1) keeps the name it was made with"),
        "plan says why the name stays:\n{plan}"
    );

    let up = lab.up_all_ok(2);
    assert_eq!(
        up.stderr.matches("node names:").count(),
        1,
        "up says it once:\n{}",
        up.stderr
    );
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker".to_string(), true)
        ]
    );
    assert_eq!(lab.mac("stg-worker"), mac, "the same VM, not a new one");
    assert_eq!(lab.boots("stg-worker"), 1, "never restarted");
    assert_eq!(
        lab.ssh("stg-worker", "hostname").stdout.trim(),
        "stg-worker"
    );
    let again = lab.up_all_ok(2);
    assert!(
        !again.stderr.contains("node names:"),
        "said once, not at every up:\n{}",
        again.stderr
    );
    // The rule's name reaches it too, for a user who reads the docs.
    let exec = lab.ok(&["exec", "stg-worker-1", "--", "hostname"]);
    assert!(exec.stdout.contains("stg-worker"), "{}", exec.stdout);
    let config = lab.ok(&["ssh-config"]).stdout;
    assert!(
        config.contains("Host stg-worker names.stg-worker\n"),
        "{config}"
    );

    // Raising the count adds the next number beside it.
    lab.write("tartlab.yaml", &lab_file(", count: 2"));
    lab.up_all_ok(3);
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker".to_string(), true),
            ("stg-worker-2".to_string(), true)
        ]
    );
    assert_eq!(lab.mac("stg-worker"), mac);
    let hosts = lab.ssh("stg-worker", "cat /etc/hosts").stdout;
    assert!(hosts.contains("stg-worker-2"), "{hosts}");

    // Its own name picks it alone, never its neighbour; made anew, it takes the rule's name.
    lab.ok(&["down", "stg-worker"]);
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker-2".to_string(), true)
        ]
    );
    lab.up_all_ok(3);
    assert_eq!(
        lab.vms(),
        [
            ("stg-master".to_string(), true),
            ("stg-worker-1".to_string(), true),
            ("stg-worker-2".to_string(), true)
        ]
    );
}
