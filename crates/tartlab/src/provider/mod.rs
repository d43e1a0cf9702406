//! How VMs are made, found and reached, behind one trait: the engine knows `Provider` and
//! nothing of tart. Modelled on kind's providers (`pkg/cluster/internal/providers/provider.go`:
//! one interface per backend) and Lima's drivers (`pkg/driver/driver.go`: an SSH address and
//! declared features). `tart/` drives the local tart command line; `fake.rs` is an in-memory
//! provider for the engine's unit tests; an Orchard provider will sit beside them.
//!
//! A trait object (`Arc<dyn Provider>`) rather than an enum or a generic engine: the
//! backend is chosen at run time (from the lab file, later), the fake must stay out of the
//! product, and a generic parameter would spread through every stage for no gain.

pub mod tart;

#[cfg(test)]
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::lab::NetworkMode;

/// A boxed future, for the provider's async methods (a trait object cannot have `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider reports about one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub running: bool,
    /// What proves which VM this is (tart: its MAC address), if it can be read.
    pub identity: Option<String>,
    /// The disk's size in whole GB, if known.
    pub disk_gb: Option<u64>,
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

/// An image reference as a local image store names it: `:latest` when no tag is given.
pub fn image_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('/') && !last.contains(':') && !last.contains('@') {
        format!("{reference}:latest")
    } else {
        reference.to_string()
    }
}

/// A VM to make.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub disk: Option<u32>,
}

/// Where a new VM comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFrom {
    /// Clone the image.
    Image,
    /// The clone of an interrupted create is there already: only size it and give it its
    /// own identity.
    InterruptedClone,
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

/// How long to wait for a VM's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressWait {
    pub timeout: Duration,
}

/// How `stop` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Now,
    WasNotRunning,
}

/// How to open a byte stream to a guest's sshd: a TCP address the host can reach, or (for
/// providers whose VMs the host cannot reach directly) a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
}

/// A byte stream to a guest's sshd.
pub trait GuestStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> GuestStream for T {}

impl Endpoint {
    /// The guest's sshd at `address`, port 22.
    pub fn ssh_at(address: &str) -> Endpoint {
        Endpoint::Tcp {
            host: address.to_string(),
            port: 22,
        }
    }

    /// Opens the stream, within `timeout`.
    pub async fn open(&self, timeout: Duration) -> std::io::Result<Box<dyn GuestStream>> {
        match self {
            Endpoint::Tcp { host, port } => {
                let connecting = tokio::net::TcpStream::connect((host.as_str(), *port));
                let stream = tokio::time::timeout(timeout, connecting)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
                    })??;
                let _ = stream.set_nodelay(true);
                Ok(Box::new(stream))
            }
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// What a provider can do, declared (whether this installation can, `check_network` says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The network modes it knows, by the name the lab file gives them.
    pub network_modes: &'static [&'static str],
    /// Whether the host reaches the guests' addresses directly (else SSH goes by tunnel).
    pub host_reaches_guests: bool,
    pub snapshots: bool,
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

    /// Makes a VM with its own identity and size; returns the identity.
    fn create<'a>(
        &'a self,
        spec: &'a VmSpec,
        from: CreateFrom,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;

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

    /// The VM's address, as soon as it has one. For a VM this provider started in this run,
    /// fails at once if it stopped meanwhile.
    fn address<'a>(
        &'a self,
        vm: &'a str,
        identity: &'a str,
        network: &'a NetworkMode,
        wait: AddressWait,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;

    /// How to reach the guest's sshd once it has `address`.
    fn ssh_endpoint(&self, vm: &str, address: &str) -> Endpoint;

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
}
