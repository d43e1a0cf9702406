//! The macOS DHCP lease file (`/var/db/dhcpd_leases`), read the way `tart ip`'s default
//! resolver reads it (tart-sim writes the same format: crates/tart-sim/README.md). One read
//! every 100 ms answers every waiting node at once, where `tart ip --wait` costs a process
//! per VM and polls only once a second. Used for NAT and Softnet VMs when the file exists;
//! otherwise tartlab runs `tart ip`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// `TARTLAB_DHCP_LEASES`, else macOS's bootpd file.
pub fn lease_file() -> PathBuf {
    match std::env::var_os("TARTLAB_DHCP_LEASES") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/var/db/dhcpd_leases"),
    }
}

/// `9:a:...` as `09:0a:...`; `None` if it is not a MAC.
pub fn normalize_mac(text: &str) -> Option<String> {
    let octets: Vec<&str> = text.split(':').collect();
    if octets.len() != 6 {
        return None;
    }
    let mut mac = Vec::new();
    for octet in octets {
        if octet.is_empty() || octet.len() > 2 {
            return None;
        }
        mac.push(format!("{:02x}", u8::from_str_radix(octet, 16).ok()?));
    }
    Some(mac.join(":"))
}

/// The live address per MAC: blocks of `key=value` lines between `{` and `}`; Ethernet
/// (`hw_address=1,...`) only; expired leases dropped; the later expiry wins. A file that
/// does not parse gives no addresses (and tartlab keeps waiting).
pub fn parse(text: &str, now: u64) -> HashMap<String, Ipv4Addr> {
    live(text, now)
        .unwrap_or_default()
        .into_iter()
        .map(|(mac, (_, ip))| (mac, ip))
        .collect()
}

/// The live leases per MAC, with their expiry (seconds since the epoch); `None` when the
/// file does not parse.
pub fn live(text: &str, now: u64) -> Option<HashMap<String, (u64, Ipv4Addr)>> {
    let mut best: HashMap<String, (u64, Ipv4Addr)> = HashMap::new();
    let mut block: Option<HashMap<&str, &str>> = None;
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']).trim_end();
        match (line, block.as_mut()) {
            ("", _) => {}
            ("{", None) => block = Some(HashMap::new()),
            ("}", Some(fields)) => {
                let lease = (|| {
                    let (kind, mac) = fields.get("hw_address")?.split_once(',')?;
                    let ip: Ipv4Addr = fields.get("ip_address")?.parse().ok()?;
                    let expiry =
                        u64::from_str_radix(fields.get("lease")?.trim_start_matches("0x"), 16)
                            .ok()?;
                    (kind == "1" && expiry > now).then_some((normalize_mac(mac)?, expiry, ip))
                })();
                if let Some((mac, expiry, ip)) = lease {
                    // The later expiry wins; of two alike, the later in the file, as in
                    // tart's own reader (Leases.swift), where the last one always wins.
                    if best.get(&mac).is_none_or(|(e, _)| *e <= expiry) {
                        best.insert(mac, (expiry, ip));
                    }
                }
                block = None;
            }
            (_, Some(fields)) => {
                let (k, v) = line.split_once('=')?;
                fields.insert(k, v);
            }
            _ => return None,
        }
    }
    Some(best)
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the lease file every 100 ms while the runtime lives, for every waiting node.
#[derive(Clone)]
pub struct LeaseWatcher {
    rx: watch::Receiver<Arc<HashMap<String, Ipv4Addr>>>,
}

impl LeaseWatcher {
    /// A watcher of `TARTLAB_DHCP_LEASES` (even before the file appears), else of
    /// `/var/db/dhcpd_leases` if it exists (macOS's DHCP server has run on this machine).
    pub fn from_env() -> Option<LeaseWatcher> {
        let explicit = std::env::var_os("TARTLAB_DHCP_LEASES").is_some_and(|p| !p.is_empty());
        let path = lease_file();
        (explicit || path.is_file()).then(|| LeaseWatcher::start(&path))
    }

