//! Host folders in the nodes (`mounts:` on `defaults`, a cluster or a node): the key as
//! written (the long form or compose's and tart's short `HOST:GUEST[:ro]`), its checks
//! (the host path an existing directory, the guest path absolute and no system directory,
//! one mount per guest path) and the mounts a node gets, host paths resolved. The nearest
//! list wins, as for every setting: a node's replaces its cluster's, which replaces
//! `defaults`'.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::checker::{at, expand_home, Checker, Here};
use super::model::ProviderChoice;

/// A host directory shared with the guest (tart's virtiofs), as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MountSpec {
    /// `HOST:GUEST`, `HOST:GUEST:ro` or `HOST:GUEST:rw`, as compose and tart write it.
    Short(String),
    /// `{ host: ./manifests, guest: /srv/manifests, read_only: true }`.
    Long(MountLong),
}

/// A mount in the long form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-name" = "a mount"))]
pub struct MountLong {
    /// The directory on this Mac: absolute, `~/...`, or relative to the lab file.
    pub host: String,
    /// Where the node sees it: an absolute path, not a system directory.
    pub guest: String,
    /// The guest may read but not write. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl MountSpec {
    /// Host, guest and read-only, or why the short form is not one.
    fn parts(&self) -> Result<(String, String, bool), String> {
        match self {
            MountSpec::Long(m) => Ok((m.host.clone(), m.guest.clone(), m.read_only)),
            MountSpec::Short(s) => {
                let words: Vec<&str> = s.split(':').collect();
                match words.as_slice() {
                    [h, g] if !h.is_empty() && !g.is_empty() => {
                        Ok((h.to_string(), g.to_string(), false))
                    }
                    [h, g, mode @ ("ro" | "rw")] if !h.is_empty() && !g.is_empty() => {
                        Ok((h.to_string(), g.to_string(), *mode == "ro"))
                    }
                    _ => Err(format!(
                        "mount `{s}` is not HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:rw"
                    )),
                }
            }
        }
    }
}

/// A node's mount, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host directory as the lab file writes it.
    pub host: String,
    /// Its real path on this Mac.
    pub host_path: PathBuf,
    /// Where the guest mounts it.
    pub guest: String,
    pub read_only: bool,
}

impl Mount {
    /// The long form, with the host's real path (`config`).
    pub fn written(&self) -> MountSpec {
        MountSpec::Long(MountLong {
            host: self.host_path.display().to_string(),
            guest: self.guest.clone(),
            read_only: self.read_only,
        })
    }
}

/// The virtiofs tag of a node's `index`th mount: one device per mount, so each has its own
/// guest path and its own read-only (tart's tags may be up to 36 bytes).
pub fn tag(index: usize) -> String {
    format!("tartlab-{index}")
}

/// `tart run --dir PATH[:ro],tag=TAG` for each mount: unnamed (a device of one directory is
/// its root), the path checked to hold no `:` or `,`, options always last.
pub fn dir_flags(mounts: &[Mount]) -> Vec<String> {
    mounts
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            let ro = if m.read_only { "ro," } else { "" };
            [
                "--dir".to_string(),
                format!("{}:{ro}tag={}", m.host_path.display(), tag(i)),
            ]
        })
        .collect()
}

