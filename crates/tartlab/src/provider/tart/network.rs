//! Networks as tart takes them: the `tart run` flags of each network mode, and whether the
//! `softnet` tart will run can run as root (tart sets that up only on a terminal, which it
//! never has under tartlab).

use super::ProviderError;
use crate::lab::NetworkMode;

/// Whether the `softnet` tart will find can run as root, as tart needs it to for the softnet
/// and host modes: SUID root (symlinks resolved, as tart resolves them), or passwordless sudo
/// (`sudo -n softnet --help`). tart sets this up only when its stdout is a terminal, which
/// it never is under tartlab; so tartlab checks before booting anything.
pub(super) fn softnet_ready() -> Result<(), ProviderError> {
    use std::os::unix::fs::MetadataExt;
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("softnet"))
            .find(|p| p.is_file())
    });
    let Some(found) = found else {
        return Err(ProviderError::new(
            "the softnet and host network modes need `softnet`, and it is not on PATH",
            "install it (`brew install cirruslabs/cli/softnet`), or choose network: nat or bridged in the lab file",
        ));
    };
    let path = std::fs::canonicalize(&found).unwrap_or(found);
    // The set-user-ID bit, 0o4000 (`libc::S_ISUID` is a u16 on macOS, a u32 on Linux).
    let suid_root = std::fs::metadata(&path).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0);
    if suid_root {
        return Ok(());
    }
    let sudo = std::process::Command::new("sudo")
        .arg("-n")
        .arg(&path)
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if sudo.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let p = path.display();
    Err(ProviderError {
        message: format!(
            "softnet ({p}) can neither run as root (it has no SUID bit) nor through passwordless sudo, so every VM of this lab would fail to boot (`Softnet failed`)"
        ),
        hint: format!(
            "set it up once, as tart itself does on a terminal: `sudo chown root {p} && sudo chmod u+s {p}` (run `tartlab up` on a terminal and it offers to); or choose network: nat (the nodes cannot reach each other) or bridged"
        ),
        fix: Some(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "chown root {0} && chmod u+s {0}",
                crate::quote::quote(&path.display().to_string())
            ),
        ]),
    })
}

/// The `tart run` flags for a network mode.
pub(super) fn run_flags(mode: &NetworkMode) -> Vec<String> {
    let softnet_lists = |allow: &[String], block: &[String]| {
        let mut flags = Vec::new();
        if !allow.is_empty() {
            flags.push(format!("--net-softnet-allow={}", allow.join(",")));
        }
        if !block.is_empty() {
            flags.push(format!("--net-softnet-block={}", block.join(",")));
        }
        flags
    };
    match mode {
        NetworkMode::Nat => Vec::new(),
        NetworkMode::Softnet { allow, block } => {
            let mut flags = vec!["--net-softnet".to_string()];
            flags.extend(softnet_lists(allow, block));
            flags
        }
        NetworkMode::Host { allow, block } => {
            let mut flags = vec!["--net-host".to_string()];
            flags.extend(softnet_lists(allow, block));
            flags
        }
        NetworkMode::Bridged(interface) => vec!["--net-bridged".into(), interface.clone()],
    }
}
