//! Test harness: a private `TART_HOME` and a private PATH on which tart-sim answers to the
//! name `tart`, as tartlab's own tests will use it. Dropping it reaps every VM it started.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Sim {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    bin: PathBuf,
}

/// Guests need namespaces and mounts. These tests fail (never skip) without root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (namespaces and mounts); CI runs as root"
    );
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// `softnet` on the private PATH: a script running tart-sim under that name (a file of its
/// own, so a test may set its SUID bit as a user would set the real one's).
pub fn install_softnet(bin: &Path, sim: &Path) {
    let script = bin.join("softnet");
    std::fs::write(
        &script,
        format!("#!/bin/bash\nexec -a softnet '{}' \"$@\"\n", sim.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
}

impl Sim {
    pub fn new() -> Sim {
        let dir = tempfile::Builder::new()
            .prefix("tart-sim-test")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tart-sim"), bin.join("tart")).unwrap();
        install_softnet(&bin, Path::new(env!("CARGO_BIN_EXE_tart-sim")));
        let home = dir.path().join("home");
        Sim { dir, home, bin }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("tart"));
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.args(args)
            .env("PATH", path)
            .env("TART_HOME", &self.home)
            .env("TART_SIM_BOOT_MS", "400")
            .env("TART_SIM_PULL_MS", "50")
            .env("TART_SIM_LOCK_MS", "100")
            .env("CI", "true")
            .env_remove("TART_SIM_FAULTS")
            .stdin(Stdio::null());
        cmd
    }

    pub fn tart(&self, args: &[&str]) -> Out {
        self.command(args).output().unwrap().into()
    }

    /// `tart ...` that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.tart(args);
        assert_eq!(out.code, 0, "tart {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Starts `tart run NAME --no-graphics` in its own process group, output to a log.
    pub fn start(&self, name: &str) -> RunningVm {
        self.start_with(name, &[])
    }

    /// `start`, with more `tart run` flags (network modes).
    pub fn start_with(&self, name: &str, flags: &[&str]) -> RunningVm {
        let log = std::fs::File::create(self.run_log(name)).unwrap();
        let mut args = vec!["run", name, "--no-graphics"];
        args.extend_from_slice(flags);
        let mut cmd = self.command(&args);
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        RunningVm(cmd.spawn().unwrap())
    }

    pub fn run_log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.run.log"))
    }

    pub fn clone_image(&self, name: &str) {
        self.ok(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", name]);
    }

    /// Clones, runs and waits for an IP; returns the `tart run` child and the IP.
    pub fn boot(&self, name: &str) -> (RunningVm, String) {
        self.clone_image(name);
        self.ok(&["set", name, "--random-mac"]);
        let child = self.start(name);
        let ip = self.ok(&["ip", name, "--wait", "30"]).trim().to_string();
        wait_for_port(&ip);
        (child, ip)
    }

    pub fn vm_dir(&self, name: &str) -> PathBuf {
        self.home.join("vms").join(name)
    }

    /// The private PATH's directory (where `tart` and `softnet` are).
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_tart-sim"))
            .arg("reap")
            .env("TART_HOME", &self.home)
            .output();
    }
}

/// Waits until sshd answers on IP:22.
pub fn wait_for_port(ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: std::net::SocketAddr = format!("{ip}:22").parse().unwrap();
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sshd never answered on {addr}");
}

/// Runs a command over SSH as admin/admin with the system ssh and sshpass.
pub fn ssh(ip: &str, command: &str) -> Out {
    Command::new("sshpass")
        .args(["-p", "admin", "ssh"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
        .arg(format!("admin@{ip}"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

/// A `tart run` process started by a test. Dropping it kills and reaps it.
pub struct RunningVm(Child);

impl RunningVm {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Kills `tart run` with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `tart run` to exit, at most `secs`; returns its exit code.
pub fn wait_exit(vm: &mut RunningVm, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = vm.0.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "process did not exit in {secs}s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `/proc` directories of the live processes (a zombie is gone already: only its parent
/// has yet to read its status).
fn live_processes() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join("stat")).is_ok_and(|stat| {
                !stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, r)| r.starts_with('Z'))
            })
        })
        .collect()
}

/// Processes whose command line mentions `needle` (e.g. a VM's guest directory).
pub fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.display().to_string();
    live_processes()
        .into_iter()
        .filter_map(|p| {
            let cmdline = std::fs::read(p.join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect()
}

impl Sim {
    /// New images of this home are systemd guests (the knob in `$TART_HOME/sim/guest`).
    pub fn with_systemd_guests(self) -> Sim {
        std::fs::create_dir_all(self.home.join("sim")).unwrap();
        std::fs::write(self.home.join("sim/guest"), "systemd\n").unwrap();
        self
    }
}

/// The name of a home's cgroup under `tart-sim/`, as tart-sim derives it (network.rs
/// `home_id`: FNV-1a of the canonical TART_HOME, 48 bits in hex), so that a test looks only
/// at its own home's guests, never at another suite's or a killed run's.
pub fn home_cgroup(home: &Path) -> String {
    let path = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.display().to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// Processes in the cgroup of this home's VM `vm` (or under it): what a guest leaves behind
/// if its processes outlive the VM.
pub fn processes_in_vm_cgroup(home: &Path, vm: &str) -> Vec<String> {
    let own = format!("/tart-sim/{}/{vm}", home_cgroup(home));
    live_processes()
        .into_iter()
        .filter_map(|p| {
            let cgroup = std::fs::read_to_string(p.join("cgroup")).ok()?;
            let inside = cgroup.lines().any(|l| {
                l.starts_with("0::") && (l.ends_with(&own) || l.contains(&format!("{own}/")))
            });
            let comm = std::fs::read_to_string(p.join("comm")).ok()?;
            inside.then(|| format!("{} {}", p.display(), comm.trim()))
        })
        .collect()
}
