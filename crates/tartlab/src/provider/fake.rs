//! An in-memory provider for the engine's unit tests: VMs are entries in a map that create,
//! start, stop and delete change at once; every call that changes something is recorded;
//! a VM can be made to fail to start. Two profiles: local tart's capabilities (snapshots
//! copy a VM with a new identity, and copy it back with the identity given), its VMs'
//! sshd a closed port on loopback; and Orchard's shape (`orchard_like`): VMs created
//! running, no resize, no start after stop, an address that changes when a VM is made
//! again, no local images, and SSH only through a tunnel that is not TCP to an address.
//! Nothing that tries to log in ever leaves this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    AddressLook, AddressWait, BoxFuture, Capabilities, CreateFrom, Created, Inventory, Peers,
    Power, Provider, ProviderError, Resize, Stopped, VmInfo, VmSettings, VmSpec,
};
use crate::dial::{Dialer, GuestStream, SshRoute, TcpDialer};
use crate::lab::NetworkMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVm {
    pub running: bool,
    pub mac: String,
    pub cpu: u32,
    pub memory: u32,
    pub disk: u64,
    pub address: String,
}

#[derive(Default)]
struct World {
    vms: BTreeMap<String, FakeVm>,
    images: BTreeMap<String, Option<u64>>,
    calls: Vec<String>,
    fail_start: BTreeSet<String>,
    fail_create: BTreeSet<String>,
    made: u32,
}

pub struct FakeProvider {
    world: Mutex<World>,
    closed_port: u16,
    capabilities: Capabilities,
}

impl Default for FakeProvider {
    fn default() -> FakeProvider {
        FakeProvider::new()
    }
}

impl FakeProvider {
    /// A provider with the cirruslabs Ubuntu image cached (20 GB) and no VMs.
    pub fn new() -> FakeProvider {
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let mut world = World::default();
        world
            .images
            .insert("ghcr.io/cirruslabs/ubuntu:latest".into(), Some(20));
        FakeProvider {
            world: Mutex::new(world),
            closed_port,
            capabilities: Capabilities::local_tart(),
        }
    }

    /// A provider shaped like Orchard's: no local images, VMs created running, nothing
    /// resized or started again, addresses not kept, SSH through a tunnel.
    pub fn orchard_like() -> FakeProvider {
        let mut fake = FakeProvider::new();
        fake.with(|w| w.images.clear());
        fake.capabilities = Capabilities {
            network_modes: &["softnet", "bridged"],
            resize: false,
            start_after_stop: false,
            stable_address: false,
            local_images: false,
            disk_grows_only: false,
            reboot_ends_vm: true,
            snapshots: false,
            peers: Peers::SameHost,
            placement: true,
            host_folders: false,
        };
        fake
    }

    /// Every VM's sshd is the one listening on 127.0.0.1:`port` (a test's own sshd), not a
    /// closed port: the seam that lets engine tests provision over real SSH.
    pub fn with_sshd_port(mut self, port: u16) -> FakeProvider {
        self.closed_port = port;
        self
    }

    /// Gives a VM a new address, as a rescheduled Orchard VM gets.
    pub fn move_vm(&self, name: &str, address: &str) {
        self.with(|w| {
            if let Some(vm) = w.vms.get_mut(name) {
                vm.address = address.into();
            }
        });
    }

    /// Removes a VM behind the lab's back.
    pub fn vanish(&self, name: &str) {
        self.with(|w| w.vms.remove(name));
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut world)
    }

    /// A VM made outside the lab.
    pub fn add_vm(&self, name: &str, power: Power) -> FakeVm {
        self.with(|w| {
            w.made += 1;
            let vm = FakeVm {
                running: power == Power::Running,
                mac: format!("02:00:00:00:00:{:02x}", w.made),
                cpu: 4,
                memory: 4096,
                disk: 20,
                address: format!("127.200.0.{}", w.made),
            };
            w.vms.insert(name.into(), vm.clone());
            vm
        })
    }

    pub fn vm(&self, name: &str) -> Option<FakeVm> {
        self.with(|w| w.vms.get(name).cloned())
    }

    /// Every call that changed something, as `verb VM`.
    pub fn calls(&self) -> Vec<String> {
        self.with(|w| w.calls.clone())
    }

    pub fn fail_create(&self, vm: &str) {
        self.with(|w| w.fail_create.insert(vm.into()));
    }

    pub fn fail_start(&self, vm: &str) {
        self.with(|w| w.fail_start.insert(vm.into()));
    }

    fn record(&self, call: String) {
        self.with(|w| w.calls.push(call));
    }
}

