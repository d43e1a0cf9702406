//! The simulator part of the harness: the real `tartlab` binary against tart-sim installed as
//! `tart` on a private PATH (a wrapper that also records every tart command line), with a
//! private `TART_HOME` and lab directory. Dropping a `Lab` reaps every VM the test started.
//! Guests need root.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Out;

/// tart-sim, built into the same target directory as this test (nextest and
/// `cargo build --workspace` build it), or `TEST_TART_SIM` (scripts/mutants.sh, whose
/// copies of the tree build only tartlab).
pub fn tart_sim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let sim = std::env::var_os("TEST_TART_SIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("tart-sim"));
    assert!(
        sim.is_file(),
        "{} is missing: build the workspace (`cargo build --workspace`) or use scripts/test.sh",
        sim.display()
    );
    sim
}

/// Guests need namespaces and mounts. These tests fail (never skip) without root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root; CI runs as root"
    );
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub lab: PathBuf,
    pub home: PathBuf,
    bin: PathBuf,
    /// Every tart command line run through the wrapper, one per line.
    pub tart_calls: PathBuf,
    /// Point tartlab at the simulator's lease file (else it runs `tart ip`).
    pub lease_file: std::cell::Cell<bool>,
}

impl Lab {
    /// Whether `tart list` shows `vm` running.
    pub fn running(&self, vm: &str) -> bool {
        self.vms().contains(&(vm.to_string(), true))
    }

    /// `command` run as root on `vm` through the login user's sudo; fails unless it exits 0.
    pub fn as_root(&self, vm: &str, command: &str) -> String {
        let quoted = format!("'{}'", command.replace('\'', r"'\''"));
        let out = self.ssh(vm, &format!("sudo sh -c {quoted}"));
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        out.stdout
    }

