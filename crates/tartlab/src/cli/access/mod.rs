//! Every way into a running lab: `ssh` and the hidden `proxy` (`ssh.rs`: the system ssh
//! with the lab key and pinned host keys; a node's sshd on stdin and stdout, OpenSSH's
//! `ProxyCommand` for providers whose way in is not plain TCP), `exec` (one command on many
//! nodes at once), `cp` (SFTP), `logs`, `forward` (a local port to a node's, as `ssh -L`).
//! Each goes in by the provider's dialer; what they share is here. The files other tools
//! read are in `export.rs`. None takes the lab lock.

mod cp;
mod exec;
mod forward;
mod logs;
mod ssh;

use std::sync::Arc;
use std::time::Duration;

use super::{export, runtime, LabSnapshot};
use crate::error::{Error, Result};
use crate::provider::{self, Inventory, Provider};

pub use cp::{cp, CpArgs};
pub use exec::{command_marked, exec, ExecArgs};
pub use forward::{forward, ForwardArgs};
pub use logs::{logs, LogsArgs};
pub use ssh::{proxy, ssh, ProxyArgs, SshArgs};

/// Why `exec` and `cp` send nothing to a VM: only `up`, when it boots the VM, meets a key
/// it has not pinned, and pins it.
const NOT_PINNED: &str = "no host key is pinned for this VM";

fn not_pinned_hint(vm: &str) -> String {
    format!("`tartlab up` pins a VM's host key when it boots it: `tartlab stop {vm}` then `tartlab up`, if {vm} is the lab's own VM")
}

/// How long `exec` and `cp` give a node to log them in: 15 s, or `TARTLAB_SSH_TIMEOUT`.
fn login_timeout() -> Duration {
    std::env::var("TARTLAB_SSH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(15), Duration::from_secs)
}

/// The lab's provider, and its inventory (one `tart list`).
pub(crate) fn provider_and_inventory(
    snapshot: &LabSnapshot,
) -> Result<(Arc<dyn Provider>, Inventory)> {
    let provider =
        provider::open(Some(&snapshot.lab), None).map_err(|e| Error::fatal(e.message, e.hint))?;
    let inventory = runtime()?.block_on(crate::engine::read_inventory(provider.as_ref()))?;
    Ok((provider, inventory))
}

/// The words of OpenSSH's `ProxyCommand` for a node: this tartlab's `proxy`, with the lab
/// file, so it works from any directory.
pub(crate) fn proxy_command(snapshot: &LabSnapshot, vm: &str) -> Vec<String> {
    let program =
        std::env::current_exe().map_or_else(|_| "tartlab".to_string(), |p| p.display().to_string());
    let file = snapshot.absolute(snapshot.lab.source.path.clone());
    vec![
        program,
        "proxy".into(),
        "-f".into(),
        file.display().to_string(),
        vm.to_string(),
    ]
}

/// The system ssh's options for a node: lab key, pinned host key, no prompts. The paths
/// are written as ssh reads them (`%` doubled), or refused (export::ssh_path).
fn ssh_options(snapshot: &LabSnapshot, vm: &str) -> Result<Vec<String>> {
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    Ok([
        // Not `-i`: ssh checks that path as given, then expands its `%` tokens.
        "-o".to_string(),
        format!("IdentityFile {}", export::ssh_config_quoted(&key)?),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile {}", export::ssh_config_quoted(&known)?),
        "-o".into(),
        format!("HostKeyAlias={vm}"),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
    .to_vec())
}
