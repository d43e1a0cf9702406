//! Every way into a running lab: `ssh` (the system ssh with the lab key and pinned host
//! keys), `exec` (one command on many nodes at once), `cp` (SFTP), `logs`, and the hidden
//! `proxy` (a node's sshd on stdin and stdout, OpenSSH's `ProxyCommand` for providers whose
//! way in is not plain TCP). Each goes in by the provider's dialer. The files other tools
//! read are in `export.rs`. None takes the lab lock.

use std::io::{IsTerminal, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{out, runtime, select, FileArgs, FileOnly, LabSnapshot};
use crate::dial::{Dialer, SshRoute};
use crate::engine::fanout;
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth, Output};
use crate::guest::transfer::{self, FileError, TransferError};
use crate::lab::Node;
use crate::provider::{self, Inventory, Provider};
use crate::state::KnownHosts;
use crate::ui;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab ssh dev-master\n  tartlab ssh dev-master uptime\n  tartlab ssh -u root dev-master -- ls -la /root"
)]
pub struct SshArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// Log in as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The node (VM name)
    pub node: String,
    /// A command to run instead of a shell (as ssh takes it; `--` before it is optional)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab exec all -- uptime\n  tartlab exec cluster=dev,stg -- 'systemctl is-active k3s'\n  tartlab exec 'dev-*' role=db --json -- df -h /"
)]
pub struct ExecArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Run as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// How many nodes at once
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub parallel: usize,
    /// Which nodes: names, cluster=NAME, role=NAME or all; lists (cluster=dev,stg) and globs
    /// (dev-*) too
    #[arg(required = true)]
    pub selectors: Vec<String>,
    /// Stop waiting for a node's command after this many seconds (default: no limit)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// The command, run by the login shell on each node (as ssh does). Each line it prints
    /// is shown as it comes, after the node's name; for raw bytes use `tartlab ssh`
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab cp ./app.conf dev-master:/tmp/app.conf\n  tartlab cp dev-master:.bashrc .          (NODE: alone is the login user's home)\n  tartlab cp -r dev-master:/var/log/k3s ./logs"
)]
pub struct CpArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Copy directories recursively
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Connect as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// A local path, or NODE:PATH
    pub source: String,
    /// A local path, or NODE:PATH
    pub destination: String,
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab logs dev-master\n  tartlab logs --tail 50 -F dev-master"
)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// The node (VM name)
    pub node: String,
    /// Keep printing what is appended, until Ctrl-C (`-F`, as in tail; `-f` is the lab file,
    /// as everywhere)
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Only the last N lines of each log
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// Why `exec` and `cp` send nothing to a VM: only `up`, when it boots the VM, meets a key
/// it has not pinned, and pins it.
const NOT_PINNED: &str = "no host key is pinned for this VM";

fn not_pinned_hint(vm: &str) -> String {
    format!("`tartlab up` pins a VM's host key when it boots it: `tartlab stop {vm}` then `tartlab up`, if {vm} is the lab's own VM")
}

