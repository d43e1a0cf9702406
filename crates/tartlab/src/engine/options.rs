//! What the user asked a changing command to do (`Options`), and how long each waiting stage
//! may take (`Timeouts`, from `TARTLAB_*_TIMEOUT`).

use std::time::Duration;

/// Whether `up` provisions what it brings up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    Full,
    /// `--no-provision`: create and boot, stop at the address; no SSH at all.
    Skip,
}

/// Which steps run even when their inputs are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reprovision {
    /// Only changed steps run.
    Changed,
    /// `--reprovision`: every step.
    All,
    /// `--reprovision=STEP`.
    Step(String),
}

impl Reprovision {
    pub fn forces(&self, step: &str) -> bool {
        match self {
            Reprovision::Changed => false,
            Reprovision::All => true,
            Reprovision::Step(name) => name == step,
        }
    }
}

/// What the user asked `up` (or `start`, `stop`, `down`) to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many nodes are cloned, or logged into and provisioned, at once.
    pub parallel: usize,
    /// `--adopt`: take over VMs with the lab's names that the lab did not create.
    pub adopt: bool,
    /// `--recreate`: replace VMs whose image changed.
    pub recreate: bool,
    pub provision: Provisioning,
    /// `up` creates missing VMs; `start` does not.
    pub create_missing: bool,
    pub reprovision: Reprovision,
    /// `--remove-orphans`: delete the lab's VMs that the lab file no longer declares.
    pub remove_orphans: bool,
}

impl Options {
    /// `up` as `tartlab up` with no flags does it.
    pub fn up() -> Options {
        Options {
            parallel: 16,
            adopt: false,
            recreate: false,
            provision: Provisioning::Full,
            create_missing: true,
            reprovision: Reprovision::Changed,
            remove_orphans: false,
        }
    }

    /// For `stop` and `down`: nothing is created or provisioned.
    pub fn teardown(parallel: usize) -> Options {
        Options {
            parallel,
            provision: Provisioning::Skip,
            create_missing: false,
            ..Options::up()
        }
    }
}

/// How long each waiting stage may take (`TARTLAB_*_TIMEOUT` override the defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub ip: Duration,
    pub ssh: Duration,
    pub stop: Duration,
    /// Making a VM (`tart clone` of a cached image, `tart set`).
    pub create: Duration,
    /// One remote command: the base, a file, a step, a probe.
    pub command: Duration,
}

impl Timeouts {
    pub fn from_env() -> Timeouts {
        let secs = |name: &str, default: u64| {
            Duration::from_secs(
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(default),
            )
        };
        Timeouts {
            ip: secs("TARTLAB_IP_TIMEOUT", 180),
            ssh: secs("TARTLAB_SSH_TIMEOUT", 120),
            stop: secs("TARTLAB_STOP_TIMEOUT", 60),
            create: secs("TARTLAB_CREATE_TIMEOUT", 600),
            command: secs("TARTLAB_COMMAND_TIMEOUT", 1800),
        }
    }
}
