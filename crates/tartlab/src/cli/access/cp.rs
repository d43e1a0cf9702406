//! `tartlab cp [NODE:]SRC [NODE:]DEST`: a file or, with `-r`, a directory copied to or from
//! a node over SFTP, with the lab key and the pinned host key; a copy that stops says what
//! to do for its kind of error.

use std::path::PathBuf;
use std::sync::Arc;

use super::{login_timeout, not_pinned_hint, provider_and_inventory, NOT_PINNED};
use crate::cli::{no_such_node, out, runtime, FileArgs, LabSnapshot};
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth};
use crate::guest::transfer::{self, FileError, TransferError};
use crate::state::KnownHosts;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab cp ./app.conf dev-master:/tmp/app.conf\n  tartlab cp dev-master:.bashrc .          (NODE: alone is the login user's home)\n  tartlab cp -r dev-master:/var/log/k3s ./logs"
)]
pub struct CpArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Copy directories recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Connect as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
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
    // `NODE:` alone is the login user's home, as in scp.
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
    let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
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
    let copied = runtime()?.block_on(async {
        let keys = ssh::HostKeys::Pinned(pins);
        let connection = ssh::connect(
            dialer.as_ref(),
            &user,
            Auth::Key(&key),
            keys,
            login_timeout(),
        )
        .await
        .map_err(|e| CopyFailure::Login(e.to_string()))?;
        let result = if upload {
            let sftp = connection.sftp().await.map_err(CopyFailure::Session)?;
            let copied = transfer::upload(&sftp, &local, &remote_path, depth, 0).await;
            let _ = sftp.close().await;
            copied.map(|files| transfer::Downloaded {
                files,
                skipped: Vec::new(),
            })
        } else {
            let sftp = connection.sftp_raw().await.map_err(CopyFailure::Session)?;
            let copied = transfer::download(&sftp, &remote_path, &local, depth).await;
            let _ = sftp.close_session();
            copied
        };
        connection.close().await;
        result.map_err(CopyFailure::Transfer)
    });
    let done = copied.map_err(|e| {
        let hint = match &e {
            CopyFailure::Login(_) | CopyFailure::Session(_) => String::new(),
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

/// Why `cp` failed: the session to the guest did not open, or the copy stopped.
enum CopyFailure {
    Login(String),
    Session(ssh::SessionError),
    Transfer(TransferError),
}

impl std::fmt::Display for CopyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyFailure::Login(e) => f.write_str(e),
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
            FileError::PermissionDenied => format!("{user} may not read or write there: `--user root` copies as root, or choose a path {user} can write"),
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