/// How long `exec` and `cp` give a node to log them in: 15 s, or `TARTLAB_SSH_TIMEOUT`.
fn login_timeout() -> Duration {
    std::env::var("TARTLAB_SSH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(15), Duration::from_secs)
}

/// The lab's provider, and its inventory (one `tart list`).
pub(crate) fn provider_and_inventory(
    snapshot: &LabSnapshot,
) -> Result<(Arc<dyn Provider>, Inventory)> {
    let provider =
        provider::open(Some(&snapshot.lab), None).map_err(|e| Error::fatal(e.message, e.hint))?;
    let inventory = runtime()?.block_on(crate::engine::read_inventory(provider.as_ref()))?;
    Ok((provider, inventory))
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

/// The words of OpenSSH's `ProxyCommand` for a node: this tartlab's `proxy`, with the lab
/// file, so it works from any directory.
pub(crate) fn proxy_command(snapshot: &LabSnapshot, vm: &str) -> Vec<String> {
    let program =
        std::env::current_exe().map_or_else(|_| "tartlab".to_string(), |p| p.display().to_string());
    let file = snapshot.absolute(snapshot.lab.source.path.clone());
    vec![
        program,
        "proxy".into(),
        "-f".into(),
        file.display().to_string(),
        vm.to_string(),
    ]
}

/// The system ssh's options for a node: lab key, pinned host key, no prompts. The paths
/// are written as ssh reads them (`%` doubled), or refused (export::ssh_path).
fn ssh_options(snapshot: &LabSnapshot, vm: &str) -> Result<Vec<String>> {
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    Ok([
        // Not `-i`: ssh checks that path as given, then expands its `%` tokens.
        "-o".to_string(),
        format!("IdentityFile {}", super::export::ssh_config_quoted(&key)?),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        format!(
            "UserKnownHostsFile {}",
            super::export::ssh_config_quoted(&known)?
        ),
        "-o".into(),
        format!("HostKeyAlias={vm}"),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
    .to_vec())
}

pub fn ssh(args: &SshArgs) -> Result<Exit> {
    use std::os::unix::process::CommandExt;
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let node = snapshot.node(&args.node)?;
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let ip = snapshot
        .address(node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
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
                &format!("ProxyCommand={}", super::export::proxy_line(&words)?),
            ]);
            node.vm_name.clone()
        }
    };
    // The user as `-l`'s argument and the host after `--`: neither is read as an option.
    cmd.args(["-l", &user, "--", &host]);
    cmd.args(&args.command);
    let error = cmd.exec();
    Err(Error::fatal(
        format!("cannot run ssh: {error}"),
        "install the OpenSSH client",
    ))
}

/// What one node's command did, for the recap and `--json` (each output its last MiB, with
/// how many bytes came before it).
#[derive(serde::Serialize)]
struct ExecResult {
    node: String,
    exit_code: Option<u32>,
    stdout: String,
    stderr: String,
    #[serde(skip_serializing_if = "is_zero")]
    stdout_dropped_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    stderr_dropped_bytes: u64,
    error: Option<String>,
    seconds: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn node_colour(i: usize) -> &'static str {
    ["36", "33", "35", "32", "34", "96", "93", "95"][i % 8]
}

