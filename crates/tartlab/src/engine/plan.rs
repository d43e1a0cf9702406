//! The planner: a pure function from the lab, its state and the provider's inventory to what
//! each node needs. `tartlab plan` prints it; `up` (and `start`) execute it, stage by stage,
//! so the two never drift apart. Also the lab's orphans: VMs it owns that the lab file no
//! longer declares.
//!
//! Over 500 lines, for a reason: the plan's types (presence, blockers, lifecycles, pending
//! work, their texts) and the one function that chooses among them read best together; the
//! tests are in `engine/tests.rs`.

use std::collections::HashMap;

use serde::Serialize;

use super::events::{Action, Change, Provisioned};
use super::inputs;
use super::Options;
use crate::lab::{selects, Lab, Node};
use crate::provider::{Capabilities, Inventory};
use crate::state::{OwnedVm, State};

/// Where a node's VM stands before anything is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// No VM of that name.
    Missing,
    /// The lab's VM (the state file has it with the identity it has now).
    Owned { running: bool },
    /// A VM of that name that the lab did not create.
    Foreign { running: bool },
    /// The lab recorded the create but not its identity: the clone finished, the rest not.
    Unconfirmed,
}

impl Presence {
    pub fn of(inventory: &Inventory, vm: &str, owned: Option<&OwnedVm>) -> Presence {
        let Some(info) = inventory.vms.get(vm) else {
            return Presence::Missing;
        };
        let running = info.running;
        match owned.map(|o| &o.mac) {
            None => Presence::Foreign { running },
            Some(None) => Presence::Unconfirmed,
            Some(Some(mac)) if info.identity.as_deref() == Some(mac.as_str()) => {
                Presence::Owned { running }
            }
            Some(Some(_)) => Presence::Foreign { running },
        }
    }
}

/// Why a node cannot be brought up as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// A VM of the node's name that the lab did not create.
    Foreign,
    /// The VM was made from another image (`--recreate` replaces it).
    ImageChanged { from: String, to: String },
    /// A disk smaller than the image's or the VM's: a disk can only grow.
    DiskTooSmall(String),
    /// `start` never creates a VM.
    NotCreated,
    /// The change needs the VM made again, because the provider cannot apply it in place
    /// (`--recreate` does it).
    NeedsRecreate { why: String },
    /// Its image could not be pulled: `why` in the registry's (or tart's) words, `given_at`
    /// where the lab file gives the image (`file:line:column`), if it does.
    ImageUnavailable {
        image: String,
        given_at: Option<String>,
        why: String,
    },
}

impl Blocker {
    /// The failure's message and hint.
    pub fn explain(&self, vm: &str) -> (String, String) {
        match self {
            Blocker::Foreign => (
                format!("a VM named {vm} exists, and this lab did not create it; it was left untouched"),
                "another lab or a hand-made VM has this name: give this lab's VMs their own names with `vm_prefix` (e.g. `vm_prefix: mylab-`) or another cluster or node name; if it is this lab's own VM whose state was lost, `tartlab up --adopt` takes it over".into(),
            ),
            Blocker::ImageChanged { from, to } => (
                format!("{vm} was made from {from}, the lab file now says {to}"),
                "a VM cannot change its image: `tartlab up --recreate` deletes and recreates it (its disk is lost)".into(),
            ),
            Blocker::DiskTooSmall(problem) => (
                format!("{vm}: {problem}"),
                "give at least that size, or leave `disk` out to keep the image's".into(),
            ),
            Blocker::NotCreated => (format!("{vm} does not exist"), format!("`tartlab up {vm}` creates it")),
            Blocker::NeedsRecreate { why } => (
                format!("{vm}: {why}"),
                format!("`tartlab up --recreate {vm}` deletes it and makes it anew (its disk is lost, provisioning runs again)"),
            ),
            Blocker::ImageUnavailable { image, given_at, why } => {
                let (at, fix) = match given_at {
                    Some(at) => (format!(" ({at})"), format!("fix `image:` at {at}")),
                    None => (
                        " (tartlab's default: the lab file gives none)".to_string(),
                        "give the node an `image:`".to_string(),
                    ),
                };
                (
                    format!("cannot pull its image `{image}`{at}: {why}"),
                    format!("{fix}, or if the name is right check the network and the registry's credentials (`tart pull {image}` tries it alone); then `tartlab up` makes {vm}, leaving the other nodes as they are"),
                )
            }
        }
    }

    /// Whether `--recreate` (deleting the VM and making it anew) is what unblocks it.
    pub fn recreate_unblocks(&self) -> bool {
        matches!(
            self,
            Blocker::ImageChanged { .. } | Blocker::NeedsRecreate { .. }
        )
    }

