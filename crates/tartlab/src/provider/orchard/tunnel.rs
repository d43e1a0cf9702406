//! The way into an Orchard VM: the controller's WebSocket port-forward
//! (`GET /v1/vms/NAME/port-forward?port=22&wait=N`, shared/orchard-api.md §2.5), which carries
//! the guest's TCP stream in binary messages. The upgrade is made through the same HTTP
//! client as the REST calls (one TLS set-up), and a task pumps bytes between the WebSocket
//! and one end of an in-memory pipe, whose other end is the `GuestStream` the SSH client
//! reads and writes; reading keeps answering the controller's pings. What comes in is
//! bounded: a message of at most `MAX_MESSAGE_BYTES`, and once our side has ended, at most
//! `CLOSE_GRACE` for the controller's side to end too.

use std::io;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{
    frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::api::Controller;
use crate::dial::{BoxFuture, Dialer, GuestStream, SshRoute};

/// How much of the guest's stream the pipe holds before the pump waits.
const PIPE_BYTES: usize = 256 * 1024;

/// The largest WebSocket message (and frame) read from the controller: it relays the
/// guest's stream in pieces of a read each (tens of KiB), so 4 MiB is far more than one
/// ever is; a larger one ends the forward instead of being held in memory (tungstenite's
/// own bound is 64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How long the controller's side may stay open once ours has ended (our Close sent): a
/// guest that keeps its half open would otherwise keep the relay, and a `forward`'s
/// connection, forever.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The WebSocket's bounds.
pub fn socket_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_MESSAGE_BYTES);
    config.max_frame_size = Some(MAX_MESSAGE_BYTES);
    config
}

/// Opens port-forwards to one VM's sshd.
pub struct PortForward {
    pub controller: Controller,
    pub vm: String,
    pub port: u16,
}

impl PortForward {
    async fn open_stream(&self, timeout: Duration) -> io::Result<Box<dyn GuestStream>> {
        // The controller waits up to `wait` for the VM to run and its port to answer.
        let wait = timeout.as_secs().clamp(1, 65535);
        let key = generate_key();
        let request = self
            .controller
            .request(
                reqwest::Method::GET,
                &format!(
                    "vms/{}/port-forward?port={}&wait={wait}",
                    self.vm, self.port
                ),
            )
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", &key)
            .timeout(Duration::from_secs(wait + 10));
        let response = request.send().await.map_err(|e| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "cannot reach the Orchard controller at {}: {e}",
                    self.controller.url()
                ),
            )
        })?;
        let status = response.status().as_u16();
        if status != 101 {
            let body = super::api::read_body(response, super::api::MAX_BODY_BYTES)
                .await
                .unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(io::Error::other(refused_words(status, &message, wait)));
        }
        let accept = response
            .headers()
            .get("sec-websocket-accept")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err(io::Error::other(
                "the Orchard controller's port-forward answered without a valid WebSocket accept key",
            ));
        }
        let upgraded = response.upgrade().await.map_err(|e| {
            io::Error::other(format!("the port-forward's WebSocket upgrade failed: {e}"))
        })?;
        let socket =
            WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(socket_config())).await;
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(pump(socket, far));
        Ok(Box::new(near))
    }
}

/// A port-forward the controller refused before the upgrade, in words.
fn refused_words(status: u16, message: &str, wait: u64) -> String {
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    };
    match status {
        401 => format!("the controller refused the credentials for the port-forward{said}"),
        404 => "the controller has no VM of this name".to_string(),
        408 => format!("the VM was not running within {wait} s{said}"),
        417 => format!("the VM has failed{said}"),
        500 => format!("the VM's port did not answer within {wait} s"),
        503 => format!("the controller cannot reach the VM's worker{said}"),
        _ => format!("the controller answered {status}{said}"),
    }
}

