//! The lab file: found (`-f`, else `tartlab.yaml`, `.yml`, `.json`), parsed from YAML or
//! JSON into the typed model, validated with every problem located, and expanded into the
//! nodes that will exist (`Lab`).

mod check;
mod checker;
pub mod cloud_init;
mod diagnostic;
mod hint;
mod image;
pub mod input;
pub mod model;
pub mod mounts;
mod names;
mod network;
mod node;
mod reference;
mod selector;
mod size;
mod steps;
mod structure;
mod tree;
mod users;

use std::path::{Path, PathBuf};

use crate::text;

use check::validate;
pub use cloud_init::UserDataError;
pub use diagnostic::{Diagnostic, Source};
pub use input::NotRead;
use model::LabFile;
pub use model::Login;
pub use names::check_snapshot_name;
pub use network::NetworkMode;
pub use node::{named, Node};
pub use reference::{output_references, OutputReference, Scope};
pub use selector::{picks, selects};
pub use structure::{closest, schema};
pub use users::authorized_key_text;

/// A valid lab: the file as written, where it came from, and the nodes it declares (every
/// setting resolved, counts expanded, names as they will be).
pub struct Lab {
    pub file: LabFile,
    pub source: Source,
    pub nodes: Vec<Node>,
    /// The host files the lab file names, as `validate` read them (`input.rs`).
    pub inputs: input::Inputs,
}

impl Lab {
    /// Reads a lab file and checks it; every problem found, or the lab.
    pub fn open(path: &Path) -> Result<Lab, Vec<Diagnostic>> {
        let kind = input::Kind::LabFile;
        let confinement = input::Confinement::new(Path::new("."));
        let text = input::read(path, kind, &confinement)
            .map_err(|refusal| refusal.describe(kind, Path::new(".")))
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string()))
            .map_err(|why| {
                vec![Diagnostic::unlocated(
                    &format!("cannot read {}: it {why}", path.display()),
                    "check the path given with -f or TARTLAB_FILE",
                )]
            })?;
        read(Source::new(path, text))
    }

    pub fn name(&self) -> &str {
        &self.file.lab
    }

    /// The lab as `up` sees it, written as a lab file (`tartlab config`): every node on its
    /// own, `count` expanded, with every setting it gets, `defaults` applied and left empty,
    /// login passwords (and an Orchard token) replaced by `MASKED`. It is itself a valid lab
    /// file that makes the same nodes.
    pub fn resolved(&self) -> LabFile {
        self.resolved_with(Secrets::Masked)
    }

    /// `resolved`, with the secrets masked or, when the user asked for them, as they are.
    pub fn resolved_with(&self, secrets: Secrets) -> LabFile {
        let secret = |value: &str| match secrets {
            Secrets::Masked => MASKED.to_string(),
            Secrets::Shown => value.to_string(),
        };
        let clusters = self
            .file
            .clusters
            .iter()
            .map(|cluster| model::ClusterSpec {
                name: cluster.name.clone(),
                nodes: self
                    .nodes
                    .iter()
                    .filter(|n| n.cluster == cluster.name)
                    .map(|n| model::NodeSpec {
                        name: n
                            .hostname
                            .strip_prefix(&format!("{}-", n.cluster))
                            .unwrap_or(&n.hostname)
                            .to_string(),
                        role: Some(n.role.clone()),
                        count: None,
                        image: Some(n.image.clone()),
                        cpu: Some(n.cpu),
                        memory: Some(size::Mebibytes(n.memory)),
                        disk: n.disk.map(size::Gigabytes),
                        network: Some(n.network.to_spec()),
                        login: Some(model::Login {
                            user: n.login.user.clone(),
                            password: secret(&n.login.password),
                        }),
                        cloud_init: n.cloud_init.clone(),
                        mounts: (!n.mounts.is_empty())
                            .then(|| n.mounts.iter().map(mounts::Mount::written).collect()),
                        placement: n.placement.clone(),
                    })
                    .collect(),
                image: None,
                cpu: None,
                memory: None,
                disk: None,
                network: None,
                login: None,
                cloud_init: None,
                mounts: None,
                placement: model::Placement::default(),
            })
            .collect();
        let mut provider = self.file.provider.clone();
        if let model::ProviderChoice::Orchard(orchard) = &mut provider {
            orchard.token = orchard.token.as_deref().map(secret);
        }
        LabFile {
            defaults: model::Settings::default(),
            clusters,
            provider,
            ..self.file.clone()
        }
    }

    /// The node of this VM name (or host name, or the rule's name of a VM that keeps an
    /// older one: `Node::is_named`).
    pub fn node(&self, vm: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.vm_name == vm)
            .or_else(|| self.nodes.iter().find(|n| n.is_named(vm)))
    }

    /// Gives the first VM of each node with `count` the names an older tartlab gave it
    /// (`<cluster>-<node>`, at `count: 1`) when the lab owns a VM by that name and none by
    /// the rule's, so that an upgrade renames and recreates nothing (docs/LAB-FILE.md, "Names
    /// and `count`"). `owns` says whether the lab's state knows a VM of that name.
    pub fn keep_owned_names(&mut self, owns: impl Fn(&str) -> bool) {
        let taken: std::collections::HashSet<String> =
            self.nodes.iter().map(|n| n.vm_name.clone()).collect();
        for node in &mut self.nodes {
            let Some(older) = node.older_names() else {
                continue;
            };
            if !owns(&node.vm_name) && owns(&older.0) && !taken.contains(&older.0) {
                node.keep_names(older);
            }
        }
    }

    /// The line `plan` and `up` show while some VM keeps a name an older tartlab gave it:
    /// which, the rule's name, and how to move to it.
    pub fn kept_names_note(&self) -> Option<String> {
        let kept: Vec<(&str, &str)> = self
            .nodes
            .iter()
            .filter_map(|n| Some((n.vm_name.as_str(), n.naming.rule.as_ref()?.0.as_str())))
            .collect();
        let (first, first_rule) = *kept.first()?;
        let list: Vec<String> = kept
            .iter()
            .map(|(vm, rule)| format!("{vm} (by the rule {rule})"))
            .collect();
        let (verb, what) = if kept.len() == 1 {
            ("keeps", "the name it was made with")
        } else {
            ("keep", "the names they were made with")
        };
        Some(format!(
            "node names: a node with `count` is numbered at any count now (`-1` to `-N`), for the VMs made from now on; {} {verb} {what}, so nothing is renamed or recreated (`tartlab down {first}` then `tartlab up` makes it anew as {first_rule}; docs/LAB-FILE.md, \"Names and `count`\")",
            list.join(", ")
        ))
    }
}

