//! `tartlab logs` through the binary: every node's transcript interleaved with tartlab's
//! wrappers folded, `-F` following what is appended (a step run later too), and `--journal`
//! with the guest's own journal and the VM's console log (or a line saying the guest has no
//! systemd).

use crate::support::{Lab, PAIR};

#[test]
fn logs_follow_prints_what_is_appended() {
    use std::io::{BufRead, BufReader};
    let lab = Lab::new(PAIR);
    lab.ok(&["up", "dev-master"]);
    let logs = lab.ok(&["logs", "--raw", "dev-master"]);
    assert!(
        logs.stdout
            .contains("--- tartlab: tart run dev-master --no-graphics"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains("$ sudo -n /bin/bash -c"),
        "the transcript: {}",
        logs.stdout
    );
    let mut follow = lab
        .command(&["logs", "--raw", "dev-master", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let run_log = lab.lab.join(".tartlab/logs/dev-master.run.log");
    // What is there is shown first, the run log then the transcript: once the transcript's
    // last line is out, anything more was followed, not read at the start.
    let transcript = lab.lab.join(".tartlab/logs/dev-master.provision.log");
    let transcript_end = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let header = format!("==> {} <==", transcript.display());
    let mut in_transcript = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        in_transcript |= line.ends_with(&header[header.len() - 30..]);
        if in_transcript && line == transcript_end {
            break;
        }
    }
    assert!(in_transcript, "logs showed no transcript");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&run_log)
        .unwrap();
    std::io::Write::write_all(&mut file, b"appended while following\n").unwrap();
    let found = lines.any(|l| l.unwrap() == "appended while following");
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(found);
}

const HELLO: &str = r#"lab: logs
clusters:
  - name: dev
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker }
files:
  - { src: motd, dest: /etc/motd }
provision:
  - name: hello
    run: echo "hello from $TARTLAB_NODE"
"#;

/// The node a line of `logs` is prefixed with, and the rest.
fn prefixed(line: &str) -> (&str, &str) {
    let (node, rest) = line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("no node prefix: {line:?}"));
    (node.trim_end(), rest)
}

#[test]
fn logs_interleave_the_nodes_transcripts_with_tartlab_s_wrappers_folded() {
    let lab = Lab::new(HELLO);
    lab.write("motd", "welcome\n");
    lab.up_all_ok(2);
    let all = lab.ok(&["logs"]);
    let lines: Vec<&str> = all.stdout.lines().collect();
    for line in &lines {
        let (node, _) = prefixed(line);
        assert!(["dev-master", "dev-worker"].contains(&node), "{line}");
    }
    for plumbing in ["umask 077", "flock", "sudo -n", "tartlab-done"] {
        assert!(
            !all.stdout.contains(plumbing),
            "{plumbing} is tartlab's, folded away:\n{}",
            all.stdout
        );
    }
    let index = |wanted: &dyn Fn(&str, &str) -> bool| -> Vec<usize> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                let (node, rest) = prefixed(l);
                wanted(node, rest)
            })
            .map(|(i, _)| i)
            .collect()
    };
    let base = index(&|_, rest| rest.starts_with("[tartlab] base provisioning"));
    assert_eq!(base.len(), 2, "one line per node's base:\n{}", all.stdout);
    let files = index(&|node, rest| {
        node == "dev-worker"
            && rest.starts_with("[tartlab] placing the files")
            && rest.contains("/etc/motd")
    });
    assert_eq!(
        files.len(),
        1,
        "the files placed, in one line:\n{}",
        all.stdout
    );
    let hello = index(&|node, rest| rest == format!("hello from {node}"));
    assert_eq!(hello.len(), 2, "each node's step output:\n{}", all.stdout);
    assert!(
        index(&|_, rest| rest.starts_with("$ step `hello`")).len() == 2,
        "the user's step as written:\n{}",
        all.stdout
    );
    // Interleaved by time: every node's base came before any node's step (a phase).
    assert!(base.iter().max() < hello.iter().min(), "{}", all.stdout);
    assert!(lines.len() < 40, "{} lines:\n{}", lines.len(), all.stdout);

    // The full form behind --raw.
    let raw = lab.ok(&["logs", "--raw", "dev-master"]);
    assert!(
        raw.stdout.contains("umask 077") && raw.stdout.contains("$ sudo -n /bin/bash -c"),
        "{}",
        raw.stdout
    );
    // Selectors, and --tail N per node.
    let worker = lab.ok(&["logs", "role=worker", "--tail", "2"]);
    let tail: Vec<(&str, &str)> = worker.stdout.lines().map(prefixed).collect();
    assert_eq!(tail.len(), 2, "{}", worker.stdout);
    assert!(
        tail.iter().all(|(n, _)| *n == "dev-worker"),
        "{}",
        worker.stdout
    );
    assert_eq!(tail[0].1, "hello from dev-worker", "{}", worker.stdout);
}

#[test]
fn logs_follow_shows_a_step_run_later_as_it_comes() {
    use std::io::{BufRead, BufReader};
    let lab = Lab::new(HELLO);
    lab.write("motd", "welcome\n");
    lab.up_all_ok(2);
    let before = lab.ok(&["logs", "dev-master"]).stdout;
    let last = before.lines().last().unwrap().to_string();
    let mut follow = lab
        .command(&["logs", "-F", "dev-master"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // What was there first; then what the next run appends.
    for line in lines.by_ref() {
        if line.unwrap() == last {
            break;
        }
    }
    lab.ok(&["up", "--reprovision=hello", "dev-master"]);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.ends_with("hello from dev-master");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.iter().any(|l| l == "dev-master | $ step `hello`:"),
        "{seen:#?}"
    );
}

#[test]
fn logs_journal_shows_the_guest_s_own_journal_and_the_vm_s_console_log() {
    let lab = Lab::new("lab: journal\nclusters:\n  - name: dev\n    nodes: [{ name: sd }]\n");
    lab.use_systemd_guests();
    lab.up_all_ok(1);
    let journal = lab.ok(&["logs", "--journal", "--tail", "50"]);
    let lines: Vec<(&str, &str)> = journal.stdout.lines().map(prefixed).collect();
    assert!(
        lines.iter().all(|(n, _)| *n == "dev-sd"),
        "{}",
        journal.stdout
    );
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.starts_with("--- tartlab: tart run dev-sd")),
        "the VM's console log (tart run's output):\n{}",
        journal.stdout
    );
    // journalctl's own lines follow the console log's. (The simulator's systemd guests keep
    // no journal files, so journalctl answers `-- No entries --` there; a real guest's
    // journal has its boot.)
    let console = std::fs::read_to_string(lab.lab.join(".tartlab/logs/dev-sd.run.log")).unwrap();
    let from_the_guest: Vec<&str> = lines
        .iter()
        .map(|(_, l)| *l)
        .filter(|l| !console.contains(*l))
        .collect();
    assert!(
        !from_the_guest.is_empty() && !journal.stdout.contains("no systemd journal"),
        "the guest's journal, by journalctl:\n{}",
        journal.stdout
    );
}

#[test]
fn logs_journal_on_a_guest_without_systemd_says_so() {
    let lab = Lab::new("lab: nojournal\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n");
    lab.up_all_ok(1);
    let journal = lab.ok(&["logs", "--journal"]);
    assert!(
        journal
            .stdout
            .contains("dev-vm | (no systemd journal on this guest"),
        "{}",
        journal.stdout
    );
}
