//! Base provisioning, what every node gets before any user step (the seed's fixed script,
//! done fully): the lab key for the login user, then hostname, a fresh machine-id and host
//! keys, and the lab's users, as one remote command in one session under one sudo. Each part
//! says when it is done (`tartlab-done: PART`), so each is recorded (and never run again
//! while its inputs hold) as soon as it succeeds.
//!
//! New host keys are made beside the live ones first; the script prints them and waits until
//! tartlab has pinned them (it answers `pinned` on stdin), and only then puts them in place
//! and reloads sshd. A crash at any point never leaves a key tartlab does not know.

use std::time::Duration;

use russh::keys::PublicKey;

use super::{command_failure, show_note, NodeRun, NodeStage};
use crate::engine::events::{Provisioned, Stage};
use crate::engine::inputs::{self, UserInputs};
use crate::engine::remote::{as_root_locked, DONE_PREFIX};
use crate::engine::requirements::{Check, Requirement, Unmet};
use crate::engine::{Context, Failure, WRITABLE};
use crate::guest::runner::Command;
use crate::guest::ssh::{Input, Reply, Stream};
use crate::provider::BoxFuture;
use crate::quote;

/// Installs the lab key for the login user, as that user (before any sudo).
const LAB_KEY: &str = r#"umask 077
mkdir -p ~/.ssh
touch ~/.ssh/authorized_keys
grep -qxF "$1" ~/.ssh/authorized_keys || printf '%s\n' "$1" >> ~/.ssh/authorized_keys
echo 'tartlab-done: lab-key'
"#;