    fn start(path: &Path) -> LeaseWatcher {
        let (tx, rx) = watch::channel(Arc::new(HashMap::new()));
        let path = path.to_path_buf();
        tokio::spawn(async move {
            loop {
                if let Ok(text) = tokio::fs::read_to_string(&path).await {
                    let leases = parse(&text, now_secs());
                    if **tx.borrow() != leases && tx.send(Arc::new(leases)).is_err() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        LeaseWatcher { rx }
    }

    /// The address leased to `mac`, as soon as there is one (or `None` after `timeout`).
    pub async fn address(&self, mac: &str, timeout: Duration) -> Option<Ipv4Addr> {
        let mut rx = self.rx.clone();
        let found =
            tokio::time::timeout(timeout, rx.wait_for(|leases| leases.contains_key(mac))).await;
        match found {
            Ok(Ok(leases)) => leases.get(mac).copied(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = "{\n\tname=dev-master\n\tip_address=192.168.64.3\n\thw_address=1,7e:1c:f2:4a:78:3\n\tidentifier=1,7e:1c:f2:4a:78:3\n\tlease=0x700000000\n}\n{\n\tname=old\n\tip_address=192.168.64.9\n\thw_address=1,7e:1c:f2:4a:78:03\n\tlease=0x10\n}\n{\n\tname=duid\n\tip_address=192.168.64.4\n\thw_address=ff,0:1:2:3:4:5\n\tlease=0x700000000\n}\n";

    #[test]
    fn live_ethernet_leases_are_found_by_normalized_mac() {
        let leases = parse(FILE, 1_000_000);
        assert_eq!(
            leases.get("7e:1c:f2:4a:78:03"),
            Some(&"192.168.64.3".parse().unwrap())
        );
        assert_eq!(
            leases.len(),
            1,
            "the expired and the non-Ethernet leases are dropped"
        );
        assert!(parse("{\nbroken\n}\n", 0).is_empty());
        assert!(parse("}\n", 0).is_empty());
    }

    fn lease(ip: &str, mac: &str, expiry: u64) -> String {
        format!(
            "{{\n\tname=vm\n\tip_address={ip}\n\thw_address=1,{mac}\n\tlease=0x{expiry:x}\n}}\n"
        )
    }

    #[test]
    fn of_two_live_leases_of_one_mac_the_later_expiry_wins_in_either_order() {
        let early = lease("192.168.64.3", "a:b:c:d:e:f", 2_000);
        let late = lease("192.168.64.5", "a:b:c:d:e:f", 3_000);
        for text in [format!("{early}{late}"), format!("{late}{early}")] {
            let leases = parse(&text, 1_000);
            assert_eq!(
                leases.get("0a:0b:0c:0d:0e:0f"),
                Some(&"192.168.64.5".parse().unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn of_two_leases_of_one_mac_with_one_expiry_the_later_in_the_file_wins() {
        let first = lease("192.168.64.3", "a:b:c:d:e:f", 2_000);
        let second = lease("192.168.64.5", "a:b:c:d:e:f", 2_000);
        let leases = parse(&format!("{first}{second}"), 1_000);
        assert_eq!(
            leases.get("0a:0b:0c:0d:0e:0f"),
            Some(&"192.168.64.5".parse().unwrap())
        );
    }

    #[test]
    fn a_lease_is_live_until_it_expires_not_at_its_expiry() {
        let text = lease("192.168.64.3", "a:b:c:d:e:f", 1_000);
        assert_eq!(parse(&text, 999).len(), 1);
        assert!(parse(&text, 1_000).is_empty(), "expiring now is expired");
        // The clock the watcher reads is the real one: a lease of 1970 is long gone.
        assert!(now_secs() > 1_700_000_000);
        assert!(parse(&text, now_secs()).is_empty());
    }

    #[test]
    fn blank_lines_between_blocks_are_nothing_and_bad_octets_are_no_mac() {
        let text = format!(
            "\n{}\n\n{}\n",
            lease("192.168.64.3", "1:2:3:4:5:6", 5_000),
            lease("192.168.64.4", "1:2:3:4:5:7", 5_000)
        );
        assert_eq!(parse(&text, 1).len(), 2);
        assert_eq!(normalize_mac("0ab:1:2:3:4:5"), None, "three digits");
        assert_eq!(normalize_mac("1:2:3:4:5"), None, "five octets");
        assert_eq!(normalize_mac("1:2:3:4:5:g"), None, "not hex");
        assert_eq!(normalize_mac("1::3:4:5:6"), None, "empty octet");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_text_is_parsed_or_ignored_never_a_panic(text in "(\\{|\\}|[a-z_]{1,12}=[ -~]{0,24}|\\PC{0,20})(\n(\\{|\\}|[ \t]*[a-z_]{1,12}=[ -~]{0,24}|\\PC{0,20})){0,30}") {
            let _ = parse(&text, 0);
        }

        #[test]
        fn macs_normalize_to_two_digit_octets(octets in any::<[u8; 6]>()) {
            let short = octets.iter().map(|o| format!("{o:x}")).collect::<Vec<_>>().join(":");
            let long = octets.iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join(":");
            prop_assert_eq!(normalize_mac(&short), Some(long));
        }
    }
}
