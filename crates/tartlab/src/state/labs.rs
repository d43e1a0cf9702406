//! The labs this user has brought up on this machine (`tartlab labs`): a small index in the
//! user's data directory, one entry per lab file, written by the changing commands under a
//! lock of its own. Each entry records the lab's VMs (nodes and snapshot VMs, each with the
//! identity the state owns it by), kept up to date whenever the state's set changes, so
//! that a lab whose directory is gone can still be shown and taken down by that record
//! (`tartlab down --lab NAME`). An entry whose lab file is gone stays (and is shown as gone)
//! until `tartlab labs --forget-missing` removes it, which it does only once none of its
//! VMs remains. An index that cannot be read (cut short, not JSON) is moved aside, with a
//! warning naming both paths, never overwritten.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{read_text, write_atomic, FileAction, StateError};

/// One lab the index knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub lab: String,
    /// The lab file, absolute.
    pub file: PathBuf,
    /// When a changing command last worked on it.
    pub last_used: String,
    /// The VMs it owns, by name, with the identity it owns each by (tart: the MAC; `None`
    /// while a clone is not confirmed). Entries written before it was kept have none.
    #[serde(default)]
    pub vms: BTreeMap<String, Option<String>>,
    /// The provider its VMs are on (`orchard`); none for tart's, and in older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl Entry {
    /// Whether its VMs are local tart's, which `labs` and `down --lab` reach with no lab
    /// file (another provider is reached through the lab file's settings).
    pub fn is_local(&self) -> bool {
        self.provider.as_deref().is_none_or(|p| p == "tart")
    }
}

/// The index file and its lock.
#[derive(Debug, Clone)]
pub struct LabIndex {
    dir: PathBuf,
}

impl LabIndex {
    /// `TARTLAB_DATA_DIR`, else `~/Library/Application Support/tartlab` on macOS, else
    /// `$XDG_DATA_HOME/tartlab` or `~/.local/share/tartlab`.
    pub fn for_user() -> LabIndex {
        let home = || PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let dir = match std::env::var_os("TARTLAB_DATA_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None if cfg!(target_os = "macos") => home().join("Library/Application Support/tartlab"),
            None => std::env::var_os("XDG_DATA_HOME")
                .filter(|d| !d.is_empty())
                .map_or_else(|| home().join(".local/share"), PathBuf::from)
                .join("tartlab"),
        };
        LabIndex { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("labs.json")
    }

    /// Every lab, by lab file; and a warning when the index could not be read and was moved
    /// aside (there are then none).
    pub fn entries(&self) -> Result<(BTreeMap<PathBuf, Entry>, Option<String>), StateError> {
        match self.read() {
            Ok(entries) => Ok((entries, None)),
            // Moved aside under the lock, with an `up` that may be writing it.
            Err(Unreadable::Garbled(_)) => self
                .change(|_| {})
                .map(|warning| (BTreeMap::new(), warning)),
            Err(Unreadable::Io(e)) => Err(e),
        }
    }

    /// The index as it is, for a look only: never moved aside, empty when it cannot be read.
    pub fn peek(&self) -> BTreeMap<PathBuf, Entry> {
        self.read().unwrap_or_default()
    }

    /// Adds or refreshes the lab of this lab file, with the VMs it owns now; a warning when
    /// the index was moved aside.
    pub fn record(
        &self,
        lab: &str,
        file: &Path,
        provider: &str,
        vms: BTreeMap<String, Option<String>>,
    ) -> Result<Option<String>, StateError> {
        let file = std::path::absolute(file).map_err(StateError::CurrentDir)?;
        self.change(|entries| {
            entries.insert(
                file.clone(),
                Entry {
                    lab: lab.to_string(),
                    file: file.clone(),
                    last_used: super::now_rfc3339(),
                    vms,
                    provider: (provider != "tart").then(|| provider.to_string()),
                },
            );
        })
    }

    /// Drops these VMs from the record of the lab of `file` (`down --lab` deleted them, or
    /// found them gone or no longer the lab's).
    pub fn forget_vms(&self, file: &Path, vms: &[String]) -> Result<Option<String>, StateError> {
        self.change(|entries| {
            if let Some(entry) = entries.get_mut(file) {
                entry.vms.retain(|vm, _| !vms.contains(vm));
            }
        })
    }

    /// Removes the entries whose lab file no longer exists, except those `remaining` finds
    /// VMs of (a lab forgotten with its VMs would leave them to plain `tart`). Returns the
    /// entries forgotten, those kept with their remaining VMs, and a warning when the index
    /// was moved aside.
    pub fn forget_missing(
        &self,
        remaining: impl Fn(&Entry) -> Vec<String>,
    ) -> Result<Forgotten, StateError> {
        let mut forgotten = Forgotten::default();
        forgotten.warning = self.change(|entries| {
            entries.retain(|file, entry| {
                if file.exists() {
                    return true;
                }
                let vms = remaining(entry);
                if vms.is_empty() {
                    forgotten.gone.push(entry.clone());
                    false
                } else {
                    forgotten.kept.push((entry.clone(), vms));
                    true
                }
            });
        })?;
        Ok(forgotten)
    }

    /// The index as it is on disk (none yet: empty).
    fn read(&self) -> Result<BTreeMap<PathBuf, Entry>, Unreadable> {
        let path = self.path();
        let text = match read_text(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Unreadable::Garbled("it is not UTF-8 text".into()))
            }
            Err(error) => return Err(Unreadable::Io(StateError::IndexUnreadable { path, error })),
        };
        serde_json::from_str(&text).map_err(|e| Unreadable::Garbled(e.to_string()))
    }

    /// Moves an index that cannot be read to `labs.json.broken-TIMESTAMP` (a name not taken
    /// yet); what to tell the user.
    fn set_aside(&self, why: &str) -> Result<String, StateError> {
        let path = self.path();
        let stamp: String = super::now_rfc3339()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let mut aside = self.dir.join(format!("labs.json.broken-{stamp}"));
        let mut n = 1;
        while aside.symlink_metadata().is_ok() {
            n += 1;
            aside = self.dir.join(format!("labs.json.broken-{stamp}-{n}"));
        }
        if let Err(error) = std::fs::rename(&path, &aside) {
            return Err(StateError::IndexNotMovedAside {
                path,
                aside,
                why: why.to_string(),
                error,
            });
        }
        Ok(format!(
            "the list of labs {} could not be read ({why}); it was moved to {}, and a new list begins (the labs themselves are untouched; `tartlab up` in a lab lists it again)",
            path.display(),
            aside.display()
        ))
    }

    /// Reads, changes and writes the index under its lock (two labs' `up` at once). An
    /// index that cannot be read is moved aside first (the warning is returned), never
    /// overwritten.
    fn change(
        &self,
        edit: impl FnOnce(&mut BTreeMap<PathBuf, Entry>),
    ) -> Result<Option<String>, StateError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| StateError::file(FileAction::Make, &self.dir, e))?;
        let lock_path = self.dir.join("labs.lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| StateError::open(&lock_path, e))?;
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StateError::IndexNotLocked { path: lock_path });
        }
        let (mut entries, warning) = match self.read() {
            Ok(entries) => (entries, None),
            Err(Unreadable::Garbled(why)) => (BTreeMap::new(), Some(self.set_aside(&why)?)),
            Err(Unreadable::Io(e)) => return Err(e),
        };
        edit(&mut entries);
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| StateError::Encoding(e.to_string()))?;
        write_atomic(&self.path(), text.as_bytes(), 0o600)
            .map_err(|e| StateError::file(FileAction::Write, &self.path(), e))?;
        Ok(warning)
    }
}

