//! A node of the lab: one VM with every setting resolved (lab -> cluster -> node), and the
//! expansion of a node as written into the VMs it declares (`count` of them, named, the
//! defaults filled in). Pure: whether a name or a range is valid is `check.rs`'s to say.
//!
//! Names: a node without `count` is `<cluster>-<node>`; a node with `count` is numbered at
//! any count, `<cluster>-<node>-1` to `-<count>`, so changing the count never renames a VM
//! (as compose numbers a scaled service). An older tartlab named a `count: 1` node
//! `<cluster>-<node>`: a lab whose state owns a VM by that name keeps it
//! (`Lab::keep_owned_names`).

use serde::Serialize;

use super::model::{ClusterSpec, Login, NodeSpec, Placement, Settings};
use super::network::NetworkMode;

pub const DEFAULT_IMAGE: &str = "ghcr.io/cirruslabs/ubuntu:latest";

/// Virtual CPUs and MiB of memory when neither the node, its cluster nor `defaults` says.
const DEFAULT_CPU: u32 = 2;
const DEFAULT_MEMORY: u32 = 2048;

/// The login of the images tartlab knows (cirruslabs'), when none is given.
fn default_login() -> Login {
    Login {
        user: "admin".into(),
        password: "admin".into(),
    }
}

/// One VM of the lab, with every setting resolved (lab -> cluster -> node).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Node {
    /// The tart VM name: `<vm_prefix><cluster>-<node>[-<i>]`.
    pub vm_name: String,
    /// The guest's host name, as the base sets it: the VM name without `vm_prefix`.
    pub hostname: String,
    pub cluster: String,
    pub role: String,
    pub image: String,
    /// Where the lab file gives the node its image (line, column), for a failure to point
    /// at; `None` for the default image, which the file does not write.
    #[serde(skip)]
    pub image_at: Option<(usize, usize)>,
    pub cpu: u32,
    pub memory: u32,
    /// GB; `None` keeps the image's disk size.
    pub disk: Option<u32>,
    pub network: NetworkMode,
    #[serde(skip)]
    pub login: Login,
    /// The cloud-init user-data file, relative to the lab file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<String>,
    /// Host folders the guest mounts (`mounts.rs`), filled in by the check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<super::mounts::Mount>,
    /// Where the VM may run (the cluster's placement, the node's over it).
    #[serde(skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// Where the name comes from: the node as declared, and the rule's name when the VM
    /// keeps an older one.
    #[serde(skip)]
    pub naming: Naming,
}

/// How a VM's name came about, for the other names a selector may give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    /// `<cluster>-<node>`, the node as the lab file declares it: a selector of that name
    /// picks every VM its `count` makes.
    pub declared: String,
    /// The first VM of a node that declares `count`: the one an older tartlab named
    /// `<cluster>-<node>` (at `count: 1`).
    pub first_counted: bool,
    /// The VM name and host name the rule gives it, while it keeps the names its VM was made
    /// with (`Lab::keep_owned_names`).
    pub rule: Option<(String, String)>,
}

impl Node {
    /// Whether `name` is this node's: its VM name or host name, or the rule's while it
    /// keeps an older one (`node.NAME` references, `tartlab ssh NAME`).
    pub fn is_named(&self, name: &str) -> bool {
        self.vm_name == name
            || self.hostname == name
            || self
                .naming
                .rule
                .as_ref()
                .is_some_and(|(vm, host)| vm == name || host == name)
    }

    /// The VM name and host name an older tartlab gave the first VM of a node with
    /// `count` (`<prefix><cluster>-<node>`, as a node without `count` is named), if this is
    /// that VM.
    pub fn older_names(&self) -> Option<(String, String)> {
        if !self.naming.first_counted || self.naming.rule.is_some() {
            return None;
        }
        let prefix = self.vm_name.strip_suffix(&self.hostname)?;
        let host = self.naming.declared.clone();
        Some((format!("{prefix}{host}"), host))
    }

    /// Gives the node the names its VM was made with, keeping the rule's beside them.
    pub fn keep_names(&mut self, (vm_name, hostname): (String, String)) {
        let rule = (
            std::mem::replace(&mut self.vm_name, vm_name),
            std::mem::replace(&mut self.hostname, hostname),
        );
        self.naming.rule = Some(rule);
    }
}

