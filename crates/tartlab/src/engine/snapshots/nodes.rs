//! The work behind `snapshot save`, `restore` and `delete`, node by node: each node shut
//! down and copied, or deleted and copied back with its identity and records; snapshot VMs
//! deleted only while they are the lab's; the phases' reports folded into one.

use std::sync::Arc;

use super::{keys_of, snapshot_vm_presence, state_error, SnapshotRow};
use crate::engine::events::{Action, Reporter, Stage};
use crate::engine::operations::{self, per_node};
use crate::engine::plan::Presence;
use crate::engine::{Context, Engine, Failure, NodeReport, WRITABLE};
use crate::error::Error;
use crate::provider::{Power, Provider};
use crate::state::{Snapshot, SnapshotNode, State};

/// Below this, `snapshot save` warns (as `doctor` does for TART_HOME).
pub(super) const LOW_SPACE_GB: u64 = 30;

/// The warning when the provider's VM store is low on space, if it is.
pub(super) fn low_space(provider: &str, free: Option<u64>) -> Option<String> {
    let gb = free? / 1_000_000_000;
    (gb < LOW_SPACE_GB).then(|| {
        format!("only {gb} GB free where {provider} keeps its VMs: a copy-on-write snapshot costs little at first, but it keeps every block the nodes change after it; `tart prune --entries caches` frees the image cache, `tartlab snapshot delete NAME` an old snapshot")
    })
}

/// The error for a snapshot name the lab does not have (or only half of).
pub(super) fn no_such_snapshot(state: &State, name: &str) -> Error {
    let names: Vec<&str> = state
        .snapshots
        .iter()
        .filter(|(_, s)| s.complete)
        .map(|(n, _)| n.as_str())
        .collect();
    let hint = if names.is_empty() {
        "the lab has no snapshots; `tartlab snapshot save NAME` makes one".to_string()
    } else {
        format!(
            "the lab's snapshots are {}; `tartlab snapshot list` shows them",
            names.join(", ")
        )
    };
    Error::usage(format!("the lab has no snapshot `{name}`"), hint)
}

/// The whole snapshots of `state`, with their size from `inventory`.
pub fn rows(state: &State, inventory: &crate::provider::Inventory, hash: &str) -> Vec<SnapshotRow> {
    state
        .snapshots
        .iter()
        .filter(|(_, s)| s.complete)
        .map(|(name, s)| {
            let sizes: Vec<Option<u64>> = s
                .nodes
                .values()
                .map(|n| inventory.vms.get(&n.vm).and_then(|v| v.size_gb))
                .collect();
            SnapshotRow {
                name: name.clone(),
                at: s.at.clone(),
                nodes: s.nodes.keys().cloned().collect(),
                size_gb: sizes.iter().copied().sum(),
                lab_changed: s.lab_hash != hash,
            }
        })
        .collect()
}

/// Each selected node shut down from inside if it runs, then copied.
pub(super) async fn save_nodes(
    ctx: &Arc<Context>,
    name: &str,
    vms: Vec<String>,
    running: &[String],
) -> Vec<NodeReport> {
    let name = name.to_string();
    let parallel = ctx.options.parallel;
    let running: Arc<Vec<String>> = Arc::new(running.to_vec());
    per_node(ctx, vms, parallel, move |ctx, vm| {
        let name = name.clone();
        let runs = running.contains(&vm);
        async move {
            let mut report = NodeReport::new(&vm);
            let result = save_node(&ctx, &name, &vm, runs, &mut report).await;
            (report, result)
        }
    })
    .await
}

pub(super) async fn save_node(
    ctx: &Context,
    name: &str,
    vm: &str,
    runs: bool,
    report: &mut NodeReport,
) -> Result<(), Failure> {
    if runs {
        let how = operations::stop::gracefully(ctx, vm).await?;
        report.actions.push(Action::Stopped(how));
    }
    let snapshot_vm = ctx
        .store
        .snapshot()
        .snapshots
        .get(name)
        .and_then(|s| s.nodes.get(vm))
        .map(|n| n.vm.clone())
        .unwrap_or_default();
    ctx.reporter
        .started(vm, Stage::Snapshot, &format!("copying it to {snapshot_vm}"));
    let identity = ctx
        .provider
        .save_snapshot(vm, &snapshot_vm)
        .await
        .map_err(|e| Failure::from_provider(Stage::Snapshot, e))?;
    ctx.store
        .update(|s| {
            if let Some(node) = s.snapshots.get_mut(name).and_then(|s| s.nodes.get_mut(vm)) {
                node.identity = Some(identity);
            }
        })
        .map_err(|e| Failure::new(Stage::Snapshot, e, WRITABLE))?;
    ctx.reporter.done(vm, Stage::Snapshot, "saved");
    report.actions.push(Action::Snapshotted);
    Ok(())
}

