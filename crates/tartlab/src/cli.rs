//! The command line: parsing (clap) and one function per command. Exit codes, in one place:
//! 0 success; 1 failure; 2 bad usage or invalid lab file; 3 partial failure.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::lab::{self, Diagnostic};

pub const EXIT_OK: i32 = 0;
pub const EXIT_INVALID: i32 = 2;

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
    /// Show the nodes the lab file declares, with their settings
    Plan(FileArgs),
    /// Print the JSON Schema of the lab file (for editor completion)
    Schema,
}

#[derive(clap::Args, Debug)]
struct FileArgs {
    /// The lab file (default: tartlab.yaml, tartlab.yml, then tartlab.json)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            EXIT_OK
        }
        Some(Command::Validate(args)) => validate(&args),
        Some(Command::Plan(args)) => plan(&args),
        Some(Command::Schema) => schema(),
    }
}

fn out(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}");
}

/// Loads and validates, or reports the problems (text on stderr, or JSON on stdout).
fn checked(args: &FileArgs) -> Result<(lab::Loaded, Vec<lab::Node>), i32> {
    let report = |problems: Vec<Diagnostic>| {
        if args.json {
            out(&serde_json::json!({ "valid": false, "errors": problems }).to_string());
        } else {
            for p in &problems {
                eprint!("{}", p.render());
            }
            let n = problems.len();
            eprintln!(
                "{n} problem{} found; nothing was changed",
                if n == 1 { "" } else { "s" }
            );
        }
        EXIT_INVALID
    };
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

fn plan(args: &FileArgs) -> i32 {
    let (loaded, nodes) = match checked(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.json {
        out(&serde_json::json!({ "lab": loaded.file.lab, "nodes": nodes }).to_string());
        return EXIT_OK;
    }
    let header = [
        "VM", "CLUSTER", "ROLE", "IMAGE", "CPU", "MEMORY", "DISK", "NETWORK",
    ];
    let rows: Vec<[String; 8]> = nodes
        .iter()
        .map(|n| {
            [
                n.vm_name.clone(),
                n.cluster.clone(),
                n.role.clone(),
                n.image.clone(),
                n.cpu.to_string(),
                format!("{} MiB", n.memory),
                n.disk.map_or("image".to_string(), |d| format!("{d} GB")),
                n.network.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    out(&format!(
        "lab `{}`: {} nodes (hostname = VM name)",
        loaded.file.lab,
        nodes.len()
    ));
    out(&line(header.to_vec()));
    for row in &rows {
        out(&line(row.iter().map(String::as_str).collect()));
    }
    EXIT_OK
}

fn schema() -> i32 {
    let schema = schemars::schema_for!(lab::model::LabFile);
    out(&serde_json::to_string_pretty(&schema).unwrap_or_default());
    EXIT_OK
}
