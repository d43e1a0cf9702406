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
    assert!(stderr.contains("unknown field `cpuu`"), "{stderr}");
    assert!(stderr.contains("--> tartlab.yaml:6:9"), "{stderr}");
    assert!(
        stderr.contains("help: remove the key or fix its spelling"),
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
