//! The lab's block in each node's `/etc/hosts`: once every node in its scope (`hosts: none |
//! cluster | lab`) has an address or has failed, one `IP NAME` line per node, between
//! `# BEGIN tartlab` and `# END tartlab`; the rest of the file is left as it is.

use super::{run_locked_script, NodeRun, NodeStage};
use crate::engine::events::{Provisioned, Stage, Wait};
use crate::engine::inputs;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::BoxFuture;

const HOSTS: &str = r#"set -euo pipefail
block=$1
tmp=$(mktemp)
awk '/^# BEGIN tartlab$/ {skip=1; next} /^# END tartlab$/ {skip=0; next} !skip' /etc/hosts > "$tmp"
if [ -n "$block" ]; then printf '# BEGIN tartlab\n%s\n# END tartlab\n' "$block" >> "$tmp"; fi
cat "$tmp" > /etc/hosts
rm -f "$tmp"
"#;

pub struct Hosts;

impl NodeStage for Hosts {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if !run.provisioning(ctx) {
                return Ok(());
            }
            let vm = run.node.vm_name.clone();
            let scope = inputs::hosts_scope(&ctx.lab.file, &ctx.lab.nodes, &run.node);
            // Waiting for other nodes takes no `--parallel` slot.
            run.release_slot();
            // Said only when there is something to wait for: a converged run stays quiet.
            let pending = ctx.addresses.pending(&scope);
            if !pending.is_empty() {
                ctx.reporter.waiting(
                    &vm,
                    Stage::Hosts,
                    Wait::Peers {
                        nodes: pending.clone(),
                    },
                    &format!("waiting for {}'s address", super::names(&pending)),
                );
            }
            let entries = ctx.addresses.settled(&scope).await;
            let block = inputs::hosts_block(&entries);
            let hash = inputs::hosts_hash(&block);
            let applied = ctx.store.vm(&vm).unwrap_or_default().applied;
            if applied.get(inputs::HOSTS) == Some(&hash) {
                if !pending.is_empty() {
                    ctx.reporter.done(&vm, Stage::Hosts, "unchanged");
                }
                return Ok(());
            }
            run.hold_slot(ctx).await;
            let guest = run.guest(ctx).await?;
            run_locked_script(
                ctx,
                &guest,
                &vm,
                Stage::Hosts,
                ("the /etc/hosts block", HOSTS, &[&block]),
                None,
            )
            .await?;
            ctx.store
                .update_vm(&vm, |o| {
                    o.applied.insert(inputs::HOSTS.into(), hash);
                })
                .map_err(|e| Failure::new(Stage::Hosts, e, WRITABLE))?;
            run.provisioned.push(Provisioned::Hosts);
            run.hosts_changed = true;
            ctx.reporter
                .done(&vm, Stage::Hosts, &format!("{} line(s)", entries.len()));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
