//! The lab lifecycle, knowing nothing of tart: the planner (`plan.rs`) compares what the lab
//! file declares with what the lab owns (`state.json`) and what the provider has; `up` then
//! runs each node through the stages `stages/` lists, all nodes at once, and the lab-wide
//! phases (steps, probes) after them. A failed node never stops the others; each node ends
//! with a report for the recap (`report.rs`). Events go to a `Reporter` (`events.rs`).
//!
//! Over 500 lines, for a reason: `Engine`'s impl is one block in which each command's order
//! (lock, inventory, plan, stages, phases, state) reads top to bottom; its helpers live in the
//! modules above.

pub mod events;
pub mod fanout;
pub mod inputs;
pub mod operations;
mod options;
pub mod plan;
mod pull;
pub mod remote;
mod report;
pub mod requirements;
pub mod snapshots;
pub mod stages;
pub mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_provisioning;

use std::collections::HashMap;
use std::sync::Arc;

use russh::keys::PrivateKey;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::guest::mask::Masker;
use crate::lab::{Lab, Node};
use crate::provider::{Inventory, Provider};
use crate::state::{KnownHosts, LabIndex, LabLock, LastUp, State, StateDir, StateStore, UpResult};
use events::{Action, Reporter, Stage};
pub use options::{Options, Provisioning, Reprovision, Timeouts};
use plan::{Blocker, Facts, Lifecycle, NodePlan, Presence};
pub use report::{Failure, NodeReport, WRITABLE};
use watch::{Address, AddressBoard};

/// Everything the node tasks share.
pub struct Context {
    pub provider: Arc<dyn Provider>,
    pub lab: Lab,
    pub dir: StateDir,
    pub store: StateStore,
    pub known: KnownHosts,
    pub key: Arc<PrivateKey>,
    pub reporter: Arc<Reporter>,
    /// Bounds the nodes that are being created, or logged into and provisioned, at once.
    pub limit: Arc<Semaphore>,
    pub addresses: AddressBoard,
    /// Which nodes' sshd answers (for the connectivity check).
    pub reachable: AddressBoard,
    pub options: Options,
    pub timeouts: Timeouts,
    /// Each lab user's authorized_keys lines (their keys, then the lab key).
    pub user_keys: HashMap<String, Vec<String>>,
    pub masker: Arc<Masker>,
    /// The lab lock, held for as long as the command works on the lab.
    _lock: Option<LabLock>,
}

impl Context {
    pub fn node(&self, vm: &str) -> Option<&Node> {
        self.lab.node(vm)
    }
}

/// The output keys the lab file marks secret.
pub fn secret_output_keys(lab: &Lab) -> std::collections::BTreeSet<String> {
    lab.file
        .provision
        .iter()
        .flat_map(|s| {
            s.outputs
                .iter()
                .filter(|o| o.secret())
                .map(|o| o.name().to_string())
        })
        .collect()
}

/// A node task that ended abnormally.
pub(crate) fn internal_failure() -> Failure {
    Failure::new(
        Stage::Internal,
        "the node's task ended abnormally",
        "this is a bug in tartlab; please report it with .tartlab/events.jsonl",
    )
}

