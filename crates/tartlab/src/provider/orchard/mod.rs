//! The Orchard provider: a lab's VMs on a fleet of Macs, made through an Orchard controller
//! (cirruslabs/orchard; shared/orchard-api.md is the reference). `config.rs` finds the
//! controller and the credentials, `api.rs` speaks its REST API, `tunnel.rs` its WebSocket
//! port-forward (the only way in: the controller relays to the worker, which dials the VM),
//! `doctor.rs` checks the controller and lists its workers. Here they become the `Provider`:
//! one `POST /v1/vms` per node, made running on whichever worker the scheduler picks among
//! those whose labels match. The VM's `uid` is its identity (`ownership.rs` keeps the lab's);
//! `vms.rs` makes, waits on and deletes VMs checking it at every look, and leaves a VM of a
//! node's name with another uid alone.
//!
//! What Orchard cannot do is declared in `capabilities` and refused before anything changes:
//! a VM runs from its creation until it is deleted (no stop then start, no resize).

mod api;
mod config;
mod doctor;
mod fleet;
mod ownership;
mod pinning;
#[cfg(test)]
mod testing;
mod tunnel;
mod vms;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use self::api::{Controller, NewVm, Refusal};
use self::ownership::Ownership;
use super::{
    AddressLook, AddressWait, BoxFuture, Capabilities, CreateFrom, Created, Inventory, Peers,
    Provider, ProviderError, Resize, Stopped, VmInfo, VmSettings, VmSpec,
};
use crate::dial::{Dialer, SshRoute};
use crate::doctor::Check;
use crate::lab::model::OrchardSpec;
use crate::lab::{Lab, NetworkMode};

/// How often a VM's progress is asked of the controller (Orchard's own tests ask every
/// second; its scheduler runs every 5 s and right after a create).
const POLL: Duration = Duration::from_millis(500);

/// The longest one ask for a VM's address waits on the controller: between asks the VM and
/// its worker are looked at (the controller's own wait would hold on a dead worker).
const IP_ASK: Duration = Duration::from_secs(5);

/// How many of a VM's last events a failure shows.
const EVENTS_SHOWN: usize = 10;

/// A lab's VMs on an Orchard controller.
pub struct OrchardProvider {
    controller: Controller,
    spec: OrchardSpec,
    /// How long a VM may stay unscheduled before its create fails (no worker fits it).
    schedule_timeout: Duration,
    /// The uids that make VMs the lab's.
    ownership: Ownership,
    /// The online workers, read once (`fleet.rs`); `None` inside when they could not be.
    workers: tokio::sync::OnceCell<Option<Vec<api::Worker>>>,
}

/// An Orchard VM is reached only through tartlab's `proxy` (the controller's port-forward).
pub fn ssh_route(_vm: &str, _address: &str) -> SshRoute {
    SshRoute::Proxy
}

