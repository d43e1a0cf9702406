//! The OCI cache (`cache/OCIs/<host>/<namespace>/{<tag> -> sha256:<hex>}`) and `tart pull`,
//! served from a built-in list of images instead of a registry (reference sections 1.11, 4.1).

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;
use crate::knobs;
use crate::storage::{self, Home, VmConfig};

/// An image the simulated registry serves.
struct Image {
    repository: &'static str,
    tags: &'static [&'static str],
    hostname: &'static str,
    disk_gb: u64,
    /// The MAC baked into the image's config, the same on every host that pulls it.
    mac: &'static str,
}

const IMAGES: &[Image] = &[
    Image {
        repository: "ghcr.io/cirruslabs/ubuntu",
        tags: &["latest", "24.04", "noble"],
        hostname: "ubuntu",
        disk_gb: 20,
        mac: "7e:1c:f2:4a:78:30",
    },
    Image {
        repository: "ghcr.io/cirruslabs/ubuntu",
        tags: &["22.04", "jammy"],
        hostname: "ubuntu",
        disk_gb: 20,
        mac: "7e:1c:f2:4a:78:31",
    },
    Image {
        repository: "ghcr.io/cirruslabs/debian",
        tags: &["latest", "trixie"],
        hostname: "debian",
        disk_gb: 20,
        mac: "9a:0d:3c:51:e2:10",
    },
];

/// A parsed remote name: `host[:port]/namespace[:tag|@sha256:hex]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteName {
    pub host: String,
    pub namespace: String,
    pub reference: Reference,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

impl RemoteName {
    /// `None` when `name` is a local VM name (no `/`).
    pub fn parse(name: &str) -> Option<Result<RemoteName, Failure>> {
        let (host, rest) = name.split_once('/')?;
        let bad = || Failure::generic(format!("failed to parse remote name: {name}"));
        if host.is_empty() || rest.is_empty() {
            return Some(Err(bad()));
        }
        let (namespace, reference) = if let Some((ns, digest)) = rest.split_once('@') {
            (ns, Reference::Digest(digest.to_string()))
        } else if let Some((ns, tag)) = rest.rsplit_once(':') {
            (ns, Reference::Tag(tag.to_string()))
        } else {
            (rest, Reference::Tag("latest".to_string()))
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
        };
        if !valid(namespace) || !valid(host) {
            return Some(Err(bad()));
        }
        Some(Ok(RemoteName {
            host: host.to_string(),
            namespace: namespace.to_string(),
            reference,
        }))
    }

    pub fn repository(&self) -> String {
        format!("{}/{}", self.host, self.namespace)
    }

    fn repo_dir(&self, home: &Home) -> PathBuf {
        home.oci_dir().join(&self.host).join(&self.namespace)
    }

    fn image(&self) -> Option<&'static Image> {
        let repo = self.repository();
        IMAGES.iter().find(|i| {
            i.repository == repo
                && match &self.reference {
                    Reference::Tag(t) => i.tags.contains(&t.as_str()),
                    Reference::Digest(d) => *d == digest_of(i),
                }
        })
    }

    /// `tart fqn`: the name with its digest (`VMStorageOCI.digest`): the last component of
    /// the cache path with symlinks resolved, which must be a digest. A digest reference is
    /// its own answer, cached or not; a tag not in the cache is an OCI storage error.
    pub fn fully_qualified(&self, home: &Home) -> Result<String, Failure> {
        let digest = match &self.reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let entry = self.repo_dir(home).join(t);
                let resolved = fs::canonicalize(&entry).unwrap_or(entry);
                let last = resolved
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !last.starts_with("sha256:") {
                    return Err(Failure::generic(format!(
                        "OCI storage error: {} is not a digest and doesn't point to a digest",
                        display_name(self)
                    )));
                }
                last
            }
        };
        Ok(format!("{}@{digest}", self.repository()))
    }

    /// The cached image directory, if this name is in the cache.
    pub fn cached_dir(&self, home: &Home) -> Option<PathBuf> {
        let entry = match &self.reference {
            Reference::Tag(t) => self.repo_dir(home).join(t),
            Reference::Digest(d) => self.repo_dir(home).join(d),
        };
        let dir = fs::canonicalize(entry).ok()?;
        storage::is_initialized(&dir).then_some(dir)
    }
}

