//! Copies over SFTP: whole files written at once (private, for staging), and recursive
//! copies to and from a guest (`tartlab cp`), each into a directory when the destination is
//! one, as scp does.
//!
//! A download trusts nothing the guest says: every name in a listing must be one plain path
//! component (not `.`, `..`, empty, or holding `/` or NUL) or the copy stops, naming it;
//! every directory made is checked to be inside the destination (the real path, not the
//! string), files inside are opened without following links, links on the guest are not
//! followed (they are listed as skipped), and listings and depth are bounded. An upload's
//! local side is checked whole before a node is reached (`check_local`), and an upload that
//! stops removes what it had made on the guest.
//!
//! Over 500 lines, for a reason: uploads and downloads share the SFTP session, the bounds and
//! the path checks, and a third of the file is their unit tests.
//!
//! Over 500 lines, for a reason: uploads and downloads share the checks of what a guest may
//! name, and a download's limits read best next to them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::AsyncWriteExt;

/// Whether a copy goes into directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Files only: a directory is an error.
    Files,
    /// Directories and everything in them (`-r`).
    Recursive,
}

/// How deep a recursive copy goes, and how many entries one directory may list.
const MAX_DEPTH: usize = 64;
const MAX_ENTRIES: usize = 100_000;
/// Bytes asked for in each read of a download.
const READ_SIZE: u32 = 64 * 1024;

type Copy<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, TransferError>> + Send + 'a>>;

/// What went wrong with one file operation, in the words a copy's error ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    NotFound,
    PermissionDenied,
    /// A file was asked for and the path is a directory (a local `EISDIR`).
    IsADirectory,
    /// Anything else, in the words of the OS or of the guest's SFTP server.
    Other(String),
}

impl FileError {
    /// An SFTP error in words, once (russh-sftp shows the status code and the server's
    /// text, which often say the same).
    fn of_sftp(e: &SftpError) -> FileError {
        match e {
            SftpError::Status(s) => match s.status_code {
                StatusCode::NoSuchFile => FileError::NotFound,
                StatusCode::PermissionDenied => FileError::PermissionDenied,
                _ if !s.error_message.trim().is_empty() => {
                    FileError::Other(s.error_message.trim().to_lowercase())
                }
                code => FileError::Other(code.to_string().to_lowercase()),
            },
            SftpError::Timeout => FileError::Other("the guest did not answer within 10 s".into()),
            other => FileError::Other(other.to_string()),
        }
    }

    /// A local error in words, without the OS error number.
    fn of_io(e: &std::io::Error) -> FileError {
        match e.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound,
            std::io::ErrorKind::PermissionDenied => FileError::PermissionDenied,
            std::io::ErrorKind::IsADirectory => FileError::IsADirectory,
            _ => {
                let text = e.to_string();
                FileError::Other(match text.find(" (os error") {
                    Some(i) => text[..i].to_lowercase(),
                    None => text,
                })
            }
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileError::NotFound => "no such file or directory",
            FileError::PermissionDenied => "permission denied",
            FileError::IsADirectory => "is a directory",
            FileError::Other(words) => words,
        })
    }
}

/// Why a copy to or from a guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// A file or directory on this host could not be read, written or made.
    Local { path: PathBuf, error: FileError },
    /// A file or directory on the guest could not be read, written or made.
    Guest { path: String, error: FileError },
    /// A directory named in a copy of files only (no `-r`).
    IsDirectory { path: String },
    /// A local tree deeper than `MAX_DEPTH`: most likely a loop of links.
    LocalTooDeep { path: PathBuf },
    /// A local symbolic link that leads to nothing (an upload follows links).
    DanglingLink { path: PathBuf, to: PathBuf },
    /// A local path that is neither a file nor a directory (a pipe would never end).
    LocalNotAFile { path: PathBuf },
    /// A guest tree deeper than `MAX_DEPTH`.
    GuestTooDeep { path: String },
    /// A guest directory that lists more than `MAX_ENTRIES` entries.
    TooManyEntries { dir: String },
    /// A guest path without a last component to name the copy after (`/`, `..`).
    NoName { remote: String },
    /// A name in a guest's listing that is not one plain path component.
    UntrustedName { dir: String, name: String },
    /// A local path the copy needs as a directory that is something else (or a link).
    NotADirectory { path: PathBuf },
    /// A directory of the copy whose real path is outside the destination.
    Outside {
        path: PathBuf,
        real: PathBuf,
        inside: PathBuf,
    },
}

