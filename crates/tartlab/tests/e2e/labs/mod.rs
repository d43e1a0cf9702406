//! A lab by its name and its record (issue 28, findings 3, 4 and 11), through the binary
//! against tart-sim: `labs` lists every lab brought up here and forgets one only when asked;
//! a renamed `lab:` that the state and the list of labs follow; two lab files in one
//! directory refused; a gone lab's VMs that `labs` shows and `down --lab` deletes by the
//! record (a foreign VM of that name left alone).

mod hostile_neighbour;
mod ssh_config_aliases;

use std::path::Path;

use crate::support::{tart_sim, Lab, ONE_NODE, PAIR};

#[test]
fn labs_lists_every_lab_brought_up_here_and_forgets_only_when_asked() {
    let lab = Lab::new(ONE_NODE);
    let other = lab.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("tartlab.yaml"),
        "lab: other\nvm_prefix: o-\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n",
    )
    .unwrap();
    lab.up_all_ok(1);
    lab.ok(&["up", "-f", other.join("tartlab.yaml").to_str().unwrap()]);
    let labs = lab.ok(&["labs", "--json"]).json();
    let rows = labs["labs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{labs}");
    for row in rows {
        assert_eq!(
            (row["vms"].as_u64(), row["running"].as_u64()),
            (Some(1), Some(1)),
            "{row}"
        );
        assert_eq!(row["state"], "present");
    }
    // The other lab's directory goes: shown as gone, kept until asked.
    lab.ok(&["down", "-f", other.join("tartlab.yaml").to_str().unwrap()]);
    std::fs::remove_dir_all(&other).unwrap();
    let text = lab.ok(&["labs"]).stdout;
    assert!(
        text.contains("(gone)") && text.contains("--forget-missing"),
        "{text}"
    );
    assert_eq!(
        lab.ok(&["labs", "--json"]).json()["labs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let forget = lab.ok(&["labs", "--forget-missing", "--json"]);
    assert!(forget.stderr.contains("forgot other"), "{}", forget.stderr);
    let rows = forget.json()["labs"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["lab"], "small");
    assert!(Path::new(rows[0]["file"].as_str().unwrap()).is_absolute());
    let _ = tart_sim();
}

#[test]
fn two_lab_files_in_one_directory_are_refused() {
    let lab = Lab::new(PAIR);
    std::fs::create_dir_all(lab.lab.join(".tartlab")).unwrap();
    std::fs::write(
        lab.lab.join(".tartlab/state.json"),
        "{\"version\": 1, \"lab\": \"other\", \"vms\": {}}",
    )
    .unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1);
    // Nothing records which lab file that state was made for (no `lab_file`, no entry in
    // the list of labs): a rename and another lab are both named, each with its way out.
    assert!(
        up.stderr.contains("belongs to lab `other`, not `pair`")
            && up
                .stderr
                .contains("If you renamed it: put back `lab: other`")
            && up
                .stderr
                .contains("If it is another lab: move it into its own directory"),
        "{}",
        up.stderr
    );
    assert!(lab.vms().is_empty());
}

const CONC: &str = "lab: conc\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n";

