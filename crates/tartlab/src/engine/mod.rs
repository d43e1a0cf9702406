//! The lab lifecycle: reconcile what the lab file declares with what tart has and what the
//! lab owns (`state.json`), then run each node through its stages in parallel (kind's
//! "actions" shape: one small step type per stage, in `stages.rs`). A failed node never
//! stops the others; each node ends with a report for the recap.

pub mod base;
pub mod provision;
mod stages;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::lab::model::{HostsScope, LabFile};
use crate::lab::{Node, Source};
use crate::provider::{ListEntry, Tart};
use crate::state::{KnownHosts, LabDir, OwnedVm, StateStore};
use crate::ui::Ui;
use watch::{Address, AddressBoard, RunningVms};

/// A validated lab file and its expanded nodes.
pub struct Lab {
    pub file: LabFile,
    pub source: Source,
    pub nodes: Vec<Node>,
}

/// What the user asked `up` (or `start`) to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub parallel: usize,
    pub adopt: bool,
    pub recreate: bool,
    pub no_provision: bool,
    /// `start` boots and waits, but never creates a VM.
    pub create: bool,
    /// `--reprovision [STEP]`: run steps even when unchanged (`Some(None)`: every step).
    pub reprovision: Option<Option<String>>,
    /// `--remove-orphans`: delete the lab's VMs that the lab file no longer declares.
    pub remove_orphans: bool,
}

impl Options {
    /// For `stop` and `down`: nothing is created or provisioned.
    pub fn teardown(parallel: usize) -> Options {
        Options {
            parallel,
            adopt: false,
            recreate: false,
            no_provision: true,
            create: false,
            reprovision: None,
            remove_orphans: false,
        }
    }
}

/// How long each waiting stage may take (seconds; `TARTLAB_*_TIMEOUT` override them).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub ip: u16,
    pub ssh: Duration,
    pub stop: Duration,
    /// `tart clone` (of a cached image) and `tart set`.
    pub create: Duration,
    /// One remote command: a base part, a file, a step, a probe.
    pub command: Duration,
}

impl Timeouts {
    pub fn from_env() -> Timeouts {
        let secs = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Timeouts {
            ip: secs("TARTLAB_IP_TIMEOUT", 180).min(u64::from(u16::MAX)) as u16,
            ssh: Duration::from_secs(secs("TARTLAB_SSH_TIMEOUT", 120)),
            stop: Duration::from_secs(secs("TARTLAB_STOP_TIMEOUT", 60)),
            create: Duration::from_secs(secs("TARTLAB_CREATE_TIMEOUT", 600)),
            command: Duration::from_secs(secs("TARTLAB_COMMAND_TIMEOUT", 1800)),
        }
    }
}

/// Why a node failed: the stage, what happened (with log lines), and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub stage: &'static str,
    pub message: String,
    pub hint: String,
    /// The node whose failure caused this one (its cluster's steps stopped), if any: the
    /// recap prints that node's failure first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
}

impl Failure {
    pub fn new(
        stage: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Failure {
        Failure {
            stage,
            message: message.into(),
            hint: hint.into(),
            caused_by: None,
        }
    }
}

/// How one node ended.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    /// What was done, e.g. `created`, `booted`, `provisioned users`; empty when unchanged.
    pub actions: Vec<String>,
    pub failure: Option<Failure>,
    pub ip: Option<String>,
    pub seconds: f64,
}

impl NodeReport {
    pub fn new(node: &str) -> NodeReport {
        NodeReport {
            node: node.to_string(),
            actions: Vec::new(),
            failure: None,
            ip: None,
            seconds: 0.0,
        }
    }
}

/// Where a declared node's VM stands before anything is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// No VM of that name.
    Missing,
    /// The lab's VM (the state file has it with the MAC it has now).
    Owned { running: bool },
    /// A VM of that name that the lab did not create.
    Foreign { running: bool },
    /// The lab recorded the clone but not its MAC: the clone finished, the set did not.
    Unconfirmed,
}

