//! A lab by its name and its record (issue 28, findings 3, 4 and 11), through the binary
//! against tart-sim: a renamed `lab:` that the state and the list of labs follow (and two
//! lab files in one directory still refused), a gone lab's VMs that `labs` shows and
//! `down --lab` deletes by the record (a foreign VM of that name left alone), and `config`
//! whose masked password says it is masked.

mod common;

use std::path::Path;

use common::{Lab, Out};

const CONC: &str = "lab: conc\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n";

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn show(out: &Out) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    )
}

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
    assert!(status.stdout.contains("dev-a"), "{}", show(&status));
    assert_eq!(lab.state()["lab"], "conc");

    // The first changing command (a `down` of one node) follows the rename, saying so once.
    let down = lab.ok(&["down", "dev-b"]);
    assert_eq!(
        down.stderr.matches("lab renamed conc -> conc2").count(),
        1,
        "{}",
        show(&down)
    );
    assert_eq!(lab.state()["lab"], "conc2");
    assert_eq!(lab.state()["lab_file"], "tartlab.yaml");
    assert_eq!(lab.vms(), [("dev-a".to_string(), true)]);
    let labs = json(&lab.ok(&["labs", "--json"]));
    let rows = labs["labs"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{labs}");
    assert_eq!(rows[0]["lab"], "conc2");

    // Then nothing more is said, and the kept VM is the same VM (VM names do not use the
    // lab's name).
    let up = lab.up_all_ok(2);
    assert!(!up.stderr.contains("renamed"), "{}", show(&up));
    assert_eq!(lab.mac("dev-a"), macs.0);
    assert_ne!(lab.mac("dev-b"), macs.1, "dev-b was deleted and made again");

    // Another lab file in the same directory is another lab: refused, with the ways out,
    // and nothing touched.
    lab.write("other.yaml", &CONC.replace("lab: conc", "lab: other"));
    let other = lab.tartlab(&["up", "-f", "other.yaml"]);
    assert_eq!(other.code, 1, "{}", show(&other));
    for needed in [
        "`conc2`",
        "`other`",
        "tartlab.yaml",
        "own directory",
        "down",
    ] {
        assert!(other.stderr.contains(needed), "{needed}: {}", show(&other));
    }
    let down_other = lab.tartlab(&["down", "-f", "other.yaml"]);
    assert_eq!(down_other.code, 1, "{}", show(&down_other));
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
    let labs = json(&lab.ok(&["labs", "--json"]));
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
    assert_eq!(forget.code, 1, "{}", show(&forget));
    assert!(
        forget.stderr.contains("g-dev-a") && forget.stderr.contains("tartlab down --lab gone"),
        "{}",
        show(&forget)
    );
    assert!(!forget.stderr.contains("forgot gone"), "{}", show(&forget));

    // `down --lab` deletes them by the record; the foreign VM is untouched and named.
    let down = lab.ok(&["down", "--lab", "gone"]);
    assert!(
        down.stderr.contains("g-dev-b") && down.stderr.contains("left alone"),
        "{}",
        show(&down)
    );
    assert_eq!(lab.vms(), [("g-dev-b".to_string(), false)]);
    assert_eq!(lab.mac("g-dev-b"), foreign_mac);

    // Now it can be forgotten.
    let forget = lab.ok(&["labs", "--forget-missing"]);
    assert!(forget.stderr.contains("forgot gone"), "{}", show(&forget));
    let labs = json(&lab.ok(&["labs", "--json"]));
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
    assert_eq!(unknown.code, 2, "{}", show(&unknown));
}

#[test]
fn config_marks_the_masked_password_and_shows_it_only_when_asked() {
    let lab = Lab::new(
        "lab: cfg\ndefaults:\n  login: { user: admin, password: s3cret-pw }\nclusters:\n  - name: dev\n    nodes: [{ name: a }]\n",
    );
    let config = lab.ok(&["config"]);
    assert!(!config.stdout.contains("s3cret-pw"), "{}", config.stdout);
    let masked: Vec<&str> = config
        .stdout
        .lines()
        .filter(|l| l.contains("password:"))
        .collect();
    assert_eq!(masked.len(), 1, "{}", config.stdout);
    assert!(
        masked[0].contains("********")
            && masked[0].contains("# masked")
            && masked[0].contains("--show-secrets"),
        "{}",
        masked[0]
    );
    // Everything else holds: the output is a lab file that validates and makes the same node.
    let copy = lab.dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("tartlab.yaml"), &config.stdout).unwrap();
    let copied = copy.join("tartlab.yaml");
    let valid = lab.ok(&["validate", "-f", copied.to_str().unwrap()]);
    assert!(valid.stdout.contains("valid"), "{}", show(&valid));

    let shown = lab.ok(&["config", "--show-secrets"]);
    assert!(shown.stdout.contains("s3cret-pw"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("masked"), "{}", shown.stdout);
    let json = lab.ok(&["config", "--json"]);
    assert!(!json.stdout.contains("s3cret-pw"), "{}", json.stdout);
    assert!(json.stderr.contains("--show-secrets"), "{}", show(&json));
    assert!(Path::new(&copied).is_file());
}
