//! The command line as people type it (issue 15), through the binary against tart-sim:
//! `init`, `doctor`, completions and man pages, `--json` that means it, and the shapes of
//! `ssh`, `exec`, `logs`, `cp`, `restart`, `status` and `labs` that users of ssh, docker
//! compose, kind, Lima and Vagrant expect.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{tart_sim, Lab, Out};

const ONE: &str = "lab: habits\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";
const TWO: &str = "lab: habits\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n  - name: stg\n    nodes: [{ name: a }]\n";

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn run(cmd: &mut Command) -> Out {
    cmd.output().unwrap().into()
}

#[test]
fn init_writes_each_template_that_then_validates_plans_and_comes_up() {
    let lab = Lab::new(ONE);
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
        assert_eq!(json(&valid)["nodes"], nodes, "{template}");
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
    let lab = Lab::new(ONE);
    let doctor = |setup: &dyn Fn(&mut Command)| {
        let mut cmd = lab.command(&["doctor", "--json"]);
        setup(&mut cmd);
        let out = run(&mut cmd);
        (out.code, json(&out))
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
fn completions_work_in_a_real_bash_and_the_man_page_renders_cleanly() {
    let lab = Lab::new(ONE);
    let script = lab.ok(&["completions", "bash"]).stdout;
    lab.write("completion.bash", &script);
    // The script calls back `tartlab` from the PATH, the command it completes.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tartlab"), lab.bin().join("tartlab")).unwrap();
    let mut bash = Command::new("bash");
    lab.env(&mut bash);
    let bash = run(bash.arg("-c").arg(format!(
        "source {} && complete -p tartlab && COMP_LINE='tartlab st' && COMP_POINT=10 && COMP_WORDS=(tartlab st) && COMP_CWORD=1 && _clap_complete_tartlab tartlab st tartlab && echo \"${{COMPREPLY[@]}}\"",
        lab.lab.join("completion.bash").display()
    )));
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(
        bash.stdout.contains("-F _clap_complete_tartlab tartlab"),
        "{}",
        bash.stdout
    );
    for word in ["status", "stop", "start"] {
        assert!(
            bash.stdout
                .lines()
                .last()
                .unwrap()
                .split(' ')
                .any(|w| w == word),
            "{}",
            bash.stdout
        );
    }
    for shell in ["zsh", "fish"] {
        assert!(lab.ok(&["completions", shell]).stdout.contains("tartlab"));
    }
    let page = lab.ok(&["man"]).stdout;
    let mut man = Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut man.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let shown: Out = man.wait_with_output().unwrap().into();
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown.stderr.trim().is_empty(),
        "man warned: {}",
        shown.stderr
    );
    assert!(
        shown.stdout.contains("tartlab") && shown.stdout.contains("doctor"),
        "{}",
        shown.stdout
    );
    let pages = lab.dir.path().join("man1");
    lab.ok(&["man", "--dir", pages.to_str().unwrap()]);
    for page in ["tartlab.1", "tartlab-up.1", "tartlab-exec.1"] {
        assert!(pages.join(page).is_file(), "{page}");
    }
}

#[test]
fn json_is_json_where_it_means_something_and_refused_where_it_does_not() {
    let lab = Lab::new(TWO);
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
        json(&out);
    }
    lab.write("hello.txt", "hi\n");
    let cp = lab.ok(&["cp", "--json", "hello.txt", "dev-a:"]);
    assert_eq!(json(&cp)["copied"], 1);
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
fn ssh_exec_logs_and_cp_take_the_shapes_people_type() {
    let lab = Lab::new(&format!(
        "{TWO}provision:\n  - name: hello\n    run: echo hello\n"
    ));
    lab.up_all_ok(3);
    // ssh NODE CMD, as ssh takes it.
    let ssh = lab.ok(&["ssh", "dev-a", "hostname"]);
    assert_eq!(ssh.stdout, "dev-a\n");
    let ssh = lab.ok(&["ssh", "dev-a", "--", "echo", "-n", "x"]);
    assert_eq!(ssh.stdout, "x");
    // Several selectors, lists and globs.
    let exec = lab.ok(&["exec", "dev-*", "stg-a", "--json", "--", "hostname"]);
    let nodes: Vec<String> = json(&exec)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["dev-a", "dev-b", "stg-a"]);
    let by_cluster = lab.ok(&["exec", "cluster=dev,stg", "--json", "--", "true"]);
    assert_eq!(json(&by_cluster)["results"].as_array().unwrap().len(), 3);
    let unknown = lab.tartlab(&["exec", "dev-c", "--", "true"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("`dev-c` matches no node of the lab (did you mean `dev-a`?)")
            && unknown.stderr.contains("the nodes are dev-a, dev-b, stg-a"),
        "{}",
        unknown.stderr
    );
    // logs --tail N (the node's last N lines), -F is --follow.
    let tail = lab.ok(&["logs", "--tail", "1", "dev-a"]);
    let lines: Vec<&str> = tail.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the node's last line: {}", tail.stdout);
    assert!(lines[0].starts_with("dev-a | "), "{}", tail.stdout);
    assert!(lab
        .command(&["logs", "-F", "dev-a"])
        .arg("--help")
        .output()
        .unwrap()
        .status
        .success());
    // A step name after --reprovision with a space is not taken for a node.
    let step = lab.tartlab(&["up", "--reprovision", "hello"]);
    assert_eq!(step.code, 2, "{}", step.stderr);
    assert!(
        step.stderr.contains("`hello` is a step, not a node"),
        "{}",
        step.stderr
    );
    assert!(
        step.stderr.contains("--reprovision=hello"),
        "{}",
        step.stderr
    );
    let typo = lab.tartlab(&["up", "--reprovision=helo"]);
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr.contains("(did you mean `hello`?)"),
        "{}",
        typo.stderr
    );
    // cp: NODE: is the home; each error with its own hint.
    lab.write("note.txt", "note\n");
    lab.ok(&["cp", "note.txt", "dev-a:"]);
    assert_eq!(lab.ssh("dev-a", "cat ~/note.txt").stdout, "note\n");
    let cases = [
        (
            vec!["cp", "note.txt", "dev-a:/root/x"],
            "permission denied",
            "--user root",
        ),
        (
            vec!["cp", "dev-a:nosuch", "."],
            "no such file or directory",
            "`dev-a:` alone is that home",
        ),
        (vec!["cp", "dev-a:/etc", "."], "is a directory", "add -r"),
        (
            vec!["cp", "note.txt", "dev-c:/tmp"],
            "`dev-c` matches no node",
            "the nodes are dev-a, dev-b, stg-a",
        ),
    ];
    for (args, message, hint) in cases {
        let out = lab.tartlab(&args);
        assert_ne!(out.code, 0, "{args:?}");
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(hint), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.matches(message).count(),
            1,
            "said once: {}",
            out.stderr
        );
    }
    // A VM deleted behind tartlab's back: one command brings it back.
    let deleted = lab.tart(&["stop", "stg-a"]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(lab.tart(&["delete", "stg-a"]).code, 0);
    let ssh = lab.tartlab(&["ssh", "stg-a", "true"]);
    assert!(
        ssh.stderr.contains(
            "stg-a no longer exists (deleted outside tartlab?): `tartlab up stg-a` makes it again"
        ),
        "{}",
        ssh.stderr
    );
}