/// What `forget_missing` did.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// The labs forgotten.
    pub gone: Vec<Entry>,
    /// The labs whose file is gone but not their VMs: kept, with those VMs.
    pub kept: Vec<(Entry, Vec<String>)>,
    /// Set when the index could not be read and was moved aside.
    pub warning: Option<String>,
}

/// Why the index was not read.
enum Unreadable {
    /// It is there but not an index (cut short, not JSON): moved aside.
    Garbled(String),
    /// It could not be opened or read (a link, permissions): left alone.
    Io(StateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index in a directory of its own with labs `a` and `b` recorded, their files made;
    /// the directories live as long as the first value.
    fn two_labs_recorded() -> ([tempfile::TempDir; 2], LabIndex, PathBuf, PathBuf) {
        let data = tempfile::tempdir().unwrap();
        let index = LabIndex {
            dir: data.path().join("tartlab"),
        };
        let labs = tempfile::tempdir().unwrap();
        let (one, two) = (labs.path().join("a.yaml"), labs.path().join("b.yaml"));
        std::fs::write(&one, "").unwrap();
        std::fs::write(&two, "").unwrap();
        index.record("a", &one, "tart", BTreeMap::new()).unwrap();
        let vms = BTreeMap::from([("b-vm".to_string(), Some("mac".to_string()))]);
        index.record("b", &two, "tart", vms).unwrap();
        ([data, labs], index, one, two)
    }

    #[test]
    fn labs_are_recorded_once_each_and_only_forgotten_when_asked() {
        let (_dirs, index, one, two) = two_labs_recorded();
        index.record("a", &one, "tart", BTreeMap::new()).unwrap();
        let count = || index.entries().unwrap().0.len();
        assert_eq!(count(), 2);
        std::fs::remove_file(&two).unwrap();
        assert_eq!(count(), 2, "a gone lab stays until forgotten");
        // Not while its VMs remain.
        let still = |e: &Entry| e.vms.keys().cloned().collect::<Vec<_>>();
        let kept = index.forget_missing(still).unwrap();
        assert!(kept.gone.is_empty());
        assert_eq!(kept.kept.len(), 1);
        assert_eq!(kept.kept[0].1, ["b-vm"]);
        assert_eq!(count(), 2);
        index.forget_vms(&two, &["b-vm".to_string()]).unwrap();
        let forgotten = index.forget_missing(still).unwrap();
        assert_eq!(forgotten.gone.len(), 1);
        assert_eq!(forgotten.gone[0].lab, "b");
        assert_eq!(count(), 1);
    }

    #[test]
    fn an_index_cut_short_is_moved_aside_with_a_warning_never_overwritten() {
        let (_dirs, index, one, _) = two_labs_recorded();
        let whole = std::fs::read(index.path()).unwrap();
        std::fs::write(index.path(), &whole[..whole.len() / 2]).unwrap();
        let warning = index
            .record("c", &one, "tart", BTreeMap::new())
            .unwrap()
            .expect("a warning");
        let aside: Vec<PathBuf> = std::fs::read_dir(&index.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("labs.json.broken-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), &whole[..whole.len() / 2]);
        assert!(
            warning.contains(&index.path().display().to_string()),
            "{warning}"
        );
        assert!(
            warning.contains(&aside[0].display().to_string()),
            "{warning}"
        );
        let (entries, again) = index.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert!(again.is_none());
    }
}
