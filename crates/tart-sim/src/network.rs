//! The simulated network between guests, with real packets: what a Mac's vmnet and Softnet
//! let a VM reach, enforced by the Linux kernel. Each running guest lives in a cgroup (v2) of
//! its own; one nftables table per `TART_HOME` rejects, on the host's output path, every
//! packet a guest's socket sends to another guest's address that the guest may not reach
//! (TCP gets a reset, the rest an ICMP error). Addresses outside the guests' range (the host,
//! 127.0.0.1) are never touched, and processes outside the guests' cgroups (tartlab, ssh
//! from the host) are never matched.
//!
//! The rules follow the sources (crate README, "Networks"): vmnet's shared (NAT) and
//! host-only networks put every VM on a bridge with isolation on, and two isolated members
//! never exchange packets (softnet's README; tart PR #837). Softnet's `--allow 0.0.0.0/0`
//! turns isolation off for its VM (softnet `lib/proxy/mod.rs`: `enable_isolation` is
//! `!allow.contains(0.0.0.0/0)`), and Softnet filters what its VM sends: global addresses and
//! the gateway by default, then `--allow`/`--block` by longest prefix, a block winning a tie.
//! Bridged VMs are on the LAN: they reach each other, and NAT'd VMs reach them, not the
//! other way round.
//!
//! Over 500 lines, for a reason: who may reach whom (`can_reach`) and the nftables ruleset
//! that enforces it are one model, kept in one file so a rule and its enforcement cannot
//! drift apart; a seventh of it is their unit tests.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::failure::Failure;
use crate::storage::{Home, VmDir};

/// The guests' addresses (leases/LAN): 127.90.0.0 to 127.127.255.255.
const GUEST_RANGE: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(127, 90, 0, 0),
    Ipv4Addr::new(127, 127, 255, 255),
);

/// The host as the guests see it (the vmnet gateway of a Mac).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A guest's network, from `tart run`'s flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Nat,
    /// `--net-softnet*` (`host_only`: `--net-host`): allow and block lists as given.
    Softnet {
        allow: Vec<String>,
        block: Vec<String>,
        host_only: bool,
    },
    Bridged,
}

impl Mode {
    fn isolated(&self) -> bool {
        match self {
            Mode::Nat => true,
            Mode::Softnet { allow, .. } => !allow.iter().any(|a| a == "0.0.0.0/0"),
            Mode::Bridged => false,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Mode::Nat => json!({ "mode": "nat" }),
            Mode::Softnet {
                allow,
                block,
                host_only,
            } => {
                json!({ "mode": if *host_only { "host" } else { "softnet" }, "allow": allow, "block": block })
            }
            Mode::Bridged => json!({ "mode": "bridged" }),
        }
    }

    fn from_json(v: &Value) -> Mode {
        let list = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        match v["mode"].as_str() {
            Some("softnet") | Some("host") => Mode::Softnet {
                allow: list("allow"),
                block: list("block"),
                host_only: v["mode"] == "host",
            },
            Some("bridged") => Mode::Bridged,
            _ => Mode::Nat,
        }
    }
}

/// `A.B.C.D/N` or `@host`, as a network and prefix length.
fn cidr(text: &str) -> Option<(u32, u8)> {
    if text == "@host" {
        return Some((u32::from(GATEWAY), 32));
    }
    let (address, bits) = text.split_once('/')?;
    let bits: u8 = bits.parse().ok().filter(|b| *b <= 32)?;
    Some((u32::from(address.parse::<Ipv4Addr>().ok()?), bits))
}

fn covers((network, bits): (u32, u8), address: Ipv4Addr) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(address) & mask) == (network & mask)
}

/// Whether Softnet lets its VM send to `to`: the longest matching prefix of `allow` and
/// `block` decides (block wins a tie); without one, only global addresses and the gateway.
fn softnet_allows(allow: &[String], block: &[String], to: Ipv4Addr) -> bool {
    let best = |list: &[String]| {
        list.iter()
            .filter_map(|c| cidr(c))
            .filter(|c| covers(*c, to))
            .map(|(_, bits)| bits)
            .max()
    };
    match (best(allow), best(block)) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => to == GATEWAY || is_global(to),
    }
}

