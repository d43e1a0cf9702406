//! The engine, through its public API, provisioning real guests behind a provider shaped like
//! Orchard's: VMs made running by `create` (tart-sim's, in a private TART_HOME), no resize,
//! no start after stop, no stable address, no local images, and SSH only through a tunnel
//! (a relay behind a `tokio::io::duplex` pipe, as Orchard's WebSocket port-forward) rather
//! than a TCP connection handed to the SSH client. Proves that a fresh `up` (base, hosts,
//! a step) works over that tunnel and nothing else, that a converged `up` changes nothing,
//! and that `stop` is refused. "Nothing else": every SSH client the guests' sshd logs
//! (logins, and handshakes that ended before one) came from a port the tunnel opened, so an
//! engine that dialled the address itself fails here. Needs root, as every test against
//! tart-sim does. Longer than most files: the provider is the test's, and stays beside it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tartlab::dial::{BoxFuture, Dialer, GuestStream, SshRoute};
use tartlab::doctor::Check;
use tartlab::engine::events::{Action, Provisioned, Reporter};
use tartlab::engine::{Engine, NodeReport, Options};
use tartlab::lab::{self, Lab, NetworkMode, Source};
use tartlab::provider::{
    AddressLook, AddressWait, Capabilities, CreateFrom, Created, Inventory, Peers, Provider,
    ProviderError, Resize, Stopped, VmInfo, VmSettings, VmSpec,
};
use tartlab::state::StateDir;

use crate::support;

/// Two nodes, every node in every `/etc/hosts`, one step that leaves a marker.
const TWO_NODES: &str = "lab: shaped\nhosts: lab\nclusters:\n  - name: fleet\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\nprovision:\n  - name: marker\n    run: echo \"step ran on $TARTLAB_NODE\" > /var/tmp/marker\n";

const VMS: [&str; 2] = ["fleet-master", "fleet-worker"];

/// The streams a tunnel opened: how many, and the local port of each (what the guest's sshd
/// logs as the client's port).
#[derive(Default)]
struct Opened {
    count: AtomicUsize,
    ports: Mutex<Vec<u16>>,
}

impl Opened {
    fn record(&self, port: u16) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(port);
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn ports(&self) -> Vec<u16> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The way in of an Orchard VM: the controller's port-forward, here a relay task between
/// one end of an in-memory pipe (what the SSH client gets) and the guest's sshd.
struct Tunnel {
    vm: String,
    address: String,
    opened: Arc<Opened>,
}

impl Dialer for Tunnel {
    fn open(&self, timeout: Duration) -> BoxFuture<'_, io::Result<Box<dyn GuestStream>>> {
        Box::pin(async move {
            let connecting = tokio::net::TcpStream::connect((self.address.as_str(), 22));
            let mut guest = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
            let port = guest.local_addr()?.port();
            let (near, mut far) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut far, &mut guest).await;
            });
            self.opened.record(port);
            Ok(Box::new(near) as Box<dyn GuestStream>)
        })
    }

    fn describe(&self) -> String {
        format!("the test controller's tunnel to {}", self.vm)
    }

    fn route(&self) -> SshRoute {
        SshRoute::Proxy
    }
}

/// A provider with Orchard's capabilities whose VMs are tart-sim's: `create` clones, sets and
/// starts; nothing is started, resized or pulled afterwards. Every call that changes
/// something is recorded.
struct OrchardShaped {
    /// The `tart` on the lab's private PATH (it records every command line).
    tart: PathBuf,
    home: PathBuf,
    path: OsString,
    calls: Mutex<Vec<String>>,
    opened: Arc<Opened>,
    runs: Mutex<Vec<tokio::process::Child>>,
}

