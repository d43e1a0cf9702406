//! What `tartlab doctor` checks of tart and its host: tart itself and its version, the `tart
//! run` options the lab's networks need, Softnet's set-up, `TART_HOME` (writable, free
//! space), the lab's images in the cache, and the DHCP lease file (readable, how full its
//! pool is, how long its leases last). On Linux the same checks run against tart-sim.

use std::collections::BTreeSet;

use super::cli::MINIMUM_VERSION;
use super::network::{run_flags, softnet_ready};
use super::{leases, TartProvider};
use crate::doctor::{free_bytes, writable, Check};
use crate::lab::{Lab, NetworkMode};
use crate::provider::Inventory;

/// Addresses bootpd hands out on its /24 (`.2` to `.254`).
const POOL: usize = 253;
/// tart's FAQ fix for leases that outlive the VMs of labs that come and go.
const LEASE_FIX: &str = "sudo defaults write /Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist bootpd -dict DHCPLeaseTimeSecs -int 600";

impl TartProvider {
    /// Every check of tart and its host, for a lab (its networks and images) if there is one.
    pub(super) async fn checks(
        &self,
        lab: Option<&Lab>,
        inventory: Option<&Inventory>,
    ) -> Vec<Check> {
        let mut checks = vec![Check::ok(
            "tart",
            format!("{}", self.tart.program.display()),
        )];
        match self.tart.version().await {
            Ok((major, minor, patch)) if (major, minor) >= MINIMUM_VERSION => {
                checks.push(Check::ok(
                    "tart version",
                    format!("{major}.{minor}.{patch}"),
                ));
            }
            Ok((major, minor, patch)) => checks.push(Check::failed(
                "tart version",
                format!(
                    "{major}.{minor}.{patch}; tartlab needs {}.{} or newer",
                    MINIMUM_VERSION.0, MINIMUM_VERSION.1
                ),
                "brew upgrade cirruslabs/cli/tart",
            )),
            Err(e) => {
                checks.push(Check::failed(
                    "tart version",
                    format!("`tart --version` failed: {e}"),
                    "check the tart installation (`brew reinstall cirruslabs/cli/tart`)",
                ));
                return checks;
            }
        }
        let modes: Vec<NetworkMode> = match lab {
            Some(lab) => lab.nodes.iter().map(|n| n.network.clone()).collect(),
            None => vec![NetworkMode::default()],
        };
        checks.push(self.run_options_check(&modes).await);
        if modes.iter().any(NetworkMode::uses_softnet) {
            checks.push(match softnet_ready() {
                Ok(()) => Check::ok("softnet", "runs as root, as tart needs it to"),
                Err(e) => {
                    let fix = e.fix.map_or(e.hint, |words| {
                        format!("sudo {}", crate::quote::command(&words))
                    });
                    Check::failed("softnet", e.message, fix)
                }
            });
        }
        checks.push(self.home_check());
        if let (Some(lab), Some(inventory)) = (lab, inventory) {
            checks.push(images_check(lab, inventory));
        }
        checks.extend(lease_checks());
        checks
    }

    async fn run_options_check(&self, modes: &[NetworkMode]) -> Check {
        let options = match self.tart.run_options().await {
            Ok(options) => options,
            Err(e) => {
                return Check::failed(
                    "tart run options",
                    format!("`tart run --help` failed: {e}"),
                    "check the tart installation",
                )
            }
        };
        let needed: BTreeSet<String> = modes
            .iter()
            .flat_map(run_flags)
            .filter(|f| f.starts_with("--"))
            .map(|f| f.split('=').next().unwrap_or(&f).to_string())
            .chain(["--no-graphics".to_string()])
            .collect();
        let missing: Vec<&String> = needed.iter().filter(|f| !options.contains(*f)).collect();
        if missing.is_empty() {
            let shown: Vec<&str> = needed.iter().map(String::as_str).collect();
            Check::ok("tart run options", shown.join(" "))
        } else {
            let shown: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            Check::failed(
                "tart run options",
                format!("`tart run` has no {}", shown.join(", ")),
                "brew upgrade cirruslabs/cli/tart, or choose another network mode",
            )
        }
    }

