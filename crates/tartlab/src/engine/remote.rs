//! How the engine builds the commands it runs as root on a guest: a constant bash script,
//! its inputs as quoted positional arguments (`guest::quote`), under `sudo -n`, and for
//! everything that changes the guest, under the node's provisioning lock. Also the hash that
//! records what was applied, so an unchanged part is never run again.

use crate::quote;

/// FNV-1a, 64 bits, as 16 hex digits: stable across builds, enough to notice a change.
pub fn hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `sudo -n bash -c SCRIPT tartlab ARGS...`, every word quoted.
pub fn as_root(script: &str, args: &[&str]) -> String {
    let mut words = vec!["sudo", "-n", "/bin/bash", "-c", script, "tartlab"];
    words.extend_from_slice(args);
    quote::command(&words)
}

/// The prefix of a line a guest command prints on stderr to say what it is waiting for.
pub const NOTE_PREFIX: &str = "tartlab-note: ";

/// How a note that waits for an earlier tartlab's command (its lock) begins, after the prefix.
pub const WAIT_NOTE_PREFIX: &str = "waiting for ";

/// The prefix of a line by which a guest script says a part of its work is done.
pub const DONE_PREFIX: &str = "tartlab-done: ";

/// Runs a script as root while holding the node's provisioning lock (`flock` on
/// `/var/lib/tartlab/lock`). A command that an earlier tartlab started (cut off by Ctrl-C,
/// SIGKILL or a dropped connection) goes on running on the guest; the next one waits for it
/// to end, saying so on stderr, so no two ever run side by side. The script itself does not
/// inherit the lock's descriptor, so a daemon it starts cannot keep the lock.
const LOCKED: &str = r#"set -euo pipefail
what=$1 script=$2
shift 2
install -d -m 0711 /var/lib/tartlab
lock=/var/lib/tartlab/lock
[ -e "$lock" ] || (umask 077 && : >> "$lock")
exec 9>>"$lock"
if ! flock -n 9; then
  printf 'tartlab-note: waiting for %s, which an earlier tartlab started and which still runs on this node\n' \
    "$(cat /var/lib/tartlab/lock.holder 2>/dev/null || echo 'a command')" >&2
  flock 9
  # If the tartlab that sent this command is gone, its connection is closed and this write
  # ends the command (SIGPIPE) before it runs, unseen, after the one it waited for.
  printf 'tartlab-note: the earlier command ended; going on\n' >&2
fi
printf '%s (started %s)\n' "$what" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > /var/lib/tartlab/lock.holder
/bin/bash -c "$script" tartlab "$@" 9>&-
"#;

/// `as_root`, under the node's provisioning lock; `what` names the command for a later
/// tartlab that has to wait for it.
pub fn as_root_locked(what: &str, script: &str, args: &[&str]) -> String {
    let mut words = vec![
        "sudo",
        "-n",
        "/bin/bash",
        "-c",
        LOCKED,
        "tartlab",
        what,
        script,
    ];
    words.extend_from_slice(args);
    quote::command(&words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_see_every_input() {
        assert_eq!(hash(&["a", "b"]), hash(&["a", "b"]));
        assert_ne!(hash(&["a", "b"]), hash(&["ab"]));
        assert_eq!(hash(&[]).len(), 16);
    }
}
