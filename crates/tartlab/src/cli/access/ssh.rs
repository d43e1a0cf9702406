//! `tartlab ssh NODE`: the system ssh in tartlab's place, with the lab key, the pinned host
//! key and the provider's route; and the hidden `tartlab proxy NODE` that the route names
//! where it is not a plain address.

use std::io::IsTerminal;

use super::{login_timeout, provider_and_inventory, proxy_command, ssh_options, RunAs};
use crate::cli::{export, runtime, FileOnly, LabSnapshot};
use crate::dial::SshRoute;
use crate::error::{Error, Exit, Result};

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab ssh                  (a lab of one node: that node)\n  tartlab ssh dev-master\n  tartlab ssh dev-master uptime\n  tartlab ssh -u root dev-master -- ls -la /root   (root by the login user's sudo)\n  tartlab ssh -u root dev-master                   (a root shell)"
)]
pub struct SshArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// Act as this user (root, say) instead of the image's login user: a login shell or the
    /// command, by the login user's sudo (the images have no root login)
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The node (VM name); in a lab of one node, that node when left out
    #[arg(add = crate::cli::complete::node())]
    pub node: Option<String>,
    /// A command to run instead of a shell (as ssh takes it; `--` before it is optional)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The hidden `tartlab proxy NODE`: the node's sshd, by the provider's dialer, on stdin and
/// stdout, for OpenSSH's `ProxyCommand` (ssh-config, inventory and `ssh` write it where the
/// provider's route is not a plain address).
#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// The node (VM name)
    pub node: String,
}

pub fn proxy(args: &ProxyArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let node = snapshot.node(&args.node)?;
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let address = snapshot
        .address(node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let dialer = provider.dialer(&node.vm_name, &address);
    runtime()?.block_on(async {
        let stream = dialer.open(login_timeout()).await.map_err(|e| {
            Error::fatal(
                format!(
                    "cannot reach {}'s sshd ({}): {e}",
                    node.vm_name,
                    dialer.describe()
                ),
                format!("`tartlab status` shows whether {} runs", node.vm_name),
            )
        })?;
        crate::dial::relay(stream, tokio::io::stdin(), tokio::io::stdout())
            .await
            .map_err(|e| Error::fatal(format!("the connection to {} ended: {e}", node.vm_name), ""))
    })?;
    Ok(Exit::Ok)
}

pub fn ssh(args: &SshArgs) -> Result<Exit> {
    use std::os::unix::process::CommandExt;
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let node = match &args.node {
        Some(name) => snapshot.node(name)?,
        None => only_node(&snapshot)?,
    };
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let ip = snapshot
        .address(node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let user = node.login.user.clone();
    let run_as = RunAs::of(args.user.as_deref(), &user);
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(ssh_options(&snapshot, &node.vm_name)?);
    if args.command.is_empty() && std::io::stdin().is_terminal() {
        cmd.arg("-t");
    }
    let host = match provider.dialer(&node.vm_name, &ip).route() {
        SshRoute::Direct { host, port } => {
            cmd.args(["-p", &port.to_string()]);
            host
        }
        SshRoute::Proxy => {
            let words = proxy_command(&snapshot, &node.vm_name);
            cmd.args([
                "-o",
                &format!("ProxyCommand={}", export::proxy_line(&words)?),
            ]);
            node.vm_name.clone()
        }
    };
    // The user as `-l`'s argument and the host after `--`: neither is read as an option.
    cmd.args(["-l", &user, "--", &host]);
    if args.command.is_empty() {
        cmd.args(run_as.wrap(&node.vm_name, "shell", None));
    } else {
        match run_as {
            RunAs::Login => cmd.args(&args.command),
            // ssh joins the words with spaces for the login shell; so does the wrapper.
            other => cmd.arg(other.command(&node.vm_name, &args.command.join(" "))),
        };
    }
    let error = cmd.exec();
    Err(Error::fatal(
        format!("cannot run ssh: {error}"),
        "install the OpenSSH client",
    ))
}

/// `tartlab ssh` with no node: the lab's one node, as `vagrant ssh` takes the one machine;
/// with several, which to name.
fn only_node(snapshot: &LabSnapshot) -> Result<&crate::lab::Node> {
    match snapshot.lab.nodes.as_slice() {
        [only] => Ok(only),
        nodes => {
            let names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
            Err(Error::usage(
                format!(
                    "which node? lab `{}` has {} nodes: {}",
                    snapshot.lab.name(),
                    nodes.len(),
                    names.join(", ")
                ),
                format!(
                    "name one: `tartlab ssh {}`",
                    names.first().copied().unwrap_or("NODE")
                ),
            ))
        }
    }
}
