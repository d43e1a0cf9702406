//! The `.tartlab/` directory: where each file is, reading the state, the lab lock (shared
//! with the tart commands tartlab runs) and the lab key. Its files are opened and written
//! through `crate::files` (no link followed, atomic writes).
//!
//! tartlab may run as root, and a `.tartlab/` can come from elsewhere (a cloned repository,
//! a shared directory). So the directory is the user's own, 0700, every file in it 0600, an
//! entry that is a symbolic link is an error that names it, and no open follows a link
//! (`O_NOFOLLOW`; temporary files are new, with random names).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

use super::{FileAction, State, StateError, STATE_VERSION};
use crate::files::{open_nofollow, read_text, write_atomic};

/// The `.tartlab/` directory of one lab.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    /// `.tartlab/` next to the lab file, as it is (it may not exist: a lab never brought up).
    pub fn beside(lab_file: &Path) -> StateDir {
        let parent = lab_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        StateDir {
            root: parent.join(".tartlab"),
        }
    }

    /// `.tartlab/` next to the lab file, created (with `logs/`) if needed, checked (see
    /// `check`), and its modes made private (0700, files 0600) if an older tartlab left
    /// them open.
    pub fn create_beside(lab_file: &Path) -> Result<StateDir, StateError> {
        let dir = StateDir::beside(lab_file);
        dir.check()?;
        let logs = dir.root.join("logs");
        for path in [&dir.root, &logs] {
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(StateError::file(FileAction::Create, path, e))
                }
                _ => {}
            }
        }
        dir.check()?;
        dir.make_private()
            .map_err(|e| StateError::file(FileAction::MakePrivate, &dir.root, e))?;
        Ok(dir)
    }

    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_dir())
    }

    /// Whether `.tartlab/` (if it exists) is safe to use: a directory of the user running
    /// tartlab, not a link, with no link among its entries or in `logs/`.
    pub fn check(&self) -> Result<(), StateError> {
        let meta = match std::fs::symlink_metadata(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StateError::file(FileAction::Read, &self.root, e)),
            Ok(meta) => meta,
        };
        if meta.file_type().is_symlink() {
            return Err(StateError::Link {
                path: self.root.clone(),
            });
        }
        if !meta.is_dir() {
            return Err(StateError::NotADirectory {
                path: self.root.clone(),
            });
        }
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(StateError::NotYours {
                path: self.root.clone(),
                owner: meta.uid(),
                me,
            });
        }
        for dir in [self.root.clone(), self.root.join("logs")] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                    return Err(StateError::Link { path: entry.path() });
                }
            }
        }
        Ok(())
    }

    /// 0700 for the directories, 0600 for the files (opened without following links).
    fn make_private(&self) -> std::io::Result<()> {
        for dir in [self.root.clone(), self.root.join("logs")] {
            let file = open_nofollow(&dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(&dir)?.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let meta = entry.metadata()?;
                if meta.mode() & 0o077 != 0 {
                    let file = open_nofollow(&entry.path(), libc::O_RDONLY)?;
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
        Ok(())
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("id_ed25519")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.root.join("known_hosts")
    }
    pub fn run_log(&self, vm: &str) -> PathBuf {
        self.root.join("logs").join(format!("{vm}.run.log"))
    }
    pub fn provision_log(&self, vm: &str) -> PathBuf {
        self.root.join("logs").join(format!("{vm}.provision.log"))
    }
    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    /// The lab's state; an empty one when the lab has never been brought up.
    pub fn read_state(&self, lab: &str) -> Result<State, StateError> {
        let state = self.read_any(lab)?;
        if state.lab != lab {
            return Err(StateError::OtherLab {
                path: self.state_path(),
                found: state.lab,
                lab: lab.to_string(),
                file: PathBuf::new(),
                other: None,
            });
        }
        Ok(state)
    }

    /// The state of lab `lab` of lab file `file`, and the name it had when the file's `lab:`
    /// was renamed since: a state of another name is this lab's when it was made for the
    /// same lab file (as the state records, or for older states the list of labs). It then
    /// takes the new name, here in memory; the changing commands write it. The state of
    /// another lab file is refused, naming that file.
    pub fn read_state_for(
        &self,
        lab: &str,
        file: &Path,
    ) -> Result<(State, Option<String>), StateError> {
        let mut state = self.read_any(lab)?;
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut renamed = None;
        if state.lab != lab {
            let here = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
            let owner = match &state.lab_file {
                Some(recorded) => here.with_file_name(recorded),
                None => {
                    let index = super::LabIndex::for_user().peek();
                    match index.get(&here) {
                        Some(entry) if entry.lab == state.lab => here.clone(),
                        _ => match index
                            .values()
                            .find(|e| e.lab == state.lab && e.file.parent() == here.parent())
                        {
                            Some(entry) => entry.file.clone(),
                            None => {
                                return Err(StateError::OtherLab {
                                    path: self.state_path(),
                                    found: state.lab,
                                    lab: lab.to_string(),
                                    file: file.to_path_buf(),
                                    other: None,
                                })
                            }
                        },
                    }
                }
            };
            if owner != here {
                return Err(StateError::OtherLab {
                    path: self.state_path(),
                    found: state.lab,
                    lab: lab.to_string(),
                    file: file.to_path_buf(),
                    other: Some(owner),
                });
            }
            renamed = Some(std::mem::replace(&mut state.lab, lab.to_string()));
        }
        if state.lab_file.is_none() {
            state.lab_file = name;
        }
        Ok((state, renamed))
    }

    /// `state.json` as it is, of whichever lab (none yet: an empty state of `lab`).
    fn read_any(&self, lab: &str) -> Result<State, StateError> {
        let path = self.state_path();
        match read_text(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::empty(lab)),
            Err(e) => Err(StateError::file(FileAction::Read, &path, e)),
            Ok(text) => {
                let state: State =
                    serde_json::from_str(&text).map_err(|error| StateError::Corrupted {
                        path: path.clone(),
                        error,
                    })?;
                if state.version != STATE_VERSION {
                    return Err(StateError::Version {
                        path,
                        version: state.version,
                    });
                }
                Ok(state)
            }
        }
    }

    /// Takes the lab lock, or says who holds it. The tart commands a tartlab runs share its
    /// lock (see `LabLock::share`): when a tartlab was killed while one of them still runs,
    /// the lock is waited for (up to two minutes) instead of racing that command.
    pub fn lock(&self) -> Result<LabLock, StateError> {
        self.lock_telling(&|_| {})
    }

    /// `lock`, telling `on_wait` when it waits for the tart commands of a tartlab that ended.
    pub fn lock_telling(&self, on_wait: &dyn Fn(&str)) -> Result<LabLock, StateError> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StateError::open(&path, e))?;
        let try_lock = |file: &File| {
            // SAFETY: flock on a descriptor we own.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
        };
        let mut waited = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !try_lock(&file) {
            let mut holder = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim().parse::<i32>().ok();
            // SAFETY: signal 0 only checks that the process exists.
            let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0);
            if alive || pid.is_none() || std::time::Instant::now() > deadline {
                return Err(StateError::Locked { pid });
            }
            if !waited {
                on_wait(&format!(
                    "waiting for the tart commands of a tartlab that ended (pid {}) to finish",
                    pid.unwrap_or(0)
                ));
                waited = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let unwritable = |e| StateError::file(FileAction::Write, &path, e);
        file.set_len(0).map_err(unwritable)?;
        let _ = file.rewind();
        write!(file, "{}", std::process::id()).map_err(unwritable)?;
        let share = file
            .try_clone()
            .map(|dup| LockShare(Arc::new(OwnedFd::from(dup))))
            .map_err(StateError::LockNotShared)?;
        Ok(LabLock { file, share })
    }

    /// The pid the lab lock names, if that process lives: who holds the lock now, as
    /// `lock_telling` says it (read only; the lock is neither taken nor made). A pid that
    /// lives may be a later process under a reused number, so callers confirm it with what
    /// else they know (the journal's last run).
    pub fn lock_holder(&self) -> Option<i32> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let mut holder = String::new();
        file.read_to_string(&mut holder).ok()?;
        let pid = holder.trim().parse::<i32>().ok()?;
        // SAFETY: signal 0 only checks that the process exists.
        (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// The lab's SSH key, made on first use (ed25519, 0600).
    pub fn lab_key(&self) -> Result<PrivateKey, StateError> {
        let path = self.key_path();
        if let Ok(text) = read_text(&path) {
            return PrivateKey::from_openssh(&text).map_err(|e| StateError::UnusableKey {
                path: path.clone(),
                error: e.to_string(),
            });
        }
        let mut seed = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(StateError::NoRandomness)?;
        let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        key.set_comment("tartlab");
        let encoding = |e: russh::keys::ssh_key::Error| StateError::Encoding(e.to_string());
        let private = key.to_openssh(LineEnding::LF).map_err(encoding)?;
        let public = key.public_key().to_openssh().map_err(encoding)?;
        write_atomic(&path, private.as_bytes(), 0o600)
            .and_then(|_| {
                write_atomic(
                    &path.with_extension("pub"),
                    format!("{public}\n").as_bytes(),
                    0o600,
                )
            })
            .map_err(|e| StateError::file(FileAction::Write, &path, e))?;
        Ok(key)
    }
}

/// Held while tartlab works on a lab: the command that took it keeps it (in the engine's
/// context) until it returns; the kernel releases it when the process dies.
pub struct LabLock {
    file: File,
    share: LockShare,
}

impl LabLock {
    /// A descriptor of the lock for tart commands to inherit: the lock then lasts until the
    /// last of them ends, even if tartlab itself is killed. The share owns its descriptor (a
    /// `dup` of the lock's), so it stays open for as long as anything holds the share.
    pub fn share(&self) -> LockShare {
        self.share.clone()
    }

    /// The lock file's descriptor (for tests that check what children inherit).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// An owned duplicate of the lab lock's descriptor, shared by every tart command that must
/// hold the lock while it runs (flock belongs to the open file, which all duplicates share).
#[derive(Debug, Clone)]
pub struct LockShare(Arc<OwnedFd>);

impl LockShare {
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::open_append;

    #[test]
    fn lab_key_is_made_once_with_mode_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let first = lab.lab_key().unwrap();
        let second = lab.lab_key().unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let mode = std::fs::metadata(lab.key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let held = lab.lock().unwrap();
        let err = lab.lock().err().unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(
            matches!(err, StateError::Locked { pid: Some(pid) } if pid == me),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("(pid {me})")), "{err}");
        drop(held);
        assert!(lab.lock().is_ok());
    }

    /// Needs util-linux's `flock(1)` (Linux).
    #[test]
    #[cfg(target_os = "linux")]
    fn a_lock_kept_by_the_tart_commands_of_a_dead_tartlab_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let lock = lab.root.join("lock");
        // A dead tartlab's pid in the file, and its tart command still holding the lock.
        std::fs::write(&lock, "999999999").unwrap();
        let mut orphan = std::process::Command::new("flock")
            .arg(&lock)
            .args(["sleep", "1"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let started = std::time::Instant::now();
        assert!(lab.lock().is_ok());
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(500),
            "it waited"
        );
        let _ = orphan.wait();
    }

    #[test]
    fn the_directory_is_private_and_a_link_in_it_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&lab.root), 0o700);
        assert_eq!(mode(&lab.root.join("logs")), 0o700);
        write_atomic(&lab.state_path(), b"{}", 0o600).unwrap();
        assert_eq!(mode(&lab.state_path()), 0o600);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = lab.root.join("logs").join("a.provision.log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap_err();
        assert!(
            matches!(&err, StateError::Link { path } if *path == link),
            "{err}"
        );
        assert!(
            err.to_string().contains(&link.display().to_string()),
            "{err}"
        );
        assert!(open_append(&link).is_err());
        assert!(read_text(&link).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn atomic_writes_never_write_through_a_planted_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let lab = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // The names an older tartlab used, and any link beside the target.
        for name in ["state.tmp1", &format!("state.tmp{}", std::process::id())] {
            std::os::unix::fs::symlink(&victim, lab.root.join(name)).unwrap();
        }
        write_atomic(&lab.state_path(), b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(lab.state_path()).unwrap(), "{}");
    }
}
