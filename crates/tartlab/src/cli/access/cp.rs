//! `tartlab cp [NODE:]SRC [NODE:]DEST`: a file or, with `-r`, a directory copied to or from
//! a node over SFTP, with the lab key and the pinned host key; a copy that stops says what
//! to do for its kind of error.

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    guest_words, login_timeout, not_pinned_hint, provider_and_inventory, RunAs, NOT_PINNED,
};
use crate::cli::{no_such_node, out, runtime, FileArgs, LabSnapshot};
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth};
use crate::guest::transfer::{self, FileError, TransferError};
use crate::state::KnownHosts;

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

/// `NODE:PATH` split: `None` for a local path; an error naming the lab's nodes when the
/// part before `:` looks like a node that the lab does not have.
fn remote_part<'a>(snapshot: &LabSnapshot, text: &'a str) -> Result<Option<(&'a str, &'a str)>> {
    let Some((node, path)) = text.split_once(':') else {
        return Ok(None);
    };
    if snapshot.lab.node(node).is_some() {
        return Ok(Some((node, path)));
    }
    // `./a:b` or `/tmp/x:y` are local paths with a colon; `name:path` names a node.
    if node.is_empty() || node.contains('/') {
        return Ok(None);
    }
    Err(no_such_node(&snapshot.lab.nodes, node))
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

pub fn cp(args: &CpArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let (node_name, upload, remote_path, local) = match (
        remote_part(&snapshot, &args.source),
        remote_part(&snapshot, &args.destination),
    ) {
        (Ok(None), Ok(Some((n, p)))) => (n, true, p, PathBuf::from(&args.source)),
        (Ok(Some((n, p))), Ok(None)) => (n, false, p, PathBuf::from(&args.destination)),
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
    // `NODE:` alone is the home of the user copying, as in scp.
    let remote_path = if remote_path.is_empty() {
        ".".to_string()
    } else {
        remote_path.to_string()
    };
    let node = snapshot.node(node_name)?.clone();
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let ip = snapshot
        .address(&node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let login = node.login.user.clone();
    let run_as = RunAs::of(args.user.as_deref(), &login);
    let user = args.user.clone().unwrap_or_else(|| login.clone());
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let Some(pins) = ssh::Pins::of(KnownHosts::new(&snapshot.dir).pinned(&node.vm_name)) else {
        return Err(Error::fatal(
            format!(
                "cp {} {}: {NOT_PINNED}; nothing was copied",
                args.source, args.destination
            ),
            not_pinned_hint(&node.vm_name),
        ));
    };
    let dialer = provider.dialer(&node.vm_name, &ip);
    let depth = if args.recursive {
        transfer::Depth::Recursive
    } else {
        transfer::Depth::Files
    };
    let vm = node.vm_name.clone();
    let copied = runtime()?.block_on(async {
        let keys = ssh::HostKeys::Pinned(pins);
        let connection = ssh::connect(
            dialer.as_ref(),
            &login,
            Auth::Key(&key),
            keys,
            login_timeout(),
        )
        .await
        .map_err(|e| CopyFailure::Login(e.to_string()))?;
        let result = copy_over(
            &connection,
            &run_as,
            &vm,
            args,
            upload,
            &local,
            &remote_path,
            depth,
        )
        .await;
        connection.close().await;
        result
    });
    let done = copied.map_err(|e| {
        let hint = match &e {
            CopyFailure::Login(_) | CopyFailure::Session(_) => String::new(),
            CopyFailure::AsUser(_) | CopyFailure::Afterwards(_) => String::new(),
            CopyFailure::Transfer(e) => cp_hint(e, &user, node_name),
        };
        Error::fatal(
            format!(
                "cp {} {}: {}",
                args.source,
                args.destination,
                crate::text::printable(&e.to_string(), crate::text::MESSAGE)
            ),
            hint,
        )
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

/// The copy itself, on a connection as the login user: SFTP as that user, or by an
/// sftp-server run through its sudo as the other one; then `--owner` and `--mode`.
#[allow(clippy::too_many_arguments)]
async fn copy_over(
    connection: &ssh::Connection,
    run_as: &RunAs,
    vm: &str,
    args: &CpArgs,
    upload: bool,
    local: &std::path::Path,
    remote_path: &str,
    depth: transfer::Depth,
) -> std::result::Result<transfer::Downloaded, CopyFailure> {
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
    if !upload {
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
    let copied = transfer::upload(&sftp, local, remote_path, depth, 0).await;
    let _ = sftp.close().await;
    let files = copied.map_err(CopyFailure::Transfer)?;
    let recursive = (depth == transfer::Depth::Recursive).then_some("-R");
    let changes = [("chown", &args.owner), ("chmod", &args.mode)];
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
        }
    }
}

/// What to do about a copy that stopped, for the error it is.
fn cp_hint(error: &TransferError, user: &str, node: &str) -> String {
    const ADD_R: &str = "add -r to copy a directory and everything in it";
    match error {
        TransferError::Local { error, .. } | TransferError::Guest { error, .. } => match error {
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
