//! The command line: parsing (clap) and one function per command. Exit codes, in one place:
//! 0 success; 1 failure; 2 bad usage or invalid lab file; 3 partial failure (some nodes
//! failed, the others are fine); 130 interrupted by Ctrl-C.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::lab::{self, Diagnostic, Node};
use crate::state::{LabDir, State};

mod access;
mod lifecycle;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_PARTIAL: i32 = 3;
/// Ctrl-C: the work stopped cleanly, VMs keep running, the state is saved.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Bring up whole labs of Linux VMs (clusters of nodes) with tart, from one lab file.
#[derive(Parser, Debug)]
#[command(name = "tartlab", version, about, long_about = None)]
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
    Inventory(access::InventoryArgs),
    /// Print the JSON Schema of the lab file (for editor completion)
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

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            EXIT_OK
        }
        Some(Command::Validate(args)) => validate(&args),
        Some(Command::Plan(args)) => lifecycle::plan(&args),
        Some(Command::Up(args)) => lifecycle::up(&args),
        Some(Command::Status(args)) => lifecycle::status(&args),
        Some(Command::Stop(args)) => lifecycle::stop(&args),
        Some(Command::Start(args)) => lifecycle::start(&args),
        Some(Command::Down(args)) => lifecycle::down(&args),
        Some(Command::Ssh(args)) => access::ssh(&args),
        Some(Command::Exec(args)) => access::exec(&args),
        Some(Command::Cp(args)) => access::cp(&args),
        Some(Command::Logs(args)) => access::logs(&args),
        Some(Command::SshConfig(args)) => access::ssh_config(&args),
        Some(Command::Inventory(args)) => access::inventory(&args),
        Some(Command::Schema) => schema(),
    }
}

/// A failure before any node was touched: message and hint on stderr, exit 1.
pub(crate) fn fatal(message: &str, hint: &str) -> i32 {
    eprintln!("error: {message}");
    if !hint.is_empty() {
        eprintln!("  hint: {hint}");
    }
    EXIT_FAILED
}

/// The lab as the reading commands need it: nodes, where the state is, what it knows.
pub(crate) struct LabView {
    pub lab_name: String,
    pub nodes: Vec<Node>,
    pub dir: LabDir,
    pub state: State,
}

impl LabView {
    pub(crate) fn open(args: &FileArgs) -> Result<LabView, i32> {
        let (loaded, nodes) = checked(args)?;
        let dir =
            LabDir::beside(&loaded.source.path, false).map_err(|e| fatal(&e.to_string(), ""))?;
        let state = dir
            .read_state(&loaded.file.lab)
            .map_err(|e| fatal(&e, ""))?;
        Ok(LabView {
            lab_name: loaded.file.lab,
            nodes,
            dir,
            state,
        })
    }

    pub(crate) fn absolute(&self, path: PathBuf) -> PathBuf {
        std::path::absolute(&path).unwrap_or(path)
    }

    pub(crate) fn node(&self, name: &str) -> Result<&Node, i32> {
        self.nodes
            .iter()
            .find(|n| n.vm_name == name)
            .ok_or_else(|| {
                eprintln!("error: `{name}` is not a node of lab `{}`", self.lab_name);
                eprintln!(
                    "  hint: the nodes are {}",
                    self.nodes
                        .iter()
                        .map(|n| n.vm_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                EXIT_INVALID
            })
    }

    /// The node's address, if the lab owns it and it runs.
    pub(crate) fn address(&self, node: &Node, running: &[String]) -> Result<String, String> {
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

pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}");
}

/// Reports problems in the lab file (text on stderr, or JSON on stdout); exit 2.
pub(crate) fn report_invalid(json: bool, problems: &[Diagnostic]) -> i32 {
    if json {
        out(&serde_json::json!({ "valid": false, "errors": problems }).to_string());
    } else {
        for p in problems {
            eprint!("{}", p.render());
        }
        let n = problems.len();
        eprintln!(
            "{n} problem{} found; nothing was changed",
            if n == 1 { "" } else { "s" }
        );
    }
    EXIT_INVALID
}

/// Loads and validates, or reports the problems (text on stderr, or JSON on stdout).
pub(crate) fn checked(args: &FileArgs) -> Result<(lab::Loaded, Vec<lab::Node>), i32> {
    let report = |problems: Vec<Diagnostic>| report_invalid(args.json, &problems);
    let path = lab::locate(args.file.as_deref()).map_err(|d| report(vec![*d]))?;
    let loaded = lab::load(&path).map_err(report)?;
    let nodes = lab::validate(&loaded.file, &loaded.source).map_err(report)?;
    Ok((loaded, nodes))
}

fn validate(args: &FileArgs) -> i32 {
    match checked(args) {
        Ok((loaded, nodes)) => {
            if args.json {
                out(&serde_json::json!({ "valid": true, "lab": loaded.file.lab, "nodes": nodes.len() }).to_string());
            } else {
                let clusters = loaded.file.clusters.len();
                out(&format!(
                    "{}: lab `{}` is valid ({} node{} in {clusters} cluster{})",
                    loaded.source.path.display(),
                    loaded.file.lab,
                    nodes.len(),
                    if nodes.len() == 1 { "" } else { "s" },
                    if clusters == 1 { "" } else { "s" },
                ));
            }
            EXIT_OK
        }
        Err(code) => code,
    }
}

fn schema() -> i32 {
    let schema = schemars::schema_for!(lab::model::LabFile);
    out(&serde_json::to_string_pretty(&schema).unwrap_or_default());
    EXIT_OK
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