    /// A lab directory holding `tartlab.yaml` with this text.
    pub fn new(yaml: &str) -> Lab {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("tartlab-e2e")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        let lab = dir.path().join("lab");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lab).unwrap();
        let tart_calls = dir.path().join("tart-calls.log");
        let wrapper = format!(
            "#!/bin/bash\nprintf '%s\\n' \"$*\" >> '{}'\nif [ \"$1\" = set ] && [ -n \"${{TEST_HOLD_SET:-}}\" ]; then while [ ! -e \"$TEST_HOLD_SET\" ]; do sleep 0.02; done; fi\nexec -a tart '{}' \"$@\"\n",
            tart_calls.display(),
            tart_sim().display()
        );
        std::fs::write(bin.join("tart"), wrapper).unwrap();
        // `softnet` too: a file of its own, whose SUID bit a test may set as a user would.
        std::fs::write(
            bin.join("softnet"),
            format!(
                "#!/bin/bash\nexec -a softnet '{}' \"$@\"\n",
                tart_sim().display()
            ),
        )
        .unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(bin.join("tart"))
            .arg(bin.join("softnet"))
            .status()
            .unwrap();
        std::fs::write(lab.join("tartlab.yaml"), yaml).unwrap();
        Lab {
            dir,
            lab,
            home,
            bin,
            tart_calls,
            lease_file: std::cell::Cell::new(true),
        }
    }

    /// Makes the simulator's new images systemd guests (a Debian root with systemd as PID 1,
    /// sshd socket-activated: tart-sim's README, "The guests").
    pub fn use_systemd_guests(&self) {
        std::fs::create_dir_all(self.home.join("sim")).unwrap();
        std::fs::write(self.home.join("sim/guest"), "systemd\n").unwrap();
    }

    /// The private PATH's directory (`tart`, `softnet`; a test may add a `sudo`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.lab.join(name), text).unwrap();
    }

    /// The environment every command of this lab runs with (private PATH, TART_HOME, ...).
    pub fn env(&self, cmd: &mut Command) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(&self.lab)
            .env("PATH", path)
            .env("TART_HOME", &self.home)
            .env("TART_SIM_BOOT_MS", "400")
            .env("TART_SIM_PULL_MS", "50")
            .env("TART_SIM_LOCK_MS", "100")
            .env("CI", "true")
            .env_remove("TARTLAB_DHCP_LEASES")
            .env_remove("TARTLAB_TART")
            .env("TARTLAB_DATA_DIR", self.dir.path().join("data"))
            .env_remove("NO_COLOR");
        if self.lease_file.get() {
            // The simulator's lease file, read as tartlab reads /var/db/dhcpd_leases on a Mac.
            cmd.env("TARTLAB_DHCP_LEASES", self.home.join("sim/dhcpd_leases"));
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tartlab"));
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Starts tartlab in the background, its output discarded (the test reads events).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn tartlab(&self, args: &[&str]) -> Out {
        self.command(args).output().unwrap().into()
    }

    /// Runs tartlab and fails the test, showing everything it printed and the end of each
    /// provisioning transcript (the lab's directory is gone once the test ends), unless it
    /// exits 0.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.tartlab(args);
        assert_eq!(
            out.code,
            0,
            "tartlab {args:?}\nstdout:\n{}\nstderr:\n{}\n{}",
            out.stdout,
            out.stderr,
            self.transcript_tails()
        );
        out
    }

    /// The last lines of every provisioning transcript in the lab's `.tartlab/logs`.
    pub fn transcript_tails(&self) -> String {
        let mut shown = String::new();
        let Ok(entries) = std::fs::read_dir(self.lab.join(".tartlab/logs")) else {
            return shown;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            shown.push_str(&format!("--- end of {}:\n{tail}\n", path.display()));
        }
        shown
    }

    /// Runs `tartlab up` and fails the test unless it exits 0 with all `n` nodes ok.
    pub fn up_all_ok(&self, n: usize) -> Out {
        let out = self.ok(&["up"]);
        let nodes = if n == 1 { "node" } else { "nodes" };
        let expected = format!("up: {n} of {n} {nodes} ok");
        assert!(out.stdout.contains(&expected), "{}", out.stdout);
        out
    }

    pub fn tart(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(tart_sim());
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap().into()
    }

    /// Local VMs as `tart list --format json` shows them: (name, running).
    pub fn vms(&self) -> Vec<(String, bool)> {
        let out = self.tart(&["list", "--format", "json", "--source", "local"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        let mut vms: Vec<(String, bool)> = list
            .iter()
            .map(|v| {
                (
                    v["Name"].as_str().unwrap().to_string(),
                    v["Running"].as_bool().unwrap(),
                )
            })
            .collect();
        vms.sort();
        vms
    }

    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.lab.join(".tartlab/state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn ip(&self, vm: &str) -> String {
        self.state()["vms"][vm]["ip"].as_str().unwrap().to_string()
    }

    pub fn mac(&self, vm: &str) -> String {
        let text =
            std::fs::read_to_string(self.home.join("vms").join(vm).join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        config["macAddress"].as_str().unwrap().to_string()
    }

    /// The system ssh as `user` with `key`, checking the host key pinned for `vm`.
    pub fn ssh_with(&self, key: &Path, user: &str, vm: &str, command: &str) -> Out {
        Command::new("ssh")
            .args(["-i", &key.display().to_string()])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args([
                "-o",
                &format!(
                    "UserKnownHostsFile={}",
                    self.lab.join(".tartlab/known_hosts").display()
                ),
            ])
            .args([
                "-o",
                &format!("HostKeyAlias={vm}"),
                "-o",
                "LogLevel=error",
                "-o",
                "ConnectTimeout=10",
            ])
            .arg(format!("{user}@{}", self.ip(vm)))
            .arg(command)
            .output()
            .unwrap()
            .into()
    }

    /// The system ssh with the lab key as the image's user.
    pub fn ssh(&self, vm: &str, command: &str) -> Out {
        self.ssh_with(&self.lab.join(".tartlab/id_ed25519"), "admin", vm, command)
    }

    /// How many times `tart run VM` was started.
    pub fn boots(&self, vm: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(&format!("run {vm} ")) || **c == format!("run {vm}"))
            .count()
    }

    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.tart_calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The text of every file under `.tartlab/` except those named in `except`.
    pub fn tartlab_files_text(&self, except: &[&str]) -> String {
        let mut text = String::new();
        let mut dirs = vec![self.lab.join(".tartlab")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    dirs.push(path);
                } else if !except.contains(&name.as_str()) {
                    text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
        }
        text
    }

    /// Every event in `.tartlab/events.jsonl` so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.lab.join(".tartlab/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for the first event at index `from` or later that `wanted` accepts, while `child`
    /// (the command that writes them) runs; returns its index. Fails the test if the child
    /// ends first. The deadline only keeps a broken run from hanging the suite.
    pub fn wait_for_event(
        &self,
        child: &mut std::process::Child,
        from: usize,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(i) = self.events().iter().skip(from).position(&wanted) {
                return from + i;
            }
            if let Some(status) = child.try_wait().unwrap() {
                // It may have written the event and ended since the look above.
                if let Some(i) = self.events().iter().skip(from).position(&wanted) {
                    return from + i;
                }
                panic!(
                    "the command ended ({status}) before {what}; events: {:#?}",
                    self.events()
                );
            }
            assert!(std::time::Instant::now() < deadline, "no event {what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Live processes whose command line mentions this lab's TART_HOME.
    pub fn processes(&self) -> Vec<String> {
        processes_mentioning(&self.home)
    }

    pub fn mounts(&self) -> Vec<String> {
        let needle = self.home.display().to_string();
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(tart_sim())
            .arg("reap")
            .env("TART_HOME", &self.home)
            .output();
    }
}

/// Processes whose command line or environment mentions `needle`, zombies excepted.
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            if stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
            {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let environ = String::from_utf8_lossy(&environ);
            (cmdline.contains(&needle) || environ.contains(&needle)).then_some(cmdline)
        })
        .collect()
}

/// Stops a process where it is (SIGSTOP), so a second actor runs while the first stays in the
/// stage it reported; `thaw` lets it go on.
pub fn freeze(child: &std::process::Child) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) }, 0);
}

