//! Watching a lab as a user does: the live display of `up` under a real terminal (tmux),
//! captured at a moment the test controls (a step that waits for a marker the test creates
//! on the guest); the recap that replaces it; the orphan warning repeated in the recap.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Lab;

/// A tmux server of its own (its own socket, no user configuration) running one command in
/// a pane of a known size; killed when dropped.
struct Terminal {
    socket: String,
    done: PathBuf,
}

impl Terminal {
    /// Runs `tartlab ARGS` in the lab's environment (without CI) in a `width` x 30 pane.
    fn run(lab: &Lab, args: &str, width: u16) -> Terminal {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "no tmux to give tartlab a terminal: apt-get install tmux"
        );
        let socket = format!("tartlab-watching-{}", std::process::id());
        let done = lab.dir.path().join("terminal-done");
        let line = format!(
            "'{}' {args}; echo \"exit=$?\"; touch '{}'; exec sleep 600",
            env!("CARGO_BIN_EXE_tartlab"),
            done.display()
        );
        let mut tmux = Command::new("tmux");
        lab.env(&mut tmux);
        let status = tmux
            .env_remove("CI")
            .env_remove("TMUX")
            .env("TERM", "xterm-256color")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", "30", &line])
            .status()
            .unwrap();
        assert!(status.success());
        Terminal { socket, done }
    }

    /// The screen as text, as the user sees it, with what scrolled off it (tmux's history).
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-S", "-"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `wanted` (the display redraws on its own clock, so the
    /// moment the engine reached is on the screen a redraw later); the deadline only keeps a
    /// broken run from hanging the suite.
    fn wait_for_screen(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline && !self.done.exists(),
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last screen, once the command ended.
    fn finished(&self) -> String {
        self.wait_for_screen("the command's end", |s| s.contains("exit="))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Waits for the first journal event that `wanted` accepts.
fn wait_for_event(lab: &Lab, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lab.events().iter().any(&wanted) {
        assert!(Instant::now() < deadline, "no event {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

const WAITING_STEP: &str = r#"lab: watch
clusters:
  - name: dev
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker }
provision:
  - name: fetch
    on: role=master
    run: |
      printf 'fetching \033[2Jpart 3 of 7 %s\n' "$(printf 'x%.0s' $(seq 200))"
      while [ ! -e /tmp/tartlab-go ]; do sleep 0.05; done
"#;

#[test]
fn the_live_display_counts_says_what_a_node_waits_for_and_shows_a_step_s_last_line() {
    let lab = Lab::new(WAITING_STEP);
    let terminal = Terminal::run(&lab, "up", 100);
    wait_for_event(&lab, "of the step started on dev-master", |e| {
        e["node"] == "dev-master" && e["stage"] == "provision" && e["status"] == "started"
    });
    let frame = terminal.wait_for_screen("the step's output", |s| s.contains("part 3 of 7"));
    let rows: Vec<&str> = frame.lines().collect();
    // A node's row: its mark, a space, its name.
    let row = |node: &str| -> &str {
        let found: Vec<&&str> = rows
            .iter()
            .filter(|r| r.get(2..).is_some_and(|r| r.starts_with(node)))
            .collect();
        assert_eq!(found.len(), 1, "one row for {node}:\n{frame}");
        found[0]
    };
    assert!(
        rows.iter().any(|r| r.starts_with("up: 0 of 2 ready")
            && r.contains("slowest now: dev-master provision")),
        "an overall line first:\n{frame}"
    );
    let master = row("dev-master");
    assert!(
        master.contains("provision") && master.contains("fetch: fetching \\x1b[2Jpart 3 of 7 xxx"),
        "the running step's last line, escaped:\n{frame}"
    );
    assert!(
        master.ends_with('…') && master.chars().count() <= 100,
        "cut to the width of the terminal:\n{frame}"
    );
    let worker = row("dev-worker");
    assert!(
        worker.contains("waiting for dev-master"),
        "what the worker waits for:\n{frame}"
    );

    let go = lab.ssh("dev-master", "touch /tmp/tartlab-go");
    assert_eq!(go.code, 0, "{}", go.stderr);
    let last = terminal.finished();
    assert!(last.contains("exit=0"), "{last}");
    assert!(last.contains("up: 2 of 2 nodes ok"), "{last}");
    assert!(
        !last.contains("of 2 ready"),
        "the frame is replaced by the recap:\n{last}"
    );
    // One row per node: the recap's, not the frame's as well.
    for node in ["dev-master", "dev-worker"] {
        let recap_row = row_of(&last, node);
        // The recap's time is the timestamp of the node's last event: one clock for both.
        let shown: f64 = recap_row
            .split_whitespace()
            .find_map(|w| w.strip_suffix('s')?.parse().ok())
            .unwrap_or_else(|| panic!("a time in {recap_row}"));
        let events = lab.events();
        let ready = events
            .iter()
            .rev()
            .find(|e| e["node"] == node && e["stage"] == "ready" && e["status"] == "done")
            .unwrap_or_else(|| panic!("{node} ready"));
        let at = ready["elapsed_ms"].as_u64().unwrap() as f64 / 1000.0;
        assert!(
            (shown - at).abs() <= 0.051,
            "{node}: the recap says {shown}s, its ready event {at}s\n{last}"
        );
    }
}

/// The one row of the screen that names `node`.
fn row_of<'a>(screen: &'a str, node: &str) -> &'a str {
    let found: Vec<&str> = screen.lines().filter(|r| r.contains(node)).collect();
    assert_eq!(found.len(), 1, "one row for {node}:\n{screen}");
    found[0]
}

#[test]
fn an_orphan_is_named_again_in_the_recap() {
    let two =
        "lab: orphans\nclusters:\n  - name: dev\n    nodes: [{ name: master }, { name: extra }]\n";
    let lab = Lab::new(two);
    lab.ok(&["up", "--no-provision"]);
    lab.write(
        "tartlab.yaml",
        "lab: orphans\nclusters:\n  - name: dev\n    nodes: [{ name: master }]\n",
    );
    let out = lab.ok(&["up", "--no-provision"]);
    assert!(out.stdout.contains("up: 1 of 1 node ok"), "{}", out.stdout);
    let warning = "warning: dev-extra is an orphan";
    assert_eq!(
        out.stderr.matches(warning).count(),
        2,
        "said at the start and again with the recap:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(warning)),
        "the recap's warning is the last thing said:\n{}",
        out.stderr
    );
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

#[test]
fn status_shows_the_image_its_digest_and_what_differs_from_the_lab_file() {
    let file = |cpu: u32| {
        format!("lab: drift\nclusters:\n  - name: dev\n    nodes: [{{ name: vm, cpu: {cpu} }}]\n")
    };
    let lab = Lab::new(&file(2));
    lab.ok(&["up", "--no-provision"]);
    let image = "ghcr.io/cirruslabs/ubuntu:latest";

    let converged = lab.ok(&["status"]);
    assert!(
        !converged.stdout.contains('*') && !converged.stdout.contains("tartlab plan"),
        "nothing differs yet:\n{}",
        converged.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"]).stdout).unwrap();
    let node = &json["nodes"][0];
    assert_eq!(node["image"], image, "{json:#}");
    let digest = node["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("a digest: {json:#}"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(node["drift"], serde_json::json!([]), "{json:#}");

    // The wide table, as `kubectl get -o wide`: the image and its digest too.
    let wide = lab.ok(&["status", "-o", "wide"]);
    let mut rows = wide.stdout.lines();
    let header = rows.next().unwrap();
    assert!(
        header.contains("IMAGE") && header.contains("DIGEST"),
        "{}",
        wide.stdout
    );
    let row = rows.next().unwrap();
    assert!(
        row.contains(image) && row.contains(&digest[..19]),
        "{}",
        wide.stdout
    );

    // The file now says 3 CPUs; the VM has 2.
    lab.write("tartlab.yaml", &file(3));
    let drifted = lab.ok(&["status"]);
    let row = drifted
        .stdout
        .lines()
        .find(|l| l.starts_with("dev-vm"))
        .unwrap();
    assert!(
        row.split_whitespace().any(|w| w == "2*"),
        "the VM's CPU count, marked:\n{}",
        drifted.stdout
    );
    assert!(
        drifted
            .stdout
            .contains("dev-vm differs from the lab file: cpu 2 (the file: 3); `tartlab plan` shows the change"),
        "{}",
        drifted.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.ok(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        json["nodes"][0]["drift"],
        serde_json::json!([{ "setting": "cpu", "vm": "2", "file": "3" }]),
        "{json:#}"
    );
}
