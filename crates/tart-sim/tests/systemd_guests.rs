//! The systemd guest kind (crate README, "The guests"): a Debian root booted by
//! systemd-nspawn with systemd as PID 1, sshd socket-activated. Everything the light guests
//! do holds for it, as a user of tart sees it. Needs root and the Debian root that
//! scripts/install-deps.sh builds.

mod common;

use std::time::Duration;

use common::{processes_in_vm_cgroup, processes_mentioning, require_root, ssh, wait_exit, Sim};

fn listening(ip: &str) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:22").parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

#[test]
fn a_systemd_guest_runs_systemd_with_sshd_on_its_socket_and_changes_stay_inside() {
    require_root();
    let sim = Sim::new().with_systemd_guests();
    let (mut run, ip) = sim.boot("sd-basic");
    let facts = ssh(
        &ip,
        "ps -p 1 -o comm=; systemctl is-system-running --wait; systemctl is-active ssh.socket ssh.service; whoami; sudo -n true && echo sudo-ok",
    );
    assert_eq!(
        facts.stdout, "systemd\nrunning\nactive\nactive\nadmin\nsudo-ok\n",
        "{}",
        facts.stderr
    );
    // hostnamectl goes through systemd-hostnamed, in the guest's own UTS namespace.
    let named = ssh(&ip, "sudo hostnamectl set-hostname sd-named && hostnamectl --static && hostname && echo inside | sudo tee /etc/sd-marker >/dev/null");
    assert_eq!(named.stdout, "sd-named\nsd-named\n", "{}", named.stderr);
    assert!(!std::path::Path::new("/etc/sd-marker").exists());
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "sd-named"
    );
    // Listening on its own address only.
    let socket = ssh(&ip, "systemctl show -p Listen ssh.socket");
    assert_eq!(socket.stdout, format!("Listen={ip}:22 (Stream)\n"));
    let exec = sim.tart(&["exec", "sd-basic", "sh", "-c", "id -un; cat /etc/hostname"]);
    assert_eq!(
        (exec.code, exec.stdout.as_str()),
        (0, "admin\nsd-named\n"),
        "{}",
        exec.stderr
    );
    // The disk persists over stop and start.
    sim.ok(&["stop", "sd-basic"]);
    assert_eq!(wait_exit(&mut run, 15), 0);
    assert!(!listening(&ip));
    assert!(processes_in_vm_cgroup(&sim.home, "sd-basic").is_empty());
    let mut run = sim.start("sd-basic");
    let ip = sim
        .ok(&["ip", "sd-basic", "--wait", "30"])
        .trim()
        .to_string();
    common::wait_for_port(&ip);
    assert_eq!(ssh(&ip, "cat /etc/sd-marker").stdout, "inside\n");
    sim.ok(&["stop", "sd-basic", "--timeout", "10"]);
    wait_exit(&mut run, 15);
}

#[test]
fn clones_of_a_systemd_image_share_machine_id_and_host_key() {
    require_root();
    let sim = Sim::new().with_systemd_guests();
    let (_a, ip_a) = sim.boot("sd-clone-a");
    let (_b, ip_b) = sim.boot("sd-clone-b");
    assert_ne!(ip_a, ip_b);
    let identity =
        |ip: &str| ssh(ip, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub").stdout;
    let a = identity(&ip_a);
    assert_eq!(a, identity(&ip_b), "clones share what the image made once");
    assert_eq!(a.lines().next().unwrap().len(), 32);
}

#[test]
fn shutdown_reboot_and_a_killed_tart_run_end_as_a_vm_does() {
    require_root();
    let sim = Sim::new().with_systemd_guests();
    let (mut run, ip) = sim.boot("sd-life");
    // A reboot from inside ends the VM, as on Virtualization.framework (no guest reset); a
    // shutdown from inside ends `tart run` as tart's does.
    for (i, command) in ["sudo systemctl reboot", "sudo shutdown -h now"]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            run = sim.start("sd-life");
            sim.ok(&["ip", "sd-life", "--wait", "30"]);
            common::wait_for_port(&ip);
        }
        let _ = ssh(&ip, command);
        assert_eq!(wait_exit(&mut run, 20), 0, "{command}");
        assert!(std::fs::read_to_string(sim.run_log("sd-life"))
            .unwrap()
            .ends_with("guest has stopped the virtual machine\n"));
        assert!(
            processes_in_vm_cgroup(&sim.home, "sd-life").is_empty(),
            "{command}"
        );
    }
    // SIGKILL of `tart run` takes the whole guest with it.
    let mut run = sim.start("sd-life");
    sim.ok(&["ip", "sd-life", "--wait", "30"]);
    common::wait_for_port(&ip);
    assert!(!processes_in_vm_cgroup(&sim.home, "sd-life").is_empty());
    run.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !processes_in_vm_cgroup(&sim.home, "sd-life").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "guest processes outlived tart run: {:?}",
            processes_in_vm_cgroup(&sim.home, "sd-life")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!listening(&ip));
}

#[test]
fn systemd_guests_are_isolated_on_nat_and_reap_leaves_nothing() {
    require_root();
    let sim = Sim::new().with_systemd_guests();
    let (_a, ip_a) = sim.boot("sd-iso-a");
    let (_b, ip_b) = sim.boot("sd-iso-b");
    let probe = |from: &str, to: &str| {
        ssh(
            from,
            &format!(
                "timeout 2 bash -c 'exec 3<>/dev/tcp/{to}/22' && echo reached || echo refused"
            ),
        )
        .stdout
    };
    assert_eq!(
        probe(&ip_a, &ip_b),
        "refused\n",
        "NAT keeps guests apart, as vmnet does"
    );
    assert_eq!(probe(&ip_a, &ip_a), "reached\n");
    // The guests run in this home's cgroups: what proves the checks below look where tart-sim
    // puts them.
    for vm in ["sd-iso-a", "sd-iso-b"] {
        assert!(!processes_in_vm_cgroup(&sim.home, vm).is_empty(), "{vm}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tart-sim"))
        .arg("reap")
        .env("TART_HOME", &sim.home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for vm in ["sd-iso-a", "sd-iso-b"] {
        assert!(
            processes_in_vm_cgroup(&sim.home, vm).is_empty(),
            "{vm}: {:?}",
            processes_in_vm_cgroup(&sim.home, vm)
        );
    }
    assert!(processes_mentioning(&sim.home).is_empty());
    assert!(!listening(&ip_a) && !listening(&ip_b));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&sim.home.display().to_string()));
    let cgroups = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let unified = cgroups
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap()
        .to_string();
    let own = std::path::Path::new(&unified)
        .join("tart-sim")
        .join(common::home_cgroup(&sim.home));
    let left: Vec<_> = walk(&own)
        .into_iter()
        .filter(|p| p.ends_with("sd-iso-a") || p.ends_with("sd-iso-b"))
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
            found.extend(walk(&entry.path()));
        }
    }
    found
}
