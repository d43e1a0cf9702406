//! Making a node's VM: the intent recorded in the state file first (so a crash never leaves
//! a VM the lab does not know it made), then the provider's create (a clone with its own
//! identity, size and network), then the identity that makes it the lab's. A provider that
//! creates VMs running (Orchard) has booted the node here; tart's clone is booted by the next
//! stages. `--recreate` deletes the VM made from another image first.

use super::{NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::operations::delete;
use crate::engine::plan::Lifecycle;
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::{BoxFuture, CreateFrom, Power, VmSpec};
use crate::state::OwnedVm;

pub struct Create;

impl NodeStage for Create {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let (from, action) = match run.lifecycle {
                Lifecycle::Create => (CreateFrom::Image, Action::Created),
                Lifecycle::FinishCreate => (CreateFrom::Interrupted, Action::Created),
                Lifecycle::Recreate { running, .. } => {
                    delete::delete(ctx, &run.node.vm_name, Power::of(running)).await?;
                    (CreateFrom::Image, Action::Recreated)
                }
                _ => return Ok(()),
            };
            let running = create(ctx, run, from).await?;
            run.report.actions.push(action);
            run.running = running;
            if running {
                run.booted = true;
                run.report.actions.push(Action::Booted);
            }
            Ok(())
        })
    }
}

/// Makes the VM; whether it runs already.
async fn create(ctx: &Context, run: &mut NodeRun, from: CreateFrom) -> Result<bool, Failure> {
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
                    placement: ctx
                        .provider
                        .capabilities()
                        .placement
                        .then(|| node.placement.clone()),
                    // Made for these folders: its first boot gives them (no change to plan).
                    mounts: node.mounts.clone(),
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
        network: node.network.clone(),
        login: node.login.clone(),
        placement: node.placement.clone(),
        log: ctx.dir.run_log(vm),
    };
    let limit = ctx.timeouts.create;
    let created = tokio::time::timeout(limit, ctx.provider.create(&spec, from))
        .await
        .map_err(|_| {
            Failure::new(
                Stage::Create,
                format!("making {vm} from {} did not finish within {} s", node.image, limit.as_secs()),
                format!("the {} create goes on by itself; check its free space, then `tartlab up` again (or raise TARTLAB_CREATE_TIMEOUT)", ctx.provider.name()),
            )
        })?
        .map_err(|e| Failure::from_provider(Stage::Create, e))?;
    run.release_slot();
    ctx.store
        .update_vm(vm, |o| o.mac = Some(created.identity))
        .map_err(|e| Failure::new(Stage::Create, e, WRITABLE))?;
    Ok(created.running)
}
