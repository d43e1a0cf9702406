//! Commands that talk to a running VM: `ip` (tart's resolve loop and messages), `stop`
//! (SIGINT, poll, SIGKILL), `exec` (as `admin`, no shell), and the simulator's `reap`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::args::{CommandSpec, Parsed};
use crate::failure::Failure;
use crate::guest;
use crate::leases;
use crate::network;
use crate::storage::{Home, VmDir};

pub fn ip(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let vm = home.open_vm(p.positional("name").unwrap_or_default())?;
    let wait = p
        .value("wait")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0);
    let resolver = p.value("resolver").unwrap_or("dhcp");
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        if let Some(ip) = resolve(home, &vm, resolver)? {
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "{ip}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
        if Instant::now() >= deadline {
            break;
        }
    }
    let mut message = "no IP address found".to_string();
    if !vm.is_running() {
        message.push_str(", is your VM running?");
    }
    match resolver {
        "agent" => message
            .push_str(" (also make sure that Guest agent for Tart is running inside of a VM)"),
        "arp" => {
            message.push_str(" (not all Linux distributions are compatible with the ARP resolver)")
        }
        _ => {}
    }
    Err(Failure::generic(message))
}

fn resolve(home: &Home, vm: &VmDir, resolver: &str) -> Result<Option<String>, Failure> {
    let mac = vm.read_config()?.mac();
    let lease = leases::resolve(home, &mac)?;
    Ok(match resolver {
        // bootpd's leases, whether or not the VM runs.
        "dhcp" => lease,
        // The host's ARP cache only knows guests that are up and talking; Linux guests
        // rarely talk first (reference section 6), so the simulated one never does.
        "arp" => None,
        // The guest agent answers only from a running, booted guest, with the address the
        // guest has (a bridged guest's comes from the LAN, not the lease file).
        _ => vm
            .running_pid()
            .and_then(guest::init_pid)
            .and_then(|_| network::address_of(home, &vm.name))
            .filter(|ip| !ip.is_unspecified()),
    }
    .map(|ip| ip.to_string()))
}

pub fn stop(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let vm = home.open_vm(p.positional("name").unwrap_or_default())?;
    let timeout = p
        .value("timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(30);
    if vm.state() == "suspended" {
        let _ = std::fs::remove_file(vm.path.join("state.vzvmsave"));
        return Ok(());
    }
    let Some(pid) = vm.running_pid() else {
        return Err(Failure::vm_not_running(&vm.name));
    };
    // SAFETY: signalling the lock holder, as tart does.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while Instant::now() < deadline {
        if !vm.is_running() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above. tart returns right away, without waiting for the lock.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        let errno = std::io::Error::last_os_error();
        return Err(Failure::generic(format!(
            "failed to forcefully terminate the VM \"{}\": {errno}",
            vm.name
        )));
    }
    Ok(())
}

pub fn exec(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let vm = home.open_vm(p.positional("name").unwrap_or_default())?;
    let Some(run_pid) = vm.running_pid() else {
        return Err(Failure::vm_not_running(&vm.name));
    };
    let agent_reachable =
        std::os::unix::net::UnixStream::connect(vm.path.join("control.sock")).is_ok();
    let init = guest::init_pid(run_pid).filter(|_| agent_reachable);
    let Some(init) = init else {
        return Err(Failure::generic("Failed to connect to the VM using its control socket: The operation couldn’t be completed. (GRPC.GRPCConnectionPoolError error 1.), is the Tart Guest Agent running?".into()));
    };
    let argv = p.positionals("command");
    // The agent runs inside the guest: its commands meet the guest's network rules.
    let cgroup = network::Cgroup::for_vm(home, &vm.name)
        .map_err(|e| Failure::generic(format!("tart-sim: {e}")))?;
    let code = guest::exec(init, argv, p.flag("i"), &cgroup.procs())?;
    if code == 0 {
        Ok(())
    } else {
        Err(Failure::Exit(code))
    }
}

/// `tart-sim reap`: ends every VM of this `TART_HOME` and releases its addresses, for test
/// teardown. VMs stay on disk.
pub fn reap(home: &Home) -> Result<(), Failure> {
    let mut killed = Vec::new();
    let mut inits = Vec::new();
    for name in home.local_vm_names() {
        let vm = VmDir {
            path: home.vm_dir(&name),
            name,
        };
        if let Some(pid) = vm.running_pid() {
            inits.extend(guest::init_pid(pid));
            // SAFETY: killing a `tart run` of this TART_HOME; its guest dies with it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.push(vm);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while killed.iter().any(VmDir::is_running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    inits.into_iter().for_each(guest::wait_gone);
    network::remove_all(home);
    leases::release_all(home);
    if killed.iter().any(VmDir::is_running) {
        return Err(Failure::generic("tart-sim: some VMs did not stop".into()));
    }
    Ok(())
}
