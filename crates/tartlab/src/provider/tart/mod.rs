//! The local tart provider: every tart command line, exit code and file tartlab relies on
//! lives under this folder. `cli.rs` runs tart; `leases.rs` reads the host's DHCP lease file;
//! `running.rs` watches which VMs run; `network.rs` turns network modes into `tart run` flags
//! and checks Softnet's set-up; `doctor.rs` checks tart and its host. Here they become the
//! `Provider` the engine uses.
//!
//! Over 500 lines, for a reason: the `Provider` impl is one block, and the look for an
//! address lives beside it because it watches the `tart run` children the provider started.

pub mod cli;
mod doctor;
pub mod leases;
mod network;
mod registry;
mod running;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::process::Child;
use tokio::sync::OnceCell;

use self::cli::{last_lines, NotFound, Resolver, Tart, TartError, MINIMUM_VERSION};
use self::leases::LeaseWatcher;
use self::network::{run_flags, softnet_ready};
use self::running::RunningVms;
use super::{
    AddressLook, AddressWait, BoxFuture, Capabilities, CreateFrom, Created, Inventory, Provider,
    ProviderError, Resize, Stopped, VmInfo, VmSettings, VmSpec,
};
use crate::dial::{Dialer, SshRoute, TcpDialer};
use crate::doctor::Check;
use crate::lab::{Lab, NetworkMode};
use crate::state::LockShare;

/// A `tart run` this provider started, watched while the VM gets its address.
struct Run {
    child: Child,
    log: PathBuf,
}

/// tart on this Mac (or tart-sim on Linux).
pub struct TartProvider {
    tart: Tart,
    /// `tart run --help`'s options, read the first time they are needed.
    run_options: OnceCell<BTreeSet<String>>,
    /// The DHCP lease file, watched for every node at once (when it exists).
    leases: OnceCell<Option<LeaseWatcher>>,
    running: OnceLock<RunningVms>,
    runs: Mutex<HashMap<String, Run>>,
}

fn failed(e: TartError, hint: &str) -> ProviderError {
    ProviderError::new(e.to_string(), hint)
}

fn cannot_run_ip(vm: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        format!("cannot run `tart ip {vm}`: {e}"),
        "check that tart is installed",
    )
}

/// `tart ip` exits 2 for a VM it does not have: it was deleted while tartlab waited.
fn gone(e: TartError) -> ProviderError {
    failed(
        e,
        "the VM was deleted meanwhile: `tartlab up` makes it again",
    )
}

impl TartProvider {
    /// tart (`TARTLAB_TART`, else `tart` on PATH) and its home (`TART_HOME`). The tart
    /// commands it runs inherit `lock`, if given (see docs/LIFECYCLE.md).
    pub fn locate(lock: Option<LockShare>) -> Result<TartProvider, ProviderError> {
        let mut tart = Tart::locate().map_err(|e| {
            let hint = match e {
                NotFound::NotOnPath => {
                    "install it (`brew install cirruslabs/cli/tart`), or point TARTLAB_TART at it"
                }
                NotFound::NoSuchFile(_) => {
                    "point TARTLAB_TART at the tart program (`brew install cirruslabs/cli/tart` installs it), or unset it to use the tart on PATH"
                }
            };
            ProviderError::new(format!("cannot find tart: {e}"), hint)
        })?;
        tart.lock = lock;
        Ok(TartProvider {
            tart,
            run_options: OnceCell::new(),
            leases: OnceCell::new(),
            running: OnceLock::new(),
            runs: Mutex::new(HashMap::new()),
        })
    }

    /// Fails unless tart works and is recent enough.
    async fn check_version(&self) -> Result<(), ProviderError> {
        let version = self.tart.version().await.map_err(|e| {
            ProviderError::new(
                format!("tart does not work: {e}"),
                "check the tart installation",
            )
        })?;
        if (version.0, version.1) < MINIMUM_VERSION {
            return Err(ProviderError::new(
                format!(
                    "tart {}.{}.{} is too old; tartlab needs {}.{} or newer",
                    version.0, version.1, version.2, MINIMUM_VERSION.0, MINIMUM_VERSION.1
                ),
                "update it: `brew upgrade cirruslabs/cli/tart`",
            ));
        }
        Ok(())
    }

    fn vm_dir(&self, vm: &str) -> PathBuf {
        self.tart.home.join("vms").join(vm)
    }

