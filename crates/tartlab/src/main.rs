//! tartlab: labs of Linux VMs on Apple Silicon Macs with tart, from one declarative file.
//! For now only `--version` and `--help`; the lab commands arrive with their issues.

use clap::Parser;

/// Bring up whole labs of Linux VMs (clusters of nodes) with tart, from one lab file.
#[derive(Parser, Debug)]
#[command(name = "tartlab", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