    /// As `plan` shows it.
    fn summary(&self) -> String {
        match self {
            Blocker::Foreign => {
                "blocked: a VM of this name is not the lab's (--adopt takes it over)".into()
            }
            Blocker::ImageChanged { from, to } => {
                format!("blocked: image {from} -> {to} (--recreate)")
            }
            Blocker::DiskTooSmall(problem) => format!("blocked: {problem}"),
            Blocker::NotCreated => "blocked: not created (`tartlab up` creates it)".into(),
            Blocker::NeedsRecreate { why } => format!("blocked: {why} (--recreate)"),
            Blocker::ImageUnavailable { image, .. } => format!("blocked: cannot pull {image}"),
        }
    }
}

/// What happens to a node's VM itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Clone, size, boot.
    Create,
    /// The clone of an interrupted create is there: size it, boot.
    FinishCreate,
    /// Delete the VM and create it anew: with `--recreate`, its image changed or the
    /// provider cannot apply a change in place; without, its VM ended where the provider can
    /// never start it again (an Orchard VM whose worker failed it), `ended` saying so.
    Recreate {
        running: bool,
        ended: bool,
    },
    /// Take over a VM the lab did not create (`--adopt`).
    Adopt {
        running: bool,
    },
    /// Apply changed settings: shut it down first if it runs, then boot.
    Reconfigure {
        changes: Vec<Change>,
        running: bool,
    },
    /// Boot it as it is.
    Boot,
    /// It runs, but the boot a command began was never seen ready (that command was cut
    /// short): wait for its address and sshd as a boot does, without booting it again.
    FinishBoot,
    /// It runs as declared.
    Keep,
    Blocked(Blocker),
}

impl Lifecycle {
    /// Whether the node boots in this run (and so its address may be new).
    pub fn boots(&self) -> bool {
        !matches!(
            self,
            Lifecycle::Keep | Lifecycle::FinishBoot | Lifecycle::Blocked(_)
        ) && !matches!(self, Lifecycle::Adopt { running: true })
    }
}

/// Provisioning that would run on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Identity,
    User(String),
    CloudInit,
    Hosts,
    Files(Vec<String>),
    Step(String),
}

/// What `up` will do to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub vm: String,
    pub lifecycle: Lifecycle,
    /// Empty when provisioning is skipped or nothing is pending.
    pub provision: Vec<Pending>,
}

impl NodePlan {
    /// The actions the recap will list if everything goes as planned.
    pub fn expected_actions(&self) -> Vec<Action> {
        let mut actions = Vec::new();
        match &self.lifecycle {
            Lifecycle::Create | Lifecycle::FinishCreate => {
                actions.extend([Action::Created, Action::Booted])
            }
            Lifecycle::Recreate { .. } => actions.extend([Action::Recreated, Action::Booted]),
            Lifecycle::Adopt { running } => {
                actions.push(Action::Adopted);
                if !running {
                    actions.push(Action::Booted);
                }
            }
            Lifecycle::Reconfigure { changes, .. } => {
                actions.extend([Action::Changed(changes.clone()), Action::Booted])
            }
            Lifecycle::Boot => actions.push(Action::Booted),
            Lifecycle::Keep | Lifecycle::FinishBoot | Lifecycle::Blocked(_) => {}
        }
        let mut provisioned = Vec::new();
        let mut steps = Vec::new();
        for pending in &self.provision {
            match pending {
                Pending::Identity => provisioned.push(Provisioned::Identity),
                Pending::User(_) if provisioned.contains(&Provisioned::Users) => {}
                Pending::User(_) => provisioned.push(Provisioned::Users),
                Pending::CloudInit => provisioned.push(Provisioned::CloudInit),
                Pending::Hosts => provisioned.push(Provisioned::Hosts),
                Pending::Files(dests) => provisioned.push(Provisioned::Files(dests.clone())),
                Pending::Step(name) => steps.push(name.clone()),
            }
        }
        if !provisioned.is_empty() {
            actions.push(Action::Provisioned(provisioned));
        }
        if !steps.is_empty() {
            actions.push(Action::RanSteps(steps));
        }
        actions
    }