fn digest_of(image: &Image) -> String {
    // A stable fake digest: the image's identity spelled as 64 hex digits.
    let seed = format!("{}:{}", image.repository, image.tags[0]);
    let mut hex = String::new();
    let mut state: u64 = 0xcbf29ce484222325;
    while hex.len() < 64 {
        for b in seed.bytes() {
            state = (state ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        hex.push_str(&format!("{state:016x}"));
    }
    format!("sha256:{}", &hex[..64])
}

/// Pulls `name` into the cache. `explicit` is `tart pull` (vs. a pull done by `clone`).
pub fn pull(home: &Home, name: &RemoteName, explicit: bool) -> Result<PathBuf, Failure> {
    let out = |line: &str| {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{line}");
    };
    if explicit {
        out(&format!("pulling {}...", display_name(name)));
    }
    let host_dir = home.oci_dir().join(&name.host);
    fs::create_dir_all(&host_dir).map_err(|e| Failure::generic(e.to_string()))?;
    let _lock = lock_host(&host_dir, &out)?;
    out("pulling manifest...");
    let Some(image) = name.image() else {
        return Err(manifest_unknown());
    };
    let digest = digest_of(image);
    let repo_dir = name.repo_dir(home);
    let digest_dir = repo_dir.join(&digest);
    if storage::is_initialized(&digest_dir) {
        out(&format!(
            "{}@{digest} image is already cached and linked!",
            name.repository()
        ));
    } else {
        out(&format!(
            "pulling disk ({:.1} GB compressed)...",
            image.disk_gb as f64 / 20.0
        ));
        let staging = repo_dir.join(format!(
            ".pull-{}",
            storage::hex(&storage::random_bytes::<6>())
        ));
        fs::create_dir_all(&staging).map_err(|e| Failure::generic(e.to_string()))?;
        let built = build_image(&staging, image, crate::guest::Kind::for_new_images(home));
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        progress(knobs::pull_duration());
        out("pulling NVRAM...");
        let _ = fs::remove_dir_all(&digest_dir);
        fs::rename(&staging, &digest_dir).map_err(|e| Failure::generic(e.to_string()))?;
    }
    if let Reference::Tag(tag) = &name.reference {
        let link = repo_dir.join(tag);
        let tmp_link = repo_dir.join(format!(".{tag}.link"));
        let _ = fs::remove_file(&tmp_link);
        symlink(&digest, &tmp_link).map_err(|e| Failure::generic(e.to_string()))?;
        fs::rename(&tmp_link, &link).map_err(|e| Failure::generic(e.to_string()))?;
    }
    if explicit {
        let _ = fs::write(digest_dir.join(".explicitly-pulled"), b"");
    }
    Ok(digest_dir)
}

/// What tart says when the registry has no such manifest (tag or digest): the registry's
/// 404 body inside tart's `RegistryError.UnexpectedHTTPStatusCode`, which has no description,
/// so swift-argument-parser prints the value as Swift writes it (`Error: ` first, the body's
/// quotes escaped), exit 1 (reference section 0.1; tart's `OCI/Registry.swift`). Nothing is
/// retried: only URL errors are.
fn manifest_unknown() -> Failure {
    let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    Failure::prefixed(format!(
        "UnexpectedHTTPStatusCode(when: \"pulling manifest\", code: 404, details: \"{}\")",
        body.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn display_name(name: &RemoteName) -> String {
    match &name.reference {
        Reference::Tag(t) => format!("{}:{t}", name.repository()),
        Reference::Digest(d) => format!("{}@{d}", name.repository()),
    }
}

fn lock_host(host_dir: &Path, out: &dyn Fn(&str)) -> Result<fs::File, Failure> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(host_dir).map_err(|e| Failure::generic(e.to_string()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        out("waiting for lock...");
        // SAFETY: as above, blocking this time.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    }
    Ok(f)
}

/// Percent lines: new lines under `CI`, in-place ANSI updates otherwise, like tart.
fn progress(total: Duration) {
    let in_place = std::env::var_os("CI").is_none();
    let steps = 20u32;
    let mut stdout = std::io::stdout();
    for i in 0..=steps {
        let pct = i * 100 / steps;
        if in_place && i > 0 {
            let _ = write!(stdout, "\x1b[1A\x1b[K");
        }
        let _ = writeln!(stdout, "{pct}%");
        let _ = stdout.flush();
        if i < steps {
            std::thread::sleep(total / steps);
        }
    }
}

fn build_image(dir: &Path, image: &Image, kind: crate::guest::Kind) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::generic(e.to_string());
    VmConfig::new_linux(4, 4096, image.mac).write(&dir.join("config.json"))?;
    storage::create_sparse(&dir.join("disk.img"), image.disk_gb * 1_000_000_000).map_err(io)?;
    fs::write(dir.join("nvram.bin"), vec![0u8; 131_072]).map_err(io)?;
    fs::write(
        dir.join("manifest.json"),
        format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"annotations\":{{\"org.cirruslabs.tart.uncompressed-disk-size\":\"{}\"}}}}\n",
            image.disk_gb * 1_000_000_000
        ),
    )
    .map_err(io)?;
    crate::guest::setup_image(&dir.join("guest"), image.hostname, kind)
}

/// OCI cache entries for `tart list`: `(name, directory)` for tag links and digests.
pub fn cache_entries(home: &Home) -> Vec<(String, PathBuf)> {
    let mut entries = Vec::new();
    collect(&home.oci_dir(), &home.oci_dir(), &mut entries);
    entries.sort();
    entries
}

fn collect(root: &Path, dir: &Path, entries: &mut Vec<(String, PathBuf)>) {
    let Ok(read) = fs::read_dir(dir) else {
        return;
    };
    for entry in read.filter_map(Result::ok) {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().to_string();
        if file_name.starts_with('.') {
            continue;
        }
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let repo = dir
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if is_link {
            if let Ok(target) = fs::canonicalize(&path) {
                if storage::is_initialized(&target) {
                    entries.push((format!("{repo}:{file_name}"), target));
                }
            }
        } else if file_name.starts_with("sha256:") && storage::is_initialized(&path) {
            entries.push((format!("{repo}@{file_name}"), path));
        } else if path.is_dir() {
            collect(root, &path, entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_parse_tags_and_digests() {
        let n = RemoteName::parse("ghcr.io/cirruslabs/ubuntu:22.04")
            .unwrap()
            .unwrap();
        assert_eq!(n.repository(), "ghcr.io/cirruslabs/ubuntu");
        assert_eq!(n.reference, Reference::Tag("22.04".into()));
        let n = RemoteName::parse("ghcr.io/cirruslabs/ubuntu")
            .unwrap()
            .unwrap();
        assert_eq!(n.reference, Reference::Tag("latest".into()));
        assert!(RemoteName::parse("local-vm").is_none());
        assert!(RemoteName::parse("ghcr.io/Bad Name").unwrap().is_err());
    }

    #[test]
    fn tags_of_one_image_share_a_digest() {
        let a = RemoteName::parse("ghcr.io/cirruslabs/ubuntu:latest")
            .unwrap()
            .unwrap();
        let b = RemoteName::parse("ghcr.io/cirruslabs/ubuntu:24.04")
            .unwrap()
            .unwrap();
        assert_eq!(digest_of(a.image().unwrap()), digest_of(b.image().unwrap()));
    }
}
