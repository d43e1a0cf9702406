//! The list of labs (`state/labs.rs`) as the commands use it: `tartlab labs` (each lab's
//! VMs that are still there, one `tart list` for all), a changing command keeping its lab
//! and VMs in it and following a renamed `lab:`, and `tartlab down --lab NAME`: when the
//! lab file is there, the `down` of that file; when it is gone, its VMs deleted by the
//! list's record of them, each only if it still has the identity the lab owned it by (a VM
//! of that name that is not the lab's is left alone and named), the record then dropping
//! them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{out, runtime, FileArgs};
use crate::engine::{read_inventory, Engine};
use crate::error::{Error, Exit, Result};
use crate::lab::Lab;
use crate::provider::Inventory;
use crate::state::{LabEntry, LabIndex, StateDir, StateStore};
use crate::ui;

/// A state written under the lab's old name, for this same lab file (`lab:` renamed since),
/// takes the new one now, saying so: the changing command that does it is the one that
/// tells (reading commands read it as the same lab and say nothing). Under the lab lock.
pub(super) fn follow_rename(lab: &Lab, dir: &StateDir) -> Result<()> {
    let (state, renamed) = dir
        .read_state_for(lab.name(), &lab.source.path)
        .map_err(|e| Error::fatal(e, ""))?;
    if let Some(old) = renamed {
        StateStore::new(dir, state)
            .update(|_| {})
            .map_err(|e| Error::fatal(e, "check that .tartlab/ is writable"))?;
        eprintln!(
            "tartlab: lab renamed {old} -> {} ({} is the same lab file: its state and the list of labs follow; its VMs keep their names)",
            lab.name(),
            lab.source.path.display()
        );
    }
    Ok(())
}

/// Records the lab and its VMs in the list of labs (a renamed lab under its new name), and
/// has each later change of its VMs written there: a convenience, never a reason to stop.
pub(super) fn keep_listed(engine: &mut Engine) {
    let index = LabIndex::for_user();
    let lab = engine.lab();
    let vms = engine.state().owned_vms();
    match index.record(lab.name(), &lab.source.path, lab.file.provider.name(), vms) {
        Ok(None) => {}
        Ok(Some(warning)) => eprintln!("warning: {warning}"),
        Err(e) => eprintln!("warning: the list of labs was not updated: {e}"),
    }
    engine.keep_listed(index);
}

/// The VMs of a record that are still there: of that name and, when the record has it, of
/// that identity (a VM whose clone was never confirmed counts by its name).
pub(super) fn still_there(
    vms: &BTreeMap<String, Option<String>>,
    inventory: &Inventory,
) -> Vec<String> {
    vms.iter()
        .filter(|(vm, identity)| {
            inventory.vms.get(*vm).is_some_and(|info| match identity {
                Some(mac) => info.identity.as_deref() == Some(mac.as_str()),
                None => true,
            })
        })
        .map(|(vm, _)| vm.clone())
        .collect()
}