/// The guest's `/etc/fstab` lines for the mounts (`nofail`: a boot without the device, as
/// after the mount was removed, goes on).
pub fn fstab_lines(mounts: &[Mount]) -> String {
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mode = if m.read_only { "ro" } else { "rw" };
            format!("{} {} virtiofs {mode},nofail 0 0", tag(i), m.guest)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `HOST -> GUEST (ro)`, one per mount, for plans.
pub fn describe(mounts: &[Mount]) -> String {
    if mounts.is_empty() {
        return "none".into();
    }
    mounts
        .iter()
        .map(|m| {
            let ro = if m.read_only { " (ro)" } else { "" };
            format!("{}:{}{ro}", m.host, m.guest)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Directories a mount may not cover: the guest's own system, which a host folder over it
/// would hide or break. Their subdirectories are fine, except under the kernel's and the
/// runtime's own (`/proc`, `/sys`, `/dev`, `/run`).
const SYSTEM: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/usr/local",
    "/var/lib",
    "/var/log",
];
/// The guest's virtual file systems, by their top-level name: nothing under them is a mount point.
const VIRTUAL: &[&str] = &["proc", "sys", "dev", "run"];

/// `/a//b/` as `/a/b`.
fn normal(guest: &str) -> String {
    let parts: Vec<&str> = guest.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Checks every `mounts` list where it is written and returns each place's mounts, by the
/// model path of its list (`defaults.mounts`, `clusters.0.mounts`, ...).
pub(super) fn check_list(
    c: &mut Checker,
    provider: &ProviderChoice,
    list_path: &str,
    list: &[MountSpec],
) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for (i, spec) in list.iter().enumerate() {
        let here = at(list_path, i);
        let (host, guest, read_only) = match spec.parts() {
            Ok(parts) => parts,
            Err(message) => {
                c.error(
                    Here::Value(here),
                    message,
                    "write `./host/dir:/guest/dir`, with `:ro` for read-only, or { host: ..., guest: ..., read_only: true }",
                );
                continue;
            }
        };
        let (host_here, guest_here) = match spec {
            MountSpec::Long(_) => (at(&here, "host"), at(&here, "guest")),
            MountSpec::Short(_) => (here.clone(), here.clone()),
        };
        if matches!(provider, ProviderChoice::Orchard(_)) {
            continue;
        }
        let host_path = host_directory(c, &host, &host_here);
        let guest_ok = guest_directory(c, &guest, &guest_here);
        let normal_guest = normal(&guest);
        if guest_ok && mounts.iter().any(|m| m.guest == normal_guest) {
            c.error(
                Here::Value(guest_here),
                format!("two mounts on guest path `{normal_guest}`"),
                "give each mount its own guest path",
            );
            continue;
        }
        if let (Some(host_path), true) = (host_path, guest_ok) {
            mounts.push(Mount {
                host,
                host_path,
                guest: normal_guest,
                read_only,
            });
        }
    }
    mounts
}

/// The host path: an existing directory, whose path tart's `--dir` can carry.
fn host_directory(c: &mut Checker, host: &str, here: &str) -> Option<PathBuf> {
    let help = "name an existing directory: absolute, `~/...`, or relative to the lab file";
    let path = expand_home(host, c.source);
    let path = if path.is_absolute() {
        path
    } else {
        c.source.dir().join(path)
    };
    let problem = match std::fs::canonicalize(&path) {
        Ok(real) if real.is_dir() => {
            if real.to_string_lossy().contains([':', ',', '\n', '\t']) {
                format!(
                    "mount host path `{host}` has a `:`, `,`, tab or newline, which tart's `--dir` cannot carry"
                )
            } else {
                return Some(real);
            }
        }
        Ok(_) => format!("mount host path `{host}` is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("mount host directory `{host}` does not exist")
        }
        Err(e) => format!("mount host path `{host}` cannot be used: {e}"),
    };
    c.error(Here::Value(here.to_string()), problem, help);
    None
}

/// The guest path: absolute, plain, and no system directory.
fn guest_directory(c: &mut Checker, guest: &str, here: &str) -> bool {
    let problem = if !guest.starts_with('/') {
        format!("mount guest path `{guest}` is not absolute")
    } else if guest.split('/').any(|p| p == ".." || p == ".") {
        format!("mount guest path `{guest}` has `.` or `..` in it")
    } else if guest.contains(['\n', '\t', ' ', '\\']) {
        format!("mount guest path `{guest}` has a space, tab, newline or backslash")
    } else {
        let g = normal(guest);
        if SYSTEM.contains(&g.as_str())
            || g.split('/')
                .nth(1)
                .is_some_and(|top| VIRTUAL.contains(&top))
        {
            format!("mount guest path `{g}` is a system directory of the guest")
        } else {
            return true;
        }
    };
    c.error(
        Here::Value(here.to_string()),
        problem,
        "mount at a directory of its own, e.g. /srv/manifests or /opt/code",
    );
    false
}
