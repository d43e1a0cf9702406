//! `tartlab cp [NODE:]SRC [NODE:]DEST`: a file or, with `-r`, a directory copied to or from
//! a node over SFTP, with the lab key and the pinned host key; a copy that stops says what
//! to do for its kind of error. `SELECTOR:PATH` copies to or from each node it selects (from
//! each into `DEST/NODE/`), with a recap; `--user` copies by an sftp-server run through the
//! login user's sudo. The local side is checked before any node is reached.
//!
//! Over 500 lines, for a reason: one node's copy and several nodes' share the checks before
//! it and the hints after it, which read best next to each other.

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    guest_words, login_timeout, not_pinned_hint, provider_and_inventory, RunAs, NOT_PINNED,
};
use crate::cli::{out, runtime, select, FileArgs, LabSnapshot};
use crate::dial::Dialer;
use crate::engine::fanout;
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth};
use crate::guest::transfer::{self, FileError, TransferError};
use crate::state::KnownHosts;
use crate::ui;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab cp ./app.conf dev-master:/tmp/app.conf\n  tartlab cp dev-master:.bashrc .          (NODE: alone is the login user's home)\n  tartlab cp -r dev-master:/var/log/k3s ./logs\n  tartlab cp -u root --owner app:app --mode 0640 app.conf dev-master:/etc/app/   (as root, by the login user's sudo)"
)]
pub struct CpArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Copy directories recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Copy as this user (root, say) instead of the image's login user, by the login user's
    /// sudo: the images have no root login
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Who owns what is copied to a node (USER or USER:GROUP, as chown takes it; with -r,
    /// everything copied)
    #[arg(long, value_name = "USER[:GROUP]")]
    pub owner: Option<String>,
    /// The mode of what is copied to a node, as chmod takes it (0640, u=rw,go=r; with -r,
    /// everything copied: a symbolic mode such as u=rwX,go=rX suits directories too)
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// A local path, or NODE:PATH
    pub source: String,
    /// A local path, or NODE:PATH
    pub destination: String,
}

/// The nodes one side of a copy names: one node by its name, or a selector's nodes (a
/// glob, `cluster=`, `role=`, `all`, a list), each copied to in turn, or from into a
/// directory of its own.
enum Remote<'a> {
    One(&'a str, &'a str),
    Many(Vec<String>, &'a str),
}

/// `NODE:PATH` (or `SELECTOR:PATH`) split: `None` for a local path; an error naming the
/// lab's nodes when the part before `:` looks like a node or selector that matches none.
fn remote_part<'a>(snapshot: &LabSnapshot, text: &'a str) -> Result<Option<Remote<'a>>> {
    let Some((node, path)) = text.split_once(':') else {
        return Ok(None);
    };
    if snapshot.lab.node(node).is_some() {
        return Ok(Some(Remote::One(node, path)));
    }
    // `./a:b` or `/tmp/x:y` are local paths with a colon; `name:path` names a node.
    if node.is_empty() || node.contains('/') {
        return Ok(None);
    }
    let selected = select(&snapshot.lab.nodes, &[node.to_string()])?;
    Ok(Some(Remote::Many(selected, path)))
}