/// The VMs a node of a cluster declares: `count` of them (one without it), named
/// `<prefix><cluster>-<node>` without `count` and `<prefix><cluster>-<node>-<i>` with it,
/// whatever the count, each setting the node's, else the cluster's, else `defaults`', else
/// tartlab's. A setting that is not valid is left to its default here.
pub fn expand(prefix: &str, d: &Settings, cluster: &ClusterSpec, node: &NodeSpec) -> Vec<Node> {
    let declared = format!("{}-{}", cluster.name, node.name);
    let count = node.count.unwrap_or(1);
    (1..=count)
        .map(|i| {
            let base = match node.count {
                Some(_) => format!("{declared}-{i}"),
                None => declared.clone(),
            };
            Node {
                vm_name: format!("{prefix}{base}"),
                hostname: base,
                cluster: cluster.name.clone(),
                role: node.role.clone().unwrap_or_else(|| node.name.clone()),
                image: pick(&node.image, &cluster.image, &d.image)
                    .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
                image_at: None,
                cpu: pick(&node.cpu, &cluster.cpu, &d.cpu).unwrap_or(DEFAULT_CPU),
                memory: pick(&node.memory, &cluster.memory, &d.memory)
                    .map_or(DEFAULT_MEMORY, |m| m.0),
                disk: pick(&node.disk, &cluster.disk, &d.disk).map(|g| g.0),
                network: pick(&node.network, &cluster.network, &d.network)
                    .and_then(|n| n.to_mode().ok())
                    .unwrap_or_default(),
                login: pick(&node.login, &cluster.login, &d.login).unwrap_or_else(default_login),
                cloud_init: pick(&node.cloud_init, &cluster.cloud_init, &d.cloud_init),
                mounts: Vec::new(),
                placement: cluster.placement.merged(&node.placement),
                naming: Naming {
                    declared: declared.clone(),
                    first_counted: node.count.is_some() && i == 1,
                    rule: None,
                },
            }
        })
        .collect()
}

/// The node `name` names (`node.NAME` references): the one of that VM or host name, else the
/// only VM of a node declared so (`<cluster>-<node>` with `count: 1`).
pub fn named<'n>(nodes: &'n [Node], name: &str) -> Option<&'n Node> {
    if let Some(node) = nodes.iter().find(|n| n.is_named(name)) {
        return Some(node);
    }
    let mut declared = nodes.iter().filter(|n| n.naming.declared == name);
    match (declared.next(), declared.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// The first setting given: the node's, its cluster's, the lab's.
fn pick<T: Clone>(node: &Option<T>, cluster: &Option<T>, lab: &Option<T>) -> Option<T> {
    node.clone()
        .or_else(|| cluster.clone())
        .or_else(|| lab.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::lab::{picks, read, selects, Lab, Source};

    fn lab(nodes: &str) -> Lab {
        let text = format!("lab: t\nclusters:\n  - name: stg\n    nodes:\n{nodes}");
        read(Source::new(Path::new("tartlab.yaml"), text)).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn names(lab: &Lab) -> Vec<&str> {
        lab.nodes.iter().map(|n| n.vm_name.as_str()).collect()
    }

    #[test]
    fn a_node_with_count_is_numbered_at_any_count_and_one_without_is_not() {
        let one = lab("      - { name: master }\n      - { name: worker, count: 1 }\n");
        assert_eq!(names(&one), ["stg-master", "stg-worker-1"]);
        let two = lab("      - { name: worker, count: 2 }\n");
        assert_eq!(names(&two), ["stg-worker-1", "stg-worker-2"]);
        // The node as declared picks every VM of it.
        assert!(two.nodes.iter().all(|n| selects("stg-worker", n)));
    }

    #[test]
    fn the_first_vm_keeps_the_older_name_the_state_owns_and_only_then() {
        let mut kept = lab("      - { name: worker, count: 2 }\n");
        kept.keep_owned_names(|vm| vm == "stg-worker");
        assert_eq!(names(&kept), ["stg-worker", "stg-worker-2"]);
        assert_eq!(kept.nodes[0].hostname, "stg-worker");
        assert!(kept
            .node("stg-worker-1")
            .is_some_and(|n| n.vm_name == "stg-worker"));
        // Its own name picks it alone on the command line; the declared name, both.
        let picked: Vec<bool> = kept
            .nodes
            .iter()
            .map(|n| picks("stg-worker", n, &kept.nodes))
            .collect();
        assert_eq!(picked, [true, false]);
        assert!(kept.nodes.iter().all(|n| selects("stg-worker", n)));
        assert!(kept
            .kept_names_note()
            .is_some_and(|n| n.contains("stg-worker (by the rule stg-worker-1)")));

        // The state owns the rule's name too (an orphan from before): the rule wins.
        let mut both = lab("      - { name: worker, count: 1 }\n");
        both.keep_owned_names(|vm| vm == "stg-worker" || vm == "stg-worker-1");
        assert_eq!(names(&both), ["stg-worker-1"]);
        assert!(both.kept_names_note().is_none());

        // A new lab, or a node without `count`: nothing to keep.
        let mut new = lab("      - { name: worker, count: 1 }\n      - { name: db }\n");
        new.keep_owned_names(|vm| vm == "stg-db");
        assert_eq!(names(&new), ["stg-worker-1", "stg-db"]);
    }

    #[test]
    fn a_node_declared_twice_is_refused_even_when_its_vm_names_differ() {
        let text = "lab: t\nclusters:\n  - name: stg\n    nodes:\n      - { name: worker, count: 1 }\n      - { name: worker }\n";
        let problems = read(Source::new(Path::new("tartlab.yaml"), text.into()))
            .err()
            .unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("declares node `worker` twice")),
            "{problems:?}"
        );
    }
}
