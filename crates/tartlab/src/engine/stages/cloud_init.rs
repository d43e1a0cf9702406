//! A node's cloud-init user-data (`cloud_init:` in the lab file), applied by the guest's own
//! cloud-init, the way cloud-init is meant to run: after the base, tartlab lets the boot's
//! own cloud-init run end, clears cloud-init's state, writes a NoCloud seed (`/var/lib/cloud/seed/nocloud`: the user-data, and meta-data with a fresh
//! `instance-id` and the node's `local-hostname`), turns the NoCloud datasource on in
//! `/etc/cloud/cloud.cfg.d/99_tartlab.cfg` (the cirruslabs images turn every datasource off),
//! powers the VM off and starts it again (`operations::restart`), waits for SSH, then for
//! the requirement "cloud-init has ended" (`cloud-init status --long`, asked until it no
//! longer runs), and reports how it ended. The host keys tartlab pinned stay: the drop-in
//! tells cloud-init not to delete any (`ssh_deletekeys: false`) and to make only the types
//! tartlab made, which exist already (`ssh_genkeytypes: [ ed25519, ecdsa ]`).
//! The user-data's hash is recorded: unchanged user-data does nothing on the next `up`.

use std::time::Duration;

use super::{command_failure, run_locked_script, NodeRun, NodeStage};
use crate::engine::events::{Provisioned, Stage};
use crate::engine::inputs;
use crate::engine::operations::restart::power_cycle;
use crate::engine::remote::{as_root, as_root_locked};
use crate::engine::requirements::{Check, Requirement, Unmet};
use crate::engine::watch::Address;
use crate::engine::{Context, Failure, WRITABLE};
use crate::guest::runner::{Command, GuestSession};
use crate::provider::BoxFuture;

/// Arguments: the instance-id and the hostname; stdin: the user-data.
const SEED: &str = r#"set -euo pipefail
iid=$1 host=$2
if ! command -v cloud-init >/dev/null; then
  echo "this image has no cloud-init, which cloud_init: in the lab file needs" >&2
  exit 3
fi
# The image's cloud-init runs at every boot (with no datasource, it does little): let this
# boot's run end before its state is cleared under it, or `clean` races its writes.
timeout 300 cloud-init status --wait >/dev/null 2>&1 || true
cloud-init clean --logs
seed=/var/lib/cloud/seed/nocloud
install -d -m 0755 /var/lib/cloud/seed "$seed"
(umask 077; cat > "$seed/user-data")
printf 'instance-id: %s\nlocal-hostname: %s\n' "$iid" "$host" > "$seed/meta-data"
cat > /etc/cloud/cloud.cfg.d/99_tartlab.cfg <<'CFG'
# Written by tartlab: the lab's cloud-init user-data, from the NoCloud seed it writes.
datasource_list: [ NoCloud, None ]
# tartlab pinned this VM's host keys (ed25519 and ECDSA): cloud-init deletes none, and
# makes a key only of these types and only where none exists, so it makes none.
ssh_deletekeys: false
ssh_genkeytypes: [ ed25519, ecdsa ]
CFG
rm -f /etc/cloud/cloud-init.disabled
"#;

/// Says how cloud-init is: still to end (`tartlab-cloud-init-pending`: not started yet, as
/// when a boot's cloud-init starts after sshd, or running), or how it ended.
const STATUS: &str = r#"set -uo pipefail
out=$(cloud-init status --long)
code=$?
printf '%s\n' "$out"
case $(printf '%s\n' "$out" | sed -n 's/^status: //p' | head -n 1) in
  running|"not run"|"not started")
    echo "tartlab-cloud-init-pending"
    exit 0 ;;
esac
# cloud-init 23.4 and later (Ubuntu 24.04 has 24.x) exit 2 for "done, with recoverable
# errors" (a deprecated key, a warning): it ran; tartlab says so and goes on.
if [ "$code" = 2 ]; then
  echo "tartlab-cloud-init-degraded"
  exit 0
