//! Softnet, as tart runs it and as it checks its privileges. tart (`Sources/tart/Network/
//! Softnet.swift`) finds `softnet` in PATH and starts it as `softnet --vm-fd 0
//! --vm-mac-address MAC [--vm-net-type host] [--allow ...] [--block ...]`; only when its stdout
//! is a terminal does it first offer to set the SUID bit with sudo. Softnet (`src/main.rs`)
//! needs root: SUID root on its binary, or passwordless sudo, which it probes with
//! `sudo -n softnet ... --sudo-escalation-probing` and then uses; without either it prints
//! `root privileges are required to run and passwordless sudo was not available` and exits 1,
//! and tart's VM stops with `Softnet process terminated prematurely`.
//!
//! Everything here runs as root on the test machine, so "has root" cannot mean the effective
//! uid: it means what a Mac user's softnet would have, SUID root on the `softnet` that PATH
//! finds (symlinks resolved, as tart resolves them), or a `sudo -n` that works.

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::failure::Failure;
use crate::network::Mode;

/// `softnet` as PATH finds it.
fn on_path() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("softnet"))
        .find(|p| p.is_file())
}

/// `softnet` as PATH finds it, symlinks resolved (the file whose SUID bit counts).
pub fn locate() -> Option<PathBuf> {
    on_path().map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

fn suid_root(path: &PathBuf) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.uid() == 0 && m.mode() & libc::S_ISUID != 0)
}

/// tart's `configureSUIDBitIfNeeded`, when `tart run`'s stdout is a terminal: SUID set, or
/// passwordless sudo, or ask for the password and set the bit.
fn configure_interactively(path: &PathBuf) -> Result<(), Failure> {
    if suid_root(path) {
        return Ok(());
    }
    let probe = Command::new("sudo")
        .args(["--non-interactive", "softnet", "--help"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if probe.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    eprintln!("Softnet requires a Sudo password to set the SUID bit on the Softnet executable, please enter it below.");
    let script = format!("chown root {0} && chmod u+s {0}", path.display());
    let done = Command::new("sudo")
        .args(["sh", "-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    if done {
        Ok(())
    } else {
        Err(Failure::generic(
            "Softnet failed: failed to configure SUID bit on Softnet executable with Sudo".into(),
        ))
    }
}

/// A running Softnet and `tart run`'s end of the socket pair it serves the VM through:
/// when `tart run` dies, the pair closes and Softnet ends.
pub struct Softnet {
    pub process: Child,
    _vm_side: UnixStream,
}

impl Softnet {
    /// What tart does when the VM stops: interrupt Softnet, and wait for it.
    pub fn stop(self) {
        let Softnet {
            mut process,
            _vm_side,
        } = self;
        drop(_vm_side);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(process.id() as i32, libc::SIGINT) };
        let _ = process.wait();
    }
}

/// Starts Softnet for a VM, as `tart run` does before the VM starts.
pub fn start(mode: &Mode, mac: &str) -> Result<Softnet, Failure> {
    let (Some(path), Some(resolved)) = (on_path(), locate()) else {
        return Err(Failure::prefixed(
            "InitializationFailed(why: \"softnet not found in PATH\")".into(),
        ));
    };
    if std::io::stdout().is_terminal() {
        configure_interactively(&resolved)?;
    }
    let mut args: Vec<String> = vec![
        "--vm-fd".into(),
        "0".into(),
        "--vm-mac-address".into(),
        mac.into(),
    ];
    if let Mode::Softnet {
        allow,
        block,
        host_only,
    } = mode
    {
        if *host_only {
            args.extend(["--vm-net-type".into(), "host".into()]);
        }
        if !allow.is_empty() {
            args.extend(["--allow".into(), allow.join(",")]);
        }
        if !block.is_empty() {
            args.extend(["--block".into(), block.join(",")]);
        }
    }
    let (vm_side, softnet_side) = UnixStream::pair().map_err(|e| {
        Failure::prefixed(format!(
            "InitializationFailed(why: \"socketpair() failed: {e}\")"
        ))
    })?;
    let mut cmd = Command::new(&path);
    cmd.arg0("softnet")
        .args(&args)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(softnet_side)));
    // SAFETY: prctl is async-signal-safe; Softnet dies with its `tart run`.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let process = cmd
        .spawn()
        .map_err(|e| Failure::prefixed(format!("InitializationFailed(why: \"{e}\")")))?;
    Ok(Softnet {
        process,
        _vm_side: vm_side,
    })
}

/// The simulator invoked as `softnet`: checks that it would have root, then runs until
/// tart stops it.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("Usage: softnet [OPTIONS] --vm-fd <VM_FD> --vm-mac-address <VM_MAC_ADDRESS>");
        return 0;
    }
    if args.iter().any(|a| a == "--sudo-escalation-probing") {
        return 0;
    }
    let escalated = args.iter().any(|a| a == "--sudo-escalation-done");
    let has_root = escalated || locate().is_some_and(|p| suid_root(&p));
    if !has_root {
        let me = on_path()
            .map(PathBuf::into_os_string)
            .unwrap_or_else(|| OsString::from("softnet"));
        let probe = Command::new("sudo")
            .arg("-n")
            .arg(&me)
            .args(args)
            .arg("--sudo-escalation-probing")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if probe {
            let error = Command::new("sudo")
                .arg("--non-interactive")
                .arg(&me)
                .args(args)
                .arg("--sudo-escalation-done")
                .exec();
            eprintln!("{error}");
        }
        eprintln!("root privileges are required to run and passwordless sudo was not available");
        return 1;
    }
    // The packet filter is the simulator's nftables rules (network.rs); Softnet itself only
    // lives as long as its VM: until `tart run`'s end of the pair (our stdin) closes.
    let mut buf = [0u8; 4096];
    loop {
        match std::io::stdin().read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
    }
}