/// What tart has, read once: local VMs by name, and the images in the OCI cache with their
/// disk sizes in GB.
pub struct Observed {
    pub local: HashMap<String, ListEntry>,
    pub cached: BTreeMap<String, Option<u64>>,
}

impl Observed {
    pub fn from_list(list: Vec<ListEntry>) -> Observed {
        let mut local = HashMap::new();
        let mut cached = BTreeMap::new();
        for entry in list {
            if entry.is_local() {
                local.insert(entry.name.clone(), entry);
            } else {
                cached.insert(entry.name, entry.disk);
            }
        }
        Observed { local, cached }
    }

    /// Why the node's `disk` cannot be applied, if it cannot: tart grows a disk but never
    /// shrinks one, so a size below the image's (for a VM to create) or the VM's own disk (for
    /// one that exists) would fail `tart set` on every `up`. Unknown sizes pass.
    pub fn disk_problem(&self, node: &Node, owned: Option<&OwnedVm>) -> Option<String> {
        let wanted = u64::from(node.disk?);
        let exists =
            owned.is_some_and(|o| o.mac.is_some()) && self.local.contains_key(&node.vm_name);
        let (current, what) = if exists {
            if owned.is_some_and(|o| o.disk == node.disk) {
                return None;
            }
            (self.local.get(&node.vm_name)?.disk?, "its current disk")
        } else {
            let image = self
                .cached
                .get(&cache_name(&node.image))
                .copied()
                .flatten()?;
            (image, "the image's disk")
        };
        (wanted < current).then(|| {
            format!("disk {wanted} GB is smaller than {what} ({current} GB), and tart cannot shrink a disk")
        })
    }

    pub fn presence(&self, tart: &Tart, vm: &str, owned: Option<&OwnedVm>) -> Presence {
        let Some(entry) = self.local.get(vm) else {
            return Presence::Missing;
        };
        match owned.map(|o| &o.mac) {
            None => Presence::Foreign {
                running: entry.is_running(),
            },
            Some(None) => Presence::Unconfirmed,
            Some(Some(mac)) if tart.mac(vm).as_deref() == Some(mac.as_str()) => Presence::Owned {
                running: entry.is_running(),
            },
            Some(Some(_)) => Presence::Foreign {
                running: entry.is_running(),
            },
        }
    }
}

/// The VMs the lab owns that the lab file no longer declares (a node removed or renamed, a
/// `count` lowered), in name order.
pub fn orphans(nodes: &[Node], state: &crate::state::State) -> Vec<String> {
    state
        .vms
        .keys()
        .filter(|vm| !nodes.iter().any(|n| &n.vm_name == *vm))
        .cloned()
        .collect()
}

/// The image name as tart's OCI cache lists it (`:latest` when no tag is given).
pub fn cache_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('/') && !last.contains(':') && !last.contains('@') {
        format!("{image}:latest")
    } else {
        image.to_string()
    }
}

/// The settings changes between what a VM has and what the lab declares, as
/// `cpu 2 -> 4`. A network change needs a restart but no `tart set`.
pub fn resource_changes(node: &Node, owned: &OwnedVm) -> Vec<String> {
    let mut changes = Vec::new();
    if node.cpu != owned.cpu {
        changes.push(format!("cpu {} -> {}", owned.cpu, node.cpu));
    }
    if node.memory != owned.memory {
        changes.push(format!("memory {} -> {} MiB", owned.memory, node.memory));
    }
    if let Some(disk) = node.disk {
        if owned.disk != Some(disk) {
            let from = owned.disk.map_or("image".into(), |d| format!("{d} GB"));
            changes.push(format!("disk {from} -> {disk} GB"));
        }
    }
    if node.network != owned.network {
        changes.push(format!("network {} -> {}", owned.network, node.network));
    }
    changes
}