impl TransferError {
    fn local(path: &Path, e: &std::io::Error) -> TransferError {
        TransferError::Local {
            path: path.to_path_buf(),
            error: FileError::of_io(e),
        }
    }

    fn guest(path: &str, e: &SftpError) -> TransferError {
        TransferError::Guest {
            path: path.to_string(),
            error: FileError::of_sftp(e),
        }
    }
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Local { path, error } => write!(f, "{}: {error}", path.display()),
            TransferError::Guest { path, error } => write!(f, "{path}: {error}"),
            TransferError::IsDirectory { path } => write!(f, "{path} is a directory"),
            TransferError::LocalTooDeep { path } => write!(
                f,
                "{} is more than {MAX_DEPTH} directories deep (a loop of links?)",
                path.display()
            ),
            TransferError::DanglingLink { path, to } => write!(
                f,
                "{} is a symbolic link to {}, which does not exist",
                path.display(),
                to.display()
            ),
            TransferError::LocalNotAFile { path } => write!(
                f,
                "{} is neither a file nor a directory (a pipe, socket or device)",
                path.display()
            ),
            TransferError::GuestTooDeep { path } => {
                write!(f, "{path} is more than {MAX_DEPTH} directories deep")
            }
            TransferError::TooManyEntries { dir } => {
                write!(f, "{dir} lists more than {MAX_ENTRIES} entries; copy it in parts")
            }
            TransferError::NoName { remote } => write!(
                f,
                "`{remote}` has no name to copy it under; give the local path to copy it to"
            ),
            TransferError::UntrustedName { dir, name } => write!(
                f,
                "the guest listed an entry named \"{}\" in {dir}: a name must be one path component, so the copy stopped there",
                crate::text::printable(&name.escape_default().to_string(), crate::text::QUOTED_NAME)
            ),
            TransferError::NotADirectory { path } => write!(
                f,
                "{} exists and is not a directory (a link is not followed)",
                path.display()
            ),
            TransferError::Outside { path, real, inside } => write!(
                f,
                "{} would be written at {}, outside {}; nothing more was copied",
                path.display(),
                real.display(),
                inside.display()
            ),
        }
    }
}

/// Writes a whole file over SFTP, created new (never an existing file or link) with `mode`.
pub async fn put_new(
    sftp: &SftpSession,
    path: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), FileError> {
    let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
    let attrs = FileAttributes {
        permissions: Some(mode),
        ..FileAttributes::empty()
    };
    let mut file = sftp
        .open_with_flags_and_attributes(path, flags, attrs)
        .await
        .map_err(|e| FileError::of_sftp(&e))?;
    file.write_all(data)
        .await
        .map_err(|e| FileError::of_io(&e))?;
    file.shutdown().await.map_err(|e| FileError::of_io(&e))
}

/// Makes a new directory only its owner can enter.
pub async fn make_private_dir(sftp: &SftpSession, path: &str) -> Result<(), FileError> {
    sftp.create_dir(path)
        .await
        .map_err(|e| FileError::of_sftp(&e))?;
    let attrs = FileAttributes {
        permissions: Some(0o700),
        ..FileAttributes::empty()
    };
    sftp.set_metadata(path, attrs)
        .await
        .map_err(|e| FileError::of_sftp(&e))
}

/// Writes a whole file over SFTP, creating or truncating it.
async fn put_bytes(sftp: &SftpSession, path: &str, data: &[u8]) -> Result<(), FileError> {
    let mut file = sftp
        .create(path)
        .await
        .map_err(|e| FileError::of_sftp(&e))?;
    file.write_all(data)
        .await
        .map_err(|e| FileError::of_io(&e))?;
    file.shutdown().await.map_err(|e| FileError::of_io(&e))
}

async fn is_remote_dir(sftp: &SftpSession, path: &str) -> bool {
    sftp.metadata(path).await.is_ok_and(|m| m.is_dir())
}

/// Checks a local file or tree before an upload connects: every directory listed, every
/// file opened for reading, every link leading somewhere, no deeper than `MAX_DEPTH`, and
/// no directory without `-r`. Returns how many files it holds.
pub fn check_local(local: &Path, depth: Depth) -> Result<usize, TransferError> {
    check_local_at(local, depth, 0)
}

