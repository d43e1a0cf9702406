//! `tartlab status` (`ps`): one `tart list`, no SSH. A row per node (and per orphan): its
//! state, address and resources, how its last `up` ended; `-o wide` (as `kubectl get -o
//! wide`) adds the image, its digest where tart's cache tells it, the disk and the network.
//! What a VM has that the lab file no longer says (CPU, memory, disk, network, image) is
//! marked `*` and said under the table, with the command that shows the change; `--json`
//! gives the same as data (`image`, `digest`, `drift`).

use serde::Serialize;

use super::inspect::inventory;
use super::{out, FileArgs, LabSnapshot};
use crate::engine::plan::{self, Presence};
use crate::error::{Exit, Result};
use crate::lab::Node;
use crate::provider::{image_name, Inventory};
use crate::state::OwnedVm;
use crate::ui;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// `wide`: the image, its digest, the disk and the network too (as `kubectl get -o
    /// wide`); `json`: as --json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = ["wide", "json"])]
    pub output: Option<String>,
}

/// A setting where the VM differs from the lab file: what the VM has, what the file says.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
struct Drift {
    setting: &'static str,
    vm: String,
    file: String,
}

/// One row of `tartlab status`.
#[derive(Serialize)]
struct StatusRow {
    node: String,
    cluster: String,
    role: String,
    state: String,
    ip: Option<String>,
    cpu: u32,
    memory: u32,
    /// The image the VM was made from (the lab file's, before it is made).
    image: String,
    /// The digest tart's cache holds for that image, where it tells (`sha256:...`).
    digest: Option<String>,
    /// The disk size the VM was given in GB, `None` for the image's own.
    disk: Option<u32>,
    network: String,
    /// How the last `up` that worked on it ended: `ok`, `failed at STAGE`.
    last_up: Option<String>,
    /// A VM the lab created that the lab file no longer declares.
    orphan: bool,
    /// Where it runs, on a provider with several hosts (Orchard: its worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// The host folders its VM was started with (`mounts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<crate::lab::mounts::Mount>,
    /// What differs from the lab file (empty for an orphan, or a VM not made yet).
    drift: Vec<Drift>,
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

/// Where the VM the lab made differs from what the file declares now.
fn drift(node: &Node, owned: &OwnedVm) -> Vec<Drift> {
    let mut found = Vec::new();
    let mut differs = |setting, vm: String, file: String| {
        if vm != file {
            found.push(Drift { setting, vm, file });
        }
    };
    differs("cpu", owned.cpu.to_string(), node.cpu.to_string());
    differs(
        "memory",
        format!("{} MiB", owned.memory),
        format!("{} MiB", node.memory),
    );
    if let Some(disk) = node.disk {
        let had = owned
            .disk
            .map_or("the image's".into(), |d| format!("{d} GB"));
        differs("disk", had, format!("{disk} GB"));
    }
    differs(
        "network",
        owned.network.to_string(),
        node.network.to_string(),
    );
    differs("image", owned.image.clone(), node.image.clone());
    found
}

/// The digest of an image in tart's cache: the reference's own, or the one digest the cache
/// holds for its repository (tart lists a pulled tag and its `REPO@sha256:...` both); none
/// when it holds several or none, or the image is not a registry's.
fn digest(inventory: &Inventory, image: &str) -> Option<String> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest.to_string());
    }
    let name = image_name(image);
    let repository = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r);
    if !repository.contains('/') || !inventory.has_image(image) {
        return None;
    }
    let prefix = format!("{repository}@");
    let mut digests = inventory
        .images
        .keys()
        .filter_map(|n| n.strip_prefix(&prefix));
    match (digests.next(), digests.next()) {
        (Some(one), None) => Some(one.to_string()),
        _ => None,
    }
}

