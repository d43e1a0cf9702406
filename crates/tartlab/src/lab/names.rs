//! Names and ranges: what a lab, cluster, node, role, user or variable may be called (an
//! image reference: `image.rs`), and the ranges of a VM's resources and of the lab's size.

use super::checker::{at, Checker, Here};
use super::model::LabFile;
use super::network::NetworkSpec;
use super::size::{Gigabytes, Mebibytes};

/// The most nodes a lab may have, `count`s expanded: ten times what one Mac runs, and
/// small enough that every check stays well under a second (docs/PERFORMANCE.md).
pub const MAX_NODES: usize = 1000;

/// A DNS label as RFC 1123 allows (lower case here), at most 63 characters.
pub(super) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A snapshot's name, checked as a node's is (a DNS label); the problem if it is not one.
pub fn check_snapshot_name(name: &str) -> Result<(), String> {
    if is_label(name) {
        return Ok(());
    }
    Err(format!("`{name}` is not a valid snapshot name: like a node's, it is lower-case letters, digits and `-`, not starting or ending with `-`, at most 63 characters"))
}

/// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) const NAME_RULE: &str =
    "use lower-case letters, digits, `-` and `_`, starting with a letter or `_`, at most 32 characters";

/// A user or group name as `useradd` takes it (and never read as an option).
pub(super) fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The settings `defaults`, a cluster or a node may give.
pub(super) struct Resources<'a> {
    pub(super) image: &'a Option<String>,
    pub(super) cpu: Option<u32>,
    pub(super) memory: Option<u32>,
    pub(super) disk: Option<u32>,
    pub(super) network: &'a Option<NetworkSpec>,
}

pub(super) fn check_resources(c: &mut Checker, path: &str, given: &Resources) {
    if let Some(image) = given.image {
        if let Err(wrong) = super::image::check(image) {
            c.error_within(
                &at(path, "image"),
                (image, wrong.at),
                format!(
                    "`{image}` is not an image reference: {} (character {})",
                    wrong.why,
                    wrong.at + 1
                ),
                "write host/namespace[:tag] as tart reads it, e.g. ghcr.io/cirruslabs/ubuntu:latest, or a local VM's name (docs/LAB-FILE.md, \"Images\")",
            );
        }
    }
    if let Some(cpu) = given.cpu.filter(|n| !(1..=32).contains(n)) {
        c.error(
            Here::Value(at(path, "cpu")),
            format!("cpu {cpu} is out of range"),
            "give 1 to 32 virtual CPUs",
        );
    }
    if let Some(m) = given.memory.filter(|n| !(256..=131_072).contains(n)) {
        c.error(
            Here::Value(at(path, "memory")),
            format!("memory {m} MiB is out of range"),
            "give 256 MiB to 128 GiB, e.g. 2048 or 4GiB",
        );
    }
    if let Some(d) = given.disk.filter(|n| !(10..=2000).contains(n)) {
        c.error(
            Here::Value(at(path, "disk")),
            format!("disk {d} GB is out of range"),
            "give 10 to 2000 (GB); tart can only grow a disk",
        );
    }
    let Some(Err(e)) = given.network.as_ref().map(NetworkSpec::to_mode) else {
        return;
    };
    let network = at(path, "network");
    let here = match &e.at {
        Some(("network", _)) | None => network,
        Some((key, _)) => at(&network, key),
    };
    c.error(
        Here::Value(here),
        e.message,
        "write nat, softnet, host, bridged:<interface>, or a map such as { mode: softnet, allow: [0.0.0.0/0] } (docs/NETWORKS.md); leave it out for the default, in which nodes reach each other",
    );
}

pub(super) fn mib(size: Option<Mebibytes>) -> Option<u32> {
    size.map(|s| s.0)
}

pub(super) fn gb(size: Option<Gigabytes>) -> Option<u32> {
    size.map(|s| s.0)
}

/// Whether the lab declares more than `MAX_NODES` (said at the node that goes over); the
/// rest of the checks then wait, as they would take time for a lab that cannot be.
pub(super) fn too_many_nodes(c: &mut Checker, file: &LabFile) -> bool {
    let mut total = 0usize;
    let mut over = None;
    for (ci, cluster) in file.clusters.iter().enumerate() {
        for (ni, node) in cluster.nodes.iter().enumerate() {
            // A count out of its own range is said there, and counts as one here.
            let count = node.count.filter(|n| (1..=100).contains(n)).unwrap_or(1);
            total += count as usize;
            if total > MAX_NODES && over.is_none() {
                let key = if node.count.is_some() {
                    "count"
                } else {
                    "name"
                };
                over = Some(format!("clusters.{ci}.nodes.{ni}.{key}"));
            }
        }
    }
    let Some(here) = over else {
        return false;
    };
    c.error(
        Here::Value(here),
        format!("the lab has {total} nodes, over the {MAX_NODES} a lab may have: this node is the one over"),
        &format!("a lab may have at most {MAX_NODES} nodes (`count`s expanded); split it into labs, each with its own vm_prefix"),
    );
    true
}
