//! Booting a VM that does not run: the provider starts it in the background (tart: `tart
//! run --no-graphics` in its own session, output appended to `logs/VM.run.log`); it outlives
//! tartlab. The state says a boot was begun before it is (cleared once the node is seen
//! ready), so a VM whose booting command was cut short is waited for by the next `up`
//! (`Lifecycle::FinishBoot`) instead of being taken as converged.

use super::{NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::plan::Lifecycle;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::BoxFuture;

pub struct Boot;

impl NodeStage for Boot {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let vm = &run.node.vm_name;
            if run.running {
                if run.lifecycle == Lifecycle::FinishBoot {
                    // Ready only once its address and sshd answer, as a boot now is.
                    ctx.reporter.started(
                        vm,
                        Stage::Boot,
                        "its last boot was cut short: waiting for it",
                    );
                    run.booted = true;
                }
                return Ok(());
            }
            let mounts = run.node.mounts.clone();
            ctx.store
                .update_vm(vm, |o| {
                    o.boot_unconfirmed = true;
                    o.mounts = mounts;
                })
                .map_err(|e| Failure::new(Stage::Boot, e, WRITABLE))?;
            ctx.reporter.started(vm, Stage::Boot, "starting");
            ctx.provider
                .start_sharing(
                    vm,
                    &run.node.network,
                    &run.node.mounts,
                    &ctx.dir.run_log(vm),
                )
                .await
                .map_err(|e| Failure::from_provider(Stage::Boot, e))?;
            run.running = true;
            run.booted = true;
            run.report.actions.push(Action::Booted);
            Ok(())
        })
    }
}