/// `--owner` and `--mode`, checked before anything is sent: only what chown and chmod
/// take, never an option.
fn check_owner_and_mode(args: &CpArgs, upload: bool) -> Result<()> {
    if !upload && (args.owner.is_some() || args.mode.is_some()) {
        return Err(Error::usage(
            "--owner and --mode set what is copied to a node; this copy is from one",
            "here, chown and chmod the local copy",
        ));
    }
    let user_part = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if let Some(owner) = &args.owner {
        let fine = match owner.split_once(':') {
            Some((user, group)) => user_part(user) && user_part(group),
            None => user_part(owner),
        };
        if !fine {
            return Err(Error::usage(
                format!("--owner `{owner}` is not USER or USER:GROUP"),
                "e.g. --owner app or --owner app:app (names or numeric ids)",
            ));
        }
    }
    if let Some(mode) = &args.mode {
        let octal = (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
        let symbolic = !mode.is_empty()
            && mode.chars().all(|c| "ugoa+-=rwxXst,".contains(c))
            && mode.chars().any(|c| "+-=".contains(c));
        if !(octal || symbolic) {
            return Err(Error::usage(
                format!("--mode `{mode}` is not a mode chmod takes"),
                "e.g. --mode 0640, or --mode u=rwX,go=rX for a tree",
            ));
        }
    }
    Ok(())
}

/// One node's copy, or each selected node's, and where it ends.
type Results = Vec<(
    String,
    std::result::Result<transfer::Downloaded, NodeFailure>,
)>;

impl CpArgs {
    fn depth(&self) -> transfer::Depth {
        if self.recursive {
            transfer::Depth::Recursive
        } else {
            transfer::Depth::Files
        }
    }
}

pub fn cp(args: &CpArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let (remote, upload, local) = match (
        remote_part(&snapshot, &args.source),
        remote_part(&snapshot, &args.destination),
    ) {
        (Ok(None), Ok(Some(r))) => (r, true, PathBuf::from(&args.source)),
        (Ok(Some(r)), Ok(None)) => (r, false, PathBuf::from(&args.destination)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
        _ => {
            let example = snapshot.lab.nodes.first().map_or("NODE", |n| &n.vm_name);
            return Err(Error::usage(
                "give one side as NODE:PATH and the other as a local path",
                format!("e.g. `tartlab cp ./app.conf {example}:/tmp/app.conf`"),
            ));
        }
    };
    check_owner_and_mode(args, upload)?;
    if upload {
        check_local_side(args, &local)?;
    }
    let many = matches!(remote, Remote::Many(..));
    let (vms, remote_path) = match remote {
        Remote::One(vm, path) => (vec![vm.to_string()], path),
        Remote::Many(vms, path) => (vms, path),
    };
    if many && !upload {
        per_node_directories(&local, &vms)?;
    }
    let copy = Planned {
        upload,
        // Copied from several nodes, each goes into its own directory.
        local: |vm: &str| {
            if many && !upload {
                local.join(vm)
            } else {
                local.clone()
            }
        },
        // `NODE:` alone is the home of the user copying, as in scp.
        remote_path: if remote_path.is_empty() {
            "."
        } else {
            remote_path
        },
    };
    let jobs = copy_jobs(&snapshot, args, &vms, &copy)?;
    let results: Results = runtime()?
        .block_on(fanout::each(jobs, 8, |job| async move {
            let vm = job.vm.clone();
            (vm, job.run().await)
        }))
        .into_iter()
        .flatten()
        .collect();
    if many {
        return Ok(recap(&results, args.file.json));
    }
    one_node_report(args, results)
}

/// Everything wrong on this side is found, and named as this side's, before any node is
/// reached (and so before anything is made on one).
fn check_local_side(args: &CpArgs, local: &std::path::Path) -> Result<()> {
    transfer::check_local(local, args.depth()).map_err(|e| {
        Error::fatal(
            format!(
                "cp {} {}: on this machine, {}; nothing was copied",
                args.source,
                args.destination,
                crate::text::printable(&e.to_string(), crate::text::MESSAGE)
            ),
            local_hint(&e),
        )
    })?;
    Ok(())
}

/// What every node's copy shares: its direction, where it goes on this side, and the path
/// on the node.
struct Planned<'a, L: Fn(&str) -> PathBuf> {
    upload: bool,
    local: L,
    remote_path: &'a str,
}

/// One job per node, each with its way in (or why there is none), gathered before any node
/// is sent anything.
fn copy_jobs<L: Fn(&str) -> PathBuf>(
    snapshot: &LabSnapshot,
    args: &CpArgs,
    vms: &[String],
    copy: &Planned<'_, L>,
) -> Result<Vec<CopyJob>> {
    let (provider, inventory) = provider_and_inventory(snapshot)?;
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let known = KnownHosts::new(&snapshot.dir);
    vms.iter()
        .map(|vm| {
            let node = snapshot.node(vm)?;
            let login = node.login.user.clone();
            Ok(CopyJob {
                vm: vm.clone(),
                run_as: RunAs::of(args.user.as_deref(), &login),
                user: args.user.clone().unwrap_or_else(|| login.clone()),
                login,
                dialer: snapshot
                    .address(node, &inventory)
                    .map(|ip| provider.dialer(vm, &ip)),
                pins: ssh::Pins::of(known.pinned(vm)),
                key: key.clone(),
                upload: copy.upload,
                local: (copy.local)(vm),
                remote_path: copy.remote_path.to_string(),
                depth: args.depth(),
                owner: args.owner.clone(),
                mode: args.mode.clone(),
            })
        })
        .collect()
}

/// A copy to or from one node: what it copied, or its error with the hint for its kind.
fn one_node_report(args: &CpArgs, results: Results) -> Result<Exit> {
    let Some((vm, result)) = results.into_iter().next() else {
        return Err(Error::fatal("cp: the copy did not run (a bug)", ""));
    };
    let done = result.map_err(|failure| match failure {
        NodeFailure::Unreachable(e) => Error::fatal(e, ""),
        NodeFailure::NotPinned => Error::fatal(
            format!(
                "cp {} {}: {NOT_PINNED}; nothing was copied",
                args.source, args.destination
            ),
            not_pinned_hint(&vm),
        ),
        NodeFailure::Copy { failure, hint } => Error::fatal(
            format!(
                "cp {} {}: {}",
                args.source,
                args.destination,
                crate::text::printable(&failure.to_string(), crate::text::MESSAGE)
            ),
            hint,
        ),
    })?;
    if args.file.json {
        out(&serde_json::json!({ "copied": done.files, "skipped": done.skipped }).to_string());
    } else {
        for skipped in &done.skipped {
            eprintln!("not copied: {skipped}");
        }
        eprintln!("copied {} file(s)", done.files);
    }
    Ok(Exit::Ok)
}

/// A copy from several nodes goes into DEST/NODE, one directory per node, made here (DEST
/// too) before anything is read: scp's rule for several sources, that the destination is a
/// directory, with names that cannot collide.
fn per_node_directories(local: &std::path::Path, vms: &[String]) -> Result<()> {
    let refuse = |why: String| {
        Error::usage(
            format!(
                "cp from several nodes copies into {}/NODE, one directory per node, but {why}",
                local.display()
            ),
            "give a directory (new or existing) as the destination",
        )
    };
    match std::fs::symlink_metadata(local) {
        Ok(meta) if !meta.is_dir() => {
            return Err(refuse(format!("{} is not a directory", local.display())))
        }
        _ => {}
    }
    for vm in vms {
        let dir = local.join(vm);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(Error::fatal(
                format!(
                    "cp: cannot make the local directory {}: {e}; nothing was copied",
                    dir.display()
                ),
                "choose a destination you can write",
            ));
        }
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
            return Err(refuse(format!("{} is not a directory", dir.display())));
        }
    }
    Ok(())
}

