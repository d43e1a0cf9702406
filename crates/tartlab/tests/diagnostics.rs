//! The rendered diagnostics, one snapshot per class of mistake (insta), and a property test
//! that the loader never panics on random bytes or on mutations of the examples.

use std::path::Path;

use proptest::prelude::*;
use tartlab::lab::{self, Source};

/// Everything `tartlab validate` would print on stderr for this text, or "valid".
fn rendered(name: &str, text: &str) -> String {
    let result = lab::parse(Source::new(Path::new(name), text.to_string()))
        .and_then(|loaded| lab::validate(&loaded.file, &loaded.source).map(|_| ()));
    match result {
        Ok(()) => "valid".to_string(),
        Err(problems) => problems.iter().map(|p| p.render()).collect(),
    }
}

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
    format!("lab: demo\nusers:\n  - name: sshd\n  - name: alice\n    password: secret\n  - name: bob\n    authorized_keys: [/nonexistent/key.pub]\n{}", &HEAD[10..])
);
snapshot!(
    names_a_guest_or_ssh_would_misread,
    "tartlab.yaml",
    "lab: demo\ndefaults:\n  login: { user: \"-oProxyCommand=touch /tmp/x\", password: admin }\nusers:\n  - name: bob\n    groups: [docker, \"two words\"]\nclusters:\n  - name: dev\n    nodes:\n      - name: master\nprovision:\n  - name: one\n    user: \"-x\"\n    env:\n      WITH SPACE: a\n      with-dash: b\n      9LIVES: c\n      GOOD_NAME: d\n    run: echo one\n"
);
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
    for name in [
        "minimal.yaml",
        "seed-lab.yaml",
        "seed-lab.json",
        "k3s-lab.yaml",
    ] {
        let loaded = lab::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(
            lab::validate(&loaded.file, &loaded.source).is_ok(),
            "{name}"
        );
    }
}

fn example_texts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    [
        "minimal.yaml",
        "seed-lab.yaml",
        "seed-lab.json",
        "k3s-lab.yaml",
    ]
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
