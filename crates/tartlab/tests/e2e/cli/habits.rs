//! The command line as people type it (issues 15 and 30), through the binary against
//! tart-sim: `init` (each template validates, plans and comes up; the minimal one is a
//! commented lab file whose commented keys are right when uncommented), `doctor`, and
//! `--json` where it means something.

use std::process::Command;

use crate::support::{self, Lab, ONE_NODE, TWO_CLUSTERS};

#[test]
fn init_writes_each_template_that_then_validates_plans_and_comes_up() {
    let lab = Lab::new(ONE_NODE);
    for (template, nodes) in [("minimal", 1), ("seed", 9), ("k3s", 3)] {
        let dir = lab.dir.path().join(format!("from-{template}"));
        let init = lab.tartlab(&["init", "--template", template, dir.to_str().unwrap()]);
        assert_eq!(init.code, 0, "{template}: {}", init.stderr);
        assert!(init.stdout.contains("next: cd"), "{}", init.stdout);
        let file = dir.join("tartlab.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(&format!("lab: from-{template}")), "{text}");
        assert!(text.starts_with('#'), "a commented lab file: {text}");
        let file_arg = file.to_str().unwrap();
        let valid = lab.ok(&["validate", "-f", file_arg, "--json"]);
        assert_eq!(valid.json()["nodes"], nodes, "{template}");
        let plan = lab.ok(&["plan", "-f", file_arg, "--json"]);
        assert!(!plan.stdout.is_empty());
        // Never over an existing file.
        let again = lab.tartlab(&["init", "--template", template, dir.to_str().unwrap()]);
        assert_eq!(again.code, 2, "{}", again.stderr);
        assert!(
            again.stderr.contains("init never overwrites"),
            "{}",
            again.stderr
        );
    }
    assert!(
        std::fs::metadata(lab.dir.path().join("from-k3s/scripts/k3s-agent.sh"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap(),
        "the k3s scripts are executable"
    );
    // The minimal and seed labs come up here (the k3s one downloads k3s: a Mac's job).
    for template in ["minimal", "seed"] {
        let file = lab.dir.path().join(format!("from-{template}/tartlab.yaml"));
        let up = lab.tartlab(&["up", "-f", file.to_str().unwrap()]);
        assert_eq!(up.code, 0, "{template}: {}", up.stderr);
    }
    assert_eq!(lab.vms().len(), 10);
}

/// A lease file with `live` leases that expire in `secs`.
fn leases(live: usize, secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (0..live)
        .map(|i| {
            format!(
                "{{\n\tname=vm{i}\n\tip_address=192.168.64.{}\n\thw_address=1,a:b:c:d:{:x}:{:x}\n\tidentifier=1,a:b:c:d:e:f\n\tlease=0x{:x}\n}}\n",
                i + 2,
                i / 256,
                i % 256,
                now + secs
            )
        })
        .collect()
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

#[test]
fn doctor_names_each_requirement_that_fails_with_its_fix() {
    let lab = Lab::new(ONE_NODE);
    let doctor = |setup: &dyn Fn(&mut Command)| {
        let mut cmd = lab.command(&["doctor", "--json"]);
        setup(&mut cmd);
        let out = support::output(&mut cmd);
        (out.code, out.json())
    };
    // Healthy (the image is not cached yet: a warning, not a failure).
    let (code, report) = doctor(&|_| {});
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    for name in [
        "tart",
        "tart version",
        "tart run options",
        "softnet",
        "TART_HOME",
        "lab file",
        "lab directory",
        "lab key",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report}");
    }
    assert_eq!(check(&report, "images")["status"], "warning");
    assert!(check(&report, "images")["fix"]
        .as_str()
        .unwrap()
        .contains("tart pull"));

    // No tart at all.
    let (code, report) = doctor(&|cmd| {
        cmd.env("PATH", "/usr/bin:/bin");
    });
    assert_eq!(code, 1);
    assert_eq!(check(&report, "tart")["status"], "failed");
    assert!(check(&report, "tart")["fix"]
        .as_str()
        .unwrap()
        .contains("brew install cirruslabs/cli/tart"));

    // A tart too old.
    let old = lab.dir.path().join("old-tart");
    std::fs::write(&old, "#!/bin/sh\necho 1.9.0\n").unwrap();
    Command::new("chmod").arg("755").arg(&old).status().unwrap();
    let (code, report) = doctor(&|cmd| {
        cmd.env("TARTLAB_TART", &old);
    });
    assert_eq!(code, 1);
    let version = check(&report, "tart version");
    assert_eq!(version["status"], "failed");
    assert!(version["detail"]
        .as_str()
        .unwrap()
        .contains("1.9.0; tartlab needs 2.0 or newer"));
    assert_eq!(version["fix"], "brew upgrade cirruslabs/cli/tart");

    // A lease file that cannot be read: tartlab works, slower.
    let (code, report) = doctor(&|cmd| {
        cmd.env("TARTLAB_DHCP_LEASES", lab.dir.path());
    });
    assert_eq!(code, 0, "{report}");
    let unreadable = check(&report, "DHCP leases");
    assert_eq!(unreadable["status"], "warning");
    assert!(
        unreadable["fix"].as_str().unwrap().contains("tart ip"),
        "{unreadable}"
    );

    // A pool nearly full, then full, of day-long leases.
    for (live, status, code_wanted) in [(210, "warning", 0), (253, "failed", 1)] {
        let file = lab.dir.path().join(format!("leases-{live}"));
        std::fs::write(&file, leases(live, 86_000)).unwrap();
        let (code, report) = doctor(&|cmd| {
            cmd.env("TARTLAB_DHCP_LEASES", &file);
        });
        assert_eq!(code, code_wanted, "{report}");
        let pool = check(&report, "DHCP leases");
        assert_eq!(pool["status"], status, "{pool}");
        assert!(pool["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{live} of 253 addresses leased")));
        assert!(
            pool["fix"]
                .as_str()
                .unwrap()
                .contains("DHCPLeaseTimeSecs -int 600"),
            "{pool}"
        );
        let time = check(&report, "DHCP lease time");
        assert_eq!(time["status"], "warning", "{time}");
    }

    // A lab directory it cannot write.
    let mount = |args: &[&str]| {
        assert!(Command::new("mount").args(args).status().unwrap().success());
    };
    let dir = lab.lab.to_str().unwrap();
    mount(&["--bind", dir, dir]);
    mount(&["-o", "remount,bind,ro", dir]);
    let (code, report) = doctor(&|_| {});
    let _ = Command::new("umount").arg(dir).status();
    assert_eq!(code, 1, "{report}");
    let writable = check(&report, "lab directory");
    assert_eq!(writable["status"], "failed");
    assert!(
        writable["detail"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{writable}"
    );

    // And in words, for people.
    let text = lab.tartlab(&["doctor"]);
    assert!(
        text.stdout.contains("CHECK") && text.stdout.contains("doctor: ready"),
        "{}",
        text.stdout
    );
}

#[test]
fn json_is_json_where_it_means_something_and_refused_where_it_does_not() {
    let lab = Lab::new(TWO_CLUSTERS);
    let up = lab.ok(&["up", "--json"]);
    let last = up.stdout.lines().last().unwrap();
    let recap: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(recap["exit_code"], 0);
    for args in [
        &["validate", "--json"][..],
        &["plan", "--json"],
        &["status", "--json"],
        &["config", "--json"],
        &["ssh-config", "--json"],
        &["inventory", "--json"],
        &["labs", "--json"],
        &["doctor", "--json"],
        &["exec", "all", "--json", "--", "true"],
    ] {
        let out = lab.tartlab(args);
        assert!(out.code == 0, "{args:?}: {}", out.stderr);
        out.json();
    }
    lab.write("hello.txt", "hi\n");
    let cp = lab.ok(&["cp", "--json", "hello.txt", "dev-a:"]);
    assert_eq!(cp.json()["copied"], 1);
    for args in [
        &["ssh", "--json", "dev-a", "true"][..],
        &["logs", "--json", "dev-a"],
    ] {
        let out = lab.tartlab(args);
        assert_eq!(out.code, 2, "{args:?} must refuse --json: {}", out.stderr);
        assert!(out.stderr.contains("--json"), "{}", out.stderr);
    }
    let restart = lab.ok(&["restart", "stg-a", "--json"]);
    let last = restart.stdout.lines().last().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(last).unwrap()["exit_code"],
        0
    );
    assert_eq!(lab.boots("stg-a"), 2, "restarted");
}

#[test]
fn the_minimal_template_is_commented_and_its_comments_are_keys_that_work() {
    let lab = Lab::new(ONE_NODE);
    let dir = lab.dir.path().join("fresh");
    lab.ok(&["init", dir.to_str().unwrap()]);
    let text = std::fs::read_to_string(dir.join("tartlab.yaml")).unwrap();
    let comments = text
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(
        comments >= 20,
        "a commented file, not one comment line: {text}"
    );
    for key in [
        "defaults:",
        "image:",
        "memory:",
        "count:",
        "role:",
        "provision:",
        "users:",
    ] {
        assert!(
            text.contains(&format!("# {key}")) || text.contains(&format!("#   {key}")),
            "{key}: {text}"
        );
    }
    // Uncommented (the users' key file aside, which this machine has not), it is valid.
    let uncommented: String = text
        .lines()
        .filter(|l| !l.contains("authorized_keys"))
        .map(uncomment)
        .collect::<Vec<_>>()
        .join("\n");
    lab.write("uncommented.yaml", &uncommented);
    let valid = lab.tartlab(&["validate", "-f", "uncommented.yaml"]);
    assert_eq!(valid.code, 0, "{uncommented}\n{}", valid.stderr);
    assert!(
        valid.stdout.contains("(3 nodes in 1 cluster)"),
        "{}",
        valid.stdout
    );
}

/// A line with its `# ` taken out when what follows is a key (`key: ...`, `- key: ...`,
/// indented or not); prose comments stay.
fn uncomment(line: &str) -> String {
    let Some(at) = line.find("# ") else {
        return line.to_string();
    };
    let (indent, rest) = (&line[..at], &line[at + 2..]);
    let body = rest.trim_start().trim_start_matches("- ");
    let key = body.split(':').next().unwrap_or("");
    let is_key = indent.trim().is_empty()
        && body.contains(':')
        && !key.is_empty()
        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if is_key {
        format!("{indent}{rest}")
    } else {
        line.to_string()
    }
}