    /// As `plan` shows it: `create`, `restart (cpu 2 -> 4)`, `provision (step x)`, ...
    pub fn summary(&self) -> String {
        let changes = |c: &[Change]| {
            c.iter()
                .map(Change::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lifecycle = match &self.lifecycle {
            Lifecycle::Create => Some("create".to_string()),
            Lifecycle::FinishCreate => Some("create (finish an interrupted create)".into()),
            Lifecycle::Recreate { ended: false, .. } => {
                Some("recreate (--recreate: its disk is lost)".into())
            }
            Lifecycle::Recreate { ended: true, .. } => {
                Some("recreate (its VM ended, and this provider can never start it again)".into())
            }
            Lifecycle::Adopt { .. } => Some("adopt (--adopt)".into()),
            Lifecycle::Reconfigure {
                changes: c,
                running: true,
            } => Some(format!("restart ({})", changes(c))),
            Lifecycle::Reconfigure {
                changes: c,
                running: false,
            } => Some(format!("boot ({})", changes(c))),
            Lifecycle::Boot => Some("boot".into()),
            Lifecycle::Keep | Lifecycle::FinishBoot => None,
            Lifecycle::Blocked(blocker) => return blocker.summary(),
        };
        let waits = (self.lifecycle == Lifecycle::FinishBoot)
            .then_some("its last boot was cut short: up waits for it");
        // A VM made or booted now gets everything it lacks: the lifecycle says enough.
        if let Some(lifecycle) = lifecycle {
            return lifecycle;
        }
        if self.provision.is_empty() {
            return waits.unwrap_or("nothing").into();
        }
        let mut parts: Vec<String> = Vec::new();
        for pending in &self.provision {
            let part = match pending {
                Pending::Identity => "identity".to_string(),
                Pending::User(_) => "user".into(),
                Pending::CloudInit => "cloud-init".into(),
                Pending::Hosts => "hosts".into(),
                Pending::Files(_) => "files".into(),
                Pending::Step(name) => format!("step {name}"),
            };
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        let provision = format!("provision ({})", parts.join(", "));
        match waits {
            Some(waits) => format!("{waits}; {provision}"),
            None => provision,
        }
    }
}

/// The settings changes between what a VM has and what the lab declares, as
/// `cpu 2 -> 4`. A network change needs a restart but no resize.
pub fn resource_changes(node: &Node, owned: &OwnedVm) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut change = |setting, from: String, to: String| {
        changes.push(Change { setting, from, to });
    };
    if node.cpu != owned.cpu {
        change("cpu", owned.cpu.to_string(), node.cpu.to_string());
    }
    if node.memory != owned.memory {
        change(
            "memory",
            owned.memory.to_string(),
            format!("{} MiB", node.memory),
        );
    }
    if let Some(disk) = node.disk {
        if owned.disk != Some(disk) {
            let from = owned.disk.map_or("image".into(), |d| format!("{d} GB"));
            change("disk", from, format!("{disk} GB"));
        }
    }
    if node.network != owned.network {
        change(
            "network",
            owned.network.to_string(),
            node.network.to_string(),
        );
    }
    // Host folders are given at `tart run`: a change is a restart.
    if node.mounts != owned.mounts {
        change(
            "mounts",
            crate::lab::mounts::describe(&owned.mounts),
            crate::lab::mounts::describe(&node.mounts),
        );
    }
    // Recorded only where the provider places VMs by it.
    if let Some(placed) = owned.placement.as_ref().filter(|p| **p != node.placement) {
        change("placement", placed.to_string(), node.placement.to_string());
    }
    changes
}

/// Why the node's `disk` cannot be applied, if it cannot: where a disk grows but never
/// shrinks (tart), a size below the image's (for a VM to create) or the VM's own disk (for
/// one that exists) would fail on every `up`. Unknown sizes pass.
pub fn disk_problem(
    capabilities: &Capabilities,
    inventory: &Inventory,
    node: &Node,
    owned: Option<&OwnedVm>,
) -> Option<String> {
    if !capabilities.disk_grows_only {
        return None;
    }
    let wanted = u64::from(node.disk?);
    let exists =
        owned.is_some_and(|o| o.mac.is_some()) && inventory.vms.contains_key(&node.vm_name);
    let (current, what) = if exists {
        if owned.is_some_and(|o| o.disk == node.disk) {
            return None;
        }
        (
            inventory.vms.get(&node.vm_name)?.disk_gb?,
            "its current disk",
        )
    } else {
        let image = inventory.image_disk(&node.image)?;
        (image, "the image's disk")
    };
    (wanted < current).then(|| {
        format!("disk {wanted} GB is smaller than {what} ({current} GB), and a disk can only grow")
    })
}

/// The VMs the lab owns that the lab file no longer declares (a node removed or renamed, a
/// `count` lowered), in name order.
pub fn orphans(nodes: &[Node], state: &State) -> Vec<String> {
    state
        .vms
        .keys()
        .filter(|vm| !nodes.iter().any(|n| &n.vm_name == *vm))
        .cloned()
        .collect()
}

/// The images the planned creates need that the provider's local store lacks, once each, in
/// lab order (none where the provider has no local store: its hosts pull them).
pub fn images_to_fetch(
    capabilities: &Capabilities,
    lab: &Lab,
    plans: &[NodePlan],
    inventory: &Inventory,
) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    if !capabilities.local_images {
        return images;
    }
    for plan in plans {
        let creates = matches!(
            plan.lifecycle,
            Lifecycle::Create | Lifecycle::Recreate { .. }
        );
        let Some(node) = lab.node(&plan.vm) else {
            continue;
        };
        if creates
            && crate::provider::is_registry_image(&node.image)
            && !inventory.has_image(&node.image)
            && !images.contains(&node.image)
        {
            images.push(node.image.clone());
        }
    }
    images
}

/// What the lab needs to plan: its file, its state, what the provider has, how `up` was
/// asked to run, and each lab user's authorized_keys lines.
pub struct Facts<'a> {
    pub lab: &'a Lab,
    pub state: &'a State,
    pub inventory: &'a Inventory,
    pub capabilities: &'a Capabilities,
    pub options: &'a Options,
    pub user_keys: &'a HashMap<String, Vec<String>>,
}

