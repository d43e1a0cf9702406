//! Making a node's VM: the intent recorded in the state file first (so a crash never leaves
//! a VM the lab does not know it made), then the provider's create (a clone with its own
//! identity and size), then the identity that makes it the lab's. `--recreate` deletes the
//! VM made from another image first.

use super::{delete, NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::plan::Lifecycle;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::{BoxFuture, CreateFrom, Power, VmSpec};
use crate::state::OwnedVm;

pub struct Create;

impl NodeStage for Create {
    fn stage(&self) -> Stage {
        Stage::Create
    }

    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let (from, action) = match run.lifecycle {
                Lifecycle::Create => (CreateFrom::Image, Action::Created),
                Lifecycle::FinishCreate => (CreateFrom::InterruptedClone, Action::Created),
                Lifecycle::Recreate { running } => {
                    delete::delete(ctx, &run.node.vm_name, Power::of(running)).await?;
                    (CreateFrom::Image, Action::Recreated)
                }
                _ => return Ok(()),
            };
            create(ctx, run, from).await?;
            run.report.actions.push(action);
            run.running = false;
            Ok(())
        })
    }
}

async fn create(ctx: &Context, run: &mut NodeRun, from: CreateFrom) -> Result<(), Failure> {
    let node = run.node.clone();
    let vm = &node.vm_name;
    run.hold_slot(ctx).await;
    ctx.reporter
        .started(vm, Stage::Create, &format!("from {}", node.image));
    ctx.store
        .update(|s| {
            s.vms.insert(
                vm.clone(),
                OwnedVm {
                    mac: None,
                    image: node.image.clone(),
                    cpu: node.cpu,
                    memory: node.memory,
                    disk: node.disk,
                    network: node.network.clone(),
                    ..OwnedVm::default()
                },
            );
        })
        .map_err(|e| Failure::new(Stage::Create, e, WRITABLE))?;
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new(Stage::Create, e, WRITABLE))?;
    let spec = VmSpec {
        name: vm.clone(),
        image: node.image.clone(),
        cpu: node.cpu,
        memory: node.memory,
        disk: node.disk,
    };
    let limit = ctx.timeouts.create;
    let identity = tokio::time::timeout(limit, ctx.provider.create(&spec, from))
        .await
        .map_err(|_| {
            Failure::new(
                Stage::Create,
                format!("making {vm} from {} did not finish within {} s", node.image, limit.as_secs()),
                "the tart command goes on by itself; check the free disk space, then `tartlab up` again (or raise TARTLAB_CREATE_TIMEOUT)",
            )
        })?
        .map_err(|e| Failure::from_provider(Stage::Create, e))?;
    run.release_slot();
    ctx.store
        .update_vm(vm, |o| o.mac = Some(identity))
        .map_err(|e| Failure::new(Stage::Create, e, WRITABLE))
}
