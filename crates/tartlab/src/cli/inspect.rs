//! The reading commands that describe the lab: `validate`, `config` (the lab as `up` sees
//! it), `plan` (the planner's verdict per node, with no lock and no SSH), `schema`
//! (`status` is in `status.rs`). None of them takes the
//! lab lock: they work while an `up` runs.

use std::sync::Arc;

use super::{open_lab, out, runtime, FileArgs, LabSnapshot};
use crate::engine::events::Action;
use crate::engine::inputs::user_keys;
use crate::engine::plan::{self, Facts};
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