pub fn status(args: &StatusArgs) -> Result<Exit> {
    let json = args.file.json || args.output.as_deref() == Some("json");
    let wide = args.output.as_deref() == Some("wide");
    let LabSnapshot { lab, dir, state } = LabSnapshot::open(&args.file)?;
    let unsettled = super::snapshot::unsettled(&dir, &state);
    let (_, inventory) = inventory(&lab)?;
    let host_of = |vm: &str| inventory.vms.get(vm).and_then(|v| v.host.clone());
    let mut rows = Vec::new();
    for node in &lab.nodes {
        let owned = state.vms.get(&node.vm_name);
        let word = state_word(Presence::of(&inventory, &node.vm_name, owned));
        let image = owned.map_or(node.image.clone(), |o| o.image.clone());
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
            digest: digest(&inventory, &image),
            image,
            disk: owned.map_or(node.disk, |o| o.disk),
            network: owned.map_or(node.network.to_string(), |o| o.network.to_string()),
            last_up: owned.and_then(|o| o.last_up.as_ref()).map(|l| l.text()),
            orphan: false,
            host: host_of(&node.vm_name),
            mounts: owned.map(|o| o.mounts.clone()).unwrap_or_default(),
            drift: owned
                .filter(|_| word != "missing")
                .map_or_else(Vec::new, |o| drift(node, o)),
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
            image: owned.image.clone(),
            digest: digest(&inventory, &owned.image),
            disk: owned.disk,
            network: owned.network.to_string(),
            last_up: owned.last_up.as_ref().map(|l| l.text()),
            orphan: true,
            host: host_of(vm),
            mounts: owned.mounts.clone(),
            drift: Vec::new(),
        });
    }
    if json {
        out(
            &serde_json::json!({ "lab": lab.name(), "nodes": rows, "unsettled": unsettled })
                .to_string(),
        );
        return Ok(Exit::Ok);
    }
    out(&table(&rows, wide));
    if !orphans.is_empty() {
        out(ORPHAN_NOTE);
    }
    for row in rows.iter().filter(|r| !r.drift.is_empty()) {
        let what: Vec<String> = row
            .drift
            .iter()
            .map(|d| format!("{} {} (the file: {})", d.setting, d.vm, d.file))
            .collect();
        out(&format!(
            "{} differs from the lab file: {}; `tartlab plan` shows the change",
            row.node,
            what.join(", ")
        ));
    }
    if let Some(u) = unsettled {
        eprintln!("note: {}", u.words);
    }
    Ok(Exit::Ok)
}

/// The table: the default columns, or the wide ones; a value the lab file no longer says
/// is marked `*`.
fn table(rows: &[StatusRow], wide: bool) -> String {
    // A host column only where the provider has several hosts.
    let hosts = rows.iter().any(|r| r.host.is_some());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mark = |setting: &str, text: String| {
                if r.drift.iter().any(|d| d.setting == setting) {
                    format!("{text}*")
                } else {
                    text
                }
            };
            let state = if r.orphan {
                format!("{} (orphan)", r.state)
            } else {
                r.state.clone()
            };
            let mut row = vec![
                r.node.clone(),
                r.cluster.clone(),
                r.role.clone(),
                state,
                r.ip.clone().unwrap_or_else(|| "-".into()),
                mark("cpu", r.cpu.to_string()),
                mark("memory", format!("{} MiB", r.memory)),
            ];
            if wide {
                row.push(mark(
                    "disk",
                    r.disk.map_or("image".into(), |d| format!("{d} GB")),
                ));
                row.push(mark("network", r.network.clone()));
                row.push(mark("image", r.image.clone()));
                // As docker shows an image ID: the algorithm and 12 hex digits.
                row.push(r.digest.as_ref().map_or("-".into(), |d| {
                    d.char_indices()
                        .nth(19)
                        .map_or(d.clone(), |(end, _)| d[..end].to_string())
                }));
            }
            row.push(r.last_up.clone().unwrap_or_else(|| "-".into()));
            if hosts {
                row.insert(5, r.host.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut titles = vec!["NODE", "CLUSTER", "ROLE", "STATE", "IP", "CPU", "MEMORY"];
    if wide {
        titles.extend(["DISK", "NETWORK", "IMAGE", "DIGEST"]);
    }
    titles.push("LAST UP");
    if hosts {
        titles.insert(5, "HOST");
    }
    ui::table(&titles, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_the_reference_s_own_or_the_cache_s_only_one() {
        let mut inventory = Inventory::default();
        let image = "ghcr.io/cirruslabs/ubuntu:latest";
        inventory.images.insert(image.into(), Some(20));
        assert_eq!(digest(&inventory, image), None, "no digest listed");
        inventory
            .images
            .insert("ghcr.io/cirruslabs/ubuntu@sha256:aa".into(), Some(20));
        assert_eq!(digest(&inventory, image).as_deref(), Some("sha256:aa"));
        assert_eq!(
            digest(&inventory, "ghcr.io/cirruslabs/ubuntu").as_deref(),
            Some("sha256:aa"),
            "no tag is :latest"
        );
        inventory
            .images
            .insert("ghcr.io/cirruslabs/ubuntu@sha256:bb".into(), Some(20));
        assert_eq!(digest(&inventory, image), None, "two: which one is unknown");
        assert_eq!(
            digest(&inventory, "ghcr.io/x/y@sha256:cc").as_deref(),
            Some("sha256:cc")
        );
        assert_eq!(digest(&inventory, "local-vm"), None);
    }
}