fn check_local_at(local: &Path, depth: Depth, level: usize) -> Result<usize, TransferError> {
    if level > MAX_DEPTH {
        return Err(TransferError::LocalTooDeep {
            path: local.to_path_buf(),
        });
    }
    let meta = match std::fs::metadata(local) {
        Ok(meta) => meta,
        Err(e) => {
            if let Ok(to) = std::fs::read_link(local) {
                return Err(TransferError::DanglingLink {
                    path: local.to_path_buf(),
                    to,
                });
            }
            return Err(TransferError::local(local, &e));
        }
    };
    if meta.is_file() {
        std::fs::File::open(local).map_err(|e| TransferError::local(local, &e))?;
        return Ok(1);
    }
    if !meta.is_dir() {
        return Err(TransferError::LocalNotAFile {
            path: local.to_path_buf(),
        });
    }
    if depth == Depth::Files {
        return Err(TransferError::IsDirectory {
            path: local.display().to_string(),
        });
    }
    let mut files = 0;
    for entry in std::fs::read_dir(local).map_err(|e| TransferError::local(local, &e))? {
        let entry = entry.map_err(|e| TransferError::local(local, &e))?;
        files += check_local_at(&entry.path(), depth, level + 1)?;
    }
    Ok(files)
}

/// Where an upload of `local` to `remote` puts it: inside `remote` when that is a
/// directory, else `remote` itself.
pub async fn upload_target(sftp: &SftpSession, local: &Path, remote: &str) -> String {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_remote_dir(sftp, remote).await {
        format!("{}/{name}", remote.trim_end_matches('/'))
    } else {
        remote.to_string()
    }
}

/// Local to remote; into the remote directory when the destination is one. Returns how many
/// files were copied. A copy that stops removes what it made (files and directories that
/// were not there before), so nothing half-copied stays on the guest; a file it overwrote
/// stays overwritten.
pub async fn upload(
    sftp: &SftpSession,
    local: &Path,
    remote: &str,
    depth: Depth,
) -> Result<usize, TransferError> {
    let mut made = Vec::new();
    let copied = upload_at(sftp, local, remote, depth, 0, &mut made).await;
    if copied.is_err() {
        for (path, is_dir) in made.iter().rev() {
            let _ = if *is_dir {
                sftp.remove_dir(path.as_str()).await
            } else {
                sftp.remove_file(path.as_str()).await
            };
        }
    }
    copied
}

/// A guest path this upload made, and whether it is a directory.
type Made = (String, bool);

fn upload_at<'a>(
    sftp: &'a SftpSession,
    local: &'a Path,
    remote: &'a str,
    depth: Depth,
    level: usize,
    made: &'a mut Vec<Made>,
) -> Copy<'a> {
    Box::pin(async move {
        if level > MAX_DEPTH {
            return Err(TransferError::LocalTooDeep {
                path: local.to_path_buf(),
            });
        }
        let target = upload_target(sftp, local, remote).await;
        if local.is_dir() {
            if depth == Depth::Files {
                return Err(TransferError::IsDirectory {
                    path: local.display().to_string(),
                });
            }
            if !is_remote_dir(sftp, &target).await {
                if sftp.symlink_metadata(target.as_str()).await.is_ok() {
                    return Err(TransferError::Guest {
                        path: target,
                        error: FileError::Other(
                            "exists and is not a directory, so the directory cannot be copied there".into(),
                        ),
                    });
                }
                sftp.create_dir(target.as_str())
                    .await
                    .map_err(|e| TransferError::guest(&target, &e))?;
                made.push((target.clone(), true));
            }
            let mut count = 0;
            let entries = std::fs::read_dir(local).map_err(|e| TransferError::local(local, &e))?;
            // In name order: the same tree is copied the same way, and stops at the same place.
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                count += upload_at(sftp, &path, &target, depth, level + 1, made).await?;
            }
            return Ok(count);
        }
        let data = std::fs::read(local).map_err(|e| TransferError::local(local, &e))?;
        // Recorded before it is written: a write that fails halfway leaves a file too.
        if sftp.symlink_metadata(target.as_str()).await.is_err() {
            made.push((target.clone(), false));
        }
        put_bytes(sftp, &target, &data)
            .await
            .map_err(|error| TransferError::Guest {
                path: target.clone(),
                error,
            })?;
        Ok(1)
    })
}