fn missing(vm: &str) -> ProviderError {
    ProviderError::new(format!("no VM named {vm}"), "")
}

impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn preflight(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn doctor<'a>(
        &'a self,
        _lab: Option<&'a crate::lab::Lab>,
        _inventory: Option<&'a Inventory>,
    ) -> BoxFuture<'a, Vec<crate::doctor::Check>> {
        Box::pin(async { Vec::new() })
    }

    fn console_logs(&self, _vm: &str, run_log: &Path) -> Vec<std::path::PathBuf> {
        vec![run_log.to_path_buf()]
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Inventory, ProviderError>> {
        Box::pin(async move {
            Ok(self.with(|w| Inventory {
                vms: w
                    .vms
                    .iter()
                    .map(|(name, vm)| {
                        (
                            name.clone(),
                            VmInfo {
                                running: vm.running,
                                identity: Some(vm.mac.clone()),
                                disk_gb: Some(vm.disk),
                                size_gb: None,
                                host: None,
                            },
                        )
                    })
                    .collect(),
                images: w.images.clone(),
            }))
        })
    }

    fn fetch_image<'a>(
        &'a self,
        image: &'a str,
        progress: &'a (dyn Fn(u32) + Sync),
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            progress(100);
            self.record(format!("fetch {image}"));
            self.with(|w| w.images.insert(image.into(), Some(20)));
            Ok(())
        })
    }

    fn check_network<'a>(
        &'a self,
        _mode: &'a NetworkMode,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn create<'a>(
        &'a self,
        spec: &'a VmSpec,
        _from: CreateFrom,
    ) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            self.record(format!("create {}", spec.name));
            let running = !self.capabilities.local_images;
            if self.with(|w| w.fail_create.contains(&spec.name)) {
                return Err(ProviderError::new(
                    format!("{} failed to be made", spec.name),
                    "a test",
                ));
            }
            if !self
                .capabilities
                .network_modes
                .contains(&spec.network.kind())
            {
                return Err(ProviderError::new(
                    format!("network {} is not one this provider has", spec.network),
                    "a test",
                ));
            }
            Ok(self.with(|w| {
                w.made += 1;
                let vm = FakeVm {
                    running,
                    mac: format!("02:00:00:00:00:{:02x}", w.made),
                    cpu: spec.cpu,
                    memory: spec.memory,
                    disk: spec.disk.map_or(20, u64::from),
                    address: format!("127.200.0.{}", w.made),
                };
                let identity = vm.mac.clone();
                w.vms.insert(spec.name.clone(), vm);
                Created { identity, running }
            }))
        })
    }

    fn describe<'a>(
        &'a self,
        vm: &'a str,
    ) -> BoxFuture<'a, Result<(VmSettings, String), ProviderError>> {
        Box::pin(async move {
            self.vm(vm)
                .map(|v| {
                    (
                        VmSettings {
                            cpu: v.cpu,
                            memory: v.memory,
                        },
                        v.mac,
                    )
                })
                .ok_or_else(|| missing(vm))
        })
    }

    fn resize<'a>(
        &'a self,
        vm: &'a str,
        resize: &'a Resize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("resize {vm}"));
            if !self.capabilities.resize {
                return Err(ProviderError::new(
                    format!("{vm} cannot be resized"),
                    "the engine asked an Orchard-like provider for a resize",
                ));
            }
            self.with(|w| {
                let v = w.vms.get_mut(vm).ok_or_else(|| missing(vm))?;
                v.cpu = resize.cpu.unwrap_or(v.cpu);
                v.memory = resize.memory.unwrap_or(v.memory);
                v.disk = resize.disk.map_or(v.disk, u64::from);
                Ok(())
            })
        })
    }

    fn start<'a>(
        &'a self,
        vm: &'a str,
        _network: &'a NetworkMode,
        _log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("start {vm}"));
            if !self.capabilities.start_after_stop {
                return Err(ProviderError::new(
                    format!("{vm} cannot be started again"),
                    "the engine asked an Orchard-like provider for a start",
                ));
            }
            self.with(|w| {
                if w.fail_start.contains(vm) {
                    return Err(ProviderError::new(
                        format!("{vm} failed to start"),
                        "a test",
                    ));
                }
                w.vms.get_mut(vm).ok_or_else(|| missing(vm))?.running = true;
                Ok(())
            })
        })
    }

    fn address<'a>(
        &'a self,
        vm: &'a str,
        _identity: &'a str,
        _network: &'a NetworkMode,
        _wait: AddressWait,
    ) -> BoxFuture<'a, AddressLook> {
        Box::pin(async move {
            match self.vm(vm) {
                Some(v) if v.running => AddressLook::Known(v.address),
                _ => AddressLook::Failed(ProviderError::new(format!("{vm} does not run"), "")),
            }
        })
    }

    fn address_hint(&self, _network: &NetworkMode) -> String {
        "the fake gives every running VM its address".into()
    }

    fn dialer(&self, vm: &str, _address: &str) -> Arc<dyn Dialer> {
        if self.capabilities.local_images {
            Arc::new(TcpDialer {
                host: "127.0.0.1".into(),
                port: self.closed_port,
            })
        } else {
            Arc::new(FakeTunnel { vm: vm.into() })
        }
    }

    fn stop<'a>(
        &'a self,
        vm: &'a str,
        _grace: Duration,
    ) -> BoxFuture<'a, Result<Stopped, ProviderError>> {
        Box::pin(async move {
            self.record(format!("stop {vm}"));
            self.with(|w| match w.vms.get_mut(vm) {
                Some(v) if v.running => {
                    v.running = false;
                    Ok(Stopped::Now)
                }
                _ => Ok(Stopped::WasNotRunning),
            })
        })
    }

    fn wait_stopped<'a>(&'a self, vm: &'a str, _timeout: Duration) -> BoxFuture<'a, bool> {
        Box::pin(async move { !self.vm(vm).is_some_and(|v| v.running) })
    }

    fn delete<'a>(&'a self, vm: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("delete {vm}"));
            self.with(|w| w.vms.remove(vm));
            Ok(())
        })
    }

    fn save_snapshot<'a>(
        &'a self,
        vm: &'a str,
        snapshot_vm: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            self.record(format!("snapshot {vm}"));
            self.with(|w| {
                let source = w.vms.get(vm).cloned().ok_or_else(|| missing(vm))?;
                if source.running {
                    return Err(ProviderError::new(format!("{vm} runs"), "a test"));
                }
                // As tart's clone of a local VM: a new identity.
                w.made += 1;
                let copy = FakeVm {
                    mac: format!("02:00:00:00:00:{:02x}", w.made),
                    ..source
                };
                let identity = copy.mac.clone();
                w.vms.insert(snapshot_vm.to_string(), copy);
                Ok(identity)
            })
        })
    }

    fn restore_snapshot<'a>(
        &'a self,
        snapshot_vm: &'a str,
        vm: &'a str,
        identity: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("restore {vm}"));
            self.with(|w| {
                let source = w
                    .vms
                    .get(snapshot_vm)
                    .cloned()
                    .ok_or_else(|| missing(snapshot_vm))?;
                let copy = FakeVm {
                    mac: identity.to_string(),
                    running: false,
                    ..source
                };
                w.vms.insert(vm.to_string(), copy);
                Ok(())
            })
        })
    }
}

/// The Orchard-like profile's way in: a tunnel (as Orchard's port-forward WebSocket) with no
/// sshd behind it in these tests.
struct FakeTunnel {
    vm: String,
}

impl Dialer for FakeTunnel {
    fn open(&self, _timeout: Duration) -> BoxFuture<'_, std::io::Result<Box<dyn GuestStream>>> {
        Box::pin(async move {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("the fake controller has no sshd behind {}", self.vm),
            ))
        })
    }

    fn describe(&self) -> String {
        format!("the fake controller's tunnel to {}", self.vm)
    }

    fn route(&self) -> SshRoute {
        SshRoute::Proxy
    }
}
