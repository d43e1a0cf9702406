//! Every way into a running lab: `ssh` (the system ssh with the lab key and pinned host
//! keys), `exec` (one command on many nodes at once), `cp` (SFTP), `logs`, and the files other
//! tools read: `ssh-config` (OpenSSH `Include`) and `inventory` (Ansible).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;

use super::{fatal, out, FileArgs, LabView, EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_PARTIAL};
use crate::guest::ssh::{self, Auth};
use crate::lab::{self, Node};
use crate::provider::Tart;
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

#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// INI instead of YAML
    #[arg(long)]
    pub ini: bool,
}

/// The names of running local VMs (one `tart list`).
fn running_vms() -> Result<Vec<String>, i32> {
    let tart = Tart::locate().map_err(|e| {
        fatal(
            &format!("cannot find tart: {e}"),
            "install it, or point TARTLAB_TART at it",
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fatal(&e.to_string(), ""))?;
    let list = rt.block_on(tart.list()).map_err(|e| {
        fatal(
            &format!("cannot list tart's VMs: {e}"),
            "check the tart installation: `tart list`",
        )
    })?;
    Ok(list
        .into_iter()
        .filter(|e| e.is_local() && e.is_running())
        .map(|e| e.name)
        .collect())
}

/// The system ssh's options for a node: lab key, pinned host key, no prompts.
fn ssh_options(view: &LabView, vm: &str) -> Vec<String> {
    let key = view.absolute(view.dir.key_path());
    let known = view.absolute(view.dir.known_hosts_path());
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

pub fn ssh(args: &SshArgs) -> i32 {
    use std::os::unix::process::CommandExt;
    let run = || -> Result<i32, i32> {
        let view = LabView::open(&args.file)?;
        let node = view.node(&args.node)?;
        let ip = view
            .address(node, &running_vms()?)
            .map_err(|e| fatal(&e, ""))?;
        let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(ssh_options(&view, &node.vm_name));
        if args.command.is_empty() && std::io::stdin().is_terminal() {
            cmd.arg("-t");
        }
        cmd.arg(format!("{user}@{ip}"));
        if !args.command.is_empty() {
            cmd.arg("--").args(&args.command);
        }
        let error = cmd.exec();
        Err(fatal(
            &format!("cannot run ssh: {error}"),
            "install the OpenSSH client",
        ))
    };
    run().unwrap_or_else(|code| code)
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

pub fn exec(args: &ExecArgs) -> i32 {
    let run = || -> Result<i32, i32> {
        let view = LabView::open(&args.file)?;
        let targets: Vec<Node> = view
            .nodes
            .iter()
            .filter(|n| lab::selects(&args.selector, n))
            .cloned()
            .collect();
        if targets.is_empty() {
            eprintln!("error: `{}` matches no node of the lab", args.selector);
            eprintln!("  hint: use all, a node name, cluster=NAME or role=NAME");
            return Err(EXIT_INVALID);
        }
        let running = running_vms()?;
        let key = Arc::new(
            view.dir
                .lab_key()
                .map_err(|e| fatal(&e, "check .tartlab/id_ed25519"))?,
        );
        let known = KnownHosts::new(&view.dir);
        let command = args.command.join(" ");
        let colour = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let width = targets.iter().map(|n| n.vm_name.len()).max().unwrap_or(0);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fatal(&e.to_string(), ""))?;
        let results = rt.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
            let mut tasks = Vec::new();
            for (i, node) in targets.iter().enumerate() {
                let address = view.address(node, &running);
                let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
                let (key, known, limit, command) =
                    (key.clone(), known.clone(), limit.clone(), command.clone());
                let vm = node.vm_name.clone();
                let json = args.file.json;
                tasks.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let mut result = ExecResult {
                        node: vm.clone(),
                        exit_code: None,
                        stdout: String::new(),
                        stderr: String::new(),
                        error: None,
                        seconds: 0.0,
                    };
                    let _permit = limit.acquire().await;
                    match address {
                        Err(e) => result.error = Some(e),
                        Ok(ip) => {
                            match run_one(&ip, &user, &key, known.pinned(&vm), &command).await {
                                Ok(output) => {
                                    result.exit_code = output.status;
                                    result.stdout = output.stdout_text();
                                    result.stderr = output.stderr_text();
                                }
                                Err(e) => result.error = Some(e),
                            }
                        }
                    }
                    result.seconds = started.elapsed().as_secs_f64();
                    if !json {
                        print_prefixed(&result, i, width, colour);
                    }
                    result
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                if let Ok(r) = task.await {
                    results.push(r);
                }
            }
            results
        });
        let failed = results.iter().filter(|r| r.exit_code != Some(0)).count();
        let code = match failed {
            0 => EXIT_OK,
            n if n == results.len() => EXIT_FAILED,
            _ => EXIT_PARTIAL,
        };
        if args.file.json {
            out(&serde_json::json!({ "results": results, "exit_code": code }).to_string());
            return Ok(code);
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
        Ok(code)
    };
    run().unwrap_or_else(|code| code)
}

async fn run_one(
    ip: &str,
    user: &str,
    key: &Arc<PrivateKey>,
    pinned: Vec<russh::keys::PublicKey>,
    command: &str,
) -> Result<ssh::Output, String> {
    if pinned.is_empty() {
        return Err("no host key is pinned for this VM: `tartlab up` first".into());
    }
    let session = ssh::connect(ip, user, Auth::Key(key), pinned, Duration::from_secs(15))
        .await
        .map_err(|e| e.to_string())?;
    let output = session.exec(command, None).await;
    session.close().await;
    output
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
fn remote_part<'a>(view: &LabView, text: &'a str) -> Option<(&'a str, &'a str)> {
    let (node, path) = text.split_once(':')?;
    view.nodes
        .iter()
        .any(|n| n.vm_name == node)
        .then_some((node, path))
}

pub fn cp(args: &CpArgs) -> i32 {
    let run = || -> Result<i32, i32> {
        let view = LabView::open(&args.file)?;
        let (node_name, upload, remote_path, local) = match (
            remote_part(&view, &args.source),
            remote_part(&view, &args.destination),
        ) {
            (None, Some((n, p))) => (n, true, p.to_string(), PathBuf::from(&args.source)),
            (Some((n, p)), None) => (n, false, p.to_string(), PathBuf::from(&args.destination)),
            _ => {
                eprintln!("error: give one side as NODE:PATH and the other as a local path");
                eprintln!("  hint: e.g. `tartlab cp ./app.conf dev-master:/tmp/app.conf`");
                return Err(EXIT_INVALID);
            }
        };
        let node = view.node(node_name)?.clone();
        let ip = view
            .address(&node, &running_vms()?)
            .map_err(|e| fatal(&e, ""))?;
        let user = args.user.clone().unwrap_or_else(|| node.login.user.clone());
        let key = Arc::new(
            view.dir
                .lab_key()
                .map_err(|e| fatal(&e, "check .tartlab/id_ed25519"))?,
        );
        let pinned = KnownHosts::new(&view.dir).pinned(&node.vm_name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fatal(&e.to_string(), ""))?;
        let copied = rt.block_on(async {
            let session =
                ssh::connect(&ip, &user, Auth::Key(&key), pinned, Duration::from_secs(15))
                    .await
                    .map_err(|e| e.to_string())?;
            let sftp = session.sftp().await?;
            let result = if upload {
                put(&sftp, &local, &remote_path, args.recursive).await
            } else {
                get(&sftp, &remote_path, &local, args.recursive).await
            };
            let _ = sftp.close().await;
            session.close().await;
            result
        });
        match copied {
            Ok(n) => {
                eprintln!("copied {n} file(s)");
                Ok(EXIT_OK)
            }
            Err(e) => Err(fatal(
                &format!("cp {} {}: {e}", args.source, args.destination),
                "use -r for directories; remote paths are as the login user sees them",
            )),
        }
    };
    run().unwrap_or_else(|code| code)
}

async fn is_remote_dir(sftp: &russh_sftp::client::SftpSession, path: &str) -> bool {
    sftp.metadata(path).await.is_ok_and(|m| m.is_dir())
}

/// Local to remote; into a remote directory when the destination is one.
fn put<'a>(
    sftp: &'a russh_sftp::client::SftpSession,
    local: &'a Path,
    remote: &'a str,
    recursive: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, String>> + Send + 'a>> {
    Box::pin(async move {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = if is_remote_dir(sftp, remote).await {
            format!("{}/{name}", remote.trim_end_matches('/'))
        } else {
            remote.to_string()
        };
        if local.is_dir() {
            if !recursive {
                return Err(format!("{} is a directory (use -r)", local.display()));
            }
            if !is_remote_dir(sftp, &target).await {
                sftp.create_dir(target.as_str())
                    .await
                    .map_err(|e| format!("{target}: {e}"))?;
            }
            let mut count = 0;
            let entries =
                std::fs::read_dir(local).map_err(|e| format!("{}: {e}", local.display()))?;
            for entry in entries.flatten() {
                count += put(sftp, &entry.path(), &target, true).await?;
            }
            return Ok(count);
        }
        let data = std::fs::read(local).map_err(|e| format!("{}: {e}", local.display()))?;
        ssh::sftp_put(sftp, &target, &data)
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        Ok(1)
    })
}

/// Remote to local; into a local directory when the destination is one.
fn get<'a>(
    sftp: &'a russh_sftp::client::SftpSession,
    remote: &'a str,
    local: &'a Path,
    recursive: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, String>> + Send + 'a>> {
    Box::pin(async move {
        let name = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .to_string();
        let target = if local.is_dir() {
            local.join(&name)
        } else {
            local.to_path_buf()
        };
        if is_remote_dir(sftp, remote).await {
            if !recursive {
                return Err(format!("{remote} is a directory (use -r)"));
            }
            std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            let mut count = 0;
            let entries = sftp
                .read_dir(remote)
                .await
                .map_err(|e| format!("{remote}: {e}"))?;
            for entry in entries {
                let child = format!("{}/{}", remote.trim_end_matches('/'), entry.file_name());
                count += get(sftp, &child, &target, true).await?;
            }
            return Ok(count);
        }
        let data = sftp
            .read(remote)
            .await
            .map_err(|e| format!("{remote}: {e}"))?;
        std::fs::write(&target, data).map_err(|e| format!("{}: {e}", target.display()))?;
        Ok(1)
    })
}

