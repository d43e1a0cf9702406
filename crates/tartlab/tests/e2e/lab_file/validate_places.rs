//! `tartlab validate` through the binary (issue 30, point 7): a syntax error points at the
//! character that is wrong, help is written in the syntax of the file's own format and says
//! what to write, a decimal size is read as one, and a reference error names each node once.
//! Each rendering is an insta snapshot, so that a change of wording shows in review.

use crate::support::Lab;

const HEAD: &str = "lab: demo\nclusters:\n  - name: dev\n    nodes:\n      - name: master\n";

/// What `validate -f NAME` prints on stderr for this text, after its exit code.
fn validate(lab: &Lab, name: &str, text: &str) -> String {
    lab.write(name, text);
    let out = lab.tartlab(&["validate", "-f", name]);
    format!("exit {}\n{}", out.code, out.stderr)
}

#[test]
fn a_tab_is_reported_where_it_is() {
    let lab = Lab::new(HEAD);
    let shown = validate(&lab, "tab.yaml", &format!("{HEAD}\tcpu: 2\n"));
    assert!(shown.contains("tab.yaml:6:1"), "{shown}");
    insta::assert_snapshot!("tab_on_line_6", shown);
    // A tab inside the indentation, after spaces, is pointed at too.
    let shown = validate(
        &lab,
        "tab2.yaml",
        &format!("{HEAD}        cpu: 2\n  \t  memory: 4096\n"),
    );
    assert!(shown.contains("tab2.yaml:7:3"), "{shown}");
}

#[test]
fn json_syntax_gets_json_help_at_the_comma() {
    let lab = Lab::new(HEAD);
    let text = "{\"lab\": \"demo\",\n \"clusters\": [{\"name\": \"dev\", \"nodes\": [{\"name\": \"master\"},]}]}\n";
    let shown = validate(&lab, "lab.json", text);
    assert!(!shown.contains("YAML"), "{shown}");
    // The comma is the 59th character of line 2.
    assert!(shown.contains("lab.json:2:59"), "{shown}");
    insta::assert_snapshot!("json_trailing_comma", shown);
}

#[test]
fn help_says_what_to_write_in_the_files_own_syntax() {
    let lab = Lab::new(HEAD);
    let yaml = validate(
        &lab,
        "kinds.yaml",
        "lab: demo\nusers:\n  - name: bob\n    groups: docker\nclusters:\n  - name: dev\n    nodes: 5\n  - name: stg\n    nodes:\n      - name: a\n        cpu: many\n        count: [1]\n",
    );
    assert!(!yaml.contains("Its nodes."), "{yaml}");
    insta::assert_snapshot!("yaml_kinds", yaml);
    let json = validate(
        &lab,
        "kinds.json",
        "{\"lab\": \"demo\",\n \"clusters\": [{\"name\": \"dev\",\n  \"nodes\": [{\"name\": 5, \"cpu\": \"many\"}]},\n  {\"name\": \"stg\"}]}\n",
    );
    assert!(!json.contains("`nodes:`"), "{json}");
    insta::assert_snapshot!("json_kinds", json);
}

#[test]
fn a_decimal_size_is_read_as_a_decimal() {
    let lab = Lab::new(HEAD);
    // 2.5GB is 2560 MiB (a GB is 1024 MiB here, as for tart): taken.
    lab.write(
        "half.yaml",
        &format!("{HEAD}        memory: 2.5GB\n        disk: 0.5TB\n"),
    );
    let plan = lab.ok(&["plan", "-f", "half.yaml", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["nodes"][0]["memory"], 2560, "{plan}");
    assert_eq!(plan["nodes"][0]["disk"], 512, "{plan}");
    // Not a whole number of the key's unit: refused, as a decimal.
    let shown = validate(
        &lab,
        "odd.yaml",
        &format!("{HEAD}        memory: 2.3GB\n        disk: 20.5\n"),
    );
    assert!(!shown.contains("`.3gb`"), "{shown}");
    insta::assert_snapshot!("decimal_sizes", shown);
}

#[test]
fn a_reference_error_names_each_node_once() {
    let lab = Lab::new(HEAD);
    let shown = validate(
        &lab,
        "refs.yaml",
        "lab: demo\nclusters:\n  - name: dev\n    nodes:\n      - { name: master }\n      - { name: master }\n      - { name: master }\nprovision:\n  - name: join\n    env:\n      TOKEN: \"{{ cluster.master.outputs.token }}\"\n    run: echo\n",
    );
    assert_eq!(shown.matches("dev-master,").count(), 0, "{shown}");
    insta::assert_snapshot!("reference_nodes_once", shown);
}
