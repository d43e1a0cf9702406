//! Watching a lab as a user does: the live display of `up` under a real terminal (tmux),
//! captured at a moment the test controls (a step that waits for a marker the test creates
//! on the guest); the recap that replaces it; the orphan warning repeated in the recap; and
//! `status`, which tells how each node last came up, its image and digest, and what differs
//! from the lab file.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Lab, TWO_CLUSTERS};

#[test]
fn status_tells_how_each_node_last_came_up_and_a_converged_up_is_quiet() {
    let lab = Lab::new(&format!(
        "{TWO_CLUSTERS}provision:\n  - name: picky\n    on: cluster=stg\n    run: exit 3\n"
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
    let last: Vec<(String, String)> = status.json()["nodes"]
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
    lab.write("tartlab.yaml", TWO_CLUSTERS);
    lab.ok(&["up"]);
    let again = lab.ok(&["up"]);
    let noise: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| !l.contains("ready done: unchanged"))
        .collect();
    assert!(noise.is_empty(), "a converged up said more: {noise:?}");
}

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
