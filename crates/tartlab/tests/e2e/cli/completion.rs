//! Completion through real shells (issue 30, point 5): the script `tartlab completions
//! SHELL` prints, loaded as a user would, completes node names, selectors (`cluster=`,
//! `role=`), the steps of `--reprovision=` and the lab's snapshot names, read from the lab
//! file found as usual (or named by `-f`), in bash (its completion function, called as
//! readline calls it), zsh (an interactive zsh on a pty, `compinit` autoloading the
//! script from `$fpath`, a TAB typed) and fish (`complete -C`, fish's own engine); and the
//! man page, which renders cleanly.

use std::process::{Command, Stdio};

use crate::support::{self, Lab, Out, ONE_NODE};

#[test]
fn completions_work_in_a_real_bash_and_the_man_page_renders_cleanly() {
    let lab = Lab::new(ONE_NODE);
    let script = lab.ok(&["completions", "bash"]).stdout;
    lab.write("completion.bash", &script);
    // The script calls back `tartlab` from the PATH, the command it completes.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tartlab"), lab.bin().join("tartlab")).unwrap();
    let mut bash = Command::new("bash");
    lab.env(&mut bash);
    let bash = support::output(bash.arg("-c").arg(format!(
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

const LAB: &str = "lab: comp\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker, count: 2 }\n  - name: stg\n    nodes: [{ name: web }]\nprovision:\n  - { name: install-k3s, on: role=master, run: \"true\" }\n  - { name: join, on: role=worker, run: \"true\" }\n";

/// A shell that must be there: the test fails (never skips) without it.
fn shell(name: &str) -> Command {
    let found = Command::new(name).arg("-c").arg("true").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "no {name} to test completion in: scripts/install-deps.sh installs it (apt-get install {name})"
    );
    Command::new(name)
}

/// The lab with `tartlab` on its private PATH (the name the scripts complete) and each
/// shell's script written beside the lab file.
fn lab_with_scripts(yaml: &str) -> Lab {
    let lab = Lab::new(yaml);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tartlab"), lab.bin().join("tartlab")).unwrap();
    for (shell, file) in [
        ("bash", "tartlab.bash"),
        ("zsh", "_tartlab"),
        ("fish", "tartlab.fish"),
    ] {
        let script = lab.ok(&["completions", shell]).stdout;
        lab.write(file, &script);
    }
    lab
}

fn run(lab: &Lab, mut cmd: Command) -> Out {
    lab.env(&mut cmd);
    let out: Out = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out
}

/// What bash offers for `line` (the words so far, the last one being completed), its
/// completion function called as readline calls it: the line and the cursor at its end.
fn bash(lab: &Lab, line: &str) -> Vec<String> {
    let mut cmd = shell("bash");
    cmd.arg("-c").arg(format!(
        "source ./tartlab.bash && COMP_LINE='{line}' && COMP_POINT=${{#COMP_LINE}} && COMP_TYPE=9 && _clap_complete_tartlab tartlab && printf '%s\\n' \"${{COMPREPLY[@]}}\""
    ));
    run(lab, cmd)
        .stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The screen of an interactive bash on a pty (util-linux `script`) after `line` and a TAB,
/// read until `expected` shows (or the timeout ends it and the test fails on the screen).
fn bash_screen(lab: &Lab, line: &str, expected: &str) -> String {
    use std::io::{Read, Write};
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "script", "-qfc", "bash --norc -i", "/dev/null"]);
    lab.env(&mut cmd);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("source ./tartlab.bash\n{line}\t").as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    let mut buf = [0u8; 4096];
    // The typed line is echoed before the TAB's answer: look past it.
    let typed = line.to_string();
    loop {
        let text = String::from_utf8_lossy(&screen).replace('\r', "");
        let after = text.rfind(&typed).map(|i| &text[i + typed.len()..]);
        if after.is_some_and(|rest| rest.contains(expected)) {
            break;
        }
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => screen.extend_from_slice(&buf[..n]),
        }
    }
    drop(stdin);
    // SIGTERM, which `timeout` passes on to `script` and its bash (SIGKILL would leave them).
    // SAFETY: kill has no preconditions; the pid is our child's, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    String::from_utf8_lossy(&screen).replace('\r', "")
}

/// What fish offers for `line`, each value without its description.
fn fish(lab: &Lab, line: &str) -> Vec<String> {
    let mut cmd = shell("fish");
    cmd.args(["--no-config", "-c"])
        .arg(format!("source ./tartlab.fish; complete -C '{line}'"));
    run(lab, cmd)
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

/// The screen of an interactive zsh after `line` and a TAB, read until `expected` shows
/// (a zsh that never shows it is ended by the timeout, and the test fails on its screen).
fn zsh_screen(lab: &Lab, line: &str, expected: &str) -> String {
    let script = format!(
        r#"zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; fpath=("$PWD" $fpath); autoload -U compinit; compinit -u -D'
zpty -w -n z $'{line}\t'
zpty -r z out '*{expected}*' && print -r -- "$out"
"#
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "zsh", "-f", "-c", &script]);
    shell("zsh");
    lab.env(&mut cmd);
    let out: Out = cmd.output().unwrap().into();
    out.stdout.replace('\r', "")
}

#[test]
fn node_names_selectors_and_steps_complete_in_bash_zsh_and_fish() {
    let lab = lab_with_scripts(LAB);
    let nodes = ["dev-master", "dev-worker-1", "dev-worker-2", "stg-web"];
    for offered in [bash(&lab, "tartlab ssh "), fish(&lab, "tartlab ssh ")] {
        for node in nodes {
            assert!(offered.iter().any(|o| o == node), "{node}: {offered:?}");
        }
    }
    for offered in [
        bash(&lab, "tartlab up dev-w"),
        fish(&lab, "tartlab up dev-w"),
    ] {
        assert_eq!(offered, ["dev-worker-1", "dev-worker-2"]);
    }
    for offered in [bash(&lab, "tartlab stop ro"), fish(&lab, "tartlab stop ro")] {
        assert_eq!(offered, ["role=master", "role=worker", "role=web"]);
    }
    for offered in [bash(&lab, "tartlab exec cl"), fish(&lab, "tartlab exec cl")] {
        assert_eq!(offered, ["cluster=dev", "cluster=stg"]);
    }
    // `logs` takes selectors too, and after one, more nodes.
    for offered in [bash(&lab, "tartlab logs cl"), fish(&lab, "tartlab logs cl")] {
        assert_eq!(offered, ["cluster=dev", "cluster=stg"]);
    }
    assert_eq!(bash(&lab, "tartlab logs cluster=dev stg-"), ["stg-web"]);
    // Bash replaces only what follows the word's `=`; fish, the whole word.
    assert_eq!(
        bash(&lab, "tartlab up --reprovision="),
        ["install-k3s", "join"]
    );
    assert_eq!(
        fish(&lab, "tartlab up --reprovision="),
        ["--reprovision=install-k3s", "--reprovision=join"]
    );
    // Readline itself, where `=` splits bash's words: the TAB still completes after it.
    let screen = bash_screen(&lab, "tartlab up --reprovision=j", "oin");
    assert!(
        screen.contains("tartlab up --reprovision=join "),
        "{screen}"
    );
    let screen = bash_screen(&lab, "tartlab stop cluster=s", "tg");
    assert!(screen.contains("tartlab stop cluster=stg "), "{screen}");
    // zsh: the script from $fpath, autoloaded at the first TAB, completes at that TAB.
    let screen = zsh_screen(&lab, "tartlab ssh dev-", "dev-worker-2");
    assert!(
        screen.contains("dev-master") && screen.contains("dev-worker-2"),
        "{screen}"
    );
    let screen = zsh_screen(&lab, "tartlab up --reprovision=", "join");
    assert!(screen.contains("install-k3s"), "{screen}");

    // Another lab file, named with -f among the words, is the one read.
    lab.write(
        "other.yaml",
        "lab: other\nclusters:\n  - name: qa\n    nodes: [{ name: box }]\n",
    );
    assert_eq!(bash(&lab, "tartlab ssh -f other.yaml q"), ["qa-box"]);
    assert_eq!(fish(&lab, "tartlab ssh -f other.yaml q"), ["qa-box"]);
    // A lab file that cannot be read completes nothing, and says nothing.
    lab.write("broken.yaml", "lab: [\n");
    assert!(bash(&lab, "tartlab ssh -f broken.yaml d").is_empty());
}

#[test]
fn snapshot_names_complete_once_the_lab_has_snapshots() {
    let lab = lab_with_scripts("lab: comp\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    assert!(bash(&lab, "tartlab snapshot restore ")
        .iter()
        .all(|o| o.starts_with('-')));
    lab.ok(&["up"]);
    lab.ok(&["snapshot", "save", "provisioned"]);
    for offered in [
        bash(&lab, "tartlab snapshot restore "),
        fish(&lab, "tartlab snapshot delete "),
    ] {
        assert!(offered.iter().any(|o| o == "provisioned"), "{offered:?}");
    }
    let screen = zsh_screen(&lab, "tartlab snapshot restore pro", "provisioned");
    assert!(screen.contains("provisioned"), "{screen}");
    lab.ok(&["down"]);
}
