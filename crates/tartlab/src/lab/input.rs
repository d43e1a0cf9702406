//! The host files a lab file names (`files` sources, `script:`, `cloud_init:`, `.pub` key
//! files, and the lab file itself), read once, by `validate`, and kept in the `Lab`: each
//! must resolve inside the lab's directory (or a directory the lab file allows, or `~/.ssh`
//! for a `.pub` key), be a regular file, and be under its size limit. It is opened along
//! the path that was checked with no link followed, and checked again on the descriptor,
//! so a file or directory swapped between the check and the read is refused too, and
//! nothing ever blocks on a FIFO or a device.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MIB: u64 = 1024 * 1024;

/// What a file is to the lab, which sets its size limit and how messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `files` source: 64 MiB, held in memory and sent over SFTP to each node.
    File,
    /// A step's `script:`: 1 MiB, sent as one command's input.
    Script,
    /// A `cloud_init:` user-data file: 1 MiB, filled in and parsed once per node.
    CloudInit,
    /// A `.pub` file of `authorized_keys`: 64 KiB (one line of it is used).
    PublicKey,
    /// The lab file itself: 16 MiB.
    LabFile,
}

impl Kind {
    pub fn limit(self) -> u64 {
        match self {
            Kind::File => 64 * MIB,
            Kind::Script | Kind::CloudInit => MIB,
            Kind::PublicKey => 64 * 1024,
            Kind::LabFile => 16 * MIB,
        }
    }

    /// What messages call it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Script => "script",
            Kind::CloudInit => "cloud-init file",
            Kind::PublicKey => "public key file",
            Kind::LabFile => "lab file",
        }
    }

    /// The limit as people write it.
    pub fn limit_text(self) -> &'static str {
        match self {
            Kind::File => "64 MiB",
            Kind::Script | Kind::CloudInit => "1 MiB",
            Kind::PublicKey => "64 KiB",
            Kind::LabFile => "16 MiB",
        }
    }
}

/// All of a lab's inputs together: 256 MiB (four `files` sources at their limit).
pub const TOTAL_LIMIT: u64 = 256 * MIB;

/// Where a lab's inputs may be: the lab's directory, the directories its
/// `allow_paths_outside` names, and (for `.pub` key files only) the user's `~/.ssh`.
pub struct Confinement {
    lab_dir: PathBuf,
    allowed: Vec<PathBuf>,
    ssh_dir: Option<PathBuf>,
}

impl Confinement {
    /// The lab directory and the user's `~/.ssh`, as their real paths.
    pub fn new(lab_dir: &Path) -> Confinement {
        let lab_dir = std::fs::canonicalize(lab_dir).unwrap_or_else(|_| lab_dir.to_path_buf());
        let ssh_dir = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .and_then(|h| std::fs::canonicalize(Path::new(&h).join(".ssh")).ok());
        Confinement {
            lab_dir,
            allowed: Vec::new(),
            ssh_dir,
        }
    }

    pub fn lab_dir(&self) -> &Path {
        &self.lab_dir
    }

    /// Allows a directory (a real path) the lab file names.
    pub fn allow(&mut self, dir: PathBuf) {
        self.allowed.push(dir);
    }

    /// Whether a real path may be read as this kind of input.
    fn allows(&self, real: &Path, kind: Kind) -> bool {
        if kind == Kind::LabFile
            || real.starts_with(&self.lab_dir)
            || self.allowed.iter().any(|d| real.starts_with(d))
        {
            return true;
        }
        kind == Kind::PublicKey
            && real.extension().is_some_and(|e| e == "pub")
            && self.ssh_dir.as_ref().is_some_and(|d| real.starts_with(d))
    }
}