fn is_global(a: Ipv4Addr) -> bool {
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_unspecified()
        || a.is_multicast()
        || a.octets()[0] == 100 && (64..128).contains(&a.octets()[1]))
}

/// What a guest's own side lets it send to `to`.
fn sends_to(mode: &Mode, to: Ipv4Addr) -> bool {
    match mode {
        Mode::Softnet { allow, block, .. } => softnet_allows(allow, block, to),
        Mode::Nat | Mode::Bridged => true,
    }
}

/// One running guest, as the rules see it.
#[derive(Debug, Clone)]
pub struct Guest {
    pub vm: String,
    pub mode: Mode,
    pub address: Ipv4Addr,
}

/// Whether `from` can open a connection to `to` (both ways must pass: the SYN and the
/// answer).
pub fn can_reach(from: &Guest, to: &Guest) -> bool {
    if from.vm == to.vm {
        return true;
    }
    let on_vmnet = |m: &Mode| !matches!(m, Mode::Bridged);
    let host_only = |m: &Mode| {
        matches!(
            m,
            Mode::Softnet {
                host_only: true,
                ..
            }
        )
    };
    match (on_vmnet(&from.mode), on_vmnet(&to.mode)) {
        (true, true) => {
            host_only(&from.mode) == host_only(&to.mode)
                && !(from.mode.isolated() && to.mode.isolated())
                && sends_to(&from.mode, to.address)
                && sends_to(&to.mode, from.address)
        }
        (false, false) => true,
        // A NAT'd VM reaches the LAN; the LAN does not reach behind the NAT.
        (true, false) => !host_only(&from.mode) && sends_to(&from.mode, to.address),
        (false, true) => false,
    }
}

/// Where cgroup v2 is mounted, and its path as nftables names it (relative to
/// `/sys/fs/cgroup`, which nft prepends).
fn cgroup2_mount() -> Result<(PathBuf, String), String> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    for line in mounts.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        if after.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let Some(point) = before.split_whitespace().nth(4) else {
            continue;
        };
        let point = PathBuf::from(point);
        if let Ok(rest) = point.strip_prefix("/sys/fs/cgroup") {
            let prefix = rest.display().to_string();
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            return Ok((point, prefix));
        }
    }
    Err("no cgroup v2 hierarchy under /sys/fs/cgroup (the simulator isolates guests with cgroup v2 and nftables)".into())
}

/// A short name for this `TART_HOME`, for the nft table and the cgroups.
fn home_id(home: &Home) -> String {
    let path = fs::canonicalize(&home.root).unwrap_or_else(|_| home.root.clone());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.display().to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

fn table(home: &Home) -> String {
    format!("tart_sim_{}", home_id(home))
}

/// A guest's cgroup: created if need be; its path on disk and as nftables names it.
pub struct Cgroup {
    pub dir: PathBuf,
    nft_path: String,
    level: usize,
}

impl Cgroup {
    pub fn for_vm(home: &Home, vm: &str) -> Result<Cgroup, String> {
        let (mount, prefix) = cgroup2_mount()?;
        let relative = format!("tart-sim/{}/{vm}", home_id(home));
        let dir = mount.join(&relative);
        fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))?;
        Ok(Cgroup {
            dir,
            nft_path: format!("{prefix}{relative}"),
            level: 3,
        })
    }

    /// The file a process writes `0` to, to move itself into the cgroup.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

fn records_dir(home: &Home) -> PathBuf {
    home.sim_dir().join("net")
}