/// What `resolved` puts in place of a secret.
pub const MASKED: &str = "********";

/// Whether `resolved` masks the lab file's secrets (login passwords, an Orchard token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Masked,
    /// As the lab file has them: only when the user asks (`config --show-secrets`).
    Shown,
}

/// The names a lab file goes by, in the order they are looked for.
pub const FILE_NAMES: [&str; 3] = ["tartlab.yaml", "tartlab.yml", "tartlab.json"];

/// Where the lab file is: `-f`, else `TARTLAB_FILE`, else the first of `FILE_NAMES` in the
/// current directory or the nearest parent that has one (as git and docker compose look),
/// not above a directory that holds `.git` (the top of the project). The search stops at
/// a directory or lab file that another user owns (not root, not this user, nor the user
/// who ran `sudo`): such a file is taken only when named with `-f` (git's
/// `safe.directory`, CVE-2022-24765).
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Box<Diagnostic>> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("TARTLAB_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut dir: Option<&Path> = Some(&here);
    let mut looked = 0;
    while let Some(current) = dir {
        looked += 1;
        let foreign_dir = foreign_owner(current);
        if let Some(found) = FILE_NAMES
            .iter()
            .map(|n| current.join(n))
            .find(|p| p.is_file())
        {
            if let Some(owner) = foreign_dir.or_else(|| foreign_owner(&found)) {
                let what = if foreign_dir.is_some() {
                    format!("its directory {}", current.display())
                } else {
                    "it".to_string()
                };
                return Err(Box::new(Diagnostic::unlocated(
                    &format!(
                        "found {}, but {what} belongs to {}, not to you: a lab file another user can write is not used unless you name it",
                        found.display(),
                        owner_text(owner)
                    ),
                    &format!(
                        "if you trust it, say so with `-f {}`; otherwise run tartlab in a directory of your own",
                        found.display()
                    ),
                )));
            }
            // Shown relative when it is here, as the user would write it.
            return Ok(if looked == 1 {
                found.file_name().map(PathBuf::from).unwrap_or(found)
            } else {
                found
            });
        }
        if let Some(owner) = foreign_dir {
            return Err(Box::new(Diagnostic::unlocated(
                &format!(
                    "no lab file here: looked for tartlab.yaml, tartlab.yml and tartlab.json in this directory and its parents up to {}, which belongs to {}, not to you, so the search stopped there",
                    current.display(),
                    owner_text(owner)
                ),
                "pass the lab file with -f FILE (or TARTLAB_FILE) if you trust it; `tartlab init` writes a new one",
            )));
        }
        if current.join(".git").exists() {
            break;
        }
        dir = current.parent();
    }
    Err(Box::new(Diagnostic::unlocated(
        "no lab file here: looked for tartlab.yaml, tartlab.yml and tartlab.json in this directory and its parents",
        "`tartlab init` writes one to start from (docs/LAB-FILE.md has every key), or pass one with -f FILE or TARTLAB_FILE",
    )))
}