/// One command on one node, with the lab key and the pinned host keys; each line it prints
/// goes to `on_line` as it comes.
async fn run_one(
    job: &ExecJob,
    dialer: &dyn Dialer,
    on_line: &mut (dyn FnMut(ssh::Stream, &str) -> ssh::Reply + Send),
) -> std::result::Result<Output, String> {
    let Some(pins) = job.pinned.clone() else {
        return Err(format!("{NOT_PINNED}; {}", not_pinned_hint(&job.vm)));
    };
    let connection = ssh::connect(
        dialer,
        &job.user,
        Auth::Key(&job.key),
        ssh::HostKeys::Pinned(pins),
        login_timeout(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let running = async {
        connection
            .exec_with(&job.command, ssh::Input::Given(None), on_line)
            .await
            .map_err(|e| e.to_string())
    };
    let output = match job.timeout {
        Some(limit) => tokio::time::timeout(limit, running)
            .await
            .unwrap_or_else(|_| Err(format!("no end within {} s (--timeout)", limit.as_secs()))),
        None => running.await,
    };
    connection.close().await;
    output
}

/// Everything one node's `exec` needs, gathered before the fan-out.
struct ExecJob {
    index: usize,
    vm: String,
    user: String,
    /// The way to its sshd, or why it cannot be reached.
    dialer: std::result::Result<Arc<dyn Dialer>, String>,
    /// The VM's pinned host keys; none: nothing is sent to it.
    pinned: Option<ssh::Pins>,
    key: Arc<russh::keys::PrivateKey>,
    command: String,
    timeout: Option<Duration>,
}

pub fn exec(args: &ExecArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let selected = select(&snapshot.lab.nodes, &args.selectors)?;
    let targets: Vec<&Node> = snapshot
        .lab
        .nodes
        .iter()
        .filter(|n| selected.contains(&n.vm_name))
        .collect();
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let known = KnownHosts::new(&snapshot.dir);
    let show = Shown {
        colour: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        terminal: (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        ),
        width: targets.iter().map(|n| n.vm_name.len()).max().unwrap_or(0),
        json: args.file.json,
    };
    let jobs: Vec<ExecJob> = targets
        .iter()
        .enumerate()
        .map(|(index, node)| ExecJob {
            index,
            vm: node.vm_name.clone(),
            user: args.user.clone().unwrap_or_else(|| node.login.user.clone()),
            dialer: snapshot
                .address(node, &inventory)
                .map(|ip| provider.dialer(&node.vm_name, &ip)),
            pinned: ssh::Pins::of(known.pinned(&node.vm_name)),
            key: key.clone(),
            command: args.command.join(" "),
            timeout: args.timeout.map(Duration::from_secs),
        })
        .collect();
    let results: Vec<ExecResult> = runtime()?
        .block_on(fanout::each(jobs, args.parallel, move |job| job.run(show)))
        .into_iter()
        .flatten()
        .collect();
    Ok(exec_recap(&results, args.file.json))
}

/// How `exec` shows each node's output as it comes.
#[derive(Clone, Copy)]
struct Shown {
    colour: bool,
    /// Whether stdout and stderr are terminals: guest text shown there is made printable.
    terminal: (bool, bool),
    width: usize,
    json: bool,
}

impl ExecJob {
    async fn run(self, show: Shown) -> ExecResult {
        let started = Instant::now();
        let mut result = ExecResult {
            node: self.vm.clone(),
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_dropped_bytes: 0,
            stderr_dropped_bytes: 0,
            error: None,
            seconds: 0.0,
        };
        let prefix = prefix(&self.vm, self.index, show);
        let mut print = |stream: ssh::Stream, line: &str| {
            if !show.json {
                print_line(&prefix, stream, line, show);
            }
            ssh::Reply::Nothing
        };
        let ran = match self.dialer.clone() {
            Ok(dialer) => run_one(&self, dialer.as_ref(), &mut print).await,
            Err(e) => Err(e),
        };
        match ran {
            Ok(output) => {
                result.exit_code = output.status;
                result.stdout = output.stdout_text();
                result.stderr = output.stderr_text();
                (result.stdout_dropped_bytes, result.stderr_dropped_bytes) = output.dropped;
            }
            Err(e) => result.error = Some(e),
        }
        result.seconds = started.elapsed().as_secs_f64();
        if let (Some(e), false) = (&result.error, show.json) {
            print_line(&prefix, ssh::Stream::Stderr, &format!("error: {e}"), show);
        }
        result
    }
}

/// The recap of `exec` (a table on stderr, or one JSON object), and its exit.
fn exec_recap(results: &[ExecResult], json: bool) -> Exit {
    let failed = results.iter().filter(|r| r.exit_code != Some(0)).count();
    let exit = Exit::for_results(failed, results.len());
    if json {
        out(&serde_json::json!({ "results": results, "exit_code": exit.code() }).to_string());
        return exit;
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.node.clone(),
                match (&r.error, r.exit_code) {
                    (Some(_), _) => "error".into(),
                    (None, Some(c)) => c.to_string(),
                    (None, None) => "killed".into(),
                },
                format!("{:.1}s", r.seconds),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    eprintln!("{}", ui::table(&["NODE", "EXIT", "TIME", "ERROR"], &rows));
    eprintln!(
        "exec: {} of {} node(s) exited 0",
        results.len() - failed,
        results.len()
    );
    exit
}

/// A node's name before each of its lines (coloured on a terminal).
fn prefix(vm: &str, index: usize, show: Shown) -> String {
    let width = show.width;
    if show.colour {
        format!("\x1b[{}m{vm:<width$}\x1b[0m |", node_colour(index))
    } else {
        format!("{vm:<width$} |")
    }
}

/// One line of a node's output, after its name, on the stream it came on; made printable
/// when that stream is a terminal.
fn print_line(prefix: &str, stream: ssh::Stream, line: &str, show: Shown) {
    let (terminal, mut out): (bool, Box<dyn Write>) = match stream {
        ssh::Stream::Stdout => (show.terminal.0, Box::new(std::io::stdout().lock())),
        ssh::Stream::Stderr => (show.terminal.1, Box::new(std::io::stderr().lock())),
    };
    let line = if terminal {
        crate::text::printable(line, ssh::LINE_CAP + 64)
    } else {
        std::borrow::Cow::Borrowed(line)
    };
    let _ = writeln!(out, "{prefix} {line}");
}

/// `NODE:PATH` split: `None` for a local path; an error naming the lab's nodes when the
/// part before `:` looks like a node that the lab does not have.
fn remote_part<'a>(snapshot: &LabSnapshot, text: &'a str) -> Result<Option<(&'a str, &'a str)>> {
    let Some((node, path)) = text.split_once(':') else {
        return Ok(None);
    };
    if snapshot.lab.node(node).is_some() {
        return Ok(Some((node, path)));
    }
    // `./a:b` or `/tmp/x:y` are local paths with a colon; `name:path` names a node.
    if node.is_empty() || node.contains('/') {
        return Ok(None);
    }
    Err(super::no_such_node(&snapshot.lab.nodes, node))
}

pub fn cp(args: &CpArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let (node_name, upload, remote_path, local) = match (
        remote_part(&snapshot, &args.source),
        remote_part(&snapshot, &args.destination),
    ) {
        (Ok(None), Ok(Some((n, p)))) => (n, true, p, PathBuf::from(&args.source)),
        (Ok(Some((n, p))), Ok(None)) => (n, false, p, PathBuf::from(&args.destination)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
        _ => {
            let example = snapshot.lab.nodes.first().map_or("NODE", |n| &n.vm_name);
            return Err(Error::usage(
                "give one side as NODE:PATH and the other as a local path",
                format!("e.g. `tartlab cp ./app.conf {example}:/tmp/app.conf`"),
            ));
        }
    };
    // `NODE:` alone is the login user's home, as in scp.
    let remote_path = if remote_path.is_empty() {
        ".".to_string()
    } else {
        remote_path.to_string()
    };
    let node = snapshot.node(node_name)?.clone();
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let ip = snapshot
        .address(&node, &inventory)
        .map_err(|e| Error::fatal(e, ""))?;
    let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let Some(pins) = ssh::Pins::of(KnownHosts::new(&snapshot.dir).pinned(&node.vm_name)) else {
        return Err(Error::fatal(
            format!(
                "cp {} {}: {NOT_PINNED}; nothing was copied",
                args.source, args.destination
            ),
            not_pinned_hint(&node.vm_name),
        ));
    };
    let dialer = provider.dialer(&node.vm_name, &ip);
    let depth = if args.recursive {
        transfer::Depth::Recursive
    } else {
        transfer::Depth::Files
    };
    let copied = runtime()?.block_on(async {
        let keys = ssh::HostKeys::Pinned(pins);
        let connection = ssh::connect(
            dialer.as_ref(),
            &user,
            Auth::Key(&key),
            keys,
            login_timeout(),
        )
        .await
        .map_err(|e| CopyFailure::Login(e.to_string()))?;
        let result = if upload {
            let sftp = connection.sftp().await.map_err(CopyFailure::Session)?;
            let copied = transfer::upload(&sftp, &local, &remote_path, depth, 0).await;
            let _ = sftp.close().await;
            copied.map(|files| transfer::Downloaded {
                files,
                skipped: Vec::new(),
            })
        } else {
            let sftp = connection.sftp_raw().await.map_err(CopyFailure::Session)?;
            let copied = transfer::download(&sftp, &remote_path, &local, depth).await;
            let _ = sftp.close_session();
            copied
        };
        connection.close().await;
        result.map_err(CopyFailure::Transfer)
    });
    let done = copied.map_err(|e| {
        let hint = match &e {
            CopyFailure::Login(_) | CopyFailure::Session(_) => String::new(),
            CopyFailure::Transfer(e) => cp_hint(e, &user, node_name),
        };
        Error::fatal(
            format!(
                "cp {} {}: {}",
                args.source,
                args.destination,
                crate::text::printable(&e.to_string(), crate::text::MESSAGE)
            ),
            hint,
        )
    })?;
    if args.file.json {
        out(&serde_json::json!({ "copied": done.files, "skipped": done.skipped }).to_string());
    } else {
        for skipped in &done.skipped {
            eprintln!("not copied: {skipped}");
        }
        eprintln!("copied {} file(s)", done.files);
    }
    Ok(Exit::Ok)
}

/// Why `cp` failed: the session to the guest did not open, or the copy stopped.
enum CopyFailure {
    Login(String),
    Session(ssh::SessionError),
    Transfer(TransferError),
}

impl std::fmt::Display for CopyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyFailure::Login(e) => f.write_str(e),
            CopyFailure::Session(e) => e.fmt(f),
            CopyFailure::Transfer(e) => e.fmt(f),
        }
    }
}