/// The new snapshot is whole: the one it replaces (`--force`) is deleted, the journal closed.
pub(super) async fn finish_save(ctx: &Context, name: &str) -> Result<(), Error> {
    let replaces = ctx.store.snapshot().journal.and_then(|j| j.replaces);
    ctx.store
        .update(|s| {
            if let Some(snapshot) = s.snapshots.get_mut(name) {
                snapshot.complete = true;
            }
        })
        .map_err(state_error)?;
    if let Some(old) = replaces {
        let inventory = crate::engine::read_inventory(ctx.provider.as_ref()).await?;
        for node in old.nodes.values() {
            delete_snapshot_vm(ctx.provider.as_ref(), &inventory, node, &ctx.reporter).await?;
        }
    }
    ctx.store.update(|s| s.journal = None).map_err(state_error)
}

/// A save that failed midway: the copies it made deleted, the older snapshot (if it
/// replaced one) kept, the journal closed.
pub(super) async fn undo_save(ctx: &Context, name: &str) -> Result<(), Error> {
    let state = ctx.store.snapshot();
    let replaces = state.journal.and_then(|j| j.replaces);
    if let Some(half) = state.snapshots.get(name) {
        let inventory = crate::engine::read_inventory(ctx.provider.as_ref()).await?;
        for node in half.nodes.values() {
            delete_snapshot_vm(ctx.provider.as_ref(), &inventory, node, &ctx.reporter).await?;
        }
    }
    ctx.store
        .update(|s| {
            s.snapshots.remove(name);
            if let Some(old) = replaces {
                s.snapshots.insert(name.to_string(), old);
            }
            s.journal = None;
        })
        .map_err(state_error)
}

/// Deletes a snapshot VM if it is still the lab's (or its clone was never confirmed); a VM
/// of that name with another identity is left alone, with a warning.
pub(super) async fn delete_snapshot_vm(
    provider: &dyn Provider,
    inventory: &crate::provider::Inventory,
    node: &SnapshotNode,
    reporter: &Reporter,
) -> Result<bool, Error> {
    match snapshot_vm_presence(inventory, node) {
        Presence::Missing => Ok(false),
        Presence::Owned { .. } | Presence::Unconfirmed => {
            provider.delete(&node.vm).await.map_err(|e| {
                Error::fatal(
                    format!("cannot delete the snapshot VM {}: {}", node.vm, e.message),
                    e.hint,
                )
            })?;
            Ok(true)
        }
        Presence::Foreign { .. } => {
            reporter.warning(
                Some(&node.vm),
                Stage::Delete,
                &format!("{} is no longer the snapshot VM this lab made (its identity changed); it was left alone", node.vm),
            );
            Ok(false)
        }
    }
}

/// Deletes every snapshot of the lab (`down`); how many there were.
pub async fn delete_all(ctx: &Context) -> Result<usize, Error> {
    let names: Vec<String> = ctx.store.snapshot().snapshots.keys().cloned().collect();
    if names.is_empty() {
        return Ok(0);
    }
    let inventory = crate::engine::read_inventory(ctx.provider.as_ref()).await?;
    for name in &names {
        delete_snapshot(ctx, &inventory, name).await?;
    }
    ctx.store
        .update(|s| s.journal = None)
        .map_err(state_error)?;
    Ok(names.len())
}

pub(super) async fn delete_snapshot(
    ctx: &Context,
    inventory: &crate::provider::Inventory,
    name: &str,
) -> Result<usize, Error> {
    let Some(snapshot) = ctx.store.snapshot().snapshots.get(name).cloned() else {
        return Ok(0);
    };
    let mut deleted = 0;
    for node in snapshot.nodes.values() {
        if delete_snapshot_vm(ctx.provider.as_ref(), inventory, node, &ctx.reporter).await? {
            deleted += 1;
        }
    }
    ctx.store
        .update(|s| {
            s.snapshots.remove(name);
        })
        .map_err(state_error)?;
    Ok(deleted)
}

