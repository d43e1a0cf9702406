//! `.tartlab/` beside the lab file: what the lab owns (`state.json`, here), the directory
//! itself with the lab lock and the lab key (`dir.rs`), and the pinned host keys
//! (`known_hosts.rs`). Every write is atomic (temp file, fsync, rename), so a crash at any
//! moment leaves either the old or the new file, never half of one.

mod dir;
mod error;
mod known_hosts;
mod labs;
mod snapshots;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use crate::clock::now_rfc3339;
pub use crate::files::{
    describe_error, open_append, open_nofollow, random_u64, read_tail, read_text, write_atomic,
};
use crate::lab::model::Placement;
use crate::lab::NetworkMode;
pub use dir::{LabLock, LockShare, StateDir};
pub use error::{FileAction, StateError};
pub use known_hosts::KnownHosts;
pub use labs::{Entry as LabEntry, Forgotten, LabIndex};
pub use snapshots::{Journal, JournalOp, Snapshot, SnapshotNode};

pub const STATE_VERSION: u32 = 1;

/// A VM this lab created (or adopted). The MAC is what proves a VM of that name is still
/// ours: `None` means the clone was intended but not yet confirmed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnedVm {
    pub mac: Option<String>,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub disk: Option<u32>,
    pub network: NetworkMode,
    #[serde(default)]
    pub ip: Option<String>,
    /// What was applied on the guest: part name -> hash of its inputs.
    #[serde(default)]
    pub applied: BTreeMap<String, String>,
    /// Values its steps printed as `tartlab-output KEY=VALUE`.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// How the last `up` (or `start`, `restart`) that worked on it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_up: Option<LastUp>,
    /// Where it was placed, for a provider that places VMs by it (Orchard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// A boot was begun (set before the VM is started) and the VM was not yet seen ready
    /// (sshd answering): a command cut short in between leaves it set, and the next `up`
    /// waits for the guest instead of taking the running VM as converged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub boot_unconfirmed: bool,
    /// The host folders its running VM was started with (`tart run --dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::lab::mounts::Mount>,
}

/// How a command that brought a VM up ended for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastUp {
    pub result: UpResult,
    /// The stage it failed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub at: String,
}

/// Whether that command left the VM up; `"ok"` or `"failed"` in `state.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpResult {
    Ok,
    Failed,
}

impl UpResult {
    /// The word `state.json` and `status` use.
    pub fn word(self) -> &'static str {
        match self {
            UpResult::Ok => "ok",
            UpResult::Failed => "failed",
        }
    }
}

