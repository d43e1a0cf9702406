//! `tart run`: blocks for the VM's life, takes the "running" lock a moment after start,
//! boots the guest and writes its DHCP lease after the boot delay, and ends on SIGINT,
//! SIGUSR2 or a shutdown from inside the guest with tart's messages (reference section 5.1).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::args::{CommandSpec, Parsed, UsageError};
use crate::failure::Failure;
use crate::guest;
use crate::knobs::{self, Faults};
use crate::leases;
use crate::network;
use crate::softnet;
use crate::storage::{self, Home, VmDir};
use crate::virtiofs;

fn say(line: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// `validate()`: runs during parsing, so its errors exit 64, and a missing VM exits 1.
fn validate(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<VmDir, Failure> {
    let usage = |m: &str| Failure::Usage(UsageError::for_command(spec, m.to_string(), None));
    if p.flag("vnc") && p.flag("vnc-experimental") {
        return Err(usage("--vnc and --vnc-experimental are mutually exclusive"));
    }
    let networks = [
        !p.values("net-bridged").is_empty(),
        p.flag("net-softnet")
            || p.value("net-softnet-allow").is_some()
            || p.value("net-softnet-block").is_some()
            || p.value("net-softnet-expose").is_some(),
        p.flag("net-host"),
    ];
    if networks.iter().filter(|n| **n).count() > 1 {
        return Err(usage(
            "--net-bridged, --net-softnet and --net-host are mutually exclusive",
        ));
    }
    if p.flag("graphics") && p.flag("no-graphics") {
        return Err(usage("--graphics and --no-graphics are mutually exclusive"));
    }
    if p.values("disk").iter().any(|d| d.ends_with("-amd64.iso")) {
        return Err(usage("Seems you have a disk targeting x86 architecture (hence amd64 in the name). Please use an 'arm64' version of the disk."));
    }
    let name = p.positional("name").unwrap_or_default();
    let vm = home.open_vm(name).map_err(Failure::thrown_from_validate)?;
    if p.flag("suspendable") {
        return Err(usage("You can only suspend macOS VMs"));
    }
    if p.flag("no-trackpad") {
        return Err(usage("--no-trackpad can only be used with macOS VMs"));
    }
    Ok(vm)
}

/// The interfaces a bridged VM may name on the simulated host.
const BRIDGE_INTERFACES: &[(&str, &str)] = &[("en0", "Ethernet")];

pub fn run(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    let vm = validate(home, spec, p)?;
    p.check_leftovers(spec)?;
    for wanted in p.values("net-bridged") {
        if !BRIDGE_INTERFACES
            .iter()
            .any(|(bsd, display)| wanted == bsd || wanted == display)
        {
            let available: Vec<String> = BRIDGE_INTERFACES
                .iter()
                .map(|(bsd, display)| format!("\"{bsd} (or \\\"{display}\\\")\""))
                .collect();
            let wanted: Vec<String> = p
                .values("net-bridged")
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect();
            return Err(Failure::Usage(UsageError::root(format!(
                "no bridge interfaces matched \"[{}]\", available interfaces: [{}]",
                wanted.join(", "),
                available.join(", ")
            ))));
        }
    }
    let mode = network_mode(p);
    let signals = block_signals();
    let started = Instant::now();
    let faults = Faults::for_vm(home, &vm.name);
    std::thread::sleep(knobs::lock_delay());

    let mut config = vm.read_config()?;
    {
        let _global = home
            .global_lock()
            .map_err(|e| Failure::generic(e.to_string()))?;
        let mac = config.mac();
        let clash = home.local_vm_names().into_iter().any(|other| {
            other != vm.name
                && home
                    .open_vm(&other)
                    .ok()
                    .filter(VmDir::is_running)
                    .and_then(|o| o.read_config().ok())
                    .is_some_and(|c| c.mac() == mac)
        });
        if clash {
            say("There is already a running VM with the same MAC address!");
            say("Resetting VM to assign a new MAC address...");
            config.set_mac(&storage::random_mac());
            config.write(&vm.config_path())?;
        }
    }
    // `directoryShares()` and the VZ configuration's `validate()`, before the lock.
    let shares = virtiofs::devices(p.values("dir"))?;
    virtiofs::validate(&shares)?;
    let Some(_run_lock) = vm.take_run_lock() else {
        return Err(Failure::plain(
            2,
            format!("VM \"{}\" is already running!", vm.name),
        ));
    };
    if faults.run_fails {
        return Err(Failure::plain(1, "Error Domain=VZErrorDomain Code=1 \"Internal Virtualization error. The virtual machine failed to start.\" UserInfo={NSLocalizedFailure=Internal Virtualization error., NSLocalizedFailureReason=The virtual machine failed to start.}".into()));
    }
    // The control socket, by a relative path as tart binds it. A stale one left by a killed
    // `tart run` makes the bind fail, and `exec` then fails (tart issue #1220).
    let _ = std::env::set_current_dir(&vm.path);
    let control = UnixListener::bind("control.sock").ok();

    let softnet = match &mode {
        network::Mode::Softnet { .. } => Some(softnet::start(&mode, &config.mac())?),
        _ => None,
    };
    let mut machine = Machine {
        home,
        vm: &vm,
        mac: config.mac(),
        faults,
        mode,
        softnet,
        shares,
        guest: None,
        booted: false,
    };
    let outcome = machine.live(&signals, started);
    if let Some(child) = machine.guest.take() {
        match guest::Kind::of(&vm.guest_dir()) {
            guest::Kind::Light => guest::power_off(child),
            guest::Kind::Systemd => guest::systemd::power_off(child),
        }
    }
    if machine.booted {
        network::unregister(home, &vm.name);
    }
    if let Some(softnet) = machine.softnet.take() {
        softnet.stop();
    }
    if control.is_some() {
        let _ = std::fs::remove_file("control.sock");
    }
    outcome
}

/// The network `tart run`'s flags ask for.
fn network_mode(p: &Parsed) -> network::Mode {
    let list = |name: &str| -> Vec<String> {
        p.value(name)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let softnet = p.flag("net-softnet")
        || p.value("net-softnet-allow").is_some()
        || p.value("net-softnet-block").is_some()
        || p.value("net-softnet-expose").is_some();
    if !p.values("net-bridged").is_empty() {
        network::Mode::Bridged
    } else if softnet || p.flag("net-host") {
        network::Mode::Softnet {
            allow: list("net-softnet-allow"),
            block: list("net-softnet-block"),
            host_only: p.flag("net-host"),
        }
    } else {
        network::Mode::Nat
    }
}

struct Machine<'a> {
    home: &'a Home,
    vm: &'a VmDir,
    mac: String,
    faults: Faults,
    mode: network::Mode,
    /// The Softnet process, for softnet and host networking.
    softnet: Option<softnet::Softnet>,
    /// The virtiofs devices of `--dir`.
    shares: Vec<virtiofs::Device>,
    /// The `unshare` process holding a light guest's namespaces, or a systemd guest's keeper.
    guest: Option<Child>,
    booted: bool,
}

impl Machine<'_> {
    /// The VM's life: wait for signals and timers until the VM stops.
    fn live(&mut self, signals: &libc::sigset_t, started: Instant) -> Result<(), Failure> {
        let boot_at = started + knobs::boot_delay(&self.faults);
        let die_at = self
            .faults
            .die_after_ms
            .map(|ms| started + Duration::from_millis(ms));
        loop {
            let now = Instant::now();
            // Softnet that dies ends the VM (before the guest ever gets a network).
            if let Some(softnet) = self.softnet.as_mut() {
                if let Ok(Some(_)) = softnet.process.try_wait() {
                    self.softnet = None;
                    return Err(Failure::prefixed(
                        "RuntimeFailed(why: \"Softnet process terminated prematurely\")".into(),
                    ));
                }
            }
            if !self.booted && now >= boot_at {
                self.boot()?;
            }
            if die_at.is_some_and(|t| now >= t) {
                say("guest has stopped the virtual machine due to error: Error Domain=VZErrorDomain Code=1 \"The virtual machine stopped unexpectedly.\"");
                return Ok(());
            }
            if let Some(child) = self.guest.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.guest = None;
                    say("guest has stopped the virtual machine");
                    return Ok(());
                }
            }
            match guest::wait_signal(signals, Duration::from_millis(100)) {
                Some(libc::SIGINT) => {
                    say("Stopping VM...");
                    return Ok(());
                }
                Some(libc::SIGUSR2) => {
                    say("Requesting guest OS to stop...");
                    if self.request_stop() {
                        say("guest has stopped the virtual machine");
                        return Ok(());
                    }
                }
                Some(libc::SIGUSR1) => {
                    say("Failed to suspend the VM: The virtual machine failed to save its state.");
                    return Err(Failure::Exit(1));
                }
                _ => {}
            }
        }
    }

    fn boot(&mut self) -> Result<(), Failure> {
        self.booted = true;
        let guest_dir = self.vm.guest_dir();
        let hostname = guest::hostname(&guest_dir).unwrap_or_else(|| "ubuntu".to_string());
        let dhcp_failed =
            |e: std::io::Error| Failure::generic(format!("tart-sim: DHCP failed: {e}"));
        let (ip, sshd_delay) = if self.faults.no_lease {
            (std::net::Ipv4Addr::UNSPECIFIED, None)
        } else {
            // A bridged VM gets its address from the LAN's DHCP server: the host's lease
            // file never hears of it.
            let ip = match self.mode {
                network::Mode::Bridged => leases::lan_address(self.home, &self.mac),
                _ => leases::grant(self.home, &self.mac, &hostname),
            }
            .map_err(dhcp_failed)?;
            let delay = (!self.faults.no_sshd).then_some(self.faults.sshd_delay_ms);
            (ip, delay)
        };
        let cgroup = network::Cgroup::for_vm(self.home, &self.vm.name)
            .map_err(|e| Failure::generic(format!("tart-sim: {e}")))?;
        network::register(
            self.home,
            &network::Guest {
                vm: self.vm.name.clone(),
                mode: self.mode.clone(),
                address: ip,
            },
        )?;
        virtiofs::write_list(&guest_dir, &self.shares)
            .map_err(|e| Failure::generic(format!("tart-sim: cannot share directories: {e}")))?;
        let child = match guest::Kind::of(&guest_dir) {
            guest::Kind::Light => guest::boot(
                &guest_dir,
                &ip.to_string(),
                sshd_delay,
                self.faults.sshd_quirk(),
                &cgroup.procs(),
            ),
            guest::Kind::Systemd => guest::systemd::boot(
                &guest_dir,
                &self.vm.name,
                &ip.to_string(),
                (sshd_delay, self.faults.sshd_quirk()),
                &cgroup.dir,
            ),
        }
        .map_err(|e| Failure::generic(format!("tart-sim: cannot start the guest: {e}")))?;
        self.guest = Some(child);
        Ok(())
    }

    /// A graceful stop: asks the guest's init to shut down. Returns true when there is no
    /// guest yet (still in firmware), which simply powers off.
    fn request_stop(&mut self) -> bool {
        let Some(child) = self.guest.as_ref() else {
            return true;
        };
        if guest::Kind::of(&self.vm.guest_dir()) == guest::Kind::Systemd {
            guest::systemd::request_stop(child);
            return false;
        }
        if let Some(init) = guest::init_under(child.id() as i32) {
            // SAFETY: signalling a process of our own guest.
            unsafe { libc::kill(init, libc::SIGTERM) };
        }
        false
    }
}

/// Blocks the signals `tart run` handles, so they are taken synchronously.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
