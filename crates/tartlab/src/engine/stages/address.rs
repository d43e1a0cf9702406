//! The node's address. Where the provider keeps a VM's address across its boots (tart: the
//! same identity gets the same lease), a VM that already ran uses its recorded address at
//! once; otherwise (a VM booted now, or a provider whose VMs move, as Orchard's do when
//! rescheduled) the provider is asked, while it watches that the VM keeps running.

use std::time::Duration;

use super::{NodeRun, NodeStage};
use crate::engine::events::Stage;
use crate::engine::watch::Address;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::{AddressWait, BoxFuture};

pub struct WaitForAddress;

impl NodeStage for WaitForAddress {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let vm = run.node.vm_name.clone();
            let owned = ctx.store.vm(&vm).unwrap_or_default();
            let stable = ctx.provider.capabilities().stable_address;
            let ip = match (run.booted, owned.ip) {
                (false, Some(ip)) if stable => ip,
                (booted, known) => {
                    let timeout = if booted || known.is_none() {
                        ctx.timeouts.ip
                    } else {
                        Duration::from_secs(5)
                    };
                    let identity = owned.mac.unwrap_or_default();
                    ctx.reporter
                        .started(&vm, Stage::Ip, "waiting for its address");
                    let ip = ctx
                        .provider
                        .address(&vm, &identity, &run.node.network, AddressWait { timeout })
                        .await
                        .map_err(|e| Failure::from_provider(Stage::Ip, e))?;
                    ctx.store
                        .update_vm(&vm, |o| o.ip = Some(ip.clone()))
                        .map_err(|e| Failure::new(Stage::Ip, e, WRITABLE))?;
                    ctx.reporter.address(&vm, &ip);
                    ip
                }
            };
            run.report.ip = Some(ip.clone());
            run.ip = Some(ip.clone());
            ctx.addresses.publish(&vm, Address::Known(ip));
            Ok(())
        })
    }
}
