//! Base provisioning: what every node gets before any user step (the seed's fixed script,
//! done fully). Each part is a constant bash script run as root with its inputs as quoted
//! positional arguments, and a hash of those inputs so an unchanged part is never re-run.

use crate::guest::quote;
use crate::lab::model::{SudoMode, UserSpec};

/// A part of base provisioning as it will run on one node.
pub struct Part {
    /// The key under which its hash is kept in the state file.
    pub name: String,
    /// The full remote command (already quoted).
    pub command: String,
    /// Secret input sent on stdin, never shown or logged.
    pub stdin: Option<String>,
    pub hash: String,
}

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

const STAGE_HOST_KEYS: &str = r#"set -euo pipefail
# New host keys are made beside the live ones first, so tartlab can pin them before sshd
# presents them: a crash between the two steps never leaves a key tartlab does not know.
staged=/etc/ssh/tartlab-new-keys
if [ ! -s "$staged/ssh_host_ed25519_key.pub" ]; then
  rm -rf "$staged" "$staged.tmp"
  mkdir -m 700 "$staged.tmp"
  ssh-keygen -q -t ed25519 -N '' -C '' -f "$staged.tmp/ssh_host_ed25519_key"
  ssh-keygen -q -t ecdsa -N '' -C '' -f "$staged.tmp/ssh_host_ecdsa_key"
  mv "$staged.tmp" "$staged"
