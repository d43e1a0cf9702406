//! Every way into a running lab: `ssh` (the system ssh with the lab key and pinned host
//! keys), `exec` (one command on many nodes at once), `cp` (SFTP) and `logs`. The files other
//! tools read are in `export.rs`. None takes the lab lock.

use std::io::{IsTerminal, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{out, runtime, FileArgs, LabSnapshot};
use crate::engine::fanout;
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth, Output};
use crate::guest::transfer;
use crate::lab::{self, Node};
use crate::provider::tart::TartProvider;
use crate::provider::{Endpoint, Provider};
use crate::state::KnownHosts;
use crate::ui;

#[derive(clap::Args, Debug)]
pub struct SshArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Log in as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The node (VM name)
    pub node: String,
    /// A command to run instead of a shell
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Run as this user instead of the image's login user
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// How many nodes at once
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub parallel: usize,
    /// Which nodes: a name, cluster=NAME, role=NAME or all
    pub selector: String,
    /// The command, run by the login shell on each node (as ssh does)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
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
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The node (VM name)
    pub node: String,
    /// Keep printing what is appended, until Ctrl-C (`-f` is the lab file, as everywhere)
    #[arg(long)]
    pub follow: bool,
}

/// The provider, and the names of the VMs that run (one inventory).
fn provider_and_running() -> Result<(TartProvider, Vec<String>)> {
    let provider = TartProvider::locate(None).map_err(|e| Error::fatal(e.message, e.hint))?;
    let inventory = runtime()?.block_on(crate::engine::read_inventory(&provider))?;
    let running = inventory
        .vms
        .into_iter()
        .filter(|(_, v)| v.running)
        .map(|(name, _)| name)
        .collect();
    Ok((provider, running))
}

/// The system ssh's options for a node: lab key, pinned host key, no prompts.
fn ssh_options(snapshot: &LabSnapshot, vm: &str) -> Vec<String> {
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    [
        "-i".to_string(),
        key.display().to_string(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known.display()),
        "-o".into(),
        format!("HostKeyAlias={vm}"),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
    .to_vec()
}

pub fn ssh(args: &SshArgs) -> Result<Exit> {
    use std::os::unix::process::CommandExt;
    let snapshot = LabSnapshot::open(&args.file)?;
    let node = snapshot.node(&args.node)?;
    let (_, running) = provider_and_running()?;
    let ip = snapshot
        .address(node, &running)
        .map_err(|e| Error::fatal(e, ""))?;
    let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(ssh_options(&snapshot, &node.vm_name));
    if args.command.is_empty() && std::io::stdin().is_terminal() {
        cmd.arg("-t");
    }
    cmd.arg(format!("{user}@{ip}"));
    if !args.command.is_empty() {
        cmd.arg("--").args(&args.command);
    }
    let error = cmd.exec();
    Err(Error::fatal(
        format!("cannot run ssh: {error}"),
        "install the OpenSSH client",
    ))
}

/// What one node's command did, for the recap and `--json`.
#[derive(serde::Serialize)]
struct ExecResult {
    node: String,
    exit_code: Option<u32>,
    stdout: String,
    stderr: String,
    error: Option<String>,
    seconds: f64,
}

fn node_colour(i: usize) -> &'static str {
    ["36", "33", "35", "32", "34", "96", "93", "95"][i % 8]
}

/// One command on one node, with the lab key and the pinned host keys.
async fn run_one(
    endpoint: Endpoint,
    user: &str,
    key: &Arc<russh::keys::PrivateKey>,
    pinned: Vec<russh::keys::PublicKey>,
    command: &str,
) -> std::result::Result<Output, String> {
    if pinned.is_empty() {
        return Err("no host key is pinned for this VM: `tartlab up` first".into());
    }
    let connection = ssh::connect(
        &endpoint,
        user,
        Auth::Key(key),
        pinned,
        Duration::from_secs(15),
    )
    .await
    .map_err(|e| e.to_string())?;
    let output = connection.exec(command, None).await;
    connection.close().await;
    output
}

/// Everything one node's `exec` needs, gathered before the fan-out.
struct ExecJob {
    index: usize,
    vm: String,
    user: String,
    /// Where its sshd is, or why it cannot be reached.
    endpoint: std::result::Result<Endpoint, String>,
    pinned: Vec<russh::keys::PublicKey>,
    key: Arc<russh::keys::PrivateKey>,
    command: String,
}