/// The VMs whose names go into this node's `/etc/hosts` block.
pub fn hosts_scope(file: &LabFile, nodes: &[Node], node: &Node) -> Vec<String> {
    match file.hosts {
        HostsScope::None => Vec::new(),
        HostsScope::Cluster => nodes
            .iter()
            .filter(|n| n.cluster == node.cluster)
            .map(|n| n.vm_name.clone())
            .collect(),
        HostsScope::Lab => nodes.iter().map(|n| n.vm_name.clone()).collect(),
    }
}

/// Each lab user's authorized_keys lines: their own keys, then the lab key.
pub fn user_keys(lab: &Lab, lab_public_key: &str) -> Result<HashMap<String, Vec<String>>, String> {
    let mut all = HashMap::new();
    for user in &lab.file.users {
        let mut keys = Vec::new();
        for k in &user.authorized_keys {
            keys.push(
                crate::lab::authorized_key_text(k, &lab.source)
                    .map_err(|e| format!("cannot read key `{k}` of user {}: {e}", user.name))?,
            );
        }
        keys.push(lab_public_key.trim().to_string());
        all.insert(user.name.clone(), keys);
    }
    Ok(all)
}

/// Everything the node tasks share.
pub struct Context {
    pub tart: Tart,
    pub lab: Lab,
    pub dir: LabDir,
    pub store: StateStore,
    pub known: KnownHosts,
    pub key: Arc<PrivateKey>,
    pub ui: Arc<Ui>,
    pub limit: Semaphore,
    pub addresses: AddressBoard,
    pub running: RunningVms,
    /// `tart run --help`'s options, read the first time a node boots.
    pub run_options: tokio::sync::OnceCell<BTreeSet<String>>,
    pub options: Options,
    pub timeouts: Timeouts,
    /// Each lab user's authorized_keys lines (their keys, then the lab key).
    pub user_keys: HashMap<String, Vec<String>>,
    /// The DHCP lease file, watched for every node at once (when it exists).
    pub leases: Option<crate::provider::leases::LeaseWatcher>,
    /// Values of outputs marked secret, masked wherever tartlab shows or logs text.
    pub secrets: std::sync::Mutex<BTreeSet<String>>,
    /// The lab lock, held for as long as the command works on the lab.
    pub _lock: crate::state::LabLock,
}

impl Context {
    /// The output keys the lab file marks secret.
    pub fn secret_output_keys(&self) -> BTreeSet<&str> {
        self.lab
            .file
            .provision
            .iter()
            .flat_map(|s| s.outputs.iter().filter(|o| o.secret()).map(|o| o.name()))
            .collect()
    }

    /// Remembers the values of secret outputs a command printed, before anything shows it.
    pub fn learn_secrets(&self, stdout: &str) {
        let secret_keys = self.secret_output_keys();
        if secret_keys.is_empty() {
            return;
        }
        let Ok(mut secrets) = self.secrets.lock() else {
            return;
        };
        for line in stdout.lines() {
            let Some((key, value)) = line
                .trim_end_matches('\r')
                .strip_prefix("tartlab-output ")
                .and_then(|kv| kv.split_once('='))
            else {
                continue;
            };
            if secret_keys.contains(key.trim()) && !value.is_empty() {
                secrets.insert(value.to_string());
            }
        }
    }

    /// The text with every known secret value replaced by `********`.
    pub fn mask(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.lock() else {
            return text.to_string();
        };
        let mut masked = text.to_string();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            masked = masked.replace(secret.as_str(), "********");
        }
        masked
    }

    pub fn node(&self, vm: &str) -> Option<&Node> {
        self.lab.nodes.iter().find(|n| n.vm_name == vm)
    }
}

