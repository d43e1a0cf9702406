//! Whole-lab snapshots: `save` shuts the selected nodes down from inside (a consistent
//! point), has the provider copy each stopped VM to a snapshot VM, records what the state
//! knew of each node, and starts again those that ran; `restore` deletes each node's VM,
//! copies it back with its identity (so its address), puts the state's records and pinned
//! keys back and brings the nodes up as `up` does, which then finds nothing to provision.
//!
//! Both write a journal in `state.json` first (atomically, as every state write): a save
//! that did not end is undone by the next snapshot command, a restore is finished. Only
//! VMs the state proves are the lab's (by identity) are ever deleted.

mod nodes;

use std::collections::BTreeSet;
use std::sync::Arc;

use russh::keys::PublicKey;

use super::events::{Reporter, Stage};
use super::plan::Presence;
use super::{Engine, NodeReport, WRITABLE};
use crate::error::Error;
use crate::state::{Journal, JournalOp, OwnedVm, Snapshot, SnapshotNode};
pub use nodes::{delete_all, rows};
use nodes::{
    delete_snapshot, finish_save, low_space, merge, no_such_snapshot, reopen, restore_nodes,
    save_nodes, undo_save,
};

/// A snapshot as `snapshot list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRow {
    pub name: String,
    pub at: String,
    pub nodes: Vec<String>,
    /// The snapshot VMs' size on the host's disk (GB, as the provider reports it).
    pub size_gb: Option<u64>,
    /// Whether the lab file changed since it was saved (a restore then applies the change).
    pub lab_changed: bool,
}

/// The lab file's hash, recorded with each snapshot.
pub fn lab_hash(lab: &crate::lab::Lab) -> String {
    super::remote::hash(&["lab-file/1", &lab.source.text])
}

fn keys_text(keys: &[PublicKey]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k.to_openssh().ok())
        .map(|t| t.trim().to_string())
        .collect()
}

fn keys_of(text: &[String]) -> Vec<PublicKey> {
    text.iter()
        .filter_map(|t| PublicKey::from_openssh(t).ok())
        .collect()
}

fn state_error(e: impl std::fmt::Display) -> Error {
    Error::fatal(e.to_string(), WRITABLE)
}

/// Whether the snapshot VM is still the one the save made (by identity).
fn snapshot_vm_presence(inventory: &crate::provider::Inventory, node: &SnapshotNode) -> Presence {
    let owned = OwnedVm {
        mac: node.identity.clone(),
        ..OwnedVm::default()
    };
    Presence::of(inventory, &node.vm, Some(&owned))
}

impl Engine {
    /// Refuses snapshots where the provider has none, before anything is changed, with
    /// the reason.
    pub fn refuse_snapshots(&self) -> Result<(), Error> {
        let capabilities = self.provider.capabilities();
        if capabilities.snapshots {
            return Ok(());
        }
        let name = self.provider.name();
        let reason = if capabilities.start_after_stop {
            format!("{name} cannot copy a stopped VM and keep its identity")
        } else {
            format!("a snapshot is taken of a stopped VM, and a VM of {name} that stops can never start again")
        };
        Err(Error::usage(
            format!("`tartlab snapshot` is not possible with {name}: {reason}"),
            crate::provider::no_snapshots(name).hint,
        ))
    }

    /// The lab's whole snapshots, by name, with their size.
    pub fn snapshot_rows(&self) -> Vec<SnapshotRow> {
        rows(&self.state, &self.inventory, &lab_hash(&self.lab))
    }

