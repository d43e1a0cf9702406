//! The node's address. Where the provider keeps a VM's address across its boots (tart: the
//! same identity gets the same lease), a VM that already ran uses its recorded address at
//! once; otherwise (a VM booted now, or a provider whose VMs move, as Orchard's do when
//! rescheduled) the provider is asked, while it watches that the VM keeps running: the
//! requirement "VM has an address" (`operations::address`).

use std::time::Duration;

use super::{NodeRun, NodeStage};
use crate::engine::events::Stage;
use crate::engine::operations::address;
use crate::engine::watch::Address;
use crate::engine::{Context, Failure};
use crate::provider::BoxFuture;

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
                    ctx.reporter
                        .started(&vm, Stage::Ip, "waiting for its address");
                    let ip = address::wait_for(ctx, &run.node, Stage::Ip, timeout).await?;
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