/// What a download did: files copied, and what it left out.
#[derive(Debug, Default)]
pub struct Downloaded {
    pub files: usize,
    /// Guest paths not copied (links, devices, pipes), with why.
    pub skipped: Vec<String>,
}

/// Remote to local; into the local directory when the destination is one.
pub async fn download(
    sftp: &RawSftpSession,
    remote: &str,
    local: &Path,
    depth: Depth,
) -> Result<Downloaded, TransferError> {
    let top = sftp
        .stat(remote)
        .await
        .map_err(|e| TransferError::guest(remote, &e))?
        .attrs;
    let target = if local.is_dir() {
        let name = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        if !is_plain_name(name) {
            return Err(TransferError::NoName {
                remote: remote.to_string(),
            });
        }
        local.join(name)
    } else {
        local.to_path_buf()
    };
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inside = std::fs::canonicalize(parent).map_err(|e| TransferError::local(parent, &e))?;
    let mut copy = Download {
        sftp,
        inside,
        result: Downloaded::default(),
    };
    if kind(&top) == Kind::Directory {
        if depth == Depth::Files {
            return Err(TransferError::IsDirectory {
                path: remote.to_string(),
            });
        }
        copy.directory(remote.trim_end_matches('/'), &target, 0)
            .await?;
    } else {
        // The path the user named: opened as they named it (a link of theirs is followed).
        copy.file(remote, &target, &top, false).await?;
    }
    Ok(copy.result)
}

struct Download<'a> {
    sftp: &'a RawSftpSession,
    /// The real path every file must end up under.
    inside: PathBuf,
    result: Downloaded,
}