    /// `snapshot save NAME`: see the module doc.
    pub async fn snapshot_save(
        self,
        name: &str,
        selected: Vec<String>,
        force: bool,
        reporter: Arc<Reporter>,
        json: bool,
    ) -> Result<Vec<NodeReport>, Error> {
        self.refuse_snapshots()?;
        let old = self.state.snapshots.get(name).cloned();
        if let (Some(old), false) = (&old, force) {
            return Err(Error::usage(
                format!(
                    "a snapshot `{name}` exists already (saved {}, {} node(s))",
                    old.at,
                    old.nodes.len()
                ),
                format!("nothing was changed; `tartlab snapshot save --force {name}` replaces it, or choose another name"),
            ));
        }
        let generation = old.as_ref().map_or(1, |o| o.generation + 1);
        let mut running = Vec::new();
        let mut nodes = std::collections::BTreeMap::new();
        let known = crate::state::KnownHosts::new(&self.dir);
        for vm in &selected {
            match self.presence(vm) {
                Presence::Owned { running: on } => {
                    if on {
                        running.push(vm.clone());
                    }
                }
                Presence::Missing => {
                    return Err(Error::usage(
                        format!("{vm} has no VM to snapshot"),
                        format!("nothing was changed; `tartlab up {vm}` makes it, or name only the nodes that exist"),
                    ))
                }
                Presence::Unconfirmed => {
                    return Err(Error::usage(
                        format!("{vm}'s creation was interrupted"),
                        "nothing was changed; `tartlab up` finishes it, then save the snapshot",
                    ))
                }
                Presence::Foreign { .. } => {
                    return Err(Error::usage(
                        format!("{vm} is not a VM this lab created (its identity is not the one recorded)"),
                        "nothing was changed; it is left alone: `tartlab up --adopt` takes it over, or name other nodes",
                    ))
                }
            }
            let snapshot_vm = Snapshot::vm_name(vm, name, generation);
            if self.inventory.vms.contains_key(&snapshot_vm) {
                return Err(Error::usage(
                    format!("a VM named {snapshot_vm} exists, and this lab did not make it"),
                    format!("nothing was changed and it is left alone; rename or delete it yourself, or choose another snapshot name than `{name}`"),
                ));
            }
            nodes.insert(
                vm.clone(),
                SnapshotNode {
                    vm: snapshot_vm,
                    identity: None,
                    node: self.state.vms.get(vm).cloned().unwrap_or_default(),
                    host_keys: keys_text(&known.pinned(vm)),
                },
            );
        }
        let at = crate::clock::now_rfc3339();
        let snapshot = Snapshot {
            at: at.clone(),
            lab_hash: lab_hash(&self.lab),
            generation,
            complete: false,
            nodes,
        };
        let journal = Journal {
            op: JournalOp::Save,
            snapshot: name.to_string(),
            nodes: selected.clone(),
            running: running.clone(),
            replaces: old,
            at,
        };
        if let Some(warning) = low_space(self.provider.name(), self.provider.free_bytes()) {
            reporter.warning(None, Stage::Snapshot, &warning);
        }
        let ctx = self.context(reporter.clone());
        ctx.store
            .update(|s| {
                s.journal = Some(journal);
                s.snapshots.insert(name.to_string(), snapshot);
            })
            .map_err(state_error)?;
        let mut reports = save_nodes(&ctx, name, selected, &running).await;
        let failed = reports.iter().any(|r| r.failure.is_some());
        if failed {
            undo_save(&ctx, name).await?;
        } else {
            finish_save(&ctx, name).await?;
        }
        let again = reopen(ctx).await?;
        if running.is_empty() {
            return Ok(reports);
        }
        let started = again.up(running, reporter, json).await?;
        merge(&mut reports, started);
        Ok(reports)
    }

    /// `snapshot delete NAME`: its VMs that are still the lab's deleted, the rest left
    /// alone (with a warning), the snapshot forgotten. Returns how many VMs were deleted.
    pub async fn snapshot_delete(
        self,
        name: &str,
        reporter: Arc<Reporter>,
    ) -> Result<usize, Error> {
        if !self.state.snapshots.contains_key(name) {
            return Err(no_such_snapshot(&self.state, name));
        }
        let inventory = self.inventory.clone();
        let ctx = self.context(reporter);
        delete_snapshot(&ctx, &inventory, name).await
    }

