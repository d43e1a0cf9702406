//! `tart run --dir [name:]path[:options]`: tart 2.31's `DirectoryShare` parse
//! (Sources/tart/Commands/Run.swift), its grouping of shares into one virtiofs device per
//! mount tag, and Virtualization.framework's refusal of a path that is not a directory.
//! The devices are handed to the guest's boot script as `guest/virtiofs.list`, which builds
//! them outside the guest's root (see `guest/boot.sh` and the crate README's "Shared
//! directories").

use std::path::{Path, PathBuf};

use crate::args::UsageError;
use crate::failure::Failure;

/// The tag every share gets unless it says `tag=`.
pub const AUTOMOUNT_TAG: &str = "com.apple.virtio-fs.automount";

/// One `--dir` value, parsed as tart parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: Option<String>,
    pub path: PathBuf,
    pub read_only: bool,
    pub tag: String,
}

impl Share {
    /// tart's `DirectoryShare(parseFrom:)`: options come only from the last `:` part, and
    /// only if one of its comma-separated words is `ro` or `tag=...` (others are ignored);
    /// the rest is `name:path` split at the first `:`, or a path.
    pub fn parse(raw: &str) -> Share {
        let mut parts: Vec<&str> = raw.split(':').filter(|p| !p.is_empty()).collect();
        let mut read_only = false;
        let mut tag = AUTOMOUNT_TAG.to_string();
        let mut found = false;
        if let Some(last) = parts.last() {
            for option in last.split(',').filter(|o| !o.is_empty()) {
                if option == "ro" {
                    read_only = true;
                    found = true;
                } else if let Some(t) = option.strip_prefix("tag=") {
                    tag = t.to_string();
                    found = true;
                }
            }
        }
        if found {
            parts.pop();
        }
        let rest = parts.join(":");
        let (name, path) = match rest.split_once(':') {
            Some((name, path)) => (Some(name.to_string()), path.to_string()),
            None => (None, rest),
        };
        Share {
            name,
            path: file_url_path(&path),
            read_only,
            tag,
        }
    }
}

/// `URL(fileURLWithPath: NSString(string: p).expandingTildeInPath)`: `~` is the home
/// directory, a relative path is relative to the working directory.
fn file_url_path(p: &str) -> PathBuf {
    let expanded = if p == "~" || p.starts_with("~/") {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}{}", &p[1..])
    } else {
        p.to_string()
    };
    let path = PathBuf::from(expanded);
    if path.is_absolute() {
        path
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

/// One virtiofs device: a tag and either one unnamed share (its directory is the root) or
/// named shares (a root holding one subdirectory per name).
#[derive(Debug)]
pub struct Device {
    pub tag: String,
    pub shares: Vec<Share>,
}

/// tart's `directoryShares()`: shares grouped by tag; a tag with more than one share needs
/// every one of them named (a ValidationError thrown from `run()`: root usage, exit 64).
pub fn devices(raw: &[String]) -> Result<Vec<Device>, Failure> {
    let mut devices: Vec<Device> = Vec::new();
    for share in raw.iter().map(|r| Share::parse(r)) {
        match devices.iter_mut().find(|d| d.tag == share.tag) {
            Some(d) => d.shares.push(share),
            None => devices.push(Device {
                tag: share.tag.clone(),
                shares: vec![share],
            }),
        }
    }
    for d in &devices {
        if d.shares.len() > 1 && d.shares.iter().any(|s| s.name.is_none()) {
            return Err(Failure::Usage(UsageError::root(
                "invalid --dir syntax: for multiple directory shares each one of them should be named".into(),
            )));
        }
    }
    Ok(devices)
}

/// `VZVirtualMachineConfiguration.validate()`: each shared path must be a directory. tart
/// throws the NSError from `run()`, so swift-argument-parser prints it with `Error:`, exit 1
/// (the text as tart 2.31.0 printed it in tart issue #1207).
pub fn validate(devices: &[Device]) -> Result<(), Failure> {
    for share in devices.iter().flat_map(|d| &d.shares) {
        let posix = match std::fs::metadata(&share.path) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => (20, "Not a directory"),
            Err(_) => (2, "No such file or directory"),
        };
        return Err(Failure::prefixed(format!(
            "Error Domain=VZErrorDomain Code=2 \"A directory sharing device configuration is invalid.\" UserInfo={{NSLocalizedFailure=Invalid virtual machine configuration., NSLocalizedFailureReason=A directory sharing device configuration is invalid., NSUnderlyingError=0x600003d5c0c0 {{Error Domain=NSPOSIXErrorDomain Code={} \"{}\"}}}}",
            posix.0, posix.1
        )));
    }
    Ok(())
}

/// Writes the devices for the guest's boot script, one share a line:
/// `INDEX TAB TAG TAB NAME-or-"-" TAB ro|rw TAB PATH`. No file, no devices.
pub fn write_list(guest_dir: &Path, devices: &[Device]) -> std::io::Result<()> {
    let list = guest_dir.join("virtiofs.list");
    if devices.is_empty() {
        return match std::fs::remove_file(&list) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for (index, d) in devices.iter().enumerate() {
        for s in &d.shares {
            let path = std::fs::canonicalize(&s.path)?;
            let fields = [d.tag.as_str(), s.name.as_deref().unwrap_or("-")];
            if fields
                .iter()
                .chain([&path.to_string_lossy().as_ref()])
                .any(|f| f.contains(['\t', '\n']))
            {
                return Err(std::io::Error::other(
                    "tart-sim: a --dir name, tag or path with a tab or newline cannot be simulated",
                ));
            }
            let mode = if s.read_only { "ro" } else { "rw" };
            text.push_str(&format!(
                "{index}\t{}\t{}\t{mode}\t{}\n",
                fields[0],
                fields[1],
                path.display()
            ));
        }
    }
    std::fs::write(list, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cases of tart's own Tests/TartTests/DirecotryShareTests.swift.
    #[test]
    fn parses_as_tart_does() {
        let s = Share::parse("build:/Users/admin/build");
        assert_eq!(
            (s.name.as_deref(), s.path.as_path(), s.read_only),
            (Some("build"), Path::new("/Users/admin/build"), false)
        );
        let s = Share::parse("build:/Users/admin/build:ro");
        assert_eq!((s.name.as_deref(), s.read_only), (Some("build"), true));
        let s = Share::parse("/Users/admin/build:ro");
        assert_eq!((s.name, s.read_only), (None, true));
        let s = Share::parse("/Users/admin/build:tag=foo-bar");
        assert_eq!((s.read_only, s.tag.as_str()), (false, "foo-bar"));
        let s = Share::parse("/Users/admin/build:tag=foo-bar,ro");
        assert_eq!((s.read_only, s.tag.as_str()), (true, "foo-bar"));
        let s = Share::parse("/Users/admin/build");
        assert_eq!(s.tag, AUTOMOUNT_TAG);
        // An unknown option is no option: "rw" becomes the path of a share named by the rest.
        let s = Share::parse("/x/y:rw");
        assert_eq!(s.name.as_deref(), Some("/x/y"));
        assert!(s.path.ends_with("rw"));
    }
}
