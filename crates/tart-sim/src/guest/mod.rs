//! A simulated VM's guest, of one of two kinds, chosen when the image is made and kept by
//! each VM made from it (`guest/kind`):
//! - light (the default): a sandbox of mount, UTS and PID namespaces whose root is made of
//!   copy-on-write layers over the host's own system, kept in the VM's `guest/` directory,
//!   running OpenSSH's sshd on the VM's own 127.x address (`boot.sh`);
//! - systemd: a Debian root booted by systemd-nspawn with systemd as PID 1 (`systemd.rs`).
//!
//! The crate README's "The guests" says how they differ from a cirruslabs VM.

pub mod systemd;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::failure::Failure;

const BOOT_SCRIPT: &str = include_str!("boot.sh");

/// Host directories the guests see through overlays (see `boot.sh`). Their layers cannot
/// live inside them.
const OVERLAID: &[&str] = &["/usr", "/etc", "/var", "/opt"];

/// `unshare ... bash GUEST_DIR/boot.sh`. The script is written next to the guest's layers
/// on every start, so a VM always boots with the simulator's current script.
fn unshare_command(guest_dir: &Path) -> io::Result<Command> {
    let real = fs::canonicalize(guest_dir.parent().unwrap_or(guest_dir))?;
    if let Some(dir) = OVERLAID.iter().find(|d| real.starts_with(d)) {
        return Err(io::Error::other(format!(
            "TART_HOME must not be under {dir}: the guests overlay it (VM directory {})",
            real.display()
        )));
    }
    let script = guest_dir.join("boot.sh");
    fs::write(&script, BOOT_SCRIPT)?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--uts", "--mount", "--pid", "--fork", "--kill-child", "--"])
        .arg("/bin/bash")
        .arg(script);
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    cmd.current_dir(guest_dir);
    Ok(cmd)
}

/// The two kinds of guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Light,
    Systemd,
}

impl Kind {
    /// The kind new images of this home get: `TART_SIM_GUEST` (`light` or `systemd`), else
    /// the word in `$TART_HOME/sim/guest`, else light.
    pub fn for_new_images(home: &crate::storage::Home) -> Kind {
        let word = std::env::var("TART_SIM_GUEST")
            .ok()
            .filter(|w| !w.is_empty())
            .or_else(|| fs::read_to_string(home.sim_dir().join("guest")).ok())
            .unwrap_or_default();
        if word.trim() == "systemd" {
            Kind::Systemd
        } else {
            Kind::Light
        }
    }

    /// The kind a VM's guest was made as.
    pub fn of(guest_dir: &Path) -> Kind {
        match fs::read_to_string(guest_dir.join("kind")) {
            Ok(word) if word.trim() == "systemd" => Kind::Systemd,
            _ => Kind::Light,
        }
    }
}

/// The guest's hostname as its root has it (for its DHCP lease).
pub fn hostname(guest_dir: &Path) -> Option<String> {
    match Kind::of(guest_dir) {
        Kind::Systemd => systemd::hostname(guest_dir),
        Kind::Light => fs::read_to_string(guest_dir.join("upper/etc/hostname"))
            .ok()
            .map(|h| h.trim().to_string()),
    }
}

/// Fills `guest_dir` with an image's first-boot state: the `admin` account, hostname,
/// SSH host keys and machine-id that every clone of the image will share.
pub fn setup_image(guest_dir: &Path, hostname: &str, kind: Kind) -> Result<(), Failure> {
    fs::create_dir_all(guest_dir).map_err(|e| Failure::generic(e.to_string()))?;
    let word = if kind == Kind::Systemd {
        "systemd"
    } else {
        "light"
    };
    fs::write(guest_dir.join("kind"), format!("{word}\n"))
        .map_err(|e| Failure::generic(e.to_string()))?;
    if kind == Kind::Systemd {
        return systemd::setup_image(guest_dir, hostname);
    }
    let mut cmd =
        unshare_command(guest_dir).map_err(|e| Failure::generic(format!("tart-sim: {e}")))?;
    cmd.arg("setup").arg(guest_dir).arg(hostname);
    run_setup(
        cmd,
        "image setup failed (root is needed for namespaces and mounts)",
    )
}