pub fn exec(args: &ExecArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let targets: Vec<&Node> = snapshot
        .lab
        .nodes
        .iter()
        .filter(|n| lab::selects(&args.selector, n))
        .collect();
    if targets.is_empty() {
        return Err(Error::usage(
            format!("`{}` matches no node of the lab", args.selector),
            "use all, a node name, cluster=NAME or role=NAME",
        ));
    }
    let (provider, running) = provider_and_running()?;
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
            endpoint: snapshot
                .address(node, &running)
                .map(|ip| provider.ssh_endpoint(&node.vm_name, &ip)),
            pinned: known.pinned(&node.vm_name),
            key: key.clone(),
            command: args.command.join(" "),
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
            error: None,
            seconds: 0.0,
        };
        let ran = match self.endpoint {
            Ok(endpoint) => {
                run_one(endpoint, &self.user, &self.key, self.pinned, &self.command).await
            }
            Err(e) => Err(e),
        };
        match ran {
            Ok(output) => {
                result.exit_code = output.status;
                result.stdout = output.stdout_text();
                result.stderr = output.stderr_text();
            }
            Err(e) => result.error = Some(e),
        }
        result.seconds = started.elapsed().as_secs_f64();
        if !show.json {
            print_prefixed(&result, self.index, show.width, show.colour);
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

/// A node's output, each line prefixed with its name (coloured on a terminal).
fn print_prefixed(result: &ExecResult, index: usize, width: usize, colour: bool) {
    let prefix = if colour {
        format!(
            "\x1b[{}m{:<width$}\x1b[0m |",
            node_colour(index),
            result.node
        )
    } else {
        format!("{:<width$} |", result.node)
    };
    let mut stdout = std::io::stdout().lock();
    for line in result.stdout.lines() {
        let _ = writeln!(stdout, "{prefix} {line}");
    }
    drop(stdout);
    let mut stderr = std::io::stderr().lock();
    for line in result.stderr.lines() {
        let _ = writeln!(stderr, "{prefix} {line}");
    }
    if let Some(e) = &result.error {
        let _ = writeln!(stderr, "{prefix} error: {e}");
    }
}

/// `NODE:PATH` split, when the text names a node of the lab.
fn remote_part<'a>(snapshot: &LabSnapshot, text: &'a str) -> Option<(&'a str, &'a str)> {
    let (node, path) = text.split_once(':')?;
    snapshot.lab.node(node).map(|_| (node, path))
}

pub fn cp(args: &CpArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let (node_name, upload, remote_path, local) = match (
        remote_part(&snapshot, &args.source),
        remote_part(&snapshot, &args.destination),
    ) {
        (None, Some((n, p))) => (n, true, p.to_string(), PathBuf::from(&args.source)),
        (Some((n, p)), None) => (n, false, p.to_string(), PathBuf::from(&args.destination)),
        _ => {
            return Err(Error::usage(
                "give one side as NODE:PATH and the other as a local path",
                "e.g. `tartlab cp ./app.conf dev-master:/tmp/app.conf`",
            ))
        }
    };
    let node = snapshot.node(node_name)?.clone();
    let (provider, running) = provider_and_running()?;
    let ip = snapshot
        .address(&node, &running)
        .map_err(|e| Error::fatal(e, ""))?;
    let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let pinned = KnownHosts::new(&snapshot.dir).pinned(&node.vm_name);
    let endpoint = provider.ssh_endpoint(&node.vm_name, &ip);
    let copied = runtime()?.block_on(async {
        let connection = ssh::connect(
            &endpoint,
            &user,
            Auth::Key(&key),
            pinned,
            Duration::from_secs(15),
        )
        .await
        .map_err(|e| e.to_string())?;
        let sftp = connection.sftp().await?;
        let depth = if args.recursive {
            transfer::Depth::Recursive
        } else {
            transfer::Depth::Files
        };
        let result = if upload {
            transfer::upload(&sftp, &local, &remote_path, depth).await
        } else {
            transfer::download(&sftp, &remote_path, &local, depth).await
        };
        let _ = sftp.close().await;
        connection.close().await;
        result
    });
    match copied {
        Ok(n) => {
            eprintln!("copied {n} file(s)");
            Ok(Exit::Ok)
        }
        Err(e) => Err(Error::fatal(
            format!("cp {} {}: {e}", args.source, args.destination),
            "use -r for directories; remote paths are as the login user sees them",
        )),
    }
}

pub fn logs(args: &LogsArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let node = snapshot.node(&args.node)?;
    let files = [
        snapshot.dir.run_log(&node.vm_name),
        snapshot.dir.provision_log(&node.vm_name),
    ];
    let mut offsets = [0u64; 2];
    let mut stdout = std::io::stdout();
    for (i, path) in files.iter().enumerate() {
        let text = std::fs::read(path).unwrap_or_default();
        let _ = writeln!(stdout, "==> {} <==", path.display());
        let _ = stdout.write_all(&text);
        offsets[i] = text.len() as u64;
    }
    if !args.follow {
        return Ok(Exit::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, path) in files.iter().enumerate() {
            let Ok(mut file) = std::fs::File::open(path) else {
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
            let _ = stdout.write_all(&fresh);
            let _ = stdout.flush();
        }
    }
}
