//! Every way into a running lab: `ssh` and the hidden `proxy` (`ssh.rs`: the system ssh
//! with the lab key and pinned host keys; a node's sshd on stdin and stdout, OpenSSH's
//! `ProxyCommand` for providers whose way in is not plain TCP), `exec` (one command on many
//! nodes at once), `cp` (SFTP), `logs`, `forward` (a local port to a node's, as `ssh -L`).
//! Each goes in by the provider's dialer; what they share is here. The files other tools
//! read are in `export.rs`. None takes the lab lock.

mod cp;
mod exec;
mod forward;
mod journal;
mod logs;
mod ssh;
mod transcript;

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

/// How `ssh`, `exec` and `cp` act as another user (`--user`, root above all): they log in as
/// the lab's login user and go through its sudo, since the images have no root login and a
/// lab user need not hold the lab's key. The user, the node and what to do are positional
/// arguments, quoted; a login user without passwordless sudo gets words that say so.
const AS_ANOTHER_USER: &str = r#"target=$1 node=$2 mode=$3
shift 3
me=$(id -un)
if ! id -u -- "$target" >/dev/null 2>&1; then
  printf 'tartlab: %s has no user %s, so nothing ran as %s\n' "$node" "$target" "$target" >&2
  exit 1
fi
if ! sudo -n -u "$target" -- true 2>/dev/null; then
  printf 'tartlab: %s has no passwordless sudo on %s (sudo -n refused), and tartlab acts as %s by that sudo, so nothing ran\n' "$me" "$node" "$target" >&2
  printf 'tartlab: give %s passwordless sudo on the image (an /etc/sudoers.d rule: %s ALL=(ALL) NOPASSWD:ALL), or leave out --user to act as %s\n' "$me" "$me" "$me" >&2
  exit 1
fi
case $mode in
  shell) exec sudo -n -i -u "$target" ;;
  command) exec sudo -n -H -u "$target" -- /bin/bash -c 'cd 2>/dev/null; eval "$1"' tartlab "$1" ;;
  sftp-server)
    for server in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server; do
      if [ -x "$server" ]; then printf '%s\n' "$server"; exit 0; fi
    done
    printf 'tartlab: %s has no sftp-server program (looked for it in /usr/lib/openssh, /usr/libexec/openssh, /usr/lib/ssh, /usr/libexec), which a copy as %s runs through sudo\n' "$node" "$target" >&2
    exit 1 ;;
  sftp) exec sudo -n -H -u "$target" -- /bin/sh -c 'cd 2>/dev/null; exec "$1"' tartlab "$1" ;;
esac
"#;

/// What a command on a node runs as: the login user itself, or another user through the
/// login user's sudo (`AS_ANOTHER_USER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunAs {
    Login,
    Other(String),
}

impl RunAs {
    /// `--user`, against the node's login user (the login user named is the login user).
    pub(crate) fn of(user: Option<&str>, login: &str) -> RunAs {
        match user {
            Some(user) if user != login => RunAs::Other(user.to_string()),
            _ => RunAs::Login,
        }
    }

    /// The words the login shell runs: `command` itself, or through sudo as the other user
    /// (`mode` one of `AS_ANOTHER_USER`'s, its argument after it).
    pub(crate) fn wrap(&self, vm: &str, mode: &str, argument: Option<&str>) -> Option<String> {
        let RunAs::Other(user) = self else {
            return None;
        };
        let mut words = vec![
            "/bin/bash",
            "-c",
            AS_ANOTHER_USER,
            "tartlab",
            user,
            vm,
            mode,
        ];
        words.extend(argument);
        Some(crate::quote::command(&words))
    }

    /// `command` as this user runs it, for the login shell.
    pub(crate) fn command(&self, vm: &str, command: &str) -> String {
        self.wrap(vm, "command", Some(command))
            .unwrap_or_else(|| command.to_string())
    }
}

/// The guest's own words for why acting as another user failed (`tartlab: ...` lines),
/// made printable, in one message.
pub(crate) fn guest_words(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.strip_prefix("tartlab: ").unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect();
    crate::text::printable(&lines.join("; "), crate::text::MESSAGE).into_owned()
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
