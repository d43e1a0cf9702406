//! The reading commands that describe the lab: `validate`, `config` (the lab as `up` sees
//! it), `plan` (the planner's verdict per node, with no lock and no SSH), `status` (one
//! `tart list`), `schema`. None of them takes the
//! lab lock: they work while an `up` runs.

use std::sync::Arc;

use super::{open_lab, out, runtime, FileArgs, LabSnapshot};
use crate::engine::events::Action;
use crate::engine::inputs::user_keys;
use crate::engine::plan::{self, Facts, Presence};
use crate::engine::{read_inventory, Options};
use crate::error::{Error, Exit, Result};
use crate::lab::Lab;
use crate::provider::{Inventory, Provider};
use crate::state::OwnedVm;
use crate::ui;

pub fn validate(args: &FileArgs) -> Result<Exit> {
    let lab = open_lab(args, false)?;
    if args.json {
        out(
            &serde_json::json!({ "valid": true, "lab": lab.name(), "nodes": lab.nodes.len() })
                .to_string(),
        );
    } else {
        let clusters = lab.file.clusters.len();
        out(&format!(
            "{}: lab `{}` is valid ({} node{} in {clusters} cluster{})",
            lab.source.path.display(),
            lab.name(),
            lab.nodes.len(),
            if lab.nodes.len() == 1 { "" } else { "s" },
            if clusters == 1 { "" } else { "s" },
        ));
    }
    Ok(Exit::Ok)
}

pub fn config(args: &FileArgs) -> Result<Exit> {
    let lab = open_lab(args, false)?;
    let resolved = lab.resolved();
    let text = if args.json {
        serde_json::to_string_pretty(&resolved).map_err(|e| e.to_string())
    } else {
        serde_saphyr::to_string(&resolved).map_err(|e| e.to_string())
    };
    let text = text.map_err(|e| Error::fatal(format!("cannot write the lab out: {e}"), ""))?;
    out(text.trim_end());
    Ok(Exit::Ok)
}

pub fn schema() -> Result<Exit> {
    out(&serde_json::to_string_pretty(crate::lab::schema()).unwrap_or_default());
    Ok(Exit::Ok)
}

/// The lab's provider and its inventory, for the reading commands.
pub(super) fn inventory(lab: &Lab) -> Result<(Arc<dyn Provider>, Inventory)> {
    let provider =
        crate::provider::open(Some(lab), None).map_err(|e| Error::fatal(e.message, e.hint))?;
    let inventory = runtime()?.block_on(read_inventory(provider.as_ref()))?;
    Ok((provider, inventory))
}

/// One row of `tartlab status`.
#[derive(serde::Serialize)]
struct StatusRow {
    node: String,
    cluster: String,
    role: String,
    state: String,
    ip: Option<String>,
    cpu: u32,
    memory: u32,
    /// How the last `up` that worked on it ended: `ok`, `failed at STAGE`.
    last_up: Option<String>,
    /// A VM the lab created that the lab file no longer declares.
    orphan: bool,
    /// Where it runs, on a provider with several hosts (Orchard: its worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
}

/// What to do about orphans, after a table that lists some.
const ORPHAN_NOTE: &str = "orphan: a VM this lab created that the lab file no longer declares; `tartlab up` keeps it, `tartlab up --remove-orphans` or `tartlab down NAME` deletes it";

fn state_word(presence: Presence) -> &'static str {
    match presence {
        Presence::Missing => "missing",
        Presence::Owned { running: true } => "running",
        Presence::Owned { running: false } | Presence::Unconfirmed => "stopped",
        Presence::Foreign { .. } => "foreign",
    }
}