    fn running_vms(&self) -> &RunningVms {
        self.running
            .get_or_init(|| RunningVms::start(self.tart.clone()))
    }

    /// The `tart run` flags for a network mode, each checked against `tart run --help`.
    async fn network_flags(&self, mode: &NetworkMode) -> Result<Vec<String>, ProviderError> {
        let options = self
            .run_options
            .get_or_try_init(|| self.tart.run_options())
            .await
            .map_err(|e| failed(e, "check the tart installation"))?;
        let flags = run_flags(mode);
        for flag in flags
            .iter()
            .filter(|f| f.starts_with("--"))
            .map(|f| f.split('=').next().unwrap_or(f).to_string())
            .chain(["--no-graphics".to_string()])
        {
            if !options.contains(&flag) {
                return Err(ProviderError::new(
                    format!(
                        "this tart's `run` has no {flag} option (it is not in `tart run --help`)"
                    ),
                    "update tart (`brew upgrade cirruslabs/cli/tart`), or choose another network mode",
                ));
            }
        }
        Ok(flags)
    }

    /// The lease watcher, started on first use if there is a lease file to watch.
    async fn lease_watcher(&self) -> Option<&LeaseWatcher> {
        self.leases
            .get_or_init(|| async { LeaseWatcher::from_env() })
            .await
            .as_ref()
    }

    /// Looks the address up once, in the background, for at most `secs`: in the lease file
    /// (one watcher for every node), else with `tart ip --wait`; a bridged VM has no lease
    /// on this host, so it is asked of the guest agent, then of the ARP cache, never of the
    /// lease file (which may hold a stale lease of the same MAC). A VM tart does not have
    /// (exit 2) never gets one: that ends the wait.
    async fn lookup(
        &self,
        vm: &str,
        identity: &str,
        network: &NetworkMode,
        secs: u64,
    ) -> Result<tokio::task::JoinHandle<AddressLook>, ProviderError> {
        let (tart, name) = (self.tart.clone(), vm.to_string());
        if !network.leased_by_host() {
            let agent_wait = secs.clamp(1, 5) as u16;
            return Ok(tokio::spawn(async move {
                let mut last = String::new();
                for (resolver, wait) in [(Resolver::Agent, agent_wait), (Resolver::Arp, 1)] {
                    let asked = match tart.spawn_ip(&name, wait, resolver) {
                        Ok(child) => tart.ip_result(&name, child).await,
                        Err(e) => return AddressLook::Failed(cannot_run_ip(&name, e)),
                    };
                    match asked {
                        Ok(ip) => return AddressLook::Known(ip),
                        Err(e) if e.code == Some(2) => return AddressLook::Failed(gone(e)),
                        Err(e) => last = e.to_string(),
                    }
                }
                AddressLook::NotYet(format!(
                    "neither the guest agent nor the ARP cache knows its address (a bridged VM has none in this host's lease file): {last}"
                ))
            }));
        }
        if let Some(watcher) = self.lease_watcher().await {
            let (watcher, mac) = (watcher.clone(), identity.to_string());
            let file = leases::lease_file();
            return Ok(tokio::spawn(async move {
                match watcher.address(&mac, Duration::from_secs(secs)).await {
                    Some(ip) => AddressLook::Known(ip.to_string()),
                    None => AddressLook::NotYet(format!(
                        "no lease for its MAC {mac} in {}",
                        file.display()
                    )),
                }
            }));
        }
        let child = self
            .tart
            .spawn_ip(vm, secs.min(u64::from(u16::MAX)) as u16, Resolver::Dhcp)
            .map_err(|e| cannot_run_ip(vm, e))?;
        Ok(tokio::spawn(async move {
            match tart.ip_result(&name, child).await {
                Ok(ip) => AddressLook::Known(ip),
                Err(e) if e.code == Some(2) => AddressLook::Failed(gone(e)),
                Err(e) => AddressLook::NotYet(e.to_string()),
            }
        }))
    }

