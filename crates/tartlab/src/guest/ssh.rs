//! An SSH client for guests (russh) over any byte stream the provider gives (a TCP socket for
//! tart, a tunnel for others): password or key login, host keys checked against the keys
//! pinned for that VM, commands run with their exit status and stdout and stderr apart, each
//! output line offered to the caller as it arrives (who may answer on stdin), and SFTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;

use crate::provider::Endpoint;

/// How a connection failed, sorted by what the caller should do about it.
#[derive(Debug)]
pub enum SshError {
    /// Not listening yet, reset during startup, timed out: worth another try.
    Unreachable(String),
    /// The VM presented a key other than the one pinned for it.
    HostKeyChanged { presented: String },
    /// The server refused these credentials.
    AuthRejected,
}

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SshError::Unreachable(e) => write!(f, "cannot reach sshd: {e}"),
            SshError::HostKeyChanged { presented } => {
                write!(f, "the VM's host key changed (it now presents {presented})")
            }
            SshError::AuthRejected => write!(f, "login refused"),
        }
    }
}

/// Credentials for one login.
#[derive(Clone, Copy)]
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
pub struct Connection {
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

/// Which output a line came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the caller answers to a line of output.
pub enum Reply {
    Nothing,
    /// Send this on the command's stdin, then close it.
    SendAndClose(Vec<u8>),
}

/// A command's stdin: all of it at once, or (`answered`) nothing until the caller's line
/// handler replies.
pub enum Input<'a> {
    Given(Option<&'a [u8]>),
    Answered,
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    })
}

/// One connection attempt: the stream, the handshake (host key checked against `pinned`;
/// empty trusts whatever is presented), then the login, all within `timeout`.
pub async fn connect(
    endpoint: &Endpoint,
    user: &str,
    auth: Auth<'_>,
    pinned: Vec<PublicKey>,
    timeout: Duration,
) -> Result<Connection, SshError> {
    match tokio::time::timeout(timeout, connect_now(endpoint, user, auth, pinned, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(SshError::Unreachable(format!(
            "no login within {} s",
            timeout.as_secs()
        ))),
    }
}

async fn connect_now(
    endpoint: &Endpoint,
    user: &str,
    auth: Auth<'_>,
    pinned: Vec<PublicKey>,
    timeout: Duration,
) -> Result<Connection, SshError> {
    let presented = Arc::new(Mutex::new(None));
    let had_pins = !pinned.is_empty();
    let check = HostKeyCheck {
        pinned,
        presented: presented.clone(),
    };
    let stream = endpoint
        .open(timeout)
        .await
        .map_err(|e| SshError::Unreachable(e.to_string()))?;
    let mut handle = match client::connect_stream(config(), stream, check).await {
        Err(russh::Error::UnknownKey) if had_pins => {
            let presented = presented
                .lock()
                .ok()
                .and_then(|k| k.as_ref().and_then(|k| k.to_openssh().ok()))
                .unwrap_or_else(|| "an unknown key".into());
            return Err(SshError::HostKeyChanged { presented });
        }
        Err(e) => return Err(SshError::Unreachable(e.to_string())),
        Ok(h) => h,
    };
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
    Ok(Connection { handle, host_key })
}

/// Collects a stream's bytes and hands each complete line to the caller as it arrives.
struct Lines {
    bytes: Vec<u8>,
    unread: usize,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            bytes: Vec::new(),
            unread: 0,
        }
    }

    fn push(&mut self, data: &[u8], mut each: impl FnMut(&str)) {
        self.bytes.extend_from_slice(data);
        while let Some(end) = self.bytes[self.unread..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&self.bytes[self.unread..self.unread + end]);
            each(line.trim_end_matches('\r'));
            self.unread += end + 1;
        }
    }
}

impl Connection {
    /// Runs one command (through the login shell's `sh -c`, as sshd does), feeding `stdin`,
    /// and collects everything it printed.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, String> {
        self.exec_with(command, Input::Given(stdin), &mut |_, _| Reply::Nothing)
            .await
    }

    /// `exec`, offering every output line to `on_line` as it arrives; with `Input::Answered`
    /// stdin stays open until `on_line` replies.
    pub async fn exec_with(
        &self,
        command: &str,
        input: Input<'_>,
        on_line: &mut (dyn FnMut(Stream, &str) -> Reply + Send),
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
        let mut replies = Vec::new();
        if let Input::Given(stdin) = input {
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
        }
        let (mut out, mut err) = (Lines::new(), Lines::new());
        let mut status = None;
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    out.push(&data, |line| replies.push(on_line(Stream::Stdout, line)))
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    err.push(&data, |line| replies.push(on_line(Stream::Stderr, line)))
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
            for reply in replies.drain(..) {
                if let Reply::SendAndClose(data) = reply {
                    channel
                        .data(&data[..])
                        .await
                        .map_err(|e| format!("cannot send input: {e}"))?;
                    channel
                        .eof()
                        .await
                        .map_err(|e| format!("cannot close input: {e}"))?;
                }
            }
        }
        Ok(Output {
            status,
            stdout: out.bytes,
            stderr: err.bytes,
        })
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

    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_handed_over_whole_however_the_bytes_arrive() {
        let mut lines = Lines::new();
        let mut seen = Vec::new();
        for chunk in ["a", "b\nc", "\r\n", "d"] {
            lines.push(chunk.as_bytes(), |l| seen.push(l.to_string()));
        }
        assert_eq!(seen, ["ab", "c"]);
        assert_eq!(lines.bytes, b"ab\nc\r\nd");
    }
}