pub fn status(args: &FileArgs) -> Result<Exit> {
    let LabSnapshot { lab, dir, state } = LabSnapshot::open(args)?;
    let unsettled = super::snapshot::unsettled(&dir, &state);
    let (_, inventory) = inventory(&lab)?;
    let mut rows = Vec::new();
    for node in &lab.nodes {
        let owned = state.vms.get(&node.vm_name);
        let word = state_word(Presence::of(&inventory, &node.vm_name, owned));
        rows.push(StatusRow {
            node: node.vm_name.clone(),
            cluster: node.cluster.clone(),
            role: node.role.clone(),
            state: word.into(),
            ip: owned
                .and_then(|o| o.ip.clone())
                .filter(|_| word == "running"),
            cpu: owned.map_or(node.cpu, |o| o.cpu),
            memory: owned.map_or(node.memory, |o| o.memory),
            last_up: owned.and_then(|o| o.last_up.as_ref()).map(|l| l.text()),
            orphan: false,
            host: host_of(&inventory, &node.vm_name),
        });
    }
    let orphans = plan::orphans(&lab.nodes, &state);
    for vm in &orphans {
        let Some(owned) = state.vms.get(vm) else {
            continue;
        };
        let word = state_word(Presence::of(&inventory, vm, Some(owned)));
        rows.push(StatusRow {
            node: vm.clone(),
            cluster: "-".into(),
            role: "-".into(),
            state: word.into(),
            ip: owned.ip.clone().filter(|_| word == "running"),
            cpu: owned.cpu,
            memory: owned.memory,
            last_up: owned.last_up.as_ref().map(|l| l.text()),
            orphan: true,
            host: host_of(&inventory, vm),
        });
    }
    if args.json {
        out(
            &serde_json::json!({ "lab": lab.name(), "nodes": rows, "unsettled": unsettled })
                .to_string(),
        );
        return Ok(Exit::Ok);
    }
    // A host column only where the provider has several hosts.
    let hosts = rows.iter().any(|r| r.host.is_some());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.node.clone(),
                r.cluster.clone(),
                r.role.clone(),
                if r.orphan {
                    format!("{} (orphan)", r.state)
                } else {
                    r.state.clone()
                },
                r.ip.clone().unwrap_or_else(|| "-".into()),
                r.cpu.to_string(),
                format!("{} MiB", r.memory),
                r.last_up.clone().unwrap_or_else(|| "-".into()),
            ];
            if hosts {
                row.insert(5, r.host.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut titles = vec![
        "NODE", "CLUSTER", "ROLE", "STATE", "IP", "CPU", "MEMORY", "LAST UP",
    ];
    if hosts {
        titles.insert(5, "HOST");
    }
    out(&ui::table(&titles, &table));
    if !orphans.is_empty() {
        out(ORPHAN_NOTE);
    }
    if let Some(u) = unsettled {
        eprintln!("note: {}", u.words);
    }
    Ok(Exit::Ok)
}

/// Where a VM runs, if its provider says.
fn host_of(inventory: &Inventory, vm: &str) -> Option<String> {
    inventory.vms.get(vm).and_then(|v| v.host.clone())
}

/// What the planner says of each node, and the actions it expects `up` to take; or
/// `unknown` (with a note) without tart's inventory.
fn summaries(snapshot: &LabSnapshot) -> Vec<(String, Vec<Action>)> {
    let LabSnapshot { lab, dir, state } = snapshot;
    let (provider, inventory) = match inventory(lab) {
        Ok(found) => found,
        Err(e) => {
            let (_, text) = e.render();
            eprintln!(
                "note: {}; showing the declared nodes without comparing them with what exists",
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            );
            return vec![("unknown".into(), Vec::new()); lab.nodes.len()];
        }
    };
    let public = crate::files::read_text(&dir.key_path().with_extension("pub")).unwrap_or_default();
    let keys = user_keys(lab, &public).unwrap_or_default();
    let selected: Vec<String> = lab.nodes.iter().map(|n| n.vm_name.clone()).collect();
    let facts = Facts {
        lab,
        state,
        inventory: &inventory,
        capabilities: &provider.capabilities(),
        options: &Options::up(),
        user_keys: &keys,
    };
    plan::plan(&facts, &selected)
        .iter()
        .map(|p| (p.summary(), p.expected_actions()))
        .collect()
}

const ORPHAN_ACTION: &str = "orphan: kept (`up --remove-orphans` or `down NAME` deletes it)";

/// `plan`: the planner's verdict on every node (`up` with no flags), and the orphans.
pub fn plan(args: &FileArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(args)?;
    let summaries = summaries(&snapshot);
    let LabSnapshot { lab, state, .. } = &snapshot;
    let orphans: Vec<(String, OwnedVm)> = plan::orphans(&lab.nodes, state)
        .into_iter()
        .filter_map(|vm| Some((vm.clone(), state.vms.get(&vm)?.clone())))
        .collect();
    if args.json {
        let mut nodes: Vec<serde_json::Value> = lab
            .nodes
            .iter()
            .zip(&summaries)
            .map(|(n, (summary, actions))| {
                let mut v = serde_json::to_value(n).unwrap_or_default();
                v["action"] = serde_json::Value::String(summary.clone());
                v["actions"] = serde_json::to_value(actions).unwrap_or_default();
                v
            })
            .collect();
        nodes.extend(orphans.iter().map(|(vm, o)| {
            serde_json::json!({
                "vm_name": vm, "image": o.image, "cpu": o.cpu, "memory": o.memory,
                "disk": o.disk, "network": o.network, "orphan": true, "action": ORPHAN_ACTION,
            })
        }));
        out(&serde_json::json!({ "lab": lab.name(), "nodes": nodes }).to_string());
        return Ok(Exit::Ok);
    }
    out(&format!(
        "lab `{}`: {} nodes (hostname = VM name)",
        lab.name(),
        lab.nodes.len()
    ));
    if let Some(note) = lab.kept_names_note() {
        out(&note);
    }
    out(&plan_table(&snapshot, &summaries, &orphans));
    Ok(Exit::Ok)
}

fn plan_table(
    snapshot: &LabSnapshot,
    summaries: &[(String, Vec<Action>)],
    orphans: &[(String, OwnedVm)],
) -> String {
    let disk = |d: Option<u32>| d.map_or("image".to_string(), |d| format!("{d} GB"));
    let mut rows: Vec<Vec<String>> = snapshot
        .lab
        .nodes
        .iter()
        .zip(summaries)
        .map(|(n, (a, _))| {
            vec![
                n.vm_name.clone(),
                n.cluster.clone(),
                n.role.clone(),
                n.image.clone(),
                n.cpu.to_string(),
                format!("{} MiB", n.memory),
                disk(n.disk),
                n.network.to_string(),
                a.clone(),
            ]
        })
        .collect();
    rows.extend(orphans.iter().map(|(vm, o)| {
        vec![
            vm.clone(),
            "-".into(),
            "-".into(),
            o.image.clone(),
            o.cpu.to_string(),
            format!("{} MiB", o.memory),
            disk(o.disk),
            o.network.to_string(),
            ORPHAN_ACTION.into(),
        ]
    }));
    ui::table(
        &[
            "VM", "CLUSTER", "ROLE", "IMAGE", "CPU", "MEMORY", "DISK", "NETWORK", "ACTION",
        ],
        &rows,
    )
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = "Examples:\n  tartlab labs\n  tartlab labs --forget-missing")]
pub struct LabsArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Remove the labs whose lab file is gone from the list (never done otherwise)
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
    vms: usize,
    /// How many of its VMs run (`None` when tart could not be asked).
    running: Option<usize>,
    last_used: String,
}

