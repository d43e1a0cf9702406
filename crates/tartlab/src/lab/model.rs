//! The lab file as written (schema v1; docs/LAB-FILE.md is its reference): every field
//! typed, unknown keys refused. The doc comments here are what `tartlab schema` shows users;
//! `x-name` names a section in messages, `x-expects` says what a key takes.
//!
//! Over 500 lines, for a reason: the schema is one derived type tree, and a field's type,
//! default and user-facing doc comment belong beside the others of its section.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mounts::MountSpec;
use super::network::NetworkSpec;
use super::size::{Gigabytes, Mebibytes};

/// A tartlab lab file: clusters of Linux VMs, the accounts, files and provisioning steps
/// they get, and the checks that say they are ready (docs/LAB-FILE.md).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "the lab file"))]
pub struct LabFile {
    /// The lab's name: lower-case letters, digits and `-`, starting with a letter.
    #[schemars(example = &"k8s")]
    pub lab: String,
    /// Put before every VM name (`<vm_prefix><cluster>-<node>`), to keep two labs with the
    /// same cluster names apart on one Mac. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_prefix: Option<String>,
    /// Settings every node gets unless its cluster or the node itself sets them.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub defaults: Settings,
    /// Which nodes each node's `/etc/hosts` lists: `lab` (every node), `cluster` (the nodes
    /// of its cluster) or `none`.
    #[serde(default)]
    pub hosts: HostsScope,
    /// Accounts made on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
    /// The clusters, each with its nodes. A node's VM is named `<cluster>-<node>`. A lab has
    /// at most 1000 nodes, `count`s expanded.
    pub clusters: Vec<ClusterSpec>,
    /// Files copied to the nodes (before the provisioning steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Provisioning steps, in order. A step starts on any node only when the one before has
    /// finished on every node it selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provision: Vec<StepSpec>,
    /// Commands run after provisioning, on every `up`, that say the lab is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<ProbeSpec>,
    /// Whether `up` checks that each node reaches the nodes of its `hosts` scope (TCP port
    /// 22, from inside the guest) after it or its peers booted.
    #[serde(default = "yes")]
    pub network_check: bool,
    /// Directories outside the lab's own from which `files` sources, `script:`,
    /// `cloud_init:` and key files may come (absolute, `~/...`, or relative to the lab
    /// file, e.g. `..`). Without it every such path must resolve, links followed, inside
    /// the lab file's directory; `.pub` files in `~/.ssh` are always allowed as keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(example = &["../shared", "/opt/certs"])]
    pub allow_paths_outside: Vec<String>,
    /// Where the lab's VMs are made and run: `tart`, this Mac's tart (the default), or
    /// `{ orchard: { url: ..., service_account: ..., token_env: ... } }`, a fleet of Macs
    /// through an Orchard controller.
    #[serde(default, skip_serializing_if = "ProviderChoice::is_default")]
    pub provider: ProviderChoice,
}

/// The backend that makes and runs the lab's VMs (docs/LAB-FILE.md, `provider`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// tart on this Mac.
    #[default]
    Tart,
    /// A fleet of Macs through an Orchard controller: `{ orchard: { url: ..., ... } }`.
    Orchard(OrchardSpec),
}

impl ProviderChoice {
    /// The name the lab file gives it.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderChoice::Tart => "tart",
            ProviderChoice::Orchard(_) => "orchard",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == ProviderChoice::default()
    }
}

