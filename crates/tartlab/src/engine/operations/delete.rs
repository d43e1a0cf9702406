//! Deleting VMs the lab owns (`down`, `up --remove-orphans`, `up --recreate`): stopped the
//! hard way first (they are being deleted), then deleted and forgotten with their pinned
//! keys. A VM that is gone is forgotten; one whose identity changed is no longer the lab's:
//! it is left alone, forgotten, and a warning says so.

use std::sync::Arc;
use std::time::Duration;

use super::per_node;
use crate::engine::events::{Action, Stage};
use crate::engine::plan::Presence;
use crate::engine::{Context, Failure, NodeReport, WRITABLE};
use crate::error::Error;
use crate::provider::{Inventory, Power};
use crate::state::State;

/// Stops (if it runs) and deletes an owned VM, then forgets it.
pub async fn delete(ctx: &Context, vm: &str, power: Power) -> Result<(), Failure> {
    if power == Power::Running {
        ctx.reporter
            .started(vm, Stage::Stop, "stopping it to delete it");
        ctx.provider
            .stop(vm, Duration::from_secs(5))
            .await
            .map_err(|e| {
                Failure::new(
                    Stage::Stop,
                    e.message,
                    format!("{}, then run `tartlab down` again", e.hint),
                )
            })?;
    }
    ctx.reporter.started(vm, Stage::Delete, "deleting it");
    ctx.provider
        .delete(vm)
        .await
        .map_err(|e| Failure::from_provider(Stage::Delete, e))?;
    ctx.known
        .pin(vm, &[])
        .map_err(|e| Failure::new(Stage::Delete, e, WRITABLE))?;
    ctx.store
        .update(|s| {
            s.vms.remove(vm);
        })
        .map_err(|e| Failure::new(Stage::Delete, e, WRITABLE))
}

/// Owned VMs sorted by what is to be done with them.
#[derive(Debug, Default)]
pub struct Teardown {
    /// To delete, with whether each runs.
    pub delete: Vec<(String, Power)>,
    /// Gone already: to forget.
    pub gone: Vec<String>,
    /// No longer the lab's (another identity): to forget and leave alone.
    pub left_alone: Vec<String>,
}

impl Teardown {
    pub fn of(state: &State, inventory: &Inventory, vms: &[String]) -> Teardown {
        let mut teardown = Teardown::default();
        for vm in vms {
            match Presence::of(inventory, vm, state.vms.get(vm)) {
                Presence::Owned { running } => {
                    teardown.delete.push((vm.clone(), Power::of(running)))
                }
                Presence::Unconfirmed => teardown
                    .delete
                    .push((vm.clone(), Power::of(inventory.running(vm)))),
                Presence::Foreign { .. } => teardown.left_alone.push(vm.clone()),
                Presence::Missing => teardown.gone.push(vm.clone()),
            }
        }
        teardown
    }

    /// The VMs it deletes.
    pub fn names(&self) -> Vec<String> {
        self.delete.iter().map(|(vm, _)| vm.clone()).collect()
    }

    /// Forgets the VMs that are gone or no longer the lab's (saying so), then deletes the rest.
    pub async fn run(self, ctx: &Arc<Context>) -> Result<Vec<NodeReport>, Error> {
        let forget: Vec<String> = self.gone.iter().chain(&self.left_alone).cloned().collect();
        if !forget.is_empty() {
            ctx.store
                .update(|s| {
                    for vm in &forget {
                        s.vms.remove(vm);
                    }
                })
                .map_err(|e| Error::fatal(e, "check that .tartlab/ is writable"))?;
        }
        for vm in &self.left_alone {
            ctx.reporter.warning(
                Some(vm),
                Stage::Delete,
                &format!("{vm} is no longer the VM this lab created (its identity changed); it was left alone and forgotten"),
            );
        }
        let vms = self.names();
        let power: std::collections::HashMap<String, Power> = self.delete.into_iter().collect();
        let parallel = ctx.options.parallel;
        Ok(per_node(ctx, vms, parallel, |ctx, vm| {
            let power = power.get(&vm).copied().unwrap_or(Power::Stopped);
            async move {
                let mut report = NodeReport::new(&vm);
                let result = delete(&ctx, &vm, power).await.map(|()| {
                    ctx.reporter.done(&vm, Stage::Delete, "deleted");
                    report.actions.push(Action::Deleted);
                });
                (report, result)
            }
        })
        .await)
    }
}