#[test]
fn a_renamed_lab_is_followed_by_its_state_and_the_list_of_labs_and_two_lab_files_stay_refused() {
    let lab = Lab::new(CONC);
    lab.up_all_ok(2);
    let macs = (lab.mac("dev-a"), lab.mac("dev-b"));
    // A state as older tartlabs wrote it, without its lab file's name: the list of labs
    // says which lab file it was made for.
    let mut older = lab.state();
    older.as_object_mut().unwrap().remove("lab_file");
    std::fs::write(lab.lab.join(".tartlab/state.json"), older.to_string()).unwrap();
    lab.write("tartlab.yaml", &CONC.replace("lab: conc", "lab: conc2"));

    // A reading command works on the renamed lab and changes nothing.
    let status = lab.ok(&["status"]);
    assert!(status.stdout.contains("dev-a"), "{}", status.shown());
    assert_eq!(lab.state()["lab"], "conc");

    // The first changing command (a `down` of one node) follows the rename, saying so once.
    let down = lab.ok(&["down", "dev-b"]);
    assert_eq!(
        down.stderr.matches("lab renamed conc -> conc2").count(),
        1,
        "{}",
        down.shown()
    );
    assert_eq!(lab.state()["lab"], "conc2");
    assert_eq!(lab.state()["lab_file"], "tartlab.yaml");
    assert_eq!(lab.vms(), [("dev-a".to_string(), true)]);
    let labs = lab.ok(&["labs", "--json"]).json();
    let rows = labs["labs"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{labs}");
    assert_eq!(rows[0]["lab"], "conc2");

    // Then nothing more is said, and the kept VM is the same VM (VM names do not use the
    // lab's name).
    let up = lab.up_all_ok(2);
    assert!(!up.stderr.contains("renamed"), "{}", up.shown());
    assert_eq!(lab.mac("dev-a"), macs.0);
    assert_ne!(lab.mac("dev-b"), macs.1, "dev-b was deleted and made again");

    // Another lab file in the same directory is another lab: refused, with the ways out,
    // and nothing touched.
    lab.write("other.yaml", &CONC.replace("lab: conc", "lab: other"));
    let other = lab.tartlab(&["up", "-f", "other.yaml"]);
    assert_eq!(other.code, 1, "{}", other.shown());
    for needed in [
        "`conc2`",
        "`other`",
        "tartlab.yaml",
        "own directory",
        "down",
    ] {
        assert!(other.stderr.contains(needed), "{needed}: {}", other.shown());
    }
    let down_other = lab.tartlab(&["down", "-f", "other.yaml"]);
    assert_eq!(down_other.code, 1, "{}", down_other.shown());
    assert_eq!(lab.state()["lab"], "conc2");
    assert_eq!(lab.vms().len(), 2);
    lab.ok(&["down"]);
    assert!(lab.vms().is_empty());
}

#[test]
fn a_gone_labs_vms_are_listed_deleted_by_down_lab_and_keep_it_from_being_forgotten() {
    let lab = Lab::new(CONC.replace("conc", "here").as_str());
    let gone_dir = lab.dir.path().join("gone");
    std::fs::create_dir_all(&gone_dir).unwrap();
    let gone_file = gone_dir.join("tartlab.yaml");
    std::fs::write(
        &gone_file,
        "lab: gone\nvm_prefix: g-\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n",
    )
    .unwrap();
    let file = gone_file.to_str().unwrap();
    lab.ok(&["up", "-f", file]);
    lab.ok(&["snapshot", "save", "s1", "-f", file]);
    let snapshot_vms: Vec<String> = lab
        .vms()
        .into_iter()
        .map(|(vm, _)| vm)
        .filter(|vm| vm.contains(".snapshot."))
        .collect();
    assert_eq!(snapshot_vms.len(), 2, "{:?}", lab.vms());
    std::fs::remove_dir_all(&gone_dir).unwrap();

    // Someone replaces g-dev-b with a VM of their own under the same name.
    assert_eq!(lab.tart(&["stop", "g-dev-b"]).code, 0);
    assert_eq!(lab.tart(&["delete", "g-dev-b"]).code, 0);
    assert_eq!(
        lab.tart(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "g-dev-b"])
            .code,
        0
    );
    let foreign_mac = lab.mac("g-dev-b");

    // `labs` shows the gone lab's VMs that are still there (the foreign one is not its).
    let labs = lab.ok(&["labs", "--json"]).json();
    let row = labs["labs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["lab"] == "gone")
        .unwrap_or_else(|| panic!("{labs}"))
        .clone();
    assert_eq!(row["state"], "missing", "{row}");
    assert_eq!(row["vms"], 3, "{row}");
    let mut remaining: Vec<String> = row["vm_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    remaining.sort();
    let mut expected = vec!["g-dev-a".to_string()];
    expected.extend(snapshot_vms.iter().cloned());
    expected.sort();
    assert_eq!(remaining, expected, "{row}");
    let text = lab.ok(&["labs"]).stdout;
    assert!(
        text.contains("g-dev-a") && text.contains("tartlab down --lab gone"),
        "{text}"
    );

    // Not forgotten while they remain: named, with the way out.
    let forget = lab.tartlab(&["labs", "--forget-missing"]);
    assert_eq!(forget.code, 1, "{}", forget.shown());
    assert!(
        forget.stderr.contains("g-dev-a") && forget.stderr.contains("tartlab down --lab gone"),
        "{}",
        forget.shown()
    );
    assert!(!forget.stderr.contains("forgot gone"), "{}", forget.shown());

    // `down --lab` deletes them by the record; the foreign VM is untouched and named.
    let down = lab.ok(&["down", "--lab", "gone"]);
    assert!(
        down.stderr.contains("g-dev-b") && down.stderr.contains("left alone"),
        "{}",
        down.shown()
    );
    assert_eq!(lab.vms(), [("g-dev-b".to_string(), false)]);
    assert_eq!(lab.mac("g-dev-b"), foreign_mac);

    // Now it can be forgotten.
    let forget = lab.ok(&["labs", "--forget-missing"]);
    assert!(forget.stderr.contains("forgot gone"), "{}", forget.shown());
    let labs = lab.ok(&["labs", "--json"]).json();
    assert!(
        labs["labs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["lab"] != "gone"),
        "{labs}"
    );
    // A name the list does not hold is a usage error that lists the names it holds.
    let unknown = lab.tartlab(&["down", "--lab", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.shown());
}