/// What one node's copy did, for the recap and `--json`.
#[derive(serde::Serialize)]
struct NodeCopied<'a> {
    node: &'a str,
    copied: usize,
    skipped: &'a [String],
    error: Option<String>,
    hint: Option<&'a str>,
}

/// The recap of a copy to or from several nodes (a table on stderr, or one JSON object),
/// and its exit: 0, 1 when every node failed, 3 when some did.
fn recap(
    results: &[(
        String,
        std::result::Result<transfer::Downloaded, NodeFailure>,
    )],
    json: bool,
) -> Exit {
    let rows: Vec<NodeCopied> = results
        .iter()
        .map(|(vm, result)| match result {
            Ok(done) => NodeCopied {
                node: vm,
                copied: done.files,
                skipped: &done.skipped,
                error: None,
                hint: None,
            },
            Err(failure) => NodeCopied {
                node: vm,
                copied: 0,
                skipped: &[],
                error: Some(failure.words()),
                hint: failure.hint().filter(|h| !h.is_empty()),
            },
        })
        .collect();
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let exit = Exit::for_results(failed, rows.len());
    if json {
        out(&serde_json::json!({ "results": rows, "exit_code": exit.code() }).to_string());
        return exit;
    }
    for row in &rows {
        for skipped in row.skipped {
            eprintln!("{} | not copied: {skipped}", row.node);
        }
        if let Some(hint) = row.hint {
            eprintln!("{} | hint: {hint}", row.node);
        }
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.node.to_string(),
                r.copied.to_string(),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    eprintln!("{}", ui::table(&["NODE", "FILES", "ERROR"], &table));
    eprintln!(
        "cp: {} of {} node(s) copied",
        rows.len() - failed,
        rows.len()
    );
    exit
}

/// Why one node's copy did not happen: no way to it, no pinned host key, or the copy failed
/// (with the hint for its kind).
enum NodeFailure {
    Unreachable(String),
    NotPinned,
    Copy { failure: CopyFailure, hint: String },
}

impl NodeFailure {
    fn words(&self) -> String {
        match self {
            NodeFailure::Unreachable(e) => e.clone(),
            NodeFailure::NotPinned => format!("{NOT_PINNED}; nothing was copied"),
            NodeFailure::Copy { failure, .. } => {
                crate::text::printable(&failure.to_string(), crate::text::MESSAGE).into_owned()
            }
        }
    }

    fn hint(&self) -> Option<&str> {
        match self {
            NodeFailure::Copy { hint, .. } => Some(hint),
            _ => None,
        }
    }
}

/// Everything one node's copy needs, gathered before any node is sent anything.
struct CopyJob {
    vm: String,
    login: String,
    /// Who copies: the login user, or another by its sudo.
    run_as: RunAs,
    user: String,
    dialer: std::result::Result<Arc<dyn Dialer>, String>,
    pins: Option<ssh::Pins>,
    key: Arc<russh::keys::PrivateKey>,
    upload: bool,
    local: PathBuf,
    remote_path: String,
    depth: transfer::Depth,
    owner: Option<String>,
    mode: Option<String>,
}

impl CopyJob {
    async fn run(self) -> std::result::Result<transfer::Downloaded, NodeFailure> {
        let dialer = self.dialer.clone().map_err(NodeFailure::Unreachable)?;
        let pins = self.pins.clone().ok_or(NodeFailure::NotPinned)?;
        let copied = async {
            let connection = ssh::connect(
                dialer.as_ref(),
                &self.login,
                Auth::Key(&self.key),
                ssh::HostKeys::Pinned(pins),
                login_timeout(),
            )
            .await
            .map_err(|e| CopyFailure::Login(e.to_string()))?;
            let result = copy_over(&connection, &self).await;
            connection.close().await;
            result
        };
        copied.await.map_err(|failure| {
            let hint = match &failure {
                CopyFailure::Transfer(e) | CopyFailure::UploadStopped(e) => {
                    cp_hint(e, &self.user, &self.vm)
                }
                _ => String::new(),
            };
            NodeFailure::Copy { failure, hint }
        })
    }
}

/// The copy itself, on a connection as the login user: SFTP as that user, or by an
/// sftp-server run through its sudo as the other one; then `--owner` and `--mode`.
async fn copy_over(
    connection: &ssh::Connection,
    job: &CopyJob,
) -> std::result::Result<transfer::Downloaded, CopyFailure> {
    let (run_as, vm) = (&job.run_as, job.vm.as_str());
    let (local, remote_path, depth) = (job.local.as_path(), job.remote_path.as_str(), job.depth);
    let server = match run_as.wrap(vm, "sftp-server", None) {
        None => None,
        Some(find) => {
            let found = connection
                .exec(&find, None)
                .await
                .map_err(CopyFailure::Session)?;
            if !found.success() {
                return Err(CopyFailure::AsUser(guest_words(&found.stderr_text())));
            }
            let path = found.stdout_text().trim().to_string();
            run_as.wrap(vm, "sftp", Some(&path))
        }
    };
    if !job.upload {
        let sftp = connection
            .sftp_raw_by(server.as_deref())
            .await
            .map_err(CopyFailure::Session)?;
        let copied = transfer::download(&sftp, remote_path, local, depth).await;
        let _ = sftp.close_session();
        return copied.map_err(CopyFailure::Transfer);
    }
    let sftp = connection
        .sftp_by(server.as_deref())
        .await
        .map_err(CopyFailure::Session)?;
    let target = transfer::upload_target(&sftp, local, remote_path).await;
    let copied = transfer::upload(&sftp, local, remote_path, depth).await;
    let _ = sftp.close().await;
    let files = copied.map_err(CopyFailure::UploadStopped)?;
    let recursive = (depth == transfer::Depth::Recursive).then_some("-R");
    let changes = [("chown", &job.owner), ("chmod", &job.mode)];
    for (program, value) in changes {
        let Some(value) = value else { continue };
        let mut words = vec![program];
        words.extend(recursive);
        words.extend(["--", value.as_str(), target.as_str()]);
        let command = run_as.command(vm, &crate::quote::command(&words));
        let done = connection
            .exec(&command, None)
            .await
            .map_err(CopyFailure::Session)?;
        if !done.success() {
            return Err(CopyFailure::Afterwards(format!(
                "copied {files} file(s) to {vm}:{target}, then `{}` failed: {}",
                words.join(" "),
                guest_words(&done.stderr_text())
            )));
        }
    }
    Ok(transfer::Downloaded {
        files,
        skipped: Vec::new(),
    })
}

/// Why `cp` failed: the session to the guest did not open, the login user could not act as
/// the user asked for, the copy stopped, or `--owner`/`--mode` failed after it.
enum CopyFailure {
    Login(String),
    Session(ssh::SessionError),
    AsUser(String),
    Transfer(TransferError),
    /// An upload that stopped, after it removed what it had made.
    UploadStopped(TransferError),
    Afterwards(String),
}

impl std::fmt::Display for CopyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyFailure::Login(e) | CopyFailure::AsUser(e) | CopyFailure::Afterwards(e) => {
                f.write_str(e)
            }
            CopyFailure::Session(e) => e.fmt(f),
            CopyFailure::Transfer(e) => e.fmt(f),
            CopyFailure::UploadStopped(e) => {
                write!(f, "{e}; what this copy had made on the node was removed")
            }
        }
    }
}

