//! The lab's block in each node's `/etc/hosts`: once every node in its scope (`hosts: none |
//! cluster | lab`) has an address or has failed, one `IP NAME` line per node, between
//! `# BEGIN tartlab` and `# END tartlab`; the rest of the file is left as it is. This stage
//! decides what the block is and whether the node needs it; the network stage writes it, in
//! the same remote command as the connectivity check (one command where there were two). A
//! node with no peer in its scope gets no block (unless it had one, which is then updated).

use super::{NodeRun, NodeStage};
use crate::engine::events::{Provisioned, Stage, Wait};
use crate::engine::inputs;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::BoxFuture;

/// The shell that writes the block (in `$block`) and says so; the network stage's command
/// starts with it.
pub const WRITE_BLOCK: &str = r#"tmp=$(mktemp)
awk '/^# BEGIN tartlab$/ {skip=1; next} /^# END tartlab$/ {skip=0; next} !skip' /etc/hosts > "$tmp"
if [ -n "$block" ]; then printf '# BEGIN tartlab\n%s\n# END tartlab\n' "$block" >> "$tmp"; fi
cat "$tmp" > /etc/hosts
rm -f "$tmp"
echo 'tartlab-done: hosts'
"#;

/// A block the node needs and has not got yet: what the network stage writes.
pub struct PendingHosts {
    pub block: String,
    pub hash: String,
    pub lines: usize,
}

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
            let had_block = applied.contains_key(inputs::HOSTS);
            let has_peers = scope.iter().any(|other| *other != vm);
            if applied.get(inputs::HOSTS) == Some(&hash) || (!has_peers && !had_block) {
                if !pending.is_empty() {
                    ctx.reporter.done(&vm, Stage::Hosts, "unchanged");
                }
                return Ok(());
            }
            run.pending_hosts = Some(PendingHosts {
                block,
                hash,
                lines: entries.len(),
            });
            Ok(())
        })
    }
}

/// Records a block the guest said it wrote.
pub fn record(ctx: &Context, run: &mut NodeRun, written: PendingHosts) -> Result<(), Failure> {
    let vm = run.node.vm_name.clone();
    ctx.store
        .update_vm(&vm, |o| {
            o.applied.insert(inputs::HOSTS.into(), written.hash);
        })
        .map_err(|e| Failure::new(Stage::Hosts, e, WRITABLE))?;
    run.provisioned.push(Provisioned::Hosts);
    ctx.reporter
        .done(&vm, Stage::Hosts, &format!("{} line(s)", written.lines));
    Ok(())
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
        let script = format!("set -euo pipefail\nblock=$1\n{WRITE_BLOCK}")
            .replace("/etc/hosts", &hosts_file.display().to_string());
        let out = std::process::Command::new("bash")
            .args(["-c", &script, "x", "10.0.0.1 a\n10.0.0.2 b"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "tartlab-done: hosts\n"
        );
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
