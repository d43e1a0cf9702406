//! How VMs are made, found and reached, behind one trait: the engine knows `Provider` and
//! nothing of tart. Modelled on kind's providers (`pkg/cluster/internal/providers/provider.go`:
//! one interface per backend) and Lima's drivers (`pkg/driver/driver.go`: an SSH address and
//! declared features). `tart/` drives the local tart command line; `orchard/` a fleet of
//! Macs through an Orchard controller; `fake.rs` is an in-memory provider for the engine's
//! unit tests.
//!
//! A trait object (`Arc<dyn Provider>`) rather than an enum or a generic engine: the
//! backend is chosen at run time (from the lab file), the fake must stay out of the
//! product, and a generic parameter would spread through every stage for no gain.

pub mod orchard;
pub mod tart;

#[cfg(test)]
pub mod fake;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::dial::BoxFuture;
use crate::dial::{Dialer, SshRoute};
use crate::doctor::Check;
use crate::lab::model::{Placement, ProviderChoice};
use crate::lab::{Lab, Login, NetworkMode};
use crate::state::LockShare;

/// How OpenSSH reaches a lab's VM at `address`, without opening its provider (the exports
/// work where the backend's tools are not at hand, as under Ansible): what the provider's
/// dialer would say.
pub fn ssh_route(lab: &Lab, vm: &str, address: &str) -> SshRoute {
    match &lab.file.provider {
        ProviderChoice::Tart => tart::ssh_route(vm, address),
        ProviderChoice::Orchard(_) => orchard::ssh_route(vm, address),
    }
}

/// The provider the lab file names (`provider:`; tart when it names none, or when there is
/// no lab file, as for `doctor` alone), its commands sharing `lock` where one is held. The
/// one place that knows the providers by name.
pub fn open(
    lab: Option<&Lab>,
    lock: Option<LockShare>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    match lab.map(|l| (l, &l.file.provider)) {
        None | Some((_, ProviderChoice::Tart)) => Ok(Arc::new(tart::TartProvider::locate(lock)?)),
        Some((lab, ProviderChoice::Orchard(spec))) => Ok(Arc::new(
            orchard::OrchardProvider::connect(spec, &lab.source.dir())?,
        )),
    }
}

/// What a provider reports about one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub running: bool,
    /// What proves which VM this is (tart: its MAC address), if it can be read.
    pub identity: Option<String>,
    /// The disk's size in whole GB, if known.
    pub disk_gb: Option<u64>,
    /// What it takes on the host's disk in whole GB, as the provider reports it (tart:
    /// `tart list`'s Size, the allocated bytes; a copy-on-write clone takes little).
    pub size_gb: Option<u64>,
    /// Where it runs, for a provider with several hosts (Orchard: its worker).
    pub host: Option<String>,
}

/// Whether a VM runs, where a function must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Running,
    Stopped,
}

impl Power {
    pub fn of(running: bool) -> Power {
        if running {
            Power::Running
        } else {
            Power::Stopped
        }
    }
}

/// Everything a provider has, read at once: VMs by name, and images it holds locally with
/// their disk sizes in GB (when known).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub vms: BTreeMap<String, VmInfo>,
    pub images: BTreeMap<String, Option<u64>>,
}

impl Inventory {
    pub fn running(&self, vm: &str) -> bool {
        self.vms.get(vm).is_some_and(|v| v.running)
    }

    /// Whether the image is held locally, by its reference as a lab file writes it (an OCI
    /// reference without a tag means `:latest`).
    pub fn has_image(&self, reference: &str) -> bool {
        self.images.contains_key(&image_name(reference))
    }

    /// The image's disk size in GB, if it is held locally and the size is known.
    pub fn image_disk(&self, reference: &str) -> Option<u64> {
        self.images.get(&image_name(reference)).copied().flatten()
    }
}

/// Whether a lab file's image is one a registry holds (an OCI reference has a `/`), not the
/// name of a local VM to clone.
pub fn is_registry_image(reference: &str) -> bool {
    reference.contains('/')
}

/// An image reference as a local image store names it: `:latest` when no tag is given.
pub fn image_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('/') && !last.contains(':') && !last.contains('@') {
        format!("{reference}:latest")
    } else {
        reference.to_string()
    }
}

/// A VM to make: everything a provider that creates VMs running (Orchard) needs at once.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub disk: Option<u32>,
    pub network: NetworkMode,
    /// The image's own account, for providers that log in themselves.
    pub login: Login,
    /// Where it may run, for a provider with several hosts.
    pub placement: Placement,
    /// Where the VM's console output goes, for providers that start it at create.
    pub log: std::path::PathBuf,
}

/// Where a new VM comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFrom {
    /// Nothing of it is there yet.
    Image,
    /// An earlier create was interrupted after the provider began it (the state recorded the
    /// intent, not the identity): the provider finishes it, or starts over, as it can.
    Interrupted,
}