fi
if [ "$code" != 0 ]; then
  echo "tartlab-cloud-init-log:"
  tail -n 15 /var/log/cloud-init-output.log 2>/dev/null
fi
exit "$code"
"#;

/// The stage: the node's user-data, then its sshd is known to answer, so peers may probe it.
pub struct CloudInit;

impl NodeStage for CloudInit {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if !run.provisioning(ctx) {
                return Ok(());
            }
            // The user-data powers the VM off and on: before peers may probe it.
            apply(ctx, run).await?;
            // Its sshd answers (or it was up and provisioned already): peers may probe it.
            if let Some(ip) = &run.ip {
                ctx.reachable
                    .publish(&run.node.vm_name, Address::Known(ip.clone()));
            }
            Ok(())
        })
    }
}

/// Applies the node's user-data if it changed since it was last applied.
async fn apply(ctx: &Context, run: &mut NodeRun) -> Result<(), Failure> {
    let (Some(relative), Some(user_data)) = (
        run.node.cloud_init.clone(),
        inputs::cloud_init(&ctx.lab, &run.node),
    ) else {
        return Ok(());
    };
    let vm = run.node.vm_name.clone();
    let (text, digest) =
        user_data.map_err(|e| Failure::new(Stage::CloudInit, e.to_string(), e.hint()))?;
    let applied = ctx.store.vm(&vm).unwrap_or_default().applied;
    if applied.get(inputs::CLOUD_INIT) == Some(&digest) {
        return Ok(());
    }
    run.hold_slot(ctx).await;
    ctx.reporter.started(
        &vm,
        Stage::CloudInit,
        &format!("writing the NoCloud seed of {relative}"),
    );
    let instance = format!("tartlab-{vm}-{}", &digest[..12]);
    let guest = run.guest(ctx).await?;
    run_locked_script(
        ctx,
        &guest,
        &vm,
        Stage::CloudInit,
        (
            "the cloud-init seed",
            SEED,
            &[&instance, &run.node.hostname],
        ),
        Some(text.as_bytes()),
    )
    .await?;
    restart(ctx, run).await?;
    ctx.reporter
        .started(&vm, Stage::CloudInit, "waiting for cloud-init");
    let guest = run.guest(ctx).await?;
    let degraded = ended(ctx, &guest, &vm, &relative).await?;
    ctx.store
        .update_vm(&vm, |o| {
            o.applied.insert(inputs::CLOUD_INIT.into(), digest);
        })
        .map_err(|e| Failure::new(Stage::CloudInit, e, WRITABLE))?;
    run.provisioned.push(Provisioned::CloudInit);
    if degraded {
        ctx.reporter.done(
            &vm,
            Stage::CloudInit,
            &format!("done, with recoverable errors (`tartlab ssh {vm} cloud-init status --long` lists them)"),
        );
    } else {
        ctx.reporter.done(&vm, Stage::CloudInit, "done");
    }
    Ok(())
}

