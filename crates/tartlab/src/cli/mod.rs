//! The command line: parsing (clap), and one function per command, each returning its exit
//! code or the error it stopped with (`error.rs`), which `main` prints. The changing
//! commands are in `lifecycle.rs`, the reading ones in `inspect.rs`, the ways into a running
//! lab in `access/`; what they share (finding and opening the lab) is here.

mod access;
mod ask;
mod complete;
mod doctor;
mod export;
mod init;
mod inspect;
mod labs;
mod lifecycle;
mod snapshot;
mod status;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Exit, Result};
use crate::lab::{self, Lab, Node};
use crate::state::{State, StateDir};

/// Bring up whole labs of Linux VMs (clusters of nodes) with tart, from one lab file.
#[derive(Parser, Debug)]
#[command(
    name = "tartlab",
    arg_required_else_help = true,
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TARTLAB_COMMIT"), ")"),
    about,
    long_about = None,
    after_help = "The lab file (tartlab.yaml, found here or in a parent directory): every key, with examples, in docs/LAB-FILE.md (https://github.com/tartlab/tartlab/blob/main/docs/LAB-FILE.md). `tartlab schema` prints its JSON Schema; `tartlab config` prints a lab as `up` sees it."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a lab file to start from (minimal, seed or k3s)
    Init(init::InitArgs),
    /// Check the lab file; every problem with file, line and column
    #[command(
        after_long_help = "Examples:\n  tartlab validate\n  tartlab validate -f lab.json --json"
    )]
    Validate(FileArgs),
    /// Show what `up` would do to each node, without doing it
    #[command(after_long_help = "Examples:\n  tartlab plan\n  tartlab plan --json")]
    Plan(FileArgs),
    /// Create, boot and provision the lab (or the selected nodes); only what changed
    #[command(
        after_long_help = "Examples:\n  tartlab up\n  tartlab up cluster=dev\n  tartlab up --reprovision=install-k3s\n  tartlab up --remove-orphans"
    )]
    Up(lifecycle::UpArgs),
    /// Table of the lab's nodes: state, address, resources (one `tart list`, no SSH)
    #[command(visible_alias = "ps")]
    #[command(
        after_long_help = "Examples:\n  tartlab status\n  tartlab ps -o wide      (the image, its digest, disk and network too)\n  tartlab ps --json"
    )]
    Status(status::StatusArgs),
    /// Shut the lab's VMs down (from inside the guest, then `tart stop`); they are kept
    #[command(after_long_help = "Examples:\n  tartlab stop\n  tartlab stop 'dev-*'")]
    Stop(lifecycle::NodesArgs),
    /// Boot the lab's stopped VMs and wait until they are ready
    #[command(after_long_help = "Examples:\n  tartlab start\n  tartlab start role=worker")]
    Start(lifecycle::NodesArgs),
    /// Stop the lab's VMs (or the selected ones) and start them again
    #[command(after_long_help = "Examples:\n  tartlab restart dev-master")]
    Restart(lifecycle::NodesArgs),
    /// Stop and delete the VMs this lab created (or only the selected ones), and forget them
    #[command(
        after_long_help = "Examples:\n  tartlab down\n  tartlab down cluster=stg\n  tartlab down --lab old-lab   (a lab of `tartlab labs` whose directory is gone)"
    )]
    Down(lifecycle::DownArgs),
    /// Whole-lab snapshots: save, list, restore (with each node's address), delete
    #[command(
        after_long_help = "Examples:\n  tartlab snapshot save provisioned\n  tartlab snapshot list\n  tartlab snapshot restore provisioned"
    )]
    Snapshot(snapshot::SnapshotArgs),
    /// Log into a node (or run one command) with the system ssh, lab key and pinned host key
    Ssh(access::SshArgs),
    /// Run a command on many nodes at once: output prefixed per node, a recap, exit 3 if some failed
    Exec(access::ExecArgs),
    /// Copy files to or from a node: `tartlab cp [-r] SRC DEST` with NODE:PATH on one side
    Cp(access::CpArgs),
    /// Forward a local port to a node's port (127.0.0.1 only), as `ssh -L`, until Ctrl-C
    Forward(access::ForwardArgs),
    /// A node's `tart run` log and provisioning transcript
    Logs(access::LogsArgs),
    /// An OpenSSH config with a Host per node (also written to .tartlab/ssh_config)
    #[command(
        after_long_help = "Examples:\n  tartlab ssh-config >> ~/.ssh/config.d/lab && ssh dev-master\n  tartlab ssh-config --json"
    )]
    SshConfig(FileArgs),
    /// An Ansible inventory grouped by cluster and role (YAML, or INI with --ini)
    Inventory(export::InventoryArgs),
    /// Print the lab as `up` sees it: defaults applied, counts expanded, names as they will be
    /// (YAML, or JSON with --json); itself a valid lab file, its secrets masked (and marked so)
    /// unless --show-secrets
    #[command(
        after_long_help = "Examples:\n  tartlab config\n  tartlab config --json | jq '.clusters[].nodes[].name'\n  tartlab config --show-secrets > resolved.yaml   (the login passwords as they are)"
    )]
    Config(inspect::ConfigArgs),
    /// Print the JSON Schema of the lab file (for editors; docs/LAB-FILE.md explains it)
    #[command(
        after_long_help = "Examples:\n  tartlab schema > tartlab.schema.json   (then, in tartlab.yaml: # yaml-language-server: $schema=tartlab.schema.json)"
    )]
    Schema,
    /// Every lab brought up on this machine: its file, VMs and how many run
    Labs(labs::LabsArgs),
    /// Check that this machine can run the lab: tart, its network, disk, leases, the lab's
    /// directory and key; each with a fix
    #[command(after_long_help = "Examples:\n  tartlab doctor\n  tartlab doctor --json")]
    Doctor(FileArgs),
    /// Print shell completions (bash, zsh or fish)
    Completions(init::CompletionsArgs),
    /// Print the man page, or write one per command into a directory
    Man(init::ManArgs),
    /// A node's sshd on stdin and stdout, by the lab provider's own way in (OpenSSH's
    /// ProxyCommand, as ssh-config and inventory write it)
    #[command(hide = true)]
    Proxy(access::ProxyArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    /// The lab file (default: tartlab.yaml, tartlab.yml, then tartlab.json, here or in a
    /// parent directory)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// The lab file alone, for the commands whose output is not data (`ssh`, `logs`): they
/// take no `--json` (clap refuses it, exit 2, rather than ignore it).
#[derive(clap::Args, Debug, Clone)]
pub struct FileOnly {
    /// The lab file (default: tartlab.yaml, tartlab.yml, then tartlab.json, here or in a
    /// parent directory)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl FileOnly {
    pub fn args(&self) -> FileArgs {
        FileArgs {
            file: self.file.clone(),
            json: false,
        }
    }
}

/// Parses the command line and runs the command.
pub fn run() -> Result<Exit> {
    complete::answer_if_asked();
    let cli = Cli::parse_from(access::command_marked(std::env::args_os().collect()));
    match cli.command {
        Command::Validate(args) => inspect::validate(&args),
        Command::Plan(args) => inspect::plan(&args),
        Command::Up(args) => lifecycle::up(&args),
        Command::Status(args) => status::status(&args),
        Command::Stop(args) => lifecycle::stop(&args),
        Command::Start(args) => lifecycle::start(&args),
        Command::Restart(args) => lifecycle::restart(&args),
        Command::Down(args) => lifecycle::down(&args),
        Command::Snapshot(args) => snapshot::snapshot(&args),
        Command::Ssh(args) => access::ssh(&args),
        Command::Exec(args) => access::exec(&args),
        Command::Cp(args) => access::cp(&args),
        Command::Logs(args) => access::logs(&args),
        Command::Forward(args) => access::forward(&args),
        Command::Proxy(args) => access::proxy(&args),
        Command::SshConfig(args) => export::ssh_config(&args),
        Command::Inventory(args) => export::inventory(&args),
        Command::Config(args) => inspect::config(&args),
        Command::Schema => inspect::schema(),
        Command::Init(args) => init::init(&args),
        Command::Doctor(args) => doctor::doctor(&args),
        Command::Labs(args) => labs::labs(&args),
        Command::Completions(args) => init::completions(&args),
        Command::Man(args) => init::man(&args),
    }
}

/// How many nodes a command works on at once (`--parallel`): 0 would do nothing and wait
/// forever, so clap refuses it, with the range, exit 2.
pub(crate) fn parallelism() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024)
}

pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}");
}

/// Finds, reads and validates the lab file; every problem, or the lab. `changing`: the
/// command would change something (its error then says nothing was).
pub(crate) fn open_lab(args: &FileArgs, changing: bool) -> Result<Lab> {
    let invalid = |problems| Error::InvalidLab {
        problems,
        json: args.json,
        changing,
    };
    let path = lab::locate(args.file.as_deref()).map_err(|d| invalid(vec![*d]))?;
    Lab::open(&path).map_err(invalid)
}

/// A tokio runtime for a command's async work.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::fatal(format!("cannot start the async runtime: {e}"), ""))
}

/// Runs a command's async body to its end.
pub(crate) fn block_on<F: std::future::Future<Output = Result<Exit>>>(work: F) -> Result<Exit> {
    runtime()?.block_on(work)
}

/// The selected VM names in lab order; every selector must match something.
pub(crate) fn select(nodes: &[Node], selectors: &[String]) -> Result<Vec<String>> {
    for selector in selectors {
        if !nodes.iter().any(|n| lab::selects(selector, n)) {
            return Err(no_such_node(nodes, selector));
        }
    }
    Ok(nodes
        .iter()
        .filter(|n| selectors.is_empty() || selectors.iter().any(|s| lab::picks(s, n, nodes)))
        .map(|n| n.vm_name.clone())
        .collect())
}

