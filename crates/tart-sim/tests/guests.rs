//! End to end: simulated VMs as a user of tart sees them. Clone, run, wait for the IP, log in
//! over SSH as admin/admin, provision, and check that changes land in the VM and not on the
//! host; then the ways a VM ends, the faults, isolation and cleanup. All need root.

mod common;

use std::time::Duration;

use common::{processes_mentioning, require_root, ssh, wait_exit, Sim};

fn listening(ip: &str) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:22").parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn provision_over_ssh_stays_in_the_vm_and_stop_delete_leave_nothing() {
    require_root();
    let sim = Sim::new();
    let (mut run, ip) = sim.boot("dev-master");
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert_eq!(octets[0], 127, "only loopback addresses: {ip}");

    let who = ssh(&ip, "hostname && whoami && sudo -n true && echo sudo-ok");
    assert_eq!(who.stdout, "ubuntu\nadmin\nsudo-ok\n", "{}", who.stderr);
    let out = ssh(&ip, "sudo hostnamectl set-hostname dev-master && sudo useradd -m -s /bin/bash tartlab-e2e-user && echo data | sudo tee /etc/e2e-marker >/dev/null");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let check = ssh(&ip, "hostname; cat /etc/hostname; id -un tartlab-e2e-user; cat /etc/e2e-marker; grep 127.0.1.1 /etc/hosts");
    assert_eq!(
        check.stdout,
        "dev-master\ndev-master\ntartlab-e2e-user\ndata\n127.0.1.1 dev-master\n"
    );
    assert_ne!(host_hostname(), "dev-master");
    assert!(
        !std::path::Path::new("/etc/e2e-marker").exists(),
        "a guest write reached the host"
    );
    assert!(!std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("tartlab-e2e-user"));

    let status = ssh(&ip, "echo out; echo err >&2; exit 5");
    assert_eq!(
        (status.code, status.stdout.as_str(), status.stderr.as_str()),
        (5, "out\n", "err\n")
    );
    let exec = sim.tart(&["exec", "dev-master", "sh", "-c", "id -un; pwd; exit 7"]);
    assert_eq!((exec.code, exec.stdout.as_str()), (7, "admin\n/\n"));
    let exec = sim.tart(&["exec", "dev-master", "-i", "cat"]);
    assert_eq!(exec.code, 1, "-i after the name belongs to the command");
    assert_eq!(
        exec.stderr,
        "Error: exec: \"-i\": executable file not found in $PATH\n"
    );

    let out = sim.tart(&["delete", "dev-master"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "VM \"dev-master\" is running\n")
    );
    let out = sim.tart(&["run", "dev-master", "--no-graphics"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "VM \"dev-master\" is already running!\n")
    );

    sim.ok(&["stop", "dev-master"]);
    assert_eq!(wait_exit(&mut run, 10), 0);
    assert_eq!(
        std::fs::read_to_string(sim.run_log("dev-master")).unwrap(),
        "Stopping VM...\n"
    );
    assert!(processes_mentioning(&sim.vm_dir("dev-master")).is_empty());
    assert!(!listening(&ip));
    // bootpd leases outlive the VM, as on macOS: ip still answers for a stopped VM.
    assert_eq!(sim.ok(&["ip", "dev-master"]).trim(), ip);

    // The disk persists: after a restart the provisioning is still there.
    let mut run = sim.start("dev-master");
    let ip2 = sim
        .ok(&["ip", "dev-master", "--wait", "30"])
        .trim()
        .to_string();
    common::wait_for_port(&ip2);
    assert_eq!(
        ssh(&ip2, "hostname; id -un tartlab-e2e-user").stdout,
        "dev-master\ntartlab-e2e-user\n"
    );
    sim.ok(&["stop", "dev-master", "--timeout", "5"]);
    wait_exit(&mut run, 10);
    sim.ok(&["delete", "dev-master"]);
    assert!(!sim.vm_dir("dev-master").exists());
    assert!(processes_mentioning(&sim.home).is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&sim.home.display().to_string()),
        "a mount was left behind"
    );
}

#[test]
fn shutdown_inside_the_guest_and_sigusr2_end_tart_run_gracefully() {
    require_root();
    let sim = Sim::new();
    let (mut run, ip) = sim.boot("a");
    let out = ssh(&ip, "sudo shutdown -h now");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(wait_exit(&mut run, 10), 0);
    assert_eq!(
        std::fs::read_to_string(sim.run_log("a")).unwrap(),
        "guest has stopped the virtual machine\n"
    );
    assert_eq!(
        sim.ok(&["list", "--format", "json"])
            .matches("\"running\"")
            .count(),
        0
    );

    let mut run = sim.start("a");
    sim.ok(&["ip", "a", "--wait", "30"]);
    common::wait_for_port(&ip);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.pid(), libc::SIGUSR2) };
    assert_eq!(wait_exit(&mut run, 10), 0);
    assert_eq!(
        std::fs::read_to_string(sim.run_log("a")).unwrap(),
        "Requesting guest OS to stop...\nguest has stopped the virtual machine\n"
    );
    assert!(processes_mentioning(&sim.vm_dir("a")).is_empty());
}

#[test]
fn clones_of_one_image_share_host_key_and_machine_id_but_not_addresses() {
    require_root();
    let sim = Sim::new();
    let (_a, ip_a) = sim.boot("a");
    let (_b, ip_b) = sim.boot("b");
    assert_ne!(ip_a, ip_b);
    let read = |vm: &str| {
        sim.ok(&[
            "exec",
            vm,
            "cat",
            "/etc/machine-id",
            "/etc/ssh/ssh_host_ed25519_key.pub",
        ])
    };
    assert_eq!(read("a"), read("b"));
    let host_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    assert!(!read("a").starts_with(&host_id) || host_id.is_empty());
    let list = sim.ok(&["list", "--source", "local"]);
    assert_eq!(list.matches(" running").count(), 2, "{list}");
}