fi
cat "$staged"/*.pub
"#;

/// Makes the VM's own SSH host keys beside the live ones (once) and prints them.
pub fn stage_host_keys() -> String {
    as_root_locked("making new host keys", STAGE_HOST_KEYS, &[])
}

const IDENTITY: &str = r#"set -euo pipefail
name=$1
hostnamectl set-hostname "$name"
if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts; then
  sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1 $name/" /etc/hosts
else
  printf '127.0.1.1 %s\n' "$name" >> /etc/hosts
fi
# Clones share the image's machine-id and host keys: make this VM's own.
rm -f /etc/machine-id
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > /etc/machine-id
echo >> /etc/machine-id
if [ -e /var/lib/dbus/machine-id ]; then ln -sf /etc/machine-id /var/lib/dbus/machine-id; fi
staged=/etc/ssh/tartlab-new-keys
if [ -d "$staged" ]; then
  rm -f /etc/ssh/ssh_host_*
  mv "$staged"/* /etc/ssh/
  rmdir "$staged"
  # sshd reads host keys when it starts: reload it (this session survives).
  if [ -d /run/systemd/system ] && systemctl is-active --quiet ssh.service; then
    systemctl reload ssh.service
  elif [ -d /run/systemd/system ] && systemctl is-active --quiet sshd.service; then
    systemctl reload sshd.service
  elif [ -s /run/sshd.pid ]; then
    kill -HUP "$(cat /run/sshd.pid)"
  fi
fi
cat /etc/ssh/ssh_host_*_key.pub
"#;

/// Hostname (and its `127.0.1.1` line), a fresh machine-id, and the host keys staged by
/// `stage_host_keys` put in place. Prints the live host public keys, which the caller pins.
pub fn identity(hostname: &str) -> Part {
    Part {
        name: "identity".into(),
        command: as_root_locked("identity", IDENTITY, &[hostname]),
        stdin: None,
        hash: hash(&["identity/2", hostname]),
    }
}

const USER: &str = r#"set -euo pipefail
name=$1 shell=$2 sudo=$3 groups=$4 keys=$5 has_hash=$6
if id -u "$name" >/dev/null 2>&1; then
  usermod --shell "$shell" "$name"
else
  useradd --create-home --shell "$shell" "$name"
fi
if [ -n "$groups" ]; then
  IFS=, read -ra wanted <<< "$groups"
  for g in "${wanted[@]}"; do getent group "$g" >/dev/null || groupadd "$g"; done
  usermod -aG "$groups" "$name"
fi
home=$(getent passwd "$name" | cut -d: -f6)
group=$(id -gn "$name")
install -d -m 700 -o "$name" -g "$group" "$home/.ssh"
printf '%s\n' "$keys" > "$home/.ssh/authorized_keys.tartlab"
chown "$name:$group" "$home/.ssh/authorized_keys.tartlab"
chmod 600 "$home/.ssh/authorized_keys.tartlab"
mv -f "$home/.ssh/authorized_keys.tartlab" "$home/.ssh/authorized_keys"
rule=/etc/sudoers.d/tartlab-$name
case $sudo in
  none) rm -f "$rule" ;;
  *)
    if [ "$sudo" = nopasswd ]; then line="$name ALL=(ALL) NOPASSWD:ALL"; else line="$name ALL=(ALL) ALL"; fi
    printf '%s\n' "$line" > "$rule.tmp"
    chmod 440 "$rule.tmp"
    visudo -cqf "$rule.tmp"
    mv -f "$rule.tmp" "$rule" ;;
esac
if [ "$has_hash" = 1 ]; then
  IFS= read -r password_hash
  printf '%s:%s\n' "$name" "$password_hash" | chpasswd -e
fi
"#;

/// Creates or updates one user: shell, groups, authorized_keys (the user's keys and the lab
/// key), a sudoers.d rule for the sudo mode, and the password hash (sent on stdin).
pub fn user(user: &UserSpec, keys: &[String]) -> Part {
    let shell = user.shell.clone().unwrap_or_else(|| "/bin/bash".into());
    let sudo = match user.sudo {
        SudoMode::None => "none",
        SudoMode::Password => "password",
        SudoMode::Nopasswd => "nopasswd",
    };
    let groups = user.groups.join(",");
    let keys = keys.join("\n");
    let has_hash = if user.password_hash.is_some() {
        "1"
    } else {
        "0"
    };
    let args = [
        user.name.as_str(),
        shell.as_str(),
        sudo,
        groups.as_str(),
        keys.as_str(),
        has_hash,
    ];
    let secret = user.password_hash.clone().unwrap_or_default();
    let mut inputs = vec!["user/1"];
    inputs.extend_from_slice(&args);
    inputs.push(&secret);
    Part {
        name: format!("user:{}", user.name),
        command: as_root_locked(&format!("user {}", user.name), USER, &args),
        stdin: user.password_hash.as_ref().map(|h| format!("{h}\n")),
        hash: hash(&inputs),
    }
}

const HOSTS: &str = r#"set -euo pipefail
block=$1
tmp=$(mktemp)
awk '/^# BEGIN tartlab$/ {skip=1; next} /^# END tartlab$/ {skip=0; next} !skip' /etc/hosts > "$tmp"
if [ -n "$block" ]; then printf '# BEGIN tartlab\n%s\n# END tartlab\n' "$block" >> "$tmp"; fi
cat "$tmp" > /etc/hosts
rm -f "$tmp"
"#;

/// The lab's block in `/etc/hosts`: one `IP NAME` line per node in scope (an empty list
/// removes the block).
pub fn hosts(entries: &[(String, String)]) -> Part {
    let block = entries
        .iter()
        .map(|(vm, ip)| format!("{ip} {vm}"))
        .collect::<Vec<_>>()
        .join("\n");
    Part {
        name: "hosts".into(),
        command: as_root_locked("hosts", HOSTS, &[&block]),
        stdin: None,
        hash: hash(&["hosts/1", &block]),
    }
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

    #[test]
    fn a_password_hash_goes_on_stdin_never_into_the_command() {
        let spec = UserSpec {
            name: "alice".into(),
            groups: vec!["sudo".into()],
            sudo: SudoMode::Nopasswd,
            shell: None,
            authorized_keys: vec![],
            password_hash: Some("$6$salt$secret".into()),
            password: None,
        };
        let part = user(&spec, &["ssh-ed25519 AAAA x".into()]);
        assert!(!part.command.contains("secret"));
        assert_eq!(part.stdin.as_deref(), Some("$6$salt$secret\n"));
        assert!(part
            .command
            .starts_with("sudo -n /bin/bash -c 'set -euo pipefail"));
    }

    #[test]
    fn the_hosts_script_replaces_only_its_own_block() {
        let dir = tempfile::tempdir().unwrap();
        let hosts_file = dir.path().join("hosts");
        std::fs::write(
            &hosts_file,
            "127.0.0.1 localhost\n# BEGIN tartlab\n1.2.3.4 old\n# END tartlab\n::1 ip6\n",
        )
        .unwrap();
        let script = HOSTS.replace("/etc/hosts", &hosts_file.display().to_string());
        let out = std::process::Command::new("bash")
            .args(["-c", &script, "x", "10.0.0.1 a\n10.0.0.2 b"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(&hosts_file).unwrap(),
            "127.0.0.1 localhost\n::1 ip6\n# BEGIN tartlab\n10.0.0.1 a\n10.0.0.2 b\n# END tartlab\n"
        );
    }
}
