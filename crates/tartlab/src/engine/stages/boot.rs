//! Booting a VM that does not run: the provider starts it in the background (tart: `tart
//! run --no-graphics` in its own session, output appended to `logs/VM.run.log`); it outlives
//! tartlab.

use super::{NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::{Context, Failure};
use crate::provider::BoxFuture;

pub struct Boot;

impl NodeStage for Boot {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if run.running {
                return Ok(());
            }
            let vm = &run.node.vm_name;
            ctx.reporter.started(vm, Stage::Boot, "starting");
            ctx.provider
                .start(vm, &run.node.network, &ctx.dir.run_log(vm))
                .await
                .map_err(|e| Failure::from_provider(Stage::Boot, e))?;
            run.running = true;
            run.booted = true;
            run.report.actions.push(Action::Booted);
            Ok(())
        })
    }
}