/// A name or selector that matches no node: the nearest one that would, and the lab's
/// nodes (the user's own names, never an example's).
pub(crate) fn no_such_node(nodes: &[Node], selector: &str) -> Error {
    let mut candidates: Vec<String> = nodes.iter().map(|n| n.vm_name.clone()).collect();
    for n in nodes {
        for other in [format!("cluster={}", n.cluster), format!("role={}", n.role)] {
            if !candidates.contains(&other) {
                candidates.push(other);
            }
        }
    }
    let mut message = format!("`{selector}` matches no node of the lab");
    if let Some(near) = lab::closest(selector, candidates.iter().map(String::as_str)) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    let names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
    let example = names.first().copied().unwrap_or("NODE");
    let cluster = nodes.first().map_or("NAME", |n| n.cluster.as_str());
    Error::usage(
        message,
        format!(
            "the nodes are {}; a selector is a name, a glob ({}), cluster={cluster}, role=NAME or all",
            names.join(", "),
            example
                .rsplit_once('-')
                .map_or_else(|| format!("{example}*"), |(head, _)| format!("{head}-*"))
        ),
    )
}

/// A changing command at work on the lab now: the lab lock's holder, alive, and (from the
/// journal) the command it runs and its nodes, when its run has begun and not ended.
pub(crate) struct Busy {
    pub pid: i32,
    pub run: Option<(String, Vec<String>)>,
}

impl Busy {
    pub(crate) fn now(dir: &StateDir) -> Option<Busy> {
        let pid = dir.lock_holder()?;
        // The lock file keeps the last holder's pid after it ends; a live process under that
        // number must be a tartlab to be taken for the holder.
        if !is_a_tartlab(pid) {
            return None;
        }
        Some(Busy {
            pid,
            run: last_run_unfinished(&dir.events_path()),
        })
    }

    /// Why `vm` cannot be reached yet, in the words of what holds the lab, or `None` when
    /// the command that holds it works on other nodes.
    pub(crate) fn about(&self, vm: &str, state: &str) -> Option<String> {
        let pid = self.pid;
        let doing = match &self.run {
            Some((_, nodes)) if !nodes.iter().any(|n| n == vm) => return None,
            Some((command, _)) => {
                let what = match command.as_str() {
                    "stop" => "stopping it",
                    "down" => "deleting it",
                    "restart" => "restarting it",
                    _ => "bringing it up",
                };
                format!("{} `{command}` (pid {pid}) is {what}", article(command))
            }
            None => format!("another tartlab (pid {pid}) is working on the lab"),
        };
        Some(format!(
            "{vm} {state}: {doing}; wait for it to end (`tartlab status` shows how far it is), then run this again"
        ))
    }
}

