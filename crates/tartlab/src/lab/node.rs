//! A node of the lab: one VM with every setting resolved (lab -> cluster -> node), and the
//! expansion of a node as written into the VMs it declares (`count` of them, named, the
//! defaults filled in). Pure: whether a name or a range is valid is `check.rs`'s to say.

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
    /// Where the VM may run (the cluster's placement, the node's over it).
    #[serde(skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
}

/// The VMs a node of a cluster declares: `count` of them (one without it), named
/// `<prefix><cluster>-<node>[-<i>]`, each setting the node's, else the cluster's, else
/// `defaults`', else tartlab's. A setting that is not valid is left to its default here.
pub fn expand(prefix: &str, d: &Settings, cluster: &ClusterSpec, node: &NodeSpec) -> Vec<Node> {
    let count = node.count.unwrap_or(1);
    (1..=count)
        .map(|i| {
            let base = if count > 1 {
                format!("{}-{}-{i}", cluster.name, node.name)
            } else {
                format!("{}-{}", cluster.name, node.name)
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
                placement: cluster.placement.merged(&node.placement),
            }
        })
        .collect()
}

/// The first setting given: the node's, its cluster's, the lab's.
fn pick<T: Clone>(node: &Option<T>, cluster: &Option<T>, lab: &Option<T>) -> Option<T> {
    node.clone()
        .or_else(|| cluster.clone())
        .or_else(|| lab.clone())
}