/// Runs `up` (or `start`) for the selected nodes, all at once, each as far as it gets.
pub async fn converge(
    ctx: Arc<Context>,
    observed: &Observed,
    selected: &[String],
) -> Vec<NodeReport> {
    let state = ctx.store.snapshot();
    // Nodes outside the selection keep the address the state knows.
    for node in &ctx.lab.nodes {
        if !selected.contains(&node.vm_name) {
            let known = state.vms.get(&node.vm_name).and_then(|o| o.ip.clone());
            let running = observed
                .local
                .get(&node.vm_name)
                .is_some_and(|e| e.is_running());
            ctx.addresses.publish(
                &node.vm_name,
                match known {
                    Some(ip) if running => Address::Known(ip),
                    _ => Address::Failed,
                },
            );
        }
    }
    let jobs = selected
        .iter()
        .map(|vm| {
            (
                vm.clone(),
                observed.presence(&ctx.tart, vm, state.vms.get(vm)),
            )
        })
        .collect();
    per_node(ctx, jobs, |ctx, vm, presence, mut report| async move {
        let result = stages::run_node(&ctx, &vm, presence, &mut report).await;
        match &result {
            Err(_) => {
                // Other nodes' /etc/hosts keep a failed node's last address, if it had one.
                let last = ctx.store.vm(&vm).and_then(|o| o.ip);
                ctx.addresses
                    .publish(&vm, last.map_or(Address::Failed, Address::Known));
            }
            Ok(()) => ctx.ui.done(&vm, "base", "up"),
        }
        (report, result)
    })
    .await
}

/// Stops the given owned, running VMs: a shutdown from inside the guest, then `tart stop`
/// for any that do not go down in time.
pub async fn stop_all(ctx: Arc<Context>, vms: Vec<String>) -> Vec<NodeReport> {
    let jobs = vms.into_iter().map(|vm| (vm, ())).collect();
    per_node(ctx, jobs, |ctx, vm, (), mut report| async move {
        let result = stages::stop_gracefully(&ctx, &vm).await.map(|how| {
            ctx.ui.done(&vm, "stop", &how);
            report.actions.push(how);
        });
        (report, result)
    })
    .await
}

/// Deletes the given owned VMs (stopping them first if `running`) and forgets them.
pub async fn delete_all(ctx: Arc<Context>, vms: Vec<(String, bool)>) -> Vec<NodeReport> {
    per_node(ctx, vms, |ctx, vm, running, mut report| async move {
        let _permit = ctx.limit.acquire().await;
        let result = stages::delete(&ctx, &vm, running).await.map(|()| {
            ctx.ui.done(&vm, "delete", "deleted");
            report.actions.push("deleted".into());
        });
        (report, result)
    })
    .await
}

/// Runs `work` for every node at once, each filling its own report; a failure is shown and
/// recorded, and a task that panics becomes a failed report too. Reports keep job order.
async fn per_node<J, F, Fut>(ctx: Arc<Context>, jobs: Vec<(String, J)>, work: F) -> Vec<NodeReport>
where
    J: Send + 'static,
    F: Fn(Arc<Context>, String, J, NodeReport) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = (NodeReport, Result<(), Failure>)> + Send + 'static,
{
    let mut tasks = Vec::new();
    for (vm, job) in jobs {
        let ctx = ctx.clone();
        let name = vm.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let report = NodeReport::new(&vm);
            let (mut report, result) = work(ctx.clone(), vm.clone(), job, report).await;
            if let Err(failure) = result {
                ctx.ui.failed(&vm, failure.stage, &failure.message);
                report.failure = Some(failure);
            }
            report.seconds = started.elapsed().as_secs_f64();
            report
        });
        tasks.push((name, task));
    }
    let mut reports = Vec::new();
    for (vm, task) in tasks {
        reports.push(task.await.unwrap_or_else(|e| {
            let mut report = NodeReport::new(&vm);
            report.failure = Some(Failure::new(
                "internal",
                format!("the node's task ended abnormally: {e}"),
                "this is a bug in tartlab; please report it with .tartlab/events.jsonl",
            ));
            report
        }));
    }
    reports
}
