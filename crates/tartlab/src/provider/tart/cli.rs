//! The `tart` command line, driven as tart 2.31 really behaves (crates/tart-sim/README.md
//! lists the behaviour, from tart's source): JSON with random key order, `tart run` that
//! blocks and must be detached, exit codes that differ per command. Every call says what it
//! ran and shows tart's own last words on failure.
//!
//! Over 500 lines, for a reason: a third of it is the unit tests of tart's outputs.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// The oldest tart whose command line tartlab has been written against.
pub const MINIMUM_VERSION: (u32, u32) = (2, 0);

/// A tart command that failed: what ran, how it ended, and what tart said.
#[derive(Debug, Clone)]
pub struct TartError {
    pub command: String,
    pub code: Option<i32>,
    pub output: String,
}

impl fmt::Display for TartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` exited with {code}", self.command)?,
            None => write!(f, "`{}` could not run or was killed", self.command)?,
        }
        let tail = last_lines(&self.output, 5);
        if !tail.is_empty() {
            write!(f, ":\n{tail}")?;
        }
        Ok(())
    }
}

pub use crate::text::last_lines;

/// One row of `tart list --format json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListEntry {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Source")]
    pub source: String,
    /// Kept by tart only "for backwards-compatibility"; `State` is what it means now.
    #[serde(rename = "Running", default)]
    running: Option<bool>,
    /// `running`, `suspended` or `stopped`.
    #[serde(rename = "State", default)]
    state: Option<String>,
    /// The disk's apparent size in whole GB (for an image: what every clone starts with).
    #[serde(rename = "Disk", default)]
    pub disk: Option<u64>,
    /// What it takes on the host's disk (allocated bytes) in whole GB.
    #[serde(rename = "Size", default)]
    pub size: Option<u64>,
}

impl ListEntry {
    pub fn is_local(&self) -> bool {
        self.source == "local"
    }

    /// Whether the VM runs: `State`, else the older `Running`.
    pub fn is_running(&self) -> bool {
        match &self.state {
            Some(state) => state == "running",
            None => self.running.unwrap_or(false),
        }
    }
}

/// The parts of `tart get --format json` tartlab reads.
#[derive(Debug, Clone, Deserialize)]
pub struct VmSettings {
    #[serde(rename = "CPU")]
    pub cpu: u32,
    #[serde(rename = "Memory")]
    pub memory: u32,
}

/// How `tart ip` finds an address: the host's DHCP lease file (tart's default), the guest
/// agent, or the host's ARP cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    Dhcp,
    Agent,
    Arp,
}

impl Resolver {
    pub fn name(self) -> &'static str {
        match self {
            Resolver::Dhcp => "dhcp",
            Resolver::Agent => "agent",
            Resolver::Arp => "arp",
        }
    }
}

/// Where tart is, and where it keeps its VMs.
#[derive(Debug, Clone)]
pub struct Tart {
    pub program: PathBuf,
    pub home: PathBuf,
    /// The lab lock, inherited by the commands `output` runs.
    pub lock: Option<crate::state::LockShare>,
}

/// Why tart was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotFound {
    /// No `tart` on PATH (and no TARTLAB_TART).
    NotOnPath,
    /// TARTLAB_TART names no file.
    NoSuchFile(PathBuf),
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotFound::NotOnPath => f.write_str("tart is not on PATH"),
            NotFound::NoSuchFile(path) => write!(f, "{} does not exist", path.display()),
        }
    }
}

