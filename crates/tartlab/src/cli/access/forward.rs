//! `tartlab forward NODE [LOCAL:]REMOTE`: `ssh -L` in tartlab's terms. One SSH connection to
//! the node by the provider's dialer (so it works wherever `exec` does, tart or Orchard), a
//! listener on 127.0.0.1, and for each connection it accepts a `direct-tcpip` channel to
//! 127.0.0.1:REMOTE on the guest, relayed both ways, until Ctrl-C or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{login_timeout, not_pinned_hint, provider_and_inventory, NOT_PINNED};
use crate::cli::{out, runtime, FileArgs, LabSnapshot};
use crate::dial::Dialer;
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth, Connection, TunnelError};
use crate::state::KnownHosts;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab forward dev-master 6443       (k3s's kubeconfig then works as it is)\n  tartlab forward dev-db 15432:5432\n  tartlab forward --json dev-web 0:80   (0: a free port; the `listening` event names it)\n\nOnly 127.0.0.1 is listened on. Runs until Ctrl-C or SIGTERM, then exits 0. A connection \
the node refuses (nothing listens on REMOTE) is closed and reported; the forward goes on. \
If the SSH connection drops, it logs in once again, or exits 1. With --json, one JSON \
event per line on stdout: `listening` (with `local_port`), `refused`, `failed`, \
`reconnected`."
)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The node (VM name)
    #[arg(add = crate::cli::complete::node())]
    pub node: String,
    /// The node's port, with the local one before it (`8080:80`); LOCAL defaults to REMOTE,
    /// and 0 picks a free port
    #[arg(value_name = "[LOCAL:]REMOTE", value_parser = Ports::parse)]
    pub ports: Ports,
}

/// The local port (0: any free one) and the node's port it leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub local: u16,
    pub remote: u16,
}

impl Ports {
    /// `REMOTE` or `LOCAL:REMOTE`, as `ssh -L` and `kubectl port-forward` take them.
    fn parse(text: &str) -> std::result::Result<Ports, String> {
        let (local, remote) = match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err(
                    "give [LOCAL:]REMOTE, two ports at most: the forward listens on 127.0.0.1 \
                     only, and reaches 127.0.0.1 on the node"
                        .into(),
                )
            }
            Some((local, remote)) => (Some(local), remote),
            None => (None, text),
        };
        let remote = match port(remote, "REMOTE")? {
            0 => return Err("REMOTE is the node's port: 1 to 65535, not 0".into()),
            n => n,
        };
        let local = local.map_or(Ok(remote), |l| port(l, "LOCAL"))?;
        Ok(Ports { local, remote })
    }
}

fn port(text: &str, what: &str) -> std::result::Result<u16, String> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    text.parse()
        .ok()
        .filter(|_| digits)
        .ok_or_else(|| format!("{what} `{text}` is not a port (a number from 0 to 65535)"))
}

/// Everything a login to the node needs, kept for the one reconnection.
struct Login {
    vm: String,
    user: String,
    dialer: Arc<dyn Dialer>,
    pins: ssh::Pins,
    key: Arc<russh::keys::PrivateKey>,
}

impl Login {
    async fn connect(&self) -> std::result::Result<Connection, String> {
        ssh::connect_held(
            self.dialer.as_ref(),
            &self.user,
            Auth::Key(&self.key),
            self.pins.clone(),
            login_timeout(),
        )
        .await
        .map_err(|e| format!("{e} ({})", self.dialer.describe()))
    }

    fn unreachable(&self, what: &str, e: &str) -> Error {
        Error::fatal(
            format!("{what} {}: {e}", self.vm),
            format!(
                "`tartlab status` shows whether {vm} runs (`tartlab up {vm}` boots it); then forward again",
                vm = self.vm
            ),
        )
    }
}

