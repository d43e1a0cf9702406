//! The simulated DHCP server: a bootpd-format lease file per `TART_HOME` (reference
//! section 6), and a machine-wide registry of 127.x addresses so that simulators with
//! different `TART_HOME`s never hand out the same address.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::failure::Failure;
use crate::storage::{random_bytes, Home};

/// One lease block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Normalized MAC (lower case, zero padded).
    pub mac: String,
    /// Expiry, seconds since the epoch.
    pub expiry: u64,
}

pub fn lease_file(home: &Home) -> PathBuf {
    match std::env::var_os("TART_SIM_LEASES") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home.sim_dir().join("dhcpd_leases"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Normalizes `9:a:...` to `09:0a:...`; `None` if it is not a MAC.
pub fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let octets: Option<Vec<u8>> = parts
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 2 {
                None
            } else {
                u8::from_str_radix(p, 16).ok()
            }
        })
        .collect();
    Some(
        octets?
            .iter()
            .map(|o| format!("{o:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Parses a lease file the way tart's `DHCPLeaseParser` does. Blocks whose hardware type
/// is not Ethernet, or that lack fields, are skipped; structure errors fail.
pub fn parse(text: &str) -> Result<Vec<Lease>, String> {
    let mut leases = Vec::new();
    let mut block: Option<HashMap<String, String>> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches([' ', '\t']).trim_end();
        if line.is_empty() {
            continue;
        }
        match (line, block.as_mut()) {
            ("{", None) => block = Some(HashMap::new()),
            ("}", Some(_)) => {
                if let Some(lease) = block.take().and_then(|b| lease_from_block(&b)) {
                    leases.push(lease);
                }
            }
            (_, Some(fields)) if line.contains('=') => {
                let (k, v) = line.split_once('=').unwrap_or_default();
                fields.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(format!(
                    "unexpected DHCPD leases file format on line {}: {raw}",
                    n + 1
                ))
            }
        }
    }
    if block.is_some() {
        return Err("truncated DHCPD leases file".to_string());
    }
    Ok(leases)
}

fn lease_from_block(b: &HashMap<String, String>) -> Option<Lease> {
    let (kind, mac) = b.get("hw_address")?.split_once(',')?;
    if kind != "1" {
        return None;
    }
    Some(Lease {
        name: b.get("name").cloned().unwrap_or_default(),
        ip: b.get("ip_address")?.parse().ok()?,
        mac: normalize_mac(mac)?,
        expiry: u64::from_str_radix(b.get("lease")?.trim_start_matches("0x"), 16).ok()?,
    })
}

/// A MAC as bootpd writes it: each octet in lower-case hex without a leading zero
/// (`7e:1c:f2:4a:78:3`), which is why readers must pad them (reference section 6).
fn unpadded(mac: &str) -> String {
    mac.split(':')
        .map(|o| {
            let trimmed = o.trim_start_matches('0');
            if trimmed.is_empty() {
                "0"
            } else {
                trimmed
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

pub fn render(leases: &[Lease]) -> String {
    leases
        .iter()
        .map(|l| {
            let mac = unpadded(&l.mac);
            format!(
                "{{\n\tname={}\n\tip_address={}\n\thw_address=1,{mac}\n\tidentifier=1,{mac}\n\tlease={:#x}\n}}\n",
                l.name, l.ip, l.expiry
            )
        })
        .collect()
}

/// The live lease for `mac`: expired leases are dropped, the later expiry wins.
pub fn resolve(home: &Home, mac: &str) -> Result<Option<Ipv4Addr>, Failure> {
    let text = match fs::read_to_string(lease_file(home)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::prefixed(format!("{e}"))),
    };
    let leases = parse(&text).map_err(Failure::prefixed)?;
    let now = now_secs();
    Ok(leases
        .iter()
        .filter(|l| l.mac == mac && l.expiry > now)
        .max_by_key(|l| l.expiry)
        .map(|l| l.ip))
}

/// What the DHCP server does when a guest asks for an address: the same address as before
/// for a known MAC, else a fresh one; the lease is (re)written with a new expiry.
pub fn grant(home: &Home, mac: &str, hostname: &str) -> io::Result<Ipv4Addr> {
    let path = lease_file(home);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let _guard = flock_file(&path.with_extension("lock"))?;
    let mut leases = fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse(&t).ok())
        .unwrap_or_default();
    let known = leases
        .iter()
        .filter(|l| l.mac == mac)
        .map(|l| l.ip)
        .find(|ip| registry_owner(*ip).as_deref() == Some(&home_key(home)));
    let ip = match known {
        Some(ip) => ip,
        None => allocate_address(home)?,
    };
    leases.retain(|l| l.mac != mac);
    let lease_secs = std::env::var("TART_SIM_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(86_400);
    leases.push(Lease {
        name: hostname.to_string(),
        ip,
        mac: mac.to_string(),
        expiry: now_secs() + lease_secs,
    });
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, render(&leases))?;
    fs::rename(&tmp, &path)?;
    Ok(ip)
}

fn flock_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on an open descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Machine-wide address registry: one file per address, naming the `TART_HOME` that holds it.
fn registry_dir() -> PathBuf {
    match std::env::var_os("TART_SIM_REGISTRY") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/tmp/tart-sim-addresses"),
    }
}

fn home_key(home: &Home) -> String {
    fs::canonicalize(&home.root)
        .unwrap_or_else(|_| home.root.clone())
        .display()
        .to_string()
}

fn registry_owner(ip: Ipv4Addr) -> Option<String> {
    fs::read_to_string(registry_dir().join(ip.to_string()))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The simulator's addresses: 127.90.0.0 to 127.127.255.255, never 127.0.0.0/16, and
/// never outside 127.0.0.0/8.
fn candidate() -> Ipv4Addr {
    let b = random_bytes::<3>();
    let second = 90 + (b[0] % 38);
    let fourth = 1 + (b[2] % 254);
    Ipv4Addr::new(127, second, b[1], fourth)
}

/// Claims an address no other live `TART_HOME` holds. A claim whose `TART_HOME` no longer
/// exists is stale and is taken over.
fn allocate_address(home: &Home) -> io::Result<Ipv4Addr> {
    let dir = registry_dir();
    fs::create_dir_all(&dir)?;
    let _guard = flock_file(&dir.join(".lock"))?;
    let me = home_key(home);
    for _ in 0..10_000 {
        let ip = candidate();
        let claim = dir.join(ip.to_string());
        let free = match fs::read_to_string(&claim) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
            Ok(owner) => !Path::new(owner.trim()).is_dir(),
        };
        if free {
            fs::write(&claim, format!("{me}\n"))?;
            return Ok(ip);
        }
    }
    Err(io::Error::other(
        "no free address in 127.90.0.0-127.127.255.255",
    ))
}

/// A bridged VM's address from the LAN's DHCP server: the same one for the same MAC, kept
/// apart from the host's lease file (which never hears of bridged VMs).
pub fn lan_address(home: &Home, mac: &str) -> io::Result<Ipv4Addr> {
    let dir = home.sim_dir().join("lan");
    fs::create_dir_all(&dir)?;
    let _guard = flock_file(&dir.join(".lock"))?;
    let record = dir.join(mac.replace(':', "-"));
    if let Some(ip) = fs::read_to_string(&record)
        .ok()
        .and_then(|t| t.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| registry_owner(*ip).as_deref() == Some(&home_key(home)))
    {
        return Ok(ip);
    }
    let ip = allocate_address(home)?;
    fs::write(&record, format!("{ip}\n"))?;
    Ok(ip)
}

/// Drops every claim of this `TART_HOME` (used by `reap`).
pub fn release_all(home: &Home) {
    let me = home_key(home);
    let Ok(entries) = fs::read_dir(registry_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if fs::read_to_string(entry.path()).is_ok_and(|o| o.trim() == me) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bootpd_blocks_and_pads_octets() {
        let text = "{\n\tname=ubuntu\n\tip_address=192.168.64.3\n\thw_address=1,7e:1c:f2:4a:78:9\n\tidentifier=1,7e:1c:f2:4a:78:9\n\tlease=0x678e2ce7\n}\n";
        let leases = parse(text).unwrap();
        assert_eq!(leases[0].mac, "7e:1c:f2:4a:78:09");
        assert_eq!(leases[0].expiry, 0x678e2ce7);
        assert_eq!(parse(&render(&leases)).unwrap(), leases);
    }

    #[test]
    fn structure_errors_are_reported_like_tart() {
        assert_eq!(
            parse("{\n\tname=a\n").unwrap_err(),
            "truncated DHCPD leases file"
        );
        assert_eq!(
            parse("garbage\n").unwrap_err(),
            "unexpected DHCPD leases file format on line 1: garbage"
        );
    }

    #[test]
    fn candidates_stay_in_the_simulator_range() {
        for _ in 0..1000 {
            let ip = candidate();
            let o = ip.octets();
            assert_eq!(o[0], 127);
            assert!((90..=127).contains(&o[1]), "{ip}");
            assert!(o[3] != 0 && o[3] != 255);
        }
    }

    mod hostile_leases {
        //! Any lease file, however mangled, is parsed or refused, never a panic; and
        //! rendered leases parse back to themselves.
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn random_text_never_panics(text in "(\\{|\\}|[a-z_]{1,12}=[ -~]{0,20}|\\PC{0,20})(\n(\\{|\\}|[ \t]*[a-z_]{1,12}=[ -~]{0,20}|\\PC{0,20})){0,30}") {
                let _ = parse(&text);
            }

            #[test]
            fn rendered_leases_parse_back(
                entries in proptest::collection::vec((any::<[u8; 6]>(), any::<[u8; 4]>(), "[a-z0-9-]{1,12}", 0u64..u64::from(u32::MAX)), 0..8),
            ) {
                let leases: Vec<Lease> = entries
                    .iter()
                    .map(|(mac, ip, name, expiry)| Lease {
                        name: name.clone(),
                        ip: std::net::Ipv4Addr::from(*ip),
                        mac: mac.iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join(":"),
                        expiry: *expiry,
                    })
                    .collect();
                let parsed = parse(&render(&leases)).unwrap();
                prop_assert_eq!(parsed, leases);
            }
        }
    }
}
