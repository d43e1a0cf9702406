//! Test knobs: timings and per-VM faults, from the environment and from
//! `$TART_HOME/sim/faults` (read at each use, so a test can change them between runs).
//! Every knob is documented in the crate's README.

use std::fs;
use std::time::Duration;

use crate::storage::Home;

fn env_ms(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Time from `tart run` to the guest's DHCP lease and sshd (`TART_SIM_BOOT_MS`, 3000).
pub fn boot_delay(faults: &Faults) -> Duration {
    Duration::from_millis(
        faults
            .boot_ms
            .unwrap_or_else(|| env_ms("TART_SIM_BOOT_MS", 3000)),
    )
}

/// Time from `tart run` to the "running" lock (`TART_SIM_LOCK_MS`, 300).
pub fn lock_delay() -> Duration {
    Duration::from_millis(env_ms("TART_SIM_LOCK_MS", 300))
}

/// Time a `pull` takes to "download" (`TART_SIM_PULL_MS`, 1000).
pub fn pull_duration() -> Duration {
    Duration::from_millis(env_ms("TART_SIM_PULL_MS", 1000))
}

/// The faults that apply to one VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// `run-fails`: `tart run` exits 1 with a Virtualization.framework error at start.
    pub run_fails: bool,
    /// `no-lease`: the guest never gets a DHCP lease (and so no network).
    pub no_lease: bool,
    /// `no-sshd`: the guest gets its lease but sshd never starts.
    pub no_sshd: bool,
    /// `sshd-delay-ms=N`: sshd starts N ms after the lease.
    pub sshd_delay_ms: u64,
    /// `die-after-ms=N`: the VM crashes N ms after `tart run` started.
    pub die_after_ms: Option<u64>,
    /// `boot-ms=N`: this VM's boot delay.
    pub boot_ms: Option<u64>,
    /// `sshd-keys-at-start`: sshd serves copies of the host keys made when it starts and a
    /// reload does nothing, so only a restart serves new ones (systemd guests).
    pub sshd_keys_at_start: bool,
    /// `sshd-fixed-keys`: sshd serves copies of the host keys made at boot, whatever is done
    /// to it (light guests).
    pub sshd_fixed_keys: bool,
    /// `sshd-reload-fails`: `systemctl reload ssh` fails (its control process exits 1)
    /// (systemd guests).
    pub sshd_reload_fails: bool,
}

impl Faults {
    /// How the guest's sshd is started, for these faults.
    pub fn sshd_quirk(&self) -> &'static str {
        match (
            self.sshd_fixed_keys,
            self.sshd_keys_at_start,
            self.sshd_reload_fails,
        ) {
            (true, _, _) => "fixed-keys",
            (false, true, _) => "keys-at-start",
            (false, false, true) => "reload-fails",
            _ => "none",
        }
    }
}

impl Faults {
    /// Faults for `vm`: lines `VM FAULT[=VALUE]` in `$TART_HOME/sim/faults`, and entries
    /// `VM:FAULT[=VALUE]` separated by `,` or `;` in `TART_SIM_FAULTS`. `*` matches every VM.
    pub fn for_vm(home: &Home, vm: &str) -> Faults {
        let mut faults = Faults::default();
        let file = fs::read_to_string(home.sim_dir().join("faults")).unwrap_or_default();
        let from_file = file
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(char::is_whitespace))
            .map(|(v, f)| (v.to_string(), f.trim().to_string()));
        let env = std::env::var("TART_SIM_FAULTS").unwrap_or_default();
        let from_env = env
            .split([',', ';'])
            .map(str::trim)
            .filter_map(|e| e.split_once(':'))
            .map(|(v, f)| (v.to_string(), f.to_string()));
        for (target, fault) in from_file.chain(from_env) {
            if target == vm || target == "*" {
                faults.apply(&fault);
            }
        }
        faults
    }

    fn apply(&mut self, fault: &str) {
        let (name, value) = match fault.split_once('=') {
            Some((n, v)) => (n, v.trim().parse::<u64>().ok()),
            None => (fault, None),
        };
        match name {
            "run-fails" => self.run_fails = true,
            "no-lease" => self.no_lease = true,
            "no-sshd" => self.no_sshd = true,
            "sshd-delay-ms" => self.sshd_delay_ms = value.unwrap_or(0),
            "die-after-ms" => self.die_after_ms = value,
            "boot-ms" => self.boot_ms = value,
            "sshd-keys-at-start" => self.sshd_keys_at_start = true,
            "sshd-reload-fails" => self.sshd_reload_fails = true,
            "sshd-fixed-keys" => self.sshd_fixed_keys = true,
            other => eprintln!("tart-sim: ignoring unknown fault '{other}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_values() {
        let mut f = Faults::default();
        f.apply("die-after-ms=1500");
        f.apply("no-sshd");
        assert_eq!(f.die_after_ms, Some(1500));
        assert!(f.no_sshd);
    }
}
