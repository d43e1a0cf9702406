//! Validation and expansion: every rule of the lab file checked, every problem reported
//! together and located; on success, the nodes that will exist, with inherited settings.
//! The pass itself: the lab, its clusters and nodes here; names and ranges (`names.rs`),
//! users (`users.rs`) and steps (`steps.rs`, with `selector.rs` and `reference.rs`) apart.

use std::collections::{HashMap, HashSet};

use super::checker::{at, expand_home, Checker, Here};
use super::diagnostic::{Diagnostic, Source};
use super::input::{Inputs, Kind};
use super::model::{ClusterSpec, LabFile, NodeSpec};
use super::mounts::{check_list, Mount};
use super::names::{check_resources, gb, is_label, mib, too_many_nodes, Resources};
use super::node::{self, Node};
use super::steps::check_steps;
use super::structure::Reading;
use super::users::{check_logins, check_users};

/// Validates the lab file and expands it into nodes, or returns every problem found.
pub fn validate(
    file: &LabFile,
    source: &Source,
    reading: &Reading,
) -> Result<(Vec<Node>, Inputs), Vec<Diagnostic>> {
    let mut c = Checker::new(source, reading);
    if !(is_label(&file.lab) && file.lab.starts_with(|ch: char| ch.is_ascii_lowercase())) {
        c.error(
            Here::Value("lab".into()),
            format!("lab name `{}` is not valid", file.lab),
            "use lower-case letters, digits and `-`, starting with a letter, e.g. `k8s`",
        );
    }
    if let Some(prefix) = &file.vm_prefix {
        if !(prefix.is_empty() || is_label(prefix.trim_end_matches('-'))) {
            c.error(
                Here::Value("vm_prefix".into()),
                format!("vm_prefix `{prefix}` is not valid"),
                "use lower-case letters, digits and `-`",
            );
        }
    }
    let d = &file.defaults;
    let settings = Resources {
        image: &d.image,
        cpu: d.cpu,
        memory: mib(d.memory),
        disk: gb(d.disk),
        network: &d.network,
    };
    check_resources(&mut c, "defaults", &settings);
    check_allowed_paths(&mut c, file);
    if too_many_nodes(&mut c, file) {
        return Err(c.problems);
    }
    let nodes = expand(&mut c, file);
    check_users(&mut c, file);
    check_logins(&mut c, file);
    check_steps(&mut c, file, &nodes);
    if c.problems.is_empty() {
        Ok((nodes, c.inputs))
    } else {
        Err(c.problems)
    }
}

/// `allow_paths_outside`: each an existing directory, allowed by its real path.
fn check_allowed_paths(c: &mut Checker, file: &LabFile) {
    for (i, dir) in file.allow_paths_outside.iter().enumerate() {
        match std::fs::canonicalize(expand_home(dir, c.source)) {
            Ok(real) if real.is_dir() => c.confinement.allow(real),
            found => {
                let why = match found {
                    Ok(_) => "is not a directory".to_string(),
                    Err(e) => format!("cannot be used: {e}"),
                };
                c.error(
                    Here::Value(format!("allow_paths_outside.{i}")),
                    format!("allowed path `{dir}` {why}"),
                    "name existing directories: absolute, `~/...`, or relative to the lab file",
                );
            }
        }
    }
}

