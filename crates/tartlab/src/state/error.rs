//! Why reading or writing `.tartlab/` (or the user's lab index) failed, as a type: each
//! variant says what went wrong where, and its text is what the user reads (with what to
//! do, where there is something to do).

use std::path::PathBuf;

use crate::files::refused_link;

/// What was being done to a file or directory when the OS said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    Read,
    Write,
    Open,
    /// Creating one directory of `.tartlab/`.
    Create,
    /// Creating a directory and its parents (the lab index's).
    Make,
    /// Setting `.tartlab/`'s modes to 0700/0600.
    MakePrivate,
}

/// A failure of the state: `.tartlab/`, its files, its lock, the lab key, the lab index.
#[derive(Debug)]
pub enum StateError {
    /// The OS refused an action on a path.
    File {
        action: FileAction,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A symbolic link where tartlab opens nothing through one.
    Link { path: PathBuf },
    /// `.tartlab/` is there but is not a directory.
    NotADirectory { path: PathBuf },
    /// `.tartlab/` belongs to another user.
    NotYours { path: PathBuf, owner: u32, me: u32 },
    /// `state.json` is not valid JSON of the state's shape.
    Corrupted {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// `state.json` names another lab, and is not this lab file's under its old name.
    OtherLab {
        path: PathBuf,
        found: String,
        lab: String,
        /// This lab file.
        file: PathBuf,
        /// The lab file the state belongs to, when the state or the list of labs says.
        other: Option<PathBuf>,
    },
    /// `state.json` of a version this tartlab does not read.
    Version { path: PathBuf, version: u32 },
    /// Another live tartlab holds the lab lock (its pid, when the lock file names one).
    Locked { pid: Option<i32> },
    /// The lab lock is taken but could not be duplicated for the tart commands.
    LockNotShared(std::io::Error),
    /// The lab index's lock could not be taken.
    IndexNotLocked { path: PathBuf },
    /// The lab index could not be opened or read (a link, permissions): left as it is.
    IndexUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The lab index is not an index, and could not be moved aside either.
    IndexNotMovedAside {
        path: PathBuf,
        aside: PathBuf,
        why: String,
        error: std::io::Error,
    },
    /// The lab key file holds no usable key.
    UnusableKey { path: PathBuf, error: String },
    /// `/dev/urandom` gave nothing to make the lab key from.
    NoRandomness(std::io::Error),
    /// The current directory, needed to make a lab file's path absolute, is unreadable.
    CurrentDir(std::io::Error),
    /// A value (the state, a key) could not be written out as text.
    Encoding(String),
    /// A task panicked while it held the state.
    Poisoned,
}

impl StateError {
    /// A failed open: a link refused (`O_NOFOLLOW` gives `ELOOP`) is named as such.
    pub fn open(path: &std::path::Path, error: std::io::Error) -> StateError {
        if error.raw_os_error() == Some(libc::ELOOP) {
            StateError::Link {
                path: path.to_path_buf(),
            }
        } else {
            StateError::File {
                action: FileAction::Open,
                path: path.to_path_buf(),
                error,
            }
        }
    }

    pub fn file(action: FileAction, path: &std::path::Path, error: std::io::Error) -> StateError {
        StateError::File {
            action,
            path: path.to_path_buf(),
            error,
        }
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::File {
                action,
                path,
                error,
            } => {
                let path = path.display();
                match action {
                    FileAction::Read => write!(f, "cannot read {path}: {error}"),
                    FileAction::Write => write!(f, "cannot write {path}: {error}"),
                    FileAction::Open => write!(f, "cannot open {path}: {error}"),
                    FileAction::Create => write!(f, "cannot create {path}: {error}"),
                    FileAction::Make => write!(f, "cannot make {path}: {error}"),
                    FileAction::MakePrivate => write!(f, "cannot make {path} private: {error}"),
                }
            }
            StateError::Link { path } => f.write_str(&refused_link(path)),
            StateError::NotADirectory { path } => write!(
                f,
                "{} is not a directory; move it away, tartlab keeps its state there",
                path.display()
            ),
            StateError::NotYours { path, owner, me } => write!(
                f,
                "{} belongs to uid {owner}, not to you (uid {me}): whoever owns it could redirect what tartlab writes there",
                path.display()
            ),
            StateError::Corrupted { path, error } => write!(
                f,
                "{} is corrupted ({error}); move it away, then `tartlab up --adopt` takes the lab's VMs back",
                path.display()
            ),
            StateError::OtherLab {
                path,
                found,
                lab,
                file,
                other: Some(other),
            } => write!(
                f,
                "{} belongs to lab `{found}` of {}, not to lab `{lab}` of {}: two lab files share this directory, and each lab needs its own. Either move {} into its own directory, or take the other lab down first (`tartlab down -f {}`)",
                path.display(),
                other.display(),
                file.display(),
                file.display(),
                other.display()
            ),
            StateError::OtherLab {
                path,
                found,
                lab,
                file,
                other: None,
            } => write!(
                f,
                "{} belongs to lab `{found}`, not `{lab}`, and nothing records whether {} was renamed from `{found}` or is another lab file. If you renamed it: put back `lab: {found}`, run `tartlab up` once (it records the lab file), then rename it again. If it is another lab: move it into its own directory, or take `{found}` down first (`tartlab down -f ITS-FILE`)",
                path.display(),
                file.display()
            ),
            StateError::Version { path, version } => write!(
                f,
                "{} has version {version}, this tartlab reads version {}",
                path.display(),
                super::STATE_VERSION
            ),
            StateError::Locked { pid } => write!(
                f,
                "another tartlab (pid {}) is working on this lab; wait for it to finish, or stop it",
                pid.map_or("unknown".to_string(), |p| p.to_string())
            ),
            StateError::LockNotShared(e) => write!(f, "cannot share the lab lock: {e}"),
            StateError::IndexNotLocked { path } => write!(f, "cannot lock {}", path.display()),
            StateError::IndexUnreadable { path, error } => write!(
                f,
                "{}; it was left as it is",
                crate::files::describe_error(path, error)
            ),
            StateError::IndexNotMovedAside {
                path,
                aside,
                why,
                error,
            } => write!(
                f,
                "{} cannot be read ({why}) and cannot be moved aside to {}: {error}; it was left as it is",
                path.display(),
                aside.display()
            ),
            StateError::UnusableKey { path, error } => {
                write!(f, "{} is not a usable key: {error}", path.display())
            }
            StateError::NoRandomness(e) => write!(f, "no randomness for the lab key: {e}"),
            StateError::CurrentDir(e) => write!(f, "cannot read the current directory: {e}"),
            StateError::Encoding(e) => f.write_str(e),
            StateError::Poisoned => f.write_str("state lock poisoned"),
        }
    }
}

impl std::error::Error for StateError {}

/// For callers whose own errors are still text: the message, as the user reads it.
impl From<StateError> for String {
    fn from(e: StateError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_open_names_the_link_and_any_other_names_the_path() {
        let path = std::path::Path::new("/s/lock");
        let link = StateError::open(path, std::io::Error::from_raw_os_error(libc::ELOOP));
        assert!(matches!(link, StateError::Link { .. }));
        assert!(link.to_string().starts_with("/s/lock is a symbolic link;"));
        let denied = StateError::open(path, std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(
            denied.to_string(),
            "cannot open /s/lock: Permission denied (os error 13)"
        );
    }
}