/// Whether process `pid` runs a program named tartlab, as `ps` (macOS and Linux alike) says;
/// without `ps`, the live pid is taken at its word.
fn is_a_tartlab(pid: i32) -> bool {
    match std::process::Command::new("ps")
        .args(["-o", "comm=", "-p", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).contains("tartlab"),
        Err(_) => true,
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The command and nodes of the journal's last run, if it began and has not ended.
fn last_run_unfinished(journal: &std::path::Path) -> Option<(String, Vec<String>)> {
    use std::io::BufRead;
    let file = std::fs::File::open(journal).ok()?;
    let mut last = None;
    for line in std::io::BufReader::new(file).lines().map_while(|l| l.ok()) {
        // Only the run's own lines matter; most lines are a node's.
        if !line.contains("\"run_") {
            continue;
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let detail = &event["detail"];
        match detail["kind"].as_str() {
            Some("run_started") => {
                let command = detail["command"].as_str().unwrap_or("").to_string();
                let nodes = detail["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                last = Some((command, nodes));
            }
            Some("run_finished") => last = None,
            _ => {}
        }
    }
    last
}

/// A lab as the reading commands see it: the lab, its `.tartlab/` and what its state says,
/// read without the lock (they work while an `up` runs).
pub(crate) struct LabSnapshot {
    pub lab: Lab,
    pub dir: StateDir,
    pub state: State,
}

impl LabSnapshot {
    pub(crate) fn open(args: &FileArgs) -> Result<LabSnapshot> {
        let mut lab = open_lab(args, false)?;
        let dir = StateDir::beside(&lab.source.path);
        dir.check().map_err(|e| Error::fatal(e, ""))?;
        // A renamed `lab:` is read as the lab it was; the next changing command writes it.
        let (state, _) = dir
            .read_state_for(lab.name(), &lab.source.path)
            .map_err(|e| Error::fatal(e, ""))?;
        lab.keep_owned_names(|vm| state.knows(vm));
        Ok(LabSnapshot { lab, dir, state })
    }

    pub(crate) fn absolute(&self, path: PathBuf) -> PathBuf {
        std::path::absolute(&path).unwrap_or(path)
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Node> {
        self.lab
            .node(name)
            .ok_or_else(|| no_such_node(&self.lab.nodes, name))
    }

    /// The node's address, if the lab owns it and it runs; else the one command that makes
    /// it so.
    pub(crate) fn address(
        &self,
        node: &Node,
        vms: &crate::provider::Inventory,
    ) -> std::result::Result<String, String> {
        self.address_now(node, vms).map_err(|(state, otherwise)| {
            Busy::now(&self.dir)
                .and_then(|busy| busy.about(&node.vm_name, state))
                .unwrap_or(otherwise)
        })
    }

    /// `address`, without asking whether a changing command is at work: on failure, the
    /// node's state in a few words and the full message.
    fn address_now(
        &self,
        node: &Node,
        vms: &crate::provider::Inventory,
    ) -> std::result::Result<String, (&'static str, String)> {
        let vm = &node.vm_name;
        let Some(owned) = self.state.vms.get(vm) else {
            return Err((
                "has not been created yet",
                format!("{vm} has not been created by this lab: `tartlab up {vm}` makes it"),
            ));
        };
        match vms.vms.get(vm) {
            None => {
                return Err((
                    "does not exist yet",
                    format!(
                        "{vm} no longer exists (deleted outside tartlab?): `tartlab up {vm}` makes it again"
                    ),
                ))
            }
            Some(v) if !v.running => {
                return Err((
                    "is not running",
                    format!("{vm} is stopped: `tartlab up {vm}` boots it"),
                ))
            }
            Some(_) => {}
        }
        owned.ip.clone().ok_or_else(|| {
            (
                "has no known address yet",
                format!("{vm} has no known address yet: `tartlab up {vm}`"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
