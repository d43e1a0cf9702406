//! A power cycle from inside: the guest shut down gracefully, the VM started again, its
//! address taken anew and recorded. Where a reboot from inside ends the VM (tart:
//! Virtualization.framework has no guest reset) this is how a guest reboots; a provider that
//! cannot start a VM again is refused before anything is stopped.

use super::{address, stop};
use crate::engine::events::Stage;
use crate::engine::{Context, Failure};
use crate::lab::Node;

/// Shuts the node down from inside, starts it again and returns its address; `why` says
/// what for, in its progress line.
pub async fn power_cycle(
    ctx: &Context,
    node: &Node,
    stage: Stage,
    why: &str,
) -> Result<String, Failure> {
    let vm = &node.vm_name;
    let capabilities = ctx.provider.capabilities();
    if !capabilities.start_after_stop {
        let reboot = if capabilities.reboot_ends_vm {
            ", and a reboot from inside would end it too"
        } else {
            ""
        };
        return Err(Failure::new(
            stage,
            format!(
                "{vm} needs a restart {why}, and {} cannot start a VM again after a power-off{reboot}; it was left running",
                ctx.provider.name()
            ),
            format!("remove what needs the restart from {vm}'s settings (cloud_init:), or run its commands as a provisioning step"),
        ));
    }
    ctx.reporter
        .started(vm, stage, &format!("restarting the VM {why}"));
    stop::gracefully(ctx, vm)
        .await
        .map_err(|f| Failure::new(stage, f.message, f.hint))?;
    ctx.store
        .update_vm(vm, |o| {
            o.boot_unconfirmed = true;
            o.mounts = node.mounts.clone();
        })
        .map_err(|e| Failure::new(stage, e, crate::engine::WRITABLE))?;
    ctx.provider
        .start_sharing(vm, &node.network, &node.mounts, &ctx.dir.run_log(vm))
        .await
        .map_err(|e| Failure::from_provider(stage, e))?;
    address::wait_for(ctx, node, stage, ctx.timeouts.ip).await
}