/// What to do about a copy that stopped, for the error it is.
fn cp_hint(error: &TransferError, user: &str, node: &str) -> String {
    const ADD_R: &str = "add -r to copy a directory and everything in it";
    match error {
        TransferError::Local { error, .. } | TransferError::Guest { error, .. } => match error {
            FileError::PermissionDenied => format!("{user} may not read or write there: `--user root` copies as root, or choose a path {user} can write"),
            FileError::NotFound => format!("remote paths are as {user} sees them, relative to their home; `{node}:` alone is that home"),
            FileError::IsADirectory => ADD_R.into(),
            FileError::Other(_) => String::new(),
        },
        TransferError::IsDirectory { .. } => ADD_R.into(),
        TransferError::UntrustedName { .. } => {
            "the guest's listing cannot be trusted; nothing was written outside the destination".into()
        }
        _ => String::new(),
    }
}

pub fn logs(args: &LogsArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let node = snapshot.node(&args.node)?;
    // The VM's own output where its provider keeps it, then tartlab's transcript.
    let run_log = snapshot.dir.run_log(&node.vm_name);
    let mut files = match provider::open(Some(&snapshot.lab), None) {
        Ok(provider) => provider.console_logs(&node.vm_name, &run_log),
        Err(e) => {
            eprintln!("warning: the VM's own logs cannot be shown: {}", e.message);
            Vec::new()
        }
    };
    files.push(snapshot.dir.provision_log(&node.vm_name));
    // Guest output in the logs is kept as it came; on a terminal it is shown printable.
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let mut show = |bytes: &[u8]| {
        let _ = if terminal {
            stdout.write_all(crate::text::printable_bytes(bytes).as_bytes())
        } else {
            stdout.write_all(bytes)
        };
        let _ = stdout.flush();
    };
    let open = |path: &PathBuf| crate::files::open_nofollow(path, libc::O_RDONLY);
    let mut offsets = vec![0u64; files.len()];
    for (i, path) in files.iter().enumerate() {
        show(format!("==> {} <==\n", path.display()).as_bytes());
        match open(path) {
            Ok(mut file) => {
                let mut text = Vec::new();
                let _ = file.read_to_end(&mut text);
                offsets[i] = text.len() as u64;
                show(last_lines(&text, args.tail));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::fatal(crate::files::describe_error(path, &e), "")),
        }
    }
    if !args.follow {
        return Ok(Exit::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, path) in files.iter().enumerate() {
            let Ok(mut file) = open(path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0;
            }
            if len == offsets[i] || file.seek(std::io::SeekFrom::Start(offsets[i])).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            let _ = file.read_to_end(&mut fresh);
            offsets[i] += fresh.len() as u64;
            show(&fresh);
        }
    }
}

