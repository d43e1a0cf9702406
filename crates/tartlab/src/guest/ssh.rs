//! An SSH client for guests (russh): password or key login, host keys checked against the
//! keys pinned for that VM, commands run with their exit status, stdout and stderr apart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;

/// The prefix of a line a guest command prints on stderr to say what it is waiting for.
pub const NOTE_PREFIX: &str = "tartlab-note: ";

/// How a connection failed, sorted by what the caller should do about it.
#[derive(Debug)]
pub enum SshError {
    /// Not listening yet, reset during startup, timed out: worth another try.
    Unreachable(String),
    /// The VM presented a key other than the one pinned for it.
    HostKeyChanged {
        presented: String,
    },
    /// The server refused these credentials.
    AuthRejected,
    Other(String),
}

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SshError::Unreachable(e) => write!(f, "cannot reach sshd: {e}"),
            SshError::HostKeyChanged { presented } => {
                write!(f, "the VM's host key changed (it now presents {presented})")
            }
            SshError::AuthRejected => write!(f, "login refused"),
            SshError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Credentials for one login.
pub enum Auth<'a> {
    Key(&'a Arc<PrivateKey>),
    Password(&'a str),
}

struct HostKeyCheck {
    pinned: Vec<PublicKey>,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        if let Ok(mut seen) = self.presented.lock() {
            *seen = Some(key.clone());
        }
        Ok(self.pinned.is_empty() || self.pinned.iter().any(|p| p.key_data() == key.key_data()))
    }
}

/// An authenticated SSH connection.
pub struct Session {
    handle: Handle<HostKeyCheck>,
    /// The host key the server presented (to pin on first use).
    pub host_key: Option<PublicKey>,
}

/// What a remote command did.
#[derive(Debug, Default)]
pub struct Output {
    /// None when the command was killed by a signal or the connection dropped.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    })
}

/// One connection attempt: TCP, handshake (host key checked against `pinned`; empty trusts
/// whatever is presented), then login.
pub async fn connect(
    addr: &str,
    user: &str,
    auth: Auth<'_>,
    pinned: Vec<PublicKey>,
    timeout: Duration,
) -> Result<Session, SshError> {
    let presented = Arc::new(Mutex::new(None));
    let had_pins = !pinned.is_empty();
    let check = HostKeyCheck {
        pinned,
        presented: presented.clone(),
    };
    let connecting = client::connect(config(), (addr, 22), check);
    let handle = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => return Err(SshError::Unreachable("timed out".into())),
        Ok(Err(russh::Error::UnknownKey)) if had_pins => {
            let presented = presented
                .lock()
                .ok()
                .and_then(|k| k.as_ref().and_then(|k| k.to_openssh().ok()))
                .unwrap_or_else(|| "an unknown key".into());
            return Err(SshError::HostKeyChanged { presented });
        }
        Ok(Err(e)) => return Err(SshError::Unreachable(e.to_string())),
        Ok(Ok(h)) => h,
    };
    let mut handle = handle;
    let result = match auth {
        Auth::Password(password) => handle.authenticate_password(user, password).await,
        Auth::Key(key) => {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten();
            handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                .await
        }
    };
    match result {
        Ok(r) if r.success() => {}
        Ok(_) => return Err(SshError::AuthRejected),
        Err(e) => return Err(SshError::Unreachable(e.to_string())),
    }
    let host_key = presented.lock().ok().and_then(|k| k.clone());
    Ok(Session { handle, host_key })
}

impl Session {
    /// Runs one command (through the login shell's `sh -c`, as sshd does), feeding `stdin`
    /// if given, and collects everything it printed.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, String> {
        self.exec_noting(command, stdin, &|_| {}).await
    }

    /// `exec`, calling `on_note` as soon as the command prints a `tartlab-note: ` line on
    /// stderr (what it waits for), with the prefix removed.
    pub async fn exec_noting(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        on_note: &(dyn Fn(&str) + Sync),
    ) -> Result<Output, String> {
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open a session: {e}"))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| format!("cannot start the command: {e}"))?;
        if let Some(data) = stdin {
            channel
                .data(data)
                .await
                .map_err(|e| format!("cannot send input: {e}"))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| format!("cannot close input: {e}"))?;
        let mut output = Output::default();
        // Where the first stderr line not yet looked at for a note starts.
        let mut unread = 0;
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    output.stderr.extend_from_slice(&data);
                    while let Some(end) = output.stderr[unread..].iter().position(|b| *b == b'\n') {
                        let line = String::from_utf8_lossy(&output.stderr[unread..unread + end]);
                        if let Some(note) = line.strip_prefix(NOTE_PREFIX) {
                            on_note(note);
                        }
                        unread += end + 1;
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => output.status = Some(exit_status),
                _ => {}
            }
        }
        Ok(output)
    }

    /// An SFTP session on a new channel of this connection.
    pub async fn sftp(&self) -> Result<russh_sftp::client::SftpSession, String> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open a session: {e}"))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| format!("the server offers no SFTP: {e}"))?;
        russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| format!("SFTP did not start: {e}"))
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Writes a whole file over SFTP, creating or truncating it.
pub async fn sftp_put(
    sftp: &russh_sftp::client::SftpSession,
    path: &str,
    data: &[u8],
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut file = sftp.create(path).await.map_err(|e| e.to_string())?;
    file.write_all(data).await.map_err(|e| e.to_string())?;
    file.shutdown().await.map_err(|e| e.to_string())
}
