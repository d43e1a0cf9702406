//! The node's host folders in the guest: one `/etc/fstab` line per mount (`TAG GUEST
//! virtiofs ro|rw,nofail 0 0`) between `# BEGIN tartlab mounts` and `# END tartlab mounts`,
//! so the guest's init mounts them at every boot (systemd's fstab generator on the cirruslabs
//! images, tart-sim's init on its light guests), and each mounted now. A mount gone from
//! the block is unmounted. Applied again only when the block changes (`applied["mounts"]`).

use super::{run_locked_script, NodeRun, NodeStage};
use crate::engine::events::Stage;
use crate::engine::remote::hash;
use crate::engine::{Context, Failure, WRITABLE};
use crate::lab::mounts::fstab_lines;
use crate::provider::BoxFuture;

/// The state key of the fstab block.
const MOUNTS: &str = "mounts";

const SCRIPT: &str = r#"set -euo pipefail
block=$1
# Mounts of the old block that the new one no longer has: unmounted.
old=$(awk '/^# BEGIN tartlab mounts$/ {on=1; next} /^# END tartlab mounts$/ {on=0; next} on' /etc/fstab)
while read -r tag dir _; do
  [ -n "$tag" ] || continue
  if ! printf '%s\n' "$block" | awk -v t="$tag" -v d="$dir" '$1==t && $2==d {f=1} END {exit !f}'; then
    if mountpoint -q "$dir"; then umount "$dir"; fi
  fi
done <<< "$old"
tmp=$(mktemp)
awk '/^# BEGIN tartlab mounts$/ {skip=1; next} /^# END tartlab mounts$/ {skip=0; next} !skip' /etc/fstab > "$tmp"
if [ -n "$block" ]; then printf '# BEGIN tartlab mounts\n%s\n# END tartlab mounts\n' "$block" >> "$tmp"; fi
cat "$tmp" > /etc/fstab
rm -f "$tmp"
while read -r tag dir _ opts _; do
  [ -n "$tag" ] || continue
  mkdir -p "$dir"
  if mountpoint -q "$dir"; then umount "$dir"; fi
  mount -t virtiofs -o "${opts%%,*}" "$tag" "$dir"
done <<< "$block"
"#;

pub struct Mounts;

impl NodeStage for Mounts {
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
            let block = fstab_lines(&run.node.mounts);
            let owned = ctx.store.vm(&vm).unwrap_or_default();
            let applied = owned.applied.get(MOUNTS);
            // Nothing to do: never mounted anything, or this very block is in place.
            if (applied.is_none() && block.is_empty())
                || applied == Some(&hash(&["mounts/1", &block]))
            {
                return Ok(());
            }
            ctx.reporter
                .started(&vm, Stage::Mounts, "mounting host folders");
            let guest = run.guest(ctx).await?;
            run_locked_script(
                ctx,
                &guest,
                &vm,
                Stage::Mounts,
                ("the host folders", SCRIPT, &[&block]),
                None,
            )
            .await?;
            ctx.store
                .update_vm(&vm, |o| {
                    o.applied.insert(MOUNTS.into(), hash(&["mounts/1", &block]));
                })
                .map_err(|e| Failure::new(Stage::Mounts, e, WRITABLE))?;
            let n = run.node.mounts.len();
            ctx.reporter
                .done(&vm, Stage::Mounts, &format!("{n} host folder(s)"));
            Ok(())
        })
    }
}