#[test]
fn status_tells_how_each_node_last_came_up_and_a_converged_up_is_quiet() {
    let lab = Lab::new(&format!(
        "{TWO}provision:\n  - name: picky\n    on: cluster=stg\n    run: exit 3\n"
    ));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 3, "{}", up.stderr);
    let pulls = up
        .stderr
        .lines()
        .filter(|l| l.contains("pull:") && l.ends_with('%'))
        .count();
    assert!(
        pulls <= 11,
        "pull progress at most every 10 %: {pulls} lines"
    );
    let status = lab.ok(&["status", "--json"]);
    let last: Vec<(String, String)> = json(&status)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().into(),
                n["last_up"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [
            ("dev-a".into(), "ok".into()),
            ("dev-b".into(), "ok".into()),
            ("stg-a".into(), "failed at provision".into())
        ]
    );
    let table = lab.ok(&["status"]).stdout;
    assert!(
        table.contains("LAST UP") && table.contains("failed at provision"),
        "{table}"
    );
    // Converged: nothing but each node's end and the recap.
    lab.write("tartlab.yaml", TWO);
    lab.ok(&["up"]);
    let again = lab.ok(&["up"]);
    let noise: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| !l.contains("ready done: unchanged"))
        .collect();
    assert!(noise.is_empty(), "a converged up said more: {noise:?}");
}

#[test]
fn labs_lists_every_lab_brought_up_here_and_forgets_only_when_asked() {
    let lab = Lab::new(ONE);
    let other = lab.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("tartlab.yaml"),
        "lab: other\nvm_prefix: o-\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n",
    )
    .unwrap();
    lab.up_all_ok(1);
    lab.ok(&["up", "-f", other.join("tartlab.yaml").to_str().unwrap()]);
    let labs = json(&lab.ok(&["labs", "--json"]));
    let rows = labs["labs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{labs}");
    for row in rows {
        assert_eq!(
            (row["vms"].as_u64(), row["running"].as_u64()),
            (Some(1), Some(1)),
            "{row}"
        );
        assert_eq!(row["state"], "present");
    }
    // The other lab's directory goes: shown as gone, kept until asked.
    lab.ok(&["down", "-f", other.join("tartlab.yaml").to_str().unwrap()]);
    std::fs::remove_dir_all(&other).unwrap();
    let text = lab.ok(&["labs"]).stdout;
    assert!(
        text.contains("(gone)") && text.contains("--forget-missing"),
        "{text}"
    );
    assert_eq!(
        json(&lab.ok(&["labs", "--json"]))["labs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let forget = lab.ok(&["labs", "--forget-missing", "--json"]);
    assert!(forget.stderr.contains("forgot other"), "{}", forget.stderr);
    let rows = json(&forget)["labs"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["lab"], "habits");
    assert!(Path::new(rows[0]["file"].as_str().unwrap()).is_absolute());
    let _ = tart_sim();
}