pub fn thaw(child: &std::process::Child) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGCONT) }, 0);
}

/// Whether an event is a node's (or the lab's) `stage` event with `status`.
pub fn is_event(event: &serde_json::Value, stage: &str, status: &str) -> bool {
    event["stage"] == stage && event["status"] == status
}

/// The key a guest serves now, as `ssh-keyscan` sees it (type and base64).
pub fn served_key(ip: &str) -> String {
    let out = std::process::Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-T", "5", ip])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap_or("");
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `tartlab ARGS` on a terminal (util-linux `script` gives it a pty for stdin, stdout and
/// stderr, and not CI), `input` typed at it. `script` comes with util-linux (Debian's
/// essential bsdutils): a machine without it fails the test rather than skipping it.
pub fn on_a_terminal(lab: &Lab, args: &str, input: &str) -> Out {
    on_a_terminal_with(lab, args, input, &[])
}

/// `on_a_terminal` with NO_COLOR set, so the screen is plain text.
pub fn on_a_terminal_no_color(lab: &Lab, args: &str, input: &str) -> Out {
    on_a_terminal_with(lab, args, input, &[("NO_COLOR", "1")])
}

fn on_a_terminal_with(lab: &Lab, args: &str, input: &str, env: &[(&str, &str)]) -> Out {
    use std::io::Write;
    let found = Command::new("script").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "no util-linux `script` to give tartlab a terminal: apt-get install bsdutils"
    );
    let line = format!("'{}' {args}", env!("CARGO_BIN_EXE_tartlab"));
    let mut cmd = Command::new("script");
    lab.env(&mut cmd);
    cmd.envs(env.iter().copied())
        .env_remove("CI")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}