impl Download<'_> {
    fn directory<'b>(&'b mut self, remote: &'b str, local: &'b Path, level: usize) -> Copy<'b> {
        Box::pin(async move {
            if level > MAX_DEPTH {
                return Err(TransferError::GuestTooDeep {
                    path: remote.to_string(),
                });
            }
            self.make_dir(local)?;
            for (name, attrs) in self.list(remote).await? {
                let child = format!("{remote}/{name}");
                let local_child = local.join(&name);
                let attrs = match attrs.permissions {
                    Some(_) => attrs,
                    None => {
                        self.sftp
                            .lstat(child.as_str())
                            .await
                            .map_err(|e| TransferError::guest(&child, &e))?
                            .attrs
                    }
                };
                let skipped = match kind(&attrs) {
                    Kind::Directory => {
                        self.directory(&child, &local_child, level + 1).await?;
                        continue;
                    }
                    Kind::File => {
                        self.file(&child, &local_child, &attrs, true).await?;
                        continue;
                    }
                    Kind::Link => "a symbolic link",
                    Kind::Other => "not a file or a directory",
                };
                self.result.skipped.push(format!(
                    "{}: {skipped}",
                    crate::text::printable(&child, crate::text::QUOTED_LINE)
                ));
            }
            Ok(0)
        })
    }

    /// A directory's entries, each name checked, `.` and `..` left out; bounded in number.
    async fn list(&self, remote: &str) -> Result<Vec<(String, FileAttributes)>, TransferError> {
        let handle = self
            .sftp
            .opendir(remote)
            .await
            .map_err(|e| TransferError::guest(remote, &e))?
            .handle;
        let mut entries = Vec::new();
        let listed = loop {
            match self.sftp.readdir(handle.as_str()).await {
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(TransferError::guest(remote, &e)),
                Ok(name) if name.files.is_empty() => break Ok(()),
                Ok(name) => {
                    let names = name.files.into_iter();
                    let names = names.filter(|e| e.filename != "." && e.filename != "..");
                    let mut bad = None;
                    for entry in names {
                        if !is_plain_name(&entry.filename) {
                            bad = Some(entry.filename);
                            break;
                        }
                        entries.push((entry.filename, entry.attrs));
                    }
                    if let Some(bad) = bad {
                        break Err(TransferError::UntrustedName {
                            dir: remote.to_string(),
                            name: bad,
                        });
                    }
                    if entries.len() > MAX_ENTRIES {
                        break Err(TransferError::TooManyEntries {
                            dir: remote.to_string(),
                        });
                    }
                }
            }
        };
        let _ = self.sftp.close(handle).await;
        listed.map(|()| entries)
    }

    /// Makes a directory of the copy: new or an existing real directory, inside the
    /// destination.
    fn make_dir(&self, local: &Path) -> Result<(), TransferError> {
        match std::fs::DirBuilder::new().mode(0o755).create(local) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(local)
                    .map_err(|e| TransferError::local(local, &e))?;
                if !meta.is_dir() {
                    return Err(TransferError::NotADirectory {
                        path: local.to_path_buf(),
                    });
                }
            }
            Err(e) => return Err(TransferError::local(local, &e)),
            Ok(()) => {}
        }
        self.check_inside(local)
    }

    fn check_inside(&self, local: &Path) -> Result<(), TransferError> {
        let real = std::fs::canonicalize(local).map_err(|e| TransferError::local(local, &e))?;
        if real.starts_with(&self.inside) {
            Ok(())
        } else {
            Err(TransferError::Outside {
                path: local.to_path_buf(),
                real,
                inside: self.inside.clone(),
            })
        }
    }

    /// Copies one file in reads of `READ_SIZE`, straight to disk. Inside a directory copy
    /// (`guest_named`), the local file is never opened through a link.
    async fn file(
        &mut self,
        remote: &str,
        local: &Path,
        attrs: &FileAttributes,
        guest_named: bool,
    ) -> Result<usize, TransferError> {
        let mode = attrs.permissions.map_or(0o644, |p| p & 0o777);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(mode);
        if guest_named {
            options.custom_flags(libc::O_NOFOLLOW);
            if let Some(parent) = local.parent() {
                self.check_inside(parent)?;
            }
        }
        let mut out = options
            .open(local)
            .map_err(|e| TransferError::local(local, &e))?;
        let handle = self
            .sftp
            .open(remote, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(|e| TransferError::guest(remote, &e))?
            .handle;
        let mut offset = 0u64;
        let copied = loop {
            match self.sftp.read(handle.as_str(), offset, READ_SIZE).await {
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(TransferError::guest(remote, &e)),
                Ok(data) if data.data.is_empty() => break Ok(()),
                Ok(data) => {
                    if let Err(e) = out.write_all(&data.data) {
                        break Err(TransferError::local(local, &e));
                    }
                    offset += data.data.len() as u64;
                }
            }
        };
        let _ = self.sftp.close(handle).await;
        copied?;
        self.result.files += 1;
        Ok(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Link,
    Other,
}

/// The type bits of a mode, compared whole (a link's bits include a regular file's).
fn kind(attrs: &FileAttributes) -> Kind {
    match attrs.permissions.map(|p| p & 0o170_000) {
        Some(0o040_000) => Kind::Directory,
        Some(0o100_000) => Kind::File,
        Some(0o120_000) => Kind::Link,
        _ => Kind::Other,
    }
}

/// One plain path component: not empty, not `.` or `..`, without `/` or NUL.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_components_are_names() {
        for good in ["a", "a.b", "..a", "...", "é x"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in ["", ".", "..", "x/..", "../x", "/etc", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_read_as_they_always_have() {
        let io = |kind| std::io::Error::from(kind);
        let local = |kind| TransferError::local(Path::new("/tmp/x"), &io(kind)).to_string();
        assert_eq!(
            local(std::io::ErrorKind::NotFound),
            "/tmp/x: no such file or directory"
        );
        assert_eq!(
            local(std::io::ErrorKind::PermissionDenied),
            "/tmp/x: permission denied"
        );
        let eisdir = std::io::Error::from_raw_os_error(libc::EISDIR);
        assert_eq!(FileError::of_io(&eisdir), FileError::IsADirectory);
        let erofs = std::io::Error::from_raw_os_error(libc::EROFS);
        assert_eq!(
            FileError::of_io(&erofs),
            FileError::Other("read-only file system".into())
        );
        let bad = TransferError::UntrustedName {
            dir: "/srv".into(),
            name: "../x\n".into(),
        };
        assert_eq!(
            bad.to_string(),
            "the guest listed an entry named \"../x\\n\" in /srv: a name must be one path component, so the copy stopped there"
        );
        let deep = TransferError::LocalTooDeep {
            path: PathBuf::from("a"),
        };
        assert_eq!(
            deep.to_string(),
            "a is more than 64 directories deep (a loop of links?)"
        );
    }
}