pub fn forward(args: &ForwardArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let node = snapshot.node(&args.node)?;
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let address = snapshot
        .address(node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let vm = node.vm_name.clone();
    let pins = ssh::Pins::of(KnownHosts::new(&snapshot.dir).pinned(&vm))
        .ok_or_else(|| Error::fatal(format!("{vm}: {NOT_PINNED}"), not_pinned_hint(&vm)))?;
    let key = snapshot
        .dir
        .lab_key()
        .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?;
    let login = Login {
        dialer: provider.dialer(&vm, &address),
        user: node.login.user.clone(),
        vm,
        pins,
        key: Arc::new(key),
    };
    runtime()?.block_on(serve(login, args.ports, args.file.json))
}

/// Listens, logs in, then carries each connection until a signal (exit 0) or a drop that a
/// second login does not mend (exit 1).
async fn serve(login: Login, ports: Ports, json: bool) -> Result<Exit> {
    let (listener, local) = listen(&login.vm, ports).await?;
    let mut session = Arc::new(
        login
            .connect()
            .await
            .map_err(|e| login.unreachable("cannot log in to", &e))?,
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::fatal(format!("cannot watch for SIGTERM: {e}"), ""))?;
    // One future for both signals, for the whole run: none is missed between two waits.
    let stop = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    tokio::pin!(stop);
    let target = Arc::new(Target {
        vm: login.vm.clone(),
        remote: ports.remote,
        json,
    });
    eprintln!(
        "Forwarding 127.0.0.1:{local} -> {}:{} (Ctrl-C to stop)",
        login.vm, ports.remote
    );
    target.event(
        "listening",
        serde_json::json!({ "local_address": "127.0.0.1", "local_port": local }),
    );
    let mut relays = JoinSet::new();
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    let ended = loop {
        tokio::select! {
            () = &mut stop => break Ok(Exit::Ok),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    relays.spawn(carry(session.clone(), stream, peer, target.clone()));
                }
                Err(e) => {
                    eprintln!("forward: a local connection to 127.0.0.1:{local} failed: {e}");
                    // Out of descriptors, say: not a busy loop while it lasts.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = relays.join_next() => {}
            // Checked on every tick (a guard would be read once per wait, and miss it).
            _ = watch.tick() => if session.is_closed() {
                let again = tokio::select! {
                    again = log_in_again(&login, &target) => again,
                    () = &mut stop => break Ok(Exit::Ok),
                };
                match again {
                    Ok(again) => session = Arc::new(again),
                    Err(e) => break Err(e),
                }
            }
        }
    };
    // Aborting a relay drops its channel, which closes it; then the connection goes.
    relays.shutdown().await;
    session.close().await;
    ended
}

/// The listener on 127.0.0.1 (LOCAL 0: a free port), and its port.
async fn listen(vm: &str, ports: Ports) -> Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, ports.local))
        .await
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => "ports below 1024 need root here",
                std::io::ErrorKind::AddrInUse => "another program holds that port",
                _ => "the port cannot be used",
            };
            Error::fatal(
                format!("cannot listen on 127.0.0.1:{} for {vm}: {e}", ports.local),
                format!(
                    "{why}: give another LOCAL (`tartlab forward {vm} 0:{}` picks a free one)",
                    ports.remote
                ),
            )
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::fatal(format!("cannot read the listening port: {e}"), ""))?
        .port();
    Ok((listener, local))
}

/// The one login after a drop (the connections it carried are gone with it): the new
/// connection, or the error that ends the forward.
async fn log_in_again(login: &Login, target: &Target) -> Result<Connection> {
    eprintln!(
        "forward: the SSH connection to {} dropped; logging in again",
        login.vm
    );
    let again = login.connect().await.map_err(|e| {
        login.unreachable("the SSH connection dropped and cannot log in again to", &e)
    })?;
    eprintln!("forward: logged in to {} again; forwarding", login.vm);
    target.event("reconnected", serde_json::json!({}));
    Ok(again)
}

/// Where the forward leads, for each connection's messages.
struct Target {
    vm: String,
    remote: u16,
    json: bool,
}

impl Target {
    /// One JSON line on stdout, with `--json`.
    fn event(&self, event: &str, fields: serde_json::Value) {
        if !self.json {
            return;
        }
        let mut line =
            serde_json::json!({ "event": event, "node": self.vm, "remote_port": self.remote });
        if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        out(&line.to_string());
    }
}

/// One local connection: a channel to the node's port, then the bytes both ways. A refusal
/// closes this connection only, and says so once.
async fn carry(session: Arc<Connection>, local: TcpStream, peer: SocketAddr, target: Arc<Target>) {
    let opening = session.tunnel("127.0.0.1", target.remote, peer);
    let opened = tokio::time::timeout(login_timeout(), opening).await;
    // The node said no (`refused`), or the SSH connection could not carry it (`failed`).
    let event = match &opened {
        Ok(Err(TunnelError::Closed(_))) | Err(_) => "failed",
        _ => "refused",
    };
    let failure = match opened {
        Ok(Ok(channel)) => {
            let _ = local.set_nodelay(true);
            let (from_local, to_local) = local.into_split();
            // A reset by either side ends this connection only; nothing to report.
            let _ = crate::dial::relay(Box::new(channel), from_local, to_local).await;
            return;
        }
        Ok(Err(TunnelError::Refused)) => format!(
            "nothing listens on port {} of {} (it refused the connection)",
            target.remote, target.vm
        ),
        Ok(Err(TunnelError::Prohibited)) => format!(
            "{}'s sshd does not forward TCP: set `AllowTcpForwarding yes` in its sshd_config",
            target.vm
        ),
        Ok(Err(e)) => format!("{} port {}: {e}", target.vm, target.remote),
        Err(_) => format!(
            "{} did not open a channel to port {} within {} s",
            target.vm,
            target.remote,
            login_timeout().as_secs()
        ),
    };
    eprintln!("forward: {failure}; local connection from {peer} closed, still forwarding");
    target.event(event, serde_json::json!({ "message": failure }));
}

#[cfg(test)]
mod tests {
    use super::Ports;

    #[test]
    fn ports_are_read_as_ssh_and_kubectl_take_them() {
        let ports = |local, remote| Ok(Ports { local, remote });
        assert_eq!(Ports::parse("6443"), ports(6443, 6443));
        assert_eq!(Ports::parse("15432:5432"), ports(15432, 5432));
        assert_eq!(Ports::parse("0:80"), ports(0, 80));
        for bad in [
            "",
            "x",
            "80:",
            ":80",
            "+80",
            "65536",
            "1:2:3",
            "localhost:80:80",
            "0",
        ] {
            let error = Ports::parse(bad).unwrap_err();
            assert!(
                error.contains("port") || error.contains("REMOTE"),
                "{bad}: {error}"
            );
        }
        assert!(Ports::parse("1:2:3").unwrap_err().contains("127.0.0.1"));
        assert!(Ports::parse("0").unwrap_err().contains("not 0"));
    }
}
