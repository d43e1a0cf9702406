//! The labs this user has brought up on this machine (`tartlab labs`): a small index in the
//! user's data directory, one entry per lab file, written by `up`, `start`, `restart` and
//! `down` under a lock of its own. An entry whose lab file is gone stays (and is shown as
//! gone) until `tartlab labs --forget-missing` removes it.

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
}

/// The index file and its lock.
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

    /// Every lab, by lab file.
    pub fn entries(&self) -> BTreeMap<PathBuf, Entry> {
        read_text(&self.path())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Adds or refreshes the lab of this lab file.
    pub fn record(&self, lab: &str, file: &Path) -> Result<(), StateError> {
        let file = std::path::absolute(file).map_err(StateError::CurrentDir)?;
        self.change(|entries| {
            entries.insert(
                file.clone(),
                Entry {
                    lab: lab.to_string(),
                    file: file.clone(),
                    last_used: super::now_rfc3339(),
                },
            );
        })
    }

    /// Removes the entries whose lab file no longer exists; returns them.
    pub fn forget_missing(&self) -> Result<Vec<Entry>, StateError> {
        let mut gone = Vec::new();
        self.change(|entries| {
            entries.retain(|file, entry| {
                let keep = file.exists();
                if !keep {
                    gone.push(entry.clone());
                }
                keep
            });
        })?;
        Ok(gone)
    }

    /// Reads, changes and writes the index under its lock (two labs' `up` at once).
    fn change(&self, edit: impl FnOnce(&mut BTreeMap<PathBuf, Entry>)) -> Result<(), StateError> {
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
        let mut entries = self.entries();
        edit(&mut entries);
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|e| StateError::Encoding(e.to_string()))?;
        write_atomic(&self.path(), text.as_bytes(), 0o600)
            .map_err(|e| StateError::file(FileAction::Write, &self.path(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_are_recorded_once_each_and_only_forgotten_when_asked() {
        let data = tempfile::tempdir().unwrap();
        let index = LabIndex {
            dir: data.path().join("tartlab"),
        };
        let labs = tempfile::tempdir().unwrap();
        let (one, two) = (labs.path().join("a.yaml"), labs.path().join("b.yaml"));
        std::fs::write(&one, "").unwrap();
        std::fs::write(&two, "").unwrap();
        index.record("a", &one).unwrap();
        index.record("b", &two).unwrap();
        index.record("a", &one).unwrap();
        assert_eq!(index.entries().len(), 2);
        std::fs::remove_file(&two).unwrap();
        assert_eq!(index.entries().len(), 2, "a gone lab stays until forgotten");
        let gone = index.forget_missing().unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].lab, "b");
        assert_eq!(index.entries().len(), 1);
    }
}
