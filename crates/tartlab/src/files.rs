//! Files opened and written so that a link planted on the way redirects nothing (tartlab
//! may run as root in a directory someone else can write): no open follows a link
//! (`O_NOFOLLOW`), a write is atomic (a new temporary file with a random name, then a
//! rename), an append never creates through a link. A leaf: every module may use it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes a file so that readers see the old or the new content, never a mix: a new
/// temporary file with a random name (never an existing file or link), then a rename over
/// the path (which replaces a link rather than following it).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", random_u64()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Opens a file to append to (a log, the journal), created 0600, never through a link.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A whole file as text, never read through a link.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    open_nofollow(path, libc::O_RDONLY)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The last `max` bytes of a file (all of it when shorter), never read through a link.
pub fn read_tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = open_nofollow(path, libc::O_RDONLY)?;
    let len = file.metadata()?.len();
    file.seek(std::io::SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens a path with these flags, failing (ELOOP) when it is a symbolic link.
pub fn open_nofollow(path: &Path, flags: i32) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// An error on a file of `.tartlab/`, said plainly when the file is a link.
pub fn describe_error(path: &Path, error: &std::io::Error) -> String {
    if error.raw_os_error() == Some(libc::ELOOP) {
        refused_link(path)
    } else {
        format!("cannot open {}: {error}", path.display())
    }
}

/// Why a link was refused, naming it.
pub fn refused_link(path: &Path) -> String {
    format!(
        "{} is a symbolic link; tartlab follows no link in its state directory (it may run as root, and a link there redirects what it writes): remove it",
        path.display()
    )
}

/// 64 random bits, for names no one can guess ahead.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_ne_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