impl Tart {
    /// `TARTLAB_TART`, else `tart` on PATH; `TART_HOME`, else `~/.tart`.
    pub fn locate() -> Result<Tart, NotFound> {
        let program = match std::env::var_os("TARTLAB_TART") {
            Some(p) => PathBuf::from(p),
            None => std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join("tart"))
                        .find(|p| p.is_file())
                })
                .ok_or(NotFound::NotOnPath)?,
        };
        if !program.is_file() {
            return Err(NotFound::NoSuchFile(program));
        }
        let home = match std::env::var_os("TART_HOME") {
            Some(h) => PathBuf::from(h),
            None => Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".tart"),
        };
        Ok(Tart {
            program,
            home,
            lock: None,
        })
    }

    fn describe(&self, args: &[&str]) -> String {
        format!("tart {}", args.join(" "))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// Runs tart to completion; stdout on success, a TartError otherwise. The command runs in
    /// its own process group and is never killed: tart rewrites `config.json` in place, so a
    /// `tart set` cut short by Ctrl-C would leave a VM tart can no longer read.
    pub async fn output(&self, args: &[&str]) -> Result<String, TartError> {
        let mut cmd = self.command(args);
        cmd.kill_on_drop(false).process_group(0);
        if let Some(lock) = self.lock.clone() {
            // SAFETY: fcntl on a descriptor the closure owns a share of (so it is open), in
            // the child between fork and exec. The command keeps the lab lock while it runs,
            // so a tartlab started after this one dies waits for it instead of racing it (a
            // second `tart set` on the same VM).
            unsafe {
                cmd.pre_exec(move || {
                    let fd = lock.raw_fd();
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags >= 0 {
                        libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    }
                    Ok(())
                });
            }
        }
        let result = cmd.output().await;
        let error = |code, output| TartError {
            command: self.describe(args),
            code,
            output,
        };
        match result {
            Err(e) => Err(error(None, e.to_string())),
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() {
                    Ok(stdout)
                } else {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    Err(error(out.status.code(), format!("{stdout}{stderr}")))
                }
            }
        }
    }

    /// `tart --version` as (major, minor, patch).
    pub async fn version(&self) -> Result<(u32, u32, u32), TartError> {
        let text = self.output(&["--version"]).await?;
        parse_version(&text).ok_or_else(|| TartError {
            command: "tart --version".into(),
            code: Some(0),
            output: format!("not a version: {text}"),
        })
    }

    /// Every option `tart run --help` lists, so tartlab never passes one tart lacks.
    pub async fn run_options(&self) -> Result<BTreeSet<String>, TartError> {
        Ok(parse_help_options(&self.output(&["run", "--help"]).await?))
    }

    /// Every VM and cached image (`--source` not given, so the OCI cache is included).
    pub async fn list(&self) -> Result<Vec<ListEntry>, TartError> {
        let text = self.output(&["list", "--format", "json"]).await?;
        serde_json::from_str(&text).map_err(|e| TartError {
            command: "tart list --format json".into(),
            code: Some(0),
            output: format!("unexpected output ({e}): {text}"),
        })
    }

    pub async fn get(&self, vm: &str) -> Result<VmSettings, TartError> {
        let text = self.output(&["get", vm, "--format", "json"]).await?;
        serde_json::from_str(&text).map_err(|e| TartError {
            command: format!("tart get {vm} --format json"),
            code: Some(0),
            output: format!("unexpected output ({e}): {text}"),
        })
    }

    pub fn vm_dir(&self, vm: &str) -> PathBuf {
        self.home.join("vms").join(vm)
    }

    /// The VM's MAC address, from its `config.json` (tart prints it nowhere).
    pub fn mac(&self, vm: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.vm_dir(vm).join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_str(&text).ok()?;
        super::leases::normalize_mac(config["macAddress"].as_str()?)
    }

    /// `tart run VM --no-graphics FLAGS...` in its own session, stdin closed, output appended
    /// to `log`. Not waited on and not killed when tartlab exits: the VM outlives us.
    pub fn spawn_run(&self, vm: &str, flags: &[String], log: &Path) -> std::io::Result<Child> {
        use std::io::Write;
        let mut file = crate::files::open_append(log)?;
        let mut args = vec!["run".to_string(), vm.to_string(), "--no-graphics".into()];
        args.extend(flags.iter().cloned());
        writeln!(
            file,
            "--- tartlab: tart {} (started {})",
            args.join(" "),
            crate::clock::now_rfc3339()
        )?;
        let stderr = file.try_clone()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(false);
        // SAFETY: setsid is async-signal-safe; a new session keeps the terminal's Ctrl-C
        // (and our process group's fate) away from the VM.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
    }

    /// `tart ip VM --wait SECS` as a child process, so the caller can watch `tart run` meanwhile.
    pub fn spawn_ip(&self, vm: &str, wait_secs: u16, resolver: Resolver) -> std::io::Result<Child> {
        let wait = wait_secs.to_string();
        let mut args = vec!["ip", vm, "--wait", wait.as_str()];
        if resolver != Resolver::Dhcp {
            args.extend(["--resolver", resolver.name()]);
        }
        let mut cmd = self.command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn()
    }

    /// Reads a finished `tart ip` child: the address, or tart's message.
    pub async fn ip_result(&self, vm: &str, mut child: Child) -> Result<String, TartError> {
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout).await;
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        let status = child.wait().await;
        let code = status.as_ref().ok().and_then(|s| s.code());
        let ip = stdout.trim();
        if code == Some(0) && ip.parse::<std::net::Ipv4Addr>().is_ok() {
            return Ok(ip.to_string());
        }
        Err(TartError {
            command: format!("tart ip {vm} --wait ..."),
            code,
            output: format!("{stdout}{stderr}"),
        })
    }

    /// The pull, with each percentage tart prints passed to `progress`.
    pub async fn pull(&self, image: &str, progress: impl Fn(u32)) -> Result<(), TartError> {
        let mut cmd = self.command(&["pull", image]);
        // CI makes tart print progress as new lines instead of redrawing one line.
        cmd.env("CI", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let describe = || self.describe(&["pull", image]);
        let mut child = cmd.spawn().map_err(|e| TartError {
            command: describe(),
            code: None,
            output: e.to_string(),
        })?;
        let mut stdout = child.stdout.take().ok_or_else(|| TartError {
            command: describe(),
            code: None,
            output: "no stdout".into(),
        })?;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    // Only the end is ever read (the last percentage, the last words).
                    if seen.len() > 64 * 1024 {
                        let from = seen.len() - 16 * 1024;
                        let from = (from..seen.len())
                            .find(|&i| seen.is_char_boundary(i))
                            .unwrap_or(0);
                        seen.drain(..from);
                    }
                    if let Some(p) = last_percentage(&seen) {
                        progress(p);
                    }
                }
            }
        }
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        let status = child.wait().await.map_err(|e| TartError {
            command: describe(),
            code: None,
            output: e.to_string(),
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(TartError {
                command: describe(),
                code: status.code(),
                output: format!("{seen}{stderr}"),
            })
        }
    }
}

