//! Conformance of the simulated network with what a Mac does (crate README, "Networks"):
//! guests are kept apart in NAT and plain Softnet as vmnet's bridge isolation keeps VMs
//! apart, reach each other with Softnet's `--allow 0.0.0.0/0` or bridged, always reach the
//! host; bridged VMs get no lease in the host's lease file and answer the agent resolver;
//! Softnet needs root as softnet does; the lease file writes MAC octets as bootpd does. All
//! with real packets from inside the guests.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{wait_exit, wait_for_port, RunningVm, Sim};

/// Boots a VM with these `tart run` flags; its address from the resolver that works for it.
fn boot(sim: &Sim, name: &str, flags: &[&str]) -> (RunningVm, String) {
    sim.clone_image(name);
    sim.ok(&["set", name, "--random-mac"]);
    let vm = sim.start_with(name, flags);
    let bridged = flags.iter().any(|f| f.starts_with("--net-bridged"));
    let resolver = if bridged { "agent" } else { "dhcp" };
    let ip = sim
        .ok(&["ip", name, "--wait", "30", "--resolver", resolver])
        .trim()
        .to_string();
    wait_for_port(&ip);
    (vm, ip)
}

/// Whether `from` (a VM) opens TCP port `port` of `to`, from inside the guest.
fn connects(sim: &Sim, from: &str, to: &str, port: u16) -> bool {
    let probe = format!("exec 3<>/dev/tcp/{to}/{port}");
    sim.tart(&["exec", from, "timeout", "5", "bash", "-c", &probe])
        .code
        == 0
}

fn pair(flags: &[&str]) -> (Sim, Vec<RunningVm>, String, String) {
    let sim = Sim::new();
    let (a, ip_a) = boot(&sim, "a", flags);
    let (b, ip_b) = boot(&sim, "b", flags);
    (sim, vec![a, b], ip_a, ip_b)
}

#[test]
fn nat_and_plain_softnet_keep_guests_apart_and_let_them_reach_the_host() {
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();
    for flags in [
        &[][..],
        &["--net-softnet"][..],
        &["--net-softnet-allow=127.64.0.0/10"][..],
    ] {
        let (sim, _vms, ip_a, ip_b) = pair(flags);
        assert!(!connects(&sim, "a", &ip_b, 22), "{flags:?}: a reached b");
        assert!(!connects(&sim, "b", &ip_a, 22), "{flags:?}: b reached a");
        assert!(
            connects(&sim, "a", &ip_a, 22),
            "{flags:?}: a reaches itself"
        );
        assert!(
            connects(&sim, "a", "127.0.0.1", host_port),
            "{flags:?}: the host (gateway) is reachable"
        );
        // The host reaches every guest (tartlab's SSH).
        wait_for_port(&ip_b);
    }
}

#[test]
fn softnet_open_to_all_and_bridged_let_guests_meet() {
    for flags in [
        &["--net-softnet-allow=0.0.0.0/0"][..],
        &["--net-bridged", "en0"][..],
    ] {
        let (sim, _vms, ip_a, ip_b) = pair(flags);
        assert!(connects(&sim, "a", &ip_b, 22), "{flags:?}");
        assert!(connects(&sim, "b", &ip_a, 22), "{flags:?}");
    }
    // A block that covers the peer wins over the 0.0.0.0/0 that lifted the isolation.
    let sim = Sim::new();
    let (_b, ip_b) = boot(&sim, "b", &["--net-softnet-allow=0.0.0.0/0"]);
    let block = format!("--net-softnet-block={ip_b}/32");
    let (_a, _) = boot(&sim, "a", &["--net-softnet-allow=0.0.0.0/0", &block]);
    assert!(!connects(&sim, "a", &ip_b, 22));
}

#[test]
fn a_bridged_vm_has_no_lease_on_the_host_and_answers_the_agent_resolver() {
    let sim = Sim::new();
    let (_vm, ip) = boot(&sim, "vm", &["--net-bridged", "en0"]);
    let leases = std::fs::read_to_string(sim.home.join("sim/dhcpd_leases")).unwrap_or_default();
    assert!(!leases.contains(&ip), "{leases}");
    let dhcp = sim.tart(&["ip", "vm", "--wait", "1"]);
    assert_eq!(dhcp.code, 1, "{}", dhcp.stdout);
    assert!(
        dhcp.stderr.contains("no IP address found"),
        "{}",
        dhcp.stderr
    );
    assert_eq!(sim.ok(&["ip", "vm", "--resolver", "agent"]).trim(), ip);
}

#[test]
fn the_lease_file_writes_mac_octets_without_leading_zeros_as_bootpd_does() {
    let sim = Sim::new();
    sim.clone_image("vm");
    let config = sim.vm_dir("vm").join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["macAddress"] = "7e:0c:f2:4a:78:03".into();
    std::fs::write(&config, json.to_string()).unwrap();
    let _vm = sim.start("vm");
    sim.ok(&["ip", "vm", "--wait", "30"]);
    let leases = std::fs::read_to_string(sim.home.join("sim/dhcpd_leases")).unwrap();
    assert!(
        leases.contains("hw_address=1,7e:c:f2:4a:78:3\n"),
        "{leases}"
    );
}

#[test]
fn softnet_needs_root_as_softnet_does_and_is_found_on_path() {
    let sim = Sim::new();
    sim.clone_image("vm");
    // Without softnet on PATH: tart's InitializationFailed.
    let mut missing = sim.command(&["run", "vm", "--no-graphics", "--net-softnet"]);
    missing.env("PATH", "/usr/bin:/bin");
    let out = missing.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: InitializationFailed(why: \"softnet not found in PATH\")\n"
    );
    // A user's Mac: softnet without the SUID bit, sudo wants a password.
    let sudo = sim.bin().join("sudo");
    std::fs::write(
        &sudo,
        "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&sudo)
        .status()
        .unwrap();
    let mut vm = sim.start_with("vm", &["--net-softnet"]);
    assert_eq!(wait_exit(&mut vm, 20), 1);
    let log = std::fs::read_to_string(sim.run_log("vm")).unwrap();
    assert!(
        log.contains("root privileges are required to run and passwordless sudo was not available"),
        "{log}"
    );
    assert!(
        log.ends_with("Error: RuntimeFailed(why: \"Softnet process terminated prematurely\")\n"),
        "{log}"
    );
    assert!(
        !std::fs::read_to_string(sim.home.join("sim/dhcpd_leases"))
            .unwrap_or_default()
            .contains("name="),
        "the VM never got a lease"
    );
    // The set-up tart offers on a terminal: the SUID bit, root-owned.
    Command::new("chmod")
        .arg("u+s")
        .arg(sim.bin().join("softnet"))
        .status()
        .unwrap();
    let _vm = sim.start_with("vm", &["--net-softnet"]);
    let ip = sim.ok(&["ip", "vm", "--wait", "30"]);
    wait_for_port(ip.trim());
}