    /// One look for the address, while watching the `tart run` this provider started, if
    /// any: that run ending is the end of the wait.
    async fn look_for_address(
        &self,
        vm: &str,
        identity: &str,
        network: &NetworkMode,
        wait: AddressWait,
    ) -> AddressLook {
        let secs = wait.timeout.as_secs().max(1);
        let mut lookup = match self.lookup(vm, identity, network, secs).await {
            Ok(lookup) => lookup,
            Err(e) => return AddressLook::Failed(e),
        };
        let watched = self.runs.lock().ok().is_some_and(|r| r.contains_key(vm));
        let result = loop {
            tokio::select! {
                result = &mut lookup => break result,
                _ = tokio::time::sleep(Duration::from_millis(250)), if watched => {
                    if let Some(stopped) = self.run_ended(vm) {
                        match stopped {
                            RunEnded::LateLock => break lookup.await,
                            RunEnded::Exited(message, hint) => {
                                lookup.abort();
                                return AddressLook::Failed(ProviderError::new(message, hint));
                            }
                        }
                    }
                }
            }
        };
        match result {
            Ok(look) => look,
            Err(e) => AddressLook::Failed(ProviderError::new(
                format!("`tart ip` did not finish: {e}"),
                "",
            )),
        }
    }

    /// Whether the `tart run` started for `vm` has ended, and how.
    fn run_ended(&self, vm: &str) -> Option<RunEnded> {
        let mut runs = self.runs.lock().ok()?;
        let run = runs.get_mut(vm)?;
        let status = run.child.try_wait().ok()??;
        let text = crate::files::read_tail(&run.log, 64 * 1024)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        // Started moments ago by a tartlab that was killed: tart takes its lock late, so
        // `tart list` still said stopped. This second `tart run` exits 2; wait on that boot.
        if status.code() == Some(2) && last_lines(&text, 1).contains("is already running") {
            runs.remove(vm);
            return Some(RunEnded::LateLock);
        }
        Some(RunEnded::Exited(
            format!(
                "`tart run {vm}` exited ({status}) before the VM got an IP address; last lines of its log:\n{}",
                last_lines(&text, 10)
            ),
            format!("the whole log is {}", run.log.display()),
        ))
    }
}

/// The host reaches a tart VM's address directly: its sshd is port 22 there.
pub fn ssh_route(_vm: &str, address: &str) -> SshRoute {
    TcpDialer::ssh_at(address).route()
}

enum RunEnded {
    /// An earlier boot of the VM holds it: wait for that one.
    LateLock,
    Exited(String, String),
}

