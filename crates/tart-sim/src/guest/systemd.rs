//! The systemd guest kind: a Debian root with systemd as PID 1, booted by
//! `systemd-nspawn` on copy-on-write layers kept in the VM's `guest/` directory
//! (`boot-systemd.sh`), so that provisioning meets `ssh.socket`, `systemd-hostnamed` and a
//! real machine-id as on the cirruslabs Ubuntu image.
//!
//! `tart run` starts a keeper (`tart-sim __guest-keeper`), which starts the guest in the
//! VM's cgroup and answers for it: SIGUSR2 asks it to shut down (SIGTERM to nspawn, which
//! powers systemd off); a poweroff or a reboot from inside (nspawn's exit code 133) ends the
//! VM, as on Virtualization.framework, which has no guest reset; when the guest ends, or
//! `tart run` dies (the keeper's parent-death signal), every process of the VM's cgroup is
//! killed (`cgroup.kill`), so nothing outlives the VM.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::failure::Failure;

const BOOT_SCRIPT: &str = include_str!("boot-systemd.sh");

/// Where the Debian root lives: `TART_SIM_SYSTEMD_ROOT`, else the one
/// `scripts/install-deps.sh` builds.
pub fn root() -> PathBuf {
    std::env::var_os("TART_SIM_SYSTEMD_ROOT")
        .filter(|r| !r.is_empty())
        .map_or_else(
            || PathBuf::from("/var/cache/tart-sim/debian-bookworm-systemd-v2"),
            PathBuf::from,
        )
}

fn checked_root() -> Result<PathBuf, Failure> {
    let root = root();
    if root.join("usr/lib/systemd/systemd").exists() || root.join("lib/systemd/systemd").exists() {
        Ok(root)
    } else {
        Err(Failure::generic(format!(
            "tart-sim: systemd guests need the Debian root at {} (scripts/install-deps.sh builds it; TART_SIM_SYSTEMD_ROOT points elsewhere)",
            root.display()
        )))
    }
}

/// `unshare --mount bash GUEST_DIR/boot-systemd.sh ...`: the script, written next to the
/// layers on every use, mounts the root in a mount namespace of its own.
fn script_command(guest_dir: &Path) -> io::Result<Command> {
    let script = guest_dir.join("boot-systemd.sh");
    fs::write(&script, BOOT_SCRIPT)?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--"]).arg("/bin/bash").arg(script);
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    cmd.current_dir(guest_dir);
    Ok(cmd)
}

/// The image's first-boot state in its upper layer: admin account, hostname, host keys,
/// machine-id, shared by every clone.
pub fn setup_image(guest_dir: &Path, hostname: &str) -> Result<(), Failure> {
    let root = checked_root()?;
    fs::create_dir_all(guest_dir).map_err(|e| Failure::generic(e.to_string()))?;
    let mut cmd =
        script_command(guest_dir).map_err(|e| Failure::generic(format!("tart-sim: {e}")))?;
    cmd.arg("setup").arg(guest_dir).arg(&root).arg(hostname);
    super::run_setup(cmd, "systemd image setup failed")
}

/// The guest's hostname as its root has it.
pub fn hostname(guest_dir: &Path) -> Option<String> {
    fs::read_to_string(guest_dir.join("sys-upper/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
}

/// Starts the keeper, which boots the guest; the returned child is the keeper.
pub fn boot(
    guest_dir: &Path,
    vm: &str,
    ip: &str,
    sshd: (Option<u64>, &str),
    cgroup_dir: &Path,
) -> io::Result<Child> {
    let (sshd_delay, sshd_quirk) = sshd;
    let root = checked_root().map_err(|f| io::Error::other(format!("{f:?}")))?;
    let console = super::open_console(guest_dir)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("__guest-keeper")
        .arg(cgroup_dir)
        .arg(guest_dir)
        .arg(&root)
        .arg(vm)
        .arg(ip)
        .arg(super::sshd_delay_arg(sshd_delay))
        .arg(sshd_quirk)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Its own process group: a Ctrl-C meant for `tart run` must not reach it.
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    cmd.spawn()
}

/// Asks the guest to shut down, as the VM's power button would.
pub fn request_stop(keeper: &Child) {
    // SAFETY: signalling our own keeper.
    unsafe { libc::kill(keeper.id() as i32, libc::SIGUSR2) };
}

/// Ends the guest at once (every process of its cgroup) and waits for the keeper.
pub fn power_off(mut keeper: Child) {
    // SAFETY: signalling our own keeper, which kills the VM's cgroup and exits.
    unsafe { libc::kill(keeper.id() as i32, libc::SIGTERM) };
    for _ in 0..500 {
        if let Ok(Some(_)) = keeper.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = keeper.kill();
    let _ = keeper.wait();
}

/// Kills every process of a cgroup and its children, and waits (at most 5 s) until none
/// is left.
pub fn kill_cgroup(dir: &Path) {
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    for _ in 0..500 {
        if !has_processes(dir) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn has_processes(dir: &Path) -> bool {
    if fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()) {
        return true;
    }
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .any(|e| has_processes(&e.path()))
    })
}

/// `tart-sim __guest-keeper CGROUP GUEST_DIR ROOT VM IP DELAY QUIRK`: keeps one VM's guest (see
/// the module's doc). Returns its exit code: the guest's.
pub fn keeper_main(args: &[String]) -> i32 {
    let [cgroup, guest_dir, root, vm, ip, delay, quirk] = args else {
        eprintln!("tart-sim: __guest-keeper CGROUP GUEST_DIR ROOT VM IP DELAY QUIRK");
        return 64;
    };
    let cgroup = PathBuf::from(cgroup);
    // SAFETY: plain signal-mask and prctl calls on this process.
    let signals = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // SAFETY: getppid has no preconditions. `tart run` died before the death signal was set.
    if unsafe { libc::getppid() } == 1 {
        return 1;
    }
    let procs =
        match std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()) {
            Ok(p) => p,
            Err(_) => return 1,
        };
    let Ok(mut cmd) = script_command(Path::new(guest_dir)) else {
        return 1;
    };
    cmd.args(["boot", guest_dir, root, vm, ip, delay, quirk]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            super::join_cgroup(&procs)
        });
    }
    let Ok(mut guest) = cmd.spawn() else {
        return 1;
    };
    // A poweroff (exit 0) or a reboot (133) from inside ends the VM, as on
    // Virtualization.framework, which has no guest reset: tart only hears that the guest
    // stopped.
    let code = loop {
        if let Ok(Some(status)) = guest.try_wait() {
            break status.code().unwrap_or(1);
        }
        match super::wait_signal(&signals, Duration::from_millis(100)) {
            Some(libc::SIGUSR2) => {
                // SAFETY: the guest is nspawn (exec'd by the script): SIGTERM makes it power
                // systemd off in order.
                unsafe { libc::kill(guest.id() as i32, libc::SIGTERM) };
            }
            Some(libc::SIGTERM) => {
                kill_cgroup(&cgroup);
                let _ = guest.wait();
                return 0;
            }
            _ => {}
        }
    };
    kill_cgroup(&cgroup);
    if code == 133 {
        0
    } else {
        code
    }
}