/// An Orchard controller and how the lab's VMs are made there. What the lab file leaves out
/// is taken, as the `orchard` command takes it, from `ORCHARD_URL`,
/// `ORCHARD_SERVICE_ACCOUNT_NAME` and `ORCHARD_SERVICE_ACCOUNT_TOKEN`, then from the orchard
/// CLI's context file (`$ORCHARD_HOME/.orchard/orchard.yml`, else `~/.orchard/orchard.yml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "`provider.orchard`"))]
pub struct OrchardSpec {
    /// The controller's URL, e.g. `https://orchard.example.com:6120` (a URL without a
    /// scheme gets `https://`, one without a port `:6120`, as the orchard CLI does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"https://orchard.example.com:6120")]
    pub url: Option<String>,
    /// The service account's name. It needs the roles `compute:read` and `compute:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The environment variable that holds the service account's token (the token itself
    /// stays out of the lab file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"ORCHARD_TOKEN")]
    pub token_env: Option<String>,
    /// The token itself. Prefer `token_env`: a lab file is often shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The controller's own certificate (PEM), to trust it alone whatever its name says,
    /// as the orchard CLI pins the one a controller makes itself: a path (absolute, `~/...`,
    /// or relative to the lab file). Default: the orchard context's, when the URL is the
    /// context's too; else the system's certificate authorities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"orchard-controller.pem")]
    pub certificate: Option<String>,
    /// The orchard CLI context to read what is not given here. Default: its default
    /// context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The CPU architecture of the VMs, which must be the workers': `arm64` (Apple Silicon,
    /// the default) or `amd64`.
    #[serde(default)]
    pub arch: OrchardArch,
    /// The runtime the workers run VMs with: `tart` (the default, the Macs' one).
    #[serde(default)]
    pub runtime: OrchardRuntime,
    /// Labels every VM of the lab asks of its worker (a VM runs only on a worker whose
    /// labels include all of them), merged under each cluster's and node's `placement`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The CPU architecture of an Orchard VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrchardArch {
    #[default]
    Arm64,
    Amd64,
}

impl OrchardArch {
    pub fn name(&self) -> &'static str {
        match self {
            OrchardArch::Arm64 => "arm64",
            OrchardArch::Amd64 => "amd64",
        }
    }
}

/// The runtime an Orchard worker runs a VM with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrchardRuntime {
    #[default]
    Tart,
}

impl OrchardRuntime {
    pub fn name(&self) -> &'static str {
        match self {
            OrchardRuntime::Tart => "tart",
        }
    }
}

/// Where a cluster's or a node's VMs may run, for providers that choose among hosts
/// (Orchard: the worker's labels must include every label, and its free resources cover
/// every resource). A node's entries are merged over its cluster's, key by key. Local tart
/// has one host and ignores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "`placement`"))]
pub struct Placement {
    /// Labels the host must have, e.g. `{ rack: a }` (Orchard: `orchard worker run --labels rack=a`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Resources the VM takes from its host, e.g. `{ org.cirruslabs.logical-cores: 4 }`
    /// (Orchard counts these, not `cpu` and `memory`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u64>,
}

impl std::fmt::Display for Placement {
    /// `labels zone=a resources slots=1`, or `anywhere`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("anywhere");
        }
        let mut parts = Vec::new();
        if !self.labels.is_empty() {
            let pairs: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("labels {}", pairs.join(",")));
        }
        if !self.resources.is_empty() {
            let pairs: Vec<String> = self
                .resources
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("resources {}", pairs.join(",")));
        }
        f.write_str(&parts.join(" "))
    }
}

impl Placement {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.resources.is_empty()
    }

    /// This placement with `over`'s entries put over it.
    pub fn merged(&self, over: &Placement) -> Placement {
        let mut merged = self.clone();
        merged.labels.extend(over.labels.clone());
        merged.resources.extend(over.resources.clone());
        merged
    }
}

fn yes() -> bool {
    true
}

/// What the settings keys mean, shared by `defaults`, clusters and nodes.
const IMAGE: &str = "The image to clone: an OCI reference (pulled once, then cloned) or the name of a local tart VM. Default: ghcr.io/cirruslabs/ubuntu:latest.";
const CPU: &str = "Virtual CPUs, 1 to 32. Default: 2.";
const MEMORY: &str =
    "Memory: MiB, or a size with a unit (4GiB), 256 MiB to 128 GiB. Default: 2048 (MiB).";