/// The owner of a path when it is someone other than root, this user, or (when this is
/// root through `sudo`) the user who ran sudo.
fn foreign_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::symlink_metadata(path).ok()?.uid();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let sudo_user = (me == 0)
        .then(|| std::env::var("SUDO_UID").ok()?.parse::<u32>().ok())
        .flatten();
    (owner != 0 && owner != me && Some(owner) != sudo_user).then_some(owner)
}

/// `alice (uid 501)`, or `uid 4242` when the uid has no name here.
fn owner_text(uid: u32) -> String {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, which outlive the call; `result` is
    // either null or `&mut pwd`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_string_lossy();
    format!("{} (uid {uid})", text::printable(&name, text::QUOTED_NAME))
}

/// Checks lab file text (YAML, or JSON when the path ends in `.json`) in three passes, and
/// reports every problem of all three together, in the order they appear in the file:
/// syntax (the parser stops at the first), structure (`structure.rs`: unknown keys, wrong
/// types, missing keys) and meaning (`check.rs`: names, references, ranges, paths). The
/// meaning is checked on what passed the structure. Never panics, whatever the bytes: a
/// property test holds it to that.
pub fn read(source: Source) -> Result<Lab, Vec<Diagnostic>> {
    let parsed = if source.is_json() {
        tree::parse_json(&source.text)
    } else {
        tree::parse_yaml(&source.text)
    };
    let tree = parsed.map_err(|e| {
        vec![if e.at.is_known() {
            source.at_line(e.at.line, e.at.column, &e.message, e.help)
        } else {
            Diagnostic::unlocated(&e.message, e.help).in_file(&source)
        }]
    })?;
    let (problems, json, reading) = structure::check(&tree, source.is_json());
    let mut found: Vec<Diagnostic> = problems
        .iter()
        .map(|p| {
            if p.at.is_known() {
                source.at_line(p.at.line, p.at.column, &p.message, &p.help)
            } else {
                source.problem(&p.key, "", 0, p.message.clone(), p.help.clone())
            }
        })
        .collect();
    let file = match json.map(serde_json::from_value::<LabFile>) {
        Some(Ok(file)) => file,
        Some(Err(e)) if found.is_empty() => {
            return Err(vec![
                Diagnostic::unlocated(&e.to_string(), "").in_file(&source)
            ])
        }
        _ if found.is_empty() => {
            return Err(vec![Diagnostic::unlocated(
                "the lab file is not a mapping of keys",
                "start with `lab: NAME` and `clusters:`; `tartlab init` writes one to begin with",
            )
            .in_file(&source)])
        }
        _ => return Err(in_order(found)),
    };
    match validate(&file, &source, &reading) {
        Ok((nodes, inputs)) if found.is_empty() => Ok(Lab {
            file,
            source,
            nodes,
            inputs,
        }),
        Ok(_) => Err(in_order(found)),
        Err(more) => {
            found.extend(more);
            Err(in_order(found))
        }
    }
}

/// Problems in the order of the file (unlocated ones last), each once.
fn in_order(mut problems: Vec<Diagnostic>) -> Vec<Diagnostic> {
    problems.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
    problems.dedup_by(|a, b| a.message == b.message && a.line == b.line);
    problems
}
