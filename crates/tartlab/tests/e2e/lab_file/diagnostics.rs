//! The rendered diagnostics, one snapshot per class of mistake (insta), and a property test
//! that the loader never panics on random bytes or on mutations of the examples.

use std::path::Path;

use proptest::prelude::*;
use tartlab::lab::{self, Source};

/// Everything `tartlab validate` would print on stderr for this text, or "valid".
fn rendered(name: &str, text: &str) -> String {
    let result = lab::read(Source::new(Path::new(name), text.to_string())).map(|_| ());
    match result {
        Ok(()) => "valid".to_string(),
        Err(problems) => problems.iter().map(|p| p.render()).collect(),
    }
}

const EXAMPLES: [&str; 4] = [
    "minimal.yaml",
    "seed-lab.yaml",
    "seed-lab.json",
    "k3s-lab.yaml",
];

const HEAD: &str = "lab: demo\nclusters:\n  - name: dev\n    nodes:\n      - name: master\n";

macro_rules! snapshot {
    ($name:ident, $file:expr, $text:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), rendered($file, &$text));
        }
    };
}

snapshot!(
    unknown_key,
    "tartlab.yaml",
    format!("{HEAD}        cpuu: 4\n")
);
snapshot!(
    wrong_type,
    "tartlab.yaml",
    format!("{HEAD}        memory: lots\n")
);
snapshot!(
    missing_required_key,
    "tartlab.yaml",
    "clusters:\n  - name: dev\n    nodes: [{ name: a }]\n"
);
snapshot!(
    yaml_syntax,
    "tartlab.yaml",
    "lab: demo\nclusters: [\n  - name: dev\n"
);
snapshot!(
    json_wrong_type,
    "lab.json",
    "{\"lab\": \"demo\",\n \"clusters\": [{\"name\": \"dev\", \"nodes\": [{\"name\": 5}]}]}\n"
);
snapshot!(
    duplicate_after_expansion,
    "tartlab.yaml",
    "lab: demo\nclusters:\n  - name: dev\n    nodes:\n      - { name: worker, count: 2 }\n      - { name: worker-1 }\n"
);
snapshot!(
    names_that_are_not_labels,
    "tartlab.yaml",
    "lab: Demo\nvm_prefix: \"x;rm\"\nclusters:\n  - name: dev_1\n    nodes:\n      - name: \"$(id)\"\n      - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
);
snapshot!(
    users_system_account_and_plain_password,
    "tartlab.yaml",
    format!("lab: demo\nusers:\n  - name: sshd\n  - name: alice\n    password: secret\n  - name: bob\n    authorized_keys: [nosuch/key.pub]\n{}", &HEAD[10..])
);
snapshot!(
    names_a_guest_or_ssh_would_misread,
    "tartlab.yaml",
    "lab: demo\ndefaults:\n  login: { user: \"-oProxyCommand=touch /tmp/x\", password: admin }\nusers:\n  - name: bob\n    groups: [docker, \"two words\"]\nclusters:\n  - name: dev\n    nodes:\n      - name: master\nprovision:\n  - name: one\n    user: \"-x\"\n    env:\n      WITH SPACE: a\n      with-dash: b\n      9LIVES: c\n      GOOD_NAME: d\n    run: echo one\n"
);
snapshot!(
    echoed_text_is_escaped_and_cut,
    "tartlab.yaml",
    format!("lab: demo\nclusters:\n  - name: \"dev\\0\\e]0;title\\a\"\n    nodes:\n      - {{ name: a, role: \"Bad Role\" }}\n      - {{ name: b, role: \"x\\ny: 1\" }}\n      - {{ name: \"{}\" }}\n", "n".repeat(300))
);
snapshot!(
    raw_control_bytes_in_the_file,
    "tartlab.yaml",
    "lab: demo\nclusters:\n  - name: dev\x1b]0;PWNED\x07\x1b[2J\x00\n    nodes: [{ name: a }]\n"
);
/// Everything `validate` prints for this text, with the count line, as a user sees it.
fn rendered_with_count(text: &str) -> String {
    match lab::read(Source::new(Path::new("tartlab.yaml"), text.to_string())) {
        Ok(_) => "valid".to_string(),
        Err(problems) => {
            let mut out: String = problems.iter().map(|p| p.render()).collect();
            out.push_str(&format!("{} problems found\n", problems.len()));
            out
        }
    }
}

