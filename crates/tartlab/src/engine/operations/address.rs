//! A node's address, waited for as the requirement "VM has an address": the provider looks
//! (within the time left), the one loop of requirements.rs looks again until the timeout,
//! and the address found is recorded. The address stage and the power cycle both use it.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::events::Stage;
use crate::engine::requirements::{Check, Requirement, Unmet};
use crate::engine::{Context, Failure, WRITABLE};
use crate::lab::Node;
use crate::provider::{AddressLook, AddressWait};

/// Waits up to `timeout` for the node's address and records it; a failure is at `stage`.
pub async fn wait_for(
    ctx: &Context,
    node: &Node,
    stage: Stage,
    timeout: Duration,
) -> Result<String, Failure> {
    let vm = &node.vm_name;
    let identity = ctx.store.vm(vm).and_then(|o| o.mac).unwrap_or_default();
    let has_address = Requirement {
        name: format!("{vm} has an address"),
        hint: ctx.provider.address_hint(&node.network),
        log: console_log(ctx, vm),
        timeout,
        interval: Duration::from_millis(250),
    };
    let (identity, network) = (identity.as_str(), &node.network);
    let ip = has_address
        .wait_for(|left| async move {
            let wait = AddressWait { timeout: left };
            match ctx.provider.address(vm, identity, network, wait).await {
                AddressLook::Known(ip) => Check::Met(ip),
                AddressLook::NotYet(why) => Check::NotYet(why),
                AddressLook::Failed(e) => Check::Fatal(e),
            }
        })
        .await
        .map_err(|unmet| match unmet {
            Unmet::Fatal(e) => Failure::from_provider(stage, e),
            Unmet::TimedOut { last } => has_address.failure(
                stage,
                format!(
                    "no IP address for {vm} within {} s: {last}",
                    has_address.secs()
                ),
            ),
        })?;
    ctx.store
        .update_vm(vm, |o| o.ip = Some(ip.clone()))
        .map_err(|e| Failure::new(stage, e, WRITABLE))?;
    Ok(ip)
}

/// The VM's console output on this host, the log that shows why a wait on it never ends.
pub fn console_log(ctx: &Context, vm: &str) -> Option<PathBuf> {
    ctx.provider
        .console_logs(vm, &ctx.dir.run_log(vm))
        .into_iter()
        .next()
}