    /// What a save or restore cut short (Ctrl-C, SIGKILL, a crash) left, dealt with before
    /// any other change: a save whose snapshot is whole is finished, any other is undone (its
    /// copies deleted, a snapshot it replaced kept) and the nodes it stopped started again; a
    /// restore is finished (the snapshot is intact: its VMs are never booted). Returns the
    /// lab opened anew, and what was done.
    pub async fn settle_journal(
        mut self,
        reporter: Arc<Reporter>,
        json: bool,
    ) -> Result<(Engine, Option<String>), Error> {
        let Some(journal) = self.state.journal.clone() else {
            return Ok((self, None));
        };
        let name = journal.snapshot.clone();
        // Held here through every phase, each of which opens the lab again.
        let lock = self.lock.take();
        let path = self.lab.source.path.clone();
        let (dir, provider, options) = (
            self.dir.clone(),
            self.provider.clone(),
            self.options.clone(),
        );
        let said = match journal.op {
            JournalOp::Save => {
                reporter.info(
                    Stage::Snapshot,
                    &format!("`tartlab snapshot save {name}` was interrupted: settling it first"),
                );
                let ctx = self.context(reporter.clone());
                let whole = ctx
                    .store
                    .snapshot()
                    .snapshots
                    .get(&name)
                    .is_some_and(|s| s.complete);
                let said = if whole {
                    finish_save(&ctx, &name).await?;
                    format!("the interrupted `tartlab snapshot save {name}` was finished: the snapshot is whole")
                } else {
                    undo_save(&ctx, &name).await?;
                    format!("the interrupted `tartlab snapshot save {name}` was undone: its copies were deleted, the lab's snapshots are as they were before it")
                };
                let again = reopen(ctx).await?;
                let stopped: Vec<String> = journal
                    .running
                    .iter()
                    .filter(|vm| matches!(again.presence(vm), Presence::Owned { running: false }))
                    .cloned()
                    .collect();
                if !stopped.is_empty() {
                    again.up(stopped, reporter.clone(), json).await?;
                }
                said
            }
            JournalOp::Restore => {
                reporter.info(
                    Stage::Restore,
                    &format!(
                        "`tartlab snapshot restore {name}` was interrupted: finishing it first"
                    ),
                );
                self.snapshot_restore(&name, true, journal.nodes.clone(), reporter.clone(), json)
                    .await?;
                format!(
                    "the interrupted `tartlab snapshot restore {name}` was finished: {} restored",
                    journal.nodes.join(", ")
                )
            }
        };
        reporter.info(Stage::Run, &said);
        let lab = crate::lab::Lab::open(&path).map_err(|_| {
            Error::fatal(
                "the lab file no longer reads",
                "`tartlab validate` shows why",
            )
        })?;
        let engine = Engine::open(lab, dir, lock, provider, options).await?;
        Ok((engine, Some(said)))
    }