/// A VM just made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// What proves which VM this is (tart: its MAC; Orchard: its uid).
    pub identity: String,
    /// Whether it runs already (Orchard creates VMs running; tart's clone is stopped).
    pub running: bool,
}

/// New settings for a stopped VM; `None` keeps the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resize {
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub disk: Option<u32>,
}

/// What an existing VM is set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSettings {
    pub cpu: u32,
    pub memory: u32,
}

/// How long one look for a VM's address may take (the engine's requirement looks again
/// until its own timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressWait {
    pub timeout: Duration,
}

/// What one look for a VM's address found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressLook {
    Known(String),
    /// Not yet, and why (the last reason is the failure's if it never comes).
    NotYet(String),
    /// It never will (the VM this provider started has stopped): the engine stops waiting.
    Failed(ProviderError),
}

/// How `stop` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Now,
    WasNotRunning,
}

/// What a provider can do, declared; the planner, the lifecycle commands and the stages
/// read it, so a provider that cannot do a thing gets a plan that does not ask for it (a
/// recreate that `plan` names, a refusal that says why) rather than a failure midway.
/// Whether this installation can, `check_network` and `preflight` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The network modes it knows, by the name the lab file gives them.
    pub network_modes: &'static [&'static str],
    /// A stopped VM's cpu, memory and disk can be changed in place (else: a recreate).
    pub resize: bool,
    /// A stopped VM can be started again (Orchard: a VM that stops is over).
    pub start_after_stop: bool,
    /// A VM keeps its address across its boots (tart: the same MAC gets the same lease), so
    /// a recorded address can be used without asking.
    pub stable_address: bool,
    /// Images are pulled into a store on this host before a create (tart's OCI cache).
    pub local_images: bool,
    /// A disk can grow and never shrink.
    pub disk_grows_only: bool,
    /// A reboot from inside the guest ends the VM (Virtualization.framework has no guest
    /// reset): a restart is a power-off and a start.
    pub reboot_ends_vm: bool,
    /// Whole-VM snapshots of stopped VMs (`save_snapshot`, `restore_snapshot`): a copy of
    /// the VM kept under another name, never booted, and a copy back that keeps the VM's
    /// identity (so its address).
    pub snapshots: bool,
    /// How a VM reaches its lab's other VMs.
    pub peers: Peers,
    /// It chooses a host for each VM by the VM's `placement` (Orchard's labels and
    /// resources), so a changed placement means the VM made again elsewhere.
    pub placement: bool,
    /// Directories of the user's Mac shared with a VM while it runs (tart's `run --dir`,
    /// virtiofs): the lab file's `mounts`. Orchard's `hostDirs` are the worker's, not these.
    pub host_folders: bool,
}

/// How a provider's VMs reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// As the node's network mode says (tart: softnet with allow, or bridged).
    ByNetwork,
    /// Only VMs that run on the same host (Orchard: each worker's own vmnet).
    SameHost,
}

impl Capabilities {
    /// Local tart's: everything.
    pub fn local_tart() -> Capabilities {
        Capabilities {
            network_modes: &["nat", "softnet", "host", "bridged"],
            resize: true,
            start_after_stop: true,
            stable_address: true,
            local_images: true,
            disk_grows_only: true,
            reboot_ends_vm: true,
            snapshots: true,
            peers: Peers::ByNetwork,
            placement: false,
            host_folders: true,
        }
    }

    /// Each capability by name with its value, for `doctor`.
    pub fn listed(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("resize in place", self.resize),
            ("start after stop", self.start_after_stop),
            ("address stable across boots", self.stable_address),
            ("local image store", self.local_images),
            ("disk grows only", self.disk_grows_only),
            ("a reboot from inside ends the VM", self.reboot_ends_vm),
            ("snapshots", self.snapshots),
            ("peers on other hosts", self.peers == Peers::ByNetwork),
            ("placement on hosts by labels", self.placement),
            ("folders of this Mac in the VMs", self.host_folders),
        ]
    }
}

/// A provider's failure: what happened (with its tool's own last words) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub hint: String,
    /// A one-time set-up of the host that fixes it, to run as root (`sudo` with these words),
    /// which a command on a terminal may offer to run.
    pub fix: Option<Vec<String>>,
}

impl ProviderError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            hint: hint.into(),
            fix: None,
        }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A backend that makes and runs VMs. Every method names the VM; none waits longer than it
