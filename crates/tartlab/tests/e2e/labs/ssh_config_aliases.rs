//! `tartlab ssh-config` through the binary and the system's ssh (issue 30, point 6): each
//! host is also `<lab>.<node>`, so two labs Included side by side in one ssh config each
//! keep a name of their own, and `--json` gives every path absolute, `file` too.

use std::path::Path;
use std::process::Command;

use crate::support::{self, Lab};

const ALPHA: &str = "lab: alpha\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";
const BETA: &str =
    "lab: beta\nvm_prefix: b-\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";

fn in_dir(lab: &Lab, dir: &Path, args: &[&str]) -> support::Out {
    let out: support::Out = lab.command(args).current_dir(dir).output().unwrap().into();
    assert_eq!(out.code, 0, "{args:?}: {}\n{}", out.stdout, out.stderr);
    out
}

/// What `ssh -G` resolves `host` to in `config`: its `hostname` line.
fn resolved_hostname(config: &Path, host: &str) -> String {
    let out = Command::new("ssh")
        .args(["-G", "-F", config.to_str().unwrap(), host])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("hostname ").map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn two_labs_included_together_each_answer_to_their_lab_qualified_name() {
    let lab = Lab::new(ALPHA);
    let beta = lab.dir.path().join("beta");
    std::fs::create_dir_all(&beta).unwrap();
    std::fs::write(beta.join("tartlab.yaml"), BETA).unwrap();
    in_dir(&lab, &lab.lab, &["up"]);
    in_dir(&lab, &beta, &["up"]);

    let mut files = Vec::new();
    for dir in [&lab.lab, &beta] {
        let json = in_dir(&lab, dir, &["ssh-config", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let file = json["file"].as_str().unwrap().to_string();
        assert!(Path::new(&file).is_absolute(), "{json}");
        assert!(Path::new(&file).is_file(), "{json}");
        let host = &json["hosts"][0];
        for key in ["identity_file", "user_known_hosts_file"] {
            assert!(
                Path::new(host[key].as_str().unwrap()).is_absolute(),
                "{json}"
            );
        }
        files.push((file, host["aliases"].clone(), host["hostname"].clone()));
    }
    assert_eq!(files[0].1, serde_json::json!(["dev-vm", "alpha.dev-vm"]));
    assert_eq!(files[1].1, serde_json::json!(["b-dev-vm", "beta.dev-vm"]));
    let text = in_dir(&lab, &lab.lab, &["ssh-config"]).stdout;
    assert!(text.contains("\nHost dev-vm alpha.dev-vm\n"), "{text}");

    // One ssh config that Includes both, as ~/.ssh/config would.
    let config = lab.dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!("Include \"{}\"\nInclude \"{}\"\n", files[0].0, files[1].0),
    )
    .unwrap();
    assert_eq!(
        resolved_hostname(&config, "alpha.dev-vm"),
        files[0].2.as_str().unwrap()
    );
    assert_eq!(
        resolved_hostname(&config, "beta.dev-vm"),
        files[1].2.as_str().unwrap()
    );
    assert_ne!(files[0].2, files[1].2, "two VMs, two addresses");
    // And the system's ssh logs in by each name, to the right VM.
    for (alias, vm) in [("alpha.dev-vm", "dev-vm"), ("beta.dev-vm", "b-dev-vm")] {
        let login = Command::new("ssh")
            .args(["-F", config.to_str().unwrap(), "-o", "BatchMode=yes", alias])
            .arg("cat /etc/machine-id")
            .output()
            .unwrap();
        let login: support::Out = login.into();
        assert_eq!(login.code, 0, "{alias}: {}", login.stderr);
        let dir = if vm == "dev-vm" { &lab.lab } else { &beta };
        let direct = in_dir(&lab, dir, &["ssh", vm, "cat /etc/machine-id"]);
        assert_eq!(login.stdout, direct.stdout, "{alias}");
    }
    in_dir(&lab, &beta, &["down"]);
    in_dir(&lab, &lab.lab, &["down"]);
}