fn expand(c: &mut Checker, file: &LabFile) -> Vec<Node> {
    let prefix = file.vm_prefix.clone().unwrap_or_default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut vm_names: HashSet<String> = HashSet::new();
    let mut seen_clusters: HashMap<&str, usize> = HashMap::new();
    // Each `mounts` list is checked once, where it is written.
    let default_mounts =
        Inherited::checked(c, file, "defaults", file.defaults.mounts.as_deref(), None);
    if file.clusters.is_empty() && !c.reading.partial {
        c.problems.push(
            Diagnostic::unlocated(
                "the lab has no clusters",
                "add `clusters:` with at least one cluster and node",
            )
            .in_file(c.source),
        );
    }
    for (ci, cluster) in file.clusters.iter().enumerate() {
        let path = format!("clusters.{ci}");
        let n = seen_clusters.entry(&cluster.name).or_insert(0);
        if *n > 0 {
            c.error(
                Here::Value(at(&path, "name")),
                format!("cluster `{}` is declared twice", cluster.name),
                "give each cluster its own name",
            );
        }
        *n += 1;
        if !is_label(&cluster.name) {
            c.error(
                Here::Value(at(&path, "name")),
                format!(
                    "cluster name `{}` is not a valid host name part",
                    cluster.name
                ),
                "use lower-case letters, digits and `-` (RFC 1123), at most 63 characters",
            );
        }
        let settings = Resources {
            image: &cluster.image,
            cpu: cluster.cpu,
            memory: mib(cluster.memory),
            disk: gb(cluster.disk),
            network: &cluster.network,
        };
        check_resources(c, &path, &settings);
        if cluster.nodes.is_empty() {
            c.absent(
                Here::Value(at(&path, "name")),
                format!("cluster `{}` has no nodes", cluster.name),
                "add `nodes:` with at least one node",
            );
        }
        let cluster_mounts = Inherited::checked(
            c,
            file,
            &path,
            cluster.mounts.as_deref(),
            Some(&default_mounts),
        );
        for (ni, node) in cluster.nodes.iter().enumerate() {
            let at_node = format!("{path}.nodes.{ni}");
            let node_mounts = Inherited::checked(
                c,
                file,
                &at_node,
                node.mounts.as_deref(),
                Some(&cluster_mounts),
            );
            let before = nodes.len();
            expand_node(
                c,
                file,
                (cluster, node),
                &at_node,
                &prefix,
                (&mut nodes, &mut vm_names),
            );
            for expanded in &mut nodes[before..] {
                node_mounts.give(c, file, expanded);
            }
        }
    }
    nodes
}

fn expand_node(
    c: &mut Checker,
    file: &LabFile,
    (cluster, node): (&ClusterSpec, &NodeSpec),
    path: &str,
    prefix: &str,
    (nodes, vm_names): (&mut Vec<Node>, &mut HashSet<String>),
) {
    if !is_label(&node.name) {
        c.error(
            Here::Value(at(path, "name")),
            format!("node name `{}` is not a valid host name part", node.name),
            "use lower-case letters, digits and `-` (RFC 1123)",
        );
        return;
    }
    // A role goes where a node name goes (selectors, user-data, tables): the same rule.
    if let Some(role) = node.role.as_deref().filter(|r| !is_label(r)) {
        c.error(
            Here::Value(at(path, "role")),
            format!("role `{role}` is not valid"),
            "use lower-case letters, digits and `-` (RFC 1123), as for node names, e.g. `worker`",
        );
    }
    let settings = Resources {
        image: &node.image,
        cpu: node.cpu,
        memory: mib(node.memory),
        disk: gb(node.disk),
        network: &node.network,
    };
    check_resources(c, path, &settings);
    let count = node.count.unwrap_or(1);
    if count == 0 || count > 100 {
        c.error(
            Here::Value(at(path, "count")),
            format!("count {count} is out of range"),
            "give 1 to 100 nodes",
        );
        return;
    }
    let cluster_path = path.rsplit_once(".nodes.").map_or("", |(c, _)| c);
    let defined_at = if node.cloud_init.is_some() {
        at(path, "cloud_init")
    } else if cluster.cloud_init.is_some() {
        at(cluster_path, "cloud_init")
    } else {
        "defaults.cloud_init".to_string()
    };
    let declared = format!("{}-{}", cluster.name, node.name);
    let declared_before = nodes.iter().any(|n| n.naming.declared == declared);
    let mut said_twice = false;
    let image_path = if node.image.is_some() {
        Some(at(path, "image"))
    } else if cluster.image.is_some() {
        Some(at(cluster_path, "image"))
    } else {
        file.defaults
            .image
            .as_ref()
            .map(|_| "defaults.image".to_string())
    };
    for mut expanded in node::expand(prefix, &file.defaults, cluster, node) {
        // Where the file gives the image, for a failed pull to point at (found by its text
        // in JSON read without places).
        expanded.image_at = image_path.as_ref().and_then(|p| {
            c.reading
                .spots
                .value(p)
                .map(|s| (s.line, s.column))
                .or_else(|| c.source.find("image", &expanded.image, 0))
        });
        // The lab's own Orchard labels go under the cluster's and the node's.
        if let super::model::ProviderChoice::Orchard(orchard) = &file.provider {
            let mut labels = orchard.labels.clone();
            labels.append(&mut expanded.placement.labels);
            expanded.placement.labels = labels;
        }
        let vm_name = &expanded.vm_name;
        if vm_name.len() > 63 {
            c.error(
                Here::Value(at(path, "name")),
                format!("VM name `{vm_name}` is longer than 63 characters"),
                "shorten the cluster, node or vm_prefix name",
            );
        }
        if !vm_names.insert(vm_name.clone()) {
            c.error(
                Here::Value(at(path, "name")),
                format!("two nodes would be named `{vm_name}`"),
                "rename one of them; names are <cluster>-<node>, and <cluster>-<node>-<i> for a node with `count`",
            );
            said_twice = true;
        }
        nodes.push(expanded);
        check_cloud_init(c, file, nodes.last(), &defined_at);
    }
    // `worker` with `count` and `worker` without share no VM name, but a selector
    // `<cluster>-worker` would mean both.
    if declared_before && !said_twice {
        c.error(
            Here::Value(at(path, "name")),
            format!(
                "cluster `{}` declares node `{}` twice",
                cluster.name, node.name
            ),
            "rename one of them; a selector `<cluster>-<node>` picks every VM of the node of that name",
        );
    }
}