/// Runs an image's setup script; its stderr says why it failed.
pub(crate) fn run_setup(mut cmd: Command, failed: &str) -> Result<(), Failure> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::generic(format!("tart-sim: cannot run unshare: {e}")))?;
    if !out.status.success() {
        return Err(Failure::generic(format!(
            "tart-sim: {failed}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The VM's console log, where the guest's init and sshd write (appended at each boot).
pub fn open_console(guest_dir: &Path) -> io::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(guest_dir.join("console.log"))
}

/// The boot scripts' sshd delay argument: milliseconds, or `never` (the fault `no-sshd`).
pub fn sshd_delay_arg(sshd_delay: Option<u64>) -> String {
    sshd_delay.map_or("never".to_string(), |ms| ms.to_string())
}

/// Boots the guest in the cgroup whose `cgroup.procs` is given (the network rules match
/// it). The returned child is the `unshare` process; it dies with the calling thread
/// (PDEATHSIG) and takes every guest process with it (`--kill-child`).
pub fn boot(
    guest_dir: &Path,
    ip: &str,
    sshd_delay: Option<u64>,
    sshd_quirk: &str,
    cgroup_procs: &Path,
) -> io::Result<Child> {
    let procs = std::ffi::CString::new(cgroup_procs.as_os_str().as_encoded_bytes())
        .map_err(io::Error::other)?;
    let console = open_console(guest_dir)?;
    let mut cmd = unshare_command(guest_dir)?;
    cmd.arg("boot")
        .arg(guest_dir)
        .arg(ip)
        .arg(sshd_delay_arg(sshd_delay))
        .arg(sshd_quirk)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Its own process group: a Ctrl-C meant for `tart run` must not reach the guest.
            libc::setpgid(0, 0);
            join_cgroup(&procs)
        });
    }
    cmd.spawn()
}

/// Waits (at most `timeout`) for one of the blocked signals in `set`.
pub(crate) fn wait_signal(set: &libc::sigset_t, timeout: std::time::Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set and timespec; no siginfo requested.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Moves the calling process into a cgroup (async-signal-safe: for `pre_exec`).
pub(crate) fn join_cgroup(procs: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: open, write and close on a C string we own; no allocation.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if written != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Ends the guest at once and returns when none of its processes is left.
pub fn power_off(mut unshare: Child) {
    let init = init_under(unshare.id() as i32);
    let _ = unshare.kill();
    let _ = unshare.wait();
    if let Some(init) = init {
        wait_gone(init);
    }
}

/// Waits (at most 2 s) until a guest's init is dead. The kernel kills the whole PID
/// namespace when its init dies, so then no guest process is left.
pub fn wait_gone(init: i32) {
    for _ in 0..200 {
        let alive = fs::read_to_string(format!("/proc/{init}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        });
        if !alive {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Parent pid of a process, from `/proc/PID/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

/// The host pid of the guest's init (PID 1 inside), found under the `tart run` process:
/// run -> unshare -> init for a light guest, run -> keeper -> systemd-nspawn -> systemd for
/// a systemd guest.
pub fn init_pid(run_pid: i32) -> Option<i32> {
    let comm = |p: i32| fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    let mut queue = vec![run_pid];
    let mut seen = 0;
    while let Some(pid) = queue.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        for child in children_of(pid) {
            match comm(child).trim() {
                "systemd-nspawn" => return children_of(child).into_iter().next(),
                "unshare" if pid == run_pid => {
                    if let Some(init) = init_under(child) {
                        if comm(init).trim() != "systemd-nspawn" {
                            return Some(init);
                        }
                    }
                    queue.push(child);
                }
                _ => queue.push(child),
            }
        }
    }
    None
}

/// The guest's init: the one child of the `unshare` process.
pub fn init_under(unshare: i32) -> Option<i32> {
    children_of(unshare).into_iter().next()
}

/// The environment the Tart Guest Agent's commands get (systemd unit, `User=admin`).
fn agent_env() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/home/admin"),
        ("USER", "admin"),
        ("LOGNAME", "admin"),
        ("SHELL", "/bin/bash"),
    ]
}

/// Whether `program` resolves to an executable inside the guest whose root is `root`.
fn guest_has_program(root: &Path, program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: PathBuf| {
        fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return is_exec(root.join(program.trim_start_matches('/')));
    }
    agent_env()[0]
        .1
        .split(':')
        .any(|dir| is_exec(root.join(dir.trim_start_matches('/')).join(program)))
}

/// Runs `argv` in the guest as `admin`, without a shell, like the guest agent; returns the
/// guest command's exit code.
pub fn exec(
    init: i32,
    argv: &[String],
    interactive: bool,
    cgroup_procs: &Path,
) -> Result<i32, Failure> {
    let procs = std::ffi::CString::new(cgroup_procs.as_os_str().as_encoded_bytes())
        .map_err(|e| Failure::generic(e.to_string()))?;
    let root = PathBuf::from(format!("/proc/{init}/root"));
    if !guest_has_program(&root, &argv[0]) {
        return Err(Failure::prefixed(format!(
            "exec: \"{}\": executable file not found in $PATH",
            argv[0]
        )));
    }
    let mut cmd = Command::new("nsenter");
    cmd.env_clear()
        .envs(agent_env())
        .arg(format!("--target={init}"))
        // A bare --wd takes the guest init's working directory: `/` inside the guest.
        .args(["--mount", "--uts", "--pid", "--root", "--wd"])
        .args([
            "setpriv",
            "--reuid=admin",
            "--regid=admin",
            "--init-groups",
            "--",
        ])
        .args(argv.iter().map(OsString::from));
    if !interactive {
        cmd.stdin(Stdio::null());
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || join_cgroup(&procs));
    }
    let status = cmd
        .status()
        .map_err(|e| Failure::generic(format!("tart-sim: cannot run nsenter: {e}")))?;
    Ok(status.code().unwrap_or(255))
}