const DISK: &str = "Disk: GB, or a size with a unit (50GB), 10 to 2000 GB. It only grows: tart cannot shrink a disk. Default: the image's own size.";
const NETWORK: &str = "How the VM is networked: nat, softnet, host, bridged:<interface>, or a mapping such as { mode: softnet, allow: [0.0.0.0/0] } (docs/NETWORKS.md). The default lets the lab's nodes reach each other and the internet.";
const CLOUD_INIT: &str = "A cloud-init user-data file (`#cloud-config`), relative to the lab file, applied by the guest's own cloud-init after the base (docs/LAB-FILE.md). It may use {{ node.name }} (the VM's name), {{ node.hostname }} (the guest's host name: the VM name without vm_prefix), {{ node.cluster }}, {{ node.role }} and {{ lab.name }}. It must be inside the lab's directory (or `allow_paths_outside`), a regular file of at most 1 MiB. Default: none.";
const PLACEMENT: &str = "Where the VMs may run, on a provider with several hosts (Orchard): `labels` the host must have and `resources` the VM takes from it; a node's entries go over its cluster's, which go over `provider.orchard.labels`. Local tart ignores it. Default: none.";
const MOUNTS: &str = "Directories of this Mac the VM sees while it runs (tart's virtiofs), each `{ host: ./manifests, guest: /srv/manifests, read_only: true }` or `./manifests:/srv/manifests:ro`: host absolute, `~/...` or relative to the lab file, an existing directory; guest absolute, not a system directory (/, /etc, /usr, ...); one mount per guest path. A node's list replaces its cluster's, which replaces `defaults`'. Changing them restarts the VM. Local tart only (docs/LAB-FILE.md, `mounts`). Default: none.";
const LOGIN: &str = "The image's own account, used to log in before the lab key is installed. Default: { user: admin, password: admin }, the cirruslabs images' account.";

/// Settings a lab (`defaults`), a cluster or a node may set; a node takes its own, else its
/// cluster's, else the lab's `defaults`, else the default shown here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "`defaults`"))]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = IMAGE, extend("default" = "ghcr.io/cirruslabs/ubuntu:latest"))]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CPU, extend("default" = 2), range(min = 1, max = 32))]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MEMORY, extend("default" = 2048))]
    pub memory: Option<Mebibytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = DISK)]
    pub disk: Option<Gigabytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = NETWORK, extend("default" = { "mode": "softnet", "allow": ["0.0.0.0/0"] }))]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = LOGIN, extend("default" = { "user": "admin", "password": "admin" }))]
    pub login: Option<Login>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CLOUD_INIT)]
    pub cloud_init: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MOUNTS)]
    pub mounts: Option<Vec<MountSpec>>,
}

impl Settings {
    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }
}

/// The image's own account (the cirruslabs images: `admin`, password `admin`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "`login`"))]
pub struct Login {
    /// The account's name.
    pub user: String,
    /// Its password (used once per VM, over SSH, until the lab key is in place).
    pub password: String,
}

/// Which nodes each node's `/etc/hosts` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostsScope {
    None,
    Cluster,
    #[default]
    Lab,
}

/// What a user may do with sudo: nothing (`none`), anything with their password
/// (`password`), anything without (`nopasswd`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SudoMode {
    #[default]
    None,
    Password,
    Nopasswd,
}

/// An account made on every node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a user"))]
pub struct UserSpec {
    /// The user name: lower-case letters, digits, `-` and `_`, starting with a letter or
    /// `_`; not one of the image's own accounts.
    pub name: String,
    /// Extra groups, made when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `none`, `password` or `nopasswd`.
    #[serde(default)]
    pub sudo: SudoMode,
    /// The login shell. Default: the image's default for new users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Public keys that may log in as this user: paths of `.pub` files (`~/` is your home;
    /// others are relative to the lab file; a `.pub` file in `~/.ssh` is always taken,
    /// others must be inside the lab's directory) or the keys themselves. The lab key is
    /// always added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<String>,
    /// A crypt(3) hash of the password (`openssl passwd -6`); plain passwords are never
    /// taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Not taken: plain passwords are never stored. Use `password_hash`.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
}

/// A cluster: its nodes, and settings its nodes take unless they set their own (the same
/// keys as `defaults`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a cluster"))]
pub struct ClusterSpec {
    /// The cluster's name: the first part of its nodes' names (lower-case letters, digits
    /// and `-`).
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = IMAGE)]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CPU, range(min = 1, max = 32))]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MEMORY)]
    pub memory: Option<Mebibytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = DISK)]
    pub disk: Option<Gigabytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = NETWORK)]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = LOGIN)]
    pub login: Option<Login>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CLOUD_INIT)]
    pub cloud_init: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MOUNTS)]
    pub mounts: Option<Vec<MountSpec>>,
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    #[schemars(description = PLACEMENT)]
    pub placement: Placement,
}