/// The mounts a node gets from the nearest list written, and where that list is.
struct Inherited {
    mounts: Vec<Mount>,
    /// The model path of the list, if one is written.
    at: Option<String>,
}

impl Inherited {
    /// The list at `owner.mounts` checked, or the inherited one when none is written.
    fn checked(
        c: &mut Checker,
        file: &LabFile,
        owner: &str,
        list: Option<&[super::mounts::MountSpec]>,
        inherited: Option<&Inherited>,
    ) -> Inherited {
        match list {
            Some(list) => {
                let at = at(owner, "mounts");
                Inherited {
                    mounts: check_list(c, &file.provider, &at, list),
                    at: (!list.is_empty()).then_some(at),
                }
            }
            None => Inherited {
                mounts: inherited.map(|i| i.mounts.clone()).unwrap_or_default(),
                at: inherited.and_then(|i| i.at.clone()),
            },
        }
    }

    /// Gives the node its mounts; a provider without host folders refuses them (once).
    fn give(&self, c: &mut Checker, file: &LabFile, node: &mut Node) {
        let Some(at) = &self.at else {
            return;
        };
        if let super::model::ProviderChoice::Orchard(_) = &file.provider {
            if c.refused.insert(format!("mounts on orchard {at}")) {
                c.error(
                    Here::Value(at.clone()),
                    format!("{} has `mounts`, which the orchard provider cannot do: its VMs run on a worker, which has no way to this Mac's folders", node.vm_name),
                    "remove `mounts` and copy with `files:` or `tartlab cp`, or use `provider: tart`; Orchard's own `hostDirs` shares a directory of the worker, not of this Mac (docs/LAB-FILE.md, `mounts`)",
                );
            }
            return;
        }
        node.mounts = self.mounts.clone();
    }
}

/// A node's user-data: the file exists, is `#cloud-config`, and is YAML once tartlab's
/// values are filled in.
fn check_cloud_init(c: &mut Checker, file: &LabFile, node: Option<&Node>, defined_at: &str) {
    let Some(node) = node else {
        return;
    };
    let Some(relative) = &node.cloud_init else {
        return;
    };
    // Orchard gives a VM no cloud-init data source, and a reboot there ends the VM: not yet.
    if matches!(file.provider, super::model::ProviderChoice::Orchard(_)) {
        if c.refused.insert("cloud-init on orchard".into()) {
            c.error(
                Here::Value(defined_at.to_string()),
                format!("{} has `cloud_init`, which the orchard provider does not support yet", node.vm_name),
                "remove `cloud_init` and do the same in `provision` steps (they run on Orchard as anywhere), or use `provider: tart`",
            );
        }
        return;
    }
    let help = "give a #cloud-config user-data file, relative to the lab file (docs/LAB-FILE.md, \"cloud-init\")";
    let path = c.source.dir().join(relative);
    let here = Here::Value(defined_at.to_string());
    if !c.input(here, relative, &path, Kind::CloudInit, help) {
        return;
    }
    // Checked once per file, not once per node: the values tartlab fills in are names
    // (DNS labels, checked), which cannot change the YAML's structure, so the first node's
    // user-data stands for every node's (1000 nodes, one parse of up to 1 MiB).
    if !c.refused.insert(format!("user-data {relative}")) {
        return;
    }
    let text = c
        .inputs
        .get(relative)
        .map(|b| String::from_utf8(b.to_vec()));
    let problem = match text {
        Some(Ok(text)) => super::cloud_init::user_data(&text, node, &file.lab)
            .err()
            .map(|why| format!("cloud-init file `{relative}` (for {}): {why}", node.vm_name)),
        _ => Some(format!("cloud-init file `{relative}` is not UTF-8 text")),
    };
    if let Some(message) = problem {
        c.error(Here::Value(defined_at.to_string()), message, help);
    }
}
