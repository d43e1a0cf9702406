//! An SSH client for guests (russh) over any byte stream the provider gives (a TCP socket for
//! tart, a tunnel for others): password or key login, host keys checked against the keys
//! pinned for that VM, commands run with their exit status and stdout and stderr apart, each
//! output line offered to the caller as it arrives (who may answer on stdin), and SFTP.
//!
//! Over 500 lines, for a reason: one russh handle type serves the login, the commands and
//! SFTP, and the host-key policy must sit where the handshake is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;

use crate::dial::Dialer;

/// How a connection failed, sorted by what the caller should do about it.
#[derive(Debug)]
pub enum SshError {
    /// Not listening yet, reset during startup, timed out: worth another try.
    Unreachable(String),
    /// The VM presented a key other than the one pinned for it.
    HostKeyChanged { presented: String },
    /// The server refused these credentials.
    AuthRejected,
    /// sshd answered (the handshake was done) but the login did not finish in time:
    /// something in the guest's login (PAM, NSS, ...) hangs.
    LoginStalled(Duration),
    /// At a first contact, the presented key could not be pinned.
    NotPinned(String),
}

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SshError::Unreachable(e) => write!(
                f,
                "cannot reach sshd: {}",
                crate::text::printable(e, crate::text::QUOTED_LINE)
            ),
            SshError::HostKeyChanged { presented } => {
                write!(f, "the VM's host key changed (it now presents {presented})")
            }
            SshError::AuthRejected => write!(f, "login refused"),
            SshError::NotPinned(e) => write!(f, "the VM's host key could not be pinned: {e}"),
            SshError::LoginStalled(time) => write!(
                f,
                "sshd answered but the login did not finish within {} s",
                time.as_secs()
            ),
        }
    }
}

/// Why a command or an SFTP session did not run on a connection that is open, by the step
/// that failed (with the SSH library's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    Open(String),
    Start(String),
    Input(String),
    CloseInput(String),
    NoSftp(String),
    SftpStart(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Open(e) => write!(f, "cannot open a session: {e}"),
            SessionError::Start(e) => write!(f, "cannot start the command: {e}"),
            SessionError::Input(e) => write!(f, "cannot send input: {e}"),
            SessionError::CloseInput(e) => write!(f, "cannot close input: {e}"),
            SessionError::NoSftp(e) => write!(f, "the server offers no SFTP: {e}"),
            SessionError::SftpStart(e) => write!(f, "SFTP did not start: {e}"),
        }
    }
}

/// Why a `direct-tcpip` channel (one forwarded TCP connection) did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelError {
    /// The guest's sshd tried and could not connect: nothing listens there.
    Refused,
    /// The guest's sshd does not forward TCP (`AllowTcpForwarding no`).
    Prohibited,
    /// Another refusal, as the server gave it.
    Other(String),
    /// The SSH connection is gone.
    Closed(String),
}

impl std::fmt::Display for TunnelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelError::Refused => write!(f, "connection refused"),
            TunnelError::Prohibited => write!(f, "sshd does not allow TCP forwarding"),
            TunnelError::Other(e) => write!(f, "the channel was refused: {e}"),
            TunnelError::Closed(e) => write!(f, "the SSH connection is gone: {e}"),
        }
    }
}

/// Credentials for one login.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Key(&'a Arc<PrivateKey>),
    Password(&'a str),
}

/// The host keys pinned for one VM: never none. A connection that logs in checks the VM's
/// key against these; `KnownHosts::pinned` gives the list, `Pins::of` refuses it empty.
#[derive(Clone)]
pub struct Pins(Vec<PublicKey>);

impl Pins {
    /// The pinned keys, or None when there are none: then nothing may log in to the VM but
    /// the `ssh` stage of `up`, which pins the key it meets (`HostKeys::FirstContact`).
    pub fn of(keys: Vec<PublicKey>) -> Option<Pins> {
        (!keys.is_empty()).then_some(Pins(keys))
    }
}

/// Which host keys a login accepts: the pinned ones, or (at the first contact) any key,
/// which is pinned before the connection is handed back.
pub enum HostKeys<'a> {
    Pinned(Pins),
    FirstContact(FirstContact<'a>),
}