/// A node, or `count` alike nodes. Its VM (and host) name is `<cluster>-<name>`, or
/// `<cluster>-<name>-1` ... `<cluster>-<name>-<count>` when `count` is over 1.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a node"))]
pub struct NodeSpec {
    /// The node's name (lower-case letters, digits and `-`).
    pub name: String,
    /// What the node is for, as selectors (`role=worker`) and `{{ cluster.ROLE.outputs.KEY }}`
    /// name it: lower-case letters, digits and `-`, as a node's name. Default: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// How many alike nodes, 1 to 100, named `<cluster>-<node>-1` to `-<count>` at any count.
    /// Default: one node, `<cluster>-<node>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = IMAGE)]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CPU, range(min = 1, max = 32))]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MEMORY)]
    pub memory: Option<Mebibytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = DISK)]
    pub disk: Option<Gigabytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = NETWORK)]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = LOGIN)]
    pub login: Option<Login>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = CLOUD_INIT)]
    pub cloud_init: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(description = MOUNTS)]
    pub mounts: Option<Vec<MountSpec>>,
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    #[schemars(description = PLACEMENT)]
    pub placement: Placement,
}

fn all() -> String {
    "all".to_string()
}

/// A file copied to the nodes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a file"))]
pub struct FileSpec {
    /// The file on this machine, relative to the lab file: inside its directory (or one
    /// `allow_paths_outside` names), a regular file of at most 64 MiB.
    pub src: String,
    /// Where it goes on the node: an absolute path.
    pub dest: String,
    /// Its mode, in octal. Default: `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"0600")]
    pub mode: Option<String>,
    /// Its owner, `USER` or `USER:GROUP`. Default: `root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Which nodes get it: `all`, a node's name, `cluster=NAME` or `role=NAME`.
    #[serde(default = "all")]
    pub on: String,
}

/// A provisioning step: a bash script run on the nodes `on` selects.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a step"))]
pub struct StepSpec {
    /// The step's name, unique in the lab.
    pub name: String,
    /// Which nodes run it: `all`, a node's name, `cluster=NAME` or `role=NAME`.
    #[serde(default = "all")]
    pub on: String,
    /// The script itself (bash, run with `set -euo pipefail`). Give `run` or `script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// A script file, relative to the lab file and inside its directory (or one
    /// `allow_paths_outside` names), at most 1 MiB, run the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Environment variables. A value may use `{{ node.NAME.outputs.KEY }}` (the output KEY
    /// of node NAME) and `{{ cluster.ROLE.outputs.KEY }}` (of the node with that role in the
    /// same cluster as the node the step runs on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Values the step passes on by printing `tartlab-output KEY=VALUE`: a name, or
    /// `{ name: KEY, secret: true }` for a value masked wherever tartlab shows or logs it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputSpec>,
    /// Earlier steps this one needs (every earlier step finishes first anyway; this says
    /// which ones matter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Run as this user instead of root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An output a step declares: its name, or `{ name, secret }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("x-expects" = "an output's name, or { name: KEY, secret: true }"))]
pub enum OutputSpec {
    Name(String),
    Detailed(DetailedOutput),
}

/// An output with its settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "an output"))]
pub struct DetailedOutput {
    /// The output's name (the KEY of `tartlab-output KEY=VALUE`).
    pub name: String,
    /// Whether the value is masked (`********`) wherever tartlab shows or logs it.
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

/// A check run after provisioning, as root, on every `up`: the lab is ready when each
/// exits 0.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a ready probe"))]
pub struct ProbeSpec {
    /// Which nodes run it: `all`, a node's name, `cluster=NAME` or `role=NAME`.
    #[serde(default = "all")]
    pub on: String,
    /// The command (bash).
    pub run: String,
    /// What to look at when it fails, shown with the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}