/// Why an input was not read.
#[derive(Debug)]
pub enum Refusal {
    Missing,
    /// It resolves (links followed) to this real path, outside the places allowed.
    Outside(PathBuf),
    /// What it is instead of a regular file.
    NotRegular(&'static str),
    /// Its size in bytes, over the kind's limit.
    TooLarge(u64),
    Io(std::io::Error),
}

impl Refusal {
    /// What is wrong, after "`NAME` " (e.g. "file `x` is a FIFO, not a regular file").
    pub fn describe(&self, kind: Kind, lab_dir: &Path) -> String {
        match self {
            Refusal::Missing => "does not exist".to_string(),
            Refusal::Outside(real) => format!(
                "is outside the lab's directory {}: it is {}",
                lab_dir.display(),
                real.display()
            ),
            Refusal::NotRegular(what) => {
                format!("is {what}, not a regular file: it was not opened for reading")
            }
            Refusal::TooLarge(size) => format!(
                "is {} MiB, over the {} an input of its kind may be",
                size.div_ceil(MIB),
                kind.limit_text()
            ),
            Refusal::Io(e) => format!("cannot be read: {e}"),
        }
    }
}

/// The name of a file type that is not a regular file.
fn not_regular(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// Reads one input: resolved, checked against the confinement, checked to be a regular file
/// under the limit before it is opened, opened along the resolved path with no link
/// followed and without blocking, checked again on the descriptor (type, size), then read
/// at most to its limit.
pub fn read(path: &Path, kind: Kind, confinement: &Confinement) -> Result<Vec<u8>, Refusal> {
    let real = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        // Outside as written is said so, whether it exists or not.
        std::io::ErrorKind::NotFound => match lexical(path) {
            Some(lexical) if !confinement.allows(&lexical, kind) => Refusal::Outside(lexical),
            _ => Refusal::Missing,
        },
        _ => Refusal::Io(e),
    })?;
    if !confinement.allows(&real, kind) {
        return Err(Refusal::Outside(real));
    }
    check_metadata(&std::fs::metadata(&real).map_err(Refusal::Io)?, kind)?;
    let file = open_beneath(&real).map_err(Refusal::Io)?;
    check_metadata(&file.metadata().map_err(Refusal::Io)?, kind)?;
    let mut bytes = Vec::new();
    file.take(kind.limit() + 1)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Io)?;
    if bytes.len() as u64 > kind.limit() {
        return Err(Refusal::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The absolute path as written, `.` and `..` taken away without looking at the disk.
fn lexical(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let absolute = std::path::absolute(path).ok()?;
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Compared by real paths: the nearest part that exists, resolved, then the rest.
    let mut existing = out.as_path();
    while let Some(parent) = existing.parent() {
        existing = parent;
        if let Ok(real) = std::fs::canonicalize(existing) {
            return Some(real.join(out.strip_prefix(existing).ok()?));
        }
    }
    Some(out)
}

fn check_metadata(meta: &std::fs::Metadata, kind: Kind) -> Result<(), Refusal> {
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(Refusal::NotRegular(what));
    }
    if meta.len() > kind.limit() {
        return Err(Refusal::TooLarge(meta.len()));
    }
    Ok(())
}

/// Opens a real path (no links in it) one component at a time from `/`, each with
/// `O_NOFOLLOW`: a directory or file turned into a link since the path was resolved makes
/// the open fail, so what is opened is what was checked. The file itself is opened
/// non-blocking (a FIFO put in its place cannot hang the open) and never as a
/// controlling terminal.
fn open_beneath(real: &Path) -> std::io::Result<File> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::{AsRawFd, FromRawFd};
    use std::path::Component;
    let names: Vec<&std::ffi::OsStr> = real
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let mut at = File::open("/")?;
    for (i, name) in names.iter().enumerate() {
        let name = CString::new(name.as_bytes())?;
        let flags = if i + 1 == names.len() {
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY
        } else {
            libc::O_RDONLY | libc::O_DIRECTORY
        };
        // SAFETY: `at` is an open directory and `name` a NUL-terminated component; the
        // descriptor returned is owned by the `File` made from it.
        let fd = unsafe {
            libc::openat(
                at.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        at = unsafe { File::from_raw_fd(fd) };
    }
    Ok(at)
}

/// The inputs `validate` read, by the path as the lab file writes it.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    read: HashMap<String, Arc<[u8]>>,
    /// The bytes held, together (kept as they are added: many files stay linear).
    total: u64,
}

/// A file the lab names that `validate` did not read, as the lab file writes it: asked for
/// after the check (a bug, or a lab changed under a run), never read from disk then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRead(pub String);

impl std::fmt::Display for NotRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` was not read when the lab file was checked", self.0)
    }
}

impl Inputs {
    pub fn get(&self, written: &str) -> Option<&Arc<[u8]>> {
        self.read.get(written)
    }

    /// The bytes `validate` read for `written`.
    pub fn read(&self, written: &str) -> Result<&Arc<[u8]>, NotRead> {
        self.read
            .get(written)
            .ok_or_else(|| NotRead(written.to_string()))
    }

    pub fn contains(&self, written: &str) -> bool {
        self.read.contains_key(written)
    }

    pub fn insert(&mut self, written: &str, bytes: Vec<u8>) {
        self.total += bytes.len() as u64;
        if let Some(before) = self.read.insert(written.to_string(), bytes.into()) {
            self.total -= before.len() as u64;
        }
    }

    /// The bytes held, together.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_under_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("lab");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("ok"), "hello").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), inside.join("link")).unwrap();
        let big = File::create(inside.join("big")).unwrap();
        big.set_len(MIB + 1).unwrap();
        let c = Confinement::new(&inside);
        assert_eq!(
            read(&inside.join("ok"), Kind::Script, &c).unwrap(),
            b"hello"
        );
        assert!(matches!(
            read(&inside.join("../secret"), Kind::File, &c),
            Err(Refusal::Outside(_))
        ));
        assert!(matches!(
            read(&inside.join("link"), Kind::File, &c),
            Err(Refusal::Outside(_))
        ));
        assert!(matches!(
            read(&inside.join("big"), Kind::Script, &c),
            Err(Refusal::TooLarge(_))
        ));
        assert!(read(&inside.join("big"), Kind::File, &c).is_ok());
        assert!(matches!(
            read(&inside.join("nope"), Kind::File, &c),
            Err(Refusal::Missing)
        ));
        let mut c = c;
        c.allow(std::fs::canonicalize(dir.path()).unwrap());
        assert_eq!(read(&inside.join("link"), Kind::File, &c).unwrap(), b"s");
        // A directory on the checked path turned into a link is not followed.
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::os::unix::fs::symlink(real.join("lab"), real.join("swapped")).unwrap();
        assert!(open_beneath(&real.join("lab/ok")).is_ok());
        assert!(open_beneath(&real.join("swapped/ok")).is_err());
        c.allow(PathBuf::from("/dev"));
        assert!(matches!(
            read(Path::new("/dev/zero"), Kind::File, &c),
            Err(Refusal::NotRegular("a character device"))
        ));
    }
}