/// Leave to log in to a VM whose host key is not pinned yet: the key it presents is taken,
/// and given to `pin` as soon as the login succeeds, before the connection is returned and
/// anything is sent; a pin that fails fails the login. So a first contact always ends in a
/// pinned key, and a command that cannot pin (`exec`, `cp`, `stop`) needs `Pins`.
pub struct FirstContact<'a> {
    pin: &'a (dyn Fn(&PublicKey) -> Result<(), String> + Sync),
}

impl<'a> FirstContact<'a> {
    pub fn pinning(pin: &'a (dyn Fn(&PublicKey) -> Result<(), String> + Sync)) -> Self {
        FirstContact { pin }
    }
}

/// What the handshake accepts; `None` accepts any key (first contact, or a handshake that
/// only looks at the key and never logs in).
struct HostKeyCheck {
    pinned: Option<Vec<PublicKey>>,
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
        Ok(match &self.pinned {
            None => true,
            Some(pinned) => pinned.iter().any(|p| p.key_data() == key.key_data()),
        })
    }
}

/// An authenticated SSH connection.
pub struct Connection {
    handle: Handle<HostKeyCheck>,
    /// The host key the server presented (to pin on first use).
    pub host_key: Option<PublicKey>,
}

/// What a remote command did. Each output is its last `TAIL_CAP` bytes at most; every line
/// was offered to the caller as it came.
#[derive(Debug, Default)]
pub struct Output {
    /// None when the command was killed by a signal or the connection dropped.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes printed before the kept ones, on stdout and on stderr.
    pub dropped: (u64, u64),
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

/// A command's stdin: all of it at once, (`answered`) nothing until the caller's line
/// handler replies, or (`streamed`) each chunk as it comes, closed when the sender goes.
pub enum Input<'a> {
    Given(Option<&'a [u8]>),
    Answered,
    Streamed(tokio::sync::mpsc::Receiver<Vec<u8>>),
}

/// What came first while a command runs with streamed input.
enum Next {
    Message(Option<ChannelMsg>),
    Chunk(Option<Vec<u8>>),
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    })
}

/// For a connection held open while nothing is sent (`forward`): no inactivity limit (a
/// keepalive does not reset it), and a peer that misses three keepalives, 15 s apart, ends it.
fn held_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        ..Default::default()
    })
}

/// One connection attempt: the stream, the handshake (the host key checked as `keys` says),
/// then the login, all within `timeout`.
pub async fn connect(
    dialer: &dyn Dialer,
    user: &str,
    auth: Auth<'_>,
    keys: HostKeys<'_>,
    timeout: Duration,
) -> Result<Connection, SshError> {
    connect_configured(config(), dialer, user, auth, keys, timeout).await
}

/// `connect`, for a connection that stays open while idle, as long as the peer answers
/// keepalives (`forward`'s); only pinned keys, as nothing that holds it may pin.
pub async fn connect_held(
    dialer: &dyn Dialer,
    user: &str,
    auth: Auth<'_>,
    pins: Pins,
    timeout: Duration,
) -> Result<Connection, SshError> {
    let keys = HostKeys::Pinned(pins);
    connect_configured(held_config(), dialer, user, auth, keys, timeout).await
}

async fn connect_configured(
    config: Arc<client::Config>,
    dialer: &dyn Dialer,
    user: &str,
    auth: Auth<'_>,
    keys: HostKeys<'_>,
    timeout: Duration,
) -> Result<Connection, SshError> {
    let (pinned, first) = match keys {
        HostKeys::Pinned(Pins(keys)) => (Some(keys), None),
        HostKeys::FirstContact(first) => (None, Some(first)),
    };
    let answered = AtomicBool::new(false);
    let attempt = connect_now(config, dialer, user, auth, pinned, timeout, &answered);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(connection)) => match (first, &connection.host_key) {
            (None, _) => Ok(connection),
            (Some(first), Some(key)) => match (first.pin)(key) {
                Ok(()) => Ok(connection),
                Err(e) => {
                    connection.close().await;
                    Err(SshError::NotPinned(e))
                }
            },
            (Some(_), None) => {
                connection.close().await;
                Err(SshError::NotPinned(
                    "the server presented no host key".into(),
                ))
            }
        },
        Ok(result) => result,
        Err(_) if answered.load(Ordering::SeqCst) => Err(SshError::LoginStalled(timeout)),
        Err(_) => Err(SshError::Unreachable(format!(
            "no SSH handshake within {} s",
            timeout.as_secs()
        ))),
    }
}