const ADD_R: &str = "add -r to copy a directory and everything in it";

/// What to do about a local file or tree that cannot be copied.
fn local_hint(error: &TransferError) -> String {
    match error {
        TransferError::DanglingLink { path, .. } => format!(
            "the problem is here, not on the node: cp follows links, and {} leads nowhere; fix or remove it, then copy again",
            path.display()
        ),
        TransferError::Local { path, error } => match error {
            FileError::NotFound => format!(
                "the problem is here, not on the node: {} is a path on this machine (relative to the directory you run tartlab in)",
                path.display()
            ),
            FileError::PermissionDenied => format!(
                "the problem is here, not on the node: you may not read {} on this machine",
                path.display()
            ),
            _ => "the problem is here, not on the node".into(),
        },
        TransferError::IsDirectory { .. } => ADD_R.into(),
        TransferError::LocalTooDeep { .. } => {
            "a link in the tree leads back into it, most likely: copy the tree without it".into()
        }
        TransferError::LocalNotAFile { .. } => "copy files and directories only".into(),
        _ => String::new(),
    }
}

/// What to do about a copy that stopped, for the error it is.
fn cp_hint(error: &TransferError, user: &str, node: &str) -> String {
    match error {
        TransferError::Local { .. } | TransferError::DanglingLink { .. } => local_hint(error),
        TransferError::Guest { error, .. } => match error {
            FileError::PermissionDenied => format!("{user} may not read or write there: `--user root` copies as root (by the login user's sudo; --owner and --mode set the result), or choose a path {user} can write"),
            FileError::NotFound => format!("remote paths are as {user} sees them, relative to their home; `{node}:` alone is that home"),
            FileError::IsADirectory => ADD_R.into(),
            FileError::Other(_) => String::new(),
        },
        TransferError::IsDirectory { .. } => ADD_R.into(),
        TransferError::UntrustedName { .. } => {
            "the guest's listing cannot be trusted; nothing was written outside the destination".into()
        }
        _ => String::new(),
    }
}
#[cfg(test)]
mod tests {
    use super::{cp_hint, FileError, TransferError};

    #[test]
    fn a_copy_that_stopped_gets_the_hint_for_its_kind_of_error() {
        let hint = |e: TransferError| cp_hint(&e, "admin", "dev-a");
        let guest = |error| TransferError::Guest {
            path: "/root/x".into(),
            error,
        };
        assert!(hint(guest(FileError::PermissionDenied)).contains("`--user root`"));
        assert!(hint(guest(FileError::NotFound)).contains("`dev-a:` alone is that home"));
        assert!(hint(TransferError::IsDirectory {
            path: "/etc".into()
        })
        .starts_with("add -r"));
        let untrusted = TransferError::UntrustedName {
            dir: "/srv".into(),
            name: "..".into(),
        };
        assert!(hint(untrusted).contains("cannot be trusted"));
        // Words that merely read like a known error get no hint: only the kind counts.
        assert_eq!(
            hint(guest(FileError::Other("permission denied".into()))),
            ""
        );
    }
}