    fn home_check(&self) -> Check {
        let home = &self.tart.home;
        let name = "TART_HOME";
        if home.exists() {
            if let Err(e) = writable(home) {
                return Check::failed(
                    name,
                    format!("{} is not writable: {e}", home.display()),
                    format!("make it yours: sudo chown -R $(id -un) {}", home.display()),
                );
            }
        }
        let Some(free) = free_bytes(home) else {
            return Check::warning(name, format!("{}: free space unknown", home.display()), "");
        };
        let gb = free / 1_000_000_000;
        let detail = format!("{}, {gb} GB free", home.display());
        match gb {
            0..=4 => Check::failed(
                name,
                detail,
                "free some space: `tart prune --entries caches`, or delete VMs you no longer need",
            ),
            5..=29 => Check::warning(
                name,
                detail,
                "an image takes 20 to 50 GB: `tart prune --entries caches` frees the cache",
            ),
            _ => Check::ok(name, detail),
        }
    }
}

fn images_check(lab: &Lab, inventory: &Inventory) -> Check {
    let images: BTreeSet<&str> = lab.nodes.iter().map(|n| n.image.as_str()).collect();
    let missing: Vec<&str> = images
        .iter()
        .copied()
        .filter(|i| !inventory.images.contains_key(*i) && !inventory.vms.contains_key(*i))
        .collect();
    if missing.is_empty() {
        let shown: Vec<&str> = images.into_iter().collect();
        Check::ok("images", format!("cached: {}", shown.join(", ")))
    } else {
        Check::warning(
            "images",
            format!("not cached: {}", missing.join(", ")),
            format!(
                "the first `tartlab up` pulls them (minutes); `tart pull {}` does it now",
                missing[0]
            ),
        )
    }
}

/// The DHCP lease file: readable, its pool not nearly full, its leases not a day long.
fn lease_checks() -> Vec<Check> {
    let path = leases::lease_file();
    let name = "DHCP leases";
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![Check::ok(
                name,
                format!("{} not there yet (no VM has run on NAT)", path.display()),
            )]
        }
        Err(e) => {
            return vec![Check::warning(
                name,
                format!("cannot read {}: {e}", path.display()),
                "tartlab then asks `tart ip` for each address (slower): make it readable (sudo chmod 644 it)",
            )]
        }
        Ok(text) => text,
    };
    let now = leases::now_secs();
    let Some(live) = leases::live(&text, now) else {
        return vec![Check::warning(
            name,
            format!("{} does not parse as a bootpd lease file", path.display()),
            format!(
                "with no VM running, `sudo rm {}` (bootpd makes it again)",
                path.display()
            ),
        )];
    };
    let used: BTreeSet<_> = live.values().map(|(_, ip)| *ip).collect();
    let detail = format!(
        "{}: {} of {POOL} addresses leased",
        path.display(),
        used.len()
    );
    let pool = match used.len() {
        n if n >= POOL => Check::failed(
            name,
            detail,
            format!("no address is left for a new VM: lower the lease time ({LEASE_FIX}); with no VM running, `sudo rm {}` frees every address", path.display()),
        ),
        n if n * 5 >= POOL * 4 => Check::warning(
            name,
            detail,
            format!("the pool is nearly full; leases of deleted VMs hold addresses until they expire: {LEASE_FIX}"),
        ),
        _ => Check::ok(name, detail),
    };
    let longest = live
        .values()
        .map(|(expiry, _)| expiry - now)
        .max()
        .unwrap_or(0);
    let time = if longest > 2 * 3600 {
        Check::warning(
            "DHCP lease time",
            format!("leases last about {} h", longest.div_ceil(3600)),
            format!("labs that come and go use up the pool: {LEASE_FIX}"),
        )
    } else {
        Check::ok(
            "DHCP lease time",
            if longest == 0 {
                "no live lease".to_string()
            } else {
                format!("at most {} min left on a lease", longest.div_ceil(60))
            },
        )
    };
    vec![pool, time]
}