fn seconds_from_env(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

impl OrchardProvider {
    /// The controller the lab file (or the environment, or the orchard CLI's context) names,
    /// with its credentials; nothing is asked of it yet.
    pub fn connect(spec: &OrchardSpec, lab_dir: &Path) -> Result<OrchardProvider, ProviderError> {
        let credentials = config::resolve(spec, lab_dir)?;
        Ok(OrchardProvider {
            controller: Controller::new(credentials)?,
            spec: spec.clone(),
            schedule_timeout: seconds_from_env("TARTLAB_ORCHARD_SCHEDULE_TIMEOUT", 120),
            ownership: Ownership::beside(lab_dir),
            workers: Default::default(),
        })
    }

    /// The labels a VM asks of its worker: the lab's, then its cluster's and its own.
    fn labels(&self, spec: &VmSpec) -> BTreeMap<String, String> {
        let mut labels = self.spec.labels.clone();
        labels.extend(spec.placement.labels.clone());
        labels
    }

    fn new_vm(&self, spec: &VmSpec) -> NewVm {
        let (mut softnet, mut allow, mut block, mut bridged) =
            (false, Vec::new(), Vec::new(), String::new());
        match &spec.network {
            NetworkMode::Softnet { allow: a, block: b } => {
                softnet = true;
                allow = a.clone();
                block = b.clone();
            }
            NetworkMode::Bridged(interface) => bridged = interface.clone(),
            // Refused by `check_network` before any create; tart's shared NAT otherwise.
            NetworkMode::Host { .. } | NetworkMode::Nat => {}
        }
        NewVm {
            name: spec.name.clone(),
            image: spec.image.clone(),
            cpu: u64::from(spec.cpu),
            memory: u64::from(spec.memory),
            disk_size: spec.disk.map(u64::from),
            os: "linux",
            arch: self.spec.arch.name(),
            runtime: self.spec.runtime.name(),
            headless: true,
            net_softnet: softnet,
            net_softnet_allow: allow,
            net_softnet_block: block,
            net_bridged: bridged,
            labels: self.labels(spec),
            resources: spec.placement.resources.clone(),
            username: spec.login.user.clone(),
            password: spec.login.password.clone(),
            restart_policy: "Never",
        }
    }
}

fn refused(what: &str) -> ProviderError {
    ProviderError::new(
        format!("an Orchard VM cannot be {what}"),
        "Orchard runs a VM from its creation until it is deleted; `tartlab up --recreate` makes it anew",
    )
}

impl Provider for OrchardProvider {
    fn name(&self) -> &'static str {
        "orchard"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            network_modes: &["nat", "softnet", "bridged"],
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
        }
    }

    fn preflight(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            self.controller.info().await.map(|_| ()).map_err(|e| {
                let mut error = self.controller.explain("checking the controller", e);
                error.hint = format!("{}; nothing was changed", error.hint);
                error
            })
        })
    }

    fn doctor<'a>(
        &'a self,
        lab: Option<&'a Lab>,
        _inventory: Option<&'a Inventory>,
    ) -> BoxFuture<'a, Vec<Check>> {
        Box::pin(doctor::checks(&self.controller, &self.spec, lab))
    }

    fn console_logs(&self, vm: &str, run_log: &Path) -> Vec<PathBuf> {
        // The controller keeps a VM's events, not its console: `logs` (which runs outside
        // the engine's runtime) writes them to the run log first; the engine, which asks
        // only for the path to show in a hint, is not held up by a request.
        if tokio::runtime::Handle::try_current().is_err()
            && doctor::write_events(&self.controller, vm, run_log).is_err()
        {
            return Vec::new();
        }
        vec![run_log.to_path_buf()]
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Inventory, ProviderError>> {
        Box::pin(async move {
            let vms = self
                .controller
                .vms()
                .await
                .map_err(|e| self.controller.explain("listing the VMs", e))?;
            let vms = vms
                .into_iter()
                .map(|vm| {
                    let info = VmInfo {
                        running: vm.is_running(),
                        identity: Some(vm.uid.clone()),
                        disk_gb: None,
                        size_gb: None,
                        host: Some(vm.worker.clone()).filter(|w| !w.is_empty()),
                    };
                    (vm.name, info)
                })
                .collect();
            Ok(Inventory {
                vms,
                images: BTreeMap::new(),
            })
        })
    }

    fn fetch_image<'a>(
        &'a self,
        _image: &'a str,
        _progress: &'a (dyn Fn(u32) + Sync),
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        // Each worker pulls the image it clones: nothing is pulled to this host.
        Box::pin(async { Ok(()) })
    }

    fn check_network<'a>(
        &'a self,
        mode: &'a NetworkMode,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            match mode {
                NetworkMode::Host { .. } => Err(ProviderError::new(
                    "an Orchard worker cannot run a VM on a host-only network (`network: host`)",
                    "use softnet (the default) for a cluster on one worker, or `bridged:<interface>` for nodes on several",
                )),
                _ => Ok(()),
            }
        })
    }

    fn create<'a>(
        &'a self,
        spec: &'a VmSpec,
        from: CreateFrom,
    ) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(self.create_vm(spec, from))
    }

    fn describe<'a>(
        &'a self,
        vm: &'a str,
    ) -> BoxFuture<'a, Result<(VmSettings, String), ProviderError>> {
        Box::pin(async move {
            let found = self
                .controller
                .vm(vm)
                .await
                .map_err(|e| self.controller.explain(&format!("reading {vm}"), e))?
                .ok_or_else(|| {
                    ProviderError::new(
                        format!("the Orchard controller has no VM named {vm}"),
                        "`tartlab status` shows what is there",
                    )
                })?;
            let pick = |assigned: u64, asked: u64| {
                u32::try_from(if assigned > 0 { assigned } else { asked }).unwrap_or(u32::MAX)
            };
            Ok((
                VmSettings {
                    cpu: pick(found.assigned_cpu, found.cpu),
                    memory: pick(found.assigned_memory, found.memory),
                },
                found.uid,
            ))
        })
    }

    fn resize<'a>(
        &'a self,
        _vm: &'a str,
        _resize: &'a Resize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(refused("resized")) })
    }

    fn start<'a>(
        &'a self,
        _vm: &'a str,
        _network: &'a NetworkMode,
        _log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(refused("started again")) })
    }

    fn address<'a>(
        &'a self,
        vm: &'a str,
        _identity: &'a str,
        _network: &'a NetworkMode,
        wait: AddressWait,
    ) -> BoxFuture<'a, AddressLook> {
        Box::pin(async move {
            // Asked in short waits, the VM and its worker looked at between them: a worker
            // that died while the controller waits for it would otherwise hold the whole
            // wait and end in a 500 that says nothing of it.
            match self.controller.ip(vm, wait.timeout.min(IP_ASK)).await {
                Ok(ip) => AddressLook::Known(ip),
                // The controller asks the worker, which asks `tart ip`: a worker that is down
                // or a VM that has not booted yet give the same 500 (503 when the worker
                // cannot be asked) once the ask's wait is over; a VM that failed (the
                // controller fails those of a worker offline too long) gives 417, one
                // deleted 404. The VM and its worker say which.
                Err(Refusal::Status(status @ (404 | 417 | 500 | 503), _)) => {
                    let found = match self.controller.vm(vm).await {
                        Ok(Some(found)) => found,
                        Ok(None) => {
                            return AddressLook::Failed(ProviderError::new(
                                format!("{vm} was deleted on the Orchard controller at {} while tartlab waited for its address", self.controller.url()),
                                "someone else deleted it; `tartlab up` makes it anew",
                            ))
                        }
                        Err(e) => {
                            return AddressLook::NotYet(
                                self.controller.explain(&format!("reading {vm}"), e).message,
                            )
                        }
                    };
                    if found.is_failed() {
                        let seen = self.failed_worker_words(&found).await;
                        return AddressLook::Failed(ProviderError::new(
                            format!(
                                "{vm} failed on worker {} while tartlab waited for its address: {}{seen}",
                                found.worker,
                                crate::text::printable(&found.status_message, 500)
                            ),
                            "check that `orchard worker run` runs on that worker (`orchard list workers` shows when each was last seen), then `tartlab up --recreate` makes it anew",
                        ));
                    }
                    if let Some(lost) = self.worker_lost(&found).await {
                        return AddressLook::Failed(lost);
                    }
                    AddressLook::NotYet(format!("{vm}'s worker {} gave no address for it (the controller answered {status}): the worker is down, or the VM did not boot", found.worker))
                }
                // Not running yet (408), or the controller did not answer: look again.
                Err(e @ (Refusal::Status(408, _) | Refusal::Unreachable(_))) => {
                    AddressLook::NotYet(
                        self.controller
                            .explain(&format!("asking the address of {vm}"), e)
                            .message,
                    )
                }
                Err(e) => AddressLook::Failed(
                    self.controller
                        .explain(&format!("asking the address of {vm}"), e),
                ),
            }
        })
    }

    fn address_hint(&self, _network: &NetworkMode) -> String {
        "the VM's worker asks `tart ip` of it: check that the worker runs (`orchard list workers`) and that the VM is running (`tartlab status`), or raise TARTLAB_IP_TIMEOUT".into()
    }

    fn dialer(&self, vm: &str, _address: &str) -> Arc<dyn Dialer> {
        Arc::new(tunnel::PortForward {
            controller: self.controller.clone(),
            vm: vm.to_string(),
            port: 22,
        })
    }

    fn stop<'a>(
        &'a self,
        _vm: &'a str,
        _grace: Duration,
    ) -> BoxFuture<'a, Result<Stopped, ProviderError>> {
        // Only asked on the way to a delete (stop, start and restart are refused by
        // capability): the worker stops the VM when it is deleted.
        Box::pin(async { Ok(Stopped::Now) })
    }

    fn wait_stopped<'a>(&'a self, _vm: &'a str, _timeout: Duration) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }

    fn delete<'a>(&'a self, vm: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.delete_owned(vm))
    }
}