impl OrchardShaped {
    fn new(lab: &support::Lab) -> OrchardShaped {
        let mut path = lab.bin().as_os_str().to_os_string();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        OrchardShaped {
            tart: lab.bin().join("tart"),
            home: lab.home.clone(),
            path,
            calls: Mutex::new(Vec::new()),
            opened: Arc::new(Opened::default()),
            runs: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.tart);
        cmd.args(args)
            .env("PATH", &self.path)
            .env("TART_HOME", &self.home)
            .env("TART_SIM_BOOT_MS", "400")
            .env("TART_SIM_PULL_MS", "50")
            .env("TART_SIM_LOCK_MS", "100")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tart ARGS`: its stdout, or its stderr as the failure.
    async fn tart(&self, args: &[&str]) -> Result<String, ProviderError> {
        let out = self.command(args).output().await.map_err(|e| {
            ProviderError::new(format!("tart {}: {e}", args.join(" ")), "build tart-sim")
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(ProviderError::new(
                format!(
                    "tart {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "a test provider",
            ))
        }
    }

    /// The VM's MAC, its identity here (an Orchard VM's would be its uid).
    fn mac(&self, vm: &str) -> Option<String> {
        let text =
            std::fs::read_to_string(self.home.join("vms").join(vm).join("config.json")).ok()?;
        let config: serde_json::Value = serde_json::from_str(&text).ok()?;
        config["macAddress"].as_str().map(str::to_string)
    }

    async fn running(&self) -> Result<BTreeMap<String, bool>, ProviderError> {
        let out = self
            .tart(&["list", "--format", "json", "--source", "local"])
            .await?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&out)
            .map_err(|e| ProviderError::new(format!("tart list: {e}"), ""))?;
        Ok(list
            .iter()
            .filter_map(|v| Some((v["Name"].as_str()?.to_string(), v["Running"].as_bool()?)))
            .collect())
    }

    /// `tart run VM --no-graphics` in the background, its output appended to `log`, as an
    /// Orchard worker starts a VM it was given.
    fn start_run(&self, vm: &str, network: &NetworkMode, log: &Path) -> io::Result<()> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut args = vec!["run".to_string(), vm.to_string(), "--no-graphics".into()];
        if let NetworkMode::Softnet { allow, block } = network {
            args.push("--net-softnet".into());
            if !allow.is_empty() {
                args.push(format!("--net-softnet-allow={}", allow.join(",")));
            }
            if !block.is_empty() {
                args.push(format!("--net-softnet-block={}", block.join(",")));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.command(&args);
        cmd.stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn()?;
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(())
    }
}

impl Drop for OrchardShaped {
    /// Whatever the test did, no `tart run` it started outlives it (the lab's own guard then
    /// reaps what is left of the guests).
    fn drop(&mut self) {
        for child in self.runs.get_mut().unwrap_or_else(|e| e.into_inner()) {
            let _ = child.start_kill();
        }
    }
}

fn refused(what: &str, vm: &str) -> ProviderError {
    ProviderError::new(
        format!("{vm} cannot be {what}"),
        "the engine asked an Orchard-shaped provider for what it declared it cannot do",
    )
}

impl Provider for OrchardShaped {
    fn name(&self) -> &'static str {
        "orchard-shaped"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            network_modes: &["softnet", "bridged"],
            resize: false,
            start_after_stop: false,
            stable_address: false,
            local_images: false,
            disk_grows_only: false,
            reboot_ends_vm: true,
            snapshots: false,
            peers: Peers::SameHost,
            placement: false,
            host_folders: false,
        }
    }

    fn preflight(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn doctor<'a>(
        &'a self,
        _lab: Option<&'a Lab>,
        _inventory: Option<&'a Inventory>,
    ) -> BoxFuture<'a, Vec<Check>> {
        Box::pin(async { Vec::new() })
    }

    fn console_logs(&self, _vm: &str, run_log: &Path) -> Vec<PathBuf> {
        vec![run_log.to_path_buf()]
    }

    fn inventory(&self) -> BoxFuture<'_, Result<Inventory, ProviderError>> {
        Box::pin(async move {
            let vms = self
                .running()
                .await?
                .into_iter()
                .map(|(name, running)| {
                    let identity = self.mac(&name);
                    let info = VmInfo {
                        running,
                        identity,
                        disk_gb: None,
                        size_gb: None,
                        host: None,
                    };
                    (name, info)
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
        image: &'a str,
        _progress: &'a (dyn Fn(u32) + Sync),
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("fetch {image}"));
            Err(refused("pulled to this host", image))
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
            let vm = spec.name.as_str();
            self.record(format!("create {vm}"));
            self.tart(&["clone", &spec.image, vm]).await?;
            let (cpu, memory) = (spec.cpu.to_string(), spec.memory.to_string());
            let mut set = vec![
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
                set.extend(["--disk-size", disk]);
            }
            self.tart(&set).await?;
            let identity = self
                .mac(vm)
                .ok_or_else(|| ProviderError::new(format!("{vm} has no MAC"), ""))?;
            self.start_run(vm, &spec.network, &spec.log)
                .map_err(|e| ProviderError::new(format!("tart run {vm}: {e}"), ""))?;
            Ok(Created {
                identity,
                running: true,
            })
        })
    }

    fn describe<'a>(
        &'a self,
        vm: &'a str,
    ) -> BoxFuture<'a, Result<(VmSettings, String), ProviderError>> {
        Box::pin(async move { Err(refused("adopted in this test", vm)) })
    }

    fn resize<'a>(
        &'a self,
        vm: &'a str,
        _resize: &'a Resize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("resize {vm}"));
            Err(refused("resized", vm))
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
            Err(refused("started again", vm))
        })
    }

    fn address<'a>(
        &'a self,
        vm: &'a str,
        _identity: &'a str,
        _network: &'a NetworkMode,
        wait: AddressWait,
    ) -> BoxFuture<'a, AddressLook> {
        Box::pin(async move {
            let secs = wait.timeout.as_secs().clamp(1, 600).to_string();
            match self.tart(&["ip", vm, "--wait", &secs]).await {
                Ok(out) => AddressLook::Known(out.trim().to_string()),
                Err(e) => AddressLook::NotYet(e.message),
            }
        })
    }

    fn address_hint(&self, _network: &NetworkMode) -> String {
        "the Orchard worker gives the VM its address".into()
    }

    fn dialer(&self, vm: &str, address: &str) -> Arc<dyn Dialer> {
        Arc::new(Tunnel {
            vm: vm.to_string(),
            address: address.to_string(),
            opened: self.opened.clone(),
        })
    }

    fn stop<'a>(
        &'a self,
        vm: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<Stopped, ProviderError>> {
        Box::pin(async move {
            self.record(format!("stop {vm}"));
            if !self.running().await?.get(vm).copied().unwrap_or(false) {
                return Ok(Stopped::WasNotRunning);
            }
            let secs = grace.as_secs().max(1).to_string();
            self.tart(&["stop", vm, "--timeout", &secs]).await?;
            Ok(Stopped::Now)
        })
    }

    fn wait_stopped<'a>(&'a self, vm: &'a str, timeout: Duration) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            loop {
                match self.running().await {
                    Ok(vms) if !vms.get(vm).copied().unwrap_or(false) => return true,
                    _ if Instant::now() >= deadline => return false,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    }

    fn delete<'a>(&'a self, vm: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.record(format!("delete {vm}"));
            if !self.running().await?.contains_key(vm) {
                return Ok(());
            }
            self.tart(&["delete", vm]).await.map(|_| ())
        })
    }
}

/// The lab's engine, opened as `tartlab up` opens it (without the lab lock).
async fn engine(lab: &support::Lab, provider: &Arc<OrchardShaped>, options: Options) -> Engine {
    let path = lab.lab.join("tartlab.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file = lab::read(Source::new(&path, text)).unwrap_or_else(|e| panic!("{e:?}"));
    let dir = StateDir::create_beside(&path).unwrap();
    let provider: Arc<dyn Provider> = provider.clone();
    Engine::open(file, dir, None, provider, options)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
}

async fn up(engine: Engine) -> Vec<NodeReport> {
    let all: Vec<String> = VMS.iter().map(|vm| vm.to_string()).collect();
    engine.up(all, Reporter::silent(), false).await.unwrap()
}

/// The client ports of every SSH client the guest's sshd heard, from its console log: the
/// logins, and the handshakes that ended before one (a peer's probe of port 22 from inside
/// its guest says nothing of SSH, and sshd logs it as a connection closed, without
/// `[preauth]`).
fn ssh_clients(lab: &support::Lab, vm: &str) -> Vec<u16> {
    let log = lab.home.join("vms").join(vm).join("guest/console.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("Accepted ")
                || l.starts_with("Disconnected from ")
                || l.contains("[preauth]")
        })
        .filter_map(|l| {
            let port = l.rsplit_once(" port ")?.1;
            let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_up_provisions_through_the_tunnel_and_a_converged_up_changes_nothing() {
    let lab = support::Lab::new(TWO_NODES);
    let provider = Arc::new(OrchardShaped::new(&lab));

    // A fresh up: made running by create, then base, hosts and the step over the tunnel.
    let fresh = engine(&lab, &provider, Options::up()).await;
    let plans = fresh.plan(&VMS.map(String::from));
    assert!(plans.iter().all(|p| p.summary() == "create"), "{plans:?}");
    let reports = up(fresh).await;
    for report in &reports {
        assert!(
            report.failure.is_none(),
            "{report:?}\n{}",
            lab.transcript_tails()
        );
        assert_eq!(
            report.actions,
            [
                Action::Created,
                Action::Booted,
                Action::Provisioned(vec![Provisioned::Identity, Provisioned::Hosts]),
                Action::RanSteps(vec!["marker".into()]),
            ],
            "booted by the create: no start"
        );
    }
    for vm in VMS {
        assert_eq!(
            provider.calls().iter().filter(|c| c.ends_with(vm)).count(),
            1,
            "only the create changed {vm}: {:?}",
            provider.calls()
        );
        assert_eq!(lab.boots(vm), 1, "one `tart run`, the create's");
    }
    assert!(provider.calls().iter().all(|c| c.starts_with("create ")));

    // Every SSH client the guests' sshd heard came through the tunnel.
    let through_tunnel = provider.opened.ports();
    assert!(provider.opened.count() > 0);
    for vm in VMS {
        let clients = ssh_clients(&lab, vm);
        assert!(!clients.is_empty(), "sshd of {vm} logged no client");
        for port in clients {
            assert!(
                through_tunnel.contains(&port),
                "an SSH client of {vm} from port {port} bypassed the tunnel ({through_tunnel:?})"
            );
        }
    }

    // What the provisioning left, seen with the system's ssh, the lab key and the pinned keys.
    for (vm, peer) in [(VMS[0], VMS[1]), (VMS[1], VMS[0])] {
        let out = lab.ssh(
            vm,
            "hostname; cat /var/tmp/marker; sed -n '/^# BEGIN tartlab$/,/^# END tartlab$/p' /etc/hosts",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], vm, "{}", out.stdout);
        assert_eq!(lines[1], format!("step ran on {vm}"));
        let peer_line = format!("{} {peer}", lab.ip(peer));
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == peer_line),
            "{vm}'s /etc/hosts lists {peer}: {}",
            out.stdout
        );
    }

    // A converged up: nothing planned, nothing done, nothing changed.
    let calls = provider.calls();
    let tart_calls = lab.calls().len();
    let again = engine(&lab, &provider, Options::up()).await;
    let plans = again.plan(&VMS.map(String::from));
    assert!(plans.iter().all(|p| p.summary() == "nothing"), "{plans:?}");
    let reports = up(again).await;
    assert!(
        reports
            .iter()
            .all(|r| r.actions.is_empty() && r.failure.is_none()),
        "{reports:?}"
    );
    assert_eq!(provider.calls(), calls);
    let changing = ["clone", "set", "run", "stop", "delete", "pull"];
    let since: Vec<String> = lab.calls()[tart_calls..].to_vec();
    assert!(
        !since
            .iter()
            .any(|c| changing.contains(&c.split(' ').next().unwrap_or(""))),
        "{since:?}"
    );

    // Down, with the teardown `tartlab down` takes: nothing of the lab is left running.
    let down = engine(&lab, &provider, Options::teardown(4)).await;
    let owned: Vec<String> = down.state().vms.keys().cloned().collect();
    let teardown = down.teardown(&owned);
    let (reports, _) = down.down(teardown, Reporter::silent(), true).await.unwrap();
    assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
    assert!(lab.vms().is_empty(), "{:?}", lab.vms());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.processes().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lab.processes(), Vec::<String>::new());
}

#[tokio::test]
async fn stop_start_and_restart_are_refused_with_the_reason() {
    let lab = support::Lab::new(TWO_NODES);
    let provider = Arc::new(OrchardShaped::new(&lab));
    let engine = engine(&lab, &provider, Options::teardown(4)).await;
    for verb in ["stop", "start", "restart"] {
        let error = engine.refuse_lifecycle(verb).unwrap_err();
        assert_eq!(error.exit(), tartlab::error::Exit::Invalid);
        let (_, text) = error.render();
        assert!(
            text.contains(&format!(
                "`tartlab {verb}` is not possible with orchard-shaped"
            )),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
    }
    assert!(provider.calls().is_empty(), "{:?}", provider.calls());
}