/// Carries bytes between the WebSocket and the pipe until either side ends. Once ours has
/// (the client closed its end, and our Close is sent), the controller's side gets
/// `CLOSE_GRACE` in all to end too, writes to the pipe included.
async fn pump<S>(mut socket: WebSocketStream<S>, pipe: tokio::io::DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut from_client, mut to_client) = tokio::io::split(pipe);
    let mut buffer = vec![0u8; 32 * 1024];
    // Set when our side ends: the time the controller's side has left.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let data = tokio::select! {
            () = grace => break,
            read = from_client.read(&mut buffer), if deadline.is_none() => {
                match read {
                    Ok(n) if n > 0 => {
                        let bytes = buffer[..n].to_vec();
                        if socket.send(Message::Binary(bytes.into())).await.is_err() {
                            break;
                        }
                    }
                    _ => {
                        let at = tokio::time::Instant::now() + CLOSE_GRACE;
                        deadline = Some(at);
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        // A controller that reads nothing more would hold the send.
                        let sent =
                            tokio::time::timeout_at(at, socket.send(Message::Close(Some(close))))
                                .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                    }
                }
                continue;
            }
            message = socket.next() => match message {
                Some(Ok(Message::Binary(data))) => data.to_vec(),
                // Old controllers speak text frames; tartlab sends a User-Agent, so these
                // should not come, but the bytes are the same.
                Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                // Pings are answered by the WebSocket itself as it reads.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                // A message over MAX_MESSAGE_BYTES is an error too: the forward ends.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
        };
        let written = match deadline {
            None => to_client.write_all(&data).await.is_ok(),
            Some(at) => matches!(
                tokio::time::timeout_at(at, to_client.write_all(&data)).await,
                Ok(Ok(()))
            ),
        };
        if !written {
            break;
        }
    }
    let _ = to_client.shutdown().await;
}

impl Dialer for PortForward {
    fn open(&self, timeout: Duration) -> BoxFuture<'_, io::Result<Box<dyn GuestStream>>> {
        Box::pin(async move {
            match tokio::time::timeout(timeout + Duration::from_secs(10), self.open_stream(timeout))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the Orchard controller's port-forward did not answer in time",
                )),
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "the Orchard controller at {} (VM {})",
            self.controller.url(),
            self.vm
        )
    }

    fn route(&self) -> SshRoute {
        SshRoute::Proxy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pump between a WebSocket whose far end (the controller's side) the test holds and
    /// a pipe whose near end (tartlab's side, as the SSH client or a forward has it) it
    /// holds too, all in memory; and the pump's task.
    async fn pumping() -> (
        tokio::io::DuplexStream,
        WebSocketStream<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<()>,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let socket = WebSocketStream::from_raw_socket(ours, Role::Client, Some(socket_config()));
        let controller = WebSocketStream::from_raw_socket(theirs, Role::Server, None);
        let (socket, controller) = tokio::join!(socket, controller);
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        (near, controller, tokio::spawn(pump(socket, far)))
    }

    /// Only keeps a broken pump from hanging the test run.
    const HANG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_pump_ends_once_our_side_has_even_when_the_controller_keeps_its_side_open() {
        // The controller's side reads everything (our Close too) and answers nothing.
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let socket =
            WebSocketStream::from_raw_socket(ours, Role::Client, Some(socket_config())).await;
        let (mut near, far) = tokio::io::duplex(PIPE_BYTES);
        let pump = tokio::spawn(pump(socket, far));
        let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
        let holder = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(n) = theirs.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                let _ = read_tx.send(n);
            }
            std::future::pending::<()>().await;
        });
        near.write_all(b"ssh bytes").await.unwrap();
        read_rx.recv().await.unwrap();
        near.shutdown().await.unwrap();
        let ended = tokio::time::timeout(HANG, pump).await;
        assert!(
            ended.is_ok(),
            "the pump still ran {HANG:?} after our side ended, the controller's held open"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn a_message_over_the_bound_ends_the_forward_and_is_not_passed_on() {
        let (mut near, mut controller, pump) = pumping().await;
        let holder = tokio::spawn(async move {
            let huge = vec![b'x'; MAX_MESSAGE_BYTES + 1];
            let _ = controller.send(Message::Binary(huge.into())).await;
            // Held open: only the bound ends the pump.
            std::future::pending::<()>().await;
        });
        let mut passed = Vec::new();
        let read = tokio::time::timeout(HANG, near.read_to_end(&mut passed)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "{} bytes of the message passed on (ended: {})",
            passed.len(),
            read.is_ok()
        );
        assert!(tokio::time::timeout(HANG, pump).await.is_ok());
        holder.abort();
    }

    #[tokio::test]
    async fn messages_within_the_bound_pass_both_ways() {
        let (mut near, mut controller, _pump) = pumping().await;
        let message = vec![b'y'; MAX_MESSAGE_BYTES];
        let sending = {
            let message = message.clone();
            tokio::spawn(async move {
                controller
                    .send(Message::Binary(message.into()))
                    .await
                    .unwrap();
                controller
            })
        };
        let mut passed = vec![0u8; message.len()];
        near.read_exact(&mut passed).await.unwrap();
        assert!(passed == message);
        let mut controller = sending.await.unwrap();
        near.write_all(b"back").await.unwrap();
        let got = controller.next().await.unwrap().unwrap();
        assert_eq!(got.into_data().as_ref(), b"back");
    }
}