/// The one entry `--lab` names: by its lab's name, or by its lab file's path.
fn find(index: &LabIndex, wanted: &str) -> Result<LabEntry> {
    let entries = index.peek();
    let as_path = std::path::absolute(wanted).unwrap_or_else(|_| PathBuf::from(wanted));
    let matching: Vec<&LabEntry> = entries
        .values()
        .filter(|e| e.lab == wanted || e.file == as_path)
        .collect();
    match matching.as_slice() {
        [entry] => Ok((*entry).clone()),
        [] => {
            let names: Vec<&str> = entries.values().map(|e| e.lab.as_str()).collect();
            Err(Error::usage(
                format!(
                    "no lab `{wanted}` in the list of labs ({})",
                    index.path().display()
                ),
                if names.is_empty() {
                    "the list is empty: `tartlab up` in a lab's directory adds it".to_string()
                } else {
                    format!("`tartlab labs` lists them: {}", names.join(", "))
                },
            ))
        }
        several => Err(Error::usage(
            format!("several labs are named `{wanted}`"),
            format!(
                "name one by its lab file: {}",
                several
                    .iter()
                    .map(|e| format!("`tartlab down --lab {}`", e.file.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// `tartlab down --lab NAME`: `Ok(file)` when the lab's file is there (the caller runs its
/// `down`); else the exit of the down done here.
pub fn down_lab(
    wanted: &str,
    json: bool,
    keep_snapshots: bool,
    yes: bool,
) -> Result<std::result::Result<FileArgs, Exit>> {
    let index = LabIndex::for_user();
    let entry = find(&index, wanted)?;
    if entry.file.exists() {
        // Its lab file is there: the `down` of that file, with all its checks.
        return Ok(Ok(FileArgs {
            file: Some(entry.file),
            json,
        }));
    }
    if !entry.is_local() {
        let vms: Vec<&str> = entry.vms.keys().map(String::as_str).collect();
        return Err(Error::fatal(
            format!(
                "lab `{}` ran on {}, which tartlab reaches only through the lab file, and {} is gone",
                entry.lab,
                entry.provider.as_deref().unwrap_or("?"),
                entry.file.display()
            ),
            format!(
                "its VMs were: {}; delete them with that provider's own tools (`orchard delete vm NAME`), or put the lab file back and run `tartlab down`",
                vms.join(", ")
            ),
        ));
    }
    down_gone(&index, &entry, json, keep_snapshots, yes).map(Err)
}

/// What became of one recorded VM.
#[derive(serde::Serialize)]
struct Outcome {
    vm: String,
    /// `deleted`, `gone` (not there: forgotten), `left_alone` (not the lab's: forgotten,
    /// untouched) or `failed` (kept in the record).
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

fn down_gone(
    index: &LabIndex,
    entry: &LabEntry,
    json: bool,
    keep_snapshots: bool,
    yes: bool,
) -> Result<Exit> {
    let lab = &entry.lab;
    // The directory may outlive the lab file: its lock keeps an `up` out meanwhile.
    let dir = StateDir::beside(&entry.file);
    let lock = if dir.exists() {
        Some(dir.lock().map_err(|e| Error::fatal(e, ""))?)
    } else {
        None
    };
    let provider = crate::provider::open(None, lock.as_ref().map(|l| l.share()))
        .map_err(|e| Error::fatal(e.message, e.hint))?;
    let vms: Vec<(String, Option<String>)> = entry
        .vms
        .iter()
        .filter(|(vm, _)| !(keep_snapshots && vm.contains(".snapshot.")))
        .map(|(vm, identity)| (vm.clone(), identity.clone()))
        .collect();
    // Its record alone says what it has: each VM asked about, whether it runs or not.
    let going: Vec<(String, bool)> = vms.iter().map(|(vm, _)| (vm.clone(), false)).collect();
    if !super::ask::down_confirmed(&going, 0, yes) {
        eprintln!("down: nothing deleted");
        return Ok(Exit::Failed);
    }
    let outcomes = runtime()?.block_on(async {
        let inventory = read_inventory(provider.as_ref()).await?;
        let mut outcomes = Vec::new();
        for (vm, identity) in vms {
            let Some(info) = inventory.vms.get(&vm) else {
                outcomes.push(Outcome { vm, result: "gone", why: None });
                continue;
            };
            let ours = identity.is_some() && info.identity == identity;
            if !ours {
                let why = match identity {
                    None => format!("lab `{lab}` never confirmed that {vm} was the VM it created, so it cannot prove it is; `tart delete {vm}` deletes it if it is yours"),
                    Some(_) => format!("{vm} is not the VM lab `{lab}` created (its identity changed): another lab or a person made it since"),
                };
                outcomes.push(Outcome { vm, result: "left_alone", why: Some(why) });
                continue;
            }
            let deleted = async {
                if info.running {
                    provider.stop(&vm, Duration::from_secs(5)).await?;
                }
                provider.delete(&vm).await
            };
            outcomes.push(match deleted.await {
                Ok(()) => Outcome { vm, result: "deleted", why: None },
                Err(e) => Outcome {
                    why: Some(format!("{} ({}; then `tartlab down --lab {lab}` again)", e.message, e.hint)),
                    vm,
                    result: "failed",
                },
            });
        }
        Ok(outcomes)
    })?;
    let settled: Vec<String> = outcomes
        .iter()
        .filter(|o| o.result != "failed")
        .map(|o| o.vm.clone())
        .collect();
    if let Err(e) = index.forget_vms(&entry.file, &settled) {
        eprintln!("warning: the list of labs was not updated: {e}");
    }
    if lock.is_some() {
        // A state left beside the gone lab file forgets them too.
        if let Ok(state) = dir.read_state(lab) {
            let _ = StateStore::new(&dir, state).update(|s| {
                s.vms.retain(|vm, _| !settled.contains(vm));
                for snapshot in s.snapshots.values_mut() {
                    snapshot.nodes.retain(|_, n| !settled.contains(&n.vm));
                }
                s.snapshots.retain(|_, snapshot| !snapshot.nodes.is_empty());
            });
        }
    }
    let failed = outcomes.iter().filter(|o| o.result == "failed").count();
    let deleted = outcomes.iter().filter(|o| o.result == "deleted").count();
    if json {
        out(&serde_json::json!({ "lab": lab, "file": entry.file, "vms": outcomes }).to_string());
    } else {
        for o in &outcomes {
            match (o.result, &o.why) {
                ("deleted", _) => eprintln!("{}: deleted", o.vm),
                ("gone", _) => eprintln!("{}: already gone, forgotten", o.vm),
                ("left_alone", Some(why)) => {
                    eprintln!("warning: {}: left alone and forgotten: {why}", o.vm)
                }
                (_, why) => eprintln!("{}: failed: {}", o.vm, why.as_deref().unwrap_or("")),
            }
        }
        out(&format!(
            "down --lab {lab}: {deleted} of {} VM(s) deleted{}",
            outcomes.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ));
    }
    Ok(Exit::for_results(failed, outcomes.len()))
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab labs\n  tartlab down --lab old-lab && tartlab labs --forget-missing"
)]
pub struct LabsArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Remove the labs whose lab file is gone from the list (never done otherwise), once none
    /// of their VMs is left
    #[arg(long)]
    pub forget_missing: bool,
}

/// One lab of `tartlab labs`.
#[derive(serde::Serialize)]
struct LabRow {
    lab: String,
    file: std::path::PathBuf,
    /// `present`, or `missing` when its lab file is gone.
    state: &'static str,
    /// How many of its VMs (nodes and snapshot VMs) are there (all it records, when tart
    /// could not be asked).
    vms: usize,
    /// Their names.
    vm_names: Vec<String>,
    /// How many of its VMs run (`None` when tart could not be asked).
    running: Option<usize>,
    last_used: String,
}

/// Every lab this user brought up here (one `tart list` for all of them).
pub fn labs(args: &LabsArgs) -> Result<Exit> {
    let index = crate::state::LabIndex::for_user();
    // The index does not record each lab's provider: every lab here is local tart's.
    let inventory = crate::provider::open(None, None).ok().and_then(|provider| {
        runtime()
            .ok()?
            .block_on(read_inventory(provider.as_ref()))
            .ok()
    });
    // A lab's VMs: as its state has them, else as the list recorded them (a gone lab).
    let owned = |entry: &LabEntry| {
        let dir = StateDir::beside(&entry.file);
        match dir.state_path().is_file() {
            true => dir.read_state(&entry.lab).map(|s| s.owned_vms()).ok(),
            false => None,
        }
        .unwrap_or_else(|| entry.vms.clone())
    };
    // Another provider's VMs are not in `tart list`: all it records count.
    let there = |entry: &LabEntry| {
        let owned = owned(entry);
        match &inventory {
            Some(inventory) if entry.is_local() => still_there(&owned, inventory),
            _ => owned.into_keys().collect(),
        }
    };
    if args.forget_missing {
        // Another provider's labs cannot be checked here: forgotten with a word on their VMs.
        let blocking = |entry: &LabEntry| match entry.is_local() {
            true => there(entry),
            false => Vec::new(),
        };
        let forgotten = index
            .forget_missing(blocking)
            .map_err(|e| Error::fatal(e, ""))?;
        if let Some(warning) = forgotten.warning {
            eprintln!("warning: {warning}");
        }
        for entry in &forgotten.gone {
            eprintln!("forgot {} ({})", entry.lab, entry.file.display());
            if !entry.is_local() && !entry.vms.is_empty() {
                let vms: Vec<&str> = entry.vms.keys().map(String::as_str).collect();
                eprintln!(
                    "warning: {} ran on {}, which tartlab cannot ask without the lab file: if its VMs remain there ({}), delete them with its own tools",
                    entry.lab,
                    entry.provider.as_deref().unwrap_or("?"),
                    vms.join(", ")
                );
            }
        }
        if !forgotten.kept.is_empty() {
            let kept: Vec<String> = forgotten
                .kept
                .iter()
                .map(|(entry, vms)| {
                    format!(
                        "`{}` ({}) still has VMs: {}",
                        entry.lab,
                        entry.file.display(),
                        vms.join(", ")
                    )
                })
                .collect();
            let ways: Vec<String> = forgotten
                .kept
                .iter()
                .map(|(entry, _)| format!("`tartlab down --lab {}`", entry.lab))
                .collect();
            return Err(Error::fatal(
                format!(
                    "not forgotten, since only plain `tart` could remove their VMs then: {}",
                    kept.join("; ")
                ),
                format!(
                    "{} deletes them (a VM of that name that is not the lab's is left alone), then `tartlab labs --forget-missing` forgets it",
                    ways.join(" or ")
                ),
            ));
        }
    }
    let (entries, warning) = index.entries().map_err(|e| Error::fatal(e, ""))?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    let rows: Vec<LabRow> = entries
        .into_values()
        .map(|entry| {
            let present = entry.file.exists();
            let local = entry.is_local();
            let vm_names = there(&entry);
            LabRow {
                lab: entry.lab,
                state: if present { "present" } else { "missing" },
                vms: vm_names.len(),
                running: inventory
                    .as_ref()
                    .filter(|_| local)
                    .map(|inv| vm_names.iter().filter(|vm| inv.running(vm)).count()),
                vm_names,
                file: entry.file,
                last_used: entry.last_used,
            }
        })
        .collect();
    if args.json {
        out(&serde_json::json!({ "labs": rows }).to_string());
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        out("no labs yet: `tartlab up` in a lab's directory adds it here");
        return Ok(Exit::Ok);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.lab.clone(),
                if r.state == "present" {
                    r.file.display().to_string()
                } else {
                    format!("{} (gone)", r.file.display())
                },
                r.vms.to_string(),
                r.running.map_or("?".into(), |n| n.to_string()),
                r.last_used.clone(),
            ]
        })
        .collect();
    out(&ui::table(
        &["LAB", "FILE", "VMS", "RUNNING", "LAST USED"],
        &table,
    ));
    for row in rows.iter().filter(|r| r.state == "missing") {
        if row.vm_names.is_empty() {
            out(&format!("{}'s lab file is gone and none of its VMs is left: `tartlab labs --forget-missing` drops it from this list", row.lab));
        } else {
            out(&format!(
                "{}'s lab file is gone, its VMs are not: {}; `tartlab down --lab {}` deletes them",
                row.lab,
                row.vm_names.join(", "),
                row.lab
            ));
        }
    }
    Ok(Exit::Ok)
}
