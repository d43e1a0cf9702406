//! Copies over SFTP: whole files written at once, and recursive copies to and from a guest
//! (`tartlab cp`), each into a directory when the destination is one, as scp does.

use std::path::Path;

use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt;

/// Whether a copy goes into directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Files only: a directory is an error.
    Files,
    /// Directories and everything in them (`-r`).
    Recursive,
}

type Copy<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, String>> + Send + 'a>>;

/// Writes a whole file over SFTP, creating or truncating it.
pub async fn put_bytes(sftp: &SftpSession, path: &str, data: &[u8]) -> Result<(), String> {
    let mut file = sftp.create(path).await.map_err(|e| e.to_string())?;
    file.write_all(data).await.map_err(|e| e.to_string())?;
    file.shutdown().await.map_err(|e| e.to_string())
}

async fn is_remote_dir(sftp: &SftpSession, path: &str) -> bool {
    sftp.metadata(path).await.is_ok_and(|m| m.is_dir())
}

/// Local to remote; into the remote directory when the destination is one. Returns how many
/// files were copied.
pub fn upload<'a>(
    sftp: &'a SftpSession,
    local: &'a Path,
    remote: &'a str,
    depth: Depth,
) -> Copy<'a> {
    Box::pin(async move {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = if is_remote_dir(sftp, remote).await {
            format!("{}/{name}", remote.trim_end_matches('/'))
        } else {
            remote.to_string()
        };
        if local.is_dir() {
            if depth == Depth::Files {
                return Err(format!("{} is a directory (use -r)", local.display()));
            }
            if !is_remote_dir(sftp, &target).await {
                sftp.create_dir(target.as_str())
                    .await
                    .map_err(|e| format!("{target}: {e}"))?;
            }
            let mut count = 0;
            let entries =
                std::fs::read_dir(local).map_err(|e| format!("{}: {e}", local.display()))?;
            for entry in entries.flatten() {
                count += upload(sftp, &entry.path(), &target, depth).await?;
            }
            return Ok(count);
        }
        let data = std::fs::read(local).map_err(|e| format!("{}: {e}", local.display()))?;
        put_bytes(sftp, &target, &data)
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        Ok(1)
    })
}

/// Remote to local; into the local directory when the destination is one. Returns how many
/// files were copied.
pub fn download<'a>(
    sftp: &'a SftpSession,
    remote: &'a str,
    local: &'a Path,
    depth: Depth,
) -> Copy<'a> {
    Box::pin(async move {
        let name = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .to_string();
        let target = if local.is_dir() {
            local.join(&name)
        } else {
            local.to_path_buf()
        };
        if is_remote_dir(sftp, remote).await {
            if depth == Depth::Files {
                return Err(format!("{remote} is a directory (use -r)"));
            }
            std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            let mut count = 0;
            let entries = sftp
                .read_dir(remote)
                .await
                .map_err(|e| format!("{remote}: {e}"))?;
            for entry in entries {
                let child = format!("{}/{}", remote.trim_end_matches('/'), entry.file_name());
                count += download(sftp, &child, &target, depth).await?;
            }
            return Ok(count);
        }
        let data = sftp
            .read(remote)
            .await
            .map_err(|e| format!("{remote}: {e}"))?;
        std::fs::write(&target, data).map_err(|e| format!("{}: {e}", target.display()))?;
        Ok(1)
    })
}
