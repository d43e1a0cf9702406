//! The command line: parsing (clap), and one function per command, each returning its exit
//! code or the error it stopped with (`error.rs`), which `main` prints. The changing
//! commands are in `lifecycle.rs`, the reading ones in `inspect.rs`, the ways into a running
//! lab in `access.rs`; what they share (finding and opening the lab) is here.

mod access;
mod export;
mod inspect;
mod lifecycle;

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
    version,
    about,
    long_about = None,
    after_help = "The lab file (tartlab.yaml, found here or in a parent directory): every key, with examples, in docs/LAB-FILE.md (https://github.com/tartlab/tartlab/blob/main/docs/LAB-FILE.md). `tartlab schema` prints its JSON Schema; `tartlab config` prints a lab as `up` sees it."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the lab file; every problem with file, line and column
    Validate(FileArgs),
    /// Show what `up` would do to each node, without doing it
    Plan(FileArgs),
    /// Create, boot and provision the lab (or the selected nodes); only what changed
    Up(lifecycle::UpArgs),
    /// Table of the lab's nodes: state, address, resources (one `tart list`, no SSH)
    #[command(visible_alias = "ps")]
    Status(FileArgs),
    /// Shut the lab's VMs down (from inside the guest, then `tart stop`); they are kept
    Stop(lifecycle::NodesArgs),
    /// Boot the lab's stopped VMs and wait until they are ready
    Start(lifecycle::NodesArgs),
    /// Stop and delete the VMs this lab created (or only the selected ones), and forget them
    Down(lifecycle::NodesArgs),
    /// Log into a node (or run one command) with the system ssh, lab key and pinned host key
    Ssh(access::SshArgs),
    /// Run a command on many nodes at once: output prefixed per node, a recap, exit 3 if some failed
    Exec(access::ExecArgs),
    /// Copy files to or from a node: `tartlab cp [-r] SRC DEST` with NODE:PATH on one side
    Cp(access::CpArgs),
    /// A node's `tart run` log and provisioning transcript
    Logs(access::LogsArgs),
    /// An OpenSSH config with a Host per node (also written to .tartlab/ssh_config)
    SshConfig(FileArgs),
    /// An Ansible inventory grouped by cluster and role (YAML, or INI with --ini)
    Inventory(export::InventoryArgs),
    /// Print the lab as `up` sees it: defaults applied, counts expanded, names as they will be
    /// (YAML, or JSON with --json); itself a valid lab file
    Config(FileArgs),
    /// Print the JSON Schema of the lab file (for editors; docs/LAB-FILE.md explains it)
    Schema,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    /// The lab file (default: tartlab.yaml, tartlab.yml, then tartlab.json)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Parses the command line and runs the command.
pub fn run() -> Result<Exit> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            Ok(Exit::Ok)
        }
        Some(Command::Validate(args)) => inspect::validate(&args),
        Some(Command::Plan(args)) => inspect::plan(&args),
        Some(Command::Up(args)) => lifecycle::up(&args),
        Some(Command::Status(args)) => inspect::status(&args),
        Some(Command::Stop(args)) => lifecycle::stop(&args),
        Some(Command::Start(args)) => lifecycle::start(&args),
        Some(Command::Down(args)) => lifecycle::down(&args),
        Some(Command::Ssh(args)) => access::ssh(&args),
        Some(Command::Exec(args)) => access::exec(&args),
        Some(Command::Cp(args)) => access::cp(&args),
        Some(Command::Logs(args)) => access::logs(&args),
        Some(Command::SshConfig(args)) => export::ssh_config(&args),
        Some(Command::Inventory(args)) => export::inventory(&args),
        Some(Command::Config(args)) => inspect::config(&args),
        Some(Command::Schema) => inspect::schema(),
    }
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
            return Err(Error::usage(
                format!("`{selector}` matches no node of the lab"),
                format!(
                    "use all, a node name (e.g. {}), cluster=NAME or role=NAME",
                    nodes.first().map_or("dev-master", |n| n.vm_name.as_str())
                ),
            ));
        }
    }
    Ok(nodes
        .iter()
        .filter(|n| selectors.is_empty() || selectors.iter().any(|s| lab::selects(s, n)))
        .map(|n| n.vm_name.clone())
        .collect())
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
        let lab = open_lab(args, false)?;
        let dir = StateDir::beside(&lab.source.path);
        dir.check().map_err(|e| Error::fatal(e, ""))?;
        let state = dir
            .read_state(lab.name())
            .map_err(|e| Error::fatal(e, ""))?;
        Ok(LabSnapshot { lab, dir, state })
    }

    pub(crate) fn absolute(&self, path: PathBuf) -> PathBuf {
        std::path::absolute(&path).unwrap_or(path)
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Node> {
        self.lab.node(name).ok_or_else(|| {
            Error::usage(
                format!("`{name}` is not a node of lab `{}`", self.lab.name()),
                format!(
                    "the nodes are {}",
                    self.lab
                        .nodes
                        .iter()
                        .map(|n| n.vm_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// The node's address, if the lab owns it and it runs.
    pub(crate) fn address(
        &self,
        node: &Node,
        running: &[String],
    ) -> std::result::Result<String, String> {
        let vm = &node.vm_name;
        let Some(owned) = self.state.vms.get(vm) else {
            return Err(format!(
                "{vm} has not been created by this lab: `tartlab up {vm}`"
            ));
        };
        if !running.contains(vm) {
            return Err(format!("{vm} is not running: `tartlab start {vm}`"));
        }
        owned
            .ip
            .clone()
            .ok_or_else(|| format!("{vm} has no known address yet: `tartlab up {vm}`"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
