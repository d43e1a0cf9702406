//! The way into an Orchard VM: the controller's WebSocket port-forward
//! (`GET /v1/vms/NAME/port-forward?port=22&wait=N`, shared/orchard-api.md §2.5), which carries
//! the guest's TCP stream in binary messages. The upgrade is made through the same HTTP
//! client as the REST calls (one TLS set-up), and a task pumps bytes between the WebSocket
//! and one end of an in-memory pipe, whose other end is the `GuestStream` the SSH client
//! reads and writes; reading keeps answering the controller's pings.

use std::io;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::api::Controller;
use crate::dial::{BoxFuture, Dialer, GuestStream, SshRoute};

/// How much of the guest's stream the pipe holds before the pump waits.
const PIPE_BYTES: usize = 256 * 1024;

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
            let body = response.bytes().await.unwrap_or_default();
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
        let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
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

/// Carries bytes between the WebSocket and the pipe until either side ends.
async fn pump<S>(mut socket: WebSocketStream<S>, pipe: tokio::io::DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut from_client, mut to_client) = tokio::io::split(pipe);
    let mut buffer = vec![0u8; 32 * 1024];
    let mut client_open = true;
    loop {
        tokio::select! {
            read = from_client.read(&mut buffer), if client_open => match read {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                }
                Ok(n) => {
                    let bytes = buffer[..n].to_vec();
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
            },
            message = socket.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if to_client.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // Old controllers speak text frames; tartlab sends a User-Agent, so these
                // should not come, but the bytes are the same.
                Some(Ok(Message::Text(text))) => {
                    if to_client.write_all(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the WebSocket itself as it reads.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
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
