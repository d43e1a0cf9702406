//! The way into a guest, as its provider gives it: a `Dialer` opens a byte stream to the
//! guest's sshd within a deadline, names itself for messages, and tells OpenSSH how to get
//! there (a host and port, or tartlab's own `proxy` command). A leaf module: `guest/` (the
//! SSH client) and `provider/` (who makes the dialers) both use it and neither uses the
//! other. Modelled on kind's `nodes.Node` (the provider owns the transport) and Lima's
//! hostagent (the SSH address is the driver's to give).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future, for the async methods of trait objects (which cannot have `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream to a guest's sshd.
pub trait GuestStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> GuestStream for T {}

/// How the system's OpenSSH reaches a guest (for `ssh`, `ssh-config` and `inventory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshRoute {
    /// Straight to a host and port the host can reach.
    Direct { host: String, port: u16 },
    /// Only through tartlab: `ProxyCommand tartlab proxy NODE` carries the bytes.
    Proxy,
}

/// Opens byte streams to one guest's sshd.
pub trait Dialer: Send + Sync {
    /// A new stream, or why not, within `timeout`.
    fn open(&self, timeout: Duration) -> BoxFuture<'_, io::Result<Box<dyn GuestStream>>>;

    /// Where it goes, for messages: `127.0.0.5:22`, `the Orchard controller at URL`.
    fn describe(&self) -> String;

    /// How OpenSSH gets there.
    fn route(&self) -> SshRoute;
}

/// A TCP connection to an address the host reaches directly (tart's VMs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpDialer {
    pub host: String,
    pub port: u16,
}

impl TcpDialer {
    /// The guest's sshd at `address`, port 22.
    pub fn ssh_at(address: &str) -> TcpDialer {
        TcpDialer {
            host: address.to_string(),
            port: 22,
        }
    }
}

impl Dialer for TcpDialer {
    fn open(&self, timeout: Duration) -> BoxFuture<'_, io::Result<Box<dyn GuestStream>>> {
        Box::pin(async move {
            let connecting = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
            let stream = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as Box<dyn GuestStream>)
        })
    }

    fn describe(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn route(&self) -> SshRoute {
        SshRoute::Direct {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// Copies `input` to the stream and the stream to `output` until both directions end (the
/// body of `tartlab proxy`, and of any relay a test needs).
pub async fn relay<I, O>(
    stream: Box<dyn GuestStream>,
    mut input: I,
    mut output: O,
) -> io::Result<()>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let (mut from_guest, mut to_guest) = tokio::io::split(stream);
    let upstream = async {
        tokio::io::copy(&mut input, &mut to_guest).await?;
        tokio::io::AsyncWriteExt::shutdown(&mut to_guest).await
    };
    let downstream = async {
        tokio::io::copy(&mut from_guest, &mut output).await?;
        tokio::io::AsyncWriteExt::flush(&mut output).await
    };
    // The guest closing its side ends the session, whatever stdin still holds.
    tokio::select! {
        result = downstream => result,
        result = async { upstream.await?; std::future::pending::<io::Result<()>>().await } => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tcp_dialer_names_its_address_and_fails_on_a_closed_port() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let dialer = TcpDialer {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(dialer.describe(), format!("127.0.0.1:{port}"));
        assert_eq!(
            dialer.route(),
            SshRoute::Direct {
                host: "127.0.0.1".into(),
                port
            }
        );
        assert!(dialer.open(Duration::from_secs(2)).await.is_err());
    }

    #[tokio::test]
    async fn relay_carries_bytes_both_ways() {
        let (near, mut far) = tokio::io::duplex(64);
        let echo = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut got = [0u8; 5];
            far.read_exact(&mut got).await.unwrap();
            far.write_all(b"pong:").await.unwrap();
            far.write_all(&got).await.unwrap();
            got
        });
        let mut out = Vec::new();
        relay(Box::new(near), &b"hello"[..], &mut out)
            .await
            .unwrap();
        assert_eq!(&echo.await.unwrap(), b"hello");
        assert_eq!(out, b"pong:hello");
    }
}