async fn connect_now(
    config: Arc<client::Config>,
    dialer: &dyn Dialer,
    user: &str,
    auth: Auth<'_>,
    pinned: Option<Vec<PublicKey>>,
    timeout: Duration,
    answered: &AtomicBool,
) -> Result<Connection, SshError> {
    let presented = Arc::new(Mutex::new(None));
    let had_pins = pinned.is_some();
    let check = HostKeyCheck {
        pinned,
        presented: presented.clone(),
    };
    let stream = dialer
        .open(timeout)
        .await
        .map_err(|e| SshError::Unreachable(e.to_string()))?;
    let mut handle = match client::connect_stream(config, stream, check).await {
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
    answered.store(true, Ordering::SeqCst);
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

/// The host key a guest's sshd presents now: a handshake only, within `timeout`. It
/// accepts any key to learn which one is served, and so never logs in or sends anything.
pub async fn host_key(dialer: &dyn Dialer, timeout: Duration) -> Result<PublicKey, SshError> {
    let presented = Arc::new(Mutex::new(None));
    let check = HostKeyCheck {
        pinned: None,
        presented: presented.clone(),
    };
    let handshake = async {
        let stream = dialer
            .open(timeout)
            .await
            .map_err(|e| SshError::Unreachable(e.to_string()))?;
        let handle = client::connect_stream(config(), stream, check)
            .await
            .map_err(|e| SshError::Unreachable(e.to_string()))?;
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok::<(), SshError>(())
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(SshError::Unreachable(format!(
                "no SSH handshake within {} s",
                timeout.as_secs()
            )))
        }
    }
    presented
        .lock()
        .ok()
        .and_then(|k| k.clone())
        .ok_or_else(|| SshError::Unreachable("no host key was presented".into()))
}

/// The longest line handed over whole: the rest of a longer line is counted, not kept.
pub const LINE_CAP: usize = 64 * 1024;
/// How much of each output stream a command's result keeps in memory: its last bytes.
pub const TAIL_CAP: usize = 1024 * 1024;

/// Splits a stream's bytes into lines, handing each to the caller as it arrives, in bounded
/// memory: a line longer than `LINE_CAP` is handed over cut (with a note of what was cut),
/// and only the stream's last `TAIL_CAP` bytes are kept.
struct Lines {
    partial: Vec<u8>,
    /// Bytes of the current line beyond `LINE_CAP`.
    cut: u64,
    tail: Vec<u8>,
    /// Bytes dropped from the front of `tail`.
    dropped: u64,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            partial: Vec::new(),
            cut: 0,
            tail: Vec::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, data: &[u8], each: &mut impl FnMut(&str)) {
        self.keep(data);
        let mut rest = data;
        while !rest.is_empty() {
            let end = rest.iter().position(|b| *b == b'\n');
            let piece = &rest[..end.unwrap_or(rest.len())];
            let room = LINE_CAP.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&piece[..piece.len().min(room)]);
            self.cut += piece.len().saturating_sub(room) as u64;
            match end {
                Some(end) => {
                    self.hand_over(each);
                    rest = &rest[end + 1..];
                }
                None => break,
            }
        }
    }

    /// Hands over what is left of an unterminated last line.
    fn finish(&mut self, each: &mut impl FnMut(&str)) {
        if !self.partial.is_empty() || self.cut > 0 {
            self.hand_over(each);
        }
    }

    fn hand_over(&mut self, each: &mut impl FnMut(&str)) {
        let text = String::from_utf8_lossy(&self.partial);
        let text = text.trim_end_matches('\r');
        if self.cut > 0 {
            each(&format!("{text} [line cut: {} more bytes]", self.cut));
        } else {
            each(text);
        }
        self.partial.clear();
        self.cut = 0;
    }

    fn keep(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * TAIL_CAP {
            let excess = self.tail.len() - TAIL_CAP;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The kept bytes (at most `TAIL_CAP`) and how many came before them.
    fn into_tail(mut self) -> (Vec<u8>, u64) {
        if self.tail.len() > TAIL_CAP {
            let excess = self.tail.len() - TAIL_CAP;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
        (self.tail, self.dropped)
    }
}

impl Connection {
    /// Runs one command (through the login shell's `sh -c`, as sshd does), feeding `stdin`,
    /// and collects everything it printed.
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SessionError> {
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
    ) -> Result<Output, SessionError> {
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| SessionError::Open(e.to_string()))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| SessionError::Start(e.to_string()))?;
        let mut replies = Vec::new();
        let mut feed = None;
        match input {
            Input::Given(stdin) => {
                if let Some(data) = stdin {
                    channel
                        .data(data)
                        .await
                        .map_err(|e| SessionError::Input(e.to_string()))?;
                }
                channel
                    .eof()
                    .await
                    .map_err(|e| SessionError::CloseInput(e.to_string()))?;
            }
            Input::Answered => {}
            Input::Streamed(chunks) => feed = Some(chunks),
        }
        let (mut out, mut err) = (Lines::new(), Lines::new());
        let mut status = None;
        loop {
            let next = match feed.as_mut() {
                Some(chunks) => tokio::select! {
                    message = channel.wait() => Next::Message(message),
                    chunk = chunks.recv() => Next::Chunk(chunk),
                },
                None => Next::Message(channel.wait().await),
            };
            let message = match next {
                Next::Chunk(Some(data)) => {
                    channel
                        .data(&data[..])
                        .await
                        .map_err(|e| SessionError::Input(e.to_string()))?;
                    continue;
                }
                Next::Chunk(None) => {
                    feed = None;
                    channel
                        .eof()
                        .await
                        .map_err(|e| SessionError::CloseInput(e.to_string()))?;
                    continue;
                }
                Next::Message(None) => break,
                Next::Message(Some(message)) => message,
            };
            match message {
                ChannelMsg::Data { data } => out.push(&data, &mut |line| {
                    replies.push(on_line(Stream::Stdout, line))
                }),
                ChannelMsg::ExtendedData { data, ext: 1 } => err.push(&data, &mut |line| {
                    replies.push(on_line(Stream::Stderr, line))
                }),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
            for reply in replies.drain(..) {
                if let Reply::SendAndClose(data) = reply {
                    channel
                        .data(&data[..])
                        .await
                        .map_err(|e| SessionError::Input(e.to_string()))?;
                    channel
                        .eof()
                        .await
                        .map_err(|e| SessionError::CloseInput(e.to_string()))?;
                }
            }
        }
        out.finish(&mut |line| {
            on_line(Stream::Stdout, line);
        });
        err.finish(&mut |line| {
            on_line(Stream::Stderr, line);
        });
        let (stdout, out_dropped) = out.into_tail();
        let (stderr, err_dropped) = err.into_tail();
        Ok(Output {
            status,
            stdout,
            stderr,
            dropped: (out_dropped, err_dropped),
        })
    }

    /// A new channel of this connection running the SFTP subsystem, or (`server`) this
    /// command, which speaks SFTP on its stdin and stdout (an sftp-server run through sudo).
    async fn sftp_channel(
        &self,
        server: Option<&str>,
    ) -> Result<russh::ChannelStream<client::Msg>, SessionError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| SessionError::Open(e.to_string()))?;
        match server {
            None => channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| SessionError::NoSftp(e.to_string()))?,
            Some(command) => channel
                .exec(true, command)
                .await
                .map_err(|e| SessionError::NoSftp(e.to_string()))?,
        }
        Ok(channel.into_stream())
    }

    /// An SFTP session on a new channel of this connection.
    pub async fn sftp(&self) -> Result<russh_sftp::client::SftpSession, SessionError> {
        self.sftp_by(None).await
    }

    /// `sftp`, by the subsystem or (`server`) by this command.
    pub async fn sftp_by(
        &self,
        server: Option<&str>,
    ) -> Result<russh_sftp::client::SftpSession, SessionError> {
        russh_sftp::client::SftpSession::new(self.sftp_channel(server).await?)
            .await
            .map_err(|e| SessionError::SftpStart(e.to_string()))
    }

    /// A bare SFTP session (each request answered or timed out on its own), for reading a
    /// guest's tree in bounded steps.
    pub async fn sftp_raw(&self) -> Result<russh_sftp::client::RawSftpSession, SessionError> {
        self.sftp_raw_by(None).await
    }

    /// `sftp_raw`, by the subsystem or (`server`) by this command.
    pub async fn sftp_raw_by(
        &self,
        server: Option<&str>,
    ) -> Result<russh_sftp::client::RawSftpSession, SessionError> {
        let session = russh_sftp::client::RawSftpSession::new(self.sftp_channel(server).await?);
        session
            .init()
            .await
            .map_err(|e| SessionError::SftpStart(e.to_string()))?;
        Ok(session)
    }

    /// A TCP connection made by the guest to `host:port` (as the guest sees them), carried
    /// by a `direct-tcpip` channel of this connection: what `ssh -L` opens per connection.
    /// `from` is the local peer, which the server may log.
    pub async fn tunnel(
        &self,
        host: &str,
        port: u16,
        from: std::net::SocketAddr,
    ) -> Result<russh::ChannelStream<client::Msg>, TunnelError> {
        use russh::ChannelOpenFailure as Failure;
        let opened = self
            .handle
            .channel_open_direct_tcpip(
                host,
                u32::from(port),
                from.ip().to_string(),
                u32::from(from.port()),
            )
            .await;
        match opened {
            Ok(channel) => Ok(channel.into_stream()),
            Err(russh::Error::ChannelOpenFailure(Failure::ConnectFailed)) => {
                Err(TunnelError::Refused)
            }
            Err(russh::Error::ChannelOpenFailure(Failure::AdministrativelyProhibited)) => {
                Err(TunnelError::Prohibited)
            }
            Err(russh::Error::ChannelOpenFailure(other)) => {
                Err(TunnelError::Other(format!("{other:?}")))
            }
            Err(e) => Err(TunnelError::Closed(e.to_string())),
        }
    }

    /// Whether the connection has ended (the server, the network or a keepalive ended it).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
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

    fn lines_of(chunks: &[&[u8]]) -> (Vec<String>, Lines) {
        let mut lines = Lines::new();
        let mut seen = Vec::new();
        for chunk in chunks {
            lines.push(chunk, &mut |l| seen.push(l.to_string()));
        }
        lines.finish(&mut |l| seen.push(l.to_string()));
        (seen, lines)
    }

    #[test]
    fn lines_are_handed_over_whole_however_the_bytes_arrive() {
        let (seen, lines) = lines_of(&[b"a", b"b\nc", b"\r\n", b"d"]);
        assert_eq!(seen, ["ab", "c", "d"]);
        assert_eq!(lines.into_tail(), (b"ab\nc\r\nd".to_vec(), 0));
    }

    #[test]
    fn a_long_line_is_cut_and_says_so_and_the_next_line_is_whole() {
        let long = vec![b'x'; LINE_CAP + 10];
        let (seen, _) = lines_of(&[&long[..100], &long[100..], b"\nnext\n"]);
        assert_eq!(seen.len(), 2);
        assert!(seen[0].starts_with(&"x".repeat(LINE_CAP)));
        assert!(
            seen[0].ends_with(" [line cut: 10 more bytes]"),
            "{}",
            &seen[0][LINE_CAP..]
        );
        assert_eq!(seen[1], "next");
    }

    #[test]
    fn only_the_last_bytes_are_kept_and_the_rest_is_counted() {
        let chunk = vec![b'y'; 300 * 1024];
        let mut lines = Lines::new();
        for _ in 0..10 {
            lines.push(&chunk, &mut |_| {});
            assert!(lines.tail.len() <= 2 * TAIL_CAP);
        }
        lines.push(b"end", &mut |_| {});
        let (tail, dropped) = lines.into_tail();
        assert_eq!(tail.len(), TAIL_CAP);
        assert!(tail.ends_with(b"yend"));
        assert_eq!(dropped + tail.len() as u64, 10 * 300 * 1024 + 3);
    }
}