#[test]
fn every_mistake_of_every_class_at_once_in_the_order_of_the_file() {
    insta::assert_snapshot!(
        "every_mistake_at_once",
        rendered_with_count(concat!(
            "lab: demo\n",
            "defaults:\n",
            "  cpus: 4\n",
            "  memroy: 2048\n",
            "  cpu: many\n",
            "  memory: 2 gigs\n",
            "users:\n",
            "  - name: bob\n",
            "    sudo: yes\n",
            "    groups: docker\n",
            "clusters:\n",
            "  - name: db\n",
            "    nodes:\n",
            "      - { name: db, disk: 5 }\n",
            "  - name: db\n",
            "    nodes:\n",
            "      - { name: web, role: frontend, count: many }\n",
            "provision:\n",
            "  - name: schema\n",
            "    script: nosuch.sh\n",
            "    outputs: [dsn]\n",
            "  - name: schema\n",
            "    run: echo again\n",
            "    colour: blue\n",
            "lab: twice\n",
        ))
    );
}

#[test]
fn near_misses_get_a_did_you_mean() {
    insta::assert_snapshot!(
        "did_you_mean",
        rendered_with_count(concat!(
            "lab: demo\n",
            "hosts: clustr\n",
            "clusters:\n",
            "  - name: db\n",
            "    nodes:\n",
            "      - { name: primary, rol: primary }\n",
            "      - { name: replica, role: replica }\n",
            "provision:\n",
            "  - name: schema\n",
            "    on: role=primry\n",
            "    run: echo\n",
            "    outputs: [dsn]\n",
            "  - name: app\n",
            "    on: db-replica\n",
            "    after: [schemaa]\n",
            "    env:\n",
            "      A: \"{{ node.db-primary.outputs.dns }}\"\n",
            "      B: \"{{ node.primary.outputs.dsn }}\"\n",
            "    run: echo\n",
            "ready:\n",
            "  - { on: cluster=dbb, run: true, hnt: x }\n",
        ))
    );
}

#[test]
fn references_are_checked_against_the_nodes_that_answer_them() {
    insta::assert_snapshot!(
        "references",
        rendered_with_count(concat!(
            "lab: demo\n",
            "clusters:\n",
            "  - name: db\n",
            "    nodes: [{ name: db }]\n",
            "  - name: web\n",
            "    nodes: [{ name: app }, { name: primary }]\n",
            "provision:\n",
            "  - name: schema\n",
            "    on: db-db\n",
            "    run: echo\n",
            "    outputs: [dsn]\n",
            "  - name: use\n",
            "    on: all\n",
            "    env:\n",
            "      BY_NODE: \"{{ node.db.outputs.dsn }}\"\n",
            "      BY_ROLE: \"{{ cluster.primary.outputs.dsn }}\"\n",
            "      NOT_DECLARED_THERE: \"{{ node.web-app.outputs.dsn }}\"\n",
            "      UNKNOWN: \"{{ lab.dsn }}\"\n",
            "    run: echo\n",
        ))
    );
}

#[test]
fn sizes_take_units_and_say_when_they_cannot() {
    let read = |memory: &str, disk: &str| {
        let text = format!(
            "lab: demo\ndefaults: {{ memory: {memory}, disk: {disk} }}\nclusters:\n  - name: dev\n    nodes: [{{ name: a }}]\n"
        );
        lab::read(Source::new(Path::new("tartlab.yaml"), text))
            .map(|l| (l.nodes[0].memory, l.nodes[0].disk))
            .map_err(|p| p.iter().map(|d| d.message.clone()).collect::<Vec<_>>())
    };
    assert_eq!(read("4096", "50"), Ok((4096, Some(50))));
    assert_eq!(read("4GiB", "50GB"), Ok((4096, Some(50))));
    assert_eq!(read("\"512 MiB\"", "1TB"), Ok((512, Some(1024))));
    let problems = read("2GB", "1500MB").unwrap_err();
    assert_eq!(
        problems,
        ["`disk` takes a whole number of GB, or a size with a unit (e.g. 50 or 50GB); got `1500MB`: it is not a whole number of GB"]
    );
    let problems = read("64MiB", "50").unwrap_err();
    assert_eq!(problems, ["memory 64 MiB is out of range"]);
}

#[test]
fn config_prints_a_lab_file_that_makes_the_same_nodes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in EXAMPLES {
        let original = lab::Lab::open(&dir.join(name)).unwrap();
        let yaml = serde_saphyr::to_string(&original.resolved()).unwrap();
        // Beside the original, so that relative paths (files, scripts) still resolve.
        let again = lab::read(Source::new(&dir.join("config-of.yaml"), yaml.clone()))
            .unwrap_or_else(|p| panic!("{name}: {p:?}\n{yaml}"));
        let summary = |l: &lab::Lab| -> Vec<String> {
            l.nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {} {} {} {} {} {:?} {}",
                        n.vm_name, n.cluster, n.role, n.image, n.cpu, n.memory, n.disk, n.network
                    )
                })
                .collect()
        };
        assert_eq!(summary(&again), summary(&original), "{name}");
        assert!(
            !yaml.contains("password: admin"),
            "no password shown: {yaml}"
        );
        let twice = serde_saphyr::to_string(&again.resolved()).unwrap();
        assert_eq!(twice, yaml, "{name}: config of config is itself");
    }
}