/// Each node's VM deleted (if the lab's) and copied back from the snapshot, its records
/// and pinned keys put back; the journal notes each node done.
pub(super) async fn restore_nodes(
    ctx: &Arc<Context>,
    inventory: &crate::provider::Inventory,
    snapshot: &Snapshot,
    vms: Vec<String>,
) -> Vec<NodeReport> {
    let parallel = ctx.options.parallel;
    let snapshot = Arc::new(snapshot.clone());
    let power: std::collections::HashMap<String, Option<Power>> = vms
        .iter()
        .map(|vm| {
            let state = ctx.store.snapshot();
            let power = match Presence::of(inventory, vm, state.vms.get(vm)) {
                Presence::Owned { running } => Some(Power::of(running)),
                Presence::Unconfirmed => Some(Power::of(inventory.running(vm))),
                _ => None,
            };
            (vm.clone(), power)
        })
        .collect();
    per_node(ctx, vms, parallel, move |ctx, vm| {
        let snapshot = snapshot.clone();
        let power = power.get(&vm).copied().flatten();
        async move {
            let mut report = NodeReport::new(&vm);
            let result = restore_node(&ctx, &snapshot, &vm, power).await;
            if result.is_ok() {
                report.actions.push(Action::Restored);
            }
            (report, result)
        }
    })
    .await
}

pub(super) async fn restore_node(
    ctx: &Context,
    snapshot: &Snapshot,
    vm: &str,
    power: Option<Power>,
) -> Result<(), Failure> {
    let Some(saved) = snapshot.nodes.get(vm) else {
        return Ok(());
    };
    let written = |e| Failure::new(Stage::Restore, e, WRITABLE);
    if let Some(power) = power {
        operations::delete::delete(ctx, vm, power).await?;
    }
    // Recorded before the copy, without its identity: a copy cut short is the lab's and is
    // made again (as an interrupted create is).
    let mut record = saved.node.clone();
    let identity = record.mac.take().unwrap_or_default();
    ctx.store
        .update(|s| {
            s.vms.insert(vm.to_string(), record.clone());
        })
        .map_err(written)?;
    ctx.reporter.started(
        vm,
        Stage::Restore,
        &format!("copying it back from {}", saved.vm),
    );
    ctx.provider
        .restore_snapshot(&saved.vm, vm, &identity)
        .await
        .map_err(|e| Failure::from_provider(Stage::Restore, e))?;
    ctx.known
        .pin(vm, &keys_of(&saved.host_keys))
        .map_err(written)?;
    ctx.store
        .update(|s| {
            if let Some(owned) = s.vms.get_mut(vm) {
                owned.mac = Some(identity.clone());
            }
        })
        .map_err(written)?;
    ctx.reporter.done(vm, Stage::Restore, "restored");
    Ok(())
}

/// Takes the lab back from a context whose tasks are over, as `restart` does.
pub(super) async fn reopen(ctx: Arc<Context>) -> Result<Engine, Error> {
    let Ok(ctx) = Arc::try_unwrap(ctx) else {
        return Err(Error::fatal(
            "the snapshot's work still held the lab",
            "this is a bug in tartlab; please report it",
        ));
    };
    Engine::open(ctx.lab, ctx.dir, ctx._lock, ctx.provider, ctx.options).await
}

/// The reports of a later phase folded into the first one's, node by node.
pub(super) fn merge(reports: &mut Vec<NodeReport>, later: Vec<NodeReport>) {
    for report in later {
        match reports.iter_mut().find(|r| r.node == report.node) {
            Some(first) => {
                first.actions.extend(report.actions);
                if first.failure.is_none() {
                    first.failure = report.failure;
                }
                first.ip = report.ip.or(first.ip.take());
                first.seconds += report.seconds;
            }
            None => reports.push(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_warns_only_when_the_vm_store_is_low_on_space() {
        let warning = low_space("tart", Some(12_500_000_000)).unwrap();
        assert!(
            warning.starts_with("only 12 GB free where tart keeps its VMs"),
            "{warning}"
        );
        assert!(warning.contains("tart prune"), "{warning}");
        assert_eq!(low_space("tart", Some(400_000_000_000)), None);
        assert_eq!(low_space("tart", None), None, "unknown: nothing said");
    }

    #[test]
    fn a_snapshot_vm_name_can_never_be_a_node_name() {
        let name = Snapshot::vm_name("dev-worker-1", "base", 2);
        assert_eq!(name, "dev-worker-1.snapshot.base.2");
        assert!(crate::lab::check_snapshot_name("base").is_ok());
        assert!(crate::lab::check_snapshot_name("a.b").is_err());
        assert!(crate::lab::check_snapshot_name("Base").is_err());
    }
}