const BASE: &str = r#"set -euo pipefail
# Parts, in the order given: `identity HOSTNAME`, `user NAME SHELL SUDO GROUPS KEYS HAS_HASH`.
identity() {
  local name=$1 staged=/etc/ssh/tartlab-new-keys answer=
  if [ ! -s "$staged/ssh_host_ed25519_key.pub" ]; then
    rm -rf "$staged" "$staged.tmp"
    mkdir -m 700 "$staged.tmp"
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$staged.tmp/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -N '' -C '' -f "$staged.tmp/ssh_host_ecdsa_key"
    mv "$staged.tmp" "$staged"
  fi
  sed 's/^/tartlab-staged-key: /' "$staged"/*.pub
  echo 'tartlab-staged-keys-end'
  IFS= read -r answer || true
  if [ "$answer" != pinned ]; then
    echo "tartlab did not confirm that it pinned the new host keys; they were not put in place" >&2
    exit 1
  fi
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
  rm -f /etc/ssh/ssh_host_*
  mv "$staged"/* /etc/ssh/
  rmdir "$staged"
  # sshd reads host keys when it starts: reload it (this session survives). A reload that
  # fails is not the end: tartlab then checks which key sshd serves, and restarts it if
  # need be.
  if [ -d /run/systemd/system ] && systemctl is-active --quiet ssh.service; then
    systemctl reload ssh.service || echo "tartlab: reloading ssh.service failed" >&2
  elif [ -d /run/systemd/system ] && systemctl is-active --quiet sshd.service; then
    systemctl reload sshd.service || echo "tartlab: reloading sshd.service failed" >&2
  elif [ -s /run/sshd.pid ]; then
    kill -HUP "$(cat /run/sshd.pid)" || true
  fi
  sed 's/^/tartlab-host-key: /' /etc/ssh/ssh_host_*_key.pub
}
as_user() {
  local name=$1
  shift
  if command -v runuser >/dev/null; then runuser -u "$name" -- "$@"; else sudo -n -u "$name" -- "$@"; fi
}
user() {
  local name=$1 shell=$2 sudo=$3 groups=$4 keys=$5 has_hash=$6 home rule line password_hash
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
  # The user's own files are written by the user: root never writes through a path (a
  # link in ~/.ssh, say) that the user controls.
  as_user "$name" /bin/sh -c 'set -e
    umask 077
    mkdir -p "$1/.ssh"
    chmod 700 "$1/.ssh"
    tmp=$(mktemp "$1/.ssh/.authorized_keys.XXXXXXXX")
    printf "%s\n" "$2" > "$tmp"
    mv -f "$tmp" "$1/.ssh/authorized_keys"' tartlab "$home" "$keys"
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
}
while [ $# -gt 0 ]; do
  case $1 in
    identity) identity "$2"; echo 'tartlab-done: identity'; shift 2 ;;
    user) user "$2" "$3" "$4" "$5" "$6" "$7"; echo "tartlab-done: user $2"; shift 7 ;;
    *) echo "tartlab: unknown base part $1" >&2; exit 2 ;;
  esac
done
"#;

/// The most host keys taken from a guest (it makes two: ed25519 and ECDSA).
const MAX_HOST_KEYS: usize = 8;

pub struct Base;

impl NodeStage for Base {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if !run.provisioning(ctx) {
                return Ok(());
            }
            apply(ctx, run).await
        })
    }
}

/// Runs the base parts the node still needs, in one command.
async fn apply(ctx: &Context, run: &mut NodeRun) -> Result<(), Failure> {
    let work = BaseWork::for_node(ctx, run);
    if work.is_empty() {
        return Ok(());
    }
    run.hold_slot(ctx).await;
    let guest = run.guest(ctx).await?;
    let vm = run.node.vm_name.clone();
    let pinned_before = ctx.known.pinned(&vm);
    ctx.reporter
        .started(&vm, Stage::Base, "hostname, machine-id, host keys, users");
    let public = ctx
        .key
        .public_key()
        .to_openssh()
        .map_err(|e| Failure::new(Stage::Base, e.to_string(), ""))?;
    let command = work.command(public.trim());
    let hashes: String = work
        .users
        .iter()
        .filter_map(|(_, u)| u.password_hash.as_ref())
        .map(|h| format!("{h}\n"))
        .collect();
    let input = if work.identity.is_some() {
        Input::Answered
    } else {
        Input::Given(Some(hashes.as_bytes()))
    };
    let mut talk = Conversation {
        ctx,
        vm: &vm,
        work: &work,
        hashes: &hashes,
        staged: Vec::new(),
        live: Vec::new(),
        done: Vec::new(),
        broken: None,
    };
    let what = "base provisioning";
    let result = guest
        .run(
            Command {
                what,
                line: &command,
                shown: &command,
                input,
            },
            &mut |stream, line| talk.hear(stream, line),
        )
        .await;
    let rotated = talk.done.contains(&Provisioned::Identity);
    let live = std::mem::take(&mut talk.live);
    run.provisioned.extend(talk.done);
    if let Some(failure) = talk.broken {
        return Err(failure);
    }
    result.map_err(|e| command_failure(ctx, &vm, Stage::Base, what, e))?;
    if rotated {
        ctx.reporter.started(
            &vm,
            Stage::Base,
            "checking that sshd serves the new host key",
        );
        let ip = run.ip.clone().unwrap_or_default();
        if let Err(failure) = served_after_rotation(ctx, &vm, &ip, &guest, &live).await {
            // Both the old and the new keys stay pinned, and the identity is made again
            // by the next `up`.
            let mut keys = pinned_before;
            keys.extend(live);
            let _ = ctx.known.pin(&vm, &keys);
            let _ = ctx.store.update_vm(&vm, |o| {
                o.applied.remove(inputs::IDENTITY);
            });
            return Err(failure);
        }
    }
    Ok(())
}

/// Restarts sshd so that it serves the host keys in /etc/ssh: the socket and the service
/// where systemd runs (Ubuntu's socket-activated `ssh`), else a SIGHUP to the listener.
const RESTART_SSH: &str = r#"set -uo pipefail
if [ -d /run/systemd/system ]; then
  systemctl restart ssh.socket 2>/dev/null
  systemctl restart ssh.service 2>/dev/null || systemctl restart sshd.service 2>/dev/null
elif [ -s /run/sshd.pid ]; then
  kill -HUP "$(cat /run/sshd.pid)"
else
  pkill -HUP -o -x sshd
fi
exit 0
"#;

/// After new host keys were put in place and sshd reloaded: checks (with a handshake) that
/// the guest serves one of them; if not, restarts sshd and checks again. The new keys are
/// pinned as final only then.
async fn served_after_rotation(
    ctx: &Context,
    vm: &str,
    ip: &str,
    guest: &crate::guest::runner::GuestSession,
    live: &[PublicKey],
) -> Result<(), Failure> {
    let dialer = ctx.provider.dialer(vm, ip);
    let serves_new = |key: &PublicKey| live.iter().any(|k| k.key_data() == key.key_data());
    // A reload takes sshd a moment: 2 s for it, then 5 s after a restart. Each handshake
    // is given at least 2 s, however busy the machine; the requirement keeps what was
    // served last, else why nothing was.
    let new_key_served = |within: Duration| {
        Requirement {
        name: format!("{vm}'s sshd serves its new host key"),
        hint: format!("the image's sshd does not take /etc/ssh/ssh_host_*_key: look at `journalctl -u ssh` (or sshd's options) on {vm}; both keys stay pinned, and the next `tartlab up` makes new ones"),
        // The log that would say why is the guest's journal, not on this host.
        log: None,
        timeout: within,
        interval: Duration::from_millis(200),
    }
    };
    // A refused handshake (sshd re-executing after the SIGHUP) costs nothing over a direct
    // dial: tried again after 30 ms for the first second, not 200.
    let eager = matches!(dialer.route(), crate::dial::SshRoute::Direct { .. })
        .then_some((Duration::from_millis(30), Duration::from_secs(1)));
    let wait_for_new = |within: Duration| {
        let dialer = dialer.as_ref();
        async move {
            new_key_served(within)
                .wait_eagerly_for(eager, |left| async move {
                    let time = left.max(Duration::from_secs(2));
                    match crate::guest::ssh::host_key(dialer, time).await {
                        Ok(key) if serves_new(&key) => {
                            Check::<(), std::convert::Infallible>::Met(())
                        }
                        Ok(key) => {
                            Check::NotYet(key.to_openssh().unwrap_or_else(|_| "a key".into()))
                        }
                        Err(e) => Check::NotYet(format!("nothing ({e})")),
                    }
                })
                .await
                .map_err(|unmet| match unmet {
                    Unmet::TimedOut { last } => new_key_served(within).failure(
                        Stage::Base,
                        format!("after its new host keys were put in place, reloaded and restarted, {vm}'s sshd serves {last}"),
                    ),
                    Unmet::Fatal(never) => match never {},
                })
        }
    };
    if wait_for_new(Duration::from_secs(2)).await.is_ok() {
        return Ok(());
    }
    ctx.reporter.started(
        vm,
        Stage::Base,
        "sshd still serves the old host key: restarting it",
    );
    let what = "restarting sshd";
    let command = as_root_locked(what, RESTART_SSH, &[]);
    guest
        .run_plain(Command::plain(what, &command))
        .await
        .map_err(|e| command_failure(ctx, vm, Stage::Base, what, e))?;
    wait_for_new(Duration::from_secs(5)).await
}

/// The base parts a node still needs.
struct BaseWork {
    lab_key: bool,
    identity: Option<(String, String)>,
    users: Vec<(String, UserInputs)>,
}

impl BaseWork {
    fn for_node(ctx: &Context, run: &NodeRun) -> BaseWork {
        let node = &run.node;
        let applied = ctx
            .store
            .vm(&node.vm_name)
            .map(|o| o.applied)
            .unwrap_or_default();
        let stale = |key: &str, hash: &str| applied.get(key).map(String::as_str) != Some(hash);
        let identity_hash = inputs::identity_hash(&node.hostname);
        let mut users = Vec::new();
        for user in &ctx.lab.file.users {
            let keys = ctx.user_keys.get(&user.name).map_or(&[][..], |k| &k[..]);
            let inputs = inputs::user_inputs(user, keys);
            if stale(&inputs::user_key(&user.name), &inputs.hash) {
                users.push((user.name.clone(), inputs));
            }
        }
        BaseWork {
            lab_key: !applied.contains_key(inputs::LAB_KEY),
            identity: stale(inputs::IDENTITY, &identity_hash)
                .then(|| (node.hostname.clone(), identity_hash)),
            users,
        }
    }

    fn is_empty(&self) -> bool {
        !self.lab_key && self.identity.is_none() && self.users.is_empty()
    }

    /// `[install the lab key &&] sudo ... BASE PARTS...`, every word quoted.
    fn command(&self, public_key: &str) -> String {
        let mut commands = Vec::new();
        if self.lab_key {
            commands.push(quote::command(&[
                "/bin/sh", "-c", LAB_KEY, "tartlab", public_key,
            ]));
        }
        let mut args: Vec<&str> = Vec::new();
        if let Some((hostname, _)) = &self.identity {
            args.extend(["identity", hostname.as_str()]);
        }
        for (_, user) in &self.users {
            args.push("user");
            args.extend(user.args.iter().map(String::as_str));
        }
        if !args.is_empty() {
            commands.push(as_root_locked("base provisioning", BASE, &args));
        }
        commands.join(" && ")
    }
}

/// What tartlab says and records while the base script runs.
struct Conversation<'a> {
    ctx: &'a Context,
    vm: &'a str,
    work: &'a BaseWork,
    hashes: &'a str,
    /// The new host keys, printed before they are put in place.
    staged: Vec<PublicKey>,
    /// The host keys sshd serves once they are.
    live: Vec<PublicKey>,
    done: Vec<Provisioned>,
    /// A failure on this side (a pin or a record that could not be written).
    broken: Option<Failure>,
}

impl Conversation<'_> {
    fn hear(&mut self, stream: Stream, line: &str) -> Reply {
        if stream == Stream::Stderr {
            show_note(self.ctx, self.vm, Stage::Base, "base provisioning", line);
            return Reply::Nothing;
        }
        let key = |text: &str| PublicKey::from_openssh(text.trim()).ok();
        // A guest cannot make tartlab pin (or hold) more than a few keys.
        if let Some(k) = line.strip_prefix("tartlab-staged-key: ").and_then(key) {
            if self.staged.len() < MAX_HOST_KEYS {
                self.staged.push(k);
            }
        } else if let Some(k) = line.strip_prefix("tartlab-host-key: ").and_then(key) {
            if self.live.len() < MAX_HOST_KEYS {
                self.live.push(k);
            }
        } else if line == "tartlab-staged-keys-end" {
            // Pin the new keys next to the current ones before sshd presents them.
            self.ctx
                .reporter
                .started(self.vm, Stage::Base, "new host keys made: pinning them");
            let mut keys = self.ctx.known.pinned(self.vm);
            keys.append(&mut self.staged);
            let answer = match self.ctx.known.pin(self.vm, &keys) {
                Ok(()) => "pinned\n",
                Err(e) => {
                    self.broken = Some(Failure::new(Stage::Base, e, WRITABLE));
                    "not pinned\n"
                }
            };
            return Reply::SendAndClose(format!("{answer}{}", self.hashes).into_bytes());
        } else if let Some(part) = line.strip_prefix(DONE_PREFIX) {
            self.record(part);
            self.ctx
                .reporter
                .started(self.vm, Stage::Base, &format!("{part}: done"));
        }
        Reply::Nothing
    }

    /// Records a part the script finished.
    fn record(&mut self, part: &str) {
        let vm = self.vm;
        let result = if part == inputs::LAB_KEY {
            self.ctx.store.update_vm(vm, |o| {
                o.applied.insert(inputs::LAB_KEY.into(), "installed".into());
            })
        } else if part == inputs::IDENTITY {
            let Some((_, hash)) = &self.work.identity else {
                return;
            };
            if self.live.is_empty() {
                self.broken = Some(Failure::new(
                    Stage::Base,
                    format!("{vm} printed no SSH host keys"),
                    "check that ssh-keygen works on the image; the provisioning transcript shows what ran",
                ));
                return;
            }
            self.done.push(Provisioned::Identity);
            self.ctx.known.pin(vm, &self.live).and_then(|()| {
                self.ctx.store.update_vm(vm, |o| {
                    o.applied.insert(inputs::IDENTITY.into(), hash.clone());
                })
            })
        } else if let Some(name) = part.strip_prefix("user ") {
            let Some((_, user)) = self.work.users.iter().find(|(n, _)| n == name) else {
                return;
            };
            if !self.done.contains(&Provisioned::Users) {
                self.done.push(Provisioned::Users);
            }
            self.ctx.store.update_vm(vm, |o| {
                o.applied.insert(inputs::user_key(name), user.hash.clone());
            })
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.broken
                .get_or_insert(Failure::new(Stage::Base, e, WRITABLE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::{SudoMode, UserSpec};

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
        let work = BaseWork {
            lab_key: true,
            identity: Some(("dev-vm".into(), "h".into())),
            users: vec![(
                "alice".into(),
                inputs::user_inputs(&spec, &["ssh-ed25519 AAAA x".into()]),
            )],
        };
        let command = work.command("ssh-ed25519 AAAA lab");
        assert!(!command.contains("secret"), "{command}");
        assert_eq!(
            work.users[0].1.password_hash.as_deref(),
            Some("$6$salt$secret")
        );
        assert!(command.starts_with("/bin/sh -c 'umask 077"), "{command}");
        assert!(command.contains(" && sudo -n /bin/bash -c "), "{command}");
    }
}