    /// Refuses a restore, before anything changes, of a node the snapshot lacks, whose
    /// snapshot VM is gone or no longer the lab's, or whose name a foreign VM holds.
    fn check_restore(
        &self,
        name: &str,
        snapshot: &Snapshot,
        nodes: &[String],
    ) -> Result<(), Error> {
        for vm in nodes {
            let Some(saved) = snapshot.nodes.get(vm) else {
                return Err(Error::usage(
                    format!("snapshot `{name}` has no {vm}"),
                    format!(
                        "nothing was changed; it holds {}",
                        snapshot
                            .nodes
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            match snapshot_vm_presence(&self.inventory, saved) {
                Presence::Owned { .. } => {}
                Presence::Missing => {
                    return Err(Error::fatal(
                        format!("{vm}: the snapshot VM {} is gone (deleted outside tartlab?)", saved.vm),
                        format!("nothing was changed; restore the other nodes (`tartlab snapshot restore {name} NODE...`), or `tartlab snapshot delete {name}`"),
                    ))
                }
                _ => {
                    return Err(Error::fatal(
                        format!("{vm}: {} is no longer the snapshot VM this lab made (its identity changed)", saved.vm),
                        format!("nothing was changed and it is left alone; `tartlab snapshot delete {name}` forgets the snapshot"),
                    ))
                }
            }
            if let Presence::Foreign { .. } = self.presence(vm) {
                return Err(Error::usage(
                    format!("{vm} is a VM this lab did not create (or no longer knows)"),
                    format!("nothing was changed and it is left alone; delete or rename it yourself (`tart delete {vm}`), then restore again"),
                ));
            }
        }
        Ok(())
    }

    /// `snapshot restore NAME [NODES]`: see the module doc.
    pub async fn snapshot_restore(
        self,
        name: &str,
        selectors_given: bool,
        selected: Vec<String>,
        reporter: Arc<Reporter>,
        json: bool,
    ) -> Result<Vec<NodeReport>, Error> {
        self.refuse_snapshots()?;
        let Some(snapshot) = self
            .state
            .snapshots
            .get(name)
            .filter(|s| s.complete)
            .cloned()
        else {
            return Err(no_such_snapshot(&self.state, name));
        };
        let nodes: Vec<String> = if selectors_given {
            selected
        } else {
            snapshot.nodes.keys().cloned().collect()
        };
        self.check_restore(name, &snapshot, &nodes)?;
        let journal = Journal {
            op: JournalOp::Restore,
            snapshot: name.to_string(),
            nodes: nodes.clone(),
            running: Vec::new(),
            replaces: None,
            at: crate::clock::now_rfc3339(),
        };
        let inventory = self.inventory.clone();
        let ctx = self.context(reporter.clone());
        ctx.store
            .update(|s| s.journal = Some(journal))
            .map_err(state_error)?;
        let mut reports = restore_nodes(&ctx, &inventory, &snapshot, nodes.clone()).await;
        let restored: Vec<String> = reports
            .iter()
            .filter(|r| r.failure.is_none())
            .map(|r| r.node.clone())
            .collect();
        if restored.len() == nodes.len() {
            ctx.store
                .update(|s| s.journal = None)
                .map_err(state_error)?;
        }
        if snapshot.lab_hash != lab_hash(&ctx.lab) {
            reporter.info(
                Stage::Restore,
                &format!("the lab file changed since snapshot `{name}` was saved: the restored nodes get the change as `up` would give it"),
            );
        }
        let mut again = reopen(ctx).await?;
        let lab_nodes: BTreeSet<String> =
            again.lab.nodes.iter().map(|n| n.vm_name.clone()).collect();
        let booting: Vec<String> = restored
            .iter()
            .filter(|vm| lab_nodes.contains(*vm))
            .cloned()
            .collect();
        let others: Vec<String> = again
            .running_of(
                &again
                    .lab
                    .nodes
                    .iter()
                    .map(|n| n.vm_name.clone())
                    .collect::<Vec<_>>(),
            )
            .into_iter()
            .filter(|vm| !booting.contains(vm))
            .collect();
        let dir = again.dir.clone();
        let lab_file = again.lab.source.path.clone();
        let provider = again.provider.clone();
        let options = again.options.clone();
        // Held here, so that the lab stays locked through both phases.
        let lock = again.lock.take();
        let booted = again.up(booting, reporter.clone(), json).await?;
        let moved: Vec<String> = booted
            .iter()
            .filter_map(|r| {
                let before = snapshot.nodes.get(&r.node)?.node.ip.as_deref()?;
                let now = r.ip.as_deref()?;
                (before != now).then(|| format!("{} {before} -> {now}", r.node))
            })
            .collect();
        merge(&mut reports, booted);
        if !moved.is_empty() {
            reporter.warning(
                None,
                Stage::Restore,
                &format!(
                    "the address of {} changed anyway: /etc/hosts is made again on every node",
                    moved.join(", ")
                ),
            );
            if !others.is_empty() {
                let lab = crate::lab::Lab::open(&lab_file).map_err(|_| {
                    Error::fatal(
                        "the lab file changed during the restore",
                        "run `tartlab up` to make /etc/hosts again on every node",
                    )
                })?;
                let rest = Engine::open(lab, dir, lock, provider, options).await?;
                let hosts = rest.up(others, reporter, json).await?;
                merge(&mut reports, hosts);
            }
        }
        Ok(reports)
    }
}