snapshot!(
    out_of_range_resources,
    "tartlab.yaml",
    "lab: demo\ndefaults: { cpu: 0, memory: 64 }\nclusters:\n  - name: dev\n    nodes:\n      - { name: a, disk: 5000, count: 500 }\n"
);
snapshot!(
    bad_image_and_network,
    "tartlab.yaml",
    "lab: demo\ndefaults: { image: \"ghcr.io/Bad Image\", network: wifi }\nclusters:\n  - name: dev\n    nodes:\n      - { name: a, network: \"bridged:\" }\n"
);
snapshot!(
    selectors_steps_outputs_and_paths,
    "tartlab.yaml",
    format!("{HEAD}files:\n  - {{ src: nosuch/motd, dest: etc/motd, on: all }}\nprovision:\n  - name: a\n    on: cluster=prod\n    run: echo\n  - name: b\n    run: echo\n    script: x.sh\n  - name: c\n    after: [later]\n    env: {{ T: \"{{{{ cluster.master.outputs.token }}}}\" }}\n    run: echo\n  - name: later\n    script: missing.sh\n")
);

#[test]
fn the_examples_are_valid_through_the_library_too() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in EXAMPLES {
        if let Err(problems) = lab::Lab::open(&dir.join(name)) {
            panic!("{name}: {problems:?}");
        }
    }
}

fn example_texts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    EXAMPLES
        .iter()
        .map(|n| (n.to_string(), std::fs::read_to_string(dir.join(n)).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_loader(bytes in proptest::collection::vec(any::<u8>(), 0..512), json in any::<bool>()) {
        let name = if json { "lab.json" } else { "lab.yaml" };
        let _ = rendered(name, &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_examples_never_panic_the_loader(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~\n]{0,6}"), 1..6),
    ) {
        let (name, text) = example_texts().swap_remove(which);
        let mut text = text.into_bytes();
        for (at, kind, insert) in edits {
            let i = at.index(text.len() + 1);
            match kind {
                0 => { text.splice(i..i, insert.bytes()); }
                1 => { let end = (i + insert.len()).min(text.len()); text.drain(i..end); }
                2 => { let end = (i + insert.len()).min(text.len()); text.splice(i..end, insert.bytes()); }
                _ => { let line: Vec<u8> = text[..i].rsplit(|b| *b == b'\n').next().unwrap_or(&[]).to_vec(); text.splice(i..i, line); }
            }
        }
        let _ = rendered(&name, &String::from_utf8_lossy(&text));
    }
}

/// The Orchard form of `provider`: a typo in its keys and an arch it does not know are
/// each located, with the key or the choice meant; cloud-init is refused under it.
#[test]
fn the_orchard_provider_is_checked_like_every_section() {
    let text = "lab: fleet\nprovider:\n  orchard:\n    url: http://127.0.0.1:6120\n    token_evn: ORCHARD_TOKEN\n    arch: amd46\nclusters:\n  - name: dev\n    placement: { labels: { zone: a } }\n    nodes:\n      - name: master\n        placement: { lables: { x: y } }\n";
    let shown = rendered("tartlab.yaml", text);
    assert!(
        shown.contains("tartlab.yaml:5:5") && shown.contains("did you mean `token_env`?"),
        "{shown}"
    );
    assert!(
        shown.contains("tartlab.yaml:6:11") && shown.contains("did you mean `amd64`?"),
        "{shown}"
    );
    assert!(
        shown.contains("tartlab.yaml:12:22") && shown.contains("did you mean `labels`?"),
        "{shown}"
    );
    let good = "lab: fleet\nprovider: { orchard: { url: http://127.0.0.1:6120, service_account: ci, token_env: T, arch: amd64, labels: { pool: lab } } }\nclusters:\n  - name: dev\n    placement: { labels: { zone: a } }\n    nodes:\n      - { name: master, placement: { labels: { zone: b }, resources: { slots: 1 } } }\n";
    assert_eq!(rendered("tartlab.yaml", good), "valid");
    let cloud = format!("{good}defaults:\n  cloud_init: user-data.yaml\n");
    let shown = rendered("tartlab.yaml", &cloud);
    assert!(
        shown.contains("the orchard provider does not support yet"),
        "{shown}"
    );
}
