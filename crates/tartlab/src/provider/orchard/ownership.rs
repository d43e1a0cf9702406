//! Which Orchard VMs are the lab's. A VM's `uid` is its identity, new on every create, so a
//! VM of a lab node's name is the lab's only when its uid is one the lab recorded: the
//! engine's state records it once the create has finished (`mac` in `state.json`), and this
//! provider records it the moment the controller answers the POST, before the long wait
//! for the VM to run (`.tartlab/orchard-uids.json`, `{"NAME": "UID"}`), so that a create cut
//! off in that wait leaves the proof behind for the next `up` or `down`.
//!
//! A create cut off before the controller answered leaves no uid: a VM of that name then
//! cannot be told from someone else's, and is left alone (never taken on a 409, never
//! deleted). Orchard has no free-form mark a create could set instead (its `labels` are
//! scheduling constraints a worker must match), so there is no nonce to prove it either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::files::{read_text, write_atomic};
use crate::state::{State, StateDir};

/// The uids a lab's creates got back, and the one its state records.
pub struct Ownership {
    state_dir: StateDir,
    /// One change to the file at a time (the nodes of one `up` are created in parallel; two
    /// commands on one lab are kept apart by the lab lock).
    writing: Mutex<()>,
}

impl Ownership {
    /// The records of the lab whose file is in `lab_dir`.
    pub fn beside(lab_dir: &Path) -> Ownership {
        Ownership {
            state_dir: StateDir {
                root: lab_dir.join(".tartlab"),
            },
            writing: Mutex::new(()),
        }
    }

    fn path(&self) -> PathBuf {
        self.state_dir.root.join("orchard-uids.json")
    }

    /// What the file records; nothing when it is missing or cannot be read (then no VM is
    /// proven the lab's by it: the safe side).
    fn read(&self) -> BTreeMap<String, String> {
        read_text(&self.path())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    fn change(&self, change: impl FnOnce(&mut BTreeMap<String, String>)) -> std::io::Result<()> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut uids = self.read();
        change(&mut uids);
        let text = serde_json::to_string_pretty(&uids).map_err(std::io::Error::other)?;
        write_atomic(&self.path(), text.as_bytes(), 0o600)
    }

    /// Records the uid the controller gave a create of `vm`, before anything waits on it;
    /// why not, in words, when the file cannot be written.
    pub fn record(&self, vm: &str, uid: &str) -> Result<(), String> {
        self.change(|uids| {
            uids.insert(vm.to_string(), uid.to_string());
        })
        .map_err(|e| format!("cannot write {}: {e}", self.path().display()))
    }

    /// The uid the last create of `vm` got back, if it was recorded.
    pub fn recorded(&self, vm: &str) -> Option<String> {
        self.read().remove(vm)
    }

    /// The uid that makes a VM named `vm` the lab's: the one its state records (a finished
    /// create, or an adopted VM), else the one its last create got back.
    pub fn lab_uid(&self, vm: &str) -> Option<String> {
        let state = read_text(&self.state_dir.state_path())
            .ok()
            .and_then(|text| serde_json::from_str::<State>(&text).ok());
        state
            .and_then(|s| s.vms.get(vm).and_then(|o| o.mac.clone()))
            .or_else(|| self.recorded(vm))
    }

    /// Forgets `vm`'s uid once its VM is gone (a file left as it was only keeps a uid no VM
    /// has any more).
    pub fn forget(&self, vm: &str) {
        let _ = self.change(|uids| {
            uids.remove(vm);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_s_uid_comes_first_then_the_create_s_and_a_forgotten_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".tartlab")).unwrap();
        let ownership = Ownership::beside(dir.path());
        assert_eq!(ownership.lab_uid("a"), None);
        ownership.record("a", "uid-posted").unwrap();
        ownership.record("b", "uid-b").unwrap();
        assert_eq!(ownership.lab_uid("a").as_deref(), Some("uid-posted"));
        let mut state = State::empty("lab");
        state.vms.insert(
            "a".into(),
            crate::state::OwnedVm {
                mac: Some("uid-adopted".into()),
                ..Default::default()
            },
        );
        std::fs::write(
            dir.path().join(".tartlab/state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        assert_eq!(ownership.lab_uid("a").as_deref(), Some("uid-adopted"));
        assert_eq!(ownership.recorded("a").as_deref(), Some("uid-posted"));
        ownership.forget("b");
        assert_eq!(ownership.lab_uid("b"), None);
    }
}
