//! Applying changed settings (cpu, memory, disk, network) to a VM the lab owns: a running VM
//! is shut down from inside first, then resized; it boots with them in the next stage. A
//! provider that cannot resize, or start a VM again, is never asked to.

use super::{NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::operations::stop;
use crate::engine::plan::resource_changes;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::{BoxFuture, Resize};

pub struct Configure;

impl NodeStage for Configure {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let node = &run.node;
            let vm = &node.vm_name;
            let owned = ctx.store.vm(vm).unwrap_or_default();
            let changes = resource_changes(node, &owned);
            if changes.is_empty() {
                return Ok(());
            }
            let text = Action::Changed(changes.clone()).to_string();
            // The planner makes no such change on a provider that cannot (a recreate, named);
            // a VM adopted just now with other settings gets here, and is left as it is.
            let capabilities = ctx.provider.capabilities();
            if !capabilities.resize || !capabilities.start_after_stop {
                return Err(Failure::new(
                    Stage::Configure,
                    format!("{vm} is not as the lab file says ({text}), and {} cannot change an existing VM; it was left as it is", ctx.provider.name()),
                    "write its settings in the lab file, or make it anew with `tartlab up --recreate`",
                ));
            }
            if run.running {
                ctx.reporter
                    .started(vm, Stage::Stop, &format!("restart to apply {text}"));
                stop::gracefully(ctx, vm).await?;
                run.running = false;
            }
            let resize = Resize {
                cpu: Some(node.cpu).filter(|c| *c != owned.cpu),
                memory: Some(node.memory).filter(|m| *m != owned.memory),
                disk: node.disk.filter(|d| owned.disk != Some(*d)),
            };
            if resize != Resize::default() {
                ctx.reporter.started(vm, Stage::Configure, &text);
                ctx.provider
                    .resize(vm, &resize)
                    .await
                    .map_err(|e| Failure::from_provider(Stage::Configure, e))?;
            }
            ctx.store
                .update_vm(vm, |o| {
                    o.cpu = node.cpu;
                    o.memory = node.memory;
                    o.disk = node.disk.or(o.disk);
                    o.network = node.network.clone();
                })
                .map_err(|e| Failure::new(Stage::Configure, e, WRITABLE))?;
            run.report.actions.push(Action::Changed(changes));
            Ok(())
        })
    }
}