/// Waits for the requirement "cloud-init on VM has ended"; whether it ended with
/// recoverable errors. It fails when cloud-init ended with an error, or still runs at
/// TARTLAB_COMMAND_TIMEOUT (then with the last lines of its output log).
async fn ended(
    ctx: &Context,
    guest: &GuestSession,
    vm: &str,
    relative: &str,
) -> Result<bool, Failure> {
    let has_ended = Requirement {
        name: format!("cloud-init on {vm} has ended"),
        hint: format!("`tartlab ssh {vm} cloud-init status --long` says where it is; if it is only slow, raise TARTLAB_COMMAND_TIMEOUT"),
        // Its log is the guest's: the failure asks for its last lines.
        log: None,
        timeout: ctx.timeouts.command,
        interval: Duration::from_secs(1),
    };
    let what = "cloud-init status";
    let command = as_root_locked(what, STATUS, &[]);
    let command = command.as_str();
    let verdict = has_ended
        .wait_for(|_| async move {
            match guest.run_plain(Command::plain(what, command)).await {
                Ok(out) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    if stdout.lines().any(|l| l == "tartlab-cloud-init-pending") {
                        let status = stdout.lines().find(|l| l.starts_with("status: "));
                        Check::NotYet(
                            crate::text::printable(
                                status.unwrap_or("status: unknown"),
                                crate::text::QUOTED_LINE,
                            )
                            .into_owned(),
                        )
                    } else {
                        Check::Met(stdout.lines().any(|l| l == "tartlab-cloud-init-degraded"))
                    }
                }
                Err(error) => Check::Fatal(failure(ctx, vm, relative, error)),
            }
        })
        .await;
    match verdict {
        Ok(degraded) => Ok(degraded),
        Err(Unmet::Fatal(failure)) => Err(failure),
        Err(Unmet::TimedOut { last }) => {
            let happened = format!(
                "cloud-init on {vm} did not end within {} s ({last})",
                has_ended.secs()
            );
            Err(has_ended.failure(Stage::CloudInit, happened + &output_log_tail(guest).await))
        }
    }
}

/// The last lines of cloud-init's output log on the guest, after a newline; empty if there
/// are none.
async fn output_log_tail(guest: &GuestSession) -> String {
    let what = "cloud-init's output log";
    let command = as_root(
        "tail -n 15 /var/log/cloud-init-output.log 2>/dev/null || true",
        &[],
    );
    match guest.run_plain(Command::plain(what, &command)).await {
        Ok(out) => {
            let lines = crate::text::last_lines(&String::from_utf8_lossy(&out.stdout), 12);
            if lines.is_empty() {
                String::new()
            } else {
                format!("\nlast lines of /var/log/cloud-init-output.log:\n{lines}")
            }
        }
        Err(_) => String::new(),
    }
}

/// Powers the VM off and on for cloud-init, then takes its new address.
async fn restart(ctx: &Context, run: &mut NodeRun) -> Result<(), Failure> {
    run.guest.close().await;
    let ip = power_cycle(ctx, &run.node, Stage::CloudInit, "for cloud-init").await?;
    run.ip = Some(ip.clone());
    run.report.ip = Some(ip);
    Ok(())
}

/// cloud-init's failure: the module that failed (from `status --long`) and the tail of its
/// output log.
fn failure(
    ctx: &Context,
    vm: &str,
    relative: &str,
    error: crate::guest::runner::RunError,
) -> Failure {
    use crate::guest::runner::RunError;
    let RunError::Failed { status, tail } = error else {
        return command_failure(ctx, vm, Stage::CloudInit, "cloud-init", error);
    };
    let (status_part, log) = tail
        .split_once("tartlab-cloud-init-log:")
        .unwrap_or((tail.as_str(), ""));
    // The module's name is the guest's text: printable and bounded before it is shown.
    let module = status_part
        .lines()
        .find_map(|l| {
            let start = l.find("('")? + 2;
            let end = l[start..].find('\'')? + start;
            Some(crate::text::printable(&l[start..end], crate::text::QUOTED_NAME).into_owned())
        })
        .unwrap_or_else(|| "a module".into());
    let status = status.map_or("none".into(), |s| s.to_string());
    let lines = crate::text::last_lines(log, 12);
    let message = if lines.is_empty() {
        format!("cloud-init ended with an error (exit status {status}) in {module}; /var/log/cloud-init-output.log is empty")
    } else {
        format!("cloud-init ended with an error (exit status {status}) in {module}:\n{lines}")
    };
    Failure::new(
        Stage::CloudInit,
        message,
        format!(
            "fix {relative} (cloud-init's module `{module}`); the whole log is /var/log/cloud-init-output.log on {vm} (`tartlab ssh {vm} sudo cat /var/log/cloud-init-output.log`), and `tartlab up` applies it again"
        ),
    )
}
