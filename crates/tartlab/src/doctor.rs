//! `tartlab doctor`: the host's readiness as named checks, each ok, a warning or failed,
//! with what was found and a one-line fix. The provider knows its own (`provider::tart::
//! doctor`); the lab's directory and key are checked in `cli`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failed,
}

/// One requirement: its name, how it stands, what was found, and what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub fn warning(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warning,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn failed(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Failed,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Bytes free for an unprivileged user on the filesystem that holds `path` (or its nearest
/// existing parent).
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut at = path;
    while !at.exists() {
        at = at.parent()?;
    }
    let c_path = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the struct we pass, for a NUL-terminated path.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Whether this process can make a file in `dir` (tried, then removed).
pub fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".tartlab-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map(|_| {
            let _ = std::fs::remove_file(&probe);
        })
}
