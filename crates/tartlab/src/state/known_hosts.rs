//! Host keys pinned per VM, in OpenSSH known_hosts format with the VM name as the host, so
//! the system ssh checks them with `HostKeyAlias`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::PublicKey;

use super::{write_atomic, FileAction, StateDir, StateError};

/// Host keys pinned per VM, in OpenSSH known_hosts format with the VM name as the host (use
/// `HostKeyAlias` to check them with the system ssh).
#[derive(Clone)]
pub struct KnownHosts {
    path: PathBuf,
    guard: Arc<Mutex<()>>,
}

impl KnownHosts {
    pub fn new(dir: &StateDir) -> KnownHosts {
        KnownHosts {
            path: dir.known_hosts_path(),
            guard: Arc::new(Mutex::new(())),
        }
    }

    fn lines(&self) -> Vec<String> {
        super::read_text(&self.path)
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub fn pinned(&self, vm: &str) -> Vec<PublicKey> {
        let _g = self.guard.lock();
        self.lines()
            .iter()
            .filter_map(|l| l.split_once(' ').filter(|(h, _)| *h == vm))
            .filter_map(|(_, key)| PublicKey::from_openssh(key).ok())
            .collect()
    }

    /// Replaces the VM's pinned keys (none: forgets the VM).
    pub fn pin(&self, vm: &str, keys: &[PublicKey]) -> Result<(), StateError> {
        let _g = self.guard.lock();
        let mut lines: Vec<String> = self
            .lines()
            .into_iter()
            .filter(|l| l.split_once(' ').is_none_or(|(h, _)| h != vm))
            .collect();
        for key in keys {
            let mut key = key.clone();
            key.set_comment("");
            let text = key
                .to_openssh()
                .map_err(|e| StateError::Encoding(e.to_string()))?;
            lines.push(format!("{vm} {}", text.trim()));
        }
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| StateError::file(FileAction::Write, &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_keys_are_kept_per_vm() {
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let known = KnownHosts::new(&lab);
        let key = lab.lab_key().unwrap().public_key().clone();
        known.pin("a", std::slice::from_ref(&key)).unwrap();
        known.pin("b", std::slice::from_ref(&key)).unwrap();
        assert_eq!(known.pinned("a").len(), 1);
        known.pin("a", &[]).unwrap();
        assert!(known.pinned("a").is_empty());
        assert_eq!(known.pinned("b")[0].key_data(), key.key_data());
    }
}