/// says. Failures carry a message and a hint for the user.
pub trait Provider: Send + Sync {
    /// The backend's name, as the user knows it (`tart`).
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// Checks that the backend works, before a changing command does anything (tart: found
    /// and recent enough).
    fn preflight(&self) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// `doctor`'s checks of the backend and its host, for a lab if there is one.
    fn doctor<'a>(
        &'a self,
        lab: Option<&'a Lab>,
        inventory: Option<&'a Inventory>,
    ) -> BoxFuture<'a, Vec<Check>>;

    /// The files that hold a VM's own output (its console), for `tartlab logs`; `run_log`
    /// is the file `start` was given.
    fn console_logs(&self, vm: &str, run_log: &Path) -> Vec<std::path::PathBuf>;

    /// Everything at once: every VM and every local image.
    fn inventory(&self) -> BoxFuture<'_, Result<Inventory, ProviderError>>;

    /// Makes an image available locally, calling `progress` with percentages.
    fn fetch_image<'a>(
        &'a self,
        image: &'a str,
        progress: &'a (dyn Fn(u32) + Sync),
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Whether VMs can be started in this network mode (before any is made or started).
    fn check_network<'a>(
        &'a self,
        mode: &'a NetworkMode,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Makes a VM with its own identity, size and network; says whether it runs already.
    fn create<'a>(
        &'a self,
        spec: &'a VmSpec,
        from: CreateFrom,
    ) -> BoxFuture<'a, Result<Created, ProviderError>>;

    /// The settings and identity of an existing VM (to adopt it).
    fn describe<'a>(
        &'a self,
        vm: &'a str,
    ) -> BoxFuture<'a, Result<(VmSettings, String), ProviderError>>;

    /// Applies new settings to a stopped VM.
    fn resize<'a>(
        &'a self,
        vm: &'a str,
        resize: &'a Resize,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Starts a VM in the background, its console output appended to `log`; it outlives
    /// tartlab.
    fn start<'a>(
        &'a self,
        vm: &'a str,
        network: &'a NetworkMode,
        log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// `start`, with directories of this Mac shared with the VM while it runs (the lab
    /// file's `mounts`; tart's `run --dir`): only where `capabilities().host_folders`.
    fn start_sharing<'a>(
        &'a self,
        vm: &'a str,
        network: &'a NetworkMode,
        folders: &'a [crate::lab::mounts::Mount],
        log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if !folders.is_empty() {
                return Err(ProviderError::new(
                    format!("{} cannot share this Mac's folders with {vm}", self.name()),
                    "remove `mounts` from the lab file, or use `provider: tart`",
                ));
            }
            self.start(vm, network, log).await
        })
    }

    /// One look for the VM's address, within `wait`: as soon as it has one, else why not.
    /// For a VM this provider started in this run, `Failed` at once if it stopped meanwhile.
    fn address<'a>(
        &'a self,
        vm: &'a str,
        identity: &'a str,
        network: &'a NetworkMode,
        wait: AddressWait,
    ) -> BoxFuture<'a, AddressLook>;

    /// What to do when a VM in `network` never gets an address (the requirement's hint).
    fn address_hint(&self, network: &NetworkMode) -> String;

    /// The way to the guest's sshd once it has `address`.
    fn dialer(&self, vm: &str, address: &str) -> Arc<dyn Dialer>;

    /// Stops a VM the hard way (the guest is not asked), within about `grace`.
    fn stop<'a>(
        &'a self,
        vm: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<Stopped, ProviderError>>;

    /// Whether the VM stopped within `timeout`.
    fn wait_stopped<'a>(&'a self, vm: &'a str, timeout: Duration) -> BoxFuture<'a, bool>;

    /// Deletes a stopped VM; one that is already gone is fine.
    fn delete<'a>(&'a self, vm: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// The free bytes where the provider keeps its VMs (tart: TART_HOME), if it can tell.
    fn free_bytes(&self) -> Option<u64> {
        None
    }

    /// Copies the stopped VM `vm` to a new VM `snapshot_vm`, which is never booted; returns
    /// the copy's identity (what proves later that it is still the lab's). Only where
    /// `capabilities().snapshots`.
    fn save_snapshot<'a>(
        &'a self,
        vm: &'a str,
        snapshot_vm: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        let _ = (vm, snapshot_vm);
        Box::pin(async move { Err(no_snapshots(self.name())) })
    }

    /// Makes `vm` (absent) again from `snapshot_vm`, stopped, with the identity `identity`
    /// it had when it was saved (tart: its MAC, so its DHCP lease and address).
    fn restore_snapshot<'a>(
        &'a self,
        snapshot_vm: &'a str,
        vm: &'a str,
        identity: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        let _ = (snapshot_vm, vm, identity);
        Box::pin(async move { Err(no_snapshots(self.name())) })
    }
}

/// The refusal of a provider without snapshots.
pub fn no_snapshots(name: &str) -> ProviderError {
    ProviderError::new(
        format!("{name} cannot snapshot VMs"),
        "nothing was changed; `tartlab down` then `tartlab up` is the way back to a fresh lab with this provider",
    )
}
