//! `tartlab validate`, `plan` and `schema` through the binary: the examples are valid, and
//! bad lab files (an image reference tart could not read among them) get located errors and
//! exit 2.

mod diagnostics;
mod validate_places;

use std::path::PathBuf;
use std::process::Command;

use crate::support::{examples, tartlab, tartlab_with, Lab};

#[test]
fn validate_points_at_the_character_where_an_image_reference_goes_wrong() {
    let lab = Lab::new("lab: first\nclusters:\n  - name: dev\n    nodes:\n      - { name: a, image: \"ghcr.io/cirruslabs/ubuntu:24..04\" }\n");
    let out = lab.tartlab(&["validate"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("error: `ghcr.io/cirruslabs/ubuntu:24..04` is not an image reference"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--> tartlab.yaml:5:57"),
        "{}",
        out.stderr
    );
    // Refused before anything changes: `up` pulls, clones and records nothing.
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(up.stderr.contains("--> tartlab.yaml:5:57"), "{}", up.stderr);
    assert!(
        lab.calls()
            .iter()
            .all(|c| !c.starts_with("pull ") && !c.starts_with("clone ")),
        "{:?}",
        lab.calls()
    );
    assert!(!lab.lab.join(".tartlab/state.json").exists());
}

/// `validate --json`'s errors, as (message, line).
fn errors_of(stdout: &str) -> Vec<(String, u64)> {
    let report: serde_json::Value = serde_json::from_str(stdout).unwrap();
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn lab(text: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn every_example_is_valid_and_yaml_and_json_seed_labs_plan_the_same_nine_nodes() {
    for example in [
        "minimal.yaml",
        "seed-lab.yaml",
        "seed-lab.json",
        "k3s-lab.yaml",
    ] {
        let (code, stdout, stderr) = tartlab(&examples(), &["validate", "-f", example]);
        assert_eq!(code, 0, "{example}: {stderr}");
        assert!(stdout.contains("is valid"), "{stdout}");
    }
    let yaml = tartlab(&examples(), &["plan", "-f", "seed-lab.yaml", "--json"]).1;
    let json = tartlab(&examples(), &["plan", "-f", "seed-lab.json", "--json"]).1;
    assert_eq!(yaml, json);
    let plan: serde_json::Value = serde_json::from_str(&yaml).unwrap();
    let names: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["vm_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dev-master",
            "dev-worker-1",
            "dev-worker-2",
            "stg-master",
            "stg-worker-1",
            "stg-worker-2",
            "prod-master",
            "prod-worker-1",
            "prod-worker-2"
        ]
    );
    assert_eq!(plan["nodes"][0]["cpu"], 4, "node overrides the default");
    assert_eq!(plan["nodes"][1]["cpu"], 2, "default inherited");
    assert_eq!(plan["nodes"][1]["role"], "worker");
}

#[test]
fn a_typo_is_reported_with_file_line_column_and_a_fix() {
    let (dir, _) = lab(
        "lab: demo\nclusters:\n  - name: dev\n    nodes:\n      - name: master\n        cpuu: 4\n",
        "tartlab.yaml",
    );
    let (code, _, stderr) = tartlab(dir.path(), &["validate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`cpuu` is not a key of a node (did you mean `cpu`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("--> tartlab.yaml:6:9"), "{stderr}");
    assert!(
        stderr.contains("help: the keys of a node are: cloud_init, count, cpu, disk"),
        "{stderr}"
    );
}

#[test]
fn json_lab_files_are_located_too() {
    let (dir, _) = lab(
        "{\"lab\": \"demo\",\n \"clusters\": [{\"name\": \"dev\", \"nodes\": [{\"name\": 5}]}]}\n",
        "lab.json",
    );
    let (code, _, stderr) = tartlab(dir.path(), &["validate", "-f", "lab.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--> lab.json:2:"), "{stderr}");
}

#[test]
fn semantic_problems_are_all_reported_together_and_located() {
    let text = "lab: demo\nusers:\n  - name: root\n  - name: alice\n    password: secret\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, cpu: 99 }\n      - { name: master }\nprovision:\n  - name: a\n    on: role=nosuch\n    run: echo hi\n  - name: b\n    script: missing.sh\n";
    let (dir, _) = lab(text, "tartlab.yaml");
    let (code, stdout, _) = tartlab(dir.path(), &["validate", "--json"]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["valid"], false);
    let errors: Vec<(String, u64)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expect = [
        ("cpu 99 is out of range", 9),
        ("two nodes would be named `dev-master`", 10),
        ("user `root` clashes with a system account of the image", 3),
        ("user `alice` has a plain password", 5),
        ("selector `role=nosuch` matches no node", 13),
        ("script `missing.sh` does not exist", 16),
    ];
    for (message, line) in expect {
        assert!(
            errors.contains(&(message.to_string(), line)),
            "missing {message} at {line}: {errors:?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:?}");
}

#[test]
fn no_lab_file_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = tartlab(dir.path(), &["plan"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no lab file here"), "{stderr}");
}

#[test]
fn schema_is_json_schema_naming_every_section() {
    let (code, stdout, _) = tartlab(&examples(), &["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let props = schema["properties"].as_object().unwrap();
    for key in [
        "lab",
        "vm_prefix",
        "defaults",
        "hosts",
        "users",
        "clusters",
        "files",
        "provision",
        "ready",
    ] {
        assert!(props.contains_key(key), "{key} missing");
    }
    assert_eq!(schema["required"], serde_json::json!(["lab", "clusters"]));
}

#[test]
fn every_example_validates_against_the_schema_with_a_json_schema_validator() {
    let (code, stdout, _) = tartlab(&examples(), &["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for name in [
        "minimal.yaml",
        "seed-lab.yaml",
        "seed-lab.json",
        "k3s-lab.yaml",
    ] {
        let text = std::fs::read_to_string(examples().join(name)).unwrap();
        let value: serde_json::Value = if name.ends_with(".json") {
            serde_json::from_str(&text).unwrap()
        } else {
            serde_saphyr::from_str(&text).unwrap()
        };
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    // And it refuses what tartlab refuses.
    let bad = serde_json::json!({ "lab": "x", "clusters": [{ "name": "a", "nodes": [{ "name": "b", "cpuu": 2 }] }] });
    assert!(!validator.is_valid(&bad));
}

#[test]
fn the_labs_in_the_lab_file_reference_are_valid() {
    let doc = std::fs::read_to_string(examples().join("../docs/LAB-FILE.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 3, "{}", blocks.len());
    for block in blocks {
        // Beside the examples, whose scripts the k3s excerpt names.
        let source =
            tartlab::lab::Source::new(&examples().join("from-the-docs.yaml"), block.into());
        if let Err(problems) = tartlab::lab::read(source) {
            panic!("{block}\n{problems:?}");
        }
    }
}

#[test]
fn the_lab_file_is_found_in_a_parent_directory_and_through_tartlab_file() {
    let (dir, _) = lab(
        "lab: demo\nclusters:\n  - name: dev\n    nodes: [{ name: a }]\n",
        "tartlab.yaml",
    );
    let deep = dir.path().join("src/deeper");
    std::fs::create_dir_all(&deep).unwrap();
    let (code, stdout, stderr) = tartlab(&deep, &["validate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{}: lab `demo` is valid",
            dir.path().join("tartlab.yaml").display()
        )),
        "{stdout}"
    );
    // Not above the top of a project.
    std::fs::create_dir_all(dir.path().join("src/.git")).unwrap();
    let (code, _, stderr) = tartlab(&deep, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("in this directory and its parents"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tartlab"))
        .arg("validate")
        .current_dir(&deep)
        .env("TARTLAB_FILE", dir.path().join("tartlab.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn paths_outside_the_lab_directory_are_refused_where_they_are_written_unless_allowed() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("lab");
    let home = top.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    // What another user's lab file would take: a root-only file, and files beside the lab.
    let secret = top.path().join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::write(top.path().join("x"), "x\n").unwrap();
    std::fs::write(top.path().join("user-data"), "#cloud-config\n").unwrap();
    std::fs::write(top.path().join("s.sh"), "echo\n").unwrap();
    std::fs::write(top.path().join("key.pub"), "ssh-ed25519 AAAA x\n").unwrap();
    std::fs::write(home.join(".ssh/me.pub"), "ssh-ed25519 AAAA me\n").unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "private\n").unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("innocent")).unwrap();
    let text = format!(
        "lab: demo\nusers:\n  - name: bob\n    authorized_keys: [../key.pub, ~/.ssh/me.pub, ~/.ssh/id_ed25519]\nclusters:\n  - name: dev\n    cloud_init: ../user-data\n    nodes: [{{ name: a }}]\nfiles:\n  - {{ src: {}, dest: /srv/loot }}\n  - {{ src: ../x, dest: /srv/x }}\n  - {{ src: innocent, dest: /srv/y }}\n  - {{ src: ../nosuch, dest: /srv/z }}\nprovision:\n  - name: s\n    script: ../s.sh\n",
        secret.display()
    );
    std::fs::write(dir.join("tartlab.yaml"), &text).unwrap();
    let env = [("HOME", home.as_path())];
    let (code, stdout, _) = tartlab_with(&dir, &["validate", "--json"], &env);
    assert_eq!(code, 2, "{stdout}");
    let errors = errors_of(&stdout);
    let outside = |written: &str, line: u64| {
        let at = errors
            .iter()
            .find(|(m, _)| m.contains(&format!("`{written}` is outside the lab's directory")));
        assert_eq!(
            at.map(|(_, l)| *l),
            Some(line),
            "{written} at {line}: {errors:?}"
        );
    };
    outside("../key.pub", 4);
    outside("~/.ssh/id_ed25519", 4);
    outside("../user-data", 7);
    outside(&secret.display().to_string(), 10);
    outside("../x", 11);
    outside("innocent", 12);
    outside("../nosuch", 13);
    outside("../s.sh", 16);
    assert_eq!(errors.len(), 8, "a .pub key in ~/.ssh is taken: {errors:?}");
    let (_, _, stderr) = tartlab_with(&dir, &["validate"], &env);
    assert!(stderr.contains("--> tartlab.yaml:11:"), "{stderr}");
    assert!(
        stderr.contains("allow_paths_outside"),
        "the way out is named: {stderr}"
    );

    // Said explicitly, the same paths are taken (the missing one is still missing).
    let allowed = text
        .replace("../nosuch", "../x")
        .replace(", ~/.ssh/id_ed25519", "")
        .replace("lab: demo\n", "lab: demo\nallow_paths_outside: [..]\n");
    std::fs::write(dir.join("tartlab.yaml"), allowed).unwrap();
    let (code, stdout, stderr) = tartlab_with(&dir, &["validate"], &env);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn inputs_that_are_not_regular_files_or_too_large_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = std::fs::File::create(dir.path().join("big.iso")).unwrap();
    big.set_len(64 * 1024 * 1024 + 1).unwrap();
    std::fs::write(dir.path().join("long.sh"), "#".repeat(1024 * 1024 + 1)).unwrap();
    std::fs::write(
        dir.path().join("tartlab.yaml"),
        "lab: demo\nallow_paths_outside: [/dev]\nclusters:\n  - name: dev\n    nodes:\n      - { name: a, cloud_init: /dev/zero }\n      - { name: b, cloud_init: fifo }\nfiles:\n  - { src: /dev/zero, dest: /srv/zero }\n  - { src: fifo, dest: /srv/fifo }\n  - { src: big.iso, dest: /srv/big.iso }\nprovision:\n  - name: s\n    script: fifo\n  - name: t\n    script: long.sh\n",
    )
    .unwrap();
    for command in ["validate", "plan"] {
        let (code, stdout, stderr) = tartlab(dir.path(), &[command, "--json"]);
        assert_eq!(code, 2, "{command}: {stdout}{stderr}");
        let errors = errors_of(&stdout);
        let expect = [
            (
                "cloud-init file `/dev/zero` is a character device, not a regular file",
                6,
            ),
            ("cloud-init file `fifo` is a FIFO, not a regular file", 7),
            (
                "file `/dev/zero` is a character device, not a regular file",
                9,
            ),
            ("file `fifo` is a FIFO, not a regular file", 10),
            (
                "file `big.iso` is 65 MiB, over the 64 MiB an input of its kind may be",
                11,
            ),
            ("script `fifo` is a FIFO, not a regular file", 14),
            (
                "script `long.sh` is 2 MiB, over the 1 MiB an input of its kind may be",
                16,
            ),
        ];
        for (message, line) in expect {
            assert!(
                errors
                    .iter()
                    .any(|(m, l)| m.starts_with(message) && *l == line),
                "{command}: {message} at {line}: {errors:?}"
            );
        }
        assert_eq!(errors.len(), expect.len(), "{errors:?}");
    }
    // The lab file itself, too.
    let (code, _, stderr) = tartlab(dir.path(), &["validate", "-f", "fifo"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read fifo: it is a FIFO"),
        "{stderr}"
    );
}

#[test]
fn a_lab_over_a_thousand_nodes_is_refused_at_the_node_that_goes_over() {
    let mut text = String::from("lab: big\nclusters:\n  - name: c\n    nodes:\n");
    for i in 0..10 {
        text.push_str(&format!("      - {{ name: n{i}, count: 100 }}\n"));
    }
    let (dir, path) = lab(&text, "tartlab.yaml");
    let (code, _, stderr) = tartlab(dir.path(), &["validate"]);
    assert_eq!(code, 0, "1000 nodes is a lab: {stderr}");
    text.push_str("      - { name: last }\n");
    std::fs::write(&path, &text).unwrap();
    let (code, _, stderr) = tartlab(dir.path(), &["validate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("error: the lab has 1001 nodes, over the 1000 a lab may have"),
        "{stderr}"
    );
    assert!(stderr.contains("--> tartlab.yaml:15:"), "{stderr}");
    assert!(stderr.contains("at most 1000 nodes"), "{stderr}");
}

#[test]
fn a_ten_megabyte_name_makes_a_short_error_and_control_characters_are_escaped() {
    let name = "a".repeat(10 * 1024 * 1024);
    let (dir, _) = lab(
        &format!(
            "lab: \"{name}\"\nclusters:\n  - name: \"dev\\0\\e[2J\"\n    nodes: [{{ name: a }}]\n"
        ),
        "tartlab.yaml",
    );
    let (code, stdout, stderr) = tartlab(dir.path(), &["validate"]);
    assert_eq!(code, 2);
    assert!(
        stdout.len() + stderr.len() < 4096,
        "{} bytes of output",
        stdout.len() + stderr.len()
    );
    assert!(
        stderr.contains(&format!("lab name `{}…` is not valid", "a".repeat(80))),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\0'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("cluster name `dev\\x00\\x1b[2J`"),
        "{stderr}"
    );
}