/// Every secret output value the state knows, so it can be masked from the start.
pub fn known_secrets(lab: &Lab, state: &State) -> Vec<String> {
    let secret_keys = secret_output_keys(lab);
    state
        .vms
        .values()
        .flat_map(|vm| {
            vm.outputs
                .iter()
                .filter(|(k, _)| secret_keys.contains(k.as_str()))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Records, per VM, how this `up` ended for it (for `status`). One that came up was seen
/// ready, whatever boot it was in: sshd answered (or, with `--no-provision`, which asks for
/// no SSH, its address was known).
fn record_last_up(ctx: &Context, reports: &[NodeReport]) {
    let at = crate::clock::now_rfc3339();
    let _ = ctx.store.update(|state| {
        for report in reports {
            if let Some(vm) = state.vms.get_mut(&report.node) {
                if report.failure.is_none() {
                    vm.boot_unconfirmed = false;
                }
                vm.last_up = Some(LastUp {
                    result: if report.failure.is_some() {
                        UpResult::Failed
                    } else {
                        UpResult::Ok
                    },
                    stage: report.failure.as_ref().map(|f| f.stage.to_string()),
                    at: at.clone(),
                });
            }
        }
    });
}

/// Shuts each VM down from inside (then stops it if need be), in parallel.
async fn stop_each(ctx: &Arc<Context>, vms: Vec<String>, parallel: usize) -> Vec<NodeReport> {
    operations::per_node(ctx, vms, parallel, |ctx, vm| async move {
        let mut report = NodeReport::new(&vm);
        let how = operations::stop::gracefully(&ctx, &vm).await;
        if let Ok(how) = &how {
            ctx.reporter
                .done(&vm, Stage::Stop, &Action::Stopped(*how).to_string());
            report.actions.push(Action::Stopped(*how));
        }
        (report, how.map(|_| ()))
    })
    .await
}

/// The provider's inventory, or what to do when it cannot be read.
pub async fn read_inventory(provider: &dyn Provider) -> Result<Inventory, Error> {
    provider.inventory().await.map_err(|e| {
        Error::fatal(
            format!("cannot list {}'s VMs: {}", provider.name(), e.message),
            e.hint,
        )
    })
}

/// A lab opened for a changing command: locked, its state read, the provider's inventory
/// taken, the lab key at hand. `plan` says what `up` would do; `up`, `stop` and `down` do it.
pub struct Engine {
    lab: Lab,
    dir: StateDir,
    state: State,
    lock: Option<LabLock>,
    provider: Arc<dyn Provider>,
    options: Options,
    inventory: Inventory,
    key: PrivateKey,
    user_keys: HashMap<String, Vec<String>>,
    /// The list of labs the state's changes of VMs go to (`tartlab labs`).
    index: Option<LabIndex>,
}

impl Engine {
    /// Reads the state and the provider's inventory; makes the lab key on first use.
    pub async fn open(
        mut lab: Lab,
        dir: StateDir,
        lock: Option<LabLock>,
        provider: Arc<dyn Provider>,
        options: Options,
    ) -> Result<Engine, Error> {
        let (state, _) = dir
            .read_state_for(lab.name(), &lab.source.path)
            .map_err(|e| Error::fatal(e, ""))?;
        lab.keep_owned_names(|vm| state.knows(vm));
        let inventory = read_inventory(provider.as_ref()).await?;
        let key = dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| Error::fatal(e.to_string(), ""))?;
        let user_keys = inputs::user_keys(&lab, &public)
            .map_err(|e| Error::fatal(e.to_string(), "fix the path in the lab file"))?;
        Ok(Engine {
            lab,
            dir,
            state,
            lock,
            provider,
            options,
            inventory,
            key,
            user_keys,
            index: None,
        })
    }

    /// Writes each change of the lab's VMs to `index` from here on.
    pub fn keep_listed(&mut self, index: LabIndex) {
        self.index = Some(index);
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    pub fn presence(&self, vm: &str) -> Presence {
        Presence::of(&self.inventory, vm, self.state.vms.get(vm))
    }

    /// What `up` would do to each selected node.
    pub fn plan(&self, selected: &[String]) -> Vec<NodePlan> {
        plan::plan(
            &Facts {
                lab: &self.lab,
                state: &self.state,
                inventory: &self.inventory,
                capabilities: &self.provider.capabilities(),
                options: &self.options,
                user_keys: &self.user_keys,
            },
            selected,
        )
    }

    /// From now on, recreates the VMs only a recreate brings up, as `--recreate` does (the
    /// user said yes on a terminal).
    pub fn allow_recreate(&mut self) {
        self.options.recreate = true;
    }

    /// The line that says which VMs keep the names an older tartlab gave them, the first
    /// time (the state records that it was said, with the rest of this command's changes).
    pub fn kept_names_note_once(&mut self) -> Option<String> {
        if self.state.kept_names_noted {
            return None;
        }
        let note = self.lab.kept_names_note()?;
        self.state.kept_names_noted = true;
        Some(note)
    }

    pub fn orphans(&self) -> Vec<String> {
        plan::orphans(&self.lab.nodes, &self.state)
    }

    /// The shared context the stages work with.
    fn context(self, reporter: Arc<Reporter>) -> Arc<Context> {
        let masker = Arc::new(Masker::new(secret_output_keys(&self.lab)));
        masker.add(known_secrets(&self.lab, &self.state));
        let pending: HashMap<String, Address> = self
            .lab
            .nodes
            .iter()
            .map(|n| (n.vm_name.clone(), Address::Pending))
            .collect();
        let addresses = AddressBoard::new(pending.clone());
        let reachable = AddressBoard::new(pending);
        Arc::new(Context {
            known: KnownHosts::new(&self.dir),
            store: StateStore::new(&self.dir, self.state).listed_in(
                self.index,
                self.lab.name(),
                &self.lab.source.path,
                self.lab.file.provider.name(),
            ),
            key: Arc::new(self.key),
            limit: Arc::new(Semaphore::new(self.options.parallel.max(1))),
            provider: self.provider,
            lab: self.lab,
            dir: self.dir,
            reporter,
            addresses,
            reachable,
            options: self.options,
            timeouts: Timeouts::from_env(),
            user_keys: self.user_keys,
            masker,
            _lock: self.lock,
        })
    }

    /// Makes the images the plans need available, each pulled once, all at once; then
    /// re-reads the inventory (for their disk sizes) and plans again. A node whose image
    /// cannot be pulled is blocked, its failure saying why and where the lab file gives the
    /// image; the other nodes go on.
    async fn fetch_images(
        &mut self,
        plans: Vec<NodePlan>,
        selected: &[String],
        reporter: &Arc<Reporter>,
    ) -> Result<Vec<NodePlan>, Error> {
        let images = plan::images_to_fetch(
            &self.provider.capabilities(),
            &self.lab,
            &plans,
            &self.inventory,
        );
        if images.is_empty() {
            return Ok(plans);
        }
        pull::tell_who_waits(reporter, &self.lab, &plans, &images);
        let unavailable = pull::each(&self.provider, reporter, images).await;
        self.inventory = read_inventory(self.provider.as_ref()).await?;
        let mut plans = self.plan(selected);
        pull::block_unavailable(&self.lab, &mut plans, &unavailable);
        Ok(plans)
    }

    /// Refuses, before anything is made or changed, what the lab file asks for and the
    /// provider cannot do: a disk it cannot shrink (located in the lab file), a network
    /// mode it lacks.
    async fn preflight(&self, plans: &[NodePlan], json: bool) -> Result<(), Error> {
        let problems: Vec<crate::lab::Diagnostic> = plans
            .iter()
            .filter_map(|p| match &p.lifecycle {
                Lifecycle::Blocked(Blocker::DiskTooSmall(problem)) => {
                    let node = self.lab.node(&p.vm)?;
                    Some(self.lab.source.problem(
                        "disk",
                        &node.disk?.to_string(),
                        0,
                        format!("{}: {problem}", node.vm_name),
                        "give at least that size, or leave `disk` out to keep the image's".into(),
                    ))
                }
                _ => None,
            })
            .collect();
        if !problems.is_empty() {
            return Err(Error::InvalidLab {
                problems,
                json,
                changing: true,
            });
        }
        let mut modes: Vec<&crate::lab::NetworkMode> = Vec::new();
        for plan in plans.iter().filter(|p| p.lifecycle.boots()) {
            if let Some(node) = self.lab.node(&plan.vm) {
                if !modes.contains(&&node.network) {
                    modes.push(&node.network);
                }
            }
        }
        let capabilities = self.provider.capabilities();
        for mode in modes {
            if !capabilities.network_modes.contains(&mode.kind()) {
                return Err(Error::fatal(
                    format!(
                        "{} has no network mode {}",
                        self.provider.name(),
                        mode.kind()
                    ),
                    format!(
                        "choose one of {} in the lab file",
                        capabilities.network_modes.join(", ")
                    ),
                ));
            }
            self.provider
                .check_network(mode)
                .await
                .map_err(|e| match e.fix {
                    Some(command) => Error::NeedsSetup {
                        message: e.message,
                        hint: e.hint,
                        command,
                    },
                    None => Error::fatal(e.message, e.hint),
                })?;
        }
        Ok(())
    }

    /// `up` (and `start`): images, preflight, orphans, then every planned node through its
    /// stages and the lab-wide phases.
    pub async fn up(
        mut self,
        selected: Vec<String>,
        reporter: Arc<Reporter>,
        json: bool,
    ) -> Result<Vec<NodeReport>, Error> {
        let plans = self.plan(&selected);
        let plans = self.fetch_images(plans, &selected, &reporter).await?;
        self.preflight(&plans, json).await?;
        let orphans = self.orphans();
        let removing = if self.options.remove_orphans {
            operations::delete::Teardown::of(self.state(), &self.inventory, &orphans)
        } else {
            operations::delete::Teardown::default()
        };
        let inventory = std::mem::take(&mut self.inventory);
        let ctx = self.context(reporter);
        let removed = removing.run(&ctx).await?;
        let mut reports = stages::up(&ctx, &inventory, plans).await;
        record_last_up(&ctx, &reports);
        reports.extend(removed.into_iter().map(|mut r| {
            if r.failure.is_none() {
                r.actions = vec![Action::DeletedOrphan];
            }
            r
        }));
        Ok(reports)
    }

    /// Refuses `verb` (stop, start, restart) where the provider cannot start a VM again once
    /// it stops: the command would end the lab's VMs for good.
    pub fn refuse_lifecycle(&self, verb: &str) -> Result<(), Error> {
        if self.provider.capabilities().start_after_stop {
            return Ok(());
        }
        let name = self.provider.name();
        Err(Error::usage(
            format!("`tartlab {verb}` is not possible with {name}: a VM of {name} runs from its creation until it is deleted, and once stopped it can never start again"),
            "nothing was changed; `tartlab down` then `tartlab up` makes the VMs anew (their disks are lost), `tartlab up` alone keeps them as they are",
        ))
    }

    /// `stop`: the selected VMs that run, shut down from inside, then stopped if need be.
    pub async fn stop(self, selected: &[String], reporter: Arc<Reporter>) -> Vec<NodeReport> {
        let running: Vec<String> = self.running_of(selected);
        let parallel = self.options.parallel;
        let ctx = self.context(reporter);
        stop_each(&ctx, running, parallel).await
    }

    /// `restart`: `stop`, then `up` of the same nodes (without creating any), under the one
    /// lab lock. A node that does not stop is not started.
    pub async fn restart(
        self,
        selected: Vec<String>,
        reporter: Arc<Reporter>,
        json: bool,
    ) -> Result<Vec<NodeReport>, Error> {
        let running: Vec<String> = self.running_of(&selected);
        let parallel = self.options.parallel;
        let ctx = self.context(reporter.clone());
        let stopped = stop_each(&ctx, running, parallel).await;
        let failed: Vec<NodeReport> = stopped
            .into_iter()
            .filter(|r| r.failure.is_some())
            .collect();
        let Ok(ctx) = Arc::try_unwrap(ctx) else {
            return Err(Error::fatal(
                "the stop phase still held the lab",
                "this is a bug in tartlab; please report it",
            ));
        };
        let again = Engine::open(ctx.lab, ctx.dir, ctx._lock, ctx.provider, ctx.options).await?;
        let selected: Vec<String> = selected
            .into_iter()
            .filter(|vm| !failed.iter().any(|r| &r.node == vm))
            .collect();
        let mut reports = again.up(selected, reporter, json).await?;
        reports.extend(failed);
        Ok(reports)
    }

    /// The selected VMs the lab owns that run now.
    pub fn running_of(&self, selected: &[String]) -> Vec<String> {
        selected
            .iter()
            .filter(|vm| matches!(self.presence(vm), Presence::Owned { running: true }))
            .cloned()
            .collect()
    }

    /// What `down` of `vms` (VMs the state owns) will delete, forget or leave alone.
    pub fn teardown(&self, vms: &[String]) -> operations::delete::Teardown {
        operations::delete::Teardown::of(&self.state, &self.inventory, vms)
    }

    /// `down`: forgets what is gone or no longer the lab's, deletes the rest; with
    /// `snapshots`, the lab's snapshots too (how many, with the reports).
    pub async fn down(
        self,
        teardown: operations::delete::Teardown,
        reporter: Arc<Reporter>,
        snapshots: bool,
    ) -> Result<(Vec<NodeReport>, usize), Error> {
        let ctx = self.context(reporter);
        let reports = teardown.run(&ctx).await?;
        let deleted = if snapshots {
            snapshots::delete_all(&ctx).await?
        } else {
            0
        };
        Ok((reports, deleted))
    }
}