#[test]
fn separate_tart_homes_never_share_an_address() {
    require_root();
    let (one, two) = (Sim::new(), Sim::new());
    // Both keep the image's MAC: only the address registry keeps them apart.
    one.clone_image("vm");
    two.clone_image("vm");
    let mut r1 = one.start("vm");
    let mut r2 = two.start("vm");
    let ip1 = one.ok(&["ip", "vm", "--wait", "30"]);
    let ip2 = two.ok(&["ip", "vm", "--wait", "30"]);
    assert_ne!(ip1, ip2);
    one.ok(&["stop", "vm"]);
    two.ok(&["stop", "vm"]);
    wait_exit(&mut r1, 10);
    wait_exit(&mut r2, 10);
}

#[test]
fn lease_file_is_in_bootpd_format_with_the_vm_mac() {
    require_root();
    let sim = Sim::new();
    let (_run, ip) = sim.boot("vm");
    let leases = std::fs::read_to_string(sim.home.join("sim/dhcpd_leases")).unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.vm_dir("vm").join("config.json")).unwrap(),
    )
    .unwrap();
    // bootpd writes each octet without its leading zero.
    let mac: Vec<String> = config["macAddress"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|o| format!("{:x}", u8::from_str_radix(o, 16).unwrap()))
        .collect();
    let mac = mac.join(":");
    assert!(
        leases.contains(&format!("\tip_address={ip}\n\thw_address=1,{mac}\n")),
        "{leases}"
    );
    assert!(leases.starts_with("{\n\tname=ubuntu\n"));
}

#[test]
fn faults_run_fails_no_lease_no_sshd_and_crash() {
    require_root();
    let sim = Sim::new();
    for vm in ["fails", "nolease", "nosshd", "dies", "late"] {
        sim.clone_image(vm);
        sim.ok(&["set", vm, "--random-mac"]);
    }
    std::fs::create_dir_all(sim.home.join("sim")).unwrap();
    std::fs::write(
        sim.home.join("sim/faults"),
        "fails run-fails\nnolease no-lease\nnosshd no-sshd\ndies die-after-ms=1500\nlate sshd-delay-ms=1500\n",
    )
    .unwrap();

    let out = sim.tart(&["run", "fails", "--no-graphics"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("Error Domain=VZErrorDomain Code=1"),
        "{}",
        out.stderr
    );

    let mut nolease = sim.start("nolease");
    std::thread::sleep(Duration::from_millis(600));
    let out = sim.tart(&["ip", "nolease", "--wait", "1"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "no IP address found\n")
    );

    let _nosshd = sim.start("nosshd");
    let ip = sim.ok(&["ip", "nosshd", "--wait", "30"]).trim().to_string();
    std::thread::sleep(Duration::from_millis(800));
    assert!(!listening(&ip), "sshd must never start");
    assert_eq!(
        sim.ok(&["exec", "nosshd", "echo", "agent-still-works"]),
        "agent-still-works\n"
    );

    let _late = sim.start("late");
    let ip = sim.ok(&["ip", "late", "--wait", "30"]).trim().to_string();
    assert!(!listening(&ip), "sshd starts late");
    common::wait_for_port(&ip);

    let mut dies = sim.start("dies");
    assert_eq!(wait_exit(&mut dies, 10), 0);
    assert!(std::fs::read_to_string(sim.run_log("dies"))
        .unwrap()
        .starts_with("guest has stopped the virtual machine due to error:"));
    assert!(processes_mentioning(&sim.vm_dir("dies")).is_empty());

    sim.ok(&["stop", "nolease"]);
    wait_exit(&mut nolease, 10);
}

#[test]
fn a_killed_tart_run_leaves_control_sock_and_exec_breaks_until_it_is_removed() {
    require_root();
    let sim = Sim::new();
    let (mut run, old_ip) = sim.boot("vm");
    run.kill();
    assert!(
        sim.vm_dir("vm").join("control.sock").exists(),
        "tart #1220: the socket stays"
    );
    // The guest dies with tart run (PDEATHSIG), a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&sim.vm_dir("vm")).is_empty() || listening(&old_ip) {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest outlived tart run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let _run = sim.start("vm");
    // Wait until the guest is really up (sshd answers), so the failure below is the socket's.
    let ip = sim.ok(&["ip", "vm", "--wait", "30"]).trim().to_string();
    common::wait_for_port(&ip);
    let out = sim.tart(&["exec", "vm", "true"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is the Tart Guest Agent running?"),
        "{}",
        out.stderr
    );
    sim.ok(&["stop", "vm"]);
    std::fs::remove_file(sim.vm_dir("vm").join("control.sock")).unwrap();
    let _run = sim.start("vm");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = sim.tart(&["exec", "vm", "echo", "ok"]);
        if out.code == 0 {
            assert_eq!(out.stdout, "ok\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exec never worked: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reap_ends_every_vm_of_a_tart_home() {
    require_root();
    let sim = Sim::new();
    let (_a, ip_a) = sim.boot("a");
    let (_b, ip_b) = sim.boot("b");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tart-sim"))
        .arg("reap")
        .env("TART_HOME", &sim.home)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!listening(&ip_a) && !listening(&ip_b));
    assert_eq!(
        sim.ok(&["list", "--format", "json"])
            .matches("\"running\"")
            .count(),
        0
    );
    assert!(processes_mentioning(&sim.home).is_empty());
}
