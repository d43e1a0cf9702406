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
use crate::lab::{self, Lab};
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

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print login passwords (and an Orchard token) as the lab file has them, not masked
    #[arg(long)]
    pub show_secrets: bool,
}

pub fn config(args: &ConfigArgs) -> Result<Exit> {
    let lab = open_lab(&args.file, false)?;
    let secrets = if args.show_secrets {
        lab::Secrets::Shown
    } else {
        lab::Secrets::Masked
    };
    let resolved = lab.resolved_with(secrets);
    let text = if args.file.json {
        serde_json::to_string_pretty(&resolved).map_err(|e| e.to_string())
    } else {
        serde_saphyr::to_string(&resolved)
            .map(|yaml| mark_masked(&yaml))
            .map_err(|e| e.to_string())
    };
    let text = text.map_err(|e| Error::fatal(format!("cannot write the lab out: {e}"), ""))?;
    if args.file.json && secrets == lab::Secrets::Masked && text.contains(lab::MASKED) {
        // JSON has no comments: the note goes beside it.
        eprintln!(
            "note: each \"{}\" is a masked secret (`tartlab config --show-secrets` prints them)",
            lab::MASKED
        );
    }
    out(text.trim_end());
    Ok(Exit::Ok)
}

/// A YAML comment on each line whose value is a masked secret, so that nobody takes it for
/// the password: the rest of the output stays a lab file as it is.
fn mark_masked(yaml: &str) -> String {
    let masked = [
        format!(": {}", lab::MASKED),
        format!(": \"{}\"", lab::MASKED),
        format!(": '{}'", lab::MASKED),
    ];
    let mut marked = String::with_capacity(yaml.len());
    for line in yaml.lines() {
        marked.push_str(line);
        if masked.iter().any(|m| line.trim_end().ends_with(m.as_str())) {
            marked.push_str("  # masked: `tartlab config --show-secrets` prints it");
        }
        marked.push('\n');
    }
    marked
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
        "lab `{}`: {} (hostname = VM name)",
        lab.name(),
        crate::text::count(lab.nodes.len(), "node")
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
