//! The lab file as written (schema v1, design.md section 3): every field typed, unknown
//! keys refused. `expand` turns it into the nodes that will exist.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::network::NetworkSpec;

/// A tartlab lab file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    /// The lab's name: `[a-z][a-z0-9-]*`.
    pub lab: String,
    /// Prefix of every VM name, to keep two labs with the same cluster names apart.
    #[serde(default)]
    pub vm_prefix: Option<String>,
    /// Settings for every node, unless a cluster or node overrides them.
    #[serde(default)]
    pub defaults: Settings,
    /// Which nodes `/etc/hosts` lists on each node.
    #[serde(default)]
    pub hosts: HostsScope,
    /// Accounts created on every node.
    #[serde(default)]
    pub users: Vec<UserSpec>,
    pub clusters: Vec<ClusterSpec>,
    /// Files uploaded to the nodes.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Provisioning steps, in order; each runs on the nodes its `on` selects.
    #[serde(default)]
    pub provision: Vec<StepSpec>,
    /// Probes run after provisioning.
    #[serde(default)]
    pub ready: Vec<ProbeSpec>,
    /// Whether `up` checks that each node reaches the nodes of its `hosts` scope (TCP port 22,
    /// from inside the guest) after a node or its peers booted. Default true.
    #[serde(default = "yes")]
    pub network_check: bool,
}

fn yes() -> bool {
    true
}

/// Settings a lab, a cluster or a node may set; unset ones inherit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// OCI image reference or local VM name to clone.
    #[serde(default)]
    pub image: Option<String>,
    /// Virtual CPUs.
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Memory in MiB.
    #[serde(default)]
    pub memory: Option<u32>,
    /// Disk size in GB (grow only: tart cannot shrink a disk).
    #[serde(default)]
    pub disk: Option<u32>,
    /// `nat`, `softnet`, `host`, `bridged:<interface>`, or a map such as
    /// `{ mode: softnet, allow: [0.0.0.0/0] }` (docs/NETWORKS.md).
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// The image's first account, used to log in before the lab key is installed.
    #[serde(default)]
    pub login: Option<Login>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostsScope {
    None,
    Cluster,
    #[default]
    Lab,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SudoMode {
    #[default]
    None,
    Password,
    Nopasswd,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub sudo: SudoMode,
    #[serde(default)]
    pub shell: Option<String>,
    /// Paths of public key files, or literal keys.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// A crypt(3) hash (`openssl passwd -6`); plain passwords are never stored.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Refused: present only so the error can say what to use instead.
    #[serde(default)]
    #[schemars(skip)]
    pub password: Option<String>,
}

/// A cluster: its nodes, and settings they inherit. The settings repeat `Settings`'s
/// fields because serde's `flatten` cannot be combined with `deny_unknown_fields`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub cpu: Option<u32>,
    #[serde(default)]
    pub memory: Option<u32>,
    #[serde(default)]
    pub disk: Option<u32>,
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    #[serde(default)]
    pub login: Option<Login>,
}

/// A node, or `count` alike nodes named `<name>-1` ... `<name>-<count>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub cpu: Option<u32>,
    #[serde(default)]
    pub memory: Option<u32>,
    #[serde(default)]
    pub disk: Option<u32>,
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    #[serde(default)]
    pub login: Option<Login>,
}

fn all() -> String {
    "all".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path on this machine, relative to the lab file.
    pub src: String,
    /// Absolute path on the node.
    pub dest: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Selector: `all`, a node, `cluster=NAME` or `role=NAME`.
    #[serde(default = "all")]
    pub on: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    #[serde(default = "all")]
    pub on: String,
    /// A bash script (run with `set -euo pipefail`).
    #[serde(default)]
    pub run: Option<String>,
    /// A script file, relative to the lab file, uploaded and run the same way.
    #[serde(default)]
    pub script: Option<String>,
    /// Environment; values may use `{{ node.NAME.outputs.KEY }}` and `{{ cluster.ROLE.outputs.KEY }}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Keys this step prints as `tartlab-output KEY=VALUE`: a name, or `{ name, secret: true }`
    /// for a value masked wherever tartlab shows or logs it.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Steps that must have finished first (besides every earlier step).
    #[serde(default)]
    pub after: Vec<String>,
    /// Run as this user instead of root.
    #[serde(default)]
    pub user: Option<String>,
}

/// An output a step declares.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OutputSpec {
    Name(String),
    Detailed(DetailedOutput),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedOutput {
    pub name: String,
    #[serde(default)]
    pub secret: bool,
}

impl OutputSpec {
    pub fn name(&self) -> &str {
        match self {
            OutputSpec::Name(n) => n,
            OutputSpec::Detailed(d) => &d.name,
        }
    }
    pub fn secret(&self) -> bool {
        matches!(self, OutputSpec::Detailed(d) if d.secret)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    #[serde(default = "all")]
    pub on: String,
    pub run: String,
    #[serde(default)]
    pub hint: Option<String>,
}