/// Each selected node's plan, in lab order.
pub fn plan(facts: &Facts, selected: &[String]) -> Vec<NodePlan> {
    let lifecycles: HashMap<&str, Lifecycle> = facts
        .lab
        .nodes
        .iter()
        .filter(|n| selected.contains(&n.vm_name))
        .map(|n| (n.vm_name.as_str(), lifecycle(facts, n)))
        .collect();
    facts
        .lab
        .nodes
        .iter()
        .filter_map(|node| {
            let lifecycle = lifecycles.get(node.vm_name.as_str())?.clone();
            let provision = if matches!(lifecycle, Lifecycle::Blocked(_))
                || facts.options.provision == super::Provisioning::Skip
            {
                Vec::new()
            } else {
                pending(facts, node, &lifecycle, &lifecycles)
            };
            Some(NodePlan {
                vm: node.vm_name.clone(),
                lifecycle,
                provision,
            })
        })
        .collect()
}

fn lifecycle(facts: &Facts, node: &Node) -> Lifecycle {
    let vm = &node.vm_name;
    let owned = facts.state.vms.get(vm);
    if let Some(problem) = disk_problem(facts.capabilities, facts.inventory, node, owned) {
        return Lifecycle::Blocked(Blocker::DiskTooSmall(problem));
    }
    let options = facts.options;
    match Presence::of(facts.inventory, vm, owned) {
        Presence::Missing if options.create_missing => Lifecycle::Create,
        Presence::Missing => Lifecycle::Blocked(Blocker::NotCreated),
        Presence::Unconfirmed => Lifecycle::FinishCreate,
        Presence::Foreign { running } if options.adopt => Lifecycle::Adopt { running },
        Presence::Foreign { .. } => Lifecycle::Blocked(Blocker::Foreign),
        Presence::Owned { running } => {
            let Some(owned) = owned else {
                return Lifecycle::Create;
            };
            if owned.image != node.image {
                if options.recreate {
                    return Lifecycle::Recreate {
                        running,
                        ended: false,
                    };
                }
                return Lifecycle::Blocked(Blocker::ImageChanged {
                    from: owned.image.clone(),
                    to: node.image.clone(),
                });
            }
            let changes = resource_changes(node, owned);
            let lifecycle = match (changes.is_empty(), running) {
                (false, _) => Lifecycle::Reconfigure { changes, running },
                (true, false) => Lifecycle::Boot,
                (true, true) if owned.boot_unconfirmed => Lifecycle::FinishBoot,
                (true, true) => Lifecycle::Keep,
            };
            // A VM that is not running where no VM starts again is over: nothing could bring
            // it back, so making it anew takes nothing a user could keep, and asks no flag.
            if !running && !facts.capabilities.start_after_stop {
                return Lifecycle::Recreate {
                    running,
                    ended: true,
                };
            }
            match in_place_problem(facts.capabilities, &lifecycle) {
                None => lifecycle,
                Some(_) if options.recreate => Lifecycle::Recreate {
                    running,
                    ended: false,
                },
                Some(why) => Lifecycle::Blocked(Blocker::NeedsRecreate { why }),
            }
        }
    }
}