/// `2.31.0` (perhaps with a suffix) as numbers.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split(['.', '-', '+']).map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// The options an argument-parser help text lists (`--name`, from lines that start with `-`).
pub fn parse_help_options(help: &str) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        let spec = line.split("  ").next().unwrap_or(line);
        for word in spec.split([' ', ',', '=', '<', '[']) {
            let name = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            if name.starts_with("--") && name.len() > 2 {
                options.insert(name.to_string());
            }
        }
    }
    options
}

/// The last `NN%` in tart's pull output.
fn last_percentage(text: &str) -> Option<u32> {
    text.split(['\n', '\r'])
        .rev()
        .filter_map(|line| {
            let line = line.trim();
            let digits = line.strip_suffix('%')?;
            let digits = digits.rsplit(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse::<u32>().ok().filter(|p| *p <= 100)
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_and_without_suffixes() {
        assert_eq!(parse_version("2.31.0\n"), Some((2, 31, 0)));
        assert_eq!(parse_version("2.32.1-beta"), Some((2, 32, 1)));
        assert_eq!(parse_version("2.5"), Some((2, 5, 0)));
        assert_eq!(parse_version("tart"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn help_options_are_read_from_option_lines_only() {
        let help = "OVERVIEW: Run a VM\n\nUSAGE: tart run <name> [--no-graphics]\n\nOPTIONS:\n  --no-graphics           Don't open a UI window.\n  --net-bridged <interface name>\n                          Use bridged networking --not-this\n  -h, --help              Show help information.\n";
        let options = parse_help_options(help);
        assert!(options.contains("--no-graphics"));
        assert!(options.contains("--net-bridged"));
        assert!(options.contains("--help"));
        assert!(!options.contains("--not-this"));
        assert!(!options.contains("--config"));
    }

    #[test]
    fn list_json_with_escaped_slashes_and_any_key_order_parses() {
        let text = "[\n  {\n    \"State\" : \"running\",\n    \"Name\" : \"ghcr.io\\/cirruslabs\\/ubuntu:latest\",\n    \"Running\" : true,\n    \"Source\" : \"OCI\",\n    \"Disk\" : 20, \"Size\" : 1, \"Accessed\" : \"x\"\n  }\n]";
        let list: Vec<ListEntry> = serde_json::from_str(text).unwrap();
        assert_eq!(list[0].name, "ghcr.io/cirruslabs/ubuntu:latest");
        assert!(!list[0].is_local());
        assert!(list[0].is_running());
        assert_eq!(list[0].disk, Some(20));
        let empty: Vec<ListEntry> = serde_json::from_str("[\n\n]").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn state_says_whether_a_vm_runs_and_running_is_only_a_fallback() {
        let parse = |fields: &str| -> ListEntry {
            serde_json::from_str(&format!(
                "{{\"Name\" : \"vm\", \"Source\" : \"local\"{fields}}}"
            ))
            .unwrap()
        };
        assert!(parse(", \"State\" : \"running\", \"Running\" : false").is_running());
        assert!(!parse(", \"State\" : \"suspended\", \"Running\" : true").is_running());
        assert!(parse(", \"Running\" : true").is_running(), "an older tart");
        assert!(!parse("").is_running());
    }

    #[test]
    fn the_mac_in_config_json_is_read_normalized() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("vms/vm");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            "{ \"macAddress\" : \"7E:1C:F2:4A:78:3\" }",
        )
        .unwrap();
        let tart = Tart {
            program: "/bin/false".into(),
            home: home.path().to_path_buf(),
            lock: None,
        };
        assert_eq!(tart.mac("vm").as_deref(), Some("7e:1c:f2:4a:78:03"));
    }

    /// The descriptors a child inherited, as the paths they point at (Linux's `/proc`).
    #[cfg(target_os = "linux")]
    fn inherited_paths(tart: &Tart) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(tart.output(&[])).unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn tart_children_inherit_the_lab_lock_for_as_long_as_the_command_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let lab = crate::state::StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let lock_path = lab.root.join("lock");
        let program = dir.path().join("fake-tart");
        std::fs::write(
            &program,
            "#!/bin/sh\nfor fd in /proc/$$/fd/*; do readlink \"$fd\"; done\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&program)
            .status()
            .unwrap();
        let lock = lab.lock().unwrap();
        let tart = Tart {
            program,
            home: dir.path().to_path_buf(),
            lock: Some(lock.share()),
        };
        let first = inherited_paths(&tart);
        assert!(
            first.lines().any(|l| l == lock_path.to_str().unwrap()),
            "{first}"
        );
        // The command's own handle goes away (as when a session is taken apart): the share
        // keeps the descriptor, and the lock, for the children that follow.
        drop(lock);
        // Descriptors opened meanwhile must not take the number the children get.
        let _busy: Vec<std::fs::File> = (0..8)
            .map(|i| std::fs::File::create(dir.path().join(format!("other-{i}"))).unwrap())
            .collect();
        let later = inherited_paths(&tart);
        assert!(
            later.lines().any(|l| l == lock_path.to_str().unwrap()),
            "{later}"
        );
        assert!(
            lab.lock().is_err(),
            "the lock is held while the share lives"
        );
        drop(tart);
        assert!(lab.lock().is_ok(), "and released with it");
    }

    #[test]
    fn pull_percentages_are_found_in_line_and_redraw_output() {
        assert_eq!(last_percentage("pulling disk...\n10%\n45%\n"), Some(45));
        assert_eq!(last_percentage("\r\u{1b}[K12%\r\u{1b}[K13%"), Some(13));
        assert_eq!(last_percentage("pulling manifest...\n"), None);
    }

    mod hostile_output {
        //! tart's output, as random as it may get, never panics its parsers.
        use super::super::*;
        use proptest::prelude::*;

        /// A `tart list` entry in Apple's JSON style: any key order, `/` escaped as `\/`.
        fn list_json(names: Vec<String>, order: Vec<usize>, running: bool) -> String {
            let items: Vec<String> = names
                .iter()
                .map(|name| {
                    let escaped = serde_json::to_string(name).unwrap().replace('/', "\\/");
                    let mut fields = [
                        format!("\"Name\" : {escaped}"),
                        "\"Source\" : \"local\"".to_string(),
                        format!("\"Running\" : {running}"),
                        format!(
                            "\"State\" : \"{}\"",
                            if running { "running" } else { "stopped" }
                        ),
                        "\"Disk\" : 20".to_string(),
                        "\"Accessed\" : \"2026-01-01T00:00:00Z\"".to_string(),
                    ];
                    let len = fields.len();
                    for (i, j) in order.iter().enumerate() {
                        fields.swap(i % len, j % len);
                    }
                    format!("  {{\n    {}\n  }}", fields.join(",\n    "))
                })
                .collect();
            format!("[\n{}\n]", items.join(",\n"))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn list_json_parses_in_any_key_order(
                names in proptest::collection::vec("[a-z0-9./:@-]{1,30}", 0..5),
                order in proptest::collection::vec(0usize..6, 0..6),
                running in any::<bool>(),
            ) {
                let text = list_json(names.clone(), order, running);
                let list: Vec<ListEntry> = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(list.iter().map(|e| e.name.clone()).collect::<Vec<_>>(), names);
                prop_assert!(list.iter().all(|e| e.is_running() == running && e.is_local()));
            }

            #[test]
            fn random_text_never_panics_the_parsers(text in "\\PC{0,300}") {
                let _ = parse_version(&text);
                let _ = parse_help_options(&text);
                let _ = last_percentage(&text);
                let _ = serde_json::from_str::<Vec<ListEntry>>(&text);
            }

            #[test]
            fn versions_round_trip(major in 0u32..100, minor in 0u32..100, patch in 0u32..100, suffix in "(-[a-z0-9]{1,6})?") {
                prop_assert_eq!(parse_version(&format!("{major}.{minor}.{patch}{suffix}\n")), Some((major, minor, patch)));
            }

            #[test]
            fn help_options_are_found_whatever_the_layout(
                names in proptest::collection::btree_set("[a-z][a-z-]{0,15}[a-z]", 1..8),
                indent in 0usize..6,
                value in proptest::option::of("<[a-z ]{1,10}>"),
            ) {
                let help: String = names
                    .iter()
                    .map(|n| format!("{}--{n} {}   Some help text --not-an-option\n", " ".repeat(indent), value.clone().unwrap_or_default()))
                    .collect();
                let found = parse_help_options(&format!("OVERVIEW: x\n\nOPTIONS:\n{help}"));
                for n in &names {
                    let option = format!("--{n}");
                    prop_assert!(found.contains(&option), "{} missing", option);
                }
                prop_assert!(!found.contains("--not-an-option"));
            }
        }
    }
}
