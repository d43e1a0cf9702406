//! Before anything is done to a node: refuse what the plan found blocked (a foreign VM, an
//! image change, a disk tart cannot shrink, a VM `start` cannot create, an image that could
//! not be pulled, at stage `pull`), and adopt a foreign VM when `--adopt` asks for it (its
//! own settings and identity recorded as the lab's).

use super::{NodeRun, NodeStage};
use crate::engine::events::{Action, Stage};
use crate::engine::plan::{Blocker, Lifecycle};
use crate::engine::{Context, Failure, WRITABLE};
use crate::provider::BoxFuture;
use crate::state::OwnedVm;

pub struct Check;

impl NodeStage for Check {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            match &run.lifecycle {
                Lifecycle::Blocked(blocker) => {
                    let (message, hint) = blocker.explain(&run.node.vm_name);
                    let stage = match blocker {
                        Blocker::ImageUnavailable { .. } => Stage::Pull,
                        _ => Stage::Check,
                    };
                    Err(Failure::new(stage, message, hint))
                }
                Lifecycle::Adopt { .. } => {
                    adopt(ctx, run).await?;
                    run.report.actions.push(Action::Adopted);
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

/// Records a VM the lab did not create as the lab's, with the settings it has.
async fn adopt(ctx: &Context, run: &NodeRun) -> Result<(), Failure> {
    let node = &run.node;
    let vm = &node.vm_name;
    let (settings, identity) = ctx
        .provider
        .describe(vm)
        .await
        .map_err(|e| Failure::from_provider(Stage::Adopt, e))?;
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new(Stage::Adopt, e, WRITABLE))?;
    ctx.store
        .update(|s| {
            s.vms.insert(
                vm.clone(),
                OwnedVm {
                    mac: Some(identity),
                    image: node.image.clone(),
                    cpu: settings.cpu,
                    memory: settings.memory,
                    disk: node.disk,
                    network: node.network.clone(),
                    ..OwnedVm::default()
                },
            );
        })
        .map_err(|e| Failure::new(Stage::Adopt, e, WRITABLE))
}