/// Every lab this user brought up here (one `tart list` for all of them).
pub fn labs(args: &LabsArgs) -> Result<Exit> {
    let index = crate::state::LabIndex::for_user();
    if args.forget_missing {
        let (gone, warning) = index.forget_missing().map_err(|e| Error::fatal(e, ""))?;
        if let Some(warning) = warning {
            eprintln!("warning: {warning}");
        }
        for entry in &gone {
            eprintln!("forgot {} ({})", entry.lab, entry.file.display());
        }
    }
    // The index does not record each lab's provider: every lab here is local tart's.
    let inventory = crate::provider::open(None, None).ok().and_then(|provider| {
        runtime()
            .ok()?
            .block_on(read_inventory(provider.as_ref()))
            .ok()
    });
    let (entries, warning) = index.entries().map_err(|e| Error::fatal(e, ""))?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    let rows: Vec<LabRow> = entries
        .into_values()
        .map(|entry| {
            let present = entry.file.exists();
            let owned: Vec<String> = crate::state::StateDir::beside(&entry.file)
                .read_state(&entry.lab)
                .map(|s| s.vms.into_keys().collect())
                .unwrap_or_default();
            LabRow {
                lab: entry.lab,
                state: if present { "present" } else { "missing" },
                vms: owned.len(),
                running: inventory
                    .as_ref()
                    .map(|inv| owned.iter().filter(|vm| inv.running(vm)).count()),
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
    if rows.iter().any(|r| r.state == "missing") {
        out("a lab whose file is gone keeps its VMs: `tart list` shows them; `tartlab labs --forget-missing` drops it from this list");
    }
    Ok(Exit::Ok)
}
