//! `tartlab validate`, `plan` and `schema` through the binary: the examples are valid, and
//! bad lab files get located errors and exit 2.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn tartlab(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tartlab"))
        .args(args)
        .current_dir(dir)
        .env_remove("TARTLAB_FILE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