/// Why the provider cannot do `lifecycle` to the running VM in place, if it cannot: a resize
/// where it has none, or a restart where a stopped VM is over (Orchard).
fn in_place_problem(capabilities: &Capabilities, lifecycle: &Lifecycle) -> Option<String> {
    let name = |c: &Change| c.to_string();
    match lifecycle {
        Lifecycle::Reconfigure { changes, .. } => {
            let resized: Vec<String> = changes
                .iter()
                .filter(|c| c.setting != "network" && c.setting != "mounts")
                .map(name)
                .collect();
            if !capabilities.resize && !resized.is_empty() {
                Some(format!(
                    "{} cannot be changed on an existing VM of this provider",
                    resized.join(", ")
                ))
            } else if !capabilities.start_after_stop {
                let all: Vec<String> = changes.iter().map(name).collect();
                Some(format!(
                    "{} needs a restart, and this provider cannot start a VM again",
                    all.join(", ")
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The hosts block the node will get: the known addresses of the nodes in its scope that run
/// or boot now; `None` if a node made now is among them (its address is not known yet, so
/// the block is bound to change).
fn hosts_block(
    facts: &Facts,
    node: &Node,
    lifecycles: &HashMap<&str, Lifecycle>,
) -> Option<String> {
    let mut entries = Vec::new();
    for vm in inputs::hosts_scope(&facts.lab.file, &facts.lab.nodes, node) {
        let planned = lifecycles.get(vm.as_str());
        let runs_after = match planned {
            Some(l) => !matches!(l, Lifecycle::Blocked(_)),
            None => facts.inventory.running(&vm),
        };
        if !runs_after {
            continue;
        }
        let new_vm = matches!(
            planned,
            Some(Lifecycle::Create | Lifecycle::FinishCreate | Lifecycle::Recreate { .. })
        );
        match facts.state.vms.get(&vm).and_then(|o| o.ip.clone()) {
            Some(ip) if !new_vm => entries.push((vm, ip)),
            _ => return None,
        }
    }
    Some(inputs::hosts_block(&entries))
}

/// The provisioning that would run on a node: the base parts and files whose inputs
/// changed, `/etc/hosts` if an address in its scope is new or changed, and the steps whose
/// inputs changed (or that never succeeded there).
fn pending(
    facts: &Facts,
    node: &Node,
    lifecycle: &Lifecycle,
    lifecycles: &HashMap<&str, Lifecycle>,
) -> Vec<Pending> {
    let lab = facts.lab;
    let fresh = matches!(
        lifecycle,
        Lifecycle::Create | Lifecycle::FinishCreate | Lifecycle::Recreate { .. }
    );
    let empty = OwnedVm::default();
    let owned = match facts.state.vms.get(&node.vm_name) {
        Some(owned) if !fresh => owned,
        _ => &empty,
    };
    let stale = |key: &str, hash: &str| owned.applied.get(key).map(String::as_str) != Some(hash);
    let mut pending = Vec::new();
    if stale(inputs::IDENTITY, &inputs::identity_hash(&node.hostname)) {
        pending.push(Pending::Identity);
    }
    for user in &lab.file.users {
        let keys = facts.user_keys.get(&user.name).map_or(&[][..], |k| &k[..]);
        if stale(
            &inputs::user_key(&user.name),
            &inputs::user_inputs(user, keys).hash,
        ) {
            pending.push(Pending::User(user.name.clone()));
        }
    }
    if let Some(Ok((_, digest))) = inputs::cloud_init(lab, node) {
        if stale(inputs::CLOUD_INIT, &digest) {
            pending.push(Pending::CloudInit);
        }
    }
    let block = hosts_block(facts, node, lifecycles);
    if block.is_none_or(|block| stale(inputs::HOSTS, &inputs::hosts_hash(&block))) {
        pending.push(Pending::Hosts);
    }
    if let Ok(uploads) = inputs::uploads(lab, node) {
        let changed: Vec<String> = uploads
            .iter()
            .filter(|u| stale(&inputs::file_key(&u.spec.dest), &u.hash))
            .map(|u| u.spec.dest.clone())
            .collect();
        if !changed.is_empty() {
            pending.push(Pending::Files(changed));
        }
    }
    let outputs = inputs::outputs_of(facts.state);
    let files = inputs::files_digest(lab, node);
    for step in lab.file.provision.iter().filter(|s| selects(&s.on, node)) {
        let forced = facts.options.reprovision.forces(&step.name);
        let unchanged = inputs::step_inputs(lab, step, node, &files, &outputs)
            .is_ok_and(|run| !stale(&inputs::step_key(&step.name), &run.hash));
        let declared_present = step
            .outputs
            .iter()
            .all(|o| owned.outputs.contains_key(o.name()));
        if forced || !unchanged || !declared_present {
            pending.push(Pending::Step(step.name.clone()));
        }
    }
    pending
}
