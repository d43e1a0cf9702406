//! Secrets, wherever they could leak, through the binary against tart-sim: the master's
//! token reaches every worker and is never shown; passwords, hashes and private keys never
//! appear in output or in tartlab's files; a secret is masked in every form it can take and
//! templates expand once; `config` marks the masked password and shows it only when asked.

use std::path::Path;

use crate::support::{self, k3s_lab, one_vm_lab, Lab, ONE_VM};

#[test]
fn passwords_hashes_and_private_keys_never_appear_in_output_or_in_tartlab_files() {
    const PASSWORD: &str = "Sim-Image-Pass-4711";
    const HASH: &str = "$6$tartlabsalt$3qG7o0VvH1pYtC2dQqGm7v0Zb7wQ3r5m8kXy1LJpS1uYw0Zr9cN4eT6aH2bD8fK5jL0nM3pQ7sV9xB1zC4dE6.";
    let yaml = format!(
        "lab: secret\ndefaults: {{ login: {{ user: admin, password: {PASSWORD} }} }}\nusers:\n  - name: devops\n    password_hash: \"{HASH}\"\nclusters:\n  - name: dev\n    nodes: [{{ name: vm }}]\nprovision:\n  - name: echo\n    run: echo provisioning\n"
    );
    let lab = Lab::new(&yaml);
    let mut seen = String::new();
    let mut run = |args: &[&str]| {
        let out = support::output(lab.command(args).env("TART_SIM_IMAGE_PASSWORD", PASSWORD));
        assert!(out.code == 0, "{args:?}: {}", out.stderr);
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    };
    run(&["up", "--json"]);
    run(&["up"]);
    run(&["status", "--json"]);
    run(&["plan", "--json"]);
    run(&["exec", "all", "--json", "--", "true"]);
    run(&["logs", "dev-vm"]);
    run(&["ssh-config"]);
    run(&["inventory"]);
    let shadow = lab.ssh("dev-vm", "sudo grep ^devops: /etc/shadow");
    assert!(
        shadow.stdout.contains(HASH),
        "the hash was applied: {}",
        shadow.stdout
    );
    let key = std::fs::read_to_string(lab.lab.join(".tartlab/id_ed25519")).unwrap();
    let key_body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let files = lab.tartlab_files_text(&["id_ed25519"]);
    for (what, text) in [("output", &seen), (".tartlab/", &files)] {
        assert!(!text.contains(PASSWORD), "the login password is in {what}");
        assert!(!text.contains(HASH), "the password hash is in {what}");
        for line in &key_body {
            assert!(!text.contains(line), "the private key is in {what}");
        }
    }
}

#[test]
fn a_secret_is_masked_in_every_form_and_templates_expand_once() {
    let lab = Lab::new(&one_vm_lab(
        r#"provision:
  - name: gen
    run: |
      q="'" d='"' b='\'
      printf '%s\n' "tartlab-output tok=S3cr${q}et${d}x${b}y"
      echo 'tartlab-output plain={{ node.dev-vm.outputs.tok }}'
    outputs: [{ name: tok, secret: true }, plain]
  - name: use
    env:
      TOK: "{{ node.dev-vm.outputs.tok }}"
      PLAIN: "{{ node.dev-vm.outputs.plain }}"
    run: |
      printf '%s' "$TOK" > /tmp/tok
      printf '%s' "$PLAIN" > /tmp/plain
      echo "the token is $TOK"
"#,
    ));
    let up = lab.up_all_ok(1);
    let secret = r#"S3cr'et"x\y"#;
    assert_eq!(lab.as_root(ONE_VM, "cat /tmp/tok"), secret);
    assert_eq!(
        lab.as_root(ONE_VM, "cat /tmp/plain"),
        "{{ node.dev-vm.outputs.tok }}",
        "an output that looks like a template is passed on as printed"
    );
    let logs = lab.ok(&["logs", ONE_VM]);
    let written = lab.tartlab_files_text(&["state.json"]);
    let forms = [
        secret.to_string(),
        secret.replace('\'', r"'\''"),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        "S3cr".to_string() + "'\\''",
    ];
    for (what, text) in [
        ("up's output", format!("{}{}", up.stdout, up.stderr)),
        ("logs", logs.stdout.clone()),
        (".tartlab/", written),
    ] {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{form} is in {what}:\n{text}"
            );
        }
    }
    assert!(
        logs.stdout.contains("export TOK='********'")
            && logs.stdout.contains("the token is ********"),
        "{}",
        logs.stdout
    );
}

#[test]
fn the_masters_token_reaches_every_worker_of_its_cluster_and_is_never_shown() {
    let lab = k3s_lab();
    let up = lab.up_all_ok(5);
    let state = lab.state();
    for cluster in ["k3s", "other"] {
        let token = state["vms"][format!("{cluster}-master")]["outputs"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(token.len(), 32);
        let workers: Vec<String> = if cluster == "k3s" {
            vec!["k3s-worker-1".into(), "k3s-worker-2".into()]
        } else {
            vec!["other-worker".into()]
        };
        for worker in workers {
            let out = lab.ssh(
                &worker,
                "sudo cat /etc/k3s-token; stat -c '%a %U:%G' /etc/motd; sudo cat /etc/motd",
            );
            assert_eq!(
                out.stdout,
                format!("{token}\n640 root:adm\nwelcome to the k3s lab\n"),
                "{worker}: {}",
                out.stderr
            );
        }
        // The secret is masked everywhere tartlab writes or prints, the state file aside:
        // where the master printed it, its transcript has the mask.
        assert!(!up.stdout.contains(&token) && !up.stderr.contains(&token));
        let printed = std::fs::read_to_string(
            lab.lab
                .join(format!(".tartlab/logs/{cluster}-master.provision.log")),
        )
        .unwrap();
        assert!(
            printed.contains("tartlab-output token=********"),
            "{printed}"
        );
        assert!(
            !lab.tartlab_files_text(&["state.json"]).contains(&token),
            "{cluster}'s token leaked into .tartlab/"
        );
    }
    let transcript =
        std::fs::read_to_string(lab.lab.join(".tartlab/logs/k3s-worker-1.provision.log")).unwrap();
    assert!(
        transcript.contains("export K3S_TOKEN=********"),
        "{transcript}"
    );
    assert!(
        transcript.contains("joining https://k3s-master:6443 as k3s-worker-1"),
        "{transcript}"
    );
    assert!(
        transcript.contains("connected to k3s-master on port 6443"),
        "the worker reached its master's API port: {transcript}"
    );
    let logs = lab.ok(&["logs", "k3s-master"]);
    assert!(
        logs.stdout.contains("tartlab-output token=********"),
        "{}",
        logs.stdout
    );

    // Converged: nothing runs again, and no SSH step is needed to know it.
    let again = lab.ok(&["up", "--json"]);
    let recap: serde_json::Value =
        serde_json::from_str(again.stdout.lines().last().unwrap()).unwrap();
    for node in recap["recap"].as_array().unwrap() {
        assert_eq!(node["actions"], serde_json::json!([]), "{node}");
    }
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
    assert!(valid.stdout.contains("valid"), "{}", valid.shown());

    let shown = lab.ok(&["config", "--show-secrets"]);
    assert!(shown.stdout.contains("s3cret-pw"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("masked"), "{}", shown.stdout);
    let json = lab.ok(&["config", "--json"]);
    assert!(!json.stdout.contains("s3cret-pw"), "{}", json.stdout);
    assert!(json.stderr.contains("--show-secrets"), "{}", json.shown());
    assert!(Path::new(&copied).is_file());
}