/// Records a guest that is about to boot and puts the rules for it in place, before any of
/// its processes runs.
pub fn register(home: &Home, guest: &Guest) -> Result<(), Failure> {
    let record = json!({ "mode": guest.mode.to_json(), "address": guest.address.to_string() });
    apply(home, Some((&guest.vm, Some(record.to_string()))))
        .map_err(|e| Failure::generic(format!("tart-sim: cannot isolate the guests: {e}")))
}

/// Forgets a guest that stopped and takes its rules away.
pub fn unregister(home: &Home, vm: &str) {
    let _ = apply(home, Some((vm, None)));
    if let Ok(cgroup) = Cgroup::for_vm(home, vm) {
        remove_cgroup(&cgroup.dir);
    }
}

/// Removes a cgroup and the ones under it (systemd-nspawn makes `payload` and
/// `supervisor`), deepest first; a cgroup that still has processes stays.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The address of a running guest (what the guest agent reports).
pub fn address_of(home: &Home, vm: &str) -> Option<Ipv4Addr> {
    let text = fs::read_to_string(records_dir(home).join(vm)).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    record["address"].as_str()?.parse().ok()
}

/// The guests of this home that run now (records of stopped ones are dropped). `own` is the
/// VM of the calling `tart run`: it runs, and its `config.json` must not be opened here (a
/// process that closes any descriptor of a file loses its fcntl locks on it, and that lock is
/// what "running" means).
fn running_guests(home: &Home, own: Option<&str>) -> Vec<Guest> {
    let mut guests = Vec::new();
    let Ok(entries) = fs::read_dir(records_dir(home)) else {
        return guests;
    };
    for entry in entries.filter_map(Result::ok) {
        let vm = entry.file_name().to_string_lossy().into_owned();
        if vm.starts_with('.') {
            continue;
        }
        let running = own == Some(vm.as_str())
            || VmDir {
                path: home.vm_dir(&vm),
                name: vm.clone(),
            }
            .is_running();
        let record = fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        match record {
            Some(r) if running => guests.push(Guest {
                vm,
                mode: Mode::from_json(&r["mode"]),
                address: r["address"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(Ipv4Addr::UNSPECIFIED),
            }),
            _ => {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    guests.sort_by(|a, b| a.vm.cmp(&b.vm));
    guests
}

/// The nftables script for the running guests: for each, what it may not reach.
fn ruleset(home: &Home, guests: &[Guest]) -> Result<String, String> {
    let table = table(home);
    let mut script = format!("table inet {table}\ndelete table inet {table}\n");
    if guests.is_empty() {
        return Ok(script);
    }
    script.push_str(&format!(
        "table inet {table} {{\n  chain guests {{\n    type filter hook output priority 0; policy accept;\n"
    ));
    let range = format!("{}-{}", GUEST_RANGE.0, GUEST_RANGE.1);
    for guest in guests {
        let cgroup = Cgroup::for_vm(home, &guest.vm)?;
        let reachable: Vec<String> = guests
            .iter()
            .filter(|other| can_reach(guest, other))
            .map(|other| other.address.to_string())
            .collect();
        let except = if reachable.is_empty() {
            String::new()
        } else {
            format!(" ip daddr != {{ {} }}", reachable.join(", "))
        };
        let matched = format!(
            "socket cgroupv2 level {} \"{}\" ip daddr {range}{except}",
            cgroup.level, cgroup.nft_path
        );
        script.push_str(&format!(
            "    {matched} meta l4proto tcp reject with tcp reset\n    {matched} reject\n"
        ));
    }
    script.push_str("  }\n}\n");
    Ok(script)
}

/// Writes (`Some(record)`) or removes (`None`) the calling `tart run`'s record, then
/// replaces this home's table with the rules for the guests that run now: atomically, and
/// one writer at a time.
fn apply(home: &Home, change: Option<(&str, Option<String>)>) -> Result<(), String> {
    let dir = records_dir(home);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Beside the records, not among them: a record that is not a running VM's is removed.
    let _guard = lock(&home.sim_dir().join("net.lock")).map_err(|e| e.to_string())?;
    let own = match &change {
        Some((vm, Some(record))) => {
            let tmp = dir.join(format!(".{vm}.tmp"));
            fs::write(&tmp, record).map_err(|e| e.to_string())?;
            fs::rename(&tmp, dir.join(vm)).map_err(|e| e.to_string())?;
            Some(*vm)
        }
        Some((vm, None)) => {
            let _ = fs::remove_file(dir.join(vm));
            None
        }
        None => None,
    };
    let guests = running_guests(home, own);
    nft(&ruleset(home, &guests)?)
}

fn lock(path: &Path) -> io::Result<fs::File> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (install nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Removes this home's rules and cgroups (`reap`).
pub fn remove_all(home: &Home) {
    let table = table(home);
    let _ = nft(&format!("table inet {table}\ndelete table inet {table}\n"));
    let _ = fs::remove_dir_all(records_dir(home));
    if let Ok((mount, _)) = cgroup2_mount() {
        let dir = mount.join("tart-sim").join(home_id(home));
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.filter_map(Result::ok) {
                remove_cgroup(&entry.path());
            }
        }
        let _ = fs::remove_dir(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(vm: &str, mode: Mode, last: u8) -> Guest {
        Guest {
            vm: vm.into(),
            mode,
            address: Ipv4Addr::new(127, 90, 0, last),
        }
    }

    fn softnet(allow: &[&str], block: &[&str]) -> Mode {
        Mode::Softnet {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            block: block.iter().map(|s| s.to_string()).collect(),
            host_only: false,
        }
    }

    #[test]
    fn isolated_vms_never_meet_and_softnet_open_to_all_does() {
        let nat = |n, l| guest(n, Mode::Nat, l);
        assert!(!can_reach(&nat("a", 1), &nat("b", 2)));
        let plain = |n, l| guest(n, softnet(&[], &[]), l);
        assert!(!can_reach(&plain("a", 1), &plain("b", 2)));
        // An allow list that covers the peer leaves bridge isolation on (only 0.0.0.0/0
        // turns it off).
        let covering = |n, l| guest(n, softnet(&["127.90.0.0/16"], &[]), l);
        assert!(!can_reach(&covering("a", 1), &covering("b", 2)));
        let open = |n, l| guest(n, softnet(&["0.0.0.0/0"], &[]), l);
        assert!(can_reach(&open("a", 1), &open("b", 2)));
        let bridged = |n, l| guest(n, Mode::Bridged, l);
        assert!(can_reach(&bridged("a", 1), &bridged("b", 2)));
        assert!(
            can_reach(&nat("a", 1), &bridged("b", 2)),
            "NAT reaches the LAN"
        );
        assert!(
            !can_reach(&bridged("b", 2), &nat("a", 1)),
            "not behind the NAT"
        );
        assert!(can_reach(&nat("a", 1), &nat("a", 1)), "itself");
    }

    #[test]
    fn softnet_filters_by_longest_prefix_and_a_block_wins_a_tie() {
        let to = Ipv4Addr::new(127, 90, 1, 2);
        assert!(!softnet_allows(&[], &[], to), "not global");
        assert!(softnet_allows(&[], &[], GATEWAY), "the gateway");
        assert!(softnet_allows(&[], &[], Ipv4Addr::new(8, 8, 8, 8)));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(softnet_allows(
            &s(&["127.90.0.0/16"]),
            &s(&["127.0.0.0/8"]),
            to
        ));
        assert!(!softnet_allows(
            &s(&["127.0.0.0/8"]),
            &s(&["127.90.1.0/24"]),
            to
        ));
        assert!(!softnet_allows(
            &s(&["127.90.0.0/16"]),
            &s(&["127.90.0.0/16"]),
            to
        ));
        let open_but_blocked = guest("a", softnet(&["0.0.0.0/0"], &["127.90.0.2/32"]), 1);
        let peer = guest("b", softnet(&["0.0.0.0/0"], &[]), 2);
        assert!(!can_reach(&open_but_blocked, &peer));
    }
}
