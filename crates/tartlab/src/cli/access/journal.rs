//! `tartlab logs --journal`: the guest's own view of itself, per node: the VM's console log
//! where the provider keeps one (`tart run`'s output), then, over the system ssh with the lab
//! key, the systemd journal where the guest runs systemd (`journalctl`, its last lines, or
//! following with `-F`). Lines are prefixed with the node, escaped on a terminal.

use std::io::BufRead;
use std::process::Stdio;

use super::logs::{console_logs, show_file_lines, Out};
use super::{provider_and_inventory, proxy_command, ssh_options};
use crate::cli::{export, LabSnapshot};
use crate::dial::SshRoute;
use crate::error::{Error, Exit, Result};

/// The journal's lines shown without `--tail`.
const DEFAULT_LINES: usize = 100;

/// What a guest without a systemd journal answers, instead of journalctl's lines.
const NO_JOURNAL: &str = "tartlab-no-journal";

pub(super) fn show(
    snapshot: &LabSnapshot,
    nodes: &[String],
    tail: Option<usize>,
    follow: bool,
    out: &Out,
) -> Result<Exit> {
    for vm in nodes {
        for path in console_logs(snapshot, vm) {
            show_file_lines(&path, vm, tail, out);
        }
    }
    let (provider, inventory) = provider_and_inventory(snapshot)?;
    let lines = tail.unwrap_or(DEFAULT_LINES).to_string();
    let script = format!(
        "if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then exec sudo -n journalctl --no-pager -o short-iso -n {lines}{}; else echo {NO_JOURNAL}; fi",
        if follow { " -f" } else { "" }
    );
    let mut children = Vec::new();
    for vm in nodes {
        let node = snapshot.node(vm)?;
        let address = match snapshot.address(node, &inventory) {
            Ok(address) => address,
            Err(why) => {
                eprintln!("warning: no journal of {vm}: {why}");
                continue;
            }
        };
        let mut ssh = std::process::Command::new("ssh");
        ssh.args(ssh_options(snapshot, vm)?);
        ssh.args(["-o", "BatchMode=yes"]);
        let host = match provider.dialer(vm, &address).route() {
            SshRoute::Direct { host, port } => {
                ssh.args(["-p", &port.to_string()]);
                host
            }
            SshRoute::Proxy => {
                let words = proxy_command(snapshot, vm);
                ssh.args([
                    "-o",
                    &format!("ProxyCommand={}", export::proxy_line(&words)?),
                ]);
                vm.clone()
            }
        };
        ssh.args(["-l", &node.login.user, "--", &host, &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = ssh.spawn().map_err(|e| {
            Error::fatal(format!("cannot run ssh: {e}"), "install the OpenSSH client")
        })?;
        let Some(stdout) = child.stdout.take() else {
            continue;
        };
        children.push((vm.clone(), child, stdout));
    }
    std::thread::scope(|scope| {
        for (vm, _, stdout) in &mut children {
            let vm = vm.as_str();
            scope.spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == NO_JOURNAL {
                        out.line(vm, "(no systemd journal on this guest: its console log is above, where the provider keeps one)");
                        continue;
                    }
                    out.line(vm, &line);
                }
            });
        }
    });
    for (_, mut child, _) in children {
        let _ = child.wait();
    }
    Ok(Exit::Ok)
}