pub fn logs(args: &LogsArgs) -> i32 {
    let run = || -> Result<i32, i32> {
        let view = LabView::open(&args.file)?;
        let node = view.node(&args.node)?;
        let files = [
            view.dir.run_log(&node.vm_name),
            view.dir.provision_log(&node.vm_name),
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
            return Ok(EXIT_OK);
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
    };
    run().unwrap_or_else(|code| code)
}

pub fn ssh_config(args: &FileArgs) -> i32 {
    let run = || -> Result<i32, i32> {
        let view = LabView::open(args)?;
        let key = view.absolute(view.dir.key_path());
        let known = view.absolute(view.dir.known_hosts_path());
        let mut text = format!(
            "# tartlab lab `{}`: `Include` this file from ~/.ssh/config\n",
            view.lab_name
        );
        for node in &view.nodes {
            let Some(ip) = view.state.vms.get(&node.vm_name).and_then(|o| o.ip.clone()) else {
                text.push_str(&format!(
                    "\n# {}: no address yet (`tartlab up`)\n",
                    node.vm_name
                ));
                continue;
            };
            text.push_str(&format!(
                "\nHost {vm}\n  HostName {ip}\n  User {user}\n  IdentityFile \"{key}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"{known}\"\n  HostKeyAlias {vm}\n  StrictHostKeyChecking yes\n",
                vm = node.vm_name,
                user = node.login.user,
                key = key.display(),
                known = known.display(),
            ));
        }
        let path = view.dir.root.join("ssh_config");
        if view.dir.root.is_dir() {
            crate::state::write_atomic(&path, text.as_bytes(), 0o644)
                .map_err(|e| fatal(&format!("cannot write {}: {e}", path.display()), ""))?;
        }
        print!("{text}");
        Ok(EXIT_OK)
    };
    run().unwrap_or_else(|code| code)
}

/// An Ansible group name: letters, digits and `_`.
fn group_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn inventory(args: &InventoryArgs) -> i32 {
    let run = || -> Result<i32, i32> {
        let view = LabView::open(&args.file)?;
        let key = view.absolute(view.dir.key_path());
        let known = view.absolute(view.dir.known_hosts_path());
        let mut groups: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
        for node in &view.nodes {
            groups
                .entry(group_name(&node.cluster))
                .or_default()
                .push(node);
            let role = groups.entry(group_name(&node.role)).or_default();
            if !role.iter().any(|n| n.vm_name == node.vm_name) {
                role.push(node);
            }
        }
        let host_vars = |node: &Node| -> Vec<(String, String)> {
            let mut vars = vec![
                ("ansible_user".to_string(), node.login.user.clone()),
                (
                    "ansible_ssh_private_key_file".into(),
                    key.display().to_string(),
                ),
                (
                    "ansible_ssh_common_args".into(),
                    format!(
                        "-o UserKnownHostsFile={} -o HostKeyAlias={} -o StrictHostKeyChecking=yes",
                        known.display(),
                        node.vm_name
                    ),
                ),
            ];
            if let Some(ip) = view.state.vms.get(&node.vm_name).and_then(|o| o.ip.clone()) {
                vars.insert(0, ("ansible_host".into(), ip));
            }
            vars
        };
        let mut text = String::new();
        if args.ini {
            for (group, nodes) in &groups {
                text.push_str(&format!("[{group}]\n"));
                for node in nodes {
                    let vars: Vec<String> = host_vars(node)
                        .into_iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                if v.contains(' ') {
                                    format!("\"{v}\"")
                                } else {
                                    v
                                }
                            )
                        })
                        .collect();
                    text.push_str(&format!("{} {}\n", node.vm_name, vars.join(" ")));
                }
                text.push('\n');
            }
        } else {
            let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
            text.push_str("all:\n  children:\n");
            for (group, nodes) in &groups {
                text.push_str(&format!("    {group}:\n      hosts:\n"));
                for node in nodes {
                    text.push_str(&format!("        {}:\n", node.vm_name));
                    for (k, v) in host_vars(node) {
                        text.push_str(&format!("          {k}: {}\n", json(&v)));
                    }
                }
            }
        }
        print!("{text}");
        Ok(EXIT_OK)
    };
    run().unwrap_or_else(|code| code)
}