impl LastUp {
    /// `ok`, or `failed at STAGE`.
    pub fn text(&self) -> String {
        match &self.stage {
            Some(stage) => format!("{} at {stage}", self.result.word()),
            None => self.result.word().to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub lab: String,
    /// The name of the lab file it belongs to, in its directory (`tartlab.yaml`): what tells
    /// a renamed `lab:` (the same file) from another lab file in the same directory.
    /// States written before it was kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_file: Option<String>,
    #[serde(default)]
    pub vms: BTreeMap<String, OwnedVm>,
    /// Whole-lab snapshots by name (`tartlab snapshot`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<String, Snapshot>,
    /// A snapshot save or restore under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Journal>,
    /// `up` has said once that some VMs keep the names an older tartlab gave them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_names_noted: bool,
}

impl State {
    /// Every VM the lab owns, by name, with the identity it owns it by: its nodes and its
    /// snapshots' VMs (a replaced snapshot's too, while a `save --force` is under way). What
    /// the list of labs records of it.
    pub fn owned_vms(&self) -> BTreeMap<String, Option<String>> {
        let mut owned: BTreeMap<String, Option<String>> = self
            .vms
            .iter()
            .map(|(vm, owned)| (vm.clone(), owned.mac.clone()))
            .collect();
        let replaced = self.journal.as_ref().and_then(|j| j.replaces.as_ref());
        for snapshot in self.snapshots.values().chain(replaced) {
            for node in snapshot.nodes.values() {
                owned.insert(node.vm.clone(), node.identity.clone());
            }
        }
        owned
    }

    /// The state of a lab that has never been brought up.
    pub fn empty(lab: &str) -> State {
        State {
            version: STATE_VERSION,
            lab: lab.to_string(),
            lab_file: None,
            vms: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            journal: None,
            kept_names_noted: false,
        }
    }

    /// Whether the lab knows a VM by this name: one it owns, or a node of one of its
    /// snapshots (which a restore brings back under that name).
    pub fn knows(&self, vm: &str) -> bool {
        self.vms.contains_key(vm) || self.snapshots.values().any(|s| s.nodes.contains_key(vm))
    }
}

/// The state file shared by every node's task: each change is saved at once. A change to
/// the set of VMs the lab owns is also written to the list of labs, when it keeps one.
#[derive(Clone)]
pub struct StateStore {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    listed: Option<Arc<Listed>>,
}

/// Where the lab is in the list of labs.
struct Listed {
    index: LabIndex,
    lab: String,
    file: PathBuf,
    provider: &'static str,
}

impl StateStore {
    pub fn new(dir: &StateDir, state: State) -> StateStore {
        StateStore {
            path: dir.state_path(),
            state: Arc::new(Mutex::new(state)),
            listed: None,
        }
    }

    /// Keeps the lab's VMs in `index` (if any) as lab `lab` of lab file `file`, on
    /// `provider`.
    pub fn listed_in(
        mut self,
        index: Option<LabIndex>,
        lab: &str,
        file: &std::path::Path,
        provider: &'static str,
    ) -> StateStore {
        self.listed = index.map(|index| {
            Arc::new(Listed {
                index,
                lab: lab.to_string(),
                file: file.to_path_buf(),
                provider,
            })
        });
        self
    }

    pub fn snapshot(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn vm(&self, name: &str) -> Option<OwnedVm> {
        self.state.lock().ok()?.vms.get(name).cloned()
    }

    /// Changes the state and writes it before returning.
    pub fn update(&self, change: impl FnOnce(&mut State)) -> Result<(), StateError> {
        let mut state = self.state.lock().map_err(|_| StateError::Poisoned)?;
        let owned = self.listed.as_ref().map(|_| state.owned_vms());
        change(&mut state);
        let text = serde_json::to_string_pretty(&*state)
            .map_err(|e| StateError::Encoding(e.to_string()))?;
        write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| StateError::file(FileAction::Write, &self.path, e))?;
        if let (Some(listed), Some(before)) = (&self.listed, owned) {
            let now = state.owned_vms();
            if now != before {
                // Under the state's lock, so the list sees the changes in their order. A
                // convenience, never a reason to stop: `up` and `down` record it again.
                let _ = listed
                    .index
                    .record(&listed.lab, &listed.file, listed.provider, now);
            }
        }
        Ok(())
    }

    pub fn update_vm(
        &self,
        name: &str,
        change: impl FnOnce(&mut OwnedVm),
    ) -> Result<(), StateError> {
        self.update(|s| {
            if let Some(vm) = s.vms.get_mut(name) {
                change(vm);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_up_reads_and_writes_the_words_state_json_has_always_held() {
        let failed = r#"{"result":"failed","stage":"base","at":"2025-01-01T00:00:00Z"}"#;
        let last: LastUp = serde_json::from_str(failed).unwrap();
        assert_eq!(last.result, UpResult::Failed);
        assert_eq!(last.text(), "failed at base");
        assert_eq!(serde_json::to_string(&last).unwrap(), failed);

        let ok = r#"{"result":"ok","at":"2025-01-01T00:00:00Z"}"#;
        let last: LastUp = serde_json::from_str(ok).unwrap();
        assert_eq!(last.result, UpResult::Ok);
        assert_eq!(last.text(), "ok");
        assert_eq!(serde_json::to_string(&last).unwrap(), ok);
    }

    #[test]
    fn a_vm_recorded_before_boots_were_tracked_reads_as_seen_ready() {
        // A VM as an older tartlab wrote it: no such field.
        let older = serde_json::to_string(&OwnedVm::default()).unwrap();
        assert!(!older.contains("boot_unconfirmed"), "{older}");
        let vm: OwnedVm = serde_json::from_str(&older).unwrap();
        assert!(!vm.boot_unconfirmed);
        let cut_short = OwnedVm {
            boot_unconfirmed: true,
            ..vm
        };
        let text = serde_json::to_string(&cut_short).unwrap();
        assert!(
            serde_json::from_str::<OwnedVm>(&text)
                .unwrap()
                .boot_unconfirmed
        );
    }
}