/// The last `n` lines of a log (all of it without `n`).
fn last_lines(bytes: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else {
        return bytes;
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::{cp_hint, last_lines, FileError, TransferError};

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let log = b"a\nb\nc\n";
        assert_eq!(last_lines(log, Some(2)), b"b\nc\n");
        assert_eq!(last_lines(log, Some(5)), log);
        assert_eq!(last_lines(log, None), log);
        assert_eq!(last_lines(log, Some(0)), b"");
        assert_eq!(last_lines(b"x\ny", Some(1)), b"y");
    }

    #[test]
    fn a_copy_that_stopped_gets_the_hint_for_its_kind_of_error() {
        let hint = |e: TransferError| cp_hint(&e, "admin", "dev-a");
        let guest = |error| TransferError::Guest {
            path: "/root/x".into(),
            error,
        };
        assert!(hint(guest(FileError::PermissionDenied)).contains("`--user root`"));
        assert!(hint(guest(FileError::NotFound)).contains("`dev-a:` alone is that home"));
        assert!(hint(TransferError::IsDirectory {
            path: "/etc".into()
        })
        .starts_with("add -r"));
        let untrusted = TransferError::UntrustedName {
            dir: "/srv".into(),
            name: "..".into(),
        };
        assert!(hint(untrusted).contains("cannot be trusted"));
        // Words that merely read like a known error get no hint: only the kind counts.
        assert_eq!(
            hint(guest(FileError::Other("permission denied".into()))),
            ""
        );
    }
}