impl Provider for TartProvider {
    fn name(&self) -> &'static str {
        "tart"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::local_tart()
    }

    fn preflight(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.check_version())
    }

    fn doctor<'a>(
        &'a self,
        lab: Option<&'a Lab>,
        inventory: Option<&'a Inventory>,
    ) -> BoxFuture<'a, Vec<Check>> {
        Box::pin(self.checks(lab, inventory))
    }

    fn console_logs(&self, _vm: &str, run_log: &Path) -> Vec<PathBuf> {
        // `tart run`'s own output, appended by `start`, is all tart keeps of a VM's run.
        vec![run_log.to_path_buf()]
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Inventory, ProviderError>> {
        Box::pin(async move {
            let list = self
                .tart
                .list()
                .await
                .map_err(|e| failed(e, "check the tart installation: `tart list`"))?;
            let mut vms = BTreeMap::new();
            let mut images = BTreeMap::new();
            for entry in list {
                if entry.is_local() {
                    vms.insert(
                        entry.name.clone(),
                        VmInfo {
                            running: entry.is_running(),
                            identity: self.tart.mac(&entry.name),
                            disk_gb: entry.disk,
                            size_gb: entry.size,
                            host: None,
                        },
                    );
                } else {
                    images.insert(entry.name, entry.disk);
                }
            }
            Ok(Inventory { vms, images })
        })
    }

    fn fetch_image<'a>(
        &'a self,
        image: &'a str,
        progress: &'a (dyn Fn(u32) + Sync),
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.tart.pull(image, progress).await.map_err(|e| {
                ProviderError::new(
                    registry::pull_failure(e.code, &e.output),
                    "check the image name and your network, then run `tartlab up` again",
                )
            })
        })
    }

    fn check_network<'a>(
        &'a self,
        mode: &'a NetworkMode,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.network_flags(mode).await?;
            if mode.uses_softnet() {
                softnet_ready()?;
            }
            Ok(())
        })
    }

    fn create<'a>(
        &'a self,
        spec: &'a VmSpec,
        from: CreateFrom,
    ) -> BoxFuture<'a, Result<Created, ProviderError>> {
        Box::pin(async move {
            let vm = &spec.name;
            // An interrupted create left its clone: tart's clone is whole or absent (it copies to a
            // temporary directory first), so only the set is left to do.
            if from == CreateFrom::Image {
                self.tart
                    .output(&["clone", &spec.image, vm])
                    .await
                    .map_err(|e| {
                        failed(
                            e,
                            "check the image name and the free disk space (`tart list`)",
                        )
                    })?;
            }
            // Every clone gets its own MAC (two VMs with the image's MAC would share a
            // lease: tart's own orchestrator does the same after every clone).
            let (cpu, memory) = (spec.cpu.to_string(), spec.memory.to_string());
            let mut args = vec![
                "set",
                vm,
                "--random-mac",
                "--cpu",
                &cpu,
                "--memory",
                &memory,
            ];
            let disk = spec.disk.map(|d| d.to_string());
            if let Some(disk) = &disk {
                args.extend(["--disk-size", disk]);
            }
            self.tart.output(&args).await.map_err(|e| {
                failed(
                    e,
                    "the clone exists but could not be sized; `tartlab up` tries again",
                )
            })?;
            let identity = self.tart.mac(vm).ok_or_else(|| {
                ProviderError::new(
                    format!("cannot read the MAC address of {vm}"),
                    "check that tart's VM directory is readable",
                )
            })?;
            // A clone is stopped: the boot stage runs it.
            Ok(Created {
                identity,
                running: false,
            })
        })
    }

    fn describe<'a>(
        &'a self,
        vm: &'a str,
    ) -> BoxFuture<'a, Result<(VmSettings, String), ProviderError>> {
        Box::pin(async move {
            let settings =
                self.tart.get(vm).await.map_err(|e| {
                    failed(e, "check that tart can read it: `tart get` with its name")
                })?;
            let mac = self.tart.mac(vm).ok_or_else(|| {
                ProviderError::new(
                    format!("cannot read the MAC address of {vm}"),
                    "check that tart's VM directory is readable",
                )
            })?;
            Ok((
                VmSettings {
                    cpu: settings.cpu,
                    memory: settings.memory,
                },
                mac,
            ))
        })
    }

    fn resize<'a>(
        &'a self,
        vm: &'a str,
        resize: &'a Resize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut args = vec!["set".to_string(), vm.to_string()];
            if let Some(cpu) = resize.cpu {
                args.extend(["--cpu".into(), cpu.to_string()]);
            }
            if let Some(memory) = resize.memory {
                args.extend(["--memory".into(), memory.to_string()]);
            }
            if let Some(disk) = resize.disk {
                args.extend(["--disk-size".into(), disk.to_string()]);
            }
            if args.len() == 2 {
                return Ok(());
            }
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            self.tart
                .output(&words)
                .await
                .map(|_| ())
                .map_err(|e| failed(e, "tart can grow a disk but never shrink it"))
        })
    }

    fn start<'a>(
        &'a self,
        vm: &'a str,
        network: &'a NetworkMode,
        log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.start_sharing(vm, network, &[], log)
    }

    fn start_sharing<'a>(
        &'a self,
        vm: &'a str,
        network: &'a NetworkMode,
        folders: &'a [crate::lab::mounts::Mount],
        log: &'a Path,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut flags = self.network_flags(network).await?;
            if !folders.is_empty() {
                let options = self
                    .run_options
                    .get_or_try_init(|| self.tart.run_options())
                    .await
                    .map_err(|e| failed(e, "check the tart installation"))?;
                if !options.iter().any(|o| o == "--dir") {
                    return Err(ProviderError::new(
                        "this tart's `run` has no --dir option (it is not in `tart run --help`), so it cannot share folders",
                        "update tart (`brew upgrade cirruslabs/cli/tart`), or remove `mounts` from the lab file",
                    ));
                }
                flags.extend(crate::lab::mounts::dir_flags(folders));
            }
            // A control socket left by a VM that crashed makes `tart exec` fail (tart #1220).
            let socket = self.vm_dir(vm).join("control.sock");
            if socket.exists() {
                let _ = std::fs::remove_file(&socket);
            }
            let child = self.tart.spawn_run(vm, &flags, log).map_err(|e| {
                ProviderError::new(
                    format!("cannot start `tart run {vm}`: {e}"),
                    format!("see {}", log.display()),
                )
            })?;
            if let Ok(mut runs) = self.runs.lock() {
                runs.insert(
                    vm.to_string(),
                    Run {
                        child,
                        log: log.to_path_buf(),
                    },
                );
            }
            Ok(())
        })
    }

    fn address<'a>(
        &'a self,
        vm: &'a str,
        identity: &'a str,
        network: &'a NetworkMode,
        wait: AddressWait,
    ) -> BoxFuture<'a, AddressLook> {
        Box::pin(self.look_for_address(vm, identity, network, wait))
    }

    fn address_hint(&self, network: &NetworkMode) -> String {
        if network.leased_by_host() {
            "the VM runs but took no DHCP lease; check the host's DHCP lease time (tart's FAQ), or raise TARTLAB_IP_TIMEOUT".into()
        } else {
            "a bridged VM gets its address from the LAN's DHCP server; check that the image runs the Tart Guest Agent (`tart ip --resolver agent`) and that the LAN gives addresses".into()
        }
    }

    fn dialer(&self, _vm: &str, address: &str) -> Arc<dyn Dialer> {
        Arc::new(TcpDialer::ssh_at(address))
    }

    fn stop<'a>(
        &'a self,
        vm: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<Stopped, ProviderError>> {
        Box::pin(async move {
            let grace = grace.as_secs().max(1).to_string();
            match self.tart.output(&["stop", vm, "--timeout", &grace]).await {
                Ok(_) => Ok(Stopped::Now),
                // Exit 2: it is not running (any more).
                Err(e) if e.code == Some(2) => Ok(Stopped::WasNotRunning),
                Err(e) => Err(failed(e, "stop it yourself with `tart stop`")),
            }
        })
    }

    fn wait_stopped<'a>(&'a self, vm: &'a str, timeout: Duration) -> BoxFuture<'a, bool> {
        Box::pin(self.running_vms().wait_stopped(vm, timeout))
    }

    fn delete<'a>(&'a self, vm: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            // `tart stop` can return before the VM's lock is released (its SIGKILL path):
            // tart then says it is running; try again for a while.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match self.tart.output(&["delete", vm]).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.code == Some(2) => return Ok(()),
                    Err(e) if Instant::now() < deadline && e.output.contains("is running") => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(failed(e, "delete it yourself with `tart delete`")),
                }
            }
        })
    }

    fn free_bytes(&self) -> Option<u64> {
        crate::doctor::free_bytes(&self.tart.home)
    }

    fn save_snapshot<'a>(
        &'a self,
        vm: &'a str,
        snapshot_vm: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            // A clone of a stopped local VM: on APFS a copy-on-write `clonefile`, near free.
            self.tart
                .output(&["clone", vm, snapshot_vm])
                .await
                .map_err(|e| {
                    failed(
                        e,
                        "check the free space in TART_HOME (`tart list` shows each VM's size)",
                    )
                })?;
            self.tart.mac(snapshot_vm).ok_or_else(|| {
                ProviderError::new(
                    format!("cannot read the MAC address of {snapshot_vm}"),
                    "check that tart's VM directory is readable",
                )
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
            self.tart
                .output(&["clone", snapshot_vm, vm])
                .await
                .map_err(|e| {
                    failed(
                        e,
                        "check the free space in TART_HOME, then run the restore again",
                    )
                })?;
            // tart gave the clone a new MAC (the snapshot VM has one): the node's own goes
            // back into config.json before its first boot, so its lease and address are its.
            self.set_mac(vm, identity)
        })
    }
}

impl TartProvider {
    /// Writes `mac` into a stopped VM's `config.json`, where tart reads it at `run`.
    fn set_mac(&self, vm: &str, mac: &str) -> Result<(), ProviderError> {
        let path = self.vm_dir(vm).join("config.json");
        let unreadable = |e: String| {
            ProviderError::new(
                format!(
                    "cannot put the MAC address {mac} back into {}: {e}",
                    path.display()
                ),
                "check that tart's VM directory is writable, then run the restore again",
            )
        };
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let Some(fields) = config.as_object_mut() else {
            return Err(unreadable("it is not a JSON object".into()));
        };
        fields.insert("macAddress".into(), serde_json::Value::String(mac.into()));
        let text = serde_json::to_string_pretty(&config).map_err(|e| unreadable(e.to_string()))?;
        crate::files::write_atomic(&path, text.as_bytes(), 0o644)
            .map_err(|e| unreadable(e.to_string()))
    }
}
